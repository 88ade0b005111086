/*
 * Status events (SEND, DEFER, BOUNCE, READ, DELETE, ...) applied to a
 * message's record in Redis by one atomic, idempotent Lua script: it moves
 * the recipient's status forward only, appends to P{ID}:ev and the events
 * stream, and drops an event whose fingerprint it has seen before.
 * Library code: errors go into err, never into a log.
 */
#ifndef MT_EVENTS_H
#define MT_EVENTS_H

#include <stddef.h>
#include <hiredis/hiredis.h>

#include "../common/trackid.h"

struct mt_config;
struct mt_events;

#define MT_EVENTS_ID_MAX 64	/* IDs read back from Redis are checked */

enum mt_event_result {
	MT_EV_CHANGED = 0,	/* event recorded, status moved forward */
	MT_EV_RECORDED,		/* event recorded, status kept */
	MT_EV_DUPLICATE,	/* fingerprint seen before: nothing written */
	MT_EV_NO_RECORD,	/* no P{ID} (expired or never written) */
	MT_EV_NOT_RECIPIENT,	/* only_known and not a field of P{ID}:rcpt */
	MT_EV_FAILED = -1	/* Redis error: err says why */
};

struct mt_event {
	const char *id;		/* tracking ID */
	const char *ev;		/* "SEND", "READ", ... */
	const char *rcpt;	/* normalised; "" = every recipient still
				 * queued or deferred (message expiry) */
	const char *alt_rcpt;	/* tried when rcpt is not a field (orig_to) */
	const char *status;	/* "sent", ..., or NULL: event only */
	int only_known;		/* 1: rcpt must be a recipient already */
	const char *fingerprint; /* dedupe key, NULL: none */
	const char *json;	/* the event object */
};

/* Settings and a small pool of connections; safe to share between threads. */
struct mt_events *mt_events_new(const struct mt_config *cfg, char *err,
    size_t errlen);
void mt_events_free(struct mt_events *ev);
const char *mt_events_prefix(const struct mt_events *ev);

/* A connection from the pool (or new); give it back with mt_events_put. */
redisContext *mt_events_get(struct mt_events *ev, char *err, size_t errlen);
void mt_events_put(struct mt_events *ev, redisContext *c);

/*
 * Looks up n keys PREFIX KIND:KEY[i] (kind "qid", or "msgid": the first
 * message that carried it) in one
 * pipeline. ids[i] is the ID, or "" when absent or not ID-shaped.
 * 0, or -1 with err.
 */
int mt_events_lookup(struct mt_events *ev, redisContext *c, const char *kind,
    const char *const *keys, size_t n, char (*ids)[MT_EVENTS_ID_MAX + 1],
    char *err, size_t errlen);

/* Applies n events in one pipeline; res[i] per event. 0, or -1 with err. */
int mt_events_apply(struct mt_events *ev, redisContext *c,
    const struct mt_event *e, size_t n, enum mt_event_result *res,
    char *err, size_t errlen);

/* A short stable fingerprint (hex) of bytes, for struct mt_event. */
void mt_events_fingerprint(const void *data, size_t len, char out[33]);
/* The fingerprint of "EV rcpt": one READ (or DELETE) per recipient,
 * whether it came from a receipt or from mark-read. */
void mt_events_once_per_rcpt(const char *ev, const char *rcpt, char out[33]);

#endif
