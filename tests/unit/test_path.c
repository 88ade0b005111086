/*
 * The hop path's trust rules (geo/path.c): which Received: and
 * X-Mailtrail-Hop headers become hops, with which numbers and trust marks,
 * given the client, InternalHosts, TrustedRelays, SiteMTAs and the GeoDB.
 * Scenarios follow tests/integration/test_trust.py and test_geo.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../common/cidr.h"
#include "../../geo/geo.h"

#define NOW_MS 1795302900000LL	/* 2026-11-21T23:15:00Z */
#define LAN_CLIENT "192.0.2.10"	/* Paris in the test GeoDB */
#define SITE_MTA "192.0.2.25"

static char dir[512];

struct fixture {
	struct mt_cidr_list internal, trusted, site;
	struct mt_geo *geo;
	struct mt_path path;
	struct mt_hop *hops;		/* exactly MT_PATH_HOPS_MAX: ASan checks */
	size_t n, first_new;
	const char *daemon_addr, *public_addr;
};

struct want {
	int n;
	const char *ip, *by;
	enum mt_hop_src src;
	enum mt_hop_trust trust;	/* checked for MT_HOP_RECEIVED only */
};

static int
setup(void **state)
{
	char path[600], err[256];
	char *paths[1] = { path };
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/city-maxmind.mmdb", dir);
	f->geo = mt_geo_open(paths, 1, err, sizeof(err));
	if (f->geo == NULL) {
		fprintf(stderr, "open %s: %s\n", path, err);
		free(f);
		return -1;
	}
	f->hops = calloc(MT_PATH_HOPS_MAX, sizeof(*f->hops));
	if (f->hops == NULL) {
		mt_geo_free(f->geo);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	mt_path_free(&f->path);
	mt_cidr_list_free(&f->internal);
	mt_cidr_list_free(&f->trusted);
	mt_cidr_list_free(&f->site);
	mt_geo_free(f->geo);
	free(f->hops);
	free(f);
	return 0;
}

/* InternalHosts, TrustedRelays, SiteMTAs as the configuration gives them. */
static void
lists(struct fixture *f, const char *internal, const char *trusted,
    const char *site)
{
	char bad[64];

	assert_int_equal(mt_cidr_list_add(&f->internal, internal, bad,
	    sizeof(bad)), 0);
	if (trusted)
		assert_int_equal(mt_cidr_list_add(&f->trusted, trusted, bad,
		    sizeof(bad)), 0);
	if (site)
		assert_int_equal(mt_cidr_list_add(&f->site, site, bad,
		    sizeof(bad)), 0);
}

static void
received(struct fixture *f, const char *ip, const char *by)
{
	char v[512];

	snprintf(v, sizeof(v), "from h.example (h.example [%s])\r\n\tby %s "
	    "(Postfix) with ESMTP id 4AAA; Sat, 21 Nov 2026 10:00:00 +0000",
	    ip, by);
	mt_path_note_received(&f->path, v);
}

/* Postfix shows its milters the Received: it adds for this very hop. */
static void
own_received(struct fixture *f, const char *client_ip)
{
	received(f, client_ip, "mta1.test");
}

static size_t
build(struct fixture *f, const char *client_ip)
{
	struct mt_path_in in = {
		.client_ip = client_ip, .by = "mta1.test",
		.daemon_addr = f->daemon_addr, .public_addr = f->public_addr,
		.internal = &f->internal, .trusted = &f->trusted,
		.site_mtas = &f->site, .geo = f->geo, .now_ms = NOW_MS,
	};

	f->first_new = (size_t)-1;
	f->n = mt_path_build(&f->path, &in, f->hops, &f->first_new);
	return f->n;
}

static void
expect_path(const struct fixture *f, const struct want *w, size_t nw)
{
	assert_int_equal(f->n, nw);
	for (size_t i = 0; i < nw; i++) {
		const struct mt_hop *h = &f->hops[i];

		assert_int_equal(h->n, w[i].n);
		assert_string_equal(h->ip, w[i].ip);
		assert_string_equal(h->by, w[i].by);
		assert_int_equal(h->src, w[i].src);
		if (w[i].src == MT_HOP_RECEIVED)
			assert_int_equal(h->trust, w[i].trust);
	}
}

static void
expect_place(const struct mt_geo_loc *l, double lat, double lon,
    const char *cc, const char *city)
{
	assert_true(l->found);
	assert_true(fabs(l->lat - lat) < 0.0001);
	assert_true(fabs(l->lon - lon) < 0.0001);
	assert_string_equal(l->cc, cc);
	assert_string_equal(l->city, city);
}

static void
expect_no_place(const struct mt_geo_loc *l)
{
	assert_false(l->found);
	assert_string_equal(l->cc, "");
	assert_string_equal(l->city, "");
}

#define EXPECT_PATH(f, ...) do { \
	const struct want w_[] = { __VA_ARGS__ }; \
	expect_path((f), w_, sizeof(w_) / sizeof(w_[0])); \
} while (0)

#define RX MT_HOP_RECEIVED
#define MILTER MT_HOP_MILTER
#define VERIFIED MT_TRUST_VERIFIED
#define UNVERIFIED MT_TRUST_UNVERIFIED

/* --- the client hop -------------------------------------------------------- */

static void
remote_client_alone_is_one_hop_stamped_with_time_and_place(void **state)
{
	struct fixture *f = *state;

	lists(f, "127.0.0.0/8, ::1/128", NULL, NULL);
	f->daemon_addr = "198.51.100.20";
	build(f, "203.0.113.30");
	EXPECT_PATH(f, { 1, "203.0.113.30", "mta1.test", MILTER, 0 });
	assert_int_equal(f->first_new, 0);
	assert_string_equal(f->hops[0].t, "2026-11-21T23:15:00Z");
	expect_place(&f->hops[0].loc, 35.6762, 139.6503, "JP", "Tokyo");
	/* The daemon's own address places this MTA: London. */
	expect_place(&f->hops[0].by_loc, 51.5074, -0.1278, "GB", "London");
}

/* Behind NAT: Postfix's address has no place, PublicAddress has; and
 * where Postfix's own address is placed, it wins. */
static void
public_address_places_this_mta_behind_nat(void **state)
{
	struct fixture *f = *state;

	lists(f, "127.0.0.0/8, ::1/128", NULL, NULL);
	f->daemon_addr = "10.0.0.1";
	build(f, "203.0.113.30");
	expect_no_place(&f->hops[0].by_loc);
	f->public_addr = "2001:db8:1::25";
	build(f, "203.0.113.30");
	expect_place(&f->hops[0].by_loc, 40.7128, -74.006, "US", "New York");
	f->daemon_addr = NULL;
	build(f, "203.0.113.30");
	expect_place(&f->hops[0].by_loc, 40.7128, -74.006, "US", "New York");
	f->daemon_addr = "198.51.100.20";
	build(f, "203.0.113.30");
	expect_place(&f->hops[0].by_loc, 51.5074, -0.1278, "GB", "London");
	expect_place(&f->hops[0].loc, 35.6762, 139.6503, "JP", "Tokyo");
}

static void
postfix_own_received_for_this_hop_is_not_a_second_hop(void **state)
{
	struct fixture *f = *state;

	lists(f, "127.0.0.0/8, ::1/128", NULL, NULL);
	own_received(f, "203.0.113.30");
	build(f, "203.0.113.30");
	EXPECT_PATH(f, { 1, "203.0.113.30", "mta1.test", MILTER, 0 });
}

/* --- Received: and who is believed ----------------------------------------- */

/* test_geo.py's chain: the client is a TrustedRelay. */
static void
trusted_relay_is_followed_back_to_the_first_untrusted_hop(void **state)
{
	struct fixture *f = *state;

	lists(f, "127.0.0.0/8, ::1/128", "198.51.100.0/24", NULL);
	mt_path_note_received(&f->path, "from relay3.example (relay3.example "
	    "[198.51.100.7]) by mta1.test (Postfix) with ESMTP id 1");
	mt_path_note_received(&f->path, "from relay2.example (relay2.example "
	    "[203.0.113.30]) by relay3.example (Postfix) with ESMTPS id 4AAA; "
	    "Sat, 21 Nov 2026 10:00:03 +0000");
	mt_path_note_received(&f->path, "from relay1.example (relay1.example "
	    "[192.0.2.10])\r\n\tby relay2.example (8.15.2/8.15.2) with ESMTP id "
	    "5BBB; Sat, 21 Nov 2026 10:00:02 +0000");
	mt_path_note_received(&f->path, "from laptop ([IPv6:2001:db8::1] "
	    "helo=laptop) by relay1.example with esmtpsa (Exim 4.96) id 1abc; "
	    "Sat, 21 Nov 2026 10:00:01 +0000");
	build(f, "198.51.100.7");
	EXPECT_PATH(f,
	    { 1, "2001:db8::1", "relay1.example", RX, UNVERIFIED },
	    { 2, "192.0.2.10", "relay2.example", RX, UNVERIFIED },
	    { 3, "203.0.113.30", "relay3.example", RX, VERIFIED },
	    { 4, "198.51.100.7", "mta1.test", MILTER, 0 });
	assert_int_equal(f->first_new, 0);
	expect_place(&f->hops[0].loc, 52.52, 13.405, "DE", "Berlin");
	expect_place(&f->hops[1].loc, 48.8566, 2.3522, "FR", "Paris");
	expect_place(&f->hops[2].loc, 35.6762, 139.6503, "JP", "Tokyo");
	expect_place(&f->hops[3].loc, 51.5074, -0.1278, "GB", "London");
	/* Only our own hop carries a time; Received: dates are not read. */
	assert_string_equal(f->hops[0].t, "");
	assert_string_equal(f->hops[3].t, "2026-11-21T23:15:00Z");
}

static void
untrusted_client_makes_every_received_hop_unverified(void **state)
{
	struct fixture *f = *state;

	lists(f, "127.0.0.0/8, ::1/128", "198.51.100.0/24", NULL);
	own_received(f, "192.0.2.77");
	received(f, "203.0.113.30", "relay3.example");
	received(f, "198.51.100.20", "relay2.example");
	build(f, "192.0.2.77");
	EXPECT_PATH(f,
	    { 1, "198.51.100.20", "relay2.example", RX, UNVERIFIED },
	    { 2, "203.0.113.30", "relay3.example", RX, UNVERIFIED },
	    { 3, "192.0.2.77", "mta1.test", MILTER, 0 });
}

/*
 * Internal hosts, site MTAs and trusted relays all keep the chain believed;
 * the first outsider is still believed (an insider wrote it), and nothing
 * below it is, not even a hop naming an inside address.
 */
static void
trust_holds_through_every_inside_host_and_stops_below_the_first_outsider(
    void **state)
{
	struct fixture *f = *state;

	lists(f, "127.0.0.0/8, ::1/128", "198.51.100.0/24", SITE_MTA);
	own_received(f, "127.0.0.1");
	received(f, SITE_MTA, "localhost");
	received(f, "198.51.100.20", "site.test");
	received(f, "203.0.113.30", "relay.test");
	received(f, "198.51.100.7", "outside.example");
	build(f, "127.0.0.1");
	EXPECT_PATH(f,
	    { 1, "198.51.100.7", "outside.example", RX, UNVERIFIED },
	    { 2, "203.0.113.30", "relay.test", RX, VERIFIED },
	    { 3, "198.51.100.20", "site.test", RX, VERIFIED },
	    { 4, SITE_MTA, "localhost", RX, VERIFIED },
	    { 5, "127.0.0.1", "mta1.test", MILTER, 0 });
}

/*
 * A LAN client is inside, so what it wrote is believed: its Received: naming
 * an outside relay makes that relay the origin (test_trust.py, "cut").
 */
static void
lan_client_received_names_the_origin_before_it(void **state)
{
	struct fixture *f = *state;

	lists(f, "127.0.0.0/8, ::1/128, 192.0.2.0/24", NULL, SITE_MTA);
	own_received(f, LAN_CLIENT);
	mt_path_note_received(&f->path, "from relay.example (relay.example "
	    "[203.0.113.30])\r\n\tby pc.client.test with ESMTP id 1; "
	    "Mon, 1 Jan 2024 00:00:00 +0000");
	build(f, LAN_CLIENT);
	EXPECT_PATH(f,
	    { 1, "203.0.113.30", "pc.client.test", RX, VERIFIED },
	    { 2, LAN_CLIENT, "mta1.test", MILTER, 0 });
	expect_place(&f->hops[0].loc, 35.6762, 139.6503, "JP", "Tokyo");
}

static void
received_without_an_address_is_no_hop_and_the_walk_goes_on(void **state)
{
	struct fixture *f = *state;

	lists(f, "127.0.0.0/8, ::1/128", "198.51.100.0/24", NULL);
	own_received(f, "198.51.100.7");
	mt_path_note_received(&f->path, "by relay.example (Postfix, from userid "
	    "1000) id 4AAA; Sat, 21 Nov 2026 10:00:00 +0000");
	received(f, "203.0.113.30", "relay.example");
	build(f, "198.51.100.7");
	EXPECT_PATH(f,
	    { 1, "203.0.113.30", "relay.example", RX, VERIFIED },
	    { 2, "198.51.100.7", "mta1.test", MILTER, 0 });
}

static void
received_without_a_by_host_is_by_unknown(void **state)
{
	struct fixture *f = *state;

	lists(f, "127.0.0.0/8, ::1/128", NULL, NULL);
	own_received(f, "127.0.0.1");
	mt_path_note_received(&f->path, "from x.example (x.example "
	    "[203.0.113.30]); Sat, 21 Nov 2026 10:00:00 +0000");
	build(f, "127.0.0.1");
	EXPECT_PATH(f,
	    { 1, "203.0.113.30", "unknown", RX, VERIFIED },
	    { 2, "127.0.0.1", "mta1.test", MILTER, 0 });
}

/*
 * The sendmail command: no network client ("local"), so no site MTA and not
 * inside; the top Received: is not its own but still no hop (no address).
 */
static void
sendmail_pickup_believes_no_received_and_no_hop_header(void **state)
{
	struct fixture *f = *state;

	lists(f, "127.0.0.0/8, ::1/128", NULL, "127.0.0.1");
	mt_path_note_received(&f->path, "by mta1.test (Postfix, from userid "
	    "1000) id 4AAA; Sat, 21 Nov 2026 10:00:00 +0000");
	received(f, "203.0.113.30", "pc.client.test");
	mt_path_note_hop(&f->path, "n=1; by=evil; ip=192.0.2.99; lat=0; lon=0");
	build(f, "local");
	EXPECT_PATH(f,
	    { 1, "203.0.113.30", "pc.client.test", RX, UNVERIFIED },
	    { 2, "local", "mta1.test", MILTER, 0 });
	assert_int_equal(f->first_new, 0);
	expect_no_place(&f->hops[1].loc);
}

/* --- X-Mailtrail-Hop --------------------------------------------------------- */

/*
 * mta2 relays to us (a site MTA): its hops and mta1's keep their numbers
 * (sorted, as they stood newest first), ours follows, and the Received:
 * walk stops at the first address an upstream hop already stamped.
 */
static void
site_mta_hops_are_kept_and_received_stops_at_a_stamped_address(void **state)
{
	struct fixture *f = *state;

	lists(f, "127.0.0.0/8, ::1/128", NULL, SITE_MTA);
	mt_path_note_hop(&f->path, "n=2; by=mta2.test; ip=198.51.100.20; "
	    "t=2026-11-21T23:14:59Z; src=milter");
	mt_path_note_hop(&f->path, "n=1; by=mta1.test; ip=192.0.2.10; "
	    "lat=1.5; lon=2.5; cc=AQ; city=Stamped; t=2026-11-21T23:14:58Z; "
	    "src=milter");
	own_received(f, SITE_MTA);
	received(f, "198.51.100.20", "mta2.test");
	received(f, "192.0.2.10", "mta1.test");
	received(f, "203.0.113.30", "pc.client.test");
	build(f, SITE_MTA);
	EXPECT_PATH(f,
	    { 1, "192.0.2.10", "mta1.test", MILTER, 0 },
	    { 2, "198.51.100.20", "mta2.test", MILTER, 0 },
	    { 3, SITE_MTA, "mta1.test", MILTER, 0 });
	assert_int_equal(f->first_new, 2);
	/* Upstream hops stay as stamped: no second lookup, their own time. */
	expect_place(&f->hops[0].loc, 1.5, 2.5, "AQ", "Stamped");
	assert_string_equal(f->hops[0].t, "2026-11-21T23:14:58Z");
	assert_string_equal(f->hops[1].t, "2026-11-21T23:14:59Z");
}

/*
 * mta1 (mailtrail) -> relay 192.0.2.40 (no milter, a SiteMTA) -> us: the
 * relay's Received: hop fills the gap after mta1's stamp.
 */
static void
received_hops_between_a_stamped_hop_and_us_are_numbered_after_it(void **state)
{
	struct fixture *f = *state;

	lists(f, "127.0.0.0/8, ::1/128", NULL, "192.0.2.40");
	mt_path_note_hop(&f->path, "n=1; by=mta1.test; ip=192.0.2.10");
	own_received(f, "192.0.2.40");
	received(f, "192.0.2.1", "relay.test");
	received(f, "192.0.2.10", "mta1.test");
	build(f, "192.0.2.40");
	EXPECT_PATH(f,
	    { 1, "192.0.2.10", "mta1.test", MILTER, 0 },
	    { 2, "192.0.2.1", "relay.test", RX, VERIFIED },
	    { 3, "192.0.2.40", "mta1.test", MILTER, 0 });
	assert_int_equal(f->first_new, 1);
}

/* test_trust.py: 200 forged hops from a LAN client; it stays the origin. */
static void
lan_client_forged_hop_headers_leave_it_the_origin(void **state)
{
	struct fixture *f = *state;
	char v[256];

	lists(f, "127.0.0.0/8, ::1/128, 192.0.2.0/24", NULL, SITE_MTA);
	for (int i = 1; i <= 200; i++) {
		snprintf(v, sizeof(v), "n=%d; by=evil; ip=203.0.113.30; lat=1.5; "
		    "lon=2.5; cc=AQ; city=Forged", i);
		mt_path_note_hop(&f->path, v);
	}
	own_received(f, LAN_CLIENT);
	build(f, LAN_CLIENT);
	EXPECT_PATH(f, { 1, LAN_CLIENT, "mta1.test", MILTER, 0 });
	assert_int_equal(f->first_new, 0);
	expect_place(&f->hops[0].loc, 48.8566, 2.3522, "FR", "Paris");
}

/* test_trust.py, "cut": the forged hop names the Received: address. */
static void
forged_hop_naming_a_received_address_does_not_cut_the_chain(void **state)
{
	struct fixture *f = *state;

	lists(f, "127.0.0.0/8, ::1/128, 192.0.2.0/24", NULL, SITE_MTA);
	own_received(f, LAN_CLIENT);
	mt_path_note_received(&f->path, "from relay.example (relay.example "
	    "[203.0.113.30])\r\n\tby pc.client.test with ESMTP id 1; "
	    "Mon, 1 Jan 2024 00:00:00 +0000");
	mt_path_note_hop(&f->path, "n=1; by=evil; ip=203.0.113.30");
	build(f, LAN_CLIENT);
	EXPECT_PATH(f,
	    { 1, "203.0.113.30", "pc.client.test", RX, VERIFIED },
	    { 2, LAN_CLIENT, "mta1.test", MILTER, 0 });
	assert_int_equal(f->first_new, 0);
	expect_place(&f->hops[0].loc, 35.6762, 139.6503, "JP", "Tokyo");
}

/* --- bounds ------------------------------------------------------------------ */

static void
two_hundred_site_mta_hops_fill_the_path_to_its_bound(void **state)
{
	struct fixture *f = *state;
	char v[256];

	lists(f, "127.0.0.0/8, ::1/128", NULL, SITE_MTA);
	for (int i = 200; i >= 1; i--) {
		snprintf(v, sizeof(v), "n=%d; by=mta%d.test; ip=192.0.2.%d", i, i,
		    i % 250 + 1);
		mt_path_note_hop(&f->path, v);
	}
	own_received(f, SITE_MTA);
	for (int i = 0; i < 10; i++)
		received(f, "203.0.113.30", "relay.test");
	/* One place is kept for our own hop. */
	assert_int_equal(f->path.nup, MT_PATH_HOPS_MAX - 1);
	assert_int_equal(build(f, SITE_MTA), MT_PATH_HOPS_MAX);
	assert_int_equal(f->first_new, MT_PATH_HOPS_MAX - 1);
	/* The first 63 stood on top (n=200..138); sorted, then ours after. */
	assert_int_equal(f->hops[0].n, 138);
	for (size_t i = 0; i + 1 < MT_PATH_HOPS_MAX; i++) {
		assert_int_equal(f->hops[i].src, MT_HOP_MILTER);
		assert_int_equal(f->hops[i].n, 138 + (int)i);
	}
	assert_int_equal(f->hops[MT_PATH_HOPS_MAX - 1].n, 201);
	assert_string_equal(f->hops[MT_PATH_HOPS_MAX - 1].ip, SITE_MTA);
}

/* test_geo.py's 500 Received: only the newest 64 are read, 63 become hops. */
static void
five_hundred_received_headers_are_bounded(void **state)
{
	struct fixture *f = *state;
	char ip[32], by[32];

	lists(f, "127.0.0.0/8, ::1/128", NULL, NULL);
	for (int i = 0; i < 500; i++) {
		snprintf(ip, sizeof(ip), "192.0.2.%d", i % 250 + 1);
		snprintf(by, sizeof(by), "r%d.example", i + 1);
		received(f, ip, by);
	}
	assert_int_equal(f->path.nrx_seen, 500);
	assert_int_equal(f->path.nrx, MT_PATH_RECEIVED_KEEP);
	assert_int_equal(build(f, "127.0.0.1"), MT_PATH_HOPS_MAX);
	/* Oldest first: the 63rd Received: from the top is hop 1. */
	assert_int_equal(f->hops[0].n, 1);
	assert_string_equal(f->hops[0].ip, "192.0.2.63");
	assert_string_equal(f->hops[0].by, "r63.example");
	assert_string_equal(f->hops[62].ip, "192.0.2.1");
	assert_string_equal(f->hops[62].by, "r1.example");
	assert_int_equal(f->hops[63].n, 64);
	assert_int_equal(f->hops[63].src, MT_HOP_MILTER);
	assert_string_equal(f->hops[63].ip, "127.0.0.1");
}

static void
malformed_headers_are_counted_or_dropped_not_kept(void **state)
{
	struct fixture *f = *state;

	lists(f, "127.0.0.0/8, ::1/128", NULL, SITE_MTA);
	mt_path_note_received(&f->path, "");
	mt_path_note_received(&f->path, "nothing to see here");
	mt_path_note_hop(&f->path, "");
	mt_path_note_hop(&f->path, "nonsense");
	mt_path_note_hop(&f->path, "n=0; by=x; ip=192.0.2.10");
	mt_path_note_hop(&f->path, "n=1; by=x; ip=not-an-address");
	mt_path_note_hop(&f->path, "n=99999; by=x; ip=192.0.2.10");
	assert_int_equal(f->path.nrx_seen, 2);
	assert_int_equal(f->path.nrx, 0);
	assert_int_equal(f->path.nup, 0);
	build(f, SITE_MTA);
	EXPECT_PATH(f, { 1, SITE_MTA, "mta1.test", MILTER, 0 });
}

/* --- IPv6 and places ------------------------------------------------------- */

static void
ipv6_client_and_received_hops(void **state)
{
	struct fixture *f = *state;

	lists(f, "127.0.0.0/8, ::1/128", "2001:db8:1::/48", NULL);
	/* Written longhand: compared as canonical text, still our own. */
	mt_path_note_received(&f->path, "from ny.example.net (ny.example.net "
	    "[IPv6:2001:0db8:0001:0000::0025]) by mta1.test (Postfix) with "
	    "ESMTPS id 1");
	mt_path_note_received(&f->path, "from laptop ([IPv6:2001:db8::1] "
	    "helo=laptop) by ny.example.net with esmtpsa (Exim 4.96) id 1abc");
	mt_path_note_received(&f->path, "from old.example (old.example "
	    "[2001:db8:2::5]) by laptop with ESMTP id 2");
	build(f, "2001:db8:1::25");
	EXPECT_PATH(f,
	    { 1, "2001:db8:2::5", "laptop", RX, UNVERIFIED },
	    { 2, "2001:db8::1", "ny.example.net", RX, VERIFIED },
	    { 3, "2001:db8:1::25", "mta1.test", MILTER, 0 });
	expect_place(&f->hops[0].loc, 52.52, 13.405, "DE", "Berlin");
	expect_place(&f->hops[1].loc, 52.52, 13.405, "DE", "Berlin");
	expect_place(&f->hops[2].loc, 40.7128, -74.006, "US", "New York");
}

static void
hops_the_geodb_does_not_place_have_no_coordinates(void **state)
{
	struct fixture *f = *state;

	lists(f, "127.0.0.0/8, ::1/128", NULL, NULL);
	f->daemon_addr = "10.0.0.1";
	own_received(f, "203.0.114.1");
	received(f, "10.1.2.3", "b");
	received(f, "192.168.1.1", "a");
	received(f, "fd00::5", "c");
	received(f, "192.0.3.1", "d");
	build(f, "203.0.114.1");
	EXPECT_PATH(f,
	    { 1, "192.0.3.1", "d", RX, UNVERIFIED },
	    { 2, "fd00::5", "c", RX, UNVERIFIED },
	    { 3, "192.168.1.1", "a", RX, UNVERIFIED },
	    { 4, "10.1.2.3", "b", RX, UNVERIFIED },
	    { 5, "203.0.114.1", "mta1.test", MILTER, 0 });
	for (size_t i = 0; i < f->n; i++)
		expect_no_place(&f->hops[i].loc);
	expect_no_place(&f->hops[4].by_loc);
}

static void
without_a_geodb_the_path_is_the_same_without_coordinates(void **state)
{
	struct fixture *f = *state;

	lists(f, "127.0.0.0/8, ::1/128", "198.51.100.0/24", NULL);
	mt_geo_free(f->geo);
	f->geo = NULL;
	f->daemon_addr = "198.51.100.20";
	own_received(f, "198.51.100.7");
	received(f, "203.0.113.30", "relay3.example");
	received(f, LAN_CLIENT, "relay2.example");
	build(f, "198.51.100.7");
	EXPECT_PATH(f,
	    { 1, LAN_CLIENT, "relay2.example", RX, UNVERIFIED },
	    { 2, "203.0.113.30", "relay3.example", RX, VERIFIED },
	    { 3, "198.51.100.7", "mta1.test", MILTER, 0 });
	for (size_t i = 0; i < f->n; i++)
		expect_no_place(&f->hops[i].loc);
	expect_no_place(&f->hops[2].by_loc);
}

/* --- lifetime ------------------------------------------------------------------ */

static void
free_empties_the_path_for_the_next_message(void **state)
{
	struct fixture *f = *state;

	lists(f, "127.0.0.0/8, ::1/128", NULL, SITE_MTA);
	build(f, "127.0.0.1");		/* nothing noted yet */
	EXPECT_PATH(f, { 1, "127.0.0.1", "mta1.test", MILTER, 0 });
	received(f, "203.0.113.30", "relay.test");
	mt_path_note_hop(&f->path, "n=1; by=mta0.test; ip=192.0.2.10");
	mt_path_free(&f->path);
	assert_null(f->path.rx);
	assert_null(f->path.up);
	assert_int_equal(f->path.nrx + f->path.nrx_seen + f->path.nup, 0);
	build(f, SITE_MTA);
	EXPECT_PATH(f, { 1, SITE_MTA, "mta1.test", MILTER, 0 });
	mt_path_free(&f->path);		/* twice is harmless */
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(void)
{
	const char *d = getenv("MT_TEST_MMDB_DIR");
	const struct CMUnitTest tests[] = {
		T(remote_client_alone_is_one_hop_stamped_with_time_and_place),
		T(public_address_places_this_mta_behind_nat),
		T(postfix_own_received_for_this_hop_is_not_a_second_hop),
		T(trusted_relay_is_followed_back_to_the_first_untrusted_hop),
		T(untrusted_client_makes_every_received_hop_unverified),
		T(trust_holds_through_every_inside_host_and_stops_below_the_first_outsider),
		T(lan_client_received_names_the_origin_before_it),
		T(received_without_an_address_is_no_hop_and_the_walk_goes_on),
		T(received_without_a_by_host_is_by_unknown),
		T(sendmail_pickup_believes_no_received_and_no_hop_header),
		T(site_mta_hops_are_kept_and_received_stops_at_a_stamped_address),
		T(received_hops_between_a_stamped_hop_and_us_are_numbered_after_it),
		T(lan_client_forged_hop_headers_leave_it_the_origin),
		T(forged_hop_naming_a_received_address_does_not_cut_the_chain),
		T(two_hundred_site_mta_hops_fill_the_path_to_its_bound),
		T(five_hundred_received_headers_are_bounded),
		T(malformed_headers_are_counted_or_dropped_not_kept),
		T(ipv6_client_and_received_hops),
		T(hops_the_geodb_does_not_place_have_no_coordinates),
		T(without_a_geodb_the_path_is_the_same_without_coordinates),
		T(free_empties_the_path_for_the_next_message),
	};

	if (d == NULL) {
		fprintf(stderr, "test_path: set MT_TEST_MMDB_DIR (make unit does)\n");
		return 1;
	}
	snprintf(dir, sizeof(dir), "%s", d);
	return cmocka_run_group_tests_name("path", tests, NULL, NULL);
}
