/*
 * `mailtrail [-c FILE] [--json] COMMAND ...`: global options, the table of
 * subcommands, and the one place that loads the configuration and connects
 * to Redis. Exit 0 found, 1 not found, 2 usage, configuration or Redis error.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "../common/config.h"
#include "../state/redis.h"

/* Later capabilities add their subcommands here. */
static const struct cli_command commands[] = {
	{ "status", "ID|QUEUEID|MESSAGE-ID",
	    "a message's record and each recipient's status", cmd_status },
	{ "trace", "[--geojson] ID|QUEUEID|MESSAGE-ID",
	    "timeline of events and the whole path with distances "
	    "(--geojson: as RFC 7946 GeoJSON)", cmd_trace },
	{ "map", "-o FILE.svg [--land FILE] ID|QUEUEID|MESSAGE-ID",
	    "the whole path drawn on a world map (SVG)", cmd_map },
	{ "search", "[--from ADDR] [--to ADDR] [--since T] [--until T] "
	    "[--subject TEXT] [--ip IP] [--status STATUS] [--limit N]",
	    "messages by sender and/or recipient, or the most recent, newest "
	    "first", cmd_search },
	{ "route", "list | pause NAME [REASON] | resume NAME | check [NAME]",
	    "outbound routes: health, pause and resume, DNS checks",
	    cmd_route },
	{ "postfix-config", "[--master | --main] [--global]",
	    "master.cf transports and main.cf lines for the Route lines",
	    cmd_postfix_config },
	{ "mark-read", "ID|QUEUEID|MESSAGE-ID RECIPIENT",
	    "record that RECIPIENT read the message (IMAP hooks, scripts)",
	    cmd_mark_read },
	{ "logwatch", "[--state FILE | --no-state] [--once] "
	    "[FILE | - | --journal[=DIR]]",
	    "follow Postfix's log (default /var/log/mail.log, else the "
	    "journal) into delivery events", cmd_logwatch },
	{ "dovecot-watch", "[--state FILE | --no-state] [--once] "
	    "[--doveadm-config FILE] [FILE]",
	    "follow Dovecot's log (default /var/log/mail.log) into reads and "
	    "deletions", cmd_dovecot_watch },
	{ "schedule", "list | cancel ID | now ID | release [--watch]",
	    "scheduled mail on hold: list, cancel, send now, release what is "
	    "due (as root)", cmd_schedule },
	{ "dovecot-config", "[--lua FILE]",
	    "the Dovecot conf.d snippet that reports reads", cmd_dovecot_config },
	{ "doctor", "[--postfix-config DIR] [--dovecot-config FILE] "
	    "[--state FILE]",
	    "check the whole chain and say what to fix (as root)", cmd_doctor },
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void
usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: mailtrail [-c FILE] [--json] COMMAND [ARGS]\n\n"
	    "  -c FILE   configuration (default %s)\n"
	    "  --json    JSON for programs instead of tables "
	    "(also after COMMAND)\n"
	    "  -h        this help; `mailtrail COMMAND -h` for one command\n\n"
	    "commands:\n", MT_CONFIG_DEFAULT);
	for (i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %s %s\n      %s\n", commands[i].name,
		    commands[i].args, commands[i].help);
	fprintf(f, "\nT is unix seconds, YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS][Z] "
	    "(UTC), or an age such as 30m, 2h, 7d.\n"
	    "Exit status: 0 found, 1 not found, 2 usage, configuration or "
	    "Redis error.\n");
}

static void
command_usage(FILE *f, const struct cli_command *cmd)
{
	fprintf(f, "usage: mailtrail [-c FILE] [--json] %s %s\n  %s\n",
	    cmd->name, cmd->args, cmd->help);
}

int
cli_usage_error(const struct cli_command *cmd, const char *fmt, ...)
{
	va_list ap;

	fputs("mailtrail: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (cmd != NULL)
		command_usage(stderr, cmd);
	else
		fputs("Try 'mailtrail -h' for help.\n", stderr);
	return CLI_FAIL;
}

volatile sig_atomic_t cli_stop_requested;

static void
on_stop(int sig)
{
	(void)sig;
	cli_stop_requested = 1;
}

void
cli_catch_stop(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

void
cli_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

int
cli_fail(const struct cli *c)
{
	fprintf(stderr, "mailtrail: %s\n", c->err);
	return CLI_FAIL;
}

int
cli_connect(struct cli *c)
{
	char err[256];

	if (c->link != NULL)
		return 0;
	if (c->cfg == NULL)
		c->cfg = mt_config_load(c->config_path, 0, err, sizeof(err));
	if (c->cfg == NULL) {
		snprintf(c->err, sizeof(c->err), "%s", err);
		return -1;
	}
	if (mt_schema_init(&c->schema, c->cfg) != 0) {
		snprintf(c->err, sizeof(c->err), "RedisPrefix is too long");
		return -1;
	}
	if (c->db == NULL &&
	    (c->db = mt_db_new(c->cfg, err, sizeof(err))) == NULL) {
		snprintf(c->err, sizeof(c->err), "%s", err);
		return -1;
	}
	if ((c->link = mt_db_get(c->db, err, sizeof(err))) == NULL) {
		snprintf(c->err, sizeof(c->err),
		    "cannot connect to Redis at %.200s: %s", mt_db_name(c->db),
		    err);
		return -1;
	}
	return 0;
}

const struct cli_command *
cli_find_command(const char *name)
{
	size_t i;

	for (i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* Removes --json from a subcommand's arguments (up to "--"); new argc. */
static int
take_json_flag(struct cli *c, int argc, char **argv)
{
	int i, n = 0;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			while (i < argc)
				argv[n++] = argv[i++];
			break;
		}
		if (strcmp(argv[i], "--json") == 0)
			c->json = 1;
		else
			argv[n++] = argv[i];
	}
	argv[n] = NULL;
	return n;
}

static int
wants_help(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return 1;
	return 0;
}

/* Global options; index of the subcommand, or -1 when main should exit. */
static int
parse_globals(struct cli *c, int argc, char **argv, int *rc)
{
	int i;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			*rc = CLI_FOUND;
			return -1;
		} else if (strcmp(argv[i], "--json") == 0) {
			c->json = 1;
		} else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			c->config_path = argv[++i];
		} else if (strncmp(argv[i], "-c", 2) == 0 && argv[i][2] != '\0') {
			c->config_path = argv[i] + 2;
		} else {
			*rc = cli_usage_error(NULL, "%s: unknown option or "
			    "missing value", argv[i]);
			return -1;
		}
	}
	if (i == argc) {
		*rc = cli_usage_error(NULL, "no command given");
		return -1;
	}
	return i;
}

int
main(int argc, char **argv)
{
	struct cli c;
	const struct cli_command *cmd;
	int rc = CLI_FAIL, first, n;

	memset(&c, 0, sizeof(c));
	c.config_path = MT_CONFIG_DEFAULT;
	first = parse_globals(&c, argc, argv, &rc);
	if (first < 0)
		return rc;
	cmd = cli_find_command(argv[first]);
	if (cmd == NULL) {
		fputs("mailtrail: unknown command '", stderr);
		cli_print_escaped(stderr, argv[first], strlen(argv[first]));
		fputs("'\nTry 'mailtrail -h' for help.\n", stderr);
		return CLI_FAIL;
	}
	n = take_json_flag(&c, argc - first, argv + first);
	if (wants_help(n, argv + first)) {
		command_usage(stdout, cmd);
		return CLI_FOUND;
	}
	rc = cmd->run(&c, n, argv + first);
	if (fflush(stdout) != 0 && rc == CLI_FOUND) {
		perror("mailtrail: stdout");
		rc = CLI_FAIL;
	}
	if (c.link != NULL)
		mt_db_put(c.db, c.link);
	mt_db_free(c.db);
	free(c.msgid_ids);
	if (c.cfg != NULL)
		mt_config_unref(c.cfg);
	return rc;
}
