/*
 * The milter server: loop threads with a libevent base each, connections
 * handed out round-robin at accept and pinned to their loop for good, and
 * a worker pool for mt_eng_defer whose results go back to the loop that
 * owns the connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>

#include "engine.h"

#define OUT_HIGH (1024 * 1024)	/* stop reading while this much is unsent */
#define OUT_LOW (256 * 1024)	/* read again below this */
#define WRITE_TIMEOUT_S 30	/* a peer that reads nothing for this long */

struct loop;

struct conn {
	struct loop *lp;
	struct bufferevent *bev;
	struct mt_eng_ctx *ctx;
	unsigned long id;
	int pending;		/* deferred work in flight */
	int gone;		/* peer closed or error while pending */
	int quitting;		/* close once the output is sent */
	struct conn *prev, *next;	/* the loop's connections */
	struct conn *qnext;		/* worker queue, done list */
};

struct loop {
	struct mt_eng *eng;
	struct event_base *base;
	struct event *wake;	/* new fds, finished work, stop */
	pthread_t thread;
	pthread_mutex_t mu;	/* guards the three lists below */
	int *fds;
	size_t nfds, capfds;
	struct conn *done;
	int stop;
	int quiesce, quiesced;	/* loops[0]: stop accepting, and done */
	pthread_cond_t cv;	/* quiesced */
	struct conn *conns;	/* loop thread only */
};

struct mt_eng {
	struct mt_eng_filter filter;
	struct mt_eng_opts opts;
	int listen_fd;
	struct loop *loops;
	int nloops;
	struct evconnlistener *listener;	/* on loops[0] */
	struct event *resume;			/* after an accept error */
	unsigned next_loop;
	unsigned long next_id;	/* loops[0] only: ids are given at accept */

	pthread_mutex_t wmu;	/* the worker queue */
	pthread_cond_t wcv;
	struct conn *whead, **wtail;
	int wstop;
	pthread_t *workers;
	int nworkers;
};

static void
report(struct mt_eng *e, int prio, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
report(struct mt_eng *e, int prio, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (e->opts.report == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	e->opts.report(prio, msg);
}

static int
out_append(void *sink, const void *p, size_t n)
{
	return evbuffer_add(sink, p, n);
}

static void
conn_free(struct conn *k)
{
	struct loop *lp = k->lp;

	if (k->prev)
		k->prev->next = k->next;
	else
		lp->conns = k->next;
	if (k->next)
		k->next->prev = k->prev;
	mt_eng_ctx_free(k->ctx);
	bufferevent_free(k->bev);
	free(k);
}

/* One line for the connection that is dropped, then drop it. */
static void
conn_fail(struct conn *k, const char *why)
{
	report(k->lp->eng, LOG_WARNING, "milter connection %lu: %s; closed",
	    k->id, why);
	if (k->pending) {	/* the worker still has it: end it on return */
		k->gone = 1;
		bufferevent_disable(k->bev, EV_READ | EV_WRITE);
		return;
	}
	conn_free(k);
}

/* After feed or finished: what rc says about the connection. */
static void
conn_after(struct conn *k, int rc, const char *why)
{
	struct evbuffer *out = bufferevent_get_output(k->bev);

	switch (rc) {
	case 1:
		if (evbuffer_get_length(out) > OUT_HIGH)
			bufferevent_disable(k->bev, EV_READ);
		else if ((bufferevent_get_enabled(k->bev) & EV_READ) == 0)
			bufferevent_enable(k->bev, EV_READ);
		break;
	case 2:
		k->pending = 1;
		bufferevent_disable(k->bev, EV_READ);
		break;
	case 0:
		k->quitting = 1;
		bufferevent_disable(k->bev, EV_READ);
		if (evbuffer_get_length(out) == 0)
			conn_free(k);
		break;
	default: {
		char line[300];

		snprintf(line, sizeof(line), "protocol error: %s", why);
		conn_fail(k, line);
		break;
	}
	}
}

static void
on_read(struct bufferevent *bev, void *arg)
{
	struct conn *k = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char why[256] = "";
	int rc = 1;

	while (rc == 1 && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;

		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		rc = mt_eng_feed(k->ctx, v.iov_base, v.iov_len, why,
		    sizeof(why));
		evbuffer_drain(in, v.iov_len);
	}
	conn_after(k, rc, why);
}

static void
on_write(struct bufferevent *bev, void *arg)
{
	struct conn *k = arg;

	(void)bev;
	if (k->quitting) {
		conn_free(k);
		return;
	}
	if (!k->pending)
		bufferevent_enable(k->bev, EV_READ);
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *k = arg;
	char why[128];

	(void)bev;
	if (what & BEV_EVENT_TIMEOUT) {
		snprintf(why, sizeof(why), (what & BEV_EVENT_WRITING) ?
		    "the MTA read nothing for %d s" : "idle for %d s",
		    (what & BEV_EVENT_WRITING) ? WRITE_TIMEOUT_S :
		    k->lp->eng->opts.timeout_s);
		conn_fail(k, why);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		int e = EVUTIL_SOCKET_ERROR();

		/* A reset is the MTA going away, as an EOF is. */
		if (e != ECONNRESET && e != EPIPE) {
			snprintf(why, sizeof(why), "socket error: %s",
			    strerror(e));
			conn_fail(k, why);
			return;
		}
	}
	/* EOF: the MTA is gone. A message still open is aborted. */
	if (mt_eng_partial(k->ctx) > 0) {
		snprintf(why, sizeof(why), "protocol error: the MTA closed "
		    "in the middle of a packet (%zu bytes of it came)",
		    mt_eng_partial(k->ctx));
		conn_fail(k, why);
		return;
	}
	if (k->pending) {
		k->gone = 1;
		bufferevent_disable(k->bev, EV_READ | EV_WRITE);
		return;
	}
	conn_free(k);
}

/* ---- the worker pool ------------------------------------------------- */

static void
dispatch(struct mt_eng_ctx *ctx, void *arg)
{
	struct conn *k = arg;
	struct mt_eng *e = k->lp->eng;

	(void)ctx;
	pthread_mutex_lock(&e->wmu);
	k->qnext = NULL;
	*e->wtail = k;
	e->wtail = &k->qnext;
	pthread_cond_signal(&e->wcv);
	pthread_mutex_unlock(&e->wmu);
}

static void *
worker(void *arg)
{
	struct mt_eng *e = arg;

	pthread_mutex_lock(&e->wmu);
	for (;;) {
		struct conn *k = e->whead;
		struct loop *lp;

		if (k == NULL) {
			if (e->wstop)
				break;
			pthread_cond_wait(&e->wcv, &e->wmu);
			continue;
		}
		if ((e->whead = k->qnext) == NULL)
			e->wtail = &e->whead;
		pthread_mutex_unlock(&e->wmu);
		mt_eng_run_work(k->ctx);
		lp = k->lp;
		pthread_mutex_lock(&lp->mu);
		k->qnext = lp->done;
		lp->done = k;
		pthread_mutex_unlock(&lp->mu);
		event_active(lp->wake, EV_READ, 0);
		pthread_mutex_lock(&e->wmu);
	}
	pthread_mutex_unlock(&e->wmu);
	return NULL;
}

/* ---- the loops ------------------------------------------------------- */

static void
conn_new(struct loop *lp, int fd, unsigned long id)
{
	struct mt_eng *e = lp->eng;
	struct conn *k = calloc(1, sizeof(*k));
	struct timeval rtv = { e->opts.timeout_s, 0 };
	struct timeval wtv = { WRITE_TIMEOUT_S, 0 };
	struct mt_eng_out out;

	if (k == NULL) {
		report(e, LOG_ERR, "milter connection %lu: out of memory; "
		    "closed", id);
		close(fd);
		return;
	}
	k->lp = lp;
	k->id = id;
	k->bev = bufferevent_socket_new(lp->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (k->bev == NULL) {
		report(e, LOG_ERR, "milter connection %lu: out of memory; "
		    "closed", id);
		close(fd);
		free(k);
		return;
	}
	out.append = out_append;
	out.sink = bufferevent_get_output(k->bev);
	if ((k->ctx = mt_eng_ctx_new(&e->filter, out)) == NULL) {
		report(e, LOG_ERR, "milter connection %lu: out of memory; "
		    "closed", id);
		bufferevent_free(k->bev);
		free(k);
		return;
	}
	mt_eng_ctx_set_dispatch(k->ctx, dispatch, k);
	bufferevent_setcb(k->bev, on_read, on_write, on_event, k);
	bufferevent_setwatermark(k->bev, EV_WRITE, OUT_LOW, 0);
	bufferevent_set_timeouts(k->bev, &rtv, &wtv);
	bufferevent_enable(k->bev, EV_READ);
	k->next = lp->conns;
	if (lp->conns)
		lp->conns->prev = k;
	lp->conns = k;
}

static void
finish_done(struct conn *k, int stopping)
{
	char why[256] = "";
	int rc;

	k->pending = 0;
	rc = mt_eng_finished(k->ctx, why, sizeof(why));
	if (k->gone || stopping) {
		conn_free(k);
		return;
	}
	conn_after(k, rc, why);
	/* Bytes that came while pending are still in the input buffer. */
	if (rc == 1 && evbuffer_get_length(bufferevent_get_input(k->bev)) > 0)
		on_read(k->bev, k);
}

static void
on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct loop *lp = arg;
	struct conn *done, *next;
	int *fds, stop;
	size_t nfds;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&lp->mu);
	done = lp->done;
	lp->done = NULL;
	fds = lp->fds;
	nfds = lp->nfds;
	lp->fds = NULL;
	lp->nfds = lp->capfds = 0;
	stop = lp->stop;
	if (lp->quiesce && !lp->quiesced) {
		/*
		 * The listener lives on this loop: disabled here, never from
		 * another thread, where it would wait for a callback that is
		 * waiting for it.
		 */
		evconnlistener_disable(lp->eng->listener);
		event_del(lp->eng->resume);
		lp->quiesced = 1;
		pthread_cond_broadcast(&lp->cv);
	}
	pthread_mutex_unlock(&lp->mu);
	for (; done; done = next) {
		next = done->qnext;
		finish_done(done, stop);
	}
	for (size_t i = 0; i < nfds; i++) {
		if (stop)
			close(fds[i * 2]);
		else
			conn_new(lp, fds[i * 2], (unsigned long)fds[i * 2 + 1]);
	}
	free(fds);
	if (stop) {
		while (lp->conns)
			conn_free(lp->conns);
		event_base_loopbreak(lp->base);
	}
}

/* Hands fd to a loop's thread (fds holds fd, id pairs). */
static void
give(struct loop *lp, int fd, unsigned long id)
{
	pthread_mutex_lock(&lp->mu);
	if (lp->nfds == lp->capfds) {
		size_t cap = lp->capfds ? lp->capfds * 2 : 16;
		int *nf = realloc(lp->fds, cap * 2 * sizeof(int));

		if (nf == NULL) {
			pthread_mutex_unlock(&lp->mu);
			close(fd);
			return;
		}
		lp->fds = nf;
		lp->capfds = cap;
	}
	lp->fds[lp->nfds * 2] = fd;
	lp->fds[lp->nfds * 2 + 1] = (int)(id & 0x7fffffff);
	lp->nfds++;
	pthread_mutex_unlock(&lp->mu);
	event_active(lp->wake, EV_READ, 0);
}

static void
on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct mt_eng *e = arg;
	struct loop *lp = &e->loops[e->next_loop++ % (unsigned)e->nloops];
	unsigned long id = ++e->next_id;

	(void)l;
	(void)sa;
	(void)salen;
	if (lp == &e->loops[0])
		conn_new(lp, fd, id);
	else
		give(lp, fd, id);
}

static void
on_resume_accept(evutil_socket_t fd, short what, void *arg)
{
	struct mt_eng *e = arg;

	(void)fd;
	(void)what;
	evconnlistener_enable(e->listener);
}

static void
on_accept_error(struct evconnlistener *l, void *arg)
{
	struct mt_eng *e = arg;
	int err = EVUTIL_SOCKET_ERROR();
	struct timeval tv = { 0, 100000 };

	/*
	 * Out of descriptors: say so, keep serving the connections we have
	 * and try again in 100 ms rather than spin on a listener that stays
	 * readable.
	 */
	report(e, LOG_ERR, "cannot accept a milter connection: %s; "
	    "trying again in 100 ms", strerror(err));
	evconnlistener_disable(l);
	event_add(e->resume, &tv);
}

static void *
loop_main(void *arg)
{
	struct loop *lp = arg;

	event_base_loop(lp->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

static void
free_loops(struct mt_eng *e)
{
	for (int i = 0; i < e->nloops; i++) {
		if (e->loops[i].wake)
			event_free(e->loops[i].wake);
		if (e->loops[i].base)
			event_base_free(e->loops[i].base);
		pthread_mutex_destroy(&e->loops[i].mu);
		pthread_cond_destroy(&e->loops[i].cv);
	}
	free(e->loops);
	free(e->workers);
	free(e);
}

struct mt_eng *
mt_eng_start(int listen_fd, const struct mt_eng_filter *filter,
    const struct mt_eng_opts *opts, char *err, size_t errlen)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct mt_eng *e = calloc(1, sizeof(*e));
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	if (e == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	/* event_active from the workers needs libevent's locking. */
	pthread_once(&once, (void (*)(void))evthread_use_pthreads);
	signal(SIGPIPE, SIG_IGN);	/* an MTA gone mid-write is an EOF */
	e->filter = *filter;
	e->opts = *opts;
	if (e->opts.loops <= 0)
		e->opts.loops = ncpu > 0 ? (int)ncpu : 1;
	if (e->opts.workers <= 0)
		e->opts.workers = 8;
	if (e->opts.timeout_s <= 0)
		e->opts.timeout_s = 7210;
	e->listen_fd = listen_fd;
	e->wtail = &e->whead;
	pthread_mutex_init(&e->wmu, NULL);
	pthread_cond_init(&e->wcv, NULL);
	e->nloops = e->opts.loops;
	e->loops = calloc((size_t)e->nloops, sizeof(*e->loops));
	e->workers = calloc((size_t)e->opts.workers, sizeof(*e->workers));
	if (e->loops == NULL || e->workers == NULL) {
		snprintf(err, errlen, "out of memory");
		free(e->loops);
		free(e->workers);
		free(e);
		return NULL;
	}
	for (int i = 0; i < e->nloops; i++) {
		struct loop *lp = &e->loops[i];

		lp->eng = e;
		pthread_mutex_init(&lp->mu, NULL);
		pthread_cond_init(&lp->cv, NULL);
		lp->base = event_base_new();
		if (lp->base == NULL || (lp->wake = event_new(lp->base, -1, 0,
		    on_wake, lp)) == NULL) {
			snprintf(err, errlen, "cannot make an event loop");
			free_loops(e);
			return NULL;
		}
	}
	evutil_make_socket_nonblocking(listen_fd);
	e->listener = evconnlistener_new(e->loops[0].base, on_accept, e,
	    LEV_OPT_CLOSE_ON_EXEC, -1, listen_fd);
	if (e->listener == NULL) {
		snprintf(err, errlen, "cannot listen: %s", strerror(errno));
		free_loops(e);
		return NULL;
	}
	evconnlistener_set_error_cb(e->listener, on_accept_error);
	e->resume = evtimer_new(e->loops[0].base, on_resume_accept, e);
	if (e->resume == NULL) {
		snprintf(err, errlen, "out of memory");
		evconnlistener_free(e->listener);
		free_loops(e);
		return NULL;
	}
	for (int i = 0; i < e->opts.workers; i++) {
		if (pthread_create(&e->workers[i], NULL, worker, e) != 0)
			break;
		e->nworkers++;
	}
	for (int i = 0; i < e->nloops; i++)
		if (pthread_create(&e->loops[i].thread, NULL, loop_main,
		    &e->loops[i]) != 0) {
			snprintf(err, errlen, "cannot start a loop thread");
			/* The ones started would run forever: end here. */
			abort();
		}
	return e;
}

void
mt_eng_stop(struct mt_eng *e)
{
	if (e == NULL)
		return;
	/* No new connections; work in flight is finished by the workers. */
	pthread_mutex_lock(&e->loops[0].mu);
	e->loops[0].quiesce = 1;
	event_active(e->loops[0].wake, EV_READ, 0);
	while (!e->loops[0].quiesced)
		pthread_cond_wait(&e->loops[0].cv, &e->loops[0].mu);
	pthread_mutex_unlock(&e->loops[0].mu);
	pthread_mutex_lock(&e->wmu);
	e->wstop = 1;
	pthread_cond_broadcast(&e->wcv);
	pthread_mutex_unlock(&e->wmu);
	for (int i = 0; i < e->nworkers; i++)
		pthread_join(e->workers[i], NULL);
	for (int i = 0; i < e->nloops; i++) {
		pthread_mutex_lock(&e->loops[i].mu);
		e->loops[i].stop = 1;
		pthread_mutex_unlock(&e->loops[i].mu);
		event_active(e->loops[i].wake, EV_READ, 0);
	}
	for (int i = 0; i < e->nloops; i++)
		pthread_join(e->loops[i].thread, NULL);
	event_free(e->resume);
	evconnlistener_free(e->listener);
	pthread_mutex_destroy(&e->wmu);
	pthread_cond_destroy(&e->wcv);
	free_loops(e);
}
