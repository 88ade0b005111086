/* Escaping per destination: header values, addresses, log fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "../../common/text.h"

static void
header_value_never_carries_cr_lf_nul(void **state)
{
	char out[64];
	const char in[] = "a\r\nX-Evil: 1\0b\x01\x7f";

	mt_text_header(out, sizeof(out), in, sizeof(in) - 1);
	assert_string_equal(out, "a X-Evil: 1?b??");
}

static void
header_value_folds_blanks_and_trims(void **state)
{
	char out[64];

	mt_text_header(out, sizeof(out), "  a \t\t b  ", 10);
	assert_string_equal(out, "a b");
}

static void
header_value_keeps_utf8_and_replaces_invalid_bytes(void **state)
{
	char out[64];
	const char in[] = "caf\xc3\xa9 \xff\xc0\xaf \xed\xa0\x80";

	mt_text_header(out, sizeof(out), in, sizeof(in) - 1);
	assert_string_equal(out, "caf\xc3\xa9 ??? ???");
}

static void
header_value_is_cut_to_the_buffer_without_splitting_utf8(void **state)
{
	char out[5];

	assert_int_equal(mt_text_header(out, sizeof(out), "abc\xc3\xa9", 5), 3);
	assert_string_equal(out, "abc");
	char big[2000];
	char dst[999];
	memset(big, 'x', sizeof(big));
	assert_int_equal(mt_text_header(dst, sizeof(dst), big, sizeof(big)), 998);
}

static void
address_is_normalised(void **state)
{
	char out[64];

	mt_text_address(out, sizeof(out), " <Alice@Example.COM> ", 21);
	assert_string_equal(out, "alice@example.com");
	mt_text_address(out, sizeof(out), "<>", 2);
	assert_string_equal(out, "<>");
	mt_text_address(out, sizeof(out), "", 0);
	assert_string_equal(out, "<>");
	mt_text_address(out, sizeof(out), "<a\r\nb@x>", 8);
	assert_string_equal(out, "ab@x");
}

static void
address_too_long_is_reported(void **state)
{
	char out[8];

	assert_int_equal(mt_text_address(out, sizeof(out), "abcdefghij@x", 12),
	    (size_t)-1);
}

static void
log_field_escapes_controls_and_backslash(void **state)
{
	char out[64];

	mt_text_log(out, sizeof(out), "a\\b\nc\xc3\xa9", 7);
	assert_string_equal(out, "a\\x5cb\\x0ac\\xc3\\xa9");
}

static void
log_field_cut_never_splits_an_escape(void **state)
{
	char out[6];

	mt_text_log(out, sizeof(out), "ab\n", 3);
	assert_string_equal(out, "ab");
}

static void
utf8_decoder_takes_valid_sequences_only(void **state)
{
	static const struct {
		const char *s;
		size_t len, used;
		long cp;
	} cases[] = {
		{ "A", 1, 1, 'A' },
		{ "\xc3\xa9", 2, 2, 0xe9 },
		{ "\xe2\x82\xac", 3, 3, 0x20ac },
		{ "\xf0\x9f\x98\x80", 4, 4, 0x1f600 },
		{ "\xc0\x80", 2, 1, -1 },		/* overlong NUL */
		{ "\xe0\x80\xaf", 3, 1, -1 },		/* overlong '/' */
		{ "\xed\xa0\x80", 3, 1, -1 },		/* a surrogate */
		{ "\xf4\x90\x80\x80", 4, 1, -1 },	/* past U+10FFFF */
		{ "\xe2\x82", 2, 1, -1 },		/* cut short */
		{ "\x80", 1, 1, -1 },			/* a continuation */
	};
	size_t used;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		long cp = mt_utf8_next((const unsigned char *)cases[i].s,
		    cases[i].len, &used);

		assert_int_equal(cp, cases[i].cp);
		assert_int_equal(used, cases[i].used);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(utf8_decoder_takes_valid_sequences_only),
		cmocka_unit_test(header_value_never_carries_cr_lf_nul),
		cmocka_unit_test(header_value_folds_blanks_and_trims),
		cmocka_unit_test(header_value_keeps_utf8_and_replaces_invalid_bytes),
		cmocka_unit_test(header_value_is_cut_to_the_buffer_without_splitting_utf8),
		cmocka_unit_test(address_is_normalised),
		cmocka_unit_test(address_too_long_is_reported),
		cmocka_unit_test(log_field_escapes_controls_and_backslash),
		cmocka_unit_test(log_field_cut_never_splits_an_escape),
	};
	return cmocka_run_group_tests_name("text", tests, NULL, NULL);
}
