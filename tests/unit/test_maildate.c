/*
 * RFC 5322 date-time of Deferred-Delivery headers. Every expected time was
 * computed with `date -u -d ... +%s` (GNU coreutils).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "../../common/maildate.h"

#define UNTOUCHED	INT64_C(-777)
#define WRONG_WDAY	"day of week does not match the date"

/* s (len bytes) must give want. */
static void
check_len(const char *s, size_t len, int64_t want)
{
	int64_t t = UNTOUCHED;
	char err[64] = "canary";

	if (mt_mail_date(s, len, &t, err, sizeof(err)) != 0)
		fail_msg("\"%.*s\": refused: %s", (int)len, s, err);
	if (t != want)
		fail_msg("\"%.*s\": got %lld, want %lld", (int)len, s,
		    (long long)t, (long long)want);
	assert_string_equal(err, "");
}

static void
check(const char *s, int64_t want)
{
	check_len(s, strlen(s), want);
}

/* s (len bytes) must be refused with why, *t untouched. */
static void
refused_len(const char *s, size_t len, const char *why)
{
	int64_t t = UNTOUCHED;
	char err[64] = "";

	if (mt_mail_date(s, len, &t, err, sizeof(err)) != -1)
		fail_msg("\"%.*s\": accepted as %lld", (int)len, s,
		    (long long)t);
	if (strcmp(err, why) != 0)
		fail_msg("\"%.*s\": reason \"%s\", want \"%s\"", (int)len, s,
		    err, why);
	assert_true(t == UNTOUCHED);
}

static void
refused(const char *s, const char *why)
{
	refused_len(s, strlen(s), why);
}

static void
outlook_form(void **state)
{
	(void)state;
	check("Wed, 2 Dec 2026 17:30:00 +0100", 1796229000);
	check("Wed, 02 Dec 2026 17:30:00 +0100", 1796229000);
	check("wed, 2 DEC 2026 17:30:00 +0100", 1796229000);
}

static void
numeric_zones(void **state)
{
	(void)state;
	check("Wed, 2 Dec 2026 17:30:00 +0530", 1796212800);
	check("Wed, 2 Dec 2026 17:30:00 -0800", 1796261400);
	check("Wed, 2 Dec 2026 17:30:00 +0000", 1796232600);
	check("Wed, 2 Dec 2026 17:30:00 -0000", 1796232600);
	check("Wed, 2 Dec 2026 17:30:00 +9959", 1795872660);
	check("Wed, 2 Dec 2026 17:30:00 -9959", 1796592540);
}

static void
obsolete_zones(void **state)
{
	(void)state;
	check("2 Dec 2026 17:30:00 UT", 1796232600);
	check("2 Dec 2026 17:30:00 GMT", 1796232600);
	check("2 Dec 2026 17:30:00 gmt", 1796232600);
	check("2 Dec 2026 17:30:00 EST", 1796250600);
	check("2 Dec 2026 17:30:00 EDT", 1796247000);
	check("2 Dec 2026 17:30:00 CST", 1796254200);
	check("2 Dec 2026 17:30:00 CDT", 1796250600);
	check("2 Dec 2026 17:30:00 MST", 1796257800);
	check("2 Dec 2026 17:30:00 MDT", 1796254200);
	check("2 Dec 2026 17:30:00 PST", 1796261400);
	check("2 Dec 2026 17:30:00 pdt", 1796257800);
}

static void
military_zones_are_utc(void **state)
{
	(void)state;
	check("2 Dec 2026 17:30:00 Z", 1796232600);
	check("2 Dec 2026 17:30:00 A", 1796232600);
	check("2 Dec 2026 17:30:00 m", 1796232600);
	check("2 Dec 2026 17:30:00 N", 1796232600);
	check("2 Dec 2026 17:30:00 y", 1796232600);
	refused("2 Dec 2026 17:30:00 J", "bad zone");
	refused("2 Dec 2026 17:30:00 j", "bad zone");
}

static void
short_years(void **state)
{
	(void)state;
	check("Wed, 2 Dec 26 17:30:00 +0000", 1796232600);
	check("Thu, 2 Dec 49 17:30:00 +0000", 2522079000);
	check("Sat, 2 Dec 50 17:30:00 +0000", -602145000);
	check("1 Jan 00 00:00:00 +0000", 946684800);
	check("31 Dec 99 23:59:59 +0000", 946684799);
	check("Wed, 2 Dec 126 17:30:00 +0000", 1796232600);
	check("Thu, 2 Dec 026 17:30:00 +0000", -1359527400);
	check("2 Dec 02026 17:30:00 +0000", 1796232600);
}

static void
no_seconds_no_weekday(void **state)
{
	(void)state;
	check("Wed, 2 Dec 2026 17:30 +0000", 1796232600);
	check("2 Dec 2026 17:30 +0000", 1796232600);
	check("2 Dec 2026 17:30:00 +0100", 1796229000);
}

static void
leap_second_reads_as_59(void **state)
{
	(void)state;
	check("Sat, 31 Dec 2016 23:59:60 +0000", 1483228799);
	check("2 Dec 2026 17:30:60 +0100", 1796229059);
	refused("2 Dec 2026 17:30:61 +0100", "bad time");
}

static void
comments_and_folding(void **state)
{
	(void)state;
	check("Wed, 2 Dec 2026 17:30:00 +0000 (UTC)", 1796232600);
	check("Wed, 2 Dec 2026 17:30:00 +0100\r\n", 1796229000);
	check("Wed,\r\n 2 Dec 2026\r\n\t17:30:00 +0100", 1796229000);
	check("\r\n Wed, 2 Dec 2026 17:30:00 +0100 \r\n (x)\r\n", 1796229000);
	check("(a)Wed(b),(c)2(d)Dec(e)2026(f)17(g):(h)30(i):(j)00(k)+0100(l)",
	    1796229000);
	check("Wed, 2 Dec 2026 17:30:00 +0100 (a (nested \\) (one)) b)",
	    1796229000);
	check("Wed, 2 Dec 2026 17:30:00 +0100 (\\(\\\\ \x01\xc3\xa9)",
	    1796229000);
	check("Wed,2 Dec 2026 17:30:00+0100", 1796229000);
	check("Wed , 2Dec2026 17 : 30 : 00 +0100", 1796229000);
	check("2 Dec 2026 17:30:00 +0100 ((((((((((((((((x))))))))))))))))",
	    1796229000);
	refused("2 Dec 2026 17:30:00 +0100 (((((((((((((((((x)))))))))))))))))",
	    "comment too deep");
	refused("2 Dec 2026 17:30:00 +0100 (unclosed", "comment not closed");
	refused("2 Dec 2026 17:30:00 +0100 (a (b) c", "comment not closed");
	refused("2 Dec 2026 17:30:00 +0100 (ends in \\", "comment not closed");
	refused("2 (Dec 2026 17:30:00 +0100", "comment not closed");
	refused("2 Dec 2026 17:30:00 +0100 )", "trailing text");
}

static void
leap_days(void **state)
{
	(void)state;
	check("Tue, 29 Feb 2028 12:00:00 +0000", 1835438400);
	check("Tue, 29 Feb 2000 00:00:00 +0000", 951782400);
	check("29 Feb 2024 00:00:00 +0000", 1709164800);
	refused("29 Feb 2027 12:00:00 +0000", "bad day");
	refused("29 Feb 1900 12:00:00 +0000", "bad day");
	refused("29 Feb 2100 12:00:00 +0000", "bad day");
	refused("31 Apr 2026 12:00:00 +0000", "bad day");
	refused("32 Jan 2026 12:00:00 +0000", "bad day");
	refused("0 Jan 2026 12:00:00 +0000", "bad day");
}

static void
year_bounds(void **state)
{
	(void)state;
	check("Mon, 1 Jan 1900 00:00:00 +0000", -2208988800);
	check("1 Jan 1900 00:00:00 +0100", -2208992400);
	check("1 Mar 1900 00:00:00 +0000", -2203891200);
	check("Fri, 31 Dec 9999 23:59:59 +0000", 253402300799);
	check("31 Dec 9999 23:59:59 -9959", 253402660739);
	check("31 Dec 1969 23:59:59 +0000", -1);
	check("1 Jan 1970 00:00:00 -0000", 0);
	refused("31 Dec 1899 23:59:59 +0000", "bad year");
	refused("1 Jan 10000 00:00:00 +0000", "bad year");
	refused("1 Jan 0026 00:00:00 +0000", "bad year");
	refused("1 Jan 2 00:00:00 +0000", "bad year");
	refused("1 Jan 99999999999999999999 00:00:00 +0000", "bad year");
	refused("1 Jan 00:00:00 +0000", "bad time");
}

static void
each_reason(void **state)
{
	(void)state;
	refused("", "empty");
	refused(" \r\n\t (nothing) ", "empty");
	refused("Wednesday, 2 Dec 2026 17:30:00 +0100", "bad day of week");
	refused("Wen, 2 Dec 2026 17:30:00 +0100", "bad day of week");
	refused("Wed 2 Dec 2026 17:30:00 +0100", "bad day of week");
	refused("Wed, 123 Dec 2026 17:30:00 +0100", "bad day");
	refused("Wed, Dec 2026 17:30:00 +0100", "bad day");
	refused("+0100", "bad day");
	refused("2 Dez 2026 17:30:00 +0100", "unknown month");
	refused("2 December 2026 17:30:00 +0100", "unknown month");
	refused("2 12 2026 17:30:00 +0100", "unknown month");
	refused("2 Dec 2026 24:00:00 +0100", "bad time");
	refused("2 Dec 2026 17:60:00 +0100", "bad time");
	refused("2 Dec 2026 7:30:00 +0100", "bad time");
	refused("2 Dec 2026 17:3:00 +0100", "bad time");
	refused("2 Dec 2026 17:30:0 +0100", "bad time");
	refused("2 Dec 2026 1730 +0100", "bad time");
	refused("2 Dec 2026 17:30:00", "bad zone");
	refused("2 Dec 2026 17:30:00 +100", "bad zone");
	refused("2 Dec 2026 17:30:00 +01000", "bad zone");
	refused("2 Dec 2026 17:30:00 +0160", "bad zone");
	refused("2 Dec 2026 17:30:00 + 0100", "bad zone");
	refused("2 Dec 2026 17:30:00 UTC", "bad zone");
	refused("2 Dec 2026 17:30:00 CET", "bad zone");
	refused("2 Dec 2026 17:30:00 +0100 x", "trailing text");
	refused("2 Dec 2026 17:30:00 +0100 +0100", "trailing text");
	refused("2 Dec 2026 17:30:00 GMT+1", "trailing text");
	refused("Thu, 2 Dec 2026 17:30:00 +0100", WRONG_WDAY);
	refused("Mon, 29 Feb 2028 12:00:00 +0000", WRONG_WDAY);
}

static void
nul_and_length_are_respected(void **state)
{
	static const char in[] = "Wed, 2 Dec 2026 17:30:00 +0100";
	/* not NUL-terminated, garbage right after */
	static const char raw[] = { '2', ' ', 'D', 'e', 'c', ' ', '2', '0',
	    '2', '6', ' ', '1', '7', ':', '3', '0', ' ', 'Z', '!' };

	(void)state;
	refused_len(in, sizeof(in), "NUL byte");	/* trailing NUL */
	refused_len("Wed, 2 Dec 2026\0 17:30:00 +0100", 31, "NUL byte");
	refused_len("2 Dec 2026 17:30:00 +0100 (\0)", 29, "NUL byte");
	check_len(in, sizeof(in) - 1, 1796229000);
	check_len("2 Dec 2026 17:30:00 +0100trash", 25, 1796229000);
	check_len(raw, sizeof(raw) - 1, 1796232600);
	refused_len(raw, sizeof(raw), "trailing text");
	refused_len(raw, 16, "bad zone");
	refused_len(NULL, 0, "empty");
}

static void
err_buffer_is_optional_and_bounded(void **state)
{
	const char *bad = "Thu, 2 Dec 2026 17:30:00 +0100";
	char err[8];
	int64_t t = UNTOUCHED;

	(void)state;
	assert_int_equal(mt_mail_date(bad, strlen(bad), &t, NULL, 0), -1);
	assert_true(t == UNTOUCHED);
	memset(err, 'x', sizeof(err));
	assert_int_equal(mt_mail_date(bad, strlen(bad), &t, err, 1), -1);
	assert_int_equal(err[0], '\0');
	assert_int_equal(err[1], 'x');
	assert_int_equal(mt_mail_date(bad, strlen(bad), &t, err, 4), -1);
	assert_string_equal(err, "day");
	assert_int_equal(err[4], 'x');
	assert_int_equal(mt_mail_date("2", 1, &t, err, 8), -1);
	assert_string_equal(err, "unknown");
	assert_int_equal(mt_mail_date(bad + 5, strlen(bad) - 5, &t, NULL, 0), 0);
	assert_true(t == 1796229000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(outlook_form),
		cmocka_unit_test(numeric_zones),
		cmocka_unit_test(obsolete_zones),
		cmocka_unit_test(military_zones_are_utc),
		cmocka_unit_test(short_years),
		cmocka_unit_test(no_seconds_no_weekday),
		cmocka_unit_test(leap_second_reads_as_59),
		cmocka_unit_test(comments_and_folding),
		cmocka_unit_test(leap_days),
		cmocka_unit_test(year_bounds),
		cmocka_unit_test(each_reason),
		cmocka_unit_test(nul_and_length_are_respected),
		cmocka_unit_test(err_buffer_is_optional_and_bounded),
	};
	return cmocka_run_group_tests_name("maildate", tests, NULL, NULL);
}
