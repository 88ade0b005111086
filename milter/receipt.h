/*
 * Read receipts seen by the milter: collect a multipart/report body
 * (bounded) and the verifier's Authentication-Results, and at end of
 * message match the MDN to the tracked message and, when the receipt is
 * authenticated, record READ / DELETE for the recipient who sent it.
 * Also the RequestReadReceipt header. Never changes what happens to the
 * message.
 */
#ifndef MT_RECEIPT_H
#define MT_RECEIPT_H

#include <stddef.h>

struct mt_config;
struct mt_events;

struct mt_receipt {
	char *rcp_ct;		/* Content-Type when it announces an MDN */
	char *rcp_body;		/* the body so far */
	size_t rcp_len, rcp_cap;
	int rcp_too_big;	/* over MT_MDN_MAX: ignored */
	int rcp_has_dnt;	/* Disposition-Notification-To present */
	char *rcp_authres;	/* the first Authentication-Results value */
	int rcp_n_authres;	/* how many there were */
};

/*
 * Header callback: notes Content-Type, Disposition-Notification-To and the
 * first Authentication-Results (the verifier in front inserts its own at
 * the top, so only the first can be its; see receipt.c).
 */
void mt_receipt_header(struct mt_receipt *r, const char *name,
    const char *value);
/* 1 when the body should be kept (the message announces an MDN). */
int mt_receipt_wanted(const struct mt_receipt *r);
void mt_receipt_body(struct mt_receipt *r, const unsigned char *chunk,
    size_t len);
/*
 * End of message: parse, authenticate, match and record; logs what it
 * did. site_sender is the envelope sender of a site user's message
 * (InternalHosts client or SASL-authenticated), NULL for any other: a site
 * user's receipt needs no Authentication-Results, but it speaks only for
 * the user's own address.
 */
void mt_receipt_finish(struct mt_receipt *r, const struct mt_config *cfg,
    struct mt_events *ev, const char *qid, const char *site_sender);
void mt_receipt_free(struct mt_receipt *r);

#endif
