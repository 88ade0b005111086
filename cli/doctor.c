/*
 * `mailtrail doctor`: checks the whole chain a message goes through and
 * says, for each link, what is wrong and how to fix it: the configuration
 * and the site key, Redis, the milter socket as Postfix's user sees it,
 * Postfix's milter settings (postconf, chroot included), whether logwatch
 * keeps up, the GeoDB files and the map's land, and Dovecot's snippet.
 * One line per check: "ok", "warn" (works, but less than it could) or
 * "FAIL" (mail is not tracked as it should be). Exit 0 without a FAIL,
 * 1 with one, 2 for usage errors.
 */
#include <errno.h>
#include <stdarg.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "../common/config.h"
#include "../common/daemon.h"
#include "../geo/geo.h"
#include "../map/map.h"

#define POSTFIX_USER "postfix"
#define GEODB_OLD_DAYS 90
/* A RECEIVE this old with no delivery result after it: logwatch is behind. */
#define LOGWATCH_LAG_S 900

enum result { OK, WARN, FAIL };

struct doctor {
	struct cli *c;
	const char *postfix_dir;	/* postconf -c, NULL: Postfix's own */
	const char *dovecot_conf;	/* doveconf -c, NULL: Dovecot's own */
	const char *state;		/* logwatch's state file */
	json_t *out;			/* --json: the checks */
	int fails, warns;
};

static void __attribute__((format(printf, 4, 5)))
say(struct doctor *d, enum result r, const char *check, const char *fmt, ...)
{
	static const char *const word[] = { "ok", "warn", "FAIL" };
	char text[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	d->fails += r == FAIL;
	d->warns += r == WARN;
	if (d->out != NULL) {
		json_t *o = json_object();

		json_object_set_new(o, "check", json_string(check));
		json_object_set_new(o, "result", json_string(word[r]));
		json_object_set_new(o, "detail", cli_json_string(text,
		    strlen(text)));
		json_array_append_new(d->out, o);
		return;
	}
	printf("%-4s  %-8s  ", word[r], check);
	cli_print_escaped(stdout, text, strlen(text));
	putchar('\n');
}

/* --- configuration and key ------------------------------------------ */

static int
check_config(struct doctor *d)
{
	char err[1024], err2[1024];
	struct mt_config *cfg;

	d->c->cfg = mt_config_load(d->c->config_path, 1, err, sizeof(err));
	if (d->c->cfg != NULL) {
		say(d, OK, "config", "%s reads", d->c->config_path);
		say(d, d->c->cfg->secret_len >= 32 ? OK : WARN, "key",
		    "SecretKeyFile: %zu bytes, readable by its owner only%s",
		    d->c->cfg->secret_len, d->c->cfg->secret_len >= 32 ? "" :
		    "; 32 random bytes is the safe size");
		return 0;
	}
	/* Without the key: is it the file or the key? */
	if ((cfg = mt_config_load(d->c->config_path, 0, err2,
	    sizeof(err2))) == NULL) {
		say(d, FAIL, "config", "%s; fix the line named, then "
		    "`mailtrail-milter -n`", err);
		return -1;
	}
	say(d, OK, "config", "%s reads", d->c->config_path);
	say(d, FAIL, "key", "%s; as root: `head -c 32 /dev/urandom > FILE; "
	    "chmod 600 FILE`", err);
	d->c->cfg = cfg;
	return 0;
}

/* --- the socket -------------------------------------------------------- */

/* Connects to a unix socket as user (fork, drop, connect): 0 or errno. */
static int
connect_as(const char *path, const struct passwd *pw)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return errno;
	if (pid == 0) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		int fd;

		if (initgroups(pw->pw_name, pw->pw_gid) < 0 ||
		    setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)
			_exit(126);
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa,
		    sizeof(sa)) < 0)
			_exit(errno & 0x7f);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		return EIO;
	return WEXITSTATUS(status) == 126 ? EPERM : WEXITSTATUS(status);
}

static void
check_socket(struct doctor *d)
{
	const struct mt_config *cfg = d->c->cfg;
	struct mt_listen_addr a;
	char err[256], problems[4096], user[256], *line, *save = NULL;
	struct passwd *pw = getpwnam(POSTFIX_USER);
	uid_t uid = 0;
	gid_t gid = 0;
	int have_user = cfg->userid != NULL && mt_daemon_user(cfg->userid,
	    &uid, &gid, user, sizeof(user)) == 0, e;

	if (cfg->userid != NULL && !have_user) {
		say(d, FAIL, "user", "UserID %s: no such user or group; create "
		    "it (adduser --system --group mailtrail)", cfg->userid);
		return;
	}
	if (mt_daemon_check_access(cfg, 1, cfg->socket, "Socket", have_user,
	    uid, gid, POSTFIX_USER, problems, sizeof(problems)) > 0)
		for (line = strtok_r(problems, "\n", &save); line != NULL;
		    line = strtok_r(NULL, "\n", &save))
			say(d, FAIL, strncmp(line, "SpoolDir", 8) == 0 ?
			    "spool" : "socket", "%s", line);
	if (mt_listen_parse(cfg->socket, &a, err, sizeof(err)) != 0) {
		say(d, FAIL, "socket", "Socket %s: %s", cfg->socket, err);
		return;
	}
	if (a.family != AF_UNIX) {
		say(d, OK, "socket", "Socket %s (TCP: Postfix connects to "
		    "inet:%s:%s)", cfg->socket, a.host[0] ? a.host : "127.0.0.1",
		    a.port);
		return;
	}
	if (pw == NULL) {
		say(d, WARN, "socket", "no user %s here to try %s as",
		    POSTFIX_USER, a.path);
		return;
	}
	e = connect_as(a.path, pw);
	if (e == 0)
		say(d, OK, "socket", "%s accepts connections from user %s",
		    a.path, POSTFIX_USER);
	else if (e == ENOENT || e == ECONNREFUSED)
		say(d, FAIL, "socket", "%s: %s: is mailtrail-milter running? "
		    "(systemctl status mailtrail-milter)", a.path, strerror(e));
	else
		say(d, FAIL, "socket", "user %s cannot connect to %s: %s; see "
		    "UserID and UMask in mailtrail.conf(5)", POSTFIX_USER, a.path,
		    strerror(e));
}

/* --- Redis ------------------------------------------------------------- */

static int
check_redis(struct doctor *d)
{
	char err[512];

	if (cli_connect(d->c) != 0 || mt_db_ping(d->c->db, err,
	    sizeof(err)) != 0) {
		say(d, FAIL, "redis", "%s: %s; start it (systemctl start "
		    "redis-server) or fix RedisServer; meanwhile records wait "
		    "in SpoolDir", d->c->db ? mt_db_name(d->c->db) :
		    d->c->cfg->redis_server, d->c->err[0] ? d->c->err : err);
		return -1;
	}
	say(d, OK, "redis", "%s answers", mt_db_name(d->c->db));
	return 0;
}

/* --- Postfix ----------------------------------------------------------- */

/* postconf's answer to args (after -c DIR), or NULL with a FAIL said. */
static char *
postconf(struct doctor *d, const char *const *args)
{
	const char *argv[16];
	struct cli_output o = { 0 };
	char err[256];
	size_t n = 0;

	argv[n++] = "postconf";
	if (d->postfix_dir != NULL) {
		argv[n++] = "-c";
		argv[n++] = d->postfix_dir;
	}
	while (*args != NULL && n < 15)
		argv[n++] = *args++;
	argv[n] = NULL;
	if (cli_spawn(argv, 1, &o, 1 << 20, 10000, err, sizeof(err)) != 0) {
		while (o.s != NULL && o.len > 0 && (o.s[o.len - 1] == '\n' ||
		    o.s[o.len - 1] == ' '))
			o.s[--o.len] = '\0';
		say(d, FAIL, "postfix", "postconf: %s%s%.300s", err,
		    o.s && o.s[0] ? ": " : "", o.s ? o.s : "");
		free(o.s);
		return NULL;
	}
	return o.s;
}

/* The n-th line of text (0-based), trimmed, into out. */
static void
nth_line(const char *text, int n, char *out, size_t len)
{
	const char *e;

	while (n-- > 0 && text != NULL && (text = strchr(text, '\n')) != NULL)
		text++;
	if (text == NULL) {
		out[0] = '\0';
		return;
	}
	e = strchr(text, '\n');
	snprintf(out, len, "%.*s", (int)(e ? e - text : (long)strlen(text)),
	    text);
}

/* Is an smtpd of master.cf (an inet service) chrooted? */
static int
smtpd_chrooted(const char *master)
{
	char f[8][256];
	const char *line = master;

	while (line != NULL && *line != '\0') {
		/* service type private unpriv chroot wakeup maxproc command */
		if (sscanf(line, "%255s %255s %255s %255s %255s %255s %255s "
		    "%255s", f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]) ==
		    8 && strcmp(f[1], "inet") == 0 && strcmp(f[7], "smtpd") ==
		    0 && strcmp(f[4], "y") == 0)
			return 1;
		if ((line = strchr(line, '\n')) != NULL)
			line++;
	}
	return 0;
}

/*
 * Where a milter entry of smtpd_milters leads, as a path outside any
 * chroot: "unix:rel" is relative to queue_directory, "unix:/abs" is /abs,
 * or queue_directory/abs for a chrooted smtpd. "" when it is no unix one.
 */
static void
entry_path(const char *entry, size_t len, const char *qdir, int chroot,
    char *out, size_t outlen)
{
	out[0] = '\0';
	if (len > 5 && strncmp(entry, "unix:", 5) == 0) {
		entry += 5;
		len -= 5;
	} else if (len > 6 && strncmp(entry, "local:", 6) == 0) {
		entry += 6;
		len -= 6;
	} else {
		return;
	}
	if (entry[0] == '/' && !chroot)
		snprintf(out, outlen, "%.*s", (int)len, entry);
	else
		snprintf(out, outlen, "%s%s%.*s", qdir, entry[0] == '/' ? "" :
		    "/", (int)len, entry);
}

/* Does the milter list name our socket? */
static int
list_has(const char *list, const struct mt_listen_addr *a, const char *qdir,
    int chroot)
{
	const char *p = list;
	char path[4200], want[300], *rp, *rw;
	size_t len;
	int found = 0;

	if (a->family != AF_UNIX)
		snprintf(want, sizeof(want), "inet:%s:%s", a->host[0] ? a->host :
		    "127.0.0.1", a->port);
	while (*p && !found) {
		p += strspn(p, " \t,{}");
		len = strcspn(p, " \t,{}");
		if (len == 0)
			break;
		if (a->family == AF_UNIX) {
			entry_path(p, len, qdir, chroot, path, sizeof(path));
			rp = path[0] ? realpath(path, NULL) : NULL;
			rw = realpath(a->path, NULL);
			found = path[0] && (strcmp(path, a->path) == 0 ||
			    (rp && rw && strcmp(rp, rw) == 0));
			free(rp);
			free(rw);
		} else {
			found = len == strlen(want) && strncmp(p, want, len) == 0;
		}
		p += len;
	}
	return found;
}

static void
check_postfix(struct doctor *d)
{
	static const char *const q_main[] = { "-h", "smtpd_milters",
	    "non_smtpd_milters", "queue_directory", "milter_default_action",
	    NULL };
	static const char *const q_master[] = { "-M", NULL };
	char milters[4096], non[4096], qdir[1024], action[64], spec[1200];
	struct mt_listen_addr a;
	char err[256], *main_cf, *master;
	int chroot, inside;

	if (mt_listen_parse(d->c->cfg->socket, &a, err, sizeof(err)) != 0)
		return;		/* said by check_socket */
	if ((main_cf = postconf(d, q_main)) == NULL)
		return;
	nth_line(main_cf, 0, milters, sizeof(milters));
	nth_line(main_cf, 1, non, sizeof(non));
	nth_line(main_cf, 2, qdir, sizeof(qdir));
	nth_line(main_cf, 3, action, sizeof(action));
	free(main_cf);
	if ((master = postconf(d, q_master)) == NULL)
		return;
	chroot = smtpd_chrooted(master);
	free(master);
	inside = a.family == AF_UNIX && strncmp(a.path, qdir, strlen(qdir)) ==
	    0 && a.path[strlen(qdir)] == '/';
	if (a.family == AF_UNIX)
		snprintf(spec, sizeof(spec), "unix:%s", inside ? a.path +
		    strlen(qdir) + 1 : a.path);
	else
		snprintf(spec, sizeof(spec), "inet:%s:%s", a.host[0] ? a.host :
		    "127.0.0.1", a.port);
	if (chroot && a.family == AF_UNIX && !inside) {
		say(d, FAIL, "postfix", "smtpd runs chrooted in %s (master.cf), "
		    "and the socket %s is outside it: set Socket "
		    "unix:%s/mailtrail/milter.sock and smtpd_milters = "
		    "unix:mailtrail/milter.sock", qdir, a.path, qdir);
		return;
	}
	if (!list_has(milters, &a, qdir, chroot)) {
		say(d, FAIL, "postfix", "smtpd_milters (%s) does not name this "
		    "milter: add `smtpd_milters = %s` to main.cf (postconf -e) "
		    "and `postfix reload`", milters[0] ? milters : "empty",
		    spec);
		return;
	}
	say(d, OK, "postfix", "smtpd_milters names %s%s; "
	    "milter_default_action = %s%s", spec, chroot ? " (smtpd "
	    "chrooted)" : "", action, strcmp(action, "accept") == 0 ?
	    " (mail passes untagged while the milter is down)" : "");
	if (!list_has(non, &a, qdir, 0))
		say(d, WARN, "postfix", "non_smtpd_milters does not name it: "
		    "mail from the sendmail command is not tracked; add "
		    "`non_smtpd_milters = %s`", spec);
}

/* --- logwatch ------------------------------------------------------------ */

/* Milliseconds of a stream entry ID "ms-seq". */
static int64_t
entry_ms(const redisReply *id)
{
	int64_t ms = 0;

	if (id == NULL || id->type != REDIS_REPLY_STRING)
		return -1;
	for (size_t i = 0; i < id->len && id->str[i] >= '0' &&
	    id->str[i] <= '9'; i++)
		ms = ms * 10 + (id->str[i] - '0');
	return ms;
}

static void
check_logwatch(struct doctor *d)
{
	static const char *const results[] = { "SEND", "DELIVER", "DEFER",
	    "BOUNCE", NULL };
	char *key = cli_key(d->c, MT_KEY_STREAM, NULL, 0);
	redisReply *r = cli_command(d->c, key, "XREVRANGE %s + - COUNT 2000",
	    key);
	int64_t now = (int64_t)time(NULL) * 1000, last_result = -1;
	int64_t oldest_unmatched = -1;
	struct stat st;
	size_t i;

	free(key);
	if (stat(d->state, &st) == 0)
		say(d, OK, "logwatch", "state %s written %lld s ago", d->state,
		    (long long)(time(NULL) - st.st_mtime));
	if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
		if (r != NULL)
			freeReplyObject(r);
		return;
	}
	for (i = 0; i < r->elements; i++) {
		const redisReply *e = r->element[i], *f;
		int64_t ms;

		if (e->type != REDIS_REPLY_ARRAY || e->elements != 2)
			continue;
		ms = entry_ms(e->element[0]);
		f = e->element[1];
		for (size_t k = 0; f->type == REDIS_REPLY_ARRAY &&
		    k + 1 < f->elements; k += 2) {
			const redisReply *v = f->element[k + 1];

			if (f->element[k]->type != REDIS_REPLY_STRING ||
			    strcmp(f->element[k]->str, "ev") != 0 ||
			    v->type != REDIS_REPLY_STRING)
				continue;
			for (size_t j = 0; results[j]; j++)
				if (strcmp(v->str, results[j]) == 0 &&
				    ms > last_result)
					last_result = ms;
			if (strcmp(v->str, "RECEIVE") == 0 && ms > last_result)
				oldest_unmatched = ms;
		}
	}
	freeReplyObject(r);
	if (oldest_unmatched < 0)
		say(d, OK, "logwatch", "%s", last_result >= 0 ? "delivery "
		    "results are recorded" : "no mail recorded yet");
	else if (now - oldest_unmatched > LOGWATCH_LAG_S * 1000)
		say(d, WARN, "logwatch", "no delivery result recorded for %lld "
		    "min although mail arrived (unless all of it is held or "
		    "queued): is `mailtrail logwatch` running? (systemctl "
		    "status mailtrail-logwatch)",
		    (long long)((now - oldest_unmatched) / 60000));
	else
		say(d, OK, "logwatch", "mail of the last %lld s awaits its "
		    "delivery results", (long long)((now - oldest_unmatched) /
		    1000));
}

/* --- GeoDB and map land ---------------------------------------------- */

static void
check_geo(struct doctor *d)
{
	const struct mt_config *cfg = d->c->cfg;
	struct mt_map_land land;
	struct mt_geo_info gi;
	char err[512], when[32];
	time_t built;
	size_t i;

	if (cfg->n_geodb == 0)
		say(d, WARN, "geodb", "no GeoDB: hops get no coordinates; `make "
		    "geodb` fetches DB-IP Lite, then add GeoDB lines for its "
		    "files (installed e.g. in /var/lib/mailtrail/)");
	for (i = 0; i < cfg->n_geodb; i++) {
		if (mt_geo_file_info(cfg->geodb[i], &gi, err, sizeof(err)) != 0) {
			say(d, FAIL, "geodb", "%s", err);
			continue;
		}
		built = (time_t)gi.built;
		strftime(when, sizeof(when), "%Y-%m-%d", gmtime(&built));
		if (time(NULL) - built > GEODB_OLD_DAYS * 86400)
			say(d, WARN, "geodb", "%s (%s) was built %s: places move; "
			    "fetch a newer one (make geodb, geoipupdate)",
			    cfg->geodb[i], gi.type, when);
		else
			say(d, OK, "geodb", "%s (%s, IPv%u, built %s)",
			    cfg->geodb[i], gi.type, gi.ip_version, when);
	}
	if (mt_map_land_load(cfg->map_land, &land, err, sizeof(err)) != 0) {
		say(d, WARN, "map", "MapLand: %s; `mailtrail map` draws no land "
		    "(`make worldmap`, then install data/map/land-110m.json)",
		    err);
		return;
	}
	say(d, OK, "map", "MapLand %s: %zu land rings", cfg->map_land, land.n);
	mt_map_land_free(&land);
}

/* --- Dovecot ------------------------------------------------------------- */

static void
check_dovecot(struct doctor *d)
{
	const char *argv[6] = { "doveconf", "-n", NULL };
	struct cli_output o = { 0 };
	char err[256];
	int has_plugins, has_driver;

	if (d->dovecot_conf != NULL) {
		argv[1] = "-c";
		argv[2] = d->dovecot_conf;
		argv[3] = "-n";
		argv[4] = NULL;
	} else if (access("/usr/bin/doveconf", X_OK) != 0) {
		say(d, OK, "dovecot", "no Dovecot here; reads come from "
		    "receipts and mark-read only");
		return;
	}
	if (cli_spawn(argv, 1, &o, 1 << 20, 10000, err, sizeof(err)) != 0) {
		say(d, WARN, "dovecot", "doveconf: %s", err);
		free(o.s);
		return;
	}
	has_plugins = strstr(o.s, "push_notification") != NULL &&
	    strstr(o.s, "mail_lua") != NULL && strstr(o.s, "notify") != NULL;
	has_driver = strstr(o.s, "push_notification_driver = lua:file=") !=
	    NULL;
	if (has_plugins && has_driver)
		say(d, OK, "dovecot", "reports reads (push_notification with "
		    "mailtrail's Lua script); run `mailtrail dovecot-watch` on "
		    "its log");
	else
		say(d, WARN, "dovecot", "Dovecot does not report reads to "
		    "mailtrail: `mailtrail dovecot-config > "
		    "/etc/dovecot/conf.d/95-mailtrail.conf` and `doveadm "
		    "reload`");
	free(o.s);
}

int
cmd_doctor(struct cli *c, int argc, char **argv)
{
	const struct cli_command *cmd = cli_find_command(argv[0]);
	struct doctor d = { .c = c, .state = CLI_LOGWATCH_STATE };
	int i, redis_ok;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--postfix-config") == 0 && i + 1 < argc)
			d.postfix_dir = argv[++i];
		else if (strcmp(argv[i], "--dovecot-config") == 0 &&
		    i + 1 < argc)
			d.dovecot_conf = argv[++i];
		else if (strcmp(argv[i], "--state") == 0 && i + 1 < argc)
			d.state = argv[++i];
		else
			return cli_usage_error(cmd, "%s: unknown option or "
			    "missing value", argv[i]);
	}
	if (c->json)
		d.out = json_array();
	if (check_config(&d) == 0) {
		check_socket(&d);
		redis_ok = check_redis(&d) == 0;
		check_postfix(&d);
		if (redis_ok)
			check_logwatch(&d);
		check_geo(&d);
		check_dovecot(&d);
	}
	if (d.out != NULL)
		cli_json_print(d.out);
	else
		printf("%d problem(s), %d warning(s)\n", d.fails, d.warns);
	return d.fails > 0 ? CLI_NOT_FOUND : CLI_FOUND;
}
