/*
 * The Received: parser against real-world forms (tests/geo/received_cases.tsv
 * names each corpus file with the address and by-host it must yield) and
 * against the malformed ones, which must parse within bounds or be refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../geo/geo.h"

static const char *corpus, *cases;

static size_t
read_file(const char *name, char *buf, size_t size)
{
	char path[1024];
	FILE *fp;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", corpus, name);
	fp = fopen(path, "rb");
	if (fp == NULL)
		fail_msg("cannot open %s", path);
	n = fread(buf, 1, size, fp);
	fclose(fp);
	return n;
}

static int
same_ip(const char *a, const char *b)
{
	unsigned char x[16], y[16];

	if (*a == '\0' || *b == '\0')
		return *a == *b;
	if (inet_pton(AF_INET, a, x) == 1 && inet_pton(AF_INET, b, y) == 1)
		return memcmp(x, y, 4) == 0;
	if (inet_pton(AF_INET6, a, x) == 1 && inet_pton(AF_INET6, b, y) == 1)
		return memcmp(x, y, 16) == 0;
	return 0;
}

static void
real_world_forms_yield_client_address_and_by_host(void **state)
{
	FILE *fp = fopen(cases, "r");
	char line[2048];
	int n = 0;

	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp)) {
		char *rest = line, *file, *ip, *by;
		static char buf[1 << 20];
		struct mt_received r;
		size_t len;

		line[strcspn(line, "\r\n")] = '\0';
		file = strsep(&rest, "\t");
		ip = strsep(&rest, "\t");
		by = strsep(&rest, "\t");
		if (file == NULL || *file == '\0' || ip == NULL || by == NULL)
			continue;
		len = read_file(file, buf, sizeof(buf));
		/* "(qmail 123 invoked by uid 89)": no clause at all, refused. */
		if (mt_received_parse(buf, len, &r) != 0 && (*ip || *by))
			fail_msg("%s: refused", file);
		if (!same_ip(r.ip, ip))
			fail_msg("%s: ip \"%s\", want \"%s\"", file, r.ip, ip);
		if (strcmp(r.by_host, by) != 0)
			fail_msg("%s: by \"%s\", want \"%s\"", file, r.by_host, by);
		n++;
	}
	fclose(fp);
	assert_true(n >= 30);
}

static void
malformed_forms_stay_in_bounds(void **state)
{
	DIR *d = opendir(corpus);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		static char buf[1 << 20];
		struct mt_received r;
		size_t len;

		if (strncmp(e->d_name, "malformed-", 10) != 0)
			continue;
		len = read_file(e->d_name, buf, sizeof(buf));
		mt_received_parse(buf, len, &r);
		assert_true(strlen(r.from_host) < MT_HOST_MAX);
		assert_true(strlen(r.by_host) < MT_HOST_MAX);
		assert_null(strpbrk(r.from_host, "\r\n"));
		if (r.ip[0]) {
			unsigned char a[16];
			assert_true(inet_pton(AF_INET, r.ip, a) == 1 ||
			    inet_pton(AF_INET6, r.ip, a) == 1);
		}
		n++;
	}
	closedir(d);
	assert_true(n >= 10);
}

static void
bracketed_literal_wins_over_helo_words(void **state)
{
	const char *v = "from 198.51.100.99 (HELO 203.0.113.1) ([192.0.2.7]) "
	    "by mx.example (Postfix) with ESMTP id X; Sat, 21 Nov 2026";
	struct mt_received r;

	assert_int_equal(mt_received_parse(v, strlen(v), &r), 0);
	assert_string_equal(r.ip, "192.0.2.7");
	assert_string_equal(r.by_host, "mx.example");
}

static void
text_without_from_or_by_is_refused(void **state)
{
	struct mt_received r;

	assert_int_equal(mt_received_parse("nothing here", 12, &r), -1);
	assert_int_equal(mt_received_parse("", 0, &r), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(real_world_forms_yield_client_address_and_by_host),
		cmocka_unit_test(malformed_forms_stay_in_bounds),
		cmocka_unit_test(bracketed_literal_wins_over_helo_words),
		cmocka_unit_test(text_without_from_or_by_is_refused),
	};

	corpus = getenv("MT_TEST_RECEIVED_DIR");
	cases = getenv("MT_TEST_RECEIVED_CASES");
	if (corpus == NULL || cases == NULL) {
		fprintf(stderr, "test_received: set MT_TEST_RECEIVED_DIR and "
		    "MT_TEST_RECEIVED_CASES (make unit does)\n");
		return 1;
	}
	return cmocka_run_group_tests_name("received", tests, NULL, NULL);
}
