/*
 * Read receipts: parsing a message disposition notification (RFC 8098,
 * multipart/report; report-type=disposition-notification) into the few
 * facts mailtrail needs. Uses GMime for the MIME structure; bounded fields.
 * Library code: returns a verdict and a reason, never logs.
 */
#ifndef MT_MDN_H
#define MT_MDN_H

#include <stddef.h>

#define MT_MDN_MAX (1024 * 1024)	/* larger bodies are not parsed */
#define MT_MDN_ADDR_MAX 512
#define MT_MDN_FIELD_MAX 256
#define MT_MDN_MAX_PARTS 256	/* MIME parts (boundary or Content-Type
				 * lines) in one report; more: refused */
#define MT_MDN_MAX_DEPTH 16	/* nesting of multiparts and messages */

struct mt_mdn {
	char final_rcpt[MT_MDN_ADDR_MAX];	/* Final-Recipient, normalised */
	char orig_rcpt[MT_MDN_ADDR_MAX];	/* Original-Recipient or "" */
	char orig_msgid[MT_MDN_FIELD_MAX];	/* Original-Message-ID, no <> */
	char disposition[MT_MDN_FIELD_MAX];	/* the whole field, cleaned */
	char type[32];		/* displayed, deleted, dispatched, processed,
				 * denied, failed (lower case) */
	char ua[MT_MDN_FIELD_MAX];		/* Reporting-UA or "" */
	char mt_id[72];		/* X-Mailtrail-ID of the returned headers,
				 * unverified, or "" */
};

/* 1 when ct (a Content-Type value) announces an MDN. */
int mt_mdn_is_report(const char *ct);

/*
 * Parses a whole message (headers and body, CRLF or LF). 1: an MDN with
 * at least Final-Recipient and Disposition; 0: not an MDN; -1: an MDN we
 * cannot read (reason in err).
 */
int mt_mdn_parse(const char *msg, size_t len, struct mt_mdn *out, char *err,
    size_t errlen);

/*
 * Authentication-Results (RFC 8601): the authserv-id and what passed.
 * Only dkim (header.d, header.i) and spf (smtp.mailfrom) passes are kept,
 * as lower-case domains.
 */
#define MT_AR_VALUE_MAX 8192	/* longer header values are refused */
#define MT_AR_DOMAIN_MAX 256
#define MT_AR_PASS_MAX 8

struct mt_authres_pass {
	char ap_method[8];			/* "dkim" or "spf" */
	char ap_domain[MT_AR_DOMAIN_MAX];	/* the domain it vouches for */
};

struct mt_authres {
	char ar_servid[MT_AR_DOMAIN_MAX];	/* authserv-id as written */
	struct mt_authres_pass ar_pass[MT_AR_PASS_MAX];
	int ar_npass;
};

/* 0 parsed, -1 unreadable (the whole header is then not believed). */
int mt_authres_parse(const char *value, size_t len, struct mt_authres *ar);

/*
 * Relaxed alignment without a public suffix list: the same domain, or one
 * a parent of the other, and the shorter one is never a bare TLD.
 */
int mt_domains_aligned(const char *a, const char *b);

/* "dkim" or "spf" when a pass in ar is aligned with domain, else NULL. */
const char *mt_authres_vouches(const struct mt_authres *ar,
    const char *domain);

/* GMime set-up, once per process before any thread parses; and tear-down. */
void mt_mdn_init(void);
void mt_mdn_shutdown(void);

/*
 * A header value (Subject:) as text for the record: RFC 2047 encoded words
 * decoded, cleaned as mt_text_header does (no controls, valid UTF-8), cut
 * to at most dstsize - 1 bytes without splitting a character. The length.
 */
#define MT_MDN_HEADER_IN_MAX 4096	/* input bytes looked at */
size_t mt_mdn_header_text(char *dst, size_t dstsize, const char *raw,
    size_t len);

#endif
