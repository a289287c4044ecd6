/* An OCI bundle's config.json into the runtime's spec model.
 *
 * The runtime spec asks runtimes to ignore properties they do not know: those
 * are skipped with a warning. A property hutch knows but does not do (or not
 * safely) is refused by its name, so that nobody runs a container believing
 * it got something it did not. Every value is checked for its JSON type and
 * range, and a message names it by its path ("process.user.uid"). */
#include <ctype.h>
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <linux/mempolicy.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/sha256.h"
#include "common/strbuf.h"
#include "common/util.h"
#include "runtime/runtime_internal.h"
#include "runtime/seccomp_internal.h"

/* Values in config.json are foreign text: at most this much of one in a message. */
#define SHOWN 200

typedef struct json_object jobj;

struct rd {
	struct hutch_oci_config *cfg; /* NULL for a lone process object */
	struct hutch_err **err;
};

static void warn(struct rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(struct rd *r, const char *fmt, ...)
{
	if (!r->cfg)
		return;
	va_list ap;
	va_start(ap, fmt);
	char *msg = NULL;
	if (vasprintf(&msg, fmt, ap) < 0)
		abort();
	va_end(ap);
	struct hutch_oci_config *c = r->cfg;
	c->warnings = xrealloc(c->warnings, (c->n_warnings + 1) * sizeof(char *));
	c->warnings[c->n_warnings++] = msg;
}

static char *shown(const char *s)
{
	size_t n = strlen(s);
	return printable(s, n > SHOWN ? SHOWN : n);
}

static const char *type_name(enum json_type t)
{
	switch (t) {
	case json_type_null:
		return "null";
	case json_type_boolean:
		return "a boolean";
	case json_type_double:
	case json_type_int:
		return "a number";
	case json_type_object:
		return "an object";
	case json_type_array:
		return "an array";
	case json_type_string:
		return "a string";
	}
	return "unknown";
}

static int want_type(struct rd *r, jobj *o, enum json_type t, const char *path)
{
	enum json_type got = json_object_get_type(o);
	if (got == t)
		return 0;
	return hutch_fail(r->err, 0, "%s: %s is expected, not %s", path, type_name(t),
			  type_name(got));
}

/* The keys of an object: known ones each with its handler, the runtime spec's
 * others refused by name, the rest ignored with a warning. */
struct key_rule {
	const char *key;
	/* NULL: known but not supported here (refused); the reason follows */
	int (*fn)(struct rd *r, jobj *v, const char *path, void *target);
	const char *refused;
};

static int walk(struct rd *r, jobj *o, const char *path, const struct key_rule *rules, size_t n,
		void *target)
{
	if (want_type(r, o, json_type_object, path) < 0)
		return -1;
	json_object_object_foreach(o, key, val)
	{
		_cleanup_free_ char *sub = *path ? xasprintf("%s.%s", path, key) : xstrdup(key);
		const struct key_rule *rule = NULL;
		for (size_t i = 0; i < n && !rule; i++)
			if (!strcmp(rules[i].key, key))
				rule = &rules[i];
		if (!rule) {
			_cleanup_free_ char *k = shown(sub);
			warn(r, "%s is not a property hutch knows: ignored", k);
			continue;
		}
		if (json_object_is_type(val, json_type_null))
			continue; /* as if absent */
		if (!rule->fn)
			return hutch_fail(r->err, 0, "%s is not supported by hutch: %s", sub,
					  rule->refused);
		if (rule->fn(r, val, sub, target) < 0)
			return -1;
	}
	return 0;
}

static int get_str(struct rd *r, jobj *v, const char *path, char **out)
{
	if (want_type(r, v, json_type_string, path) < 0)
		return -1;
	const char *s = json_object_get_string(v);
	if (strlen(s) != (size_t)json_object_get_string_len(v))
		return hutch_fail(r->err, 0, "%s: a string with a NUL byte", path);
	free(*out);
	*out = xstrdup(s);
	return 0;
}

static int get_bool(struct rd *r, jobj *v, const char *path, bool *out)
{
	if (want_type(r, v, json_type_boolean, path) < 0)
		return -1;
	*out = json_object_get_boolean(v);
	return 0;
}

static int get_i64(struct rd *r, jobj *v, const char *path, int64_t min, int64_t max, int64_t *out)
{
	if (want_type(r, v, json_type_int, path) < 0)
		return -1;
	errno = 0;
	int64_t x = json_object_get_int64(v);
	/* json-c clamps values beyond int64 and says so in errno */
	if (errno == ERANGE || x < min || x > max ||
	    (x == INT64_MAX && json_object_get_uint64(v) != (uint64_t)INT64_MAX))
		return hutch_fail(r->err, 0, "%s: %s is out of range (%lld to %lld)", path,
				  json_object_get_string(v), (long long)min, (long long)max);
	*out = x;
	return 0;
}

static int get_u64(struct rd *r, jobj *v, const char *path, uint64_t *out)
{
	if (want_type(r, v, json_type_int, path) < 0)
		return -1;
	const char *text = json_object_get_string(v);
	if (text[0] == '-')
		return hutch_fail(r->err, 0, "%s: %s is negative", path, text);
	errno = 0;
	uint64_t x = json_object_get_uint64(v);
	if (errno == ERANGE)
		return hutch_fail(r->err, 0, "%s: %s is out of range", path, text);
	*out = x;
	return 0;
}

static int get_u32(struct rd *r, jobj *v, const char *path, uint32_t *out)
{
	int64_t x;
	if (get_i64(r, v, path, 0, UINT32_MAX, &x) < 0)
		return -1;
	*out = (uint32_t)x;
	return 0;
}

static int get_strv(struct rd *r, jobj *v, const char *path, char ***out, size_t *n)
{
	if (want_type(r, v, json_type_array, path) < 0)
		return -1;
	size_t len = json_object_array_length(v);
	char **list = xcalloc(len + 1, sizeof(char *));
	for (size_t i = 0; i < len; i++) {
		_cleanup_free_ char *sub = xasprintf("%s[%zu]", path, i);
		if (get_str(r, json_object_array_get_idx(v, i), sub, &list[i]) < 0) {
			for (size_t k = 0; k < i; k++)
				free(list[k]);
			free(list);
			return -1;
		}
	}
	for (size_t i = 0; *out && i < *n; i++)
		free((*out)[i]);
	free(*out);
	*out = list;
	*n = len;
	return 0;
}

/* An absolute path without "..": what the mount code and openat2 take. */
static int check_abs(struct rd *r, const char *path, const char *value)
{
	if (value[0] != '/' || strstr(value, "/../") ||
	    (strlen(value) >= 3 && !strcmp(value + strlen(value) - 3, "/.."))) {
		_cleanup_free_ char *v = shown(value);
		return hutch_fail(r->err, 0, "%s: '%s' must be an absolute path without '..'", path,
				  v);
	}
	return 0;
}

/* ---- process ----------------------------------------------------------------- */

struct proc_target {
	struct hutch_process *proc;
	struct hutch_oci_config *cfg; /* may be NULL */
	struct hutch_oci_proc_attrs *attrs;
	uint32_t uid, gid;
};

static int caps_list(struct rd *r, jobj *v, const char *path, uint64_t *mask)
{
	_cleanup_free_ char **names = NULL;
	size_t n = 0;
	*mask = 0;
	if (get_strv(r, v, path, &names, &n) < 0)
		return -1;
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		int cap = hutch_cap_from_name(names[i]);
		if (cap < 0 || strncmp(names[i], "CAP_", 4)) {
			/* as runc: a capability this kernel or hutch does not know
			 * is left out, and said */
			_cleanup_free_ char *s = shown(names[i]);
			warn(r, "%s: unknown capability '%s' left out", path, s);
		} else {
			*mask |= 1ULL << cap;
		}
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	return rc;
}

#define CAPSET(name, field)                                                                        \
	static int cap_##name(struct rd *r, jobj *v, const char *path, void *t)                    \
	{                                                                                          \
		return caps_list(r, v, path, &((struct proc_target *)t)->proc->caps.field);        \
	}
CAPSET(bounding, bounding)
CAPSET(effective, effective)
CAPSET(permitted, permitted)
CAPSET(inheritable, inheritable)
CAPSET(ambient, ambient)

static int p_caps(struct rd *r, jobj *v, const char *path, void *t)
{
	static const struct key_rule rules[] = {
	    {"bounding", cap_bounding, NULL},	{"effective", cap_effective, NULL},
	    {"permitted", cap_permitted, NULL}, {"inheritable", cap_inheritable, NULL},
	    {"ambient", cap_ambient, NULL},
	};
	if (walk(r, v, path, rules, ARRAY_SIZE(rules), t) < 0)
		return -1;
	/* The kernel raises an ambient capability only if it is permitted and
	 * inheritable; runc's own `spec` lists ambient ones without an inheritable
	 * set, and runc and crun leave those out with a warning: so does hutch. */
	struct hutch_caps *c = &((struct proc_target *)t)->proc->caps;
	uint64_t bad = c->ambient & ~(c->permitted & c->inheritable);
	for (int i = 0; bad && i < 64; i++)
		if (bad & (1ULL << i)) {
			char num[24];
			snprintf(num, sizeof(num), "capability %d", i);
			const char *name = hutch_cap_name(i);
			warn(r,
			     "%s.ambient: %s is not in both the permitted and the inheritable "
			     "set: left out",
			     path, name ? name : num);
		}
	c->ambient &= ~bad;
	return 0;
}

static int u_uid(struct rd *r, jobj *v, const char *path, void *t)
{
	return get_u32(r, v, path, &((struct proc_target *)t)->uid);
}
static int u_gid(struct rd *r, jobj *v, const char *path, void *t)
{
	return get_u32(r, v, path, &((struct proc_target *)t)->gid);
}
static int u_umask(struct rd *r, jobj *v, const char *path, void *t)
{
	int64_t m;
	if (get_i64(r, v, path, 0, 0777, &m) < 0)
		return -1;
	struct proc_target *pt = t;
	if (pt->cfg)
		pt->cfg->umask = (int)m;
	return 0;
}
static int u_groups(struct rd *r, jobj *v, const char *path, void *t)
{
	struct proc_target *pt = t;
	if (want_type(r, v, json_type_array, path) < 0)
		return -1;
	size_t n = json_object_array_length(v);
	if (n > 65536)
		return hutch_fail(r->err, 0, "%s: %zu groups, the kernel takes at most 65536", path,
				  n);
	uint32_t *g = xcalloc(n + 1, sizeof(uint32_t));
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *sub = xasprintf("%s[%zu]", path, i);
		if (get_u32(r, json_object_array_get_idx(v, i), sub, &g[i]) < 0) {
			free(g);
			return -1;
		}
	}
	if (pt->cfg) {
		free(pt->cfg->additional_gids);
		pt->cfg->additional_gids = g;
		pt->cfg->n_additional_gids = n;
	} else {
		free(g);
	}
	return 0;
}

static int p_user(struct rd *r, jobj *v, const char *path, void *t)
{
	static const struct key_rule rules[] = {
	    {"uid", u_uid, NULL},
	    {"gid", u_gid, NULL},
	    {"umask", u_umask, NULL},
	    {"additionalGids", u_groups, NULL},
	    {"username", NULL, "it is for Windows; on Linux give uid and gid"},
	};
	return walk(r, v, path, rules, ARRAY_SIZE(rules), t);
}

static int p_args(struct rd *r, jobj *v, const char *path, void *t)
{
	struct hutch_process *p = ((struct proc_target *)t)->proc;
	return get_strv(r, v, path, &p->args, &p->n_args);
}

static int p_env(struct rd *r, jobj *v, const char *path, void *t)
{
	struct hutch_process *p = ((struct proc_target *)t)->proc;
	if (get_strv(r, v, path, &p->env, &p->n_env) < 0)
		return -1;
	for (size_t i = 0; i < p->n_env; i++)
		if (!strchr(p->env[i], '=') || p->env[i][0] == '=') {
			_cleanup_free_ char *s = shown(p->env[i]);
			return hutch_fail(r->err, 0, "%s[%zu]: '%s' is not KEY=VALUE", path, i, s);
		}
	return 0;
}

static int p_cwd(struct rd *r, jobj *v, const char *path, void *t)
{
	struct hutch_process *p = ((struct proc_target *)t)->proc;
	if (get_str(r, v, path, &p->cwd) < 0)
		return -1;
	return check_abs(r, path, p->cwd);
}

static int p_terminal(struct rd *r, jobj *v, const char *path, void *t)
{
	return get_bool(r, v, path, &((struct proc_target *)t)->proc->terminal);
}

static int p_nnp(struct rd *r, jobj *v, const char *path, void *t)
{
	return get_bool(r, v, path, &((struct proc_target *)t)->proc->no_new_privileges);
}

struct rlimit_target {
	char *type;
	uint64_t soft, hard;
	bool has_soft, has_hard;
};
static int rl_type(struct rd *r, jobj *v, const char *path, void *t)
{
	return get_str(r, v, path, &((struct rlimit_target *)t)->type);
}
static int rl_soft(struct rd *r, jobj *v, const char *path, void *t)
{
	((struct rlimit_target *)t)->has_soft = true;
	return get_u64(r, v, path, &((struct rlimit_target *)t)->soft);
}
static int rl_hard(struct rd *r, jobj *v, const char *path, void *t)
{
	((struct rlimit_target *)t)->has_hard = true;
	return get_u64(r, v, path, &((struct rlimit_target *)t)->hard);
}

static int p_rlimits(struct rd *r, jobj *v, const char *path, void *t)
{
	static const struct key_rule rules[] = {
	    {"type", rl_type, NULL}, {"soft", rl_soft, NULL}, {"hard", rl_hard, NULL}};
	struct hutch_process *p = ((struct proc_target *)t)->proc;
	if (want_type(r, v, json_type_array, path) < 0)
		return -1;
	size_t n = json_object_array_length(v);
	free(p->rlimits);
	p->rlimits = xcalloc(n + 1, sizeof(struct hutch_rlimit));
	p->n_rlimits = 0;
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *sub = xasprintf("%s[%zu]", path, i);
		struct rlimit_target rt = {0};
		int rc =
		    walk(r, json_object_array_get_idx(v, i), sub, rules, ARRAY_SIZE(rules), &rt);
		_cleanup_free_ char *type = rt.type;
		if (rc < 0)
			return -1;
		if (!type || !rt.has_soft || !rt.has_hard)
			return hutch_fail(r->err, 0, "%s: type, soft and hard are required", sub);
		int res = strncmp(type, "RLIMIT_", 7) ? -1 : hutch_rlimit_from_name(type + 7);
		if (res < 0) {
			/* hutch_rlimit_from_name takes the lower-case names */
			char lower[32];
			size_t k = 0;
			for (; type[k] && k < sizeof(lower) - 1; k++)
				lower[k] = (char)((type[k] >= 'A' && type[k] <= 'Z') ? type[k] + 32
										     : type[k]);
			lower[k] = '\0';
			res = strncmp(lower, "rlimit_", 7) ? -1 : hutch_rlimit_from_name(lower + 7);
		}
		if (res < 0) {
			_cleanup_free_ char *s = shown(type);
			return hutch_fail(r->err, 0, "%s.type: unknown resource limit '%s'", sub,
					  s);
		}
		for (size_t k = 0; k < p->n_rlimits; k++)
			if (p->rlimits[k].resource == res)
				return hutch_fail(r->err, 0, "%s: %s is given twice", sub, type);
		p->rlimits[p->n_rlimits++] = (struct hutch_rlimit){res, rt.soft, rt.hard, true};
	}
	return 0;
}

static int p_oom(struct rd *r, jobj *v, const char *path, void *t)
{
	int64_t x;
	if (get_i64(r, v, path, -1000, 1000, &x) < 0)
		return -1;
	struct proc_target *pt = t;
	if (pt->cfg) {
		pt->cfg->has_oom_score_adj = true;
		pt->cfg->oom_score_adj = (int)x;
	}
	return 0;
}

static int cs_h(struct rd *r, jobj *v, const char *path, void *t)
{
	int64_t x;
	if (get_i64(r, v, path, 0, USHRT_MAX, &x) < 0)
		return -1;
	struct proc_target *pt = t;
	if (pt->cfg)
		pt->cfg->console_height = (unsigned short)x;
	return 0;
}
static int cs_w(struct rd *r, jobj *v, const char *path, void *t)
{
	int64_t x;
	if (get_i64(r, v, path, 0, USHRT_MAX, &x) < 0)
		return -1;
	struct proc_target *pt = t;
	if (pt->cfg)
		pt->cfg->console_width = (unsigned short)x;
	return 0;
}
static int p_console(struct rd *r, jobj *v, const char *path, void *t)
{
	static const struct key_rule rules[] = {{"height", cs_h, NULL}, {"width", cs_w, NULL}};
	return walk(r, v, path, rules, ARRAY_SIZE(rules), t);
}

static int p_label(struct rd *r, jobj *v, const char *path, void *t)
{
	_cleanup_free_ char *label = NULL;
	if (get_str(r, v, path, &label) < 0)
		return -1;
	if (*label) {
		_cleanup_free_ char *s = shown(label);
		warn(r, "%s '%s' is not applied: hutch applies no AppArmor or SELinux labels", path,
		     s);
	}
	return 0;
}

/* ---- process.scheduler, ioPriority, execCPUAffinity; linux.personality and
 * memoryPolicy: what the container's process is set before its exec ---------- */

/* A name from a table of names and values; the message lists them all. */
struct named {
	const char *name;
	unsigned long value;
};
static int named_value(struct rd *r, jobj *v, const char *path, const struct named *t, size_t n,
		       unsigned long *out)
{
	_cleanup_free_ char *s = NULL;
	if (get_str(r, v, path, &s) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(s, t[i].name)) {
			*out = t[i].value;
			return 0;
		}
	_cleanup_free_ char *known = xstrdup("");
	for (size_t i = 0; i < n; i++) {
		char *next = xasprintf("%s%s%s", known, i ? ", " : "", t[i].name);
		free(known);
		known = next;
	}
	_cleanup_free_ char *bad = shown(s);
	return hutch_fail(r->err, 0, "%s: '%s' is not one of %s", path, bad, known);
}

/* A list of names from t, or'ed together. */
static int named_flags(struct rd *r, jobj *v, const char *path, const struct named *t, size_t n,
		       unsigned long *out)
{
	if (want_type(r, v, json_type_array, path) < 0)
		return -1;
	*out = 0;
	for (size_t i = 0; i < json_object_array_length(v); i++) {
		_cleanup_free_ char *sub = xasprintf("%s[%zu]", path, i);
		unsigned long f;
		if (named_value(r, json_object_array_get_idx(v, i), sub, t, n, &f) < 0)
			return -1;
		*out |= f;
	}
	return 0;
}

/* "0-3,7": CPUs or NUMA nodes as the kernel's lists write them, into a mask
 * of HUTCH_OCI_MAX_CPUS bits. NULL when it is one, else what is wrong. */
const char *oci_parse_id_list(const char *s, uint64_t *mask)
{
	memset(mask, 0, HUTCH_OCI_MAX_CPUS / 8);
	if (!*s)
		return "it is empty";
	while (*s) {
		char *end;
		if (*s < '0' || *s > '9')
			return "it is not a list like 0-3,7";
		unsigned long lo = strtoul(s, &end, 10), hi = lo;
		if (*end == '-') {
			if (end[1] < '0' || end[1] > '9')
				return "it is not a list like 0-3,7";
			hi = strtoul(end + 1, &end, 10);
		}
		if (hi < lo)
			return "a range ends below its start";
		if (hi >= HUTCH_OCI_MAX_CPUS)
			return "a number is 1024 or more";
		for (unsigned long i = lo; i <= hi; i++)
			mask[i / 64] |= 1ULL << (i % 64);
		if (*end == ',' && end[1])
			end++;
		else if (*end)
			return "it is not a list like 0-3,7";
		s = end;
	}
	return NULL;
}

static int id_list(struct rd *r, jobj *v, const char *path, uint64_t *mask, bool *given)
{
	_cleanup_free_ char *s = NULL;
	if (get_str(r, v, path, &s) < 0)
		return -1;
	const char *why = oci_parse_id_list(s, mask);
	if (why) {
		_cleanup_free_ char *bad = shown(s);
		return hutch_fail(r->err, 0, "%s: '%s': %s", path, bad, why);
	}
	*given = true;
	return 0;
}

static struct hutch_oci_proc_attrs *attrs_of(void *t)
{
	return ((struct proc_target *)t)->attrs;
}

struct sched_read {
	struct hutch_oci_proc_attrs *a;
	bool has_policy;
};
static int sch_policy(struct rd *r, jobj *v, const char *path, void *t)
{
	static const struct named policies[] = {
	    {"SCHED_OTHER", SCHED_OTHER}, {"SCHED_FIFO", SCHED_FIFO},
	    {"SCHED_RR", SCHED_RR},	  {"SCHED_BATCH", SCHED_BATCH},
	    {"SCHED_IDLE", SCHED_IDLE},	  {"SCHED_DEADLINE", 6 /* SCHED_DEADLINE */},
	};
	struct sched_read *sr = t;
	unsigned long p;
	if (named_value(r, v, path, policies, ARRAY_SIZE(policies), &p) < 0)
		return -1;
	sr->a->sched_policy = (uint32_t)p;
	sr->has_policy = true;
	return 0;
}
static int sch_nice(struct rd *r, jobj *v, const char *path, void *t)
{
	int64_t x;
	if (get_i64(r, v, path, -20, 19, &x) < 0)
		return -1;
	((struct sched_read *)t)->a->sched_nice = (int32_t)x;
	return 0;
}
static int sch_priority(struct rd *r, jobj *v, const char *path, void *t)
{
	int64_t x;
	if (get_i64(r, v, path, 0, 99, &x) < 0)
		return -1;
	((struct sched_read *)t)->a->sched_priority = (uint32_t)x;
	return 0;
}
static int sch_flags(struct rd *r, jobj *v, const char *path, void *t)
{
	static const struct named flags[] = {
	    {"SCHED_FLAG_RESET_ON_FORK", 0x01},	 {"SCHED_FLAG_RECLAIM", 0x02},
	    {"SCHED_FLAG_DL_OVERRUN", 0x04},	 {"SCHED_FLAG_KEEP_POLICY", 0x08},
	    {"SCHED_FLAG_KEEP_PARAMS", 0x10},	 {"SCHED_FLAG_UTIL_CLAMP_MIN", 0x20},
	    {"SCHED_FLAG_UTIL_CLAMP_MAX", 0x40},
	};
	unsigned long f;
	if (named_flags(r, v, path, flags, ARRAY_SIZE(flags), &f) < 0)
		return -1;
	((struct sched_read *)t)->a->sched_flags = f;
	return 0;
}
static int sch_runtime(struct rd *r, jobj *v, const char *path, void *t)
{
	return get_u64(r, v, path, &((struct sched_read *)t)->a->sched_runtime);
}
static int sch_deadline(struct rd *r, jobj *v, const char *path, void *t)
{
	return get_u64(r, v, path, &((struct sched_read *)t)->a->sched_deadline);
}
static int sch_period(struct rd *r, jobj *v, const char *path, void *t)
{
	return get_u64(r, v, path, &((struct sched_read *)t)->a->sched_period);
}

/* As runc checks it, and what sched_setattr would refuse for certain. */
static int p_scheduler(struct rd *r, jobj *v, const char *path, void *t)
{
	static const struct key_rule rules[] = {
	    {"policy", sch_policy, NULL},     {"nice", sch_nice, NULL},
	    {"priority", sch_priority, NULL}, {"flags", sch_flags, NULL},
	    {"runtime", sch_runtime, NULL},   {"deadline", sch_deadline, NULL},
	    {"period", sch_period, NULL},
	};
	struct hutch_oci_proc_attrs *a = attrs_of(t);
	struct sched_read sr = {.a = a};
	if (walk(r, v, path, rules, ARRAY_SIZE(rules), &sr) < 0)
		return -1;
	if (!sr.has_policy)
		return hutch_fail(r->err, 0, "%s.policy is required", path);
	bool rt = a->sched_policy == SCHED_FIFO || a->sched_policy == SCHED_RR;
	bool dl = a->sched_policy == 6;
	if (rt && !a->sched_priority)
		return hutch_fail(r->err, 0, "%s.priority: SCHED_FIFO and SCHED_RR take 1 to 99",
				  path);
	if (!rt && a->sched_priority)
		return hutch_fail(r->err, 0,
				  "%s.priority: %u is for SCHED_FIFO and SCHED_RR only (this "
				  "policy takes 0)",
				  path, a->sched_priority);
	if (!dl && (a->sched_runtime || a->sched_deadline || a->sched_period))
		return hutch_fail(r->err, 0,
				  "%s: runtime, deadline and period are for SCHED_DEADLINE only",
				  path);
	if (dl && (!a->sched_runtime || a->sched_deadline < a->sched_runtime ||
		   (a->sched_period && a->sched_period < a->sched_deadline)))
		return hutch_fail(r->err, 0,
				  "%s: SCHED_DEADLINE needs 0 < runtime (%llu) <= deadline (%llu) "
				  "<= period (%llu, or 0: the deadline), in nanoseconds",
				  path, (unsigned long long)a->sched_runtime,
				  (unsigned long long)a->sched_deadline,
				  (unsigned long long)a->sched_period);
	a->has_sched = true;
	return 0;
}

struct ioprio_read {
	struct hutch_oci_proc_attrs *a;
	bool has_class;
};
static int io_class(struct rd *r, jobj *v, const char *path, void *t)
{
	static const struct named classes[] = {
	    {"IOPRIO_CLASS_RT", 1}, {"IOPRIO_CLASS_BE", 2}, {"IOPRIO_CLASS_IDLE", 3}};
	struct ioprio_read *ir = t;
	unsigned long c;
	if (named_value(r, v, path, classes, ARRAY_SIZE(classes), &c) < 0)
		return -1;
	ir->a->ioprio_class = (int)c;
	ir->has_class = true;
	return 0;
}
static int io_priority(struct rd *r, jobj *v, const char *path, void *t)
{
	int64_t x;
	if (get_i64(r, v, path, 0, 7, &x) < 0)
		return -1;
	((struct ioprio_read *)t)->a->ioprio_level = (int)x;
	return 0;
}
static int p_ioprio(struct rd *r, jobj *v, const char *path, void *t)
{
	static const struct key_rule rules[] = {{"class", io_class, NULL},
						{"priority", io_priority, NULL}};
	struct ioprio_read ir = {.a = attrs_of(t)};
	if (walk(r, v, path, rules, ARRAY_SIZE(rules), &ir) < 0)
		return -1;
	if (!ir.has_class)
		return hutch_fail(r->err, 0, "%s.class is required", path);
	ir.a->has_ioprio = true;
	return 0;
}

static int aff_initial(struct rd *r, jobj *v, const char *path, void *t)
{
	struct hutch_oci_proc_attrs *a = t;
	return id_list(r, v, path, a->cpus_initial, &a->has_cpus_initial);
}
static int aff_final(struct rd *r, jobj *v, const char *path, void *t)
{
	struct hutch_oci_proc_attrs *a = t;
	return id_list(r, v, path, a->cpus_final, &a->has_cpus_final);
}
static int p_affinity(struct rd *r, jobj *v, const char *path, void *t)
{
	static const struct key_rule rules[] = {{"initial", aff_initial, NULL},
						{"final", aff_final, NULL}};
	return walk(r, v, path, rules, ARRAY_SIZE(rules), attrs_of(t));
}

struct pers_read {
	unsigned long domain, flags;
	bool has_domain;
};
static int pers_domain(struct rd *r, jobj *v, const char *path, void *t)
{
	static const struct named domains[] = {{"LINUX", PER_LINUX}, {"LINUX32", PER_LINUX32}};
	struct pers_read *pr = t;
	pr->has_domain = true;
	return named_value(r, v, path, domains, ARRAY_SIZE(domains), &pr->domain);
}
static int pers_flags(struct rd *r, jobj *v, const char *path, void *t)
{
	/* the runtime spec defines none yet: the kernel's own, by their names */
	static const struct named flags[] = {
	    {"UNAME26", UNAME26},
	    {"ADDR_NO_RANDOMIZE", ADDR_NO_RANDOMIZE},
	    {"FDPIC_FUNCPTRS", FDPIC_FUNCPTRS},
	    {"MMAP_PAGE_ZERO", MMAP_PAGE_ZERO},
	    {"ADDR_COMPAT_LAYOUT", ADDR_COMPAT_LAYOUT},
	    {"READ_IMPLIES_EXEC", READ_IMPLIES_EXEC},
	    {"ADDR_LIMIT_32BIT", ADDR_LIMIT_32BIT},
	    {"SHORT_INODE", SHORT_INODE},
	    {"WHOLE_SECONDS", WHOLE_SECONDS},
	    {"STICKY_TIMEOUTS", STICKY_TIMEOUTS},
	    {"ADDR_LIMIT_3GB", ADDR_LIMIT_3GB},
	};
	return named_flags(r, v, path, flags, ARRAY_SIZE(flags), &((struct pers_read *)t)->flags);
}
static int l_personality(struct rd *r, jobj *v, const char *path, void *t)
{
	static const struct key_rule rules[] = {{"domain", pers_domain, NULL},
						{"flags", pers_flags, NULL}};
	struct pers_read pr = {0};
	if (walk(r, v, path, rules, ARRAY_SIZE(rules), &pr) < 0)
		return -1;
	if (!pr.has_domain)
		return hutch_fail(r->err, 0, "%s.domain is required (LINUX or LINUX32)", path);
	r->cfg->attrs.has_personality = true;
	r->cfg->attrs.personality = pr.domain | pr.flags;
	return 0;
}

struct mpol_read {
	struct hutch_oci_proc_attrs *a;
	bool has_mode, has_nodes;
};
static int mp_mode(struct rd *r, jobj *v, const char *path, void *t)
{
	static const struct named modes[] = {
	    {"MPOL_DEFAULT", MPOL_DEFAULT},
	    {"MPOL_PREFERRED", MPOL_PREFERRED},
	    {"MPOL_BIND", MPOL_BIND},
	    {"MPOL_INTERLEAVE", MPOL_INTERLEAVE},
	    {"MPOL_LOCAL", MPOL_LOCAL},
	    {"MPOL_PREFERRED_MANY", MPOL_PREFERRED_MANY},
	    {"MPOL_WEIGHTED_INTERLEAVE", 6 /* MPOL_WEIGHTED_INTERLEAVE */},
	};
	struct mpol_read *mr = t;
	unsigned long m;
	if (named_value(r, v, path, modes, ARRAY_SIZE(modes), &m) < 0)
		return -1;
	mr->a->mempolicy_mode = (int)m;
	mr->has_mode = true;
	return 0;
}
static int mp_nodes(struct rd *r, jobj *v, const char *path, void *t)
{
	struct mpol_read *mr = t;
	_cleanup_free_ char *s = NULL;
	if (get_str(r, v, path, &s) < 0)
		return -1;
	if (!*s)
		return 0; /* as if absent */
	return id_list(r, v, path, mr->a->mempolicy_nodes, &mr->has_nodes);
}
static int mp_flags(struct rd *r, jobj *v, const char *path, void *t)
{
	static const struct named flags[] = {
	    {"MPOL_F_NUMA_BALANCING", MPOL_F_NUMA_BALANCING},
	    {"MPOL_F_RELATIVE_NODES", MPOL_F_RELATIVE_NODES},
	    {"MPOL_F_STATIC_NODES", MPOL_F_STATIC_NODES},
	};
	unsigned long f;
	if (named_flags(r, v, path, flags, ARRAY_SIZE(flags), &f) < 0)
		return -1;
	((struct mpol_read *)t)->a->mempolicy_flags = (unsigned)f;
	return 0;
}
/* runc's checks: the modes that take no nodes, those that need some, and
 * the flags that exclude each other. */
static int l_mempolicy(struct rd *r, jobj *v, const char *path, void *t)
{
	static const struct key_rule rules[] = {
	    {"mode", mp_mode, NULL}, {"nodes", mp_nodes, NULL}, {"flags", mp_flags, NULL}};
	struct mpol_read mr = {.a = &r->cfg->attrs};
	if (walk(r, v, path, rules, ARRAY_SIZE(rules), &mr) < 0)
		return -1;
	struct hutch_oci_proc_attrs *a = mr.a;
	if (!mr.has_mode)
		return hutch_fail(r->err, 0, "%s.mode is required", path);
	bool no_nodes = a->mempolicy_mode == MPOL_DEFAULT || a->mempolicy_mode == MPOL_LOCAL;
	if (no_nodes && mr.has_nodes)
		return hutch_fail(r->err, 0, "%s.nodes: MPOL_DEFAULT and MPOL_LOCAL take none",
				  path);
	if (!no_nodes && a->mempolicy_mode != MPOL_PREFERRED && !mr.has_nodes)
		return hutch_fail(r->err, 0, "%s.nodes: this mode needs some (a list like 0-3,7)",
				  path);
	if ((a->mempolicy_flags & MPOL_F_STATIC_NODES) &&
	    (a->mempolicy_flags & MPOL_F_RELATIVE_NODES))
		return hutch_fail(r->err, 0,
				  "%s.flags: MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude "
				  "each other",
				  path);
	if (no_nodes && a->mempolicy_flags)
		return hutch_fail(r->err, 0, "%s.flags: MPOL_DEFAULT and MPOL_LOCAL take none",
				  path);
	a->has_mempolicy = true;
	return 0;
}

struct toff_read {
	int64_t *secs;
	uint32_t *nsecs;
};
static int toff_secs(struct rd *r, jobj *v, const char *path, void *t)
{
	/* the kernel's bound: KTIME_SEC_MAX / 2 */
	return get_i64(r, v, path, -(INT64_MAX / 1000000000 / 2), INT64_MAX / 1000000000 / 2,
		       ((struct toff_read *)t)->secs);
}
static int toff_nsecs(struct rd *r, jobj *v, const char *path, void *t)
{
	int64_t x;
	if (get_i64(r, v, path, 0, 999999999, &x) < 0)
		return -1;
	*((struct toff_read *)t)->nsecs = (uint32_t)x;
	return 0;
}
static int toff_clock(struct rd *r, jobj *v, const char *path, int64_t *secs, uint32_t *nsecs)
{
	static const struct key_rule rules[] = {{"secs", toff_secs, NULL},
						{"nanosecs", toff_nsecs, NULL}};
	struct toff_read tr = {secs, nsecs};
	r->cfg->has_time_offsets = true;
	return walk(r, v, path, rules, ARRAY_SIZE(rules), &tr);
}
static int toff_monotonic(struct rd *r, jobj *v, const char *path, void *t)
{
	return toff_clock(r, v, path, &r->cfg->monotonic_secs, &r->cfg->monotonic_nsecs);
}
static int toff_boottime(struct rd *r, jobj *v, const char *path, void *t)
{
	return toff_clock(r, v, path, &r->cfg->boottime_secs, &r->cfg->boottime_nsecs);
}
static int l_time_offsets(struct rd *r, jobj *v, const char *path, void *t)
{
	static const struct key_rule rules[] = {{"monotonic", toff_monotonic, NULL},
						{"boottime", toff_boottime, NULL}};
	return walk(r, v, path, rules, ARRAY_SIZE(rules), t);
}

static const struct key_rule process_rules[] = {
    {"terminal", p_terminal, NULL},
    {"consoleSize", p_console, NULL},
    {"user", p_user, NULL},
    {"args", p_args, NULL},
    {"env", p_env, NULL},
    {"cwd", p_cwd, NULL},
    {"capabilities", p_caps, NULL},
    {"rlimits", p_rlimits, NULL},
    {"noNewPrivileges", p_nnp, NULL},
    {"oomScoreAdj", p_oom, NULL},
    {"apparmorProfile", p_label, NULL},
    {"selinuxLabel", p_label, NULL},
    {"commandLine", NULL, "it is for Windows; on Linux give args"},
    {"scheduler", p_scheduler, NULL},
    {"ioPriority", p_ioprio, NULL},
    {"execCPUAffinity", p_affinity, NULL},
};

static int read_process(struct rd *r, jobj *v, const char *path, struct hutch_process *proc,
			struct hutch_oci_config *cfg, struct hutch_oci_proc_attrs *attrs)
{
	struct proc_target pt = {.proc = proc, .cfg = cfg, .attrs = attrs};
	if (walk(r, v, path, process_rules, ARRAY_SIZE(process_rules), &pt) < 0)
		return -1;
	if (!proc->cwd)
		return hutch_fail(r->err, 0, "%s.cwd is required", path);
	if (!proc->n_args || !*proc->args[0])
		return hutch_fail(r->err, 0, "%s.args: a command is required", path);
	free(proc->user);
	proc->user = xasprintf("%u:%u", pt.uid, pt.gid);
	/* the caller's stdin is the container's, as with runc */
	proc->interactive = true;
	if (cfg) {
		cfg->uid = pt.uid;
		cfg->gid = pt.gid;
	}
	return 0;
}

static int top_process(struct rd *r, jobj *v, const char *path, void *t)
{
	return read_process(r, v, path, &r->cfg->spec->process, r->cfg, &r->cfg->attrs);
}

/* ---- root, hostname, mounts, hooks, annotations --------------------------------- */

struct root_target {
	char *path;
	bool readonly;
};
static int root_path(struct rd *r, jobj *v, const char *path, void *t)
{
	return get_str(r, v, path, &((struct root_target *)t)->path);
}
static int root_ro(struct rd *r, jobj *v, const char *path, void *t)
{
	return get_bool(r, v, path, &((struct root_target *)t)->readonly);
}

static const char *bundle_of(struct rd *r);

static int top_root(struct rd *r, jobj *v, const char *path, void *t)
{
	static const struct key_rule rules[] = {{"path", root_path, NULL},
						{"readonly", root_ro, NULL}};
	struct root_target rt = {0};
	int rc = walk(r, v, path, rules, ARRAY_SIZE(rules), &rt);
	_cleanup_free_ char *p = rt.path;
	if (rc < 0)
		return -1;
	if (!p || !*p)
		return hutch_fail(r->err, 0, "root.path is required");
	struct hutch_spec *s = r->cfg->spec;
	free(s->root.path);
	s->root.path = p[0] == '/' ? xstrdup(p) : xasprintf("%s/%s", bundle_of(r), p);
	s->root.readonly = rt.readonly;
	return 0;
}

static int top_hostname(struct rd *r, jobj *v, const char *path, void *t)
{
	struct hutch_spec *s = r->cfg->spec;
	if (get_str(r, v, path, &s->hostname) < 0)
		return -1;
	if (!*s->hostname) {
		free(s->hostname);
		s->hostname = NULL;
	}
	return 0;
}

static int top_domainname(struct rd *r, jobj *v, const char *path, void *t)
{
	if (get_str(r, v, path, &r->cfg->domainname) < 0)
		return -1;
	if (strlen(r->cfg->domainname) > 64)
		return hutch_fail(r->err, 0, "%s: longer than 64 characters", path);
	return 0;
}

struct mount_target {
	struct hutch_mount m;
};
static int m_dest(struct rd *r, jobj *v, const char *path, void *t)
{
	return get_str(r, v, path, &((struct mount_target *)t)->m.destination);
}
static int m_source(struct rd *r, jobj *v, const char *path, void *t)
{
	return get_str(r, v, path, &((struct mount_target *)t)->m.source);
}
static int m_type(struct rd *r, jobj *v, const char *path, void *t)
{
	return get_str(r, v, path, &((struct mount_target *)t)->m.type);
}
static int m_options(struct rd *r, jobj *v, const char *path, void *t)
{
	struct hutch_mount *m = &((struct mount_target *)t)->m;
	return get_strv(r, v, path, &m->options, &m->n_options);
}

static int id_maps(struct rd *r, jobj *v, const char *path, struct hutch_id_map **out, size_t *n);
/* at most what a user namespace made for them takes (common/idmap.h) */
static int mount_id_maps(struct rd *r, jobj *v, const char *path, struct hutch_id_map **out,
			 size_t *n)
{
	if (id_maps(r, v, path, out, n) < 0)
		return -1;
	if (*n > 8)
		return hutch_fail(r->err, 0, "%s: %zu ranges, hutch takes at most 8", path, *n);
	return 0;
}
static int m_uidmap(struct rd *r, jobj *v, const char *path, void *t)
{
	struct hutch_mount *m = &((struct mount_target *)t)->m;
	return mount_id_maps(r, v, path, &m->uid_map, &m->n_uid_map);
}
static int m_gidmap(struct rd *r, jobj *v, const char *path, void *t)
{
	struct hutch_mount *m = &((struct mount_target *)t)->m;
	return mount_id_maps(r, v, path, &m->gid_map, &m->n_gid_map);
}

static void mount_clear(struct hutch_mount *m)
{
	free(m->uid_map);
	free(m->gid_map);
	free(m->destination);
	free(m->source);
	free(m->type);
	for (size_t i = 0; i < m->n_options; i++)
		free(m->options[i]);
	free(m->options);
}

static int top_mounts(struct rd *r, jobj *v, const char *path, void *t)
{
	static const struct key_rule rules[] = {
	    {"destination", m_dest, NULL},   {"source", m_source, NULL},
	    {"type", m_type, NULL},	     {"options", m_options, NULL},
	    {"uidMappings", m_uidmap, NULL}, {"gidMappings", m_gidmap, NULL},
	};
	if (want_type(r, v, json_type_array, path) < 0)
		return -1;
	struct hutch_spec *s = r->cfg->spec;
	size_t n = json_object_array_length(v);
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *sub = xasprintf("%s[%zu]", path, i);
		struct mount_target mt = {0};
		if (walk(r, json_object_array_get_idx(v, i), sub, rules, ARRAY_SIZE(rules), &mt) <
		    0) {
			mount_clear(&mt.m);
			return -1;
		}
		struct hutch_mount *m = &mt.m;
		if (!m->destination) {
			mount_clear(m);
			return hutch_fail(r->err, 0, "%s.destination is required", sub);
		}
		_cleanup_free_ char *dpath = xasprintf("%s.destination", sub);
		if (check_abs(r, dpath, m->destination) < 0) {
			mount_clear(m);
			return -1;
		}
		/* as runc: both maps or none (the other would be the identity,
		 * which is not what anyone means) */
		if (!m->n_uid_map != !m->n_gid_map) {
			mount_clear(m);
			return hutch_fail(r->err, 0,
					  "%s: give uidMappings and gidMappings together for an "
					  "id-mapped mount",
					  sub);
		}
		bool bind = false;
		for (size_t k = 0; k < m->n_options; k++)
			bind |= !strcmp(m->options[k], "bind") || !strcmp(m->options[k], "rbind");
		if (!m->type)
			m->type = xstrdup(bind ? "bind" : "none");
		/* cgroup v1 is never mounted: the container's own cgroup v2 (or
		 * an empty tmpfs where it has none, as mounts.c does) */
		if (!strcmp(m->type, "cgroup")) {
			free(m->type);
			m->type = xstrdup("cgroup2");
		}
		if (!m->source)
			m->source = xstrdup(m->type);
		if (bind && m->source[0] != '/') {
			char *abs = xasprintf("%s/%s", bundle_of(r), m->source);
			free(m->source);
			m->source = abs;
		}
		s->mounts = xrealloc(s->mounts, (s->n_mounts + 1) * sizeof(*s->mounts));
		s->mounts[s->n_mounts++] = *m;
	}
	return 0;
}

struct hook_target {
	struct hutch_oci_hook h;
};
static int h_path(struct rd *r, jobj *v, const char *path, void *t)
{
	return get_str(r, v, path, &((struct hook_target *)t)->h.path);
}
static int h_args(struct rd *r, jobj *v, const char *path, void *t)
{
	struct hutch_oci_hook *h = &((struct hook_target *)t)->h;
	return get_strv(r, v, path, &h->args, &h->n_args);
}
static int h_env(struct rd *r, jobj *v, const char *path, void *t)
{
	struct hutch_oci_hook *h = &((struct hook_target *)t)->h;
	return get_strv(r, v, path, &h->env, &h->n_env);
}
static int h_timeout(struct rd *r, jobj *v, const char *path, void *t)
{
	int64_t x;
	if (get_i64(r, v, path, 1, INT_MAX, &x) < 0)
		return -1;
	((struct hook_target *)t)->h.timeout_s = (int)x;
	return 0;
}

static void hook_clear(struct hutch_oci_hook *h)
{
	free(h->path);
	for (size_t i = 0; i < h->n_args; i++)
		free(h->args[i]);
	free(h->args);
	for (size_t i = 0; i < h->n_env; i++)
		free(h->env[i]);
	free(h->env);
}

static int hook_list(struct rd *r, jobj *v, const char *path, enum hutch_oci_hook_kind kind)
{
	static const struct key_rule rules[] = {{"path", h_path, NULL},
						{"args", h_args, NULL},
						{"env", h_env, NULL},
						{"timeout", h_timeout, NULL}};
	if (want_type(r, v, json_type_array, path) < 0)
		return -1;
	struct hutch_oci_config *c = r->cfg;
	size_t n = json_object_array_length(v);
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *sub = xasprintf("%s[%zu]", path, i);
		struct hook_target ht = {0};
		if (walk(r, json_object_array_get_idx(v, i), sub, rules, ARRAY_SIZE(rules), &ht) <
		    0) {
			hook_clear(&ht.h);
			return -1;
		}
		_cleanup_free_ char *ppath = xasprintf("%s.path", sub);
		if (!ht.h.path || check_abs(r, ppath, ht.h.path) < 0) {
			if (!ht.h.path)
				hutch_fail(r->err, 0, "%s is required", ppath);
			hook_clear(&ht.h);
			return -1;
		}
		c->hooks[kind] = xrealloc(c->hooks[kind],
					  (c->n_hooks[kind] + 1) * sizeof(struct hutch_oci_hook));
		c->hooks[kind][c->n_hooks[kind]++] = ht.h;
	}
	return 0;
}

#define HOOKS(name, kind)                                                                          \
	static int hk_##name(struct rd *r, jobj *v, const char *path, void *t)                     \
	{                                                                                          \
		return hook_list(r, v, path, kind);                                                \
	}
HOOKS(prestart, HUTCH_HOOK_PRESTART)
HOOKS(create_runtime, HUTCH_HOOK_CREATE_RUNTIME)
HOOKS(create_container, HUTCH_HOOK_CREATE_CONTAINER)
HOOKS(start_container, HUTCH_HOOK_START_CONTAINER)
HOOKS(poststart, HUTCH_HOOK_POSTSTART)
HOOKS(poststop, HUTCH_HOOK_POSTSTOP)

static int top_hooks(struct rd *r, jobj *v, const char *path, void *t)
{
	static const struct key_rule rules[] = {
	    {"prestart", hk_prestart, NULL},
	    {"createRuntime", hk_create_runtime, NULL},
	    {"createContainer", hk_create_container, NULL},
	    {"startContainer", hk_start_container, NULL},
	    {"poststart", hk_poststart, NULL},
	    {"poststop", hk_poststop, NULL},
	};
	return walk(r, v, path, rules, ARRAY_SIZE(rules), t);
}

/* A string-to-string object, in the file's order. */
static int kv_object(struct rd *r, jobj *v, const char *path, struct hutch_kv **out, size_t *n)
{
	if (want_type(r, v, json_type_object, path) < 0)
		return -1;
	json_object_object_foreach(v, key, val)
	{
		_cleanup_free_ char *sub = xasprintf("%s.%s", path, key);
		char *value = NULL;
		if (get_str(r, val, sub, &value) < 0)
			return -1;
		*out = xrealloc(*out, (*n + 1) * sizeof(**out));
		(*out)[(*n)++] = (struct hutch_kv){xstrdup(key), value};
	}
	return 0;
}

static int top_annotations(struct rd *r, jobj *v, const char *path, void *t)
{
	return kv_object(r, v, path, &r->cfg->annotations, &r->cfg->n_annotations);
}

static int top_version(struct rd *r, jobj *v, const char *path, void *t)
{
	if (get_str(r, v, path, &r->cfg->oci_version) < 0)
		return -1;
	if (strncmp(r->cfg->oci_version, "1.", 2)) {
		_cleanup_free_ char *s = shown(r->cfg->oci_version);
		return hutch_fail(r->err, 0, "ociVersion '%s': hutch reads version 1.x", s);
	}
	return 0;
}

/* ---- linux --------------------------------------------------------------------- */

struct ns_target {
	char *type, *path;
};
static int ns_type(struct rd *r, jobj *v, const char *path, void *t)
{
	return get_str(r, v, path, &((struct ns_target *)t)->type);
}
static int ns_path(struct rd *r, jobj *v, const char *path, void *t)
{
	return get_str(r, v, path, &((struct ns_target *)t)->path);
}

static int l_namespaces(struct rd *r, jobj *v, const char *path, void *t)
{
	static const struct key_rule rules[] = {{"type", ns_type, NULL}, {"path", ns_path, NULL}};
	if (want_type(r, v, json_type_array, path) < 0)
		return -1;
	struct hutch_spec *s = r->cfg->spec;
	size_t n = json_object_array_length(v);
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *sub = xasprintf("%s[%zu]", path, i);
		struct ns_target nt = {0};
		int rc =
		    walk(r, json_object_array_get_idx(v, i), sub, rules, ARRAY_SIZE(rules), &nt);
		_cleanup_free_ char *type = nt.type, *p = nt.path;
		if (rc < 0)
			return -1;
		if (!type)
			return hutch_fail(r->err, 0, "%s.type is required", sub);
		int ty = hutch_ns_type_from_name(type);
		if (ty < 0) {
			_cleanup_free_ char *shown_type = shown(type);
			return hutch_fail(r->err, 0,
					  "%s.type: '%s' is not a namespace hutch knows (mount, "
					  "pid, network, ipc, uts, user, cgroup, time)",
					  sub, shown_type);
		}
		if (hutch_spec_namespace(s, (enum hutch_ns_type)ty))
			return hutch_fail(r->err, 0, "%s: the %s namespace is listed twice", sub,
					  type);
		if (p && !*p) {
			free(p);
			p = NULL;
		}
		hutch_spec_set_namespace(s, (enum hutch_ns_type)ty, p);
	}
	return 0;
}

static int id_maps(struct rd *r, jobj *v, const char *path, struct hutch_id_map **out, size_t *n)
{
	if (want_type(r, v, json_type_array, path) < 0)
		return -1;
	size_t len = json_object_array_length(v);
	if (len > 340)
		return hutch_fail(r->err, 0, "%s: %zu ranges, the kernel takes at most 340", path,
				  len);
	struct hutch_id_map *maps = xcalloc(len + 1, sizeof(*maps));
	for (size_t i = 0; i < len; i++) {
		_cleanup_free_ char *sub = xasprintf("%s[%zu]", path, i);
		jobj *e = json_object_array_get_idx(v, i), *x;
		static const char *const keys[] = {"containerID", "hostID", "size"};
		uint32_t *fields[] = {&maps[i].container_id, &maps[i].host_id, &maps[i].size};
		if (want_type(r, e, json_type_object, sub) < 0)
			goto fail;
		for (size_t k = 0; k < 3; k++) {
			_cleanup_free_ char *kp = xasprintf("%s.%s", sub, keys[k]);
			if (!json_object_object_get_ex(e, keys[k], &x)) {
				hutch_fail(r->err, 0, "%s is required", kp);
				goto fail;
			}
			if (get_u32(r, x, kp, fields[k]) < 0)
				goto fail;
		}
		if (!maps[i].size) {
			hutch_fail(r->err, 0, "%s.size: a range of 0 ids", sub);
			goto fail;
		}
	}
	free(*out);
	*out = maps;
	*n = len;
	return 0;
fail:
	free(maps);
	return -1;
}

static int l_uidmap(struct rd *r, jobj *v, const char *path, void *t)
{
	struct hutch_spec *s = r->cfg->spec;
	return id_maps(r, v, path, &s->uid_map, &s->n_uid_map);
}
static int l_gidmap(struct rd *r, jobj *v, const char *path, void *t)
{
	struct hutch_spec *s = r->cfg->spec;
	return id_maps(r, v, path, &s->gid_map, &s->n_gid_map);
}

struct dev_target {
	struct hutch_device d;
	char *type;
	bool has_major, has_minor, has_mode;
	uint32_t mode;
	struct hutch_device_rule rule;
	char *access;
	bool has_allow;
};
static int d_path(struct rd *r, jobj *v, const char *path, void *t)
{
	return get_str(r, v, path, &((struct dev_target *)t)->d.path);
}
static int d_type(struct rd *r, jobj *v, const char *path, void *t)
{
	return get_str(r, v, path, &((struct dev_target *)t)->type);
}
static int d_major(struct rd *r, jobj *v, const char *path, void *t)
{
	struct dev_target *d = t;
	d->has_major = true;
	return get_i64(r, v, path, -1, UINT32_MAX, &d->d.major);
}
static int d_minor(struct rd *r, jobj *v, const char *path, void *t)
{
	struct dev_target *d = t;
	d->has_minor = true;
	return get_i64(r, v, path, -1, UINT32_MAX, &d->d.minor);
}
static int d_mode(struct rd *r, jobj *v, const char *path, void *t)
{
	struct dev_target *d = t;
	d->has_mode = true;
	return get_u32(r, v, path, &d->mode);
}
static int d_uid(struct rd *r, jobj *v, const char *path, void *t)
{
	return get_u32(r, v, path, &((struct dev_target *)t)->d.uid);
}
static int d_gid(struct rd *r, jobj *v, const char *path, void *t)
{
	return get_u32(r, v, path, &((struct dev_target *)t)->d.gid);
}
static int d_allow(struct rd *r, jobj *v, const char *path, void *t)
{
	struct dev_target *d = t;
	d->has_allow = true;
	return get_bool(r, v, path, &d->rule.allow);
}
static int d_access(struct rd *r, jobj *v, const char *path, void *t)
{
	return get_str(r, v, path, &((struct dev_target *)t)->access);
}

static int l_devices(struct rd *r, jobj *v, const char *path, void *t)
{
	static const struct key_rule rules[] = {
	    {"path", d_path, NULL},   {"type", d_type, NULL},	  {"major", d_major, NULL},
	    {"minor", d_minor, NULL}, {"fileMode", d_mode, NULL}, {"uid", d_uid, NULL},
	    {"gid", d_gid, NULL},
	};
	if (want_type(r, v, json_type_array, path) < 0)
		return -1;
	struct hutch_spec *s = r->cfg->spec;
	size_t n = json_object_array_length(v);
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *sub = xasprintf("%s[%zu]", path, i);
		struct dev_target dt = {.d = {.major = -2, .minor = -2}};
		int rc =
		    walk(r, json_object_array_get_idx(v, i), sub, rules, ARRAY_SIZE(rules), &dt);
		_cleanup_free_ char *type = dt.type;
		if (rc < 0 || !dt.d.path || !type || strlen(type) != 1 ||
		    (type[0] != 'c' && type[0] != 'b' && type[0] != 'u') ||
		    ((type[0] != 'p') &&
		     (!dt.has_major || !dt.has_minor || dt.d.major < 0 || dt.d.minor < 0))) {
			if (rc == 0)
				hutch_fail(r->err, 0,
					   "%s: path, type ('c', 'b' or 'u'), major and minor (0 "
					   "or more) are required (a fifo, type 'p', is not "
					   "supported)",
					   sub);
			free(dt.d.path);
			return -1;
		}
		_cleanup_free_ char *ppath = xasprintf("%s.path", sub);
		if (check_abs(r, ppath, dt.d.path) < 0) {
			free(dt.d.path);
			return -1;
		}
		dt.d.type = type[0] == 'b' ? 'b' : 'c';
		dt.d.file_mode = dt.has_mode ? dt.mode & 07777 : 0666;
		dt.d.host_path = xstrdup(dt.d.path);
		s->devices = xrealloc(s->devices, (s->n_devices + 1) * sizeof(*s->devices));
		s->devices[s->n_devices++] = dt.d;
		/* as runc: a node listed is a node the container may use */
		hutch_spec_add_device_rule(s, true, dt.d.type, dt.d.major, dt.d.minor, "rwm");
	}
	return 0;
}

static int res_devices(struct rd *r, jobj *v, const char *path, void *t)
{
	static const struct key_rule rules[] = {
	    {"allow", d_allow, NULL}, {"type", d_type, NULL},	  {"major", d_major, NULL},
	    {"minor", d_minor, NULL}, {"access", d_access, NULL},
	};
	if (want_type(r, v, json_type_array, path) < 0)
		return -1;
	struct hutch_spec *s = r->cfg->spec;
	size_t n = json_object_array_length(v);
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *sub = xasprintf("%s[%zu]", path, i);
		struct dev_target dt = {.d = {.major = -1, .minor = -1}};
		int rc =
		    walk(r, json_object_array_get_idx(v, i), sub, rules, ARRAY_SIZE(rules), &dt);
		_cleanup_free_ char *type = dt.type, *access = dt.access;
		if (rc < 0)
			return -1;
		if (!dt.has_allow)
			return hutch_fail(r->err, 0, "%s.allow is required", sub);
		char ty = type ? type[0] : 'a';
		if (type && (strlen(type) != 1 || (ty != 'a' && ty != 'b' && ty != 'c'))) {
			_cleanup_free_ char *st = shown(type);
			return hutch_fail(r->err, 0, "%s.type: '%s' is not 'a', 'b' or 'c'", sub,
					  st);
		}
		const char *acc = access ? access : "rwm";
		if (!spec_device_access_valid(acc)) {
			_cleanup_free_ char *sa = shown(acc);
			return hutch_fail(r->err, 0,
					  "%s.access: '%s' is not made of the letters 'rwm', each "
					  "at most once",
					  sub, sa);
		}
		hutch_spec_add_device_rule(s, dt.rule.allow, ty, dt.d.major, dt.d.minor, acc);
	}
	return 0;
}

/* One more cgroup file the container's cgroup gets (value and alt_value are
 * taken), named by its field (path) in messages. */
static void add_write(struct rd *r, const char *path, const char *file, char *value,
		      const char *alt_file, char *alt_value, bool optional, bool strict)
{
	struct hutch_resources *res = &r->cfg->spec->resources;
	res->writes = xrealloc(res->writes, (res->n_writes + 1) * sizeof(*res->writes));
	res->writes[res->n_writes++] =
	    (struct hutch_cgroup_write){.field = xstrdup(path),
					.file = xstrdup(file),
					.value = value,
					.alt_file = alt_file ? xstrdup(alt_file) : NULL,
					.alt_value = alt_value,
					.optional = optional,
					.strict = strict};
}

/* what a field of cgroup v1 asks of cgroup v2, which cannot do it */
static int v1_only(struct rd *r, const char *path, const char *what)
{
	return hutch_fail(r->err, 0, "%s: cgroup v2 has %s (crun refuses it too); leave it out",
			  path, what);
}

struct res_target {
	int64_t limit, swap, quota;
	uint64_t period, shares;
	bool has_limit, has_swap, has_quota, has_period;
};
static int mem_limit(struct rd *r, jobj *v, const char *path, void *t)
{
	struct res_target *rt = t;
	rt->has_limit = true;
	return get_i64(r, v, path, -1, INT64_MAX, &rt->limit);
}
static int mem_swap(struct rd *r, jobj *v, const char *path, void *t)
{
	struct res_target *rt = t;
	rt->has_swap = true;
	return get_i64(r, v, path, -1, INT64_MAX, &rt->swap);
}
static int mem_reservation(struct rd *r, jobj *v, const char *path, void *t)
{
	int64_t x;
	if (get_i64(r, v, path, -1, INT64_MAX, &x) < 0)
		return -1;
	add_write(r, path, "memory.low", x < 0 ? xstrdup("max") : xasprintf("%lld", (long long)x),
		  NULL, NULL, false, false);
	return 0;
}
static int mem_kernel(struct rd *r, jobj *v, const char *path, void *t)
{
	int64_t x;
	if (get_i64(r, v, path, INT64_MIN, INT64_MAX, &x) < 0)
		return -1;
	warn(r,
	     "%s: cgroup v2 has no kernel memory limit (the runtime spec deprecates it): ignored",
	     path);
	return 0;
}
static int mem_swappiness(struct rd *r, jobj *v, const char *path, void *t)
{
	return v1_only(r, path, "no swappiness of its own for a cgroup");
}
static int mem_oom_killer(struct rd *r, jobj *v, const char *path, void *t)
{
	bool b;
	if (get_bool(r, v, path, &b) < 0)
		return -1;
	return b ? v1_only(r, path, "no way to disable the OOM killer") : 0;
}
static int mem_hierarchy(struct rd *r, jobj *v, const char *path, void *t)
{
	bool b;
	if (get_bool(r, v, path, &b) < 0)
		return -1;
	return b ? 0 : v1_only(r, path, "only hierarchical accounting");
}
static int mem_check(struct rd *r, jobj *v, const char *path, void *t)
{
	return get_bool(r, v, path, &r->cfg->spec->resources.check_before_update);
}
static int cpu_quota(struct rd *r, jobj *v, const char *path, void *t)
{
	struct res_target *rt = t;
	rt->has_quota = true;
	return get_i64(r, v, path, -1, INT64_MAX, &rt->quota);
}
static int cpu_period(struct rd *r, jobj *v, const char *path, void *t)
{
	struct res_target *rt = t;
	rt->has_period = true;
	return get_u64(r, v, path, &rt->period);
}
static int cpu_shares(struct rd *r, jobj *v, const char *path, void *t)
{
	struct res_target *rt = t;
	return get_u64(r, v, path, &rt->shares);
}
static int cpu_burst(struct rd *r, jobj *v, const char *path, void *t)
{
	uint64_t x;
	if (get_u64(r, v, path, &x) < 0)
		return -1;
	add_write(r, path, "cpu.max.burst", xasprintf("%llu", (unsigned long long)x), NULL, NULL,
		  false, false);
	return 0;
}
static int cpu_idle(struct rd *r, jobj *v, const char *path, void *t)
{
	int64_t x;
	if (get_i64(r, v, path, 0, 1, &x) < 0)
		return -1;
	add_write(r, path, "cpu.idle", xasprintf("%lld", (long long)x), NULL, NULL, false, false);
	return 0;
}
static int cpu_realtime(struct rd *r, jobj *v, const char *path, void *t)
{
	int64_t x;
	if (get_i64(r, v, path, INT64_MIN, INT64_MAX, &x) < 0)
		return -1;
	return x ? v1_only(r, path, "no realtime CPU budget") : 0;
}
static int cpu_set(struct rd *r, jobj *v, const char *path, const char *file)
{
	_cleanup_free_ char *s = NULL;
	if (get_str(r, v, path, &s) < 0)
		return -1;
	if (!*s)
		return 0;
	if (!cgroup_cpu_list_ok(s)) {
		_cleanup_free_ char *ss = shown(s);
		return hutch_fail(r->err, 0, "%s: '%s' is not a list such as 0-3,5", path, ss);
	}
	add_write(r, path, file, xstrdup(s), NULL, NULL, false, false);
	return 0;
}
static int cpu_cpus(struct rd *r, jobj *v, const char *path, void *t)
{
	return cpu_set(r, v, path, "cpuset.cpus");
}
static int cpu_mems(struct rd *r, jobj *v, const char *path, void *t)
{
	return cpu_set(r, v, path, "cpuset.mems");
}
static int pids_limit(struct rd *r, jobj *v, const char *path, void *t)
{
	int64_t x;
	if (get_i64(r, v, path, INT64_MIN, INT64_MAX, &x) < 0)
		return -1;
	/* 0 and below: no limit, as in runc */
	r->cfg->spec->resources.pids_max = x > 0 ? x : 0;
	return 0;
}

static int res_memory(struct rd *r, jobj *v, const char *path, void *t)
{
	static const struct key_rule rules[] = {
	    {"limit", mem_limit, NULL},
	    {"swap", mem_swap, NULL},
	    {"reservation", mem_reservation, NULL},
	    {"kernel", mem_kernel, NULL},
	    {"kernelTCP", mem_kernel, NULL},
	    {"swappiness", mem_swappiness, NULL},
	    {"disableOOMKiller", mem_oom_killer, NULL},
	    {"useHierarchy", mem_hierarchy, NULL},
	    {"checkBeforeUpdate", mem_check, NULL},
	};
	struct res_target rt = {0};
	if (walk(r, v, path, rules, ARRAY_SIZE(rules), &rt) < 0)
		return -1;
	struct hutch_resources *res = &r->cfg->spec->resources;
	if (rt.has_limit) /* (an update without it leaves memory.max as it is) */
		res->memory_max = rt.limit > 0 ? rt.limit : 0;
	/* OCI's swap, like Docker's --memory-swap, is memory plus swap */
	if (rt.has_swap)
		res->memory_swap_max = rt.swap < 0 ? -1 : rt.swap;
	return 0;
}

static int res_cpu(struct rd *r, jobj *v, const char *path, void *t)
{
	static const struct key_rule rules[] = {
	    {"quota", cpu_quota, NULL},
	    {"period", cpu_period, NULL},
	    {"shares", cpu_shares, NULL},
	    {"burst", cpu_burst, NULL},
	    {"realtimeRuntime", cpu_realtime, NULL},
	    {"realtimePeriod", cpu_realtime, NULL},
	    {"cpus", cpu_cpus, NULL},
	    {"mems", cpu_mems, NULL},
	    {"idle", cpu_idle, NULL},
	};
	struct res_target rt = {0};
	if (walk(r, v, path, rules, ARRAY_SIZE(rules), &rt) < 0)
		return -1;
	struct hutch_resources *res = &r->cfg->spec->resources;
	if (rt.has_quota && rt.quota > 0) {
		res->cpu_quota_us = rt.quota;
		res->cpu_period_us = rt.has_period && rt.period ? (int64_t)rt.period : 100000;
		if (rt.period > 1000000)
			return hutch_fail(r->err, 0, "%s.period: at most 1000000 microseconds",
					  path);
	}
	/* cgroup v1's shares (2-262144, 1024 by default: what containerd and
	 * Kubernetes give) as cgroup v2's weight (1-10000), by runc's formula */
	if (rt.shares) {
		uint64_t sh = rt.shares < 2 ? 2 : rt.shares > 262144 ? 262144 : rt.shares;
		res->cpu_weight = (int64_t)(1 + ((sh - 2) * 9999) / 262142);
	}
	return 0;
}

static int res_pids(struct rd *r, jobj *v, const char *path, void *t)
{
	static const struct key_rule rules[] = {{"limit", pids_limit, NULL}};
	return walk(r, v, path, rules, ARRAY_SIZE(rules), t);
}

/* blockIO's device entries (weightDevice, throttle*Device) */
struct blk_target {
	int64_t major, minor, weight, leaf;
	uint64_t rate;
	bool has_major, has_minor, has_rate;
};
static int blk_major(struct rd *r, jobj *v, const char *path, void *t)
{
	struct blk_target *b = t;
	b->has_major = true;
	return get_i64(r, v, path, 0, UINT32_MAX, &b->major);
}
static int blk_minor(struct rd *r, jobj *v, const char *path, void *t)
{
	struct blk_target *b = t;
	b->has_minor = true;
	return get_i64(r, v, path, 0, UINT32_MAX, &b->minor);
}
/* cgroup v1's and bfq's weights: 10-1000, 0 for none */
static int get_weight(struct rd *r, jobj *v, const char *path, int64_t *out)
{
	if (get_i64(r, v, path, 0, 1000, out) < 0)
		return -1;
	if (*out && *out < 10)
		return hutch_fail(r->err, 0, "%s: %lld is out of range (10 to 1000, or 0 for none)",
				  path, (long long)*out);
	return 0;
}
static int blk_weight(struct rd *r, jobj *v, const char *path, void *t)
{
	return get_weight(r, v, path, &((struct blk_target *)t)->weight);
}
static int blk_leaf(struct rd *r, jobj *v, const char *path, void *t)
{
	if (get_weight(r, v, path, &((struct blk_target *)t)->leaf) < 0)
		return -1;
	return ((struct blk_target *)t)->leaf ? v1_only(r, path, "no leaf weight") : 0;
}
static int blk_rate(struct rd *r, jobj *v, const char *path, void *t)
{
	struct blk_target *b = t;
	b->has_rate = true;
	return get_u64(r, v, path, &b->rate);
}

/* key: io.max's ("rbps"), or NULL for weightDevice */
static int blk_devices(struct rd *r, jobj *v, const char *path, const char *key)
{
	static const struct key_rule weight_rules[] = {{"major", blk_major, NULL},
						       {"minor", blk_minor, NULL},
						       {"weight", blk_weight, NULL},
						       {"leafWeight", blk_leaf, NULL}};
	static const struct key_rule rate_rules[] = {
	    {"major", blk_major, NULL}, {"minor", blk_minor, NULL}, {"rate", blk_rate, NULL}};
	if (want_type(r, v, json_type_array, path) < 0)
		return -1;
	for (size_t i = 0; i < json_object_array_length(v); i++) {
		_cleanup_free_ char *sub = xasprintf("%s[%zu]", path, i);
		struct blk_target b = {0};
		if (walk(r, json_object_array_get_idx(v, i), sub, key ? rate_rules : weight_rules,
			 key ? ARRAY_SIZE(rate_rules) : ARRAY_SIZE(weight_rules), &b) < 0)
			return -1;
		if (!b.has_major || !b.has_minor || (key && !b.has_rate))
			return hutch_fail(r->err, 0, "%s: major, minor and %s are required", sub,
					  key ? "rate" : "weight");
		if (key)
			add_write(r, sub, "io.max",
				  cgroup_device_line(b.major, b.minor, key, b.rate), NULL, NULL,
				  false, false);
		else if (b.weight) /* bfq's weight as it is, else io.weight's range */
			add_write(
			    r, sub, "io.bfq.weight",
			    cgroup_device_line(b.major, b.minor, NULL, b.weight), "io.weight",
			    cgroup_device_line(b.major, b.minor, NULL, cgroup_io_weight(b.weight)),
			    false, false);
	}
	return 0;
}
static int bio_weight(struct rd *r, jobj *v, const char *path, void *t)
{
	int64_t w;
	if (get_weight(r, v, path, &w) < 0)
		return -1;
	if (w)
		add_write(r, path, "io.bfq.weight", xasprintf("%lld", (long long)w), "io.weight",
			  xasprintf("%llu", (unsigned long long)cgroup_io_weight(w)), false, false);
	return 0;
}
static int bio_leaf(struct rd *r, jobj *v, const char *path, void *t)
{
	struct blk_target b = {0};
	return blk_leaf(r, v, path, &b);
}
static int bio_weight_device(struct rd *r, jobj *v, const char *path, void *t)
{
	return blk_devices(r, v, path, NULL);
}
static int bio_rbps(struct rd *r, jobj *v, const char *path, void *t)
{
	return blk_devices(r, v, path, "rbps");
}
static int bio_wbps(struct rd *r, jobj *v, const char *path, void *t)
{
	return blk_devices(r, v, path, "wbps");
}
static int bio_riops(struct rd *r, jobj *v, const char *path, void *t)
{
	return blk_devices(r, v, path, "riops");
}
static int bio_wiops(struct rd *r, jobj *v, const char *path, void *t)
{
	return blk_devices(r, v, path, "wiops");
}
static int res_block_io(struct rd *r, jobj *v, const char *path, void *t)
{
	static const struct key_rule rules[] = {
	    {"weight", bio_weight, NULL},
	    {"leafWeight", bio_leaf, NULL},
	    {"weightDevice", bio_weight_device, NULL},
	    {"throttleReadBpsDevice", bio_rbps, NULL},
	    {"throttleWriteBpsDevice", bio_wbps, NULL},
	    {"throttleReadIOPSDevice", bio_riops, NULL},
	    {"throttleWriteIOPSDevice", bio_wiops, NULL},
	};
	return walk(r, v, path, rules, ARRAY_SIZE(rules), NULL);
}

struct huge_target {
	char *size;
	uint64_t limit;
	bool has_limit;
};
static int huge_size(struct rd *r, jobj *v, const char *path, void *t)
{
	struct huge_target *h = t;
	if (get_str(r, v, path, &h->size) < 0)
		return -1;
	if (!cgroup_hugepage_size_ok(h->size)) {
		_cleanup_free_ char *s = shown(h->size);
		return hutch_fail(r->err, 0, "%s: '%s' is not a hugepage size such as 2MB or 1GB",
				  path, s);
	}
	return 0;
}
static int huge_limit(struct rd *r, jobj *v, const char *path, void *t)
{
	struct huge_target *h = t;
	h->has_limit = true;
	return get_u64(r, v, path, &h->limit);
}
static int res_hugepages(struct rd *r, jobj *v, const char *path, void *t)
{
	static const struct key_rule rules[] = {{"pageSize", huge_size, NULL},
						{"limit", huge_limit, NULL}};
	if (want_type(r, v, json_type_array, path) < 0)
		return -1;
	for (size_t i = 0; i < json_object_array_length(v); i++) {
		_cleanup_free_ char *sub = xasprintf("%s[%zu]", path, i);
		struct huge_target h = {0};
		int rc =
		    walk(r, json_object_array_get_idx(v, i), sub, rules, ARRAY_SIZE(rules), &h);
		_cleanup_free_ char *size = h.size;
		if (rc < 0)
			return -1;
		if (!size || !h.has_limit)
			return hutch_fail(r->err, 0, "%s: pageSize and limit are required", sub);
		/* the reservation limit too, where the kernel has one (5.7 and later) */
		_cleanup_free_ char *rsvd = xasprintf("hugetlb.%s.rsvd.max", size);
		_cleanup_free_ char *max = xasprintf("hugetlb.%s.max", size);
		add_write(r, sub, rsvd, xasprintf("%llu", (unsigned long long)h.limit), NULL, NULL,
			  true, false);
		add_write(r, sub, max, xasprintf("%llu", (unsigned long long)h.limit), NULL, NULL,
			  false, false);
	}
	return 0;
}

struct rdma_target {
	uint32_t handles, objects;
	bool has_handles, has_objects;
};
static int rdma_handles(struct rd *r, jobj *v, const char *path, void *t)
{
	struct rdma_target *d = t;
	d->has_handles = true;
	return get_u32(r, v, path, &d->handles);
}
static int rdma_objects(struct rd *r, jobj *v, const char *path, void *t)
{
	struct rdma_target *d = t;
	d->has_objects = true;
	return get_u32(r, v, path, &d->objects);
}
static int res_rdma(struct rd *r, jobj *v, const char *path, void *t)
{
	static const struct key_rule rules[] = {{"hcaHandles", rdma_handles, NULL},
						{"hcaObjects", rdma_objects, NULL}};
	if (want_type(r, v, json_type_object, path) < 0)
		return -1;
	json_object_object_foreach(v, dev, val)
	{
		_cleanup_free_ char *sub = xasprintf("%s.%s", path, dev);
		if (!*dev || strspn(dev, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
					 "0123456789_-.") != strlen(dev)) {
			_cleanup_free_ char *sd = shown(dev);
			return hutch_fail(r->err, 0, "%s: '%s' is not an RDMA device name", path,
					  sd);
		}
		struct rdma_target d = {0};
		if (walk(r, val, sub, rules, ARRAY_SIZE(rules), &d) < 0)
			return -1;
		if (!d.has_handles && !d.has_objects)
			continue;
		struct strbuf line = {0};
		strbuf_adds(&line, dev);
		if (d.has_handles)
			strbuf_addf(&line, " hca_handle=%u", d.handles);
		if (d.has_objects)
			strbuf_addf(&line, " hca_object=%u", d.objects);
		add_write(r, sub, "rdma.max", strbuf_steal(&line), NULL, NULL, false, false);
	}
	return 0;
}

static int res_network(struct rd *r, jobj *v, const char *path, void *t)
{
	if (want_type(r, v, json_type_object, path) < 0)
		return -1;
	warn(r, "%s: cgroup v1's net_cls and net_prio have no cgroup v2 counterpart: ignored",
	     path);
	return 0;
}

/* linux.resources.unified: files of the container's cgroup, set as given
 * (after everything else, which they override) */
static int res_unified(struct rd *r, jobj *v, const char *path, void *t)
{
	if (want_type(r, v, json_type_object, path) < 0)
		return -1;
	json_object_object_foreach(v, key, val)
	{
		_cleanup_free_ char *sk = shown(key);
		_cleanup_free_ char *sub = xasprintf("%s.%s", path, sk);
		const char *problem = cgroup_unified_key_problem(key);
		if (problem)
			return hutch_fail(r->err, 0, "%s: '%s': %s", path, sk, problem);
		char *value = NULL;
		if (get_str(r, val, sub, &value) < 0)
			return -1;
		if (!*value) { /* nothing to write, as crun */
			free(value);
			continue;
		}
		add_write(r, sub, key, value, NULL, NULL, false, true);
	}
	return 0;
}

static int l_resources(struct rd *r, jobj *v, const char *path, void *t)
{
	static const struct key_rule rules[] = {
	    {"devices", res_devices, NULL},  {"memory", res_memory, NULL},
	    {"cpu", res_cpu, NULL},	     {"pids", res_pids, NULL},
	    {"blockIO", res_block_io, NULL}, {"hugepageLimits", res_hugepages, NULL},
	    {"network", res_network, NULL},  {"rdma", res_rdma, NULL},
	    {"unified", res_unified, NULL},
	};
	if (walk(r, v, path, rules, ARRAY_SIZE(rules), t) < 0)
		return -1;
	/* unified's files last, whatever the order in the file: they override */
	struct hutch_resources *res = &r->cfg->spec->resources;
	for (size_t i = 0, end = res->n_writes; i < end; i++)
		if (res->writes[i].strict) {
			struct hutch_cgroup_write w = res->writes[i];
			memmove(&res->writes[i], &res->writes[i + 1],
				(res->n_writes - i - 1) * sizeof(w));
			res->writes[res->n_writes - 1] = w;
			i--;
			end--;
		}
	return 0;
}

static int l_cgroups_path(struct rd *r, jobj *v, const char *path, void *t)
{
	return get_str(r, v, path, &r->cfg->cgroups_path);
}

static int l_sysctl(struct rd *r, jobj *v, const char *path, void *t)
{
	struct hutch_oci_config *c = r->cfg;
	if (kv_object(r, v, path, &c->sysctl, &c->n_sysctl) < 0)
		return -1;
	for (size_t i = 0; i < c->n_sysctl; i++) {
		const char *k = c->sysctl[i].key;
		if (!*k || strstr(k, "..") || k[0] == '.' || k[0] == '/' ||
		    strspn(k,
			   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./") !=
			strlen(k)) {
			_cleanup_free_ char *sk = shown(k);
			return hutch_fail(r->err, 0, "%s: '%s' is not a sysctl name", path, sk);
		}
	}
	return 0;
}

static int l_paths(struct rd *r, jobj *v, const char *path, char ***out, size_t *n)
{
	if (get_strv(r, v, path, out, n) < 0)
		return -1;
	for (size_t i = 0; i < *n; i++) {
		_cleanup_free_ char *sub = xasprintf("%s[%zu]", path, i);
		if (check_abs(r, sub, (*out)[i]) < 0)
			return -1;
	}
	return 0;
}
static int l_masked(struct rd *r, jobj *v, const char *path, void *t)
{
	struct hutch_spec *s = r->cfg->spec;
	return l_paths(r, v, path, &s->masked_paths, &s->n_masked_paths);
}
static int l_readonly(struct rd *r, jobj *v, const char *path, void *t)
{
	struct hutch_spec *s = r->cfg->spec;
	return l_paths(r, v, path, &s->readonly_paths, &s->n_readonly_paths);
}

static int l_propagation(struct rd *r, jobj *v, const char *path, void *t)
{
	_cleanup_free_ char *p = NULL;
	if (get_str(r, v, path, &p) < 0)
		return -1;
	/* Every mount of the container's is made private (nothing propagates to
	 * or from the host but through binds that ask for it), so slave is
	 * private here. Shared (runc's too) is the container's root made shared
	 * once it is "/": a peer group of its own, for the container's own
	 * namespaces and binds (nested containers), never the host's. */
	static const struct {
		const char *name;
		unsigned long type;
		bool recursive;
	} kinds[] = {
	    {"private", 0, false},
	    {"rprivate", 0, false},
	    {"slave", 0, false},
	    {"rslave", 0, false},
	    {"shared", MS_SHARED, false},
	    {"rshared", MS_SHARED, true},
	    {"unbindable", MS_UNBINDABLE, false},
	    {"runbindable", MS_UNBINDABLE, true},
	};
	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
		if (!strcmp(p, kinds[i].name)) {
			r->cfg->root_propagation = kinds[i].type;
			r->cfg->root_propagation_recursive = kinds[i].recursive;
			return 0;
		}
	_cleanup_free_ char *s = shown(p);
	return hutch_fail(r->err, 0,
			  "%s '%s' is not a propagation (private, rprivate, slave, rslave, "
			  "shared, rshared, unbindable, runbindable)",
			  path, s);
}

/* ---- linux.seccomp -------------------------------------------------------------------- */

struct sc_target {
	struct hutch_oci_seccomp *sc;
	struct hutch_oci_syscall *call; /* the syscalls[] entry being read */
	struct hutch_oci_seccomp_arg *arg;
	char *action;
	bool has_errno;
	uint32_t errno_ret;
	bool has_index, has_value, has_op;
};

/* name (with errnoRet, if given) as its action's value. errnoRet goes with
 * the actions that return a value, as the spec says: ERRNO's errno (EPERM if
 * not given), TRACE's message to the tracer (EPERM too, as runc). */
static int action_from(struct rd *r, const char *path, const char *name, bool has_errno,
		       uint32_t errno_ret, uint32_t *out)
{
	bool takes_data;
	if (seccomp_oci_action(name, out, &takes_data) < 0) {
		_cleanup_free_ char *s = shown(name);
		return hutch_fail(r->err, 0, "%s: '%s' is not a seccomp action", path, s);
	}
	if (has_errno && !takes_data)
		return hutch_fail(r->err, 0,
				  "%s: %s returns no errno: errnoRet goes with SCMP_ACT_ERRNO and "
				  "SCMP_ACT_TRACE only",
				  path, name);
	if (has_errno && *out == SCMP_ACT_ERRNO(0) && errno_ret > 4095)
		return hutch_fail(r->err, 0, "%s: errnoRet %u is not an errno (at most 4095)", path,
				  errno_ret);
	if (takes_data)
		*out |= has_errno ? errno_ret & 0xffff : EPERM;
	return 0;
}

static int errno_value(struct rd *r, jobj *v, const char *path, uint32_t *out)
{
	int64_t x;
	if (get_i64(r, v, path, 0, 65535, &x) < 0)
		return -1;
	*out = (uint32_t)x;
	return 0;
}

static int sc_default(struct rd *r, jobj *v, const char *path, void *t)
{
	return get_str(r, v, path, &((struct sc_target *)t)->action);
}
static int sc_default_errno(struct rd *r, jobj *v, const char *path, void *t)
{
	struct sc_target *st = t;
	st->has_errno = true;
	return errno_value(r, v, path, &st->errno_ret);
}

static int sc_arches(struct rd *r, jobj *v, const char *path, void *t)
{
	struct hutch_oci_seccomp *sc = ((struct sc_target *)t)->sc;
	char **names = NULL;
	size_t n = 0;
	if (get_strv(r, v, path, &names, &n) < 0)
		return -1;
	sc->arches = xcalloc(n + 1, sizeof(uint32_t));
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		uint32_t arch = 0;
		int known = seccomp_oci_arch(names[i], &arch);
		_cleanup_free_ char *s = shown(names[i]);
		if (known > 0)
			sc->arches[sc->n_arches++] = arch;
		else if (known == 0)
			warn(r, "%s: architecture %s is unknown to libseccomp here: left out", path,
			     s);
		else
			rc = hutch_fail(r->err, 0, "%s: '%s' is not a seccomp architecture", path,
					s);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

/* The kernel's flags, given to seccomp(2) as the filter is loaded. */
static int sc_flags(struct rd *r, jobj *v, const char *path, void *t)
{
	struct hutch_oci_seccomp *sc = ((struct sc_target *)t)->sc;
	char **names = NULL;
	size_t n = 0;
	if (get_strv(r, v, path, &names, &n) < 0)
		return -1;
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		uint32_t flag;
		_cleanup_free_ char *s = shown(names[i]);
		if (seccomp_oci_flag(names[i], &flag) == 0)
			sc->flags |= flag;
		else
			rc =
			    hutch_fail(r->err, 0, "%s: '%s' is not a seccomp filter flag", path, s);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

static int sc_listener_path(struct rd *r, jobj *v, const char *path, void *t)
{
	struct hutch_oci_seccomp *sc = ((struct sc_target *)t)->sc;
	if (get_str(r, v, path, &sc->listener_path) < 0)
		return -1;
	if (!*sc->listener_path)
		return hutch_fail(r->err, 0, "%s is empty", path);
	return 0;
}
static int sc_listener_metadata(struct rd *r, jobj *v, const char *path, void *t)
{
	return get_str(r, v, path, &((struct sc_target *)t)->sc->listener_metadata);
}

static int arg_index(struct rd *r, jobj *v, const char *path, void *t)
{
	struct sc_target *st = t;
	int64_t x;
	st->has_index = true;
	if (get_i64(r, v, path, 0, 5, &x) < 0)
		return -1;
	st->arg->index = (unsigned)x;
	return 0;
}
static int arg_value(struct rd *r, jobj *v, const char *path, void *t)
{
	struct sc_target *st = t;
	st->has_value = true;
	return get_u64(r, v, path, &st->arg->value);
}
static int arg_value_two(struct rd *r, jobj *v, const char *path, void *t)
{
	return get_u64(r, v, path, &((struct sc_target *)t)->arg->value_two);
}
static int arg_op(struct rd *r, jobj *v, const char *path, void *t)
{
	struct sc_target *st = t;
	_cleanup_free_ char *name = NULL;
	if (get_str(r, v, path, &name) < 0)
		return -1;
	st->has_op = true;
	if (seccomp_oci_op(name, &st->arg->op) == 0)
		return 0;
	_cleanup_free_ char *s = shown(name);
	return hutch_fail(r->err, 0, "%s: '%s' is not a seccomp comparison", path, s);
}

static int call_names(struct rd *r, jobj *v, const char *path, void *t)
{
	struct hutch_oci_syscall *c = ((struct sc_target *)t)->call;
	return get_strv(r, v, path, &c->names, &c->n_names);
}
static int call_action(struct rd *r, jobj *v, const char *path, void *t)
{
	return get_str(r, v, path, &((struct sc_target *)t)->action);
}
static int call_errno(struct rd *r, jobj *v, const char *path, void *t)
{
	struct sc_target *st = t;
	st->has_errno = true;
	return errno_value(r, v, path, &st->errno_ret);
}
static int call_args(struct rd *r, jobj *v, const char *path, void *t)
{
	static const struct key_rule rules[] = {{"index", arg_index, NULL},
						{"value", arg_value, NULL},
						{"valueTwo", arg_value_two, NULL},
						{"op", arg_op, NULL}};
	struct sc_target *st = t;
	if (want_type(r, v, json_type_array, path) < 0)
		return -1;
	size_t n = json_object_array_length(v);
	if (n > 6)
		return hutch_fail(r->err, 0, "%s: %zu conditions, a syscall has 6 arguments", path,
				  n);
	st->call->args = xcalloc(n + 1, sizeof(struct hutch_oci_seccomp_arg));
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *sub = xasprintf("%s[%zu]", path, i);
		struct sc_target at = {.arg = &st->call->args[i]};
		if (walk(r, json_object_array_get_idx(v, i), sub, rules, ARRAY_SIZE(rules), &at) <
		    0)
			return -1;
		if (!at.has_index || !at.has_value || !at.has_op)
			return hutch_fail(r->err, 0, "%s: index, value and op are required", sub);
		st->call->n_args++;
	}
	return 0;
}

static void syscall_clear(struct hutch_oci_syscall *c)
{
	for (size_t i = 0; i < c->n_names; i++)
		free(c->names[i]);
	free(c->names);
	free(c->args);
}

static int sc_syscalls(struct rd *r, jobj *v, const char *path, void *t)
{
	static const struct key_rule rules[] = {
	    {"names", call_names, NULL},
	    {"action", call_action, NULL},
	    {"errnoRet", call_errno, NULL},
	    {"args", call_args, NULL},
	};
	struct hutch_oci_seccomp *sc = ((struct sc_target *)t)->sc;
	if (want_type(r, v, json_type_array, path) < 0)
		return -1;
	size_t n = json_object_array_length(v);
	sc->syscalls = xcalloc(n + 1, sizeof(*sc->syscalls));
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *sub = xasprintf("%s[%zu]", path, i);
		struct hutch_oci_syscall c = {0};
		struct sc_target ct = {.call = &c};
		jobj *e = json_object_array_get_idx(v, i);
		int rc = walk(r, e, sub, rules, ARRAY_SIZE(rules), &ct);
		_cleanup_free_ char *action = ct.action;
		if (rc == 0 && (!c.n_names || !action))
			rc = hutch_fail(r->err, 0, "%s: names and action are required", sub);
		if (rc == 0) {
			_cleanup_free_ char *apath = xasprintf("%s.action", sub);
			rc = action_from(r, apath, action, ct.has_errno, ct.errno_ret, &c.action);
		}
		if (rc < 0) {
			syscall_clear(&c);
			return -1;
		}
		sc->syscalls[sc->n_syscalls++] = c;
	}
	return 0;
}

/* SCMP_ACT_NOTIFY: the process hands its listener's fd to hutch, which gives
 * it to listenerPath, before the exec. Not as the default action (every
 * syscall, the handover's too, would wait for a listener that has no fd yet:
 * libseccomp refuses it as well), nor for sendmsg, which carries the fd. */
static int seccomp_check_notify(struct rd *r, const char *path, struct hutch_oci_seccomp *sc)
{
	if (sc->default_action == SCMP_ACT_NOTIFY)
		return hutch_fail(r->err, 0,
				  "%s.defaultAction: SCMP_ACT_NOTIFY cannot be the default "
				  "action (name the syscalls the listener answers)",
				  path);
	for (size_t i = 0; i < sc->n_syscalls; i++) {
		const struct hutch_oci_syscall *call = &sc->syscalls[i];
		if (call->action != SCMP_ACT_NOTIFY)
			continue;
		sc->notify = true;
		for (size_t k = 0; k < call->n_names; k++)
			if (!strcmp(call->names[k], "sendmsg"))
				return hutch_fail(
				    r->err, 0,
				    "%s.syscalls[%zu]: SCMP_ACT_NOTIFY cannot be used "
				    "for sendmsg (hutch sends the listener's fd with it)",
				    path, i);
	}
	if (sc->listener_metadata && !sc->listener_path)
		return hutch_fail(r->err, 0, "%s.listenerMetadata is given without listenerPath",
				  path);
	if (sc->notify && !sc->listener_path)
		return hutch_fail(r->err, 0,
				  "%s: SCMP_ACT_NOTIFY needs listenerPath (the unix socket of "
				  "the agent that answers the notifications)",
				  path);
	return 0;
}

static int l_seccomp(struct rd *r, jobj *v, const char *path, void *t)
{
	static const struct key_rule rules[] = {
	    {"defaultAction", sc_default, NULL},
	    {"defaultErrnoRet", sc_default_errno, NULL},
	    {"architectures", sc_arches, NULL},
	    {"flags", sc_flags, NULL},
	    {"syscalls", sc_syscalls, NULL},
	    {"listenerPath", sc_listener_path, NULL},
	    {"listenerMetadata", sc_listener_metadata, NULL},
	};
	struct hutch_oci_config *c = r->cfg;
	if (c->seccomp)
		return hutch_fail(r->err, 0, "%s is given twice", path);
	c->seccomp = xcalloc(1, sizeof(*c->seccomp));
	struct sc_target st = {.sc = c->seccomp};
	int rc = walk(r, v, path, rules, ARRAY_SIZE(rules), &st);
	_cleanup_free_ char *action = st.action;
	if (rc < 0)
		return -1;
	if (!action)
		return hutch_fail(r->err, 0, "%s.defaultAction is required", path);
	_cleanup_free_ char *apath = xasprintf("%s.defaultAction", path);
	struct hutch_oci_seccomp *sc = c->seccomp;
	if (action_from(r, apath, action, st.has_errno, st.errno_ret, &sc->default_action) < 0)
		return -1;
	return seccomp_check_notify(r, path, sc);
}

static int l_label(struct rd *r, jobj *v, const char *path, void *t)
{
	return p_label(r, v, path, t);
}

/* ---- linux.netDevices ------------------------------------------------------------- */

bool oci_ifname_valid(const char *name)
{
	/* the kernel's dev_valid_name(): 1 to 15 bytes (IFNAMSIZ less its NUL),
	 * not "." or "..", no '/', ':' or whitespace */
	size_t len = strlen(name);
	if (!len || len > 15 || !strcmp(name, ".") || !strcmp(name, ".."))
		return false;
	for (const char *c = name; *c; c++)
		if (*c == '/' || *c == ':' || isspace((unsigned char)*c))
			return false;
	return true;
}

static int nd_name(struct rd *r, jobj *v, const char *path, void *t)
{
	return get_str(r, v, path, &((struct hutch_oci_net_device *)t)->name);
}

static int bad_ifname(struct rd *r, const char *path, const char *name)
{
	_cleanup_free_ char *s = shown(name);
	return hutch_fail(r->err, 0,
			  "%s: '%s' is not a network interface name (1 to 15 characters, "
			  "not '.' or '..', without '/', ':' or whitespace)",
			  path, s);
}

/* {"HOST-NAME": {"name": "NAME IN THE CONTAINER"}}: moved into the
 * container's network namespace at create (oci.c) */
static int l_net_devices(struct rd *r, jobj *v, const char *path, void *t)
{
	static const struct key_rule rules[] = {{"name", nd_name, NULL}};
	if (want_type(r, v, json_type_object, path) < 0)
		return -1;
	struct hutch_oci_config *c = r->cfg;
	json_object_object_foreach(v, key, val)
	{
		if (json_object_is_type(val, json_type_null))
			continue; /* as if absent, as any other field */
		_cleanup_free_ char *shown_key = shown(key);
		_cleanup_free_ char *sub = xasprintf("%s.%s", path, shown_key);
		if (!oci_ifname_valid(key))
			return bad_ifname(r, sub, key);
		c->net_devices =
		    xrealloc(c->net_devices, (c->n_net_devices + 1) * sizeof(*c->net_devices));
		struct hutch_oci_net_device *d = &c->net_devices[c->n_net_devices++];
		*d = (struct hutch_oci_net_device){xstrdup(key), NULL};
		if (walk(r, val, sub, rules, ARRAY_SIZE(rules), d) < 0)
			return -1;
		if (!d->name)
			d->name = xstrdup(key);
		else if (!oci_ifname_valid(d->name)) {
			_cleanup_free_ char *np = xasprintf("%s.name", sub);
			return bad_ifname(r, np, d->name);
		}
		for (size_t i = 0; i + 1 < c->n_net_devices; i++)
			if (!strcmp(c->net_devices[i].name, d->name)) {
				_cleanup_free_ char *n = shown(d->name),
						    *other = shown(c->net_devices[i].host_name);
				return hutch_fail(r->err, 0,
						  "%s: the name '%s' in the container is %s.%s's "
						  "too: give each device a name of its own",
						  sub, n, path, other);
			}
	}
	return 0;
}

static int top_linux(struct rd *r, jobj *v, const char *path, void *t)
{
	static const struct key_rule rules[] = {
	    {"namespaces", l_namespaces, NULL},
	    {"uidMappings", l_uidmap, NULL},
	    {"gidMappings", l_gidmap, NULL},
	    {"devices", l_devices, NULL},
	    {"cgroupsPath", l_cgroups_path, NULL},
	    {"resources", l_resources, NULL},
	    {"sysctl", l_sysctl, NULL},
	    {"maskedPaths", l_masked, NULL},
	    {"readonlyPaths", l_readonly, NULL},
	    {"rootfsPropagation", l_propagation, NULL},
	    {"mountLabel", l_label, NULL},
	    {"seccomp", l_seccomp, NULL},
	    {"timeOffsets", l_time_offsets, NULL},
	    {"intelRdt", NULL, "no Intel RDT (resctrl)"},
	    {"personality", l_personality, NULL},
	    {"memoryPolicy", l_mempolicy, NULL},
	    {"netDevices", l_net_devices, NULL},
	};
	return walk(r, v, path, rules, ARRAY_SIZE(rules), t);
}

/* ---- the whole file -------------------------------------------------------------- */

struct parse_ctx {
	struct rd r;
	const char *bundle;
};

static const char *bundle_of(struct rd *r)
{
	return ((struct parse_ctx *)r)->bundle;
}

static jobj *parse_json(const char *text, size_t len, const char *what, struct hutch_err **err)
{
	if (len > INT_MAX) {
		hutch_fail(err, 0, "%s is too large", what);
		return NULL;
	}
	if (memchr(text, '\0', len)) {
		hutch_fail(err, 0, "%s has a NUL byte: not JSON", what);
		return NULL;
	}
	json_tokener *tok = json_tokener_new_ex(64);
	if (!tok)
		abort();
	jobj *o = json_tokener_parse_ex(tok, text, (int)len);
	enum json_tokener_error je = json_tokener_get_error(tok);
	size_t used = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!o || je != json_tokener_success) {
		json_object_put(o);
		hutch_fail(err, 0, "%s is not valid JSON: %s", what,
			   je == json_tokener_continue ? "it ends too early"
						       : json_tokener_error_desc(je));
		return NULL;
	}
	for (; used < len; used++)
		if (!strchr(" \t\r\n", text[used])) {
			json_object_put(o);
			hutch_fail(err, 0, "%s has something after its JSON value", what);
			return NULL;
		}
	return o;
}

void hutch_oci_config_free(struct hutch_oci_config *c)
{
	if (!c)
		return;
	hutch_spec_free(c->spec);
	free(c->oci_version);
	for (size_t i = 0; i < c->n_annotations; i++) {
		free(c->annotations[i].key);
		free(c->annotations[i].value);
	}
	free(c->annotations);
	for (size_t i = 0; i < c->n_sysctl; i++) {
		free(c->sysctl[i].key);
		free(c->sysctl[i].value);
	}
	free(c->sysctl);
	for (int k = 0; k < HUTCH_HOOK_KINDS; k++) {
		for (size_t i = 0; i < c->n_hooks[k]; i++)
			hook_clear(&c->hooks[k][i]);
		free(c->hooks[k]);
	}
	free(c->additional_gids);
	free(c->domainname);
	free(c->cgroups_path);
	for (size_t i = 0; i < c->n_net_devices; i++) {
		free(c->net_devices[i].host_name);
		free(c->net_devices[i].name);
	}
	free(c->net_devices);
	if (c->seccomp) {
		for (size_t i = 0; i < c->seccomp->n_syscalls; i++)
			syscall_clear(&c->seccomp->syscalls[i]);
		free(c->seccomp->syscalls);
		free(c->seccomp->arches);
		free(c->seccomp->listener_path);
		free(c->seccomp->listener_metadata);
		free(c->seccomp);
	}
	for (size_t i = 0; i < c->n_warnings; i++)
		free(c->warnings[i]);
	free(c->warnings);
	free(c);
}

int hutch_oci_config_parse(const char *text, size_t len, const char *bundle_dir,
			   struct hutch_oci_config **out, struct hutch_err **err)
{
	static const struct key_rule rules[] = {
	    {"ociVersion", top_version, NULL},
	    {"process", top_process, NULL},
	    {"root", top_root, NULL},
	    {"hostname", top_hostname, NULL},
	    {"domainname", top_domainname, NULL},
	    {"mounts", top_mounts, NULL},
	    {"hooks", top_hooks, NULL},
	    {"annotations", top_annotations, NULL},
	    {"linux", top_linux, NULL},
	    {"solaris", NULL, "it is for Solaris"},
	    {"windows", NULL, "it is for Windows"},
	    {"vm", NULL, "hutch runs containers, not virtual machines"},
	    {"zos", NULL, "it is for z/OS"},
	};
	*out = NULL;
	jobj *o = parse_json(text, len, "the file", err);
	if (!o)
		return -1;
	struct hutch_oci_config *c = xcalloc(1, sizeof(*c));
	c->umask = -1;
	c->spec = xcalloc(1, sizeof(struct hutch_spec));
	c->spec->oci = true;
	c->spec->seccomp = HUTCH_SECCOMP_UNCONFINED;
	struct parse_ctx pc = {.r = {.cfg = c, .err = err}, .bundle = bundle_dir};
	int rc = walk(&pc.r, o, "", rules, ARRAY_SIZE(rules), NULL);
	json_object_put(o);
	if (rc == 0 && !c->oci_version)
		rc = hutch_fail(err, 0, "ociVersion is required");
	if (rc == 0 && !c->spec->root.path)
		rc = hutch_fail(err, 0, "root.path is required");
	if (rc == 0 && !c->spec->process.args)
		rc = hutch_fail(err, 0, "process is required");
	const struct hutch_namespace *time = hutch_spec_namespace(c->spec, HUTCH_NS_TIME);
	if (rc == 0 && c->has_time_offsets && (!time || time->path))
		rc = hutch_fail(err, 0,
				"linux.timeOffsets: they are for a new time namespace: list "
				"{\"type\": \"time\"} without a path in linux.namespaces");
	if (rc < 0) {
		hutch_oci_config_free(c);
		return -1;
	}
	*out = c;
	return 0;
}

int hutch_oci_resources_parse(const char *text, size_t len, struct hutch_resources *out,
			      char ***warnings, size_t *n_warnings, struct hutch_err **err)
{
	jobj *o = parse_json(text, len, "the resources file", err);
	if (!o)
		return -1;
	struct hutch_oci_config *c = xcalloc(1, sizeof(*c));
	c->spec = xcalloc(1, sizeof(struct hutch_spec));
	c->spec->resources.memory_max = c->spec->resources.pids_max = -1;
	c->spec->resources.cpu_quota_us = -1;
	struct parse_ctx pc = {.r = {.cfg = c, .err = err}, .bundle = "/"};
	int rc = 0;
	struct json_object *dev;
	if (json_object_is_type(o, json_type_object) &&
	    json_object_object_get_ex(o, "devices", &dev))
		rc = hutch_fail(err, 0,
				"devices: the device rules of a container are not updated "
				"(they are fixed at create)");
	if (rc == 0)
		rc = l_resources(&pc.r, o, "linux.resources", NULL); /* named as in config.json */
	json_object_put(o);
	if (rc == 0) {
		struct hutch_resources *res = &c->spec->resources;
		*out = (struct hutch_resources){.memory_max = res->memory_max,
						.memory_swap_max = res->memory_swap_max,
						.cpu_quota_us = res->cpu_quota_us,
						.cpu_period_us = res->cpu_period_us,
						.pids_max = res->pids_max,
						.writes = res->writes,
						.n_writes = res->n_writes,
						.check_before_update = res->check_before_update};
		res->writes = NULL;
		res->n_writes = 0;
		if (warnings) {
			*warnings = c->warnings;
			*n_warnings = c->n_warnings;
			c->warnings = NULL;
			c->n_warnings = 0;
		}
	}
	hutch_oci_config_free(c);
	return rc;
}

void hutch_process_clear(struct hutch_process *p)
{
	for (size_t i = 0; i < p->n_args; i++)
		free(p->args[i]);
	free(p->args);
	for (size_t i = 0; i < p->n_env; i++)
		free(p->env[i]);
	free(p->env);
	free(p->cwd);
	free(p->user);
	free(p->rlimits);
	*p = (struct hutch_process){0};
}

int hutch_oci_exec_process_parse(const char *text, size_t len, struct hutch_process *proc,
				 struct hutch_oci_proc_attrs *attrs, struct hutch_err **err)
{
	*proc = (struct hutch_process){0};
	*attrs = (struct hutch_oci_proc_attrs){0};
	jobj *o = parse_json(text, len, "the process file", err);
	if (!o)
		return -1;
	struct parse_ctx pc = {.r = {.cfg = NULL, .err = err}, .bundle = "/"};
	int rc = read_process(&pc.r, o, "process", proc, NULL, attrs);
	json_object_put(o);
	if (rc < 0)
		hutch_process_clear(proc);
	return rc;
}

int hutch_oci_process_parse(const char *text, size_t len, struct hutch_process *proc,
			    struct hutch_err **err)
{
	struct hutch_oci_proc_attrs attrs;
	return hutch_oci_exec_process_parse(text, len, proc, &attrs, err);
}

/* The container id as the runtime keeps it: OCI ids are any text the engine
 * chooses, hutch's are 64 hex digits (its cgroup's name). */
void oci_spec_set_id(struct hutch_spec *spec, const char *oci_id)
{
	uint8_t d[SHA256_DIGEST_LEN];
	struct sha256_ctx ctx;
	sha256_init(&ctx);
	sha256_update(&ctx, oci_id, strlen(oci_id));
	sha256_final(&ctx, d);
	char hex[SHA256_HEX_LEN + 1];
	sha256_hex(d, hex);
	free(spec->id);
	spec->id = xstrdup(hex);
}

char *hutch_oci_default_config(bool rootless, uid_t uid, gid_t gid)
{
	_cleanup_free_ char *userns = NULL;
	if (rootless)
		userns = xasprintf(
		    ",\n\t\t\t{\"type\": \"user\"}\n\t\t],\n"
		    "\t\t\"uidMappings\": [{\"containerID\": 0, \"hostID\": %u, \"size\": 1}],\n"
		    "\t\t\"gidMappings\": [{\"containerID\": 0, \"hostID\": %u, \"size\": 1}]",
		    (unsigned)uid, (unsigned)gid);
	return xasprintf(
	    "{\n"
	    "\t\"ociVersion\": \"1.0.2\",\n"
	    "\t\"process\": {\n"
	    "\t\t\"terminal\": true,\n"
	    "\t\t\"user\": {\"uid\": 0, \"gid\": 0},\n"
	    "\t\t\"args\": [\"sh\"],\n"
	    "\t\t\"env\": [\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\", "
	    "\"TERM=xterm\"],\n"
	    "\t\t\"cwd\": \"/\",\n"
	    "\t\t\"capabilities\": {\n"
	    "\t\t\t\"bounding\": [\"CAP_AUDIT_WRITE\", \"CAP_KILL\", \"CAP_NET_BIND_SERVICE\"],\n"
	    "\t\t\t\"effective\": [\"CAP_AUDIT_WRITE\", \"CAP_KILL\", \"CAP_NET_BIND_SERVICE\"],\n"
	    "\t\t\t\"permitted\": [\"CAP_AUDIT_WRITE\", \"CAP_KILL\", \"CAP_NET_BIND_SERVICE\"]\n"
	    "\t\t},\n"
	    "\t\t\"rlimits\": [{\"type\": \"RLIMIT_NOFILE\", \"hard\": 1024, \"soft\": 1024}],\n"
	    "\t\t\"noNewPrivileges\": true\n"
	    "\t},\n"
	    "\t\"root\": {\"path\": \"rootfs\", \"readonly\": true},\n"
	    "\t\"hostname\": \"hutch\",\n"
	    "\t\"mounts\": [\n"
	    "\t\t{\"destination\": \"/proc\", \"type\": \"proc\", \"source\": \"proc\"},\n"
	    "\t\t{\"destination\": \"/dev\", \"type\": \"tmpfs\", \"source\": \"tmpfs\", "
	    "\"options\": [\"nosuid\", \"strictatime\", \"mode=755\", \"size=65536k\"]},\n"
	    "\t\t{\"destination\": \"/dev/pts\", \"type\": \"devpts\", \"source\": \"devpts\", "
	    "\"options\": [\"nosuid\", \"noexec\", \"newinstance\", \"ptmxmode=0666\", "
	    "\"mode=0620\"%s]},\n"
	    "\t\t{\"destination\": \"/dev/shm\", \"type\": \"tmpfs\", \"source\": \"shm\", "
	    "\"options\": [\"nosuid\", \"noexec\", \"nodev\", \"mode=1777\", "
	    "\"size=65536k\"]},\n"
	    "\t\t{\"destination\": \"/dev/mqueue\", \"type\": \"mqueue\", \"source\": \"mqueue\", "
	    "\"options\": [\"nosuid\", \"noexec\", \"nodev\"]},\n"
	    "\t\t{\"destination\": \"/sys\", \"type\": \"%s\", \"source\": \"%s\", "
	    "\"options\": [\"nosuid\", \"noexec\", \"nodev\", \"ro\"%s]},\n"
	    "\t\t{\"destination\": \"/sys/fs/cgroup\", \"type\": \"cgroup\", \"source\": "
	    "\"cgroup\", \"options\": [\"nosuid\", \"noexec\", \"nodev\", \"relatime\", "
	    "\"ro\"]}\n"
	    "\t],\n"
	    "\t\"linux\": {\n"
	    "\t\t\"resources\": {\"devices\": [{\"allow\": false, \"access\": \"rwm\"}]},\n"
	    "\t\t\"namespaces\": [\n"
	    "\t\t\t{\"type\": \"pid\"},\n"
	    "\t\t\t{\"type\": \"network\"},\n"
	    "\t\t\t{\"type\": \"ipc\"},\n"
	    "\t\t\t{\"type\": \"uts\"},\n"
	    "\t\t\t{\"type\": \"mount\"},\n"
	    "\t\t\t{\"type\": \"cgroup\"}%s,\n"
	    "\t\t\"maskedPaths\": [\"/proc/acpi\", \"/proc/asound\", \"/proc/kcore\", "
	    "\"/proc/keys\", \"/proc/latency_stats\", \"/proc/timer_list\", "
	    "\"/proc/timer_stats\", \"/proc/sched_debug\", \"/sys/firmware\", "
	    "\"/proc/scsi\"],\n"
	    "\t\t\"readonlyPaths\": [\"/proc/bus\", \"/proc/fs\", \"/proc/irq\", \"/proc/sys\", "
	    "\"/proc/sysrq-trigger\"]\n"
	    "\t}\n"
	    "}\n",
	    rootless ? "" : ", \"gid=5\"", rootless ? "none" : "sysfs", rootless ? "/sys" : "sysfs",
	    rootless ? ", \"rbind\", \"nosuid\"" : "", rootless ? userns : "\n\t\t]");
}
