/*
 * `mailtrail mark-read ID|QUEUEID|MESSAGE-ID RECIPIENT`: records that a
 * recipient read the message, for IMAP server hooks and scripts. Goes
 * through the same events script as read receipts, so only a recipient of
 * the message can be marked and a repeated mark adds nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "cli.h"
#include "../common/text.h"
#include "../state/events.h"

static int
print_result(struct cli *c, const char *id, const char *rcpt,
    enum mt_event_result r)
{
	const char *what = r == MT_EV_CHANGED || r == MT_EV_RECORDED ? "read"
	    : r == MT_EV_DUPLICATE ? "already-read"
	    : r == MT_EV_NOT_RECIPIENT ? "not-a-recipient" : "no-record";
	json_t *o;

	if (c->json) {
		o = json_object();
		json_object_set_new(o, "id", json_string(id));
		json_object_set_new(o, "rcpt", cli_json_string(rcpt,
		    strlen(rcpt)));
		json_object_set_new(o, "result", json_string(what));
		cli_json_print(o);
	} else if (r == MT_EV_NOT_RECIPIENT || r == MT_EV_NO_RECORD) {
		fputs("mailtrail: ", stderr);
		cli_print_escaped(stderr, rcpt, strlen(rcpt));
		fprintf(stderr, " %s of %s\n", r == MT_EV_NO_RECORD ?
		    "cannot be marked: no record" : "is not a recipient", id);
	} else {
		printf("%s ", id);
		cli_print_escaped(stdout, rcpt, strlen(rcpt));
		printf(" %s\n", what);
	}
	return r == MT_EV_NOT_RECIPIENT || r == MT_EV_NO_RECORD ?
	    CLI_NOT_FOUND : CLI_FOUND;
}

int
cmd_mark_read(struct cli *c, int argc, char **argv)
{
	const struct cli_command *cmd = cli_find_command(argv[0]);
	char id[CLI_ID_MAX + 1], rcpt[512], fp[MT_EVENTS_FP_SIZE], *json;
	struct mt_events *ev;
	struct mt_event e;
	enum mt_event_result r;
	struct timeval tv;
	json_t *o;
	int i = 1, rc;

	if (i < argc && strcmp(argv[i], "--") == 0)
		i++;
	if (argc - i != 2)
		return cli_usage_error(cmd, "expects an ID and a recipient");
	if (mt_text_address(rcpt, sizeof(rcpt), argv[i + 1],
	    strlen(argv[i + 1])) == (size_t)-1 || strchr(rcpt, '@') == NULL)
		return cli_usage_error(cmd, "%s: not an address", argv[i + 1]);
	if (cli_connect(c) != 0)
		return cli_fail(c);
	rc = cli_resolve(c, argv[i], id);
	if (rc < 0)
		return cli_fail(c);
	if (rc == 0) {
		fputs("mailtrail: no message matches '", stderr);
		cli_print_escaped(stderr, argv[i], strlen(argv[i]));
		fputs("'\n", stderr);
		return CLI_NOT_FOUND;
	}
	if ((ev = mt_events_new(c->cfg, c->err, sizeof(c->err))) == NULL)
		return cli_fail(c);
	gettimeofday(&tv, NULL);
	o = json_object();
	json_object_set_new(o, "t", json_integer((json_int_t)tv.tv_sec * 1000 +
	    tv.tv_usec / 1000));
	json_object_set_new(o, "ev", json_string("READ"));
	json_object_set_new(o, "rcpt", json_string(rcpt));
	json_object_set_new(o, "via", json_string("mark-read"));
	json = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	/* One READ per recipient, whichever way it was learnt first. */
	mt_events_once_per_rcpt("READ", rcpt, fp);
	e = (struct mt_event){ .find = MT_FIND_ID, .key = id, .ev = "READ",
	    .rcpt = rcpt,
	    .status = "read", .only_known = 1, .fingerprint = fp,
	    .json = json ? json : "{}" };
	rc = mt_events_record(ev, &e, 1, &r, NULL, c->err, sizeof(c->err));
	free(json);
	mt_events_free(ev);
	if (rc != 0)
		return cli_fail(c);
	return print_result(c, id, rcpt, r);
}
