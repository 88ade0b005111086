/*
 * The whole path drawn on an equirectangular world map, as SVG.
 *
 * The window frames the places that have coordinates, padded, at least
 * 30 degrees wide and always twice as wide as high; it starts after the
 * widest gap between the places' longitudes, so a path across the Pacific
 * is framed across the antimeridian instead of spanning the world. Places
 * at one position share one dot, labelled with their numbers, city and
 * country; the legend below the map gives every place (with or without
 * coordinates), each route with its distance, the total and the credits.
 * Every text comes from the message or a GeoDB and is escaped.
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/text.h"
#include "map.h"

#define MAP_W 1000.0
#define MAP_H 500.0
#define MIN_SPAN 30.0		/* degrees of longitude */
#define LINE_H 16
#define TEXT_MAX 64		/* characters of one label or field */
#define LINE_MAX 160		/* characters of one legend line */
#define CHAR_W 6.8		/* a 12 px sans-serif character, roughly */

#define sb_lit(b, s) sb_add((b), (s), sizeof(s) - 1)

struct sbuf {
	char *s;
	size_t len, cap;
	int oom;
};

static void
sb_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 8192;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		if ((p = realloc(b->s, cap)) == NULL) {
			b->oom = 1;
			return;
		}
		b->s = p;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void __attribute__((format(printf, 2, 3)))
sb_printf(struct sbuf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		sb_add(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n
		    : sizeof(tmp) - 1);
}

/* Characters that must not reach an SVG text: what XML 1.0 forbids, C1
 * controls, and the bidirectional controls that could reorder a label. */
static int
unwanted(long c)
{
	return c < 0 || (c < 0x20 && c != '\t') || (c >= 0x7f && c < 0xa0) ||
	    (c >= 0xd800 && c <= 0xdfff) || c == 0xfffe || c == 0xffff ||
	    (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069) ||
	    c == 0x200e || c == 0x200f || c == 0x061c;
}

/* s as XML character data (or attribute value), at most max characters;
 * longer text ends in an ellipsis. */
static void
sb_textn(struct sbuf *b, const char *s, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len = s ? strlen(s) : 0, used, chars = 0;
	long c;

	while (len > 0) {
		if (++chars > max) {
			sb_lit(b, "\xe2\x80\xa6");
			return;
		}
		c = mt_utf8_next(p, len, &used);
		if (unwanted(c))
			sb_lit(b, "\xef\xbf\xbd");	/* U+FFFD */
		else if (c == '&')
			sb_lit(b, "&amp;");
		else if (c == '<')
			sb_lit(b, "&lt;");
		else if (c == '>')
			sb_lit(b, "&gt;");
		else if (c == '"')
			sb_lit(b, "&quot;");
		else if (c == '\'')
			sb_lit(b, "&apos;");
		else if (c == '\t')
			sb_lit(b, " ");
		else
			sb_add(b, (const char *)p, used);
		p += used;
		len -= used;
	}
}

static void
sb_text(struct sbuf *b, const char *s)
{
	sb_textn(b, s, TEXT_MAX);
}

/* Display width in characters, as sb_text would write it. */
static size_t
text_chars(const char *s)
{
	size_t len = strlen(s), used, n = 0;

	while (len > 0 && n < TEXT_MAX + 1) {
		mt_utf8_next((const unsigned char *)s, len, &used);
		s += used;
		len -= used;
		n++;
	}
	return n;
}

/* --- the window ---------------------------------------------------------- */

struct view {
	double lon0, lat0, scale;	/* west edge, north edge, px/degree */
	double span;			/* degrees of longitude */
};

struct spot {			/* a drawn position and what stands there */
	double lat, lon, x, y;
	char label[256];
};

static int
place_geo(const json_t *p, double *lat, double *lon)
{
	const json_t *a = json_object_get(p, "lat"), *o = json_object_get(p, "lon");

	if (!json_is_number(a) || !json_is_number(o))
		return 0;
	*lat = json_number_value(a);
	*lon = json_number_value(o);
	return isfinite(*lat) && isfinite(*lon) && fabs(*lat) <= 90.0 &&
	    fabs(*lon) <= 180.0;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void
frame(const json_t *places, struct view *v)
{
	size_t i, n = 0;
	const json_t *p;
	double *lons, lat, lon, lat_min = 90, lat_max = -90, gap = -1, start = 0;
	double lspan, aspan, pad, mid;

	lons = malloc(sizeof(double) * (json_array_size(places) + 1));
	json_array_foreach(places, i, p)
		if (lons != NULL && place_geo(p, &lat, &lon)) {
			lons[n++] = lon;
			lat_min = fmin(lat_min, lat);
			lat_max = fmax(lat_max, lat);
		}
	v->lon0 = -180;
	v->span = 360;
	v->lat0 = 90;
	if (n > 0) {
		qsort(lons, n, sizeof(double), cmp_double);
		/* The widest gap, the wrap from the last to the first too. */
		for (i = 0; i < n; i++) {
			double next = i + 1 < n ? lons[i + 1] : lons[0] + 360;

			if (next - lons[i] > gap) {
				gap = next - lons[i];
				start = i + 1 < n ? lons[i + 1] : lons[0];
			}
		}
		lspan = 360 - gap;	/* the places' own extent */
		aspan = lat_max - lat_min;
		pad = fmax(3.0, 0.15 * fmax(lspan, 2 * aspan));
		mid = start + lspan / 2;
		lspan = fmax(fmax(lspan + 2 * pad, 2 * (aspan + 2 * pad)),
		    MIN_SPAN);
		if (lspan < 300) {
			v->span = lspan;
			v->lon0 = mid - lspan / 2;
			v->lat0 = fmin(90, fmax(-90 + lspan / 2,
			    (lat_min + lat_max) / 2 + lspan / 4));
		}
	}
	free(lons);
	v->scale = MAP_W / v->span;
}

/* lon moved by whole turns into [lon0, lon0 + 360). */
static double
wrap(const struct view *v, double lon)
{
	while (lon < v->lon0)
		lon += 360;
	while (lon >= v->lon0 + 360)
		lon -= 360;
	return lon;
}

static double
px(const struct view *v, double lon)
{
	return (lon - v->lon0) * v->scale;
}

static double
py(const struct view *v, double lat)
{
	return (v->lat0 - lat) * v->scale;
}

/* --- drawing ------------------------------------------------------------- */

static void
draw_land(struct sbuf *b, const struct view *v, const struct mt_map_land *l)
{
	static const double shift[] = { -360, 0, 360 };
	double lat1 = v->lat0 - MAP_H / v->scale;
	size_t i, k, j;

	if (l == NULL || l->n == 0)
		return;
	sb_lit(b, "<path class=\"land\" fill=\"#efeadd\" stroke=\"#a89f86\" "
	    "stroke-width=\"0.6\" fill-rule=\"evenodd\" d=\"");
	for (i = 0; i < l->n; i++) {
		const struct mt_map_ring *r = &l->ring[i];

		if (r->lat_max < lat1 || r->lat_min > v->lat0)
			continue;
		for (k = 0; k < 3; k++) {
			if (r->lon_max + shift[k] < v->lon0 ||
			    r->lon_min + shift[k] > v->lon0 + v->span)
				continue;
			for (j = 0; j < r->n; j++)
				sb_printf(b, "%c%.1f,%.1f", j ? 'L' : 'M',
				    px(v, r->pt[2 * j] + shift[k]),
				    py(v, r->pt[2 * j + 1]));
			sb_lit(b, "Z");
		}
	}
	sb_lit(b, "\"/>\n");
}

static void
draw_graticule(struct sbuf *b, const struct view *v)
{
	double d, first = ceil(v->lon0 / 30) * 30;

	sb_lit(b, "<path class=\"graticule\" fill=\"none\" stroke=\"#b8cde0\" "
	    "stroke-width=\"0.5\" d=\"");
	for (d = first; d <= v->lon0 + v->span; d += 30)
		sb_printf(b, "M%.1f,0V%.1f", px(v, d), MAP_H);
	for (d = -60; d <= 60; d += 30)
		if (py(v, d) >= 0 && py(v, d) <= MAP_H)
			sb_printf(b, "M0,%.1fH%.1f", py(v, d), MAP_W);
	sb_lit(b, "\"/>\n");
}

static void
to_vec(double lat, double lon, double out[3])
{
	double a = lat * M_PI / 180, o = lon * M_PI / 180;

	out[0] = cos(a) * cos(o);
	out[1] = cos(a) * sin(o);
	out[2] = sin(a);
}

/* The great circle from one place to the next, sampled every 2 degrees,
 * its longitudes kept continuous and started where the first dot is. */
static void
draw_arc(struct sbuf *b, const struct view *v, double lat1, double lon1,
    double lat2, double lon2)
{
	double p[3], q[3], w, s, prev = 0, lon, lat, dot;
	int i, steps;

	to_vec(lat1, lon1, p);
	to_vec(lat2, lon2, q);
	dot = fmax(-1.0, fmin(1.0, p[0] * q[0] + p[1] * q[1] + p[2] * q[2]));
	w = acos(dot);
	steps = (int)ceil(w * 180 / M_PI / 2);
	if (steps < 1)
		steps = 1;
	for (i = 0; i <= steps; i++) {
		double t = (double)i / steps, a, c, r[3];

		s = sin(w);
		if (s < 1e-9) {
			a = 1 - t;
			c = t;
		} else {
			a = sin((1 - t) * w) / s;
			c = sin(t * w) / s;
		}
		r[0] = a * p[0] + c * q[0];
		r[1] = a * p[1] + c * q[1];
		r[2] = a * p[2] + c * q[2];
		lat = atan2(r[2], hypot(r[0], r[1])) * 180 / M_PI;
		lon = atan2(r[1], r[0]) * 180 / M_PI;
		if (i == 0)
			lon = wrap(v, lon1);
		else {
			while (lon - prev > 180)
				lon -= 360;
			while (lon - prev < -180)
				lon += 360;
		}
		if (i == steps)
			lat = lat2;
		prev = lon;
		sb_printf(b, "%c%.1f,%.1f", i ? 'L' : 'M', px(v, lon),
		    py(v, lat));
	}
}

static const char *
str_of(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static void
draw_legs(struct sbuf *b, const struct view *v, const json_t *w)
{
	const json_t *places = json_object_get(w, "places"), *route, *leg;
	size_t i, j, nseen = 0, cap = 0;
	json_int_t (*seen)[2] = NULL;

	sb_lit(b, "<g class=\"legs\" fill=\"none\" stroke=\"#b03a2e\" "
	    "stroke-width=\"1.6\" stroke-linecap=\"round\">\n");
	json_array_foreach(json_object_get(w, "routes"), i, route)
		json_array_foreach(json_object_get(route, "legs"), j, leg) {
			json_int_t f = json_integer_value(json_object_get(leg,
			    "from")), t = json_integer_value(json_object_get(
			    leg, "to"));
			double la1, lo1, la2, lo2;
			size_t k;

			for (k = 0; k < nseen; k++)
				if (seen[k][0] == f && seen[k][1] == t)
					break;
			if (k < nseen || f < 1 || t < 1 || !place_geo(
			    json_array_get(places, (size_t)f - 1), &la1, &lo1) ||
			    !place_geo(json_array_get(places, (size_t)t - 1),
			    &la2, &lo2))
				continue;
			if (nseen == cap) {
				void *g = realloc(seen, (cap = cap ? 2 * cap
				    : 16) * sizeof(*seen));

				if (g == NULL) {
					b->oom = 1;
					break;
				}
				seen = g;
			}
			seen[nseen][0] = f;
			seen[nseen++][1] = t;
			sb_printf(b, "<path class=\"leg\" data-from=\"%lld\" "
			    "data-to=\"%lld\" d=\"", (long long)f, (long long)t);
			draw_arc(b, v, la1, lo1, la2, lo2);
			sb_lit(b, "\"/>\n");
		}
	free(seen);
	sb_lit(b, "</g>\n");
}

/* "London, GB", or whatever part of it is known. */
static void
place_name(const json_t *p, char *out, size_t outsize)
{
	const char *city = str_of(p, "city"), *cc = str_of(p, "cc");

	if (city && cc)
		snprintf(out, outsize, "%s, %s", city, cc);
	else if (city || cc)
		snprintf(out, outsize, "%s", city ? city : cc);
	else
		snprintf(out, outsize, "%s", "");
}

struct box {
	double x, y, w;
};

static int
overlaps(const struct box *a, size_t n, double x, double y, double w)
{
	for (size_t i = 0; i < n; i++)
		if (x < a[i].x + a[i].w && a[i].x < x + w &&
		    fabs(y - a[i].y) < LINE_H - 2)
			return 1;
	return 0;
}

/* Dots, one per position, and their labels placed clear of each other. */
static void
draw_places(struct sbuf *b, const struct view *v, const json_t *places)
{
	size_t n = json_array_size(places), ns = 0, i, k, nb = 0;
	struct spot *s = calloc(n ? n : 1, sizeof(*s));
	struct box *boxes = calloc(n ? n : 1, sizeof(*boxes));
	char name[200];
	const json_t *p;
	double lat, lon;

	if (s == NULL || boxes == NULL) {
		b->oom = 1;
		free(s);
		free(boxes);
		return;
	}
	json_array_foreach(places, i, p) {
		if (!place_geo(p, &lat, &lon))
			continue;
		for (k = 0; k < ns; k++)
			if (fabs(s[k].lat - lat) < 1e-6 &&
			    fabs(s[k].lon - lon) < 1e-6)
				break;
		if (k == ns) {
			s[ns].lat = lat;
			s[ns].lon = lon;
			s[ns].x = px(v, wrap(v, lon));
			s[ns].y = py(v, lat);
			place_name(p, name, sizeof(name));
			snprintf(s[ns].label, sizeof(s[ns].label), "%lld",
			    (long long)json_integer_value(json_object_get(p,
			    "n")));
			ns++;
			/* The name goes after the numbers, once all are in. */
			snprintf(s[k].label + strlen(s[k].label),
			    sizeof(s[k].label) - strlen(s[k].label), "%s%s",
			    name[0] ? " " : "", name);
		} else {
			char rest[256];
			char *sp = strchr(s[k].label, ' ');

			snprintf(rest, sizeof(rest), "%s", sp ? sp : "");
			if (sp)
				*sp = '\0';
			snprintf(s[k].label + strlen(s[k].label),
			    sizeof(s[k].label) - strlen(s[k].label), ",%lld%s",
			    (long long)json_integer_value(json_object_get(p,
			    "n")), rest);
		}
	}
	sb_lit(b, "<g class=\"places\" fill=\"#1f4e79\" stroke=\"#ffffff\" "
	    "stroke-width=\"1.2\">\n");
	for (k = 0; k < ns; k++) {
		char hops[256];
		char *sp;

		snprintf(hops, sizeof(hops), "%s", s[k].label);
		if ((sp = strchr(hops, ' ')) != NULL)
			*sp = '\0';
		for (sp = hops; *sp; sp++)
			if (*sp == ',')
				*sp = ' ';
		sb_printf(b, "<circle class=\"place\" cx=\"%.1f\" cy=\"%.1f\" "
		    "r=\"4.5\" data-hops=\"%s\"/>\n", s[k].x, s[k].y, hops);
	}
	sb_lit(b, "</g>\n<g class=\"labels\" fill=\"#1b2631\">\n");
	for (k = 0; k < ns; k++) {
		double w = (double)text_chars(s[k].label) * CHAR_W, x, y;
		int t;

		for (t = 0; t < 12; t++) {
			x = s[k].x + 8;
			if (x + w > MAP_W)
				x = s[k].x - 8 - w;
			y = s[k].y + 4 + (t % 2 ? -1 : 1) * LINE_H * ((t + 1) / 2);
			if (!overlaps(boxes, nb, x, y, w))
				break;
		}
		if (t == 12)
			y = s[k].y + 4;
		boxes[nb].x = x;
		boxes[nb].y = y;
		boxes[nb++].w = w;
		sb_printf(b, "<text class=\"label\" x=\"%.1f\" y=\"%.1f\" "
		    "stroke=\"#ffffff\" stroke-width=\"3\" paint-order=\"stroke\">",
		    x, y);
		sb_text(b, s[k].label);
		sb_lit(b, "</text>\n");
	}
	sb_lit(b, "</g>\n");
	free(s);
	free(boxes);
}

static void
legend_line(struct sbuf *b, double *y, const char *cls, const char *text)
{
	sb_printf(b, "<text class=\"%s\" x=\"12\" y=\"%.0f\">", cls, *y);
	sb_textn(b, text, LINE_MAX);
	sb_lit(b, "</text>\n");
	*y += LINE_H;
}

static void
tspan(struct sbuf *b, double x, const char *s, size_t max)
{
	sb_printf(b, "<tspan x=\"%.0f\">", x);
	sb_textn(b, s, max);
	sb_lit(b, "</tspan>");
}

/* Two legend lines for a place, each field escaped on its own and cut to
 * its column: number and role, place and coordinates, time, trust; then,
 * smaller, the address and the host that received from it. */
static void
legend_place(struct sbuf *b, double *y, const json_t *p)
{
	char name[200], num[48], at[64];
	double lat, lon;
	const char *s;

	snprintf(num, sizeof(num), "%lld %s", (long long)json_integer_value(
	    json_object_get(p, "n")), str_of(p, "role") ? str_of(p, "role")
	    : "");
	place_name(p, name, sizeof(name));
	sb_printf(b, "<text class=\"legend-place\" y=\"%.0f\">", *y);
	tspan(b, 12, num, 14);
	if (place_geo(p, &lat, &lon)) {
		sb_lit(b, "<tspan x=\"112\">");
		sb_textn(b, name[0] ? name : "(no name)", 40);
		snprintf(at, sizeof(at), " (%.2f, %.2f)", lat, lon);
		sb_add(b, at, strlen(at));
		sb_lit(b, "</tspan>");
	} else
		tspan(b, 112, "no coordinates", 20);
	if ((s = str_of(p, "t")) != NULL)
		tspan(b, 560, s, 24);
	if ((s = str_of(p, "trust")) != NULL)
		tspan(b, 760, s, 20);
	sb_lit(b, "</text>\n");
	*y += LINE_H - 2;
	sb_printf(b, "<text class=\"legend-addr\" font-size=\"10\" "
	    "fill=\"#566573\" y=\"%.0f\"><tspan x=\"112\">", *y);
	s = str_of(p, "role");
	if (s != NULL && strcmp(s, "mta") == 0)
		sb_lit(b, "this MTA");
	else
		sb_textn(b, str_of(p, "ip") ? str_of(p, "ip") : "no address",
		    45);
	if ((s = str_of(p, "by")) != NULL) {
		sb_lit(b, ", received by ");
		sb_textn(b, s, 80);
	}
	sb_lit(b, "</tspan></text>\n");
	*y += LINE_H + 2;
}

/* The route's place numbers, runs of three or more consecutive ones as
 * "first-last", so that a fifty-hop route fits one line. */
static size_t
route_runs(char *line, size_t size, size_t off, const json_t *places)
{
	size_t i, j, n = json_array_size(places);
	long long a, z;

	for (i = 0; i < n && off < size; i = j + 1) {
		a = (long long)json_integer_value(json_array_get(places, i));
		for (j = i; j + 1 < n && json_integer_value(json_array_get(
		    places, j + 1)) == json_integer_value(json_array_get(
		    places, j)) + 1; j++)
			;
		z = (long long)json_integer_value(json_array_get(places, j));
		if (j - i < 2)
			j = i, z = a;
		off += (size_t)snprintf(line + off, size - off, "%s%lld",
		    i ? " \xe2\x86\x92 " : " ", a);
		if (z != a && off < size)
			off += (size_t)snprintf(line + off, size - off,
			    "\xe2\x80\x93%lld", z);
	}
	return off;
}

static void
legend_route(struct sbuf *b, double *y, const json_t *r)
{
	char line[512];
	size_t off;
	size_t nun = json_array_size(json_object_get(r, "unplaced"));

	if (json_array_size(json_object_get(r, "legs")) > 0)
		off = (size_t)snprintf(line, sizeof(line), "%.1f km:",
		    json_number_value(json_object_get(r, "km")));
	else
		off = (size_t)snprintf(line, sizeof(line), "no distance:");
	off = route_runs(line, sizeof(line), off, json_object_get(r, "places"));
	if (nun > 0 && off < sizeof(line))
		snprintf(line + off, sizeof(line) - off, " (%zu without "
		    "coordinates)", nun);
	sb_printf(b, "<text class=\"legend-route\" y=\"%.0f\"><tspan x=\"12\">"
	    "to ", *y);
	sb_textn(b, str_of(r, "rcpt"), 60);
	sb_lit(b, "</tspan><tspan x=\"500\">");
	sb_textn(b, line, 70);
	sb_lit(b, "</tspan></text>\n");
	*y += LINE_H;
}

static void
draw_legend(struct sbuf *b, const struct mt_map_svg_in *in, double y0,
    size_t placed)
{
	const json_t *places = json_object_get(in->whole, "places"), *v;
	char line[256];
	double y = y0 + 22;
	size_t i;

	sb_printf(b, "<g class=\"legend\" fill=\"#1b2631\">\n");
	sb_lit(b, "<text class=\"legend-title\" x=\"12\" font-weight=\"bold\" y=\"");
	sb_printf(b, "%.0f\">", y);
	sb_lit(b, "mailtrail: path of ");
	sb_text(b, in->title ? in->title : "a message");
	sb_lit(b, "</text>\n");
	y += LINE_H + 4;
	if (placed == 0) {
		legend_line(b, &y, "legend-note", "No place on this path has "
		    "coordinates: the map shows no dots and no legs.");
		y += 4;
	}
	json_array_foreach(places, i, v)
		legend_place(b, &y, v);
	y += 4;
	json_array_foreach(json_object_get(in->whole, "routes"), i, v)
		legend_route(b, &y, v);
	if (mt_map_has_legs(in->whole))
		snprintf(line, sizeof(line), "Total %.1f km great-circle (a leg "
		    "that several recipients share counts once).",
		    json_number_value(json_object_get(in->whole, "km")));
	else
		snprintf(line, sizeof(line), "No distance: fewer than two places "
		    "on this path have coordinates.");
	legend_line(b, &y, "legend-total", line);
	if (in->credit != NULL) {
		sb_printf(b, "<text class=\"credit\" x=\"12\" y=\"%.0f\" "
		    "font-size=\"10\" fill=\"#566573\">", y + 4);
		sb_textn(b, in->credit, 2 * LINE_MAX);
		sb_lit(b, "</text>\n");
	}
	sb_lit(b, "</g>\n");
}

static size_t
legend_height(const json_t *w, size_t placed)
{
	return (size_t)(22 + LINE_H + 4 + (placed ? 0 : LINE_H + 4) +
	    2 * LINE_H * json_array_size(json_object_get(w, "places")) + 4 +
	    LINE_H * (json_array_size(json_object_get(w, "routes")) + 1) + 24);
}

char *
mt_map_svg(const struct mt_map_svg_in *in, size_t *len)
{
	const json_t *places = json_object_get(in->whole, "places"), *p;
	struct sbuf b = { 0 };
	struct view v;
	size_t i, placed = 0, h;
	double lat, lon;

	json_array_foreach(places, i, p)
		placed += place_geo(p, &lat, &lon);
	frame(places, &v);
	h = (size_t)MAP_H + legend_height(in->whole, placed);
	sb_printf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
	    "height=\"%zu\" viewBox=\"0 0 %.0f %zu\" "
	    "font-family=\"DejaVu Sans, Verdana, sans-serif\" "
	    "font-size=\"12\">\n<title>", MAP_W, h, MAP_W, h);
	sb_lit(&b, "mailtrail: path of ");
	sb_text(&b, in->title ? in->title : "a message");
	sb_printf(&b, "</title>\n<defs><clipPath id=\"mapclip\"><rect x=\"0\" "
	    "y=\"0\" width=\"%.0f\" height=\"%.0f\"/></clipPath></defs>\n"
	    "<rect width=\"%.0f\" height=\"%zu\" fill=\"#ffffff\"/>\n",
	    MAP_W, MAP_H, MAP_W, h);
	sb_printf(&b, "<g id=\"map\" clip-path=\"url(#mapclip)\" "
	    "data-lon0=\"%.6f\" data-lat0=\"%.6f\" data-scale=\"%.6f\">\n"
	    "<rect class=\"sea\" width=\"%.0f\" height=\"%.0f\" "
	    "fill=\"#dcebf5\"/>\n", v.lon0, v.lat0, v.scale, MAP_W, MAP_H);
	draw_graticule(&b, &v);
	draw_land(&b, &v, in->land);
	draw_legs(&b, &v, in->whole);
	draw_places(&b, &v, places);
	sb_printf(&b, "</g>\n<rect x=\"0.5\" y=\"0.5\" width=\"%.0f\" "
	    "height=\"%.0f\" fill=\"none\" stroke=\"#7f8c8d\"/>\n",
	    MAP_W - 1, MAP_H - 1);
	draw_legend(&b, in, MAP_H, placed);
	sb_lit(&b, "</svg>\n");
	if (b.oom) {
		free(b.s);
		return NULL;
	}
	if (len != NULL)
		*len = b.len;
	return b.s;
}
