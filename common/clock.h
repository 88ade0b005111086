/*
 * Milliseconds from a clock: CLOCK_REALTIME for timestamps that users see
 * (record times, event "t"), CLOCK_MONOTONIC for timeouts and backoff.
 */
#ifndef MT_CLOCK_H
#define MT_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t
mt_clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
