/*
 * Postfix delivery results: parsing one maillog line into a per-recipient
 * result (pure, bounded: fixed buffers, no allocation), the event JSON it
 * becomes, following a log file across appends and rotation, and following
 * Postfix's entries in the systemd journal as the same lines.
 */
#ifndef MT_DELIVERY_H
#define MT_DELIVERY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MT_DLV_LINE_MAX 8192	/* longer lines are cut and counted bad */
#define MT_DLV_QID_MAX 32
#define MT_DLV_ADDR_MAX 512
#define MT_DLV_SERVICE_MAX 64
#define MT_DLV_RELAY_MAX 300
#define MT_DLV_DSN_MAX 16
#define MT_DLV_TEXT_MAX 1000
#define MT_DLV_SESSION_MAX 64

enum mt_dlv_status {
	MT_DLV_SENT = 1,
	MT_DLV_DEFERRED,
	MT_DLV_BOUNCED,
	MT_DLV_EXPIRED,		/* to= line with status=expired, or from= line */
	MT_DLV_DELIVERED	/* status=sent by lmtp, local or virtual: stored
				 * in a mailbox */
};

/* One delivery result. Strings are NUL-terminated and already cleaned:
 * addresses by mt_text_address, the rest by mt_text_header. */
struct mt_dlv {
	int64_t t_ms;			/* log time, unix ms (-1: none) */
	char service[MT_DLV_SERVICE_MAX];	/* "postfix/smtp", "postfix-out1/smtp" */
	char qid[MT_DLV_QID_MAX];
	int whole_message;		/* from=<..>, status=expired: every rcpt */
	char rcpt[MT_DLV_ADDR_MAX];	/* to=, "" when whole_message */
	char orig_rcpt[MT_DLV_ADDR_MAX]; /* orig_to=, "" when absent */
	char relay[MT_DLV_RELAY_MAX];
	char delay[24];
	char dsn[MT_DLV_DSN_MAX];
	enum mt_dlv_status status;
	char text[MT_DLV_TEXT_MAX];	/* the "(...)" after the status */
	char orig_qid[MT_DLV_QID_MAX];	/* MT_DLV_REQUEUE: the old queue ID */
	/* Set by the caller, not the parser: the outbound route whose
	 * syslog_name (postfix-NAME) logged the line, and its address. */
	char route[MT_DLV_SERVICE_MAX];
	char route_ip[46];
	/* The receiving server's address from relay=NAME[ADDR]:PORT, ""
	 * when the relay is no network address (local, a unix socket). */
	char ip[46];
	/* Set by the caller, not the parser: where the GeoDB puts ip. */
	int have_place;
	double lat, lon;
	char cc[3];
	char city[96];
	char session[MT_DLV_SESSION_MAX]; /* LMTP server's session ID from
					 * "250 2.0.0 <rcpt> SESSION Saved"
					 * (Dovecot), or "" */
};

/* What mt_dlv_parse found in a line. */
enum mt_dlv_kind {
	MT_DLV_BAD = -1,	/* not a log line, or a result we cannot read */
	MT_DLV_OTHER = 0,	/* a log line that is no delivery result */
	MT_DLV_RESULT = 1,	/* a delivery result, in *d */
	MT_DLV_FOREIGN = 2,	/* shaped like a result, but its syslog tag is
				 * not a Postfix delivery program of ours */
	MT_DLV_REQUEUE = 3	/* pickup took a requeued message (postsuper
				 * -r): d->qid is its new queue ID, d->orig_qid
				 * the one it had */
};

/*
 * Parses one log line (without its newline). The text after "QUEUEID: "
 * is read as ", "-separated name=value fields; <...>, [...] and (...) are
 * units, so an address such as <"x, status=bounced"@y> never yields a
 * field. A result counts only when the tag is NAME[/...]/DAEMON[pid] with
 * NAME one of names (PostfixSyslogNames) and DAEMON a Postfix program that
 * logs delivery results; *d is filled only for MT_DLV_RESULT. now_ms gives
 * the year for syslog timestamps, which carry none.
 */
enum mt_dlv_kind mt_dlv_parse(const char *line, size_t len, int64_t now_ms,
    char *const *names, size_t n_names, struct mt_dlv *d);

/* "SEND", "DELIVER", "DEFER", "BOUNCE". */
const char *mt_dlv_event_name(enum mt_dlv_status s);
/* The recipient status it moves to: "sent", "delivered", "deferred",
 * "bounced". */
const char *mt_dlv_status_name(enum mt_dlv_status s);

/*
 * The event object for P{ID}:ev (malloc'd JSON text, NULL when out of
 * memory): t, ev, rcpt, orig_rcpt, relay, dsn, status, reply (sent) or
 * reason (otherwise), service, route, route_ip, qid, delay.
 */
char *mt_dlv_event_json(const struct mt_dlv *d, int64_t t_ms);

/* ---- following a log file ----------------------------------------- */

struct mt_follow {
	char *path;		/* NULL: standard input, no rotation, no state */
	int fd;
	dev_t dev;
	ino_t ino;
	off_t off;		/* byte offset of the first unconsumed byte */
	char *buf;		/* partial line carried between reads */
	size_t len, cap;
	size_t pending;		/* bytes of the line handed out last */
	int eof_seen;		/* the last read returned 0 */
	int long_line;		/* discarding the rest of an overlong line */
	unsigned char head[64];	/* the file's first bytes as we read them */
	size_t head_len;	/* 0: not taken yet */
	unsigned char tail[64];	/* the last bytes read, ending at off + len */
	size_t tail_len;
	char err[256];
};

/*
 * Opens path (NULL or "-" for stdin) and seeks to the offset in the state
 * file when it names the same inode and the file is at least that long.
 * 0, or -1 with f->err.
 */
int mt_follow_open(struct mt_follow *f, const char *path, const char *state);

/*
 * Next complete line: 1 with *line and *len (valid until the next call; its
 * end offset is f->off), 0 when nothing new is there (after checking for
 * rotation and truncation), -1 on a read error. Overlong lines are
 * returned cut at MT_DLV_LINE_MAX with *cut = 1.
 */
int mt_follow_next(struct mt_follow *f, const char **line, size_t *len,
    int *cut);

/* Writes "inode offset" atomically (tmp + rename). 0 or -1 with err. */
int mt_follow_save(const struct mt_follow *f, const char *state);
void mt_follow_close(struct mt_follow *f);

/* Replaces the state file with text: tmp file, fsync, rename. 0, or -1
 * with errno. Shared by the file and the journal follower. */
int mt_state_write(const char *state, const char *text);

/* ---- Postfix's entries in the systemd journal ---------------------- */

/* The fields of one journal entry that make its syslog line: the entry's
 * own bytes (not NUL-terminated, anything at all), NULL when absent. */
struct mt_jentry {
	uint64_t t_us;			/* __REALTIME_TIMESTAMP */
	const char *host;		/* _HOSTNAME */
	size_t host_len;
	const char *ident;		/* SYSLOG_IDENTIFIER */
	size_t ident_len;
	const char *pid;		/* SYSLOG_PID, else _PID */
	size_t pid_len;
	const char *msg;		/* MESSAGE */
	size_t msg_len;
};

enum mt_jline_kind {
	MT_JLINE_BAD = -1,	/* no line the parser may read (no or unsafe
				 * identifier, binary message, no message);
				 * out holds what could be written, to quote */
	MT_JLINE_OK = 0,
	MT_JLINE_CUT = 1,	/* message too long: out is the line cut at
				 * MT_DLV_LINE_MAX */
	MT_JLINE_UNTRUSTED = 2	/* (mt_journal_next only) a whole line, but
				 * journald says a process of neither root
				 * nor Postfix's user wrote it (_UID) */
};

/*
 * "2026-11-21T23:15:00.123456Z HOST IDENT[PID]: MESSAGE" into out (room for
 * MT_DLV_LINE_MAX + 1 bytes, NUL-terminated), *out_len its length. The time
 * is UTC to the microsecond, so mt_dlv_parse reads it back exactly and the
 * line (its fingerprint) is the same on every read of the entry. A host
 * that is not one token becomes "-"; a PID that is not digits is left out.
 */
enum mt_jline_kind mt_journal_line(const struct mt_jentry *e, char *out,
    size_t *out_len);

struct sd_journal;

struct mt_journal {
	struct sd_journal *j;
	char *dir;		/* NULL: this machine's system journal */
	int take_current;	/* the entry we stand on is not handed out yet */
	int moved;		/* entries taken since the last save */
	char msg[MT_DLV_LINE_MAX + 1];	/* MESSAGE, one byte more than fits */
	char line[MT_DLV_LINE_MAX + 1];
	char err[256];
	char warn[512];		/* set by open: the saved cursor was unusable,
				 * or no journal file is readable */
	long postfix_uid;	/* user postfix's uid, -1 when there is none */
};

/*
 * Opens the journal files in dir (NULL: the system journal), entries of
 * facility mail only, and stands after the cursor the state file holds:
 * the saved entry itself was applied and is skipped; when it is gone
 * (vacuumed, or a cursor of another journal) the first entry at or after
 * its time comes next. Without a usable cursor it starts at the head, as
 * the file follower starts a file it has no position for at 0, with
 * jr->warn saying why when there was a state. 0, or -1 with jr->err.
 */
int mt_journal_open(struct mt_journal *jr, const char *dir, const char *state);

/*
 * The next entry as a line: 1 with *line, *len (valid until the next
 * call) and *kind from mt_journal_line, 0 when nothing new is there, -1
 * with jr->err.
 */
int mt_journal_next(struct mt_journal *jr, const char **line, size_t *len,
    enum mt_jline_kind *kind);

/* Waits up to timeout_ms for the journal to change (new entries, files
 * rotated or added). 0, or -1 with jr->err. */
int mt_journal_wait(struct mt_journal *jr, int timeout_ms);

/* Writes "cursor CURSOR" of the last entry taken, atomically; nothing
 * when no entry was taken since the last save. 0, or -1 with jr->err. */
int mt_journal_save(struct mt_journal *jr, const char *state);
void mt_journal_close(struct mt_journal *jr);

#endif
