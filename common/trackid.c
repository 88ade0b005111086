/*
 * Tracking IDs. The tag binds the time and random parts to the site key, so
 * an ID copied into a forged header from outside cannot be altered, and one
 * made up without the key does not verify.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "trackid.h"

#define TIME_CHARS 10
#define RAND_BYTES 10
#define RAND_CHARS 16
#define BODY_CHARS (TIME_CHARS + RAND_CHARS)
#define TAG_BYTES 10
#define TAG_CHARS 16

static const char b32[] = "0123456789abcdefghijklmnopqrstuv";

/* 5 bytes become 8 characters; n must be a multiple of 5. */
static void
b32_encode(const unsigned char *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i += 5) {
		uint64_t v = 0;

		for (int j = 0; j < 5; j++)
			v = (v << 8) | in[i + j];
		for (int j = 7; j >= 0; j--) {
			out[j] = b32[v & 31];
			v >>= 5;
		}
		out += 8;
	}
}

static int
b32_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'v')
		return c - 'a' + 10;
	return -1;
}

static int
make_tag(const unsigned char *key, size_t keylen, const char *body,
    char out[TAG_CHARS])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	unsigned char msg[3 + BODY_CHARS];

	/* Version label: a later ID form gets a different tag for the same body. */
	memcpy(msg, "mt1", 3);
	memcpy(msg + 3, body, BODY_CHARS);
	if (HMAC(EVP_sha256(), key, (int)keylen, msg, sizeof(msg), md,
	    &mdlen) == NULL || mdlen < TAG_BYTES)
		return -1;
	b32_encode(md, TAG_BYTES, out);
	OPENSSL_cleanse(md, sizeof(md));
	return 0;
}

int
mt_id_new(const unsigned char *key, size_t keylen, uint64_t ms,
    char out[MT_ID_SIZE])
{
	unsigned char rnd[RAND_BYTES];

	for (int i = TIME_CHARS - 1; i >= 0; i--) {
		out[i] = b32[ms & 31];
		ms >>= 5;
	}
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return -1;
	b32_encode(rnd, sizeof(rnd), out + TIME_CHARS);
	out[BODY_CHARS] = '.';
	if (make_tag(key, keylen, out, out + BODY_CHARS + 1) < 0)
		return -1;
	out[MT_ID_LEN] = '\0';
	return 0;
}

int
mt_id_verify(const unsigned char *key, size_t keylen, const char *s,
    size_t len, char out[MT_ID_SIZE])
{
	char tag[TAG_CHARS];

	while (len > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		len--;
	}
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' ||
	    s[len - 1] == '\r' || s[len - 1] == '\n'))
		len--;
	if (len != MT_ID_LEN || s[BODY_CHARS] != '.')
		return 0;
	for (size_t i = 0; i < len; i++)
		if (i != BODY_CHARS && b32_value(s[i]) < 0)
			return 0;
	if (make_tag(key, keylen, s, tag) < 0)
		return 0;
	if (CRYPTO_memcmp(tag, s + BODY_CHARS + 1, TAG_CHARS) != 0)
		return 0;
	if (out) {
		memcpy(out, s, MT_ID_LEN);
		out[MT_ID_LEN] = '\0';
	}
	return 1;
}

int64_t
mt_id_time(const char *id)
{
	int64_t ms = 0;

	for (int i = 0; i < TIME_CHARS; i++) {
		int v = b32_value(id[i]);

		if (v < 0)
			return -1;
		ms = (ms << 5) | v;
	}
	return ms;
}
