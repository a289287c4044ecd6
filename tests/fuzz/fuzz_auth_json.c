/* Credentials files (auth.json / ~/.docker/config.json: someone else's tool
 * wrote them) and image references (from a command line or a stack file). Input:
 * the first line is a reference, the rest an auth.json document looked up for
 * the reference's registry and repository. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "images/layer_internal.h"
#include "images/registry_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	const char *nl = memchr(s, '\n', size);
	size_t rl = nl ? (size_t)(nl - s) : size;
	char *refstr = strndup(s, rl);
	if (!refstr)
		return 0;
	struct registry_ref ref;
	struct hutch_err *err = NULL;
	const char *domain = "registry.example:5000", *repo = "team/app";
	bool parsed = false;
	if (registry_ref_parse(refstr, &ref, &err) == 0) {
		parsed = true;
		if (!ref.domain || !ref.repo || !ref.api_host || !ref.name ||
		    (!ref.tag && !ref.digest[0]) || strstr(ref.repo, "..") ||
		    strstr(ref.repo, "//") || ref.repo[0] == '/' ||
		    (ref.digest[0] && !digest_is_valid(ref.digest, false)))
			abort();
		/* the normalised name parses to the same thing */
		struct registry_ref again;
		struct hutch_err *e2 = NULL;
		if (registry_ref_parse(ref.name, &again, &e2) < 0 || strcmp(again.name, ref.name) ||
		    strcmp(again.repo, ref.repo) || strcmp(again.domain, ref.domain))
			abort();
		registry_ref_free(&again);
		domain = ref.domain;
		repo = ref.repo;
	} else if (!err) {
		abort();
	}
	hutch_err_free(&err);

	size_t off = nl ? rl + 1 : size;
	size_t jl = size - off;
	char *json = malloc(jl ? jl : 1);
	if (!json)
		abort();
	memcpy(json, s + off, jl);
	char *up = NULL;
	int r = auth_json_lookup(json, jl, domain, repo, &up, &err);
	if (r == 1) {
		if (!up || !strchr(up, ':'))
			abort();
		free(up);
	} else if (up || (r < 0 && !err) || (r == 0 && err)) {
		abort();
	}
	hutch_err_free(&err);
	/* base64 both ways */
	unsigned char *dec = malloc(jl / 4 * 3 + 4);
	if (!dec)
		abort();
	ssize_t dl = base64_decode(json, jl, dec);
	if (dl >= 0) {
		char *enc = base64_encode(dec, (size_t)dl);
		unsigned char *back = malloc((size_t)dl + 4);
		if (!enc || !back || base64_decode(enc, strlen(enc), back) != dl ||
		    memcmp(back, dec, (size_t)dl))
			abort();
		free(enc);
		free(back);
	}
	free(dec);
	free(json);
	if (parsed)
		registry_ref_free(&ref);
	free(refstr);
	return 0;
}
