/* hutch image import | ls | rm */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "common/util.h"
#include "images/images.h"

static void image_usage(FILE *out)
{
	fputs("Usage:\n"
	      "  hutch image import SRC [NAME]   SRC: .tar, .tar.gz, .tar.zst or a directory\n"
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
		char when[32], size[32];
		struct tm tm;
		gmtime_r(&l.refs[i].created, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
		format_size(l.refs[i].size, size, sizeof(size));
		if (json) {
			printf("%s{\"name\":", i ? "," : "");
			print_json_string(l.refs[i].name);
			printf(",\"id\":\"sha256:%s\",\"created\":%lld,\"size\":%lld}", l.refs[i].id,
			       (long long)l.refs[i].created, (long long)l.refs[i].size);
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
	if (hutch_store_open(ctx->data_root, ctx->rootless, &s, &err) < 0)
		return cli_report(ctx, err);
	int rc = 0;
	if (!strcmp(sub, "import")) {
		if (argc < 2 || argc > 3) {
			image_usage(stderr);
			rc = 125;
		} else {
			_cleanup_free_ char *name = argc == 3 ? xstrdup(argv[2])
							      : name_from_path(argv[1]);
			char id[65];
			if (hutch_image_import(s, argv[1], name, id, &err) < 0)
				rc = cli_report(ctx, err);
			else
				printf("sha256:%s\n", id);
		}
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
			if (hutch_image_remove(s, argv[i], &err) < 0) {
				rc = cli_report(ctx, err);
				hutch_err_free(&err);
			} else {
				printf("Untagged: %s\n", argv[i]);
			}
		}
	}
	hutch_store_close(s);
	return rc;
}
