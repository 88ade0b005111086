/*
 * mailtrail.conf reader. Every problem is reported as "file:line: what" and
 * makes the whole load fail: a half-read configuration is never used.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "config.h"

#define LINE_MAX_LEN 4096
#define SECRET_MIN 16
#define SECRET_MAX 4096

struct loader {
	struct mt_config *cfg;
	const char *file;
	int line;
	char *err;
	size_t errlen;
	int seen[64];		/* line each key was first given on */
	char *secret_path;	/* SecretKeyFile, read once the file is done */
	int secret_line;
};

typedef int key_fn(struct loader *, const char *value);

static int
fail(struct loader *ld, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
fail(struct loader *ld, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (ld->line > 0)
		snprintf(ld->err, ld->errlen, "%s:%d: %s", ld->file, ld->line,
		    msg);
	else
		snprintf(ld->err, ld->errlen, "%s: %s", ld->file, msg);
	return -1;
}

static int
set_string(struct loader *ld, char **slot, const char *value)
{
	char *s = strdup(value);

	if (s == NULL)
		return fail(ld, "out of memory");
	free(*slot);
	*slot = s;
	return 0;
}

static int
parse_long(struct loader *ld, const char *key, const char *value, long min,
    long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(value, &end, 10);
	if (errno != 0 || end == value || *end != '\0' || v < min || v > max)
		return fail(ld, "%s: \"%s\" is not a number from %ld to %ld",
		    key, value, min, max);
	*out = v;
	return 0;
}

static int
key_socket(struct loader *ld, const char *v)
{
	if (strncmp(v, "unix:", 5) == 0 || strncmp(v, "local:", 6) == 0) {
		if (strchr(v, ':')[1] != '/')
			return fail(ld, "Socket: \"%s\": path must be absolute", v);
	} else if (strncmp(v, "inet:", 5) == 0 || strncmp(v, "inet6:", 6) == 0) {
		const char *port = strchr(v, ':') + 1;
		char *end;
		long p = strtol(port, &end, 10);

		if (end == port || (*end != '\0' && *end != '@') || p < 1 ||
		    p > 65535)
			return fail(ld, "Socket: \"%s\" is not inet:PORT[@HOST]", v);
	} else
		return fail(ld, "Socket: \"%s\" is neither unix:/path nor inet:PORT@HOST", v);
	return set_string(ld, &ld->cfg->socket, v);
}

static int
key_umask(struct loader *ld, const char *v)
{
	char *end;
	long m = strtol(v, &end, 8);

	if (end == v || *end != '\0' || m < 0 || m > 0777)
		return fail(ld, "UMask: \"%s\" is not an octal mode", v);
	ld->cfg->umask = (mode_t)m;
	return 0;
}

static int
key_userid(struct loader *ld, const char *v)
{
	char user[256];
	const char *colon = strchr(v, ':');
	size_t n = colon ? (size_t)(colon - v) : strlen(v);

	if (n == 0 || n >= sizeof(user))
		return fail(ld, "UserID: \"%s\" is not user[:group]", v);
	memcpy(user, v, n);
	user[n] = '\0';
	if (getpwnam(user) == NULL)
		return fail(ld, "UserID: no such user \"%s\"", user);
	if (colon && getgrnam(colon + 1) == NULL)
		return fail(ld, "UserID: no such group \"%s\"", colon + 1);
	return set_string(ld, &ld->cfg->userid, v);
}

static int
key_pidfile(struct loader *ld, const char *v)
{
	if (v[0] != '/')
		return fail(ld, "PidFile: \"%s\": path must be absolute", v);
	return set_string(ld, &ld->cfg->pidfile, v);
}

/* HOST:PORT (the port after the last colon); 0 or -1 with the error. */
static int
check_host_port(struct loader *ld, const char *key, const char *v,
    size_t len)
{
	const char *colon = NULL;
	long p = 0;

	for (size_t i = 0; i < len; i++)
		if (v[i] == ':')
			colon = v + i;
	if (colon == NULL || colon == v)
		return fail(ld, "%s: \"%.*s\" is not HOST:PORT", key, (int)len, v);
	if (colon + 1 == v + len || v + len - colon > 6)
		return fail(ld, "%s: \"%.*s\": bad port", key, (int)len, v);
	for (const char *q = colon + 1; q < v + len; q++) {
		if (!isdigit((unsigned char)*q))
			return fail(ld, "%s: \"%.*s\": bad port", key, (int)len, v);
		p = p * 10 + (*q - '0');
	}
	if (p < 1 || p > 65535)
		return fail(ld, "%s: \"%.*s\": bad port", key, (int)len, v);
	return 0;
}

static int
key_redis_server(struct loader *ld, const char *v)
{
	if (strncmp(v, "unix:", 5) == 0) {
		if (v[5] != '/')
			return fail(ld, "RedisServer: \"%s\": path must be absolute", v);
	} else if (strrchr(v, ':') == NULL || v[0] == ':') {
		return fail(ld, "RedisServer: \"%s\" is neither HOST:PORT nor "
		    "unix:/path", v);
	} else if (check_host_port(ld, "RedisServer", v, strlen(v)) < 0)
		return -1;
	ld->cfg->redis_server_set = 1;
	return set_string(ld, &ld->cfg->redis_server, v);
}

/* A "HOST:PORT, HOST:PORT ..." list of at most 16 nodes. */
static int
set_node_list(struct loader *ld, const char *key, const char *v, char **dst)
{
	size_t n = 0;

	for (const char *p = v; *p; ) {
		size_t len;

		while (*p == ',' || *p == ' ' || *p == '\t')
			p++;
		if ((len = strcspn(p, ", \t")) == 0)
			break;
		if (check_host_port(ld, key, p, len) < 0)
			return -1;
		n++;
		p += len;
	}
	if (n == 0)
		return fail(ld, "%s: no HOST:PORT given", key);
	if (n > 16)
		return fail(ld, "%s: more than 16 nodes", key);
	return set_string(ld, dst, v);
}

static int
key_redis_sentinel(struct loader *ld, const char *v)
{
	return set_node_list(ld, "RedisSentinel", v, &ld->cfg->redis_sentinel);
}

static int
key_redis_cluster(struct loader *ld, const char *v)
{
	return set_node_list(ld, "RedisCluster", v, &ld->cfg->redis_cluster);
}

static int
key_redis_sentinel_master(struct loader *ld, const char *v)
{
	for (const char *p = v; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' &&
		    *p != '.')
			return fail(ld, "RedisSentinelMaster: \"%s\" is not a "
			    "master name", v);
	return set_string(ld, &ld->cfg->redis_sentinel_master, v);
}

/* Reads a small file whole; refuses it when group or others may read it. */
static int
read_private_file(struct loader *ld, const char *key, const char *path,
    int must_be_private, unsigned char **out, size_t *outlen)
{
	unsigned char buf[SECRET_MAX + 1];
	struct stat st;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return fail(ld, "%s: cannot open %s: %s", key, path,
		    strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return fail(ld, "%s: %s is not a regular file", key, path);
	}
	if (must_be_private && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		close(fd);
		return fail(ld, "%s: %s is accessible by group or others "
		    "(mode %04o); refusing it (chmod 600)", key, path,
		    (unsigned)(st.st_mode & 07777));
	}
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n < 0)
		return fail(ld, "%s: cannot read %s: %s", key, path,
		    strerror(errno));
	if ((size_t)n > SECRET_MAX)
		return fail(ld, "%s: %s is larger than %d bytes", key, path,
		    SECRET_MAX);
	*out = malloc((size_t)n + 1);
	if (*out == NULL)
		return fail(ld, "out of memory");
	memcpy(*out, buf, (size_t)n);
	(*out)[n] = '\0';
	*outlen = (size_t)n;
	return 0;
}

static int
key_secret(struct loader *ld, const char *v)
{
	/* Read after the whole file: need_secret decides whether it must be. */
	ld->secret_line = ld->line;
	return set_string(ld, &ld->secret_path, v);
}

static int
key_password_file(struct loader *ld, const char *v)
{
	unsigned char *data;
	size_t len;
	char *line, *sp;

	if (read_private_file(ld, "RedisPasswordFile", v, 1, &data, &len) < 0)
		return -1;
	line = (char *)data;
	for (size_t i = 0; i < len; i++) {
		if (line[i] == '\r' || line[i] == '\n') {
			len = i;
			break;
		}
	}
	if (memchr(line, '\0', len) != NULL) {
		free(data);
		return fail(ld, "RedisPasswordFile: %s contains a NUL byte", v);
	}
	line[len] = '\0';
	sp = strchr(line, ' ');
	free(ld->cfg->redis_user);
	free(ld->cfg->redis_password);
	ld->cfg->redis_user = NULL;
	if (sp) {
		*sp = '\0';
		ld->cfg->redis_user = strdup(line);
		ld->cfg->redis_password = strdup(sp + 1 + strspn(sp + 1, " "));
	} else
		ld->cfg->redis_password = strdup(line);
	free(data);
	if (ld->cfg->redis_password == NULL || ld->cfg->redis_password[0] == '\0')
		return fail(ld, "RedisPasswordFile: %s holds no password", v);
	return 0;
}

static int
key_prefix(struct loader *ld, const char *v)
{
	for (const char *p = v; *p; p++)
		if (!isgraph((unsigned char)*p) || *p == '{' || *p == '}')
			return fail(ld, "RedisPrefix: \"%s\": only printable characters other than braces", v);
	if (strlen(v) > 64)
		return fail(ld, "RedisPrefix: longer than 64 characters");
	return set_string(ld, &ld->cfg->redis_prefix, v);
}

static int
key_retention(struct loader *ld, const char *v)
{
	return parse_long(ld, "RetentionDays", v, 1, 3650,
	    &ld->cfg->retention_days);
}

static int
key_redis_timeout(struct loader *ld, const char *v)
{
	long ms;

	if (parse_long(ld, "RedisTimeout", v, 10, 60000, &ms) < 0)
		return -1;
	ld->cfg->redis_timeout_ms = (int)ms;
	return 0;
}

static int
key_events_maxlen(struct loader *ld, const char *v)
{
	return parse_long(ld, "EventsMaxLen", v, 100, 100000000L,
	    &ld->cfg->events_maxlen);
}

static int
key_internal(struct loader *ld, const char *v)
{
	char bad[80];

	if (mt_cidr_list_add(&ld->cfg->internal, v, bad, sizeof(bad)) < 0)
		return fail(ld, "InternalHosts: \"%s\" is not an address or CIDR", bad);
	return 0;
}

static int
key_trusted(struct loader *ld, const char *v)
{
	char bad[80];

	if (mt_cidr_list_add(&ld->cfg->trusted, v, bad, sizeof(bad)) < 0)
		return fail(ld, "TrustedRelays: \"%s\" is not an address or CIDR", bad);
	return 0;
}

static int
key_site_mtas(struct loader *ld, const char *v)
{
	char bad[80];

	if (mt_cidr_list_add(&ld->cfg->site_mtas, v, bad, sizeof(bad)) < 0)
		return fail(ld, "SiteMTAs: \"%s\" is not an address or CIDR", bad);
	return 0;
}

/*
 * Appends the words of a "a, b c" list to a string array. A word may hold
 * only the bytes ok_byte allows: these values are compared with what
 * headers and log lines say, so nothing else could ever match.
 */
static int
add_words(struct loader *ld, const char *key, const char *v, char ***list,
    size_t *n, int (*ok_byte)(int))
{
	const char *p = v;

	while (*p) {
		size_t len;
		char **nv;

		while (*p == ',' || *p == ' ' || *p == '\t')
			p++;
		len = strcspn(p, ", \t");
		if (len == 0)
			break;
		for (size_t i = 0; i < len; i++)
			if (!ok_byte((unsigned char)p[i]))
				return fail(ld, "%s: \"%.*s\" has a character "
				    "that cannot occur there", key, (int)len, p);
		if (len > 255)
			return fail(ld, "%s: \"%.40s...\" is too long", key, p);
		if ((nv = realloc(*list, (*n + 1) * sizeof(*nv))) == NULL)
			return fail(ld, "out of memory");
		*list = nv;
		if ((nv[*n] = strndup(p, len)) == NULL)
			return fail(ld, "out of memory");
		(*n)++;
		p += len;
	}
	return 0;
}

/* authserv-id (RFC 8601): a domain name, or any value-ish token. */
static int
authserv_byte(int ch)
{
	return isalnum(ch) || ch == '.' || ch == '-' || ch == '_';
}

/* Postfix's syslog_name: letters, digits and a few separators. */
static int
syslog_name_byte(int ch)
{
	return isalnum(ch) || ch == '.' || ch == '-' || ch == '_';
}

static int
key_authserv_ids(struct loader *ld, const char *v)
{
	return add_words(ld, "TrustedAuthservIDs", v, &ld->cfg->authserv_ids,
	    &ld->cfg->n_authserv_ids, authserv_byte);
}

static int
key_postfix_syslog_names(struct loader *ld, const char *v)
{
	return add_words(ld, "PostfixSyslogNames", v,
	    &ld->cfg->postfix_syslog_names, &ld->cfg->n_postfix_syslog_names,
	    syslog_name_byte);
}

static int
parse_bool(struct loader *ld, const char *key, const char *v, int *out)
{
	if (strcasecmp(v, "yes") == 0 || strcasecmp(v, "true") == 0 ||
	    strcmp(v, "1") == 0)
		*out = 1;
	else if (strcasecmp(v, "no") == 0 || strcasecmp(v, "false") == 0 ||
	    strcmp(v, "0") == 0)
		*out = 0;
	else
		return fail(ld, "%s: \"%s\" is neither yes nor no", key, v);
	return 0;
}

/*
 * MaxDeferral: a Postfix-style time, digits and one unit of s, m, h, d or
 * w (no unit: days), from one minute to 366 days.
 */
static int
key_max_deferral(struct loader *ld, const char *v)
{
	static const struct { char unit; long secs; } units[] = {
		{ 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 },
		{ 'w', 7 * 86400 },
	};
	long secs = 86400;
	char *end;
	long n;

	errno = 0;
	n = strtol(v, &end, 10);
	if (end == v || errno != 0 || n <= 0 || n > 1000000)
		goto bad;
	if (*end != '\0') {
		size_t i;

		for (i = 0; i < sizeof(units) / sizeof(units[0]) &&
		    units[i].unit != *end; i++)
			;
		if (i == sizeof(units) / sizeof(units[0]) || end[1] != '\0')
			goto bad;
		secs = units[i].secs;
	}
	if (n * secs < 60 || n * secs > 366L * 86400)
		return fail(ld, "MaxDeferral: \"%s\" is not between 1m and 366d",
		    v);
	ld->cfg->max_deferral_s = n * secs;
	return 0;
bad:
	return fail(ld, "MaxDeferral: \"%s\" is not a time such as 30d, 12h "
	    "or 90m", v);
}

static int
key_track_inbound(struct loader *ld, const char *v)
{
	return parse_bool(ld, "TrackInbound", v, &ld->cfg->track_inbound);
}

static int
key_reader_location(struct loader *ld, const char *v)
{
	if (strcmp(v, "city") == 0)
		ld->cfg->reader_location = MT_READER_CITY;
	else if (strcmp(v, "country") == 0)
		ld->cfg->reader_location = MT_READER_COUNTRY;
	else if (strcmp(v, "none") == 0)
		ld->cfg->reader_location = MT_READER_NONE;
	else
		return fail(ld, "ReaderLocation: \"%s\" is none of city, "
		    "country, none", v);
	return 0;
}

/* PublicAddress: one address, IPv4 or IPv6, without brackets or port. */
static int
key_public_address(struct loader *ld, const char *v)
{
	unsigned char buf[16];

	if (inet_pton(AF_INET, v, buf) != 1 && inet_pton(AF_INET6, v, buf) != 1)
		return fail(ld, "PublicAddress: \"%s\" is not an IPv4 or IPv6 "
		    "address", v);
	return set_string(ld, &ld->cfg->public_address, v);
}

static int
key_map_land(struct loader *ld, const char *v)
{
	return set_string(ld, &ld->cfg->map_land, v);
}

static int
key_read_receipt(struct loader *ld, const char *v)
{
	return parse_bool(ld, "RequestReadReceipt", v,
	    &ld->cfg->request_read_receipt);
}

static int
key_route(struct loader *ld, const char *v)
{
	struct mt_config_line *nv;

	nv = realloc(ld->cfg->routes, (ld->cfg->n_routes + 1) * sizeof(*nv));
	if (nv == NULL)
		return fail(ld, "out of memory");
	ld->cfg->routes = nv;
	nv[ld->cfg->n_routes].text = strdup(v);
	nv[ld->cfg->n_routes].line = ld->line;
	if (nv[ld->cfg->n_routes].text == NULL)
		return fail(ld, "out of memory");
	ld->cfg->n_routes++;
	return 0;
}

static int
key_route_socket(struct loader *ld, const char *v)
{
	char *saved = ld->cfg->socket;
	int rc;

	/* Same forms as Socket; borrow its checks. */
	ld->cfg->socket = NULL;
	rc = key_socket(ld, v);
	free(ld->cfg->route_socket);
	ld->cfg->route_socket = ld->cfg->socket;
	ld->cfg->socket = saved;
	if (rc < 0)
		snprintf(ld->err, ld->errlen, "%s:%d: RouteSocket: \"%s\" is "
		    "neither unix:/path nor inet:PORT@HOST", ld->file, ld->line, v);
	return rc;
}

static int
key_route_fail_closed(struct loader *ld, const char *v)
{
	return parse_bool(ld, "RouteFailClosed", v, &ld->cfg->route_fail_closed);
}

static int
key_route_sticky(struct loader *ld, const char *v)
{
	return parse_bool(ld, "RouteSticky", v, &ld->cfg->route_sticky);
}

static int
key_route_blocklist(struct loader *ld, const char *v)
{
	char **nv;

	for (const char *p = v; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' &&
		    *p != '_')
			return fail(ld, "RouteBlocklist: \"%s\" is not a DNS zone", v);
	nv = realloc(ld->cfg->route_blocklists,
	    (ld->cfg->n_route_blocklists + 1) * sizeof(*nv));
	if (nv == NULL)
		return fail(ld, "out of memory");
	ld->cfg->route_blocklists = nv;
	nv[ld->cfg->n_route_blocklists] = strdup(v);
	if (nv[ld->cfg->n_route_blocklists] == NULL)
		return fail(ld, "out of memory");
	ld->cfg->n_route_blocklists++;
	return 0;
}

static int
key_geodb(struct loader *ld, const char *v)
{
	char **nv;

	if (v[0] != '/')
		return fail(ld, "GeoDB: \"%s\": path must be absolute", v);
	if (access(v, R_OK) != 0)
		return fail(ld, "GeoDB: cannot read %s: %s", v, strerror(errno));
	nv = realloc(ld->cfg->geodb, (ld->cfg->n_geodb + 1) * sizeof(*nv));
	if (nv == NULL)
		return fail(ld, "out of memory");
	ld->cfg->geodb = nv;
	nv[ld->cfg->n_geodb] = strdup(v);
	if (nv[ld->cfg->n_geodb] == NULL)
		return fail(ld, "out of memory");
	ld->cfg->n_geodb++;
	return 0;
}

static int
key_spool(struct loader *ld, const char *v)
{
	if (v[0] != '/')
		return fail(ld, "SpoolDir: \"%s\": path must be absolute", v);
	return set_string(ld, &ld->cfg->spool_dir, v);
}

static int
key_log_format(struct loader *ld, const char *v)
{
	if (strcasecmp(v, "kv") == 0)
		ld->cfg->log_format = MT_LOG_KV;
	else if (strcasecmp(v, "json") == 0)
		ld->cfg->log_format = MT_LOG_JSON;
	else
		return fail(ld, "LogFormat: \"%s\" is neither kv nor json", v);
	return 0;
}

static int
key_store_failure(struct loader *ld, const char *v)
{
	if (strcasecmp(v, "tempfail") == 0)
		ld->cfg->on_store_failure = MT_FAIL_TEMPFAIL;
	else if (strcasecmp(v, "accept") == 0)
		ld->cfg->on_store_failure = MT_FAIL_ACCEPT;
	else
		return fail(ld, "StoreFailure: \"%s\" is neither tempfail nor accept", v);
	return 0;
}

static const struct key {
	const char *name;
	key_fn *fn;
	int repeatable;
} keys[] = {
	{ "Socket", key_socket, 0 },
	{ "UMask", key_umask, 0 },
	{ "UserID", key_userid, 0 },
	{ "PidFile", key_pidfile, 0 },
	{ "RedisServer", key_redis_server, 0 },
	{ "RedisSentinel", key_redis_sentinel, 0 },
	{ "RedisCluster", key_redis_cluster, 0 },
	{ "RedisSentinelMaster", key_redis_sentinel_master, 0 },
	{ "RedisPasswordFile", key_password_file, 0 },
	{ "RedisPrefix", key_prefix, 0 },
	{ "RedisTimeout", key_redis_timeout, 0 },
	{ "RetentionDays", key_retention, 0 },
	{ "EventsMaxLen", key_events_maxlen, 0 },
	{ "SecretKeyFile", key_secret, 0 },
	{ "InternalHosts", key_internal, 1 },
	{ "TrustedRelays", key_trusted, 1 },
	{ "SiteMTAs", key_site_mtas, 1 },
	{ "TrustedAuthservIDs", key_authserv_ids, 1 },
	{ "PostfixSyslogNames", key_postfix_syslog_names, 1 },
	{ "GeoDB", key_geodb, 1 },
	{ "SpoolDir", key_spool, 0 },
	{ "LogFormat", key_log_format, 0 },
	{ "StoreFailure", key_store_failure, 0 },
	{ "RequestReadReceipt", key_read_receipt, 0 },
	{ "TrackInbound", key_track_inbound, 0 },
	{ "MaxDeferral", key_max_deferral, 0 },
	{ "ReaderLocation", key_reader_location, 0 },
	{ "PublicAddress", key_public_address, 0 },
	{ "MapLand", key_map_land, 0 },
	{ "Route", key_route, 1 },
	{ "RouteSocket", key_route_socket, 0 },
	{ "RouteFailClosed", key_route_fail_closed, 0 },
	{ "RouteSticky", key_route_sticky, 0 },
	{ "RouteBlocklist", key_route_blocklist, 1 },
};

_Static_assert(sizeof(keys) / sizeof(keys[0]) <=
    sizeof(((struct loader *)0)->seen) / sizeof(int),
    "struct loader's seen[] has a slot per key");

static struct mt_config *
config_defaults(const char *path)
{
	struct mt_config *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->refs = 1;
	c->umask = 007;
	c->redis_timeout_ms = 1000;
	c->retention_days = 30;
	c->events_maxlen = 100000;
	c->log_format = MT_LOG_KV;
	c->on_store_failure = MT_FAIL_TEMPFAIL;
	c->track_inbound = 1;
	c->max_deferral_s = 30L * 86400;
	c->path = strdup(path);
	c->socket = strdup("unix:/run/mailtrail/milter.sock");
	c->redis_server = strdup("127.0.0.1:6379");
	c->redis_prefix = strdup("mt:");
	c->redis_sentinel_master = strdup("mymaster");
	c->spool_dir = strdup("/var/spool/mailtrail");
	c->map_land = strdup("/var/lib/mailtrail/land-110m.json");
	c->route_socket = strdup("unix:/run/mailtrail/route.sock");
	if (!c->path || !c->socket || !c->redis_server || !c->redis_prefix ||
	    !c->redis_sentinel_master ||
	    !c->spool_dir || !c->route_socket || !c->map_land) {
		mt_config_unref(c);
		return NULL;
	}
	return c;
}

/* Splits "Key value" into key and trimmed value; 0 for blank/comment lines. */
static int
split_line(char *line, char **key, char **value)
{
	char *p = line, *end;

	p += strspn(p, " \t");
	if (*p == '\0' || *p == '#')
		return 0;
	*key = p;
	p += strcspn(p, " \t");
	if (*p != '\0')
		*p++ = '\0';
	p += strspn(p, " \t");
	end = p + strlen(p);
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	*value = p;
	return 1;
}

static int
apply_line(struct loader *ld, char *line)
{
	char *key, *value;
	size_t i;

	if (strchr(line, '\r'))
		*strchr(line, '\r') = '\0';
	if (!split_line(line, &key, &value))
		return 0;
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcasecmp(key, keys[i].name) == 0)
			break;
	if (i == sizeof(keys) / sizeof(keys[0]))
		return fail(ld, "unknown key \"%.64s\"", key);
	if (*value == '\0')
		return fail(ld, "%s: missing value", keys[i].name);
	if (!keys[i].repeatable && ld->seen[i] > 0)
		return fail(ld, "%s: given twice, first on line %d; edit that "
		    "line instead", keys[i].name, ld->seen[i]);
	if (ld->seen[i] == 0)
		ld->seen[i] = ld->line > 0 ? ld->line : 1;
	return keys[i].fn(ld, value);
}

static int
read_lines(struct loader *ld, FILE *fp)
{
	char line[LINE_MAX_LEN + 2];

	while (fgets(line, sizeof(line), fp) != NULL) {
		size_t n = strlen(line);

		ld->line++;
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		else if (!feof(fp))
			return fail(ld, "line longer than %d bytes", LINE_MAX_LEN);
		if (memchr(line, '\0', n) != NULL || strlen(line) != n)
			return fail(ld, "NUL byte in line");
		if (apply_line(ld, line) < 0)
			return -1;
	}
	if (ferror(fp))
		return fail(ld, "read error: %s", strerror(errno));
	return 0;
}

static int
finish(struct loader *ld, int need_secret)
{
	struct mt_config *c = ld->cfg;
	char bad[80];

	if (c->internal.n == 0 &&
	    mt_cidr_list_add(&c->internal, "127.0.0.0/8, ::1/128", bad,
	    sizeof(bad)) < 0)
		return fail(ld, "out of memory");
	if (c->redis_sentinel != NULL && c->redis_server_set)
		return fail(ld, "RedisSentinel and RedisServer both given: the "
		    "Sentinels name the server; give one of them");
	if (c->redis_cluster != NULL && (c->redis_server_set ||
	    c->redis_sentinel != NULL))
		return fail(ld, "RedisCluster and %s both given: give one of "
		    "them", c->redis_sentinel ? "RedisSentinel" : "RedisServer");
	if (c->n_postfix_syslog_names == 0 &&
	    add_words(ld, "PostfixSyslogNames", "postfix",
	    &c->postfix_syslog_names, &c->n_postfix_syslog_names,
	    syslog_name_byte) < 0)
		return -1;
	if (!need_secret)
		return 0;
	ld->line = ld->secret_line;
	if (ld->secret_path == NULL)
		return fail(ld, "SecretKeyFile is required");
	if (read_private_file(ld, "SecretKeyFile", ld->secret_path, 1,
	    &c->secret, &c->secret_len) < 0)
		return -1;
	if (c->secret_len < SECRET_MIN)
		return fail(ld, "SecretKeyFile: %s holds %zu bytes; at least %d "
		    "are needed", ld->secret_path, c->secret_len, SECRET_MIN);
	return 0;
}

struct mt_config *
mt_config_load(const char *path, int need_secret, char *err, size_t errlen)
{
	struct loader ld = { 0 };
	FILE *fp;
	int rc;

	ld.file = path;
	ld.err = err;
	ld.errlen = errlen;
	ld.cfg = config_defaults(path);
	if (ld.cfg == NULL) {
		fail(&ld, "out of memory");
		return NULL;
	}
	fp = fopen(path, "re");
	if (fp == NULL) {
		fail(&ld, "cannot open: %s", strerror(errno));
		mt_config_unref(ld.cfg);
		return NULL;
	}
	rc = read_lines(&ld, fp);
	fclose(fp);
	if (rc == 0)
		rc = finish(&ld, need_secret);
	free(ld.secret_path);
	if (rc < 0) {
		mt_config_unref(ld.cfg);
		return NULL;
	}
	return ld.cfg;
}

struct mt_config *
mt_config_ref(struct mt_config *c)
{
	__atomic_add_fetch(&c->refs, 1, __ATOMIC_SEQ_CST);
	return c;
}

void
mt_config_unref(struct mt_config *c)
{
	if (c == NULL || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_SEQ_CST) > 0)
		return;
	if (c->on_free)
		c->on_free(c);
	free(c->path);
	free(c->socket);
	free(c->userid);
	free(c->pidfile);
	free(c->redis_server);
	free(c->redis_sentinel);
	free(c->redis_cluster);
	free(c->redis_sentinel_master);
	free(c->redis_user);
	if (c->redis_password)
		explicit_bzero(c->redis_password, strlen(c->redis_password));
	free(c->redis_password);
	free(c->redis_prefix);
	if (c->secret)
		explicit_bzero(c->secret, c->secret_len);
	free(c->secret);
	mt_cidr_list_free(&c->internal);
	mt_cidr_list_free(&c->trusted);
	mt_cidr_list_free(&c->site_mtas);
	for (size_t i = 0; i < c->n_authserv_ids; i++)
		free(c->authserv_ids[i]);
	free(c->authserv_ids);
	for (size_t i = 0; i < c->n_postfix_syslog_names; i++)
		free(c->postfix_syslog_names[i]);
	free(c->postfix_syslog_names);
	for (size_t i = 0; i < c->n_geodb; i++)
		free(c->geodb[i]);
	free(c->geodb);
	free(c->spool_dir);
	free(c->public_address);
	free(c->map_land);
	for (size_t i = 0; i < c->n_routes; i++)
		free(c->routes[i].text);
	free(c->routes);
	free(c->route_socket);
	for (size_t i = 0; i < c->n_route_blocklists; i++)
		free(c->route_blocklists[i]);
	free(c->route_blocklists);
	free(c);
}
