/*
 * Daemon start-up shared by mailtrail-milter and mailtrail-routed. Only
 * start-up code calls these; a failure here ends the process with a line
 * that says what the environment lacks.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <netdb.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "daemon.h"
#include "log.h"

int
mt_daemon_user(const char *spec, uid_t *uid, gid_t *gid, char *name,
    size_t namelen)
{
	const char *colon = strchr(spec, ':');
	size_t n = colon ? (size_t)(colon - spec) : strlen(spec);
	struct passwd *pw;

	if (n >= namelen)
		return -1;
	memcpy(name, spec, n);
	name[n] = '\0';
	if ((pw = getpwnam(name)) == NULL)
		return -1;
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	if (colon) {
		struct group *gr = getgrnam(colon + 1);

		if (gr == NULL)
			return -1;
		*gid = gr->gr_gid;
	}
	return 0;
}

void
mt_daemon_make_dir(const char *dir, mode_t mode, int have_user, uid_t uid,
    gid_t gid)
{
	int fd;

	if (mkdir(dir, mode) < 0) {
		if (errno != EEXIST)
			mt_fatal("cannot create %s: %s", dir, strerror(errno));
		return;		/* the admin's own directory: leave it be */
	}
	if (!have_user)
		return;
	/*
	 * Through a descriptor: if the parent is the service user's, the new
	 * directory may already have been swapped for a symlink.
	 */
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fchown(fd, uid, gid) < 0)
		mt_fatal("cannot chown %s: %s", dir, strerror(errno));
	close(fd);
}

void
mt_daemon_socket_dir(const char *path, int have_user, uid_t uid, gid_t gid)
{
	char dir[4096];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir)
		return;
	*slash = '\0';
	mt_daemon_make_dir(dir, 0750, have_user, uid, gid);
}

void
mt_daemon_pidfile(const char *path)
{
	struct stat sb;
	char buf[32];
	int fd, n;

	/*
	 * Written as root, possibly in a directory the service user owns: a
	 * symlink or hard link planted there must not lead the write (and the
	 * truncation) to another file. O_NONBLOCK: a FIFO must not hang us.
	 */
	fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY |
	    O_NONBLOCK, 0644);
	if (fd < 0 && errno == ELOOP)
		mt_fatal("PidFile %s is a symbolic link; refusing to write "
		    "through it", path);
	if (fd < 0)
		mt_fatal("cannot write PidFile %s: %s", path, strerror(errno));
	if (fstat(fd, &sb) != 0)
		mt_fatal("cannot stat PidFile %s: %s", path, strerror(errno));
	if (!S_ISREG(sb.st_mode))
		mt_fatal("PidFile %s is not a regular file; refusing to write "
		    "it", path);
	if (sb.st_nlink != 1)
		mt_fatal("PidFile %s has %ju hard links; refusing to write "
		    "through them", path, (uintmax_t)sb.st_nlink);
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || write(fd, buf, (size_t)n) != n)
		mt_fatal("cannot write PidFile %s: %s", path, strerror(errno));
	if (close(fd) != 0)
		mt_fatal("cannot write PidFile %s: %s", path, strerror(errno));
}

/* Becomes (or stops being) uid/gid for file-system calls only. */
static void
fs_ids(uid_t uid, gid_t gid)
{
	setfsgid(gid);
	setfsuid(uid);
	/* Both return the previous id and report no error: ask again. */
	if ((uid_t)setfsuid(uid) != uid || (gid_t)setfsgid(gid) != gid)
		mt_fatal("cannot switch the file-system identity to %ju:%ju",
		    (uintmax_t)uid, (uintmax_t)gid);
}

void
mt_daemon_socket_begin(struct mt_socket_guard *g, const char *path,
    mode_t mask, int have_user, uid_t uid, gid_t gid)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	char dir[4096];
	struct stat sb;

	memset(g, 0, sizeof(*g));
	g->dir_fd = -1;
	g->have_user = have_user;
	g->uid = uid;
	g->gid = gid;
	if (*base == '\0' || strlen(base) >= sizeof(g->base) ||
	    strlen(path) >= sizeof(dir))
		mt_fatal("bad socket path %s", path);
	memcpy(g->base, base, strlen(base) + 1);
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	mt_daemon_socket_dir(path, have_user, uid, gid);
	g->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (g->dir_fd < 0 || fstat(g->dir_fd, &sb) != 0)
		mt_fatal("cannot open the socket directory %s: %s", dir,
		    strerror(errno));
	g->as_user = have_user && (sb.st_uid != 0 ||
	    (sb.st_mode & (S_IWGRP | S_IWOTH)) != 0);
	g->old_umask = umask(mask);
	if (g->as_user)
		fs_ids(uid, gid);
}

void
mt_daemon_socket_end(struct mt_socket_guard *g)
{
	struct stat sb;
	int found;

	found = fstatat(g->dir_fd, g->base, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISSOCK(sb.st_mode);
	if (g->as_user) {
		/*
		 * A set-group-ID directory gives its own group; fixing that as
		 * the service user can change nothing it does not own.
		 */
		if (found && sb.st_gid != g->gid && fchownat(g->dir_fd, g->base,
		    (uid_t)-1, g->gid, AT_SYMLINK_NOFOLLOW) != 0)
			mt_fatal("cannot set the group of socket %s: %s", g->base,
			    strerror(errno));
		fs_ids(geteuid(), getegid());
	} else if (g->have_user) {
		/* Only root can write this directory: the entry is ours. */
		if (!found)
			mt_fatal("socket %s vanished after bind", g->base);
		if (fchownat(g->dir_fd, g->base, g->uid, g->gid,
		    AT_SYMLINK_NOFOLLOW) != 0)
			mt_fatal("cannot chown socket %s: %s", g->base,
			    strerror(errno));
	}
	umask(g->old_umask);
	close(g->dir_fd);
	g->dir_fd = -1;
}

static int
parse_port(const char *p, size_t n, char *out, size_t outlen)
{
	long v = 0;

	if (n == 0 || n >= outlen)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	if (v < 1 || v > 65535)
		return -1;
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

/* PORT[@HOST] after "inet:" or "inet6:". */
static int
parse_inet(const char *s, int v6, struct mt_listen_addr *a, char *err,
    size_t errlen)
{
	const char *at = strchr(s, '@');
	const char *host = at ? at + 1 : "";
	size_t n = strlen(host);

	if (parse_port(s, at ? (size_t)(at - s) : strlen(s), a->port,
	    sizeof(a->port)) < 0) {
		snprintf(err, errlen, "the port is not a number 1..65535");
		return -1;
	}
	if (at != NULL && n == 0) {
		snprintf(err, errlen, "no host after '@'");
		return -1;
	}
	if (host[0] == '[') {
		if (n < 3 || host[n - 1] != ']') {
			snprintf(err, errlen, "host \"%s\" lacks its ']'", host);
			return -1;
		}
		host++;
		n -= 2;
		v6 = 1;
	} else if (memchr(host, ':', n) != NULL)
		v6 = 1;			/* an IPv6 address without brackets */
	if (n >= sizeof(a->host)) {
		snprintf(err, errlen, "host name too long");
		return -1;
	}
	memcpy(a->host, host, n);
	a->host[n] = '\0';
	a->family = v6 ? AF_INET6 : AF_INET;
	return 0;
}

int
mt_listen_parse(const char *spec, struct mt_listen_addr *a, char *err,
    size_t errlen)
{
	const char *path = NULL;

	memset(a, 0, sizeof(*a));
	if (strncmp(spec, "unix:", 5) == 0)
		path = spec + 5;
	else if (strncmp(spec, "local:", 6) == 0)
		path = spec + 6;
	else if (strncmp(spec, "inet:", 5) == 0)
		return parse_inet(spec + 5, 0, a, err, errlen);
	else if (strncmp(spec, "inet6:", 6) == 0)
		return parse_inet(spec + 6, 1, a, err, errlen);
	else {
		snprintf(err, errlen, "neither unix:/path nor inet:PORT@HOST");
		return -1;
	}
	if (*path == '\0') {
		snprintf(err, errlen, "no path");
		return -1;
	}
	if (strlen(path) >= sizeof(a->path)) {
		snprintf(err, errlen, "path longer than %zu bytes",
		    sizeof(a->path) - 1);
		return -1;
	}
	a->family = AF_UNIX;
	memcpy(a->path, path, strlen(path) + 1);
	return 0;
}

static int
bind_unix(const struct mt_listen_addr *a, mode_t mask, int have_user,
    uid_t uid, gid_t gid)
{
	struct sockaddr_un sun;
	struct mt_socket_guard g;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, a->path, strlen(a->path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		mt_fatal("socket: %s", strerror(errno));
	mt_daemon_socket_begin(&g, a->path, mask, have_user, uid, gid);
	/* A stale socket from a crash would make bind fail forever. */
	if (unlink(a->path) < 0 && errno != ENOENT)
		mt_fatal("cannot remove old %s: %s", a->path, strerror(errno));
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		mt_fatal("cannot bind %s: %s", a->path, strerror(errno));
	mt_daemon_socket_end(&g);
	return fd;
}

static int
bind_inet(const struct mt_listen_addr *a, const char *spec, const char *what)
{
	struct addrinfo hints, *ai;
	int fd, one = 1, rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = a->family;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(a->host[0] ? a->host : NULL, a->port, &hints, &ai);
	if (rc != 0)
		mt_fatal("%s %s: %s", what, spec, gai_strerror(rc));
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		mt_fatal("socket: %s", strerror(errno));
	/* A restart must not wait for the old connections' TIME_WAIT. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		mt_fatal("setsockopt SO_REUSEADDR: %s", strerror(errno));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0)
		mt_fatal("cannot bind %s %s: %s", what, spec, strerror(errno));
	freeaddrinfo(ai);
	return fd;
}

int
mt_listen(const char *spec, const struct mt_config *cfg, int have_user,
    uid_t uid, gid_t gid, const char *what)
{
	struct mt_listen_addr a;
	char err[256];
	int fd;

	if (mt_listen_parse(spec, &a, err, sizeof(err)) < 0)
		mt_fatal("bad %s %s: %s", what, spec, err);
	if (a.family == AF_UNIX)
		fd = bind_unix(&a, cfg->umask, have_user, uid, gid);
	else
		fd = bind_inet(&a, spec, what);
	if (listen(fd, 128) < 0)
		mt_fatal("listen on %s: %s", spec, strerror(errno));
	return fd;
}

void
mt_daemon_detach(void)
{
	pid_t pid = fork();
	int fd;

	if (pid < 0)
		mt_fatal("fork: %s", strerror(errno));
	if (pid > 0)
		_exit(0);
	if (setsid() < 0)
		mt_fatal("setsid: %s", strerror(errno));
	if (chdir("/") < 0)
		mt_fatal("chdir /: %s", strerror(errno));
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
}

void
mt_daemon_drop(const char *name, uid_t uid, gid_t gid)
{
	if (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
		mt_fatal("cannot become %s: %s", name, strerror(errno));
	/* A setuid that left a way back would be no drop at all. */
	if (uid != 0 && (setuid(0) == 0 || geteuid() != uid))
		mt_fatal("privileges of %s could be regained; refusing to run",
		    name);
}

/* --- -n: who can reach what ------------------------------------------ */

struct who {
	uid_t uid;
	gid_t groups[64];
	int ngroups;
};

/* May who have bits (4 r, 2 w, 1 x) on a file of this owner and mode? */
static int
who_may(const struct who *w, uid_t owner, gid_t group, mode_t mode, int bits)
{
	if (w->uid == 0)
		return 1;
	if (owner == w->uid)
		return (int)((mode >> 6) & (mode_t)bits) == bits;
	for (int i = 0; i < w->ngroups; i++)
		if (w->groups[i] == group)
			return (int)((mode >> 3) & (mode_t)bits) == bits;
	return (int)(mode & (mode_t)bits) == bits;
}

static void __attribute__((format(printf, 3, 4)))
add_problem(char *out, size_t outlen, const char *fmt, ...)
{
	size_t n = strlen(out);
	va_list ap;

	if (n + 1 >= outlen)
		return;
	va_start(ap, fmt);
	vsnprintf(out + n, outlen - n, fmt, ap);
	va_end(ap);
	n = strlen(out);
	if (n + 1 < outlen) {
		out[n] = '\n';
		out[n + 1] = '\0';
	}
}

/*
 * Every existing directory above path (and path itself when it is one and
 * full is set) searchable by w; the first that is not goes into bad.
 * Returns 0, or -1 with bad set.
 */
static int
walk_up(const char *path, const struct who *w, char *bad, size_t badlen)
{
	char dir[PATH_MAX];
	struct stat st;
	size_t i;

	snprintf(dir, sizeof(dir), "%s", path);
	for (i = 1; dir[i] != '\0'; i++) {
		if (dir[i] != '/')
			continue;
		dir[i] = '\0';
		if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode) &&
		    !who_may(w, st.st_uid, st.st_gid, st.st_mode, 1)) {
			snprintf(bad, badlen, "%s (mode %04o, owner %u:%u)", dir,
			    (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid,
			    (unsigned)st.st_gid);
			return -1;
		}
		dir[i] = '/';
	}
	return 0;
}

int
mt_daemon_check_access(const struct mt_config *cfg, int check_spool,
    const char *spec, const char *what, int have_user, uid_t uid, gid_t gid,
    const char *peer, char *out, size_t outlen)
{
	struct who svc = { .uid = have_user ? uid : 0, .ngroups = 1 };
	struct who pf = { 0 };
	struct mt_listen_addr a;
	struct passwd *pw;
	char err[256], bad[PATH_MAX + 64], parent[PATH_MAX], *slash;
	struct stat st;
	int problems = 0;
	uid_t sock_uid = have_user ? uid : 0;
	gid_t sock_gid = have_user ? gid : 0;
	mode_t sock_mode = 0777 & ~(mode_t)cfg->umask;

	out[0] = '\0';
	svc.groups[0] = have_user ? gid : 0;
	/* SpoolDir: made (one level) and handed to UserID at start. */
	if (have_user && cfg->spool_dir != NULL && check_spool) {
		if (stat(cfg->spool_dir, &st) == 0) {
			if (!S_ISDIR(st.st_mode) || !who_may(&svc, st.st_uid,
			    st.st_gid, st.st_mode, 3)) {
				add_problem(out, outlen, "SpoolDir %s: UserID %s "
				    "cannot write it (mode %04o, owner %u:%u); "
				    "chown %s to %s", cfg->spool_dir,
				    cfg->userid, (unsigned)(st.st_mode & 07777),
				    (unsigned)st.st_uid, (unsigned)st.st_gid,
				    cfg->spool_dir, cfg->userid);
				problems++;
			}
		} else {
			snprintf(parent, sizeof(parent), "%s", cfg->spool_dir);
			if ((slash = strrchr(parent, '/')) != NULL)
				*(slash == parent ? slash + 1 : slash) = '\0';
			if (stat(parent, &st) != 0) {
				add_problem(out, outlen, "SpoolDir %s: its "
				    "directory %s does not exist; create it",
				    cfg->spool_dir, parent);
				problems++;
			}
		}
		if (walk_up(cfg->spool_dir, &svc, bad, sizeof(bad)) < 0) {
			add_problem(out, outlen, "SpoolDir %s: UserID %s cannot "
			    "search %s; chmod o+x it or move SpoolDir",
			    cfg->spool_dir, cfg->userid, bad);
			problems++;
		}
	}
	/* The socket, as Postfix's user will see it. */
	if (spec == NULL || mt_listen_parse(spec, &a, err, sizeof(err)) != 0 ||
	    a.family != AF_UNIX || peer == NULL ||
	    (pw = getpwnam(peer)) == NULL)
		return problems;
	pf.uid = pw->pw_uid;
	pf.ngroups = (int)(sizeof(pf.groups) / sizeof(pf.groups[0]));
	if (getgrouplist(peer, pw->pw_gid, pf.groups, &pf.ngroups) < 0)
		pf.ngroups = (int)(sizeof(pf.groups) / sizeof(pf.groups[0]));
	if (!who_may(&pf, sock_uid, sock_gid, sock_mode, 2)) {
		struct group *gr = getgrgid(sock_gid);

		add_problem(out, outlen, "%s %s: the socket will be mode %04o, "
		    "owner %u:%s, which user %s cannot connect to; give UserID "
		    "a group %s is in (UserID mailtrail:%s) or loosen UMask",
		    what, a.path, (unsigned)sock_mode, (unsigned)sock_uid,
		    gr ? gr->gr_name : "?", peer, peer, peer);
		problems++;
	}
	snprintf(parent, sizeof(parent), "%s", a.path);
	if ((slash = strrchr(parent, '/')) != NULL && slash != parent) {
		*slash = '\0';
		/* A missing directory is made 0750 for UserID at start. */
		if (stat(parent, &st) != 0 ? !who_may(&pf, sock_uid, sock_gid,
		    0750, 1) : !who_may(&pf, st.st_uid, st.st_gid, st.st_mode,
		    1)) {
			add_problem(out, outlen, "%s %s: user %s cannot search "
			    "the socket's directory %s; give it group %s and "
			    "mode 0750", what, a.path, peer, parent, peer);
			problems++;
		}
	}
	if (walk_up(parent, &pf, bad, sizeof(bad)) < 0) {
		add_problem(out, outlen, "%s %s: user %s cannot search %s",
		    what, a.path, peer, bad);
		problems++;
	}
	return problems;
}
