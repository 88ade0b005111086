/*
 * Store benchmark driver: writes synthetic trace records through the real
 * store (state/store.c) into whatever Redis the configuration names (one
 * server, Sentinel or Cluster) from several threads, then optionally
 * applies status events to them through the real events code. Prints one
 * JSON line of figures; tests/bench/redis_bench.py makes tables of them.
 *
 *   store_bench -c CONF [-n RECORDS] [-r RCPTS] [-t THREADS] [-e EVENTS]
 *               [-s SEED] [-x]
 *
 * Records are named by SEED (IDs, queue IDs, Message-IDs, recipients), so
 * a second run with the same seed and -x applies events to the records of
 * the first without writing them again: that is how the memory an event
 * costs is measured apart from the memory of its message.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../common/clock.h"
#include "../../common/config.h"
#include "../../state/events.h"
#include "../../state/store.h"

#define SENDERS 20		/* senders repeat, as on a real site */
#define MAX_THREADS 256

struct opts {
	const char *conf;
	long records, rcpts, threads, events;
	uint64_t seed;
	int events_only;
};

static struct opts o = { NULL, 1000, 1, 4, 0, 0, 0 };
static struct mt_store *st;
static long n_failed, n_spooled;

static void
report(int prio, const char *msg)
{
	(void)prio;
	fprintf(stderr, "store_bench: %s\n", msg);
}

static uint64_t
splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* A tracking-ID-shaped string: 26 of [0-9a-v], '.', 16 more (no real
 * tag: the store checks the form, not the key). */
static void
make_id(char *out, long i)
{
	static const char a[] = "0123456789abcdefghijklmnopqrstuv";
	uint64_t x = splitmix64(o.seed ^ ((uint64_t)i << 20));

	for (int k = 0; k < 43; k++) {
		if (k % 12 == 0)
			x = splitmix64(x + (uint64_t)k);
		out[k] = k == 26 ? '.' : a[x & 31];
		x >>= 5;
	}
	out[43] = '\0';
}

static void
make_qid(char *out, size_t len, long i)
{
	snprintf(out, len, "B%06X%lX", (unsigned)(o.seed & 0xffffff), i);
}

static void
make_rcpt(char *out, size_t len, long i, long k)
{
	snprintf(out, len, "r%ld.%ld.%x@dest%ld.example", i, k,
	    (unsigned)(o.seed & 0xffff), k % 50);
}

/* What the milter stores for a LAN submission: one hop, its own. */
static void
fill(struct mt_record *r, long i)
{
	char buf[512], t[32];
	time_t now = time(NULL);

	memset(r, 0, sizeof(*r));
	make_id(r->id, i);
	make_qid(buf, sizeof(buf), i);
	r->qid = strdup(buf);
	snprintf(buf, sizeof(buf), "%ld.%x.bench@ws17.client.bench.example", i,
	    (unsigned)(o.seed & 0xffff));
	r->msgid = strdup(buf);
	snprintf(buf, sizeof(buf), "Re: figures for the Paris office, week %ld",
	    i % 53);
	r->subject = strdup(buf);
	r->inbound = 0;
	snprintf(buf, sizeof(buf), "user%ld@client.bench.example", i % SENDERS);
	r->sender = strdup(buf);
	/* a typical subject: about 40 bytes */
	snprintf(buf, sizeof(buf), "Quarterly figures, draft %ld for review", i);
	r->subject = strdup(buf);
	r->nrcpt = (size_t)o.rcpts;
	r->rcpt = calloc(r->nrcpt, sizeof(*r->rcpt));
	for (long k = 0; k < o.rcpts; k++) {
		make_rcpt(buf, sizeof(buf), i, k);
		r->rcpt[k] = strdup(buf);
	}
	r->client_ip = strdup("192.0.2.17");
	r->client_name = strdup("ws17.client.bench.example");
	r->helo = strdup("ws17.client.bench.example");
	r->have_geo = 1;
	r->lat = 48.8566;
	r->lon = 2.3522;
	r->cc = strdup("FR");
	r->city = strdup("Paris");
	r->hops = 1;
	strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
	snprintf(buf, sizeof(buf), "[{\"n\":1,\"by\":\"mx1.bench.example\","
	    "\"ip\":\"192.0.2.17\",\"lat\":48.8566,\"lon\":2.3522,\"cc\":\"FR\","
	    "\"city\":\"Paris\",\"src\":\"milter\",\"trust\":\"verified\","
	    "\"t\":\"%s\"}]", t);
	r->hop_path = strdup(buf);
	r->size = 4096;
	r->received_ms = mt_clock_ms(CLOCK_REALTIME);
	r->by = strdup("mx1.bench.example");
}

static void *
writer(void *arg)
{
	long t = (long)(intptr_t)arg;
	struct mt_record r;
	char err[512];

	for (long i = t; i < o.records; i += o.threads) {
		fill(&r, i);
		switch (mt_store_put(st, &r, err, sizeof(err))) {
		case MT_STORE_REDIS:
			break;
		case MT_STORE_SPOOL:
			__atomic_add_fetch(&n_spooled, 1, __ATOMIC_RELAXED);
			break;
		default:
			__atomic_add_fetch(&n_failed, 1, __ATOMIC_RELAXED);
			fprintf(stderr, "store_bench: record %ld: %s\n", i, err);
		}
		mt_record_free(&r);
	}
	return NULL;
}

/* ---- events: the only part that calls state/events.h ----------------- */

#define EV_BATCH 256		/* as logwatch hands them over */

struct ev_batch {
	struct mt_event e[EV_BATCH];
	enum mt_event_result res[EV_BATCH];
	char qid[EV_BATCH][32];
	char rcpt[EV_BATCH][128];
	char fp[EV_BATCH][MT_EVENTS_FP_SIZE];
	char json[EV_BATCH][320];
	size_t n;
	long sent, changed, failed;
};

static void
flush_events(struct mt_events *evs, struct ev_batch *b)
{
	char err[512];

	if (b->n == 0)
		return;
	b->sent += (long)b->n;
	if (mt_events_record(evs, b->e, b->n, b->res, NULL, err,
	    sizeof(err)) != 0) {
		fprintf(stderr, "store_bench: events: %s\n", err);
		b->failed += (long)b->n;
	} else
		for (size_t j = 0; j < b->n; j++)
			b->changed += b->res[j] == MT_EV_CHANGED;
	b->n = 0;
}

/*
 * o.events events per recipient of every record, found by queue ID as
 * logwatch finds them: DEFERs (status deferred), then one SEND (sent).
 */
static int
apply_events(const struct mt_config *cfg, struct ev_batch *b)
{
	struct mt_events *evs;
	char err[512];

	if ((evs = mt_events_new(cfg, err, sizeof(err))) == NULL) {
		fprintf(stderr, "store_bench: %s\n", err);
		return -1;
	}
	for (long i = 0; i < o.records; i++)
		for (long k = 0; k < o.rcpts; k++)
			for (long v = 0; v < o.events; v++) {
				int last = v == o.events - 1;
				size_t n = b->n++;
				char addr[sizeof(b->rcpt[0])];

				make_qid(b->qid[n], sizeof(b->qid[n]), i);
				make_rcpt(addr, sizeof(addr), i, k);
				memcpy(b->rcpt[n], addr, sizeof(addr));
				snprintf(b->json[n], sizeof(b->json[n]),
				    "{\"t\":%lld,\"ev\":\"%s\",\"rcpt\":\"%s\","
				    "\"relay\":\"mx.dest%ld.example"
				    "[198.51.100.%ld]:25\",\"dsn\":\"%s\","
				    "\"route\":\"out%ld\"}",
				    (long long)mt_clock_ms(CLOCK_REALTIME) + v,
				    last ? "SEND" : "DEFER", addr, k % 50,
				    k % 250 + 1, last ? "2.0.0" : "4.4.1", k % 4);
				mt_events_fingerprint(b->json[n],
				    strlen(b->json[n]), b->fp[n]);
				b->e[n] = (struct mt_event){ .find = MT_FIND_QID,
				    .key = b->qid[n],
				    .ev = last ? "SEND" : "DEFER",
				    .rcpt = b->rcpt[n],
				    .status = last ? "sent" : "deferred",
				    .fingerprint = b->fp[n], .json = b->json[n] };
				if (b->n == EV_BATCH)
					flush_events(evs, b);
			}
	flush_events(evs, b);
	mt_events_free(evs);
	return 0;
}

/* ---- end of the events part ------------------------------------------- */

static void
usage(void)
{
	fprintf(stderr, "usage: store_bench -c CONF [-n RECORDS] [-r RCPTS] "
	    "[-t THREADS] [-e EVENTS_PER_RCPT] [-s SEED] [-x]\n");
	exit(2);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
write_records(void)
{
	pthread_t th[MAX_THREADS];

	for (long t = 0; t < o.threads; t++)
		pthread_create(&th[t], NULL, writer, (void *)(intptr_t)t);
	for (long t = 0; t < o.threads; t++)
		pthread_join(th[t], NULL);
}

int
main(int argc, char **argv)
{
	struct mt_config *cfg;
	struct ev_batch *evb;
	char err[512];
	double t0, t1, t2;
	long written;
	int ch, rc;

	o.seed = (uint64_t)mt_clock_ms(CLOCK_REALTIME) ^ (uint64_t)getpid() << 40;
	while ((ch = getopt(argc, argv, "c:n:r:t:e:s:x")) != -1)
		switch (ch) {
		case 'c': o.conf = optarg; break;
		case 'n': o.records = atol(optarg); break;
		case 'r': o.rcpts = atol(optarg); break;
		case 't': o.threads = atol(optarg); break;
		case 'e': o.events = atol(optarg); break;
		case 's': o.seed = strtoull(optarg, NULL, 0); break;
		case 'x': o.events_only = 1; break;
		default: usage();
		}
	if (o.conf == NULL || optind != argc || o.records < 1 || o.rcpts < 1 ||
	    o.rcpts > 10000 || o.threads < 1 || o.threads > MAX_THREADS ||
	    o.events < 0)
		usage();
	if ((evb = calloc(1, sizeof(*evb))) == NULL ||
	    (cfg = mt_config_load(o.conf, 0, err, sizeof(err))) == NULL ||
	    (st = mt_store_new(cfg, report, err, sizeof(err))) == NULL) {
		fprintf(stderr, "store_bench: %s\n", evb ? err : "out of memory");
		return 2;
	}
	written = o.events_only ? 0 : o.records;
	t0 = now_s();
	if (written)
		write_records();
	t1 = now_s();
	if (o.events > 0 && apply_events(cfg, evb) != 0)
		return 2;
	t2 = now_s();
	printf("{\"seed\":%llu,\"records\":%ld,\"rcpts\":%ld,\"threads\":%ld,"
	    "\"failed\":%ld,\"spooled\":%ld,\"store_s\":%.4f,"
	    "\"records_per_s\":%.0f,\"events\":%ld,\"events_changed\":%ld,"
	    "\"events_failed\":%ld,\"events_s\":%.4f,\"events_per_s\":%.0f}\n",
	    (unsigned long long)o.seed, written, o.rcpts, o.threads, n_failed,
	    n_spooled, t1 - t0, written ? written / (t1 - t0) : 0.0, evb->sent,
	    evb->changed, evb->failed, t2 - t1,
	    evb->sent ? evb->sent / (t2 - t1) : 0.0);
	mt_store_free(st);
	mt_config_unref(cfg);
	rc = n_failed || n_spooled || evb->failed;
	free(evb);
	return rc;
}
