/*
 * The trace record of one message at one MTA: what the milter learnt, in the
 * form the store writes to Redis or to the spool. Plain data; the strings are
 * owned by the record and already cleaned (no CR/LF/NUL).
 */
#ifndef MT_RECORD_H
#define MT_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "../common/trackid.h"

struct mt_record {
	char id[MT_ID_SIZE];	/* tracking ID */
	int id_kept;		/* 1: ID came with the message from this site */
	char *qid;		/* Postfix queue ID */
	char *msgid;		/* Message-ID without <>, NULL when absent */
	char *subject;		/* Subject: decoded, cut short; NULL: none */
	int inbound;		/* 1: mail from outside (dir=in), 0: out */
	char *sender;		/* normalised envelope sender ("<>" for null) */
	char **rcpt;		/* normalised envelope recipients */
	size_t nrcpt;
	char *client_ip;
	char *client_name;
	char *helo;
	char *auth;		/* SASL login name, NULL when none */
	int have_geo;		/* lat/lon/cc/city valid (issue: geo) */
	double lat, lon;
	char *cc;
	char *city;
	int hops;		/* number of X-Mailtrail-Hop entries */
	char *hop_path;		/* JSON array of hops, NULL when none */
	uint64_t size;		/* message size in bytes */
	int64_t received_ms;	/* unix time in ms */
	int64_t send_at_ms;	/* held until (Deferred-Delivery), 0: not */
	char *by;		/* this MTA's name */
};

/* Limits mt_record_parse enforces on untrusted (spooled) records. */
#define MT_RECORD_STR_MAX 4096		/* bytes per string field */
#define MT_RECORD_RCPT_MAX 10000	/* recipients per record */
#define MT_RECORD_PATH_MAX 65536	/* bytes of hop_path JSON */
#define MT_RECORD_QID_MAX 64		/* queue ID: [0-9A-Za-z] only */

void mt_record_free(struct mt_record *r);	/* frees members, not r */

/*
 * 0 when r is fit to store: a well-formed ID and queue ID, a sender, and
 * every field within the MT_RECORD_* limits (so that what is spooled can
 * be parsed back); else -1 with the reason in err.
 */
int mt_record_check(const struct mt_record *r, char *err, size_t errlen);

/*
 * One record as one JSON text (NUL-terminated, malloc'd) for the spool, and
 * back. mt_record_parse is fed untrusted bytes (a spool file may be cut
 * short or damaged): it checks every field and returns -1 with a reason.
 */
char *mt_record_serialize(const struct mt_record *r);
int mt_record_parse(const char *buf, size_t len, struct mt_record *r,
    char *err, size_t errlen);

/*
 * The RECEIVE event as JSON text (malloc'd), as stored in P{ID}:ev: its
 * time, fingerprint (fp, may be NULL) and hop path, and, from a later MTA
 * of the site, that MTA's own queue ID, name, sender and client.
 */
char *mt_record_receive_json(const struct mt_record *r, const char *fp);
/*
 * The SPOOL event added when a spooled record reaches Redis late:
 * {"t":now_ms,"ev":"SPOOL","qid":..,"spooled":received_ms} (malloc'd).
 */
char *mt_record_spool_event_json(const struct mt_record *r, int64_t now_ms);

/*
 * The SCHEDULE event of a held message: {"t":received_ms,"ev":"SCHEDULE"}
 * (the record holds send_at). malloc'd.
 */
char *mt_record_schedule_event_json(const struct mt_record *r);

#endif
