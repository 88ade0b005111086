/*
 * `mailtrail logwatch [--state FILE] [--once] [--journal[=DIR]] [FILE|-]`:
 * follows Postfix's log, or its entries in the systemd journal, and turns
 * delivery lines of tracked mail into SEND / DEFER / BOUNCE events. Lines
 * are taken in batches: one pipelined queue-ID lookup, one pipelined script
 * call per batch, then the position (file offset or journal cursor) is
 * saved, so a restart resumes after the last applied batch (Redis drops
 * what it already has).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/clock.h"
#include "cli.h"
#include "../common/config.h"
#include "../delivery/delivery.h"
#include "../route/route.h"
#include "../geo/geo.h"
#include "../state/events.h"

#define BATCH 512
#define POLL_MS 200
#define RETRY_MS 1000
#define LOG_DEFAULT "/var/log/mail.log"

struct lw_counts {
	unsigned long long lines, results, tracked, written, dup, bad, other;
	unsigned long long ignored;	/* results from foreign syslog tags */
};

struct lw {
	struct cli *c;
	struct mt_events *ev;
	const char *state;
	struct mt_dlv *dlv;		/* BATCH results waiting */
	char (*fp)[MT_EVENTS_FP_SIZE];	/* their fingerprints */
	size_t n;
	char **names;			/* syslog names whose results count */
	size_t n_names, n_own;		/* the last n_own are malloc'd */
	struct mt_routes routes;	/* Route lines: which service is which */
	struct mt_geo *geo;		/* GeoDB: destinations' places, or NULL */
	int64_t geo_checked;		/* monotonic ms of the last refresh */
	off_t saved_off;		/* what the state file says */
	ino_t saved_ino;
	struct lw_counts k;
};

/* Where the lines come from: a log file (or stdin), or the journal. */
struct lw_src {
	struct mt_follow f;
	struct mt_journal *jr;		/* NULL: f */
};

/*
 * A delivery result whose tag is no Postfix delivery program of ours: any
 * local user can write one with logger(1), so it changes nothing.
 */
static void
note_foreign(struct lw *w, const char *line, size_t len)
{
	cli_warn_line("logwatch", ++w->k.ignored, "ignoring a delivery line "
	    "not written by a Postfix delivery program of PostfixSyslogNames",
	    "such lines", line, len);
}

static void
note_bad(struct lw *w, const char *line, size_t len)
{
	cli_warn_line("logwatch", ++w->k.bad, "cannot parse line",
	    "unparsable lines", line, len);
}

/*
 * postsuper -r gave a tracked message a new queue ID (a scheduled message
 * released): the new ID gets its own P"qid:" key, so the delivery lines
 * that follow join the record. 0, or -1 when Redis failed.
 */
static int
apply_requeue(struct lw *w, const struct mt_dlv *d)
{
	char *old = cli_key(w->c, MT_KEY_QID, d->orig_qid, strlen(d->orig_qid));
	char *new = cli_key(w->c, MT_KEY_QID, d->qid, strlen(d->qid));
	redisReply *r = cli_command(w->c, old, "GET %s", old);
	int rc = r == NULL ? -1 : 0;

	if (r != NULL && r->type == REDIS_REPLY_STRING &&
	    cli_id_plausible(r->str, r->len)) {
		redisReply *s = cli_command(w->c, new, "SET %s %b EX %ld", new,
		    r->str, r->len, w->c->schema.ttl);

		rc = s == NULL ? -1 : 0;
		w->k.tracked++;
		w->k.written += s != NULL;
		freeReplyObject(s);
	}
	freeReplyObject(r);
	free(old);
	free(new);
	return rc;
}

/* Records the results from..to-1 of the batch (no requeue among them). */
static int
apply_results(struct lw *w, size_t from, size_t to)
{
	char (*ids)[MT_EVENTS_ID_MAX + 1] = calloc(BATCH, sizeof(*ids));
	struct mt_event e[BATCH];
	enum mt_event_result res[BATCH];
	char *json[BATCH];
	size_t i, m = 0;
	int rc_ok = -1;

	if (ids == NULL) {
		snprintf(w->c->err, sizeof(w->c->err), "out of memory");
		return -1;
	}
	for (i = from; i < to; i++) {
		const struct mt_dlv *d = &w->dlv[i];

		json[m] = mt_dlv_event_json(d, d->t_ms >= 0 ? d->t_ms
		    : mt_clock_ms(CLOCK_REALTIME));
		if (json[m] == NULL)
			continue;
		e[m] = (struct mt_event){
			.find = MT_FIND_QID, .key = d->qid,
			.ev = mt_dlv_event_name(d->status),
			.rcpt = d->rcpt, .alt_rcpt = d->orig_rcpt,
			.status = mt_dlv_status_name(d->status),
			.fingerprint = w->fp[i], .json = json[m],
		};
		m++;
	}
	if (m == 0 || mt_events_record(w->ev, e, m, res, ids, w->c->err,
	    sizeof(w->c->err)) == 0) {
		rc_ok = 0;
		for (i = 0; i < m; i++) {
			if (ids[i][0] == '\0')
				continue;	/* not mail we track */
			w->k.tracked++;
			w->k.written += res[i] == MT_EV_CHANGED ||
			    res[i] == MT_EV_RECORDED;
			w->k.dup += res[i] == MT_EV_DUPLICATE;
		}
	}
	for (i = 0; i < m; i++)
		free(json[i]);
	free(ids);
	return rc_ok;
}

/*
 * Records the batch in log order: a requeue is applied before the lines
 * after it are looked up. 0, or -1 when Redis failed (retry it all: what
 * was applied is dropped as seen).
 */
static int
apply_batch(struct lw *w)
{
	size_t from = 0;

	for (size_t i = 0; i <= w->n; i++) {
		if (i < w->n && w->dlv[i].orig_qid[0] == '\0')
			continue;
		if (i > from && apply_results(w, from, i) != 0)
			return -1;
		if (i < w->n && apply_requeue(w, &w->dlv[i]) != 0)
			return -1;
		from = i + 1;
	}
	return 0;
}

/* The position after the lines taken so far, when it moved. */
static void
save_position(struct lw *w, struct lw_src *s)
{
	struct mt_follow *f = &s->f;
	char err[256];

	if (s->jr != NULL) {
		if (mt_journal_save(s->jr, w->state) != 0)
			fprintf(stderr, "mailtrail logwatch: warning: %s\n",
			    s->jr->err);
		return;
	}
	if (f->off == w->saved_off && f->ino == w->saved_ino)
		return;
	w->saved_off = f->off;
	w->saved_ino = f->ino;
	if (mt_follow_save(f, w->state) != 0) {
		snprintf(err, sizeof(err), "%s", strerror(errno));
		fprintf(stderr, "mailtrail logwatch: warning: cannot save the "
		    "position to %s: %s\n", w->state, err);
	}
}

/* Applies the batch (retrying while Redis is away unless once), saves the
 * position. 0, or -1 to give up. */
static int
flush_batch(struct lw *w, struct lw_src *s, int once)
{
	while (w->n > 0) {
		if (apply_batch(w) == 0)
			break;
		fprintf(stderr, "mailtrail logwatch: warning: %s; %s\n",
		    w->c->err, once ? "giving up" : "retrying in 1s");
		if (once || cli_stop_requested)
			return -1;
		cli_sleep_ms(RETRY_MS);
	}
	w->n = 0;
	save_position(w, s);
	return 0;
}

/* The route whose transport logged d (syslog_name postfix-NAME), if any. */
static void
name_route(const struct lw *w, struct mt_dlv *d)
{
	const char *slash = strchr(d->service, '/');
	size_t n = slash ? (size_t)(slash - d->service) : 0;

	if (n <= 8 || strncmp(d->service, "postfix-", 8) != 0)
		return;
	for (size_t i = 0; i < w->routes.n; i++) {
		const struct mt_route *r = &w->routes.v[i];

		if (strlen(r->name) == n - 8 &&
		    memcmp(r->name, d->service + 8, n - 8) == 0) {
			snprintf(d->route, sizeof(d->route), "%s", r->name);
			snprintf(d->route_ip, sizeof(d->route_ip), "%s",
			    r->bind[0] ? r->bind : r->bind6);
			return;
		}
	}
}

/*
 * Where the receiving server is, when the GeoDB knows its address. Files
 * an updater replaced are taken up within a minute, as the milter does.
 */
static void
place(struct lw *w, struct mt_dlv *d)
{
	struct mt_geo_loc loc;
	int64_t now = mt_clock_ms(CLOCK_MONOTONIC);
	char err[256];

	if (w->geo != NULL && now - w->geo_checked >= 60000) {
		w->geo_checked = now;
		if (mt_geo_refresh(w->geo, 0, err, sizeof(err)) < 0)
			fprintf(stderr, "mailtrail logwatch: GeoDB: cannot open "
			    "the new file, keeping the old one: %s\n", err);
	}
	d->have_place = 0;
	if (w->geo == NULL || d->ip[0] == '\0' ||
	    mt_geo_lookup(w->geo, d->ip, &loc) != 1 || !loc.found)
		return;
	d->have_place = 1;
	d->lat = loc.lat;
	d->lon = loc.lon;
	snprintf(d->cc, sizeof(d->cc), "%s", loc.cc);
	snprintf(d->city, sizeof(d->city), "%s", loc.city);
}

/* A journal entry of a local user's process that reads as a delivery
 * result: the identifier is the writer's claim, _UID is journald's. */
static void
note_untrusted(struct lw *w, const char *line, size_t len)
{
	cli_warn_line("logwatch", ++w->k.ignored, "ignoring a delivery line "
	    "that a process of neither root nor user postfix wrote (the "
	    "journal's _UID)", "such lines", line, len);
}

static void
take_line(struct lw *w, const char *line, size_t len, int cut, int untrusted)
{
	struct mt_dlv *d = &w->dlv[w->n];
	enum mt_dlv_kind r;

	w->k.lines++;
	r = cut ? MT_DLV_BAD : mt_dlv_parse(line, len,
	    mt_clock_ms(CLOCK_REALTIME), w->names, w->n_names, d);
	switch (r) {
	case MT_DLV_BAD:
		note_bad(w, line, len);
		return;
	case MT_DLV_OTHER:
		w->k.other++;
		return;
	case MT_DLV_FOREIGN:
		note_foreign(w, line, len);
		return;
	case MT_DLV_REQUEUE:
	case MT_DLV_RESULT:
		if (untrusted) {
			note_untrusted(w, line, len);
			return;
		}
		break;
	}
	w->k.results += r == MT_DLV_RESULT;
	name_route(w, d);
	place(w, d);
	mt_events_fingerprint(line, len, w->fp[w->n]);
	w->n++;
}

/*
 * The next line of either source: 1, 0 at the end for now, -1 with the
 * error printed. A journal entry that makes no line the parser may read
 * (binary message, unsafe identifier) is handed out as cut: counted and
 * quoted as unparsable.
 */
static int
next_line(struct lw_src *s, const char **line, size_t *len, int *cut,
    int *untrusted)
{
	enum mt_jline_kind kind;
	int r;

	*untrusted = 0;
	if (s->jr == NULL) {
		r = mt_follow_next(&s->f, line, len, cut);
		if (r < 0)
			fprintf(stderr, "mailtrail logwatch: %s\n", s->f.err);
		return r;
	}
	r = mt_journal_next(s->jr, line, len, &kind);
	if (r < 0)
		fprintf(stderr, "mailtrail logwatch: %s\n", s->jr->err);
	*untrusted = r > 0 && kind == MT_JLINE_UNTRUSTED;
	*cut = r > 0 && kind != MT_JLINE_OK && kind != MT_JLINE_UNTRUSTED;
	return r;
}

/* Nothing new: waits for more (0), or says the source is done (1). */
static int
wait_more(struct lw_src *s, int once)
{
	if (once || (s->jr == NULL && s->f.path == NULL))
		return 1;
	if (s->jr == NULL) {
		cli_sleep_ms(POLL_MS);
		return 0;
	}
	if (mt_journal_wait(s->jr, POLL_MS) != 0) {
		fprintf(stderr, "mailtrail logwatch: %s\n", s->jr->err);
		return -1;
	}
	return 0;
}

static int
follow_loop(struct lw *w, struct lw_src *s, int once)
{
	const char *line;
	size_t len;
	int r, cut, untrusted, more, status = CLI_FOUND;

	while (!cli_stop_requested) {
		r = next_line(s, &line, &len, &cut, &untrusted);
		if (r < 0) {
			status = CLI_FAIL;
			break;
		}
		if (r > 0) {
			take_line(w, line, len, cut, untrusted);
			if (w->n < BATCH)
				continue;
		}
		if (flush_batch(w, s, once) != 0) {
			status = CLI_FAIL;
			break;
		}
		if (r == 0 && (more = wait_more(s, once)) != 0) {
			status = more < 0 ? CLI_FAIL : status;
			break;
		}
	}
	if (status == CLI_FOUND && flush_batch(w, s, 1) != 0)
		status = CLI_FAIL;
	return status;
}

static void
report(const struct lw *w)
{
	json_t *o;

	if (w->c->json) {
		o = json_object();
		json_object_set_new(o, "lines", json_integer((json_int_t)w->k.lines));
		json_object_set_new(o, "results", json_integer((json_int_t)w->k.results));
		json_object_set_new(o, "tracked", json_integer((json_int_t)w->k.tracked));
		json_object_set_new(o, "written", json_integer((json_int_t)w->k.written));
		json_object_set_new(o, "duplicate", json_integer((json_int_t)w->k.dup));
		json_object_set_new(o, "unparsable", json_integer((json_int_t)w->k.bad));
		json_object_set_new(o, "ignored", json_integer((json_int_t)w->k.ignored));
		cli_json_print(o);
		return;
	}
	fprintf(stderr, "mailtrail logwatch: %llu lines, %llu delivery results, "
	    "%llu of tracked mail, %llu events written, %llu duplicates, "
	    "%llu unparsable, %llu ignored (not from a Postfix delivery "
	    "program)\n", w->k.lines, w->k.results, w->k.tracked,
	    w->k.written, w->k.dup, w->k.bad, w->k.ignored);
}

/*
 * PostfixSyslogNames, plus postfix-NAME for every Route: the syslog_name
 * `mailtrail postfix-config --master` gives each route's smtp transport.
 * Routes that do not load cost only their names, with a warning.
 */
static int
load_names(struct lw *w)
{
	const struct mt_config *cfg = w->c->cfg;
	struct mt_routes *rs = &w->routes;
	char err[512];
	size_t i, n;

	if (mt_routes_load(cfg, rs, err, sizeof(err)) < 0) {
		fprintf(stderr, "mailtrail logwatch: warning: %s; only "
		    "PostfixSyslogNames count\n", err);
		mt_routes_free(rs);
		memset(rs, 0, sizeof(*rs));
	}
	w->names = calloc(cfg->n_postfix_syslog_names + rs->n + 1,
	    sizeof(*w->names));
	if (w->names == NULL)
		return -1;
	for (i = 0; i < cfg->n_postfix_syslog_names; i++)
		w->names[w->n_names++] = cfg->postfix_syslog_names[i];
	for (i = 0; i < rs->n; i++) {
		if (asprintf(&w->names[w->n_names], "postfix-%s",
		    rs->v[i].name) < 0)
			break;
		w->n_names++;
		w->n_own++;
	}
	n = rs->n;
	return i == n ? 0 : -1;
}

static void
free_names(struct lw *w)
{
	for (size_t i = w->n_names - w->n_own; i < w->n_names; i++)
		free(w->names[i]);
	free(w->names);
}

/*
 * Which source: --journal[=DIR] (a directory operand also names DIR), a
 * FILE or "-", and with neither the default log when it exists, else the
 * journal: Debian without rsyslog has no /var/log/mail.log, and Postfix's
 * lines are in the journal only. 0, or the usage error's status.
 */
static int
pick_source(const struct cli_command *cmd, int argc, char **argv, int i,
    int journal, const char **path, const char **jdir)
{
	if (argc - i > 1)
		return cli_usage_error(cmd, "expects at most one log file or "
		    "journal directory");
	if (i < argc && journal && *jdir != NULL)
		return cli_usage_error(cmd, "--journal=DIR and a directory: "
		    "give one");
	if (i < argc)
		*(journal ? jdir : path) = argv[i];
	if (journal || *path != NULL)
		return 0;
	if (access(LOG_DEFAULT, F_OK) == 0 || errno != ENOENT) {
		*path = LOG_DEFAULT;
		return 0;
	}
	fprintf(stderr, "mailtrail logwatch: %s does not exist; following the "
	    "systemd journal\n", LOG_DEFAULT);
	return 0;
}

static int
open_source(struct lw_src *s, const char *path, const char *jdir,
    const char *state)
{
	if (path != NULL) {
		if (mt_follow_open(&s->f, path, state) == 0)
			return 0;
		fprintf(stderr, "mailtrail logwatch: %s\n", s->f.err);
		mt_follow_close(&s->f);
		return -1;
	}
	if ((s->jr = malloc(sizeof(*s->jr))) == NULL) {
		fprintf(stderr, "mailtrail logwatch: out of memory\n");
		return -1;
	}
	if (mt_journal_open(s->jr, jdir, state) != 0) {
		fprintf(stderr, "mailtrail logwatch: %s\n", s->jr->err);
		mt_journal_close(s->jr);
		free(s->jr);
		s->jr = NULL;
		return -1;
	}
	if (s->jr->warn[0] != '\0')
		fprintf(stderr, "mailtrail logwatch: warning: %s\n", s->jr->warn);
	return 0;
}

static void
close_source(struct lw_src *s)
{
	if (s->jr == NULL) {
		mt_follow_close(&s->f);
		return;
	}
	mt_journal_close(s->jr);
	free(s->jr);
	s->jr = NULL;
}

int
cmd_logwatch(struct cli *c, int argc, char **argv)
{
	const struct cli_command *cmd = cli_find_command(argv[0]);
	struct lw w = { .c = c, .state = CLI_LOGWATCH_STATE };
	struct lw_src src = { .jr = NULL };
	const char *path = NULL, *jdir = NULL;
	int i, once = 0, journal = 0, rc;

	for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
		if (strcmp(argv[i], "--once") == 0)
			once = 1;
		else if (strcmp(argv[i], "--state") == 0 && i + 1 < argc)
			w.state = argv[++i];
		else if (strcmp(argv[i], "--no-state") == 0)
			w.state = NULL;
		else if (strcmp(argv[i], "--journal") == 0) {
			journal = 1;
			/* "--journal DIR": with the journal the one operand
			 * is its directory, so it may come before options. */
			if (i + 1 < argc && argv[i + 1][0] != '-')
				jdir = argv[++i];
		} else if (strncmp(argv[i], "--journal=", 10) == 0 &&
		    argv[i][10] != '\0') {
			journal = 1;
			jdir = argv[i] + 10;
		} else if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		} else
			return cli_usage_error(cmd, "%s: unknown option or "
			    "missing value", argv[i]);
	}
	if ((rc = pick_source(cmd, argc, argv, i, journal, &path, &jdir)) != 0)
		return rc;
	if (path != NULL && strcmp(path, "-") == 0)
		w.state = NULL;		/* a pipe has no position to resume */
	if (cli_connect(c) != 0)
		return cli_fail(c);
	w.ev = mt_events_new(c->cfg, c->err, sizeof(c->err));
	if (w.ev == NULL)
		return cli_fail(c);
	if (c->cfg->n_geodb > 0 && (w.geo = mt_geo_open(c->cfg->geodb,
	    c->cfg->n_geodb, c->err, sizeof(c->err))) == NULL) {
		mt_events_free(w.ev);
		return cli_fail(c);
	}
	w.dlv = calloc(BATCH, sizeof(*w.dlv));
	w.fp = calloc(BATCH, sizeof(*w.fp));
	rc = CLI_FAIL;
	if (load_names(&w) != 0 || w.dlv == NULL || w.fp == NULL) {
		fprintf(stderr, "mailtrail logwatch: out of memory\n");
		goto out;
	}
	if (open_source(&src, path, jdir, w.state) != 0)
		goto out;
	cli_catch_stop();
	rc = follow_loop(&w, &src, once);
	report(&w);
	close_source(&src);
out:
	free(w.dlv);
	free(w.fp);
	free_names(&w);
	mt_routes_free(&w.routes);
	mt_events_free(w.ev);
	mt_geo_free(w.geo);
	return rc;
}
