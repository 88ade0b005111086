/*
 * The durable spool: one JSON record per file in SpoolDir, named
 * TIME-SEQ-ID-QID.rec so a plain sort is arrival order. Writes are made
 * durable before returning; reads treat the files as untrusted.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "spool.h"

#define TMP_PREFIX ".tmp-"
#define CORRUPT_DIR "corrupt"
#define STALE_TMP_SECONDS 60
/* Above what MT_RECORD_* limits allow a record to serialize to. */
#define SPOOL_FILE_MAX (48u * 1024 * 1024)

static unsigned spool_seq;	/* tie-breaker for names within a microsecond */

/* Temp files of a crashed writer; a live writer's are younger than this. */
static void
spool_drop_stale_tmp(struct mt_spool *sp)
{
	DIR *d;
	struct dirent *e;
	struct stat st;
	int fd;

	if ((fd = dup(sp->dirfd)) < 0 || (d = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) != 0)
			continue;
		if (fstatat(sp->dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    st.st_mtime + STALE_TMP_SECONDS < time(NULL))
			unlinkat(sp->dirfd, e->d_name, 0);
	}
	closedir(d);
}

int
mt_spool_open(struct mt_spool *sp, const char *dir, char *err, size_t errlen)
{
	memset(sp, 0, sizeof(*sp));
	sp->dirfd = sp->lockfd = -1;
	if (dir == NULL || *dir == '\0') {
		snprintf(err, errlen, "SpoolDir is empty");
		return -1;
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "SpoolDir %s: %s", dir, strerror(errno));
		return -1;
	}
	if ((sp->dir = strdup(dir)) == NULL ||
	    (sp->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "SpoolDir %s: %s", dir, strerror(errno));
		mt_spool_close(sp);
		return -1;
	}
	if ((mkdirat(sp->dirfd, CORRUPT_DIR, 0700) != 0 && errno != EEXIST) ||
	    (sp->lockfd = openat(sp->dirfd, ".lock",
	    O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0) {
		snprintf(err, errlen, "SpoolDir %s: %s", dir, strerror(errno));
		mt_spool_close(sp);
		return -1;
	}
	spool_drop_stale_tmp(sp);
	return 0;
}

void
mt_spool_close(struct mt_spool *sp)
{
	if (sp->lockfd >= 0)
		close(sp->lockfd);
	if (sp->dirfd >= 0)
		close(sp->dirfd);
	free(sp->dir);
	memset(sp, 0, sizeof(*sp));
	sp->dirfd = sp->lockfd = -1;
}

static int
write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		if ((w = write(fd, p, n)) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* TIME(us)-SEQ-ID-QID.rec; the queue ID is filtered to be file-name safe. */
static void
spool_name(char *buf, size_t size, const struct mt_record *r, unsigned seq)
{
	struct timespec ts;
	char qid[MT_RECORD_QID_MAX + 1];
	size_t i, n = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	for (i = 0; r->qid != NULL && r->qid[i] != '\0' && n < MT_RECORD_QID_MAX;
	    i++)
		if ((r->qid[i] >= '0' && r->qid[i] <= '9') ||
		    (r->qid[i] >= 'A' && r->qid[i] <= 'Z') ||
		    (r->qid[i] >= 'a' && r->qid[i] <= 'z'))
			qid[n++] = r->qid[i];
	qid[n] = '\0';
	snprintf(buf, size, "%016" PRIx64 "-%08x-%.43s-%s.rec",
	    (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000, seq,
	    r->id, n ? qid : "NOQUEUE");
}

int
mt_spool_write(struct mt_spool *sp, const struct mt_record *r, char *err,
    size_t errlen)
{
	char tmp[64], name[256], *text;
	unsigned seq = __atomic_fetch_add(&spool_seq, 1, __ATOMIC_RELAXED);
	int fd, saved;

	if ((text = mt_record_serialize(r)) == NULL) {
		snprintf(err, errlen, "cannot serialize record (out of memory?)");
		return -1;
	}
	snprintf(tmp, sizeof(tmp), TMP_PREFIX "%ld-%08x", (long)getpid(), seq);
	spool_name(name, sizeof(name), r, seq);
	fd = openat(sp->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
	    O_NOFOLLOW, 0600);
	if (fd < 0 || write_all(fd, text, strlen(text)) != 0 || fsync(fd) != 0 ||
	    close(fd) != 0 || (fd = -1, renameat(sp->dirfd, tmp, sp->dirfd,
	    name) != 0) || fsync(sp->dirfd) != 0) {
		saved = errno;
		if (fd >= 0)
			close(fd);
		unlinkat(sp->dirfd, tmp, 0);
		snprintf(err, errlen, "cannot spool to %s: %s", sp->dir,
		    strerror(saved));
		free(text);
		return -1;
	}
	free(text);
	return 0;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
is_record_name(const char *s)
{
	size_t n = strlen(s);

	return s[0] != '.' && n > 4 && strcmp(s + n - 4, ".rec") == 0;
}

int
mt_spool_list(struct mt_spool *sp, char ***names, size_t *n)
{
	DIR *d;
	struct dirent *e;
	char **v = NULL, **nv;
	size_t cap = 0, k = 0;
	int fd;

	*names = NULL;
	*n = 0;
	if ((fd = openat(sp->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		if (!is_record_name(e->d_name))
			continue;
		if (k == cap) {
			cap = cap ? cap * 2 : 64;
			if ((nv = realloc(v, cap * sizeof(*v))) == NULL)
				break;
			v = nv;
		}
		if ((v[k] = strdup(e->d_name)) == NULL)
			break;
		k++;
	}
	closedir(d);
	if (k > 0)
		qsort(v, k, sizeof(*v), name_cmp);
	*names = v;
	*n = k;
	return 0;
}

void
mt_spool_names_free(char **names, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* Whole file into a malloc'd buffer; -1 damaged, -2 out of memory. */
static int
read_file(int fd, char **buf, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	size_t got = 0;
	ssize_t r;

	if (fstat(fd, &st) != 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    (uint64_t)st.st_size > SPOOL_FILE_MAX) {
		snprintf(err, errlen, "%s", S_ISREG(st.st_mode) ?
		    "empty or oversized file" : "not a regular file");
		return -1;
	}
	if ((*buf = malloc((size_t)st.st_size)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -2;
	}
	while (got < (size_t)st.st_size) {
		r = read(fd, *buf + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	if (got != (size_t)st.st_size) {
		snprintf(err, errlen, "short read: %s", r < 0 ? strerror(errno)
		    : "file shrank");
		free(*buf);
		*buf = NULL;
		return -1;	/* written whole and renamed: this is damage */
	}
	*len = got;
	return 0;
}

int
mt_spool_read(struct mt_spool *sp, const char *name, struct mt_record *r,
    char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	int fd, rc;

	memset(r, 0, sizeof(*r));
	fd = openat(sp->dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
	    O_NONBLOCK);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open: %s", strerror(errno));
		/*
		 * Gone: another replayer took it. Anything else (a planted
		 * symlink, a file we may not read) will not heal by waiting,
		 * and waiting would keep every later record in the spool.
		 */
		return errno == ENOENT ? -3 : -1;
	}
	rc = read_file(fd, &buf, &len, err, errlen);
	close(fd);
	if (rc == 0 && mt_record_parse(buf, len, r, err, errlen) != 0)
		rc = -1;
	free(buf);
	return rc;
}

int
mt_spool_remove(struct mt_spool *sp, const char *name)
{
	return unlinkat(sp->dirfd, name, 0) == 0 || errno == ENOENT ? 0 : -1;
}

int
mt_spool_quarantine(struct mt_spool *sp, const char *name, char *err,
    size_t errlen)
{
	char dst[512];

	snprintf(dst, sizeof(dst), CORRUPT_DIR "/%s", name);
	if (renameat(sp->dirfd, name, sp->dirfd, dst) != 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		return -1;
	}
	return 0;
}

int
mt_spool_trylock(struct mt_spool *sp)
{
	return flock(sp->lockfd, LOCK_EX | LOCK_NB) == 0;
}

void
mt_spool_unlock(struct mt_spool *sp)
{
	flock(sp->lockfd, LOCK_UN);
}
