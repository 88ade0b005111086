/*
 * libmilter callbacks. One connection context (cctx_) holding the
 * configuration it started with, one message context (mctx_) per
 * transaction; both reached through smfi_getpriv because libmilter may run
 * one connection's callbacks on different worker threads.
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
	unsigned long cctx_noreply;	/* SMFIP_NR_* agreed with the MTA */
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
	free(m);
}

static struct mt_conn *
conn_of(SMFICTX *ctx)
{
	return smfi_getpriv(ctx);
}

/* The one place where failures become a milter answer. */
static sfsistat
failure_result(const struct mt_config *cfg)
{
	return cfg->on_store_failure == MT_FAIL_ACCEPT ? SMFIS_ACCEPT
	    : SMFIS_TEMPFAIL;
}

static sfsistat
cb_negotiate(SMFICTX *ctx, unsigned long f0, unsigned long f1,
    unsigned long f2, unsigned long f3, unsigned long *pf0,
    unsigned long *pf1, unsigned long *pf2, unsigned long *pf3)
{
	unsigned long want = SMFIP_NOUNKNOWN | SMFIP_NODATA |
	    SMFIP_NOEOH | SMFIP_NR_HDR | SMFIP_NR_CONN | SMFIP_NR_HELO |
	    SMFIP_NR_BODY | SMFIP_NR_MAIL | SMFIP_NR_RCPT;

	struct mt_conn *c = calloc(1, sizeof(*c));

	(void)f2;
	(void)f3;
	if (c == NULL)
		return SMFIS_REJECT;	/* libmilter: fall back to no options */
	*pf0 = f0 & (SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE |
	    SMFIF_SETSYMLIST);
	*pf1 = f1 & want;
	*pf2 = *pf3 = 0;
	c->cctx_noreply = *pf1;
	smfi_setpriv(ctx, c);
	if ((f0 & SMFIF_SETSYMLIST) != 0) {
		smfi_setsymlist(ctx, SMFIM_CONNECT, (char *)"j {daemon_addr}");
		smfi_setsymlist(ctx, SMFIM_ENVFROM, (char *)"{auth_authen}");
		smfi_setsymlist(ctx, SMFIM_EOM, (char *)"i");
	}
	return SMFIS_CONTINUE;
}

/* Callbacks answer NOREPLY where the MTA agreed to it: one round trip less. */
static sfsistat
next(const struct mt_conn *c, unsigned long nr_flag)
{
	return (c && (c->cctx_noreply & nr_flag)) ? SMFIS_NOREPLY
	    : SMFIS_CONTINUE;
}

static sfsistat
cb_connect(SMFICTX *ctx, char *hostname, _SOCK_ADDR *sa)
{
	struct mt_conn *c = conn_of(ctx);
	const char *by = smfi_getsymval(ctx, (char *)"j");
	char host[256];

	if (c == NULL)
		c = calloc(1, sizeof(*c));
	if (c == NULL) {
		mt_log(LOG_ERR, "out of memory at connect");
		return SMFIS_TEMPFAIL;
	}
	c->cctx_cfg = mt_daemon_config();
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
	    mt_cidr_list_match(&c->cctx_cfg->internal, sa);
	/* Only a network peer can be a site MTA: never the sendmail command. */
	c->cctx_site = sa != NULL && (sa->sa_family == AF_INET ||
	    sa->sa_family == AF_INET6) &&
	    mt_cidr_list_match(&c->cctx_cfg->site_mtas, sa);
	/* libmilter passes "[addr]" when there is no name: Postfix says "unknown". */
	if (hostname == NULL || hostname[0] == '[' || hostname[0] == '\0')
		hostname = (char *)"unknown";
	c->cctx_name = dup_clean(hostname, NAME_MAX_LEN);
	if (by == NULL && gethostname(host, sizeof(host)) == 0) {
		host[sizeof(host) - 1] = '\0';
		by = host;
	}
	c->cctx_by = dup_clean(by ? by : "localhost", NAME_MAX_LEN);
	by = smfi_getsymval(ctx, (char *)"{daemon_addr}");
	if (by)
		c->cctx_daemon_addr = dup_clean(by, INET6_ADDRSTRLEN);
	smfi_setpriv(ctx, c);
	return next(c, SMFIP_NR_CONN);
}

static sfsistat
cb_helo(SMFICTX *ctx, char *helo)
{
	struct mt_conn *c = conn_of(ctx);

	if (c) {
		free(c->cctx_helo);
		c->cctx_helo = dup_clean(helo, NAME_MAX_LEN);
	}
	return next(c, SMFIP_NR_HELO);
}

static sfsistat
cb_envfrom(SMFICTX *ctx, char **argv)
{
	struct mt_conn *c = conn_of(ctx);
	const char *auth = smfi_getsymval(ctx, (char *)"{auth_authen}");

	if (c == NULL)
		return SMFIS_ACCEPT;
	msg_free(c->cctx_msg);
	c->cctx_msg = calloc(1, sizeof(struct mt_msg));
	if (c->cctx_msg == NULL)
		return failure_result(c->cctx_cfg);
	c->cctx_msg->mctx_sender_raw = strndup(argv[0] ? argv[0] : "<>", 8192);
	c->cctx_msg->mctx_sender = dup_address(argv[0] ? argv[0] : "<>");
	if (auth && *auth)
		c->cctx_msg->mctx_auth = dup_clean(auth, NAME_MAX_LEN);
	return next(c, SMFIP_NR_MAIL);
}

static sfsistat
cb_envrcpt(SMFICTX *ctx, char **argv)
{
	struct mt_conn *c = conn_of(ctx);
	struct mt_msg *m = c ? c->cctx_msg : NULL;

	if (m == NULL || argv[0] == NULL)
		return next(c, SMFIP_NR_RCPT);
	m->mctx_rcpt_total++;
	if (m->mctx_nrcpt == RCPT_KEEP)
		return next(c, SMFIP_NR_RCPT);
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
	return next(c, SMFIP_NR_RCPT);
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

static sfsistat
cb_header(SMFICTX *ctx, char *name, char *value)
{
	struct mt_conn *c = conn_of(ctx);
	struct mt_msg *m = c ? c->cctx_msg : NULL;

	if (m == NULL)
		return next(c, SMFIP_NR_HDR);
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
	return next(c, SMFIP_NR_HDR);
}

static sfsistat
cb_body(SMFICTX *ctx, unsigned char *chunk, size_t len)
{
	struct mt_conn *c = conn_of(ctx);

	if (c && c->cctx_msg) {
		c->cctx_msg->mctx_size += len;
		/* Kept (up to MT_MDN_MAX) only when it announces an MDN. */
		mt_receipt_body(&c->cctx_msg->mctx_receipt, chunk, len);
	}
	return next(c, SMFIP_NR_BODY);
}

/* Deletes every NAME header but the keep-th, last first: indices shift. */
static void
strip_headers(SMFICTX *ctx, const char *name, int n, int keep)
{
	for (int i = n; i >= 1; i--)
		if (i != keep)
			smfi_chgheader(ctx, (char *)name, i, NULL);
}

static void
add_sender_header(SMFICTX *ctx, const char *raw)
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
	smfi_insheader(ctx, 0, (char *)HDR_SENDER, value);
}

/* New hops oldest first, each at the top: the newest ends up above. */
static void
stamp_hops(SMFICTX *ctx, const struct mt_hop *hops, size_t first, size_t n)
{
	char value[MT_HDR_LINE_MAX];

	for (size_t i = first; i < n; i++) {
		mt_hop_format(&hops[i], value, sizeof(value));
		smfi_insheader(ctx, 0, (char *)HDR_HOP, value);
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
edit_headers(SMFICTX *ctx, const struct mt_conn *c, const struct mt_msg *m,
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
		smfi_insheader(ctx, 0, (char *)HDR_ID, (char *)id);
}

/* RequestReadReceipt: ask for an MDN on submissions that did not. */
static void
request_receipt(SMFICTX *ctx, const struct mt_conn *c, const struct mt_msg *m,
    int site_user)
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
	smfi_addheader(ctx, (char *)"Disposition-Notification-To", value);
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
		.internal = &cfg->internal, .trusted = &cfg->trusted,
		.site_mtas = &cfg->site_mtas,
		.geo = mt_runtime_of(cfg)->geo, .now_ms = now,
	};

	return mt_path_build(&m->mctx_path, &in, hops, first_new);
}

/* Gives a submission its ID (kept or new) and stores the record. */
static int
track(const struct mt_conn *c, const struct mt_msg *m, struct mt_record *r,
    enum mt_store_result *stored, sfsistat *res)
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
		    *res == SMFIS_TEMPFAIL ? "deferring" : "accepting");
		return -1;
	}
	*stored = mt_store_put(mt_runtime_of(cfg)->store, r, err, sizeof(err));
	if (*stored != MT_STORE_FAILED)
		return 0;
	*res = failure_result(cfg);
	mt_log(LOG_ERR, "%s: id=%s: record neither in Redis nor spooled: %s; "
	    "%s the message", r->qid, r->id, err,
	    *res == SMFIS_TEMPFAIL ? "deferring" : "accepting");
	return -1;
}

/* Over an mthdr bound: a clear refusal rather than a partial strip. */
static sfsistat
refuse_flood(SMFICTX *ctx, struct mt_conn *c, const char *qid)
{
	mt_log(LOG_NOTICE, "%s: reject: more than %d X-Mailtrail-* headers, "
	    "%d distinct X-Mailtrail-* names or a name over %d bytes from "
	    "%s[%s]", qid, MT_MTHDR_TOTAL_MAX, MT_MTHDR_NAMES_MAX,
	    MT_MTHDR_NAME_LEN, c->cctx_name, c->cctx_ip);
	smfi_setreply(ctx, (char *)"550", (char *)"5.7.1",
	    (char *)"too many X-Mailtrail-* header fields");
	msg_free(c->cctx_msg);
	c->cctx_msg = NULL;
	return SMFIS_REJECT;
}

/*
 * A site user's Deferred-Delivery: 0 with *send_at (0: send now), or -1
 * with the refusal set: the user's client shows the reason.
 */
static int
schedule(SMFICTX *ctx, const struct mt_conn *c, const struct mt_msg *m,
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
	smfi_setreply(ctx, (char *)"554", (char *)"5.6.0", text);
	return -1;
}

/*
 * Into Postfix's hold queue, with the mark that tells the releaser this
 * hold is ours: the due time and the queue ID it is held under (a message
 * that is requeued gets another, so the mark no longer matches it).
 */
static void
hold(SMFICTX *ctx, const struct mt_record *r)
{
	char mark[256], when[32], reason[96];

	mt_sched_iso(when, sizeof(when), r->send_at_ms);
	if (mt_sched_hold_format(mark, sizeof(mark), r->send_at_ms / 1000,
	    r->qid) == 0)
		smfi_insheader(ctx, 0, (char *)MT_SCHED_HOLD_HEADER, mark);
	snprintf(reason, sizeof(reason), "mailtrail: scheduled until %s", when);
	if (smfi_quarantine(ctx, reason) != MI_SUCCESS)
		mt_log(LOG_ERR, "%s: id=%s: cannot put the message on hold "
		    "(the MTA refused the quarantine action): it is sent now",
		    r->qid, r->id);
}

static sfsistat
cb_eom(SMFICTX *ctx)
{
	struct mt_conn *c = conn_of(ctx);
	struct mt_msg *m = c ? c->cctx_msg : NULL;
	struct mt_record r = { 0 };
	enum mt_store_result stored = MT_STORE_REDIS;
	const char *qid = smfi_getsymval(ctx, (char *)"i");
	char qidbuf[64];
	struct mt_hop *hops;
	size_t nhops = 0, first_new = 0;
	sfsistat res = SMFIS_CONTINUE;
	int tracked, site_user;
	int64_t now = mt_clock_ms(CLOCK_REALTIME);

	if (m == NULL)
		return SMFIS_CONTINUE;
	mt_text_header(qidbuf, sizeof(qidbuf), qid ? qid : "NOQUEUE",
	    qid ? strlen(qid) : 7);
	if (m->mctx_mt.over && !c->cctx_site)
		return refuse_flood(ctx, c, qidbuf);
	/* A site user: a SASL login, or a host of ours that is no relay. */
	site_user = !m->mctx_kept_index && (m->mctx_auth != NULL ||
	    (c->cctx_internal && !c->cctx_site));
	/* Mail from outside too (TrackInbound), with a fresh ID of ours. */
	tracked = m->mctx_kept_index || c->cctx_internal ||
	    m->mctx_auth != NULL || c->cctx_cfg->track_inbound;
	fill_record(&r, c, m, qidbuf, now);
	r.inbound = !m->mctx_kept_index && !c->cctx_internal &&
	    m->mctx_auth == NULL;
	hops = calloc(MT_PATH_HOPS_MAX, sizeof(*hops));
	if (hops) {
		nhops = build_path(c, m, now, hops, &first_new);
		set_origin(&r, hops, nhops);
		r.hop_path = mt_hop_path_json(hops, nhops);
	}
	/* Deferred-Delivery: only a site user's mail is ever held. */
	if (site_user && m->mctx_n_dd > 0 &&
	    schedule(ctx, c, m, qidbuf, now, &r.send_at_ms) < 0) {
		res = SMFIS_REJECT;
		goto out;
	}
	if (tracked && track(c, m, &r, &stored, &res) < 0 &&
	    res == SMFIS_TEMPFAIL)
		goto out;
	res = SMFIS_CONTINUE;
	edit_headers(ctx, c, m, tracked, r.id, hops, first_new, nhops);
	/* Without an ID of ours, nothing would ever release it: send now. */
	if (r.send_at_ms > 0 && r.id[0] != '\0')
		hold(ctx, &r);
	mt_logline(c->cctx_cfg, &r, tracked, stored);
	/* Read receipts: after the record, and never the message's fate. */
	request_receipt(ctx, c, m, site_user);
	mt_receipt_finish(&m->mctx_receipt, c->cctx_cfg,
	    mt_runtime_of(c->cctx_cfg)->events, qidbuf,
	    site_user ? m->mctx_sender : NULL);
	msg_free(m);
	c->cctx_msg = NULL;
out:
	free(r.hop_path);
	free(hops);
	return res;
}

static sfsistat
cb_abort(SMFICTX *ctx)
{
	struct mt_conn *c = conn_of(ctx);

	if (c) {
		msg_free(c->cctx_msg);
		c->cctx_msg = NULL;
	}
	return SMFIS_CONTINUE;
}

static sfsistat
cb_close(SMFICTX *ctx)
{
	struct mt_conn *c = conn_of(ctx);

	if (c == NULL)
		return SMFIS_CONTINUE;
	msg_free(c->cctx_msg);
	free(c->cctx_name);
	free(c->cctx_helo);
	free(c->cctx_by);
	free(c->cctx_daemon_addr);
	if (c->cctx_cfg)
		mt_config_unref(c->cctx_cfg);
	free(c);
	smfi_setpriv(ctx, NULL);
	return SMFIS_CONTINUE;
}

struct smfiDesc mt_milter_desc = {
	.xxfi_name = (char *)"mailtrail",
	.xxfi_version = SMFI_VERSION,
	.xxfi_flags = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE,
	.xxfi_connect = cb_connect,
	.xxfi_helo = cb_helo,
	.xxfi_envfrom = cb_envfrom,
	.xxfi_envrcpt = cb_envrcpt,
	.xxfi_header = cb_header,
	.xxfi_body = cb_body,
	.xxfi_eom = cb_eom,
	.xxfi_abort = cb_abort,
	.xxfi_close = cb_close,
	.xxfi_negotiate = cb_negotiate,
};
