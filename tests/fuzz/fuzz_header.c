/*
 * Header values from the network: cleaning for re-use in headers and logs,
 * and tracking-ID verification. Checks the promises, not just "no crash":
 * no CR/LF/NUL/controls out, and never past 998 octets.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/text.h"
#include "../../common/trackid.h"

static const unsigned char key[] = "fuzz-key-fuzz-key-fuzz-key-32byt";

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
	return 0;
}
