/* Private to images/: every image source (an OCI layout, a `docker save`
 * archive, a registry) is reduced to an image plan: the config's bytes and,
 * for each layer, where its blob can be read. The store verifies everything
 * (config digest, each blob's digest while streaming, each diff_id) and
 * commits; sources never write into the store themselves. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

struct hutch_store;

struct plan_layer {
	char digest[72]; /* "sha256:<64 hex>" of the blob as the source has it (maybe compressed) */
	char *media_type; /* NULL if the source does not say (docker legacy archives) */
	int64_t size; /* blob size from the manifest, -1 if unknown */
	/* where to read the blob: a file (path, or the plan's tmp_fd when in_tmp;
	 * neither for a layer a registry source found already stored), and a byte
	 * range of it */
	char *path;
	bool in_tmp;
	off_t offset;
	int64_t length; /* -1: to the end of the file */
};

struct image_plan {
	char *config; /* the image config, as bytes */
	size_t config_len;
	char config_digest[72]; /* expected "sha256:..." of config; "" if the source gives none */
	struct plan_layer *layers; /* in order, lowest first; as many as rootfs.diff_ids */
	size_t n_layers;
	char **tags; /* names the source carries ("repo:tag"), may be empty */
	size_t n_tags;
	/* A tag the source gives without a repository (an OCI layout's ref.name
	 * "latest", as skopeo and umoci write): the caller may name the image after
	 * the layout with it. NULL if none. */
	char *bare_tag;
	/* Why a name the source gives (RepoTags, a ref.name) is not one hutch can
	 * store: a message naming it, escaped. NULL if every name is valid. */
	char *bad_name;
	char *manifest; /* the manifest bytes, kept for inspect (may be NULL) */
	size_t manifest_len;
	char *source; /* what it came from, for messages and history */
	/* An unnamed temp file (O_TMPFILE) the plan owns: an archive decompressed
	 * for random access, which layers with in_tmp point into. Having no name,
	 * it goes with the last fd, even if the process is SIGKILLed. -1 if none. */
	int tmp_fd;
};

struct image_plan *image_plan_new(void);
void image_plan_free(struct image_plan *p);

/* Platform wanted from a multi-platform index. */
struct image_platform {
	char os[32]; /* "linux" */
	char arch[32]; /* normalised: "amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64" */
	char variant[16]; /* "v8", "v7", "" */
};
/* The host's platform. */
void image_platform_host(struct image_platform *p);
/* Parse "linux/arm64", "linux/arm/v7", "arm64" (os defaults to linux), normalising
 * x86_64 -> amd64, aarch64 -> arm64, armhf -> arm/v7, i386/i686 -> 386. */
int image_platform_parse(const char *s, struct image_platform *p, struct hutch_err **err);

/* ---- store.c ---- */

/* Verify and commit a plan as an image; name (may be NULL) is added to the
 * plan's own tags. Layers already present (by ChainID) are not unpacked again;
 * missing ones are unpacked in parallel. Nothing is visible until everything is
 * verified; a failure leaves only staging debris that the next open removes. */
int store_import_plan(struct hutch_store *s, const struct image_plan *p, const char *name,
		      char id_out[65], struct hutch_err **err);
/* The store's staging dir (DATA/images/tmp): big temp files go there, on the
 * store's filesystem rather than in a (possibly RAM-backed) $TMPDIR. */
const char *store_tmp_dir(struct hutch_store *s);
/* Directory for blob downloads (partial files persist there between tries, for
 * resuming); DATA/images/downloads. */
const char *store_download_dir(struct hutch_store *s);
/* Whether the layer for a ChainID is already stored (sources may skip fetching). */
bool store_has_chain(struct hutch_store *s, const char *chain_hex);
/* ChainIDs for a config's rootfs.diff_ids (n from the config). */
int store_config_chains(const char *config, size_t len, char (**chains)[65], size_t *n,
			struct hutch_err **err);

/* ---- archive.c: OCI image layouts and docker save archives ---- */

enum archive_kind { ARCHIVE_NONE = 0, ARCHIVE_OCI_DIR, ARCHIVE_OCI_TAR, ARCHIVE_DOCKER_TAR };
/* What is at path: an OCI layout directory, a tar of one, a `docker save`
 * archive (legacy or Docker 25+), or none of these (then: a rootfs). */
int archive_detect(const char *path, enum archive_kind *kind, struct hutch_err **err);
/* Build the plan for the image in an archive. ref selects among several images
 * (an OCI ref.name annotation / a docker RepoTag); NULL takes the only one, or
 * fails naming the choices. Multi-platform indexes pick platform. A compressed
 * archive is decompressed into an unnamed file in tmp_dir (NULL: $TMPDIR). */
int archive_plan(const char *path, enum archive_kind kind, const char *ref,
		 const struct image_platform *platform, const char *tmp_dir,
		 struct image_plan **out, struct hutch_err **err);

/* ---- registry.c: pulling ---- */

struct pull_opts {
	bool tls_verify; /* default true */
	const struct image_platform *platform;
	const char *auth_file; /* NULL: $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json,
				  ~/.docker/config.json */
	bool progress; /* progress bars (on a terminal) or plain lines */
};
/* Resolve ref ("host[:port]/repo[:tag|@sha256:...]"), fetch its manifest (an index
 * picks the platform) and config, and download the blobs the store lacks into
 * store_download_dir (resumable, digest-verified). The plan's layers point at
 * the downloaded files (or, for layers already stored, at nothing: path NULL). */
int registry_pull_plan(struct hutch_store *s, const char *ref, const struct pull_opts *o,
		       struct image_plan **out, struct hutch_err **err);
/* Let go of the downloads this process's pulls hold. With remove (the image
 * is stored), each is deleted unless another pull is using it right now. */
void registry_release_downloads(bool remove);
