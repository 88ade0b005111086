/*
 * MDN parsing with GMime: find the message/disposition-notification part of
 * a multipart/report and the returned headers, then read the few fields we
 * need into fixed buffers. GMime parses the MIME structure and the header
 * fields; what we do by hand is only splitting "rfc822; addr" and taking
 * the disposition type.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <gmime/gmime.h>

#include "mdn.h"
#include "../common/text.h"

#define NOTIFICATION_MAX 65536	/* the fields part of a report is small */

void
mt_mdn_init(void)
{
	g_mime_init();
}

void
mt_mdn_shutdown(void)
{
	g_mime_shutdown();
}

static int
report_type_is_mdn(GMimeContentType *ct)
{
	const char *rt;

	if (ct == NULL || !g_mime_content_type_is_type(ct, "multipart", "report"))
		return 0;
	rt = g_mime_content_type_get_parameter(ct, "report-type");
	return rt != NULL && strcasecmp(rt, "disposition-notification") == 0;
}

int
mt_mdn_is_report(const char *ct)
{
	GMimeContentType *t;
	int yes;

	if (ct == NULL)
		return 0;
	t = g_mime_content_type_parse(NULL, ct);
	yes = report_type_is_mdn(t);
	if (t != NULL)
		g_object_unref(t);
	return yes;
}

/* Parses bytes that are only header fields (plus a blank line) with GMime. */
static GMimeMessage *
fields_message(const unsigned char *data, size_t len)
{
	GMimeStream *s = g_mime_stream_mem_new();
	GMimeParser *p;
	GMimeMessage *m;

	if (len > 0)
		g_mime_stream_write(s, (const char *)data, len);
	g_mime_stream_write(s, "\n\n", 2);
	g_mime_stream_reset(s);
	p = g_mime_parser_new_with_stream(s);
	m = g_mime_parser_construct_message(p, NULL);
	g_object_unref(p);
	g_object_unref(s);
	return m;
}

/* The decoded content of a leaf part, capped; NULL when too big. */
static GByteArray *
part_bytes(GMimePart *part, size_t max)
{
	GMimeDataWrapper *w = g_mime_part_get_content(part);
	GMimeStream *s;
	GByteArray *a;

	if (w == NULL)
		return NULL;
	s = g_mime_stream_mem_new();
	g_mime_data_wrapper_write_to_stream(w, s);
	a = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(s));
	/* The array outlives the stream: we free it (g_byte_array_free). */
	g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(s), FALSE);
	g_object_unref(s);
	if (a != NULL && a->len > max) {
		g_byte_array_free(a, TRUE);
		a = NULL;
	}
	return a;
}

/* The headers carried by a part: a message/... part or a leaf of fields. */
static GMimeMessage *
part_fields(GMimeObject *o)
{
	GMimeMessage *m;
	GByteArray *a;

	if (GMIME_IS_MESSAGE_PART(o)) {
		m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));
		return m ? g_object_ref(m) : NULL;
	}
	if (!GMIME_IS_PART(o) || (a = part_bytes(GMIME_PART(o),
	    NOTIFICATION_MAX)) == NULL)
		return NULL;
	m = fields_message(a->data, a->len);
	g_byte_array_free(a, TRUE);
	return m;
}

/* "rfc822; Bob@Example.org" -> "bob@example.org"; "" when unusable. */
static void
address_field(const char *v, char *dst, size_t dstsize)
{
	const char *semi;

	dst[0] = '\0';
	if (v == NULL)
		return;
	if ((semi = strchr(v, ';')) != NULL)
		v = semi + 1;
	if (mt_text_address(dst, dstsize, v, strlen(v)) == (size_t)-1 ||
	    strcmp(dst, "<>") == 0 || strchr(dst, '@') == NULL)
		dst[0] = '\0';
}

/* "manual-action/MDN-sent-manually; displayed[/modifier]" -> "displayed" */
static void
disposition_type(const char *v, char *dst, size_t dstsize)
{
	const char *semi = strrchr(v, ';');
	size_t n = 0;

	dst[0] = '\0';
	if (semi == NULL)
		return;
	for (v = semi + 1; *v == ' ' || *v == '\t'; v++)
		;
	while (n + 1 < dstsize && isalpha((unsigned char)v[n])) {
		dst[n] = (char)tolower((unsigned char)v[n]);
		n++;
	}
	dst[n] = '\0';
}

static void
clean_field(GMimeMessage *m, const char *name, char *dst, size_t dstsize)
{
	const char *v = g_mime_object_get_header(GMIME_OBJECT(m), name);

	dst[0] = '\0';
	if (v != NULL)
		mt_text_header(dst, dstsize, v, strlen(v));
}

static int
notification(GMimeMessage *f, struct mt_mdn *out, char *err, size_t errlen)
{
	char msgid[MT_MDN_FIELD_MAX];
	size_t n;

	address_field(g_mime_object_get_header(GMIME_OBJECT(f),
	    "Final-Recipient"), out->final_rcpt, sizeof(out->final_rcpt));
	address_field(g_mime_object_get_header(GMIME_OBJECT(f),
	    "Original-Recipient"), out->orig_rcpt, sizeof(out->orig_rcpt));
	clean_field(f, "Disposition", out->disposition,
	    sizeof(out->disposition));
	clean_field(f, "Reporting-UA", out->ua, sizeof(out->ua));
	clean_field(f, "Original-Message-ID", msgid, sizeof(msgid));
	n = strlen(msgid);
	if (n >= 2 && msgid[0] == '<' && msgid[n - 1] == '>') {
		msgid[n - 1] = '\0';
		memmove(msgid, msgid + 1, n - 1);
	}
	snprintf(out->orig_msgid, sizeof(out->orig_msgid), "%s", msgid);
	disposition_type(out->disposition, out->type, sizeof(out->type));
	if (out->final_rcpt[0] == '\0' || out->type[0] == '\0') {
		snprintf(err, errlen, "report without a usable %s",
		    out->final_rcpt[0] ? "Disposition" : "Final-Recipient");
		return -1;
	}
	return 1;
}

/* The returned headers (text/rfc822-headers or message/rfc822). */
static void
returned_headers(GMimeObject *o, struct mt_mdn *out)
{
	GMimeMessage *h = part_fields(o);

	if (h == NULL)
		return;
	clean_field(h, "X-Mailtrail-ID", out->mt_id, sizeof(out->mt_id));
	g_object_unref(h);
}

static int
walk_report(GMimeMultipart *mp, struct mt_mdn *out, char *err, size_t errlen)
{
	GMimeObject *o;
	GMimeContentType *ct;
	GMimeMessage *f;
	int rc = -1, n = g_mime_multipart_get_count(mp);

	snprintf(err, errlen, "report without a disposition-notification part");
	for (int i = 0; i < n; i++) {
		o = g_mime_multipart_get_part(mp, i);
		ct = g_mime_object_get_content_type(o);
		if (ct == NULL)
			continue;
		if (rc == -1 && g_mime_content_type_is_type(ct, "message",
		    "disposition-notification")) {
			if ((f = part_fields(o)) == NULL) {
				snprintf(err, errlen, "unreadable "
				    "disposition-notification part");
				return -1;
			}
			rc = notification(f, out, err, errlen);
			g_object_unref(f);
			if (rc < 0)
				return -1;
		} else if (g_mime_content_type_is_type(ct, "text",
		    "rfc822-headers") || g_mime_content_type_is_type(ct,
		    "message", "rfc822") || g_mime_content_type_is_type(ct,
		    "message", "rfc822-headers")) {
			returned_headers(o, out);
		}
	}
	return rc;
}

/*
 * An upper bound on the MIME parts, counted before GMime sees the bytes:
 * every part starts at a "--boundary" line or is declared by a
 * Content-Type line (message/rfc822 nests without boundaries). A report
 * has a handful; a crafted one with thousands costs GMime objects and
 * recursion, so it is refused after this one linear pass.
 */
static int
too_many_parts(const char *msg, size_t len)
{
	const char *p = msg, *end = msg + len, *nl;
	size_t n = 0;

	while (p < end) {
		if (((size_t)(end - p) >= 2 && p[0] == '-' && p[1] == '-') ||
		    ((size_t)(end - p) >= 12 && strncasecmp(p, "Content-Type",
		    12) == 0)) {
			if (++n > MT_MDN_MAX_PARTS)
				return 1;
		}
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			break;
		p = nl + 1;
	}
	return 0;
}

/* The nesting below o (multiparts and messages), stopping past the cap. */
static int
nesting(GMimeObject *o, int depth)
{
	GMimeMessage *m;
	int deepest = depth, d;

	if (o == NULL || depth > MT_MDN_MAX_DEPTH)
		return depth;
	if (GMIME_IS_MULTIPART(o)) {
		for (int i = 0; i < g_mime_multipart_get_count(
		    GMIME_MULTIPART(o)) && deepest <= MT_MDN_MAX_DEPTH; i++) {
			d = nesting(g_mime_multipart_get_part(GMIME_MULTIPART(o),
			    i), depth + 1);
			if (d > deepest)
				deepest = d;
		}
	} else if (GMIME_IS_MESSAGE_PART(o) && (m =
	    g_mime_message_part_get_message(GMIME_MESSAGE_PART(o))) != NULL)
		deepest = nesting(g_mime_message_get_mime_part(m), depth + 1);
	return deepest;
}

int
mt_mdn_parse(const char *msg, size_t len, struct mt_mdn *out, char *err,
    size_t errlen)
{
	GMimeStream *s;
	GMimeParser *p;
	GMimeMessage *m;
	GMimeObject *body;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	snprintf(err, errlen, "not a disposition notification");
	if (len > MT_MDN_MAX) {
		snprintf(err, errlen, "report larger than %d bytes", MT_MDN_MAX);
		return -1;
	}
	if (too_many_parts(msg, len)) {
		snprintf(err, errlen, "report with more than %d MIME parts",
		    MT_MDN_MAX_PARTS);
		return -1;
	}
	s = g_mime_stream_mem_new_with_buffer(msg, len);
	p = g_mime_parser_new_with_stream(s);
	m = g_mime_parser_construct_message(p, NULL);
	if (m != NULL && (body = g_mime_message_get_mime_part(m)) != NULL &&
	    GMIME_IS_MULTIPART(body) &&
	    report_type_is_mdn(g_mime_object_get_content_type(body))) {
		if (nesting(body, 1) > MT_MDN_MAX_DEPTH) {
			snprintf(err, errlen, "report nested deeper than %d "
			    "levels", MT_MDN_MAX_DEPTH);
			rc = -1;
		} else
			rc = walk_report(GMIME_MULTIPART(body), out, err, errlen);
	}
	if (m != NULL)
		g_object_unref(m);
	g_object_unref(p);
	g_object_unref(s);
	return rc;
}

size_t
mt_mdn_header_text(char *dst, size_t dstsize, const char *raw, size_t len)
{
	char *copy, *dec;
	size_t n;

	dst[0] = '\0';
	if (len > MT_MDN_HEADER_IN_MAX)
		len = MT_MDN_HEADER_IN_MAX;	/* the rest would be cut anyway */
	if ((copy = g_strndup(raw, len)) == NULL)
		return 0;
	dec = g_mime_utils_header_decode_text(NULL, copy);
	n = mt_text_header(dst, dstsize, dec ? dec : copy,
	    strlen(dec ? dec : copy));
	g_free(dec);
	g_free(copy);
	/* Never end inside a UTF-8 sequence: back off to its lead byte. */
	if (n > 0 && (unsigned char)dst[n - 1] >= 0x80) {
		size_t lead = n - 1, need;
		unsigned char c;

		while (lead > 0 && ((unsigned char)dst[lead] & 0xc0) == 0x80)
			lead--;
		c = (unsigned char)dst[lead];
		need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
		if (lead + need > n) {
			n = lead;
			dst[n] = '\0';
		}
	}
	return n;
}
