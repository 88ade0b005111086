/*
 * mailtrail-milter: start-up and wiring. The daemon skeleton
 * (common/service.h) owns options, the configuration in service, reload
 * and signals; the engine's loop and worker threads serve the milter
 * socket; a watcher swaps replaced GeoDB files.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/daemon.h"
#include "../common/service.h"
#include "../common/log.h"
#include "../mdn/mdn.h"
#include "../state/db.h"
#include "../state/events.h"
#include "milter.h"

static void
store_report(int prio, const char *msg)
{
	mt_log(prio, "%s", msg);
}

static void
runtime_free(struct mt_config *cfg)
{
	struct mt_runtime *rt = cfg->owner;

	if (rt == NULL)
		return;
	mt_store_free(rt->store);
	mt_events_free(rt->events);
	mt_geo_free(rt->geo);
	free(rt);
	cfg->owner = NULL;
}

/* Gives a loaded configuration its store (and replayer); 0 or -1. */
static int
runtime_attach(struct mt_config *cfg, char *err, size_t errlen)
{
	struct mt_runtime *rt = calloc(1, sizeof(*rt));

	if (rt == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (cfg->n_geodb > 0) {
		rt->geo = mt_geo_open(cfg->geodb, cfg->n_geodb, err, errlen);
		if (rt->geo == NULL) {
			free(rt);
			return -1;
		}
	}
	rt->store = mt_store_new(cfg, store_report, err, errlen);
	if (rt->store == NULL) {
		mt_geo_free(rt->geo);
		free(rt);
		return -1;
	}
	if (mt_store_start_replayer(rt->store) < 0) {
		snprintf(err, errlen, "cannot start the spool replayer");
		mt_store_free(rt->store);
		mt_geo_free(rt->geo);
		free(rt);
		return -1;
	}
	/* Read receipts: a connection pool, no connection made yet. */
	rt->events = mt_events_new(cfg, err, errlen);
	if (rt->events == NULL) {
		mt_store_free(rt->store);
		mt_geo_free(rt->geo);
		free(rt);
		return -1;
	}
	cfg->owner = rt;
	cfg->on_free = runtime_free;
	return 0;
}

static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t watch_cond = PTHREAD_COND_INITIALIZER;
static int watch_stop;

/*
 * GeoDB updaters replace files by rename; every two seconds the files in
 * service are compared with what is on disk and swapped when they differ.
 */
static void *
geo_watch_thread(void *arg)
{
	struct timespec ts;

	(void)arg;
	pthread_mutex_lock(&watch_lock);
	while (!watch_stop) {
		struct mt_config *cfg;
		char err[512];
		int n;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 2;
		pthread_cond_timedwait(&watch_cond, &watch_lock, &ts);
		if (watch_stop)
			break;
		pthread_mutex_unlock(&watch_lock);
		cfg = mt_service_config();
		n = mt_geo_refresh(mt_runtime_of(cfg)->geo, 0, err, sizeof(err));
		if (n < 0)
			mt_log(LOG_WARNING, "GeoDB: cannot open the new file, "
			    "keeping the old one in service: %s", err);
		else if (n > 0)
			mt_log(LOG_INFO, "GeoDB: %d replaced file(s) now in "
			    "service", n);
		mt_config_unref(cfg);
		pthread_mutex_lock(&watch_lock);
	}
	pthread_mutex_unlock(&watch_lock);
	return NULL;
}

static void
engine_report(int prio, const char *msg)
{
	mt_log(prio, "%s", msg);
}

static const char *
socket_of(const struct mt_config *cfg)
{
	return cfg->socket;
}

static void
describe(const struct mt_config *cfg, char *buf, size_t len)
{
	snprintf(buf, len, "redis %s%s", cfg->redis_cluster ? "Cluster " :
	    cfg->redis_sentinel ? "via Sentinels " : "", cfg->redis_cluster ?
	    cfg->redis_cluster : cfg->redis_sentinel ? cfg->redis_sentinel :
	    cfg->redis_server);
}

static void
geo_watch_stop(pthread_t watch)
{
	pthread_mutex_lock(&watch_lock);
	watch_stop = 1;
	pthread_cond_signal(&watch_cond);
	pthread_mutex_unlock(&watch_lock);
	pthread_join(watch, NULL);
}

/*
 * Says at start whether Redis answers, rather than leaving the admin to
 * learn it from the first message: without it records wait in the spool.
 */
static void
redis_probe(const struct mt_config *cfg, char *buf, size_t len)
{
	char err[300];
	struct mt_db *db = mt_db_new(cfg, err, sizeof(err));

	if (db == NULL || mt_db_ping(db, err, sizeof(err)) != 0)
		snprintf(buf, len, "redis not answering (%.300s): records wait "
		    "in the spool until it does", err);
	else
		snprintf(buf, len, "redis answered");
	if (db != NULL)
		mt_db_free(db);
}

int
main(int argc, char **argv)
{
	struct mt_service svc = {
		.name = "mailtrail-milter", .need_secret = 1,
		.use_pidfile = 1, .attach = runtime_attach,
		.describe = describe, .socket_of = socket_of,
		.socket_key = "Socket", .check_spool = 1,
	};
	struct mt_eng_opts opts = { .report = engine_report };
	struct mt_config *cfg;
	struct mt_eng *eng;
	pthread_t watch;
	char err[256], what[512], probe[400];
	int fd;

	mt_service_options(&svc, argc, argv);
	cfg = mt_service_load(&svc, 0);
	mt_service_begin(&svc, cfg);
	mt_daemon_make_dir(cfg->spool_dir, 0750, svc.have_user, svc.uid,
	    svc.gid);
	fd = mt_listen(cfg->socket, cfg, svc.have_user, svc.uid, svc.gid,
	    "Socket");
	mt_service_drop(&svc);
	mt_mdn_init();		/* GMime, before any callback thread */
	mt_service_install(&svc, cfg);	/* the store's replayer starts here */
	describe(cfg, what, sizeof(what));
	redis_probe(cfg, probe, sizeof(probe));
	mt_log(LOG_INFO, "starting: socket %s, %s, spool %s, %s", cfg->socket,
	    what, cfg->spool_dir, probe);
	eng = mt_eng_start(fd, &mt_milter_filter, &opts, err, sizeof(err));
	if (eng == NULL)
		mt_fatal("cannot start the milter engine: %s", err);
	if (pthread_create(&watch, NULL, geo_watch_thread, NULL) != 0)
		mt_fatal("cannot start the GeoDB watcher");
	mt_service_wait(&svc);	/* SIGHUP reloads; SIGTERM, SIGINT end */
	mt_eng_stop(eng);
	close(fd);
	geo_watch_stop(watch);
	mt_log(LOG_INFO, "stopping");
	mt_service_end(&svc);
	mt_mdn_shutdown();
	return 0;
}
