/*
 * Following a log file: resume from the state file, rotation by rename
 * (old file finished first), truncation, and truncation that was written
 * past our offset before we looked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../delivery/delivery.h"

static char dir[] = "/tmp/mt-follow-XXXXXX";
static char logp[256], statep[256];

static void
append(const char *path, const char *text)
{
	FILE *f = fopen(path, "a");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* The next line as a string, or NULL at end. */
static const char *
next_line(struct mt_follow *f)
{
	static char buf[256];
	const char *l;
	size_t n;
	int cut, rc = mt_follow_next(f, &l, &n, &cut);

	assert_true(rc >= 0);
	if (rc == 0)
		return NULL;
	snprintf(buf, sizeof(buf), "%.*s", (int)n, l);
	return buf;
}

static int
setup(void **state)
{
	assert_non_null(mkdtemp(dir));
	snprintf(logp, sizeof(logp), "%s/maillog", dir);
	snprintf(statep, sizeof(statep), "%s/state", dir);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
resumes_after_the_saved_line_and_holds_back_partial_lines(void **state)
{
	struct mt_follow f;

	unlink(logp);
	unlink(statep);
	append(logp, "one\ntwo\nthr");
	assert_int_equal(mt_follow_open(&f, logp, statep), 0);
	assert_string_equal(next_line(&f), "one");
	assert_int_equal(mt_follow_save(&f, statep), 0);
	mt_follow_close(&f);
	assert_int_equal(mt_follow_open(&f, logp, statep), 0);
	assert_string_equal(next_line(&f), "two");
	assert_null(next_line(&f));		/* "thr" is not a line yet */
	append(logp, "ee\n");
	assert_string_equal(next_line(&f), "three");
	mt_follow_close(&f);
}

static void
rename_rotation_finishes_the_old_file_first(void **state)
{
	struct mt_follow f;
	char old[300];

	unlink(logp);
	snprintf(old, sizeof(old), "%s.1", logp);
	append(logp, "a\n");
	assert_int_equal(mt_follow_open(&f, logp, NULL), 0);
	assert_string_equal(next_line(&f), "a");
	append(logp, "b\n");
	assert_int_equal(rename(logp, old), 0);
	append(logp, "c\n");
	assert_string_equal(next_line(&f), "b");
	assert_string_equal(next_line(&f), "c");
	assert_null(next_line(&f));
	mt_follow_close(&f);
}

/* Five old lines, read; then truncated and eight longer lines written. */
static void
truncate_and_rewrite_past(struct mt_follow *f, int reach_eof)
{
	char line[100];
	int i;

	unlink(logp);
	for (i = 0; i < 5; i++) {
		snprintf(line, sizeof(line), "old line %d with some padding text\n", i);
		append(logp, line);
	}
	assert_int_equal(mt_follow_open(f, logp, NULL), 0);
	for (i = 0; i < 5; i++)
		assert_non_null(next_line(f));
	if (reach_eof)
		assert_null(next_line(f));
	assert_int_equal(truncate(logp, 0), 0);
	for (i = 0; i < 8; i++) {
		snprintf(line, sizeof(line), "NEW LINE %d, longer than the old ones\n", i);
		append(logp, line);
	}
}

/* Whatever is read at the stale offset, every new line comes. */
static void
every_new_line_comes(struct mt_follow *f)
{
	char line[100];

	for (int i = 0; i < 8; i++) {
		const char *l;

		snprintf(line, sizeof(line), "NEW LINE %d, longer than the old ones", i);
		while ((l = next_line(f)) != NULL && strcmp(l, line) != 0)
			;
		assert_non_null(l);
	}
	mt_follow_close(f);
}

static void
truncation_starts_again_at_zero_even_when_rewritten_past_us(void **state)
{
	struct mt_follow f;

	truncate_and_rewrite_past(&f, 1);
	every_new_line_comes(&f);
}

/*
 * Truncated before we ever reached the end of the file, and rewritten past
 * our offset before we got there: the head we compare against must be the
 * one we read, not the one there now.
 */
static void
truncation_before_our_first_eof_is_still_seen(void **state)
{
	struct mt_follow f;

	truncate_and_rewrite_past(&f, 0);
	every_new_line_comes(&f);
}

/*
 * Truncated and rewritten past our offset with the same first bytes as
 * before (one daemon logging the same event in the same second): the
 * bytes before our position differ, and that is enough.
 */
static void
truncation_behind_an_unchanged_head_is_still_seen(void **state)
{
	struct mt_follow f;
	char line[100];
	int i;

	unlink(logp);
	append(logp, "Dec  2 19:33:06 mt postfix/smtpd[4567]: connect from localhost[127.0.0.1]\n");
	append(logp, "Dec  2 19:33:06 mt postfix/smtpd[4567]: A1: client=localhost\n");
	assert_int_equal(mt_follow_open(&f, logp, NULL), 0);
	assert_non_null(next_line(&f));
	assert_non_null(next_line(&f));
	assert_null(next_line(&f));
	assert_int_equal(truncate(logp, 0), 0);
	append(logp, "Dec  2 19:33:06 mt postfix/smtpd[4567]: connect from localhost[127.0.0.1]\n");
	for (i = 0; i < 8; i++) {
		snprintf(line, sizeof(line), "NEW LINE %d, longer than the old ones\n", i);
		append(logp, line);
	}
	assert_string_equal(next_line(&f), "Dec  2 19:33:06 mt postfix/smtpd[4567]: connect from localhost[127.0.0.1]");
	every_new_line_comes(&f);
}

/* A writer without O_APPEND after copytruncate leaves a hole of NULs. */
static void
holes_and_blank_lines_are_not_lines(void **state)
{
	struct mt_follow f;
	FILE *fp;

	unlink(logp);
	append(logp, "first\n\n");
	fp = fopen(logp, "a");
	assert_non_null(fp);
	/* longer than a line may be: the whole hole is dropped */
	for (int i = 0; i < 3 * MT_DLV_LINE_MAX; i++)
		fputc('\0', fp);
	fputs("after the hole\n", fp);
	for (int i = 0; i < 10; i++)
		fputc('\0', fp);
	fputc('\n', fp);
	fclose(fp);
	append(logp, "last\n");
	assert_int_equal(mt_follow_open(&f, logp, NULL), 0);
	assert_string_equal(next_line(&f), "first");
	assert_string_equal(next_line(&f), "after the hole");
	assert_string_equal(next_line(&f), "last");
	assert_null(next_line(&f));
	mt_follow_close(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(resumes_after_the_saved_line_and_holds_back_partial_lines),
		cmocka_unit_test(rename_rotation_finishes_the_old_file_first),
		cmocka_unit_test(truncation_starts_again_at_zero_even_when_rewritten_past_us),
		cmocka_unit_test(truncation_before_our_first_eof_is_still_seen),
		cmocka_unit_test(truncation_behind_an_unchanged_head_is_still_seen),
		cmocka_unit_test(holes_and_blank_lines_are_not_lines),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
