/* Image archives (images/archive.c) on arbitrary bytes taken as a tar: member
 * indexing, links followed inside the archive, docker save and OCI layout
 * plans. A plan that comes out must point inside the input, with digests that
 * are valid or empty. Compressed inputs are left to fuzz_stream: decompressing
 * a bomb into a temp file would only measure the disk. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "images/layer_internal.h"
#include "images/source_internal.h"

static void check_plan(const struct image_plan *p, const char *path, size_t size)
{
	if (!p->config || p->tmp_fd >= 0)
		abort();
	if (p->config_digest[0] && !digest_is_valid(p->config_digest, false))
		abort();
	for (size_t i = 0; i < p->n_layers; i++) {
		const struct plan_layer *l = &p->layers[i];
		if (l->digest[0] && !digest_is_valid(l->digest, false))
			abort();
		if (strcmp(l->path, path) || l->offset < 0 || l->length < 0 ||
		    (uint64_t)l->offset + (uint64_t)l->length > size)
			abort();
	}
	for (size_t i = 0; i < p->n_tags; i++)
		if (!p->tags[i][0])
			abort();
}

static char path[64];

static void remove_input(void)
{
	unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!path[0]) {
		snprintf(path, sizeof(path), "/tmp/hutch-fuzz-archive-%d.tar", (int)getpid());
		atexit(remove_input);
	}
	if ((size >= 2 && data[0] == 0x1f && data[1] == 0x8b) ||
	    (size >= 4 && !memcmp(data, "\x28\xb5\x2f\xfd", 4)))
		return 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write_all(fd, data, size) < 0)
		abort();
	close(fd);

	struct hutch_err *err = NULL;
	enum archive_kind kind;
	if (archive_detect(path, &kind, &err) == 0 && kind != ARCHIVE_NONE &&
	    kind != ARCHIVE_OCI_TAR && kind != ARCHIVE_DOCKER_TAR)
		abort();
	hutch_err_free(&err);

	/* Whatever detection says, the planner reads what the tar holds. */
	static const char *const refs[] = {NULL, "app:1", "latest"};
	const char *ref = refs[size % ARRAY_SIZE(refs)];
	struct image_platform arm;
	if (image_platform_parse("linux/arm64", &arm, NULL) < 0)
		abort();
	struct image_plan *p = NULL;
	if (archive_plan(path, ARCHIVE_DOCKER_TAR, ref, size % 2 ? &arm : NULL, NULL, &p, &err) == 0) {
		check_plan(p, path, size);
		image_plan_free(p);
	}
	hutch_err_free(&err);
	return 0;
}
