/* The Containerfile parser (builder/containerfile.c) on any bytes, and what a
 * build does next with what it accepts: variable substitution of each step's
 * arguments and flags, .dockerignore matching of the same text. Every step it
 * gives has a known instruction, a line within the file, and arguments; every
 * refusal a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "builder/builder.h"

static void expand_and_free(const char *s, char escape, bool split)
{
	static char *env[] = {"A=1", "B=", "PATH=/bin"};
	char **w = NULL;
	size_t n = 0;
	struct hutch_err *err = NULL;
	if (hutch_build_expand(s, escape, env, 3, split, &w, &n, &err) < 0) {
		if (!err || !err->msg)
			abort();
		hutch_err_free(&err);
		return;
	}
	for (size_t i = 0; i < n; i++)
		free(w[i]);
	free(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hutch_build_file f;
	struct hutch_err *err = NULL;
	if (hutch_containerfile_parse((const char *)data, size, "Containerfile", &f, &err) < 0) {
		if (!err || !err->msg || !*err->msg)
			abort();
		hutch_err_free(&err);
	} else {
		int lines = 1;
		for (size_t i = 0; i < size; i++)
			lines += data[i] == '\n';
		for (size_t i = 0; i < f.n_steps; i++) {
			const struct hutch_step *s = &f.steps[i];
			if (s->line < 1 || s->line > lines || !s->text || !s->args ||
			    !strcmp(hutch_step_name(s->kind), "?"))
				abort();
			if (s->json && s->n_argv && !s->argv)
				abort();
			expand_and_free(s->args, f.escape, true);
			expand_and_free(s->args, f.escape, false);
			for (size_t k = 0; k < s->n_flags; k++)
				expand_and_free(s->flags[k].value, f.escape, false);
		}
		hutch_build_file_free(&f);
	}
	/* the same bytes as a .dockerignore, matched against a few paths */
	char *text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	struct hutch_ignore ig;
	hutch_ignore_parse(text, &ig);
	static const char *const paths[] = {"a", "a/b/c.log", "docs/x.md", ".git/HEAD", ""};
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		(void)hutch_ignore_match(&ig, paths[i]);
	hutch_ignore_free(&ig);
	free(text);
	return 0;
}
