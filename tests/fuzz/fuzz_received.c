/*
 * Received: values from anyone on the Internet: bounded scan, outputs
 * within their buffers, and any address returned is a real address.
 */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../geo/geo.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mt_received r;
	unsigned char a[16];

	if (mt_received_parse((const char *)data, size, &r) < 0)
		return 0;
	if (strlen(r.from_host) >= MT_HOST_MAX || strlen(r.by_host) >= MT_HOST_MAX)
		abort();
	if (strpbrk(r.from_host, "\r\n") || strpbrk(r.by_host, "\r\n"))
		abort();
	if (r.ip[0] && inet_pton(AF_INET, r.ip, a) != 1 &&
	    inet_pton(AF_INET6, r.ip, a) != 1)
		abort();
	return 0;
}
