/*
 * floor-milter: the cheapest milter the engine (engine/engine.h) can run
 * that still does what every mailtrail message costs at least: take the
 * envelope sender and insert X-Mailtrail-ID and X-Mailtrail-Sender. The
 * benchmark (tests/bench/bench.py) measures it beside mailtrail-milter, so
 * that mailtrail's cost reads against the engine's own, not only Postfix's.
 *
 *   floor-milter -s unix:/path | -s inet:PORT@127.0.0.1  [-l loops]
 *
 * It negotiates the same protocol steps as mailtrail-milter (headers and
 * body are still sent, nothing is answered that need not be), so the gap
 * between the two is mailtrail's own work and not milter traffic.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include "../../engine/engine.h"

#define SENDER_MAX 512		/* as much of MAIL FROM as the header keeps */

struct floor_conn {
	char fc_sender[SENDER_MAX];	/* "<addr>" of the current message */
};

/* Distinct IDs across loop threads without a lock. */
static unsigned long floor_serial;

static void die(const char *fmt, ...)
    __attribute__((noreturn, format(printf, 1, 2)));
static void usage(void) __attribute__((noreturn));

static void
die(const char *fmt, ...)
{
	va_list ap;

	fputs("floor-milter: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void
report(int prio, const char *msg)
{
	if (prio <= LOG_WARNING)
		fprintf(stderr, "floor-milter: %s\n", msg);
}

static struct floor_conn *
conn_of(struct mt_eng_ctx *ctx)
{
	struct floor_conn *fc = mt_eng_getpriv(ctx);

	if (fc == NULL) {
		fc = calloc(1, sizeof(*fc));
		if (fc != NULL)
			mt_eng_setpriv(ctx, fc);
	}
	return fc;
}

/*
 * "<addr>" from MAIL FROM's first argument, brackets normalised, every
 * control byte dropped: nothing of the client's may break a header line.
 */
static int
cb_envfrom(struct mt_eng_ctx *ctx, char **argv)
{
	struct floor_conn *fc = conn_of(ctx);
	const char *p = argv[0] ? argv[0] : "";
	size_t o = 0;

	if (fc == NULL)
		return MT_ENG_CONTINUE;
	fc->fc_sender[o++] = '<';
	for (; *p && o < sizeof(fc->fc_sender) - 2; p++)
		if (*p != '<' && *p != '>' && (unsigned char)*p >= 0x20 &&
		    *p != 0x7f)
			fc->fc_sender[o++] = *p;
	fc->fc_sender[o++] = '>';
	fc->fc_sender[o] = '\0';
	return MT_ENG_CONTINUE;
}

/* Headers arrive (the MTA sends them anyway); the floor reads nothing. */
static int
cb_header(struct mt_eng_ctx *ctx, const char *name, const char *value)
{
	(void)ctx;
	(void)name;
	(void)value;
	return MT_ENG_CONTINUE;
}

static int
cb_eom(struct mt_eng_ctx *ctx)
{
	struct floor_conn *fc = mt_eng_getpriv(ctx);
	unsigned long n = __atomic_add_fetch(&floor_serial, 1,
	    __ATOMIC_RELAXED);
	char id[64];

	/* The shape of a real ID (26 + "." + 16), so header sizes match. */
	snprintf(id, sizeof(id), "%026lu.%016lx", n, (unsigned long)getpid());
	if (mt_eng_insheader(ctx, 0, "X-Mailtrail-Sender",
	    fc && fc->fc_sender[0] ? fc->fc_sender : "<>") != 0 ||
	    mt_eng_insheader(ctx, 0, "X-Mailtrail-ID", id) != 0)
		report(LOG_WARNING, "cannot insert headers (not agreed?)");
	if (fc)
		fc->fc_sender[0] = '\0';
	return MT_ENG_CONTINUE;
}

static void
cb_abort(struct mt_eng_ctx *ctx)
{
	struct floor_conn *fc = mt_eng_getpriv(ctx);

	if (fc)
		fc->fc_sender[0] = '\0';
}

static void
cb_close(struct mt_eng_ctx *ctx)
{
	free(mt_eng_getpriv(ctx));
	mt_eng_setpriv(ctx, NULL);
}

static const struct mt_eng_filter floor_filter = {
	.actions = MT_ENG_F_ADDHDRS | MT_ENG_F_SETSYMLIST,
	/* mailtrail-milter's steps; every reply the MTA lets us skip, skipped. */
	.protocol = MT_ENG_P_NOUNKNOWN | MT_ENG_P_NODATA | MT_ENG_P_NOEOH |
	    MT_ENG_P_NR_CONN | MT_ENG_P_NR_HELO | MT_ENG_P_NR_MAIL |
	    MT_ENG_P_NR_RCPT | MT_ENG_P_NR_DATA | MT_ENG_P_NR_UNKN |
	    MT_ENG_P_NR_HDR | MT_ENG_P_NR_EOH | MT_ENG_P_NR_BODY,
	/* No macros: Postfix looks up none for us. */
	.symlist = { "", "", "", "", "", "", "" },
	.envfrom = cb_envfrom,
	.header = cb_header,
	.eom = cb_eom,
	.abort = cb_abort,
	.close = cb_close,
};

/* unix:/path (or local:/path), created mode 666 so Postfix's user connects. */
static int
listen_unix(const char *path)
{
	struct sockaddr_un sun;
	mode_t old;
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path))
		die("socket path too long: %s", path);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, path);
	if (unlink(path) != 0 && errno != ENOENT)
		die("cannot remove stale %s: %s", path, strerror(errno));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket: %s", strerror(errno));
	old = umask(0);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0)
		die("cannot bind %s: %s", path, strerror(errno));
	umask(old);
	return fd;
}

/* inet:PORT@ADDR, ADDR an IPv4 literal (a bench tool: no name lookups). */
static int
listen_inet(const char *spec)
{
	struct sockaddr_in sin;
	const char *at = strchr(spec, '@');
	char *end;
	long port = strtol(spec, &end, 10);
	int fd, on = 1;

	if (at == NULL || end != at || port < 1 || port > 65535)
		die("bad inet socket \"inet:%s\" (want inet:PORT@ADDR)", spec);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((unsigned short)port);
	if (inet_pton(AF_INET, at + 1, &sin.sin_addr) != 1)
		die("bad IPv4 address in \"inet:%s\"", spec);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket: %s", strerror(errno));
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0)
		die("SO_REUSEADDR: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
		die("cannot bind inet:%s: %s", spec, strerror(errno));
	return fd;
}

static void
usage(void)
{
	fprintf(stderr, "usage: floor-milter -s unix:/path|inet:PORT@ADDR "
	    "[-l loops]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *spec = NULL, *path = NULL;
	struct mt_eng_opts opts = { .report = report };
	struct mt_eng *eng;
	sigset_t set;
	char err[256];
	int opt, fd, sig;

	while ((opt = getopt(argc, argv, "s:l:")) != -1) {
		switch (opt) {
		case 's':
			spec = optarg;
			break;
		case 'l':
			opts.loops = atoi(optarg);
			break;
		default:
			usage();
		}
	}
	if (spec == NULL || optind != argc)
		usage();
	if (strncmp(spec, "unix:", 5) == 0)
		path = spec + 5;
	else if (strncmp(spec, "local:", 6) == 0)
		path = spec + 6;
	if (path)
		fd = listen_unix(path);
	else if (strncmp(spec, "inet:", 5) == 0)
		fd = listen_inet(spec + 5);
	else
		die("bad socket \"%s\" (want unix:/path or inet:PORT@ADDR)",
		    spec);
	if (listen(fd, SOMAXCONN) != 0)
		die("listen: %s", strerror(errno));
	if (path && chmod(path, 0666) != 0)
		die("chmod %s: %s", path, strerror(errno));

	/* Blocked before the engine's threads exist, so all inherit it. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	eng = mt_eng_start(fd, &floor_filter, &opts, err, sizeof(err));
	if (eng == NULL)
		die("cannot start the engine: %s", err);
	while (sigwait(&set, &sig) != 0)
		;
	mt_eng_stop(eng);
	close(fd);
	if (path)
		unlink(path);
	return 0;
}
