/* The decision a Deferred-Delivery: date makes at submission. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "../../schedule/schedule.h"

#define NOW 1796230000000LL	/* 2026-12-02T16:46:40Z */
#define DAY 86400L

static enum mt_sched_verdict
decide(const char *v, int64_t *due, char *err, size_t errlen)
{
	return mt_sched_decide(v, strlen(v), NOW, 30 * DAY, due, err, errlen);
}

static void
future_dates_in_any_zone_are_held_until_then(void **state)
{
	char err[64];
	int64_t due;

	/* 17:46:40 UTC, written in three zones */
	assert_int_equal(decide("Wed, 2 Dec 2026 17:46:40 +0000", &due, err,
	    sizeof(err)), MT_SCHED_HOLD);
	assert_int_equal(due, NOW + 3600 * 1000);
	assert_int_equal(decide("Wed, 2 Dec 2026 18:46:40 +0100", &due, err,
	    sizeof(err)), MT_SCHED_HOLD);
	assert_int_equal(due, NOW + 3600 * 1000);
	assert_int_equal(decide("2 Dec 2026 12:46:40 EST", &due, err,
	    sizeof(err)), MT_SCHED_HOLD);
	assert_int_equal(due, NOW + 3600 * 1000);
}

static void
past_and_near_dates_go_now(void **state)
{
	char err[64];
	int64_t due;

	assert_int_equal(decide("Tue, 1 Dec 2026 16:46:40 +0000", &due, err,
	    sizeof(err)), MT_SCHED_NOW);
	/* within the slack */
	assert_int_equal(decide("Wed, 2 Dec 2026 16:46:44 +0000", &due, err,
	    sizeof(err)), MT_SCHED_NOW);
	/* just past it */
	assert_int_equal(decide("Wed, 2 Dec 2026 16:46:46 +0000", &due, err,
	    sizeof(err)), MT_SCHED_HOLD);
}

static void
max_deferral_is_the_limit(void **state)
{
	char err[64];
	int64_t due;

	/* exactly 30 days ahead is allowed, a second more is not */
	assert_int_equal(decide("Fri, 1 Jan 2027 16:46:40 +0000", &due, err,
	    sizeof(err)), MT_SCHED_HOLD);
	assert_int_equal(decide("Fri, 1 Jan 2027 16:46:41 +0000", &due, err,
	    sizeof(err)), MT_SCHED_TOO_FAR);
	assert_int_equal(due, NOW + 30 * DAY * 1000 + 1000);
}

static void
unreadable_dates_say_why(void **state)
{
	char err[64];
	int64_t due;

	assert_int_equal(decide("tomorrow at noon", &due, err, sizeof(err)),
	    MT_SCHED_BAD);
	assert_true(err[0] != '\0');
	assert_int_equal(decide("", &due, err, sizeof(err)), MT_SCHED_BAD);
	assert_int_equal(mt_sched_decide("2 Dec 2026 17:46:40 +0000\0x", 27,
	    NOW, 30 * DAY, &due, err, sizeof(err)), MT_SCHED_BAD);
	/* no room for a reason is no crash */
	assert_int_equal(decide("nonsense", &due, NULL, 0), MT_SCHED_BAD);
}

static void
iso_form_of_the_due_time(void **state)
{
	char buf[32];

	assert_int_equal(mt_sched_iso(buf, sizeof(buf), NOW + 999), 20);
	assert_string_equal(buf, "2026-12-02T16:46:40Z");
	assert_int_equal(mt_sched_iso(buf, 10, NOW), 0);
	assert_int_equal(mt_sched_iso(buf, sizeof(buf), -1), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(future_dates_in_any_zone_are_held_until_then),
		cmocka_unit_test(past_and_near_dates_go_now),
		cmocka_unit_test(max_deferral_is_the_limit),
		cmocka_unit_test(unreadable_dates_say_why),
		cmocka_unit_test(iso_form_of_the_due_time),
	};

	return cmocka_run_group_tests_name("schedule", tests, NULL, NULL);
}
