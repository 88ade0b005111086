/*
 * The whole path: hops, this MTA, destinations and readers as one list of
 * places, and per recipient the route through them with its legs.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "map.h"

#define EARTH_KM 6371.0088

double
mt_map_km(double lat1, double lon1, double lat2, double lon2)
{
	double p1 = lat1 * M_PI / 180.0, p2 = lat2 * M_PI / 180.0;
	double dp = p2 - p1, dl = (lon2 - lon1) * M_PI / 180.0;
	double a = sin(dp / 2) * sin(dp / 2) +
	    cos(p1) * cos(p2) * sin(dl / 2) * sin(dl / 2);

	if (a > 1.0)
		a = 1.0;
	return 2.0 * EARTH_KM * asin(sqrt(a));
}

static int
coord(const json_t *o, const char *key, double limit, double *out)
{
	const json_t *v = json_object_get(o, key);

	if (!json_is_number(v))
		return -1;
	*out = json_number_value(v);
	return isfinite(*out) && fabs(*out) <= limit ? 0 : -1;
}

/* Copies o[from] to place[to] when it is a string. */
static void
copy_str(json_t *place, const char *to, const json_t *o, const char *from)
{
	const json_t *v = json_object_get(o, from);

	if (json_is_string(v) && json_string_length(v) > 0)
		json_object_set(place, to, (json_t *)v);
}

/* lat/lon/cc/city under prefix ("" or "by_") of o, if the place is real. */
static void
copy_place(json_t *place, const json_t *o, const char *prefix)
{
	char klat[16], klon[16], kcc[16], kcity[16];
	double lat, lon;

	snprintf(klat, sizeof(klat), "%slat", prefix);
	snprintf(klon, sizeof(klon), "%slon", prefix);
	snprintf(kcc, sizeof(kcc), "%scc", prefix);
	snprintf(kcity, sizeof(kcity), "%scity", prefix);
	if (coord(o, klat, 90.0, &lat) != 0 || coord(o, klon, 180.0, &lon) != 0)
		return;
	json_object_set_new(place, "lat", json_real(lat));
	json_object_set_new(place, "lon", json_real(lon));
	copy_str(place, "cc", o, kcc);
	copy_str(place, "city", o, kcity);
}

static int
place_geo(const json_t *place, double *lat, double *lon)
{
	return coord(place, "lat", 90.0, lat) == 0 &&
	    coord(place, "lon", 180.0, lon) == 0;
}

/* An event's "t" (unix ms) as 2026-11-21T23:15:00Z. */
static void
set_time_ms(json_t *place, const json_t *ev)
{
	const json_t *v = json_object_get(ev, "t");
	char buf[32];
	struct tm tm;
	time_t s;

	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > INT64_C(253402300799999))
		return;
	s = (time_t)(json_integer_value(v) / 1000);
	if (gmtime_r(&s, &tm) == NULL)
		return;
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_set_new(place, "t", json_string(buf));
}

static json_t *
new_place(json_t *places, const char *role)
{
	json_t *p = json_object();

	json_object_set_new(p, "n",
	    json_integer((json_int_t)json_array_size(places) + 1));
	json_object_set_new(p, "role", json_string(role));
	json_array_append_new(places, p);
	return p;
}

static int
is_event(const json_t *ev, const char *name)
{
	const char *s = json_string_value(json_object_get(ev, "ev"));

	return s != NULL && strcmp(s, name) == 0;
}

static const char *
str_of(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* Loopback or no address at all: the message stayed on this host. */
static int
stayed_here(const char *ip)
{
	return ip == NULL || ip[0] == '\0' || strncmp(ip, "127.", 4) == 0 ||
	    strcmp(ip, "::1") == 0;
}

/* The hops' clients, then this MTA: the trunk every route shares. */
static size_t
add_trunk(json_t *places, const json_t *hops)
{
	const json_t *hop, *last = NULL;
	size_t i, n = 0;
	json_t *p;

	json_array_foreach(hops, i, hop) {
		if (!json_is_object(hop) || !json_is_string(
		    json_object_get(hop, "ip")))
			continue;
		p = new_place(places, n == 0 ? "origin" : "transit");
		copy_str(p, "by", hop, "by");
		copy_str(p, "ip", hop, "ip");
		copy_place(p, hop, "");
		copy_str(p, "src", hop, "src");
		copy_str(p, "trust", hop, "trust");
		copy_str(p, "t", hop, "t");
		last = hop;
		n++;
	}
	p = new_place(places, "mta");
	if (last != NULL) {
		copy_str(p, "by", last, "by");
		copy_place(p, last, "by_");
		copy_str(p, "t", last, "t");
	}
	json_object_set_new(p, "src", json_string("milter"));
	json_object_set_new(p, "trust", json_string("verified"));
	return n + 1;
}

/* The place of a destination server, shared by recipients it served. */
static size_t
destination(json_t *places, size_t trunk, const json_t *ev)
{
	const char *ip = str_of(ev, "ip"), *relay = str_of(ev, "relay");
	size_t i;
	json_t *p;

	for (i = trunk; i < json_array_size(places); i++) {
		p = json_array_get(places, i);
		if (strcmp(str_of(p, "role"), "destination") == 0 &&
		    strcmp(str_of(p, "ip"), ip) == 0 &&
		    (relay == NULL) == (str_of(p, "by") == NULL) &&
		    (relay == NULL || strcmp(str_of(p, "by"), relay) == 0))
			return i + 1;
	}
	p = new_place(places, "destination");
	if (relay != NULL)
		copy_str(p, "by", ev, "relay");
	json_object_set_new(p, "ip", json_string(ip));
	copy_place(p, ev, "");
	json_object_set_new(p, "src", json_string("delivery"));
	json_object_set_new(p, "trust", json_string("verified"));
	set_time_ms(p, ev);
	return json_array_size(places);
}

static size_t
reader(json_t *places, const json_t *ev)
{
	json_t *p = new_place(places, "reader");

	copy_str(p, "by", ev, "rcpt");
	copy_str(p, "ip", ev, "ip");
	copy_place(p, ev, "");
	json_object_set_new(p, "src", json_string("read"));
	copy_str(p, "trust", ev, "via");
	set_time_ms(p, ev);
	return json_array_size(places);
}

struct end {			/* where one recipient's route ends */
	const json_t *sent;	/* the last SEND or DELIVER */
	const json_t *read;	/* the last READ with a place */
};

static void
find_ends(const struct mt_map_in *in, const char *rcpt, struct end *e)
{
	size_t i;

	memset(e, 0, sizeof(*e));
	for (i = 0; i < in->nev; i++) {
		const json_t *ev = in->events[i];
		const char *r = str_of(ev, "rcpt");

		if (!json_is_object(ev) || r == NULL || strcmp(r, rcpt) != 0)
			continue;
		if (is_event(ev, "SEND") || is_event(ev, "DELIVER"))
			e->sent = ev;
		else if (is_event(ev, "READ") &&
		    (json_object_get(ev, "lat") != NULL ||
		    json_object_get(ev, "cc") != NULL))
			e->read = ev;
	}
}

static int
has_leg(const json_t *legs, json_int_t from, json_int_t to)
{
	size_t i;
	const json_t *l;

	json_array_foreach(legs, i, l)
		if (json_integer_value(json_object_get(l, "from")) == from &&
		    json_integer_value(json_object_get(l, "to")) == to)
			return 1;
	return 0;
}

static double
round1(double km)
{
	return round(km * 10.0) / 10.0;
}

/* Legs between consecutive places with coordinates; unplaced listed. */
static void
add_legs(json_t *route, const json_t *places, json_t *all_legs, double *total)
{
	const json_t *seq = json_object_get(route, "places"), *v;
	json_t *legs = json_array(), *unplaced = json_array();
	double lat, lon, plat = 0, plon = 0, km = 0;
	json_int_t prev = 0, n;
	size_t i;

	json_array_foreach(seq, i, v) {
		n = json_integer_value(v);
		if (!place_geo(json_array_get(places, (size_t)n - 1), &lat,
		    &lon)) {
			json_array_append_new(unplaced, json_integer(n));
			continue;
		}
		if (prev != 0) {
			double d = mt_map_km(plat, plon, lat, lon);
			json_t *leg = json_object();

			json_object_set_new(leg, "from", json_integer(prev));
			json_object_set_new(leg, "to", json_integer(n));
			json_object_set_new(leg, "km", json_real(round1(d)));
			km += d;
			if (!has_leg(all_legs, prev, n)) {
				json_array_append(all_legs, leg);
				*total += d;
			}
			json_array_append_new(legs, leg);
		}
		prev = n;
		plat = lat;
		plon = lon;
	}
	json_object_set_new(route, "legs", legs);
	json_object_set_new(route, "km", json_real(round1(km)));
	json_object_set_new(route, "unplaced", unplaced);
}

static void
add_route(json_t *routes, json_t *places, size_t trunk,
    const struct mt_map_in *in, const char *rcpt, json_t *all_legs,
    double *total)
{
	json_t *route = json_object(), *seq = json_array();
	struct end e;
	size_t i;

	find_ends(in, rcpt, &e);
	for (i = 1; i <= trunk; i++)
		json_array_append_new(seq, json_integer((json_int_t)i));
	if (e.sent != NULL && !stayed_here(str_of(e.sent, "ip")))
		json_array_append_new(seq, json_integer(
		    (json_int_t)destination(places, trunk, e.sent)));
	if (e.read != NULL)
		json_array_append_new(seq, json_integer(
		    (json_int_t)reader(places, e.read)));
	json_object_set_new(route, "rcpt", json_string(rcpt));
	json_object_set_new(route, "places", seq);
	add_legs(route, places, all_legs, total);
	json_array_append_new(routes, route);
}

static int
listed(const json_t *routes, const char *rcpt)
{
	size_t i;
	const json_t *r;

	json_array_foreach(routes, i, r)
		if (strcmp(str_of(r, "rcpt"), rcpt) == 0)
			return 1;
	return 0;
}

json_t *
mt_map_whole(const struct mt_map_in *in)
{
	json_t *w = json_object(), *places = json_array(),
	    *routes = json_array(), *all_legs = json_array();
	double total = 0;
	size_t trunk, i;

	if (w == NULL || places == NULL || routes == NULL || all_legs == NULL) {
		json_decref(w);
		json_decref(places);
		json_decref(routes);
		json_decref(all_legs);
		return NULL;
	}
	trunk = add_trunk(places, json_is_array(in->hops) ? in->hops : NULL);
	for (i = 0; i < in->nrcpt; i++)
		if (in->rcpts[i] != NULL && !listed(routes, in->rcpts[i]))
			add_route(routes, places, trunk, in, in->rcpts[i],
			    all_legs, &total);
	/* Recipients the events name but the record does not (a record
	 * rebuilt from the spool, an alias expanded by Postfix). */
	for (i = 0; i < in->nev; i++) {
		const char *r = str_of(in->events[i], "rcpt");

		if (r != NULL && json_string_length(json_object_get(
		    in->events[i], "rcpt")) == strlen(r) && !listed(routes, r))
			add_route(routes, places, trunk, in, r, all_legs,
			    &total);
	}
	json_decref(all_legs);
	json_object_set_new(w, "places", places);
	json_object_set_new(w, "routes", routes);
	json_object_set_new(w, "km", json_real(round1(total)));
	return w;
}

int
mt_map_has_legs(const json_t *whole)
{
	const json_t *r;
	size_t i;

	json_array_foreach(json_object_get(whole, "routes"), i, r)
		if (json_array_size(json_object_get(r, "legs")) > 0)
			return 1;
	return 0;
}
