/* Unpacking a layer: the code between a hostile image and the host.
 *
 * Every entry's path is normalised lexically (no "..", no absolute paths),
 * then only its PARENT directory is resolved, with openat2(RESOLVE_IN_ROOT)
 * from the layer directory: the kernel treats the layer dir as "/", so a
 * symlink in the layer (absolute, or with enough ".." to climb out) is
 * followed inside the layer and can never lead outside it. That is how Docker
 * (in a chroot) and containerd (fs.RootPath) resolve layer paths, and real
 * layers depend on it: `usr/lib64 -> /usr/lib` and then `usr/lib64/foo` puts
 * foo in the layer's usr/lib. The entry itself is then made with a *at call on
 * that parent fd and a single-component name, never following a symlink in
 * the last component (O_NOFOLLOW, O_EXCL, AT_SYMLINK_NOFOLLOW). Symlinks are
 * stored as they are: their text is harmless until something follows it.
 *
 * As tar does, a later entry replaces an earlier one at the same path.
 * Directory modes and mtimes are applied at the end: a 0555 directory must
 * still take the files that follow it, and writing those files would bump
 * an mtime set earlier. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/util.h"
#include "images/layer_internal.h"

#define UNPACK_COPY_BUF (256 * 1024)
#define RESOLVE_LAYER	(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)

#define WHITEOUT_PREFIX	     ".wh."
#define WHITEOUT_OPAQUE	     ".wh..wh..opq"
#define WHITEOUT_META_PREFIX ".wh..wh." /* aufs bookkeeping (.wh..wh.plnk ...) */

struct deferred_dir {
	char *path; /* normalised, relative to the layer */
	mode_t mode;
	struct timespec mtime;
};

struct unpacker {
	int root; /* the layer directory */
	bool rootless, convert_whiteouts;
	uint64_t max_bytes, declared_bytes; /* file data allowed, and announced so far */
	struct unpack_stats *stats;
	struct tar_split *split;
	void (*progress)(void *data, uint64_t bytes, uint64_t files);
	void *progress_data;
	uint64_t bytes, files;	       /* file data written, for progress */
	const struct tar_entry *entry; /* the entry being unpacked, for messages */

	/* Entries of one directory come in a row in practice, so the last
	 * parent resolved is kept. It goes stale whenever anything is removed
	 * or a symlink is made, since either could change what a path means;
	 * the fd stays open until then, as the current entry still uses it. */
	char *parent_path;
	int parent_fd;
	bool parent_stale;

	struct deferred_dir *dirs;
	size_t n_dirs, cap_dirs;

	uint8_t *buf; /* file data goes through here */
};

/* ---- messages ------------------------------------------------------------------- */

__attribute__((format(printf, 4, 5))) static int
entry_fail(struct unpacker *u, struct hutch_err **err, int errno_, const char *fmt, ...)
{
	_cleanup_free_ char *msg = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		abort();
	va_end(ap);
	const char *path = u->entry ? u->entry->path : "";
	_cleanup_free_ char *shown = printable(path, strlen(path));
	return hutch_fail(err, errno_, "layer entry '%s': %s", shown, msg);
}

static const char *type_name(enum tar_type t)
{
	switch (t) {
	case TAR_FILE:
		return "file";
	case TAR_HARDLINK:
		return "hardlink";
	case TAR_SYMLINK:
		return "symlink";
	case TAR_CHAR:
		return "character device";
	case TAR_BLOCK:
		return "block device";
	case TAR_DIR:
		return "directory";
	case TAR_FIFO:
		return "fifo";
	}
	return "entry";
}

/* ---- paths -------------------------------------------------------------------------- */

/* Lexical normalisation: drop leading "/" and "./", empty and "." components,
 * and any trailing slash. "" is the layer root. NULL if a component is "..":
 * such a path is refused outright rather than resolved. */
static char *normalize_path(const char *in)
{
	size_t len = strlen(in);
	char *out = xcalloc(1, len + 1);
	size_t o = 0;
	const char *p = in;
	while (*p) {
		while (*p == '/')
			p++;
		const char *end = strchrnul(p, '/');
		size_t n = (size_t)(end - p);
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			free(out);
			return NULL;
		}
		if (n > 0 && !(n == 1 && p[0] == '.')) {
			if (o > 0)
				out[o++] = '/';
			memcpy(out + o, p, n);
			o += n;
		}
		p = end;
	}
	out[o] = '\0';
	return out;
}

/* Split a normalised, non-root path in place: "a/b/c" -> "a/b", "c";
 * "c" -> "", "c". */
static void split_path(char *path, const char **parent, const char **leaf)
{
	char *slash = strrchr(path, '/');
	if (slash) {
		*slash = '\0';
		*parent = path;
		*leaf = slash + 1;
	} else {
		*parent = "";
		*leaf = path;
	}
}

static int openat2_in_layer(int root, const char *path, uint64_t flags)
{
	return openat2_retry(root, *path ? path : ".", flags, RESOLVE_LAYER);
}

static void drop_parent_cache(struct unpacker *u)
{
	if (u->parent_fd >= 0)
		close(u->parent_fd);
	u->parent_fd = -1;
	free(u->parent_path);
	u->parent_path = NULL;
	u->parent_stale = false;
}

/* Explain a failed openat2 of `what` (the parent or a hardlink target). */
static int resolve_fail(struct unpacker *u, struct hutch_err **err, int e, const char *role,
			const char *path)
{
	_cleanup_free_ char *shown = printable(path, strlen(path));
	switch (e) {
	case EXDEV:
		/* RESOLVE_NO_XDEV: nothing is mounted in a staging dir, so only a
		 * mount someone made there meanwhile; its own text would confuse. */
		return entry_fail(u, err, 0, "%s '%s' crosses a mount point", role, shown);
	case ELOOP:
		return entry_fail(u, err, e, "%s '%s' has a symlink loop (or too many symlinks)",
				  role, shown);
	case ENOTDIR:
		return entry_fail(u, err, e, "%s '%s' is not a directory", role, shown);
	case ENOSYS:
		return entry_fail(u, err, e,
				  "openat2 is not available (Linux 5.6 or later "
				  "is needed to unpack layers safely)");
	default:
		return entry_fail(u, err, e, "cannot open %s '%s'", role, shown);
	}
}

/* Create the missing directories of `parent` (a tar may list "a/b/f" without
 * "a/" or "a/b/"), as tar does, with mode 0755. Every prefix is resolved from
 * the layer root again, so this is as safe as the normal path. */
static int create_missing_dirs(struct unpacker *u, const char *parent, struct hutch_err **err)
{
	_cleanup_free_ char *prefix = xstrdup(parent);
	_cleanup_close_ int up = openat2_in_layer(u->root, "", O_PATH | O_DIRECTORY);
	if (up < 0)
		return resolve_fail(u, err, errno, "parent", "");
	for (char *name = prefix;;) {
		/* prefix is cut after the component starting at name */
		char *end = strchrnul(name, '/');
		char saved = *end;
		*end = '\0';
		int fd = openat2_in_layer(u->root, prefix, O_PATH | O_DIRECTORY);
		if (fd < 0 && errno == ENOENT) {
			if (mkdirat(up, name, 0755) < 0 && errno != EEXIST) {
				_cleanup_free_ char *shown = printable(prefix, strlen(prefix));
				return entry_fail(u, err, errno,
						  "cannot create parent directory '%s'", shown);
			}
			fd = openat2_in_layer(u->root, prefix, O_PATH | O_DIRECTORY);
			struct stat st;
			/* As in Docker (which follows it in a chroot): a symlink to a
			 * directory the layer does not have is an error, not a reason to
			 * make that directory. */
			if (fd < 0 && errno == ENOENT &&
			    fstatat(up, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISLNK(st.st_mode)) {
				_cleanup_free_ char *shown = printable(prefix, strlen(prefix));
				return entry_fail(
				    u, err, ENOENT,
				    "parent '%s' is a symlink to a directory that is not "
				    "in the layer",
				    shown);
			}
		}
		if (fd < 0)
			return resolve_fail(u, err, errno, "parent", prefix);
		close(up);
		up = fd;
		if (saved == '\0')
			return 0;
		*end = '/';
		name = end + 1;
	}
}

/* The parent directory of an entry, as an O_PATH fd owned by the cache. */
static int get_parent(struct unpacker *u, const char *parent, struct hutch_err **err)
{
	if (u->parent_fd >= 0 && !u->parent_stale && !strcmp(u->parent_path, parent))
		return u->parent_fd;
	drop_parent_cache(u);
	int fd = openat2_in_layer(u->root, parent, O_PATH | O_DIRECTORY);
	if (fd < 0 && errno == ENOENT) {
		if (create_missing_dirs(u, parent, err) < 0)
			return -1;
		fd = openat2_in_layer(u->root, parent, O_PATH | O_DIRECTORY);
	}
	if (fd < 0)
		return resolve_fail(u, err, errno, "parent", parent);
	u->parent_fd = fd;
	u->parent_path = xstrdup(parent);
	return fd;
}

/* Make room for a new entry at parent/leaf: remove whatever is there (a
 * directory only if empty). 0 when the place is free. */
static int remove_existing(struct unpacker *u, int parent_fd, const char *leaf,
			   struct hutch_err **err)
{
	struct stat st;
	if (fstatat(parent_fd, leaf, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0
				       : entry_fail(u, err, errno, "cannot inspect what is there");
	u->parent_stale = true;
	int flags = S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0;
	if (unlinkat(parent_fd, leaf, flags) == 0 || errno == ENOENT)
		return 0;
	if (errno == ENOTEMPTY || errno == EEXIST)
		return entry_fail(u, err, errno,
				  "cannot replace the non-empty directory there with a %s",
				  type_name(u->entry->type));
	return entry_fail(u, err, errno, "cannot replace what is there");
}

/* ---- metadata -------------------------------------------------------------------------- */

static bool rootless_may_ignore(int e)
{
	return e == EPERM || e == EINVAL;
}

/* Ownership; in rootless mode ids outside our user namespace cannot be set
 * (EINVAL) and the files stay ours. */
static int set_owner(struct unpacker *u, int fd, int parent_fd, const char *leaf,
		     struct hutch_err **err)
{
	const struct tar_entry *e = u->entry;
	int ret = fd >= 0 ? fchown(fd, e->uid, e->gid)
			  : fchownat(parent_fd, leaf, e->uid, e->gid, AT_SYMLINK_NOFOLLOW);
	if (ret == 0 || (u->rootless && rootless_may_ignore(errno)))
		return 0;
	return entry_fail(u, err, errno, "cannot set owner %u:%u", (unsigned)e->uid,
			  (unsigned)e->gid);
}

static bool has_prefix(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

/* Xattrs from the archive. overlayfs keeps its own state in overlay.*
 * xattrs (whiteouts, opaque, redirect, metacopy): a layer that brought its own
 * could steer the overlay mount, so those are dropped; only whiteout
 * conversion writes them. fd is -1 for symlinks, devices and fifos, which are
 * addressed by path through the parent fd (opening them could block or wake
 * a driver). */
static int set_xattrs(struct unpacker *u, int fd, int parent_fd, const char *leaf,
		      struct hutch_err **err)
{
	const struct tar_entry *e = u->entry;
	char proc_path[64 + NAME_MAX];
	if (fd < 0 && e->n_xattrs > 0 &&
	    (size_t)snprintf(proc_path, sizeof(proc_path), "/proc/self/fd/%d/%s", parent_fd,
			     leaf) >= sizeof(proc_path))
		return entry_fail(u, err, ENAMETOOLONG, "name too long to set xattrs");

	for (size_t i = 0; i < e->n_xattrs; i++) {
		const struct tar_xattr *x = &e->xattrs[i];
		if (has_prefix(x->name, "trusted.overlay.") || has_prefix(x->name, "user.overlay."))
			continue;
		int ret = fd >= 0 ? fsetxattr(fd, x->name, x->value, x->len, 0)
				  : lsetxattr(proc_path, x->name, x->value, x->len, 0);
		if (ret == 0)
			continue;
		int er = errno;
		bool user_ns = has_prefix(x->name, "user.");
		/* The kernel allows user.* only on files and directories. */
		if (user_ns && er == EPERM && e->type != TAR_FILE && e->type != TAR_DIR)
			continue;
		/* Rootless: trusted.*, security.* and ACLs naming unmapped ids
		 * are out of reach; the layer still works without them. */
		if (u->rootless && !user_ns &&
		    (er == EPERM || er == ENOTSUP || er == EINVAL || er == EACCES))
			continue;
		_cleanup_free_ char *shown = printable(x->name, strlen(x->name));
		return entry_fail(u, err, er, "cannot set xattr '%s'%s", shown,
				  er == ENOTSUP ? " (the filesystem does not support it)" : "");
	}
	return 0;
}

static int set_mode_fd(struct unpacker *u, int fd, struct hutch_err **err)
{
	if (fchmod(fd, u->entry->mode & 07777) < 0)
		return entry_fail(u, err, errno, "cannot set mode %04o", u->entry->mode & 07777);
	return 0;
}

static int set_mtime(struct unpacker *u, int fd, int parent_fd, const char *leaf,
		     struct hutch_err **err)
{
	/* atime = mtime, so unpacking the same layer twice gives the same tree. */
	const struct timespec times[2] = {u->entry->mtime, u->entry->mtime};
	int ret =
	    fd >= 0 ? futimens(fd, times) : utimensat(parent_fd, leaf, times, AT_SYMLINK_NOFOLLOW);
	if (ret < 0)
		return entry_fail(u, err, errno, "cannot set mtime");
	return 0;
}

/* ---- entry types ----------------------------------------------------------------------- */

static int write_file_data(struct unpacker *u, struct tar_reader *r, int fd, struct hutch_err **err)
{
	for (;;) {
		ssize_t n = tar_read_data(r, u->buf, UNPACK_COPY_BUF, err);
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		if (write_all(fd, u->buf, (size_t)n) < 0)
			return entry_fail(u, err, errno, "cannot write file data");
		if (u->stats)
			u->stats->bytes += (uint64_t)n;
		u->bytes += (uint64_t)n;
		if (u->progress)
			u->progress(u->progress_data, u->bytes, u->files);
	}
}

static int unpack_file(struct unpacker *u, struct tar_reader *r, int parent_fd, const char *leaf,
		       struct hutch_err **err)
{
	const int flags = O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC;
	_cleanup_close_ int fd = openat(parent_fd, leaf, flags, 0600);
	if (fd < 0 && errno == EEXIST) {
		if (remove_existing(u, parent_fd, leaf, err) < 0)
			return -1;
		fd = openat(parent_fd, leaf, flags, 0600);
	}
	if (fd < 0)
		return entry_fail(u, err, errno, "cannot create file");
	/* Data first: a write by anyone without CAP_FSETID would clear the
	 * setuid bit. Owner before mode: chown clears setuid/setgid. Xattrs
	 * after chown, which drops security.capability. */
	int w = write_file_data(u, r, fd, err);
	u->files++;
	if (u->stats)
		u->stats->files++;
	if (w == 0 && u->progress)
		u->progress(u->progress_data, u->bytes, u->files);
	if (w < 0 || set_owner(u, fd, -1, NULL, err) < 0 || set_mode_fd(u, fd, err) < 0 ||
	    set_xattrs(u, fd, -1, NULL, err) < 0 || set_mtime(u, fd, -1, NULL, err) < 0)
		return -1;
	if (close(steal_fd(fd)) < 0)
		return entry_fail(u, err, errno, "cannot write file data");
	return 0;
}

static int defer_dir(struct unpacker *u, const char *path)
{
	if (u->n_dirs == u->cap_dirs) {
		u->cap_dirs = u->cap_dirs ? 2 * u->cap_dirs : 64;
		u->dirs = xrealloc(u->dirs, u->cap_dirs * sizeof(*u->dirs));
	}
	u->dirs[u->n_dirs++] = (struct deferred_dir){
	    .path = xstrdup(path),
	    .mode = u->entry->mode & 07777,
	    .mtime = u->entry->mtime,
	};
	return 0;
}

static int unpack_dir(struct unpacker *u, int parent_fd, const char *leaf, const char *path,
		      struct hutch_err **err)
{
	/* Owner-writable until the end, whatever mode the archive gives. */
	mode_t mode = 0700 | (u->entry->mode & 0777);
	if (mkdirat(parent_fd, leaf, mode) < 0) {
		if (errno != EEXIST)
			return entry_fail(u, err, errno, "cannot create directory");
		struct stat st;
		if (fstatat(parent_fd, leaf, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return entry_fail(u, err, errno, "cannot inspect what is there");
		if (!S_ISDIR(st.st_mode)) {
			if (remove_existing(u, parent_fd, leaf, err) < 0)
				return -1;
			if (mkdirat(parent_fd, leaf, mode) < 0)
				return entry_fail(u, err, errno, "cannot create directory");
		}
		/* An existing directory only gets this entry's metadata. */
	}
	if (set_owner(u, -1, parent_fd, leaf, err) < 0)
		return -1;
	if (u->entry->n_xattrs > 0) {
		_cleanup_close_ int fd =
		    openat(parent_fd, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return entry_fail(u, err, errno, "cannot open directory");
		if (set_xattrs(u, fd, -1, NULL, err) < 0)
			return -1;
	}
	return defer_dir(u, path);
}

static int unpack_symlink(struct unpacker *u, int parent_fd, const char *leaf,
			  struct hutch_err **err)
{
	const char *target = u->entry->linkname;
	if (!*target)
		return entry_fail(u, err, 0, "symlink has an empty target");
	u->parent_stale = true; /* see struct unpacker */
	if (symlinkat(target, parent_fd, leaf) < 0) {
		if (errno != EEXIST)
			return entry_fail(u, err, errno, "cannot create symlink");
		if (remove_existing(u, parent_fd, leaf, err) < 0)
			return -1;
		if (symlinkat(target, parent_fd, leaf) < 0)
			return entry_fail(u, err, errno, "cannot create symlink");
	}
	/* A symlink has no mode of its own. */
	if (set_owner(u, -1, parent_fd, leaf, err) < 0 ||
	    set_xattrs(u, -1, parent_fd, leaf, err) < 0 ||
	    set_mtime(u, -1, parent_fd, leaf, err) < 0)
		return -1;
	return 0;
}

static int unpack_hardlink(struct unpacker *u, int parent_fd, const char *leaf, const char *path,
			   struct hutch_err **err)
{
	_cleanup_free_ char *shown = printable(u->entry->linkname, strlen(u->entry->linkname));
	if (u->entry->linkname[0] == '/') {
		_cleanup_free_ char *shown =
			printable(u->entry->linkname, strlen(u->entry->linkname));
		return entry_fail(u, err, 0, "hardlink to the absolute path '%s'; refusing it", shown);
	}
	_cleanup_free_ char *target = normalize_path(u->entry->linkname);
	if (!target)
		return entry_fail(u, err, 0,
				  "hardlink target '%s' has a '..' component; refusing it", shown);
	if (!*target)
		return entry_fail(u, err, 0, "hardlink target is the layer root");
	if (!strcmp(target, path))
		return 0; /* a link to itself: nothing to do */

	const char *tparent, *tleaf;
	split_path(target, &tparent, &tleaf);
	_cleanup_close_ int tparent_fd = openat2_in_layer(u->root, tparent, O_PATH | O_DIRECTORY);
	if (tparent_fd < 0) {
		if (errno == ENOENT)
			return entry_fail(u, err, errno, "hardlink target '%s' does not exist",
					  shown);
		return resolve_fail(u, err, errno, "hardlink target", u->entry->linkname);
	}
	/* Flags 0: a target that is a symlink is linked itself, not followed. */
	if (linkat(tparent_fd, tleaf, parent_fd, leaf, 0) == 0)
		return 0;
	int e = errno;
	if (e == EEXIST) {
		struct stat a, b;
		if (fstatat(tparent_fd, tleaf, &a, AT_SYMLINK_NOFOLLOW) == 0 &&
		    fstatat(parent_fd, leaf, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
		    a.st_dev == b.st_dev && a.st_ino == b.st_ino)
			return 0; /* already the same file (e.g. reached through a symlink) */
		if (remove_existing(u, parent_fd, leaf, err) < 0)
			return -1;
		if (linkat(tparent_fd, tleaf, parent_fd, leaf, 0) == 0)
			return 0;
		e = errno;
	}
	if (e == ENOENT)
		return entry_fail(u, err, e, "hardlink target '%s' does not exist", shown);
	struct stat st;
	if (e == EPERM && fstatat(tparent_fd, tleaf, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISDIR(st.st_mode))
		return entry_fail(u, err, e, "hardlink target '%s' is a directory", shown);
	return entry_fail(u, err, e, "cannot create hardlink to '%s'", shown);
}

static int unpack_node(struct unpacker *u, int parent_fd, const char *leaf, struct hutch_err **err)
{
	const struct tar_entry *e = u->entry;
	bool device = e->type == TAR_CHAR || e->type == TAR_BLOCK;
	if (device && u->rootless) {
		if (u->stats)
			u->stats->skipped_devices++;
		return 0;
	}
	mode_t fmt = e->type == TAR_CHAR ? S_IFCHR : e->type == TAR_BLOCK ? S_IFBLK : S_IFIFO;
	dev_t dev = device ? makedev(e->devmajor, e->devminor) : 0;
	int ret = mknodat(parent_fd, leaf, fmt | 0600, dev);
	if (ret < 0 && errno == EEXIST) {
		if (remove_existing(u, parent_fd, leaf, err) < 0)
			return -1;
		ret = mknodat(parent_fd, leaf, fmt | 0600, dev);
	}
	if (ret < 0 && device && errno == EPERM) {
		/* No CAP_MKNOD (e.g. inside a container): go on without it. */
		if (u->stats)
			u->stats->skipped_devices++;
		return 0;
	}
	if (ret < 0)
		return entry_fail(u, err, errno, "cannot create %s", type_name(e->type));
	if (set_owner(u, -1, parent_fd, leaf, err) < 0)
		return -1;
	/* leaf is the node just made in a directory only we write to, so
	 * fchmodat's following of symlinks cannot be led astray here. */
	if (fchmodat(parent_fd, leaf, e->mode & 07777, 0) < 0)
		return entry_fail(u, err, errno, "cannot set mode %04o", e->mode & 07777);
	if (set_xattrs(u, -1, parent_fd, leaf, err) < 0 ||
	    set_mtime(u, -1, parent_fd, leaf, err) < 0)
		return -1;
	return 0;
}

/* ---- whiteouts ---------------------------------------------------------------------------- */

static const char *opaque_xattr(const struct unpacker *u)
{
	return u->rootless ? "user.overlay.opaque" : "trusted.overlay.opaque";
}

/* ".wh..wh..opq": the directory hides what lower layers have in it. */
static int make_opaque(struct unpacker *u, int parent_fd, struct hutch_err **err)
{
	_cleanup_close_ int dir = openat(parent_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0 || fsetxattr(dir, opaque_xattr(u), "y", 1, 0) < 0)
		return entry_fail(u, err, errno, "cannot mark the directory opaque (%s)",
				  opaque_xattr(u));
	return 0;
}

/* ".wh.NAME": NAME is deleted from lower layers: overlayfs's own whiteout, a
 * 0:0 character device. Only where even that is refused (rootless, an old
 * kernel): an empty file with user.overlay.whiteout, which overlayfs (Linux
 * 6.7+, userxattr mounts) only looks for
 * in directories marked with user.overlay.opaque="x"; a directory already
 * marked opaque ("y") hides everything below anyway and keeps its mark. */
static int make_whiteout(struct unpacker *u, int parent_fd, const char *name,
			 struct hutch_err **err)
{
	if (!*name || !strcmp(name, ".") || !strcmp(name, ".."))
		return entry_fail(u, err, 0, "whiteout for an invalid name");
	if (remove_existing(u, parent_fd, name, err) < 0)
		return -1;
	/* The kernel lets anyone create the 0:0 whiteout device (no CAP_MKNOD
	 * needed), and every overlayfs understands it, with or without userxattr. */
	if (mknodat(parent_fd, name, S_IFCHR | 0, makedev(0, 0)) == 0)
		return 0;
	if (!u->rootless || errno != EPERM)
		return entry_fail(u, err, errno, "cannot create whiteout device");
	_cleanup_close_ int fd =
	    openat(parent_fd, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0 || fsetxattr(fd, "user.overlay.whiteout", "y", 1, 0) < 0)
		return entry_fail(u, err, errno, "cannot create whiteout file");
	_cleanup_close_ int dir = openat(parent_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return entry_fail(u, err, errno, "cannot open the whiteout's directory");
	char mark[2];
	if (fgetxattr(dir, "user.overlay.opaque", mark, sizeof(mark)) >= 0)
		return 0;
	if (errno != ENODATA || fsetxattr(dir, "user.overlay.opaque", "x", 1, 0) < 0)
		return entry_fail(u, err, errno,
				  "cannot mark the directory as holding whiteouts "
				  "(user.overlay.opaque)");
	return 0;
}

static int unpack_whiteout(struct unpacker *u, int parent_fd, const char *leaf,
			   struct hutch_err **err)
{
	if (!strcmp(leaf, WHITEOUT_OPAQUE))
		return make_opaque(u, parent_fd, err);
	if (has_prefix(leaf, WHITEOUT_META_PREFIX))
		return 0; /* aufs bookkeeping, meaningless to overlayfs */
	return make_whiteout(u, parent_fd, leaf + strlen(WHITEOUT_PREFIX), err);
}

/* ---- driver ---------------------------------------------------------------------------------- */

static int unpack_entry(struct unpacker *u, struct tar_reader *r, struct hutch_err **err)
{
	const struct tar_entry *e = u->entry;
	_cleanup_free_ char *path = normalize_path(e->path);
	if (!path)
		return entry_fail(u, err, 0, "path has a '..' component; refusing it");
	/* A layer's paths are relative to its root; an absolute one ("/etc/x")
	 * says someone meant the host: refused, not quietly re-rooted. */
	if (*path && e->path[0] == '/')
		return entry_fail(u, err, 0, "absolute path; refusing it");
	if (!*path) {
		/* The root itself: "." or "/" as a directory is the layer dir. */
		if (e->type == TAR_DIR)
			return 0;
		if (e->type == TAR_SYMLINK)
			return entry_fail(u, err, 0,
					  "symlink in place of the layer root; refusing it "
					  "(CVE-2021-29136)");
		return entry_fail(u, err, 0, "%s in place of the layer root; refusing it",
				  type_name(e->type));
	}
	_cleanup_free_ char *full = xstrdup(path);
	const char *parent, *leaf;
	split_path(path, &parent, &leaf);

	int parent_fd = get_parent(u, parent, err);
	if (parent_fd < 0)
		return -1;
	if (u->convert_whiteouts && has_prefix(leaf, WHITEOUT_PREFIX))
		return unpack_whiteout(u, parent_fd, leaf, err);

	switch (e->type) {
	case TAR_FILE:
		if (u->max_bytes && (uint64_t)e->size > u->max_bytes - u->declared_bytes) {
			char sz[32], avail[32];
			format_size(e->size, sz, sizeof(sz));
			format_size((int64_t)(u->max_bytes - u->declared_bytes), avail,
				    sizeof(avail));
			return entry_fail(u, err, ENOSPC,
					  "%s of data, more than the %s the store's filesystem "
					  "has left: refusing it (a decompression bomb, or free "
					  "some space)",
					  sz, avail);
		}
		u->declared_bytes += (uint64_t)e->size;
		if (u->split)
			tar_split_file(u->split, full);
		return unpack_file(u, r, parent_fd, leaf, err);
	case TAR_DIR:
		return unpack_dir(u, parent_fd, leaf, full, err);
	case TAR_SYMLINK:
		return unpack_symlink(u, parent_fd, leaf, err);
	case TAR_HARDLINK:
		return unpack_hardlink(u, parent_fd, leaf, full, err);
	case TAR_CHAR:
	case TAR_BLOCK:
	case TAR_FIFO:
		return unpack_node(u, parent_fd, leaf, err);
	}
	return entry_fail(u, err, 0, "unknown entry type");
}

/* Modes and mtimes of directories, now that nothing more goes into them. In
 * archive order, so a directory listed twice ends with its last metadata. */
static int finish_dirs(struct unpacker *u, struct hutch_err **err)
{
	for (size_t i = 0; i < u->n_dirs; i++) {
		struct deferred_dir *d = &u->dirs[i];
		_cleanup_close_ int fd =
		    openat2_in_layer(u->root, d->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
		if (fd < 0) {
			/* Replaced by a later entry: nothing of it to fix. */
			if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP || errno == EXDEV)
				continue;
			_cleanup_free_ char *shown = printable(d->path, strlen(d->path));
			return hutch_fail_sys(err, "layer directory '%s': cannot open it", shown);
		}
		const struct timespec times[2] = {d->mtime, d->mtime};
		if (fchmod(fd, d->mode) < 0 || futimens(fd, times) < 0) {
			_cleanup_free_ char *shown = printable(d->path, strlen(d->path));
			return hutch_fail_sys(
			    err, "layer directory '%s': cannot set mode and mtime", shown);
		}
	}
	return 0;
}

int layer_unpack(struct tar_reader *r, int layer_dirfd, const struct unpack_opts *opts,
		 struct unpack_stats *stats, struct hutch_err **err)
{
	struct unpacker u = {
	    .root = layer_dirfd,
	    .rootless = opts && opts->rootless,
	    .convert_whiteouts = opts && opts->convert_whiteouts,
	    .max_bytes = opts ? opts->max_bytes : 0,
	    .split = opts ? opts->split : NULL,
	    .progress = opts ? opts->progress : NULL,
	    .progress_data = opts ? opts->progress_data : NULL,
	    .stats = stats,
	    .parent_fd = -1,
	};
	if (stats)
		*stats = (struct unpack_stats){0};
	u.buf = malloc(UNPACK_COPY_BUF);
	if (!u.buf)
		return hutch_fail(err, ENOMEM, "allocate unpack buffer");

	int ret = 0;
	for (;;) {
		const struct tar_entry *e;
		int got = tar_next(r, &e, err);
		if (got <= 0) {
			ret = got;
			break;
		}
		u.entry = e;
		if (unpack_entry(&u, r, err) < 0) {
			ret = -1;
			break;
		}
		if (stats)
			stats->entries++;
	}
	u.entry = NULL;
	if (ret == 0)
		ret = finish_dirs(&u, err);

	drop_parent_cache(&u);
	for (size_t i = 0; i < u.n_dirs; i++)
		free(u.dirs[i].path);
	free(u.dirs);
	free(u.buf);
	return ret;
}

bool digest_is_valid(const char *digest, bool bare)
{
	if (!digest)
		return false;
	if (!bare) {
		if (strncmp(digest, "sha256:", 7) != 0)
			return false;
		digest += 7;
	}
	if (strlen(digest) != 64)
		return false;
	for (const char *p = digest; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}
