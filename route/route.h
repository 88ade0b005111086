/*
 * Outbound IP rotation: Route lines, the choice among routes (smooth
 * weighted round robin, sticky per sender domain, warm-up caps in Redis),
 * the socketmap protocol Postfix asks through, and route health (DNS
 * blocklists, forward-confirmed reverse DNS). Library code: never logs,
 * never exits; errors come back in caller buffers.
 */
#ifndef MT_ROUTE_H
#define MT_ROUTE_H

#include <stddef.h>
#include <stdint.h>
#include <hiredis/hiredis.h>

struct mt_config;

#define MT_ROUTE_NAME_MAX 32		/* also the longest transport name */
#define MT_ROUTE_HOST_MAX 253
#define MT_ROUTE_WEIGHT_MAX 10000
#define MT_ROUTE_MAP_NAME "route"	/* socketmap:...:route */
#define MT_ROUTE_RESOLVER "mailtrail-resolve"	/* qmgr's trivial-rewrite */
#define MT_SOCKETMAP_MAX 10000		/* longest request, socketmap_table(5) */

/* ---- route/config.c ---------------------------------------------------- */

struct mt_route {
	char name[MT_ROUTE_NAME_MAX + 1];
	char transport[MT_ROUTE_NAME_MAX + 1];	/* master.cf service */
	char bind[46];			/* IPv4, "" = none */
	char bind6[46];			/* IPv6, "" = none */
	char helo[MT_ROUTE_HOST_MAX + 1];
	unsigned weight;
	int warmup;			/* warm-up schedule configured */
	long warm_start_day;		/* days since 1970-01-01 (UTC) */
	long warm_first_cap;		/* messages on the start day */
	double warm_growth;		/* cap multiplier per day, >= 1 */
	int line;			/* config line, for messages */
};

struct mt_routes {
	struct mt_route *v;
	size_t n;
};

/*
 * One Route value ("NAME key=value ..."). 0, or -1 with a message (no
 * file:line prefix) in err.
 */
int mt_route_parse(const char *text, struct mt_route *r, char *err,
    size_t errlen);
/* Every Route of cfg, checked together (unique names, transports). */
int mt_routes_load(const struct mt_config *cfg, struct mt_routes *out,
    char *err, size_t errlen);
void mt_routes_free(struct mt_routes *rs);
const struct mt_route *mt_routes_find(const struct mt_routes *rs,
    const char *name);

/* Today's number in days since the epoch (UTC), and its YYYYMMDD form. */
long mt_route_today(void);
void mt_route_day_string(long day, char out[16]);
/* The warm-up cap for day, or -1 when the route has no cap that day. */
long mt_route_cap(const struct mt_route *r, long day);

/* ---- route/select.c ---------------------------------------------------- */

/* Health as stored in Redis (P route:NAME) and cached by the daemon. */
enum mt_route_state { MT_ROUTE_ACTIVE, MT_ROUTE_PAUSED, MT_ROUTE_LISTED };
const char *mt_route_state_name(enum mt_route_state s);

/*
 * The warm-up gate: takes one message from route r's count for day when
 * the count is below cap. 1 taken, 0 the cap is reached, -1 no answer.
 */
typedef int (*mt_route_take_fn)(void *arg, const struct mt_route *r,
    long day, long cap);

struct mt_selector;

/* A selector over a copy of routes; NULL when out of memory. */
struct mt_selector *mt_selector_new(const struct mt_routes *routes,
    int sticky);
void mt_selector_free(struct mt_selector *s);
size_t mt_selector_count(const struct mt_selector *s);
const struct mt_route *mt_selector_route(const struct mt_selector *s,
    size_t i);
void mt_selector_set_state(struct mt_selector *s, size_t i,
    enum mt_route_state st);
/* Marks every route unknown/known: unknown health means not usable. */
void mt_selector_set_health_known(struct mt_selector *s, int known);
/* Takes over src's health states, route by route name (on reload). */
void mt_selector_copy_states(struct mt_selector *dst, struct mt_selector *src);

/*
 * The route for one delivery of mail from sender (the socketmap key).
 * Returns the route index, or -1 with why filled when none is usable.
 * Thread-safe.
 */
int mt_route_pick(struct mt_selector *s, const char *sender, size_t len,
    long day, mt_route_take_fn take, void *arg, char *why, size_t whylen);

/* Redis side. Keys: P route:NAME and P route:NAME:DAY (state/schema.h). */
struct mt_db_link;
struct mt_schema;
/* 1 taken, 0 the day's cap is reached, -1 with err. */
int mt_route_take_redis(struct mt_db_link *l, const struct mt_schema *sc,
    const struct mt_route *r, long day, long cap, char *err, size_t errlen);
/* Reads every route's state into s; 0, or -1 with err (states kept). */
int mt_selector_refresh(struct mt_selector *s, struct mt_db_link *l,
    const struct mt_schema *sc, char *err, size_t errlen);

/* ---- route/socketmap.c --------------------------------------------------- */

struct mt_socketmap_req {
	const char *name;	/* map name, not NUL-terminated */
	size_t name_len;
	const char *key;	/* lookup key, not NUL-terminated */
	size_t key_len;
};

/*
 * Parses one netstring request "LEN:NAME KEY," at the start of buf.
 * Returns the bytes it used (> 0), 0 when more input is needed, or -1 when
 * the input is not a valid request (err says why; the connection cannot be
 * resynchronised). Never reads past len; LEN is capped at
 * MT_SOCKETMAP_MAX.
 */
long mt_socketmap_parse(const char *buf, size_t len,
    struct mt_socketmap_req *req, char *err, size_t errlen);
/*
 * Writes the netstring "LEN:STATUS DATA," into out. Returns its length, or
 * 0 when it does not fit. Control bytes in data become '?'.
 */
size_t mt_socketmap_reply(char *out, size_t outlen, const char *status,
    const char *data);
/* The sender domain of a socketmap key ("a@b", "@b", "<>"), lower case. */
size_t mt_route_sender_domain(const char *key, size_t len, char *out,
    size_t outlen);

/* ---- route/health.c ------------------------------------------------------ */

struct mt_route_health {
	int listed;			/* on at least one blocklist */
	char listed_by[256];		/* zones, comma separated */
	char reason[512];		/* TXT text or the 127.0.0.x code */
	char ptr[MT_ROUTE_HOST_MAX + 1];	/* "" when none */
	int fcrdns;			/* PTR name resolves back to the IP */
	int helo_match;			/* PTR name equals helo */
	char problem[512];		/* why fcrdns/helo failed; DNS errors */
	int dns_errors;			/* lookups that failed (not NXDOMAIN) */
};

/*
 * Checks ip (IPv4 or IPv6 text) against zones and its reverse DNS against
 * helo, using the system resolver (resolv.conf). 0, or -1 with err when ip
 * is not an address.
 */
int mt_route_check_ip(const char *ip, char *const *zones, size_t nzones,
    const char *helo, struct mt_route_health *h, char *err, size_t errlen);
/* "2.0.0.127.zone" / nibble form for IPv6; 0, or -1 when ip is bad. */
int mt_route_dnsbl_name(const char *ip, const char *zone, char *out,
    size_t outlen);

#endif
