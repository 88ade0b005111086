/*
 * Scheduled sending: what the releaser reads back from Postfix (postqueue
 * -j lines, postcat -h header blocks) and the X-Mailtrail-Hold marker.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../schedule/schedule.h"

#define S(lit) (lit), (sizeof(lit) - 1)

static const char real_line[] =
    "{\"queue_name\": \"hold\", \"queue_id\": \"4ABC123\", "
    "\"arrival_time\": 1796230000, \"message_size\": 345, "
    "\"forced_expire\": false, \"sender\": \"alice@site.test\", "
    "\"recipients\": [{\"address\": \"bob@example.org\"}, "
    "{\"address\": \"carol@example.org\", \"delay_reason\": \"x\"}]}";

static const char marker[] =
    "t=1796230000; qid=4ABC123; until=2026-12-02T16:46:40Z";

static void
postqueue_line_is_read_in_full(void **state)
{
	struct mt_sched_entry e;

	(void)state;
	assert_int_equal(mt_sched_entry_parse(S(real_line), &e), 0);
	assert_string_equal(e.queue_name, "hold");
	assert_string_equal(e.qid, "4ABC123");
	assert_int_equal(e.arrival, 1796230000);
	assert_string_equal(e.sender, "alice@site.test");
	assert_int_equal(e.nrcpt, 2);
	assert_int_equal(e.nkept, 2);
	assert_string_equal(e.rcpt[0], "bob@example.org");
	assert_string_equal(e.rcpt[1], "carol@example.org");
}

static void
postqueue_line_is_read_only_to_len_and_may_end_in_newline(void **state)
{
	struct mt_sched_entry e;
	char buf[sizeof(real_line) + 8];

	(void)state;
	memcpy(buf, real_line, sizeof(real_line) - 1);
	memcpy(buf + sizeof(real_line) - 1, "\nGARBAGE", 8);
	assert_int_equal(mt_sched_entry_parse(buf, sizeof(real_line), &e), 0);
	assert_string_equal(e.qid, "4ABC123");
	assert_int_equal(mt_sched_entry_parse(buf, sizeof(buf), &e), -1);
}

static void
entry_without_queue_name_or_id_is_rejected(void **state)
{
	struct mt_sched_entry e;

	(void)state;
	assert_int_equal(mt_sched_entry_parse(S(
	    "{\"queue_id\": \"4ABC123\", \"sender\": \"a@b\"}"), &e), -1);
	assert_int_equal(mt_sched_entry_parse(S(
	    "{\"queue_name\": \"hold\", \"sender\": \"a@b\"}"), &e), -1);
	assert_string_equal(e.queue_name, "");
	assert_string_equal(e.qid, "");
}

static void
entry_with_ill_typed_names_is_rejected(void **state)
{
	struct mt_sched_entry e;

	(void)state;
	assert_int_equal(mt_sched_entry_parse(S(
	    "{\"queue_name\": \"hold\", \"queue_id\": 4123}"), &e), -1);
	assert_int_equal(mt_sched_entry_parse(S(
	    "{\"queue_name\": [\"hold\"], \"queue_id\": \"4ABC123\"}"), &e), -1);
	assert_int_equal(mt_sched_entry_parse(S(
	    "{\"queue_name\": null, \"queue_id\": \"4ABC123\"}"), &e), -1);
}

static void
entry_with_ill_typed_extras_reads_them_as_absent(void **state)
{
	struct mt_sched_entry e;

	(void)state;
	assert_int_equal(mt_sched_entry_parse(S(
	    "{\"queue_name\": \"hold\", \"queue_id\": \"4ABC123\", "
	    "\"arrival_time\": \"1796230000\", \"sender\": 7, "
	    "\"recipients\": [\"bob@example.org\", {\"address\": 5}, "
	    "{\"address\": \"carol@example.org\"}]}"), &e), 0);
	assert_int_equal(e.arrival, -1);
	assert_string_equal(e.sender, "");
	assert_int_equal(e.nrcpt, 1);
	assert_string_equal(e.rcpt[0], "carol@example.org");
	assert_int_equal(mt_sched_entry_parse(S(
	    "{\"queue_name\": \"hold\", \"queue_id\": \"4ABC123\", "
	    "\"arrival_time\": -5, \"recipients\": {\"address\": \"b@x\"}}"),
	    &e), 0);
	assert_int_equal(e.arrival, -1);
	assert_int_equal(e.nrcpt, 0);
	assert_int_equal(e.nkept, 0);
}

static void
escaped_controls_in_sender_become_question_marks(void **state)
{
	struct mt_sched_entry e;

	(void)state;
	assert_int_equal(mt_sched_entry_parse(S(
	    "{\"queue_name\": \"hold\", \"queue_id\": \"4ABC123\", "
	    "\"sender\": \"al\\u0001ice\\r\\n\\u0000\\u007f@site.test\", "
	    "\"recipients\": [{\"address\": \"b\\tob@x\"}]}"), &e), 0);
	assert_string_equal(e.sender, "al?ice????@site.test");
	assert_string_equal(e.rcpt[0], "b?ob@x");
}

static void
long_sender_is_cut_without_splitting_utf8(void **state)
{
	struct mt_sched_entry e;
	char line[1024];
	char want[MT_SCHED_ADDR_MAX];
	int n;

	(void)state;
	memset(want, 'a', 510);
	want[510] = '\0';
	n = snprintf(line, sizeof(line), "{\"queue_name\": \"hold\", "
	    "\"queue_id\": \"4ABC123\", \"sender\": \"%s\\u00e9@x\"}", want);
	assert_int_equal(mt_sched_entry_parse(line, (size_t)n, &e), 0);
	assert_string_equal(e.sender, want);
}

static void
many_recipients_are_all_counted_and_the_first_hundred_kept(void **state)
{
	struct mt_sched_entry e;
	char line[8192];
	size_t n;

	(void)state;
	n = (size_t)snprintf(line, sizeof(line), "{\"queue_name\": \"hold\", "
	    "\"queue_id\": \"4ABC123\", \"recipients\": [");
	for (int i = 0; i < 150; i++)
		n += (size_t)snprintf(line + n, sizeof(line) - n,
		    "%s{\"address\": \"r%d@example.org\"}", i ? ", " : "", i);
	n += (size_t)snprintf(line + n, sizeof(line) - n, "]}");
	assert_true(n < sizeof(line));
	assert_int_equal(mt_sched_entry_parse(line, n, &e), 0);
	assert_int_equal(e.nrcpt, 150);
	assert_int_equal(e.nkept, MT_SCHED_RCPT_MAX);
	assert_string_equal(e.rcpt[0], "r0@example.org");
	assert_string_equal(e.rcpt[99], "r99@example.org");
}

static void
bad_queue_ids_are_rejected(void **state)
{
	struct mt_sched_entry e;

	(void)state;
	assert_int_equal(mt_sched_entry_parse(S(
	    "{\"queue_name\": \"hold\", \"queue_id\": \"4ABC-123\"}"), &e), -1);
	assert_int_equal(mt_sched_entry_parse(S(
	    "{\"queue_name\": \"hold\", \"queue_id\": \"\"}"), &e), -1);
	assert_int_equal(mt_sched_entry_parse(S(
	    "{\"queue_name\": \"hold\", \"queue_id\": \"4ABC\\u0000\"}"), &e), -1);
	assert_int_equal(mt_sched_entry_parse(S(
	    "{\"queue_name\": \"hold\", \"queue_id\": "
	    "\"0123456789abcdef0123456789ABCDEF\"}"), &e), -1);
	assert_int_equal(mt_sched_entry_parse(S(
	    "{\"queue_name\": \"hold\", \"queue_id\": "
	    "\"4Lw3Fv0yY4z9sXk0123456789ABCDE\"}"), &e), 0);
	assert_string_equal(e.qid, "4Lw3Fv0yY4z9sXk0123456789ABCDE");
}

static void
not_json_or_not_an_object_is_rejected(void **state)
{
	struct mt_sched_entry e;

	(void)state;
	assert_int_equal(mt_sched_entry_parse(S("postqueue: fatal: Queue "
	    "report unavailable - mail system is down"), &e), -1);
	assert_int_equal(mt_sched_entry_parse(S(""), &e), -1);
	assert_int_equal(mt_sched_entry_parse(S("[{\"queue_name\": \"hold\", "
	    "\"queue_id\": \"4ABC123\"}]"), &e), -1);
	assert_int_equal(mt_sched_entry_parse(S("{\"queue_name\": \"hold\", "
	    "\"queue_id\": \"4ABC123\""), &e), -1);
}

static void
trailing_garbage_and_duplicate_keys_are_rejected(void **state)
{
	struct mt_sched_entry e;

	(void)state;
	assert_int_equal(mt_sched_entry_parse(S("{\"queue_name\": \"hold\", "
	    "\"queue_id\": \"4ABC123\"} x"), &e), -1);
	assert_int_equal(mt_sched_entry_parse(S("{\"queue_name\": \"hold\", "
	    "\"queue_id\": \"4ABC123\"}{}"), &e), -1);
	assert_int_equal(mt_sched_entry_parse(S("{\"queue_name\": \"hold\", "
	    "\"queue_id\": \"4ABC123\", \"queue_id\": \"5DEF456\"}"), &e), -1);
	assert_int_equal(mt_sched_entry_parse(S("{\"queue_name\": \"hold\", "
	    "\"queue_id\": \"4ABC123\", \"recipients\": [{\"address\": \"a@x\", "
	    "\"address\": \"b@x\"}]}"), &e), -1);
}

static void
hold_marker_is_formatted_for_machines_and_people(void **state)
{
	char buf[128];

	(void)state;
	assert_int_equal(mt_sched_hold_format(buf, sizeof(buf), 1796230000,
	    "4ABC123"), 0);
	assert_string_equal(buf, marker);
	assert_int_equal(mt_sched_hold_format(buf, sizeof(buf), 0, "A"), 0);
	assert_string_equal(buf, "t=0; qid=A; until=1970-01-01T00:00:00Z");
}

static void
hold_marker_round_trips(void **state)
{
	char buf[128], qid[MT_SCHED_QID_MAX];
	int64_t t;

	(void)state;
	assert_int_equal(mt_sched_hold_format(buf, sizeof(buf),
	    999999999999LL, "4Lw3Fv0yY4z9sXk"), 0);
	assert_int_equal(mt_sched_hold_parse(buf, strlen(buf), &t, qid,
	    sizeof(qid)), 0);
	assert_int_equal(t, 999999999999LL);
	assert_string_equal(qid, "4Lw3Fv0yY4z9sXk");
}

static void
hold_marker_that_does_not_fit_or_has_bad_input_is_refused(void **state)
{
	char buf[128];

	(void)state;
	assert_int_equal(mt_sched_hold_format(buf, sizeof(marker) - 1,
	    1796230000, "4ABC123"), -1);
	assert_string_equal(buf, "");
	assert_int_equal(mt_sched_hold_format(buf, sizeof(marker),
	    1796230000, "4ABC123"), 0);
	assert_int_equal(mt_sched_hold_format(buf, sizeof(buf), -1, "4ABC"), -1);
	assert_int_equal(mt_sched_hold_format(buf, sizeof(buf),
	    1000000000000LL, "4ABC"), -1);
	assert_int_equal(mt_sched_hold_format(buf, sizeof(buf), 1, "4AB;C"), -1);
	assert_int_equal(mt_sched_hold_format(buf, sizeof(buf), 1, ""), -1);
	assert_int_equal(mt_sched_hold_format(buf, sizeof(buf), 1,
	    "0123456789abcdef0123456789ABCDEF"), -1);
}

static void
hold_marker_fields_may_come_in_any_order(void **state)
{
	char qid[MT_SCHED_QID_MAX];
	int64_t t;

	(void)state;
	assert_int_equal(mt_sched_hold_parse(S("until=2026-12-02T16:46:40Z; "
	    "qid=4ABC123;t=1796230000 ;"), &t, qid, sizeof(qid)), 0);
	assert_int_equal(t, 1796230000);
	assert_string_equal(qid, "4ABC123");
}

static void
hold_marker_ignores_unknown_fields(void **state)
{
	char qid[MT_SCHED_QID_MAX];
	int64_t t;

	(void)state;
	assert_int_equal(mt_sched_hold_parse(S("t=5; v=2; x=a=b\x01; qid=Z9"),
	    &t, qid, sizeof(qid)), 0);
	assert_int_equal(t, 5);
	assert_string_equal(qid, "Z9");
}

static void
hold_marker_with_duplicate_or_missing_fields_is_rejected(void **state)
{
	char qid[MT_SCHED_QID_MAX];
	int64_t t;

	(void)state;
	assert_int_equal(mt_sched_hold_parse(S("t=5; qid=A; t=5"), &t, qid,
	    sizeof(qid)), -1);
	assert_int_equal(t, -1);
	assert_string_equal(qid, "");
	assert_int_equal(mt_sched_hold_parse(S("t=5; qid=A; qid=B"), &t, qid,
	    sizeof(qid)), -1);
	assert_int_equal(mt_sched_hold_parse(S("t=5"), &t, qid,
	    sizeof(qid)), -1);
	assert_int_equal(mt_sched_hold_parse(S("qid=A"), &t, qid,
	    sizeof(qid)), -1);
	assert_int_equal(mt_sched_hold_parse(S(""), &t, qid, sizeof(qid)), -1);
	assert_int_equal(mt_sched_hold_parse(S("t=5; qid=A; junk"), &t, qid,
	    sizeof(qid)), -1);
}

static void
hold_marker_with_bad_t_or_qid_is_rejected(void **state)
{
	char qid[MT_SCHED_QID_MAX], small[4];
	int64_t t;

	(void)state;
	assert_int_equal(mt_sched_hold_parse(S("t=; qid=A"), &t, qid,
	    sizeof(qid)), -1);
	assert_int_equal(mt_sched_hold_parse(S("t=-5; qid=A"), &t, qid,
	    sizeof(qid)), -1);
	assert_int_equal(mt_sched_hold_parse(S("t=12a; qid=A"), &t, qid,
	    sizeof(qid)), -1);
	assert_int_equal(mt_sched_hold_parse(S("t=1 2; qid=A"), &t, qid,
	    sizeof(qid)), -1);
	assert_int_equal(mt_sched_hold_parse(S("t=1234567890123; qid=A"), &t,
	    qid, sizeof(qid)), -1);
	assert_int_equal(mt_sched_hold_parse(S("t=123456789012; qid=A"), &t,
	    qid, sizeof(qid)), 0);
	assert_int_equal(mt_sched_hold_parse(S("t=5; qid=4A\0B"), &t, qid,
	    sizeof(qid)), -1);
	assert_int_equal(mt_sched_hold_parse(S("t=5; qid=4ABC"), &t, small,
	    sizeof(small)), -1);
	assert_int_equal(mt_sched_hold_parse(S("t=5; qid=4AB"), &t, small,
	    sizeof(small)), 0);
	assert_string_equal(small, "4AB");
}

static void
headers_are_unfolded_and_trimmed(void **state)
{
	struct mt_sched_headers h;
	char qid[MT_SCHED_QID_MAX];
	int64_t t;
	static const char text[] =
	    "Received: from a\n\tby b\n"
	    "X-Mailtrail-Hold: t=1796230000;\n\tqid=4ABC123;\n"
	    "  until=2026-12-02T16:46:40Z  \n"
	    "Subject: two\n  lines\n"
	    "Deferred-Delivery: Wed, 2 Dec 2026\n 17:46:40 +0100\n";

	(void)state;
	assert_int_equal(mt_sched_headers_scan(S(text), &h), 0);
	assert_int_equal(h.n_hold, 1);
	assert_string_equal(h.hold,
	    "t=1796230000; qid=4ABC123;  until=2026-12-02T16:46:40Z");
	assert_int_equal(mt_sched_hold_parse(h.hold, strlen(h.hold), &t, qid,
	    sizeof(qid)), 0);
	assert_int_equal(t, 1796230000);
	assert_string_equal(h.subject, "two  lines");
	assert_int_equal(h.n_dd, 1);
	assert_string_equal(h.dd, "Wed, 2 Dec 2026 17:46:40 +0100");
	assert_int_equal(h.n_id, 0);
	assert_string_equal(h.id, "");
}

static void
header_names_match_case_insensitively(void **state)
{
	struct mt_sched_headers h;

	(void)state;
	assert_int_equal(mt_sched_headers_scan(S(
	    "x-mailtrail-id: abc.DEF_1-2\nx-MAILTRAIL-hold: t=1; qid=A\n"
	    "DEFERRED-DELIVERY: soon\nsubject: hi\r\n"
	    "X-Mailtrail-IDs: not-ours\nX-Mailtrail-I: neither\n"), &h), 0);
	assert_int_equal(h.n_id, 1);
	assert_string_equal(h.id, "abc.DEF_1-2");
	assert_int_equal(h.n_hold, 1);
	assert_string_equal(h.hold, "t=1; qid=A");
	assert_int_equal(h.n_dd, 1);
	assert_string_equal(h.dd, "soon");
	assert_string_equal(h.subject, "hi");
}

static void
name_with_blanks_before_the_colon_is_a_header(void **state)
{
	struct mt_sched_headers h;

	(void)state;
	assert_int_equal(mt_sched_headers_scan(S(
	    "X-Mailtrail-Hold : t=1; qid=A\n"), &h), 0);
	assert_int_equal(h.n_hold, 1);
	assert_string_equal(h.hold, "t=1; qid=A");
}

static void
second_tracking_id_is_counted_and_the_first_kept(void **state)
{
	struct mt_sched_headers h;

	(void)state;
	assert_int_equal(mt_sched_headers_scan(S(
	    "X-Mailtrail-ID: first\nX-Mailtrail-ID: second\n"
	    "X-Mailtrail-Hold: t=1; qid=A\nX-Mailtrail-Hold: t=2; qid=B\n"
	    "Subject: one\nSubject: two\n"), &h), 0);
	assert_int_equal(h.n_id, 2);
	assert_string_equal(h.id, "first");
	assert_int_equal(h.n_hold, 2);
	assert_string_equal(h.hold, "t=1; qid=A");
	assert_string_equal(h.subject, "one");
}

static void
tracking_id_with_bad_characters_or_length_is_dropped(void **state)
{
	struct mt_sched_headers h;
	char text[128];

	(void)state;
	assert_int_equal(mt_sched_headers_scan(S(
	    "X-Mailtrail-ID: abc def\n"), &h), 0);
	assert_int_equal(h.n_id, 1);
	assert_string_equal(h.id, "");
	assert_int_equal(mt_sched_headers_scan(S(
	    "X-Mailtrail-ID: abc/def\n"), &h), 0);
	assert_string_equal(h.id, "");
	assert_int_equal(mt_sched_headers_scan(S("X-Mailtrail-ID:\n"), &h), 0);
	assert_int_equal(h.n_id, 1);
	assert_string_equal(h.id, "");
	memcpy(text, "X-Mailtrail-ID: ", 16);
	memset(text + 16, 'a', 65);
	assert_int_equal(mt_sched_headers_scan(text, 16 + 65, &h), 0);
	assert_string_equal(h.id, "");
	assert_int_equal(mt_sched_headers_scan(text, 16 + 64, &h), 0);
	assert_int_equal(strlen(h.id), 64);
	memcpy(text + 16 + 64, " \t \n", 4);
	assert_int_equal(mt_sched_headers_scan(text, 16 + 64 + 4, &h), 0);
	assert_int_equal(strlen(h.id), 64);
}

static void
postcat_banner_lines_are_ignored(void **state)
{
	struct mt_sched_headers h;

	(void)state;
	assert_int_equal(mt_sched_headers_scan(S(
	    "*** MESSAGE CONTENTS hold/4ABC123 ***\n"
	    "Subject: hello\n"
	    "*** HEADER EXTRACTED hold/4ABC123 ***\n"
	    " not a continuation of Subject\n"
	    "*** MESSAGE FILE END hold/4ABC123 ***\n"), &h), 0);
	assert_string_equal(h.subject, "hello");
	assert_int_equal(mt_sched_headers_scan(S(
	    "*** MESSAGE CONTENTS hold/4ABC123 ***\n"
	    "*** : hold/4ABC123\n"
	    "*** HEADER EXTRACTED hold/4ABC123 ***\n"), &h), -1);
}

static void
scan_stops_at_the_first_empty_line(void **state)
{
	struct mt_sched_headers h;

	(void)state;
	assert_int_equal(mt_sched_headers_scan(S(
	    "Subject: hi\n\nX-Mailtrail-Hold: t=1; qid=A\n"), &h), 0);
	assert_int_equal(h.n_hold, 0);
	assert_string_equal(h.hold, "");
	assert_int_equal(mt_sched_headers_scan(S(
	    "Subject: hi\r\n\r\nX-Mailtrail-ID: body\r\n"), &h), 0);
	assert_int_equal(h.n_id, 0);
	assert_int_equal(mt_sched_headers_scan(S(
	    "\nSubject: hi\n"), &h), -1);
}

static void
overlong_lines_are_skipped_in_full(void **state)
{
	struct mt_sched_headers h;
	size_t big = MT_SCHED_LINE_MAX + 1, n;
	static char text[2 * MT_SCHED_LINE_MAX + 256];

	(void)state;
	/* a Subject line one byte too long: not cut, skipped */
	n = (size_t)sprintf(text, "Subject: ");
	memset(text + n, 'x', big - n);
	n = big;
	n += (size_t)sprintf(text + n, "\nX-Mailtrail-ID: real\n");
	assert_int_equal(mt_sched_headers_scan(text, n, &h), 0);
	assert_string_equal(h.subject, "");
	assert_string_equal(h.id, "real");
	/* at the limit it is read, and cut */
	text[big - 1] = '\n';
	assert_int_equal(mt_sched_headers_scan(text, big, &h), 0);
	assert_int_equal(strlen(h.subject), MT_SCHED_SUBJECT_MAX - 1);
	/* an overlong continuation: the header is counted, its value dropped */
	n = (size_t)sprintf(text, "Deferred-Delivery: soon\n ");
	memset(text + n, 'y', big);
	n += big;
	n += (size_t)sprintf(text + n, "\n more\nSubject: after\n");
	assert_int_equal(mt_sched_headers_scan(text, n, &h), 0);
	assert_int_equal(h.n_dd, 1);
	assert_string_equal(h.dd, "");
	assert_string_equal(h.subject, "after");
}

static void
overlong_marker_header_is_counted_without_a_value(void **state)
{
	struct mt_sched_headers h;
	size_t n;
	static char text[MT_SCHED_LINE_MAX + 256];

	(void)state;
	n = (size_t)sprintf(text, "X-Mailtrail-Hold: t=1; qid=A; x=");
	memset(text + n, 'z', MT_SCHED_LINE_MAX);
	n += MT_SCHED_LINE_MAX;
	n += (size_t)sprintf(text + n, "\nX-Mailtrail-Hold: t=2; qid=B\n");
	assert_int_equal(mt_sched_headers_scan(text, n, &h), 0);
	assert_int_equal(h.n_hold, 2);
	assert_string_equal(h.hold, "");
}

static void
marker_too_long_for_its_field_is_dropped_not_cut(void **state)
{
	struct mt_sched_headers h;
	char text[512];
	int n;

	(void)state;
	n = snprintf(text, sizeof(text), "X-Mailtrail-Hold: t=1; x=%0300d; "
	    "qid=ABCDEF\n", 0);
	assert_int_equal(mt_sched_headers_scan(text, (size_t)n, &h), 0);
	assert_int_equal(h.n_hold, 1);
	assert_string_equal(h.hold, "");
}

static void
nul_and_control_bytes_never_reach_a_field(void **state)
{
	struct mt_sched_headers h;

	(void)state;
	assert_int_equal(mt_sched_headers_scan(S(
	    "X-Mailtrail-\0ID: hidden\n"
	    "Subject: a\0b\x01\x7f\tc \xff\n"
	    "Deferred-Delivery: \0\n"
	    "X-Mailtrail-ID: ab\0cd\n"), &h), 0);
	assert_int_equal(h.n_id, 1);
	assert_string_equal(h.id, "");
	assert_string_equal(h.subject, "a?b?? c ?");
	assert_int_equal(h.n_dd, 1);
	assert_string_equal(h.dd, "?");
}

static void
subject_is_cut_without_splitting_utf8(void **state)
{
	struct mt_sched_headers h;
	char text[256];
	size_t n;

	(void)state;
	memcpy(text, "Subject: ", 9);
	memset(text + 9, 'a', 125);
	memcpy(text + 9 + 125, "\xc3\xa9\xc3\xa9", 4);
	n = 9 + 125 + 4;
	assert_int_equal(mt_sched_headers_scan(text, n, &h), 0);
	assert_int_equal(strlen(h.subject), 127);
	assert_memory_equal(h.subject + 125, "\xc3\xa9", 2);
	text[9 + 125] = 'a';
	memcpy(text + 9 + 126, "\xc3\xa9", 2);
	n = 9 + 126 + 2;
	assert_int_equal(mt_sched_headers_scan(text, n, &h), 0);
	assert_int_equal(strlen(h.subject), 126);
}

static void
invalid_utf8_in_subject_becomes_question_marks(void **state)
{
	struct mt_sched_headers h;

	(void)state;
	assert_int_equal(mt_sched_headers_scan(S("Subject: caf\xc3\xa9 "
	    "\xe0\x80\xaf \xed\xa0\x80 \xf4\x90\x80\x80 \xc3 \xf0\x9f\x98\x80\n"),
	    &h), 0);
	assert_string_equal(h.subject,
	    "caf\xc3\xa9 ??? ??? ???? ? \xf0\x9f\x98\x80");
}

static void
text_without_headers_is_reported(void **state)
{
	struct mt_sched_headers h;

	(void)state;
	assert_int_equal(mt_sched_headers_scan(S(""), &h), -1);
	assert_int_equal(mt_sched_headers_scan(S("no colon here\n"), &h), -1);
	assert_int_equal(mt_sched_headers_scan(S(": no name\n"), &h), -1);
	assert_int_equal(mt_sched_headers_scan(S(" Subject: cont\n"), &h), -1);
	assert_string_equal(h.subject, "");
	assert_int_equal(mt_sched_headers_scan(S("Subject: last line"), &h), 0);
	assert_string_equal(h.subject, "last line");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(postqueue_line_is_read_in_full),
		cmocka_unit_test(postqueue_line_is_read_only_to_len_and_may_end_in_newline),
		cmocka_unit_test(entry_without_queue_name_or_id_is_rejected),
		cmocka_unit_test(entry_with_ill_typed_names_is_rejected),
		cmocka_unit_test(entry_with_ill_typed_extras_reads_them_as_absent),
		cmocka_unit_test(escaped_controls_in_sender_become_question_marks),
		cmocka_unit_test(long_sender_is_cut_without_splitting_utf8),
		cmocka_unit_test(many_recipients_are_all_counted_and_the_first_hundred_kept),
		cmocka_unit_test(bad_queue_ids_are_rejected),
		cmocka_unit_test(not_json_or_not_an_object_is_rejected),
		cmocka_unit_test(trailing_garbage_and_duplicate_keys_are_rejected),
		cmocka_unit_test(hold_marker_is_formatted_for_machines_and_people),
		cmocka_unit_test(hold_marker_round_trips),
		cmocka_unit_test(hold_marker_that_does_not_fit_or_has_bad_input_is_refused),
		cmocka_unit_test(hold_marker_fields_may_come_in_any_order),
		cmocka_unit_test(hold_marker_ignores_unknown_fields),
		cmocka_unit_test(hold_marker_with_duplicate_or_missing_fields_is_rejected),
		cmocka_unit_test(hold_marker_with_bad_t_or_qid_is_rejected),
		cmocka_unit_test(headers_are_unfolded_and_trimmed),
		cmocka_unit_test(header_names_match_case_insensitively),
		cmocka_unit_test(name_with_blanks_before_the_colon_is_a_header),
		cmocka_unit_test(second_tracking_id_is_counted_and_the_first_kept),
		cmocka_unit_test(tracking_id_with_bad_characters_or_length_is_dropped),
		cmocka_unit_test(postcat_banner_lines_are_ignored),
		cmocka_unit_test(scan_stops_at_the_first_empty_line),
		cmocka_unit_test(overlong_lines_are_skipped_in_full),
		cmocka_unit_test(overlong_marker_header_is_counted_without_a_value),
		cmocka_unit_test(marker_too_long_for_its_field_is_dropped_not_cut),
		cmocka_unit_test(nul_and_control_bytes_never_reach_a_field),
		cmocka_unit_test(subject_is_cut_without_splitting_utf8),
		cmocka_unit_test(invalid_utf8_in_subject_becomes_question_marks),
		cmocka_unit_test(text_without_headers_is_reported),
	};
	return cmocka_run_group_tests_name("sched_queue", tests, NULL, NULL);
}
