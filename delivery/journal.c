/*
 * Following Postfix's entries in the systemd journal (sd-journal): the
 * entries of facility mail, what /var/log/mail.log would hold, each made
 * into its syslog line by mt_journal_line, with the cursor of the last
 * one taken kept in the state file so that a restart resumes after it.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>

#include "delivery.h"

#define CURSOR_MAX 512		/* systemd's are about 130 bytes */

static int
fail(struct mt_journal *jr, const char *what, int r)
{
	snprintf(jr->err, sizeof(jr->err), "%s %s: %s", what,
	    jr->dir ? jr->dir : "the system journal", strerror(r < 0 ? -r : r));
	return -1;
}

/*
 * The cursor in state: 1 with cur, 0 when there is none (no file, or it
 * holds something else: *other says so, e.g. a log file position).
 */
static int
read_cursor(const char *state, char *cur, size_t size, int *other)
{
	static const char tag[] = "cursor ";
	char line[CURSOR_MAX + sizeof(tag) + 2];
	FILE *fp;
	size_t n;
	int got;

	*other = 0;
	if (state == NULL || (fp = fopen(state, "r")) == NULL)
		return 0;
	got = fgets(line, sizeof(line), fp) != NULL;
	fclose(fp);
	if (!got)
		return 0;
	n = strcspn(line, "\n");
	line[n] = '\0';
	if (strncmp(line, tag, sizeof(tag) - 1) != 0 || n == sizeof(tag) - 1 ||
	    n - (sizeof(tag) - 1) >= size) {
		*other = 1;
		return 0;
	}
	memcpy(cur, line + sizeof(tag) - 1, n - (sizeof(tag) - 1) + 1);
	return 1;
}

/* Stands where the saved cursor says; *warn when it cannot. */
static int
seek_saved(struct mt_journal *jr, const char *state)
{
	char cur[CURSOR_MAX];
	int other, r;

	if (read_cursor(state, cur, sizeof(cur), &other) == 0) {
		if (other)
			snprintf(jr->warn, sizeof(jr->warn), "%s holds no "
			    "journal cursor (a log file position?); starting "
			    "at the head of the journal", state);
		r = sd_journal_seek_head(jr->j);
		return r < 0 ? fail(jr, "cannot seek in", r) : 0;
	}
	if ((r = sd_journal_seek_cursor(jr->j, cur)) < 0) {
		snprintf(jr->warn, sizeof(jr->warn), "the cursor in %s is not a "
		    "journal cursor (%s); starting at the head of the journal",
		    state, strerror(-r));
		r = sd_journal_seek_head(jr->j);
		return r < 0 ? fail(jr, "cannot seek in", r) : 0;
	}
	if ((r = sd_journal_next(jr->j)) < 0)
		return fail(jr, "cannot read", r);
	if (r > 0 && sd_journal_test_cursor(jr->j, cur) <= 0) {
		/* Vacuumed, or another journal's cursor: the entry we stand
		 * on is the first after its time and still to be read. */
		jr->take_current = 1;
		snprintf(jr->warn, sizeof(jr->warn), "the entry of the cursor in "
		    "%s is not in the journal (vacuumed, or another journal's); "
		    "resuming at the first entry at or after its time", state);
	}
	return 0;
}

int
mt_journal_open(struct mt_journal *jr, const char *dir, const char *state)
{
	struct stat sb;
	struct passwd *pw;
	int r;

	memset(jr, 0, sizeof(*jr));
	pw = getpwnam("postfix");
	jr->postfix_uid = pw != NULL ? (long)pw->pw_uid : -1;
	if (dir != NULL) {
		if ((jr->dir = strdup(dir)) == NULL)
			return fail(jr, "out of memory opening", ENOMEM);
		if (stat(dir, &sb) != 0)
			return fail(jr, "cannot open the journal directory", errno);
		if (!S_ISDIR(sb.st_mode))
			return fail(jr, "cannot open the journal directory",
			    ENOTDIR);
		r = sd_journal_open_directory(&jr->j, dir, 0);
	} else
		r = sd_journal_open(&jr->j, SD_JOURNAL_LOCAL_ONLY |
		    SD_JOURNAL_SYSTEM);
	if (r < 0) {
		jr->j = NULL;
		return fail(jr, "cannot open", r);
	}
	/* A hint: huge fields need not be decompressed past what a line
	 * can hold (a longer message is cut and counted anyway). */
	sd_journal_set_data_threshold(jr->j, MT_DLV_LINE_MAX + 64);
	if ((r = sd_journal_add_match(jr->j, "SYSLOG_FACILITY=2", 0)) < 0)
		return fail(jr, "cannot filter", r);
	if (dir == NULL && sd_journal_has_runtime_files(jr->j) <= 0 &&
	    sd_journal_has_persistent_files(jr->j) <= 0)
		snprintf(jr->warn, sizeof(jr->warn), "no journal file is "
		    "readable (the user needs group adm or systemd-journal); "
		    "waiting for one");
	return seek_saved(jr, state);
}

/* name=value of the current entry copied into buf (size bytes at most:
 * a longer value keeps size bytes, so the caller sees it was longer). */
static int
copy_field(sd_journal *j, const char *name, char *buf, size_t size,
    size_t *len)
{
	const void *data;
	size_t n, nl = strlen(name);

	*len = 0;
	if (sd_journal_get_data(j, name, &data, &n) < 0 || n <= nl ||
	    memcmp(data, name, nl) != 0 || ((const char *)data)[nl] != '=')
		return 0;
	n -= nl + 1;
	*len = n < size ? n : size;
	memcpy(buf, (const char *)data + nl + 1, *len);
	return 1;
}

/*
 * SYSLOG_IDENTIFIER is whatever the writer said (logger -t postfix/smtp);
 * _UID is what journald saw. Postfix's programs run as root (master,
 * local, pipe) or as its mail_owner, "postfix": any other writer is a
 * local user's, whose delivery lines change nothing.
 */
static int
trusted_writer(struct mt_journal *jr)
{
	char uid[24];
	size_t n, i;
	long v = 0;

	if (!copy_field(jr->j, "_UID", uid, sizeof(uid) - 1, &n) || n == 0)
		return 0;
	for (i = 0; i < n; i++) {
		if (uid[i] < '0' || uid[i] > '9' || v > 1000000000L)
			return 0;
		v = v * 10 + (uid[i] - '0');
	}
	return v == 0 || (jr->postfix_uid >= 0 && v == jr->postfix_uid);
}

int
mt_journal_next(struct mt_journal *jr, const char **line, size_t *len,
    enum mt_jline_kind *kind)
{
	/* sd_journal_get_data's pointer lasts until its next call: copies. */
	char host[256], ident[MT_DLV_SERVICE_MAX], pid[24];
	struct mt_jentry e = { .host = host, .ident = ident, .pid = pid,
	    .msg = jr->msg };
	int r;

	if (jr->take_current)
		jr->take_current = 0;
	else if ((r = sd_journal_next(jr->j)) <= 0)
		return r < 0 ? fail(jr, "cannot read", r) : 0;
	jr->moved = 1;
	if ((r = sd_journal_get_realtime_usec(jr->j, &e.t_us)) < 0)
		e.t_us = 0;
	if (!copy_field(jr->j, "_HOSTNAME", host, sizeof(host), &e.host_len))
		e.host = NULL;
	if (!copy_field(jr->j, "SYSLOG_IDENTIFIER", ident, sizeof(ident),
	    &e.ident_len))
		e.ident = NULL;
	if (!copy_field(jr->j, "SYSLOG_PID", pid, sizeof(pid), &e.pid_len) &&
	    !copy_field(jr->j, "_PID", pid, sizeof(pid), &e.pid_len))
		e.pid = NULL;
	if (!copy_field(jr->j, "MESSAGE", jr->msg, sizeof(jr->msg),
	    &e.msg_len))
		e.msg = NULL;
	*kind = mt_journal_line(&e, jr->line, len);
	if (*kind == MT_JLINE_OK && !trusted_writer(jr))
		*kind = MT_JLINE_UNTRUSTED;
	*line = jr->line;
	return 1;
}

int
mt_journal_wait(struct mt_journal *jr, int timeout_ms)
{
	int r = sd_journal_wait(jr->j, (uint64_t)timeout_ms * 1000);

	return r < 0 && r != -EINTR ? fail(jr, "cannot wait for", r) : 0;
}

int
mt_journal_save(struct mt_journal *jr, const char *state)
{
	char *cur = NULL, *text = NULL;
	int r, rc = 0;

	if (!jr->moved || state == NULL)
		return 0;
	if ((r = sd_journal_get_cursor(jr->j, &cur)) < 0)
		return fail(jr, "cannot take the cursor of", r);
	if (asprintf(&text, "cursor %s\n", cur) < 0)
		text = NULL;
	if (text == NULL || mt_state_write(state, text) != 0) {
		snprintf(jr->err, sizeof(jr->err), "cannot save the cursor to "
		    "%s: %s", state, strerror(text == NULL ? ENOMEM : errno));
		rc = -1;
	} else
		jr->moved = 0;
	free(text);
	free(cur);
	return rc;
}

void
mt_journal_close(struct mt_journal *jr)
{
	if (jr->j != NULL)
		sd_journal_close(jr->j);
	jr->j = NULL;
	free(jr->dir);
	jr->dir = NULL;
}
