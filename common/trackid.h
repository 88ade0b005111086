/*
 * Tracking IDs: time-sortable, random, and carrying an HMAC-SHA256 tag under
 * the site key so that a site recognises its own IDs and refuses forgeries.
 * Form: 10 chars of milliseconds, 16 chars of randomness, '.', 16 chars of
 * tag, all lower-case base32hex (0-9a-v), so byte order is time order.
 */
#ifndef MT_TRACKID_H
#define MT_TRACKID_H

#include <stddef.h>
#include <stdint.h>

#define MT_ID_LEN 43
#define MT_ID_SIZE (MT_ID_LEN + 1)

/* Writes a fresh ID for time ms into out; 0, or -1 when OpenSSL fails. */
int mt_id_new(const unsigned char *key, size_t keylen, uint64_t ms,
    char out[MT_ID_SIZE]);
/* 1 when s[0..len) is an ID of this key (surrounding blanks ignored), else 0. */
int mt_id_verify(const unsigned char *key, size_t keylen, const char *s,
    size_t len, char out[MT_ID_SIZE]);
/* Milliseconds encoded in a well-formed ID, or -1. */
int64_t mt_id_time(const char *id);

#endif
