/* Split files (layer_internal.h: tar_split): while a layer is unpacked, the
 * bytes of its tar are recorded but for the data of regular files, which is
 * recorded as where it went. save.c replays them. Its own file so that the
 * unpacker (and its fuzz target) does not need the rest of save.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zstd.h>

#include "common/util.h"
#include "images/layer_internal.h"

#define SPLIT_RAW_BUF (64 * 1024)

/* ---- recording (while a layer is unpacked) ------------------------------------- */

/* The file is one zstd stream (a tar's headers are mostly zeros: about 1 KiB
 * an entry becomes some 100 bytes) of: TAR_SPLIT_MAGIC, then records: 'R' u64
 * len, then len bytes of the tar; 'F' u64 len u32 plen, then plen bytes of
 * path: len bytes of data from the file at path; 'E' u64 the tar's total
 * length. Numbers little-endian. */
struct tar_split {
	int fd;
	ZSTD_CStream *zs;
	uint8_t zbuf[16384];
	int errno_; /* the first write that failed */
	uint8_t *raw;
	size_t n_raw;
	char *path; /* the entry whose data goes to a file, while it streams */
	uint64_t file_len, total;
};

/* Compress (end: finish the stream) and write what comes out. */
static void put_z(struct tar_split *sp, const void *buf, size_t len, bool end)
{
	ZSTD_inBuffer in = {buf, len, 0};
	for (;;) {
		if (sp->errno_)
			return;
		ZSTD_outBuffer out = {sp->zbuf, sizeof(sp->zbuf), 0};
		size_t left =
		    ZSTD_compressStream2(sp->zs, &out, &in, end ? ZSTD_e_end : ZSTD_e_continue);
		if (ZSTD_isError(left))
			sp->errno_ = EIO;
		else if (out.pos && write_all(sp->fd, sp->zbuf, out.pos) < 0)
			sp->errno_ = errno ? errno : EIO;
		if (end ? left == 0 : in.pos == in.size)
			return;
	}
}

static void put_bytes(struct tar_split *sp, const void *buf, size_t len)
{
	put_z(sp, buf, len, false);
}

static void put_record(struct tar_split *sp, char type, uint64_t len)
{
	uint8_t rec[9];
	rec[0] = (uint8_t)type;
	for (int i = 0; i < 8; i++)
		rec[1 + i] = (uint8_t)(len >> (8 * i));
	put_bytes(sp, rec, sizeof(rec));
}

static void flush_raw(struct tar_split *sp)
{
	if (!sp->n_raw)
		return;
	put_record(sp, 'R', sp->n_raw);
	put_bytes(sp, sp->raw, sp->n_raw);
	sp->n_raw = 0;
}

static void flush_file(struct tar_split *sp)
{
	if (!sp->path)
		return;
	if (sp->file_len) {
		flush_raw(sp);
		size_t plen = strlen(sp->path);
		put_record(sp, 'F', sp->file_len);
		uint8_t l[4] = {(uint8_t)plen, (uint8_t)(plen >> 8), (uint8_t)(plen >> 16),
				(uint8_t)(plen >> 24)};
		put_bytes(sp, l, 4);
		put_bytes(sp, sp->path, plen);
	}
	free(sp->path);
	sp->path = NULL;
	sp->file_len = 0;
}

struct tar_split *tar_split_new(int fd)
{
	struct tar_split *sp = xcalloc(1, sizeof(*sp));
	sp->fd = fd;
	sp->raw = xcalloc(1, SPLIT_RAW_BUF);
	sp->zs = ZSTD_createCStream();
	if (!sp->zs)
		sp->errno_ = ENOMEM;
	else
		ZSTD_CCtx_setParameter(sp->zs, ZSTD_c_compressionLevel, 3);
	put_bytes(sp, TAR_SPLIT_MAGIC, strlen(TAR_SPLIT_MAGIC));
	return sp;
}

void tar_split_tap(void *ctx, bool data, const void *buf, size_t len)
{
	struct tar_split *sp = ctx;
	sp->total += len;
	if (data && sp->path) {
		sp->file_len += len;
		return;
	}
	flush_file(sp);
	const uint8_t *p = buf;
	while (len) {
		size_t take = SPLIT_RAW_BUF - sp->n_raw < len ? SPLIT_RAW_BUF - sp->n_raw : len;
		memcpy(sp->raw + sp->n_raw, p, take);
		sp->n_raw += take;
		p += take;
		len -= take;
		if (sp->n_raw == SPLIT_RAW_BUF)
			flush_raw(sp);
	}
}

void tar_split_file(struct tar_split *sp, const char *path)
{
	flush_file(sp);
	if (strlen(path) <= TAR_SPLIT_MAX_PATH)
		sp->path = xstrdup(path); /* longer: its data stays in the split */
}

void tar_split_free(struct tar_split *sp)
{
	if (!sp)
		return;
	if (sp->fd >= 0)
		close(sp->fd);
	ZSTD_freeCStream(sp->zs);
	free(sp->raw);
	free(sp->path);
	free(sp);
}

int tar_split_finish(struct tar_split *sp, struct hutch_err **err)
{
	flush_file(sp);
	flush_raw(sp);
	put_record(sp, 'E', sp->total);
	put_z(sp, NULL, 0, true);
	int e = sp->errno_;
	if (!e && close(sp->fd) < 0)
		e = errno;
	sp->fd = -1;
	tar_split_free(sp);
	if (e)
		return hutch_fail(err, e, "write the layer's split file");
	return 0;
}
