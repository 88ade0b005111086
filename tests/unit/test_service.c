/*
 * The daemon skeleton: listen specs, listening sockets, reload that keeps
 * the old configuration on failure, and the signal loop.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../common/config.h"
#include "../../common/daemon.h"
#include "../../common/service.h"

static char dir[] = "/tmp/mt-service-XXXXXX";
static char confpath[256];

/* ---- listen specs ------------------------------------------------------ */

static struct mt_listen_addr
parsed(const char *spec)
{
	struct mt_listen_addr a;
	char err[256] = "";

	if (mt_listen_parse(spec, &a, err, sizeof(err)) != 0)
		fail_msg("%s: %s", spec, err);
	return a;
}

static void
unix_and_local_name_a_path(void **state)
{
	struct mt_listen_addr a = parsed("unix:/run/mailtrail/route.sock");

	assert_int_equal(a.family, AF_UNIX);
	assert_string_equal(a.path, "/run/mailtrail/route.sock");
	a = parsed("local:/var/spool/postfix/mt.sock");
	assert_int_equal(a.family, AF_UNIX);
	assert_string_equal(a.path, "/var/spool/postfix/mt.sock");
}

static void
inet_is_ipv4_unless_the_host_is_an_ipv6_address(void **state)
{
	struct mt_listen_addr a = parsed("inet:8891@127.0.0.1");

	assert_int_equal(a.family, AF_INET);
	assert_string_equal(a.port, "8891");
	assert_string_equal(a.host, "127.0.0.1");
	a = parsed("inet:25@localhost");
	assert_int_equal(a.family, AF_INET);
	assert_string_equal(a.host, "localhost");
	a = parsed("inet:8891@[::1]");
	assert_int_equal(a.family, AF_INET6);
	assert_string_equal(a.host, "::1");
	a = parsed("inet:8891@::1");
	assert_int_equal(a.family, AF_INET6);
	assert_string_equal(a.host, "::1");
}

static void
inet6_takes_a_host_with_or_without_brackets(void **state)
{
	struct mt_listen_addr a = parsed("inet6:65535@[2001:db8::1]");

	assert_int_equal(a.family, AF_INET6);
	assert_string_equal(a.port, "65535");
	assert_string_equal(a.host, "2001:db8::1");
	a = parsed("inet6:1@::1");
	assert_string_equal(a.host, "::1");
}

static void
no_host_means_every_address(void **state)
{
	struct mt_listen_addr a = parsed("inet:8891");

	assert_int_equal(a.family, AF_INET);
	assert_string_equal(a.host, "");
	a = parsed("inet6:8891");
	assert_int_equal(a.family, AF_INET6);
	assert_string_equal(a.host, "");
}

static void
malformed_specs_are_refused_with_a_reason(void **state)
{
	static const struct { const char *spec, *why; } bad[] = {
		{ "tcp:25@127.0.0.1", "neither unix:/path nor inet:PORT@HOST" },
		{ "/run/x.sock", "neither" },
		{ "unix:", "no path" },
		{ "inet:0@127.0.0.1", "port" },
		{ "inet:65536@127.0.0.1", "port" },
		{ "inet:+25@127.0.0.1", "port" },
		{ "inet:smtp@127.0.0.1", "port" },
		{ "inet:@127.0.0.1", "port" },
		{ "inet:", "port" },
		{ "inet:123456", "port" },
		{ "inet:25@", "no host" },
		{ "inet:25@[::1", "lacks its ']'" },
		{ "inet6:25@[]", "lacks its ']'" },
	};
	struct mt_listen_addr a;
	char err[256], longpath[200];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (mt_listen_parse(bad[i].spec, &a, err,
		    sizeof(err)) != -1)
			fail_msg("%s was accepted", bad[i].spec);
		if (strstr(err, bad[i].why) == NULL)
			fail_msg("%s: \"%s\" does not say \"%s\"", bad[i].spec,
			    err, bad[i].why);
	}
	memset(longpath, 'a', sizeof(longpath));
	memcpy(longpath, "unix:/", 6);
	longpath[5 + 108] = '\0';		/* a 108-byte path: no room for NUL */
	assert_int_equal(mt_listen_parse(longpath, &a, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "path longer than 107 bytes"));
	longpath[5 + 107] = '\0';
	assert_int_equal(mt_listen_parse(longpath, &a, err,
	    sizeof(err)), 0);
}

/* ---- listening sockets ------------------------------------------------- */

static void
unix_socket_is_born_under_the_umask_and_accepts(void **state)
{
	struct mt_config cfg = { .refs = 1 };
	char path[300], spec[310];
	struct sockaddr_un sun;
	struct stat sb;
	int fd, c;

	snprintf(path, sizeof(path), "%s/sock/route.sock", dir);
	snprintf(spec, sizeof(spec), "unix:%s", path);
	cfg.umask = 077;
	fd = mt_listen(spec, &cfg, 0, 0, 0, "RouteSocket");
	assert_int_equal(lstat(path, &sb), 0);
	assert_true(S_ISSOCK(sb.st_mode));
	assert_int_equal(sb.st_mode & 0777, 0700);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path));
	c = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(connect(c, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(c);
	close(fd);
	/* A stale socket left by a crash is replaced. */
	cfg.umask = 0;
	fd = mt_listen(spec, &cfg, 0, 0, 0, "RouteSocket");
	assert_int_equal(lstat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0777);
	close(fd);
	unlink(path);
	snprintf(path, sizeof(path), "%s/sock", dir);
	rmdir(path);
}

static void
inet_socket_listens_on_the_given_address(void **state)
{
	struct mt_config cfg = { .refs = 1 };
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	char spec[64];
	int probe, fd, c;
	unsigned port;

	/* A free port: bind 0, read it back, let it go. */
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	probe = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(probe, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(probe, (struct sockaddr *)&sin, &len), 0);
	port = ntohs(sin.sin_port);
	close(probe);
	snprintf(spec, sizeof(spec), "inet:%u@127.0.0.1", port);
	fd = mt_listen(spec, &cfg, 0, 0, 0, "Socket");
	len = sizeof(sin);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	assert_int_equal(sin.sin_family, AF_INET);
	assert_int_equal(ntohs(sin.sin_port), port);
	assert_int_equal(ntohl(sin.sin_addr.s_addr), INADDR_LOOPBACK);
	c = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(c, (struct sockaddr *)&sin, sizeof(sin)), 0);
	close(c);
	close(fd);
}

/* ---- configuration in service and reload -------------------------------- */

struct test_rt {
	int generation;
};

static int attaches, frees, reloads;
static struct mt_config *seen_old, *seen_fresh;

static void
rt_free(struct mt_config *cfg)
{
	free(cfg->owner);
	cfg->owner = NULL;
	frees++;
}

/* Refuses a configuration whose RedisPrefix is "refuse:". */
static int
rt_attach(struct mt_config *cfg, char *err, size_t errlen)
{
	struct test_rt *rt;

	if (strcmp(cfg->redis_prefix, "refuse:") == 0) {
		snprintf(err, errlen, "refused by the test");
		return -1;
	}
	if ((rt = calloc(1, sizeof(*rt))) == NULL)
		return -1;
	rt->generation = ++attaches;
	cfg->owner = rt;
	cfg->on_free = rt_free;
	return 0;
}

static void
rt_on_reload(struct mt_config *old, struct mt_config *fresh)
{
	seen_old = old;
	seen_fresh = fresh;
	reloads++;
}

static const char *
rt_socket(const struct mt_config *cfg)
{
	return cfg->route_socket;
}

static struct mt_service svc = {
	.name = "test_service",
	.attach = rt_attach,
	.on_reload = rt_on_reload,
	.socket_of = rt_socket,
	.socket_key = "RouteSocket",
};

static void
write_conf(const char *text)
{
	FILE *fp = fopen(confpath, "w");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

/* The RedisPrefix of the configuration in service. */
static int
in_service_is(const char *prefix)
{
	struct mt_config *c = mt_service_config();
	int same = c != NULL && strcmp(c->redis_prefix, prefix) == 0;

	mt_config_unref(c);
	return same;
}

static void
options_set_path_foreground_and_check(void **state)
{
	char a0[] = "test_service", a1[] = "-c", a3[] = "-f", a4[] = "-n";
	char *argv[] = { a0, a1, confpath, a3, a4, NULL };

	mt_service_options(&svc, 5, argv);
	assert_string_equal(svc.config_path, confpath);
	assert_int_equal(svc.foreground, 1);
	assert_int_equal(svc.check, 1);
	svc.check = 0;
	svc.foreground = 0;
}

static void
installed_configuration_is_attached_and_referenced(void **state)
{
	struct mt_config *cfg, *c;

	assert_null(mt_service_config());
	write_conf("RedisPrefix a:\n");
	cfg = mt_service_load(&svc, 0);
	assert_null(cfg->owner);		/* attach left to install */
	mt_service_install(&svc, cfg);
	c = mt_service_config();
	assert_ptr_equal(c, cfg);
	assert_int_equal(((struct test_rt *)c->owner)->generation, 1);
	mt_config_unref(c);
	assert_int_equal(frees, 0);
}

static void
failed_load_keeps_the_configuration_in_service(void **state)
{
	write_conf("RedisPrefix b:\nNoSuchKey x\n");
	assert_int_equal(mt_service_reload(&svc), -1);
	assert_true(in_service_is("a:"));
	assert_int_equal(reloads, 0);
}

static void
failed_attach_keeps_the_configuration_in_service(void **state)
{
	int before = attaches;

	write_conf("RedisPrefix refuse:\n");
	assert_int_equal(mt_service_reload(&svc), -1);
	assert_true(in_service_is("a:"));
	assert_int_equal(attaches, before);
	assert_int_equal(reloads, 0);
}

static void
reload_swaps_and_the_old_one_lives_while_referenced(void **state)
{
	struct mt_config *held = mt_service_config();
	int freed = frees;

	write_conf("RedisPrefix b:\nRouteSocket unix:/run/elsewhere.sock\n");
	assert_int_equal(mt_service_reload(&svc), 0);
	assert_true(in_service_is("b:"));
	assert_int_equal(reloads, 1);
	assert_ptr_equal(seen_old, held);
	assert_string_equal(seen_fresh->redis_prefix, "b:");
	/* A connection still holding the old one keeps it and its runtime. */
	assert_int_equal(frees, freed);
	assert_string_equal(held->redis_prefix, "a:");
	assert_non_null(held->owner);
	mt_config_unref(held);
	assert_int_equal(frees, freed + 1);
}

/* ---- the signal loop --------------------------------------------------- */

static void *
hup_then_term(void *arg)
{
	(void)arg;
	write_conf("RedisPrefix c:\n");
	kill(getpid(), SIGHUP);
	for (int i = 0; i < 500 && !in_service_is("c:"); i++)
		usleep(10000);
	kill(getpid(), SIGTERM);
	return NULL;
}

static void
sighup_reloads_and_sigterm_ends_the_wait(void **state)
{
	pthread_t t;

	mt_service_block_signals();	/* before the thread: it inherits */
	assert_int_equal(pthread_create(&t, NULL, hup_then_term, NULL), 0);
	assert_int_equal(mt_service_wait(&svc), SIGTERM);
	pthread_join(t, NULL);
	assert_true(in_service_is("c:"));
}

static void *
stop_later(void *arg)
{
	(void)arg;
	usleep(50000);
	mt_service_stop();
	return NULL;
}

static void
stop_from_another_thread_ends_the_wait_with_0(void **state)
{
	pthread_t t;

	assert_int_equal(pthread_create(&t, NULL, stop_later, NULL), 0);
	assert_int_equal(mt_service_wait(&svc), 0);
	pthread_join(t, NULL);
	/* Once stopped, a later wait returns at once. */
	assert_int_equal(mt_service_wait(&svc), 0);
}

static void
end_releases_the_configuration(void **state)
{
	int freed = frees;

	mt_service_end(&svc);
	assert_null(mt_service_config());
	assert_int_equal(frees, freed + 1);
}

static int
setup(void **state)
{
	assert_non_null(mkdtemp(dir));
	snprintf(confpath, sizeof(confpath), "%s/mailtrail.conf", dir);
	return 0;
}

static int
teardown(void **state)
{
	unlink(confpath);
	rmdir(dir);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(unix_and_local_name_a_path),
		cmocka_unit_test(inet_is_ipv4_unless_the_host_is_an_ipv6_address),
		cmocka_unit_test(inet6_takes_a_host_with_or_without_brackets),
		cmocka_unit_test(no_host_means_every_address),
		cmocka_unit_test(malformed_specs_are_refused_with_a_reason),
		cmocka_unit_test(unix_socket_is_born_under_the_umask_and_accepts),
		cmocka_unit_test(inet_socket_listens_on_the_given_address),
		/* In this order: they share the one configuration in service. */
		cmocka_unit_test(options_set_path_foreground_and_check),
		cmocka_unit_test(installed_configuration_is_attached_and_referenced),
		cmocka_unit_test(failed_load_keeps_the_configuration_in_service),
		cmocka_unit_test(failed_attach_keeps_the_configuration_in_service),
		cmocka_unit_test(reload_swaps_and_the_old_one_lives_while_referenced),
		cmocka_unit_test(sighup_reloads_and_sigterm_ends_the_wait),
		cmocka_unit_test(stop_from_another_thread_ends_the_wait_with_0),
		cmocka_unit_test(end_releases_the_configuration),
	};
	return cmocka_run_group_tests_name("service", tests, setup, teardown);
}
