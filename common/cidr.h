/*
 * CIDR lists for InternalHosts and friends: parse "a.b.c.d/n, ::1/128" and
 * match a socket address. Small and specific enough to write by hand.
 */
#ifndef MT_CIDR_H
#define MT_CIDR_H

#include <stddef.h>
#include <sys/socket.h>

struct mt_cidr {
	int family;			/* AF_INET or AF_INET6 */
	unsigned char addr[16];		/* network byte order, masked */
	int bits;
};

struct mt_cidr_list {
	struct mt_cidr *v;
	size_t n;
};

/* Parses one "ADDR[/BITS]"; 0 or -1. */
int mt_cidr_parse(const char *s, struct mt_cidr *out);
/* Appends every entry of a comma/space separated list; 0 or -1 with the bad token in bad. */
int mt_cidr_list_add(struct mt_cidr_list *l, const char *text, char *bad, size_t badlen);
/* 1 when sa (AF_INET, AF_INET6, v4-mapped v6) lies in any entry. */
int mt_cidr_list_match(const struct mt_cidr_list *l, const struct sockaddr *sa);
/* Same for a textual address; 0 when text is not an address. */
int mt_cidr_list_match_text(const struct mt_cidr_list *l, const char *ip);
void mt_cidr_list_free(struct mt_cidr_list *l);

#endif
