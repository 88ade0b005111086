/*
 * Finding the Redis master through Sentinel: ask each Sentinel for the
 * master's address, connect, and believe it only when the server itself
 * says ROLE master (a Sentinel that has not seen a failover yet points
 * at a demoted replica). Library code: errors go into err.
 */
#ifndef MT_SENTINEL_H
#define MT_SENTINEL_H

#include <stddef.h>
#include <hiredis/hiredis.h>

#include "redis.h"

#define MT_SENTINELS_MAX 16

/* A SENTINEL get-master-addr-by-name reply: [host, port]. 0 or -1. */
int mt_sentinel_parse_master(const redisReply *r,
    struct mt_redis_endpoint *out);

/* A ROLE reply: 1 master, 0 anything else (replica, sentinel, garbage). */
int mt_sentinel_is_master(const redisReply *r);

struct mt_sentinel_opts {
	int timeout_ms;			/* connect and command */
	const char *user, *password;	/* AUTH on the master, NULL = none */
};

/*
 * Asks the Sentinels in turn for master `name`, connects to it, AUTHs and
 * checks ROLE. A ready context, with the address in *at, or NULL with err
 * saying what the last step found.
 */
redisContext *mt_sentinel_connect(const struct mt_redis_endpoint *sentinels,
    size_t n, const char *name, const struct mt_sentinel_opts *o,
    struct mt_redis_endpoint *at, char *err, size_t errlen);

#endif
