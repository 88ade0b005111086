/*
 * mailtrail.conf: OpenDKIM-style "Key value" lines. One immutable, reference
 * counted snapshot per load, so a reload never pulls a configuration away
 * from a connection that started with it.
 */
#ifndef MT_CONFIG_H
#define MT_CONFIG_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>

#include "cidr.h"

#define MT_CONFIG_DEFAULT "/etc/mailtrail/mailtrail.conf"

enum mt_log_format { MT_LOG_KV, MT_LOG_JSON };
enum mt_fail_action { MT_FAIL_TEMPFAIL, MT_FAIL_ACCEPT };

struct mt_config_line {
	char *text;
	int line;
};

struct mt_config {
	int refs;			/* mt_config_ref / mt_config_unref */
	char *path;

	char *socket;			/* Socket */
	mode_t umask;			/* UMask */
	char *userid;			/* UserID, NULL = stay */
	char *pidfile;			/* PidFile, NULL = none */

	char *redis_server;		/* RedisServer: HOST:PORT or unix:/path */
	int redis_server_set;		/* RedisServer given in the file */
	char *redis_sentinel;		/* RedisSentinel: HOST:PORT list, NULL = none */
	char *redis_sentinel_master;	/* RedisSentinelMaster */
	char *redis_cluster;		/* RedisCluster: seed HOST:PORT list, NULL = none */
	char *redis_user;		/* from RedisPasswordFile, NULL = none */
	char *redis_password;		/* from RedisPasswordFile, NULL = none */
	int redis_timeout_ms;		/* RedisTimeout */
	char *redis_prefix;		/* RedisPrefix */
	long retention_days;		/* RetentionDays */
	long events_maxlen;		/* EventsMaxLen: cap of the mt:events stream */

	unsigned char *secret;		/* SecretKeyFile contents */
	size_t secret_len;

	struct mt_cidr_list internal;	/* InternalHosts */
	struct mt_cidr_list trusted;	/* TrustedRelays: Received: they write is believed */
	struct mt_cidr_list site_mtas;	/* SiteMTAs: X-Mailtrail-* they send is kept */
	char **authserv_ids;		/* TrustedAuthservIDs: our verifier's A-R */
	size_t n_authserv_ids;
	char **postfix_syslog_names;	/* PostfixSyslogNames: whose log lines count */
	size_t n_postfix_syslog_names;

	char **geodb;			/* GeoDB, may repeat */
	size_t n_geodb;

	char *spool_dir;		/* SpoolDir */
	enum mt_log_format log_format;	/* LogFormat */
	enum mt_fail_action on_store_failure; /* StoreFailure: tempfail|accept */

	int request_read_receipt;	/* RequestReadReceipt yes|no */
	int track_inbound;		/* TrackInbound yes|no */
	long max_deferral_s;		/* MaxDeferral, seconds */
	enum mt_reader_loc {		/* ReaderLocation */
		MT_READER_CITY = 0, MT_READER_COUNTRY, MT_READER_NONE
	} reader_location;
	char *public_address;		/* PublicAddress: this MTA's, NULL = none */
	char *map_land;			/* MapLand: TopoJSON land for `map` */

	/* Outbound routes: Route lines kept raw (with their line numbers)
	 * for the route module, which owns their syntax. */
	struct mt_config_line *routes;
	size_t n_routes;
	char *route_socket;		/* RouteSocket */
	int route_fail_closed;		/* RouteFailClosed yes|no */
	int route_sticky;		/* RouteSticky yes|no: per sender domain */
	char **route_blocklists;	/* RouteBlocklist, may repeat */
	size_t n_route_blocklists;

	/* Run by the last unref: lets the daemon free what it hung on it. */
	void (*on_free)(struct mt_config *);
	void *owner;			/* the daemon's per-config state */
};

/*
 * Reads and checks FILE. On error returns NULL and writes "file:line: what"
 * (or "file: what") into err. need_secret = 0 lets the `mailtrail` command
 * read a daemon's file without the right to read the key.
 */
struct mt_config *mt_config_load(const char *path, int need_secret,
    char *err, size_t errlen);
struct mt_config *mt_config_ref(struct mt_config *);
void mt_config_unref(struct mt_config *);

#endif
