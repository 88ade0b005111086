/*
 * Scheduled sending: parsers for what the releaser reads back from Postfix
 * (postqueue -j lines, postcat -h header blocks) and the X-Mailtrail-Hold
 * marker. Every byte is untrusted; nothing is allocated but by jansson.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "schedule.h"

/* A bounded, always NUL-terminated destination for cleaned text. */
struct sink {
	char *buf;
	size_t size, len;
	int cut;		/* something did not fit; nothing more is added */
};

enum slot { SLOT_NONE, SLOT_ID, SLOT_HOLD, SLOT_DD, SLOT_SUBJECT };

/* The header being read: its field, if it is the first of its name. */
struct scan {
	struct mt_sched_headers *h;
	struct sink out;
	enum slot slot;
	int open;		/* continuation lines belong to a header */
	int broken;		/* one of its lines was too long to read */
	int subject_seen;
};

static int
is_blank(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* Length of the valid UTF-8 sequence at p (RFC 3629), or 0. */
static size_t
utf8_len(const unsigned char *p, size_t n)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t need;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		need = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		need = 3;
		if (p[0] == 0xe0)
			lo = 0xa0;	/* overlong */
		else if (p[0] == 0xed)
			hi = 0x9f;	/* surrogates */
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		need = 4;
		if (p[0] == 0xf0)
			lo = 0x90;
		else if (p[0] == 0xf4)
			hi = 0x8f;	/* past U+10FFFF */
	} else
		return 0;
	if (n < need || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < need; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return need;
}

/*
 * Appends src[0..len): control bytes and invalid UTF-8 bytes become '?',
 * and text is cut before the first character that does not fit. In header
 * mode TAB counts as a space, leading blanks are dropped and a blank that
 * does not fit is not a cut (trimming would remove it anyway).
 */
static void
sink_put(struct sink *s, const char *src, size_t len, int header)
{
	const unsigned char *p = (const unsigned char *)src;
	const unsigned char *end = p + len;

	while (p < end && !s->cut) {
		size_t n = utf8_len(p, (size_t)(end - p));
		int blank = header && is_blank(*p);

		if (n > 1 && s->size - s->len > n) {
			memcpy(s->buf + s->len, p, n);
			s->len += n;
			p += n;
			continue;
		}
		if (n <= 1 && s->size - s->len > 1) {
			if (!(blank && s->len == 0))
				s->buf[s->len++] = blank ? ' ' :
				    n == 0 || *p < 0x20 || *p == 0x7f ?
				    '?' : (char)*p;
			p++;
			continue;
		}
		if (blank)
			p++;
		else
			s->cut = 1;
	}
	s->buf[s->len] = '\0';
}

static void
sink_start(struct sink *s, char *buf, size_t size)
{
	s->buf = buf;
	s->size = size;
	s->len = 0;
	s->cut = 0;
	buf[0] = '\0';
}

/* Postfix queue IDs, short (hex) and long (base 52 with 'z'), alike. */
static int
qid_ok(const char *p, size_t n)
{
	if (n == 0 || n >= MT_SCHED_QID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= '0' && p[i] <= '9') ||
		    (p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= 'a' && p[i] <= 'z')))
			return 0;
	return 1;
}

static void
json_text(char *dst, size_t size, const json_t *v)
{
	struct sink s;

	sink_start(&s, dst, size);
	if (json_is_string(v))
		sink_put(&s, json_string_value(v), json_string_length(v), 0);
}

static void
entry_recipients(const json_t *list, struct mt_sched_entry *e)
{
	size_t i;
	json_t *r, *addr;

	if (!json_is_array(list))
		return;
	json_array_foreach(list, i, r) {
		addr = json_object_get(r, "address");
		if (!json_is_object(r) || !json_is_string(addr))
			continue;
		if (e->nkept < MT_SCHED_RCPT_MAX)
			json_text(e->rcpt[e->nkept++], MT_SCHED_ADDR_MAX, addr);
		e->nrcpt++;
	}
}

int
mt_sched_entry_parse(const char *line, size_t len, struct mt_sched_entry *e)
{
	json_error_t err;
	json_t *root, *name, *id, *at;
	int rc = -1;

	e->queue_name[0] = e->qid[0] = e->sender[0] = '\0';
	e->arrival = -1;
	e->nrcpt = e->nkept = 0;
	/* A \u0000 is cleaned like any other control, not a reason to fail. */
	root = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
	    &err);
	if (root == NULL)
		return -1;
	name = json_object_get(root, "queue_name");
	id = json_object_get(root, "queue_id");
	if (!json_is_object(root) || !json_is_string(name) ||
	    !json_is_string(id) ||
	    !qid_ok(json_string_value(id), json_string_length(id)))
		goto out;
	json_text(e->queue_name, sizeof(e->queue_name), name);
	json_text(e->qid, sizeof(e->qid), id);
	at = json_object_get(root, "arrival_time");
	if (json_is_integer(at) && json_integer_value(at) >= 0)
		e->arrival = (int64_t)json_integer_value(at);
	json_text(e->sender, sizeof(e->sender),
	    json_object_get(root, "sender"));
	entry_recipients(json_object_get(root, "recipients"), e);
	rc = 0;
out:
	json_decref(root);
	return rc;
}

#define HOLD_T_DIGITS 12
#define HOLD_T_MAX INT64_C(999999999999)

int
mt_sched_hold_format(char *buf, size_t size, int64_t t, const char *qid)
{
	struct tm tm;
	time_t tt = (time_t)t;
	char until[32];
	int n;

	if (size == 0)
		return -1;
	buf[0] = '\0';
	if (t < 0 || t > HOLD_T_MAX || qid == NULL ||
	    !qid_ok(qid, strnlen(qid, MT_SCHED_QID_MAX)) ||
	    gmtime_r(&tt, &tm) == NULL ||
	    strftime(until, sizeof(until), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return -1;
	n = snprintf(buf, size, "t=%" PRId64 "; qid=%s; until=%s", t, qid,
	    until);
	if (n < 0 || (size_t)n >= size) {
		buf[0] = '\0';
		return -1;
	}
	return 0;
}

/* One "name=value" of a marker, blanks trimmed; empty fields are skipped. */
static int
hold_field(const char *p, const char *end, int64_t *t, const char **qid,
    size_t *qidlen)
{
	const char *eq;
	int64_t v = 0;

	while (p < end && is_blank((unsigned char)*p))
		p++;
	while (end > p && is_blank((unsigned char)end[-1]))
		end--;
	if (p == end)
		return 0;
	if ((eq = memchr(p, '=', (size_t)(end - p))) == NULL || eq == p)
		return -1;
	if (eq - p == 1 && *p == 't') {
		if (*t != -1 || end - eq - 1 < 1 || end - eq - 1 > HOLD_T_DIGITS)
			return -1;
		for (p = eq + 1; p < end; p++) {
			if (*p < '0' || *p > '9')
				return -1;
			v = v * 10 + (*p - '0');
		}
		*t = v;
	} else if (eq - p == 3 && memcmp(p, "qid", 3) == 0) {
		if (*qid != NULL || !qid_ok(eq + 1, (size_t)(end - eq - 1)))
			return -1;
		*qid = eq + 1;
		*qidlen = (size_t)(end - eq - 1);
	}
	return 0;
}

int
mt_sched_hold_parse(const char *value, size_t len, int64_t *t, char *qid,
    size_t qidsize)
{
	const char *p = value, *end = value + len, *semi, *q = NULL;
	size_t qlen = 0;
	int64_t tv = -1;

	*t = -1;
	if (qidsize > 0)
		qid[0] = '\0';
	while (p < end) {
		semi = memchr(p, ';', (size_t)(end - p));
		if (hold_field(p, semi ? semi : end, &tv, &q, &qlen) != 0)
			return -1;
		p = semi ? semi + 1 : end;
	}
	if (tv < 0 || q == NULL || qlen >= qidsize)
		return -1;
	memcpy(qid, q, qlen);
	qid[qlen] = '\0';
	*t = tv;
	return 0;
}

static int
name_is(const char *p, size_t n, const char *want)
{
	size_t i;

	for (i = 0; i < n && want[i] != '\0'; i++) {
		unsigned char a = (unsigned char)p[i], b = (unsigned char)want[i];

		if (a >= 'A' && a <= 'Z')
			a += 'a' - 'A';
		if (b >= 'A' && b <= 'Z')
			b += 'a' - 'A';
		if (a != b)
			return 0;
	}
	return i == n && want[i] == '\0';
}

/* Length of "Name" in "Name:" or "Name :" and *value past the colon, or 0. */
static size_t
header_name(const char *p, size_t n, size_t *value)
{
	size_t i = 0, name;

	while (i < n && (unsigned char)p[i] > 0x20 &&
	    (unsigned char)p[i] < 0x7f && p[i] != ':')
		i++;
	name = i;
	while (i < n && is_blank((unsigned char)p[i]))
		i++;
	if (name == 0 || i == n || p[i] != ':')
		return 0;
	*value = i + 1;
	return name;
}

static int
id_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64)
		return 0;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789._-") == n;
}

/* Ends the header being read: trims, and empties a field it cannot trust. */
static void
scan_finish(struct scan *sc)
{
	struct sink *s = &sc->out;

	if (sc->slot != SLOT_NONE) {
		while (s->len > 0 && s->buf[s->len - 1] == ' ')
			s->buf[--s->len] = '\0';
		if (sc->broken || (sc->slot == SLOT_ID && (s->cut ||
		    !id_ok(s->buf))) || (sc->slot == SLOT_HOLD && s->cut))
			s->buf[s->len = 0] = '\0';
	}
	sc->slot = SLOT_NONE;
	sc->open = 0;
	sc->broken = 0;
}

/* A header line: counts it and, for the first of a name, starts its field. */
static void
scan_header(struct scan *sc, const char *name, size_t n)
{
	struct mt_sched_headers *h = sc->h;

	sc->open = 1;
	if (name_is(name, n, "X-Mailtrail-ID") && ++h->n_id == 1) {
		sc->slot = SLOT_ID;
		sink_start(&sc->out, h->id, sizeof(h->id));
	} else if (name_is(name, n, MT_SCHED_HOLD_HEADER) && ++h->n_hold == 1) {
		sc->slot = SLOT_HOLD;
		sink_start(&sc->out, h->hold, sizeof(h->hold));
	} else if (name_is(name, n, "Deferred-Delivery") && ++h->n_dd == 1) {
		sc->slot = SLOT_DD;
		sink_start(&sc->out, h->dd, sizeof(h->dd));
	} else if (name_is(name, n, "Subject") && !sc->subject_seen) {
		sc->subject_seen = 1;
		sc->slot = SLOT_SUBJECT;
		sink_start(&sc->out, h->subject, sizeof(h->subject));
	}
}

/* One line without its LF; returns 1 when it ends the header block. */
static int
scan_line(struct scan *sc, const char *p, size_t n, int *seen)
{
	size_t name, value;
	int overlong = n > MT_SCHED_LINE_MAX;

	if (n > 0 && p[n - 1] == '\r')
		n--;
	if (n == 0)
		return 1;
	if (is_blank((unsigned char)p[0])) {
		if (sc->open && overlong)
			sc->broken = 1;
		else if (sc->slot != SLOT_NONE && !sc->broken)
			sink_put(&sc->out, p, n, 1);
		return 0;
	}
	scan_finish(sc);
	if (n >= 4 && memcmp(p, "*** ", 4) == 0)
		return 0;
	if ((name = header_name(p, n, &value)) == 0)
		return 0;
	*seen = 1;
	scan_header(sc, p, name);
	if (overlong)
		sc->broken = 1;
	else if (sc->slot != SLOT_NONE)
		sink_put(&sc->out, p + value, n - value, 1);
	return 0;
}

int
mt_sched_headers_scan(const char *text, size_t len,
    struct mt_sched_headers *h)
{
	struct scan sc = { .h = h };
	const char *p = text, *end = text + len, *nl;
	int seen = 0;

	memset(h, 0, sizeof(*h));
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (scan_line(&sc, p, (size_t)((nl ? nl : end) - p), &seen))
			break;
		p = nl ? nl + 1 : end;
	}
	scan_finish(&sc);
	return seen ? 0 : -1;
}
