/*
 * The milter protocol of one connection, without sockets: packets in,
 * callbacks called, replies and actions out. Version 6 as Postfix's
 * milter8.c speaks it (libmilter's protocol notes describe the same):
 * each packet is a 4-byte big-endian length, a command byte and data.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "engine.h"

#define ARGS_MAX 64		/* MAIL/RCPT arguments passed on */

struct macros {
	char *buf;		/* name\0value\0... */
	size_t len;
};

struct mt_eng_ctx {
	const struct mt_eng_filter *f;
	struct mt_eng_out out;
	void *priv;
	uint32_t actions, protocol;	/* agreed with the MTA */
	int negotiated;
	int session;		/* CONNECT seen: close is due */
	int in_msg;		/* MAIL seen: abort is due if it ends here */
	int in_eom;		/* actions allowed */
	int pending;		/* deferred eom in flight */
	int failed;		/* appending to out failed: stop */
	void (*work)(struct mt_eng_ctx *);
	int (*finish)(struct mt_eng_ctx *);
	mt_eng_dispatch_fn *dispatch;
	void *dispatch_arg;
	char *reply;		/* "554 5.6.0 text" for the next refusal */
	struct macros mac[MT_ENG_STAGES];
	unsigned char *in;	/* a packet not yet complete */
	size_t in_len, in_cap;
};

static uint32_t
get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static void
put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* One packet: cmd and up to three parts of data. 0 or -1. */
static int
send_pkt(struct mt_eng_ctx *c, char cmd, const void *a, size_t an,
    const void *b, size_t bn, const void *d, size_t dn)
{
	unsigned char hdr[5];

	put32(hdr, (uint32_t)(1 + an + bn + dn));
	hdr[4] = (unsigned char)cmd;
	if (c->out.append(c->out.sink, hdr, 5) < 0 ||
	    (an && c->out.append(c->out.sink, a, an) < 0) ||
	    (bn && c->out.append(c->out.sink, b, bn) < 0) ||
	    (dn && c->out.append(c->out.sink, d, dn) < 0)) {
		c->failed = 1;
		return -1;
	}
	return 0;
}

struct mt_eng_ctx *
mt_eng_ctx_new(const struct mt_eng_filter *filter, struct mt_eng_out out)
{
	struct mt_eng_ctx *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->f = filter;
	c->out = out;
	return c;
}

void
mt_eng_ctx_set_dispatch(struct mt_eng_ctx *c, mt_eng_dispatch_fn *fn,
    void *arg)
{
	c->dispatch = fn;
	c->dispatch_arg = arg;
}

void
mt_eng_setpriv(struct mt_eng_ctx *c, void *priv)
{
	c->priv = priv;
}

void *
mt_eng_getpriv(struct mt_eng_ctx *c)
{
	return c->priv;
}

/* ---- macros ---------------------------------------------------------- */

static void
macros_clear(struct mt_eng_ctx *c, int from)
{
	for (int i = from; i < MT_ENG_STAGES; i++) {
		free(c->mac[i].buf);
		c->mac[i].buf = NULL;
		c->mac[i].len = 0;
	}
}

/* The message's own stages: from MAIL on (EOH is numbered after EOM). */
static void
macros_clear_message(struct mt_eng_ctx *c)
{
	macros_clear(c, MT_ENG_AT_MAIL);
}

static int
stage_of(unsigned char cmd)
{
	switch (cmd) {
	case 'C': return MT_ENG_AT_CONNECT;
	case 'H': return MT_ENG_AT_HELO;
	case 'M': return MT_ENG_AT_MAIL;
	case 'R': return MT_ENG_AT_RCPT;
	case 'T': return MT_ENG_AT_DATA;
	case 'E': return MT_ENG_AT_EOM;
	case 'N': return MT_ENG_AT_EOH;
	default: return -1;
	}
}

/* "{name}" and "name" are the same macro. */
static void
bare(const char *s, size_t n, const char **b, size_t *bn)
{
	if (n >= 2 && s[0] == '{' && s[n - 1] == '}') {
		s++;
		n -= 2;
	}
	*b = s;
	*bn = n;
}

const char *
mt_eng_macro(struct mt_eng_ctx *c, const char *name)
{
	static const int order[] = { MT_ENG_AT_EOM, MT_ENG_AT_EOH,
	    MT_ENG_AT_DATA, MT_ENG_AT_RCPT, MT_ENG_AT_MAIL, MT_ENG_AT_HELO,
	    MT_ENG_AT_CONNECT };
	const char *want, *k;
	size_t wn, kn;

	bare(name, strlen(name), &want, &wn);
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		const struct macros *m = &c->mac[order[i]];
		size_t off = 0;

		while (off < m->len) {
			const char *key = m->buf + off;
			size_t klen = strlen(key);
			const char *val = key + klen + 1;

			if (off + klen + 1 >= m->len)
				break;
			bare(key, klen, &k, &kn);
			if (kn == wn && memcmp(k, want, wn) == 0)
				return val;
			off += klen + 1 + strlen(val) + 1;
		}
	}
	return NULL;
}

/* 'D': the macros for the command that follows; replaces that stage's. */
static int
on_macro(struct mt_eng_ctx *c, const unsigned char *d, size_t n)
{
	int st;
	size_t keep = 0, off;

	if (n < 1)
		return -1;
	st = stage_of(d[0]);
	if (st < 0)
		return 0;	/* macros for a command we do not track */
	d++;
	n--;
	/* Only whole name\0value\0 pairs: a cut pair is dropped. */
	for (off = 0; off < n;) {
		const unsigned char *nul = memchr(d + off, '\0', n - off);
		const unsigned char *nul2;

		if (nul == NULL)
			break;
		nul2 = memchr(nul + 1, '\0', n - (size_t)(nul + 1 - d));
		if (nul2 == NULL)
			break;
		off = (size_t)(nul2 + 1 - d);
		keep = off;
	}
	free(c->mac[st].buf);
	c->mac[st].buf = NULL;
	c->mac[st].len = 0;
	if (keep == 0)
		return 0;
	if ((c->mac[st].buf = malloc(keep)) == NULL)
		return -1;
	memcpy(c->mac[st].buf, d, keep);
	c->mac[st].len = keep;
	return 0;
}

/* ---- actions --------------------------------------------------------- */

static int
may(const struct mt_eng_ctx *c, uint32_t action)
{
	return c->in_eom && !c->failed && (c->actions & action) != 0;
}

int
mt_eng_addheader(struct mt_eng_ctx *c, const char *name, const char *value)
{
	if (!may(c, MT_ENG_F_ADDHDRS))
		return -1;
	return send_pkt(c, 'h', name, strlen(name) + 1, value,
	    strlen(value) + 1, NULL, 0);
}

int
mt_eng_insheader(struct mt_eng_ctx *c, int index, const char *name,
    const char *value)
{
	unsigned char idx[4];

	if (!may(c, MT_ENG_F_ADDHDRS) || index < 0)
		return -1;
	put32(idx, (uint32_t)index);
	return send_pkt(c, 'i', idx, 4, name, strlen(name) + 1, value,
	    strlen(value) + 1);
}

int
mt_eng_chgheader(struct mt_eng_ctx *c, const char *name, int index,
    const char *value)
{
	unsigned char idx[4];

	if (!may(c, MT_ENG_F_CHGHDRS) || index < 1)
		return -1;
	if (value == NULL)
		value = "";	/* an empty value deletes */
	put32(idx, (uint32_t)index);
	return send_pkt(c, 'm', idx, 4, name, strlen(name) + 1, value,
	    strlen(value) + 1);
}

int
mt_eng_quarantine(struct mt_eng_ctx *c, const char *reason)
{
	if (!may(c, MT_ENG_F_QUARANTINE) || reason == NULL || !*reason)
		return -1;
	return send_pkt(c, 'q', reason, strlen(reason) + 1, NULL, 0, NULL, 0);
}

int
mt_eng_setreply(struct mt_eng_ctx *c, const char *rcode, const char *xcode,
    const char *text)
{
	size_t n;
	char *r;

	if (strlen(rcode) != 3 || (rcode[0] != '4' && rcode[0] != '5'))
		return -1;
	n = strlen(rcode) + strlen(xcode) + strlen(text) + 3;
	if ((r = malloc(n)) == NULL)
		return -1;
	snprintf(r, n, "%s %s %s", rcode, xcode, text);
	/* One line: CR, LF and NUL have no place in an SMTP reply text. */
	for (char *p = r; *p; p++)
		if (*p == '\r' || *p == '\n')
			*p = ' ';
	free(c->reply);
	c->reply = r;
	return 0;
}

/* ---- replies --------------------------------------------------------- */

static int
send_reply(struct mt_eng_ctx *c, int res)
{
	char code;
	int rc;

	switch (res) {
	case MT_ENG_REJECT:
	case MT_ENG_TEMPFAIL:
		if (c->reply != NULL && c->reply[0] ==
		    (res == MT_ENG_REJECT ? '5' : '4')) {
			rc = send_pkt(c, 'y', c->reply, strlen(c->reply) + 1,
			    NULL, 0, NULL, 0);
			free(c->reply);
			c->reply = NULL;
			return rc;
		}
		code = res == MT_ENG_REJECT ? 'r' : 't';
		break;
	case MT_ENG_ACCEPT: code = 'a'; break;
	case MT_ENG_DISCARD: code = 'd'; break;
	default: code = 'c'; break;
	}
	free(c->reply);
	c->reply = NULL;
	return send_pkt(c, code, NULL, 0, NULL, 0, NULL, 0);
}

/* A step's answer, unless the MTA agreed it needs none. */
static int
answer(struct mt_eng_ctx *c, uint32_t nr_flag, int res)
{
	if (nr_flag != 0 && (c->protocol & nr_flag) != 0)
		return 0;
	return send_reply(c, res);
}

static void
end_message(struct mt_eng_ctx *c, int aborted)
{
	if (aborted && c->in_msg && c->f->abort)
		c->f->abort(c);
	c->in_msg = 0;
	c->in_eom = 0;
	free(c->reply);
	c->reply = NULL;
	macros_clear_message(c);
}

static void
end_session(struct mt_eng_ctx *c)
{
	end_message(c, 1);
	if ((c->session || c->priv != NULL) && c->f->close)
		c->f->close(c);
	c->priv = NULL;
	c->session = 0;
	macros_clear(c, 0);
}

/* ---- commands -------------------------------------------------------- */

#define ERR(...) (snprintf(why, whylen, __VA_ARGS__), -1)

/* The whole OPTNEG reply, symbol lists included, in one packet. */
static int
optneg_reply(struct mt_eng_ctx *c, uint32_t version, char *why,
    size_t whylen)
{
	unsigned char buf[4096];
	size_t len = 12;

	put32(buf, version < 6 ? version : 6);
	put32(buf + 4, c->actions);
	put32(buf + 8, c->protocol);
	if (c->actions & MT_ENG_F_SETSYMLIST) {
		for (int i = 0; i < MT_ENG_STAGES; i++) {
			const char *l = c->f->symlist[i];
			size_t ln;

			if (l == NULL)
				continue;
			ln = strlen(l) + 1;
			if (len + 4 + ln > sizeof(buf))
				return ERR("symbol lists too long");
			put32(buf + len, (uint32_t)i);
			memcpy(buf + len + 4, l, ln);
			len += 4 + ln;
		}
	}
	if (send_pkt(c, 'O', buf, len, NULL, 0, NULL, 0) < 0)
		return ERR("out of memory");
	return 0;
}

static int
on_optneg_full(struct mt_eng_ctx *c, const unsigned char *d, size_t n,
    char *why, size_t whylen)
{
	if (c->session)
		return ERR("option negotiation inside a session");
	if (n < 12)
		return ERR("option negotiation packet of %zu bytes", n);
	if (get32(d) < 2)
		return ERR("milter protocol version %u is too old", get32(d));
	c->actions = c->f->actions & get32(d + 4);
	c->protocol = c->f->protocol & get32(d + 8);
	c->negotiated = 1;
	return optneg_reply(c, get32(d), why, whylen);
}

/* NUL-terminated strings in d: up to max into argv; -1 if unterminated. */
static int
split_args(const unsigned char *d, size_t n, char **argv, int max)
{
	int argc = 0;
	size_t off = 0;

	if (n == 0 || d[n - 1] != '\0')
		return -1;
	while (off < n && argc < max) {
		argv[argc++] = (char *)d + off;
		off += strlen((const char *)d + off) + 1;
	}
	argv[argc] = NULL;
	return argc;
}

static int
on_connect(struct mt_eng_ctx *c, const unsigned char *d, size_t n,
    char *why, size_t whylen)
{
	const char *host = (const char *)d, *addr;
	const unsigned char *nul = memchr(d, '\0', n);
	struct sockaddr_storage ss;
	struct sockaddr *sa = NULL;
	size_t rest;
	int res = MT_ENG_CONTINUE;

	if (c->session)
		return ERR("a second CONNECT without QUIT_NC");
	if (nul == NULL || (size_t)(nul - d) + 2 > n)
		return ERR("CONNECT packet without host name or family");
	memset(&ss, 0, sizeof(ss));
	rest = n - (size_t)(nul + 1 - d);	/* family, port, address */
	switch (nul[1]) {
	case 'U':
		break;
	case 'L':
	case '4':
	case '6':
		if (rest < 4 || d[n - 1] != '\0')
			return ERR("CONNECT packet with a cut address");
		addr = (const char *)nul + 4;
		if (nul[1] == 'L') {
			struct sockaddr_un *u = (struct sockaddr_un *)&ss;

			u->sun_family = AF_UNIX;
			snprintf(u->sun_path, sizeof(u->sun_path), "%s", addr);
		} else if (nul[1] == '4') {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

			s4->sin_family = AF_INET;
			memcpy(&s4->sin_port, nul + 2, 2);
			if (inet_pton(AF_INET, addr, &s4->sin_addr) != 1)
				return ERR("CONNECT with a bad IPv4 address");
		} else {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

			if (strncasecmp(addr, "IPv6:", 5) == 0)
				addr += 5;
			s6->sin6_family = AF_INET6;
			memcpy(&s6->sin6_port, nul + 2, 2);
			if (inet_pton(AF_INET6, addr, &s6->sin6_addr) != 1)
				return ERR("CONNECT with a bad IPv6 address");
		}
		sa = (struct sockaddr *)&ss;
		break;
	default:
		return ERR("CONNECT with unknown address family 0x%02x", nul[1]);
	}
	c->session = 1;
	if (c->f->connect)
		res = c->f->connect(c, host, sa);
	return answer(c, MT_ENG_P_NR_CONN, res);
}

/* One string argument (HELO, UNKNOWN): NULL when unterminated. */
static const char *
one_string(const unsigned char *d, size_t n)
{
	return n > 0 && memchr(d, '\0', n) != NULL ? (const char *)d : NULL;
}

static int
on_eom(struct mt_eng_ctx *c, const unsigned char *d, size_t n)
{
	int res = MT_ENG_CONTINUE;

	if (n > 0 && c->f->body)
		c->f->body(c, d, n);	/* a last chunk may come with EOB */
	c->in_eom = 1;
	if (c->f->eom)
		res = c->f->eom(c);
	if (c->pending)
		return 2;
	if (send_reply(c, res) < 0)
		return -1;
	end_message(c, 0);
	return 1;
}

/* One command; 1 go on, 0 quit, 2 pending, -1 error (why). */
static int
command(struct mt_eng_ctx *c, unsigned char cmd, const unsigned char *d,
    size_t n, char *why, size_t whylen)
{
	char *argv[ARGS_MAX + 1];
	const char *s;
	int res = MT_ENG_CONTINUE, rc;

	if (!c->negotiated && cmd != 'O')
		return ERR("command '%c' before option negotiation",
		    cmd >= 0x20 && cmd < 0x7f ? cmd : '?');
	switch (cmd) {
	case 'O':
		rc = on_optneg_full(c, d, n, why, whylen);
		return rc < 0 ? -1 : 1;
	case 'D':
		if (on_macro(c, d, n) < 0)
			return ERR("bad macro packet");
		return 1;
	case 'C':
		return on_connect(c, d, n, why, whylen) < 0 ? -1 : 1;
	case 'H':
		if ((s = one_string(d, n)) == NULL)
			return ERR("HELO without a NUL-terminated name");
		if (c->f->helo)
			res = c->f->helo(c, s);
		return answer(c, MT_ENG_P_NR_HELO, res) < 0 ? -1 : 1;
	case 'M':
		if (split_args(d, n, argv, ARGS_MAX) < 1)
			return ERR("MAIL without a NUL-terminated sender");
		/* MAIL again without ABORT: the last message is given up. */
		if (c->in_msg && c->f->abort)
			c->f->abort(c);
		free(c->reply);
		c->reply = NULL;
		/* The macros for this MAIL came just before: keep them. */
		macros_clear(c, MT_ENG_AT_RCPT);
		c->in_msg = 1;
		if (c->f->envfrom)
			res = c->f->envfrom(c, argv);
		return answer(c, MT_ENG_P_NR_MAIL, res) < 0 ? -1 : 1;
	case 'R':
		if (split_args(d, n, argv, ARGS_MAX) < 1)
			return ERR("RCPT without a NUL-terminated recipient");
		if (c->f->envrcpt)
			res = c->f->envrcpt(c, argv);
		return answer(c, MT_ENG_P_NR_RCPT, res) < 0 ? -1 : 1;
	case 'T':
		return answer(c, MT_ENG_P_NR_DATA, res) < 0 ? -1 : 1;
	case 'L': {
		const unsigned char *nul = memchr(d, '\0', n);

		if (nul == NULL || d[n - 1] != '\0' || (size_t)(nul - d) + 1 >= n)
			return ERR("header packet without name and value");
		if (c->f->header)
			res = c->f->header(c, (const char *)d,
			    (const char *)nul + 1);
		return answer(c, MT_ENG_P_NR_HDR, res) < 0 ? -1 : 1;
	}
	case 'N':
		if (c->f->eoh)
			res = c->f->eoh(c);
		return answer(c, MT_ENG_P_NR_EOH, res) < 0 ? -1 : 1;
	case 'B':
		if (c->f->body)
			res = c->f->body(c, d, n);
		return answer(c, MT_ENG_P_NR_BODY, res) < 0 ? -1 : 1;
	case 'E':
		rc = on_eom(c, d, n);
		if (rc < 0)
			return ERR("out of memory");
		return rc;
	case 'A':
		end_message(c, 1);
		return 1;
	case 'U':
		return answer(c, MT_ENG_P_NR_UNKN, res) < 0 ? -1 : 1;
	case 'Q':
		return 0;
	case 'K':
		end_session(c);
		return 1;
	default:
		return ERR("unknown command '%c' (0x%02x)",
		    cmd >= 0x20 && cmd < 0x7f ? cmd : '?', cmd);
	}
}

/* Whole packets from p; *used says how many bytes they took. */
static int
packets(struct mt_eng_ctx *c, const unsigned char *p, size_t n,
    size_t *used, char *why, size_t whylen)
{
	size_t off = 0;
	int rc = 1;

	while (rc == 1 && n - off >= 4) {
		uint32_t len = get32(p + off);

		if (len == 0)
			return ERR("packet of length 0");
		if (len > MT_ENG_PACKET_MAX)
			return ERR("packet of %u bytes, more than %u", len,
			    (unsigned)MT_ENG_PACKET_MAX);
		if (n - off - 4 < len)
			break;
		rc = command(c, p[off + 4], p + off + 5, len - 1, why, whylen);
		off += 4 + (size_t)len;
		if (c->failed)
			return ERR("out of memory");
	}
	*used = off;
	return rc;
}

static int
keep_input(struct mt_eng_ctx *c, const unsigned char *p, size_t n)
{
	if (n == 0)
		return 0;
	if (c->in_len + n > c->in_cap) {
		size_t cap = c->in_cap ? c->in_cap : 256;
		unsigned char *nb;

		while (cap < c->in_len + n)
			cap *= 2;
		if ((nb = realloc(c->in, cap)) == NULL)
			return -1;
		c->in = nb;
		c->in_cap = cap;
	}
	memcpy(c->in + c->in_len, p, n);
	c->in_len += n;
	return 0;
}

/* The kept input, parsed as far as it goes. */
static int
drain_kept(struct mt_eng_ctx *c, char *why, size_t whylen)
{
	size_t used = 0;
	int rc = packets(c, c->in, c->in_len, &used, why, whylen);

	if (rc < 0)
		return -1;
	memmove(c->in, c->in + used, c->in_len - used);
	c->in_len -= used;
	return rc;
}

int
mt_eng_feed(struct mt_eng_ctx *c, const unsigned char *p, size_t n,
    char *why, size_t whylen)
{
	size_t used = 0;
	int rc;

	if (c->pending) {
		if (keep_input(c, p, n) < 0)
			return ERR("out of memory");
		return 2;
	}
	if (c->in_len > 0) {	/* a packet began in an earlier read */
		if (keep_input(c, p, n) < 0)
			return ERR("out of memory");
		return drain_kept(c, why, whylen);
	}
	rc = packets(c, p, n, &used, why, whylen);
	if (rc < 0)
		return -1;
	if ((rc == 1 || rc == 2) && keep_input(c, p + used, n - used) < 0)
		return ERR("out of memory");
	return rc;
}

int
mt_eng_defer(struct mt_eng_ctx *c, void (*work)(struct mt_eng_ctx *),
    int (*finish)(struct mt_eng_ctx *))
{
	if (!c->in_eom || c->pending || work == NULL || finish == NULL)
		return -1;
	c->work = work;
	c->finish = finish;
	c->pending = 1;
	if (c->dispatch)
		c->dispatch(c, c->dispatch_arg);
	else
		work(c);
	return 0;
}

void
mt_eng_run_work(struct mt_eng_ctx *c)
{
	c->work(c);
}

int
mt_eng_finished(struct mt_eng_ctx *c, char *why, size_t whylen)
{
	int res;

	if (!c->pending)
		return 1;
	c->pending = 0;
	res = c->finish(c);
	if (send_reply(c, res) < 0)
		return ERR("out of memory");
	end_message(c, 0);
	if (c->in_len == 0)
		return 1;
	return drain_kept(c, why, whylen);
}

size_t
mt_eng_partial(const struct mt_eng_ctx *c)
{
	return c->pending ? 0 : c->in_len;
}

void
mt_eng_ctx_free(struct mt_eng_ctx *c)
{
	if (c == NULL)
		return;
	if (c->pending) {	/* the finish that will never be sent */
		c->pending = 0;
		c->in_eom = 0;
		c->finish(c);
	}
	end_session(c);
	free(c->reply);
	free(c->in);
	free(c);
}
