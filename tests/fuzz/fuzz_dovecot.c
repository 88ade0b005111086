/*
 * Dovecot log lines: the parser must return one of its kinds for any bytes,
 * stay in its fixed buffers, hand out only clean text (no controls), a
 * UID > 0, a rip inet_pton takes or none, and nothing at all of a line it
 * does not return as an event.
 */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../mailbox/dovecot.h"

static void
check_clean(const char *s, size_t size)
{
	size_t n = strnlen(s, size);

	if (n == size)
		abort();	/* not NUL-terminated */
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			abort();
}

static void
check_empty(const struct mt_dove_event *e)
{
	if (e->t_ms != -1 || e->ev != 0 || e->service[0] != '\0' ||
	    e->user[0] != '\0' || e->session[0] != '\0' || e->rip[0] != '\0' ||
	    e->box[0] != '\0' || e->uid != 0 || e->uidvalidity != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mt_dove_event e;
	unsigned char addr[16];
	enum mt_dove_kind rc = mt_dove_parse((const char *)data, size,
	    1796223600000LL, &e);

	if (rc < MT_DOVE_BAD || rc > MT_DOVE_FOREIGN)
		abort();
	if (rc != MT_DOVE_EVENT) {
		check_empty(&e);
		return 0;
	}
	if (size > MT_DOVE_LINE_MAX)
		abort();
	check_clean(e.service, sizeof(e.service));
	check_clean(e.user, sizeof(e.user));
	check_clean(e.session, sizeof(e.session));
	check_clean(e.rip, sizeof(e.rip));
	check_clean(e.box, sizeof(e.box));
	if (e.uid == 0 || e.uid > 4294967295UL || e.uidvalidity == 0 ||
	    e.uidvalidity > 4294967295UL || e.user[0] == '\0' ||
	    e.service[0] == '\0')
		abort();
	if (strcmp(mt_dove_ev_name(e.ev), "unknown") == 0)
		abort();
	if (e.rip[0] != '\0' && inet_pton(AF_INET, e.rip, addr) != 1 &&
	    inet_pton(AF_INET6, e.rip, addr) != 1)
		abort();
	return 0;
}
