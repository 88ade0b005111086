/*
 * Scheduled sending: the decision a Deferred-Delivery: date makes at
 * submission (decide.c), and what the releaser reads from Postfix's hold
 * queue (queue.c): one line of `postqueue -j`, the X-Mailtrail-Hold marker
 * the milter adds, and the header block `postcat -h -q QUEUEID` prints.
 * Pure and bounded; every input is untrusted and none needs to be
 * NUL-terminated. No I/O.
 */
#ifndef MT_SCHEDULE_H
#define MT_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>


#define MT_SCHED_SLACK_MS 5000	/* this close to now is "now" */

enum mt_sched_verdict {
	MT_SCHED_NOW = 0,	/* past, or within the slack: send */
	MT_SCHED_HOLD,		/* hold until *due_ms */
	MT_SCHED_BAD,		/* no date: err says why */
	MT_SCHED_TOO_FAR	/* later than now + max_deferral_s */
};

enum mt_sched_verdict mt_sched_decide(const char *value, size_t len,
    int64_t now_ms, long max_deferral_s, int64_t *due_ms, char *err,
    size_t errlen);

/* "YYYY-MM-DDTHH:MM:SSZ" of unix ms t_ms; its length, 0 when it does not fit. */
size_t mt_sched_iso(char *buf, size_t size, int64_t t_ms);

/* ---- queue.c: the hold queue as the releaser reads it --------------- */

#define MT_SCHED_HOLD_HEADER "X-Mailtrail-Hold"

#define MT_SCHED_QID_MAX 32
#define MT_SCHED_ADDR_MAX 512
#define MT_SCHED_SUBJECT_MAX 128
#define MT_SCHED_RCPT_MAX 100	/* recipients kept per entry; all counted */
#define MT_SCHED_LINE_MAX 8192	/* longer header lines are not read */

/*
 * One entry of `postqueue -j` (one JSON object per line; postqueue(1),
 * "JSON OBJECT FORMAT"). Strings hold no byte below 0x20 nor 0x7f (each
 * becomes '?'), are valid UTF-8 and are cut to their buffer on a character
 * boundary.
 */
struct mt_sched_entry {
	char queue_name[16];		/* "hold", "deferred", ... */
	char qid[MT_SCHED_QID_MAX];
	int64_t arrival;		/* arrival_time, unix s; -1 if absent */
	char sender[MT_SCHED_ADDR_MAX];	/* "" for the null sender */
	size_t nrcpt;			/* recipients with a string address */
	size_t nkept;			/* min(nrcpt, MT_SCHED_RCPT_MAX) */
	char rcpt[MT_SCHED_RCPT_MAX][MT_SCHED_ADDR_MAX];
};

/*
 * Parses line[0..len) into *e. Returns 0, or -1 when it is not one JSON
 * object (trailing bytes other than white space, duplicate keys), or
 * queue_name or queue_id is missing or not a string, or the queue ID is not
 * 1..31 of [0-9A-Za-z]. Other members are best effort: a sender that is
 * not a string reads as "", arrival_time that is not a non-negative
 * integer as -1, recipients that are not objects with a string "address"
 * are neither counted nor kept.
 */
int mt_sched_entry_parse(const char *line, size_t len,
    struct mt_sched_entry *e);

/*
 * The marker's value: "t=T; qid=QID; until=YYYY-MM-DDTHH:MM:SSZ", T the due
 * time in unix seconds (0..999999999999), QID the queue ID the message had
 * when it was held. Returns 0, or -1 for a bad t or qid or when it does not
 * fit in size (buf is then "").
 */
int mt_sched_hold_format(char *buf, size_t size, int64_t t, const char *qid);

/*
 * Reads a marker value[0..len): ';'-separated name=value fields in any
 * order, blanks around each ignored, unknown names ignored, "until" not
 * checked (it is for people). t must be 1..12 decimal digits and qid a
 * queue ID as above that fits in qidsize; both must be present, once each.
 * Returns 0, or -1 with *t = -1 and qid "".
 */
int mt_sched_hold_parse(const char *value, size_t len, int64_t *t,
    char *qid, size_t qidsize);

/*
 * What the releaser needs from a held message's headers. Values are
 * unfolded (a continuation's leading blanks kept, tabs as spaces) and
 * trimmed; no byte below 0x20 nor 0x7f, invalid UTF-8 bytes as '?'.
 */
struct mt_sched_headers {
	int n_id;			/* X-Mailtrail-ID headers seen */
	char id[65];			/* first one's, "" unless 1..64 of [A-Za-z0-9._-] */
	int n_hold;			/* X-Mailtrail-Hold headers seen */
	char hold[256];			/* first one's, "" if it does not fit */
	int n_dd;			/* Deferred-Delivery headers seen */
	char dd[256];			/* first one's, cut to the buffer */
	char subject[MT_SCHED_SUBJECT_MAX]; /* first Subject, cut; no MIME decoding */
};

/*
 * Scans text[0..len) as `postcat -h` prints it: header lines, continuation
 * lines starting with SP or TAB, lines starting with "*** " ignored, up to
 * the first empty line. Names match case-insensitively; "Name :" is a
 * header too, as Postfix's is_header() has it. A header with a line longer
 * than MT_SCHED_LINE_MAX bytes is counted (if its name is readable) but its
 * value is not read: a first one leaves its field "". Returns 0, or -1 if
 * the text holds no header at all.
 */
int mt_sched_headers_scan(const char *text, size_t len,
    struct mt_sched_headers *h);

#endif
