/*
 * GeoDB lookups in both layouts, the ASN file, private ranges, a file
 * swapped under concurrent lookups, and the hop header round trip.
 * Databases come from tests/geo/make_mmdb.pl (dir in MT_TEST_MMDB_DIR).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../geo/geo.h"

static char dir[512];

static char *
db(const char *name)
{
	static char paths[8][600];
	static int next;
	char *p = paths[next++ % 8];

	snprintf(p, 600, "%s/%s", dir, name);
	return p;
}

static struct mt_geo *
open_dbs(const char *a, const char *b, const char *c)
{
	char *paths[3];
	size_t n = 0;
	char err[256];
	struct mt_geo *g;

	paths[n++] = db(a);
	if (b)
		paths[n++] = db(b);
	if (c)
		paths[n++] = db(c);
	g = mt_geo_open(paths, n, err, sizeof(err));
	if (g == NULL)
		fail_msg("open: %s", err);
	return g;
}

static void
expect_place(struct mt_geo *g, const char *ip, double lat, double lon,
    const char *cc, const char *city)
{
	struct mt_geo_loc l;

	if (mt_geo_lookup(g, ip, &l) != 1)
		fail_msg("%s not found", ip);
	assert_true(fabs(l.lat - lat) < 0.0001);
	assert_true(fabs(l.lon - lon) < 0.0001);
	assert_string_equal(l.cc, cc);
	assert_string_equal(l.city, city);
}

static void
maxmind_city_layout_is_read(void **state)
{
	struct mt_geo *g = open_dbs("city-maxmind.mmdb", NULL, NULL);

	expect_place(g, "192.0.2.10", 48.8566, 2.3522, "FR", "Paris");
	expect_place(g, "2001:db8:1::25", 40.7128, -74.006, "US", "New York");
	expect_place(g, "2001:db8::1", 52.52, 13.405, "DE", "Berlin");
	mt_geo_free(g);
}

static void
dbip_flat_layout_is_read_from_separate_v4_and_v6_files(void **state)
{
	struct mt_geo *g = open_dbs("city-dbip-v4.mmdb", "city-dbip-v6.mmdb",
	    NULL);

	expect_place(g, "198.51.100.20", 51.5074, -0.1278, "GB", "London");
	expect_place(g, "2001:db8::1", 52.52, 13.405, "DE", "Berlin");
	mt_geo_free(g);
}

static void
asn_database_adds_the_number(void **state)
{
	struct mt_geo *g = open_dbs("city-maxmind.mmdb", "asn.mmdb", NULL);
	struct mt_geo_loc l;

	assert_int_equal(mt_geo_lookup(g, "192.0.2.10", &l), 1);
	assert_int_equal(l.asn, 64496);
	assert_int_equal(mt_geo_lookup(g, "203.0.113.30", &l), 1);
	assert_int_equal(l.asn, 0);
	mt_geo_free(g);
}

static void
private_and_unknown_addresses_have_no_place(void **state)
{
	struct mt_geo *g = open_dbs("city-maxmind.mmdb", NULL, NULL);
	const char *none[] = { "10.1.2.3", "127.0.0.1", "172.16.5.5",
	    "192.168.1.1", "169.254.1.1", "100.64.0.1", "::1", "fe80::1",
	    "fd00::1", "::ffff:10.0.0.1", "192.0.3.1", "2001:db9::1",
	    "not-an-ip", "" };
	struct mt_geo_loc l;

	for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++)
		if (mt_geo_lookup(g, none[i], &l) != 0)
			fail_msg("%s has a place", none[i]);
	assert_true(mt_geo_is_private("100.127.255.255"));
	assert_false(mt_geo_is_private("100.128.0.1"));
	assert_false(mt_geo_is_private("203.0.113.1"));
	mt_geo_free(g);
}

struct hammer {
	struct mt_geo *g;
	volatile int stop;
	long lookups, failures;
};

static void *
hammer_lookups(void *arg)
{
	struct hammer *h = arg;
	struct mt_geo_loc l;

	while (!h->stop) {
		if (mt_geo_lookup(h->g, "203.0.113.30", &l) != 1)
			h->failures++;
		h->lookups++;
	}
	return NULL;
}

static void
file_replaced_by_rename_is_swapped_without_a_failed_lookup(void **state)
{
	char live[600], tmp[600], cmd[2000], err[256];
	char *paths[1] = { live };
	struct hammer h = { 0 };
	pthread_t t[2];
	struct mt_geo_loc l;

	snprintf(live, sizeof(live), "%s/live.mmdb", dir);
	snprintf(tmp, sizeof(tmp), "%s/live.mmdb.new", dir);
	snprintf(cmd, sizeof(cmd), "cp %s %s", db("city-maxmind.mmdb"), live);
	assert_int_equal(system(cmd), 0);
	h.g = mt_geo_open(paths, 1, err, sizeof(err));
	assert_non_null(h.g);
	expect_place(h.g, "203.0.113.30", 35.6762, 139.6503, "JP", "Tokyo");
	pthread_create(&t[0], NULL, hammer_lookups, &h);
	pthread_create(&t[1], NULL, hammer_lookups, &h);
	for (int i = 0; i < 20; i++) {
		snprintf(cmd, sizeof(cmd), "cp %s %s && mv %s %s",
		    db(i % 2 ? "city-maxmind-v2.mmdb" : "city-maxmind.mmdb"),
		    tmp, tmp, live);
		assert_int_equal(system(cmd), 0);
		assert_int_equal(mt_geo_refresh(h.g, 0, err, sizeof(err)), 1);
		usleep(2000);
	}
	h.stop = 1;
	pthread_join(t[0], NULL);
	pthread_join(t[1], NULL);
	assert_true(h.lookups > 100);
	assert_int_equal(h.failures, 0);
	/* The last copy was the v2 file: Sydney. */
	expect_place(h.g, "203.0.113.30", -33.8688, 151.2093, "AU", "Sydney");
	/* A broken replacement leaves the old file in service. */
	snprintf(cmd, sizeof(cmd), "echo garbage > %s && mv %s %s", tmp, tmp,
	    live);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(mt_geo_refresh(h.g, 0, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "live.mmdb"));
	assert_int_equal(mt_geo_lookup(h.g, "203.0.113.30", &l), 1);
	mt_geo_free(h.g);
	unlink(live);
}

static void
hop_header_round_trips(void **state)
{
	struct mt_hop h = { .n = 3, .src = MT_HOP_RECEIVED,
	    .trust = MT_TRUST_UNVERIFIED }, back;
	char value[999];

	strcpy(h.by, "relay.example");
	strcpy(h.ip, "2001:db8::1");
	h.loc.found = 1;
	h.loc.lat = 52.52;
	h.loc.lon = 13.405;
	strcpy(h.loc.cc, "DE");
	strcpy(h.loc.city, "Berlin");
	h.loc.asn = 64498;
	mt_hop_format(&h, value, sizeof(value));
	assert_string_equal(value, "n=3; by=relay.example; ip=2001:db8::1; "
	    "lat=52.5200; lon=13.4050; cc=DE; city=Berlin; asn=64498; "
	    "src=received; trust=unverified");
	assert_int_equal(mt_hop_parse(value, strlen(value), &back), 0);
	assert_int_equal(back.n, 3);
	assert_string_equal(back.ip, "2001:db8::1");
	assert_true(back.loc.found);
	assert_string_equal(back.loc.city, "Berlin");
	assert_int_equal(back.src, MT_HOP_RECEIVED);
	assert_int_equal(back.trust, MT_TRUST_UNVERIFIED);
}

static void
hostile_hop_values_are_refused_or_cleaned(void **state)
{
	struct mt_hop h;
	const char *bad[] = { "", "n=0; ip=192.0.2.1", "n=1; ip=300.1.1.1",
	    "n=abc; ip=192.0.2.1", "ip=192.0.2.1", ";;;;===" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(mt_hop_parse(bad[i], strlen(bad[i]), &h), -1);
	assert_int_equal(mt_hop_parse("n=2; ip=192.0.2.1; lat=91; lon=2; "
	    "city=a\r\nX-Evil: 1", 50, &h), 0);
	assert_false(h.loc.found);
	assert_null(strchr(h.by, '\n'));
}

static void
path_json_lists_hops_in_order(void **state)
{
	struct mt_hop hops[2] = { { .n = 1 }, { .n = 2 } };
	char *json;

	strcpy(hops[0].ip, "192.0.2.10");
	strcpy(hops[0].by, "a");
	strcpy(hops[1].ip, "198.51.100.20");
	strcpy(hops[1].by, "b");
	json = mt_hop_path_json(hops, 2);
	assert_non_null(json);
	assert_non_null(strstr(json, "{\"n\":1,\"by\":\"a\",\"ip\":\"192.0.2.10\""));
	assert_true(strstr(json, "\"n\":1") < strstr(json, "\"n\":2"));
	free(json);
}

int
main(void)
{
	const char *d = getenv("MT_TEST_MMDB_DIR");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(maxmind_city_layout_is_read),
		cmocka_unit_test(dbip_flat_layout_is_read_from_separate_v4_and_v6_files),
		cmocka_unit_test(asn_database_adds_the_number),
		cmocka_unit_test(private_and_unknown_addresses_have_no_place),
		cmocka_unit_test(file_replaced_by_rename_is_swapped_without_a_failed_lookup),
		cmocka_unit_test(hop_header_round_trips),
		cmocka_unit_test(hostile_hop_values_are_refused_or_cleaned),
		cmocka_unit_test(path_json_lists_hops_in_order),
	};

	if (d == NULL) {
		fprintf(stderr, "test_geo: set MT_TEST_MMDB_DIR (make unit does)\n");
		return 1;
	}
	snprintf(dir, sizeof(dir), "%s", d);
	return cmocka_run_group_tests_name("geo", tests, NULL, NULL);
}
