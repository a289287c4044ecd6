/* The whole import path on arbitrary bytes: layer_stream (sniff, gunzip or
 * unzstd) -> tar_reader -> layer_unpack into a fresh directory, then check
 * that nothing appeared outside it. Runs as root, like `hutch` does, so
 * ownership, devices and trusted.* xattrs are exercised too.
 *
 * SANDBOX=/tmp/hutch-fuzz-tar-XXXXXX holds layer/ (recreated per input) and
 * sentinel/secret, the nearest thing a "../sentinel" symlink could reach. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/fuzz/fuzz_common.h"

static char sandbox[64];
static int sandbox_fd = -1;

static void remove_sandbox(void)
{
	if (sandbox_fd >= 0)
		remove_tree_at(AT_FDCWD, sandbox, NULL);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	strcpy(sandbox, "/tmp/hutch-fuzz-tar-XXXXXX");
	if (!mkdtemp(sandbox))
		abort();
	sandbox_fd = open(sandbox, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sandbox_fd < 0 || mkdirat(sandbox_fd, "sentinel", 0755) < 0 ||
	    write_file_at(sandbox_fd, "sentinel/secret", "original", NULL) < 0)
		abort();
	atexit(remove_sandbox);
	return 0;
}

static void escape_found(const char *what)
{
	fprintf(stderr, "ESCAPE: %s (sandbox %s)\n", what, sandbox);
	abort();
}

static void check_nothing_outside(void)
{
	DIR *d = opendir(sandbox);
	if (!d)
		abort();
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    strcmp(de->d_name, "layer") && strcmp(de->d_name, "sentinel"))
			escape_found(de->d_name);
	closedir(d);
	char path[128];
	snprintf(path, sizeof(path), "%s/sentinel", sandbox);
	d = opendir(path);
	if (!d)
		escape_found("sentinel is gone");
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    strcmp(de->d_name, "secret"))
			escape_found(de->d_name);
	closedir(d);
	struct stat st;
	char *content = NULL;
	if (fstatat(sandbox_fd, "sentinel/secret", &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !S_ISREG(st.st_mode) || st.st_nlink != 1 ||
	    read_file_at(sandbox_fd, "sentinel/secret", &content, NULL, NULL) < 0 ||
	    strcmp(content, "original"))
		escape_found("sentinel/secret changed");
	free(content);
	if (fstatat(sandbox_fd, "layer", &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
		escape_found("layer is no longer a directory");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (mkdirat(sandbox_fd, "layer", 0755) < 0)
		abort();
	int layer_fd = openat(sandbox_fd, "layer", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (layer_fd < 0)
		abort();

	/* Both modes from one corpus: the options come from the length. */
	struct unpack_opts opts = {.rootless = size & 1, .convert_whiteouts = size & 2};
	struct unpack_stats stats;
	struct hutch_err *err = NULL;
	struct layer_stream *ls = NULL;
	if (layer_stream_open(fuzz_input_fd(data, size), &ls, &err) == 0) {
		struct fuzz_stream_ctx ctx = {.ls = ls, .err = &err};
		struct tar_reader *r = tar_reader_new(fuzz_stream_read, &ctx);
		char comp[65], plain[65];
		int rc = layer_unpack(r, layer_fd, &opts, &stats, &err);
		if (rc == 0 && ctx.total < FUZZ_MAX_UNCOMPRESSED)
			layer_stream_finish(ls, comp, plain, &err);
		if (rc < 0 && tar_reader_failed(r)) {
			/* as the store does: is it the compression that is corrupt? */
			layer_stream_set_max(ls, FUZZ_MAX_UNCOMPRESSED);
			if (layer_stream_check_rest(ls, &err) < 0 && !err)
				abort();
		}
		tar_reader_free(r);
	}
	if (err && !err->msg)
		abort(); /* every failure says why */
	hutch_err_free(&err);
	layer_stream_free(ls);
	close(layer_fd);

	check_nothing_outside();
	struct hutch_err *rm_err = NULL;
	if (remove_tree_at(sandbox_fd, "layer", &rm_err) < 0) {
		hutch_err_print("fuzz_tar", rm_err);
		abort();
	}
	return 0;
}
