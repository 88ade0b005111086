/*
 * Received: headers, as Postfix, Sendmail, Exim, Exchange, Gmail and qmail
 * write them, read for the one fact we need: which address connected. A
 * single bounded pass; nothing is allocated, nothing nests on the stack.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "../common/text.h"
#include "geo.h"

#define LITERAL_MAX 64

struct clause {
	size_t start, end;	/* [start, end) of the words after the keyword */
};

static int
is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* "word" at i, at paren depth 0, bounded by blanks (or the value's start). */
static int
keyword_at(const char *v, size_t len, size_t i, const char *word)
{
	size_t n = strlen(word);

	if (i + n >= len || strncasecmp(v + i, word, n) != 0)
		return 0;
	if (i > 0 && !is_blank(v[i - 1]) && v[i - 1] != ')')
		return 0;
	return is_blank(v[i + n]);
}

/* Finds the from and by clauses at depth 0; the date after ';' is ignored. */
static void
find_clauses(const char *v, size_t len, struct clause *from, struct clause *by)
{
	int depth = 0, in_bracket = 0;
	struct clause *open = NULL;

	for (size_t i = 0; i < len; i++) {
		char c = v[i];

		if (c == '[' && !in_bracket)
			in_bracket = 1;
		else if (c == ']')
			in_bracket = 0;
		else if (c == '(' && !in_bracket && depth < 1000)
			depth++;
		else if (c == ')' && !in_bracket && depth > 0)
			depth--;
		if (depth != 0 || in_bracket)
			continue;
		if (c == ';')
			break;
		if (from->end == 0 && keyword_at(v, len, i, "from")) {
			if (open)
				open->end = i;
			open = from;
			from->start = i + 4;
			from->end = len;
		} else if (by->end == 0 && keyword_at(v, len, i, "by")) {
			if (open)
				open->end = i;
			open = by;
			by->start = i + 2;
			by->end = len;
		}
	}
	/* A clause stops at the date separator too. */
	for (struct clause *c = from; c; c = (c == from) ? by : NULL)
		for (size_t i = c->start; i < c->end; i++)
			if (v[i] == ';') {
				c->end = i;
				break;
			}
}

static void
first_word(const char *v, const struct clause *c, char *out, size_t outsize)
{
	size_t i = c->start, j;

	out[0] = '\0';
	while (i < c->end && is_blank(v[i]))
		i++;
	j = i;
	while (j < c->end && !is_blank(v[j]) && v[j] != '(' && v[j] != ';')
		j++;
	if (j > i)
		mt_text_header(out, outsize, v + i, j - i);
}

/* "1.2.3.4", "IPv6:2001:db8::1" or "2001:db8::1" into canonical text. */
static int
literal_ip(const char *s, size_t n, char *out)
{
	char buf[LITERAL_MAX];
	unsigned char a[16];

	if (n >= 5 && strncasecmp(s, "IPv6:", 5) == 0) {
		s += 5;
		n -= 5;
	}
	if (n == 0 || n >= sizeof(buf))
		return 0;
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (inet_pton(AF_INET, buf, a) == 1)
		return inet_ntop(AF_INET, a, out, MT_IP_MAX) != NULL;
	if (inet_pton(AF_INET6, buf, a) == 1)
		return inet_ntop(AF_INET6, a, out, MT_IP_MAX) != NULL;
	return 0;
}

static int is_helo_word(const char *s, size_t n);

/* Exim's "helo=[192.168.1.10]": the client's claim, not what was seen. */
static int
claimed_by_helo(const char *v, size_t start, size_t i)
{
	while (i > start && (v[i - 1] == '=' || is_blank(v[i - 1])))
		i--;
	return i >= start + 4 && is_helo_word(v + i - 4, 4);
}

/*
 * Bracketed literals first: they are what the receiving MTA saw. Inside
 * the comment ("from helo (rdns [ip])") before the from word itself, which
 * is only the client's HELO and may be a literal of its choosing.
 */
static int
bracketed_ip(const char *v, const struct clause *c, int in_comment, char *out)
{
	int depth = 0;

	for (size_t i = c->start; i < c->end; i++) {
		size_t j;

		if (v[i] == '(')
			depth++;
		else if (v[i] == ')' && depth > 0)
			depth--;
		if (v[i] != '[')
			continue;
		for (j = i + 1; j < c->end && j - i <= LITERAL_MAX; j++)
			if (v[j] == ']' || v[j] == '[')
				break;
		if (j < c->end && v[j] == ']' && (depth > 0) == in_comment &&
		    !claimed_by_helo(v, c->start, i) &&
		    literal_ip(v + i + 1, j - i - 1, out))
			return 1;
		i = j - 1;
	}
	return 0;
}

static int
token_end(char c)
{
	return is_blank(c) || c == '(' || c == ')' || c == '[' || c == ']' ||
	    c == ',' || c == ';' || c == '=' || c == '<' || c == '>' || c == '@';
}

static int
is_helo_word(const char *s, size_t n)
{
	return n == 4 && (strncasecmp(s, "helo", 4) == 0 ||
	    strncasecmp(s, "ehlo", 4) == 0);
}

/*
 * Exchange and qmail put the bare address in parentheses; qmail's
 * "(HELO 203.0.113.1)" is the client's claim and is skipped.
 */
static int
bare_ip(const char *v, const struct clause *c, int in_comment, char *out)
{
	size_t i = c->start;
	int depth = 0, after_helo = 0;

	while (i < c->end) {
		size_t j = i;

		while (j < c->end && !token_end(v[j]))
			j++;
		if (j > i) {
			if (!after_helo && (depth > 0) == in_comment &&
			    literal_ip(v + i, j - i, out))
				return 1;
			after_helo = is_helo_word(v + i, j - i);
		}
		if (j < c->end && v[j] == '(')
			depth++;
		else if (j < c->end && v[j] == ')' && depth > 0)
			depth--;
		i = j + 1;
	}
	return 0;
}

int
mt_received_parse(const char *value, size_t len, struct mt_received *out)
{
	struct clause from = { 0, 0 }, by = { 0, 0 };

	memset(out, 0, sizeof(*out));
	if (len > MT_RECEIVED_SCAN)
		len = MT_RECEIVED_SCAN;
	find_clauses(value, len, &from, &by);
	if (from.end == 0 && by.end == 0)
		return -1;
	if (from.end > from.start) {
		first_word(value, &from, out->from_host, sizeof(out->from_host));
		if (!bracketed_ip(value, &from, 1, out->ip) &&
		    !bracketed_ip(value, &from, 0, out->ip) &&
		    !bare_ip(value, &from, 1, out->ip))
			bare_ip(value, &from, 0, out->ip);
	}
	if (by.end > by.start)
		first_word(value, &by, out->by_host, sizeof(out->by_host));
	return 0;
}
