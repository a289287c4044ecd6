/* hutch image store: content-addressed layers and image records.
 *
 * Layout under the data root:
 *   images/store.lock        flock: writers take it exclusively
 *   images/layers/<chainid>/ unpacked layer (chainid = sha256 hex)
 *   images/configs/<id>.json image config (OCI image config; id = sha256 of the bytes)
 *   images/refs.json         full name ("docker.io/library/bb:latest") -> image id
 *   images/locks/<chainid>   flock: one import unpacks a layer at a time
 *   images/downloads/        blobs of pulls that have not stored their image yet
 *   images/tmp/              staging; entries left by a crash are removed on open
 */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "common/err.h"

struct hutch_store;

struct hutch_image {
	char id[65]; /* sha256 hex of the config */
	char *name;  /* the name it was looked up by, in its familiar form ("bb:latest"
			for bb, library/bb or docker.io/library/bb), or the id */
	char **layer_dirs; /* absolute, lowest first */
	int *layer_fds; /* each held with a shared flock while the image is in use */
	size_t n_layers;
	/* config */
	char **env;
	size_t n_env;
	char **entrypoint;
	size_t n_entrypoint;
	char **cmd;
	size_t n_cmd;
	char *workdir;
	char *user;
	char *stop_signal;
	time_t created;
	int64_t size; /* bytes on disk of its layers */
};

struct hutch_image_list {
	struct hutch_image_ref {
		char *name; /* familiar "repo:tag" ("bb:latest", "host:5000/app:1") */
		char id[65];
		time_t created;
		int64_t size;
	} *refs;
	size_t n;
};

/* Open (creating if needed) the store under data_root. HUTCH_STORE_WRITE also
 * clears what killed writers left (staging, temp files); HUTCH_STORE_READ (a
 * container start) leaves that to the next writer and does no scan. */
enum hutch_store_mode { HUTCH_STORE_WRITE = 0, HUTCH_STORE_READ };
int hutch_store_open(const char *data_root, bool rootless, enum hutch_store_mode mode,
		     struct hutch_store **out, struct hutch_err **err);
void hutch_store_close(struct hutch_store *s);

/* Import a rootfs tarball (.tar, .tar.gz, .tar.zst: detected by content) or a
 * directory as a one-layer image named `name` (":latest" added if untagged). */
int hutch_image_import(struct hutch_store *s, const char *src, const char *name,
		       char out_id[65], struct hutch_err **err);
/* Resolve a name ("bb", "bb:latest") or an id (or unique id prefix of >= 4 hex). */
int hutch_image_get(struct hutch_store *s, const char *ref, struct hutch_image **out,
		    struct hutch_err **err);
void hutch_image_free(struct hutch_image *img);
int hutch_image_list(struct hutch_store *s, struct hutch_image_list *out, struct hutch_err **err);
void hutch_image_list_free(struct hutch_image_list *l);
/* What `image rm` did: the name it took away (familiar form; NULL when
 * removed by id) and the id of the image it deleted ("" while other names
 * keep it). */
struct hutch_image_removal {
	char *untagged;
	char deleted[65];
};
/* Untag `ref`; the image and unshared layers go when no name points at it.
 * out may be NULL. */
int hutch_image_remove(struct hutch_store *s, const char *ref, struct hutch_image_removal *out,
		       struct hutch_err **err);
void hutch_image_removal_free(struct hutch_image_removal *r);
/* Give the image that src names another name. */
int hutch_image_tag(struct hutch_store *s, const char *src, const char *dst, struct hutch_err **err);
/* The image as JSON: id, names, created, architecture, os, config, diff_ids,
 * layers (ChainIDs), size. Caller frees. */
int hutch_image_inspect(struct hutch_store *s, const char *ref, char **json_out,
			struct hutch_err **err);
/* Remove images without a name and layers that no image uses, except layers in
 * use by a container. Returns the bytes freed in *freed. */
int hutch_image_prune(struct hutch_store *s, int64_t *freed, size_t *n_images, size_t *n_layers,
		      struct hutch_err **err);
/* Normalise a reference the way Docker does: "busybox", "library/busybox" and
 * "busybox:latest" are "docker.io/library/busybox:latest"; a first component
 * with a '.' or ':' (or "localhost") is a registry host. Validated; caller frees. */
int hutch_image_ref_normalize(const char *ref, char **out, struct hutch_err **err);
/* The familiar form of a normalised name, as Docker shows it:
 * "docker.io/library/busybox:latest" -> "busybox:latest",
 * "docker.io/team/app:1" -> "team/app:1", others unchanged. Caller frees. */
char *hutch_image_ref_familiar(const char *name);
