/* common/: sizes, hex ids, directory trees (mkdir -p, rm -rf that never follows
 * symlinks), atomic writes, whole-file reads, closing inherited fds and the
 * error helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "common/err.h"
#include "common/util.h"

/* ---- helpers -------------------------------------------------------------- */

static char *make_tmpdir(void)
{
	char *d = xstrdup("/tmp/hutch-test-util-XXXXXX");
	assert_non_null(mkdtemp(d));
	return d;
}

static void rm_tmpdir(char *d)
{
	/* independent of the code under test, so a bug there cannot leak dirs */
	char *cmd = xasprintf("chmod -R u+rwx '%s' 2>/dev/null; rm -rf '%s'", d, d);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(d);
}

static void put_file(const char *path, const char *content)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, content, strlen(content)), 0);
	close(fd);
}

static bool exists_nofollow(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static size_t count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* Run fn with stderr redirected to a pipe; returns what it wrote (malloc'd). */
static char *capture_stderr(void (*fn)(void *), void *arg)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	fflush(stderr);
	int saved = dup(2);
	assert_true(saved >= 0);
	assert_true(dup2(p[1], 2) >= 0);
	close(p[1]);
	fn(arg);
	fflush(stderr);
	assert_true(dup2(saved, 2) >= 0);
	close(saved);
	char buf[4096];
	size_t used = 0;
	ssize_t n;
	while ((n = read(p[0], buf + used, sizeof(buf) - 1 - used)) > 0)
		used += (size_t)n;
	close(p[0]);
	buf[used] = '\0';
	return xstrdup(buf);
}

/* ---- parse_size / format_size --------------------------------------------- */

static void test_parse_size_accepts(void **state)
{
	static const struct {
		const char *in;
		int64_t want;
	} cases[] = {
	    {"0", 0},
	    {"1048576", 1048576},
	    {"512k", 512LL << 10},
	    {"512K", 512LL << 10},
	    {"64m", 64LL << 20},
	    {"64M", 64LL << 20},
	    {"64mb", 64LL << 20},
	    {"64MB", 64LL << 20},
	    {"64MiB", 64LL << 20},
	    {"64mib", 64LL << 20},
	    {"1g", 1LL << 30},
	    {"1.5g", 3LL << 29},
	    {"0.5k", 512},
	    {"2t", 2LL << 40},
	    {"100b", 100},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int64_t v = -12345;
		if (parse_size(cases[i].in, &v) != 0)
			fail_msg("parse_size(\"%s\") failed", cases[i].in);
		if (v != cases[i].want)
			fail_msg("parse_size(\"%s\") = %lld, want %lld", cases[i].in, (long long)v,
				 (long long)cases[i].want);
	}
}

static void test_parse_size_rejects(void **state)
{
	static const char *const bad[] = {
	    "",	      "m",    "-1",  "64q", "1e400", " 64m", "64m ", "64mm", "64mbb",
	    "64kibx", "64bi", "k64", "inf", "nan",   ".5m",  "64ib", "+5",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int64_t v = 777;
		if (parse_size(bad[i], &v) == 0)
			fail_msg("parse_size(\"%s\") accepted (= %lld)", bad[i], (long long)v);
		assert_int_equal(v, 777); /* untouched on failure */
	}
	int64_t v = 777;
	assert_int_equal(parse_size(NULL, &v), -1);
}

/* A size that does not fit int64 must be rejected, never wrapped to a negative. */
static void test_parse_size_overflow(void **state)
{
	static const char *const huge[] = {
	    "8388608t",		    /* exactly 2^63 */
	    "9223372036854775808",  /* 2^63 */
	    "99999999999999999999", /* > 2^64 */
	    "10000000000000g",
	};
	char bad[512] = "";
	for (size_t i = 0; i < ARRAY_SIZE(huge); i++) {
		int64_t v = 777;
		if (parse_size(huge[i], &v) == 0)
			snprintf(bad + strlen(bad), sizeof(bad) - strlen(bad), " \"%s\"=%lld",
				 huge[i], (long long)v);
	}
	/* just below the limit: either a clean rejection or a positive value */
	int64_t v = 777;
	if (parse_size("9223372036854775807", &v) == 0 && v <= 0)
		snprintf(bad + strlen(bad), sizeof(bad) - strlen(bad),
			 " \"9223372036854775807\"=%lld", (long long)v);
	if (*bad)
		fail_msg("parse_size accepted out-of-range sizes:%s", bad);
	assert_int_equal(parse_size("8388607t", &v), 0);
	assert_int_equal(v, 8388607LL << 40);
}

/* Docker's syntax is digits, an optional fraction and a unit: no C-float
 * extras such as exponents or hex ("0x10" silently meaning 16 bytes). */
static void test_parse_size_rejects_c_float_syntax(void **state)
{
	static const char *const inputs[] = {"0x10", "0x1p20", "1e3", "1E3", "1e3m"};
	char bad[512] = "";
	for (size_t i = 0; i < ARRAY_SIZE(inputs); i++) {
		int64_t v = 777;
		if (parse_size(inputs[i], &v) == 0)
			snprintf(bad + strlen(bad), sizeof(bad) - strlen(bad), " \"%s\"=%lld",
				 inputs[i], (long long)v);
	}
	if (*bad)
		fail_msg("parse_size accepted:%s", bad);
}

static void test_format_size(void **state)
{
	static const struct {
		int64_t in;
		const char *want;
	} cases[] = {
	    {0, "0 B"},
	    {1, "1 B"},
	    {1023, "1023 B"},
	    {1024, "1 KiB"},
	    {1536, "1.5 KiB"},
	    {64LL << 20, "64 MiB"},
	    {3LL << 29, "1.5 GiB"},
	    {1LL << 30, "1 GiB"},
	    {5LL << 40, "5 TiB"},
	    {2048LL << 40, "2048 TiB"}, /* no unit past TiB */
	};
	char buf[64];
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		memset(buf, 'X', sizeof(buf));
		format_size(cases[i].in, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].want);
	}
	/* truncates, never overflows, a short buffer */
	char small[4];
	memset(small, 'X', sizeof(small));
	format_size(64LL << 20, small, sizeof(small));
	assert_int_equal(small[3], '\0');
	assert_string_equal(small, "64 ");
}

static void test_parse_format_roundtrip(void **state)
{
	static const char *const in[] = {"64m", "1g", "512k", "1.5g", "3t"};
	static const char *const out[] = {"64 MiB", "1 GiB", "512 KiB", "1.5 GiB", "3 TiB"};
	for (size_t i = 0; i < ARRAY_SIZE(in); i++) {
		int64_t v;
		char buf[32];
		assert_int_equal(parse_size(in[i], &v), 0);
		format_size(v, buf, sizeof(buf));
		assert_string_equal(buf, out[i]);
	}
}

/* ---- hex ------------------------------------------------------------------ */

static void test_is_hex_string(void **state)
{
	assert_true(is_hex_string("", 0));
	assert_true(is_hex_string("0123456789abcdef", 16));
	assert_false(is_hex_string("0123456789ABCDEF", 16)); /* lowercase only */
	assert_false(is_hex_string("abcg", 4));
	assert_false(is_hex_string("ab cd", 5));
	assert_false(is_hex_string("abcd", 3)); /* longer than len */
	assert_false(is_hex_string("ab", 3));	/* shorter than len: stops at the NUL */
	assert_false(is_hex_string("-1", 2));
	char id[65];
	memset(id, 'f', 64);
	id[64] = '\0';
	assert_true(is_hex_string(id, 64));
	id[63] = 'F';
	assert_false(is_hex_string(id, 64));
}

static void test_random_hex_id(void **state)
{
	char a[65], b[65];
	memset(a, 'X', sizeof(a));
	memset(b, 'X', sizeof(b));
	struct hutch_err *err = NULL;
	assert_int_equal(random_hex_id(a, &err), 0);
	assert_int_equal(random_hex_id(b, &err), 0);
	assert_null(err);
	assert_int_equal(strlen(a), 64);
	assert_int_equal(strlen(b), 64);
	assert_true(is_hex_string(a, 64));
	assert_true(is_hex_string(b, 64));
	assert_string_not_equal(a, b);
}

/* ---- mkdir_p_at / remove_tree_at ------------------------------------------ */

static void test_mkdir_p_at(void **state)
{
	char *tmp = make_tmpdir();
	struct hutch_err *err = NULL;
	char *deep = xasprintf("%s/a/b/c/d", tmp);
	assert_int_equal(mkdir_p_at(AT_FDCWD, deep, 0755, &err), 0);
	assert_null(err);
	struct stat st;
	assert_int_equal(stat(deep, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	/* again: existing dirs are fine */
	assert_int_equal(mkdir_p_at(AT_FDCWD, deep, 0755, &err), 0);
	/* trailing slash and relative to a dirfd */
	int dfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	assert_int_equal(mkdir_p_at(dfd, "x/y/z/", 0700, &err), 0);
	assert_null(err);
	char *rel = xasprintf("%s/x/y/z", tmp);
	assert_int_equal(stat(rel, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0700);
	/* a file in the way of a parent is an error that names the path */
	char *file = xasprintf("%s/file", tmp);
	put_file(file, "x");
	assert_int_equal(mkdir_p_at(dfd, "file/sub/dir", 0755, &err), -1);
	assert_non_null(err);
	assert_int_equal(err->errno_, ENOTDIR);
	assert_non_null(strstr(err->msg, "file/sub"));
	hutch_err_free(&err);
	close(dfd);
	free(deep);
	free(rel);
	free(file);
	rm_tmpdir(tmp);
}

/* Like mkdir -p: an existing non-directory at the full path is an error. */
static void test_mkdir_p_at_existing_file(void **state)
{
	char *tmp = make_tmpdir();
	char *file = xasprintf("%s/plain", tmp);
	put_file(file, "x");
	struct hutch_err *err = NULL;
	int r = mkdir_p_at(AT_FDCWD, file, 0755, &err);
	hutch_err_free(&err);
	free(file);
	rm_tmpdir(tmp);
	if (r == 0)
		fail_msg("mkdir_p_at on an existing regular file returned success");
}

static void test_remove_tree(void **state)
{
	char *tmp = make_tmpdir();
	struct hutch_err *err = NULL;
	/* outside the tree: a sentinel file and a dir with a file */
	char *outside = xasprintf("%s/outside", tmp);
	char *out_dir = xasprintf("%s/outside-dir", tmp);
	char *out_dir_file = xasprintf("%s/outside-dir/keep", tmp);
	put_file(outside, "sentinel");
	assert_int_equal(mkdir(out_dir, 0755), 0);
	put_file(out_dir_file, "keep me");

	char *tree = xasprintf("%s/tree", tmp);
	char *deep = xasprintf("%s/tree/a/b/c", tmp);
	assert_int_equal(mkdir_p_at(AT_FDCWD, deep, 0755, &err), 0);
	char *p;
	put_file(p = xasprintf("%s/tree/top", tmp), "1"), free(p);
	put_file(p = xasprintf("%s/tree/a/b/c/leaf", tmp), "2"), free(p);
	put_file(p = xasprintf("%s/tree/a/mid", tmp), "3"), free(p);
	assert_int_equal(symlink(outside, p = xasprintf("%s/tree/link-file", tmp)), 0), free(p);
	assert_int_equal(symlink(out_dir, p = xasprintf("%s/tree/a/link-dir", tmp)), 0), free(p);
	assert_int_equal(symlink("../../..", p = xasprintf("%s/tree/a/b/up", tmp)), 0), free(p);
	assert_int_equal(symlink("/nonexistent", p = xasprintf("%s/tree/dangling", tmp)), 0),
	    free(p);
	assert_int_equal(mkfifo(p = xasprintf("%s/tree/fifo", tmp), 0600), 0), free(p);
	/* a dir with mode 000 and contents */
	char *locked = xasprintf("%s/tree/a/locked", tmp);
	assert_int_equal(mkdir(locked, 0755), 0);
	put_file(p = xasprintf("%s/tree/a/locked/inside", tmp), "4"), free(p);
	assert_int_equal(mkdir(p = xasprintf("%s/tree/a/locked/sub", tmp), 0755), 0), free(p);
	assert_int_equal(chmod(locked, 0), 0);

	int dfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	assert_int_equal(remove_tree_at(dfd, "tree", &err), 0);
	assert_null(err);
	assert_false(exists_nofollow(tree));
	/* nothing outside was touched */
	char *content = NULL;
	assert_int_equal(read_file_at(AT_FDCWD, outside, &content, NULL, &err), 0);
	assert_string_equal(content, "sentinel");
	free(content);
	assert_int_equal(read_file_at(AT_FDCWD, out_dir_file, &content, NULL, &err), 0);
	assert_string_equal(content, "keep me");
	free(content);
	assert_int_equal(count_entries(tmp), 2);

	/* missing: fine, twice */
	assert_int_equal(remove_tree_at(dfd, "tree", &err), 0);
	assert_int_equal(remove_tree_at(AT_FDCWD, tree, &err), 0);
	assert_null(err);

	/* a symlink to a dir as the top: the link goes, the target stays */
	assert_int_equal(symlinkat(out_dir, dfd, "top-link"), 0);
	assert_int_equal(remove_tree_at(dfd, "top-link", &err), 0);
	assert_false(exists_nofollow(p = xasprintf("%s/top-link", tmp))), free(p);
	assert_true(exists_nofollow(out_dir_file));

	/* a plain file as the top */
	assert_int_equal(remove_tree_at(AT_FDCWD, outside, &err), 0);
	assert_false(exists_nofollow(outside));
	assert_null(err);

	close(dfd);
	free(outside);
	free(out_dir);
	free(out_dir_file);
	free(tree);
	free(deep);
	free(locked);
	rm_tmpdir(tmp);
}

/* As an unprivileged user (rootless stores): overlay's d--------- work dirs
 * and read-only dirs with contents (Fedora-like layers have r-xr-xr-x /usr/bin)
 * are still removed. Runs in a child that drops to nobody. */
static int remove_tree_unprivileged_child(const char *base, int which)
{
	if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
		return 10;
	char path[4096];
	snprintf(path, sizeof(path), "%s/t%d/d/sub", base, which);
	if (mkdir_p_at(AT_FDCWD, path, 0755, NULL) < 0)
		return 11;
	snprintf(path, sizeof(path), "%s/t%d/d/file", base, which);
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return 12;
	close(fd);
	snprintf(path, sizeof(path), "%s/t%d/d", base, which);
	if (chmod(path, which == 0 ? 0 : 0555) < 0)
		return 13;
	snprintf(path, sizeof(path), "%s/t%d", base, which);
	struct hutch_err *err = NULL;
	if (remove_tree_at(AT_FDCWD, path, &err) < 0) {
		fprintf(stderr, "remove_tree_at as nobody (%s): %s\n",
			which == 0 ? "mode 000 dir" : "mode 555 dir", err ? err->msg : "?");
		hutch_err_free(&err);
		return 20;
	}
	struct stat st;
	if (lstat(path, &st) == 0)
		return 21;
	return 0;
}

static int run_unprivileged(const char *base, int which)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(remove_tree_unprivileged_child(base, which));
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void test_remove_tree_unprivileged_mode000(void **state)
{
	if (geteuid() != 0)
		skip();
	char *tmp = make_tmpdir();
	assert_int_equal(chown(tmp, 65534, 65534), 0);
	int rc = run_unprivileged(tmp, 0);
	rm_tmpdir(tmp);
	assert_int_equal(rc, 0);
}

static void test_remove_tree_unprivileged_readonly_dir(void **state)
{
	if (geteuid() != 0)
		skip();
	char *tmp = make_tmpdir();
	assert_int_equal(chown(tmp, 65534, 65534), 0);
	int rc = run_unprivileged(tmp, 1);
	rm_tmpdir(tmp);
	if (rc != 0)
		fail_msg("remove_tree_at as a non-root user could not remove a tree with a "
			 "mode 0555 directory holding files (child status %d)",
			 rc);
}

/* ---- write_file_atomic / read_file_at / write_file_at ---------------------- */

static void test_write_file_atomic(void **state)
{
	char *tmp = make_tmpdir();
	int dfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	struct hutch_err *err = NULL;
	assert_int_equal(write_file_atomic(dfd, "f.json", "first version", 13, &err), 0);
	assert_null(err);
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(read_file_at(dfd, "f.json", &text, &len, &err), 0);
	assert_string_equal(text, "first version");
	assert_int_equal(len, 13);
	free(text);
	/* replaced, shorter */
	assert_int_equal(write_file_atomic(dfd, "f.json", "v2", 2, &err), 0);
	assert_int_equal(read_file_at(dfd, "f.json", &text, &len, &err), 0);
	assert_string_equal(text, "v2");
	assert_int_equal(len, 2);
	free(text);
	/* binary with NULs, length respected */
	static const char bin[] = {'a', 0, 'b', 0, 'c'};
	assert_int_equal(write_file_atomic(dfd, "bin", bin, sizeof(bin), &err), 0);
	assert_int_equal(read_file_at(dfd, "bin", &text, &len, &err), 0);
	assert_int_equal(len, sizeof(bin));
	assert_memory_equal(text, bin, sizeof(bin));
	free(text);
	/* no temp file left behind */
	assert_int_equal(count_entries(tmp), 2);

	/* a symlink at the path is replaced, its target is not written through */
	char *target = xasprintf("%s/target", tmp);
	put_file(target, "untouched");
	assert_int_equal(symlinkat(target, dfd, "link"), 0);
	assert_int_equal(write_file_atomic(dfd, "link", "new", 3, &err), 0);
	struct stat st;
	assert_int_equal(fstatat(dfd, "link", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(read_file_at(AT_FDCWD, target, &text, NULL, &err), 0);
	assert_string_equal(text, "untouched");
	free(text);

	/* a missing directory: error naming the path, nothing created */
	assert_int_equal(write_file_atomic(dfd, "nodir/x", "a", 1, &err), -1);
	assert_non_null(err);
	assert_int_equal(err->errno_, ENOENT);
	assert_non_null(strstr(err->msg, "nodir/x"));
	hutch_err_free(&err);
	assert_int_equal(count_entries(tmp), 4);

	close(dfd);
	free(target);
	rm_tmpdir(tmp);
}

static void test_read_file_at(void **state)
{
	char *tmp = make_tmpdir();
	int dfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	struct hutch_err *err = NULL;
	/* empty */
	assert_int_equal(write_file_at(dfd, "empty", "", &err), 0);
	char *text = NULL;
	size_t len = 99;
	assert_int_equal(read_file_at(dfd, "empty", &text, &len, &err), 0);
	assert_int_equal(len, 0);
	assert_string_equal(text, "");
	free(text);
	/* larger than the initial buffer, exact sizes around the growth points */
	static const size_t sizes[] = {4094, 4095, 4096, 4097, 8191, 8192, 100000};
	for (size_t k = 0; k < ARRAY_SIZE(sizes); k++) {
		char *big = malloc(sizes[k] + 1);
		assert_non_null(big);
		for (size_t i = 0; i < sizes[k]; i++)
			big[i] = (char)('a' + i % 26);
		big[sizes[k]] = '\0';
		assert_int_equal(write_file_at(dfd, "big", big, &err), 0);
		assert_int_equal(read_file_at(dfd, "big", &text, &len, &err), 0);
		assert_int_equal(len, sizes[k]);
		assert_int_equal(strlen(text), sizes[k]);
		assert_memory_equal(text, big, sizes[k]);
		free(text);
		free(big);
	}
	/* len may be NULL */
	assert_int_equal(write_file_at(dfd, "small", "hello\n", &err), 0);
	assert_int_equal(read_file_at(dfd, "small", &text, NULL, &err), 0);
	assert_string_equal(text, "hello\n");
	free(text);
	/* write_file_at truncates */
	assert_int_equal(write_file_at(dfd, "small", "hi", &err), 0);
	assert_int_equal(read_file_at(dfd, "small", &text, NULL, &err), 0);
	assert_string_equal(text, "hi");
	free(text);
	/* missing: ENOENT and the path in the message; *out untouched */
	text = (char *)"sentinel";
	assert_int_equal(read_file_at(dfd, "does-not-exist", &text, &len, &err), -1);
	assert_string_equal(text, "sentinel");
	assert_non_null(err);
	assert_int_equal(err->errno_, ENOENT);
	assert_non_null(strstr(err->msg, "does-not-exist"));
	hutch_err_free(&err);
	/* a directory cannot be read */
	assert_int_equal(mkdirat(dfd, "dir", 0755), 0);
	text = NULL;
	assert_int_equal(read_file_at(dfd, "dir", &text, &len, &err), -1);
	assert_null(text);
	assert_non_null(err);
	assert_int_equal(err->errno_, EISDIR);
	hutch_err_free(&err);
	/* NULL err is allowed */
	assert_int_equal(read_file_at(dfd, "does-not-exist", &text, &len, NULL), -1);
	close(dfd);
	rm_tmpdir(tmp);
}

static void test_write_all(void **state)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write_all(p[1], "abc", 3), 0);
	assert_int_equal(write_all(p[1], "", 0), 0);
	close(p[1]);
	char buf[8] = {0};
	assert_int_equal(read(p[0], buf, sizeof(buf)), 3);
	assert_string_equal(buf, "abc");
	close(p[0]);
	assert_int_equal(write_all(-1, "x", 1), -1);
	assert_int_equal(errno, EBADF);
}

/* ---- errors --------------------------------------------------------------- */

static void test_err_fail_and_wrap(void **state)
{
	struct hutch_err *err = NULL;
	assert_int_equal(hutch_fail(&err, ENOENT, "open %s", "/etc/x"), -1);
	assert_non_null(err);
	assert_int_equal(err->errno_, ENOENT);
	assert_int_equal(err->exit_code, 0);
	assert_string_equal(err->msg, "open /etc/x");
	/* the first error wins: a second fail does not overwrite it */
	assert_int_equal(hutch_fail(&err, EPERM, "later"), -1);
	assert_int_equal(err->errno_, ENOENT);
	assert_string_equal(err->msg, "open /etc/x");
	/* context is prepended, innermost last */
	assert_int_equal(hutch_err_wrap(&err, "layer %d", 3), -1);
	assert_string_equal(err->msg, "layer 3: open /etc/x");
	assert_int_equal(hutch_err_wrap(&err, "import '%s'", "bb.tar"), -1);
	assert_string_equal(err->msg, "import 'bb.tar': layer 3: open /etc/x");
	assert_int_equal(err->errno_, ENOENT);
	hutch_err_free(&err);
	assert_null(err);
	hutch_err_free(&err); /* twice is fine */
	hutch_err_free(NULL);

	/* no error to wrap, or nowhere to put one: still -1, no crash */
	assert_int_equal(hutch_err_wrap(&err, "ctx"), -1);
	assert_null(err);
	assert_int_equal(hutch_err_wrap(NULL, "ctx"), -1);
	assert_int_equal(hutch_fail(NULL, EIO, "dropped"), -1);

	/* hutch_fail_sys takes errno */
	errno = EACCES;
	assert_int_equal(hutch_fail_sys(&err, "mkdir %s", "/x"), -1);
	assert_int_equal(err->errno_, EACCES);
	assert_string_equal(err->msg, "mkdir /x");
	hutch_err_free(&err);

	/* long messages are not truncated */
	char longv[3000];
	memset(longv, 'v', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = '\0';
	hutch_fail(&err, 0, "bad value '%s'", longv);
	hutch_err_wrap(&err, "ctx");
	assert_int_equal(strlen(err->msg), strlen("ctx: bad value ''") + sizeof(longv) - 1);
	hutch_err_free(&err);

	/* the cleanup attribute frees */
	{
		_cleanup_err_ struct hutch_err *scoped = NULL;
		hutch_fail(&scoped, 0, "freed at scope end");
	}
}

struct print_args {
	const char *prog;
	struct hutch_err *err;
};

static void do_print(void *arg)
{
	struct print_args *a = arg;
	hutch_err_print(a->prog, a->err);
}

static void test_err_print(void **state)
{
	struct hutch_err *err = NULL;
	hutch_fail(&err, ENOENT, "open /etc/hutch.conf");
	hutch_err_wrap(&err, "load config");
	struct print_args a = {"hutch", err};
	char *out = capture_stderr(do_print, &a);
	char *want = xasprintf("hutch: load config: open /etc/hutch.conf: %s\n", strerror(ENOENT));
	assert_string_equal(out, want);
	free(out);
	free(want);
	hutch_err_free(&err);

	/* errno 0: no strerror suffix */
	hutch_fail(&err, 0, "invalid image name 'UP PER'");
	a.err = err;
	out = capture_stderr(do_print, &a);
	assert_string_equal(out, "hutch: invalid image name 'UP PER'\n");
	free(out);
	hutch_err_free(&err);

	/* a NULL error prints nothing */
	a.err = NULL;
	out = capture_stderr(do_print, &a);
	assert_string_equal(out, "");
	free(out);
}

/* openat2_retry: resolution stays in the root for RESOLVE_IN_ROOT (an absolute
 * symlink is followed inside it) and is refused for RESOLVE_BENEATH. */
static void test_openat2_retry(void **state)
{
	(void)state;
	char *tmp = make_tmpdir();
	int dfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	assert_int_equal(mkdirat(dfd, "etc", 0755), 0);
	int f = openat(dfd, "etc/marker", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_true(f >= 0);
	close(f);
	assert_int_equal(symlinkat("/etc", dfd, "abs"), 0);
	int fd = openat2_retry(dfd, "abs/marker", O_RDONLY, RESOLVE_IN_ROOT);
	assert_true(fd >= 0);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
	errno = 0;
	assert_int_equal(openat2_retry(dfd, "abs/marker", O_RDONLY, RESOLVE_BENEATH), -1);
	assert_int_equal(errno, EXDEV);
	assert_int_equal(openat2_retry(dfd, "missing", O_RDONLY, RESOLVE_IN_ROOT), -1);
	assert_int_equal(errno, ENOENT);
	close(dfd);
	rm_tmpdir(tmp);
}

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

/* In a child (it closes nearly everything): fds kept, fds closed, 0-2 never
 * touched, negative, duplicate and extreme entries in any order. The exit code
 * names the first check that failed. */
static void test_close_fds_except(void **state)
{
	(void)state;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fds[8];
		for (int i = 0; i < 8; i++)
			if ((fds[i] = open("/dev/null", O_RDONLY)) < 3)
				_exit(10);
		int high = dup2(fds[0], 200);
		if (high != 200)
			_exit(11);
		int keep[] = {fds[5], INT_MAX, -1, fds[2], 1, INT_MIN, fds[5], 200, fds[7]};
		close_fds_except(keep, ARRAY_SIZE(keep));
		for (size_t i = 1; i < ARRAY_SIZE(keep); i++)
			if (keep[i - 1] > keep[i])
				_exit(12);
		for (int fd = 0; fd < 3; fd++)
			if (!fd_open(fd))
				_exit(13);
		for (int i = 0; i < 8; i++)
			if (fd_open(fds[i]) != (i == 2 || i == 5 || i == 7))
				_exit(20 + i);
		if (!fd_open(200) || fd_open(199) || fd_open(201))
			_exit(30);
		/* nothing kept: only 0-2 stay */
		close_fds_except(NULL, 0);
		for (int fd = 3; fd < 256; fd++)
			if (fd_open(fd))
				_exit(31);
		_exit(0);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- read_file_at_most / signal_from_name ----------------------------------- */

static void expect_read_fails(int dirfd, const char *path, size_t max, int flags,
			      const char *needle)
{
	struct hutch_err *err = NULL;
	char *out = NULL;
	assert_int_equal(read_file_at_most(dirfd, path, max, flags, &out, NULL, &err), -1);
	assert_null(out);
	assert_non_null(err);
	if (!strstr(err->msg, needle))
		fail_msg("read %s: '%s' lacks '%s'", path, err->msg, needle);
	if (strncmp(err->msg, path, strlen(path)))
		fail_msg("read %s: '%s' does not start with the path", path, err->msg);
	hutch_err_free(&err);
}

static void test_read_file_at_most(void **state)
{
	(void)state;
	char *dir = make_tmpdir();
	int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	int fd = openat(dfd, "ten", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_int_equal(write(fd, "0123456789", 10), 10);
	close(fd);
	/* up to max, exactly max */
	char *out = NULL;
	size_t len = 0;
	struct hutch_err *err = NULL;
	assert_int_equal(read_file_at_most(dfd, "ten", 10, READ_TEXT | READ_REGULAR, &out, &len,
					   &err),
			 0);
	assert_int_equal(len, 10);
	assert_string_equal(out, "0123456789");
	free(out);
	/* one byte over: refused, before reading a regular file */
	expect_read_fails(dfd, "ten", 9, 0, "larger than 9 B");
	/* a NUL at once, with where; binary reads take it */
	fd = openat(dfd, "nul", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_int_equal(write(fd, "A=1\nB\0C", 7), 7);
	close(fd);
	expect_read_fails(dfd, "nul", 100, READ_TEXT, "has a NUL byte (at byte 5)");
	assert_int_equal(read_file_at_most(dfd, "nul", 100, 0, &out, &len, &err), 0);
	assert_int_equal(len, 7);
	free(out);
	/* endless devices: the NUL or the cap, without reading on */
	expect_read_fails(AT_FDCWD, "/dev/zero", 1 << 20, READ_TEXT, "has a NUL byte (at byte 0)");
	expect_read_fails(AT_FDCWD, "/dev/zero", 1 << 20, 0, "larger than 1 MiB");
	expect_read_fails(AT_FDCWD, "/dev/zero", 1 << 20, READ_REGULAR, "not a regular file");
	/* a FIFO nobody writes to is not waited on when only a file will do */
	assert_int_equal(mkfifoat(dfd, "fifo", 0600), 0);
	expect_read_fails(dfd, "fifo", 100, READ_REGULAR, "not a regular file");
	/* a pipe is read to its end */
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], "K=V\n", 4), 4);
	close(p[1]);
	char *path = xasprintf("/dev/fd/%d", p[0]);
	assert_int_equal(read_file_at_most(AT_FDCWD, path, 4, READ_TEXT, &out, &len, &err), 0);
	assert_string_equal(out, "K=V\n");
	free(out);
	close(p[0]);
	/* and one past the cap is refused there too */
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], "K=V\n", 4), 4);
	close(p[1]);
	free(path);
	path = xasprintf("/dev/fd/%d", p[0]);
	expect_read_fails(AT_FDCWD, path, 3, READ_TEXT, "larger than 3 B");
	close(p[0]);
	free(path);
	/* what cannot be opened or is a directory */
	expect_read_fails(dfd, "missing", 10, 0, "missing");
	assert_int_equal(mkdirat(dfd, "sub", 0700), 0);
	expect_read_fails(dfd, "sub", 10, 0, "is a directory");
	/* empty */
	fd = openat(dfd, "empty", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	close(fd);
	assert_int_equal(read_file_at_most(dfd, "empty", 10, READ_TEXT, &out, &len, &err), 0);
	assert_int_equal(len, 0);
	assert_string_equal(out, "");
	free(out);
	close(dfd);
	assert_int_equal(remove_tree_at(AT_FDCWD, dir, NULL), 0);
	free(dir);
}

static void test_signal_from_name(void **state)
{
	(void)state;
	assert_int_equal(signal_from_name("TERM"), SIGTERM);
	assert_int_equal(signal_from_name("SIGTERM"), SIGTERM);
	assert_int_equal(signal_from_name("sigint"), SIGINT);
	assert_int_equal(signal_from_name("usr1"), SIGUSR1);
	assert_int_equal(signal_from_name("9"), SIGKILL);
	assert_int_equal(signal_from_name("SIG15"), SIGTERM);
	assert_int_equal(signal_from_name("64"), 64);
	const char *bad[] = {"", "SIG", "NOPE", "SIGNOPE", "0", "-1", "65", "99",
			     "99999999999999999999", "TERM ", "1x"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (signal_from_name(bad[i]) != -1)
			fail_msg("signal_from_name(\"%s\") = %d", bad[i], signal_from_name(bad[i]));
}

/* The bundle path an engine gives ("." from its cwd, a trailing "/") is
 * kept as runc keeps it, written shortest. */
static void test_path_clean(void **state)
{
	(void)state;
	static const char *const cases[][2] = {
	    {"/", "/"},
	    {"//", "/"},
	    {"/a/b", "/a/b"},
	    {"/a/b/", "/a/b"},
	    {"/a/./b/.", "/a/b"},
	    {"/a//b", "/a/b"},
	    {"/a/b/../c", "/a/c"},
	    {"/..", "/"},
	    {"/a/../..", "/"},
	    {"/tmp/x/.", "/tmp/x"},
	    {"/a/b/..", "/a"},
	    {"/a/..b/.c", "/a/..b/.c"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *c = path_clean(cases[i][0]);
		assert_string_equal(c, cases[i][1]);
		free(c);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_read_file_at_most),
	    cmocka_unit_test(test_signal_from_name),
	    cmocka_unit_test(test_openat2_retry),
	    cmocka_unit_test(test_parse_size_accepts),
	    cmocka_unit_test(test_parse_size_rejects),
	    cmocka_unit_test(test_parse_size_overflow),
	    cmocka_unit_test(test_parse_size_rejects_c_float_syntax),
	    cmocka_unit_test(test_format_size),
	    cmocka_unit_test(test_parse_format_roundtrip),
	    cmocka_unit_test(test_is_hex_string),
	    cmocka_unit_test(test_random_hex_id),
	    cmocka_unit_test(test_mkdir_p_at),
	    cmocka_unit_test(test_mkdir_p_at_existing_file),
	    cmocka_unit_test(test_remove_tree),
	    cmocka_unit_test(test_remove_tree_unprivileged_mode000),
	    cmocka_unit_test(test_remove_tree_unprivileged_readonly_dir),
	    cmocka_unit_test(test_write_file_atomic),
	    cmocka_unit_test(test_read_file_at),
	    cmocka_unit_test(test_write_all),
	    cmocka_unit_test(test_path_clean),
	    cmocka_unit_test(test_err_fail_and_wrap),
	    cmocka_unit_test(test_err_print),
	    cmocka_unit_test(test_close_fds_except),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
