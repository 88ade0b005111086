/*
 * Trace records as JSON: the spool file format (serialize / parse, where
 * parse treats its input as hostile) and the event objects stored in
 * mt:{ID}:ev and the mt:events stream.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "record.h"

#define SPOOL_FORMAT 1		/* "v" of the spool JSON */

void
mt_record_free(struct mt_record *r)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < r->nrcpt && r->rcpt != NULL; i++)
		free(r->rcpt[i]);
	free(r->rcpt);
	free(r->qid);
	free(r->msgid);
	free(r->subject);
	free(r->sender);
	free(r->client_ip);
	free(r->client_name);
	free(r->helo);
	free(r->auth);
	free(r->cc);
	free(r->city);
	free(r->hop_path);
	free(r->by);
	memset(r, 0, sizeof(*r));
}

/*
 * A JSON string for s. jansson refuses invalid UTF-8, and an SMTP peer may
 * send any 8-bit junk; rather than lose the record, such bytes become '?'.
 */
static json_t *
json_text(const char *s)
{
	json_t *j;
	char *copy, *p;

	if ((j = json_string(s)) != NULL)
		return j;
	if ((copy = strdup(s)) == NULL)
		return NULL;
	for (p = copy; *p != '\0'; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	j = json_string(copy);
	free(copy);
	return j;
}

/* Sets key to s unless s is NULL; -1 only when out of memory. */
static int
set_text(json_t *o, const char *key, const char *s)
{
	if (s == NULL)
		return 0;
	return json_object_set_new(o, key, json_text(s));
}

static char *
dump_and_free(json_t *o, int failed)
{
	char *s = NULL;

	if (!failed)
		s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

char *
mt_record_serialize(const struct mt_record *r)
{
	json_t *o, *rc;
	size_t i;
	int bad = 0;

	if ((o = json_object()) == NULL || (rc = json_array()) == NULL) {
		json_decref(o);
		return NULL;
	}
	bad |= json_object_set_new(o, "v", json_integer(SPOOL_FORMAT));
	bad |= set_text(o, "id", r->id);
	bad |= json_object_set_new(o, "id_kept", json_boolean(r->id_kept));
	bad |= set_text(o, "qid", r->qid);
	bad |= set_text(o, "msgid", r->msgid);
	bad |= set_text(o, "subject", r->subject);
	bad |= json_object_set_new(o, "inbound", json_boolean(r->inbound));
	bad |= set_text(o, "sender", r->sender);
	for (i = 0; i < r->nrcpt; i++)
		bad |= json_array_append_new(rc, json_text(r->rcpt[i]));
	bad |= json_object_set_new(o, "rcpt", rc);
	bad |= set_text(o, "client_ip", r->client_ip);
	bad |= set_text(o, "client_name", r->client_name);
	bad |= set_text(o, "helo", r->helo);
	bad |= set_text(o, "auth", r->auth);
	if (r->have_geo) {
		bad |= json_object_set_new(o, "lat", json_real(r->lat));
		bad |= json_object_set_new(o, "lon", json_real(r->lon));
	}
	bad |= set_text(o, "cc", r->cc);
	bad |= set_text(o, "city", r->city);
	bad |= json_object_set_new(o, "hops", json_integer(r->hops));
	bad |= set_text(o, "hop_path", r->hop_path);
	bad |= json_object_set_new(o, "size", json_integer(
	    r->size > INT64_MAX ? INT64_MAX : (json_int_t)r->size));
	bad |= json_object_set_new(o, "received_ms",
	    json_integer(r->received_ms));
	if (r->send_at_ms > 0)
		bad |= json_object_set_new(o, "send_at_ms",
		    json_integer(r->send_at_ms));
	bad |= set_text(o, "by", r->by);
	return dump_and_free(o, bad);
}

/* ---- parsing untrusted spool text ---------------------------------- */

/* IDs become Redis keys and file names: only the trackid alphabet. */
static int
id_ok(const char *s, size_t len)
{
	size_t i;

	if (len != MT_ID_LEN)
		return 0;
	for (i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'v') || s[i] == '.'))
			return 0;
	return 1;
}

static int
qid_ok(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > MT_RECORD_QID_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z')))
			return 0;
	return 1;
}

static int
cstr_ok(const char *s, size_t max)
{
	return s == NULL || (strnlen(s, max + 1) <= max && !strpbrk(s, "\r\n"));
}

int
mt_record_check(const struct mt_record *r, char *err, size_t errlen)
{
	const size_t m = MT_RECORD_STR_MAX;
	size_t i;

	if (!id_ok(r->id, strnlen(r->id, MT_ID_SIZE)))
		snprintf(err, errlen, "malformed tracking ID");
	else if (r->qid == NULL || !qid_ok(r->qid, strlen(r->qid)))
		snprintf(err, errlen, "missing or malformed queue ID");
	else if (r->sender == NULL || r->nrcpt > MT_RECORD_RCPT_MAX ||
	    (r->nrcpt > 0 && r->rcpt == NULL))
		snprintf(err, errlen, "no sender or bad recipient list");
	else if (!cstr_ok(r->msgid, m) || !cstr_ok(r->sender, m) ||
	    !cstr_ok(r->subject, m) ||
	    !cstr_ok(r->client_ip, m) || !cstr_ok(r->client_name, m) ||
	    !cstr_ok(r->helo, m) || !cstr_ok(r->auth, m) ||
	    !cstr_ok(r->cc, m) || !cstr_ok(r->city, m) || !cstr_ok(r->by, m) ||
	    !cstr_ok(r->hop_path, MT_RECORD_PATH_MAX) || r->hops < 0 ||
	    r->hops > 10000 || r->received_ms < 0 || r->send_at_ms < 0 ||
	    (r->have_geo && !(fabs(r->lat) <= 90 && fabs(r->lon) <= 180)))
		snprintf(err, errlen, "a field is out of bounds");
	else {
		for (i = 0; i < r->nrcpt; i++)
			if (r->rcpt[i] == NULL || r->rcpt[i][0] == '\0' ||
			    !cstr_ok(r->rcpt[i], m)) {
				snprintf(err, errlen, "bad recipient #%zu", i + 1);
				return -1;
			}
		return 0;
	}
	return -1;
}

/* A bounded string without NUL, CR or LF (the record's own promise). */
static int
text_ok(json_t *j, size_t max)
{
	const char *s = json_string_value(j);
	size_t len = json_string_length(j);

	return len <= max && strlen(s) == len && strpbrk(s, "\r\n") == NULL;
}

/*
 * Copies o[key] into *out. Absent is fine unless required (then *out stays
 * NULL). Returns 0 or -1 with the reason in err.
 */
static int
get_text(json_t *o, const char *key, int required, size_t max, char **out,
    char *err, size_t errlen)
{
	json_t *j = json_object_get(o, key);

	if (j == NULL) {
		if (!required)
			return 0;
		snprintf(err, errlen, "missing \"%s\"", key);
		return -1;
	}
	if (!json_is_string(j) || !text_ok(j, max)) {
		snprintf(err, errlen, "bad \"%s\"", key);
		return -1;
	}
	if ((*out = strdup(json_string_value(j))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

static int
get_int(json_t *o, const char *key, int required, json_int_t min,
    json_int_t max, json_int_t *out, char *err, size_t errlen)
{
	json_t *j = json_object_get(o, key);

	if (j == NULL && !required)
		return 0;
	if (j == NULL || !json_is_integer(j) || json_integer_value(j) < min ||
	    json_integer_value(j) > max) {
		snprintf(err, errlen, "%s \"%s\"", j ? "bad" : "missing", key);
		return -1;
	}
	*out = json_integer_value(j);
	return 0;
}

static int
get_coord(json_t *o, const char *key, double lim, double *out, char *err,
    size_t errlen)
{
	json_t *j = json_object_get(o, key);
	double v;

	if (!json_is_number(j) || !isfinite(v = json_number_value(j)) ||
	    v < -lim || v > lim) {
		snprintf(err, errlen, "bad \"%s\"", key);
		return -1;
	}
	*out = v;
	return 0;
}

static int
parse_id(json_t *o, struct mt_record *r, char *err, size_t errlen)
{
	json_t *j = json_object_get(o, "id"), *k;

	if (!json_is_string(j) ||
	    !id_ok(json_string_value(j), json_string_length(j))) {
		snprintf(err, errlen, "bad or missing \"id\"");
		return -1;
	}
	memcpy(r->id, json_string_value(j), MT_ID_SIZE);
	k = json_object_get(o, "id_kept");
	if (k != NULL && !json_is_boolean(k)) {
		snprintf(err, errlen, "bad \"id_kept\"");
		return -1;
	}
	r->id_kept = json_is_true(k);
	j = json_object_get(o, "qid");
	if (!json_is_string(j) ||
	    !qid_ok(json_string_value(j), json_string_length(j))) {
		snprintf(err, errlen, "bad or missing \"qid\"");
		return -1;
	}
	return get_text(o, "qid", 1, MT_RECORD_QID_MAX, &r->qid, err, errlen);
}

static int
parse_rcpt(json_t *o, struct mt_record *r, char *err, size_t errlen)
{
	json_t *a = json_object_get(o, "rcpt"), *j;
	size_t i, n;

	if (!json_is_array(a) || (n = json_array_size(a)) > MT_RECORD_RCPT_MAX) {
		snprintf(err, errlen, "bad or missing \"rcpt\"");
		return -1;
	}
	if (n > 0 && (r->rcpt = calloc(n, sizeof(*r->rcpt))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	json_array_foreach(a, i, j) {
		if (!json_is_string(j) || json_string_length(j) == 0 ||
		    !text_ok(j, MT_RECORD_STR_MAX)) {
			snprintf(err, errlen, "bad recipient #%zu", i + 1);
			return -1;
		}
		if ((r->rcpt[i] = strdup(json_string_value(j))) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		r->nrcpt = i + 1;	/* so mt_record_free sees what exists */
	}
	return 0;
}

static int
parse_texts(json_t *o, struct mt_record *r, char *err, size_t errlen)
{
	const size_t m = MT_RECORD_STR_MAX;

	json_t *in = json_object_get(o, "inbound");

	if (in != NULL && !json_is_boolean(in)) {
		snprintf(err, errlen, "\"inbound\" is not true or false");
		return -1;
	}
	r->inbound = json_is_true(in);
	if (get_text(o, "msgid", 0, m, &r->msgid, err, errlen) ||
	    get_text(o, "subject", 0, m, &r->subject, err, errlen) ||
	    get_text(o, "sender", 1, m, &r->sender, err, errlen) ||
	    get_text(o, "client_ip", 0, m, &r->client_ip, err, errlen) ||
	    get_text(o, "client_name", 0, m, &r->client_name, err, errlen) ||
	    get_text(o, "helo", 0, m, &r->helo, err, errlen) ||
	    get_text(o, "auth", 0, m, &r->auth, err, errlen) ||
	    get_text(o, "cc", 0, m, &r->cc, err, errlen) ||
	    get_text(o, "city", 0, m, &r->city, err, errlen) ||
	    get_text(o, "by", 0, m, &r->by, err, errlen) ||
	    get_text(o, "hop_path", 0, MT_RECORD_PATH_MAX, &r->hop_path, err,
	    errlen))
		return -1;
	return 0;
}

static int
parse_numbers(json_t *o, struct mt_record *r, char *err, size_t errlen)
{
	json_int_t hops = 0, size = 0, received = 0, send_at = 0;
	int has_lat = json_object_get(o, "lat") != NULL;
	int has_lon = json_object_get(o, "lon") != NULL;

	if (get_int(o, "hops", 0, 0, 10000, &hops, err, errlen) ||
	    get_int(o, "size", 0, 0, INT64_MAX, &size, err, errlen) ||
	    get_int(o, "received_ms", 1, 0, INT64_MAX, &received, err, errlen) ||
	    get_int(o, "send_at_ms", 0, 0, INT64_MAX, &send_at, err, errlen))
		return -1;
	r->send_at_ms = send_at;
	r->hops = (int)hops;
	r->size = (uint64_t)size;
	r->received_ms = received;
	if (has_lat != has_lon) {
		snprintf(err, errlen, "\"lat\" without \"lon\" or the reverse");
		return -1;
	}
	if (has_lat && (get_coord(o, "lat", 90, &r->lat, err, errlen) ||
	    get_coord(o, "lon", 180, &r->lon, err, errlen)))
		return -1;
	r->have_geo = has_lat;
	return 0;
}

int
mt_record_parse(const char *buf, size_t len, struct mt_record *r, char *err,
    size_t errlen)
{
	json_error_t jerr;
	json_t *o, *v;
	int rc = -1;

	memset(r, 0, sizeof(*r));
	o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (o == NULL) {
		snprintf(err, errlen, "not JSON: %s at byte %d", jerr.text,
		    jerr.position);
		return -1;
	}
	v = json_object_get(o, "v");
	if (!json_is_object(o))
		snprintf(err, errlen, "not a JSON object");
	else if (!json_is_integer(v) || json_integer_value(v) != SPOOL_FORMAT)
		snprintf(err, errlen, "unknown format version");
	else if (parse_id(o, r, err, errlen) == 0 &&
	    parse_rcpt(o, r, err, errlen) == 0 &&
	    parse_texts(o, r, err, errlen) == 0 &&
	    parse_numbers(o, r, err, errlen) == 0)
		rc = 0;
	json_decref(o);
	if (rc != 0)
		mt_record_free(r);
	return rc;
}

/* ---- events ---------------------------------------------------------- */

char *
mt_record_receive_json(const struct mt_record *r, const char *fp)
{
	json_t *o, *path = NULL;
	char client[2 * MT_RECORD_STR_MAX + 3];
	int bad = 0;

	if ((o = json_object()) == NULL)
		return NULL;
	bad |= json_object_set_new(o, "t", json_integer(r->received_ms));
	bad |= set_text(o, "ev", "RECEIVE");
	if (fp != NULL)
		bad |= set_text(o, "fp", fp);
	/*
	 * The record holds the first MTA's facts; a later MTA of the site
	 * (which kept the ID) says its own here.
	 */
	if (r->id_kept) {
		bad |= set_text(o, "qid", r->qid);
		bad |= set_text(o, "by", r->by);
		bad |= set_text(o, "from", r->sender);
		bad |= json_object_set_new(o, "nrcpt",
		    json_integer((json_int_t)r->nrcpt));
		if (r->client_ip != NULL) {
			/* Postfix's own notation, as in its logs. */
			snprintf(client, sizeof(client), "%.4096s[%.4096s]",
			    r->client_name ? r->client_name : "unknown",
			    r->client_ip);
			bad |= set_text(o, "client", client);
		}
	}
	/*
	 * One hop is the record's own client: no need to say it twice,
	 * unless it also knows this MTA's place, which the record has not.
	 */
	if (r->hop_path != NULL && (path = json_loads(r->hop_path, 0,
	    NULL)) != NULL && json_is_array(path) && (r->hops > 1 ||
	    json_object_get(json_array_get(path, 0), "by_lat") != NULL))
		bad |= json_object_set_new(o, "path", path);
	else if (path != NULL)
		json_decref(path);
	return dump_and_free(o, bad);
}

char *
mt_record_spool_event_json(const struct mt_record *r, int64_t now_ms)
{
	json_t *o;
	int bad = 0;

	if ((o = json_object()) == NULL)
		return NULL;
	bad |= json_object_set_new(o, "t", json_integer(now_ms));
	bad |= set_text(o, "ev", "SPOOL");
	bad |= set_text(o, "qid", r->qid);
	bad |= json_object_set_new(o, "spooled", json_integer(r->received_ms));
	return dump_and_free(o, bad);
}

char *
mt_record_schedule_event_json(const struct mt_record *r)
{
	json_t *o;
	int bad = 0;

	if ((o = json_object()) == NULL)
		return NULL;
	bad |= json_object_set_new(o, "t", json_integer(r->received_ms));
	bad |= set_text(o, "ev", "SCHEDULE");
	return dump_and_free(o, bad);
}
