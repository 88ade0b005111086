/*
 * Building the hop path. Received: headers are read top down: each one was
 * written by the host below it, so it is believed only while every host so
 * far lies inside the site (InternalHosts, TrustedRelays, SiteMTAs); the first
 * relay outside is the last trustworthy fact, and everything older is
 * unverified. X-Mailtrail-Hop counts only when a site MTA handed it over.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/cidr.h"
#include "geo.h"

void
mt_path_note_received(struct mt_path *p, const char *value)
{
	p->nrx_seen++;
	if (p->nrx == MT_PATH_RECEIVED_KEEP)
		return;		/* counted, not kept: the bound holds */
	if (p->rx == NULL) {
		p->rx = calloc(MT_PATH_RECEIVED_KEEP, sizeof(*p->rx));
		if (p->rx == NULL)
			return;
	}
	if (mt_received_parse(value, strlen(value), &p->rx[p->nrx]) == 0)
		p->nrx++;
}

void
mt_path_note_hop(struct mt_path *p, const char *value)
{
	if (p->nup == MT_PATH_HOPS_MAX - 1)
		return;		/* leave room for our own hop */
	if (p->up == NULL) {
		p->up = calloc(MT_PATH_HOPS_MAX, sizeof(*p->up));
		if (p->up == NULL)
			return;
	}
	if (mt_hop_parse(value, strlen(value), &p->up[p->nup]) == 0)
		p->nup++;
}

void
mt_path_free(struct mt_path *p)
{
	free(p->rx);
	free(p->up);
	memset(p, 0, sizeof(*p));
}

static int
inside(const struct mt_path_in *in, const char *ip)
{
	return mt_cidr_list_match_text(in->internal, ip) ||
	    mt_cidr_list_match_text(in->trusted, ip) ||
	    (in->site_mtas && mt_cidr_list_match_text(in->site_mtas, ip));
}

/*
 * Upstream hops the path may use: only a site MTA stamps them; from anyone
 * else (a LAN client too) they are forged and must neither become hops nor
 * cut the Received: walk short. The sendmail command ("local") is no peer.
 */
static size_t
upstream_hops(const struct mt_path *p, const struct mt_path_in *in)
{
	if (in->site_mtas == NULL ||
	    !mt_cidr_list_match_text(in->site_mtas, in->client_ip))
		return 0;
	return p->nup;
}

static int
stamped_upstream(const struct mt_path *p, size_t nup, const char *ip)
{
	for (size_t i = 0; i < nup; i++)
		if (strcmp(p->up[i].ip, ip) == 0)
			return 1;
	return 0;
}

static int
by_order(const void *a, const void *b)
{
	return ((const struct mt_hop *)a)->n - ((const struct mt_hop *)b)->n;
}

/*
 * Hops learnt from Received:, newest first, into out (room for max).
 * Postfix shows its milters the Received: it is adding for this very
 * hop; that one is the client hop, which we stamp from what we saw.
 */
static size_t
received_hops(const struct mt_path *p, const struct mt_path_in *in,
    size_t nup, struct mt_hop *out, size_t max)
{
	size_t i = 0, n = 0;
	int trusted = inside(in, in->client_ip);

	if (p->nrx > 0 && strcmp(p->rx[0].ip, in->client_ip) == 0)
		i = 1;
	for (; i < p->nrx && n < max; i++) {
		const struct mt_received *r = &p->rx[i];
		struct mt_hop *h;

		if (r->ip[0] == '\0')
			continue;	/* local pickup, "invoked by uid": no hop */
		if (stamped_upstream(p, nup, r->ip))
			break;		/* a mailtrail MTA of ours was here */
		h = &out[n++];
		memset(h, 0, sizeof(*h));
		snprintf(h->ip, sizeof(h->ip), "%s", r->ip);
		snprintf(h->by, sizeof(h->by), "%s",
		    r->by_host[0] ? r->by_host : "unknown");
		h->src = MT_HOP_RECEIVED;
		h->trust = trusted ? MT_TRUST_VERIFIED : MT_TRUST_UNVERIFIED;
		if (in->geo)
			mt_geo_lookup(in->geo, h->ip, &h->loc);
		/* Past the first outsider, nothing below can be believed. */
		if (trusted && !inside(in, r->ip))
			trusted = 0;
	}
	return n;
}

static void
utc_time(int64_t ms, char *out, size_t outsize)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, outsize, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

size_t
mt_path_build(const struct mt_path *p, const struct mt_path_in *in,
    struct mt_hop *hops, size_t *first_new)
{
	struct mt_hop rx[MT_PATH_HOPS_MAX];
	size_t n = upstream_hops(p, in), nrx;
	int next = 1;
	struct mt_hop *h;

	/* Upstream hops keep their numbers; ours continue after the last. */
	if (n > 0)
		memcpy(hops, p->up, n * sizeof(*hops));
	qsort(hops, n, sizeof(*hops), by_order);
	if (n > 0)
		next = hops[n - 1].n + 1;
	*first_new = n;
	nrx = received_hops(p, in, n, rx, MT_PATH_HOPS_MAX - 1 - n);
	while (nrx > 0) {	/* oldest first */
		hops[n] = rx[--nrx];
		hops[n++].n = next++;
	}
	h = &hops[n++];
	memset(h, 0, sizeof(*h));
	h->n = next;
	snprintf(h->by, sizeof(h->by), "%s", in->by);
	snprintf(h->ip, sizeof(h->ip), "%s", in->client_ip);
	h->src = MT_HOP_MILTER;
	utc_time(in->now_ms, h->t, sizeof(h->t));
	if (in->geo) {
		mt_geo_lookup(in->geo, in->client_ip, &h->loc);
		/* Behind NAT Postfix's own address has no place; the one
		 * the Internet sees, when the admin gave it, does. */
		if ((in->daemon_addr == NULL || !mt_geo_lookup(in->geo,
		    in->daemon_addr, &h->by_loc)) && in->public_addr != NULL)
			mt_geo_lookup(in->geo, in->public_addr, &h->by_loc);
	}
	return n;
}
