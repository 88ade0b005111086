/*
 * What a submitted message's Deferred-Delivery: date means at end of
 * message: hold it until then, send it now (a past date, or one within
 * the slack that covers clocks and the time the submission took), or
 * refuse it (no date we can read, or further ahead than MaxDeferral).
 */
#include <stdio.h>
#include <time.h>

#include "schedule.h"
#include "../common/maildate.h"

enum mt_sched_verdict
mt_sched_decide(const char *value, size_t len, int64_t now_ms,
    long max_deferral_s, int64_t *due_ms, char *err, size_t errlen)
{
	char why[128];
	int64_t t;

	*due_ms = 0;
	if (mt_mail_date(value, len, &t, why, sizeof(why)) < 0) {
		if (errlen > 0)
			snprintf(err, errlen, "%s", why);
		return MT_SCHED_BAD;
	}
	if (t > INT64_MAX / 1000 || t < 0) {
		if (errlen > 0)
			snprintf(err, errlen, "date out of range");
		return MT_SCHED_BAD;
	}
	*due_ms = t * 1000;
	if (*due_ms <= now_ms + MT_SCHED_SLACK_MS)
		return MT_SCHED_NOW;
	if (*due_ms > now_ms + (int64_t)max_deferral_s * 1000)
		return MT_SCHED_TOO_FAR;
	return MT_SCHED_HOLD;
}

size_t
mt_sched_iso(char *buf, size_t size, int64_t t_ms)
{
	time_t t = (time_t)(t_ms / 1000);
	struct tm tm;

	if (t_ms < 0 || size == 0 || gmtime_r(&t, &tm) == NULL)
		return 0;
	return strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
