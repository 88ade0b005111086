/*
 * Log timestamps, as Postfix (maillog_file, syslog) and Dovecot (log_path,
 * syslog) write them. Pure and bounded; untrusted bytes.
 */
#include <ctype.h>
#include <string.h>
#include <time.h>

#include "logtime.h"
#include "cursor.h"

static int
digits(struct mt_cur *c, int n, int *out)
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

/* ".123456" (any number of digits, Dovecot's %{usecs} gives six) */
static void
fraction(struct mt_cur *c, int *ms)
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

/* "Z", "+01:00", "-0500"; none leaves *sign 0 (local time). */
static int
zone(struct mt_cur *c, int *sign, int *off_s)
{
	int oh, om;

	*sign = 0;
	*off_s = 0;
	if (c->p < c->end && *c->p == 'Z') {
		c->p++;
		*sign = 1;
		return 0;
	}
	if (c->p >= c->end || (*c->p != '+' && *c->p != '-'))
		return 0;
	*sign = *c->p++ == '-' ? -1 : 1;
	if (digits(c, 2, &oh))
		return -1;
	if (c->p < c->end && *c->p == ':')
		c->p++;
	if (digits(c, 2, &om) || oh > 23 || om > 59)
		return -1;
	*off_s = oh * 3600 + om * 60;
	return 0;
}

/*
 * "2026-12-02T14:31:12[.123][zone]" (RFC 3339) or "2026-12-02 14:31:12"
 * (log_timestamp = "%Y-%m-%d %H:%M:%S "). Without a zone the time is
 * local, as Dovecot's strftime wrote it.
 */
static int
numeric_time(struct mt_cur *c, int64_t *t_ms)
{
	struct tm tm = { 0 };
	int y, mo, d, h, mi, s, ms, sign, off_s;
	time_t t;

	if (digits(c, 4, &y) || mt_cur_expect(c, '-') || digits(c, 2, &mo) ||
	    mt_cur_expect(c, '-') || digits(c, 2, &d))
		return -1;
	if (mt_cur_expect(c, 'T') && mt_cur_expect(c, ' '))
		return -1;
	if (digits(c, 2, &h) || mt_cur_expect(c, ':') || digits(c, 2, &mi) ||
	    mt_cur_expect(c, ':') || digits(c, 2, &s))
		return -1;
	fraction(c, &ms);
	if (zone(c, &sign, &off_s) || mo < 1 || mo > 12 || d < 1 || d > 31 ||
	    h > 23 || mi > 59 || s > 60)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = s;
	if (sign == 0) {
		tm.tm_isdst = -1;
		t = mktime(&tm);
	} else
		t = timegm(&tm) - sign * off_s;
	*t_ms = (int64_t)t * 1000 + ms;
	return 0;
}

/*
 * "Dec 02 14:31:12" (Dovecot's default log_timestamp), "Dec  2 14:31:12"
 * (syslog), fraction allowed, in local time; the year is the one that puts
 * it closest before now (a log read on Jan 1 may hold Dec 31).
 */
static int
syslog_time(struct mt_cur *c, int64_t now_ms, int64_t *t_ms)
{
	struct tm tm = { 0 }, nowtm;
	time_t now = (time_t)(now_ms / 1000), t;
	int mon, d, h, mi, s, ms;

	if (c->end - c->p < 15 || (mon = month_of(c->p)) < 0)
		return -1;
	c->p += 3;
	if (mt_cur_expect(c, ' '))
		return -1;
	if (c->p < c->end && *c->p == ' ')
		c->p++;		/* "Dec  2" */
	if (c->p + 1 < c->end && isdigit((unsigned char)c->p[1])) {
		if (digits(c, 2, &d))
			return -1;
	} else if (digits(c, 1, &d))
		return -1;
	if (mt_cur_expect(c, ' ') || digits(c, 2, &h) ||
	    mt_cur_expect(c, ':') ||
	    digits(c, 2, &mi) || mt_cur_expect(c, ':') || digits(c, 2, &s))
		return -1;
	fraction(c, &ms);
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

int
mt_log_time(const char **p, const char *end, int64_t now_ms, int64_t *t_ms)
{
	struct mt_cur c = { *p, end };
	int rc;

	if (c.p < c.end && isdigit((unsigned char)*c.p))
		rc = numeric_time(&c, t_ms);
	else
		rc = syslog_time(&c, now_ms, t_ms);
	if (rc != 0) {
		*t_ms = -1;
		return -1;
	}
	*p = c.p;
	return 0;
}
