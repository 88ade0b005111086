/* Tracking IDs: form, time order, and refusal of forged or altered IDs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "../../common/trackid.h"

static const unsigned char key[] = "0123456789abcdef0123456789abcdef";
static const unsigned char other[] = "fedcba9876543210fedcba9876543210";

static void
new_id_has_documented_form(void **state)
{
	char id[MT_ID_SIZE];

	assert_int_equal(mt_id_new(key, 32, 1795301162675ULL, id), 0);
	assert_int_equal(strlen(id), MT_ID_LEN);
	assert_int_equal(id[26], '.');
	for (int i = 0; i < MT_ID_LEN; i++)
		if (i != 26)
			assert_non_null(strchr("0123456789abcdefghijklmnopqrstuv", id[i]));
	assert_int_equal(mt_id_time(id), 1795301162675LL);
}

static void
ids_sort_by_time(void **state)
{
	char a[MT_ID_SIZE], b[MT_ID_SIZE], c[MT_ID_SIZE];

	mt_id_new(key, 32, 1000, a);
	mt_id_new(key, 32, 1001, b);
	mt_id_new(key, 32, 1795301162675ULL, c);
	assert_true(strcmp(a, b) < 0);
	assert_true(strcmp(b, c) < 0);
}

static void
own_id_verifies_and_is_copied_out(void **state)
{
	char id[MT_ID_SIZE], out[MT_ID_SIZE], padded[64];

	mt_id_new(key, 32, 42, id);
	snprintf(padded, sizeof(padded), "  %s \r\n", id);
	assert_int_equal(mt_id_verify(key, 32, padded, strlen(padded), out), 1);
	assert_string_equal(out, id);
}

static void
id_of_another_site_is_refused(void **state)
{
	char id[MT_ID_SIZE];

	mt_id_new(other, 32, 42, id);
	assert_int_equal(mt_id_verify(key, 32, id, strlen(id), NULL), 0);
}

static void
altered_id_is_refused(void **state)
{
	char id[MT_ID_SIZE];

	mt_id_new(key, 32, 42, id);
	for (int i = 0; i < MT_ID_LEN; i++) {
		char bad[MT_ID_SIZE];

		if (i == 26)
			continue;
		memcpy(bad, id, sizeof(bad));
		bad[i] = bad[i] == '0' ? '1' : '0';
		assert_int_equal(mt_id_verify(key, 32, bad, MT_ID_LEN, NULL), 0);
	}
}

static void
malformed_ids_are_refused(void **state)
{
	const char *bad[] = { "", "forged", "01k804jfljkqto4nbo2n26or9m",
	    "01k804jfljkqto4nbo2n26or9m.gvq1ppoebakgs779x",
	    "01K804JFLJKQTO4NBO2N26OR9M.GVQ1PPOEBAKGS779",
	    "01k804jfljkqto4nbo2n26or9m-gvq1ppoebakgs779" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(mt_id_verify(key, 32, bad[i], strlen(bad[i]),
		    NULL), 0);
	assert_int_equal(mt_id_time("zz"), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(new_id_has_documented_form),
		cmocka_unit_test(ids_sort_by_time),
		cmocka_unit_test(own_id_verifies_and_is_copied_out),
		cmocka_unit_test(id_of_another_site_is_refused),
		cmocka_unit_test(altered_id_is_refused),
		cmocka_unit_test(malformed_ids_are_refused),
	};
	return cmocka_run_group_tests_name("trackid", tests, NULL, NULL);
}
