/*
 * The milter's callbacks on the engine (engine/engine.h). One connection
 * context (cctx_) holding the configuration it started with, one message
 * context (mctx_) per transaction. A connection's callbacks all run on its
 * loop thread; the record's write runs on a worker (eom_work) and the
 * answer is made back on the loop (eom_finish).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../common/clock.h"
#include "../common/cidr.h"
#include "../common/log.h"
#include "../common/mthdr.h"
#include "../common/service.h"
#include "../common/text.h"
#include "../common/trackid.h"
#include "../mdn/mdn.h"
#include "../schedule/schedule.h"
#include "milter.h"
#include "receipt.h"

#define HDR_ID MT_MTHDR_ID_HEADER
#define HDR_SENDER MT_MTHDR_SENDER_HEADER
#define HDR_HOP MT_MTHDR_HOP_HEADER
#define ADDR_MAX 1024		/* longest address we keep */
#define RCPT_KEEP 10000		/* recipients kept per record; all counted */
#define NAME_MAX_LEN 512

struct mt_msg {
	char *mctx_sender_raw;		/* MAIL FROM argument as given */
	char *mctx_sender;		/* normalised */
	char *mctx_auth;
	char **mctx_rcpt;
	size_t mctx_nrcpt, mctx_rcpt_cap, mctx_rcpt_total;
	char *mctx_msgid;
	char *mctx_subject;		/* decoded, at most SUBJECT_MAX bytes */
	char *mctx_dd;			/* first Deferred-Delivery: value */
	int mctx_n_dd;			/* Deferred-Delivery: headers seen */
	struct mt_mthdr_seen mctx_mt;	/* X-Mailtrail-* headers by name */
	int mctx_kept_index;		/* 1-based X-Mailtrail-ID kept, or 0 */
	char mctx_kept_id[MT_ID_SIZE];
	uint64_t mctx_size;
	struct mt_path mctx_path;
	struct mt_receipt mctx_receipt;	/* receipt.c: MDNs, DNT header */
	/* End of message, between the loop and the worker (eom_*). */
	struct mt_record mctx_r;
	struct mt_hop *mctx_hops;
	size_t mctx_nhops, mctx_first_new;
	enum mt_store_result mctx_stored;
	int mctx_res;			/* MT_ENG_* for the MTA */
	int mctx_tracked, mctx_site_user, mctx_failed;
	char mctx_qid[64];
};

struct mt_conn {
	struct mt_config *cctx_cfg;
	char cctx_ip[INET6_ADDRSTRLEN];
	char *cctx_name;
	char *cctx_helo;
	char *cctx_by;
	char *cctx_daemon_addr;
	int cctx_internal;		/* InternalHosts or local pickup */
	int cctx_site;			/* SiteMTAs: may hand us its X-Mailtrail-* */
	struct mt_msg *cctx_msg;
};

static char *
dup_clean(const char *s, size_t max)
{
	char *buf;
	size_t len;

	if (s == NULL)
		return NULL;
	len = strnlen(s, max * 4);
	buf = malloc(max + 1);
	if (buf == NULL)
		return NULL;
	mt_text_header(buf, max + 1, s, len);
	return buf;
}

static char *
dup_address(const char *s)
{
	char buf[ADDR_MAX];
	size_t len = strnlen(s, 8192);

	/* An address longer than we keep is cut, not dropped: it still counts. */
	if (mt_text_address(buf, sizeof(buf), s, len) == (size_t)-1 &&
	    mt_text_address(buf, sizeof(buf), s, sizeof(buf) - 2) == (size_t)-1)
		strcpy(buf, "?");
	return strdup(buf);
}

static void
msg_free(struct mt_msg *m)
{
	if (m == NULL)
		return;
	free(m->mctx_sender_raw);
	free(m->mctx_sender);
	free(m->mctx_auth);
	for (size_t i = 0; i < m->mctx_nrcpt; i++)
		free(m->mctx_rcpt[i]);
	free(m->mctx_rcpt);
	free(m->mctx_msgid);
	free(m->mctx_subject);
	free(m->mctx_dd);
	mt_mthdr_free(&m->mctx_mt);
	mt_path_free(&m->mctx_path);
	mt_receipt_free(&m->mctx_receipt);
	free(m->mctx_r.hop_path);
	free(m->mctx_hops);
	free(m);
}

static struct mt_conn *
conn_of(struct mt_eng_ctx *ctx)
{
	return mt_eng_getpriv(ctx);
}

/* The one place where failures become a milter answer. */
static int
failure_result(const struct mt_config *cfg)
{
	return cfg->on_store_failure == MT_FAIL_ACCEPT ? MT_ENG_ACCEPT
	    : MT_ENG_TEMPFAIL;
}

static int
cb_connect(struct mt_eng_ctx *ctx, const char *hostname,
    const struct sockaddr *sa)
{
	struct mt_conn *c = calloc(1, sizeof(*c));
	const char *by = mt_eng_macro(ctx, "j");
	char host[256];

	if (c == NULL) {
		mt_log(LOG_ERR, "out of memory at connect");
		return MT_ENG_TEMPFAIL;
	}
	c->cctx_cfg = mt_service_config();
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr,
		    c->cctx_ip, sizeof(c->cctx_ip));
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr,
		    c->cctx_ip, sizeof(c->cctx_ip));
	else
		strcpy(c->cctx_ip, "local");
	/* No address means Postfix's own pickup (sendmail command): local. */
	c->cctx_internal = sa == NULL || (sa->sa_family != AF_INET &&
	    sa->sa_family != AF_INET6) ||
	    mt_cidr_list_match(&c->cctx_cfg->internal, (struct sockaddr *)sa);
	/* Only a network peer can be a site MTA: never the sendmail command. */
	c->cctx_site = sa != NULL && (sa->sa_family == AF_INET ||
	    sa->sa_family == AF_INET6) &&
	    mt_cidr_list_match(&c->cctx_cfg->site_mtas, (struct sockaddr *)sa);
	/* "[addr]" when there is no name: Postfix's logs say "unknown". */
	if (hostname == NULL || hostname[0] == '[' || hostname[0] == '\0')
		hostname = "unknown";
	c->cctx_name = dup_clean(hostname, NAME_MAX_LEN);
	if (by == NULL && gethostname(host, sizeof(host)) == 0) {
		host[sizeof(host) - 1] = '\0';
		by = host;
	}
	c->cctx_by = dup_clean(by ? by : "localhost", NAME_MAX_LEN);
	by = mt_eng_macro(ctx, "{daemon_addr}");
	if (by)
		c->cctx_daemon_addr = dup_clean(by, INET6_ADDRSTRLEN);
	mt_eng_setpriv(ctx, c);
	return MT_ENG_CONTINUE;
}

static int
cb_helo(struct mt_eng_ctx *ctx, const char *helo)
{
	struct mt_conn *c = conn_of(ctx);

	if (c) {
		free(c->cctx_helo);
		c->cctx_helo = dup_clean(helo, NAME_MAX_LEN);
	}
	return MT_ENG_CONTINUE;
}

static int
cb_envfrom(struct mt_eng_ctx *ctx, char **argv)
{
	struct mt_conn *c = conn_of(ctx);
	const char *auth = mt_eng_macro(ctx, "{auth_authen}");

	if (c == NULL)
		return MT_ENG_ACCEPT;
	msg_free(c->cctx_msg);
	c->cctx_msg = calloc(1, sizeof(struct mt_msg));
	if (c->cctx_msg == NULL)
		return failure_result(c->cctx_cfg);
	c->cctx_msg->mctx_sender_raw = strndup(argv[0] ? argv[0] : "<>", 8192);
	c->cctx_msg->mctx_sender = dup_address(argv[0] ? argv[0] : "<>");
	if (auth && *auth)
		c->cctx_msg->mctx_auth = dup_clean(auth, NAME_MAX_LEN);
	return MT_ENG_CONTINUE;
}

static int
cb_envrcpt(struct mt_eng_ctx *ctx, char **argv)
{
	struct mt_conn *c = conn_of(ctx);
	struct mt_msg *m = c ? c->cctx_msg : NULL;

	if (m == NULL || argv[0] == NULL)
		return MT_ENG_CONTINUE;
	m->mctx_rcpt_total++;
	if (m->mctx_nrcpt == RCPT_KEEP)
		return MT_ENG_CONTINUE;
	if (m->mctx_nrcpt == m->mctx_rcpt_cap) {
		size_t cap = m->mctx_rcpt_cap ? m->mctx_rcpt_cap * 2 : 4;
		char **nv = realloc(m->mctx_rcpt, cap * sizeof(*nv));

		if (nv == NULL)
			return failure_result(c->cctx_cfg);
		m->mctx_rcpt = nv;
		m->mctx_rcpt_cap = cap;
	}
	m->mctx_rcpt[m->mctx_nrcpt] = dup_address(argv[0]);
	if (m->mctx_rcpt[m->mctx_nrcpt] != NULL)
		m->mctx_nrcpt++;
	return MT_ENG_CONTINUE;
}

static void
note_id_header(struct mt_conn *c, struct mt_msg *m, const char *value)
{
	/* Only the site's own mailtrail MTAs may hand us an ID to keep. */
	if (m->mctx_kept_index != 0 || !c->cctx_site)
		return;
	if (mt_id_verify(c->cctx_cfg->secret, c->cctx_cfg->secret_len, value,
	    strlen(value), m->mctx_kept_id))
		m->mctx_kept_index = m->mctx_mt.n_id;
}

/*
 * The record keeps the first 64 bytes of the Subject: a longer value would
 * turn the whole record hash from Redis's compact encoding into a
 * hashtable (hash-max-listpack-value), several times its size.
 */
#define SUBJECT_MAX 64
#define DD_MAX 256		/* a date longer than this is no date */

/* Headers that are not X-Mailtrail-*: Received:, Message-ID, Subject. */
static void
note_other_header(struct mt_msg *m, const char *name, const char *value)
{
	if (strcasecmp(name, "Received") == 0) {
		mt_path_note_received(&m->mctx_path, value);
	} else if (strcasecmp(name, "Message-ID") == 0 && m->mctx_msgid == NULL) {
		char buf[MT_HDR_LINE_MAX];
		size_t n = mt_text_header(buf, sizeof(buf), value, strlen(value));
		char *p = buf;

		if (n >= 2 && buf[0] == '<' && buf[n - 1] == '>') {
			buf[n - 1] = '\0';
			p++;
		}
		if (*p)
			m->mctx_msgid = strdup(p);
	} else if (strcasecmp(name, "Deferred-Delivery") == 0) {
		if (m->mctx_n_dd++ == 0)
			m->mctx_dd = strndup(value, DD_MAX);
	} else if (strcasecmp(name, "Subject") == 0 &&
	    m->mctx_subject == NULL) {
		char buf[SUBJECT_MAX + 1];

		mt_mdn_header_text(buf, sizeof(buf), value, strlen(value));
		m->mctx_subject = strdup(buf);
	}
}

static int
cb_header(struct mt_eng_ctx *ctx, const char *name, const char *value)
{
	struct mt_conn *c = conn_of(ctx);
	struct mt_msg *m = c ? c->cctx_msg : NULL;

	if (m == NULL)
		return MT_ENG_CONTINUE;
	m->mctx_size += strlen(name) + strlen(value) + 4;
	switch (mt_mthdr_note(&m->mctx_mt, name)) {
	case MT_MTHDR_ID:
		note_id_header(c, m, value);
		break;
	case MT_MTHDR_HOP:
		/* Only hops our own MTAs stamped are part of the path. */
		if (c->cctx_site)
			mt_path_note_hop(&m->mctx_path, value);
		break;
	case MT_MTHDR_NONE:
		note_other_header(m, name, value);
		break;
	default:
		break;
	}
	/* Read receipts (receipt.c): Content-Type, Disposition-Notification-To. */
	mt_receipt_header(&m->mctx_receipt, name, value);
	return MT_ENG_CONTINUE;
}

static int
cb_body(struct mt_eng_ctx *ctx, const unsigned char *chunk, size_t len)
{
	struct mt_conn *c = conn_of(ctx);

	if (c && c->cctx_msg) {
		c->cctx_msg->mctx_size += len;
		/* Kept (up to MT_MDN_MAX) only when it announces an MDN. */
		mt_receipt_body(&c->cctx_msg->mctx_receipt, chunk, len);
	}
	return MT_ENG_CONTINUE;
}

/* Deletes every NAME header but the keep-th, last first: indices shift. */
static void
strip_headers(struct mt_eng_ctx *ctx, const char *name, int n, int keep)
{
	for (int i = n; i >= 1; i--)
		if (i != keep)
			mt_eng_chgheader(ctx, name, i, NULL);
}

static void
add_sender_header(struct mt_eng_ctx *ctx, const char *raw)
{
	char inner[MT_HDR_LINE_MAX - sizeof(HDR_SENDER ": <>") + 2];
	char value[MT_HDR_LINE_MAX];
	size_t len = strlen(raw);

	while (len > 0 && (*raw == '<' || *raw == ' ')) {
		raw++;
		len--;
	}
	while (len > 0 && (raw[len - 1] == '>' || raw[len - 1] == ' '))
		len--;
	mt_text_header(inner, sizeof(inner), raw, len);
	snprintf(value, sizeof(value), "<%s>", inner);
	mt_eng_insheader(ctx, 0, HDR_SENDER, value);
}

/* New hops oldest first, each at the top: the newest ends up above. */
static void
stamp_hops(struct mt_eng_ctx *ctx, const struct mt_hop *hops, size_t first,
    size_t n)
{
	char value[MT_HDR_LINE_MAX];

	for (size_t i = first; i < n; i++) {
		mt_hop_format(&hops[i], value, sizeof(value));
		mt_eng_insheader(ctx, 0, HDR_HOP, value);
	}
}

/*
 * A site MTA's hops (and other X-Mailtrail-* headers) stay; with a valid ID
 * it is the next hop of a message, which keeps that ID and the origin's
 * sender header. Every other client's X-Mailtrail-* headers go, whatever
 * their name, and a tracked message gets ours: a fresh ID and this hop's
 * envelope sender.
 */
static void
edit_headers(struct mt_eng_ctx *ctx, const struct mt_conn *c,
    const struct mt_msg *m,
    int tracked, const char *id, const struct mt_hop *hops,
    size_t first_new, size_t nhops)
{
	int kept = m->mctx_kept_index;
	int keep_sender = (kept && m->mctx_mt.n_sender > 0) ? 1 : 0;

	strip_headers(ctx, HDR_ID, m->mctx_mt.n_id, kept);
	strip_headers(ctx, HDR_SENDER, m->mctx_mt.n_sender, keep_sender);
	if (!c->cctx_site) {
		strip_headers(ctx, HDR_HOP, m->mctx_mt.n_hop, 0);
		for (size_t i = 0; i < m->mctx_mt.n_other; i++)
			strip_headers(ctx, m->mctx_mt.other[i].name,
			    m->mctx_mt.other[i].count, 0);
	}
	if (hops)
		stamp_hops(ctx, hops, first_new, nhops);
	if (!tracked)
		return;
	if (!keep_sender)
		add_sender_header(ctx, m->mctx_sender_raw);
	if (!kept && id[0])
		mt_eng_insheader(ctx, 0, HDR_ID, id);
}

/* RequestReadReceipt: ask for an MDN on submissions that did not. */
static void
request_receipt(struct mt_eng_ctx *ctx, const struct mt_conn *c,
    const struct mt_msg *m, int site_user)
{
	char value[MT_HDR_LINE_MAX];
	char addr[MT_HDR_LINE_MAX - 40];

	if (!site_user || !c->cctx_cfg->request_read_receipt ||
	    m->mctx_receipt.rcp_has_dnt || m->mctx_sender == NULL ||
	    strcmp(m->mctx_sender, "<>") == 0)
		return;
	mt_text_header(addr, sizeof(addr), m->mctx_sender,
	    strlen(m->mctx_sender));
	snprintf(value, sizeof(value), "<%s>", addr);
	mt_eng_addheader(ctx, "Disposition-Notification-To", value);
}

/* The record borrows the contexts' strings: it is not freed here. */
static void
fill_record(struct mt_record *r, const struct mt_conn *c,
    const struct mt_msg *m, const char *qid, int64_t now)
{
	r->qid = (char *)qid;
	r->msgid = m->mctx_msgid;
	r->subject = m->mctx_subject;
	r->sender = m->mctx_sender;
	r->rcpt = m->mctx_rcpt;
	r->nrcpt = m->mctx_nrcpt;
	r->client_ip = (char *)c->cctx_ip;
	r->client_name = c->cctx_name;
	r->helo = c->cctx_helo;
	r->auth = m->mctx_auth;
	r->size = m->mctx_size;
	r->received_ms = now;
	r->by = c->cctx_by;
	r->hops = 0;
}

/*
 * The record's place is the origin's: the oldest hop, or where it entered
 * our site when the origin has no place on the map (a LAN submission).
 */
static void
set_origin(struct mt_record *r, struct mt_hop *hops, size_t n)
{
	const struct mt_geo_loc *l = NULL;

	r->hops = (int)n;
	if (n == 0)
		return;
	if (hops[0].loc.found)
		l = &hops[0].loc;
	else if (hops[0].by_loc.found)
		l = &hops[0].by_loc;
	if (l == NULL)
		return;
	r->have_geo = 1;
	r->lat = l->lat;
	r->lon = l->lon;
	r->cc = l->cc[0] ? (char *)l->cc : NULL;
	r->city = l->city[0] ? (char *)l->city : NULL;
}

static size_t
build_path(const struct mt_conn *c, struct mt_msg *m, int64_t now,
    struct mt_hop *hops, size_t *first_new)
{
	const struct mt_config *cfg = c->cctx_cfg;
	struct mt_path_in in = {
		.client_ip = c->cctx_ip, .by = c->cctx_by,
		.daemon_addr = c->cctx_daemon_addr,
		.public_addr = cfg->public_address,
		.internal = &cfg->internal, .trusted = &cfg->trusted,
		.site_mtas = &cfg->site_mtas,
		.geo = mt_runtime_of(cfg)->geo, .now_ms = now,
	};

	return mt_path_build(&m->mctx_path, &in, hops, first_new);
}

/* Gives a submission its ID (kept or new) and stores the record. */
static int
track(const struct mt_conn *c, const struct mt_msg *m, struct mt_record *r,
    enum mt_store_result *stored, int *res)
{
	const struct mt_config *cfg = c->cctx_cfg;
	char err[512];

	if (m->mctx_kept_index) {
		memcpy(r->id, m->mctx_kept_id, sizeof(r->id));
		r->id_kept = 1;
	} else if (mt_id_new(cfg->secret, cfg->secret_len,
	    (uint64_t)r->received_ms, r->id) < 0) {
		*res = failure_result(cfg);
		mt_log(LOG_ERR, "%s: cannot make a tracking ID: OpenSSL failed; "
		    "%s the message", r->qid,
		    *res == MT_ENG_TEMPFAIL ? "deferring" : "accepting");
		return -1;
	}
	*stored = mt_store_put(mt_runtime_of(cfg)->store, r, err, sizeof(err));
	if (*stored != MT_STORE_FAILED)
		return 0;
	*res = failure_result(cfg);
	mt_log(LOG_ERR, "%s: id=%s: record neither in Redis nor spooled: %s; "
	    "%s the message", r->qid, r->id, err,
	    *res == MT_ENG_TEMPFAIL ? "deferring" : "accepting");
	return -1;
}

/* Over an mthdr bound: a clear refusal rather than a partial strip. */
static int
refuse_flood(struct mt_eng_ctx *ctx, struct mt_conn *c, const char *qid)
{
	mt_log(LOG_NOTICE, "%s: reject: more than %d X-Mailtrail-* headers, "
	    "%d distinct X-Mailtrail-* names or a name over %d bytes from "
	    "%s[%s]", qid, MT_MTHDR_TOTAL_MAX, MT_MTHDR_NAMES_MAX,
	    MT_MTHDR_NAME_LEN, c->cctx_name, c->cctx_ip);
	mt_eng_setreply(ctx, "550", "5.7.1",
	    "too many X-Mailtrail-* header fields");
	msg_free(c->cctx_msg);
	c->cctx_msg = NULL;
	return MT_ENG_REJECT;
}

/*
 * A site user's Deferred-Delivery: 0 with *send_at (0: send now), or -1
 * with the refusal set: the user's client shows the reason.
 */
static int
schedule(struct mt_eng_ctx *ctx, const struct mt_conn *c,
    const struct mt_msg *m,
    const char *qid, int64_t now, int64_t *send_at)
{
	char why[128], text[256], when[32];
	int64_t due;

	*send_at = 0;
	switch (m->mctx_n_dd > 1 ? MT_SCHED_BAD : mt_sched_decide(m->mctx_dd,
	    m->mctx_dd ? strlen(m->mctx_dd) : 0, now,
	    c->cctx_cfg->max_deferral_s, &due, why, sizeof(why))) {
	case MT_SCHED_NOW:
		return 0;
	case MT_SCHED_HOLD:
		*send_at = due;
		return 0;
	case MT_SCHED_BAD:
		if (m->mctx_n_dd > 1)
			snprintf(why, sizeof(why), "more than one such header");
		snprintf(text, sizeof(text), "Deferred-Delivery: header is not "
		    "a date and time we can read (%s)", why);
		break;
	case MT_SCHED_TOO_FAR:
	default:
		mt_sched_iso(when, sizeof(when), due);
		snprintf(text, sizeof(text), "Deferred-Delivery: %s is further "
		    "ahead than this site's limit of %ld days (MaxDeferral)",
		    when, (c->cctx_cfg->max_deferral_s + 86399) / 86400);
		break;
	}
	mt_log(LOG_NOTICE, "%s: reject: %s; from=<%s> client=%s[%s]", qid,
	    text, m->mctx_sender, c->cctx_name, c->cctx_ip);
	mt_eng_setreply(ctx, "554", "5.6.0", text);
	return -1;
}

/*
 * Into Postfix's hold queue, with the mark that tells the releaser this
 * hold is ours: the due time and the queue ID it is held under (a message
 * that is requeued gets another, so the mark no longer matches it).
 */
static void
hold(struct mt_eng_ctx *ctx, const struct mt_record *r)
{
	char mark[256], when[32], reason[96];

	mt_sched_iso(when, sizeof(when), r->send_at_ms);
	if (mt_sched_hold_format(mark, sizeof(mark), r->send_at_ms / 1000,
	    r->qid) == 0)
		mt_eng_insheader(ctx, 0, MT_SCHED_HOLD_HEADER, mark);
	snprintf(reason, sizeof(reason), "mailtrail: scheduled until %s", when);
	if (mt_eng_quarantine(ctx, reason) != 0)
		mt_log(LOG_ERR, "%s: id=%s: cannot put the message on hold "
		    "(the MTA refused the quarantine action): it is sent now",
		    r->qid, r->id);
}

/*
 * On the worker: the record into Redis or the spool (blocking up to
 * RedisTimeout and an fsync), then a read receipt's events.
 */
static void
eom_work(struct mt_eng_ctx *ctx)
{
	struct mt_conn *c = conn_of(ctx);
	struct mt_msg *m = c->cctx_msg;

	if (m->mctx_tracked && track(c, m, &m->mctx_r, &m->mctx_stored,
	    &m->mctx_res) < 0 && m->mctx_res == MT_ENG_TEMPFAIL) {
		m->mctx_failed = 1;
		return;
	}
	/* Read receipts: after the record, and never the message's fate. */
	mt_receipt_finish(&m->mctx_receipt, c->cctx_cfg,
	    mt_runtime_of(c->cctx_cfg)->events, m->mctx_qid,
	    m->mctx_site_user ? m->mctx_sender : NULL);
}

/* Back on the loop: the headers, the hold, the log line, the answer. */
static int
eom_finish(struct mt_eng_ctx *ctx)
{
	struct mt_conn *c = conn_of(ctx);
	struct mt_msg *m = c->cctx_msg;
	struct mt_record *r = &m->mctx_r;
	int res = MT_ENG_CONTINUE;

	if (m->mctx_failed) {
		res = m->mctx_res;
		goto out;
	}
	edit_headers(ctx, c, m, m->mctx_tracked, r->id, m->mctx_hops,
	    m->mctx_first_new, m->mctx_nhops);
	/* Without an ID of ours, nothing would ever release it: send now. */
	if (r->send_at_ms > 0 && r->id[0] != '\0')
		hold(ctx, r);
	mt_logline(c->cctx_cfg, r, m->mctx_tracked, m->mctx_stored);
	request_receipt(ctx, c, m, m->mctx_site_user);
out:
	msg_free(m);
	c->cctx_msg = NULL;
	return res;
}

static int
cb_eom(struct mt_eng_ctx *ctx)
{
	struct mt_conn *c = conn_of(ctx);
	struct mt_msg *m = c ? c->cctx_msg : NULL;
	struct mt_record *r;
	const char *qid = mt_eng_macro(ctx, "i");
	int64_t now = mt_clock_ms(CLOCK_REALTIME);

	if (m == NULL)
		return MT_ENG_CONTINUE;
	r = &m->mctx_r;
	mt_text_header(m->mctx_qid, sizeof(m->mctx_qid), qid ? qid : "NOQUEUE",
	    qid ? strlen(qid) : 7);
	if (m->mctx_mt.over && !c->cctx_site)
		return refuse_flood(ctx, c, m->mctx_qid);
	/* A site user: a SASL login, or a host of ours that is no relay. */
	m->mctx_site_user = !m->mctx_kept_index && (m->mctx_auth != NULL ||
	    (c->cctx_internal && !c->cctx_site));
	/* Mail from outside too (TrackInbound), with a fresh ID of ours. */
	m->mctx_tracked = m->mctx_kept_index || c->cctx_internal ||
	    m->mctx_auth != NULL || c->cctx_cfg->track_inbound;
	m->mctx_stored = MT_STORE_REDIS;
	m->mctx_res = MT_ENG_CONTINUE;
	fill_record(r, c, m, m->mctx_qid, now);
	r->inbound = !m->mctx_kept_index && !c->cctx_internal &&
	    m->mctx_auth == NULL;
	m->mctx_hops = calloc(MT_PATH_HOPS_MAX, sizeof(*m->mctx_hops));
	if (m->mctx_hops) {
		m->mctx_nhops = build_path(c, m, now, m->mctx_hops,
		    &m->mctx_first_new);
		set_origin(r, m->mctx_hops, m->mctx_nhops);
		r->hop_path = mt_hop_path_json(m->mctx_hops, m->mctx_nhops);
	}
	/* Deferred-Delivery: only a site user's mail is ever held. */
	if (m->mctx_site_user && m->mctx_n_dd > 0 &&
	    schedule(ctx, c, m, m->mctx_qid, now, &r->send_at_ms) < 0) {
		msg_free(m);
		c->cctx_msg = NULL;
		return MT_ENG_REJECT;
	}
	if (mt_eng_defer(ctx, eom_work, eom_finish) == 0)
		return MT_ENG_PENDING;
	eom_work(ctx);
	return eom_finish(ctx);
}

static void
cb_abort(struct mt_eng_ctx *ctx)
{
	struct mt_conn *c = conn_of(ctx);

	if (c) {
		msg_free(c->cctx_msg);
		c->cctx_msg = NULL;
	}
}

static void
cb_close(struct mt_eng_ctx *ctx)
{
	struct mt_conn *c = conn_of(ctx);

	if (c == NULL)
		return;
	msg_free(c->cctx_msg);
	free(c->cctx_name);
	free(c->cctx_helo);
	free(c->cctx_by);
	free(c->cctx_daemon_addr);
	if (c->cctx_cfg)
		mt_config_unref(c->cctx_cfg);
	free(c);
	mt_eng_setpriv(ctx, NULL);
}

/*
 * What we ask of the MTA: header edits and the hold queue; no replies to
 * the steps whose answer is always "continue", and none of the steps we
 * do not read; the macros we use, at the stage they are set.
 */
const struct mt_eng_filter mt_milter_filter = {
	.actions = MT_ENG_F_ADDHDRS | MT_ENG_F_CHGHDRS | MT_ENG_F_QUARANTINE |
	    MT_ENG_F_SETSYMLIST,
	.protocol = MT_ENG_P_NOUNKNOWN | MT_ENG_P_NODATA | MT_ENG_P_NOEOH |
	    MT_ENG_P_NR_HDR | MT_ENG_P_NR_CONN | MT_ENG_P_NR_HELO |
	    MT_ENG_P_NR_BODY | MT_ENG_P_NR_MAIL | MT_ENG_P_NR_RCPT,
	/*
	 * Empty lists matter: Postfix's default RCPT macros include
	 * {rcpt_mailer}, a resolver query for every recipient.
	 */
	.symlist = {
		[MT_ENG_AT_CONNECT] = "j {daemon_addr}",
		[MT_ENG_AT_HELO] = "",
		[MT_ENG_AT_MAIL] = "{auth_authen}",
		[MT_ENG_AT_RCPT] = "",
		[MT_ENG_AT_DATA] = "",
		[MT_ENG_AT_EOH] = "",
		[MT_ENG_AT_EOM] = "i",
	},
	.connect = cb_connect,
	.helo = cb_helo,
	.envfrom = cb_envfrom,
	.envrcpt = cb_envrcpt,
	.header = cb_header,
	.body = cb_body,
	.eom = cb_eom,
	.abort = cb_abort,
	.close = cb_close,
};
