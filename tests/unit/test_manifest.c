/* images/manifest.c: the OCI and Docker JSON documents (index, manifest, config,
 * docker save's manifest.json), digest and size validation, hostile JSON, and
 * platform normalisation and selection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <sys/utsname.h>

#include "common/util.h"
#include "images/layer_internal.h"
#include "images/manifest_internal.h"

/* "sha256:" and 64 hex digits made of one 8-char group */
#define D(g) "sha256:" g g g g g g g g
#define DA   D("aaaaaaaa")
#define DB   D("bbbbbbbb")
#define DC   D("cccccccc")
#define DD   D("dddddddd")

/* The call failed and its message mentions every one of the given strings. */
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

#define S(x) (x), strlen(x)

/* ---- index ------------------------------------------------------------------ */

static const char oci_index[] =
    "{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_INDEX "\",\"manifests\":["
    "{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"" DA "\",\"size\":1234,"
    " \"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"},"
    " \"annotations\":{\"org.opencontainers.image.ref.name\":\"1.2\","
    "   \"io.containerd.image.name\":\"docker.io/library/app:1.2\"}},"
    "{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"" DB "\",\"size\":0,"
    " \"platform\":{\"architecture\":\"aarch64\",\"os\":\"linux\",\"variant\":\"v8\"}},"
    "{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"digest\":\"" DC "\",\"size\":5,"
    " \"platform\":{\"architecture\":\"armhf\",\"os\":\"Linux\"}},"
    "{\"mediaType\":\"" MT_OCI_INDEX "\",\"digest\":\"" DD "\",\"size\":7}"
    "]}";

static void test_index_oci(void **state)
{
	(void)state;
	struct image_index ix;
	assert_ok(image_index_parse(S(oci_index), NULL, &ix, err));
	assert_string_equal(ix.media_type, MT_OCI_INDEX);
	assert_int_equal(ix.n_manifests, 4);
	struct descriptor *d = ix.manifests;
	assert_string_equal(d[0].media_type, MT_OCI_MANIFEST);
	assert_string_equal(d[0].digest, DA);
	assert_int_equal(d[0].size, 1234);
	assert_true(d[0].has_platform);
	assert_string_equal(d[0].platform.os, "linux");
	assert_string_equal(d[0].platform.arch, "amd64");
	assert_string_equal(d[0].ref_name, "1.2");
	assert_string_equal(d[0].image_name, "docker.io/library/app:1.2");
	/* normalised: aarch64/v8 -> arm64, armhf -> arm/v7, Linux -> linux */
	assert_string_equal(d[1].platform.arch, "arm64");
	assert_string_equal(d[1].platform.variant, "");
	assert_null(d[1].ref_name);
	assert_string_equal(d[2].platform.os, "linux");
	assert_string_equal(d[2].platform.arch, "arm");
	assert_string_equal(d[2].platform.variant, "v7");
	assert_false(d[3].has_platform);
	assert_string_equal(d[3].media_type, MT_OCI_INDEX);
	image_index_free(&ix);
	image_index_free(&ix); /* twice is harmless */
}

static void test_index_docker_list_and_hints(void **state)
{
	(void)state;
	const char *list = "{\"schemaVersion\":2,\"mediaType\":\"" MT_DOCKER_LIST "\","
			   "\"manifests\":[{\"mediaType\":\"" MT_DOCKER_MANIFEST "\","
			   "\"digest\":\"" DA "\",\"size\":10,\"platform\":{\"architecture\":"
			   "\"arm\",\"os\":\"linux\",\"variant\":\"v6\"}}]}";
	struct image_index ix;
	/* an HTTP Content-Type with parameters and another case is the same type */
	assert_ok(image_index_parse(S(list),
				    "Application/vnd.docker.distribution.manifest.list."
				    "v2+json; charset=utf-8",
				    &ix, err));
	assert_string_equal(ix.media_type, MT_DOCKER_LIST);
	assert_string_equal(ix.manifests[0].platform.variant, "v6");
	image_index_free(&ix);

	/* no mediaType anywhere: the shape decides; OCI is assumed */
	const char *bare = "{\"schemaVersion\":2,\"manifests\":[]}";
	assert_ok(image_index_parse(S(bare), NULL, &ix, err));
	assert_string_equal(ix.media_type, MT_OCI_INDEX);
	assert_int_equal(ix.n_manifests, 0);
	image_index_free(&ix);

	/* the document says index, its source says manifest */
	assert_fails(image_index_parse(S(list), MT_OCI_MANIFEST, &ix, err), "mismatch",
		     MT_DOCKER_LIST);
	/* a manifest given to the index parser */
	const char *man = "{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"config\":{},\"layers\":[]}";
	assert_fails(image_index_parse(S(man), NULL, &ix, err), "not an index");
	/* missing manifests */
	assert_fails(image_index_parse(S("{\"mediaType\":\"" MT_OCI_INDEX "\"}"), NULL, &ix, err),
		     "\"manifests\" is missing");
	assert_fails(image_index_parse(S("{\"manifests\":{}}"), NULL, &ix, err), "array");
}

/* CVE-2021-41190: a document that reads as either kind is refused. */
static void test_ambiguous_documents(void **state)
{
	(void)state;
	const char *both =
	    "{\"schemaVersion\":2,\"manifests\":[],\"config\":{\"mediaType\":\"" MT_OCI_CONFIG
	    "\",\"digest\":\"" DA "\",\"size\":1},\"layers\":[]}";
	struct image_index ix;
	struct image_manifest m;
	enum manifest_kind k;
	assert_fails(image_index_parse(S(both), NULL, &ix, err), "both");
	assert_fails(image_manifest_parse(S(both), NULL, &m, err), "both");
	assert_fails(manifest_detect(S(both), MT_OCI_INDEX, &k, err), "both");
	/* says manifest but lists manifests */
	const char *liar = "{\"mediaType\":\"" MT_OCI_MANIFEST "\",\"manifests\":[]}";
	assert_fails(manifest_detect(S(liar), NULL, &k, err), "lists manifests");
}

static void test_detect(void **state)
{
	(void)state;
	enum manifest_kind k;
	assert_ok(manifest_detect(S("{\"manifests\":[]}"), NULL, &k, err));
	assert_int_equal(k, MANIFEST_INDEX);
	assert_ok(manifest_detect(S("{\"layers\":[]}"), NULL, &k, err));
	assert_int_equal(k, MANIFEST_IMAGE);
	assert_ok(manifest_detect(S("{}"), MT_DOCKER_MANIFEST, &k, err));
	assert_int_equal(k, MANIFEST_IMAGE);
	assert_ok(manifest_detect(S("{\"mediaType\":\"" MT_DOCKER_LIST "\"}"), NULL, &k, err));
	assert_int_equal(k, MANIFEST_INDEX);
	assert_fails(manifest_detect(S("{}"), NULL, &k, err), "neither");
	assert_fails(manifest_detect(S("{\"schemaVersion\":1,\"fsLayers\":[]}"), NULL, &k, err),
		     "schema 1");
	assert_fails(manifest_detect(S("{}"),
				     "application/vnd.docker.distribution.manifest.v1+prettyjws",
				     &k, err),
		     "schema 1");
	assert_fails(manifest_detect(S("{\"mediaType\":\"application/vnd.cncf.helm.chart\"}"), NULL,
				     &k, err),
		     "application/vnd.cncf.helm.chart", "not a container image");
	assert_fails(manifest_detect(S("[]"), NULL, &k, err), "not a JSON object");
}

/* ---- manifest ----------------------------------------------------------------- */

#define LAYER(mt, d, size) "{\"mediaType\":\"" mt "\",\"digest\":\"" d "\",\"size\":" #size "}"

static void test_manifest_oci_layer_types(void **state)
{
	(void)state;
	const char *doc =
	    "{\"schemaVersion\":2,\"mediaType\":\"" MT_OCI_MANIFEST "\","
	    "\"config\":{\"mediaType\":\"" MT_OCI_CONFIG "\",\"digest\":\"" DA "\",\"size\":300},"
	    "\"layers\":[" LAYER("application/vnd.oci.image.layer.v1.tar", DB, 1) "," LAYER(
		"application/vnd.oci.image.layer.v1.tar+gzip", DB,
		2) "," LAYER("application/vnd.oci.image.layer.v1.tar+zstd", DB,
			     3) "," LAYER("application/"
					  "vnd.oci.image.layer.nondistributable.v1.tar+gzip",
					  DC, 4) "," LAYER("application/"
							   "vnd.docker.image.rootfs.diff.tar.gzip",
							   DC,
							   5) "," LAYER("application/"
									"vnd.docker.image.rootfs."
									"foreign.diff.tar.gzip",
									DC, 6) "],"
									       "\"annotations\":{"
									       "\"x\":\"y\"}}";
	struct image_manifest m;
	assert_ok(image_manifest_parse(S(doc), MT_OCI_MANIFEST, &m, err));
	assert_string_equal(m.media_type, MT_OCI_MANIFEST);
	assert_string_equal(m.config.digest, DA);
	assert_int_equal(m.config.size, 300);
	assert_string_equal(m.config.media_type, MT_OCI_CONFIG);
	assert_int_equal(m.n_layers, 6);
	enum layer_compression comp[] = {LAYER_UNCOMPRESSED, LAYER_GZIP, LAYER_ZSTD,
					 LAYER_GZIP,	     LAYER_GZIP, LAYER_GZIP};
	bool nd[] = {false, false, false, true, false, true};
	for (size_t i = 0; i < 6; i++) {
		assert_int_equal(m.layers[i].compression, comp[i]);
		assert_int_equal(m.layers[i].non_distributable, nd[i]);
		assert_int_equal(m.layers[i].desc.size, (int64_t)i + 1);
	}
	image_manifest_free(&m);
}

static void test_manifest_docker_v2(void **state)
{
	(void)state;
	/* no mediaType in the document nor a hint: the config's type says docker */
	const char *doc =
	    "{\"schemaVersion\":2,"
	    "\"config\":{\"mediaType\":\"" MT_DOCKER_CONFIG "\",\"digest\":\"" DA "\",\"size\":30},"
	    "\"layers\":[" LAYER("application/vnd.docker.image.rootfs.diff.tar.gzip", DB, 99) "]}";
	struct image_manifest m;
	assert_ok(image_manifest_parse(S(doc), NULL, &m, err));
	assert_string_equal(m.media_type, MT_DOCKER_MANIFEST);
	assert_int_equal(m.n_layers, 1);
	assert_string_equal(m.layers[0].desc.digest, DB);
	image_manifest_free(&m);
}

static void test_manifest_rejects(void **state)
{
	(void)state;
	struct image_manifest m;
#define CFG "\"config\":{\"mediaType\":\"" MT_OCI_CONFIG "\",\"digest\":\"" DA "\",\"size\":3}"
	assert_fails(image_manifest_parse(
			 S("{" CFG ",\"layers\":[" LAYER(
			     "application/vnd.oci.image.layer.v1.tar+encrypted", DB, 1) "]}"),
			 NULL, &m, err),
		     "layer 0", "application/vnd.oci.image.layer.v1.tar+encrypted",
		     "cannot unpack");
	assert_fails(
	    image_manifest_parse(S("{" CFG ",\"layers\":[{\"digest\":\"" DB "\",\"size\":1}]}"),
				 NULL, &m, err),
	    "layers[0]", "mediaType");
	assert_fails(image_manifest_parse(
			 S("{\"config\":{\"mediaType\":\"application/vnd.cncf.helm."
			   "config.v1+json\",\"digest\":\"" DA "\",\"size\":3},\"layers\":[]}"),
			 NULL, &m, err),
		     "application/vnd.cncf.helm.config.v1+json", "not a container image config");
	assert_fails(image_manifest_parse(S("{\"layers\":[]}"), NULL, &m, err),
		     "\"config\" is missing");
	assert_fails(image_manifest_parse(S("{" CFG "}"), NULL, &m, err), "\"layers\" is missing");
	assert_fails(
	    image_manifest_parse(S("{\"schemaVersion\":3," CFG ",\"layers\":[]}"), NULL, &m, err),
	    "schemaVersion 3");
	assert_fails(image_manifest_parse(S("{\"schemaVersion\":\"2\"," CFG ",\"layers\":[]}"),
					  NULL, &m, err),
		     "schemaVersion");
	assert_fails(image_manifest_parse(S("{\"manifests\":[]}"), NULL, &m, err),
		     "not a manifest");
	/* too many layers */
	size_t n = MANIFEST_MAX_ENTRIES + 1;
	size_t cap = n * 200 + 1000;
	char *big = xcalloc(1, cap);
	size_t len = (size_t)snprintf(big, cap, "{" CFG ",\"layers\":[");
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(big + len, cap - len,
					"%s" LAYER("application/vnd.oci.image.layer.v1.tar", DB, 1),
					i ? "," : "");
	len += (size_t)snprintf(big + len, cap - len, "]}");
	assert_fails(image_manifest_parse(big, len, NULL, &m, err), "4097 entries");
	free(big);
#undef CFG
}

/* CVE-2024-3727: no digest reaches a path without passing digest_is_valid. */
static void test_digests_validated(void **state)
{
	(void)state;
	static const struct {
		const char *digest, *msg;
	} bad[] = {
	    {"sha256:../../../../etc/passwd", "invalid digest"},
	    {"sha256:"
	     "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	     "invalid digest"},
	    {"sha256:aaaa", "invalid digest"},
	    {D("aaaaaaaa") "a", "invalid digest"},
	    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "invalid digest"},
	    {"sha512:" D("aaaaaaaa") "aaaaaaaa", "'sha512' is not supported"},
	    {"", "invalid digest"},
	    {"sha256:" D("/aaaaaaa"), "invalid digest"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char doc[512];
		int n = snprintf(doc, sizeof(doc),
				 "{\"manifests\":[{\"mediaType\":\"" MT_OCI_MANIFEST
				 "\",\"digest\":\"%s\",\"size\":1}]}",
				 bad[i].digest);
		struct image_index ix;
		assert_fails(image_index_parse(doc, (size_t)n, NULL, &ix, err), "manifests[0]",
			     bad[i].msg);
	}
	/* a NUL hidden in a JSON string would cut the C string after a valid digest */
	const char *nul = "{\"manifests\":[{\"digest\":\"" DA "\\u0000/../../x\",\"size\":1}]}";
	struct image_index ix;
	assert_fails(image_index_parse(S(nul), NULL, &ix, err), "NUL");
	/* not a string */
	assert_fails(
	    image_index_parse(S("{\"manifests\":[{\"digest\":5,\"size\":1}]}"), NULL, &ix, err),
	    "\"digest\" must be a string");
	/* in configs too */
	char(*ids)[72];
	size_t n;
	assert_fails(image_config_diff_ids(S("{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":["
					     "\"" DA "\",\"sha256:../x\"]}}"),
					   &ids, &n, err),
		     "diff_ids[1]", "invalid digest");
}

static void test_sizes_validated(void **state)
{
	(void)state;
	static const struct {
		const char *size, *msg;
	} bad[] = {
	    {"-1", "out of range"},
	    {"1.5", "integer"},
	    {"1e3", "integer"},
	    {"\"12\"", "integer"},
	    {"99999999999999999999", "out of range"},
	    {"18446744073709551615", "out of range"},
	    {"1099511627777", "out of range"}, /* BLOB_MAX_SIZE + 1 */
	    {"null", "\"size\""},
	    {"true", "integer"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char doc[512];
		int n =
		    snprintf(doc, sizeof(doc),
			     "{\"manifests\":[{\"digest\":\"" DA "\",\"size\":%s}]}", bad[i].size);
		struct image_index ix;
		assert_fails(image_index_parse(doc, (size_t)n, NULL, &ix, err), bad[i].msg);
	}
	struct image_index ix;
	assert_fails(
	    image_index_parse(S("{\"manifests\":[{\"digest\":\"" DA "\"}]}"), NULL, &ix, err),
	    "\"size\" is missing");
	assert_ok(image_index_parse(
	    S("{\"manifests\":[{\"digest\":\"" DA "\",\"size\":1099511627776}]}"), NULL, &ix, err));
	assert_int_equal(ix.manifests[0].size, BLOB_MAX_SIZE);
	image_index_free(&ix);
}

/* Broken and hostile JSON: refused cleanly, never half-parsed. */
static void test_nasty_json(void **state)
{
	(void)state;
	struct image_index ix;
	static const struct {
		const char *doc, *msg;
	} bad[] = {
	    {"", "empty"},
	    {"{\"manifests\":[", "ends early"},
	    {"{\"manifests\":[]} {}", "not valid JSON"},
	    {"{\"manifests\":[]} x", "not valid JSON"},
	    {"{\"manifests\":[],}", "not valid JSON"},
	    {"null", "not a JSON object"},
	    {"[]", "not a JSON object"},
	    {"{\"manifests\":[1]}", "manifests[0] must be an object"},
	    {"{\"manifests\":[{\"digest\":\"" DA "\",\"size\":1,\"platform\":\"linux\"}]}",
	     "\"platform\" must be an object"},
	    {"{\"manifests\":[{\"digest\":\"" DA "\",\"size\":1,\"platform\":{\"os\":\"linux\"}}]}",
	     "\"architecture\" is missing"},
	    {"{\"manifests\":[{\"digest\":\"" DA "\",\"size\":1,\"platform\":{\"os\":\"linux\","
	     "\"architecture\":\"../x\"}}]}",
	     "invalid platform"},
	    {"{\"manifests\":[{\"digest\":\"" DA "\",\"size\":1,\"annotations\":[]}]}",
	     "\"annotations\" must be an object"},
	    {"{\"manifests\":[{\"digest\":\"" DA "\",\"size\":1,\"annotations\":{"
	     "\"org.opencontainers.image.ref.name\":7}}]}",
	     "must be a string"},
	    {"{\"manifests\":[{\"digest\":\"" DA "\",\"size\":1,\"mediaType\":\"\"}]}",
	     "invalid media type"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		assert_fails(image_index_parse(S(bad[i].doc), NULL, &ix, err), bad[i].msg);

	/* a NUL byte in the text, invalid UTF-8 */
	assert_fails(image_index_parse("{\"manifests\":[]}\0", 17, NULL, &ix, err), "NUL");
	assert_fails(image_index_parse(S("{\"manifests\":[],\"x\":\"\xff\xfe\"}"), NULL, &ix, err),
		     "not valid JSON");
	/* deep nesting: bounded by the parser, not the stack */
	size_t depth = 100000;
	char *deep = xcalloc(1, 2 * depth + 32);
	size_t len = (size_t)sprintf(deep, "{\"manifests\":[],\"x\":");
	memset(deep + len, '[', depth);
	len += depth;
	memset(deep + len, ']', depth);
	len += depth;
	deep[len++] = '}';
	assert_fails(image_index_parse(deep, len, NULL, &ix, err), "not valid JSON");
	free(deep);
	/* larger than the limit: refused before parsing */
	char *huge = xcalloc(1, MANIFEST_MAX_LEN + 2);
	memset(huge, ' ', MANIFEST_MAX_LEN + 1);
	assert_fails(image_index_parse(huge, MANIFEST_MAX_LEN + 1, NULL, &ix, err), "allowed");
	free(huge);
	/* duplicate keys: the last one wins, as in Go's encoding/json */
	assert_ok(image_index_parse(S("{\"manifests\":[{\"digest\":\"sha256:bad\",\"size\":1,"
				      "\"digest\":\"" DA "\"}]}"),
				    NULL, &ix, err));
	assert_string_equal(ix.manifests[0].digest, DA);
	image_index_free(&ix);
}

/* ---- config --------------------------------------------------------------------- */

static void test_config_diff_ids(void **state)
{
	(void)state;
	char(*ids)[72];
	size_t n;
	const char *cfg = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{},"
			  "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" DA "\",\"" DB "\"]}}";
	assert_ok(image_config_diff_ids(S(cfg), &ids, &n, err));
	assert_int_equal(n, 2);
	assert_string_equal(ids[0], DA);
	assert_string_equal(ids[1], DB);
	free(ids);
	assert_ok(image_config_diff_ids(S("{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}"),
					&ids, &n, err));
	assert_int_equal(n, 0);
	assert_null(ids);
	assert_fails(image_config_diff_ids(S("{}"), &ids, &n, err), "\"rootfs\" is missing");
	assert_fails(image_config_diff_ids(S("{\"rootfs\":[]}"), &ids, &n, err), "not an object");
	assert_fails(image_config_diff_ids(S("{\"rootfs\":{\"type\":\"layers\"}}"), &ids, &n, err),
		     "diff_ids");
	assert_fails(image_config_diff_ids(S("{\"rootfs\":{\"type\":\"zfs\",\"diff_ids\":[]}}"),
					   &ids, &n, err),
		     "unsupported type 'zfs'");
	assert_fails(image_config_diff_ids(S("{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[1]}}"),
					   &ids, &n, err),
		     "diff_ids[0] must be a string");
	assert_fails(image_config_diff_ids(S("[]"), &ids, &n, err), "not a JSON object");
}

/* The process fields of "config": their JSON types (as Docker reads them) and no
 * NUL inside a string, else refused naming the field and the type found. */
static void test_config_process_fields(void **state)
{
	(void)state;
	char(*ids)[72] = NULL;
	size_t n;
#define CFG(c) "{\"config\":" c ",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}"
	static const char *const good[] = {
	    CFG("{}"),
	    CFG("null"),
	    CFG("{\"Cmd\":null,\"Entrypoint\":null,\"Env\":null}"),
	    CFG("{\"Cmd\":[\"/bin/sh\",\"-c\",\"x\"],\"Env\":[\"A=1\"],\"User\":\"1:2\","
		"\"WorkingDir\":\"/w\",\"StopSignal\":\"SIGINT\"}"),
	    /* Docker's strslice: one string */
	    CFG("{\"Entrypoint\":\"/bin/sh\",\"Cmd\":\"x\"}"),
	    /* fields hutch does not use are not checked */
	    CFG("{\"Labels\":{\"a\":\"b\"},\"ExposedPorts\":{\"80/tcp\":{}},\"ArgsEscaped\":true}"),
	};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		assert_ok(image_config_diff_ids(S(good[i]), &ids, &n, err));
	assert_fails(image_config_diff_ids(S(CFG("{\"Cmd\":{\"a\":1}}")), &ids, &n, err),
		     "\"Cmd\" must be an array, not object");
	assert_fails(image_config_diff_ids(S(CFG("{\"Env\":\"A=1\"}")), &ids, &n, err),
		     "\"Env\" must be an array, not string");
	assert_fails(image_config_diff_ids(S(CFG("{\"Entrypoint\":7}")), &ids, &n, err),
		     "\"Entrypoint\" must be an array, not int");
	assert_fails(image_config_diff_ids(S(CFG("{\"Cmd\":[\"sh\",1]}")), &ids, &n, err),
		     "Cmd[1] must be a string, not int");
	assert_fails(image_config_diff_ids(S(CFG("{\"WorkingDir\":[\"/\"]}")), &ids, &n, err),
		     "\"WorkingDir\" must be a string, not array");
	assert_fails(image_config_diff_ids(S(CFG("{\"User\":0}")), &ids, &n, err),
		     "\"User\" must be a string, not int");
	assert_fails(image_config_diff_ids(S(CFG("[]")), &ids, &n, err),
		     "\"config\" must be an object, not array");
	assert_fails(
	    image_config_diff_ids(S(CFG("{\"Entrypoint\":[\"/bin/sh\\u0000x\"]}")), &ids, &n, err),
	    "Entrypoint[0] contains a NUL character");
	assert_fails(
	    image_config_diff_ids(S(CFG("{\"Entrypoint\":\"/bin/sh\\u0000x\"}")), &ids, &n, err),
	    "\"Entrypoint\" contains a NUL character");
	assert_fails(image_config_diff_ids(S(CFG("{\"Env\":[\"A=1\\u0000B=2\"]}")), &ids, &n, err),
		     "Env[0] contains a NUL character");
	assert_fails(image_config_diff_ids(S(CFG("{\"User\":\"root\\u0000x\"}")), &ids, &n, err),
		     "\"User\" contains a NUL character");
#undef CFG
}

/* ---- docker save's manifest.json ------------------------------------------------------ */

static void test_docker_manifest(void **state)
{
	(void)state;
	const char *doc =
	    "[{\"Config\":\""
	    "aaaaaaaa"
	    ".json\",\"RepoTags\":[\"busybox:latest\",\"bb:1\"],"
	    "\"Layers\":[\"0123/layer.tar\",\"4567/layer.tar\"]},"
	    " {\"Config\":\"blobs/sha256/bb\",\"RepoTags\":null,\"Layers\":[]},"
	    " {\"Config\":\"c.json\",\"Layers\":[\"l.tar\"],\"LayerSources\":{},\"Parent\":\"x\"}]";
	struct docker_archive_manifest m;
	assert_ok(docker_archive_manifest_parse(S(doc), &m, err));
	assert_int_equal(m.n_images, 3);
	assert_string_equal(m.images[0].config, "aaaaaaaa.json");
	assert_int_equal(m.images[0].n_repo_tags, 2);
	assert_string_equal(m.images[0].repo_tags[1], "bb:1");
	assert_int_equal(m.images[0].n_layers, 2);
	assert_string_equal(m.images[0].layers[1], "4567/layer.tar");
	assert_int_equal(m.images[1].n_repo_tags, 0);
	assert_int_equal(m.images[1].n_layers, 0);
	assert_int_equal(m.images[2].n_repo_tags, 0);
	docker_archive_manifest_free(&m);

	static const struct {
		const char *doc, *msg;
	} bad[] = {
	    {"[]", "no images"},
	    {"{}", "not a JSON array"},
	    {"[{\"Layers\":[]}]", "\"Config\" is missing"},
	    {"[{\"Config\":\"c\"}]", "\"Layers\" is missing"},
	    {"[{\"Config\":\"../c.json\",\"Layers\":[]}]", "not a clean path"},
	    {"[{\"Config\":\"/etc/passwd\",\"Layers\":[]}]", "not a clean path"},
	    {"[{\"Config\":\"c\",\"Layers\":[\"a/../../b\"]}]", "Layers[0]"},
	    {"[{\"Config\":\"c\",\"Layers\":[\"a//b\"]}]", "not a clean path"},
	    {"[{\"Config\":\"c\",\"Layers\":[\"./a\"]}]", "not a clean path"},
	    {"[{\"Config\":\"c\",\"Layers\":[\"a/\"]}]", "not a clean path"},
	    {"[{\"Config\":\"c\",\"Layers\":[\"a\\nb\"]}]", "not a clean path"},
	    {"[{\"Config\":\"c\",\"Layers\":[\"a\\u0000b\"]}]", "NUL"},
	    {"[{\"Config\":\"c\",\"Layers\":[5]}]", "must be a string"},
	    {"[{\"Config\":\"c\",\"Layers\":[],\"RepoTags\":[\"\"]}]", "invalid name"},
	    {"[{\"Config\":\"c\",\"Layers\":[],\"RepoTags\":\"x:1\"}]", "must be an array"},
	    {"[7]", "must be an object"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		assert_fails(docker_archive_manifest_parse(S(bad[i].doc), &m, err), bad[i].msg);
}

static void test_archive_paths(void **state)
{
	(void)state;
	const char *good[] = {"a",   "manifest.json", "blobs/sha256/abc", "a/b/c.tar",
			      "..a", "a..",	      ".hidden"};
	const char *bad[] = {"",    "/a",  "..",   "../a", "a/..", "a/../b", ".",
			     "./a", "a/.", "a//b", "a/",   "a\\b", "a\tb",   "a\x7f"};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		assert_true(archive_path_is_clean(good[i]));
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (archive_path_is_clean(bad[i]))
			fail_msg("'%s' passed as clean", bad[i]);
	assert_false(archive_path_is_clean(NULL));
	char *longp = xcalloc(1, 5000);
	memset(longp, 'a', 4097);
	assert_false(archive_path_is_clean(longp));
	free(longp);
}

static void test_oci_layout_file(void **state)
{
	(void)state;
	assert_ok(oci_layout_check(S("{\"imageLayoutVersion\": \"1.0.0\"}"), err));
	assert_ok(oci_layout_check(S("{\"imageLayoutVersion\":\"1.1.0\"}"), err));
	assert_fails(oci_layout_check(S("{\"imageLayoutVersion\":\"2.0.0\"}"), err), "2.0.0");
	assert_fails(oci_layout_check(S("{}"), err), "imageLayoutVersion");
	assert_fails(oci_layout_check(S("[]"), err), "not a JSON object");
	assert_fails(oci_layout_check(S("{"), err), "not valid JSON");
}

/* ---- platforms ---------------------------------------------------------------------- */

static void test_platform_parse(void **state)
{
	(void)state;
	static const struct {
		const char *in, *os, *arch, *variant;
	} cases[] = {
	    {"linux/amd64", "linux", "amd64", ""},
	    {"amd64", "linux", "amd64", ""},
	    {"x86_64", "linux", "amd64", ""},
	    {"linux/x86_64", "linux", "amd64", ""},
	    {"linux/amd64/v1", "linux", "amd64", ""},
	    {"linux/amd64/v3", "linux", "amd64", "v3"},
	    {"aarch64", "linux", "arm64", ""},
	    {"linux/arm64/v8", "linux", "arm64", ""},
	    {"linux/arm64/8", "linux", "arm64", ""},
	    {"linux/arm", "linux", "arm", "v7"},
	    {"linux/arm/7", "linux", "arm", "v7"},
	    {"linux/arm/v6", "linux", "arm", "v6"},
	    {"armhf", "linux", "arm", "v7"},
	    {"armel", "linux", "arm", "v6"},
	    {"i686", "linux", "386", ""},
	    {"i386", "linux", "386", ""},
	    {"Linux/PPC64LE", "linux", "ppc64le", ""},
	    {"linux/s390x", "linux", "s390x", ""},
	    {"linux/riscv64", "linux", "riscv64", ""},
	    {"windows/amd64", "windows", "amd64", ""},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct image_platform p;
		assert_ok(image_platform_parse(cases[i].in, &p, err));
		assert_string_equal(p.os, cases[i].os);
		assert_string_equal(p.arch, cases[i].arch);
		assert_string_equal(p.variant, cases[i].variant);
	}
	const char *bad[] = {"",
			     "/",
			     "linux/",
			     "/amd64",
			     "linux//amd64",
			     "linux/arm/v7/x",
			     "linux/am d64",
			     "linux/../x",
			     "linux/arm/v7/",
			     "a/b/c/d",
			     "linux/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct image_platform p;
		assert_fails(image_platform_parse(bad[i], &p, err), "invalid platform", "OS/ARCH");
	}
	struct image_platform p;
	assert_fails(image_platform_parse(NULL, &p, err), "invalid platform");
	char buf[96];
	assert_ok(image_platform_parse("linux/arm/v7", &p, err));
	image_platform_format(&p, buf, sizeof(buf));
	assert_string_equal(buf, "linux/arm/v7");
	assert_ok(image_platform_parse("aarch64", &p, err));
	image_platform_format(&p, buf, sizeof(buf));
	assert_string_equal(buf, "linux/arm64");
	/* one word, as containerd reads it: a known architecture, or a known OS
	 * (with the host's architecture); anything else is a typo, not an
	 * architecture called "linux-arm64" */
	struct image_platform host;
	image_platform_host(&host);
	assert_ok(image_platform_parse("Linux", &p, err));
	assert_string_equal(p.os, "linux");
	assert_string_equal(p.arch, host.arch);
	assert_ok(image_platform_parse("windows", &p, err));
	assert_string_equal(p.os, "windows");
	assert_ok(image_platform_parse("riscv64", &p, err));
	assert_string_equal(p.arch, "riscv64");
	const char *unknown[] = {"bogus", "linux-arm64", "amd64v2"};
	for (size_t i = 0; i < ARRAY_SIZE(unknown); i++)
		assert_fails(image_platform_parse(unknown[i], &p, err), "invalid platform",
			     unknown[i], "not a known architecture or OS", "OS/ARCH");
	/* two or three parts are taken as given: new architectures keep working */
	assert_ok(image_platform_parse("linux/newarch", &p, err));
	assert_string_equal(p.arch, "newarch");
}

static void test_platform_host(void **state)
{
	(void)state;
	struct image_platform p;
	image_platform_host(&p);
	assert_string_equal(p.os, "linux");
	struct utsname u;
	assert_int_equal(uname(&u), 0);
	if (!strcmp(u.machine, "x86_64")) {
		assert_string_equal(p.arch, "amd64");
		assert_string_equal(p.variant, "");
	} else if (!strcmp(u.machine, "aarch64")) {
		assert_string_equal(p.arch, "arm64");
	}
	/* what the host says is what parsing its own name gives */
	char buf[96];
	struct image_platform q;
	image_platform_format(&p, buf, sizeof(buf));
	assert_ok(image_platform_parse(buf, &q, err));
	assert_memory_equal(&p, &q, sizeof(p));
}

static struct image_platform plat(const char *s)
{
	struct image_platform p;
	struct hutch_err *e = NULL;
	if (image_platform_parse(s, &p, &e) < 0)
		fail_msg("parse %s", s);
	return p;
}

static void test_platform_score(void **state)
{
	(void)state;
	struct image_platform want, have;
	want = plat("linux/arm64");
	have = plat("linux/arm64/v8");
	assert_int_equal(image_platform_score(&want, &have), 100);
	/* not normalised on input (as a caller might fill it by hand): still equal */
	memset(&have, 0, sizeof(have));
	strcpy(have.os, "linux");
	strcpy(have.arch, "aarch64");
	strcpy(have.variant, "v8");
	assert_int_equal(image_platform_score(&want, &have), 100);
	want = plat("linux/arm/v7");
	assert_int_equal(image_platform_score(&want, &(struct image_platform){"linux", "arm", ""}),
			 100);
	int v6 = image_platform_score(&want, &(struct image_platform){"linux", "arm", "v6"});
	int v5 = image_platform_score(&want, &(struct image_platform){"linux", "arm", "v5"});
	assert_true(v6 > v5 && v5 > 0 && v6 < 100);
	want = plat("linux/arm/v6");
	assert_int_equal(
	    image_platform_score(&want, &(struct image_platform){"linux", "arm", "v7"}), 0);
	want = plat("linux/amd64");
	assert_int_equal(
	    image_platform_score(&want, &(struct image_platform){"linux", "amd64", "v3"}), 0);
	assert_int_equal(image_platform_score(&want, &(struct image_platform){"linux", "386", ""}),
			 0);
	assert_int_equal(
	    image_platform_score(&want, &(struct image_platform){"windows", "amd64", ""}), 0);
	want = plat("linux/amd64/v3");
	assert_true(image_platform_score(&want, &(struct image_platform){"linux", "amd64", ""}) >
		    0);
}

static struct descriptor desc_for(const char *platform, const char *mt)
{
	struct descriptor d = {.media_type = (char *)mt, .size = 1};
	strcpy(d.digest, DA);
	if (platform) {
		d.has_platform = true;
		if (!strcmp(platform, "unknown/unknown")) {
			strcpy(d.platform.os, "unknown");
			strcpy(d.platform.arch, "unknown");
		} else {
			d.platform = plat(platform);
		}
	}
	return d;
}

static void test_platform_select(void **state)
{
	(void)state;
	struct descriptor d[] = {
	    desc_for("unknown/unknown", MT_OCI_MANIFEST), /* a buildx attestation */
	    desc_for("linux/amd64", MT_OCI_MANIFEST),
	    desc_for("linux/arm64/v8", MT_OCI_MANIFEST),
	    desc_for("linux/arm/v6", MT_OCI_MANIFEST),
	    desc_for("linux/arm/v7", MT_OCI_MANIFEST),
	    desc_for("linux/riscv64", "application/vnd.example.not-an-image"),
	};
	size_t n = ARRAY_SIZE(d), chosen;
	struct image_platform want = plat("linux/amd64");
	assert_ok(descriptors_select_platform(d, n, &want, &chosen, err));
	assert_int_equal(chosen, 1);
	want = plat("linux/arm64");
	assert_ok(descriptors_select_platform(d, n, &want, &chosen, err));
	assert_int_equal(chosen, 2);
	want = plat("linux/arm"); /* v7 */
	assert_ok(descriptors_select_platform(d, n, &want, &chosen, err));
	assert_int_equal(chosen, 4);
	/* without v7, v6 runs on a v7 machine */
	assert_ok(descriptors_select_platform(d, 4, &want, &chosen, err));
	assert_int_equal(chosen, 3);
	/* none fits: the message lists what there is, once, without the attestation
	 * and without entries that are not images */
	want = plat("linux/s390x");
	assert_fails(descriptors_select_platform(d, n, &want, &chosen, err), "linux/s390x",
		     "linux/amd64, linux/arm64, linux/arm/v6, linux/arm/v7", "--platform");
	{
		struct hutch_err *e = NULL;
		assert_int_equal(descriptors_select_platform(d, n, &want, &chosen, &e), -1);
		assert_null(strstr(e->msg, "unknown"));
		assert_null(strstr(e->msg, "riscv64"));
		hutch_err_free(&e);
	}
	/* one entry without a platform is the image */
	struct descriptor one = desc_for(NULL, MT_OCI_MANIFEST);
	assert_ok(descriptors_select_platform(&one, 1, &want, &chosen, err));
	assert_int_equal(chosen, 0);
	/* several without: nothing to choose by */
	struct descriptor two[] = {desc_for(NULL, MT_OCI_MANIFEST), desc_for(NULL, NULL)};
	assert_fails(descriptors_select_platform(two, 2, &want, &chosen, err), "2 images",
		     "none says its platform");
	assert_fails(descriptors_select_platform(two, 0, &want, &chosen, err), "no images");
	/* the first of equal candidates wins */
	struct descriptor dup[] = {desc_for("linux/arm64", MT_OCI_MANIFEST),
				   desc_for("linux/arm64/v8", MT_DOCKER_MANIFEST)};
	want = plat("linux/arm64");
	assert_ok(descriptors_select_platform(dup, 2, &want, &chosen, err));
	assert_int_equal(chosen, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_index_oci),
	    cmocka_unit_test(test_index_docker_list_and_hints),
	    cmocka_unit_test(test_ambiguous_documents),
	    cmocka_unit_test(test_detect),
	    cmocka_unit_test(test_manifest_oci_layer_types),
	    cmocka_unit_test(test_manifest_docker_v2),
	    cmocka_unit_test(test_manifest_rejects),
	    cmocka_unit_test(test_digests_validated),
	    cmocka_unit_test(test_sizes_validated),
	    cmocka_unit_test(test_nasty_json),
	    cmocka_unit_test(test_config_diff_ids),
	    cmocka_unit_test(test_config_process_fields),
	    cmocka_unit_test(test_docker_manifest),
	    cmocka_unit_test(test_archive_paths),
	    cmocka_unit_test(test_oci_layout_file),
	    cmocka_unit_test(test_platform_parse),
	    cmocka_unit_test(test_platform_host),
	    cmocka_unit_test(test_platform_score),
	    cmocka_unit_test(test_platform_select),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
