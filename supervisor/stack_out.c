/* A stack written out as hutch understood it (`hutch stack config`, docs/compose.md):
 * a hutch.ini that loads back to the same model, or the model as JSON.
 *
 * Both are written from the model, not from the file read: a compose file
 * comes out with its override files merged, its variables interpolated, its
 * env files read and each key in the INI key it became. Container options are
 * written generically (their key and kind are in struct stack_option), so an
 * option key added to the reader is written without a change here.
 *
 * An INI value goes through three readers on its way back: the INI line
 * reader (quotes, ';' and '#', blanks at the ends, a trailing '\'), then
 * interpolation ('$' is written "$$"), then shell words for list keys. Each
 * value is quoted for all three, or refused with the reason when the INI
 * format cannot hold it (a line break, a line past the reader's length). */
#include <ctype.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "common/strbuf.h"
#include "common/util.h"
#include "supervisor/stack.h"

/* stackfile.c's INI_LINE_MAX: a (joined) line and its newline must fit in it. */
#define OUT_LINE_MAX 999

/* ---- durations ---------------------------------------------------------------- */

/* ns as Go writes a duration's parts, exactly: "1m30s", "1s500ms", "0s". */
static void duration_text(int64_t ns, char *buf, size_t len)
{
	static const struct {
		const char *unit;
		int64_t ns;
	} parts[] = {
	    {"h", 3600 * 1000000000LL},
	    {"m", 60 * 1000000000LL},
	    {"s", 1000000000LL},
	    {"ms", 1000000},
	    {"us", 1000},
	    {"ns", 1},
	};
	if (ns <= 0) {
		snprintf(buf, len, "0s");
		return;
	}
	size_t used = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(parts) && ns > 0; i++) {
		int64_t n = ns / parts[i].ns;
		if (n == 0)
			continue;
		ns -= n * parts[i].ns;
		used +=
		    (size_t)snprintf(buf + used, len - used, "%lld%s", (long long)n, parts[i].unit);
		if (used >= len)
			break;
	}
}

static const char *restart_text(const struct stack_service *svc, char *buf, size_t len)
{
	switch (svc->restart) {
	case STACK_RESTART_ALWAYS:
		return "always";
	case STACK_RESTART_UNLESS_STOPPED:
		return "unless-stopped";
	case STACK_RESTART_ON_FAILURE:
		if (!svc->restart_max)
			return "on-failure";
		snprintf(buf, len, "on-failure:%u", svc->restart_max);
		return buf;
	case STACK_RESTART_NO:
		break;
	}
	return "no";
}

static const char *const condition_names[] = {
    [STACK_DEP_STARTED] = "started",
    [STACK_DEP_HEALTHY] = "healthy",
    [STACK_DEP_COMPLETED] = "completed",
};

/* http://[HOST]:PORT/PATH as health_http reads it back; 127.0.0.1, the
 * default, is left out. */
static char *http_url(const struct stack_health *h)
{
	const char *host = h->http_host ? h->http_host : "127.0.0.1";
	bool v6 = strchr(host, ':') != NULL;
	return xasprintf("http://%s%s%s:%u%s", v6 ? "[" : "", strcmp(host, "127.0.0.1") ? host : "",
			 v6 ? "]" : "", h->port, h->http_path ? h->http_path : "/");
}

/* build's context as the file gave it: relative to the stack's directory
 * ("./api", "."), as the model's absolute path reads back from a hutch.ini
 * there; absolute when it is elsewhere. */
static char *build_context(const struct hutch_stack *stack, const struct stack_service *svc)
{
	const char *c = svc->build.context;
	size_t n = stack->dir ? strlen(stack->dir) : 0;
	if (!n || strncmp(c, stack->dir, n) || (c[n] != '/' && c[n]))
		return xstrdup(c);
	const char *rest = c + n;
	while (*rest == '/' || (rest[0] == '.' && (rest[1] == '/' || !rest[1])))
		rest++; /* "DIR/./api" as joined: "./api" */
	return *rest ? xasprintf("./%s", rest) : xstrdup(".");
}

/* ---- options, the same key given twice ---------------------------------------- */

/* The service's options one per key, in the order of each key's first: a
 * compose file may give a key twice (tmpfs from tmpfs: and from a volume of
 * type tmpfs), which the runtime applies in turn: the words of a list key
 * add up, a later text or flag wins. An INI file holds a key once. */
struct merged_option {
	const char *key;
	enum stack_option_kind kind;
	const char *text;
	bool flag;
	const char **words;
	size_t n_words;
};

static struct merged_option *merge_options(const struct stack_service *svc, size_t *n)
{
	struct merged_option *m = xcalloc(svc->n_options + 1, sizeof(*m));
	*n = 0;
	for (size_t i = 0; i < svc->n_options; i++) {
		const struct stack_option *o = &svc->options[i];
		struct merged_option *t = NULL;
		for (size_t j = 0; j < *n && !t; j++)
			if (!strcmp(m[j].key, o->key))
				t = &m[j];
		if (!t) {
			t = &m[(*n)++];
			t->key = o->key;
			t->kind = o->kind;
		}
		t->text = o->text;
		t->flag = o->flag;
		t->words = xrealloc(t->words, (t->n_words + o->n_words + 1) * sizeof(*t->words));
		for (size_t w = 0; w < o->n_words; w++)
			t->words[t->n_words++] = o->words[w];
	}
	return m;
}

static void merged_free(struct merged_option *m, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(m[i].words);
	free(m);
}

/* ---- INI ------------------------------------------------------------------------ */

struct ini_out {
	struct strbuf b;
	const struct hutch_stack *stack;
	const char *section; /* for messages: "services.db" */
	struct hutch_err **err;
	int failed;
};

static bool ini_blank(char c)
{
	return isspace((unsigned char)c);
}

/* Does text, as it stands on a line after "KEY = ", read back as it is? */
static bool ini_plain(const char *t)
{
	size_t n = strlen(t);
	return n > 0 && !ini_blank(t[0]) && !ini_blank(t[n - 1]) && t[0] != '"' && t[0] != '\'' &&
	       t[n - 1] != '\\' && !strpbrk(t, ";#");
}

/* text with '$' as "$$", then as the INI line reader gives it back: plain, in
 * double quotes or in single quotes (taken as they are, no escapes). NULL when
 * none of these reads back as text. */
static char *ini_encode(const char *text)
{
	struct strbuf t = {0};
	strbuf_add(&t, "", 0);
	for (const char *p = text; *p; p++)
		strbuf_adds(&t, *p == '$' ? "$$" : (char[]){*p, 0});
	if (ini_plain(t.s))
		return strbuf_steal(&t);
	const char *quote = !strchr(t.s, '"') ? "\"" : !strchr(t.s, '\'') ? "'" : NULL;
	if (!quote) {
		strbuf_fini(&t);
		return NULL;
	}
	char *r = xasprintf("%s%s%s", quote, t.s, quote);
	strbuf_fini(&t);
	return r;
}

static void ini_fail(struct ini_out *o, const char *key, const char *value, const char *why)
{
	if (o->failed++)
		return;
	_cleanup_free_ char *shown = printable(value, strlen(value));
	hutch_fail(o->err, 0,
		   "%s.%s: '%s': %s: a hutch.ini cannot hold it (--format json shows it)",
		   o->section, key, shown, why);
}

/* KEY = the value that reads back as text (the words of a list key, joined
 * by the caller, are text here). */
static void ini_line(struct ini_out *o, const char *key, const char *text)
{
	if (strpbrk(text, "\n\r")) {
		ini_fail(o, key, text, "it holds a line break");
		return;
	}
	_cleanup_free_ char *v = ini_encode(text);
	if (!v) {
		ini_fail(o, key, text,
			 "it holds both kinds of quote and a ';', a '#', a blank or a '\\' where "
			 "the INI reader needs quotes");
		return;
	}
	size_t len = strlen(key) + 3 + strlen(v);
	if (len > OUT_LINE_MAX) {
		_cleanup_free_ char *why = xasprintf(
		    "written out it is %zu bytes long, and an INI line holds %d (put long "
		    "lists of variables in an env_file)",
		    len, OUT_LINE_MAX);
		ini_fail(o, key, text, why);
		return;
	}
	strbuf_addf(&o->b, "%s = %s\n", key, v);
}

/* How words are quoted, tried in turn until the INI line reader takes the
 * text: quotes of our own read best, but add quote characters; backslashes
 * add none; $'...' with C escapes holds anything (line breaks, both quotes
 * and ';' or '#' at once) with no character the line reader minds. */
enum quoting { Q_QUOTES, Q_BACKSLASHES, Q_DOLLAR };

static void shell_quote(struct strbuf *b, const char *w, enum quoting q)
{
	static const char special[] = " \t\n\r\v\f'\"\\";
	if (!*w) {
		strbuf_adds(b, q == Q_BACKSLASHES ? "\"\"" : "''");
		return;
	}
	if (q == Q_DOLLAR) {
		bool plain = true;
		for (const char *p = w; *p && plain; p++)
			plain = (unsigned char)*p > ' ' && *p != 0x7f && !strchr("'\"\\;#", *p);
		if (plain) {
			strbuf_adds(b, w);
			return;
		}
		strbuf_adds(b, "$'");
		for (const char *p = w; *p; p++) {
			unsigned char c = (unsigned char)*p;
			if (c == '\n')
				strbuf_adds(b, "\\n");
			else if (c == '\t')
				strbuf_adds(b, "\\t");
			else if (c == '\\')
				strbuf_adds(b, "\\\\");
			else if (c < ' ' || c == 0x7f || strchr("'\";#", c))
				strbuf_addf(b, "\\x%02x", c);
			else
				strbuf_addc(b, (char)c);
		}
		strbuf_addc(b, '\'');
		return;
	}
	size_t plain = strcspn(w, special);
	if (q == Q_QUOTES && w[plain]) {
		/* a word in quotes as a whole reads best, but NAME= before them
		 * (env, labels) as a shell writes an assignment */
		const char *eq = strchr(w, '=');
		plain = eq && eq > w && (size_t)(eq - w) < plain ? (size_t)(eq - w) + 1 : 0;
	}
	/* a '$' right before a quote of ours would make it a $'...' quote */
	if (plain > 0 && w[plain] && w[plain - 1] == '$')
		plain--;
	strbuf_add(b, w, plain);
	const char *rest = w + plain;
	if (!*rest)
		return;
	if (q == Q_BACKSLASHES) {
		for (const char *p = rest; *p; p++) {
			if (strchr(special, *p))
				strbuf_addc(b, '\\');
			strbuf_addc(b, *p);
		}
	} else if (!strchr(rest, '\'')) {
		strbuf_addf(b, "'%s'", rest);
	} else {
		strbuf_addc(b, '"');
		for (const char *p = rest; *p; p++) {
			if (*p == '"' || *p == '\\')
				strbuf_addc(b, '\\');
			strbuf_addc(b, *p);
		}
		strbuf_addc(b, '"');
	}
}

static char *shell_join(const char *const *words, size_t n, enum quoting q)
{
	struct strbuf b = {0};
	strbuf_add(&b, "", 0);
	for (size_t i = 0; i < n; i++) {
		if (i)
			strbuf_addc(&b, ' ');
		shell_quote(&b, words[i], q);
	}
	return strbuf_steal(&b);
}

/* The words as text, in the first quoting the INI line reader takes. */
static char *words_text(const char *const *words, size_t n)
{
	for (enum quoting q = Q_QUOTES;; q++) {
		char *text = shell_join(words, n, q);
		_cleanup_free_ char *enc = strpbrk(text, "\n\r") ? NULL : ini_encode(text);
		if (enc || q == Q_DOLLAR)
			return text;
		free(text);
	}
}

/* KEY = words; an empty list as "" (entrypoint = "": none). */
static void ini_words(struct ini_out *o, const char *key, const char *const *words, size_t n)
{
	_cleanup_free_ char *text = words_text(words, n);
	ini_line(o, key, text);
}

/* Does KEY = the words fit on one INI line? */
static bool words_fit(const char *key, const char *const *words, size_t n)
{
	_cleanup_free_ char *text = words_text(words, n);
	_cleanup_free_ char *enc = ini_encode(text);
	return enc && strlen(key) + 3 + strlen(enc) <= OUT_LINE_MAX;
}

/* env, and its variables past one INI line in env.2, env.3, ... (as many
 * to a line as fit; a variable too long for a line of its own is refused
 * by ini_line, naming it). */
static void ini_env(struct ini_out *o, const char *const *vars, size_t n)
{
	char key[32] = "env";
	for (size_t start = 0, part = 1; start < n; part++) {
		if (part > 1)
			snprintf(key, sizeof(key), "env.%zu", part);
		size_t end = start + 1;
		while (end < n && words_fit(key, vars + start, end + 1 - start))
			end++;
		ini_words(o, key, vars + start, end - start);
		start = end;
	}
}

static void ini_duration(struct ini_out *o, const char *key, int64_t ns, int64_t dflt)
{
	if (ns == dflt)
		return;
	char buf[64];
	duration_text(ns, buf, sizeof(buf));
	ini_line(o, key, buf);
}

static void ini_service(struct ini_out *o, const struct stack_service *svc)
{
	_cleanup_free_ char *section = xasprintf("services.%s", svc->name);
	o->section = section;
	strbuf_addf(&o->b, "\n[service.%s]\n", svc->name);
	ini_line(o, "image", svc->image ? svc->image : "");
	if (svc->build.context) {
		_cleanup_free_ char *ctx = build_context(o->stack, svc);
		ini_line(o, "build", ctx);
		if (svc->build.dockerfile)
			ini_line(o, "dockerfile", svc->build.dockerfile);
		if (svc->build.target)
			ini_line(o, "target", svc->build.target);
		if (svc->build.n_args)
			ini_words(o, "build_args", (const char *const *)svc->build.args,
				  svc->build.n_args);
	}
	if (svc->command)
		ini_words(o, "command", (const char *const *)svc->command, svc->n_command);
	if (svc->has_entrypoint)
		ini_words(o, "entrypoint", (const char *const *)svc->entrypoint, svc->n_entrypoint);
	if (svc->n_env)
		ini_env(o, (const char *const *)svc->env, svc->n_env);
	const struct stack_health *h = &svc->health;
	char buf[64];
	if (h->kind == STACK_HEALTH_CMD)
		ini_words(o, "health_cmd", (const char *const *)h->cmd, h->n_cmd);
	if (h->kind == STACK_HEALTH_TCP) {
		snprintf(buf, sizeof(buf), "%u", h->port);
		ini_line(o, "health_tcp", buf);
	}
	if (h->kind == STACK_HEALTH_HTTP) {
		_cleanup_free_ char *url = http_url(h);
		ini_line(o, "health_http", url);
	}
	if (h->kind != STACK_HEALTH_NONE) {
		/* the defaults are left out: compose's, so a file says what it changed */
		ini_duration(o, "health_interval", h->interval_ns, 30 * 1000000000LL);
		ini_duration(o, "health_timeout", h->timeout_ns, 30 * 1000000000LL);
		ini_duration(o, "health_start_period", h->start_period_ns, 0);
		ini_duration(o, "health_start_interval", h->start_interval_ns, 5 * 1000000000LL);
		if (h->retries != 3) {
			snprintf(buf, sizeof(buf), "%u", h->retries);
			ini_line(o, "health_retries", buf);
		}
	}
	if (svc->restart != STACK_RESTART_NO)
		ini_line(o, "restart", restart_text(svc, buf, sizeof(buf)));
	ini_duration(o, "stop_grace_period", svc->stop_grace_ns, 10 * 1000000000LL);
	if (svc->n_deps) {
		const char **words = xcalloc(svc->n_deps, sizeof(*words));
		for (size_t d = 0; d < svc->n_deps; d++)
			words[d] = xasprintf("%s:%s%s", svc->deps[d].service,
					     condition_names[svc->deps[d].condition],
					     svc->deps[d].restart ? ":restart" : "");
		ini_words(o, "depends_on", words, svc->n_deps);
		for (size_t d = 0; d < svc->n_deps; d++)
			free((char *)words[d]);
		free(words);
	}
	if (svc->replicas != 1) {
		snprintf(buf, sizeof(buf), "%u", svc->replicas);
		ini_line(o, "replicas", buf);
	}
	if (svc->notify)
		ini_line(o, "notify", "true");
	size_t n = 0;
	struct merged_option *m = merge_options(svc, &n);
	for (size_t i = 0; i < n; i++) {
		if (m[i].kind == STACK_OPT_LIST)
			ini_words(o, m[i].key, m[i].words, m[i].n_words);
		else if (m[i].kind == STACK_OPT_FLAG)
			ini_line(o, m[i].key, m[i].flag ? "true" : "false");
		else
			ini_line(o, m[i].key, m[i].text ? m[i].text : "");
	}
	merged_free(m, n);
}

static int write_ini(const struct hutch_stack *stack, char **out, char ***notes, size_t *n_notes,
		     struct hutch_err **err)
{
	/* every key of the model has its INI key now: no notes to give (the
	 * caller's are kept for the next one that has none) */
	(void)notes;
	(void)n_notes;
	struct ini_out o = {.stack = stack, .err = err, .section = "stack"};
	strbuf_adds(&o.b, "; the stack as hutch read it (hutch stack config)\n");
	strbuf_adds(&o.b, "[stack]\n");
	ini_line(&o, "name", stack->name);
	if (stack->subnet)
		ini_line(&o, "subnet", stack->subnet);
	if (stack->n_dns_upstream)
		ini_words(&o, "dns_upstream", (const char *const *)stack->dns_upstream,
			  stack->n_dns_upstream);
	for (size_t i = 0; i < stack->n_networks; i++) {
		const struct stack_network *net = &stack->networks[i];
		strbuf_addf(&o.b, "\n[network.%s]\n", net->name);
		o.section = "network";
		if (net->internal)
			ini_line(&o, "internal", "true");
		if (net->subnet)
			ini_line(&o, "subnet", net->subnet);
		if (net->subnet6)
			ini_line(&o, "subnet6", net->subnet6);
		else if (net->ipv6)
			ini_line(&o, "ipv6", "true");
	}
	for (size_t i = 0; i < stack->n_services; i++)
		ini_service(&o, &stack->services[i]);
	if (o.failed) {
		strbuf_fini(&o.b);
		return -1;
	}
	*out = strbuf_steal(&o.b);
	return 0;
}

/* ---- JSON --------------------------------------------------------------------- */

static struct json_object *jstr(const char *s)
{
	return json_object_new_string(s ? s : "");
}

static struct json_object *jwords(const char *const *w, size_t n)
{
	struct json_object *a = json_object_new_array();
	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, jstr(w[i]));
	return a;
}

static struct json_object *jduration(int64_t ns)
{
	char buf[64];
	duration_text(ns, buf, sizeof(buf));
	return jstr(buf);
}

static struct json_object *json_health(const struct stack_health *h)
{
	if (h->kind == STACK_HEALTH_NONE)
		return NULL;
	struct json_object *j = json_object_new_object();
	if (h->kind == STACK_HEALTH_CMD) {
		json_object_object_add(j, "type", jstr("cmd"));
		json_object_object_add(j, "test", jwords((const char *const *)h->cmd, h->n_cmd));
	} else if (h->kind == STACK_HEALTH_TCP) {
		json_object_object_add(j, "type", jstr("tcp"));
		json_object_object_add(j, "port", json_object_new_int(h->port));
	} else {
		json_object_object_add(j, "type", jstr("http"));
		_cleanup_free_ char *url = http_url(h);
		json_object_object_add(j, "url", jstr(url));
	}
	json_object_object_add(j, "interval", jduration(h->interval_ns));
	json_object_object_add(j, "timeout", jduration(h->timeout_ns));
	json_object_object_add(j, "retries", json_object_new_int64(h->retries));
	json_object_object_add(j, "start_period", jduration(h->start_period_ns));
	json_object_object_add(j, "start_interval", jduration(h->start_interval_ns));
	return j;
}

static struct json_object *json_build(const struct hutch_stack *stack,
				      const struct stack_service *svc)
{
	if (!svc->build.context)
		return NULL;
	struct json_object *j = json_object_new_object();
	_cleanup_free_ char *ctx = build_context(stack, svc);
	json_object_object_add(j, "context", jstr(ctx));
	json_object_object_add(j, "dockerfile",
			       svc->build.dockerfile ? jstr(svc->build.dockerfile) : NULL);
	json_object_object_add(j, "target", svc->build.target ? jstr(svc->build.target) : NULL);
	json_object_object_add(j, "args",
			       jwords((const char *const *)svc->build.args, svc->build.n_args));
	return j;
}

static struct json_object *json_service(const struct hutch_stack *stack,
					const struct stack_service *svc)
{
	struct json_object *j = json_object_new_object();
	char buf[64];
	json_object_object_add(j, "image", jstr(svc->image));
	json_object_object_add(j, "build", json_build(stack, svc));
	json_object_object_add(
	    j, "command",
	    svc->command ? jwords((const char *const *)svc->command, svc->n_command) : NULL);
	json_object_object_add(j, "entrypoint",
			       svc->has_entrypoint
				   ? jwords((const char *const *)svc->entrypoint, svc->n_entrypoint)
				   : NULL);
	struct json_object *env = json_object_new_object();
	for (size_t i = 0; i < svc->n_env; i++) {
		const char *eq = strchr(svc->env[i], '=');
		_cleanup_free_ char *name =
		    eq ? xasprintf("%.*s", (int)(eq - svc->env[i]), svc->env[i])
		       : xstrdup(svc->env[i]);
		json_object_object_add(env, name, jstr(eq ? eq + 1 : ""));
	}
	json_object_object_add(j, "environment", env);
	json_object_object_add(j, "healthcheck", json_health(&svc->health));
	json_object_object_add(j, "restart", jstr(restart_text(svc, buf, sizeof(buf))));
	json_object_object_add(j, "stop_grace_period", jduration(svc->stop_grace_ns));
	struct json_object *deps = json_object_new_object();
	for (size_t d = 0; d < svc->n_deps; d++) {
		struct json_object *dep = json_object_new_object();
		json_object_object_add(dep, "condition",
				       jstr(condition_names[svc->deps[d].condition]));
		json_object_object_add(dep, "restart",
				       json_object_new_boolean(svc->deps[d].restart));
		json_object_object_add(deps, svc->deps[d].service, dep);
	}
	json_object_object_add(j, "depends_on", deps);
	json_object_object_add(j, "replicas", json_object_new_int64(svc->replicas));
	json_object_object_add(j, "notify", json_object_new_boolean(svc->notify));
	struct json_object *opts = json_object_new_object();
	size_t n = 0;
	struct merged_option *m = merge_options(svc, &n);
	for (size_t i = 0; i < n; i++) {
		struct json_object *v =
		    m[i].kind == STACK_OPT_LIST	  ? jwords(m[i].words, m[i].n_words)
		    : m[i].kind == STACK_OPT_FLAG ? json_object_new_boolean(m[i].flag)
						  : jstr(m[i].text);
		json_object_object_add(opts, m[i].key, v);
	}
	merged_free(m, n);
	json_object_object_add(j, "options", opts);
	return j;
}

static int write_json(const struct hutch_stack *stack, char **out)
{
	struct json_object *root = json_object_new_object();
	json_object_object_add(root, "name", jstr(stack->name));
	struct json_object *svcs = json_object_new_object();
	for (size_t i = 0; i < stack->n_services; i++)
		json_object_object_add(svcs, stack->services[i].name,
				       json_service(stack, &stack->services[i]));
	json_object_object_add(root, "services", svcs);
	struct json_object *order = json_object_new_array();
	for (size_t i = 0; stack->order && i < stack->n_services; i++)
		json_object_array_add(order, jstr(stack->services[stack->order[i]].name));
	json_object_object_add(root, "start_order", order);
	struct json_object *nets = json_object_new_object();
	for (size_t i = 0; i < stack->n_networks; i++) {
		struct json_object *n = json_object_new_object();
		json_object_object_add(n, "internal",
				       json_object_new_boolean(stack->networks[i].internal));
		json_object_object_add(n, "subnet", stack->networks[i].subnet
							? jstr(stack->networks[i].subnet)
							: NULL);
		json_object_object_add(n, "ipv6", json_object_new_boolean(stack->networks[i].ipv6));
		json_object_object_add(n, "subnet6",
				       stack->networks[i].subnet6 ? jstr(stack->networks[i].subnet6)
								  : NULL);
		json_object_object_add(nets, stack->networks[i].name, n);
	}
	json_object_object_add(root, "networks", nets);
	json_object_object_add(root, "subnet", stack->subnet ? jstr(stack->subnet) : NULL);
	json_object_object_add(root, "dns_upstream",
			       jwords((const char *const *)stack->dns_upstream,
				      stack->n_dns_upstream));
	struct json_object *vols = json_object_new_array();
	for (size_t i = 0; i < stack->n_volumes; i++)
		json_object_array_add(vols, jstr(stack->volumes[i].name));
	json_object_object_add(root, "volumes", vols);
	const char *text =
	    json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
						     JSON_C_TO_STRING_NOSLASHESCAPE);
	*out = xasprintf("%s\n", text);
	json_object_put(root);
	return 0;
}

int hutch_stack_write(const struct hutch_stack *stack, enum hutch_stack_format format, char **out,
		      char ***notes, size_t *n_notes, struct hutch_err **err)
{
	*out = NULL;
	if (notes) {
		*notes = NULL;
		*n_notes = 0;
	}
	if (format == HUTCH_STACK_JSON)
		return write_json(stack, out);
	return write_ini(stack, out, notes, n_notes, err);
}
