/*
 * `mailtrail dovecot-watch`: follows Dovecot's log for the lines that the
 * push_notification Lua script (mailbox/mailtrail.lua) writes, and turns
 * reads and deletions in a mailbox into READ and DELETE events.
 *
 * A mailbox entry is tied to its message by the X-Mailtrail-ID in the
 * stored copy, read with doveadm (as root) when Dovecot reports the
 * delivery or the copy, and verified with the site key: nothing a sender
 * chooses (a Message-ID) attributes a read. The entry's coordinates (user,
 * UIDVALIDITY, UID) then point to the ID (P mbox:...), so that a read or an
 * expunge reported later, when the message may be gone, still finds it.
 *
 * `mailtrail dovecot-config` prints the Dovecot side.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "../common/clock.h"
#include "../common/config.h"
#include "../common/trackid.h"
#include "../delivery/delivery.h"
#include "../geo/geo.h"
#include "../mailbox/dovecot.h"
#include "../state/events.h"

#define STATE_DEFAULT "/var/lib/mailtrail/dovecot.state"
#define LUA_DEFAULT "/usr/share/mailtrail/dovecot/mailtrail.lua"
#define POLL_MS 200
#define RETRY_MS 1000
#define DOVEADM_TIMEOUT_MS 5000
#define DOVEADM_OUT_MAX 8192


/* Copies made in a session: an expunge of the same message in that
 * session afterwards is a move (IMAP MOVE), not a deletion. */
#define MOVES_KEPT 64

struct recent_copy {
	char session[MT_DOVE_SESSION_MAX];
	char id[MT_ID_SIZE];
};

struct dw {
	struct recent_copy copies[MOVES_KEPT];
	unsigned ncopies;		/* ring: next slot is ncopies % KEPT */
	struct cli *c;
	struct mt_events *ev;
	struct mt_geo *geo;
	const char *state;
	const char *doveadm_conf;	/* doveadm -c FILE, NULL: default */
	unsigned long long lines, events, reads, deletes, untraced, bad;
	unsigned long long foreign;
};

/* ---- the ID in the stored message ----------------------------------- */

/*
 * Runs doveadm fetch for one message (no shell: every argument is passed
 * as is, hostile mailbox names included) and reads its X-Mailtrail-ID.
 * 1 with id (verified), 0 none or not ours, -1 doveadm failed.
 */
static int
fetch_id(struct dw *w, const struct mt_dove_event *e, char id[MT_ID_SIZE])
{
	char uid[32], err[256], *p, *v;
	const char *argv[16];
	struct cli_output out;
	int n = 0, rc;

	snprintf(uid, sizeof(uid), "%lu", e->uid);
	argv[n++] = "doveadm";
	if (w->doveadm_conf != NULL) {
		argv[n++] = "-c";
		argv[n++] = w->doveadm_conf;
	}
	argv[n++] = "fetch";
	argv[n++] = "-u";
	argv[n++] = e->user;
	argv[n++] = "hdr.x-mailtrail-id";
	argv[n++] = "mailbox";
	argv[n++] = e->box;
	argv[n++] = "uid";
	argv[n++] = uid;
	argv[n] = NULL;
	if (cli_spawn(argv, 0, &out, DOVEADM_OUT_MAX, DOVEADM_TIMEOUT_MS, err,
	    sizeof(err)) != 0) {
		free(out.s);
		return -1;
	}
	/* "hdr.x-mailtrail-id: VALUE" (the first header of that name). */
	rc = 0;
	if ((p = strstr(out.s, "hdr.x-mailtrail-id:")) != NULL) {
		v = p + strlen("hdr.x-mailtrail-id:");
		while (*v == ' ' || *v == '\t')
			v++;
		v[strcspn(v, " \t\r\n")] = '\0';
		rc = mt_id_verify(w->c->cfg->secret, w->c->cfg->secret_len, v,
		    strlen(v), id) ? 1 : 0;
	}
	free(out.s);
	return rc;
}

/* ---- the mailbox map ------------------------------------------------- */

static char *
mbox_key(struct dw *w, const struct mt_dove_event *e)
{
	char arg[MT_DOVE_USER_MAX + 48];

	snprintf(arg, sizeof(arg), "%s:%lu:%lu", e->user, e->uidvalidity,
	    e->uid);
	return cli_key(w->c, MT_KEY_MBOX, arg, strlen(arg));
}

/* Remembers where the message lies: the entry points to its ID. */
static int
map_put(struct dw *w, const struct mt_dove_event *e, const char *id)
{
	char *key = mbox_key(w, e);
	redisReply *r = cli_command(w->c, key, "SET %s %s EX %ld", key, id,
	    w->c->schema.ttl);

	free(key);
	if (r == NULL)
		return -1;
	freeReplyObject(r);
	return 0;
}

/* 1 with id, 0 unknown, -1 Redis failed. */
static int
map_get(struct dw *w, const struct mt_dove_event *e, char id[MT_ID_SIZE])
{
	char *key = mbox_key(w, e);
	redisReply *r = cli_command(w->c, key, "GET %s", key);
	int rc = 0;

	free(key);
	if (r == NULL)
		return -1;
	if (r->type == REDIS_REPLY_STRING && r->len < MT_ID_SIZE &&
	    cli_id_plausible(r->str, r->len)) {
		memcpy(id, r->str, r->len);
		id[r->len] = '\0';
		rc = 1;
	}
	freeReplyObject(r);
	return rc;
}

/* ---- events ---------------------------------------------------------- */

/* The reader's address and place, as much as ReaderLocation keeps. */
static void
add_reader(struct dw *w, json_t *o, const char *ip)
{
	struct mt_geo_loc loc;
	enum mt_reader_loc keep = w->c->cfg->reader_location;

	if (ip[0] == '\0' || keep == MT_READER_NONE)
		return;
	if (keep == MT_READER_CITY)
		json_object_set_new(o, "ip", json_string(ip));
	if (w->geo == NULL || mt_geo_lookup(w->geo, ip, &loc) != 1 ||
	    !loc.found)
		return;
	if (keep == MT_READER_CITY) {
		json_object_set_new(o, "lat", json_real(loc.lat));
		json_object_set_new(o, "lon", json_real(loc.lon));
	}
	if (loc.cc[0])
		json_object_set_new(o, "cc", json_string(loc.cc));
	if (keep == MT_READER_CITY && loc.city[0])
		json_object_set_new(o, "city", json_string(loc.city));
}

/* READ or DELETE for the user as recipient; 0, or -1 (Redis: retry). */
static int
record(struct dw *w, const struct mt_dove_event *e, const char *id, int read)
{
	const char *name = read ? "READ" : "DELETE";
	char fp[MT_EVENTS_FP_SIZE], *json;
	struct mt_event ev;
	enum mt_event_result res;
	json_t *o = json_object();
	int rc;

	json_object_set_new(o, "t", json_integer(e->t_ms >= 0 ? e->t_ms :
	    mt_clock_ms(CLOCK_REALTIME)));
	json_object_set_new(o, "ev", json_string(name));
	json_object_set_new(o, "rcpt", json_string(e->user));
	json_object_set_new(o, "via", json_string(e->service));
	json_object_set_new(o, "user", json_string(e->user));
	json_object_set_new(o, "box", json_string(e->box));
	if (read)
		add_reader(w, o, e->rip);
	json = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	/* One per recipient, whichever way it was learnt first. */
	mt_events_once_per_rcpt(name, e->user, fp);
	ev = (struct mt_event){ .find = MT_FIND_ID, .key = id, .ev = name,
	    .rcpt = e->user, .status = read ? "read" : "deleted",
	    .only_known = 1, .fingerprint = fp, .json = json ? json : "{}" };
	rc = mt_events_record(w->ev, &ev, 1, &res, NULL, w->c->err,
	    sizeof(w->c->err));
	free(json);
	if (rc == 0 && (res == MT_EV_CHANGED || res == MT_EV_RECORDED)) {
		w->events++;
		if (read)
			w->reads++;
		else
			w->deletes++;
	}
	return rc;
}

static int
moved(const struct dw *w, const struct mt_dove_event *e, const char *id)
{
	for (unsigned i = 0; i < MOVES_KEPT && i < w->ncopies; i++)
		if (strcmp(w->copies[i].session, e->session) == 0 &&
		    strcmp(w->copies[i].id, id) == 0)
			return 1;
	return 0;
}

/* One event line; 0, or -1 when Redis failed (the line is tried again). */
static int
handle(struct dw *w, const struct mt_dove_event *e)
{
	char id[MT_ID_SIZE];
	int rc;

	switch (e->ev) {
	case MT_DOVE_DELIVER:
	case MT_DOVE_APPEND:
		/* A new entry: which traced message is it a copy of? */
		rc = fetch_id(w, e, id);
		if (rc < 0) {
			fprintf(stderr, "mailtrail dovecot-watch: warning: "
			    "doveadm fetch for %s uid %lu failed; that copy is "
			    "not traced\n", e->user, e->uid);
			return 0;
		}
		if (rc == 0) {
			w->untraced++;
			return 0;
		}
		if (e->ev == MT_DOVE_APPEND) {
			struct recent_copy *k =
			    &w->copies[w->ncopies++ % MOVES_KEPT];

			snprintf(k->session, sizeof(k->session), "%s",
			    e->session);
			snprintf(k->id, sizeof(k->id), "%s", id);
		}
		return map_put(w, e, id);
	case MT_DOVE_READ:
	case MT_DOVE_TRASH:
	case MT_DOVE_EXPUNGE:
		if ((rc = map_get(w, e, id)) < 0)
			return -1;
		if (rc == 0 && e->ev == MT_DOVE_READ && fetch_id(w, e, id) == 1)
			rc = 1;		/* delivered before we followed */
		if (rc == 0) {
			w->untraced++;
			return 0;
		}
		if (e->ev == MT_DOVE_EXPUNGE && moved(w, e, id))
			return 0;	/* it lives on in the other folder */
		/*
		 * POP3's download-and-delete (RETR, DELE, QUIT) reports only
		 * the expunge: the retrieval was the server's last sight of it.
		 */
		if (e->ev == MT_DOVE_EXPUNGE && strcmp(e->service, "pop3") == 0)
			return record(w, e, id, 1);
		return record(w, e, id, e->ev == MT_DOVE_READ);
	}
	return 0;
}

static int
take_line(struct dw *w, const char *line, size_t len)
{
	struct mt_dove_event e;

	w->lines++;
	switch (mt_dove_parse(line, len, mt_clock_ms(CLOCK_REALTIME), &e)) {
	case MT_DOVE_EVENT:
		return handle(w, &e);
	case MT_DOVE_BAD:
		cli_warn_line("dovecot-watch", ++w->bad, "malformed mailtrail "
		    "line", "malformed lines", line, len);
		return 0;
	case MT_DOVE_FOREIGN:
		cli_warn_line("dovecot-watch", ++w->foreign, "ignoring a "
		    "mailtrail line not logged by Dovecot", "such lines", line,
		    len);
		return 0;
	default:
		return 0;
	}
}

static void
save_state(struct dw *w, struct mt_follow *f)
{
	if (w->state != NULL && mt_follow_save(f, w->state) != 0)
		fprintf(stderr, "mailtrail dovecot-watch: warning: cannot save "
		    "the position to %s: %s\n", w->state, f->err);
}

static int
follow_loop(struct dw *w, struct mt_follow *f, int once)
{
	const char *line;
	size_t len;
	int r, cut;
	off_t saved = f->off;

	while (!cli_stop_requested) {
		r = mt_follow_next(f, &line, &len, &cut);
		if (r < 0) {
			fprintf(stderr, "mailtrail dovecot-watch: %s\n", f->err);
			return CLI_FAIL;
		}
		if (r > 0 && !cut) {
			/* Redis away: the same line again, nothing skipped. */
			while (take_line(w, line, len) != 0) {
				fprintf(stderr, "mailtrail dovecot-watch: warning: "
				    "%s; %s\n", w->c->err, once ? "giving up" :
				    "retrying in 1s");
				if (once || cli_stop_requested)
					return CLI_FAIL;
				cli_sleep_ms(RETRY_MS);
			}
			continue;
		}
		if (r > 0)
			continue;	/* overlong: no line of ours */
		if (f->off != saved) {
			save_state(w, f);
			saved = f->off;
		}
		if (once)
			break;
		cli_sleep_ms(POLL_MS);
	}
	save_state(w, f);
	return CLI_FOUND;
}

int
cmd_dovecot_watch(struct cli *c, int argc, char **argv)
{
	const struct cli_command *cmd = cli_find_command(argv[0]);
	struct dw w = { .c = c, .state = STATE_DEFAULT };
	struct mt_follow f;
	const char *path = "/var/log/mail.log";
	char err[512];
	int i, once = 0, rc;

	for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
		if (strcmp(argv[i], "--once") == 0)
			once = 1;
		else if (strcmp(argv[i], "--state") == 0 && i + 1 < argc)
			w.state = argv[++i];
		else if (strcmp(argv[i], "--no-state") == 0)
			w.state = NULL;
		else if (strcmp(argv[i], "--doveadm-config") == 0 && i + 1 < argc)
			w.doveadm_conf = argv[++i];
		else if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		} else
			return cli_usage_error(cmd, "%s: unknown option or "
			    "missing value", argv[i]);
	}
	if (argc - i > 1)
		return cli_usage_error(cmd, "expects at most one log file");
	if (i < argc)
		path = argv[i];
	/* The site key verifies the IDs found in mailboxes. */
	if ((c->cfg = mt_config_load(c->config_path, 1, err, sizeof(err))) ==
	    NULL) {
		fprintf(stderr, "mailtrail: %s\n", err);
		return CLI_FAIL;
	}
	if (cli_connect(c) != 0)
		return cli_fail(c);
	if ((w.ev = mt_events_new(c->cfg, c->err, sizeof(c->err))) == NULL)
		return cli_fail(c);
	if (c->cfg->n_geodb > 0 && (w.geo = mt_geo_open(c->cfg->geodb,
	    c->cfg->n_geodb, err, sizeof(err))) == NULL)
		fprintf(stderr, "mailtrail dovecot-watch: warning: %s; readers "
		    "get no place\n", err);
	if (mt_follow_open(&f, path, w.state) != 0) {
		fprintf(stderr, "mailtrail dovecot-watch: %s\n", f.err);
		mt_events_free(w.ev);
		mt_geo_free(w.geo);
		return CLI_FAIL;
	}
	cli_catch_stop();
	rc = follow_loop(&w, &f, once);
	mt_follow_close(&f);
	if (c->json)
		printf("{\"lines\":%llu,\"events\":%llu,\"reads\":%llu,"
		    "\"deletes\":%llu,\"untraced\":%llu,\"malformed\":%llu,"
		    "\"foreign\":%llu}\n", w.lines, w.events, w.reads,
		    w.deletes, w.untraced, w.bad, w.foreign);
	else
		fprintf(stderr, "mailtrail dovecot-watch: %llu lines, %llu "
		    "events (%llu reads, %llu deletions), %llu of untraced "
		    "mail, %llu malformed, %llu foreign\n", w.lines, w.events,
		    w.reads, w.deletes, w.untraced, w.bad, w.foreign);
	mt_events_free(w.ev);
	mt_geo_free(w.geo);
	return rc;
}

int
cmd_dovecot_config(struct cli *c, int argc, char **argv)
{
	const struct cli_command *cmd = cli_find_command(argv[0]);
	const char *lua = LUA_DEFAULT;
	char err[512];
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--lua") == 0 && i + 1 < argc)
			lua = argv[++i];
		else
			return cli_usage_error(cmd, "%s: unknown option or "
			    "missing value", argv[i]);
	}
	if (c->cfg == NULL && (c->cfg = mt_config_load(c->config_path, 0, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "mailtrail: %s\n", err);
		return CLI_FAIL;
	}
	printf("# Generated by `mailtrail dovecot-config` from %s.\n"
	    "# Put it in /etc/dovecot/conf.d/95-mailtrail.conf and reload\n"
	    "# Dovecot; run `mailtrail dovecot-watch` (as root: it reads the\n"
	    "# X-Mailtrail-ID of delivered copies with doveadm) on the log\n"
	    "# Dovecot writes to.\n"
	    "mail_plugins = $mail_plugins notify push_notification mail_lua "
	    "push_notification_lua\n"
	    "plugin {\n"
	    "  push_notification_driver = lua:file=%s\n"
	    "}\n", c->cfg->path, lua);
	return CLI_FOUND;
}
