/*
 * The durable local spool behind the store (private to state/): one file
 * per record, named so that byte order is arrival order, written with
 * temp file + fsync + rename + fsync(dir) so a crash never leaves half a
 * record under a .rec name.
 */
#ifndef MT_SPOOL_H
#define MT_SPOOL_H

#include <stddef.h>

#include "record.h"

struct mt_spool {
	char *dir;
	int dirfd;		/* for fsync(dir) and *at() calls */
	int lockfd;		/* SPOOLDIR/.lock: one replayer at a time */
};

/* Creates dir (0700) and dir/corrupt if missing, drops stale temp files. */
int mt_spool_open(struct mt_spool *sp, const char *dir, char *err,
    size_t errlen);
void mt_spool_close(struct mt_spool *sp);

/* Durable before it returns; 0 or -1 with err. */
int mt_spool_write(struct mt_spool *sp, const struct mt_record *r, char *err,
    size_t errlen);

/* Names of the *.rec files, oldest first; the caller frees with _names_free. */
int mt_spool_list(struct mt_spool *sp, char ***names, size_t *n);
void mt_spool_names_free(char **names, size_t n);

/*
 * Reads and parses one file. 0 ok; -1 the file is damaged: corrupt,
 * unreadable or not a plain file (reason in err), to be quarantined;
 * -2 out of memory, try again later; -3 it is gone (replayed elsewhere).
 */
int mt_spool_read(struct mt_spool *sp, const char *name,
    struct mt_record *r, char *err, size_t errlen);
int mt_spool_remove(struct mt_spool *sp, const char *name);
/* Moves name into corrupt/; 0 or -1 with err. */
int mt_spool_quarantine(struct mt_spool *sp, const char *name, char *err,
    size_t errlen);

/* Non-blocking flock on .lock: 1 taken, 0 held by someone else. */
int mt_spool_trylock(struct mt_spool *sp);
void mt_spool_unlock(struct mt_spool *sp);

#endif
