/*
 * One Dovecot log line to one mailbox event, for the lines that
 * mailbox/mailtrail.lua writes. Pure and bounded like delivery/logline.c:
 * works on the caller's bytes, writes only the fixed fields of struct
 * mt_dove_event, and trusts no byte (users name their own mailboxes, and
 * syslog takes lines from anybody).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "dovecot.h"
#include "../common/cursor.h"
#include "../common/logtime.h"
#include "../common/text.h"

#define MARKER "mailtrail: "	/* then "v=" */
#define U32_MAX 4294967295UL

/* A timestamp and the space after it; -1 leaves c where it was. */
static int
log_time(struct mt_cur *c, int64_t now_ms, int64_t *t_ms)
{
	struct mt_cur save = *c;
	int rc;

	rc = mt_log_time(&c->p, c->end, now_ms, t_ms);
	if (rc == 0 && mt_cur_expect(c, ' ') == 0)
		return 0;
	*c = save;
	*t_ms = -1;
	return -1;
}

/*
 * Dovecot's log prefix, "imap(alice)<pid><session>: ": the first ": " of
 * what follows, with no space before it. 1 and past it, or 0.
 */
static int
dovecot_prefix(struct mt_cur *c)
{
	const char *sp = memchr(c->p, ' ', (size_t)(c->end - c->p));

	if (sp == NULL || sp - c->p < 2 || sp[-1] != ':')
		return 0;
	c->p = sp + 1;
	return 1;
}

/*
 * "HOST TAG[PID]: " of a syslog line: 0 and *ours (TAG is "dovecot",
 * Dovecot's default syslog ident), or -1.
 */
static int
syslog_tag(struct mt_cur *c, int *ours)
{
	const char *tag;
	size_t n;

	while (c->p < c->end && *c->p != ' ')	/* host */
		c->p++;
	if (mt_cur_expect(c, ' '))
		return -1;
	for (tag = c->p; c->p < c->end && *c->p != ' ' && *c->p != ':' &&
	    *c->p != '['; c->p++)
		;
	n = (size_t)(c->p - tag);
	if (n == 0)
		return -1;
	*ours = n == 7 && memcmp(tag, "dovecot", 7) == 0;
	if (c->p < c->end && *c->p == '[') {
		c->p++;
		if (c->p >= c->end || !isdigit((unsigned char)*c->p))
			return -1;	/* "[pid]" */
		while (c->p < c->end && isdigit((unsigned char)*c->p))
			c->p++;
		if (mt_cur_expect(c, ']'))
			return -1;
	}
	return mt_cur_skip(c, ": ");
}

/*
 * Moves c to the marker when the line is one of ours in shape: 1 with
 * *ours (0 for a syslog tag other than dovecot), or 0.
 */
static int
find_marker(struct mt_cur *c, int64_t now_ms, int64_t *t_ms, int *ours)
{
	int timed = log_time(c, now_ms, t_ms) == 0;
	struct mt_cur word = *c;

	if (dovecot_prefix(&word)) {	/* log_path: no host, no tag */
		*c = word;
		*ours = 1;
		return mt_cur_skip(c, "Info: ") == 0 &&
		    mt_cur_at(c, MARKER "v=");
	}
	if (!timed || syslog_tag(c, ours) || !dovecot_prefix(c))
		return 0;
	(void)mt_cur_skip(c, "Info: ");	/* syslog leaves it out; stderr to
					 * journald to syslog keeps it */
	return mt_cur_at(c, MARKER "v=");
}

/* ASCII only, whatever the locale says of bytes >= 0x80. */
static int
ascii_alnum(unsigned char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= 'a' && ch <= 'z');
}

static int
hex_value(unsigned char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f')
		return (ch | 0x20) - 'a' + 10;
	return -1;
}

/*
 * Percent-decodes v[0..vn) into dst (NUL-terminated): the bytes the script
 * leaves alone, and %XX. Anything else, %00, or more than dstsize - 1
 * bytes: -1.
 */
static int
decode(const char *v, size_t vn, char *dst, size_t dstsize, size_t *n)
{
	size_t o = 0;

	for (size_t i = 0; i < vn; i++) {
		unsigned char ch = (unsigned char)v[i];
		int hi, lo;

		if (ch == '%') {
			if (vn - i < 3 ||
			    (hi = hex_value((unsigned char)v[i + 1])) < 0 ||
			    (lo = hex_value((unsigned char)v[i + 2])) < 0)
				return -1;
			ch = (unsigned char)(hi * 16 + lo);
			if (ch == '\0')
				return -1;	/* no Dovecot string has one */
			i += 2;
		} else if (!ascii_alnum(ch) && (ch == '\0' ||
		    strchr("._@+/:-", ch) == NULL))
			return -1;
		if (o + 1 >= dstsize)
			return -1;
		dst[o++] = (char)ch;
	}
	dst[o] = '\0';
	*n = o;
	return 0;
}

/* Decoded, then cleaned for display (controls, bad UTF-8 -> '?'). */
static int
text_field(const char *v, size_t vn, char *dst, size_t dstsize)
{
	char tmp[MT_DOVE_BOX_MAX];
	size_t n;

	if (dstsize > sizeof(tmp) || decode(v, vn, tmp, dstsize, &n))
		return -1;
	mt_text_header(dst, dstsize, tmp, n);
	return 0;
}

/* Length of the valid UTF-8 sequence at s[0..n), 0 when there is none
 * (overlong forms, surrogates and values past U+10FFFF included). */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	size_t len;
	unsigned int cp;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

/*
 * The mailbox name decoded, with control bytes and bytes that are not
 * UTF-8 as '?' but spaces kept as they are: every name Dovecot lets a user
 * create (UTF-8, no controls) comes out exactly, so a caller can still
 * hand it to doveadm.
 */
static int
box_field(const char *v, size_t vn, char *dst, size_t dstsize)
{
	size_t n, len;

	if (decode(v, vn, dst, dstsize, &n))
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)dst[i];

		if (ch >= 0x80 && (len = utf8_len((unsigned char *)dst + i,
		    n - i)) > 0)
			i += len - 1;
		else if (ch < 0x20 || ch >= 0x7f)
			dst[i] = '?';
	}
	return 0;
}

/* 1 .. 2^32-1 in decimal, no sign, no leading zero. */
static int
number32(const char *v, size_t vn, unsigned long *out)
{
	uint64_t x = 0;

	if (vn == 0 || vn > 10 || v[0] == '0')
		return -1;
	for (size_t i = 0; i < vn; i++) {
		if (!isdigit((unsigned char)v[i]))
			return -1;
		x = x * 10 + (uint64_t)(v[i] - '0');
	}
	if (x > U32_MAX)
		return -1;
	*out = (unsigned long)x;
	return 0;
}

static const char *const ev_names[] = {
	[MT_DOVE_DELIVER] = "deliver", [MT_DOVE_APPEND] = "append",
	[MT_DOVE_READ] = "read", [MT_DOVE_TRASH] = "trash",
	[MT_DOVE_EXPUNGE] = "expunge",
};

static int
ev_value(const char *v, size_t vn, enum mt_dove_ev *ev)
{
	for (int i = MT_DOVE_DELIVER; i <= MT_DOVE_EXPUNGE; i++)
		if (strlen(ev_names[i]) == vn &&
		    memcmp(ev_names[i], v, vn) == 0) {
			*ev = (enum mt_dove_ev)i;
			return 0;
		}
	return -1;
}

/* Dovecot's service names: "imap", "pop3", "lmtp", "lda", "doveadm" ... */
static int
service_value(const char *v, size_t vn, char *dst, size_t dstsize)
{
	size_t n;

	if (decode(v, vn, dst, dstsize, &n))
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!ascii_alnum((unsigned char)dst[i]) && dst[i] != '-' &&
		    dst[i] != '_' && dst[i] != '.')
			return -1;
	return 0;
}

/* "-" (none) or an address inet_pton takes. */
static int
rip_value(const char *v, size_t vn, char *dst, size_t dstsize)
{
	unsigned char addr[16];
	size_t n;

	if (vn == 1 && v[0] == '-') {
		dst[0] = '\0';
		return 0;
	}
	if (decode(v, vn, dst, dstsize, &n) ||
	    (inet_pton(AF_INET, dst, addr) != 1 &&
	    inet_pton(AF_INET6, dst, addr) != 1)) {
		dst[0] = '\0';
		return -1;
	}
	return 0;
}

enum field {
	F_V, F_EV, F_SERVICE, F_USER, F_SESSION, F_RIP, F_UIDVALIDITY, F_UID,
	F_BOX, F_COUNT
};

static const char *const field_names[F_COUNT] = {
	"v=", "ev=", "service=", "user=", "session=", "rip=", "uidvalidity=",
	"uid=", "box=",
};

static int
field_value(enum field f, const char *v, size_t vn, struct mt_dove_event *e)
{
	switch (f) {
	case F_V:
		return vn == 1 && v[0] == '1' ? 0 : -1;
	case F_EV:
		return ev_value(v, vn, &e->ev);
	case F_SERVICE:
		return service_value(v, vn, e->service, sizeof(e->service));
	case F_USER:
		return text_field(v, vn, e->user, sizeof(e->user)) == 0 &&
		    e->user[0] != '\0' ? 0 : -1;
	case F_SESSION:
		if (vn == 1 && v[0] == '-')
			return 0;
		return text_field(v, vn, e->session, sizeof(e->session));
	case F_RIP:
		return rip_value(v, vn, e->rip, sizeof(e->rip));
	case F_UIDVALIDITY:
		return number32(v, vn, &e->uidvalidity);
	case F_UID:
		return number32(v, vn, &e->uid);
	case F_BOX:
		return box_field(v, vn, e->box, sizeof(e->box));
	default:
		return -1;
	}
}

/*
 * "v=1 ev=.. service=.. user=.. session=.. rip=.. uidvalidity=.. uid=..
 * box=..", exactly so: each field once, in this order, one space apart,
 * box last and running to the end of the line.
 */
static enum mt_dove_kind
event_fields(struct mt_cur *c, struct mt_dove_event *e)
{
	for (int f = 0; f < F_COUNT; f++) {
		const char *v;

		if ((f > 0 && mt_cur_expect(c, ' ')) ||
		    mt_cur_skip(c, field_names[f]))
			return MT_DOVE_BAD;
		for (v = c->p; c->p < c->end && *c->p != ' '; c->p++)
			;
		if (c->p == v || field_value((enum field)f, v,
		    (size_t)(c->p - v), e))
			return MT_DOVE_BAD;
	}
	return c->p == c->end ? MT_DOVE_EVENT : MT_DOVE_BAD;
}

enum mt_dove_kind
mt_dove_parse(const char *line, size_t len, int64_t now_ms,
    struct mt_dove_event *e)
{
	struct mt_cur c;
	int64_t t_ms = -1;
	int ours = 0;
	enum mt_dove_kind k;

	memset(e, 0, sizeof(*e));
	e->t_ms = -1;
	if (line == NULL || len == 0)
		return MT_DOVE_OTHER;
	c.p = line;
	c.end = line + len;
	if (!find_marker(&c, now_ms, &t_ms, &ours))
		return MT_DOVE_OTHER;
	c.p += strlen(MARKER);
	k = len > MT_DOVE_LINE_MAX ? MT_DOVE_BAD : event_fields(&c, e);
	if (k == MT_DOVE_EVENT && ours) {
		e->t_ms = t_ms;
		return k;
	}
	memset(e, 0, sizeof(*e));
	e->t_ms = -1;
	if (!ours)
		return k == MT_DOVE_EVENT ? MT_DOVE_FOREIGN : MT_DOVE_OTHER;
	return k;
}

const char *
mt_dove_ev_name(enum mt_dove_ev ev)
{
	if ((int)ev < MT_DOVE_DELIVER || (int)ev > MT_DOVE_EXPUNGE)
		return "unknown";
	return ev_names[ev];
}
