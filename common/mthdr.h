/*
 * Which X-Mailtrail-* headers a message carries: mailtrail's own three by
 * name, every other X-Mailtrail-* name counted, so that all of them can be
 * removed when the client is not a site MTA. Bounded: past the limits the
 * set says so (over), and the caller refuses the message.
 */
#ifndef MT_MTHDR_H
#define MT_MTHDR_H

#include <stddef.h>

#define MT_MTHDR_PREFIX "X-Mailtrail-"
#define MT_MTHDR_ID_HEADER "X-Mailtrail-ID"
#define MT_MTHDR_SENDER_HEADER "X-Mailtrail-Sender"
#define MT_MTHDR_HOP_HEADER "X-Mailtrail-Hop"

#define MT_MTHDR_NAMES_MAX 32		/* distinct unknown X-Mailtrail-* names */
#define MT_MTHDR_TOTAL_MAX 1000		/* X-Mailtrail-* headers of any name */
#define MT_MTHDR_NAME_LEN 256		/* longer names are kept cut, and counted */

enum mt_mthdr_kind {
	MT_MTHDR_NONE = 0,	/* not an X-Mailtrail-* header */
	MT_MTHDR_ID,
	MT_MTHDR_SENDER,
	MT_MTHDR_HOP,
	MT_MTHDR_OTHER		/* X-Mailtrail-* of a name mailtrail never writes */
};

struct mt_mthdr_other {
	char *name;		/* as it first arrived, for removal by name */
	int count;
};

struct mt_mthdr_seen {
	int n_id, n_sender, n_hop;	/* occurrences, for removal by index */
	int total;			/* every X-Mailtrail-* header */
	struct mt_mthdr_other other[MT_MTHDR_NAMES_MAX];
	size_t n_other;
	int over;			/* a limit was passed: refuse the message */
};

/* Classifies one header name and counts it. */
enum mt_mthdr_kind mt_mthdr_note(struct mt_mthdr_seen *s, const char *name);
void mt_mthdr_free(struct mt_mthdr_seen *s);

#endif
