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

/* A ready context (authenticated, timeouts set) or NULL with err filled. */
redisContext *mt_redis_connect(const struct mt_config *cfg, char *err,
    size_t errlen);

#endif
