/* Postfix delivery lines to per-recipient results: what the follower sees. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../delivery/delivery.h"

#define NOW 1795302000000LL	/* 2026-11-21T23:00:00Z */

static int
parse(const char *line, struct mt_dlv *d)
{
	return mt_dlv_parse(line, strlen(line), NOW, d);
}

static void
smtp_sent_line_gives_relay_dsn_reply_and_service(void **state)
{
	struct mt_dlv d;

	assert_int_equal(parse("Nov 21 23:15:00 host postfix/smtp[123]: "
	    "4XvQ3d5f6Gz9sWq: to=<Bob@Example.org>, relay=mx.example.org"
	    "[203.0.113.5]:25, delay=0.5, delays=0.1/0/0.2/0.2, dsn=2.0.0, "
	    "status=sent (250 2.0.0 Ok: queued as ABC)", &d), 1);
	assert_string_equal(d.qid, "4XvQ3d5f6Gz9sWq");
	assert_string_equal(d.rcpt, "bob@example.org");
	assert_string_equal(d.relay, "mx.example.org[203.0.113.5]:25");
	assert_string_equal(d.dsn, "2.0.0");
	assert_string_equal(d.delay, "0.5");
	assert_int_equal(d.status, MT_DLV_SENT);
	assert_string_equal(d.text, "250 2.0.0 Ok: queued as ABC");
	assert_string_equal(d.service, "postfix/smtp");
	assert_true(d.t_ms > 0);
}

static void
own_syslog_name_tells_the_outbound_transport(void **state)
{
	struct mt_dlv d;

	assert_int_equal(parse("Nov 21 23:15:00 host postfix-out1/smtp[9]: "
	    "ABC123: to=<a@b.test>, relay=x[192.0.2.1]:25, delay=1, "
	    "delays=0/0/0/1, dsn=2.0.0, status=sent (250 ok)", &d), 1);
	assert_string_equal(d.service, "postfix-out1/smtp");
}

static void
iso_timestamp_with_offset_is_read_as_utc(void **state)
{
	struct mt_dlv d;

	assert_int_equal(parse("2026-11-21T23:15:00.250+01:00 host "
	    "postfix/lmtp[5]: QQ1: to=<u@d.test>, relay=imap[private/dovecot-"
	    "lmtp], delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent "
	    "(250 2.0.0 <u@d.test> Saved)", &d), 1);
	assert_int_equal(d.t_ms, 1795299300250LL);	/* 22:15:00.250Z */
	assert_string_equal(d.service, "postfix/lmtp");
}

static void
deferred_line_keeps_the_reason(void **state)
{
	struct mt_dlv d;

	assert_int_equal(parse("Nov 21 23:15:01 h postfix/smtp[7]: 4AB: "
	    "to=<c@defer.test>, relay=none, delay=0.02, delays=0/0/0.02/0, "
	    "dsn=4.4.1, status=deferred (connect to 127.0.0.1[127.0.0.1]:9: "
	    "Connection refused)", &d), 1);
	assert_int_equal(d.status, MT_DLV_DEFERRED);
	assert_string_equal(d.dsn, "4.4.1");
	assert_string_equal(d.text, "connect to 127.0.0.1[127.0.0.1]:9: "
	    "Connection refused");
	assert_string_equal(mt_dlv_event_name(d.status), "DEFER");
}

static void
bounced_line_with_orig_to(void **state)
{
	struct mt_dlv d;

	assert_int_equal(parse("Nov  1 01:02:03 h postfix/local[7]: 4AB: "
	    "to=<root@h.test>, orig_to=<postmaster@h.test>, relay=local, "
	    "delay=0.1, delays=0/0/0/0.1, dsn=5.2.2, status=bounced "
	    "(cannot update mailbox: over quota)", &d), 1);
	assert_string_equal(d.rcpt, "root@h.test");
	assert_string_equal(d.orig_rcpt, "postmaster@h.test");
	assert_int_equal(d.status, MT_DLV_BOUNCED);
	assert_string_equal(mt_dlv_status_name(d.status), "bounced");
}

static void
quoted_local_part_with_comma_and_angle(void **state)
{
	struct mt_dlv d;

	assert_int_equal(parse("Nov 21 23:15:00 h postfix/smtp[1]: Q1: "
	    "to=<\"a>, b\"@x.test>, relay=none, delay=1, dsn=5.0.0, "
	    "status=bounced (nope)", &d), 1);
	assert_string_equal(d.rcpt, "\"a>, b\"@x.test");
}

static void
expired_message_line_covers_every_recipient(void **state)
{
	struct mt_dlv d;

	assert_int_equal(parse("Nov 21 23:15:00 h postfix/qmgr[1]: Q1: "
	    "from=<alice@x.test>, status=expired, returned to sender", &d), 1);
	assert_true(d.whole_message);
	assert_int_equal(d.status, MT_DLV_EXPIRED);
	assert_string_equal(d.rcpt, "");
	assert_string_equal(mt_dlv_event_name(d.status), "BOUNCE");
}

static void
other_postfix_lines_are_not_results(void **state)
{
	struct mt_dlv d;

	assert_int_equal(parse("Nov 21 23:15:00 h postfix/smtpd[1]: connect "
	    "from unknown[127.0.0.1]", &d), 0);
	assert_int_equal(parse("Nov 21 23:15:00 h postfix/qmgr[1]: Q1: "
	    "from=<a@b>, size=300, nrcpt=1 (queue active)", &d), 0);
	assert_int_equal(parse("Nov 21 23:15:00 h postfix/cleanup[1]: Q1: "
	    "message-id=<x@y>", &d), 0);
	assert_int_equal(parse("Nov 21 23:15:00 h postfix/qmgr[1]: Q1: "
	    "removed", &d), 0);
}

static void
garbage_and_broken_results_are_counted_as_bad(void **state)
{
	struct mt_dlv d;
	char big[MT_DLV_LINE_MAX + 10];

	assert_int_equal(parse("", &d), -1);
	assert_int_equal(parse("hello world", &d), -1);
	assert_int_equal(parse("Foo 21 23:15:00 h x[1]: Q: to=<a>", &d), -1);
	assert_int_equal(parse("Nov 21 23:15:00 h postfix/smtp[1]: Q1: "
	    "to=<a@b>, relay=x, dsn=2.0.0", &d), -1);
	assert_int_equal(parse("Nov 21 23:15:00 h postfix/smtp[1]: Q1: "
	    "to=<a@b>, relay=x, status=weird (x)", &d), -1);
	assert_int_equal(parse("Nov 21 23:15:00 h postfix/smtp[1]: Q1: "
	    "to=<a@b, relay=x, status=sent (x)", &d), -1);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(parse(big, &d), -1);
}

static void
controls_in_the_reply_never_reach_the_event(void **state)
{
	struct mt_dlv d;
	const char line[] = "Nov 21 23:15:00 h postfix/smtp[1]: Q1: to=<a@b>, "
	    "relay=x, dsn=5.0.0, status=bounced (550 \x01\x1b[31mred\x7f)";
	char *json;

	assert_int_equal(mt_dlv_parse(line, sizeof(line) - 1, NOW, &d), 1);
	for (const char *p = d.text; *p; p++)
		assert_true((unsigned char)*p >= 0x20 && *p != 0x7f);
	json = mt_dlv_event_json(&d, 1000);
	assert_non_null(json);
	assert_non_null(strstr(json, "\"ev\":\"BOUNCE\""));
	assert_non_null(strstr(json, "\"reason\":"));
	assert_non_null(strstr(json, "\"service\":\"postfix/smtp\""));
	free(json);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(smtp_sent_line_gives_relay_dsn_reply_and_service),
		cmocka_unit_test(own_syslog_name_tells_the_outbound_transport),
		cmocka_unit_test(iso_timestamp_with_offset_is_read_as_utc),
		cmocka_unit_test(deferred_line_keeps_the_reason),
		cmocka_unit_test(bounced_line_with_orig_to),
		cmocka_unit_test(quoted_local_part_with_comma_and_angle),
		cmocka_unit_test(expired_message_line_covers_every_recipient),
		cmocka_unit_test(other_postfix_lines_are_not_results),
		cmocka_unit_test(garbage_and_broken_results_are_counted_as_bad),
		cmocka_unit_test(controls_in_the_reply_never_reach_the_event),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
