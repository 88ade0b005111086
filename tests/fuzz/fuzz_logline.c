/*
 * Postfix log lines: the parser must return -1/0/1 for any bytes, stay in
 * its fixed buffers, and hand out only clean text (no controls) that makes
 * valid event JSON.
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
	struct mt_dlv d;
	char *json;
	int rc = mt_dlv_parse((const char *)data, size, 1795302000000LL, &d);

	if (rc < -1 || rc > 1)
		abort();
	if (rc != 1)
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
	json = mt_dlv_event_json(&d, d.t_ms);
	if (json == NULL)
		abort();
	free(json);
	return 0;
}
