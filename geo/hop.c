/*
 * X-Mailtrail-Hop: one hop of the path as "key=value; ..." fields, written
 * here and read back at the next mailtrail MTA of the site, and the hop
 * path as the JSON array kept in the record.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../common/text.h"
#include "geo.h"

#define HOP_VALUE_MAX 981	/* 998 minus "X-Mailtrail-Hop: " */

/* Appends "; key=value" (or the first field) if it fits whole. */
static void
add_field(char *out, size_t outsize, size_t *o, const char *key,
    const char *value)
{
	int n = snprintf(out + *o, outsize - *o, "%s%s=%s", *o ? "; " : "",
	    key, value);

	if (n > 0 && (size_t)n < outsize - *o)
		*o += (size_t)n;
	else
		out[*o] = '\0';
}

static void
add_coords(char *out, size_t outsize, size_t *o, const char *pfx,
    const struct mt_geo_loc *l)
{
	char key[16], num[32];

	snprintf(key, sizeof(key), "%slat", pfx);
	snprintf(num, sizeof(num), "%.4f", l->lat);
	add_field(out, outsize, o, key, num);
	snprintf(key, sizeof(key), "%slon", pfx);
	snprintf(num, sizeof(num), "%.4f", l->lon);
	add_field(out, outsize, o, key, num);
	if (l->cc[0]) {
		snprintf(key, sizeof(key), "%scc", pfx);
		add_field(out, outsize, o, key, l->cc);
	}
}

size_t
mt_hop_format(const struct mt_hop *h, char *out, size_t outsize)
{
	char num[32];
	size_t o = 0;

	if (outsize > HOP_VALUE_MAX + 1)
		outsize = HOP_VALUE_MAX + 1;
	out[0] = '\0';
	snprintf(num, sizeof(num), "%d", h->n);
	add_field(out, outsize, &o, "n", num);
	add_field(out, outsize, &o, "by", h->by[0] ? h->by : "unknown");
	add_field(out, outsize, &o, "ip", h->ip[0] ? h->ip : "unknown");
	if (h->loc.found) {
		add_coords(out, outsize, &o, "", &h->loc);
		if (h->loc.city[0])
			add_field(out, outsize, &o, "city", h->loc.city);
	}
	if (h->loc.asn) {
		snprintf(num, sizeof(num), "%u", h->loc.asn);
		add_field(out, outsize, &o, "asn", num);
	}
	if (h->by_loc.found)
		add_coords(out, outsize, &o, "by_", &h->by_loc);
	if (h->t[0])
		add_field(out, outsize, &o, "t", h->t);
	add_field(out, outsize, &o, "src",
	    h->src == MT_HOP_RECEIVED ? "received" : "milter");
	if (h->src == MT_HOP_RECEIVED)
		add_field(out, outsize, &o, "trust",
		    h->trust == MT_TRUST_UNVERIFIED ? "unverified" : "verified");
	return o;
}

static int
parse_double(const char *s, double min, double max, double *out)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end != '\0' || !(v >= min && v <= max))
		return -1;
	*out = v;
	return 0;
}

static void
apply_field(struct mt_hop *h, const char *k, const char *v, int *have_lat,
    int *have_lon)
{
	double d;

	if (strcmp(k, "n") == 0 && parse_double(v, 1, 10000, &d) == 0)
		h->n = (int)d;
	else if (strcmp(k, "by") == 0)
		mt_text_header(h->by, sizeof(h->by), v, strlen(v));
	else if (strcmp(k, "ip") == 0) {
		unsigned char a[16];

		/* "local": Postfix's pickup, no network client at all. */
		if (inet_pton(AF_INET, v, a) == 1 ||
		    inet_pton(AF_INET6, v, a) == 1 || strcmp(v, "local") == 0 ||
		    strcmp(v, "unknown") == 0)
			snprintf(h->ip, sizeof(h->ip), "%s", v);
	} else if (strcmp(k, "lat") == 0 && parse_double(v, -90, 90, &d) == 0) {
		h->loc.lat = d;
		*have_lat = 1;
	} else if (strcmp(k, "lon") == 0 && parse_double(v, -180, 180, &d) == 0) {
		h->loc.lon = d;
		*have_lon = 1;
	} else if (strcmp(k, "cc") == 0 && strlen(v) == 2)
		mt_text_header(h->loc.cc, sizeof(h->loc.cc), v, 2);
	else if (strcmp(k, "city") == 0)
		mt_text_header(h->loc.city, sizeof(h->loc.city), v, strlen(v));
	else if (strcmp(k, "asn") == 0 && parse_double(v, 1, 4294967295.0, &d) == 0)
		h->loc.asn = (uint32_t)d;
	else if (strcmp(k, "t") == 0)
		mt_text_header(h->t, sizeof(h->t), v, strlen(v));
	else if (strcmp(k, "src") == 0)
		h->src = strcmp(v, "received") == 0 ? MT_HOP_RECEIVED : MT_HOP_MILTER;
	else if (strcmp(k, "trust") == 0)
		h->trust = strcmp(v, "unverified") == 0 ? MT_TRUST_UNVERIFIED
		    : MT_TRUST_VERIFIED;
}

int
mt_hop_parse(const char *value, size_t len, struct mt_hop *out)
{
	char buf[HOP_VALUE_MAX + 1];
	char *save = NULL, *field;
	int have_lat = 0, have_lon = 0;

	memset(out, 0, sizeof(*out));
	/* Cleaning first: folding, controls and NULs are gone before splitting. */
	mt_text_header(buf, sizeof(buf), value, len);
	for (field = strtok_r(buf, ";", &save); field;
	    field = strtok_r(NULL, ";", &save)) {
		char *eq = strchr(field, '='), *k = field, *v, *end;

		if (eq == NULL)
			continue;
		*eq = '\0';
		v = eq + 1;
		while (*k == ' ')
			k++;
		for (end = eq; end > k && end[-1] == ' ';)
			*--end = '\0';
		while (*v == ' ')
			v++;
		for (end = v + strlen(v); end > v && end[-1] == ' ';)
			*--end = '\0';
		apply_field(out, k, v, &have_lat, &have_lon);
	}
	out->loc.found = have_lat && have_lon;
	if (!out->loc.found)
		out->loc.cc[0] = out->loc.city[0] = '\0';
	return out->n > 0 && out->ip[0] ? 0 : -1;
}

static json_t *
hop_json(const struct mt_hop *h)
{
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "n", json_integer(h->n));
	json_object_set_new(o, "by", json_string(h->by));
	json_object_set_new(o, "ip", json_string(h->ip));
	if (h->loc.found) {
		json_object_set_new(o, "lat", json_real(h->loc.lat));
		json_object_set_new(o, "lon", json_real(h->loc.lon));
		if (h->loc.cc[0])
			json_object_set_new(o, "cc", json_string(h->loc.cc));
		if (h->loc.city[0])
			json_object_set_new(o, "city", json_string(h->loc.city));
	}
	if (h->loc.asn)
		json_object_set_new(o, "asn", json_integer(h->loc.asn));
	/* The receiving MTA's own place: where the whole path passes it. */
	if (h->by_loc.found) {
		json_object_set_new(o, "by_lat", json_real(h->by_loc.lat));
		json_object_set_new(o, "by_lon", json_real(h->by_loc.lon));
		if (h->by_loc.cc[0])
			json_object_set_new(o, "by_cc",
			    json_string(h->by_loc.cc));
		if (h->by_loc.city[0])
			json_object_set_new(o, "by_city",
			    json_string(h->by_loc.city));
	}
	json_object_set_new(o, "src", json_string(
	    h->src == MT_HOP_RECEIVED ? "received" : "milter"));
	json_object_set_new(o, "trust", json_string(
	    h->trust == MT_TRUST_UNVERIFIED ? "unverified" : "verified"));
	if (h->t[0])
		json_object_set_new(o, "t", json_string(h->t));
	return o;
}

char *
mt_hop_path_json(const struct mt_hop *hops, size_t n)
{
	json_t *a = json_array();
	char *text;

	if (a == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, hop_json(&hops[i]));
	text = json_dumps(a, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(a);
	return text;
}
