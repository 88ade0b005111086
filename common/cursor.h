/*
 * A read cursor over untrusted bytes that need not be NUL-terminated: the
 * parsers of log lines (delivery/logline.c, mailbox/dovecot.c,
 * common/logtime.c) step through [p, end) with these and never past end.
 */
#ifndef MT_CURSOR_H
#define MT_CURSOR_H

#include <string.h>

struct mt_cur {
	const char *p, *end;
};

/* Does the text at the cursor start with lit? */
static inline int
mt_cur_at(const struct mt_cur *c, const char *lit)
{
	size_t n = strlen(lit);

	return (size_t)(c->end - c->p) >= n && memcmp(c->p, lit, n) == 0;
}

/* Steps over lit: 0, or -1 (cursor kept) when it is not there. */
static inline int
mt_cur_skip(struct mt_cur *c, const char *lit)
{
	if (!mt_cur_at(c, lit))
		return -1;
	c->p += strlen(lit);
	return 0;
}

/* Steps over the character ch: 0, or -1 (cursor kept). */
static inline int
mt_cur_expect(struct mt_cur *c, char ch)
{
	if (c->p >= c->end || *c->p != ch)
		return -1;
	c->p++;
	return 0;
}

#endif
