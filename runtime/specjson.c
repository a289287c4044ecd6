/* The whole container spec as JSON: DATA/containers/ID/spec.json, written with
 * the container's first record (a --rm container, which never starts again,
 * has none) so that the container can be started again from it (`hutch start`,
 * `restart`, and the supervisor's restarts in place).
 *
 * Every field of struct hutch_spec (and of the structs inside it) is listed once
 * in the tables below, with its JSON key (the C member's name) and its kind;
 * one generic walk writes it and one reads it back, checking each value's type
 * and range and naming the offending key. A new field of the spec is one more
 * line in its struct's table (and the sizes checked at the end of this file).
 * Reading refuses unknown keys (a file from a newer hutch: starting it without a
 * setting it asked for, a device rule say, would be unsafe) and missing ones,
 * except fields marked optional: those added after version 1, whose zero value
 * is what containers made before them had. */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "runtime/runtime_internal.h"

#define SPEC_JSON_VERSION 1

enum sj_kind {
	SJ_STR,	 /* char *, null for NULL */
	SJ_STRV, /* char ** (NULL-terminated) + size_t count */
	SJ_BOOL,
	SJ_INT,	  /* int */
	SJ_I64,	  /* int64_t */
	SJ_U32,	  /* uint32_t */
	SJ_U64,	  /* uint64_t */
	SJ_CHAR,  /* char: a string of one character ("" for '\0') */
	SJ_CHARS, /* char[N]: a string of fewer than N characters */
	SJ_CAPS,  /* uint64_t mask of capabilities: a list of their names */
	SJ_ENUM,  /* an int-sized enum, by name */
	SJ_OBJ,	  /* a struct inside the struct */
	SJ_LIST,  /* an array of structs + size_t count */
};

struct sj_enum {
	const char *what;		    /* for messages: "namespace type" */
	const char *(*name)(int v);	    /* NULL if v has no name */
	int (*from_name)(const char *name); /* -1 if unknown */
	bool numbers; /* a value without a name is written (and read) as a number */
};

struct sj_type;
struct sj_field {
	const char *key;
	enum sj_kind kind;
	size_t off;		   /* of the member (of the pointer, for lists) */
	size_t n_off;		   /* SJ_STRV, SJ_LIST: of the count; SJ_CHARS: the array's size */
	const struct sj_type *sub; /* SJ_OBJ, SJ_LIST */
	const struct sj_enum *en;  /* SJ_ENUM */
	bool optional;		   /* may be missing (added after version 1): zero then */
};

struct sj_type {
	size_t size;
	const struct sj_field *fields;
	size_t n_fields;
};

/* ---- the tables: one line per field ------------------------------------------ */

#define FIELD(T, m, k, ...)                                                                        \
	{                                                                                          \
		.key = #m, .kind = (k), .off = offsetof(T, m), __VA_ARGS__                         \
	}
#define STR(T, m)	 FIELD(T, m, SJ_STR)
#define BOOL(T, m)	 FIELD(T, m, SJ_BOOL)
#define INT(T, m)	 FIELD(T, m, SJ_INT)
#define I64(T, m)	 FIELD(T, m, SJ_I64)
#define U32(T, m)	 FIELD(T, m, SJ_U32)
#define U64(T, m)	 FIELD(T, m, SJ_U64)
#define CHAR(T, m)	 FIELD(T, m, SJ_CHAR)
#define CHARS(T, m)	 FIELD(T, m, SJ_CHARS, .n_off = sizeof(((T *)0)->m))
#define CAPS(T, m)	 FIELD(T, m, SJ_CAPS)
#define ENUM(T, m, e)	 FIELD(T, m, SJ_ENUM, .en = &(e))
#define OBJ(T, m, t)	 FIELD(T, m, SJ_OBJ, .sub = &(t))
#define STRV(T, m, n)	 FIELD(T, m, SJ_STRV, .n_off = offsetof(T, n))
#define LIST(T, m, n, t) FIELD(T, m, SJ_LIST, .n_off = offsetof(T, n), .sub = &(t))
#define TYPE(T, fields)                                                                            \
	{                                                                                          \
		sizeof(T), fields, ARRAY_SIZE(fields)                                              \
	}

static const char *ns_name(int v)
{
	return v >= 0 && v < HUTCH_NS_TYPES ? hutch_ns_type_name((enum hutch_ns_type)v) : NULL;
}
static const struct sj_enum ns_enum = {
    .what = "namespace type", .name = ns_name, .from_name = hutch_ns_type_from_name};

static const char *seccomp_name(int v)
{
	return v == HUTCH_SECCOMP_DEFAULT      ? "default"
	       : v == HUTCH_SECCOMP_UNCONFINED ? "unconfined"
					       : NULL;
}
static int seccomp_from_name(const char *n)
{
	return !strcmp(n, "default")	  ? HUTCH_SECCOMP_DEFAULT
	       : !strcmp(n, "unconfined") ? HUTCH_SECCOMP_UNCONFINED
					  : -1;
}
static const struct sj_enum seccomp_enum = {
    .what = "seccomp mode", .name = seccomp_name, .from_name = seccomp_from_name};
static const struct sj_enum rlimit_enum = {.what = "resource limit",
					   .name = hutch_rlimit_name,
					   .from_name = hutch_rlimit_from_name,
					   .numbers = true};

typedef struct hutch_caps caps_t;
static const struct sj_field caps_fields[] = {
    CAPS(caps_t, bounding),    CAPS(caps_t, effective), CAPS(caps_t, permitted),
    CAPS(caps_t, inheritable), CAPS(caps_t, ambient),
};
static const struct sj_type caps_type = TYPE(caps_t, caps_fields);

typedef struct hutch_rlimit rlimit_t;
static const struct sj_field rlimit_fields[] = {
    ENUM(rlimit_t, resource, rlimit_enum),
    U64(rlimit_t, soft),
    U64(rlimit_t, hard),
    {.key = "explicit", .kind = SJ_BOOL, .off = offsetof(rlimit_t, explicit_)},
};
static const struct sj_type rlimit_type = TYPE(rlimit_t, rlimit_fields);

typedef struct hutch_process process_t;
static const struct sj_field process_fields[] = {
    STRV(process_t, args, n_args),
    STRV(process_t, env, n_env),
    STR(process_t, cwd),
    STR(process_t, user),
    BOOL(process_t, terminal),
    BOOL(process_t, interactive),
    BOOL(process_t, init),
    BOOL(process_t, no_new_privileges),
    OBJ(process_t, caps, caps_type),
    LIST(process_t, rlimits, n_rlimits, rlimit_type),
    INT(process_t, stop_signal),
};
static const struct sj_type process_type = TYPE(process_t, process_fields);

typedef typeof(((struct hutch_spec *)0)->root) root_t;
static const struct sj_field root_fields[] = {
    STRV(root_t, layers, n_layers),
    BOOL(root_t, readonly),
    FIELD(root_t, path, SJ_STR, .optional = true),
};
static const struct sj_type root_type = TYPE(root_t, root_fields);

typedef struct hutch_namespace namespace_t;
static const struct sj_field namespace_fields[] = {
    ENUM(namespace_t, type, ns_enum),
    STR(namespace_t, path),
};
static const struct sj_type namespace_type = TYPE(namespace_t, namespace_fields);

typedef typeof(((struct hutch_spec *)0)->dns) dns_t;
static const struct sj_field dns_fields[] = {
    STRV(dns_t, servers, n_servers),
    STRV(dns_t, search, n_search),
    STRV(dns_t, options, n_options),
};
static const struct sj_type dns_type = TYPE(dns_t, dns_fields);

typedef struct hutch_host_entry host_t;
static const struct sj_field host_fields[] = {
    STR(host_t, hostname),
    STR(host_t, address),
};
static const struct sj_type host_type = TYPE(host_t, host_fields);

typedef struct hutch_id_map idmap_t;
static const struct sj_field idmap_fields[] = {
    U32(idmap_t, container_id),
    U32(idmap_t, host_id),
    U32(idmap_t, size),
};
static const struct sj_type idmap_type = TYPE(idmap_t, idmap_fields);

typedef struct hutch_mount mount_t;
static const struct sj_field mount_fields[] = {
    STR(mount_t, destination),
    STR(mount_t, type),
    STR(mount_t, source),
    STRV(mount_t, options, n_options),
    FIELD(mount_t, uid_map, SJ_LIST, .n_off = offsetof(mount_t, n_uid_map), .sub = &idmap_type,
	  .optional = true),
    FIELD(mount_t, gid_map, SJ_LIST, .n_off = offsetof(mount_t, n_gid_map), .sub = &idmap_type,
	  .optional = true),
};
static const struct sj_type mount_type = TYPE(mount_t, mount_fields);

typedef struct hutch_device_rule device_rule_t;
static const struct sj_field device_rule_fields[] = {
    BOOL(device_rule_t, allow), CHAR(device_rule_t, type),    I64(device_rule_t, major),
    I64(device_rule_t, minor),	CHARS(device_rule_t, access),
};
static const struct sj_type device_rule_type = TYPE(device_rule_t, device_rule_fields);

typedef struct hutch_device device_t;
static const struct sj_field device_fields[] = {
    STR(device_t, path),      CHAR(device_t, type), I64(device_t, major), I64(device_t, minor),
    U32(device_t, file_mode), U32(device_t, uid),   U32(device_t, gid),	  STR(device_t, host_path),
};
static const struct sj_type device_type = TYPE(device_t, device_fields);

typedef struct hutch_cgroup_write cgroup_write_t;
static const struct sj_field cgroup_write_fields[] = {
    STR(cgroup_write_t, field),	   STR(cgroup_write_t, file),	   STR(cgroup_write_t, value),
    STR(cgroup_write_t, alt_file), STR(cgroup_write_t, alt_value), BOOL(cgroup_write_t, optional),
    BOOL(cgroup_write_t, strict),
};
static const struct sj_type cgroup_write_type = TYPE(cgroup_write_t, cgroup_write_fields);

typedef struct hutch_resources resources_t;
static const struct sj_field resources_fields[] = {
    LIST(resources_t, devices, n_devices, device_rule_type),
    I64(resources_t, memory_max),
    I64(resources_t, memory_swap_max),
    I64(resources_t, cpu_quota_us),
    I64(resources_t, cpu_period_us),
    I64(resources_t, pids_max),
    I64(resources_t, cpu_weight),
    FIELD(resources_t, writes, SJ_LIST, .n_off = offsetof(resources_t, n_writes),
	  .sub = &cgroup_write_type, .optional = true),
    FIELD(resources_t, check_before_update, SJ_BOOL, .optional = true),
};
static const struct sj_type resources_type = TYPE(resources_t, resources_fields);

/* what the option setters (options.c) merge from: kept so that a spec read
 * back takes more options as the one it was read from would */
typedef struct hutch_spec_given given_t;
static const struct sj_field given_fields[] = {
    STRV(given_t, image_entrypoint, n_image_entrypoint),
    STRV(given_t, image_cmd, n_image_cmd),
    STRV(given_t, entrypoint, n_entrypoint),
    STRV(given_t, command, n_command),
    BOOL(given_t, entrypoint_set),
    BOOL(given_t, command_set),
    U64(given_t, caps_added),
    U64(given_t, caps_dropped),
};
static const struct sj_type given_type = TYPE(given_t, given_fields);

typedef struct hutch_spec spec_t;
static const struct sj_field spec_fields[] = {
    STR(spec_t, id),
    STR(spec_t, name),
    STR(spec_t, image),
    STR(spec_t, hostname),
    OBJ(spec_t, process, process_type),
    OBJ(spec_t, root, root_type),
    LIST(spec_t, mounts, n_mounts, mount_type),
    STRV(spec_t, masked_paths, n_masked_paths),
    STRV(spec_t, readonly_paths, n_readonly_paths),
    LIST(spec_t, namespaces, n_namespaces, namespace_type),
    OBJ(spec_t, dns, dns_type),
    LIST(spec_t, extra_hosts, n_extra_hosts, host_type),
    LIST(spec_t, uid_map, n_uid_map, idmap_type),
    LIST(spec_t, gid_map, n_gid_map, idmap_type),
    LIST(spec_t, devices, n_devices, device_type),
    OBJ(spec_t, resources, resources_type),
    ENUM(spec_t, seccomp, seccomp_enum),
    FIELD(spec_t, oci, SJ_BOOL, .optional = true),
    BOOL(spec_t, privileged),
    BOOL(spec_t, auto_remove),
    BOOL(spec_t, rw_tmpfs),
    I64(spec_t, rw_tmpfs_size),
    BOOL(spec_t, detached),
    STR(spec_t, image_id),
    STRV(spec_t, labels, n_labels),
    OBJ(spec_t, given, given_type),
};
static const struct sj_type spec_type = TYPE(spec_t, spec_fields);

/* A tripwire for a field added to a struct without a line in its table above
 * (it would silently not survive a restart): when one of these fails, add the
 * new member to its table, then update the size here. */
#ifdef __LP64__ /* the sizes below are x86_64's and other 64-bit ABIs' */
_Static_assert(sizeof(struct hutch_spec) == 584, "struct hutch_spec changed: see spec_fields");
_Static_assert(sizeof(struct hutch_process) == 120,
	       "struct hutch_process changed: see process_fields");
_Static_assert(sizeof(struct hutch_mount) == 72, "struct hutch_mount changed: see mount_fields");
#endif
_Static_assert(sizeof(int) == sizeof(enum hutch_ns_type) &&
		   sizeof(int) == sizeof(enum hutch_seccomp_mode),
	       "SJ_ENUM stores enums as int");

/* ---- writing ----------------------------------------------------------------- */

#define AT(base, off, T)  ((typeof(T) *)((char *)(base) + (off)))
#define CAT(base, off, T) ((const typeof(T) *)((const char *)(base) + (off)))

static struct json_object *obj_to_json(const struct sj_type *t, const void *base);

static struct json_object *field_to_json(const struct sj_field *f, const void *base)
{
	switch (f->kind) {
	case SJ_STR: {
		const char *s = *CAT(base, f->off, char *);
		return s ? json_object_new_string(s) : NULL;
	}
	case SJ_STRV: {
		char *const *v = *CAT(base, f->off, char **);
		size_t n = *CAT(base, f->n_off, size_t);
		struct json_object *a = json_object_new_array_ext((int)n);
		for (size_t i = 0; i < n; i++)
			json_object_array_add(a, v[i] ? json_object_new_string(v[i]) : NULL);
		return a;
	}
	case SJ_BOOL:
		return json_object_new_boolean(*CAT(base, f->off, bool));
	case SJ_INT:
		return json_object_new_int(*CAT(base, f->off, int));
	case SJ_I64:
		return json_object_new_int64(*CAT(base, f->off, int64_t));
	case SJ_U32:
		return json_object_new_int64(*CAT(base, f->off, uint32_t));
	case SJ_U64:
		return json_object_new_uint64(*CAT(base, f->off, uint64_t));
	case SJ_CHAR: {
		char c[2] = {*CAT(base, f->off, char), '\0'};
		return json_object_new_string(c);
	}
	case SJ_CHARS:
		return json_object_new_string_len(CAT(base, f->off, char),
						  (int)strnlen(CAT(base, f->off, char), f->n_off));
	case SJ_CAPS: {
		uint64_t mask = *CAT(base, f->off, uint64_t);
		struct json_object *a = json_object_new_array();
		for (int i = 0; i < 64; i++) {
			if (!(mask & (1ULL << i)))
				continue;
			const char *name = hutch_cap_name(i);
			json_object_array_add(a, name ? json_object_new_string(name)
						      : json_object_new_int(i));
		}
		return a;
	}
	case SJ_ENUM: {
		int v = *CAT(base, f->off, int);
		const char *name = f->en->name(v);
		return name ? json_object_new_string(name) : json_object_new_int(v);
	}
	case SJ_OBJ:
		return obj_to_json(f->sub, CAT(base, f->off, char));
	case SJ_LIST: {
		const char *items = *CAT(base, f->off, char *);
		size_t n = *CAT(base, f->n_off, size_t);
		struct json_object *a = json_object_new_array_ext((int)n);
		for (size_t i = 0; i < n; i++)
			json_object_array_add(a, obj_to_json(f->sub, items + i * f->sub->size));
		return a;
	}
	}
	return NULL;
}

static struct json_object *obj_into_json(struct json_object *o, const struct sj_type *t,
					 const void *base)
{
	for (size_t i = 0; i < t->n_fields; i++)
		json_object_object_add(o, t->fields[i].key, field_to_json(&t->fields[i], base));
	return o;
}

static struct json_object *obj_to_json(const struct sj_type *t, const void *base)
{
	return obj_into_json(json_object_new_object(), t, base);
}

char *hutch_spec_to_json(const struct hutch_spec *spec)
{
	/* the version first: a reader sees which layout it has before anything else */
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "version", json_object_new_int(SPEC_JSON_VERSION));
	obj_into_json(o, &spec_type, spec);
	char *text = xstrdup(json_object_to_json_string_ext(
	    o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return text;
}

/* ---- reading ----------------------------------------------------------------- */

static int obj_from_json(const struct sj_type *t, struct json_object *o, void *base,
			 const char *where, struct hutch_err **err);

static const char *type_word(struct json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_null:
		return "null";
	case json_type_boolean:
		return "a boolean";
	case json_type_double:
		return "a fraction";
	case json_type_int:
		return "a number";
	case json_type_object:
		return "an object";
	case json_type_array:
		return "a list";
	case json_type_string:
		return "a string";
	}
	return "something else";
}

static int wrong(struct hutch_err **err, const char *where, struct json_object *v,
		 const char *expected)
{
	return hutch_fail(err, 0, "%s: %s expected, not %s", where, expected, type_word(v));
}

/* A whole number in [lo, hi] (as int64). */
static int get_int(struct json_object *v, const char *where, int64_t lo, int64_t hi, int64_t *out,
		   struct hutch_err **err)
{
	if (!json_object_is_type(v, json_type_int))
		return wrong(err, where, v, "a whole number");
	errno = 0;
	int64_t n = json_object_get_int64(v);
	if (errno || n < lo || n > hi)
		return hutch_fail(err, 0, "%s: %s is out of range (%lld to %lld)", where,
				  json_object_get_string(v), (long long)lo, (long long)hi);
	*out = n;
	return 0;
}

static int get_str(struct json_object *v, const char *where, bool null_ok, char **out,
		   struct hutch_err **err)
{
	if (!v && null_ok) {
		*out = NULL;
		return 0;
	}
	if (!json_object_is_type(v, json_type_string))
		return wrong(err, where, v, null_ok ? "a string or null" : "a string");
	const char *s = json_object_get_string(v);
	if (strlen(s) != (size_t)json_object_get_string_len(v))
		return hutch_fail(err, 0, "%s: a string with a NUL byte", where);
	*out = xstrdup(s);
	return 0;
}

static int field_from_json(const struct sj_field *f, struct json_object *v, void *base,
			   const char *where, struct hutch_err **err)
{
	int64_t n;
	switch (f->kind) {
	case SJ_STR:
		return get_str(v, where, true, AT(base, f->off, char *), err);
	case SJ_STRV: {
		if (!json_object_is_type(v, json_type_array))
			return wrong(err, where, v, "a list of strings");
		size_t len = json_object_array_length(v);
		char **strv = xcalloc(len + 1, sizeof(char *));
		/* owned by the spec at once: hutch_spec_free frees what was read */
		*AT(base, f->off, char **) = strv;
		*AT(base, f->n_off, size_t) = len;
		for (size_t i = 0; i < len; i++) {
			_cleanup_free_ char *at = xasprintf("%s[%zu]", where, i);
			if (get_str(json_object_array_get_idx(v, i), at, false, &strv[i], err) < 0)
				return -1;
		}
		return 0;
	}
	case SJ_BOOL:
		if (!json_object_is_type(v, json_type_boolean))
			return wrong(err, where, v, "true or false");
		*AT(base, f->off, bool) = json_object_get_boolean(v);
		return 0;
	case SJ_INT:
		if (get_int(v, where, INT_MIN, INT_MAX, &n, err) < 0)
			return -1;
		*AT(base, f->off, int) = (int)n;
		return 0;
	case SJ_I64:
		if (get_int(v, where, INT64_MIN, INT64_MAX, &n, err) < 0)
			return -1;
		*AT(base, f->off, int64_t) = n;
		return 0;
	case SJ_U32:
		if (get_int(v, where, 0, UINT32_MAX, &n, err) < 0)
			return -1;
		*AT(base, f->off, uint32_t) = (uint32_t)n;
		return 0;
	case SJ_U64:
		/* json-c keeps numbers above INT64_MAX as unsigned: get_int64 clamps them */
		if (get_int(v, where, 0, INT64_MAX, &n, err) < 0)
			return -1;
		*AT(base, f->off, uint64_t) = json_object_get_uint64(v);
		return 0;
	case SJ_CHAR:
	case SJ_CHARS: {
		_cleanup_free_ char *str = NULL;
		if (get_str(v, where, false, &str, err) < 0)
			return -1;
		size_t max = f->kind == SJ_CHAR ? 1 : f->n_off - 1;
		if (strlen(str) > max) {
			_cleanup_free_ char *shown = printable(str, strlen(str));
			return hutch_fail(err, 0, "%s: '%s' is longer than %zu character%s", where,
					  shown, max, max == 1 ? "" : "s");
		}
		if (f->kind == SJ_CHAR)
			*AT(base, f->off, char) = str[0];
		else
			memcpy(AT(base, f->off, char), str, strlen(str) + 1);
		return 0;
	}
	case SJ_CAPS: {
		if (!json_object_is_type(v, json_type_array))
			return wrong(err, where, v, "a list of capability names");
		uint64_t mask = 0;
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			struct json_object *c = json_object_array_get_idx(v, i);
			_cleanup_free_ char *at = xasprintf("%s[%zu]", where, i);
			int bit = -1;
			if (json_object_is_type(c, json_type_string)) {
				bit = hutch_cap_from_name(json_object_get_string(c));
				if (bit < 0)
					return hutch_fail(err, 0, "%s: unknown capability '%s'", at,
							  json_object_get_string(c));
			} else if (get_int(c, at, 0, 63, &n, err) < 0) {
				return -1;
			} else {
				bit = (int)n;
			}
			mask |= 1ULL << bit;
		}
		*AT(base, f->off, uint64_t) = mask;
		return 0;
	}
	case SJ_ENUM: {
		int val;
		if (json_object_is_type(v, json_type_string)) {
			_cleanup_free_ char *name = printable(
			    json_object_get_string(v), (size_t)json_object_get_string_len(v));
			val = f->en->from_name(json_object_get_string(v));
			if (val < 0)
				return hutch_fail(err, 0, "%s: unknown %s '%s'", where, f->en->what,
						  name);
		} else if (f->en->numbers) {
			if (get_int(v, where, 0, INT_MAX, &n, err) < 0)
				return -1;
			val = (int)n;
		} else {
			return wrong(err, where, v, "a name");
		}
		*AT(base, f->off, int) = val;
		return 0;
	}
	case SJ_OBJ:
		return obj_from_json(f->sub, v, AT(base, f->off, char), where, err);
	case SJ_LIST: {
		if (!json_object_is_type(v, json_type_array))
			return wrong(err, where, v, "a list");
		size_t len = json_object_array_length(v);
		char *items = len ? xcalloc(len, f->sub->size) : NULL;
		*AT(base, f->off, char *) = items;
		*AT(base, f->n_off, size_t) = len;
		for (size_t i = 0; i < len; i++) {
			_cleanup_free_ char *at = xasprintf("%s[%zu]", where, i);
			if (obj_from_json(f->sub, json_object_array_get_idx(v, i),
					  items + i * f->sub->size, at, err) < 0)
				return -1;
		}
		return 0;
	}
	}
	return hutch_fail(err, 0, "%s: unknown kind of field", where);
}

static int obj_from_json(const struct sj_type *t, struct json_object *o, void *base,
			 const char *where, struct hutch_err **err)
{
	if (!json_object_is_type(o, json_type_object))
		return wrong(err, *where ? where : "the file", o, "an object");
	for (size_t i = 0; i < t->n_fields; i++) {
		const struct sj_field *f = &t->fields[i];
		_cleanup_free_ char *at = xasprintf("%s%s%s", where, *where ? "." : "", f->key);
		struct json_object *v = NULL;
		if (!json_object_object_get_ex(o, f->key, &v)) {
			if (f->optional)
				continue;
			return hutch_fail(err, 0, "'%s' is missing", at);
		}
		if (field_from_json(f, v, base, at, err) < 0)
			return -1;
	}
	json_object_object_foreach(o, key, val)
	{
		(void)val;
		bool known = !*where && !strcmp(key, "version");
		for (size_t i = 0; i < t->n_fields && !known; i++)
			known = !strcmp(key, t->fields[i].key);
		if (!known) {
			_cleanup_free_ char *k = printable(key, strlen(key));
			return hutch_fail(err, 0,
					  "unknown key '%s%s%s' (written by a newer hutch?)", where,
					  *where ? "." : "", k);
		}
	}
	return 0;
}

int hutch_spec_from_json(const char *text, size_t len, struct hutch_spec **out,
			 struct hutch_err **err)
{
	*out = NULL;
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o = json_tokener_parse_ex(tok, text, (int)len);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	size_t end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!o || jerr != json_tokener_success) {
		json_object_put(o);
		return hutch_fail(err, 0, "not valid JSON (%s at byte %zu)",
				  jerr == json_tokener_continue ? "it ends early"
								: json_tokener_error_desc(jerr),
				  end);
	}
	while (end < len && strchr(" \t\r\n", text[end]))
		end++;
	if (end < len) {
		json_object_put(o);
		return hutch_fail(err, 0, "not valid JSON (something follows it at byte %zu)", end);
	}
	struct json_object *version = NULL;
	if (!json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, "version", &version) ||
	    !json_object_is_type(version, json_type_int) ||
	    json_object_get_int64(version) != SPEC_JSON_VERSION) {
		int r = version && json_object_is_type(version, json_type_int)
			    ? hutch_fail(err, 0, "spec version %s, hutch reads version %d",
					 json_object_get_string(version), SPEC_JSON_VERSION)
			    : hutch_fail(err, 0, "no spec version: not a hutch container spec");
		json_object_put(o);
		return r;
	}
	struct hutch_spec *spec = xcalloc(1, sizeof(*spec));
	int r = obj_from_json(&spec_type, o, spec, "", err);
	json_object_put(o);
	if (r == 0 && (!spec->id || strlen(spec->id) != 64 || !is_hex_string(spec->id, 64)))
		r = hutch_fail(err, 0, "'id' is not a container id (64 hex digits)");
	if (r < 0) {
		hutch_spec_free(spec);
		return -1;
	}
	*out = spec;
	return 0;
}

int spec_write(const struct hutch_runtime *rt, const struct hutch_spec *spec,
	       struct hutch_err **err)
{
	_cleanup_free_ char *dir = xasprintf("%s/containers/%s", rt->data_root, spec->id);
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return hutch_fail_sys(err, "open %s", dir);
	_cleanup_free_ char *text = hutch_spec_to_json(spec);
	/* as the record: no fsync (a lost spec is said on start, and rm removes it) */
	return write_file_replace(dfd, "spec.json", text, strlen(text), err);
}

int hutch_spec_load(const struct hutch_runtime *rt, const char *id, struct hutch_spec **out,
		    struct hutch_err **err)
{
	*out = NULL;
	_cleanup_free_ char *path = xasprintf("%s/containers/%s/spec.json", rt->data_root, id);
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	if (read_file_at(AT_FDCWD, path, &text, &len, NULL) < 0)
		return hutch_fail_sys(err, "container %.12s: cannot read its spec %s", id, path);
	if (hutch_spec_from_json(text, len, out, err) < 0)
		return hutch_err_wrap(err, "container %.12s: its spec %s is damaged", id, path);
	if (strcmp((*out)->id, id)) {
		hutch_fail(err, 0,
			   "container %.12s: its spec %s is damaged: it is the spec of container "
			   "%.12s",
			   id, path, (*out)->id);
		hutch_spec_free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}
