/*
 * Microbenchmark: nanoseconds per GeoDB lookup (both layouts, and the real
 * DB-IP file when given) and per Received: header parsed.
 * usage: geo_bench TESTDB_DIR RECEIVED_CORPUS_DIR [REAL.mmdb ...]
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../geo/geo.h"

static double
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void
bench_lookups(const char *label, char **paths, size_t n)
{
	static const char *ips[] = { "192.0.2.10", "198.51.100.20",
	    "203.0.113.30", "2001:db8::1", "8.8.8.8", "1.1.1.1", "81.2.69.142",
	    "2a00:1450:4001:80b::200e" };
	char err[256];
	struct mt_geo *g = mt_geo_open(paths, n, err, sizeof(err));
	struct mt_geo_loc l;
	long iters = 400000, found = 0;
	double t0;

	if (g == NULL) {
		fprintf(stderr, "geo_bench: %s\n", err);
		exit(1);
	}
	t0 = now_ns();
	for (long i = 0; i < iters; i++)
		found += mt_geo_lookup(g, ips[i % 8], &l);
	printf("| GeoDB lookup, %-31s | %8.0f ns | %3ld%% of the sample found\n", label,
	    (now_ns() - t0) / iters, found * 100 / iters);
	mt_geo_free(g);
}

static void
bench_received(const char *dir)
{
	static char bufs[64][4096];
	size_t lens[64], n = 0;
	DIR *d = opendir(dir);
	struct dirent *e;
	struct mt_received r;
	long iters = 400000;
	double t0;

	while (d && (e = readdir(d)) != NULL && n < 64) {
		char path[1024];
		FILE *fp;

		if (strncmp(e->d_name, "malformed", 9) == 0 ||
		    strstr(e->d_name, ".txt") == NULL)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if ((fp = fopen(path, "rb")) == NULL)
			continue;
		lens[n] = fread(bufs[n], 1, sizeof(bufs[n]), fp);
		fclose(fp);
		n++;
	}
	if (d)
		closedir(d);
	if (n == 0) {
		fprintf(stderr, "geo_bench: no Received: samples in %s\n", dir);
		exit(1);
	}
	t0 = now_ns();
	for (long i = 0; i < iters; i++)
		mt_received_parse(bufs[i % n], lens[i % n], &r);
	printf("| Received: header parsed (%2zu real forms)     | %8.0f ns |\n",
	    n, (now_ns() - t0) / iters);
}

int
main(int argc, char **argv)
{
	char p1[1024], p2[1024], p3[1024];
	char *mm[1] = { p1 }, *dbip[2] = { p2, p3 };

	if (argc < 3) {
		fprintf(stderr, "usage: geo_bench TESTDB_DIR RECEIVED_DIR [REAL.mmdb ...]\n");
		return 2;
	}
	snprintf(p1, sizeof(p1), "%s/city-maxmind.mmdb", argv[1]);
	snprintf(p2, sizeof(p2), "%s/city-dbip-v4.mmdb", argv[1]);
	snprintf(p3, sizeof(p3), "%s/city-dbip-v6.mmdb", argv[1]);
	printf("| microbenchmark                               | per call   |\n");
	printf("|----------------------------------------------|------------|\n");
	bench_lookups("GeoIP2 layout (test file)", mm, 1);
	bench_lookups("DB-IP flat layout (test files)", dbip, 2);
	if (argc > 3)
		bench_lookups("DB-IP Lite City (real data)", argv + 3,
		    (size_t)argc - 3);
	bench_received(argv[2]);
	return 0;
}
