/*
 * Route lines: "NAME transport=SERVICE bind=IPv4 [bind6=IPv6] helo=HOST
 * weight=N [warmup=YYYY-MM-DD:CAP:GROWTH]". Parsed here, from the raw text
 * common/config.c keeps, into checked structs.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "route.h"
#include "../common/config.h"

static int
name_ok(const char *s, size_t n, int dots)
{
	if (n == 0 || n > MT_ROUTE_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' &&
		    s[i] != '_' && !(dots && s[i] == '.'))
			return 0;
	return 1;
}

static int
hostname_ok(const char *s)
{
	size_t n = strlen(s), label = 0;

	if (n == 0 || n > MT_ROUTE_HOST_MAX || s[0] == '.' || s[n - 1] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)s[i]) && s[i] != '-')
			return 0;
		if (++label > 63)
			return 0;
	}
	return 1;
}

/* Days since the epoch of YYYY-MM-DD (UTC); -1 when malformed. */
static long
parse_day(const char *s, size_t n)
{
	struct tm tm;
	int y, m, d;
	char buf[16];
	time_t t;

	if (n != 10 || s[4] != '-' || s[7] != '-')
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && !isdigit((unsigned char)buf[i]))
			return -1;
	if (sscanf(buf, "%4d-%2d-%2d", &y, &m, &d) != 3 || y < 1970 ||
	    m < 1 || m > 12 || d < 1 || d > 31)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = m - 1;
	tm.tm_mday = d;
	t = timegm(&tm);
	if (t == (time_t)-1 || tm.tm_mday != d)	/* 2024-02-31 normalises */
		return -1;
	return (long)(t / 86400);
}

static int
parse_warmup(const char *v, struct mt_route *r, char *err, size_t errlen)
{
	const char *c1 = strchr(v, ':'), *c2;
	char *end;
	long cap;
	double g;

	if (c1 == NULL || (c2 = strchr(c1 + 1, ':')) == NULL)
		goto bad;
	r->warm_start_day = parse_day(v, (size_t)(c1 - v));
	if (r->warm_start_day < 0)
		goto bad;
	errno = 0;
	cap = strtol(c1 + 1, &end, 10);
	if (end != c2 || errno || cap < 1 || cap > 100000000 ||
	    !isdigit((unsigned char)c1[1]))
		goto bad;
	errno = 0;
	g = strtod(c2 + 1, &end);
	if (*end != '\0' || errno || !isfinite(g) || g < 1.0 || g > 100.0 ||
	    !isdigit((unsigned char)c2[1]))
		goto bad;
	r->warmup = 1;
	r->warm_first_cap = cap;
	r->warm_growth = g;
	return 0;
bad:
	snprintf(err, errlen, "warmup=\"%.100s\" is not START_DATE:CAP:GROWTH "
	    "(YYYY-MM-DD, 1..100000000, 1.0..100)", v);
	return -1;
}

static int
set_key(struct mt_route *r, const char *k, size_t kn, const char *v,
    unsigned *seen, char *err, size_t errlen)
{
	static const char *const keys[] = { "transport", "bind", "bind6",
	    "helo", "weight", "warmup" };
	struct in_addr a4;
	struct in6_addr a6;
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strlen(keys[i]) == kn && strncasecmp(k, keys[i], kn) == 0)
			break;
	if (i == sizeof(keys) / sizeof(keys[0])) {
		snprintf(err, errlen, "unknown setting \"%.*s\" (transport, "
		    "bind, bind6, helo, weight, warmup)", (int)(kn > 40 ? 40 : kn),
		    k);
		return -1;
	}
	if (*seen & (1u << i)) {
		snprintf(err, errlen, "%s= given twice", keys[i]);
		return -1;
	}
	*seen |= 1u << i;
	switch (i) {
	case 0:
		if (!name_ok(v, strlen(v), 1)) {
			snprintf(err, errlen, "transport=\"%.64s\" is not a "
			    "master.cf service name", v);
			return -1;
		}
		snprintf(r->transport, sizeof(r->transport), "%s", v);
		return 0;
	case 1:
		if (inet_pton(AF_INET, v, &a4) != 1) {
			snprintf(err, errlen, "bind=\"%.64s\" is not an IPv4 "
			    "address", v);
			return -1;
		}
		inet_ntop(AF_INET, &a4, r->bind, sizeof(r->bind));
		return 0;
	case 2:
		if (inet_pton(AF_INET6, v, &a6) != 1) {
			snprintf(err, errlen, "bind6=\"%.64s\" is not an IPv6 "
			    "address", v);
			return -1;
		}
		inet_ntop(AF_INET6, &a6, r->bind6, sizeof(r->bind6));
		return 0;
	case 3:
		if (!hostname_ok(v)) {
			snprintf(err, errlen, "helo=\"%.64s\" is not a host "
			    "name", v);
			return -1;
		}
		snprintf(r->helo, sizeof(r->helo), "%s", v);
		for (char *p = r->helo; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		return 0;
	case 4: {
		char *end;
		long w;

		errno = 0;
		w = strtol(v, &end, 10);
		if (!isdigit((unsigned char)v[0]) || *end || errno || w < 1 ||
		    w > MT_ROUTE_WEIGHT_MAX) {
			snprintf(err, errlen, "weight=\"%.64s\" is not a whole "
			    "number from 1 to %d", v, MT_ROUTE_WEIGHT_MAX);
			return -1;
		}
		r->weight = (unsigned)w;
		return 0;
	}
	default:
		return parse_warmup(v, r, err, errlen);
	}
}

int
mt_route_parse(const char *text, struct mt_route *r, char *err,
    size_t errlen)
{
	const char *p = text, *w;
	unsigned seen = 0;
	char tok[512];

	memset(r, 0, sizeof(*r));
	r->weight = 1;
	while (*p == ' ' || *p == '\t')
		p++;
	w = p;
	while (*p && *p != ' ' && *p != '\t')
		p++;
	if (!name_ok(w, (size_t)(p - w), 0)) {
		snprintf(err, errlen, "route name \"%.*s\" must be 1 to %d of "
		    "[A-Za-z0-9_-]", (int)((p - w) > 40 ? 40 : (p - w)), w,
		    MT_ROUTE_NAME_MAX);
		return -1;
	}
	memcpy(r->name, w, (size_t)(p - w));
	r->name[p - w] = '\0';
	for (;;) {
		const char *eq;
		size_t n;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		w = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		n = (size_t)(p - w);
		if (n >= sizeof(tok)) {
			snprintf(err, errlen, "setting too long");
			return -1;
		}
		memcpy(tok, w, n);
		tok[n] = '\0';
		eq = strchr(tok, '=');
		if (eq == NULL || eq == tok) {
			snprintf(err, errlen, "\"%.64s\" is not key=value", tok);
			return -1;
		}
		if (set_key(r, tok, (size_t)(eq - tok), eq + 1, &seen, err,
		    errlen) < 0)
			return -1;
	}
	if (r->transport[0] == '\0')
		snprintf(r->transport, sizeof(r->transport), "%s", r->name);
	if (r->bind[0] == '\0' && r->bind6[0] == '\0') {
		snprintf(err, errlen, "route %s needs bind= and/or bind6=",
		    r->name);
		return -1;
	}
	if (r->helo[0] == '\0') {
		snprintf(err, errlen, "route %s needs helo=", r->name);
		return -1;
	}
	return 0;
}

static const char *const reserved_services[] = { "smtp", "relay", "lmtp",
    "local", "virtual", "pipe", "error", "retry", "discard", "smtpd",
    "cleanup", "qmgr", "pickup", "bounce", "defer", "trace", "verify",
    "flush", "proxymap", "proxywrite", "showq", "anvil", "scache",
    "tlsmgr", "rewrite", "postlog", "postscreen", "dnsblog", "tlsproxy" };

int
mt_routes_load(const struct mt_config *cfg, struct mt_routes *out,
    char *err, size_t errlen)
{
	char why[384];

	out->v = NULL;
	out->n = 0;
	if (cfg->n_routes == 0)
		return 0;
	out->v = calloc(cfg->n_routes, sizeof(*out->v));
	if (out->v == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < cfg->n_routes; i++) {
		struct mt_route *r = &out->v[i];

		if (mt_route_parse(cfg->routes[i].text, r, why,
		    sizeof(why)) < 0)
			goto fail;
		r->line = cfg->routes[i].line;
		for (size_t j = 0; j < sizeof(reserved_services) /
		    sizeof(reserved_services[0]); j++)
			if (strcmp(r->transport, reserved_services[j]) == 0) {
				snprintf(why, sizeof(why), "transport %s is a "
				    "stock Postfix service; give the route a "
				    "service of its own", r->transport);
				goto fail;
			}
		for (size_t j = 0; j < i; j++) {
			if (strcasecmp(out->v[j].name, r->name) == 0) {
				snprintf(why, sizeof(why), "route %s already "
				    "defined at line %d", r->name,
				    out->v[j].line);
				goto fail;
			}
			if (strcmp(out->v[j].transport, r->transport) == 0) {
				snprintf(why, sizeof(why), "transport %s "
				    "already used by route %s", r->transport,
				    out->v[j].name);
				goto fail;
			}
		}
		out->n++;
		continue;
fail:
		snprintf(err, errlen, "%s:%d: Route: %s", cfg->path,
		    cfg->routes[i].line, why);
		mt_routes_free(out);
		return -1;
	}
	return 0;
}

void
mt_routes_free(struct mt_routes *rs)
{
	free(rs->v);
	rs->v = NULL;
	rs->n = 0;
}

const struct mt_route *
mt_routes_find(const struct mt_routes *rs, const char *name)
{
	for (size_t i = 0; i < rs->n; i++)
		if (strcasecmp(rs->v[i].name, name) == 0)
			return &rs->v[i];
	return NULL;
}

long
mt_route_today(void)
{
	return (long)(time(NULL) / 86400);
}

void
mt_route_day_string(long day, char out[16])
{
	time_t t = (time_t)day * 86400;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 16, "%Y%m%d", &tm);
}

long
mt_route_cap(const struct mt_route *r, long day)
{
	double cap;

	if (!r->warmup)
		return -1;
	if (day < r->warm_start_day)
		return 0;		/* not started: no mail at all yet */
	cap = (double)r->warm_first_cap *
	    pow(r->warm_growth, (double)(day - r->warm_start_day));
	/* Past a billion a day the schedule is over. */
	if (!isfinite(cap) || cap >= 1e9)
		return -1;
	return (long)cap;
}
