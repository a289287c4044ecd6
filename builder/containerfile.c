/* Containerfile (Dockerfile) syntax into a chain of steps, variables and
 * .dockerignore patterns. Pure text processing: fuzzed (tests/fuzz/
 * fuzz_containerfile.c) and unit-tested (tests/unit/test_build.c). */
#include <ctype.h>
#include <errno.h>
#include <json-c/json.h>
#include <string.h>
#include <strings.h>

#include "builder/builder.h"
#include "common/sha256.h"
#include "common/strbuf.h"
#include "common/util.h"

static const struct {
	const char *name;
	enum hutch_step_kind kind;
	const char *flags; /* the flags it takes, space-separated and surrounded */
	bool json_form;	   /* takes the JSON (exec) form */
} instructions[] = {
    {"FROM", STEP_FROM, " ", false},
    {"RUN", STEP_RUN, " network ", true},
    {"COPY", STEP_COPY, " from chown chmod link ", true},
    {"ADD", STEP_ADD, " chown chmod link ", true},
    {"ENV", STEP_ENV, " ", false},
    {"ARG", STEP_ARG, " ", false},
    {"WORKDIR", STEP_WORKDIR, " ", false},
    {"USER", STEP_USER, " ", false},
    {"LABEL", STEP_LABEL, " ", false},
    {"EXPOSE", STEP_EXPOSE, " ", false},
    {"VOLUME", STEP_VOLUME, " ", true},
    {"ENTRYPOINT", STEP_ENTRYPOINT, " ", true},
    {"CMD", STEP_CMD, " ", true},
    {"HEALTHCHECK", STEP_HEALTHCHECK, " interval timeout start-period start-interval retries ",
     false},
    {"STOPSIGNAL", STEP_STOPSIGNAL, " ", false},
    {"SHELL", STEP_SHELL, " ", true},
    {"MAINTAINER", STEP_MAINTAINER, " ", false},
};

const char *hutch_step_name(enum hutch_step_kind k)
{
	for (size_t i = 0; i < ARRAY_SIZE(instructions); i++)
		if (instructions[i].kind == k)
			return instructions[i].name;
	return "?";
}

const char *hutch_step_flag(const struct hutch_step *s, const char *name)
{
	for (size_t i = 0; i < s->n_flags; i++)
		if (!strcmp(s->flags[i].name, name))
			return s->flags[i].value;
	return NULL;
}

static void step_free(struct hutch_step *s)
{
	free(s->text);
	free(s->args);
	for (size_t i = 0; i < s->n_argv; i++)
		free(s->argv[i]);
	free(s->argv);
	for (size_t i = 0; i < s->n_flags; i++) {
		free(s->flags[i].name);
		free(s->flags[i].value);
	}
	free(s->flags);
	for (size_t i = 0; i < s->n_heredocs; i++)
		free(s->heredocs[i]);
	free(s->heredocs);
}

void hutch_build_file_free(struct hutch_build_file *f)
{
	for (size_t i = 0; i < f->n_steps; i++)
		step_free(&f->steps[i]);
	free(f->steps);
	*f = (struct hutch_build_file){0};
}

/* ---- lines ------------------------------------------------------------------------ */

struct lines {
	const char *p, *end;
	int line; /* of the line next() returns */
};

/* The next physical line (without its '\n'), or NULL at the end. */
static const char *next_line(struct lines *L, size_t *len)
{
	if (L->p >= L->end)
		return NULL;
	const char *start = L->p;
	const char *nl = memchr(start, '\n', (size_t)(L->end - start));
	*len = nl ? (size_t)(nl - start) : (size_t)(L->end - start);
	L->p = nl ? nl + 1 : L->end;
	if (*len && start[*len - 1] == '\r')
		(*len)--;
	L->line++;
	return start;
}

static bool blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isspace((unsigned char)s[i]))
			return false;
	return true;
}

static bool comment(const char *s, size_t n)
{
	size_t i = 0;
	while (i < n && isspace((unsigned char)s[i]))
		i++;
	return i < n && s[i] == '#';
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

/* "# escape=`" and friends, only before anything else. 1: a directive. */
static int directive(const char *s, size_t n, char *escape, int line, const char *name,
		     struct hutch_err **err)
{
	_cleanup_free_ char *copy = strndup(s, n);
	char *p = trim(copy);
	if (*p != '#')
		return 0;
	p = trim(p + 1);
	char *eq = strchr(p, '=');
	if (!eq)
		return 0;
	*eq = '\0';
	char *key = trim(p), *value = trim(eq + 1);
	for (char *k = key; *k; k++)
		if (!isalpha((unsigned char)*k))
			return 0;
	if (!strcasecmp(key, "escape")) {
		if (strcmp(value, "\\") && strcmp(value, "`")) {
			_cleanup_free_ char *shown = printable(value, strlen(value));
			return hutch_fail(err, 0,
					  "%s:%d: invalid escape directive '%s': it can be '\\' "
					  "or '`'",
					  name, line, shown);
		}
		*escape = *value;
	}
	/* syntax=, check=: nothing for hutch to do */
	return 1;
}

/* Does the (trimmed-right) line end with the escape character? */
static bool continues(const char *s, size_t n, char escape)
{
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	return n && s[n - 1] == escape;
}

/* ---- heredocs -------------------------------------------------------------------------- */

struct heredoc_mark {
	char *word;
	bool strip_tabs;
};

/* The "<<WORD", "<<-WORD", "<<'WORD'" markers of a line, outside quotes. */
static size_t find_heredocs(const char *s, struct heredoc_mark *out, size_t max)
{
	size_t n = 0;
	char quote = 0;
	for (const char *p = s; *p && n < max; p++) {
		if (quote) {
			if (*p == quote)
				quote = 0;
			continue;
		}
		if (*p == '"' || *p == '\'') {
			quote = *p;
			continue;
		}
		if (p[0] != '<' || p[1] != '<' || p[2] == '<')
			continue;
		const char *q = p + 2;
		bool strip = false;
		if (*q == '-')
			strip = true, q++;
		char qc = 0;
		if (*q == '"' || *q == '\'')
			qc = *q++;
		const char *w = q;
		while (isalnum((unsigned char)*q) || *q == '_')
			q++;
		if (q == w || isdigit((unsigned char)*w))
			continue;
		if (qc && *q != qc)
			continue;
		out[n].word = strndup(w, (size_t)(q - w));
		out[n].strip_tabs = strip;
		n++;
		p = qc ? q : q - 1;
	}
	return n;
}

/* ---- instructions ----------------------------------------------------------------------- */

static int parse_json_array(const char *s, char ***argv, size_t *n)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *j = json_tokener_parse_ex(tok, s, (int)strlen(s));
	bool whole = j && json_tokener_get_error(tok) == json_tokener_success &&
		     (size_t)json_tokener_get_parse_end(tok) == strlen(s);
	json_tokener_free(tok);
	if (!whole || !json_object_is_type(j, json_type_array)) {
		json_object_put(j);
		return -1;
	}
	size_t len = json_object_array_length(j);
	char **v = xcalloc(len + 1, sizeof(char *));
	for (size_t i = 0; i < len; i++) {
		struct json_object *e = json_object_array_get_idx(j, i);
		if (!json_object_is_type(e, json_type_string) ||
		    strlen(json_object_get_string(e)) != (size_t)json_object_get_string_len(e)) {
			for (size_t k = 0; k < i; k++)
				free(v[k]);
			free(v);
			json_object_put(j);
			return -1;
		}
		v[i] = xstrdup(json_object_get_string(e));
	}
	json_object_put(j);
	*argv = v;
	*n = len;
	return 0;
}

static int bad(struct hutch_err **err, const char *name, int line, const char *fmt, const char *a,
	       const char *b)
{
	_cleanup_free_ char *sa = a ? printable(a, strlen(a)) : NULL;
	_cleanup_free_ char *sb = b ? printable(b, strlen(b)) : NULL;
	_cleanup_free_ char *msg = xasprintf(fmt, sa ? sa : "", sb ? sb : "");
	return hutch_fail(err, 0, "%s:%d: %s", name, line, msg);
}

static int parse_instruction(struct hutch_step *st, char *lineText, const char *name, int line,
			     struct hutch_err **err)
{
	char *p = trim(lineText);
	char *sp = p;
	while (*sp && !isspace((unsigned char)*sp))
		sp++;
	_cleanup_free_ char *word = strndup(p, (size_t)(sp - p));
	size_t k = 0;
	while (k < ARRAY_SIZE(instructions) && strcasecmp(instructions[k].name, word))
		k++;
	if (k == ARRAY_SIZE(instructions)) {
		if (!strcasecmp(word, "ONBUILD"))
			return bad(err, name, line,
				   "ONBUILD is not supported by hutch build: remove it (its "
				   "instructions would only run in images built FROM this one)%s%s",
				   NULL, NULL);
		return bad(err, name, line, "unknown instruction '%s'%s", word, NULL);
	}
	st->kind = instructions[k].kind;
	st->line = line;
	st->text = xstrdup(p);
	char *rest = trim(sp);
	/* --flag=value ... */
	while (rest[0] == '-' && rest[1] == '-') {
		char *end = rest;
		while (*end && !isspace((unsigned char)*end))
			end++;
		_cleanup_free_ char *tok = strndup(rest + 2, (size_t)(end - rest - 2));
		char *eq = strchr(tok, '=');
		if (eq)
			*eq = '\0';
		_cleanup_free_ char *pat = xasprintf(" %s ", tok);
		if (!*tok || !strstr(instructions[k].flags, pat)) {
			_cleanup_free_ char *t = xasprintf("--%s", tok);
			return bad(err, name, line, "%s does not take the flag '%s'",
				   instructions[k].name, t);
		}
		st->flags = xrealloc(st->flags, (st->n_flags + 1) * sizeof(*st->flags));
		st->flags[st->n_flags++] =
		    (struct hutch_step_flag){xstrdup(tok), xstrdup(eq ? eq + 1 : "true")};
		rest = trim(end);
	}
	if (st->kind == STEP_HEALTHCHECK) {
		if (!strncasecmp(rest, "NONE", 4) &&
		    (!rest[4] || isspace((unsigned char)rest[4]))) {
			if (*trim(rest + 4))
				return bad(err, name, line,
					   "HEALTHCHECK NONE takes nothing after it%s%s", NULL,
					   NULL);
			st->args = xstrdup("NONE");
			return 0;
		}
		if (strncasecmp(rest, "CMD", 3) || !isspace((unsigned char)rest[3]))
			return bad(err, name, line,
				   "HEALTHCHECK needs NONE or CMD followed by a command%s%s", NULL,
				   NULL);
		rest = trim(rest + 3);
		if (rest[0] == '[' && parse_json_array(rest, &st->argv, &st->n_argv) == 0)
			st->json = true;
		st->args = xstrdup(rest);
		if (!*rest)
			return bad(err, name, line, "HEALTHCHECK CMD needs a command%s%s", NULL,
				   NULL);
		return 0;
	}
	st->args = xstrdup(rest);
	if (instructions[k].json_form && rest[0] == '[' &&
	    parse_json_array(rest, &st->argv, &st->n_argv) == 0)
		st->json = true;
	if (st->kind == STEP_SHELL && (!st->json || st->n_argv == 0))
		return bad(err, name, line,
			   "SHELL needs a JSON array of strings, like [\"/bin/sh\", \"-c\"]%s%s",
			   NULL, NULL);
	bool empty_ok = st->kind == STEP_CMD || st->kind == STEP_ENTRYPOINT;
	if (!*rest && !empty_ok)
		return bad(err, name, line, "%s needs arguments", instructions[k].name, NULL);
	if ((st->kind == STEP_COPY || st->kind == STEP_ADD) && !st->json) {
		/* at least a source and a destination */
		const char *q = rest;
		while (*q && !isspace((unsigned char)*q))
			q++;
		if (!*trim((char *)q) && !strstr(rest, "<<"))
			return bad(err, name, line,
				   "%s needs a source and a destination, like %s src /dest",
				   instructions[k].name, instructions[k].name);
	}
	if ((st->kind == STEP_COPY || st->kind == STEP_ADD) && st->json && st->n_argv < 2)
		return bad(err, name, line, "%s needs a source and a destination%s",
			   instructions[k].name, NULL);
	return 0;
}

int hutch_containerfile_parse(const char *text, size_t len, const char *name,
			      struct hutch_build_file *out, struct hutch_err **err)
{
	*out = (struct hutch_build_file){.escape = '\\'};
	if (memchr(text, '\0', len))
		return hutch_fail(err, 0, "%s: holds a NUL byte: not a text file", name);
	struct lines L = {.p = text, .end = text + len};
	size_t n;
	const char *s;
	bool directives = true;
	/* leading UTF-8 byte order mark */
	if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3))
		L.p += 3;
	while ((s = next_line(&L, &n))) {
		if (directives) {
			int d = directive(s, n, &out->escape, L.line, name, err);
			if (d < 0)
				goto fail;
			if (d)
				continue;
			directives = false;
		}
		if (blank(s, n) || comment(s, n))
			continue;
		int first = L.line;
		/* the logical line */
		char *buf = NULL;
		size_t blen = 0;
		for (;;) {
			bool more = continues(s, n, out->escape);
			size_t take = n;
			if (more) {
				while (take && isspace((unsigned char)s[take - 1]))
					take--;
				take--; /* the escape character */
			}
			buf = xrealloc(buf, blen + take + 1);
			memcpy(buf + blen, s, take);
			blen += take;
			buf[blen] = '\0';
			if (!more)
				break;
			/* comment and blank lines inside a continuation are skipped */
			do {
				s = next_line(&L, &n);
			} while (s && (comment(s, n) || blank(s, n)));
			if (!s)
				break;
		}
		out->steps = xrealloc(out->steps, (out->n_steps + 1) * sizeof(*out->steps));
		struct hutch_step *st = &out->steps[out->n_steps++];
		*st = (struct hutch_step){0};
		int r = parse_instruction(st, buf, name, first, err);
		if (r < 0) {
			free(buf);
			goto fail;
		}
		struct heredoc_mark marks[8];
		size_t n_marks =
		    (st->kind == STEP_RUN || st->kind == STEP_COPY || st->kind == STEP_ADD) &&
			    !st->json
			? find_heredocs(st->args, marks, ARRAY_SIZE(marks))
			: 0;
		free(buf);
		if (n_marks && st->kind != STEP_RUN) {
			for (size_t i = 0; i < n_marks; i++)
				free(marks[i].word);
			hutch_fail(err, 0,
				   "%s:%d: %s with a heredoc is not supported by hutch build: put "
				   "the file in the build context and copy it",
				   name, first, hutch_step_name(st->kind));
			goto fail;
		}
		/* each marker's body follows, up to its word alone on a line */
		_cleanup_free_ char *script = n_marks ? xstrdup(st->args) : NULL;
		for (size_t i = 0; i < n_marks; i++) {
			struct strbuf body = {0};
			strbuf_add(&body, "", 0);
			bool closed = false;
			while ((s = next_line(&L, &n))) {
				const char *l = s;
				size_t ln = n;
				if (marks[i].strip_tabs)
					while (ln && *l == '\t')
						l++, ln--;
				if (ln == strlen(marks[i].word) && !memcmp(l, marks[i].word, ln)) {
					closed = true;
					break;
				}
				strbuf_add(&body, l, ln);
				strbuf_add(&body, "\n", 1);
			}
			char *ns = xasprintf("%s\n%s%s", script, body.s, marks[i].word);
			free(script);
			script = ns;
			st->heredocs =
			    xrealloc(st->heredocs, (st->n_heredocs + 1) * sizeof(char *));
			st->heredocs[st->n_heredocs++] = body.s;
			if (!closed) {
				hutch_fail(err, 0,
					   "%s:%d: the heredoc '%s' is never closed (a line with "
					   "just %s ends it)",
					   name, first, marks[i].word, marks[i].word);
				for (size_t k = i; k < n_marks; k++)
					free(marks[k].word);
				goto fail;
			}
			free(marks[i].word);
		}
		if (n_marks) {
			/* "RUN <<EOF" alone: the body is the script; else the shell
			 * gets the line with its heredocs, as it would from a file */
			_cleanup_free_ char *args = xstrdup(st->args);
			char *a = trim(args);
			st->heredoc_only =
			    n_marks == 1 && a[0] == '<' && a[1] == '<' && !strpbrk(a, " \t|;&>");
			free(st->args);
			st->args = st->heredoc_only ? xstrdup(st->heredocs[0]) : steal_ptr(script);
		}
	}
	if (out->n_steps == 0) {
		hutch_fail(err, 0, "%s: no instructions: a Containerfile starts with FROM", name);
		goto fail;
	}
	/* only ARG may come before the first FROM */
	for (size_t i = 0; i < out->n_steps; i++) {
		if (out->steps[i].kind == STEP_FROM)
			break;
		if (out->steps[i].kind != STEP_ARG) {
			hutch_fail(err, 0,
				   "%s:%d: %s before the first FROM: only ARG may come first", name,
				   out->steps[i].line, hutch_step_name(out->steps[i].kind));
			goto fail;
		}
		if (i + 1 == out->n_steps) {
			hutch_fail(
			    err, 0,
			    "%s: no FROM: every build starts from an image (or FROM scratch)",
			    name);
			goto fail;
		}
	}
	return 0;
fail:
	hutch_build_file_free(out);
	return -1;
}

/* ---- variables ------------------------------------------------------------------------ */

static const char *env_get(char *const *env, size_t n, const char *key, size_t klen)
{
	/* the last one wins: later definitions are appended */
	for (size_t i = n; i-- > 0;)
		if (!strncmp(env[i], key, klen) && env[i][klen] == '=')
			return env[i] + klen + 1;
	return NULL;
}

static int expand_into(const char **pp, char escape, char *const *env, size_t n_env,
		       struct strbuf *b, int depth, struct hutch_err **err);

/* At '$': the variable's value appended; *pp moved past it. */
static int expand_var(const char **pp, char escape, char *const *env, size_t n_env,
		      struct strbuf *b, int depth, struct hutch_err **err)
{
	const char *p = *pp + 1;
	if (*p != '{') {
		const char *k = p;
		while (isalnum((unsigned char)*p) || *p == '_')
			p++;
		if (p == k) {
			strbuf_add(b, "$", 1);
			*pp = p;
			return 0;
		}
		const char *v = env_get(env, n_env, k, (size_t)(p - k));
		if (v)
			strbuf_add(b, v, strlen(v));
		*pp = p;
		return 0;
	}
	p++;
	const char *k = p;
	while (isalnum((unsigned char)*p) || *p == '_')
		p++;
	size_t klen = (size_t)(p - k);
	if (!klen)
		return hutch_fail(err, 0, "bad substitution: '${' without a variable name");
	const char *v = env_get(env, n_env, k, klen);
	if (*p == '}') {
		if (v)
			strbuf_add(b, v, strlen(v));
		*pp = p + 1;
		return 0;
	}
	bool colon = *p == ':';
	if (colon)
		p++;
	char op = *p;
	if (op != '-' && op != '+')
		return hutch_fail(err, 0, "bad substitution: unsupported modifier in '${%.*s'",
				  (int)klen, k);
	p++;
	struct strbuf word = {0};
	strbuf_add(&word, "", 0);
	if (expand_into(&p, escape, env, n_env, &word, depth + 1, err) < 0) {
		free(word.s);
		return -1;
	}
	if (*p != '}') {
		free(word.s);
		return hutch_fail(err, 0, "bad substitution: '${%.*s' is never closed", (int)klen,
				  k);
	}
	bool set = v && (!colon || *v);
	const char *use = op == '-' ? (set ? v : word.s) : (set ? word.s : "");
	strbuf_add(b, use, strlen(use));
	free(word.s);
	*pp = p + 1;
	return 0;
}

/* The word of a ${VAR:-word}: up to the matching '}'. */
static int expand_into(const char **pp, char escape, char *const *env, size_t n_env,
		       struct strbuf *b, int depth, struct hutch_err **err)
{
	if (depth > 16)
		return hutch_fail(err, 0, "bad substitution: nested too deep");
	const char *p = *pp;
	while (*p && *p != '}') {
		if (*p == escape && p[1]) {
			strbuf_add(b, p + 1, 1);
			p += 2;
		} else if (*p == '$') {
			if (expand_var(&p, escape, env, n_env, b, depth, err) < 0)
				return -1;
		} else {
			strbuf_add(b, p++, 1);
		}
	}
	*pp = p;
	return 0;
}

int hutch_build_expand(const char *s, char escape, char *const *env, size_t n_env, bool split,
		       char ***words, size_t *n_words, struct hutch_err **err)
{
	*words = NULL;
	*n_words = 0;
	struct strbuf cur = {0};
	bool have = false;
	char quote = 0;
	const char *p = s;
	if (!split) {
		while (isspace((unsigned char)*p))
			p++;
	}
	while (*p) {
		char c = *p;
		if (quote == '\'') {
			if (c == '\'')
				quote = 0;
			else
				strbuf_add(&cur, p, 1);
			p++;
			continue;
		}
		if (c == escape && p[1]) {
			/* in double quotes only $, " and the escape itself are special */
			if (quote == '"' && p[1] != '$' && p[1] != '"' && p[1] != escape)
				strbuf_add(&cur, p, 1);
			strbuf_add(&cur, p + 1, 1);
			p += 2;
			have = true;
			continue;
		}
		if (c == '$') {
			if (expand_var(&p, escape, env, n_env, &cur, 0, err) < 0) {
				free(cur.s);
				goto fail;
			}
			have = true;
			continue;
		}
		if (!quote && (c == '"' || c == '\'')) {
			quote = c;
			have = true;
			p++;
			continue;
		}
		if (quote == '"' && c == '"') {
			quote = 0;
			p++;
			continue;
		}
		if (split && !quote && isspace((unsigned char)c)) {
			if (have) {
				*words = xrealloc(*words, (*n_words + 1) * sizeof(char *));
				(*words)[(*n_words)++] = cur.s ? cur.s : xstrdup("");
				cur = (struct strbuf){0};
				have = false;
			}
			p++;
			continue;
		}
		strbuf_add(&cur, p++, 1);
		have = true;
	}
	if (quote) {
		free(cur.s);
		_cleanup_free_ char *shown = printable(s, strlen(s));
		hutch_fail(err, 0, "unmatched quote (%c) in '%s'", quote, shown);
		goto fail;
	}
	if (have || !split) {
		if (!split && cur.s) { /* trailing blanks are not part of the word */
			while (cur.len && isspace((unsigned char)cur.s[cur.len - 1]))
				cur.s[--cur.len] = '\0';
		}
		*words = xrealloc(*words, (*n_words + 1) * sizeof(char *));
		(*words)[(*n_words)++] = cur.s ? cur.s : xstrdup("");
	}
	return 0;
fail:
	for (size_t i = 0; i < *n_words; i++)
		free((*words)[i]);
	free(*words);
	*words = NULL;
	*n_words = 0;
	return -1;
}

/* ---- .dockerignore ---------------------------------------------------------------------- */

static char *clean_pattern(const char *p)
{
	while (*p == '/')
		p++;
	while (p[0] == '.' && p[1] == '/')
		p += 2;
	char *c = xstrdup(p);
	size_t n = strlen(c);
	while (n && c[n - 1] == '/')
		c[--n] = '\0';
	/* "a//b" -> "a/b" */
	char *w = c;
	for (char *r = c; *r; r++)
		if (!(r[0] == '/' && r[1] == '/'))
			*w++ = *r;
	*w = '\0';
	return c;
}

void hutch_ignore_parse(const char *text, struct hutch_ignore *out)
{
	*out = (struct hutch_ignore){0};
	_cleanup_free_ char *copy = xstrdup(text);
	char *save = NULL;
	for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char *t = trim(l);
		if (!*t || *t == '#')
			continue;
		bool neg = *t == '!';
		if (neg)
			t = trim(t + 1);
		char *pat = clean_pattern(t);
		if (!*pat) {
			free(pat);
			continue;
		}
		out->patterns = xrealloc(out->patterns, (out->n + 1) * sizeof(char *));
		out->negate = xrealloc(out->negate, (out->n + 1) * sizeof(bool));
		out->patterns[out->n] = pat;
		out->negate[out->n++] = neg;
	}
}

/* Glob match of a whole path: '*' and '?' within one component, "**" across
 * any number of them, '[...]' classes, the escape '\\'. */
static bool glob_match(const char *p, const char *s, int depth)
{
	if (depth > 64)
		return false;
	while (*p) {
		if (p[0] == '*' && p[1] == '*') {
			p += 2;
			if (*p == '/')
				p++;
			if (!*p)
				return true;
			for (const char *t = s;; t++) {
				if ((t == s || t[-1] == '/') && glob_match(p, t, depth + 1))
					return true;
				if (!*t)
					return false;
			}
		}
		if (*p == '*') {
			p++;
			for (const char *t = s;; t++) {
				if (glob_match(p, t, depth + 1))
					return true;
				if (!*t || *t == '/')
					return false;
			}
		}
		if (!*s)
			return false;
		if (*p == '?') {
			if (*s == '/')
				return false;
		} else if (*p == '[') {
			const char *q = p + 1;
			bool neg = *q == '!' || *q == '^', ok = false;
			if (neg)
				q++;
			for (; *q && (*q != ']' || q == p + 1 + neg); q++) {
				if (q[1] == '-' && q[2] && q[2] != ']') {
					ok |= *s >= q[0] && *s <= q[2];
					q += 2;
				} else {
					ok |= *s == *q;
				}
			}
			if (!*q || ok == neg || *s == '/')
				return false;
			p = q;
		} else {
			if (*p == '\\' && p[1])
				p++;
			if (*p != *s)
				return false;
		}
		p++;
		s++;
	}
	return !*s;
}

bool hutch_ignore_match(const struct hutch_ignore *ig, const char *rel)
{
	bool excluded = false;
	for (size_t i = 0; i < ig->n; i++) {
		/* the path itself or a directory above it */
		bool m = glob_match(ig->patterns[i], rel, 0);
		_cleanup_free_ char *prefix = xstrdup(rel);
		for (char *sl = strrchr(prefix, '/'); !m && sl; sl = strrchr(prefix, '/')) {
			*sl = '\0';
			m = glob_match(ig->patterns[i], prefix, 0);
		}
		if (m)
			excluded = !ig->negate[i];
	}
	return excluded;
}

void hutch_ignore_free(struct hutch_ignore *ig)
{
	for (size_t i = 0; i < ig->n; i++)
		free(ig->patterns[i]);
	free(ig->patterns);
	free(ig->negate);
	*ig = (struct hutch_ignore){0};
}

/* ---- cache keys -------------------------------------------------------------------------- */

void hutch_build_cache_key(const char *parent_key, const char *step_text, const char *inputs,
			   char out[65])
{
	struct sha256_ctx c;
	uint8_t d[32];
	sha256_init(&c);
	/* NUL-separated: no text can pose as another's boundary */
	sha256_update(&c, "hutch-build-v1", 15);
	sha256_update(&c, parent_key ? parent_key : "", strlen(parent_key ? parent_key : "") + 1);
	sha256_update(&c, step_text, strlen(step_text) + 1);
	sha256_update(&c, inputs ? inputs : "", strlen(inputs ? inputs : "") + 1);
	sha256_final(&c, d);
	sha256_hex(d, out);
}
