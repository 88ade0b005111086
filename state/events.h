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
#include "../common/trackid.h"

struct mt_config;
struct mt_events;

#define MT_EVENTS_ID_MAX 64	/* IDs read back from Redis are checked */

enum mt_event_result {
	MT_EV_CHANGED = 0,	/* event recorded, status moved forward */
	MT_EV_RECORDED,		/* event recorded, status kept */
	MT_EV_DUPLICATE,	/* fingerprint seen before: nothing written */
	MT_EV_NO_RECORD,	/* no P{ID} (expired or never written) */
	MT_EV_NOT_RECIPIENT,	/* only_known and not a recipient of P{ID} */
	MT_EV_FAILED = -1	/* Redis error: err says why */
};

/* How an event names its message. */
enum mt_event_find {
	MT_FIND_ID = 0,		/* key is the tracking ID */
	MT_FIND_QID,		/* key is a Postfix queue ID */
	MT_FIND_MSGID		/* key is a Message-ID: its first message */
};

struct mt_event {
	enum mt_event_find find;
	const char *key;
	const char *ev;		/* "SEND", "READ", ... */
	const char *rcpt;	/* normalised; "" = every recipient still
				 * queued or deferred (message expiry) */
	const char *alt_rcpt;	/* tried when rcpt is not a recipient (orig_to) */
	const char *status;	/* "sent", ..., or NULL: event only */
	int only_known;		/* 1: rcpt must be a recipient already */
	const char *fingerprint; /* dedupe (mt_events_fingerprint), NULL: none */
	const char *json;	/* the event object; "fp" is added here */
};

/* Settings and a pool of links to Redis; safe to share between threads. */
struct mt_events *mt_events_new(const struct mt_config *cfg, char *err,
    size_t errlen);
void mt_events_free(struct mt_events *ev);

/*
 * The one way to record events, for every source: looks up each
 * message, applies each event (status forward only, appended to P{ID}:ev
 * with its fingerprint, dropped when the fingerprint was seen), and adds
 * the recorded ones to the events stream; pipelined, a few round trips
 * for the lot. res[i] per event; ids[i] (when ids is not NULL) the
 * message's ID or "" when none was found (res[i] is then MT_EV_NO_RECORD).
 * 0, or -1 with err when Redis could not take them: nothing is known of
 * their effects, and sending them again is safe.
 */
int mt_events_record(struct mt_events *ev, const struct mt_event *e,
    size_t n, enum mt_event_result *res, char (*ids)[MT_EVENTS_ID_MAX + 1],
    char *err, size_t errlen);

#define MT_EVENTS_FP_SIZE 17	/* fingerprint text and its NUL */
/* A short stable fingerprint (hex) of bytes, for struct mt_event. */
void mt_events_fingerprint(const void *data, size_t len,
    char out[MT_EVENTS_FP_SIZE]);
/* The fingerprint of "EV rcpt": one READ (or DELETE) per recipient,
 * whether it came from a receipt or from mark-read. */
void mt_events_once_per_rcpt(const char *ev, const char *rcpt,
    char out[MT_EVENTS_FP_SIZE]);

#endif
