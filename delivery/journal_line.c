/*
 * One systemd journal entry of Postfix's to the syslog line the delivery
 * parser reads, so the journal and the log file go through the one parser.
 * Pure and bounded: every field is untrusted bytes (any local process can
 * log with any identifier and message).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "delivery.h"

/* Bytes that keep a field one token of "HOST TAG[PID]: ": printable ASCII
 * without space, ':' or brackets. */
static int
token_ok(const char *s, size_t n)
{
	if (s == NULL || n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch <= ' ' || ch >= 0x7f || ch == ':' || ch == '[' ||
		    ch == ']')
			return 0;
	}
	return 1;
}

static int
digits_ok(const char *s, size_t n)
{
	if (s == NULL || n == 0 || n > 20)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

/* Appends n bytes of s to out (cap bytes in all) as far as they fit. */
static void
put(char *out, size_t cap, size_t *len, const char *s, size_t n)
{
	if (n > cap - *len)
		n = cap - *len;
	memcpy(out + *len, s, n);
	*len += n;
}

enum mt_jline_kind
mt_journal_line(const struct mt_jentry *e, char *out, size_t *out_len)
{
	const size_t cap = MT_DLV_LINE_MAX;
	time_t secs = (time_t)(e->t_us / 1000000);
	enum mt_jline_kind kind = MT_JLINE_OK;
	int host_ok = token_ok(e->host, e->host_len) && e->host_len < 256;
	struct tm tm;
	size_t n;

	*out_len = 0;
	out[0] = '\0';
	if (e->t_us / 1000000 > (uint64_t)253402300799LL ||	/* 9999-12-31 */
	    gmtime_r(&secs, &tm) == NULL ||
	    (n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm)) == 0)
		return MT_JLINE_BAD;
	n += (size_t)snprintf(out + n, cap - n, ".%06uZ %.*s ",
	    (unsigned)(e->t_us % 1000000), host_ok ? (int)e->host_len : 1,
	    host_ok ? e->host : "-");
	/* An identifier the parser would split differently could make a
	 * forged tag out of part of the message: not a line at all. It is
	 * still written (as far as a tag may be long), to be quoted. */
	if (!token_ok(e->ident, e->ident_len) ||
	    e->ident_len >= MT_DLV_SERVICE_MAX)
		kind = MT_JLINE_BAD;
	if (e->ident != NULL)
		put(out, cap, &n, e->ident, e->ident_len < MT_DLV_SERVICE_MAX ?
		    e->ident_len : MT_DLV_SERVICE_MAX);
	if (digits_ok(e->pid, e->pid_len)) {
		put(out, cap, &n, "[", 1);
		put(out, cap, &n, e->pid, e->pid_len);
		put(out, cap, &n, "]", 1);
	}
	put(out, cap, &n, ": ", 2);
	if (e->msg == NULL)
		kind = MT_JLINE_BAD;
	else if (e->msg_len > cap - n)
		kind = kind == MT_JLINE_OK ? MT_JLINE_CUT : kind;
	/* One entry is one line: a line break or NUL inside is binary data
	 * journald kept as it came, not something syslog would have written. */
	else if (memchr(e->msg, '\n', e->msg_len) || memchr(e->msg, '\r',
	    e->msg_len) || memchr(e->msg, '\0', e->msg_len))
		kind = MT_JLINE_BAD;
	if (e->msg != NULL)
		put(out, cap, &n, e->msg, e->msg_len);
	out[n] = '\0';
	*out_len = n;
	return kind;
}
