/*
 * Finding the master through real redis-sentinel processes on loopback:
 * one master, one replica, three Sentinels; then the master is killed and
 * the Sentinels' new answer is followed.
 */
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

#include "../../state/sentinel.h"

#define SENTINELS 3

static char dir[64];
static int master_port, replica_port, sport[SENTINELS];
static pid_t master_pid, replica_pid, spid[SENTINELS];
static struct mt_redis_endpoint slist[SENTINELS + 1];
static const struct mt_sentinel_opts opts = { 1000, NULL, NULL };

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Replies as hiredis reads them off the wire. */
static redisReply *
reply_of(const char *resp)
{
	redisReader *rr = redisReaderCreate();
	void *r = NULL;

	assert_int_equal(redisReaderFeed(rr, resp, strlen(resp)), REDIS_OK);
	assert_int_equal(redisReaderGetReply(rr, &r), REDIS_OK);
	assert_non_null(r);
	redisReaderFree(rr);
	return r;
}

static void
master_address_replies_are_checked(void **state)
{
	struct mt_redis_endpoint at;
	redisReply *r;

	r = reply_of("*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n");
	assert_int_equal(mt_sentinel_parse_master(r, &at), 0);
	assert_string_equal(at.host, "127.0.0.1");
	assert_int_equal(at.port, 6380);
	freeReplyObject(r);
	r = reply_of("*-1\r\n");		/* unknown master name */
	assert_int_equal(mt_sentinel_parse_master(r, &at), -1);
	freeReplyObject(r);
	r = reply_of("*2\r\n$9\r\nbad host!\r\n$4\r\n6380\r\n");
	assert_int_equal(mt_sentinel_parse_master(r, &at), -1);
	freeReplyObject(r);
	r = reply_of("*2\r\n$1\r\nh\r\n$5\r\n99999\r\n");
	assert_int_equal(mt_sentinel_parse_master(r, &at), -1);
	freeReplyObject(r);
	r = reply_of("-ERR unknown command\r\n");
	assert_int_equal(mt_sentinel_parse_master(r, &at), -1);
	freeReplyObject(r);
	r = reply_of("*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n");
	assert_int_equal(mt_sentinel_is_master(r), 1);
	freeReplyObject(r);
	r = reply_of("*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:6379\r\n"
	    "$9\r\nconnected\r\n:0\r\n");
	assert_int_equal(mt_sentinel_is_master(r), 0);
	freeReplyObject(r);
}

/* ---- real processes ----------------------------------------------------- */

static int
free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
	    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM, 0), port;

	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	close(s);
	return port;
}

static pid_t
spawn(const char *const argv[])
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		dup2(fd, 1);
		dup2(fd, 2);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

static redisContext *
at(int port)
{
	struct timeval tv = { 1, 0 };

	return redisConnectWithTimeout("127.0.0.1", port, tv);
}

static void
wait_up(int port)
{
	for (int t = 0; t < 100; t++) {
		redisContext *c = at(port);
		int up = c != NULL && c->err == 0;

		redisFree(c);
		if (up)
			return;
		sleep_ms(50);
	}
	fail_msg("nothing answers on port %d", port);
}

/* 1 when every Sentinel knows the replica (needed for a failover). */
static int
sentinels_ready(void)
{
	for (int i = 0; i < SENTINELS; i++) {
		redisContext *c = at(sport[i]);
		redisReply *r = c && !c->err ? redisCommand(c,
		    "SENTINEL replicas mymaster") : NULL;
		int ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 1;

		if (r)
			freeReplyObject(r);
		redisFree(c);
		if (!ok)
			return 0;
	}
	return 1;
}

static int
setup(void **state)
{
	char mport[16], rport[16], conf[128], sp[16];
	FILE *f;

	snprintf(dir, sizeof(dir), "/tmp/mt-sentinel-XXXXXX");
	assert_non_null(mkdtemp(dir));
	master_port = free_port();
	replica_port = free_port();
	snprintf(mport, sizeof(mport), "%d", master_port);
	snprintf(rport, sizeof(rport), "%d", replica_port);
	/* No 5 s wait before the replica's first sync (Redis 7's default). */
	master_pid = spawn((const char *[]){ "redis-server", "--port", mport,
	    "--bind", "127.0.0.1", "--save", "", "--dir", dir,
	    "--repl-diskless-sync-delay", "0", NULL });
	wait_up(master_port);
	replica_pid = spawn((const char *[]){ "redis-server", "--port", rport,
	    "--bind", "127.0.0.1", "--save", "", "--dir", dir, "--replicaof",
	    "127.0.0.1", mport, NULL });
	wait_up(replica_port);
	for (int i = 0; i < SENTINELS; i++) {
		sport[i] = free_port();
		snprintf(conf, sizeof(conf), "%s/sentinel%d.conf", dir, i);
		assert_non_null(f = fopen(conf, "w"));
		fprintf(f, "port %d\nbind 127.0.0.1\ndir %s\n"
		    "sentinel monitor mymaster 127.0.0.1 %d 2\n"
		    "sentinel down-after-milliseconds mymaster 1000\n"
		    "sentinel failover-timeout mymaster 4000\n",
		    sport[i], dir, master_port);
		fclose(f);
		snprintf(sp, sizeof(sp), "%d", sport[i]);
		spid[i] = spawn((const char *[]){ "redis-sentinel", conf, NULL });
		wait_up(sport[i]);
	}
	for (int t = 0; t < 300 && !sentinels_ready(); t++)
		sleep_ms(100);
	assert_true(sentinels_ready());
	/* A dead Sentinel first: the list must be walked. */
	snprintf(slist[0].host, sizeof(slist[0].host), "127.0.0.1");
	slist[0].port = free_port();
	for (int i = 0; i < SENTINELS; i++) {
		snprintf(slist[i + 1].host, sizeof(slist[i + 1].host),
		    "127.0.0.1");
		slist[i + 1].port = sport[i];
	}
	return 0;
}

static void
stop(pid_t *pid)
{
	if (*pid > 0) {
		kill(*pid, SIGTERM);
		waitpid(*pid, NULL, 0);
		*pid = -1;
	}
}

static int
teardown(void **state)
{
	char cmd[128];

	for (int i = 0; i < SENTINELS; i++)
		stop(&spid[i]);
	stop(&replica_pid);
	stop(&master_pid);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
the_master_is_found_past_a_dead_sentinel(void **state)
{
	struct mt_redis_endpoint where;
	char err[256];
	redisContext *c = mt_sentinel_connect(slist, SENTINELS + 1, "mymaster",
	    &opts, &where, err, sizeof(err));
	redisReply *r;

	assert_non_null(c);
	assert_int_equal(where.port, master_port);
	r = redisCommand(c, "SET before-failover 1");
	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_STATUS);
	freeReplyObject(r);
	r = redisCommand(c, "WAIT 1 5000");	/* on the replica too */
	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_INTEGER);
	assert_int_equal(r->integer, 1);
	freeReplyObject(r);
	redisFree(c);
}

static void
an_unknown_master_name_is_an_error_that_says_so(void **state)
{
	struct mt_redis_endpoint where;
	char err[256];

	assert_null(mt_sentinel_connect(slist, SENTINELS + 1, "nosuch", &opts,
	    &where, err, sizeof(err)));
	assert_non_null(strstr(err, "knows no master"));
}

static void
the_replica_is_never_taken_for_the_master(void **state)
{
	redisContext *c = at(replica_port);
	redisReply *r = redisCommand(c, "ROLE");

	assert_int_equal(mt_sentinel_is_master(r), 0);
	freeReplyObject(r);
	redisFree(c);
}

static void
a_failover_is_followed_to_the_promoted_replica(void **state)
{
	struct mt_redis_endpoint where = { "", 0 };
	char err[256];
	redisContext *c = NULL;
	redisReply *r;

	kill(master_pid, SIGKILL);
	waitpid(master_pid, NULL, 0);
	master_pid = -1;
	for (int t = 0; t < 300 && c == NULL; t++) {
		c = mt_sentinel_connect(slist, SENTINELS + 1, "mymaster", &opts,
		    &where, err, sizeof(err));
		if (c == NULL)
			sleep_ms(100);
	}
	assert_non_null(c);
	assert_int_equal(where.port, replica_port);
	r = redisCommand(c, "GET before-failover");
	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_STRING);
	assert_string_equal(r->str, "1");	/* it was replicated */
	freeReplyObject(r);
	r = redisCommand(c, "SET after-failover 1");
	assert_int_equal(r->type, REDIS_REPLY_STATUS);
	freeReplyObject(r);
	redisFree(c);
}

int
main(void)
{
	const struct CMUnitTest pure[] = {
		cmocka_unit_test(master_address_replies_are_checked),
	};
	const struct CMUnitTest live[] = {
		cmocka_unit_test(the_master_is_found_past_a_dead_sentinel),
		cmocka_unit_test(an_unknown_master_name_is_an_error_that_says_so),
		cmocka_unit_test(the_replica_is_never_taken_for_the_master),
		cmocka_unit_test(a_failover_is_followed_to_the_promoted_replica),
	};
	int rc = cmocka_run_group_tests(pure, NULL, NULL);

	return rc | cmocka_run_group_tests(live, setup, teardown);
}
