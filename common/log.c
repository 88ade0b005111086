/*
 * Program logging: syslog (facility mail) and, in the foreground, stderr
 * too, one line per call, Postfix's "warning: " / "error: " prefixes.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static const char *log_ident = "mailtrail";
static int log_stderr;

void
mt_log_open(const char *ident, int to_stderr)
{
	log_ident = ident;
	log_stderr = to_stderr;
	openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

static const char *
prefix(int prio)
{
	switch (prio) {
	case LOG_WARNING: return "warning: ";
	case LOG_ERR: return "error: ";
	case LOG_CRIT: case LOG_ALERT: case LOG_EMERG: return "fatal: ";
	default: return "";
	}
}

static void
vlog(int prio, const char *fmt, va_list ap)
{
	char msg[4096];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	syslog(prio, "%s%s", prefix(prio), msg);
	if (log_stderr) {
		/* One write per line so lines of different threads never mix. */
		char line[4200];
		int n = snprintf(line, sizeof(line), "%s[%ld]: %s%s\n",
		    log_ident, (long)getpid(), prefix(prio), msg);

		if (n > 0) {
			size_t len = (size_t)n;

			if (len >= sizeof(line)) {	/* cut, but keep the newline */
				len = sizeof(line) - 1;
				line[len - 1] = '\n';
			}
			if (write(STDERR_FILENO, line, len) < 0)
				log_stderr = 0;
		}
	}
}

void
mt_log(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(prio, fmt, ap);
	va_end(ap);
}

void
mt_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_CRIT, fmt, ap);
	va_end(ap);
	exit(1);
}
