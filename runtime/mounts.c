/* The container's filesystem, built in its own mount namespace (so the kernel
 * tears all of it down when the container ends: nothing can leak to the host).
 *
 * Every mount target is resolved with openat2(RESOLVE_IN_ROOT) on the root fd and
 * every mount is attached with the fd-based mount API (fsopen/open_tree ->
 * move_mount onto the resolved fd): a symlink planted at a target cannot send a
 * mount outside the root (CVE-2021-30465), and no path is resolved twice.
 *
 * What the container's process needs is made by the parent (mounts_prepare):
 * the child walks paths in stack buffers and allocates only for the message it
 * reports on failure before it exits, which is safe because hutch clones from
 * a single thread (no other thread can hold malloc's lock). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/idmap.h"
#include "common/util.h"
#include "runtime/runtime_internal.h"

static int openat2_in_root(int rootfd, const char *path, int flags)
{
	while (*path == '/')
		path++;
	if (!*path)
		path = ".";
	return openat2_retry(rootfd, path, (uint64_t)flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
}

/* A copy of path in buf (PATH_MAX), for walking it without allocating: the
 * container's process runs this. */
static bool copy_path(char *buf, const char *path)
{
	size_t n = strlen(path);
	if (n >= PATH_MAX)
		return false;
	memcpy(buf, path, n + 1);
	return true;
}

/* ELOOP at prefix: a /proc magic link (/proc/self/cwd, /proc/1/root...) that
 * RESOLVE_NO_MAGICLINKS refused, rather than a symlink loop? */
static bool is_magic_link(int rootfd, const char *prefix)
{
	_cleanup_close_ int fd = openat2_in_root(rootfd, prefix, O_PATH | O_NOFOLLOW);
	struct stat st;
	struct statfs sfs;
	return fd >= 0 && fstat(fd, &st) == 0 && S_ISLNK(st.st_mode) && fstatfs(fd, &sfs) == 0 &&
	       sfs.f_type == PROC_SUPER_MAGIC;
}

/* ENOTDIR resolving path in the root: name the part of it that is not a
 * directory; ELOOP: the /proc magic link on the way, if it is one. */
static int fail_resolve(int rootfd, const char *path, int e, struct hutch_err **err)
{
	char prefix[PATH_MAX];
	if ((e != ENOTDIR && e != ELOOP) || !copy_path(prefix, path))
		return hutch_fail(err, e, "resolve %s in the container", path);
	for (char *p = prefix + 1; e == ELOOP; p++) {
		if (*p && *p != '/')
			continue;
		char saved = *p;
		*p = '\0';
		_cleanup_close_ int fd = openat2_in_root(rootfd, prefix, O_PATH);
		if (fd < 0 && errno == ELOOP && is_magic_link(rootfd, prefix))
			return hutch_fail(err, 0,
					  "%s in the container is a /proc magic link (it leads to "
					  "whatever a process has open, which may be outside the "
					  "container): hutch never follows one, give a path in the "
					  "container's own files",
					  prefix);
		if (fd < 0 || !saved)
			return hutch_fail(err, e, "resolve %s in the container", path);
		*p = saved;
	}
	for (char *p = prefix + 1;; p++) {
		if (*p && *p != '/')
			continue;
		char saved = *p;
		*p = '\0';
		_cleanup_close_ int fd = openat2_in_root(rootfd, prefix, O_PATH);
		struct stat st;
		if (fd >= 0 && fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode))
			return hutch_fail(err, 0, "%s in the container is %s, not a directory",
					  prefix,
					  S_ISREG(st.st_mode) ? "a file" : "not a directory");
		if (!saved)
			break;
		*p = saved;
	}
	return hutch_fail(err, e, "resolve %s in the container", path);
}

int root_open_dir_p(int rootfd, const char *path, bool create, struct hutch_err **err)
{
	int fd = openat2_in_root(rootfd, path, O_PATH | O_DIRECTORY);
	if (fd >= 0 || errno != ENOENT || !create) {
		if (fd < 0)
			return fail_resolve(rootfd, path, errno, err);
		return fd;
	}
	/* Walk down from the root, creating what is missing. Each prefix is resolved
	 * afresh from the root, so a symlink in the middle stays inside it. */
	char buf[PATH_MAX];
	if (!copy_path(buf, path))
		return hutch_fail(err, ENAMETOOLONG, "resolve %s in the container", path);
	size_t len = strlen(buf);
	int parent = openat2_in_root(rootfd, "/", O_PATH | O_DIRECTORY);
	if (parent < 0)
		return hutch_fail_sys(err, "open the container root");
	for (size_t i = 0; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		if (i == 0 || buf[i - 1] == '/')
			continue;
		char saved = buf[i];
		buf[i] = '\0';
		int next = openat2_in_root(rootfd, buf, O_PATH | O_DIRECTORY);
		if (next < 0 && errno == ENOENT) {
			const char *leaf = strrchr(buf, '/');
			leaf = leaf ? leaf + 1 : buf;
			if (mkdirat(parent, leaf, 0755) < 0 && errno != EEXIST) {
				int e = errno;
				close(parent);
				return hutch_fail(err, e, "create %s in the container", buf);
			}
			next = openat2_in_root(rootfd, buf, O_PATH | O_DIRECTORY);
		}
		if (next < 0) {
			int e = errno;
			close(parent);
			return fail_resolve(rootfd, buf, e, err);
		}
		close(parent);
		parent = next;
		buf[i] = saved;
	}
	return parent;
}

/* A file mount target (bind of a file): create parents and an empty file. */
static int root_open_file_p(int rootfd, const char *path, struct hutch_err **err)
{
	int fd = openat2_in_root(rootfd, path, O_PATH);
	if (fd >= 0)
		return fd;
	if (errno != ENOENT)
		return fail_resolve(rootfd, path, errno, err);
	char dir[PATH_MAX];
	if (!copy_path(dir, path))
		return hutch_fail(err, ENAMETOOLONG, "resolve %s in the container", path);
	char *slash = strrchr(dir, '/');
	const char *leaf = path + (slash - dir) + 1;
	*slash = '\0';
	_cleanup_close_ int parent = root_open_dir_p(rootfd, *dir ? dir : "/", true, err);
	if (parent < 0)
		return -1;
	_cleanup_close_ int created =
		openat(parent, leaf, O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (created < 0 && errno != EEXIST)
		return hutch_fail_sys(err, "create %s in the container", path);
	fd = openat2_in_root(rootfd, path, O_PATH);
	if (fd < 0)
		return hutch_fail_sys(err, "resolve %s in the container", path);
	return fd;
}

static const struct {
	const char *name;
	uint64_t set, clr;
	bool readonly;
} attr_options[] = {
    {"ro", MOUNT_ATTR_RDONLY, 0, true},
    {"rw", 0, MOUNT_ATTR_RDONLY, false},
    {"nosuid", MOUNT_ATTR_NOSUID, 0, false},
    {"suid", 0, MOUNT_ATTR_NOSUID, false},
    {"nodev", MOUNT_ATTR_NODEV, 0, false},
    {"dev", 0, MOUNT_ATTR_NODEV, false},
    {"noexec", MOUNT_ATTR_NOEXEC, 0, false},
    {"exec", 0, MOUNT_ATTR_NOEXEC, false},
    {"relatime", MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME, false},
    {"noatime", MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME, false},
    {"strictatime", MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME, false},
    {"nodiratime", MOUNT_ATTR_NODIRATIME, 0, false},
    {"diratime", 0, MOUNT_ATTR_NODIRATIME, false},
    {"nosymfollow", MOUNT_ATTR_NOSYMFOLLOW, 0, false},
    {"symfollow", 0, MOUNT_ATTR_NOSYMFOLLOW, false},
    /* runc's recursive forms (mount_setattr's AT_RECURSIVE): hutch applies a
     * bind's options to all of its tree already, and a new filesystem has
     * nothing below it yet, so each is its plain option */
    {"rro", MOUNT_ATTR_RDONLY, 0, true},
    {"rrw", 0, MOUNT_ATTR_RDONLY, false},
    {"rnosuid", MOUNT_ATTR_NOSUID, 0, false},
    {"rsuid", 0, MOUNT_ATTR_NOSUID, false},
    {"rnodev", MOUNT_ATTR_NODEV, 0, false},
    {"rdev", 0, MOUNT_ATTR_NODEV, false},
    {"rnoexec", MOUNT_ATTR_NOEXEC, 0, false},
    {"rexec", 0, MOUNT_ATTR_NOEXEC, false},
    {"rrelatime", MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME, false},
    {"rnoatime", MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME, false},
    {"rstrictatime", MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME, false},
    /* relatime is the default, and what clearing noatime gives */
    {"ratime", MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME, false},
    {"rnodiratime", MOUNT_ATTR_NODIRATIME, 0, false},
    {"rdiratime", 0, MOUNT_ATTR_NODIRATIME, false},
    {"rnosymfollow", MOUNT_ATTR_NOSYMFOLLOW, 0, false},
    {"rsymfollow", 0, MOUNT_ATTR_NOSYMFOLLOW, false},
};

static const struct {
	const char *name;
	uint64_t type;
	bool recursive;
} propagation_options[] = {
	{"private", MS_PRIVATE, false}, {"rprivate", MS_PRIVATE, true},
	{"slave", MS_SLAVE, false},	{"rslave", MS_SLAVE, true},
	{"shared", MS_SHARED, false},	{"rshared", MS_SHARED, true},
	{"unbindable", MS_UNBINDABLE, false}, {"runbindable", MS_UNBINDABLE, true},
};

/* SELinux relabelling (z, Z) has nothing to do on a host without SELinux. */
static const char *const ignored_options[] = {"defaults", "z", "Z"};

int mount_opts_parse(const struct hutch_mount *m, struct mount_opts *out, struct hutch_err **err)
{
	*out = (struct mount_opts){0};
	out->bind = !strcmp(m->type, "bind");
	out->recursive = out->bind;
	size_t data_len = 0;
	for (size_t i = 0; i < m->n_options; i++) {
		const char *o = m->options[i];
		bool known = false;
		for (size_t k = 0; k < ARRAY_SIZE(attr_options) && !known; k++) {
			if (strcmp(o, attr_options[k].name))
				continue;
			known = true;
			out->attr_set = (out->attr_set & ~attr_options[k].clr) | attr_options[k].set;
			out->attr_clr |= attr_options[k].clr;
			out->attr_clr &= ~attr_options[k].set;
			if (!strcmp(o, "ro") || !strcmp(o, "rw") || !strcmp(o, "rro") ||
			    !strcmp(o, "rrw"))
				out->readonly = attr_options[k].readonly;
		}
		for (size_t k = 0; k < ARRAY_SIZE(propagation_options) && !known; k++) {
			if (strcmp(o, propagation_options[k].name))
				continue;
			known = true;
			out->propagation = propagation_options[k].type;
			out->propagation_recursive = propagation_options[k].recursive;
		}
		for (size_t k = 0; k < ARRAY_SIZE(ignored_options) && !known; k++)
			known = !strcmp(o, ignored_options[k]);
		if (known)
			continue;
		if (!strcmp(o, "bind") || !strcmp(o, "rbind")) {
			out->bind = true;
			out->recursive = o[0] == 'r';
			continue;
		}
		if (!strcmp(o, "idmap") || !strcmp(o, "ridmap")) {
			out->idmap = true;
			out->idmap_recursive |= o[0] == 'r';
			continue;
		}
		if (!strcmp(o, "tmpcopyup")) {
			out->tmpcopyup = true;
			continue;
		}
		if (out->bind) {
			mount_opts_free(out);
			return hutch_fail(err, EINVAL, "unknown option '%s' for bind mount on %s", o,
					  m->destination);
		}
		size_t olen = strlen(o);
		out->data = xrealloc(out->data, data_len + olen + 2);
		if (data_len)
			out->data[data_len++] = ',';
		memcpy(out->data + data_len, o, olen + 1);
		data_len += olen;
	}
	/* mount_setattr wants the whole atime field cleared when one is set */
	if (out->attr_clr & MOUNT_ATTR__ATIME)
		out->attr_clr |= MOUNT_ATTR__ATIME;
	out->idmap |= m->n_uid_map > 0;
	if (out->idmap && !out->bind) {
		mount_opts_free(out);
		return hutch_fail(err, EINVAL,
				  "mount on %s: an id-mapped mount (idmap, ridmap, uidMappings) "
				  "must be a bind mount",
				  m->destination);
	}
	if (out->tmpcopyup && strcmp(m->type, "tmpfs")) {
		mount_opts_free(out);
		return hutch_fail(err, EINVAL, "mount on %s: tmpcopyup is for a tmpfs, not %s",
				  m->destination, m->type);
	}
	if (out->bind && out->data) {
		/* an fs option seen before "bind"/"rbind" in the list */
		char *comma = strchr(out->data, ',');
		if (comma)
			*comma = '\0';
		hutch_fail(err, EINVAL, "unknown option '%s' for bind mount on %s", out->data,
			   m->destination);
		mount_opts_free(out);
		return -1;
	}
	return 0;
}

void mount_opts_free(struct mount_opts *o)
{
	free(o->data);
	o->data = NULL;
}

/* fsconfig's error log says what the filesystem disliked (overlay is chatty).
 * Its lines are "e|w|i FSTYPE: text"; the text is what a user can act on, and
 * it says more than strerror(EINVAL), which is then left out. */
static void append_fs_log(int fsfd, const char *fstype, struct hutch_err **err)
{
	if (!err || !*err)
		return;
	char line[512];
	ssize_t n;
	size_t fl = strlen(fstype);
	while ((n = read(fsfd, line, sizeof(line) - 1)) > 0) {
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == ' '))
			n--;
		line[n] = '\0';
		const char *text = line;
		if ((text[0] == 'e' || text[0] == 'w' || text[0] == 'i') && text[1] == ' ')
			text += 2;
		if (!strncmp(text, fstype, fl) && text[fl] == ':' && text[fl + 1] == ' ')
			text += fl + 2;
		char *joined = xasprintf("%s: %s", (*err)->msg, text);
		free((*err)->msg);
		(*err)->msg = joined;
		(*err)->errno_ = 0;
	}
}

/* Make a new filesystem mount (detached) with comma-separated options. */
static int fs_mount_detached(const char *fstype, const char *source, const char *data,
			     uint64_t attrs, struct hutch_err **err)
{
	_cleanup_close_ int fsfd = fsopen(fstype, FSOPEN_CLOEXEC);
	if (fsfd < 0)
		return hutch_fail_sys(err, "fsopen %s", fstype);
	if (source && fsconfig(fsfd, FSCONFIG_SET_STRING, "source", source, 0) < 0)
		return hutch_fail_sys(err, "mount %s: source %s", fstype, source);
	for (const char *next = data; next && *next;) {
		/* one option at a time, copied out of the list without allocating */
		size_t n = strcspn(next, ",");
		char o[512];
		if (n >= sizeof(o))
			return hutch_fail(err, E2BIG, "option '%.40s...' is too long", next);
		memcpy(o, next, n);
		o[n] = '\0';
		next += n + (next[n] == ',');
		if (!n)
			continue;
		char *eq = strchr(o, '=');
		int r;
		if (eq) {
			*eq = '\0';
			r = fsconfig(fsfd, FSCONFIG_SET_STRING, o, eq + 1, 0);
		} else {
			r = fsconfig(fsfd, FSCONFIG_SET_FLAG, o, NULL, 0);
		}
		if (r < 0) {
			int e = errno;
			hutch_fail(err, e, "option '%s%s%s' refused", o, eq ? "=" : "",
				   eq ? eq + 1 : "");
			append_fs_log(fsfd, fstype, err);
			return -1;
		}
	}
	if (fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
		hutch_fail_sys(err, "mount %s", fstype);
		append_fs_log(fsfd, fstype, err);
		return -1;
	}
	int mfd = fsmount(fsfd, FSMOUNT_CLOEXEC, (unsigned)attrs);
	if (mfd < 0)
		return hutch_fail_sys(err, "fsmount %s", fstype);
	return mfd;
}

static int attach(int mfd, int target_fd, const char *what, struct hutch_err **err)
{
	if (move_mount(mfd, "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) <
	    0)
		return hutch_fail_sys(err, "attach mount on %s", what);
	return 0;
}

/* Escape a path for overlay's lowerdir list, where ':' and ',' and '\' are special. */
static void append_escaped(char **buf, size_t *len, const char *path)
{
	size_t n = strlen(path);
	*buf = xrealloc(*buf, *len + 2 * n + 2);
	for (size_t i = 0; i < n; i++) {
		if (path[i] == ':' || path[i] == ',' || path[i] == '\\')
			(*buf)[(*len)++] = '\\';
		(*buf)[(*len)++] = path[i];
	}
	(*buf)[*len] = '\0';
}

/* mount(2) with one option string, for kernels without "lowerdir+". */
static int overlay_mount_legacy(const struct mount_ctx *ctx, int *rootfd_out,
				struct hutch_err **err)
{
	if (strlen(ctx->overlay_legacy_opts) >= 4096)
		return hutch_fail(err, E2BIG,
				  "the image has too many layers for this kernel's overlay mount "
				  "options (Linux 6.8+ has no such limit)");
	if (mount("overlay", ctx->rootfs, "overlay", ctx->nodev ? MS_NODEV : 0,
		  ctx->overlay_legacy_opts) < 0)
		return hutch_fail_sys(err, "mount the overlay root filesystem");
	int rootfd = open(ctx->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return hutch_fail_sys(err, "open %s", ctx->rootfs);
	*rootfd_out = rootfd;
	return 0;
}

static void append_char(char **buf, size_t *len, char c)
{
	*buf = xrealloc(*buf, *len + 2);
	(*buf)[(*len)++] = c;
	(*buf)[*len] = '\0';
}

/* overlay_mount_legacy's options: the image's layers, top first, then the
 * empty /etc files under them all. */
static char *make_overlay_legacy_opts(const struct mount_ctx *ctx)
{
	const struct hutch_spec *spec = ctx->spec;
	char *buf = xstrdup("lowerdir=");
	size_t len = strlen(buf);
	for (size_t i = spec->root.n_layers; i-- > 0;) {
		if (i + 1 < spec->root.n_layers)
			append_char(&buf, &len, ':');
		append_escaped(&buf, &len, spec->root.layers[i]);
	}
	if (ctx->etc && ctx->etc->base_layer) {
		append_char(&buf, &len, ':');
		append_escaped(&buf, &len, ctx->etc->base_layer);
	}
	char *all = xasprintf("%s,upperdir=%s,workdir=%s%s%s", buf, ctx->upper, ctx->work,
			      ctx->rootless ? ",userxattr" : "", spec->auto_remove ? ",volatile" : "");
	free(buf);
	return all;
}

/* ---- mount propagation with the host ---------------------------------------- */

static bool early_bind(const struct mount_opts *o)
{
	return o->bind && (o->propagation == MS_SLAVE || o->propagation == MS_SHARED);
}

static const char *propagation_name(const struct mount_opts *o)
{
	for (size_t k = 0; k < ARRAY_SIZE(propagation_options); k++)
		if (propagation_options[k].type == o->propagation &&
		    propagation_options[k].recursive == o->propagation_recursive)
			return propagation_options[k].name;
	return "?";
}

/* The propagation of the mount path is on, from /proc/self/mountinfo's optional
 * fields ("shared:N", "master:N"); its mount point goes to *where. */
static int source_propagation(const char *path, bool *shared, bool *slave, char **where,
			      struct hutch_err **err)
{
	struct statx stx;
	if (statx(AT_FDCWD, path, 0, STATX_MNT_ID, &stx) < 0)
		return hutch_fail_sys(err, "bind mount source '%s'", path);
	_cleanup_free_ char *info = NULL;
	if (read_file_at(AT_FDCWD, "/proc/self/mountinfo", &info, NULL, err) < 0)
		return -1;
	*shared = *slave = false;
	for (char *line = info; *line;) {
		char *end = strchrnul(line, '\n');
		char *next = *end ? end + 1 : end;
		*end = '\0';
		char *save = NULL, *f = strtok_r(line, " ", &save);
		if (f && strtoull(f, NULL, 10) == stx.stx_mnt_id) {
			for (int field = 2; (f = strtok_r(NULL, " ", &save)); field++) {
				if (field == 5)
					*where = xstrdup(f);
				if (field < 7)
					continue;
				if (!strcmp(f, "-"))
					break;
				*shared |= !strncmp(f, "shared:", 7);
				*slave |= !strncmp(f, "master:", 7);
			}
			return 0;
		}
		line = next;
	}
	return hutch_fail(err, ENOENT, "bind mount source '%s': its mount is not in mountinfo",
			  path);
}

static int check_propagation(const struct hutch_mount *m, const struct mount_opts *o,
			     struct hutch_err **err)
{
	if (!early_bind(o))
		return 0;
	bool shared, slave;
	_cleanup_free_ char *where = NULL;
	if (source_propagation(m->source, &shared, &slave, &where, err) < 0)
		return -1;
	if (shared || (slave && o->propagation == MS_SLAVE))
		return 0;
	return hutch_fail(err, 0,
			  "bind mount source '%s' is on mount %s, which is not %s: "
			  "propagation '%s' on %s needs one (mount --make-rshared %s)",
			  m->source, where ? where : "?",
			  o->propagation == MS_SLAVE ? "shared or a slave" : "shared",
			  propagation_name(o), m->destination, where ? where : "MOUNTPOINT");
}

/* Binds that keep propagation with the host are cloned while the container's
 * mount namespace is still a copy of the host's ("/" not yet private): the
 * clone is then a peer of the source's mount (in a user namespace the copy is a
 * slave of it, so mounts only ever come in), and gets the propagation asked for.
 * "slave" is made recursive, as Docker's rslave root propagation makes it;
 * "shared" without the r applies to the bind itself only. */
static int clone_early_binds(struct mount_ctx *ctx, struct hutch_err **err)
{
	const struct hutch_spec *spec = ctx->spec;
	for (size_t i = 0; i < spec->n_mounts; i++) {
		const struct hutch_mount *m = &spec->mounts[i];
		const struct mount_opts *o = &ctx->opts[i];
		if (!early_bind(o))
			continue;
		int rec = o->recursive ? AT_RECURSIVE : 0;
		_cleanup_close_ int mfd =
			open_tree(AT_FDCWD, m->source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | rec);
		if (mfd < 0)
			return hutch_fail_sys(err, "bind mount '%s'", m->source);
		bool all = o->propagation == MS_SLAVE || o->propagation_recursive;
		struct mount_attr attr = {.attr_set = o->attr_set,
					  .attr_clr = o->attr_clr,
					  .propagation = all ? o->propagation : 0};
		struct mount_attr top = {.propagation = o->propagation};
		if (mount_setattr(mfd, "", AT_EMPTY_PATH | rec, &attr, sizeof(attr)) < 0 ||
		    (!all && mount_setattr(mfd, "", AT_EMPTY_PATH, &top, sizeof(top)) < 0))
			return hutch_fail_sys(err, "set propagation '%s' of bind mount '%s' on %s",
					      propagation_name(o), m->source, m->destination);
		ctx->bind_fds[i] = steal_fd(mfd);
	}
	return 0;
}

/* ---- what the parent prepares ----------------------------------------------- */

/* Rootless, sysfs can only be mounted in a network namespace that the
 * container's user namespace owns, one made with it: with the host's network
 * (or one joined by path) the host's /sys is bound instead, read-only. */
static bool sysfs_as_bind(const struct mount_ctx *ctx, const struct hutch_mount *m)
{
	const struct hutch_namespace *net = hutch_spec_namespace(ctx->spec, HUTCH_NS_NETWORK);
	return !strcmp(m->type, "sysfs") && ctx->rootless && (!net || net->path);
}

static struct hutch_mount host_sys_bind(const struct hutch_spec *spec, const struct hutch_mount *m)
{
	static char *ro[] = {"rbind", "ro", "nosuid", "noexec", "nodev", NULL};
	static char *rw[] = {"rbind", "rw", "nosuid", "noexec", "nodev", NULL};
	return (struct hutch_mount){.destination = m->destination,
				    .type = "bind",
				    .source = "/sys",
				    .options = spec->privileged ? rw : ro,
				    .n_options = 5};
}

static bool gid_is_mapped(const struct hutch_spec *spec, gid_t gid)
{
	if (!spec_has_ns(spec, HUTCH_NS_USER))
		return true;
	for (size_t i = 0; i < spec->n_gid_map; i++)
		if (gid >= spec->gid_map[i].container_id &&
		    gid - spec->gid_map[i].container_id < spec->gid_map[i].size)
			return true;
	return false;
}

/* Remove one exact option from a comma-separated list, in place. */
static void strip_option(char *list, const char *opt)
{
	size_t ol = strlen(opt);
	for (char *p = list; (p = strstr(p, opt));) {
		bool start = p == list || p[-1] == ',';
		bool end = p[ol] == ',' || p[ol] == '\0';
		if (!start || !end) {
			p += ol;
			continue;
		}
		if (p[ol] == ',')
			memmove(p, p + ol + 1, strlen(p + ol + 1) + 1);
		else if (p > list)
			p[-1] = '\0';
		else
			*p = '\0';
	}
}

/* What runc's device list for privileged containers leaves out of the host's /dev. */
static bool host_dev_skipped(const char *name, bool dir)
{
	static const char *const dirs[] = {"pts",  "shm",	  "fd",	  "mqueue",
					   ".lxc", ".lxd-mounts", ".udev"};
	if (!dir)
		return !strcmp(name, "console");
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
		if (!strcmp(name, dirs[i]))
			return true;
	return false;
}

struct dirent64_raw {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

/* The host's char and block devices below dir (the host's /dev, or a
 * directory in it named path), as runc's device list for privileged containers
 * has them. Listed here, by the parent, so that the container's process only
 * has to create them. A directory we may not read (rootless) has nothing to copy. */
static void list_host_devices(struct mount_ctx *ctx, int dir, const char *path, int depth,
			      size_t *cap)
{
	char buf[8192];
	long n;
	while ((n = syscall(SYS_getdents64, dir, buf, sizeof(buf))) > 0) {
		for (long off = 0; off < n;) {
			const struct dirent64_raw *d = (const void *)(buf + off);
			off += d->d_reclen;
			const char *name = d->d_name;
			struct stat st;
			if (!strcmp(name, ".") || !strcmp(name, "..") ||
			    fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			bool is_dir = S_ISDIR(st.st_mode);
			if (is_dir ? depth >= 8 || host_dev_skipped(name, true)
				   : (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode)) ||
					 host_dev_skipped(name, false))
				continue;
			char *sub = xasprintf("%s/%s", path, name);
			if (is_dir) {
				_cleanup_close_ int fd = openat(
				    dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				if (fd >= 0)
					list_host_devices(ctx, fd, sub, depth + 1, cap);
				free(sub);
				continue;
			}
			if (ctx->n_host_devs == *cap) {
				*cap = *cap ? 2 * *cap : 64;
				ctx->host_devs =
				    xrealloc(ctx->host_devs, *cap * sizeof(*ctx->host_devs));
			}
			ctx->host_devs[ctx->n_host_devs++] =
			    (struct host_dev){sub, st.st_mode, st.st_rdev, st.st_uid, st.st_gid};
		}
	}
}

/* ---- id-mapped binds ---------------------------------------------------------- */

/* A user namespace whose maps are the mount's (or, with "idmap" alone, the
 * container's), for MOUNT_ATTR_IDMAP: its fd. Its one process, which only
 * waits for its maps, is gone when this returns. */
static int idmap_userns(const struct mount_ctx *ctx, const struct hutch_mount *m,
			struct hutch_err **err)
{
	const struct hutch_spec *spec = ctx->spec;
	bool own = m->n_uid_map > 0;
	const struct hutch_id_map *u = own ? m->uid_map : spec->uid_map;
	const struct hutch_id_map *g = own ? m->gid_map : spec->gid_map;
	size_t nu = own ? m->n_uid_map : spec->n_uid_map;
	size_t ng = own ? m->n_gid_map : spec->n_gid_map;
	struct id_mapping map = {.subordinate = ctx->rootless};
	if (nu > ARRAY_SIZE(map.uid) || ng > ARRAY_SIZE(map.gid))
		return hutch_fail(err, 0, "at most %zu id map ranges are supported",
				  ARRAY_SIZE(map.uid));
	for (size_t i = 0; i < nu; i++)
		map.uid[map.n_uid++] =
		    (struct id_range){u[i].container_id, u[i].host_id, u[i].size};
	for (size_t i = 0; i < ng; i++)
		map.gid[map.n_gid++] =
		    (struct id_range){g[i].container_id, g[i].host_id, g[i].size};
	int go[2];
	if (pipe2(go, O_CLOEXEC) < 0)
		return hutch_fail_sys(err, "pipe");
	struct clone_args ca = {.flags = CLONE_NEWUSER, .exit_signal = SIGCHLD};
	pid_t pid = (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
	if (pid == 0) {
		char c;
		close(go[1]);
		(void)!read(go[0], &c, 1);
		_exit(0);
	}
	close(go[0]);
	int fd = -1;
	if (pid < 0) {
		hutch_fail_sys(err, "create a user namespace for the id map");
	} else if (id_mapping_apply(&map, pid, err) == 0) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/ns/user", pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			hutch_fail_sys(err, "open %s", path);
	}
	close(go[1]);
	if (pid > 0)
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	return fd;
}

static int idmap_refused_rootless(const struct hutch_mount *m, struct hutch_err **err)
{
	return hutch_fail(err, EPERM,
			  "id-mapped mount of '%s' on %s: rootless, the kernel lets only root "
			  "of the host id-map a host filesystem's files: run as root, or bind "
			  "it without uidMappings and idmap",
			  m->source, m->destination);
}

/* Made here, by the runtime before the container's process exists: only a
 * process privileged over the source's filesystem (its superblock's user
 * namespace, the host's for a host directory) may id-map it, and the
 * container's process is in the container's user namespace. It attaches the
 * detached mount as it does the binds cloned early. */
static int idmap_bind(struct mount_ctx *ctx, size_t i, struct hutch_err **err)
{
	const struct hutch_mount *m = &ctx->spec->mounts[i];
	const struct mount_opts *o = &ctx->opts[i];
	if (!spec_has_ns(ctx->spec, HUTCH_NS_USER))
		return hutch_fail(err, 0,
				  "id-mapped mount on %s: the container needs a user namespace of "
				  "its own (linux.namespaces: user)",
				  m->destination);
	if (early_bind(o))
		return hutch_fail(err, 0,
				  "id-mapped mount on %s: propagation '%s' is not supported with "
				  "an id map (give private)",
				  m->destination, propagation_name(o));
	int rec = o->recursive ? AT_RECURSIVE : 0;
	_cleanup_close_ int mfd =
	    open_tree(AT_FDCWD, m->source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | rec);
	if (mfd < 0 && errno == EPERM && ctx->rootless)
		return idmap_refused_rootless(m, err); /* not even a bind, here */
	if (mfd < 0)
		return hutch_fail_sys(err, "bind mount '%s'", m->source);
	_cleanup_close_ int userns = idmap_userns(ctx, m, err);
	if (userns < 0)
		return hutch_err_wrap(err, "id-mapped mount of '%s' on %s", m->source,
				      m->destination);
	struct mount_attr id = {.attr_set = MOUNT_ATTR_IDMAP, .userns_fd = (uint64_t)userns};
	if (mount_setattr(mfd, "", AT_EMPTY_PATH | (o->idmap_recursive ? AT_RECURSIVE : 0), &id,
			  sizeof(id)) < 0) {
		if (errno == EPERM && ctx->rootless)
			return idmap_refused_rootless(m, err);
		if (errno == EINVAL)
			return hutch_fail(err, EINVAL,
					  "id-mapped mount of '%s' on %s: its filesystem cannot be "
					  "id-mapped by this kernel (ext4, xfs, btrfs, tmpfs and "
					  "overlay can)",
					  m->source, m->destination);
		return hutch_fail_sys(err, "id-map the bind mount of '%s' on %s", m->source,
				      m->destination);
	}
	uint64_t propagation = o->propagation == MS_UNBINDABLE ? MS_UNBINDABLE : MS_PRIVATE;
	struct mount_attr attr = {
	    .attr_set = o->attr_set, .attr_clr = o->attr_clr, .propagation = propagation};
	if (mount_setattr(mfd, "", AT_EMPTY_PATH | rec, &attr, sizeof(attr)) < 0)
		return hutch_fail_sys(err, "set options of bind mount '%s' on %s", m->source,
				      m->destination);
	ctx->bind_fds[i] = steal_fd(mfd);
	return 0;
}

int mounts_prepare(struct mount_ctx *ctx, struct hutch_err **err)
{
	const struct hutch_spec *spec = ctx->spec;
	size_t n = spec->n_mounts;
	ctx->opts = xcalloc(n + 1, sizeof(*ctx->opts));
	ctx->bind_fds = xcalloc(n + 1, sizeof(*ctx->bind_fds));
	ctx->own_mnt_ids = xcalloc(n + 1, sizeof(*ctx->own_mnt_ids));
	for (size_t i = 0; i < n; i++)
		ctx->bind_fds[i] = -1;
	for (size_t i = 0; i < n; i++) {
		const struct hutch_mount *m = &spec->mounts[i];
		struct hutch_mount sys;
		if (sysfs_as_bind(ctx, m)) {
			sys = host_sys_bind(spec, m);
			m = &sys;
		}
		struct mount_opts *o = &ctx->opts[i];
		if (mount_opts_parse(m, o, err) < 0 || check_propagation(m, o, err) < 0 ||
		    (o->idmap && idmap_bind(ctx, i, err) < 0)) {
			mounts_release(ctx);
			return -1;
		}
		/* devpts' gid=5 (tty) only exists if gid 5 is mapped into the userns. */
		if (!strcmp(m->type, "devpts") && o->data && !gid_is_mapped(spec, 5))
			strip_option(o->data, "gid=5");
		/* No device program: no node opens on any mount but a devpts of the
		 * container's own (its ptys), whatever the options said. */
		if (ctx->nodev && strcmp(m->type, "devpts")) {
			o->attr_set |= MOUNT_ATTR_NODEV;
			o->attr_clr &= ~(uint64_t)MOUNT_ATTR_NODEV;
		}
	}
	ctx->overlay_legacy_opts = make_overlay_legacy_opts(ctx);
	if (spec->privileged) {
		_cleanup_close_ int host = open("/dev", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (host < 0) {
			hutch_fail_sys(err, "--privileged: open the host's /dev");
			mounts_release(ctx);
			return -1;
		}
		size_t cap = 0;
		list_host_devices(ctx, host, "/dev", 0, &cap);
	}
	return 0;
}

void mounts_release(struct mount_ctx *ctx)
{
	for (size_t i = 0; ctx->opts && i < ctx->spec->n_mounts; i++)
		mount_opts_free(&ctx->opts[i]);
	for (size_t i = 0; ctx->bind_fds && i < ctx->spec->n_mounts; i++)
		if (ctx->bind_fds[i] >= 0)
			close(ctx->bind_fds[i]);
	for (size_t i = 0; i < ctx->n_host_devs; i++)
		free(ctx->host_devs[i].path);
	free(ctx->opts);
	free(ctx->bind_fds);
	free(ctx->own_mnt_ids);
	free(ctx->overlay_legacy_opts);
	free(ctx->host_devs);
	ctx->opts = NULL;
	ctx->bind_fds = NULL;
	ctx->own_mnt_ids = NULL;
	ctx->overlay_legacy_opts = NULL;
	ctx->host_devs = NULL;
	ctx->n_host_devs = 0;
}

/* ---- the container's process: the root ---------------------------------------- */

/* run --rm: the rw layer on a tmpfs mounted on rootfs (the container's dir) in
 * this mount namespace only, under the overlay that goes on the same place.
 * On a disk like this machine's (ext4 with discard) each directory made and
 * removed per run costs milliseconds; these cost nothing, and the kernel frees
 * them with the last mount that holds them, when the container is gone. The
 * size is --rw-layer tmpfs:SIZE's, else tmpfs's default (half the RAM); its
 * pages count as the container's memory (docs/cli.md). */
static int rw_tmpfs_mount(const struct mount_ctx *ctx, struct hutch_err **err)
{
	/* the child allocates nothing: the options on its stack */
	char opts[64] = "mode=0700";
	if (ctx->spec->rw_tmpfs_size > 0)
		snprintf(opts, sizeof(opts), "mode=0700,size=%lld",
			 (long long)ctx->spec->rw_tmpfs_size);
	_cleanup_close_ int mfd = fs_mount_detached("tmpfs", "hutch-rw", opts, 0, err);
	if (mfd < 0)
		return -1;
	_cleanup_close_ int target = open(ctx->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (target < 0)
		return hutch_fail_sys(err, "open %s", ctx->rootfs);
	if (attach(mfd, target, ctx->rootfs, err) < 0)
		return -1;
	if (mkdirat(mfd, "upper", 0755) < 0 || mkdirat(mfd, "work", 0755) < 0)
		return hutch_fail_sys(err, "create the rw layer's dirs on its tmpfs");
	return 0;
}

/* An OCI bundle's root: its directory bound onto itself (in the container's
 * mount namespace), so that it is a mount pivot_root can take. */
static int bind_rootfs(const struct mount_ctx *ctx, int *rootfd_out, struct hutch_err **err)
{
	const char *path = ctx->spec->root.path;
	_cleanup_close_ int mfd =
	    open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
	if (mfd < 0)
		return hutch_fail_sys(err, "bind the root filesystem %s", path);
	if (ctx->nodev) {
		struct mount_attr attr = {.attr_set = MOUNT_ATTR_NODEV};
		if (mount_setattr(mfd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0)
			return hutch_fail_sys(err, "make the root filesystem %s nodev", path);
	}
	_cleanup_close_ int target = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (target < 0)
		return hutch_fail_sys(err, "open the root filesystem %s", path);
	if (attach(mfd, target, path, err) < 0)
		return -1;
	int rootfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return hutch_fail_sys(err, "open %s", path);
	*rootfd_out = rootfd;
	return 0;
}

int mounts_setup_rootfs(struct mount_ctx *ctx, int *rootfd_out, struct hutch_err **err)
{
	const struct hutch_spec *spec = ctx->spec;
	if (clone_early_binds(ctx, err) < 0)
		return -1;
	/* Nothing we mount may propagate back to the host. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return hutch_fail_sys(err, "make mounts private");
	if (ctx->rw_tmpfs && rw_tmpfs_mount(ctx, err) < 0)
		return -1;
	if (spec->root.path)
		return bind_rootfs(ctx, rootfd_out, err);

	_cleanup_close_ int fsfd = fsopen("overlay", FSOPEN_CLOEXEC);
	if (fsfd < 0)
		return hutch_fail_sys(err, "fsopen overlay");
	/* the image's layers, top first, then the empty /etc files under them all */
	const char *base = ctx->etc ? ctx->etc->base_layer : NULL;
	/* fsconfig() takes string values of at most 255 bytes, which a few layers
	 * exceed: "lowerdir+" (Linux 6.8+) adds one layer per call, top first.
	 * Kernels without it (some accept it and fail only at create) get the
	 * whole list through mount(2), whose options may fill a page. */
	int r = 0;
	for (size_t i = spec->root.n_layers; r == 0 && i-- > 0;)
		r = fsconfig(fsfd, FSCONFIG_SET_STRING, "lowerdir+", spec->root.layers[i], 0);
	if (r == 0 && base)
		r = fsconfig(fsfd, FSCONFIG_SET_STRING, "lowerdir+", base, 0);
	if (r == 0)
		r = fsconfig(fsfd, FSCONFIG_SET_STRING, "upperdir", ctx->upper, 0);
	if (r == 0)
		r = fsconfig(fsfd, FSCONFIG_SET_STRING, "workdir", ctx->work, 0);
	if (r == 0 && ctx->rootless)
		r = fsconfig(fsfd, FSCONFIG_SET_FLAG, "userxattr", NULL, 0);
	/* --rm: the upper dir is deleted after the run, so writing it back to disk
	 * (overlayfs syncs the upper filesystem when it is unmounted, on the
	 * container's exit path) buys nothing */
	if (r == 0 && spec->auto_remove)
		r = fsconfig(fsfd, FSCONFIG_SET_FLAG, "volatile", NULL, 0);
	if (r == 0)
		r = fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0);
	if (r < 0 && errno == EINVAL)
		return overlay_mount_legacy(ctx, rootfd_out, err);
	if (r < 0) {
		hutch_fail_sys(err, "mount the overlay root filesystem");
		append_fs_log(fsfd, "overlay", err);
		return -1;
	}
	_cleanup_close_ int mfd = fsmount(fsfd, FSMOUNT_CLOEXEC, ctx->nodev ? MOUNT_ATTR_NODEV : 0);
	if (mfd < 0)
		return hutch_fail_sys(err, "fsmount overlay");
	_cleanup_close_ int target = open(ctx->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (target < 0)
		return hutch_fail_sys(err, "open %s", ctx->rootfs);
	if (attach(mfd, target, ctx->rootfs, err) < 0)
		return -1;
	int rootfd = open(ctx->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return hutch_fail_sys(err, "open %s", ctx->rootfs);
	*rootfd_out = rootfd;
	return 0;
}

/* ---- the container's process: its mounts ---------------------------------------- */

/* The id of the mount fd is on (statx, Linux 5.8+), or 0. */
static uint64_t mnt_id_of(int fd)
{
	struct statx stx;
	if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &stx) < 0 ||
	    !(stx.stx_mask & STATX_MNT_ID))
		return 0;
	return stx.stx_mnt_id;
}

/* The kernel only says EINVAL or ENOTDIR for a file bound over a directory or
 * the other way round; say which is which. */
static bool bind_kinds_differ(int rootfd, const struct hutch_mount *m, const struct stat *src,
			      struct hutch_err **err)
{
	_cleanup_close_ int fd = openat2_in_root(rootfd, m->destination, O_PATH);
	struct stat dst;
	if (fd < 0 || fstat(fd, &dst) < 0 || S_ISDIR(dst.st_mode) == S_ISDIR(src->st_mode))
		return false;
	if (S_ISDIR(src->st_mode)) {
		hutch_fail(err, 0,
			   "cannot bind mount the directory %s on %s: %s in the container is a "
			   "file, and a directory can only be mounted on a directory",
			   m->source, m->destination, m->destination);
	} else {
		const char *base = strrchr(m->source, '/');
		base = base && base[1] ? base + 1 : m->source;
		bool root = !strcmp(m->destination, "/");
		hutch_fail(err, 0,
			   "cannot bind mount the file %s on %s: %s in the container is a "
			   "directory, and a file can only be mounted on a file (like %s/%s)",
			   m->source, m->destination, m->destination, root ? "" : m->destination,
			   base);
	}
	return true;
}

/* A new filesystem mount is private; other propagation only when asked for
 * (a shared tmpfs, say, for mounts a container makes below it to show up in
 * another bind of it). */
static int set_fs_propagation(int mfd, const struct mount_opts *o, const struct hutch_mount *m,
			      struct hutch_err **err)
{
	if (!o->propagation || o->propagation == MS_PRIVATE)
		return 0;
	struct mount_attr attr = {.propagation = o->propagation};
	if (mount_setattr(mfd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0)
		return hutch_fail_sys(err, "set the propagation of %s", m->destination);
	return 0;
}

/* ---- tmpcopyup ----------------------------------------------------------------- */

/* The owner, mode and times of st on name in dir (the mode with no umask; a
 * symlink's mode is its own). An owner the container's user namespace does
 * not map (EINVAL) stays the container's root: the file is still there. */
static int copy_attrs(int dir, const char *name, const struct stat *st, struct hutch_err **err)
{
	if (fchownat(dir, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0 && errno != EINVAL)
		return hutch_fail_sys(err, "tmpcopyup: set the owner of %s", name);
	if (!S_ISLNK(st->st_mode) && fchmodat(dir, name, st->st_mode & 07777, 0) < 0)
		return hutch_fail_sys(err, "tmpcopyup: set the mode of %s", name);
	struct timespec times[2] = {st->st_atim, st->st_mtim};
	if (utimensat(dir, name, times, AT_SYMLINK_NOFOLLOW) < 0)
		return hutch_fail_sys(err, "tmpcopyup: set the times of %s", name);
	return 0;
}

static int copy_file(int from_dir, int to_dir, const char *name, const struct stat *st,
		     struct hutch_err **err)
{
	_cleanup_close_ int in = openat(from_dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	_cleanup_close_ int out =
	    in < 0
		? -1
		: openat(to_dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (in < 0 || out < 0)
		return hutch_fail_sys(err, "tmpcopyup: copy %s", name);
	for (off_t left = st->st_size; left > 0;) {
		ssize_t n = copy_file_range(in, NULL, out, NULL, (size_t)left, 0);
		if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS))
			n = sendfile(out, in, NULL, (size_t)left);
		if (n < 0)
			return hutch_fail_sys(err, "tmpcopyup: copy %s", name);
		if (n == 0)
			break; /* it shrank meanwhile */
		left -= n;
	}
	return 0;
}

/* What the directory from (in the container's root) holds, copied into to
 * (the new tmpfs), as crun's tmpcopyup does: directories, files, symlinks,
 * fifos, with their owners, modes and times. Every name is opened below its
 * directory's fd without following a symlink, so nothing outside from is read.
 * The container's process runs this: stack buffers only, a bounded depth. */
static int copy_tree(int from, int to, int depth, struct hutch_err **err)
{
	if (depth > 64)
		return hutch_fail(err, ELOOP, "tmpcopyup: more than 64 directories deep");
	char buf[4096];
	long n;
	while ((n = syscall(SYS_getdents64, from, buf, sizeof(buf))) > 0) {
		for (long off = 0; off < n;) {
			const struct dirent64_raw *d = (const void *)(buf + off);
			off += d->d_reclen;
			const char *name = d->d_name;
			struct stat st;
			if (!strcmp(name, ".") || !strcmp(name, ".."))
				continue;
			if (fstatat(from, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				return hutch_fail_sys(err, "tmpcopyup: stat %s", name);
			int r = 0;
			if (S_ISDIR(st.st_mode)) {
				_cleanup_close_ int sub = openat(
				    from, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				_cleanup_close_ int dst = -1;
				if (sub < 0 || (mkdirat(to, name, 0700) < 0 && errno != EEXIST) ||
				    (dst = openat(to, name,
						  O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
						      O_CLOEXEC)) < 0)
					return hutch_fail_sys(
					    err, "tmpcopyup: copy the directory %s", name);
				r = copy_tree(sub, dst, depth + 1, err);
			} else if (S_ISREG(st.st_mode)) {
				r = copy_file(from, to, name, &st, err);
			} else if (S_ISLNK(st.st_mode)) {
				char target[PATH_MAX];
				ssize_t len = readlinkat(from, name, target, sizeof(target) - 1);
				if (len < 0)
					return hutch_fail_sys(err, "tmpcopyup: read the symlink %s",
							      name);
				target[len] = '\0';
				if (symlinkat(target, to, name) < 0)
					return hutch_fail_sys(err, "tmpcopyup: copy the symlink %s",
							      name);
			} else if (S_ISFIFO(st.st_mode)) {
				if (mkfifoat(to, name, 0600) < 0)
					return hutch_fail_sys(err, "tmpcopyup: copy the fifo %s",
							      name);
			} else {
				continue; /* device nodes and sockets: not a copy's to make */
			}
			if (r < 0 || copy_attrs(to, name, &st, err) < 0)
				return -1;
		}
	}
	if (n < 0)
		return hutch_fail_sys(err, "tmpcopyup: read a directory");
	return 0;
}

/* tmpcopyup: the new tmpfs mfd starts with what target (the directory it is
 * to cover) holds. */
static int tmpfs_copy_up(int mfd, int target, const struct hutch_mount *m, struct hutch_err **err)
{
	_cleanup_close_ int from = openat(target, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	_cleanup_close_ int to = openat(mfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (from < 0 || to < 0)
		return hutch_fail_sys(err, "tmpcopyup: open %s", m->destination);
	return copy_tree(from, to, 0, err);
}

/* cloned: a bind already cloned and set up by clone_early_binds, or -1.
 * own_id: where the id of a filesystem mounted here goes (binds: left alone). */
static int mount_one(const struct mount_ctx *ctx, int rootfd, const struct hutch_mount *m,
		     const struct mount_opts *o, int cloned, uint64_t *own_id,
		     struct hutch_err **err)
{
	_cleanup_close_ int preset = cloned;
	_cleanup_close_ int target = -1;
	_cleanup_close_ int mfd = -1;
	if (o->bind) {
		struct stat st;
		if (stat(m->source, &st) < 0) {
			hutch_fail_sys(err, "bind mount source '%s'", m->source);
			goto fail;
		}
		if (bind_kinds_differ(rootfd, m, &st, err))
			return -1;
		target = S_ISDIR(st.st_mode) ? root_open_dir_p(rootfd, m->destination, true, err)
					      : root_open_file_p(rootfd, m->destination, err);
		if (target < 0)
			goto fail;
		mfd = preset >= 0 ? steal_fd(preset)
				  : open_tree(AT_FDCWD, m->source,
					      OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC |
						  (o->recursive ? AT_RECURSIVE : 0));
		if (mfd < 0) {
			hutch_fail_sys(err, "bind mount '%s'", m->source);
			goto fail;
		}
		uint64_t propagation = o->propagation == MS_UNBINDABLE ? MS_UNBINDABLE : MS_PRIVATE;
		struct mount_attr attr = {
		    .attr_set = o->attr_set, .attr_clr = o->attr_clr, .propagation = propagation};
		if (cloned < 0 &&
		    mount_setattr(mfd, "", AT_EMPTY_PATH | (o->recursive ? AT_RECURSIVE : 0), &attr,
				  sizeof(attr)) < 0) {
			hutch_fail_sys(err, "set options of bind mount '%s' on %s", m->source,
				       m->destination);
			goto fail;
		}
	} else {
		target = root_open_dir_p(rootfd, m->destination, true, err);
		if (target < 0)
			goto fail;
		bool cgroup2 = !strcmp(m->type, "cgroup2");
		mfd = cgroup2 && !ctx->own_cgroup
			  ? -1
			  : fs_mount_detached(m->type, m->source, o->data, o->attr_set, err);
		if (mfd < 0 && cgroup2) {
			/* A container sees only its own cgroup. One without (rootless
			 * with no delegated subtree, no cgroup v2 on the host) would see
			 * the cgroup hutch runs in, the host's whole tree at worst, or
			 * under a bound /sys the host's v1 hierarchies: an empty,
			 * read-only tmpfs instead. So too where cgroup2 cannot be
			 * mounted (an old kernel, or hidden). */
			hutch_err_free(err);
			mfd = fs_mount_detached("tmpfs", "tmpfs", "mode=0555,size=4k",
						MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
						    MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
						err);
		}
		if (mfd < 0)
			goto fail;
		if (set_fs_propagation(mfd, o, m, err) < 0 ||
		    (o->tmpcopyup && tmpfs_copy_up(mfd, target, m, err) < 0))
			goto fail;
		/* a mount keeps its id when it is moved into place */
		*own_id = mnt_id_of(mfd);
	}
	if (attach(mfd, target, m->destination, err) == 0)
		return 0;
fail:
	return hutch_err_wrap(err, "mount %s on %s", m->type, m->destination);
}

/* No mknod in a user namespace (rootless, or one of the container's own made
 * by root): nodes are binds of the host's there. */
static bool no_mknod(const struct mount_ctx *ctx)
{
	return ctx->rootless || spec_has_ns(ctx->spec, HUTCH_NS_USER);
}

/* bind: the host's nodes bound (no mknod in a user namespace; a nodev /dev
 * without a device program), else made with mknod. */
static int setup_dev(int rootfd, bool bind, struct hutch_err **err)
{
	static const struct {
		const char *name;
		unsigned major, minor;
	} devices[] = {
		{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7},
		{"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
	};
	static const struct {
		const char *name, *target;
	} links[] = {
		{"fd", "/proc/self/fd"},
		{"stdin", "/proc/self/fd/0"},
		{"stdout", "/proc/self/fd/1"},
		{"stderr", "/proc/self/fd/2"},
		{"ptmx", "pts/ptmx"},
		{"core", "/proc/kcore"},
	};
	_cleanup_close_ int dev = root_open_dir_p(rootfd, "/dev", true, err);
	if (dev < 0)
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(devices); i++) {
		if (!bind) {
			/* these nodes are world-writable: made without the umask (a
			 * chmod per node fewer), one that was there already chmod'ed */
			mode_t mask = umask(0);
			int r = mknodat(dev, devices[i].name, S_IFCHR | 0666,
					makedev(devices[i].major, devices[i].minor));
			int e = errno;
			umask(mask);
			if (r < 0 && e != EEXIST) {
				errno = e;
				return hutch_fail_sys(err, "create /dev/%s", devices[i].name);
			}
			if (r < 0 && fchmodat(dev, devices[i].name, 0666, 0) < 0)
				return hutch_fail_sys(err, "chmod /dev/%s", devices[i].name);
			continue;
		}
		/* In a user namespace mknod is not allowed: bind the host's node. */
		_cleanup_close_ int f = openat(dev, devices[i].name,
					       O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0666);
		if (f < 0)
			return hutch_fail_sys(err, "create /dev/%s", devices[i].name);
		char host[32];
		snprintf(host, sizeof(host), "/dev/%s", devices[i].name);
		_cleanup_close_ int mfd =
			open_tree(AT_FDCWD, host, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
		if (mfd < 0)
			return hutch_fail_sys(err, "bind %s", host);
		_cleanup_close_ int tfd = openat(dev, devices[i].name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (tfd < 0 || attach(mfd, tfd, host, err) < 0)
			return hutch_fail_sys(err, "bind %s", host);
	}
	for (size_t i = 0; i < ARRAY_SIZE(links); i++)
		if (symlinkat(links[i].target, dev, links[i].name) < 0 && errno != EEXIST)
			return hutch_fail_sys(err, "create /dev/%s", links[i].name);
	return 0;
}

/* ---- /etc/hostname, /etc/hosts, /etc/resolv.conf --------------------------- */

/* Is fd on a mount of the container's own: its root overlay (root_id), or a
 * filesystem it mounted itself (a --tmpfs)? Only there may hutch create or
 * delete files: anything else (above all a bind of a host directory, which an
 * image's symlink can lead into) belongs to someone else. */
static bool on_own_mount(const struct mount_ctx *ctx, uint64_t root_id, int fd)
{
	uint64_t id = mnt_id_of(fd);
	if (!id)
		return false;
	if (id == root_id)
		return true;
	for (size_t i = 0; i < ctx->spec->n_mounts; i++)
		if (ctx->own_mnt_ids[i] == id)
			return true;
	return false;
}

/* Where the container's /etc file f goes, in etc (the container's /etc, on a
 * mount of its own): *target is the file there if it is a regular file on a
 * mount of the container's own; or it is created there, where the image lacks
 * it or has a symlink in its place that leads nowhere (resolv.conf ->
 * ../run/systemd/..., or a loop), in the container's rw layer: the image never
 * changes. A file that resolves elsewhere (through a symlink into a bind mount)
 * or is not a regular file is left alone, and the container goes without
 * hutch's: *target is -1. */
static int etc_target(const struct mount_ctx *ctx, int rootfd, uint64_t root_id, int etc,
		      enum etc_file f, int *target, struct hutch_err **err)
{
	const char *path = etc_file_paths[f], *leaf = etc_file_names[f];
	*target = -1;
	int fd = openat2_in_root(rootfd, path, O_PATH);
	if (fd >= 0) {
		struct stat st;
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && on_own_mount(ctx, root_id, fd))
			*target = fd;
		else
			close(fd);
		return 0;
	}
	int e = errno;
	struct stat st;
	bool link = fstatat(etc, leaf, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
	if (!link && e != ENOENT)
		return hutch_fail(err, e, "resolve %s in the container", path);
	/* etc is on a mount of the container's own: so is the symlink in it */
	if (link && unlinkat(etc, leaf, 0) < 0)
		return hutch_fail_sys(err, "replace the dangling symlink %s in the container",
				      path);
	_cleanup_close_ int created =
	    openat(etc, leaf, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (created < 0)
		return hutch_fail_sys(err, "create %s in the container", path);
	*target = openat(etc, leaf, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (*target < 0)
		return hutch_fail_sys(err, "resolve %s in the container", path);
	return 0;
}

/* The files go into a tmpfs of the container's own, attached (in its mount
 * namespace only) on the empty stage dir while they are written and cloned.
 * An image whose /etc is not a directory on a mount of the container's own (a
 * file, a dangling symlink, a symlink into a bind mount) gets none of them:
 * nothing is created or deleted anywhere else, and the container runs without. */
static int mount_etc_files(const struct mount_ctx *ctx, int rootfd, struct hutch_err **err)
{
	const struct etc_files *etc = ctx->etc;
	if (!etc || !etc->stage_dir)
		return 0;
	uint64_t root_id = mnt_id_of(rootfd);
	_cleanup_close_ int etcfd = openat2_in_root(rootfd, "/etc", O_PATH | O_DIRECTORY);
	if (etcfd < 0 && errno != ENOENT && errno != ENOTDIR && errno != ELOOP)
		return hutch_fail_sys(err, "resolve /etc in the container");
	if (etcfd < 0 || !root_id || !on_own_mount(ctx, root_id, etcfd))
		return 0;
	_cleanup_close_ int mfd =
		fs_mount_detached("tmpfs", "tmpfs", "size=1m,mode=0755",
				  MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, err);
	_cleanup_close_ int stage = open(etc->stage_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (mfd < 0 || stage < 0 || attach(mfd, stage, etc->stage_dir, err) < 0)
		return hutch_err_wrap(err, "mount a tmpfs for the container's /etc files");
	_cleanup_close_ int dir = open(etc->stage_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return hutch_fail_sys(err, "open the tmpfs for the container's /etc files");
	for (int f = 0; f < ETC_FILES; f++) {
		const char *content = etc->content[f], *path = etc_file_paths[f];
		if (!content)
			continue;
		_cleanup_close_ int target = -1;
		if (etc_target(ctx, rootfd, root_id, etcfd, (enum etc_file)f, &target, err) < 0)
			return hutch_err_wrap(err, "mount the container's %s", path);
		if (target < 0)
			continue;
		_cleanup_close_ int fd = openat(dir, etc_file_names[f],
						O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0 || write_all(fd, content, strlen(content)) < 0)
			return hutch_fail_sys(err, "write the container's %s", path);
		_cleanup_close_ int file =
			open_tree(dir, etc_file_names[f], OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
		if (file < 0)
			return hutch_fail_sys(err, "bind mount the container's %s", path);
		/* as Docker: read-only with a read-only root */
		struct mount_attr ro = {.attr_set = MOUNT_ATTR_RDONLY};
		if (ctx->spec->root.readonly &&
		    mount_setattr(file, "", AT_EMPTY_PATH, &ro, sizeof(ro)) < 0)
			return hutch_fail_sys(err, "make the container's %s read-only", path);
		if (attach(file, target, path, err) < 0)
			return hutch_err_wrap(err, "mount the container's %s", path);
	}
	return 0;
}

/* ---- --privileged: the host's device nodes ---------------------------------- */

/* The directory of the node rel (a path below dev) in the container's /dev,
 * made where missing. */
static int open_dev_parent(int dev, const char *rel, struct hutch_err **err)
{
	int cur = fcntl(dev, F_DUPFD_CLOEXEC, 0);
	if (cur < 0)
		return hutch_fail_sys(err, "open /dev");
	for (const char *p = rel, *slash; (slash = strchr(p, '/')); p = slash + 1) {
		char name[NAME_MAX + 1];
		size_t n = (size_t)(slash - p);
		if (n == 0 || n > NAME_MAX)
			continue;
		memcpy(name, p, n);
		name[n] = '\0';
		int e = mkdirat(cur, name, 0755) < 0 && errno != EEXIST ? errno : 0;
		int next =
		    e ? -1 : openat(cur, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (!e && next < 0)
			e = errno;
		close(cur);
		if (e)
			return hutch_fail(err, e, "create /dev/%.*s", (int)(slash - rel), rel);
		cur = next;
	}
	return cur;
}

/* The host's nodes listed by mounts_prepare, made in the container's /dev:
 * mknod with the host's mode and owner, or (rootless: no mknod in a user
 * namespace) a bind mount of the host's node. Nodes the container has already
 * stay; directories are made only where a node goes. */
static int add_host_devices(const struct mount_ctx *ctx, int rootfd, struct hutch_err **err)
{
	_cleanup_close_ int dev = root_open_dir_p(rootfd, "/dev", true, err);
	if (dev < 0)
		return -1;
	for (size_t i = 0; i < ctx->n_host_devs; i++) {
		const struct host_dev *d = &ctx->host_devs[i];
		const char *rel = d->path + strlen("/dev/");
		const char *name = strrchr(rel, '/') ? strrchr(rel, '/') + 1 : rel;
		_cleanup_close_ int dir = open_dev_parent(dev, rel, err);
		if (dir < 0)
			return hutch_err_wrap(err, "--privileged: copy the host's devices");
		if (!no_mknod(ctx)) {
			if (mknodat(dir, name, d->mode & (S_IFMT | 07777), d->rdev) < 0) {
				if (errno == EEXIST)
					continue;
				return hutch_fail_sys(err, "--privileged: create device %s",
						      d->path);
			}
			/* mknod applies the umask */
			if (fchownat(dir, name, d->uid, d->gid, AT_SYMLINK_NOFOLLOW) < 0 ||
			    fchmodat(dir, name, d->mode & 07777, 0) < 0)
				return hutch_fail_sys(
				    err, "--privileged: set the owner and mode of %s", d->path);
			continue;
		}
		int flags = O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC;
		_cleanup_close_ int f = openat(dir, name, flags, 0600);
		if (f < 0) {
			if (errno == EEXIST)
				continue;
			return hutch_fail_sys(err, "--privileged: create %s", d->path);
		}
		_cleanup_close_ int mfd =
		    open_tree(AT_FDCWD, d->path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
		_cleanup_close_ int tfd = openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (mfd < 0 || tfd < 0 || attach(mfd, tfd, d->path, NULL) < 0)
			unlinkat(dir, name, 0); /* one we cannot bind: left out */
	}
	return 0;
}

/* linux.devices (--device): each node made where the spec says, only on the
 * container's own mounts (never in a bind of the host's directory): with mknod
 * and the host's mode and owner; where mknod is not allowed (rootless) or its
 * node would not open (nodev), a bind of the host's node. */
static int add_spec_devices(const struct mount_ctx *ctx, int rootfd, struct hutch_err **err)
{
	const struct hutch_spec *spec = ctx->spec;
	uint64_t root_id = spec->n_devices ? mnt_id_of(rootfd) : 0;
	for (size_t i = 0; i < spec->n_devices; i++) {
		const struct hutch_device *d = &spec->devices[i];
		char dir[PATH_MAX];
		if (!copy_path(dir, d->path))
			return hutch_fail(err, ENAMETOOLONG, "device %s", d->path);
		char *slash = strrchr(dir, '/');
		const char *name = d->path + (slash - dir) + 1;
		*slash = '\0';
		_cleanup_close_ int dirfd = root_open_dir_p(rootfd, *dir ? dir : "/", true, err);
		if (dirfd < 0)
			return hutch_err_wrap(err, "device %s", d->path);
		if (!on_own_mount(ctx, root_id, dirfd))
			return hutch_fail(
			    err, 0,
			    "device %s: %s in the container is not on a filesystem of "
			    "the container's own (a bind mount of the host's?), and hutch "
			    "makes no device node there: give another path",
			    d->path, *dir ? dir : "/");
		mode_t type = d->type == 'b' ? S_IFBLK : S_IFCHR;
		dev_t rdev = makedev((unsigned)d->major, (unsigned)d->minor);
		if (!no_mknod(ctx) && !ctx->nodev) {
			if (mknodat(dirfd, name, type | (d->file_mode & 07777), rdev) < 0) {
				int e = errno;
				struct stat st;
				/* the same node already there (/dev/null) is fine */
				if (e != EEXIST ||
				    fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
				    (st.st_mode & S_IFMT) != type || st.st_rdev != rdev)
					return hutch_fail(
					    err, e, "create device %s in the container", d->path);
			}
			/* mknod applies the umask */
			if (fchownat(dirfd, name, d->uid, d->gid, AT_SYMLINK_NOFOLLOW) < 0 ||
			    fchmodat(dirfd, name, d->file_mode & 07777, 0) < 0)
				return hutch_fail_sys(err, "set the owner and mode of device %s",
						      d->path);
			continue;
		}
		if (!d->host_path)
			return hutch_fail(err, 0,
					  "device %s: mknod is not possible here and it names no "
					  "node of the host's to bind",
					  d->path);
		/* an empty file to bind on, made without opening anything there */
		if (mknodat(dirfd, name, S_IFREG | 0600, 0) < 0 && errno != EEXIST)
			return hutch_fail_sys(err, "create %s in the container", d->path);
		_cleanup_close_ int mfd =
		    open_tree(AT_FDCWD, d->host_path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
		if (mfd < 0)
			return hutch_fail_sys(err, "bind the host's device %s on %s", d->host_path,
					      d->path);
		_cleanup_close_ int tfd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (tfd < 0)
			return hutch_fail_sys(err, "resolve %s in the container", d->path);
		if (attach(mfd, tfd, d->path, err) < 0)
			return -1;
	}
	return 0;
}

/* Hide a path: /dev/null over a file, an empty read-only tmpfs over a directory. */
/* What masks a file: the container's own /dev/null, so no host mount shows
 * through; the host's where a bind on /dev has none (a file there would not
 * hide). Looked up once for all masked files. */
static int mask_null_open(int rootfd)
{
	int null = openat2_in_root(rootfd, "/dev/null", O_PATH | O_NOFOLLOW);
	struct stat nst;
	if (null >= 0 &&
	    (fstat(null, &nst) < 0 || !S_ISCHR(nst.st_mode) || nst.st_rdev != makedev(1, 3))) {
		close(null);
		null = open("/dev/null", O_PATH | O_CLOEXEC);
	} else if (null < 0 && errno == ENOENT)
		null = open("/dev/null", O_PATH | O_CLOEXEC);
	return null;
}

static int mask_path(int rootfd, const char *path, int *null, struct hutch_err **err)
{
	_cleanup_close_ int fd = openat2_in_root(rootfd, path, O_PATH | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? 0 : hutch_fail_sys(err, "mask %s", path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return hutch_fail_sys(err, "mask %s", path);
	_cleanup_close_ int mfd = -1;
	if (S_ISDIR(st.st_mode))
		mfd = fs_mount_detached("tmpfs", "tmpfs", "size=0", MOUNT_ATTR_RDONLY, err);
	else {
		if (*null < 0)
			*null = mask_null_open(rootfd);
		mfd = *null < 0 ? -1
				: open_tree(*null, "",
					    OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
	}
	if (mfd < 0)
		return hutch_fail_sys(err, "mask %s", path);
	return attach(mfd, fd, path, err);
}

static int readonly_path(int rootfd, const char *path, struct hutch_err **err)
{
	_cleanup_close_ int fd = openat2_in_root(rootfd, path, O_PATH | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? 0 : hutch_fail_sys(err, "make %s read-only", path);
	_cleanup_close_ int mfd = open_tree(fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC |
							    AT_RECURSIVE | AT_EMPTY_PATH);
	if (mfd < 0)
		return hutch_fail_sys(err, "make %s read-only", path);
	struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
					      MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC};
	if (mount_setattr(mfd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0)
		return hutch_fail_sys(err, "make %s read-only", path);
	return attach(mfd, fd, path, err);
}

static size_t path_depth(const char *p)
{
	size_t d = 0;
	for (; *p; p++)
		d += *p == '/' && p[1] && p[1] != '/';
	return d;
}

int mounts_setup_container(const struct mount_ctx *ctx, int rootfd, struct hutch_err **err)
{
	const struct hutch_spec *spec = ctx->spec;
	/* Parents before children: a stable order by depth. */
	size_t n = spec->n_mounts, max_depth = 0;
	for (size_t i = 0; i < n; i++) {
		size_t d = path_depth(spec->mounts[i].destination);
		max_depth = d > max_depth ? d : max_depth;
	}
	bool dev_done = false, dev_bound = false;
	for (size_t depth = 0; depth <= max_depth; depth++) {
		for (size_t i = 0; i < n; i++) {
			const struct hutch_mount *m = &spec->mounts[i];
			if (path_depth(m->destination) != depth)
				continue;
			struct hutch_mount sys;
			if (sysfs_as_bind(ctx, m)) {
				sys = host_sys_bind(spec, m);
				m = &sys;
			}
			if (mount_one(ctx, rootfd, m, &ctx->opts[i], steal_fd(ctx->bind_fds[i]),
				      &ctx->own_mnt_ids[i], err) < 0)
				return -1;
			if (!strcmp(m->destination, "/dev")) {
				/* As runc: a bind on /dev is used as it is. Nodes made
				 * in it would be made in its source, on the host. */
				dev_bound = ctx->opts[i].bind;
				if (!dev_bound &&
				    setup_dev(rootfd, no_mknod(ctx) || ctx->nodev, err) < 0)
					return -1;
				dev_done = true;
			}
		}
	}
	if (!dev_done && setup_dev(rootfd, no_mknod(ctx) || ctx->nodev, err) < 0)
		return -1;
	if (add_spec_devices(ctx, rootfd, err) < 0)
		return -1;
	if (spec->privileged && !dev_bound && add_host_devices(ctx, rootfd, err) < 0)
		return -1;
	if (mount_etc_files(ctx, rootfd, err) < 0)
		return -1;
	_cleanup_close_ int null = -1;
	for (size_t i = 0; i < spec->n_masked_paths; i++)
		if (mask_path(rootfd, spec->masked_paths[i], &null, err) < 0)
			return -1;
	for (size_t i = 0; i < spec->n_readonly_paths; i++)
		if (readonly_path(rootfd, spec->readonly_paths[i], err) < 0)
			return -1;
	/* The working directory is created if missing, as Docker does, once the
	 * mounts it may be in are there. */
	const char *cwd = spec->process.cwd ? spec->process.cwd : "/";
	_cleanup_close_ int cwdfd = root_open_dir_p(rootfd, cwd, true, err);
	if (cwdfd < 0)
		return hutch_err_wrap(err,
				      "working directory %s (--workdir, or the image's "
				      "WorkingDir)",
				      cwd);
	return 0;
}

int mounts_root_propagation(unsigned long type, bool recursive, struct hutch_err **err)
{
	if (!type)
		return 0;
	struct mount_attr attr = {.propagation = type};
	if (mount_setattr(AT_FDCWD, "/", recursive ? AT_RECURSIVE : 0, &attr, sizeof(attr)) < 0)
		return hutch_fail_sys(err, "linux.rootfsPropagation: set the propagation of /");
	return 0;
}

int mounts_pivot_root(int rootfd, bool readonly, struct hutch_err **err)
{
	_cleanup_close_ int dirfd = openat2_in_root(rootfd, "/", O_RDONLY | O_DIRECTORY);
	if (dirfd < 0 || fchdir(dirfd) < 0)
		return hutch_fail_sys(err, "enter the container root");
	/* pivot_root(".", ".") stacks the old root on top of the new one; detaching
	 * it leaves only the container's tree (no directory needed for the old root). */
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return hutch_fail_sys(err, "pivot_root");
	if (umount2(".", MNT_DETACH) < 0)
		return hutch_fail_sys(err, "detach the host root");
	if (chdir("/") < 0)
		return hutch_fail_sys(err, "chdir /");
	if (readonly) {
		struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
		if (mount_setattr(AT_FDCWD, "/", 0, &attr, sizeof(attr)) < 0)
			return hutch_fail_sys(err, "make the root read-only");
	}
	return 0;
}
