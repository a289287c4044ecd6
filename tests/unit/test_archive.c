/* images/archive.c: OCI layouts (directories and tars of them, compressed or
 * not) and docker save archives (legacy and Docker 25+) built in temp dirs,
 * turned into plans; selection by name and platform; and the hostile ones:
 * traversal in blob names, links out of the archive, missing and corrupt blobs. */
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
#include <sys/stat.h>
#include <unistd.h>

#include "common/sha256.h"
#include "common/util.h"
#include "images/manifest_internal.h"
#include "images/source_internal.h"
#include "tests/unit/tar_builder.h"

#define assert_fails(call, ...)                                                                    \
	do {                                                                                       \
		struct hutch_err *err_ = NULL;                                                     \
		struct hutch_err **err = &err_;                                                    \
		int rc_ = (call);                                                                  \
		if (rc_ >= 0)                                                                      \
			fail_msg("expected %s to fail", #call);                                    \
		assert_non_null(err_);                                                             \
		const char *want_[] = {__VA_ARGS__};                                               \
		for (size_t i_ = 0; i_ < ARRAY_SIZE(want_); i_++)                                  \
			if (!strstr(err_->msg, want_[i_]))                                         \
				fail_msg("error '%s' does not mention '%s'", err_->msg,            \
					 want_[i_]);                                               \
		hutch_err_free(&err_);                                                             \
	} while (0)

#define assert_ok(call)                                                                            \
	do {                                                                                       \
		struct hutch_err *err_ = NULL;                                                     \
		struct hutch_err **err = &err_;                                                    \
		if ((call) < 0)                                                                    \
			fail_msg("%s failed: %s", #call, err_ ? err_->msg : "?");                  \
		assert_null(err_);                                                                 \
	} while (0)

/* ---- helpers ---------------------------------------------------------------- */

static char *base; /* a temp dir per test */

static int setup(void **state)
{
	(void)state;
	char t[] = "/tmp/hutch-test-archive-XXXXXX";
	if (!mkdtemp(t))
		return -1;
	base = xstrdup(t);
	/* decompressed archives go here too, so teardown can check they are gone */
	setenv("TMPDIR", base, 1);
	return 0;
}

static size_t count_tmp_archives(void)
{
	DIR *d = opendir(base);
	size_t n = 0;
	struct dirent *de;
	while (d && (de = readdir(d)))
		n += !strncmp(de->d_name, "hutch-archive-", 14);
	if (d)
		closedir(d);
	return n;
}

static size_t count_files(const char *dir)
{
	DIR *d = opendir(dir);
	size_t n = 0;
	struct dirent *de;
	while (d && (de = readdir(d)))
		n += de->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

static int teardown(void **state)
{
	(void)state;
	size_t left = count_tmp_archives();
	remove_tree_at(AT_FDCWD, base, NULL);
	free(base);
	unsetenv("TMPDIR");
	return left ? -1 : 0; /* a plan's temp file outlived it */
}

static char *path_in(const char *rel)
{
	return xasprintf("%s/%s", base, rel);
}

static void write_at(const char *dir, const char *rel, const void *data, size_t len)
{
	_cleanup_free_ char *p = xasprintf("%s/%s", dir, rel);
	_cleanup_free_ char *parent = xstrdup(p);
	*strrchr(parent, '/') = '\0';
	assert_int_equal(mkdir_p_at(AT_FDCWD, parent, 0755, NULL), 0);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, data, len), 0);
	close(fd);
}

static void write_str(const char *dir, const char *rel, const char *s)
{
	write_at(dir, rel, s, strlen(s));
}

static void digest_of(const void *data, size_t len, char out[72])
{
	struct sha256_ctx c;
	uint8_t d[32];
	char hex[65];
	sha256_init(&c);
	sha256_update(&c, data, len);
	sha256_final(&c, d);
	sha256_hex(d, hex);
	snprintf(out, 72, "sha256:%s", hex);
}

/* Store bytes as a blob of the layout; its digest in d. */
static void add_blob(const char *layout, const void *data, size_t len, char d[72])
{
	digest_of(data, len, d);
	_cleanup_free_ char *rel = xasprintf("blobs/sha256/%s", d + 7);
	write_at(layout, rel, data, len);
}

static void add_blob_str(const char *layout, const char *s, char d[72])
{
	add_blob(layout, s, strlen(s), d);
}

/* The bytes a plan layer points at hash to want. */
static void assert_range_is(const struct image_plan *p, const struct plan_layer *l,
			    const char *want)
{
	int fd = l->in_tmp ? dup(p->tmp_fd) : open(l->path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_true(l->length >= 0 && l->length < (1 << 24));
	char *buf = xcalloc(1, (size_t)l->length + 1);
	assert_int_equal(pread(fd, buf, (size_t)l->length, l->offset), l->length);
	close(fd);
	char got[72];
	digest_of(buf, (size_t)l->length, got);
	free(buf);
	assert_string_equal(got, want);
}

struct img {
	char manifest[72];
	size_t manifest_size;
	char config[72];
	char layers[2][72];
	char *manifest_json;
};

/* A two-layer image in the layout: layers' content depends on marker. */
static void make_image(const char *layout, const char *arch, const char *marker, struct img *im)
{
	char l0[64], l1[64];
	snprintf(l0, sizeof(l0), "layer zero of %s", marker);
	snprintf(l1, sizeof(l1), "layer one of %s, a bit longer", marker);
	add_blob_str(layout, l0, im->layers[0]);
	add_blob_str(layout, l1, im->layers[1]);
	_cleanup_free_ char *cfg = xasprintf(
	    "{\"architecture\":\"%s\",\"os\":\"linux\",\"config\":{\"Cmd\":[\"/bin/sh\"]},"
	    "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"%s\",\"%s\"]}}",
	    arch, im->layers[0], im->layers[1]);
	add_blob_str(layout, cfg, im->config);
	im->manifest_json = xasprintf(
	    "{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_MANIFEST "\","
	    "\"config\":{\"mediaType\":\"" MT_OCI_CONFIG "\",\"digest\":\"%s\",\"size\":%zu},"
	    "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":"
	    "\"%s\",\"size\":%zu},{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\","
	    "\"digest\":\"%s\",\"size\":%zu}]}",
	    im->config, strlen(cfg), im->layers[0], strlen(l0), im->layers[1], strlen(l1));
	add_blob_str(layout, im->manifest_json, im->manifest);
	im->manifest_size = strlen(im->manifest_json);
}

static void img_free(struct img *im)
{
	free(im->manifest_json);
}

/* {"mediaType":...,"digest":...,"size":...[,annotations/platform]} */
static char *desc_json(const char *mt, const char *digest, size_t size, const char *ref_name,
		       const char *platform_json)
{
	_cleanup_free_ char *ann =
	    ref_name ? xasprintf(",\"annotations\":{\"org.opencontainers.image.ref.name\":\"%s\"}",
				 ref_name)
		     : xstrdup("");
	_cleanup_free_ char *pl =
	    platform_json ? xasprintf(",\"platform\":%s", platform_json) : xstrdup("");
	return xasprintf("{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu%s%s}", mt, digest,
			 size, ann, pl);
}

static void write_layout_files(const char *layout, const char *entries)
{
	write_str(layout, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}");
	_cleanup_free_ char *index = xasprintf("{\"schemaVersion\":2,\"manifests\":[%s]}", entries);
	write_str(layout, "index.json", index);
}

/* A layout with one image named ref_name. */
static char *simple_layout(const char *name, const char *ref_name, struct img *im)
{
	char *layout = path_in(name);
	make_image(layout, "amd64", name, im);
	_cleanup_free_ char *e =
	    desc_json(MT_OCI_MANIFEST, im->manifest, im->manifest_size, ref_name, NULL);
	write_layout_files(layout, e);
	return layout;
}

static void sh(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *cmd;
	assert_true(vasprintf(&cmd, fmt, ap) >= 0);
	va_end(ap);
	int rc = system(cmd);
	if (rc != 0)
		fail_msg("'%s' exited %d", cmd, rc);
	free(cmd);
}

static struct image_plan *plan_of(const char *path, const char *ref, const char *platform,
				  enum archive_kind want_kind)
{
	enum archive_kind kind;
	assert_ok(archive_detect(path, &kind, err));
	assert_int_equal(kind, want_kind);
	struct image_platform p;
	if (platform)
		assert_ok(image_platform_parse(platform, &p, err));
	struct image_plan *plan = NULL;
	assert_ok(archive_plan(path, kind, ref, platform ? &p : NULL, NULL, &plan, err));
	return plan;
}

static int plan_err(const char *path, enum archive_kind kind, const char *ref, const char *platform,
		    struct hutch_err **err)
{
	struct image_platform p;
	if (platform && image_platform_parse(platform, &p, NULL) < 0)
		fail_msg("platform %s", platform);
	struct image_plan *plan = NULL;
	int rc = archive_plan(path, kind, ref, platform ? &p : NULL, NULL, &plan, err);
	if (rc == 0)
		image_plan_free(plan);
	return rc;
}

/* ---- OCI layouts ----------------------------------------------------------------- */

static void check_simple_plan(struct image_plan *p, struct img *im, bool in_tar)
{
	assert_int_equal(p->n_layers, 2);
	assert_string_equal(p->config_digest, im->config);
	char got[72];
	digest_of(p->config, p->config_len, got);
	assert_string_equal(got, im->config);
	for (size_t i = 0; i < 2; i++) {
		assert_string_equal(p->layers[i].digest, im->layers[i]);
		assert_int_equal(p->layers[i].size, p->layers[i].length);
		assert_range_is(p, &p->layers[i], im->layers[i]);
		if (!in_tar) {
			assert_int_equal(p->layers[i].offset, 0);
			assert_non_null(strstr(p->layers[i].path, im->layers[i] + 7));
		}
	}
	assert_string_equal(p->layers[0].media_type, "application/vnd.oci.image.layer.v1.tar");
	assert_string_equal(p->layers[1].media_type, "application/vnd.oci.image.layer.v1.tar+gzip");
	assert_int_equal(p->manifest_len, im->manifest_size);
	assert_memory_equal(p->manifest, im->manifest_json, im->manifest_size);
}

static void test_oci_dir(void **state)
{
	(void)state;
	struct img im;
	_cleanup_free_ char *layout = simple_layout("oci", "1.0", &im);
	struct image_plan *p = plan_of(layout, NULL, NULL, ARCHIVE_OCI_DIR);
	check_simple_plan(p, &im, false);
	assert_int_equal(p->tmp_fd, -1);
	assert_string_equal(p->source, layout);
	/* a bare tag is no name: the caller may name the image after the layout */
	assert_int_equal(p->n_tags, 0);
	assert_string_equal(p->bare_tag, "1.0");
	image_plan_free(p);
	/* selected by its tag, or by a full name with that tag */
	p = plan_of(layout, "1.0", NULL, ARCHIVE_OCI_DIR);
	image_plan_free(p);
	p = plan_of(layout, "myapp:1.0", NULL, ARCHIVE_OCI_DIR);
	image_plan_free(p);
	assert_fails(plan_err(layout, ARCHIVE_OCI_DIR, "2.0", NULL, err), "no image named '2.0'",
		     "it has: 1.0");
	img_free(&im);
}

static void test_oci_names_become_tags(void **state)
{
	(void)state;
	struct img im;
	_cleanup_free_ char *a = simple_layout("a", "example.com/team/app:1.2", &im);
	struct image_plan *p = plan_of(a, NULL, NULL, ARCHIVE_OCI_DIR);
	assert_int_equal(p->n_tags, 1);
	assert_string_equal(p->tags[0], "example.com/team/app:1.2");
	image_plan_free(p);
	/* the same image asked for by its tag alone, or by the full name */
	image_plan_free(plan_of(a, "1.2", NULL, ARCHIVE_OCI_DIR));
	image_plan_free(plan_of(a, "example.com/team/app:1.2", NULL, ARCHIVE_OCI_DIR));
	img_free(&im);

	_cleanup_free_ char *b = simple_layout("b", "docker.io/library/busybox", &im);
	p = plan_of(b, "busybox", NULL, ARCHIVE_OCI_DIR);
	assert_int_equal(p->n_tags, 1);
	assert_string_equal(p->tags[0], "docker.io/library/busybox:latest");
	image_plan_free(p);
	img_free(&im);

	/* a name hutch cannot store is left out, and said (escaped) for the
	 * caller to refuse unless it names the image itself */
	_cleanup_free_ char *c = simple_layout("c", "bad name:with space", &im);
	p = plan_of(c, NULL, NULL, ARCHIVE_OCI_DIR);
	assert_int_equal(p->n_tags, 0);
	assert_non_null(p->bad_name);
	assert_non_null(strstr(p->bad_name, "'bad name:with space'"));
	image_plan_free(p);
	img_free(&im);
	_cleanup_free_ char *e = simple_layout("e", "x/\x1b[31mred:1\n", &im);
	p = plan_of(e, NULL, NULL, ARCHIVE_OCI_DIR);
	assert_int_equal(p->n_tags, 0);
	assert_non_null(strstr(p->bad_name, "'x/\\x1b[31mred:1\\x0a'"));
	assert_null(strchr(p->bad_name, '\x1b'));
	assert_null(strchr(p->bad_name, '\n'));
	image_plan_free(p);
	img_free(&im);
}

static void test_oci_several_images(void **state)
{
	(void)state;
	_cleanup_free_ char *layout = path_in("multi");
	struct img one, two;
	make_image(layout, "amd64", "one", &one);
	make_image(layout, "amd64", "two", &two);
	_cleanup_free_ char *e1 =
	    desc_json(MT_OCI_MANIFEST, one.manifest, one.manifest_size, "app:1", NULL);
	_cleanup_free_ char *e2 =
	    desc_json(MT_OCI_MANIFEST, two.manifest, two.manifest_size, "app:2", NULL);
	_cleanup_free_ char *e3 =
	    desc_json(MT_OCI_MANIFEST, two.manifest, two.manifest_size, "other:2", NULL);
	struct img three;
	make_image(layout, "amd64", "three", &three);
	_cleanup_free_ char *e4 =
	    desc_json(MT_OCI_MANIFEST, three.manifest, three.manifest_size, NULL, NULL);
	_cleanup_free_ char *entries = xasprintf("%s,%s,%s,%s", e1, e2, e3, e4);
	write_layout_files(layout, entries);

	/* an entry without a name is shown by its digest, and can be picked by it */
	char unnamed[64];
	snprintf(unnamed, sizeof(unnamed), "unnamed %.19s", three.manifest);
	assert_fails(plan_err(layout, ARCHIVE_OCI_DIR, NULL, NULL, err), "several images",
		     "app:1, app:2, other:2", unnamed);
	char prefix[20];
	snprintf(prefix, sizeof(prefix), "%.19s", three.manifest);
	struct image_plan *p3 = plan_of(layout, prefix, NULL, ARCHIVE_OCI_DIR);
	assert_string_equal(p3->config_digest, three.config);
	assert_int_equal(p3->n_tags, 0);
	image_plan_free(p3);
	img_free(&three);
	struct image_plan *p = plan_of(layout, "app:2", NULL, ARCHIVE_OCI_DIR);
	assert_string_equal(p->layers[0].digest, two.layers[0]);
	assert_string_equal(p->tags[0], "docker.io/library/app:2");
	image_plan_free(p);
	p = plan_of(layout, "1", NULL, ARCHIVE_OCI_DIR);
	assert_string_equal(p->layers[0].digest, one.layers[0]);
	image_plan_free(p);
	assert_fails(plan_err(layout, ARCHIVE_OCI_DIR, "2", NULL, err), "matches several", "app:2",
		     "other:2");
	assert_fails(plan_err(layout, ARCHIVE_OCI_DIR, "app:3", NULL, err), "no image named",
		     "app:1");
	img_free(&one);
	img_free(&two);
}

/* A multi-platform image: index.json -> an index of per-platform manifests. */
static void make_multiarch(const char *layout, struct img ims[3])
{
	static const char *archs[] = {"amd64", "arm64", "arm"};
	static const char *plats[] = {
	    "{\"os\":\"linux\",\"architecture\":\"amd64\"}",
	    "{\"os\":\"linux\",\"architecture\":\"arm64\",\"variant\":\"v8\"}",
	    "{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":\"v7\"}",
	};
	char entries[4096] = "";
	for (size_t i = 0; i < 3; i++) {
		make_image(layout, archs[i], archs[i], &ims[i]);
		_cleanup_free_ char *e = desc_json(MT_OCI_MANIFEST, ims[i].manifest,
						   ims[i].manifest_size, NULL, plats[i]);
		strcat(entries, e);
		strcat(entries, ",");
	}
	/* a buildx attestation manifest */
	_cleanup_free_ char *att =
	    desc_json(MT_OCI_MANIFEST, ims[0].manifest, ims[0].manifest_size, NULL,
		      "{\"os\":\"unknown\",\"architecture\":\"unknown\"}");
	strcat(entries, att);
	_cleanup_free_ char *inner = xasprintf(
	    "{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_INDEX "\",\"manifests\":[%s]}", entries);
	char inner_d[72];
	add_blob_str(layout, inner, inner_d);
	_cleanup_free_ char *top =
	    desc_json(MT_OCI_INDEX, inner_d, strlen(inner), "registry.local/multi:1", NULL);
	write_layout_files(layout, top);
}

static void test_oci_multiplatform(void **state)
{
	(void)state;
	_cleanup_free_ char *layout = path_in("ma");
	struct img ims[3];
	make_multiarch(layout, ims);

	struct image_platform host;
	image_platform_host(&host);
	if (!strcmp(host.arch, "amd64")) {
		struct image_plan *p = plan_of(layout, NULL, NULL, ARCHIVE_OCI_DIR);
		assert_string_equal(p->layers[0].digest, ims[0].layers[0]);
		assert_string_equal(p->tags[0], "registry.local/multi:1");
		image_plan_free(p);
	}
	struct image_plan *p = plan_of(layout, NULL, "linux/arm64", ARCHIVE_OCI_DIR);
	assert_string_equal(p->layers[1].digest, ims[1].layers[1]);
	assert_memory_equal(p->manifest, ims[1].manifest_json, ims[1].manifest_size);
	image_plan_free(p);
	p = plan_of(layout, "registry.local/multi:1", "aarch64", ARCHIVE_OCI_DIR);
	assert_string_equal(p->layers[1].digest, ims[1].layers[1]);
	image_plan_free(p);
	p = plan_of(layout, NULL, "linux/arm", ARCHIVE_OCI_DIR);
	assert_string_equal(p->config_digest, ims[2].config);
	image_plan_free(p);
	assert_fails(plan_err(layout, ARCHIVE_OCI_DIR, NULL, "linux/s390x", err), "linux/s390x",
		     "linux/amd64, linux/arm64, linux/arm/v7", "--platform");
	for (size_t i = 0; i < 3; i++)
		img_free(&ims[i]);
}

static void test_oci_missing_and_corrupt_blobs(void **state)
{
	(void)state;
	struct img im;
	_cleanup_free_ char *layout = simple_layout("bad", NULL, &im);
	/* the index points at a manifest that is not there */
	char absent[72];
	digest_of("nothing", 7, absent);
	_cleanup_free_ char *e = desc_json(MT_OCI_MANIFEST, absent, 7, NULL, NULL);
	write_layout_files(layout, e);
	assert_fails(plan_err(layout, ARCHIVE_OCI_DIR, NULL, NULL, err), absent, "missing");

	/* a manifest blob whose bytes do not match its digest */
	_cleanup_free_ char *mrel = xasprintf("blobs/sha256/%s", im.manifest + 7);
	_cleanup_free_ char *tampered = xstrdup(im.manifest_json);
	tampered[10] = ' ';
	write_str(layout, mrel, tampered);
	e = (free(e), desc_json(MT_OCI_MANIFEST, im.manifest, im.manifest_size, NULL, NULL));
	write_layout_files(layout, e);
	assert_fails(plan_err(layout, ARCHIVE_OCI_DIR, NULL, NULL, err), im.manifest,
		     "its content has digest");
	/* the descriptor's size is not the blob's */
	write_str(layout, mrel, im.manifest_json);
	e = (free(e), desc_json(MT_OCI_MANIFEST, im.manifest, im.manifest_size + 1, NULL, NULL));
	write_layout_files(layout, e);
	assert_fails(plan_err(layout, ARCHIVE_OCI_DIR, NULL, NULL, err),
		     "bytes but its descriptor");
	e = (free(e), desc_json(MT_OCI_MANIFEST, im.manifest, im.manifest_size, NULL, NULL));
	write_layout_files(layout, e);
	image_plan_free(plan_of(layout, NULL, NULL, ARCHIVE_OCI_DIR));

	/* a layer blob missing, then of the wrong size */
	_cleanup_free_ char *lrel = xasprintf("%s/blobs/sha256/%s", layout, im.layers[1] + 7);
	_cleanup_free_ char *moved = xasprintf("%s.away", lrel);
	assert_int_equal(rename(lrel, moved), 0);
	assert_fails(plan_err(layout, ARCHIVE_OCI_DIR, NULL, NULL, err), "layer 1", im.layers[1],
		     "missing");
	write_str(layout, lrel + strlen(layout) + 1, "short");
	assert_fails(plan_err(layout, ARCHIVE_OCI_DIR, NULL, NULL, err), "layer 1",
		     "bytes but the manifest says");
	/* no oci-layout, or a version we do not know */
	_cleanup_free_ char *ol = xasprintf("%s/oci-layout", layout);
	unlink(ol);
	assert_fails(plan_err(layout, ARCHIVE_OCI_DIR, NULL, NULL, err), "not an OCI image layout");
	write_str(layout, "oci-layout", "{\"imageLayoutVersion\":\"9.0\"}");
	assert_fails(plan_err(layout, ARCHIVE_OCI_DIR, NULL, NULL, err), "imageLayoutVersion",
		     "9.0");
	img_free(&im);
}

static void test_oci_layer_count_mismatch(void **state)
{
	(void)state;
	_cleanup_free_ char *layout = path_in("count");
	char l0[72], cfg[72], man[72];
	add_blob_str(layout, "only layer", l0);
	_cleanup_free_ char *c =
	    xasprintf("{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"%s\",\"%s\"]}}", l0, l0);
	add_blob_str(layout, c, cfg);
	_cleanup_free_ char *m = xasprintf(
	    "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" MT_OCI_CONFIG
	    "\",\"digest\":\"%s\","
	    "\"size\":%zu},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\","
	    "\"digest\":\"%s\",\"size\":10}]}",
	    cfg, strlen(c), l0);
	add_blob_str(layout, m, man);
	_cleanup_free_ char *e = desc_json(MT_OCI_MANIFEST, man, strlen(m), NULL, NULL);
	write_layout_files(layout, e);
	assert_fails(plan_err(layout, ARCHIVE_OCI_DIR, NULL, NULL, err), "1 layers", "2 diff_ids");
}

/* A non-distributable layer whose blob is absent says so. */
static void test_oci_foreign_layer(void **state)
{
	(void)state;
	_cleanup_free_ char *layout = path_in("foreign");
	char l0[72], cfg[72], man[72];
	digest_of("elsewhere", 9, l0);
	_cleanup_free_ char *c =
	    xasprintf("{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"%s\"]}}", l0);
	add_blob_str(layout, c, cfg);
	_cleanup_free_ char *m =
	    xasprintf("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" MT_OCI_CONFIG
		      "\",\"digest\":\"%s\","
		      "\"size\":%zu},\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer."
		      "nondistributable.v1.tar+gzip\",\"digest\":\"%s\",\"size\":9,\"urls\":["
		      "\"https://x\"]}]}",
		      cfg, strlen(c), l0);
	add_blob_str(layout, m, man);
	_cleanup_free_ char *e = desc_json(MT_OCI_MANIFEST, man, strlen(m), NULL, NULL);
	write_layout_files(layout, e);
	assert_fails(plan_err(layout, ARCHIVE_OCI_DIR, NULL, NULL, err), "non-distributable", l0);
}

/* An index that contains itself, through a chain: bounded. */
static void test_oci_nested_index_bounded(void **state)
{
	(void)state;
	_cleanup_free_ char *layout = path_in("nest");
	struct img im;
	make_image(layout, "amd64", "deep", &im);
	char d[72];
	size_t size = im.manifest_size;
	memcpy(d, im.manifest, sizeof(d));
	/* 4 levels of index are followed; a 5th is one too many */
	for (int level = 0; level < 5; level++) {
		_cleanup_free_ char *e =
		    desc_json(level ? MT_OCI_INDEX : MT_OCI_MANIFEST, d, size, NULL, NULL);
		_cleanup_free_ char *ix = xasprintf(
		    "{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_INDEX "\",\"manifests\":[%s]}",
		    e);
		add_blob_str(layout, ix, d);
		size = strlen(ix);
		_cleanup_free_ char *top = desc_json(MT_OCI_INDEX, d, size, NULL, NULL);
		write_layout_files(layout, top);
		if (level < 4)
			image_plan_free(plan_of(layout, NULL, NULL, ARCHIVE_OCI_DIR));
		else
			assert_fails(plan_err(layout, ARCHIVE_OCI_DIR, NULL, NULL, err),
				     "nested more than 4 deep");
	}
	/* an index whose media type in the descriptor is not what it is */
	_cleanup_free_ char *liar = desc_json(MT_OCI_MANIFEST, d, size, NULL, NULL);
	write_layout_files(layout, liar);
	assert_fails(plan_err(layout, ARCHIVE_OCI_DIR, NULL, NULL, err), "mismatch");
	img_free(&im);
}

/* Blob files that are symlinks out of the layout are refused (CVE-2024-3727's
 * cousin: the name is clean, where it leads is not). */
static void test_oci_symlink_escape(void **state)
{
	(void)state;
	struct img im;
	_cleanup_free_ char *layout = simple_layout("esc", NULL, &im);
	_cleanup_free_ char *outside = path_in("outside");
	write_str(base, "outside", "layer zero of esc");
	_cleanup_free_ char *l0 = xasprintf("%s/blobs/sha256/%s", layout, im.layers[0] + 7);
	unlink(l0);
	assert_int_equal(symlink(outside, l0), 0);
	assert_fails(plan_err(layout, ARCHIVE_OCI_DIR, NULL, NULL, err), "layer 0",
		     "outside the layout");
	unlink(l0);
	assert_int_equal(symlink("../../../outside", l0), 0);
	assert_fails(plan_err(layout, ARCHIVE_OCI_DIR, NULL, NULL, err), "outside the layout");
	/* a link that stays inside is followed, and the plan names the real file */
	unlink(l0);
	write_str(layout, "real-l0", "layer zero of esc");
	assert_int_equal(symlink("../../real-l0", l0), 0);
	struct image_plan *p = plan_of(layout, NULL, NULL, ARCHIVE_OCI_DIR);
	assert_non_null(strstr(p->layers[0].path, "/real-l0"));
	assert_range_is(p, &p->layers[0], im.layers[0]);
	image_plan_free(p);
	/* blobs that are not files */
	unlink(l0);
	assert_int_equal(mkfifo(l0, 0600), 0);
	assert_fails(plan_err(layout, ARCHIVE_OCI_DIR, NULL, NULL, err), "not a regular file");
	img_free(&im);
}

static void test_oci_tar(void **state)
{
	(void)state;
	struct img im;
	_cleanup_free_ char *layout = simple_layout("t", "app:7", &im);
	_cleanup_free_ char *tar = path_in("t.tar");
	sh("tar -C '%s' -cf '%s' .", layout, tar);
	struct image_plan *p = plan_of(tar, NULL, NULL, ARCHIVE_OCI_TAR);
	check_simple_plan(p, &im, true);
	assert_int_equal(p->tmp_fd, -1);
	assert_false(p->layers[0].in_tmp);
	assert_string_equal(p->layers[0].path, tar);
	assert_true(p->layers[0].offset > 0 && p->layers[0].offset % 512 == 0);
	assert_string_equal(p->tags[0], "docker.io/library/app:7");
	image_plan_free(p);

	/* compressed: decompressed into an unnamed temp file the plan owns, in
	 * the dir given (here none: $TMPDIR, which is base) */
	sh("gzip -k '%s' && zstd -q '%s'", tar, tar);
	static const char *exts[] = {".gz", ".zst"};
	size_t files_before = count_files(base);
	for (size_t i = 0; i < 2; i++) {
		_cleanup_free_ char *c = xasprintf("%s%s", tar, exts[i]);
		p = plan_of(c, "app:7", NULL, ARCHIVE_OCI_TAR);
		check_simple_plan(p, &im, true);
		assert_true(p->tmp_fd >= 0);
		assert_true(p->layers[0].in_tmp && p->layers[1].in_tmp);
		assert_null(p->layers[0].path);
		struct stat st;
		assert_int_equal(fstat(p->tmp_fd, &st), 0);
		assert_int_equal(st.st_nlink, 0); /* nothing to clean after a crash */
		assert_int_equal(count_files(base), files_before);
		image_plan_free(p);
		assert_fails(plan_err(c, ARCHIVE_OCI_TAR, "nope", NULL, err), "no image named");
		assert_int_equal(count_files(base), files_before);
	}
	/* without "./" prefixes, as skopeo writes them */
	_cleanup_free_ char *tar2 = path_in("t2.tar");
	sh("cd '%s' && tar -cf '%s' oci-layout index.json blobs", layout, tar2);
	p = plan_of(tar2, NULL, NULL, ARCHIVE_OCI_TAR);
	check_simple_plan(p, &im, true);
	image_plan_free(p);
	img_free(&im);
}

/* An OCI tar pointing at a blob it lacks. */
static void test_oci_tar_missing_blob(void **state)
{
	(void)state;
	struct img im;
	_cleanup_free_ char *layout = simple_layout("tm", NULL, &im);
	_cleanup_free_ char *l1 = xasprintf("%s/blobs/sha256/%s", layout, im.layers[1] + 7);
	unlink(l1);
	_cleanup_free_ char *tar = path_in("tm.tar");
	sh("tar -C '%s' -cf '%s' .", layout, tar);
	assert_fails(plan_err(tar, ARCHIVE_OCI_TAR, NULL, NULL, err), "layer 1", im.layers[1] + 7,
		     "not in the archive");
	/* truncated in the middle of a blob: the index fails, naming it */
	struct stat st;
	assert_int_equal(stat(tar, &st), 0);
	assert_int_equal(truncate(tar, 2048 + 100), 0);
	assert_fails(plan_err(tar, ARCHIVE_OCI_TAR, NULL, NULL, err), "truncated");
	img_free(&im);
}

/* ---- docker save archives --------------------------------------------------------------- */

#define ID1 "1111111111111111111111111111111111111111111111111111111111111111"
#define ID2 "2222222222222222222222222222222222222222222222222222222222222222"

/* The legacy layout, as docker (and skopeo) write it, with the second layer a
 * symlink to the first (docker save does this for identical layers). */
static char *make_docker_legacy(const char *name, const char *tags_json, char layer_d[72])
{
	_cleanup_free_ char *dir = path_in(name);
	const char *layer = "the one layer's bytes";
	digest_of(layer, strlen(layer), layer_d);
	write_str(dir, ID1 "/layer.tar", layer);
	write_str(dir, ID1 "/VERSION", "1.0");
	write_str(dir, ID1 "/json", "{}");
	assert_int_equal(mkdir_p_at(AT_FDCWD, dir, 0755, NULL), 0);
	_cleanup_free_ char *d2 = xasprintf("%s/" ID2, dir);
	assert_int_equal(mkdir(d2, 0755), 0);
	_cleanup_free_ char *l2 = xasprintf("%s/layer.tar", d2);
	assert_int_equal(symlink("../" ID1 "/layer.tar", l2), 0);
	_cleanup_free_ char *cfg = xasprintf(
	    "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
	    "\"diff_ids\":[\"%s\",\"%s\"]}}",
	    layer_d, layer_d);
	char cfg_d[72];
	digest_of(cfg, strlen(cfg), cfg_d);
	_cleanup_free_ char *cfg_name = xasprintf("%s.json", cfg_d + 7);
	write_str(dir, cfg_name, cfg);
	_cleanup_free_ char *man =
	    xasprintf("[{\"Config\":\"%s\",\"RepoTags\":%s,\"Layers\":[\"" ID1 "/layer.tar\",\"" ID2
		      "/layer.tar\"]}]",
		      cfg_name, tags_json);
	write_str(dir, "manifest.json", man);
	write_str(dir, "repositories", "{}");
	char *tar = xasprintf("%s.tar", dir);
	sh("tar -C '%s' -cf '%s' .", dir, tar);
	return tar;
}

static void test_docker_legacy(void **state)
{
	(void)state;
	char layer_d[72];
	_cleanup_free_ char *tar =
	    make_docker_legacy("legacy", "[\"app:1.0\",\"docker.io/library/app:latest\"]", layer_d);
	struct image_plan *p = plan_of(tar, NULL, NULL, ARCHIVE_DOCKER_TAR);
	assert_int_equal(p->n_layers, 2);
	for (size_t i = 0; i < 2; i++) {
		/* the legacy layout gives no blob digests: the store checks diff_ids */
		assert_string_equal(p->layers[i].digest, "");
		assert_null(p->layers[i].media_type);
		assert_int_equal(p->layers[i].size, -1);
		assert_range_is(p, &p->layers[i], layer_d);
	}
	/* the symlinked layer is the same bytes of the archive */
	assert_int_equal(p->layers[0].offset, p->layers[1].offset);
	assert_string_equal(p->config_digest, "");
	assert_non_null(strstr(p->config, "diff_ids"));
	assert_null(p->manifest);
	assert_int_equal(p->n_tags, 2);
	assert_string_equal(p->tags[0], "docker.io/library/app:1.0");
	assert_string_equal(p->tags[1], "docker.io/library/app:latest");
	image_plan_free(p);
	image_plan_free(plan_of(tar, "app", NULL, ARCHIVE_DOCKER_TAR));
	image_plan_free(plan_of(tar, "1.0", NULL, ARCHIVE_DOCKER_TAR));
	image_plan_free(plan_of(tar, "docker.io/library/app:1.0", NULL, ARCHIVE_DOCKER_TAR));
	assert_fails(plan_err(tar, ARCHIVE_DOCKER_TAR, "app:2", NULL, err), "no image tagged",
		     "app:1.0");
	/* compressed the same */
	sh("gzip -k '%s'", tar);
	_cleanup_free_ char *gz = xasprintf("%s.gz", tar);
	p = plan_of(gz, NULL, NULL, ARCHIVE_DOCKER_TAR);
	assert_range_is(p, &p->layers[1], layer_d);
	assert_true(p->tmp_fd >= 0 && p->layers[1].in_tmp);
	image_plan_free(p);
}

static void test_docker_untagged_and_several(void **state)
{
	(void)state;
	char layer_d[72];
	_cleanup_free_ char *tar = make_docker_legacy("untagged", "null", layer_d);
	struct image_plan *p = plan_of(tar, NULL, NULL, ARCHIVE_DOCKER_TAR);
	assert_int_equal(p->n_tags, 0);
	image_plan_free(p);

	/* two images in one archive (docker save a b) */
	_cleanup_free_ char *dir = path_in("untagged");
	_cleanup_free_ char *mpath = xasprintf("%s/manifest.json", dir);
	_cleanup_free_ char *man = NULL;
	assert_int_equal(read_file_at(AT_FDCWD, mpath, &man, NULL, NULL), 0);
	/* the same image under two names, and one more entry */
	_cleanup_free_ char *first = xstrdup(man + 1);
	first[strlen(first) - 1] = '\0';
	_cleanup_free_ char *a = xstrdup(first), *b = xstrdup(first);
	char *na = strstr(a, "null"), *nb = strstr(b, "null");
	_cleanup_free_ char *a2 = xasprintf("%.*s[\"x:1\"]%s", (int)(na - a), a, na + 4);
	_cleanup_free_ char *b2 = xasprintf("%.*s[\"y:1\",\"y:2\"]%s", (int)(nb - b), b, nb + 4);
	_cleanup_free_ char *both = xasprintf("[%s,%s]", a2, b2);
	write_str(dir, "manifest.json", both);
	_cleanup_free_ char *tar2 = path_in("two.tar");
	sh("tar -C '%s' -cf '%s' .", dir, tar2);
	assert_fails(plan_err(tar2, ARCHIVE_DOCKER_TAR, NULL, NULL, err), "2 images",
		     "x:1, y:1, y:2");
	p = plan_of(tar2, "y:2", NULL, ARCHIVE_DOCKER_TAR);
	assert_int_equal(p->n_tags, 2);
	assert_string_equal(p->tags[0], "docker.io/library/y:1");
	image_plan_free(p);
	assert_fails(plan_err(tar2, ARCHIVE_DOCKER_TAR, "1", NULL, err), "matches several");
}

/* Docker 25+: an OCI layout and a manifest.json naming blobs/sha256/<hex>. */
static void test_docker_25(void **state)
{
	(void)state;
	_cleanup_free_ char *dir = path_in("d25");
	struct img im;
	make_image(dir, "amd64", "d25", &im);
	char *e = desc_json(MT_OCI_MANIFEST, im.manifest, im.manifest_size, "latest", NULL);
	write_layout_files(dir, e);
	free(e);
	_cleanup_free_ char *man =
	    xasprintf("[{\"Config\":\"blobs/sha256/%s\",\"RepoTags\":[\"d25:latest\"],\"Layers\":["
		      "\"blobs/sha256/%s\",\"blobs/sha256/%s\"]}]",
		      im.config + 7, im.layers[0] + 7, im.layers[1] + 7);
	write_str(dir, "manifest.json", man);
	_cleanup_free_ char *tar = path_in("d25.tar");
	sh("tar -C '%s' -cf '%s' blobs index.json manifest.json oci-layout", dir, tar);
	struct image_plan *p = plan_of(tar, NULL, NULL, ARCHIVE_DOCKER_TAR);
	assert_int_equal(p->n_layers, 2);
	assert_string_equal(p->config_digest, im.config);
	for (size_t i = 0; i < 2; i++) {
		assert_string_equal(p->layers[i].digest, im.layers[i]);
		assert_range_is(p, &p->layers[i], im.layers[i]);
	}
	assert_string_equal(p->tags[0], "docker.io/library/d25:latest");
	image_plan_free(p);
	/* the config named by digest must be that digest */
	_cleanup_free_ char *cfgp = xasprintf("blobs/sha256/%s", im.config + 7);
	write_str(dir, cfgp, "{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}");
	sh("tar -C '%s' -cf '%s' blobs index.json manifest.json oci-layout", dir, tar);
	assert_fails(plan_err(tar, ARCHIVE_DOCKER_TAR, NULL, NULL, err), "its content has digest");
	img_free(&im);
}

/* Tars with hostile members, written by hand. */
static char *write_tar(const char *name, struct tb *t)
{
	tb_end(t);
	char *p = path_in(name);
	write_at(base, name, t->buf, t->len);
	tb_free(t);
	return p;
}

static void docker_manifest_member(struct tb *t, const char *layer)
{
	_cleanup_free_ char *m = xasprintf(
	    "[{\"Config\":\"c.json\",\"RepoTags\":[\"h:1\"],\"Layers\":[\"%s\"]}]", layer);
	tb_file(t, "manifest.json", m, 0644);
	tb_file(t, "c.json",
		"{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:"
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"]}}",
		0644);
}

static void test_docker_hostile_members(void **state)
{
	(void)state;
	struct tb t = {0};
	/* a member outside the archive can never be the layer named inside it */
	tb_file(&t, "../x/layer.tar", "evil", 0644);
	docker_manifest_member(&t, "x/layer.tar");
	_cleanup_free_ char *a = write_tar("a.tar", &t);
	assert_fails(plan_err(a, ARCHIVE_DOCKER_TAR, NULL, NULL, err), "layer 0",
		     "'x/layer.tar' is not in the archive");

	/* symlinks leading out, absolute, looping; hardlinks out */
	memset(&t, 0, sizeof(t));
	tb_symlink(&t, "x/layer.tar", "../../etc/passwd");
	docker_manifest_member(&t, "x/layer.tar");
	_cleanup_free_ char *b = write_tar("b.tar", &t);
	assert_fails(plan_err(b, ARCHIVE_DOCKER_TAR, NULL, NULL, err), "links outside");

	memset(&t, 0, sizeof(t));
	tb_symlink(&t, "x/layer.tar", "/etc/passwd");
	docker_manifest_member(&t, "x/layer.tar");
	_cleanup_free_ char *c = write_tar("c.tar", &t);
	assert_fails(plan_err(c, ARCHIVE_DOCKER_TAR, NULL, NULL, err), "absolute symlink");

	memset(&t, 0, sizeof(t));
	tb_symlink(&t, "x/layer.tar", "../y/layer.tar");
	tb_symlink(&t, "y/layer.tar", "../x/layer.tar");
	docker_manifest_member(&t, "x/layer.tar");
	_cleanup_free_ char *d = write_tar("d.tar", &t);
	assert_fails(plan_err(d, ARCHIVE_DOCKER_TAR, NULL, NULL, err), "more than 8 links");

	memset(&t, 0, sizeof(t));
	tb_hardlink(&t, "x/layer.tar", "../../etc/shadow");
	docker_manifest_member(&t, "x/layer.tar");
	_cleanup_free_ char *e = write_tar("e.tar", &t);
	assert_fails(plan_err(e, ARCHIVE_DOCKER_TAR, NULL, NULL, err), "links outside");

	/* a directory where the layer should be */
	memset(&t, 0, sizeof(t));
	tb_dir(&t, "x/layer.tar/", 0755);
	docker_manifest_member(&t, "x/layer.tar");
	_cleanup_free_ char *f = write_tar("f.tar", &t);
	assert_fails(plan_err(f, ARCHIVE_DOCKER_TAR, NULL, NULL, err), "not a regular file");

	/* traversal in manifest.json itself */
	memset(&t, 0, sizeof(t));
	tb_file(&t, "ok", "x", 0644);
	docker_manifest_member(&t, "../../etc/passwd");
	_cleanup_free_ char *g = write_tar("g.tar", &t);
	assert_fails(plan_err(g, ARCHIVE_DOCKER_TAR, NULL, NULL, err), "not a clean path");

	/* hardlinks inside and "./" names are fine; the last of two same-named
	 * members wins, as with tar -x */
	memset(&t, 0, sizeof(t));
	tb_file(&t, "./x/layer.tar", "first", 0644);
	tb_file(&t, "x//layer.tar", "second", 0644);
	tb_hardlink(&t, "y/layer.tar", "./x/layer.tar");
	_cleanup_free_ char *m = xasprintf(
	    "[{\"Config\":\"c.json\",\"RepoTags\":[\"h:1\"],\"Layers\":[\"y/layer.tar\"]}]");
	tb_file(&t, "manifest.json", m, 0644);
	tb_file(&t, "./c.json",
		"{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:"
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"]}}",
		0644);
	_cleanup_free_ char *h = write_tar("h.tar", &t);
	struct image_plan *p = NULL;
	assert_ok(archive_plan(h, ARCHIVE_DOCKER_TAR, NULL, NULL, NULL, &p, err));
	char second[72];
	digest_of("second", 6, second);
	assert_range_is(p, &p->layers[0], second);
	image_plan_free(p);

	/* the config too big, manifest.json not JSON */
	memset(&t, 0, sizeof(t));
	tb_file(&t, "manifest.json", "[{\"Config\":", 0644);
	_cleanup_free_ char *i = write_tar("i.tar", &t);
	assert_fails(plan_err(i, ARCHIVE_DOCKER_TAR, NULL, NULL, err), "manifest.json",
		     "not valid JSON");
}

/* ---- detection -------------------------------------------------------------------------- */

static void test_detect(void **state)
{
	(void)state;
	enum archive_kind k;
	/* a rootfs directory and tarballs */
	_cleanup_free_ char *rootfs = path_in("rootfs");
	write_str(rootfs, "bin/sh", "#!");
	write_str(rootfs, "etc/passwd", "root:x:0:0::/:/bin/sh\n");
	assert_ok(archive_detect(rootfs, &k, err));
	assert_int_equal(k, ARCHIVE_NONE);
	_cleanup_free_ char *rt = path_in("rootfs.tar");
	sh("tar -C '%s' -cf '%s' . && gzip -k '%s' && zstd -q '%s'", rootfs, rt, rt, rt);
	static const char *exts[] = {"", ".gz", ".zst"};
	for (size_t i = 0; i < 3; i++) {
		_cleanup_free_ char *p = xasprintf("%s%s", rt, exts[i]);
		assert_ok(archive_detect(p, &k, err));
		assert_int_equal(k, ARCHIVE_NONE);
	}
	/* a rootfs that happens to have a manifest.json at its top: still a rootfs */
	write_str(rootfs, "manifest.json", "[]");
	sh("tar -C '%s' -cf '%s' .", rootfs, rt);
	assert_ok(archive_detect(rt, &k, err));
	assert_int_equal(k, ARCHIVE_NONE);
	/* not tars at all: left to the rootfs import to refuse */
	write_str(base, "junk", "this is not a tar archive at all");
	_cleanup_free_ char *junk = path_in("junk");
	assert_ok(archive_detect(junk, &k, err));
	assert_int_equal(k, ARCHIVE_NONE);
	write_str(base, "empty", "");
	_cleanup_free_ char *empty = path_in("empty");
	assert_ok(archive_detect(empty, &k, err));
	assert_int_equal(k, ARCHIVE_NONE);
	_cleanup_free_ char *missing = path_in("missing");
	assert_fails(archive_detect(missing, &k, err), "missing");
	/* layouts */
	struct img im;
	_cleanup_free_ char *layout = simple_layout("det", NULL, &im);
	assert_ok(archive_detect(layout, &k, err));
	assert_int_equal(k, ARCHIVE_OCI_DIR);
	_cleanup_free_ char *lt = path_in("det.tar");
	sh("tar -C '%s' -cf '%s' . && zstd -q '%s'", layout, lt, lt);
	assert_ok(archive_detect(lt, &k, err));
	assert_int_equal(k, ARCHIVE_OCI_TAR);
	_cleanup_free_ char *ltz = xasprintf("%s.zst", lt);
	assert_ok(archive_detect(ltz, &k, err));
	assert_int_equal(k, ARCHIVE_OCI_TAR);
	char d[72];
	_cleanup_free_ char *dt = make_docker_legacy("det-docker", "[\"a:1\"]", d);
	assert_ok(archive_detect(dt, &k, err));
	assert_int_equal(k, ARCHIVE_DOCKER_TAR);
	/* unpacked, with a file no docker archive has at its top (a layer
	 * symlinked there, say): its manifest.json makes it a docker archive,
	 * never a rootfs of the archive's files */
	_cleanup_free_ char *dd = path_in("det-docker-dir");
	sh("mkdir '%s' && tar -C '%s' -xf '%s' && ln -s /etc/passwd '%s/layer.tar'", dd, dd, dt,
	   dd);
	assert_ok(archive_detect(dd, &k, err));
	assert_int_equal(k, ARCHIVE_OCI_DIR);
	/* an OCI_TAR plan of a docker archive still reads it as what it is */
	struct image_plan *p = NULL;
	assert_ok(archive_plan(dt, ARCHIVE_OCI_TAR, NULL, NULL, NULL, &p, err));
	assert_string_equal(p->tags[0], "docker.io/library/a:1");
	image_plan_free(p);
	assert_fails(plan_err(rt, ARCHIVE_NONE, NULL, NULL, err), "not an image archive");
	assert_fails(plan_err(rt, ARCHIVE_OCI_TAR, NULL, NULL, err),
		     "manifest.json lists no images");
	assert_fails(plan_err(junk, ARCHIVE_OCI_TAR, NULL, NULL, err), "not a tar archive");
	_cleanup_free_ char *rt2 = path_in("rootfs2.tar");
	sh("tar -C '%s' -cf '%s' bin", rootfs, rt2);
	assert_fails(plan_err(rt2, ARCHIVE_DOCKER_TAR, NULL, NULL, err), "neither");
	img_free(&im);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_oci_dir, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_oci_names_become_tags, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_oci_several_images, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_oci_multiplatform, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_oci_missing_and_corrupt_blobs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_oci_layer_count_mismatch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_oci_foreign_layer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_oci_nested_index_bounded, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_oci_symlink_escape, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_oci_tar, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_oci_tar_missing_blob, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_docker_legacy, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_docker_untagged_and_several, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_docker_25, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_docker_hostile_members, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_detect, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
