/*
 * The `mailtrail` command: what its files share. main.c dispatches,
 * lookup.c reads Redis, show.c renders untrusted text safely, and each
 * subcommand lives in a file of its own.
 */
#ifndef MT_CLI_H
#define MT_CLI_H

#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "../state/db.h"
#include "../state/schema.h"

/* Exit codes promised by PRODUCT.md. */
enum { CLI_FOUND = 0, CLI_NOT_FOUND = 1, CLI_FAIL = 2 };

/* IDs are opaque: at most 64 of [A-Za-z0-9._-] (PRODUCT.md, headers). */
#define CLI_ID_MAX 64

struct mt_config;

struct cli {
	const char *config_path;
	int json;			/* --json */
	struct mt_config *cfg;		/* loaded on first cli_connect() */
	struct mt_db *db;
	struct mt_db_link *link;
	struct mt_schema schema;	/* key names */
	/* Set by cli_resolve for a Message-ID: every message that carried
	 * it, the first (the original) first. */
	char (*msgid_ids)[CLI_ID_MAX + 1];
	size_t n_msgid_ids;
	char err[512];			/* why the last call returned -1 */
};

struct cli_command {
	const char *name;
	const char *args;		/* synopsis after the name */
	const char *help;		/* one line */
	int (*run)(struct cli *c, int argc, char **argv);
};

/* main.c */
const struct cli_command *cli_find_command(const char *name);
int cli_connect(struct cli *c);			/* 0, or -1 with err set */
int cli_usage_error(const struct cli_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));	/* always CLI_FAIL */
int cli_fail(const struct cli *c);		/* prints err, CLI_FAIL */

/* One message as read from Redis; every string in it is untrusted. */
struct cli_msg {
	char id[CLI_ID_MAX + 1];
	redisReply *rec;	/* HGETALL P{ID}: field, value, ... */
	redisReply *rcpt;	/* its r:ADDRESS fields as address, status */
	redisReply *evraw;	/* LRANGE P{ID}:ev, NULL when not asked for */
	char *path;		/* the hop path JSON of the last RECEIVE
				 * event that has one, or NULL */
	json_t **ev;		/* the events that parsed as JSON objects */
	size_t nev;
	size_t bad;		/* malformed events or path entries skipped */
};

/* lookup.c */
int cli_id_plausible(const char *s, size_t len);
/*
 * 1 with id filled, 0 when nothing matches (note in err), -1 on error. A
 * Message-ID resolves to the first message that carried it; the others
 * are listed in c->msgid_ids.
 */
int cli_resolve(struct cli *c, const char *arg, char id[CLI_ID_MAX + 1]);
/* 1 loaded, 0 no such record, -1 error. Free with cli_msg_free. */
int cli_msg_load(struct cli *c, const char *id, int with_events,
    struct cli_msg *m);
void cli_msg_free(struct cli_msg *m);
const char *cli_msg_field(const struct cli_msg *m, const char *name,
    size_t *len);
/* Runs one command (key routes it); NULL with err set on I/O or Redis
 * error replies. */
redisReply *cli_command(struct cli *c, const char *key, const char *fmt, ...);
/* A key of the schema (exits when out of memory); free it. */
char *cli_key(const struct cli *c, enum mt_key_kind kind, const char *arg,
    size_t len);
/* The r:ADDRESS fields of an HGETALL of a record, as address, status
 * pairs (freeReplyObject frees it). */
redisReply *cli_rcpt_pairs(const redisReply *rec);
int cli_reply_is_pairs(const redisReply *r);	/* HGETALL-shaped array */
/*
 * Runs a batch; 0, or -1 with err set when Redis failed or a reply is an
 * error. The replies stay in b (mt_db_reply) until mt_db_batch_free.
 */
int cli_run(struct cli *c, struct mt_db_batch *b);

/* main.c: for the log followers (logwatch, dovecot-watch) */
extern volatile sig_atomic_t cli_stop_requested;	/* SIGTERM or SIGINT */
void cli_catch_stop(void);		/* sets it on SIGTERM and SIGINT */
void cli_sleep_ms(int ms);

/* show.c: memory, escaping, times, numbers, tables */
void cli_oom(void) __attribute__((noreturn));	/* says so, exits */
/*
 * A follower's warning about one log line, quoted (it may be someone's
 * attempt at a forgery): "mailtrail WHO: warning: WHAT: LINE" while
 * count <= CLI_LINES_SHOWN, then once that FURTHER lines are only counted.
 */
#define CLI_LINES_SHOWN 10
void cli_warn_line(const char *who, unsigned long long count,
    const char *what, const char *further, const char *line, size_t len);
void *cli_xmalloc(size_t n);
void *cli_xrealloc(void *p, size_t n);
char *cli_xstrndup(const char *s, size_t len);

struct cli_buf {
	char *s;
	size_t len, cap;
};
void cli_buf_add(struct cli_buf *b, const char *s, size_t len);
void cli_buf_addf(struct cli_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends untrusted text with controls, '\' and bidi tricks as \xHH. */
void cli_buf_escape(struct cli_buf *b, const char *s, size_t len);
void cli_buf_free(struct cli_buf *b);

void cli_print_escaped(FILE *f, const char *s, size_t len);
/* "2024-05-01T12:00:00.123Z"; "-" when ms is out of range. */
void cli_time_ms(char out[40], int64_t ms);
int cli_parse_i64(const char *s, size_t len, int64_t *out);	/* 0 / -1 */
/* Milliseconds from an event's or hop's "t" (a number or digits): 0 / -1. */
int cli_json_ms(const json_t *v, int64_t *ms);
int cli_parse_double(const char *s, size_t len, double *out);	/* 0 / -1 */
double cli_haversine_km(double lat1, double lon1, double lat2, double lon2);

/* A string JSON value that is valid UTF-8 whatever the input bytes. */
json_t *cli_json_string(const char *s, size_t len);
/* Prints v (an object or array) to stdout with a newline; consumes v. */
int cli_json_print(json_t *v);

struct cli_table {
	size_t ncols;
	size_t ncells, cap;
	char **cells;		/* row-major, already safe to print */
};
void cli_table_init(struct cli_table *t, size_t ncols);
void cli_table_text(struct cli_table *t, const char *s, size_t len);
void cli_table_safe(struct cli_table *t, const char *s);  /* our own text */
void cli_table_print(const struct cli_table *t, FILE *f, const char *indent);
void cli_table_free(struct cli_table *t);

/* status.c: shared with trace and search */
/* For `CMD ARG`: CLI_FOUND with m loaded, else the exit code to return. */
int cli_load_arg(struct cli *c, int argc, char **argv, int with_events,
    struct cli_msg *m);
const char *cli_rcpt_latest(const struct cli_msg *m, const char *addr,
    size_t len, int64_t *t_ms);
json_t *cli_record_json(const struct cli_msg *m);
json_t *cli_recipients_json(const redisReply *rcpt);

/* spawn.c: a helper program's standard output, NUL-terminated. */
struct cli_output {
	char *s;
	size_t len, cap;
};
/*
 * Runs argv (argv[0] looked up in PATH, no shell) and reads its standard
 * output (and error, with_stderr): 0 when it exited 0, else -1 with err
 * (failed, killed after timeout_ms, or more than max bytes). out->s is
 * malloc'd either way; free it.
 */
int cli_spawn(const char *const argv[], int with_stderr,
    struct cli_output *out, size_t max, int timeout_ms, char *err,
    size_t errlen);

/* The subcommands. */
int cmd_status(struct cli *c, int argc, char **argv);
int cmd_trace(struct cli *c, int argc, char **argv);
/*
 * trace.c, never NULL: the record's stored hop path (malformed hops
 * counted in m->bad); the whole path (mt_map_whole) built from it and the
 * events; and the hop path with readers and "km" that trace --json shows.
 */
json_t *cli_record_path(struct cli_msg *m);
json_t *cli_whole_path(const struct cli_msg *m, const json_t *record);
json_t *cli_hop_path(const struct cli_msg *m, const json_t *record);
int cmd_map(struct cli *c, int argc, char **argv);		/* map.c */
int cmd_search(struct cli *c, int argc, char **argv);
int cmd_route(struct cli *c, int argc, char **argv);		/* route.c */
int cmd_postfix_config(struct cli *c, int argc, char **argv);
int cmd_mark_read(struct cli *c, int argc, char **argv);	/* markread.c */
int cmd_logwatch(struct cli *c, int argc, char **argv);	/* logwatch.c */
/* Where logwatch keeps its position by default (doctor reads its age). */
#define CLI_LOGWATCH_STATE "/var/lib/mailtrail/logwatch.state"
int cmd_dovecot_watch(struct cli *c, int argc, char **argv);	/* dovecot.c */
int cmd_dovecot_config(struct cli *c, int argc, char **argv);
int cmd_schedule(struct cli *c, int argc, char **argv);	/* schedule.c */
int cmd_doctor(struct cli *c, int argc, char **argv);		/* doctor.c */

#endif
