/* Parsing image indexes, manifests, configs and docker save's manifest.json,
 * and choosing a platform. See manifest_internal.h for the promises made about
 * what comes out; everything that goes in is someone else's JSON. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <string.h>
#include <strings.h>
#include <sys/utsname.h>

#include "common/util.h"
#include "images/layer_internal.h"
#include "images/manifest_internal.h"

/* Deeper nesting than any real document has; json-c's own default is 32. */
#define JSON_MAX_DEPTH		32
#define DOCKER_MANIFEST_MAX_LEN (16 << 20)
#define ARCHIVE_PATH_MAX	4096
#define REPO_TAG_MAX		1024

/* ---- JSON helpers ------------------------------------------------------------ */

static int json_parse_doc(const char *json, size_t len, size_t max, const char *what,
			  struct json_object **out, struct hutch_err **err)
{
	*out = NULL;
	if (len > max)
		return hutch_fail(err, 0, "%s is %zu bytes, more than the %zu allowed", what, len,
				  max);
	if (len == 0 || !json)
		return hutch_fail(err, 0, "%s is empty", what);
	if (memchr(json, '\0', len))
		return hutch_fail(err, 0, "%s is not JSON: it contains a NUL byte", what);
	struct json_tokener *tok = json_tokener_new_ex(JSON_MAX_DEPTH);
	if (!tok)
		return hutch_fail(err, ENOMEM, "%s: cannot allocate a JSON parser", what);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	struct json_object *obj = json_tokener_parse_ex(tok, json, (int)len);
	enum json_tokener_error e = json_tokener_get_error(tok);
	size_t end = json_tokener_get_parse_end(tok);
	if (!obj && e == json_tokener_continue) {
		/* a bare literal ("null", "12") only ends at a delimiter */
		obj = json_tokener_parse_ex(tok, " ", 1);
		e = json_tokener_get_error(tok);
		end = len;
	}
	json_tokener_free(tok);
	if (e == json_tokener_continue) {
		json_object_put(obj);
		return hutch_fail(err, 0, "%s is not valid JSON: it ends early (truncated?)", what);
	}
	if (e != json_tokener_success) {
		json_object_put(obj);
		return hutch_fail(err, 0, "%s is not valid JSON: %s at byte %zu", what,
				  json_tokener_error_desc(e), end);
	}
	for (size_t i = end; i < len; i++) {
		if (!isspace((unsigned char)json[i])) {
			json_object_put(obj);
			return hutch_fail(err, 0, "%s is not valid JSON: junk after it at byte %zu",
					  what, i);
		}
	}
	*out = obj;
	return 0;
}

static struct json_object *member(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;
	if (o && json_object_is_type(o, json_type_object))
		json_object_object_get_ex(o, key, &v);
	return v;
}

static const char *type_name(struct json_object *v)
{
	return v ? json_type_to_name(json_object_get_type(v)) : "null";
}

/* A string member: 1 and *out when there, 0 when absent or null, -1 when it is
 * not a string or holds a NUL (which C would silently cut). ctx names the
 * object for messages. */
static int get_string(struct json_object *o, const char *key, const char *ctx, const char **out,
		      struct hutch_err **err)
{
	*out = NULL;
	struct json_object *v = member(o, key);
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return hutch_fail(err, 0, "%s: \"%s\" must be a string, not %s", ctx, key,
				  type_name(v));
	const char *s = json_object_get_string(v);
	if ((size_t)json_object_get_string_len(v) != strlen(s))
		return hutch_fail(err, 0, "%s: \"%s\" contains a NUL character", ctx, key);
	*out = s;
	return 1;
}

static int require_string(struct json_object *o, const char *key, const char *ctx, const char **out,
			  struct hutch_err **err)
{
	int r = get_string(o, key, ctx, out, err);
	if (r == 0)
		return hutch_fail(err, 0, "%s: \"%s\" is missing", ctx, key);
	return r < 0 ? -1 : 0;
}

static int string_of(struct json_object *v, const char *ctx, const char **out,
		     struct hutch_err **err)
{
	if (!v || !json_object_is_type(v, json_type_string))
		return hutch_fail(err, 0, "%s must be a string, not %s", ctx, type_name(v));
	const char *s = json_object_get_string(v);
	if ((size_t)json_object_get_string_len(v) != strlen(s))
		return hutch_fail(err, 0, "%s contains a NUL character", ctx);
	*out = s;
	return 0;
}

/* An array member of at most MANIFEST_MAX_ENTRIES items: 1 there, 0 absent/null. */
static int get_array(struct json_object *o, const char *key, const char *ctx,
		     struct json_object **out, size_t *n, struct hutch_err **err)
{
	*out = NULL;
	*n = 0;
	struct json_object *v = member(o, key);
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_array))
		return hutch_fail(err, 0, "%s: \"%s\" must be an array, not %s", ctx, key,
				  type_name(v));
	size_t len = json_object_array_length(v);
	if (len > MANIFEST_MAX_ENTRIES)
		return hutch_fail(err, 0, "%s: \"%s\" has %zu entries, more than the %d allowed",
				  ctx, key, len, MANIFEST_MAX_ENTRIES);
	*out = v;
	*n = len;
	return 1;
}

static int fail_value(struct hutch_err **err, const char *ctx, const char *what, const char *value)
{
	_cleanup_free_ char *shown = printable(value, strlen(value));
	return hutch_fail(err, 0, "%s: %s '%s'", ctx, what, shown);
}

static int check_digest(const char *d, const char *ctx, char out[72], struct hutch_err **err)
{
	if (digest_is_valid(d, false)) {
		memcpy(out, d, 72);
		return 0;
	}
	const char *colon = strchr(d, ':');
	if (colon && colon != d && strncmp(d, "sha256:", 7) != 0 && colon - d <= 32) {
		_cleanup_free_ char *alg = printable(d, (size_t)(colon - d));
		return hutch_fail(
		    err, 0, "%s: digest algorithm '%s' is not supported (only sha256)", ctx, alg);
	}
	_cleanup_free_ char *shown = printable(d, strlen(d));
	return hutch_fail(err, 0,
			  "%s: invalid digest '%s' (expected \"sha256:\" and 64 lowercase hex "
			  "digits)",
			  ctx, shown);
}

static int check_size(struct json_object *o, const char *ctx, int64_t *out, struct hutch_err **err)
{
	struct json_object *v = member(o, "size");
	if (!v)
		return hutch_fail(err, 0, "%s: \"size\" is missing", ctx);
	if (!json_object_is_type(v, json_type_int))
		return hutch_fail(err, 0, "%s: \"size\" must be an integer, not %s", ctx,
				  type_name(v));
	/* json-c saturates what does not fit an int64 at INT64_MAX: out of range too */
	int64_t s = json_object_get_int64(v);
	if (s < 0 || s > BLOB_MAX_SIZE)
		return hutch_fail(err, 0, "%s: size %" PRId64 " is out of range (0 to %" PRId64 ")",
				  ctx, s, BLOB_MAX_SIZE);
	*out = s;
	return 0;
}

static int check_schema_version(struct json_object *doc, const char *what, struct hutch_err **err)
{
	struct json_object *v = member(doc, "schemaVersion");
	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) != 2) {
		if (json_object_is_type(v, json_type_int) && json_object_get_int64(v) == 1)
			return hutch_fail(
			    err, 0,
			    "%s is a Docker schema 1 manifest, which is not supported "
			    "(copy the image again with a current docker or skopeo)",
			    what);
		return hutch_fail(err, 0, "%s: schemaVersion %s is not supported (only 2)", what,
				  json_object_to_json_string(v));
	}
	return 0;
}

/* ---- media types ---------------------------------------------------------------- */

/* "Type/Sub ; charset=x" -> "type/sub" in buf; false if it does not fit. */
static bool media_type_base(const char *mt, char *buf, size_t len)
{
	while (*mt == ' ' || *mt == '\t')
		mt++;
	size_t n = strcspn(mt, "; \t");
	if (n >= len)
		return false;
	for (size_t i = 0; i < n; i++)
		buf[i] = (char)tolower((unsigned char)mt[i]);
	buf[n] = '\0';
	return true;
}

static bool is_index_type(const char *mt)
{
	return !strcmp(mt, MT_OCI_INDEX) || !strcmp(mt, MT_DOCKER_LIST);
}

static bool is_manifest_type(const char *mt)
{
	return !strcmp(mt, MT_OCI_MANIFEST) || !strcmp(mt, MT_DOCKER_MANIFEST);
}

static bool is_schema1_type(const char *mt)
{
	return !strcmp(mt, "application/vnd.docker.distribution.manifest.v1+json") ||
	       !strcmp(mt, "application/vnd.docker.distribution.manifest.v1+prettyjws");
}

static const struct {
	const char *media_type;
	enum layer_compression compression;
	bool non_distributable;
} layer_types[] = {
    {"application/vnd.oci.image.layer.v1.tar", LAYER_UNCOMPRESSED, false},
    {"application/vnd.oci.image.layer.v1.tar+gzip", LAYER_GZIP, false},
    {"application/vnd.oci.image.layer.v1.tar+zstd", LAYER_ZSTD, false},
    {"application/vnd.oci.image.layer.nondistributable.v1.tar", LAYER_UNCOMPRESSED, true},
    {"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", LAYER_GZIP, true},
    {"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", LAYER_ZSTD, true},
    {"application/vnd.docker.image.rootfs.diff.tar", LAYER_UNCOMPRESSED, false},
    {"application/vnd.docker.image.rootfs.diff.tar.gzip", LAYER_GZIP, false},
    {"application/vnd.docker.image.rootfs.diff.tar.zstd", LAYER_ZSTD, false},
    {"application/vnd.docker.image.rootfs.foreign.diff.tar", LAYER_UNCOMPRESSED, true},
    {"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", LAYER_GZIP, true},
};

/* Decide what a parsed document is; *doc_type gets its media type (NULL if
 * nothing says). */
static int detect_object(struct json_object *doc, const char *hint_in, const char *what,
			 enum manifest_kind *kind, const char **doc_type, struct hutch_err **err)
{
	*doc_type = NULL;
	if (!json_object_is_type(doc, json_type_object))
		return hutch_fail(err, 0, "%s is not a JSON object", what);

	char hint[128] = "";
	if (hint_in && *hint_in && !media_type_base(hint_in, hint, sizeof(hint)))
		return fail_value(err, what, "media type is too long:", hint_in);
	const char *own = NULL;
	if (get_string(doc, "mediaType", what, &own, err) < 0)
		return -1;
	char own_base[128] = "";
	if (own && !media_type_base(own, own_base, sizeof(own_base)))
		return fail_value(err, what, "media type is too long:", own);
	if (own && *hint && strcmp(own_base, hint)) {
		_cleanup_free_ char *a = printable(own, strlen(own));
		_cleanup_free_ char *b = printable(hint, strlen(hint));
		return hutch_fail(err, 0,
				  "%s says its media type is '%s' but its source says '%s': "
				  "refusing the mismatch",
				  what, a, b);
	}
	const char *mt = own ? own_base : hint;

	bool has_manifests = member(doc, "manifests") != NULL;
	bool has_image = member(doc, "layers") != NULL || member(doc, "config") != NULL;
	if (has_manifests && has_image)
		return hutch_fail(
		    err, 0,
		    "%s has both \"manifests\" and \"layers\"/\"config\": it could be "
		    "read as an index or as a manifest, refusing it",
		    what);
	if (member(doc, "fsLayers") || (*mt && is_schema1_type(mt)))
		return hutch_fail(err, 0,
				  "%s is a Docker schema 1 manifest, which is not supported (copy "
				  "the image again with a current docker or skopeo)",
				  what);
	if (*mt) {
		if (is_index_type(mt)) {
			if (has_image)
				return fail_value(err, what,
						  "has layers but says it is an index:", mt);
			*kind = MANIFEST_INDEX;
		} else if (is_manifest_type(mt)) {
			if (has_manifests)
				return fail_value(err, what,
						  "lists manifests but says it is a manifest:", mt);
			*kind = MANIFEST_IMAGE;
		} else {
			_cleanup_free_ char *shown = printable(mt, strlen(mt));
			return hutch_fail(err, 0,
					  "%s has media type '%s', which is not a container image "
					  "index or manifest",
					  what, shown);
		}
		*doc_type = own ? own : hint_in;
		return 0;
	}
	if (has_manifests)
		*kind = MANIFEST_INDEX;
	else if (has_image)
		*kind = MANIFEST_IMAGE;
	else
		return hutch_fail(err, 0, "%s is neither an image index nor an image manifest",
				  what);
	return 0;
}

int manifest_detect(const char *json, size_t len, const char *media_type, enum manifest_kind *kind,
		    struct hutch_err **err)
{
	struct json_object *doc;
	if (json_parse_doc(json, len, MANIFEST_MAX_LEN, "manifest", &doc, err) < 0)
		return -1;
	const char *dt;
	int r = detect_object(doc, media_type, "manifest", kind, &dt, err);
	json_object_put(doc);
	return r;
}

/* ---- platforms ------------------------------------------------------------------ */

static void lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

static bool word_ok(const char *s, size_t max, bool may_be_empty)
{
	size_t n = strlen(s);
	if (n >= max || (n == 0 && !may_be_empty))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
			return false;
	return true;
}

/* Whole fields are rewritten, so equal platforms are equal bytes. */
static void set_field(char *dst, size_t size, const char *src)
{
	memset(dst, 0, size);
	snprintf(dst, size, "%s", src);
}

static void platform_normalize(struct image_platform *p)
{
	lower(p->os);
	lower(p->arch);
	lower(p->variant);
	static const struct {
		const char *alias, *arch, *variant; /* variant NULL: keep the given one */
	} aliases[] = {
	    {"x86_64", "amd64", NULL}, {"x86-64", "amd64", NULL}, {"aarch64", "arm64", NULL},
	    {"armhf", "arm", "v7"},    {"armel", "arm", "v6"},	  {"armv7l", "arm", "v7"},
	    {"armv7", "arm", "v7"},    {"armv6l", "arm", "v6"},	  {"armv6", "arm", "v6"},
	    {"armv5l", "arm", "v5"},   {"armv5tel", "arm", "v5"}, {"armv8l", "arm", "v8"},
	    {"i386", "386", NULL},     {"i486", "386", NULL},	  {"i586", "386", NULL},
	    {"i686", "386", NULL},     {"x86", "386", NULL},	  {"ppc64el", "ppc64le", NULL},
	};
	for (size_t i = 0; i < ARRAY_SIZE(aliases); i++) {
		if (strcmp(p->arch, aliases[i].alias))
			continue;
		set_field(p->arch, sizeof(p->arch), aliases[i].arch);
		if (aliases[i].variant && !p->variant[0])
			set_field(p->variant, sizeof(p->variant), aliases[i].variant);
		break;
	}
	/* "7" -> "v7" */
	if (p->variant[0] >= '0' && p->variant[0] <= '9' &&
	    strlen(p->variant) + 1 < sizeof(p->variant)) {
		memmove(p->variant + 1, p->variant, strlen(p->variant) + 1);
		p->variant[0] = 'v';
	}
	if (!strcmp(p->arch, "arm64") && !strcmp(p->variant, "v8"))
		memset(p->variant, 0, sizeof(p->variant));
	else if (!strcmp(p->arch, "amd64") && !strcmp(p->variant, "v1"))
		memset(p->variant, 0, sizeof(p->variant));
	else if (!strcmp(p->arch, "arm") && !p->variant[0])
		set_field(p->variant, sizeof(p->variant), "v7");
}

static bool platform_set(struct image_platform *p, const char *os, const char *arch,
			 const char *variant)
{
	if (!word_ok(os, sizeof(p->os), false) || !word_ok(arch, sizeof(p->arch), false) ||
	    !word_ok(variant, sizeof(p->variant), true))
		return false;
	memset(p, 0, sizeof(*p));
	set_field(p->os, sizeof(p->os), os);
	set_field(p->arch, sizeof(p->arch), arch);
	set_field(p->variant, sizeof(p->variant), variant);
	platform_normalize(p);
	return true;
}

void image_platform_host(struct image_platform *p)
{
	struct utsname u;
	if (uname(&u) == 0 && platform_set(p, "linux", u.machine, ""))
		return;
		/* uname failed or said something odd: what this binary was built for */
#if defined(__x86_64__)
	platform_set(p, "linux", "amd64", "");
#elif defined(__aarch64__)
	platform_set(p, "linux", "arm64", "");
#elif defined(__arm__)
	platform_set(p, "linux", "arm", "v7");
#elif defined(__i386__)
	platform_set(p, "linux", "386", "");
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	platform_set(p, "linux", "ppc64le", "");
#elif defined(__s390x__)
	platform_set(p, "linux", "s390x", "");
#elif defined(__riscv) && __riscv_xlen == 64
	platform_set(p, "linux", "riscv64", "");
#else
	platform_set(p, "linux", "unknown", "");
#endif
}

int image_platform_parse(const char *s, struct image_platform *p, struct hutch_err **err)
{
	char buf[128];
	const char *parts[3] = {NULL};
	size_t n = 0;
	if (!s || strlen(s) >= sizeof(buf))
		goto bad;
	strcpy(buf, s);
	/* not strtok: it would swallow the empty part of "linux//arm64" */
	for (char *part = buf;;) {
		if (n == ARRAY_SIZE(parts))
			goto bad;
		char *slash = strchr(part, '/');
		if (slash)
			*slash = '\0';
		if (!*part)
			goto bad;
		parts[n++] = part;
		if (!slash)
			break;
		part = slash + 1;
	}
	bool ok = false;
	if (n == 1) {
		/* One word, as containerd reads it: an architecture or an OS that
		 * exists. Anything else is a typo ("linux-arm64"), not a name for an
		 * architecture that no image has. */
		static const char *const known_arch[] = {
		    "386",    "amd64",	  "arm",   "arm64",   "loong64", "mips",  "mipsle",
		    "mips64", "mips64le", "ppc64", "ppc64le", "riscv64", "s390x", "wasm"};
		static const char *const known_os[] = {
		    "aix",   "android", "darwin",  "dragonfly", "freebsd", "illumos", "ios",
		    "linux", "netbsd",	"openbsd", "plan9",	"solaris", "windows", "zos"};
		if (platform_set(p, "linux", parts[0], ""))
			for (size_t i = 0; i < ARRAY_SIZE(known_arch); i++)
				if (!strcmp(p->arch, known_arch[i]))
					return 0;
		char os[sizeof(p->os)];
		snprintf(os, sizeof(os), "%s", parts[0]);
		lower(os);
		for (size_t i = 0; i < ARRAY_SIZE(known_os); i++) {
			if (strcmp(os, known_os[i]))
				continue;
			image_platform_host(p);
			set_field(p->os, sizeof(p->os), os);
			return 0;
		}
		_cleanup_free_ char *shown = printable(s, strlen(s));
		return hutch_fail(err, 0,
				  "invalid platform '%s': not a known architecture or OS; expected "
				  "OS/ARCH[/VARIANT], e.g. linux/arm64 or linux/arm/v7",
				  shown);
	} else if (n == 2)
		ok = platform_set(p, parts[0], parts[1], "");
	else if (n == 3)
		ok = platform_set(p, parts[0], parts[1], parts[2]);
	if (ok)
		return 0;
bad:;
	_cleanup_free_ char *shown = printable(s ? s : "", s ? strlen(s) : 0);
	return hutch_fail(err, 0,
			  "invalid platform '%s': expected OS/ARCH[/VARIANT], e.g. linux/arm64 or "
			  "linux/arm/v7",
			  shown);
}

void image_platform_format(const struct image_platform *p, char *buf, size_t len)
{
	if (p->variant[0])
		snprintf(buf, len, "%s/%s/%s", p->os, p->arch, p->variant);
	else
		snprintf(buf, len, "%s/%s", p->os, p->arch);
}

/* "v7" -> 7; amd64's "" is v1 and arm64's "" is v8; -1 if not a level. */
static int variant_level(const char *arch, const char *v)
{
	if (!*v)
		return !strcmp(arch, "amd64") ? 1 : !strcmp(arch, "arm64") ? 8 : -1;
	if (v[0] != 'v' || !v[1] || strlen(v) > 3)
		return -1;
	for (const char *c = v + 1; *c; c++)
		if (*c < '0' || *c > '9')
			return -1;
	return atoi(v + 1);
}

int image_platform_score(const struct image_platform *want_in, const struct image_platform *have_in)
{
	struct image_platform want = *want_in, have = *have_in;
	want.os[sizeof(want.os) - 1] = want.arch[sizeof(want.arch) - 1] = '\0';
	want.variant[sizeof(want.variant) - 1] = '\0';
	have.os[sizeof(have.os) - 1] = have.arch[sizeof(have.arch) - 1] = '\0';
	have.variant[sizeof(have.variant) - 1] = '\0';
	platform_normalize(&want);
	platform_normalize(&have);
	if (strcmp(want.os, have.os) || strcmp(want.arch, have.arch))
		return 0;
	if (!strcmp(want.variant, have.variant))
		return 100;
	/* Older variants of the same architecture run on newer machines (arm/v6 on
	 * arm/v7, amd64 on amd64/v3); the closest is best. */
	if (strcmp(want.arch, "arm") && strcmp(want.arch, "amd64") && strcmp(want.arch, "arm64"))
		return 0;
	int w = variant_level(want.arch, want.variant), h = variant_level(have.arch, have.variant);
	if (w < 0 || h < 0 || h > w)
		return 0;
	int score = 100 - (w - h);
	return score < 1 ? 1 : score;
}

static bool selectable(const struct descriptor *d)
{
	return !d->media_type || is_index_type(d->media_type) || is_manifest_type(d->media_type);
}

int descriptors_select_platform(const struct descriptor *d, size_t n,
				const struct image_platform *want, size_t *chosen,
				struct hutch_err **err)
{
	char want_s[96];
	image_platform_format(want, want_s, sizeof(want_s));
	if (n == 0)
		return hutch_fail(err, 0, "the image index lists no images");
	if (n == 1 && !d[0].has_platform && selectable(&d[0])) {
		*chosen = 0;
		return 0;
	}
	size_t best = n, with_platform = 0;
	int best_score = 0;
	for (size_t i = 0; i < n; i++) {
		if (!d[i].has_platform || !selectable(&d[i]))
			continue;
		with_platform++;
		int s = image_platform_score(want, &d[i].platform);
		if (s > best_score) {
			best_score = s;
			best = i;
		}
	}
	if (best < n) {
		*chosen = best;
		return 0;
	}
	if (with_platform == 0)
		return hutch_fail(err, 0,
				  "the image index lists %zu images and none says its platform: "
				  "cannot choose one for %s",
				  n, want_s);
	/* "it has: linux/arm64, linux/arm/v7", each once, attestations left out */
	char list[512] = "";
	size_t used = 0, listed = 0;
	for (size_t i = 0; i < n; i++) {
		if (!d[i].has_platform || !selectable(&d[i]) ||
		    !strcmp(d[i].platform.os, "unknown"))
			continue;
		char one[96];
		image_platform_format(&d[i].platform, one, sizeof(one));
		bool seen = false;
		for (size_t k = 0; k < i && !seen; k++) {
			char other[96];
			if (!d[k].has_platform || !selectable(&d[k]))
				continue;
			image_platform_format(&d[k].platform, other, sizeof(other));
			seen = !strcmp(one, other);
		}
		if (seen)
			continue;
		if (used + strlen(one) + 8 >= sizeof(list)) {
			snprintf(list + used, sizeof(list) - used, ", ...");
			break;
		}
		used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s",
					 listed++ ? ", " : "", one);
	}
	if (!listed)
		snprintf(list, sizeof(list), "no runnable platform");
	return hutch_fail(err, 0,
			  "no image for platform %s in the index (it has: %s); choose one with "
			  "--platform",
			  want_s, list);
}

/* ---- descriptors ------------------------------------------------------------------ */

void descriptor_free(struct descriptor *d)
{
	if (!d)
		return;
	free(d->media_type);
	free(d->ref_name);
	free(d->image_name);
	memset(d, 0, sizeof(*d));
}

static int parse_platform(struct json_object *pl, const char *ctx, struct image_platform *p,
			  struct hutch_err **err)
{
	if (!json_object_is_type(pl, json_type_object))
		return hutch_fail(err, 0, "%s: \"platform\" must be an object, not %s", ctx,
				  type_name(pl));
	const char *os, *arch, *variant = NULL;
	if (require_string(pl, "os", ctx, &os, err) < 0 ||
	    require_string(pl, "architecture", ctx, &arch, err) < 0 ||
	    get_string(pl, "variant", ctx, &variant, err) < 0)
		return -1;
	if (!platform_set(p, os, arch, variant ? variant : "")) {
		_cleanup_free_ char *a = printable(os, strlen(os));
		_cleanup_free_ char *b = printable(arch, strlen(arch));
		_cleanup_free_ char *c =
		    printable(variant ? variant : "", variant ? strlen(variant) : 0);
		return hutch_fail(err, 0, "%s: invalid platform '%s/%s%s%s'", ctx, a, b,
				  *c ? "/" : "", c);
	}
	return 0;
}

/* A descriptor object; media_type_required for layers and configs. */
static int parse_descriptor(struct json_object *o, const char *ctx, bool media_type_required,
			    struct descriptor *d, struct hutch_err **err)
{
	memset(d, 0, sizeof(*d));
	if (!json_object_is_type(o, json_type_object))
		return hutch_fail(err, 0, "%s must be an object, not %s", ctx, type_name(o));
	const char *mt, *digest;
	int r = get_string(o, "mediaType", ctx, &mt, err);
	if (r < 0)
		return -1;
	if (r == 0 && media_type_required)
		return hutch_fail(err, 0, "%s: \"mediaType\" is missing", ctx);
	if (mt && (strlen(mt) > 255 || !*mt))
		return fail_value(err, ctx, "invalid media type", mt);
	if (require_string(o, "digest", ctx, &digest, err) < 0 ||
	    check_digest(digest, ctx, d->digest, err) < 0 || check_size(o, ctx, &d->size, err) < 0)
		return -1;
	struct json_object *pl = member(o, "platform");
	if (pl) {
		if (parse_platform(pl, ctx, &d->platform, err) < 0)
			return -1;
		d->has_platform = true;
	}
	struct json_object *ann = member(o, "annotations");
	if (ann && !json_object_is_type(ann, json_type_object))
		return hutch_fail(err, 0, "%s: \"annotations\" must be an object, not %s", ctx,
				  type_name(ann));
	const char *ref = NULL, *name = NULL;
	if (get_string(ann, "org.opencontainers.image.ref.name", ctx, &ref, err) < 0 ||
	    get_string(ann, "io.containerd.image.name", ctx, &name, err) < 0)
		return -1;
	d->media_type = mt ? xstrdup(mt) : NULL;
	d->ref_name = ref && *ref ? xstrdup(ref) : NULL;
	d->image_name = name && *name ? xstrdup(name) : NULL;
	return 0;
}

/* ---- index ---------------------------------------------------------------------------- */

void image_index_free(struct image_index *ix)
{
	if (!ix)
		return;
	for (size_t i = 0; i < ix->n_manifests; i++)
		descriptor_free(&ix->manifests[i]);
	free(ix->manifests);
	free(ix->media_type);
	memset(ix, 0, sizeof(*ix));
}

/* The common start of parsing a manifest or an index: parse, check that the
 * document is the kind wanted (and says so consistently), check its schema. */
static int open_document(const char *json, size_t len, const char *media_type, const char *what,
			 enum manifest_kind want, struct json_object **doc_out, const char **doc_type,
			 struct hutch_err **err)
{
	struct json_object *doc;
	if (json_parse_doc(json, len, MANIFEST_MAX_LEN, what, &doc, err) < 0)
		return -1;
	enum manifest_kind kind;
	if (detect_object(doc, media_type, what, &kind, doc_type, err) < 0)
		goto fail;
	if (kind != want) {
		hutch_fail(err, 0, "%s: this is an image %s, not %s", what,
			   want == MANIFEST_INDEX ? "manifest" : "index",
			   want == MANIFEST_INDEX ? "an index" : "a manifest");
		goto fail;
	}
	if (check_schema_version(doc, what, err) < 0)
		goto fail;
	*doc_out = doc;
	return 0;
fail:
	json_object_put(doc);
	return -1;
}

int image_index_parse(const char *json, size_t len, const char *media_type, struct image_index *out,
		      struct hutch_err **err)
{
	memset(out, 0, sizeof(*out));
	const char *what = "image index";
	struct json_object *doc;
	const char *doc_type;
	if (open_document(json, len, media_type, what, MANIFEST_INDEX, &doc, &doc_type, err) < 0)
		return -1;
	int ret = -1;
	struct json_object *arr;
	size_t n;
	int r = get_array(doc, "manifests", what, &arr, &n, err);
	if (r < 0)
		goto out;
	if (r == 0) {
		hutch_fail(err, 0, "%s: \"manifests\" is missing", what);
		goto out;
	}
	out->manifests = xcalloc(n ? n : 1, sizeof(*out->manifests));
	for (size_t i = 0; i < n; i++) {
		char ctx[64];
		snprintf(ctx, sizeof(ctx), "%s: manifests[%zu]", what, i);
		if (parse_descriptor(json_object_array_get_idx(arr, i), ctx, false,
				     &out->manifests[i], err) < 0)
			goto out;
		out->n_manifests++;
	}
	char base[128];
	if (doc_type && media_type_base(doc_type, base, sizeof(base)))
		out->media_type = xstrdup(base);
	else
		out->media_type = xstrdup(MT_OCI_INDEX);
	ret = 0;
out:
	if (ret < 0)
		image_index_free(out);
	json_object_put(doc);
	return ret;
}

/* ---- manifest ------------------------------------------------------------------------ */

void image_manifest_free(struct image_manifest *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n_layers; i++)
		descriptor_free(&m->layers[i].desc);
	free(m->layers);
	descriptor_free(&m->config);
	free(m->media_type);
	memset(m, 0, sizeof(*m));
}

int image_manifest_parse(const char *json, size_t len, const char *media_type,
			 struct image_manifest *out, struct hutch_err **err)
{
	memset(out, 0, sizeof(*out));
	const char *what = "image manifest";
	struct json_object *doc;
	const char *doc_type;
	if (open_document(json, len, media_type, what, MANIFEST_IMAGE, &doc, &doc_type, err) < 0)
		return -1;
	int ret = -1;
	struct json_object *arr;
	size_t n;
	struct json_object *cfg = member(doc, "config");
	if (!cfg) {
		hutch_fail(err, 0, "%s: \"config\" is missing", what);
		goto out;
	}
	if (parse_descriptor(cfg, "image manifest: config", true, &out->config, err) < 0)
		goto out;
	char cfg_type[128];
	if (!media_type_base(out->config.media_type, cfg_type, sizeof(cfg_type)) ||
	    (strcmp(cfg_type, MT_OCI_CONFIG) && strcmp(cfg_type, MT_DOCKER_CONFIG))) {
		_cleanup_free_ char *shown =
		    printable(out->config.media_type, strlen(out->config.media_type));
		hutch_fail(err, 0,
			   "%s: config media type '%s' is not a container image config (an "
			   "artifact, not an image?)",
			   what, shown);
		goto out;
	}
	int r = get_array(doc, "layers", what, &arr, &n, err);
	if (r < 0)
		goto out;
	if (r == 0) {
		hutch_fail(err, 0, "%s: \"layers\" is missing", what);
		goto out;
	}
	out->layers = xcalloc(n ? n : 1, sizeof(*out->layers));
	for (size_t i = 0; i < n; i++) {
		char ctx[64];
		snprintf(ctx, sizeof(ctx), "%s: layers[%zu]", what, i);
		struct manifest_layer *l = &out->layers[i];
		if (parse_descriptor(json_object_array_get_idx(arr, i), ctx, true, &l->desc, err) <
		    0) {
			descriptor_free(&l->desc);
			goto out;
		}
		out->n_layers++;
		char lt[128];
		size_t k = ARRAY_SIZE(layer_types);
		if (media_type_base(l->desc.media_type, lt, sizeof(lt)))
			for (k = 0; k < ARRAY_SIZE(layer_types); k++)
				if (!strcmp(lt, layer_types[k].media_type))
					break;
		if (k == ARRAY_SIZE(layer_types)) {
			_cleanup_free_ char *shown =
			    printable(l->desc.media_type, strlen(l->desc.media_type));
			hutch_fail(err, 0,
				   "%s: layer %zu has media type '%s', which hutch cannot unpack "
				   "(it takes tar, tar+gzip and tar+zstd layers)",
				   what, i, shown);
			goto out;
		}
		l->compression = layer_types[k].compression;
		l->non_distributable = layer_types[k].non_distributable;
	}
	if (doc_type && media_type_base(doc_type, cfg_type, sizeof(cfg_type)))
		out->media_type = xstrdup(cfg_type);
	else if (!strcmp(out->config.media_type, MT_DOCKER_CONFIG))
		out->media_type = xstrdup(MT_DOCKER_MANIFEST);
	else
		out->media_type = xstrdup(MT_OCI_MANIFEST);
	ret = 0;
out:
	if (ret < 0)
		image_manifest_free(out);
	json_object_put(doc);
	return ret;
}

/* ---- config ------------------------------------------------------------------------------ */

/* The fields of an image config's "config" that a container is made from, by
 * the JSON type they must have: a wrong one is refused at import, naming the
 * field and the type found (a Cmd given as an object would otherwise import
 * silently and run as "no Cmd"), and so is a NUL inside one of their strings
 * (C would cut "/bin/sh\u0000x" to "/bin/sh" without a word). Entrypoint
 * and Cmd may be one string, as Docker reads them. The others
 * (ExposedPorts, Volumes, Labels, Healthcheck...) hutch does not use. */
static int check_process_config(struct json_object *doc, struct hutch_err **err)
{
	struct json_object *c = member(doc, "config");
	if (!c)
		return 0;
	if (!json_object_is_type(c, json_type_object))
		return hutch_fail(err, 0, "image config: \"config\" must be an object, not %s",
				  type_name(c));
	static const char *const strings[] = {"User", "WorkingDir", "StopSignal"};
	for (size_t i = 0; i < ARRAY_SIZE(strings); i++) {
		const char *s;
		if (get_string(c, strings[i], "image config: config", &s, err) < 0)
			return -1;
	}
	static const char *const lists[] = {"Entrypoint", "Cmd", "Env"};
	for (size_t i = 0; i < ARRAY_SIZE(lists); i++) {
		struct json_object *arr;
		size_t n;
		const char *s;
		/* Docker takes a single string for Entrypoint and Cmd (not Env) */
		if (i < 2 && json_object_is_type(member(c, lists[i]), json_type_string)) {
			if (get_string(c, lists[i], "image config: config", &s, err) < 0)
				return -1;
			continue;
		}
		if (get_array(c, lists[i], "image config: config", &arr, &n, err) < 0)
			return -1;
		for (size_t k = 0; k < n; k++) {
			char ctx[64];
			snprintf(ctx, sizeof(ctx), "image config: config: %s[%zu]", lists[i], k);
			if (string_of(json_object_array_get_idx(arr, k), ctx, &s, err) < 0)
				return -1;
		}
	}
	return 0;
}

int image_config_diff_ids(const char *json, size_t len, char (**diff_ids)[72], size_t *n_out,
			  struct hutch_err **err)
{
	*diff_ids = NULL;
	*n_out = 0;
	const char *what = "image config";
	struct json_object *doc;
	if (json_parse_doc(json, len, CONFIG_MAX_LEN, what, &doc, err) < 0)
		return -1;
	int ret = -1;
	char(*out)[72] = NULL;
	struct json_object *arr;
	size_t n;
	const char *type;
	if (!json_object_is_type(doc, json_type_object)) {
		hutch_fail(err, 0, "%s is not a JSON object", what);
		goto out;
	}
	if (check_process_config(doc, err) < 0)
		goto out;
	struct json_object *rootfs = member(doc, "rootfs");
	if (!rootfs || !json_object_is_type(rootfs, json_type_object)) {
		hutch_fail(err, 0, "%s: \"rootfs\" is %s", what,
			   rootfs ? "not an object" : "missing");
		goto out;
	}
	if (require_string(rootfs, "type", "image config: rootfs", &type, err) < 0)
		goto out;
	if (strcmp(type, "layers")) {
		fail_value(err, "image config: rootfs", "unsupported type", type);
		goto out;
	}
	int r = get_array(rootfs, "diff_ids", "image config: rootfs", &arr, &n, err);
	if (r < 0)
		goto out;
	if (r == 0) {
		hutch_fail(err, 0, "image config: rootfs: \"diff_ids\" is missing");
		goto out;
	}
	out = n ? xcalloc(n, sizeof(*out)) : NULL;
	for (size_t i = 0; i < n; i++) {
		char ctx[64];
		const char *d;
		snprintf(ctx, sizeof(ctx), "image config: rootfs.diff_ids[%zu]", i);
		if (string_of(json_object_array_get_idx(arr, i), ctx, &d, err) < 0 ||
		    check_digest(d, ctx, out[i], err) < 0)
			goto out;
	}
	*diff_ids = steal_ptr(out);
	*n_out = n;
	ret = 0;
out:
	free(out);
	json_object_put(doc);
	return ret;
}

/* ---- docker save's manifest.json --------------------------------------------------------- */

bool archive_path_is_clean(const char *path)
{
	size_t len = path ? strlen(path) : 0;
	if (len == 0 || len > ARCHIVE_PATH_MAX || path[0] == '/')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)path[i];
		if (c < 0x20 || c == 0x7f || c == '\\')
			return false;
	}
	const char *p = path;
	for (;;) {
		size_t n = strcspn(p, "/");
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		if (!p[n])
			return true;
		p += n + 1;
	}
}

void docker_archive_manifest_free(struct docker_archive_manifest *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n_images; i++) {
		struct docker_archive_image *im = &m->images[i];
		free(im->config);
		for (size_t k = 0; k < im->n_repo_tags; k++)
			free(im->repo_tags[k]);
		free(im->repo_tags);
		for (size_t k = 0; k < im->n_layers; k++)
			free(im->layers[k]);
		free(im->layers);
	}
	free(m->images);
	memset(m, 0, sizeof(*m));
}

static int archive_path(struct json_object *v, const char *ctx, char **out, struct hutch_err **err)
{
	const char *s;
	if (string_of(v, ctx, &s, err) < 0)
		return -1;
	if (!archive_path_is_clean(s))
		return fail_value(err, ctx, "is not a clean path inside the archive:", s);
	*out = xstrdup(s);
	return 0;
}

static int parse_docker_image(struct json_object *o, size_t idx, struct docker_archive_image *im,
			      struct hutch_err **err)
{
	char ctx[96];
	snprintf(ctx, sizeof(ctx), "manifest.json: image %zu", idx);
	if (!json_object_is_type(o, json_type_object))
		return hutch_fail(err, 0, "%s must be an object, not %s", ctx, type_name(o));
	struct json_object *cfg = member(o, "Config");
	if (!cfg)
		return hutch_fail(err, 0, "%s: \"Config\" is missing", ctx);
	char c[160];
	snprintf(c, sizeof(c), "%s: Config", ctx);
	if (archive_path(cfg, c, &im->config, err) < 0)
		return -1;

	struct json_object *arr;
	size_t n;
	if (get_array(o, "RepoTags", ctx, &arr, &n, err) < 0)
		return -1;
	im->repo_tags = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		const char *t;
		snprintf(c, sizeof(c), "%s: RepoTags[%zu]", ctx, i);
		if (string_of(json_object_array_get_idx(arr, i), c, &t, err) < 0)
			return -1;
		if (!*t || strlen(t) > REPO_TAG_MAX)
			return fail_value(err, c, "invalid name", t);
		im->repo_tags[im->n_repo_tags++] = xstrdup(t);
	}

	int r = get_array(o, "Layers", ctx, &arr, &n, err);
	if (r < 0)
		return -1;
	if (r == 0)
		return hutch_fail(err, 0, "%s: \"Layers\" is missing", ctx);
	im->layers = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		snprintf(c, sizeof(c), "%s: Layers[%zu]", ctx, i);
		if (archive_path(json_object_array_get_idx(arr, i), c, &im->layers[i], err) < 0)
			return -1;
		im->n_layers++;
	}
	return 0;
}

int docker_archive_manifest_parse(const char *json, size_t len, struct docker_archive_manifest *out,
				  struct hutch_err **err)
{
	memset(out, 0, sizeof(*out));
	struct json_object *doc;
	if (json_parse_doc(json, len, DOCKER_MANIFEST_MAX_LEN, "manifest.json", &doc, err) < 0)
		return -1;
	int ret = -1;
	if (!json_object_is_type(doc, json_type_array)) {
		hutch_fail(err, 0,
			   "manifest.json is not a JSON array (not a docker save archive?)");
		goto out;
	}
	size_t n = json_object_array_length(doc);
	if (n == 0) {
		hutch_fail(err, 0, "manifest.json lists no images");
		goto out;
	}
	if (n > MANIFEST_MAX_ENTRIES) {
		hutch_fail(err, 0, "manifest.json lists %zu images, more than the %d allowed", n,
			   MANIFEST_MAX_ENTRIES);
		goto out;
	}
	out->images = xcalloc(n, sizeof(*out->images));
	for (size_t i = 0; i < n; i++) {
		out->n_images++;
		if (parse_docker_image(json_object_array_get_idx(doc, i), i, &out->images[i], err) <
		    0)
			goto out;
	}
	ret = 0;
out:
	if (ret < 0)
		docker_archive_manifest_free(out);
	json_object_put(doc);
	return ret;
}

/* ---- oci-layout ------------------------------------------------------------------------ */

int oci_layout_check(const char *json, size_t len, struct hutch_err **err)
{
	struct json_object *doc;
	if (json_parse_doc(json, len, 64 * 1024, "oci-layout", &doc, err) < 0)
		return -1;
	int ret = -1;
	const char *v = NULL;
	if (!json_object_is_type(doc, json_type_object)) {
		hutch_fail(err, 0, "oci-layout is not a JSON object");
		goto out;
	}
	if (require_string(doc, "imageLayoutVersion", "oci-layout", &v, err) < 0)
		goto out;
	/* 1.0.0 is the only version there is; a 1.x would stay compatible */
	if (strncmp(v, "1.", 2) || strlen(v) > 32) {
		fail_value(err, "oci-layout", "unsupported imageLayoutVersion", v);
		goto out;
	}
	ret = 0;
out:
	json_object_put(doc);
	return ret;
}
