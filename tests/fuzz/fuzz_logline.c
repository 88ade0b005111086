/*
 * Postfix log lines: the parser must return one of its kinds for any bytes,
 * stay in its fixed buffers, hand out only clean text (no controls) that
 * makes valid event JSON, and nothing at all of a line from a foreign tag;
 * a requeue (pickup's orig_id=) is two plain queue IDs from pickup.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../delivery/delivery.h"

static void
check_clean(const char *s, size_t size)
{
	size_t n = strnlen(s, size);

	if (n == size)
		abort();	/* not NUL-terminated */
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char pf[] = "postfix", pf_out1[] = "postfix-out1";
	static char *const names[] = { pf, pf_out1 };
	struct mt_dlv d;
	char *json;
	enum mt_dlv_kind rc = mt_dlv_parse((const char *)data, size,
	    1795302000000LL, names, 2, &d);

	if (rc < MT_DLV_BAD || rc > MT_DLV_REQUEUE)
		abort();
	if (rc == MT_DLV_REQUEUE) {	/* two queue IDs, nothing else */
		check_clean(d.qid, sizeof(d.qid));
		check_clean(d.orig_qid, sizeof(d.orig_qid));
		if (d.qid[0] == '\0' || d.orig_qid[0] == '\0' ||
		    d.orig_qid[strspn(d.orig_qid, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "abcdefghijklmnopqrstuvwxyz")] != '\0' || d.rcpt[0] != '\0')
			abort();
		check_clean(d.service, sizeof(d.service));
		return 0;
	}
	if (rc == MT_DLV_FOREIGN && (d.qid[0] != '\0' || d.rcpt[0] != '\0'))
		abort();	/* nothing of a foreign line may be used */
	if (rc != MT_DLV_RESULT)
		return 0;
	check_clean(d.service, sizeof(d.service));
	check_clean(d.qid, sizeof(d.qid));
	check_clean(d.rcpt, sizeof(d.rcpt));
	check_clean(d.orig_rcpt, sizeof(d.orig_rcpt));
	check_clean(d.relay, sizeof(d.relay));
	check_clean(d.dsn, sizeof(d.dsn));
	check_clean(d.text, sizeof(d.text));
	if (d.qid[0] == '\0' || (d.rcpt[0] == '\0' && !d.whole_message))
		abort();
	if (strncmp(d.service, "postfix/", 8) != 0 &&
	    strncmp(d.service, "postfix-out1/", 13) != 0)
		abort();	/* a result only from a configured name */
	json = mt_dlv_event_json(&d, d.t_ms);
	if (json == NULL)
		abort();
	free(json);
	return 0;
}
