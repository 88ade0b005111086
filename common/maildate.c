/*
 * RFC 5322 date-time, as a Deferred-Delivery header (RFC 4021) carries it:
 * "[day-of-week ,] day month year HH:MM[:SS] zone", plus the obsolete
 * forms of section 4.3: 2-digit years (00-49 are 20xx, 50-99 19xx),
 * 3-digit years (+1900), zones UT, GMT, EST..PDT and military letters
 * (A-I, K-Z, read as -0000 i.e. UTC: 4.3 calls them unreliable), and CFWS
 * (blanks, CR, LF, nested comments, quoted-pairs) between any two tokens,
 * where blanks are optional as in the obsolete syntax ("2Dec"). Names are
 * case-insensitive; "+0100" must be in one piece. A leap second (:60) is
 * read as :59, so it never moves into the next minute, day or year. Days
 * are checked against the month (leap years), years against 1900..9999, a
 * day-of-week against the date; NUL is refused anywhere. Pure arithmetic
 * (no timegm, locale or TZ), no allocation, no recursion, nothing read past
 * len; untrusted bytes.
 */
#include <stdio.h>
#include <string.h>

#include "maildate.h"

#define COMMENT_DEPTH_MAX 16

struct cur {
	const char *p, *end;
	const char *why;		/* the first failure */
};

static int
fail(struct cur *c, const char *why)
{
	if (c->why == NULL)
		c->why = why;
	return -1;
}

static int
is_alpha(char ch)
{
	ch |= 0x20;
	return ch >= 'a' && ch <= 'z';
}

static int
skip_char(struct cur *c, char ch)
{
	if (c->p >= c->end || *c->p != ch)
		return 0;
	c->p++;
	return 1;
}

/* Blanks, CR, LF and comments: "(a (nested) \) one)". */
static int
cfws(struct cur *c)
{
	int depth = 0;

	for (; c->p < c->end; c->p++) {
		switch (*c->p) {
		case ' ': case '\t': case '\r': case '\n':
			break;
		case '(':
			if (++depth > COMMENT_DEPTH_MAX)
				return fail(c, "comment too deep");
			break;
		case ')':
			if (depth == 0)
				return 0;
			depth--;
			break;
		case '\\':
			if (depth == 0)
				return 0;
			if (++c->p == c->end)
				return fail(c, "comment not closed");
			break;
		default:
			if (depth == 0)
				return 0;
		}
	}
	return depth > 0 ? fail(c, "comment not closed") : 0;
}

/* A run of digits: *n digits (capped at 99), value *v (stops growing). */
static void
number(struct cur *c, int *v, int *n)
{
	*v = 0;
	*n = 0;
	while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
		if (*v < 100000)
			*v = *v * 10 + (*c->p - '0');
		if (*n < 99)
			(*n)++;
		c->p++;
	}
}

/* A run of letters, the first 3 lower-cased into w; its length, max 4. */
static int
word(struct cur *c, char w[4])
{
	int n = 0;

	while (c->p < c->end && is_alpha(*c->p)) {
		if (n < 3)
			w[n] = (char)(*c->p | 0x20);
		if (n < 4)
			n++;
		c->p++;
	}
	w[n < 3 ? n : 3] = '\0';
	return n;
}

/* Index of the 3-letter w in names ("janfeb..."), or -1. */
static int
lookup(const char *names, const char *w)
{
	for (int i = 0; names[3 * i] != '\0'; i++)
		if (memcmp(names + 3 * i, w, 3) == 0)
			return i;
	return -1;
}

/* "+0100", "-0800", "UT", "GMT", "EST".."PDT", a military letter. */
static int
zone(struct cur *c, int *off_s)
{
	static const char names[] = "gmtestedtcstcdtmstmdtpstpdt";
	static const int hours[] = { 0, -5, -4, -6, -5, -7, -6, -8, -7 };
	char w[4];
	int v, n, i, sign;

	if (c->p < c->end && (*c->p == '+' || *c->p == '-')) {
		sign = *c->p++ == '-' ? -1 : 1;
		number(c, &v, &n);
		if (n != 4 || v % 100 > 59)
			return fail(c, "bad zone");
		*off_s = sign * (v / 100 * 3600 + v % 100 * 60);
		return 0;
	}
	n = word(c, w);
	if ((n == 1 && w[0] != 'j') || (n == 2 && memcmp(w, "ut", 2) == 0))
		*off_s = 0;
	else if (n == 3 && (i = lookup(names, w)) >= 0)
		*off_s = hours[i] * 3600;
	else
		return fail(c, "bad zone");
	return 0;
}

/* m 0..11 */
static int
month_days(int y, int m)
{
	static const unsigned char days[] = {
		31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
	};

	if (m == 1 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))
		return 29;
	return days[m];
}

/* Days since 1970-01-01 (H. Hinnant's days_from_civil), y > 0, m 1..12. */
static int64_t
days_from_civil(int y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = y / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int
parse(struct cur *c, int64_t *t)
{
	static const char wdays[] = "sunmontuewedthufrisat";
	static const char months[] = "janfebmaraprmayjunjulaugsepoctnovdec";
	char w[4];
	int wday = -1, d, mon, y, h, mi, sec = 0, off, n;
	int64_t z;

	if (cfws(c))
		return -1;
	if (c->p == c->end)
		return fail(c, "empty");
	if (is_alpha(*c->p) && (word(c, w) != 3 ||
	    (wday = lookup(wdays, w)) < 0 || cfws(c) || !skip_char(c, ',')))
		return fail(c, "bad day of week");
	if (cfws(c))
		return -1;
	number(c, &d, &n);
	if (n < 1 || n > 2 || cfws(c))
		return fail(c, "bad day");
	if (word(c, w) != 3 || (mon = lookup(months, w)) < 0 || cfws(c))
		return fail(c, "unknown month");
	number(c, &y, &n);
	if (n == 2)
		y += y < 50 ? 2000 : 1900;
	else if (n == 3)
		y += 1900;
	if (n < 2 || y < 1900 || y > 9999 || cfws(c))
		return fail(c, "bad year");
	if (d < 1 || d > month_days(y, mon))
		return fail(c, "bad day");
	number(c, &h, &n);
	if (n != 2 || h > 23 || cfws(c) || !skip_char(c, ':') || cfws(c))
		return fail(c, "bad time");
	number(c, &mi, &n);
	if (n != 2 || mi > 59 || cfws(c))
		return fail(c, "bad time");
	if (skip_char(c, ':')) {
		if (cfws(c))
			return -1;
		number(c, &sec, &n);
		if (n != 2 || sec > 60 || cfws(c))
			return fail(c, "bad time");
		if (sec == 60)
			sec = 59;	/* leap second */
	}
	if (zone(c, &off) || cfws(c))
		return -1;
	if (c->p != c->end)
		return fail(c, "trailing text");
	z = days_from_civil(y, mon + 1, d);
	if (wday >= 0 && wday != (int)((z % 7 + 11) % 7))
		return fail(c, "day of week does not match the date");
	*t = z * 86400 + h * 3600 + mi * 60 + sec - off;
	return 0;
}

int
mt_mail_date(const char *s, size_t len, int64_t *t, char *err, size_t errlen)
{
	struct cur c = { s, s, NULL };

	if (len == 0)
		c.why = "empty";
	else if (memchr(s, '\0', len) != NULL)
		c.why = "NUL byte";
	else {
		c.end = s + len;
		if (parse(&c, t) == 0) {
			if (err != NULL && errlen > 0)
				err[0] = '\0';
			return 0;
		}
	}
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s", c.why);
	return -1;
}
