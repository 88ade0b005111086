/* Dovecot log lines of mailbox/mailtrail.lua to mailbox events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "../../mailbox/dovecot.h"

#define NOW 1796223600000LL	/* 2026-12-02T15:00:00Z; tests run in UTC */

/* The log_path layout with the harness's log_timestamp, then BODY. */
#define FILE_PREFIX "2026-12-02 14:50:29 imap(alice@dove.test)<2505>" \
	"<UMySw6dhBuXLAHEF>: Info: mailtrail: "
#define GOOD_REST "service=imap user=alice@dove.test " \
	"session=UMySw6dhBuXLAHEF rip=203.0.113.5 uidvalidity=1796223028 uid=1"

static enum mt_dove_kind
parse(const char *line, struct mt_dove_event *e)
{
	return mt_dove_parse(line, strlen(line), NOW, e);
}

/* FILE_PREFIX + body, parsed. */
static enum mt_dove_kind
parse_body(const char *body, struct mt_dove_event *e)
{
	char line[8192];

	snprintf(line, sizeof(line), "%s%s", FILE_PREFIX, body);
	return parse(line, e);
}

/* ... rest ... box=BOX, parsed. */
static enum mt_dove_kind
parse_box(const char *box, struct mt_dove_event *e)
{
	char body[8192];

	snprintf(body, sizeof(body), "v=1 ev=read " GOOD_REST " box=%s", box);
	return parse_body(body, e);
}

static void
assert_empty(const struct mt_dove_event *e)
{
	assert_int_equal(e->t_ms, -1);
	assert_int_equal(e->ev, 0);
	assert_string_equal(e->user, "");
	assert_string_equal(e->box, "");
	assert_int_equal(e->uid, 0);
}

static void
real_lines_of_every_event_from_the_log_file(void **state)
{
	/* captured from Dovecot 2.3.19.1 running mailbox/mailtrail.lua */
	static const struct {
		const char *line;
		enum mt_dove_ev ev;
		const char *service, *user, *session, *rip, *box;
		unsigned long uidvalidity, uid;
	} cases[] = {
		{ "2026-12-02 14:50:28 lmtp(bob@dove.test)<2480><2AoDGjQwEGuwCQAA"
		  "g+zDdQ:R2>: Info: mailtrail: v=1 ev=deliver service=lmtp "
		  "user=bob@dove.test session=2AoDGjQwEGuwCQAAg+zDdQ:R2 "
		  "rip=127.0.0.1 uidvalidity=1796223029 uid=1 box=INBOX",
		  MT_DOVE_DELIVER, "lmtp", "bob@dove.test",
		  "2AoDGjQwEGuwCQAAg+zDdQ:R2", "127.0.0.1", "INBOX",
		  1796223029UL, 1 },
		{ "2026-12-02 14:50:33 imap(alice@dove.test)<2505><UMySw6dhBuXLA"
		  "HEF>: Info: mailtrail: v=1 ev=append service=imap "
		  "user=alice@dove.test session=UMySw6dhBuXLAHEF "
		  "rip=203.0.113.5 uidvalidity=1796223030 uid=1 box=Archive",
		  MT_DOVE_APPEND, "imap", "alice@dove.test", "UMySw6dhBuXLAHEF",
		  "203.0.113.5", "Archive", 1796223030UL, 1 },
		{ "2026-12-02 14:50:37 pop3(bob@dove.test)<2772><i28OxKdhQJzGM2Q"
		  "H>: Info: mailtrail: v=1 ev=read service=pop3 "
		  "user=bob@dove.test session=i28OxKdhQJzGM2QH rip=198.51.100.7 "
		  "uidvalidity=1796223029 uid=1 box=INBOX",
		  MT_DOVE_READ, "pop3", "bob@dove.test", "i28OxKdhQJzGM2QH",
		  "198.51.100.7", "INBOX", 1796223029UL, 1 },
		{ "2026-12-02 14:50:31 imap(alice@dove.test)<2505><UMySw6dhBuXLA"
		  "HEF>: Info: mailtrail: v=1 ev=trash service=imap "
		  "user=alice@dove.test session=UMySw6dhBuXLAHEF "
		  "rip=203.0.113.5 uidvalidity=1796223028 uid=3 box=INBOX",
		  MT_DOVE_TRASH, "imap", "alice@dove.test", "UMySw6dhBuXLAHEF",
		  "203.0.113.5", "INBOX", 1796223028UL, 3 },
		{ "2026-12-02 14:50:37 pop3(bob@dove.test)<2772><i28OxKdhQJzGM2Q"
		  "H>: Info: mailtrail: v=1 ev=expunge service=pop3 "
		  "user=bob@dove.test session=i28OxKdhQJzGM2QH rip=198.51.100.7 "
		  "uidvalidity=1796223029 uid=2 box=INBOX",
		  MT_DOVE_EXPUNGE, "pop3", "bob@dove.test", "i28OxKdhQJzGM2QH",
		  "198.51.100.7", "INBOX", 1796223029UL, 2 },
	};
	struct mt_dove_event e;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(parse(cases[i].line, &e), MT_DOVE_EVENT);
		assert_int_equal(e.ev, cases[i].ev);
		assert_string_equal(e.service, cases[i].service);
		assert_string_equal(e.user, cases[i].user);
		assert_string_equal(e.session, cases[i].session);
		assert_string_equal(e.rip, cases[i].rip);
		assert_string_equal(e.box, cases[i].box);
		assert_int_equal(e.uidvalidity, cases[i].uidvalidity);
		assert_int_equal(e.uid, cases[i].uid);
		assert_true(e.t_ms >= 1796223028000LL &&
		    e.t_ms <= 1796223037000LL);
	}
	assert_string_equal(mt_dove_ev_name(MT_DOVE_DELIVER), "deliver");
	assert_string_equal(mt_dove_ev_name(MT_DOVE_APPEND), "append");
	assert_string_equal(mt_dove_ev_name(MT_DOVE_READ), "read");
	assert_string_equal(mt_dove_ev_name(MT_DOVE_TRASH), "trash");
	assert_string_equal(mt_dove_ev_name(MT_DOVE_EXPUNGE), "expunge");
	assert_string_equal(mt_dove_ev_name((enum mt_dove_ev)0), "unknown");
	assert_string_equal(mt_dove_ev_name((enum mt_dove_ev)6), "unknown");
}

static void
default_log_timestamp_and_rip_in_the_prefix(void **state)
{
	struct mt_dove_event e;

	assert_int_equal(parse("Dec 02 14:31:12 imap(alice@dove.test)<31852>"
	    "<dsgIbadhIKXLAHEF><203.0.113.5>: Info: mailtrail: v=1 ev=read "
	    "service=imap user=alice@dove.test session=dsgIbadhIKXLAHEF "
	    "rip=203.0.113.5 uidvalidity=1796221576 uid=1 box=INBOX", &e),
	    MT_DOVE_EVENT);
	assert_int_equal(e.t_ms, 1796221872000LL);	/* 14:31:12Z */
	assert_string_equal(e.session, "dsgIbadhIKXLAHEF");
	/* an IPv6 prefix holds ':' but no ": " */
	assert_int_equal(parse("Dec 02 14:31:12 imap(a@b)<1><S><2001:db8::5>: "
	    "Info: mailtrail: v=1 ev=read service=imap user=a@b session=S "
	    "rip=2001:db8::5 uidvalidity=7 uid=1 box=INBOX", &e),
	    MT_DOVE_EVENT);
	assert_string_equal(e.rip, "2001:db8::5");
}

static void
syslog_line_with_the_dovecot_tag_is_an_event(void **state)
{
	struct mt_dove_event e;

	/* as Dovecot 2.3.19 writes through syslog(3): no "Info: " */
	assert_int_equal(parse("Dec  2 14:51:06 mx1 dovecot: imap(alice@dove."
	    "test)<3165><TwLTxadhzuvLAHEF>: mailtrail: v=1 ev=append "
	    "service=imap user=alice@dove.test session=TwLTxadhzuvLAHEF "
	    "rip=203.0.113.5 uidvalidity=1796223067 uid=1 box=x%20y%3D%25z",
	    &e), MT_DOVE_EVENT);
	assert_int_equal(e.t_ms, 1796223066000LL);
	assert_int_equal(e.ev, MT_DOVE_APPEND);
	assert_string_equal(e.box, "x y=%z");
	/* dovecot[pid] (journald), "Info: " kept (log_path = /dev/stderr) */
	assert_int_equal(parse("Dec 12 04:05:06 mx1 dovecot[812]: lmtp(bob@"
	    "dove.test)<9><xstf:R2>: Info: mailtrail: v=1 ev=deliver "
	    "service=lmtp user=bob@dove.test session=xstf:R2 rip=- "
	    "uidvalidity=5 uid=2 box=INBOX", &e), MT_DOVE_EVENT);
	assert_string_equal(e.service, "lmtp");
	assert_string_equal(e.rip, "");
	/* RFC 3339 timestamp (rsyslog's high-precision format) */
	assert_int_equal(parse("2026-12-02T14:31:12.250+01:00 mx1 dovecot: "
	    "imap(a@b)<1><S>: mailtrail: v=1 ev=read service=imap user=a@b "
	    "session=S rip=- uidvalidity=5 uid=2 box=INBOX", &e),
	    MT_DOVE_EVENT);
	assert_int_equal(e.t_ms, 1796218272250LL);	/* 13:31:12.250Z */
	assert_int_equal(parse("2026-12-02T14:31:12Z mx1 dovecot: imap(a@b)"
	    "<1><S>: mailtrail: v=1 ev=read service=imap user=a@b session=S "
	    "rip=- uidvalidity=5 uid=2 box=INBOX", &e), MT_DOVE_EVENT);
	assert_int_equal(e.t_ms, 1796221872000LL);
}

static void
foreign_syslog_tag_is_foreign_and_gives_nothing(void **state)
{
	static const char *const tags[] = {
		"evil", "dovecot-evil", "dovecotx", "Dovecot", "imap",
		"mt-dovecot-wy3cznwd", "postfix/lmtp[9]",
	};
	struct mt_dove_event e;
	char line[1024];

	for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
		snprintf(line, sizeof(line), "Dec  2 14:31:12 mx1 %s: imap(bob@"
		    "dove.test)<1><S>: mailtrail: v=1 ev=read service=imap "
		    "user=bob@dove.test session=S rip=- uidvalidity=5 uid=2 "
		    "box=INBOX", tags[i]);
		assert_int_equal(parse(line, &e), MT_DOVE_FOREIGN);
		assert_empty(&e);
	}
	/* a foreign line that would not even be well-formed is just other */
	assert_int_equal(parse("Dec  2 14:31:12 mx1 evil: imap(b)<1><S>: "
	    "mailtrail: v=1 ev=read uid=9", &e), MT_DOVE_OTHER);
	/* a tag with a pid that is no number is no syslog tag we know */
	assert_int_equal(parse("Dec  2 14:31:12 mx1 dovecot[x]: imap(b)<1><S>: "
	    "mailtrail: v=1 ev=read service=imap user=b session=S rip=- "
	    "uidvalidity=5 uid=2 box=INBOX", &e), MT_DOVE_OTHER);
}

static void
year_less_timestamp_takes_the_year_before_now(void **state)
{
	struct mt_dove_event e;

	/* read on Dec 2 2026: Dec 31 is last year's */
	assert_int_equal(parse("Dec 31 23:59:59 imap(a@b)<1><S>: Info: mailtrail:"
	    " v=1 ev=read service=imap user=a@b session=S rip=- uidvalidity=5 "
	    "uid=2 box=INBOX", &e), MT_DOVE_EVENT);
	assert_int_equal(e.t_ms, 1767225599000LL);	/* 2025-12-31 */
}

static void
file_line_without_timestamp_has_no_time(void **state)
{
	struct mt_dove_event e;

	/* log_timestamp = "", and doveadm's own stderr */
	assert_int_equal(parse("doveadm(bob@dove.test): Info: mailtrail: v=1 "
	    "ev=expunge service=doveadm user=bob@dove.test session=H59JJj4wEGv"
	    "YCgAAg+zDdQ rip=- uidvalidity=1796223029 uid=1 box=INBOX", &e),
	    MT_DOVE_EVENT);
	assert_int_equal(e.t_ms, -1);
	assert_string_equal(e.service, "doveadm");
}

static void
values_are_percent_decoded(void **state)
{
	struct mt_dove_event e;

	assert_int_equal(parse_body("v=1 ev=read service=imap user=J%C3%BCrgen"
	    "%2BA@dove.test session=ab%3D%3Dcd rip=%3A%3A1 uidvalidity=5 "
	    "uid=1 box=%c3%84rger/Unter%2fOrdner", &e), MT_DOVE_EVENT);
	assert_string_equal(e.user, "J\xc3\xbcrgen+A@dove.test");
	assert_string_equal(e.session, "ab==cd");
	assert_string_equal(e.rip, "::1");
	assert_string_equal(e.box, "\xc3\x84rger/Unter/Ordner");
}

static void
hostile_mailbox_name_cannot_add_or_change_a_field(void **state)
{
	struct mt_dove_event e;

	/* real: MOVE to the folder 'a b=c %41 "x" ev=read uid=9' */
	assert_int_equal(parse("2026-12-02 14:50:33 imap(alice@dove.test)<2505>"
	    "<UMySw6dhBuXLAHEF>: Info: mailtrail: v=1 ev=append service=imap "
	    "user=alice@dove.test session=UMySw6dhBuXLAHEF rip=203.0.113.5 "
	    "uidvalidity=1796223029 uid=1 box=a%20b%3Dc%20%2541%20%22x%22%20"
	    "ev%3Dread%20uid%3D9", &e), MT_DOVE_EVENT);
	assert_int_equal(e.ev, MT_DOVE_APPEND);
	assert_int_equal(e.uid, 1);
	assert_string_equal(e.box, "a b=c %41 \"x\" ev=read uid=9");
	/* the same name written raw (a script that does not encode) */
	assert_int_equal(parse_box("a b=c uid=9", &e), MT_DOVE_BAD);
	assert_empty(&e);
	assert_int_equal(parse_box("INBOX ev=read uid=9", &e), MT_DOVE_BAD);
	assert_int_equal(parse_box("a=b", &e), MT_DOVE_BAD);
	assert_int_equal(parse_box("\"x\"", &e), MT_DOVE_BAD);
	assert_int_equal(parse_box("%", &e), MT_DOVE_BAD);
	assert_int_equal(parse_box("100%", &e), MT_DOVE_BAD);
	assert_int_equal(parse_box("%4", &e), MT_DOVE_BAD);
	assert_int_equal(parse_box("%G1", &e), MT_DOVE_BAD);
	assert_int_equal(parse_box("\xc3\xa4", &e), MT_DOVE_BAD);
	assert_int_equal(parse_box("INBOX ", &e), MT_DOVE_BAD);
	assert_int_equal(parse_box("INBOX\r", &e), MT_DOVE_BAD);
	assert_int_equal(parse_box("INBOX\t", &e), MT_DOVE_BAD);
	assert_int_equal(parse_box("%2541", &e), MT_DOVE_EVENT);
	assert_string_equal(e.box, "%41");
}

static void
nul_is_refused_and_other_controls_are_cleaned(void **state)
{
	struct mt_dove_event e;
	char line[1024];
	size_t n;

	/* no string Dovecot hands the script can hold a NUL: forged */
	assert_int_equal(parse_box("a%00b", &e), MT_DOVE_BAD);
	assert_int_equal(parse_body("v=1 ev=read service=imap user=a%00@b "
	    "session=S rip=- uidvalidity=5 uid=1 box=INBOX", &e), MT_DOVE_BAD);
	assert_int_equal(parse_body("v=1 ev=read service=imap user=a@b "
	    "session=S%00 rip=- uidvalidity=5 uid=1 box=INBOX", &e),
	    MT_DOVE_BAD);
	/* a raw NUL byte in the line */
	snprintf(line, sizeof(line), "%sv=1 ev=read " GOOD_REST " box=INBOX",
	    FILE_PREFIX);
	n = strlen(line);
	line[n - 2] = '\0';
	assert_int_equal(mt_dove_parse(line, n, NOW, &e), MT_DOVE_BAD);
	/* escape sequences, DEL, CR/LF and bad UTF-8 reach nobody's screen */
	assert_int_equal(parse_box("x%1B%5B31m%7Fy%0D%0Az%09%FF", &e),
	    MT_DOVE_EVENT);
	assert_string_equal(e.box, "x?[31m?y??z??");
	assert_int_equal(parse_body("v=1 ev=read service=imap user=%1Bx%07@b "
	    "session=a%0Ab rip=- uidvalidity=5 uid=1 box=INBOX", &e),
	    MT_DOVE_EVENT);
	assert_string_equal(e.user, "?x?@b");
	assert_string_equal(e.session, "a b");
	/* a user that cleans to nothing is no user */
	assert_int_equal(parse_body("v=1 ev=read service=imap user=%20%20 "
	    "session=S rip=- uidvalidity=5 uid=1 box=INBOX", &e), MT_DOVE_BAD);
}

static void
mailbox_name_keeps_its_spaces_and_utf8_exactly(void **state)
{
	struct mt_dove_event e;

	/* the follower hands box to doveadm: "a  b " is not "a b" */
	assert_int_equal(parse_box("%20a%20%20b%20", &e), MT_DOVE_EVENT);
	assert_string_equal(e.box, " a  b ");
	assert_int_equal(parse_box("%E2%9C%89%20Post/%F0%9F%93%A6", &e),
	    MT_DOVE_EVENT);
	assert_string_equal(e.box, "\xe2\x9c\x89 Post/\xf0\x9f\x93\xa6");
	/* overlong, surrogate, stray continuation, cut sequence */
	assert_int_equal(parse_box("a%C0%AFb%ED%A0%80c%80d%E2%9C", &e),
	    MT_DOVE_EVENT);
	assert_string_equal(e.box, "a??b???c?d??");
}

static void
fields_out_of_order_duplicated_or_missing_are_bad(void **state)
{
	static const char *const bodies[] = {
		/* order */
		"v=1 ev=read user=a@b service=imap session=S rip=- "
		    "uidvalidity=5 uid=1 box=INBOX",
		"v=1 ev=read service=imap user=a@b session=S rip=- "
		    "uid=1 uidvalidity=5 box=INBOX",
		"v=1 ev=read service=imap user=a@b session=S rip=- "
		    "uidvalidity=5 box=INBOX uid=1",
		/* duplicated */
		"v=1 ev=read ev=trash service=imap user=a@b session=S rip=- "
		    "uidvalidity=5 uid=1 box=INBOX",
		"v=1 ev=read service=imap user=a@b session=S rip=- "
		    "uidvalidity=5 uid=1 box=INBOX box=Trash",
		"v=1 ev=read service=imap user=a@b session=S rip=- "
		    "uidvalidity=5 uid=1 uid=2 box=INBOX",
		/* missing */
		"v=1 ev=read service=imap user=a@b session=S rip=- "
		    "uidvalidity=5 uid=1",
		"v=1 ev=read service=imap user=a@b session=S "
		    "uidvalidity=5 uid=1 box=INBOX",
		"v=1 service=imap user=a@b session=S rip=- "
		    "uidvalidity=5 uid=1 box=INBOX",
		"v=1 ev=read service=imap user=a@b session=S rip=- "
		    "uidvalidity=5 uid=1 box=",
		"v=1 ev=read service=imap user= session=S rip=- "
		    "uidvalidity=5 uid=1 box=INBOX",
		"v=1 ev=read service=imap user=a@b session= rip=- "
		    "uidvalidity=5 uid=1 box=INBOX",
		"v=1",
		"v=",
		/* spacing, unknown fields */
		"v=1  ev=read service=imap user=a@b session=S rip=- "
		    "uidvalidity=5 uid=1 box=INBOX",
		"v=1 ev=read service=imap user=a@b session=S rip=- "
		    "uidvalidity=5 uid=1 box=INBOX ",
		"v=1 ev=read service=imap user=a@b session=S rip=- "
		    "uidvalidity=5 uid=1 flags=x box=INBOX",
		"v=1 ev=read service=imap user=a@b session=S rip=- "
		    "uidvalidity=5 uid=1 box=INBOX flags=x",
	};
	struct mt_dove_event e;

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		assert_int_equal(parse_body(bodies[i], &e), MT_DOVE_BAD);
		assert_empty(&e);
	}
}

static void
unknown_version_event_or_service_is_bad(void **state)
{
	static const char *const heads[] = {
		"v=2 ev=read", "v=01 ev=read", "v=1.0 ev=read", "v=%31 ev=read",
		"v=1 ev=flags", "v=1 ev=READ", "v=1 ev=read%20",
	};
	struct mt_dove_event e;
	char body[1024];

	for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
		snprintf(body, sizeof(body), "%s " GOOD_REST " box=INBOX",
		    heads[i]);
		assert_int_equal(parse_body(body, &e), MT_DOVE_BAD);
	}
	assert_int_equal(parse_body("v=1 ev=read service=im%20ap user=a@b "
	    "session=S rip=- uidvalidity=5 uid=1 box=INBOX", &e), MT_DOVE_BAD);
	assert_int_equal(parse_body("v=1 ev=read service=imap-urlauth-wo "
	    "user=a@b session=S rip=- uidvalidity=5 uid=1 box=INBOX", &e),
	    MT_DOVE_EVENT);
	assert_int_equal(parse_body("v=1 ev=read service=imap-urlauth-wor "
	    "user=a@b session=S rip=- uidvalidity=5 uid=1 box=INBOX", &e),
	    MT_DOVE_BAD);
}

static void
uid_and_uidvalidity_must_be_32_bit_and_not_zero(void **state)
{
	static const struct {
		const char *uv, *uid;
		int ok;
	} cases[] = {
		{ "1", "1", 1 }, { "4294967295", "4294967295", 1 },
		{ "5", "0", 0 }, { "0", "5", 0 },
		{ "5", "4294967296", 0 }, { "4294967296", "5", 0 },
		{ "5", "18446744073709551617", 0 }, { "5", "99999999999", 0 },
		{ "5", "01", 0 }, { "5", "-1", 0 }, { "5", "+1", 0 },
		{ "5", "1.0", 0 }, { "5", "%31", 0 }, { "5", "1e3", 0 },
		{ "5", "0x10", 0 }, { "", "1", 0 },
	};
	struct mt_dove_event e;
	char body[1024];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(body, sizeof(body), "v=1 ev=read service=imap user=a@b "
		    "session=S rip=- uidvalidity=%s uid=%s box=INBOX",
		    cases[i].uv, cases[i].uid);
		assert_int_equal(parse_body(body, &e),
		    cases[i].ok ? MT_DOVE_EVENT : MT_DOVE_BAD);
	}
	assert_int_equal(parse_body("v=1 ev=read service=imap user=a@b "
	    "session=S rip=- uidvalidity=4294967295 uid=4294967295 box=INBOX",
	    &e), MT_DOVE_EVENT);
	assert_int_equal(e.uid, 4294967295UL);
	assert_int_equal(e.uidvalidity, 4294967295UL);
}

static void
rip_is_an_address_or_none(void **state)
{
	static const struct {
		const char *rip, *want;
	} cases[] = {
		{ "203.0.113.5", "203.0.113.5" }, { "2001:db8::5", "2001:db8::5" },
		{ "::ffff:192.0.2.1", "::ffff:192.0.2.1" }, { "-", "" },
		{ "2001%3Adb8%3A%3A5", "2001:db8::5" },
		{ "999.0.0.1", NULL }, { "localhost", NULL }, { "--", NULL },
		{ "fe80::1%25eth0", NULL }, { "[::1]", NULL },
		{ "192.0.2.1:25", NULL },
	};
	struct mt_dove_event e;
	char body[1024];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(body, sizeof(body), "v=1 ev=read service=imap user=a@b "
		    "session=S rip=%s uidvalidity=5 uid=1 box=INBOX",
		    cases[i].rip);
		if (cases[i].want == NULL) {
			assert_int_equal(parse_body(body, &e), MT_DOVE_BAD);
			continue;
		}
		assert_int_equal(parse_body(body, &e), MT_DOVE_EVENT);
		assert_string_equal(e.rip, cases[i].want);
	}
}

static void
overlong_values_and_lines_are_bad(void **state)
{
	struct mt_dove_event e;
	char big[6000], body[8192];

	/* box: 511 decoded bytes fit, 512 do not */
	memset(big, 'b', 511);
	big[511] = '\0';
	assert_int_equal(parse_box(big, &e), MT_DOVE_EVENT);
	assert_int_equal(strlen(e.box), 511);
	strcat(big, "b");
	assert_int_equal(parse_box(big, &e), MT_DOVE_BAD);
	/* 511 bytes written as 1533 escapes still fit */
	for (int i = 0; i < 511; i++)
		memcpy(big + 3 * i, "%C3", 3);
	big[3 * 511] = '\0';
	assert_int_equal(parse_box(big, &e), MT_DOVE_EVENT);
	/* user: 255 fit, 256 do not */
	memset(big, 'u', 256);
	big[255] = '\0';
	snprintf(body, sizeof(body), "v=1 ev=read service=imap user=%s "
	    "session=S rip=- uidvalidity=5 uid=1 box=INBOX", big);
	assert_int_equal(parse_body(body, &e), MT_DOVE_EVENT);
	big[255] = 'u';
	big[256] = '\0';
	snprintf(body, sizeof(body), "v=1 ev=read service=imap user=%s "
	    "session=S rip=- uidvalidity=5 uid=1 box=INBOX", big);
	assert_int_equal(parse_body(body, &e), MT_DOVE_BAD);
	/* session: 63 fit, 64 do not */
	memset(big, 's', 64);
	big[63] = '\0';
	snprintf(body, sizeof(body), "v=1 ev=read service=imap user=a@b "
	    "session=%s rip=- uidvalidity=5 uid=1 box=INBOX", big);
	assert_int_equal(parse_body(body, &e), MT_DOVE_EVENT);
	big[63] = 's';
	big[64] = '\0';
	snprintf(body, sizeof(body), "v=1 ev=read service=imap user=a@b "
	    "session=%s rip=- uidvalidity=5 uid=1 box=INBOX", big);
	assert_int_equal(parse_body(body, &e), MT_DOVE_BAD);
	/* a line of ours longer than MT_DOVE_LINE_MAX, however good its
	 * fields (here a long log prefix) */
	memset(big, 'p', 4000);
	big[4000] = '\0';
	snprintf(body, sizeof(body), "Dec 02 14:31:12 imap(%s)<1><S>: Info: "
	    "mailtrail: v=1 ev=read " GOOD_REST " box=INBOX", big);
	assert_true(strlen(body) > MT_DOVE_LINE_MAX);
	assert_int_equal(parse(body, &e), MT_DOVE_BAD);
	assert_empty(&e);
	big[3800] = '\0';
	snprintf(body, sizeof(body), "Dec 02 14:31:12 imap(%s)<1><S>: Info: "
	    "mailtrail: v=1 ev=read " GOOD_REST " box=INBOX", big);
	assert_true(strlen(body) <= MT_DOVE_LINE_MAX);
	assert_int_equal(parse(body, &e), MT_DOVE_EVENT);
	memset(big, 'b', 5000);
	big[5000] = '\0';
	/* a long line that is not ours stays other */
	snprintf(body, sizeof(body), "Dec  2 14:31:12 mx1 postfix/smtpd[1]: "
	    "NOQUEUE: reject: %s", big);
	assert_int_equal(parse(body, &e), MT_DOVE_OTHER);
}

static void
marker_anywhere_but_after_the_prefix_is_no_event(void **state)
{
	static const char *const lines[] = {
		/* a client's user name in a login failure */
		"Dec 02 14:31:12 imap-login: Info: Disconnected (auth failed, 1 "
		    "attempts in 2 secs): user=<x: Info: mailtrail: v=1 ev=read "
		    "service=imap user=bob session=S rip=- uidvalidity=5 uid=1 "
		    "box=INBOX>, method=PLAIN, rip=192.0.2.1",
		"Dec  2 14:31:12 mx1 dovecot: imap-login: Disconnected: user=<"
		    "x: mailtrail: v=1 ev=read service=imap user=bob session=S "
		    "rip=- uidvalidity=5 uid=1 box=INBOX>",
		/* not at Info level */
		"Dec 02 14:31:12 imap(a@b)<1><S>: Warning: mailtrail: v=1 ev=read"
		    " service=imap user=a@b session=S rip=- uidvalidity=5 uid=1 "
		    "box=INBOX",
		"Dec 02 14:31:12 imap(a@b)<1><S>: Error: mailtrail: v=1 ev=read "
		    "service=imap user=a@b session=S rip=- uidvalidity=5 uid=1 "
		    "box=INBOX",
		"Dec 02 14:31:12 imap(a@b)<1><S>: mailtrail: v=1 ev=read "
		    "service=imap user=a@b session=S rip=- uidvalidity=5 uid=1 "
		    "box=INBOX",
		/* after other text */
		"Dec 02 14:31:12 imap(a@b)<1><S>: Info: sieve: mailtrail: v=1 "
		    "ev=read service=imap user=a@b session=S rip=- uidvalidity=5 "
		    "uid=1 box=INBOX",
		"Dec 02 14:31:12 imap(a@b)<1><S>: Info: Info: mailtrail: v=1 "
		    "ev=read service=imap user=a@b session=S rip=- uidvalidity=5 "
		    "uid=1 box=INBOX",
		/* a syslog line without Dovecot's prefix */
		"Dec  2 14:31:12 mx1 dovecot: mailtrail: v=1 ev=read service=imap"
		    " user=a@b session=S rip=- uidvalidity=5 uid=1 box=INBOX",
		/* the syslog host part does not end the prefix */
		"Dec  2 14:31:12 mx1: Info: mailtrail: x dovecot: imap(a@b)<1>"
		    "<S>: mailtrail: v=1 ev=read",
		/* the marker itself must be exact */
		"Dec 02 14:31:12 imap(a@b)<1><S>: Info: mailtrail:  v=1 ev=read",
		"Dec 02 14:31:12 imap(a@b)<1><S>: Info: Mailtrail: v=1 ev=read",
		"Dec 02 14:31:12 imap(a@b)<1><S>: Info: mailtrail: ev=read",
	};
	struct mt_dove_event e;

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		assert_int_equal(parse(lines[i], &e), MT_DOVE_OTHER);
		assert_empty(&e);
	}
	/* a prefix with a space reads as a syslog host and tag: never ours */
	assert_int_equal(parse("Dec 02 14:31:12 imap(a b)<1><S>: Info: "
	    "mailtrail: v=1 ev=read service=imap user=a@b session=S rip=- "
	    "uidvalidity=5 uid=1 box=INBOX", &e), MT_DOVE_FOREIGN);
	assert_empty(&e);
}

static void
other_lines_are_other(void **state)
{
	static const char *const lines[] = {
		"",
		"x",
		"Dec 02 14:31:12",
		"2026-12-02 14:50:28 lmtp(2480): Info: Connect from 127.0.0.1",
		"2026-12-02 14:50:28 lmtp(alice@dove.test)<2480><QhJKFzQwEGuwCQAA"
		    "g+zDdQ>: Info: msgid=<one@client.test>: saved mail to INBOX",
		"2026-12-02 14:51:40 master: Warning: Killed with signal 15",
		"Dec  2 14:00:00 host postfix/lmtp[18543]: 09EB5116519: "
		    "to=<alice@dove.test>, relay=127.0.0.1[127.0.0.1]:47635, "
		    "dsn=2.0.0, status=sent (250 2.0.0 <alice@dove.test> "
		    "JkU4B6EpEGtxSAAAg+zDdQ Saved)",
		"Dec  2 14:51:02 mx1 dovecot: lmtp(3058): Connect from 127.0.0.1",
		"Dec  2 14:51:02 mx1 dovecot: imap(a@b)<1><S>: Info: ",
		"Xyz 02 14:31:12 imap(a@b)<1><S>: Info: mailtrail: v=",
		"2026-13-02 14:31:12 x y: imap(a@b)<1><S>: mailtrail: v=1",
	};
	struct mt_dove_event e;

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		assert_int_equal(parse(lines[i], &e), MT_DOVE_OTHER);
	assert_int_equal(mt_dove_parse(NULL, 0, NOW, &e), MT_DOVE_OTHER);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(real_lines_of_every_event_from_the_log_file),
		cmocka_unit_test(default_log_timestamp_and_rip_in_the_prefix),
		cmocka_unit_test(syslog_line_with_the_dovecot_tag_is_an_event),
		cmocka_unit_test(foreign_syslog_tag_is_foreign_and_gives_nothing),
		cmocka_unit_test(year_less_timestamp_takes_the_year_before_now),
		cmocka_unit_test(file_line_without_timestamp_has_no_time),
		cmocka_unit_test(values_are_percent_decoded),
		cmocka_unit_test(hostile_mailbox_name_cannot_add_or_change_a_field),
		cmocka_unit_test(nul_is_refused_and_other_controls_are_cleaned),
		cmocka_unit_test(mailbox_name_keeps_its_spaces_and_utf8_exactly),
		cmocka_unit_test(fields_out_of_order_duplicated_or_missing_are_bad),
		cmocka_unit_test(unknown_version_event_or_service_is_bad),
		cmocka_unit_test(uid_and_uidvalidity_must_be_32_bit_and_not_zero),
		cmocka_unit_test(rip_is_an_address_or_none),
		cmocka_unit_test(overlong_values_and_lines_are_bad),
		cmocka_unit_test(marker_anywhere_but_after_the_prefix_is_no_event),
		cmocka_unit_test(other_lines_are_other),
	};

	/* local-time timestamps ("Dec 02 14:31:12") read the same everywhere */
	setenv("TZ", "UTC", 1);
	tzset();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
