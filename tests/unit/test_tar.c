/* The tar reader on archives built in memory: every header format it accepts,
 * and the malformed and hostile ones it must refuse with a clear message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/util.h"
#include "images/layer_internal.h"
#include "tests/unit/tar_builder.h"

/* What the reader made of one entry, copied out (entries only live until the
 * next tar_next). */
struct seen {
	char *path, *link;
	enum tar_type type;
	mode_t mode;
	uid_t uid;
	gid_t gid;
	int64_t size;
	struct timespec mtime;
	unsigned devmajor, devminor;
	char *data;
	size_t data_len;
	size_t n_xattrs;
	char *xattr_name[4];
	char *xattr_value[4];
	size_t xattr_len[4];
};

struct result {
	int rc;
	struct seen e[64];
	size_t n;
	char *err;
};

static void result_free(struct result *res)
{
	for (size_t i = 0; i < res->n; i++) {
		free(res->e[i].path);
		free(res->e[i].link);
		free(res->e[i].data);
		for (size_t k = 0; k < 4; k++) {
			free(res->e[i].xattr_name[k]);
			free(res->e[i].xattr_value[k]);
		}
	}
	free(res->err);
	memset(res, 0, sizeof(*res));
}

/* Read the whole archive with reads of at most `chunk` bytes from the source
 * and data reads of `data_chunk` bytes; skip_data leaves data to the reader. */
static void read_archive(const struct tb *t, size_t chunk, size_t data_chunk, bool skip_data,
			 struct result *res)
{
	memset(res, 0, sizeof(*res));
	struct mem_source src = {.data = t->buf, .len = t->len, .chunk = chunk};
	struct tar_reader *r = tar_reader_new(mem_source_read, &src);
	struct hutch_err *err = NULL;
	for (;;) {
		const struct tar_entry *e;
		int rc = tar_next(r, &e, &err);
		if (rc <= 0) {
			res->rc = rc;
			break;
		}
		assert_true(res->n < 64);
		struct seen *s = &res->e[res->n++];
		s->path = xstrdup(e->path);
		s->link = xstrdup(e->linkname);
		s->type = e->type;
		s->mode = e->mode;
		s->uid = e->uid;
		s->gid = e->gid;
		s->size = e->size;
		s->mtime = e->mtime;
		s->devmajor = e->devmajor;
		s->devminor = e->devminor;
		s->n_xattrs = e->n_xattrs;
		for (size_t k = 0; k < e->n_xattrs && k < 4; k++) {
			s->xattr_name[k] = xstrdup(e->xattrs[k].name);
			s->xattr_value[k] = xcalloc(1, e->xattrs[k].len + 1);
			memcpy(s->xattr_value[k], e->xattrs[k].value, e->xattrs[k].len);
			s->xattr_len[k] = e->xattrs[k].len;
		}
		if (skip_data)
			continue;
		s->data = xcalloc(1, (size_t)e->size + 1);
		for (;;) {
			size_t want = data_chunk;
			ssize_t n = tar_read_data(r, s->data + s->data_len, want, &err);
			if (n < 0) {
				res->rc = -1;
				goto out;
			}
			if (n == 0)
				break;
			s->data_len += (size_t)n;
			assert_true(s->data_len <= (size_t)e->size);
		}
	}
out:
	if (err) {
		res->err = xstrdup(err->msg);
		hutch_err_free(&err);
	}
	tar_reader_free(r);
}

static void expect_error(const struct tb *t, const char *needle1, const char *needle2)
{
	struct result res;
	read_archive(t, 0, 4096, false, &res);
	assert_int_equal(res.rc, -1);
	assert_non_null(res.err);
	if (getenv("SHOW_ERRORS"))
		print_message("  error: %s\n", res.err);
	if (!strstr(res.err, needle1) || (needle2 && !strstr(res.err, needle2)))
		fail_msg("error '%s' lacks '%s'%s%s", res.err, needle1, needle2 ? " / " : "",
			 needle2 ? needle2 : "");
	result_free(&res);
}

/* ---- formats ------------------------------------------------------------------- */

static void build_basic(struct tb *t)
{
	tb_dir(t, "./", 0755);
	tb_dir(t, "./etc/", 0755);
	tb_file(t, "./etc/hostname", "box\n", 0644);
	tb_symlink(t, "./etc/localtime", "/usr/share/zoneinfo/UTC");
	tb_hardlink(t, "./etc/hostname2", "./etc/hostname");
	struct tb_hdr h = tb_defaults("./dev/null", '3', 0666);
	h.devmajor = 1;
	h.devminor = 3;
	tb_entry(t, h, NULL, 0);
	h = tb_defaults("./dev/sda", '4', 0660);
	h.devmajor = 8;
	tb_entry(t, h, NULL, 0);
	tb_entry(t, tb_defaults("./run/fifo", '6', 0600), NULL, 0);
	tb_entry(t, tb_defaults("./contig", '7', 0644), "c", 1);
	h = tb_defaults("./bin/su", '0', 04755);
	h.uid = 1234;
	h.gid = 5678;
	h.mtime = 1234567890;
	tb_entry(t, h, "setuid!", 7);
	tb_end(t);
}

static void check_basic(const struct result *res)
{
	assert_int_equal(res->rc, 0);
	assert_int_equal(res->n, 10);
	assert_string_equal(res->e[0].path, "./");
	assert_int_equal(res->e[0].type, TAR_DIR);
	assert_string_equal(res->e[2].path, "./etc/hostname");
	assert_int_equal(res->e[2].type, TAR_FILE);
	assert_int_equal(res->e[2].mode, 0644);
	assert_int_equal(res->e[2].size, 4);
	assert_int_equal(res->e[3].type, TAR_SYMLINK);
	assert_string_equal(res->e[3].link, "/usr/share/zoneinfo/UTC");
	assert_int_equal(res->e[4].type, TAR_HARDLINK);
	assert_string_equal(res->e[4].link, "./etc/hostname");
	assert_int_equal(res->e[5].type, TAR_CHAR);
	assert_int_equal(res->e[5].devmajor, 1);
	assert_int_equal(res->e[5].devminor, 3);
	assert_int_equal(res->e[6].type, TAR_BLOCK);
	assert_int_equal(res->e[6].devmajor, 8);
	assert_int_equal(res->e[7].type, TAR_FIFO);
	assert_int_equal(res->e[8].type, TAR_FILE); /* '7' contiguous */
	assert_int_equal(res->e[9].mode, 04755);
	assert_int_equal(res->e[9].uid, 1234);
	assert_int_equal(res->e[9].gid, 5678);
	assert_int_equal(res->e[9].mtime.tv_sec, 1234567890);
	assert_int_equal(res->e[9].mtime.tv_nsec, 0);
	assert_int_equal(res->e[9].size, 7);
	if (res->e[9].data)
		assert_string_equal(res->e[9].data, "setuid!");
}

static void test_basic_types(void **state)
{
	struct tb t = {0};
	build_basic(&t);
	struct result res;
	read_archive(&t, 0, 4096, false, &res);
	check_basic(&res);
	assert_string_equal(res.e[2].data, "box\n");
	result_free(&res);
	tb_free(&t);
}

static void test_any_chunking(void **state)
{
	/* Source reads of 1, 7, 511, 513 bytes and data reads of 1 and 3 bytes:
	 * the buffering must not change what is read. */
	struct tb t = {0};
	build_basic(&t);
	size_t chunks[] = {1, 7, 511, 512, 513, 100000};
	size_t data_chunks[] = {1, 3, 65536};
	for (size_t i = 0; i < ARRAY_SIZE(chunks); i++) {
		for (size_t j = 0; j < ARRAY_SIZE(data_chunks); j++) {
			struct result res;
			read_archive(&t, chunks[i], data_chunks[j], false, &res);
			check_basic(&res);
			assert_string_equal(res.e[2].data, "box\n");
			result_free(&res);
		}
		struct result res;
		read_archive(&t, chunks[i], 0, true, &res); /* data skipped by the reader */
		check_basic(&res);
		result_free(&res);
	}
	tb_free(&t);
}

static void test_big_file_direct_reads(void **state)
{
	/* Bigger than the reader's buffer, read in big and odd pieces, so both
	 * the buffered and the direct path carry data; then a file after it. */
	size_t n = 3 * 1024 * 1024 + 77;
	char *data = malloc(n);
	for (size_t i = 0; i < n; i++)
		data[i] = (char)(i * 131 + (i >> 12));
	struct tb t = {0};
	tb_entry(&t, tb_defaults("big", '0', 0644), data, n);
	tb_file(&t, "after", "tail", 0644);
	tb_end(&t);
	size_t data_chunks[] = {1 << 20, 40000, 4096};
	for (size_t j = 0; j < ARRAY_SIZE(data_chunks); j++) {
		struct result res;
		read_archive(&t, 0, data_chunks[j], false, &res);
		assert_int_equal(res.rc, 0);
		assert_int_equal(res.n, 2);
		assert_int_equal(res.e[0].data_len, n);
		assert_memory_equal(res.e[0].data, data, n);
		assert_string_equal(res.e[1].data, "tail");
		result_free(&res);
	}
	free(data);
	tb_free(&t);
}

static void test_ustar_prefix(void **state)
{
	struct tb t = {0};
	struct tb_hdr h = tb_defaults("file.txt", '0', 0644);
	h.prefix = "some/long/prefix";
	tb_entry(&t, h, "x", 1);
	/* GNU headers keep atime/ctime where ustar has the prefix: never a path */
	h.fmt = TB_GNU;
	h.prefix = "12345670123";
	tb_entry(&t, h, "y", 1);
	tb_end(&t);
	struct result res;
	read_archive(&t, 0, 4096, false, &res);
	assert_int_equal(res.rc, 0);
	assert_string_equal(res.e[0].path, "some/long/prefix/file.txt");
	assert_string_equal(res.e[1].path, "file.txt");
	result_free(&res);
	tb_free(&t);
}

static void test_v7_header(void **state)
{
	struct tb t = {0};
	struct tb_hdr h = tb_defaults("olddir/", '\0', 0755);
	h.fmt = TB_V7;
	tb_entry(&t, h, NULL, 0);
	h = tb_defaults("olddir/file", '\0', 0600);
	h.fmt = TB_V7;
	h.signed_checksum = true; /* an old signed-char sum... */
	h.name = "olddir/f\xe9";  /* ...that differs from the unsigned one */
	tb_entry(&t, h, "v7", 2);
	tb_end(&t);
	struct result res;
	read_archive(&t, 0, 4096, false, &res);
	assert_int_equal(res.rc, 0);
	assert_int_equal(res.n, 2);
	assert_int_equal(res.e[0].type, TAR_DIR);
	assert_int_equal(res.e[1].type, TAR_FILE);
	assert_string_equal(res.e[1].data, "v7");
	result_free(&res);
	tb_free(&t);
}

static void test_base256_numbers(void **state)
{
	struct tb t = {0};
	struct tb_hdr h = tb_defaults("b256", '0', 0644);
	h.base256 = true;
	h.uid = 3000000000u;
	h.gid = 70000;
	h.mtime = -86400; /* before 1970 */
	tb_entry(&t, h, "hello", 5);
	tb_end(&t);
	struct result res;
	read_archive(&t, 0, 4096, false, &res);
	assert_int_equal(res.rc, 0);
	assert_int_equal(res.e[0].uid, 3000000000u);
	assert_int_equal(res.e[0].gid, 70000);
	assert_int_equal(res.e[0].mtime.tv_sec, -86400);
	assert_int_equal(res.e[0].size, 5);
	assert_string_equal(res.e[0].data, "hello");
	result_free(&res);
	tb_free(&t);
}

static char *long_name(size_t len, char c)
{
	char *s = xcalloc(1, len + 1);
	for (size_t i = 0; i < len; i++)
		s[i] = (i % 50 == 49) ? '/' : c;
	return s;
}

static void test_gnu_long_names(void **state)
{
	_cleanup_free_ char *name = long_name(300, 'n');
	_cleanup_free_ char *target = long_name(250, 't');
	struct tb t = {0};
	tb_gnu_long(&t, 'L', name);
	tb_file(&t, "truncated-name", "data", 0644);
	tb_gnu_long(&t, 'K', target);
	tb_gnu_long(&t, 'L', name);
	tb_symlink(&t, "short", "short-target");
	tb_file(&t, "plain", "p", 0644); /* long names apply to one entry only */
	tb_end(&t);
	struct result res;
	read_archive(&t, 13, 4096, false, &res);
	assert_int_equal(res.rc, 0);
	assert_int_equal(res.n, 3);
	assert_string_equal(res.e[0].path, name);
	assert_string_equal(res.e[0].data, "data");
	assert_string_equal(res.e[1].path, name);
	assert_string_equal(res.e[1].link, target);
	assert_string_equal(res.e[2].path, "plain");
	assert_string_equal(res.e[2].link, "");
	result_free(&res);
	tb_free(&t);
}

static void test_pax_attributes(void **state)
{
	_cleanup_free_ char *name = long_name(400, 'p');
	struct tb t = {0}, rec = {0};
	tb_pax_str(&rec, "path", name);
	tb_pax_str(&rec, "uid", "4000000000");
	tb_pax_str(&rec, "gid", "123456");
	tb_pax_str(&rec, "mtime", "1700000000.123456789123");
	tb_pax_str(&rec, "atime", "1.5");
	tb_pax_str(&rec, "uname", "someone");
	tb_pax_record(&rec, "SCHILY.xattr.user.bin", "a\0b", 3);
	tb_pax_str(&rec, "SCHILY.xattr.security.capability", "caps");
	tb_pax(&t, 'x', &rec);
	tb_file(&t, "short", "content", 0644);
	tb_free(&rec);

	tb_pax_str(&rec, "linkpath", "pax-target");
	tb_pax_str(&rec, "mtime", "-1.25");
	tb_pax(&t, 'x', &rec);
	tb_symlink(&t, "sym", "header-target");
	tb_free(&rec);

	tb_file(&t, "after", "a", 0644); /* pax 'x' applies to one entry */
	tb_end(&t);

	struct result res;
	read_archive(&t, 0, 4096, false, &res);
	assert_int_equal(res.rc, 0);
	assert_int_equal(res.n, 3);
	assert_string_equal(res.e[0].path, name);
	assert_int_equal(res.e[0].uid, 4000000000u);
	assert_int_equal(res.e[0].gid, 123456);
	assert_int_equal(res.e[0].mtime.tv_sec, 1700000000);
	assert_int_equal(res.e[0].mtime.tv_nsec, 123456789);
	assert_int_equal(res.e[0].n_xattrs, 2);
	assert_string_equal(res.e[0].xattr_name[0], "user.bin");
	assert_int_equal(res.e[0].xattr_len[0], 3);
	assert_memory_equal(res.e[0].xattr_value[0], "a\0b", 3);
	assert_string_equal(res.e[0].xattr_name[1], "security.capability");
	assert_string_equal(res.e[0].data, "content");
	assert_string_equal(res.e[1].link, "pax-target");
	assert_int_equal(res.e[1].mtime.tv_sec, -2);
	assert_int_equal(res.e[1].mtime.tv_nsec, 750000000);
	assert_string_equal(res.e[2].path, "after");
	assert_int_equal(res.e[2].n_xattrs, 0);
	assert_int_equal(res.e[2].uid, 0);
	result_free(&res);
	tb_free(&t);
}

static void test_pax_size_override(void **state)
{
	/* The octal field says 0; pax says 5000: the data is 5000 bytes. */
	char data[5000];
	memset(data, 'z', sizeof(data));
	struct tb t = {0}, rec = {0};
	tb_pax_str(&rec, "size", "5000");
	tb_pax(&t, 'x', &rec);
	struct tb_hdr h = tb_defaults("sized", '0', 0644);
	tb_header(&t, &h);
	tb_put(&t, data, sizeof(data));
	tb_pad(&t);
	tb_file(&t, "next", "n", 0644);
	tb_end(&t);
	struct result res;
	read_archive(&t, 0, 4096, false, &res);
	assert_int_equal(res.rc, 0);
	assert_int_equal(res.n, 2);
	assert_int_equal(res.e[0].size, 5000);
	assert_int_equal(res.e[0].data_len, 5000);
	assert_string_equal(res.e[1].path, "next");
	result_free(&res);
	tb_free(&rec);
	tb_free(&t);
}

static void test_pax_global(void **state)
{
	struct tb t = {0}, rec = {0};
	tb_pax_str(&rec, "uid", "77");
	tb_pax_str(&rec, "comment", "git archive puts a commit id here");
	tb_pax(&t, 'g', &rec);
	tb_free(&rec);
	tb_file(&t, "one", "1", 0644);
	tb_pax_str(&rec, "uid", "88"); /* local beats global */
	tb_pax(&t, 'x', &rec);
	tb_free(&rec);
	tb_file(&t, "two", "2", 0644);
	tb_pax_str(&rec, "uid", ""); /* empty local: back to the header's value */
	tb_pax(&t, 'x', &rec);
	tb_free(&rec);
	struct tb_hdr h = tb_defaults("three", '0', 0644);
	h.uid = 5;
	tb_entry(&t, h, "3", 1);
	tb_pax_str(&rec, "uid", ""); /* a later global deletes the global value */
	tb_pax(&t, 'g', &rec);
	tb_free(&rec);
	tb_entry(&t, h, "4", 1);
	tb_end(&t);

	struct result res;
	read_archive(&t, 0, 4096, false, &res);
	assert_int_equal(res.rc, 0);
	assert_int_equal(res.n, 4);
	assert_int_equal(res.e[0].uid, 77);
	assert_int_equal(res.e[1].uid, 88);
	assert_int_equal(res.e[2].uid, 5);
	assert_int_equal(res.e[3].uid, 5);
	result_free(&res);
	tb_free(&t);
}

static void test_header_only_types_have_no_data(void **state)
{
	/* A symlink whose size field claims 512 bytes: as in Go's reader, no
	 * data follows it, and the next header is read right after. */
	struct tb t = {0};
	struct tb_hdr h = tb_defaults("sym", '2', 0777);
	h.linkname = "target";
	h.size = 512;
	tb_header(&t, &h);
	tb_file(&t, "next", "n", 0644);
	tb_end(&t);
	struct result res;
	read_archive(&t, 0, 4096, false, &res);
	assert_int_equal(res.rc, 0);
	assert_int_equal(res.n, 2);
	assert_int_equal(res.e[0].size, 0);
	assert_string_equal(res.e[1].path, "next");
	result_free(&res);
	tb_free(&t);
}

static void test_end_without_zero_blocks(void **state)
{
	/* Ending cleanly at a header boundary is accepted, as Go and GNU tar do. */
	struct tb t = {0};
	tb_file(&t, "only", "x", 0644);
	struct result res;
	read_archive(&t, 0, 4096, false, &res);
	assert_int_equal(res.rc, 0);
	assert_int_equal(res.n, 1);
	result_free(&res);
	tb_free(&t);
}

static void test_empty_archive(void **state)
{
	struct tb t = {0};
	struct result res;
	read_archive(&t, 0, 4096, false, &res);
	assert_int_equal(res.rc, 0);
	assert_int_equal(res.n, 0);
	result_free(&res);
	tb_end(&t);
	read_archive(&t, 0, 4096, false, &res);
	assert_int_equal(res.rc, 0);
	assert_int_equal(res.n, 0);
	result_free(&res);
	tb_free(&t);
}

/* ---- malformed and hostile ---------------------------------------------------------- */

static void test_bad_checksum(void **state)
{
	struct tb t = {0};
	tb_file(&t, "good", "g", 0644);
	struct tb_hdr h = tb_defaults("evil-entry", '0', 0644);
	h.checksum_delta = 1;
	tb_entry(&t, h, "x", 1);
	tb_end(&t);
	expect_error(&t, "'evil-entry'", "bad checksum");
	tb_free(&t);

	/* not a tar at all */
	tb_put(&t, "{\"this is\": \"json\"}", 19);
	tb_zeros(&t, 600);
	expect_error(&t, "not a tar archive", NULL);
	tb_free(&t);
}

static void test_truncated_data(void **state)
{
	struct tb t = {0};
	char data[3000];
	memset(data, 'd', sizeof(data));
	tb_entry(&t, tb_defaults("victim", '0', 0644), data, sizeof(data));
	t.len = 512 + 1000; /* cut inside the data */
	expect_error(&t, "'victim'", "truncated");

	/* the same when the caller skips the data */
	struct result res;
	read_archive(&t, 0, 0, true, &res);
	assert_int_equal(res.rc, -1);
	assert_non_null(strstr(res.err, "'victim'"));
	assert_non_null(strstr(res.err, "truncated"));
	result_free(&res);
	tb_free(&t);

	/* cut inside the padding after the data */
	tb_entry(&t, tb_defaults("padded", '0', 0644), "abc", 3);
	t.len = 512 + 100;
	read_archive(&t, 0, 0, true, &res);
	assert_int_equal(res.rc, -1);
	assert_non_null(strstr(res.err, "truncated"));
	result_free(&res);
	tb_free(&t);
}

static void test_truncated_header(void **state)
{
	struct tb t = {0};
	tb_file(&t, "first", "1", 0644);
	tb_file(&t, "second", "2", 0644);
	t.len = 1024 + 300; /* inside the second header */
	expect_error(&t, "truncated in the header at byte 1024 (after entry 'first')", NULL);
	tb_free(&t);

	/* a long-name header and then nothing */
	tb_gnu_long(&t, 'L', "a-long-name");
	expect_error(&t, "truncated", NULL);
	tb_end(&t);
	expect_error(&t, "ends right after", NULL);
	tb_free(&t);
}

static void test_pax_malformed(void **state)
{
	const char *bad[] = {
	    "99999999999 path=x\n",	     /* length past the end */
	    "5 a=b\n",			     /* length too short for its record */
	    "13 pathxxxxx\n",		     /* no '=' */
	    "x path=abc\n",		     /* no length */
	    "11 path=abc",		     /* no newline */
	    "7 =abc\n",			     /* empty key */
	    "28 uid=12345678901234567890\n", /* overflows */
	    "11 uid=-12\n",
	    "14 mtime=1.2x\n",
	    "9 size=\x01\n",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct tb t = {0};
		struct tb_hdr h = tb_defaults("PaxHeaders/victim", 'x', 0644);
		tb_entry(&t, h, bad[i], strlen(bad[i]));
		tb_file(&t, "victim", "v", 0644);
		tb_end(&t);
		struct result res;
		read_archive(&t, 0, 4096, false, &res);
		if (res.rc != -1)
			fail_msg("pax record '%s' was accepted", bad[i]);
		assert_non_null(res.err);
		result_free(&res);
		tb_free(&t);
	}
}

static void test_size_bounds(void **state)
{
	/* A pax header that claims 2 GiB: refused before any allocation. */
	struct tb t = {0};
	struct tb_hdr h = tb_defaults("PaxHeaders/huge", 'x', 0644);
	h.size = 2LL << 30;
	tb_header(&t, &h);
	tb_zeros(&t, 4096);
	expect_error(&t, "pax extended header of 2147483648 bytes", "allowed");
	tb_free(&t);

	/* Same through base-256 with an absurd size. */
	h.base256 = true;
	h.size = INT64_MAX;
	tb_header(&t, &h);
	expect_error(&t, "larger than", NULL);
	tb_free(&t);

	/* A GNU long name over 64 KiB. */
	h = tb_defaults("././@LongLink", 'L', 0644);
	h.fmt = TB_GNU;
	h.size = 70000;
	tb_header(&t, &h);
	tb_zeros(&t, 70000);
	tb_pad(&t);
	expect_error(&t, "GNU long name of 70000 bytes", NULL);
	tb_free(&t);

	/* An xattr value over 64 KiB, and too many xattrs. */
	struct tb rec = {0};
	char *big = xcalloc(1, 70000);
	memset(big, 'v', 69999);
	tb_pax_str(&rec, "SCHILY.xattr.user.big", big);
	free(big);
	tb_pax(&t, 'x', &rec);
	tb_file(&t, "xattr-victim", "", 0644);
	tb_end(&t);
	expect_error(&t, "xattr value larger than 64 KiB", NULL);
	tb_free(&t);
	tb_free(&rec);

	for (int i = 0; i < 300; i++) {
		char key[64];
		snprintf(key, sizeof(key), "SCHILY.xattr.user.k%d", i);
		tb_pax_str(&rec, key, "v");
	}
	tb_pax(&t, 'x', &rec);
	tb_file(&t, "xattr-victim", "", 0644);
	tb_end(&t);
	expect_error(&t, "more than 256 xattrs", NULL);
	tb_free(&t);
	tb_free(&rec);

	/* Negative size. */
	h = tb_defaults("negative", '0', 0644);
	h.base256 = true;
	h.size = -5;
	tb_header(&t, &h);
	tb_end(&t);
	expect_error(&t, "'negative'", "'size' is not a valid number");
	tb_free(&t);
}

static void test_global_headers_bounded(void **state)
{
	/* Many global headers, each fine alone, must not add up without bound. */
	struct tb t = {0}, rec = {0};
	char *val = xcalloc(1, 900 * 1024);
	memset(val, 'g', 900 * 1024 - 1);
	tb_pax_str(&rec, "comment", val);
	free(val);
	tb_pax(&t, 'g', &rec);
	tb_pax(&t, 'g', &rec);
	tb_file(&t, "f", "", 0644);
	tb_end(&t);
	expect_error(&t, "more than 1 MiB", NULL);
	tb_free(&t);
	tb_free(&rec);
}

static void test_bad_numeric_fields(void **state)
{
	struct tb t = {0};
	tb_file(&t, "bad-mode", "", 0644);
	memcpy(t.buf + 100, "09xx\0\0\0", 8);
	/* recompute the checksum so only the field is wrong */
	memset(t.buf + 148, ' ', 8);
	unsigned sum = 0;
	for (int i = 0; i < 512; i++)
		sum += t.buf[i];
	snprintf((char *)t.buf + 148, 8, "%06o", sum);
	tb_end(&t);
	expect_error(&t, "'bad-mode'", "'mode' is not a valid number");
	tb_free(&t);
}

static void test_unsupported_types(void **state)
{
	struct tb t = {0};
	tb_entry(&t, tb_defaults("sparse", 'S', 0644), NULL, 0);
	tb_end(&t);
	expect_error(&t, "'sparse'", "unsupported tar entry type 'S' (GNU sparse file)");
	tb_free(&t);

	struct tb rec = {0};
	tb_pax_str(&rec, "GNU.sparse.major", "1");
	tb_pax(&t, 'x', &rec);
	tb_file(&t, "pax-sparse", "", 0644);
	tb_end(&t);
	expect_error(&t, "sparse files are not supported", NULL);
	tb_free(&t);
	tb_free(&rec);
}

static void test_error_names_are_escaped(void **state)
{
	/* An escape sequence in a name must not reach the terminal raw. */
	struct tb t = {0};
	tb_file(&t, "first", "", 0644);
	struct tb_hdr h = tb_defaults("evil\x1b[2Jname", '0', 0644);
	h.checksum_delta = 5;
	tb_entry(&t, h, NULL, 0);
	tb_end(&t);
	struct result res;
	read_archive(&t, 0, 4096, false, &res);
	assert_int_equal(res.rc, -1);
	assert_null(strchr(res.err, '\x1b'));
	assert_non_null(strstr(res.err, "evil\\x1b[2Jname"));
	result_free(&res);
	tb_free(&t);
}

static void test_read_error_and_sticky_failure(void **state)
{
	struct tb t = {0};
	char data[2000];
	memset(data, 'q', sizeof(data));
	tb_entry(&t, tb_defaults("broken-read", '0', 0644), data, sizeof(data));
	tb_end(&t);
	struct mem_source src = {.data = t.buf, .len = t.len, .fail_errno = EIO, .fail_at = 700};
	struct tar_reader *r = tar_reader_new(mem_source_read, &src);
	struct hutch_err *err = NULL;
	const struct tar_entry *e;
	assert_int_equal(tar_next(r, &e, &err), 1);
	char buf[4096];
	ssize_t n;
	while ((n = tar_read_data(r, buf, sizeof(buf), &err)) > 0)
		;
	assert_int_equal(n, -1);
	assert_non_null(err);
	assert_int_equal(err->errno_, EIO);
	assert_non_null(strstr(err->msg, "broken-read"));
	hutch_err_free(&err);
	/* once failed, always failed */
	assert_int_equal(tar_next(r, &e, &err), -1);
	hutch_err_free(&err);
	tar_reader_free(r);
	tb_free(&t);
}

/* A seekable source (as a file is): skip moves ahead without reading. */
struct seek_source {
	struct mem_source m; /* first: mem_source_read takes the same ctx */
	size_t skips;
	uint64_t skipped;
};

static int seek_skip(void *ctx, uint64_t n)
{
	struct seek_source *s = ctx;
	if (n > s->m.len - s->m.pos) {
		s->m.pos = s->m.len;
		return 0;
	}
	s->m.pos += n;
	s->skips++;
	s->skipped += n;
	return 1;
}

/* Indexing an archive without extracting it: where each entry's data starts,
 * through pax and GNU long-name headers, with the data seeked over. */
static void test_skip_and_data_offsets(void **state)
{
	(void)state;
	struct tb t = {0};
	char big[3000];
	memset(big, 'b', sizeof(big));
	uint64_t want[4];
	want[0] = t.len + 512;
	tb_file(&t, "a", "hello", 0644);
	want[1] = t.len + 512;
	tb_entry(&t, tb_defaults("big", '0', 0644), big, sizeof(big));
	struct tb rec = {0};
	tb_pax_str(&rec, "path", "long/pax/name");
	tb_pax(&t, 'x', &rec);
	want[2] = t.len + 512;
	tb_file(&t, "ignored-by-pax", "xyz", 0644);
	tb_gnu_long(&t, 'L', "gnu/long/name");
	want[3] = t.len + 512;
	tb_file(&t, "short", "tail", 0644);
	tb_end(&t);

	struct seek_source src = {.m = {.data = t.buf, .len = t.len, .chunk = 512}};
	struct tar_reader *r = tar_reader_new(mem_source_read, &src);
	tar_reader_set_skip(r, seek_skip);
	struct hutch_err *err = NULL;
	const struct tar_entry *e;
	const char *names[] = {"a", "big", "long/pax/name", "gnu/long/name"};
	const char *data[] = {"hello", NULL, "xyz", "tail"};
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(tar_next(r, &e, &err), 1);
		assert_string_equal(e->path, names[i]);
		assert_int_equal(tar_data_offset(r), want[i]);
		if (data[i])
			assert_memory_equal(t.buf + want[i], data[i], strlen(data[i]));
		if (i == 0) {
			/* read part of it: the offset moves, the rest is skipped */
			char two[2];
			assert_int_equal(tar_read_data(r, two, 2, &err), 2);
			assert_int_equal(tar_data_offset(r), want[0] + 2);
		}
	}
	assert_int_equal(tar_next(r, &e, &err), 0);
	assert_null(err);
	/* the big entry's data was seeked over, not read */
	assert_true(src.skips > 0);
	assert_true(src.skipped >= sizeof(big));
	tar_reader_free(r);
	tb_free(&rec);

	/* An entry whose data runs past the end: an error, not a quiet end. */
	struct tb bad = {0};
	struct tb_hdr h = tb_defaults("cut", '0', 0644);
	h.size = 100000;
	tb_header(&bad, &h);
	tb_put(&bad, "abc", 3);
	tb_pad(&bad);
	struct seek_source bsrc = {.m = {.data = bad.buf, .len = bad.len, .chunk = 512}};
	r = tar_reader_new(mem_source_read, &bsrc);
	tar_reader_set_skip(r, seek_skip);
	assert_int_equal(tar_next(r, &e, &err), 1);
	assert_int_equal(tar_next(r, &e, &err), -1);
	assert_non_null(err);
	assert_non_null(strstr(err->msg, "truncated"));
	hutch_err_free(&err);
	tar_reader_free(r);
	tb_free(&bad);
	tb_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_basic_types),
	    cmocka_unit_test(test_any_chunking),
	    cmocka_unit_test(test_big_file_direct_reads),
	    cmocka_unit_test(test_ustar_prefix),
	    cmocka_unit_test(test_v7_header),
	    cmocka_unit_test(test_base256_numbers),
	    cmocka_unit_test(test_gnu_long_names),
	    cmocka_unit_test(test_pax_attributes),
	    cmocka_unit_test(test_pax_size_override),
	    cmocka_unit_test(test_pax_global),
	    cmocka_unit_test(test_header_only_types_have_no_data),
	    cmocka_unit_test(test_end_without_zero_blocks),
	    cmocka_unit_test(test_empty_archive),
	    cmocka_unit_test(test_bad_checksum),
	    cmocka_unit_test(test_truncated_data),
	    cmocka_unit_test(test_truncated_header),
	    cmocka_unit_test(test_pax_malformed),
	    cmocka_unit_test(test_size_bounds),
	    cmocka_unit_test(test_global_headers_bounded),
	    cmocka_unit_test(test_bad_numeric_fields),
	    cmocka_unit_test(test_unsupported_types),
	    cmocka_unit_test(test_error_names_are_escaped),
	    cmocka_unit_test(test_read_error_and_sticky_failure),
	    cmocka_unit_test(test_skip_and_data_offsets),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
