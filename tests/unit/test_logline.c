/* Postfix delivery lines to per-recipient results: what the follower sees. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../delivery/delivery.h"

#define NOW 1795302000000LL	/* 2026-11-21T23:00:00Z */

/* PostfixSyslogNames of a host with a second instance for outbound mail. */
static char pf[] = "postfix", pf_out1[] = "postfix-out1", pf_out[] =
    "postfix-out";
static char *const names[] = { pf, pf_out1 };

static int
parse(const char *line, struct mt_dlv *d)
{
	return mt_dlv_parse(line, strlen(line), NOW, names, 2, d);
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
	assert_string_equal(d.ip, "203.0.113.5");
	assert_string_equal(d.dsn, "2.0.0");
	assert_string_equal(d.delay, "0.5");
	assert_int_equal(d.status, MT_DLV_SENT);
	assert_string_equal(d.text, "250 2.0.0 Ok: queued as ABC");
	assert_string_equal(d.service, "postfix/smtp");
	assert_true(d.t_ms > 0);
}

static void
lmtp_delivery_is_delivered_with_dovecots_session(void **state)
{
	struct mt_dlv d;
	char *json;

	assert_int_equal(parse("Dec  2 14:00:00 host postfix/lmtp[18543]: "
	    "09EB5116519: to=<alice@dove.test>, relay=127.0.0.1[127.0.0.1]:"
	    "47635, delay=0.12, delays=0.01/0.02/0.05/0.03, dsn=2.0.0, "
	    "status=sent (250 2.0.0 <alice@dove.test> JkU4B6EpEGtxSAAAg+zDdQ "
	    "Saved)", &d), 1);
	assert_int_equal(d.status, MT_DLV_DELIVERED);
	assert_string_equal(d.session, "JkU4B6EpEGtxSAAAg+zDdQ");
	assert_string_equal(mt_dlv_event_name(d.status), "DELIVER");
	assert_string_equal(mt_dlv_status_name(d.status), "delivered");
	json = mt_dlv_event_json(&d, 1);
	assert_non_null(strstr(json, "\"session\":\"JkU4B6EpEGtxSAAAg+zDdQ\""));
	assert_non_null(strstr(json, "\"reply\":\"250 2.0.0"));
	free(json);
	/* a later recipient of the same session */
	assert_int_equal(parse("Dec  2 14:00:00 host postfix/lmtp[18543]: "
	    "09EB5116519: to=<bob@dove.test>, relay=x[/run/dovecot/lmtp], "
	    "dsn=2.0.0, status=sent (250 2.0.0 <bob@dove.test> "
	    "yHUvHogqEGueewAAg+zDdQ:R2 Saved)", &d), 1);
	assert_string_equal(d.session, "yHUvHogqEGueewAAg+zDdQ:R2");
	/* local and virtual store too; smtp does not */
	assert_int_equal(parse("Dec  2 14:00:00 host postfix/local[1]: "
	    "09EB5116519: to=<carol@host.test>, relay=local, dsn=2.0.0, "
	    "status=sent (delivered to mailbox)", &d), 1);
	assert_int_equal(d.status, MT_DLV_DELIVERED);
	assert_string_equal(d.session, "");
	/* a session that is not shaped like one is not kept */
	assert_int_equal(parse("Dec  2 14:00:00 host postfix/lmtp[1]: "
	    "09EB5116519: to=<a@dove.test>, relay=x, dsn=2.0.0, status=sent "
	    "(250 2.0.0 <a@dove.test> a\"b<c Saved)", &d), 1);
	assert_string_equal(d.session, "");
	/* deferred over lmtp stays deferred */
	assert_int_equal(parse("Dec  2 14:00:00 host postfix/lmtp[1]: "
	    "09EB5116519: to=<a@dove.test>, relay=none, dsn=4.4.1, "
	    "status=deferred (connect refused)", &d), 1);
	assert_int_equal(d.status, MT_DLV_DEFERRED);
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

/* postsuper -r: pickup names the old queue ID of the new queue file. */
static void
requeue_by_pickup_links_the_new_queue_id_to_the_old(void **state)
{
	struct mt_dlv d;

	assert_int_equal(parse("Dec  2 16:46:16 h postfix/pickup[28650]: "
	    "0305A106043: uid=102 from=<alice@site.test> orig_id=AE2A51060F3",
	    &d), MT_DLV_REQUEUE);
	assert_string_equal(d.qid, "0305A106043");
	assert_string_equal(d.orig_qid, "AE2A51060F3");
	/* A plain submission has no orig_id; a sender cannot fake one. */
	assert_int_equal(parse("Dec  2 16:46:16 h postfix/pickup[1]: Q2: "
	    "uid=0 from=<root>", &d), MT_DLV_OTHER);
	assert_int_equal(parse("Dec  2 16:46:16 h postfix/pickup[1]: Q2: "
	    "uid=0 from=<x orig_id=VICTIM@y>", &d), MT_DLV_OTHER);
	/* Only pickup of a name we believe says so. */
	assert_int_equal(parse("Dec  2 16:46:16 h postfix/smtpd[1]: Q2: "
	    "uid=0 from=<a> orig_id=VICTIM", &d), MT_DLV_OTHER);
	assert_int_equal(parse("Dec  2 16:46:16 h evil/pickup[1]: Q2: "
	    "uid=0 from=<a> orig_id=VICTIM", &d), MT_DLV_OTHER);
	assert_int_equal(parse("Dec  2 16:46:16 h postfix/pickup[1]: Q2: "
	    "uid=0 from=<a> orig_id=", &d), MT_DLV_OTHER);
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

	assert_int_equal(mt_dlv_parse(line, sizeof(line) - 1, NOW, names, 2,
	    &d), 1);
	for (const char *p = d.text; *p; p++)
		assert_true((unsigned char)*p >= 0x20 && *p != 0x7f);
	json = mt_dlv_event_json(&d, 1000);
	assert_non_null(json);
	assert_non_null(strstr(json, "\"ev\":\"BOUNCE\""));
	assert_non_null(strstr(json, "\"reason\":"));
	assert_non_null(strstr(json, "\"service\":\"postfix/smtp\""));
	free(json);
}

static void
quoted_sender_with_expired_status_is_not_an_expiry(void **state)
{
	struct mt_dlv d;

	/* qmgr's queue-active line for MAIL FROM:<"x, status=expired"@site> */
	assert_int_equal(parse("Nov 21 23:15:00 h postfix/qmgr[1]: Q1: "
	    "from=<\"x, status=expired\"@site.test>, size=300, nrcpt=3 "
	    "(queue active)", &d), MT_DLV_OTHER);
	assert_int_equal(parse("Nov 21 23:15:00 h postfix/qmgr[1]: Q1: "
	    "from=<\"x, status=expired, returned to sender\"@site.test>, "
	    "size=300, nrcpt=3 (queue active)", &d), MT_DLV_OTHER);
	/* and its real expiry still covers the whole message */
	assert_int_equal(parse("Nov 21 23:15:00 h postfix/qmgr[1]: Q1: "
	    "from=<\"x, status=expired\"@site.test>, status=expired, "
	    "returned to sender", &d), MT_DLV_RESULT);
	assert_true(d.whole_message);
}

static void
quoted_sender_with_sent_status_in_an_expiry_line_stays_expired(void **state)
{
	struct mt_dlv d;

	assert_int_equal(parse("Nov 21 23:15:00 h postfix/qmgr[1]: Q1: "
	    "from=<\"a>b, status=sent\"@x.test>, status=expired, returned "
	    "to sender", &d), MT_DLV_RESULT);
	assert_int_equal(d.status, MT_DLV_EXPIRED);
	assert_true(d.whole_message);
}

static void
quoted_recipient_with_bounced_status_keeps_the_real_status(void **state)
{
	struct mt_dlv d;

	assert_int_equal(parse("Nov 21 23:15:00 h postfix/smtp[1]: Q1: "
	    "to=<\"x, status=bounced\"@y.test>, relay=mx[192.0.2.1]:25, "
	    "delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 ok)", &d),
	    MT_DLV_RESULT);
	assert_string_equal(d.rcpt, "\"x, status=bounced\"@y.test");
	assert_int_equal(d.status, MT_DLV_SENT);
	assert_string_equal(d.dsn, "2.0.0");
	assert_string_equal(d.relay, "mx[192.0.2.1]:25");
}

static void
quoted_recipient_with_fields_and_escapes_inside_the_quotes(void **state)
{
	struct mt_dlv d;

	assert_int_equal(parse("Nov 21 23:15:00 h postfix/smtp[1]: Q1: "
	    "to=<\"a>b, status=sent\"@x.test>, orig_to=<\"q\\\"> , "
	    "dsn=2.0.0, status=sent\"@x.test>, relay=none, delay=1, "
	    "dsn=5.0.0, status=bounced (nope)", &d), MT_DLV_RESULT);
	assert_string_equal(d.rcpt, "\"a>b, status=sent\"@x.test");
	assert_int_equal(d.status, MT_DLV_BOUNCED);
	assert_string_equal(d.dsn, "5.0.0");
}

static void
domain_literal_may_hold_angle_and_fields(void **state)
{
	struct mt_dlv d;

	assert_int_equal(parse("Nov 21 23:15:00 h postfix/smtp[1]: Q1: "
	    "to=<u@[x>, dsn=5.0.0, status=bounced]>, relay=none, dsn=2.0.0, "
	    "status=sent (250 ok)", &d), MT_DLV_RESULT);
	assert_int_equal(d.status, MT_DLV_SENT);
	assert_string_equal(d.dsn, "2.0.0");
}

static void
status_inside_brackets_or_parentheses_is_no_field(void **state)
{
	struct mt_dlv d;

	assert_int_equal(parse("Nov 21 23:15:00 h postfix/lmtp[1]: Q1: "
	    "to=<u@d.test>, relay=imap[private/lmtp, status=sent], delay=1, "
	    "dsn=4.0.0, status=deferred (451 try again, status=sent)", &d),
	    MT_DLV_RESULT);
	assert_int_equal(d.status, MT_DLV_DEFERRED);
	assert_string_equal(d.relay, "imap[private/lmtp, status=sent]");
	assert_string_equal(d.text, "451 try again, status=sent");
	assert_int_equal(parse("Nov 21 23:15:00 h postfix/smtp[1]: Q1: "
	    "to=<u@d.test>, conn_use=2 (a, status=sent), dsn=4.0.0", &d),
	    MT_DLV_BAD);
}

static void
unclosed_quote_or_group_is_unreadable(void **state)
{
	struct mt_dlv d;

	assert_int_equal(parse("Nov 21 23:15:00 h postfix/smtp[1]: Q1: "
	    "to=<\"a@b>, relay=x, dsn=2.0.0, status=sent (ok)", &d),
	    MT_DLV_BAD);
	assert_int_equal(parse("Nov 21 23:15:00 h postfix/smtp[1]: Q1: "
	    "to=<a@b>, relay=x[1.2.3.4, dsn=2.0.0, status=sent (ok)", &d),
	    MT_DLV_BAD);
	assert_int_equal(parse("Nov 21 23:15:00 h postfix/smtp[1]: Q1: "
	    "to=<a@b>, to=<c@d>, dsn=2.0.0, status=sent (ok)", &d),
	    MT_DLV_BAD);
	assert_int_equal(parse("Nov 21 23:15:00 h postfix/smtp[1]: Q1: "
	    "to=<a@b>, dsn=2.0.0, status=sent(ok)", &d), MT_DLV_BAD);
}

static void
forged_tags_are_foreign_and_give_nothing(void **state)
{
	static const char *const tags[] = {
		"whatever[42]", "logger", "root", "postfix[1]",
		"postfix/evil[1]", "postfix/smtpd[1]", "postfix/postlog[1]",
		"postfix/smtp.x[1]", "evilfix/smtp[1]", "postfixx/smtp[1]",
		"postfix-out2/smtp[1]", "postfix-out/smtp[1]", "/smtp[1]",
		"smtp[1]", "postfix/[1]", "postfix/smtp/evil[1]",
	};
	char line[512];
	struct mt_dlv d;

	for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
		snprintf(line, sizeof(line), "Nov 21 23:15:00 h %s: Q1: "
		    "to=<a@b.test>, relay=none, delay=1, dsn=5.0.0, "
		    "status=bounced (forged)", tags[i]);
		assert_int_equal(parse(line, &d), MT_DLV_FOREIGN);
		assert_string_equal(d.qid, "");
		assert_string_equal(d.rcpt, "");
		snprintf(line, sizeof(line), "Nov 21 23:15:00 h %s: Q1: "
		    "from=<a@b.test>, status=expired, returned to sender",
		    tags[i]);
		assert_int_equal(parse(line, &d), MT_DLV_FOREIGN);
	}
	/* a foreign line that is no result is just another line */
	assert_int_equal(parse("Nov 21 23:15:00 h sshd[9]: Q1: to=<a@b>, "
	    "relay=x", &d), MT_DLV_OTHER);
	assert_int_equal(parse("Nov 21 23:15:00 h dovecot: lmtp(u): saved",
	    &d), MT_DLV_OTHER);
}

static void
every_delivery_program_of_every_listed_name_counts(void **state)
{
	static const char *const tags[] = {
		"postfix/smtp", "postfix/lmtp[2]", "postfix/local[3]",
		"postfix/virtual[4]", "postfix/pipe[5]", "postfix/error[6]",
		"postfix/retry[7]", "postfix/discard[8]", "postfix/qmgr[9]",
		"postfix-out1/smtp[10]", "postfix/relay/smtp[11]",
		"postfix-out1/dovecot/pipe[12]",
	};
	char line[512];
	struct mt_dlv d;

	for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
		snprintf(line, sizeof(line), "Nov 21 23:15:00 h %s: Q1: "
		    "to=<a@b.test>, relay=none, delay=1, dsn=4.0.0, "
		    "status=deferred (x)", tags[i]);
		assert_int_equal(parse(line, &d), MT_DLV_RESULT);
		assert_string_equal(d.qid, "Q1");
	}
}

static void
multi_instance_name_counts_only_when_listed(void **state)
{
	static char *const only_default[] = { pf };
	static char *const out_only[] = { pf_out };
	const char *line = "Nov 21 23:15:00 h postfix-out/smtp[9]: Q1: "
	    "to=<a@b.test>, relay=x[192.0.2.1]:25, delay=1, dsn=2.0.0, "
	    "status=sent (250 ok)";
	const char *plain = "Nov 21 23:15:00 h postfix/smtp[9]: Q1: "
	    "to=<a@b.test>, relay=x[192.0.2.1]:25, delay=1, dsn=2.0.0, "
	    "status=sent (250 ok)";
	struct mt_dlv d;

	assert_int_equal(mt_dlv_parse(line, strlen(line), NOW, only_default, 1,
	    &d), MT_DLV_FOREIGN);
	assert_int_equal(mt_dlv_parse(line, strlen(line), NOW, out_only, 1,
	    &d), MT_DLV_RESULT);
	assert_string_equal(d.service, "postfix-out/smtp");
	assert_int_equal(mt_dlv_parse(plain, strlen(plain), NOW, out_only, 1,
	    &d), MT_DLV_FOREIGN);
	assert_int_equal(mt_dlv_parse(plain, strlen(plain), NOW, NULL, 0, &d),
	    MT_DLV_FOREIGN);
}

/* The destination's address from relay=, when there is one. */
static void
relay_address_is_the_destination(void **state)
{
	static const struct { const char *relay, *ip; } cases[] = {
		{ "mx.example.org[203.0.113.5]:25", "203.0.113.5" },
		{ "mx6.example.org[2001:db8::25]:25", "2001:db8::25" },
		{ "127.0.0.1[127.0.0.1]:47635", "127.0.0.1" },
		{ "x[/run/dovecot/lmtp]", "" },
		{ "mail.test[private/dovecot-lmtp]", "" },
		{ "local", "" },
		{ "none", "" },
		{ "a[b][198.51.100.9]:25", "198.51.100.9" },
		{ "x[999.1.1.1]:25", "" },
		{ "x[]:25", "" },
	};
	char line[512];
	struct mt_dlv d;
	char *json;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(line, sizeof(line), "Nov 21 23:15:00 host "
		    "postfix/smtp[1]: ABC123: to=<b@example.org>, relay=%s, "
		    "dsn=2.0.0, status=sent (250 ok)", cases[i].relay);
		assert_int_equal(parse(line, &d), 1);
		assert_string_equal(d.ip, cases[i].ip);
	}
	/* The event carries it, and the place when the caller set one. */
	assert_int_equal(parse("Nov 21 23:15:00 host postfix/smtp[1]: ABC123: "
	    "to=<b@example.org>, relay=mx[203.0.113.5]:25, dsn=2.0.0, "
	    "status=sent (250 ok)", &d), 1);
	d.have_place = 1;
	d.lat = 35.5;
	d.lon = 139.75;
	snprintf(d.cc, sizeof(d.cc), "JP");
	snprintf(d.city, sizeof(d.city), "Tokyo");
	json = mt_dlv_event_json(&d, 1);
	assert_non_null(strstr(json, "\"ip\":\"203.0.113.5\",\"lat\":35.5,"
	    "\"lon\":139.75,\"cc\":\"JP\",\"city\":\"Tokyo\""));
	free(json);
	/* A deferral names the relay it tried, not a destination. */
	assert_int_equal(parse("Nov 21 23:15:00 host postfix/smtp[1]: ABC123: "
	    "to=<b@example.org>, relay=mx[203.0.113.5]:25, dsn=4.4.1, "
	    "status=deferred (connect timed out)", &d), 1);
	json = mt_dlv_event_json(&d, 1);
	assert_null(strstr(json, "\"ip\""));
	free(json);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(relay_address_is_the_destination),
		cmocka_unit_test(smtp_sent_line_gives_relay_dsn_reply_and_service),
		cmocka_unit_test(own_syslog_name_tells_the_outbound_transport),
		cmocka_unit_test(lmtp_delivery_is_delivered_with_dovecots_session),
		cmocka_unit_test(iso_timestamp_with_offset_is_read_as_utc),
		cmocka_unit_test(deferred_line_keeps_the_reason),
		cmocka_unit_test(bounced_line_with_orig_to),
		cmocka_unit_test(quoted_local_part_with_comma_and_angle),
		cmocka_unit_test(expired_message_line_covers_every_recipient),
		cmocka_unit_test(other_postfix_lines_are_not_results),
		cmocka_unit_test(garbage_and_broken_results_are_counted_as_bad),
		cmocka_unit_test(controls_in_the_reply_never_reach_the_event),
		cmocka_unit_test(quoted_sender_with_expired_status_is_not_an_expiry),
		cmocka_unit_test(quoted_sender_with_sent_status_in_an_expiry_line_stays_expired),
		cmocka_unit_test(quoted_recipient_with_bounced_status_keeps_the_real_status),
		cmocka_unit_test(quoted_recipient_with_fields_and_escapes_inside_the_quotes),
		cmocka_unit_test(domain_literal_may_hold_angle_and_fields),
		cmocka_unit_test(status_inside_brackets_or_parentheses_is_no_field),
		cmocka_unit_test(unclosed_quote_or_group_is_unreadable),
		cmocka_unit_test(forged_tags_are_foreign_and_give_nothing),
		cmocka_unit_test(every_delivery_program_of_every_listed_name_counts),
		cmocka_unit_test(requeue_by_pickup_links_the_new_queue_id_to_the_old),
		cmocka_unit_test(multi_instance_name_counts_only_when_listed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
