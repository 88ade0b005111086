/*
 * The Cluster routing layer: key slots and redirect parsing on their own,
 * then batches against a real three-master Redis Cluster on loopback,
 * including a slot moved behind the client's back (MOVED), a slot in
 * migration (ASK), a script the node has not seen (NOSCRIPT) and a node
 * that is gone.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../state/cluster.h"

#define NODES 3

static pid_t pids[NODES];
static int ports[NODES];
static char dirs[NODES][64];

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* ---- pure parts --------------------------------------------------------- */

static void
slot_follows_the_specification_and_hash_tags(void **state)
{
	/* Values from CLUSTER KEYSLOT on redis-server 7. */
	assert_int_equal(mt_cluster_slot("foo", 3), 12182);
	assert_int_equal(mt_cluster_slot("123456789", 9), 0x31c3 & 16383);
	assert_int_equal(mt_cluster_slot("{user1000}.following", 20),
	    mt_cluster_slot("user1000", 8));
	assert_int_equal(mt_cluster_slot("mt:{abc}:ev", 11),
	    mt_cluster_slot("mt:{abc}", 8));
	/* An empty tag does not count; the first '{' and next '}' do. */
	assert_int_equal(mt_cluster_slot("foo{}{bar}", 10),
	    mt_cluster_slot("foo{}{bar}", 10));
	assert_int_not_equal(mt_cluster_slot("foo{}{bar}", 10),
	    mt_cluster_slot("bar", 3));
	assert_int_equal(mt_cluster_slot("foo{{bar}}zap", 13),
	    mt_cluster_slot("{bar", 4));
	assert_int_equal(mt_cluster_slot("foo{bar}{zap}", 13),
	    mt_cluster_slot("bar", 3));
	assert_int_equal(mt_cluster_slot("{", 1), mt_cluster_slot("{", 1));
}

static void
redirects_are_parsed_and_garbage_refused(void **state)
{
	struct mt_cluster_redirect rd;

	assert_int_equal(mt_cluster_parse_redirect("MOVED 3999 127.0.0.1:6381",
	    25, &rd), 0);
	assert_int_equal(rd.ask, 0);
	assert_int_equal(rd.slot, 3999);
	assert_string_equal(rd.host, "127.0.0.1");
	assert_int_equal(rd.port, 6381);
	assert_int_equal(mt_cluster_parse_redirect("ASK 16383 ::1:7000", 18,
	    &rd), 0);
	assert_int_equal(rd.ask, 1);
	assert_string_equal(rd.host, "::1");
	assert_int_equal(rd.port, 7000);
	assert_int_equal(mt_cluster_parse_redirect("MOVED 1 :6380", 13, &rd), 0);
	assert_string_equal(rd.host, "");
	assert_int_equal(mt_cluster_parse_redirect("MOVED 16384 a:1", 15, &rd),
	    -1);
	assert_int_equal(mt_cluster_parse_redirect("MOVED 1 a:0", 11, &rd), -1);
	assert_int_equal(mt_cluster_parse_redirect("MOVED 1 a:99999", 15, &rd),
	    -1);
	assert_int_equal(mt_cluster_parse_redirect("MOVED 1 a b:1", 13, &rd),
	    -1);
	assert_int_equal(mt_cluster_parse_redirect("MOVED x a:1", 11, &rd), -1);
	assert_int_equal(mt_cluster_parse_redirect("ERR wrong", 9, &rd), -1);
	assert_int_equal(mt_cluster_parse_redirect("MOVED 1 a:", 10, &rd), -1);
}

static void
seeds_must_be_host_and_port(void **state)
{
	struct mt_cluster_opts o = { 500, NULL, NULL };
	char err[256];
	struct mt_cluster *cl;

	assert_null(mt_cluster_new("", &o, err, sizeof(err)));
	assert_null(mt_cluster_new("localhost", &o, err, sizeof(err)));
	assert_null(mt_cluster_new("a:1, :2", &o, err, sizeof(err)));
	assert_null(mt_cluster_new("unix:/run/redis.sock", &o, err, sizeof(err)));
	cl = mt_cluster_new("127.0.0.1:7000, [::1]:7001 host-x:7002", &o, err,
	    sizeof(err));
	assert_non_null(cl);
	mt_cluster_free(cl);
}

/* ---- a real cluster ------------------------------------------------------ */

/* A port p with p and p + 10000 (the cluster bus) both free. */
static int
free_port_pair(void)
{
	for (int tries = 0; tries < 200; tries++) {
		int p = 20000 + (int)((unsigned)rand() % 20000), ok = 1;

		for (int k = 0; k < 2 && ok; k++) {
			struct sockaddr_in a = { .sin_family = AF_INET,
			    .sin_port = htons((uint16_t)(p + k * 10000)),
			    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
			int s = socket(AF_INET, SOCK_STREAM, 0);

			ok = bind(s, (struct sockaddr *)&a, sizeof(a)) == 0;
			close(s);
		}
		for (int i = 0; i < NODES && ok; i++)
			ok = ports[i] != p;
		if (ok)
			return p;
	}
	fail_msg("no free port pair");
	return -1;
}

static redisContext *
node(int i)
{
	struct timeval tv = { 2, 0 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", ports[i], tv);

	assert_non_null(c);
	assert_int_equal(c->err, 0);
	return c;
}

static void
node_cmd(int i, const char *fmt, ...)
{
	redisContext *c = node(i);
	redisReply *r;
	va_list ap;

	va_start(ap, fmt);
	r = redisvCommand(c, fmt, ap);
	va_end(ap);
	assert_non_null(r);
	if (r->type == REDIS_REPLY_ERROR)
		fail_msg("node %d: %s", i, r->str);
	freeReplyObject(r);
	redisFree(c);
}

static char *
node_str(int i, const char *fmt, const char *arg)
{
	redisContext *c = node(i);
	redisReply *r = redisCommand(c, fmt, arg);
	char *s;

	assert_non_null(r);
	s = r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
	    r->type == REDIS_REPLY_ERROR ? strndup(r->str, r->len) : NULL;
	freeReplyObject(r);
	redisFree(c);
	return s;
}

static void
start_node(int i)
{
	char port[16];

	snprintf(port, sizeof(port), "%d", ports[i]);
	pids[i] = fork();
	assert_true(pids[i] >= 0);
	if (pids[i] == 0) {
		int fd = open("/dev/null", O_WRONLY);

		dup2(fd, 1);
		dup2(fd, 2);
		execlp("redis-server", "redis-server", "--port", port,
		    "--bind", "127.0.0.1", "--cluster-enabled", "yes",
		    "--cluster-node-timeout", "2000", "--save", "",
		    "--appendonly", "no", "--dir", dirs[i], (char *)NULL);
		_exit(127);
	}
	for (int t = 0; t < 100; t++) {
		struct timeval tv = { 1, 0 };
		redisContext *c = redisConnectWithTimeout("127.0.0.1",
		    ports[i], tv);
		int up = c != NULL && c->err == 0;

		redisFree(c);
		if (up)
			return;
		sleep_ms(50);
	}
	fail_msg("redis-server %d did not start", i);
}

static int
cluster_ok(void)
{
	for (int i = 0; i < NODES; i++) {
		char *info = node_str(i, "CLUSTER INFO", NULL);
		int ok = info && strstr(info, "cluster_state:ok") != NULL;

		free(info);
		if (!ok)
			return 0;
	}
	return 1;
}

static char *
node_id(int i)
{
	return node_str(i, "CLUSTER MYID", NULL);
}

/* Three masters, slots split in three, met and agreed. */
static int
cluster_up(void **state)
{
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	for (int i = 0; i < NODES; i++) {
		snprintf(dirs[i], sizeof(dirs[i]), "/tmp/mt-cluster-XXXXXX");
		assert_non_null(mkdtemp(dirs[i]));
		ports[i] = free_port_pair();
		start_node(i);
	}
	for (int i = 0; i < NODES; i++)
		node_cmd(i, "CLUSTER ADDSLOTSRANGE %d %d", i * 5462,
		    i == NODES - 1 ? 16383 : i * 5462 + 5461);
	for (int i = 1; i < NODES; i++)
		node_cmd(0, "CLUSTER MEET 127.0.0.1 %d", ports[i]);
	for (int t = 0; t < 200 && !cluster_ok(); t++)
		sleep_ms(50);
	assert_true(cluster_ok());
	return 0;
}

static int
cluster_down(void **state)
{
	char cmd[128];

	for (int i = 0; i < NODES; i++) {
		if (pids[i] > 0) {
			kill(pids[i], SIGTERM);
			waitpid(pids[i], NULL, 0);
		}
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dirs[i]);
		if (system(cmd) != 0)
			return -1;
	}
	return 0;
}

static int
owner_of(unsigned slot)
{
	return slot <= 5461 ? 0 : slot <= 10923 ? 1 : 2;
}

static struct mt_cluster *
client(void)
{
	struct mt_cluster_opts o = { 1000, NULL, NULL };
	char seeds[64], err[256];
	struct mt_cluster *cl;

	snprintf(seeds, sizeof(seeds), "127.0.0.1:%d", ports[1]);
	cl = mt_cluster_new(seeds, &o, err, sizeof(err));
	assert_non_null(cl);
	return cl;
}

struct argv3 {
	const char *v[4];
	size_t len[4];
	char key[64], val[64];
};

static void
set_cmd(struct mt_cluster_cmd *c, struct argv3 *a, const char *verb,
    const char *key, const char *val)
{
	snprintf(a->key, sizeof(a->key), "%s", key);
	snprintf(a->val, sizeof(a->val), "%s", val ? val : "");
	a->v[0] = verb;
	a->v[1] = a->key;
	a->v[2] = a->val;
	for (int i = 0; i < 3; i++)
		a->len[i] = strlen(a->v[i]);
	memset(c, 0, sizeof(*c));
	c->argc = val ? 3 : 2;
	c->argv = a->v;
	c->argvlen = a->len;
	c->key = a->key;
	c->keylen = strlen(a->key);
}

static void
a_batch_reaches_every_master_in_one_call(void **state)
{
	struct mt_cluster *cl = client();
	struct mt_cluster_cmd cmds[300];
	struct argv3 args[300];
	char key[32], val[32], err[256];
	int seen[NODES] = { 0 };

	for (int i = 0; i < 300; i++) {
		snprintf(key, sizeof(key), "k:%d", i);
		snprintf(val, sizeof(val), "v%d", i);
		set_cmd(&cmds[i], &args[i], "SET", key, val);
		seen[owner_of(mt_cluster_slot(key, strlen(key)))]++;
	}
	assert_int_equal(mt_cluster_run(cl, cmds, 300, err, sizeof(err)), 0);
	for (int i = 0; i < 300; i++) {
		char *got;

		assert_non_null(cmds[i].reply);
		assert_int_equal(cmds[i].reply->type, REDIS_REPLY_STATUS);
		freeReplyObject(cmds[i].reply);
		snprintf(key, sizeof(key), "k:%d", i);
		got = node_str(owner_of(mt_cluster_slot(key, strlen(key))),
		    "GET %s", key);
		snprintf(val, sizeof(val), "v%d", i);
		assert_string_equal(got, val);
		free(got);
	}
	for (int i = 0; i < NODES; i++)
		assert_true(seen[i] > 50);
	mt_cluster_free(cl);
}

/* Moves one slot (with its keys) from node `from` to node `to`. */
static void
move_slot(unsigned slot, int from, int to, int finish)
{
	char *from_id = node_id(from), *to_id = node_id(to);
	redisContext *c;
	redisReply *r;

	node_cmd(to, "CLUSTER SETSLOT %u IMPORTING %s", slot, from_id);
	node_cmd(from, "CLUSTER SETSLOT %u MIGRATING %s", slot, to_id);
	c = node(from);
	for (;;) {
		r = redisCommand(c, "CLUSTER GETKEYSINSLOT %u 100", slot);
		assert_non_null(r);
		if (r->elements == 0) {
			freeReplyObject(r);
			break;
		}
		for (size_t k = 0; k < r->elements; k++) {
			redisReply *m = redisCommand(c, "MIGRATE 127.0.0.1 %d %s 0 "
			    "2000", ports[to], r->element[k]->str);

			assert_non_null(m);
			assert_int_not_equal(m->type, REDIS_REPLY_ERROR);
			freeReplyObject(m);
		}
		freeReplyObject(r);
	}
	redisFree(c);
	if (finish)
		for (int i = 0; i < NODES; i++)
			node_cmd(i, "CLUSTER SETSLOT %u NODE %s", slot, to_id);
	free(from_id);
	free(to_id);
}

static void
a_slot_moved_behind_the_clients_back_is_followed(void **state)
{
	struct mt_cluster *cl = client();
	struct mt_cluster_cmd cmd;
	struct argv3 a;
	char err[256];
	unsigned slot = mt_cluster_slot("moved:{x}", 9);
	int from = owner_of(slot), to = (from + 1) % NODES;

	set_cmd(&cmd, &a, "SET", "moved:{x}", "before");
	assert_int_equal(mt_cluster_run(cl, &cmd, 1, err, sizeof(err)), 0);
	freeReplyObject(cmd.reply);
	move_slot(slot, from, to, 1);
	set_cmd(&cmd, &a, "GET", "moved:{x}", NULL);
	assert_int_equal(mt_cluster_run(cl, &cmd, 1, err, sizeof(err)), 0);
	assert_int_equal(cmd.reply->type, REDIS_REPLY_STRING);
	assert_string_equal(cmd.reply->str, "before");
	freeReplyObject(cmd.reply);
	/* back where the other tests expect it */
	move_slot(slot, to, from, 1);
	mt_cluster_free(cl);
}

static void
a_slot_in_migration_is_asked_for_with_asking(void **state)
{
	struct mt_cluster *cl = client();
	struct mt_cluster_cmd cmd;
	struct argv3 a;
	char err[256];
	unsigned slot = mt_cluster_slot("ask:{y}", 7);
	int from = owner_of(slot), to = (from + 2) % NODES;

	set_cmd(&cmd, &a, "SET", "ask:{y}", "migrated");
	assert_int_equal(mt_cluster_run(cl, &cmd, 1, err, sizeof(err)), 0);
	freeReplyObject(cmd.reply);
	move_slot(slot, from, to, 0);	/* keys moved, slot still `from`'s */
	set_cmd(&cmd, &a, "GET", "ask:{y}", NULL);
	assert_int_equal(mt_cluster_run(cl, &cmd, 1, err, sizeof(err)), 0);
	assert_int_equal(cmd.reply->type, REDIS_REPLY_STRING);
	assert_string_equal(cmd.reply->str, "migrated");
	freeReplyObject(cmd.reply);
	/* a new key in that slot goes to the importing node too */
	set_cmd(&cmd, &a, "SET", "ask2:{y}", "new");
	assert_int_equal(mt_cluster_run(cl, &cmd, 1, err, sizeof(err)), 0);
	assert_int_equal(cmd.reply->type, REDIS_REPLY_STATUS);
	freeReplyObject(cmd.reply);
	move_slot(slot, from, to, 1);	/* finish, then move back */
	move_slot(slot, to, from, 1);
	mt_cluster_free(cl);
}

static void
an_unknown_script_is_loaded_on_the_node_and_run(void **state)
{
	static const char script[] = "return redis.call('INCR', KEYS[1])";
	struct mt_cluster *cl = client();
	struct mt_cluster_cmd cmd = { 0 };
	char err[256];
	/* SHA-1 of the script, as EVALSHA names it */
	const char *v[] = { "EVALSHA",
	    "d7f3cf21c43b1dc0e74e1a7b1cc3cf4c0b84fc02", "1", "n:{s}" };
	size_t len[4];
	redisContext *c;
	redisReply *r;

	c = node(0);
	r = redisCommand(c, "SCRIPT LOAD %s", script);
	assert_non_null(r);
	v[1] = strdup(r->str);		/* the digest Redis computes */
	freeReplyObject(r);
	for (int i = 0; i < NODES; i++)
		node_cmd(i, "SCRIPT FLUSH");
	redisFree(c);
	for (int i = 0; i < 4; i++)
		len[i] = strlen(v[i]);
	cmd.argc = 4;
	cmd.argv = v;
	cmd.argvlen = len;
	cmd.key = "n:{s}";
	cmd.keylen = 5;
	cmd.script = script;
	assert_int_equal(mt_cluster_run(cl, &cmd, 1, err, sizeof(err)), 0);
	assert_int_equal(cmd.reply->type, REDIS_REPLY_INTEGER);
	assert_int_equal(cmd.reply->integer, 1);
	freeReplyObject(cmd.reply);
	free((char *)v[1]);
	mt_cluster_free(cl);
}

static void
a_node_that_is_gone_fails_the_batch_with_a_reason(void **state)
{
	struct mt_cluster *cl = client();
	struct mt_cluster_cmd cmds[2];
	struct argv3 a[2];
	char err[256];
	char k0[32] = "", k2[32] = "", buf[32];

	/* one key on node 0 (alive), one on node 2 (to be stopped) */
	for (int i = 0; k0[0] == '\0' || k2[0] == '\0'; i++) {
		snprintf(buf, sizeof(buf), "gone:%d", i);
		switch (owner_of(mt_cluster_slot(buf, strlen(buf)))) {
		case 0: memcpy(k0, buf, sizeof(buf)); break;
		case 2: memcpy(k2, buf, sizeof(buf)); break;
		}
	}
	set_cmd(&cmds[0], &a[0], "SET", k0, "1");
	set_cmd(&cmds[1], &a[1], "SET", k2, "1");
	assert_int_equal(mt_cluster_run(cl, cmds, 2, err, sizeof(err)), 0);
	freeReplyObject(cmds[0].reply);
	freeReplyObject(cmds[1].reply);
	kill(pids[2], SIGKILL);
	waitpid(pids[2], NULL, 0);
	pids[2] = -1;
	set_cmd(&cmds[0], &a[0], "SET", k0, "2");
	set_cmd(&cmds[1], &a[1], "SET", k2, "2");
	assert_int_equal(mt_cluster_run(cl, cmds, 2, err, sizeof(err)), -1);
	assert_true(err[0] != '\0');
	/* what could be delivered was */
	assert_non_null(cmds[0].reply);
	freeReplyObject(cmds[0].reply);
	assert_null(cmds[1].reply);
	mt_cluster_free(cl);
}

int
main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test(slot_follows_the_specification_and_hash_tags),
		cmocka_unit_test(redirects_are_parsed_and_garbage_refused),
		cmocka_unit_test(seeds_must_be_host_and_port),
	};
	const struct CMUnitTest live[] = {
		cmocka_unit_test(a_batch_reaches_every_master_in_one_call),
		cmocka_unit_test(a_slot_moved_behind_the_clients_back_is_followed),
		cmocka_unit_test(a_slot_in_migration_is_asked_for_with_asking),
		cmocka_unit_test(an_unknown_script_is_loaded_on_the_node_and_run),
		cmocka_unit_test(a_node_that_is_gone_fails_the_batch_with_a_reason),
	};
	int rc = cmocka_run_group_tests(pure, NULL, NULL);

	return rc | cmocka_run_group_tests(live, cluster_up, cluster_down);
}
