/*
 * `mailtrail schedule list | cancel ID | now ID | release [--watch]`:
 * scheduled mail waits in Postfix's hold queue, and the hold queue, not
 * Redis, says what waits. A held message is ours when its headers carry
 * our X-Mailtrail-Hold mark naming the queue ID it is held under, a valid
 * X-Mailtrail-ID and a Deferred-Delivery: header; anything else on hold
 * (an admin's postsuper -h, a header check) is left alone. Release is
 * postsuper -r, so the time on hold does not count against
 * maximal_queue_lifetime; logwatch follows the new queue ID.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "../common/clock.h"
#include "../common/config.h"
#include "../common/log.h"
#include "../common/trackid.h"
#include "../schedule/schedule.h"
#include "../state/events.h"

#define QUEUE_OUT_MAX (64u << 20)	/* postqueue -j of a big queue */
#define HEADERS_OUT_MAX (4u << 20)	/* postcat -h of one message */
#define RUN_TIMEOUT_MS 60000
#define WATCH_TICK_MS 1000		/* Redis is asked this often */
#define RESCAN_MS 60000			/* the hold queue at least this often */

/* One message on hold, ours or not. */
struct held {
	char qid[MT_SCHED_QID_MAX];
	int ours;
	char id[MT_ID_SIZE];
	int64_t due_ms;
	char *sender, *subject;		/* for list; untrusted text */
	json_t *rcpt;			/* array of the kept recipients */
	size_t nrcpt;
};

struct hold_queue {
	struct held *v;
	size_t n, cap;
};

struct sched {
	struct cli *c;
	struct mt_events *ev;		/* NULL while Redis is unreachable */
	struct hold_queue q;
	int64_t sched_first;		/* earliest P"sched" score seen, or -1 */
	long long sched_count;
};

static void
held_free(struct held *h)
{
	free(h->sender);
	json_decref(h->rcpt);
	free(h->subject);
}

static void
queue_clear(struct hold_queue *q)
{
	for (size_t i = 0; i < q->n; i++)
		held_free(&q->v[i]);
	q->n = 0;
}

static const struct held *
queue_find_qid(const struct hold_queue *q, const char *qid)
{
	for (size_t i = 0; i < q->n; i++)
		if (strcmp(q->v[i].qid, qid) == 0)
			return &q->v[i];
	return NULL;
}

/* Judges one held message by its headers (postcat -h -q QID). */
static void
judge(struct sched *s, const struct mt_sched_entry *e, struct held *h)
{
	const char *argv[] = { "postcat", "-h", "-q", e->qid, NULL };
	struct mt_sched_headers hd;
	struct cli_output out;
	char err[256], qid[MT_SCHED_QID_MAX];
	int64_t t;

	if (cli_spawn(argv, 0, &out, HEADERS_OUT_MAX, RUN_TIMEOUT_MS, err,
	    sizeof(err)) == 0 && mt_sched_headers_scan(out.s, out.len,
	    &hd) == 0) {
		h->subject = cli_xstrndup(hd.subject, strlen(hd.subject));
		/* The milter writes one mark and one ID, having removed any
		 * others: a second of either is not our doing. */
		h->ours = hd.n_hold == 1 && hd.n_id == 1 && hd.n_dd > 0 &&
		    mt_sched_hold_parse(hd.hold, strlen(hd.hold), &t, qid,
		    sizeof(qid)) == 0 && strcmp(qid, e->qid) == 0 &&
		    mt_id_verify(s->c->cfg->secret, s->c->cfg->secret_len,
		    hd.id, strlen(hd.id), h->id);
		h->due_ms = h->ours ? t * 1000 : 0;
	}
	free(out.s);
}

static void
keep_entry(struct held *h, const struct mt_sched_entry *e)
{
	h->rcpt = json_array();
	for (size_t i = 0; i < e->nkept; i++)
		json_array_append_new(h->rcpt, cli_json_string(e->rcpt[i],
		    strlen(e->rcpt[i])));
	h->sender = cli_xstrndup(e->sender, strlen(e->sender));
	h->nrcpt = e->nrcpt;
}

/*
 * Lists the hold queue (postqueue -j) and judges each message not judged
 * before (the previous scan's verdicts are kept by queue ID). 0 or -1.
 */
static int
scan(struct sched *s)
{
	const char *argv[] = { "postqueue", "-j", NULL };
	struct hold_queue old = s->q, nq = { 0 };
	struct mt_sched_entry *e = cli_xmalloc(sizeof(*e));
	struct cli_output out;
	char *line, *nl;

	if (cli_spawn(argv, 0, &out, QUEUE_OUT_MAX, RUN_TIMEOUT_MS, s->c->err,
	    sizeof(s->c->err)) != 0) {
		free(out.s);
		free(e);
		return -1;
	}
	for (line = out.s; *line; line = nl + 1) {
		const struct held *was;
		struct held *h;

		if ((nl = strchr(line, '\n')) == NULL)
			nl = line + strlen(line) - 1;
		if (mt_sched_entry_parse(line, (size_t)(nl - line + 1), e) != 0 ||
		    strcmp(e->queue_name, "hold") != 0)
			continue;
		if (nq.n == nq.cap) {
			nq.cap = nq.cap ? nq.cap * 2 : 16;
			nq.v = cli_xrealloc(nq.v, nq.cap * sizeof(*nq.v));
		}
		h = memset(&nq.v[nq.n++], 0, sizeof(*h));
		snprintf(h->qid, sizeof(h->qid), "%s", e->qid);
		keep_entry(h, e);
		if ((was = queue_find_qid(&old, e->qid)) != NULL) {
			h->ours = was->ours;
			h->due_ms = was->due_ms;
			memcpy(h->id, was->id, sizeof(h->id));
			h->subject = cli_xstrndup(was->subject ? was->subject :
			    "", was->subject ? strlen(was->subject) : 0);
		} else
			judge(s, e, h);
	}
	queue_clear(&old);
	free(old.v);
	s->q = nq;
	free(out.s);
	free(e);
	return 0;
}

/* ---- events ----------------------------------------------------------- */

static void
sched_forget(struct sched *s, const char *id)
{
	char *key = cli_key(s->c, MT_KEY_SCHED, NULL, 0);

	freeReplyObject(cli_command(s->c, key, "ZREM %s %s", key, id));
	free(key);
}

/* RELEASE or CANCEL, with every scheduled recipient moved to status. */
static void
record_event(struct sched *s, const struct held *h, const char *ev,
    const char *status, const char *how)
{
	char fp[MT_EVENTS_FP_SIZE], what[64], *json;
	enum mt_event_result r;
	struct mt_event e;
	json_t *o = json_object();

	json_object_set_new(o, "t", json_integer(mt_clock_ms(CLOCK_REALTIME)));
	json_object_set_new(o, "ev", json_string(ev));
	json_object_set_new(o, "qid", json_string(h->qid));
	json_object_set_new(o, "due", json_integer(h->due_ms));
	json_object_set_new(o, "by", json_string(how));
	json = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	snprintf(what, sizeof(what), "%s %s", ev, h->qid);
	mt_events_fingerprint(what, strlen(what), fp);
	e = (struct mt_event){ .find = MT_FIND_ID, .key = h->id, .ev = ev,
	    .rcpt = "", .status = status, .fingerprint = fp,
	    .json = json ? json : "{}" };
	if (s->ev == NULL || cli_connect(s->c) != 0 ||
	    mt_events_record(s->ev, &e, 1, &r, NULL, s->c->err,
	    sizeof(s->c->err)) != 0)
		mt_log(LOG_WARNING, "%s: id=%s: the %s event is not recorded: "
		    "%s", h->qid, h->id, ev, s->c->err);
	else {
		if (r == MT_EV_NO_RECORD)
			mt_log(LOG_NOTICE, "%s: id=%s: no record in Redis for "
			    "the %s event", h->qid, h->id, ev);
		sched_forget(s, h->id);
	}
	free(json);
}

/* postsuper -r (release) or -d (cancel); 1 done, 0 gone, -1 failed. */
static int
postsuper(const char *op, const struct held *h, const char *done)
{
	const char *argv[] = { "postsuper", op, h->qid, NULL };
	struct cli_output out;
	char err[256];
	int rc = -1;

	if (cli_spawn(argv, 1, &out, 65536, RUN_TIMEOUT_MS, err,
	    sizeof(err)) == 0)
		rc = strstr(out.s, done) != NULL;
	else
		mt_log(LOG_ERR, "%s: id=%s: %s %s: %s", h->qid, h->id,
		    argv[0], op, err);
	free(out.s);
	return rc;
}

/*
 * A requeued message waits in the maildrop queue for pickup, which looks
 * there only once a minute unless woken, as postdrop wakes it.
 */
static void
kick_pickup(void)
{
	const char *argv[] = { "postkick", "public", "pickup", "W", NULL };
	struct cli_output out;
	char err[256];

	if (cli_spawn(argv, 1, &out, 65536, RUN_TIMEOUT_MS, err,
	    sizeof(err)) != 0)
		mt_log(LOG_WARNING, "cannot wake pickup (%s): released mail "
		    "leaves at pickup's next look at the maildrop queue", err);
	free(out.s);
}

static int
release(struct sched *s, const struct held *h, const char *how)
{
	char due[40];
	int rc = postsuper("-r", h, "Requeued: 1");
	int64_t late = mt_clock_ms(CLOCK_REALTIME) - h->due_ms;

	cli_time_ms(due, h->due_ms);
	if (rc <= 0) {
		if (rc == 0)
			mt_log(LOG_NOTICE, "%s: id=%s: no longer on hold; not "
			    "released", h->qid, h->id);
		return -1;
	}
	kick_pickup();
	mt_log(LOG_INFO, "%s: id=%s, released, due=%s, late=%lldms, by=%s",
	    h->qid, h->id, due, (long long)(late > 0 ? late : 0), how);
	record_event(s, h, "RELEASE", "queued", how);
	return 0;
}

/* ---- the commands ----------------------------------------------------- */

/* Releases what is due; the number released. */
static int
release_due(struct sched *s, const char *how)
{
	int64_t now = mt_clock_ms(CLOCK_REALTIME);
	int n = 0;

	for (size_t i = 0; i < s->q.n; i++) {
		struct held *h = &s->q.v[i];

		if (!h->ours || h->due_ms > now)
			continue;
		if (release(s, h, how) == 0)
			n++;
		h->ours = 0;	/* requeued or gone: not ours to try again */
	}
	return n;
}

/* The next due time of ours, or INT64_MAX. */
static int64_t
next_due(const struct sched *s)
{
	int64_t t = INT64_MAX;

	for (size_t i = 0; i < s->q.n; i++)
		if (s->q.v[i].ours && s->q.v[i].due_ms < t)
			t = s->q.v[i].due_ms;
	return t;
}

/*
 * Has P"sched" changed since last asked (a message held since the last
 * scan)? Redis being away is no change: the periodic scan covers it.
 */
static int
sched_changed(struct sched *s)
{
	char *key;
	redisReply *r;
	int changed = 0;

	if (cli_connect(s->c) != 0)
		return 0;
	key = cli_key(s->c, MT_KEY_SCHED, NULL, 0);
	r = cli_command(s->c, key, "ZRANGE %s 0 0 WITHSCORES", key);
	if (r != NULL && r->type == REDIS_REPLY_ARRAY) {
		int64_t first = -1;
		redisReply *n;

		if (r->elements == 2 && r->element[1]->type ==
		    REDIS_REPLY_STRING)
			(void)cli_parse_i64(r->element[1]->str,
			    r->element[1]->len, &first);
		n = cli_command(s->c, key, "ZCARD %s", key);
		if (n != NULL && n->type == REDIS_REPLY_INTEGER) {
			changed = first != s->sched_first ||
			    n->integer != s->sched_count;
			s->sched_first = first;
			s->sched_count = n->integer;
		}
		freeReplyObject(n);
	}
	freeReplyObject(r);
	free(key);
	return changed;
}

static void
sleep_until(int64_t t)
{
	int64_t left = t - mt_clock_ms(CLOCK_REALTIME);

	if (left > 0 && !cli_stop_requested)
		cli_sleep_ms((int)(left > WATCH_TICK_MS ? WATCH_TICK_MS : left));
}

static int
do_release(struct sched *s, int watch)
{
	int64_t next_scan = 0;

	if (!watch) {
		if (scan(s) != 0)
			return cli_fail(s->c);
		release_due(s, "release");
		return CLI_FOUND;
	}
	cli_catch_stop();
	(void)sched_changed(s);
	while (!cli_stop_requested) {
		int64_t now = mt_clock_ms(CLOCK_REALTIME), wake;

		if ((now >= next_scan || sched_changed(s)) && scan(s) != 0)
			mt_log(LOG_WARNING, "cannot list the hold queue: %s; "
			    "trying again", s->c->err);
		if (now >= next_scan)
			next_scan = now + RESCAN_MS;
		release_due(s, "watch");
		wake = next_due(s);
		sleep_until(wake < next_scan ? wake : next_scan);
	}
	return CLI_FOUND;
}

/* The record's subject (decoded) where Redis has it, else the header's. */
static const char *
subject_of(struct sched *s, const struct held *h, redisReply **keep)
{
	char *key;

	*keep = NULL;
	if (s->c->link == NULL)
		return h->subject;
	key = cli_key(s->c, MT_KEY_RECORD, h->id, strlen(h->id));
	*keep = cli_command(s->c, key, "HGET %s subject", key);
	free(key);
	if (*keep != NULL && (*keep)->type == REDIS_REPLY_STRING)
		return (*keep)->str;
	return h->subject;
}

static int
by_due(const void *a, const void *b)
{
	const struct held *x = a, *y = b;

	return (x->due_ms > y->due_ms) - (x->due_ms < y->due_ms);
}

static int
do_list(struct sched *s)
{
	struct cli_table t;
	json_t *arr = json_array();
	char due[40];

	if (scan(s) != 0)
		return cli_fail(s->c);
	qsort(s->q.v, s->q.n, sizeof(*s->q.v), by_due);
	cli_table_init(&t, 5);
	cli_table_safe(&t, "DUE");
	cli_table_safe(&t, "ID");
	cli_table_safe(&t, "SENDER");
	cli_table_safe(&t, "RECIPIENTS");
	cli_table_safe(&t, "SUBJECT");
	for (size_t i = 0; i < s->q.n; i++) {
		const struct held *h = &s->q.v[i];
		redisReply *keep;
		const char *subj;
		struct cli_buf b = { 0 };
		size_t k;
		json_t *v;

		if (!h->ours)
			continue;
		subj = subject_of(s, h, &keep);
		cli_time_ms(due, h->due_ms);
		json_array_append_new(arr, json_pack("{s:s, s:I, s:s, s:s, "
		    "s:o, s:O, s:I, s:o}", "due", due, "due_ms",
		    (json_int_t)h->due_ms, "id", h->id, "qid", h->qid,
		    "sender", cli_json_string(h->sender, strlen(h->sender)),
		    "recipients", h->rcpt, "nrcpt", (json_int_t)h->nrcpt,
		    "subject", cli_json_string(subj ? subj : "",
		    subj ? strlen(subj) : 0)));
		cli_table_safe(&t, due);
		cli_table_safe(&t, h->id);
		cli_table_text(&t, h->sender, strlen(h->sender));
		json_array_foreach(h->rcpt, k, v) {
			if (k > 0)
				cli_buf_add(&b, ", ", 2);
			cli_buf_add(&b, json_string_value(v),
			    json_string_length(v));
		}
		if (h->nrcpt > json_array_size(h->rcpt))
			cli_buf_addf(&b, ", ... (%zu in all)", h->nrcpt);
		cli_table_text(&t, b.s ? b.s : "", b.len);
		cli_table_text(&t, subj ? subj : "", subj ? strlen(subj) : 0);
		cli_buf_free(&b);
		freeReplyObject(keep);
	}
	if (s->c->json)
		cli_json_print(arr);
	else {
		json_decref(arr);
		cli_table_print(&t, stdout, "");
	}
	cli_table_free(&t);
	return CLI_FOUND;
}

/* The held message ARG names: its ID or queue ID, or what Redis resolves. */
static const struct held *
find_held(struct sched *s, const char *arg)
{
	char id[CLI_ID_MAX + 1] = "";

	for (size_t i = 0; i < s->q.n; i++)
		if (s->q.v[i].ours && (strcmp(s->q.v[i].id, arg) == 0 ||
		    strcmp(s->q.v[i].qid, arg) == 0))
			return &s->q.v[i];
	if (s->c->link == NULL || cli_resolve(s->c, arg, id) != 1)
		return NULL;
	for (size_t i = 0; i < s->q.n; i++)
		if (s->q.v[i].ours && strcmp(s->q.v[i].id, id) == 0)
			return &s->q.v[i];
	return NULL;
}

static int
do_one(struct sched *s, const char *op, const char *arg)
{
	const struct held *h;
	char due[40];
	int rc;

	if (scan(s) != 0)
		return cli_fail(s->c);
	if ((h = find_held(s, arg)) == NULL) {
		fputs("mailtrail: not a scheduled message on hold: ", stderr);
		cli_print_escaped(stderr, arg, strlen(arg));
		fputc('\n', stderr);
		return CLI_NOT_FOUND;
	}
	if (strcmp(op, "now") == 0)
		return release(s, h, "now") == 0 ? CLI_FOUND : CLI_FAIL;
	if ((rc = postsuper("-d", h, "Deleted: 1")) <= 0)
		return rc == 0 ? CLI_NOT_FOUND : CLI_FAIL;
	cli_time_ms(due, h->due_ms);
	mt_log(LOG_INFO, "%s: id=%s, cancelled, due=%s", h->qid, h->id, due);
	record_event(s, h, "CANCEL", "cancelled", "cancel");
	return CLI_FOUND;
}

int
cmd_schedule(struct cli *c, int argc, char **argv)
{
	const struct cli_command *cmd = cli_find_command(argv[0]);
	struct sched s = { .c = c, .sched_first = -1, .sched_count = -1 };
	const char *op = argc > 1 ? argv[1] : "";
	int rc, watch = argc == 3 && strcmp(argv[2], "--watch") == 0;

	if (!((strcmp(op, "list") == 0 && argc == 2) ||
	    (strcmp(op, "release") == 0 && (argc == 2 || watch)) ||
	    ((strcmp(op, "cancel") == 0 || strcmp(op, "now") == 0) &&
	    argc == 3)))
		return cli_usage_error(cmd, "expects list, cancel ID, now ID "
		    "or release [--watch]");
	mt_log_open("mailtrail-schedule", 1);
	/* The site key tells our IDs, and so our holds, from others. */
	if ((c->cfg = mt_config_load(c->config_path, 1, c->err,
	    sizeof(c->err))) == NULL)
		return cli_fail(c);
	/* Redis away is no reason to keep mail on hold past its time. */
	if (cli_connect(c) != 0) {
		if (c->cfg == NULL)
			return cli_fail(c);
		mt_log(LOG_WARNING, "%s; releasing from the hold queue without "
		    "recording events", c->err);
	}
	s.ev = mt_events_new(c->cfg, c->err, sizeof(c->err));
	if (strcmp(op, "list") == 0)
		rc = do_list(&s);
	else if (strcmp(op, "release") == 0)
		rc = do_release(&s, watch);
	else
		rc = do_one(&s, op, argv[2]);
	queue_clear(&s.q);
	free(s.q.v);
	mt_events_free(s.ev);
	return rc;
}
