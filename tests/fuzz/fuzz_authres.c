/*
 * Authentication-Results values are whatever a sender wrote when no
 * verifier removed them: any bytes must give 0 or -1, and what is kept is
 * a short, clean, lower-case domain.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../mdn/mdn.h"

static void
check_domain(const char *s, size_t size)
{
	size_t n = strnlen(s, size);

	if (n == 0 || n == size)
		abort();
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' &&
		    s[i] <= '9') || s[i] == '-' || s[i] == '_' || s[i] == '.'))
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mt_authres ar;
	int rc = mt_authres_parse((const char *)data, size, &ar);

	if (rc != 0 && rc != -1)
		abort();
	if (rc == -1 && (ar.ar_npass != 0 || ar.ar_servid[0] != '\0'))
		abort();
	if (rc == 0) {
		if (ar.ar_servid[0] == '\0' || ar.ar_npass < 0 ||
		    ar.ar_npass > MT_AR_PASS_MAX)
			abort();
		for (int i = 0; i < ar.ar_npass; i++) {
			check_domain(ar.ar_pass[i].ap_domain,
			    sizeof(ar.ar_pass[i].ap_domain));
			(void)mt_authres_vouches(&ar, ar.ar_pass[i].ap_domain);
		}
	}
	return 0;
}
