/*
 * Connecting to the configured Redis: parse RedisServer, connect within
 * RedisTimeout, set the same timeout for every command, AUTH when a password
 * is configured. Library code: errors go into err, never into a log.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <openssl/evp.h>

#include "redis.h"
#include "sentinel.h"
#include "../common/config.h"

#define DEFAULT_TIMEOUT_MS 1000

int
mt_redis_parse_server(const char *spec, char *host, size_t hostlen, int *port)
{
	const char *colon, *h = spec;
	size_t n;
	char *end;
	long p;

	if (spec == NULL || hostlen == 0)
		return -1;
	if (strncmp(spec, "unix:", 5) == 0) {
		n = strlen(spec + 5);
		if (n == 0 || n >= hostlen || spec[5] != '/')
			return -1;
		memcpy(host, spec + 5, n + 1);
		*port = 0;
		return 0;
	}
	colon = strrchr(spec, ':');
	if (colon == NULL)
		return -1;
	n = (size_t)(colon - spec);
	if (spec[0] == '[') {
		/* "[v6]:port": the brackets only protect the colons. */
		if (n < 3 || spec[n - 1] != ']')
			return -1;
		h = spec + 1;
		n -= 2;
	} else if (memchr(spec, ':', n) != NULL) {
		return -1;	/* bare IPv6 is ambiguous: demand brackets */
	}
	if (n == 0 || n >= hostlen)
		return -1;
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || errno != 0 || p < 1 || p > 65535)
		return -1;
	memcpy(host, h, n);
	host[n] = '\0';
	*port = (int)p;
	return 0;
}

int
mt_redis_parse_list(const char *spec, struct mt_redis_endpoint *out,
    size_t max)
{
	const char *p = spec;
	char item[MT_REDIS_HOST_MAX + 16];
	size_t n = 0;

	while (*p) {
		size_t len;

		while (*p == ',' || *p == ' ' || *p == '\t')
			p++;
		if ((len = strcspn(p, ", \t")) == 0)
			break;
		if (n == max || len >= sizeof(item))
			return -1;
		memcpy(item, p, len);
		item[len] = '\0';
		/* A list names TCP nodes: no unix: socket among them. */
		if (mt_redis_parse_server(item, out[n].host, sizeof(out[n].host),
		    &out[n].port) != 0 || out[n].port == 0)
			return -1;
		n++;
		p += len;
	}
	return n == 0 ? -1 : (int)n;
}

/* AUTH with "user password" (ACL) or just "password"; 0 or -1. */
static int
redis_auth(redisContext *c, const char *user, const char *password,
    char *err, size_t errlen)
{
	redisReply *rep;
	int rc = 0;

	if (user != NULL)
		rep = redisCommand(c, "AUTH %s %s", user, password);
	else
		rep = redisCommand(c, "AUTH %s", password);
	if (rep == NULL) {
		snprintf(err, errlen, "AUTH: %s", c->errstr);
		return -1;
	}
	if (rep->type == REDIS_REPLY_ERROR) {
		snprintf(err, errlen, "AUTH refused: %.200s", rep->str);
		rc = -1;
	}
	freeReplyObject(rep);
	return rc;
}

redisContext *
mt_redis_connect_to(const char *host, int port, int timeout_ms,
    const char *user, const char *password, char *err, size_t errlen)
{
	int ms = timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	redisContext *c;

	c = port == 0 ? redisConnectUnixWithTimeout(host, tv)
	    : redisConnectWithTimeout(host, port, tv);
	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (c->err) {
		snprintf(err, errlen, "%s", c->errstr);
		redisFree(c);
		return NULL;
	}
	/* Without this a command on a hung server would block forever. */
	if (redisSetTimeout(c, tv) != REDIS_OK) {
		snprintf(err, errlen, "cannot set timeout: %s", c->errstr);
		redisFree(c);
		return NULL;
	}
	if (password != NULL && redis_auth(c, user, password, err, errlen)) {
		redisFree(c);
		return NULL;
	}
	return c;
}

/* Replicas the master has now (ROLE), or -1 when it cannot say. */
static long
replicas_now(redisContext *c)
{
	redisReply *r = redisCommand(c, "ROLE");
	long n = -1;

	if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements >= 3 &&
	    r->element[2]->type == REDIS_REPLY_ARRAY)
		n = (long)r->element[2]->elements;
	mt_redis_note_reply(c, r);
	if (r)
		freeReplyObject(r);
	return n;
}

int
mt_redis_wait_replicas(redisContext *c, int n, int timeout_ms, char *err,
    size_t errlen)
{
	redisReply *r;
	int rc = -1;

	/*
	 * A master left without replicas (after a failover, until the old
	 * master returns as one) cannot be failed over either: there is
	 * nothing a write could be lost to, so there is nothing to wait for.
	 */
	if (replicas_now(c) == 0)
		return 0;
	/* Half the command timeout: the reply must come before the socket's. */
	r = redisCommand(c, "WAIT %d %d", n, timeout_ms > 1 ? timeout_ms / 2 : 1);

	if (r == NULL)
		snprintf(err, errlen, "WAIT: %s", c->errstr);
	else if (r->type == REDIS_REPLY_INTEGER && r->integer >= n)
		rc = 0;
	else if (r->type == REDIS_REPLY_INTEGER)
		snprintf(err, errlen, "the write reached %lld of %d replicas in "
		    "time", r->integer, n);
	else
		snprintf(err, errlen, "WAIT: %.200s", r->type ==
		    REDIS_REPLY_ERROR ? r->str : "unexpected reply");
	mt_redis_note_reply(c, r);
	if (r)
		freeReplyObject(r);
	return rc;
}

int
mt_redis_note_reply(redisContext *c, const redisReply *r)
{
	static const char *const gone[] = { "READONLY", "MASTERDOWN",
	    "LOADING" };

	if (c == NULL || r == NULL || r->type != REDIS_REPLY_ERROR)
		return 0;
	for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++)
		if (strncmp(r->str, gone[i], strlen(gone[i])) == 0) {
			c->err = REDIS_ERR_OTHER;
			snprintf(c->errstr, sizeof(c->errstr), "%.100s", r->str);
			return 1;
		}
	return 0;
}

/* RedisSentinel: the master the Sentinels name, confirmed by ROLE. */
static redisContext *
connect_via_sentinels(const struct mt_config *cfg, char *err, size_t errlen)
{
	struct mt_redis_endpoint s[MT_SENTINELS_MAX], at;
	struct mt_sentinel_opts o = { cfg->redis_timeout_ms, cfg->redis_user,
	    cfg->redis_password };
	char why[512];
	redisContext *c;
	int n = mt_redis_parse_list(cfg->redis_sentinel, s, MT_SENTINELS_MAX);

	if (n < 0) {
		snprintf(err, errlen, "bad RedisSentinel \"%.200s\"",
		    cfg->redis_sentinel);
		return NULL;
	}
	c = mt_sentinel_connect(s, (size_t)n, cfg->redis_sentinel_master ?
	    cfg->redis_sentinel_master : "mymaster", &o, &at, why, sizeof(why));
	if (c == NULL)
		snprintf(err, errlen, "no master through the Sentinels: %s", why);
	return c;
}

redisContext *
mt_redis_connect(const struct mt_config *cfg, char *err, size_t errlen)
{
	char host[512];
	int port;
	const char *spec = cfg->redis_server ? cfg->redis_server
	    : "127.0.0.1:6379";

	if (cfg->redis_sentinel != NULL)
		return connect_via_sentinels(cfg, err, errlen);

	if (mt_redis_parse_server(spec, host, sizeof(host), &port) != 0) {
		snprintf(err, errlen, "bad RedisServer \"%.200s\"", spec);
		return NULL;
	}
	return mt_redis_connect_to(host, port, cfg->redis_timeout_ms,
	    cfg->redis_user, cfg->redis_password, err, errlen);
}

/* ---- connection pool ------------------------------------------------- */

#define POOL_MAX 8		/* idle connections kept for reuse */

struct mt_redis_pool {
	struct mt_config rcfg;	/* private copy of the redis_* settings */
	pthread_mutex_t mu;
	redisContext *idle[POOL_MAX];
	int nidle;
};

struct mt_redis_pool *
mt_redis_pool_new(const struct mt_config *cfg)
{
	struct mt_redis_pool *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	pthread_mutex_init(&p->mu, NULL);
	p->rcfg.redis_server = strdup(cfg->redis_server ? cfg->redis_server
	    : "127.0.0.1:6379");
	p->rcfg.redis_sentinel = cfg->redis_sentinel ?
	    strdup(cfg->redis_sentinel) : NULL;
	p->rcfg.redis_sentinel_master = strdup(cfg->redis_sentinel_master ?
	    cfg->redis_sentinel_master : "mymaster");
	p->rcfg.redis_user = cfg->redis_user ? strdup(cfg->redis_user) : NULL;
	p->rcfg.redis_password = cfg->redis_password ?
	    strdup(cfg->redis_password) : NULL;
	p->rcfg.redis_timeout_ms = cfg->redis_timeout_ms > 0 ?
	    cfg->redis_timeout_ms : DEFAULT_TIMEOUT_MS;
	if (p->rcfg.redis_server == NULL || !p->rcfg.redis_sentinel_master ||
	    (cfg->redis_sentinel && !p->rcfg.redis_sentinel) ||
	    (cfg->redis_user && !p->rcfg.redis_user) ||
	    (cfg->redis_password && !p->rcfg.redis_password)) {
		mt_redis_pool_free(p);
		return NULL;
	}
	return p;
}

redisContext *
mt_redis_pool_get(struct mt_redis_pool *p, char *err, size_t errlen)
{
	redisContext *c = NULL;

	pthread_mutex_lock(&p->mu);
	if (p->nidle > 0)
		c = p->idle[--p->nidle];
	pthread_mutex_unlock(&p->mu);
	return c ? c : mt_redis_connect(&p->rcfg, err, errlen);
}

void
mt_redis_pool_put(struct mt_redis_pool *p, redisContext *c)
{
	if (c == NULL)
		return;
	if (c->err == 0) {
		pthread_mutex_lock(&p->mu);
		if (p->nidle < POOL_MAX) {
			p->idle[p->nidle++] = c;
			c = NULL;
		}
		pthread_mutex_unlock(&p->mu);
	}
	if (c != NULL)
		redisFree(c);
}


int
mt_redis_pool_replicas(const struct mt_redis_pool *p)
{
	return p->rcfg.redis_sentinel != NULL ? 1 : 0;
}


void
mt_redis_pool_free(struct mt_redis_pool *p)
{
	if (p == NULL)
		return;
	for (int i = 0; i < p->nidle; i++)
		redisFree(p->idle[i]);
	free(p->rcfg.redis_server);
	free(p->rcfg.redis_sentinel);
	free(p->rcfg.redis_sentinel_master);
	free(p->rcfg.redis_user);
	if (p->rcfg.redis_password != NULL)
		explicit_bzero(p->rcfg.redis_password,
		    strlen(p->rcfg.redis_password));
	free(p->rcfg.redis_password);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

static int
script_sha(const char *script, size_t len, char out[41])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (!EVP_Digest(script, len, md, &n, EVP_sha1(), NULL) || n != 20)
		return -1;
	for (unsigned i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return 0;
}

int
mt_redis_script_init(struct mt_redis_script *s, const char *text)
{
	s->text = text;
	s->len = strlen(text);
	return script_sha(text, s->len, s->sha);
}

int
mt_redis_is_noscript(const redisReply *r)
{
	return r != NULL && r->type == REDIS_REPLY_ERROR &&
	    strncmp(r->str, "NOSCRIPT", 8) == 0;
}

