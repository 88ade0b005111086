/*
 * Authentication-Results (RFC 8601) as a verifier writes it: the
 * authserv-id and the DKIM and SPF results that passed, each with the
 * domain it vouches for. A small bounded tokenizer that knows comments
 * (OpenDKIM writes "dkim=pass (1024-bit key; unprotected)"); a header it
 * cannot read is refused as a whole, so it is never half believed.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mdn.h"

#define AR_COMMENT_DEPTH 8	/* nested comments deeper than this: refused */
#define AR_RESINFO_MAX 32	/* results in one header */
#define AR_WORD_MAX 64		/* method, result, ptype, property */

struct ar_lex {
	const char *p, *end;
};

static int
is_wsp(int ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* Skips whitespace and (nested) comments; -1 when a comment never ends. */
static int
skip_cfws(struct ar_lex *lx)
{
	int depth = 0;

	for (; lx->p < lx->end; lx->p++) {
		if (depth > 0 && *lx->p == '\\' && lx->p + 1 < lx->end)
			lx->p++;
		else if (*lx->p == '(') {
			if (++depth > AR_COMMENT_DEPTH)
				return -1;
		} else if (*lx->p == ')' && depth > 0)
			depth--;
		else if (depth == 0 && !is_wsp((unsigned char)*lx->p))
			return 0;
	}
	return depth == 0 ? 0 : -1;
}

static int
at(const struct ar_lex *lx, char ch)
{
	return lx->p < lx->end && *lx->p == ch;
}

/* Skips CFWS, then consumes ch; -1 when something else is there. */
static int
expect(struct ar_lex *lx, char ch)
{
	if (skip_cfws(lx) < 0 || !at(lx, ch))
		return -1;
	lx->p++;
	return skip_cfws(lx);
}

/*
 * A token (up to CFWS, '"', or a byte of stop) or a quoted-string, into
 * dst (NUL-terminated), or skipped when dst is NULL. -1 when empty, too
 * long for dst, unterminated, or holding a control byte.
 */
static int
read_word(struct ar_lex *lx, const char *stop, char *dst, size_t dstsize)
{
	size_t n = 0;
	unsigned char ch;
	int quoted = at(lx, '"');

	if (quoted)
		lx->p++;
	while (lx->p < lx->end) {
		ch = (unsigned char)*lx->p;
		if (quoted && ch == '"')
			break;
		if (!quoted && (is_wsp(ch) || ch == '(' || ch == '"' ||
		    memchr(stop, ch, strlen(stop)) != NULL))
			break;
		if (quoted && ch == '\\' && lx->p + 1 < lx->end)
			ch = (unsigned char)*++lx->p;
		if (ch < 0x20 || ch == 0x7f)
			return -1;
		if (dst != NULL) {
			if (n + 1 >= dstsize)
				return -1;
			dst[n] = (char)ch;
		}
		n++;
		lx->p++;
	}
	if (quoted) {
		if (!at(lx, '"'))
			return -1;
		lx->p++;
	}
	if (dst != NULL)
		dst[n] = '\0';
	return n > 0 || quoted ? 0 : -1;
}

/* Keyword (method, result, ptype, property): never quoted, never empty. */
static int
read_keyword(struct ar_lex *lx, const char *stop, char *dst, size_t dstsize)
{
	if (at(lx, '"'))
		return -1;
	return read_word(lx, stop, dst, dstsize);
}

/* "Carol@Rcpt.Test." or "@rcpt.test" -> "rcpt.test"; 0, or -1 unusable. */
static int
domain_of(const char *v, char *dst, size_t dstsize)
{
	const char *at_sign = strrchr(v, '@');
	size_t n, i;

	if (at_sign != NULL)
		v = at_sign + 1;
	n = strlen(v);
	if (n > 0 && v[n - 1] == '.')
		n--;
	if (n == 0 || n >= dstsize || v[0] == '.')
		return -1;
	for (i = 0; i < n; i++) {
		if (!isalnum((unsigned char)v[i]) && v[i] != '-' &&
		    v[i] != '_' && v[i] != '.')
			return -1;
		if (v[i] == '.' && v[i + 1] == '.')
			return -1;
		dst[i] = (char)tolower((unsigned char)v[i]);
	}
	dst[n] = '\0';
	return 0;
}

/* Keeps a passing dkim header.d / header.i or spf smtp.mailfrom. */
static void
note_property(struct mt_authres *ar, const char *method, const char *result,
    const char *ptype, const char *prop, const char *pval)
{
	struct mt_authres_pass *p;
	int dkim = strcasecmp(method, "dkim") == 0;
	int spf = strcasecmp(method, "spf") == 0;

	if (strcasecmp(result, "pass") != 0 || ar->ar_npass >= MT_AR_PASS_MAX)
		return;
	if (!(dkim && strcasecmp(ptype, "header") == 0 &&
	    (strcasecmp(prop, "d") == 0 || strcasecmp(prop, "i") == 0)) &&
	    !(spf && strcasecmp(ptype, "smtp") == 0 &&
	    strcasecmp(prop, "mailfrom") == 0))
		return;
	p = &ar->ar_pass[ar->ar_npass];
	if (domain_of(pval, p->ap_domain, sizeof(p->ap_domain)) < 0)
		return;
	snprintf(p->ap_method, sizeof(p->ap_method), "%s", dkim ? "dkim" : "spf");
	ar->ar_npass++;
}

/* propspec / reasonspec ... up to the next ';' or the end. */
static int
read_properties(struct ar_lex *lx, struct mt_authres *ar, const char *method,
    const char *result)
{
	char ptype[AR_WORD_MAX], prop[AR_WORD_MAX], pval[MT_AR_DOMAIN_MAX];
	const char *save;

	for (;;) {
		if (skip_cfws(lx) < 0)
			return -1;
		if (lx->p == lx->end || at(lx, ';'))
			return 0;
		if (read_keyword(lx, ".=;", ptype, sizeof(ptype)) < 0)
			return -1;
		if (strcasecmp(ptype, "reason") == 0 || strcasecmp(ptype,
		    "action") == 0) {
			if (expect(lx, '=') < 0 || read_word(lx, ";", NULL, 0) < 0)
				return -1;
			continue;
		}
		if (expect(lx, '.') < 0 || read_keyword(lx, "=;", prop,
		    sizeof(prop)) < 0 || expect(lx, '=') < 0)
			return -1;
		/* Values we do not keep may be long (header.b): skip them. */
		save = lx->p;
		if (read_word(lx, ";", pval, sizeof(pval)) == 0)
			note_property(ar, method, result, ptype, prop, pval);
		else if ((lx->p = save, read_word(lx, ";", NULL, 0)) < 0)
			return -1;
	}
}

/* One resinfo after its ';': method[/version] = result properties. */
static int
read_resinfo(struct ar_lex *lx, struct mt_authres *ar)
{
	char method[AR_WORD_MAX], result[AR_WORD_MAX];

	if (read_keyword(lx, "=/;", method, sizeof(method)) < 0 ||
	    skip_cfws(lx) < 0)
		return -1;
	if (strcasecmp(method, "none") == 0 && (lx->p == lx->end ||
	    at(lx, ';')))
		return 0;
	if (at(lx, '/')) {
		lx->p++;
		if (skip_cfws(lx) < 0 || read_word(lx, "=;", NULL, 0) < 0)
			return -1;
	}
	if (expect(lx, '=') < 0 || read_keyword(lx, ";", result, sizeof(result)) < 0)
		return -1;
	return read_properties(lx, ar, method, result);
}

int
mt_authres_parse(const char *v, size_t len, struct mt_authres *ar)
{
	struct ar_lex lx = { v, v + len };
	int n = 0;

	memset(ar, 0, sizeof(*ar));
	if (len > MT_AR_VALUE_MAX || skip_cfws(&lx) < 0 ||
	    read_word(&lx, ";", ar->ar_servid, sizeof(ar->ar_servid)) < 0 ||
	    ar->ar_servid[0] == '\0' || skip_cfws(&lx) < 0)
		goto bad;
	/* authres-version: a number after the authserv-id. */
	if (lx.p < lx.end && isdigit((unsigned char)*lx.p) &&
	    (read_word(&lx, ";", NULL, 0) < 0 || skip_cfws(&lx) < 0))
		goto bad;
	while (lx.p < lx.end) {
		if (!at(&lx, ';') || ++n > AR_RESINFO_MAX)
			goto bad;
		lx.p++;
		if (skip_cfws(&lx) < 0)
			goto bad;
		if (lx.p == lx.end)
			break;		/* a trailing ';' is common enough */
		if (read_resinfo(&lx, ar) < 0)
			goto bad;
	}
	if (n == 0)
		goto bad;		/* not even "; none" */
	return 0;
bad:
	memset(ar, 0, sizeof(*ar));
	return -1;
}

int
mt_domains_aligned(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	const char *s = la <= lb ? a : b, *l = la <= lb ? b : a;
	size_t ls = la <= lb ? la : lb, ll = la <= lb ? lb : la;

	/* Without a public suffix list: never a bare top-level domain. */
	if (ls == 0 || strchr(s, '.') == NULL || s[0] == '.')
		return 0;
	if (ll == ls)
		return strcasecmp(s, l) == 0;
	return l[ll - ls - 1] == '.' && strcasecmp(l + ll - ls, s) == 0;
}

const char *
mt_authres_vouches(const struct mt_authres *ar, const char *domain)
{
	const char *how = NULL;

	for (int i = 0; i < ar->ar_npass && i < MT_AR_PASS_MAX; i++) {
		if (!mt_domains_aligned(ar->ar_pass[i].ap_domain, domain))
			continue;
		if (strcmp(ar->ar_pass[i].ap_method, "dkim") == 0)
			return "dkim";
		how = "spf";
	}
	return how;
}
