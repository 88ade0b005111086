/*
 * The whole path from what Redis holds (a record's path, its events,
 * its recipients: written by us, but read back from a store others can
 * write): JSON {"hops":[...],"events":[...],"rcpts":[...]} -> the whole
 * path -> GeoJSON and SVG. Every place and route is accounted for, and
 * the SVG is one document whose text is escaped and valid UTF-8.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../map/map.h"

#define MAX_EV 256
#define MAX_RCPT 64

static int
utf8_ok(const unsigned char *s, size_t n)
{
	size_t i = 0, k, len;
	unsigned long c;

	while (i < n) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		len = s[i] >= 0xf0 ? 4 : s[i] >= 0xe0 ? 3 : s[i] >= 0xc0 ? 2 : 0;
		if (len == 0 || s[i] > 0xf4 || i + len > n)
			return 0;
		c = s[i] & (0x7f >> len);
		for (k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			c = c << 6 | (s[i + k] & 0x3f);
		}
		if ((len == 2 && c < 0x80) || (len == 3 && c < 0x800) ||
		    (len == 4 && c < 0x10000) || c > 0x10ffff ||
		    (c >= 0xd800 && c <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
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

static void
check_svg(const char *svg, size_t len)
{
	const char *p;

	if (len != strlen(svg) || strncmp(svg, "<?xml", 5) != 0 ||
	    strcmp(svg + len - 7, "</svg>\n") != 0 ||
	    !utf8_ok((const unsigned char *)svg, len))
		abort();
	if (count(svg, "<text") != count(svg, "</text>") ||
	    count(svg, "<svg") != 1 || count(svg, "</svg>") != 1)
		abort();
	for (p = svg; (p = strchr(p, '&')) != NULL; p++)
		if (strncmp(p, "&amp;", 5) && strncmp(p, "&lt;", 4) &&
		    strncmp(p, "&gt;", 4) && strncmp(p, "&quot;", 6) &&
		    strncmp(p, "&apos;", 6))
			abort();
	for (p = svg; *p; p++)
		if ((unsigned char)*p < 0x20 && *p != '\n')
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const json_t *ev[MAX_EV];
	const char *rcpt[MAX_RCPT];
	json_t *doc, *whole, *gj, *v;
	size_t nev = 0, nr = 0, i, len, nf;
	char *svg;

	doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES,
	    NULL);
	if (!json_is_object(doc)) {
		json_decref(doc);
		return 0;
	}
	json_array_foreach(json_object_get(doc, "events"), i, v)
		if (nev < MAX_EV)
			ev[nev++] = v;
	json_array_foreach(json_object_get(doc, "rcpts"), i, v)
		if (json_is_string(v) && nr < MAX_RCPT)
			rcpt[nr++] = json_string_value(v);
	whole = mt_map_whole(&(struct mt_map_in){ .hops = json_object_get(doc,
	    "hops"), .events = ev, .nev = nev, .rcpts = rcpt, .nrcpt = nr });
	if (whole == NULL)
		abort();
	gj = mt_map_geojson(whole);
	if (gj == NULL)
		abort();
	nf = json_array_size(json_object_get(gj, "features"));
	if (nf != json_array_size(json_object_get(whole, "places")) +
	    json_array_size(json_object_get(whole, "routes")))
		abort();
	svg = mt_map_svg(&(struct mt_map_svg_in){ .whole = whole,
	    .title = json_string_value(json_object_get(doc, "title")),
	    .credit = "credit" }, &len);
	if (svg == NULL)
		abort();
	check_svg(svg, len);
	free(svg);
	json_decref(gj);
	json_decref(whole);
	json_decref(doc);
	return 0;
}
