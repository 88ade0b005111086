/*
 * Read receipts as real clients send them (tests/mdn/): the recipient, the
 * original Message-ID, the disposition and the returned X-Mailtrail-ID;
 * reports too big in parts or nesting; and Authentication-Results as
 * verifiers write them, with the alignment rule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../mdn/mdn.h"

static char *
sample(const char *name, size_t *len)
{
	const char *dir = getenv("MT_TEST_MDN_DIR");
	char path[1024];
	FILE *f;
	char *buf = malloc(MT_MDN_MAX + 1);

	snprintf(path, sizeof(path), "%s/%s", dir ? dir : "tests/mdn", name);
	f = fopen(path, "rb");
	assert_non_null(f);
	*len = fread(buf, 1, MT_MDN_MAX, f);
	fclose(f);
	return buf;
}

static int
parse_sample(const char *name, struct mt_mdn *m, char *err, size_t errlen)
{
	size_t len;
	char *buf = sample(name, &len);
	int rc = mt_mdn_parse(buf, len, m, err, errlen);

	free(buf);
	return rc;
}

static void
thunderbird_displayed_manually(void **state)
{
	struct mt_mdn m;
	char err[256];

	assert_int_equal(parse_sample("thunderbird.eml", &m, err,
	    sizeof(err)), 1);
	assert_string_equal(m.final_rcpt, "bob@rcpt.test");
	assert_string_equal(m.orig_msgid, "mdn-sample-1@client.test");
	assert_string_equal(m.type, "displayed");
	assert_string_equal(m.disposition,
	    "manual-action/MDN-sent-manually; displayed");
	assert_string_equal(m.ua, "rcpt.test; Mozilla Thunderbird");
	assert_string_equal(m.mt_id, "@@MTID@@");
}

static void
exchange_displayed_automatically(void **state)
{
	struct mt_mdn m;
	char err[256];

	assert_int_equal(parse_sample("outlook-exchange.eml", &m, err,
	    sizeof(err)), 1);
	assert_string_equal(m.final_rcpt, "bob@rcpt.test");
	assert_string_equal(m.type, "displayed");
	assert_string_equal(m.mt_id, "");
	assert_string_equal(m.orig_msgid, "mdn-sample-1@client.test");
}

static void
apple_mail_with_original_recipient_and_message_part(void **state)
{
	struct mt_mdn m;
	char err[256];

	assert_int_equal(parse_sample("apple-mail.eml", &m, err,
	    sizeof(err)), 1);
	assert_string_equal(m.orig_rcpt, "bob@rcpt.test");
	assert_string_equal(m.final_rcpt, "bob@rcpt.test");
	assert_string_equal(m.mt_id, "@@MTID@@");
}

static void
rfc8098_examples_displayed_and_deleted(void **state)
{
	struct mt_mdn m;
	char err[256];

	assert_int_equal(parse_sample("rfc8098-displayed.eml", &m, err,
	    sizeof(err)), 1);
	assert_string_equal(m.type, "displayed");
	assert_int_equal(parse_sample("rfc8098-deleted.eml", &m, err,
	    sizeof(err)), 1);
	assert_string_equal(m.type, "deleted");
}

static void
malformed_reports_are_refused_with_a_reason(void **state)
{
	struct mt_mdn m;
	char err[256];

	assert_int_equal(parse_sample("malformed-no-final-recipient.eml", &m,
	    err, sizeof(err)), -1);
	assert_non_null(strstr(err, "Final-Recipient"));
	assert_int_equal(parse_sample("malformed-truncated.eml", &m, err,
	    sizeof(err)), -1);
}

static void
ordinary_mail_is_not_a_report(void **state)
{
	const char msg[] = "From: a@b\r\nContent-Type: multipart/report; "
	    "report-type=delivery-status; boundary=x\r\n\r\n--x\r\n\r\nhi\r\n"
	    "--x--\r\n";
	struct mt_mdn m;
	char err[256];

	assert_int_equal(mt_mdn_parse(msg, sizeof(msg) - 1, &m, err,
	    sizeof(err)), 0);
	assert_int_equal(mt_mdn_parse("", 0, &m, err, sizeof(err)), 0);
	assert_true(mt_mdn_is_report("multipart/report; "
	    "report-type=\"Disposition-Notification\"; boundary=b"));
	assert_false(mt_mdn_is_report("multipart/report; "
	    "report-type=delivery-status"));
	assert_false(mt_mdn_is_report("text/plain"));
}

static void
forged_original_recipient_is_only_reported(void **state)
{
	const char msg[] = "Content-Type: multipart/report; "
	    "report-type=disposition-notification; boundary=b\r\n\r\n"
	    "--b\r\nContent-Type: message/disposition-notification\r\n\r\n"
	    "Final-Recipient: rfc822; nobody@evil.example\r\n"
	    "Original-Recipient: rfc822; carol@rcpt.test\r\n"
	    "Original-Message-ID: <victim@client.test>\r\n"
	    "Disposition: manual-action/MDN-sent-manually; displayed\r\n"
	    "\r\n--b--\r\n";
	struct mt_mdn m;
	char err[256];

	assert_int_equal(mt_mdn_parse(msg, sizeof(msg) - 1, &m, err,
	    sizeof(err)), 1);
	assert_string_equal(m.final_rcpt, "nobody@evil.example");
	assert_string_equal(m.orig_rcpt, "carol@rcpt.test");
}

/* A report whose body holds n parts, each nested in the one before. */
static char *
nested_report(int n, int nested, size_t *len)
{
	size_t cap = 200 + (size_t)n * 120, off;
	char *buf = malloc(cap);

	off = (size_t)snprintf(buf, cap, "Content-Type: multipart/report; "
	    "report-type=disposition-notification; boundary=b0\r\n\r\n");
	for (int i = 1; i <= n; i++)
		off += (size_t)snprintf(buf + off, cap - off, nested ?
		    "--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n"
		    "\r\n" : "--b0\r\nContent-Type: text/plain\r\n\r\nx\r\n",
		    i - 1, i);
	off += (size_t)snprintf(buf + off, cap - off, "--b0--\r\n");
	*len = off;
	return buf;
}

static void
reports_with_too_many_parts_are_refused(void **state)
{
	struct mt_mdn m;
	char err[256];
	size_t len;
	char *msg = nested_report(20000, 0, &len);

	assert_int_equal(mt_mdn_parse(msg, len, &m, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "more than 256 MIME parts"));
	free(msg);
}

static void
reports_nested_too_deep_are_refused(void **state)
{
	struct mt_mdn m;
	char err[256];
	size_t len;
	char *msg = nested_report(40, 1, &len);

	assert_int_equal(mt_mdn_parse(msg, len, &m, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "nested deeper than 16"));
	free(msg);
}

static int
ar(const char *v, struct mt_authres *a)
{
	return mt_authres_parse(v, strlen(v), a);
}

static void
authres_opendkim_pass_with_comment(void **state)
{
	struct mt_authres a;

	assert_int_equal(ar("verify.mdn.test;\r\n\tdkim=pass (1024-bit key; "
	    "unprotected) header.d=Rcpt.Test header.i=@rcpt.test "
	    "header.a=rsa-sha256 header.s=mt2026 header.b=kloHmb9I;\r\n"
	    "\tdkim-atps=neutral", &a), 0);
	assert_string_equal(a.ar_servid, "verify.mdn.test");
	assert_int_equal(a.ar_npass, 2);
	assert_string_equal(a.ar_pass[0].ap_method, "dkim");
	assert_string_equal(a.ar_pass[0].ap_domain, "rcpt.test");
	assert_string_equal(a.ar_pass[1].ap_domain, "rcpt.test");
	assert_string_equal(mt_authres_vouches(&a, "rcpt.test"), "dkim");
	assert_null(mt_authres_vouches(&a, "evil.example"));
}

static void
authres_spf_and_failures(void **state)
{
	struct mt_authres a;

	assert_int_equal(ar("mx.example.org 1; spf=pass "
	    "smtp.mailfrom=\"carol@Mail.Rcpt.Test\"; dkim=fail "
	    "reason=\"bad sig\" header.d=rcpt.test; dmarc=pass "
	    "header.from=rcpt.test", &a), 0);
	assert_string_equal(a.ar_servid, "mx.example.org");
	assert_int_equal(a.ar_npass, 1);
	assert_string_equal(a.ar_pass[0].ap_method, "spf");
	assert_string_equal(a.ar_pass[0].ap_domain, "mail.rcpt.test");
	assert_string_equal(mt_authres_vouches(&a, "rcpt.test"), "spf");
	assert_int_equal(ar("mx.example.org; none", &a), 0);
	assert_int_equal(a.ar_npass, 0);
	assert_int_equal(ar("mx.example.org; dkim=none; dkim-atps=neutral",
	    &a), 0);
	assert_int_equal(a.ar_npass, 0);
}

static void
authres_unreadable_is_refused_whole(void **state)
{
	struct mt_authres a;
	char big[MT_AR_VALUE_MAX + 64];

	assert_int_equal(ar("", &a), -1);
	assert_int_equal(ar("mx.example.org", &a), -1);
	assert_int_equal(ar("mx.example.org; dkim", &a), -1);
	assert_int_equal(ar("mx.example.org; dkim=pass (unterminated "
	    "header.d=rcpt.test", &a), -1);
	assert_int_equal(ar("mx.example.org; dkim=pass header.d=\"rcpt.test",
	    &a), -1);
	assert_int_equal(ar("mx.example.org; dkim=pass header.d=x\x01y", &a),
	    -1);
	assert_int_equal(ar("mx.example.org; dkim=pass ((((((((((deep))))))"
	    "))))) header.d=rcpt.test", &a), -1);
	assert_string_equal(a.ar_servid, "");
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "mx; dkim=pass header.d=", 23);
	assert_int_equal(ar(big, &a), -1);
}

static void
authres_unusable_domains_are_not_kept(void **state)
{
	struct mt_authres a;

	assert_int_equal(ar("mx; dkim=pass header.d=rc..pt.test; "
	    "dkim=pass header.d=.rcpt.test; spf=pass smtp.mailfrom=carol@; "
	    "spf=pass smtp.helo=rcpt.test", &a), 0);
	assert_int_equal(a.ar_npass, 0);
}

static void
alignment_is_relaxed_but_never_a_bare_tld(void **state)
{
	assert_true(mt_domains_aligned("rcpt.test", "rcpt.test"));
	assert_true(mt_domains_aligned("RCPT.test", "rcpt.TEST"));
	assert_true(mt_domains_aligned("mail.rcpt.test", "rcpt.test"));
	assert_true(mt_domains_aligned("rcpt.test", "a.b.rcpt.test"));
	assert_false(mt_domains_aligned("test", "rcpt.test"));
	assert_false(mt_domains_aligned("test", "test"));
	assert_false(mt_domains_aligned("evilrcpt.test", "rcpt.test"));
	assert_false(mt_domains_aligned("rcpt.test.evil", "rcpt.test"));
	assert_false(mt_domains_aligned("evil.example", "rcpt.test"));
	assert_false(mt_domains_aligned("", "rcpt.test"));
}

static int
setup(void **state)
{
	mt_mdn_init();
	return 0;
}

static int
teardown(void **state)
{
	mt_mdn_shutdown();
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(thunderbird_displayed_manually),
		cmocka_unit_test(exchange_displayed_automatically),
		cmocka_unit_test(apple_mail_with_original_recipient_and_message_part),
		cmocka_unit_test(rfc8098_examples_displayed_and_deleted),
		cmocka_unit_test(malformed_reports_are_refused_with_a_reason),
		cmocka_unit_test(ordinary_mail_is_not_a_report),
		cmocka_unit_test(forged_original_recipient_is_only_reported),
		cmocka_unit_test(reports_with_too_many_parts_are_refused),
		cmocka_unit_test(reports_nested_too_deep_are_refused),
		cmocka_unit_test(authres_opendkim_pass_with_comment),
		cmocka_unit_test(authres_spf_and_failures),
		cmocka_unit_test(authres_unreadable_is_refused_whole),
		cmocka_unit_test(authres_unusable_domains_are_not_kept),
		cmocka_unit_test(alignment_is_relaxed_but_never_a_bare_tld),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
