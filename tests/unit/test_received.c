/*
 * The Received: parser against real-world forms (tests/geo/received_cases.tsv
 * names each corpus file with the address and by-host it must yield), against
 * each MTA's way of writing the client's address and the lines that record
 * no relay at all, and against the malformed forms, which must parse within
 * bounds or be refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../geo/geo.h"

static const char *corpus, *cases;

static size_t
read_file(const char *name, char *buf, size_t size)
{
	char path[1024];
	FILE *fp;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", corpus, name);
	fp = fopen(path, "rb");
	if (fp == NULL)
		fail_msg("cannot open %s", path);
	n = fread(buf, 1, size, fp);
	fclose(fp);
	return n;
}

static int
same_ip(const char *a, const char *b)
{
	unsigned char x[16], y[16];

	if (*a == '\0' || *b == '\0')
		return *a == *b;
	if (inet_pton(AF_INET, a, x) == 1 && inet_pton(AF_INET, b, y) == 1)
		return memcmp(x, y, 4) == 0;
	if (inet_pton(AF_INET6, a, x) == 1 && inet_pton(AF_INET6, b, y) == 1)
		return memcmp(x, y, 16) == 0;
	return 0;
}

static void
real_world_forms_yield_client_address_and_by_host(void **state)
{
	FILE *fp = fopen(cases, "r");
	char line[2048];
	int n = 0;

	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp)) {
		char *rest = line, *file, *ip, *by;
		static char buf[1 << 20];
		struct mt_received r;
		size_t len;

		line[strcspn(line, "\r\n")] = '\0';
		file = strsep(&rest, "\t");
		ip = strsep(&rest, "\t");
		by = strsep(&rest, "\t");
		if (file == NULL || *file == '\0' || ip == NULL || by == NULL)
			continue;
		len = read_file(file, buf, sizeof(buf));
		/* "(qmail 123 invoked by uid 89)": no clause at all, refused. */
		if (mt_received_parse(buf, len, &r) != 0 && (*ip || *by))
			fail_msg("%s: refused", file);
		if (!same_ip(r.ip, ip))
			fail_msg("%s: ip \"%s\", want \"%s\"", file, r.ip, ip);
		if (strcmp(r.by_host, by) != 0)
			fail_msg("%s: by \"%s\", want \"%s\"", file, r.by_host, by);
		n++;
	}
	fclose(fp);
	assert_true(n >= 30);
}

static void
malformed_forms_stay_in_bounds(void **state)
{
	DIR *d = opendir(corpus);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		static char buf[1 << 20];
		struct mt_received r;
		size_t len;

		if (strncmp(e->d_name, "malformed-", 10) != 0)
			continue;
		len = read_file(e->d_name, buf, sizeof(buf));
		mt_received_parse(buf, len, &r);
		assert_true(strlen(r.from_host) < MT_HOST_MAX);
		assert_true(strlen(r.by_host) < MT_HOST_MAX);
		assert_null(strpbrk(r.from_host, "\r\n"));
		if (r.ip[0]) {
			unsigned char a[16];
			assert_true(inet_pton(AF_INET, r.ip, a) == 1 ||
			    inet_pton(AF_INET6, r.ip, a) == 1);
		}
		n++;
	}
	closedir(d);
	assert_true(n >= 10);
}

static void
bracketed_literal_wins_over_helo_words(void **state)
{
	const char *v = "from 198.51.100.99 (HELO 203.0.113.1) ([192.0.2.7]) "
	    "by mx.example (Postfix) with ESMTP id X; Sat, 21 Nov 2026";
	struct mt_received r;

	assert_int_equal(mt_received_parse(v, strlen(v), &r), 0);
	assert_string_equal(r.ip, "192.0.2.7");
	assert_string_equal(r.by_host, "mx.example");
}

static void
text_without_from_or_by_is_refused(void **state)
{
	struct mt_received r;

	assert_int_equal(mt_received_parse("nothing here", 12, &r), -1);
	assert_int_equal(mt_received_parse("", 0, &r), -1);
}


/* Parses v and checks every field the parser reports. */
static void
parses_to(const char *v, const char *ip, const char *from, const char *by)
{
	struct mt_received r;

	assert_int_equal(mt_received_parse(v, strlen(v), &r), 0);
	assert_string_equal(r.ip, ip);
	assert_string_equal(r.from_host, from);
	assert_string_equal(r.by_host, by);
}

/* --- the client's port written next to its address ---------------------- */

static void
ecelerity_port_inside_brackets_is_dropped(void **state)
{
	parses_to("from [192.0.2.130] ([192.0.2.130:50387] "
	    "helo=mta.example.net) by m12.example.com (envelope-from "
	    "<bounce@example.net>) (ecelerity 4.2.1.55028 r(Core:4.2.1.12)) "
	    "with ESMTP id 80/0A-02454-4DCB6054; Tue, 12 Sep 2006 09:57:40 "
	    "-0400", "192.0.2.130", "[192.0.2.130]", "m12.example.com");
	parses_to("from ([198.51.100.60:53798] helo=mail.example.net) by "
	    "mx.example.org (ecelerity 2.1 r(10620)) with ESMTP id "
	    "5A/F0-04030-76FF6054 for <dev@example.org>; Tue, 12 Sep 2006 "
	    "11:41:44 -0700", "198.51.100.60", "", "mx.example.org");
}

static void
exim3_port_after_a_dot_is_dropped(void **state)
{
	parses_to("from jsoliday.example.net ([198.51.100.24.63559]) by "
	    "mailhost.example.net with esmtp (v3.35.1) id 1GNrLz-000295-00; "
	    "Thu, 14 Sep 2006 09:34:07 -0400",
	    "198.51.100.24", "jsoliday.example.net", "mailhost.example.net");
	parses_to("from helene.example.net (helo.example.net) "
	    "[192.0.2.81.13219] (mail) by lisbeth.example.org with esmtp "
	    "(Exim 3.35 #1 (Debian)) id 1CO5y7-0001vC-00; Sun, 31 Oct 2004 "
	    "04:01:23 +0100", "192.0.2.81", "helene.example.net",
	    "lisbeth.example.org");
}

static void
xmail_port_inside_parentheses_is_dropped(void **state)
{
	parses_to("from mail.example.net (198.51.100.70:23198) by "
	    "mx.example.com with [XMail 1.27 ESMTP Server] id <S12AB> for "
	    "<u@example.com> from <b@example.net>; Sat, 18 Sep 2004 23:17:54 "
	    "-0500", "198.51.100.70", "mail.example.net", "mx.example.com");
}

static void
port_after_the_bracket_leaves_the_address(void **state)
{
	parses_to("from dsl.example.net ([203.0.113.52]:11218 helo=sandpiper) "
	    "by mx.example.org with esmtp (TLSv1:RC4-SHA:128) (Exim 4.04) id "
	    "1CJaZW-0006rU-00 for u@example.org; Mon, 18 Oct 2004 18:41:23 "
	    "+0200", "203.0.113.52", "dsl.example.net", "mx.example.org");
	parses_to("from mail.example.net ([2001:db8:5::9]:53412 "
	    "helo=mail.example.net) by mx.example.org with esmtps (TLS1.3) tls "
	    "TLS_AES_256_GCM_SHA384 (Exim 4.97) id 1tEC0l-0000Qx-3A; Thu, 21 "
	    "Nov 2024 09:15:32 +0000", "2001:db8:5::9", "mail.example.net",
	    "mx.example.org");
}

static void
ipv6_groups_are_never_taken_for_a_port(void **state)
{
	parses_to("from mail.example.net (mail.example.net "
	    "[IPv6:2001:db8::25:587]) by mx.example.com (8.17.1.9/8.17.1.9) "
	    "with ESMTP id 4ALAFWxV012345", "2001:db8::25:587",
	    "mail.example.net", "mx.example.com");
	parses_to("from mail.example.net (2001:db8::1:2319) by mx.example.com "
	    "with SMTP", "2001:db8::1:2319", "mail.example.net",
	    "mx.example.com");
}

static void
impossible_ports_give_no_address(void **state)
{
	parses_to("from x.example ([192.0.2.1:99999]) by mx.example with esmtp",
	    "", "x.example", "mx.example");
	parses_to("from x.example ([192.0.2.1:]) by mx.example with esmtp",
	    "", "x.example", "mx.example");
	/* Exim 3's dotted port only inside brackets; bare, it is no address. */
	parses_to("from x.example (192.0.2.1.25) by mx.example with SMTP",
	    "", "x.example", "mx.example");
}

/* --- IPv4-mapped IPv6 ---------------------------------------------------- */

static void
v4_mapped_addresses_are_kept_as_ipv4(void **state)
{
	/* Courier */
	parses_to("from mail.example.net (mail.example.net "
	    "[::ffff:198.51.100.80]) by mx.example.com with ESMTP; Thu, 21 Nov "
	    "2024 10:15:32 +0100", "198.51.100.80", "mail.example.net",
	    "mx.example.com");
	/* Sendmail on a dual-stack socket */
	parses_to("from mail.example.net (mail.example.net "
	    "[IPv6:::ffff:198.51.100.11]) by mx.example.com (8.15.2/8.15.2) "
	    "with ESMTP id 4ALAFWxV012346", "198.51.100.11",
	    "mail.example.net", "mx.example.com");
	/* qmail with the IPv6 patch */
	parses_to("from unknown (HELO mail.example.net) (::ffff:198.51.100.34) "
	    "by mail.example.com with SMTP; 21 Nov 2024 09:15:32 -0000",
	    "198.51.100.34", "unknown", "mail.example.com");
	/* ecelerity, with the port as well */
	parses_to("from [::ffff:203.0.113.80] ([::ffff:203.0.113.80:40112] "
	    "helo=mail.example.net) by mta.example.com (ecelerity 4.2.1.55028 "
	    "r(Core:4.2.1.12)) with ESMTPS id 01/23-45678-9ABCDEF0",
	    "203.0.113.80", "[::ffff:203.0.113.80]", "mta.example.com");
	/* mapped loopback is loopback */
	parses_to("from Agni (localhost [::ffff:127.0.0.1]) (TLS: TLSv1/SSLv3, "
	    "168bits,DES-CBC3-SHA) by agni.example.net with esmtp; Mon, 28 Oct "
	    "2002 14:48:52 -0800", "127.0.0.1", "Agni", "agni.example.net");
}

/* --- an empty HELO ------------------------------------------------------- */

static void
empty_helo_does_not_hide_the_address_after_it(void **state)
{
	parses_to("from mx10.example.net (HELO ) (198.51.100.31) by "
	    "mail.example.com with SMTP; 3 Mar 2004 20:34:38 -0000",
	    "198.51.100.31", "mx10.example.net", "mail.example.com");
	parses_to("from unknown (EHLO ) (203.0.113.31) by "
	    "mta232.mail.example.com with SMTP; Sun, 25 Jan 2004 00:24:37 "
	    "-0800", "203.0.113.31", "unknown", "mta232.mail.example.com");
	parses_to("from unknown (HELO ) ([192.0.2.100]) (envelope-sender "
	    "<bob@example.net>) by mail.example.com (qmail-ldap-1.03) with SMTP "
	    "for <a@example.com>; 28 Nov 2003 20:44:45 -0000", "192.0.2.100",
	    "unknown", "mail.example.com");
}

static void
helo_argument_is_still_the_clients_claim(void **state)
{
	parses_to("from unknown (HELO 203.0.113.1) (198.51.100.99) by "
	    "mail.example.com with SMTP; 21 Nov 2024 09:15:32 -0000",
	    "198.51.100.99", "unknown", "mail.example.com");
	parses_to("from [203.0.113.60] (account bob@example.com HELO "
	    "[10.0.0.5]) by mx.example.com (CommuniGate Pro SMTP 6.3.18) with "
	    "ESMTPSA id 88402416 for x@example.org", "203.0.113.60",
	    "[203.0.113.60]", "mx.example.com");
}

/* --- a from clause in a leading comment ---------------------------------- */

static void
navgw_leading_from_comment_names_the_client(void **state)
{
	parses_to("(from KRYPTIK [203.0.113.100]) by gw.example.com (NAVGW "
	    "2.5.2.12) with SMTP id M2006040415284308595 for <u@example.com>; "
	    "Tue, 04 Apr 2006 15:28:45 +0100", "203.0.113.100", "KRYPTIK",
	    "gw.example.com");
}

static void
squirrelmail_semicolon_before_by_keeps_the_by_host(void **state)
{
	parses_to("from 192.0.2.150 (SquirrelMail authenticated user admin); "
	    "by web1.example.edu with HTTP; Thu, 23 Sep 2004 14:35:29 -0600",
	    "192.0.2.150", "192.0.2.150", "web1.example.edu");
}

/* --- lines that record no relay ------------------------------------------ */

static void
fetchmail_pop3_and_imap_retrievals_are_no_relay(void **state)
{
	parses_to("from pop.example.net [198.51.100.200]\r\n\tby localhost "
	    "with POP3 (fetchmail-6.4.37)\r\n\tfor <alice@localhost> "
	    "(single-drop); Thu, 21 Nov 2024 10:15:32 +0100 (CET)",
	    "", "pop.example.net", "localhost");
	parses_to("from localhost [127.0.0.1] by localhost with IMAP "
	    "(fetchmail-6.2.4) for alice@localhost (single-drop); Mon, 08 Mar "
	    "2004 16:13:23 -0800 (PST)", "", "localhost", "localhost");
	parses_to("from imap.example.net [2001:db8::993] by ws.example.org with "
	    "IMAP (fetchmail-6.4.38 polling imap.example.net account alice "
	    "folder INBOX) for <alice@localhost> (single-drop)", "",
	    "imap.example.net", "ws.example.org");
}

static void
fetchmail_signature_is_no_relay_whatever_the_protocol(void **state)
{
	parses_to("from localhost [127.0.0.1] by localhost with ESMTP "
	    "(fetchmail-6.4.37 polling mail.example.net account bob) for "
	    "<bob@localhost> (single-drop); Thu, 21 Nov 2024 10:15:32 +0100",
	    "", "localhost", "localhost");
}

static void
getmail_pop3_retrieval_is_no_relay(void **state)
{
	parses_to("from pop3.example.net (198.51.100.202) by laptop.example.org "
	    "with POP3; 14 Apr 2010 11:14:29 -0000", "", "pop3.example.net",
	    "laptop.example.org");
}

static void
qmail_invoked_lines_are_refused(void **state)
{
	struct mt_received r;
	const char *uid = "(qmail 1234 invoked by uid 89); 21 Nov 2024 "
	    "09:15:32 -0000";
	const char *net = "(qmail 87263 messnum 771997 invoked from network"
	    "[198.51.100.210/mail.example.net]); 8 Mar 2004 23:59:05 -0000";

	assert_int_equal(mt_received_parse(uid, strlen(uid), &r), -1);
	assert_string_equal(r.ip, "");
	assert_int_equal(mt_received_parse(net, strlen(net), &r), -1);
	assert_string_equal(r.ip, "");
}

static void
qmail_scanner_by_uid_is_no_relay(void **state)
{
	parses_to("from 203.0.113.210 by mail.example.com by uid 89 with "
	    "qmail-scanner-1.25st (clamdscan: 0.88.7/2047. "
	    "Clear:RC:0(203.0.113.210):. Processed in 0.3 secs); 21 Nov 2024 "
	    "09:15:32 -0000", "", "203.0.113.210", "mail.example.com");
	parses_to("from 198.51.100.212 by mail.example.com (envelope-from "
	    "<b@example.net>, uid 502) with qmail-scanner-2.01 (clamdscan: "
	    "0.88/1234. Clear:RC:0(198.51.100.212):. Processed in 1.2 secs); "
	    "06 Feb 2005 21:11:38 -0000", "", "198.51.100.212",
	    "mail.example.com");
}

static void
local_user_submissions_are_no_relay(void **state)
{
	/* Sendmail's submission program */
	parses_to("(from alice@localhost) by host.example.com "
	    "(8.17.1.9/8.17.1.9/Submit) id 4ALAFWxV012350; Thu, 21 Nov 2024 "
	    "10:15:32 +0100", "", "alice@localhost", "host.example.com");
	/* Courier's local injection */
	parses_to("from localhost (localhost [127.0.0.1]) (uid 500) by "
	    "mail.example.com with local; Tue, 07 Jan 2003 11:40:47 -0600",
	    "", "localhost", "mail.example.com");
	/* Exim -bs: the HELO literal is the user's word, not a connection */
	parses_to("from root (helo=[192.0.2.220]) by host.example.org with "
	    "local-esmtp (Exim 4.94.2) (envelope-from <root@host.example.org>) "
	    "id 1tEC1b-000Bce-1r; Thu, 21 Nov 2024 09:15:32 +0000", "", "root",
	    "host.example.org");
}

static void
relays_that_mention_local_words_stay_relays(void **state)
{
	/* amavis hands back over SMTP on loopback: a relay */
	parses_to("from mx.example.org ([127.0.0.1]) by localhost "
	    "(mx.example.org [127.0.0.1]) (amavis, port 10032) with ESMTP id "
	    "Xy12AbCd3456; Thu, 21 Nov 2024 10:15:32 +0100", "127.0.0.1",
	    "mx.example.org", "localhost");
	/* "uid" and "local" as mere words, not a spool line */
	parses_to("from uid.example.net (uid.example.net [198.51.100.5]) by "
	    "mx.example.org (Postfix) with ESMTP id 4XvQC3 for "
	    "<local@example.org>; Thu, 21 Nov 2024 10:15:32 +0100",
	    "198.51.100.5", "uid.example.net", "mx.example.org");
}

/* --- measured over many MTAs' formats ------------------------------------ */

struct sample {
	const char *value, *ip;
};

/* Headers that describe a relay; ip is the client's address. */
static const struct sample relays[] = {
	/* Postfix */
	{ "from mail.example.net (mail.example.net [198.51.100.7]) by "
	  "mx.example.org (Postfix) with ESMTPS id 4XvQBy1Z2Kz9sW for "
	  "<alice@example.org>; Thu, 21 Nov 2024 10:15:32 +0100 (CET)",
	  "198.51.100.7" },
	{ "from relay.example.net (unknown [203.0.113.45]) by mx.example.org "
	  "(Postfix) with ESMTP id 4XvQC01abcz9sX; Thu, 21 Nov 2024 10:15:32 "
	  "+0100 (CET)", "203.0.113.45" },
	{ "from [192.0.2.33] (unknown [192.0.2.33]) (Authenticated sender: "
	  "bob@example.org) by smtp.example.org (Postfix) with ESMTPSA id "
	  "4XvQC1; Thu, 21 Nov 2024 10:15:32 +0100", "192.0.2.33" },
	{ "from mx.example.net (mx.example.net [IPv6:2001:db8:10::25]) (using "
	  "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) "
	  "key-exchange X25519 server-signature RSA-PSS (2048 bits) "
	  "server-digest SHA256) (No client certificate requested) by "
	  "mx.example.org (Postfix) with ESMTPS id 4XvQC2", "2001:db8:10::25" },
	{ "from av0001.example.net (localhost [127.0.0.1])by  "
	  "localhost.example.net (Postfix) with ESMTP id 846CF2117for  "
	  "<u@example.org>; Mon,  7 Aug 2006 17:48:07 +0200", "127.0.0.1" },
	{ "from klqe.example (unknown [192.0.2.50]) by mail.example.com "
	  "(Postfix) with ESMTP id 62F9114047; Sun, 15 Feb 2004 14:29:04 -0500",
	  "192.0.2.50" },
	/* Sendmail */
	{ "from mail.example.net (mail.example.net [198.51.100.9]) by "
	  "mx.example.com (8.17.1.9/8.17.1.9) with ESMTPS id 4ALAFWxV012345 "
	  "(version=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 bits=256 verify=NOT) "
	  "for <carol@example.com>; Thu, 21 Nov 2024 10:15:32 +0100",
	  "198.51.100.9" },
	{ "from laptop.example.com (dsl-203-0-113-12.example.net "
	  "[203.0.113.12] (may be forged)) (authenticated bits=0) by "
	  "mx.example.com (8.17.1.9/8.17.1.9) with ESMTPSA id 4ALAFWxW012346",
	  "203.0.113.12" },
	{ "from mail.example.net (IDENT:root@mail.example.net "
	  "[198.51.100.10]) by mx.example.com (8.15.2/8.15.2) with ESMTP id "
	  "h381Vvf19860", "198.51.100.10" },
	{ "from mail.example.net (mail.example.net [IPv6:::ffff:198.51.100.11]) "
	  "by mx.example.com (8.15.2/8.15.2) with ESMTP id 4ALAFWxV012347",
	  "198.51.100.11" },
	{ "from [192.0.2.70] ([192.0.2.70]) by mx.example.com (8.14.7/8.14.7) "
	  "with ESMTP id s2M8b7xY012348", "192.0.2.70" },
	{ "from host.example.net ([IPv6:2001:db8::77]) by mx.example.com "
	  "(8.16.1/8.16.1) with ESMTP id 4ALAFWxV012349", "2001:db8::77" },
	{ "from [192.168.1.3] (dsl.example.net [203.0.113.13]) (authenticated "
	  "bits=0) by mac.example.com (Xserve/smtpin08/MantshX 4.0) with ESMTP "
	  "id i8NIdH8G002812", "203.0.113.13" },
	/* Exim */
	{ "from mail.example.net ([198.51.100.20]) by mx.example.org with "
	  "esmtps (TLS1.3) tls TLS_AES_256_GCM_SHA384 (Exim 4.96) "
	  "(envelope-from <bob@example.net>) id 1tEC0k-0000Qw-2V for "
	  "alice@example.org; Thu, 21 Nov 2024 09:15:32 +0000",
	  "198.51.100.20" },
	{ "from [203.0.113.51] (port=48222 helo=[10.0.0.7]) by mx.example.org "
	  "with esmtpsa (TLS1.2) tls TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 "
	  "(Exim 4.96.2) (envelope-from <x@example.net>) id 1tEC0m-0000Qy-4B",
	  "203.0.113.51" },
	{ "from mail.example.net ([198.51.100.21]:41234 helo=mail.example.net) "
	  "by mx.example.org with esmtps (TLS1.3) tls TLS_AES_256_GCM_SHA384 "
	  "(Exim 4.97) (envelope-from <>) id 1tEC0l-0000Qx-3A",
	  "198.51.100.21" },
	{ "from dsl.example.net ([203.0.113.52]:11218 helo=sandpiper) by "
	  "mx.example.org with esmtp (Exim 4.94.2) id 1CJaZW-0006rU-00",
	  "203.0.113.52" },
	{ "from host.example.net ([2001:db8:5::9]:53412 helo=host.example.net) "
	  "by mx.example.org with esmtps (Exim 4.97) id 1tEC0n-0000Qz-5C",
	  "2001:db8:5::9" },
	{ "from helene.example.net (helo.example.net) [192.0.2.81.13219] "
	  "(mail) by lisbeth.example.org with esmtp (Exim 3.35 #1 (Debian)) id "
	  "1CO5y7-0001vC-00; Sun, 31 Oct 2004 04:01:23 +0100", "192.0.2.81" },
	{ "from jsoliday.example.net ([198.51.100.24.63559]) by "
	  "mailhost.example.net with esmtp  (v3.35.1) id 1GNrLz-000295-00; "
	  "Thu, 14 Sep 2006 09:34:07 -0400", "198.51.100.24" },
	{ "from mail.example.net ([::ffff:198.51.100.25]:50211 "
	  "helo=mail.example.net) by mx.example.org with esmtp (Exim 4.92) id "
	  "1tEC0o-0000R0-6D", "198.51.100.25" },
	{ "from [192.0.2.90] (helo=mail.example.net) by mx.example.org with "
	  "esmtp (Exim 4.96) (envelope-from <b@example.net>) id "
	  "1tEC0p-0000R1-7E", "192.0.2.90" },
	{ "from [::ffff:192.0.2.180] (helo=mail.example.net) by mx.example.org "
	  "with esmtp (Exim 4.92) id 1tEC0q-0000R2-8F", "192.0.2.180" },
	/* qmail */
	{ "from unknown (HELO mail.example.net) (198.51.100.30) by "
	  "mail.example.com with SMTP; 21 Nov 2024 09:15:32 -0000",
	  "198.51.100.30" },
	{ "from mx10.example.net (HELO ) (198.51.100.31) by mail.example.com "
	  "with SMTP; 3 Mar 2004 20:34:38 -0000", "198.51.100.31" },
	{ "from 203.0.113.32  (EHLO ) (203.0.113.32) by mta232.mail.example.com "
	  "with SMTP; Sun, 25 Jan 2004 00:24:37 -0800", "203.0.113.32" },
	{ "from unknown (HELO ) ([192.0.2.100]) (envelope-sender "
	  "<bob@example.net>) by mail.example.com (qmail-ldap-1.03) with SMTP "
	  "for <a@example.com>; 28 Nov 2003 20:44:45 -0000", "192.0.2.100" },
	{ "from mail.example.net (198.51.100.32) by mail.example.com with SMTP; "
	  "16 Nov 2003 04:53:54 -0000", "198.51.100.32" },
	{ "from unknown (HELO ?192.168.1.5?) (bob@198.51.100.33) by "
	  "mail.example.com with ESMTPA; 23 May 2007 15:05:04 -0000",
	  "198.51.100.33" },
	{ "from unknown (HELO mail.example.net) (::ffff:198.51.100.34) by "
	  "mail.example.com with SMTP; 21 Nov 2024 09:15:32 -0000",
	  "198.51.100.34" },
	{ "from mail.example.net (HELO mail.example.net) (198.51.100.35) by "
	  "mail.example.com with ESMTPS (ECDHE-RSA-AES256-GCM-SHA384 "
	  "encrypted); 21 Nov 2024 09:15:32 -0000", "198.51.100.35" },
	{ "from mail.example.net (HELO ) (bob@198.51.100.36) by "
	  "mail.example.com with ESMTPA; 21 Nov 2024 09:15:32 -0000",
	  "198.51.100.36" },
	/* CommuniGate Pro */
	{ "from [192.0.2.110] (HELO mail.example.net) by mx.example.com "
	  "(CommuniGate Pro SMTP 6.3.18) with ESMTPS id 12345678 for "
	  "u@example.com; Thu, 21 Nov 2024 10:15:32 +0100", "192.0.2.110" },
	{ "from mail.example.net ([198.51.100.40] verified) by mx.example.com "
	  "(CommuniGate Pro SMTP 6.2.14) with ESMTP id 9837783 for "
	  "u@example.com", "198.51.100.40" },
	{ "from [203.0.113.60] (account bob@example.com HELO [10.0.0.5]) by "
	  "mx.example.com (CommuniGate Pro SMTP 6.3.18) with ESMTPSA id "
	  "88402416 for x@example.org", "203.0.113.60" },
	{ "from [203.0.113.61] (account bob@example.com) by mx.example.com "
	  "(CommuniGate Pro WebUser 6.3.18) with HTTP id 109780632 for "
	  "x@example.org", "203.0.113.61" },
	{ "from [198.51.100.41] (HELO ) by mx.example.com (CommuniGate Pro SMTP "
	  "6.2.14) with SMTP id 19467966 for u@example.com", "198.51.100.41" },
	{ "from [::ffff:198.51.100.42] (HELO mail.example.net) by "
	  "mx.example.com (CommuniGate Pro SMTP 6.2.14) with ESMTP id 9837455",
	  "198.51.100.42" },
	/* Exchange and Microsoft 365 */
	{ "from EX01.corp.example (10.1.2.3) by EX02.corp.example (10.1.2.4) "
	  "with Microsoft SMTP Server (version=TLS1_2, "
	  "cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.1.2507.23; Thu, "
	  "21 Nov 2024 10:15:32 +0100", "10.1.2.3" },
	{ "from mail.example.net ([198.51.100.50]) by ex.example.com with "
	  "Microsoft SMTPSVC(6.0.3790.4675); Thu, 21 Nov 2024 10:15:32 +0100",
	  "198.51.100.50" },
	{ "from tthompson ([203.0.113.70] unverified) by mail.example.com with "
	  "Microsoft SMTPSVC(6.0.3790.4675); Tue, 11 Mar 2003 13:23:01 +0000",
	  "203.0.113.70" },
	{ "from AM4PEPF00027A5F.eurprd04.prod.outlook.com (2001:db8:20b:2c3::12) "
	  "by DU0PR08MB9654.eurprd08.prod.outlook.com (2001:db8:20b:2c3::13) "
	  "with Microsoft SMTP Server (version=TLS1_2, "
	  "cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.20.8158.20",
	  "2001:db8:20b:2c3::12" },
	{ "from mail.example.net (::ffff:192.0.2.120) by EX03.corp.example "
	  "(10.1.2.5) with Microsoft SMTP Server id 14.3.498.0; Thu, 21 Nov "
	  "2024 10:15:32 +0100", "192.0.2.120" },
	{ "from mail.example.net (198.51.100.51) by "
	  "AM4PEPF00027A5F.mail.protection.outlook.com (10.167.16.110) with "
	  "Microsoft SMTP Server (version=TLS1_3, "
	  "cipher=TLS_AES_256_GCM_SHA384) id 15.20.8158.14 via Frontend "
	  "Transport", "198.51.100.51" },
	{ "from  ([172.16.1.78]) by email2.example.com with Microsoft "
	  "SMTPSVC(5.0.2195.6713); Wed, 6 Sep 2006 21:14:29 -0400",
	  "172.16.1.78" },
	/* ecelerity (Momentum) */
	{ "from [192.0.2.130] ([192.0.2.130:50387] helo=mta.example.net) by "
	  "m12.example.com (envelope-from <bounce@example.net>) (ecelerity "
	  "4.2.1.55028 r(Core:4.2.1.12)) with ESMTP id 80/0A-02454-4DCB6054",
	  "192.0.2.130" },
	{ "from ([198.51.100.60:53798] helo=mail.example.net) by mx.example.org "
	  "(ecelerity 2.1 r(10620)) with ESMTP id 5A/F0-04030-76FF6054 for "
	  "<x@example.org>", "198.51.100.60" },
	{ "from [127.0.0.1] ([127.0.0.1:50024]) by mta.example.com (ecelerity "
	  "2.1.1.8 r(12431)) with ECSTREAM id 10/BD-03444-F4DB6054 for "
	  "<x@example.org>", "127.0.0.1" },
	{ "from [::ffff:203.0.113.80] ([::ffff:203.0.113.80:40112] "
	  "helo=mail.example.net) by mta.example.com (ecelerity 4.2.1.55028 "
	  "r(Core:4.2.1.12)) with ESMTPS id 01/23-45678-9ABCDEF0",
	  "203.0.113.80" },
	/* XMail */
	{ "from mail.example.net (198.51.100.70:23198) by mx.example.com with "
	  "[XMail 1.27 ESMTP Server] id <S12AB> for <u@example.com> from "
	  "<b@example.net>; Sat, 18 Sep 2004 23:17:54 -0500", "198.51.100.70" },
	{ "from mail.example.net ([198.51.100.71]:23199) by mx.example.com with "
	  "[XMail 1.27 ESMTP Server] id <S12AC> for <u@example.com> from "
	  "<b@example.net>", "198.51.100.71" },
	{ "from mail.example.net ([2001:db8::71]:23200) by mx.example.com with "
	  "[XMail 1.27 ESMTP Server] id <S12AD> for <u@example.com>",
	  "2001:db8::71" },
	/* Courier */
	{ "from mail.example.net (mail.example.net [::ffff:198.51.100.80]) by "
	  "mx.example.com with ESMTP; Thu, 21 Nov 2024 10:15:32 +0100",
	  "198.51.100.80" },
	{ "from laptop (dsl.example.net [::ffff:203.0.113.90]) (AUTH: LOGIN "
	  "bob, TLS: TLSv1/SSLv3,256bits,AES256-SHA) by mx.example.com with "
	  "ESMTPSA; Thu, 21 Nov 2024 10:15:32 +0100", "203.0.113.90" },
	{ "from mail.example.net (mail.example.net [2001:db8:7::25]) (TLS: "
	  "TLSv1.3,256bits,TLS_AES_256_GCM_SHA384) by mx.example.com with "
	  "UTF8SMTPS", "2001:db8:7::25" },
	/* Gmail */
	{ "from mail-sor-f41.google.com (mail-sor-f41.google.com. "
	  "[198.51.100.141]) by mx.google.com with SMTPS id "
	  "a640c23a62f3a-aa50990a1c8sor1234567366b.4.2024.11.21.01.15.32 for "
	  "<alice@example.org> (Google Transport Security)",
	  "198.51.100.141" },
	{ "from mail.example.net (mail.example.net. [2001:db8:4864:20::62f]) by "
	  "mx.google.com with ESMTPS id d9443c01a7336-21287ee2d1fsi1234567 "
	  "(version=TLS1_3 cipher=TLS_AES_256_GCM_SHA384 bits=256/256)",
	  "2001:db8:4864:20::62f" },
	/* OpenSMTPD, Haraka, Kerio, amavis, Dovecot LMTP */
	{ "from mail.example.net (mail.example.net [198.51.100.90]) by "
	  "mx.example.org (OpenSMTPD) with ESMTPS id 1a2b3c4d "
	  "(TLSv1.3:TLS_AES_256_GCM_SHA384:256:NO) for <alice@example.org>",
	  "198.51.100.90" },
	{ "from mail.example.net (mail.example.net [198.51.100.91]) by "
	  "mx.example.org (Haraka/3.0.3) with ESMTPS id "
	  "8F1B2C3D-4E5F-6A7B-8C9D-0E1F2A3B4C5D.1 envelope-from "
	  "<b@example.net> tls TLS_AES_256_GCM_SHA384", "198.51.100.91" },
	{ "from mail.example.net ([198.51.100.97]) by mx.example.com (Kerio "
	  "Connect 10.0.2) with ESMTPS (version=TLSv1.3 "
	  "cipher=TLS_AES_256_GCM_SHA384 bits=256)", "198.51.100.97" },
	{ "from mx.example.org ([127.0.0.1]) by localhost (mx.example.org "
	  "[127.0.0.1]) (amavis, port 10032) with ESMTP id Xy12AbCd3456",
	  "127.0.0.1" },
	{ "from mx.example.org ([192.0.2.160]) by imap.example.org with LMTP "
	  "id 4FPnLBn/PmdsKwAAaWFlBA (envelope-from <b@example.net>) for "
	  "<a@example.org>", "192.0.2.160" },
	/* Norton gateway, SquirrelMail, GMX, webmail */
	{ "(from KRYPTIK [203.0.113.100]) by gw.example.com (NAVGW 2.5.2.12) "
	  "with SMTP id M2006040415284308595 for <u@example.com>",
	  "203.0.113.100" },
	{ "from 192.0.2.150 (SquirrelMail authenticated user admin); by "
	  "web1.example.edu with HTTP; Thu, 23 Sep 2004 14:35:29 -0600",
	  "192.0.2.150" },
	{ "from pool.example.net (EHLO laptop) [203.0.113.110] by mail.gmx.net "
	  "(mp033) with SMTP; 23 Nov 2012 19:06:20 +0100", "203.0.113.110" },
	{ "from [203.0.113.120] by web1.example.com (via HTTP); Tue, 11 Nov "
	  "2014 20:32:34 +0100", "203.0.113.120" },
	{ "from 192.0.2.170 by webmail.example.com with HTTP; Wed, 28 Nov 2012 "
	  "00:57:41 +0100 (CET)", "192.0.2.170" },
	{ "from DPLAPTOP ( 198.51.100.98) by mail.example.com (Scalix SMTP "
	  "Relay 10.0.1.3) via ESMTP; Fri, 23 Jun 2006 16:39:47 -0500",
	  "198.51.100.98" },
	{ "from mail1-backend.example.com (LHLO mail2-backend.example.com) "
	  "(10.2.2.20) by mail3-backend.example.com with LMTP; Thu, 18 Jun 2015 "
	  "16:50:56 -0700", "10.2.2.20" },
};

/* Headers that describe no relay: mail fetched, spooled or made here. */
static const char *const non_relays[] = {
	"from pop.example.net [198.51.100.200]\r\n\tby localhost with POP3 "
	"(fetchmail-6.4.37)\r\n\tfor <alice@localhost> (single-drop); Thu, 21 "
	"Nov 2024 10:15:32 +0100 (CET)",
	"from localhost [127.0.0.1] by localhost with IMAP (fetchmail-6.2.4) "
	"for alice@localhost (single-drop); Mon, 08 Mar 2004 16:13:23 -0800",
	"from imap.example.net [2001:db8::993] by ws.example.org with IMAP "
	"(fetchmail-6.4.38 polling imap.example.net account alice folder "
	"INBOX) for <alice@localhost> (single-drop)",
	"from pop.example.net\r\n\tby laptop.example.org (fetchmail-4.7.5 POP3 "
	"run by alice)\r\n\tfor <alice@laptop.example.org> (single-drop); Thu "
	"Nov 21 10:15:32 2002",
	"from pop.example.net [192.0.2.201] by localhost with POP3 "
	"(fetchmail-6.3.26) for <alice@example.org> (by default); Thu, 21 Nov "
	"2024 10:15:32 +0100",
	"from mx.example.net [203.0.113.201] by localhost with ODMR "
	"(fetchmail-6.4.0) for <alice@localhost> (single-drop)",
	"from localhost [127.0.0.1] by localhost with ESMTP (fetchmail-6.4.37 "
	"polling mail.example.net account bob) for <bob@localhost> "
	"(single-drop)",
	"from pop.example.net [198.51.100.205] by localhost with POP3 "
	"(fetchmail-6.4.37 polling pop.example.net account "
	"alice@example.net) for <alice@localhost> (single-drop)",
	"from pop3.example.net (198.51.100.202) by laptop.example.org with "
	"POP3; 14 Apr 2010 11:14:29 -0000",
	"from imap.example.net (imap.example.net [198.51.100.203]) by "
	"laptop.example.org with IMAP4; 14 Apr 2010 11:14:29 -0000",
	"from 192.0.2.203 by localhost with POP3; 14 Apr 2010 11:14:29 -0000",
	"(qmail 1234 invoked by uid 89); 21 Nov 2024 09:15:32 -0000",
	"(qmail 87263 messnum 771997 invoked from network"
	"[198.51.100.210/mail.example.net]); 8 Mar 2004 23:59:05 -0000",
	"(qmail 5678 invoked by alias); 21 Nov 2024 09:15:32 -0000",
	"from bob@example.net by mail.example.com by uid 502 with "
	"qmail-scanner-1.20 (clamuko: 0.65. f-prot: 4.2.0/3.13.4.  "
	"Clear:RC:0(198.51.100.211):.  Processed in 0.212322 secs); 03 Mar "
	"2004 20:34:39 -0000",
	"from 198.51.100.212 by mail.example.com (envelope-from "
	"<b@example.net>, uid 502) with qmail-scanner-2.01 (clamdscan: "
	"0.88/1234. Clear:RC:0(198.51.100.212):. Processed in 1.2 secs); 06 "
	"Feb 2005 21:11:38 -0000",
	"from 203.0.113.210 by mail.example.com by uid 89 with "
	"qmail-scanner-1.25st (clamdscan: 0.88.7/2047. "
	"Clear:RC:0(203.0.113.210):. Processed in 0.3 secs)",
	"(from alice@localhost) by host.example.com (8.17.1.9/8.17.1.9/Submit) "
	"id 4ALAFWxV012350; Thu, 21 Nov 2024 10:15:32 +0100",
	"(from www-data@localhost) by web.example.com (8.15.2/8.15.2/Submit) id "
	"4ALAFX12012351; Thu, 21 Nov 2024 10:15:32 +0100",
	"from localhost (alice@localhost) by host.example.com (8.9.3/8.9.3) "
	"with ESMTP id QAA13555 for <bob@example.org>",
	"by mail.example.org (Postfix, from userid 1000) id 4XvQBy9z0Zz9sWz; "
	"Thu, 21 Nov 2024 10:15:32 +0100 (CET)",
	"from alice by host.example.org with local (Exim 4.96) (envelope-from "
	"<alice@host.example.org>) id 1tEC1a-000Bcd-0q for bob@example.org",
	"from root (helo=[192.0.2.220]) by host.example.org with local-esmtp "
	"(Exim 4.94.2) (envelope-from <root@host.example.org>) id "
	"1tEC1b-000Bce-1r",
	"from amavis by mx.example.org with local-bsmtp (Exim 4.96) id "
	"1tEC1c-000Bcf-2s for <a@example.org>",
	"from localhost (localhost [127.0.0.1]) (uid 500) by mail.example.com "
	"with local; Tue, 07 Jan 2003 11:40:47 -0600",
	"from localhost by mail.example.org with SpamAssassin (version 4.0.0); "
	"Thu, 21 Nov 2024 10:15:32 +0100",
	"from mail pickup service by mail.example.com with Microsoft SMTPSVC; "
	"Tue, 16 Mar 2004 18:12:31 -0800",
	"from bob@aol.example by imo-m01.mx.aol.example (mail_out_v36_r4.12.) "
	"id m.b9.3bfe3305 (4116) for <c@example.org>",
	"from mail.example.org by mail.example.org with LMTP id "
	"4FPnLBn/PmdsKwAAaWFlBA (envelope-from <bob@example.net>) for "
	"<alice@example.org>",
	"from mail.example.org ([unix socket]) by mail.example.org (Cyrus "
	"3.6.1) with LMTPA; Thu, 21 Nov 2024 10:15:32 +0100",
	"from LISTS.EXAMPLE.ORG by LISTS.EXAMPLE.ORG (LISTSERV-TCP/IP release "
	"16.5) with spool id 35469828 for L@LISTS.EXAMPLE.ORG",
	"from Spooler by mail2.example.com (Mercury/32 v4.01a) ID MO0072A1; 5 "
	"Jun 2006 11:50:08 -0400",
	"from localhost (mail.example.org [local]) by mail.example.org "
	"(OpenSMTPD) with ESMTPA id 5db34e0d for <e@example.com>",
	"from amavis by mx.example.org with scanned-ok (Exim 4.96) id "
	"1FiWc9-0007Du-00 for <u@example.org>",
	"from conversion-daemon.mail.example.com by mail.example.com (Oracle "
	"Communications Messaging Server 8.0) id <0J0E00K02L0G76@example.com>",
};

static void
relay_addresses_found_and_non_relays_make_no_hop(void **state)
{
	size_t nrelay = sizeof(relays) / sizeof(relays[0]);
	size_t nnon = sizeof(non_relays) / sizeof(non_relays[0]);
	size_t found = 0, false_hops = 0;

	for (size_t i = 0; i < nrelay; i++) {
		struct mt_received r;

		mt_received_parse(relays[i].value, strlen(relays[i].value), &r);
		if (same_ip(r.ip, relays[i].ip))
			found++;
		else
			printf("miss: \"%s\" from %.60s\n", r.ip,
			    relays[i].value);
	}
	for (size_t i = 0; i < nnon; i++) {
		struct mt_received r;

		mt_received_parse(non_relays[i], strlen(non_relays[i]), &r);
		if (r.ip[0] != '\0') {
			false_hops++;
			printf("false hop: \"%s\" from %.60s\n", r.ip,
			    non_relays[i]);
		}
	}
	printf("relay address found in %zu of %zu (%.1f%%); "
	    "hops from %zu of %zu non-relay lines\n", found, nrelay,
	    100.0 * (double)found / (double)nrelay, false_hops, nnon);
	assert_true(nrelay >= 60 && nnon >= 30);
	assert_true(found * 100 >= nrelay * 97);
	assert_true(false_hops <= 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(real_world_forms_yield_client_address_and_by_host),
		cmocka_unit_test(malformed_forms_stay_in_bounds),
		cmocka_unit_test(bracketed_literal_wins_over_helo_words),
		cmocka_unit_test(text_without_from_or_by_is_refused),
		cmocka_unit_test(ecelerity_port_inside_brackets_is_dropped),
		cmocka_unit_test(exim3_port_after_a_dot_is_dropped),
		cmocka_unit_test(xmail_port_inside_parentheses_is_dropped),
		cmocka_unit_test(port_after_the_bracket_leaves_the_address),
		cmocka_unit_test(ipv6_groups_are_never_taken_for_a_port),
		cmocka_unit_test(impossible_ports_give_no_address),
		cmocka_unit_test(v4_mapped_addresses_are_kept_as_ipv4),
		cmocka_unit_test(empty_helo_does_not_hide_the_address_after_it),
		cmocka_unit_test(helo_argument_is_still_the_clients_claim),
		cmocka_unit_test(navgw_leading_from_comment_names_the_client),
		cmocka_unit_test(squirrelmail_semicolon_before_by_keeps_the_by_host),
		cmocka_unit_test(fetchmail_pop3_and_imap_retrievals_are_no_relay),
		cmocka_unit_test(fetchmail_signature_is_no_relay_whatever_the_protocol),
		cmocka_unit_test(getmail_pop3_retrieval_is_no_relay),
		cmocka_unit_test(qmail_invoked_lines_are_refused),
		cmocka_unit_test(qmail_scanner_by_uid_is_no_relay),
		cmocka_unit_test(local_user_submissions_are_no_relay),
		cmocka_unit_test(relays_that_mention_local_words_stay_relays),
		cmocka_unit_test(relay_addresses_found_and_non_relays_make_no_hop),
	};

	corpus = getenv("MT_TEST_RECEIVED_DIR");
	cases = getenv("MT_TEST_RECEIVED_CASES");
	if (corpus == NULL || cases == NULL) {
		fprintf(stderr, "test_received: set MT_TEST_RECEIVED_DIR and "
		    "MT_TEST_RECEIVED_CASES (make unit does)\n");
		return 1;
	}
	return cmocka_run_group_tests_name("received", tests, NULL, NULL);
}
