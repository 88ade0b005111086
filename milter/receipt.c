/*
 * Read receipts through the milter. The MDN itself is delivered as usual;
 * here we only learn from it: which tracked message (a verified
 * X-Mailtrail-ID in the returned headers, else Original-Message-ID), which
 * recipient (Final-Recipient only, and it must be a recipient of that
 * message), whether the receipt is authenticated (a site user's
 * submission, or our verifier's Authentication-Results aligned with the
 * Final-Recipient domain), and what happened (displayed -> READ, deleted
 * -> DELETE, anything else, or anything unauthenticated -> MDN event).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include <jansson.h>

#include "../common/config.h"
#include "../common/log.h"
#include "../common/trackid.h"
#include "../mdn/mdn.h"
#include "../state/events.h"
#include "receipt.h"

void
mt_receipt_header(struct mt_receipt *r, const char *name, const char *value)
{
	if (strcasecmp(name, "Disposition-Notification-To") == 0)
		r->rcp_has_dnt = 1;
	else if (strcasecmp(name, "Authentication-Results") == 0 &&
	    r->rcp_n_authres++ == 0)
		r->rcp_authres = strndup(value, MT_AR_VALUE_MAX + 1);
	else if (strcasecmp(name, "Content-Type") == 0 && r->rcp_ct == NULL &&
	    mt_mdn_is_report(value))
		r->rcp_ct = strndup(value, 4096);
}

int
mt_receipt_wanted(const struct mt_receipt *r)
{
	return r->rcp_ct != NULL && !r->rcp_too_big;
}

void
mt_receipt_body(struct mt_receipt *r, const unsigned char *chunk, size_t len)
{
	size_t cap;
	char *nb;

	if (!mt_receipt_wanted(r) || len == 0)
		return;
	if (r->rcp_len + len > MT_MDN_MAX) {
		r->rcp_too_big = 1;
		free(r->rcp_body);
		r->rcp_body = NULL;
		r->rcp_len = r->rcp_cap = 0;
		return;
	}
	if (r->rcp_len + len > r->rcp_cap) {
		cap = r->rcp_cap ? r->rcp_cap : 16384;
		while (cap < r->rcp_len + len)
			cap *= 2;
		if ((nb = realloc(r->rcp_body, cap)) == NULL) {
			r->rcp_too_big = 1;	/* cannot keep it: ignore */
			return;
		}
		r->rcp_body = nb;
		r->rcp_cap = cap;
	}
	memcpy(r->rcp_body + r->rcp_len, chunk, len);
	r->rcp_len += len;
}

void
mt_receipt_free(struct mt_receipt *r)
{
	free(r->rcp_ct);
	free(r->rcp_body);
	free(r->rcp_authres);
	memset(r, 0, sizeof(*r));
}

/* The tracked message: 1 with id, 0 none, -1 forged ID (ignore). */
/*
 * How the receipt names its message: a verified X-Mailtrail-ID, else the
 * Message-ID it answers. 1 with *find and key set, 0 none, -1 forged.
 */
static int
find_message(const struct mt_config *cfg, const struct mt_mdn *m,
    enum mt_event_find *find, char key[MT_EVENTS_ID_MAX + 1],
    const char **keyp)
{
	char vid[MT_ID_SIZE];

	if (m->mt_id[0] != '\0') {
		if (!mt_id_verify(cfg->secret, cfg->secret_len, m->mt_id,
		    strlen(m->mt_id), vid))
			return -1;
		snprintf(key, MT_EVENTS_ID_MAX + 1, "%s", vid);
		*find = MT_FIND_ID;
		*keyp = key;
		return 1;
	}
	*find = MT_FIND_MSGID;
	*keyp = m->orig_msgid;
	return m->orig_msgid[0] != '\0';
}

/* May the receipt change a status: how it was authenticated, or why not. */
struct verdict {
	const char *v_how;	/* "submission", "dkim", "spf"; NULL: not */
	const char *v_why;	/* when v_how is NULL */
};

static int
trusted_authserv_id(const struct mt_config *cfg, const char *id)
{
	for (size_t i = 0; i < cfg->n_authserv_ids; i++)
		if (strcasecmp(cfg->authserv_ids[i], id) == 0)
			return 1;
	return 0;
}

/*
 * Only the first Authentication-Results is read. Measured with OpenDKIM
 * in front of mailtrail in smtpd_milters (tests/integration/
 * test_receipts.py): Postfix hands the next milter the headers as the
 * verifier left them, the verifier's header first (inserted at the top,
 * above every header the client sent; Postfix shows milters none of its
 * own Received: headers, so "above our Received:" cannot be tested), and
 * any copy the sender wrote below it. A forged copy with our authserv-id
 * is therefore never first while the verifier always adds its own
 * (OpenDKIM: AlwaysAddARHeader yes), or removes every such copy (RFC 8601
 * section 5). Nothing in the message can stand in for that: OpenDKIM by
 * default removes only copies that carry a DKIM result, so without
 * AlwaysAddARHeader a forged spf=pass copy on an unsigned message is
 * first, and it writes no result at all for some malformed signatures
 * (e.g. t=abc), so even "a DKIM-Signature was present" proves nothing.
 */
static void
authenticate(const struct mt_receipt *r, const struct mt_config *cfg,
    const char *site_sender, const struct mt_mdn *m, struct verdict *v)
{
	const char *domain = strrchr(m->final_rcpt, '@');
	struct mt_authres ar;

	v->v_how = NULL;
	v->v_why = "unauthenticated";
	/*
	 * A site user may answer for their own address only: the envelope
	 * sender, which Postfix ties to the login where the site says so
	 * (smtpd_sender_login_maps, local_login_sender_maps).
	 */
	if (site_sender != NULL) {
		if (strcasecmp(site_sender, m->final_rcpt) == 0)
			v->v_how = "submission";
		else
			v->v_why = "sender-is-not-final-recipient";
		return;
	}
	if (r->rcp_authres == NULL || domain == NULL ||
	    mt_authres_parse(r->rcp_authres, strlen(r->rcp_authres), &ar) < 0 ||
	    !trusted_authserv_id(cfg, ar.ar_servid) || ar.ar_npass == 0)
		return;
	if ((v->v_how = mt_authres_vouches(&ar, domain + 1)) == NULL)
		v->v_why = "not-aligned";
}

static char *
event_json(const struct mt_mdn *m, const char *name, const char *qid,
    const struct verdict *v)
{
	struct timeval tv;
	json_t *o = json_object();
	char *s;

	gettimeofday(&tv, NULL);
	json_object_set_new(o, "t", json_integer((json_int_t)tv.tv_sec * 1000 +
	    tv.tv_usec / 1000));
	json_object_set_new(o, "ev", json_string(name));
	json_object_set_new(o, "rcpt", json_string(m->final_rcpt));
	if (m->orig_rcpt[0])
		json_object_set_new(o, "orig_rcpt", json_string(m->orig_rcpt));
	json_object_set_new(o, "disposition", json_string(m->disposition));
	if (m->ua[0])
		json_object_set_new(o, "ua", json_string(m->ua));
	if (m->orig_msgid[0])
		json_object_set_new(o, "msgid", json_string(m->orig_msgid));
	json_object_set_new(o, "via", json_string("mdn"));
	if (v->v_how != NULL)
		json_object_set_new(o, "auth", json_string(v->v_how));
	else {
		json_object_set_new(o, "verified", json_string("no"));
		json_object_set_new(o, "why", json_string(v->v_why));
	}
	json_object_set_new(o, "qid", json_string(qid));
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return s;
}

static const char *
result_text(enum mt_event_result r)
{
	switch (r) {
	case MT_EV_CHANGED: return "recorded, status changed";
	case MT_EV_RECORDED: return "recorded";
	case MT_EV_DUPLICATE: return "already recorded";
	case MT_EV_NO_RECORD: return "ignored: the record has expired";
	case MT_EV_NOT_RECIPIENT: return "ignored: not a recipient of it";
	default: return "failed";
	}
}

/*
 * Matches a parsed MDN and applies it; logs the outcome. An
 * unauthenticated one is only an MDN event: no status, any claimed
 * recipient, and no fingerprint, so it never uses up the recipient's one
 * READ before the genuine receipt arrives.
 */
static void
apply_mdn(const struct mt_config *cfg, struct mt_events *ev,
    const struct mt_mdn *m, const char *qid, const struct verdict *v)
{
	char id[1][MT_EVENTS_ID_MAX + 1] = { "" }, err[256] = "", tag[64];
	char how[64], vid[MT_EVENTS_ID_MAX + 1], fp[MT_EVENTS_FP_SIZE];
	const int verified = v->v_how != NULL;
	const char *name = !verified ? "MDN"
	    : strcmp(m->type, "displayed") == 0 ? "READ"
	    : strcmp(m->type, "deleted") == 0 ? "DELETE" : "MDN";
	struct mt_event e;
	enum mt_event_result res = MT_EV_FAILED;
	enum mt_event_find find;
	const char *key;
	char *json;
	int found;

	found = find_message(cfg, m, &find, vid, &key);
	if (found <= 0) {
		mt_log(LOG_NOTICE, "%s: read receipt from <%s> %s; ignored",
		    qid, m->final_rcpt, found < 0 ?
		    "carries a forged X-Mailtrail-ID" :
		    "is for a message mailtrail does not track");
		return;
	}
	snprintf(tag, sizeof(tag), "%s:%s", name, m->type);
	mt_events_once_per_rcpt(strcmp(name, "MDN") ? name : tag,
	    m->final_rcpt, fp);
	json = event_json(m, name, qid, v);
	/* Original-Recipient never picks the recipient: a sender names it. */
	e = (struct mt_event){ .find = find, .key = key, .ev = name,
	    .rcpt = m->final_rcpt,
	    .status = strcmp(name, "READ") == 0 ? "read" : NULL,
	    .only_known = verified, .fingerprint = verified ? fp : NULL,
	    .json = json ? json : "{}" };
	if (mt_events_record(ev, &e, 1, &res, id, err, sizeof(err)) != 0) {
		free(json);
		mt_log(LOG_WARNING, "%s: read receipt not recorded: Redis: %s",
		    qid, err);
		return;
	}
	free(json);
	if (id[0][0] == '\0') {
		mt_log(LOG_NOTICE, "%s: read receipt from <%s> is for a "
		    "message mailtrail does not track; ignored", qid,
		    m->final_rcpt);
		return;
	}
	if (verified)
		snprintf(how, sizeof(how), "auth=%s", v->v_how);
	else
		snprintf(how, sizeof(how), "verified=no (%s)", v->v_why);
	mt_log(res == MT_EV_FAILED || res == MT_EV_NOT_RECIPIENT ? LOG_WARNING
	    : LOG_INFO, "%s: read receipt: id=%s, rcpt=<%s>, disposition=%s, "
	    "%s, %s%s%s", qid, id[0], m->final_rcpt, m->type, how,
	    result_text(res), res == MT_EV_FAILED ? ": " : "",
	    res == MT_EV_FAILED ? err : "");
}

void
mt_receipt_finish(struct mt_receipt *r, const struct mt_config *cfg,
    struct mt_events *ev, const char *qid, const char *site_sender)
{
	struct verdict v;
	struct mt_mdn m;
	char err[256], *msg;
	size_t hlen;
	int rc;

	if (r->rcp_ct == NULL || ev == NULL)
		return;
	if (r->rcp_too_big) {
		mt_log(LOG_NOTICE, "%s: read receipt larger than %d bytes; "
		    "not read", qid, MT_MDN_MAX);
		return;
	}
	/* GMime gets the one header that matters, then the body as sent. */
	hlen = strlen(r->rcp_ct) + 40;
	if ((msg = malloc(hlen + r->rcp_len)) == NULL)
		return;
	hlen = (size_t)snprintf(msg, hlen, "MIME-Version: 1.0\r\n"
	    "Content-Type: %s\r\n\r\n", r->rcp_ct);
	if (r->rcp_len)
		memcpy(msg + hlen, r->rcp_body, r->rcp_len);
	rc = mt_mdn_parse(msg, hlen + r->rcp_len, &m, err, sizeof(err));
	free(msg);
	if (rc < 0)
		mt_log(LOG_NOTICE, "%s: malformed read receipt (%s); ignored",
		    qid, err);
	else if (rc > 0) {
		authenticate(r, cfg, site_sender, &m, &v);
		apply_mdn(cfg, ev, &m, qid, &v);
	}
}

/* RequestReadReceipt handled in callbacks.c: it needs the SMFICTX. */
