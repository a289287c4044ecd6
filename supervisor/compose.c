/* Compose files into the stack model (docs/compose.md).
 *
 * Nothing about services is implemented here: each compose key becomes the
 * key and value an INI stack file would give (docs/stack-file.md), with the
 * place it came from, and stack_build runs the INI reader's own checks on
 * them into the same model. What is compose's alone is here: finding the
 * files, YAML (compose_yaml.c), merging override files, profiles, the shapes
 * a key can take (a list or a mapping, short or long syntax), and the keys
 * hutch cannot honour, refused by name.
 *
 * Messages: the INI reader says "FILE:LINE: KEY: ...". Its FILE here is a
 * marker and its LINE the index of a place (struct place: file, line,
 * column, the key's path in the compose file), so each message is given the
 * compose file's place and path instead, and errors sort in the order of the
 * file. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "net/net.h"
#include "runtime/runtime.h"
#include "supervisor/compose.h"
#include "supervisor/stack.h"

/* The INI reader's messages for compose places start with this "file". */
#define MARK "\x1f"

struct place {
	const char *file;
	int line, col;
	char *path;	    /* services.db.healthcheck.interval */
	const char *as_key; /* the INI key the reader's message names */
};

struct keylist {
	struct stack_key *keys;
	size_t n;
};

struct compose {
	struct yarena arena;
	struct stack_diag diag;
	struct stack_env env;
	char **env_vars; /* .env or --env-file, as "K=V" */
	size_t n_env_vars;
	struct place *places;
	size_t n_places;
	char **texts; /* values handed to stack_build */
	size_t n_texts;
	const struct hutch_stack_load_opts *opts;
	char **profiles;
	size_t n_profiles;
	struct hutch_stack *stack;
	const struct ynode *root;
	const struct ynode *top_volumes;
	const struct ynode *top_networks;
	const char *first_file; /* as messages show it */
};

/* ---- places and messages -------------------------------------------------- */

static int place_of(struct compose *c, const struct ynode *n, const char *as_key, const char *fmt,
		    ...) __attribute__((format(printf, 4, 5)));

/* A new place for node n with the path fmt: its index, the "line" given to the
 * INI reader (from 1, as lines are). */
static int place_of(struct compose *c, const struct ynode *n, const char *as_key, const char *fmt,
		    ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *path = NULL;
	if (vasprintf(&path, fmt, ap) < 0)
		abort();
	va_end(ap);
	c->places = xrealloc(c->places, (c->n_places + 1) * sizeof(*c->places));
	c->places[c->n_places] = (struct place){n->file, n->line, n->col, path, as_key};
	return (int)++c->n_places;
}

static void cerr(struct compose *c, int place, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void cerr(struct compose *c, int place, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = NULL;
	if (vasprintf(&msg, fmt, ap) < 0)
		abort();
	va_end(ap);
	const struct place *p = &c->places[place - 1];
	if (p->line == 0)
		stack_diag_add(&c->diag, place, "%s: %s", p->path, msg);
	else
		stack_diag_add(&c->diag, place, "%s:%d:%d: %s: %s", p->file, p->line, p->col,
			       p->path, msg);
	free(msg);
}

/* An error at node n under path (the node's own place). */
static void nerr(struct compose *c, const struct ynode *n, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void nerr(struct compose *c, const struct ynode *n, const char *path, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = NULL;
	if (vasprintf(&msg, fmt, ap) < 0)
		abort();
	va_end(ap);
	int p = place_of(c, n, NULL, "%s", path);
	cerr(c, p, "%s", msg);
	free(msg);
}

/* The INI reader's "MARK:N: KEY: text" as "FILE:LINE:COL: PATH: text"; and
 * every message of a place sorted by where it is (the file given first, its
 * line and column), not by when it was found (top-level keys are read first). */
static void rewrite_messages(struct compose *c, const char *const *files, size_t n_files)
{
	for (size_t i = 0; i < c->diag.n; i++) {
		int sort = c->diag.items[i].sort_line;
		if (sort >= 1 && (size_t)sort <= c->n_places) {
			const struct place *p = &c->places[sort - 1];
			size_t f = 0;
			while (f + 1 < n_files && (!p->file || strcmp(files[f], p->file)))
				f++;
			c->diag.items[i].sort_line = (int)((f < 31 ? f : 31) << 26) |
						     (p->line < (1 << 18) ? p->line : (1 << 18) - 1)
							 << 8 |
						     (p->col < 255 ? p->col : 255);
		}
		char *t = c->diag.items[i].text;
		if (strncmp(t, MARK ":", 2))
			continue;
		char *end = NULL;
		long id = strtol(t + 2, &end, 10);
		if (id < 1 || (size_t)id > c->n_places || strncmp(end, ": ", 2))
			continue;
		const struct place *p = &c->places[id - 1];
		const char *rest = end + 2;
		size_t kl = p->as_key ? strlen(p->as_key) : 0;
		if (kl && !strncmp(rest, p->as_key, kl) && !strncmp(rest + kl, ": ", 2))
			rest += kl + 2;
		else if (!strncmp(rest, "[service.", 9) && strstr(rest, "]: "))
			rest = strstr(rest, "]: ") + 3;
		c->diag.items[i].text = p->line == 0 ? xasprintf("%s: %s", p->path, rest)
						     : xasprintf("%s:%d:%d: %s: %s", p->file,
								 p->line, p->col, p->path, rest);
		free(t);
	}
}

/* ---- values ---------------------------------------------------------------- */

static const char *kind_name(enum ynode_kind k)
{
	return k == Y_MAP ? "a mapping" : k == Y_SEQ ? "a list" : k == Y_NULL ? "null" : "text";
}

/* A scalar's text interpolated, or NULL after an error at its place. */
static char *scalar(struct compose *c, const struct ynode *n, const char *path)
{
	if (n->kind != Y_SCALAR) {
		nerr(c, n, path, "expected a value (text or a number), not %s", kind_name(n->kind));
		return NULL;
	}
	char *out = NULL, *why = NULL, **unset = NULL;
	size_t n_unset = 0;
	if (stack_interpolate(&c->env, n->text, &out, &why, &unset, &n_unset) < 0) {
		nerr(c, n, path, "%s", why);
		free(why);
		strv_free(unset, n_unset);
		return NULL;
	}
	for (size_t i = 0; i < n_unset; i++)
		stack_diag_warn(&c->diag,
				"%s:%d:%d: %s: variable %s is not set: read as an "
				"empty string",
				n->file, n->line, n->col, path, unset[i]);
	strv_free(unset, n_unset);
	return out;
}

/* A word as the INI reader's shell words read it back: in single quotes,
 * each ' as '\'' (any text, newlines and all). */
static void add_word(char **line, const char *w)
{
	size_t len = *line ? strlen(*line) : 0;
	size_t need = len + 4 + 4 * strlen(w) + 1;
	*line = xrealloc(*line, need);
	char *o = *line + len;
	if (len)
		*o++ = ' ';
	*o++ = '\'';
	for (const char *p = w; *p; p++) {
		if (*p == '\'') {
			memcpy(o, "'\\''", 4);
			o += 4;
		} else {
			*o++ = *p;
		}
	}
	*o++ = '\'';
	*o = '\0';
}

static const char *keep(struct compose *c, char *text)
{
	c->texts = xrealloc(c->texts, (c->n_texts + 1) * sizeof(*c->texts));
	c->texts[c->n_texts++] = text;
	return text;
}

static void emit(struct compose *c, struct keylist *kl, const char *key, char *value, int place)
{
	c->places[place - 1].as_key = key;
	kl->keys = xrealloc(kl->keys, (kl->n + 1) * sizeof(*kl->keys));
	kl->keys[kl->n++] = (struct stack_key){key, keep(c, value), place};
}

/* A list of scalars (or one scalar, where the key takes one) as words. */
static char *words_of(struct compose *c, const struct ynode *n, const char *path, bool one_ok)
{
	char *line = xstrdup("");
	if (n->kind == Y_SCALAR && one_ok) {
		char *v = scalar(c, n, path);
		if (!v) {
			free(line);
			return NULL;
		}
		add_word(&line, v);
		free(v);
		return line;
	}
	if (n->kind != Y_SEQ) {
		nerr(c, n, path, "expected a list%s, not %s", one_ok ? " or a value" : "",
		     kind_name(n->kind));
		free(line);
		return NULL;
	}
	bool ok = true;
	for (size_t i = 0; i < n->n; i++) {
		_cleanup_free_ char *p = xasprintf("%s[%zu]", path, i);
		char *v = scalar(c, n->kids[i], p);
		if (!v) {
			ok = false;
			continue;
		}
		add_word(&line, v);
		free(v);
	}
	if (!ok) {
		free(line);
		return NULL;
	}
	return line;
}

/* ---- the keys --------------------------------------------------------------- */

/* Keys of the compose spec hutch does not honour, and why. */
static const struct {
	const char *key, *why;
} refused[] = {
    {"secrets", "hutch has no secrets: mount the file with volumes: (read_only)"},
    {"configs", "hutch has no configs: mount the file with volumes: (read_only)"},
    {"devices", "devices are not passed to containers by hutch yet"},
    {"extends", "extends is not read: copy the service's keys, or use an anchor (<<: *base)"},
    {"links", "links are legacy: services reach each other by name on the stack's network"},
    {"external_links", "external containers are not reachable by name"},
    {"volumes_from", "share a named volume instead"},
    {"logging", "hutch keeps each container's log itself (hutch stack logs)"},
    {"ipc", "the IPC namespace is always the container's own"},
    {"pid", "the PID namespace is always the container's own"},
    {"uts", "the UTS namespace is always the container's own"},
    {"userns_mode", "hutch sets up user namespaces itself"},
    {"cgroup", "hutch makes each container's cgroup itself"},
    {"cgroup_parent", "hutch makes each container's cgroup itself"},
    {"platform", "hutch runs images of the machine's own platform"},
    {"pull_policy", "hutch uses the image that is there (hutch pull fetches one)"},
    {"runtime", "hutch is the runtime"},
    {"isolation", "not a Linux option"},
    {"tty", "services run without a terminal"},
    {"stdin_open", "services run without input"},
    {"sysctls", "hutch run has no --sysctl"},
    {"shm_size", "hutch run has no --shm-size: mount a tmpfs on /dev/shm with tmpfs:"},
    {"group_add", "hutch run has no --group-add"},
    {"mac_address", "containers get their addresses from the stack's network"},
    {"domainname", "hutch run has no --domainname"},
    {"oom_kill_disable", "not supported"},
    {"oom_score_adj", "not supported"},
    {"mem_reservation", "only limits are supported (mem_limit)"},
    {"mem_swappiness", "not supported"},
    {"cpu_shares", "only cpus is supported"},
    {"cpu_quota", "only cpus is supported"},
    {"cpu_period", "only cpus is supported"},
    {"cpu_count", "only cpus is supported"},
    {"cpu_percent", "only cpus is supported"},
    {"cpuset", "only cpus is supported"},
    {"cpu_rt_runtime", "only cpus is supported"},
    {"cpu_rt_period", "only cpus is supported"},
    {"blkio_config", "not supported"},
    {"device_cgroup_rules", "not supported"},
    {"storage_opt", "not supported"},
    {"gpus", "not supported"},
    {"credential_spec", "not a Linux option"},
    {"annotations", "not supported"},
    {"attach", "hutch stack logs shows every service"},
    {"develop", "compose watch is not supported"},
    {"post_start", "lifecycle hooks are not supported"},
    {"pre_stop", "lifecycle hooks are not supported"},
    {"label_file", "give labels: in the file"},
    {"use_api_socket", "hutch has no Docker API socket"},
    {"provider", "not supported"},
    {"models", "not supported"},
    {"volumes_driver", "not supported"},
};

static const char *const service_keys[] = {
    "image",
    "build",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "volumes",
    "tmpfs",
    "ports",
    "expose",
    "depends_on",
    "healthcheck",
    "restart",
    "deploy",
    "mem_limit",
    "memswap_limit",
    "cpus",
    "pids_limit",
    "stop_signal",
    "stop_grace_period",
    "networks",
    "network_mode",
    "hostname",
    "user",
    "working_dir",
    "read_only",
    "cap_add",
    "cap_drop",
    "privileged",
    "init",
    "extra_hosts",
    "dns",
    "dns_search",
    "dns_opt",
    "ulimits",
    "labels",
    "container_name",
    "profiles",
    "security_opt",
    "scale",
};

static bool is_service_key(const char *k)
{
	for (size_t i = 0; i < ARRAY_SIZE(service_keys); i++)
		if (!strcmp(k, service_keys[i]))
			return true;
	return false;
}

static const char *refusal(const char *k)
{
	for (size_t i = 0; i < ARRAY_SIZE(refused); i++)
		if (!strcmp(k, refused[i].key))
			return refused[i].why;
	return NULL;
}

/* A key hutch cannot honour: an error, or with ignore_unsupported a warning. */
static void unsupported(struct compose *c, const struct ynode *at, const char *path,
			const char *why)
{
	if (c->opts && c->opts->ignore_unsupported) {
		stack_diag_warn(&c->diag, "%s:%d:%d: %s: not supported, ignored: %s", at->file,
				at->line, at->col, path, why);
		return;
	}
	nerr(c, at, path, "not supported: %s (or give --ignore-unsupported to go on without it)",
	     why);
}

static void unknown_key(struct compose *c, const struct ynode *k, const char *path,
			const char *where)
{
	_cleanup_free_ char *shown = printable(k->text, strlen(k->text));
	nerr(c, k, path, "unknown key '%s' in %s (docs/compose.md lists what hutch reads)", shown,
	     where);
}

/* Text keys: the value as it is. */
static void text_key(struct compose *c, struct keylist *kl, const struct ynode *v, const char *path,
		     const char *as_key)
{
	char *t = scalar(c, v, path);
	if (t)
		emit(c, kl, as_key, t, place_of(c, v, as_key, "%s", path));
}

static void list_key(struct compose *c, struct keylist *kl, const struct ynode *v, const char *path,
		     const char *as_key, bool one_ok)
{
	char *w = words_of(c, v, path, one_ok);
	if (w)
		emit(c, kl, as_key, w, place_of(c, v, as_key, "%s", path));
}

/* command and entrypoint: a string is shell words (the INI reader splits it),
 * a list is the words as they are. */
static void cmd_key(struct compose *c, struct keylist *kl, const struct ynode *v, const char *path,
		    const char *as_key)
{
	if (v->kind == Y_SCALAR)
		text_key(c, kl, v, path, as_key);
	else
		list_key(c, kl, v, path, as_key, false);
}

/* environment, labels: a list of NAME=VALUE (NAME alone: from the environment)
 * or a mapping (null: from the environment; a label's: empty). Variables are
 * one key each, at its own place (the INI reader takes env several times);
 * labels one list. */
static void vars_key(struct compose *c, struct keylist *kl, const struct ynode *v, const char *path,
		     const char *as_key)
{
	bool labels = !strcmp(as_key, "labels");
	char *all = NULL;
	bool ok = true;
	if (v->kind != Y_SEQ && v->kind != Y_MAP) {
		nerr(c, v, path, "expected a list of NAME=VALUE or a mapping, not %s",
		     kind_name(v->kind));
		return;
	}
	size_t step = v->kind == Y_MAP ? 2 : 1;
	for (size_t i = 0; i + step - 1 < v->n; i += step) {
		const struct ynode *at = v->kids[i + step - 1];
		_cleanup_free_ char *p = step == 1 ? xasprintf("%s[%zu]", path, i)
						   : xasprintf("%s.%s", path, v->kids[i]->text);
		char *w = NULL;
		if (step == 1) {
			w = scalar(c, at, p);
		} else if (at->kind == Y_NULL) {
			w = labels ? xasprintf("%s=", v->kids[i]->text) : xstrdup(v->kids[i]->text);
		} else {
			_cleanup_free_ char *t = scalar(c, at, p);
			w = t ? xasprintf("%s=%s", v->kids[i]->text, t) : NULL;
		}
		if (!w) {
			ok = false;
			continue;
		}
		if (labels) {
			add_word(&all, w);
		} else {
			char *line = NULL;
			add_word(&line, w);
			emit(c, kl, as_key, line, place_of(c, at, as_key, "%s", p));
		}
		free(w);
	}
	if (labels && ok && all)
		emit(c, kl, as_key, all, place_of(c, v, as_key, "%s", path));
	else
		free(all);
}

static bool bool_of(struct compose *c, const struct ynode *v, const char *path, bool *out)
{
	_cleanup_free_ char *t = scalar(c, v, path);
	if (!t)
		return false;
	if (!strcmp(t, "true") || !strcmp(t, "True") || !strcmp(t, "TRUE")) {
		*out = true;
		return true;
	}
	if (!strcmp(t, "false") || !strcmp(t, "False") || !strcmp(t, "FALSE")) {
		*out = false;
		return true;
	}
	_cleanup_free_ char *shown = printable(t, strlen(t));
	nerr(c, v, path, "'%s' is not a boolean: use true or false", shown);
	return false;
}

static void env_file_key(struct compose *c, struct keylist *kl, const struct ynode *v,
			 const char *path)
{
	const struct ynode *one[1] = {v};
	const struct ynode *const *items =
	    v->kind == Y_SEQ ? (const struct ynode *const *)v->kids : one;
	size_t n = v->kind == Y_SEQ ? v->n : 1;
	for (size_t i = 0; i < n; i++) {
		const struct ynode *it = items[i];
		_cleanup_free_ char *p =
		    v->kind == Y_SEQ ? xasprintf("%s[%zu]", path, i) : xstrdup(path);
		const struct ynode *pv = it;
		bool required = true;
		if (it->kind == Y_MAP) {
			pv = ymap_get(it, "path");
			for (size_t j = 0; j + 1 < it->n; j += 2) {
				const char *k = it->kids[j]->text;
				_cleanup_free_ char *kp = xasprintf("%s.%s", p, k);
				if (!strcmp(k, "required"))
					bool_of(c, it->kids[j + 1], kp, &required);
				else if (!strcmp(k, "format")) {
					_cleanup_free_ char *f = scalar(c, it->kids[j + 1], kp);
					if (f && strcmp(f, "raw") == 0)
						unsupported(c, it->kids[j + 1], kp,
							    "raw env files: hutch reads them as "
							    "compose's default format");
				} else if (strcmp(k, "path"))
					unknown_key(c, it->kids[j], kp, "an env_file");
			}
			if (!pv) {
				nerr(c, it, p, "no path: give path: FILE");
				continue;
			}
			free(p);
			p = xasprintf("%s[%zu].path", path, i);
		}
		char *t = scalar(c, pv, p);
		if (!t)
			continue;
		if (!required) {
			_cleanup_free_ char *full =
			    t[0] == '/' ? xstrdup(t) : xasprintf("%s/%s", c->stack->dir, t);
			if (access(full, F_OK) < 0 && errno == ENOENT) {
				free(t);
				continue;
			}
		}
		char *line = NULL;
		add_word(&line, t);
		free(t);
		emit(c, kl, "env_file", line, place_of(c, pv, "env_file", "%s", p));
	}
}

static bool top_declares(const struct ynode *top, const char *name)
{
	return ymap_get(top, name) != NULL;
}

/* A bind source as the INI reader's volumes word wants it: ~ expanded. */
static char *bind_source(struct compose *c, const char *src)
{
	if (src[0] == '~' && (src[1] == '/' || !src[1])) {
		const char *home = stack_env_get(&c->env, "HOME");
		return xasprintf("%s%s", home ? home : "", src + 1);
	}
	return xstrdup(src);
}

static bool is_path(const char *s)
{
	return s[0] == '/' || s[0] == '.' || s[0] == '~';
}

static void volumes_key(struct compose *c, struct keylist *kl, const struct ynode *v,
			const char *path, char **tmpfs_words)
{
	if (v->kind != Y_SEQ) {
		nerr(c, v, path, "expected a list, not %s", kind_name(v->kind));
		return;
	}
	char *line = xstrdup("");
	bool ok = true;
	for (size_t i = 0; i < v->n; i++) {
		const struct ynode *it = v->kids[i];
		_cleanup_free_ char *p = xasprintf("%s[%zu]", path, i);
		if (it->kind == Y_SCALAR) {
			_cleanup_free_ char *t = scalar(c, it, p);
			if (!t) {
				ok = false;
				continue;
			}
			char *colon = strchr(t, ':');
			if (colon) {
				_cleanup_free_ char *src = xasprintf("%.*s", (int)(colon - t), t);
				if (!is_path(src) && !top_declares(c->top_volumes, src)) {
					_cleanup_free_ char *shown = printable(src, strlen(src));
					nerr(c, it, p,
					     "named volume '%s' is not declared: add it under the "
					     "top-level volumes:",
					     shown);
					ok = false;
					continue;
				}
				_cleanup_free_ char *b = bind_source(c, src);
				_cleanup_free_ char *w = xasprintf("%s%s", b, colon);
				add_word(&line, w);
			} else {
				add_word(&line, t);
			}
			continue;
		}
		if (it->kind != Y_MAP) {
			nerr(c, it, p, "expected SOURCE:TARGET[:MODE] or a mapping, not %s",
			     kind_name(it->kind));
			ok = false;
			continue;
		}
		_cleanup_free_ char *type = NULL, *src = NULL, *target = NULL, *size = NULL,
				    *mode = NULL;
		bool ro = false;
		for (size_t j = 0; j + 1 < it->n; j += 2) {
			const char *k = it->kids[j]->text;
			const struct ynode *val = it->kids[j + 1];
			_cleanup_free_ char *kp = xasprintf("%s.%s", p, k);
			if (!strcmp(k, "type"))
				type = scalar(c, val, kp);
			else if (!strcmp(k, "source"))
				src = scalar(c, val, kp);
			else if (!strcmp(k, "target"))
				target = scalar(c, val, kp);
			else if (!strcmp(k, "read_only"))
				bool_of(c, val, kp, &ro);
			else if (!strcmp(k, "consistency"))
				; /* macOS only: meaningless on Linux, as compose says */
			else if (!strcmp(k, "tmpfs") && val->kind == Y_MAP) {
				for (size_t t = 0; t + 1 < val->n; t += 2) {
					const char *tk = val->kids[t]->text;
					_cleanup_free_ char *tp = xasprintf("%s.%s", kp, tk);
					if (!strcmp(tk, "size"))
						size = scalar(c, val->kids[t + 1], tp);
					else if (!strcmp(tk, "mode"))
						mode = scalar(c, val->kids[t + 1], tp);
					else
						unknown_key(c, val->kids[t], tp, "tmpfs");
				}
			} else if (!strcmp(k, "bind") && val->kind == Y_MAP) {
				for (size_t t = 0; t + 1 < val->n; t += 2) {
					const char *tk = val->kids[t]->text;
					_cleanup_free_ char *tp = xasprintf("%s.%s", kp, tk);
					bool yes = true;
					if (!strcmp(tk, "create_host_path"))
						bool_of(c, val->kids[t + 1], tp, &yes);
					else
						unsupported(c, val->kids[t], tp,
							    "bind options other than "
							    "create_host_path");
				}
			} else if (!strcmp(k, "volume") || !strcmp(k, "bind") ||
				   !strcmp(k, "image") || !strcmp(k, "subpath"))
				unsupported(c, it->kids[j], kp, "volume options");
			else
				unknown_key(c, it->kids[j], kp, "a volume");
		}
		if (!type || !target) {
			nerr(c, it, p, "a volume in the long syntax needs type: and target:");
			ok = false;
			continue;
		}
		if (!strcmp(type, "tmpfs")) {
			_cleanup_free_ char *w = xasprintf(
			    "%s%s%s%s%s%s", target, size || mode ? ":" : "", size ? "size=" : "",
			    size ? size : "", size && mode ? "," : "", mode ? "mode=" : "");
			char *full = mode ? xasprintf("%s%s", w, mode) : xstrdup(w);
			add_word(tmpfs_words, full);
			free(full);
			continue;
		}
		if (strcmp(type, "bind") && strcmp(type, "volume")) {
			_cleanup_free_ char *shown = printable(type, strlen(type));
			nerr(c, it, p, "type '%s': hutch mounts bind, volume and tmpfs", shown);
			ok = false;
			continue;
		}
		if (!strcmp(type, "volume") && src && !top_declares(c->top_volumes, src)) {
			_cleanup_free_ char *shown = printable(src, strlen(src));
			nerr(c, it, p,
			     "named volume '%s' is not declared: add it under the top-level "
			     "volumes:",
			     shown);
			ok = false;
			continue;
		}
		if (!strcmp(type, "bind") && !src) {
			nerr(c, it, p, "a bind mount needs source:");
			ok = false;
			continue;
		}
		_cleanup_free_ char *b = src ? bind_source(c, src) : NULL;
		_cleanup_free_ char *w =
		    b ? xasprintf("%s:%s%s", b, target, ro ? ":ro" : "") : xstrdup(target);
		add_word(&line, w);
	}
	if (ok && *line)
		emit(c, kl, "volumes", line, place_of(c, v, "volumes", "%s", path));
	else
		free(line);
}

static void ports_key(struct compose *c, struct keylist *kl, const struct ynode *v,
		      const char *path)
{
	if (v->kind != Y_SEQ) {
		nerr(c, v, path, "expected a list, not %s", kind_name(v->kind));
		return;
	}
	char *line = xstrdup("");
	bool ok = true;
	for (size_t i = 0; i < v->n; i++) {
		const struct ynode *it = v->kids[i];
		_cleanup_free_ char *p = xasprintf("%s[%zu]", path, i);
		if (it->kind != Y_MAP) {
			char *t = scalar(c, it, p);
			if (t)
				add_word(&line, t);
			ok &= t != NULL;
			free(t);
			continue;
		}
		_cleanup_free_ char *target = NULL, *published = NULL, *ip = NULL, *proto = NULL;
		for (size_t j = 0; j + 1 < it->n; j += 2) {
			const char *k = it->kids[j]->text;
			const struct ynode *val = it->kids[j + 1];
			_cleanup_free_ char *kp = xasprintf("%s.%s", p, k);
			if (!strcmp(k, "target"))
				target = scalar(c, val, kp);
			else if (!strcmp(k, "published"))
				published = scalar(c, val, kp);
			else if (!strcmp(k, "host_ip"))
				ip = scalar(c, val, kp);
			else if (!strcmp(k, "protocol"))
				proto = scalar(c, val, kp);
			else if (!strcmp(k, "mode")) {
				_cleanup_free_ char *m = scalar(c, val, kp);
				if (m && strcmp(m, "host") && strcmp(m, "ingress"))
					nerr(c, val, kp, "mode is host or ingress");
			} else if (!strcmp(k, "name") || !strcmp(k, "app_protocol"))
				free(scalar(c, val, kp)); /* names for people, checked as text */
			else
				unknown_key(c, it->kids[j], kp, "a port");
		}
		if (!target) {
			nerr(c, it, p, "a port in the long syntax needs target:");
			ok = false;
			continue;
		}
		bool v6 = ip && strchr(ip, ':');
		_cleanup_free_ char *w = xasprintf(
		    "%s%s%s%s%s%s%s%s%s", ip ? (v6 ? "[" : "") : "", ip ? ip : "",
		    ip ? (v6 ? "]:" : ":") : "", published ? published : "",
		    published || ip ? ":" : "", target, proto ? "/" : "", proto ? proto : "", "");
		add_word(&line, w);
	}
	if (ok && *line)
		emit(c, kl, "ports", line, place_of(c, v, "ports", "%s", path));
	else
		free(line);
}

static void health_key(struct compose *c, struct keylist *kl, const struct ynode *v,
		       const char *path, int svc_place)
{
	if (v->kind != Y_MAP) {
		nerr(c, v, path, "expected a mapping, not %s", kind_name(v->kind));
		return;
	}
	const struct ynode *dis = ymap_get(v, "disable");
	bool disabled = false;
	if (dis) {
		_cleanup_free_ char *p = xasprintf("%s.disable", path);
		bool_of(c, dis, p, &disabled);
	}
	const struct ynode *test = ymap_get(v, "test");
	if (test && test->kind == Y_SEQ && test->n >= 1 && test->kids[0]->kind == Y_SCALAR &&
	    !strcmp(test->kids[0]->text, "NONE"))
		disabled = true;
	static const struct {
		const char *key, *as;
	} timing[] = {
	    {"interval", "health_interval"},
	    {"timeout", "health_timeout"},
	    {"retries", "health_retries"},
	    {"start_period", "health_start_period"},
	    {"start_interval", "health_start_interval"},
	};
	for (size_t i = 0; i + 1 < v->n; i += 2) {
		const char *k = v->kids[i]->text;
		bool known = !strcmp(k, "test") || !strcmp(k, "disable");
		for (size_t t = 0; t < ARRAY_SIZE(timing); t++)
			known |= !strcmp(k, timing[t].key);
		if (!known) {
			_cleanup_free_ char *p = xasprintf("%s.%s", path, k);
			unknown_key(c, v->kids[i], p, "a healthcheck");
		}
	}
	if (disabled)
		return;
	if (!test) {
		nerr(c, v, path,
		     "no test: hutch does not run an image's own HEALTHCHECK; give test: "
		     "[\"CMD\", ...] or [\"CMD-SHELL\", \"...\"]");
		return;
	}
	_cleanup_free_ char *tp = xasprintf("%s.test", path);
	char *line = NULL;
	if (test->kind == Y_SCALAR) {
		char *t = scalar(c, test, tp);
		if (!t)
			return;
		add_word(&line, "/bin/sh");
		add_word(&line, "-c");
		add_word(&line, t);
		free(t);
	} else if (test->kind == Y_SEQ && test->n >= 1 && test->kids[0]->kind == Y_SCALAR &&
		   (!strcmp(test->kids[0]->text, "CMD") ||
		    !strcmp(test->kids[0]->text, "CMD-SHELL"))) {
		bool shell = !strcmp(test->kids[0]->text, "CMD-SHELL");
		if (shell && test->n != 2) {
			nerr(c, test, tp,
			     "CMD-SHELL takes one command line: [\"CMD-SHELL\", "
			     "\"...\"]");
			return;
		}
		if (shell) {
			add_word(&line, "/bin/sh");
			add_word(&line, "-c");
		}
		for (size_t i = 1; i < test->n; i++) {
			_cleanup_free_ char *p = xasprintf("%s[%zu]", tp, i);
			char *t = scalar(c, test->kids[i], p);
			if (!t) {
				free(line);
				return;
			}
			add_word(&line, t);
			free(t);
		}
		if (!line)
			line = xstrdup("");
	} else {
		nerr(c, test, tp,
		     "a test is a command line, or a list starting with CMD, CMD-SHELL or NONE");
		return;
	}
	emit(c, kl, "health_cmd", line, place_of(c, test, "health_cmd", "%s", tp));
	for (size_t t = 0; t < ARRAY_SIZE(timing); t++) {
		const struct ynode *tv = ymap_get(v, timing[t].key);
		if (!tv)
			continue;
		_cleanup_free_ char *p = xasprintf("%s.%s", path, timing[t].key);
		text_key(c, kl, tv, p, timing[t].as);
	}
	(void)svc_place;
}

static bool profile_on(struct compose *c, const struct ynode *profiles);

/* depends_on: a list of names, or a mapping of names to their condition
 * (NAME:CONDITION, with ":restart" for restart: true, as a hutch.ini writes it). */
static void depends_key(struct compose *c, struct keylist *kl, const struct ynode *v,
			const char *path)
{
	if (v->kind == Y_SEQ) {
		for (size_t i = 0; i < v->n; i++) {
			_cleanup_free_ char *p = xasprintf("%s[%zu]", path, i);
			char *t = scalar(c, v->kids[i], p);
			if (!t)
				continue;
			const struct ynode *target = ymap_get(ymap_get(c->root, "services"), t);
			if (target && !profile_on(c, ymap_get(target, "profiles"))) {
				nerr(c, v->kids[i], p,
				     "'%s' is in profiles that are not enabled: give --profile for "
				     "one of them",
				     t);
				free(t);
				continue;
			}
			char *line = NULL;
			add_word(&line, t);
			free(t);
			emit(c, kl, "depends_on", line,
			     place_of(c, v->kids[i], "depends_on", "%s", p));
		}
		return;
	}
	if (v->kind != Y_MAP) {
		nerr(c, v, path, "expected a list of services or a mapping, not %s",
		     kind_name(v->kind));
		return;
	}
	for (size_t i = 0; i + 1 < v->n; i += 2) {
		const char *name = v->kids[i]->text;
		const struct ynode *d = v->kids[i + 1];
		_cleanup_free_ char *p = xasprintf("%s.%s", path, name);
		const char *cond = "started";
		bool required = true, restart = false, ok = true;
		if (d->kind == Y_MAP) {
			for (size_t j = 0; j + 1 < d->n; j += 2) {
				const char *k = d->kids[j]->text;
				_cleanup_free_ char *kp = xasprintf("%s.%s", p, k);
				if (!strcmp(k, "condition")) {
					_cleanup_free_ char *t = scalar(c, d->kids[j + 1], kp);
					if (!t)
						ok = false;
					else if (!strcmp(t, "service_started"))
						cond = "started";
					else if (!strcmp(t, "service_healthy"))
						cond = "healthy";
					else if (!strcmp(t, "service_completed_successfully"))
						cond = "completed";
					else {
						_cleanup_free_ char *shown =
						    printable(t, strlen(t));
						nerr(
						    c, d->kids[j + 1], kp,
						    "'%s' is not a condition: use service_started, "
						    "service_healthy or "
						    "service_completed_successfully",
						    shown);
						ok = false;
					}
				} else if (!strcmp(k, "required"))
					ok &= bool_of(c, d->kids[j + 1], kp, &required);
				else if (!strcmp(k, "restart"))
					ok &= bool_of(c, d->kids[j + 1], kp, &restart);
				else
					unknown_key(c, d->kids[j], kp, "a dependency");
			}
		} else if (d->kind != Y_NULL) {
			nerr(c, d, p, "expected a mapping (condition:, required:, restart:)");
			ok = false;
		}
		if (!ok)
			continue;
		const struct ynode *target = ymap_get(ymap_get(c->root, "services"), name);
		if (!required && (!target || !profile_on(c, ymap_get(target, "profiles"))))
			continue; /* an optional dependency that is not there */
		if (target && !profile_on(c, ymap_get(target, "profiles"))) {
			nerr(c, v->kids[i], p,
			     "'%s' is in profiles that are not enabled: give --profile for one of "
			     "them",
			     name);
			continue;
		}
		char *line = NULL;
		_cleanup_free_ char *w =
		    xasprintf("%s:%s%s", name, cond, restart ? ":restart" : "");
		add_word(&line, w);
		emit(c, kl, "depends_on", line, place_of(c, v->kids[i], "depends_on", "%s", p));
	}
}

static void networks_key(struct compose *c, struct keylist *kl, const struct ynode *v,
			 const char *path)
{
	char *line = xstrdup("");
	bool ok = true;
	const struct ynode *const *names = NULL;
	size_t n = 0, step = 1;
	if (v->kind == Y_SEQ) {
		names = (const struct ynode *const *)v->kids;
		n = v->n;
	} else if (v->kind == Y_MAP) {
		names = (const struct ynode *const *)v->kids;
		n = v->n;
		step = 2;
	} else {
		nerr(c, v, path, "expected a list of networks or a mapping, not %s",
		     kind_name(v->kind));
		free(line);
		return;
	}
	for (size_t i = 0; i < n; i += step) {
		_cleanup_free_ char *p = step == 1 ? xasprintf("%s[%zu]", path, i)
						   : xasprintf("%s.%s", path, names[i]->text);
		_cleanup_free_ char *name =
		    step == 1 ? scalar(c, names[i], p) : xstrdup(names[i]->text);
		if (!name) {
			ok = false;
			continue;
		}
		if (strcmp(name, "default") && !top_declares(c->top_networks, name)) {
			_cleanup_free_ char *shown = printable(name, strlen(name));
			nerr(c, names[i], p,
			     "network '%s' is not declared: add it under the top-level networks:",
			     shown);
			ok = false;
			continue;
		}
		char *w = xstrdup(name);
		const struct ynode *cfg = step == 2 ? names[i + 1] : NULL;
		if (cfg && cfg->kind == Y_MAP) {
			for (size_t j = 0; j + 1 < cfg->n; j += 2) {
				const char *k = cfg->kids[j]->text;
				_cleanup_free_ char *kp = xasprintf("%s.%s", p, k);
				if (!strcmp(k, "aliases")) {
					const struct ynode *al = cfg->kids[j + 1];
					if (al->kind != Y_SEQ) {
						nerr(c, al, kp, "expected a list of names");
						ok = false;
						continue;
					}
					for (size_t a = 0; a < al->n; a++) {
						_cleanup_free_ char *ap =
						    xasprintf("%s[%zu]", kp, a);
						_cleanup_free_ char *t = scalar(c, al->kids[a], ap);
						if (!t) {
							ok = false;
							continue;
						}
						char *nw = xasprintf("%s%s%s", w,
								     strchr(w, ':') ? "," : ":", t);
						free(w);
						w = nw;
					}
				} else if (!strcmp(k, "ipv4_address") ||
					   !strcmp(k, "ipv6_address") ||
					   !strcmp(k, "link_local_ips") ||
					   !strcmp(k, "mac_address") || !strcmp(k, "priority") ||
					   !strcmp(k, "gw_priority") || !strcmp(k, "driver_opts")) {
					unsupported(c, cfg->kids[j], kp,
						    "addresses come from the stack's network");
				} else
					unknown_key(c, cfg->kids[j], kp, "a service's network");
			}
		} else if (cfg && cfg->kind != Y_NULL) {
			nerr(c, cfg, p, "expected a mapping (aliases:) or nothing");
			ok = false;
		}
		add_word(&line, w);
		free(w);
	}
	if (ok && *line)
		emit(c, kl, "networks", line, place_of(c, v, "networks", "%s", path));
	else
		free(line);
}

/* deploy: replicas, resources.limits, restart_policy. */
static void deploy_key(struct compose *c, struct keylist *kl, const struct ynode *v,
		       const char *path, bool *have_restart, const struct ynode *mem_limit)
{
	if (v->kind != Y_MAP) {
		nerr(c, v, path, "expected a mapping, not %s", kind_name(v->kind));
		return;
	}
	for (size_t i = 0; i + 1 < v->n; i += 2) {
		const char *k = v->kids[i]->text;
		const struct ynode *val = v->kids[i + 1];
		_cleanup_free_ char *p = xasprintf("%s.%s", path, k);
		if (!strcmp(k, "replicas")) {
			text_key(c, kl, val, p, "replicas");
		} else if (!strcmp(k, "mode")) {
			_cleanup_free_ char *m = scalar(c, val, p);
			if (m && strcmp(m, "replicated"))
				unsupported(c, val, p,
					    "a stack runs on one machine: mode is "
					    "replicated");
		} else if (!strcmp(k, "resources") && val->kind == Y_MAP) {
			for (size_t j = 0; j + 1 < val->n; j += 2) {
				const char *rk = val->kids[j]->text;
				const struct ynode *rv = val->kids[j + 1];
				_cleanup_free_ char *rp = xasprintf("%s.%s", p, rk);
				if (!strcmp(rk, "reservations")) {
					unsupported(c, val->kids[j], rp,
						    "only limits are supported");
					continue;
				}
				if (strcmp(rk, "limits") || rv->kind != Y_MAP) {
					unknown_key(c, val->kids[j], rp, "resources");
					continue;
				}
				for (size_t l = 0; l + 1 < rv->n; l += 2) {
					const char *lk = rv->kids[l]->text;
					_cleanup_free_ char *lp = xasprintf("%s.%s", rp, lk);
					if (!strcmp(lk, "memory")) {
						if (mem_limit)
							nerr(
							    c, rv->kids[l], lp,
							    "mem_limit (line %d) says it too: keep "
							    "one",
							    mem_limit->line);
						else
							text_key(c, kl, rv->kids[l + 1], lp,
								 "memory");
					} else if (!strcmp(lk, "cpus"))
						text_key(c, kl, rv->kids[l + 1], lp, "cpus");
					else if (!strcmp(lk, "pids"))
						text_key(c, kl, rv->kids[l + 1], lp, "pids");
					else if (!strcmp(lk, "devices"))
						unsupported(c, rv->kids[l], lp,
							    "devices are not passed to containers");
					else
						unknown_key(c, rv->kids[l], lp, "limits");
				}
			}
		} else if (!strcmp(k, "restart_policy") && val->kind == Y_MAP) {
			_cleanup_free_ char *cond = NULL, *max = NULL;
			for (size_t j = 0; j + 1 < val->n; j += 2) {
				const char *rk = val->kids[j]->text;
				_cleanup_free_ char *rp = xasprintf("%s.%s", p, rk);
				if (!strcmp(rk, "condition"))
					cond = scalar(c, val->kids[j + 1], rp);
				else if (!strcmp(rk, "max_attempts"))
					max = scalar(c, val->kids[j + 1], rp);
				else if (!strcmp(rk, "delay") || !strcmp(rk, "window"))
					unsupported(c, val->kids[j], rp,
						    "restarts back off as Docker's do (100 ms "
						    "doubling to 1 min)");
				else
					unknown_key(c, val->kids[j], rp, "restart_policy");
			}
			const char *policy = !cond || !strcmp(cond, "any") ? "always"
					     : !strcmp(cond, "on-failure") ? "on-failure"
					     : !strcmp(cond, "none")	   ? "no"
									   : NULL;
			if (!policy) {
				_cleanup_free_ char *shown = printable(cond, strlen(cond));
				nerr(c, val, p, "condition '%s': use none, on-failure or any",
				     shown);
				continue;
			}
			if (*have_restart) {
				nerr(c, val, p, "restart: says it too: keep one");
				continue;
			}
			*have_restart = true;
			char *t = max && strcmp(policy, "on-failure") == 0
				      ? xasprintf("on-failure:%s", max)
				      : xstrdup(policy);
			emit(c, kl, "restart", t, place_of(c, val, "restart", "%s", p));
		} else if (!strcmp(k, "labels") || !strcmp(k, "placement") ||
			   !strcmp(k, "update_config") || !strcmp(k, "rollback_config") ||
			   !strcmp(k, "endpoint_mode")) {
			unsupported(c, v->kids[i], p,
				    "a swarm setting: a stack runs on one machine");
		} else {
			unknown_key(c, v->kids[i], p, "deploy");
		}
	}
}

static void ulimits_key(struct compose *c, struct keylist *kl, const struct ynode *v,
			const char *path)
{
	if (v->kind != Y_MAP) {
		nerr(c, v, path, "expected a mapping of limits, not %s", kind_name(v->kind));
		return;
	}
	char *line = xstrdup("");
	bool ok = true;
	for (size_t i = 0; i + 1 < v->n; i += 2) {
		const char *name = v->kids[i]->text;
		const struct ynode *val = v->kids[i + 1];
		_cleanup_free_ char *p = xasprintf("%s.%s", path, name);
		_cleanup_free_ char *soft = NULL, *hard = NULL;
		if (val->kind == Y_MAP) {
			const struct ynode *s = ymap_get(val, "soft"), *h = ymap_get(val, "hard");
			_cleanup_free_ char *sp = xasprintf("%s.soft", p),
					    *hp = xasprintf("%s.hard", p);
			if (!s || !h || val->n != 4) {
				nerr(c, val, p, "expected soft: and hard: (or one number)");
				ok = false;
				continue;
			}
			soft = scalar(c, s, sp);
			hard = scalar(c, h, hp);
			if (!soft || !hard) {
				ok = false;
				continue;
			}
		} else {
			soft = scalar(c, val, p);
			if (!soft) {
				ok = false;
				continue;
			}
		}
		_cleanup_free_ char *w =
		    hard ? xasprintf("%s=%s:%s", name, soft, hard) : xasprintf("%s=%s", name, soft);
		add_word(&line, w);
	}
	if (ok && *line)
		emit(c, kl, "ulimits", line, place_of(c, v, "ulimits", "%s", path));
	else
		free(line);
}

static void extra_hosts_key(struct compose *c, struct keylist *kl, const struct ynode *v,
			    const char *path)
{
	char *line = xstrdup("");
	bool ok = true;
	if (v->kind == Y_MAP) {
		for (size_t i = 0; i + 1 < v->n; i += 2) {
			_cleanup_free_ char *p = xasprintf("%s.%s", path, v->kids[i]->text);
			_cleanup_free_ char *ip = scalar(c, v->kids[i + 1], p);
			if (!ip) {
				ok = false;
				continue;
			}
			_cleanup_free_ char *w = xasprintf("%s:%s", v->kids[i]->text, ip);
			add_word(&line, w);
		}
	} else if (v->kind == Y_SEQ) {
		for (size_t i = 0; i < v->n; i++) {
			_cleanup_free_ char *p = xasprintf("%s[%zu]", path, i);
			_cleanup_free_ char *t = scalar(c, v->kids[i], p);
			if (!t) {
				ok = false;
				continue;
			}
			/* HOST=IP is compose's newer spelling of HOST:IP */
			char *eq = strchr(t, '=');
			if (eq)
				*eq = ':';
			add_word(&line, t);
		}
	} else {
		nerr(c, v, path, "expected a list of HOST:IP or a mapping, not %s",
		     kind_name(v->kind));
		ok = false;
	}
	if (ok && *line)
		emit(c, kl, "add_host", line, place_of(c, v, "add_host", "%s", path));
	else
		free(line);
}

static bool profile_on(struct compose *c, const struct ynode *profiles)
{
	if (!profiles || profiles->kind != Y_SEQ)
		return true;
	for (size_t i = 0; i < profiles->n; i++)
		for (size_t j = 0; j < c->n_profiles; j++)
			if (profiles->kids[i]->kind == Y_SCALAR &&
			    (!strcmp(c->profiles[j], "*") ||
			     !strcmp(c->profiles[j], profiles->kids[i]->text)))
				return true;
	return false;
}

struct svc_out {
	struct stack_service_in in;
	struct keylist kl;
};

/* build: a context (string), or a mapping of context, dockerfile, args (a list
 * or a mapping), target: the INI keys build, dockerfile, build_args, target. */
static void build_key(struct compose *c, struct keylist *kl, const struct ynode *v,
		      const char *path)
{
	if (v->kind == Y_SCALAR) {
		text_key(c, kl, v, path, "build");
		return;
	}
	if (v->kind != Y_MAP) {
		nerr(c, v, path, "expected a build context or a mapping, not %s",
		     kind_name(v->kind));
		return;
	}
	const struct ynode *ctx = ymap_get(v, "context");
	if (ctx && ctx->kind != Y_NULL)
		text_key(c, kl, ctx, path, "build");
	else /* compose's default context: the file's directory */
		emit(c, kl, "build", xstrdup("."), place_of(c, v, "build", "%s", path));
	for (size_t i = 0; i + 1 < v->n; i += 2) {
		const char *k = v->kids[i]->text;
		const struct ynode *val = v->kids[i + 1];
		_cleanup_free_ char *p = xasprintf("%s.%s", path, k);
		if (!strcmp(k, "context") || val->kind == Y_NULL || !strncmp(k, "x-", 2))
			continue;
		if (!strcmp(k, "dockerfile") || !strcmp(k, "target")) {
			text_key(c, kl, val, p, k);
		} else if (!strcmp(k, "args")) {
			struct keylist one = {0};
			vars_key(c, &one, val, p, "build_args");
			char *all = NULL;
			for (size_t a = 0; a < one.n; a++) {
				char *more = all ? xasprintf("%s %s", all, one.keys[a].value)
						 : xstrdup(one.keys[a].value);
				free(all);
				all = more;
			}
			if (all)
				emit(c, kl, "build_args", all,
				     place_of(c, val, "build_args", "%s", p));
			free(one.keys);
		} else {
			unsupported(c, v->kids[i], p,
				    "hutch builds from context, dockerfile, args and target only");
		}
	}
}

static void read_service(struct compose *c, const struct ynode *key, const struct ynode *s,
			 struct svc_out *out)
{
	const char *name = key->text;
	_cleanup_free_ char *base = xasprintf("services.%s", name);
	out->in.name = name;
	out->in.line = place_of(c, key, NULL, "%s", base);
	struct keylist *kl = &out->kl;
	if (s->kind != Y_MAP) {
		nerr(c, s, base, "expected a mapping of the service's keys, not %s",
		     kind_name(s->kind));
		return;
	}
	bool have_restart = ymap_get(s, "restart") != NULL;
	char *tmpfs_words = xstrdup("");
	const struct ynode *tmpfs_node = NULL;
	for (size_t i = 0; i + 1 < s->n; i += 2) {
		const struct ynode *kn = s->kids[i], *v = s->kids[i + 1];
		const char *k = kn->text;
		_cleanup_free_ char *p = xasprintf("%s.%s", base, k);
		if (!strncmp(k, "x-", 2))
			continue;
		if (!is_service_key(k)) {
			const char *why = refusal(k);
			if (why)
				unsupported(c, kn, p, why);
			else if (stack_nearest(k, service_keys, ARRAY_SIZE(service_keys)))
				nerr(c, kn, p, "unknown key (did you mean '%s'?)",
				     stack_nearest(k, service_keys, ARRAY_SIZE(service_keys)));
			else
				unknown_key(c, kn, p, "a service");
			continue;
		}
		if (v->kind == Y_NULL)
			continue; /* "key:" with nothing is unset, as compose reads it */
		if (!strcmp(k, "image") || !strcmp(k, "user") || !strcmp(k, "hostname") ||
		    !strcmp(k, "stop_signal") || !strcmp(k, "stop_grace_period") ||
		    !strcmp(k, "container_name") || !strcmp(k, "cpus") || !strcmp(k, "restart") ||
		    !strcmp(k, "network_mode")) {
			size_t before = kl->n;
			text_key(c, kl, v, p,
				 !strcmp(k, "network_mode") ? "network"
				 : !strcmp(k, "restart")    ? "restart"
							    : k);
			/* an image whose value failed (its error is said): a
			 * stand-in, so that it is not also said to have none */
			if (!strcmp(k, "image") && kl->n == before)
				emit(c, kl, "image", xstrdup("failed"),
				     place_of(c, v, "image", "%s", p));
		} else if (!strcmp(k, "build"))
			build_key(c, kl, v, p);
		else if (!strcmp(k, "working_dir"))
			text_key(c, kl, v, p, "workdir");
		else if (!strcmp(k, "mem_limit"))
			text_key(c, kl, v, p, "memory");
		else if (!strcmp(k, "memswap_limit"))
			text_key(c, kl, v, p, "memory_swap");
		else if (!strcmp(k, "pids_limit"))
			text_key(c, kl, v, p, "pids");
		else if (!strcmp(k, "scale"))
			text_key(c, kl, v, p, "replicas");
		else if (!strcmp(k, "read_only") || !strcmp(k, "privileged") ||
			 !strcmp(k, "init")) {
			bool b = false;
			if (bool_of(c, v, p, &b))
				emit(c, kl, k, xstrdup(b ? "true" : "false"),
				     place_of(c, v, k, "%s", p));
		} else if (!strcmp(k, "command") || !strcmp(k, "entrypoint"))
			cmd_key(c, kl, v, p, k);
		else if (!strcmp(k, "environment"))
			vars_key(c, kl, v, p, "env");
		else if (!strcmp(k, "labels"))
			vars_key(c, kl, v, p, "labels");
		else if (!strcmp(k, "env_file"))
			env_file_key(c, kl, v, p);
		else if (!strcmp(k, "volumes"))
			volumes_key(c, kl, v, p, &tmpfs_words);
		else if (!strcmp(k, "tmpfs")) {
			_cleanup_free_ char *w = words_of(c, v, p, true);
			if (w && *w) {
				size_t len = strlen(tmpfs_words);
				tmpfs_words = xrealloc(tmpfs_words, len + strlen(w) + 2);
				sprintf(tmpfs_words + len, "%s%s", len ? " " : "", w);
			}
			tmpfs_node = kn;
		} else if (!strcmp(k, "ports"))
			ports_key(c, kl, v, p);
		else if (!strcmp(k, "expose"))
			list_key(c, kl, v, p, "expose", false);
		else if (!strcmp(k, "cap_add") || !strcmp(k, "cap_drop") ||
			 !strcmp(k, "security_opt"))
			list_key(c, kl, v, p, k, false);
		else if (!strcmp(k, "dns") || !strcmp(k, "dns_search"))
			list_key(c, kl, v, p, k, true);
		else if (!strcmp(k, "dns_opt"))
			list_key(c, kl, v, p, "dns_option", false);
		else if (!strcmp(k, "extra_hosts"))
			extra_hosts_key(c, kl, v, p);
		else if (!strcmp(k, "ulimits"))
			ulimits_key(c, kl, v, p);
		else if (!strcmp(k, "depends_on"))
			depends_key(c, kl, v, p);
		else if (!strcmp(k, "healthcheck"))
			health_key(c, kl, v, p, out->in.line);
		else if (!strcmp(k, "deploy"))
			deploy_key(c, kl, v, p, &have_restart, ymap_get(s, "mem_limit"));
		else if (!strcmp(k, "networks"))
			networks_key(c, kl, v, p);
		else if (!strcmp(k, "profiles")) {
			_cleanup_free_ char *w = words_of(c, v, p, false);
			(void)w; /* checked: read when the services are chosen */
		}
	}
	if (*tmpfs_words) {
		const struct ynode *at = tmpfs_node ? tmpfs_node : ymap_get(s, "volumes");
		_cleanup_free_ char *p = xasprintf("%s.%s", base, tmpfs_node ? "tmpfs" : "volumes");
		emit(c, kl, "tmpfs", tmpfs_words, place_of(c, at, "tmpfs", "%s", p));
	} else {
		free(tmpfs_words);
	}
	const struct ynode *nm = ymap_get(s, "network_mode");
	if (nm && nm->kind == Y_SCALAR && !strncmp(nm->text, "service:", 8) &&
	    !ymap_get(ymap_get(c->root, "services"), nm->text + 8)) {
		_cleanup_free_ char *shown = printable(nm->text + 8, strlen(nm->text + 8));
		_cleanup_free_ char *p = xasprintf("%s.network_mode", base);
		nerr(c, nm, p, "no service '%s' in this file", shown);
	}
	if (nm && ymap_get(s, "networks")) {
		_cleanup_free_ char *p = xasprintf("%s.network_mode", base);
		nerr(c, nm, p, "network_mode and networks: give one of them");
	}
	out->in.keys = kl->keys;
	out->in.n_keys = kl->n;
}

/* ---- top level --------------------------------------------------------------- */

/* ipam: {config: [{subnet: CIDR}]}: the one subnet of the network. */
static char *ipam_subnet(struct compose *c, const struct ynode *v, const char *path, int *line)
{
	if (v->kind != Y_MAP) {
		nerr(c, v, path, "expected a mapping (config:), not %s", kind_name(v->kind));
		return NULL;
	}
	char *subnet = NULL;
	for (size_t i = 0; i + 1 < v->n; i += 2) {
		const char *k = v->kids[i]->text;
		const struct ynode *val = v->kids[i + 1];
		_cleanup_free_ char *p = xasprintf("%s.%s", path, k);
		if (!strcmp(k, "driver")) {
			_cleanup_free_ char *d = scalar(c, val, p);
			if (d && strcmp(d, "default"))
				unsupported(c, val, p, "hutch assigns the addresses itself");
		} else if (!strcmp(k, "config")) {
			if (val->kind != Y_SEQ || val->n > 1) {
				nerr(c, val, p, "expected a list of one entry (subnet:)");
				continue;
			}
			const struct ynode *e = val->n ? val->kids[0] : NULL;
			_cleanup_free_ char *ep = xasprintf("%s[0]", p);
			for (size_t j = 0; e && e->kind == Y_MAP && j + 1 < e->n; j += 2) {
				const char *ek = e->kids[j]->text;
				_cleanup_free_ char *kp = xasprintf("%s.%s", ep, ek);
				if (!strcmp(ek, "subnet")) {
					free(subnet);
					subnet = scalar(c, e->kids[j + 1], kp);
					*line = e->kids[j + 1]->line;
					struct hutch_cidr cidr;
					if (subnet && (hutch_cidr_parse(subnet, &cidr, NULL) < 0 ||
						       cidr.prefix < 8 || cidr.prefix > 30)) {
						_cleanup_free_ char *shown =
						    printable(subnet, strlen(subnet));
						nerr(c, e->kids[j + 1], kp,
						     "'%s' is not a subnet hutch can use: give an "
						     "IPv4 "
						     "network from /8 to /30 with its host bits "
						     "zero, "
						     "like 10.89.7.0/24",
						     shown);
						free(subnet);
						subnet = NULL;
					}
				} else if (!strcmp(ek, "gateway") || !strcmp(ek, "ip_range") ||
					   !strcmp(ek, "aux_addresses"))
					unsupported(c, e->kids[j], kp,
						    "the gateway is the subnet's first address");
				else
					unknown_key(c, e->kids[j], kp, "an ipam config");
			}
			if (e && e->kind != Y_MAP)
				nerr(c, e, ep, "expected a mapping (subnet:)");
		} else if (!strcmp(k, "options"))
			unsupported(c, v->kids[i], p, "hutch assigns the addresses itself");
		else
			unknown_key(c, v->kids[i], p, "ipam");
	}
	return subnet;
}

static void read_top_networks(struct compose *c, const struct ynode *v)
{
	if (v->kind != Y_MAP) {
		if (v->kind != Y_NULL)
			nerr(c, v, "networks", "expected a mapping of networks, not %s",
			     kind_name(v->kind));
		return;
	}
	for (size_t i = 0; i + 1 < v->n; i += 2) {
		const struct ynode *k = v->kids[i], *n = v->kids[i + 1];
		_cleanup_free_ char *p = xasprintf("networks.%s", k->text);
		bool internal = false, ipv6 = false;
		char *subnet = NULL;
		int subnet_line = 0;
		if (n->kind == Y_MAP) {
			for (size_t j = 0; j + 1 < n->n; j += 2) {
				const char *nk = n->kids[j]->text;
				_cleanup_free_ char *np = xasprintf("%s.%s", p, nk);
				if (!strcmp(nk, "internal"))
					bool_of(c, n->kids[j + 1], np, &internal);
				else if (!strcmp(nk, "enable_ipv6")) /* a ULA /64 chosen */
					bool_of(c, n->kids[j + 1], np, &ipv6);
				else if (!strcmp(nk, "driver")) {
					_cleanup_free_ char *d = scalar(c, n->kids[j + 1], np);
					if (d && strcmp(d, "bridge"))
						unsupported(c, n->kids[j + 1], np,
							    "hutch's networks are bridges");
				} else if (!strcmp(nk, "name") || !strcmp(nk, "labels") ||
					   !strcmp(nk, "attachable"))
					; /* names and labels for docker's tools */
				else if (!strcmp(nk, "ipam")) {
					free(subnet);
					subnet = ipam_subnet(c, n->kids[j + 1], np, &subnet_line);
				} else if (!strcmp(nk, "external") || !strcmp(nk, "driver_opts") ||
					   !strcmp(nk, "enable_ipv4"))
					unsupported(c, n->kids[j], np,
						    "a stack's networks are its own, with "
						    "addresses hutch chooses");
				else
					unknown_key(c, n->kids[j], np, "a network");
			}
		} else if (n->kind != Y_NULL) {
			nerr(c, n, p, "expected a mapping or nothing");
			continue;
		}
		struct hutch_stack *st = c->stack;
		st->networks = xrealloc(st->networks, (st->n_networks + 1) * sizeof(*st->networks));
		st->networks[st->n_networks++] = (struct stack_network){
		    .name = xstrdup(k->text),
		    .internal = internal,
		    .ipv6 = ipv6,
		    .subnet = subnet,
		    .line = k->line,
		    .subnet_line = subnet_line,
		};
	}
}

static void read_top_volumes(struct compose *c, const struct ynode *v)
{
	if (v->kind != Y_MAP) {
		if (v->kind != Y_NULL)
			nerr(c, v, "volumes", "expected a mapping of volumes, not %s",
			     kind_name(v->kind));
		return;
	}
	for (size_t i = 0; i + 1 < v->n; i += 2) {
		const struct ynode *k = v->kids[i], *n = v->kids[i + 1];
		_cleanup_free_ char *p = xasprintf("volumes.%s", k->text);
		if (n->kind == Y_MAP) {
			for (size_t j = 0; j + 1 < n->n; j += 2) {
				const char *nk = n->kids[j]->text;
				_cleanup_free_ char *np = xasprintf("%s.%s", p, nk);
				if (!strcmp(nk, "driver")) {
					_cleanup_free_ char *d = scalar(c, n->kids[j + 1], np);
					if (d && strcmp(d, "local"))
						unsupported(
						    c, n->kids[j + 1], np,
						    "hutch's volumes are local directories");
				} else if (!strcmp(nk, "labels") || !strcmp(nk, "name"))
					;
				else if (!strcmp(nk, "external") || !strcmp(nk, "driver_opts"))
					unsupported(c, n->kids[j], np,
						    "a stack's volumes are its own directories");
				else
					unknown_key(c, n->kids[j], np, "a volume");
			}
		} else if (n->kind != Y_NULL) {
			nerr(c, n, p, "expected a mapping or nothing");
			continue;
		}
		struct hutch_stack *st = c->stack;
		st->volumes = xrealloc(st->volumes, (st->n_volumes + 1) * sizeof(*st->volumes));
		st->volumes[st->n_volumes++] = (struct stack_volume){xstrdup(k->text), k->line};
	}
}

static void check_name_keys(struct compose *c, const struct ynode *map, const char *path)
{
	/* names are plain keys: a number or null as a service name is a mistake */
	for (size_t i = 0; i + 1 < map->n; i += 2)
		if (map->kids[i]->kind != Y_SCALAR)
			nerr(c, map->kids[i], path, "a name is text, not %s",
			     kind_name(map->kids[i]->kind));
}

static void read_root(struct compose *c, const struct ynode *root, const char *name_opt,
		      int *n_services_out)
{
	struct hutch_stack *st = c->stack;
	const struct ynode *services = ymap_get(root, "services");
	c->top_volumes = ymap_get(root, "volumes");
	c->top_networks = ymap_get(root, "networks");
	for (size_t i = 0; i + 1 < root->n; i += 2) {
		const struct ynode *k = root->kids[i];
		const char *key = k->text;
		if (!strncmp(key, "x-", 2) || !strcmp(key, "services") || !strcmp(key, "name"))
			continue;
		if (!strcmp(key, "version")) {
			stack_diag_warn(&c->diag,
					"%s:%d:%d: version: obsolete, ignored (as "
					"docker compose does)",
					k->file, k->line, k->col);
		} else if (!strcmp(key, "networks")) {
			read_top_networks(c, root->kids[i + 1]);
		} else if (!strcmp(key, "volumes")) {
			read_top_volumes(c, root->kids[i + 1]);
		} else if (!strcmp(key, "secrets") || !strcmp(key, "configs") ||
			   !strcmp(key, "include") || !strcmp(key, "models")) {
			unsupported(c, k, key,
				    !strcmp(key, "include")
					? "give the files with -f instead"
					: "hutch has none: mount files with volumes: (read_only)");
		} else {
			_cleanup_free_ char *shown = printable(key, strlen(key));
			nerr(c, k, key,
			     "unknown top-level key '%s' (a compose file has name, services, "
			     "networks, volumes and x- extensions)",
			     shown);
		}
	}
	if (!services || services->kind != Y_MAP || services->n == 0) {
		nerr(c, services ? services : root, "services",
		     "no services: add services: with at least one service and its image");
		return;
	}
	check_name_keys(c, services, "services");
	if (c->top_volumes && c->top_volumes->kind == Y_MAP)
		check_name_keys(c, c->top_volumes, "volumes");
	if (c->top_networks && c->top_networks->kind == Y_MAP)
		check_name_keys(c, c->top_networks, "networks");

	/* the stack's name: -p, COMPOSE_PROJECT_NAME, name:, the directory's */
	const struct ynode *name_node = ymap_get(root, "name");
	struct stack_key name_key = {"name", NULL, 0};
	char *name_text = NULL;
	const char *env_name = stack_env_get(&c->env, "COMPOSE_PROJECT_NAME");
	if (name_opt) {
		name_text = xstrdup(name_opt);
		name_key.line = place_of(c, root, "name", "-p");
		c->places[name_key.line - 1].line = 0; /* not in a file */
	} else if (env_name && *env_name) {
		name_text = xstrdup(env_name);
		name_key.line = place_of(c, root, "name", "COMPOSE_PROJECT_NAME");
	} else if (name_node) {
		name_text = scalar(c, name_node, "name");
		name_key.line = place_of(c, name_node, "name", "name");
	}

	/* services, those of profiles not asked for left out */
	struct svc_out *outs = xcalloc(services->n / 2 + 1, sizeof(*outs));
	size_t n_out = 0, n_left_out = 0;
	for (size_t i = 0; i + 1 < services->n; i += 2) {
		const struct ynode *k = services->kids[i], *s = services->kids[i + 1];
		if (k->kind != Y_SCALAR || !strncmp(k->text, "x-", 2))
			continue;
		if (!profile_on(c, ymap_get(s, "profiles"))) {
			n_left_out++;
			continue;
		}
		read_service(c, k, s, &outs[n_out++]);
	}
	if (n_out == 0)
		nerr(c, services, "services",
		     n_left_out ? "no service to run: each is in profiles that are not enabled: "
				  "give --profile for one of them"
				: "no services: add services: with at least one service and its "
				  "image");
	*n_services_out = (int)n_out;
	struct stack_service_in *ins = xcalloc(n_out + 1, sizeof(*ins));
	for (size_t i = 0; i < n_out; i++)
		ins[i] = outs[i].in;
	if (name_text)
		name_key.value = name_text;
	stack_build(st, MARK, &c->env, name_text ? &name_key : NULL, ins, n_out, &c->diag);
	free(name_text);
	for (size_t i = 0; i < n_out; i++)
		free(outs[i].kl.keys);
	free(outs);
	free(ins);
}

/* The model's lines are places while building: the compose file's lines. */
static int real_line(const struct compose *c, int place)
{
	return place >= 1 && (size_t)place <= c->n_places ? c->places[place - 1].line : 0;
}

static void fix_lines(struct compose *c)
{
	struct hutch_stack *st = c->stack;
	for (size_t i = 0; i < st->n_services; i++) {
		struct stack_service *s = &st->services[i];
		s->line = real_line(c, s->line);
		s->health.line = real_line(c, s->health.line);
		for (size_t d = 0; d < s->n_deps; d++)
			s->deps[d].line = real_line(c, s->deps[d].line);
		for (size_t o = 0; o < s->n_options; o++) {
			struct stack_option *opt = &s->options[o];
			int place = opt->line;
			opt->line = real_line(c, place);
			/* from an override file: the runtime's errors name that one */
			if (place >= 1 && (size_t)place <= c->n_places) {
				const char *f = c->places[place - 1].file;
				if (f && strcmp(f, c->first_file))
					opt->file = xstrdup(f);
			}
		}
	}
}

/* ---- files ------------------------------------------------------------------- */

static int read_file(const char *path, size_t max, char **out, size_t *len, struct hutch_err **err)
{
	_cleanup_free_ char *shown = printable(path, strlen(path));
	return stack_read_file(path, shown, max,
			       max == STACK_FILE_MAX ? "compose file" : "env file", out, len, err);
}

static void read_env_files(struct compose *c, const char *dir)
{
	const struct hutch_stack_load_opts *o = c->opts;
	_cleanup_free_ char *dotenv = xasprintf("%s/.env", dir);
	const char *one[1] = {dotenv};
	const char *const *files = o && o->n_env_files ? o->env_files : one;
	size_t n = o && o->n_env_files ? o->n_env_files : 1;
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *text = NULL;
		size_t len = 0;
		_cleanup_err_ struct hutch_err *err = NULL;
		if (read_file(files[i], STACK_ENV_FILE_MAX, &text, &len, &err) == 0) {
			_cleanup_free_ char *shown = printable(files[i], strlen(files[i]));
			stack_parse_env_file(text, len, shown, 0, &c->diag, &c->env_vars,
					     &c->n_env_vars);
		} else if (files != one || err->errno_ != ENOENT) {
			stack_diag_add(&c->diag, 0, "%s%s%s", err->msg, err->errno_ ? ": " : "",
				       err->errno_ ? strerror(err->errno_) : "");
		}
	}
	c->env.dotenv = c->env_vars;
	c->env.n_dotenv = c->n_env_vars;
}

static void read_profiles(struct compose *c)
{
	const struct hutch_stack_load_opts *o = c->opts;
	for (size_t i = 0; o && i < o->n_profiles; i++) {
		c->profiles = xrealloc(c->profiles, (c->n_profiles + 1) * sizeof(*c->profiles));
		c->profiles[c->n_profiles++] = xstrdup(o->profiles[i]);
	}
	const char *env = stack_env_get(&c->env, "COMPOSE_PROFILES");
	if (env && !(o && o->n_profiles)) {
		_cleanup_free_ char *copy = xstrdup(env);
		char *save = NULL;
		for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
			c->profiles =
			    xrealloc(c->profiles, (c->n_profiles + 1) * sizeof(*c->profiles));
			c->profiles[c->n_profiles++] = xstrdup(t);
		}
	}
}

static bool is_compose_name(const char *path)
{
	size_t n = strlen(path);
	return (n > 5 && !strcmp(path + n - 5, ".yaml")) ||
	       (n > 4 && !strcmp(path + n - 4, ".yml"));
}

int compose_load_env(const char *const *paths, size_t n, const struct hutch_stack_load_opts *opts,
		     char **envp, struct hutch_stack **out, struct hutch_err **err)
{
	*out = NULL;
	if (n == 0)
		return hutch_fail(err, 0, "no stack file given");
	struct compose c = {.opts = opts};
	c.env.envp = envp;
	struct hutch_stack *st = xcalloc(1, sizeof(*st));
	c.stack = st;
	st->file = xstrdup(paths[0]);
	const char *slash = strrchr(paths[0], '/');
	st->dir = slash
		      ? xasprintf("%.*s", (int)(slash == paths[0] ? 1 : slash - paths[0]), paths[0])
		      : xstrdup(".");
	char **texts = xcalloc(n, sizeof(*texts));
	char **shown = xcalloc(n, sizeof(*shown));
	struct ynode *root = NULL;
	int rc = -1;
	int n_services = 0;

	read_env_files(&c, st->dir);
	read_profiles(&c);
	for (size_t i = 0; i < n; i++) {
		size_t len = 0;
		shown[i] = printable(paths[i], strlen(paths[i]));
		if (read_file(paths[i], STACK_FILE_MAX, &texts[i], &len, err) < 0)
			goto out;
		struct ynode *doc = NULL;
		struct yaml_error ye;
		if (yaml_read(&c.arena, shown[i], texts[i], len, &doc, &ye) < 0) {
			stack_diag_add(&c.diag, 0, "%s:%d:%d: %s", ye.file, ye.line, ye.col,
				       ye.msg);
			free(ye.msg);
			continue;
		}
		if (!doc || doc->kind != Y_MAP) {
			stack_diag_add(&c.diag, 0,
				       "%s:%d:%d: a compose file is a mapping (services: ...), "
				       "not %s",
				       shown[i], doc ? doc->line : 1, doc ? doc->col : 1,
				       doc ? kind_name(doc->kind) : "empty");
			continue;
		}
		root = root ? yaml_merge(&c.arena, root, doc, 0, "", false) : doc;
	}
	if (c.diag.n == 0 && root) {
		c.root = root;
		read_root(&c, root, opts ? opts->project_name : NULL, &n_services);
		rewrite_messages(&c, (const char *const *)shown, n);
		c.first_file = shown[0];
		fix_lines(&c);
	}
	if (c.diag.n > 0 || !root) {
		stack_diag_fail(&c.diag, shown[0], err);
		goto out;
	}
	st->warnings = steal_ptr(c.diag.warnings);
	st->n_warnings = c.diag.n_warnings;
	c.diag.n_warnings = 0;
	*out = steal_ptr(st);
	rc = 0;
out:
	hutch_stack_free(st);
	for (size_t i = 0; i < n; i++) {
		free(texts[i]);
		free(shown[i]);
	}
	free(texts);
	free(shown);
	for (size_t i = 0; i < c.n_places; i++)
		free(c.places[i].path);
	free(c.places);
	strv_free(c.texts, c.n_texts);
	strv_free(c.profiles, c.n_profiles);
	strv_free(c.env_vars, c.n_env_vars);
	stack_diag_free(&c.diag);
	yarena_free(&c.arena);
	return rc;
}

int hutch_stack_load_files(const char *const *paths, size_t n,
			   const struct hutch_stack_load_opts *opts, struct hutch_stack **out,
			   struct hutch_err **err)
{
	extern char **environ;
	char **envp = opts && opts->envp ? opts->envp : environ;
	*out = NULL;
	bool compose = false;
	for (size_t i = 0; i < n; i++)
		compose |= is_compose_name(paths[i]);
	if (n == 1 && !compose) {
		if (stack_load_env(paths[0], envp, out, err) < 0)
			return -1;
		if (opts && opts->project_name) {
			/* -p names an INI stack too: checked as name = in [stack] */
			if (!hutch_name_valid(opts->project_name)) {
				hutch_stack_free(*out);
				*out = NULL;
				return hutch_fail(err, 0, "-p %s: not a stack name",
						  opts->project_name);
			}
			free((*out)->name);
			(*out)->name = xstrdup(opts->project_name);
		}
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		if (!is_compose_name(paths[i])) {
			_cleanup_free_ char *shown = printable(paths[i], strlen(paths[i]));
			return hutch_fail(err, 0,
					  "%s: several -f files are compose files (.yaml or .yml); "
					  "a hutch.ini is given alone",
					  shown);
		}
	return compose_load_env(paths, n, opts, envp, out, err);
}

/* ---- finding the file ---------------------------------------------------------- */

static const char *const default_names[] = {"hutch.ini", "compose.yaml", "compose.yml",
					    "docker-compose.yaml", "docker-compose.yml"};

/* A stack file found by looking (no -f) runs as the caller, root too: one
 * someone else could have written must not be picked up, above all in a
 * directory above the current one (`hutch up` in /tmp/x/y must not run
 * /tmp/compose.yaml that another user left there). As git's safe.directory:
 * the file and its directory belong to the caller or root and neither is
 * writable by anyone (a sticky directory such as /tmp may be: a file planted
 * there is someone else's, and refused by its owner). Given with -f, a
 * file is the caller's choice. */
static int check_found_file(const char *path, const char *dir, struct hutch_err **err)
{
	uid_t me = geteuid();
	struct stat f, d;
	if (lstat(path, &f) < 0 || stat(dir, &d) < 0)
		return hutch_fail_sys(err, "%s", path);
	_cleanup_free_ char *shown = printable(path, strlen(path));
	const char *why = NULL;
	char buf[96];
	if (f.st_uid != me && f.st_uid != 0) {
		snprintf(buf, sizeof(buf), "it belongs to uid %u, not to you", (unsigned)f.st_uid);
		why = buf;
	} else if (f.st_mode & S_IWOTH) {
		why = "anyone may write it";
	} else if (d.st_uid != me && d.st_uid != 0) {
		snprintf(buf, sizeof(buf), "its directory belongs to uid %u, not to you",
			 (unsigned)d.st_uid);
		why = buf;
	} else if ((d.st_mode & S_IWOTH) && !(d.st_mode & S_ISVTX)) {
		why = "anyone may write its directory";
	}
	if (!why)
		return 0;
	return hutch_fail(err, 0,
			  "found %s but will not use it: %s (a stack file runs its services "
			  "as you). Give it with -f FILE if you trust it",
			  shown, why);
}

int hutch_stack_find(const char *start, char ***paths, size_t *n, struct hutch_err **err)
{
	_cleanup_free_ char *dir = start ? realpath(start, NULL) : getcwd(NULL, 0);
	*paths = NULL;
	*n = 0;
	if (!dir)
		return hutch_fail_sys(err, "cannot find the current directory");
	for (;;) {
		for (size_t i = 0; i < ARRAY_SIZE(default_names); i++) {
			_cleanup_free_ char *p =
			    xasprintf("%s/%s", strcmp(dir, "/") ? dir : "", default_names[i]);
			struct stat st;
			if (stat(p, &st) < 0 || !S_ISREG(st.st_mode))
				continue;
			if (check_found_file(p, strcmp(dir, "/") ? dir : "/", err) < 0)
				return -1;
			*paths = xcalloc(3, sizeof(**paths));
			(*paths)[(*n)++] = steal_ptr(p);
			if (i == 0)
				return 0;
			/* compose.override.yaml goes with compose.yaml, as docker
			 * compose reads it */
			const char *ext = strrchr(default_names[i], '.');
			_cleanup_free_ char *stem =
			    xasprintf("%.*s", (int)(ext - default_names[i]), default_names[i]);
			for (size_t e = 0; e < 2; e++) {
				_cleanup_free_ char *o =
				    xasprintf("%s/%s.override.%s", strcmp(dir, "/") ? dir : "",
					      stem, e ? "yml" : "yaml");
				if (stat(o, &st) == 0 && S_ISREG(st.st_mode)) {
					if (check_found_file(o, strcmp(dir, "/") ? dir : "/", err) <
					    0) {
						strv_free(*paths, *n);
						*paths = NULL;
						*n = 0;
						return -1;
					}
					(*paths)[(*n)++] = steal_ptr(o);
					break;
				}
			}
			return 0;
		}
		char *slash = strrchr(dir, '/');
		if (!slash || !strcmp(dir, "/"))
			break;
		if (slash == dir)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
	return hutch_fail(err, 0,
			  "no hutch.ini, compose.yaml, compose.yml, docker-compose.yaml or "
			  "docker-compose.yml here or in a directory above: give one with -f FILE");
}
