/* images/store.c: names, import of a rootfs tarball, content-addressed layers,
 * list, remove (refused while a layer is held), and the store's promise that
 * bad input and crashes leave nothing half-written behind. Every test runs on
 * its own data root under /tmp. */
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
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <zlib.h>

#include "common/sha256.h"
#include "common/util.h"
#include "images/images.h"
#include "images/source_internal.h"

/* ---- a minimal ustar writer ------------------------------------------------ */

struct tarbuf {
	char *buf;
	size_t len;
};

static void tar_put(struct tarbuf *t, const void *p, size_t n)
{
	t->buf = xrealloc(t->buf, t->len + n);
	memcpy(t->buf + t->len, p, n);
	t->len += n;
}

static void tar_entry(struct tarbuf *t, const char *name, char type, unsigned mode,
		      const char *linkname, const char *data)
{
	size_t size = data ? strlen(data) : 0;
	unsigned char h[512] = {0};
	snprintf((char *)h, 100, "%s", name);
	snprintf((char *)h + 100, 8, "%07o", mode);
	snprintf((char *)h + 108, 8, "%07o", 0);
	snprintf((char *)h + 116, 8, "%07o", 0);
	char num[32];
	snprintf(num, sizeof(num), "%011zo", size & 077777777777);
	memcpy(h + 124, num, 12);
	snprintf((char *)h + 136, 12, "%011o", 1700000000);
	memset(h + 148, ' ', 8);
	h[156] = (unsigned char)type;
	if (linkname)
		snprintf((char *)h + 157, 100, "%s", linkname);
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	snprintf((char *)h + 265, 32, "root");
	snprintf((char *)h + 297, 32, "root");
	unsigned sum = 0;
	for (size_t i = 0; i < sizeof(h); i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
	h[155] = ' ';
	tar_put(t, h, sizeof(h));
	if (size) {
		tar_put(t, data, size);
		static const char zeros[512];
		tar_put(t, zeros, (512 - size % 512) % 512);
	}
}

static void tar_end(struct tarbuf *t)
{
	static const char zeros[1024];
	tar_put(t, zeros, sizeof(zeros));
}

static const char hello_sh[] = "#!/bin/sh\necho hello\n";
static const char motd[] = "welcome to the test image\n";

/* The rootfs used by most tests: dirs, files, a relative and an absolute symlink. */
static struct tarbuf rootfs_tar(void)
{
	struct tarbuf t = {0};
	tar_entry(&t, "bin/", '5', 0755, NULL, NULL);
	tar_entry(&t, "bin/hello", '0', 0755, NULL, hello_sh);
	tar_entry(&t, "bin/hi", '2', 0777, "hello", NULL);
	tar_entry(&t, "etc/", '5', 0755, NULL, NULL);
	tar_entry(&t, "etc/motd", '0', 0644, NULL, motd);
	tar_entry(&t, "etc/mtab", '2', 0777, "/proc/mounts", NULL);
	tar_end(&t);
	return t;
}

static void write_bytes(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, buf, len), 0);
	close(fd);
}

static void sha256_hex_of(const void *buf, size_t len, char out[65])
{
	struct sha256_ctx c;
	uint8_t d[32];
	sha256_init(&c);
	sha256_update(&c, buf, len);
	sha256_final(&c, d);
	sha256_hex(d, out);
}

/* ---- fixture ------------------------------------------------------------------ */

struct fx {
	char *base;	   /* mkdtemp */
	char *data;	   /* base/data: the store's data root */
	char *tar;	   /* base/rootfs.tar */
	char *tar_copy;	   /* base/copy/rootfs.tar: same bytes, another path */
	char diff_hex[65]; /* sha256 of the tar */
	struct hutch_store *store;
};

static char *fx_path(struct fx *f, const char *rel)
{
	return xasprintf("%s/images/%s", f->data, rel);
}

static size_t count_dir(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		fail_msg("opendir %s: %s", path, strerror(errno));
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static size_t count_store(struct fx *f, const char *sub)
{
	char *p = fx_path(f, sub);
	size_t n = count_dir(p);
	free(p);
	return n;
}

static bool path_exists(const char *p)
{
	struct stat st;
	return lstat(p, &st) == 0;
}

static int setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	f->base = xstrdup("/tmp/hutch-test-store-XXXXXX");
	if (!mkdtemp(f->base))
		return -1;
	f->data = xasprintf("%s/data", f->base);
	f->tar = xasprintf("%s/rootfs.tar", f->base);
	f->tar_copy = xasprintf("%s/copy/rootfs.tar", f->base);
	struct tarbuf t = rootfs_tar();
	write_bytes(f->tar, t.buf, t.len);
	char *copy_dir = xasprintf("%s/copy", f->base);
	mkdir(copy_dir, 0755);
	free(copy_dir);
	write_bytes(f->tar_copy, t.buf, t.len);
	sha256_hex_of(t.buf, t.len, f->diff_hex);
	free(t.buf);
	struct hutch_err *err = NULL;
	if (hutch_store_open(f->data, false, HUTCH_STORE_WRITE, &f->store, &err) < 0) {
		fprintf(stderr, "hutch_store_open: %s\n", err ? err->msg : "?");
		hutch_err_free(&err);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	hutch_store_close(f->store);
	char *cmd = xasprintf("chmod -R u+rwx '%s' 2>/dev/null; rm -rf '%s'", f->base, f->base);
	int r = system(cmd);
	free(cmd);
	free(f->base);
	free(f->data);
	free(f->tar);
	free(f->tar_copy);
	free(f);
	return r == 0 ? 0 : -1;
}

static void import_ok(struct fx *f, const char *src, const char *name, char id[65])
{
	struct hutch_err *err = NULL;
	if (hutch_image_import(f->store, src, name, id, &err) != 0)
		fail_msg("import %s as %s: %s", src, name, err ? err->msg : "(no message)");
	assert_null(err);
	assert_int_equal(strlen(id), 64);
	assert_true(is_hex_string(id, 64));
}

static struct hutch_image *get_ok(struct fx *f, const char *ref)
{
	struct hutch_image *img = NULL;
	struct hutch_err *err = NULL;
	if (hutch_image_get(f->store, ref, &img, &err) != 0)
		fail_msg("get %s: %s", ref, err ? err->msg : "(no message)");
	assert_null(err);
	assert_non_null(img);
	return img;
}

static void expect_get_fails(struct fx *f, const char *ref, const char *needle)
{
	struct hutch_image *img = NULL;
	struct hutch_err *err = NULL;
	if (hutch_image_get(f->store, ref, &img, &err) == 0) {
		hutch_image_free(img);
		fail_msg("get %s succeeded", ref);
	}
	assert_null(img);
	assert_non_null(err);
	if (needle && !strstr(err->msg, needle))
		fail_msg("error '%s' does not mention '%s'", err->msg, needle);
	hutch_err_free(&err);
}

static void remove_ok(struct fx *f, const char *ref)
{
	struct hutch_err *err = NULL;
	if (hutch_image_remove(f->store, ref, NULL, &err) != 0)
		fail_msg("remove %s: %s", ref, err ? err->msg : "(no message)");
	assert_null(err);
}

static char *layer_dir(struct fx *f)
{
	return xasprintf("%s/images/layers/%s", f->data, f->diff_hex);
}

/* ---- names -------------------------------------------------------------------- */

static void expect_norm(const char *in, const char *want)
{
	char *out = NULL;
	struct hutch_err *err = NULL;
	if (hutch_image_ref_normalize(in, &out, &err) != 0)
		fail_msg("normalize('%s'): %s", in, err ? err->msg : "?");
	assert_null(err);
	assert_string_equal(out, want);
	free(out);
}

static void expect_bad_name(const char *in)
{
	char *out = NULL;
	struct hutch_err *err = NULL;
	if (hutch_image_ref_normalize(in, &out, &err) == 0) {
		fail_msg("normalize('%.60s') accepted as '%.60s'", in, out);
	}
	assert_null(out);
	assert_non_null(err);
	/* the message names the value, escaped (long ones may be shortened), and
	 * holds no control character of it */
	char *shown = printable(in, strlen(in));
	char head[40];
	snprintf(head, sizeof(head), "%s", shown);
	free(shown);
	if (!strstr(err->msg, head))
		fail_msg("error '%.100s' does not name '%s'", err->msg, head);
	for (const char *p = err->msg; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			fail_msg("error '%.100s' holds a control character", err->msg);
	hutch_err_free(&err);
}

static void expect_familiar(const char *in, const char *want)
{
	char *out = hutch_image_ref_familiar(in);
	assert_string_equal(out, want);
	free(out);
}

static void test_ref_normalize(void **state)
{
	/* Docker's rules: one name, however it is written */
	expect_norm("bb", "docker.io/library/bb:latest");
	expect_norm("bb:1", "docker.io/library/bb:1");
	expect_norm("bb:latest", "docker.io/library/bb:latest");
	expect_norm("library/busybox", "docker.io/library/busybox:latest");
	expect_norm("docker.io/library/busybox", "docker.io/library/busybox:latest");
	expect_norm("docker.io/library/busybox:latest", "docker.io/library/busybox:latest");
	expect_norm("index.docker.io/library/busybox", "docker.io/library/busybox:latest");
	expect_norm("team/app", "docker.io/team/app:latest");
	expect_norm("host:5000/app", "host:5000/app:latest");
	expect_norm("host:5000/app:v2", "host:5000/app:v2");
	expect_norm("localhost/app", "localhost/app:latest");
	expect_norm("example.com/a/b:1", "example.com/a/b:1");
	expect_norm("my-app_x.y", "docker.io/library/my-app_x.y:latest");
	expect_norm("a/b/c:1.0-rc_1", "docker.io/a/b/c:1.0-rc_1");
	expect_norm("bb@sha256:"
		    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		    "docker.io/library/bb@sha256:"
		    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	char *name230 = xcalloc(1, 231);
	memset(name230, 'a', 230);
	char *want = xasprintf("docker.io/library/%s:latest", name230);
	expect_norm(name230, want);
	free(want);
	free(name230);

	expect_familiar("docker.io/library/busybox:latest", "busybox:latest");
	expect_familiar("docker.io/team/app:1", "team/app:1");
	expect_familiar("docker.io/library/a/b:1", "library/a/b:1");
	expect_familiar("host:5000/app:latest", "host:5000/app:latest");
	expect_familiar("localhost/x:1", "localhost/x:1");
	/* found by fuzz_config: shortened, these would name another registry */
	expect_familiar("docker.io/a.b/c:1", "docker.io/a.b/c:1");
	expect_familiar("docker.io/localhost/c:1", "docker.io/localhost/c:1");
	expect_norm("docker.io/a.b/c:1", "docker.io/a.b/c:1");

	expect_bad_name("UPPER");
	expect_bad_name("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	expect_bad_name("");
	expect_bad_name("UP PER");
	expect_bad_name("bb latest");
	expect_bad_name("../x");
	expect_bad_name("a/../b");
	expect_bad_name("a//b");
	expect_bad_name("-x");
	expect_bad_name(".hidden");
	expect_bad_name("/abs");
	expect_bad_name("trailing/");
	expect_bad_name("bb:");
	expect_bad_name(":tag");
	expect_bad_name("a\nb");
	expect_bad_name("a\tb");
	expect_bad_name("a\x1b[31mb");
	expect_bad_name("ev\x1b[31mil.example:5000/x");
	expect_bad_name("../../x:1");
	expect_bad_name("bb;rm");
	expect_bad_name("bb$x");
	expect_bad_name("b\"b");
	char *name256 = xcalloc(1, 257);
	memset(name256, 'a', 256);
	expect_bad_name(name256);
	char *huge = xcalloc(1, 10001);
	memset(huge, 'b', 10000);
	expect_bad_name(huge);
	free(name256);
	free(huge);
}

/* ---- import and get ------------------------------------------------------------ */

static void check_rootfs(const char *dir)
{
	char *p = xasprintf("%s/bin/hello", dir);
	char *text = NULL;
	assert_int_equal(read_file_at(AT_FDCWD, p, &text, NULL, NULL), 0);
	assert_string_equal(text, hello_sh);
	struct stat st;
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0755);
	free(text);
	free(p);
	p = xasprintf("%s/etc/motd", dir);
	assert_int_equal(read_file_at(AT_FDCWD, p, &text, NULL, NULL), 0);
	assert_string_equal(text, motd);
	free(text);
	free(p);
	char target[256];
	p = xasprintf("%s/bin/hi", dir);
	ssize_t n = readlink(p, target, sizeof(target) - 1);
	assert_int_equal(n, 5);
	target[n] = '\0';
	assert_string_equal(target, "hello");
	free(p);
	p = xasprintf("%s/etc/mtab", dir);
	n = readlink(p, target, sizeof(target) - 1);
	assert_true(n > 0);
	target[n] = '\0';
	assert_string_equal(target, "/proc/mounts");
	free(p);
	p = xasprintf("%s/etc", dir);
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	free(p);
}

static void test_import_and_get(void **state)
{
	struct fx *f = *state;
	char id[65];
	import_ok(f, f->tar, "bb", id);

	struct hutch_image *img = get_ok(f, "bb");
	assert_string_equal(img->id, id);
	assert_string_equal(img->name, "bb:latest");
	hutch_image_free(img);
	img = get_ok(f, "docker.io/library/bb");
	assert_string_equal(img->name, "bb:latest");
	assert_int_equal(img->n_layers, 1);
	char *want_dir = layer_dir(f);
	/* the layer is keyed by the tar's sha256 (its diff_id and, alone, its chain id) */
	assert_string_equal(img->layer_dirs[0], want_dir);
	struct stat st;
	assert_int_equal(stat(img->layer_dirs[0], &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	check_rootfs(img->layer_dirs[0]);
	assert_true(img->layer_fds[0] >= 0);
	/* config defaults */
	assert_int_equal(img->n_env, 1);
	assert_string_equal(img->env[0],
			    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
	assert_int_equal(img->n_cmd, 1);
	assert_string_equal(img->cmd[0], "/bin/sh");
	assert_int_equal(img->n_entrypoint, 0);
	assert_null(img->workdir);
	assert_null(img->user);
	assert_true(img->created > 1700000000);
	assert_true(img->size >= (int64_t)(strlen(hello_sh) + strlen(motd)));
	hutch_image_free(img);

	/* by full name, id, 12-char prefix, sha256: prefix */
	img = get_ok(f, "bb:latest");
	assert_string_equal(img->id, id);
	hutch_image_free(img);
	char prefix[13];
	memcpy(prefix, id, 12);
	prefix[12] = '\0';
	img = get_ok(f, prefix);
	assert_string_equal(img->id, id);
	assert_int_equal(img->n_layers, 1);
	assert_string_equal(img->layer_dirs[0], want_dir);
	hutch_image_free(img);
	img = get_ok(f, id);
	assert_string_equal(img->id, id);
	hutch_image_free(img);
	char *sha = xasprintf("sha256:%s", id);
	img = get_ok(f, sha);
	assert_string_equal(img->id, id);
	hutch_image_free(img);
	free(sha);

	/* the config is stored under its own sha256 */
	char *cfg_path = xasprintf("%s/images/configs/%s.json", f->data, id);
	char *cfg = NULL;
	size_t cfg_len = 0;
	assert_int_equal(read_file_at(AT_FDCWD, cfg_path, &cfg, &cfg_len, NULL), 0);
	char cfg_hex[65];
	sha256_hex_of(cfg, cfg_len, cfg_hex);
	assert_string_equal(cfg_hex, id);
	assert_non_null(strstr(cfg, f->diff_hex));
	free(cfg);
	free(cfg_path);

	/* misses */
	expect_get_fails(f, "nope", "nope");
	expect_get_fails(f, "bb:2", "bb:2");
	expect_get_fails(f, "ffffffffffff", "ffffffffffff");
	expect_get_fails(f, "../../etc", NULL);

	/* nothing left in staging */
	assert_int_equal(count_store(f, "tmp"), 0);
	free(want_dir);
}

/* A reopened store sees the same images. */
static void test_reopen(void **state)
{
	struct fx *f = *state;
	char id[65];
	import_ok(f, f->tar, "persist:1", id);
	hutch_store_close(f->store);
	f->store = NULL;
	struct hutch_err *err = NULL;
	assert_int_equal(hutch_store_open(f->data, false, HUTCH_STORE_WRITE, &f->store, &err), 0);
	struct hutch_image *img = get_ok(f, "persist:1");
	assert_string_equal(img->id, id);
	check_rootfs(img->layer_dirs[0]);
	hutch_image_free(img);
}

/* Same tarball, second name, same path: one layer dir; list shows both; the
 * layer goes with the last name. */
static void test_shared_layer_same_source(void **state)
{
	struct fx *f = *state;
	char id1[65], id2[65];
	import_ok(f, f->tar, "first", id1);
	import_ok(f, f->tar, "second:v1", id2);
	struct hutch_image *a = get_ok(f, "first"), *b = get_ok(f, "second:v1");
	assert_string_equal(a->layer_dirs[0], b->layer_dirs[0]);
	hutch_image_free(a);
	hutch_image_free(b);
	assert_int_equal(count_store(f, "layers"), 3); /* the dir, its .size and .split */

	struct hutch_image_list l;
	struct hutch_err *err = NULL;
	assert_int_equal(hutch_image_list(f->store, &l, &err), 0);
	assert_int_equal(l.n, 2);
	bool saw1 = false, saw2 = false;
	for (size_t i = 0; i < l.n; i++) {
		if (!strcmp(l.refs[i].name, "first:latest")) {
			saw1 = true;
			assert_string_equal(l.refs[i].id, id1);
		} else if (!strcmp(l.refs[i].name, "second:v1")) {
			saw2 = true;
			assert_string_equal(l.refs[i].id, id2);
		} else {
			fail_msg("unexpected name %s", l.refs[i].name);
		}
		assert_true(l.refs[i].size > 0);
		assert_true(l.refs[i].created > 0);
	}
	assert_true(saw1 && saw2);
	hutch_image_list_free(&l);

	char *ldir = layer_dir(f);
	remove_ok(f, "first");
	expect_get_fails(f, "first", "first");
	assert_true(path_exists(ldir));
	struct hutch_image *img = get_ok(f, "second:v1");
	check_rootfs(img->layer_dirs[0]);
	hutch_image_free(img);

	remove_ok(f, "second:v1");
	expect_get_fails(f, "second:v1", NULL);
	assert_false(path_exists(ldir));
	assert_int_equal(count_store(f, "layers"), 0);
	assert_int_equal(count_store(f, "configs"), 0);
	assert_int_equal(count_store(f, "tmp"), 0);
	assert_int_equal(hutch_image_list(f->store, &l, &err), 0);
	assert_int_equal(l.n, 0);
	hutch_image_list_free(&l);
	free(ldir);

	/* removing a name that is gone: an error naming it */
	err = NULL;
	assert_int_equal(hutch_image_remove(f->store, "first", NULL, &err), -1);
	assert_non_null(err);
	assert_non_null(strstr(err->msg, "first"));
	hutch_err_free(&err);
}

/* Same bytes from another path: different image ids (the config records the
 * source), one shared layer, kept until its last image goes. */
static void test_shared_layer_two_images(void **state)
{
	struct fx *f = *state;
	char id1[65], id2[65];
	import_ok(f, f->tar, "one", id1);
	import_ok(f, f->tar_copy, "two", id2);
	assert_string_not_equal(id1, id2);
	assert_int_equal(count_store(f, "configs"), 2);
	assert_int_equal(count_store(f, "layers"), 3);
	char *ldir = layer_dir(f);

	remove_ok(f, "one");
	assert_true(path_exists(ldir));
	assert_int_equal(count_store(f, "configs"), 1);
	struct hutch_image *img = get_ok(f, "two");
	check_rootfs(img->layer_dirs[0]);
	hutch_image_free(img);

	remove_ok(f, "two");
	assert_false(path_exists(ldir));
	assert_int_equal(count_store(f, "configs"), 0);
	assert_int_equal(count_store(f, "layers"), 0);
	assert_int_equal(count_store(f, "tmp"), 0);
	free(ldir);
}

static void test_remove_in_use(void **state)
{
	struct fx *f = *state;
	char id[65];
	import_ok(f, f->tar, "busy", id);
	struct hutch_image *held = get_ok(f, "busy");
	struct hutch_err *err = NULL;
	assert_int_equal(hutch_image_remove(f->store, "busy", NULL, &err), -1);
	assert_non_null(err);
	if (!strstr(err->msg, "in use"))
		fail_msg("error '%s' does not say 'in use'", err->msg);
	assert_non_null(strstr(err->msg, "busy"));
	hutch_err_free(&err);
	/* nothing was removed */
	struct hutch_image *again = get_ok(f, "busy");
	assert_string_equal(again->id, id);
	check_rootfs(again->layer_dirs[0]);
	hutch_image_free(again);
	assert_true(path_exists(held->layer_dirs[0]));
	/* still held by `held` */
	assert_int_equal(hutch_image_remove(f->store, "busy", NULL, &err), -1);
	hutch_err_free(&err);
	hutch_image_free(held);
	remove_ok(f, "busy");
	assert_int_equal(count_store(f, "layers"), 0);
	assert_int_equal(count_store(f, "configs"), 0);
}

/* By id, as docker: an image with several names is refused, naming them; with
 * one, that name goes with the image. */
static void test_remove_by_id_with_names(void **state)
{
	struct fx *f = *state;
	char id[65];
	import_ok(f, f->tar, "named", id);
	struct hutch_err *err = NULL;
	assert_int_equal(hutch_image_tag(f->store, "named", "named:2", &err), 0);
	assert_int_equal(hutch_image_remove(f->store, id, NULL, &err), -1);
	assert_non_null(err);
	assert_non_null(strstr(err->msg, "named:latest, named:2"));
	hutch_err_free(&err);
	struct hutch_image *img = get_ok(f, "named");
	hutch_image_free(img);
	remove_ok(f, "named:2");
	struct hutch_image_removal done;
	assert_int_equal(hutch_image_remove(f->store, id, &done, &err), 0);
	assert_string_equal(done.untagged, "named:latest");
	assert_string_equal(done.deleted, id);
	hutch_image_removal_free(&done);
	assert_int_equal(count_store(f, "layers"), 0);
	assert_int_equal(count_store(f, "configs"), 0);
}

/* A container of image B holds the layer B shares with image A: removing A
 * must go ahead (the shared layer stays for B); only a layer that would be
 * deleted is "in use". */
static void test_remove_sibling_of_image_in_use(void **state)
{
	struct fx *f = *state;
	char id1[65], id2[65];
	import_ok(f, f->tar, "sib-a", id1);
	import_ok(f, f->tar_copy, "sib-b", id2);
	assert_string_not_equal(id1, id2);
	struct hutch_image *held = get_ok(f, "sib-b");
	struct hutch_err *err = NULL;
	int r = hutch_image_remove(f->store, "sib-a", NULL, &err);
	char *msg = err ? xstrdup(err->msg) : NULL;
	hutch_err_free(&err);
	/* the held image is intact whatever happened */
	check_rootfs(held->layer_dirs[0]);
	hutch_image_free(held);
	if (r != 0) {
		char buf[512];
		snprintf(buf, sizeof(buf), "%s", msg ? msg : "(no message)");
		free(msg);
		fail_msg("removing sib-a (layer shared with the held sib-b) failed: %s", buf);
	}
	free(msg);
	expect_get_fails(f, "sib-a", NULL);
	char *ldir = layer_dir(f);
	assert_true(path_exists(ldir));
	free(ldir);
}

/* ---- crash leftovers and bad input ----------------------------------------------- */

static void test_staging_cleanup(void **state)
{
	struct fx *f = *state;
	hutch_store_close(f->store);
	f->store = NULL;
	/* a writer that died mid-import, with a d--------- dir like overlay's work dir */
	char *old = fx_path(f, "tmp/import-dead01/layer/usr/bin");
	struct hutch_err *err = NULL;
	assert_int_equal(mkdir_p_at(AT_FDCWD, old, 0755, &err), 0);
	char *file = fx_path(f, "tmp/import-dead01/layer/usr/bin/tool");
	write_bytes(file, "x", 1);
	char *locked_dir = fx_path(f, "tmp/import-dead01/layer/work");
	assert_int_equal(mkdir(locked_dir, 0), 0);
	char *rm_dir = fx_path(f, "tmp/rm-0123");
	assert_int_equal(mkdir(rm_dir, 0755), 0);
	/* a writer still at work: its staging dir is locked */
	char *busy = fx_path(f, "tmp/import-live01");
	assert_int_equal(mkdir(busy, 0755), 0);
	char *busy_file = fx_path(f, "tmp/import-live01/partial");
	write_bytes(busy_file, "y", 1);
	int busy_fd = open(busy, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(busy_fd >= 0);
	assert_int_equal(flock(busy_fd, LOCK_EX), 0);

	assert_int_equal(hutch_store_open(f->data, false, HUTCH_STORE_WRITE, &f->store, &err), 0);
	assert_null(err);
	char *dead = fx_path(f, "tmp/import-dead01");
	assert_false(path_exists(dead));
	assert_false(path_exists(rm_dir));
	assert_true(path_exists(busy_file));
	assert_int_equal(count_store(f, "tmp"), 1);

	/* once its writer is gone, the next open removes it */
	close(busy_fd);
	hutch_store_close(f->store);
	f->store = NULL;
	assert_int_equal(hutch_store_open(f->data, false, HUTCH_STORE_WRITE, &f->store, &err), 0);
	assert_int_equal(count_store(f, "tmp"), 0);

	/* the store still works */
	char id[65];
	import_ok(f, f->tar, "after-crash", id);
	free(old);
	free(file);
	free(locked_dir);
	free(rm_dir);
	free(busy);
	free(busy_file);
	free(dead);
}

static void expect_import_fails(struct fx *f, const char *src, const char *name, const char *needle)
{
	char id[65];
	struct hutch_err *err = NULL;
	if (hutch_image_import(f->store, src, name, id, &err) == 0)
		fail_msg("import of %s as %s succeeded", src, name);
	assert_non_null(err);
	if (needle && !strstr(err->msg, needle))
		fail_msg("error '%s' does not mention '%s'", err->msg, needle);
	hutch_err_free(&err);
	/* no staging debris, no new layer, config or name */
	assert_int_equal(count_store(f, "tmp"), 0);
	assert_int_equal(count_store(f, "layers"), 3); /* the "keep" image's */
	assert_int_equal(count_store(f, "configs"), 1);
	expect_get_fails(f, name, NULL);
	struct hutch_image_list l;
	assert_int_equal(hutch_image_list(f->store, &l, &err), 0);
	assert_int_equal(l.n, 1);
	hutch_image_list_free(&l);
}

static void test_import_bad_input(void **state)
{
	struct fx *f = *state;
	char id[65];
	import_ok(f, f->tar, "keep", id);

	/* text, not a tar */
	char *text = xasprintf("%s/notes.txt", f->base);
	char *buf = xcalloc(1, 64 * 1024);
	for (size_t i = 0; i < 64 * 1024 - 1; i++)
		buf[i] = "this is not a tar archive\n"[i % 26];
	write_bytes(text, buf, strlen(buf));
	expect_import_fails(f, text, "junk", text);

	/* random-looking binary */
	for (size_t i = 0; i < 64 * 1024; i++)
		buf[i] = (char)((i * 2654435761u) >> 13);
	write_bytes(text, buf, 64 * 1024);
	expect_import_fails(f, text, "junk", NULL);

	/* empty file, zeros only */
	write_bytes(text, "", 0);
	expect_import_fails(f, text, "junk", NULL);
	memset(buf, 0, 64 * 1024);
	write_bytes(text, buf, 10240);
	expect_import_fails(f, text, "junk", NULL);

	/* a truncated tar: the file's data cut short */
	struct tarbuf t = rootfs_tar();
	write_bytes(text, t.buf, 512 + 10);
	expect_import_fails(f, text, "junk", NULL);
	/* a header with a broken checksum */
	t.buf[148] = '7';
	write_bytes(text, t.buf, t.len);
	expect_import_fails(f, text, "junk", NULL);
	free(t.buf);

	/* a tar with an escaping entry */
	struct tarbuf evil = {0};
	tar_entry(&evil, "ok", '0', 0644, NULL, "fine");
	tar_entry(&evil, "../../escape", '0', 0644, NULL, "bad");
	tar_end(&evil);
	write_bytes(text, evil.buf, evil.len);
	free(evil.buf);
	expect_import_fails(f, text, "junk", NULL);
	char *esc = xasprintf("%s/escape", f->data);
	assert_false(path_exists(esc));
	free(esc);

	/* a truncated gzip of a good tar */
	struct tarbuf good = rootfs_tar();
	char *gz = xasprintf("%s/cut.tar.gz", f->base);
	gzFile g = gzopen(gz, "wb");
	assert_non_null(g);
	assert_int_equal(gzwrite(g, good.buf, (unsigned)good.len), (int)good.len);
	gzclose(g);
	free(good.buf);
	struct stat st;
	assert_int_equal(stat(gz, &st), 0);
	assert_int_equal(truncate(gz, st.st_size / 2), 0);
	expect_import_fails(f, gz, "junk", NULL);
	free(gz);

	/* missing source, a device, a bad name (nothing even staged) */
	char *missing = xasprintf("%s/does-not-exist.tar", f->base);
	expect_import_fails(f, missing, "junk", "does-not-exist.tar");
	free(missing);
	expect_import_fails(f, "/dev/null", "junk", NULL);
	expect_import_fails(f, f->tar, "../bad", "../bad");
	expect_import_fails(f, f->tar, "", NULL);

	/* "keep" is untouched */
	struct hutch_image *img = get_ok(f, "keep");
	check_rootfs(img->layer_dirs[0]);
	hutch_image_free(img);
	free(text);
	free(buf);
}

/* gzip is detected by content; the layer is keyed by the uncompressed bytes, so
 * the .tar.gz shares the .tar's layer. */
static void test_import_gzip_shares_layer(void **state)
{
	struct fx *f = *state;
	struct tarbuf t = rootfs_tar();
	char *gz = xasprintf("%s/rootfs.bin", f->base); /* no telling extension */
	gzFile g = gzopen(gz, "wb9");
	assert_non_null(g);
	assert_int_equal(gzwrite(g, t.buf, (unsigned)t.len), (int)t.len);
	assert_int_equal(gzclose(g), Z_OK);
	free(t.buf);
	char id_plain[65], id_gz[65];
	import_ok(f, f->tar, "plain", id_plain);
	import_ok(f, gz, "gz", id_gz);
	struct hutch_image *a = get_ok(f, "plain"), *b = get_ok(f, "gz");
	assert_string_equal(a->layer_dirs[0], b->layer_dirs[0]);
	check_rootfs(b->layer_dirs[0]);
	hutch_image_free(a);
	hutch_image_free(b);
	assert_int_equal(count_store(f, "layers"), 3);
	free(gz);
}

/* A directory is imported through tar(1). */
static void test_import_directory(void **state)
{
	struct fx *f = *state;
	char *dir = xasprintf("%s/rootdir", f->base);
	char *cmd = xasprintf("mkdir -p '%s' && tar -C '%s' -xf '%s'", dir, dir, f->tar);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	char id[65];
	import_ok(f, dir, "fromdir", id);
	struct hutch_image *img = get_ok(f, "fromdir");
	check_rootfs(img->layer_dirs[0]);
	hutch_image_free(img);
	assert_int_equal(count_store(f, "tmp"), 0);
	/* the source is left alone */
	char *src_file = xasprintf("%s/bin/hello", dir);
	assert_true(path_exists(src_file));
	free(src_file);
	free(dir);
}

/* Re-importing under the same name moves the name; the old image goes with
 * its last name only when removed explicitly (the name now points elsewhere). */
static void test_reimport_same_name(void **state)
{
	struct fx *f = *state;
	char id1[65], id2[65];
	import_ok(f, f->tar, "app", id1);
	import_ok(f, f->tar_copy, "app", id2);
	struct hutch_image *img = get_ok(f, "app");
	assert_string_equal(img->id, id2);
	hutch_image_free(img);
	struct hutch_image_list l;
	struct hutch_err *err = NULL;
	assert_int_equal(hutch_image_list(f->store, &l, &err), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.refs[0].name, "app:latest");
	assert_string_equal(l.refs[0].id, id2);
	hutch_image_list_free(&l);
	remove_ok(f, "app");
	assert_int_equal(hutch_image_list(f->store, &l, &err), 0);
	assert_int_equal(l.n, 0);
	hutch_image_list_free(&l);
}

/* Rootless: a layer with read-only directories holding files (Fedora-like
 * images have r-xr-xr-x /usr/bin) is removed completely, not left in tmp/.
 * Runs in a child that drops to nobody, on a store it owns. */
static int rootless_child(const char *data, const char *tar)
{
	if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
		return 10;
	struct hutch_store *s = NULL;
	struct hutch_err *err = NULL;
	char id[65];
	int rc = 0;
	if (hutch_store_open(data, true, HUTCH_STORE_WRITE, &s, &err) < 0) {
		rc = 11;
		goto out;
	}
	if (hutch_image_import(s, tar, "ro", id, &err) < 0) {
		rc = 12;
		goto out;
	}
	if (hutch_image_remove(s, "ro", NULL, &err) < 0) {
		rc = 13;
		goto out;
	}
	hutch_store_close(s);
	s = NULL;
	/* even a reopen (which clears staging) must leave nothing */
	if (hutch_store_open(data, true, HUTCH_STORE_WRITE, &s, &err) < 0) {
		rc = 14;
		goto out;
	}
	static const char *const subs[] = {"layers", "tmp", "configs"};
	for (size_t i = 0; i < ARRAY_SIZE(subs); i++) {
		char *p = xasprintf("%s/images/%s", data, subs[i]);
		DIR *d = opendir(p);
		free(p);
		if (!d) {
			rc = 15;
			goto out;
		}
		struct dirent *de;
		while ((de = readdir(d)))
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
				fprintf(stderr, "rootless remove left images/%s/%s\n", subs[i],
					de->d_name);
				rc = 20;
			}
		closedir(d);
	}
out:
	if (err)
		fprintf(stderr, "rootless child: %s\n", err->msg);
	hutch_err_free(&err);
	hutch_store_close(s);
	return rc;
}

static void test_rootless_remove_readonly_dirs(void **state)
{
	struct fx *f = *state;
	if (geteuid() != 0)
		skip();
	struct tarbuf t = {0};
	tar_entry(&t, "usr/", '5', 0755, NULL, NULL);
	tar_entry(&t, "usr/bin/", '5', 0555, NULL, NULL);
	tar_entry(&t, "usr/bin/tool", '0', 0755, NULL, "#!/bin/sh\n");
	tar_entry(&t, "usr/bin/sub/", '5', 0555, NULL, NULL);
	tar_entry(&t, "usr/bin/sub/x", '0', 0644, NULL, "x");
	tar_end(&t);
	char *tar = xasprintf("%s/ro.tar", f->base);
	write_bytes(tar, t.buf, t.len);
	free(t.buf);
	char *data = xasprintf("%s/rootless", f->base);
	assert_int_equal(mkdir(data, 0700), 0);
	assert_int_equal(chown(data, 65534, 65534), 0);
	assert_int_equal(chmod(f->base, 0755), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(rootless_child(data, tar));
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	free(tar);
	free(data);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) != 0)
		fail_msg("rootless import+remove of a layer with 0555 dirs: child status %d "
			 "(13: remove failed, 20: debris left)",
			 WEXITSTATUS(status));
}

/* ---- image plans: blobs named by a source ------------------------------------ */

static struct image_plan *plan_for(struct fx *f, const char *blob_path)
{
	struct image_plan *p = image_plan_new();
	p->config = xasprintf("{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:%s\"]}}",
			      f->diff_hex);
	p->config_len = strlen(p->config);
	p->layers = xcalloc(1, sizeof(*p->layers));
	p->n_layers = 1;
	p->layers[0].path = xstrdup(blob_path);
	p->layers[0].length = -1;
	p->layers[0].size = -1;
	p->source = xstrdup("test");
	return p;
}

static void on_alarm(int sig)
{
	(void)sig;
	static const char msg[] = "the import blocked on a fifo planted as a layer blob\n";
	write(2, msg, sizeof(msg) - 1);
	_exit(1);
}

static void test_plan_blob_not_a_regular_file(void **state)
{
	/* A layout checked a blob, then someone put a fifo or a symlink in its
	 * place before the worker opens it: refused, never blocked on or followed. */
	struct fx *f = *state;
	_cleanup_free_ char *fifo = xasprintf("%s/blob-fifo", f->base);
	_cleanup_free_ char *link = xasprintf("%s/blob-link", f->base);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(symlink(f->tar, link), 0);
	signal(SIGALRM, on_alarm);
	alarm(20);
	const char *paths[] = {fifo, link};
	const char *needles[] = {"not a regular file", "blob-link"};
	for (size_t i = 0; i < 2; i++) {
		struct image_plan *p = plan_for(f, paths[i]);
		struct hutch_err *err = NULL;
		char id[65];
		assert_int_equal(store_import_plan(f->store, p, "planted", id, &err), -1);
		assert_non_null(err);
		if (!strstr(err->msg, needles[i]))
			fail_msg("'%s' lacks '%s'", err->msg, needles[i]);
		hutch_err_free(&err);
		image_plan_free(p);
	}
	alarm(0);
	/* the real file is fine */
	struct image_plan *p = plan_for(f, f->tar);
	struct hutch_err *err = NULL;
	char id[65];
	if (store_import_plan(f->store, p, "planted", id, &err) < 0)
		fail_msg("import: %s", err->msg);
	image_plan_free(p);
	struct hutch_image *img = get_ok(f, "planted");
	hutch_image_free(img);
}

/* An import waits for its own workers only: a child of the caller's that exits
 * meanwhile (a supervisor's container) is left for the caller to reap. */
static void test_import_reaps_only_its_own_children(void **state)
{
	struct fx *f = *state;
	pid_t other = fork();
	assert_true(other >= 0);
	if (other == 0)
		_exit(7);
	/* a zombie by the time the import waits */
	siginfo_t si = {0};
	assert_int_equal(waitid(P_PID, (id_t)other, &si, WEXITED | WNOWAIT), 0);
	/* through the plan: its layers are unpacked by forked workers */
	struct image_plan *p = plan_for(f, f->tar);
	struct hutch_err *err = NULL;
	char id[65];
	if (store_import_plan(f->store, p, "planted", id, &err) < 0)
		fail_msg("import: %s", err->msg);
	image_plan_free(p);
	int status = 0;
	assert_int_equal(waitpid(other, &status, 0), other);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 7);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ref_normalize),
	    T(test_plan_blob_not_a_regular_file),
	    T(test_import_and_get),
	    T(test_reopen),
	    T(test_shared_layer_same_source),
	    T(test_shared_layer_two_images),
	    T(test_remove_in_use),
	    T(test_remove_by_id_with_names),
	    T(test_remove_sibling_of_image_in_use),
	    T(test_staging_cleanup),
	    T(test_import_bad_input),
	    T(test_import_gzip_shares_layer),
	    T(test_import_directory),
	    T(test_reimport_same_name),
	    T(test_rootless_remove_readonly_dirs),
	    T(test_import_reaps_only_its_own_children),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
