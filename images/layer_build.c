/* Layers made by a build: what a step adds (a RUN's overlay upper dir, files
 * copied from a build context or from another image's layers, the members of
 * a local archive) written as one tar, which the store then unpacks and keeps
 * like any imported layer (store.c: hutch_layer_build). Going through a tar
 * gives the layer a true diff_id and sends every file through the same safe
 * unpacker (openat2 in the layer root, whiteouts, owners through the user
 * namespace) as a pulled layer. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>

#include "common/util.h"
#include "images/images.h"
#include "images/layer_build_internal.h"
#include "images/layer_internal.h"

#define BLOCK	      512
#define PATH_MAX_LINK 4096

struct tarw {
	int fd;
	const struct hutch_layer_add *add; /* the first: its progress callback */
	uint64_t bytes, files;		   /* file data written so far */
	/* files with several links: the first path written, by (dev, ino) */
	struct link_seen {
		dev_t dev;
		ino_t ino;
		char *path;
	} * links;
	size_t n_links;
	/* directories already written (parents of COPY destinations) */
	char **dirs;
	size_t n_dirs;
	char *const *parent_layers;
	size_t n_parent_layers;
};

static void octal(char *field, size_t width, uint64_t v)
{
	/* width-1 digits and a NUL, as ustar writers do */
	char tmp[32];
	snprintf(tmp, sizeof(tmp), "%0*llo", (int)width - 1, (unsigned long long)v);
	memcpy(field, tmp + strlen(tmp) - (width - 1), width - 1);
}

static void pax_record(char **buf, size_t *len, const char *key, const char *value, size_t vlen)
{
	size_t body = strlen(key) + vlen + 3; /* ' ' '=' '\n' */
	size_t total = body + 1, digits;
	for (;;) {
		char tmp[32];
		digits = (size_t)snprintf(tmp, sizeof(tmp), "%zu", total);
		if (body + digits == total)
			break;
		total = body + digits;
	}
	*buf = xrealloc(*buf, *len + total + 1);
	int n = snprintf(*buf + *len, total + 1, "%zu %s=", total, key);
	memcpy(*buf + *len + n, value, vlen);
	(*buf)[*len + total - 1] = '\n';
	*len += total;
}

static int pad_to_block(int fd, uint64_t size, struct hutch_err **err)
{
	static const char zeros[BLOCK];
	size_t rest = (size_t)((BLOCK - size % BLOCK) % BLOCK);
	if (rest && write_all(fd, zeros, rest) < 0)
		return hutch_fail_sys(err, "write the layer tar");
	return 0;
}

void tar_header_block(char h[512], const char *name, char type, mode_t mode, uint32_t uid,
		      uint32_t gid, uint64_t size, int64_t mtime, const char *link, unsigned major,
		      unsigned minor)
{
	memset(h, 0, BLOCK);
	strncpy(h, name, 100);
	octal(h + 100, 8, mode & 07777);
	octal(h + 108, 8, uid > 07777777 ? 0 : uid);
	octal(h + 116, 8, gid > 07777777 ? 0 : gid);
	if (size > 077777777777ULL) {
		/* base-256 (GNU, read by every tar since): a layer of 8 GiB or more */
		h[124] = (char)0x80;
		for (int i = 11; i >= 4; i--, size >>= 8)
			h[124 + i] = (char)(size & 0xff);
	} else {
		octal(h + 124, 12, size);
	}
	octal(h + 136, 12, mtime < 0 ? 0 : (uint64_t)mtime);
	memset(h + 148, ' ', 8);
	h[156] = type;
	if (link)
		strncpy(h + 157, link, 100);
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	octal(h + 329, 8, major);
	octal(h + 337, 8, minor);
	unsigned sum = 0;
	for (size_t i = 0; i < BLOCK; i++)
		sum += (unsigned char)h[i];
	char sumtxt[16];
	snprintf(sumtxt, sizeof(sumtxt), "%06o", sum & 0777777);
	memcpy(h + 148, sumtxt, 7);
}

static int write_raw_header(int fd, const char *name, char type, mode_t mode, uint32_t uid,
			    uint32_t gid, uint64_t size, int64_t mtime, const char *link,
			    unsigned major, unsigned minor, struct hutch_err **err)
{
	char h[BLOCK];
	tar_header_block(h, name, type, mode, uid, gid, size, mtime, link, major, minor);
	if (write_all(fd, h, BLOCK) < 0)
		return hutch_fail_sys(err, "write the layer tar");
	return 0;
}

struct tar_hdr {
	const char *path; /* relative, no leading "/" */
	char type; /* '0' file, '1' hardlink, '2' symlink, '3' char, '4' block, '5' dir, '6' fifo */
	mode_t mode;
	uint32_t uid, gid;
	uint64_t size;
	int64_t mtime;
	const char *link;
	unsigned major, minor;
	int xattr_fd; /* copy user.* (but overlay's) and security.capability from it; -1: none */
	const char *xattr_path; /* or by path (symlinks have none worth keeping) */
};

static void collect_xattrs(const struct tar_hdr *e, char **pax, size_t *len)
{
	if (e->xattr_fd < 0)
		return;
	char names[4096];
	ssize_t n = flistxattr(e->xattr_fd, names, sizeof(names));
	for (ssize_t off = 0; n > 0 && off < n; off += (ssize_t)strlen(names + off) + 1) {
		const char *name = names + off;
		bool keep = !strcmp(name, "security.capability") ||
			    (!strncmp(name, "user.", 5) && strncmp(name, "user.overlay.", 13));
		if (!keep)
			continue;
		char value[4096];
		ssize_t vl = fgetxattr(e->xattr_fd, name, value, sizeof(value));
		if (vl < 0)
			continue;
		_cleanup_free_ char *key = xasprintf("SCHILY.xattr.%s", name);
		pax_record(pax, len, key, value, (size_t)vl);
	}
}

static int tarw_header(struct tarw *w, const struct tar_hdr *e, struct hutch_err **err)
{
	_cleanup_free_ char *pax = NULL;
	size_t pax_len = 0;
	char num[32];
	if (strlen(e->path) >= 100)
		pax_record(&pax, &pax_len, "path", e->path, strlen(e->path));
	if (e->link && strlen(e->link) >= 100)
		pax_record(&pax, &pax_len, "linkpath", e->link, strlen(e->link));
	if (e->size > 077777777777ULL) {
		snprintf(num, sizeof(num), "%llu", (unsigned long long)e->size);
		pax_record(&pax, &pax_len, "size", num, strlen(num));
	}
	if (e->uid > 07777777) {
		snprintf(num, sizeof(num), "%u", e->uid);
		pax_record(&pax, &pax_len, "uid", num, strlen(num));
	}
	if (e->gid > 07777777) {
		snprintf(num, sizeof(num), "%u", e->gid);
		pax_record(&pax, &pax_len, "gid", num, strlen(num));
	}
	collect_xattrs(e, &pax, &pax_len);
	if (pax_len) {
		if (write_raw_header(w->fd, "././@PaxHeader", 'x', 0644, 0, 0, pax_len, 0, NULL, 0,
				     0, err) < 0 ||
		    write_all(w->fd, pax, pax_len) < 0 || pad_to_block(w->fd, pax_len, err) < 0)
			return hutch_fail_sys(err, "write the layer tar");
	}
	return write_raw_header(w->fd, e->path, e->type, e->mode, e->uid, e->gid, e->size, e->mtime,
				e->link, e->major, e->minor, err);
}

static void progress(struct tarw *w, uint64_t bytes, bool file_done)
{
	w->bytes += bytes;
	w->files += file_done;
	if (w->add && w->add->progress)
		w->add->progress(w->add->progress_data, HUTCH_LAYER_READ, w->bytes, w->files,
				 false);
}

static int copy_data(struct tarw *w, int in, uint64_t size, const char *what,
		     struct hutch_err **err)
{
	char buf[65536];
	uint64_t done = 0;
	while (done < size) {
		size_t want = size - done < sizeof(buf) ? (size_t)(size - done) : sizeof(buf);
		ssize_t n = read(in, buf, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return hutch_fail_sys(err, "read %s", what);
		if (n == 0) /* shrank while being read: pad, the header said size */
			memset(buf, 0, want), n = (ssize_t)want;
		if (write_all(w->fd, buf, (size_t)n) < 0)
			return hutch_fail_sys(err, "write the layer tar");
		done += (uint64_t)n;
		progress(w, (uint64_t)n, false);
	}
	progress(w, 0, true);
	return pad_to_block(w->fd, size, err);
}

/* Owners and modes an addition imposes. */
static void apply_owner(const struct hutch_layer_add *a, struct tar_hdr *h)
{
	if (!a || a->kind == HUTCH_ADD_UPPER)
		return;
	if (a->chown) {
		h->uid = a->uid;
		h->gid = a->gid;
	} else if (a->kind == HUTCH_ADD_PATH) {
		/* from a build context: root's, as Docker's COPY makes them */
		h->uid = h->gid = 0;
	}
	if (a->chmod && h->type != '2')
		h->mode = (h->mode & ~07777u) | (a->mode & 07777u);
}

static const char *seen_link(struct tarw *w, const struct stat *st, const char *path)
{
	for (size_t i = 0; i < w->n_links; i++)
		if (w->links[i].dev == st->st_dev && w->links[i].ino == st->st_ino)
			return w->links[i].path;
	w->links = xrealloc(w->links, (w->n_links + 1) * sizeof(*w->links));
	w->links[w->n_links++] = (struct link_seen){st->st_dev, st->st_ino, xstrdup(path)};
	return NULL;
}

/* One entry of a host directory tree (dirfd/name) written as path. */
static int write_node(struct tarw *w, int dirfd, const char *name, const struct stat *st,
		      const char *path, const struct hutch_layer_add *a, struct hutch_err **err)
{
	struct tar_hdr h = {.path = path,
			    .mode = st->st_mode & 07777,
			    .uid = st->st_uid,
			    .gid = st->st_gid,
			    .mtime = st->st_mtim.tv_sec,
			    .xattr_fd = -1};
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *target = NULL;
	if (S_ISREG(st->st_mode)) {
		const char *first = st->st_nlink > 1 ? seen_link(w, st, path) : NULL;
		if (first) {
			h.type = '1';
			h.link = first;
			apply_owner(a, &h);
			return tarw_header(w, &h, err);
		}
		fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		if (fd < 0)
			return hutch_fail_sys(err, "open %s", path);
		h.type = '0';
		h.size = (uint64_t)st->st_size;
		h.xattr_fd = fd;
	} else if (S_ISDIR(st->st_mode)) {
		h.type = '5';
		fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		h.xattr_fd = fd;
	} else if (S_ISLNK(st->st_mode)) {
		target = xcalloc(1, PATH_MAX_LINK + 1);
		ssize_t n = readlinkat(dirfd, name, target, PATH_MAX_LINK);
		if (n < 0)
			return hutch_fail_sys(err, "read symlink %s", path);
		h.type = '2';
		h.link = target;
	} else if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode)) {
		h.type = S_ISCHR(st->st_mode) ? '3' : '4';
		h.major = major(st->st_rdev);
		h.minor = minor(st->st_rdev);
	} else if (S_ISFIFO(st->st_mode)) {
		h.type = '6';
	} else {
		return 0; /* sockets: nothing a layer can hold */
	}
	apply_owner(a, &h);
	if (tarw_header(w, &h, err) < 0)
		return -1;
	return h.type == '0' ? copy_data(w, fd, h.size, path, err) : 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of a directory (for a stable tar). */
static char **list_dir(int fd, size_t *n)
{
	*n = 0;
	int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	DIR *d = dup >= 0 ? fdopendir(dup) : NULL;
	if (!d) {
		if (dup >= 0)
			close(dup);
		return NULL;
	}
	char **v = NULL;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		v = xrealloc(v, (*n + 1) * sizeof(char *));
		v[(*n)++] = xstrdup(de->d_name);
	}
	closedir(d);
	if (*n)
		qsort(v, *n, sizeof(char *), name_cmp);
	return v;
}

static void free_names(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static char *join(const char *dir, const char *name)
{
	return *dir ? xasprintf("%s/%s", dir, name) : xstrdup(name);
}

static bool is_whiteout_dev(const struct stat *st)
{
	return S_ISCHR(st->st_mode) && st->st_rdev == makedev(0, 0);
}

static bool xattr_is(int fd, const char *name, const char *want)
{
	char v[4];
	ssize_t n = fgetxattr(fd, name, v, sizeof(v) - 1);
	if (n < 0)
		return false;
	v[n] = '\0';
	return !want || !strcmp(v, want);
}

/* A host tree under dirfd (a directory) written below prefix. Upper dirs turn
 * overlay whiteouts into ".wh." entries; contexts skip what a.ignore says. */
static int write_tree(struct tarw *w, int dirfd, const char *prefix, const char *rel,
		      const struct hutch_layer_add *a, int depth, struct hutch_err **err)
{
	if (depth > 512)
		return hutch_fail(err, ELOOP, "%s: directories nested too deep", prefix);
	size_t n = 0;
	char **names = list_dir(dirfd, &n);
	int ret = 0;
	bool upper = a->kind == HUTCH_ADD_UPPER;
	if (upper &&
	    (xattr_is(dirfd, "trusted.overlay.opaque", "y") ||
	     xattr_is(dirfd, "user.overlay.opaque", "y")) &&
	    *prefix) {
		_cleanup_free_ char *p = join(prefix, ".wh..wh..opq");
		struct tar_hdr h = {.path = p, .type = '0', .mode = 0644, .xattr_fd = -1};
		ret = tarw_header(w, &h, err);
	}
	for (size_t i = 0; ret == 0 && i < n; i++) {
		_cleanup_free_ char *r = join(rel, names[i]);
		if (a->ignore && a->ignore(r, a->ignore_data))
			continue;
		struct stat st;
		if (fstatat(dirfd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
			ret = hutch_fail_sys(err, "stat %s", r);
			break;
		}
		_cleanup_free_ char *p = join(prefix, names[i]);
		if (upper && is_whiteout_dev(&st)) {
			_cleanup_free_ char *wh = xasprintf(".wh.%s", names[i]);
			_cleanup_free_ char *whp = join(prefix, wh);
			struct tar_hdr h = {.path = whp, .type = '0', .mode = 0644, .xattr_fd = -1};
			ret = tarw_header(w, &h, err);
			continue;
		}
		if ((ret = write_node(w, dirfd, names[i], &st, p, a, err)) < 0)
			break;
		if (S_ISDIR(st.st_mode)) {
			_cleanup_close_ int sub = openat(
			    dirfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0) {
				ret = hutch_fail_sys(err, "open %s", r);
				break;
			}
			ret = write_tree(w, sub, p, r, a, depth + 1, err);
		}
	}
	free_names(names, n);
	return ret;
}

/* ---- the merged view of image layers (COPY --from, parents of destinations) ---- */

/* Open dir (relative, "" for the root) in layer dirfd, never leaving it. */
static int layer_open_dir(int layerfd, const char *dir)
{
	if (!*dir)
		return fcntl(layerfd, F_DUPFD_CLOEXEC, 0);
	return openat2_retry(layerfd, dir, O_RDONLY | O_DIRECTORY,
			     RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV);
}

static bool is_whiteout_at(int dirfd, const char *name, const struct stat *st)
{
	if (is_whiteout_dev(st))
		return true;
	if (!S_ISREG(st->st_mode) || st->st_size != 0)
		return false;
	_cleanup_close_ int fd =
	    openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	return fd >= 0 && xattr_is(fd, "user.overlay.whiteout", NULL);
}

static bool dir_is_opaque(int fd)
{
	return xattr_is(fd, "trusted.overlay.opaque", "y") ||
	       xattr_is(fd, "user.overlay.opaque", "y");
}

/* Find path in the merged view of layers (lowest first): the index of the
 * layer whose entry shows, its stat and its parent dir fd; -1 if absent. */
static int merged_lookup(char *const *layers, size_t n, const char *path, struct stat *st,
			 int *parent_out)
{
	_cleanup_free_ char *copy = xstrdup(path);
	char *slash = strrchr(copy, '/');
	const char *dir = slash ? copy : "", *leaf = slash ? slash + 1 : copy;
	if (slash)
		*slash = '\0';
	for (size_t k = n; k-- > 0;) {
		_cleanup_close_ int lfd = open(layers[k], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (lfd < 0)
			continue;
		int pfd = layer_open_dir(lfd, dir);
		if (pfd < 0)
			continue;
		if (fstatat(pfd, leaf, st, AT_SYMLINK_NOFOLLOW) == 0) {
			if (is_whiteout_at(pfd, leaf, st)) {
				close(pfd);
				return -1;
			}
			*parent_out = pfd;
			return (int)k;
		}
		bool opaque = dir_is_opaque(pfd);
		close(pfd);
		if (opaque)
			return -1;
	}
	return -1;
}

/* The merged directory whose copies in layers are fds[] (top first, -1 where
 * absent) written below prefix. */
static int write_merged_dir(struct tarw *w, int *fds, size_t n, const char *prefix,
			    const struct hutch_layer_add *a, int depth, struct hutch_err **err)
{
	if (depth > 512)
		return hutch_fail(err, ELOOP, "%s: directories nested too deep", prefix);
	char **seen = NULL;
	size_t n_seen = 0;
	int ret = 0;
	for (size_t k = 0; k < n && ret == 0; k++) {
		if (fds[k] < 0)
			continue;
		size_t nn = 0;
		char **names = list_dir(fds[k], &nn);
		for (size_t i = 0; i < nn && ret == 0; i++) {
			bool dup = false;
			for (size_t j = 0; j < n_seen && !dup; j++)
				dup = !strcmp(seen[j], names[i]);
			if (dup)
				continue;
			seen = xrealloc(seen, (n_seen + 1) * sizeof(char *));
			seen[n_seen++] = xstrdup(names[i]);
			struct stat st;
			if (fstatat(fds[k], names[i], &st, AT_SYMLINK_NOFOLLOW) < 0 ||
			    is_whiteout_at(fds[k], names[i], &st))
				continue;
			_cleanup_free_ char *p = join(prefix, names[i]);
			if ((ret = write_node(w, fds[k], names[i], &st, p, a, err)) < 0)
				break;
			if (!S_ISDIR(st.st_mode))
				continue;
			int *sub = xcalloc(n, sizeof(int));
			for (size_t j = 0; j < n; j++)
				sub[j] = -1;
			for (size_t j = k; j < n; j++) {
				if (fds[j] < 0)
					continue;
				struct stat s2;
				if (fstatat(fds[j], names[i], &s2, AT_SYMLINK_NOFOLLOW) < 0)
					continue;
				if (!S_ISDIR(s2.st_mode))
					break;
				sub[j] = openat(fds[j], names[i],
						O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				if (sub[j] >= 0 && dir_is_opaque(sub[j]))
					break;
			}
			ret = write_merged_dir(w, sub, n, p, a, depth + 1, err);
			for (size_t j = 0; j < n; j++)
				if (sub[j] >= 0)
					close(sub[j]);
			free(sub);
		}
		free_names(names, nn);
		if (dir_is_opaque(fds[k]))
			break;
	}
	free_names(seen, n_seen);
	return ret;
}

/* ---- destinations ---------------------------------------------------------------- */

/* Write the directories leading to dest (not dest itself) once, with the
 * attributes the image below has for them (else 0755, owned as the addition
 * says), so that a COPY into /tmp/x keeps /tmp's 1777. */
/* a directory the layer's tar has, which write_parents does not write again */
static void remember_dir(struct tarw *w, const char *path)
{
	for (size_t i = 0; i < w->n_dirs; i++)
		if (!strcmp(w->dirs[i], path))
			return;
	w->dirs = xrealloc(w->dirs, (w->n_dirs + 1) * sizeof(char *));
	w->dirs[w->n_dirs++] = xstrdup(path);
}

static int write_parents(struct tarw *w, const char *dest, const struct hutch_layer_add *a,
			 struct hutch_err **err)
{
	_cleanup_free_ char *path = xstrdup(dest);
	for (char *s = strchr(path, '/'); s; s = strchr(s + 1, '/')) {
		*s = '\0';
		bool done = false;
		for (size_t i = 0; i < w->n_dirs && !done; i++)
			done = !strcmp(w->dirs[i], path);
		if (!done) {
			struct stat st;
			int pfd = -1;
			struct tar_hdr h = {.path = path,
					    .type = '5',
					    .mode = 0755,
					    .uid = a->chown ? a->uid : 0,
					    .gid = a->chown ? a->gid : 0,
					    .mtime = time(NULL),
					    .xattr_fd = -1};
			if (merged_lookup(w->parent_layers, w->n_parent_layers, path, &st, &pfd) >=
				0 &&
			    S_ISDIR(st.st_mode)) {
				h.mode = st.st_mode & 07777;
				h.uid = st.st_uid;
				h.gid = st.st_gid;
				h.mtime = st.st_mtim.tv_sec;
			}
			if (pfd >= 0)
				close(pfd);
			if (tarw_header(w, &h, err) < 0)
				return -1;
			w->dirs = xrealloc(w->dirs, (w->n_dirs + 1) * sizeof(char *));
			w->dirs[w->n_dirs++] = xstrdup(path);
		}
		*s = '/';
	}
	return 0;
}

/* dest is a directory in the image below: written as a parent is, with the
 * attributes it has there (COPY dir /etc/ leaves /etc as it was). 1 if so. */
static int existing_dir(struct tarw *w, const char *dest, const struct hutch_layer_add *a,
			struct hutch_err **err)
{
	struct stat st;
	int pfd = -1;
	int k = merged_lookup(w->parent_layers, w->n_parent_layers, dest, &st, &pfd);
	if (pfd >= 0)
		close(pfd);
	if (k < 0 || !S_ISDIR(st.st_mode))
		return 0;
	_cleanup_free_ char *below = xasprintf("%s/x", dest);
	return write_parents(w, below, a, err) < 0 ? -1 : 1;
}

/* dest without its leading '/' ("" for the root), no trailing '/'. */
static char *rel_dest(const char *dest)
{
	while (*dest == '/')
		dest++;
	char *r = xstrdup(dest);
	size_t l = strlen(r);
	while (l && r[l - 1] == '/')
		r[--l] = '\0';
	return r;
}

/* A source the builder opened (beneath the context): nothing here goes by its
 * name, which may lead elsewhere by now. */
static int add_path_fd(struct tarw *w, const struct hutch_layer_add *a, struct hutch_err **err)
{
	_cleanup_free_ char *dest = rel_dest(a->dest);
	struct stat st;
	if (fstat(a->src_fd, &st) < 0)
		return hutch_fail_sys(err, "%s", a->src);
	if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
		return hutch_fail(err, 0, "%s is not a regular file or directory", a->src);
	if (!S_ISDIR(st.st_mode) && !*dest)
		return hutch_fail(err, EISDIR, "cannot copy file %s over the image's root", a->src);
	if (*dest && write_parents(w, dest, a, err) < 0)
		return -1;
	if (S_ISDIR(st.st_mode)) {
		/* a description of its own: the plan's fd was read by readdir */
		_cleanup_close_ int dfd =
		    openat(a->src_fd, ".", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dfd < 0)
			return hutch_fail_sys(err, "open %s", a->src);
		int e = *dest ? existing_dir(w, dest, a, err) : 1;
		if (e < 0 || (!e && write_node(w, dfd, ".", &st, dest, a, err) < 0))
			return -1;
		return write_tree(w, dfd, dest, a->rel ? a->rel : "", a, 0, err);
	}
	if (lseek(a->src_fd, 0, SEEK_SET) < 0)
		return hutch_fail_sys(err, "%s", a->src);
	struct tar_hdr h = {.path = dest,
			    .type = '0',
			    .mode = st.st_mode & 07777,
			    .size = (uint64_t)st.st_size,
			    .mtime = st.st_mtim.tv_sec,
			    .xattr_fd = a->src_fd};
	apply_owner(a, &h);
	if (tarw_header(w, &h, err) < 0)
		return -1;
	return copy_data(w, a->src_fd, h.size, a->src, err);
}

static int add_path(struct tarw *w, const struct hutch_layer_add *a, struct hutch_err **err)
{
	if (a->has_src_fd)
		return add_path_fd(w, a, err);
	_cleanup_free_ char *dest = rel_dest(a->dest);
	_cleanup_free_ char *src = xstrdup(a->src);
	char *slash = strrchr(src, '/');
	const char *leaf = slash && slash[1] ? slash + 1 : ".";
	if (slash && slash != src && slash[1])
		*slash = '\0';
	else if (slash == src && slash[1])
		src[1] = '\0';
	_cleanup_close_ int pfd =
	    open(slash && slash[1] ? src : a->src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pfd < 0)
		return hutch_fail_sys(err, "open %s", a->src);
	struct stat st;
	if (fstatat(pfd, leaf, &st, 0) < 0) /* the source itself: a symlink is followed */
		return hutch_fail_sys(err, "%s", a->src);
	if (*dest && write_parents(w, dest, a, err) < 0)
		return -1;
	if (S_ISDIR(st.st_mode)) {
		_cleanup_close_ int dfd = openat(pfd, leaf, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0)
			return hutch_fail_sys(err, "open %s", a->src);
		int e = *dest ? existing_dir(w, dest, a, err) : 1;
		if (e < 0 || (!e && write_node(w, pfd, leaf, &st, dest, a, err) < 0))
			return -1;
		return write_tree(w, dfd, dest, a->rel ? a->rel : "", a, 0, err);
	}
	if (!*dest)
		return hutch_fail(err, EISDIR, "cannot copy file %s over the image's root", a->src);
	/* a symlink source stands for its target's file */
	_cleanup_close_ int ffd = openat(pfd, leaf, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (ffd < 0)
		return hutch_fail_sys(err, "open %s", a->src);
	struct tar_hdr h = {.path = dest,
			    .type = '0',
			    .mode = st.st_mode & 07777,
			    .size = (uint64_t)st.st_size,
			    .mtime = st.st_mtim.tv_sec,
			    .xattr_fd = ffd};
	if (!S_ISREG(st.st_mode))
		return hutch_fail(err, 0, "%s is not a regular file or directory", a->src);
	apply_owner(a, &h);
	if (tarw_header(w, &h, err) < 0)
		return -1;
	return copy_data(w, ffd, h.size, a->src, err);
}

static int add_from_layers(struct tarw *w, const struct hutch_layer_add *a, struct hutch_err **err)
{
	_cleanup_free_ char *dest = rel_dest(a->dest), *src = rel_dest(a->src);
	struct stat st;
	int pfd = -1;
	if (*src) {
		if (merged_lookup(a->layers, a->n_layers, src, &st, &pfd) < 0)
			return hutch_fail(err, ENOENT, "%s: no such file or directory", a->src);
	}
	_cleanup_close_ int parent = pfd;
	if (*dest && write_parents(w, dest, a, err) < 0)
		return -1;
	if (*src && !S_ISDIR(st.st_mode)) {
		if (!*dest)
			return hutch_fail(err, EISDIR, "cannot copy %s over the image's root",
					  a->src);
		const char *leaf = strrchr(src, '/') ? strrchr(src, '/') + 1 : src;
		return write_node(w, parent, leaf, &st, dest, a, err);
	}
	/* a directory: its merged contents */
	int *fds = xcalloc(a->n_layers, sizeof(int));
	size_t n = a->n_layers;
	for (size_t j = 0; j < n; j++)
		fds[j] = -1;
	int e = *dest ? existing_dir(w, dest, a, err) : 1;
	if (e < 0) {
		free(fds);
		return -1;
	}
	if (*src && !e) {
		const char *leaf = strrchr(src, '/') ? strrchr(src, '/') + 1 : src;
		if (write_node(w, parent, leaf, &st, dest, a, err) < 0) {
			free(fds);
			return -1;
		}
	}
	for (size_t k = 0; k < n; k++) { /* top first */
		size_t layer = n - 1 - k;
		_cleanup_close_ int lfd =
		    open(a->layers[layer], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		int dfd = lfd >= 0 ? layer_open_dir(lfd, src) : -1;
		struct stat s2;
		if (dfd < 0 || fstat(dfd, &s2) < 0) {
			if (dfd >= 0)
				close(dfd);
			continue;
		}
		fds[k] = dfd;
		if (dir_is_opaque(dfd))
			break;
	}
	int r = write_merged_dir(w, fds, n, dest, a, 0, err);
	for (size_t j = 0; j < n; j++)
		if (fds[j] >= 0)
			close(fds[j]);
	free(fds);
	return r;
}

struct archive_reader {
	struct layer_stream *ls;
	struct hutch_err **err;
};

static ssize_t archive_read_cb(void *ctx, void *buf, size_t len)
{
	struct archive_reader *r = ctx;
	ssize_t n = layer_stream_read(r->ls, buf, len, r->err);
	if (n < 0)
		errno = EIO;
	return n;
}

/* ADD of a local archive: its members below dest, through hutch's tar reader;
 * the unpacker refuses members that climb out ("..") as it does in any layer. */
static int add_archive(struct tarw *w, const struct hutch_layer_add *a, struct hutch_err **err)
{
	_cleanup_free_ char *dest = rel_dest(a->dest);
	_cleanup_close_ int fd = -1;
	if (a->has_src_fd) {
		/* the builder's fd, resolved beneath the context; a dup shares its
		 * offset, hence the rewind */
		fd = fcntl(a->src_fd, F_DUPFD_CLOEXEC, 3);
		if (fd < 0 || lseek(fd, 0, SEEK_SET) < 0)
			return hutch_fail_sys(err, "open %s", a->src);
	} else {
		fd = open(a->src, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	}
	if (fd < 0)
		return hutch_fail_sys(err, "open %s", a->src);
	struct layer_stream *ls = NULL;
	if (layer_stream_open(fd, &ls, err) < 0)
		return -1;
	struct archive_reader rd = {.ls = ls, .err = err};
	struct tar_reader *tr = tar_reader_new(archive_read_cb, &rd);
	int ret = 0;
	if (*dest)
		ret = write_parents(w, dest, a, err);
	if (ret == 0 && *dest) {
		struct tar_hdr h = {.path = dest,
				    .type = '5',
				    .mode = 0755,
				    .uid = a->chown ? a->uid : 0,
				    .gid = a->chown ? a->gid : 0,
				    .xattr_fd = -1};
		ret = tarw_header(w, &h, err);
		if (ret == 0)
			remember_dir(w, dest);
	}
	const struct tar_entry *e;
	int r;
	while (ret == 0 && (r = tar_next(tr, &e, err)) > 0) {
		const char *p = e->path;
		while (p[0] == '.' && p[1] == '/')
			p += 2;
		while (*p == '/')
			p++;
		if (!*p || !strcmp(p, "."))
			continue;
		_cleanup_free_ char *path = join(dest, p);
		size_t pl = strlen(path);
		while (pl && path[pl - 1] == '/')
			path[--pl] = '\0';
		_cleanup_free_ char *link = NULL;
		static const char types[] = {
		    [TAR_FILE] = '0',  [TAR_HARDLINK] = '1', [TAR_SYMLINK] = '2', [TAR_CHAR] = '3',
		    [TAR_BLOCK] = '4', [TAR_DIR] = '5',	     [TAR_FIFO] = '6'};
		struct tar_hdr h = {.path = path,
				    .type = types[e->type],
				    .mode = e->mode,
				    .uid = e->uid,
				    .gid = e->gid,
				    .mtime = e->mtime.tv_sec,
				    .major = e->devmajor,
				    .minor = e->devminor,
				    .xattr_fd = -1};
		if (e->type == TAR_HARDLINK) {
			const char *t = e->linkname;
			while (t[0] == '.' && t[1] == '/')
				t += 2;
			link = join(dest, t);
			h.link = link;
		} else if (e->type == TAR_SYMLINK) {
			h.link = e->linkname;
			h.mode = 0777; /* what any symlink has once unpacked */
		}
		if (e->type == TAR_FILE)
			h.size = (uint64_t)e->size;
		apply_owner(a, &h);
		/* an archive need not list a member's directories: the layer does,
		 * as they are below (or 0755 root), as podman and docker unpack it */
		if ((ret = write_parents(w, path, a, err)) < 0 ||
		    (ret = tarw_header(w, &h, err)) < 0)
			break;
		if (e->type == TAR_DIR)
			remember_dir(w, path);
		if (e->type != TAR_FILE)
			continue;
		char buf[65536];
		uint64_t done = 0;
		ssize_t n;
		while ((n = tar_read_data(tr, buf, sizeof(buf), err)) > 0) {
			if (write_all(w->fd, buf, (size_t)n) < 0) {
				ret = hutch_fail_sys(err, "write the layer tar");
				break;
			}
			done += (uint64_t)n;
			progress(w, (uint64_t)n, false);
		}
		progress(w, 0, true);
		if (n < 0)
			ret = -1;
		else if (ret == 0)
			ret = pad_to_block(w->fd, done, err);
	}
	if (ret == 0 && r < 0)
		ret = -1;
	if (ret < 0)
		hutch_err_wrap(err, "archive %s", a->src);
	tar_reader_free(tr);
	layer_stream_free(ls);
	return ret;
}

int layer_tar_write(int fd, const struct hutch_layer_add *adds, size_t n, char *const *parents,
		    size_t n_parents, struct hutch_err **err)
{
	struct tarw w = {.fd = fd, .parent_layers = parents, .n_parent_layers = n_parents};
	int ret = 0;
	for (size_t i = 0; i < n && ret == 0; i++) {
		const struct hutch_layer_add *a = &adds[i];
		w.add = adds;
		switch (a->kind) {
		case HUTCH_ADD_UPPER: {
			_cleanup_close_ int dfd = open(a->src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			ret = dfd < 0 ? hutch_fail_sys(err, "open %s", a->src)
				      : write_tree(&w, dfd, "", "", a, 0, err);
			break;
		}
		case HUTCH_ADD_PATH:
			ret = add_path(&w, a, err);
			break;
		case HUTCH_ADD_LAYERS:
			ret = add_from_layers(&w, a, err);
			break;
		case HUTCH_ADD_ARCHIVE:
			ret = add_archive(&w, a, err);
			break;
		case HUTCH_ADD_DIR: {
			/* dest as the parent of a name below it: written with the
			 * attributes it has below when it exists (WORKDIR /tmp keeps 1777) */
			_cleanup_free_ char *dest = rel_dest(a->dest);
			_cleanup_free_ char *below = xasprintf("%s/x", dest);
			if (*dest)
				ret = write_parents(&w, below, a, err);
			break;
		}
		}
	}
	static const char end[2 * BLOCK];
	if (ret == 0 && write_all(fd, end, sizeof(end)) < 0)
		ret = hutch_fail_sys(err, "write the layer tar");
	if (ret == 0 && n && adds[0].progress)
		adds[0].progress(adds[0].progress_data, HUTCH_LAYER_READ, w.bytes, w.files, true);
	for (size_t i = 0; i < w.n_links; i++)
		free(w.links[i].path);
	free(w.links);
	free_names(w.dirs, w.n_dirs);
	return ret;
}
