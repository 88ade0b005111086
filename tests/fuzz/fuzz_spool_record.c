/*
 * Spool files are untrusted (cut short by a crash, damaged on disk, planted
 * by someone): mt_record_parse must refuse or accept any bytes without a
 * crash, and whatever it accepts must serialize and parse back again.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../state/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mt_record r, again;
	char err[256], *text;

	if (mt_record_parse((const char *)data, size, &r, err, sizeof(err)) != 0)
		return 0;
	if (mt_record_check(&r, err, sizeof(err)) != 0)
		abort();	/* parse and check disagree on what is storable */
	text = mt_record_serialize(&r);
	if (text != NULL) {
		if (mt_record_parse(text, strlen(text), &again, err,
		    sizeof(err)) != 0)
			abort();	/* our own output must read back */
		mt_record_free(&again);
		free(text);
	}
	mt_record_free(&r);
	return 0;
}
