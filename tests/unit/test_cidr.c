/* InternalHosts matching: IPv4, IPv6, v4-mapped clients, odd prefixes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "../../common/cidr.h"

static void
prefixes_match_on_bit_boundaries(void **state)
{
	struct mt_cidr_list l = { 0 };
	char bad[64];

	assert_int_equal(mt_cidr_list_add(&l, "192.0.2.0/25 198.51.100.7", bad,
	    sizeof(bad)), 0);
	assert_true(mt_cidr_list_match_text(&l, "192.0.2.127"));
	assert_false(mt_cidr_list_match_text(&l, "192.0.2.128"));
	assert_true(mt_cidr_list_match_text(&l, "198.51.100.7"));
	assert_false(mt_cidr_list_match_text(&l, "198.51.100.8"));
	assert_false(mt_cidr_list_match_text(&l, "not-an-ip"));
	mt_cidr_list_free(&l);
}

static void
ipv6_and_mapped_ipv4_clients_match(void **state)
{
	struct mt_cidr_list l = { 0 };
	struct sockaddr_in6 sa6 = { .sin6_family = AF_INET6 };
	char bad[64];

	assert_int_equal(mt_cidr_list_add(&l, "2001:db8:1::/48,127.0.0.0/8", bad,
	    sizeof(bad)), 0);
	assert_true(mt_cidr_list_match_text(&l, "2001:db8:1:ffff::1"));
	assert_false(mt_cidr_list_match_text(&l, "2001:db8:2::1"));
	inet_pton(AF_INET6, "::ffff:127.0.0.5", &sa6.sin6_addr);
	assert_true(mt_cidr_list_match(&l, (struct sockaddr *)&sa6));
	inet_pton(AF_INET6, "::ffff:10.0.0.5", &sa6.sin6_addr);
	assert_false(mt_cidr_list_match(&l, (struct sockaddr *)&sa6));
	mt_cidr_list_free(&l);
}

static void
zero_prefix_matches_everything_of_its_family(void **state)
{
	struct mt_cidr_list l = { 0 };
	char bad[64];

	assert_int_equal(mt_cidr_list_add(&l, "0.0.0.0/0", bad, sizeof(bad)), 0);
	assert_true(mt_cidr_list_match_text(&l, "203.0.113.9"));
	assert_false(mt_cidr_list_match_text(&l, "::1"));
	mt_cidr_list_free(&l);
}

static void
bad_entries_are_named(void **state)
{
	struct mt_cidr_list l = { 0 };
	char bad[64];

	assert_int_equal(mt_cidr_list_add(&l, "10.0.0.0/8, 10.0.0/8", bad,
	    sizeof(bad)), -1);
	assert_string_equal(bad, "10.0.0/8");
	assert_int_equal(mt_cidr_list_add(&l, "::1/129", bad, sizeof(bad)), -1);
	assert_int_equal(mt_cidr_list_add(&l, "1.2.3.4/-1", bad, sizeof(bad)), -1);
	assert_int_equal(mt_cidr_list_add(&l, "1.2.3.4/", bad, sizeof(bad)), -1);
	mt_cidr_list_free(&l);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(prefixes_match_on_bit_boundaries),
		cmocka_unit_test(ipv6_and_mapped_ipv4_clients_match),
		cmocka_unit_test(zero_prefix_matches_everything_of_its_family),
		cmocka_unit_test(bad_entries_are_named),
	};
	return cmocka_run_group_tests_name("cidr", tests, NULL, NULL);
}
