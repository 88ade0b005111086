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
#include "db.h"
#include "schema.h"
#include "spool.h"
#include "../common/config.h"

#define BREAKER_MS 1000		/* after a failure, spool without trying */
#define REPLAY_EVERY_MS 500
#define MAX_FIELDS 20		/* hash fields of mt:{ID} */

struct put_req;

struct mt_store {
	/* fixed after mt_store_new */
	struct mt_db *db;
	struct mt_schema schema;
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

	pthread_mutex_t qmu;	/* group commit: guards the queue below */
	struct put_req *qhead, **qtail;
	int writing;		/* callers writing groups now */
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

/* ---- the writes ---------------------------------------------------- */

struct args {
	const char **v;
	size_t *len;
	size_t n;
	char **owned;		/* strings built here, freed with the args */
	size_t nowned;
	int oom;
};

static void
arg_add(struct args *a, const char *s)
{
	a->v[a->n] = s;
	a->len[a->n++] = strlen(s);
}

static void
arg_addf(struct args *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
arg_addf(struct args *a, const char *fmt, ...)
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
arg_take(struct args *a, char *s)
{
	if (s == NULL)
		a->oom = 1;
	else
		a->owned[a->nowned++] = s;
	arg_add(a, s ? s : "");
}

static void
args_free(struct args *a)
{
	while (a->nowned > 0)
		free(a->owned[--a->nowned]);
	free(a->v);
	free(a->len);
	free(a->owned);
}

static int
args_init(struct args *a, size_t cap)
{
	memset(a, 0, sizeof(*a));
	a->v = calloc(cap, sizeof(*a->v));
	a->len = calloc(cap, sizeof(*a->len));
	a->owned = calloc(cap, sizeof(*a->owned));
	return a->v && a->len && a->owned ? 0 : -1;
}

static void
add_field(struct args *a, size_t *nf, const char *name, const char *val)
{
	if (val == NULL)
		return;
	arg_add(a, name);
	arg_add(a, val);
	(*nf)++;
}

/* The field/value pairs of P{ID}, absent values left out. */
static size_t
add_fields(struct args *a, const struct mt_record *r)
{
	size_t nf = 0;

	add_field(a, &nf, "qid", r->qid);
	add_field(a, &nf, "msgid", r->msgid);
	add_field(a, &nf, "sender", r->sender);
	add_field(a, &nf, "subject", r->subject);
	add_field(a, &nf, "dir", r->inbound ? "in" : "out");
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
	if (r->send_at_ms > 0) {
		arg_add(a, "send_at");
		arg_addf(a, "%lld", (long long)r->send_at_ms);
		nf++;
	}
	return nf;
}

/* The RECEIVE fingerprint: one per message and MTA, so a replay is seen. */
static void
receive_fp(const struct mt_record *r, char fp[MT_FP_LEN + 1])
{
	char *s = NULL;
	int n = asprintf(&s, "RECEIVE %s %s", r->qid, r->by ? r->by : "");

	mt_schema_fingerprint(s ? s : r->qid, n > 0 && s ? (size_t)n :
	    strlen(r->qid), fp);
	free(s);
}

/*
 * A held message's keys outlive its wait: the retention counts from the
 * time it is due, not from submission.
 */
static int64_t
record_ttl(const struct mt_store *st, const struct mt_record *r)
{
	int64_t wait = r->send_at_ms - r->received_ms;

	return st->schema.ttl + (wait > 0 ? (wait + 999) / 1000 : 0);
}

/* Keys and arguments of the record script; -1 when out of memory. */
static int
record_args(struct mt_store *st, const struct mt_record *r, int replayed,
    const char *fp, char *keys[2], struct args *a)
{
	size_t nf_at, nf, i;
	char *count;

	if (args_init(a, 8 + 2 * MAX_FIELDS + r->nrcpt) != 0)
		return -1;
	keys[0] = mt_key(&st->schema, MT_KEY_RECORD, r->id, strlen(r->id));
	keys[1] = mt_key(&st->schema, MT_KEY_EVENTS, r->id, strlen(r->id));
	arg_addf(a, "%lld", (long long)record_ttl(st, r));
	arg_add(a, r->id_kept ? "1" : "0");
	arg_add(a, fp);
	arg_take(a, mt_record_receive_json(r, fp));
	if (r->send_at_ms > 0)
		arg_take(a, mt_record_schedule_event_json(r));
	else
		arg_add(a, "");
	if (replayed)
		arg_take(a, mt_record_spool_event_json(r,
		    mt_clock_ms(CLOCK_REALTIME)));
	else
		arg_add(a, "");
	nf_at = a->n;
	arg_add(a, "");		/* field count, patched once known */
	nf = add_fields(a, r);
	if (asprintf(&count, "%zu", nf) < 0)
		a->oom = 1;
	else {
		a->owned[a->nowned++] = count;
		a->v[nf_at] = count;
		a->len[nf_at] = strlen(count);
	}
	for (i = 0; i < r->nrcpt; i++)
		arg_add(a, r->rcpt[i]);
	return a->oom || keys[0] == NULL || keys[1] == NULL ? -1 : 0;
}

/*
 * An index entry: a sorted set of IDs by received time. Trimming the
 * entries older than the retention costs a range walk, so one write in
 * TRIM_EVERY does it (by the ID's last character: spread evenly).
 */
#define TRIM_EVERY 16

static void
add_index(struct mt_store *st, struct mt_db_batch *b, enum mt_key_kind kind,
    const char *val, const struct mt_record *r, int nx, const char *cutoff)
{
	char *key = mt_key(&st->schema, kind, val, strlen(val));
	size_t idlen = strlen(r->id);

	if (key == NULL) {
		b->oom = 1;
		return;
	}
	mt_db_add(b, key, nx ? "ZADD %s NX %lld %s" : "ZADD %s %lld %s", key,
	    (long long)r->received_ms, r->id);
	if (idlen > 0 && (unsigned char)r->id[idlen - 1] % TRIM_EVERY == 0)
		mt_db_add(b, key, "ZREMRANGEBYSCORE %s -inf (%s", key, cutoff);
	mt_db_add(b, key, "EXPIRE %s %ld", key, st->schema.ttl);
	free(key);
}

/* A held message in P"sched" by due time; the key lives as long as it. */
static int
add_sched(struct mt_store *st, struct mt_db_batch *b, const struct mt_record *r)
{
	char *key = mt_key(&st->schema, MT_KEY_SCHED, NULL, 0);

	if (key == NULL)
		return -1;
	mt_db_add(b, key, "ZADD %s %lld %s", key, (long long)r->send_at_ms,
	    r->id);
	/* GT alone never sets a first expiry: NX does that. */
	mt_db_add(b, key, "EXPIRE %s %lld NX", key,
	    (long long)record_ttl(st, r));
	mt_db_add(b, key, "EXPIRE %s %lld GT", key,
	    (long long)record_ttl(st, r));
	free(key);
	return 0;
}

/* The record's own keys, then the index keys, each in its own slot. */
static void
build_batch(struct mt_store *st, const struct mt_record *r, char *keys[2],
    struct args *a, struct mt_db_batch *b)
{
	char cutoff[24], *qkey;
	int64_t now = mt_clock_ms(CLOCK_REALTIME);

	mt_db_add_script(b, mt_schema_script(MT_SCRIPT_RECORD), 2,
	    (const char *const *)keys, (int)a->n, a->v, a->len);
	if ((qkey = mt_key(&st->schema, MT_KEY_QID, r->qid,
	    strlen(r->qid))) == NULL)
		b->oom = 1;
	else
		mt_db_add(b, qkey, "SET %s %s EX %ld", qkey, r->id,
		    st->schema.ttl);
	free(qkey);
	if (r->send_at_ms > 0 && add_sched(st, b, r) < 0)
		b->oom = 1;
	snprintf(cutoff, sizeof(cutoff), "%lld",
	    (long long)(now - (int64_t)st->schema.ttl * 1000));
	add_index(st, b, MT_KEY_FROM, r->sender, r, 0, cutoff);
	if (r->msgid != NULL)
		add_index(st, b, MT_KEY_MSGID, r->msgid, r, 1, cutoff);
	for (size_t i = 0; i < r->nrcpt; i++) {
		size_t j;

		for (j = 0; j < i && strcmp(r->rcpt[j], r->rcpt[i]); j++)
			;
		if (j == i)
			add_index(st, b, MT_KEY_TO, r->rcpt[i], r, 0, cutoff);
	}
}

/* What one record's replies (from, n of them) say: W_OK or W_DUP. */
static enum write_result
judge(const struct mt_db_batch *b, size_t from, size_t n, char *why,
    size_t whylen)
{
	const char *s = mt_db_str(mt_db_reply(b, from));

	for (size_t i = from; i < from + n; i++) {
		const redisReply *rep = mt_db_reply(b, i);

		if (rep != NULL && rep->type == REDIS_REPLY_ERROR) {
			snprintf(why, whylen, "%.300s", rep->str);
			return W_REPLY;
		}
	}
	if (s != NULL && strcmp(s, "ok") == 0)
		return W_OK;
	if (s != NULL && strcmp(s, "dup") == 0)
		return W_DUP;
	snprintf(why, whylen, "unexpected reply to the record script");
	return W_REPLY;
}

/* One record of a group write, and what came of it. */
struct put_req {
	const struct mt_record *r;
	int replayed;
	enum write_result res;
	char why[512];
	int done;
	pthread_cond_t cv;	/* signalled when done */
	struct put_req *next;
	/* built by the caller, written by whoever writes the group */
	struct args a;
	char *keys[2];
	struct mt_db_batch b;	/* its commands */
	int oom;
	size_t from, n;		/* where they went in the group's batch */
};

/* Builds the request's commands (in the caller's thread: in parallel). */
static void
req_build(struct mt_store *st, struct put_req *q)
{
	char fp[MT_FP_LEN + 1];

	mt_db_batch_init(&q->b);
	receive_fp(q->r, fp);
	if (record_args(st, q->r, q->replayed, fp, q->keys, &q->a) != 0)
		q->oom = 1;
	else
		build_batch(st, q->r, q->keys, &q->a, &q->b);
	q->oom |= q->b.oom;
}

static void
req_free(struct put_req *q)
{
	mt_db_batch_free(&q->b);
	args_free(&q->a);
	free(q->keys[0]);
	free(q->keys[1]);
}

/* The events stream: only for records new to Redis, never twice. */
static void
stream_receive(struct mt_store *st, struct mt_db_link *l,
    struct put_req **v, size_t n)
{
	struct mt_db_batch b;
	char *key = mt_key(&st->schema, MT_KEY_STREAM, NULL, 0), why[256];

	if (key == NULL)
		return;
	mt_db_batch_init(&b);
	for (size_t i = 0; i < n; i++) {
		if (v[i]->res != W_OK)
			continue;
		mt_db_add(&b, key, "XADD %s MAXLEN ~ %ld * id %s ev RECEIVE "
		    "data %s", key, st->schema.maxlen, v[i]->r->id,
		    v[i]->a.v[3]);
		if (v[i]->r->send_at_ms > 0)
			mt_db_add(&b, key, "XADD %s MAXLEN ~ %ld * id %s ev "
			    "SCHEDULE data %s", key, st->schema.maxlen,
			    v[i]->r->id, v[i]->a.v[4]);
		if (v[i]->replayed)
			mt_db_add(&b, key, "XADD %s MAXLEN ~ %ld * id %s ev "
			    "SPOOL data %s", key, st->schema.maxlen,
			    v[i]->r->id, v[i]->a.v[5]);
	}
	if (b.n > 0) {
		mt_db_add(&b, key, "EXPIRE %s %ld", key, st->schema.ttl);
		/* The records are stored either way; consumers may miss these. */
		(void)mt_db_run(l, &b, 0, why, sizeof(why));
	}
	mt_db_batch_free(&b);
	free(key);
}

/*
 * Writes n records together: one batch, one round trip per node for all
 * of them, then the stream. Each request gets its own result.
 */
static void
write_many(struct mt_store *st, struct put_req **v, size_t n)
{
	struct mt_db_batch b;
	struct mt_db_link *l = NULL;
	char why[512];
	size_t i;
	int rc;

	mt_db_batch_init(&b);
	for (i = 0; i < n; i++) {
		struct put_req *q = v[i];

		q->res = W_REPLY;
		q->from = b.n;
		if (q->oom || mt_db_batch_move(&b, &q->b) != 0)
			b.oom = 1;
		q->n = b.n - q->from;
	}
	if (b.oom) {
		snprintf(why, sizeof(why), "out of memory");
		rc = -2;
	} else if ((l = mt_db_get(st->db, why, sizeof(why))) == NULL)
		rc = -1;
	else
		rc = mt_db_run(l, &b, MT_DB_WRITE, why, sizeof(why));
	for (i = 0; i < n; i++) {
		struct put_req *q = v[i];

		if (rc != 0) {
			q->res = rc == -1 ? W_IO : W_REPLY;
			snprintf(q->why, sizeof(q->why), "%s", why);
		} else
			q->res = judge(&b, q->from, q->n, q->why,
			    sizeof(q->why));
	}
	if (rc == 0)
		stream_receive(st, l, v, n);
	if (l != NULL)
		mt_db_put(st->db, l);
	mt_db_batch_free(&b);
}

#define GROUP_MAX 64		/* records per group write */
#define WRITERS_MAX 4		/* groups in flight at once */

/*
 * Group commit: concurrent puts share round trips. A caller that finds
 * fewer than WRITERS_MAX writers becomes one and writes whatever has
 * queued up, in groups, until the queue is empty; the others wait for
 * their own result. Each request was built by its own caller.
 */
static enum write_result
store_write(struct mt_store *st, const struct mt_record *r, int replayed,
    char *why, size_t whylen)
{
	struct put_req me, *v[GROUP_MAX];

	memset(&me, 0, sizeof(me));
	me.r = r;
	me.replayed = replayed;
	req_build(st, &me);
	pthread_cond_init(&me.cv, NULL);
	pthread_mutex_lock(&st->qmu);
	*st->qtail = &me;
	st->qtail = &me.next;
	while (!me.done) {
		if (st->writing >= WRITERS_MAX) {
			pthread_cond_wait(&me.cv, &st->qmu);
			continue;
		}
		st->writing++;
		while (st->qhead != NULL) {
			size_t n = 0;

			while (st->qhead != NULL && n < GROUP_MAX) {
				v[n++] = st->qhead;
				st->qhead = st->qhead->next;
			}
			if (st->qhead == NULL)
				st->qtail = &st->qhead;
			pthread_mutex_unlock(&st->qmu);
			write_many(st, v, n);
			pthread_mutex_lock(&st->qmu);
			for (size_t i = 0; i < n; i++) {
				v[i]->done = 1;
				pthread_cond_signal(&v[i]->cv);
			}
		}
		st->writing--;
	}
	pthread_mutex_unlock(&st->qmu);
	pthread_cond_destroy(&me.cv);
	req_free(&me);
	snprintf(why, whylen, "%s", me.why);
	return me.res;
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
		say(st, LOG_WARNING, "Redis %s %s (%s): spooling",
		    mt_db_name(st->db), io ? "unreachable" : "refused a write",
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
		say(st, LOG_NOTICE, "Redis %s reachable again",
		    mt_db_name(st->db));
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

static void
store_release(struct mt_store *st)
{
	mt_db_free(st->db);
	if (st->spool.dir != NULL)
		mt_spool_close(&st->spool);
	pthread_cond_destroy(&st->cv);
	pthread_mutex_destroy(&st->mu);
	pthread_mutex_destroy(&st->qmu);
	free(st);
}

struct mt_store *
mt_store_new(const struct mt_config *cfg, mt_store_report_fn *report,
    char *err, size_t errlen)
{
	struct mt_store *st;
	pthread_condattr_t ca;
	char **names;
	size_t n;

	if ((st = calloc(1, sizeof(*st))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	st->report = report;
	pthread_mutex_init(&st->mu, NULL);
	pthread_mutex_init(&st->qmu, NULL);
	st->qtail = &st->qhead;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&st->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (mt_schema_init(&st->schema, cfg) != 0) {
		snprintf(err, errlen, "RedisPrefix is too long");
		store_release(st);
		return NULL;
	}
	if ((st->db = mt_db_new(cfg, err, errlen)) == NULL) {
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
