/*
 * The RFC 5322 section 3.3 date-time of a Deferred-Delivery header (RFC
 * 4021, as Outlook writes it: "Wed, 2 Dec 2026 17:30:00 +0100"), obsolete
 * forms of section 4.3 included. Pure and bounded; untrusted bytes.
 */
#ifndef MT_MAILDATE_H
#define MT_MAILDATE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Reads exactly s[0..len) (not NUL-terminated; any bytes). 0 with *t
 * (unix seconds, UTC) and err "" (when errlen > 0), or -1 with a short
 * reason in err (errlen bytes, NUL-terminated, plain ASCII, no value
 * echoed; err may be NULL when errlen is 0) and *t untouched.
 */
int mt_mail_date(const char *s, size_t len, int64_t *t, char *err,
    size_t errlen);

#endif
