/*
 * The hop path of one message: what the headers tell (Received:, and
 * X-Mailtrail-Hop from this site's MTAs upstream) plus the hop mailtrail
 * sees itself, numbered from the origin.
 */
#ifndef MT_PATH_H
#define MT_PATH_H

#include <stddef.h>
#include <stdint.h>

#include "../common/cidr.h"
#include "../geo/geo.h"

#define MT_PATH_RECEIVED_KEEP 64	/* Received: headers read per message */
#define MT_PATH_HOPS_MAX 64		/* hops in one path */

struct mt_path {
	struct mt_received *rx;		/* top (newest) first */
	size_t nrx, nrx_seen;
	struct mt_hop *up;		/* X-Mailtrail-Hop from upstream */
	size_t nup;
};

struct mt_path_in {
	const char *client_ip;
	const char *by;
	const char *daemon_addr;	/* NULL when Postfix did not say */
	const struct mt_cidr_list *internal, *trusted, *site_mtas;
	struct mt_geo *geo;		/* NULL: no coordinates */
	int64_t now_ms;
};

void mt_path_note_received(struct mt_path *p, const char *value);
void mt_path_note_hop(struct mt_path *p, const char *value);
/*
 * Builds the whole path, oldest first, into hops (MT_PATH_HOPS_MAX room).
 * *first_new is the index of the first hop to stamp (the ones before it
 * came stamped from upstream). Returns the number of hops.
 */
size_t mt_path_build(const struct mt_path *p, const struct mt_path_in *in,
    struct mt_hop *hops, size_t *first_new);
void mt_path_free(struct mt_path *p);

#endif
