/*
 * The socketmap request stream as mailtrail-routed reads it: netstrings
 * parsed one after another from untrusted bytes, each key then used for a
 * route choice and echoed into a reply. Any crash, overread or a request
 * that points outside the input is a bug.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../route/route.h"

static struct mt_selector *sel;

static void
make_selector(void)
{
	static struct mt_route v[2];
	struct mt_routes rs = { v, 2 };
	char err[128];

	if (mt_route_parse("r1 bind=127.0.0.11 helo=r1.test weight=1", &v[0],
	    err, sizeof(err)) != 0 ||
	    mt_route_parse("r2 bind=127.0.0.12 helo=r2.test weight=2", &v[1],
	    err, sizeof(err)) != 0)
		abort();
	sel = mt_selector_new(&rs, 1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	size_t off = 0;
	char err[128], out[512], dom[300];

	if (sel == NULL)
		make_selector();
	while (off < size) {
		struct mt_socketmap_req q;
		long n = mt_socketmap_parse(buf + off, size - off, &q, err,
		    sizeof(err));

		if (n <= 0)
			break;
		if ((size_t)n > size - off || q.name < buf + off ||
		    q.key + q.key_len > buf + off + (size_t)n ||
		    q.name_len == 0 || q.key_len > MT_SOCKETMAP_MAX)
			abort();
		if (mt_route_sender_domain(q.key, q.key_len, dom,
		    sizeof(dom)) >= sizeof(dom))
			abort();
		if (mt_route_pick(sel, q.key, q.key_len, 1, NULL, NULL, err,
		    sizeof(err)) < 0)
			abort();
		{
			char key[128];
			size_t kl = q.key_len < sizeof(key) - 1 ? q.key_len :
			    sizeof(key) - 1;
			size_t rl;

			memcpy(key, q.key, kl);
			key[kl] = '\0';
			rl = mt_socketmap_reply(out, sizeof(out), "PERM", key);
			if (rl == 0 || rl != strlen(out) || out[rl - 1] != ',')
				abort();
		}
		off += (size_t)n;
	}
	return 0;
}
