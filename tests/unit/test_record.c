/*
 * Trace records: the spool JSON round-trips every field, hostile spool
 * text is refused with a reason (never a crash), and the event objects
 * carry what the contract promises.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>

#include "../../state/record.h"

#define ID "0123456789abcdefghijklmnop.qrstuv0123456789"

static void
fill(struct mt_record *r)
{
	memset(r, 0, sizeof(*r));
	strcpy(r->id, ID);
	r->id_kept = 1;
	r->qid = strdup("4XyZ1b2C3d");
	r->msgid = strdup("abc@example.org");
	r->sender = strdup("alice@example.org");
	r->nrcpt = 2;
	r->rcpt = calloc(2, sizeof(char *));
	r->rcpt[0] = strdup("bob@example.net");
	r->rcpt[1] = strdup("carol@example.net");
	r->client_ip = strdup("192.0.2.7");
	r->client_name = strdup("mx.example.org");
	r->helo = strdup("mx.example.org");
	r->auth = strdup("alice");
	r->have_geo = 1;
	r->lat = 48.8566;
	r->lon = -2.3522;
	r->cc = strdup("FR");
	r->city = strdup("Paris \xc3\xa9t\xc3\xa9");
	r->hops = 2;
	r->hop_path = strdup("[{\"n\":1,\"ip\":\"192.0.2.7\"}]");
	r->size = 12345;
	r->received_ms = 1700000000123;
	r->send_at_ms = 1700000600000;
	r->by = strdup("mta1.example.org");
}

static void
round_trip_keeps_every_field(void **state)
{
	struct mt_record a, b;
	char err[256], *s;

	fill(&a);
	s = mt_record_serialize(&a);
	assert_non_null(s);
	assert_int_equal(mt_record_parse(s, strlen(s), &b, err, sizeof(err)), 0);
	assert_string_equal(b.id, ID);
	assert_int_equal(b.id_kept, 1);
	assert_string_equal(b.qid, a.qid);
	assert_string_equal(b.msgid, a.msgid);
	assert_string_equal(b.sender, a.sender);
	assert_int_equal(b.nrcpt, 2);
	assert_string_equal(b.rcpt[1], "carol@example.net");
	assert_string_equal(b.client_ip, a.client_ip);
	assert_string_equal(b.client_name, a.client_name);
	assert_string_equal(b.helo, a.helo);
	assert_string_equal(b.auth, a.auth);
	assert_int_equal(b.have_geo, 1);
	assert_true(b.lat == a.lat && b.lon == a.lon);
	assert_string_equal(b.cc, "FR");
	assert_string_equal(b.city, a.city);
	assert_int_equal(b.hops, 2);
	assert_string_equal(b.hop_path, a.hop_path);
	assert_int_equal(b.size, 12345);
	assert_int_equal(b.received_ms, 1700000000123);
	assert_int_equal(b.send_at_ms, 1700000600000);
	assert_string_equal(b.by, a.by);
	assert_int_equal(mt_record_check(&b, err, sizeof(err)), 0);
	free(s);
	mt_record_free(&a);
	mt_record_free(&b);
}

static void
round_trip_leaves_absent_fields_absent(void **state)
{
	struct mt_record a, b;
	char err[256], *s;

	memset(&a, 0, sizeof(a));
	strcpy(a.id, ID);
	a.qid = strdup("ABC123");
	a.sender = strdup("<>");
	a.received_ms = 1;
	s = mt_record_serialize(&a);
	assert_int_equal(mt_record_parse(s, strlen(s), &b, err, sizeof(err)), 0);
	assert_null(b.msgid);
	assert_null(b.client_ip);
	assert_null(b.hop_path);
	assert_int_equal(b.nrcpt, 0);
	assert_int_equal(b.have_geo, 0);
	assert_int_equal(b.id_kept, 0);
	assert_string_equal(b.sender, "<>");
	free(s);
	mt_record_free(&a);
	mt_record_free(&b);
}

#define GOOD_HEAD "{\"v\":1,\"id\":\"" ID "\",\"qid\":\"ABC\",\"sender\":\"a@b\","

static char *
many_rcpts(size_t n)
{
	size_t i, cap = n * 8 + 256, off;
	char *s = malloc(cap);

	off = (size_t)snprintf(s, cap, GOOD_HEAD "\"received_ms\":1,\"rcpt\":[");
	for (i = 0; i < n; i++)
		off += (size_t)snprintf(s + off, cap - off, "%s\"r%zu\"",
		    i ? "," : "", i % 10);
	snprintf(s + off, cap - off, "]}");
	return s;
}

static char *
long_sender(size_t n)
{
	char *s = malloc(n + 256);

	strcpy(s, "{\"v\":1,\"id\":\"" ID "\",\"qid\":\"ABC\",\"rcpt\":[],"
	    "\"received_ms\":1,\"sender\":\"");
	size_t off = strlen(s);

	memset(s + off, 'x', n);
	s[off + n] = '\0';
	return s;
}

static void
parse_rejects_garbage(void **state)
{
	static const char *bad[] = {
		"", "{", "[]", "null", "42", "\"text\"", "{}",
		"{\"v\":2,\"id\":\"" ID "\",\"qid\":\"A\",\"sender\":\"a\",\"rcpt\":[],\"received_ms\":1}",
		"{\"v\":1,\"id\":\"" ID "X\",\"qid\":\"A\",\"sender\":\"a\",\"rcpt\":[],\"received_ms\":1}",
		"{\"v\":1,\"id\":\"0123456789ABCDEFGHIJKLMNOP.QRSTUV0123456789\",\"qid\":\"A\",\"sender\":\"a\",\"rcpt\":[],\"received_ms\":1}",
		"{\"v\":1,\"id\":\"0123456789abcdefghijklmnop}qrstuv0123456789\",\"qid\":\"A\",\"sender\":\"a\",\"rcpt\":[],\"received_ms\":1}",
		GOOD_HEAD "\"qid\":\"A B\",\"rcpt\":[],\"received_ms\":1}",
		"{\"v\":1,\"id\":\"" ID "\",\"qid\":\"A:B\",\"sender\":\"a\",\"rcpt\":[],\"received_ms\":1}",
		GOOD_HEAD "\"rcpt\":\"x\",\"received_ms\":1}",
		GOOD_HEAD "\"rcpt\":[1],\"received_ms\":1}",
		GOOD_HEAD "\"rcpt\":[\"\"],\"received_ms\":1}",
		GOOD_HEAD "\"rcpt\":[],\"received_ms\":\"1\"}",
		GOOD_HEAD "\"rcpt\":[],\"received_ms\":-1}",
		GOOD_HEAD "\"rcpt\":[],\"received_ms\":1e400}",
		GOOD_HEAD "\"rcpt\":[],\"received_ms\":99999999999999999999999}",
		GOOD_HEAD "\"rcpt\":[],\"received_ms\":1,\"size\":-5}",
		GOOD_HEAD "\"rcpt\":[],\"received_ms\":1,\"lat\":91,\"lon\":0}",
		GOOD_HEAD "\"rcpt\":[],\"received_ms\":1,\"lat\":1}",
		GOOD_HEAD "\"rcpt\":[],\"received_ms\":1,\"helo\":\"a\\r\\nb\"}",
		GOOD_HEAD "\"rcpt\":[],\"received_ms\":1,\"helo\":\"a\\u0000b\"}",
		GOOD_HEAD "\"rcpt\":[],\"received_ms\":1,\"helo\":{\"x\":1}}",
		GOOD_HEAD "\"rcpt\":[],\"received_ms\":1,\"id_kept\":1}",
		GOOD_HEAD "\"rcpt\":[],\"received_ms\":1,\"sender\":\"dup\"}",
		GOOD_HEAD "\"rcpt\":[],\"received_ms\":1,\"hops\":[[[[[[[[[[[[]]]]]]]]]]]]}",
		GOOD_HEAD "\"rcpt\":[],\"received_ms\":1", /* truncated */
	};
	struct mt_record r;
	char err[256], *s;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (mt_record_parse(bad[i], strlen(bad[i]), &r, err,
		    sizeof(err)) == 0)
			fail_msg("accepted #%zu: %s", i, bad[i]);
		assert_true(err[0] != '\0');
		assert_null(r.qid);	/* nothing left allocated */
	}
	s = many_rcpts(MT_RECORD_RCPT_MAX + 1);
	assert_int_equal(mt_record_parse(s, strlen(s), &r, err, sizeof(err)), -1);
	free(s);
	s = many_rcpts(MT_RECORD_RCPT_MAX);
	assert_int_equal(mt_record_parse(s, strlen(s), &r, err, sizeof(err)), 0);
	assert_int_equal(r.nrcpt, MT_RECORD_RCPT_MAX);
	mt_record_free(&r);
	free(s);
}

static void
parse_bounds_string_length(void **state)
{
	struct mt_record r;
	char err[256], *s;

	s = long_sender(MT_RECORD_STR_MAX);
	strcat(s, "\"}");
	assert_int_equal(mt_record_parse(s, strlen(s), &r, err, sizeof(err)), 0);
	mt_record_free(&r);
	free(s);
	s = long_sender(MT_RECORD_STR_MAX + 1);
	strcat(s, "\"}");
	assert_int_equal(mt_record_parse(s, strlen(s), &r, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "sender"));
	free(s);
}

static void
receive_event_has_contract_fields(void **state)
{
	struct mt_record a;
	json_t *o;
	char *s;

	fill(&a);
	a.id_kept = 0;
	a.received_ms = 1700000000123;
	a.hops = 2;
	free(a.hop_path);
	a.hop_path = strdup("[{\"n\":1,\"ip\":\"192.0.2.7\"},{\"n\":2}]");
	/* The first MTA: the record holds its facts, the event only adds. */
	s = mt_record_receive_json(&a, "0123456789abcdef");
	o = json_loads(s, 0, NULL);
	assert_non_null(o);
	assert_int_equal(json_integer_value(json_object_get(o, "t")), 1700000000123);
	assert_string_equal(json_string_value(json_object_get(o, "ev")), "RECEIVE");
	assert_string_equal(json_string_value(json_object_get(o, "fp")),
	    "0123456789abcdef");
	assert_int_equal(json_array_size(json_object_get(o, "path")), 2);
	assert_null(json_object_get(o, "qid"));		/* in the record */
	assert_null(json_object_get(o, "from"));
	assert_null(json_object_get(o, "size"));
	assert_null(json_object_get(o, "msgid"));
	json_decref(o);
	free(s);
	/* A later MTA of the site says what is its own. */
	a.id_kept = 1;
	a.hops = 1;
	s = mt_record_receive_json(&a, NULL);
	o = json_loads(s, 0, NULL);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "qid")), a.qid);
	assert_string_equal(json_string_value(json_object_get(o, "by")), a.by);
	assert_string_equal(json_string_value(json_object_get(o, "from")), a.sender);
	assert_int_equal(json_integer_value(json_object_get(o, "nrcpt")), 2);
	assert_string_equal(json_string_value(json_object_get(o, "client")),
	    "mx.example.org[192.0.2.7]");
	assert_null(json_object_get(o, "path"));	/* one hop: the client */
	assert_null(json_object_get(o, "fp"));
	json_decref(o);
	free(s);
	s = mt_record_spool_event_json(&a, 1700000009999);
	assert_string_equal(s, "{\"t\":1700000009999,\"ev\":\"SPOOL\","
	    "\"qid\":\"4XyZ1b2C3d\",\"spooled\":1700000000123}");
	free(s);
	mt_record_free(&a);
}

static void
invalid_utf8_becomes_question_marks(void **state)
{
	struct mt_record a, b;
	char err[256], *s;

	fill(&a);
	free(a.helo);
	a.helo = strdup("bad\xff\xfe");
	s = mt_record_serialize(&a);
	assert_non_null(s);
	assert_int_equal(mt_record_parse(s, strlen(s), &b, err, sizeof(err)), 0);
	assert_string_equal(b.helo, "bad??");
	free(s);
	mt_record_free(&a);
	mt_record_free(&b);
}

static void
check_refuses_unstorable_records(void **state)
{
	struct mt_record a;
	char err[256];

	fill(&a);
	assert_int_equal(mt_record_check(&a, err, sizeof(err)), 0);
	a.id[5] = '}';
	assert_int_equal(mt_record_check(&a, err, sizeof(err)), -1);
	a.id[5] = '5';
	free(a.qid);
	a.qid = strdup("NO QUEUE");
	assert_int_equal(mt_record_check(&a, err, sizeof(err)), -1);
	mt_record_free(&a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(round_trip_keeps_every_field),
		cmocka_unit_test(round_trip_leaves_absent_fields_absent),
		cmocka_unit_test(parse_rejects_garbage),
		cmocka_unit_test(parse_bounds_string_length),
		cmocka_unit_test(receive_event_has_contract_fields),
		cmocka_unit_test(invalid_utf8_becomes_question_marks),
		cmocka_unit_test(check_refuses_unstorable_records),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
