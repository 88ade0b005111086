/*
 * Scheduled sending: the same bytes as a postqueue -j line, an
 * X-Mailtrail-Hold value and a postcat -h header block. Every string out is
 * NUL-terminated in its buffer, valid UTF-8 and free of controls; counts
 * agree; nothing is handed out on failure; a marker that parses comes back
 * the same after format and parse.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../schedule/schedule.h"

static void
check_clean(const char *s, size_t size)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strnlen(s, size), i = 0, k;

	if (n == size)
		abort();	/* not NUL-terminated */
	while (i < n) {
		if (p[i] < 0x20 || p[i] == 0x7f)
			abort();
		k = p[i] < 0x80 ? 1 : p[i] >= 0xc2 && p[i] < 0xe0 ? 2 :
		    p[i] >= 0xe0 && p[i] < 0xf0 ? 3 :
		    p[i] >= 0xf0 && p[i] < 0xf5 ? 4 : 0;
		if (k == 0 || i + k > n)
			abort();
		for (size_t j = 1; j < k; j++)
			if ((p[i + j] & 0xc0) != 0x80)
				abort();
		i += k;
	}
}

static void
check_qid(const char *qid)
{
	size_t n = strnlen(qid, MT_SCHED_QID_MAX);

	if (n == 0 || n >= MT_SCHED_QID_MAX)
		abort();
	for (size_t i = 0; i < n; i++)
		if (!((qid[i] >= '0' && qid[i] <= '9') ||
		    (qid[i] >= 'A' && qid[i] <= 'Z') ||
		    (qid[i] >= 'a' && qid[i] <= 'z')))
			abort();
}

static void
check_entry(const char *buf, size_t size)
{
	static struct mt_sched_entry e;	/* 51 kB: kept off the stack */

	if (mt_sched_entry_parse(buf, size, &e) != 0) {
		if (e.queue_name[0] != '\0' || e.qid[0] != '\0' ||
		    e.sender[0] != '\0' || e.nrcpt != 0 || e.nkept != 0 ||
		    e.arrival != -1)
			abort();
		return;
	}
	check_clean(e.queue_name, sizeof(e.queue_name));
	check_qid(e.qid);
	check_clean(e.sender, sizeof(e.sender));
	if (e.arrival < -1 || e.nkept > MT_SCHED_RCPT_MAX ||
	    e.nkept > e.nrcpt ||
	    (e.nrcpt <= MT_SCHED_RCPT_MAX && e.nkept != e.nrcpt))
		abort();
	for (size_t i = 0; i < e.nkept; i++)
		check_clean(e.rcpt[i], sizeof(e.rcpt[i]));
}

static void
check_hold(const char *buf, size_t size)
{
	char qid[MT_SCHED_QID_MAX], qid2[MT_SCHED_QID_MAX], out[256];
	int64_t t, t2;

	if (mt_sched_hold_parse(buf, size, &t, qid, sizeof(qid)) != 0) {
		if (t != -1 || qid[0] != '\0')
			abort();
		return;
	}
	check_qid(qid);
	if (t < 0 || t > INT64_C(999999999999))
		abort();
	if (mt_sched_hold_format(out, sizeof(out), t, qid) != 0)
		abort();
	check_clean(out, sizeof(out));
	if (mt_sched_hold_parse(out, strlen(out), &t2, qid2,
	    sizeof(qid2)) != 0 || t2 != t || strcmp(qid, qid2) != 0)
		abort();
}

static void
check_headers(const char *buf, size_t size)
{
	struct mt_sched_headers h;
	int rc = mt_sched_headers_scan(buf, size, &h);
	size_t n;

	check_clean(h.id, sizeof(h.id));
	check_clean(h.hold, sizeof(h.hold));
	check_clean(h.dd, sizeof(h.dd));
	check_clean(h.subject, sizeof(h.subject));
	if (h.n_id < 0 || h.n_hold < 0 || h.n_dd < 0 ||
	    (h.n_id == 0 && h.id[0] != '\0') ||
	    (h.n_hold == 0 && h.hold[0] != '\0') ||
	    (h.n_dd == 0 && h.dd[0] != '\0'))
		abort();
	if (rc != 0 && (h.n_id || h.n_hold || h.n_dd || h.subject[0]))
		abort();
	n = strlen(h.id);
	if (n > 64 || strspn(h.id, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != n)
		abort();
	check_hold(h.hold, strlen(h.hold));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy, so that a read past size is caught. */
	char *buf = malloc(size ? size : 1);

	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	check_entry(buf, size);
	check_hold(buf, size);
	check_headers(buf, size);
	free(buf);
	return 0;
}
