/*
 * Daemon start-up shared by mailtrail-milter and mailtrail-routed. Only
 * start-up code calls these; a failure here ends the process with a line
 * that says what the environment lacks.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <unistd.h>

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
