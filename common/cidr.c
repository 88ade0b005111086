/*
 * CIDR lists: InternalHosts and, later, TrustedRelays. IPv4-mapped IPv6
 * client addresses match IPv4 entries, as Postfix's own mynetworks does.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "cidr.h"

int
mt_cidr_parse(const char *s, struct mt_cidr *out)
{
	char buf[INET6_ADDRSTRLEN + 8];
	char *slash, *end;
	size_t len = strlen(s);
	long bits;
	int max;

	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len + 1);
	slash = strchr(buf, '/');
	if (slash)
		*slash++ = '\0';
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, buf, out->addr) == 1) {
		out->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
		out->family = AF_INET6;
		max = 128;
	} else
		return -1;
	bits = max;
	if (slash) {
		if (*slash < '0' || *slash > '9')
			return -1;
		bits = strtol(slash, &end, 10);
		if (*end != '\0' || bits < 0 || bits > max)
			return -1;
	}
	out->bits = (int)bits;
	/* Keep the network part only, so matching is a plain prefix compare. */
	for (int i = 0; i < max / 8; i++) {
		int keep = (int)bits - i * 8;
		if (keep <= 0)
			out->addr[i] = 0;
		else if (keep < 8)
			out->addr[i] &= (unsigned char)(0xff << (8 - keep));
	}
	return 0;
}

int
mt_cidr_list_add(struct mt_cidr_list *l, const char *text, char *bad,
    size_t badlen)
{
	const char *p = text;

	while (*p) {
		size_t n;
		char tok[INET6_ADDRSTRLEN + 8];
		struct mt_cidr c, *nv;

		p += strspn(p, ", \t");
		n = strcspn(p, ", \t");
		if (n == 0)
			break;
		if (n >= sizeof(tok)) {
			snprintf(bad, badlen, "%.*s...", 40, p);
			return -1;
		}
		memcpy(tok, p, n);
		tok[n] = '\0';
		p += n;
		if (mt_cidr_parse(tok, &c) < 0) {
			snprintf(bad, badlen, "%s", tok);
			return -1;
		}
		nv = realloc(l->v, (l->n + 1) * sizeof(*nv));
		if (nv == NULL) {
			snprintf(bad, badlen, "out of memory");
			return -1;
		}
		l->v = nv;
		l->v[l->n++] = c;
	}
	return 0;
}

static int
prefix_match(const unsigned char *a, const unsigned char *net, int bits)
{
	int whole = bits / 8, rest = bits % 8;

	if (memcmp(a, net, (size_t)whole) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return (a[whole] & (unsigned char)(0xff << (8 - rest))) == net[whole];
}

static int
match_raw(const struct mt_cidr_list *l, int family, const unsigned char *a)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].family == family &&
		    prefix_match(a, l->v[i].addr, l->v[i].bits))
			return 1;
	return 0;
}

static int
match_v6(const struct mt_cidr_list *l, const unsigned char *a)
{
	static const unsigned char mapped[12] =
	    { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (memcmp(a, mapped, sizeof(mapped)) == 0 &&
	    match_raw(l, AF_INET, a + 12))
		return 1;
	return match_raw(l, AF_INET6, a);
}

int
mt_cidr_list_match(const struct mt_cidr_list *l, const struct sockaddr *sa)
{
	if (sa == NULL)
		return 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		return match_raw(l, AF_INET,
		    (const unsigned char *)&in->sin_addr);
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 =
		    (const struct sockaddr_in6 *)sa;
		return match_v6(l, in6->sin6_addr.s6_addr);
	}
	return 0;
}

int
mt_cidr_list_match_text(const struct mt_cidr_list *l, const char *ip)
{
	unsigned char a[16];

	if (inet_pton(AF_INET, ip, a) == 1)
		return match_raw(l, AF_INET, a);
	if (inet_pton(AF_INET6, ip, a) == 1)
		return match_v6(l, a);
	return 0;
}

void
mt_cidr_list_free(struct mt_cidr_list *l)
{
	free(l->v);
	l->v = NULL;
	l->n = 0;
}
