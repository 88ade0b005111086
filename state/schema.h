/*
 * Redis layout 2 (PRODUCT.md, "Redis keys"): the one place that names
 * mailtrail's keys and owns its Lua scripts. Every key of one message
 * carries the tracking ID as a Cluster hash tag, so they share a slot; no
 * script touches keys of two slots.
 */
#ifndef MT_SCHEMA_H
#define MT_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include "redis.h"

struct mt_config;

/* The settings keys and scripts depend on, from the configuration. */
struct mt_schema {
	char prefix[64];	/* RedisPrefix */
	long ttl;		/* RetentionDays, in seconds */
	long maxlen;		/* EventsMaxLen */
};

/* Copies the settings (their defaults are the config's). 0, or -1 when
 * the prefix is longer than the schema allows. */
int mt_schema_init(struct mt_schema *s, const struct mt_config *cfg);

enum mt_key_kind {
	MT_KEY_RECORD,		/* P{ID}		hash: the record */
	MT_KEY_EVENTS,		/* P{ID}:ev		list: its events */
	MT_KEY_QID,		/* Pqid:QUEUEID		string: ID */
	MT_KEY_MSGID,		/* Pmsgid:MESSAGE-ID	sorted set of IDs */
	MT_KEY_FROM,		/* Pfrom:ADDRESS	sorted set of IDs */
	MT_KEY_TO,		/* Pto:ADDRESS		sorted set of IDs */
	MT_KEY_SCHED,		/* Psched		sorted set (no arg) */
	MT_KEY_STREAM,		/* Pevents		stream (no arg) */
	MT_KEY_ROUTE,		/* Proute:NAME		hash: a route's state */
	MT_KEY_MBOX		/* Pmbox:USER:UIDVALIDITY:UID	string: the ID
				 * of a mailbox entry (Dovecot) */
};

/*
 * The key of kind for arg (arglen bytes; ignored for SCHED and STREAM),
 * malloc'd, or NULL when out of memory.
 */
char *mt_key(const struct mt_schema *s, enum mt_key_kind kind,
    const char *arg, size_t arglen);
/* Proute:NAME:YYYYMMDD, a route's deliveries on one day (UTC). */
char *mt_key_route_day(const struct mt_schema *s, const char *name,
    const char *day);

/* The record's field for a recipient's status: "r:" ADDRESS. */
#define MT_RCPT_FIELD "r:"

/*
 * The fingerprint an event carries as "fp" so that the event script can
 * see it was recorded before: 16 hex digits of SHA-256 of data.
 */
#define MT_FP_LEN 16
void mt_schema_fingerprint(const void *data, size_t len,
    char out[MT_FP_LEN + 1]);

enum mt_script_kind {
	/*
	 * The record. KEYS: P{ID} P{ID}:ev. ARGV: ttl, keep (1: the origin's
	 * fields are kept, HSETNX), the RECEIVE fingerprint, the RECEIVE
	 * event, the SPOOL event or "", the number of field/value pairs, the
	 * pairs, then the recipients. 'ok', or 'dup' when this RECEIVE is
	 * there already (a replay, or a write that happened but timed out).
	 */
	MT_SCRIPT_RECORD,
	/*
	 * An event. KEYS: P{ID} P{ID}:ev. ARGV: ttl, fingerprint or "",
	 * recipient or "" (every one still queued or deferred), alternative
	 * recipient or "", new status or "", the event (its "fp" included),
	 * only_known (1: the recipient must be one already). 'ok' (status
	 * moved), 'event' (recorded, status kept), 'dup', 'norecord',
	 * 'notrcpt'.
	 */
	MT_SCRIPT_EVENT,
	/*
	 * A route's daily delivery counter. KEYS: Proute:NAME:DAY. ARGV:
	 * cap, ttl. 1 taken, 0 the day's cap is reached.
	 */
	MT_SCRIPT_ROUTE_TAKE,
	MT_SCRIPT_COUNT
};

/* The script and its digest; NULL only when OpenSSL cannot hash. */
const struct mt_redis_script *mt_schema_script(enum mt_script_kind k);

#endif
