/*
 * Redis reads for the `mailtrail` command: resolve what the user typed
 * (tracking ID, queue ID or Message-ID) to an ID, and load that message's
 * record, recipients and events. Replies are checked for shape, never trusted.
 */
#include <ctype.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Events beyond this many are not shown (retention bounds them anyway). */
#define EVENTS_MAX 10000
/* Messages listed for one Message-ID (a reuse flood cannot flood output). */
#define MSGID_SHOWN 100

redisReply *
cli_command(struct cli *c, const char *key, const char *fmt, ...)
{
	struct mt_db_batch b;
	redisReply *r = NULL;
	va_list ap;

	mt_db_batch_init(&b);
	va_start(ap, fmt);
	mt_db_addv(&b, key, fmt, ap);
	va_end(ap);
	if (cli_run(c, &b) == 0) {
		r = b.cmd[0].reply;
		b.cmd[0].reply = NULL;
	}
	mt_db_batch_free(&b);
	return r;
}

char *
cli_key(const struct cli *c, enum mt_key_kind kind, const char *arg,
    size_t len)
{
	char *k = mt_key(&c->schema, kind, arg, len);

	if (k == NULL)
		cli_oom();
	return k;
}

int
cli_run(struct cli *c, struct mt_db_batch *b)
{
	char err[400];

	if (b->oom)
		cli_oom();
	if (mt_db_run(c->link, b, 0, err, sizeof(err)) != 0) {
		snprintf(c->err, sizeof(c->err), "Redis: %s", err);
		return -1;
	}
	for (size_t i = 0; i < b->n; i++) {
		const redisReply *r = mt_db_reply(b, i);

		if (r == NULL) {
			snprintf(c->err, sizeof(c->err), "Redis: no reply");
			return -1;
		}
		if (r->type == REDIS_REPLY_ERROR) {
			snprintf(c->err, sizeof(c->err), "Redis: %.*s",
			    (int)(r->len > 300 ? 300 : r->len), r->str);
			return -1;
		}
	}
	return 0;
}

static redisReply *
str_reply(const char *s, size_t len)
{
	redisReply *r = calloc(1, sizeof(*r));

	if (r == NULL || (r->str = malloc(len + 1)) == NULL)
		cli_oom();
	r->type = REDIS_REPLY_STRING;
	memcpy(r->str, s, len);
	r->str[len] = '\0';
	r->len = len;
	return r;
}

redisReply *
cli_rcpt_pairs(const redisReply *rec)
{
	redisReply *a = calloc(1, sizeof(*a));
	const size_t plen = strlen(MT_RCPT_FIELD);
	size_t i, n = 0;

	if (a == NULL)
		cli_oom();
	a->type = REDIS_REPLY_ARRAY;
	if (!cli_reply_is_pairs(rec))
		return a;
	a->element = calloc(rec->elements ? rec->elements : 1,
	    sizeof(*a->element));
	if (a->element == NULL)
		cli_oom();
	for (i = 0; i + 1 < rec->elements; i += 2) {
		const redisReply *k = rec->element[i], *v = rec->element[i + 1];

		if (k->len <= plen || memcmp(k->str, MT_RCPT_FIELD, plen) != 0)
			continue;
		a->element[n++] = str_reply(k->str + plen, k->len - plen);
		a->element[n++] = str_reply(v->str, v->len);
	}
	a->elements = n;
	return a;
}

int
cli_reply_is_pairs(const redisReply *r)
{
	size_t i;

	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0)
		return 0;
	for (i = 0; i < r->elements; i++)
		if (r->element[i]->type != REDIS_REPLY_STRING)
			return 0;
	return 1;
}

int
cli_id_plausible(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > CLI_ID_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '.' &&
		    s[i] != '_' && s[i] != '-')
			return 0;
	return 1;
}

/* Our own tracking IDs: 26 of [0-9a-v], '.', 16 of [0-9a-v]. */
static int
has_trackid_form(const char *s, char out[CLI_ID_MAX + 1])
{
	size_t i;

	if (strlen(s) != 43)
		return 0;
	for (i = 0; i < 43; i++) {
		int ch = tolower((unsigned char)s[i]);

		if (i == 26 ? ch != '.' : !((ch >= '0' && ch <= '9') ||
		    (ch >= 'a' && ch <= 'v')))
			return 0;
		out[i] = (char)ch;
	}
	out[43] = '\0';
	return 1;
}

/* 1 when P{id} exists, 0 when not, -1 on error. */
static int
record_exists(struct cli *c, const char *id)
{
	char *key = cli_key(c, MT_KEY_RECORD, id, strlen(id));
	redisReply *r = cli_command(c, key, "EXISTS %s", key);
	int rc;

	free(key);
	if (r == NULL)
		return -1;
	rc = r->type == REDIS_REPLY_INTEGER && r->integer > 0;
	freeReplyObject(r);
	return rc;
}

/*
 * Follows the pointer key P KIND:NAME. 1 with id filled, 0 when absent or
 * dangling (err says which), -1 on error.
 */
static int
follow_pointer(struct cli *c, const char *kind, const char *name,
    size_t namelen, char id[CLI_ID_MAX + 1])
{
	char *key = cli_key(c, MT_KEY_QID, name, namelen);
	redisReply *r;
	int rc;

	r = cli_command(c, key, "GET %s", key);
	free(key);
	if (r == NULL)
		return -1;
	if (r->type != REDIS_REPLY_STRING) {
		freeReplyObject(r);
		return 0;
	}
	if (!cli_id_plausible(r->str, r->len)) {
		snprintf(c->err, sizeof(c->err), "%s key points to a malformed ID",
		    kind);
		freeReplyObject(r);
		return 0;
	}
	memcpy(id, r->str, r->len);
	id[r->len] = '\0';
	freeReplyObject(r);
	rc = record_exists(c, id);
	if (rc == 0)
		snprintf(c->err, sizeof(c->err),
		    "%s points to %s, whose record has expired or was removed",
		    kind, id);
	return rc;
}

/* Message-IDs are stored without the angle brackets or surrounding blanks. */
static void
strip_msgid(const char *arg, const char **s, size_t *len)
{
	const char *p = arg, *e = arg + strlen(arg);

	while (p < e && isspace((unsigned char)*p))
		p++;
	while (e > p && isspace((unsigned char)e[-1]))
		e--;
	if (e - p >= 2 && p[0] == '<' && e[-1] == '>') {
		p++;
		e--;
	}
	*s = p;
	*len = (size_t)(e - p);
}

/*
 * P msgid:M is a sorted set scored by received time: a later message
 * reusing a Message-ID joins it and never displaces the original. 1 with
 * id (the oldest message whose record is still there), 0, or -1.
 */
static int
follow_msgid(struct cli *c, const char *name, size_t namelen,
    char id[CLI_ID_MAX + 1])
{
	char *key = cli_key(c, MT_KEY_MSGID, name, namelen);
	redisReply *r;
	size_t i, n = 0;
	int rc = 0;

	r = cli_command(c, key, "ZRANGE %s 0 %d", key, MSGID_SHOWN - 1);
	free(key);
	if (r == NULL)
		return -1;
	if (r->type != REDIS_REPLY_ARRAY) {
		freeReplyObject(r);
		return 0;
	}
	free(c->msgid_ids);
	c->msgid_ids = cli_xmalloc((r->elements + 1) * sizeof(*c->msgid_ids));
	for (i = 0; i < r->elements; i++) {
		const redisReply *e = r->element[i];

		if (e->type != REDIS_REPLY_STRING ||
		    !cli_id_plausible(e->str, e->len))
			continue;
		memcpy(c->msgid_ids[n], e->str, e->len);
		c->msgid_ids[n++][e->len] = '\0';
	}
	freeReplyObject(r);
	c->n_msgid_ids = n;
	for (i = 0; i < n && rc == 0; i++) {
		rc = record_exists(c, c->msgid_ids[i]);
		if (rc > 0)
			snprintf(id, CLI_ID_MAX + 1, "%s", c->msgid_ids[i]);
	}
	if (rc == 0 && n > 0)
		snprintf(c->err, sizeof(c->err), "the records of the %zu "
		    "message(s) with this Message-ID have expired", n);
	return rc;
}

int
cli_resolve(struct cli *c, const char *arg, char id[CLI_ID_MAX + 1])
{
	const char *m;
	size_t mlen;
	int rc;

	c->err[0] = '\0';
	c->n_msgid_ids = 0;
	if (has_trackid_form(arg, id)) {
		rc = record_exists(c, id);
		if (rc != 0)
			return rc;
	}
	rc = follow_pointer(c, "qid", arg, strlen(arg), id);
	if (rc != 0)
		return rc;
	strip_msgid(arg, &m, &mlen);
	if (mlen == 0)
		return 0;
	return follow_msgid(c, m, mlen, id);
}

/* Keeps the events that are JSON objects; counts the rest in m->bad. */
static void
parse_events(struct cli_msg *m)
{
	size_t i;
	const redisReply *e;
	json_t *v;

	m->ev = cli_xmalloc(m->evraw->elements * sizeof(*m->ev));
	for (i = 0; i < m->evraw->elements; i++) {
		e = m->evraw->element[i];
		v = NULL;
		if (e->type == REDIS_REPLY_STRING)
			v = json_loadb(e->str, e->len, JSON_REJECT_DUPLICATES,
			    NULL);
		if (v == NULL || !json_is_object(v)) {
			json_decref(v);
			m->bad++;
			continue;
		}
		m->ev[m->nev++] = v;
	}
}

/* The hop path: the last RECEIVE event that carries one (a later MTA of
 * the site extends the path). */
static void
find_path(struct cli_msg *m)
{
	for (size_t i = m->nev; i-- > 0; ) {
		const char *ev = json_string_value(json_object_get(m->ev[i],
		    "ev"));
		json_t *p = json_object_get(m->ev[i], "path");

		if (ev != NULL && strcmp(ev, "RECEIVE") == 0 &&
		    json_is_array(p)) {
			m->path = json_dumps(p, JSON_COMPACT);
			return;
		}
	}
}

/* Milliseconds from an event's or hop's "t": a number or digit string. */
int
cli_json_ms(const json_t *v, int64_t *ms)
{
	if (json_is_integer(v)) {
		*ms = (int64_t)json_integer_value(v);
		return 0;
	}
	if (json_is_real(v) && isfinite(json_real_value(v)) &&
	    fabs(json_real_value(v)) < 9e15) {
		*ms = (int64_t)json_real_value(v);
		return 0;
	}
	if (json_is_string(v))
		return cli_parse_i64(json_string_value(v),
		    json_string_length(v), ms);
	return -1;
}

/*
 * Events in time order, for every command that shows or draws them.
 * Postfix's log gives whole seconds: within one second, the order the
 * events were written in is the better one. Events without a time stay
 * where they are.
 */
static void
sort_events(struct cli_msg *m)
{
	size_t i, j;
	int64_t ti, tj;

	for (i = 1; i < m->nev; i++) {
		json_t *e = m->ev[i];

		if (cli_json_ms(json_object_get(e, "t"), &ti) != 0)
			continue;
		for (j = i; j > 0; j--) {
			if (cli_json_ms(json_object_get(m->ev[j - 1], "t"),
			    &tj) != 0 || tj / 1000 <= ti / 1000)
				break;
			m->ev[j] = m->ev[j - 1];
		}
		m->ev[j] = e;
	}
}

int
cli_msg_load(struct cli *c, const char *id, int with_events,
    struct cli_msg *m)
{
	char *rk = cli_key(c, MT_KEY_RECORD, id, strlen(id));
	char *ek = cli_key(c, MT_KEY_EVENTS, id, strlen(id));
	struct mt_db_batch b;
	int rc = -1;

	memset(m, 0, sizeof(*m));
	snprintf(m->id, sizeof(m->id), "%s", id);
	mt_db_batch_init(&b);
	mt_db_add(&b, rk, "HGETALL %s", rk);
	/* The path is in the events: trace and --json need them anyway. */
	mt_db_add(&b, ek, "LRANGE %s 0 %d", ek, EVENTS_MAX - 1);
	free(rk);
	free(ek);
	if (cli_run(c, &b) != 0)
		goto out;
	m->rec = b.cmd[0].reply;
	b.cmd[0].reply = NULL;
	m->evraw = b.cmd[1].reply;
	b.cmd[1].reply = NULL;
	if (!cli_reply_is_pairs(m->rec) || m->evraw->type != REDIS_REPLY_ARRAY) {
		snprintf(c->err, sizeof(c->err),
		    "Redis: keys of %s have an unexpected type", id);
		cli_msg_free(m);
		goto out;
	}
	rc = 0;
	if (m->rec->elements == 0) {
		cli_msg_free(m);
		goto out;
	}
	m->rcpt = cli_rcpt_pairs(m->rec);
	parse_events(m);
	find_path(m);
	sort_events(m);
	if (!with_events) {
		for (size_t i = 0; i < m->nev; i++)
			json_decref(m->ev[i]);
		m->nev = 0;
		freeReplyObject(m->evraw);
		m->evraw = NULL;
	}
	rc = 1;
out:
	mt_db_batch_free(&b);
	return rc;
}

void
cli_msg_free(struct cli_msg *m)
{
	size_t i;

	for (i = 0; i < m->nev; i++)
		json_decref(m->ev[i]);
	free(m->ev);
	if (m->rec != NULL)
		freeReplyObject(m->rec);
	if (m->rcpt != NULL)
		freeReplyObject(m->rcpt);
	if (m->evraw != NULL)
		freeReplyObject(m->evraw);
	free(m->path);
	memset(m, 0, sizeof(*m));
}

const char *
cli_msg_field(const struct cli_msg *m, const char *name, size_t *len)
{
	size_t i, nlen = strlen(name);

	if (strcmp(name, "id") == 0) {
		*len = strlen(m->id);
		return m->id;
	}
	/* The path is in the RECEIVE event (too long for a compact hash). */
	if (strcmp(name, "path") == 0 && m->path != NULL) {
		*len = strlen(m->path);
		return m->path;
	}
	for (i = 0; i + 1 < m->rec->elements; i += 2) {
		const redisReply *k = m->rec->element[i];

		if (k->len == nlen && memcmp(k->str, name, nlen) == 0) {
			*len = m->rec->element[i + 1]->len;
			return m->rec->element[i + 1]->str;
		}
	}
	*len = 0;
	return NULL;
}
