/*
 * Where a message has been: MaxMind-format databases (memory-mapped with
 * libmaxminddb, swapped atomically when a file is replaced), the Received:
 * header parser, the X-Mailtrail-Hop header format, and the hop path built
 * from them by the trust rules. Library code: it never logs; errors come
 * back in err.
 */
#ifndef MT_GEO_H
#define MT_GEO_H

#include <stddef.h>
#include <stdint.h>

struct mt_cidr_list;

/* --- databases ------------------------------------------------------------ */

struct mt_geo_loc {
	int found;		/* lat/lon/cc/city valid */
	double lat, lon;
	char cc[3];
	char city[96];		/* UTF-8, cleaned of controls and ';' */
	uint32_t asn;		/* 0 when no ASN database knows it */
};

struct mt_geo;

/* Opens every file; NULL with err when one cannot be opened. */
struct mt_geo *mt_geo_open(char *const *paths, size_t n, char *err,
    size_t errlen);
/*
 * Looks ip (text) up in the databases in order; the first city answer wins,
 * an ASN database adds asn. Private, loopback, link-local, CGNAT and ULA
 * addresses are never looked up. Returns 1 when found, 0 otherwise.
 */
int mt_geo_lookup(struct mt_geo *g, const char *ip, struct mt_geo_loc *out);
/*
 * Reopens the files whose inode, size or mtime changed (all with force),
 * swapping each in only once it opened cleanly: lookups in flight finish
 * on the old map. Returns the number swapped, or -1 with err when a new
 * file was bad (the old one stays in service).
 */
int mt_geo_refresh(struct mt_geo *g, int force, char *err, size_t errlen);
void mt_geo_free(struct mt_geo *g);

/* What a database file says of itself: its type ("GeoIP2-City", "city
 * ipv4") and when it was built (unix seconds). 0, or -1 with err. */
struct mt_geo_info {
	char type[96];
	uint64_t built;
	uint32_t ip_version;
};
int mt_geo_file_info(const char *path, struct mt_geo_info *out, char *err,
    size_t errlen);

/* 1 for addresses that have no place on a map (RFC 1918, loopback, ...). */
int mt_geo_is_private(const char *ip);

/* --- Received: ------------------------------------------------------------ */

#define MT_HOST_MAX 256
#define MT_IP_MAX 46

struct mt_received {
	char from_host[MT_HOST_MAX];	/* first word after "from", or "" */
	char ip[MT_IP_MAX];		/* the connecting address, or "" */
	char by_host[MT_HOST_MAX];	/* first word after "by", or "" */
};

/*
 * Parses one Received: value (bounded: reads at most MT_RECEIVED_SCAN
 * bytes, allocates nothing). Returns 0, or -1 when neither a from nor a by
 * clause is there.
 */
#define MT_RECEIVED_SCAN 4096
int mt_received_parse(const char *value, size_t len, struct mt_received *out);

/* --- X-Mailtrail-Hop ------------------------------------------------------ */

enum mt_hop_src { MT_HOP_MILTER, MT_HOP_RECEIVED };
enum mt_hop_trust { MT_TRUST_VERIFIED, MT_TRUST_UNVERIFIED };

struct mt_hop {
	int n;
	char by[MT_HOST_MAX];
	char ip[MT_IP_MAX];
	struct mt_geo_loc loc;
	struct mt_geo_loc by_loc;	/* this MTA's own place, client hops */
	enum mt_hop_src src;
	enum mt_hop_trust trust;
	char t[24];			/* 2026-11-21T23:15:00Z, or "" */
};

/* Header value "n=1; by=...; ip=...; ..." (never longer than outsize-1). */
size_t mt_hop_format(const struct mt_hop *h, char *out, size_t outsize);
/* Reads a value written by mt_hop_format (from another MTA). 0 or -1. */
int mt_hop_parse(const char *value, size_t len, struct mt_hop *out);
/* A JSON array (malloc'd text) of hops for the record's "path" field. */
char *mt_hop_path_json(const struct mt_hop *hops, size_t n);

/* --- the hop path (path.c) ------------------------------------------------ */

/*
 * The hop path of one message: what the headers tell (Received:, and
 * X-Mailtrail-Hop from this site's MTAs upstream) plus the hop mailtrail
 * sees itself, numbered from the origin.
 */
#define MT_PATH_RECEIVED_KEEP 64	/* Received: headers read per message */
#define MT_PATH_HOPS_MAX 64		/* hops in one path */

struct mt_path {
	struct mt_received *rx;		/* top (newest) first */
	size_t nrx, nrx_seen;
	struct mt_hop *up;		/* X-Mailtrail-Hop from upstream */
	size_t nup;
};

struct mt_path_in {
	const char *client_ip;		/* text, or "local" for pickup */
	const char *by;
	const char *daemon_addr;	/* NULL when Postfix did not say */
	const char *public_addr;	/* PublicAddress, NULL when none */
	const struct mt_cidr_list *internal, *trusted;
	const struct mt_cidr_list *site_mtas;	/* NULL: none */
	struct mt_geo *geo;		/* NULL: no coordinates */
	int64_t now_ms;
};

/* Header values in the order they stand, top first; both bounded. */
void mt_path_note_received(struct mt_path *p, const char *value);
void mt_path_note_hop(struct mt_path *p, const char *value);
/*
 * Builds the whole path, oldest first, into hops (MT_PATH_HOPS_MAX room).
 * The noted X-Mailtrail-Hop values count only when client_ip is one of
 * site_mtas. *first_new is the index of the first hop to stamp (the ones
 * before it came stamped from upstream). Returns the number of hops.
 */
size_t mt_path_build(const struct mt_path *p, const struct mt_path_in *in,
    struct mt_hop *hops, size_t *first_new);
void mt_path_free(struct mt_path *p);

#endif
