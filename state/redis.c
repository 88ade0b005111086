/*
 * Connecting to the configured Redis: parse RedisServer, connect within
 * RedisTimeout, set the same timeout for every command, AUTH when a password
 * is configured. Library code: errors go into err, never into a log.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "redis.h"
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

/* AUTH with "user password" (ACL) or just "password"; 0 or -1. */
static int
redis_auth(redisContext *c, const struct mt_config *cfg, char *err,
    size_t errlen)
{
	redisReply *rep;
	int rc = 0;

	if (cfg->redis_user != NULL)
		rep = redisCommand(c, "AUTH %s %s", cfg->redis_user,
		    cfg->redis_password);
	else
		rep = redisCommand(c, "AUTH %s", cfg->redis_password);
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
mt_redis_connect(const struct mt_config *cfg, char *err, size_t errlen)
{
	char host[512];
	int port, ms;
	struct timeval tv;
	redisContext *c;
	const char *spec = cfg->redis_server ? cfg->redis_server
	    : "127.0.0.1:6379";

	if (mt_redis_parse_server(spec, host, sizeof(host), &port) != 0) {
		snprintf(err, errlen, "bad RedisServer \"%.200s\"", spec);
		return NULL;
	}
	ms = cfg->redis_timeout_ms > 0 ? cfg->redis_timeout_ms
	    : DEFAULT_TIMEOUT_MS;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
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
	if (cfg->redis_password != NULL && redis_auth(c, cfg, err, errlen)) {
		redisFree(c);
		return NULL;
	}
	return c;
}
