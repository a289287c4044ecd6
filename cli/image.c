/* hutch image import | ls | rm */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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
	      "  hutch image ls [--format json] [-q]\n"
	      "  hutch image rm NAME|ID...\n"
	      "  hutch image tag SRC DST\n"
	      "  hutch image inspect NAME|ID...\n"
	      "  hutch image prune             remove unnamed images and unused layers\n",
	      out);
}

/* "rootfs.tar.gz" -> "rootfs" */
static char *name_from_path(const char *src)
{
	_cleanup_free_ char *copy = xstrdup(src);
	char *b = basename(copy);
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

static int image_ls(struct cli_ctx *ctx, struct hutch_store *s, int argc, char **argv)
{
	bool json = false, quiet = false;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--format") && i + 1 < argc && !strcmp(argv[i + 1], "json")) {
			json = true;
			i++;
		} else if (!strcmp(argv[i], "--format=json")) {
			json = true;
		} else if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet")) {
			quiet = true;
		} else {
			fprintf(stderr, "hutch: image ls: unknown option '%s'\n", argv[i]);
			return 125;
		}
	}
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

static int image_import(struct cli_ctx *ctx, struct hutch_store *s, int argc, char **argv)
{
	const char *platform = NULL, *ref = NULL, *pos[2] = {NULL, NULL};
	int npos = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--platform") && i + 1 < argc)
			platform = argv[++i];
		else if (!strncmp(argv[i], "--platform=", 11))
			platform = argv[i] + 11;
		else if (!strcmp(argv[i], "--ref") && i + 1 < argc)
			ref = argv[++i];
		else if (!strncmp(argv[i], "--ref=", 6))
			ref = argv[i] + 6;
		else if (argv[i][0] == '-' && argv[i][1]) {
			fprintf(stderr, "hutch: image import: unknown option '%s'\n", argv[i]);
			return 125;
		} else if (npos < 2)
			pos[npos++] = argv[i];
		else {
			image_usage(stderr);
			return 125;
		}
	}
	if (npos < 1) {
		image_usage(stderr);
		return 125;
	}
	_cleanup_err_ struct hutch_err *err = NULL;
	struct image_platform plat;
	if (platform ? image_platform_parse(platform, &plat, &err) < 0 : (image_platform_host(&plat), 0))
		return cli_report(ctx, err);
	enum archive_kind kind;
	if (archive_detect(pos[0], &kind, &err) < 0) {
		if (err->errno_ == ENOENT) {
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
		if (hutch_image_import(s, pos[0], name, id, &err) < 0)
			return cli_report(ctx, err);
		printf("sha256:%s\n", id);
		return 0;
	}
	struct image_plan *plan = NULL;
	if (archive_plan(pos[0], kind, ref, &plat, store_tmp_dir(s), &plan, &err) < 0)
		return cli_report(ctx, err);
	_cleanup_free_ char *derived = NULL;
	if (!pos[1] && plan->n_tags == 0 && plan->bare_tag) {
		/* skopeo and umoci name a layout's image by its tag alone
		 * ("oci:dir:latest"): the layout's own name is the repository */
		_cleanup_free_ char *base = name_from_path(pos[0]);
		derived = xasprintf("%s:%s", base, plan->bare_tag);
		_cleanup_free_ char *norm = NULL;
		if (hutch_image_ref_normalize(derived, &norm, NULL) < 0) {
			fprintf(stderr,
				"hutch: image import: '%s' names its image only '%s', and '%s' is "
				"not a valid name: add one (hutch image import %s NAME)\n",
				pos[0], plan->bare_tag, derived, pos[0]);
			image_plan_free(plan);
			return 125;
		}
		fprintf(stderr, "hutch: '%s' names its image only '%s': stored as '%s'\n", pos[0],
			plan->bare_tag, derived);
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

int cmd_pull(struct cli_ctx *ctx, int argc, char **argv)
{
	struct pull_opts o = {.tls_verify = true, .progress = true};
	const char *platform = NULL, *ref = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--tls-verify=false"))
			o.tls_verify = false;
		else if (!strcmp(a, "--tls-verify") || !strcmp(a, "--tls-verify=true"))
			o.tls_verify = true;
		else if (!strcmp(a, "--platform") && i + 1 < argc)
			platform = argv[++i];
		else if (!strncmp(a, "--platform=", 11))
			platform = a + 11;
		else if (!strcmp(a, "--authfile") && i + 1 < argc)
			o.auth_file = argv[++i];
		else if (!strncmp(a, "--authfile=", 11))
			o.auth_file = a + 11;
		else if (!strcmp(a, "-q") || !strcmp(a, "--quiet"))
			o.progress = false;
		else if (a[0] == '-') {
			fprintf(stderr, "hutch: pull: unknown option '%s'\n", a);
			return 125;
		} else if (!ref)
			ref = a;
		else {
			fprintf(stderr, "hutch: pull: one image at a time\n");
			return 125;
		}
	}
	if (!ref) {
		fprintf(stderr, "hutch: pull: usage: hutch pull [--tls-verify=false] [--platform "
				"OS/ARCH[/VARIANT]] [--authfile FILE] REGISTRY/REPO[:TAG|@DIGEST]\n");
		return 125;
	}
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

int cmd_image(struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
		image_usage(argc < 1 ? stderr : stdout);
		return argc < 1 ? 125 : 0;
	}
	_cleanup_err_ struct hutch_err *err = NULL;
	struct hutch_store *s = NULL;
	const char *sub = argv[0];
	static const char *const subs[] = {"import", "ls", "list", "rm", "tag", "inspect", "prune"};
	bool known = false;
	for (size_t i = 0; i < ARRAY_SIZE(subs); i++)
		known |= !strcmp(sub, subs[i]);
	if (!known) {
		fprintf(stderr, "hutch: unknown image command '%s'\n", sub);
		image_usage(stderr);
		return 125;
	}
	if (hutch_store_open(ctx->data_root, ctx->rootless, HUTCH_STORE_WRITE, &s, &err) < 0)
		return cli_report(ctx, err);
	int rc = 0;
	if (!strcmp(sub, "import")) {
		rc = image_import(ctx, s, argc, argv);
	} else if (!strcmp(sub, "ls") || !strcmp(sub, "list")) {
		rc = image_ls(ctx, s, argc, argv);
	} else if (!strcmp(sub, "tag")) {
		if (argc != 3) {
			image_usage(stderr);
			rc = 125;
		} else if (hutch_image_tag(s, argv[1], argv[2], &err) < 0) {
			rc = cli_report(ctx, err);
		}
	} else if (!strcmp(sub, "inspect")) {
		if (argc < 2) {
			image_usage(stderr);
			rc = 125;
		}
		for (int i = 1; i < argc && rc == 0; i++) {
			_cleanup_free_ char *json = NULL;
			if (hutch_image_inspect(s, argv[i], &json, &err) < 0) {
				rc = cli_report(ctx, err);
				break;
			}
			printf("%s%s%s", i == 1 ? "[" : ",\n", json, i == argc - 1 ? "]\n" : "");
		}
	} else if (!strcmp(sub, "prune")) {
		int64_t freed;
		size_t ni, nl;
		if (hutch_image_prune(s, &freed, &ni, &nl, &err) < 0) {
			rc = cli_report(ctx, err);
		} else {
			char size[32];
			format_size(freed, size, sizeof(size));
			printf("removed %zu images and %zu layers, %s\n", ni, nl, size);
		}
	} else {
		if (argc < 2) {
			image_usage(stderr);
			rc = 125;
		}
		for (int i = 1; i < argc; i++) {
			struct hutch_image_removal done;
			if (hutch_image_remove(s, argv[i], &done, &err) < 0) {
				rc = cli_report(ctx, err);
				hutch_err_free(&err);
				continue;
			}
			if (done.untagged)
				printf("Untagged: %s\n", done.untagged);
			if (done.deleted[0])
				printf("Deleted: sha256:%s\n", done.deleted);
			hutch_image_removal_free(&done);
		}
	}
	hutch_store_close(s);
	return rc;
}
