/*
 * Choosing a route for one delivery: smooth weighted round robin (nginx's
 * algorithm: over any window each route's share follows its weight), or
 * weighted rendezvous hashing per sender domain when sticky, among the
 * routes that are active and still under today's warm-up cap.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"
#include "../state/db.h"
#include "../state/schema.h"

struct slot {
	struct mt_route route;
	enum mt_route_state state;
	long current;			/* SWRR running weight */
	long capped_day;		/* day its cap was found reached, or -1 */
};

struct mt_selector {
	pthread_mutex_t lock;
	struct slot *slots;
	size_t n;
	int sticky;
	int health_known;
};

const char *
mt_route_state_name(enum mt_route_state s)
{
	switch (s) {
	case MT_ROUTE_PAUSED: return "paused";
	case MT_ROUTE_LISTED: return "listed";
	default: return "active";
	}
}

struct mt_selector *
mt_selector_new(const struct mt_routes *routes, int sticky)
{
	struct mt_selector *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->slots = calloc(routes->n ? routes->n : 1, sizeof(*s->slots));
	if (s->slots == NULL) {
		free(s);
		return NULL;
	}
	for (size_t i = 0; i < routes->n; i++) {
		s->slots[i].route = routes->v[i];
		s->slots[i].capped_day = -1;
	}
	s->n = routes->n;
	s->sticky = sticky;
	s->health_known = 1;
	pthread_mutex_init(&s->lock, NULL);
	return s;
}

void
mt_selector_free(struct mt_selector *s)
{
	if (s == NULL)
		return;
	pthread_mutex_destroy(&s->lock);
	free(s->slots);
	free(s);
}

size_t
mt_selector_count(const struct mt_selector *s)
{
	return s->n;
}

const struct mt_route *
mt_selector_route(const struct mt_selector *s, size_t i)
{
	return i < s->n ? &s->slots[i].route : NULL;
}

void
mt_selector_set_state(struct mt_selector *s, size_t i,
    enum mt_route_state st)
{
	pthread_mutex_lock(&s->lock);
	if (i < s->n)
		s->slots[i].state = st;
	pthread_mutex_unlock(&s->lock);
}

void
mt_selector_set_health_known(struct mt_selector *s, int known)
{
	pthread_mutex_lock(&s->lock);
	s->health_known = known;
	pthread_mutex_unlock(&s->lock);
}

/* FNV-1a 64 then a finaliser: cheap, stable across hosts and restarts. */
static uint64_t
hash64(const char *a, size_t an, const char *b)
{
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < an; i++)
		h = (h ^ (unsigned char)a[i]) * 1099511628211ULL;
	h = (h ^ 0xff) * 1099511628211ULL;
	for (; *b; b++)
		h = (h ^ (unsigned char)*b) * 1099511628211ULL;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

/*
 * Sticky choice: the route with the highest weighted rendezvous score for
 * the domain. Every MTA computes the same answer without shared state, and
 * pausing one route moves only the domains that were on it.
 */
static int
sticky_candidate(struct mt_selector *s, const char *dom, size_t dn,
    const unsigned char *excluded)
{
	double best = -INFINITY;
	int pick = -1;

	for (size_t i = 0; i < s->n; i++) {
		double u, score;

		if (excluded[i])
			continue;
		u = ((double)(hash64(dom, dn, s->slots[i].route.name) >> 11) +
		    0.5) / 9007199254740992.0;
		score = -(double)s->slots[i].route.weight / log(u);
		if (score > best) {
			best = score;
			pick = (int)i;
		}
	}
	return pick;
}

/* One SWRR step over the routes not excluded; undo restores it. */
static int
swrr_step(struct mt_selector *s, const unsigned char *excluded, long *total)
{
	int pick = -1;

	*total = 0;
	for (size_t i = 0; i < s->n; i++) {
		if (excluded[i])
			continue;
		s->slots[i].current += s->slots[i].route.weight;
		*total += s->slots[i].route.weight;
		if (pick < 0 || s->slots[i].current > s->slots[pick].current)
			pick = (int)i;
	}
	if (pick >= 0)
		s->slots[pick].current -= *total;
	return pick;
}

static void
swrr_undo(struct mt_selector *s, const unsigned char *excluded, int pick,
    long total)
{
	for (size_t i = 0; i < s->n; i++)
		if (!excluded[i])
			s->slots[i].current -= s->slots[i].route.weight;
	s->slots[pick].current += total;
}

static void
why_none(char *why, size_t whylen, size_t paused, size_t listed,
    size_t capped, size_t unanswered)
{
	snprintf(why, whylen, "no usable route: %zu paused, %zu listed, %zu at "
	    "warm-up cap, %zu warm-up count unavailable", paused, listed,
	    capped, unanswered);
}

int
mt_route_pick(struct mt_selector *s, const char *sender, size_t len,
    long day, mt_route_take_fn take, void *arg, char *why, size_t whylen)
{
	unsigned char excl[256], *excluded = excl;
	size_t paused = 0, listed = 0, capped = 0, unanswered = 0;
	char dom[MT_ROUTE_HOST_MAX + 1];
	size_t dn = 0;
	int pick = -1;

	if (s->n == 0) {
		snprintf(why, whylen, "no routes configured");
		return -1;
	}
	if (s->n > sizeof(excl) && (excluded = malloc(s->n)) == NULL) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	if (s->sticky)
		dn = mt_route_sender_domain(sender, len, dom, sizeof(dom));
	pthread_mutex_lock(&s->lock);
	if (!s->health_known) {
		pthread_mutex_unlock(&s->lock);
		snprintf(why, whylen, "route health unknown (Redis not read "
		    "yet)");
		goto out;
	}
	for (size_t i = 0; i < s->n; i++) {
		struct slot *sl = &s->slots[i];

		excluded[i] = 1;
		if (sl->state == MT_ROUTE_PAUSED)
			paused++;
		else if (sl->state == MT_ROUTE_LISTED)
			listed++;
		else if (sl->capped_day == day ||
		    (sl->route.warmup && mt_route_cap(&sl->route, day) == 0))
			capped++;
		else
			excluded[i] = 0;
	}
	for (;;) {
		long total = 0, cap;
		int r;

		pick = s->sticky ? sticky_candidate(s, dom, dn, excluded)
		    : swrr_step(s, excluded, &total);
		if (pick < 0)
			break;
		cap = mt_route_cap(&s->slots[pick].route, day);
		if (cap < 0)
			break;
		r = take ? take(arg, &s->slots[pick].route, day, cap) : -1;
		if (r == 1)
			break;
		if (!s->sticky)
			swrr_undo(s, excluded, pick, total);
		excluded[pick] = 1;
		if (r == 0) {
			s->slots[pick].capped_day = day;
			capped++;
		} else {
			unanswered++;
		}
		pick = -1;
	}
	pthread_mutex_unlock(&s->lock);
	if (pick < 0)
		why_none(why, whylen, paused, listed, capped, unanswered);
out:
	if (excluded != excl)
		free(excluded);
	return pick;
}

/*
 * INCR with a limit, atomically, so MTAs sharing one Redis share one cap.
 * The key lives two days: long enough to cover clock skew between MTAs.
 */
int
mt_route_take_redis(struct mt_db_link *l, const struct mt_schema *sc,
    const struct mt_route *r, long day, long cap, char *err, size_t errlen)
{
	char ds[16], capv[24], *key;
	const char *args[2] = { capv, "172800" };  /* a counter outlives its day */
	struct mt_db_batch b;
	const redisReply *rep;
	int rv = -1;

	mt_route_day_string(day, ds);
	if ((key = mt_key_route_day(sc, r->name, ds)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	snprintf(capv, sizeof(capv), "%ld", cap);
	mt_db_batch_init(&b);
	mt_db_add_script(&b, mt_schema_script(MT_SCRIPT_ROUTE_TAKE), 1,
	    (const char *const *)&key, 2, args, NULL);
	if (mt_db_run(l, &b, 0, err, errlen) == 0) {
		rep = mt_db_reply(&b, 0);
		if (rep != NULL && rep->type == REDIS_REPLY_INTEGER)
			rv = rep->integer == 1 ? 1 : 0;
		else
			snprintf(err, errlen, "%.200s", rep != NULL &&
			    rep->type == REDIS_REPLY_ERROR ? rep->str :
			    "unexpected reply");
	}
	mt_db_batch_free(&b);
	free(key);
	return rv;
}

static enum mt_route_state
state_from_reply(const redisReply *paused, const redisReply *listed)
{
	if (paused->type == REDIS_REPLY_STRING && strcmp(paused->str, "1") == 0)
		return MT_ROUTE_PAUSED;
	if (listed->type == REDIS_REPLY_STRING && strcmp(listed->str, "1") == 0)
		return MT_ROUTE_LISTED;
	return MT_ROUTE_ACTIVE;
}

int
mt_selector_refresh(struct mt_selector *s, struct mt_db_link *l,
    const struct mt_schema *sc, char *err, size_t errlen)
{
	enum mt_route_state *st;
	struct mt_db_batch b;
	size_t i;
	int rv = 0;

	if (s->n == 0)
		return 0;
	if ((st = calloc(s->n, sizeof(*st))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	mt_db_batch_init(&b);
	for (i = 0; i < s->n; i++) {
		const char *name = s->slots[i].route.name;
		char *key = mt_key(sc, MT_KEY_ROUTE, name, strlen(name));

		if (key == NULL)
			b.oom = 1;
		else
			mt_db_add(&b, key, "HMGET %s paused listed", key);
		free(key);
	}
	if (mt_db_run(l, &b, 0, err, errlen) != 0)
		rv = -1;
	for (i = 0; rv == 0 && i < s->n; i++) {
		const redisReply *rep = mt_db_reply(&b, i);

		if (rep != NULL && rep->type == REDIS_REPLY_ARRAY &&
		    rep->elements == 2)
			st[i] = state_from_reply(rep->element[0],
			    rep->element[1]);
		else {
			snprintf(err, errlen, "unexpected reply to HMGET");
			rv = -1;
		}
	}
	mt_db_batch_free(&b);
	if (rv == 0) {
		pthread_mutex_lock(&s->lock);
		for (i = 0; i < s->n; i++)
			s->slots[i].state = st[i];
		s->health_known = 1;
		pthread_mutex_unlock(&s->lock);
	}
	free(st);
	return rv;
}

void
mt_selector_copy_states(struct mt_selector *dst, struct mt_selector *src)
{
	pthread_mutex_lock(&src->lock);
	for (size_t i = 0; i < dst->n; i++)
		for (size_t j = 0; j < src->n; j++)
			if (strcmp(dst->slots[i].route.name,
			    src->slots[j].route.name) == 0)
				dst->slots[i].state = src->slots[j].state;
	dst->health_known = src->health_known;
	pthread_mutex_unlock(&src->lock);
}
