/* Unpacking layers: metadata kept, tar override semantics, whiteouts, the
 * compressed streams and their digests, and every escape we know of refused
 * with nothing written outside the layer. Runs as root (ownership, devices,
 * trusted.* xattrs).
 *
 * Each test gets BASE=/tmp/hutch-unpack-XXXXXX holding layer/ (the target)
 * and sentinel/ (a directory next to it with one file, secret, that escapes
 * would reach). After every test the sentinel must be exactly as made. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <zlib.h>
#include <zstd.h>

#include "common/sha256.h"
#include "common/util.h"
#include "images/layer_internal.h"
#include "tests/unit/tar_builder.h"

struct fixture {
	char base[64];
	char sentinel[96];
	int base_fd, layer_fd;
	struct unpack_opts opts;
	struct unpack_stats stats;
	char *err; /* message of the last failed unpack */
	int err_errno;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	strcpy(f->base, "/tmp/hutch-unpack-XXXXXX");
	if (!mkdtemp(f->base))
		return -1;
	snprintf(f->sentinel, sizeof(f->sentinel), "%s/sentinel", f->base);
	f->base_fd = open(f->base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (f->base_fd < 0 || mkdirat(f->base_fd, "layer", 0755) < 0 ||
	    mkdirat(f->base_fd, "sentinel", 0755) < 0)
		return -1;
	f->layer_fd = openat(f->base_fd, "layer", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (f->layer_fd < 0 || write_file_at(f->base_fd, "sentinel/secret", "original", NULL) < 0)
		return -1;
	*state = f;
	return 0;
}

/* The sentinel is untouched and BASE holds nothing but layer/ and sentinel/. */
static void assert_nothing_outside(struct fixture *f)
{
	DIR *d = opendir(f->base);
	assert_non_null(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    !strcmp(de->d_name, "layer") || !strcmp(de->d_name, "sentinel"))
			continue;
		fail_msg("'%s' appeared next to the layer", de->d_name);
	}
	closedir(d);
	d = opendir(f->sentinel);
	assert_non_null(d);
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    !strcmp(de->d_name, "secret"))
			continue;
		fail_msg("'%s' appeared in the sentinel", de->d_name);
	}
	closedir(d);
	struct stat st;
	assert_int_equal(fstatat(f->base_fd, "sentinel/secret", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_nlink, 1);
	char *content = NULL;
	assert_int_equal(read_file_at(f->base_fd, "sentinel/secret", &content, NULL, NULL), 0);
	assert_string_equal(content, "original");
	free(content);
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	assert_nothing_outside(f);
	close(f->layer_fd);
	close(f->base_fd);
	struct hutch_err *err = NULL;
	int ret = remove_tree_at(AT_FDCWD, f->base, &err);
	hutch_err_free(&err);
	free(f->err);
	free(f);
	return ret;
}

/* Unpack a built archive into layer/. 0 or -1 (f->err has the message). */
static int unpack(struct fixture *f, const struct tb *t)
{
	struct mem_source src = {.data = t->buf, .len = t->len};
	struct tar_reader *r = tar_reader_new(mem_source_read, &src);
	struct hutch_err *err = NULL;
	int ret = layer_unpack(r, f->layer_fd, &f->opts, &f->stats, &err);
	free(f->err);
	f->err = NULL;
	if (ret < 0) {
		assert_non_null(err);
		f->err = xstrdup(err->msg);
		f->err_errno = err->errno_;
		hutch_err_free(&err);
	} else {
		assert_null(err);
	}
	tar_reader_free(r);
	return ret;
}

static void expect_unpack_error(struct fixture *f, const struct tb *t, const char *needle1,
				const char *needle2)
{
	assert_int_equal(unpack(f, t), -1);
	if (getenv("SHOW_ERRORS"))
		print_message("  error: %s\n", f->err);
	if (!strstr(f->err, needle1) || (needle2 && !strstr(f->err, needle2)))
		fail_msg("error '%s' lacks '%s'%s%s", f->err, needle1, needle2 ? " / " : "",
			 needle2 ? needle2 : "");
	assert_nothing_outside(f);
}

static struct stat lstat_in(struct fixture *f, const char *path)
{
	struct stat st;
	if (fstatat(f->layer_fd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
		fail_msg("'%s' is missing from the layer: %s", path, strerror(errno));
	return st;
}

static bool exists_in(struct fixture *f, const char *path)
{
	struct stat st;
	return fstatat(f->layer_fd, path, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static void assert_content(struct fixture *f, const char *path, const char *want)
{
	char *content = NULL;
	struct hutch_err *err = NULL;
	if (read_file_at(f->layer_fd, path, &content, NULL, &err) < 0)
		fail_msg("read %s: %s", path, err->msg);
	assert_string_equal(content, want);
	free(content);
}

static void assert_xattr(struct fixture *f, const char *path, const char *name, const char *want)
{
	char full[256], buf[64];
	snprintf(full, sizeof(full), "%s/layer/%s", f->base, path);
	ssize_t n = lgetxattr(full, name, buf, sizeof(buf) - 1);
	if (n < 0)
		fail_msg("xattr %s on %s: %s", name, path, strerror(errno));
	buf[n] = '\0';
	assert_string_equal(buf, want);
}

static void assert_no_xattr(struct fixture *f, const char *path, const char *name)
{
	char full[256], buf[64];
	snprintf(full, sizeof(full), "%s/layer/%s", f->base, path);
	assert_int_equal(lgetxattr(full, name, buf, sizeof(buf)), -1);
	assert_int_equal(errno, ENODATA);
}

/* ---- metadata ----------------------------------------------------------------------- */

static void test_basic_tree(void **state)
{
	struct fixture *f = *state;
	struct tb t = {0};
	tb_dir(&t, "./", 0755);
	struct tb_hdr h = tb_defaults("./etc/", '5', 0755);
	h.mtime = 1111111111;
	tb_entry(&t, h, NULL, 0);
	h = tb_defaults("./etc/passwd", '0', 0644);
	h.uid = 1234;
	h.gid = 5678;
	h.mtime = 1500000000;
	tb_entry(&t, h, "root:x:0:0::/root:/bin/sh\n", 26);
	h = tb_defaults("./usr/bin/su", '0', 04755); /* no entries for usr/, usr/bin/ */
	h.uid = 0;
	h.gid = 0;
	tb_entry(&t, h, "#!su", 4);
	h = tb_defaults("./usr/bin/wall", '0', 02755);
	h.gid = 5;
	tb_entry(&t, h, "#!wall", 6);
	h = tb_defaults("./tmp/", '5', 01777);
	tb_entry(&t, h, NULL, 0);
	h = tb_defaults("./link", '2', 0777);
	h.linkname = "etc/passwd";
	h.mtime = 1300000000;
	h.uid = 42;
	tb_entry(&t, h, NULL, 0);
	tb_file(&t, "./empty", "", 0600);
	tb_end(&t);
	assert_int_equal(unpack(f, &t), 0);

	struct stat st = lstat_in(f, "etc");
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mtim.tv_sec, 1111111111); /* set after passwd was written */
	st = lstat_in(f, "etc/passwd");
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_int_equal(st.st_uid, 1234);
	assert_int_equal(st.st_gid, 5678);
	assert_int_equal(st.st_mtim.tv_sec, 1500000000);
	assert_content(f, "etc/passwd", "root:x:0:0::/root:/bin/sh\n");
	st = lstat_in(f, "usr/bin");
	assert_true(S_ISDIR(st.st_mode)); /* made for the entry below it */
	assert_int_equal(st.st_mode & 07777, 0755);
	st = lstat_in(f, "usr/bin/su");
	assert_int_equal(st.st_mode & 07777, 04755);
	st = lstat_in(f, "usr/bin/wall");
	assert_int_equal(st.st_mode & 07777, 02755);
	assert_int_equal(st.st_gid, 5);
	st = lstat_in(f, "tmp");
	assert_int_equal(st.st_mode & 07777, 01777);
	st = lstat_in(f, "link");
	assert_true(S_ISLNK(st.st_mode));
	assert_int_equal(st.st_uid, 42);
	assert_int_equal(st.st_mtim.tv_sec, 1300000000);
	char target[64] = {0};
	assert_int_equal(readlinkat(f->layer_fd, "link", target, sizeof(target) - 1), 10);
	assert_string_equal(target, "etc/passwd");
	st = lstat_in(f, "empty");
	assert_int_equal(st.st_size, 0);

	assert_int_equal(f->stats.entries, 8);
	assert_int_equal(f->stats.bytes, 26 + 4 + 6);
	tb_free(&t);
}

static void test_setuid_survives_chown(void **state)
{
	/* chown clears setuid/setgid, so the mode must be set after it. */
	struct fixture *f = *state;
	struct tb t = {0};
	struct tb_hdr h = tb_defaults("sudo", '0', 06755);
	h.uid = 1000;
	h.gid = 1000;
	tb_entry(&t, h, "bin", 3);
	tb_end(&t);
	assert_int_equal(unpack(f, &t), 0);
	struct stat st = lstat_in(f, "sudo");
	assert_int_equal(st.st_uid, 1000);
	assert_int_equal(st.st_mode & 07777, 06755);
	tb_free(&t);
}

static void test_readonly_dir_and_mtimes(void **state)
{
	/* A 0555 directory still takes the entries after it, and ends 0555
	 * with its own mtime, not the time its children were written. */
	struct fixture *f = *state;
	struct tb t = {0};
	struct tb_hdr h = tb_defaults("ro/", '5', 0555);
	h.mtime = 1000000000;
	tb_entry(&t, h, NULL, 0);
	h = tb_defaults("ro/sub/", '5', 0500);
	h.mtime = 1000000001;
	tb_entry(&t, h, NULL, 0);
	tb_file(&t, "ro/sub/file", "inside", 0444);
	tb_file(&t, "ro/file2", "also", 0400);
	h = tb_defaults("nanos", '0', 0644);
	struct tb rec = {0};
	tb_pax_str(&rec, "mtime", "1600000000.5");
	tb_pax(&t, 'x', &rec);
	tb_entry(&t, h, NULL, 0);
	tb_end(&t);
	assert_int_equal(unpack(f, &t), 0);
	struct stat st = lstat_in(f, "ro");
	assert_int_equal(st.st_mode & 07777, 0555);
	assert_int_equal(st.st_mtim.tv_sec, 1000000000);
	st = lstat_in(f, "ro/sub");
	assert_int_equal(st.st_mode & 07777, 0500);
	assert_int_equal(st.st_mtim.tv_sec, 1000000001);
	assert_content(f, "ro/sub/file", "inside");
	assert_content(f, "ro/file2", "also");
	st = lstat_in(f, "nanos");
	assert_int_equal(st.st_mtim.tv_sec, 1600000000);
	assert_int_equal(st.st_mtim.tv_nsec, 500000000);
	/* remove_tree_at needs to get in again */
	assert_int_equal(fchmodat(f->layer_fd, "ro", 0755, 0), 0);
	assert_int_equal(fchmodat(f->layer_fd, "ro/sub", 0755, 0), 0);
	tb_free(&rec);
	tb_free(&t);
}

static void test_later_entries_override(void **state)
{
	struct fixture *f = *state;
	struct tb t = {0};
	tb_file(&t, "a", "first", 0644);
	tb_file(&t, "a", "second", 0600);
	tb_file(&t, "b", "file", 0644);
	tb_symlink(&t, "b", "a"); /* file -> symlink */
	tb_symlink(&t, "c", "/nowhere");
	tb_dir(&t, "c", 0700); /* symlink -> directory */
	tb_dir(&t, "d", 0700);
	tb_dir(&t, "d", 0750); /* directory again: only metadata */
	tb_file(&t, "d/kept", "k", 0644);
	tb_dir(&t, "e", 0755);
	tb_file(&t, "e", "empty dir replaced", 0644);
	tb_file(&t, "orig", "shared", 0644);
	tb_hardlink(&t, "alias", "orig");
	tb_file(&t, "alias", "new", 0644); /* must not write through to orig */
	tb_end(&t);
	assert_int_equal(unpack(f, &t), 0);
	assert_content(f, "a", "second");
	assert_int_equal(lstat_in(f, "a").st_mode & 07777, 0600);
	assert_true(S_ISLNK(lstat_in(f, "b").st_mode));
	assert_true(S_ISDIR(lstat_in(f, "c").st_mode));
	assert_int_equal(lstat_in(f, "d").st_mode & 07777, 0750);
	assert_content(f, "d/kept", "k");
	assert_content(f, "e", "empty dir replaced");
	assert_content(f, "orig", "shared");
	assert_content(f, "alias", "new");
	assert_int_equal(lstat_in(f, "orig").st_nlink, 1);
	tb_free(&t);

	/* but a directory with something in it is not silently dropped */
	tb_dir(&t, "full", 0755);
	tb_file(&t, "full/x", "x", 0644);
	tb_file(&t, "full", "nope", 0644);
	tb_end(&t);
	expect_unpack_error(f, &t, "'full'", "non-empty directory");
	tb_free(&t);
}

static void test_hardlinks(void **state)
{
	struct fixture *f = *state;
	struct tb t = {0};
	tb_file(&t, "usr/bin/perl5.36", "perl", 0755);
	tb_hardlink(&t, "usr/bin/perl", "usr/bin/perl5.36");
	tb_symlink(&t, "sym", "/etc/shadow");
	tb_hardlink(&t, "sym-link", "sym");		 /* the symlink itself is linked */
	tb_hardlink(&t, "usr/bin/perl", "usr/bin/perl"); /* itself: no-op */
	tb_end(&t);
	assert_int_equal(unpack(f, &t), 0);
	struct stat a = lstat_in(f, "usr/bin/perl5.36"), b = lstat_in(f, "usr/bin/perl");
	assert_int_equal(a.st_ino, b.st_ino);
	assert_int_equal(a.st_nlink, 2);
	struct stat s1 = lstat_in(f, "sym"), s2 = lstat_in(f, "sym-link");
	assert_true(S_ISLNK(s2.st_mode));
	assert_int_equal(s1.st_ino, s2.st_ino);
	tb_free(&t);

	tb_hardlink(&t, "dangling", "not/there");
	tb_end(&t);
	expect_unpack_error(f, &t, "'dangling'", "hardlink target 'not/there' does not exist");
	tb_free(&t);

	tb_dir(&t, "adir", 0755);
	tb_hardlink(&t, "dirlink", "adir");
	tb_end(&t);
	expect_unpack_error(f, &t, "'dirlink'", "is a directory");
	tb_free(&t);
}

static void test_devices_and_fifos(void **state)
{
	struct fixture *f = *state;
	struct tb t = {0};
	struct tb_hdr h = tb_defaults("dev/null", '3', 0666);
	h.devmajor = 1;
	h.devminor = 3;
	tb_entry(&t, h, NULL, 0);
	h = tb_defaults("dev/loop9", '4', 0660);
	h.devmajor = 7;
	h.devminor = 9;
	h.gid = 6;
	tb_entry(&t, h, NULL, 0);
	tb_entry(&t, tb_defaults("run/initctl", '6', 0600), NULL, 0);
	tb_end(&t);
	assert_int_equal(unpack(f, &t), 0);
	struct stat st = lstat_in(f, "dev/null");
	assert_true(S_ISCHR(st.st_mode));
	assert_int_equal(st.st_rdev, makedev(1, 3));
	assert_int_equal(st.st_mode & 07777, 0666);
	st = lstat_in(f, "dev/loop9");
	assert_true(S_ISBLK(st.st_mode));
	assert_int_equal(st.st_rdev, makedev(7, 9));
	assert_int_equal(st.st_gid, 6);
	assert_true(S_ISFIFO(lstat_in(f, "run/initctl").st_mode));
	assert_int_equal(f->stats.skipped_devices, 0);

	/* rootless: devices are skipped and counted, fifos still made */
	f->opts.rootless = true;
	assert_int_equal(remove_tree_at(f->layer_fd, "dev", NULL), 0);
	assert_int_equal(remove_tree_at(f->layer_fd, "run", NULL), 0);
	assert_int_equal(unpack(f, &t), 0);
	assert_false(exists_in(f, "dev/null"));
	assert_false(exists_in(f, "dev/loop9"));
	assert_true(S_ISFIFO(lstat_in(f, "run/initctl").st_mode));
	assert_int_equal(f->stats.skipped_devices, 2);
	tb_free(&t);
}

static void test_xattrs(void **state)
{
	struct fixture *f = *state;
	struct tb t = {0}, rec = {0};
	tb_pax_str(&rec, "SCHILY.xattr.user.color", "blue");
	tb_pax_str(&rec, "SCHILY.xattr.trusted.note", "root-only");
	/* overlayfs's own state must never come from an image */
	tb_pax_str(&rec, "SCHILY.xattr.trusted.overlay.redirect", "/etc");
	tb_pax_str(&rec, "SCHILY.xattr.user.overlay.opaque", "y");
	tb_pax(&t, 'x', &rec);
	tb_file(&t, "tagged", "t", 0644);
	tb_pax(&t, 'x', &rec);
	tb_dir(&t, "tagged-dir", 0755);
	tb_free(&rec);
	tb_pax_str(&rec, "SCHILY.xattr.trusted.sym", "on a symlink");
	tb_pax_str(&rec, "SCHILY.xattr.user.sym", "user.* is not allowed on symlinks");
	tb_pax(&t, 'x', &rec);
	tb_symlink(&t, "tagged-link", "tagged");
	tb_end(&t);
	assert_int_equal(unpack(f, &t), 0);
	assert_xattr(f, "tagged", "user.color", "blue");
	assert_xattr(f, "tagged", "trusted.note", "root-only");
	assert_no_xattr(f, "tagged", "trusted.overlay.redirect");
	assert_no_xattr(f, "tagged", "user.overlay.opaque");
	assert_xattr(f, "tagged-dir", "user.color", "blue");
	assert_no_xattr(f, "tagged-dir", "user.overlay.opaque");
	assert_xattr(f, "tagged-link", "trusted.sym", "on a symlink");
	tb_free(&rec);
	tb_free(&t);
}

static void test_file_capabilities(void **state)
{
	/* ping's cap_net_raw: chown drops security.capability, so it must be
	 * set after the owner, and survive the mode change. */
	struct fixture *f = *state;
	static const char caps[20] = {0x01, 0x00, 0x00, 0x02, 0x00, 0x20}; /* v2, eff, NET_RAW */
	struct tb t = {0}, rec = {0};
	tb_pax_record(&rec, "SCHILY.xattr.security.capability", caps, sizeof(caps));
	tb_pax(&t, 'x', &rec);
	struct tb_hdr h = tb_defaults("bin/ping", '0', 0755);
	h.uid = 0;
	h.gid = 0;
	tb_entry(&t, h, "ping", 4);
	tb_end(&t);
	assert_int_equal(unpack(f, &t), 0);
	char full[256], got[64];
	snprintf(full, sizeof(full), "%s/layer/bin/ping", f->base);
	assert_int_equal(lgetxattr(full, "security.capability", got, sizeof(got)), sizeof(caps));
	assert_memory_equal(got, caps, sizeof(caps));
	assert_int_equal(lstat_in(f, "bin/ping").st_mode & 07777, 0755);
	tb_free(&rec);
	tb_free(&t);
}

static void test_long_names(void **state)
{
	struct fixture *f = *state;
	char gnu[400], pax[400];
	/* 3 directories of 90 characters and a leaf: 280+ characters */
	char seg[91];
	memset(seg, 'a', 90);
	seg[90] = '\0';
	snprintf(gnu, sizeof(gnu), "%s/%s/%s/gnu-leaf", seg, seg, seg);
	snprintf(pax, sizeof(pax), "%s/%s/%s/pax-leaf", seg, seg, seg);
	struct tb t = {0}, rec = {0};
	tb_gnu_long(&t, 'L', gnu);
	tb_file(&t, "ignored-short-name", "gnu", 0644);
	tb_pax_str(&rec, "path", pax);
	tb_pax(&t, 'x', &rec);
	tb_file(&t, "ignored-too", "pax", 0644);
	tb_free(&rec);
	tb_pax_str(&rec, "linkpath", gnu);
	tb_pax(&t, 'x', &rec);
	tb_symlink(&t, "long-link", "short");
	tb_end(&t);
	assert_int_equal(unpack(f, &t), 0);
	assert_content(f, gnu, "gnu");
	assert_content(f, pax, "pax");
	char target[400] = {0};
	assert_int_equal(readlinkat(f->layer_fd, "long-link", target, sizeof(target) - 1),
			 (ssize_t)strlen(gnu));
	assert_string_equal(target, gnu);
	assert_false(exists_in(f, "ignored-short-name"));
	tb_free(&rec);
	tb_free(&t);
}

/* ---- escapes ---------------------------------------------------------------------- */

static void test_dotdot_refused(void **state)
{
	struct fixture *f = *state;
	const char *names[] = {"../x", "a/../../x", "./../sentinel/pwned",
			       "a/..", "..",	    "ok/../../../../../../tmp/pwned"};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		struct tb t = {0};
		tb_file(&t, names[i], "pwned", 0644);
		tb_end(&t);
		_cleanup_free_ char *quoted = xasprintf("'%s'", names[i]);
		expect_unpack_error(f, &t, quoted, "'..' component");
		tb_free(&t);
	}
	/* the same name as a directory, a symlink and a hardlink */
	struct tb t = {0};
	tb_dir(&t, "../up", 0755);
	tb_end(&t);
	expect_unpack_error(f, &t, "'..'", NULL);
	tb_free(&t);
	tb_symlink(&t, "../s", "x");
	tb_end(&t);
	expect_unpack_error(f, &t, "'..'", NULL);
	tb_free(&t);
}

static void test_absolute_paths_refused(void **state)
{
	struct fixture *f = *state;
	const char *names[] = {"/abs/file", "//x//y/./z/", "/./dot/./slash"};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		struct tb t = {0};
		tb_file(&t, names[i], "meant for the host", 0644);
		tb_end(&t);
		expect_unpack_error(f, &t, names[i], "absolute path");
		tb_free(&t);
	}
	/* relative paths are normalised, as before */
	struct tb t = {0};
	tb_file(&t, "x//y/./z/", "normalised", 0644);
	tb_end(&t);
	assert_int_equal(unpack(f, &t), 0);
	assert_content(f, "x/y/z", "normalised");
	tb_free(&t);
}

static void test_symlinks_resolve_inside_the_layer(void **state)
{
	/* As in Docker and containerd, a symlink is followed with the layer dir
	 * as "/": one aimed out of the layer (absolute, or with ".." enough to
	 * climb out) leads to the layer's own copy of its target, and where the
	 * layer has no such directory the entry is refused. Never out. */
	struct fixture *f = *state;
	struct {
		const char *link, *target, *through, *lands;
	} cases[] = {
	    {"evil", "/", "evil/etc/passwd", "etc/passwd"},
	    {"evil", "../sentinel", "evil/pwned", "sentinel/pwned"},
	    {"a/b/up", "../../../sentinel", "a/b/up/pwned", "sentinel/pwned"},
	    {"dots", "./../sentinel", "dots/deeper/pwned", "sentinel/deeper/pwned"},
	    {"abs", "/sentinel/", "abs/pwned", "sentinel/pwned"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		/* the layer has no "sentinel" dir: refused (except for "/") */
		struct tb t = {0};
		tb_symlink(&t, cases[i].link, cases[i].target);
		tb_file(&t, cases[i].through, "pwned", 0644);
		tb_end(&t);
		if (i == 0) {
			assert_int_equal(unpack(f, &t), 0);
			assert_content(f, cases[i].lands, "pwned");
		} else {
			expect_unpack_error(
			    f, &t, "is a symlink to a directory that is not in the layer", NULL);
			_cleanup_free_ char *quoted = xasprintf("'%s'", cases[i].through);
			assert_non_null(strstr(f->err, quoted));
		}
		tb_free(&t);
		assert_nothing_outside(f);
		assert_int_equal(remove_tree_at(f->layer_fd, "evil", NULL), 0);
		assert_int_equal(remove_tree_at(f->layer_fd, "etc", NULL), 0);

		/* with one, everything lands in it: a file, a dir, a symlink, a hardlink */
		char dir[128], sub[128], hard[128];
		snprintf(dir, sizeof(dir), "%s/newdir", cases[i].link);
		snprintf(sub, sizeof(sub), "%s/newlink", cases[i].link);
		snprintf(hard, sizeof(hard), "%s/newhard", cases[i].link);
		tb_dir(&t, "sentinel/", 0755);
		tb_dir(&t, "sentinel/deeper/", 0755);
		tb_file(&t, "sentinel/secret", "the layer's own", 0644);
		tb_symlink(&t, cases[i].link, cases[i].target);
		tb_file(&t, cases[i].through, "pwned", 0644);
		tb_dir(&t, dir, 0755);
		tb_symlink(&t, sub, "/etc");
		tb_hardlink(&t, hard, "sentinel/secret");
		tb_end(&t);
		assert_int_equal(unpack(f, &t), 0);
		assert_content(f, cases[i].lands, "pwned");
		const char *in = i == 0 ? "" : "sentinel/";
		_cleanup_free_ char *d = xasprintf("%snewdir", in), *l = xasprintf("%snewlink", in),
				    *h = xasprintf("%snewhard", in);
		assert_true(S_ISDIR(lstat_in(f, d).st_mode));
		assert_true(S_ISLNK(lstat_in(f, l).st_mode));
		assert_int_equal(lstat_in(f, h).st_ino, lstat_in(f, "sentinel/secret").st_ino);
		assert_true(S_ISLNK(lstat_in(f, cases[i].link).st_mode));
		tb_free(&t);
		assert_nothing_outside(f);
		const char *tops[] = {"evil", "a",	"dots",	   "abs",    "sentinel",
				      "etc",  "newdir", "newlink", "newhard"};
		for (size_t k = 0; k < ARRAY_SIZE(tops); k++)
			assert_int_equal(remove_tree_at(f->layer_fd, tops[k], NULL), 0);
	}
	/* a loop is refused, and says so */
	struct tb t = {0};
	tb_symlink(&t, "loop", "loop");
	tb_file(&t, "loop/x", "x", 0644);
	tb_end(&t);
	expect_unpack_error(f, &t, "'loop/x'", "symlink loop");
	tb_free(&t);
}

static void test_symlinks_inside_are_followed(void **state)
{
	/* Directory symlinks that stay in the layer (Debian's /lib -> usr/lib)
	 * are fine to go through. */
	struct fixture *f = *state;
	struct tb t = {0};
	tb_dir(&t, "usr/lib/", 0755);
	tb_symlink(&t, "lib", "usr/lib");
	tb_file(&t, "lib/libc.so.6", "libc", 0755);
	tb_symlink(&t, "lib64", "./usr/../usr/lib");
	tb_file(&t, "lib64/ld.so", "ld", 0755);
	tb_end(&t);
	assert_int_equal(unpack(f, &t), 0);
	assert_content(f, "usr/lib/libc.so.6", "libc");
	assert_content(f, "usr/lib/ld.so", "ld");
	assert_true(S_ISLNK(lstat_in(f, "lib").st_mode));
	tb_free(&t);
}

static void test_symlink_text_is_stored_never_followed(void **state)
{
	/* Any symlink text may be stored; a later entry at the same name
	 * replaces the symlink instead of writing where it points. */
	struct fixture *f = *state;
	_cleanup_free_ char *secret = xasprintf("%s/secret", f->sentinel);
	struct tb t = {0};
	tb_symlink(&t, "s1", "../../../../../../etc/shadow");
	tb_symlink(&t, "s2", "../sentinel/secret");
	tb_file(&t, "s2", "replaced", 0644);
	tb_symlink(&t, "s3", secret);
	tb_file(&t, "s3", "replaced", 0644);
	tb_symlink(&t, "s4", "../sentinel");
	tb_dir(&t, "s4", 0755);
	tb_symlink(&t, "s5", secret);
	tb_hardlink(&t, "s5", "s2");
	tb_end(&t);
	assert_int_equal(unpack(f, &t), 0);
	char target[128] = {0};
	readlinkat(f->layer_fd, "s1", target, sizeof(target) - 1);
	assert_string_equal(target, "../../../../../../etc/shadow");
	assert_content(f, "s2", "replaced");
	assert_content(f, "s3", "replaced");
	assert_true(S_ISDIR(lstat_in(f, "s4").st_mode));
	assert_true(S_ISREG(lstat_in(f, "s5").st_mode));
	tb_free(&t);
}

static void test_symlink_as_root_refused(void **state)
{
	/* CVE-2021-29136: a symlink entry naming the root itself would turn the
	 * layer directory into a link to anywhere. */
	struct fixture *f = *state;
	const char *names[] = {"/.", ".", "./", "/", "//./"};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		struct tb t = {0};
		tb_symlink(&t, names[i], "/");
		tb_file(&t, "etc/passwd", "pwned", 0644);
		tb_end(&t);
		expect_unpack_error(f, &t, "CVE-2021-29136", NULL);
		tb_free(&t);
	}
	struct tb t = {0};
	tb_file(&t, "./", "a file as the root", 0644);
	tb_end(&t);
	expect_unpack_error(f, &t, "in place of the layer root", NULL);
	tb_free(&t);
	tb_hardlink(&t, "/.", "x");
	tb_end(&t);
	expect_unpack_error(f, &t, "in place of the layer root", NULL);
	tb_free(&t);
	struct stat st;
	assert_int_equal(fstat(f->layer_fd, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
}

static void test_hardlink_escapes(void **state)
{
	struct fixture *f = *state;
	struct tb t = {0};
	tb_hardlink(&t, "passwd", "../../etc/passwd");
	tb_end(&t);
	expect_unpack_error(f, &t, "'passwd'", "hardlink target '../../etc/passwd' has a '..'");
	tb_free(&t);

	tb_hardlink(&t, "secret", "../sentinel/secret");
	tb_end(&t);
	expect_unpack_error(f, &t, "'..'", NULL);
	tb_free(&t);

	/* an absolute target is refused outright */
	tb_hardlink(&t, "passwd", "/etc/passwd");
	tb_end(&t);
	expect_unpack_error(f, &t, "'passwd'", "hardlink to the absolute path");
	tb_free(&t);

	/* through a symlinked directory, relative or absolute: resolved in the
	 * layer, so it links the layer's file of that name, or there is none */
	const char *dirs[] = {"../sentinel", f->sentinel, "/"};
	const char *targets[] = {"d/secret", "d/secret", "d/etc/passwd"};
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		tb_symlink(&t, "d", dirs[i]);
		tb_hardlink(&t, "stolen", targets[i]);
		tb_end(&t);
		expect_unpack_error(f, &t, "'stolen'", "does not exist");
		assert_false(exists_in(f, "stolen"));
		tb_free(&t);
	}
	tb_dir(&t, "etc/", 0755);
	tb_file(&t, "etc/passwd", "the layer's", 0644);
	tb_symlink(&t, "d", "/");
	tb_hardlink(&t, "stolen", "d/etc/passwd");
	tb_end(&t);
	assert_int_equal(unpack(f, &t), 0);
	assert_int_equal(lstat_in(f, "stolen").st_ino, lstat_in(f, "etc/passwd").st_ino);
	tb_free(&t);
}

static void test_file_as_parent(void **state)
{
	struct fixture *f = *state;
	struct tb t = {0};
	tb_file(&t, "plain", "p", 0644);
	tb_file(&t, "plain/child", "c", 0644);
	tb_end(&t);
	expect_unpack_error(f, &t, "'plain/child'", "is not a directory");
	tb_free(&t);
}

static void test_truncated_layer(void **state)
{
	struct fixture *f = *state;
	struct tb t = {0};
	char data[10000];
	memset(data, 'x', sizeof(data));
	tb_file(&t, "fine", "ok", 0644);
	tb_entry(&t, tb_defaults("usr/lib/big.so", '0', 0644), data, sizeof(data));
	t.len -= 6000;
	expect_unpack_error(f, &t, "'usr/lib/big.so'", "truncated");
	tb_free(&t);
}

static void test_names_escaped_in_errors(void **state)
{
	struct fixture *f = *state;
	struct tb t = {0};
	tb_file(&t, "../\x1b]0;owned\x07", "", 0644);
	tb_end(&t);
	assert_int_equal(unpack(f, &t), -1);
	assert_null(strchr(f->err, '\x1b'));
	assert_null(strchr(f->err, '\x07'));
	assert_non_null(strstr(f->err, "\\x1b]0;owned\\x07"));
	tb_free(&t);
}

/* ---- whiteouts ---------------------------------------------------------------------- */

static void build_whiteouts(struct tb *t)
{
	tb_dir(t, "etc/", 0755);
	tb_file(t, "etc/.wh.motd", "", 0644);
	tb_dir(t, "var/", 0755);
	tb_file(t, "var/.wh..wh..opq", "", 0644);
	tb_file(t, "var/new", "n", 0644);
	tb_file(t, "var/.wh.old", "", 0644); /* in an opaque dir as well */
	tb_file(t, ".wh.top", "", 0644);
	tb_dir(t, ".wh..wh.plnk/", 0700); /* aufs bookkeeping */
	tb_end(t);
}

static void test_whiteouts_rootful(void **state)
{
	struct fixture *f = *state;
	f->opts.convert_whiteouts = true;
	struct tb t = {0};
	build_whiteouts(&t);
	assert_int_equal(unpack(f, &t), 0);
	const char *wh[] = {"etc/motd", "var/old", "top"};
	for (size_t i = 0; i < ARRAY_SIZE(wh); i++) {
		struct stat st = lstat_in(f, wh[i]);
		assert_true(S_ISCHR(st.st_mode));
		assert_int_equal(st.st_rdev, makedev(0, 0));
	}
	assert_xattr(f, "var", "trusted.overlay.opaque", "y");
	assert_no_xattr(f, "etc", "trusted.overlay.opaque");
	assert_false(exists_in(f, "etc/.wh.motd"));
	assert_false(exists_in(f, "var/.wh..wh..opq"));
	assert_false(exists_in(f, ".wh..wh.plnk"));
	assert_content(f, "var/new", "n");
	tb_free(&t);

	tb_file(&t, "a/.wh...", "", 0644);
	tb_end(&t);
	expect_unpack_error(f, &t, "whiteout for an invalid name", NULL);
	tb_free(&t);
}

static void test_whiteouts_rootless(void **state)
{
	struct fixture *f = *state;
	f->opts.convert_whiteouts = true;
	f->opts.rootless = true;
	struct tb t = {0};
	build_whiteouts(&t);
	assert_int_equal(unpack(f, &t), 0);
	/* Whiteouts are 0:0 devices whenever the kernel allows them (it does
	 * without CAP_MKNOD); opaque directories use the user.* namespace. */
	const char *wh[] = {"etc/motd", "var/old", "top"};
	for (size_t i = 0; i < ARRAY_SIZE(wh); i++) {
		struct stat st = lstat_in(f, wh[i]);
		assert_true(S_ISCHR(st.st_mode));
		assert_int_equal(st.st_rdev, makedev(0, 0));
	}
	assert_xattr(f, "var", "user.overlay.opaque", "y");
	assert_no_xattr(f, "var", "trusted.overlay.opaque");
	tb_free(&t);
}

static void test_whiteouts_kept_when_not_converting(void **state)
{
	struct fixture *f = *state;
	struct tb t = {0};
	build_whiteouts(&t);
	assert_int_equal(unpack(f, &t), 0);
	assert_true(S_ISREG(lstat_in(f, "etc/.wh.motd").st_mode));
	assert_true(S_ISREG(lstat_in(f, "var/.wh..wh..opq").st_mode));
	assert_false(exists_in(f, "etc/motd"));
	tb_free(&t);
}

/* ---- compressed streams ----------------------------------------------------------- */

static void sha_hex(const void *p, size_t n, char out[65])
{
	struct sha256_ctx c;
	uint8_t d[32];
	sha256_init(&c);
	sha256_update(&c, p, n);
	sha256_final(&c, d);
	sha256_hex(d, out);
}

static void gzip_bytes(const void *in, size_t n, struct tb *out)
{
	z_stream z = {0};
	assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
	size_t cap = deflateBound(&z, n) + 64;
	uint8_t *buf = malloc(cap);
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)n;
	z.next_out = buf;
	z.avail_out = (uInt)cap;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	tb_put(out, buf, cap - z.avail_out);
	deflateEnd(&z);
	free(buf);
}

static void zstd_bytes(const void *in, size_t n, struct tb *out)
{
	/* with a content checksum, as the zstd tool writes by default */
	size_t cap = ZSTD_compressBound(n);
	uint8_t *buf = malloc(cap);
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 3);
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
	size_t got = ZSTD_compress2(cctx, buf, cap, in, n);
	ZSTD_freeCCtx(cctx);
	assert_false(ZSTD_isError(got));
	tb_put(out, buf, got);
	free(buf);
}

static int memfd_with(const struct tb *t)
{
	int fd = memfd_create("layer", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, t->buf, t->len), 0);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

struct stream_ctx {
	struct layer_stream *ls;
	struct hutch_err **err;
};

static ssize_t stream_read(void *ctx, void *buf, size_t len)
{
	struct stream_ctx *c = ctx;
	ssize_t n = layer_stream_read(c->ls, buf, len, c->err);
	if (n < 0)
		errno = EIO;
	return n;
}

/* stream -> tar -> unpack -> digests. 0 or -1 with f->err. */
static int unpack_stream(struct fixture *f, const struct tb *blob, const char *want_comp,
			 char comp_hex[65], char plain_hex[65])
{
	_cleanup_close_ int fd = memfd_with(blob);
	struct hutch_err *err = NULL;
	struct layer_stream *ls = NULL;
	int ret = layer_stream_open(fd, &ls, &err);
	if (ret == 0) {
		assert_string_equal(layer_stream_compression(ls), want_comp);
		struct stream_ctx c = {ls, &err};
		struct tar_reader *r = tar_reader_new(stream_read, &c);
		ret = layer_unpack(r, f->layer_fd, &f->opts, &f->stats, &err);
		if (ret < 0 && tar_reader_failed(r))
			layer_stream_check_rest(ls, &err); /* as the store does */
		if (ret == 0)
			ret = layer_stream_finish(ls, comp_hex, plain_hex, &err);
		tar_reader_free(r);
	}
	layer_stream_free(ls);
	free(f->err);
	f->err = err ? xstrdup(err->msg) : NULL;
	hutch_err_free(&err);
	return ret;
}

static void build_payload(struct tb *t, size_t big)
{
	char *data = malloc(big);
	for (size_t i = 0; i < big; i++)
		data[i] = (char)((i * 2654435761u) >> 13); /* compressible enough, not trivially */
	tb_dir(t, "./", 0755);
	tb_dir(t, "./data/", 0755);
	tb_entry(t, tb_defaults("./data/big.bin", '0', 0644), data, big);
	tb_file(t, "./data/small.txt", "small\n", 0644);
	tb_end(t);
	free(data);
}

static void check_payload(struct fixture *f, size_t big)
{
	struct stat st = lstat_in(f, "data/big.bin");
	assert_int_equal(st.st_size, (off_t)big);
	char *content = NULL;
	size_t len = 0;
	assert_int_equal(read_file_at(f->layer_fd, "data/big.bin", &content, &len, NULL), 0);
	for (size_t i = 0; i < big; i++)
		if (content[i] != (char)((i * 2654435761u) >> 13))
			fail_msg("big.bin differs at byte %zu", i);
	free(content);
	assert_content(f, "data/small.txt", "small\n");
}

static void test_stream_roundtrips(void **state)
{
	struct fixture *f = *state;
	const size_t big = 3 * 1024 * 1024 + 5;
	struct tb tar = {0};
	build_payload(&tar, big);
	char want_plain[65];
	sha_hex(tar.buf, tar.len, want_plain);

	struct {
		const char *comp;
		void (*compress)(const void *, size_t, struct tb *);
	} kinds[] = {{"none", NULL}, {"gzip", gzip_bytes}, {"zstd", zstd_bytes}};
	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
		struct tb blob = {0};
		if (kinds[i].compress)
			kinds[i].compress(tar.buf, tar.len, &blob);
		else
			tb_put(&blob, tar.buf, tar.len);
		char want_comp[65], comp[65], plain[65];
		sha_hex(blob.buf, blob.len, want_comp);
		if (unpack_stream(f, &blob, kinds[i].comp, comp, plain) < 0)
			fail_msg("%s: %s", kinds[i].comp, f->err);
		assert_string_equal(comp, want_comp);
		assert_string_equal(plain, want_plain);
		check_payload(f, big);
		assert_int_equal(remove_tree_at(f->layer_fd, "data", NULL), 0);
		tb_free(&blob);
	}
	tb_free(&tar);
}

static void test_gzip_members_and_padding(void **state)
{
	struct fixture *f = *state;
	const size_t big = 200000;
	struct tb tar = {0};
	build_payload(&tar, big);
	char want_plain[65], comp[65], plain[65];
	sha_hex(tar.buf, tar.len, want_plain);

	/* `cat a.gz b.gz`: one stream of two members, split mid-file */
	struct tb blob = {0};
	gzip_bytes(tar.buf, 70001, &blob);
	gzip_bytes(tar.buf + 70001, tar.len - 70001, &blob);
	assert_int_equal(unpack_stream(f, &blob, "gzip", comp, plain), 0);
	assert_string_equal(plain, want_plain);
	check_payload(f, big);
	assert_int_equal(remove_tree_at(f->layer_fd, "data", NULL), 0);

	/* zero padding after the end is tolerated, and hashed */
	tb_zeros(&blob, 1000);
	char want_comp[65];
	sha_hex(blob.buf, blob.len, want_comp);
	assert_int_equal(unpack_stream(f, &blob, "gzip", comp, plain), 0);
	assert_string_equal(comp, want_comp);
	assert_string_equal(plain, want_plain);
	assert_int_equal(remove_tree_at(f->layer_fd, "data", NULL), 0);

	/* anything else after it is not */
	tb_put(&blob, "junk", 4);
	assert_int_equal(unpack_stream(f, &blob, "gzip", comp, plain), -1);
	assert_non_null(strstr(f->err, "unexpected bytes after its end"));
	assert_int_equal(remove_tree_at(f->layer_fd, "data", NULL), 0);
	tb_free(&blob);
	tb_free(&tar);
}

static void test_corrupt_streams(void **state)
{
	struct fixture *f = *state;
	struct tb tar = {0};
	build_payload(&tar, 300000);
	char comp[65], plain[65];

	struct tb blob = {0};
	gzip_bytes(tar.buf, tar.len, &blob);
	size_t full = blob.len;
	blob.len = full / 2;
	assert_int_equal(unpack_stream(f, &blob, "gzip", comp, plain), -1);
	assert_non_null(strstr(f->err, "gzip stream is truncated"));
	assert_int_equal(remove_tree_at(f->layer_fd, "data", NULL), 0);
	blob.len = full - 4; /* the length field of the trailer is missing */
	assert_int_equal(unpack_stream(f, &blob, "gzip", comp, plain), -1);
	assert_non_null(strstr(f->err, "truncated"));
	assert_int_equal(remove_tree_at(f->layer_fd, "data", NULL), 0);
	blob.len = full;
	blob.buf[full - 6] ^= 0xff; /* CRC */
	assert_int_equal(unpack_stream(f, &blob, "gzip", comp, plain), -1);
	assert_non_null(strstr(f->err, "gzip data is corrupt"));
	assert_int_equal(remove_tree_at(f->layer_fd, "data", NULL), 0);
	tb_free(&blob);

	zstd_bytes(tar.buf, tar.len, &blob);
	full = blob.len;
	blob.len = full - 10;
	assert_int_equal(unpack_stream(f, &blob, "zstd", comp, plain), -1);
	assert_non_null(strstr(f->err, "zstd stream is truncated"));
	assert_int_equal(remove_tree_at(f->layer_fd, "data", NULL), 0);
	blob.len = full;
	blob.buf[full / 2] ^= 0x55;
	blob.buf[full / 2 + 1] ^= 0x55;
	assert_int_equal(unpack_stream(f, &blob, "zstd", comp, plain), -1);
	assert_non_null(strstr(f->err, "zstd data is corrupt"));
	assert_int_equal(remove_tree_at(f->layer_fd, "data", NULL), 0);
	tb_free(&blob);

	/* tiny and empty inputs are plain (and an empty tar) */
	assert_int_equal(unpack_stream(f, &blob, "none", comp, plain), 0);
	assert_string_equal(comp,
			    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_string_equal(plain, comp);
	tb_put(&blob, "\x1f", 1);
	assert_int_equal(unpack_stream(f, &blob, "none", comp, plain), -1);
	assert_non_null(strstr(f->err, "not a tar archive"));
	tb_free(&blob);
	tb_free(&tar);
}

/* Corrupt compressed data that decompresses into garbage is said as what it
 * is, with where it was noticed: not as the tar reader's view of the garbage
 * ("header ... has an unreadable checksum"), nor as zstd's "Dictionary
 * mismatch" for garbage after its magic. */
static void test_corrupt_compression_named_before_the_tar(void **state)
{
	struct fixture *f = *state;
	struct tb tar = {0};
	build_payload(&tar, 100000);
	char comp[65], plain[65];
	/* level 0: stored blocks, so flipped bytes inflate into garbage that only
	 * the CRC at the end gives away */
	struct tb blob = {0};
	z_stream z = {0};
	assert_int_equal(deflateInit2(&z, 0, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
	size_t cap = deflateBound(&z, tar.len) + 64;
	uint8_t *buf = malloc(cap);
	z.next_in = (Bytef *)tar.buf;
	z.avail_in = (uInt)tar.len;
	z.next_out = buf;
	z.avail_out = (uInt)cap;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	tb_put(&blob, buf, cap - z.avail_out);
	deflateEnd(&z);
	free(buf);
	for (size_t i = 100; i < 120; i++)
		blob.buf[i] ^= 0x55; /* in the first tar header */
	assert_int_equal(unpack_stream(f, &blob, "gzip", comp, plain), -1);
	assert_non_null(strstr(f->err, "gzip data is corrupt near compressed byte "));
	assert_non_null(strstr(f->err, "CRC-32"));
	assert_null(strstr(f->err, "header"));
	assert_int_equal(remove_tree_at(f->layer_fd, "data", NULL), 0);
	tb_free(&blob);

	/* the magic, then a frame header asking for a dictionary */
	static const uint8_t zgarbage[] = {0x28, 0xb5, 0x2f, 0xfd, 0x03, 0x7a, 0x11, 0x93, 0x5e,
					   0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08};
	tb_put(&blob, zgarbage, sizeof(zgarbage));
	assert_int_equal(unpack_stream(f, &blob, "zstd", comp, plain), -1);
	assert_non_null(strstr(
	    f->err, "zstd data is corrupt near compressed byte 0: not a valid frame header"));
	tb_free(&blob);
	tb_free(&tar);
}

static void test_finish_drains_trailing_bytes(void **state)
{
	/* Bytes after the end-of-archive blocks are part of the blob: the
	 * digests must cover them. */
	struct fixture *f = *state;
	struct tb tar = {0};
	tb_file(&tar, "x", "x", 0644);
	tb_end(&tar);
	tb_zeros(&tar, 10240 - tar.len % 10240); /* tar(1) pads to 10 KiB records */
	char want[65], comp[65], plain[65];
	sha_hex(tar.buf, tar.len, want);
	assert_int_equal(unpack_stream(f, &tar, "none", comp, plain), 0);
	assert_string_equal(comp, want);
	assert_string_equal(plain, want);
	struct tb blob = {0};
	zstd_bytes(tar.buf, tar.len, &blob);
	assert_int_equal(unpack_stream(f, &blob, "zstd", comp, plain), 0);
	assert_string_equal(plain, want);
	tb_free(&blob);
	tb_free(&tar);
}

/* ---- digests ----------------------------------------------------------------------------- */

static void test_files_that_cannot_fit_refused_at_their_header(void **state)
{
	/* The bomb guard is the space there is: a file larger than what is left
	 * is refused before any of it is written; one that fits is unpacked,
	 * however well it compresses. */
	struct fixture *f = *state;
	struct tb t = {0};
	tb_file(&t, "small", "0123456789", 0644);
	struct tb_hdr h = tb_defaults("huge", '0', 0644);
	h.size = (int64_t)1 << 50;
	h.fmt = TB_GNU;
	h.base256 = true;
	tb_header(&t, &h); /* no data: refused at the header, before reading any */
	f->opts.max_bytes = 1 << 20;
	assert_int_equal(unpack(f, &t), -1);
	if (!strstr(f->err, "'huge'") || !strstr(f->err, "1024 TiB") ||
	    !strstr(f->err, "decompression bomb"))
		fail_msg("message: %s", f->err);
	assert_int_equal(f->err_errno, ENOSPC);
	assert_false(exists_in(f, "huge"));
	tb_free(&t);
	assert_int_equal(remove_tree_at(f->layer_fd, "small", NULL), 0);

	/* the limit counts all files together */
	_cleanup_free_ char *kib = xcalloc(1, 601);
	memset(kib, 'z', 600);
	tb_file(&t, "a", kib, 0644);
	tb_file(&t, "b", kib, 0644);
	tb_end(&t);
	f->opts.max_bytes = 1000;
	expect_unpack_error(f, &t, "'b'", "free some space");
	f->opts.max_bytes = 1200;
	assert_int_equal(unpack(f, &t), 0);
	tb_free(&t);
	f->opts.max_bytes = 0;
}

static void test_stream_limit(void **state)
{
	/* 8 MiB of zeros gzip to ~8 KiB (1000:1): read whole without a limit,
	 * refused (ENOSPC) past one, whatever the ratio. */
	(void)state;
	size_t n = 8 << 20;
	_cleanup_free_ char *zeros = xcalloc(1, n);
	struct tb blob = {0};
	gzip_bytes(zeros, n, &blob);
	assert_true(blob.len < n / 500);
	_cleanup_free_ char *buf = malloc(1 << 16);
	for (int limited = 0; limited < 2; limited++) {
		_cleanup_close_ int fd = memfd_with(&blob);
		struct layer_stream *ls = NULL;
		struct hutch_err *err = NULL;
		assert_int_equal(layer_stream_open(fd, &ls, &err), 0);
		if (limited)
			layer_stream_set_max(ls, 1 << 20);
		size_t total = 0;
		ssize_t got;
		while ((got = layer_stream_read(ls, buf, 1 << 16, &err)) > 0)
			total += (size_t)got;
		if (limited) {
			assert_int_equal(got, -1);
			assert_int_equal(err->errno_, ENOSPC);
			assert_non_null(strstr(err->msg, "decompression bomb"));
			assert_true(total <= 1 << 20);
			hutch_err_free(&err);
		} else {
			assert_int_equal(got, 0);
			assert_int_equal(total, n);
		}
		layer_stream_free(ls);
	}
	tb_free(&blob);
}

static void test_digest_is_valid(void **state)
{
	const char *hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
	_cleanup_free_ char *full = xasprintf("sha256:%s", hex);
	assert_true(digest_is_valid(full, false));
	assert_true(digest_is_valid(hex, true));
	assert_false(digest_is_valid(hex, false));
	assert_false(digest_is_valid(full, true));
	assert_false(digest_is_valid(NULL, true));
	assert_false(digest_is_valid("", true));
	assert_false(digest_is_valid("sha256:", false));
	assert_false(digest_is_valid("sha512:e3b0", false));
	_cleanup_free_ char *upper = xasprintf("sha256:%s", hex);
	upper[10] = 'B';
	assert_false(digest_is_valid(upper, false));
	_cleanup_free_ char *longer = xasprintf("sha256:%s0", hex);
	assert_false(digest_is_valid(longer, false));
	assert_false(digest_is_valid("sha256:../../../../etc/passwd", false));
	_cleanup_free_ char *slash = xstrdup(hex);
	slash[5] = '/';
	assert_false(digest_is_valid(slash, true));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	if (geteuid() != 0) {
		fprintf(stderr, "test_unpack needs root (ownership, devices, trusted.* xattrs)\n");
		return 1;
	}
	const struct CMUnitTest tests[] = {
	    T(test_basic_tree),
	    T(test_setuid_survives_chown),
	    T(test_readonly_dir_and_mtimes),
	    T(test_later_entries_override),
	    T(test_hardlinks),
	    T(test_devices_and_fifos),
	    T(test_xattrs),
	    T(test_file_capabilities),
	    T(test_long_names),
	    T(test_dotdot_refused),
	    T(test_absolute_paths_refused),
	    T(test_symlinks_resolve_inside_the_layer),
	    T(test_symlinks_inside_are_followed),
	    T(test_symlink_text_is_stored_never_followed),
	    T(test_symlink_as_root_refused),
	    T(test_hardlink_escapes),
	    T(test_file_as_parent),
	    T(test_truncated_layer),
	    T(test_names_escaped_in_errors),
	    T(test_whiteouts_rootful),
	    T(test_whiteouts_rootless),
	    T(test_whiteouts_kept_when_not_converting),
	    T(test_stream_roundtrips),
	    T(test_gzip_members_and_padding),
	    T(test_corrupt_streams),
	    T(test_corrupt_compression_named_before_the_tar),
	    T(test_finish_drains_trailing_bytes),
	    cmocka_unit_test(test_digest_is_valid),
	    cmocka_unit_test(test_stream_limit),
	    T(test_files_that_cannot_fit_refused_at_their_header),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
