/*
 * The timestamp at the start of a log line: RFC 3339 or "YYYY-MM-DD
 * HH:MM:SS" (with a fraction and a zone, or local time without one), or
 * syslog's "Mon DD HH:MM:SS" (local time; the year is the one that puts it
 * closest before now_ms, as a log read on Jan 1 may hold Dec 31).
 */
#ifndef MT_LOGTIME_H
#define MT_LOGTIME_H

#include <stdint.h>

/* 0 with *t_ms (unix ms) and *p past the timestamp, or -1 (*p kept). */
int mt_log_time(const char **p, const char *end, int64_t now_ms,
    int64_t *t_ms);

#endif
