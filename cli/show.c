/*
 * Rendering for the `mailtrail` command: every byte read from Redis is
 * untrusted, so text for a terminal goes through cli_buf_escape() and JSON
 * only through jansson. Also times, numbers, distances and aligned tables.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* A CLI that cannot allocate a few kilobytes has nothing useful left to do. */
void
cli_oom(void)
{
	fputs("mailtrail: out of memory\n", stderr);
	exit(CLI_FAIL);
}

void *
cli_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		cli_oom();
	return p;
}

void *
cli_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (q == NULL)
		cli_oom();
	return q;
}

char *
cli_xstrndup(const char *s, size_t len)
{
	char *p = cli_xmalloc(len + 1);

	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

static void
buf_reserve(struct cli_buf *b, size_t more)
{
	size_t need = b->len + more + 1;

	if (need <= b->cap)
		return;
	b->cap = b->cap ? b->cap : 64;
	while (b->cap < need)
		b->cap *= 2;
	b->s = cli_xrealloc(b->s, b->cap);
}

void
cli_buf_add(struct cli_buf *b, const char *s, size_t len)
{
	buf_reserve(b, len);
	memcpy(b->s + b->len, s, len);
	b->len += len;
	b->s[b->len] = '\0';
}

void
cli_buf_addf(struct cli_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	buf_reserve(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void
cli_buf_free(struct cli_buf *b)
{
	free(b->s);
	b->s = NULL;
	b->len = b->cap = 0;
}

/*
 * Length of the well-formed UTF-8 sequence at s (1..4), or 0 when the bytes
 * are not one. Overlong forms and surrogates are refused (RFC 3629).
 */
static size_t
utf8_seq(const unsigned char *s, size_t len, unsigned long *cp)
{
	size_t n, i;
	unsigned char lo = 0x80, hi = 0xbf;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	if (s[0] == 0xe0)
		lo = 0xa0;
	else if (s[0] == 0xed)
		hi = 0x9f;
	else if (s[0] == 0xf0)
		lo = 0x90;
	else if (s[0] == 0xf4)
		hi = 0x8f;
	if (len < n || s[1] < lo || s[1] > hi)
		return 0;
	*cp = s[0] & (0x7f >> n);
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		*cp = (*cp << 6) | (s[i] & 0x3f);
	}
	return n;
}

/* Code points that reorder or break a terminal line although printable. */
static int
is_format_trap(unsigned long cp)
{
	return (cp >= 0x80 && cp <= 0x9f) ||		/* C1 controls */
	    cp == 0x2028 || cp == 0x2029 ||		/* line/para separators */
	    (cp >= 0x202a && cp <= 0x202e) ||		/* bidi embeddings */
	    (cp >= 0x2066 && cp <= 0x2069);		/* bidi isolates */
}

void
cli_buf_escape(struct cli_buf *b, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, n, k;
	unsigned long cp;

	buf_reserve(b, len);
	while (i < len) {
		if (p[i] == '\\') {
			cli_buf_add(b, "\\\\", 2);
			i++;
		} else if (p[i] >= 0x20 && p[i] < 0x7f) {
			cli_buf_add(b, (const char *)p + i, 1);
			i++;
		} else if (p[i] >= 0x80 &&
		    (n = utf8_seq(p + i, len - i, &cp)) > 0 &&
		    !is_format_trap(cp)) {
			cli_buf_add(b, (const char *)p + i, n);
			i += n;
		} else {
			n = p[i] >= 0x80 ? utf8_seq(p + i, len - i, &cp) : 0;
			for (k = 0; k < (n ? n : 1); k++)
				cli_buf_addf(b, "\\x%02x", p[i + k]);
			i += n ? n : 1;
		}
	}
}

void
cli_print_escaped(FILE *f, const char *s, size_t len)
{
	struct cli_buf b = { 0 };

	cli_buf_escape(&b, s, len);
	if (b.len > 0)
		fwrite(b.s, 1, b.len, f);
	cli_buf_free(&b);
}

void
cli_time_ms(char out[40], int64_t ms)
{
	struct tm tm;
	time_t secs;
	int64_t frac;

	/* Years 0..9999 keep the ISO form fixed-width and gmtime_r happy. */
	if (ms < 0 || ms > INT64_C(253402300799999)) {
		snprintf(out, 40, "-");
		return;
	}
	secs = (time_t)(ms / 1000);
	frac = ms % 1000;
	if (gmtime_r(&secs, &tm) == NULL) {
		snprintf(out, 40, "-");
		return;
	}
	/* The modulos only tell the compiler what the range check ensured. */
	snprintf(out, 40, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ",
	    (unsigned)(tm.tm_year + 1900) % 10000u,
	    (unsigned)(tm.tm_mon + 1) % 100u, (unsigned)tm.tm_mday % 100u,
	    (unsigned)tm.tm_hour % 100u, (unsigned)tm.tm_min % 100u,
	    (unsigned)tm.tm_sec % 100u, (unsigned)frac % 1000u);
}

int
cli_parse_i64(const char *s, size_t len, int64_t *out)
{
	char tmp[32], *end;
	long long v;

	if (len == 0 || len >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	errno = 0;
	v = strtoll(tmp, &end, 10);
	if (errno != 0 || *end != '\0' || !(tmp[0] == '-' ||
	    (tmp[0] >= '0' && tmp[0] <= '9')))
		return -1;
	*out = (int64_t)v;
	return 0;
}

int
cli_parse_double(const char *s, size_t len, double *out)
{
	char tmp[64], *end;
	double v;

	if (len == 0 || len >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	errno = 0;
	v = strtod(tmp, &end);
	if (errno != 0 || *end != '\0' || !isfinite(v) ||
	    !(tmp[0] == '-' || tmp[0] == '+' || tmp[0] == '.' ||
	    (tmp[0] >= '0' && tmp[0] <= '9')))
		return -1;
	*out = v;
	return 0;
}

/* Great-circle distance on a sphere of the Earth's mean radius. */
double
cli_haversine_km(double lat1, double lon1, double lat2, double lon2)
{
	const double r = 6371.0, rad = M_PI / 180.0;
	double dlat = (lat2 - lat1) * rad, dlon = (lon2 - lon1) * rad;
	double a = sin(dlat / 2) * sin(dlat / 2) +
	    cos(lat1 * rad) * cos(lat2 * rad) * sin(dlon / 2) * sin(dlon / 2);

	if (a > 1.0)
		a = 1.0;
	return 2.0 * r * asin(sqrt(a));
}

json_t *
cli_json_string(const char *s, size_t len)
{
	struct cli_buf b = { 0 };
	json_t *v;

	/* jansson refuses invalid UTF-8; show such bytes as \xHH text. */
	v = json_stringn(s, len);
	if (v != NULL)
		return v;
	cli_buf_escape(&b, s, len);
	v = json_stringn(b.s ? b.s : "", b.len);
	cli_buf_free(&b);
	return v;
}

/*
 * Everything past ASCII is written as \uXXXX: stored text is untrusted,
 * and C1 controls or bidi overrides must not reach a terminal or a log
 * viewer raw when someone pipes --json through it. Parsers read it back
 * unchanged.
 */
int
cli_json_print(json_t *v)
{
	int rc = json_dumpf(v, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10) |
	    JSON_ENSURE_ASCII);

	json_decref(v);
	fputc('\n', stdout);
	return rc == 0 ? 0 : -1;
}

void
cli_table_init(struct cli_table *t, size_t ncols)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
}

void
cli_table_safe(struct cli_table *t, const char *s)
{
	if (t->ncells == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 32;
		t->cells = cli_xrealloc(t->cells, t->cap * sizeof(*t->cells));
	}
	t->cells[t->ncells++] = cli_xstrndup(s, strlen(s));
}

void
cli_table_text(struct cli_table *t, const char *s, size_t len)
{
	struct cli_buf b = { 0 };

	if (s == NULL || len == 0) {
		cli_table_safe(t, "-");
		return;
	}
	cli_buf_escape(&b, s, len);
	cli_table_safe(t, b.s);
	cli_buf_free(&b);
}

/* Terminal columns of escaped (valid UTF-8) text: one per code point. */
static size_t
display_width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

void
cli_table_print(const struct cli_table *t, FILE *f, const char *indent)
{
	size_t *width, i, col, pad;

	width = cli_xmalloc(t->ncols * sizeof(*width));
	memset(width, 0, t->ncols * sizeof(*width));
	for (i = 0; i < t->ncells; i++) {
		size_t w = display_width(t->cells[i]);

		if (w > width[i % t->ncols])
			width[i % t->ncols] = w;
	}
	for (i = 0; i < t->ncells; i++) {
		col = i % t->ncols;
		if (col == 0)
			fputs(indent, f);
		fputs(t->cells[i], f);
		if (col + 1 == t->ncols || i + 1 == t->ncells) {
			fputc('\n', f);
			continue;
		}
		for (pad = display_width(t->cells[i]); pad < width[col] + 2;
		    pad++)
			fputc(' ', f);
	}
	free(width);
}

void
cli_table_free(struct cli_table *t)
{
	size_t i;

	for (i = 0; i < t->ncells; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof(*t));
}

void
cli_warn_line(const char *who, unsigned long long count, const char *what,
    const char *further, const char *line, size_t len)
{
	if (count > CLI_LINES_SHOWN)
		return;
	fprintf(stderr, "mailtrail %s: warning: %s: ", who, what);
	cli_print_escaped(stderr, line, len > 300 ? 300 : len);
	fputc('\n', stderr);
	if (count == CLI_LINES_SHOWN)
		fprintf(stderr, "mailtrail %s: further %s are only counted\n",
		    who, further);
}
