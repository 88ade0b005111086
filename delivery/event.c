/*
 * A delivery result as the event object stored in P{ID}:ev and the events
 * stream. jansson does the JSON escaping; the strings were cleaned by the
 * parser, so they are valid UTF-8 without controls.
 */
#include <stdlib.h>

#include <jansson.h>

#include "delivery.h"

static void
set_str(json_t *o, const char *key, const char *v)
{
	if (v != NULL && v[0] != '\0')
		json_object_set_new(o, key, json_string(v));
}

char *
mt_dlv_event_json(const struct mt_dlv *d, int64_t t_ms)
{
	json_t *o = json_object();
	char *s;

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "t", json_integer((json_int_t)t_ms));
	json_object_set_new(o, "ev", json_string(mt_dlv_event_name(d->status)));
	set_str(o, "rcpt", d->rcpt);
	set_str(o, "orig_rcpt", d->orig_rcpt);
	set_str(o, "relay", d->relay);
	if (d->status == MT_DLV_SENT || d->status == MT_DLV_DELIVERED) {
		/* The destination: the receiving server and its place. */
		set_str(o, "ip", d->ip);
		if (d->have_place) {
			json_object_set_new(o, "lat", json_real(d->lat));
			json_object_set_new(o, "lon", json_real(d->lon));
			set_str(o, "cc", d->cc);
			set_str(o, "city", d->city);
		}
	}
	set_str(o, "dsn", d->dsn);
	set_str(o, "status", d->status == MT_DLV_EXPIRED ? "expired"
	    : mt_dlv_status_name(d->status));
	set_str(o, d->status == MT_DLV_SENT || d->status == MT_DLV_DELIVERED ?
	    "reply" : "reason", d->text);
	set_str(o, "session", d->session);
	set_str(o, "service", d->service);
	set_str(o, "route", d->route);
	set_str(o, "route_ip", d->route_ip);
	set_str(o, "qid", d->qid);
	set_str(o, "delay", d->delay);
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return s;
}
