/*
 * Read receipts seen by the milter: collect a multipart/report body
 * (bounded), and at end of message match the MDN to the tracked message
 * and record READ / DELETE for the recipient who sent it. Also the
 * RequestReadReceipt header. Never changes what happens to the message.
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
};

/* Header callback: notes Content-Type and Disposition-Notification-To. */
void mt_receipt_header(struct mt_receipt *r, const char *name,
    const char *value);
/* 1 when the body should be kept (the message announces an MDN). */
int mt_receipt_wanted(const struct mt_receipt *r);
void mt_receipt_body(struct mt_receipt *r, const unsigned char *chunk,
    size_t len);
/* End of message: parse, match and record; logs what it did. */
void mt_receipt_finish(struct mt_receipt *r, const struct mt_config *cfg,
    struct mt_events *ev, const char *qid);
void mt_receipt_free(struct mt_receipt *r);

#endif
