/*
 * Postfix's socketmap protocol (socketmap_table(5)): requests and replies
 * are netstrings, "LEN:NAME KEY," and "LEN:STATUS DATA,". The parser is
 * bounded and never trusts LEN beyond MT_SOCKETMAP_MAX.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "route.h"

long
mt_socketmap_parse(const char *buf, size_t len, struct mt_socketmap_req *req,
    char *err, size_t errlen)
{
	size_t i = 0, n = 0, body;
	const char *sp;

	while (i < len && isdigit((unsigned char)buf[i])) {
		if (i == 1 && buf[0] == '0') {
			snprintf(err, errlen, "netstring length has a leading "
			    "zero");
			return -1;
		}
		n = n * 10 + (size_t)(buf[i] - '0');
		if (n > MT_SOCKETMAP_MAX) {
			snprintf(err, errlen, "request longer than %d bytes",
			    MT_SOCKETMAP_MAX);
			return -1;
		}
		i++;
	}
	if (i == len)
		return 0;		/* digits so far, or nothing */
	if (i == 0 || buf[i] != ':') {
		snprintf(err, errlen, "not a netstring (expected LEN:)");
		return -1;
	}
	body = i + 1;
	if (len - body < n + 1)
		return 0;
	if (buf[body + n] != ',') {
		snprintf(err, errlen, "netstring does not end with ','");
		return -1;
	}
	sp = memchr(buf + body, ' ', n);
	if (sp == NULL || sp == buf + body) {
		snprintf(err, errlen, "request is not \"NAME KEY\"");
		return -1;
	}
	req->name = buf + body;
	req->name_len = (size_t)(sp - req->name);
	req->key = sp + 1;
	req->key_len = n - req->name_len - 1;
	return (long)(body + n + 1);
}

size_t
mt_socketmap_reply(char *out, size_t outlen, const char *status,
    const char *data)
{
	size_t sl = strlen(status), dl = data ? strlen(data) : 0, hl;
	int h;

	h = snprintf(out, outlen, "%zu:", sl + 1 + dl);
	if (h < 0 || (size_t)h >= outlen)
		return 0;
	hl = (size_t)h;
	if (hl + sl + 1 + dl + 1 >= outlen)
		return 0;
	memcpy(out + hl, status, sl);
	out[hl + sl] = ' ';
	for (size_t i = 0; i < dl; i++) {
		unsigned char c = (unsigned char)data[i];

		out[hl + sl + 1 + i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	out[hl + sl + 1 + dl] = ',';
	out[hl + sl + 1 + dl + 1] = '\0';
	return hl + sl + 1 + dl + 1;
}

size_t
mt_route_sender_domain(const char *key, size_t len, char *out, size_t outlen)
{
	const char *at = NULL;
	size_t n = 0;

	for (size_t i = len; i > 0; i--)
		if (key[i - 1] == '@') {
			at = key + i;
			break;
		}
	if (at != NULL) {
		const char *end = key + len;

		while (end > at && end[-1] == '>')
			end--;
		for (const char *p = at; p < end && n + 1 < outlen; p++)
			out[n++] = (char)tolower((unsigned char)*p);
	}
	if (outlen > 0)
		out[n] = '\0';
	return n;
}
