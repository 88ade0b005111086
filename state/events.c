/*
 * Status events into Redis: the IDs looked up, one script call per event
 * (schema.c's, the one place that knows the status order and the dedupe
 * rule), then the stream; each step one pipelined batch, so that the log
 * follower keeps up with busy servers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "db.h"
#include "schema.h"
#include "../common/config.h"



struct mt_events {
	struct mt_db *db;
	struct mt_schema schema;
	char ttl[24];
};

void
mt_events_fingerprint(const void *data, size_t len,
    char out[MT_EVENTS_FP_SIZE])
{
	mt_schema_fingerprint(data, len, out);
}

void
mt_events_once_per_rcpt(const char *ev, const char *rcpt,
    char out[MT_EVENTS_FP_SIZE])
{
	char buf[1024];
	int n = snprintf(buf, sizeof(buf), "%s %s", ev, rcpt);

	mt_events_fingerprint(buf, n < 0 ? 0 : (size_t)n >= sizeof(buf) ?
	    sizeof(buf) - 1 : (size_t)n, out);
}

struct mt_events *
mt_events_new(const struct mt_config *cfg, char *err, size_t errlen)
{
	struct mt_events *ev = calloc(1, sizeof(*ev));

	if (ev == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (mt_schema_init(&ev->schema, cfg) != 0) {
		snprintf(err, errlen, "RedisPrefix is too long");
		free(ev);
		return NULL;
	}
	snprintf(ev->ttl, sizeof(ev->ttl), "%ld", ev->schema.ttl);
	if ((ev->db = mt_db_new(cfg, err, errlen)) == NULL ||
	    mt_schema_script(MT_SCRIPT_EVENT) == NULL) {
		if (ev->db != NULL)
			snprintf(err, errlen, "OpenSSL cannot hash a script");
		mt_events_free(ev);
		return NULL;
	}
	return ev;
}

void
mt_events_free(struct mt_events *ev)
{
	if (ev == NULL)
		return;
	mt_db_free(ev->db);
	free(ev);
}

static int
id_shaped(const char *s, size_t len)
{
	if (len == 0 || len > MT_EVENTS_ID_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
		    ch == '-'))
			return 0;
	}
	return 1;
}

static void
take_id(const redisReply *r, char id[MT_EVENTS_ID_MAX + 1])
{
	id[0] = '\0';
	/* A Message-ID's sorted set: the first member is the original. */
	if (r != NULL && r->type == REDIS_REPLY_ARRAY)
		r = r->elements >= 1 ? r->element[0] : NULL;
	if (r != NULL && r->type == REDIS_REPLY_STRING &&
	    id_shaped(r->str, r->len)) {
		memcpy(id, r->str, r->len);
		id[r->len] = '\0';
	}
}

/* Step 1: the IDs of messages named by queue ID or Message-ID. */
static int
find_ids(struct mt_events *ev, struct mt_db_link *l, const struct mt_event
    *e, size_t n, char (*ids)[MT_EVENTS_ID_MAX + 1], char *err,
    size_t errlen)
{
	struct mt_db_batch b;
	size_t *at = calloc(n ? n : 1, sizeof(*at)), i;
	int rc = 0;

	if (at == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	mt_db_batch_init(&b);
	for (i = 0; i < n; i++) {
		const char *k = e[i].key ? e[i].key : "";
		char *key;

		ids[i][0] = '\0';
		at[i] = (size_t)-1;
		if (e[i].find == MT_FIND_ID) {
			if (id_shaped(k, strlen(k)))
				snprintf(ids[i], MT_EVENTS_ID_MAX + 1, "%s", k);
			continue;
		}
		if (k[0] == '\0')
			continue;
		key = mt_key(&ev->schema, e[i].find == MT_FIND_QID ? MT_KEY_QID
		    : MT_KEY_MSGID, k, strlen(k));
		if (key == NULL) {
			b.oom = 1;
			break;
		}
		at[i] = e[i].find == MT_FIND_QID ?
		    mt_db_add(&b, key, "GET %s", key) :
		    mt_db_add(&b, key, "ZRANGE %s 0 0", key);
		free(key);
	}
	if (b.n > 0 || b.oom)
		rc = mt_db_run(l, &b, 0, err, errlen);
	for (i = 0; rc == 0 && i < n; i++) {
		const redisReply *r = at[i] == (size_t)-1 ? NULL
		    : mt_db_reply(&b, at[i]);

		if (r != NULL && r->type == REDIS_REPLY_ERROR) {
			snprintf(err, errlen, "Redis: %.200s", r->str);
			rc = -1;
		} else if (r != NULL)
			take_id(r, ids[i]);
	}
	mt_db_batch_free(&b);
	free(at);
	return rc;
}

/* The event object with its fingerprint as the last member. */
static char *
with_fp(const char *json, const char *fp)
{
	size_t len = strlen(json);
	char *out;

	if (fp == NULL || len < 2 || json[0] != '{' || json[len - 1] != '}')
		return strdup(json);
	if (asprintf(&out, "%.*s%s\"fp\":\"%s\"}", (int)(len - 1), json,
	    len == 2 ? "" : ",", fp) < 0)
		return NULL;
	return out;
}

static enum mt_event_result
result_of(const redisReply *rep, char *err, size_t errlen)
{
	static const struct { const char *s; enum mt_event_result r; } tab[] = {
		{ "ok", MT_EV_CHANGED }, { "event", MT_EV_RECORDED },
		{ "dup", MT_EV_DUPLICATE }, { "norecord", MT_EV_NO_RECORD },
		{ "notrcpt", MT_EV_NOT_RECIPIENT },
	};
	const char *s = mt_db_str(rep);

	for (size_t i = 0; s != NULL && i < sizeof(tab) / sizeof(tab[0]); i++)
		if (strcmp(s, tab[i].s) == 0)
			return tab[i].r;
	if (rep != NULL && rep->type == REDIS_REPLY_ERROR)
		snprintf(err, errlen, "Redis: %.200s", rep->str);
	else
		snprintf(err, errlen, "unexpected reply to the events script");
	return MT_EV_FAILED;
}

/* Steps 2 and 3: the script per event, then the stream for new ones. */
static int
apply(struct mt_events *ev, struct mt_db_link *l, const struct mt_event *e,
    size_t n, char (*ids)[MT_EVENTS_ID_MAX + 1], enum mt_event_result *res,
    char *err, size_t errlen)
{
	struct mt_db_batch b, sb;
	char **json = calloc(n ? n : 1, sizeof(*json)), *stream;
	size_t *at = calloc(n ? n : 1, sizeof(*at)), i;
	int rc = 0;

	mt_db_batch_init(&b);
	mt_db_batch_init(&sb);
	stream = mt_key(&ev->schema, MT_KEY_STREAM, NULL, 0);
	if (json == NULL || at == NULL || stream == NULL)
		b.oom = 1;
	for (i = 0; i < n && !b.oom; i++) {
		char *keys[2];
		const char *args[7];

		res[i] = MT_EV_NO_RECORD;
		at[i] = (size_t)-1;
		if (ids[i][0] == '\0')
			continue;
		json[i] = with_fp(e[i].json ? e[i].json : "{}",
		    e[i].fingerprint);
		keys[0] = mt_key(&ev->schema, MT_KEY_RECORD, ids[i],
		    strlen(ids[i]));
		keys[1] = mt_key(&ev->schema, MT_KEY_EVENTS, ids[i],
		    strlen(ids[i]));
		args[0] = ev->ttl;
		args[1] = e[i].fingerprint ? e[i].fingerprint : "";
		args[2] = e[i].rcpt ? e[i].rcpt : "";
		args[3] = e[i].alt_rcpt ? e[i].alt_rcpt : "";
		args[4] = e[i].status ? e[i].status : "";
		args[5] = json[i] ? json[i] : "";
		args[6] = e[i].only_known ? "1" : "0";
		if (json[i] == NULL || keys[0] == NULL || keys[1] == NULL)
			b.oom = 1;
		else
			at[i] = mt_db_add_script(&b, mt_schema_script(
			    MT_SCRIPT_EVENT), 2, (const char *const *)keys, 7,
			    args, NULL);
		free(keys[0]);
		free(keys[1]);
	}
	if (b.n > 0 || b.oom)
		rc = mt_db_run(l, &b, MT_DB_WRITE, err, errlen);
	for (i = 0; rc == 0 && i < n; i++) {
		if (at[i] == (size_t)-1)
			continue;
		if ((res[i] = result_of(mt_db_reply(&b, at[i]), err,
		    errlen)) == MT_EV_FAILED)
			rc = -1;
		else if (res[i] == MT_EV_CHANGED || res[i] == MT_EV_RECORDED)
			mt_db_add(&sb, stream, "XADD %s MAXLEN ~ %ld * id %s "
			    "ev %s data %s", stream, ev->schema.maxlen, ids[i],
			    e[i].ev, json[i]);
	}
	if (sb.n > 0)
		mt_db_add(&sb, stream, "EXPIRE %s %ld", stream, ev->schema.ttl);
	/* The events are recorded either way; consumers may miss these. */
	if (sb.n > 0) {
		char why[256];

		(void)mt_db_run(l, &sb, 0, why, sizeof(why));
	}
	mt_db_batch_free(&sb);
	mt_db_batch_free(&b);
	for (i = 0; json != NULL && i < n; i++)
		free(json[i]);
	free(json);
	free(at);
	free(stream);
	return rc;
}

int
mt_events_record(struct mt_events *ev, const struct mt_event *e, size_t n,
    enum mt_event_result *res, char (*ids)[MT_EVENTS_ID_MAX + 1], char *err,
    size_t errlen)
{
	char (*own)[MT_EVENTS_ID_MAX + 1] = ids;
	struct mt_db_link *l;
	int rc;

	for (size_t i = 0; i < n; i++)
		res[i] = MT_EV_FAILED;
	if (n == 0)
		return 0;
	if (own == NULL && (own = calloc(n, sizeof(*own))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if ((l = mt_db_get(ev->db, err, errlen)) == NULL)
		rc = -1;
	else {
		rc = find_ids(ev, l, e, n, own, err, errlen);
		if (rc == 0)
			rc = apply(ev, l, e, n, own, res, err, errlen);
		mt_db_put(ev->db, l);
	}
	if (rc != 0)
		for (size_t i = 0; i < n; i++)
			res[i] = MT_EV_FAILED;
	if (own != ids)
		free(own);
	return rc;
}
