/*
 * Counting X-Mailtrail-* headers by name. Names compare without regard to
 * case, as Postfix does when a milter deletes a header by name and index.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mthdr.h"

static void
note_other(struct mt_mthdr_seen *s, const char *name)
{
	size_t i, len = strnlen(name, MT_MTHDR_NAME_LEN + 1);

	/* A cut name would not match the header when it is deleted. */
	if (len > MT_MTHDR_NAME_LEN) {
		s->over = 1;
		return;
	}
	for (i = 0; i < s->n_other; i++)
		if (strcasecmp(s->other[i].name, name) == 0) {
			s->other[i].count++;
			return;
		}
	if (i == MT_MTHDR_NAMES_MAX ||
	    (s->other[i].name = strndup(name, len)) == NULL) {
		s->over = 1;
		return;
	}
	s->other[i].count = 1;
	s->n_other++;
}

enum mt_mthdr_kind
mt_mthdr_note(struct mt_mthdr_seen *s, const char *name)
{
	enum mt_mthdr_kind kind;

	if (strncasecmp(name, MT_MTHDR_PREFIX, sizeof(MT_MTHDR_PREFIX) - 1))
		return MT_MTHDR_NONE;
	if (++s->total > MT_MTHDR_TOTAL_MAX)
		s->over = 1;
	if (strcasecmp(name, MT_MTHDR_ID_HEADER) == 0) {
		s->n_id++;
		kind = MT_MTHDR_ID;
	} else if (strcasecmp(name, MT_MTHDR_SENDER_HEADER) == 0) {
		s->n_sender++;
		kind = MT_MTHDR_SENDER;
	} else if (strcasecmp(name, MT_MTHDR_HOP_HEADER) == 0) {
		s->n_hop++;
		kind = MT_MTHDR_HOP;
	} else {
		note_other(s, name);
		kind = MT_MTHDR_OTHER;
	}
	return kind;
}

void
mt_mthdr_free(struct mt_mthdr_seen *s)
{
	for (size_t i = 0; i < s->n_other; i++)
		free(s->other[i].name);
	memset(s, 0, sizeof(*s));
}
