/* mailtrail.conf: defaults, every error names file:line, key file rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../common/config.h"

static char dir[] = "/tmp/mt-config-XXXXXX";
static char keypath[256], confpath[256];

static int
setup(void **state)
{
	FILE *fp;

	assert_non_null(mkdtemp(dir));
	snprintf(keypath, sizeof(keypath), "%s/key", dir);
	snprintf(confpath, sizeof(confpath), "%s/conf", dir);
	fp = fopen(keypath, "w");
	fputs("0123456789abcdef0123456789abcdef", fp);
	fclose(fp);
	chmod(keypath, 0600);
	return 0;
}

static int
teardown(void **state)
{
	unlink(keypath);
	unlink(confpath);
	rmdir(dir);
	return 0;
}

static struct mt_config *
load_text(const char *text, char *err, size_t errlen)
{
	FILE *fp = fopen(confpath, "w");

	fprintf(fp, "SecretKeyFile %s\n%s", keypath, text);
	fclose(fp);
	return mt_config_load(confpath, 1, err, errlen);
}

static void
defaults_follow_the_product_contract(void **state)
{
	char err[512];
	struct mt_config *c = load_text("", err, sizeof(err));

	assert_non_null(c);
	assert_string_equal(c->socket, "unix:/run/mailtrail/milter.sock");
	assert_int_equal(c->umask, 007);
	assert_string_equal(c->redis_server, "127.0.0.1:6379");
	assert_string_equal(c->redis_prefix, "mt:");
	assert_int_equal(c->retention_days, 30);
	assert_string_equal(c->spool_dir, "/var/spool/mailtrail");
	assert_int_equal(c->log_format, MT_LOG_KV);
	assert_int_equal(c->secret_len, 32);
	assert_true(mt_cidr_list_match_text(&c->internal, "127.0.0.1"));
	assert_true(mt_cidr_list_match_text(&c->internal, "::1"));
	assert_false(mt_cidr_list_match_text(&c->internal, "192.0.2.1"));
	assert_int_equal(c->track_inbound, 1);
	assert_int_equal(c->max_deferral_s, 30 * 86400);
	assert_null(c->redis_cluster);
	mt_config_unref(c);
}

static void
redis_modes_and_track_inbound(void **state)
{
	char err[512];
	struct mt_config *c = load_text("RedisCluster 127.0.0.1:7000, "
	    "[::1]:7001\nTrackInbound no\n", err,
	    sizeof(err));

	assert_non_null(c);
	assert_string_equal(c->redis_cluster, "127.0.0.1:7000, [::1]:7001");
	assert_int_equal(c->track_inbound, 0);
	mt_config_unref(c);
	assert_null(load_text("RedisCluster 127.0.0.1:7000\n"
	    "RedisSentinel 127.0.0.1:26379\n", err, sizeof(err)));
	assert_non_null(strstr(err, "RedisCluster and RedisSentinel"));
	assert_null(load_text("TrackInbound maybe\n", err, sizeof(err)));
	assert_non_null(strstr(err, "TrackInbound"));
}

static void
max_deferral_takes_postfix_times(void **state)
{
	static const struct { const char *v; long s; } ok[] = {
		{ "12h", 12 * 3600 }, { "90m", 5400 }, { "2w", 14 * 86400 },
		{ "7", 7 * 86400 }, { "366d", 366 * 86400 }, { "60s", 60 },
	};
	static const char *const bad[] = {
		"0d", "30x", "d", "-1d", "30dd", "59s", "367d", "99999999999",
	};
	char text[64], err[512];
	struct mt_config *c;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(text, sizeof(text), "MaxDeferral %s\n", ok[i].v);
		assert_non_null(c = load_text(text, err, sizeof(err)));
		assert_int_equal(c->max_deferral_s, ok[i].s);
		mt_config_unref(c);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "MaxDeferral %s\n", bad[i]);
		assert_null(load_text(text, err, sizeof(err)));
		assert_non_null(strstr(err, "MaxDeferral"));
	}
}

static void
keys_and_comments_are_read(void **state)
{
	char err[512];
	struct mt_config *c = load_text(
	    "# comment\n\n  socket   inet:8891@127.0.0.1  \n"
	    "RedisServer unix:/run/redis.sock\nRetentionDays 7\n"
	    "InternalHosts 10.0.0.0/8, 2001:db8::/32\nLogFormat json\n"
	    "UMask 002\nRedisPrefix x:\n", err, sizeof(err));

	assert_non_null(c);
	assert_string_equal(c->socket, "inet:8891@127.0.0.1");
	assert_string_equal(c->redis_server, "unix:/run/redis.sock");
	assert_int_equal(c->retention_days, 7);
	assert_int_equal(c->log_format, MT_LOG_JSON);
	assert_int_equal(c->umask, 002);
	assert_true(mt_cidr_list_match_text(&c->internal, "10.1.2.3"));
	assert_true(mt_cidr_list_match_text(&c->internal, "2001:db8::5"));
	assert_false(mt_cidr_list_match_text(&c->internal, "127.0.0.1"));
	mt_config_unref(c);
}

static void
expect_error(const char *text, const char *want)
{
	char err[512];
	struct mt_config *c = load_text(text, err, sizeof(err));

	assert_null(c);
	if (strstr(err, want) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", err, want);
}

static void
errors_name_file_and_line(void **state)
{
	char want[300];

	snprintf(want, sizeof(want), "%s:3: unknown key \"Bogus\"", confpath);
	expect_error("# c\nBogus 1\n", want);
	snprintf(want, sizeof(want), "%s:2: RetentionDays", confpath);
	expect_error("RetentionDays forever\n", want);
	expect_error("Socket tcp:1\n", "neither unix:/path nor inet:PORT@HOST");
	expect_error("RedisServer localhost\n", "neither HOST:PORT nor unix:/path");
	expect_error("InternalHosts 10.0.0.0/33\n", "\"10.0.0.0/33\" is not an address");
	expect_error("LogFormat xml\n", "neither kv nor json");
	expect_error("Socket inet:1@h\nSocket inet:2@h\n", "given twice");
	snprintf(want, sizeof(want), "%s:4: MapLand: given twice, first on "
	    "line 2; edit that line instead", confpath);
	expect_error("MapLand /a\n# x\nMapLand /b\n", want);
	expect_error("UserID no-such-user-here\n", "no such user");
	expect_error("Socket\n", "missing value");
	expect_error("PublicAddress 203.0.113.5:25\n",
	    "PublicAddress: \"203.0.113.5:25\" is not an IPv4 or IPv6");
	expect_error("PublicAddress [2001:db8::1]\n", "is not an IPv4 or IPv6");
}

static void
public_address_and_map_land(void **state)
{
	char err[512];
	struct mt_config *c = load_text("PublicAddress 2001:db8::25\n"
	    "MapLand /srv/land.json\n", err, sizeof(err));

	assert_non_null(c);
	assert_string_equal(c->public_address, "2001:db8::25");
	assert_string_equal(c->map_land, "/srv/land.json");
	mt_config_unref(c);
	assert_non_null(c = load_text("PublicAddress 203.0.113.5\n", err,
	    sizeof(err)));
	assert_string_equal(c->public_address, "203.0.113.5");
	assert_string_equal(c->map_land, "/var/lib/mailtrail/land-110m.json");
	mt_config_unref(c);
}

static void
readable_secret_key_is_refused(void **state)
{
	char err[512];

	chmod(keypath, 0640);
	assert_null(load_text("", err, sizeof(err)));
	assert_non_null(strstr(err, "accessible by group or others"));
	chmod(keypath, 0600);
}

static void
missing_secret_key_is_an_error_only_for_the_daemon(void **state)
{
	char err[512];
	FILE *fp = fopen(confpath, "w");
	struct mt_config *c;

	fputs("RedisPrefix y:\n", fp);
	fclose(fp);
	assert_null(mt_config_load(confpath, 1, err, sizeof(err)));
	assert_non_null(strstr(err, "SecretKeyFile is required"));
	c = mt_config_load(confpath, 0, err, sizeof(err));
	assert_non_null(c);
	mt_config_unref(c);
}

static void
unreadable_file_is_an_error(void **state)
{
	char err[512];

	assert_null(mt_config_load("/nonexistent/mt.conf", 1, err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/mt.conf: cannot open"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(defaults_follow_the_product_contract),
		cmocka_unit_test(keys_and_comments_are_read),
		cmocka_unit_test(redis_modes_and_track_inbound),
		cmocka_unit_test(max_deferral_takes_postfix_times),
		cmocka_unit_test(errors_name_file_and_line),
		cmocka_unit_test(public_address_and_map_land),
		cmocka_unit_test(readable_secret_key_is_refused),
		cmocka_unit_test(missing_secret_key_is_an_error_only_for_the_daemon),
		cmocka_unit_test(unreadable_file_is_an_error),
	};
	return cmocka_run_group_tests_name("config", tests, setup, teardown);
}
