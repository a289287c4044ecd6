/* builder/: the Containerfile parser (each form, continuations, the escape
 * directive, heredocs, errors with line numbers), variable substitution,
 * .dockerignore patterns and cache keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "builder/builder.h"

static struct hutch_build_file parse_ok(const char *text)
{
	struct hutch_build_file f;
	struct hutch_err *err = NULL;
	int r = hutch_containerfile_parse(text, strlen(text), "Containerfile", &f, &err);
	if (r < 0)
		fail_msg("parse failed: %s", err->msg);
	return f;
}

/* The message of a refused file. */
static char *parse_err(const char *text)
{
	struct hutch_build_file f;
	struct hutch_err *err = NULL;
	assert_int_equal(hutch_containerfile_parse(text, strlen(text), "Containerfile", &f, &err),
			 -1);
	assert_non_null(err);
	char *m = strdup(err->msg);
	hutch_err_free(&err);
	return m;
}

static void assert_err_has(const char *text, const char *want)
{
	char *m = parse_err(text);
	if (!strstr(m, want))
		fail_msg("message '%s' lacks '%s'", m, want);
	free(m);
}

static void test_forms(void **state)
{
	struct hutch_build_file f =
	    parse_ok("from bb AS base\n"
		     "RUN echo shell form\n"
		     "RUN [\"/bin/echo\", \"exec form\"]\n"
		     "CMD [\"not json\n"
		     "ENTRYPOINT []\n"
		     "COPY --from=base --chown=1:2 --chmod=0644 a b /dst/\n"
		     "COPY [\"a b\", \"/c d\"]\n"
		     "HEALTHCHECK --interval=5s CMD [\"true\"]\n"
		     "HEALTHCHECK NONE\n"
		     "SHELL [\"/bin/ash\", \"-eo\", \"pipefail\", \"-c\"]\n");
	assert_int_equal(f.n_steps, 10);
	assert_int_equal(f.steps[0].kind, STEP_FROM);
	assert_string_equal(f.steps[0].args, "bb AS base");
	assert_false(f.steps[1].json);
	assert_string_equal(f.steps[1].args, "echo shell form");
	assert_true(f.steps[2].json);
	assert_int_equal(f.steps[2].n_argv, 2);
	assert_string_equal(f.steps[2].argv[1], "exec form");
	/* invalid JSON is the shell form, as Docker reads it */
	assert_false(f.steps[3].json);
	assert_true(f.steps[4].json);
	assert_int_equal(f.steps[4].n_argv, 0);
	assert_string_equal(hutch_step_flag(&f.steps[5], "from"), "base");
	assert_string_equal(hutch_step_flag(&f.steps[5], "chown"), "1:2");
	assert_string_equal(hutch_step_flag(&f.steps[5], "chmod"), "0644");
	assert_null(hutch_step_flag(&f.steps[5], "link"));
	assert_string_equal(f.steps[5].args, "a b /dst/");
	assert_true(f.steps[6].json);
	assert_string_equal(f.steps[6].argv[0], "a b");
	assert_string_equal(hutch_step_flag(&f.steps[7], "interval"), "5s");
	assert_true(f.steps[7].json);
	assert_string_equal(f.steps[8].args, "NONE");
	assert_int_equal(f.steps[9].n_argv, 4);
	for (size_t i = 0; i < f.n_steps; i++)
		assert_int_equal(f.steps[i].line, (int)i + 1);
	hutch_build_file_free(&f);
}

static void test_continuations_and_comments(void **state)
{
	struct hutch_build_file f = parse_ok("# leading comment\n"
					     "\n"
					     "FROM bb\n"
					     "RUN echo a \\\n"
					     "# a comment inside is dropped\n"
					     "\n"
					     "    b \\   \n"
					     "    c\r\n"
					     "ENV A=1\n");
	assert_int_equal(f.n_steps, 3);
	assert_string_equal(f.steps[1].args, "echo a     b     c");
	assert_int_equal(f.steps[1].line, 4);
	assert_int_equal(f.steps[2].line, 9);
	hutch_build_file_free(&f);
}

static void test_escape_directive(void **state)
{
	struct hutch_build_file f = parse_ok("# escape=`\n"
					     "FROM bb\n"
					     "RUN dir c:\\ `\n"
					     "  && echo done\n");
	assert_int_equal(f.escape, '`');
	assert_int_equal(f.n_steps, 2);
	assert_string_equal(f.steps[1].args, "dir c:\\   && echo done");
	hutch_build_file_free(&f);
	/* only at the top: later it is a comment, and '\' continues lines */
	f = parse_ok("FROM bb\n# escape=`\nRUN a \\\n b\n");
	assert_int_equal(f.escape, '\\');
	assert_string_equal(f.steps[1].args, "a  b");
	hutch_build_file_free(&f);
	assert_err_has("# escape=x\nFROM bb\n", "Containerfile:1: invalid escape directive 'x'");
}

static void test_heredocs(void **state)
{
	struct hutch_build_file f = parse_ok("FROM bb\n"
					     "RUN <<EOF\n"
					     "echo one\n"
					     "echo two\n"
					     "EOF\n"
					     "RUN cat <<-'END' > /f\n"
					     "\tindented\n"
					     "\tEND\n"
					     "CMD [\"x\"]\n");
	assert_int_equal(f.n_steps, 4);
	assert_true(f.steps[1].heredoc_only);
	assert_string_equal(f.steps[1].args, "echo one\necho two\n");
	assert_false(f.steps[2].heredoc_only);
	assert_string_equal(f.steps[2].heredocs[0], "indented\n");
	assert_string_equal(f.steps[2].args, "cat <<-'END' > /f\nindented\nEND");
	assert_int_equal(f.steps[3].line, 9);
	hutch_build_file_free(&f);
	assert_err_has("FROM bb\nRUN <<EOF\necho\n",
		       "Containerfile:2: the heredoc 'EOF' is never closed");
	assert_err_has("FROM bb\nCOPY <<EOF /x\nhi\nEOF\n", "Containerfile:2: COPY with a heredoc");
}

static void test_errors_have_lines(void **state)
{
	assert_err_has("FROM bb\n\nONBUILD RUN x\n", "Containerfile:3: ONBUILD is not supported");
	assert_err_has("FROM bb\nNOPE x\n", "Containerfile:2: unknown instruction 'NOPE'");
	assert_err_has("FROM bb\nRUN --mount=type=cache x\n",
		       "Containerfile:2: RUN does not take the flag '--mount'");
	assert_err_has("FROM bb\nSHELL /bin/sh\n", "Containerfile:2: SHELL needs a JSON array");
	assert_err_has("FROM bb\nCOPY onlyone\n",
		       "Containerfile:2: COPY needs a source and a destination");
	assert_err_has("FROM bb\nWORKDIR\n", "Containerfile:2: WORKDIR needs arguments");
	assert_err_has("FROM bb\nHEALTHCHECK true\n",
		       "Containerfile:2: HEALTHCHECK needs NONE or CMD");
	assert_err_has("ENV A=1\nFROM bb\n", "Containerfile:1: ENV before the first FROM");
	assert_err_has("ARG A=1\n", "no FROM");
	assert_err_has("# only a comment\n", "no instructions");
	struct hutch_build_file nul;
	struct hutch_err *err = NULL;
	assert_int_equal(hutch_containerfile_parse("FROM bb\0\n", 9, "Containerfile", &nul, &err),
			 -1);
	assert_non_null(strstr(err->msg, "NUL"));
	hutch_err_free(&err);
	/* ARG may come first */
	struct hutch_build_file f = parse_ok("ARG V=1\nFROM bb:$V\n");
	assert_int_equal(f.steps[0].kind, STEP_ARG);
	hutch_build_file_free(&f);
}

static char *expand1(const char *s, bool split, size_t want_n, size_t idx)
{
	char *env[] = {"A=alpha", "EMPTY=", "SP=two words"};
	char **w = NULL;
	size_t n = 0;
	struct hutch_err *err = NULL;
	if (hutch_build_expand(s, '\\', env, 3, split, &w, &n, &err) < 0)
		fail_msg("expand '%s': %s", s, err->msg);
	assert_int_equal(n, want_n);
	char *r = strdup(w[idx]);
	for (size_t i = 0; i < n; i++)
		free(w[i]);
	free(w);
	return r;
}

static void check_expand(const char *s, bool split, size_t n, size_t idx, const char *want)
{
	char *got = expand1(s, split, n, idx);
	if (strcmp(got, want))
		fail_msg("expand '%s' word %zu: '%s', want '%s'", s, idx, got, want);
	free(got);
}

static void test_expand(void **state)
{
	check_expand("$A", false, 1, 0, "alpha");
	check_expand("${A}x", false, 1, 0, "alphax");
	check_expand("${NOPE:-def}", false, 1, 0, "def");
	check_expand("${EMPTY:-def}", false, 1, 0, "def");
	check_expand("${EMPTY-def}", false, 1, 0, "");
	check_expand("${A:+set}", false, 1, 0, "set");
	check_expand("${NOPE:+set}", false, 1, 0, "");
	check_expand("\\$A", false, 1, 0, "$A");
	check_expand("'$A'", false, 1, 0, "$A");
	check_expand("\"$A b\"", false, 1, 0, "alpha b");
	check_expand("K=\"a b\" L=c\\ d", true, 2, 0, "K=a b");
	check_expand("K=\"a b\" L=c\\ d", true, 2, 1, "L=c d");
	check_expand("X=$SP", true, 1, 0, "X=two words");
	check_expand("$NOPE", false, 1, 0, "");
	char **w = NULL;
	size_t n = 0;
	struct hutch_err *err = NULL;
	assert_int_equal(hutch_build_expand("\"open", '\\', NULL, 0, true, &w, &n, &err), -1);
	assert_non_null(strstr(err->msg, "unmatched quote"));
	hutch_err_free(&err);
	assert_int_equal(hutch_build_expand("${A", '\\', NULL, 0, false, &w, &n, &err), -1);
	hutch_err_free(&err);
	assert_int_equal(hutch_build_expand("${A:?x}", '\\', NULL, 0, false, &w, &n, &err), -1);
	hutch_err_free(&err);
}

static void test_ignore(void **state)
{
	struct hutch_ignore ig;
	hutch_ignore_parse("# c\n/secret\n*.log\n!keep.log\ndocs/**/*.md\nbuild/\n./tmp\n", &ig);
	assert_true(hutch_ignore_match(&ig, "secret"));
	assert_true(hutch_ignore_match(&ig, "a.log"));
	assert_false(hutch_ignore_match(&ig, "keep.log"));
	assert_false(hutch_ignore_match(&ig, "sub/a.log")); /* '*' stays in one component */
	assert_true(hutch_ignore_match(&ig, "docs/a/b/c.md"));
	assert_true(hutch_ignore_match(&ig, "docs/c.md"));
	assert_false(hutch_ignore_match(&ig, "docs/c.txt"));
	assert_true(hutch_ignore_match(&ig, "build/out/x")); /* below an excluded dir */
	assert_true(hutch_ignore_match(&ig, "tmp"));
	assert_false(hutch_ignore_match(&ig, "src/main.c"));
	hutch_ignore_free(&ig);
}

static void test_cache_keys(void **state)
{
	char a[65], b[65], c[65], d[65], e[65];
	hutch_build_cache_key("p", "RUN x", NULL, a);
	hutch_build_cache_key("p", "RUN x", "", b);
	hutch_build_cache_key("q", "RUN x", NULL, c);
	hutch_build_cache_key("p", "RUN x", "h1", d);
	hutch_build_cache_key("p", "RUN xh1", NULL, e);
	assert_string_equal(a, b);     /* no inputs and empty inputs are one */
	assert_string_not_equal(a, c); /* another parent */
	assert_string_not_equal(a, d); /* other inputs */
	assert_string_not_equal(d, e); /* text and inputs cannot run into each other */
	assert_int_equal(strlen(a), 64);
	char again[65];
	hutch_build_cache_key("p", "RUN x", "h1", again);
	assert_string_equal(d, again);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_forms),
	    cmocka_unit_test(test_continuations_and_comments),
	    cmocka_unit_test(test_escape_directive),
	    cmocka_unit_test(test_heredocs),
	    cmocka_unit_test(test_errors_have_lines),
	    cmocka_unit_test(test_expand),
	    cmocka_unit_test(test_ignore),
	    cmocka_unit_test(test_cache_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
