/*
 * Where trace records go: Redis when it answers within its timeout, else a
 * durable local spool that a background thread replays into Redis, oldest
 * first, once Redis is back. Library code: it never logs or exits; problems
 * reach the program through the report callback and errstr.
 */
#ifndef MT_STORE_H
#define MT_STORE_H

#include <stddef.h>

#include "record.h"

struct mt_config;
struct mt_store;

enum mt_store_result {
	MT_STORE_REDIS = 0,	/* written to Redis */
	MT_STORE_SPOOL = 1,	/* Redis unusable; spooled and fsync'ed */
	MT_STORE_FAILED = -1	/* neither worked: err says why */
};

/* prio is a syslog priority; msg a complete sentence without newline. */
typedef void mt_store_report_fn(int prio, const char *msg);

/* Does not connect yet; fails only on a bad RedisServer or SpoolDir. */
struct mt_store *mt_store_new(const struct mt_config *cfg,
    mt_store_report_fn *report, char *err, size_t errlen);
/* Starts the replayer thread (once per process is enough). 0 or -1. */
int mt_store_start_replayer(struct mt_store *st);
/* Thread-safe. Never blocks much longer than RedisTimeout. */
enum mt_store_result mt_store_put(struct mt_store *st,
    const struct mt_record *r, char *err, size_t errlen);
/* Stops the replayer and closes every connection. */
void mt_store_free(struct mt_store *st);

#endif
