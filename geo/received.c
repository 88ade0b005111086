/*
 * Received: headers, as Postfix, Sendmail, Exim, Exchange, Gmail, qmail,
 * CommuniGate, ecelerity and XMail write them, read for the one fact we
 * need: which address connected; and the lines that record no connection
 * at all (mail fetched by POP3/IMAP, spooled by a local user) told apart.
 * Bounded passes; nothing is allocated, nothing nests on the stack.
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

/* SquirrelMail's "from 192.0.2.1 (... user admin); by web1 with HTTP". */
static int
by_follows(const char *v, size_t len, size_t i)
{
	while (i < len && is_blank(v[i]))
		i++;
	return keyword_at(v, len, i, "by");
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
		if (c == ';' && !(by->end == 0 && by_follows(v, len, i + 1)))
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

/* The text in s[0..n) as an address, IPv4-mapped IPv6 shown as IPv4. */
static int
address_text(const char *s, size_t n, int v4_only, char *out)
{
	static const unsigned char v4_mapped[12] = {
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
	};
	char buf[LITERAL_MAX];
	unsigned char a[16];

	if (n == 0 || n >= sizeof(buf))
		return 0;
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (inet_pton(AF_INET, buf, a) == 1)
		return inet_ntop(AF_INET, a, out, MT_IP_MAX) != NULL;
	if (v4_only || inet_pton(AF_INET6, buf, a) != 1)
		return 0;
	/* "::ffff:192.0.2.1": an IPv4 client on a dual-stack socket. */
	if (memcmp(a, v4_mapped, sizeof(v4_mapped)) == 0)
		return inet_ntop(AF_INET, a + 12, out, MT_IP_MAX) != NULL;
	return inet_ntop(AF_INET6, a, out, MT_IP_MAX) != NULL;
}

/* Length of a trailing port ("50387" after sep), or 0 when there is none. */
static size_t
port_suffix(const char *s, size_t n, char sep)
{
	size_t i = n, port = 0;

	while (i > 0 && n - i < 5 && s[i - 1] >= '0' && s[i - 1] <= '9')
		i--;
	if (i == n || i < 2 || s[i - 1] != sep)
		return 0;
	for (size_t k = i; k < n; k++)
		port = port * 10 + (size_t)(s[k] - '0');
	return port <= 65535 ? n - i + 1 : 0;
}

/*
 * "1.2.3.4", "IPv6:2001:db8::1" or "2001:db8::1" into canonical text, and
 * the same with the client's port: ecelerity's and XMail's "1.2.3.4:50387"
 * and, only where bracketed, Exim 3's "1.2.3.4.63559". A port is taken off
 * only after a dotted quad, which ends every address that has one, so the
 * last group of an IPv6 address is never mistaken for a port.
 */
static int
literal_ip(const char *s, size_t n, int bracketed, char *out)
{
	size_t p;

	if (n >= 5 && strncasecmp(s, "IPv6:", 5) == 0) {
		s += 5;
		n -= 5;
	}
	if (address_text(s, n, 0, out))
		return 1;
	if ((p = port_suffix(s, n, ':')) > 0 && memchr(s, '.', n - p) &&
	    address_text(s, n - p, 0, out))
		return 1;
	return bracketed && (p = port_suffix(s, n, '.')) > 0 &&
	    address_text(s, n - p, 1, out);
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
		    literal_ip(v + i + 1, j - i - 1, 1, out))
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
 * "(HELO 203.0.113.1)" is the client's claim and is skipped. The claim
 * ends with its comment: an empty "(HELO )" hides nothing after it.
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
			    literal_ip(v + i, j - i, 0, out))
				return 1;
			after_helo = is_helo_word(v + i, j - i);
		}
		if (j < c->end && v[j] == '(') {
			depth++;
			after_helo = 0;
		} else if (j < c->end && v[j] == ')' && depth > 0) {
			depth--;
			after_helo = 0;
		}
		i = j + 1;
	}
	return 0;
}

/*
 * Norton's gateway and Sendmail's submission program put the from clause
 * in a comment before by: "(from KRYPTIK [192.0.2.1]) by gw.example",
 * "(from alice@localhost) by host.example". Its inside is the clause.
 */
static void
from_in_leading_comment(const char *v, size_t len, struct clause *from)
{
	size_t i = 0;
	int depth = 0;

	while (i < len && is_blank(v[i]))
		i++;
	if (i + 5 >= len || v[i] != '(' ||
	    strncasecmp(v + i + 1, "from", 4) != 0 || !is_blank(v[i + 5]))
		return;
	for (size_t j = i; j < len; j++) {
		if (v[j] == '(')
			depth++;
		else if (v[j] == ')' && --depth == 0) {
			from->start = i + 5;
			from->end = j;
			return;
		}
	}
}

static int
word_is(const char *s, size_t n, const char *word)
{
	return n == strlen(word) && strncasecmp(s, word, n) == 0;
}

/* "with POP3" (fetchmail, getmail), "with local" (Exim, Courier), ... */
static int
fetched_or_local_protocol(const char *s, size_t n)
{
	static const char *const words[] = {
		"POP", "POP2", "POP3", "POP3S", "APOP", "RPOP", "KPOP", "SDPS",
		"IMAP", "IMAP2", "IMAP4", "IMAP4rev1", "IMAPS",
		"local", "spool",
	};

	for (size_t k = 0; k < sizeof(words) / sizeof(words[0]); k++)
		if (word_is(s, n, words[k]))
			return 1;
	return n > 6 && strncasecmp(s, "local-", 6) == 0;
}

static int
all_digits(const char *s, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (s[k] < '0' || s[k] > '9')
			return 0;
	return n > 0;
}

struct word {
	const char *s;
	size_t n;
	char lead;	/* the last punctuation before it, or '\0' */
};

/*
 * Lines that record no SMTP connection, though they may name an address:
 * mail fetched from a mailbox ("by localhost with POP3 (fetchmail-6.4.37)")
 * and mail a local user spooled ("by uid 502" and "(envelope-from <...>,
 * uid 502)" from qmail-scanner, "(uid 500) ... with local" from Courier).
 */
static int
records_no_relay(const char *v, size_t len)
{
	struct word w = { NULL, 0, 0 }, prev = w, prev2 = w;
	size_t i = 0;
	int depth = 0;
	char lead = '\0';

	while (i < len) {
		size_t j = i;

		while (j < len && !token_end(v[j]))
			j++;
		if (j == i) {
			if (v[i] == '(')
				depth++;
			else if (v[i] == ')' && depth > 0)
				depth--;
			if (!is_blank(v[i]))
				lead = v[i];
			i++;
			continue;
		}
		prev2 = prev;
		prev = w;
		w.s = v + i;
		w.n = j - i;
		w.lead = lead;
		lead = '\0';
		if (depth == 0 && prev.s && word_is(prev.s, prev.n, "with") &&
		    fetched_or_local_protocol(w.s, w.n))
			return 1;
		if (w.lead == '(' && w.n > 10 &&
		    strncasecmp(w.s, "fetchmail-", 10) == 0)
			return 1;
		if (prev.s && word_is(prev.s, prev.n, "uid") &&
		    all_digits(w.s, w.n) && (prev.lead == '(' ||
		    prev.lead == ',' || (prev2.s && prev.lead == '\0' &&
		    word_is(prev2.s, prev2.n, "by"))))
			return 1;
		i = j;
	}
	return 0;
}

/* "from alice@localhost", "from bob@example.net by ... by uid 502". */
static int
from_a_local_user(const char *v, const struct clause *c)
{
	size_t i = c->start;

	while (i < c->end && is_blank(v[i]))
		i++;
	for (; i < c->end && !is_blank(v[i]) && v[i] != '(' && v[i] != '['; i++)
		if (v[i] == '@')
			return 1;
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
	if (from.end == 0)
		from_in_leading_comment(value, len, &from);
	if (from.end == 0 && by.end == 0)
		return -1;
	if (from.end > from.start) {
		first_word(value, &from, out->from_host, sizeof(out->from_host));
		if (!bracketed_ip(value, &from, 1, out->ip) &&
		    !bracketed_ip(value, &from, 0, out->ip) &&
		    !bare_ip(value, &from, 1, out->ip))
			bare_ip(value, &from, 0, out->ip);
		if (from_a_local_user(value, &from) ||
		    records_no_relay(value, len))
			out->ip[0] = '\0';
	}
	if (by.end > by.start)
		first_word(value, &by, out->by_host, sizeof(out->by_host));
	return 0;
}
