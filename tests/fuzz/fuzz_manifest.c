/* The image JSON parsers (images/manifest.c) on arbitrary bytes: index,
 * manifest, kind detection, config diff_ids, docker save's manifest.json,
 * oci-layout, platform strings; and platform selection on whatever index
 * parses. Beyond not crashing, what comes out must keep the parsers' promises:
 * every digest valid (it may become a path), every size in range, every
 * docker archive path clean. */
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "images/layer_internal.h"
#include "images/manifest_internal.h"

static void check_descriptor(const struct descriptor *d, bool media_type_required)
{
	if (!digest_is_valid(d->digest, false) || d->size < 0 || d->size > BLOB_MAX_SIZE)
		abort();
	if (media_type_required && !d->media_type)
		abort();
	if (d->has_platform && (!d->platform.os[0] || !d->platform.arch[0]))
		abort();
}

static const char *const hints[] = {
    NULL,
    MT_OCI_INDEX,
    MT_DOCKER_LIST,
    MT_OCI_MANIFEST,
    MT_DOCKER_MANIFEST,
    "application/vnd.oci.image.manifest.v1+json; charset=utf-8",
    "text/plain",
    "",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *json = (const char *)data;
	const char *hint = hints[size % ARRAY_SIZE(hints)];
	struct hutch_err *err = NULL;

	enum manifest_kind kind;
	if (manifest_detect(json, size, hint, &kind, &err) == 0 && kind != MANIFEST_INDEX &&
	    kind != MANIFEST_IMAGE)
		abort();
	hutch_err_free(&err);

	struct image_index ix;
	if (image_index_parse(json, size, hint, &ix, &err) == 0) {
		if (!ix.media_type)
			abort();
		for (size_t i = 0; i < ix.n_manifests; i++)
			check_descriptor(&ix.manifests[i], false);
		static const char *const wants[] = {"linux/amd64", "linux/arm64", "linux/arm/v6",
						    "windows/amd64"};
		for (size_t w = 0; w < ARRAY_SIZE(wants); w++) {
			struct image_platform p;
			size_t chosen;
			if (image_platform_parse(wants[w], &p, NULL) < 0)
				abort();
			if (image_index_select(&ix, &p, &chosen, &err) == 0 &&
			    chosen >= ix.n_manifests)
				abort();
			hutch_err_free(&err);
		}
		image_index_free(&ix);
	}
	hutch_err_free(&err);

	struct image_manifest m;
	if (image_manifest_parse(json, size, hint, &m, &err) == 0) {
		if (!m.media_type)
			abort();
		check_descriptor(&m.config, true);
		for (size_t i = 0; i < m.n_layers; i++)
			check_descriptor(&m.layers[i].desc, true);
		image_manifest_free(&m);
	}
	hutch_err_free(&err);

	char(*ids)[72];
	size_t n;
	if (image_config_diff_ids(json, size, &ids, &n, &err) == 0) {
		for (size_t i = 0; i < n; i++)
			if (!digest_is_valid(ids[i], false))
				abort();
		free(ids);
	}
	hutch_err_free(&err);

	struct docker_archive_manifest dm;
	if (docker_archive_manifest_parse(json, size, &dm, &err) == 0) {
		for (size_t i = 0; i < dm.n_images; i++) {
			const struct docker_archive_image *im = &dm.images[i];
			if (!archive_path_is_clean(im->config))
				abort();
			for (size_t k = 0; k < im->n_layers; k++)
				if (!archive_path_is_clean(im->layers[k]))
					abort();
			for (size_t k = 0; k < im->n_repo_tags; k++)
				if (!im->repo_tags[k][0])
					abort();
		}
		docker_archive_manifest_free(&dm);
	}
	hutch_err_free(&err);

	oci_layout_check(json, size, &err);
	hutch_err_free(&err);

	/* The input as a platform string: what parses formats and parses back
	 * to the same. */
	char s[256];
	size_t sl = size < sizeof(s) - 1 ? size : sizeof(s) - 1;
	memcpy(s, data, sl);
	s[sl] = '\0';
	struct image_platform p, q;
	if (image_platform_parse(s, &p, &err) == 0) {
		char f[128];
		image_platform_format(&p, f, sizeof(f));
		if (image_platform_parse(f, &q, NULL) < 0 || memcmp(&p, &q, sizeof(p)) ||
		    image_platform_score(&p, &q) != 100)
			abort();
	}
	hutch_err_free(&err);
	(void)archive_path_is_clean(s);
	return 0;
}
