/*
 * Untrusted text on its way out: one function per destination (header
 * values, log values, Redis key parts). Every function is bounded by the
 * destination size and never lets CR, LF or NUL through.
 */
#ifndef MT_TEXT_H
#define MT_TEXT_H

#include <stddef.h>

/*
 * The code point of the UTF-8 sequence at s[0..len) (len >= 1), *used its
 * length; -1 (with *used 1) when the bytes there are not one valid
 * sequence: overlong forms, surrogates and values past U+10FFFF included.
 */
long mt_utf8_next(const unsigned char *s, size_t len, size_t *used);

/* The longest header line we write, RFC 5322 section 2.1.1. */
#define MT_HDR_LINE_MAX 998

/*
 * Copies src[0..len) into dst (size dstsize >= 1) for use as a header value:
 * control bytes (CR, LF, NUL, others below 0x20, DEL) and bytes that are
 * not valid UTF-8 become '?', runs of whitespace fold to one space, so the
 * result is also safe for JSON. Returns the length written (always
 * NUL-terminated, truncated to dstsize - 1).
 */
size_t mt_text_header(char *dst, size_t dstsize, const char *src, size_t len);

/*
 * Envelope address as a key part and for display: strips one pair of
 * angle brackets, surrounding blanks and controls, lower-cases ASCII,
 * replaces invalid UTF-8 with '?'; the
 * null sender becomes "<>". Returns the length, or (size_t)-1 when the
 * address does not fit in dstsize - 1.
 */
size_t mt_text_address(char *dst, size_t dstsize, const char *src, size_t len);

/*
 * Value of a Postfix-style log field: printable ASCII is kept, '\' and
 * bytes outside 0x20..0x7e become \xHH, ',' and '=' stay (Postfix does the
 * same). Truncated at dstsize - 1 without splitting an escape.
 */
size_t mt_text_log(char *dst, size_t dstsize, const char *src, size_t len);

#endif
