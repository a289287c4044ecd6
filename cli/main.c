/* hutch: a container runtime, stack supervisor and container network. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/util.h"

#define HUTCH_VERSION "0.1.0"

static void usage(FILE *out)
{
	fputs("Usage: hutch [--root DIR] COMMAND [ARGS...]\n"
	      "\n"
	      "Commands:\n"
	      "  run [OPTIONS] IMAGE [COMMAND [ARG...]]  run a command in a new container\n"
	      "  ps [-a] [-q] [--format json]            list containers (json: one per line)\n"
	      "  exec [-it] [-e K=V] [-u U] [-w DIR] CONTAINER CMD...  run a command in it\n"
	      "  logs [-f] [--tail N] CONTAINER          a detached container's output\n"
	      "  stop [-t SECONDS] CONTAINER...          stop signal, then SIGKILL (default 10 s)\n"
	      "  kill [-s SIGNAL] CONTAINER...           send a signal (default SIGKILL)\n"
	      "  rm [-f] CONTAINER...                    remove stopped containers (-f: kill first)\n"
	      "  inspect CONTAINER...                    state as JSON\n"
	      "  start CONTAINER...                      start stopped containers again (detached)\n"
	      "  restart [-t SECONDS] CONTAINER...       stop (as stop does), then start again\n"
	      "  wait CONTAINER...                       wait until they exit; print exit codes\n"
	      "  build [-t NAME] [-f FILE] [--build-arg K=V] [--target S] CONTEXT  build an image\n"
	      "  builder prune [--all] [--keep-storage SIZE]  remove build cache no image uses\n"
	      "  pull [--tls-verify=false] [--platform P] REF  pull an image from a registry\n"
	      "  image import SRC [NAME]                 import an OCI layout, docker archive or rootfs\n"
	      "  image tag SRC DST | image inspect NAME | image prune\n"
	      "  image save [-o FILE] [--format oci|docker] IMAGE...  an archive for other tools\n"
	      "  image ls [--format json] [-q]           list images (also: images)\n"
	      "  image rm NAME...                        remove images (also: rmi)\n"
	      "  up [-f FILE] [-d] [--wait] [--wait-timeout S] [SERVICE...]  bring a stack up\n"
	      "  down [-f FILE] [-t SECS] [--volumes]    take a stack down\n"
	      "  with [-f FILE] [--timeout S] -- CMD...  up --wait, run CMD, down\n"
	      "  stack ls|ps|logs|start|stop|restart|exec|events|restore  a stack's services\n"
	      "  network create|ls|inspect|rm            bridge networks (see network --help)\n"
	      "  version                                 print the version\n"
	      "\n"
	      "Global options:\n"
	      "  --root DIR   keep all state (images, containers, runtime state) under DIR\n"
	      "  -q, --quiet  no warnings\n"
	      "\n"
	      "Run 'hutch COMMAND --help' for a command's options.\n",
	      out);
}

/* The run root in /tmp (rootless without XDG_RUNTIME_DIR) holds control
 * sockets, pid files and caches: another user could make /tmp/hutch-UID first
 * and then swap what is in it. It must be a directory of ours, private (0700),
 * not a symlink; /tmp's sticky bit keeps it ours once it is. */
static int private_tmp_dir(const char *path)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "hutch: cannot create %s: %s\n", path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (lstat(path, &st) < 0) {
		fprintf(stderr, "hutch: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 0077)) {
		fprintf(stderr,
			"hutch: %s is not a private directory of yours (it is %s, owner uid %u, "
			"mode %04o): someone else may have made it. Remove it, or set "
			"XDG_RUNTIME_DIR to a directory of your own\n",
			path, S_ISLNK(st.st_mode) ? "a symlink" : S_ISDIR(st.st_mode) ? "a directory"
											  : "a file",
			(unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}

static void default_roots(struct cli_ctx *ctx, const char *root)
{
	if (root) {
		ctx->data_root = xstrdup(root);
		ctx->run_root = xasprintf("%s/run", root);
		return;
	}
	if (!ctx->rootless) {
		ctx->data_root = xstrdup("/var/lib/hutch");
		ctx->run_root = xstrdup("/run/hutch");
		return;
	}
	const char *xdg_data = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
	const char *xdg_run = getenv("XDG_RUNTIME_DIR");
	if (xdg_data && *xdg_data)
		ctx->data_root = xasprintf("%s/hutch", xdg_data);
	else
		ctx->data_root = xasprintf("%s/.local/share/hutch", home && *home ? home : "/tmp");
	if (xdg_run && *xdg_run)
		ctx->run_root = xasprintf("%s/hutch", xdg_run);
	else
		ctx->run_root = xasprintf("/tmp/hutch-%u", (unsigned)getuid());
}

/* Started with fd 0, 1 or 2 closed, the next open would take it: a layer lock
 * on fd 1 is closed by the detached monitor's dup2 of /dev/null, and whatever
 * a container or a message writes to "stdout" would land in a lock or state
 * file. Occupy them with /dev/null, as daemons do. */
static int open_std_fds(void)
{
	for (int fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		/* the lowest free fd: this one, since those below are open */
		int got = open("/dev/null", O_RDWR);
		if (got < 0)
			return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (open_std_fds() < 0) {
		/* stderr may be the closed one: the exit code has to say it */
		fprintf(stderr, "hutch: cannot open /dev/null for a closed fd 0, 1 or 2: %s\n",
			strerror(errno));
		return 125;
	}
	const char *self = strrchr(argv[0], '/');
	self = self ? self + 1 : argv[0];
	if (!strcmp(self, "hutch-oci"))
		return cmd_oci(argc, argv);
	struct cli_ctx ctx = {.prog = "hutch", .rootless = running_rootless()};
	hutch_trace("main");
	const char *root = NULL;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--root") && i + 1 < argc) {
			root = argv[++i];
		} else if (!strncmp(argv[i], "--root=", 7)) {
			root = argv[i] + 7;
		} else if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet")) {
			ctx.quiet = true;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--version")) {
			printf("hutch version %s\n", HUTCH_VERSION);
			return 0;
		} else {
			fprintf(stderr, "hutch: unknown global option '%s'\n", argv[i]);
			usage(stderr);
			return 125;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return 125;
	}
	if (root && !*root) {
		fprintf(stderr, "hutch: --root needs a directory\n");
		return 125;
	}
	/* Absolute: a detached container's monitor leaves the caller's directory. */
	_cleanup_free_ char *abs_root = NULL;
	if (root && root[0] != '/') {
		_cleanup_free_ char *cwd = getcwd(NULL, 0);
		if (!cwd) {
			fprintf(stderr, "hutch: --root %s: cannot get the current directory: %s\n",
				root, strerror(errno));
			return 125;
		}
		root = abs_root = xasprintf("%s/%s", cwd, root);
	}
	default_roots(&ctx, root);
	if (!root && ctx.rootless && !strncmp(ctx.run_root, "/tmp/hutch-", 11) &&
	    private_tmp_dir(ctx.run_root) < 0)
		return 125;
	const char *verb = argv[i];
	int sub_argc = argc - i;
	char **sub_argv = argv + i;
	int rc;
	if (!strcmp(verb, "run")) {
		rc = cmd_run(&ctx, sub_argc, sub_argv);
	} else if (!strcmp(verb, "build")) {
		rc = cmd_build(&ctx, sub_argc, sub_argv);
	} else if (!strcmp(verb, "builder")) {
		rc = cmd_builder(&ctx, sub_argc, sub_argv);
	} else if (!strcmp(verb, "pull")) {
		rc = cmd_pull(&ctx, sub_argc, sub_argv);
	} else if (!strcmp(verb, "ps")) {
		rc = cmd_ps(&ctx, sub_argc, sub_argv);
	} else if (!strcmp(verb, "exec")) {
		rc = cmd_exec(&ctx, sub_argc, sub_argv);
	} else if (!strcmp(verb, "logs")) {
		rc = cmd_logs(&ctx, sub_argc, sub_argv);
	} else if (!strcmp(verb, "stop") || !strcmp(verb, "kill") || !strcmp(verb, "rm") ||
		   !strcmp(verb, "inspect") || !strcmp(verb, "start") || !strcmp(verb, "restart") ||
		   !strcmp(verb, "wait")) {
		rc = cmd_ctr(&ctx, sub_argc, sub_argv);
	} else if (!strcmp(verb, "up")) {
		rc = cmd_up(&ctx, sub_argc, sub_argv);
	} else if (!strcmp(verb, "down")) {
		rc = cmd_down(&ctx, sub_argc, sub_argv);
	} else if (!strcmp(verb, "with")) {
		rc = cmd_with(&ctx, sub_argc, sub_argv);
	} else if (!strcmp(verb, "stack")) {
		rc = cmd_stack(&ctx, sub_argc, sub_argv);
	} else if (!strcmp(verb, "__supervise")) {
		rc = cmd_supervise(&ctx, sub_argc, sub_argv);
	} else if (!strcmp(verb, "image")) {
		rc = cmd_image(&ctx, sub_argc - 1, sub_argv + 1);
	} else if (!strcmp(verb, "network")) {
		rc = cmd_network(&ctx, sub_argc - 1, sub_argv + 1);
	} else if (!strcmp(verb, "images")) {
		char *ls[] = {"ls"};
		char **args = xcalloc((size_t)sub_argc + 1, sizeof(char *));
		args[0] = ls[0];
		for (int k = 1; k < sub_argc; k++)
			args[k] = sub_argv[k];
		rc = cmd_image(&ctx, sub_argc, args);
		free(args);
	} else if (!strcmp(verb, "rmi")) {
		sub_argv[0] = "rm";
		rc = cmd_image(&ctx, sub_argc, sub_argv);
	} else if (!strcmp(verb, "internal")) {
		rc = cmd_internal(&ctx, sub_argc - 1, sub_argv + 1);
	} else if (!strcmp(verb, "version")) {
		printf("hutch version %s\n", HUTCH_VERSION);
		rc = 0;
	} else if (!strcmp(verb, "help")) {
		usage(stdout);
		rc = 0;
	} else {
		fprintf(stderr, "hutch: unknown command '%s' (see 'hutch --help')\n", verb);
		rc = 125;
	}
	free(ctx.data_root);
	free(ctx.run_root);
	return rc;
}
