/*
 * Land outlines from a TopoJSON Topology (the format of world-atlas's
 * land-110m.json): arcs, delta-encoded and quantized when the topology
 * has a "transform", joined into rings by the geometries' arc indexes (a
 * negative index ~i is arc i reversed). The file is data from outside the
 * program, so every count is bounded and every value checked.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "map.h"

#define GEOMETRY_DEPTH 8

struct arc {
	double *pt;
	size_t n;
};

struct topo {
	struct arc *arc;
	size_t narc;
	size_t budget;		/* points still allowed */
	struct mt_map_land *out;
	char *err;
	size_t errlen;
};

static int
fail(struct topo *t, const char *what)
{
	snprintf(t->err, t->errlen, "TopoJSON: %s", what);
	return -1;
}

static int
number_pair(const json_t *p, double *x, double *y)
{
	if (!json_is_array(p) || json_array_size(p) < 2 ||
	    !json_is_number(json_array_get(p, 0)) ||
	    !json_is_number(json_array_get(p, 1)))
		return -1;
	*x = json_number_value(json_array_get(p, 0));
	*y = json_number_value(json_array_get(p, 1));
	return isfinite(*x) && isfinite(*y) ? 0 : -1;
}

static int
decode_arcs(struct topo *t, const json_t *arcs, const json_t *transform)
{
	double sx = 1, sy = 1, tx = 0, ty = 0;
	int quantized = transform != NULL;
	size_t i, j;
	const json_t *a;

	if (quantized && (number_pair(json_object_get(transform, "scale"),
	    &sx, &sy) != 0 || number_pair(json_object_get(transform,
	    "translate"), &tx, &ty) != 0))
		return fail(t, "transform needs numeric scale and translate");
	if (!json_is_array(arcs))
		return fail(t, "no arcs array");
	t->narc = json_array_size(arcs);
	if (t->narc > t->budget)
		return fail(t, "too many arcs");
	t->arc = calloc(t->narc ? t->narc : 1, sizeof(*t->arc));
	if (t->arc == NULL)
		return fail(t, "out of memory");
	json_array_foreach(arcs, i, a) {
		double x = 0, y = 0, dx, dy;
		struct arc *c = &t->arc[i];

		if (!json_is_array(a) || json_array_size(a) > t->budget)
			return fail(t, "an arc is no array or too long");
		t->budget -= json_array_size(a);
		c->pt = malloc(2 * sizeof(double) * (json_array_size(a) + 1));
		if (c->pt == NULL)
			return fail(t, "out of memory");
		for (j = 0; j < json_array_size(a); j++) {
			if (number_pair(json_array_get(a, j), &dx, &dy) != 0)
				return fail(t, "a position is not two numbers");
			if (quantized) {
				x += dx;
				y += dy;
			} else {
				x = dx;
				y = dy;
			}
			c->pt[2 * j] = quantized ? x * sx + tx : x;
			c->pt[2 * j + 1] = quantized ? y * sy + ty : y;
			/* Longitude and latitude in degrees, a little
			 * rounding allowed. */
			if (!(fabs(c->pt[2 * j]) <= 180.5) ||
			    !(fabs(c->pt[2 * j + 1]) <= 90.5))
				return fail(t, "a position is off the globe "
				    "(longitude -180..180, latitude -90..90)");
		}
		c->n = j;
	}
	return 0;
}

/*
 * Each point's longitude is taken within 180 degrees of the one before,
 * so that a ring across the antimeridian (Chukotka, Fiji) stays one piece
 * rather than a line across the whole map; the drawing shifts it by 360.
 */
static int
push_point(struct mt_map_ring *r, size_t *cap, double lon, double lat,
    int unwrap)
{
	if (unwrap && r->n > 0 && fabs(lon - r->pt[2 * r->n - 2]) > 180)
		lon -= 360 * round((lon - r->pt[2 * r->n - 2]) / 360);
	if (r->n > 0 && r->pt[2 * r->n - 2] == lon && r->pt[2 * r->n - 1] == lat)
		return 0;	/* arcs share their joining point */
	if (r->n == *cap) {
		size_t ncap = *cap ? 2 * *cap : 64;
		double *p = realloc(r->pt, 2 * sizeof(double) * ncap);

		if (p == NULL)
			return -1;
		r->pt = p;
		*cap = ncap;
	}
	r->pt[2 * r->n] = lon;
	r->pt[2 * r->n + 1] = lat;
	r->n++;
	if (r->n == 1) {
		r->lon_min = r->lon_max = lon;
		r->lat_min = r->lat_max = lat;
	}
	r->lon_min = fmin(r->lon_min, lon);
	r->lon_max = fmax(r->lon_max, lon);
	r->lat_min = fmin(r->lat_min, lat);
	r->lat_max = fmax(r->lat_max, lat);
	return 0;
}

static int
add_ring(struct topo *t, const json_t *idx)
{
	struct mt_map_ring r = { 0 };
	size_t i, k, cap = 0, ncap;
	const json_t *v;
	struct mt_map_ring *grown;

	if (!json_is_array(idx))
		return fail(t, "a ring is no array of arc indexes");
	json_array_foreach(idx, i, v) {
		json_int_t a;
		int rev;
		const struct arc *c;

		if (!json_is_integer(v))
			goto bad_index;
		a = json_integer_value(v);
		rev = a < 0;
		if (rev)
			a = ~a;
		if (a < 0 || (size_t)a >= t->narc)
			goto bad_index;
		c = &t->arc[a];
		if (c->n > t->budget) {
			free(r.pt);
			return fail(t, "too many points");
		}
		t->budget -= c->n;
		for (k = 0; k < c->n; k++) {
			size_t p = rev ? c->n - 1 - k : k;

			if (push_point(&r, &cap, c->pt[2 * p],
			    c->pt[2 * p + 1], 1) != 0) {
				free(r.pt);
				return fail(t, "out of memory");
			}
		}
	}
	if (r.n < 3) {		/* no area: nothing to draw */
		free(r.pt);
		return 0;
	}
	/* A ring around the globe (Antarctica) closes over its pole. */
	if (fabs(r.pt[2 * r.n - 2] - r.pt[0]) > 180) {
		double pole = r.lat_min < 0 ? -90 : 90, last = r.pt[2 * r.n - 2];

		if (push_point(&r, &cap, last, pole, 0) != 0 ||
		    push_point(&r, &cap, r.pt[0], pole, 0) != 0) {
			free(r.pt);
			return fail(t, "out of memory");
		}
	}
	ncap = t->out->n + 1;
	grown = realloc(t->out->ring, ncap * sizeof(*grown));
	if (grown == NULL) {
		free(r.pt);
		return fail(t, "out of memory");
	}
	t->out->ring = grown;
	t->out->ring[t->out->n++] = r;
	return 0;
bad_index:
	free(r.pt);
	return fail(t, "an arc index is out of range");
}

static int
add_polygon(struct topo *t, const json_t *rings)
{
	size_t i;
	const json_t *v;

	if (!json_is_array(rings))
		return fail(t, "a polygon is no array of rings");
	json_array_foreach(rings, i, v)
		if (add_ring(t, v) != 0)
			return -1;
	return 0;
}

static int
add_geometry(struct topo *t, const json_t *g, int depth)
{
	const char *type = json_string_value(json_object_get(g, "type"));
	const json_t *arcs = json_object_get(g, "arcs"), *v;
	size_t i;

	if (type == NULL)
		return fail(t, "a geometry has no type");
	if (strcmp(type, "Polygon") == 0)
		return add_polygon(t, arcs);
	if (strcmp(type, "MultiPolygon") == 0) {
		if (!json_is_array(arcs))
			return fail(t, "a MultiPolygon has no arcs array");
		json_array_foreach(arcs, i, v)
			if (add_polygon(t, v) != 0)
				return -1;
		return 0;
	}
	if (strcmp(type, "GeometryCollection") == 0) {
		if (depth >= GEOMETRY_DEPTH)
			return fail(t, "geometry collections nest too deep");
		json_array_foreach(json_object_get(g, "geometries"), i, v)
			if (add_geometry(t, v, depth + 1) != 0)
				return -1;
		return 0;
	}
	return 0;	/* points and lines have no land to fill */
}

static void
free_arcs(struct topo *t)
{
	for (size_t i = 0; i < t->narc; i++)
		free(t->arc[i].pt);
	free(t->arc);
}

int
mt_map_land_parse(const char *text, size_t len, struct mt_map_land *out,
    char *err, size_t errlen)
{
	struct topo t = { .budget = MT_MAP_LAND_MAX_POINTS, .out = out,
	    .err = err, .errlen = errlen };
	json_error_t je;
	json_t *root, *objects, *land;
	const char *type;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	root = json_loadb(text, len, 0, &je);
	if (root == NULL) {
		snprintf(err, errlen, "TopoJSON: line %d: %s", je.line, je.text);
		return -1;
	}
	type = json_string_value(json_object_get(root, "type"));
	objects = json_object_get(root, "objects");
	land = json_object_get(objects, "land");
	if (land == NULL && json_object_size(objects) == 1)
		land = json_object_iter_value(json_object_iter(objects));
	if (type == NULL || strcmp(type, "Topology") != 0)
		fail(&t, "not a Topology");
	else if (!json_is_object(land))
		fail(&t, "no \"land\" object");
	else if (decode_arcs(&t, json_object_get(root, "arcs"),
	    json_object_get(root, "transform")) == 0 &&
	    add_geometry(&t, land, 0) == 0)
		rc = 0;
	free_arcs(&t);
	json_decref(root);
	if (rc != 0)
		mt_map_land_free(out);
	return rc;
}

int
mt_map_land_load(const char *path, struct mt_map_land *out, char *err,
    size_t errlen)
{
	FILE *f = fopen(path, "re");
	struct stat st;
	char *text;
	size_t got;
	int rc;

	memset(out, 0, sizeof(*out));
	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > (off_t)MT_MAP_LAND_MAX_BYTES) {
		snprintf(err, errlen, "%s: not a regular file of at most %u "
		    "MiB", path, MT_MAP_LAND_MAX_BYTES >> 20);
		fclose(f);
		return -1;
	}
	text = malloc((size_t)st.st_size + 1);
	if (text == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		fclose(f);
		return -1;
	}
	got = fread(text, 1, (size_t)st.st_size, f);
	fclose(f);
	rc = mt_map_land_parse(text, got, out, err, errlen);
	if (rc != 0) {
		size_t used = strlen(err);
		char what[256];

		snprintf(what, sizeof(what), "%s", err);
		if (used < errlen)
			snprintf(err, errlen, "%s: %s", path, what);
	}
	free(text);
	return rc;
}

void
mt_map_land_free(struct mt_map_land *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->ring[i].pt);
	free(l->ring);
	l->ring = NULL;
	l->n = 0;
}
