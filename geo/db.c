/*
 * GeoDB files. Lookups hold a read lock for as long as they touch a map, and
 * a replaced file is swapped in under the write lock, so no lookup ever
 * reads a database that has been closed under it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <maxminddb.h>

#include "../common/text.h"
#include "geo.h"

enum layout { LAYOUT_CITY, LAYOUT_ASN };

struct slot {
	char *path;
	MMDB_s *db;
	enum layout layout;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

struct mt_geo {
	pthread_rwlock_t lock;
	struct slot *slots;
	size_t n;
};

static MMDB_s *
open_db(const char *path, enum layout *layout, struct stat *st, char *err,
    size_t errlen)
{
	MMDB_s *db = calloc(1, sizeof(*db));
	int rc;

	if (db == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	if (stat(path, st) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		free(db);
		return NULL;
	}
	rc = MMDB_open(path, MMDB_MODE_MMAP, db);
	if (rc != MMDB_SUCCESS) {
		snprintf(err, errlen, "%s: %s", path, rc == MMDB_IO_ERROR ?
		    strerror(errno) : MMDB_strerror(rc));
		free(db);
		return NULL;
	}
	/* GeoLite2-ASN, GeoIP2-ISP, DB-IP's "asn" files: numbers, no places. */
	*layout = (db->metadata.database_type &&
	    (strstr(db->metadata.database_type, "ASN") ||
	    strstr(db->metadata.database_type, "asn"))) ? LAYOUT_ASN
	    : LAYOUT_CITY;
	return db;
}

static void
close_db(MMDB_s *db)
{
	if (db) {
		MMDB_close(db);
		free(db);
	}
}

static void
remember(struct slot *s, const struct stat *st)
{
	s->dev = st->st_dev;
	s->ino = st->st_ino;
	s->size = st->st_size;
	s->mtime = st->st_mtim;
}

struct mt_geo *
mt_geo_open(char *const *paths, size_t n, char *err, size_t errlen)
{
	struct mt_geo *g = calloc(1, sizeof(*g));

	if (g == NULL || (n && (g->slots = calloc(n, sizeof(*g->slots))) == NULL)) {
		free(g);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_rwlock_init(&g->lock, NULL);
	for (size_t i = 0; i < n; i++) {
		struct stat st;

		g->n = i + 1;
		g->slots[i].path = strdup(paths[i]);
		if (g->slots[i].path == NULL) {
			snprintf(err, errlen, "out of memory");
			mt_geo_free(g);
			return NULL;
		}
		g->slots[i].db = open_db(paths[i], &g->slots[i].layout, &st,
		    err, errlen);
		if (g->slots[i].db == NULL) {
			mt_geo_free(g);
			return NULL;
		}
		remember(&g->slots[i], &st);
	}
	return g;
}

int
mt_geo_file_info(const char *path, struct mt_geo_info *out, char *err,
    size_t errlen)
{
	enum layout layout;
	struct stat st;
	MMDB_s *db = open_db(path, &layout, &st, err, errlen);

	memset(out, 0, sizeof(*out));
	if (db == NULL)
		return -1;
	snprintf(out->type, sizeof(out->type), "%s",
	    db->metadata.database_type ? db->metadata.database_type : "");
	out->built = db->metadata.build_epoch;
	out->ip_version = db->metadata.ip_version;
	close_db(db);
	return 0;
}

void
mt_geo_free(struct mt_geo *g)
{
	if (g == NULL)
		return;
	for (size_t i = 0; i < g->n; i++) {
		close_db(g->slots[i].db);
		free(g->slots[i].path);
	}
	free(g->slots);
	pthread_rwlock_destroy(&g->lock);
	free(g);
}

static int
changed(const struct slot *s, const struct stat *st)
{
	return st->st_dev != s->dev || st->st_ino != s->ino ||
	    st->st_size != s->size ||
	    st->st_mtim.tv_sec != s->mtime.tv_sec ||
	    st->st_mtim.tv_nsec != s->mtime.tv_nsec;
}

int
mt_geo_refresh(struct mt_geo *g, int force, char *err, size_t errlen)
{
	int swapped = 0, bad = 0;

	for (size_t i = 0; g && i < g->n; i++) {
		struct slot *s = &g->slots[i];
		struct stat st;
		enum layout layout;
		MMDB_s *fresh, *old;

		/* Only this thread writes the stat fields: no lock to read them. */
		if (stat(s->path, &st) < 0 || (!force && !changed(s, &st)))
			continue;
		fresh = open_db(s->path, &layout, &st, err, errlen);
		if (fresh == NULL) {
			remember(s, &st);	/* warn once per bad file */
			bad = 1;
			continue;
		}
		pthread_rwlock_wrlock(&g->lock);
		old = s->db;
		s->db = fresh;
		s->layout = layout;
		pthread_rwlock_unlock(&g->lock);
		close_db(old);
		remember(s, &st);
		swapped++;
	}
	return bad ? -1 : swapped;
}

int
mt_geo_is_private(const char *ip)
{
	unsigned char a[16];

	if (inet_pton(AF_INET6, ip, a) == 1) {
		static const unsigned char mapped[12] =
		    { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		static const unsigned char zero[15];

		if (memcmp(a, mapped, 12) == 0) {
			char v4[INET_ADDRSTRLEN];

			inet_ntop(AF_INET, a + 12, v4, sizeof(v4));
			return mt_geo_is_private(v4);
		}
		return memcmp(a, zero, 15) == 0 ||	/* :: and ::1 */
		    (a[0] & 0xfe) == 0xfc ||		/* fc00::/7 ULA */
		    (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) || /* fe80::/10 */
		    a[0] == 0xff;			/* multicast */
	}
	if (inet_pton(AF_INET, ip, a) != 1)
		return 1;	/* not an address: nothing to place */
	return a[0] == 0 || a[0] == 10 || a[0] == 127 || a[0] >= 224 ||
	    (a[0] == 100 && (a[1] & 0xc0) == 64) ||	/* CGNAT 100.64/10 */
	    (a[0] == 169 && a[1] == 254) ||
	    (a[0] == 172 && (a[1] & 0xf0) == 16) ||
	    (a[0] == 192 && a[1] == 168);
}

static int
get_number(MMDB_entry_s *e, double *out, const char *const *path)
{
	MMDB_entry_data_s d;

	if (MMDB_aget_value(e, &d, path) != MMDB_SUCCESS || !d.has_data)
		return 0;
	switch (d.type) {
	case MMDB_DATA_TYPE_DOUBLE: *out = d.double_value; return 1;
	case MMDB_DATA_TYPE_FLOAT: *out = d.float_value; return 1;
	case MMDB_DATA_TYPE_UINT16: *out = d.uint16; return 1;
	case MMDB_DATA_TYPE_UINT32: *out = d.uint32; return 1;
	case MMDB_DATA_TYPE_INT32: *out = d.int32; return 1;
	default: return 0;
	}
}

/* MMDB strings are not NUL-terminated: copy with the length, cleaned. */
static int
get_string(MMDB_entry_s *e, char *out, size_t outsize,
    const char *const *path)
{
	MMDB_entry_data_s d;

	if (MMDB_aget_value(e, &d, path) != MMDB_SUCCESS || !d.has_data ||
	    d.type != MMDB_DATA_TYPE_UTF8_STRING || d.data_size == 0)
		return 0;
	mt_text_header(out, outsize, d.utf8_string, d.data_size);
	for (char *p = out; *p; p++)
		if (*p == ';' || *p == '=')
			*p = ' ';	/* hop header field separators */
	return out[0] != '\0';
}

/* GeoIP2 City layout first; DB-IP's flat npm layout otherwise. */
static int
read_city(MMDB_entry_s *e, struct mt_geo_loc *out)
{
	static const char *const mm_lat[] = { "location", "latitude", NULL };
	static const char *const mm_lon[] = { "location", "longitude", NULL };
	static const char *const mm_cc[] = { "country", "iso_code", NULL };
	static const char *const mm_city[] = { "city", "names", "en", NULL };
	static const char *const fl_lat[] = { "latitude", NULL };
	static const char *const fl_lon[] = { "longitude", NULL };
	static const char *const fl_cc[] = { "country_code", NULL };
	static const char *const fl_city[] = { "city", NULL };
	char cc[8] = "";

	if (get_number(e, &out->lat, mm_lat) && get_number(e, &out->lon, mm_lon)) {
		get_string(e, cc, sizeof(cc), mm_cc);
		get_string(e, out->city, sizeof(out->city), mm_city);
	} else if (get_number(e, &out->lat, fl_lat) &&
	    get_number(e, &out->lon, fl_lon)) {
		get_string(e, cc, sizeof(cc), fl_cc);
		get_string(e, out->city, sizeof(out->city), fl_city);
	} else
		return 0;
	if (out->lat < -90 || out->lat > 90 || out->lon < -180 || out->lon > 180)
		return 0;
	if (strlen(cc) == 2)
		memcpy(out->cc, cc, 3);
	return 1;
}

static int
to_sockaddr(const char *ip, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		ss->ss_family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		ss->ss_family = AF_INET6;
		return 0;
	}
	return -1;
}

int
mt_geo_lookup(struct mt_geo *g, const char *ip, struct mt_geo_loc *out)
{
	static const char *const asn_path[] =
	    { "autonomous_system_number", NULL };
	struct sockaddr_storage ss;

	memset(out, 0, sizeof(*out));
	if (g == NULL || mt_geo_is_private(ip) || to_sockaddr(ip, &ss) < 0)
		return 0;
	pthread_rwlock_rdlock(&g->lock);
	for (size_t i = 0; i < g->n; i++) {
		struct slot *s = &g->slots[i];
		int mmerr;
		MMDB_lookup_result_s r;
		double asn;

		if ((s->layout == LAYOUT_CITY && out->found) ||
		    (s->layout == LAYOUT_ASN && out->asn))
			continue;
		/* An IPv6 address in an IPv4-only file is an error: not found. */
		r = MMDB_lookup_sockaddr(s->db, (struct sockaddr *)&ss, &mmerr);
		if (mmerr != MMDB_SUCCESS || !r.found_entry)
			continue;
		if (s->layout == LAYOUT_CITY)
			out->found = read_city(&r.entry, out);
		else if (get_number(&r.entry, &asn, asn_path) && asn > 0 &&
		    asn < 4294967296.0)
			out->asn = (uint32_t)asn;
	}
	pthread_rwlock_unlock(&g->lock);
	if (!out->found) {
		uint32_t asn = out->asn;

		memset(out, 0, sizeof(*out));
		out->asn = asn;
	}
	return out->found;
}
