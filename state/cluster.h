/*
 * A small Redis Cluster client on hiredis 0.14, which has none: key slots
 * (CRC16 with hash tags), the slot map from CLUSTER SLOTS, one connection
 * per node, and batches of commands pipelined per node that follow MOVED
 * and ASK redirections and refresh the map when a node fails.
 * Library code: errors go into err, never into a log.
 */
#ifndef MT_CLUSTER_H
#define MT_CLUSTER_H

#include <stddef.h>
#include <stdint.h>
#include <hiredis/hiredis.h>

#include "redis.h"

#define MT_CLUSTER_SLOTS 16384
#define MT_CLUSTER_HOST_MAX MT_REDIS_HOST_MAX
#define MT_CLUSTER_NODES_MAX 64

/* The slot of a key: CRC16 of the key, or of its first non-empty {tag}. */
unsigned mt_cluster_slot(const char *key, size_t len);

/* A "MOVED 3999 127.0.0.1:6381" or "ASK 3999 [::1]:6381" error reply. */
struct mt_cluster_redirect {
	int ask;			/* 1 ASK, 0 MOVED */
	unsigned slot;
	char host[MT_CLUSTER_HOST_MAX];
	int port;
};
/* 0 with *rd filled, -1 when the text is not a redirection. */
int mt_cluster_parse_redirect(const char *text, size_t len,
    struct mt_cluster_redirect *rd);

/* Which node serves each slot, as CLUSTER SLOTS tells it. */
struct mt_cluster_map {
	struct mt_redis_endpoint node[MT_CLUSTER_NODES_MAX];
	size_t nnodes;
	unsigned char replicas[MT_CLUSTER_NODES_MAX];	/* per node */
	int16_t slot_node[MT_CLUSTER_SLOTS];	/* index into node, -1 none */
};
/*
 * Fills map from a CLUSTER SLOTS reply (masters only; slot ranges outside
 * 0..16383, malformed entries and more than MT_CLUSTER_NODES_MAX nodes are
 * refused). An empty host in the reply means the address we asked (asked).
 * 0, or -1 with err.
 */
int mt_cluster_parse_slots(const redisReply *r, const struct
    mt_redis_endpoint *asked, struct mt_cluster_map *map, char *err,
    size_t errlen);

struct mt_cluster;

struct mt_cluster_opts {
	int timeout_ms;			/* connect and command */
	const char *user, *password;	/* AUTH, NULL = none */
};

/*
 * Parses "HOST:PORT, HOST:PORT ..." seeds; connects lazily on first use.
 * NULL with err when the list is malformed or empty.
 */
struct mt_cluster *mt_cluster_new(const char *seeds,
    const struct mt_cluster_opts *o, char *err, size_t errlen);
void mt_cluster_free(struct mt_cluster *cl);

/* Reads the slot map from the first seed or known node that answers. */
int mt_cluster_refresh(struct mt_cluster *cl, char *err, size_t errlen);

/*
 * One command of a batch. key routes it (NULL: any node). When script is
 * set and the reply is NOSCRIPT, the script is loaded on that node and
 * the command sent again. reply is the final reply (the caller frees it),
 * NULL when the command could not be delivered.
 */
struct mt_cluster_cmd {
	const char *formatted;		/* the command in RESP, or NULL: */
	size_t formattedlen;
	int argc;			/* the command as arguments */
	const char **argv;
	const size_t *argvlen;
	const char *key;
	size_t keylen;
	const char *script;
	redisReply *reply;
};

/*
 * Runs n commands: those for one node go out in one pipeline, one round
 * trip per node, and redirected ones follow their redirection (a few
 * times at most). 0 when every command has a reply (which may be an
 * error reply), -1 with err when some could not be delivered.
 */
int mt_cluster_run(struct mt_cluster *cl, struct mt_cluster_cmd *cmds,
    size_t n, char *err, size_t errlen);

/*
 * From now on each run ends, on every node it wrote to that has replicas,
 * with WAIT for one of them; a run whose writes no replica acknowledged
 * in time returns -1 (the replies are still filled in). on = 0 stops it.
 */
void mt_cluster_wait_replicas(struct mt_cluster *cl, int on);

#endif
