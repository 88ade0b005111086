/*
 * Header values from the network: cleaning for re-use in headers and logs,
 * and tracking-ID verification. Checks the promises, not just "no crash":
 * no CR/LF/NUL/controls out, and never past 998 octets. Also header names:
 * each input line's name goes through the X-Mailtrail-* counter, whose
 * counts must add up and stay within its bounds.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../../common/mthdr.h"
#include "../../common/text.h"
#include "../../common/trackid.h"

static const unsigned char key[] = "fuzz-key-fuzz-key-fuzz-key-32byt";

/* Names are the bytes before ':' of each line, as libmilter hands them. */
static void
check_names(const uint8_t *data, size_t size)
{
	struct mt_mthdr_seen s = { 0 };
	char name[MT_MTHDR_NAME_LEN * 2];
	size_t i = 0, n_other_total = 0;

	while (i < size) {
		size_t len = 0;

		while (i < size && data[i] != '\n' && data[i] != ':') {
			if (len < sizeof(name) - 1 && data[i] != '\0')
				name[len++] = (char)data[i];
			i++;
		}
		name[len] = '\0';
		while (i < size && data[i] != '\n')
			i++;
		i++;
		mt_mthdr_note(&s, name);
	}
	if (s.n_other > MT_MTHDR_NAMES_MAX)
		abort();
	for (size_t k = 0; k < s.n_other; k++) {
		if (s.other[k].count < 1 ||
		    strncasecmp(s.other[k].name, MT_MTHDR_PREFIX,
		    sizeof(MT_MTHDR_PREFIX) - 1) != 0)
			abort();
		n_other_total += (size_t)s.other[k].count;
	}
	if (!s.over && (size_t)(s.n_id + s.n_sender + s.n_hop) +
	    n_other_total != (size_t)s.total)
		abort();
	if (!s.over && s.total > MT_MTHDR_TOTAL_MAX)
		abort();
	mt_mthdr_free(&s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char hdr[MT_HDR_LINE_MAX + 1], log[512], id[MT_ID_SIZE];
	size_t n;

	n = mt_text_header(hdr, sizeof(hdr), (const char *)data, size);
	if (n > MT_HDR_LINE_MAX || n != strlen(hdr))
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)hdr[i] < 0x20 || hdr[i] == 0x7f)
			abort();
	n = mt_text_log(log, sizeof(log), (const char *)data, size);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)log[i] < 0x20 || (unsigned char)log[i] > 0x7e)
			abort();
	if (mt_id_verify(key, sizeof(key) - 1, (const char *)data, size, id)) {
		if (strlen(id) != MT_ID_LEN || mt_id_time(id) < 0)
			abort();
	}
	check_names(data, size);
	return 0;
}
