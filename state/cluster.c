/*
 * Redis Cluster routing, as the Cluster specification describes it: the
 * slot of a key, the map of slots to masters, and batches pipelined per
 * node that follow MOVED (the map was stale: update it) and ASK (a slot
 * in migration: ask the other node once, with ASKING first).
 *
 * Redelivery: a command whose reply was lost with its connection is sent
 * again after the map is refreshed. The store's writes are idempotent
 * (Lua scripts guarded by the queue ID, fingerprints for events), which is
 * what makes sending twice safe.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cluster.h"

#define ROUNDS_MAX 6		/* redirections and refreshes per batch */
#define CONNS_MAX (MT_CLUSTER_NODES_MAX + 16)
#define SEEDS_MAX 16

/* CRC16-CCITT (XMODEM), the checksum the Cluster specification names. */
static uint16_t
crc16(const unsigned char *p, size_t len)
{
	uint16_t crc = 0;

	while (len-- > 0) {
		crc ^= (uint16_t)(*p++ << 8);
		for (int i = 0; i < 8; i++)
			crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021)
			    : (uint16_t)(crc << 1);
	}
	return crc;
}

unsigned
mt_cluster_slot(const char *key, size_t len)
{
	const char *open = memchr(key, '{', len), *close;

	if (open != NULL) {
		size_t rest = len - (size_t)(open - key) - 1;

		close = memchr(open + 1, '}', rest);
		if (close != NULL && close > open + 1) {
			key = open + 1;
			len = (size_t)(close - key);
		}
	}
	return crc16((const unsigned char *)key, len) & (MT_CLUSTER_SLOTS - 1);
}

/* "HOST:PORT", the port after the last colon; HOST may be "" or "[v6]". */
static int
split_endpoint(const char *s, size_t len, char *host, size_t hostlen,
    int *port)
{
	const char *colon = NULL;
	long v = 0;
	size_t hl;

	for (size_t i = 0; i < len; i++)
		if (s[i] == ':')
			colon = s + i;
	if (colon == NULL || colon + 1 == s + len || s + len - colon > 6)
		return -1;
	for (const char *p = colon + 1; p < s + len; p++) {
		if (!isdigit((unsigned char)*p))
			return -1;
		v = v * 10 + (*p - '0');
	}
	if (v < 1 || v > 65535)
		return -1;
	hl = (size_t)(colon - s);
	if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']') {
		s++;
		hl -= 2;
	}
	if (hl >= hostlen)
		return -1;
	for (size_t i = 0; i < hl; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '.' &&
		    s[i] != '-' && s[i] != ':' && s[i] != '_')
			return -1;
	memcpy(host, s, hl);
	host[hl] = '\0';
	*port = (int)v;
	return 0;
}

int
mt_cluster_parse_redirect(const char *text, size_t len,
    struct mt_cluster_redirect *rd)
{
	const char *p, *end = text + len;
	unsigned long slot = 0;
	int digits = 0;

	if (len > 5 && memcmp(text, "MOVED ", 6) == 0) {
		rd->ask = 0;
		p = text + 6;
	} else if (len > 3 && memcmp(text, "ASK ", 4) == 0) {
		rd->ask = 1;
		p = text + 4;
	} else
		return -1;
	for (; p < end && isdigit((unsigned char)*p) && digits < 6; p++,
	    digits++)
		slot = slot * 10 + (unsigned long)(*p - '0');
	if (digits == 0 || slot >= MT_CLUSTER_SLOTS || p >= end || *p != ' ')
		return -1;
	rd->slot = (unsigned)slot;
	p++;
	return split_endpoint(p, (size_t)(end - p), rd->host,
	    sizeof(rd->host), &rd->port);
}

static int
reply_int(const redisReply *r, long long lo, long long hi, long long *out)
{
	if (r == NULL || r->type != REDIS_REPLY_INTEGER || r->integer < lo ||
	    r->integer > hi)
		return -1;
	*out = r->integer;
	return 0;
}

static int
map_node_index_find(const struct mt_cluster_map *map, const char *host,
    int port)
{
	for (size_t i = 0; i < map->nnodes; i++)
		if (map->node[i].port == port &&
		    strcasecmp(map->node[i].host, host) == 0)
			return (int)i;
	return -1;
}

static int
map_node_index(struct mt_cluster_map *map, const char *host, int port)
{
	size_t i;

	for (i = 0; i < map->nnodes; i++)
		if (map->node[i].port == port &&
		    strcasecmp(map->node[i].host, host) == 0)
			return (int)i;
	if (i == MT_CLUSTER_NODES_MAX)
		return -1;
	snprintf(map->node[i].host, sizeof(map->node[i].host), "%s", host);
	map->node[i].port = port;
	map->nnodes++;
	return (int)i;
}

/* The master of one CLUSTER SLOTS entry: [host, port, id, ...]. */
static int
entry_master(const redisReply *m, const struct mt_redis_endpoint *asked,
    char host[MT_CLUSTER_HOST_MAX], int *port)
{
	long long p;
	const redisReply *h;

	if (m == NULL || m->type != REDIS_REPLY_ARRAY || m->elements < 2)
		return -1;
	h = m->element[0];
	if (h->type != REDIS_REPLY_STRING || h->len >= MT_CLUSTER_HOST_MAX ||
	    reply_int(m->element[1], 1, 65535, &p) < 0)
		return -1;
	/* "" or "?": the node could not say; it is the one we asked. */
	if (h->len == 0 || (h->len == 1 && h->str[0] == '?')) {
		if (asked == NULL)
			return -1;
		snprintf(host, MT_CLUSTER_HOST_MAX, "%s", asked->host);
	} else {
		for (size_t i = 0; i < h->len; i++)
			if (!isalnum((unsigned char)h->str[i]) &&
			    h->str[i] != '.' && h->str[i] != '-' &&
			    h->str[i] != ':' && h->str[i] != '_')
				return -1;
		memcpy(host, h->str, h->len);
		host[h->len] = '\0';
	}
	*port = (int)p;
	return 0;
}

int
mt_cluster_parse_slots(const redisReply *r, const struct
    mt_redis_endpoint *asked, struct mt_cluster_map *map, char *err,
    size_t errlen)
{
	char host[MT_CLUSTER_HOST_MAX];
	long long lo, hi;
	int port, idx;

	memset(map, 0, sizeof(*map));
	for (size_t s = 0; s < MT_CLUSTER_SLOTS; s++)
		map->slot_node[s] = -1;
	if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
		snprintf(err, errlen, "CLUSTER SLOTS: not an array");
		return -1;
	}
	for (size_t i = 0; i < r->elements; i++) {
		const redisReply *e = r->element[i];

		if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
		    reply_int(e->element[0], 0, MT_CLUSTER_SLOTS - 1, &lo) ||
		    reply_int(e->element[1], lo, MT_CLUSTER_SLOTS - 1, &hi) ||
		    entry_master(e->element[2], asked, host, &port) < 0) {
			snprintf(err, errlen, "CLUSTER SLOTS: entry %zu is "
			    "malformed", i);
			return -1;
		}
		if ((idx = map_node_index(map, host, port)) < 0) {
			snprintf(err, errlen, "CLUSTER SLOTS: more than %d "
			    "masters", MT_CLUSTER_NODES_MAX);
			return -1;
		}
		for (long long s = lo; s <= hi; s++)
			map->slot_node[s] = (int16_t)idx;
		if (e->elements - 3 > map->replicas[idx])
			map->replicas[idx] = (unsigned char)(e->elements - 3 >
			    255 ? 255 : e->elements - 3);
	}
	return 0;
}

/* ---- connections ------------------------------------------------------ */

struct conn {
	struct mt_redis_endpoint at;
	redisContext *c;
};

struct mt_cluster {
	struct mt_redis_endpoint seed[SEEDS_MAX];
	size_t nseeds;
	struct mt_cluster_map map;
	int have_map;
	struct conn conn[CONNS_MAX];
	size_t nconns;
	int timeout_ms;
	char *user, *password;
	int wait;		/* WAIT for a replica after writes */
	int unreplicated;	/* this run: a WAIT came short */
};

void
mt_cluster_wait_replicas(struct mt_cluster *cl, int on)
{
	cl->wait = on;
}

struct mt_cluster *
mt_cluster_new(const char *seeds, const struct mt_cluster_opts *o, char *err,
    size_t errlen)
{
	struct mt_cluster *cl = calloc(1, sizeof(*cl));
	int n;

	if (cl == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	cl->timeout_ms = o->timeout_ms;
	cl->user = o->user ? strdup(o->user) : NULL;
	cl->password = o->password ? strdup(o->password) : NULL;
	n = mt_redis_parse_list(seeds, cl->seed, SEEDS_MAX);
	if (n < 0) {
		snprintf(err, errlen, "\"%.200s\" is not a list of HOST:PORT "
		    "(at most %d)", seeds, SEEDS_MAX);
		mt_cluster_free(cl);
		return NULL;
	}
	cl->nseeds = (size_t)n;
	for (size_t s = 0; s < MT_CLUSTER_SLOTS; s++)
		cl->map.slot_node[s] = -1;
	return cl;
}

void
mt_cluster_free(struct mt_cluster *cl)
{
	if (cl == NULL)
		return;
	for (size_t i = 0; i < cl->nconns; i++)
		if (cl->conn[i].c)
			redisFree(cl->conn[i].c);
	free(cl->user);
	free(cl->password);
	free(cl);
}

static redisContext *
node_connect(const struct mt_cluster *cl, const struct mt_redis_endpoint *n,
    char *err, size_t errlen)
{
	char why[256];
	redisContext *c = mt_redis_connect_to(n->host, n->port,
	    cl->timeout_ms, cl->user, cl->password, why, sizeof(why));

	if (c == NULL)
		snprintf(err, errlen, "%s:%d: %s", n->host, n->port, why);
	return c;
}

/* The connection slot for a node (kept across map refreshes). */
static struct conn *
conn_for(struct mt_cluster *cl, const struct mt_redis_endpoint *n)
{
	size_t i;

	for (i = 0; i < cl->nconns; i++)
		if (cl->conn[i].at.port == n->port &&
		    strcasecmp(cl->conn[i].at.host, n->host) == 0)
			return &cl->conn[i];
	if (i == CONNS_MAX) {
		/* Full of nodes long gone: drop one that is closed, or the first. */
		for (i = 0; i < cl->nconns && cl->conn[i].c != NULL; i++)
			;
		if (i == cl->nconns)
			i = 0;
		if (cl->conn[i].c)
			redisFree(cl->conn[i].c);
	} else
		cl->nconns++;
	cl->conn[i].at = *n;
	cl->conn[i].c = NULL;
	return &cl->conn[i];
}

static redisContext *
conn_get(struct mt_cluster *cl, struct conn *k, char *err, size_t errlen)
{
	if (k->c == NULL)
		k->c = node_connect(cl, &k->at, err, errlen);
	return k->c;
}

static void
conn_drop(struct conn *k)
{
	if (k->c)
		redisFree(k->c);
	k->c = NULL;
}

static int
refresh_from(struct mt_cluster *cl, const struct mt_redis_endpoint *n,
    char *err, size_t errlen)
{
	struct conn *k = conn_for(cl, n);
	redisContext *c = conn_get(cl, k, err, errlen);
	redisReply *r;
	int rc;

	if (c == NULL)
		return -1;
	if ((r = redisCommand(c, "CLUSTER SLOTS")) == NULL) {
		snprintf(err, errlen, "%s:%d: %s", n->host, n->port, c->errstr);
		conn_drop(k);
		return -1;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		snprintf(err, errlen, "%s:%d: %.200s", n->host, n->port, r->str);
		freeReplyObject(r);
		return -1;
	}
	rc = mt_cluster_parse_slots(r, n, &cl->map, err, errlen);
	freeReplyObject(r);
	if (rc == 0 && cl->map.nnodes == 0) {
		snprintf(err, errlen, "%s:%d: no slot is served", n->host,
		    n->port);
		rc = -1;
	}
	cl->have_map = rc == 0;
	return rc;
}

int
mt_cluster_refresh(struct mt_cluster *cl, char *err, size_t errlen)
{
	struct mt_redis_endpoint known[MT_CLUSTER_NODES_MAX];
	size_t nknown = cl->have_map ? cl->map.nnodes : 0;

	/* Nodes we knew first (a seed may be gone), then the seeds. */
	memcpy(known, cl->map.node, nknown * sizeof(known[0]));
	for (size_t i = 0; i < nknown; i++)
		if (refresh_from(cl, &known[i], err, errlen) == 0)
			return 0;
	for (size_t i = 0; i < cl->nseeds; i++)
		if (refresh_from(cl, &cl->seed[i], err, errlen) == 0)
			return 0;
	cl->have_map = 0;
	return -1;
}

/* ---- batches ---------------------------------------------------------- */

struct job {
	struct mt_cluster_cmd *cmd;
	struct mt_redis_endpoint to;	/* where it goes this round */
	int asking;			/* an ASK redirection: ASKING first */
	int load;			/* NOSCRIPT: SCRIPT LOAD first */
	int done;
	int node;			/* sent to nodes[node] this round, -1 */
};

static void
route(const struct mt_cluster *cl, struct job *j)
{
	int idx = -1;

	if (j->cmd->key != NULL && cl->have_map)
		idx = cl->map.slot_node[mt_cluster_slot(j->cmd->key,
		    j->cmd->keylen)];
	if (idx < 0 && cl->have_map && cl->map.nnodes > 0)
		idx = 0;		/* no key, or a slot nobody serves yet */
	j->to = idx >= 0 ? cl->map.node[idx] : cl->seed[0];
}

static int
is_error(const redisReply *r, const char *prefix)
{
	size_t n = strlen(prefix);

	return r->type == REDIS_REPLY_ERROR && r->len >= n &&
	    memcmp(r->str, prefix, n) == 0;
}

/*
 * Looks at one reply: 1 final, 0 the job goes again (its target updated),
 * and *stale = 1 when the map should be read anew.
 */
static int
settle(struct mt_cluster *cl, struct job *j, redisReply *r, int *stale)
{
	struct mt_cluster_redirect rd;

	if (r->type == REDIS_REPLY_ERROR &&
	    mt_cluster_parse_redirect(r->str, r->len, &rd) == 0) {
		if (rd.host[0] == '\0')		/* "the node you asked" */
			snprintf(rd.host, sizeof(rd.host), "%s", j->to.host);
		snprintf(j->to.host, sizeof(j->to.host), "%s", rd.host);
		j->to.port = rd.port;
		j->asking = rd.ask;
		if (!rd.ask) {
			int idx = map_node_index(&cl->map, rd.host, rd.port);

			if (idx >= 0)
				cl->map.slot_node[rd.slot] = (int16_t)idx;
			*stale = 1;
		}
		freeReplyObject(r);
		return 0;
	}
	if (is_error(r, "NOSCRIPT") && j->cmd->script && !j->load) {
		j->load = 1;
		freeReplyObject(r);
		return 0;
	}
	if (is_error(r, "TRYAGAIN") || is_error(r, "CLUSTERDOWN")) {
		*stale = 1;
		freeReplyObject(r);
		return 0;
	}
	j->cmd->reply = r;
	j->done = 1;
	return 1;
}

static int
append_job(redisContext *c, const struct job *j)
{
	const struct mt_cluster_cmd *m = j->cmd;

	if (j->asking && redisAppendCommand(c, "ASKING") != REDIS_OK)
		return -1;
	if (j->load && redisAppendCommand(c, "SCRIPT LOAD %s", m->script)
	    != REDIS_OK)
		return -1;
	if (m->formatted != NULL)
		return redisAppendFormattedCommand(c, m->formatted,
		    m->formattedlen) == REDIS_OK ? 0 : -1;
	return redisAppendCommandArgv(c, m->argc, m->argv, m->argvlen) ==
	    REDIS_OK ? 0 : -1;
}

/* The replies of ASKING and SCRIPT LOAD say nothing we need. */
static int
skip_reply(redisContext *c)
{
	void *r;

	if (redisGetReply(c, &r) != REDIS_OK)
		return -1;
	freeReplyObject(r);
	return 0;
}

static int
job_for(const struct job *j, const struct mt_redis_endpoint *to)
{
	return !j->done && j->to.port == to->port &&
	    strcasecmp(j->to.host, to->host) == 0;
}

/* One node's part of a round: its pipeline, sent, then its replies. */
struct node_run {
	struct mt_redis_endpoint to;
	struct conn *k;
	int wait;		/* a WAIT follows the jobs */
	int failed;
};

static void
node_broken(struct mt_cluster *cl, struct node_run *nr, int *stale,
    char *err, size_t errlen)
{
	redisContext *c = nr->k ? nr->k->c : NULL;

	snprintf(err, errlen, "%s:%d: %s", nr->to.host, nr->to.port,
	    c && c->errstr[0] ? c->errstr : "connection lost");
	if (nr->k)
		conn_drop(nr->k);
	nr->failed = 1;
	*stale = 1;
	(void)cl;
}

/* Appends the node's pending jobs and writes them out without waiting. */
static void
send_node(struct mt_cluster *cl, struct job *jobs, size_t n,
    struct node_run *nr, int self, int *stale, char *err, size_t errlen)
{
	redisContext *c;
	int idx = map_node_index_find(&cl->map, nr->to.host, nr->to.port);
	int done = 0;

	nr->k = conn_for(cl, &nr->to);
	nr->wait = cl->wait && idx >= 0 && cl->map.replicas[idx] > 0;
	if ((c = conn_get(cl, nr->k, err, errlen)) == NULL) {
		nr->failed = 1;
		*stale = 1;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (!job_for(&jobs[i], &nr->to))
			continue;
		if (append_job(c, &jobs[i]) < 0)
			goto broken;
		jobs[i].node = self;
	}
	if (nr->wait && redisAppendCommand(c, "WAIT 1 %d", cl->timeout_ms / 2 >
	    0 ? cl->timeout_ms / 2 : 1) != REDIS_OK)
		goto broken;
	while (!done)
		if (redisBufferWrite(c, &done) != REDIS_OK)
			goto broken;
	return;
broken:
	node_broken(cl, nr, stale, err, errlen);
}

/* Reads the node's replies and settles its jobs. */
static void
recv_node(struct mt_cluster *cl, struct job *jobs, size_t n,
    struct node_run *nr, int self, int *stale, char *err, size_t errlen)
{
	redisContext *c = nr->k->c;
	void *r;

	for (size_t i = 0; i < n; i++) {
		struct job *j = &jobs[i];
		int asking = j->asking, load = j->load;

		if (j->done || j->node != self)
			continue;
		if ((asking && skip_reply(c) < 0) || (load && skip_reply(c) < 0))
			goto broken;
		if (redisGetReply(c, &r) != REDIS_OK)
			goto broken;
		/* Settling may move the job elsewhere: its reply is read. */
		j->asking = 0;
		j->node = -1;
		settle(cl, j, r, stale);
	}
	if (nr->wait) {
		redisReply *w;

		if (redisGetReply(c, (void **)&w) != REDIS_OK)
			goto broken;
		if (w->type != REDIS_REPLY_INTEGER || w->integer < 1) {
			snprintf(err, errlen, "%s:%d: no replica acknowledged "
			    "the writes in %d ms", nr->to.host, nr->to.port,
			    cl->timeout_ms / 2);
			cl->unreplicated = 1;
		}
		freeReplyObject(w);
	}
	return;
broken:
	node_broken(cl, nr, stale, err, errlen);
}

int
mt_cluster_run(struct mt_cluster *cl, struct mt_cluster_cmd *cmds, size_t n,
    char *err, size_t errlen)
{
	struct job *jobs = calloc(n ? n : 1, sizeof(*jobs));
	struct node_run *nodes = calloc(n ? n : 1, sizeof(*nodes));
	size_t left = n;
	int round;

	if (jobs == NULL || nodes == NULL) {
		free(jobs);
		free(nodes);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	err[0] = '\0';
	cl->unreplicated = 0;
	if (!cl->have_map)
		mt_cluster_refresh(cl, err, errlen);
	for (size_t i = 0; i < n; i++) {
		jobs[i].cmd = &cmds[i];
		cmds[i].reply = NULL;
		route(cl, &jobs[i]);
	}
	for (round = 0; left > 0 && round < ROUNDS_MAX; round++) {
		int stale = 0;
		size_t nn = 0;

		/* The nodes this round goes to, each once. */
		for (size_t i = 0; i < n; i++) {
			size_t k;

			if (jobs[i].done)
				continue;
			for (k = 0; k < nn && !(nodes[k].to.port ==
			    jobs[i].to.port && strcasecmp(nodes[k].to.host,
			    jobs[i].to.host) == 0); k++)
				;
			if (k == nn) {
				memset(&nodes[nn], 0, sizeof(nodes[nn]));
				nodes[nn++].to = jobs[i].to;
			}
		}
		/* Every pipeline goes out first: one round trip in all. */
		for (size_t i = 0; i < n; i++)
			jobs[i].node = -1;
		for (size_t k = 0; k < nn; k++)
			send_node(cl, jobs, n, &nodes[k], (int)k, &stale, err,
			    errlen);
		for (size_t k = 0; k < nn; k++)
			if (!nodes[k].failed)
				recv_node(cl, jobs, n, &nodes[k], (int)k, &stale,
				    err, errlen);
		left = 0;
		for (size_t i = 0; i < n; i++)
			left += !jobs[i].done;
		if (left == 0)
			break;
		if (stale) {
			struct timespec ts = { 0, 20000000L * (round + 1) };

			if (round > 0)
				nanosleep(&ts, NULL);	/* a failover takes a moment */
			mt_cluster_refresh(cl, err, errlen);
		}
		for (size_t i = 0; i < n; i++)
			if (!jobs[i].done && !jobs[i].asking)
				route(cl, &jobs[i]);
	}
	free(jobs);
	free(nodes);
	if (left == 0 && cl->unreplicated)
		return -1;	/* err names the node */
	if (left == 0) {
		err[0] = '\0';
		return 0;
	}
	if (err[0] == '\0')
		snprintf(err, errlen, "%zu command(s) still redirected after "
		    "%d rounds", left, ROUNDS_MAX);
	return -1;
}
