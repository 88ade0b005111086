/*
 * Mailbox events from Dovecot: the lines mailbox/mailtrail.lua (Dovecot's
 * push_notification Lua driver) writes into Dovecot's log, parsed into one
 * event each. Pure and bounded: fixed buffers, no allocation, no logging.
 */
#ifndef MT_DOVECOT_H
#define MT_DOVECOT_H

#include <stddef.h>
#include <stdint.h>

#define MT_DOVE_USER_MAX 256
#define MT_DOVE_BOX_MAX 512
#define MT_DOVE_SESSION_MAX 64
#define MT_DOVE_LINE_MAX 4096	/* a longer line of ours is bad */

enum mt_dove_ev {
	MT_DOVE_DELIVER = 1,	/* MessageNew: LMTP or LDA delivery */
	MT_DOVE_APPEND,		/* MessageAppend: APPEND, COPY/MOVE target */
	MT_DOVE_READ,		/* MessageRead: \Seen set */
	MT_DOVE_TRASH,		/* MessageTrash: \Deleted set */
	MT_DOVE_EXPUNGE		/* MessageExpunge: removed from the mailbox */
};

/* One event. Strings are NUL-terminated and free of control bytes. */
struct mt_dove_event {
	int64_t t_ms;		/* log time, unix ms, -1 none (a year-less
				 * timestamp takes the year that puts it
				 * closest before now_ms) */
	enum mt_dove_ev ev;
	char service[16];	/* "imap", "pop3", "lmtp", "lda", ... */
	char user[MT_DOVE_USER_MAX];	/* decoded; cleaned like
					 * mt_text_header; never "" */
	char session[MT_DOVE_SESSION_MAX];	/* decoded, cleaned; "" none */
	char rip[64];		/* decoded, a valid IPv4/IPv6 address
				 * (inet_pton) or "" */
	unsigned long uidvalidity, uid;	/* both 1 .. 2^32-1 */
	char box[MT_DOVE_BOX_MAX];	/* decoded mailbox name, cleaned (no
					 * controls), for display only: control
					 * bytes and bad UTF-8 become '?',
					 * spaces stay, so a name Dovecot can
					 * create comes out exact */
};

enum mt_dove_kind {
	MT_DOVE_BAD = -1,	/* shaped like ours but malformed */
	MT_DOVE_OTHER = 0,	/* any other line */
	MT_DOVE_EVENT = 1,	/* a well-formed line of ours, in *e */
	MT_DOVE_FOREIGN = 2	/* a well-formed syslog line of ours whose tag
				 * is not "dovecot" (anybody can write to
				 * syslog with logger(1)); *e is left empty */
};

/*
 * Parses one log line (without its newline). Two layouts are read, each
 * after a timestamp ("Dec 02 14:31:12", "Dec  2 14:31:12", "2026-12-02
 * 14:31:12", RFC 3339 "2026-12-02T14:31:12.123+01:00"; fractions allowed):
 *
 *   log_path file  TS PREFIX: Info: mailtrail: v=1 ev=...
 *   syslog         TS HOST dovecot[PID]: PREFIX: mailtrail: v=1 ev=...
 *
 * PREFIX is Dovecot's log prefix ("imap(alice)<pid><session>"): one word
 * without ": ", never read. Dovecot's syslog lines carry no "Info: "; one
 * there is skipped (stderr through journald). A file line may also have no
 * timestamp (t_ms -1), as doveadm's own stderr. "dovecot" is Dovecot's
 * default syslog ident (instance_name); any other tag is foreign. The
 * marker counts only in that place, so text a client got logged elsewhere
 * in a line is never an event. A line with the marker is
 * MT_DOVE_BAD unless it is exactly "mailtrail: v=1 ev=E service=S user=U
 * session=S rip=R uidvalidity=N uid=N box=B" (that order, one space
 * apart, each value non-empty and percent-encoded, E a known event, N in
 * 1..2^32-1 without leading zeros, %00 refused, at most MT_DOVE_LINE_MAX
 * bytes in all). *e is filled only for MT_DOVE_EVENT.
 */
enum mt_dove_kind mt_dove_parse(const char *line, size_t len, int64_t now_ms,
    struct mt_dove_event *e);

/* "deliver", "append", "read", "trash", "expunge" ("unknown" otherwise). */
const char *mt_dove_ev_name(enum mt_dove_ev ev);

#endif
