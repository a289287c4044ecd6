/* Shell-style words for command, entrypoint, health_cmd and list options: the
 * splitting a POSIX shell does for a simple command, without its expansions
 * (no $, globs or ~: interpolation is done before, on the whole value), and
 * its $'...' quotes with C escapes (POSIX.1-2024), the one way a word can hold
 * a line break on one INI line (`hutch stack config` writes them so). */
#include <string.h>

#include "common/util.h"
#include "supervisor/stack.h"

void strv_free(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int hex_digit(char c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
				      : -1;
}

/* The body of $'...' from p (after the quote) into cur: *pp past the closing
 * quote, or -1 with *errmsg. */
static int dollar_quote(const char **pp, char *cur, size_t *w, const char **errmsg)
{
	static const char plain[] = "\\\\''\"\"??a\ab\be\033E\033f\fn\nr\rt\tv\v";
	const char *p = *pp;
	for (;; p++) {
		if (!*p) {
			*errmsg = "a $'...' quote is not closed";
			return -1;
		}
		if (*p == '\'')
			break;
		if (*p != '\\') {
			cur[(*w)++] = *p;
			continue;
		}
		p++;
		const char *m = NULL;
		for (size_t i = 0; *p && i + 1 < sizeof(plain); i += 2)
			if (plain[i] == *p) {
				m = &plain[i];
				break;
			}
		int v = -1;
		if (m) {
			v = (unsigned char)m[1];
		} else if (*p == 'x' && hex_digit(p[1]) >= 0) {
			v = hex_digit(*++p);
			if (hex_digit(p[1]) >= 0)
				v = v * 16 + hex_digit(*++p);
		} else if (*p >= '0' && *p <= '7') {
			v = *p - '0';
			for (int i = 0; i < 2 && p[1] >= '0' && p[1] <= '7'; i++)
				v = v * 8 + (*++p - '0');
		} else {
			*errmsg = "in $'...', a backslash takes one of \\\\ \\' \\\" \\a \\b \\e "
				  "\\f \\n \\r \\t \\v \\xHH or \\OOO (octal)";
			return -1;
		}
		if (v == 0 || v > 255) {
			*errmsg = "a word cannot hold a NUL byte (or an octal escape past \\377)";
			return -1;
		}
		cur[(*w)++] = (char)v;
	}
	*pp = p + 1;
	return 0;
}

int shell_words(const char *s, char ***out, size_t *n, const char **errmsg)
{
	size_t len = strlen(s), count = 0;
	char **words = xcalloc(len / 2 + 2, sizeof(*words)); /* at most one per 2 bytes */
	char *cur = xcalloc(1, len + 1);		     /* a word is never longer than s */
	size_t w = 0;
	bool in_word = false;
	const char *p = s;
	*errmsg = NULL;
	while (*p) {
		char c = *p;
		if (is_blank(c)) {
			if (in_word) {
				cur[w] = '\0';
				words[count++] = xstrdup(cur);
				w = 0;
				in_word = false;
			}
			p++;
			continue;
		}
		in_word = true;
		if (c == '$' && p[1] == '\'') {
			p += 2;
			if (dollar_quote(&p, cur, &w, errmsg) < 0)
				goto fail;
		} else if (c == '\\') {
			if (!p[1]) {
				*errmsg = "a backslash at the end: nothing follows it to escape";
				goto fail;
			}
			if (p[1] != '\n') /* backslash-newline joins, as in a shell */
				cur[w++] = p[1];
			p += 2;
		} else if (c == '\'') {
			const char *end = strchr(p + 1, '\'');
			if (!end) {
				*errmsg = "a single quote (') is not closed";
				goto fail;
			}
			memcpy(cur + w, p + 1, (size_t)(end - p - 1));
			w += (size_t)(end - p - 1);
			p = end + 1;
		} else if (c == '"') {
			for (p++;; p++) {
				if (!*p) {
					*errmsg = "a double quote (\") is not closed";
					goto fail;
				}
				if (*p == '"')
					break;
				if (*p == '\\' && p[1] && strchr("\"\\$`\n", p[1])) {
					if (p[1] != '\n')
						cur[w++] = p[1];
					p++;
					continue;
				}
				cur[w++] = *p;
			}
			p++;
		} else {
			cur[w++] = c;
			p++;
		}
	}
	if (in_word) {
		cur[w] = '\0';
		words[count++] = xstrdup(cur);
	}
	free(cur);
	*out = words;
	*n = count;
	return 0;
fail:
	free(cur);
	strv_free(words, count);
	*out = NULL;
	*n = 0;
	return -1;
}
