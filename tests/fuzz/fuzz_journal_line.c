/*
 * Journal entries to syslog lines: the input is split at NUL bytes into
 * identifier, pid, host, message (8 bytes of time first). Whatever the
 * fields hold, the line stays in its buffer and is NUL-terminated; a line
 * said to be readable has no control bytes the entry did not bring in its
 * message, and feeding it to the delivery parser stays within its rules.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../delivery/delivery.h"

/* The next NUL-separated field of data: its start and length. */
static const char *
take(const uint8_t **p, const uint8_t *end, size_t *len)
{
	const uint8_t *s = *p, *z = memchr(s, '\0', (size_t)(end - s));

	if (z == NULL)
		z = end;
	*len = (size_t)(z - s);
	*p = z < end ? z + 1 : end;
	return (const char *)s;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char pf[] = "postfix";
	static char *const names[] = { pf };
	static char out[MT_DLV_LINE_MAX + 1];
	const uint8_t *p = data + 8, *end = data + size;
	struct mt_jentry e;
	struct mt_dlv d;
	size_t len;
	enum mt_jline_kind k;

	if (size < 8)
		return 0;
	memset(&e, 0, sizeof(e));
	memcpy(&e.t_us, data, 8);
	e.ident = take(&p, end, &e.ident_len);
	e.pid = take(&p, end, &e.pid_len);
	e.host = take(&p, end, &e.host_len);
	e.msg = (const char *)p;	/* the rest, NULs and all */
	e.msg_len = (size_t)(end - p);
	k = mt_journal_line(&e, out, &len);
	if (k < MT_JLINE_BAD || k > MT_JLINE_CUT || len > MT_DLV_LINE_MAX ||
	    out[len] != '\0')
		abort();
	if (k == MT_JLINE_CUT && len != MT_DLV_LINE_MAX)
		abort();
	if (k != MT_JLINE_OK)
		return 0;
	/* The head (time, host, tag) is one line of printable tokens. */
	if (memchr(out, '\n', len) || memchr(out, '\r', len) ||
	    memchr(out, '\0', len))
		abort();
	if (len < e.msg_len || memcmp(out + len - e.msg_len, e.msg,
	    e.msg_len) != 0)
		abort();	/* the message is carried whole */
	(void)mt_dlv_parse(out, len, 1795302000000LL, names, 1, &d);
	return 0;
}
