/*
 * Escaping of untrusted text per destination: header values, log fields and
 * address keys. Bounded by the destination; nothing here allocates.
 */
#include <ctype.h>
#include <string.h>

#include "text.h"

long
mt_utf8_next(const unsigned char *s, size_t len, size_t *used)
{
	size_t n;
	long cp;

	*used = 1;
	if (s[0] < 0x80)
		return s[0];
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return -1;
	if (n > len)
		return -1;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return -1;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return -1;
	*used = n;
	return cp;
}

/* Length of the valid UTF-8 sequence at s[0..len), or 0 when it is none. */
static size_t
utf8_seq(const unsigned char *s, size_t len)
{
	size_t used;

	return mt_utf8_next(s, len, &used) < 0 ? 0 : used;
}

size_t
mt_text_header(char *dst, size_t dstsize, const char *src, size_t len)
{
	size_t o = 0;
	int space = 1;		/* drops leading blanks and folds runs */

	if (dstsize == 0)
		return 0;
	for (size_t i = 0; i < len && o + 1 < dstsize; i++) {
		unsigned char c = (unsigned char)src[i];

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			if (!space)
				dst[o++] = ' ';
			space = 1;
			continue;
		}
		space = 0;
		if (c >= 0x80) {
			size_t n = utf8_seq((const unsigned char *)src + i,
			    len - i);

			if (n > 0 && o + n < dstsize) {
				memcpy(dst + o, src + i, n);
				o += n;
				i += n - 1;
				continue;
			}
			if (n > 0)
				break;	/* would split a character */
		}
		dst[o++] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
	}
	while (o > 0 && dst[o - 1] == ' ')
		o--;
	dst[o] = '\0';
	return o;
}

size_t
mt_text_address(char *dst, size_t dstsize, const char *src, size_t len)
{
	size_t o = 0, i = 0, end = len;

	if (dstsize < 3)
		return (size_t)-1;
	while (i < end && isspace((unsigned char)src[i]))
		i++;
	while (end > i && isspace((unsigned char)src[end - 1]))
		end--;
	if (end - i >= 2 && src[i] == '<' && src[end - 1] == '>') {
		i++;
		end--;
	}
	if (i == end) {
		memcpy(dst, "<>", 3);
		return 2;
	}
	for (; i < end; i++) {
		unsigned char c = (unsigned char)src[i];

		if (c < 0x20 || c == 0x7f)
			continue;
		if (c >= 0x80) {
			size_t n = utf8_seq((const unsigned char *)src + i,
			    end - i);

			if (n == 0)
				c = '?';
			else {
				if (o + n >= dstsize)
					return (size_t)-1;
				memcpy(dst + o, src + i, n);
				o += n;
				i += n - 1;
				continue;
			}
		}
		if (o + 1 >= dstsize)
			return (size_t)-1;
		dst[o++] = (char)tolower(c);
	}
	if (o == 0) {
		memcpy(dst, "<>", 3);
		return 2;
	}
	dst[o] = '\0';
	return o;
}

size_t
mt_text_log(char *dst, size_t dstsize, const char *src, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (dstsize == 0)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)src[i];

		if (c >= 0x20 && c < 0x7f && c != '\\') {
			if (o + 1 >= dstsize)
				break;
			dst[o++] = (char)c;
		} else {
			if (o + 4 >= dstsize)
				break;
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		}
	}
	dst[o] = '\0';
	return o;
}
