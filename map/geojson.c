/*
 * The whole path as RFC 7946 GeoJSON. Positions are [lon, lat] (section
 * 3.1.1); a place without coordinates is a Feature with a null geometry
 * (section 3.2), so it is listed with its properties and never given a
 * made-up position.
 */
#include <math.h>
#include <string.h>

#include "map.h"

static int
geo_of(const json_t *place, double *lat, double *lon)
{
	const json_t *a = json_object_get(place, "lat"),
	    *o = json_object_get(place, "lon");

	if (!json_is_number(a) || !json_is_number(o))
		return 0;
	*lat = json_number_value(a);
	*lon = json_number_value(o);
	return isfinite(*lat) && isfinite(*lon) && fabs(*lat) <= 90.0 &&
	    fabs(*lon) <= 180.0;
}

static json_t *
position(double lat, double lon)
{
	json_t *p = json_array();

	json_array_append_new(p, json_real(lon));
	json_array_append_new(p, json_real(lat));
	return p;
}

static json_t *
feature(json_t *geometry, json_t *props)
{
	json_t *f = json_object();

	json_object_set_new(f, "type", json_string("Feature"));
	json_object_set_new(f, "geometry",
	    geometry != NULL ? geometry : json_null());
	json_object_set_new(f, "properties", props);
	return f;
}

static void
copy(json_t *props, const char *to, const json_t *from, const char *key)
{
	json_t *v = json_object_get(from, key);

	json_object_set(props, to, v != NULL ? v : json_null());
}

static json_t *
place_feature(const json_t *place)
{
	json_t *props = json_object(), *g = NULL;
	double lat, lon;

	json_object_set_new(props, "kind", json_string("place"));
	copy(props, "hop", place, "n");
	copy(props, "role", place, "role");
	copy(props, "by", place, "by");
	copy(props, "ip", place, "ip");
	copy(props, "cc", place, "cc");
	copy(props, "city", place, "city");
	copy(props, "src", place, "src");
	copy(props, "trust", place, "trust");
	copy(props, "time", place, "t");
	if (geo_of(place, &lat, &lon)) {
		g = json_object();
		json_object_set_new(g, "type", json_string("Point"));
		json_object_set_new(g, "coordinates", position(lat, lon));
	}
	return feature(g, props);
}

static json_t *
route_feature(const json_t *route, const json_t *places)
{
	json_t *props = json_object(), *coords = json_array(), *g = NULL;
	const json_t *v;
	double lat, lon;
	size_t i;

	json_object_set_new(props, "kind", json_string("path"));
	copy(props, "rcpt", route, "rcpt");
	copy(props, "hops", route, "places");
	copy(props, "km", route, "km");
	copy(props, "unplaced", route, "unplaced");
	json_array_foreach(json_object_get(route, "places"), i, v) {
		json_int_t n = json_integer_value(v);

		if (n >= 1 && geo_of(json_array_get(places, (size_t)n - 1),
		    &lat, &lon))
			json_array_append_new(coords, position(lat, lon));
	}
	if (json_array_size(coords) >= 2) {
		g = json_object();
		json_object_set_new(g, "type", json_string("LineString"));
		json_object_set_new(g, "coordinates", coords);
	} else
		json_decref(coords);
	return feature(g, props);
}

json_t *
mt_map_geojson(const json_t *whole)
{
	const json_t *places = json_object_get(whole, "places"), *v;
	json_t *fc = json_object(), *features = json_array();
	size_t i;

	if (fc == NULL || features == NULL) {
		json_decref(fc);
		json_decref(features);
		return NULL;
	}
	json_array_foreach(places, i, v)
		json_array_append_new(features, place_feature(v));
	json_array_foreach(json_object_get(whole, "routes"), i, v)
		json_array_append_new(features, route_feature(v, places));
	json_object_set_new(fc, "type", json_string("FeatureCollection"));
	json_object_set_new(fc, "features", features);
	return fc;
}
