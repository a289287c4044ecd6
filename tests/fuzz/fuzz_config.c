/* The store's own reading of foreign input (images/store.c): an image config's
 * rootfs.diff_ids into ChainIDs (store_config_chains, on every pulled or
 * imported config), and image names as a source gives them (RepoTags,
 * ref.name annotations) through hutch_image_ref_normalize. What comes out
 * must keep the promises: ChainIDs are 64 lowercase hex (they become paths),
 * and a normalised name is a fixed point, also by way of its familiar form. */
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "images/images.h"
#include "images/layer_internal.h"
#include "images/source_internal.h"

static void check_name(const char *name)
{
	char *norm = NULL;
	if (hutch_image_ref_normalize(name, &norm, NULL) < 0) {
		if (norm)
			abort();
		return;
	}
	char *again = NULL, *familiar = hutch_image_ref_familiar(norm), *back = NULL;
	if (hutch_image_ref_normalize(norm, &again, NULL) < 0 || strcmp(again, norm) ||
	    hutch_image_ref_normalize(familiar, &back, NULL) < 0 || strcmp(back, norm))
		abort();
	free(norm);
	free(again);
	free(familiar);
	free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char(*chains)[65] = NULL;
	size_t n = 0;
	struct hutch_err *err = NULL;
	if (store_config_chains((const char *)data, size, &chains, &n, &err) == 0) {
		if (n == 0 || err)
			abort();
		for (size_t i = 0; i < n; i++)
			if (!digest_is_valid(chains[i], true))
				abort();
		free(chains);
	} else if (!err || chains) {
		abort();
	}
	hutch_err_free(&err);

	/* the same bytes as a name, and each line of them */
	char *text = xcalloc(1, size + 1);
	memcpy(text, data, size);
	check_name(text);
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
		check_name(line);
	free(text);
	return 0;
}
