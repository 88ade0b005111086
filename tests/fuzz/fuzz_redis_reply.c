/*
 * What the Cluster and Sentinel layers read from servers: MOVED/ASK error
 * texts, CLUSTER SLOTS, SENTINEL get-master-addr-by-name and ROLE replies
 * (the input is fed to hiredis' reply reader as RESP, as it would arrive).
 * Checks the promises: slots and ports in range, every slot mapped to a
 * known node or none, hosts NUL-terminated and clean.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>

#include "../../state/cluster.h"
#include "../../state/sentinel.h"

static struct mt_cluster_map map;

static void
check_host(const char *h)
{
	size_t n = strnlen(h, MT_CLUSTER_HOST_MAX);

	if (n == MT_CLUSTER_HOST_MAX)
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)h[i] <= ' ' || (unsigned char)h[i] >= 0x7f)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mt_cluster_redirect rd;
	struct mt_redis_endpoint asked = { "127.0.0.1", 7000 };
	redisReader *rr;
	void *reply = NULL;
	char err[256];

	if (mt_cluster_parse_redirect((const char *)data, size, &rd) == 0) {
		if (rd.slot >= MT_CLUSTER_SLOTS || rd.port < 1 ||
		    rd.port > 65535)
			abort();
		check_host(rd.host);
	}
	(void)mt_cluster_slot((const char *)data, size);
	rr = redisReaderCreate();
	if (rr == NULL)
		return 0;
	if (redisReaderFeed(rr, (const char *)data, size) == REDIS_OK &&
	    redisReaderGetReply(rr, &reply) == REDIS_OK && reply != NULL) {
		if (mt_cluster_parse_slots(reply, &asked, &map, err,
		    sizeof(err)) == 0) {
			if (map.nnodes > MT_CLUSTER_NODES_MAX)
				abort();
			for (size_t i = 0; i < map.nnodes; i++) {
				check_host(map.node[i].host);
				if (map.node[i].port < 1 ||
				    map.node[i].port > 65535)
					abort();
			}
			for (size_t s = 0; s < MT_CLUSTER_SLOTS; s++)
				if (map.slot_node[s] < -1 ||
				    map.slot_node[s] >= (int)map.nnodes)
					abort();
		}
		if (mt_sentinel_parse_master(reply, &asked) == 0) {
			check_host(asked.host);
			if (asked.port < 1 || asked.port > 65535)
				abort();
		}
		(void)mt_sentinel_is_master(reply);
		freeReplyObject(reply);
	}
	redisReaderFree(rr);
	return 0;
}
