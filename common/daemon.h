/*
 * Start-up steps the daemons (mailtrail-milter, mailtrail-routed) share:
 * UserID lookup, socket directories, detaching, the privilege drop. These
 * run before serving, so unlike the rest of common/ they end the process
 * (mt_fatal) when the environment is wrong.
 */
#ifndef MT_DAEMON_H
#define MT_DAEMON_H

#include <stddef.h>
#include <sys/types.h>

/* "user[:group]" into ids and the user name; 0 or -1 when unknown. */
int mt_daemon_user(const char *spec, uid_t *uid, gid_t *gid, char *name,
    size_t namelen);
/* Creates the directory holding a unix socket at path, if missing. */
void mt_daemon_socket_dir(const char *path, int have_user, uid_t uid,
    gid_t gid);
/* mkdir DIR (one level) if missing, and hand it to the user. */
void mt_daemon_make_dir(const char *dir, mode_t mode, int have_user,
    uid_t uid, gid_t gid);
/* fork, setsid, chdir /, stdio to /dev/null. */
void mt_daemon_detach(void);
/* Becomes uid/gid for good, or ends the process. */
void mt_daemon_drop(const char *name, uid_t uid, gid_t gid);

#endif
