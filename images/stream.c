/* Layer byte streams: sniff the compression, decompress, and hash both the
 * bytes as stored (the blob digest in a manifest) and the bytes of the tar
 * (the diff id in an image config) in the same pass.
 *
 * This is on the hot path of importing big images, so decompressors write
 * straight into the caller's buffer and plain tars are read straight into it;
 * the only staging buffer is the one compressed input goes through. */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "common/sha256.h"
#include "common/util.h"
#include "images/layer_internal.h"

#define STREAM_INPUT_BUF (256 * 1024)

enum compression { COMP_NONE, COMP_GZIP, COMP_ZSTD };

struct layer_stream {
	int fd;
	off_t pos;     /* where the next pread goes; -1: read() from the current position */
	int64_t limit; /* raw bytes left to read from fd; -1: until EOF */
	uint64_t plain_total; /* uncompressed bytes produced */
	uint64_t plain_max;   /* refuse past this many (0: no limit) */
	enum compression comp;

	/* Raw bytes read from fd and not yet consumed. */
	uint8_t *in;
	size_t in_pos, in_len;
	bool in_eof;
	uint64_t raw_total; /* raw bytes read so far, for messages */

	z_stream gz;
	bool gz_ready;	      /* inflateInit2 succeeded */
	bool gz_member_done;  /* between two gzip members */
	bool gz_zero_padding; /* only zero bytes may follow */

	ZSTD_DStream *zstd;
	size_t zstd_hint; /* last ZSTD_decompressStream result: 0 = at a frame boundary */

	bool eof;    /* uncompressed EOF seen */
	bool failed; /* corrupt or unreadable: every later read fails too */
	struct sha256_ctx raw_sha, plain_sha;
};

static const char *comp_name(enum compression c)
{
	switch (c) {
	case COMP_GZIP:
		return "gzip";
	case COMP_ZSTD:
		return "zstd";
	default:
		return "none";
	}
}

/* A range is read with pread, so that workers unpacking several layers of
 * one file at once can share its fd (an unnamed temp file has no path). */
static ssize_t read_retry(struct layer_stream *s, void *buf, size_t len)
{
	for (;;) {
		ssize_t n = s->pos >= 0 ? pread(s->fd, buf, len, s->pos) : read(s->fd, buf, len);
		if (n > 0 && s->pos >= 0)
			s->pos += n;
		if (n >= 0 || errno != EINTR)
			return n;
	}
}

/* A blob may be a byte range of a larger file (a member of a docker archive):
 * never read past its end. */
static ssize_t read_source(struct layer_stream *s, void *buf, size_t len)
{
	if (s->limit == 0)
		return 0;
	if (s->limit > 0 && (int64_t)len > s->limit)
		len = (size_t)s->limit;
	ssize_t n = read_retry(s, buf, len);
	if (n > 0 && s->limit > 0)
		s->limit -= n;
	return n;
}

/* Refill the raw buffer once it is used up. Sets in_eof at the end of fd. */
static int fill_input(struct layer_stream *s, struct hutch_err **err)
{
	if (s->in_pos < s->in_len || s->in_eof)
		return 0;
	ssize_t n = read_source(s, s->in, STREAM_INPUT_BUF);
	if (n < 0)
		return hutch_fail_sys(err, "read layer (after %llu bytes)",
				      (unsigned long long)s->raw_total);
	s->in_pos = 0;
	s->in_len = (size_t)n;
	if (n == 0)
		s->in_eof = true;
	sha256_update(&s->raw_sha, s->in, (size_t)n);
	s->raw_total += (uint64_t)n;
	return 0;
}

int layer_stream_open(int fd, struct layer_stream **out, struct hutch_err **err)
{
	return layer_stream_open_range(fd, -1, -1, out, err);
}

int layer_stream_open_range(int fd, off_t offset, int64_t length, struct layer_stream **out,
			    struct hutch_err **err)
{
	struct layer_stream *s = xcalloc(1, sizeof(*s));
	s->fd = fd;
	s->pos = offset >= 0 ? offset : -1;
	s->limit = length;
	s->in = malloc(STREAM_INPUT_BUF);
	if (!s->in) {
		free(s);
		return hutch_fail(err, ENOMEM, "allocate layer read buffer");
	}
	sha256_init(&s->raw_sha);
	sha256_init(&s->plain_sha);

	/* Sniff: gather at least 4 bytes (or all there is). */
	while (s->in_len < 4 && !s->in_eof) {
		ssize_t n = read_source(s, s->in + s->in_len, STREAM_INPUT_BUF - s->in_len);
		if (n < 0) {
			int e = errno;
			layer_stream_free(s);
			return hutch_fail(err, e, "read layer");
		}
		if (n == 0)
			s->in_eof = true;
		sha256_update(&s->raw_sha, s->in + s->in_len, (size_t)n);
		s->in_len += (size_t)n;
		s->raw_total += (uint64_t)n;
	}

	static const uint8_t gzip_magic[] = {0x1f, 0x8b};
	static const uint8_t zstd_magic[] = {0x28, 0xb5, 0x2f, 0xfd};
	if (s->in_len >= 2 && !memcmp(s->in, gzip_magic, 2)) {
		s->comp = COMP_GZIP;
		/* 15+32: largest window, and accept a gzip (or zlib) header. */
		if (inflateInit2(&s->gz, 15 + 32) != Z_OK) {
			layer_stream_free(s);
			return hutch_fail(err, ENOMEM, "initialise gzip decompression");
		}
		s->gz_ready = true;
	} else if (s->in_len >= 4 && !memcmp(s->in, zstd_magic, 4)) {
		s->comp = COMP_ZSTD;
		s->zstd = ZSTD_createDStream();
		if (!s->zstd || ZSTD_isError(ZSTD_initDStream(s->zstd))) {
			layer_stream_free(s);
			return hutch_fail(err, ENOMEM, "initialise zstd decompression");
		}
		s->zstd_hint = 1;
	} else {
		s->comp = COMP_NONE;
	}
	*out = s;
	return 0;
}

void layer_stream_set_max(struct layer_stream *s, uint64_t max)
{
	s->plain_max = max;
}

const char *layer_stream_compression(const struct layer_stream *s)
{
	return comp_name(s->comp);
}

static ssize_t read_plain(struct layer_stream *s, uint8_t *buf, size_t len, struct hutch_err **err)
{
	/* Bytes kept back by the sniffing come first. */
	if (s->in_pos < s->in_len) {
		size_t n = s->in_len - s->in_pos;
		if (n > len)
			n = len;
		memcpy(buf, s->in + s->in_pos, n);
		s->in_pos += n;
		return (ssize_t)n;
	}
	if (s->in_eof)
		return 0;
	ssize_t n = read_source(s, buf, len);
	if (n < 0)
		return hutch_fail_sys(err, "read layer (after %llu bytes)",
				      (unsigned long long)s->raw_total);
	if (n == 0)
		s->in_eof = true;
	/* Raw and uncompressed are the same bytes: hash them once. */
	sha256_update(&s->raw_sha, buf, (size_t)n);
	s->raw_total += (uint64_t)n;
	return n;
}

/* After a gzip member ends, either another member follows (`cat a.gz b.gz`
 * is one valid stream) or only zero padding, which some tools append. */
static int gzip_between_members(struct layer_stream *s, struct hutch_err **err)
{
	while (s->in_pos < s->in_len) {
		if (s->gz_zero_padding || s->in[s->in_pos] == 0) {
			if (s->in[s->in_pos] != 0)
				return hutch_fail(
				    err, 0,
				    "gzip stream has unexpected bytes after its end "
				    "(at byte %llu)",
				    (unsigned long long)(s->raw_total - s->in_len + s->in_pos));
			s->gz_zero_padding = true;
			s->in_pos++;
			continue;
		}
		if (inflateReset(&s->gz) != Z_OK)
			return hutch_fail(err, 0, "reset gzip decompression");
		s->gz_member_done = false;
		return 0;
	}
	return 0;
}

static ssize_t read_gzip(struct layer_stream *s, uint8_t *buf, size_t len, struct hutch_err **err)
{
	for (;;) {
		if (fill_input(s, err) < 0)
			return -1;
		if (s->gz_member_done) {
			if (gzip_between_members(s, err) < 0)
				return -1;
			if (s->gz_member_done) {
				if (s->in_eof) {
					s->eof = true;
					return 0;
				}
				continue; /* need more input to decide */
			}
		}
		s->gz.next_in = s->in + s->in_pos;
		s->gz.avail_in = (uInt)(s->in_len - s->in_pos);
		s->gz.next_out = buf;
		s->gz.avail_out = len > UINT32_MAX ? UINT32_MAX : (uInt)len;
		int ret = inflate(&s->gz, Z_NO_FLUSH);
		size_t produced = (size_t)(s->gz.next_out - buf);
		s->in_pos = s->in_len - s->gz.avail_in;

		if (ret == Z_STREAM_END)
			s->gz_member_done = true;
		else if (ret != Z_OK && ret != Z_BUF_ERROR)
			return hutch_fail(
			    err, 0, "gzip data is corrupt near compressed byte %llu%s (zlib: %s)",
			    (unsigned long long)(s->raw_total - s->in_len + s->in_pos),
			    s->gz.msg && !strcmp(s->gz.msg, "incorrect data check")
				? ": the checksum (CRC-32) at the end of a gzip member does not "
				  "match the data before it"
				: "",
			    s->gz.msg ? s->gz.msg : "inflate failed");
		if (produced > 0)
			return (ssize_t)produced;
		/* inflate may still hold output from input it already took, so
		 * only a call that makes no progress at EOF means truncation. */
		if (!s->gz_member_done && s->in_pos == s->in_len && s->in_eof)
			return hutch_fail(
			    err, 0, "gzip stream is truncated (ends after %llu compressed bytes)",
			    (unsigned long long)s->raw_total);
	}
}

static ssize_t read_zstd(struct layer_stream *s, uint8_t *buf, size_t len, struct hutch_err **err)
{
	for (;;) {
		if (fill_input(s, err) < 0)
			return -1;
		ZSTD_inBuffer in = {s->in, s->in_len, s->in_pos};
		ZSTD_outBuffer out = {buf, len, 0};
		size_t ret = ZSTD_decompressStream(s->zstd, &out, &in);
		bool progress = in.pos != s->in_pos || out.pos > 0;
		s->in_pos = in.pos;
		if (ZSTD_isError(ret)) {
			/* Garbage after the magic reads as a frame header asking for
			 * a dictionary or odd parameters: zstd's own words for it
			 * ("Dictionary mismatch") would send one looking for a
			 * dictionary, which layers never use. */
			ZSTD_ErrorCode code = ZSTD_getErrorCode(ret);
			bool header = code == ZSTD_error_dictionary_wrong ||
				      code == ZSTD_error_frameParameter_unsupported ||
				      code == ZSTD_error_frameParameter_windowTooLarge ||
				      code == ZSTD_error_prefix_unknown;
			return hutch_fail(
			    err, 0, "zstd data is corrupt near compressed byte %llu%s (zstd: %s)",
			    (unsigned long long)(s->raw_total - s->in_len + s->in_pos),
			    header ? ": not a valid frame header" : "", ZSTD_getErrorName(ret));
		}
		/* A call without progress (no input left) answers with the size
		 * of a next frame header: not a sign the last frame is unfinished. */
		if (progress)
			s->zstd_hint = ret;
		if (out.pos > 0)
			return (ssize_t)out.pos;
		if (s->in_pos == s->in_len && s->in_eof) {
			if (s->zstd_hint != 0)
				return hutch_fail(err, 0,
						  "zstd stream is truncated (ends after %llu "
						  "compressed bytes)",
						  (unsigned long long)s->raw_total);
			s->eof = true;
			return 0;
		}
	}
}

ssize_t layer_stream_read(struct layer_stream *s, void *buf, size_t len, struct hutch_err **err)
{
	if (s->failed)
		return hutch_fail(err, 0, "the layer stream already failed to read");
	if (s->eof || len == 0)
		return 0;
	ssize_t n;
	switch (s->comp) {
	case COMP_GZIP:
		n = read_gzip(s, buf, len, err);
		break;
	case COMP_ZSTD:
		n = read_zstd(s, buf, len, err);
		break;
	default:
		n = read_plain(s, buf, len, err);
		break;
	}
	if (n < 0)
		s->failed = true;
	if (n > 0 && s->comp != COMP_NONE)
		sha256_update(&s->plain_sha, buf, (size_t)n);
	if (n > 0) {
		s->plain_total += (uint64_t)n;
		if (s->plain_max && s->plain_total > s->plain_max) {
			s->failed = true;
			char max[32];
			format_size((int64_t)s->plain_max, max, sizeof(max));
			return hutch_fail(err, ENOSPC,
					  "layer expands to more than %s (%llu bytes from %llu %s "
					  "bytes), more than there is room for: refusing it (a "
					  "decompression bomb, or free some space)",
					  max, (unsigned long long)s->plain_total,
					  (unsigned long long)s->raw_total, comp_name(s->comp));
		}
	}
	if (n == 0)
		s->eof = true;
	return n;
}

int layer_stream_finish(struct layer_stream *s, char compressed_hex[65], char uncompressed_hex[65],
			struct hutch_err **err)
{
	/* Drain what the tar reader left (padding after the end-of-archive
	 * blocks) so the digests cover the whole blob. */
	if (!s->eof) {
		_cleanup_free_ uint8_t *scratch = malloc(STREAM_INPUT_BUF);
		if (!scratch)
			return hutch_fail(err, ENOMEM, "allocate layer read buffer");
		for (;;) {
			ssize_t n = layer_stream_read(s, scratch, STREAM_INPUT_BUF, err);
			if (n < 0)
				return -1;
			if (n == 0)
				break;
		}
	}
	uint8_t digest[SHA256_DIGEST_LEN];
	sha256_final(&s->raw_sha, digest);
	sha256_hex(digest, compressed_hex);
	if (s->comp == COMP_NONE) {
		memcpy(uncompressed_hex, compressed_hex, 65);
	} else {
		sha256_final(&s->plain_sha, digest);
		sha256_hex(digest, uncompressed_hex);
	}
	/* The contexts are spent; hashing more would be a caller bug. */
	sha256_init(&s->raw_sha);
	sha256_init(&s->plain_sha);
	return 0;
}

int layer_stream_check_rest(struct layer_stream *s, struct hutch_err **err)
{
	if (s->comp == COMP_NONE || s->failed || s->eof)
		return 0;
	_cleanup_free_ uint8_t *scratch = malloc(STREAM_INPUT_BUF);
	if (!scratch)
		return 0;
	struct hutch_err *e = NULL;
	for (;;) {
		ssize_t n = layer_stream_read(s, scratch, STREAM_INPUT_BUF, &e);
		if (n == 0)
			return 0;
		if (n > 0)
			continue;
		/* past the space there is (a bomb): not a sign of corruption */
		if (e && e->errno_ == ENOSPC) {
			hutch_err_free(&e);
			return 0;
		}
		/* the cause, in place of what the tar reader made of its garbage */
		char *msg = xasprintf("%s; the tar it holds reads as garbage", e->msg);
		free(e->msg);
		e->msg = msg;
		if (err) {
			hutch_err_free(err);
			*err = e;
		} else {
			hutch_err_free(&e);
		}
		return -1;
	}
}

void layer_stream_free(struct layer_stream *s)
{
	if (!s)
		return;
	if (s->gz_ready)
		inflateEnd(&s->gz);
	if (s->zstd)
		ZSTD_freeDStream(s->zstd);
	free(s->in);
	free(s);
}
