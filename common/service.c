/*
 * The daemons' life cycle (service.h): options, the configuration in
 * service behind one lock, reload on SIGHUP, and the sigwait loop that
 * owns the signals on the main thread.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "daemon.h"
#include "log.h"
#include "service.h"

static pthread_mutex_t service_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mt_config *service_config;	/* under service_lock */
static int service_stopping;			/* __atomic */
static pthread_t service_main;			/* set before threads exist */
static int service_main_known;
static char *service_pidfile;			/* the PidFile we wrote */

static void __attribute__((noreturn))
usage(const struct mt_service *svc, FILE *fp, int status)
{
	fprintf(fp, "usage: %s [-c FILE] [-f] [-n]\n"
	    "  -c FILE  configuration (default %s)\n"
	    "  -f       stay in the foreground, log to stderr too\n"
	    "  -n       check the configuration and exit\n"
	    "  -h       this text\n", svc->name, MT_CONFIG_DEFAULT);
	exit(status);
}

void
mt_service_options(struct mt_service *svc, int argc, char **argv)
{
	int opt;

	svc->config_path = MT_CONFIG_DEFAULT;
	for (opt = 1; opt < argc && strcmp(argv[opt], "--") != 0; opt++)
		if (strcmp(argv[opt], "--help") == 0)
			usage(svc, stdout, 0);
	while ((opt = getopt(argc, argv, "c:fnh")) != -1) {
		switch (opt) {
		case 'c': svc->config_path = optarg; break;
		case 'f': svc->foreground = 1; break;
		case 'n': svc->check = 1; break;
		case 'h': usage(svc, stdout, 0);
		default: usage(svc, stderr, 2);
		}
	}
	if (optind != argc)
		usage(svc, stderr, 2);
}

/* ", " or ": " and the program's words for cfg, or "" without them. */
static void
describe(const struct mt_service *svc, const struct mt_config *cfg,
    const char *sep, char *buf, size_t len)
{
	char words[256] = "";

	if (svc->describe != NULL)
		svc->describe(cfg, words, sizeof(words));
	snprintf(buf, len, "%s%s", words[0] ? sep : "", words);
}

/* The file, loaded and (with attach) attached; NULL with err. */
static struct mt_config *
load(const struct mt_service *svc, int attach, char *err, size_t errlen)
{
	struct mt_config *cfg = mt_config_load(svc->config_path,
	    svc->need_secret, err, errlen);

	if (cfg == NULL)
		return NULL;
	if (attach && svc->attach != NULL &&
	    svc->attach(cfg, err, errlen) < 0) {
		mt_config_unref(cfg);
		return NULL;
	}
	return cfg;
}

/* -n: what the file says must also work for UserID and for Postfix. */
static void
check_access(const struct mt_service *svc, const struct mt_config *cfg)
{
	char problems[4096], user[256];
	uid_t uid = 0;
	gid_t gid = 0;
	int have_user = 0;

	if (cfg->userid != NULL) {
		if (mt_daemon_user(cfg->userid, &uid, &gid, user,
		    sizeof(user)) < 0) {
			fprintf(stderr, "%s: %s: UserID %s: no such user or "
			    "group\n", svc->name, svc->config_path, cfg->userid);
			exit(1);
		}
		have_user = 1;
	}
	if (mt_daemon_check_access(cfg, svc->check_spool, svc->socket_of ?
	    svc->socket_of(cfg) : NULL, svc->socket_key ? svc->socket_key :
	    "Socket", have_user, uid, gid, "postfix", problems,
	    sizeof(problems)) > 0) {
		fprintf(stderr, "%s: %s: the file is valid, but:\n%s", svc->name,
		    svc->config_path, problems);
		exit(1);
	}
}

struct mt_config *
mt_service_load(struct mt_service *svc, int attach)
{
	char err[1024], words[260];
	struct mt_config *cfg = load(svc, attach, err, sizeof(err));

	if (cfg == NULL) {
		fprintf(stderr, "%s: %s\n", svc->name, err);
		exit(1);
	}
	if (svc->check) {
		check_access(svc, cfg);
		describe(svc, cfg, ", ", words, sizeof(words));
		printf("%s: configuration OK%s\n", svc->config_path, words);
		mt_config_unref(cfg);
		exit(0);
	}
	return cfg;
}

void
mt_service_block_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	service_main = pthread_self();
	service_main_known = 1;
}

void
mt_service_begin(struct mt_service *svc, const struct mt_config *cfg)
{
	mt_log_open(svc->name, svc->foreground);
	svc->have_user = 0;
	if (cfg->userid != NULL) {
		if (mt_daemon_user(cfg->userid, &svc->uid, &svc->gid, svc->user,
		    sizeof(svc->user)) < 0)
			mt_fatal("UserID %s: no such user or group", cfg->userid);
		svc->have_user = 1;
	}
	if (!svc->foreground)
		mt_daemon_detach();
	/* After the fork: the thread that waits is the child's. */
	mt_service_block_signals();
	if (svc->use_pidfile && cfg->pidfile != NULL) {
		mt_daemon_pidfile(cfg->pidfile);
		if ((service_pidfile = strdup(cfg->pidfile)) == NULL)
			mt_fatal("out of memory");
	}
}

void
mt_service_drop(const struct mt_service *svc)
{
	if (svc->have_user)
		mt_daemon_drop(svc->user, svc->uid, svc->gid);
}

void
mt_service_install(struct mt_service *svc, struct mt_config *cfg)
{
	char err[1024];
	struct mt_config *old;

	if (svc->attach != NULL && cfg->owner == NULL &&
	    svc->attach(cfg, err, sizeof(err)) < 0)
		mt_fatal("%s", err);
	pthread_mutex_lock(&service_lock);
	old = service_config;
	service_config = cfg;
	pthread_mutex_unlock(&service_lock);
	mt_config_unref(old);
}

struct mt_config *
mt_service_config(void)
{
	struct mt_config *c;

	pthread_mutex_lock(&service_lock);
	c = service_config ? mt_config_ref(service_config) : NULL;
	pthread_mutex_unlock(&service_lock);
	return c;
}

int
mt_service_reload(struct mt_service *svc)
{
	char err[1024], words[260];
	struct mt_config *fresh = load(svc, 1, err, sizeof(err));
	struct mt_config *old;
	const char *was, *now;

	if (fresh == NULL) {
		mt_log(LOG_WARNING, "reload failed, keeping the configuration "
		    "in service: %s", err);
		return -1;
	}
	pthread_mutex_lock(&service_lock);
	old = service_config;
	if (svc->on_reload != NULL && old != NULL)
		svc->on_reload(old, fresh);
	service_config = fresh;
	pthread_mutex_unlock(&service_lock);
	if (svc->socket_of != NULL && old != NULL) {
		was = svc->socket_of(old);
		now = svc->socket_of(fresh);
		if (strcmp(was, now) != 0)
			mt_log(LOG_WARNING, "%s changed to %s: takes effect at "
			    "the next restart", svc->socket_key ? svc->socket_key :
			    "Socket", now);
	}
	/* Connections in flight still hold references to the old one. */
	mt_config_unref(old);
	describe(svc, fresh, ": ", words, sizeof(words));
	mt_log(LOG_INFO, "configuration reloaded from %s%s", svc->config_path,
	    words);
	return 0;
}

int
mt_service_wait(struct mt_service *svc)
{
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	for (;;) {
		if (__atomic_load_n(&service_stopping, __ATOMIC_SEQ_CST))
			return 0;
		if (sigwait(&set, &sig) != 0)
			continue;
		if (__atomic_load_n(&service_stopping, __ATOMIC_SEQ_CST))
			return 0;
		if (sig != SIGHUP)
			return sig;
		mt_service_reload(svc);
	}
}

void
mt_service_stop(void)
{
	__atomic_store_n(&service_stopping, 1, __ATOMIC_SEQ_CST);
	/* Wakes the sigwait; both calls are async-signal-safe. */
	if (service_main_known)
		pthread_kill(service_main, SIGTERM);
	else
		kill(getpid(), SIGTERM);
}

void
mt_service_end(struct mt_service *svc)
{
	struct mt_config *cfg;

	(void)svc;
	if (service_pidfile != NULL) {
		unlink(service_pidfile);
		free(service_pidfile);
		service_pidfile = NULL;
	}
	pthread_mutex_lock(&service_lock);
	cfg = service_config;
	service_config = NULL;
	pthread_mutex_unlock(&service_lock);
	mt_config_unref(cfg);
	closelog();
}
