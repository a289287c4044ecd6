/* The build engine: a chain of steps run on top of a base image, each step
 * cached by a key of its parent's key, its text after substitution and what
 * it reads. RUN steps run in ordinary hutch containers (runtime/), and their
 * upper dir becomes the step's layer; COPY/ADD write their layer directly;
 * the other steps change only the image config. The store (images/) keeps the
 * layers, the cache entries and the resulting image. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <json-c/json.h>
#include <limits.h>
#include <linux/openat2.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "builder/builder.h"
#include "common/sha256.h"
#include "common/util.h"
#include "images/images.h"
#include "runtime/runtime.h"

struct stage {
	char *name;		 /* "AS name", lowercased; NULL without */
	struct json_object *cfg; /* the image config being built */
	char **layers;		 /* layer dirs, lowest first */
	char (*chains)[65];
	int *held;
	size_t n_layers;
	char key[65];  /* cache key of the last step */
	char *created; /* of the last step that made something */
	char **args;   /* ARG values in scope, "K=V" */
	size_t n_args;
	char **shell;
	size_t n_shell;
};

struct builder {
	const struct hutch_build_file *f;
	const struct hutch_build_opts *o;
	struct hutch_store *store;
	struct hutch_runtime rt;
	struct hutch_ignore ignore;
	char *context;	  /* realpath */
	int ctxfd;	  /* the context, opened once: COPY sources resolve beneath it */
	char **meta_args; /* ARGs before the first FROM */
	size_t n_meta_args;
	struct stage *stages;
	size_t n_stages;
	size_t step_no, n_total, n_cached;
	bool *args_used;		 /* by index in o->build_args */
	uint64_t walk_bytes, walk_files; /* what a COPY's sources hold, for its progress */
};

static void strv_push(char ***v, size_t *n, char *s)
{
	*v = xrealloc(*v, (*n + 1) * sizeof(char *));
	(*v)[(*n)++] = s;
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void stage_free(struct stage *s)
{
	free(s->name);
	json_object_put(s->cfg);
	for (size_t i = 0; i < s->n_layers; i++) {
		free(s->layers[i]);
		if (s->held[i] >= 0)
			close(s->held[i]);
	}
	free(s->layers);
	free(s->chains);
	free(s->held);
	free(s->created);
	strv_free(s->args, s->n_args);
	strv_free(s->shell, s->n_shell);
}

static void stage_add_layer(struct stage *s, char *dir, const char *chain, int held)
{
	s->layers = xrealloc(s->layers, (s->n_layers + 1) * sizeof(char *));
	s->chains = xrealloc(s->chains, (s->n_layers + 1) * 65);
	s->held = xrealloc(s->held, (s->n_layers + 1) * sizeof(int));
	s->layers[s->n_layers] = dir;
	memcpy(s->chains[s->n_layers], chain, 65);
	s->held[s->n_layers++] = held;
}

static char *now_iso(void)
{
	char buf[64];
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	return xasprintf("%s.%09ldZ", buf, ts.tv_nsec);
}

static struct json_object *cfg_config(struct stage *s)
{
	struct json_object *c;
	if (!json_object_object_get_ex(s->cfg, "config", &c) ||
	    !json_object_is_type(c, json_type_object)) {
		c = json_object_new_object();
		json_object_object_add(s->cfg, "config", c);
	}
	return c;
}

/* The config's Env as "K=V" strings (borrowed from the JSON). */
static char **cfg_env(struct stage *s, size_t *n)
{
	*n = 0;
	struct json_object *e;
	if (!json_object_object_get_ex(cfg_config(s), "Env", &e) ||
	    !json_object_is_type(e, json_type_array))
		return NULL;
	size_t len = json_object_array_length(e);
	char **v = xcalloc(len + 1, sizeof(char *));
	for (size_t i = 0; i < len; i++) {
		const char *str = json_object_get_string(json_object_array_get_idx(e, i));
		if (str)
			v[(*n)++] = (char *)str;
	}
	return v;
}

/* What $VARs see in this stage: its ARGs, then ENV (which wins). */
static char **expand_env(struct stage *s, size_t *n)
{
	size_t ne = 0;
	_cleanup_free_ char **env = cfg_env(s, &ne);
	char **v = xcalloc(s->n_args + ne + 1, sizeof(char *));
	*n = 0;
	for (size_t i = 0; i < s->n_args; i++)
		v[(*n)++] = s->args[i];
	for (size_t i = 0; i < ne; i++)
		v[(*n)++] = env[i];
	return v;
}

static void cfg_set_env(struct stage *s, const char *key, const char *value)
{
	struct json_object *c = cfg_config(s), *e;
	if (!json_object_object_get_ex(c, "Env", &e) || !json_object_is_type(e, json_type_array)) {
		e = json_object_new_array();
		json_object_object_add(c, "Env", e);
	}
	_cleanup_free_ char *kv = xasprintf("%s=%s", key, value);
	size_t kl = strlen(key);
	for (size_t i = 0; i < json_object_array_length(e); i++) {
		const char *str = json_object_get_string(json_object_array_get_idx(e, i));
		if (str && !strncmp(str, key, kl) && str[kl] == '=') {
			json_object_array_put_idx(e, i, json_object_new_string(kv));
			return;
		}
	}
	json_object_array_add(e, json_object_new_string(kv));
}

static struct json_object *strv_json(char *const *v, size_t n)
{
	struct json_object *a = json_object_new_array();
	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(v[i]));
	return a;
}

static void history_add(struct stage *s, const char *created, const char *by, bool empty)
{
	struct json_object *h;
	if (!json_object_object_get_ex(s->cfg, "history", &h) ||
	    !json_object_is_type(h, json_type_array)) {
		h = json_object_new_array();
		json_object_object_add(s->cfg, "history", h);
	}
	struct json_object *e = json_object_new_object();
	json_object_object_add(e, "created", json_object_new_string(created));
	json_object_object_add(e, "created_by", json_object_new_string(by));
	if (empty)
		json_object_object_add(e, "empty_layer", json_object_new_boolean(true));
	json_object_array_add(h, e);
}

static void diff_add(struct stage *s, const char *diff_hex)
{
	struct json_object *r, *d;
	if (!json_object_object_get_ex(s->cfg, "rootfs", &r)) {
		r = json_object_new_object();
		json_object_object_add(r, "type", json_object_new_string("layers"));
		json_object_object_add(s->cfg, "rootfs", r);
	}
	if (!json_object_object_get_ex(r, "diff_ids", &d)) {
		d = json_object_new_array();
		json_object_object_add(r, "diff_ids", d);
	}
	_cleanup_free_ char *full = xasprintf("sha256:%s", diff_hex);
	json_object_array_add(d, json_object_new_string(full));
}

/* ---- messages ------------------------------------------------------------------ */

static int step_fail(const struct builder *b, const struct hutch_step *st, struct hutch_err **err)
{
	_cleanup_free_ char *shown = printable(st->text, strlen(st->text));
	return hutch_err_wrap(err, "step %zu/%zu (%s:%d: %s)", b->step_no, b->n_total,
			      b->o->file_name, st->line, shown);
}

/* The step as written, for the terminal: control characters as \\xNN,
 * everything else (quotes, backslashes) as it is. */
static char *shown_text(const char *t)
{
	size_t n = strlen(t);
	char *out = xcalloc(n * 4 + 1, 1), *w = out;
	for (const unsigned char *p = (const unsigned char *)t; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			w += sprintf(w, "\\x%02x", *p);
		else
			*w++ = (char)*p;
	}
	return out;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- stages -------------------------------------------------------------------- */

static struct stage *find_stage(struct builder *b, const char *name)
{
	for (size_t i = 0; i < b->n_stages; i++)
		if (b->stages[i].name && !strcasecmp(b->stages[i].name, name))
			return &b->stages[i];
	/* by number, as Docker allows (--from=0) */
	char *end;
	long k = strtol(name, &end, 10);
	if (*name && !*end && k >= 0 && (size_t)k < b->n_stages)
		return &b->stages[k];
	return NULL;
}

static const char *meta_arg(struct builder *b, const char *name)
{
	size_t l = strlen(name);
	for (size_t i = b->n_meta_args; i-- > 0;)
		if (!strncmp(b->meta_args[i], name, l) && b->meta_args[i][l] == '=')
			return b->meta_args[i] + l + 1;
	return NULL;
}

static const char *build_arg(struct builder *b, const char *name, bool *given)
{
	size_t l = strlen(name);
	*given = false;
	for (size_t i = b->o->n_build_args; i-- > 0;) {
		const char *a = b->o->build_args[i];
		if (!strncmp(a, name, l) && a[l] == '=') {
			*given = true;
			b->args_used[i] = true;
			return a + l + 1;
		}
	}
	return NULL;
}

static int do_from(struct builder *b, struct stage *s, const struct hutch_step *st,
		   struct hutch_err **err)
{
	char **w = NULL;
	size_t nw = 0;
	_cleanup_free_ char *json = NULL, *t = NULL;
	if (hutch_build_expand(st->args, b->f->escape, b->meta_args, b->n_meta_args, true, &w, &nw,
			       err) < 0)
		return -1;
	int ret = -1;
	if (nw != 1 && !(nw == 3 && !strcasecmp(w[1], "AS"))) {
		hutch_fail(err, 0, "FROM takes an image and optionally AS NAME");
		goto out;
	}
	if (nw == 3) {
		s->name = xstrdup(w[2]);
		for (char *p = s->name; *p; p++)
			*p = (char)tolower((unsigned char)*p);
	}
	struct stage *base = find_stage(b, w[0]);
	if (base && base != s) {
		s->cfg = json_tokener_parse(json_object_to_json_string(base->cfg));
		for (size_t i = 0; i < base->n_layers; i++)
			stage_add_layer(s, xstrdup(base->layers[i]), base->chains[i],
					fcntl(base->held[i], F_DUPFD_CLOEXEC, 0));
		memcpy(s->key, base->key, 65);
		s->created = xstrdup(base->created);
		strv_free(s->shell, s->n_shell);
		s->shell = NULL;
		s->n_shell = 0;
		for (size_t i = 0; i < base->n_shell; i++)
			strv_push(&s->shell, &s->n_shell, xstrdup(base->shell[i]));
		ret = 0;
		goto out;
	}
	if (!strcmp(w[0], "scratch")) {
		s->cfg = json_object_new_object();
		hutch_build_cache_key(NULL, "FROM scratch", NULL, s->key);
		s->created = now_iso();
		ret = 0;
		goto out;
	}
	char id[65];
	struct hutch_image *img = NULL;
	if (hutch_image_config(b->store, w[0], &json, id, err) < 0 ||
	    hutch_image_get(b->store, id, &img, err) < 0)
		goto out;
	s->cfg = json_tokener_parse(json);
	if (!s->cfg || !json_object_is_type(s->cfg, json_type_object)) {
		hutch_fail(err, 0, "image '%s' has a corrupt config", w[0]);
		hutch_image_free(img);
		goto out;
	}
	struct json_object *r;
	json_object_object_get_ex(s->cfg, "rootfs", &r);
	struct json_object *diffs = NULL;
	if (r)
		json_object_object_get_ex(r, "diff_ids", &diffs);
	char prev[65] = "";
	for (size_t i = 0; i < img->n_layers; i++) {
		const char *d = json_object_get_string(json_object_array_get_idx(diffs, i));
		char chain[65];
		hutch_chain_id_next(i ? prev : NULL, d ? d + 7 : "", chain);
		memcpy(prev, chain, 65);
		stage_add_layer(s, steal_ptr(img->layer_dirs[i]), chain, img->layer_fds[i]);
		img->layer_fds[i] = -1;
	}
	hutch_image_free(img);
	t = xasprintf("FROM sha256:%s", id);
	hutch_build_cache_key(NULL, t, NULL, s->key);
	struct json_object *c, *sh;
	/* an image built with SHELL gives it to the builds FROM it */
	if (json_object_object_get_ex(cfg_config(s), "Shell", &sh) &&
	    json_object_is_type(sh, json_type_array))
		for (size_t i = 0; i < json_object_array_length(sh); i++)
			strv_push(
			    &s->shell, &s->n_shell,
			    xstrdup(json_object_get_string(json_object_array_get_idx(sh, i))));
	s->created =
	    xstrdup(json_object_object_get_ex(s->cfg, "created", &c) ? json_object_get_string(c)
								     : "1970-01-01T00:00:00Z");
	ret = 0;
out:
	strv_free(w, nw);
	return ret;
}

/* ---- RUN ------------------------------------------------------------------------- */

static int run_container(struct builder *b, struct stage *s, char *const *argv, size_t n,
			 const char *network, struct hutch_layer_add *upper_add, char **upper_out,
			 struct hutch_container **cout, struct hutch_err **err)
{
	struct hutch_spec *spec = hutch_spec_new();
	int ret = -1;
	char id[65];
	_cleanup_free_ char *host = NULL;
	_cleanup_close_ int devnull = -1;
	size_t ne = 0;
	_cleanup_free_ char **env = cfg_env(s, &ne);
	struct json_object *c = cfg_config(s), *v;
	const char *workdir =
	    json_object_object_get_ex(c, "WorkingDir", &v) ? json_object_get_string(v) : NULL;
	const char *user =
	    json_object_object_get_ex(c, "User", &v) ? json_object_get_string(v) : NULL;
	for (size_t i = 0; i < n; i++)
		if (strlen(argv[i]) >= 128 * 1024) { /* MAX_ARG_STRLEN */
			hutch_fail(
			    err, E2BIG,
			    "the command is %zu bytes, more than the kernel takes as one "
			    "argument (128 KiB): put the script in the build context, COPY it "
			    "and RUN it",
			    strlen(argv[i]));
			goto out;
		}
	if (random_hex_id(id, err) < 0)
		goto out;
	spec->id = xstrdup(id);
	/* gone with its files once its upper dir is a layer (destroy) */
	spec->auto_remove = true;
	/* a tiny init as pid 1: a RUN's processes are reaped, and ^C reaches the
	 * command (pid 1 would ignore it) */
	spec->process.init = true;
	struct hutch_image_config ic = {
	    .name = "build",
	    .layers = s->layers,
	    .n_layers = s->n_layers,
	    .env = env,
	    .n_env = ne,
	    .workdir = workdir && *workdir ? workdir : NULL,
	    .user = user && *user ? user : NULL,
	};
	if (hutch_spec_apply_image(spec, &ic, err) < 0)
		goto out;
	hutch_spec_set_entrypoint(spec, NULL, 0);
	hutch_spec_set_command(spec, argv, n);
	/* build args are the RUN's environment, below ENV */
	for (size_t i = 0; i < s->n_args; i++) {
		_cleanup_free_ char *k = xstrdup(s->args[i]);
		*strchr(k, '=') = '\0';
		if (!hutch_spec_get_env(spec, k))
			hutch_spec_set_env(spec, s->args[i]);
	}
	host = strndup(id, 12);
	if (hutch_spec_set_hostname(spec, host, err) < 0 ||
	    hutch_spec_set_network(spec, network, err) < 0 ||
	    hutch_spec_for_runtime(&b->rt, spec, err) < 0)
		goto out;
	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	fflush(stdout);
	struct hutch_io io = {.stdin_fd = devnull, .stdout_fd = 1, .stderr_fd = 2};
	if (hutch_container_start(&b->rt, spec, &io, cout, err) < 0)
		goto out;
	struct hutch_exit st;
	if (hutch_container_attach_wait(*cout, -1, &st, err) < 0)
		goto out;
	if (st.code != 0) {
		_cleanup_free_ char *joined = xstrdup("");
		for (size_t i = 0; i < n; i++) {
			char *j = xasprintf("%s%s%s", joined, i ? " " : "", argv[i]);
			free(joined);
			joined = j;
		}
		_cleanup_free_ char *shown = printable(joined, strlen(joined));
		hutch_fail(err, 0, "the command '%s' returned a non-zero code: %d", shown, st.code);
		(*err)->exit_code = 1;
		goto out;
	}
	*upper_out = xasprintf("%s/containers/%s/upper", b->rt.data_root, id);
	*upper_add = (struct hutch_layer_add){.kind = HUTCH_ADD_UPPER, .src = *upper_out};
	ret = 0;
out:
	hutch_spec_free(spec);
	return ret;
}

/* ---- COPY / ADD ----------------------------------------------------------------- */

static bool ignore_cb(const char *rel, void *data)
{
	return hutch_ignore_match(data, rel);
}

/* A source below the context, as a path relative to it ("" for the context
 * itself): no ".." above the context. NULL if it climbs out. */
static char *context_rel(const char *src)
{
	char **parts = NULL;
	size_t n = 0;
	_cleanup_free_ char *copy = xstrdup(src);
	char *save = NULL;
	for (char *p = strtok_r(copy, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
		if (!strcmp(p, "."))
			continue;
		if (!strcmp(p, "..")) {
			if (!n) {
				free(parts);
				return NULL;
			}
			n--;
			continue;
		}
		parts = xrealloc(parts, (n + 1) * sizeof(char *));
		parts[n++] = p;
	}
	char *out = xstrdup("");
	for (size_t i = 0; i < n; i++) {
		char *j = xasprintf("%s%s%s", out, i ? "/" : "", parts[i]);
		free(out);
		out = j;
	}
	free(parts);
	return out;
}

static void hash_file(struct sha256_ctx *c, int dirfd, const char *name, const struct stat *st)
{
	char line[128];
	snprintf(line, sizeof(line), "%o %lld ", st->st_mode, (long long)st->st_size);
	sha256_update(c, line, strlen(line));
	if (S_ISLNK(st->st_mode)) {
		char t[4096];
		ssize_t n = readlinkat(dirfd, name, t, sizeof(t));
		if (n > 0)
			sha256_update(c, t, (size_t)n);
	} else if (S_ISREG(st->st_mode)) {
		_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
		char buf[65536];
		ssize_t n;
		while (fd >= 0 && (n = read(fd, buf, sizeof(buf))) > 0)
			sha256_update(c, buf, (size_t)n);
	}
	sha256_update(c, "\n", 1);
}

/* What a COPY reads from the context: names, types, modes and contents, not
 * times (a touched file is the same file). */
static void hash_tree(struct builder *b, struct sha256_ctx *c, int dirfd, const char *rel,
		      int depth)
{
	if (depth > 256)
		return;
	int dup = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	DIR *d = dup >= 0 ? fdopendir(dup) : NULL;
	if (!d) {
		if (dup >= 0)
			close(dup);
		return;
	}
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			strv_push(&names, &n, xstrdup(de->d_name));
	closedir(d);
	for (size_t i = 0; i + 1 < n; i++) /* sort: readdir order is no content */
		for (size_t j = i + 1; j < n; j++)
			if (strcmp(names[i], names[j]) > 0) {
				char *t = names[i];
				names[i] = names[j];
				names[j] = t;
			}
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *r =
		    *rel ? xasprintf("%s/%s", rel, names[i]) : xstrdup(names[i]);
		if (hutch_ignore_match(&b->ignore, r))
			continue;
		struct stat st;
		if (fstatat(dirfd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		sha256_update(c, r, strlen(r) + 1);
		hash_file(c, dirfd, names[i], &st);
		if (S_ISREG(st.st_mode)) {
			b->walk_bytes += (uint64_t)st.st_size;
			b->walk_files++;
		}
		if (S_ISDIR(st.st_mode)) {
			_cleanup_close_ int sub = openat(
			    dirfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0)
				hash_tree(b, c, sub, r, depth + 1);
		}
	}
	strv_free(names, n);
}

/* The image's own file (etc/passwd, etc/group): the topmost layer that has
 * the name decides, resolved inside that layer as inside the image's root
 * (an absolute or ".." symlink stays in it, never leads to the host's file),
 * a regular file only (a whiteout or a device there: the image has none), at
 * most 1 MiB. 1 and *text, 0 if the image has none, -1 with err. */
static int read_image_file(struct stage *s, const char *file, char **text, struct hutch_err **err)
{
	for (size_t i = s->n_layers; i-- > 0;) {
		_cleanup_close_ int root = open(s->layers[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (root < 0)
			continue;
		_cleanup_close_ int fd =
		    openat2_retry(root, file, O_PATH, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) < 0) {
			if (errno == ENOENT)
				continue;
			return 0;
		}
		if (!S_ISREG(st.st_mode))
			return 0;
		/* read through the fd resolved above, not by name again */
		char self[64];
		snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
		if (read_file_at_most(AT_FDCWD, self, 1 << 20, READ_REGULAR, text, NULL, err) < 0) {
			hutch_err_free(err);
			return hutch_fail(err, 0,
					  "--chown: the image's /%s is larger than 1 MiB or cannot "
					  "be read",
					  file);
		}
		return 1;
	}
	return 0;
}

/* "uid[:gid]" numbers, or names from the image's /etc/passwd and /etc/group. */
static int lookup_id(struct stage *s, const char *file, const char *name, uint32_t *out,
		     struct hutch_err **err)
{
	char *end;
	unsigned long v = strtoul(name, &end, 10);
	if (*name && !*end) {
		*out = (uint32_t)v;
		return 0;
	}
	_cleanup_free_ char *text = NULL;
	int k = read_image_file(s, file, &text, err);
	if (k <= 0)
		return k < 0 ? -1 : 1;
	size_t l = strlen(name);
	for (char *line = text; line && *line;) {
		char *nl = strchr(line, '\n');
		if (!strncmp(line, name, l) && line[l] == ':') {
			char *f = strchr(line + l + 1, ':');
			if (f) {
				*out = (uint32_t)strtoul(f + 1, NULL, 10);
				return 0;
			}
		}
		line = nl ? nl + 1 : NULL;
	}
	return 1;
}

static int parse_chown(struct stage *s, const char *v, struct hutch_layer_add *a,
		       struct hutch_err **err)
{
	_cleanup_free_ char *u = xstrdup(v);
	char *g = strchr(u, ':');
	if (g)
		*g++ = '\0';
	int k = lookup_id(s, "etc/passwd", u, &a->uid, err);
	if (k < 0)
		return -1;
	if (k > 0) {
		_cleanup_free_ char *shown = printable(u, strlen(u));
		return hutch_fail(err, 0, "--chown: no user '%s' in the image's /etc/passwd",
				  shown);
	}
	a->gid = a->uid;
	k = g ? lookup_id(s, "etc/group", g, &a->gid, err) : 0;
	if (k < 0)
		return -1;
	if (k > 0) {
		_cleanup_free_ char *shown = printable(g, strlen(g));
		return hutch_fail(err, 0, "--chown: no group '%s' in the image's /etc/group",
				  shown);
	}
	a->chown = true;
	return 0;
}

/* Whether path (absolute) is a directory in the stage's image: the topmost
 * layer that has it decides (a whiteout there: it is not). */
static bool stage_has_dir(struct stage *s, const char *path)
{
	while (*path == '/')
		path++;
	if (!*path)
		return true;
	for (size_t i = s->n_layers; i-- > 0;) {
		_cleanup_close_ int root = open(s->layers[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (root < 0)
			continue;
		_cleanup_close_ int fd =
		    openat2_retry(root, path, O_PATH, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) < 0) {
			if (errno == ENOENT)
				continue;
			return false;
		}
		return S_ISDIR(st.st_mode);
	}
	return false;
}

static char *abs_dest(struct stage *s, const char *dest)
{
	if (dest[0] == '/')
		return xstrdup(dest);
	struct json_object *v;
	const char *wd = json_object_object_get_ex(cfg_config(s), "WorkingDir", &v)
			     ? json_object_get_string(v)
			     : "/";
	if (!wd || !*wd)
		wd = "/";
	return xasprintf("%s%s%s", wd, wd[strlen(wd) - 1] == '/' ? "" : "/", dest);
}

struct copy_plan {
	struct hutch_layer_add *adds;
	size_t n;
	char **owned; /* strings the adds point to */
	size_t n_owned;
	int *fds; /* the context sources the adds read, open from plan to layer */
	size_t n_fds;
	char *inputs;
	uint64_t total_bytes, total_files; /* of the context's sources; 0: not known */
};

static void copy_plan_free(struct copy_plan *p)
{
	free(p->adds);
	strv_free(p->owned, p->n_owned);
	for (size_t i = 0; i < p->n_fds; i++)
		close(p->fds[i]);
	free(p->fds);
	free(p->inputs);
}

/* A source as read through its fd (hash_file reads by name). pread: the
 * offset stays where the layer writer starts. */
static void hash_fd(struct sha256_ctx *c, int fd, const struct stat *st)
{
	char line[128];
	snprintf(line, sizeof(line), "%o %lld ", st->st_mode, (long long)st->st_size);
	sha256_update(c, line, strlen(line));
	if (S_ISREG(st->st_mode)) {
		char buf[65536];
		ssize_t n;
		off_t off = 0;
		while ((n = pread(fd, buf, sizeof(buf), off)) > 0) {
			sha256_update(c, buf, (size_t)n);
			off += n;
		}
	}
	sha256_update(c, "\n", 1);
}

static bool is_archive_fd(int fd)
{
	unsigned char h[512];
	ssize_t n = pread(fd, h, sizeof(h), 0);
	if (n >= 2 && h[0] == 0x1f && h[1] == 0x8b)
		return true;
	if (n >= 4 && !memcmp(h, "\x28\xb5\x2f\xfd", 4))
		return true;
	return n == 512 && !memcmp(h + 257, "ustar", 5);
}

/* Where fd is, as a path below the context's (NULL if it is not below it). */
static char *fd_context_rel(int ctxfd, int fd)
{
	char self[64], where[PATH_MAX], ctx[PATH_MAX];
	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(self, where, sizeof(where) - 1);
	snprintf(self, sizeof(self), "/proc/self/fd/%d", ctxfd);
	ssize_t nc = readlink(self, ctx, sizeof(ctx) - 1);
	if (n <= 0 || nc <= 0)
		return NULL;
	where[n] = ctx[nc] = '\0';
	if (!strcmp(ctx, "/"))
		return xstrdup(where + 1);
	size_t cl = (size_t)nc;
	if (strncmp(where, ctx, cl) || (where[cl] && where[cl] != '/'))
		return NULL;
	return xstrdup(where[cl] ? where + cl + 1 : "");
}

/* Open the COPY source mrel (src as written, for messages) beneath the
 * context fd, once: the layer is written from this fd, not from a name, so a
 * directory of the context swapped for a symlink between planning and
 * writing leads nowhere new. A symlink is followed while it stays inside the
 * context (RESOLVE_BENEATH: no absolute target, no ".." above it); the place
 * it leads to is matched against .dockerignore too. *rel: that place. */
static int open_context_source(struct builder *b, const char *src, const char *mrel, int *fd_out,
			       char **rel, struct stat *st, struct hutch_err **err)
{
	_cleanup_free_ char *shown = printable(src, strlen(src));
	if (*mrel && hutch_ignore_match(&b->ignore, mrel))
		return hutch_fail(err, ENOENT,
				  "'%s' is not in the build context (or .dockerignore excludes it)",
				  shown);
	_cleanup_close_ int pfd = openat2_retry(b->ctxfd, *mrel ? mrel : ".", O_PATH,
						RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS);
	if (pfd < 0) {
		if (errno == EXDEV || errno == ELOOP)
			return hutch_fail(err, 0,
					  "'%s' leads outside the build context (through a symlink "
					  "that points out of it, or an absolute one): copy the "
					  "file itself into the context",
					  shown);
		if (errno == ENOENT)
			return hutch_fail(
			    err, ENOENT,
			    "'%s' is not in the build context (or .dockerignore excludes it)",
			    shown);
		return hutch_fail_sys(err, "'%s' in the build context", shown);
	}
	if (fstat(pfd, st) < 0)
		return hutch_fail_sys(err, "'%s' in the build context", shown);
	if (!S_ISDIR(st->st_mode) && !S_ISREG(st->st_mode))
		return hutch_fail(err, 0, "'%s' is not a regular file or directory", shown);
	_cleanup_free_ char *r = fd_context_rel(b->ctxfd, pfd);
	if (!r)
		return hutch_fail(err, 0, "'%s' leads outside the build context", shown);
	if (*r && hutch_ignore_match(&b->ignore, r)) {
		_cleanup_free_ char *rs = printable(r, strlen(r));
		return hutch_fail(err, ENOENT,
				  "'%s' leads to '%s', which .dockerignore excludes: it is not "
				  "copied",
				  shown, rs);
	}
	/* reopened for reading through the fd, not the name: the same inode
	 * (only a regular file or a directory gets here) */
	char self[64];
	snprintf(self, sizeof(self), "/proc/self/fd/%d", pfd);
	int fd = open(self, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	struct stat st2;
	if (fd < 0 || fstat(fd, &st2) < 0 || st2.st_dev != st->st_dev || st2.st_ino != st->st_ino) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		errno = e;
		return hutch_fail_sys(err, "open '%s' in the build context", shown);
	}
	*fd_out = fd;
	*rel = steal_ptr(r);
	return 0;
}

static char *own(struct copy_plan *p, char *s)
{
	strv_push(&p->owned, &p->n_owned, s);
	return s;
}

static int plan_copy(struct builder *b, struct stage *s, const struct hutch_step *st, char **words,
		     size_t nw, struct copy_plan *p, struct hutch_err **err)
{
	bool add = st->kind == STEP_ADD;
	const char *from = hutch_step_flag(st, "from");
	b->walk_bytes = b->walk_files = 0;
	const char *chown = hutch_step_flag(st, "chown"), *chmod = hutch_step_flag(st, "chmod");
	struct hutch_layer_add proto = {0};
	if (chown && parse_chown(s, chown, &proto, err) < 0)
		return -1;
	if (chmod) {
		char *end;
		unsigned long m = strtoul(chmod, &end, 8);
		if (!*chmod || *end || m > 07777)
			return hutch_fail(err, 0, "--chmod '%s': give octal permissions like 0755",
					  chmod);
		proto.chmod = true;
		proto.mode = (uint32_t)m;
	}
	const char *dest_in = words[nw - 1];
	char *dest = own(p, abs_dest(s, dest_in));
	bool dest_dir = nw > 2 || dest_in[strlen(dest_in) - 1] == '/' || stage_has_dir(s, dest);
	struct sha256_ctx c;
	uint8_t dg[32];
	sha256_init(&c);
	struct stage *src_stage = NULL;
	struct hutch_image *img = NULL;
	if (from) {
		src_stage = find_stage(b, from);
		if (src_stage == s)
			return hutch_fail(err, 0, "--from=%s names the stage being built", from);
		if (!src_stage) {
			if (hutch_image_get(b->store, from, &img, err) < 0)
				return hutch_err_wrap(err, "--from=%s: no stage of that name and",
						      from);
		}
		char t[128];
		snprintf(t, sizeof(t), "from %s\n", src_stage ? src_stage->key : img->id);
		sha256_update(&c, t, strlen(t));
	}
	int ret = -1;
	for (size_t i = 0; i + 1 < nw; i++) {
		const char *src = words[i];
		if (add && strstr(src, "://")) {
			_cleanup_free_ char *shown = printable(src, strlen(src));
			hutch_fail(
			    err, 0,
			    "ADD of a URL ('%s') is not supported by hutch build: download it "
			    "into the build context and COPY it",
			    shown);
			goto out;
		}
		if (from) {
			struct hutch_layer_add a = proto;
			a.kind = HUTCH_ADD_LAYERS;
			a.layers = src_stage ? src_stage->layers : img->layer_dirs;
			a.n_layers = src_stage ? src_stage->n_layers : img->n_layers;
			a.src =
			    own(p, xstrdup(src[0] == '/' ? src : own(p, xasprintf("/%s", src))));
			const char *base = strrchr(src, '/') ? strrchr(src, '/') + 1 : src;
			bool src_dir_like = !*base || src[strlen(src) - 1] == '/';
			a.dest = dest_dir && !src_dir_like && *base
				     ? own(p, xasprintf("%s/%s", dest, base))
				     : dest;
			p->adds = xrealloc(p->adds, (p->n + 1) * sizeof(*p->adds));
			p->adds[p->n++] = a;
			sha256_update(&c, src, strlen(src) + 1);
			continue;
		}
		_cleanup_free_ char *rel = context_rel(src);
		if (!rel) {
			_cleanup_free_ char *shown = printable(src, strlen(src));
			hutch_fail(err, 0, "'%s' is outside the build context", shown);
			goto out;
		}
		/* globs are matched in the context; each match is a source */
		glob_t g = {0};
		_cleanup_free_ char *pattern = xasprintf("%s/%s", b->context, rel);
		bool globbing = strpbrk(rel, "*?[") != NULL;
		if (globbing && glob(pattern, GLOB_NOSORT, NULL, &g) != 0) {
			globfree(&g);
			_cleanup_free_ char *shown = printable(src, strlen(src));
			hutch_fail(err, ENOENT, "no file in the build context matches '%s'", shown);
			goto out;
		}
		size_t nm = globbing ? g.gl_pathc : 1;
		if (nm > 1)
			dest_dir = true;
		for (size_t m = 0; m < nm; m++) {
			const char *path = globbing ? g.gl_pathv[m] : pattern;
			const char *mrel = path + strlen(b->context) + 1;
			if (path[strlen(b->context)] == '\0')
				mrel = "";
			struct stat sst;
			int sfd = -1;
			char *rrel = NULL;
			if (open_context_source(b, src, mrel, &sfd, &rrel, &sst, err) < 0) {
				globfree(&g);
				goto out;
			}
			p->fds = xrealloc(p->fds, (p->n_fds + 1) * sizeof(int));
			p->fds[p->n_fds++] = sfd;
			struct hutch_layer_add a = proto;
			a.rel = own(p, rrel);
			a.src = own(p, *rrel ? xasprintf("%s/%s", b->context, rrel)
					     : xstrdup(b->context));
			a.has_src_fd = true;
			a.src_fd = sfd;
			a.ignore = ignore_cb;
			a.ignore_data = &b->ignore;
			const char *base = strrchr(a.src, '/') + 1;
			if (S_ISDIR(sst.st_mode)) {
				a.kind = HUTCH_ADD_PATH;
				a.dest = dest;
			} else if (add && is_archive_fd(sfd)) {
				a.kind = HUTCH_ADD_ARCHIVE;
				a.dest = dest;
			} else {
				a.kind = HUTCH_ADD_PATH;
				a.dest = dest_dir ? own(p, xasprintf("%s/%s", dest, base)) : dest;
			}
			p->adds = xrealloc(p->adds, (p->n + 1) * sizeof(*p->adds));
			p->adds[p->n++] = a;
			/* the inputs: what is read, by content, through the same fd */
			sha256_update(&c, a.rel, strlen(a.rel) + 1);
			sha256_update(&c, a.kind == HUTCH_ADD_ARCHIVE ? "archive" : "path", 5);
			hash_fd(&c, sfd, &sst);
			if (S_ISREG(sst.st_mode)) {
				b->walk_bytes += (uint64_t)sst.st_size;
				b->walk_files++;
			}
			if (S_ISDIR(sst.st_mode)) {
				/* an open file description of its own for readdir */
				_cleanup_close_ int sub =
				    openat(sfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
				if (sub >= 0)
					hash_tree(b, &c, sub, a.rel, 0);
			}
		}
		globfree(&g);
	}
	sha256_final(&c, dg);
	p->total_bytes = from ? 0 : b->walk_bytes;
	p->total_files = from ? 0 : b->walk_files;
	p->inputs = xcalloc(1, 65);
	sha256_hex(dg, p->inputs);
	ret = 0;
out:
	if (ret < 0 || !img) {
		hutch_image_free(img);
	} else {
		/* the adds point into img's layer dirs: keep them with the plan */
		for (size_t i = 0; i < img->n_layers; i++)
			own(p, steal_ptr(img->layer_dirs[i]));
		/* keep img's locks until the layer is built: the adds use the dirs */
		char **dirs = xcalloc(img->n_layers, sizeof(char *));
		for (size_t i = 0; i < img->n_layers; i++)
			dirs[i] = p->owned[p->n_owned - img->n_layers + i];
		for (size_t i = 0; i < p->n; i++)
			if (p->adds[i].kind == HUTCH_ADD_LAYERS)
				p->adds[i].layers = dirs;
		own(p, (char *)dirs);
		/* dirs (an array of pointers into owned) is freed as one more string;
		 * its entries are owned elsewhere */
		hutch_image_free(img); /* releases its shared locks: nothing holds an
					  image named by --from while its files are
					  copied (a prune could remove it meanwhile) */
	}
	return ret;
}

/* ---- one step -------------------------------------------------------------------- */

static int shell_form(struct stage *s, const char *cmd, char ***argv, size_t *n)
{
	*argv = NULL;
	*n = 0;
	if (s->n_shell) {
		for (size_t i = 0; i < s->n_shell; i++)
			strv_push(argv, n, xstrdup(s->shell[i]));
	} else {
		strv_push(argv, n, xstrdup("/bin/sh"));
		strv_push(argv, n, xstrdup("-c"));
	}
	strv_push(argv, n, xstrdup(cmd));
	return 0;
}

static char *json_text(char *const *v, size_t n)
{
	struct json_object *a = strv_json(v, n);
	char *t = xstrdup(json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN |
								JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(a);
	return t;
}

/* A step that makes a layer: cached, or run (make), then recorded. */
static int layer_step(struct builder *b, struct stage *s, const struct hutch_step *st,
		      const char *text, const char *inputs, bool *cached,
		      int (*make)(struct builder *, struct stage *, void *, char diff[65],
				  char chain[65], int *held, struct hutch_err **),
		      void *arg, struct hutch_err **err)
{
	char key[65];
	hutch_build_cache_key(s->key, text, inputs, key);
	const char *parent = s->n_layers ? s->chains[s->n_layers - 1] : NULL;
	_cleanup_free_ char *line = NULL;
	char diff[65], chain[65], created[64];
	int held = -1;
	char *dir = NULL;
	*cached = false;
	if (!b->o->no_cache && hutch_build_cache_get(b->store, key, &line) == 0 &&
	    sscanf(line, "layer %64s %64s %63s", diff, chain, created) == 3) {
		char expect[65];
		hutch_chain_id_next(parent, diff, expect);
		if (!strcmp(expect, chain) && hutch_layer_hold(b->store, chain, &dir, &held) == 0)
			*cached = true;
	}
	if (!*cached) {
		if (make(b, s, arg, diff, chain, &held, err) < 0)
			return -1;
		_cleanup_free_ char *now = now_iso();
		snprintf(created, sizeof(created), "%s", now);
		free(line);
		line = xasprintf("layer %s %s %s\n", diff, chain, created);
		if (hutch_build_cache_put(b->store, key, line, err) < 0) {
			close(held);
			return -1;
		}
		dir = xasprintf("%s/layers/%s", hutch_store_root(b->store), chain);
	}
	stage_add_layer(s, dir, chain, held);
	diff_add(s, diff);
	history_add(s, created, text, false);
	free(s->created);
	s->created = xstrdup(created);
	memcpy(s->key, key, 65);
	return 0;
}

struct run_arg {
	char **argv;
	size_t n;
	const char *network;
};

static int make_run(struct builder *b, struct stage *s, void *arg, char diff[65], char chain[65],
		    int *held, struct hutch_err **err)
{
	struct run_arg *r = arg;
	struct hutch_container *c = NULL;
	/* While a RUN runs, ^C and friends go to its container (which then
	 * fails the step); between steps they stop hutch itself. */
	sigset_t before;
	sigprocmask(SIG_SETMASK, NULL, &before);
	hutch_block_forwarded_signals();
	struct hutch_layer_add up;
	_cleanup_free_ char *upper = NULL;
	int ret = run_container(b, s, r->argv, r->n, r->network, &up, &upper, &c, err);
	if (ret == 0)
		ret = hutch_layer_build(b->store, &up, 1, s->layers, s->n_layers,
					s->n_layers ? s->chains[s->n_layers - 1] : NULL, diff,
					chain, held, err);
	if (c) {
		struct hutch_err *e2 = NULL;
		if (hutch_container_destroy(c, &e2) < 0 && ret == 0) {
			*err = e2;
			ret = -1;
			close(*held);
		} else {
			hutch_err_free(&e2);
		}
	}
	sigprocmask(SIG_SETMASK, &before, NULL);
	return ret;
}

/* The progress of a COPY/ADD as docker build shows one: on a terminal a line
 * updated in place (at most 10 times a second, once the copy has taken 0.1 s),
 * then, on a terminal or in a log, one line for the step. It runs where the
 * layer is written (a child in the user namespace, rootless): this state is
 * that process's copy. */
struct copy_progress {
	double t0, last;
	bool tty, shown, quiet;
	uint64_t total_bytes, total_files; /* 0: not known (COPY --from) */
};

/* "reading" the sources into the layer's tar, then "copying" them into the
 * layer: bytes and files so far, of the total when known. */
static void copy_progress(void *data, enum hutch_layer_phase phase, uint64_t bytes, uint64_t files,
			  bool done)
{
	struct copy_progress *cp = data;
	double now = now_s();
	char size[32], total[32];
	if (cp->quiet || (done && phase == HUTCH_LAYER_READ))
		return;
	if (!done && (!cp->tty || now - cp->t0 < 0.1 || now - cp->last < 0.1))
		return;
	format_size((int64_t)bytes, size, sizeof(size));
	if (done) {
		printf("%scopied %s, %llu file%s\n", cp->shown ? "\r\033[K" : "", size,
		       (unsigned long long)files, files == 1 ? "" : "s");
	} else {
		cp->last = now;
		cp->shown = true;
		format_size((int64_t)cp->total_bytes, total, sizeof(total));
		printf("\r\033[K%s: %s%s%s, %llu",
		       phase == HUTCH_LAYER_READ ? "reading" : "copying", size,
		       cp->total_files ? " of " : "", cp->total_files ? total : "",
		       (unsigned long long)files);
		if (cp->total_files)
			printf(" of %llu", (unsigned long long)cp->total_files);
		printf(" file%s", (cp->total_files ? cp->total_files : files) == 1 ? "" : "s");
	}
	fflush(stdout);
}

static int make_copy(struct builder *b, struct stage *s, void *arg, char diff[65], char chain[65],
		     int *held, struct hutch_err **err)
{
	struct copy_plan *p = arg;
	struct copy_progress cp = {.t0 = now_s(),
				   .tty = isatty(STDOUT_FILENO),
				   .quiet = b->o->quiet,
				   .total_bytes = p->total_bytes,
				   .total_files = p->total_files};
	for (size_t i = 0; i < p->n; i++) {
		p->adds[i].progress = copy_progress;
		p->adds[i].progress_data = &cp;
	}
	return hutch_layer_build(b->store, p->adds, p->n, s->layers, s->n_layers,
				 s->n_layers ? s->chains[s->n_layers - 1] : NULL, diff, chain, held,
				 err);
}

/* A step that changes only the config: nothing to run, but its key goes in
 * the cache too, so that the output says which steps a build has seen. */
static int meta_step(struct builder *b, struct stage *s, const char *text, const char *key_text,
		     bool *cached, struct hutch_err **err)
{
	char key[65];
	hutch_build_cache_key(s->key, key_text ? key_text : text, NULL, key);
	_cleanup_free_ char *line = NULL;
	*cached = !b->o->no_cache && hutch_build_cache_get(b->store, key, &line) == 0;
	if (!*cached) {
		free(line);
		line = xasprintf("meta - %s %s\n", s->n_layers ? s->chains[s->n_layers - 1] : "-",
				 s->created);
		if (hutch_build_cache_put(b->store, key, line, err) < 0)
			return -1;
	}
	memcpy(s->key, key, 65);
	history_add(s, s->created, text, true);
	return 0;
}

static int kv_words(struct builder *b, struct stage *s, const struct hutch_step *st, char ***w,
		    size_t *nw, struct hutch_err **err)
{
	size_t ne;
	_cleanup_free_ char **env = expand_env(s, &ne);
	return hutch_build_expand(st->args, b->f->escape, env, ne, true, w, nw, err);
}

static int do_step(struct builder *b, struct stage *s, const struct hutch_step *st, bool *cached,
		   struct hutch_err **err)
{
	*cached = true;
	char **w = NULL;
	size_t nw = 0;
	int ret = -1;
	_cleanup_free_ char *text = NULL;
	struct json_object *c = cfg_config(s);
	size_t ne;
	_cleanup_free_ char **env = expand_env(s, &ne);
	switch (st->kind) {
	case STEP_FROM:
		break; /* handled by the caller */
	case STEP_ARG:
	case STEP_ENV:
	case STEP_LABEL: {
		_cleanup_free_ char *arg_names = NULL;
		if (kv_words(b, s, st, &w, &nw, err) < 0)
			goto out;
		/* ENV's old form: "ENV KEY value with spaces" */
		if (st->kind == STEP_ENV && nw && !strchr(w[0], '=')) {
			_cleanup_free_ char *rest = NULL;
			const char *p = st->args;
			while (*p && !isspace((unsigned char)*p))
				p++;
			char **v2 = NULL;
			size_t n2 = 0;
			while (isspace((unsigned char)*p))
				p++;
			if (!*p) {
				hutch_fail(err, 0, "ENV %s needs a value", w[0]);
				goto out;
			}
			if (hutch_build_expand(p, b->f->escape, env, ne, false, &v2, &n2, err) < 0)
				goto out;
			rest = xasprintf("%s=%s", w[0], v2[0]);
			strv_free(v2, n2);
			strv_free(w, nw);
			w = xcalloc(1, sizeof(char *));
			w[0] = steal_ptr(rest);
			nw = 1;
		}
		text = xasprintf("%s", hutch_step_name(st->kind));
		for (size_t i = 0; i < nw; i++) {
			char *eq = strchr(w[i], '=');
			if (!eq && st->kind != STEP_ARG) {
				_cleanup_free_ char *shown = printable(w[i], strlen(w[i]));
				hutch_fail(err, 0, "'%s' is not KEY=VALUE", shown);
				goto out;
			}
			if (eq)
				*eq = '\0';
			if (!*w[i]) {
				hutch_fail(err, 0, "a variable name is empty");
				goto out;
			}
			const char *val = eq ? eq + 1 : "";
			if (st->kind == STEP_ARG) {
				bool given;
				const char *ba = build_arg(b, w[i], &given);
				const char *meta = meta_arg(b, w[i]);
				if (given)
					val = ba;
				else if (!eq && meta)
					val = meta;
				else if (!eq)
					continue; /* declared without a value: unset */
				strv_push(&s->args, &s->n_args, xasprintf("%s=%s", w[i], val));
			} else if (st->kind == STEP_ENV) {
				cfg_set_env(s, w[i], val);
			} else {
				struct json_object *l;
				if (!json_object_object_get_ex(c, "Labels", &l) ||
				    !json_object_is_type(l, json_type_object)) {
					l = json_object_new_object();
					json_object_object_add(c, "Labels", l);
				}
				json_object_object_add(l, w[i], json_object_new_string(val));
			}
			char *t = xasprintf("%s %s=%s", text, w[i], val);
			free(text);
			text = t;
			t = xasprintf("%s %s", arg_names ? arg_names : "ARG", w[i]);
			free(arg_names);
			arg_names = t;
		}
		/* An ARG's value is no part of its key: the steps that use it say
		 * so themselves (a RUN's inputs hold the build args it sees, other
		 * steps' text is after substitution), so a new value reruns those
		 * steps and not the COPY in between. */
		ret = meta_step(b, s, text,
				st->kind == STEP_ARG ? (arg_names ? arg_names : "ARG") : NULL,
				cached, err);
		break;
	}
	case STEP_WORKDIR:
	case STEP_USER:
	case STEP_STOPSIGNAL:
	case STEP_MAINTAINER: {
		if (hutch_build_expand(st->args, b->f->escape, env, ne, false, &w, &nw, err) < 0)
			goto out;
		const char *v = w[0];
		if (st->kind == STEP_WORKDIR) {
			_cleanup_free_ char *abs = abs_dest(s, v);
			json_object_object_add(c, "WorkingDir", json_object_new_string(abs));
			text = xasprintf("WORKDIR %s", abs);
			/* the directory exists from here on, as Docker makes it */
			struct hutch_layer_add a = {.kind = HUTCH_ADD_DIR, .dest = abs};
			struct copy_plan p = {.adds = &a, .n = 1};
			ret = layer_step(b, s, st, text, NULL, cached, make_copy, &p, err);
			break;
		}
		if (st->kind == STEP_STOPSIGNAL && signal_from_name(v) < 0) {
			_cleanup_free_ char *shown = printable(v, strlen(v));
			hutch_fail(err, 0, "unknown signal '%s'", shown);
			goto out;
		}
		const char *field = st->kind == STEP_USER	  ? "User"
				    : st->kind == STEP_STOPSIGNAL ? "StopSignal"
								  : NULL;
		if (field)
			json_object_object_add(c, field, json_object_new_string(v));
		else
			json_object_object_add(s->cfg, "author", json_object_new_string(v));
		text = xasprintf("%s %s", hutch_step_name(st->kind), v);
		ret = meta_step(b, s, text, NULL, cached, err);
		break;
	}
	case STEP_EXPOSE:
	case STEP_VOLUME: {
		if (st->json) {
			w = xcalloc(st->n_argv + 1, sizeof(char *));
			for (size_t i = 0; i < st->n_argv; i++)
				w[nw++] = xstrdup(st->argv[i]);
		} else if (kv_words(b, s, st, &w, &nw, err) < 0) {
			goto out;
		}
		const char *field = st->kind == STEP_EXPOSE ? "ExposedPorts" : "Volumes";
		struct json_object *o;
		if (!json_object_object_get_ex(c, field, &o) ||
		    !json_object_is_type(o, json_type_object)) {
			o = json_object_new_object();
			json_object_object_add(c, field, o);
		}
		text = xstrdup(hutch_step_name(st->kind));
		for (size_t i = 0; i < nw; i++) {
			_cleanup_free_ char *k = NULL;
			if (st->kind == STEP_EXPOSE) {
				char *end;
				unsigned long port = strtoul(w[i], &end, 10);
				if (end == w[i] || port == 0 || port > 65535 ||
				    (*end && strcmp(end, "/tcp") && strcmp(end, "/udp") &&
				     strcmp(end, "/sctp"))) {
					_cleanup_free_ char *shown = printable(w[i], strlen(w[i]));
					hutch_fail(err, 0,
						   "invalid port '%s': give PORT or PORT/tcp|udp",
						   shown);
					goto out;
				}
				k = *end ? xstrdup(w[i]) : xasprintf("%s/tcp", w[i]);
			} else {
				k = xstrdup(w[i]);
			}
			json_object_object_add(o, k, json_object_new_object());
			char *t = xasprintf("%s %s", text, k);
			free(text);
			text = t;
		}
		ret = meta_step(b, s, text, NULL, cached, err);
		break;
	}
	case STEP_CMD:
	case STEP_ENTRYPOINT:
	case STEP_SHELL: {
		char **argv = NULL;
		size_t n = 0;
		if (st->json) {
			for (size_t i = 0; i < st->n_argv; i++)
				strv_push(&argv, &n, xstrdup(st->argv[i]));
		} else if (*st->args) {
			shell_form(s, st->args, &argv, &n);
		}
		_cleanup_free_ char *jt = json_text(argv, n);
		text = xasprintf("%s %s", hutch_step_name(st->kind), jt);
		if (st->kind == STEP_SHELL) {
			/* in the config too, as Docker keeps it: a build FROM this
			 * image runs its shell forms with it */
			json_object_object_add(c, "Shell", strv_json(argv, n));
			strv_free(s->shell, s->n_shell);
			s->shell = argv;
			s->n_shell = n;
		} else {
			json_object_object_add(c, st->kind == STEP_CMD ? "Cmd" : "Entrypoint",
					       n ? strv_json(argv, n) : NULL);
			/* a new ENTRYPOINT drops the Cmd it had (Docker's rule) */
			if (st->kind == STEP_ENTRYPOINT)
				json_object_object_add(c, "Cmd", NULL);
			strv_free(argv, n);
		}
		ret = meta_step(b, s, text, NULL, cached, err);
		break;
	}
	case STEP_HEALTHCHECK: {
		struct json_object *h = json_object_new_object();
		struct json_object *test = json_object_new_array();
		if (!strcmp(st->args, "NONE")) {
			json_object_array_add(test, json_object_new_string("NONE"));
		} else if (st->json) {
			json_object_array_add(test, json_object_new_string("CMD"));
			for (size_t i = 0; i < st->n_argv; i++)
				json_object_array_add(test, json_object_new_string(st->argv[i]));
		} else {
			json_object_array_add(test, json_object_new_string("CMD-SHELL"));
			json_object_array_add(test, json_object_new_string(st->args));
		}
		json_object_object_add(h, "Test", test);
		static const char *const durs[][2] = {{"interval", "Interval"},
						      {"timeout", "Timeout"},
						      {"start-period", "StartPeriod"},
						      {"start-interval", "StartInterval"}};
		for (size_t i = 0; i < ARRAY_SIZE(durs); i++) {
			const char *v = hutch_step_flag(st, durs[i][0]);
			int64_t ns;
			if (!v)
				continue;
			if (parse_duration(v, &ns) < 0) {
				json_object_put(h);
				hutch_fail(err, 0, "--%s '%s': give a duration like 30s",
					   durs[i][0], v);
				goto out;
			}
			json_object_object_add(h, durs[i][1], json_object_new_int64(ns));
		}
		const char *r = hutch_step_flag(st, "retries");
		if (r) {
			char *end;
			long n = strtol(r, &end, 10);
			if (!*r || *end || n < 0) {
				json_object_put(h);
				hutch_fail(err, 0, "--retries '%s': give a number", r);
				goto out;
			}
			json_object_object_add(h, "Retries", json_object_new_int64(n));
		}
		text = xasprintf("HEALTHCHECK %s",
				 json_object_to_json_string_ext(h, JSON_C_TO_STRING_PLAIN));
		json_object_object_add(c, "Healthcheck", h);
		ret = meta_step(b, s, text, NULL, cached, err);
		break;
	}
	case STEP_RUN: {
		struct run_arg r = {0};
		if (st->json) {
			for (size_t i = 0; i < st->n_argv; i++)
				strv_push(&r.argv, &r.n, xstrdup(st->argv[i]));
		} else {
			shell_form(s, st->args, &r.argv, &r.n);
		}
		const char *net = hutch_step_flag(st, "network");
		r.network = net && strcmp(net, "default") ? net
			    : b->o->network		  ? b->o->network
							  : "host";
		if (strcmp(r.network, "host") && strcmp(r.network, "none")) {
			strv_free(r.argv, r.n);
			hutch_fail(err, 0,
				   "--network '%s': hutch build runs RUN with 'host' or 'none'",
				   r.network);
			goto out;
		}
		_cleanup_free_ char *jt = json_text(r.argv, r.n);
		text = xasprintf("RUN %s", jt);
		/* what a RUN reads besides its layers: the build args it sees, its network */
		_cleanup_free_ char *inputs = xasprintf("network=%s", r.network);
		for (size_t i = 0; i < s->n_args; i++) {
			char *t = xasprintf("%s\n%s", inputs, s->args[i]);
			free(inputs);
			inputs = t;
		}
		ret = layer_step(b, s, st, text, inputs, cached, make_run, &r, err);
		strv_free(r.argv, r.n);
		break;
	}
	case STEP_COPY:
	case STEP_ADD: {
		if (st->json) {
			w = xcalloc(st->n_argv + 1, sizeof(char *));
			for (size_t i = 0; i < st->n_argv; i++)
				w[nw++] = xstrdup(st->argv[i]);
		} else if (hutch_build_expand(st->args, b->f->escape, env, ne, true, &w, &nw, err) <
			   0) {
			goto out;
		}
		if (nw < 2) {
			hutch_fail(err, 0, "%s needs a source and a destination",
				   hutch_step_name(st->kind));
			goto out;
		}
		struct copy_plan p = {0};
		if (plan_copy(b, s, st, w, nw, &p, err) < 0) {
			copy_plan_free(&p);
			goto out;
		}
		text = xstrdup(hutch_step_name(st->kind));
		for (size_t i = 0; i < st->n_flags; i++) {
			char *t =
			    xasprintf("%s --%s=%s", text, st->flags[i].name, st->flags[i].value);
			free(text);
			text = t;
		}
		for (size_t i = 0; i < nw; i++) {
			char *t = xasprintf("%s %s", text, w[i]);
			free(text);
			text = t;
		}
		ret = layer_step(b, s, st, text, p.inputs, cached, make_copy, &p, err);
		copy_plan_free(&p);
		break;
	}
	}
out:
	strv_free(w, nw);
	return ret;
}

/* ---- the whole build ---------------------------------------------------------------- */

static int load_ignore(struct builder *b, struct hutch_err **err)
{
	_cleanup_free_ char *p = xasprintf("%s/.dockerignore", b->context);
	_cleanup_free_ char *text = NULL;
	if (read_file_at_most(AT_FDCWD, p, 1 << 20, READ_TEXT | READ_REGULAR, &text, NULL, err) <
	    0) {
		if (errno == ENOENT) {
			hutch_err_free(err);
			return 0;
		}
		return -1;
	}
	hutch_ignore_parse(text, &b->ignore);
	return 0;
}

static int finish(struct builder *b, struct stage *s, struct hutch_build_result *res,
		  struct hutch_err **err)
{
	if (!s->n_layers)
		return hutch_fail(
		    err, 0, "the image has no layers (FROM scratch with no COPY, ADD or RUN)");
	json_object_object_add(s->cfg, "created", json_object_new_string(s->created));
	if (!json_object_object_get_ex(s->cfg, "architecture", NULL))
		json_object_object_add(s->cfg, "architecture", json_object_new_string("amd64"));
	if (!json_object_object_get_ex(s->cfg, "os", NULL))
		json_object_object_add(s->cfg, "os", json_object_new_string("linux"));
	const char *text = json_object_to_json_string_ext(
	    s->cfg, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (hutch_image_commit(b->store, text, b->o->tags, b->o->n_tags, res->id, err) < 0)
		return -1;
	return 0;
}

int hutch_build(const struct hutch_build_file *f, const struct hutch_build_opts *o,
		struct hutch_build_result *res, struct hutch_err **err)
{
	struct builder b = {.f = f, .o = o, .ctxfd = -1};
	*res = (struct hutch_build_result){0};
	int ret = -1;
	char real[PATH_MAX];
	if (!realpath(o->context, real))
		return hutch_fail_sys(err, "build context '%s'", o->context);
	struct stat cst;
	if (stat(real, &cst) < 0 || !S_ISDIR(cst.st_mode))
		return hutch_fail(err, ENOTDIR, "build context '%s' is not a directory",
				  o->context);
	b.ctxfd = open(real, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (b.ctxfd < 0)
		return hutch_fail_sys(err, "build context '%s'", o->context);
	b.context = xstrdup(real);
	b.args_used = xcalloc(o->n_build_args + 1, sizeof(bool));
	/* where the target stage ends; stages are counted by FROM */
	size_t end = f->n_steps, first_from = 0;
	while (first_from < f->n_steps && f->steps[first_from].kind != STEP_FROM)
		first_from++;
	if (o->target) {
		bool found = false;
		for (size_t i = first_from; i < f->n_steps && !found; i++) {
			if (f->steps[i].kind != STEP_FROM)
				continue;
			char **w = NULL;
			size_t nw = 0;
			if (hutch_build_expand(f->steps[i].args, f->escape, NULL, 0, true, &w, &nw,
					       NULL) == 0 &&
			    nw == 3 && !strcasecmp(w[2], o->target)) {
				found = true;
				end = i + 1;
				while (end < f->n_steps && f->steps[end].kind != STEP_FROM)
					end++;
			}
			strv_free(w, nw);
		}
		if (!found) {
			free(b.context);
			close(b.ctxfd);
			free(b.args_used);
			return hutch_fail(err, 0,
					  "--target %s: no stage of that name (FROM ... AS %s)",
					  o->target, o->target);
		}
	}
	b.n_total = end - first_from;
	/* ARGs before the first FROM: for FROM lines, and for ARGs of the same
	 * name declared without a value in a stage */
	for (size_t i = 0; i < first_from; i++) {
		char **w = NULL;
		size_t nw = 0;
		if (hutch_build_expand(f->steps[i].args, f->escape, b.meta_args, b.n_meta_args,
				       true, &w, &nw, err) < 0) {
			hutch_err_wrap(err, "%s:%d", o->file_name, f->steps[i].line);
			goto out_early;
		}
		for (size_t k = 0; k < nw; k++) {
			char *eq = strchr(w[k], '=');
			if (eq)
				*eq = '\0';
			bool given;
			const char *v = build_arg(&b, w[k], &given);
			if (given || eq)
				strv_push(&b.meta_args, &b.n_meta_args,
					  xasprintf("%s=%s", w[k], given ? v : eq + 1));
		}
		strv_free(w, nw);
	}
	if (hutch_store_open(o->data_root, o->rootless, HUTCH_STORE_WRITE, &b.store, err) < 0 ||
	    hutch_runtime_init(&b.rt, o->data_root, o->run_root, err) < 0)
		goto out_early;
	b.rt.rootless = o->rootless;
	b.rt.quiet = o->quiet;
	if (load_ignore(&b, err) < 0)
		goto out;
	struct stage *s = NULL;
	for (size_t i = first_from; i < end; i++) {
		const struct hutch_step *st = &f->steps[i];
		b.step_no = i - first_from + 1;
		_cleanup_free_ char *shown = shown_text(st->text);
		printf("STEP %zu/%zu: %s\n", b.step_no, b.n_total, shown);
		fflush(stdout);
		double t0 = now_s();
		bool cached = true;
		if (st->kind == STEP_FROM) {
			b.stages = xrealloc(b.stages, (b.n_stages + 1) * sizeof(*b.stages));
			s = &b.stages[b.n_stages++];
			*s = (struct stage){0};
			if (do_from(&b, s, st, err) < 0) {
				step_fail(&b, st, err);
				goto out;
			}
		} else if (do_step(&b, s, st, &cached, err) < 0) {
			step_fail(&b, st, err);
			goto out;
		}
		if (cached && st->kind != STEP_FROM)
			b.n_cached++;
		if (st->kind != STEP_FROM) {
			if (cached)
				printf("--> CACHED\n");
			else
				printf("--> %.2fs\n", now_s() - t0);
		}
		fflush(stdout);
	}
	if (finish(&b, s, res, err) < 0)
		goto out;
	res->n_steps = b.n_total;
	res->n_cached = b.n_cached;
	for (size_t i = 0; i < o->n_build_args; i++)
		if (!b.args_used[i] && !o->quiet) {
			_cleanup_free_ char *shown = shown_text(o->build_args[i]);
			fprintf(stderr,
				"hutch: warning: --build-arg %s: no ARG of that name in the stages "
				"built\n",
				shown);
		}
	ret = 0;
out:
	for (size_t i = 0; i < b.n_stages; i++)
		stage_free(&b.stages[i]);
	free(b.stages);
	/* the cache's size limit: least recently used entries beyond it go, once
	 * the stages let go of their layers (the result stays, named or not) */
	struct hutch_cache_prune pruned;
	if (ret == 0)
		hutch_build_cache_prune(b.store, false, hutch_build_cache_limit(), res->id, &pruned,
					NULL);
	hutch_runtime_fini(&b.rt);
	hutch_store_close(b.store);
out_early:
	hutch_ignore_free(&b.ignore);
	strv_free(b.meta_args, b.n_meta_args);
	free(b.args_used);
	free(b.context);
	close(b.ctxfd);
	return ret;
}
