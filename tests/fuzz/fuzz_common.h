/* Shared by the fuzz targets: an input as an fd, and a read callback over a
 * layer_stream that caps how much a tiny input may decompress to (a zstd or
 * gzip bomb would otherwise fill the disk or run out the clock). */
#pragma once
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/util.h"
#include "images/layer_internal.h"

#define FUZZ_MAX_UNCOMPRESSED (16u << 20)

/* One memfd reused for every input. */
static inline int fuzz_input_fd(const uint8_t *data, size_t size)
{
	static int fd = -1;
	if (fd < 0) {
		fd = memfd_create("fuzz-input", MFD_CLOEXEC);
		if (fd < 0)
			abort();
	}
	if (ftruncate(fd, 0) < 0 || (size && pwrite(fd, data, size, 0) != (ssize_t)size) ||
	    lseek(fd, 0, SEEK_SET) != 0)
		abort();
	return fd;
}

struct fuzz_stream_ctx {
	struct layer_stream *ls;
	struct hutch_err **err;
	size_t total;
};

static inline ssize_t fuzz_stream_read(void *ctx, void *buf, size_t len)
{
	struct fuzz_stream_ctx *c = ctx;
	if (c->total >= FUZZ_MAX_UNCOMPRESSED) {
		errno = EFBIG;
		return -1;
	}
	if (len > FUZZ_MAX_UNCOMPRESSED - c->total)
		len = FUZZ_MAX_UNCOMPRESSED - c->total;
	ssize_t n = layer_stream_read(c->ls, buf, len, c->err);
	if (n < 0) {
		errno = EIO;
		return -1;
	}
	c->total += (size_t)n;
	return n;
}
