/*
 * One Postfix log line to one delivery result. Pure and bounded: works on
 * the caller's bytes, writes only into the fixed fields of struct mt_dlv,
 * and treats every byte as untrusted (a log can hold anything a client
 * managed to get logged).
 */
#include <ctype.h>
#include <string.h>
#include <time.h>

#include "delivery.h"
#include "../common/text.h"

struct cur {
	const char *p, *end;
};

static int
at(const struct cur *c, const char *lit)
{
	size_t n = strlen(lit);

	return (size_t)(c->end - c->p) >= n && memcmp(c->p, lit, n) == 0;
}

static int
digits(struct cur *c, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (c->p >= c->end || !isdigit((unsigned char)*c->p))
			return -1;
		v = v * 10 + (*c->p++ - '0');
	}
	*out = v;
	return 0;
}

static int
expect(struct cur *c, char ch)
{
	if (c->p >= c->end || *c->p != ch)
		return -1;
	c->p++;
	return 0;
}

static void
skip_fraction(struct cur *c, int *ms)
{
	int scale = 100;

	*ms = 0;
	if (c->p >= c->end || *c->p != '.')
		return;
	c->p++;
	while (c->p < c->end && isdigit((unsigned char)*c->p)) {
		*ms += (*c->p - '0') * scale;
		scale /= 10;
		c->p++;
	}
}

static int
month_of(const char *s)
{
	static const char names[] = "JanFebMarAprMayJunJulAugSepOctNovDec";

	for (int i = 0; i < 12; i++)
		if (memcmp(names + 3 * i, s, 3) == 0)
			return i;
	return -1;
}

/* "2026-11-21T23:15:00[.123456](Z|+HH:MM|-HH:MM)" */
static int
iso_time(struct cur *c, int64_t *t_ms)
{
	struct tm tm = { 0 };
	int y, mo, d, h, mi, s, ms, oh = 0, om = 0, sign = 0;

	if (digits(c, 4, &y) || expect(c, '-') || digits(c, 2, &mo) ||
	    expect(c, '-') || digits(c, 2, &d) || expect(c, 'T') ||
	    digits(c, 2, &h) || expect(c, ':') || digits(c, 2, &mi) ||
	    expect(c, ':') || digits(c, 2, &s))
		return -1;
	skip_fraction(c, &ms);
	if (c->p < c->end && *c->p == 'Z') {
		c->p++;
	} else if (c->p < c->end && (*c->p == '+' || *c->p == '-')) {
		sign = *c->p++ == '-' ? -1 : 1;
		if (digits(c, 2, &oh) || (c->p < c->end && *c->p == ':' &&
		    (c->p++, 0)) || digits(c, 2, &om))
			return -1;
	}
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = s;
	*t_ms = ((int64_t)timegm(&tm) - sign * (oh * 3600 + om * 60)) * 1000 + ms;
	return 0;
}

/* "Nov 21 23:15:00[.123456]" in local time; the year is the one that puts
 * it closest before now (a log read on Jan 1 may hold Dec 31). */
static int
syslog_time(struct cur *c, int64_t now_ms, int64_t *t_ms)
{
	struct tm tm = { 0 }, nowtm;
	time_t now = (time_t)(now_ms / 1000), t;
	int mon, d, h, mi, s, ms;

	if (c->end - c->p < 15 || (mon = month_of(c->p)) < 0)
		return -1;
	c->p += 3;
	if (expect(c, ' '))
		return -1;
	if (c->p < c->end && *c->p == ' ')
		c->p++;		/* "Nov  1" */
	if (c->p + 1 < c->end && isdigit((unsigned char)c->p[1])) {
		if (digits(c, 2, &d))
			return -1;
	} else if (digits(c, 1, &d))
		return -1;
	if (expect(c, ' ') || digits(c, 2, &h) || expect(c, ':') ||
	    digits(c, 2, &mi) || expect(c, ':') || digits(c, 2, &s))
		return -1;
	skip_fraction(c, &ms);
	if (d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
		return -1;
	localtime_r(&now, &nowtm);
	tm.tm_year = nowtm.tm_year;
	tm.tm_mon = mon;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = s;
	tm.tm_isdst = -1;
	t = mktime(&tm);
	if (t > now + 86400) {
		tm.tm_year--;
		tm.tm_isdst = -1;
		t = mktime(&tm);
	}
	*t_ms = (int64_t)t * 1000 + ms;
	return 0;
}

/* Timestamp, host and "tag[pid]: "; the tag without [pid] into service. */
static int
line_prefix(struct cur *c, int64_t now_ms, struct mt_dlv *d)
{
	const char *tag, *q;

	if (c->p < c->end && isdigit((unsigned char)*c->p)) {
		if (iso_time(c, &d->t_ms))
			return -1;
	} else if (syslog_time(c, now_ms, &d->t_ms))
		return -1;
	if (expect(c, ' '))
		return -1;
	while (c->p < c->end && *c->p != ' ')	/* host */
		c->p++;
	if (expect(c, ' '))
		return -1;
	tag = c->p;
	while (c->p < c->end && *c->p != ' ' && *c->p != ':' && *c->p != '[')
		c->p++;
	if (c->p == tag || c->p >= c->end)
		return -1;
	mt_text_header(d->service, sizeof(d->service), tag,
	    (size_t)(c->p - tag));
	if (*c->p == '[') {
		q = memchr(c->p, ']', (size_t)(c->end - c->p));
		if (q == NULL)
			return -1;
		c->p = q + 1;
	}
	if (!at(c, ": "))
		return -1;
	c->p += 2;
	return 0;
}

/* "<addr>" up to the '>' that is followed by ", name=" or the end. */
static int
angle_value(struct cur *c, char *dst, size_t dstsize)
{
	const char *start, *q;

	if (expect(c, '<'))
		return -1;
	start = c->p;
	for (q = c->p; q < c->end; q++) {
		if (*q != '>')
			continue;
		if (q + 1 == c->end)
			break;
		if (q + 2 < c->end && q[1] == ',' && q[2] == ' ') {
			const char *n = q + 3;

			while (n < c->end && (islower((unsigned char)*n) ||
			    *n == '_'))
				n++;
			if (n < c->end && *n == '=' && n > q + 3)
				break;
		}
	}
	if (q >= c->end)
		return -1;
	if (mt_text_address(dst, dstsize, start, (size_t)(q - start)) ==
	    (size_t)-1)
		return -1;
	c->p = q + 1;
	return 0;
}

/* A plain value up to ", " or the end of the line. */
static void
plain_value(struct cur *c, char *dst, size_t dstsize)
{
	const char *start = c->p;

	while (c->p < c->end && !(c->p[0] == ',' && c->p + 1 < c->end &&
	    c->p[1] == ' '))
		c->p++;
	mt_text_header(dst, dstsize, start, (size_t)(c->p - start));
}

static int
status_of(const char *w, size_t n, enum mt_dlv_status *s)
{
	static const struct { const char *w; enum mt_dlv_status s; } tab[] = {
		{ "sent", MT_DLV_SENT }, { "deferred", MT_DLV_DEFERRED },
		{ "bounced", MT_DLV_BOUNCED }, { "expired", MT_DLV_EXPIRED },
	};

	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (strlen(tab[i].w) == n && memcmp(tab[i].w, w, n) == 0) {
			*s = tab[i].s;
			return 0;
		}
	return -1;
}

/* "status=WORD" then " (text)" or ", text" to the end of the line. */
static int
status_value(struct cur *c, struct mt_dlv *d)
{
	const char *w = c->p, *t;
	size_t tn;

	while (c->p < c->end && islower((unsigned char)*c->p))
		c->p++;
	if (status_of(w, (size_t)(c->p - w), &d->status))
		return -1;
	if (at(c, " (")) {
		t = c->p + 2;
		tn = (size_t)(c->end - t);
		if (tn > 0 && t[tn - 1] == ')')
			tn--;
	} else if (at(c, ", ")) {
		t = c->p + 2;
		tn = (size_t)(c->end - t);
	} else {
		t = c->p;
		tn = 0;
	}
	mt_text_header(d->text, sizeof(d->text), t, tn);
	c->p = c->end;
	return 0;
}

/* The ", name=value" fields after to=<...> or from=<...>. */
static int
fields(struct cur *c, struct mt_dlv *d)
{
	char skip[8];

	while (c->p < c->end) {
		if (!at(c, ", "))
			return -1;
		c->p += 2;
		if (at(c, "orig_to=")) {
			c->p += 8;
			if (angle_value(c, d->orig_rcpt, sizeof(d->orig_rcpt)))
				return -1;
		} else if (at(c, "relay=")) {
			c->p += 6;
			plain_value(c, d->relay, sizeof(d->relay));
		} else if (at(c, "delay=")) {
			c->p += 6;
			plain_value(c, d->delay, sizeof(d->delay));
		} else if (at(c, "dsn=")) {
			c->p += 4;
			plain_value(c, d->dsn, sizeof(d->dsn));
		} else if (at(c, "status=")) {
			c->p += 7;
			return status_value(c, d);
		} else {
			plain_value(c, skip, sizeof(skip));  /* delays=, conn_use=.. */
		}
	}
	return -1;
}

int
mt_dlv_parse(const char *line, size_t len, int64_t now_ms, struct mt_dlv *d)
{
	struct cur c = { line, line + len };
	const char *q;

	memset(d, 0, sizeof(*d));
	d->t_ms = -1;
	if (len == 0 || len > MT_DLV_LINE_MAX || memchr(line, '\0', len))
		return -1;
	if (line_prefix(&c, now_ms, d))
		return -1;
	q = c.p;
	while (c.p < c.end && isalnum((unsigned char)*c.p))
		c.p++;
	if (c.p == q || (size_t)(c.p - q) >= sizeof(d->qid) || !at(&c, ": "))
		return 0;	/* "connect from", "warning: ", statistics */
	memcpy(d->qid, q, (size_t)(c.p - q));
	c.p += 2;
	if (at(&c, "to=")) {
		c.p += 3;
		if (angle_value(&c, d->rcpt, sizeof(d->rcpt)) || fields(&c, d))
			return -1;
		return 1;
	}
	/* qmgr: "QID: from=<s>, status=expired, returned to sender" */
	if (at(&c, "from=<") && (q = memmem(c.p, (size_t)(c.end - c.p),
	    ", status=expired", 16)) != NULL) {
		c.p = q + 9;
		if (status_value(&c, d))
			return -1;
		d->whole_message = 1;
		return 1;
	}
	return 0;
}

const char *
mt_dlv_event_name(enum mt_dlv_status s)
{
	return s == MT_DLV_SENT ? "SEND" : s == MT_DLV_DEFERRED ? "DEFER"
	    : "BOUNCE";
}

const char *
mt_dlv_status_name(enum mt_dlv_status s)
{
	return s == MT_DLV_SENT ? "sent" : s == MT_DLV_DEFERRED ? "deferred"
	    : "bounced";
}
