/* hutch builder: images built from a chain of steps, each cached.
 *
 * The chain is data (struct hutch_build_file: a list of steps); a Containerfile
 * is one way to fill it (hutch_containerfile_parse). hutch_build runs it: RUN
 * steps in containers the runtime makes, COPY/ADD into layers the image store
 * keeps, the rest in the image config. builder/ sits above runtime/ and
 * images/ (cli -> builder -> {runtime, images} -> common): see docs/build.md. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

enum hutch_step_kind {
	STEP_FROM,
	STEP_RUN,
	STEP_COPY,
	STEP_ADD,
	STEP_ENV,
	STEP_ARG,
	STEP_WORKDIR,
	STEP_USER,
	STEP_LABEL,
	STEP_EXPOSE,
	STEP_VOLUME,
	STEP_ENTRYPOINT,
	STEP_CMD,
	STEP_HEALTHCHECK,
	STEP_STOPSIGNAL,
	STEP_SHELL,
	STEP_MAINTAINER,
};

struct hutch_step_flag {
	char *name; /* "from", "chown", "chmod", "network", "interval", ... */
	char *value;
};

struct hutch_step {
	enum hutch_step_kind kind;
	int line;   /* first line of the instruction in its file (1-based) */
	char *text; /* the instruction as written, continuations joined (for output) */
	char *args; /* what follows the instruction and its flags, raw (shell form) */
	bool json;  /* exec (JSON array) form: argv holds it */
	char **argv;
	size_t n_argv;
	struct hutch_step_flag *flags;
	size_t n_flags;
	/* RUN <<EOF: the heredoc bodies, in order (the text between the marker
	 * lines, without them) */
	char **heredocs;
	size_t n_heredocs;
	bool heredoc_only; /* the command is one heredoc alone: its body is the script */
};

struct hutch_build_file {
	struct hutch_step *steps;
	size_t n_steps;
	char escape; /* '\\' or '`' */
};

const char *hutch_step_name(enum hutch_step_kind k); /* "RUN" */
/* The flag's value, or NULL when not given. */
const char *hutch_step_flag(const struct hutch_step *s, const char *name);

/* Parse a Containerfile (Dockerfile syntax): parser directives (escape,
 * syntax), comments, line continuations, JSON and shell forms, flags, RUN
 * heredocs. Instructions hutch does not support (ONBUILD) and unknown ones are
 * refused with their line number; so are flags an instruction does not take.
 * name: for messages ("Containerfile"). */
int hutch_containerfile_parse(const char *text, size_t len, const char *name,
			      struct hutch_build_file *out, struct hutch_err **err);
void hutch_build_file_free(struct hutch_build_file *f);

/* Variables: expand $VAR, ${VAR}, ${VAR:-default}, ${VAR:+alt} (and the
 * escape character before '$' for a literal) from env ("K=V"). With split,
 * also split into words at unquoted blanks and remove quotes (as for ENV,
 * LABEL, ARG, COPY's sources); without, one word and quotes kept. */
int hutch_build_expand(const char *s, char escape, char *const *env, size_t n_env, bool split,
		       char ***words, size_t *n_words, struct hutch_err **err);

/* .dockerignore: patterns as Docker reads them ('#' comments, '!' exceptions,
 * '*', '?', '**', a leading '/' ignored; the last match decides; a path is
 * excluded when it or a directory above it matches). */
struct hutch_ignore {
	char **patterns;
	bool *negate;
	size_t n;
};
void hutch_ignore_parse(const char *text, struct hutch_ignore *out);
bool hutch_ignore_match(const struct hutch_ignore *ig, const char *rel);
void hutch_ignore_free(struct hutch_ignore *ig);

/* A step's cache key: sha256 hex of the parent's key, the step's text after
 * substitution and what it reads (a digest of the files it copies, the
 * build args a RUN sees). */
void hutch_build_cache_key(const char *parent_key, const char *step_text, const char *inputs,
			   char out[65]);

struct hutch_build_opts {
	const char *context;   /* directory */
	const char *file_name; /* for messages */
	char **build_args;     /* "K=V" */
	size_t n_build_args;
	const char *target; /* stage name or NULL: the last */
	bool no_cache;
	const char *network; /* RUN containers: "host" (default) or "none" */
	char **tags;
	size_t n_tags;
	const char *data_root, *run_root;
	bool rootless, quiet;
};

struct hutch_build_result {
	char id[65];
	size_t n_steps, n_cached;
};

/* Build f; progress and RUN output on stdout, messages name the step and line. */
int hutch_build(const struct hutch_build_file *f, const struct hutch_build_opts *o,
		struct hutch_build_result *res, struct hutch_err **err);
