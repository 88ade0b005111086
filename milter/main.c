/*
 * mailtrail-milter: start-up, privileges, signals and reload. The milter
 * itself runs in a thread of its own so that this main thread can own the
 * signals: libmilter's signal thread treats SIGHUP as "stop", and we want
 * it to mean "reload".
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
#include "../common/log.h"
#include "../mdn/mdn.h"
#include "../state/events.h"
#include "milter.h"

static pthread_mutex_t config_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mt_config *config_current;
static volatile int milter_finished;

struct mt_config *
mt_daemon_config(void)
{
	struct mt_config *c;

	pthread_mutex_lock(&config_lock);
	c = mt_config_ref(config_current);
	pthread_mutex_unlock(&config_lock);
	return c;
}

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

static const char *
unix_socket_path(const char *sock)
{
	if (strncmp(sock, "unix:", 5) == 0)
		return sock + 5;
	if (strncmp(sock, "local:", 6) == 0)
		return sock + 6;
	return NULL;
}

static void
open_socket(const struct mt_config *cfg, int have_user, uid_t uid, gid_t gid)
{
	const char *path = unix_socket_path(cfg->socket);
	struct mt_socket_guard g;
	mode_t old = 0;

	if (smfi_setconn(cfg->socket) == MI_FAILURE)
		mt_fatal("bad Socket %s", cfg->socket);
	if (smfi_register(mt_milter_desc) == MI_FAILURE)
		mt_fatal("smfi_register failed");
	/* libmilter removes a stale socket and binds: both inside the guard. */
	if (path)
		mt_daemon_socket_begin(&g, path, cfg->umask, have_user, uid, gid);
	else
		old = umask(cfg->umask);
	if (smfi_opensocket(1) == MI_FAILURE)
		mt_fatal("cannot open milter socket %s: %s", cfg->socket,
		    strerror(errno));
	if (path)
		mt_daemon_socket_end(&g);
	else
		umask(old);
}

static void
reload(const char *path)
{
	char err[1024];
	struct mt_config *fresh = mt_config_load(path, 1, err, sizeof(err));
	struct mt_config *old;

	if (fresh == NULL) {
		mt_log(LOG_WARNING, "reload failed, keeping the configuration "
		    "in service: %s", err);
		return;
	}
	if (runtime_attach(fresh, err, sizeof(err)) < 0) {
		mt_log(LOG_WARNING, "reload failed, keeping the configuration "
		    "in service: %s", err);
		mt_config_unref(fresh);
		return;
	}
	pthread_mutex_lock(&config_lock);
	old = config_current;
	config_current = fresh;
	pthread_mutex_unlock(&config_lock);
	if (strcmp(old->socket, fresh->socket) != 0)
		mt_log(LOG_WARNING, "Socket changed to %s: takes effect at the "
		    "next restart", fresh->socket);
	/* Connections in flight still hold references to the old one. */
	mt_config_unref(old);
	mt_log(LOG_INFO, "configuration reloaded from %s", path);
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
		cfg = mt_daemon_config();
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

static void *
milter_thread(void *arg)
{
	int *rc = arg;

	*rc = smfi_main();
	milter_finished = 1;
	kill(getpid(), SIGTERM);	/* wake the main thread's sigwait */
	return NULL;
}

static void
usage(void)
{
	fprintf(stderr, "usage: mailtrail-milter [-c FILE] [-f] [-n]\n"
	    "  -c FILE  configuration (default %s)\n"
	    "  -f       stay in the foreground, log to stderr too\n"
	    "  -n       check the configuration and exit\n", MT_CONFIG_DEFAULT);
	exit(2);
}

/*
 * SIGHUP, SIGTERM, SIGINT are for the main thread's sigwait only. Blocked
 * before any thread exists (the store's replayer included), so every
 * thread inherits the mask and none takes the default action.
 */
static void
block_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static int
serve(const char *path)
{
	sigset_t set;
	pthread_t tid, watch;
	int rc = MI_FAILURE, sig;

	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	/* Blocked before any thread exists, so every thread inherits it. */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (pthread_create(&tid, NULL, milter_thread, &rc) != 0)
		mt_fatal("cannot start the milter thread");
	if (pthread_create(&watch, NULL, geo_watch_thread, NULL) != 0)
		mt_fatal("cannot start the GeoDB watcher");
	/*
	 * Linux hands a process-directed signal to the main thread when it
	 * accepts it, so this sigwait sees kill(pid) before libmilter's.
	 */
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP && !milter_finished) {
			reload(path);
			continue;
		}
		break;
	}
	if (!milter_finished)
		smfi_stop();
	pthread_join(tid, NULL);
	pthread_mutex_lock(&watch_lock);
	watch_stop = 1;
	pthread_cond_signal(&watch_cond);
	pthread_mutex_unlock(&watch_lock);
	pthread_join(watch, NULL);
	return rc == MI_SUCCESS ? 0 : 1;
}

int
main(int argc, char **argv)
{
	const char *path = MT_CONFIG_DEFAULT;
	int foreground = 0, check = 0, opt, have_user = 0, rc;
	char err[1024], name[256];
	uid_t uid = 0;
	gid_t gid = 0;
	struct mt_config *cfg;

	while ((opt = getopt(argc, argv, "c:fnh")) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case 'f': foreground = 1; break;
		case 'n': check = 1; break;
		default: usage();
		}
	}
	if (optind != argc)
		usage();
	cfg = mt_config_load(path, 1, err, sizeof(err));
	if (cfg == NULL) {
		fprintf(stderr, "mailtrail-milter: %s\n", err);
		return 1;
	}
	if (check) {
		printf("%s: configuration OK\n", path);
		mt_config_unref(cfg);
		return 0;
	}
	mt_log_open("mailtrail-milter", foreground);
	if (cfg->userid) {
		if (mt_daemon_user(cfg->userid, &uid, &gid, name, sizeof(name)) < 0)
			mt_fatal("UserID %s: no such user or group", cfg->userid);
		have_user = 1;
	}
	if (!foreground)
		mt_daemon_detach();
	mt_daemon_make_dir(cfg->spool_dir, 0750, have_user, uid, gid);
	if (cfg->pidfile)
		mt_daemon_pidfile(cfg->pidfile);
	open_socket(cfg, have_user, uid, gid);
	if (have_user)
		mt_daemon_drop(name, uid, gid);
	mt_mdn_init();		/* GMime, before any callback thread */
	block_signals();	/* before the replayer thread starts */
	if (runtime_attach(cfg, err, sizeof(err)) < 0)
		mt_fatal("%s", err);
	config_current = cfg;
	mt_log(LOG_INFO, "starting: socket %s, redis %s%s, spool %s",
	    cfg->socket, cfg->redis_cluster ? "Cluster " : cfg->redis_sentinel
	    ? "via Sentinels " : "", cfg->redis_cluster ? cfg->redis_cluster :
	    cfg->redis_sentinel ? cfg->redis_sentinel : cfg->redis_server,
	    cfg->spool_dir);
	rc = serve(path);
	mt_log(rc == 0 ? LOG_INFO : LOG_ERR, "stopping%s",
	    rc == 0 ? "" : ": the milter loop failed");
	if (config_current->pidfile)
		unlink(config_current->pidfile);
	mt_config_unref(config_current);
	mt_mdn_shutdown();
	closelog();
	return rc;
}
