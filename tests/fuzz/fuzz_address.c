/*
 * Envelope addresses from MAIL FROM / RCPT TO, normalised for Redis keys:
 * bounded output, no controls, brackets stripped once.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/text.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[256];
	size_t n = mt_text_address(out, sizeof(out), (const char *)data, size);

	if (n == (size_t)-1)
		return 0;
	if (n >= sizeof(out) || n != strlen(out) || n == 0)
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
			abort();
	return 0;
}
