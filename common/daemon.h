/*
 * Start-up steps the daemons (mailtrail-milter, mailtrail-routed) share:
 * UserID lookup, listening sockets and their directories, detaching, the
 * privilege drop (the life cycle around them is in service.h). These
 * run before serving, so unlike the rest of common/ they end the process
 * (mt_fatal) when the environment is wrong.
 */
#ifndef MT_DAEMON_H
#define MT_DAEMON_H

#include <stddef.h>
#include <sys/types.h>

struct mt_config;

/* "user[:group]" into ids and the user name; 0 or -1 when unknown. */
int mt_daemon_user(const char *spec, uid_t *uid, gid_t *gid, char *name,
    size_t namelen);
/* Creates the directory holding a unix socket at path, if missing. */
void mt_daemon_socket_dir(const char *path, int have_user, uid_t uid,
    gid_t gid);
/* mkdir DIR (one level) if missing, and hand it to the user. */
void mt_daemon_make_dir(const char *dir, mode_t mode, int have_user,
    uid_t uid, gid_t gid);
/*
 * Writes our pid to path as root without trusting the directory: never
 * through a symlink, and only into a regular file with one link. Ends the
 * process with a line saying what was found instead.
 */
void mt_daemon_pidfile(const char *path);

/*
 * Creating a unix socket at path under UMask and for UserID, with no
 * path-following chown or chmod. Between begin and end the caller binds
 * (itself or through libmilter). When the socket's directory can be
 * written by anyone but root, the bind runs with UserID's file-system
 * identity (setfsuid/setfsgid), so the socket is born with that owner and
 * whatever a planted link points at is touched only with the service
 * user's own rights. In a directory only root can write, the socket is
 * bound as root and handed over with fchownat(AT_SYMLINK_NOFOLLOW) on the
 * directory's fd. Ends the process on failure. File-system ids belong
 * to the calling thread only: begin, the bind and end run on one thread.
 */
struct mt_socket_guard {
	int dir_fd;		/* the socket's directory */
	char base[256];		/* the socket's name in it */
	int as_user;		/* bound with UserID's fsuid/fsgid */
	mode_t old_umask;
	int have_user;
	uid_t uid;
	gid_t gid;
};
void mt_daemon_socket_begin(struct mt_socket_guard *g, const char *path,
    mode_t umask, int have_user, uid_t uid, gid_t gid);
void mt_daemon_socket_end(struct mt_socket_guard *g);

/*
 * A listening socket address as mailtrail.conf writes it (Socket,
 * RouteSocket), in Sendmail's form:
 *   unix:/path, local:/path     a UNIX socket
 *   inet:PORT[@HOST]            IPv4; no HOST: every address. A HOST in
 *                               brackets or with a ':' ([::1], ::1) is IPv6
 *   inet6:PORT[@HOST]           IPv6; no HOST: every address (::)
 * PORT is decimal, 1..65535; HOST a numeric address or a name.
 */
struct mt_listen_addr {
	int family;		/* AF_UNIX, AF_INET or AF_INET6 */
	char path[108];		/* AF_UNIX: sizeof(sun_path) */
	char host[256];		/* AF_INET*: without brackets, "" = any */
	char port[6];		/* AF_INET*: digits */
};
/* Parses spec into a; 0, or -1 with a reason (without spec) in err. */
int mt_listen_parse(const char *spec, struct mt_listen_addr *a,
    char *err, size_t errlen);
/*
 * The listening socket for spec: a UNIX socket is made through the socket
 * guard above (under cfg->umask, owned by the user when have_user); an
 * inet one with SO_REUSEADDR. what names the setting in messages
 * ("Socket", "RouteSocket"). Returns the listening descriptor
 * (close-on-exec) or ends the process.
 */
int mt_listen(const char *spec, const struct mt_config *cfg, int have_user,
    uid_t uid, gid_t gid, const char *what);

/*
 * What -n checks beyond the file itself, where a wrong answer would only
 * show once mail flows: that UserID (uid, gid: the only group it keeps)
 * can write SpoolDir and search its way there (with check_spool), and
 * that peer (Postfix's
 * mail_owner, "postfix") can connect to the unix socket spec will create
 * (owner and group from UserID, mode 0777 less UMask) and search every
 * directory above it. One line per problem, each saying how to fix it,
 * goes into out; returns the number of problems (0 when peer does not
 * exist here or the socket is not a unix one).
 */
int mt_daemon_check_access(const struct mt_config *cfg, int check_spool,
    const char *spec, const char *what, int have_user, uid_t uid, gid_t gid,
    const char *peer, char *out, size_t outlen);

/* fork, setsid, chdir /, stdio to /dev/null. */
void mt_daemon_detach(void);
/* Becomes uid/gid for good, or ends the process. */
void mt_daemon_drop(const char *name, uid_t uid, gid_t gid);

#endif
