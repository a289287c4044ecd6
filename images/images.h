/* hutch image store: content-addressed layers and image records.
 *
 * Layout under the data root:
 *   images/store.lock        flock: writers take it exclusively
 *   images/layers/<chainid>/ unpacked layer (chainid = sha256 hex)
 *   images/layers/<chainid>.split  its tar's headers, for `image save` (save.c)
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
/* Write images (names or ids) as one archive: an OCI image layout tar (as
 * `podman save --format oci-archive`) or a `docker save` archive, with their
 * configs and layers as stored (the same digests). path NULL: stdout; else
 * written to an unnamed file that takes the name only when complete. */
enum hutch_save_format { HUTCH_SAVE_OCI, HUTCH_SAVE_DOCKER };
int hutch_image_save(struct hutch_store *s, char *const *refs, size_t n,
		     enum hutch_save_format format, const char *path, struct hutch_err **err);
/* Normalise a reference the way Docker does: "busybox", "library/busybox" and
 * "busybox:latest" are "docker.io/library/busybox:latest"; a first component
 * with a '.' or ':' (or "localhost") is a registry host. Validated; caller frees. */
int hutch_image_ref_normalize(const char *ref, char **out, struct hutch_err **err);
/* The familiar form of a normalised name, as Docker shows it:
 * "docker.io/library/busybox:latest" -> "busybox:latest",
 * "docker.io/team/app:1" -> "team/app:1", others unchanged. Caller frees. */
char *hutch_image_ref_familiar(const char *name);

/* ---- what a build (builder/) needs of the store --------------------------------
 * A step's layer is described as additions, written as one tar and kept like
 * any imported layer: unpacked by ChainID, with its diff_id the sha256 of that
 * tar. Rootless, the tar is written and unpacked in a user namespace with the
 * caller's subordinate ids, so files keep the owners they have in the image. */
enum hutch_layer_phase { HUTCH_LAYER_READ, HUTCH_LAYER_WRITE };
enum hutch_layer_add_kind {
	HUTCH_ADD_UPPER,   /* src: a container's overlay upper dir; its whiteouts and
			      opaque dirs become the layer's */
	HUTCH_ADD_PATH,	   /* src: a host file or directory (a directory's contents go
			      into dest); owned by root unless chown */
	HUTCH_ADD_LAYERS,  /* src: a path in the merged view of layers[] */
	HUTCH_ADD_ARCHIVE, /* src: a tar (plain, gzip, zstd) whose members go below dest */
	HUTCH_ADD_DIR,	   /* an empty directory at dest (WORKDIR) */
};
struct hutch_layer_add {
	enum hutch_layer_add_kind kind;
	const char *src;
	const char *dest; /* absolute path in the image */
	char *const *layers; /* HUTCH_ADD_LAYERS: lowest first */
	size_t n_layers;
	/* HUTCH_ADD_PATH: skip entries for which ignore(rel path below the
	 * context, data) says so (.dockerignore); rel is src's own (may be NULL) */
	bool (*ignore)(const char *rel, void *data);
	void *ignore_data;
	const char *rel;
	/* HUTCH_ADD_PATH/ARCHIVE with has_src_fd: the source, already open (a
	 * directory or a regular file; src is then only its name in messages).
	 * The builder resolves it beneath the context once, so nothing reopens
	 * it by name after a swap of a directory for a symlink. */
	bool has_src_fd;
	int src_fd;
	bool chown, chmod;
	uint32_t uid, gid, mode;
	/* The first add's, for the whole layer: called as file data is read
	 * into the layer's tar (HUTCH_LAYER_READ) and then written into the
	 * layer (HUTCH_LAYER_WRITE), with the bytes and regular files so far,
	 * and at the end of each phase with done. It may run in a child (the
	 * user namespace's, rootless): it reports, it keeps no state for the
	 * caller. */
	void (*progress)(void *data, enum hutch_layer_phase phase, uint64_t bytes, uint64_t files,
			 bool done);
	void *progress_data;
};
/* Make one layer of adds on top of the layers parents (lowest first; their
 * ChainID parent_chain, NULL for none) and keep it in the store. Gives its
 * diff_id and ChainID (hex), and holds it (shared flock, *held; close it to
 * let go) so that no prune removes it before an image uses it. */
int hutch_layer_build(struct hutch_store *s, const struct hutch_layer_add *adds, size_t n,
		      char *const *parents, size_t n_parents, const char *parent_chain,
		      char diff_hex[65], char chain_hex[65], int *held, struct hutch_err **err);
/* ChainID of a layer with diff_id diff_hex on top of the chain prev_hex (NULL:
 * the first layer). */
void hutch_chain_id_next(const char *prev_hex, const char *diff_hex, char out[65]);
/* Hold a stored layer (shared flock): *dir its path (caller frees), *held the
 * fd. -1 when the store has no such layer (no message: a cache miss). */
int hutch_layer_hold(struct hutch_store *s, const char *chain_hex, char **dir, int *held);
/* An image's config as stored (JSON text, caller frees) and its id. */
int hutch_image_config(struct hutch_store *s, const char *ref, char **json, char id[65],
		       struct hutch_err **err);
/* Store an image config whose layers are all in the store, and give it the
 * names (may be none: an image known by its id). */
int hutch_image_commit(struct hutch_store *s, const char *config_json, char *const *names,
		       size_t n_names, char id[65], struct hutch_err **err);
/* The build cache: DATA/images/build-cache/<key>, one line per step key (64
 * hex) saying what the step made. get: 0 and the line (caller frees), -1 on a
 * miss. `image prune` drops lines whose layer is gone. */
int hutch_build_cache_get(struct hutch_store *s, const char *key, char **value);
int hutch_build_cache_put(struct hutch_store *s, const char *key, const char *value,
			  struct hutch_err **err);
/* builder prune: drop build cache entries, least recently used (last hit)
 * first, until what the cache keeps beyond the named images (layers only its
 * entries use, once each) is at most keep bytes; entries on a named image's
 * layers cost nothing and stay. all: drop every entry. The layers no entry
 * and no named image uses any more go too, unless a build or a container
 * holds them, and with them the unnamed images (a rebuild's old result) that
 * stood on them. */
struct hutch_cache_prune {
	size_t entries, layers, images;
	int64_t freed; /* bytes of the layers removed */
	int64_t size;  /* what the cache keeps beyond the images now */
};
/* also_keep: an image id (a build's unnamed result) kept as if named, or NULL. */
int hutch_build_cache_prune(struct hutch_store *s, bool all, int64_t keep, const char *also_keep,
			    struct hutch_cache_prune *out, struct hutch_err **err);
/* The build cache's size limit, enforced after each build: HUTCH_BUILD_CACHE_MAX
 * ("2g", "500m", bytes) if set, else HUTCH_BUILD_CACHE_DEFAULT_MAX. */
#define HUTCH_BUILD_CACHE_DEFAULT_MAX (4LL << 30)
int64_t hutch_build_cache_limit(void);
/* DATA/images (for messages and docs). */
const char *hutch_store_root(struct hutch_store *s);
