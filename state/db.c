/*
 * One interface to Redis in its three modes. A link is a pooled
 * connection (one server; Sentinel finds the master when it connects) or
 * a cluster client with a connection per node. Commands arrive formatted,
 * so the cluster layer only routes and redirects them.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "cluster.h"
#include "../common/config.h"

#define IDLE_MAX 16

struct mt_db_link {
	redisContext *c;		/* one server or Sentinel mode */
	struct mt_cluster *cl;		/* Cluster mode */
	int broken;
	int timeout_ms, replicas;
};

struct mt_db {
	struct mt_redis_pool *pool;	/* one server or Sentinel */
	char *seeds;			/* Cluster: the seed list */
	struct mt_cluster_opts copts;
	char *user, *password;
	int timeout_ms;
	pthread_mutex_t mu;
	struct mt_db_link *idle[IDLE_MAX];
	int nidle;
	char name[600];
};

struct mt_db *
mt_db_new(const struct mt_config *cfg, char *err, size_t errlen)
{
	struct mt_db *db = calloc(1, sizeof(*db));

	if (db == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&db->mu, NULL);
	db->timeout_ms = cfg->redis_timeout_ms;
	if (cfg->redis_cluster != NULL) {
		struct mt_redis_endpoint probe[16];

		if (mt_redis_parse_list(cfg->redis_cluster, probe, 16) < 0) {
			snprintf(err, errlen, "bad RedisCluster \"%.200s\"",
			    cfg->redis_cluster);
			free(db);
			return NULL;
		}
		db->seeds = strdup(cfg->redis_cluster);
		db->user = cfg->redis_user ? strdup(cfg->redis_user) : NULL;
		db->password = cfg->redis_password ?
		    strdup(cfg->redis_password) : NULL;
		db->copts.timeout_ms = db->timeout_ms;
		db->copts.user = db->user;
		db->copts.password = db->password;
		snprintf(db->name, sizeof(db->name), "Cluster %.500s",
		    cfg->redis_cluster);
		if (db->seeds == NULL || (cfg->redis_user && !db->user) ||
		    (cfg->redis_password && !db->password)) {
			snprintf(err, errlen, "out of memory");
			mt_db_free(db);
			return NULL;
		}
		return db;
	}
	if (cfg->redis_sentinel == NULL && cfg->redis_server != NULL) {
		char host[MT_REDIS_HOST_MAX];
		int port;

		if (mt_redis_parse_server(cfg->redis_server, host,
		    sizeof(host), &port) != 0) {
			snprintf(err, errlen, "bad RedisServer \"%.200s\"",
			    cfg->redis_server);
			mt_db_free(db);
			return NULL;
		}
	}
	if ((db->pool = mt_redis_pool_new(cfg)) == NULL) {
		snprintf(err, errlen, "out of memory");
		mt_db_free(db);
		return NULL;
	}
	if (cfg->redis_sentinel != NULL)
		snprintf(db->name, sizeof(db->name), "master \"%s\" of "
		    "Sentinels %.400s", cfg->redis_sentinel_master,
		    cfg->redis_sentinel);
	else
		snprintf(db->name, sizeof(db->name), "%.500s",
		    cfg->redis_server ? cfg->redis_server : "127.0.0.1:6379");
	return db;
}

static void
link_close(struct mt_db *db, struct mt_db_link *l)
{
	if (l->c != NULL)
		mt_redis_pool_put(db->pool, l->c);	/* closes a broken one */
	mt_cluster_free(l->cl);
	free(l);
}

void
mt_db_free(struct mt_db *db)
{
	if (db == NULL)
		return;
	while (db->nidle > 0)
		link_close(db, db->idle[--db->nidle]);
	mt_redis_pool_free(db->pool);
	free(db->seeds);
	free(db->user);
	if (db->password != NULL)
		explicit_bzero(db->password, strlen(db->password));
	free(db->password);
	pthread_mutex_destroy(&db->mu);
	free(db);
}

const char *
mt_db_name(const struct mt_db *db)
{
	return db->name;
}


struct mt_db_link *
mt_db_get(struct mt_db *db, char *err, size_t errlen)
{
	struct mt_db_link *l = NULL;

	pthread_mutex_lock(&db->mu);
	if (db->nidle > 0)
		l = db->idle[--db->nidle];
	pthread_mutex_unlock(&db->mu);
	if (l != NULL)
		return l;
	if ((l = calloc(1, sizeof(*l))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	l->timeout_ms = db->timeout_ms;
	l->replicas = db->pool ? mt_redis_pool_replicas(db->pool) : 0;
	if (db->seeds != NULL) {
		l->cl = mt_cluster_new(db->seeds, &db->copts, err, errlen);
		if (l->cl == NULL) {
			free(l);
			return NULL;
		}
		return l;
	}
	if ((l->c = mt_redis_pool_get(db->pool, err, errlen)) == NULL) {
		free(l);
		return NULL;
	}
	return l;
}

void
mt_db_put(struct mt_db *db, struct mt_db_link *l)
{
	if (l == NULL)
		return;
	if (l->c != NULL && (l->broken || l->c->err)) {
		/* The pool closes it; the next mt_db_get connects anew. */
		l->c->err = l->c->err ? l->c->err : REDIS_ERR_EOF;
		mt_redis_pool_put(db->pool, l->c);
		l->c = NULL;
		free(l);
		return;
	}
	l->broken = 0;
	pthread_mutex_lock(&db->mu);
	if (db->nidle < IDLE_MAX) {
		db->idle[db->nidle++] = l;
		l = NULL;
	}
	pthread_mutex_unlock(&db->mu);
	if (l != NULL)
		link_close(db, l);
}

/* ---- batches ---------------------------------------------------------- */

void
mt_db_batch_init(struct mt_db_batch *b)
{
	memset(b, 0, sizeof(*b));
}

static void
batch_reset(struct mt_db_batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		free(b->cmd[i].cmd);
		free(b->cmd[i].key);
		if (b->cmd[i].reply)
			freeReplyObject(b->cmd[i].reply);
	}
	b->n = 0;
	b->oom = 0;
}

void
mt_db_batch_free(struct mt_db_batch *b)
{
	batch_reset(b);
	free(b->cmd);
	memset(b, 0, sizeof(*b));
}

int
mt_db_batch_move(struct mt_db_batch *dst, struct mt_db_batch *src)
{
	if (src->oom)
		dst->oom = 1;
	if (dst->n + src->n > dst->cap) {
		size_t cap = dst->cap ? dst->cap : 16;
		struct mt_db_cmd *v;

		while (cap < dst->n + src->n)
			cap *= 2;
		if ((v = realloc(dst->cmd, cap * sizeof(*v))) == NULL) {
			dst->oom = 1;
			return -1;
		}
		dst->cmd = v;
		dst->cap = cap;
	}
	memcpy(dst->cmd + dst->n, src->cmd, src->n * sizeof(*src->cmd));
	dst->n += src->n;
	src->n = 0;
	src->oom = 0;
	return 0;
}

/* Takes formatted (a hiredis-allocated command) into the batch. */
static size_t
add_formatted(struct mt_db_batch *b, const char *key, char *formatted,
    long long len, const struct mt_redis_script *s)
{
	struct mt_db_cmd *m;

	if (formatted == NULL || len < 0) {
		b->oom = 1;
		return b->n;
	}
	if (b->n == b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 16;
		struct mt_db_cmd *v = realloc(b->cmd, cap * sizeof(*v));

		if (v == NULL) {
			free(formatted);
			b->oom = 1;
			return b->n;
		}
		b->cmd = v;
		b->cap = cap;
	}
	m = &b->cmd[b->n];
	memset(m, 0, sizeof(*m));
	m->cmd = formatted;
	m->len = (size_t)len;
	m->script = s;
	if (key != NULL) {
		m->keylen = strlen(key);
		if ((m->key = strdup(key)) == NULL) {
			free(formatted);
			b->oom = 1;
			return b->n;
		}
	}
	return b->n++;
}

size_t
mt_db_addv(struct mt_db_batch *b, const char *key, const char *fmt,
    va_list ap)
{
	char *out = NULL;
	int len = redisvFormatCommand(&out, fmt, ap);

	return add_formatted(b, key, out, len, NULL);
}

size_t
mt_db_add(struct mt_db_batch *b, const char *key, const char *fmt, ...)
{
	va_list ap;
	size_t at;

	va_start(ap, fmt);
	at = mt_db_addv(b, key, fmt, ap);
	va_end(ap);
	return at;
}


size_t
mt_db_add_script(struct mt_db_batch *b, const struct mt_redis_script *s,
    int nkeys, const char *const *keys, int nargs, const char *const *args,
    const size_t *arglens)
{
	int argc = 3 + nkeys + nargs, i;
	const char **v = calloc((size_t)argc, sizeof(*v));
	size_t *len = calloc((size_t)argc, sizeof(*len)), at;
	char numkeys[16], *out = NULL;
	long long flen = -1;

	if (v != NULL && len != NULL && nkeys > 0) {
		snprintf(numkeys, sizeof(numkeys), "%d", nkeys);
		v[0] = "EVALSHA";
		v[1] = s->sha;
		v[2] = numkeys;
		for (i = 0; i < nkeys; i++)
			v[3 + i] = keys[i];
		for (i = 0; i < nargs; i++) {
			v[3 + nkeys + i] = args[i];
			len[3 + nkeys + i] = arglens ? arglens[i]
			    : strlen(args[i]);
		}
		for (i = 0; i < 3 + nkeys; i++)
			len[i] = strlen(v[i]);
		flen = redisFormatCommandArgv(&out, argc, v, len);
	}
	free(v);
	free(len);
	at = add_formatted(b, nkeys > 0 ? keys[0] : NULL, out, flen, s);
	return at;
}

const char *
mt_db_str(const redisReply *r)
{
	if (r != NULL && (r->type == REDIS_REPLY_STRING ||
	    r->type == REDIS_REPLY_STATUS))
		return r->str;
	return NULL;
}

/* ---- running ---------------------------------------------------------- */

static void
io_error(const struct mt_db_link *l, int timeout_ms, char *err,
    size_t errlen)
{
	const redisContext *c = l->c;

	/* hiredis reports a command timeout as EAGAIN's text. */
	if (c->err == REDIS_ERR_IO && strstr(c->errstr, "temporarily"))
		snprintf(err, errlen, "timed out after %d ms", timeout_ms);
	else
		snprintf(err, errlen, "%s", c->errstr[0] ? c->errstr
		    : "no reply");
}

static int
is_noscript(const struct mt_db_cmd *m)
{
	return m->script != NULL && mt_redis_is_noscript(m->reply);
}

/* One server: everything in one pipeline; NOSCRIPT ones once more. */
static int
run_single(struct mt_db_link *l, struct mt_db_batch *b, int flags,
    int timeout_ms, int replicas, char *err, size_t errlen)
{
	redisContext *c = l->c;
	size_t i, redo = 0;
	int unwritable = 0;

	for (i = 0; i < b->n; i++)
		if (redisAppendFormattedCommand(c, b->cmd[i].cmd,
		    b->cmd[i].len) != REDIS_OK)
			goto io;
	for (i = 0; i < b->n; i++) {
		if (redisGetReply(c, (void **)&b->cmd[i].reply) != REDIS_OK)
			goto io;
		if (mt_redis_note_reply(c, b->cmd[i].reply) && !unwritable) {
			snprintf(err, errlen, "%.300s", b->cmd[i].reply->str);
			unwritable = 1;
		}
		redo += is_noscript(&b->cmd[i]);
	}
	if (unwritable) {
		l->broken = 1;
		return -1;
	}
	/* A new, restarted or flushed server: load each script, then again. */
	for (i = 0; i < b->n && redo > 0; i++) {
		struct mt_db_cmd *m = &b->cmd[i];
		redisReply *r;

		if (!is_noscript(m))
			continue;
		r = redisCommand(c, "SCRIPT LOAD %b", m->script->text,
		    m->script->len);
		if (r == NULL)
			goto io;
		freeReplyObject(r);
		freeReplyObject(m->reply);
		m->reply = NULL;
		if (redisAppendFormattedCommand(c, m->cmd, m->len) != REDIS_OK ||
		    redisGetReply(c, (void **)&m->reply) != REDIS_OK)
			goto io;
	}
	if ((flags & MT_DB_WRITE) && replicas > 0 && mt_redis_wait_replicas(c,
	    replicas, timeout_ms, err, errlen) != 0) {
		l->broken = c->err != 0;
		return -1;
	}
	return 0;
io:
	io_error(l, timeout_ms, err, errlen);
	l->broken = 1;
	return -1;
}

static int
run_cluster(struct mt_db_link *l, struct mt_db_batch *b, int flags,
    char *err, size_t errlen)
{
	struct mt_cluster_cmd *v = calloc(b->n ? b->n : 1, sizeof(*v));
	int rc;

	if (v == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < b->n; i++) {
		v[i].formatted = b->cmd[i].cmd;
		v[i].formattedlen = b->cmd[i].len;
		v[i].key = b->cmd[i].key;
		v[i].keylen = b->cmd[i].keylen;
		v[i].script = b->cmd[i].script ? b->cmd[i].script->text : NULL;
	}
	mt_cluster_wait_replicas(l->cl, (flags & MT_DB_WRITE) != 0);
	rc = mt_cluster_run(l->cl, v, b->n, err, errlen);
	for (size_t i = 0; i < b->n; i++)
		b->cmd[i].reply = v[i].reply;
	free(v);
	return rc;
}

int
mt_db_run(struct mt_db_link *l, struct mt_db_batch *b, int flags, char *err,
    size_t errlen)
{
	for (size_t i = 0; i < b->n; i++)
		if (b->cmd[i].reply != NULL) {
			freeReplyObject(b->cmd[i].reply);
			b->cmd[i].reply = NULL;
		}
	if (b->oom) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (b->n == 0)
		return 0;
	if (l->cl != NULL)
		return run_cluster(l, b, flags, err, errlen);
	return run_single(l, b, flags, l->timeout_ms, l->replicas, err,
	    errlen);
}


int
mt_db_ping(struct mt_db *db, char *err, size_t errlen)
{
	struct mt_db_batch b;
	struct mt_db_link *l = mt_db_get(db, err, errlen);
	const char *pong;
	int rc = -1;

	if (l == NULL)
		return -1;
	mt_db_batch_init(&b);
	mt_db_add(&b, NULL, "PING");
	if (mt_db_run(l, &b, 0, err, errlen) == 0) {
		pong = mt_db_str(mt_db_reply(&b, 0));
		if (pong != NULL && strcmp(pong, "PONG") == 0)
			rc = 0;
		else
			snprintf(err, errlen, "PING was answered with %.200s",
			    pong ? pong : "an error");
	}
	mt_db_batch_free(&b);
	mt_db_put(db, l);
	return rc;
}
