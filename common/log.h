/*
 * Logging for the programs (never for library modules): syslog facility
 * mail, and with -f a copy of every line on stderr.
 */
#ifndef MT_LOG_H
#define MT_LOG_H

#include <syslog.h>

void mt_log_open(const char *ident, int to_stderr);
void mt_log(int prio, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Logs at LOG_CRIT and exits 1: for start-up code only. */
void mt_fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

#endif
