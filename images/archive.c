/* Image archives as image plans: OCI image layouts (a directory, or a tar of
 * one, plain or gzip/zstd compressed) and `docker save` archives (the legacy
 * layout with <id>/layer.tar, and Docker 25+'s OCI layout with a manifest.json).
 *
 * Nothing is extracted: a tar is indexed (member name -> data offset and size)
 * by walking its headers and seeking over the data, and the plan's layers point
 * at byte ranges of it. A compressed tar is first decompressed into an unnamed
 * temp file that the plan owns.
 *
 * Names inside an archive come from someone else. A blob is only ever looked up
 * by a name built from a validated digest ("blobs/sha256/<hex>") or by a path
 * from manifest.json that archive_path_is_clean() accepted; in a directory it is
 * opened with openat2(RESOLVE_BENEATH), in a tar it must be a member of exactly
 * that (normalised) name, and symlink or hardlink members are followed only
 * inside the archive. Index and manifest blobs are read whole (bounded) and
 * checked against their digests here; layer blobs and the config are checked
 * again by the store as it reads them. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/sha256.h"
#include "common/util.h"
#include "images/images.h"
#include "images/layer_internal.h"
#include "images/manifest_internal.h"
#include "images/source_internal.h"

#define ARCHIVE_MAX_MEMBERS 100000     /* an image archive holds blobs, not a rootfs */
#define ARCHIVE_MAX_INDEX   (64 << 20) /* bytes of member names and link targets kept */
#define ARCHIVE_MAX_NAME    4096
#define ARCHIVE_MAX_HOPS    8 /* symlinks/hardlinks followed for one member */
#define INDEX_MAX_DEPTH	    4 /* indexes inside indexes */
#define SMALL_FILE_MAX	    (64 * 1024)
#define DOCKER_MANIFEST_MAX (16 << 20)

/* ---- plans ----------------------------------------------------------------- */

struct image_plan *image_plan_new(void)
{
	struct image_plan *p = xcalloc(1, sizeof(*p));
	p->tmp_fd = -1;
	return p;
}

void image_plan_free(struct image_plan *p)
{
	if (!p)
		return;
	free(p->config);
	for (size_t i = 0; i < p->n_layers; i++) {
		free(p->layers[i].media_type);
		free(p->layers[i].path);
	}
	free(p->layers);
	for (size_t i = 0; i < p->n_tags; i++)
		free(p->tags[i]);
	free(p->tags);
	free(p->bare_tag);
	free(p->bad_name);
	free(p->manifest);
	free(p->source);
	if (p->tmp_fd >= 0)
		close(p->tmp_fd);
	free(p);
}

/* ---- names ------------------------------------------------------------------- */

static bool hex_prefix(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* A member name as a clean relative path: "./a//b/" -> "a/b", "a/../b" -> "b";
 * "" for the archive's root; NULL if it is absolute or climbs out. */
static char *normalize_member(const char *name)
{
	size_t len = strlen(name);
	if (name[0] == '/' || len > ARCHIVE_MAX_NAME)
		return NULL;
	char *out = xcalloc(1, len + 1);
	size_t o = 0;
	for (const char *p = name; *p;) {
		size_t n = strcspn(p, "/");
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			if (o == 0) {
				free(out);
				return NULL;
			}
			while (o > 0 && out[o - 1] != '/')
				o--;
			if (o > 0)
				o--;
		} else if (n > 0 && !(n == 1 && p[0] == '.')) {
			if (o)
				out[o++] = '/';
			memcpy(out + o, p, n);
			o += n;
		}
		p += n;
		if (*p == '/')
			p++;
	}
	out[o] = '\0';
	return out;
}

static char *blob_name(const char *digest)
{
	return xasprintf("blobs/sha256/%s", digest + 7);
}

/* "blobs/sha256/<hex>" names its content: the digest, else "" */
static void digest_from_blob_name(const char *name, char out[72])
{
	out[0] = '\0';
	if (!strncmp(name, "blobs/sha256/", 13) && strlen(name + 13) == 64 &&
	    hex_prefix(name + 13, 64))
		snprintf(out, 72, "sha256:%s", name + 13);
}

/* Reference matching: "docker.io/library/busybox:latest" and "busybox" are one
 * image (both normalise to the same name); a bare tag ("1.2", as OCI
 * ref.name annotations often are) matches the tag of a full name. */
static const char *tag_of(const char *n)
{
	const char *slash = strrchr(n, '/');
	const char *colon = strchr(slash ? slash : n, ':');
	return colon ? colon + 1 : NULL;
}

static bool is_bare_tag(const char *n)
{
	return !strchr(n, ':') && !strchr(n, '/') && !strchr(n, '@');
}

static bool same_ref(const char *a, const char *b)
{
	_cleanup_free_ char *na = NULL, *nb = NULL;
	if (hutch_image_ref_normalize(a, &na, NULL) < 0 ||
	    hutch_image_ref_normalize(b, &nb, NULL) < 0)
		return !strcmp(a, b);
	return !strcmp(na, nb);
}

static bool name_matches(const char *name, const char *ref)
{
	if (!name || !*name)
		return false;
	if (!is_bare_tag(name) && same_ref(name, ref))
		return true;
	if (is_bare_tag(name)) {
		const char *t = tag_of(ref);
		return !strcmp(name, ref) || (t && !strcmp(name, t));
	}
	if (is_bare_tag(ref)) {
		const char *t = tag_of(name);
		return t && !strcmp(t, ref);
	}
	return false;
}

static void plan_add_tag(struct image_plan *p, const char *name)
{
	_cleanup_free_ char *norm = NULL;
	struct hutch_err *why = NULL;
	if (!name)
		return;
	if (hutch_image_ref_normalize(name, &norm, &why) < 0) {
		/* not a name hutch can store: said, unless the caller names the image */
		if (!p->bad_name && why)
			p->bad_name = steal_ptr(why->msg);
		hutch_err_free(&why);
		return;
	}
	for (size_t i = 0; i < p->n_tags; i++)
		if (!strcmp(p->tags[i], norm))
			return;
	p->tags = xrealloc(p->tags, (p->n_tags + 1) * sizeof(char *));
	p->tags[p->n_tags++] = steal_ptr(norm);
}

/* "a, b, c" of up to ~400 bytes, for messages listing choices. */
struct list {
	char buf[480];
	size_t len, n;
};

static void list_add(struct list *l, const char *item)
{
	_cleanup_free_ char *shown = printable(item, strlen(item));
	size_t sl = strlen(shown);
	for (const char *p = l->buf; (p = strstr(p, shown)); p++)
		if ((p == l->buf || p[-1] == ' ') && (p[sl] == ',' || p[sl] == '\0'))
			return; /* each item once */
	if (l->len + sl + 8 >= sizeof(l->buf)) {
		if (!strstr(l->buf, ", ..."))
			l->len +=
			    (size_t)snprintf(l->buf + l->len, sizeof(l->buf) - l->len, ", ...");
		return;
	}
	l->len += (size_t)snprintf(l->buf + l->len, sizeof(l->buf) - l->len, "%s%s",
				   l->n++ ? ", " : "", shown);
}

/* Hand an error made with a local slot to the caller's. */
static int pass_err(struct hutch_err **err, struct hutch_err *e)
{
	if (err && !*err)
		*err = e;
	else
		hutch_err_free(&e);
	return -1;
}

/* ---- tar members --------------------------------------------------------------- */

struct member {
	char *name; /* normalised */
	char *link; /* hardlink target or symlink text, as in the archive */
	enum tar_type type;
	uint64_t offset; /* of the data in the tar */
	int64_t size;
	size_t order;
};

struct tar_index {
	struct member *m; /* sorted by name; for a name given twice, the last one */
	size_t n, cap;
};

static void tar_index_free(struct tar_index *ix)
{
	for (size_t i = 0; i < ix->n; i++) {
		free(ix->m[i].name);
		free(ix->m[i].link);
	}
	free(ix->m);
	ix->m = NULL;
	ix->n = ix->cap = 0;
}

static int member_cmp(const void *a, const void *b)
{
	const struct member *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	if (c)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

struct file_src {
	int fd;
	uint64_t pos, size;
};

static ssize_t file_read(void *ctx, void *buf, size_t len)
{
	struct file_src *f = ctx;
	ssize_t n = pread(f->fd, buf, len, (off_t)f->pos);
	if (n > 0)
		f->pos += (uint64_t)n;
	return n;
}

/* Data is seeked over, so a member running past the end of the file must be
 * noticed here (the reader would otherwise see a clean end at the next header). */
static int file_skip(void *ctx, uint64_t n)
{
	struct file_src *f = ctx;
	if (f->pos > f->size || n > f->size - f->pos) {
		f->pos = f->size;
		return 0;
	}
	f->pos += n;
	return 1;
}

/* Index the members r reads. max_bytes > 0: refuse a member whose data
 * would end past that many bytes of the archive, before its data is read. */
static int index_members(struct tar_reader *r, uint64_t max_bytes, const char *where,
			 struct tar_index *ix, struct hutch_err **err)
{
	size_t seen = 0, kept_bytes = 0;
	for (;;) {
		const struct tar_entry *e;
		int rc = tar_next(r, &e, err);
		if (rc < 0)
			return -1;
		if (rc == 0)
			break;
		if (++seen > ARCHIVE_MAX_MEMBERS)
			return hutch_fail(
			    err, 0, "the archive has more than %d entries: not an image archive",
			    ARCHIVE_MAX_MEMBERS);
		if (max_bytes && (e->size < 0 || (uint64_t)e->size > max_bytes ||
				  tar_data_offset(r) > max_bytes - (uint64_t)e->size)) {
			_cleanup_free_ char *shown = printable(e->path, strlen(e->path));
			char sz[32], avail[32];
			format_size(e->size, sz, sizeof(sz));
			format_size((int64_t)max_bytes, avail, sizeof(avail));
			return hutch_fail(
			    err, ENOSPC,
			    "the archive's member '%s' (%s) does not fit in the %s free "
			    "in %s: free some space, or this is a decompression bomb",
			    shown, sz, avail, where);
		}
		bool is_link = e->type == TAR_SYMLINK || e->type == TAR_HARDLINK;
		if (is_link && strlen(e->linkname) > ARCHIVE_MAX_NAME)
			continue; /* no lookup can follow it */
		char *name = normalize_member(e->path);
		if (!name)
			continue; /* outside the archive: no lookup can ever name it */
		kept_bytes += strlen(name) + (is_link ? strlen(e->linkname) : 0);
		if (kept_bytes > ARCHIVE_MAX_INDEX) {
			free(name);
			return hutch_fail(
			    err, 0,
			    "the archive's entry names add up to more than %d MiB: not an "
			    "image archive",
			    ARCHIVE_MAX_INDEX >> 20);
		}
		if (ix->n == ix->cap) {
			ix->cap = ix->cap ? 2 * ix->cap : 64;
			ix->m = xrealloc(ix->m, ix->cap * sizeof(*ix->m));
		}
		ix->m[ix->n] = (struct member){
		    .name = name,
		    .link = xstrdup(is_link ? e->linkname : ""),
		    .type = e->type,
		    .offset = tar_data_offset(r),
		    .size = e->size,
		    .order = ix->n,
		};
		ix->n++;
	}
	if (ix->n)
		qsort(ix->m, ix->n, sizeof(*ix->m), member_cmp);
	/* Like tar -x, a later entry of the same name replaces an earlier one. */
	size_t w = 0;
	for (size_t i = 0; i < ix->n; i++) {
		if (i + 1 < ix->n && !strcmp(ix->m[i].name, ix->m[i + 1].name)) {
			free(ix->m[i].name);
			free(ix->m[i].link);
			continue;
		}
		ix->m[w++] = ix->m[i];
	}
	ix->n = w;
	return 0;
}

static int index_tar(int fd, struct tar_index *ix, struct hutch_err **err)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return hutch_fail_sys(err, "stat the archive");
	struct file_src src = {.fd = fd, .size = (uint64_t)st.st_size};
	struct tar_reader *r = tar_reader_new(file_read, &src);
	tar_reader_set_skip(r, file_skip);
	int ret = index_members(r, 0, NULL, ix, err);
	tar_reader_free(r);
	return ret;
}

static const struct member *tar_find(const struct tar_index *ix, const char *name)
{
	size_t lo = 0, hi = ix->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(ix->m[mid].name, name);
		if (c == 0)
			return &ix->m[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* The regular file a member name stands for, following links inside the
 * archive (docker save links a layer.tar to an identical one). *resolved gets
 * the final member's name. */
static int tar_resolve(const struct tar_index *ix, const char *name, const struct member **out,
		       struct hutch_err **err)
{
	_cleanup_free_ char *cur = xstrdup(name);
	for (int hop = 0; hop <= ARCHIVE_MAX_HOPS; hop++) {
		const struct member *m = tar_find(ix, cur);
		_cleanup_free_ char *shown = printable(cur, strlen(cur));
		if (!m)
			return hutch_fail(err, 0, "'%s' is not in the archive", shown);
		char *next = NULL;
		switch (m->type) {
		case TAR_FILE:
			*out = m;
			return 0;
		case TAR_HARDLINK:
			next = normalize_member(m->link);
			break;
		case TAR_SYMLINK: {
			if (m->link[0] == '/')
				return hutch_fail(
				    err, 0, "'%s' in the archive is an absolute symlink", shown);
			const char *slash = strrchr(cur, '/');
			_cleanup_free_ char *joined =
			    slash ? xasprintf("%.*s/%s", (int)(slash - cur), cur, m->link)
				  : xstrdup(m->link);
			next = normalize_member(joined);
			break;
		}
		default:
			return hutch_fail(err, 0, "'%s' in the archive is not a regular file",
					  shown);
		}
		if (!next || !*next) {
			free(next);
			return hutch_fail(err, 0, "'%s' in the archive links outside of it", shown);
		}
		free(cur);
		cur = next;
	}
	_cleanup_free_ char *shown = printable(name, strlen(name));
	return hutch_fail(err, 0, "'%s' in the archive: more than %d links to follow", shown,
			  ARCHIVE_MAX_HOPS);
}

/* ---- layouts: a directory or an indexed tar --------------------------------------- */

struct layout {
	int dirfd; /* a directory layout, else -1 */
	int fd;	   /* a tar: the file its members are read from, else -1 */
	char *file; /* its path; NULL when fd is an unnamed decompressed copy */
	struct tar_index ix;
};

static void layout_close(struct layout *l)
{
	if (l->dirfd >= 0)
		close(l->dirfd);
	if (l->fd >= 0)
		close(l->fd);
	tar_index_free(&l->ix);
	free(l->file);
}

static int pread_all(int fd, char *buf, size_t len, off_t off, struct hutch_err **err)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(fd, buf + got, len - got, off + (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return hutch_fail_sys(err, "read");
		if (n == 0)
			return hutch_fail(err, 0, "the file ends early (truncated)");
		got += (size_t)n;
	}
	return 0;
}

/* Open name below the layout dir; never leaves it, never blocks on a fifo. */
static int dir_open(struct layout *l, const char *name, struct stat *st, struct hutch_err **err)
{
	_cleanup_free_ char *shown = printable(name, strlen(name));
	int fd = openat2_retry(l->dirfd, name, O_RDONLY | O_NOCTTY | O_NONBLOCK,
			       RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS);
	if (fd < 0) {
		if (errno == ENOENT)
			return hutch_fail(err, 0, "'%s' is missing from the layout", shown);
		if (errno == EXDEV)
			return hutch_fail(err, 0, "'%s' leads outside the layout directory", shown);
		if (errno == ENOSYS)
			return hutch_fail(
			    err, 0, "openat2 is not available (Linux 5.6 or later is needed)");
		return hutch_fail_sys(err, "open '%s' in the layout", shown);
	}
	if (fstat(fd, st) < 0) {
		hutch_fail_sys(err, "stat '%s' in the layout", shown);
		close(fd);
		return -1;
	}
	if (!S_ISREG(st->st_mode)) {
		close(fd);
		return hutch_fail(err, 0, "'%s' in the layout is not a regular file", shown);
	}
	return fd;
}

static bool layout_has(struct layout *l, const char *name)
{
	if (l->dirfd < 0)
		return tar_find(&l->ix, name) != NULL;
	struct stat st;
	_cleanup_close_ int fd = dir_open(l, name, &st, NULL);
	return fd >= 0;
}

/* Where a member's bytes are: path, offset, length. For a tar, *resolved (may be
 * NULL) gets the member it finally names (after links). */
static int layout_locate(struct layout *l, const char *name, char **path, off_t *offset,
			 int64_t *length, char **resolved, struct hutch_err **err)
{
	if (l->dirfd >= 0) {
		struct stat st;
		_cleanup_close_ int fd = dir_open(l, name, &st, err);
		if (fd < 0)
			return -1;
		/* The path the kernel resolved (in-layout symlinks followed), for the store. */
		char proc[64], real[PATH_MAX];
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		ssize_t n = readlink(proc, real, sizeof(real) - 1);
		if (n < 0)
			return hutch_fail_sys(err, "resolve the path of '%s'", name);
		real[n] = '\0';
		*path = xstrdup(real);
		*offset = 0;
		*length = st.st_size;
		if (resolved)
			*resolved = xstrdup(name);
		return 0;
	}
	const struct member *m;
	if (tar_resolve(&l->ix, name, &m, err) < 0)
		return -1;
	*path = l->file ? xstrdup(l->file) : NULL; /* NULL: in the plan's tmp_fd */
	*offset = (off_t)m->offset;
	*length = m->size;
	if (resolved)
		*resolved = xstrdup(m->name);
	return 0;
}

/* A whole member into memory (NUL-terminated), at most max bytes. */
static int layout_read(struct layout *l, const char *name, size_t max, char **out, size_t *len,
		       struct hutch_err **err)
{
	_cleanup_free_ char *shown = printable(name, strlen(name));
	_cleanup_close_ int dfd = -1;
	int fd;
	off_t off;
	int64_t size;
	if (l->dirfd >= 0) {
		struct stat st;
		dfd = dir_open(l, name, &st, err);
		if (dfd < 0)
			return -1;
		fd = dfd;
		off = 0;
		size = st.st_size;
	} else {
		const struct member *m;
		if (tar_resolve(&l->ix, name, &m, err) < 0)
			return -1;
		fd = l->fd;
		off = (off_t)m->offset;
		size = m->size;
	}
	if (size < 0 || (uint64_t)size > max)
		return hutch_fail(err, 0, "'%s' is %" PRId64 " bytes, more than the %zu allowed",
				  shown, size, max);
	char *buf = xcalloc(1, (size_t)size + 1);
	if (pread_all(fd, buf, (size_t)size, off, err) < 0) {
		free(buf);
		return hutch_err_wrap(err, "'%s'", shown);
	}
	*out = buf;
	*len = (size_t)size;
	return 0;
}


/* A blob named by a (validated) digest, read whole and checked against it. */
static int read_blob(struct layout *l, const char *what, const char *digest, int64_t size,
		     size_t max, char **out, size_t *len, struct hutch_err **err)
{
	if (size > (int64_t)max)
		return hutch_fail(err, 0, "%s %s is %" PRId64 " bytes, more than the %zu allowed",
				  what, digest, size, max);
	_cleanup_free_ char *name = blob_name(digest);
	_cleanup_free_ char *buf = NULL;
	if (layout_read(l, name, max, &buf, len, err) < 0)
		return hutch_err_wrap(err, "%s %s", what, digest);
	if ((int64_t)*len != size)
		return hutch_fail(err, 0,
				  "%s %s is %zu bytes but its descriptor says %" PRId64
				  " (corrupt layout)",
				  what, digest, *len, size);
	char got[72];
	sha256_digest(buf, *len, got);
	if (strcmp(got, digest))
		return hutch_fail(err, 0, "%s %s: its content has digest %s (corrupt layout)", what,
				  digest, got);
	*out = steal_ptr(buf);
	return 0;
}

/* ---- OCI image layouts -------------------------------------------------------------- */

static const char *entry_name(const struct descriptor *d)
{
	return d->image_name ? d->image_name : d->ref_name ? d->ref_name : "";
}

/* By name, or by (a prefix of at least 12 hex digits of) the manifest digest,
 * which is how an entry without a name is shown in messages. */
static bool entry_matches(const struct descriptor *d, const char *ref)
{
	size_t n = strlen(ref);
	if (!strncmp(ref, "sha256:", 7) && n >= 19 && n <= 71 && hex_prefix(ref + 7, n - 7))
		return !strncmp(d->digest, ref, n);
	return name_matches(d->ref_name, ref) || name_matches(d->image_name, ref);
}

static void list_entries(const struct image_index *ix, const bool *only, struct list *l)
{
	for (size_t i = 0; i < ix->n_manifests; i++) {
		if (only && !only[i])
			continue;
		const struct descriptor *d = &ix->manifests[i];
		if (*entry_name(d)) {
			list_add(l, entry_name(d));
		} else {
			char unnamed[48];
			snprintf(unnamed, sizeof(unnamed), "unnamed %.19s", d->digest);
			list_add(l, unnamed);
		}
	}
}

/* Which top-level entry of index.json: by name, then by platform among the
 * entries of that name. */
static int select_top(const struct image_index *ix, const char *ref,
		      const struct image_platform *want, size_t *out, struct hutch_err **err)
{
	size_t n = ix->n_manifests;
	if (n == 0)
		return hutch_fail(err, 0, "index.json lists no images");
	_cleanup_free_ bool *cand = xcalloc(n, sizeof(bool));
	size_t n_cand = 0;
	const char *first_name = NULL;
	bool several_names = false;
	for (size_t i = 0; i < n; i++) {
		const struct descriptor *d = &ix->manifests[i];
		if (ref && !entry_matches(d, ref))
			continue;
		cand[i] = true;
		n_cand++;
		if (!first_name)
			first_name = entry_name(d);
		else if (strcmp(first_name, entry_name(d)))
			several_names = true;
	}
	struct list names = {0};
	if (n_cand == 0) {
		list_entries(ix, NULL, &names);
		_cleanup_free_ char *shown = printable(ref, strlen(ref));
		return hutch_fail(err, 0, "no image named '%s' in the layout (it has: %s)", shown,
				  names.buf);
	}
	if (several_names) {
		list_entries(ix, cand, &names);
		if (ref) {
			_cleanup_free_ char *shown = printable(ref, strlen(ref));
			return hutch_fail(err, 0,
					  "'%s' matches several images in the layout (%s): give "
					  "the full name",
					  shown, names.buf);
		}
		return hutch_fail(err, 0,
				  "the layout holds several images (%s): pick one with --ref",
				  names.buf);
	}
	if (n_cand == 1) {
		for (size_t i = 0; i < n; i++)
			if (cand[i])
				*out = i;
		return 0;
	}
	/* Several entries of one name: platform variants listed at the top level. */
	_cleanup_free_ struct descriptor *sub = xcalloc(n_cand, sizeof(*sub));
	_cleanup_free_ size_t *map = xcalloc(n_cand, sizeof(*map));
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (!cand[i])
			continue;
		sub[k] = ix->manifests[i]; /* shallow: sub only borrows */
		map[k++] = i;
	}
	size_t chosen;
	if (descriptors_select_platform(sub, n_cand, want, &chosen, err) < 0)
		return -1;
	*out = map[chosen];
	return 0;
}

/* Follow a descriptor through nested indexes to an image manifest. */
static int resolve_manifest(struct layout *l, const struct descriptor *top,
			    const struct image_platform *want, struct image_manifest *m,
			    char **bytes, size_t *bytes_len, struct hutch_err **err)
{
	char digest[72];
	int64_t size = top->size;
	_cleanup_free_ char *mt = top->media_type ? xstrdup(top->media_type) : NULL;
	memcpy(digest, top->digest, sizeof(digest));
	for (int depth = 0;; depth++) {
		_cleanup_free_ char *buf = NULL;
		size_t len;
		enum manifest_kind kind;
		if (read_blob(l, "manifest", digest, size, MANIFEST_MAX_LEN, &buf, &len, err) < 0 ||
		    manifest_detect(buf, len, mt, &kind, err) < 0)
			return -1;
		if (kind == MANIFEST_IMAGE) {
			if (image_manifest_parse(buf, len, mt, m, err) < 0)
				return hutch_err_wrap(err, "manifest %s", digest);
			*bytes = steal_ptr(buf);
			*bytes_len = len;
			return 0;
		}
		if (depth == INDEX_MAX_DEPTH)
			return hutch_fail(err, 0, "image indexes nested more than %d deep",
					  INDEX_MAX_DEPTH);
		struct image_index ix;
		size_t chosen;
		if (image_index_parse(buf, len, mt, &ix, err) < 0)
			return hutch_err_wrap(err, "index %s", digest);
		if (image_index_select(&ix, want, &chosen, err) < 0) {
			image_index_free(&ix);
			return hutch_err_wrap(err, "index %s", digest);
		}
		const struct descriptor *d = &ix.manifests[chosen];
		memcpy(digest, d->digest, sizeof(digest));
		size = d->size;
		free(mt);
		mt = d->media_type ? xstrdup(d->media_type) : NULL;
		image_index_free(&ix);
	}
}

static int plan_oci(struct layout *l, const char *ref, const struct image_platform *want,
		    struct image_plan *p, struct hutch_err **err)
{
	_cleanup_free_ char *text = NULL;
	size_t len;
	if (layout_read(l, "oci-layout", SMALL_FILE_MAX, &text, &len, err) < 0)
		return hutch_err_wrap(err, "not an OCI image layout");
	if (oci_layout_check(text, len, err) < 0)
		return -1;
	free(steal_ptr(text));
	if (layout_read(l, "index.json", MANIFEST_MAX_LEN, &text, &len, err) < 0)
		return hutch_err_wrap(err, "OCI image layout");

	struct image_index ix;
	struct image_manifest m = {0};
	char(*diff_ids)[72] = NULL;
	size_t n_diff = 0, top = 0;
	int ret = -1;
	if (image_index_parse(text, len, NULL, &ix, err) < 0) {
		hutch_err_wrap(err, "index.json");
		return -1;
	}
	if (select_top(&ix, ref, want, &top, err) < 0 ||
	    resolve_manifest(l, &ix.manifests[top], want, &m, &p->manifest, &p->manifest_len, err) <
		0)
		goto out;
	const struct descriptor *chosen = &ix.manifests[top];
	if (chosen->image_name)
		plan_add_tag(p, chosen->image_name);
	else if (chosen->ref_name && !is_bare_tag(chosen->ref_name))
		plan_add_tag(p, chosen->ref_name);
	else if (chosen->ref_name && *chosen->ref_name)
		p->bare_tag = xstrdup(chosen->ref_name);

	if (read_blob(l, "config", m.config.digest, m.config.size, CONFIG_MAX_LEN, &p->config,
		      &p->config_len, err) < 0 ||
	    image_config_diff_ids(p->config, p->config_len, &diff_ids, &n_diff, err) < 0)
		goto out;
	memcpy(p->config_digest, m.config.digest, sizeof(p->config_digest));
	if (n_diff != m.n_layers) {
		hutch_fail(err, 0,
			   "the manifest lists %zu layers but the image config has %zu diff_ids",
			   m.n_layers, n_diff);
		goto out;
	}
	p->layers = xcalloc(m.n_layers ? m.n_layers : 1, sizeof(*p->layers));
	for (size_t i = 0; i < m.n_layers; i++) {
		const struct manifest_layer *ml = &m.layers[i];
		struct plan_layer *pl = &p->layers[i];
		_cleanup_free_ char *name = blob_name(ml->desc.digest);
		p->n_layers++;
		memcpy(pl->digest, ml->desc.digest, sizeof(pl->digest));
		pl->media_type = xstrdup(ml->desc.media_type);
		pl->size = ml->desc.size;
		if (ml->non_distributable && !layout_has(l, name)) {
			hutch_fail(err, 0,
				   "layer %zu (%s) is non-distributable and its blob is not in the "
				   "layout (it would have to be fetched from its urls, which hutch "
				   "does not do)",
				   i, ml->desc.digest);
			goto out;
		}
		if (layout_locate(l, name, &pl->path, &pl->offset, &pl->length, NULL, err) < 0) {
			hutch_err_wrap(err, "layer %zu (%s)", i, ml->desc.digest);
			goto out;
		}
		if (pl->length != ml->desc.size) {
			hutch_fail(err, 0,
				   "layer %zu (%s) is %" PRId64
				   " bytes but the manifest says %" PRId64 " (corrupt layout)",
				   i, ml->desc.digest, pl->length, ml->desc.size);
			goto out;
		}
	}
	ret = 0;
out:
	free(diff_ids);
	image_manifest_free(&m);
	image_index_free(&ix);
	return ret;
}

/* ---- docker save archives ------------------------------------------------------------ */

static void list_docker_images(const struct docker_archive_manifest *dm, struct list *l)
{
	for (size_t i = 0; i < dm->n_images; i++) {
		const struct docker_archive_image *im = &dm->images[i];
		for (size_t k = 0; k < im->n_repo_tags; k++)
			list_add(l, im->repo_tags[k]);
		if (!im->n_repo_tags) {
			char unnamed[64];
			snprintf(unnamed, sizeof(unnamed), "untagged %.40s", im->config);
			list_add(l, unnamed);
		}
	}
}

static int select_docker(const struct docker_archive_manifest *dm, const char *ref, size_t *out,
			 struct hutch_err **err)
{
	struct list names = {0};
	if (!ref) {
		if (dm->n_images == 1) {
			*out = 0;
			return 0;
		}
		list_docker_images(dm, &names);
		return hutch_fail(err, 0,
				  "the archive holds %zu images (%s): pick one with --ref",
				  dm->n_images, names.buf);
	}
	size_t found = 0;
	for (size_t i = 0; i < dm->n_images; i++) {
		for (size_t k = 0; k < dm->images[i].n_repo_tags; k++) {
			if (name_matches(dm->images[i].repo_tags[k], ref)) {
				if (found++ == 0)
					*out = i;
				else if (*out != i)
					list_add(&names, dm->images[i].repo_tags[k]);
				break;
			}
		}
	}
	_cleanup_free_ char *shown = printable(ref, strlen(ref));
	if (found == 0) {
		list_docker_images(dm, &names);
		return hutch_fail(err, 0, "no image tagged '%s' in the archive (it has: %s)", shown,
				  names.buf);
	}
	if (found > 1)
		return hutch_fail(err, 0,
				  "'%s' matches several images in the archive (also %s): give the "
				  "full name",
				  shown, names.buf);
	return 0;
}

static int plan_docker(struct layout *l, const char *ref, struct image_plan *p,
		       struct hutch_err **err)
{
	_cleanup_free_ char *text = NULL, *cfg_member = NULL;
	size_t len, which = 0;
	struct docker_archive_manifest dm;
	if (layout_read(l, "manifest.json", DOCKER_MANIFEST_MAX, &text, &len, err) < 0)
		return hutch_err_wrap(err, "docker archive");
	if (docker_archive_manifest_parse(text, len, &dm, err) < 0)
		return -1;
	char(*diff_ids)[72] = NULL;
	size_t n_diff = 0;
	int ret = -1;
	if (select_docker(&dm, ref, &which, err) < 0)
		goto out;
	const struct docker_archive_image *im = &dm.images[which];

	{
		/* only for its final name: the bytes are read by layout_read */
		char *path;
		off_t off;
		int64_t length;
		if (layout_locate(l, im->config, &path, &off, &length, &cfg_member, err) < 0) {
			hutch_err_wrap(err, "config of the image");
			goto out;
		}
		free(path);
	}
	if (layout_read(l, im->config, CONFIG_MAX_LEN, &p->config, &p->config_len, err) < 0) {
		hutch_err_wrap(err, "config of the image");
		goto out;
	}
	digest_from_blob_name(cfg_member, p->config_digest);
	if (p->config_digest[0]) {
		char got[72];
		sha256_digest(p->config, p->config_len, got);
		if (strcmp(got, p->config_digest)) {
			hutch_fail(err, 0, "config %s: its content has digest %s (corrupt archive)",
				   p->config_digest, got);
			goto out;
		}
	}
	if (image_config_diff_ids(p->config, p->config_len, &diff_ids, &n_diff, err) < 0)
		goto out;
	if (n_diff != im->n_layers) {
		hutch_fail(err, 0,
			   "manifest.json lists %zu layers but the image config has %zu diff_ids",
			   im->n_layers, n_diff);
		goto out;
	}
	p->layers = xcalloc(im->n_layers ? im->n_layers : 1, sizeof(*p->layers));
	for (size_t i = 0; i < im->n_layers; i++) {
		struct plan_layer *pl = &p->layers[i];
		_cleanup_free_ char *resolved = NULL;
		p->n_layers++;
		pl->size = -1;
		if (layout_locate(l, im->layers[i], &pl->path, &pl->offset, &pl->length, &resolved,
				  err) < 0) {
			hutch_err_wrap(err, "layer %zu", i);
			goto out;
		}
		/* Docker 25+ names blobs by digest; the legacy layout does not say
		 * (the store then checks the diff_id only). */
		digest_from_blob_name(resolved, pl->digest);
	}
	for (size_t k = 0; k < im->n_repo_tags; k++)
		plan_add_tag(p, im->repo_tags[k]);
	ret = 0;
out:
	free(diff_ids);
	docker_archive_manifest_free(&dm);
	return ret;
}

/* ---- opening archives ------------------------------------------------------------------ */

enum compression_kind { COMPRESS_NONE, COMPRESS_GZIP, COMPRESS_ZSTD };

static enum compression_kind sniff(int fd)
{
	uint8_t m[4] = {0};
	ssize_t n = pread(fd, m, sizeof(m), 0);
	if (n >= 2 && m[0] == 0x1f && m[1] == 0x8b)
		return COMPRESS_GZIP;
	if (n >= 4 && m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd)
		return COMPRESS_ZSTD;
	return COMPRESS_NONE;
}

/* A compressed archive is decompressed into an unnamed file (O_TMPFILE) for
 * random access to its members, and indexed in the same pass: the tar reader
 * reads the decompressed bytes as they are written. Having no name, the file
 * goes with its last fd: an import killed at any moment leaves nothing. It is
 * made on the store's filesystem (tmp_dir), not in $TMPDIR, which is often a
 * small tmpfs. Like containerd, hutch sets no limit of its own on how much an
 * archive may expand (a big archive of a sparse disk image is legitimate);
 * what it refuses is a member that cannot fit in the space left there, at its
 * header, before any of its data is decompressed. The bytes after the tar's
 * end are never decompressed at all. */
struct tee_src {
	struct layer_stream *ls;
	int out;
	struct hutch_err *err;
};

static ssize_t tee_read(void *ctx, void *buf, size_t len)
{
	struct tee_src *t = ctx;
	hutch_err_free(&t->err);
	ssize_t n = layer_stream_read(t->ls, buf, len, &t->err);
	if (n < 0) {
		errno = EIO;
		return -1;
	}
	if (n > 0 && write_all(t->out, buf, (size_t)n) < 0) {
		int e = errno;
		hutch_fail_sys(&t->err, "write the decompressed archive");
		errno = e;
		return -1;
	}
	return n;
}

static int decompress_and_index(int in, const char *tmp_dir, struct layout *l,
				struct hutch_err **err)
{
	const char *dir = tmp_dir;
	if (!dir) {
		dir = getenv("TMPDIR");
		if (!dir || !*dir)
			dir = "/tmp";
	}
	int fd = open(dir, O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (errno == EOPNOTSUPP || errno == EISDIR)
			return hutch_fail_sys(err,
					      "decompress the archive: %s does not support unnamed "
					      "temp files (O_TMPFILE); decompress it first",
					      dir);
		return hutch_fail_sys(err, "create a temp file in %s", dir);
	}
	struct statvfs vfs;
	uint64_t avail = fstatvfs(fd, &vfs) == 0 ? (uint64_t)vfs.f_bavail * vfs.f_frsize : 0;
	struct tee_src t = {.out = fd};
	struct tar_reader *r = NULL;
	int ret = -1;
	if (lseek(in, 0, SEEK_SET) < 0) {
		hutch_fail_sys(err, "seek in the archive");
		goto out;
	}
	if (layer_stream_open(in, &t.ls, err) < 0)
		goto out;
	r = tar_reader_new(tee_read, &t);
	if (index_members(r, avail ? avail : UINT64_MAX, dir, &l->ix, err) < 0) {
		if (t.err) {
			hutch_err_free(err);
			pass_err(err, steal_ptr(t.err));
		} else if (tar_reader_failed(r)) {
			layer_stream_check_rest(t.ls, err);
		}
		hutch_err_wrap(err, "decompress the archive");
		goto out;
	}
	l->fd = steal_fd(fd);
	ret = 0;
out:
	tar_reader_free(r);
	layer_stream_free(t.ls);
	hutch_err_free(&t.err);
	if (fd >= 0)
		close(fd);
	return ret;
}

static int layout_open_tar(struct layout *l, const char *path, const char *tmp_dir,
			   struct hutch_err **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return hutch_fail_sys(err, "open '%s'", path);
	if (sniff(fd) != COMPRESS_NONE)
		return decompress_and_index(fd, tmp_dir, l, err);
	char *real = realpath(path, NULL);
	if (!real)
		return hutch_fail_sys(err, "resolve '%s'", path);
	l->file = real;
	l->fd = steal_fd(fd);
	if (index_tar(l->fd, &l->ix, err) < 0)
		return hutch_err_wrap(err, "read the archive");
	return 0;
}

int archive_plan(const char *path, enum archive_kind kind, const char *ref,
		 const struct image_platform *platform, const char *tmp_dir,
		 struct image_plan **out, struct hutch_err **err)
{
	struct image_platform host;
	if (!platform) {
		image_platform_host(&host);
		platform = &host;
	}
	if (ref && !*ref)
		ref = NULL;
	struct layout l = {.dirfd = -1, .fd = -1};
	struct image_plan *p = image_plan_new();
	int ret = -1;
	switch (kind) {
	case ARCHIVE_OCI_DIR:
		l.dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (l.dirfd < 0) {
			hutch_fail_sys(err, "open '%s'", path);
			break;
		}
		/* an unpacked docker archive, unless it is a layout too (Docker 25+) */
		if (!layout_has(&l, "oci-layout") && layout_has(&l, "manifest.json"))
			ret = plan_docker(&l, ref, p, err);
		else
			ret = plan_oci(&l, ref, platform, p, err);
		break;
	case ARCHIVE_OCI_TAR:
	case ARCHIVE_DOCKER_TAR:
		/* What the archive holds decides, whatever detection guessed: a
		 * Docker 25+ archive is both, and its manifest.json has the names. */
		if (layout_open_tar(&l, path, tmp_dir, err) < 0)
			break;
		if (layout_has(&l, "manifest.json"))
			ret = plan_docker(&l, ref, p, err);
		else if (layout_has(&l, "oci-layout"))
			ret = plan_oci(&l, ref, platform, p, err);
		else
			hutch_fail(err, 0,
				   "the archive is neither a docker save archive (no "
				   "manifest.json) nor an OCI image layout (no oci-layout)");
		break;
	default:
		hutch_fail(err, 0, "not an image archive");
		break;
	}
	if (ret == 0) {
		p->source = xstrdup(path);
		if (!l.file && l.fd >= 0) {
			p->tmp_fd = steal_fd(l.fd);
			for (size_t i = 0; i < p->n_layers; i++)
				p->layers[i].in_tmp = true;
		}
		*out = p;
	} else {
		image_plan_free(p);
	}
	layout_close(&l);
	return ret;
}

/* ---- detection -------------------------------------------------------------------------- */

enum member_class { MC_NEUTRAL, MC_OCI, MC_DOCKER, MC_OTHER };

static enum member_class classify(const char *name)
{
	if (!*name || !strcmp(name, "repositories"))
		return MC_NEUTRAL;
	if (!strcmp(name, "oci-layout") || !strcmp(name, "index.json"))
		return MC_OCI;
	if (!strcmp(name, "manifest.json"))
		return MC_DOCKER;
	if (!strcmp(name, "blobs") || !strncmp(name, "blobs/", 6)) {
		size_t slashes = 0;
		for (const char *c = name; *c; c++)
			slashes += *c == '/';
		return slashes <= 2 ? MC_OCI : MC_OTHER;
	}
	/* legacy docker: <id>/, <id>/layer.tar, <id>/json, <id>/VERSION, <id>.json;
	 * containers/image also writes <diffid>.tar */
	size_t first = strcspn(name, "/");
	if (first == 64 && hex_prefix(name, 64))
		return MC_DOCKER;
	if (first > 64 && hex_prefix(name, 64) &&
	    (!strcmp(name + 64, ".json") || !strcmp(name + 64, ".tar")))
		return MC_DOCKER;
	return MC_OTHER;
}

struct stream_src {
	struct layer_stream *ls;
	struct hutch_err *err;
};

static ssize_t stream_read(void *ctx, void *buf, size_t len)
{
	struct stream_src *s = ctx;
	hutch_err_free(&s->err);
	ssize_t n = layer_stream_read(s->ls, buf, len, &s->err);
	if (n < 0)
		errno = s->err && s->err->errno_ ? s->err->errno_ : EIO;
	return n;
}

/* A manifest.json at the top that reads as docker save's: the directory is a
 * docker archive, whatever else is in it (its Layers may name any file, say a
 * layer.tar at the top, a symlink perhaps). Taking it for a rootfs would store
 * the archive's own files, a symlink aiming out of it among them. */
static bool dir_has_docker_manifest(int dfd)
{
	_cleanup_close_ int fd =
	    openat2_retry(dfd, "manifest.json", O_RDONLY | O_NOCTTY | O_NONBLOCK,
			  RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    st.st_size > DOCKER_MANIFEST_MAX)
		return false;
	_cleanup_free_ char *text = xcalloc(1, (size_t)st.st_size + 1);
	if (pread_all(fd, text, (size_t)st.st_size, 0, NULL) < 0)
		return false;
	struct docker_archive_manifest dm;
	if (docker_archive_manifest_parse(text, (size_t)st.st_size, &dm, NULL) < 0)
		return false;
	docker_archive_manifest_free(&dm);
	return true;
}

/* An unpacked archive (`docker save | tar x`, or a layout without its
 * oci-layout file): only archive members at the top, one of them index.json
 * or manifest.json, or a docker save manifest.json. A rootfs has other names
 * (bin, etc ...). */
static bool dir_is_unpacked_archive(int dfd)
{
	if (dir_has_docker_manifest(dfd))
		return true;
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	bool archive = true, index = false;
	struct dirent *e;
	while (archive && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		archive = classify(e->d_name) != MC_OTHER;
		index |= !strcmp(e->d_name, "index.json") ||
			 !strcmp(e->d_name, "manifest.json");
	}
	closedir(d);
	return archive && index;
}

int archive_detect(const char *path, enum archive_kind *kind, struct hutch_err **err)
{
	*kind = ARCHIVE_NONE;
	struct stat st;
	if (stat(path, &st) < 0)
		return hutch_fail_sys(err, "'%s'", path);
	if (S_ISDIR(st.st_mode)) {
		_cleanup_close_ int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0)
			return hutch_fail_sys(err, "open '%s'", path);
		struct stat lst;
		if (fstatat(dfd, "oci-layout", &lst, AT_SYMLINK_NOFOLLOW) == 0 ||
		    dir_is_unpacked_archive(dfd))
			*kind = ARCHIVE_OCI_DIR;
		return 0;
	}
	if (!S_ISREG(st.st_mode))
		return 0; /* a pipe can only be read once: the rootfs import streams it */
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return hutch_fail_sys(err, "open '%s'", path);

	/* A compressed archive is only looked at up to its first telling entry
	 * (archive_plan decides again); a plain one is cheap to walk whole. */
	bool compressed = sniff(fd) != COMPRESS_NONE;
	struct file_src fsrc = {.fd = fd, .size = (uint64_t)st.st_size};
	struct stream_src ssrc = {0};
	struct tar_reader *r;
	if (compressed) {
		if (layer_stream_open(fd, &ssrc.ls, NULL) < 0)
			return 0;
		r = tar_reader_new(stream_read, &ssrc);
	} else {
		r = tar_reader_new(file_read, &fsrc);
		tar_reader_set_skip(r, file_skip);
	}
	bool oci = false, docker = false, docker_manifest = false;
	int ret = 0;
	for (;;) {
		const struct tar_entry *e;
		struct hutch_err *terr = NULL;
		int rc = tar_next(r, &e, &terr);
		if (rc < 0) {
			if (oci || docker) {
				pass_err(err, terr);
				ret = hutch_err_wrap(err, "read the image archive '%s'", path);
			} else {
				hutch_err_free(&terr); /* not a tar: perhaps still a rootfs */
				oci = docker = false;
			}
			break;
		}
		if (rc == 0)
			break;
		_cleanup_free_ char *name = normalize_member(e->path);
		enum member_class c = name ? classify(name) : MC_OTHER;
		if (c == MC_OTHER) {
			oci = docker = false;
			break;
		}
		if (c == MC_OCI)
			oci = true;
		if (c == MC_DOCKER)
			docker = true;
		if (name && !strcmp(name, "manifest.json"))
			docker_manifest = true;
		if (compressed && c != MC_NEUTRAL)
			break;
	}
	tar_reader_free(r);
	layer_stream_free(ssrc.ls);
	hutch_err_free(&ssrc.err);
	if (ret < 0)
		return ret;
	if (docker_manifest || (docker && !oci))
		*kind = ARCHIVE_DOCKER_TAR;
	else if (oci)
		*kind = ARCHIVE_OCI_TAR;
	return 0;
}
