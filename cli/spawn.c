/*
 * Running a helper program (doveadm, postqueue, postcat, postsuper)
 * without a shell: every argument is passed as is, its output is read with
 * a deadline and a size limit, and it is killed when either is passed.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "../common/clock.h"

extern char **environ;

/* Reads fd to EOF into out (grown up to max); 0, or -1 over max or time. */
static int
drain(int fd, struct cli_output *out, size_t max, int64_t deadline)
{
	for (;;) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		int64_t left = deadline - mt_clock_ms(CLOCK_MONOTONIC);
		ssize_t r;

		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
			return -1;
		if (out->cap - out->len < 4096 + 1) {
			size_t cap = out->cap ? out->cap * 2 : 16384;

			if (out->cap >= max + 1)
				return -1;
			if (cap > max + 1)
				cap = max + 1;
			out->s = cli_xrealloc(out->s, cap);
			out->cap = cap;
		}
		r = read(fd, out->s + out->len, out->cap - 1 - out->len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r == 0 ? 0 : -1;
		out->len += (size_t)r;
	}
}

int
cli_spawn(const char *const argv[], int with_stderr, struct cli_output *out,
    size_t max, int timeout_ms, char *err, size_t errlen)
{
	posix_spawn_file_actions_t fa;
	int64_t deadline = mt_clock_ms(CLOCK_MONOTONIC) + timeout_ms;
	int fds[2], status, rc;
	pid_t pid;

	memset(out, 0, sizeof(*out));
	if (pipe(fds) != 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -1;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
	if (with_stderr)
		posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
	posix_spawn_file_actions_addclose(&fa, fds[0]);
	posix_spawn_file_actions_addclose(&fa, fds[1]);
	rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv,
	    environ);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	if (rc != 0) {
		close(fds[0]);
		snprintf(err, errlen, "cannot run %s: %s", argv[0],
		    strerror(rc));
		return -1;
	}
	rc = drain(fds[0], out, max, deadline);
	close(fds[0]);
	if (rc != 0)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (out->s == NULL)
		out->s = cli_xmalloc(1);
	out->s[out->len] = '\0';
	if (rc != 0) {
		snprintf(err, errlen, "%s: no end of output within %d ms or "
		    "over %zu bytes", argv[0], timeout_ms, max);
		return -1;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		snprintf(err, errlen, "%s failed (%s %d)", argv[0],
		    WIFEXITED(status) ? "exit" : "signal",
		    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		return -1;
	}
	return 0;
}
