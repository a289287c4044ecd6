/* hutch image import | ls | rm | tag | inspect | prune, and hutch pull */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/util.h"
#include "images/images.h"
#include "images/source_internal.h"

static void image_usage(FILE *out)
{
	fputs("Usage:\n"
	      "  hutch image import [--platform P] [--ref R] SRC [NAME]\n"
	      "        SRC: an OCI image layout (directory or tar), a `docker save` archive,\n"
	      "        or a rootfs (.tar, .tar.gz, .tar.zst, directory); --ref picks one image\n"
	      "        of several in an archive (its tag or ref.name)\n"
	      "  hutch image ls [--format json|table] [-q]\n"
	      "  hutch image rm NAME|ID...\n"
	      "  hutch image tag SRC DST\n"
	      "  hutch image inspect NAME|ID...\n"
	      "  hutch image prune             remove unnamed images and unused layers\n"
	      "  hutch image save [-o FILE] [--format oci|docker] IMAGE...\n"
	      "Run 'hutch image COMMAND --help' for a command's options.\n",
	      out);
}

/* "rootfs.tar.gz" -> "rootfs"; "." -> the directory's own name */
static char *name_from_path(const char *src)
{
	_cleanup_free_ char *copy = xstrdup(src);
	char *b = basename(copy);
	if (!strcmp(b, ".") || !strcmp(b, "..")) {
		char *real = realpath(src, NULL);
		if (real) {
			free(copy);
			copy = real;
			b = basename(copy);
		}
	}
	static const char *const exts[] = {".tar.gz", ".tgz", ".tar.zst", ".tar.zstd", ".tar"};
	size_t bl = strlen(b);
	for (size_t i = 0; i < ARRAY_SIZE(exts); i++) {
		size_t el = strlen(exts[i]);
		if (bl > el && !strcmp(b + bl - el, exts[i])) {
			b[bl - el] = '\0';
			break;
		}
	}
	for (char *p = b; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return xstrdup(b);
}

static void print_json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

/* Each verb's options, as cli_parse_opts reads them. */
enum { OPT_PLATFORM, OPT_REF, OPT_FORMAT, OPT_QUIET, OPT_AUTHFILE, OPT_OUTPUT, OPT_SAVE_FORMAT };

struct image_args {
	const char *verb; /* "image ls", for messages */
	const char *platform, *ref, *auth_file, *output;
	bool json, quiet, tls_verify, docker;
};

static int image_set(void *arg, int id, const char *v)
{
	struct image_args *a = arg;
	switch (id) {
	case OPT_PLATFORM:
		a->platform = v;
		break;
	case OPT_REF:
		a->ref = v;
		break;
	case OPT_AUTHFILE:
		a->auth_file = v;
		break;
	case OPT_QUIET:
		a->quiet = true;
		break;
	case OPT_OUTPUT:
		a->output = v;
		break;
	case OPT_SAVE_FORMAT:
		if (strcmp(v, "oci") && strcmp(v, "oci-archive") && strcmp(v, "docker") &&
		    strcmp(v, "docker-archive")) {
			fprintf(stderr,
				"hutch: %s: unknown --format '%s' (oci: an OCI image layout tar, "
				"the default; docker: a `docker save` archive)\n",
				a->verb, v);
			return -1;
		}
		a->docker = !strncmp(v, "docker", 6);
		break;
	case OPT_FORMAT:
		if (strcmp(v, "json") && strcmp(v, "table")) {
			fprintf(stderr, "hutch: %s: unknown --format '%s' (json or table)\n",
				a->verb, v);
			return -1;
		}
		a->json = !strcmp(v, "json");
		break;
	}
	return 0;
}

static int image_ls(struct cli_ctx *ctx, struct hutch_store *s, const struct image_args *a)
{
	bool json = a->json, quiet = a->quiet && !a->json;
	_cleanup_err_ struct hutch_err *err = NULL;
	struct hutch_image_list l;
	if (hutch_image_list(s, &l, &err) < 0)
		return cli_report(ctx, err);
	if (json)
		putchar('[');
	else if (!quiet)
		printf("%-40s %-14s %-22s %s\n", "NAME", "IMAGE ID", "CREATED", "SIZE");
	for (size_t i = 0; i < l.n; i++) {
		char when[32] = "-", size[32];
		struct tm tm;
		/* a config without "created" (allowed: it is optional) is not 1970 */
		if (l.refs[i].created > 0) {
			gmtime_r(&l.refs[i].created, &tm);
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
		}
		format_size(l.refs[i].size, size, sizeof(size));
		if (json) {
			printf("%s{\"name\":", i ? "," : "");
			print_json_string(l.refs[i].name);
			printf(",\"id\":\"sha256:%s\",\"created\":", l.refs[i].id);
			if (l.refs[i].created > 0)
				printf("%lld", (long long)l.refs[i].created);
			else
				fputs("null", stdout);
			printf(",\"size\":%lld}", (long long)l.refs[i].size);
		} else if (quiet) {
			printf("%.12s\n", l.refs[i].id);
		} else {
			printf("%-40s %-14.12s %-22s %s\n", l.refs[i].name, l.refs[i].id, when,
			       size);
		}
	}
	if (json)
		puts("]");
	hutch_image_list_free(&l);
	return 0;
}

static int image_import(struct cli_ctx *ctx, struct hutch_store *s, const struct image_args *a,
			int argc, char **argv)
{
	const char *platform = a->platform, *ref = a->ref,
		   *pos[2] = {argv[0], argc > 1 ? argv[1] : NULL};
	_cleanup_err_ struct hutch_err *err = NULL;
	struct image_platform plat;
	if (platform ? image_platform_parse(platform, &plat, &err) < 0 : (image_platform_host(&plat), 0))
		return cli_report(ctx, err);
	enum archive_kind kind;
	if (archive_detect(pos[0], &kind, &err) < 0) {
		const char *colon = strrchr(pos[0], ':');
		struct stat st;
		_cleanup_free_ char *before = colon ? strndup(pos[0], colon - pos[0]) : NULL;
		if (err->errno_ == ENOENT && before && colon[1] && !strchr(colon, '/') &&
		    stat(before, &st) == 0) {
			/* skopeo's and umoci's oci:DIR:TAG */
			hutch_err_free(&err);
			hutch_fail(&err, 0,
				   "image import: '%s' does not exist; to import the image '%s' of "
				   "'%s': hutch image import --ref %s %s",
				   pos[0], colon + 1, before, colon + 1, before);
		} else if (err->errno_ == ENOENT) {
			hutch_err_free(&err);
			hutch_fail(
			    &err, 0,
			    "image import: '%s' does not exist: give a rootfs (a .tar, .tar.gz "
			    "or .tar.zst file, or a directory), an OCI image layout or a "
			    "`docker save` archive",
			    pos[0]);
		} else {
			hutch_err_wrap(&err, "image import");
		}
		return cli_report(ctx, err);
	}
	char id[65];
	if (kind == ARCHIVE_NONE) {
		if (ref) {
			fprintf(stderr, "hutch: image import: --ref applies to OCI layouts and docker "
					"archives; '%s' is a rootfs\n",
				pos[0]);
			return 125;
		}
		_cleanup_free_ char *name = pos[1] ? xstrdup(pos[1]) : name_from_path(pos[0]);
		_cleanup_free_ char *norm = NULL;
		if (!pos[1] && hutch_image_ref_normalize(name, &norm, NULL) < 0) {
			bool plain = strspn(pos[0], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
						    "0123456789_./-") == strlen(pos[0]);
			fprintf(stderr,
				"hutch: image import: '%s' (from the file name) is not a valid "
				"image name: give one (hutch image import %s%s%s NAME)\n",
				name, plain ? "" : "'", pos[0], plain ? "" : "'");
			return 125;
		}
		if (hutch_image_import(s, pos[0], name, id, &err) < 0)
			return cli_report(ctx, err);
		printf("sha256:%s\n", id);
		return 0;
	}
	struct image_plan *plan = NULL;
	if (archive_plan(pos[0], kind, ref, &plat, store_tmp_dir(s), &plan, &err) < 0) {
		hutch_err_wrap(&err, "import '%s'", pos[0]);
		return cli_report(ctx, err);
	}
	_cleanup_free_ char *derived = NULL;
	if (!pos[1] && plan->bad_name) {
		/* "../../x:1", or a name with a newline or an escape sequence in it:
		 * never stored, and never printed as it is */
		fprintf(stderr,
			"hutch: image import: '%s' gives its image an invalid name (%s): give it "
			"one (hutch image import %s NAME)\n",
			pos[0], plan->bad_name, pos[0]);
		image_plan_free(plan);
		return 125;
	}
	if (!pos[1] && plan->n_tags == 0 && plan->bare_tag) {
		/* skopeo and umoci name a layout's image by its tag alone
		 * ("oci:dir:latest"): the layout's own name is the repository */
		_cleanup_free_ char *base = name_from_path(pos[0]);
		derived = xasprintf("%s:%s", base, plan->bare_tag);
		_cleanup_free_ char *norm = NULL;
		/* the tag is the image's own text: shown escaped */
		_cleanup_free_ char *tag = printable(plan->bare_tag, strlen(plan->bare_tag));
		if (hutch_image_ref_normalize(derived, &norm, NULL) < 0) {
			_cleanup_free_ char *shown = printable(derived, strlen(derived));
			fprintf(stderr,
				"hutch: image import: '%s' names its image only '%s', and '%s' is "
				"not a valid name: add one (hutch image import %s NAME)\n",
				pos[0], tag, shown, pos[0]);
			image_plan_free(plan);
			return 125;
		}
		fprintf(stderr, "hutch: '%s' names its image only '%s': stored as '%s'\n", pos[0],
			tag, derived);
		pos[1] = derived;
	}
	if (!pos[1] && plan->n_tags == 0) {
		image_plan_free(plan);
		fprintf(stderr,
			"hutch: image import: '%s' gives its image no name: add one (hutch image "
			"import %s NAME)\n",
			pos[0], pos[0]);
		return 125;
	}
	/* A NAME given here is the name: the archive's own tags are not added. */
	if (pos[1]) {
		for (size_t i = 0; i < plan->n_tags; i++)
			free(plan->tags[i]);
		plan->n_tags = 0;
	}
	int r = store_import_plan(s, plan, pos[1], id, &err);
	image_plan_free(plan);
	if (r < 0)
		return cli_report(ctx, err);
	printf("sha256:%s\n", id);
	return 0;
}

static int image_pull(struct cli_ctx *ctx, const struct image_args *a, int argc, char **argv)
{
	struct pull_opts o = {.tls_verify = a->tls_verify, .progress = !a->quiet,
			      .auth_file = a->auth_file};
	const char *platform = a->platform, *ref = argv[0];
	(void)argc;
	_cleanup_err_ struct hutch_err *err = NULL;
	struct image_platform plat;
	if (platform ? image_platform_parse(platform, &plat, &err) < 0 : (image_platform_host(&plat), 0))
		return cli_report(ctx, err);
	o.platform = &plat;
	struct hutch_store *s = NULL;
	if (hutch_store_open(ctx->data_root, ctx->rootless, HUTCH_STORE_WRITE, &s, &err) < 0)
		return cli_report(ctx, err);
	struct image_plan *plan = NULL;
	char id[65];
	int rc = 0;
	if (registry_pull_plan(s, ref, &o, &plan, &err) < 0 ||
	    store_import_plan(s, plan, NULL, id, &err) < 0) {
		rc = cli_report(ctx, err);
	} else {
		printf("sha256:%s\n", id);
	}
	/* Stored, the downloaded blobs are not needed (unless another pull is
	 * using one right now); after a failure they stay, for the next pull to
	 * resume or reuse. */
	registry_release_downloads(rc == 0);
	image_plan_free(plan);
	hutch_store_close(s);
	return rc;
}

static int image_inspect(struct cli_ctx *ctx, struct hutch_store *s, int argc, char **argv)
{
	/* As docker: a JSON array of the images found (valid JSON, "[]" when
	 * none is), and an error for each one that is not. */
	int rc = 0;
	size_t found = 0;
	putchar('[');
	for (int i = 0; i < argc; i++) {
		_cleanup_err_ struct hutch_err *err = NULL;
		_cleanup_free_ char *json = NULL;
		if (hutch_image_inspect(s, argv[i], &json, &err) < 0) {
			fflush(stdout);
			rc = cli_report(ctx, err);
			continue;
		}
		printf("%s%s", found++ ? ",\n" : "", json);
	}
	puts("]");
	return rc;
}

static int image_rm(struct cli_ctx *ctx, struct hutch_store *s, int argc, char **argv)
{
	int rc = 0;
	for (int i = 0; i < argc; i++) {
		_cleanup_err_ struct hutch_err *err = NULL;
		struct hutch_image_removal done;
		if (hutch_image_remove(s, argv[i], &done, &err) < 0) {
			rc = cli_report(ctx, err);
			continue;
		}
		if (done.untagged)
			printf("Untagged: %s\n", done.untagged);
		if (done.deleted[0])
			printf("Deleted: sha256:%s\n", done.deleted);
		hutch_image_removal_free(&done);
	}
	return rc;
}

static int image_prune(struct cli_ctx *ctx, struct hutch_store *s)
{
	_cleanup_err_ struct hutch_err *err = NULL;
	int64_t freed;
	size_t ni, nl;
	if (hutch_image_prune(s, &freed, &ni, &nl, &err) < 0)
		return cli_report(ctx, err);
	char size[32];
	format_size(freed, size, sizeof(size));
	printf("removed %zu images and %zu layers, %s\n", ni, nl, size);
	return 0;
}

static int image_save(struct cli_ctx *ctx, struct hutch_store *s, const struct image_args *a,
		      int argc, char **argv)
{
	_cleanup_err_ struct hutch_err *err = NULL;
	const char *out = a->output && strcmp(a->output, "-") ? a->output : NULL;
	if (!out && isatty(STDOUT_FILENO)) {
		fprintf(stderr, "hutch: image save: refusing to write an archive to a terminal: "
				"give -o FILE or redirect the output\n");
		return 125;
	}
	if (hutch_image_save(s, argv, (size_t)argc, a->docker ? HUTCH_SAVE_DOCKER : HUTCH_SAVE_OCI,
			     out, &err) < 0) {
		hutch_err_wrap(&err, "image save");
		return cli_report(ctx, err);
	}
	return 0;
}

enum image_verb_id { V_IMPORT, V_LS, V_RM, V_TAG, V_INSPECT, V_PRUNE, V_SAVE, V_PULL };

static const struct cli_opt import_opts[] = {
	{"platform", 0, true, OPT_PLATFORM},
	{"ref", 0, true, OPT_REF},
};
static const struct cli_opt ls_opts[] = {
	{"format", 0, true, OPT_FORMAT},
	{"quiet", 'q', false, OPT_QUIET},
};
static const struct cli_opt save_opts[] = {
	{"output", 'o', true, OPT_OUTPUT},
	{"format", 0, true, OPT_SAVE_FORMAT},
};
static const struct cli_opt pull_opts[] = {
	{"platform", 0, true, OPT_PLATFORM},
	{"authfile", 0, true, OPT_AUTHFILE},
	{"quiet", 'q', false, OPT_QUIET},
};

static const struct image_verb {
	const char *name, *verb, *usage;
	enum image_verb_id id;
	const struct cli_opt *opts;
	size_t n_opts;
	int min_operands, max_operands; /* max -1: any number */
	const char *missing;		/* what to say when operands are missing */
} image_verbs[] = {
	{"import", "image import",
	 "Usage: hutch image import [--platform OS/ARCH[/VARIANT]] [--ref REF] SRC [NAME]\n"
	 "\n"
	 "SRC: an OCI image layout (a directory, or a tar of one), a `docker save`\n"
	 "archive, or a rootfs (.tar, .tar.gz, .tar.zst, or a directory). --ref picks\n"
	 "one image of several in an archive (its tag or ref.name). NAME names the\n"
	 "stored image (default: the archive's names, or the file name of a rootfs).\n",
	 V_IMPORT, import_opts, ARRAY_SIZE(import_opts), 1, 2, "give the source (SRC [NAME])"},
	{"ls", "image ls", "Usage: hutch image ls [--format json|table] [-q]\n", V_LS, ls_opts,
	 ARRAY_SIZE(ls_opts), 0, 0, NULL},
	{"list", "image ls", "Usage: hutch image ls [--format json|table] [-q]\n", V_LS, ls_opts,
	 ARRAY_SIZE(ls_opts), 0, 0, NULL},
	{"rm", "image rm", "Usage: hutch image rm NAME|ID...\n", V_RM, NULL, 0, 1, -1,
	 "give at least one image (name or id)"},
	{"tag", "image tag", "Usage: hutch image tag SRC DST\n", V_TAG, NULL, 0, 2, 2,
	 "give the image and its new name (SRC DST)"},
	{"inspect", "image inspect", "Usage: hutch image inspect NAME|ID...\n", V_INSPECT, NULL, 0,
	 1, -1, "give at least one image (name or id)"},
	{"prune", "image prune",
	 "Usage: hutch image prune\n"
	 "\n"
	 "Remove images without a name, layers no image uses, and finished downloads;\n"
	 "never what a container uses.\n",
	 V_PRUNE, NULL, 0, 0, 0, NULL},
	{"save", "image save",
	 "Usage: hutch image save [-o FILE|-] [--format oci|docker] IMAGE...\n"
	 "\n"
	 "Write images (names or ids) as one archive for other tools: an OCI image\n"
	 "layout tar (the default, as `podman save --format oci-archive`) or a\n"
	 "`docker save` archive, with each image's config and layers as stored (the\n"
	 "same image id and digests). -o: the file (default, or -: stdout).\n",
	 V_SAVE, save_opts, ARRAY_SIZE(save_opts), 1, -1, "give at least one image (name or id)"},
	{"pull", "pull",
	 "Usage: hutch pull [--tls-verify=false] [--platform OS/ARCH[/VARIANT]] [--authfile FILE]\n"
	 "                  [-q] REGISTRY/REPO[:TAG|@DIGEST]\n",
	 V_PULL, pull_opts, ARRAY_SIZE(pull_opts), 1, 1, "give the image to pull"},
};

/* --tls-verify is on by default, and the option parser takes "--flag=false"
 * as a flag not given: it is read (and taken out of argv) here. */
static int take_tls_verify(int *argc, char **argv, bool *verify)
{
	int out = 1, i = 1;
	for (; i < *argc && strcmp(argv[i], "--"); i++) {
		const char *a = argv[i];
		if (strncmp(a, "--tls-verify", 12) || (a[12] && a[12] != '=')) {
			argv[out++] = argv[i];
			continue;
		}
		if (!a[12] || !strcmp(a + 12, "=true")) {
			*verify = true;
		} else if (!strcmp(a + 12, "=false")) {
			*verify = false;
		} else {
			fprintf(stderr, "hutch: pull: --tls-verify is true or false, not '%s'\n",
				a + 13);
			return -1;
		}
	}
	for (; i < *argc; i++)
		argv[out++] = argv[i];
	argv[out] = NULL;
	*argc = out;
	return 0;
}

/* argv[0] is the verb's name; its options may come before or after operands. */
static int image_verb_run(struct cli_ctx *ctx, const struct image_verb *v, int argc, char **argv)
{
	struct image_args a = {.verb = v->verb, .tls_verify = true};
	if (v->id == V_PULL && take_tls_verify(&argc, argv, &a.tls_verify) < 0)
		return 125;
	int first = cli_parse_opts(v->verb, v->usage, v->opts, v->n_opts, true, argc, argv,
				   image_set, &a);
	if (first < 0)
		return first == -2 ? 0 : 125;
	int n = argc - first;
	if (n < v->min_operands) {
		fprintf(stderr, "hutch: %s: %s\n%s", v->verb, v->missing, v->usage);
		return 125;
	}
	if (v->max_operands >= 0 && n > v->max_operands) {
		fprintf(stderr, "hutch: %s: unexpected argument '%s' (see 'hutch %s --help')\n",
			v->verb, argv[first + v->max_operands], v->verb);
		return 125;
	}
	char **ops = argv + first;
	if (v->id == V_PULL)
		return image_pull(ctx, &a, n, ops);
	_cleanup_err_ struct hutch_err *err = NULL;
	struct hutch_store *s = NULL;
	if (hutch_store_open(ctx->data_root, ctx->rootless, HUTCH_STORE_WRITE, &s, &err) < 0)
		return cli_report(ctx, err);
	int rc = 0;
	switch (v->id) {
	case V_IMPORT:
		rc = image_import(ctx, s, &a, n, ops);
		break;
	case V_LS:
		rc = image_ls(ctx, s, &a);
		break;
	case V_TAG:
		if (hutch_image_tag(s, ops[0], ops[1], &err) < 0)
			rc = cli_report(ctx, err);
		break;
	case V_INSPECT:
		rc = image_inspect(ctx, s, n, ops);
		break;
	case V_PRUNE:
		rc = image_prune(ctx, s);
		break;
	case V_RM:
		rc = image_rm(ctx, s, n, ops);
		break;
	case V_SAVE:
		rc = image_save(ctx, s, &a, n, ops);
		break;
	case V_PULL:
		break;
	}
	hutch_store_close(s);
	return rc;
}

int cmd_pull(struct cli_ctx *ctx, int argc, char **argv)
{
	return image_verb_run(ctx, &image_verbs[ARRAY_SIZE(image_verbs) - 1], argc, argv);
}

int cmd_image(struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
		image_usage(argc < 1 ? stderr : stdout);
		return argc < 1 ? 125 : 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(image_verbs); i++)
		if (image_verbs[i].id != V_PULL && !strcmp(argv[0], image_verbs[i].name))
			return image_verb_run(ctx, &image_verbs[i], argc, argv);
	fprintf(stderr, "hutch: unknown image command '%s'\n", argv[0]);
	image_usage(stderr);
	return 125;
}
