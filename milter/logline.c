/*
 * The per-message log line, shaped like Postfix's own so that a shipper can
 * join it to Postfix's lines on the queue ID. Every value from the message
 * or the client is escaped first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../common/log.h"
#include "../common/text.h"
#include "../schedule/schedule.h"
#include "milter.h"

#define FIELD_MAX 1024

static const char *
esc(char *buf, const char *s)
{
	if (s == NULL)
		return "";
	mt_text_log(buf, FIELD_MAX, s, strlen(s));
	return buf;
}

static const char *
store_name(int tracked, enum mt_store_result stored)
{
	if (!tracked)
		return "none";
	return stored == MT_STORE_REDIS ? "redis"
	    : stored == MT_STORE_SPOOL ? "spool" : "failed";
}

static void
logline_json(const struct mt_record *r, const char *store)
{
	char q[FIELD_MAX], f[FIELD_MAX], n[FIELD_MAX], ip[FIELD_MAX];
	json_t *o;
	char *text;

	o = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:i, s:s}",
	    "qid", esc(q, r->qid), "id", r->id[0] ? r->id : "-",
	    "from", esc(f, r->sender), "nrcpt", (json_int_t)r->nrcpt,
	    "client_name", esc(n, r->client_name),
	    "client_ip", esc(ip, r->client_ip), "hops", r->hops,
	    "store", store);
	if (o == NULL)
		return;
	if (r->send_at_ms > 0) {
		char when[32];

		mt_sched_iso(when, sizeof(when), r->send_at_ms);
		json_object_set_new(o, "hold", json_string(when));
	}
	if (r->have_geo) {
		char cc[FIELD_MAX];

		json_object_set_new(o, "lat", json_real(r->lat));
		json_object_set_new(o, "lon", json_real(r->lon));
		json_object_set_new(o, "cc", json_string(esc(cc, r->cc)));
	} else {
		json_object_set_new(o, "lat", json_null());
		json_object_set_new(o, "lon", json_null());
		json_object_set_new(o, "cc", json_null());
	}
	text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (text)
		mt_log(LOG_INFO, "%s", text);
	free(text);
	json_decref(o);
}

void
mt_logline(const struct mt_config *cfg, const struct mt_record *r,
    int tracked, enum mt_store_result stored)
{
	char q[FIELD_MAX], f[FIELD_MAX], n[FIELD_MAX], ip[FIELD_MAX];
	char geo[64] = "-", cc[FIELD_MAX] = "-", hold[48] = "";
	char when[32];
	const char *store = store_name(tracked, stored);

	if (cfg->log_format == MT_LOG_JSON) {
		logline_json(r, store);
		return;
	}
	if (r->have_geo) {
		snprintf(geo, sizeof(geo), "%.4f,%.4f", r->lat, r->lon);
		esc(cc, r->cc);
	}
	if (r->send_at_ms > 0 && mt_sched_iso(when, sizeof(when),
	    r->send_at_ms) > 0)
		snprintf(hold, sizeof(hold), ", hold=until %s", when);
	mt_log(LOG_INFO, "%s: id=%s, from=<%s>, nrcpt=%zu, client=%s[%s], "
	    "geo=%s, cc=%s, hops=%d, store=%s%s", esc(q, r->qid),
	    r->id[0] ? r->id : "-",
	    strcmp(r->sender, "<>") == 0 ? "" : esc(f, r->sender), r->nrcpt,
	    esc(n, r->client_name), esc(ip, r->client_ip), geo, cc, r->hops,
	    store, hold);
}
