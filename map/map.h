/*
 * The whole path of one message, from its origin through the transit hops
 * and this MTA to each recipient's destination (and reader), and the two
 * ways of showing it: an RFC 7946 GeoJSON FeatureCollection and an SVG
 * world map with land from a TopoJSON file (Natural Earth via world-atlas).
 * Library code: facts come in as the record's JSON, results go out as JSON
 * or text; it never logs, and errors come back in err.
 */
#ifndef MT_MAP_H
#define MT_MAP_H

#include <stddef.h>

#include <jansson.h>

/* --- the whole path ------------------------------------------------------ */

struct mt_map_in {
	const json_t *hops;	/* the stored hop path, oldest first */
	const json_t *const *events;	/* the message's events */
	size_t nev;
	const char *const *rcpts;	/* the record's recipients */
	size_t nrcpt;
};

/*
 * Builds the whole path:
 *   {"places":[{"n":1,"role":"origin"|"transit"|"mta"|"destination"|
 *     "reader","by","ip","lat","lon","cc","city","src","trust","t"}...],
 *    "routes":[{"rcpt","places":[n...],"legs":[{"from","to","km"}...],
 *     "km","unplaced":[n...]}...],
 *    "km":TOTAL}
 * Places come in path order: the hops' clients (the first is the origin),
 * this MTA (the last hop's "by"), then the destinations (the receiving
 * server of each recipient's last SEND or DELIVER; none where it was this
 * host) and readers (the place of a READ). A leg joins two consecutive
 * places of a route that both have coordinates; the total counts a leg
 * that several routes share once. Values that are not what they should be
 * (a latitude of 200, a hop that is no object) are left out, never
 * guessed. Returns NULL only when out of memory.
 */
json_t *mt_map_whole(const struct mt_map_in *in);

/* 1 when some route of the whole path has a leg (a distance at all). */
int mt_map_has_legs(const json_t *whole);

/* Great-circle distance in km (mean Earth radius 6371.0088 km). */
double mt_map_km(double lat1, double lon1, double lat2, double lon2);

/*
 * The whole path as a FeatureCollection: a Point per place with
 * coordinates, a Feature with "geometry":null per place without, and a
 * LineString per route (null geometry when fewer than two of its places
 * have coordinates). Properties of a place: hop, role, by, ip, cc, city,
 * src, trust, time; of a route: rcpt, hops, km, unplaced.
 */
json_t *mt_map_geojson(const json_t *whole);

/* --- land ---------------------------------------------------------------- */

struct mt_map_ring {
	double *pt;		/* lon, lat, lon, lat, ... */
	size_t n;		/* points */
	double lon_min, lon_max, lat_min, lat_max;
};

struct mt_map_land {
	struct mt_map_ring *ring;
	size_t n;
};

#define MT_MAP_LAND_MAX_BYTES (64u << 20)	/* a TopoJSON file */
#define MT_MAP_LAND_MAX_POINTS 4000000u

/*
 * Reads the rings of a TopoJSON Topology's "land" object (or its only
 * object) from text: Polygon, MultiPolygon and GeometryCollection, arcs
 * quantized (with "transform") or not. 0, or -1 with err.
 */
int mt_map_land_parse(const char *text, size_t len, struct mt_map_land *out,
    char *err, size_t errlen);
int mt_map_land_load(const char *path, struct mt_map_land *out, char *err,
    size_t errlen);
void mt_map_land_free(struct mt_map_land *l);

/* --- the map ------------------------------------------------------------- */

struct mt_map_svg_in {
	const json_t *whole;		/* from mt_map_whole */
	const struct mt_map_land *land;	/* NULL: no land drawn */
	const char *title;		/* e.g. the tracking ID */
	const char *credit;		/* data credits, one line */
};

/*
 * The path drawn on an equirectangular world map, as a complete SVG
 * document (malloc'd, NUL-terminated). The window frames the places with
 * coordinates (the whole world when none has any); the map group carries
 * the projection as data-lon0 (west edge), data-lat0 (north edge) and
 * data-scale (pixels per degree), so that a place at lon, lat is drawn at
 * x = (lon - lon0) * scale, y = (lat0 - lat) * scale, lon shifted by 360
 * where the window crosses the antimeridian. Every text is XML-escaped.
 * NULL when out of memory.
 */
char *mt_map_svg(const struct mt_map_svg_in *in, size_t *len);

#endif
