/*
 * TopoJSON land files (MapLand): a file an admin fetched, but a file is
 * input. Parse; every ring has at least three finite points inside its
 * bounds, and the map drawn over it is a whole document.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../map/map.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mt_map_land l;
	char err[256];
	size_t i, j, len;
	json_t *whole;
	char *svg;

	if (mt_map_land_parse((const char *)data, size, &l, err,
	    sizeof(err)) != 0) {
		if (err[0] == '\0' || strlen(err) >= sizeof(err))
			abort();
		return 0;
	}
	for (i = 0; i < l.n; i++) {
		const struct mt_map_ring *r = &l.ring[i];

		if (r->n < 3)
			abort();
		for (j = 0; j < r->n; j++)
			if (!isfinite(r->pt[2 * j]) ||
			    r->pt[2 * j] < r->lon_min ||
			    r->pt[2 * j] > r->lon_max ||
			    r->pt[2 * j + 1] < r->lat_min ||
			    r->pt[2 * j + 1] > r->lat_max)
				abort();
	}
	whole = json_pack("{s[]s[]sf}", "places", "routes", "km", 0.0);
	svg = mt_map_svg(&(struct mt_map_svg_in){ .whole = whole,
	    .land = &l }, &len);
	if (svg == NULL || len != strlen(svg) ||
	    strcmp(svg + len - 7, "</svg>\n") != 0)
		abort();
	free(svg);
	json_decref(whole);
	mt_map_land_free(&l);
	return 0;
}
