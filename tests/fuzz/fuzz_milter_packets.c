/*
 * Sequences of milter packets from the socket, in reads of any size: the
 * engine's parser and state machine must answer, close with a reason or
 * wait for more, and never read outside what it was given. A filter that
 * reads every macro, uses every action and defers some ends of message
 * drives all of the engine's paths; its replies are checked for framing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../engine/engine.h"

struct sink {
	unsigned char *buf;
	size_t len;
};

static int
append(void *arg, const void *p, size_t n)
{
	struct sink *s = arg;
	unsigned char *nb = realloc(s->buf, s->len + n);

	if (nb == NULL)
		return -1;
	memcpy(nb + s->len, p, n);
	s->buf = nb;
	s->len += n;
	return 0;
}

/* Every packet out is whole and of a command the protocol knows. */
static void
check_framing(const struct sink *s)
{
	size_t off = 0;

	while (off < s->len) {
		uint32_t n;

		if (s->len - off < 5)
			abort();
		n = (uint32_t)s->buf[off] << 24 | (uint32_t)s->buf[off + 1] << 16 |
		    (uint32_t)s->buf[off + 2] << 8 | s->buf[off + 3];
		if (n < 1 || s->len - off - 4 < n ||
		    strchr("Ocartdyhimq", s->buf[off + 4]) == NULL)
			abort();
		off += 4 + n;
	}
}

static int n_msgs;

static int
on_connect(struct mt_eng_ctx *ctx, const char *host, const struct sockaddr *sa)
{
	(void)sa;
	mt_eng_setpriv(ctx, strdup(host));
	return MT_ENG_CONTINUE;
}

static int
on_header(struct mt_eng_ctx *ctx, const char *name, const char *value)
{
	(void)ctx;
	return strlen(name) + strlen(value) > 100000 ? MT_ENG_REJECT
	    : MT_ENG_CONTINUE;
}

static void
work(struct mt_eng_ctx *ctx)
{
	(void)ctx;
}

static int
finish(struct mt_eng_ctx *ctx)
{
	mt_eng_insheader(ctx, 0, "X-Late", "after the work");
	mt_eng_quarantine(ctx, "held");
	return MT_ENG_CONTINUE;
}

static int
on_eom(struct mt_eng_ctx *ctx)
{
	const char *q = mt_eng_macro(ctx, "i");
	const char *j = mt_eng_macro(ctx, "{j}");

	mt_eng_insheader(ctx, 0, "X-Q", q ? q : "none");
	mt_eng_chgheader(ctx, "X-Old", 1, NULL);
	mt_eng_addheader(ctx, "X-J", j ? j : "none");
	if (n_msgs++ % 3 == 0 && mt_eng_defer(ctx, work, finish) == 0)
		return MT_ENG_PENDING;
	if (n_msgs % 5 == 0) {
		mt_eng_setreply(ctx, "554", "5.6.0", "no\r\nthanks");
		return MT_ENG_REJECT;
	}
	return n_msgs % 7 == 0 ? MT_ENG_TEMPFAIL : MT_ENG_CONTINUE;
}

static void
on_close(struct mt_eng_ctx *ctx)
{
	free(mt_eng_getpriv(ctx));
	mt_eng_setpriv(ctx, NULL);
}

static const struct mt_eng_filter filter = {
	.actions = MT_ENG_F_ADDHDRS | MT_ENG_F_CHGHDRS | MT_ENG_F_QUARANTINE |
	    MT_ENG_F_SETSYMLIST,
	.protocol = MT_ENG_P_NR_HDR | MT_ENG_P_NR_CONN | MT_ENG_P_NOUNKNOWN,
	.symlist = { [MT_ENG_AT_CONNECT] = "j", [MT_ENG_AT_EOM] = "i" },
	.connect = on_connect,
	.header = on_header,
	.eom = on_eom,
	.close = on_close,
};

/*
 * The first byte says how the rest is cut into reads (1 to 256 bytes);
 * the rest is what the MTA sent.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sink s = { NULL, 0 };
	struct mt_eng_out out = { append, &s };
	struct mt_eng_ctx *ctx;
	char why[256];
	size_t step, off = 1;
	int rc = 1;

	if (size < 1)
		return 0;
	step = (size_t)data[0] + 1;
	n_msgs = 0;
	if ((ctx = mt_eng_ctx_new(&filter, out)) == NULL)
		return 0;
	while (off < size && (rc == 1 || rc == 2)) {
		size_t n = size - off < step ? size - off : step;

		rc = mt_eng_feed(ctx, data + off, n, why, sizeof(why));
		off += n;
		while (rc == 2)		/* the work ran inline: answer now */
			rc = mt_eng_finished(ctx, why, sizeof(why));
	}
	if (rc < 0 && why[0] == '\0')
		abort();	/* every close has a reason */
	mt_eng_ctx_free(ctx);
	check_framing(&s);
	free(s.buf);
	return 0;
}
