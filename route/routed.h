/*
 * mailtrail-routed's two halves: routed_start.c (main, the runtime each
 * configuration carries, the service hooks) and routed.c (the serving
 * threads). Program code: may exit.
 */
#ifndef MT_ROUTED_H
#define MT_ROUTED_H

#include "../common/config.h"
#include "route.h"

struct mt_service;

/* What mailtrail-routed hangs on each configuration it has loaded. */
struct routed_rt {
	struct mt_routes routes;
	struct mt_selector *sel;
};

static inline struct routed_rt *
routed_rt_of(const struct mt_config *cfg)
{
	return cfg->owner;
}

/*
 * Serves socketmap lookups on listen_fd with the configuration in service
 * until mt_service_wait returns, then stops every thread and closes
 * listen_fd.
 */
void routed_serve(struct mt_service *svc, int listen_fd);
/* Makes the health refresher read Redis now (after a reload). */
void routed_refresh_soon(void);

#endif
