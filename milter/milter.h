/*
 * The daemon's internals shared between its files: the configuration in
 * service (swapped on SIGHUP), the engine's filter (callbacks.c) and the log
 * line.
 */
#ifndef MT_MILTER_H
#define MT_MILTER_H

#include "../common/config.h"
#include "../engine/engine.h"
#include "../geo/geo.h"
#include "../state/record.h"
#include "../state/store.h"

struct mt_events;

/* What the daemon hangs on each configuration it has loaded. */
struct mt_runtime {
	struct mt_store *store;
	struct mt_geo *geo;		/* NULL without GeoDB */
	struct mt_events *events;	/* read receipts (receipt.c) */
};

static inline struct mt_runtime *
mt_runtime_of(const struct mt_config *cfg)
{
	return cfg->owner;
}

extern const struct mt_eng_filter mt_milter_filter;

/* The one line per accepted message, kv or json as configured. */
void mt_logline(const struct mt_config *cfg, const struct mt_record *r,
    int tracked, enum mt_store_result stored);

#endif
