/*
 * The milter protocol engine without sockets: option negotiation with
 * symbol lists, macros by stage, replies only where no NR_* was agreed,
 * actions at end of message, deferred ends of message, QUIT_NC, and the
 * closing reasons for bad input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "../../engine/engine.h"

/* ---- building input ------------------------------------------------- */

struct buf {
	unsigned char d[65536];
	size_t n;
};

static void
add(struct buf *b, const void *p, size_t n)
{
	assert_true(b->n + n <= sizeof(b->d));
	memcpy(b->d + b->n, p, n);
	b->n += n;
}

static void
pkt(struct buf *b, char cmd, const void *data, size_t n)
{
	uint32_t len = htonl((uint32_t)(n + 1));

	add(b, &len, 4);
	add(b, &cmd, 1);
	if (n)
		add(b, data, n);
}

static void
optneg(struct buf *b, uint32_t actions, uint32_t protocol)
{
	uint32_t v[3] = { htonl(6), htonl(actions), htonl(protocol) };

	pkt(b, 'O', v, sizeof(v));
}

static void
connect4(struct buf *b, const char *host, const char *ip)
{
	unsigned char d[300];
	size_t n = strlen(host) + 1;
	uint16_t port = htons(25);

	memcpy(d, host, n);
	d[n++] = '4';
	memcpy(d + n, &port, 2);
	n += 2;
	memcpy(d + n, ip, strlen(ip) + 1);
	n += strlen(ip) + 1;
	pkt(b, 'C', d, n);
}

/* Packet with NUL-separated strings: pkts(b, 'M', "<a@b>", NULL). */
static void
pkts(struct buf *b, int cmd, ...)
{
	unsigned char d[4096];
	size_t n = 0;
	const char *s;
	va_list ap;

	va_start(ap, cmd);
	while ((s = va_arg(ap, const char *)) != NULL) {
		memcpy(d + n, s, strlen(s) + 1);
		n += strlen(s) + 1;
	}
	va_end(ap);
	pkt(b, (char)cmd, d, n);
}

/* ---- reading output ------------------------------------------------- */

static int
sink_append(void *arg, const void *p, size_t n)
{
	add(arg, p, n);
	return 0;
}

/* The command bytes of every packet out, as a string: "Oc" ... */
static void
cmds_of(const struct buf *b, char *out, size_t max)
{
	size_t off = 0, k = 0;

	while (off + 5 <= b->n && k + 1 < max) {
		uint32_t n;

		memcpy(&n, b->d + off, 4);
		n = ntohl(n);
		assert_true(off + 4 + n <= b->n);
		out[k++] = (char)b->d[off + 4];
		off += 4 + n;
	}
	assert_int_equal(off, b->n);
	out[k] = '\0';
}

/* The data of the i-th packet out. */
static const unsigned char *
data_of(const struct buf *b, int i, size_t *len)
{
	size_t off = 0;

	for (;;) {
		uint32_t n;

		assert_true(off + 5 <= b->n);
		memcpy(&n, b->d + off, 4);
		n = ntohl(n);
		if (i-- == 0) {
			*len = n - 1;
			return b->d + off + 5;
		}
		off += 4 + n;
	}
}

/* ---- a filter that records what it saw ------------------------------ */

static char seen[4096];
static int defer_next;

static void
note(const char *fmt, ...)
{
	size_t n = strlen(seen);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(seen + n, sizeof(seen) - n, fmt, ap);
	va_end(ap);
}

static int
f_connect(struct mt_eng_ctx *ctx, const char *host, const struct sockaddr *sa)
{
	const char *j = mt_eng_macro(ctx, "j");

	note("C(%s,%d,%s)", host, sa ? sa->sa_family : -1, j ? j : "-");
	mt_eng_setpriv(ctx, strdup(host));
	return MT_ENG_CONTINUE;
}

static int
f_envfrom(struct mt_eng_ctx *ctx, char **argv)
{
	const char *a = mt_eng_macro(ctx, "{auth_authen}");

	note("M(%s,%s)", argv[0], a ? a : "-");
	return MT_ENG_CONTINUE;
}

static int
f_envrcpt(struct mt_eng_ctx *ctx, char **argv)
{
	(void)ctx;
	note("R(%s)", argv[0]);
	return MT_ENG_CONTINUE;
}

static int
f_header(struct mt_eng_ctx *ctx, const char *name, const char *value)
{
	(void)ctx;
	note("L(%s:%s)", name, value);
	return MT_ENG_CONTINUE;
}

static void
work(struct mt_eng_ctx *ctx)
{
	(void)ctx;
	note("W");
}

static int
finish(struct mt_eng_ctx *ctx)
{
	note("F");
	mt_eng_insheader(ctx, 0, "X-Done", "late");
	return MT_ENG_CONTINUE;
}

static int
f_eom(struct mt_eng_ctx *ctx)
{
	const char *q = mt_eng_macro(ctx, "i");

	note("E(%s)", q ? q : "-");
	if (defer_next) {
		defer_next = 0;
		assert_int_equal(mt_eng_defer(ctx, work, finish), 0);
		return MT_ENG_PENDING;
	}
	assert_int_equal(mt_eng_insheader(ctx, 0, "X-Id", "abc"), 0);
	assert_int_equal(mt_eng_chgheader(ctx, "X-Old", 1, NULL), 0);
	return MT_ENG_CONTINUE;
}

static void
f_abort(struct mt_eng_ctx *ctx)
{
	(void)ctx;
	note("A");
}

static void
f_close(struct mt_eng_ctx *ctx)
{
	note("X(%s)", (char *)mt_eng_getpriv(ctx));
	free(mt_eng_getpriv(ctx));
}

static const struct mt_eng_filter filter = {
	.actions = MT_ENG_F_ADDHDRS | MT_ENG_F_CHGHDRS | MT_ENG_F_SETSYMLIST,
	.protocol = MT_ENG_P_NR_HDR | MT_ENG_P_NR_CONN | MT_ENG_P_NOUNKNOWN,
	.symlist = { [MT_ENG_AT_CONNECT] = "j", [MT_ENG_AT_EOM] = "i" },
	.connect = f_connect,
	.envfrom = f_envfrom,
	.envrcpt = f_envrcpt,
	.header = f_header,
	.eom = f_eom,
	.abort = f_abort,
	.close = f_close,
};

static struct buf out;

static struct mt_eng_ctx *
new_ctx(void)
{
	struct mt_eng_out o = { sink_append, &out };

	out.n = 0;
	seen[0] = '\0';
	defer_next = 0;
	return mt_eng_ctx_new(&filter, o);
}

/* A message: MAIL with its macro, one RCPT, a header, EOB with "i". */
static void
message(struct buf *b, const char *from, const char *qid)
{
	unsigned char d[200];
	size_t n;

	n = (size_t)snprintf((char *)d, sizeof(d), "M{auth_authen}%calice%c",
	    0, 0);
	pkt(b, 'D', d, n);
	pkts(b, 'M', from, "SIZE=10", NULL);
	pkts(b, 'R', "<r@x.test>", NULL);
	pkts(b, 'L', "Subject", "hi", NULL);
	n = (size_t)snprintf((char *)d, sizeof(d), "Ei%c%s%c", 0, qid, 0);
	pkt(b, 'D', d, n);
	pkt(b, 'E', NULL, 0);
}

static void
negotiation_offers_the_common_flags_and_the_symbol_lists(void **state)
{
	struct mt_eng_ctx *ctx = new_ctx();
	struct buf in = { .n = 0 };
	char why[200], cmds[64];
	const unsigned char *d;
	size_t n;
	uint32_t v[3];

	/* The MTA offers no NR_HDR: we must not ask for it. */
	optneg(&in, 0x1ff, 0x1fffff & ~MT_ENG_P_NR_HDR);
	assert_int_equal(mt_eng_feed(ctx, in.d, in.n, why, sizeof(why)), 1);
	cmds_of(&out, cmds, sizeof(cmds));
	assert_string_equal(cmds, "O");
	d = data_of(&out, 0, &n);
	memcpy(v, d, 12);
	assert_int_equal(ntohl(v[0]), 6);
	assert_int_equal(ntohl(v[1]), filter.actions);
	assert_int_equal(ntohl(v[2]), MT_ENG_P_NR_CONN | MT_ENG_P_NOUNKNOWN);
	/* stage 0 "j", stage 5 "i" */
	assert_int_equal(n, 12 + 4 + 2 + 4 + 2);
	assert_memory_equal(d + 12, "\0\0\0\0j\0\0\0\0\5i\0", 12);
	mt_eng_ctx_free(ctx);
}

static void
a_session_answers_only_where_replies_are_due(void **state)
{
	struct mt_eng_ctx *ctx = new_ctx();
	struct buf in = { .n = 0 };
	char why[200], cmds[64];
	unsigned char mac[] = "Cj\0mx.test\0";

	optneg(&in, 0x1ff, 0x1fffff);
	pkt(&in, 'D', mac, sizeof(mac) - 1);
	connect4(&in, "client.test", "192.0.2.7");
	pkts(&in, 'H', "helo.test", NULL);
	message(&in, "<a@x.test>", "QID1");
	pkts(&in, 'Q', NULL);
	assert_int_equal(mt_eng_feed(ctx, in.d, in.n, why, sizeof(why)), 0);
	/* O; no reply to C (NR_CONN); H M R c; no reply to L; i m c at EOB */
	cmds_of(&out, cmds, sizeof(cmds));
	assert_string_equal(cmds, "Occcimc");
	assert_string_equal(seen, "C(client.test,2,mx.test)M(<a@x.test>,alice)"
	    "R(<r@x.test>)L(Subject:hi)E(QID1)");
	mt_eng_ctx_free(ctx);
	assert_string_equal(seen, "C(client.test,2,mx.test)M(<a@x.test>,alice)"
	    "R(<r@x.test>)L(Subject:hi)E(QID1)X(client.test)");
}

static void
messages_and_an_abort_keep_no_macros_across(void **state)
{
	struct mt_eng_ctx *ctx = new_ctx();
	struct buf in = { .n = 0 };
	char why[200];

	optneg(&in, 0x1ff, 0x1fffff);
	connect4(&in, "c", "192.0.2.7");
	message(&in, "<one@x>", "Q1");
	pkts(&in, 'M', "<two@x>", NULL);	/* no macros this time */
	pkt(&in, 'A', NULL, 0);
	pkts(&in, 'M', "<three@x>", NULL);
	pkt(&in, 'E', NULL, 0);
	assert_int_equal(mt_eng_feed(ctx, in.d, in.n, why, sizeof(why)), 1);
	assert_string_equal(seen, "C(c,2,-)M(<one@x>,alice)R(<r@x.test>)"
	    "L(Subject:hi)E(Q1)M(<two@x>,-)AM(<three@x>,-)E(-)");
	mt_eng_ctx_free(ctx);
}

static void
one_byte_reads_give_the_same_session(void **state)
{
	struct mt_eng_ctx *ctx = new_ctx();
	struct buf in = { .n = 0 };
	char why[200], cmds[64];
	int rc = 1;

	optneg(&in, 0x1ff, 0x1fffff);
	connect4(&in, "client.test", "192.0.2.7");
	message(&in, "<a@x.test>", "QID1");
	for (size_t i = 0; i < in.n && rc == 1; i++)
		rc = mt_eng_feed(ctx, in.d + i, 1, why, sizeof(why));
	assert_int_equal(rc, 1);
	cmds_of(&out, cmds, sizeof(cmds));
	assert_string_equal(cmds, "Occimc");
	assert_string_equal(seen, "C(client.test,2,-)M(<a@x.test>,alice)"
	    "R(<r@x.test>)L(Subject:hi)E(QID1)");
	mt_eng_ctx_free(ctx);
}

static void
a_deferred_end_of_message_holds_what_follows_until_finished(void **state)
{
	struct mt_eng_ctx *ctx = new_ctx();
	struct buf in = { .n = 0 };
	char why[200], cmds[64];

	optneg(&in, 0x1ff, 0x1fffff);
	connect4(&in, "c", "192.0.2.7");
	message(&in, "<a@x>", "Q1");
	message(&in, "<b@x>", "Q2");	/* arrives while the first waits */
	defer_next = 1;
	assert_int_equal(mt_eng_feed(ctx, in.d, in.n, why, sizeof(why)), 2);
	assert_string_equal(seen, "C(c,2,-)M(<a@x>,alice)R(<r@x.test>)"
	    "L(Subject:hi)E(Q1)W");
	cmds_of(&out, cmds, sizeof(cmds));
	assert_string_equal(cmds, "Occ");	/* no answer yet to EOB */
	assert_int_equal(mt_eng_finished(ctx, why, sizeof(why)), 1);
	cmds_of(&out, cmds, sizeof(cmds));
	assert_string_equal(cmds, "Occicccimc");
	assert_string_equal(seen, "C(c,2,-)M(<a@x>,alice)R(<r@x.test>)"
	    "L(Subject:hi)E(Q1)WFM(<b@x>,alice)R(<r@x.test>)L(Subject:hi)E(Q2)");
	mt_eng_ctx_free(ctx);
}

static void
quit_nc_ends_the_session_and_a_new_one_follows(void **state)
{
	struct mt_eng_ctx *ctx = new_ctx();
	struct buf in = { .n = 0 };
	char why[200];

	optneg(&in, 0x1ff, 0x1fffff);
	connect4(&in, "first", "192.0.2.7");
	pkts(&in, 'M', "<a@x>", NULL);
	pkt(&in, 'K', NULL, 0);
	connect4(&in, "second", "192.0.2.8");
	pkts(&in, 'M', "<b@x>", NULL);
	pkt(&in, 'E', NULL, 0);
	assert_int_equal(mt_eng_feed(ctx, in.d, in.n, why, sizeof(why)), 1);
	assert_string_equal(seen, "C(first,2,-)M(<a@x>,-)AX(first)"
	    "C(second,2,-)M(<b@x>,-)E(-)");
	mt_eng_ctx_free(ctx);
}

static void
reply_text_goes_with_a_refusal(void **state)
{
	struct mt_eng_ctx *ctx = new_ctx();
	struct buf in = { .n = 0 };
	char why[200];

	(void)ctx;
	optneg(&in, 0x1ff, 0x1fffff);
	assert_int_equal(mt_eng_feed(ctx, in.d, in.n, why, sizeof(why)), 1);
	/* Only at end of message: elsewhere actions are refused. */
	assert_int_equal(mt_eng_insheader(ctx, 0, "X", "y"), -1);
	mt_eng_ctx_free(ctx);
}

/* Bad input: -1 and a reason for the one log line. */
static void
expect_error(const struct buf *in, const char *reason)
{
	struct mt_eng_ctx *ctx = new_ctx();
	char why[200] = "";

	assert_int_equal(mt_eng_feed(ctx, in->d, in->n, why, sizeof(why)), -1);
	assert_non_null(strstr(why, reason));
	mt_eng_ctx_free(ctx);
}

static void
bad_input_closes_with_a_reason(void **state)
{
	struct buf in = { .n = 0 };
	uint32_t big = htonl(0x7fffffff), zero = 0;

	optneg(&in, 0x1ff, 0x1fffff);
	pkt(&in, 'Z', "x", 1);
	expect_error(&in, "unknown command 'Z' (0x5a)");

	in.n = 0;
	optneg(&in, 0x1ff, 0x1fffff);
	add(&in, &big, 4);
	expect_error(&in, "packet of 2147483647 bytes");

	in.n = 0;
	optneg(&in, 0x1ff, 0x1fffff);
	add(&in, &zero, 4);
	expect_error(&in, "packet of length 0");

	in.n = 0;
	connect4(&in, "c", "192.0.2.7");
	expect_error(&in, "before option negotiation");

	in.n = 0;
	optneg(&in, 0x1ff, 0x1fffff);
	connect4(&in, "c", "not-an-address");
	expect_error(&in, "bad IPv4 address");

	in.n = 0;
	optneg(&in, 0x1ff, 0x1fffff);
	connect4(&in, "c", "192.0.2.7");
	pkt(&in, 'M', "unterminated", 12);
	expect_error(&in, "MAIL without");
}

static void
a_truncated_packet_waits_for_the_rest(void **state)
{
	struct mt_eng_ctx *ctx = new_ctx();
	struct buf in = { .n = 0 };
	char why[200];

	optneg(&in, 0x1ff, 0x1fffff);
	connect4(&in, "c", "192.0.2.7");
	assert_int_equal(mt_eng_feed(ctx, in.d, in.n - 3, why, sizeof(why)), 1);
	assert_string_equal(seen, "");		/* no CONNECT yet */
	mt_eng_ctx_free(ctx);			/* the MTA went away */
	assert_string_equal(seen, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(negotiation_offers_the_common_flags_and_the_symbol_lists),
		cmocka_unit_test(a_session_answers_only_where_replies_are_due),
		cmocka_unit_test(messages_and_an_abort_keep_no_macros_across),
		cmocka_unit_test(one_byte_reads_give_the_same_session),
		cmocka_unit_test(a_deferred_end_of_message_holds_what_follows_until_finished),
		cmocka_unit_test(quit_nc_ends_the_session_and_a_new_one_follows),
		cmocka_unit_test(reply_text_goes_with_a_refusal),
		cmocka_unit_test(bad_input_closes_with_a_reason),
		cmocka_unit_test(a_truncated_packet_waits_for_the_rest),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
