/*
 * Read receipts are attacker-controlled mail: any bytes must parse to a
 * verdict without crashing or leaking, and what comes out is clean text.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "../../mdn/mdn.h"

static void
check_clean(const char *s, size_t size)
{
	size_t n = strnlen(s, size);

	if (n == size)
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	struct mt_mdn m;
	char err[256];
	int rc;

	if (!ready) {
		mt_mdn_init();
		ready = 1;
	}
	{
		/* The Subject: text for the record: clean, bounded, whole
		 * characters. */
		char subj[65];
		size_t n = mt_mdn_header_text(subj, sizeof(subj),
		    (const char *)data, size);

		if (n >= sizeof(subj) || strlen(subj) != n ||
		    !g_utf8_validate(subj, (gssize)n, NULL))
			abort();
		check_clean(subj, sizeof(subj));
	}
	rc = mt_mdn_parse((const char *)data, size, &m, err, sizeof(err));
	if (rc < -1 || rc > 1)
		abort();
	if (rc == 1) {
		check_clean(m.final_rcpt, sizeof(m.final_rcpt));
		check_clean(m.orig_rcpt, sizeof(m.orig_rcpt));
		check_clean(m.orig_msgid, sizeof(m.orig_msgid));
		check_clean(m.disposition, sizeof(m.disposition));
		check_clean(m.ua, sizeof(m.ua));
		check_clean(m.mt_id, sizeof(m.mt_id));
		if (m.final_rcpt[0] == '\0' || m.type[0] == '\0')
			abort();
	}
	return 0;
}
