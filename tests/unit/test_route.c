/* Route lines, the choice among routes, and the socketmap netstrings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../route/route.h"

static void
parse_ok(const char *text, struct mt_route *r)
{
	char err[256] = "";

	if (mt_route_parse(text, r, err, sizeof(err)) != 0)
		fail_msg("%s: %s", text, err);
}

static void
parse_err(const char *text, const char *want)
{
	struct mt_route r;
	char err[256] = "";

	assert_int_equal(mt_route_parse(text, &r, err, sizeof(err)), -1);
	if (strstr(err, want) == NULL)
		fail_msg("%s: error \"%s\" lacks \"%s\"", text, err, want);
}

static void
route_line_with_every_setting_parses(void **state)
{
	struct mt_route r;

	parse_ok("out1 transport=mt-out1 bind=192.0.2.10 bind6=2001:DB8::a "
	    "helo=Out1.Example.org weight=3 warmup=2024-03-01:50:1.5", &r);
	assert_string_equal(r.name, "out1");
	assert_string_equal(r.transport, "mt-out1");
	assert_string_equal(r.bind, "192.0.2.10");
	assert_string_equal(r.bind6, "2001:db8::a");
	assert_string_equal(r.helo, "out1.example.org");
	assert_int_equal(r.weight, 3);
	assert_true(r.warmup);
	assert_int_equal(r.warm_start_day, 19783);	/* 2024-03-01 */
	assert_int_equal(r.warm_first_cap, 50);
}

static void
transport_defaults_to_name_and_weight_to_one(void **state)
{
	struct mt_route r;

	parse_ok("  r1\tbind=127.0.0.11 helo=r1.test", &r);
	assert_string_equal(r.transport, "r1");
	assert_int_equal(r.weight, 1);
	assert_false(r.warmup);
}

static void
bad_route_lines_say_what_is_wrong(void **state)
{
	parse_err("", "route name");
	parse_err("bad/name bind=1.2.3.4 helo=a.b", "route name");
	parse_err("r1 bind=1.2.3.4", "needs helo=");
	parse_err("r1 helo=a.b", "needs bind=");
	parse_err("r1 bind=1.2.3.400 helo=a.b", "not an IPv4 address");
	parse_err("r1 bind6=1.2.3.4 helo=a.b", "not an IPv6 address");
	parse_err("r1 bind=1.2.3.4 helo=-a..b", "not a host name");
	parse_err("r1 bind=1.2.3.4 helo=a.b weight=0", "whole number");
	parse_err("r1 bind=1.2.3.4 helo=a.b weight=2x", "whole number");
	parse_err("r1 bind=1.2.3.4 helo=a.b weight=1 weight=2", "twice");
	parse_err("r1 bind=1.2.3.4 helo=a.b colour=red", "unknown setting");
	parse_err("r1 bind=1.2.3.4 helo=a.b nonsense", "not key=value");
	parse_err("r1 bind=1.2.3.4 helo=a.b warmup=2024-02-30:5:2", "warmup=");
	parse_err("r1 bind=1.2.3.4 helo=a.b warmup=2024-02-01:0:2", "warmup=");
	parse_err("r1 bind=1.2.3.4 helo=a.b warmup=2024-02-01:5:0.5", "warmup=");
	parse_err("r1 bind=1.2.3.4 helo=a.b transport=a:b", "service name");
}

static void
warmup_cap_grows_per_day_and_ends(void **state)
{
	struct mt_route r;

	parse_ok("w bind=1.2.3.4 helo=a.b warmup=2024-03-01:50:2", &r);
	assert_int_equal(mt_route_cap(&r, 19782), 0);	/* before the start */
	assert_int_equal(mt_route_cap(&r, 19783), 50);
	assert_int_equal(mt_route_cap(&r, 19784), 100);
	assert_int_equal(mt_route_cap(&r, 19788), 1600);
	assert_int_equal(mt_route_cap(&r, 19783 + 40), -1);	/* over */
	parse_ok("n bind=1.2.3.4 helo=a.b", &r);
	assert_int_equal(mt_route_cap(&r, 19783), -1);
}

static struct mt_routes
three_routes(struct mt_route v[3], unsigned w1, unsigned w2, unsigned w3)
{
	struct mt_routes rs = { v, 3 };

	parse_ok("r1 bind=127.0.0.11 helo=r1.test", &v[0]);
	parse_ok("r2 bind=127.0.0.12 helo=r2.test", &v[1]);
	parse_ok("r3 bind=127.0.0.13 helo=r3.test", &v[2]);
	v[0].weight = w1;
	v[1].weight = w2;
	v[2].weight = w3;
	return rs;
}

static void
swrr_shares_match_weights_in_every_window(void **state)
{
	struct mt_route v[3];
	struct mt_routes rs = three_routes(v, 1, 2, 3);
	struct mt_selector *s = mt_selector_new(&rs, 0);
	int count[3] = { 0 }, window[3] = { 0 };
	char why[128];

	for (int i = 0; i < 600; i++) {
		int p = mt_route_pick(s, "a@b.c", 5, 20000, NULL, NULL, why,
		    sizeof(why));

		assert_in_range(p, 0, 2);
		count[p]++;
		window[p]++;
		if (i % 6 == 5) {	/* smooth: each window of 6 is exact */
			assert_int_equal(window[0], 1);
			assert_int_equal(window[1], 2);
			assert_int_equal(window[2], 3);
			memset(window, 0, sizeof(window));
		}
	}
	assert_int_equal(count[0], 100);
	assert_int_equal(count[1], 200);
	assert_int_equal(count[2], 300);
	mt_selector_free(s);
}

static void
paused_and_listed_routes_get_nothing(void **state)
{
	struct mt_route v[3];
	struct mt_routes rs = three_routes(v, 1, 2, 3);
	struct mt_selector *s = mt_selector_new(&rs, 0);
	char why[128];

	mt_selector_set_state(s, 2, MT_ROUTE_PAUSED);
	mt_selector_set_state(s, 1, MT_ROUTE_LISTED);
	for (int i = 0; i < 20; i++)
		assert_int_equal(mt_route_pick(s, "a@b", 3, 1, NULL, NULL, why,
		    sizeof(why)), 0);
	mt_selector_set_state(s, 0, MT_ROUTE_PAUSED);
	assert_int_equal(mt_route_pick(s, "a@b", 3, 1, NULL, NULL, why,
	    sizeof(why)), -1);
	assert_non_null(strstr(why, "2 paused, 1 listed"));
	mt_selector_free(s);
}

static void
unknown_health_means_no_route(void **state)
{
	struct mt_route v[3];
	struct mt_routes rs = three_routes(v, 1, 1, 1);
	struct mt_selector *s = mt_selector_new(&rs, 0);
	char why[128];

	mt_selector_set_health_known(s, 0);
	assert_int_equal(mt_route_pick(s, "a@b", 3, 1, NULL, NULL, why,
	    sizeof(why)), -1);
	assert_non_null(strstr(why, "health unknown"));
	mt_selector_free(s);
}

struct fake_counter {
	long taken[3];
	int fail;
};

static int
fake_take(void *arg, const struct mt_route *r, long day, long cap)
{
	struct fake_counter *fc = arg;
	int i = r->name[1] - '1';

	if (fc->fail)
		return -1;
	if (fc->taken[i] >= cap)
		return 0;
	fc->taken[i]++;
	return 1;
}

static void
warmup_overflow_goes_to_other_routes(void **state)
{
	struct mt_route v[3];
	struct mt_routes rs = three_routes(v, 1, 1, 10);
	struct mt_selector *s;
	struct fake_counter fc = { { 0 }, 0 };
	int count[3] = { 0 };
	char why[128];

	v[2].warmup = 1;
	v[2].warm_start_day = 100;
	v[2].warm_first_cap = 50;
	v[2].warm_growth = 2;
	s = mt_selector_new(&rs, 0);
	for (int i = 0; i < 300; i++)
		count[mt_route_pick(s, "a@b", 3, 100, fake_take, &fc, why,
		    sizeof(why))]++;
	assert_int_equal(count[2], 50);
	assert_int_equal(fc.taken[2], 50);
	assert_int_equal(count[0] + count[1], 250);
	assert_true(abs(count[0] - count[1]) <= 1);
	/* Redis unreachable: the capped route is skipped, never over-used. */
	fc.fail = 1;
	for (int i = 0; i < 30; i++)
		assert_int_not_equal(mt_route_pick(s, "a@b", 3, 101, fake_take,
		    &fc, why, sizeof(why)), 2);
	mt_selector_free(s);
}

static void
sticky_keeps_domain_on_one_route_and_spreads_domains(void **state)
{
	struct mt_route v[3];
	struct mt_routes rs = three_routes(v, 1, 2, 3);
	struct mt_selector *s = mt_selector_new(&rs, 1);
	int count[3] = { 0 };
	char why[128], key[64];

	for (int d = 0; d < 3000; d++) {
		int first = -1;

		for (int u = 0; u < 3; u++) {
			int n = snprintf(key, sizeof(key), "u%d@Dom%d.example",
			    u, d);
			int p = mt_route_pick(s, key, (size_t)n, 1, NULL, NULL,
			    why, sizeof(why));

			if (first < 0)
				first = p;
			assert_int_equal(p, first);
		}
		count[first]++;
	}
	/* Weighted rendezvous hashing: shares near 1/6, 2/6, 3/6. */
	assert_in_range(count[0], 400, 600);
	assert_in_range(count[1], 880, 1120);
	assert_in_range(count[2], 1350, 1650);
	mt_selector_free(s);
}

static void
sender_domain_of_keys(void **state)
{
	char d[64];

	assert_int_equal(mt_route_sender_domain("a@Example.ORG", 13, d,
	    sizeof(d)), 11);
	assert_string_equal(d, "example.org");
	mt_route_sender_domain("@b.c", 4, d, sizeof(d));
	assert_string_equal(d, "b.c");
	assert_int_equal(mt_route_sender_domain("<>", 2, d, sizeof(d)), 0);
	assert_string_equal(d, "");
}

static void
socketmap_requests_parse_and_split(void **state)
{
	struct mt_socketmap_req q;
	char err[128];
	const char in[] = "19:route a@example.org,13:route b@x.y.z,";
	long n = mt_socketmap_parse(in, sizeof(in) - 1, &q, err, sizeof(err));

	assert_int_equal(n, 23);
	assert_int_equal(q.name_len, 5);
	assert_memory_equal(q.name, "route", 5);
	assert_int_equal(q.key_len, 13);
	assert_memory_equal(q.key, "a@example.org", 13);
	n = mt_socketmap_parse(in + 23, sizeof(in) - 24, &q, err, sizeof(err));
	assert_int_equal(n, 17);
	assert_memory_equal(q.key, "b@x.y.z", 7);
}

static void
socketmap_partial_requests_wait_for_more(void **state)
{
	struct mt_socketmap_req q;
	char err[128];
	const char *in = "19:route a@example.org,";

	for (size_t i = 0; i < strlen(in); i++)
		assert_int_equal(mt_socketmap_parse(in, i, &q, err,
		    sizeof(err)), 0);
}

static void
socketmap_malformed_requests_are_errors(void **state)
{
	static const char *const bad[] = { ":x,", "x:", "3:abc;", "5:route,",
	    "01:x,", "10001:", "99999999999999999999:", "2: a," };
	struct mt_socketmap_req q;
	char err[128];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (mt_socketmap_parse(bad[i], strlen(bad[i]), &q, err,
		    sizeof(err)) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
}

static void
socketmap_replies_are_netstrings_without_controls(void **state)
{
	char out[64];

	assert_int_equal(mt_socketmap_reply(out, sizeof(out), "OK", "r1:"), 9);
	assert_string_equal(out, "6:OK r1:,");
	mt_socketmap_reply(out, sizeof(out), "NOTFOUND", "");
	assert_string_equal(out, "9:NOTFOUND ,");
	mt_socketmap_reply(out, sizeof(out), "TEMP", "a\r\nb");
	assert_string_equal(out, "9:TEMP a??b,");
	assert_int_equal(mt_socketmap_reply(out, 8, "OK", "r1:"), 0);
}

static void
dnsbl_names_reverse_the_address(void **state)
{
	char n[256];

	assert_int_equal(mt_route_dnsbl_name("192.0.2.99", "zen.example",
	    n, sizeof(n)), 0);
	assert_string_equal(n, "99.2.0.192.zen.example");
	assert_int_equal(mt_route_dnsbl_name("2001:db8::1", "bl.example", n,
	    sizeof(n)), 0);
	assert_string_equal(n, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
	    "0.8.b.d.0.1.0.0.2.bl.example");
	assert_int_equal(mt_route_dnsbl_name("nope", "z", n, sizeof(n)), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(route_line_with_every_setting_parses),
		cmocka_unit_test(transport_defaults_to_name_and_weight_to_one),
		cmocka_unit_test(bad_route_lines_say_what_is_wrong),
		cmocka_unit_test(warmup_cap_grows_per_day_and_ends),
		cmocka_unit_test(swrr_shares_match_weights_in_every_window),
		cmocka_unit_test(paused_and_listed_routes_get_nothing),
		cmocka_unit_test(unknown_health_means_no_route),
		cmocka_unit_test(warmup_overflow_goes_to_other_routes),
		cmocka_unit_test(sticky_keeps_domain_on_one_route_and_spreads_domains),
		cmocka_unit_test(sender_domain_of_keys),
		cmocka_unit_test(socketmap_requests_parse_and_split),
		cmocka_unit_test(socketmap_partial_requests_wait_for_more),
		cmocka_unit_test(socketmap_malformed_requests_are_errors),
		cmocka_unit_test(socketmap_replies_are_netstrings_without_controls),
		cmocka_unit_test(dnsbl_names_reverse_the_address),
	};

	return cmocka_run_group_tests_name("route", tests, NULL, NULL);
}
