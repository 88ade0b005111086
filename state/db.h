/*
 * The Redis a configuration names, in whichever of its three modes (one
 * server, Sentinel, Cluster), behind one interface: a batch of commands,
 * each routed by its key, pipelined with one round trip per node, and
 * scripts run by EVALSHA and loaded on NOSCRIPT. Every program reaches
 * Redis through here, so every program works the same in the three modes.
 * Library code: errors go into err, never into a log.
 */
#ifndef MT_DB_H
#define MT_DB_H

#include <stdarg.h>
#include <stddef.h>
#include <hiredis/hiredis.h>

#include "redis.h"

struct mt_config;
struct mt_db;		/* settings and a pool of links; thread-safe */
struct mt_db_link;	/* one thread's way to Redis; not thread-safe */

struct mt_db *mt_db_new(const struct mt_config *cfg, char *err,
    size_t errlen);
void mt_db_free(struct mt_db *db);
/* Where Redis is, for messages after "Redis ": "127.0.0.1:6379",
 * "master "mymaster" of Sentinels ...", "Cluster 127.0.0.1:7000, ...". */
const char *mt_db_name(const struct mt_db *db);

/* An idle link or a new one (connects lazily); NULL with err. */
struct mt_db_link *mt_db_get(struct mt_db *db, char *err, size_t errlen);
/* Back into the pool; a link that failed is closed instead. */
void mt_db_put(struct mt_db *db, struct mt_db_link *l);

struct mt_db_cmd {
	char *cmd;		/* the command in RESP, as hiredis formats it */
	size_t len;
	char *key;		/* routes it; NULL: any node */
	size_t keylen;
	const struct mt_redis_script *script;	/* EVALSHA of this script */
	redisReply *reply;	/* after mt_db_run */
};

/* Commands collected, then run together. Zero it, or mt_db_batch_init. */
struct mt_db_batch {
	struct mt_db_cmd *cmd;
	size_t n, cap;
	int oom;		/* an add failed: mt_db_run refuses the batch */
};

void mt_db_batch_init(struct mt_db_batch *b);
/* Frees the commands and replies; mt_db_batch_init makes it new. */
void mt_db_batch_free(struct mt_db_batch *b);

/* Moves src's commands to the end of dst (src is left empty); -1 oom. */
int mt_db_batch_move(struct mt_db_batch *dst, struct mt_db_batch *src);

/* A command in hiredis's format (%s, %b); key routes it. Its index. */
size_t mt_db_add(struct mt_db_batch *b, const char *key, const char *fmt,
    ...);
size_t mt_db_addv(struct mt_db_batch *b, const char *key, const char *fmt,
    va_list ap);
/*
 * EVALSHA of s with nkeys keys and nargs arguments (lengths may be NULL:
 * strlen). The first key routes it; all keys must share its slot.
 */
size_t mt_db_add_script(struct mt_db_batch *b, const struct mt_redis_script
    *s, int nkeys, const char *const *keys, int nargs,
    const char *const *args, const size_t *arglens);

/* PING through a link of db: 0 when Redis answered, -1 with err. */
int mt_db_ping(struct mt_db *db, char *err, size_t errlen);

/* mt_db_run flags */
#define MT_DB_WRITE 1	/* in Sentinel and Cluster mode, wait for a
			 * replica to hold the writes */

/*
 * Runs the batch. 0 when every command has its reply (which may be an
 * error reply); -1 with err when Redis could not take it now: unreachable,
 * timed out, a master demoted by a failover, or writes not replicated.
 * The link is then closed by mt_db_put, and nothing is known of the
 * commands' effects: callers only send idempotent writes.
 */
int mt_db_run(struct mt_db_link *l, struct mt_db_batch *b, int flags,
    char *err, size_t errlen);
static inline redisReply *
mt_db_reply(const struct mt_db_batch *b, size_t i)
{
	return i < b->n ? b->cmd[i].reply : NULL;
}

/* Text of a reply that is a string or status, else NULL. */
const char *mt_db_str(const redisReply *r);

#endif
