/*
 * mailtrail-routed: answers Postfix's sender_dependent_default_transport_maps
 * lookups over the socketmap protocol with the transport of the route chosen
 * for the delivery: the serving threads. One thread per Postfix connection;
 * a refresher thread reads route health from Redis every second. Start-up,
 * reload and signals are common/service.c's, wired in routed_start.c.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../common/config.h"
#include "../common/log.h"
#include "../common/service.h"
#include "../state/db.h"
#include "../state/schema.h"
#include "route.h"
#include "routed.h"

#define IDLE_TIMEOUT_MS (600 * 1000)	/* Postfix's max_idle is 100s */
#define MAX_CONNECTIONS 1024

static pthread_mutex_t conn_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t conn_cond = PTHREAD_COND_INITIALIZER;
static int conn_fds[MAX_CONNECTIONS];
static size_t conn_count;
static volatile sig_atomic_t stopping;
static int listen_fd = -1;

/* Logs why no route was usable, at most once a second. */
static void
log_no_route(const char *sender, size_t len, const char *why, int closed)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static time_t last;
	static unsigned long suppressed;
	time_t now = time(NULL);

	pthread_mutex_lock(&lock);
	if (now == last) {
		suppressed++;
		pthread_mutex_unlock(&lock);
		return;
	}
	mt_log(LOG_WARNING, "sender=<%.*s>: %s; %s%s", (int)(len > 200 ? 200 :
	    len), sender, why, closed ? "answering TEMP, Postfix defers "
	    "the delivery (RouteFailClosed)" : "answering NOTFOUND, Postfix "
	    "uses default_transport (fail-open)", suppressed ?
	    " (more such lookups not logged)" : "");
	last = now;
	suppressed = 0;
	pthread_mutex_unlock(&lock);
}

/* A way to Redis for one thread, for the configuration it was made from. */
struct rlink {
	struct mt_db *db;
	struct mt_db_link *l;
	struct mt_schema schema;
	struct mt_config *cfg;		/* held while the link exists */
};

static void
rlink_close(struct rlink *k)
{
	if (k->l != NULL)
		mt_db_put(k->db, k->l);
	mt_db_free(k->db);
	if (k->cfg != NULL)
		mt_config_unref(k->cfg);
	memset(k, 0, sizeof(*k));
}

/* A link for cfg (made anew after a reload); 0, or -1 with err. */
static int
rlink_for(struct rlink *k, struct mt_config *cfg, char *err, size_t errlen)
{
	if (k->cfg != cfg)
		rlink_close(k);
	if (k->cfg == NULL) {
		k->cfg = mt_config_ref(cfg);
		if (mt_schema_init(&k->schema, cfg) != 0) {
			snprintf(err, errlen, "RedisPrefix is too long");
			return -1;
		}
	}
	if (k->db == NULL && (k->db = mt_db_new(cfg, err, errlen)) == NULL)
		return -1;
	if (k->l == NULL && (k->l = mt_db_get(k->db, err, errlen)) == NULL)
		return -1;
	return 0;
}

/* After a failure: the next use connects anew. */
static void
rlink_failed(struct rlink *k)
{
	if (k->l != NULL)
		mt_db_put(k->db, k->l);	/* a broken link is closed */
	k->l = NULL;
}

struct conn {
	int fd;
	struct rlink rl;	/* for warm-up counts, connected on demand */
	struct mt_config *cfg;		/* the request's configuration */
	char buf[MT_SOCKETMAP_MAX + 16];
	size_t len;
};

static int
take_warmup(void *arg, const struct mt_route *r, long day, long cap)
{
	struct conn *c = arg;
	char err[256];
	int rv;

	if (rlink_for(&c->rl, c->cfg, err, sizeof(err)) != 0) {
		mt_log(LOG_WARNING, "route %s: cannot count its warm-up "
		    "deliveries, skipping it: Redis: %s", r->name, err);
		rlink_failed(&c->rl);
		return -1;
	}
	rv = mt_route_take_redis(c->rl.l, &c->rl.schema, r, day, cap, err,
	    sizeof(err));
	if (rv < 0) {
		mt_log(LOG_WARNING, "route %s: cannot count its warm-up "
		    "deliveries, skipping it: Redis: %s", r->name, err);
		rlink_failed(&c->rl);
	}
	return rv;
}

static int
key_is_clean(const char *k, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)k[i] < 0x20 || k[i] == 0x7f)
			return 0;
	return n > 0;
}

/* One request to one reply in out; returns the reply length. */
static size_t
answer(struct conn *c, const struct mt_socketmap_req *req, char *out,
    size_t outlen)
{
	struct mt_config *cfg = mt_service_config();
	struct routed_rt *rt = routed_rt_of(cfg);
	char why[256], data[MT_ROUTE_NAME_MAX + 2];
	size_t n;
	int pick;

	if (req->name_len != strlen(MT_ROUTE_MAP_NAME) ||
	    memcmp(req->name, MT_ROUTE_MAP_NAME, req->name_len) != 0) {
		n = mt_socketmap_reply(out, outlen, "PERM", "unknown map name; "
		    "use socketmap:...:" MT_ROUTE_MAP_NAME);
		goto done;
	}
	if (!key_is_clean(req->key, req->key_len)) {
		n = mt_socketmap_reply(out, outlen, "PERM", "invalid key");
		goto done;
	}
	c->cfg = cfg;
	pick = mt_route_pick(rt->sel, req->key, req->key_len, mt_route_today(),
	    take_warmup, c, why, sizeof(why));
	if (pick >= 0) {
		snprintf(data, sizeof(data), "%s:",
		    mt_selector_route(rt->sel, (size_t)pick)->transport);
		n = mt_socketmap_reply(out, outlen, "OK", data);
	} else {
		log_no_route(req->key, req->key_len, why, cfg->route_fail_closed);
		n = cfg->route_fail_closed ?
		    mt_socketmap_reply(out, outlen, "TEMP", why) :
		    mt_socketmap_reply(out, outlen, "NOTFOUND", "");
	}
done:
	c->cfg = NULL;
	mt_config_unref(cfg);
	return n;
}

static int
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Serves requests until EOF, error or a malformed request. */
static void
serve_connection(struct conn *c)
{
	char out[512], err[128];
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };

	for (;;) {
		struct mt_socketmap_req req;
		long used;
		ssize_t r;

		while ((used = mt_socketmap_parse(c->buf, c->len, &req, err,
		    sizeof(err))) > 0) {
			size_t n = answer(c, &req, out, sizeof(out));

			if (n == 0 || write_all(c->fd, out, n) < 0)
				return;
			memmove(c->buf, c->buf + used, c->len - (size_t)used);
			c->len -= (size_t)used;
		}
		if (used < 0) {
			size_t n = mt_socketmap_reply(out, sizeof(out), "PERM",
			    err);

			mt_log(LOG_WARNING, "socketmap protocol error, closing "
			    "the connection: %s", err);
			if (n > 0)
				(void)write_all(c->fd, out, n);
			return;
		}
		if (poll(&pfd, 1, IDLE_TIMEOUT_MS) <= 0)
			return;
		r = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return;
		c->len += (size_t)r;
	}
}

static void
conn_forget(int fd)
{
	pthread_mutex_lock(&conn_lock);
	for (size_t i = 0; i < conn_count; i++)
		if (conn_fds[i] == fd) {
			conn_fds[i] = conn_fds[--conn_count];
			break;
		}
	pthread_cond_broadcast(&conn_cond);
	pthread_mutex_unlock(&conn_lock);
}

static void *
connection_thread(void *arg)
{
	struct conn *c = arg;

	serve_connection(c);
	rlink_close(&c->rl);
	conn_forget(c->fd);
	close(c->fd);
	free(c);
	return NULL;
}

static void *
accept_thread(void *arg)
{
	pthread_attr_t attr;

	(void)arg;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	while (!stopping) {
		int fd = accept(listen_fd, NULL, NULL);
		struct conn *c;
		pthread_t tid;

		if (fd < 0) {
			if (stopping)
				break;
			if (errno != EINTR && errno != ECONNABORTED) {
				mt_log(LOG_WARNING, "accept: %s", strerror(errno));
				usleep(100000);
			}
			continue;
		}
		pthread_mutex_lock(&conn_lock);
		if (stopping || conn_count == MAX_CONNECTIONS ||
		    (c = calloc(1, sizeof(*c))) == NULL) {
			pthread_mutex_unlock(&conn_lock);
			mt_log(LOG_WARNING, "refusing a connection: %s",
			    stopping ? "stopping" : "too many connections");
			close(fd);
			continue;
		}
		c->fd = fd;
		conn_fds[conn_count++] = fd;
		if (pthread_create(&tid, &attr, connection_thread, c) != 0) {
			conn_fds[--conn_count] = -1;
			pthread_mutex_unlock(&conn_lock);
			mt_log(LOG_WARNING, "cannot start a connection thread");
			close(fd);
			free(c);
			continue;
		}
		pthread_mutex_unlock(&conn_lock);
	}
	pthread_attr_destroy(&attr);
	return NULL;
}

static pthread_mutex_t refresh_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t refresh_cond = PTHREAD_COND_INITIALIZER;
static int refresh_stop;

/* Reads route health from Redis into the selector in service. */
static void
refresh_once(struct rlink *k, int *failing)
{
	struct mt_config *cfg = mt_service_config();
	char err[256] = "";
	int ok;

	ok = rlink_for(k, cfg, err, sizeof(err)) == 0 &&
	    mt_selector_refresh(routed_rt_of(cfg)->sel, k->l, &k->schema, err,
	    sizeof(err)) == 0;
	if (!ok)
		rlink_failed(k);
	if (!ok && !*failing)
		mt_log(LOG_WARNING, "cannot read route health from Redis %s, "
		    "keeping the last known states: %s", k->db ?
		    mt_db_name(k->db) : "(not set up)", err);
	else if (ok && *failing)
		mt_log(LOG_INFO, "route health readable from Redis again");
	*failing = !ok;
	mt_config_unref(cfg);
}

static void *
refresh_thread(void *arg)
{
	struct rlink k = { 0 };
	int failing = 0;
	struct timespec ts;

	(void)arg;
	pthread_mutex_lock(&refresh_lock);
	while (!refresh_stop) {
		pthread_mutex_unlock(&refresh_lock);
		refresh_once(&k, &failing);
		pthread_mutex_lock(&refresh_lock);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		if (!refresh_stop)
			pthread_cond_timedwait(&refresh_cond, &refresh_lock, &ts);
	}
	pthread_mutex_unlock(&refresh_lock);
	rlink_close(&k);
	return NULL;
}

/* Closes every connection and waits (bounded) for their threads. */
static void
drain_connections(void)
{
	struct timespec ts;

	pthread_mutex_lock(&conn_lock);
	for (size_t i = 0; i < conn_count; i++)
		shutdown(conn_fds[i], SHUT_RDWR);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	while (conn_count > 0)
		if (pthread_cond_timedwait(&conn_cond, &conn_lock, &ts) != 0)
			break;
	pthread_mutex_unlock(&conn_lock);
}

void
routed_refresh_soon(void)
{
	pthread_mutex_lock(&refresh_lock);
	pthread_cond_signal(&refresh_cond);
	pthread_mutex_unlock(&refresh_lock);
}

void
routed_serve(struct mt_service *svc, int fd)
{
	pthread_t acc, ref;

	listen_fd = fd;
	if (pthread_create(&ref, NULL, refresh_thread, NULL) != 0)
		mt_fatal("cannot start the health refresher");
	if (pthread_create(&acc, NULL, accept_thread, NULL) != 0)
		mt_fatal("cannot start the accept thread");
	(void)mt_service_wait(svc);
	stopping = 1;
	shutdown(listen_fd, SHUT_RDWR);
	pthread_join(acc, NULL);
	close(listen_fd);
	drain_connections();
	pthread_mutex_lock(&refresh_lock);
	refresh_stop = 1;
	pthread_cond_signal(&refresh_cond);
	pthread_mutex_unlock(&refresh_lock);
	pthread_join(ref, NULL);
}
