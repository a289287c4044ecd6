/* The image store: unpacked layers keyed by ChainID, OCI image configs keyed by
 * the sha256 of their bytes, and a name -> id table (refs.json).
 *
 * Writers take an exclusive flock on store.lock. Everything new is staged under
 * tmp/ (each staging dir flock'd by its writer) and renamed into place, so a
 * writer killed at any moment leaves only a staging dir, which the next open
 * removes. A container holds a shared flock on each of its layer dirs: a layer in
 * use cannot be removed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>

#include "common/idmap.h"
#include "common/sha256.h"
#include "common/util.h"
#include "images/images.h"
#include "images/layer_build_internal.h"
#include "images/layer_internal.h"
#include "images/registry_internal.h"
#include "images/source_internal.h"

struct hutch_store {
	char *root; /* DATA/images */
	int rootfd;
	int lockfd; /* store.lock, flock'd exclusively while writing */
	bool rootless;
	char *download_dir;
	char *tmp_dir;
};

static const char *const default_path_env =
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

static int store_lock(struct hutch_store *s, struct hutch_err **err)
{
	if (s->lockfd < 0) {
		s->lockfd = openat(s->rootfd, "store.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (s->lockfd < 0)
			return hutch_fail_sys(err, "open %s/store.lock", s->root);
	}
	if (flock(s->lockfd, LOCK_EX) < 0)
		return hutch_fail_sys(err, "lock the image store");
	return 0;
}

static void store_unlock(struct hutch_store *s)
{
	if (s->lockfd >= 0)
		flock(s->lockfd, LOCK_UN);
}

/* Create a staging dir under tmp/ and hold its flock. Creation holds tmp/
 * shared and the cleanup below holds it exclusively, so a cleaner never sees
 * a staging dir in the instant before its creator has locked it. */
static int staging_create(struct hutch_store *s, const char *prefix, char *path, size_t size,
			  int *fd_out, struct hutch_err **err)
{
	_cleanup_close_ int tfd = openat(s->rootfd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (tfd < 0 || flock(tfd, LOCK_SH) < 0)
		return hutch_fail_sys(err, "open %s/tmp", s->root);
	snprintf(path, size, "%s/tmp/%s-XXXXXX", s->root, prefix);
	if (!mkdtemp(path))
		return hutch_fail_sys(err, "create a staging dir in %s/tmp", s->root);
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || flock(fd, LOCK_EX) < 0 || mkdirat(fd, "layer", 0755) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		rmdir(path);
		return hutch_fail(err, e, "prepare %s", path);
	}
	*fd_out = fd;
	return 0;
}

/* Remove staging dirs whose writer is gone (their flock is free). */
static void clean_abandoned_staging(struct hutch_store *s)
{
	int tfd = openat(s->rootfd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (tfd < 0)
		return;
	flock(tfd, LOCK_EX); /* released when closedir() closes tfd */
	DIR *d = fdopendir(tfd);
	if (!d) {
		close(tfd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		_cleanup_close_ int e = openat(dirfd(d), de->d_name,
					       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (e < 0 || flock(e, LOCK_EX | LOCK_NB) < 0)
			continue;
		_cleanup_free_ char *abs = xasprintf("%s/tmp/%s", s->root, de->d_name);
		remove_tree_as_owner(abs, NULL);
	}
	closedir(d);
}

/* Whether a ChainID's lock is free (no worker is writing that layer's files);
 * if so, *fd holds it (or is -1: no lock file, nobody can hold it). */
static bool chain_lock_free(struct hutch_store *s, const char *chain, int *fd)
{
	_cleanup_free_ char *name = xasprintf("locks/%.64s", chain);
	*fd = openat(s->rootfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (*fd < 0)
		return errno == ENOENT;
	if (flock(*fd, LOCK_EX | LOCK_NB) == 0)
		return true;
	close(*fd);
	*fd = -1;
	return false;
}

/* Files a writer killed mid-way leaves outside tmp/: write_file_atomic's temp
 * files (NAME.tmp.PID) and a layer's size file whose layer is not there.
 * Every writer of refs.json and configs/ holds the store lock, and every
 * writer of a layer's files the store lock or that ChainID's lock: with those
 * free, such a file is stale, whatever its pid says (pids are reused, and
 * differ between pid namespaces). Never waits: with a writer busy, a later
 * open cleans. */
static void clean_leftovers(struct hutch_store *s)
{
	if (s->lockfd < 0)
		s->lockfd = openat(s->rootfd, "store.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->lockfd < 0 || flock(s->lockfd, LOCK_EX | LOCK_NB) < 0)
		return;
	static const char *const dirs[] = {".", "configs", "layers"};
	for (size_t k = 0; k < ARRAY_SIZE(dirs); k++) {
		int dfd = openat(s->rootfd, dirs[k], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
		if (!d) {
			if (dfd >= 0)
				close(dfd);
			continue;
		}
		bool layers = k == 2;
		struct dirent *de;
		while ((de = readdir(d))) {
			const char *n = de->d_name;
			bool tmp = strstr(n, ".tmp.") != NULL;
			if (!layers) {
				if (tmp && (k == 1 || !strncmp(n, "refs.json.tmp.", 14)))
					unlinkat(dirfd(d), n, 0);
				continue;
			}
			/* layers/: <chain>.size.tmp.PID, or <chain>.size or
			 * <chain>.split without <chain> */
			char chain[65];
			size_t end = strlen(n) >= 70 && !strncmp(n + 64, ".split", 6) ? 70 : 69;
			if (strlen(n) < 69 || (strncmp(n + 64, ".size", 5) && end != 70))
				continue;
			memcpy(chain, n, 64);
			chain[64] = '\0';
			if (!is_hex_string(chain, 64))
				continue;
			struct stat st;
			bool orphan = !n[end] &&
				      fstatat(dirfd(d), chain, &st, AT_SYMLINK_NOFOLLOW) < 0 &&
				      errno == ENOENT;
			if (!orphan && !(tmp && end == 69 && !strncmp(n + 69, ".tmp.", 5)))
				continue;
			int lock;
			if (chain_lock_free(s, chain, &lock))
				unlinkat(dirfd(d), n, 0);
			if (lock >= 0)
				close(lock);
		}
		closedir(d);
	}
	flock(s->lockfd, LOCK_UN);
}

int hutch_store_open(const char *data_root, bool rootless, enum hutch_store_mode mode,
		     struct hutch_store **out, struct hutch_err **err)
{
	_cleanup_free_ char *root = xasprintf("%s/images", data_root);
	static const char *const subdirs[] = {"layers", "configs", "tmp", "locks"};
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	/* a store that exists has its subdirs (the last is made last) */
	if (fd < 0 || faccessat(fd, subdirs[ARRAY_SIZE(subdirs) - 1], F_OK, 0) < 0) {
		for (size_t i = 0; i < ARRAY_SIZE(subdirs); i++) {
			_cleanup_free_ char *p = xasprintf("%s/%s", root, subdirs[i]);
			if (mkdir_p_at(AT_FDCWD, p, 0700, err) < 0) {
				if (fd >= 0)
					close(fd);
				return hutch_err_wrap(err, "open the image store");
			}
		}
		if (fd < 0)
			fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (fd < 0)
		return hutch_fail_sys(err, "open %s", root);
	struct hutch_store *s = xcalloc(1, sizeof(*s));
	s->root = steal_ptr(root);
	s->rootfd = fd;
	s->lockfd = -1;
	s->rootless = rootless;
	if (mode == HUTCH_STORE_WRITE) {
		clean_abandoned_staging(s);
		clean_leftovers(s);
	}
	*out = s;
	return 0;
}

void hutch_store_close(struct hutch_store *s)
{
	if (!s)
		return;
	if (s->lockfd >= 0)
		close(s->lockfd);
	close(s->rootfd);
	free(s->root);
	free(s->download_dir);
	free(s->tmp_dir);
	free(s);
}

/* ---- names ---------------------------------------------------------------- */

/* Every name goes through here (import, pull, tag, lookup, rm), so that
 * "busybox", "busybox:latest", "library/busybox" and
 * "docker.io/library/busybox:latest" are one name, as in Docker: the store
 * keeps the full form, and output shows the familiar one. */
int hutch_image_ref_normalize(const char *ref, char **out, struct hutch_err **err)
{
	*out = NULL;
	size_t len = strlen(ref);
	const char *at = strchr(ref, '@');
	size_t name_len = at ? (size_t)(at - ref) : len;
	char head[65];
	snprintf(head, sizeof(head), "%.64s", ref);
	if (name_len == 64 && is_hex_string(head, 64)) {
		_cleanup_free_ char *shown = printable(ref, len);
		return hutch_fail(err, 0,
				  "invalid image name '%s': 64 hex digits would read as an image "
				  "id",
				  shown);
	}
	struct registry_ref r;
	if (registry_ref_parse(ref, &r, err) < 0)
		return -1;
	*out = steal_ptr(r.name);
	registry_ref_free(&r);
	return 0;
}

/* A name someone gives an image (import NAME, tag DST): normalised, and
 * without a digest, which only the registry's manifest it names can vouch for
 * (a pull stores that one itself). */
static int new_name_normalize(const char *name, char **out, struct hutch_err **err)
{
	if (hutch_image_ref_normalize(name, out, err) < 0)
		return -1;
	/* the input: "repo:tag@digest" normalises to "repo:tag" */
	if (!strchr(name, '@'))
		return 0;
	free(*out);
	*out = NULL;
	_cleanup_free_ char *shown = printable(name, strlen(name));
	return hutch_fail(err, 0,
			  "invalid image name '%s': a name given to an image cannot carry a digest "
			  "(that is a registry manifest's): give a tag",
			  shown);
}

char *hutch_image_ref_familiar(const char *name)
{
	static const char hub[] = "docker.io/", library[] = "docker.io/library/";
	if (!strncmp(name, library, strlen(library))) {
		const char *rest = name + strlen(library);
		if (!strchr(rest, '/'))
			return xstrdup(rest);
	}
	if (!strncmp(name, hub, strlen(hub))) {
		/* "docker.io/a.b/c" stays whole: "a.b/c" would name host a.b */
		const char *rest = name + strlen(hub);
		size_t first = strcspn(rest, "/");
		bool host_like = memchr(rest, '.', first) || memchr(rest, ':', first) ||
				 (first == 9 && !strncmp(rest, "localhost", 9));
		if (!host_like)
			return xstrdup(rest);
	}
	return xstrdup(name);
}

/* refs.json maps full names to ids. A store written before names were
 * normalised has familiar keys ("bb:latest"): they are read as their full
 * form, and saved so at the next write. */
static int refs_load(struct hutch_store *s, struct json_object **out, struct hutch_err **err)
{
	_cleanup_free_ char *text = NULL;
	if (read_file_at(s->rootfd, "refs.json", &text, NULL, NULL) < 0) {
		if (errno != ENOENT)
			return hutch_fail_sys(err, "read %s/refs.json", s->root);
		*out = json_object_new_object();
		return 0;
	}
	struct json_object *j = json_tokener_parse(text);
	if (!j || !json_object_is_type(j, json_type_object)) {
		json_object_put(j);
		return hutch_fail(err, 0, "%s/refs.json is corrupt", s->root);
	}
	struct json_object *norm = json_object_new_object();
	json_object_object_foreach(j, key, val)
	{
		_cleanup_free_ char *full = NULL;
		if (hutch_image_ref_normalize(key, &full, NULL) < 0)
			continue; /* no name hutch could look up */
		json_object_object_add(norm, full, json_object_get(val));
	}
	json_object_put(j);
	*out = norm;
	return 0;
}

static int refs_save(struct hutch_store *s, struct json_object *refs, struct hutch_err **err)
{
	const char *text = json_object_to_json_string_ext(refs, JSON_C_TO_STRING_PRETTY);
	return write_file_atomic(s->rootfd, "refs.json", text, strlen(text), err);
}

/* ---- configs -------------------------------------------------------------- */

static char **json_strv(struct json_object *arr, size_t *n)
{
	*n = 0;
	if (arr && json_object_is_type(arr, json_type_string)) {
		/* Docker's Entrypoint and Cmd may be one string (its strslice) */
		char **v = xcalloc(2, sizeof(char *));
		v[(*n)++] = xstrdup(json_object_get_string(arr));
		return v;
	}
	if (!arr || !json_object_is_type(arr, json_type_array))
		return NULL;
	size_t len = json_object_array_length(arr);
	char **v = xcalloc(len + 1, sizeof(char *));
	for (size_t i = 0; i < len; i++) {
		const char *str = json_object_get_string(json_object_array_get_idx(arr, i));
		v[(*n)++] = xstrdup(str ? str : "");
	}
	return v;
}

static const char *json_str(struct json_object *o, const char *key)
{
	struct json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static struct json_object *json_get(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;
	if (o)
		json_object_object_get_ex(o, key, &v);
	return v;
}

/* ChainID(L0) = DiffID(L0); ChainID(L0..Ln) = sha256(ChainID(L0..Ln-1) + " " + DiffID(Ln)) */
static void chain_id_next(const char *prev_hex, const char *diff_hex, char out[65])
{
	if (!prev_hex) {
		memcpy(out, diff_hex, 65);
		return;
	}
	char buf[2 * 72 + 2];
	int n = snprintf(buf, sizeof(buf), "sha256:%s sha256:%s", prev_hex, diff_hex);
	struct sha256_ctx ctx;
	uint8_t d[32];
	sha256_init(&ctx);
	sha256_update(&ctx, buf, (size_t)n);
	sha256_final(&ctx, d);
	sha256_hex(d, out);
}

/* Bytes of file data under dirfd (a hardlinked file counted once in all). */
static int64_t tree_data_bytes(int fd, int depth)
{
	if (depth > 256)
		return 0;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return 0;
	}
	int64_t total = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISREG(st.st_mode)) {
			total += st.st_size / (st.st_nlink ? (int64_t)st.st_nlink : 1);
		} else if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd(d), de->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0)
				total += tree_data_bytes(sub, depth + 1);
		}
	}
	closedir(d);
	return total;
}

static int64_t layer_size(struct hutch_store *s, const char *chain)
{
	_cleanup_free_ char *p = xasprintf("layers/%s.size", chain);
	_cleanup_free_ char *t = NULL;
	if (read_file_at(s->rootfd, p, &t, NULL, NULL) == 0)
		return strtoll(t, NULL, 10);
	/* A crash between a layer's rename and its size file: measure it once. */
	_cleanup_free_ char *dir = xasprintf("layers/%s", chain);
	int fd = openat(s->rootfd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 0;
	int64_t size = tree_data_bytes(fd, 0);
	char buf[32];
	snprintf(buf, sizeof(buf), "%lld", (long long)size);
	write_file_atomic(s->rootfd, p, buf, strlen(buf), NULL);
	return size;
}

/* Parse a config's rootfs.diff_ids into chain ids (validated hex). */
static int config_chain_ids(struct json_object *cfg, const char *id, char (**chains)[65],
			    size_t *n, struct hutch_err **err)
{
	struct json_object *diffs = json_get(json_get(cfg, "rootfs"), "diff_ids");
	if (!diffs || !json_object_is_type(diffs, json_type_array) ||
	    json_object_array_length(diffs) == 0)
		return hutch_fail(err, 0, "image %.12s has no layers in its config", id);
	size_t len = json_object_array_length(diffs);
	char(*out)[65] = xcalloc(len, 65);
	for (size_t i = 0; i < len; i++) {
		const char *d = json_object_get_string(json_object_array_get_idx(diffs, i));
		if (!d || !digest_is_valid(d, false)) {
			free(out);
			return hutch_fail(err, 0, "image %.12s: invalid layer digest '%s'", id,
					  d ? d : "");
		}
		chain_id_next(i ? out[i - 1] : NULL, d + 7, out[i]);
	}
	*chains = out;
	*n = len;
	return 0;
}

static int load_config(struct hutch_store *s, const char *id, struct json_object **out,
		       struct hutch_err **err)
{
	if (!digest_is_valid(id, true))
		return hutch_fail(err, 0, "invalid image id '%s'", id);
	_cleanup_free_ char *p = xasprintf("configs/%s.json", id);
	_cleanup_free_ char *text = NULL;
	if (read_file_at(s->rootfd, p, &text, NULL, err) < 0)
		return hutch_err_wrap(err, "image %.12s", id);
	struct json_object *j = json_tokener_parse(text);
	if (!j)
		return hutch_fail(err, 0, "image %.12s: corrupt config %s/%s", id, s->root, p);
	*out = j;
	return 0;
}

/* Find the id for a name or an id prefix. */
static int resolve_ref(struct hutch_store *s, struct json_object *refs, const char *ref,
		       char id[65], char **name_out, struct hutch_err **err)
{
	_cleanup_free_ char *norm = NULL;
	if (hutch_image_ref_normalize(ref, &norm, NULL) == 0) {
		const char *v = json_str(refs, norm);
		if (v && digest_is_valid(v, true)) {
			memcpy(id, v, 65);
			if (name_out)
				*name_out = steal_ptr(norm);
			return 0;
		}
	}
	const char *hex = !strncmp(ref, "sha256:", 7) ? ref + 7 : ref;
	size_t hl = strlen(hex);
	if (hl >= 4 && hl <= 64 && is_hex_string(hex, hl)) {
		_cleanup_free_ char *dir = xasprintf("%s/configs", s->root);
		DIR *d = opendir(dir);
		if (d) {
			int matches = 0;
			struct dirent *de;
			while ((de = readdir(d))) {
				if (strlen(de->d_name) != 69 || strncmp(de->d_name, hex, hl))
					continue;
				memcpy(id, de->d_name, 64);
				id[64] = '\0';
				matches++;
			}
			closedir(d);
			if (matches == 1) {
				if (name_out)
					*name_out = xstrdup(id);
				return 0;
			}
			if (matches > 1)
				return hutch_fail(err, 0, "image id prefix '%s' is ambiguous", ref);
		}
	}
	return hutch_fail(err, 0,
			  "image '%s' not found (import it with 'hutch image import' or list "
			  "them with 'hutch image ls')",
			  ref);
}

void hutch_image_free(struct hutch_image *img)
{
	if (!img)
		return;
	free(img->name);
	for (size_t i = 0; i < img->n_layers; i++) {
		free(img->layer_dirs[i]);
		if (img->layer_fds && img->layer_fds[i] >= 0)
			close(img->layer_fds[i]); /* releases the shared lock */
	}
	free(img->layer_dirs);
	free(img->layer_fds);
	char **vs[] = {img->env, img->entrypoint, img->cmd};
	size_t ns[] = {img->n_env, img->n_entrypoint, img->n_cmd};
	for (size_t k = 0; k < 3; k++) {
		for (size_t i = 0; i < ns[k]; i++)
			free(vs[k][i]);
		free(vs[k]);
	}
	free(img->workdir);
	free(img->user);
	free(img->stop_signal);
	free(img);
}

int hutch_image_get(struct hutch_store *s, const char *ref, struct hutch_image **out,
		    struct hutch_err **err)
{
	struct json_object *refs = NULL, *cfg = NULL;
	struct hutch_image *img = xcalloc(1, sizeof(*img));
	char(*chains)[65] = NULL;
	int ret = -1;
	_cleanup_free_ char *full = NULL;
	if (refs_load(s, &refs, err) < 0 || resolve_ref(s, refs, ref, img->id, &full, err) < 0)
		goto out;
	img->name = hutch_image_ref_familiar(full);
	if (load_config(s, img->id, &cfg, err) < 0 ||
	    config_chain_ids(cfg, img->id, &chains, &img->n_layers, err) < 0)
		goto out;
	img->layer_dirs = xcalloc(img->n_layers, sizeof(char *));
	img->layer_fds = xcalloc(img->n_layers, sizeof(int));
	for (size_t i = 0; i < img->n_layers; i++)
		img->layer_fds[i] = -1;
	for (size_t i = 0; i < img->n_layers; i++) {
		img->layer_dirs[i] = xasprintf("%s/layers/%s", s->root, chains[i]);
		img->layer_fds[i] = open(img->layer_dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (img->layer_fds[i] < 0 || flock(img->layer_fds[i], LOCK_SH) < 0) {
			hutch_fail_sys(err, "image '%s': layer %.12s is missing from the store", ref,
				       chains[i]);
			goto out;
		}
		/* An `image rm` or prune holds the layer exclusively until it has
		 * renamed it away: once the shared lock is granted, the dir must
		 * still be the one at that path, or the image was just removed. */
		struct stat held, now;
		if (fstat(img->layer_fds[i], &held) < 0 || stat(img->layer_dirs[i], &now) < 0 ||
		    held.st_ino != now.st_ino || held.st_dev != now.st_dev) {
			hutch_fail(err, ENOENT,
				   "image '%s': layer %.12s was removed from the store just now "
				   "(by 'hutch image rm' or prune)",
				   ref, chains[i]);
			goto out;
		}
		img->size += layer_size(s, chains[i]);
	}
	struct json_object *c = json_get(cfg, "config");
	img->env = json_strv(json_get(c, "Env"), &img->n_env);
	img->entrypoint = json_strv(json_get(c, "Entrypoint"), &img->n_entrypoint);
	img->cmd = json_strv(json_get(c, "Cmd"), &img->n_cmd);
	const char *wd = json_str(c, "WorkingDir"), *user = json_str(c, "User"),
		   *stop = json_str(c, "StopSignal"), *created = json_str(cfg, "created");
	img->workdir = wd && *wd ? xstrdup(wd) : NULL;
	img->user = user && *user ? xstrdup(user) : NULL;
	img->stop_signal = stop && *stop ? xstrdup(stop) : NULL;
	struct tm tm = {0};
	if (created && strptime(created, "%Y-%m-%dT%H:%M:%S", &tm))
		img->created = timegm(&tm);
	*out = img;
	img = NULL;
	ret = 0;
out:
	free(chains);
	json_object_put(refs);
	json_object_put(cfg);
	hutch_image_free(img);
	return ret;
}

/* ---- import --------------------------------------------------------------- */

struct stream_reader {
	struct layer_stream *ls;
	struct hutch_err **err;
};

static ssize_t stream_read_cb(void *ctx, void *buf, size_t len)
{
	struct stream_reader *r = ctx;
	ssize_t n = layer_stream_read(r->ls, buf, len, r->err);
	if (n < 0)
		errno = EIO;
	return n;
}

/* A directory is imported by reading it as a tar stream, so that it gets a
 * diff_id like any other layer: tar(1) walks it, numeric owners, sorted. */
static int open_dir_as_tar(const char *dir, pid_t *pid, struct hutch_err **err)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return hutch_fail_sys(err, "pipe");
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	char *argv[] = {"tar", "--sort=name", "--numeric-owner", "--xattrs", "--xattrs-include=*",
			"-C", (char *)dir, "-cf", "-", ".", NULL};
	extern char **environ;
	int r = posix_spawnp(pid, "tar", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (r != 0) {
		close(p[0]);
		return hutch_fail(err, r, "run tar to read directory %s", dir);
	}
	return p[0];
}

/* Decompress, unpack into staging/layer and digest one layer stream. */
struct unpack_job {
	int in, stagefd;
	off_t offset; /* -1: read from the current position */
	int64_t length; /* -1: to EOF */
	bool rootless, convert_whiteouts;
	const struct hutch_layer_add *progress; /* its progress callback, or NULL */
	char comp_hex[65], diff_hex[65];
	struct unpack_stats stats;
};

static void unpack_progress(void *data, uint64_t bytes, uint64_t files)
{
	const struct hutch_layer_add *a = data;
	a->progress(a->progress_data, HUTCH_LAYER_WRITE, bytes, files, false);
}

static int unpack_job_run(struct unpack_job *j, struct hutch_err **err)
{
	struct layer_stream *ls = NULL;
	struct tar_reader *tr = NULL;
	int ret = -1;
	if (layer_stream_open_range(j->in, j->offset, j->length, &ls, err) < 0)
		return -1;
	struct stream_reader rd = {.ls = ls, .err = err};
	tr = tar_reader_new(stream_read_cb, &rd);
	_cleanup_close_ int layerfd = openat(j->stagefd, "layer", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct unpack_opts uo = {.rootless = j->rootless, .convert_whiteouts = j->convert_whiteouts};
	if (layerfd < 0) {
		hutch_fail_sys(err, "open the staging layer");
		goto out;
	}
	int splitfd = openat(j->stagefd, "split", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (splitfd < 0) {
		hutch_fail_sys(err, "create the staging layer's split file");
		goto out;
	}
	uo.split = tar_split_new(splitfd);
	if (j->progress && j->progress->progress) {
		uo.progress = unpack_progress;
		uo.progress_data = (void *)j->progress;
	}
	tar_reader_set_tap(tr, tar_split_tap, uo.split);
	/* The guard against decompression bombs is the space there is: a file
	 * that cannot fit is refused at its tar header, before any of it is
	 * written, and a stream that goes on past it (data after the tar's end)
	 * is cut off. containerd has no guard of its own and lets the disk fill;
	 * a ratio limit (this file used one) refuses real layers that hold big
	 * runs of zeros, which compress better than 1000:1. */
	struct statvfs vfs;
	if (fstatvfs(layerfd, &vfs) == 0) {
		uo.max_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize;
		if (!uo.max_bytes)
			uo.max_bytes = 1; /* full: 0 would mean no limit */
		layer_stream_set_max(ls, uo.max_bytes);
	}
	if (layer_unpack(tr, layerfd, &uo, &j->stats, err) < 0) {
		if (tar_reader_failed(tr))
			layer_stream_check_rest(ls, err);
		goto out;
	}
	if (tar_reader_drain(tr, err) < 0)
		goto out;
	int r = tar_split_finish(uo.split, err);
	uo.split = NULL;
	if (r < 0 || layer_stream_finish(ls, j->comp_hex, j->diff_hex, err) < 0)
		goto out;
	if (uo.progress)
		j->progress->progress(j->progress->progress_data, HUTCH_LAYER_WRITE, j->stats.bytes,
				      j->stats.files, true);
	ret = 0;
out:
	tar_split_free(uo.split);
	tar_reader_free(tr);
	layer_stream_free(ls);
	return ret;
}

/* In a user namespace child: the results go back through a file in staging. */
static int unpack_job_in_userns(void *arg, struct hutch_err **err)
{
	struct unpack_job *j = arg;
	if (unpack_job_run(j, err) < 0)
		return -1;
	char buf[256];
	snprintf(buf, sizeof(buf), "%s %s %llu %llu", j->comp_hex, j->diff_hex,
		 (unsigned long long)j->stats.entries, (unsigned long long)j->stats.bytes);
	return write_file_at(j->stagefd, "result", buf, err);
}

static int unpack_job_result(struct unpack_job *j, struct hutch_err **err)
{
	_cleanup_free_ char *text = NULL;
	if (read_file_at(j->stagefd, "result", &text, NULL, err) < 0)
		return -1;
	unsigned long long entries, bytes;
	if (sscanf(text, "%64s %64s %llu %llu", j->comp_hex, j->diff_hex, &entries, &bytes) != 4 ||
	    !digest_is_valid(j->diff_hex, true))
		return hutch_fail(err, 0, "unpacking in the user namespace gave no result");
	j->stats.entries = entries;
	j->stats.bytes = bytes;
	return 0;
}

/* The layer's split file (see tar_split in layer_internal.h) goes next to it,
 * as layers/<chain>.split, once the layer is stored: without it `image save`
 * cannot give the layer back with its digest. */
static void keep_split(struct hutch_store *s, int stagefd, const char *chain)
{
	_cleanup_free_ char *dst = xasprintf("layers/%s.split", chain);
	struct stat st;
	if (fstatat(s->rootfd, dst, &st, 0) < 0)
		renameat(stagefd, "split", s->rootfd, dst);
}

static char *iso8601_now(void)
{
	char buf[64];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return xstrdup(buf);
}

static int write_config(struct hutch_store *s, const char *diff_hex, const char *src,
			char id[65], struct hutch_err **err)
{
	_cleanup_free_ char *created = iso8601_now();
	struct json_object *cfg = json_object_new_object();
	json_object_object_add(cfg, "created", json_object_new_string(created));
	/* A rootfs is whatever this machine runs: label it with the host's
	 * platform, so that inspect and platform checks tell the truth. */
	struct image_platform host;
	image_platform_host(&host);
	json_object_object_add(cfg, "architecture", json_object_new_string(host.arch));
	json_object_object_add(cfg, "os", json_object_new_string(host.os));
	if (host.variant[0])
		json_object_object_add(cfg, "variant", json_object_new_string(host.variant));
	struct json_object *c = json_object_new_object();
	struct json_object *env = json_object_new_array();
	json_object_array_add(env, json_object_new_string(default_path_env));
	json_object_object_add(c, "Env", env);
	struct json_object *cmd = json_object_new_array();
	json_object_array_add(cmd, json_object_new_string("/bin/sh"));
	json_object_object_add(c, "Cmd", cmd);
	json_object_object_add(cfg, "config", c);
	struct json_object *rootfs = json_object_new_object();
	json_object_object_add(rootfs, "type", json_object_new_string("layers"));
	struct json_object *diffs = json_object_new_array();
	_cleanup_free_ char *d = xasprintf("sha256:%s", diff_hex);
	json_object_array_add(diffs, json_object_new_string(d));
	json_object_object_add(rootfs, "diff_ids", diffs);
	json_object_object_add(cfg, "rootfs", rootfs);
	struct json_object *hist = json_object_new_array(), *h = json_object_new_object();
	json_object_object_add(h, "created", json_object_new_string(created));
	_cleanup_free_ char *by = xasprintf("hutch image import %s", src);
	json_object_object_add(h, "created_by", json_object_new_string(by));
	json_object_array_add(hist, h);
	json_object_object_add(cfg, "history", hist);

	const char *text = json_object_to_json_string_ext(cfg, JSON_C_TO_STRING_PLAIN);
	size_t len = strlen(text);
	struct sha256_ctx ctx;
	uint8_t dg[32];
	sha256_init(&ctx);
	sha256_update(&ctx, text, len);
	sha256_final(&ctx, dg);
	sha256_hex(dg, id);
	_cleanup_free_ char *path = xasprintf("configs/%s.json", id);
	int r = write_file_atomic(s->rootfd, path, text, len, err);
	json_object_put(cfg);
	return r;
}

int hutch_image_import(struct hutch_store *s, const char *src, const char *name,
		       char out_id[65], struct hutch_err **err)
{
	_cleanup_free_ char *ref = NULL;
	if (new_name_normalize(name, &ref, err) < 0)
		return -1;
	struct stat st;
	if (stat(src, &st) < 0)
		return hutch_fail_sys(err, "import '%s'", src);
	if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode))
		return hutch_fail(err, 0, "import '%s': not a file or a directory", src);

	/* Unpack outside the store lock: it is the long part, and staging makes it
	 * invisible until the rename. */
	char staging[PATH_MAX];
	_cleanup_close_ int stagefd = -1;
	if (staging_create(s, "import", staging, sizeof(staging), &stagefd, err) < 0)
		return -1;

	int ret = -1;
	pid_t tar_pid = -1;
	int in = S_ISDIR(st.st_mode) ? open_dir_as_tar(src, &tar_pid, err)
				     : open(src, O_RDONLY | O_CLOEXEC);
	char comp_hex[65], diff_hex[65], chain[65];
	struct unpack_stats stats = {0};
	_cleanup_free_ char *layer_path = NULL, *size_path = NULL;
	if (in < 0) {
		if (!S_ISDIR(st.st_mode))
			hutch_fail_sys(err, "open '%s'", src);
		goto out;
	}
	struct unpack_job job = {.in = in, .stagefd = stagefd, .offset = -1, .length = -1,
				 .rootless = s->rootless};
	struct id_mapping idm;
	id_mapping_for_self(&idm);
	if (s->rootless && idm.subordinate) {
		/* Root of a user namespace with our subordinate ids can give every file
		 * its owner from the image (as far as the mapping reaches). */
		if (userns_run(&idm, unpack_job_in_userns, &job, err) < 0 ||
		    unpack_job_result(&job, err) < 0)
			goto out;
	} else if (unpack_job_run(&job, err) < 0) {
		goto out;
	}
	memcpy(comp_hex, job.comp_hex, 65);
	memcpy(diff_hex, job.diff_hex, 65);
	stats = job.stats;
	if (stats.entries == 0) {
		hutch_fail(err, 0, "'%s' holds no files: not a rootfs tarball", src);
		goto out;
	}
	if (tar_pid > 0) {
		int status;
		waitpid(tar_pid, &status, 0);
		tar_pid = -1;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			hutch_fail(err, 0, "reading directory '%s' with tar failed", src);
			goto out;
		}
	}
	chain_id_next(NULL, diff_hex, chain);
	if (syncfs(stagefd) < 0) {
		hutch_fail_sys(err, "sync the image store");
		goto out;
	}

	if (store_lock(s, err) < 0)
		goto out;
	layer_path = xasprintf("layers/%s", chain);
	if (renameat(stagefd, "layer", s->rootfd, layer_path) < 0) {
		if (errno != EEXIST && errno != ENOTEMPTY) {
			hutch_fail_sys(err, "store layer %.12s", chain);
			store_unlock(s);
			goto out;
		}
		/* the same layer is already there: keep that one */
	}
	keep_split(s, stagefd, chain);
	char size_buf[32];
	snprintf(size_buf, sizeof(size_buf), "%llu", (unsigned long long)stats.bytes);
	size_path = xasprintf("layers/%s.size", chain);
	struct json_object *refs = NULL;
	if (write_file_atomic(s->rootfd, size_path, size_buf, strlen(size_buf), err) < 0 ||
	    write_config(s, diff_hex, src, out_id, err) < 0 || refs_load(s, &refs, err) < 0) {
		store_unlock(s);
		goto out;
	}
	json_object_object_add(refs, ref, json_object_new_string(out_id));
	ret = refs_save(s, refs, err);
	json_object_put(refs);
	store_unlock(s);
out:
	if (ret < 0)
		hutch_err_wrap(err, "import '%s'", src);
	if (tar_pid > 0) {
		kill(tar_pid, SIGKILL);
		waitpid(tar_pid, NULL, 0);
	}
	if (in >= 0)
		close(in);
	remove_tree_as_owner(staging, NULL);
	return ret;
}

/* ---- list and remove ------------------------------------------------------ */

void hutch_image_list_free(struct hutch_image_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->refs[i].name);
	free(l->refs);
	*l = (struct hutch_image_list){0};
}

int hutch_image_list(struct hutch_store *s, struct hutch_image_list *out, struct hutch_err **err)
{
	*out = (struct hutch_image_list){0};
	struct json_object *refs = NULL;
	if (refs_load(s, &refs, err) < 0)
		return -1;
	json_object_object_foreach(refs, key, val)
	{
		const char *id = json_object_get_string(val);
		if (!id || !digest_is_valid(id, true))
			continue;
		struct json_object *cfg = NULL;
		if (load_config(s, id, &cfg, NULL) < 0)
			continue;
		out->refs = xrealloc(out->refs, (out->n + 1) * sizeof(*out->refs));
		struct hutch_image_ref *r = &out->refs[out->n++];
		*r = (struct hutch_image_ref){.name = hutch_image_ref_familiar(key)};
		memcpy(r->id, id, 65);
		const char *created = json_str(cfg, "created");
		struct tm tm = {0};
		if (created && strptime(created, "%Y-%m-%dT%H:%M:%S", &tm))
			r->created = timegm(&tm);
		char(*chains)[65] = NULL;
		size_t n = 0;
		if (config_chain_ids(cfg, id, &chains, &n, NULL) == 0)
			for (size_t i = 0; i < n; i++)
				r->size += layer_size(s, chains[i]);
		free(chains);
		json_object_put(cfg);
	}
	json_object_put(refs);
	return 0;
}

static bool chain_used_by_other(struct hutch_store *s, struct json_object *refs,
				const char *except_id, const char *chain)
{
	bool used = false;
	json_object_object_foreach(refs, key, val)
	{
		(void)key;
		const char *id = json_object_get_string(val);
		if (used || !id || !strcmp(id, except_id))
			continue;
		struct json_object *cfg = NULL;
		char(*chains)[65] = NULL;
		size_t n = 0;
		if (load_config(s, id, &cfg, NULL) == 0 &&
		    config_chain_ids(cfg, id, &chains, &n, NULL) == 0)
			for (size_t i = 0; i < n && !used; i++)
				used = !strcmp(chains[i], chain);
		free(chains);
		json_object_put(cfg);
	}
	return used;
}

/* Take a layer out of the store: renamed into tmp/ first (a crash mid-way
 * leaves staging debris, which the next open removes), then deleted. The
 * caller holds it exclusively (held), so no container can start on it between
 * the check and the rename: a `hutch run` waits for the lock and then sees the
 * layer gone. */
static void layer_discard(struct hutch_store *s, const char *chain, int held)
{
	_cleanup_free_ char *p = xasprintf("layers/%s", chain);
	_cleanup_free_ char *sz = xasprintf("layers/%s.size", chain);
	_cleanup_free_ char *split = xasprintf("layers/%s.split", chain);
	_cleanup_free_ char *trash = xasprintf("tmp/rm-%s", chain);
	bool moved = renameat(s->rootfd, p, s->rootfd, trash) == 0;
	unlinkat(s->rootfd, sz, 0);
	unlinkat(s->rootfd, split, 0);
	if (held >= 0)
		close(held);
	if (moved) {
		_cleanup_free_ char *abs = xasprintf("%s/%s", s->root, trash);
		remove_tree_as_owner(abs, NULL);
	}
}

int hutch_image_remove(struct hutch_store *s, const char *ref, struct hutch_image_removal *out,
		       struct hutch_err **err)
{
	if (out)
		*out = (struct hutch_image_removal){0};
	if (store_lock(s, err) < 0)
		return -1;
	struct json_object *refs = NULL, *cfg = NULL;
	_cleanup_free_ char *name = NULL;
	char id[65];
	char(*chains)[65] = NULL;
	int *held = NULL;
	size_t n = 0;
	int ret = -1;
	if (refs_load(s, &refs, err) < 0 || resolve_ref(s, refs, ref, id, &name, err) < 0)
		goto out;
	bool by_id = !strcmp(name, id);
	if (load_config(s, id, &cfg, err) < 0 || config_chain_ids(cfg, id, &chains, &n, err) < 0)
		goto out;
	/* By id, as docker: the image's only name goes with it; several are
	 * refused (which one was meant?). */
	char *listed = NULL;
	size_t n_names = 0;
	json_object_object_foreach(refs, key, val)
	{
		const char *v = json_object_get_string(val);
		if (!by_id || !v || strcmp(v, id))
			continue;
		_cleanup_free_ char *familiar = hutch_image_ref_familiar(key);
		char *joined = listed ? xasprintf("%s, %s", listed, familiar) : xstrdup(familiar);
		free(listed);
		listed = joined;
		if (n_names++ == 0) {
			free(name);
			name = xstrdup(key);
		}
	}
	if (n_names > 1) {
		hutch_fail(err, 0, "image %.12s has several names (%s): remove them by name", id,
			   listed);
		free(listed);
		goto out;
	}
	free(listed);
	if (n_names == 1)
		by_id = false;
	bool still_named = false;
	json_object_object_foreach(refs, key2, val2)
	{
		const char *v = json_object_get_string(val2);
		if (v && !strcmp(v, id) && (by_id || strcmp(key2, name)))
			still_named = true;
	}
	/* Refuse while a container uses any layer that would go; hold each of
	 * them (exclusively) until it is renamed away. */
	held = xcalloc(n ? n : 1, sizeof(int));
	for (size_t i = 0; i < n; i++)
		held[i] = -1;
	if (!still_named) {
		for (size_t i = 0; i < n; i++) {
			if (chain_used_by_other(s, refs, id, chains[i]))
				continue;
			_cleanup_free_ char *p = xasprintf("layers/%s", chains[i]);
			held[i] = openat(s->rootfd, p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (held[i] >= 0 && flock(held[i], LOCK_EX | LOCK_NB) < 0) {
				hutch_fail(err, 0,
					   "image '%s' is in use (by a container, or an import "
					   "that shares its layers): stop or remove the container "
					   "first",
					   ref);
				goto out;
			}
		}
	}
	if (!by_id) {
		json_object_object_del(refs, name);
		if (refs_save(s, refs, err) < 0)
			goto out;
		if (out)
			out->untagged = hutch_image_ref_familiar(name);
	}
	if (!still_named) {
		for (size_t i = 0; i < n; i++) {
			if (held[i] < 0)
				continue;
			layer_discard(s, chains[i], held[i]);
			held[i] = -1;
		}
		_cleanup_free_ char *cp = xasprintf("configs/%s.json", id);
		unlinkat(s->rootfd, cp, 0);
		if (out)
			memcpy(out->deleted, id, 65);
	}
	ret = 0;
out:
	for (size_t i = 0; held && i < n; i++)
		if (held[i] >= 0)
			close(held[i]);
	free(held);
	free(chains);
	json_object_put(cfg);
	json_object_put(refs);
	store_unlock(s);
	return ret;
}

void hutch_image_removal_free(struct hutch_image_removal *r)
{
	free(r->untagged);
	r->untagged = NULL;
}

/* ---- importing an image plan (OCI layouts, docker archives, registries) ----- */

const char *store_tmp_dir(struct hutch_store *s)
{
	if (!s->tmp_dir)
		s->tmp_dir = xasprintf("%s/tmp", s->root);
	return s->tmp_dir;
}

const char *store_download_dir(struct hutch_store *s)
{
	if (!s->download_dir) {
		s->download_dir = xasprintf("%s/downloads", s->root);
		mkdir(s->download_dir, 0700);
	}
	return s->download_dir;
}

bool store_has_chain(struct hutch_store *s, const char *chain_hex)
{
	if (!digest_is_valid(chain_hex, true))
		return false;
	_cleanup_free_ char *p = xasprintf("layers/%s", chain_hex);
	struct stat st;
	return fstatat(s->rootfd, p, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

int store_config_chains(const char *config, size_t len, char (**chains)[65], size_t *n,
			struct hutch_err **err)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *cfg = json_tokener_parse_ex(tok, config, (int)len);
	json_tokener_free(tok);
	if (!cfg || !json_object_is_type(cfg, json_type_object)) {
		json_object_put(cfg);
		return hutch_fail(err, 0, "the image config is not a JSON object");
	}
	int r = config_chain_ids(cfg, "new", chains, n, err);
	json_object_put(cfg);
	return r;
}

struct plan_job {
	size_t index;
	char chain[65];
	char diff_id[72];
	int held; /* O_RDONLY fd of the stored layer, flock'd shared until the commit */
	pid_t parent; /* the importing process */
	char staging[PATH_MAX];
	int stagefd;
	pid_t pid;
	int pidfd; /* the worker's: only it is waited for, never any child */
	bool needed;
};

/* Verify what a worker unpacked against the plan and the config. */
static int plan_check_layer(struct plan_job *j, const struct plan_layer *l,
			    struct hutch_err **err)
{
	struct unpack_job res = {.stagefd = j->stagefd};
	if (unpack_job_result(&res, err) < 0)
		return -1;
	/* sha256 of no bytes at all: an empty blob, said as such (not as a
	 * digest mismatch that sends one comparing hashes) */
	static const char empty_hex[] =
	    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
	bool empty = !strcmp(res.comp_hex, empty_hex);
	if (empty && ((l->digest[0] && strcmp(l->digest + 7, res.comp_hex)) ||
		      strcmp(j->diff_id + 7, res.diff_hex)))
		return hutch_fail(
		    err, 0,
		    "the layer's blob is empty (0 bytes), but the %s gives it the digest %s: "
		    "refusing a truncated or tampered layer",
		    l->digest[0] && strcmp(l->digest + 7, res.comp_hex) ? "manifest"
									: "image config",
		    l->digest[0] && strcmp(l->digest + 7, res.comp_hex) ? l->digest : j->diff_id);
	if (l->digest[0] && strcmp(l->digest + 7, res.comp_hex))
		return hutch_fail(err, 0,
				  "the blob's digest is sha256:%s, not %s as the manifest says: "
				  "refusing a corrupt or tampered layer",
				  res.comp_hex, l->digest);
	if (strcmp(j->diff_id + 7, res.diff_hex))
		return hutch_fail(err, 0,
				  "its uncompressed digest is sha256:%s, not %s as the image config "
				  "says: refusing a corrupt or tampered layer",
				  res.diff_hex, j->diff_id);
	char size[32];
	snprintf(size, sizeof(size), "%llu", (unsigned long long)res.stats.bytes);
	return write_file_at(j->stagefd, "size", size, err);
}

/* The lock file of a ChainID, flock'd exclusively. Prune unlinks lock files
 * that nobody holds; one opened just before such an unlink and locked after it
 * would be a lock no other import sees (both would unpack the layer), so
 * after locking, the path must still name the file locked, else again. */
static int chain_lock(struct hutch_store *s, const char *chain, struct hutch_err **err)
{
	_cleanup_free_ char *name = xasprintf("locks/%s", chain);
	for (int tries = 0; tries < 1000; tries++) {
		int fd = openat(s->rootfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 || flock(fd, LOCK_EX) < 0) {
			int e = errno;
			if (fd >= 0)
				close(fd);
			return hutch_fail(err, e, "lock layer %.12s (%s/%s)", chain, s->root, name);
		}
		struct stat locked, now;
		if (fstat(fd, &locked) == 0 &&
		    fstatat(s->rootfd, name, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
		    locked.st_ino == now.st_ino && locked.st_dev == now.st_dev)
			return fd;
		close(fd);
	}
	return hutch_fail(err, 0, "lock layer %.12s: its lock file keeps being removed", chain);
}

/* A layer blob named by a source: opened without following a symlink in its
 * last component and without blocking on a fifo planted there, and it must be
 * a regular file (the source checked, but the file may have changed since). */
static int open_layer_blob(const struct image_plan *p, const struct plan_layer *l,
			   struct hutch_err **err)
{
	if (l->in_tmp) {
		int fd = fcntl(p->tmp_fd, F_DUPFD_CLOEXEC, 0);
		return fd < 0 ? hutch_fail_sys(err, "duplicate the archive's temp file") : fd;
	}
	int fd = open(l->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return hutch_fail_sys(err, "open layer blob %s", l->path);
	struct stat st;
	if (fstat(fd, &st) < 0) {
		hutch_fail_sys(err, "stat layer blob %s", l->path);
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return hutch_fail(err, 0, "layer blob %s is not a regular file", l->path);
	}
	return fd;
}

/* The work of plan_layer_child, under that ChainID's lock. */
static int plan_layer_work(struct hutch_store *s, const struct image_plan *p,
			   const struct plan_layer *l, struct plan_job *j, struct hutch_err **err)
{
	/* lock files stay (unlinking a lock file races with its next user);
	 * prune removes the free ones */
	_cleanup_close_ int lock = chain_lock(s, j->chain, err);
	if (lock < 0)
		return -1;
	if (store_has_chain(s, j->chain))
		return 0; /* another import stored it meanwhile */
	_cleanup_close_ int fd = open_layer_blob(p, l, err);
	if (fd < 0)
		return -1;
	struct unpack_job job = {.in = fd, .stagefd = j->stagefd, .offset = l->offset,
				 .length = l->length, .rootless = s->rootless,
				 .convert_whiteouts = true};
	struct id_mapping idm;
	id_mapping_for_self(&idm);
	int r = s->rootless && idm.subordinate ? userns_run(&idm, unpack_job_in_userns, &job, err)
					       : unpack_job_in_userns(&job, err);
	if (r < 0 || plan_check_layer(j, l, err) < 0)
		return -1;
	if (syncfs(j->stagefd) < 0)
		return hutch_fail_sys(err, "sync layer %.12s", j->chain);
	_cleanup_free_ char *dst = xasprintf("layers/%s", j->chain);
	if (renameat(j->stagefd, "layer", s->rootfd, dst) < 0) {
		if (errno != EEXIST && errno != ENOTEMPTY)
			return hutch_fail_sys(err, "store layer %.12s", j->chain);
		return 0; /* stored by someone else after all: theirs stays */
	}
	write_file_at(j->stagefd, "committed", "", NULL);
	keep_split(s, j->stagefd, j->chain);
	/* The size goes next to the layer only once the layer is there, so that
	 * a crash never leaves a size without its layer; a layer a crash left
	 * without its size gets it measured (layer_size). */
	_cleanup_free_ char *size = NULL;
	_cleanup_free_ char *size_dst = xasprintf("layers/%s.size", j->chain);
	if (read_file_at(j->stagefd, "size", &size, NULL, NULL) == 0)
		write_file_atomic(s->rootfd, size_dst, size, strlen(size), NULL);
	return 0;
}

/* A worker process for one layer: under that ChainID's lock (so overlapping
 * imports unpack a shared layer once: the second waits and finds it stored),
 * unpack into staging, verify both digests, and commit the layer. A layer is
 * useful on its own once verified; the image appears when its config does. */
static __attribute__((noreturn)) void plan_layer_child(struct hutch_store *s,
						       const struct image_plan *p,
						       const struct plan_layer *l,
						       struct plan_job *j)
{
	struct hutch_err *e = NULL;
	/* an import killed with SIGKILL takes its workers along */
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	if (getppid() != j->parent)
		_exit(1);
	if (plan_layer_work(s, p, l, j, &e) < 0) {
		write_file_at(j->stagefd, "error", e ? e->msg : "failed", NULL);
		_exit(1);
	}
	_exit(0);
}

static bool chain_used_by_other(struct hutch_store *s, struct json_object *refs,
				const char *except_id, const char *chain);

/* A failed import takes back the layers it stored itself, unless an image
 * uses them or somebody (a container, another import) holds them. */
static void plan_undo_layers(struct hutch_store *s, struct plan_job *jobs, size_t n)
{
	struct json_object *refs = NULL;
	if (store_lock(s, NULL) < 0)
		return;
	if (refs_load(s, &refs, NULL) < 0) {
		store_unlock(s);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		if (jobs[i].stagefd < 0 || fstatat(jobs[i].stagefd, "committed", &st, 0) < 0)
			continue;
		if (jobs[i].held >= 0) {
			close(jobs[i].held);
			jobs[i].held = -1;
		}
		if (chain_used_by_other(s, refs, "", jobs[i].chain))
			continue;
		_cleanup_free_ char *p = xasprintf("layers/%s", jobs[i].chain);
		int fd = openat(s->rootfd, p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0)
			layer_discard(s, jobs[i].chain, fd);
		else if (fd >= 0)
			close(fd);
	}
	json_object_put(refs);
	store_unlock(s);
}

/* Hold a stored layer (shared flock) until the image is committed, so that an
 * `image rm` running meanwhile cannot delete it under us. */
static int plan_hold_layer(struct hutch_store *s, struct plan_job *j, struct hutch_err **err)
{
	if (j->held >= 0)
		return 0;
	_cleanup_free_ char *p = xasprintf("layers/%s", j->chain);
	j->held = openat(s->rootfd, p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (j->held < 0 || flock(j->held, LOCK_SH) < 0)
		return hutch_fail_sys(err, "layer %zu (%.12s) vanished from the store during the "
					   "import: run it again",
				      j->index + 1, j->chain);
	return 0;
}

static int config_diff_id(const char *config, size_t len, size_t i, char out[72])
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *cfg = json_tokener_parse_ex(tok, config, (int)len);
	json_tokener_free(tok);
	struct json_object *d = json_object_array_get_idx(json_get(json_get(cfg, "rootfs"), "diff_ids"), i);
	const char *v = d ? json_object_get_string(d) : NULL;
	int r = v && digest_is_valid(v, false) ? 0 : -1;
	if (r == 0)
		snprintf(out, 72, "%s", v);
	json_object_put(cfg);
	return r;
}

int store_import_plan(struct hutch_store *s, const struct image_plan *p, const char *name,
		      char id_out[65], struct hutch_err **err)
{
	/* The config: its digest is the image id. */
	struct sha256_ctx ctx;
	uint8_t dg[32];
	char id[65];
	sha256_init(&ctx);
	sha256_update(&ctx, p->config, p->config_len);
	sha256_final(&ctx, dg);
	sha256_hex(dg, id);
	if (p->config_digest[0] && strcmp(p->config_digest + 7, id))
		return hutch_fail(err, 0,
				  "%s: the image config's digest is sha256:%s, not %s as the manifest "
				  "says",
				  p->source, id, p->config_digest);
	char(*chains)[65] = NULL;
	size_t n = 0;
	if (store_config_chains(p->config, p->config_len, &chains, &n, err) < 0)
		return hutch_err_wrap(err, "%s", p->source);
	if (n != p->n_layers) {
		free(chains);
		return hutch_fail(err, 0, "%s: the manifest lists %zu layers, the config %zu",
				  p->source, p->n_layers, n);
	}
	/* Names first: bad ones fail before any work. */
	_cleanup_free_ char *cfg_path = NULL;
	size_t n_names = 0;
	char **names = xcalloc(p->n_tags + 2, sizeof(char *));
	int ret = -1;
	for (size_t i = 0; i < p->n_tags + (name ? 1 : 0); i++) {
		const char *t = i < p->n_tags ? p->tags[i] : name;
		if ((i < p->n_tags ? hutch_image_ref_normalize(t, &names[n_names], err)
				   : new_name_normalize(t, &names[n_names], err)) < 0)
			goto out_names;
		n_names++;
	}

	struct plan_job *jobs = xcalloc(n, sizeof(*jobs));
	for (size_t i = 0; i < n; i++) {
		jobs[i].index = i;
		jobs[i].stagefd = -1;
		jobs[i].held = -1;
		jobs[i].pidfd = -1;
		memcpy(jobs[i].chain, chains[i], 65);
		if (config_diff_id(p->config, p->config_len, i, jobs[i].diff_id) < 0) {
			hutch_fail(err, 0, "%s: layer %zu has no valid diff_id in the config",
				   p->source, i + 1);
			goto out_jobs;
		}
		jobs[i].needed = !store_has_chain(s, chains[i]) ||
				 plan_hold_layer(s, &jobs[i], NULL) < 0;
		if (jobs[i].needed && !p->layers[i].path && !p->layers[i].in_tmp) {
			hutch_fail(err, 0, "%s: layer %zu (%s) is neither stored nor available",
				   p->source, i + 1, p->layers[i].digest);
			goto out_jobs;
		}
	}
	/* Unpack what is missing, as many layers at a time as there are CPUs:
	 * decompression dominates and layers are independent directories. */
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	size_t parallel = ncpu > 0 ? (size_t)ncpu : 1, running = 0, next = 0;
	bool failed = false;
	for (;;) {
		while (!failed && running < parallel && next < n) {
			struct plan_job *j = &jobs[next++];
			if (!j->needed)
				continue;
			if (staging_create(s, "layer", j->staging, sizeof(j->staging), &j->stagefd,
					   err) < 0) {
				j->staging[0] = '\0';
				failed = true;
				break;
			}
			fflush(NULL);
			j->parent = getpid();
			j->pid = fork();
			if (j->pid < 0) {
				hutch_fail_sys(err, "fork to unpack a layer");
				failed = true;
				break;
			}
			if (j->pid == 0)
				plan_layer_child(s, p, &p->layers[j->index], j);
			running++;
			j->pidfd = pidfd_open_or_fail(j->pid, false, err);
			if (j->pidfd < 0) {
				kill(j->pid, SIGKILL);
				waitpid(j->pid, NULL, 0);
				j->pid = 0;
				running--;
				failed = true;
				break;
			}
		}
		if (running == 0)
			break;
		/* Wait for our own workers by their pidfds: wait() would also reap
		 * any other child of the caller's (a supervisor's containers). */
		struct pollfd *pfds = xcalloc(n, sizeof(*pfds));
		for (size_t i = 0; i < n; i++)
			pfds[i] = (struct pollfd){.fd = jobs[i].pid > 0 ? jobs[i].pidfd : -1,
						  .events = POLLIN};
		int ready = poll(pfds, n, -1);
		free(pfds);
		if (ready < 0 && errno == EINTR)
			continue;
		if (ready < 0) {
			hutch_fail_sys(err, "wait for the layer unpacking processes");
			failed = true;
			break;
		}
		for (size_t i = 0; i < n; i++) {
			if (jobs[i].pid <= 0)
				continue;
			siginfo_t si = {0};
			if (waitid(P_PIDFD, (id_t)jobs[i].pidfd, &si, WEXITED | WNOHANG) < 0 ||
			    si.si_pid == 0)
				continue; /* still running */
			running--;
			jobs[i].pid = 0;
			close(jobs[i].pidfd);
			jobs[i].pidfd = -1;
			if (failed)
				continue;
			_cleanup_free_ char *msg = NULL;
			if (read_file_at(jobs[i].stagefd, "error", &msg, NULL, NULL) == 0) {
				hutch_fail(err, 0, "layer %zu (%s): %s", i + 1,
					   p->layers[i].digest[0] ? p->layers[i].digest : "no digest",
					   msg);
				failed = true;
			} else if (si.si_code != CLD_EXITED || si.si_status != 0) {
				hutch_fail(err, 0, "layer %zu: its unpacking process died", i + 1);
				failed = true;
			} else if (plan_hold_layer(s, &jobs[i], err) < 0) {
				failed = true;
			}
		}
	}
	if (failed) {
		for (size_t i = 0; i < n; i++)
			if (jobs[i].pid > 0) {
				kill(jobs[i].pid, SIGKILL);
				waitpid(jobs[i].pid, NULL, 0);
				jobs[i].pid = 0;
			}
		goto out_jobs;
	}
	/* Commit: the layers are stored (each synced by its worker); now the
	 * config and the names, under the store lock. */
	if (store_lock(s, err) < 0)
		goto out_jobs;
	for (size_t i = 0; i < n; i++)
		if (!store_has_chain(s, jobs[i].chain)) {
			hutch_fail(err, 0, "layer %zu (%.12s) vanished during the import: run it again",
				   i + 1, jobs[i].chain);
			store_unlock(s);
			goto out_jobs;
		}
	cfg_path = xasprintf("configs/%s.json", id);
	struct json_object *refs = NULL;
	if (write_file_atomic(s->rootfd, cfg_path, p->config, p->config_len, err) < 0 ||
	    refs_load(s, &refs, err) < 0) {
		store_unlock(s);
		goto out_jobs;
	}
	for (size_t i = 0; i < n_names; i++)
		json_object_object_add(refs, names[i], json_object_new_string(id));
	ret = refs_save(s, refs, err);
	json_object_put(refs);
	store_unlock(s);
	if (ret == 0)
		memcpy(id_out, id, 65);
out_jobs:
	if (ret < 0)
		plan_undo_layers(s, jobs, n);
	for (size_t i = 0; i < n; i++) {
		if (jobs[i].pidfd >= 0)
			close(jobs[i].pidfd);
		if (jobs[i].held >= 0)
			close(jobs[i].held);
		if (jobs[i].stagefd >= 0)
			close(jobs[i].stagefd);
		if (jobs[i].staging[0])
			remove_tree_as_owner(jobs[i].staging, NULL);
	}
	free(jobs);
out_names:
	for (size_t i = 0; i < n_names; i++)
		free(names[i]);
	free(names);
	free(chains);
	return ret;
}

/* ---- tag, inspect, prune ----------------------------------------------------- */

int hutch_image_tag(struct hutch_store *s, const char *src, const char *dst, struct hutch_err **err)
{
	_cleanup_free_ char *norm = NULL;
	if (new_name_normalize(dst, &norm, err) < 0)
		return -1;
	if (store_lock(s, err) < 0)
		return -1;
	struct json_object *refs = NULL;
	char id[65];
	int ret = -1;
	if (refs_load(s, &refs, err) == 0 && resolve_ref(s, refs, src, id, NULL, err) == 0) {
		json_object_object_add(refs, norm, json_object_new_string(id));
		ret = refs_save(s, refs, err);
	}
	json_object_put(refs);
	store_unlock(s);
	return ret;
}

int hutch_image_inspect(struct hutch_store *s, const char *ref, char **json_out,
			struct hutch_err **err)
{
	struct json_object *refs = NULL, *cfg = NULL;
	char id[65];
	char(*chains)[65] = NULL;
	size_t n = 0;
	int ret = -1;
	if (refs_load(s, &refs, err) < 0 || resolve_ref(s, refs, ref, id, NULL, err) < 0 ||
	    load_config(s, id, &cfg, err) < 0 || config_chain_ids(cfg, id, &chains, &n, err) < 0)
		goto out;
	struct json_object *o = json_object_new_object();
	char full[72];
	snprintf(full, sizeof(full), "sha256:%s", id);
	json_object_object_add(o, "id", json_object_new_string(full));
	struct json_object *names = json_object_new_array();
	json_object_object_foreach(refs, key, val)
	{
		const char *v = json_object_get_string(val);
		if (v && !strcmp(v, id)) {
			_cleanup_free_ char *shown = hutch_image_ref_familiar(key);
			json_object_array_add(names, json_object_new_string(shown));
		}
	}
	json_object_object_add(o, "names", names);
	static const char *const copy[] = {"created", "architecture", "os", "variant", "author"};
	for (size_t i = 0; i < ARRAY_SIZE(copy); i++) {
		struct json_object *v = json_get(cfg, copy[i]);
		if (v)
			json_object_object_add(o, copy[i], json_object_get(v));
	}
	struct json_object *c = json_get(cfg, "config");
	json_object_object_add(o, "config", c ? json_object_get(c) : json_object_new_object());
	struct json_object *diffs = json_get(json_get(cfg, "rootfs"), "diff_ids");
	json_object_object_add(o, "diff_ids", diffs ? json_object_get(diffs) : json_object_new_array());
	struct json_object *layers = json_object_new_array();
	int64_t size = 0;
	for (size_t i = 0; i < n; i++) {
		char chain[72];
		snprintf(chain, sizeof(chain), "sha256:%s", chains[i]);
		json_object_array_add(layers, json_object_new_string(chain));
		size += layer_size(s, chains[i]);
	}
	json_object_object_add(o, "layers", layers);
	json_object_object_add(o, "size", json_object_new_int64(size));
	struct json_object *hist = json_get(cfg, "history");
	if (hist)
		json_object_object_add(o, "history", json_object_get(hist));
	*json_out = xstrdup(json_object_to_json_string_ext(
		o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	ret = 0;
out:
	free(chains);
	json_object_put(cfg);
	json_object_put(refs);
	return ret;
}

static void build_cache_prune(struct hutch_store *s);

int hutch_image_prune(struct hutch_store *s, int64_t *freed, size_t *n_images, size_t *n_layers,
		      struct hutch_err **err)
{
	*freed = 0;
	*n_images = *n_layers = 0;
	if (store_lock(s, err) < 0)
		return -1;
	struct json_object *refs = NULL;
	if (refs_load(s, &refs, err) < 0) {
		store_unlock(s);
		return -1;
	}
	/* Images without a name go; the chains of the named ones stay. */
	size_t cap = 16, n_keep = 0;
	char(*keep)[65] = xcalloc(cap, 65);
	_cleanup_free_ char *cdir = xasprintf("%s/configs", s->root);
	DIR *d = opendir(cdir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l != 69 || strcmp(de->d_name + 64, ".json"))
			continue;
		char id[65];
		memcpy(id, de->d_name, 64);
		id[64] = '\0';
		bool named = false;
		json_object_object_foreach(refs, key, val)
		{
			(void)key;
			const char *v = json_object_get_string(val);
			named |= v && !strcmp(v, id);
		}
		struct json_object *cfg = NULL;
		char(*chains)[65] = NULL;
		size_t n = 0;
		if (load_config(s, id, &cfg, NULL) == 0 &&
		    config_chain_ids(cfg, id, &chains, &n, NULL) == 0) {
			/* In use: a container of this image holds all its layers (one
			 * that holds only a shared base belongs to another image). */
			bool in_use = n > 0 && !named;
			for (size_t i = 0; i < n && in_use; i++) {
				_cleanup_free_ char *p = xasprintf("layers/%s", chains[i]);
				_cleanup_close_ int fd =
					openat(s->rootfd, p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
				in_use = fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0;
			}
			if (named || in_use) {
				for (size_t i = 0; i < n; i++) {
					if (n_keep == cap)
						keep = xrealloc(keep, (cap *= 2) * 65);
					memcpy(keep[n_keep++], chains[i], 65);
				}
			}
			if (!named && !in_use) {
				unlinkat(dirfd(d), de->d_name, 0);
				(*n_images)++;
			}
		}
		free(chains);
		json_object_put(cfg);
	}
	if (d)
		closedir(d);
	/* Layers no kept image uses, and that no container holds. */
	_cleanup_free_ char *ldir = xasprintf("%s/layers", s->root);
	d = opendir(ldir);
	while (d && (de = readdir(d))) {
		if (strlen(de->d_name) != 64 || !is_hex_string(de->d_name, 64))
			continue;
		bool kept = false;
		for (size_t i = 0; i < n_keep && !kept; i++)
			kept = !strcmp(keep[i], de->d_name);
		if (kept)
			continue;
		int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		*freed += layer_size(s, de->d_name);
		layer_discard(s, de->d_name, fd);
		(*n_layers)++;
	}
	if (d)
		closedir(d);
	/* Layer locks nobody holds (chain_lock notices one unlinked under it). */
	_cleanup_free_ char *lk = xasprintf("%s/locks", s->root);
	d = opendir(lk);
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		_cleanup_close_ int fd = openat(dirfd(d), de->d_name, O_RDWR | O_CLOEXEC);
		if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0)
			unlinkat(dirfd(d), de->d_name, 0);
	}
	if (d)
		closedir(d);
	/* Finished downloads that no pull is using any more. */
	_cleanup_free_ char *dl = xasprintf("%s/downloads", s->root);
	d = opendir(dl);
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		_cleanup_close_ int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC);
		if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0) {
			struct stat st;
			if (fstat(fd, &st) == 0)
				*freed += st.st_size;
			unlinkat(dirfd(d), de->d_name, 0);
		}
	}
	if (d)
		closedir(d);
	free(keep);
	json_object_put(refs);
	build_cache_prune(s);
	store_unlock(s);
	return 0;
}

/* ---- for builds (builder/) -------------------------------------------------- */

const char *hutch_store_root(struct hutch_store *s)
{
	return s->root;
}

void hutch_chain_id_next(const char *prev_hex, const char *diff_hex, char out[65])
{
	chain_id_next(prev_hex, diff_hex, out);
}

int hutch_layer_hold(struct hutch_store *s, const char *chain_hex, char **dir, int *held)
{
	*held = -1;
	*dir = NULL;
	if (!digest_is_valid(chain_hex, true))
		return -1;
	char *path = xasprintf("%s/layers/%s", s->root, chain_hex);
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat held_st, now;
	/* as hutch_image_get: the dir must still be the one locked (not renamed
	 * away by a prune meanwhile) */
	if (fd < 0 || flock(fd, LOCK_SH) < 0 || fstat(fd, &held_st) < 0 || stat(path, &now) < 0 ||
	    held_st.st_ino != now.st_ino) {
		if (fd >= 0)
			close(fd);
		free(path);
		return -1;
	}
	*dir = path;
	*held = fd;
	return 0;
}

struct build_tar_job {
	const struct hutch_layer_add *adds;
	size_t n;
	char *const *parents;
	size_t n_parents;
	int tarfd;
};

static int build_tar_run(void *arg, struct hutch_err **err)
{
	struct build_tar_job *j = arg;
	return layer_tar_write(j->tarfd, j->adds, j->n, j->parents, j->n_parents, err);
}

int hutch_layer_build(struct hutch_store *s, const struct hutch_layer_add *adds, size_t n,
		      char *const *parents, size_t n_parents, const char *parent_chain,
		      char diff_hex[65], char chain_hex[65], int *held, struct hutch_err **err)
{
	*held = -1;
	char staging[PATH_MAX];
	_cleanup_close_ int stagefd = -1;
	if (staging_create(s, "build", staging, sizeof(staging), &stagefd, err) < 0)
		return -1;
	int ret = -1, lock = -1;
	_cleanup_free_ char *dst = NULL, *dir = NULL;
	_cleanup_close_ int tarfd =
	    openat(stagefd, "layer.tar", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	struct id_mapping idm;
	id_mapping_for_self(&idm);
	bool ns = s->rootless && idm.subordinate;
	struct build_tar_job tj = {adds, n, parents, n_parents, tarfd};
	if (tarfd < 0) {
		hutch_fail_sys(err, "create %s/layer.tar", staging);
		goto out;
	}
	if ((ns ? userns_run(&idm, build_tar_run, &tj, err) : build_tar_run(&tj, err)) < 0)
		goto out;
	struct unpack_job job = {.in = tarfd,
				 .stagefd = stagefd,
				 .offset = 0,
				 .length = -1,
				 .rootless = s->rootless,
				 .convert_whiteouts = true,
				 .progress = n ? &adds[0] : NULL};
	if (ns ? (userns_run(&idm, unpack_job_in_userns, &job, err) < 0 ||
		  unpack_job_result(&job, err) < 0)
	       : unpack_job_run(&job, err) < 0)
		goto out;
	memcpy(diff_hex, job.diff_hex, 65);
	chain_id_next(parent_chain, diff_hex, chain_hex);
	if (syncfs(stagefd) < 0) {
		hutch_fail_sys(err, "sync the image store");
		goto out;
	}
	lock = chain_lock(s, chain_hex, err);
	if (lock < 0 || store_lock(s, err) < 0)
		goto out;
	dst = xasprintf("layers/%s", chain_hex);
	if (renameat(stagefd, "layer", s->rootfd, dst) == 0) {
		char size[32];
		snprintf(size, sizeof(size), "%llu", (unsigned long long)job.stats.bytes);
		_cleanup_free_ char *size_dst = xasprintf("layers/%s.size", chain_hex);
		write_file_atomic(s->rootfd, size_dst, size, strlen(size), NULL);
	} else if (errno != EEXIST && errno != ENOTEMPTY) {
		hutch_fail_sys(err, "store layer %.12s", chain_hex);
		store_unlock(s);
		goto out;
	} /* else: the same layer is there already, keep that one */
	keep_split(s, stagefd, chain_hex);
	if (hutch_layer_hold(s, chain_hex, &dir, held) < 0)
		hutch_fail(err, ENOENT, "layer %.12s vanished from the store", chain_hex);
	else
		ret = 0;
	store_unlock(s);
out:
	if (lock >= 0)
		close(lock);
	remove_tree_as_owner(staging, NULL);
	return ret;
}

int hutch_image_config(struct hutch_store *s, const char *ref, char **json, char id[65],
		       struct hutch_err **err)
{
	struct json_object *refs = NULL;
	int r = -1;
	if (refs_load(s, &refs, err) == 0 && resolve_ref(s, refs, ref, id, NULL, err) == 0) {
		_cleanup_free_ char *p = xasprintf("configs/%s.json", id);
		r = read_file_at(s->rootfd, p, json, NULL, err);
		if (r < 0)
			hutch_err_wrap(err, "image %.12s", id);
	}
	json_object_put(refs);
	return r;
}

int hutch_image_commit(struct hutch_store *s, const char *config_json, char *const *names,
		       size_t n_names, char id[65], struct hutch_err **err)
{
	size_t len = strlen(config_json);
	struct sha256_ctx ctx;
	uint8_t dg[32];
	sha256_init(&ctx);
	sha256_update(&ctx, config_json, len);
	sha256_final(&ctx, dg);
	sha256_hex(dg, id);
	char(*chains)[65] = NULL;
	size_t n = 0;
	if (store_config_chains(config_json, len, &chains, &n, err) < 0)
		return -1;
	char **norm = xcalloc(n_names + 1, sizeof(char *));
	int ret = -1;
	_cleanup_free_ char *p = NULL;
	for (size_t i = 0; i < n_names; i++)
		if (new_name_normalize(names[i], &norm[i], err) < 0)
			goto out;
	if (store_lock(s, err) < 0)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (!store_has_chain(s, chains[i])) {
			hutch_fail(err, ENOENT, "layer %.12s is not in the store", chains[i]);
			goto unlock;
		}
	p = xasprintf("configs/%s.json", id);
	struct json_object *refs = NULL;
	if (write_file_atomic(s->rootfd, p, config_json, len, err) < 0 ||
	    refs_load(s, &refs, err) < 0)
		goto unlock;
	for (size_t i = 0; i < n_names; i++)
		json_object_object_add(refs, norm[i], json_object_new_string(id));
	ret = n_names ? refs_save(s, refs, err) : 0;
	json_object_put(refs);
unlock:
	store_unlock(s);
out:
	for (size_t i = 0; i < n_names; i++)
		free(norm[i]);
	free(norm);
	free(chains);
	return ret;
}

int hutch_build_cache_get(struct hutch_store *s, const char *key, char **value)
{
	*value = NULL;
	if (!digest_is_valid(key, true))
		return -1;
	_cleanup_free_ char *p = xasprintf("build-cache/%s", key);
	int r = read_file_at(s->rootfd, p, value, NULL, NULL);
	/* its mtime is when it was last used: builder prune drops the least
	 * recently used first */
	if (r == 0)
		utimensat(s->rootfd, p, NULL, 0);
	return r;
}

int hutch_build_cache_put(struct hutch_store *s, const char *key, const char *value,
			  struct hutch_err **err)
{
	if (!digest_is_valid(key, true))
		return hutch_fail(err, EINVAL, "invalid build cache key '%s'", key);
	if (mkdirat(s->rootfd, "build-cache", 0700) < 0 && errno != EEXIST)
		return hutch_fail_sys(err, "create %s/build-cache", s->root);
	_cleanup_free_ char *p = xasprintf("build-cache/%s", key);
	return write_file_atomic(s->rootfd, p, value, strlen(value), err);
}

/* ---- builder prune ------------------------------------------------------------ */

struct cache_entry {
	char key[65], chain[65]; /* chain "": none (a step on scratch) */
	struct timespec used;
	bool drop;
};

static int cache_entry_cmp(const void *a, const void *b)
{
	const struct cache_entry *x = a, *y = b;
	if (x->used.tv_sec != y->used.tv_sec)
		return x->used.tv_sec < y->used.tv_sec ? -1 : 1;
	if (x->used.tv_nsec != y->used.tv_nsec)
		return x->used.tv_nsec < y->used.tv_nsec ? -1 : 1;
	return strcmp(x->key, y->key);
}

/* The chains every stored image config uses (sorted, for bsearch). */
static int chain_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* The chains of the images that have a name: an unnamed image (a rebuild's
 * old result, a build without -t) is a build leftover as far as the cache
 * goes. */
static char (*image_chains(struct hutch_store *s, struct json_object *refs, const char *also,
			   size_t *n))[65]
{
	char(*all)[65] = NULL;
	*n = 0;
	struct json_object *ids = json_object_new_array();
	json_object_object_foreach(refs, key, val)
	{
		(void)key;
		json_object_array_add(ids, json_object_get(val));
	}
	if (also)
		json_object_array_add(ids, json_object_new_string(also));
	for (size_t i = 0; i < json_object_array_length(ids); i++) {
		const char *id = json_object_get_string(json_object_array_get_idx(ids, i));
		struct json_object *cfg = NULL;
		char(*chains)[65] = NULL;
		size_t k = 0;
		if (id && load_config(s, id, &cfg, NULL) == 0 &&
		    config_chain_ids(cfg, id, &chains, &k, NULL) == 0) {
			all = xrealloc(all, (*n + k) * 65);
			memcpy(all + *n, chains, k * 65);
			*n += k;
		}
		free(chains);
		json_object_put(cfg);
	}
	json_object_put(ids);
	if (*n)
		qsort(all, *n, 65, chain_cmp);
	return all;
}

/* Unnamed images one of whose layers is gone: nothing can run them. */
static size_t drop_broken_unnamed(struct hutch_store *s, struct json_object *refs)
{
	size_t dropped = 0;
	_cleanup_free_ char *cdir = xasprintf("%s/configs", s->root);
	DIR *d = opendir(cdir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (strlen(de->d_name) != 69 || strcmp(de->d_name + 64, ".json"))
			continue;
		char id[65];
		memcpy(id, de->d_name, 64);
		id[64] = '\0';
		bool named = false;
		json_object_object_foreach(refs, key, val)
		{
			(void)key;
			const char *v = json_object_get_string(val);
			named |= v && !strcmp(v, id);
		}
		struct json_object *cfg = NULL;
		char(*chains)[65] = NULL;
		size_t k = 0;
		bool broken = false;
		if (!named && load_config(s, id, &cfg, NULL) == 0 &&
		    config_chain_ids(cfg, id, &chains, &k, NULL) == 0)
			for (size_t i = 0; i < k && !broken; i++)
				broken = !store_has_chain(s, chains[i]);
		if (broken && unlinkat(dirfd(d), de->d_name, 0) == 0)
			dropped++;
		free(chains);
		json_object_put(cfg);
	}
	if (d)
		closedir(d);
	return dropped;
}

/* A chain only the cache keeps: stored, and no named image uses it. */
static bool cache_only(struct hutch_store *s, char (*used)[65], size_t n_used, const char *chain)
{
	return *chain && !bsearch(chain, used, n_used, 65, chain_cmp) && store_has_chain(s, chain);
}

int hutch_build_cache_prune(struct hutch_store *s, bool all, int64_t keep, const char *also_keep,
			    struct hutch_cache_prune *out, struct hutch_err **err)
{
	*out = (struct hutch_cache_prune){0};
	if (store_lock(s, err) < 0)
		return -1;
	size_t n_used = 0, n = 0;
	struct json_object *refs = NULL;
	if (refs_load(s, &refs, err) < 0) {
		store_unlock(s);
		return -1;
	}
	char(*used)[65] = image_chains(s, refs, also_keep, &n_used);
	struct cache_entry *e = NULL;
	int dfd = openat(s->rootfd, "build-cache", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d && dfd >= 0)
		close(dfd);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		_cleanup_free_ char *text = NULL;
		char kind[16], diff[72], chain[72];
		struct stat st;
		if (!digest_is_valid(de->d_name, true) ||
		    read_file_at(dirfd(d), de->d_name, &text, NULL, NULL) < 0 ||
		    fstatat(dirfd(d), de->d_name, &st, 0) < 0 ||
		    sscanf(text, "%15s %71s %71s", kind, diff, chain) != 3)
			continue;
		e = xrealloc(e, (n + 1) * sizeof(*e));
		e[n] = (struct cache_entry){.used = st.st_mtim};
		memcpy(e[n].key, de->d_name, 64);
		if (digest_is_valid(chain, true))
			memcpy(e[n].chain, chain, 64);
		n++;
	}
	if (n)
		qsort(e, n, sizeof(*e), cache_entry_cmp);
	/* What the cache takes beyond the images: its layers no image uses,
	 * each counted once. Least recently used entries go first until that is
	 * at most keep; an entry on an image's layer costs nothing and stays
	 * (but with all). */
	int64_t size = 0;
	for (size_t i = 0; i < n; i++) {
		bool first = true;
		for (size_t j = 0; j < i && first; j++)
			first = strcmp(e[j].chain, e[i].chain) != 0;
		if (first && cache_only(s, used, n_used, e[i].chain))
			size += layer_size(s, e[i].chain);
	}
	for (size_t i = 0; i < n; i++) {
		bool costly = cache_only(s, used, n_used, e[i].chain);
		if (!all && (size <= keep || !costly))
			continue;
		e[i].drop = true;
		out->entries++;
		unlinkat(dirfd(d), e[i].key, 0);
		bool still = false;
		for (size_t j = 0; j < n && !still; j++)
			still = !e[j].drop && !strcmp(e[j].chain, e[i].chain);
		if (!costly || still)
			continue;
		/* its layer, unless a build or a container holds it right now */
		int64_t sz = layer_size(s, e[i].chain);
		size -= sz;
		_cleanup_free_ char *p = xasprintf("layers/%s", e[i].chain);
		int fd = openat(s->rootfd, p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0) {
			layer_discard(s, e[i].chain, fd);
			out->freed += sz;
			out->layers++;
		} else if (fd >= 0) {
			close(fd);
		}
	}
	out->size = size;
	if (out->layers)
		out->images = drop_broken_unnamed(s, refs);
	if (d)
		closedir(d);
	free(e);
	free(used);
	json_object_put(refs);
	store_unlock(s);
	return 0;
}

int64_t hutch_build_cache_limit(void)
{
	const char *v = getenv("HUTCH_BUILD_CACHE_MAX");
	int64_t limit;
	if (v && *v && parse_size(v, &limit) == 0)
		return limit;
	return HUTCH_BUILD_CACHE_DEFAULT_MAX;
}

/* Entries are "KIND DIFF CHAIN CREATED": the step's layer (or, for a step that
 * makes none, the layer it stands on) is CHAIN; once that is gone, so is the
 * entry. Called with the store lock held. */
static void build_cache_prune(struct hutch_store *s)
{
	int dfd = openat(s->rootfd, "build-cache", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		_cleanup_free_ char *text = NULL;
		char kind[16], diff[72], chain[72];
		bool keep = read_file_at(dirfd(d), de->d_name, &text, NULL, NULL) == 0 &&
			    sscanf(text, "%15s %71s %71s", kind, diff, chain) == 3 &&
			    (!strcmp(chain, "-") || store_has_chain(s, chain));
		if (!keep)
			unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
}
