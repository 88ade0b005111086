/*
 * Connecting to the configured Redis: HOST:PORT or unix:/path, connect and
 * command timeouts, AUTH from RedisPasswordFile. Shared by the daemon's
 * store and the `mailtrail` command.
 */
#ifndef MT_REDIS_H
#define MT_REDIS_H

#include <stddef.h>
#include <hiredis/hiredis.h>

struct mt_config;

/*
 * Splits a RedisServer value: "unix:/path" gives the path in host and
 * *port = 0; "HOST:PORT" and "[V6]:PORT" give the bare host and the port.
 * 0, or -1 when the value is malformed.
 */
int mt_redis_parse_server(const char *spec, char *host, size_t hostlen,
    int *port);

#define MT_REDIS_HOST_MAX 256

/* One TCP node of a list (RedisCluster seeds, RedisSentinel). */
struct mt_redis_endpoint {
	char host[MT_REDIS_HOST_MAX];
	int port;
};

/*
 * "HOST:PORT, HOST:PORT ..." (IPv6 in brackets) into out, at most max.
 * The count, or -1 when the list is empty, too long or an item malformed.
 */
int mt_redis_parse_list(const char *spec, struct mt_redis_endpoint *out,
    size_t max);

/*
 * Connects to host:port (port 0: host is a unix socket path) with the
 * timeout on connect and on every command, and AUTHs when password is set.
 * A ready context, or NULL with err filled.
 */
redisContext *mt_redis_connect_to(const char *host, int port, int timeout_ms,
    const char *user, const char *password, char *err, size_t errlen);

/*
 * After a reply: when it is an error saying that this server takes no
 * writes now (READONLY: a master demoted by a failover; MASTERDOWN;
 * LOADING), marks c broken, so that the pool closes it and the next
 * connection asks the Sentinels anew. 1 when it did.
 */
int mt_redis_note_reply(redisContext *c, const redisReply *r);

/* A ready context (authenticated, timeouts set) or NULL with err filled. */
redisContext *mt_redis_connect(const struct mt_config *cfg, char *err,
    size_t errlen);

/*
 * A few idle connections for threads that take one per job (the store,
 * the events writer). The pool keeps its own copy of the redis_* settings,
 * so it outlives a configuration reload.
 */
struct mt_redis_pool;

struct mt_redis_pool *mt_redis_pool_new(const struct mt_config *cfg);
/* An idle context, or a new one; NULL with err filled. Thread-safe. */
redisContext *mt_redis_pool_get(struct mt_redis_pool *p, char *err,
    size_t errlen);
/* Back into the pool, or closed when it had an error (timeouts included). */
void mt_redis_pool_put(struct mt_redis_pool *p, redisContext *c);
void mt_redis_pool_free(struct mt_redis_pool *p);

/*
 * Replicas that must acknowledge a write before it counts as stored: 1
 * with RedisSentinel (a failover then loses nothing that was
 * acknowledged, as replication is asynchronous), 0 for a single server.
 */
int mt_redis_pool_replicas(const struct mt_redis_pool *p);

/*
 * WAIT until n replicas have every write made on c so far, at most
 * timeout_ms. 0, or -1 with err (too few: the caller keeps its own copy).
 */
int mt_redis_wait_replicas(redisContext *c, int n, int timeout_ms, char *err,
    size_t errlen);

/* A Lua script and the digest EVALSHA names it by. */
struct mt_redis_script {
	const char *text;
	size_t len;
	char sha[41];
};
/* Fills s for text (a string that outlives s). 0, or -1 (OpenSSL). */
int mt_redis_script_init(struct mt_redis_script *s, const char *text);

/* A NOSCRIPT error reply: the server does not know the script (yet). */
int mt_redis_is_noscript(const redisReply *r);

#endif
