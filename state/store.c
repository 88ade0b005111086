/*
 * The store: writes each trace record to Redis in one atomic, idempotent
 * Lua script call, or, when Redis cannot take it, to the durable spool that
 * a background thread replays in order once Redis answers again.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>


#include "../common/clock.h"
#include "store.h"
#include "redis.h"
#include "spool.h"
#include "../common/config.h"

#define BREAKER_MS 1000		/* after a failure, spool without trying */
#define REPLAY_EVERY_MS 500
#define MAX_FIELDS 18		/* hash fields of mt:{ID} */

/*
 * KEYS: 1 P{ID}  2 P{ID}:rcpt  3 P{ID}:ev  4 Pqid:QID  5 Pevents
 *       6 Pfrom:SENDER  7 Pmsgid:MSGID (= KEYS[1] when none)  8 P{ID}:path
 *       (Pmsgid is a sorted set: a later message reusing a Message-ID
 *       joins it and never displaces the original, the lowest score)
 *       9.. Pto:RCPT
 * ARGV: 1 id  2 ttl  3 keep(1: HSETNX)  4 score(received ms)  5 cutoff ms
 *       6 stream maxlen  7 RECEIVE json  8 SPOOL json or ""  9 has msgid
 *       10 number of hash fields, then field/value pairs, then recipients
 *       in the order of KEYS[9..]. ARGV 10 is the hop path JSON (or ""),
 *       so ARGV 11 holds the field count.
 * The path has a key of its own: it is longer than Redis's
 * hash-max-listpack-value (64), and one long value would turn the whole
 * hash into a hashtable several times its size.
 * A later MTA of the site keeps the origin's fields (HSETNX) but writes
 * its hop path, which extends the earlier one.
 * The qid -> ID guard makes a second run a no-op: a write that timed out
 * on our side but happened, or a replay after a crash before unlink.
 */
static const char store_lua[] =
"local id = ARGV[1]\n"
"if redis.call('GET', KEYS[4]) == id then return 'dup' end\n"
"local ttl, score, cutoff = ARGV[2], ARGV[4], '(' .. ARGV[5]\n"
"local hset = (ARGV[3] == '1') and 'HSETNX' or 'HSET'\n"
"local a = 12\n"
"for i = 1, tonumber(ARGV[11]) do\n"
"  local f = ARGV[a]\n"
"  local cmd = (f == 'hops') and 'HSET' or hset\n"
"  redis.call(cmd, KEYS[1], f, ARGV[a + 1])\n"
"  a = a + 2\n"
"end\n"
"local seen = {}\n"
"for k = 9, #KEYS do\n"
"  local rc = ARGV[a]\n"
"  a = a + 1\n"
"  if not seen[rc] then\n"
"    seen[rc] = true\n"
"    redis.call('HSETNX', KEYS[2], rc, 'queued')\n"
"    redis.call('ZADD', KEYS[k], score, id)\n"
"    redis.call('ZREMRANGEBYSCORE', KEYS[k], '-inf', cutoff)\n"
"    redis.call('EXPIRE', KEYS[k], ttl)\n"
"  end\n"
"end\n"
"redis.call('ZADD', KEYS[6], score, id)\n"
"redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', cutoff)\n"
"redis.call('RPUSH', KEYS[3], ARGV[7])\n"
"redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[6], '*',\n"
"  'id', id, 'ev', 'RECEIVE', 'data', ARGV[7])\n"
"if ARGV[8] ~= '' then\n"
"  redis.call('RPUSH', KEYS[3], ARGV[8])\n"
"  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[6], '*',\n"
"    'id', id, 'ev', 'SPOOL', 'data', ARGV[8])\n"
"end\n"
"redis.call('SET', KEYS[4], id, 'EX', ttl)\n"
"if ARGV[9] == '1' then\n"
"  redis.call('ZADD', KEYS[7], 'NX', score, id)\n"
"  redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', cutoff)\n"
"  redis.call('EXPIRE', KEYS[7], ttl)\n"
"end\n"
"if ARGV[10] ~= '' then redis.call('SET', KEYS[8], ARGV[10], 'EX', ttl) end\n"
"for k = 1, 6 do redis.call('EXPIRE', KEYS[k], ttl) end\n"
"return 'ok'\n";

struct mt_store {
	/* fixed after mt_store_new */
	struct mt_redis_pool *pool;
	char *prefix;
	long ttl;		/* seconds */
	long maxlen;
	struct mt_redis_script script;
	mt_store_report_fn *report;
	struct mt_spool spool;

	pthread_mutex_t mu;	/* guards everything below */
	pthread_cond_t cv;	/* wakes the replayer: kick or stop */
	int64_t down_until;	/* monotonic ms: breaker open until then */
	int redis_down;		/* outage reported, recovery not yet */
	int spool_pending;	/* spool may hold records: keep their order */
	unsigned spool_gen;	/* bumped by every spool write */
	int kick, stop, started;
	pthread_t thread;
};

/* What a script call came to. */
enum write_result { W_OK, W_DUP, W_IO = -1, W_REPLY = -2 };

static void
say(struct mt_store *st, int prio, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
say(struct mt_store *st, int prio, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (st->report == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	st->report(prio, msg);
}

/* ---- connection pool ------------------------------------------------ */

/* ---- the script call ------------------------------------------------ */

struct argv {
	const char **v;
	size_t *len;
	size_t n;
	char **owned;		/* strings built here, freed with the argv */
	size_t nowned;
	int oom;
	char nfbuf[24];
};

static void
arg_add(struct argv *a, const char *s)
{
	a->v[a->n] = s;
	a->len[a->n++] = strlen(s);
}

static void
arg_addf(struct argv *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
arg_addf(struct argv *a, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0) {
		s = NULL;
		a->oom = 1;
	}
	va_end(ap);
	if (s != NULL)
		a->owned[a->nowned++] = s;
	arg_add(a, s ? s : "");
}

static void
arg_take(struct argv *a, char *s)
{
	if (s == NULL)
		a->oom = 1;
	else
		a->owned[a->nowned++] = s;
	arg_add(a, s ? s : "");
}

static void
argv_free(struct argv *a)
{
	while (a->nowned > 0)
		free(a->owned[--a->nowned]);
	free(a->v);
	free(a->len);
	free(a->owned);
}

static void
add_field(struct argv *a, size_t *nf, const char *name, const char *val)
{
	if (val == NULL)
		return;
	arg_add(a, name);
	arg_add(a, val);
	(*nf)++;
}

/* The field/value pairs of P{ID}, absent values left out. */
static size_t
add_fields(struct argv *a, const struct mt_record *r)
{
	size_t nf = 0;

	add_field(a, &nf, "id", r->id);
	add_field(a, &nf, "qid", r->qid);
	add_field(a, &nf, "msgid", r->msgid);
	add_field(a, &nf, "sender", r->sender);
	arg_add(a, "nrcpt");
	arg_addf(a, "%zu", r->nrcpt);
	nf++;
	add_field(a, &nf, "client_ip", r->client_ip);
	add_field(a, &nf, "client_name", r->client_name);
	add_field(a, &nf, "helo", r->helo);
	add_field(a, &nf, "auth", r->auth);
	if (r->have_geo) {
		arg_add(a, "lat");
		arg_addf(a, "%.6f", r->lat);
		arg_add(a, "lon");
		arg_addf(a, "%.6f", r->lon);
		nf += 2;
	}
	add_field(a, &nf, "cc", r->cc);
	add_field(a, &nf, "city", r->city);
	arg_add(a, "hops");
	arg_addf(a, "%d", r->hops);
	arg_add(a, "size");
	arg_addf(a, "%llu", (unsigned long long)r->size);
	arg_add(a, "received");
	arg_addf(a, "%lld", (long long)r->received_ms);
	nf += 3;
	add_field(a, &nf, "by", r->by);
	return nf;
}

/* Builds [EVALSHA sha] numkeys KEYS... ARGV...; -1 when out of memory. */
static int
build_call(struct mt_store *st, const struct mt_record *r, int replayed,
    struct argv *a)
{
	size_t cap = 3 + 8 + 11 + 2 * MAX_FIELDS + 2 * r->nrcpt, i, nf_at;
	const char *P = st->prefix;
	int64_t now = mt_clock_ms(CLOCK_REALTIME);

	memset(a, 0, sizeof(*a));
	a->v = calloc(cap, sizeof(*a->v));
	a->len = calloc(cap, sizeof(*a->len));
	a->owned = calloc(cap, sizeof(*a->owned));
	if (a->v == NULL || a->len == NULL || a->owned == NULL)
		return -1;
	arg_add(a, "");		/* EVALSHA sha: mt_redis_eval() */
	arg_add(a, "");
	arg_addf(a, "%zu", 8 + r->nrcpt);
	arg_addf(a, "%s{%s}", P, r->id);
	arg_addf(a, "%s{%s}:rcpt", P, r->id);
	arg_addf(a, "%s{%s}:ev", P, r->id);
	arg_addf(a, "%sqid:%s", P, r->qid);
	arg_addf(a, "%sevents", P);
	arg_addf(a, "%sfrom:%s", P, r->sender);
	if (r->msgid != NULL)
		arg_addf(a, "%smsgid:%s", P, r->msgid);
	else
		arg_add(a, a->v[3]);
	arg_addf(a, "%s{%s}:path", P, r->id);
	for (i = 0; i < r->nrcpt; i++)
		arg_addf(a, "%sto:%s", P, r->rcpt[i]);
	arg_add(a, r->id);
	arg_addf(a, "%ld", st->ttl);
	arg_add(a, r->id_kept ? "1" : "0");
	arg_addf(a, "%lld", (long long)r->received_ms);
	arg_addf(a, "%lld", (long long)(now - (int64_t)st->ttl * 1000));
	arg_addf(a, "%ld", st->maxlen);
	arg_take(a, mt_record_event_json(r, "RECEIVE", r->received_ms));
	if (replayed)
		arg_take(a, mt_record_spool_event_json(r, now));
	else
		arg_add(a, "");
	arg_add(a, r->msgid != NULL ? "1" : "0");
	/* One hop is the record's own client: no need to store it twice. */
	arg_add(a, r->hop_path && r->hops > 1 ? r->hop_path : "");
	nf_at = a->n;
	arg_add(a, "");		/* field count, patched once known */
	snprintf(a->nfbuf, sizeof(a->nfbuf), "%zu", add_fields(a, r));
	a->v[nf_at] = a->nfbuf;
	a->len[nf_at] = strlen(a->nfbuf);
	for (i = 0; i < r->nrcpt; i++)
		arg_add(a, r->rcpt[i]);
	return a->oom ? -1 : 0;
}

/* hiredis reports a command timeout as EAGAIN's text; say what it was. */
static void
io_reason(const struct mt_store *st, const redisContext *c, char *why,
    size_t whylen)
{
	if (c->err == REDIS_ERR_IO && strstr(c->errstr, "temporarily") != NULL)
		snprintf(why, whylen, "timed out after %d ms",
		    mt_redis_pool_timeout_ms(st->pool));
	else
		snprintf(why, whylen, "%s", c->errstr[0] ? c->errstr : "no reply");
}

static enum write_result
run_call(struct mt_store *st, redisContext *c, struct argv *a, char *why,
    size_t whylen)
{
	redisReply *rep;
	enum write_result res = W_REPLY;

	rep = mt_redis_eval(c, &st->script, (int)a->n, a->v, a->len);
	if (rep == NULL) {
		io_reason(st, c, why, whylen);
		return W_IO;
	}
	if (rep->type == REDIS_REPLY_ERROR) {
		snprintf(why, whylen, "%.300s", rep->str);
		if (mt_redis_note_reply(c, rep))
			res = W_IO;	/* a failover: spool, try the new master */
	} else if ((rep->type == REDIS_REPLY_STRING ||
	    rep->type == REDIS_REPLY_STATUS) && strcmp(rep->str, "ok") == 0)
		res = W_OK;
	else if ((rep->type == REDIS_REPLY_STRING ||
	    rep->type == REDIS_REPLY_STATUS) && strcmp(rep->str, "dup") == 0)
		res = W_DUP;
	else
		snprintf(why, whylen, "unexpected reply to the store script");
	freeReplyObject(rep);
	return res;
}

/* One record, one round trip. replayed adds the SPOOL event. */
static enum write_result
store_write(struct mt_store *st, const struct mt_record *r, int replayed,
    char *why, size_t whylen)
{
	struct argv a;
	redisContext *c;
	enum write_result res;

	if (build_call(st, r, replayed, &a) != 0) {
		argv_free(&a);
		snprintf(why, whylen, "out of memory");
		return W_REPLY;
	}
	if ((c = mt_redis_pool_get(st->pool, why, whylen)) == NULL) {
		argv_free(&a);
		return W_IO;
	}
	res = run_call(st, c, &a, why, whylen);
	/* Replicated, or the spool keeps it (a failover loses nothing). */
	if ((res == W_OK || res == W_DUP) && mt_redis_pool_replicas(st->pool) &&
	    mt_redis_wait_replicas(c, mt_redis_pool_replicas(st->pool),
	    mt_redis_pool_timeout_ms(st->pool), why, whylen) != 0)
		res = c->err ? W_IO : W_REPLY;
	mt_redis_pool_put(st->pool, c);
	argv_free(&a);
	return res;
}

/* ---- circuit breaker ------------------------------------------------- */

/*
 * Opens the breaker. io: Redis did not answer; else it answered with an
 * error that is not about this record (OOM, READONLY, LOADING...).
 */
static void
breaker_trip(struct mt_store *st, const char *why, int io)
{
	int was;

	pthread_mutex_lock(&st->mu);
	st->down_until = mt_clock_ms(CLOCK_MONOTONIC) + BREAKER_MS;
	was = st->redis_down;
	st->redis_down = 1;
	pthread_mutex_unlock(&st->mu);
	if (!was)	/* one warning per outage, not one per message */
		say(st, LOG_WARNING, "%s %s (%s): spooling",
		    mt_redis_pool_server(st->pool), io ? "unreachable" : "refused a write",
		    why);
}

/* WRONGTYPE: a key holds another type; retrying this record cannot help. */
static int
record_specific(const char *why)
{
	return strncmp(why, "WRONGTYPE", 9) == 0;
}

static void
breaker_reset(struct mt_store *st)
{
	int was;

	pthread_mutex_lock(&st->mu);
	was = st->redis_down;
	st->redis_down = 0;
	st->down_until = 0;
	pthread_mutex_unlock(&st->mu);
	if (was)
		say(st, LOG_NOTICE, "%s reachable again",
		    mt_redis_pool_server(st->pool));
}

/* ---- writing --------------------------------------------------------- */

static enum mt_store_result
spool_record(struct mt_store *st, const struct mt_record *r, const char *why,
    char *err, size_t errlen)
{
	char serr[512];

	if (mt_spool_write(&st->spool, r, serr, sizeof(serr)) != 0) {
		snprintf(err, errlen, "Redis: %s; %s", why, serr);
		return MT_STORE_FAILED;
	}
	pthread_mutex_lock(&st->mu);
	st->spool_pending = 1;
	st->spool_gen++;
	st->kick = 1;
	pthread_cond_signal(&st->cv);
	pthread_mutex_unlock(&st->mu);
	snprintf(err, errlen, "%s", why);
	return MT_STORE_SPOOL;
}

enum mt_store_result
mt_store_put(struct mt_store *st, const struct mt_record *r, char *err,
    size_t errlen)
{
	char why[512];
	int pending, tripped;
	enum write_result res;

	if (mt_record_check(r, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "record not stored: %s", why);
		return MT_STORE_FAILED;
	}
	pthread_mutex_lock(&st->mu);
	pending = st->spool_pending;
	tripped = mt_clock_ms(CLOCK_MONOTONIC) < st->down_until;
	pthread_mutex_unlock(&st->mu);
	if (pending)
		return spool_record(st, r, "older records are still spooled",
		    err, errlen);
	if (tripped)
		return spool_record(st, r, "Redis failed less than a second ago",
		    err, errlen);
	res = store_write(st, r, 0, why, sizeof(why));
	if (res == W_OK || res == W_DUP) {
		breaker_reset(st);
		return MT_STORE_REDIS;
	}
	if (res == W_IO || !record_specific(why))
		breaker_trip(st, why, res == W_IO);
	return spool_record(st, r, why, err, errlen);
}

/* ---- replaying the spool --------------------------------------------- */

static int
stopping(struct mt_store *st)
{
	return __atomic_load_n(&st->stop, __ATOMIC_RELAXED);
}

static void
quarantine(struct mt_store *st, const char *name, const char *why)
{
	char qerr[256];

	if (mt_spool_quarantine(&st->spool, name, qerr, sizeof(qerr)) == 0)
		say(st, LOG_WARNING, "spool file %s/%s: %s: moved to %s/corrupt/",
		    st->spool.dir, name, why, st->spool.dir);
	else
		say(st, LOG_ERR, "spool file %s/%s: %s; cannot move it to "
		    "corrupt/: %s", st->spool.dir, name, why, qerr);
}

/*
 * Handles one spool file. 2: in Redis (stored or duplicate) and removed;
 * 1: moved aside; 0: skipped for now; -1: Redis failed, stop the round.
 */
static int
replay_one(struct mt_store *st, const char *name)
{
	struct mt_record r;
	char why[512];
	int rc;
	enum write_result res;

	rc = mt_spool_read(&st->spool, name, &r, why, sizeof(why));
	if (rc == -1) {
		quarantine(st, name, why);
		return 1;
	}
	if (rc == -3)
		return 1;	/* another replayer stored it */
	if (rc != 0)
		return 0;
	res = store_write(st, &r, 1, why, sizeof(why));
	mt_record_free(&r);
	if (res == W_OK || res == W_DUP) {
		if (mt_spool_remove(&st->spool, name) != 0) {
			say(st, LOG_ERR, "cannot remove replayed spool file "
			    "%s/%s: %s", st->spool.dir, name, strerror(errno));
			return 0;
		}
		return 2;
	}
	if (res == W_REPLY && record_specific(why)) {
		quarantine(st, name, why);
		return 1;
	}
	breaker_trip(st, why, res == W_IO);
	return -1;
}

static void
replay_round(struct mt_store *st)
{
	char **names;
	size_t n, i, done = 0, stored = 0;
	unsigned gen;
	int rc = 0;

	if (!mt_spool_trylock(&st->spool))
		return;		/* another store or daemon is replaying */
	pthread_mutex_lock(&st->mu);
	gen = st->spool_gen;
	pthread_mutex_unlock(&st->mu);
	if (mt_spool_list(&st->spool, &names, &n) != 0) {
		mt_spool_unlock(&st->spool);
		return;
	}
	for (i = 0; i < n && !stopping(st); i++) {
		if ((rc = replay_one(st, names[i])) < 0)
			break;
		done += rc > 0;
		stored += rc == 2;
	}
	mt_spool_unlock(&st->spool);
	mt_spool_names_free(names, n);
	if (rc >= 0 && done == n) {
		pthread_mutex_lock(&st->mu);
		if (st->spool_gen == gen)	/* nothing spooled meanwhile */
			st->spool_pending = 0;
		pthread_mutex_unlock(&st->mu);
	}
	if (stored > 0) {
		breaker_reset(st);
		say(st, LOG_INFO, "replayed %zu spooled records", stored);
	}
}

static void *
replayer_main(void *arg)
{
	struct mt_store *st = arg;
	struct timespec ts;
	int64_t wake;
	int go;

	pthread_mutex_lock(&st->mu);
	while (!st->stop) {
		/* While the breaker is open a round would only time out again. */
		go = mt_clock_ms(CLOCK_MONOTONIC) >= st->down_until;
		st->kick = 0;
		pthread_mutex_unlock(&st->mu);
		if (go)
			replay_round(st);
		pthread_mutex_lock(&st->mu);
		wake = mt_clock_ms(CLOCK_MONOTONIC) + REPLAY_EVERY_MS;
		ts.tv_sec = wake / 1000;
		ts.tv_nsec = (wake % 1000) * 1000000;
		while (!st->stop && !st->kick &&
		    pthread_cond_timedwait(&st->cv, &st->mu, &ts) == 0)
			;
	}
	pthread_mutex_unlock(&st->mu);
	return NULL;
}

int
mt_store_start_replayer(struct mt_store *st)
{
	int rc;

	pthread_mutex_lock(&st->mu);
	rc = st->started ? 0 : pthread_create(&st->thread, NULL, replayer_main,
	    st);
	if (rc == 0)
		st->started = 1;
	pthread_mutex_unlock(&st->mu);
	return rc == 0 ? 0 : -1;
}

/* ---- life cycle ------------------------------------------------------ */

static int
copy_config(struct mt_store *st, const struct mt_config *cfg)
{
	st->pool = mt_redis_pool_new(cfg);
	st->prefix = strdup(cfg->redis_prefix ? cfg->redis_prefix : "mt:");
	st->ttl = (cfg->retention_days > 0 ? cfg->retention_days : 30) * 86400;
	st->maxlen = cfg->events_maxlen > 0 ? cfg->events_maxlen : 100000;
	return st->pool == NULL || st->prefix == NULL ? -1 : 0;
}

static void
store_release(struct mt_store *st)
{
	mt_redis_pool_free(st->pool);
	if (st->spool.dir != NULL)
		mt_spool_close(&st->spool);
	free(st->prefix);
	pthread_cond_destroy(&st->cv);
	pthread_mutex_destroy(&st->mu);
	free(st);
}

struct mt_store *
mt_store_new(const struct mt_config *cfg, mt_store_report_fn *report,
    char *err, size_t errlen)
{
	struct mt_store *st;
	pthread_condattr_t ca;
	char host[512], **names;
	int port;
	size_t n;

	if (cfg->redis_server != NULL && mt_redis_parse_server(
	    cfg->redis_server, host, sizeof(host), &port) != 0) {
		snprintf(err, errlen, "bad RedisServer \"%.200s\"",
		    cfg->redis_server);
		return NULL;
	}
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	st->report = report;
	pthread_mutex_init(&st->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&st->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (copy_config(st, cfg) != 0 || mt_redis_script_init(&st->script,
	    store_lua) != 0) {
		snprintf(err, errlen, "out of memory");
		store_release(st);
		return NULL;
	}
	if (mt_spool_open(&st->spool, cfg->spool_dir, err, errlen) != 0) {
		store_release(st);
		return NULL;
	}
	/* Records left by an earlier run go first. */
	if (mt_spool_list(&st->spool, &names, &n) == 0) {
		st->spool_pending = n > 0;
		mt_spool_names_free(names, n);
	}
	return st;
}

void
mt_store_free(struct mt_store *st)
{
	if (st == NULL)
		return;
	pthread_mutex_lock(&st->mu);
	__atomic_store_n(&st->stop, 1, __ATOMIC_RELAXED);
	pthread_cond_signal(&st->cv);
	pthread_mutex_unlock(&st->mu);
	if (st->started)
		pthread_join(st->thread, NULL);
	store_release(st);
}
