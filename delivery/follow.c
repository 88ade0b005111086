/*
 * Following Postfix's log file: appends, rotation by rename (finish the old
 * file, then open the new one at 0) and truncation (start again at 0), with
 * the position kept in a small state file so that a restart resumes.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "delivery.h"

#define READ_CHUNK 65536

static void
set_err(struct mt_follow *f, const char *what)
{
	snprintf(f->err, sizeof(f->err), "%s %s: %s", what,
	    f->path ? f->path : "standard input", strerror(errno));
}

static int
read_state(const char *state, uintmax_t *ino, uintmax_t *off)
{
	FILE *fp;
	int n;

	if (state == NULL || (fp = fopen(state, "r")) == NULL)
		return -1;
	n = fscanf(fp, "%ju %ju", ino, off);
	fclose(fp);
	return n == 2 ? 0 : -1;
}

/* The bytes just before end (as many as fit): their count, 0 if unreadable. */
static size_t
take_tail(int fd, unsigned char *tail, size_t cap, off_t end)
{
	size_t want = end < (off_t)cap ? (size_t)end : cap;

	return want > 0 && pread(fd, tail, want, end - (off_t)want) ==
	    (ssize_t)want ? want : 0;
}

int
mt_follow_open(struct mt_follow *f, const char *path, const char *state)
{
	struct stat sb;
	uintmax_t ino, off;

	memset(f, 0, sizeof(f[0]));
	f->fd = -1;
	if (path == NULL || strcmp(path, "-") == 0) {
		f->fd = 0;
		return 0;
	}
	if ((f->path = strdup(path)) == NULL) {
		snprintf(f->err, sizeof(f->err), "out of memory");
		return -1;
	}
	if ((f->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 ||
	    fstat(f->fd, &sb) != 0) {
		set_err(f, "cannot open");
		return -1;
	}
	f->dev = sb.st_dev;
	f->ino = sb.st_ino;
	if (read_state(state, &ino, &off) == 0 && ino == (uintmax_t)sb.st_ino &&
	    off <= (uintmax_t)sb.st_size) {
		if (lseek(f->fd, (off_t)off, SEEK_SET) < 0) {
			set_err(f, "cannot seek in");
			return -1;
		}
		f->off = (off_t)off;
		f->tail_len = take_tail(f->fd, f->tail, sizeof(f->tail), f->off);
	}
	return 0;
}

/*
 * Truncated and written again past our offset before we looked (copytruncate
 * on a busy log): the first bytes are no longer the ones we read. Takes the
 * head once enough of the file has been consumed.
 */
static int
head_changed(struct mt_follow *f)
{
	unsigned char now[sizeof(f->head)];
	size_t want = sizeof(f->head);
	ssize_t n;

	if (f->head_len == 0) {	/* resumed past the head: look it up */
		if (f->off < (off_t)want)
			return 0;
		n = pread(f->fd, f->head, want, 0);
		f->head_len = n == (ssize_t)want ? want : 0;
		return 0;
	}
	n = pread(f->fd, now, f->head_len, 0);
	return n == (ssize_t)f->head_len && memcmp(now, f->head, f->head_len);
}

/*
 * Truncated and written again past our offset, the new head equal to the
 * old (the same daemon logging the same event within the same second):
 * the bytes just before our read position are then no longer the ones we
 * read there.
 */
static int
tail_changed(struct mt_follow *f)
{
	unsigned char now[sizeof(f->tail)];
	off_t end = f->off + (off_t)f->len;

	if (f->tail_len == 0 || end < (off_t)f->tail_len)
		return 0;
	return pread(f->fd, now, f->tail_len, end - (off_t)f->tail_len) ==
	    (ssize_t)f->tail_len && memcmp(now, f->tail, f->tail_len) != 0;
}

/*
 * Truncated in place below our read position, or truncated and rewritten
 * past it? Asked at EOF and again before the next read after EOF, since
 * a read at a stale offset would take the new file's bytes for ours.
 * 1 when it was, and we start again at 0: everything there now is new.
 */
static int
check_truncation(struct mt_follow *f)
{
	struct stat sb;

	if (f->path == NULL || fstat(f->fd, &sb) != 0 ||
	    !(sb.st_size < f->off + (off_t)f->len || head_changed(f) ||
	    tail_changed(f)))
		return 0;
	lseek(f->fd, 0, SEEK_SET);
	f->off = 0;
	f->len = 0;
	f->head_len = 0;
	f->tail_len = 0;
	return 1;
}

/*
 * At EOF: has the path been renamed away (another inode now)? The old fd
 * was read to its end just now; 1 when we switched to the new file.
 */
static int
check_rename(struct mt_follow *f)
{
	struct stat psb;
	int fd;

	if (f->path == NULL || stat(f->path, &psb) != 0 ||
	    (psb.st_ino == f->ino && psb.st_dev == f->dev))
		return 0;
	if ((fd = open(f->path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;	/* not created yet: try again later */
	if (fstat(fd, &psb) != 0) {
		close(fd);
		return 0;
	}
	close(f->fd);
	f->fd = fd;
	f->dev = psb.st_dev;
	f->ino = psb.st_ino;
	f->off = 0;
	f->len = 0;	/* a last line without newline is lost with the file */
	f->head_len = 0;
	f->tail_len = 0;
	return 1;
}

/*
 * The file's first bytes, taken as they are read rather than looked up
 * later: by the time we reach EOF a copytruncate may already have put
 * other bytes there.
 */
static void
keep_head(struct mt_follow *f, off_t pos, size_t n)
{
	size_t want = sizeof(f->head);

	if (pos != (off_t)f->head_len || f->head_len >= want || n == 0)
		return;
	if (n > want - f->head_len)
		n = want - f->head_len;
	memcpy(f->head + f->head_len, f->buf + f->len, n);
	f->head_len += n;
}

/* The last bytes read, the n just read at buf + len included. */
static void
keep_tail(struct mt_follow *f, size_t n)
{
	size_t cap = sizeof(f->tail), keep;

	if (n >= cap) {
		memcpy(f->tail, f->buf + f->len + n - cap, cap);
		f->tail_len = cap;
		return;
	}
	keep = f->tail_len + n > cap ? cap - n : f->tail_len;
	memmove(f->tail, f->tail + f->tail_len - keep, keep);
	memcpy(f->tail + keep, f->buf + f->len, n);
	f->tail_len = keep + n;
}

static int
fill(struct mt_follow *f)
{
	ssize_t n;

	if (f->cap - f->len < READ_CHUNK) {
		size_t cap = f->len + READ_CHUNK + 1;
		char *nb = realloc(f->buf, cap);

		if (nb == NULL) {
			snprintf(f->err, sizeof(f->err), "out of memory");
			return -1;
		}
		f->buf = nb;
		f->cap = cap;
	}
	do
		n = read(f->fd, f->buf + f->len, READ_CHUNK);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		set_err(f, "cannot read");
		return -1;
	}
	keep_head(f, f->off + (off_t)f->len, (size_t)n);
	keep_tail(f, (size_t)n);
	f->eof_seen = n == 0;
	f->len += (size_t)n;
	return (int)(n > 0);
}

int
mt_follow_next(struct mt_follow *f, const char **line, size_t *len, int *cut)
{
	char *nl;
	size_t n;
	int rc;

	*cut = 0;
	if (f->pending > 0) {	/* the line handed out last time */
		memmove(f->buf, f->buf + f->pending, f->len - f->pending);
		f->len -= f->pending;
		f->pending = 0;
	}
	for (;;) {
		/*
		 * NUL bytes where a line starts: the hole a writer without
		 * O_APPEND leaves after copytruncate, however long. Not log
		 * text: dropped before the line is measured.
		 */
		if (!f->long_line && f->len > 0 && f->buf[0] == '\0') {
			size_t z = 0;

			while (z < f->len && f->buf[z] == '\0')
				z++;
			memmove(f->buf, f->buf + z, f->len - z);
			f->len -= z;
			f->off += (off_t)z;
			continue;
		}
		nl = f->len ? memchr(f->buf, '\n', f->len) : NULL;
		if (nl == NULL && f->len > MT_DLV_LINE_MAX && f->long_line) {
			f->off += (off_t)f->len;	/* more of the same line */
			f->len = 0;
		} else if (nl == NULL && f->len > MT_DLV_LINE_MAX) {
			/* Overlong: hand out the head, drop the rest. */
			*line = f->buf;
			*len = MT_DLV_LINE_MAX;
			*cut = 1;
			f->off += (off_t)f->len;
			f->pending = f->len;
			f->long_line = 1;
			return 1;
		}
		if (nl != NULL) {
			n = (size_t)(nl - f->buf) + 1;
			f->off += (off_t)n;
			if (f->long_line) {	/* tail of an overlong line */
				f->long_line = 0;
				memmove(f->buf, f->buf + n, f->len - n);
				f->len -= n;
				continue;
			}
			*line = f->buf;
			*len = n - 1;
			if (*len > 0 && f->buf[*len - 1] == '\r')
				(*len)--;
			f->pending = n;
			if (*len == 0) {	/* a blank line */
				memmove(f->buf, f->buf + n, f->len - n);
				f->len -= n;
				f->pending = 0;
				continue;
			}
			return 1;
		}
		if (f->eof_seen)
			check_truncation(f);
		rc = fill(f);
		if (rc < 0)
			return -1;
		if (rc == 0) {
			if (check_truncation(f) || check_rename(f))
				continue;
			return 0;
		}
	}
}

int
mt_state_write(const char *state, const char *text)
{
	char tmp[4096];
	FILE *fp;
	int ok, saved;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", state) >= (int)sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fp = fopen(tmp, "w")) == NULL)
		return -1;
	ok = fputs(text, fp) >= 0;
	ok = fflush(fp) == 0 && ok;
	ok = fsync(fileno(fp)) == 0 && ok;
	ok = fclose(fp) == 0 && ok;
	if (!ok || rename(tmp, state) != 0) {
		saved = errno;
		unlink(tmp);
		errno = saved;
		return -1;
	}
	return 0;
}

int
mt_follow_save(const struct mt_follow *f, const char *state)
{
	char text[64];

	if (f->path == NULL || state == NULL)
		return 0;
	snprintf(text, sizeof(text), "%ju %jd\n", (uintmax_t)f->ino,
	    (intmax_t)f->off);
	return mt_state_write(state, text);
}

void
mt_follow_close(struct mt_follow *f)
{
	if (f->fd > 0)
		close(f->fd);
	f->fd = -1;
	free(f->path);
	free(f->buf);
	f->path = NULL;
	f->buf = NULL;
}
