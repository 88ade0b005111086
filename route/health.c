/*
 * Route health from DNS: DNS blocklist lookups of an outbound address
 * (RFC 5782: reversed octets or nibbles under the zone, an A record in
 * 127.0.0.0/8 means listed, TXT gives the reason) and forward-confirmed
 * reverse DNS (PTR, then A/AAAA of that name back to the address).
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "route.h"

#define ANSWER_MAX 4096

/* The reverse labels of ip, without the suffix: "4.3.2.1" / nibbles. */
static int
reverse_labels(const char *ip, char *out, size_t outlen, int *v6)
{
	unsigned char a[16];
	size_t o = 0;

	if (inet_pton(AF_INET, ip, a) == 1) {
		*v6 = 0;
		return snprintf(out, outlen, "%u.%u.%u.%u", a[3], a[2], a[1],
		    a[0]) < (int)outlen ? 0 : -1;
	}
	if (inet_pton(AF_INET6, ip, a) != 1)
		return -1;
	*v6 = 1;
	if (outlen < 64)
		return -1;
	for (int i = 15; i >= 0; i--) {
		static const char hex[] = "0123456789abcdef";

		out[o++] = hex[a[i] & 15];
		out[o++] = '.';
		out[o++] = hex[a[i] >> 4];
		out[o++] = i ? '.' : '\0';
	}
	return 0;
}

int
mt_route_dnsbl_name(const char *ip, const char *zone, char *out,
    size_t outlen)
{
	char rev[80];
	int v6, n;

	if (reverse_labels(ip, rev, sizeof(rev), &v6) < 0)
		return -1;
	n = snprintf(out, outlen, "%s.%s", rev, zone);
	return n > 0 && (size_t)n < outlen ? 0 : -1;
}

/*
 * One query; the answer records of type in msg. Returns the number of
 * answers, 0 for NXDOMAIN/no data, -1 for a failed lookup.
 */
static int
query(res_state rs, const char *name, int type, unsigned char *ans,
    ns_msg *msg)
{
	int n;

	n = res_nquery(rs, name, ns_c_in, type, ans, ANSWER_MAX);
	if (n < 0) {
		if (rs->res_h_errno == HOST_NOT_FOUND ||
		    rs->res_h_errno == NO_DATA)
			return 0;
		return -1;
	}
	if (ns_initparse(ans, n, msg) < 0)
		return -1;
	return ns_msg_count(*msg, ns_s_an);
}

/* Appends "s" to a comma-separated buffer, cutting at its end. */
static void
append(char *buf, size_t len, const char *s)
{
	size_t n = strlen(buf), sl = strlen(s);

	if (n > 0) {
		if (n + 3 >= len)
			return;
		memcpy(buf + n, ", ", 2);
		n += 2;
	}
	if (sl > len - n - 1)
		sl = len - n - 1;
	memcpy(buf + n, s, sl);
	buf[n + sl] = '\0';
}

static void
txt_of(ns_msg *msg, const ns_rr *rr, char *out, size_t outlen)
{
	const unsigned char *p = ns_rr_rdata(*rr);
	const unsigned char *end = p + ns_rr_rdlen(*rr);
	size_t o = 0;

	(void)msg;
	while (p < end && o + 1 < outlen) {
		size_t l = *p++;

		for (size_t i = 0; i < l && p < end && o + 1 < outlen; i++, p++)
			out[o++] = (*p < 0x20 || *p >= 0x7f) ? '?' : (char)*p;
	}
	out[o] = '\0';
}

static void
check_zone(res_state rs, const char *ip, const char *zone,
    struct mt_route_health *h)
{
	unsigned char ans[ANSWER_MAX];
	char name[NS_MAXDNAME], code[64] = "", text[300] = "", line[400];
	ns_msg msg;
	ns_rr rr;
	int n, listed = 0;

	if (mt_route_dnsbl_name(ip, zone, name, sizeof(name)) < 0)
		return;
	n = query(rs, name, ns_t_a, ans, &msg);
	if (n < 0) {
		h->dns_errors++;
		snprintf(line, sizeof(line), "%s: lookup failed", zone);
		append(h->problem, sizeof(h->problem), line);
		return;
	}
	for (int i = 0; i < n; i++) {
		const unsigned char *a;

		if (ns_parserr(&msg, ns_s_an, i, &rr) < 0 ||
		    ns_rr_type(rr) != ns_t_a || ns_rr_rdlen(rr) != 4)
			continue;
		a = ns_rr_rdata(rr);
		/* 127.255.255.x: the list refuses us (e.g. public resolver). */
		if (a[0] != 127 || (a[1] == 255 && a[2] == 255)) {
			snprintf(line, sizeof(line), "%s: answer %u.%u.%u.%u is "
			    "not a listing", zone, a[0], a[1], a[2], a[3]);
			append(h->problem, sizeof(h->problem), line);
			h->dns_errors++;
			continue;
		}
		listed = 1;
		snprintf(code, sizeof(code), "%u.%u.%u.%u", a[0], a[1], a[2],
		    a[3]);
	}
	if (!listed)
		return;
	h->listed = 1;
	append(h->listed_by, sizeof(h->listed_by), zone);
	if (query(rs, name, ns_t_txt, ans, &msg) > 0 &&
	    ns_parserr(&msg, ns_s_an, 0, &rr) == 0 &&
	    ns_rr_type(rr) == ns_t_txt)
		txt_of(&msg, &rr, text, sizeof(text));
	snprintf(line, sizeof(line), "%s %s%s%s", zone, code,
	    text[0] ? ": " : "", text);
	append(h->reason, sizeof(h->reason), line);
}

/* Does name have an address record equal to ip? 1, 0, -1 lookup failed. */
static int
forward_confirms(res_state rs, const char *name, const char *ip, int v6)
{
	unsigned char ans[ANSWER_MAX], want[16];
	ns_msg msg;
	ns_rr rr;
	int n;
	ns_type type = v6 ? ns_t_aaaa : ns_t_a;
	size_t alen = v6 ? 16 : 4;

	inet_pton(v6 ? AF_INET6 : AF_INET, ip, want);
	n = query(rs, name, type, ans, &msg);
	if (n < 0)
		return -1;
	for (int i = 0; i < n; i++)
		if (ns_parserr(&msg, ns_s_an, i, &rr) == 0 &&
		    ns_rr_type(rr) == type && ns_rr_rdlen(rr) == alen &&
		    memcmp(ns_rr_rdata(rr), want, alen) == 0)
			return 1;
	return 0;
}

static void
check_reverse(res_state rs, const char *ip, const char *helo,
    struct mt_route_health *h)
{
	unsigned char ans[ANSWER_MAX];
	char rev[80], name[NS_MAXDNAME], line[NS_MAXDNAME + 100];
	ns_msg msg;
	ns_rr rr;
	int v6, n, fc;

	if (reverse_labels(ip, rev, sizeof(rev), &v6) < 0)
		return;
	snprintf(name, sizeof(name), "%s.%s", rev, v6 ? "ip6.arpa" :
	    "in-addr.arpa");
	n = query(rs, name, ns_t_ptr, ans, &msg);
	if (n < 0) {
		h->dns_errors++;
		snprintf(line, sizeof(line), "PTR of %s: lookup failed", ip);
		append(h->problem, sizeof(h->problem), line);
		return;
	}
	for (int i = 0; i < n && h->ptr[0] == '\0'; i++) {
		if (ns_parserr(&msg, ns_s_an, i, &rr) < 0 ||
		    ns_rr_type(rr) != ns_t_ptr)
			continue;
		if (ns_name_uncompress(ns_msg_base(msg), ns_msg_end(msg),
		    ns_rr_rdata(rr), name, sizeof(name)) < 0)
			continue;
		for (char *p = name; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?';
		h->ptr[0] = '\0';
		append(h->ptr, sizeof(h->ptr), name);
	}
	if (h->ptr[0] == '\0') {
		snprintf(line, sizeof(line), "%s has no PTR record", ip);
		append(h->problem, sizeof(h->problem), line);
		return;
	}
	fc = forward_confirms(rs, h->ptr, ip, v6);
	if (fc < 0) {
		h->dns_errors++;
		snprintf(line, sizeof(line), "%s: address lookup failed",
		    h->ptr);
		append(h->problem, sizeof(h->problem), line);
	} else if (fc == 0) {
		snprintf(line, sizeof(line), "PTR %s does not resolve back to "
		    "%s", h->ptr, ip);
		append(h->problem, sizeof(h->problem), line);
	}
	h->fcrdns = fc == 1;
	h->helo_match = strcasecmp(h->ptr, helo) == 0;
	if (!h->helo_match) {
		snprintf(line, sizeof(line), "PTR %s is not the HELO name %s",
		    h->ptr, helo);
		append(h->problem, sizeof(h->problem), line);
	}
}

int
mt_route_check_ip(const char *ip, char *const *zones, size_t nzones,
    const char *helo, struct mt_route_health *h, char *err, size_t errlen)
{
	struct __res_state rs;
	char rev[80];
	int v6;

	memset(h, 0, sizeof(*h));
	if (reverse_labels(ip, rev, sizeof(rev), &v6) < 0) {
		snprintf(err, errlen, "\"%s\" is not an IP address", ip);
		return -1;
	}
	memset(&rs, 0, sizeof(rs));
	if (res_ninit(&rs) != 0) {
		snprintf(err, errlen, "cannot read the resolver configuration");
		return -1;
	}
	/* Absolute names only: a search domain must never turn a miss into a hit. */
	rs.options &= ~(unsigned long)(RES_DNSRCH | RES_DEFNAMES);
	for (size_t i = 0; i < nzones; i++)
		check_zone(&rs, ip, zones[i], h);
	check_reverse(&rs, ip, helo, h);
	res_nclose(&rs);
	return 0;
}
