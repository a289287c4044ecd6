/* WWW-Authenticate values as a registry (or anything answering in its place)
 * sends them: challenges, auth-params, quoted strings with escapes and commas,
 * token68, junk. The parser must never read past the input, and what it hands
 * out must be well-formed: lowercase tchar schemes and names, values without
 * NUL, CR or LF (a value becomes part of a URL the client requests). */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "images/registry_internal.h"

static void check_text(const char *s, bool lower_token)
{
	if (!s)
		abort();
	for (const char *p = s; *p; p++) {
		if (*p == '\r' || *p == '\n')
			abort();
		if (lower_token && (isupper((unsigned char)*p) || *p == ' ' || *p == '"' ||
				    *p == ',' || *p == '='))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* an exact-size copy, so ASan sees any read past the end */
	char *v = malloc(size ? size : 1);
	if (!v)
		return 0;
	memcpy(v, data, size);
	struct www_auth_challenge *c = NULL;
	size_t n = www_auth_parse(v, size, &c);
	if (n > 16 || (n && !c))
		abort();
	for (size_t i = 0; i < n; i++) {
		check_text(c[i].scheme, true);
		if (!c[i].scheme[0] || c[i].n_params > 32)
			abort();
		for (size_t j = 0; j < c[i].n_params; j++) {
			check_text(c[i].params[j].name, true);
			check_text(c[i].params[j].value, false);
			if (strlen(c[i].params[j].value) > size)
				abort();
			if (www_auth_param(&c[i], c[i].params[j].name) == NULL)
				abort();
		}
	}
	const struct www_auth_challenge *b = www_auth_find(c, n, "bearer");
	if (b) {
		(void)www_auth_param(b, "realm");
		(void)www_auth_param(b, "scope");
	}
	www_auth_free(c, n);
	free(v);
	return 0;
}
