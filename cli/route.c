/*
 * `mailtrail route list|pause|resume|check` and `mailtrail postfix-config`:
 * the admin's view of outbound routes, their health in Redis
 * (P route:NAME), and the Postfix lines generated from the same Route
 * lines the daemon reads, so master.cf and mailtrail.conf cannot drift.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "../common/config.h"
#include "../route/route.h"

static const struct cli_command *
route_cmd(void)
{
	return cli_find_command("route");
}

/* Loads the configuration's routes (no Redis); CLI_FOUND or an exit code. */
static int
load_routes(struct cli *c, struct mt_routes *rs, int with_redis)
{
	char err[512];

	if (with_redis) {
		if (cli_connect(c) < 0)
			return cli_fail(c);
	} else if (c->cfg == NULL) {
		c->cfg = mt_config_load(c->config_path, 0, err, sizeof(err));
		if (c->cfg == NULL) {
			fprintf(stderr, "mailtrail: %s\n", err);
			return CLI_FAIL;
		}
	}
	if (mt_routes_load(c->cfg, rs, err, sizeof(err)) < 0) {
		fprintf(stderr, "mailtrail: %s\n", err);
		return CLI_FAIL;
	}
	return CLI_FOUND;
}

static const char *
field(const redisReply *h, const char *name)
{
	if (!cli_reply_is_pairs(h))
		return NULL;
	for (size_t i = 0; i + 1 < h->elements; i += 2)
		if (strcmp(h->element[i]->str, name) == 0)
			return h->element[i + 1]->str;
	return NULL;
}

static const char *
or_dash(const char *s)
{
	return s && *s ? s : "-";
}

static const char *
route_state(const redisReply *h)
{
	const char *p = field(h, "paused"), *l = field(h, "listed");

	if (p && strcmp(p, "1") == 0)
		return "paused";
	if (l && strcmp(l, "1") == 0)
		return "listed";
	return "active";
}

static void
today_text(char *out, size_t outlen, const struct mt_route *r,
    const redisReply *count, long day)
{
	long cap = mt_route_cap(r, day);
	const char *n = count && count->type == REDIS_REPLY_STRING ?
	    count->str : "0";

	if (cap < 0)
		snprintf(out, outlen, "%s", r->warmup ? "warm" : "-");
	else
		snprintf(out, outlen, "%.20s/%ld", n, cap);
}

static json_t *
route_json(const struct mt_route *r, const redisReply *h,
    const redisReply *count, long day)
{
	json_t *o = json_object();
	long cap = mt_route_cap(r, day);
	static const char *const fields[] = { "reason", "pause_reason",
	    "listed_by", "listed_reason", "checked_at", "ptr", "fcrdns",
	    "helo_match", "problem", "ptr6", "fcrdns6" };

	json_object_set_new(o, "name", json_string(r->name));
	json_object_set_new(o, "transport", json_string(r->transport));
	json_object_set_new(o, "bind", json_string(r->bind));
	json_object_set_new(o, "bind6", json_string(r->bind6));
	json_object_set_new(o, "helo", json_string(r->helo));
	json_object_set_new(o, "weight", json_integer(r->weight));
	json_object_set_new(o, "state", json_string(route_state(h)));
	json_object_set_new(o, "sent_today", json_integer(
	    count && count->type == REDIS_REPLY_STRING ?
	    strtoll(count->str, NULL, 10) : 0));
	json_object_set_new(o, "cap_today", cap < 0 ? json_null() :
	    json_integer(cap));
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		const char *v = field(h, fields[i]);

		if (v != NULL)
			json_object_set_new(o, fields[i],
			    cli_json_string(v, strlen(v)));
	}
	return o;
}

static int
route_list(struct cli *c, const struct mt_routes *rs)
{
	redisReply **rep = cli_xmalloc((2 * rs->n + 1) * sizeof(*rep));
	long day = mt_route_today();
	char ds[16], cell[128];
	struct cli_table t;
	struct mt_db_batch b;
	json_t *arr = NULL;
	int rc = CLI_FOUND;

	mt_route_day_string(day, ds);
	mt_db_batch_init(&b);
	for (size_t i = 0; i < rs->n; i++) {
		char *k = cli_key(c, MT_KEY_ROUTE, rs->v[i].name,
		    strlen(rs->v[i].name));
		char *dk = mt_key_route_day(&c->schema, rs->v[i].name, ds);

		if (dk == NULL)
			cli_oom();
		mt_db_add(&b, k, "HGETALL %s", k);
		mt_db_add(&b, dk, "GET %s", dk);
		free(k);
		free(dk);
	}
	for (size_t i = 0; i < 2 * rs->n; i++)
		rep[i] = NULL;
	if (rs->n > 0 && cli_run(c, &b) < 0) {
		rc = cli_fail(c);
		goto out;
	}
	for (size_t i = 0; i < 2 * rs->n; i++) {
		rep[i] = b.cmd[i].reply;
		b.cmd[i].reply = NULL;
	}
	if (c->json)
		arr = json_array();
	cli_table_init(&t, 10);
	if (!c->json)
		for (const char *const *h = (const char *const[]){ "ROUTE",
		    "TRANSPORT", "BIND", "WEIGHT", "STATE", "TODAY", "PTR",
		    "FCRDNS", "CHECKED", "REASON", NULL }; *h; h++)
			cli_table_safe(&t, *h);
	for (size_t i = 0; i < rs->n; i++) {
		const struct mt_route *r = &rs->v[i];
		const redisReply *h = rep[2 * i];
		const char *v;
		char when[40];

		if (c->json) {
			json_array_append_new(arr, route_json(r, h,
			    rep[2 * i + 1], day));
			continue;
		}
		cli_table_safe(&t, r->name);
		cli_table_safe(&t, r->transport);
		snprintf(cell, sizeof(cell), "%s%s%s", r->bind,
		    r->bind[0] && r->bind6[0] ? "," : "", r->bind6);
		cli_table_safe(&t, cell);
		snprintf(cell, sizeof(cell), "%u", r->weight);
		cli_table_safe(&t, cell);
		cli_table_safe(&t, route_state(h));
		today_text(cell, sizeof(cell), r, rep[2 * i + 1], day);
		cli_table_safe(&t, cell);
		v = or_dash(field(h, "ptr"));
		cli_table_text(&t, v, strlen(v));
		v = or_dash(field(h, "fcrdns"));
		cli_table_text(&t, v, strlen(v));
		v = field(h, "checked_at");
		if (v != NULL)
			cli_time_ms(when, strtoll(v, NULL, 10) * 1000);
		cli_table_safe(&t, v ? when : "never");
		v = or_dash(field(h, "reason"));
		cli_table_text(&t, v, strlen(v));
	}
	if (c->json)
		rc = cli_json_print(arr) < 0 ? CLI_FAIL : CLI_FOUND;
	else
		cli_table_print(&t, stdout, "");
	cli_table_free(&t);
out:
	for (size_t i = 0; i < 2 * rs->n; i++)
		if (rep[i])
			freeReplyObject(rep[i]);
	free(rep);
	mt_db_batch_free(&b);
	return rc;
}

/* P route:NAME (route names are short: the config checks them). */
static void
route_key(const struct cli *c, const struct mt_route *r, char *key,
    size_t len)
{
	char *k = cli_key(c, MT_KEY_ROUTE, r->name, strlen(r->name));

	snprintf(key, len, "%s", k);
	free(k);
}

static long
retention_seconds(const struct cli *c)
{
	return c->schema.ttl;
}

/* pause / resume: the admin's switch, kept apart from the DNS verdict. */
static int
route_set_paused(struct cli *c, const struct mt_route *r, int pause,
    const char *why)
{
	char key[256], now[32], reason[600];
	redisReply *h, *rep;
	const char *listed_reason;
	int listed;

	route_key(c, r, key, sizeof(key));
	snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
	if ((h = cli_command(c, key, "HGETALL %s", key)) == NULL)
		return cli_fail(c);
	listed = field(h, "listed") && strcmp(field(h, "listed"), "1") == 0;
	listed_reason = field(h, "listed_reason");
	if (pause)
		snprintf(reason, sizeof(reason), "paused: %.500s", why);
	else
		snprintf(reason, sizeof(reason), "%.500s", listed &&
		    listed_reason ? listed_reason : "");
	rep = cli_command(c, key, "HSET %s paused %s state %s reason %s "
	    "pause_reason %s changed_at %s", key, pause ? "1" : "0",
	    pause ? "paused" : listed ? "listed" : "active", reason,
	    pause ? why : "", now);
	freeReplyObject(h);
	if (rep == NULL)
		return cli_fail(c);
	freeReplyObject(rep);
	if ((rep = cli_command(c, key, "EXPIRE %s %ld", key,
	    retention_seconds(c))) == NULL)
		return cli_fail(c);
	freeReplyObject(rep);
	if (c->json) {
		json_t *o = json_object();

		json_object_set_new(o, "name", json_string(r->name));
		json_object_set_new(o, "state", json_string(pause ? "paused" :
		    listed ? "listed" : "active"));
		return cli_json_print(o) < 0 ? CLI_FAIL : CLI_FOUND;
	}
	printf("route %s %s%s\n", r->name, pause ? "paused" : "resumed",
	    !pause && listed ? " (still listed: out of rotation until a "
	    "clean check)" : "");
	return CLI_FOUND;
}

/* Folds an IPv6 result into the IPv4 one (a route is one identity). */
static void
merge_health(struct mt_route_health *h, const struct mt_route_health *h6)
{
	size_t n;

	h->listed |= h6->listed;
	h->dns_errors += h6->dns_errors;
	if (h6->listed) {
		n = strlen(h->reason);
		snprintf(h->reason + n, sizeof(h->reason) - n, "%sIPv6: %.400s",
		    n ? "; " : "", h6->reason);
		n = strlen(h->listed_by);
		snprintf(h->listed_by + n, sizeof(h->listed_by) - n, "%s%.200s",
		    n ? ", " : "", h6->listed_by);
	}
	if (h6->problem[0]) {
		n = strlen(h->problem);
		snprintf(h->problem + n, sizeof(h->problem) - n, "%sIPv6: %.400s",
		    n ? "; " : "", h6->problem);
	}
}

static int
route_check_one(struct cli *c, const struct mt_route *r, struct cli_table *t,
    json_t *arr)
{
	struct mt_route_health h, h6;
	char key[256], err[256], now[32], reason[600];
	redisReply *old, *rep;
	const char *paused, *pause_reason, *ip = r->bind[0] ? r->bind : r->bind6;
	int listed, was_listed;

	if (mt_route_check_ip(ip, c->cfg->route_blocklists,
	    c->cfg->n_route_blocklists, r->helo, &h, err, sizeof(err)) < 0) {
		fprintf(stderr, "mailtrail: route %s: %s\n", r->name, err);
		return -1;
	}
	memset(&h6, 0, sizeof(h6));
	if (r->bind[0] && r->bind6[0] && mt_route_check_ip(r->bind6,
	    c->cfg->route_blocklists, c->cfg->n_route_blocklists, r->helo,
	    &h6, err, sizeof(err)) == 0)
		merge_health(&h, &h6);
	route_key(c, r, key, sizeof(key));
	if ((old = cli_command(c, key, "HGETALL %s", key)) == NULL)
		return -1;
	paused = field(old, "paused");
	pause_reason = field(old, "pause_reason");
	was_listed = field(old, "listed") && strcmp(field(old, "listed"),
	    "1") == 0;
	/* A lookup that failed proves nothing: keep a listing until clean. */
	listed = h.listed || (h.dns_errors > 0 && was_listed);
	if (paused && strcmp(paused, "1") == 0)
		snprintf(reason, sizeof(reason), "paused: %.500s",
		    pause_reason ? pause_reason : "");
	else if (listed)
		snprintf(reason, sizeof(reason), "listed: %.500s", h.reason[0] ?
		    h.reason : "(lookup failed, previous listing kept)");
	else
		reason[0] = '\0';
	snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
	rep = cli_command(c, key, "HSET %s listed %s listed_by %s listed_reason %s "
	    "state %s reason %s checked_at %s ptr %s fcrdns %s helo_match %s "
	    "problem %s ip %s", key, listed ? "1" : "0", h.listed_by,
	    listed ? reason : "", paused && strcmp(paused, "1") == 0 ?
	    "paused" : listed ? "listed" : "active", reason, now, h.ptr,
	    h.fcrdns ? "pass" : "fail", h.helo_match ? "yes" : "no",
	    h.problem, ip);
	freeReplyObject(old);
	if (rep == NULL)
		return -1;
	freeReplyObject(rep);
	if ((rep = cli_command(c, key, "EXPIRE %s %ld", key,
	    retention_seconds(c))) == NULL)
		return -1;
	freeReplyObject(rep);
	if (arr != NULL) {
		json_t *o = json_object();

		json_object_set_new(o, "name", json_string(r->name));
		json_object_set_new(o, "ip", json_string(ip));
		json_object_set_new(o, "listed", json_boolean(listed));
		json_object_set_new(o, "listed_by", cli_json_string(h.listed_by,
		    strlen(h.listed_by)));
		json_object_set_new(o, "reason", cli_json_string(reason,
		    strlen(reason)));
		json_object_set_new(o, "ptr", cli_json_string(h.ptr,
		    strlen(h.ptr)));
		json_object_set_new(o, "fcrdns", json_boolean(h.fcrdns));
		json_object_set_new(o, "helo_match", json_boolean(h.helo_match));
		json_object_set_new(o, "problem", cli_json_string(h.problem,
		    strlen(h.problem)));
		json_array_append_new(arr, o);
		return listed;
	}
	cli_table_safe(t, r->name);
	cli_table_safe(t, ip);
	cli_table_safe(t, listed ? "listed" : "clean");
	cli_table_text(t, or_dash(h.ptr), strlen(or_dash(h.ptr)));
	cli_table_safe(t, h.fcrdns ? "pass" : "fail");
	cli_table_safe(t, h.helo_match ? "yes" : "no");
	cli_table_text(t, or_dash(reason), strlen(or_dash(reason)));
	cli_table_text(t, or_dash(h.problem), strlen(or_dash(h.problem)));
	return listed;
}

static int
route_check(struct cli *c, const struct mt_routes *rs, const char *only)
{
	struct cli_table t;
	json_t *arr = c->json ? json_array() : NULL;
	int rc = CLI_FOUND, one, listed = 0;

	cli_table_init(&t, 8);
	for (const char *const *h = (const char *const[]){ "ROUTE", "IP",
	    "BLOCKLISTS", "PTR", "FCRDNS", "HELO", "REASON", "PROBLEM",
	    NULL }; *h; h++)
		cli_table_safe(&t, *h);
	for (size_t i = 0; i < rs->n; i++) {
		if (only && strcasecmp(only, rs->v[i].name) != 0)
			continue;
		if ((one = route_check_one(c, &rs->v[i], &t, arr)) < 0) {
			if (c->err[0])
				cli_fail(c);
			rc = CLI_FAIL;
			break;
		}
		listed += one;
	}
	if (rc == CLI_FOUND) {
		if (arr != NULL) {
			rc = cli_json_print(arr) < 0 ? CLI_FAIL : CLI_FOUND;
			arr = NULL;
		} else {
			cli_table_print(&t, stdout, "");
		}
	}
	json_decref(arr);
	cli_table_free(&t);
	/* A monitoring check reads the exit status: 1 when a route is listed. */
	if (rc == CLI_FOUND && listed > 0) {
		fprintf(stderr, "mailtrail: %d route(s) listed on a blocklist\n",
		    listed);
		rc = CLI_NOT_FOUND;
	}
	return rc;
}

int
cmd_route(struct cli *c, int argc, char **argv)
{
	const struct cli_command *cmd = route_cmd();
	const struct mt_route *r = NULL;
	struct mt_routes rs;
	const char *sub;
	int rc;

	if (argc < 2)
		return cli_usage_error(cmd, "route: which action?");
	sub = argv[1];
	if (strcmp(sub, "list") == 0 || strcmp(sub, "check") == 0) {
		if (argc > 3 || (argc == 3 && strcmp(sub, "list") == 0))
			return cli_usage_error(cmd, "route %s: too many "
			    "arguments", sub);
	} else if (strcmp(sub, "pause") == 0) {
		if (argc < 3)
			return cli_usage_error(cmd, "route pause NAME [REASON]");
	} else if (strcmp(sub, "resume") == 0) {
		if (argc != 3)
			return cli_usage_error(cmd, "route resume NAME");
	} else {
		return cli_usage_error(cmd, "route: unknown action '%.40s'", sub);
	}
	if ((rc = load_routes(c, &rs, 1)) != CLI_FOUND)
		return rc;
	if (argc >= 3) {
		r = mt_routes_find(&rs, argv[2]);
		if (r == NULL) {
			fprintf(stderr, "mailtrail: no route named '");
			cli_print_escaped(stderr, argv[2], strlen(argv[2]));
			fprintf(stderr, "' in %s\n", c->cfg->path);
			mt_routes_free(&rs);
			return CLI_NOT_FOUND;
		}
	}
	if (strcmp(sub, "list") == 0)
		rc = route_list(c, &rs);
	else if (strcmp(sub, "check") == 0)
		rc = route_check(c, &rs, r ? r->name : NULL);
	else if (strcmp(sub, "pause") == 0) {
		struct cli_buf why = { 0 };

		for (int i = 3; i < argc; i++) {
			if (i > 3)
				cli_buf_add(&why, " ", 1);
			cli_buf_escape(&why, argv[i], strlen(argv[i]));
		}
		cli_buf_add(&why, "", 0);
		rc = route_set_paused(c, r, 1, why.len ? why.s : "by admin");
		cli_buf_free(&why);
	} else
		rc = route_set_paused(c, r, 0, "");
	mt_routes_free(&rs);
	return rc;
}

/* Postfix spells inet:PORT@HOST as inet:HOST:PORT. */
static void
postfix_socket(const char *spec, char *out, size_t outlen)
{
	const char *at;

	if (strncmp(spec, "inet:", 5) == 0 && (at = strchr(spec, '@')) != NULL)
		snprintf(out, outlen, "inet:%s:%.*s", at + 1,
		    (int)(at - spec - 5), spec + 5);
	else if (strncmp(spec, "local:", 6) == 0)
		snprintf(out, outlen, "unix:%s", spec + 6);
	else
		snprintf(out, outlen, "%s", spec);
}

int
cmd_postfix_config(struct cli *c, int argc, char **argv)
{
	const struct cli_command *cmd = cli_find_command("postfix-config");
	int master = 1, main_cf = 1, global = 0, rc;
	struct mt_routes rs;
	char map[700], sock[600];

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--master") == 0)
			main_cf = 0;
		else if (strcmp(argv[i], "--main") == 0)
			master = 0;
		else if (strcmp(argv[i], "--global") == 0)
			global = 1;
		else
			return cli_usage_error(cmd, "postfix-config: unknown "
			    "argument");
	}
	if ((rc = load_routes(c, &rs, 0)) != CLI_FOUND)
		return rc;
	postfix_socket(c->cfg->route_socket, sock, sizeof(sock));
	snprintf(map, sizeof(map), "socketmap:%s:%s", sock, MT_ROUTE_MAP_NAME);
	if (master) {
		printf("# master.cf, generated by `mailtrail postfix-config` from "
		    "%s\n", c->cfg->path);
		if (!global)
			printf("# Replaces the stock qmgr line: only the queue "
			    "manager asks mailtrail,\n# through a resolver of its "
			    "own, so smtpd's recipient checks, address\n# probes "
			    "and postmap -q never count as deliveries.\n"
			    "qmgr      unix  n       -       -       300     1"
			    "       qmgr\n"
			    "  -o rewrite_service_name=%s\n"
			    "%s unix  -       -       n       -       -"
			    "       trivial-rewrite\n"
			    "  -o sender_dependent_default_transport_maps=%s\n",
			    MT_ROUTE_RESOLVER, MT_ROUTE_RESOLVER, map);
		printf("# One smtp client per Route.\n");
		for (size_t i = 0; i < rs.n; i++) {
			const struct mt_route *r = &rs.v[i];

			printf("%-9s unix  -       -       n       -       -"
			    "       smtp\n", r->transport);
			if (r->bind[0])
				printf("  -o smtp_bind_address=%s\n", r->bind);
			if (r->bind6[0])
				printf("  -o smtp_bind_address6=%s\n", r->bind6);
			printf("  -o smtp_helo_name=%s\n", r->helo);
			printf("  -o syslog_name=postfix-%s\n", r->name);
		}
	}
	if (main_cf) {
		if (master)
			putchar('\n');
		if (global)
			printf("# main.cf\nsender_dependent_default_transport_maps"
			    " = %s\n", map);
		else
			printf("# main.cf: nothing to add; the map is set on the "
			    "%s service above.\n", MT_ROUTE_RESOLVER);
	}
	mt_routes_free(&rs);
	return CLI_FOUND;
}
