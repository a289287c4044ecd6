/* Shell-style words for command, entrypoint, health_cmd and list options: the
 * splitting a POSIX shell does for a simple command, without its expansions
 * (no $, globs or ~: interpolation is done before, on the whole value). */
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
		if (c == '\\') {
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
