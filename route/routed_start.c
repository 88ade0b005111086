/*
 * mailtrail-routed start-up: the routes and selector each loaded
 * configuration carries, and the hooks that give common/service.c's
 * skeleton (options, reload, signals) the routed's own behaviour.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/config.h"
#include "../common/daemon.h"
#include "../common/log.h"
#include "../common/service.h"
#include "route.h"
#include "routed.h"

static void
runtime_free(struct mt_config *cfg)
{
	struct routed_rt *rt = cfg->owner;

	if (rt == NULL)
		return;
	mt_selector_free(rt->sel);
	mt_routes_free(&rt->routes);
	free(rt);
	cfg->owner = NULL;
}

static int
runtime_attach(struct mt_config *cfg, char *err, size_t errlen)
{
	struct routed_rt *rt = calloc(1, sizeof(*rt));

	if (rt == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (mt_routes_load(cfg, &rt->routes, err, errlen) < 0) {
		free(rt);
		return -1;
	}
	rt->sel = mt_selector_new(&rt->routes, cfg->route_sticky);
	if (rt->sel == NULL) {
		mt_routes_free(&rt->routes);
		free(rt);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	mt_selector_set_health_known(rt->sel, 0);
	cfg->owner = rt;
	cfg->on_free = runtime_free;
	return 0;
}

static void
describe_routes(const struct mt_config *cfg, char *buf, size_t len)
{
	snprintf(buf, len, "%zu routes", routed_rt_of(cfg)->routes.n);
}

/* Health states carry over by route name until the refresher reads them. */
static void
take_over_health(struct mt_config *old, struct mt_config *fresh)
{
	mt_selector_copy_states(routed_rt_of(fresh)->sel,
	    routed_rt_of(old)->sel);
	routed_refresh_soon();
}

static const char *
route_socket_of(const struct mt_config *cfg)
{
	return cfg->route_socket;
}

int
main(int argc, char **argv)
{
	struct mt_service svc = {
		.name = "mailtrail-routed",
		.need_secret = 0,
		.attach = runtime_attach,
		.describe = describe_routes,
		.on_reload = take_over_health,
		.socket_of = route_socket_of,
		.socket_key = "RouteSocket",
	};
	struct mt_config *cfg;
	int fd;

	mt_service_options(&svc, argc, argv);
	/* Attached at once: -n checks the Route lines too. */
	cfg = mt_service_load(&svc, 1);
	mt_service_begin(&svc, cfg);
	if (routed_rt_of(cfg)->routes.n == 0)
		mt_log(LOG_WARNING, "no Route lines in %s: every lookup "
		    "answers %s", svc.config_path, cfg->route_fail_closed ?
		    "TEMP" : "NOTFOUND");
	fd = mt_listen(cfg->route_socket, cfg, svc.have_user,
	    svc.uid, svc.gid, "RouteSocket");
	mt_service_drop(&svc);
	mt_log(LOG_INFO, "starting: socket %s, %zu routes, redis %s%s, %s",
	    cfg->route_socket, routed_rt_of(cfg)->routes.n, cfg->redis_cluster ?
	    "Cluster " : cfg->redis_sentinel ? "via Sentinels " : "",
	    cfg->redis_cluster ? cfg->redis_cluster : cfg->redis_sentinel ?
	    cfg->redis_sentinel : cfg->redis_server,
	    cfg->route_fail_closed ? "fail-closed" : "fail-open");
	mt_service_install(&svc, cfg);
	routed_serve(&svc, fd);
	mt_log(LOG_INFO, "stopping");
	mt_service_end(&svc);
	return 0;
}
