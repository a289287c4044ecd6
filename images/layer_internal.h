/* Private to images/: reading layer streams (plain, gzip, zstd tar) and unpacking
 * them safely into a layer directory. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "common/err.h"

/* ---- byte streams with on-the-fly sha256 ---------------------------------- */

/* A source of bytes: returns bytes read, 0 at EOF, -1 with errno set. */
typedef ssize_t (*hutch_read_fn)(void *ctx, void *buf, size_t len);

struct layer_stream;

/* Open a stream over fd that sniffs the compression by magic bytes (gzip 1f 8b,
 * zstd 28 b5 2f fd, anything else is taken as plain tar) and decompresses.
 * sha256 is computed over the raw (compressed) bytes and the uncompressed bytes. */
int layer_stream_open(int fd, struct layer_stream **out, struct hutch_err **err);
/* The same over bytes [offset, offset+length) of fd (length -1: to EOF). */
int layer_stream_open_range(int fd, off_t offset, int64_t length, struct layer_stream **out,
			    struct hutch_err **err);
/* Read uncompressed bytes. 0 at EOF; -1 and *err on error (corrupt data says so). */
ssize_t layer_stream_read(struct layer_stream *s, void *buf, size_t len, struct hutch_err **err);
/* Drain to EOF (so the digests cover everything), then give the digests as
 * 64 lowercase hex chars. */
int layer_stream_finish(struct layer_stream *s, char compressed_hex[65],
			char uncompressed_hex[65], struct hutch_err **err);
/* Refuse (ENOSPC) once more than max uncompressed bytes come out; 0: no limit.
 * hutch has no ratio limit: a legitimate layer may hold gigabytes of zeros
 * (a disk image, a preallocated file); what must be refused is a layer that
 * cannot fit, and the store sets max from the free space where it unpacks. */
void layer_stream_set_max(struct layer_stream *s, uint64_t max);
/* After the tar in a stream was found unreadable: read the rest of a gzip or
 * zstd stream (up to the limit set) to see whether the compressed data is
 * corrupt, the likelier cause (a deflate stream can inflate into garbage that
 * only its CRC at the end gives away). If it is: -1, *err (the tar reader's
 * message) replaced by the decompressor's. Else 0 (also for a plain stream,
 * or one that already failed). */
int layer_stream_check_rest(struct layer_stream *s, struct hutch_err **err);
/* "gzip", "zstd" or "none" */
const char *layer_stream_compression(const struct layer_stream *s);
void layer_stream_free(struct layer_stream *s);

/* ---- tar reading ----------------------------------------------------------- */

enum tar_type {
	TAR_FILE, TAR_HARDLINK, TAR_SYMLINK, TAR_CHAR, TAR_BLOCK, TAR_DIR, TAR_FIFO,
};

struct tar_xattr {
	char *name;
	char *value;
	size_t len;
};

struct tar_entry {
	char *path; /* as in the archive (may hold "./", "..", leading "/") */
	char *linkname; /* hardlink target path or symlink text */
	enum tar_type type;
	mode_t mode; /* permission bits incl. setuid/setgid/sticky */
	uid_t uid;
	gid_t gid;
	int64_t size;
	struct timespec mtime;
	unsigned devmajor, devminor;
	struct tar_xattr *xattrs;
	size_t n_xattrs;
};

struct tar_reader;

/* Move a source n bytes ahead without reading them: 1 done, 0 if the source
 * ends first, -1 with errno set. */
typedef int (*hutch_skip_fn)(void *ctx, uint64_t n);

/* Read a tar (ustar, GNU long names/links, pax extended headers incl. path,
 * linkpath, size, uid, gid, mtime, SCHILY.xattr.*; base-256 numbers) from the
 * callback. Never trusts sizes: a truncated archive is an error, not EOF. */
struct tar_reader *tar_reader_new(hutch_read_fn read, void *ctx);
void tar_reader_free(struct tar_reader *r);
/* 1 and *entry (owned by the reader, valid until the next call) on an entry;
 * 0 at the end of the archive; -1 and *err on a malformed archive. Unread data
 * of the previous entry is skipped. */
int tar_next(struct tar_reader *r, const struct tar_entry **entry, struct hutch_err **err);
/* Read the current entry's data: bytes read, 0 at its end, -1 on error. */
ssize_t tar_read_data(struct tar_reader *r, void *buf, size_t len, struct hutch_err **err);
/* A tap sees every byte of the archive the reader consumes, in order: data
 * says whether it is the current entry's data (read or skipped) rather than
 * headers, metadata, padding or what follows the end. A tap turns off skipping
 * by seek. */
typedef void (*tar_tap_fn)(void *ctx, bool data, const void *buf, size_t len);
void tar_reader_set_tap(struct tar_reader *r, tar_tap_fn tap, void *ctx);
/* After the end of the archive: consume the rest of the source (the zero
 * blocks, a record's padding, anything after), so that a tap sees it all. */
int tar_reader_drain(struct tar_reader *r, struct hutch_err **err);
/* For a seekable source (a file): data the caller does not read is skipped by
 * calling skip (with the same ctx as read) instead of being read. */
void tar_reader_set_skip(struct tar_reader *r, hutch_skip_fn skip);
/* The reader itself failed: a malformed archive, or its source failed. */
bool tar_reader_failed(const struct tar_reader *r);
/* Offset in the archive of the current entry's next unread data byte: right
 * after tar_next, where its data starts (indexing a tar without extracting). */
uint64_t tar_data_offset(const struct tar_reader *r);

/* ---- unpacking --------------------------------------------------------------- */

struct unpack_opts {
	bool rootless; /* skip device nodes, no chown to ids outside the namespace,
			  whiteouts as user.overlay.* xattrs */
	bool convert_whiteouts; /* .wh.NAME -> overlay whiteout, .wh..wh..opq -> opaque */
	/* > 0: refuse, at its header and before writing any of it, a file whose
	 * data would take the layer's file data past this many bytes (the store
	 * gives the free space of its filesystem). */
	uint64_t max_bytes;
	/* Record the layer's tar as it streams by (tar_split_tap on the reader)
	 * with each regular file's data as a reference to where it is unpacked. */
	struct tar_split *split;
	/* Called as file data is written: the bytes and regular files so far. */
	void (*progress)(void *data, uint64_t bytes, uint64_t files);
	void *progress_data;
};

struct unpack_stats {
	uint64_t entries, bytes, files, skipped_devices;
};

/* Unpack every entry of r into the directory layer_dirfd. Entry names with a
 * ".." component or an absolute path, absolute or ".." hardlink targets, and a
 * symlink in place of the layer root ("/.", ".": CVE-2021-29136) are refused
 * with an error that names the entry. Every other path is resolved with
 * openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV) from
 * layer_dirfd, as Docker and containerd resolve them: a symlink in the layer
 * (absolute, or with ".." enough to climb out) is followed inside the layer,
 * never out of it. Ownership, mode (incl. setuid), mtimes and xattrs are kept
 * where allowed. On error the caller removes the (staging) directory. */
int layer_unpack(struct tar_reader *r, int layer_dirfd, const struct unpack_opts *opts,
		 struct unpack_stats *stats, struct hutch_err **err);

/* Validate "sha256:<64 lowercase hex>" (or a bare 64-hex id when bare is true)
 * before it is ever used as a path (CVE-2024-3727). */
bool digest_is_valid(const char *digest, bool bare);

/* ---- tar split (save.c): a stored layer given back as the tar it came as ------
 * A layer is kept unpacked; to hand it to other tools with its diff_id
 * unchanged, the exact bytes of its tar are needed again. While a layer is
 * unpacked, a split file records every byte of its tar except the data of
 * regular files, which it records as "LEN bytes of the file at PATH" (PATH as
 * unpacked, relative to the layer). Replaying the split against the layer
 * gives the tar back byte for byte; zstd-compressed, a split costs some tens of
 * bytes per entry (36 KiB for 3000 files) instead of a second copy of the layer. */
#define TAR_SPLIT_MAGIC	   "hutch-split 1\n"
#define TAR_SPLIT_MAX_PATH 4096 /* longer: the data is kept in the split */
struct tar_split;
struct tar_split *tar_split_new(int fd);
/* tar_tap_fn: the reader's bytes */
void tar_split_tap(void *ctx, bool data, const void *buf, size_t len);
/* The data of the entry just read goes into the file at path (normalised). */
void tar_split_file(struct tar_split *sp, const char *path);
/* Write out what is pending; -1 and *err if any write failed. Frees sp. */
int tar_split_finish(struct tar_split *sp, struct hutch_err **err);
void tar_split_free(struct tar_split *sp);
