/*
 * A journal entry of Postfix's made into its syslog line: what the parser
 * then reads out of it (time to the millisecond, tag, result), and entries
 * that make no line it may read (forged-looking identifiers, binary or
 * overlong messages).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "../../delivery/delivery.h"

#define T_US 1796221576123456ULL	/* 2026-12-02T14:26:16.123456Z */

static char out[MT_DLV_LINE_MAX + 1];
static size_t out_len;

static struct mt_jentry
entry(const char *ident, const char *pid, const char *host, const char *msg)
{
	return (struct mt_jentry){
		.t_us = T_US,
		.ident = ident, .ident_len = ident ? strlen(ident) : 0,
		.pid = pid, .pid_len = pid ? strlen(pid) : 0,
		.host = host, .host_len = host ? strlen(host) : 0,
		.msg = msg, .msg_len = msg ? strlen(msg) : 0,
	};
}

static enum mt_jline_kind
line_of(struct mt_jentry e)
{
	enum mt_jline_kind k = mt_journal_line(&e, out, &out_len);

	assert_int_equal(strlen(out), out_len);
	return k;
}

static void
a_delivery_entry_becomes_the_line_the_parser_reads(void **state)
{
	static char pf[] = "postfix";
	char *const names[] = { pf };
	struct mt_dlv d;

	assert_int_equal(line_of(entry("postfix/smtp", "4242", "mx1",
	    "4XvQ3d5f6Gz9sWq: to=<bob@example.org>, relay=mx.example.org"
	    "[203.0.113.5]:25, delay=0.5, dsn=2.0.0, status=sent (250 ok)")),
	    MT_JLINE_OK);
	assert_string_equal(out, "2026-12-02T14:26:16.123456Z mx1 "
	    "postfix/smtp[4242]: 4XvQ3d5f6Gz9sWq: to=<bob@example.org>, "
	    "relay=mx.example.org[203.0.113.5]:25, delay=0.5, dsn=2.0.0, "
	    "status=sent (250 ok)");
	assert_int_equal(mt_dlv_parse(out, out_len, 0, names, 1, &d),
	    MT_DLV_RESULT);
	assert_int_equal(d.t_ms, (int64_t)(T_US / 1000));
	assert_string_equal(d.service, "postfix/smtp");
	assert_string_equal(d.qid, "4XvQ3d5f6Gz9sWq");
	assert_string_equal(d.rcpt, "bob@example.org");
	assert_string_equal(d.ip, "203.0.113.5");
	assert_int_equal(d.status, MT_DLV_SENT);
}

static void
a_missing_or_odd_pid_and_host_are_left_out(void **state)
{
	assert_int_equal(line_of(entry("postfix/qmgr", NULL, NULL, "A1: removed")),
	    MT_JLINE_OK);
	assert_string_equal(out, "2026-12-02T14:26:16.123456Z - postfix/qmgr: "
	    "A1: removed");
	assert_int_equal(line_of(entry("postfix/qmgr", "12x", "two words",
	    "A1: removed")), MT_JLINE_OK);
	assert_string_equal(out, "2026-12-02T14:26:16.123456Z - postfix/qmgr: "
	    "A1: removed");
}

/* An identifier the parser would split elsewhere could pass part of the
 * message off as the tag: such an entry is no line at all. */
static void
identifiers_that_are_not_one_token_make_no_line(void **state)
{
	static const char *const bad[] = {
		"x postfix/smtp", "postfix/smtp[1]", "evil: A1",
		"postfix/\tsmtp", "postfix/sm\xc3\xa9tp", "",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(line_of(entry(bad[i], "1", "h", "A1: removed")),
		    MT_JLINE_BAD);
	assert_int_equal(line_of(entry(NULL, "1", "h", "A1: removed")),
	    MT_JLINE_BAD);
	assert_int_equal(line_of(entry("postfix/smtp", "1", "h", NULL)),
	    MT_JLINE_BAD);
}

static void
binary_messages_make_no_line(void **state)
{
	struct mt_jentry e = entry("postfix/smtp", "1", "h",
	    "A1: to=<a@b>, status=sent (ok)\nB2: to=<c@d>, status=bounced (x)");

	assert_int_equal(line_of(e), MT_JLINE_BAD);
	e = entry("postfix/smtp", "1", "h", "A1: to=<a@b>, status=sent (ok)");
	e.msg_len += 1;			/* its NUL is part of the field */
	assert_int_equal(mt_journal_line(&e, out, &out_len), MT_JLINE_BAD);
	e = entry("postfix/smtp", "1", "h", "A1: removed\r");
	assert_int_equal(line_of(e), MT_JLINE_BAD);
}

static void
a_message_longer_than_a_line_is_cut(void **state)
{
	static char big[MT_DLV_LINE_MAX * 2];
	struct mt_jentry e;
	size_t prefix;

	memset(big, 'x', sizeof(big) - 1);
	e = entry("postfix/smtp", "1", "h", big);
	assert_int_equal(line_of(e), MT_JLINE_CUT);
	assert_int_equal(out_len, MT_DLV_LINE_MAX);
	/* One that just fits is whole. */
	prefix = strlen("2026-12-02T14:26:16.123456Z h postfix/smtp[1]: ");
	e.msg_len = MT_DLV_LINE_MAX - prefix;
	assert_int_equal(line_of(e), MT_JLINE_OK);
	assert_int_equal(out_len, MT_DLV_LINE_MAX);
	e.msg_len++;
	assert_int_equal(line_of(e), MT_JLINE_CUT);
}

static void
times_outside_four_digit_years_make_no_line(void **state)
{
	struct mt_jentry e = entry("postfix/smtp", "1", "h", "A1: removed");

	e.t_us = UINT64_MAX;
	assert_int_equal(line_of(e), MT_JLINE_BAD);
	e.t_us = 0;
	assert_int_equal(line_of(e), MT_JLINE_OK);
	assert_string_equal(out, "1970-01-01T00:00:00.000000Z h "
	    "postfix/smtp[1]: A1: removed");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_delivery_entry_becomes_the_line_the_parser_reads),
		cmocka_unit_test(a_missing_or_odd_pid_and_host_are_left_out),
		cmocka_unit_test(identifiers_that_are_not_one_token_make_no_line),
		cmocka_unit_test(binary_messages_make_no_line),
		cmocka_unit_test(a_message_longer_than_a_line_is_cut),
		cmocka_unit_test(times_outside_four_digit_years_make_no_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
