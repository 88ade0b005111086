/*
 * The whole path and its two pictures (map/): which places a message
 * passed, each recipient's route and its legs, the GeoJSON, land from
 * TopoJSON, and the SVG map's projection, framing and escaping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../map/map.h"

/* Paris (client, from a Received: line), London (the client we saw),
 * this MTA in Berlin; bob's mail went to Tokyo and was read in New York,
 * carol's to the same server, dave's stayed here. */
static const char *HOPS =
    "[{\"n\":1,\"by\":\"relay.example\",\"ip\":\"192.0.2.10\",\"lat\":48.8566,"
    "\"lon\":2.3522,\"cc\":\"FR\",\"city\":\"Paris\",\"src\":\"received\","
    "\"trust\":\"unverified\"},"
    "{\"n\":2,\"by\":\"mta1.test\",\"ip\":\"198.51.100.20\",\"lat\":51.5074,"
    "\"lon\":-0.1278,\"cc\":\"GB\",\"city\":\"London\",\"src\":\"milter\","
    "\"trust\":\"verified\",\"t\":\"2026-11-21T23:15:00Z\",\"by_lat\":52.52,"
    "\"by_lon\":13.405,\"by_cc\":\"DE\",\"by_city\":\"Berlin\"}]";

static const char *EVENTS[] = {
	"{\"t\":1795302900000,\"ev\":\"RECEIVE\"}",
	("{\"t\":1795302901000,\"ev\":\"SEND\",\"rcpt\":\"bob@example.jp\","
	"\"relay\":\"mx.example.jp[203.0.113.30]:25\",\"ip\":\"203.0.113.30\","
	"\"lat\":35.6762,\"lon\":139.6503,\"cc\":\"JP\",\"city\":\"Tokyo\"}"),
	("{\"t\":1795302902000,\"ev\":\"SEND\",\"rcpt\":\"carol@example.jp\","
	"\"relay\":\"mx.example.jp[203.0.113.30]:25\",\"ip\":\"203.0.113.30\","
	"\"lat\":35.6762,\"lon\":139.6503,\"cc\":\"JP\",\"city\":\"Tokyo\"}"),
	("{\"t\":1795302903000,\"ev\":\"DELIVER\",\"rcpt\":\"dave@here.test\","
	"\"relay\":\"local\"}"),
	("{\"t\":1795306500000,\"ev\":\"READ\",\"rcpt\":\"bob@example.jp\","
	"\"via\":\"imap\",\"ip\":\"2001:db8:1::25\",\"lat\":40.7128,"
	"\"lon\":-74.006,\"cc\":\"US\",\"city\":\"New York\"}"),
};
static const char *RCPTS[] = { "bob@example.jp", "carol@example.jp",
	"dave@here.test" };

struct built {
	json_t *hops;
	json_t *ev[16];
	size_t nev;
	json_t *whole;
};

static json_t *
parse(const char *s)
{
	json_error_t e;
	json_t *v = json_loads(s, 0, &e);

	if (v == NULL)
		fail_msg("bad test JSON: %s: %s", e.text, s);
	return v;
}

static void
build(struct built *b, const char *hops, const char *const *events,
    size_t nev, const char *const *rcpts, size_t nrcpt)
{
	memset(b, 0, sizeof(*b));
	b->hops = parse(hops);
	for (size_t i = 0; i < nev; i++)
		b->ev[b->nev++] = parse(events[i]);
	b->whole = mt_map_whole(&(struct mt_map_in){ .hops = b->hops,
	    .events = (const json_t *const *)b->ev, .nev = b->nev,
	    .rcpts = rcpts, .nrcpt = nrcpt });
	assert_non_null(b->whole);
}

static void
unbuild(struct built *b)
{
	json_decref(b->hops);
	for (size_t i = 0; i < b->nev; i++)
		json_decref(b->ev[i]);
	json_decref(b->whole);
}

static const json_t *
place(const struct built *b, size_t n)
{
	return json_array_get(json_object_get(b->whole, "places"), n - 1);
}

static const char *
pstr(const struct built *b, size_t n, const char *key)
{
	return json_string_value(json_object_get(place(b, n), key));
}

static const json_t *
route(const struct built *b, const char *rcpt)
{
	const json_t *r;
	size_t i;

	json_array_foreach(json_object_get(b->whole, "routes"), i, r)
		if (strcmp(json_string_value(json_object_get(r, "rcpt")),
		    rcpt) == 0)
			return r;
	fail_msg("no route for %s", rcpt);
	return NULL;
}

static char *
seq(const json_t *a)
{
	static char buf[256];
	size_t i, off = 0;
	const json_t *v;

	buf[0] = '\0';
	json_array_foreach(a, i, v)
		off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%lld",
		    i ? " " : "", (long long)json_integer_value(v));
	return buf;
}

static double
num(const json_t *o, const char *key)
{
	return json_number_value(json_object_get(o, key));
}

static void
km_is_great_circle(void **state)
{
	(void)state;
	assert_true(fabs(mt_map_km(48.8566, 2.3522, 51.5074, -0.1278) - 343.5)
	    < 0.5);
	assert_true(fabs(mt_map_km(0, 179.5, 0, -179.5) - 111.2) < 0.2);
	assert_true(mt_map_km(10, 10, 10, 10) == 0.0);
}

static void
whole_path_runs_from_origin_through_this_mta_to_each_destination(void **state)
{
	struct built b;

	(void)state;
	build(&b, HOPS, EVENTS, 5, RCPTS, 3);
	assert_string_equal(pstr(&b, 1, "role"), "origin");
	assert_string_equal(pstr(&b, 1, "city"), "Paris");
	assert_string_equal(pstr(&b, 1, "trust"), "unverified");
	assert_string_equal(pstr(&b, 2, "role"), "transit");
	assert_string_equal(pstr(&b, 3, "role"), "mta");
	assert_string_equal(pstr(&b, 3, "by"), "mta1.test");
	assert_string_equal(pstr(&b, 3, "city"), "Berlin");
	assert_string_equal(pstr(&b, 3, "t"), "2026-11-21T23:15:00Z");
	assert_string_equal(pstr(&b, 4, "role"), "destination");
	assert_string_equal(pstr(&b, 4, "city"), "Tokyo");
	assert_string_equal(pstr(&b, 4, "src"), "delivery");
	assert_string_equal(pstr(&b, 4, "t"), "2026-11-21T23:15:01Z");
	assert_string_equal(pstr(&b, 5, "role"), "reader");
	assert_string_equal(pstr(&b, 5, "city"), "New York");
	assert_string_equal(pstr(&b, 5, "trust"), "imap");
	assert_int_equal(json_array_size(json_object_get(b.whole, "places")), 5);
	/* carol shares bob's destination; dave's mail stayed here. */
	assert_string_equal(seq(json_object_get(route(&b, "bob@example.jp"),
	    "places")), "1 2 3 4 5");
	assert_string_equal(seq(json_object_get(route(&b, "carol@example.jp"),
	    "places")), "1 2 3 4");
	assert_string_equal(seq(json_object_get(route(&b, "dave@here.test"),
	    "places")), "1 2 3");
	unbuild(&b);
}

static void
legs_and_totals_count_a_shared_leg_once(void **state)
{
	struct built b;
	const json_t *legs;
	double trunk, tokyo, ny;

	(void)state;
	build(&b, HOPS, EVENTS, 5, RCPTS, 3);
	legs = json_object_get(route(&b, "bob@example.jp"), "legs");
	assert_int_equal(json_array_size(legs), 4);
	assert_true(fabs(num(json_array_get(legs, 0), "km") - 343.5) < 0.5);
	trunk = mt_map_km(48.8566, 2.3522, 51.5074, -0.1278) +
	    mt_map_km(51.5074, -0.1278, 52.52, 13.405);
	tokyo = mt_map_km(52.52, 13.405, 35.6762, 139.6503);
	ny = mt_map_km(35.6762, 139.6503, 40.7128, -74.006);
	assert_true(fabs(num(route(&b, "bob@example.jp"), "km") -
	    (trunk + tokyo + ny)) < 0.2);
	assert_true(fabs(num(route(&b, "carol@example.jp"), "km") -
	    (trunk + tokyo)) < 0.2);
	assert_true(fabs(num(route(&b, "dave@here.test"), "km") - trunk) < 0.2);
	assert_true(fabs(num(b.whole, "km") - (trunk + tokyo + ny)) < 0.2);
	unbuild(&b);
}

static void
places_without_coordinates_are_listed_not_invented(void **state)
{
	static const char *ev[] = {
		("{\"t\":1,\"ev\":\"SEND\",\"rcpt\":\"a@b.test\","
		"\"relay\":\"mx.b.test[192.0.3.1]:25\",\"ip\":\"192.0.3.1\"}"),
	};
	static const char *rc[] = { "a@b.test" };
	struct built b;
	const json_t *r;

	(void)state;
	build(&b, "[{\"n\":1,\"by\":\"mta1.test\",\"ip\":\"10.1.2.3\","
	    "\"src\":\"milter\",\"trust\":\"verified\"}]", ev, 1, rc, 1);
	assert_int_equal(json_array_size(json_object_get(b.whole, "places")), 3);
	for (size_t n = 1; n <= 3; n++)
		assert_null(json_object_get(place(&b, n), "lat"));
	r = route(&b, "a@b.test");
	assert_string_equal(seq(json_object_get(r, "places")), "1 2 3");
	assert_string_equal(seq(json_object_get(r, "unplaced")), "1 2 3");
	assert_int_equal(json_array_size(json_object_get(r, "legs")), 0);
	assert_true(num(b.whole, "km") == 0.0);
	unbuild(&b);
}

static void
malformed_values_are_left_out(void **state)
{
	static const char *ev[] = {
		("{\"t\":\"soon\",\"ev\":\"SEND\",\"rcpt\":\"a@b.test\","
		"\"ip\":\"203.0.113.30\",\"lat\":200,\"lon\":10}"),
		"[1,2]",
		"{\"ev\":\"READ\",\"rcpt\":7,\"lat\":1,\"lon\":2}",
	};
	static const char *rc[] = { "a@b.test" };
	struct built b;

	(void)state;
	build(&b, "[7,{\"n\":1,\"ip\":5},{\"n\":2,\"ip\":\"192.0.2.10\","
	    "\"lat\":\"48\",\"lon\":2}]", ev, 3, rc, 1);
	/* The one hop with a string ip, its string lat dropped; this MTA;
	 * the destination without its impossible latitude and time. */
	assert_int_equal(json_array_size(json_object_get(b.whole, "places")), 3);
	assert_string_equal(pstr(&b, 1, "ip"), "192.0.2.10");
	assert_null(json_object_get(place(&b, 1), "lat"));
	assert_string_equal(pstr(&b, 3, "role"), "destination");
	assert_null(json_object_get(place(&b, 3), "lat"));
	assert_null(json_object_get(place(&b, 3), "t"));
	assert_int_equal(json_array_size(json_object_get(b.whole, "routes")), 1);
	unbuild(&b);
}

static void
geojson_has_lon_lat_points_null_geometries_and_route_lines(void **state)
{
	static const char *ev[] = {
		("{\"t\":1,\"ev\":\"SEND\",\"rcpt\":\"x@y.test\","
		"\"ip\":\"192.0.3.1\"}"),
	};
	static const char *rc[] = { "x@y.test" };
	struct built b;
	json_t *fc, *f, *g;

	(void)state;
	build(&b, HOPS, EVENTS, 5, RCPTS, 3);
	fc = mt_map_geojson(b.whole);
	assert_string_equal(json_string_value(json_object_get(fc, "type")),
	    "FeatureCollection");
	/* 5 places, 3 routes. */
	assert_int_equal(json_array_size(json_object_get(fc, "features")), 8);
	f = json_array_get(json_object_get(fc, "features"), 3);
	g = json_object_get(f, "geometry");
	assert_string_equal(json_string_value(json_object_get(g, "type")),
	    "Point");
	assert_true(json_number_value(json_array_get(json_object_get(g,
	    "coordinates"), 0)) == 139.6503);
	assert_true(json_number_value(json_array_get(json_object_get(g,
	    "coordinates"), 1)) == 35.6762);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(f,
	    "properties"), "hop")), 4);
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    f, "properties"), "time")), "2026-11-21T23:15:01Z");
	f = json_array_get(json_object_get(fc, "features"), 5);
	g = json_object_get(f, "geometry");
	assert_string_equal(json_string_value(json_object_get(g, "type")),
	    "LineString");
	assert_int_equal(json_array_size(json_object_get(g, "coordinates")), 5);
	json_decref(fc);
	unbuild(&b);

	/* Nothing placed: null geometries, the places still listed. */
	build(&b, "[{\"n\":1,\"by\":\"m\",\"ip\":\"10.1.2.3\"}]", ev, 1, rc, 1);
	fc = mt_map_geojson(b.whole);
	assert_int_equal(json_array_size(json_object_get(fc, "features")), 4);
	for (size_t i = 0; i < 4; i++)
		assert_true(json_is_null(json_object_get(json_array_get(
		    json_object_get(fc, "features"), i), "geometry")));
	json_decref(fc);
	unbuild(&b);
}

/* A square from two quantized, delta-encoded arcs, the second reversed. */
static const char *TOPO =
    "{\"type\":\"Topology\",\"transform\":{\"scale\":[0.5,0.25],"
    "\"translate\":[-10,-5]},\"arcs\":[[[0,0],[20,0],[0,40]],"
    "[[0,0],[0,40],[20,0]]],\"objects\":{\"land\":{\"type\":"
    "\"GeometryCollection\",\"geometries\":[{\"type\":\"MultiPolygon\","
    "\"arcs\":[[[0,-2]]]}]}}}";

static void
land_joins_quantized_arcs_reversing_negative_indexes(void **state)
{
	struct mt_map_land l;
	char err[256];

	(void)state;
	assert_int_equal(mt_map_land_parse(TOPO, strlen(TOPO), &l, err,
	    sizeof(err)), 0);
	assert_int_equal(l.n, 1);
	/* (-10,-5) (0,-5) (0,5), then arc 1 backwards: (0,5) (-10,5)
	 * (-10,-5), the shared points once. */
	assert_int_equal(l.ring[0].n, 5);
	assert_true(l.ring[0].pt[0] == -10 && l.ring[0].pt[1] == -5);
	assert_true(l.ring[0].pt[4] == 0 && l.ring[0].pt[5] == 5);
	assert_true(l.ring[0].pt[6] == -10 && l.ring[0].pt[7] == 5);
	assert_true(l.ring[0].lon_min == -10 && l.ring[0].lat_max == 5);
	mt_map_land_free(&l);
}

/* Unquantized arcs: an island across the antimeridian, as Natural Earth
 * writes Fiji and Chukotka, and a ring around the globe, as Antarctica. */
static const char TOPO_WRAP[] = "{\"type\":\"Topology\",\"arcs\":["
    "[[178,-16],[-179,-16],[-179,-18],[178,-18],[178,-16]],"
    "[[-180,-80],[-90,-78],[0,-79],[90,-77],[179,-80]]],"
    "\"objects\":{\"land\":{\"type\":\"MultiPolygon\","
    "\"arcs\":[[[0]],[[1]]]}}}";

static void
land_keeps_a_ring_across_the_antimeridian_in_one_piece(void **state)
{
	struct mt_map_land l;
	char err[256];
	size_t i;

	(void)state;
	assert_int_equal(mt_map_land_parse(TOPO_WRAP, strlen(TOPO_WRAP), &l,
	    err, sizeof(err)), 0);
	assert_int_equal(l.n, 2);
	/* The island: no step of 357 degrees, -179 taken as 181. */
	for (i = 1; i < l.ring[0].n; i++)
		assert_true(fabs(l.ring[0].pt[2 * i] -
		    l.ring[0].pt[2 * i - 2]) <= 180);
	assert_true(l.ring[0].lon_min == 178 && l.ring[0].lon_max == 181);
	/* Around the globe: closed over the south pole, not across it. */
	i = l.ring[1].n;
	assert_int_equal(i, 7);
	assert_true(l.ring[1].pt[2 * i - 3] == -90 &&
	    l.ring[1].pt[2 * i - 1] == -90);
	assert_true(l.ring[1].pt[2 * i - 2] == -180);
	mt_map_land_free(&l);
}

static void
land_refuses_what_is_not_a_topology_with_a_reason(void **state)
{
	static const struct {
		const char *text, *why;
	} bad[] = {
		{ "{\"type\":\"FeatureCollection\"}", "not a Topology" },
		{ "{\"type\":\"Topology\",\"objects\":{}}", "no \"land\" object" },
		{ "{\"type\":\"Topology\",\"arcs\":[[[0,0]]],\"objects\":{\"land\":"
		  "{\"type\":\"Polygon\",\"arcs\":[[3]]}}}", "out of range" },
		{ "{\"type\":\"Topology\",\"arcs\":[[[0,\"x\"]]],\"objects\":"
		  "{\"land\":{\"type\":\"Polygon\",\"arcs\":[[0]]}}}",
		  "two numbers" },
		{ "{\"type\":\"Topology\",\"transform\":{\"scale\":[1]},\"arcs\""
		  ":[],\"objects\":{\"land\":{\"type\":\"Polygon\"}}}",
		  "transform" },
		{ "{\"type\":\"Topology\"", "line 1" },
		{ "{\"type\":\"Topology\",\"arcs\":[[[1e308,0],[-1e308,5]]],"
		  "\"objects\":{\"land\":{\"type\":\"Polygon\",\"arcs\":"
		  "[[0,0]]}}}", "off the globe" },
	};
	struct mt_map_land l;
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(mt_map_land_parse(bad[i].text,
		    strlen(bad[i].text), &l, err, sizeof(err)), -1);
		if (strstr(err, bad[i].why) == NULL)
			fail_msg("%s: error \"%s\" lacks \"%s\"", bad[i].text,
			    err, bad[i].why);
		assert_int_equal(l.n, 0);
	}
	assert_int_equal(mt_map_land_load("/nonexistent/land.json", &l, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent/land.json"));
}

struct proj {
	double lon0, lat0, scale;
};

static void
projection_of(const char *svg, struct proj *p)
{
	const char *g = strstr(svg, "<g id=\"map\"");

	assert_non_null(g);
	assert_int_equal(sscanf(strstr(g, "data-lon0="), "data-lon0=\"%lf\" "
	    "data-lat0=\"%lf\" data-scale=\"%lf\"", &p->lon0, &p->lat0,
	    &p->scale), 3);
}

/* The dot whose data-hops is exactly hops; its centre. */
static int
dot(const char *svg, const char *hops, double *x, double *y)
{
	char want[64];
	const char *s;

	snprintf(want, sizeof(want), "data-hops=\"%s\"", hops);
	for (s = svg; (s = strstr(s, "<circle class=\"place\"")) != NULL; s++) {
		const char *end = strchr(s, '>');

		if (end == NULL)
			return 0;
		if (memmem(s, (size_t)(end - s), want, strlen(want)) != NULL &&
		    sscanf(s, "<circle class=\"place\" cx=\"%lf\" cy=\"%lf\"", x,
		    y) == 2)
			return 1;
	}
	return 0;
}

static size_t
count(const char *s, const char *what)
{
	size_t n = 0;

	while ((s = strstr(s, what)) != NULL) {
		n++;
		s += strlen(what);
	}
	return n;
}

static char *
draw(const struct built *b, const struct mt_map_land *land)
{
	char *svg = mt_map_svg(&(struct mt_map_svg_in){ .whole = b->whole,
	    .land = land, .title = "T", .credit = "Land: test" }, NULL);

	assert_non_null(svg);
	assert_non_null(strstr(svg, "</svg>\n"));
	return svg;
}

static void
map_dots_stand_at_their_projected_coordinates(void **state)
{
	static const struct {
		const char *hops;
		double lat, lon;
	} want[] = {
		{ "1", 48.8566, 2.3522 }, { "2", 51.5074, -0.1278 },
		{ "3", 52.52, 13.405 }, { "4", 35.6762, 139.6503 },
		{ "5", 40.7128, -74.006 },
	};
	struct mt_map_land l;
	struct built b;
	struct proj p;
	char err[256], *svg;
	double x, y, lon;

	(void)state;
	assert_int_equal(mt_map_land_parse(TOPO, strlen(TOPO), &l, err,
	    sizeof(err)), 0);
	build(&b, HOPS, EVENTS, 5, RCPTS, 3);
	svg = draw(&b, &l);
	projection_of(svg, &p);
	for (size_t i = 0; i < 5; i++) {
		if (!dot(svg, want[i].hops, &x, &y))
			fail_msg("no dot for hop %s", want[i].hops);
		lon = want[i].lon;
		while (lon < p.lon0)
			lon += 360;
		assert_true(fabs(x - (lon - p.lon0) * p.scale) < 0.06);
		assert_true(fabs(y - (p.lat0 - want[i].lat) * p.scale) < 0.06);
		assert_true(x >= 0 && x <= 1000 && y >= 0 && y <= 500);
	}
	/* Four distinct legs drawn (carol's shares bob's), land drawn. */
	assert_int_equal(count(svg, "<path class=\"leg\""), 4);
	assert_int_equal(count(svg, "<path class=\"land\""), 1);
	assert_non_null(strstr(svg, "Paris, FR"));
	assert_non_null(strstr(svg, "Land: test"));
	free(svg);
	unbuild(&b);
	mt_map_land_free(&l);
}

static void
map_escapes_every_text(void **state)
{
	static const char *ev[] = {
		("{\"t\":1,\"ev\":\"SEND\",\"rcpt\":\"<a&b>@x.test\","
		"\"relay\":\"mx\\\"<&'>.test[203.0.113.30]:25\","
		"\"ip\":\"203.0.113.30\",\"lat\":35.6,\"lon\":139.6,"
		"\"cc\":\"J&\",\"city\":\"<script>alert('x')</script>\\u202e"
		"\\u0007\"}"),
	};
	static const char *rc[] = { "<a&b>@x.test" };
	struct built b;
	char *svg;

	(void)state;
	build(&b, "[{\"n\":1,\"by\":\"m<&>\",\"ip\":\"192.0.2.10\",\"lat\":48,"
	    "\"lon\":2,\"city\":\"Q\\\"town\"}]", ev, 1, rc, 1);
	svg = mt_map_svg(&(struct mt_map_svg_in){ .whole = b.whole,
	    .title = "<id>", .credit = "&" }, NULL);
	assert_non_null(svg);
	assert_null(strstr(svg, "<script"));
	assert_null(strstr(svg, "<a&b>"));
	assert_null(strstr(svg, "<id>"));
	assert_null(strstr(svg, "\xe2\x80\xae"));	/* U+202E */
	assert_null(strchr(svg, '\a'));
	assert_non_null(strstr(svg, "&lt;script&gt;alert(&apos;x&apos;)"));
	assert_non_null(strstr(svg, "&lt;a&amp;b&gt;@x.test"));
	assert_non_null(strstr(svg, "mx&quot;&lt;&amp;&apos;&gt;.test"));
	assert_non_null(strstr(svg, "Q&quot;town"));
	/* Every '&' starts an entity. */
	for (const char *s = svg; (s = strchr(s, '&')) != NULL; s++)
		assert_true(strncmp(s, "&amp;", 5) == 0 ||
		    strncmp(s, "&lt;", 4) == 0 || strncmp(s, "&gt;", 4) == 0 ||
		    strncmp(s, "&quot;", 6) == 0 ||
		    strncmp(s, "&apos;", 6) == 0);
	free(svg);
	unbuild(&b);
}

static void
map_without_coordinates_is_the_world_and_says_so(void **state)
{
	static const char *rc[] = { "a@b.test" };
	struct built b;
	struct proj p;
	char *svg;

	(void)state;
	build(&b, "[{\"n\":1,\"by\":\"m\",\"ip\":\"10.1.2.3\"}]", NULL, 0, rc, 1);
	svg = draw(&b, NULL);
	projection_of(svg, &p);
	assert_true(p.lon0 == -180 && p.lat0 == 90);
	assert_true(fabs(p.scale - 1000.0 / 360) < 1e-6);
	assert_int_equal(count(svg, "<circle"), 0);
	assert_int_equal(count(svg, "<path class=\"leg\""), 0);
	assert_non_null(strstr(svg, "No place on this path has coordinates"));
	assert_non_null(strstr(svg, "no coordinates"));
	free(svg);
	unbuild(&b);
}

static void
map_across_the_pacific_is_framed_over_the_antimeridian(void **state)
{
	static const char *ev[] = {
		("{\"t\":1,\"ev\":\"SEND\",\"rcpt\":\"a@sf.test\","
		"\"ip\":\"192.0.3.1\",\"lat\":37.77,\"lon\":-122.42}"),
	};
	static const char *rc[] = { "a@sf.test" };
	struct built b;
	struct proj p;
	double x1, y1, x2, y2;
	char *svg;

	(void)state;
	build(&b, "[{\"n\":1,\"by\":\"m\",\"ip\":\"203.0.113.30\",\"lat\":35.68,"
	    "\"lon\":139.65,\"by_lat\":35.68,\"by_lon\":139.65}]", ev, 1, rc, 1);
	svg = draw(&b, NULL);
	projection_of(svg, &p);
	assert_true(p.lon0 > 100 && p.lon0 < 139.65);
	assert_true(1000.0 / p.scale < 180);	/* not the whole world */
	assert_true(dot(svg, "1 2", &x1, &y1));
	assert_true(dot(svg, "3", &x2, &y2));
	assert_true(x1 < x2 && x2 <= 1000);	/* San Francisco east of Tokyo */
	free(svg);
	unbuild(&b);
}

static void
map_of_fifty_places_keeps_every_dot_and_label(void **state)
{
	char hops[16384], one[320], *svg;
	static const char *rc[] = { "a@b.test" };
	size_t off = 0;
	struct built b;

	(void)state;
	off += (size_t)snprintf(hops + off, sizeof(hops) - off, "[");
	for (int i = 0; i < 50; i++) {
		snprintf(one, sizeof(one), "%s{\"n\":%d,\"by\":\"h%d.test\","
		    "\"ip\":\"192.0.2.%d\",\"lat\":%.2f,\"lon\":%.2f,\"city\":"
		    "\"City %d\",\"cc\":\"ZZ\"}", i ? "," : "", i + 1, i, i,
		    40.0 + (i % 7), -5.0 + i * 0.7, i);
		off += (size_t)snprintf(hops + off, sizeof(hops) - off, "%s",
		    one);
	}
	snprintf(hops + off, sizeof(hops) - off, "]");
	build(&b, hops, NULL, 0, rc, 1);
	svg = draw(&b, NULL);
	assert_int_equal(count(svg, "<circle class=\"place\""), 50);
	assert_int_equal(count(svg, "<text class=\"label\""), 50);
	assert_int_equal(count(svg, "<text class=\"legend-place\""), 51);
	assert_int_equal(count(svg, "<path class=\"leg\""), 49);
	free(svg);
	unbuild(&b);
}

#define T(f) cmocka_unit_test(f)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(km_is_great_circle),
		T(whole_path_runs_from_origin_through_this_mta_to_each_destination),
		T(legs_and_totals_count_a_shared_leg_once),
		T(places_without_coordinates_are_listed_not_invented),
		T(malformed_values_are_left_out),
		T(geojson_has_lon_lat_points_null_geometries_and_route_lines),
		T(land_joins_quantized_arcs_reversing_negative_indexes),
		T(land_keeps_a_ring_across_the_antimeridian_in_one_piece),
		T(land_refuses_what_is_not_a_topology_with_a_reason),
		T(map_dots_stand_at_their_projected_coordinates),
		T(map_escapes_every_text),
		T(map_without_coordinates_is_the_world_and_says_so),
		T(map_across_the_pacific_is_framed_over_the_antimeridian),
		T(map_of_fifty_places_keeps_every_dot_and_label),
	};

	return cmocka_run_group_tests_name("map", tests, NULL, NULL);
}
