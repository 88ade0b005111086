/*
 * `mailtrail trace ID`: a header line, the event timeline in time order,
 * and the whole path: origin, transit hops, this MTA, each recipient's
 * destination and reader, with coordinates, who vouches for each place
 * and the great-circle distance of each leg, then each recipient's route
 * and the total. --json gives the same facts, --geojson the path as an
 * RFC 7946 FeatureCollection.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "../map/map.h"

/* A string value, quoted when blanks or quotes would make key=value vague. */
static void
add_string_value(struct cli_buf *b, const char *s, size_t len)
{
	size_t i, from = 0;

	if (len > 0 && strcspn(s, " \t\"") >= len) {
		cli_buf_escape(b, s, len);
		return;
	}
	cli_buf_add(b, "\"", 1);
	for (i = 0; i < len; i++) {
		if (s[i] != '"')
			continue;
		cli_buf_escape(b, s + from, i - from);
		cli_buf_add(b, "\\\"", 2);
		from = i + 1;
	}
	cli_buf_escape(b, s + from, len - from);
	cli_buf_add(b, "\"", 1);
}

static void
add_value(struct cli_buf *b, const json_t *v)
{
	char *dump;

	switch (json_typeof(v)) {
	case JSON_STRING:
		add_string_value(b, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		cli_buf_addf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		break;
	case JSON_REAL:
		cli_buf_addf(b, "%.10g", json_real_value(v));
		break;
	case JSON_TRUE:
		cli_buf_add(b, "true", 4);
		break;
	case JSON_FALSE:
		cli_buf_add(b, "false", 5);
		break;
	case JSON_NULL:
		cli_buf_add(b, "null", 4);
		break;
	default:
		dump = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		if (dump != NULL)
			cli_buf_escape(b, dump, strlen(dump));
		free(dump);
		break;
	}
}

static void
event_row(struct cli_table *t, json_t *ev)
{
	struct cli_buf b = { 0 };
	const char *key, *name;
	char when[40];
	json_t *v;
	int64_t ms;

	if (cli_json_ms(json_object_get(ev, "t"), &ms) == 0)
		cli_time_ms(when, ms);
	else
		snprintf(when, sizeof(when), "-");
	cli_table_safe(t, when);
	name = json_string_value(json_object_get(ev, "ev"));
	cli_table_text(t, name, name ? strlen(name) : 0);
	json_object_foreach(ev, key, v) {
		/* The path has a table of its own; fp is for dedupe only. */
		if (strcmp(key, "t") == 0 || strcmp(key, "ev") == 0 ||
		    strcmp(key, "fp") == 0 || strcmp(key, "path") == 0)
			continue;
		if (b.len > 0)
			cli_buf_add(&b, " ", 1);
		cli_buf_escape(&b, key, strlen(key));
		cli_buf_add(&b, "=", 1);
		/* Times in an event's details (RELEASE's due, SPOOL's
		 * spooled) read like its own. */
		if ((strcmp(key, "due") == 0 || strcmp(key, "spooled") == 0) &&
		    json_is_integer(v) && cli_json_ms(v, &ms) == 0) {
			cli_time_ms(when, ms);
			cli_buf_add(&b, when, strlen(when));
		} else
			add_value(&b, v);
	}
	cli_table_safe(t, b.s ? b.s : "");
	cli_buf_free(&b);
}

/* A coordinate within [-limit, limit], given as a number or a string. */
static int
hop_coord(const json_t *hop, const char *key, double limit, double *out)
{
	const json_t *v = json_object_get(hop, key);

	if (json_is_number(v))
		*out = json_number_value(v);
	else if (!json_is_string(v) || cli_parse_double(json_string_value(v),
	    json_string_length(v), out) != 0)
		return -1;
	return isfinite(*out) && fabs(*out) <= limit ? 0 : -1;
}

static int
hop_geo(const json_t *hop, double *lat, double *lon)
{
	return hop_coord(hop, "lat", 90.0, lat) == 0 &&
	    hop_coord(hop, "lon", 180.0, lon) == 0;
}

static void
copy_field(json_t *hop, const struct cli_msg *m, const char *field,
    const char *key, int number)
{
	size_t len;
	const char *v = cli_msg_field(m, field, &len);
	char *s;

	if (v == NULL)
		return;
	s = cli_xstrndup(v, len);
	if (number)
		json_object_set_new(hop, key, json_real(strtod(s, NULL)));
	else
		json_object_set_new(hop, key, json_stringn_nocheck(s, len));
	free(s);
}

/*
 * A message seen by one mailtrail MTA only has no stored path (it would
 * repeat the record): its one hop is the client the record names.
 */
static json_t *
path_from_record(const struct cli_msg *m)
{
	json_t *path = json_array(), *hop = json_object();
	size_t len;

	if (cli_msg_field(m, "client_ip", &len) == NULL) {
		json_decref(hop);
		return path;
	}
	json_object_set_new(hop, "n", json_integer(1));
	copy_field(hop, m, "by", "by", 0);
	copy_field(hop, m, "client_ip", "ip", 0);
	if (cli_msg_field(m, "lat", &len) && cli_msg_field(m, "lon", &len)) {
		copy_field(hop, m, "lat", "lat", 1);
		copy_field(hop, m, "lon", "lon", 1);
	}
	copy_field(hop, m, "cc", "cc", 0);
	copy_field(hop, m, "city", "city", 0);
	json_object_set_new(hop, "src", json_string("milter"));
	json_array_append_new(path, hop);
	return path;
}

/*
 * Where the message was read ends its path: each READ that knows a place
 * (Dovecot's, as ReaderLocation kept it) is one more point, "src":"read".
 */
static void
add_readers(const struct cli_msg *m, json_t *path)
{
	static const char *const keep[] = { "ip", "lat", "lon", "cc", "city",
	    NULL };

	for (size_t i = 0; i < m->nev; i++) {
		const json_t *e = m->ev[i];
		const char *ev = json_string_value(json_object_get(e, "ev"));
		json_t *hop;

		if (ev == NULL || strcmp(ev, "READ") != 0 ||
		    (json_object_get(e, "cc") == NULL &&
		    json_object_get(e, "lat") == NULL))
			continue;
		hop = json_object();
		json_object_set_new(hop, "n",
		    json_integer((json_int_t)json_array_size(path) + 1));
		if (json_is_string(json_object_get(e, "rcpt")))
			json_object_set(hop, "by", json_object_get(e, "rcpt"));
		for (size_t k = 0; keep[k] != NULL; k++)
			if (json_object_get(e, keep[k]) != NULL)
				json_object_set(hop, keep[k],
				    json_object_get(e, keep[k]));
		json_object_set_new(hop, "src", json_string("read"));
		if (json_is_string(json_object_get(e, "via")))
			json_object_set(hop, "trust", json_object_get(e, "via"));
		if (json_object_get(e, "t") != NULL)
			json_object_set(hop, "t", json_object_get(e, "t"));
		json_array_append_new(path, hop);
	}
}

/* The record's hop path: the stored "path" (or the record's own client
 * when it has none), hops that are no object left out and counted. */
json_t *
cli_record_path(struct cli_msg *m)
{
	const char *s;
	size_t len, i;
	json_t *path;

	s = cli_msg_field(m, "path", &len);
	if (s == NULL)
		return path_from_record(m);
	path = json_loadb(s, len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_array(path)) {
		json_decref(path);
		m->bad++;
		return json_array();
	}
	for (i = 0; i < json_array_size(path); i++)
		if (!json_is_object(json_array_get(path, i))) {
			json_array_remove(path, i--);
			m->bad++;
		}
	return path;
}

/* The record's path, its readers' places, and each hop's "km" from the
 * previous hop: what trace --json calls "path". */
json_t *
cli_hop_path(const struct cli_msg *m, const json_t *record)
{
	json_t *path = json_deep_copy(record), *hop;
	double lat, lon, plat = 0, plon = 0;
	int have_prev = 0, have;
	size_t i;

	if (path == NULL)
		cli_oom();
	add_readers(m, path);
	json_array_foreach(path, i, hop) {
		have = hop_geo(hop, &lat, &lon);
		if (have && have_prev)
			json_object_set_new(hop, "km", json_real(round(10.0 *
			    cli_haversine_km(plat, plon, lat, lon)) / 10.0));
		have_prev = have;
		plat = lat;
		plon = lon;
	}
	return path;
}

static void
hop_cell(struct cli_table *t, const json_t *hop, const char *key)
{
	struct cli_buf b = { 0 };
	const json_t *v = json_object_get(hop, key);

	if (v == NULL || json_is_null(v) ||
	    (json_is_string(v) && json_string_length(v) == 0)) {
		cli_table_safe(t, "-");
		return;
	}
	add_value(&b, v);
	cli_table_safe(t, b.s);
	cli_buf_free(&b);
}

static void
add_opt_value(struct cli_buf *b, const json_t *v)
{
	if (v == NULL || json_is_null(v))
		cli_buf_add(b, "-", 1);
	else
		add_value(b, v);
}

/* The distance of the leg that ends at place n, when one does. */
static const json_t *
leg_km(const json_t *whole, json_int_t n)
{
	const json_t *r, *l;
	size_t i, j;

	json_array_foreach(json_object_get(whole, "routes"), i, r)
		json_array_foreach(json_object_get(r, "legs"), j, l)
			if (json_integer_value(json_object_get(l, "to")) == n)
				return json_object_get(l, "km");
	return NULL;
}

static void
place_row(struct cli_table *t, const json_t *p, const json_t *whole)
{
	struct cli_buf b = { 0 };
	double lat, lon;
	const json_t *km;

	hop_cell(t, p, "n");
	hop_cell(t, p, "role");
	hop_cell(t, p, "by");
	hop_cell(t, p, "ip");
	if (hop_geo(p, &lat, &lon))
		cli_buf_addf(&b, "%.4f,%.4f", lat, lon);
	cli_table_safe(t, b.s ? b.s : "-");
	cli_buf_free(&b);
	hop_cell(t, p, "cc");
	hop_cell(t, p, "city");
	add_opt_value(&b, json_object_get(p, "src"));
	cli_buf_add(&b, "/", 1);
	add_opt_value(&b, json_object_get(p, "trust"));
	cli_table_safe(t, b.s);
	cli_buf_free(&b);
	hop_cell(t, p, "t");
	km = leg_km(whole, json_integer_value(json_object_get(p, "n")));
	if (json_is_number(km))
		cli_buf_addf(&b, "%.1f", json_number_value(km));
	cli_table_safe(t, b.s ? b.s : "-");
	cli_buf_free(&b);
}

static void
numbers(struct cli_buf *b, const json_t *a, const char *sep)
{
	const json_t *v;
	size_t i;

	json_array_foreach(a, i, v)
		cli_buf_addf(b, "%s%" JSON_INTEGER_FORMAT, i ? sep : "",
		    json_integer_value(v));
	if (json_array_size(a) == 0)
		cli_buf_add(b, "-", 1);
}

static void
route_row(struct cli_table *t, const json_t *r)
{
	struct cli_buf b = { 0 };

	hop_cell(t, r, "rcpt");
	numbers(&b, json_object_get(r, "places"), ">");
	cli_table_safe(t, b.s);
	cli_buf_free(&b);
	if (json_array_size(json_object_get(r, "legs")) > 0)
		cli_buf_addf(&b, "%.1f",
		    json_number_value(json_object_get(r, "km")));
	cli_table_safe(t, b.s ? b.s : "-");
	cli_buf_free(&b);
	numbers(&b, json_object_get(r, "unplaced"), ",");
	cli_table_safe(t, b.s);
	cli_buf_free(&b);
}

static void
print_whole(const json_t *whole)
{
	static const char *const head[] = { "N", "ROLE", "BY", "IP", "LAT,LON",
	    "CC", "CITY", "SRC/TRUST", "TIME", "KM" };
	const json_t *v;
	struct cli_table t;
	size_t i;

	printf("\nPath:\n");
	cli_table_init(&t, 10);
	for (i = 0; i < 10; i++)
		cli_table_safe(&t, head[i]);
	json_array_foreach(json_object_get(whole, "places"), i, v)
		place_row(&t, v, whole);
	cli_table_print(&t, stdout, "  ");
	cli_table_free(&t);
	printf("\nRoutes:\n");
	cli_table_init(&t, 4);
	cli_table_safe(&t, "RCPT");
	cli_table_safe(&t, "PLACES");
	cli_table_safe(&t, "KM");
	cli_table_safe(&t, "NO COORDINATES");
	json_array_foreach(json_object_get(whole, "routes"), i, v)
		route_row(&t, v);
	cli_table_print(&t, stdout, "  ");
	cli_table_free(&t);
	if (mt_map_has_legs(whole))
		printf("  total %.1f km great-circle (a leg several recipients "
		    "share counts once)\n",
		    json_number_value(json_object_get(whole, "km")));
	else
		printf("  no distance: fewer than two places on this path have "
		    "coordinates\n");
}

static void
print_header(const struct cli_msg *m)
{
	const char *s;
	size_t len;
	int64_t ms;
	char when[40] = "-";

	printf("ID %s  sender ", m->id);
	s = cli_msg_field(m, "sender", &len);
	cli_print_escaped(stdout, s ? s : "-", s ? len : 1);
	s = cli_msg_field(m, "received", &len);
	if (s != NULL && cli_parse_i64(s, len, &ms) == 0)
		cli_time_ms(when, ms);
	printf("  received %s\n", when);
}

static void
print_trace(const struct cli_msg *m, const json_t *whole)
{
	struct cli_table t;
	size_t i;

	print_header(m);
	printf("\nEvents:\n");
	cli_table_init(&t, 3);
	cli_table_safe(&t, "TIME");
	cli_table_safe(&t, "EVENT");
	cli_table_safe(&t, "DETAILS");
	for (i = 0; i < m->nev; i++)
		event_row(&t, m->ev[i]);
	cli_table_print(&t, stdout, "  ");
	cli_table_free(&t);
	print_whole(whole);
}

static json_t *
trace_json(const struct cli_msg *m, json_t *path, json_t *whole)
{
	json_t *o = cli_record_json(m), *evs = json_array();
	size_t i;

	for (i = 0; i < m->nev; i++)
		json_array_append(evs, m->ev[i]);
	json_object_set_new(o, "recipients", cli_recipients_json(m->rcpt));
	json_object_set_new(o, "events", evs);
	json_object_set(o, "path", path);
	json_object_set(o, "whole", whole);
	return o;
}

/* Oldest first by "t", in written order where times are equal or absent:
 * a SPOOL written late still stands where it happened. */
/*
 * The whole path from the hops, the events and the recipients. The map
 * command builds the same, so it lives here for both.
 */
json_t *
cli_whole_path(const struct cli_msg *m, const json_t *record)
{
	const char **rcpts;
	size_t n = 0, i;
	json_t *whole;

	rcpts = cli_xmalloc(sizeof(*rcpts) * (m->rcpt ? m->rcpt->elements / 2
	    + 1 : 1));
	for (i = 0; m->rcpt != NULL && i + 1 < m->rcpt->elements; i += 2)
		if (m->rcpt->element[i]->type == REDIS_REPLY_STRING &&
		    strlen(m->rcpt->element[i]->str) == m->rcpt->element[i]->len)
			rcpts[n++] = m->rcpt->element[i]->str;
	/* Readers come from the READ events, not from a path. */
	whole = mt_map_whole(&(struct mt_map_in){ .hops = record,
	    .events = (const json_t *const *)m->ev, .nev = m->nev,
	    .rcpts = rcpts, .nrcpt = n });
	free(rcpts);
	if (whole == NULL)
		cli_oom();
	return whole;
}

int
cmd_trace(struct cli *c, int argc, char **argv)
{
	struct cli_msg m;
	json_t *record, *path, *whole;
	int rc, geojson = 0, i, n = 0;
	char **args = cli_xmalloc(sizeof(*args) * ((size_t)argc + 1));

	/* --geojson may stand before or after the ID, not after "--". */
	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			while (i < argc)
				args[n++] = argv[i++];
			break;
		}
		if (i > 0 && strcmp(argv[i], "--geojson") == 0)
			geojson = 1;
		else
			args[n++] = argv[i];
	}
	args[n] = NULL;
	rc = cli_load_arg(c, n, args, 1, &m);
	free(args);
	if (rc != CLI_FOUND)
		return rc;
	record = cli_record_path(&m);
	path = cli_hop_path(&m, record);
	whole = cli_whole_path(&m, record);
	if (geojson)
		cli_json_print(mt_map_geojson(whole));
	else if (c->json)
		cli_json_print(trace_json(&m, path, whole));
	else
		print_trace(&m, whole);
	if (m.bad > 0)
		fprintf(stderr, "mailtrail: %zu malformed event(s) or hop(s) "
		    "skipped\n", m.bad);
	json_decref(whole);
	json_decref(path);
	json_decref(record);
	cli_msg_free(&m);
	return CLI_FOUND;
}
