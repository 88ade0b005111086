/*
 * Sentinel as a directory of one master: SENTINEL get-master-addr-by-name
 * on each Sentinel in turn, then ROLE on the address it gives. During a
 * failover the answers disagree for a few seconds; the caller's spool
 * covers that, so here a wrong answer is simply the next Sentinel's turn.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "sentinel.h"

int
mt_sentinel_parse_master(const redisReply *r, struct mt_redis_endpoint *out)
{
	const redisReply *h, *p;
	long port = 0;

	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2)
		return -1;
	h = r->element[0];
	p = r->element[1];
	if (h->type != REDIS_REPLY_STRING || p->type != REDIS_REPLY_STRING ||
	    h->len == 0 || h->len >= sizeof(out->host) || p->len == 0 ||
	    p->len > 5)
		return -1;
	for (size_t i = 0; i < h->len; i++)
		if (!isalnum((unsigned char)h->str[i]) && h->str[i] != '.' &&
		    h->str[i] != '-' && h->str[i] != ':' && h->str[i] != '_')
			return -1;
	for (size_t i = 0; i < p->len; i++) {
		if (!isdigit((unsigned char)p->str[i]))
			return -1;
		port = port * 10 + (p->str[i] - '0');
	}
	if (port < 1 || port > 65535)
		return -1;
	memcpy(out->host, h->str, h->len);
	out->host[h->len] = '\0';
	out->port = (int)port;
	return 0;
}

int
mt_sentinel_is_master(const redisReply *r)
{
	const redisReply *role;

	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 1)
		return 0;
	role = r->element[0];
	return role->type == REDIS_REPLY_STRING && role->len == 6 &&
	    memcmp(role->str, "master", 6) == 0;
}

/* What one Sentinel says the master is: 0 with *at, or -1 with err. */
static int
ask_sentinel(const struct mt_redis_endpoint *s, const char *name,
    int timeout_ms, struct mt_redis_endpoint *at, char *err, size_t errlen)
{
	char why[256];
	redisContext *c = mt_redis_connect_to(s->host, s->port, timeout_ms,
	    NULL, NULL, why, sizeof(why));
	redisReply *r;
	int rc = -1;

	if (c == NULL) {
		snprintf(err, errlen, "Sentinel %s:%d: %s", s->host, s->port, why);
		return -1;
	}
	r = redisCommand(c, "SENTINEL get-master-addr-by-name %s", name);
	if (r == NULL)
		snprintf(err, errlen, "Sentinel %s:%d: %s", s->host, s->port,
		    c->errstr);
	else if (mt_sentinel_parse_master(r, at) == 0)
		rc = 0;
	else
		snprintf(err, errlen, "Sentinel %s:%d knows no master \"%.100s\"",
		    s->host, s->port, name);
	if (r)
		freeReplyObject(r);
	redisFree(c);
	return rc;
}

/* Connects to the address and checks that it is the master now. */
static redisContext *
confirm_master(const struct mt_redis_endpoint *at,
    const struct mt_sentinel_opts *o, char *err, size_t errlen)
{
	char why[256];
	redisContext *c = mt_redis_connect_to(at->host, at->port, o->timeout_ms,
	    o->user, o->password, why, sizeof(why));
	redisReply *r;
	int master;

	if (c == NULL) {
		snprintf(err, errlen, "master %s:%d: %s", at->host, at->port, why);
		return NULL;
	}
	r = redisCommand(c, "ROLE");
	master = mt_sentinel_is_master(r);
	if (r)
		freeReplyObject(r);
	if (!master) {
		snprintf(err, errlen, "%s:%d is not a master (yet): a failover "
		    "is under way", at->host, at->port);
		redisFree(c);
		return NULL;
	}
	return c;
}

redisContext *
mt_sentinel_connect(const struct mt_redis_endpoint *sentinels, size_t n,
    const char *name, const struct mt_sentinel_opts *o,
    struct mt_redis_endpoint *at, char *err, size_t errlen)
{
	redisContext *c;

	snprintf(err, errlen, "no Sentinel given");
	for (size_t i = 0; i < n; i++) {
		if (ask_sentinel(&sentinels[i], name, o->timeout_ms, at, err,
		    errlen) < 0)
			continue;
		if ((c = confirm_master(at, o, err, errlen)) != NULL)
			return c;
	}
	return NULL;
}
