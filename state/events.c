/*
 * Status events into Redis: one Lua script per event, sent in pipelines so
 * that the log follower keeps up with busy servers. The script is the
 * single place that knows the status order and the dedupe rule.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "events.h"
#include "redis.h"
#include "../common/config.h"


/*
 * KEYS: 1 P{ID}  2 P{ID}:rcpt  3 P{ID}:ev  4 Pevents  5 P{ID}:seen
 * ARGV: 1 id  2 ttl  3 stream maxlen  4 fingerprint or ''  5 rcpt or ''
 *       (every recipient still queued/deferred)  6 alternative rcpt or ''
 *       7 new status or ''  8 event name  9 event JSON  10 only_known
 * Status order: queued < deferred < sent = bounced < read; deferred may
 * repeat. An event that would move a status back is still recorded.
 */
static const char events_lua[] =
"if redis.call('EXISTS', KEYS[1]) == 0 then return 'norecord' end\n"
"local ttl, who, new = ARGV[2], ARGV[5], ARGV[7]\n"
"if who ~= '' and redis.call('HEXISTS', KEYS[2], who) == 0 then\n"
"  if ARGV[6] ~= '' and redis.call('HEXISTS', KEYS[2], ARGV[6]) == 1 then\n"
"    who = ARGV[6]\n"
"  elseif ARGV[10] == '1' then return 'notrcpt' end\n"
"end\n"
"if ARGV[4] ~= '' then\n"
"  if redis.call('SADD', KEYS[5], ARGV[4]) == 0 then return 'dup' end\n"
"  redis.call('EXPIRE', KEYS[5], ttl)\n"
"end\n"
"local rank = {queued = 0, deferred = 1, sent = 2, bounced = 2, read = 3}\n"
"local res = 'event'\n"
"if new ~= '' then\n"
"  if who == '' then\n"
"    local all = redis.call('HGETALL', KEYS[2])\n"
"    for i = 1, #all, 2 do\n"
"      if all[i + 1] == 'queued' or all[i + 1] == 'deferred' then\n"
"        redis.call('HSET', KEYS[2], all[i], new)\n"
"        res = 'ok'\n"
"      end\n"
"    end\n"
"  else\n"
"    local cur = redis.call('HGET', KEYS[2], who)\n"
"    local cr = rank[cur] or -1\n"
"    if rank[new] > cr or (new == 'deferred' and cur == 'deferred') then\n"
"      redis.call('HSET', KEYS[2], who, new)\n"
"      res = 'ok'\n"
"    end\n"
"  end\n"
"end\n"
"redis.call('RPUSH', KEYS[3], ARGV[9])\n"
"redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], '*',\n"
"  'id', ARGV[1], 'ev', ARGV[8], 'data', ARGV[9])\n"
"for k = 1, 3 do redis.call('EXPIRE', KEYS[k], ttl) end\n"
"return res\n";

struct mt_events {
	struct mt_redis_pool *pool;
	char *prefix;
	char ttl[24], maxlen[24];
	struct mt_redis_script script;
};

void
mt_events_fingerprint(const void *data, size_t len, char out[33])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (!EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) || n < 16) {
		memset(out, '0', 32);
		out[32] = '\0';
		return;
	}
	for (unsigned i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

void
mt_events_once_per_rcpt(const char *ev, const char *rcpt, char out[33])
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
	ev->pool = mt_redis_pool_new(cfg);
	ev->prefix = strdup(cfg->redis_prefix ? cfg->redis_prefix : "mt:");
	snprintf(ev->ttl, sizeof(ev->ttl), "%ld",
	    (cfg->retention_days > 0 ? cfg->retention_days : 30) * 86400);
	snprintf(ev->maxlen, sizeof(ev->maxlen), "%ld",
	    cfg->events_maxlen > 0 ? cfg->events_maxlen : 100000);
	if (ev->pool == NULL || ev->prefix == NULL ||
	    mt_redis_script_init(&ev->script, events_lua) != 0) {
		snprintf(err, errlen, "out of memory");
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
	mt_redis_pool_free(ev->pool);
	free(ev->prefix);
	free(ev);
}

const char *
mt_events_prefix(const struct mt_events *ev)
{
	return ev->prefix;
}

redisContext *
mt_events_get(struct mt_events *ev, char *err, size_t errlen)
{
	return mt_redis_pool_get(ev->pool, err, errlen);
}

void
mt_events_put(struct mt_events *ev, redisContext *c)
{
	mt_redis_pool_put(ev->pool, c);
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
io_error(redisContext *c, char *err, size_t errlen)
{
	snprintf(err, errlen, "Redis: %s", c->errstr[0] ? c->errstr
	    : "no reply");
}

int
mt_events_lookup(struct mt_events *ev, redisContext *c, const char *kind,
    const char *const *keys, size_t n, char (*ids)[MT_EVENTS_ID_MAX + 1],
    char *err, size_t errlen)
{
	redisReply *rep;
	size_t i;
	int rc = 0, by_msgid = strcmp(kind, "msgid") == 0;

	/* msgid keys are sorted sets: the first member is the original. */
	for (i = 0; i < n; i++)
		if (redisAppendCommand(c, by_msgid ? "ZRANGE %s%s:%s 0 0" :
		    "GET %s%s:%s", ev->prefix, kind, keys[i]) != REDIS_OK) {
			io_error(c, err, errlen);
			return -1;
		}
	for (i = 0; i < n; i++) {
		ids[i][0] = '\0';
		if (redisGetReply(c, (void **)&rep) != REDIS_OK) {
			io_error(c, err, errlen);
			return -1;
		}
		if (by_msgid && rep->type == REDIS_REPLY_ARRAY) {
			redisReply *one = rep->elements == 1 ? rep->element[0]
			    : NULL;

			if (one && one->type == REDIS_REPLY_STRING &&
			    id_shaped(one->str, one->len)) {
				memcpy(ids[i], one->str, one->len);
				ids[i][one->len] = '\0';
			}
		} else if (rep->type == REDIS_REPLY_STRING &&
		    id_shaped(rep->str, rep->len)) {
			memcpy(ids[i], rep->str, rep->len);
			ids[i][rep->len] = '\0';
		} else if (rep->type == REDIS_REPLY_ERROR && rc == 0) {
			snprintf(err, errlen, "Redis: %.200s", rep->str);
			rc = -1;
		}
		freeReplyObject(rep);
	}
	return rc;
}

#define EVENT_ARGC 18

/* The script call's arguments; argv[0..1] are mt_redis_eval*()'s. */
struct event_call {
	char k[5][MT_EVENTS_ID_MAX + 128];
	const char *argv[EVENT_ARGC];
	size_t len[EVENT_ARGC];
};

static void
event_call(struct mt_events *ev, const struct mt_event *e,
    struct event_call *call)
{
	char (*k)[MT_EVENTS_ID_MAX + 128] = call->k;
	const char **argv = call->argv;
	int i;

	snprintf(k[0], sizeof(k[0]), "%s{%s}", ev->prefix, e->id);
	snprintf(k[1], sizeof(k[1]), "%s{%s}:rcpt", ev->prefix, e->id);
	snprintf(k[2], sizeof(k[2]), "%s{%s}:ev", ev->prefix, e->id);
	snprintf(k[3], sizeof(k[3]), "%sevents", ev->prefix);
	snprintf(k[4], sizeof(k[4]), "%s{%s}:seen", ev->prefix, e->id);
	argv[2] = "5";
	for (i = 0; i < 5; i++)
		argv[3 + i] = k[i];
	argv[8] = e->id;
	argv[9] = ev->ttl;
	argv[10] = ev->maxlen;
	argv[11] = e->fingerprint ? e->fingerprint : "";
	argv[12] = e->rcpt ? e->rcpt : "";
	argv[13] = e->alt_rcpt ? e->alt_rcpt : "";
	argv[14] = e->status ? e->status : "";
	argv[15] = e->ev;
	argv[16] = e->json;
	argv[17] = e->only_known ? "1" : "0";
	for (i = 2; i < EVENT_ARGC; i++)
		call->len[i] = strlen(argv[i]);
}

static enum mt_event_result
result_of(const redisReply *rep, char *err, size_t errlen)
{
	static const struct { const char *s; enum mt_event_result r; } tab[] = {
		{ "ok", MT_EV_CHANGED }, { "event", MT_EV_RECORDED },
		{ "dup", MT_EV_DUPLICATE }, { "norecord", MT_EV_NO_RECORD },
		{ "notrcpt", MT_EV_NOT_RECIPIENT },
	};

	if (rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_STATUS)
		for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
			if (strcmp(rep->str, tab[i].s) == 0)
				return tab[i].r;
	if (rep->type == REDIS_REPLY_ERROR)
		snprintf(err, errlen, "Redis: %.200s", rep->str);
	else
		snprintf(err, errlen, "unexpected reply to the events script");
	return MT_EV_FAILED;
}

int
mt_events_apply(struct mt_events *ev, redisContext *c,
    const struct mt_event *e, size_t n, enum mt_event_result *res,
    char *err, size_t errlen)
{
	struct event_call call;
	redisReply *rep;
	unsigned char *redo = calloc(n ? n : 1, 1);
	size_t i, again = 0;
	int rc = 0;

	if (redo == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}

	for (i = 0; i < n; i++) {
		event_call(ev, &e[i], &call);
		if (mt_redis_eval_append(c, &ev->script, EVENT_ARGC, call.argv,
		    call.len) != 0) {
			io_error(c, err, errlen);
			free(redo);
			return -1;
		}
	}
	for (i = 0; i < n; i++) {
		if (redisGetReply(c, (void **)&rep) != REDIS_OK) {
			io_error(c, err, errlen);
			free(redo);
			return -1;
		}
		mt_redis_note_reply(c, rep);
		if (mt_redis_is_noscript(rep)) {
			res[i] = MT_EV_FAILED;	/* not run: sent again below */
			redo[i] = 1;
			again++;
		} else if ((res[i] = result_of(rep, err, errlen)) ==
		    MT_EV_FAILED)
			rc = -1;
		freeReplyObject(rep);
	}
	/* A new or flushed server: the first call loads the script. */
	for (i = 0; i < n && again > 0; i++) {
		if (!redo[i])
			continue;
		event_call(ev, &e[i], &call);
		rep = mt_redis_eval(c, &ev->script, EVENT_ARGC, call.argv,
		    call.len);
		if (rep == NULL) {
			io_error(c, err, errlen);
			free(redo);
			return -1;
		}
		mt_redis_note_reply(c, rep);
		if ((res[i] = result_of(rep, err, errlen)) == MT_EV_FAILED)
			rc = -1;
		freeReplyObject(rep);
	}
	free(redo);
	/* Replicated, or the caller tries again (events are idempotent). */
	if (rc == 0 && mt_redis_pool_replicas(ev->pool) &&
	    mt_redis_wait_replicas(c, mt_redis_pool_replicas(ev->pool),
	    mt_redis_pool_timeout_ms(ev->pool), err, errlen) != 0)
		rc = -1;
	return rc;
}
