/*
 * `mailtrail search`: messages by sender and/or recipient from the
 * P from:ADDR / P to:ADDR sorted sets (scored by received ms), newest first,
 * within --since/--until, as a table or a JSON array. Without --from and
 * --to, the recent messages: the RECEIVE events of the P events stream,
 * newest first, as far back as the stream reaches.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "../common/text.h"

#define LIMIT_DEFAULT 1000
#define LIMIT_MAX 100000
/* With both --from and --to, each side is read up to this many IDs. */
#define INTERSECT_MAX 200000

struct search {
	char from[512], to[512];	/* normalised addresses, "" = unused */
	char min[24], max[24];		/* ZRANGEBYSCORE bounds */
	long limit;
	/* filters on the records found, "" = unused */
	char subject[256];		/* substring, any case (ASCII) */
	char ip[64];			/* client_ip, exactly */
	char status[16];		/* some recipient has it */
};

/* IDs read from an index when filters may drop most of them. */
#define FILTER_SCAN_MAX 100000

static int
filtered(const struct search *s)
{
	return s->subject[0] || s->ip[0] || s->status[0];
}

static const char *const statuses[] = {
	"queued", "scheduled", "sent", "delivered", "deferred", "bounced",
	"read", "deleted", "cancelled", NULL
};

static int
set_text_opt(const struct cli_command *cmd, char *dst, size_t len,
    const char *opt, const char *v)
{
	if (v[0] == '\0' || strlen(v) >= len)
		return cli_usage_error(cmd, "%s: give 1 to %zu characters", opt,
		    len - 1);
	snprintf(dst, len, "%s", v);
	return 0;
}

static int
set_status(const struct cli_command *cmd, char *dst, size_t len,
    const char *v)
{
	for (size_t i = 0; statuses[i] != NULL; i++)
		if (strcmp(v, statuses[i]) == 0) {
			snprintf(dst, len, "%s", v);
			return 0;
		}
	return cli_usage_error(cmd, "--status %s: not a status (queued, "
	    "scheduled, sent, delivered, deferred, bounced, read, deleted, "
	    "cancelled)", v);
}

/* n decimal digits at s; -1 when any is not a digit. */
static int
fixed_digits(const char *s, int n)
{
	int v = 0, i;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* YYYY-MM-DD[(T| )HH:MM[:SS]][Z], always UTC. */
static int
parse_iso(const char *s, int64_t *ms)
{
	size_t len = strlen(s);
	struct tm tm, chk;
	time_t t;

	memset(&tm, 0, sizeof(tm));
	if (len > 0 && s[len - 1] == 'Z')
		len--;
	if ((len != 10 && len != 16 && len != 19) || s[4] != '-' ||
	    s[7] != '-')
		return -1;
	tm.tm_year = fixed_digits(s, 4) - 1900;
	tm.tm_mon = fixed_digits(s + 5, 2) - 1;
	tm.tm_mday = fixed_digits(s + 8, 2);
	if (len >= 16) {
		if ((s[10] != 'T' && s[10] != ' ') || s[13] != ':')
			return -1;
		tm.tm_hour = fixed_digits(s + 11, 2);
		tm.tm_min = fixed_digits(s + 14, 2);
	}
	if (len == 19) {
		if (s[16] != ':')
			return -1;
		tm.tm_sec = fixed_digits(s + 17, 2);
	}
	chk = tm;
	t = timegm(&tm);
	/* timegm normalises 02-30 to 03-02; refuse instead of guessing. */
	if (t == (time_t)-1 || chk.tm_year < 0 || tm.tm_mon != chk.tm_mon ||
	    tm.tm_mday != chk.tm_mday || tm.tm_hour != chk.tm_hour ||
	    tm.tm_min != chk.tm_min || tm.tm_sec != chk.tm_sec)
		return -1;
	*ms = (int64_t)t * 1000;
	return 0;
}

/* Unix seconds, an ISO date/time, or an age such as 30m, 2h, 7d. */
static int
parse_time(const char *s, time_t now, int64_t *ms)
{
	size_t n = strspn(s, "0123456789");
	int64_t v, unit;

	if (n == 0 || n > 12)
		return -1;
	if (s[n] != '\0' && s[n + 1] == '\0') {
		switch (s[n]) {
		case 's': unit = 1; break;
		case 'm': unit = 60; break;
		case 'h': unit = 3600; break;
		case 'd': unit = 86400; break;
		case 'w': unit = 7 * 86400; break;
		default: return -1;
		}
		if (cli_parse_i64(s, n, &v) != 0 || v > INT64_C(100) * 366 * 86400 / unit)
			return -1;
		*ms = ((int64_t)now - v * unit) * 1000;
		return 0;
	}
	if (s[n] == '\0')
		return cli_parse_i64(s, n, &v) == 0 ? (*ms = v * 1000, 0) : -1;
	return parse_iso(s, ms);
}

/* Option value from "--opt VALUE" or "--opt=VALUE"; NULL if not this opt. */
static const char *
opt_value(int argc, char **argv, int *i, const char *opt, int *missing)
{
	size_t n = strlen(opt);

	if (strncmp(argv[*i], opt, n) != 0)
		return NULL;
	if (argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (argv[*i][n] != '\0')
		return NULL;
	if (*i + 1 >= argc) {
		*missing = 1;
		return NULL;
	}
	return argv[++*i];
}

static int
set_address(const struct cli_command *cmd, char *dst, size_t size,
    const char *opt, const char *v)
{
	size_t n = mt_text_address(dst, size, v, strlen(v));

	if (n == (size_t)-1 || n == 0)
		return cli_usage_error(cmd, "%s: not a usable address", opt);
	return 0;
}

static int
set_bound(const struct cli_command *cmd, char *dst, size_t size,
    const char *opt, const char *v)
{
	int64_t ms;

	if (parse_time(v, time(NULL), &ms) != 0)
		return cli_usage_error(cmd, "%s %s: not a time (unix seconds, "
		    "YYYY-MM-DD[THH:MM[:SS]], or 30m, 2h, 7d)", opt, v);
	snprintf(dst, size, "%lld", (long long)ms);
	return 0;
}

static int
parse_limit(const struct cli_command *cmd, const char *v, long *limit)
{
	int64_t n;

	if (cli_parse_i64(v, strlen(v), &n) != 0 || n < 1 || n > LIMIT_MAX)
		return cli_usage_error(cmd, "--limit %s: not a number from 1 "
		    "to %d", v, LIMIT_MAX);
	*limit = (long)n;
	return 0;
}

static int
parse_args(struct search *s, int argc, char **argv)
{
	const struct cli_command *cmd = cli_find_command(argv[0]);
	const char *v;
	int i, missing = 0, rc = 0;

	memset(s, 0, sizeof(*s));
	snprintf(s->min, sizeof(s->min), "-inf");
	snprintf(s->max, sizeof(s->max), "+inf");
	s->limit = LIMIT_DEFAULT;
	for (i = 1; i < argc && rc == 0; i++) {
		if ((v = opt_value(argc, argv, &i, "--from", &missing)))
			rc = set_address(cmd, s->from, sizeof(s->from), "--from", v);
		else if ((v = opt_value(argc, argv, &i, "--to", &missing)))
			rc = set_address(cmd, s->to, sizeof(s->to), "--to", v);
		else if ((v = opt_value(argc, argv, &i, "--since", &missing)))
			rc = set_bound(cmd, s->min, sizeof(s->min), "--since", v);
		else if ((v = opt_value(argc, argv, &i, "--until", &missing)))
			rc = set_bound(cmd, s->max, sizeof(s->max), "--until", v);
		else if ((v = opt_value(argc, argv, &i, "--limit", &missing)))
			rc = parse_limit(cmd, v, &s->limit);
		else if ((v = opt_value(argc, argv, &i, "--subject", &missing)))
			rc = set_text_opt(cmd, s->subject, sizeof(s->subject),
			    "--subject", v);
		else if ((v = opt_value(argc, argv, &i, "--ip", &missing)))
			rc = set_text_opt(cmd, s->ip, sizeof(s->ip), "--ip", v);
		else if ((v = opt_value(argc, argv, &i, "--status", &missing)))
			rc = set_status(cmd, s->status, sizeof(s->status), v);
		else
			rc = cli_usage_error(cmd, "%s: %s", argv[i], missing ?
			    "needs a value" : "unknown option or argument");
	}
	return rc;
}

/* Newest first within the bounds; NULL with err set on error. */
static redisReply *
range(struct cli *c, const struct search *s, const char *kind,
    const char *addr, long count)
{
	char *key = cli_key(c, strcmp(kind, "from") == 0 ? MT_KEY_FROM
	    : MT_KEY_TO, addr, strlen(addr));
	redisReply *r;

	r = cli_command(c, key, "ZREVRANGEBYSCORE %s %s %s LIMIT 0 %ld", key,
	    s->max, s->min, count);
	if (r != NULL && r->type != REDIS_REPLY_ARRAY) {
		snprintf(c->err, sizeof(c->err), "Redis: %s is not a sorted "
		    "set", key);
		freeReplyObject(r);
		r = NULL;
	}
	free(key);
	return r;
}

/* Stream entries read per XREVRANGE, and at most in all. */
#define STREAM_PAGE 2000
#define STREAM_SCAN_MAX 2000000

struct pages {
	redisReply **r;
	size_t n;
};

static void
pages_free(struct pages *p)
{
	for (size_t i = 0; i < p->n; i++)
		freeReplyObject(p->r[i]);
	free(p->r);
	p->r = NULL;
	p->n = 0;
}

/* The value of field name in a stream entry's [field, value, ...]. */
static const redisReply *
entry_field(const redisReply *fields, const char *name)
{
	size_t nlen = strlen(name);

	if (fields == NULL || fields->type != REDIS_REPLY_ARRAY)
		return NULL;
	for (size_t i = 0; i + 1 < fields->elements; i += 2)
		if (fields->element[i]->type == REDIS_REPLY_STRING &&
		    fields->element[i]->len == nlen &&
		    memcmp(fields->element[i]->str, name, nlen) == 0 &&
		    fields->element[i + 1]->type == REDIS_REPLY_STRING)
			return fields->element[i + 1];
	return NULL;
}

struct ranked {
	const redisReply *id;
	size_t at;		/* place in the newest-first list */
};

static int
cmp_ranked(const void *a, const void *b)
{
	const struct ranked *x = a, *y = b;
	size_t n = x->id->len < y->id->len ? x->id->len : y->id->len;
	int d = memcmp(x->id->str, y->id->str, n);

	if (d == 0)
		d = (x->id->len > y->id->len) - (x->id->len < y->id->len);
	return d ? d : (x->at > y->at) - (x->at < y->at);
}

/*
 * The IDs of the newest RECEIVE events within --since/--until, newest
 * first, each once; pointing into the pages read. (size_t)-1 on error.
 */
static size_t
recent_ids(struct cli *c, const struct search *s, struct pages *pg,
    const redisReply ***ids, size_t keep)
{
	char *key = cli_key(c, MT_KEY_STREAM, NULL, 0);
	char end[48], start[24];
	const redisReply **out = NULL;
	struct ranked *sorted;
	size_t n = 0, cap = 0, scanned = 0, i, k;

	snprintf(end, sizeof(end), "%s", strcmp(s->max, "+inf") ? s->max : "+");
	snprintf(start, sizeof(start), "%s", strcmp(s->min, "-inf") ? s->min
	    : "-");
	while (n < keep && scanned < STREAM_SCAN_MAX) {
		redisReply *r = cli_command(c, key, "XREVRANGE %s %s %s COUNT "
		    "%d", key, end, start, STREAM_PAGE);

		if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
			if (r != NULL) {
				snprintf(c->err, sizeof(c->err), "Redis: %s is "
				    "not a stream", key);
				freeReplyObject(r);
			}
			free(key);
			free(out);
			return (size_t)-1;
		}
		pg->r = realloc(pg->r, (pg->n + 1) * sizeof(*pg->r));
		if (pg->r == NULL)
			cli_oom();
		pg->r[pg->n++] = r;
		for (i = 0; i < r->elements && n < keep; i++) {
			const redisReply *e = r->element[i], *ev, *id;

			if (e->type != REDIS_REPLY_ARRAY || e->elements != 2)
				continue;
			ev = entry_field(e->element[1], "ev");
			id = entry_field(e->element[1], "id");
			if (ev == NULL || id == NULL || ev->len != 7 ||
			    memcmp(ev->str, "RECEIVE", 7) != 0 ||
			    !cli_id_plausible(id->str, id->len))
				continue;
			if (n == cap) {
				cap = cap ? 2 * cap : 256;
				out = realloc(out, cap * sizeof(*out));
				if (out == NULL)
					cli_oom();
			}
			out[n++] = id;
		}
		scanned += r->elements;
		if (r->elements < STREAM_PAGE || r->element[r->elements - 1]->
		    type != REDIS_REPLY_ARRAY || r->element[r->elements - 1]->
		    elements != 2 || r->element[r->elements - 1]->element[0]->
		    type != REDIS_REPLY_STRING)
			break;
		/* On from just below the last entry read. */
		snprintf(end, sizeof(end), "(%s",
		    r->element[r->elements - 1]->element[0]->str);
	}
	free(key);
	if (scanned >= STREAM_SCAN_MAX)
		fprintf(stderr, "mailtrail: looked at the newest %d events; "
		    "narrow the search with --since/--until\n",
		    STREAM_SCAN_MAX);
	/* A message stored twice (a spool replay) is shown once: keep the
	 * first, newest, of each ID. */
	sorted = cli_xmalloc((n ? n : 1) * sizeof(*sorted));
	for (i = 0; i < n; i++)
		sorted[i] = (struct ranked){ out[i], i };
	qsort(sorted, n, sizeof(*sorted), cmp_ranked);
	for (i = 1; i < n; i++)
		if (sorted[i].id->len == sorted[i - 1].id->len &&
		    memcmp(sorted[i].id->str, sorted[i - 1].id->str,
		    sorted[i].id->len) == 0)
			out[sorted[i].at] = NULL;
	free(sorted);
	for (i = k = 0; i < n; i++)
		if (out[i] != NULL)
			out[k++] = out[i];
	*ids = out;
	return k;
}

static int
cmp_reply_str(const void *a, const void *b)
{
	const redisReply *x = *(redisReply *const *)a;
	const redisReply *y = *(redisReply *const *)b;
	size_t n = x->len < y->len ? x->len : y->len;
	int d = memcmp(x->str, y->str, n);

	return d ? d : (x->len > y->len) - (x->len < y->len);
}

/*
 * The IDs to show, newest first, pointing into *a (and *b): one range, or
 * the members of the --from range that the --to range also holds.
 */
static size_t
select_ids(struct cli *c, const struct search *s, redisReply **a,
    redisReply **b, const redisReply ***ids)
{
	const redisReply **sorted = NULL;
	size_t i, n = 0;
	int both = s->from[0] && s->to[0];
	long count = both ? INTERSECT_MAX : filtered(s) ? FILTER_SCAN_MAX :
	    s->limit;
	size_t keep = filtered(s) ? (size_t)count : (size_t)s->limit;

	*b = NULL;
	*ids = NULL;
	*a = range(c, s, s->from[0] ? "from" : "to",
	    s->from[0] ? s->from : s->to, count);
	if (*a == NULL || (both && (*b = range(c, s, "to", s->to, count)) == NULL))
		return (size_t)-1;
	if (both && ((*a)->elements == (size_t)count ||
	    (*b)->elements == (size_t)count))
		fprintf(stderr, "mailtrail: more than %ld matches on one side; "
		    "narrow the search with --since/--until\n", count);
	*ids = cli_xmalloc((*a)->elements * sizeof(**ids));
	if (both) {
		sorted = cli_xmalloc((*b)->elements * sizeof(*sorted));
		memcpy(sorted, (*b)->element, (*b)->elements * sizeof(*sorted));
		qsort(sorted, (*b)->elements, sizeof(*sorted), cmp_reply_str);
	}
	for (i = 0; i < (*a)->elements && n < keep; i++) {
		const redisReply *e = (*a)->element[i];

		if (e->type != REDIS_REPLY_STRING || !cli_id_plausible(e->str,
		    e->len))
			continue;
		if (both && bsearch(&e, sorted, (*b)->elements,
		    sizeof(*sorted), cmp_reply_str) == NULL)
			continue;
		(*ids)[n++] = e;
	}
	free(sorted);
	return n;
}

/* "sent:2 deferred:1": statuses in lifecycle order, unknown ones last. */
static void
rcpt_summary(struct cli_buf *b, const redisReply *rcpt)
{
	static const char *const order[] = {
		"queued", "scheduled", "sent", "delivered", "deferred",
		"bounced", "read", "deleted", "cancelled", NULL
	};
	size_t i, j, count, other = 0;

	for (j = 0; order[j] != NULL; j++) {
		count = 0;
		for (i = 1; i < rcpt->elements; i += 2)
			if (rcpt->element[i]->len == strlen(order[j]) &&
			    memcmp(rcpt->element[i]->str, order[j],
			    rcpt->element[i]->len) == 0)
				count++;
		if (count > 0)
			cli_buf_addf(b, "%s%s:%zu", b->len ? " " : "",
			    order[j], count);
		other += count;
	}
	if (other < rcpt->elements / 2)
		cli_buf_addf(b, "%sother:%zu", b->len ? " " : "",
		    rcpt->elements / 2 - other);
}

/* hm = HMGET received sender nrcpt; rcpt = HGETALL of the recipients. */
static void
row_table(struct cli_table *t, const redisReply *id, const redisReply *hm,
    const redisReply *rcpt)
{
	const redisReply *rcv = hm->element[0];
	struct cli_buf b = { 0 };
	char when[40] = "-";
	int64_t ms;

	if (rcv->type == REDIS_REPLY_STRING &&
	    cli_parse_i64(rcv->str, rcv->len, &ms) == 0)
		cli_time_ms(when, ms);
	cli_table_safe(t, when);
	cli_table_text(t, id->str, id->len);
	cli_table_text(t, hm->element[1]->str, hm->element[1]->len);
	cli_table_text(t, hm->element[2]->str, hm->element[2]->len);
	rcpt_summary(&b, rcpt);
	cli_table_safe(t, b.s ? b.s : "-");
	cli_buf_free(&b);
}

static json_t *
row_json(const redisReply *id, const redisReply *hm, const redisReply *rcpt)
{
	json_t *o = json_object();
	const redisReply *v;
	int64_t n;

	json_object_set_new(o, "id", cli_json_string(id->str, id->len));
	v = hm->element[0];
	if (v->type == REDIS_REPLY_STRING && cli_parse_i64(v->str, v->len,
	    &n) == 0)
		json_object_set_new(o, "received", json_integer(n));
	v = hm->element[1];
	if (v->type == REDIS_REPLY_STRING)
		json_object_set_new(o, "sender", cli_json_string(v->str, v->len));
	v = hm->element[2];
	if (v->type == REDIS_REPLY_STRING && cli_parse_i64(v->str, v->len,
	    &n) == 0)
		json_object_set_new(o, "nrcpt", json_integer(n));
	json_object_set_new(o, "recipients", cli_recipients_json(rcpt));
	return o;
}

static int
row_ok(const redisReply *hm, const redisReply *rcpt)
{
	size_t i, present = 0;

	if (hm == NULL || hm->type != REDIS_REPLY_ARRAY || hm->elements != 3 ||
	    !cli_reply_is_pairs(rcpt))
		return 0;
	for (i = 0; i < 3; i++)
		present += hm->element[i]->type == REDIS_REPLY_STRING;
	return present > 0;	/* all nil: the record expired meanwhile */
}

/* A record field of an HGETALL reply, or NULL. */
static const redisReply *
rec_field(const redisReply *rec, const char *name)
{
	size_t nlen = strlen(name);

	if (!cli_reply_is_pairs(rec))
		return NULL;
	for (size_t i = 0; i + 1 < rec->elements; i += 2)
		if (rec->element[i]->len == nlen &&
		    memcmp(rec->element[i]->str, name, nlen) == 0)
			return rec->element[i + 1];
	return NULL;
}

/* Does the record pass --subject, --ip and --status? */
static int
row_matches(const struct search *s, const redisReply *rec,
    const redisReply *rcpt)
{
	const redisReply *v;

	if (s->subject[0]) {
		char *subj;
		int hit;

		if ((v = rec_field(rec, "subject")) == NULL)
			return 0;
		subj = cli_xstrndup(v->str, v->len);
		hit = strcasestr(subj, s->subject) != NULL;
		free(subj);
		if (!hit)
			return 0;
	}
	if (s->ip[0] && ((v = rec_field(rec, "client_ip")) == NULL ||
	    v->len != strlen(s->ip) || memcmp(v->str, s->ip, v->len) != 0))
		return 0;
	if (s->status[0]) {
		size_t i;

		for (i = 1; i < rcpt->elements; i += 2)
			if (rcpt->element[i]->len == strlen(s->status) &&
			    memcmp(rcpt->element[i]->str, s->status,
			    rcpt->element[i]->len) == 0)
				break;
		if (i >= rcpt->elements)
			return 0;
	}
	return 1;
}

#define ROWS_PER_BATCH 1000

/* Fetches, filters and prints the rows; the number shown, or -1. */
static long
show_rows(struct cli *c, const struct search *s, const redisReply **ids,
    size_t n)
{
	struct cli_table t;
	json_t *arr = json_array();
	long shown = 0;
	size_t at;

	cli_table_init(&t, 5);
	cli_table_safe(&t, "RECEIVED");
	cli_table_safe(&t, "ID");
	cli_table_safe(&t, "SENDER");
	cli_table_safe(&t, "NRCPT");
	cli_table_safe(&t, "RECIPIENTS");
	for (at = 0; at < n && shown < s->limit && shown >= 0;
	    at += ROWS_PER_BATCH) {
		size_t k = n - at < ROWS_PER_BATCH ? n - at : ROWS_PER_BATCH;
		struct mt_db_batch batch;

		mt_db_batch_init(&batch);
		for (size_t i = 0; i < k; i++) {
			char *key = cli_key(c, MT_KEY_RECORD, ids[at + i]->str,
			    ids[at + i]->len);

			mt_db_add(&batch, key, "HMGET %s received sender nrcpt",
			    key);
			mt_db_add(&batch, key, "HGETALL %s", key);
			free(key);
		}
		if (cli_run(c, &batch) != 0) {
			shown = -1;
		} else {
			for (size_t i = 0; i < k && shown < s->limit; i++) {
				const redisReply *hm = mt_db_reply(&batch, 2 * i);
				const redisReply *rec = mt_db_reply(&batch,
				    2 * i + 1);
				redisReply *rcpt = cli_rcpt_pairs(rec);

				if (row_ok(hm, rcpt) && row_matches(s, rec,
				    rcpt)) {
					if (c->json)
						json_array_append_new(arr,
						    row_json(ids[at + i], hm,
						    rcpt));
					else
						row_table(&t, ids[at + i], hm,
						    rcpt);
					shown++;
				}
				freeReplyObject(rcpt);
			}
		}
		mt_db_batch_free(&batch);
	}
	if (shown >= 0 && c->json)
		cli_json_print(json_incref(arr));
	else if (shown > 0)
		cli_table_print(&t, stdout, "");
	json_decref(arr);
	cli_table_free(&t);
	return shown;
}

int
cmd_search(struct cli *c, int argc, char **argv)
{
	struct search s;
	redisReply *a = NULL, *b = NULL;
	struct pages pg = { NULL, 0 };
	const redisReply **ids = NULL;
	size_t n;
	long shown = -1;
	int rc;

	rc = parse_args(&s, argc, argv);
	if (rc != 0)
		return rc;
	if (cli_connect(c) != 0)
		return cli_fail(c);
	if (s.from[0] || s.to[0])
		n = select_ids(c, &s, &a, &b, &ids);
	else
		n = recent_ids(c, &s, &pg, &ids, filtered(&s) ?
		    FILTER_SCAN_MAX : (size_t)s.limit);
	if (n != (size_t)-1)
		shown = show_rows(c, &s, ids, n);
	free(ids);
	pages_free(&pg);
	if (a != NULL)
		freeReplyObject(a);
	if (b != NULL)
		freeReplyObject(b);
	if (shown < 0)
		return cli_fail(c);
	if (shown == 0) {
		fputs("mailtrail: no messages match\n", stderr);
		return CLI_NOT_FOUND;
	}
	return CLI_FOUND;
}
