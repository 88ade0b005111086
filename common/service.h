/*
 * The daemon skeleton mailtrail-milter and mailtrail-routed share: options
 * (-c FILE -f -n -h), the configuration in service with the program's
 * runtime hung on each loaded snapshot, SIGHUP reload that keeps the old
 * snapshot when the new one fails, and the main thread's signal loop.
 * Start-up code: where a function says so, it ends the process. One
 * service per process (the configuration in service is a global).
 *
 * A program's main, in order:
 *   mt_service_options   -c -f -n -h
 *   mt_service_load      the file (and attach); with -n: "OK", exit 0
 *   mt_service_begin     log, UserID, detach, signals blocked, PidFile
 *   mt_listen            its socket (daemon.h), with svc.have_user/uid/gid
 *   mt_service_drop      becomes UserID
 *   mt_service_install   attach (if load did not) and put into service
 *   ...start the serving threads...
 *   mt_service_wait      SIGHUP reloads; returns on SIGTERM/SIGINT/stop
 *   ...stop the serving threads...
 *   mt_service_end       PidFile removed, configuration released
 */
#ifndef MT_SERVICE_H
#define MT_SERVICE_H

#include <stddef.h>
#include <sys/types.h>

struct mt_config;

struct mt_service {
	/* Set by the program. */
	const char *name;	/* "mailtrail-routed": usage, log ident */
	int need_secret;	/* mt_config_load's need_secret */
	int use_pidfile;	/* write PidFile at begin, remove it at end */
	/*
	 * Hangs the program's state on a freshly loaded configuration: sets
	 * cfg->owner (never NULL) and cfg->on_free, which the last
	 * mt_config_unref runs. 0, or -1 with err. NULL: nothing to hang.
	 */
	int (*attach)(struct mt_config *cfg, char *err, size_t errlen);
	/* Optional: a few words for "configuration OK, ..." and reload lines. */
	void (*describe)(const struct mt_config *cfg, char *buf, size_t len);
	/*
	 * Optional: on reload, fresh (attached) is about to replace old, which
	 * is still in service: take over run-time state, wake threads that
	 * should look at fresh (their mt_service_config waits for the swap).
	 * Runs under the service lock: must not block or call
	 * mt_service_config.
	 */
	void (*on_reload)(struct mt_config *old, struct mt_config *fresh);
	/* Optional: the socket only a restart moves, and its key's name. */
	const char *(*socket_of)(const struct mt_config *cfg);
	const char *socket_key;	/* "Socket", "RouteSocket" */
	int check_spool;	/* -n checks that UserID can write SpoolDir */

	/* Set by mt_service_options. */
	const char *config_path;	/* -c, default MT_CONFIG_DEFAULT */
	int foreground;			/* -f */
	int check;			/* -n */
	/* Set by mt_service_begin from UserID. */
	int have_user;
	uid_t uid;
	gid_t gid;
	char user[256];
};

/*
 * -c FILE, -f, -n; -h prints the usage on stdout and exits 0, anything
 * else (an unknown option, an argument) prints it on stderr and exits 2.
 */
void mt_service_options(struct mt_service *svc, int argc, char **argv);
/*
 * Loads svc->config_path, and with attach runs svc->attach on it too. On
 * error prints "NAME: FILE:LINE: what" on stderr and exits 1. With -n
 * prints "FILE: configuration OK[, describe]" and exits 0. Else returns
 * the configuration (one reference, for mt_service_install).
 */
struct mt_config *mt_service_load(struct mt_service *svc, int attach);
/*
 * Opens the log (stderr too with -f), looks UserID up into svc, detaches
 * unless -f, blocks the signals (mt_service_block_signals) and, with
 * use_pidfile, writes PidFile. Ends the process on failure.
 */
void mt_service_begin(struct mt_service *svc, const struct mt_config *cfg);
/* Becomes UserID for good when there is one; ends the process on failure. */
void mt_service_drop(const struct mt_service *svc);
/*
 * Blocks SIGHUP, SIGTERM and SIGINT for mt_service_wait and ignores
 * SIGPIPE. Call on the main thread before any other thread exists (every
 * thread inherits the mask); mt_service_begin does. Repeating is harmless.
 */
void mt_service_block_signals(void);
/*
 * Attaches cfg unless mt_service_load did (cfg->owner set) and puts it
 * into service, taking over the caller's reference. Ends the process
 * when attach fails.
 */
void mt_service_install(struct mt_service *svc, struct mt_config *cfg);
/*
 * A reference to the configuration in service (NULL before install); the
 * caller mt_config_unref()s it. Any thread. Keeping the reference for a
 * connection's life keeps its configuration and runtime across reloads.
 */
struct mt_config *mt_service_config(void);
/*
 * Loads and attaches the file anew and puts it into service; on failure
 * logs why and keeps the configuration in service. Logs the reload, and
 * a warning when socket_of changed. 0 or -1. mt_service_wait calls it on
 * SIGHUP; call it from one thread only.
 */
int mt_service_reload(struct mt_service *svc);
/*
 * The main thread's loop: sigwait; SIGHUP reloads. Returns the signal on
 * SIGTERM or SIGINT, 0 after mt_service_stop.
 */
int mt_service_wait(struct mt_service *svc);
/*
 * Makes mt_service_wait return 0 (now, or at once when it is called
 * later), e.g. when a serving thread ends. Any thread; async-signal-safe.
 */
void mt_service_stop(void);
/* Removes the PidFile written, releases the configuration, closes the log. */
void mt_service_end(struct mt_service *svc);

#endif
