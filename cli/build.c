/* hutch build: a Containerfile and a context -> builder/ -> an image in the store. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "builder/builder.h"
#include "cli/cli.h"
#include "common/util.h"
#include "images/images.h"

struct build_opts {
	const char **tags, **build_args;
	size_t n_tags, n_build_args;
	const char *file, *target, *network;
	bool no_cache, help;
};

enum { B_TAG, B_FILE, B_ARG, B_TARGET, B_NOCACHE, B_NETWORK, B_HELP, B_PLATFORM };
static const struct cli_opt options[] = {
    {"tag", 't', true, B_TAG},	       {"file", 'f', true, B_FILE},
    {"build-arg", 0, true, B_ARG},     {"target", 0, true, B_TARGET},
    {"no-cache", 0, false, B_NOCACHE}, {"network", 0, true, B_NETWORK},
    {"platform", 0, true, B_PLATFORM}, {"help", 0, false, B_HELP},
};

static void usage(FILE *out)
{
	fputs("Usage: hutch build [OPTIONS] CONTEXT\n"
	      "\n"
	      "  -t, --tag NAME[:TAG]   name the image (may be given several times)\n"
	      "  -f, --file FILE        the Containerfile (default: CONTEXT/Containerfile,\n"
	      "                         else CONTEXT/Dockerfile)\n"
	      "      --build-arg K=V    a value for an ARG (K alone: from here)\n"
	      "      --target STAGE     build up to this stage (FROM ... AS STAGE)\n"
	      "      --no-cache         run every step again\n"
	      "      --network MODE     RUN steps' network: host (default) or none\n",
	      out);
}

static void push(const char ***v, size_t *n, const char *s)
{
	*v = xrealloc(*v, (*n + 1) * sizeof(char *));
	(*v)[(*n)++] = s;
}

static int set_opt(void *arg, int id, const char *v)
{
	struct build_opts *o = arg;
	switch (id) {
	case B_TAG:
		push(&o->tags, &o->n_tags, v);
		break;
	case B_FILE:
		o->file = v;
		break;
	case B_ARG:
		push(&o->build_args, &o->n_build_args, v);
		break;
	case B_TARGET:
		o->target = v;
		break;
	case B_NOCACHE:
		o->no_cache = true;
		break;
	case B_NETWORK:
		if (strcmp(v, "host") && strcmp(v, "none") && strcmp(v, "default")) {
			fprintf(
			    stderr,
			    "hutch: build: --network '%s': RUN steps run with 'host' or 'none'\n",
			    v);
			return -1;
		}
		o->network = strcmp(v, "default") ? v : NULL;
		break;
	case B_PLATFORM:
		fprintf(stderr,
			"hutch: build: --platform '%s': hutch builds for this machine only "
			"(leave --platform out)\n",
			v);
		return -1;
	case B_HELP:
		o->help = true;
		break;
	}
	return 0;
}

int cli_build_run(struct cli_ctx *ctx, const struct cli_build *cb)
{
	int rc = 125;
	char **args = NULL;
	size_t n_args = 0;
	struct hutch_build_file f = {0};
	_cleanup_err_ struct hutch_err *err = NULL;
	_cleanup_free_ char *path = NULL, *text = NULL;
	const char *context = cb->context;
	if (cb->file) {
		path = cb->file[0] == '/' || !cb->file_in_context
			   ? xstrdup(cb->file)
			   : xasprintf("%s/%s", context, cb->file);
	} else {
		path = xasprintf("%s/Containerfile", context);
		if (access(path, F_OK) < 0) {
			free(path);
			path = xasprintf("%s/Dockerfile", context);
		}
	}
	size_t len = 0;
	if (read_file_at_most(AT_FDCWD, path, 4 << 20, READ_TEXT | READ_REGULAR, &text, &len,
			      &err) < 0)
		goto report;
	const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	if (hutch_containerfile_parse(text, len, name, &f, &err) < 0)
		goto report;
	for (size_t k = 0; k < cb->n_build_args; k++) {
		const char *a = cb->build_args[k];
		if (strchr(a, '=')) {
			push((const char ***)&args, &n_args, xstrdup(a));
		} else if (getenv(a)) {
			push((const char ***)&args, &n_args, xasprintf("%s=%s", a, getenv(a)));
		}
	}
	struct hutch_build_opts bo = {
	    .context = context,
	    .file_name = name,
	    .build_args = args,
	    .n_build_args = n_args,
	    .target = cb->target,
	    .no_cache = cb->no_cache,
	    .network = cb->network,
	    .tags = (char **)cb->tags,
	    .n_tags = cb->n_tags,
	    .data_root = ctx->data_root,
	    .run_root = ctx->run_root,
	    .rootless = ctx->rootless,
	    .quiet = ctx->quiet,
	};
	struct hutch_build_result res;
	if (hutch_build(&f, &bo, &res, &err) < 0)
		goto report;
	printf("Successfully built %.12s (%zu steps, %zu cached)\n", res.id, res.n_steps,
	       res.n_cached);
	for (size_t k = 0; k < cb->n_tags; k++)
		printf("Successfully tagged %s\n", cb->tags[k]);
	rc = 0;
	goto out;
report:
	fflush(stdout);
	rc = cli_report(ctx, err);
out:
	hutch_build_file_free(&f);
	for (size_t k = 0; k < n_args; k++)
		free(args[k]);
	free(args);
	return rc;
}

int cmd_build(struct cli_ctx *ctx, int argc, char **argv)
{
	struct build_opts o = {0};
	int rc = 125;
	int i = cli_parse_opts("build", "", options, ARRAY_SIZE(options), true, argc, argv, set_opt,
			       &o);
	if (i == -2 || o.help) {
		usage(stdout);
		rc = 0;
		goto out;
	}
	if (i < 0)
		goto out;
	if (i != argc - 1) {
		fprintf(stderr, "hutch: build: %s (usage: hutch build [OPTIONS] CONTEXT)\n",
			i >= argc ? "no build context given" : "give one build context");
		goto out;
	}
	struct cli_build cb = {
	    .context = argv[i],
	    .file = o.file,
	    .build_args = o.build_args,
	    .n_build_args = o.n_build_args,
	    .target = o.target,
	    .no_cache = o.no_cache,
	    .network = o.network,
	    .tags = o.tags,
	    .n_tags = o.n_tags,
	};
	rc = cli_build_run(ctx, &cb);
out:
	free(o.tags);
	free(o.build_args);
	return rc;
}

/* ---- hutch builder prune ------------------------------------------------------- */

enum { BP_ALL, BP_KEEP };
static const struct cli_opt prune_options[] = {
    {"all", 'a', false, BP_ALL},
    {"keep-storage", 0, true, BP_KEEP},
};

struct prune_opts {
	bool all;
	int64_t keep;
};

static int prune_set(void *arg, int id, const char *v)
{
	struct prune_opts *o = arg;
	if (id == BP_ALL) {
		o->all = true;
	} else if (parse_size(v, &o->keep) < 0) {
		fprintf(stderr,
			"hutch: builder prune: --keep-storage '%s' is not a size (like 500m or "
			"2g)\n",
			v);
		return -1;
	}
	return 0;
}

static const char prune_usage[] =
    "Usage: hutch builder prune [--all] [--keep-storage SIZE]\n"
    "\n"
    "Remove the build cache that no image uses: least recently used entries first,\n"
    "down to SIZE (default 0) of layers kept only for the cache; --all: every entry\n"
    "(the next build runs every step). Images and their layers stay.\n";

int cmd_builder(struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "prune")) {
		if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
			fputs(prune_usage, stdout);
			return 0;
		}
		fprintf(stderr, "hutch: builder: %s\n%s",
			argc < 2 ? "give a command (prune)" : "unknown command (prune)",
			prune_usage);
		return 125;
	}
	struct prune_opts o = {0};
	int i = cli_parse_opts("builder prune", prune_usage, prune_options,
			       ARRAY_SIZE(prune_options), true, argc - 1, argv + 1, prune_set, &o);
	if (i < 0)
		return i == -2 ? 0 : 125;
	if (i < argc - 1) {
		fprintf(stderr, "hutch: builder prune: unexpected argument '%s'\n", argv[i + 1]);
		return 125;
	}
	if (o.all && o.keep) {
		fprintf(stderr,
			"hutch: builder prune: --all and --keep-storage: give one of them\n");
		return 125;
	}
	_cleanup_err_ struct hutch_err *err = NULL;
	struct hutch_store *s = NULL;
	struct hutch_cache_prune r;
	if (hutch_store_open(ctx->data_root, ctx->rootless, HUTCH_STORE_WRITE, &s, &err) < 0 ||
	    hutch_build_cache_prune(s, o.all, o.keep, NULL, &r, &err) < 0) {
		hutch_store_close(s);
		return cli_report(ctx, err);
	}
	hutch_store_close(s);
	char freed[32], left[32];
	format_size(r.freed, freed, sizeof(freed));
	format_size(r.size, left, sizeof(left));
	printf("removed %zu cache entries, %zu layers and %zu unnamed images, %s; the cache "
	       "keeps %s beyond the named images\n",
	       r.entries, r.layers, r.images, freed, left);
	return 0;
}
