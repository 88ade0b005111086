/*
 * Layout 2's key names: the prefix from the configuration, the tracking ID
 * as a Cluster hash tag so that a message's keys share one slot, and every
 * script hashed once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../common/config.h"
#include "../../state/cluster.h"
#include "../../state/schema.h"

#define ID "0vq1k2m3n4abcdefghijklmnop.0123456789abcdef"

static void
init(struct mt_schema *s, const char *prefix)
{
	struct mt_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.redis_prefix = (char *)prefix;
	cfg.retention_days = 7;
	cfg.events_maxlen = 5000;
	assert_int_equal(mt_schema_init(s, &cfg), 0);
	assert_int_equal(s->ttl, 7 * 86400);
	assert_int_equal(s->maxlen, 5000);
}

static void
key_is(const struct mt_schema *s, enum mt_key_kind k, const char *arg,
    const char *want)
{
	char *got = mt_key(s, k, arg, arg ? strlen(arg) : 0);

	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static void
every_key_follows_layout_2(void **state)
{
	struct mt_schema s;
	char *k;

	init(&s, "mt:");
	key_is(&s, MT_KEY_RECORD, ID, "mt:{" ID "}");
	key_is(&s, MT_KEY_EVENTS, ID, "mt:{" ID "}:ev");
	key_is(&s, MT_KEY_QID, "4VtD2k1Hq5z9", "mt:qid:4VtD2k1Hq5z9");
	key_is(&s, MT_KEY_MSGID, "a@b", "mt:msgid:a@b");
	key_is(&s, MT_KEY_FROM, "alice@example.org", "mt:from:alice@example.org");
	key_is(&s, MT_KEY_TO, "bob@example.net", "mt:to:bob@example.net");
	key_is(&s, MT_KEY_SCHED, NULL, "mt:sched");
	key_is(&s, MT_KEY_STREAM, "ignored", "mt:events");
	key_is(&s, MT_KEY_ROUTE, "out1", "mt:route:out1");
	k = mt_key_route_day(&s, "out1", "20261202");
	assert_string_equal(k, "mt:route:out1:20261202");
	free(k);
	init(&s, "site2:");
	key_is(&s, MT_KEY_RECORD, ID, "site2:{" ID "}");
	/* arglen counts: a Message-ID is not cut at a NUL-free length */
	k = mt_key(&s, MT_KEY_MSGID, "abcdef", 3);
	assert_string_equal(k, "site2:msgid:abc");
	free(k);
}

static void
a_message_keys_share_one_slot(void **state)
{
	struct mt_schema s;
	char *rec, *ev, *other;

	init(&s, "mt:");
	rec = mt_key(&s, MT_KEY_RECORD, ID, strlen(ID));
	ev = mt_key(&s, MT_KEY_EVENTS, ID, strlen(ID));
	other = mt_key(&s, MT_KEY_RECORD, "another", 7);
	assert_int_equal(mt_cluster_slot(rec, strlen(rec)),
	    mt_cluster_slot(ev, strlen(ev)));
	assert_int_equal(mt_cluster_slot(rec, strlen(rec)),
	    mt_cluster_slot(ID, strlen(ID)));
	assert_int_not_equal(mt_cluster_slot(rec, strlen(rec)),
	    mt_cluster_slot(other, strlen(other)));
	free(rec);
	free(ev);
	free(other);
}

static void
scripts_and_fingerprints_are_stable(void **state)
{
	char a[MT_FP_LEN + 1], b[MT_FP_LEN + 1];

	for (int k = 0; k < MT_SCRIPT_COUNT; k++) {
		const struct mt_redis_script *sc = mt_schema_script(k);

		assert_non_null(sc);
		assert_int_equal(strlen(sc->sha), 40);
		assert_true(sc->len > 0);
	}
	assert_null(mt_schema_script(MT_SCRIPT_COUNT));
	mt_schema_fingerprint("line", 4, a);
	mt_schema_fingerprint("line", 4, b);
	assert_string_equal(a, b);
	assert_int_equal(strlen(a), MT_FP_LEN);
	mt_schema_fingerprint("line2", 5, b);
	assert_string_not_equal(a, b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_key_follows_layout_2),
		cmocka_unit_test(a_message_keys_share_one_slot),
		cmocka_unit_test(scripts_and_fingerprints_are_stable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
