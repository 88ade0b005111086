/*
 * One Postfix log line to one delivery result. Pure and bounded: works on
 * the caller's bytes, writes only into the fixed fields of struct mt_dlv,
 * and treats every byte as untrusted (a log can hold anything a client
 * managed to get logged).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>
#include <time.h>

#include "delivery.h"
#include "../common/cursor.h"
#include "../common/logtime.h"
#include "../common/text.h"

/* Timestamp, host and "tag[pid]: "; the tag without [pid] into service. */
static int
line_prefix(struct mt_cur *c, int64_t now_ms, struct mt_dlv *d,
    const char **tag, size_t *tag_len)
{
	const char *q;

	if (mt_log_time(&c->p, c->end, now_ms, &d->t_ms) ||
	    mt_cur_expect(c, ' '))
		return -1;
	while (c->p < c->end && *c->p != ' ')	/* host */
		c->p++;
	if (mt_cur_expect(c, ' '))
		return -1;
	*tag = c->p;
	while (c->p < c->end && *c->p != ' ' && *c->p != ':' && *c->p != '[')
		c->p++;
	if (c->p == *tag || c->p >= c->end)
		return -1;
	*tag_len = (size_t)(c->p - *tag);
	mt_text_header(d->service, sizeof(d->service), *tag, *tag_len);
	if (*c->p == '[') {
		q = memchr(c->p, ']', (size_t)(c->end - c->p));
		if (q == NULL)
			return -1;
		c->p = q + 1;
	}
	if (!mt_cur_at(c, ": "))
		return -1;
	c->p += 2;
	return 0;
}

static int
word_is(const char *w, size_t n, const char *lit)
{
	return strlen(lit) == n && memcmp(w, lit, n) == 0;
}

/*
 * The Postfix 3.7 programs that log "QUEUEID: to=..., status=..." (qmgr
 * also "from=..., status=expired"). Anything else that writes such a line,
 * postfix/smtpd or postfix/postlog included, is not Postfix's word on a
 * delivery.
 */
static const char *const delivery_programs[] = {
	"smtp", "lmtp", "local", "virtual", "pipe", "error", "retry",
	"discard", "qmgr", "oqmgr",
};

static const char *const pickup_program[] = { "pickup" };

/*
 * "NAME/DAEMON" or "NAME/SERVICE/DAEMON" (master.cf's stock
 * "-o syslog_name=postfix/$service_name"): NAME must be one of names and
 * DAEMON one of programs.
 */
static int
trusted_daemon(const char *tag, size_t n, char *const *names, size_t n_names,
    const char *const *programs, size_t n_programs)
{
	const char *slash = memchr(tag, '/', n), *daemon;
	size_t i, daemon_len;
	int name_ok = 0;

	if (slash == NULL)
		return 0;
	for (i = 0; i < n_names && !name_ok; i++)
		name_ok = word_is(tag, (size_t)(slash - tag), names[i]);
	if (!name_ok)
		return 0;
	daemon = memrchr(tag, '/', n);
	daemon++;
	daemon_len = (size_t)(tag + n - daemon);
	for (i = 0; i < n_programs; i++)
		if (word_is(daemon, daemon_len, programs[i]))
			return 1;
	return 0;
}

/*
 * pickup on a message postsuper -r requeued: "NEWID: uid=0 from=<...>
 * orig_id=OLDID". The sender may hold anything, so orig_id counts only as
 * the line's last field.
 */
static enum mt_dlv_kind
requeue(struct mt_cur *c, struct mt_dlv *d)
{
	static const char key[] = " orig_id=";
	const char *p = c->end, *q;

	while (p > c->p && isalnum((unsigned char)p[-1]))
		p--;
	q = p - (sizeof(key) - 1);
	if (p == c->end || q < c->p || memcmp(q, key, sizeof(key) - 1) != 0 ||
	    (size_t)(c->end - p) >= sizeof(d->orig_qid))
		return MT_DLV_OTHER;
	memcpy(d->orig_qid, p, (size_t)(c->end - p));
	return MT_DLV_REQUEUE;
}

/* lmtp, local and virtual store mail in a mailbox: their "sent" is a
 * delivery. */
static int
mailbox_daemon(const char *service)
{
	const char *d = strrchr(service, '/');

	d = d ? d + 1 : service;
	return strcmp(d, "lmtp") == 0 || strcmp(d, "local") == 0 ||
	    strcmp(d, "virtual") == 0;
}

/*
 * Dovecot's LMTP answers "250 2.0.0 <rcpt> SESSION Saved"; SESSION is the
 * ID its own log lines carry for the delivery. Kept only when it has that
 * shape (base64 characters, and ":R2" for a later recipient).
 */
static void
lmtp_session(struct mt_dlv *d)
{
	const char *p = d->text, *e, *sp;
	size_t n;

	if (strncmp(p, "250 ", 4) != 0 || (p = strstr(p, "> ")) == NULL)
		return;
	p += 2;
	if ((sp = strchr(p, ' ')) == NULL || strcmp(sp, " Saved") != 0)
		return;
	e = sp;
	n = (size_t)(e - p);
	if (n == 0 || n >= sizeof(d->session))
		return;
	for (const char *q = p; q < e; q++)
		if (!isalnum((unsigned char)*q) && *q != '+' && *q != '/' &&
		    *q != ':' && *q != '=')
			return;
	memcpy(d->session, p, n);
	d->session[n] = '\0';
}

/*
 * Past "<...>". Postfix logs addresses in quoted (external) form, so a
 * '>' or ", " of the address sits inside "..." (with \ escapes) or a
 * [domain literal]; the first '>' outside both closes the value.
 */
static int
skip_angle(struct mt_cur *c)
{
	char close = 0;		/* '"' or ']' while inside one */

	for (c->p++; c->p < c->end; c->p++) {
		if (close != 0) {
			if (*c->p == '\\' && c->p + 1 < c->end)
				c->p++;
			else if (*c->p == close)
				close = 0;
		} else if (*c->p == '"') {
			close = '"';
		} else if (*c->p == '[') {
			close = ']';
		} else if (*c->p == '>') {
			c->p++;
			return 0;
		}
	}
	return -1;
}

/*
 * Past a plain value such as "mx.example.org[203.0.113.5]:25" or
 * "1 (queue active)": up to ", " or the end, with [...] and (...) as
 * units. An unclosed group is a line we cannot read.
 */
static int
skip_plain(struct mt_cur *c)
{
	int parens = 0, bracket = 0;

	for (; c->p < c->end; c->p++) {
		if (bracket) {
			bracket = *c->p != ']';
		} else if (*c->p == '[') {
			bracket = 1;
		} else if (*c->p == '(') {
			if (++parens > 64)
				return -1;
		} else if (*c->p == ')' && parens > 0) {
			parens--;
		} else if (parens == 0 && mt_cur_at(c, ", ")) {
			return 0;
		}
	}
	return parens == 0 && !bracket ? 0 : -1;
}

static int
status_of(const char *w, size_t n, enum mt_dlv_status *s)
{
	static const struct { const char *w; enum mt_dlv_status s; } tab[] = {
		{ "sent", MT_DLV_SENT }, { "deferred", MT_DLV_DEFERRED },
		{ "bounced", MT_DLV_BOUNCED }, { "expired", MT_DLV_EXPIRED },
	};

	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (word_is(w, n, tab[i].w)) {
			*s = tab[i].s;
			return 0;
		}
	return -1;
}

/* "WORD" then " (text)" or ", text" to the end of the line: the last
 * field, so whatever the text holds is never read as fields. */
static int
status_value(struct mt_cur *c, struct mt_dlv *d)
{
	const char *w = c->p, *t;
	size_t tn;

	while (c->p < c->end && islower((unsigned char)*c->p))
		c->p++;
	if (status_of(w, (size_t)(c->p - w), &d->status))
		return -1;
	if (mt_cur_at(c, " (")) {
		t = c->p + 2;
		tn = (size_t)(c->end - t);
		if (tn > 0 && t[tn - 1] == ')')
			tn--;
	} else if (mt_cur_at(c, ", ")) {
		t = c->p + 2;
		tn = (size_t)(c->end - t);
	} else if (c->p == c->end) {
		t = c->p;
		tn = 0;
	} else
		return -1;
	mt_text_header(d->text, sizeof(d->text), t, tn);
	c->p = c->end;
	return 0;
}

/* "name=" with name in [a-z_]+; 0 and the name, or -1. */
static int
field_name(struct mt_cur *c, const char **name, size_t *len)
{
	*name = c->p;
	while (c->p < c->end && (islower((unsigned char)*c->p) || *c->p == '_'))
		c->p++;
	*len = (size_t)(c->p - *name);
	if (*len == 0 || mt_cur_expect(c, '='))
		return -1;
	return 0;
}

/* A field's value: the text inside <...>, or the plain text. */
static int
field_value(struct mt_cur *c, const char **v, size_t *vn)
{
	if (c->p < c->end && *c->p == '<') {
		*v = c->p + 1;
		if (skip_angle(c))
			return -1;
		*vn = (size_t)(c->p - 1 - *v);
	} else {
		*v = c->p;
		if (skip_plain(c))
			return -1;
		*vn = (size_t)(c->p - *v);
	}
	return 0;
}

/*
 * relay=NAME[ADDR]:PORT or NAME[ADDR]: the address between the last
 * brackets when it is one (Postfix writes IPv6 without a prefix; a unix
 * socket's path or "local" is none). *ip is "" otherwise.
 */
static void
relay_ip(const char *v, size_t n, char *ip, size_t iplen)
{
	const char *open = NULL, *close = NULL;
	unsigned char bin[16];
	char buf[64];
	size_t len;

	ip[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (v[i] == '[')
			open = v + i;
		else if (v[i] == ']' && open != NULL)
			close = v + i;
	}
	if (open == NULL || close == NULL || close < open)
		return;
	len = (size_t)(close - open - 1);
	if (len == 0 || len >= sizeof(buf) || len >= iplen)
		return;
	memcpy(buf, open + 1, len);
	buf[len] = '\0';
	if (inet_pton(strchr(buf, ':') ? AF_INET6 : AF_INET, buf, bin) == 1)
		memcpy(ip, buf, len + 1);
}

/*
 * The fields after "QUEUEID: ", which start with to= or from=. A to= line
 * must end in status=; a from= line is a result only with status=expired
 * (qmgr: "from=<s>, status=expired, returned to sender").
 */
static enum mt_dlv_kind
result_fields(struct mt_cur *c, struct mt_dlv *d)
{
	const char *name, *v;
	size_t nn, vn;
	int whole = mt_cur_at(c, "from=");

	for (int first = 1;; first = 0) {
		if (!first) {
			if (c->p >= c->end)	/* no status= */
				return whole ? MT_DLV_OTHER : MT_DLV_BAD;
			if (!mt_cur_at(c, ", "))
				return MT_DLV_BAD;
			c->p += 2;
		}
		if (field_name(c, &name, &nn))
			return MT_DLV_BAD;
		if (word_is(name, nn, "status")) {
			if (status_value(c, d) || (whole &&
			    d->status != MT_DLV_EXPIRED))
				return MT_DLV_BAD;
			break;
		}
		if ((word_is(name, nn, "to") || word_is(name, nn, "from")) !=
		    first || (first && (c->p >= c->end || *c->p != '<')) ||
		    field_value(c, &v, &vn))
			return MT_DLV_BAD;
		if (word_is(name, nn, "to") || word_is(name, nn, "orig_to")) {
			char *dst = nn == 2 ? d->rcpt : d->orig_rcpt;
			size_t size = nn == 2 ? sizeof(d->rcpt)
			    : sizeof(d->orig_rcpt);

			if (mt_text_address(dst, size, v, vn) == (size_t)-1)
				return MT_DLV_BAD;
		} else if (word_is(name, nn, "relay")) {
			mt_text_header(d->relay, sizeof(d->relay), v, vn);
			relay_ip(v, vn, d->ip, sizeof(d->ip));
		}
		else if (word_is(name, nn, "delay"))
			mt_text_header(d->delay, sizeof(d->delay), v, vn);
		else if (word_is(name, nn, "dsn"))
			mt_text_header(d->dsn, sizeof(d->dsn), v, vn);
	}
	if (whole)
		d->orig_rcpt[0] = '\0';
	d->whole_message = whole;
	return MT_DLV_RESULT;
}

enum mt_dlv_kind
mt_dlv_parse(const char *line, size_t len, int64_t now_ms,
    char *const *names, size_t n_names, struct mt_dlv *d)
{
	struct mt_cur c = { line, line + len };
	const char *q, *tag;
	size_t tag_len;
	enum mt_dlv_kind k;

	memset(d, 0, sizeof(*d));
	d->t_ms = -1;
	if (len == 0 || len > MT_DLV_LINE_MAX || memchr(line, '\0', len))
		return MT_DLV_BAD;
	if (line_prefix(&c, now_ms, d, &tag, &tag_len))
		return MT_DLV_BAD;
	q = c.p;
	while (c.p < c.end && isalnum((unsigned char)*c.p))
		c.p++;
	if (c.p == q || (size_t)(c.p - q) >= sizeof(d->qid) ||
	    !mt_cur_at(&c, ": "))
		return MT_DLV_OTHER;	/* "connect from", "warning: ", ... */
	memcpy(d->qid, q, (size_t)(c.p - q));
	c.p += 2;
	if (mt_cur_at(&c, "uid=") &&
	    trusted_daemon(tag, tag_len, names, n_names,
	    pickup_program, 1))
		return requeue(&c, d);
	if (!mt_cur_at(&c, "to=") && !mt_cur_at(&c, "from="))
		return MT_DLV_OTHER;	/* "removed", "message-id=<..>" */
	k = result_fields(&c, d);
	if (trusted_daemon(tag, tag_len, names, n_names, delivery_programs,
	    sizeof(delivery_programs) / sizeof(delivery_programs[0]))) {
		if (k == MT_DLV_RESULT && d->status == MT_DLV_SENT &&
		    mailbox_daemon(d->service)) {
			d->status = MT_DLV_DELIVERED;
			lmtp_session(d);
		}
		return k;
	}
	memset(d, 0, sizeof(*d));
	d->t_ms = -1;
	return k == MT_DLV_RESULT ? MT_DLV_FOREIGN : MT_DLV_OTHER;
}

const char *
mt_dlv_event_name(enum mt_dlv_status s)
{
	return s == MT_DLV_SENT ? "SEND" : s == MT_DLV_DELIVERED ? "DELIVER" :
	    s == MT_DLV_DEFERRED ? "DEFER" : "BOUNCE";
}

const char *
mt_dlv_status_name(enum mt_dlv_status s)
{
	return s == MT_DLV_SENT ? "sent" : s == MT_DLV_DELIVERED ? "delivered" :
	    s == MT_DLV_DEFERRED ? "deferred" : "bounced";
}
