/* hutch image save: stored images as an OCI image layout tar (as `podman save
 * --format oci-archive` writes) or a `docker save` archive, with the image's
 * config and layers as they were stored: the same digests, so the image id
 * and every diff_id survive the trip to another tool and back.
 *
 * Layers are kept unpacked. Their tars are given back from split files (see
 * layer_internal.h) recorded while they were unpacked: the bytes of the tar
 * but the files' data, which is read from the layer. Each tar is hashed as it
 * is written and must give the layer's diff_id, else the save fails. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <zstd.h>

#include "common/idmap.h"
#include "common/sha256.h"
#include "common/util.h"
#include "images/images.h"
#include "images/layer_build_internal.h"
#include "images/layer_internal.h"
#include "images/source_internal.h"

#define BLOCK 512

/* ---- replaying ------------------------------------------------------------------- */

/* A split file read back: one zstd stream (tarsplit.c). */
struct split_in {
	int fd;
	ZSTD_DStream *ds;
	uint8_t in[16384], out[65536];
	ZSTD_inBuffer ib;
	size_t pos, len; /* of out */
	bool src_eof;
};

static void split_close(struct split_in *r)
{
	ZSTD_freeDStream(r->ds);
	r->ds = NULL;
}

/* Exactly len bytes (buf NULL: skip them); -1 when the stream ends first or
 * is corrupt. */
static int split_read(struct split_in *r, void *buf, size_t len)
{
	while (len) {
		if (r->pos < r->len) {
			size_t take = r->len - r->pos < len ? r->len - r->pos : len;
			if (buf) {
				memcpy(buf, r->out + r->pos, take);
				buf = (char *)buf + take;
			}
			r->pos += take;
			len -= take;
			continue;
		}
		if (r->ib.pos == r->ib.size) {
			if (r->src_eof)
				return -1;
			ssize_t n;
			do
				n = read(r->fd, r->in, sizeof(r->in));
			while (n < 0 && errno == EINTR);
			if (n < 0)
				return -1;
			r->src_eof = n == 0;
			r->ib = (ZSTD_inBuffer){r->in, (size_t)n, 0};
		}
		ZSTD_outBuffer ob = {r->out, sizeof(r->out), 0};
		if (ZSTD_isError(ZSTD_decompressStream(r->ds, &ob, &r->ib)))
			return -1;
		r->pos = 0;
		r->len = ob.pos;
		if (!ob.pos && r->src_eof && r->ib.pos == r->ib.size)
			return -1;
	}
	return 0;
}

/* From the start, past the magic. */
static int split_open(struct split_in *r, int fd)
{
	*r = (struct split_in){.fd = fd, .ds = ZSTD_createDStream()};
	char magic[sizeof(TAR_SPLIT_MAGIC) - 1];
	if (!r->ds || lseek(fd, 0, SEEK_SET) < 0 || split_read(r, magic, sizeof(magic)) < 0 ||
	    memcmp(magic, TAR_SPLIT_MAGIC, sizeof(magic))) {
		split_close(r);
		return -1;
	}
	return 0;
}

static int get_record(struct split_in *r, char *type, uint64_t *len)
{
	uint8_t rec[9];
	if (split_read(r, rec, sizeof(rec)) < 0)
		return -1;
	*type = (char)rec[0];
	*len = 0;
	for (int i = 0; i < 8; i++)
		*len |= (uint64_t)rec[1 + i] << (8 * i);
	return 0;
}

static int get_path(struct split_in *r, char path[TAR_SPLIT_MAX_PATH + 1])
{
	uint8_t l[4];
	if (split_read(r, l, 4) < 0)
		return -1;
	uint32_t plen = l[0] | (uint32_t)l[1] << 8 | (uint32_t)l[2] << 16 | (uint32_t)l[3] << 24;
	if (plen == 0 || plen > TAR_SPLIT_MAX_PATH || split_read(r, path, plen) < 0)
		return -1;
	path[plen] = '\0';
	return memchr(path, '\0', plen) ? -1 : 0;
}

/* The length of the tar a split gives back (its records must add up). */
static int split_length(int fd, uint64_t *total)
{
	struct split_in r;
	if (split_open(&r, fd) < 0)
		return -1;
	uint64_t sum = 0;
	int ret = -1;
	for (;;) {
		char type, path[TAR_SPLIT_MAX_PATH + 1];
		uint64_t len;
		if (get_record(&r, &type, &len) < 0)
			break;
		if (type == 'E') {
			*total = len;
			ret = len == sum ? 0 : -1;
			break;
		}
		if ((type == 'R' && split_read(&r, NULL, len) < 0) ||
		    (type == 'F' && get_path(&r, path) < 0) || (type != 'R' && type != 'F'))
			break;
		sum += len;
	}
	split_close(&r);
	return ret;
}

/* Where the output goes: hashed (a layer being checked) and counted. */
struct out {
	int fd;
	const char *name;	 /* for messages */
	struct sha256_ctx *hash; /* NULL: not hashing */
	uint8_t *buf;
};

static int out_write(struct out *o, const void *buf, size_t len, struct hutch_err **err)
{
	if (o->hash)
		sha256_update(o->hash, buf, len);
	if (write_all(o->fd, buf, len) < 0)
		return hutch_fail_sys(err, "write %s", o->name);
	return 0;
}

#define COPY_BUF (256 * 1024)

/* Copy len bytes from fd (a layer's file) to the output. */
static int out_copy(struct out *o, int fd, uint64_t len, const char *what, struct hutch_err **err)
{
	while (len) {
		size_t want = len < COPY_BUF ? (size_t)len : COPY_BUF;
		ssize_t n = read(fd, o->buf, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return hutch_fail_sys(err, "read %s", what);
		if (n == 0)
			return hutch_fail(err, 0, "%s is shorter than the layer says", what);
		if (out_write(o, o->buf, (size_t)n, err) < 0)
			return -1;
		len -= (uint64_t)n;
	}
	return 0;
}

/* Write the layer's tar from its split and its files. */
static int split_replay(struct out *o, struct split_in *r, int layerfd, const char *chain,
			struct hutch_err **err)
{
	for (;;) {
		char type, path[TAR_SPLIT_MAX_PATH + 1];
		uint64_t len;
		if (get_record(r, &type, &len) < 0)
			return hutch_fail(err, 0, "layer %.12s: its split file is truncated",
					  chain);
		if (type == 'E')
			return 0;
		for (; type == 'R' && len;) {
			size_t n = len < COPY_BUF ? (size_t)len : COPY_BUF;
			if (split_read(r, o->buf, n) < 0)
				return hutch_fail(
				    err, 0, "layer %.12s: its split file is truncated", chain);
			if (out_write(o, o->buf, n, err) < 0)
				return -1;
			len -= n;
		}
		if (type == 'R')
			continue;
		if (type != 'F' || get_path(r, path) < 0)
			return hutch_fail(err, 0, "layer %.12s: its split file is corrupt", chain);
		/* as the unpacker resolved it: symlinks of the layer stay inside it */
		struct open_how how = {.flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC,
				       .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS |
						  RESOLVE_NO_XDEV};
		_cleanup_close_ int fd =
		    (int)syscall(SYS_openat2, layerfd, path, &how, sizeof(how));
		struct stat st;
		if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
			_cleanup_free_ char *shown = printable(path, strlen(path));
			return hutch_fail(err, fd < 0 ? errno : 0,
					  "layer %.12s: its file '%s' is missing or no longer a "
					  "regular file",
					  chain, shown);
		}
		_cleanup_free_ char *what = printable(path, strlen(path));
		if (out_copy(o, fd, len, what, err) < 0)
			return hutch_err_wrap(err, "layer %.12s", chain);
	}
}

/* ---- the archive -------------------------------------------------------------------- */

struct save_layer {
	char diff_hex[65], chain[65];
	int layerfd, splitfd;
	uint64_t size;
};

struct save_blob { /* a small file of the archive: JSON */
	char *name;
	char *data;
	size_t len;
};

struct save_job {
	struct out o;
	struct save_blob *blobs;
	size_t n_blobs;
	struct save_layer *layers;
	size_t n_layers;
	bool docker;
};

static int tar_entry(struct out *o, const char *name, char type, uint64_t size,
		     struct hutch_err **err)
{
	char h[BLOCK];
	tar_header_block(h, name, type, type == '5' ? 0755 : 0644, 0, 0, size, 0, NULL, 0, 0);
	return out_write(o, h, BLOCK, err);
}

static int tar_pad(struct out *o, uint64_t size, struct hutch_err **err)
{
	static const char zeros[BLOCK];
	size_t rest = (size_t)((BLOCK - size % BLOCK) % BLOCK);
	return rest ? out_write(o, zeros, rest, err) : 0;
}

static int write_layer(struct save_job *j, const struct save_layer *l, struct hutch_err **err)
{
	_cleanup_free_ char *name = j->docker ? xasprintf("%s/layer.tar", l->diff_hex)
					      : xasprintf("blobs/sha256/%s", l->diff_hex);
	if (j->docker && tar_entry(&j->o, l->diff_hex, '5', 0, err) < 0)
		return -1;
	if (tar_entry(&j->o, name, '0', l->size, err) < 0)
		return -1;
	struct sha256_ctx ctx;
	sha256_init(&ctx);
	j->o.hash = &ctx;
	struct split_in in;
	if (split_open(&in, l->splitfd) < 0)
		return hutch_fail(err, 0, "layer %.12s: its split file is unreadable", l->chain);
	int r = split_replay(&j->o, &in, l->layerfd, l->chain, err);
	split_close(&in);
	j->o.hash = NULL;
	if (r < 0)
		return -1;
	uint8_t dg[32];
	char hex[65];
	sha256_final(&ctx, dg);
	sha256_hex(dg, hex);
	if (strcmp(hex, l->diff_hex))
		return hutch_fail(err, 0,
				  "layer %.12s: its files no longer give the layer's digest "
				  "(sha256:%s, not sha256:%s): the stored layer was changed",
				  l->chain, hex, l->diff_hex);
	return tar_pad(&j->o, l->size, err);
}

static int save_write(void *arg, struct hutch_err **err)
{
	struct save_job *j = arg;
	if (!j->docker && tar_entry(&j->o, "blobs/", '5', 0, err) < 0)
		return -1;
	if (!j->docker && tar_entry(&j->o, "blobs/sha256/", '5', 0, err) < 0)
		return -1;
	for (size_t i = 0; i < j->n_layers; i++)
		if (write_layer(j, &j->layers[i], err) < 0)
			return -1;
	for (size_t i = 0; i < j->n_blobs; i++) {
		struct save_blob *b = &j->blobs[i];
		if (tar_entry(&j->o, b->name, '0', b->len, err) < 0 ||
		    out_write(&j->o, b->data, b->len, err) < 0 || tar_pad(&j->o, b->len, err) < 0)
			return -1;
	}
	static const char end[2 * BLOCK];
	return out_write(&j->o, end, sizeof(end), err);
}

static void add_blob(struct save_job *j, char *name, const char *data, size_t len)
{
	for (size_t i = 0; i < j->n_blobs; i++)
		if (!strcmp(j->blobs[i].name, name)) {
			free(name);
			return;
		}
	j->blobs = xrealloc(j->blobs, (j->n_blobs + 1) * sizeof(*j->blobs));
	char *copy = xcalloc(1, len + 1);
	memcpy(copy, data, len);
	copy[len] = '\0';
	j->blobs[j->n_blobs++] = (struct save_blob){name, copy, len};
}

static void add_json_blob(struct save_job *j, char *name, struct json_object *o, char digest[72])
{
	const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
								 JSON_C_TO_STRING_NOSLASHESCAPE);
	if (digest)
		sha256_digest(text, strlen(text), digest);
	add_blob(j, name, text, strlen(text));
}

static void save_job_free(struct save_job *j)
{
	for (size_t i = 0; i < j->n_blobs; i++) {
		free(j->blobs[i].name);
		free(j->blobs[i].data);
	}
	free(j->blobs);
	for (size_t i = 0; i < j->n_layers; i++) {
		if (j->layers[i].layerfd >= 0)
			close(j->layers[i].layerfd);
		if (j->layers[i].splitfd >= 0)
			close(j->layers[i].splitfd);
	}
	free(j->layers);
	free(j->o.buf);
}

/* Open (and hold) layer chain for the archive, once however many images use it. */
static int add_layer(struct hutch_store *s, struct save_job *j, const char *chain,
		     const char *diff_hex, const char *image, struct hutch_err **err)
{
	for (size_t i = 0; i < j->n_layers; i++)
		if (!strcmp(j->layers[i].chain, chain))
			return 0;
	struct save_layer l = {.layerfd = -1, .splitfd = -1};
	snprintf(l.chain, sizeof(l.chain), "%s", chain);
	snprintf(l.diff_hex, sizeof(l.diff_hex), "%s", diff_hex);
	_cleanup_free_ char *dir = NULL;
	if (hutch_layer_hold(s, chain, &dir, &l.layerfd) < 0)
		return hutch_fail(err, ENOENT, "%s: layer %.12s is not in the store", image, chain);
	_cleanup_free_ char *split = xasprintf("%s/layers/%s.split", hutch_store_root(s), chain);
	l.splitfd = open(split, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	j->layers = xrealloc(j->layers, (j->n_layers + 1) * sizeof(*j->layers));
	j->layers[j->n_layers++] = l;
	if (l.splitfd < 0)
		return hutch_fail(err, 0,
				  "%s: layer %.12s was stored by an older hutch, which kept no "
				  "record of its tar: remove the image and import or pull it again "
				  "to save it",
				  image, chain);
	if (split_length(l.splitfd, &j->layers[j->n_layers - 1].size) < 0)
		return hutch_fail(err, 0, "%s: layer %.12s: its split file (%s) is corrupt", image,
				  chain, split);
	return 0;
}

struct save_image {
	char id[65];
	char *name; /* normalised; NULL when saved by id */
	char *config;
	size_t config_len;
	char (*chains)[65];
	char **diffs; /* hex */
	size_t n;
};

static void save_image_free(struct save_image *im)
{
	free(im->name);
	free(im->config);
	free(im->chains);
	for (size_t i = 0; i < im->n; i++)
		free(im->diffs[i]);
	free(im->diffs);
}

static int load_image(struct hutch_store *s, const char *ref, struct save_image *im,
		      struct hutch_err **err)
{
	char id[65];
	_cleanup_free_ char *text = NULL;
	if (hutch_image_config(s, ref, &text, id, err) < 0)
		return -1;
	memcpy(im->id, id, 65);
	/* a name (not an id or its prefix): it goes into the archive */
	bool by_id = strlen(ref) >= 4 && strlen(ref) <= 64 && is_hex_string(ref, strlen(ref)) &&
		     !strncmp(ref, id, strlen(ref));
	if (!by_id && hutch_image_ref_normalize(ref, &im->name, err) < 0)
		return -1;
	im->config_len = strlen(text);
	im->config = steal_ptr(text);
	if (store_config_chains(im->config, im->config_len, &im->chains, &im->n, err) < 0)
		return hutch_err_wrap(err, "image %.12s", id);
	struct json_object *cfg = json_tokener_parse(im->config);
	struct json_object *rootfs, *diffs;
	im->diffs = xcalloc(im->n + 1, sizeof(char *));
	if (json_object_object_get_ex(cfg, "rootfs", &rootfs) &&
	    json_object_object_get_ex(rootfs, "diff_ids", &diffs))
		for (size_t i = 0; i < im->n; i++) {
			const char *d = json_object_get_string(json_object_array_get_idx(diffs, i));
			im->diffs[i] = xstrdup(d && strlen(d) == 71 ? d + 7 : "");
		}
	json_object_put(cfg);
	return 0;
}

/* OCI: blobs, a manifest per image, index.json with a ref.name per name. */
static void oci_layout(struct save_job *j, struct save_image *ims, size_t n)
{
	struct json_object *index = json_object_new_object(), *list = json_object_new_array();
	json_object_object_add(index, "schemaVersion", json_object_new_int(2));
	json_object_object_add(index, "mediaType",
			       json_object_new_string("application/vnd.oci.image.index.v1+json"));
	for (size_t i = 0; i < n; i++) {
		struct save_image *im = &ims[i];
		add_blob(j, xasprintf("blobs/sha256/%s", im->id), im->config, im->config_len);
		struct json_object *m = json_object_new_object(), *c = json_object_new_object(),
				   *ls = json_object_new_array();
		json_object_object_add(m, "schemaVersion", json_object_new_int(2));
		json_object_object_add(
		    m, "mediaType",
		    json_object_new_string("application/vnd.oci.image.manifest.v1+json"));
		json_object_object_add(
		    c, "mediaType",
		    json_object_new_string("application/vnd.oci.image.config.v1+json"));
		_cleanup_free_ char *cd = xasprintf("sha256:%s", im->id);
		json_object_object_add(c, "digest", json_object_new_string(cd));
		json_object_object_add(c, "size", json_object_new_int64((int64_t)im->config_len));
		json_object_object_add(m, "config", c);
		for (size_t k = 0; k < im->n; k++) {
			const struct save_layer *l = NULL;
			for (size_t x = 0; x < j->n_layers; x++)
				if (!strcmp(j->layers[x].chain, im->chains[k]))
					l = &j->layers[x];
			struct json_object *lo = json_object_new_object();
			json_object_object_add(
			    lo, "mediaType",
			    json_object_new_string("application/vnd.oci.image.layer.v1.tar"));
			_cleanup_free_ char *d = xasprintf("sha256:%s", im->diffs[k]);
			json_object_object_add(lo, "digest", json_object_new_string(d));
			json_object_object_add(lo, "size", json_object_new_int64((int64_t)l->size));
			json_object_array_add(ls, lo);
		}
		json_object_object_add(m, "layers", ls);
		char md[72];
		const char *mt = json_object_to_json_string_ext(
		    m, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
		size_t mlen = strlen(mt);
		sha256_digest(mt, mlen, md);
		add_blob(j, xasprintf("blobs/sha256/%s", md + 7), mt, mlen);
		struct json_object *desc = json_object_new_object();
		json_object_object_add(
		    desc, "mediaType",
		    json_object_new_string("application/vnd.oci.image.manifest.v1+json"));
		json_object_object_add(desc, "digest", json_object_new_string(md));
		json_object_object_add(desc, "size", json_object_new_int64((int64_t)mlen));
		if (im->name) {
			struct json_object *ann = json_object_new_object();
			json_object_object_add(ann, "org.opencontainers.image.ref.name",
					       json_object_new_string(im->name));
			json_object_object_add(ann, "io.containerd.image.name",
					       json_object_new_string(im->name));
			json_object_object_add(desc, "annotations", ann);
		}
		json_object_array_add(list, desc);
		json_object_put(m);
	}
	json_object_object_add(index, "manifests", list);
	struct json_object *layout = json_object_new_object();
	json_object_object_add(layout, "imageLayoutVersion", json_object_new_string("1.0.0"));
	add_json_blob(j, xstrdup("oci-layout"), layout, NULL);
	add_json_blob(j, xstrdup("index.json"), index, NULL);
	json_object_put(layout);
	json_object_put(index);
}

/* docker save: <id>.json, <diff>/layer.tar, manifest.json (an entry per
 * image, its names as RepoTags) and repositories. */
static void docker_archive(struct save_job *j, struct save_image *ims, size_t n)
{
	struct json_object *manifest = json_object_new_array(), *repos = json_object_new_object();
	for (size_t i = 0; i < n; i++) {
		struct save_image *im = &ims[i];
		struct json_object *entry = NULL;
		_cleanup_free_ char *cfg_name = xasprintf("%s.json", im->id);
		for (size_t k = 0; k < json_object_array_length(manifest) && !entry; k++) {
			struct json_object *e = json_object_array_get_idx(manifest, k), *c;
			if (json_object_object_get_ex(e, "Config", &c) &&
			    !strcmp(json_object_get_string(c), cfg_name))
				entry = e;
		}
		if (!entry) {
			add_blob(j, xstrdup(cfg_name), im->config, im->config_len);
			entry = json_object_new_object();
			json_object_object_add(entry, "Config", json_object_new_string(cfg_name));
			json_object_object_add(entry, "RepoTags", json_object_new_array());
			struct json_object *ls = json_object_new_array();
			for (size_t k = 0; k < im->n; k++) {
				_cleanup_free_ char *p = xasprintf("%s/layer.tar", im->diffs[k]);
				json_object_array_add(ls, json_object_new_string(p));
			}
			json_object_object_add(entry, "Layers", ls);
			json_object_array_add(manifest, entry);
		}
		if (!im->name)
			continue;
		_cleanup_free_ char *fam = hutch_image_ref_familiar(im->name);
		struct json_object *tags;
		json_object_object_get_ex(entry, "RepoTags", &tags);
		json_object_array_add(tags, json_object_new_string(fam));
		/* repositories: {"repo": {"tag": top layer}}, as docker save writes it */
		char *colon = strrchr(fam, ':');
		if (colon && !strchr(colon, '/') && im->n) {
			*colon = '\0';
			struct json_object *r;
			if (!json_object_object_get_ex(repos, fam, &r)) {
				r = json_object_new_object();
				json_object_object_add(repos, fam, r);
			}
			json_object_object_add(r, colon + 1,
					       json_object_new_string(im->diffs[im->n - 1]));
		}
	}
	add_json_blob(j, xstrdup("manifest.json"), manifest, NULL);
	add_json_blob(j, xstrdup("repositories"), repos, NULL);
	json_object_put(manifest);
	json_object_put(repos);
}

/* The output: an unnamed file beside path that gets its name only when it is
 * complete, so a failed or killed save leaves nothing (or the old file). */
static int open_output(const char *path, char **dir_out, struct hutch_err **err)
{
	_cleanup_free_ char *copy = xstrdup(path);
	char *slash = strrchr(copy, '/');
	const char *dir = slash ? (slash == copy ? "/" : (*slash = '\0', copy)) : ".";
	struct stat st;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return hutch_fail(err, 0, "'%s' is a directory: give a file name", path);
	int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
	if (fd < 0)
		return hutch_fail_sys(err, "cannot write '%s' (in directory %s)", path, dir);
	*dir_out = xstrdup(dir);
	return fd;
}

static int name_output(int fd, const char *dir, const char *path, struct hutch_err **err)
{
	if (fsync(fd) < 0)
		return hutch_fail_sys(err, "write '%s'", path);
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	_cleanup_free_ char *tmp = xasprintf("%s/.hutch-save-%d", dir, (int)getpid());
	unlink(tmp);
	if (linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) < 0)
		return hutch_fail_sys(err, "cannot write '%s'", path);
	if (rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		return hutch_fail(err, e, "cannot write '%s'", path);
	}
	return 0;
}

int hutch_image_save(struct hutch_store *s, char *const *refs, size_t n,
		     enum hutch_save_format format, const char *path, struct hutch_err **err)
{
	struct save_job j = {.docker = format == HUTCH_SAVE_DOCKER};
	struct save_image *ims = xcalloc(n, sizeof(*ims));
	_cleanup_free_ char *dir = NULL;
	int ret = -1, fd = -1;
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *shown = printable(refs[i], strlen(refs[i]));
		if (load_image(s, refs[i], &ims[i], err) < 0)
			goto out;
		for (size_t k = 0; k < ims[i].n; k++)
			if (add_layer(s, &j, ims[i].chains[k], ims[i].diffs[k], shown, err) < 0)
				goto out;
	}
	if (j.docker)
		docker_archive(&j, ims, n);
	else
		oci_layout(&j, ims, n);
	fd = path ? open_output(path, &dir, err) : STDOUT_FILENO;
	if (fd < 0)
		goto out;
	j.o = (struct out){
	    .fd = fd, .name = path ? path : "the archive to stdout", .buf = xcalloc(1, COPY_BUF)};
	/* rootless, files of the layers may belong to subordinate ids the user
	 * cannot read: read them as root of a user namespace with those ids */
	struct id_mapping idm;
	id_mapping_for_self(&idm);
	bool ns = getuid() != 0 && idm.subordinate;
	if ((ns ? userns_run(&idm, save_write, &j, err) : save_write(&j, err)) < 0)
		goto out;
	if (path && name_output(fd, dir, path, err) < 0)
		goto out;
	ret = 0;
out:
	if (fd >= 0 && path)
		close(fd);
	save_job_free(&j);
	for (size_t i = 0; i < n; i++)
		save_image_free(&ims[i]);
	free(ims);
	return ret;
}
