/*
 * Daemon start-up shared by mailtrail-milter and mailtrail-routed. Only
 * start-up code calls these; a failure here ends the process with a line
 * that says what the environment lacks.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
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
	if (mkdir(dir, mode) < 0) {
		if (errno != EEXIST)
			mt_fatal("cannot create %s: %s", dir, strerror(errno));
		return;		/* the admin's own directory: leave it be */
	}
	if (have_user && chown(dir, uid, gid) < 0)
		mt_fatal("cannot chown %s: %s", dir, strerror(errno));
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
