/* ${VAR} interpolation as compose does it, and env files (.env, env_file). */
#include <ctype.h>
#include <string.h>

#include "common/strbuf.h"
#include "common/util.h"
#include "supervisor/stack.h"

/* Nested defaults (${A:-${B:-x}}) deeper than this are refused: a stack file
 * does not need them and a fuzzer would use them to run out the stack. */
#define INTERP_DEPTH_MAX 8

static const char *lookup(char **vars, size_t n, const char *name, size_t name_len)
{
	for (size_t i = 0; i < n; i++)
		if (!strncmp(vars[i], name, name_len) && vars[i][name_len] == '=')
			return vars[i] + name_len + 1;
	return NULL;
}

static const char *env_get_n(const struct stack_env *env, const char *name, size_t len)
{
	if (env->envp) {
		size_t n = 0;
		while (env->envp[n])
			n++;
		const char *v = lookup(env->envp, n, name, len);
		if (v)
			return v;
	}
	/* .env: the last of a name wins, as the shell would have it */
	const char *v = NULL;
	for (size_t i = 0; i < env->n_dotenv; i++)
		if (!strncmp(env->dotenv[i], name, len) && env->dotenv[i][len] == '=')
			v = env->dotenv[i] + len + 1;
	return v;
}

const char *stack_env_get(const struct stack_env *env, const char *name)
{
	return env_get_n(env, name, strlen(name));
}

static bool name_start(char c)
{
	return isalpha((unsigned char)c) || c == '_';
}
static bool name_char(char c)
{
	return isalnum((unsigned char)c) || c == '_';
}

static int interp(const struct stack_env *env, const char *s, size_t len, int depth,
		  struct strbuf *out, char **errmsg, char ***unset, size_t *n_unset);

static void note_unset(char ***unset, size_t *n_unset, const char *name, size_t len)
{
	for (size_t i = 0; i < *n_unset; i++)
		if (strlen((*unset)[i]) == len && !strncmp((*unset)[i], name, len))
			return;
	*unset = xrealloc(*unset, (*n_unset + 1) * sizeof(**unset));
	(*unset)[(*n_unset)++] = xasprintf("%.*s", (int)len, name);
}

/* s[i] is the '{' of a "${": the index of its closing '}', or len. */
static size_t closing_brace(const char *s, size_t len, size_t i)
{
	int nest = 0;
	for (i++; i < len; i++) {
		if (s[i] == '$' && i + 1 < len && (s[i + 1] == '$' || s[i + 1] == '{')) {
			if (s[i + 1] == '{')
				nest++;
			i++;
		} else if (s[i] == '}') {
			if (nest == 0)
				return i;
			nest--;
		}
	}
	return len;
}

static int braced(const struct stack_env *env, const char *s, size_t len, int depth,
		  struct strbuf *out, char **errmsg, char ***unset, size_t *n_unset)
{
	/* s is what is between "${" and "}" */
	size_t n = 0;
	while (n < len && name_char(s[n]))
		n++;
	_cleanup_free_ char *shown = printable(s, len);
	if (n == 0 || !name_start(s[0])) {
		*errmsg = xasprintf("'${%s}': a variable name is letters, digits and '_', not "
				    "starting with a digit",
				    shown);
		return -1;
	}
	const char *value = env_get_n(env, s, n);
	if (n == len) {
		if (value)
			strbuf_add(out, value, strlen(value));
		else
			note_unset(unset, n_unset, s, n);
		return 0;
	}
	bool colon = s[n] == ':';
	size_t op = n + colon;
	if (op >= len || !strchr("-?+", s[op])) {
		*errmsg = xasprintf("'${%s}': after the name comes '}', ':-', '-', ':?', '?', ':+' "
				    "or '+'",
				    shown);
		return -1;
	}
	/* ':' tests "unset or empty", without it only "unset" */
	bool set = value && (!colon || *value);
	const char *word = s + op + 1;
	size_t word_len = len - op - 1;
	switch (s[op]) {
	case '-':
		if (set)
			strbuf_add(out, value, strlen(value));
		else
			return interp(env, word, word_len, depth + 1, out, errmsg, unset, n_unset);
		return 0;
	case '+':
		if (set)
			return interp(env, word, word_len, depth + 1, out, errmsg, unset, n_unset);
		return 0;
	default: /* '?' */
		if (set) {
			strbuf_add(out, value, strlen(value));
			return 0;
		}
		struct strbuf msg = {0};
		char *sub_err = NULL;
		char **sub_unset = NULL;
		size_t n_sub_unset = 0;
		if (interp(env, word, word_len, depth + 1, &msg, &sub_err, &sub_unset,
			   &n_sub_unset) < 0) {
			*errmsg = sub_err;
			free(msg.s);
			strv_free(sub_unset, n_sub_unset);
			return -1;
		}
		strv_free(sub_unset, n_sub_unset);
		_cleanup_free_ char *name = xasprintf("%.*s", (int)n, s);
		_cleanup_free_ char *text = msg.len ? printable(msg.s, msg.len) : NULL;
		free(msg.s);
		*errmsg = xasprintf("required variable %s is %s%s%s", name,
				    colon ? "unset or empty" : "unset", text ? ": " : "",
				    text ? text : "");
		return -1;
	}
}

static int interp(const struct stack_env *env, const char *s, size_t len, int depth,
		  struct strbuf *out, char **errmsg, char ***unset, size_t *n_unset)
{
	if (depth > INTERP_DEPTH_MAX) {
		*errmsg = xasprintf("'${' nested more than %d deep", INTERP_DEPTH_MAX);
		return -1;
	}
	strbuf_add(out, "", 0);
	size_t i = 0;
	while (i < len) {
		const char *dollar = memchr(s + i, '$', len - i);
		if (!dollar) {
			strbuf_add(out, s + i, len - i);
			break;
		}
		size_t d = (size_t)(dollar - s);
		strbuf_add(out, s + i, d - i);
		if (d + 1 < len && s[d + 1] == '$') {
			strbuf_add(out, "$", 1);
			i = d + 2;
		} else if (d + 1 < len && s[d + 1] == '{') {
			size_t end = closing_brace(s, len, d + 1);
			if (end == len) {
				_cleanup_free_ char *shown = printable(s + d, len - d);
				*errmsg = xasprintf("'%s': '${' without its closing '}'", shown);
				return -1;
			}
			if (braced(env, s + d + 2, end - d - 2, depth, out, errmsg, unset,
				   n_unset) < 0)
				return -1;
			i = end + 1;
		} else if (d + 1 < len && name_start(s[d + 1])) {
			size_t n = 1;
			while (d + 1 + n < len && name_char(s[d + 1 + n]))
				n++;
			const char *value = env_get_n(env, s + d + 1, n);
			if (value)
				strbuf_add(out, value, strlen(value));
			else
				note_unset(unset, n_unset, s + d + 1, n);
			i = d + 1 + n;
		} else {
			_cleanup_free_ char *shown = printable(s + d, len - d > 10 ? 10 : len - d);
			*errmsg = xasprintf("'%s': a '$' starts a variable ($NAME or ${NAME}); "
					    "write $$ for a '$' of its own",
					    shown);
			return -1;
		}
	}
	return 0;
}

int stack_interpolate(const struct stack_env *env, const char *s, char **out, char **errmsg,
		      char ***unset, size_t *n_unset)
{
	struct strbuf b = {0};
	*errmsg = NULL;
	if (interp(env, s, strlen(s), 0, &b, errmsg, unset, n_unset) < 0) {
		free(b.s);
		*out = NULL;
		return -1;
	}
	*out = b.s;
	return 0;
}

/* ---- env files ------------------------------------------------------------ */

static bool env_name_ok(const char *s, size_t n)
{
	if (n == 0 || !name_start(s[0]))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!name_char(s[i]) && s[i] != '.' && s[i] != '-')
			return false;
	return true;
}

/* The value after '=' on one line (end excluded): 0 with *value, or -1 with a
 * static message. */
static int env_value(const char *p, const char *end, char **value, const char **why)
{
	struct strbuf b = {0};
	strbuf_add(&b, "", 0);
	if (p < end && (*p == '"' || *p == '\'')) {
		char q = *p++;
		for (;; p++) {
			if (p >= end) {
				free(b.s);
				*why = q == '"' ? "a double quote (\") is not closed on its line"
						: "a single quote (') is not closed on its line";
				return -1;
			}
			if (*p == q)
				break;
			if (q == '"' && *p == '\\' && p + 1 < end) {
				p++;
				char c = *p == 'n'   ? '\n'
					 : *p == 't' ? '\t'
					 : *p == 'r' ? '\r'
						     : *p;
				if (!strchr("nrt\"\\$", *p))
					strbuf_add(&b, "\\", 1);
				strbuf_add(&b, &c, 1);
				continue;
			}
			strbuf_add(&b, p, 1);
		}
		p++;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (p < end && *p != '#') {
			free(b.s);
			*why = "text after the closing quote: quote the whole value";
			return -1;
		}
	} else {
		/* a '#' after a blank starts a comment, as in compose's env files */
		const char *v_end = p;
		for (const char *c = p; c < end; c++) {
			if (*c == '#' && c > p && (c[-1] == ' ' || c[-1] == '\t'))
				break;
			v_end = c + 1;
		}
		while (v_end > p && (v_end[-1] == ' ' || v_end[-1] == '\t'))
			v_end--;
		strbuf_add(&b, p, (size_t)(v_end - p));
	}
	*value = b.s;
	return 0;
}

void stack_parse_env_file(const char *text, size_t len, const char *label, int sort_line,
			  struct stack_diag *diag, char ***vars, size_t *n_vars)
{
	const char *end = text + len;
	int lineno = 0;
	const char *nul = memchr(text, '\0', len);
	if (nul) {
		int at = 1;
		for (const char *c = text; c < nul; c++)
			at += *c == '\n';
		stack_diag_add(diag, sort_line, "%s:%d: a NUL byte: this is not a text file", label,
			       at);
		return;
	}
	for (const char *line = text; line < end;) {
		const char *eol = memchr(line, '\n', (size_t)(end - line));
		if (!eol)
			eol = end;
		lineno++;
		const char *next = eol + 1, *p = line, *e = eol;
		if (e > p && e[-1] == '\r')
			e--;
		while (p < e && (*p == ' ' || *p == '\t'))
			p++;
		line = next;
		if (p == e || *p == '#')
			continue;
		if (e - p > 7 && !strncmp(p, "export", 6) && (p[6] == ' ' || p[6] == '\t')) {
			p += 7;
			while (p < e && (*p == ' ' || *p == '\t'))
				p++;
		}
		size_t rest = e > p ? (size_t)(e - p) : 0;
		const char *eq = rest ? memchr(p, '=', rest) : NULL;
		const char *name_end = eq ? eq : e;
		while (name_end > p && (name_end[-1] == ' ' || name_end[-1] == '\t'))
			name_end--;
		if (!eq || !env_name_ok(p, (size_t)(name_end - p))) {
			_cleanup_free_ char *shown = printable(p, rest);
			stack_diag_add(
			    diag, sort_line,
			    "%s:%d: '%s': expected NAME=VALUE (a name is letters, digits, "
			    "'_', '.' or '-', not starting with a digit)",
			    label, lineno, shown);
			continue;
		}
		const char *v = eq + 1;
		while (v < e && (*v == ' ' || *v == '\t'))
			v++;
		char *value = NULL;
		const char *why = NULL;
		if (env_value(v, e, &value, &why) < 0) {
			stack_diag_add(diag, sort_line, "%s:%d: %.*s: %s", label, lineno,
				       (int)(name_end - p), p, why);
			continue;
		}
		*vars = xrealloc(*vars, (*n_vars + 1) * sizeof(**vars));
		(*vars)[(*n_vars)++] = xasprintf("%.*s=%s", (int)(name_end - p), p, value);
		free(value);
	}
}
