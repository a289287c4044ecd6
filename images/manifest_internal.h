/* Private to images/: the JSON documents of container images, parsed and
 * checked, and the choice of a platform from a multi-platform index.
 *
 * Pure parsing, no I/O: archive.c (OCI layouts, docker save archives) and
 * registry.c (pulls) read the bytes and call these. Everything here comes from
 * someone else, so:
 *  - every digest a parser hands out has passed digest_is_valid() ("sha256:" and
 *    64 lowercase hex): it may become a path (CVE-2024-3727); other algorithms
 *    are refused by name;
 *  - every size is an integer in [0, BLOB_MAX_SIZE];
 *  - strings with NUL bytes, invalid UTF-8, trailing garbage, documents larger
 *    than the limits below and counts above MANIFEST_MAX_ENTRIES are refused;
 *  - a document's own mediaType must agree with what its source says it is, and a
 *    document that is both an index and a manifest is refused (CVE-2021-41190).
 * Errors name the document and the offending value (through printable()). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "images/source_internal.h"

#define MT_OCI_INDEX	   "application/vnd.oci.image.index.v1+json"
#define MT_OCI_MANIFEST	   "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_CONFIG	   "application/vnd.oci.image.config.v1+json"
#define MT_DOCKER_LIST	   "application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MT_DOCKER_CONFIG   "application/vnd.docker.container.image.v1+json"
/* An Accept header value for manifest requests: every type parsed here. */
#define MANIFEST_ACCEPT                                                                            \
	MT_OCI_INDEX ", " MT_DOCKER_LIST ", " MT_OCI_MANIFEST ", " MT_DOCKER_MANIFEST

#define MANIFEST_MAX_LEN (4 << 20)  /* an index or manifest document (registries' limit) */
#define CONFIG_MAX_LEN	 (32 << 20) /* an image config (history can be long) */
#define MANIFEST_MAX_ENTRIES                                                                       \
	4096 /* entries of an index, layers of a manifest, images                                  \
		of a docker manifest.json */
#define BLOB_MAX_SIZE ((int64_t)1 << 40)

/* ---- documents -------------------------------------------------------------- */

enum manifest_kind {
	MANIFEST_INDEX, /* OCI image index or Docker manifest list */
	MANIFEST_IMAGE, /* OCI image manifest or Docker v2 schema 2 manifest */
};

struct descriptor {
	char *media_type; /* NULL only for an index entry that does not say */
	char digest[72];  /* validated "sha256:<64 hex>" */
	int64_t size;	  /* 0 .. BLOB_MAX_SIZE */
	bool has_platform;
	struct image_platform platform; /* normalised (see image_platform_parse) */
	char *ref_name;			/* annotation org.opencontainers.image.ref.name, or NULL */
	char *image_name;		/* annotation io.containerd.image.name, or NULL */
};

enum layer_compression { LAYER_UNCOMPRESSED, LAYER_GZIP, LAYER_ZSTD };

struct manifest_layer {
	struct descriptor desc;
	enum layer_compression compression; /* from the media type */
	/* OCI non-distributable / Docker foreign layer: registries may not serve
	 * it and layouts may lack its blob (it has urls instead). */
	bool non_distributable;
};

struct image_index {
	char *media_type; /* MT_OCI_INDEX or MT_DOCKER_LIST (MT_OCI_INDEX if it did not say) */
	struct descriptor *manifests;
	size_t n_manifests;
};

struct image_manifest {
	char *media_type;	       /* MT_OCI_MANIFEST or MT_DOCKER_MANIFEST */
	struct descriptor config;      /* media type MT_OCI_CONFIG or MT_DOCKER_CONFIG */
	struct manifest_layer *layers; /* lowest first */
	size_t n_layers;
};

/* Which kind of document json is. media_type is what its source says (the
 * descriptor's mediaType, or an HTTP Content-Type; parameters after ';' are
 * ignored), or NULL. Without either, the document's own mediaType field decides,
 * then its shape ("manifests" -> index, "config"/"layers" -> image). Docker
 * schema 1 and non-image types (artifacts, helm charts) are refused by name. */
int manifest_detect(const char *json, size_t len, const char *media_type, enum manifest_kind *kind,
		    struct hutch_err **err);

/* An OCI image index or a Docker manifest list. media_type as for manifest_detect. */
int image_index_parse(const char *json, size_t len, const char *media_type, struct image_index *out,
		      struct hutch_err **err);
void image_index_free(struct image_index *ix);

/* An OCI image manifest or a Docker v2 schema 2 manifest. Layers must have one of
 * the tar, tar+gzip, tar+zstd media types (OCI, Docker, non-distributable and
 * foreign variants); any other is refused, naming it. */
int image_manifest_parse(const char *json, size_t len, const char *media_type,
			 struct image_manifest *out, struct hutch_err **err);
void image_manifest_free(struct image_manifest *m);

/* An image config's rootfs.diff_ids (rootfs.type must be "layers"): *diff_ids is
 * a malloc'd array of *n validated "sha256:..." strings (NULL when n is 0).
 * The config's process fields are checked too: Entrypoint, Cmd and Env arrays
 * of strings (or null), User, WorkingDir and StopSignal strings, none holding
 * a NUL; anything else is refused naming the field and the type found. */
int image_config_diff_ids(const char *json, size_t len, char (**diff_ids)[72], size_t *n,
			  struct hutch_err **err);

/* `docker save`'s manifest.json: [{"Config": PATH, "RepoTags": [...]|null,
 * "Layers": [PATH...]}, ...]. Every PATH is checked to be a clean relative path
 * (no "", ".", ".." components, no leading '/', no control characters), so it can
 * only ever name a member of the archive. */
struct docker_archive_image {
	char *config;
	char **repo_tags; /* as written ("busybox:latest"); may be empty */
	size_t n_repo_tags;
	char **layers; /* lowest first */
	size_t n_layers;
};
struct docker_archive_manifest {
	struct docker_archive_image *images;
	size_t n_images;
};
int docker_archive_manifest_parse(const char *json, size_t len, struct docker_archive_manifest *out,
				  struct hutch_err **err);
void docker_archive_manifest_free(struct docker_archive_manifest *m);

/* An OCI layout's oci-layout file: {"imageLayoutVersion": "1.x.y"}. */
int oci_layout_check(const char *json, size_t len, struct hutch_err **err);

/* A path inside an archive as described above (exposed for archive.c and tests). */
bool archive_path_is_clean(const char *path);

/* ---- platforms --------------------------------------------------------------------
 * Normal form (as containerd): arch amd64/arm64/arm/386/...; variant "" for arm64
 * (v8 is the only one in use) and amd64 v1; arm always has one ("v7" when none
 * is given; armhf -> arm/v7, armel -> arm/v6). image_platform_host and
 * image_platform_parse are declared in source_internal.h. */

/* "linux/arm/v7", "linux/amd64" */
void image_platform_format(const struct image_platform *p, char *buf, size_t len);
/* How well an image for `have` runs on `want`: 0 not at all, 100 exact, less for
 * an older variant of the same architecture (arm/v6 on arm/v7, amd64 on amd64/v3). */
int image_platform_score(const struct image_platform *want, const struct image_platform *have);
/* Choose among n descriptors (an index's manifests) the best for want. Entries
 * without a platform are candidates only when there is exactly one entry. Fails
 * listing the platforms there are when none fits, or when several without a
 * platform leave nothing to choose by. *chosen is an index into d. */
int descriptors_select_platform(const struct descriptor *d, size_t n,
				const struct image_platform *want, size_t *chosen,
				struct hutch_err **err);
static inline int image_index_select(const struct image_index *ix,
				     const struct image_platform *want, size_t *chosen,
				     struct hutch_err **err)
{
	return descriptors_select_platform(ix->manifests, ix->n_manifests, want, chosen, err);
}

void descriptor_free(struct descriptor *d);
