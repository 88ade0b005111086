/*
 * mailtrail-routed start-up: RouteSocket (unix:/path or inet:PORT@HOST)
 * created under UMask and handed to UserID, then the privilege drop.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../common/config.h"
#include "../common/daemon.h"
#include "../common/log.h"
#include "routed.h"

static int
listen_unix(const char *path, const struct mt_config *cfg, int have_user,
    uid_t uid, gid_t gid)
{
	struct sockaddr_un sun;
	struct mt_socket_guard g;
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path))
		mt_fatal("RouteSocket path too long: %s", path);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		mt_fatal("socket: %s", strerror(errno));
	mt_daemon_socket_begin(&g, path, cfg->umask, have_user, uid, gid);
	/* A stale socket from a crash would make bind fail forever. */
	if (unlink(path) < 0 && errno != ENOENT)
		mt_fatal("cannot remove old %s: %s", path, strerror(errno));
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		mt_fatal("cannot bind %s: %s", path, strerror(errno));
	mt_daemon_socket_end(&g);
	return fd;
}

static int
listen_inet(const char *spec)
{
	char port[16], host[256];
	const char *at = strchr(spec, '@');
	struct addrinfo hints, *ai;
	int fd, one = 1, rc;

	if (at == NULL || (size_t)(at - spec) >= sizeof(port))
		mt_fatal("bad RouteSocket inet:%s", spec);
	memcpy(port, spec, (size_t)(at - spec));
	port[at - spec] = '\0';
	snprintf(host, sizeof(host), "%s", at + 1);
	if (host[0] == '[') {		/* [::1] */
		size_t n = strlen(host);

		memmove(host, host + 1, n);
		if (n > 1 && host[n - 2] == ']')
			host[n - 2] = '\0';
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, port, &hints, &ai)) != 0)
		mt_fatal("RouteSocket inet:%s: %s", spec, gai_strerror(rc));
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		mt_fatal("socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0)
		mt_fatal("cannot bind inet:%s: %s", spec, strerror(errno));
	freeaddrinfo(ai);
	return fd;
}

int
mt_routed_listen(const struct mt_config *cfg, int have_user, uid_t uid,
    gid_t gid)
{
	const char *s = cfg->route_socket;
	int fd;

	if (strncmp(s, "unix:", 5) == 0)
		fd = listen_unix(s + 5, cfg, have_user, uid, gid);
	else if (strncmp(s, "local:", 6) == 0)
		fd = listen_unix(s + 6, cfg, have_user, uid, gid);
	else if (strncmp(s, "inet:", 5) == 0)
		fd = listen_inet(s + 5);
	else
		mt_fatal("bad RouteSocket %s", s);
	if (listen(fd, 128) < 0)
		mt_fatal("listen on %s: %s", s, strerror(errno));
	return fd;
}
