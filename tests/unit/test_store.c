/*
 * The store against a real, private redis-server: every key and TTL of the
 * contract, idempotent writes, spooling while Redis is down, replay once it
 * is back, and corrupt spool files moved aside without stopping the rest.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "../../common/config.h"
#include "../../state/events.h"
#include "../../state/redis.h"
#include "../../state/store.h"

#define ID1 "0123456789abcdefghijklmnop.qrstuv0123456789"
#define ID2 "0123456789abcdefghijklmnoq.qrstuv0123456789"
#define ID3 "0123456789abcdefghijklmnor.qrstuv0123456789"

static char tmpdir[64], sock[128], spooldir[128], server[160];
static pid_t redis_pid = -1;
static struct mt_config cfg;

/* Every report, joined, so tests can look for a sentence. */
static pthread_mutex_t rep_mu = PTHREAD_MUTEX_INITIALIZER;
static char reports[16384];

static void
report(int prio, const char *msg)
{
	(void)prio;
	pthread_mutex_lock(&rep_mu);
	if (strlen(reports) + strlen(msg) + 2 < sizeof(reports)) {
		strcat(reports, msg);
		strcat(reports, "\n");
	}
	pthread_mutex_unlock(&rep_mu);
}

static int
reported(const char *needle)
{
	int found;

	pthread_mutex_lock(&rep_mu);
	found = strstr(reports, needle) != NULL;
	pthread_mutex_unlock(&rep_mu);
	return found;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static void
redis_start(const char *extra_arg, const char *extra_val)
{
	redisContext *c;
	int i;

	redis_pid = fork();
	assert_true(redis_pid >= 0);
	if (redis_pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		dup2(fd, 1);
		dup2(fd, 2);
		execlp("redis-server", "redis-server", "--port", "0",
		    "--unixsocket", sock, "--save", "", "--appendonly", "no",
		    extra_arg ? extra_arg : "--dir", extra_val ? extra_val : tmpdir,
		    (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 100; i++) {
		struct timeval tv = { 1, 0 };

		c = redisConnectUnixWithTimeout(sock, tv);
		if (c != NULL && c->err == 0) {
			redisFree(c);
			return;
		}
		redisFree(c);
		sleep_ms(50);
	}
	fail_msg("redis-server did not start");
}

static void
redis_stop(void)
{
	if (redis_pid > 0) {
		kill(redis_pid, SIGTERM);
		waitpid(redis_pid, NULL, 0);
		redis_pid = -1;
	}
	unlink(sock);
}

static redisContext *
inspect(void)
{
	struct timeval tv = { 2, 0 };
	redisContext *c = redisConnectUnixWithTimeout(sock, tv);

	assert_non_null(c);
	assert_int_equal(c->err, 0);
	return c;
}

static long long
int_cmd(redisContext *c, const char *fmt, const char *arg)
{
	redisReply *rep = redisCommand(c, fmt, arg);
	long long v;

	assert_non_null(rep);
	assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
	v = rep->integer;
	freeReplyObject(rep);
	return v;
}

/* Bulk reply as a malloc'd string, NULL for nil. */
static char *
str_cmd(redisContext *c, const char *fmt, const char *a1, const char *a2)
{
	redisReply *rep = redisCommand(c, fmt, a1, a2);
	char *s = NULL;

	assert_non_null(rep);
	if (rep->type == REDIS_REPLY_STRING)
		s = strdup(rep->str);
	else
		assert_int_equal(rep->type, REDIS_REPLY_NIL);
	freeReplyObject(rep);
	return s;
}

static void
assert_field(redisContext *c, const char *key, const char *field,
    const char *want)
{
	char *got = str_cmd(c, "HGET %s %s", key, field);

	if (want == NULL)
		assert_null(got);
	else {
		assert_non_null(got);
		assert_string_equal(got, want);
	}
	free(got);
}


static void
fill(struct mt_record *r, const char *id, const char *qid)
{
	memset(r, 0, sizeof(*r));
	strcpy(r->id, id);
	r->qid = strdup(qid);
	r->msgid = strdup("m1@example.org");
	r->sender = strdup("alice@example.org");
	r->nrcpt = 3;
	r->rcpt = calloc(3, sizeof(char *));
	r->rcpt[0] = strdup("bob@example.net");
	r->rcpt[1] = strdup("carol@example.net");
	r->rcpt[2] = strdup("bob@example.net");	/* duplicate on purpose */
	r->client_ip = strdup("192.0.2.7");
	r->client_name = strdup("mx.example.org");
	r->helo = strdup("mx.example.org");
	r->have_geo = 1;
	r->lat = 48.8566;
	r->lon = 2.3522;
	r->cc = strdup("FR");
	r->city = strdup("Paris");
	r->hops = 2;
	r->hop_path = strdup("[{\"n\":1}]");
	r->size = 4242;
	r->received_ms = (int64_t)time(NULL) * 1000;
	r->by = strdup("mta1.example.org");
}

/* The r:ADDRESS fields of a record. */
static long long
rcpt_fields(redisContext *c, const char *key)
{
	redisReply *r = redisCommand(c, "HKEYS %s", key);
	long long n = 0;

	assert_non_null(r);
	for (size_t i = 0; i < r->elements; i++)
		n += strncmp(r->element[i]->str, "r:", 2) == 0;
	freeReplyObject(r);
	return n;
}

static size_t
count_files(const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0, l;

	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		l = strlen(e->d_name);
		if (e->d_name[0] != '.' && l > strlen(suffix) &&
		    strcmp(e->d_name + l - strlen(suffix), suffix) == 0)
			n++;
	}
	closedir(d);
	return n;
}

static int
wait_spool_empty(int ms)
{
	for (; ms > 0; ms -= 50) {
		if (count_files(spooldir, ".rec") == 0)
			return 1;
		sleep_ms(50);
	}
	return 0;
}

static int
setup(void **state)
{
	strcpy(tmpdir, "/tmp/mt-store-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	snprintf(sock, sizeof(sock), "%s/redis.sock", tmpdir);
	snprintf(spooldir, sizeof(spooldir), "%s/spool", tmpdir);
	snprintf(server, sizeof(server), "unix:%s", sock);
	memset(&cfg, 0, sizeof(cfg));
	cfg.redis_server = server;
	cfg.redis_timeout_ms = 500;
	cfg.redis_prefix = (char *)"mt:";
	cfg.retention_days = 30;
	cfg.events_maxlen = 1000;
	cfg.spool_dir = spooldir;
	reports[0] = '\0';
	redis_start(NULL, NULL);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	redis_stop();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
record_lands_in_every_key_with_ttl(void **state)
{
	static const char *keys[] = { "mt:{" ID1 "}", "mt:{" ID1 "}:ev", "mt:qid:AAA111", "mt:msgid:m1@example.org",
	    "mt:from:alice@example.org", "mt:to:bob@example.net",
	    "mt:to:carol@example.net", "mt:events" };
	struct mt_store *st;
	struct mt_record r;
	redisContext *c;
	char err[256], *s, score[32];
	size_t i;
	long long ttl;

	st = mt_store_new(&cfg, report, err, sizeof(err));
	assert_non_null(st);
	fill(&r, ID1, "AAA111");
	assert_int_equal(mt_store_put(st, &r, err, sizeof(err)), MT_STORE_REDIS);
	c = inspect();
	assert_field(c, "mt:{" ID1 "}", "id", NULL);	/* the key says it */
	assert_field(c, "mt:{" ID1 "}", "qid", "AAA111");
	assert_field(c, "mt:{" ID1 "}", "sender", "alice@example.org");
	assert_field(c, "mt:{" ID1 "}", "nrcpt", "3");
	assert_field(c, "mt:{" ID1 "}", "client_name", "mx.example.org");
	assert_field(c, "mt:{" ID1 "}", "lat", "48.856600");
	assert_field(c, "mt:{" ID1 "}", "cc", "FR");
	assert_field(c, "mt:{" ID1 "}", "size", "4242");
	assert_field(c, "mt:{" ID1 "}", "by", "mta1.example.org");
	assert_field(c, "mt:{" ID1 "}", "auth", NULL);	/* absent stays absent */
	assert_field(c, "mt:{" ID1 "}", "r:carol@example.net", "queued");
	assert_field(c, "mt:{" ID1 "}", "r:bob@example.net", "queued");
	assert_int_equal(rcpt_fields(c, "mt:{" ID1 "}"), 2);
	/* Layout 2: no key per message beyond the record and its events. */
	assert_int_equal(int_cmd(c, "EXISTS %s", "mt:{" ID1 "}:rcpt"), 0);
	assert_int_equal(int_cmd(c, "EXISTS %s", "mt:{" ID1 "}:path"), 0);
	s = str_cmd(c, "GET %s", "mt:qid:AAA111", NULL);
	assert_string_equal(s, ID1);
	free(s);
	snprintf(score, sizeof(score), "%lld", (long long)r.received_ms);
	/* msgid: a sorted set of the messages that carried it */
	s = str_cmd(c, "ZSCORE %s %s", "mt:msgid:m1@example.org", ID1);
	assert_string_equal(s, score);
	free(s);
	s = str_cmd(c, "ZSCORE %s %s", "mt:to:bob@example.net", ID1);
	assert_string_equal(s, score);
	free(s);
	s = str_cmd(c, "LINDEX %s %s", "mt:{" ID1 "}:ev", "0");
	assert_non_null(strstr(s, "\"ev\":\"RECEIVE\""));
	assert_non_null(strstr(s, "\"path\":[{\"n\":1}]"));
	assert_null(strstr(s, "\"client\""));	/* the record holds it */
	free(s);
	assert_int_equal(int_cmd(c, "XLEN %s", "mt:events"), 1);
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		ttl = int_cmd(c, "TTL %s", keys[i]);
		if (ttl < 30 * 86400 - 60 || ttl > 30 * 86400)
			fail_msg("%s: TTL %lld", keys[i], ttl);
	}
	redisFree(c);
	mt_record_free(&r);
	mt_store_free(st);
}

static void
same_record_twice_is_written_once(void **state)
{
	struct mt_store *st;
	struct mt_record r;
	redisContext *c;
	char err[256];

	st = mt_store_new(&cfg, report, err, sizeof(err));
	fill(&r, ID1, "AAA111");
	assert_int_equal(mt_store_put(st, &r, err, sizeof(err)), MT_STORE_REDIS);
	assert_int_equal(mt_store_put(st, &r, err, sizeof(err)), MT_STORE_REDIS);
	c = inspect();
	assert_int_equal(int_cmd(c, "LLEN %s", "mt:{" ID1 "}:ev"), 1);
	assert_int_equal(int_cmd(c, "XLEN %s", "mt:events"), 1);
	redisFree(c);
	mt_record_free(&r);
	mt_store_free(st);
}

/* A restarted or flushed server forgets every script: each caller loads it. */
static void
scripts_are_loaded_again_after_script_flush(void **state)
{
	struct mt_store *st;
	struct mt_events *ev;
	struct mt_record r;
	struct mt_event e[2];
	enum mt_event_result res[2];
	redisContext *c;
	char err[256];

	st = mt_store_new(&cfg, report, err, sizeof(err));
	assert_non_null(st);
	fill(&r, ID1, "AAA111");
	c = inspect();
	freeReplyObject(redisCommand(c, "SCRIPT FLUSH"));
	assert_int_equal(mt_store_put(st, &r, err, sizeof(err)), MT_STORE_REDIS);
	ev = mt_events_new(&cfg, err, sizeof(err));
	assert_non_null(ev);
	e[0] = (struct mt_event){ .find = MT_FIND_ID, .key = ID1, .ev = "SEND",
	    .rcpt = "bob@example.net", .status = "sent", .fingerprint = "f1",
	    .json = "{\"ev\":\"SEND\"}" };
	e[1] = e[0];
	e[1].rcpt = "carol@example.net";
	e[1].fingerprint = "f2";
	freeReplyObject(redisCommand(c, "SCRIPT FLUSH"));
	assert_int_equal(mt_events_record(ev, e, 2, res, NULL, err,
	    sizeof(err)), 0);
	assert_int_equal(res[0], MT_EV_CHANGED);
	assert_int_equal(res[1], MT_EV_CHANGED);
	assert_field(c, "mt:{" ID1 "}", "r:bob@example.net", "sent");
	assert_field(c, "mt:{" ID1 "}", "r:carol@example.net", "sent");
	assert_int_equal(int_cmd(c, "LLEN %s", "mt:{" ID1 "}:ev"), 3);
	redisFree(c);
	mt_events_free(ev);
	mt_record_free(&r);
	mt_store_free(st);
}

/* One event through the one call; its result. */
static enum mt_event_result
one_event(struct mt_events *ev, enum mt_event_find find, const char *key,
    const char *name, const char *rcpt, const char *status, int only_known,
    const char *fp, char id[MT_EVENTS_ID_MAX + 1])
{
	char ids[1][MT_EVENTS_ID_MAX + 1], err[256], json[128];
	struct mt_event e = { .find = find, .key = key, .ev = name,
	    .rcpt = rcpt, .status = status, .only_known = only_known,
	    .fingerprint = fp, .json = json };
	enum mt_event_result res;

	snprintf(json, sizeof(json), "{\"t\":1,\"ev\":\"%s\"}", name);
	assert_int_equal(mt_events_record(ev, &e, 1, &res, ids, err,
	    sizeof(err)), 0);
	if (id != NULL)
		snprintf(id, MT_EVENTS_ID_MAX + 1, "%s", ids[0]);
	return res;
}

static void
statuses_only_move_forward_and_events_dedupe(void **state)
{
	struct mt_store *st;
	struct mt_events *ev;
	struct mt_record r;
	redisContext *c;
	char err[256], id[MT_EVENTS_ID_MAX + 1], *s;
	const char *B = "bob@example.net", *C = "carol@example.net";

	st = mt_store_new(&cfg, report, err, sizeof(err));
	fill(&r, ID1, "AAA111");
	assert_int_equal(mt_store_put(st, &r, err, sizeof(err)), MT_STORE_REDIS);
	ev = mt_events_new(&cfg, err, sizeof(err));
	assert_non_null(ev);
	c = inspect();
	/* Found by queue ID; deferred may repeat; sent beats deferred. */
	assert_int_equal(one_event(ev, MT_FIND_QID, "AAA111", "DEFER", B,
	    "deferred", 0, "fp1", id), MT_EV_CHANGED);
	assert_string_equal(id, ID1);
	assert_int_equal(one_event(ev, MT_FIND_ID, ID1, "DEFER", B, "deferred",
	    0, "fp2", NULL), MT_EV_CHANGED);
	assert_int_equal(one_event(ev, MT_FIND_ID, ID1, "SEND", B, "sent", 0,
	    "fp3", NULL), MT_EV_CHANGED);
	/* A late DEFER is kept in the timeline; the status stays. */
	assert_int_equal(one_event(ev, MT_FIND_ID, ID1, "DEFER", B, "deferred",
	    0, "fp4", NULL), MT_EV_RECORDED);
	assert_field(c, "mt:{" ID1 "}", "r:bob@example.net", "sent");
	assert_int_equal(one_event(ev, MT_FIND_ID, ID1, "DELIVER", B,
	    "delivered", 0, "fp5", NULL), MT_EV_CHANGED);
	assert_int_equal(one_event(ev, MT_FIND_ID, ID1, "READ", B, "read", 1,
	    "fp6", NULL), MT_EV_CHANGED);
	assert_int_equal(one_event(ev, MT_FIND_ID, ID1, "BOUNCE", B, "bounced",
	    0, "fp7", NULL), MT_EV_RECORDED);
	assert_field(c, "mt:{" ID1 "}", "r:bob@example.net", "read");
	/* The same fingerprint twice: written once. */
	assert_int_equal(one_event(ev, MT_FIND_ID, ID1, "SEND", C, "sent", 0,
	    "fp3", NULL), MT_EV_DUPLICATE);
	assert_field(c, "mt:{" ID1 "}", "r:carol@example.net", "queued");
	/* Only a recipient may be read; expiry moves every pending one. */
	assert_int_equal(one_event(ev, MT_FIND_ID, ID1, "READ",
	    "mallory@example.org", "read", 1, "fp8", NULL), MT_EV_NOT_RECIPIENT);
	assert_int_equal(one_event(ev, MT_FIND_ID, ID1, "BOUNCE", "", "bounced",
	    0, "fp9", NULL), MT_EV_CHANGED);
	assert_field(c, "mt:{" ID1 "}", "r:carol@example.net", "bounced");
	assert_field(c, "mt:{" ID1 "}", "r:bob@example.net", "read");
	/* Unknown messages: nothing written, no ID. */
	assert_int_equal(one_event(ev, MT_FIND_QID, "NOSUCHQ", "SEND", B,
	    "sent", 0, "fpa", id), MT_EV_NO_RECORD);
	assert_string_equal(id, "");
	assert_int_equal(one_event(ev, MT_FIND_MSGID, "m1@example.org", "MDN",
	    B, NULL, 0, NULL, id), MT_EV_RECORDED);
	assert_string_equal(id, ID1);
	/* Each recorded event carries its fingerprint; the stream has them. */
	s = str_cmd(c, "LINDEX %s %s", "mt:{" ID1 "}:ev", "1");
	assert_string_equal(s, "{\"t\":1,\"ev\":\"DEFER\",\"fp\":\"fp1\"}");
	free(s);
	assert_int_equal(int_cmd(c, "LLEN %s", "mt:{" ID1 "}:ev"), 10);
	assert_int_equal(int_cmd(c, "XLEN %s", "mt:events"), 10);
	redisFree(c);
	mt_events_free(ev);
	mt_record_free(&r);
	mt_store_free(st);
}

static void
kept_id_does_not_overwrite_the_origin(void **state)
{
	struct mt_store *st;
	struct mt_record r;
	redisContext *c;
	redisReply *rep;
	char err[256];

	c = inspect();
	rep = redisCommand(c, "HSET mt:{" ID1 "} by origin.example.org qid ORIG1");
	freeReplyObject(rep);
	rep = redisCommand(c, "HSET mt:{" ID1 "} r:bob@example.net sent");
	freeReplyObject(rep);
	st = mt_store_new(&cfg, report, err, sizeof(err));
	fill(&r, ID1, "BBB222");
	r.id_kept = 1;
	assert_int_equal(mt_store_put(st, &r, err, sizeof(err)), MT_STORE_REDIS);
	assert_field(c, "mt:{" ID1 "}", "by", "origin.example.org");
	assert_field(c, "mt:{" ID1 "}", "qid", "ORIG1");
	assert_field(c, "mt:{" ID1 "}", "helo", "mx.example.org");
	assert_field(c, "mt:{" ID1 "}", "r:bob@example.net", "sent");
	assert_field(c, "mt:{" ID1 "}", "r:carol@example.net", "queued");
	redisFree(c);
	mt_record_free(&r);
	mt_store_free(st);
}

static void
redis_down_spools_and_replay_drains_once_back(void **state)
{
	struct mt_store *st;
	struct mt_record r1, r2;
	redisContext *c;
	char err[256], *s;
	struct timespec t0, t1;

	st = mt_store_new(&cfg, report, err, sizeof(err));
	assert_int_equal(mt_store_start_replayer(st), 0);
	redis_stop();
	fill(&r1, ID1, "AAA111");
	fill(&r2, ID2, "BBB222");
	assert_int_equal(mt_store_put(st, &r1, err, sizeof(err)), MT_STORE_SPOOL);
	assert_int_equal(count_files(spooldir, ".rec"), 1);
	assert_true(reported("unreachable"));
	assert_true(reported("): spooling"));
	/* The breaker (or the non-empty spool) skips Redis: no timeout paid. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(mt_store_put(st, &r2, err, sizeof(err)), MT_STORE_SPOOL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true(t1.tv_sec - t0.tv_sec < 1);
	assert_int_equal(count_files(spooldir, ".rec"), 2);
	sleep_ms(1200);		/* the replayer fails at least once more */
	redis_start(NULL, NULL);
	assert_true(wait_spool_empty(10000));
	c = inspect();
	assert_int_equal(int_cmd(c, "LLEN %s", "mt:{" ID1 "}:ev"), 2);
	s = str_cmd(c, "LINDEX %s %s", "mt:{" ID1 "}:ev", "1");
	assert_non_null(strstr(s, "\"ev\":\"SPOOL\""));
	free(s);
	assert_int_equal(int_cmd(c, "XLEN %s", "mt:events"), 4);
	assert_field(c, "mt:{" ID2 "}", "qid", "BBB222");
	redisFree(c);
	sleep_ms(100);
	assert_true(reported("replayed"));
	/* Spool drained: new records go straight to Redis again. */
	mt_record_free(&r1);
	fill(&r1, ID3, "CCC333");
	assert_int_equal(mt_store_put(st, &r1, err, sizeof(err)), MT_STORE_REDIS);
	mt_record_free(&r1);
	mt_record_free(&r2);
	mt_store_free(st);
}

static void
write_file(const char *name, const char *text, size_t len)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", spooldir, name);
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(fwrite(text, 1, len, f), len);
	fclose(f);
}

static void
corrupt_files_move_aside_and_the_rest_replays(void **state)
{
	struct mt_store *st;
	struct mt_record r;
	redisContext *c;
	char err[256], path[256], *good;

	st = mt_store_new(&cfg, report, err, sizeof(err));
	assert_non_null(st);
	fill(&r, ID1, "AAA111");
	good = mt_record_serialize(&r);
	/* Oldest first: the damaged ones sort before the good one. */
	write_file("0000000000000001-00000000-x-Q1.rec", "{\"v\":1,garbage", 14);
	write_file("0000000000000002-00000000-x-Q2.rec", good, strlen(good) / 2);
	write_file("0000000000000003-00000000-x-Q3.rec", good, strlen(good));
	write_file(".tmp-1-00000001", good, 10);	/* a live writer's */
	assert_int_equal(mt_store_start_replayer(st), 0);
	assert_true(wait_spool_empty(10000));
	snprintf(path, sizeof(path), "%s/corrupt", spooldir);
	assert_int_equal(count_files(path, ".rec"), 2);
	sleep_ms(100);
	assert_true(reported("0000000000000001-00000000-x-Q1.rec"));
	assert_true(reported("0000000000000002-00000000-x-Q2.rec"));
	assert_true(reported("moved to"));
	c = inspect();
	assert_field(c, "mt:{" ID1 "}", "qid", "AAA111");
	assert_int_equal(int_cmd(c, "LLEN %s", "mt:{" ID1 "}:ev"), 2);
	redisFree(c);
	snprintf(path, sizeof(path), "%s/.tmp-1-00000001", spooldir);
	assert_int_equal(access(path, F_OK), 0);	/* young: left alone */
	free(good);
	mt_record_free(&r);
	mt_store_free(st);
}

static void
replay_of_a_record_already_stored_changes_nothing(void **state)
{
	struct mt_store *st;
	struct mt_record r;
	redisContext *c;
	char err[256], *text;

	st = mt_store_new(&cfg, report, err, sizeof(err));
	fill(&r, ID1, "AAA111");
	assert_int_equal(mt_store_put(st, &r, err, sizeof(err)), MT_STORE_REDIS);
	/* As if the daemon crashed between Redis's OK and the unlink. */
	text = mt_record_serialize(&r);
	write_file("0000000000000001-00000000-" ID1 "-AAA111.rec", text,
	    strlen(text));
	assert_int_equal(mt_store_start_replayer(st), 0);
	assert_true(wait_spool_empty(10000));
	c = inspect();
	assert_int_equal(int_cmd(c, "LLEN %s", "mt:{" ID1 "}:ev"), 1);
	assert_int_equal(int_cmd(c, "XLEN %s", "mt:events"), 1);
	redisFree(c);
	free(text);
	mt_record_free(&r);
	mt_store_free(st);
}

static void
no_redis_and_no_spool_fails_with_reason(void **state)
{
	struct mt_store *st;
	struct mt_record r;
	char err[512], cmd[256];

	st = mt_store_new(&cfg, report, err, sizeof(err));
	redis_stop();
	/* Root ignores modes, so take the directory away instead. */
	snprintf(cmd, sizeof(cmd), "rm -rf %s", spooldir);
	assert_int_equal(system(cmd), 0);
	fill(&r, ID1, "AAA111");
	assert_int_equal(mt_store_put(st, &r, err, sizeof(err)), MT_STORE_FAILED);
	assert_non_null(strstr(err, "cannot spool"));
	mt_record_free(&r);
	mt_store_free(st);
}

static void
bad_settings_are_refused_up_front(void **state)
{
	struct mt_config bad = cfg;
	char err[256], host[64];
	int port;

	bad.redis_server = (char *)"localhost";
	assert_null(mt_store_new(&bad, report, err, sizeof(err)));
	assert_non_null(strstr(err, "RedisServer"));
	bad = cfg;
	bad.spool_dir = (char *)"/proc/no/such/dir";
	assert_null(mt_store_new(&bad, report, err, sizeof(err)));
	assert_non_null(strstr(err, "SpoolDir"));
	assert_int_equal(mt_redis_parse_server("[::1]:6380", host,
	    sizeof(host), &port), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 6380);
	assert_int_equal(mt_redis_parse_server("unix:/run/r.sock", host,
	    sizeof(host), &port), 0);
	assert_int_equal(port, 0);
	assert_int_equal(mt_redis_parse_server("::1:6379", host, sizeof(host),
	    &port), -1);
	assert_int_equal(mt_redis_parse_server("h:70000", host, sizeof(host),
	    &port), -1);
	assert_int_equal(mt_redis_parse_server("h:", host, sizeof(host),
	    &port), -1);
}

static void
connect_authenticates_with_the_password(void **state)
{
	struct mt_config c2 = cfg;
	redisContext *c;
	char err[256];

	redis_stop();
	redis_start("--requirepass", "s3cret");
	c2.redis_password = (char *)"wrong";
	assert_null(mt_redis_connect(&c2, err, sizeof(err)));
	assert_non_null(strstr(err, "AUTH"));
	c2.redis_password = (char *)"s3cret";
	c = mt_redis_connect(&c2, err, sizeof(err));
	assert_non_null(c);
	redisFree(c);
	c2.redis_user = (char *)"default";
	c = mt_redis_connect(&c2, err, sizeof(err));
	assert_non_null(c);
	redisFree(c);
	c2.redis_server = (char *)"127.0.0.1:1";
	assert_null(mt_redis_connect(&c2, err, sizeof(err)));
}

static void *
block_redis(void *arg)
{
	struct timeval tv = { 5, 0 };
	redisContext *c = redisConnectUnixWithTimeout(sock, tv);
	redisReply *rep;

	(void)arg;
	if (c != NULL && c->err == 0 &&
	    (rep = redisCommand(c, "DEBUG SLEEP 1.5")) != NULL)
		freeReplyObject(rep);
	redisFree(c);
	return NULL;
}

static void
slow_redis_times_out_and_the_late_write_counts_once(void **state)
{
	struct mt_store *st;
	struct mt_record r;
	redisContext *c;
	redisReply *rep;
	pthread_t t;
	char err[256];
	struct timespec t0, t1;
	size_t i, receives = 0;

	redis_stop();
	redis_start("--enable-debug-command", "yes");
	st = mt_store_new(&cfg, report, err, sizeof(err));
	fill(&r, ID1, "AAA111");
	assert_int_equal(pthread_create(&t, NULL, block_redis, NULL), 0);
	sleep_ms(200);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(mt_store_put(st, &r, err, sizeof(err)), MT_STORE_SPOOL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_non_null(strstr(err, "timed out"));
	assert_true((t1.tv_sec - t0.tv_sec) * 1000 +
	    (t1.tv_nsec - t0.tv_nsec) / 1000000 < 1000);
	pthread_join(t, NULL);
	assert_int_equal(mt_store_start_replayer(st), 0);
	assert_true(wait_spool_empty(10000));
	c = inspect();
	rep = redisCommand(c, "LRANGE mt:{" ID1 "}:ev 0 -1");
	for (i = 0; i < rep->elements; i++)
		receives += strstr(rep->element[i]->str, "RECEIVE") != NULL;
	assert_int_equal(receives, 1);
	freeReplyObject(rep);
	redisFree(c);
	mt_record_free(&r);
	mt_store_free(st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(record_lands_in_every_key_with_ttl, setup, teardown),
		cmocka_unit_test_setup_teardown(same_record_twice_is_written_once, setup, teardown),
		cmocka_unit_test_setup_teardown(scripts_are_loaded_again_after_script_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(kept_id_does_not_overwrite_the_origin, setup, teardown),
		cmocka_unit_test_setup_teardown(statuses_only_move_forward_and_events_dedupe, setup, teardown),
		cmocka_unit_test_setup_teardown(redis_down_spools_and_replay_drains_once_back, setup, teardown),
		cmocka_unit_test_setup_teardown(corrupt_files_move_aside_and_the_rest_replays, setup, teardown),
		cmocka_unit_test_setup_teardown(replay_of_a_record_already_stored_changes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(no_redis_and_no_spool_fails_with_reason, setup, teardown),
		cmocka_unit_test_setup_teardown(bad_settings_are_refused_up_front, setup, teardown),
		cmocka_unit_test_setup_teardown(slow_redis_times_out_and_the_late_write_counts_once, setup, teardown),
		cmocka_unit_test_setup_teardown(connect_authenticates_with_the_password, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
