/* Helpers shared by the verbs. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "common/err.h"
#include "common/util.h"

void cli_err_prefix(struct hutch_err **err, const char *prefix)
{
	if (!err || !*err)
		return;
	char *joined = xasprintf("%s%s", prefix, (*err)->msg);
	free((*err)->msg);
	(*err)->msg = joined;
}

char *cli_shown(const char *s)
{
	char *out = xcalloc(1, strlen(s) * 4 + 1), *o = out;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		/* C0 controls, DEL, and C1 controls as UTF-8 (U+0080-U+009F: some
		 * terminals take U+009B as CSI) */
		bool c1 = p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f;
		if (*p < 0x20 || *p == 0x7f || c1) {
			o += sprintf(o, "\\x%02x", *p);
			if (c1)
				o += sprintf(o, "\\x%02x", *++p);
		} else {
			*o++ = (char)*p;
		}
	}
	*o = '\0';
	return out;
}

int cli_report(struct cli_ctx *ctx, struct hutch_err *err)
{
	/* The last line of defence for text an image or a container put in a
	 * message: whatever was not escaped where it was put in, is here (a
	 * message is one line, never a newline or an escape sequence). */
	if (err && err->msg) {
		char *safe = cli_shown(err->msg);
		free(err->msg);
		err->msg = safe;
	}
	hutch_err_print(ctx->prog, err);
	return err && err->exit_code ? err->exit_code : 125;
}

/* The option being set, as the user wrote it ("-t", "--time"), for messages. */
static char given[64];

const char *cli_opt_given(void)
{
	return given;
}

/* One option at argv[*i]: returns 0, or -1 after printing the error. */
static int parse_one(const char *verb, const struct cli_opt *opts, size_t n_opts, int argc,
		     char **argv, int *i, int (*set)(void *, int, const char *), void *arg)
{
	const char *a = argv[*i];
	if (a[1] == '-') {
		const char *name = a + 2, *eq = strchr(name, '=');
		size_t nl = eq ? (size_t)(eq - name) : strlen(name);
		size_t k = 0;
		for (; k < n_opts; k++)
			if (strlen(opts[k].name) == nl && !strncmp(opts[k].name, name, nl))
				break;
		if (k == n_opts) {
			fprintf(stderr, "hutch: %s: unknown option '%s' (see 'hutch %s --help')\n",
				verb, a, verb);
			return -1;
		}
		const char *v = NULL;
		if (opts[k].value) {
			if (eq)
				v = eq + 1;
			else if (*i + 1 < argc)
				v = argv[++*i];
			else {
				fprintf(stderr, "hutch: %s: option '--%s' needs a value\n", verb,
					opts[k].name);
				return -1;
			}
		} else if (eq) {
			if (!strcmp(eq + 1, "false"))
				return 0;
			if (strcmp(eq + 1, "true")) {
				fprintf(stderr, "hutch: %s: '--%s' takes no value\n", verb,
					opts[k].name);
				return -1;
			}
		}
		snprintf(given, sizeof(given), "--%s", opts[k].name);
		return set(arg, opts[k].id, v);
	}
	for (const char *p = a + 1; *p; p++) {
		size_t k = 0;
		for (; k < n_opts; k++)
			if (opts[k].shortc == *p)
				break;
		if (k == n_opts) {
			fprintf(stderr, "hutch: %s: unknown option '-%c' (see 'hutch %s --help')\n",
				verb, *p, verb);
			return -1;
		}
		const char *v = NULL;
		if (opts[k].value) {
			if (p[1])
				v = p + 1;
			else if (*i + 1 < argc)
				v = argv[++*i];
			else {
				fprintf(stderr, "hutch: %s: option '-%c' needs a value\n", verb, *p);
				return -1;
			}
		}
		snprintf(given, sizeof(given), "-%c", *p);
		if (set(arg, opts[k].id, v) < 0)
			return -1;
		if (v)
			break;
	}
	return 0;
}

int cli_parse_opts(const char *verb, const char *usage, const struct cli_opt *opts, size_t n_opts,
		   bool interspersed, int argc, char **argv,
		   int (*set)(void *arg, int id, const char *value), void *arg)
{
	_cleanup_free_ char **operands = xcalloc((size_t)argc + 1, sizeof(char *));
	int n_operands = 0, i = 1;
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--")) {
			i++;
			break;
		}
		if (a[0] != '-' || !a[1]) {
			if (!interspersed)
				break;
			operands[n_operands++] = argv[i];
			continue;
		}
		if (!strcmp(a, "--help")) {
			bool in_table = false;
			for (size_t k = 0; k < n_opts; k++)
				in_table |= !strcmp(opts[k].name, "help");
			if (!in_table) {
				fputs(usage, stdout);
				return -2;
			}
		}
		if (parse_one(verb, opts, n_opts, argc, argv, &i, set, arg) < 0)
			return -1;
	}
	/* operands in their order, at the end: those seen, then the rest */
	int first = i - n_operands;
	memcpy(argv + first, operands, (size_t)n_operands * sizeof(char *));
	return first;
}
