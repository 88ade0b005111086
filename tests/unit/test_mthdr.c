/* X-Mailtrail-* headers by name: classified, counted, bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "../../common/mthdr.h"

static void
own_names_are_classified_in_any_case(void **state)
{
	struct mt_mthdr_seen s = { 0 };

	assert_int_equal(mt_mthdr_note(&s, "X-Mailtrail-ID"), MT_MTHDR_ID);
	assert_int_equal(mt_mthdr_note(&s, "x-mailtrail-id"), MT_MTHDR_ID);
	assert_int_equal(mt_mthdr_note(&s, "X-MAILTRAIL-SENDER"), MT_MTHDR_SENDER);
	assert_int_equal(mt_mthdr_note(&s, "X-Mailtrail-Hop"), MT_MTHDR_HOP);
	assert_int_equal(mt_mthdr_note(&s, "Received"), MT_MTHDR_NONE);
	assert_int_equal(mt_mthdr_note(&s, "X-Mailtrail"), MT_MTHDR_NONE);
	assert_int_equal(s.n_id, 2);
	assert_int_equal(s.n_sender, 1);
	assert_int_equal(s.n_hop, 1);
	assert_int_equal(s.total, 4);
	assert_int_equal(s.over, 0);
	mt_mthdr_free(&s);
}

static void
unknown_names_are_counted_once_per_name_whatever_the_case(void **state)
{
	struct mt_mthdr_seen s = { 0 };

	assert_int_equal(mt_mthdr_note(&s, "X-Mailtrail-Foo"), MT_MTHDR_OTHER);
	assert_int_equal(mt_mthdr_note(&s, "x-mailtrail-foo"), MT_MTHDR_OTHER);
	assert_int_equal(mt_mthdr_note(&s, "X-Mailtrail-ID-Extra"), MT_MTHDR_OTHER);
	assert_int_equal(mt_mthdr_note(&s, "X-Mailtrail-"), MT_MTHDR_OTHER);
	assert_int_equal(s.n_other, 3);
	assert_string_equal(s.other[0].name, "X-Mailtrail-Foo");
	assert_int_equal(s.other[0].count, 2);
	assert_int_equal(s.n_id, 0);
	assert_int_equal(s.over, 0);
	mt_mthdr_free(&s);
}

static void
too_many_names_or_headers_or_a_long_name_is_over(void **state)
{
	struct mt_mthdr_seen s = { 0 };
	char name[MT_MTHDR_NAME_LEN + 40];

	for (int i = 0; i < MT_MTHDR_NAMES_MAX; i++) {
		snprintf(name, sizeof(name), "X-Mailtrail-N%d", i);
		mt_mthdr_note(&s, name);
	}
	assert_int_equal(s.over, 0);
	mt_mthdr_note(&s, "X-Mailtrail-One-Too-Many");
	assert_int_equal(s.over, 1);
	assert_int_equal(s.n_other, MT_MTHDR_NAMES_MAX);
	mt_mthdr_free(&s);

	for (int i = 0; i < MT_MTHDR_TOTAL_MAX; i++)
		mt_mthdr_note(&s, "X-Mailtrail-Hop");
	assert_int_equal(s.over, 0);
	mt_mthdr_note(&s, "X-Mailtrail-Hop");
	assert_int_equal(s.over, 1);
	mt_mthdr_free(&s);

	memset(name, 'a', sizeof(name) - 1);
	memcpy(name, "X-Mailtrail-", 12);
	name[sizeof(name) - 1] = '\0';
	assert_int_equal(mt_mthdr_note(&s, name), MT_MTHDR_OTHER);
	assert_int_equal(s.over, 1);
	assert_int_equal(s.n_other, 0);
	mt_mthdr_free(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(own_names_are_classified_in_any_case),
		cmocka_unit_test(unknown_names_are_counted_once_per_name_whatever_the_case),
		cmocka_unit_test(too_many_names_or_headers_or_a_long_name_is_over),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
