/*
 * mailtrail-routed start-up helpers (routed_start.c): the listening
 * socket, the UserID switch and daemon mode. Program code: may exit.
 */
#ifndef MT_ROUTED_H
#define MT_ROUTED_H

#include <stddef.h>
#include <sys/types.h>

struct mt_config;

/* The listening socket for RouteSocket under UMask, owned by UserID. */
int mt_routed_listen(const struct mt_config *cfg, int have_user, uid_t uid,
    gid_t gid);

#endif
