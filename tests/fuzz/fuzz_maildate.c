/*
 * RFC 5322 date-time of Deferred-Delivery headers: for any bytes the parser
 * reads only its len bytes (exact-size copy), returns 0 with a time inside
 * years 1900..9999 (give or take the largest zone, 99:59) or -1 with a
 * short printable reason, never writes outside err or *t on failure, cuts
 * the reason cleanly for small buffers, and a time it returns reads back
 * the same when written out again, by an independent formatter, both as
 * "D Mon YYYY HH:MM:SS +0000" and with a day-of-week and another zone.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/maildate.h"

#define ZONE_MAX_S	(99 * 3600 + 59 * 60)
#define T_MIN		(INT64_C(-2208988800) - ZONE_MAX_S)	/* 1900-01-01 */
#define T_MAX		(INT64_C(253402300799) + ZONE_MAX_S)	/* 9999-12-31 */
#define ERRLEN		64
#define CANARY		0xa5
#define UNTOUCHED	INT64_C(0x5a5a5a5a5a5a5a5a)

static int64_t
floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b < 0);
}

/* H. Hinnant's civil_from_days: days since 1970-01-01 to y, m 1..12, d. */
static void
civil(int64_t z, int64_t *y, int *m, int *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = floor_div(z, 146097);
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static int64_t
year_of(int64_t t)
{
	int64_t y;
	int m, d;

	civil(floor_div(t, 86400), &y, &m, &d);
	return y;
}

/* t as seen in zone off_min, optionally with the day of the week. */
static int
format(char *buf, size_t size, int64_t t, int off_min, int wday)
{
	static const char mon[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	static const char day[] = "SunMonTueWedThuFriSat";
	int64_t l = t + (int64_t)off_min * 60, z = floor_div(l, 86400), y;
	int64_t sod = l - z * 86400;
	int a = off_min < 0 ? -off_min : off_min, m, d;
	int w = (int)(((z + 4) % 7 + 7) % 7);	/* 1970-01-01 was a Thursday */

	civil(z, &y, &m, &d);
	return snprintf(buf, size,
	    "%.*s%s%d %.3s %04lld %02d:%02d:%02d %c%02d%02d", wday ? 3 : 0,
	    day + 3 * w, wday ? ", " : "", d, mon + 3 * (m - 1),
	    (long long)y, (int)(sod / 3600), (int)(sod / 60 % 60),
	    (int)(sod % 60), off_min < 0 ? '-' : '+', a / 60, a % 60);
}

/* s as written by format() (n its return) must read back as want. */
static void
reparse(const char *s, int n, int64_t want)
{
	char err[ERRLEN];
	int64_t t = UNTOUCHED;
	char *copy;

	if (n <= 0 || n >= 128 || (copy = malloc((size_t)n)) == NULL)
		abort();
	memcpy(copy, s, (size_t)n);
	if (mt_mail_date(copy, (size_t)n, &t, err, sizeof(err)) != 0 || t != want)
		abort();
	free(copy);
}

/* strnlen(), which C11 lacks */
static size_t
len_in(const char *s, size_t size)
{
	const char *nul = memchr(s, '\0', size);

	return nul == NULL ? size : (size_t)(nul - s);
}

static void
check_reason(const char *err, size_t size)
{
	size_t n = len_in(err, size);

	if (n == size || n == 0)
		abort();
	for (size_t i = 0; i < n; i++)
		if (err[i] < 0x20 || err[i] > 0x7e)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char guard[8 + ERRLEN + 8], small[8 + 8 + 8];
	char *err = (char *)guard + 8, *serr = (char *)small + 8, out[128];
	char *copy = malloc(size ? size : 1);
	int64_t t = UNTOUCHED, t2 = UNTOUCHED;
	size_t slen = size % 9;		/* 0..8, NULL when 0 */
	int rc, rc2, n, off;

	if (copy == NULL)
		return 0;
	memcpy(copy, data, size);
	memset(guard, CANARY, sizeof(guard));
	memset(small, CANARY, sizeof(small));
	rc = mt_mail_date(copy, size, &t, err, ERRLEN);
	rc2 = mt_mail_date(copy, size, &t2, slen ? serr : NULL, slen);
	free(copy);
	for (size_t i = 0; i < 8; i++)
		if (guard[i] != CANARY || guard[8 + ERRLEN + i] != CANARY)
			abort();
	for (size_t i = 0; i < sizeof(small); i++)
		if ((i < 8 || i >= 8 + slen) && small[i] != CANARY)
			abort();
	if (rc != rc2 || t != t2 || (rc != 0 && rc != -1))
		abort();
	if (slen > 0 && (len_in(serr, slen) == slen ||
	    strncmp(serr, err, slen - 1) != 0))
		abort();	/* not terminated, or not a prefix */
	if (rc == -1) {
		if (t != UNTOUCHED)
			abort();
		check_reason(err, ERRLEN);
		return 0;
	}
	if (err[0] != '\0' || t < T_MIN || t > T_MAX)
		abort();

	/* back as UTC, when that is a year the parser takes */
	if (year_of(t) >= 1900 && year_of(t) <= 9999) {
		n = format(out, sizeof(out), t, 0, 0);
		reparse(out, n, t);
	}
	/* with a weekday and a zone picked from the input, or one that fits */
	off = (int)(((uint64_t)t ^ size) % (2 * 5999 + 1)) - 5999;
	if (year_of(t + off * 60) < 1900 || year_of(t + off * 60) > 9999)
		off = year_of(t) < 1900 ? 5999 : year_of(t) > 9999 ? -5999 : 0;
	n = format(out, sizeof(out), t, off, 1);
	reparse(out, n, t);
	return 0;
}
