/*
 * X-Mailtrail-Hop values (written by our MTAs, but a header is a header):
 * parse, write back, and the written value parses to the same hop and
 * fits a header line.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../geo/geo.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mt_hop h, back;
	char value[1200];
	char *json;
	size_t n;

	if (mt_hop_parse((const char *)data, size, &h) < 0)
		return 0;
	n = mt_hop_format(&h, value, sizeof(value));
	if (n > 981 || n != strlen(value) || strpbrk(value, "\r\n"))
		abort();
	if (mt_hop_parse(value, n, &back) < 0 || back.n != h.n ||
	    strcmp(back.ip, h.ip) != 0 || back.loc.found != h.loc.found)
		abort();
	json = mt_hop_path_json(&h, 1);
	if (json == NULL)
		abort();
	free(json);
	return 0;
}
