/*
 * `mailtrail map -o FILE.svg [--land FILE] ID`: the whole path drawn on a
 * world map. Land comes from MapLand (world-atlas's land-110m.json, which
 * `make worldmap` fetches); without it the map still shows the places and
 * legs on a graticule, and says so. The file is written next to its name
 * and renamed into place, so a reader never sees half a map.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "../common/config.h"
#include "../map/map.h"

#define CREDIT_LAND "Land: Natural Earth (public domain), via world-atlas " \
	"(ISC). Places: the site's GeoDB, e.g. DB-IP Lite (CC BY 4.0)."
#define CREDIT_NOLAND "No land file (MapLand): run `make worldmap`. " \
	"Places: the site's GeoDB, e.g. DB-IP Lite (CC BY 4.0)."

static int
write_file(const char *path, const char *text, size_t len)
{
	size_t n = strlen(path) + 16;
	char *tmp = cli_xmalloc(n);
	FILE *f;
	int ok;

	snprintf(tmp, n, "%s.tmp%ld", path, (long)getpid());
	f = fopen(tmp, "wx");
	if (f == NULL) {
		fprintf(stderr, "mailtrail: map: %s: %s\n", tmp,
		    strerror(errno));
		free(tmp);
		return -1;
	}
	ok = fwrite(text, 1, len, f) == len;
	ok = (fflush(f) == 0) && ok;
	ok = (fclose(f) == 0) && ok;
	if (!ok || rename(tmp, path) != 0) {
		fprintf(stderr, "mailtrail: map: cannot write %s: %s\n", path,
		    strerror(errno));
		unlink(tmp);
		free(tmp);
		return -1;
	}
	free(tmp);
	return 0;
}

int
cmd_map(struct cli *c, int argc, char **argv)
{
	const struct cli_command *cmd = cli_find_command(argv[0]);
	const char *out = NULL, *land_path = NULL;
	struct mt_map_land land = { 0 };
	char **args = cli_xmalloc(sizeof(*args) * ((size_t)argc + 1));
	char err[512];
	int i, n = 0, rc, have_land;
	struct cli_msg m;
	json_t *record, *whole;
	char *svg;
	size_t len;

	args[n++] = argv[0];
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-o") == 0 && i + 1 < argc)
			out = argv[++i];
		else if (strcmp(argv[i], "--land") == 0 && i + 1 < argc)
			land_path = argv[++i];
		else if (strcmp(argv[i], "-o") == 0 ||
		    strcmp(argv[i], "--land") == 0) {
			free(args);
			return cli_usage_error(cmd, "%s: missing value",
			    argv[i]);
		} else
			args[n++] = argv[i];
	}
	args[n] = NULL;
	if (out == NULL) {
		free(args);
		return cli_usage_error(cmd, "-o FILE.svg is required");
	}
	rc = cli_load_arg(c, n, args, 1, &m);
	free(args);
	if (rc != CLI_FOUND)
		return rc;
	if (land_path == NULL)
		land_path = c->cfg->map_land;
	have_land = mt_map_land_load(land_path, &land, err, sizeof(err)) == 0;
	if (!have_land)
		fprintf(stderr, "mailtrail: map: no land drawn: %s\n", err);
	record = cli_record_path(&m);
	whole = cli_whole_path(&m, record);
	svg = mt_map_svg(&(struct mt_map_svg_in){ .whole = whole,
	    .land = have_land ? &land : NULL, .title = m.id,
	    .credit = have_land ? CREDIT_LAND : CREDIT_NOLAND }, &len);
	if (svg == NULL)
		cli_oom();
	rc = write_file(out, svg, len) == 0 ? CLI_FOUND : CLI_FAIL;
	free(svg);
	json_decref(whole);
	json_decref(record);
	mt_map_land_free(&land);
	cli_msg_free(&m);
	return rc;
}
