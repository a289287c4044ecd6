/* A tar reader for image layers: ustar, GNU long names ('L', 'K'), pax
 * extended and global headers ('x', 'g'), base-256 numbers, old V7 headers.
 *
 * The archive comes from someone else, so every size it states is bounded
 * before anything is allocated for it, and running out of bytes anywhere but
 * at a header boundary is an error naming the entry, never a quiet EOF.
 *
 * Where readers disagree we follow Go's archive/tar, which wrote and reads most
 * layers in the wild: e.g. symlinks, hardlinks, devices, fifos and directories
 * carry no data whatever their size field says, so the next header is where
 * Docker and containerd see it too. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "common/util.h"
#include "images/layer_internal.h"

#define BLOCK_SIZE   512
#define TAR_BUF_SIZE (128 * 1024)
/* A data read at least this big with nothing buffered goes straight into the
 * caller's buffer instead of through ours. */
#define TAR_DIRECT_READ (32 * 1024)

/* Bounds on what hostile input can make us allocate. */
#define TAR_MAX_NAME	    (64 * 1024)	  /* GNU 'L'/'K' data, pax path/linkpath */
#define TAR_MAX_PAX	    (1024 * 1024) /* records of one pax 'x' header */
#define TAR_MAX_PAX_GLOBAL  (1024 * 1024) /* all pax 'g' records together */
#define TAR_MAX_XATTRS	    256		  /* per entry */
#define TAR_MAX_XATTR_NAME  255		  /* XATTR_NAME_MAX */
#define TAR_MAX_XATTR_VALUE (64 * 1024)	  /* XATTR_SIZE_MAX */

/* Offsets in a header block. */
enum {
	H_NAME = 0,
	H_MODE = 100,
	H_UID = 108,
	H_GID = 116,
	H_SIZE = 124,
	H_MTIME = 136,
	H_CHKSUM = 148,
	H_TYPE = 156,
	H_LINKNAME = 157,
	H_MAGIC = 257,
	H_DEVMAJOR = 329,
	H_DEVMINOR = 337,
	H_PREFIX = 345,
};

enum tar_format { FMT_V7, FMT_USTAR, FMT_GNU };

struct tar_reader {
	hutch_read_fn read;
	hutch_skip_fn skip; /* optional: seek over data instead of reading it */
	void *ctx;
	tar_tap_fn tap; /* optional: sees every byte consumed, in order */
	void *tap_ctx;
	bool tap_data; /* what is being consumed is the current entry's data */

	uint8_t *buf;
	size_t pos, len;
	uint64_t consumed; /* archive offset of buf[pos], for messages */
	bool src_eof;

	bool done;	   /* end of archive seen */
	bool failed;	   /* a malformed archive: every later call fails too */
	int64_t data_left; /* unread data bytes of the current entry */
	int64_t pad_left;  /* padding up to the next block after the data */

	/* Metadata headers waiting for the entry they describe. */
	char *gnu_name, *gnu_link;
	char *pax_local;
	size_t pax_local_len;
	char *pax_global;
	size_t pax_global_len;

	/* The current entry; its strings and xattrs are owned here. */
	struct tar_entry entry;
	struct tar_entry hdr; /* as the header block alone says (pax may override) */
	char *hdr_path, *hdr_link, *pax_path, *pax_link;
	struct tar_xattr *xattrs;
	size_t n_xattrs;
};

/* ---- messages -------------------------------------------------------------- */

static const char *entry_name(const struct tar_reader *r)
{
	return r->entry.path ? r->entry.path : "";
}

static int fail_entry(struct tar_reader *r, struct hutch_err **err, int errno_, const char *name,
		      const char *what)
{
	_cleanup_free_ char *shown = printable(name, strlen(name));
	r->failed = true;
	return hutch_fail(err, errno_, "layer entry '%s': %s", shown, what);
}

/* ---- buffered input ------------------------------------------------------------ */

/* Read at most len bytes from the source; 0 at its end. */
static ssize_t source_read(struct tar_reader *r, void *buf, size_t len, struct hutch_err **err)
{
	if (r->src_eof)
		return 0;
	for (;;) {
		ssize_t n = r->read(r->ctx, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return hutch_fail_sys(err, "read the archive (at byte %" PRIu64 ")",
					      r->consumed);
		if ((size_t)n > len)
			return hutch_fail(err, EIO, "archive source returned more than asked");
		if (n == 0)
			r->src_eof = true;
		return n;
	}
}

/* Make at least `need` (<= TAR_BUF_SIZE) bytes available at buf[pos].
 * 1 when they are, 0 when the source ends first, -1 on error. */
static int fill(struct tar_reader *r, size_t need, struct hutch_err **err)
{
	if (r->len - r->pos >= need)
		return 1;
	if (r->pos > 0) {
		memmove(r->buf, r->buf + r->pos, r->len - r->pos);
		r->len -= r->pos;
		r->pos = 0;
	}
	while (r->len < need) {
		ssize_t n = source_read(r, r->buf + r->len, TAR_BUF_SIZE - r->len, err);
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		r->len += (size_t)n;
	}
	return 1;
}

static void consume(struct tar_reader *r, size_t n)
{
	if (r->tap && n)
		r->tap(r->tap_ctx, r->tap_data, r->buf + r->pos, n);
	r->pos += n;
	r->consumed += n;
}

/* Drop n bytes of archive. 1 done, 0 the archive ended first, -1 error. */
static int skip_bytes(struct tar_reader *r, uint64_t n, struct hutch_err **err)
{
	while (n > 0) {
		if (r->pos == r->len && r->skip && !r->tap && !r->src_eof) {
			int s = r->skip(r->ctx, n);
			if (s < 0)
				return hutch_fail_sys(
				    err, "skip in the archive (at byte %" PRIu64 ")", r->consumed);
			if (s == 0) {
				r->src_eof = true;
				return 0;
			}
			r->pos = r->len = 0;
			r->consumed += n;
			return 1;
		}
		if (r->pos == r->len) {
			r->pos = r->len = 0;
			ssize_t got = source_read(r, r->buf, TAR_BUF_SIZE, err);
			if (got < 0)
				return -1;
			if (got == 0)
				return 0;
			r->len = (size_t)got;
		}
		size_t take = r->len - r->pos;
		if (take > n)
			take = (size_t)n;
		consume(r, take);
		n -= take;
	}
	return 1;
}

/* Copy up to len bytes of archive into dst: from our buffer first, then
 * directly from the source for big reads. 0 only when the source has ended. */
static ssize_t read_archive(struct tar_reader *r, uint8_t *dst, size_t len, struct hutch_err **err)
{
	if (r->pos == r->len) {
		r->pos = r->len = 0;
		if (len >= TAR_DIRECT_READ) {
			ssize_t n = source_read(r, dst, len, err);
			if (n > 0) {
				r->consumed += (uint64_t)n;
				if (r->tap)
					r->tap(r->tap_ctx, r->tap_data, dst, (size_t)n);
			}
			return n;
		}
		ssize_t n = source_read(r, r->buf, TAR_BUF_SIZE, err);
		if (n <= 0)
			return n;
		r->len = (size_t)n;
	}
	size_t n = r->len - r->pos;
	if (n > len)
		n = len;
	memcpy(dst, r->buf + r->pos, n);
	consume(r, n);
	return (ssize_t)n;
}

static uint64_t padding_for(uint64_t size)
{
	return (BLOCK_SIZE - size % BLOCK_SIZE) % BLOCK_SIZE;
}

/* ---- header fields ---------------------------------------------------------------- */

/* A NUL-terminated-if-short string field. */
static size_t field_strlen(const uint8_t *f, size_t n)
{
	const uint8_t *nul = memchr(f, 0, n);
	return nul ? (size_t)(nul - f) : n;
}

/* A numeric field: octal, optionally padded with spaces or NULs, or GNU/star
 * base-256 (top bit of the first byte set; two's complement, so it can be
 * negative, which only mtime may be). 0 on success, -1 if malformed. */
static int parse_numeric(const uint8_t *f, size_t n, int64_t *out)
{
	if (f[0] & 0x80) {
		/* 0x80: positive; 0xff: negative. Invert negatives so both are
		 * accumulated as positive magnitudes and checked for overflow. */
		bool neg = f[0] & 0x40;
		uint8_t inv = neg ? 0xff : 0x00;
		uint64_t v = 0;
		for (size_t i = 0; i < n; i++) {
			uint8_t c = f[i] ^ inv;
			if (i == 0)
				c &= 0x7f;
			if (v >> 55)
				return -1; /* next shift would leave int64 */
			v = v << 8 | c;
		}
		if (v > INT64_MAX)
			return -1;
		*out = neg ? -(int64_t)v - 1 : (int64_t)v;
		return 0;
	}
	size_t i = 0;
	while (i < n && (f[i] == ' ' || f[i] == '\0'))
		i++;
	uint64_t v = 0;
	for (; i < n && f[i] >= '0' && f[i] <= '7'; i++) {
		if (v >> 60)
			return -1;
		v = v * 8 + (uint64_t)(f[i] - '0');
	}
	for (; i < n; i++)
		if (f[i] != ' ' && f[i] != '\0')
			return -1;
	if (v > INT64_MAX)
		return -1;
	*out = (int64_t)v;
	return 0;
}

static bool block_is_zero(const uint8_t *b)
{
	for (size_t i = 0; i < BLOCK_SIZE; i++)
		if (b[i])
			return false;
	return true;
}

/* The checksum is the sum of the header bytes with its own field as spaces.
 * Old tars summed signed chars; accept either, as GNU tar does. */
static bool checksum_ok(const uint8_t *h, int64_t *stated, int64_t *computed)
{
	uint64_t usum = 0;
	int64_t ssum = 0;
	for (size_t i = 0; i < BLOCK_SIZE; i++) {
		uint8_t c = (i >= H_CHKSUM && i < H_CHKSUM + 8) ? ' ' : h[i];
		usum += c;
		ssum += (int8_t)c;
	}
	*computed = (int64_t)usum;
	if (h[H_CHKSUM] & 0x80 || parse_numeric(h + H_CHKSUM, 8, stated) < 0) {
		*stated = -1;
		return false;
	}
	return *stated == (int64_t)usum || *stated == ssum;
}

static enum tar_format header_format(const uint8_t *h)
{
	if (!memcmp(h + H_MAGIC, "ustar  \0", 8))
		return FMT_GNU; /* its prefix field holds atime/ctime instead */
	if (!memcmp(h + H_MAGIC, "ustar\0", 6))
		return FMT_USTAR;
	return FMT_V7;
}

/* ---- entry storage ----------------------------------------------------------------- */

static void free_xattrs(struct tar_reader *r)
{
	for (size_t i = 0; i < r->n_xattrs; i++) {
		free(r->xattrs[i].name);
		free(r->xattrs[i].value);
	}
	free(r->xattrs);
	r->xattrs = NULL;
	r->n_xattrs = 0;
}

static void clear_entry(struct tar_reader *r)
{
	free(r->hdr_path);
	free(r->hdr_link);
	free(r->pax_path);
	free(r->pax_link);
	r->hdr_path = r->hdr_link = r->pax_path = r->pax_link = NULL;
	free_xattrs(r);
	memset(&r->entry, 0, sizeof(r->entry));
	memset(&r->hdr, 0, sizeof(r->hdr));
}

struct tar_reader *tar_reader_new(hutch_read_fn read, void *ctx)
{
	struct tar_reader *r = xcalloc(1, sizeof(*r));
	r->read = read;
	r->ctx = ctx;
	r->buf = malloc(TAR_BUF_SIZE);
	if (!r->buf)
		abort();
	return r;
}

void tar_reader_set_tap(struct tar_reader *r, tar_tap_fn tap, void *ctx)
{
	r->tap = tap;
	r->tap_ctx = ctx;
}

int tar_reader_drain(struct tar_reader *r, struct hutch_err **err)
{
	consume(r, r->len - r->pos);
	for (;;) {
		r->pos = r->len = 0;
		ssize_t n = source_read(r, r->buf, TAR_BUF_SIZE, err);
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		r->len = (size_t)n;
		consume(r, (size_t)n);
	}
}

void tar_reader_set_skip(struct tar_reader *r, hutch_skip_fn skip)
{
	r->skip = skip;
}

bool tar_reader_failed(const struct tar_reader *r)
{
	return r->failed;
}

uint64_t tar_data_offset(const struct tar_reader *r)
{
	return r->consumed;
}

void tar_reader_free(struct tar_reader *r)
{
	if (!r)
		return;
	clear_entry(r);
	free(r->gnu_name);
	free(r->gnu_link);
	free(r->pax_local);
	free(r->pax_global);
	free(r->buf);
	free(r);
}

/* ---- metadata headers ------------------------------------------------------------------ */

/* Read the data of a metadata header ('L', 'K', 'x', 'g') whole, after checking
 * its size against `max`. The copy is NUL-terminated (pax data may hold more NULs). */
static int read_meta_data(struct tar_reader *r, const char *what, const char *hdr_name,
			  int64_t size, int64_t max, char **out, size_t *out_len,
			  struct hutch_err **err)
{
	if (size > max) {
		char msg[160];
		snprintf(msg, sizeof(msg),
			 "%s of %" PRId64 " bytes is larger than the %" PRId64 " bytes allowed",
			 what, size, max);
		return fail_entry(r, err, EFBIG, hdr_name, msg);
	}
	char *data = xcalloc(1, (size_t)size + 1);
	size_t got = 0;
	while (got < (size_t)size) {
		ssize_t n = read_archive(r, (uint8_t *)data + got, (size_t)size - got, err);
		if (n <= 0) {
			free(data);
			if (n < 0) {
				r->failed = true;
				return -1;
			}
			char msg[160];
			snprintf(msg, sizeof(msg), "archive is truncated inside its %s", what);
			return fail_entry(r, err, 0, hdr_name, msg);
		}
		got += (size_t)n;
	}
	int s = skip_bytes(r, padding_for((uint64_t)size), err);
	if (s <= 0) {
		free(data);
		if (s < 0) {
			r->failed = true;
			return -1;
		}
		char msg[160];
		snprintf(msg, sizeof(msg), "archive is truncated after its %s", what);
		return fail_entry(r, err, 0, hdr_name, msg);
	}
	*out = data;
	*out_len = (size_t)size;
	return 0;
}

/* GNU long names are NUL-terminated inside their data; anything after is junk. */
static char *gnu_long_string(char *data, size_t len)
{
	data[field_strlen((const uint8_t *)data, len)] = '\0';
	return data;
}

/* Walk the records of pax data, "LEN KEY=VALUE\n" each, LEN counting the whole
 * record. Calls fn for each; stops at the first failure. The value may hold
 * any byte, NULs included (xattr values). */
typedef int (*pax_record_fn)(struct tar_reader *r, const char *key, size_t key_len, const char *val,
			     size_t val_len, struct hutch_err **err);

static int pax_walk(struct tar_reader *r, const char *data, size_t len, const char *name,
		    pax_record_fn fn, struct hutch_err **err)
{
	size_t off = 0;
	while (off < len) {
		const char *rec = data + off;
		size_t avail = len - off;
		size_t reclen = 0, i = 0;
		while (i < avail && i < 20 && rec[i] >= '0' && rec[i] <= '9')
			reclen = reclen * 10 + (size_t)(rec[i++] - '0');
		if (i == 0 || i >= avail || rec[i] != ' ' || reclen <= i + 1 || reclen > avail ||
		    rec[reclen - 1] != '\n')
			return fail_entry(r, err, 0, name,
					  "malformed pax extended header record (bad length)");
		const char *kv = rec + i + 1;
		size_t kv_len = reclen - i - 2; /* without the length, space and newline */
		const char *eq = memchr(kv, '=', kv_len);
		if (!eq || eq == kv || memchr(kv, '\0', (size_t)(eq - kv)))
			return fail_entry(r, err, 0, name,
					  "malformed pax extended header record (no key)");
		if (fn(r, kv, (size_t)(eq - kv), eq + 1, kv_len - (size_t)(eq - kv) - 1, err) < 0)
			return -1;
		off += reclen;
	}
	return 0;
}

static int check_pax_syntax(struct tar_reader *r, const char *key, size_t key_len, const char *val,
			    size_t val_len, struct hutch_err **err)
{
	return 0;
}

/* "123" -> 123, no sign, no junk, at most max. */
static bool parse_decimal(const char *s, size_t len, uint64_t max, uint64_t *out)
{
	if (len == 0 || len > 20)
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

/* pax times: "-?SECONDS(.FRACTION)?"; digits past nanoseconds are dropped. */
static bool parse_pax_time(const char *s, size_t len, struct timespec *out)
{
	bool neg = len > 0 && s[0] == '-';
	if (neg) {
		s++;
		len--;
	}
	const char *dot = memchr(s, '.', len);
	size_t int_len = dot ? (size_t)(dot - s) : len;
	uint64_t sec;
	if (!parse_decimal(s, int_len, INT64_MAX - 1, &sec))
		return false;
	long nsec = 0;
	if (dot) {
		size_t frac_len = len - int_len - 1;
		if (frac_len == 0)
			return false;
		long scale = 100000000;
		for (size_t i = 0; i < frac_len; i++) {
			char c = dot[1 + i];
			if (c < '0' || c > '9')
				return false;
			nsec += (c - '0') * scale;
			scale /= 10;
		}
	}
	if (neg) {
		out->tv_sec = -(int64_t)sec;
		out->tv_nsec = nsec;
		if (nsec > 0) {
			/* -1.25 s is -2 s + 0.75 s */
			out->tv_sec -= 1;
			out->tv_nsec = 1000000000L - nsec;
		}
	} else {
		out->tv_sec = (int64_t)sec;
		out->tv_nsec = nsec;
	}
	return true;
}

static bool key_is(const char *key, size_t key_len, const char *want)
{
	return key_len == strlen(want) && !memcmp(key, want, key_len);
}

static bool key_has_prefix(const char *key, size_t key_len, const char *prefix)
{
	size_t n = strlen(prefix);
	return key_len >= n && !memcmp(key, prefix, n);
}

static int set_xattr(struct tar_reader *r, const char *name, size_t name_len, const char *val,
		     size_t val_len, struct hutch_err **err)
{
	const char *ename = r->hdr_path ? r->hdr_path : "";
	if (name_len == 0 || name_len > TAR_MAX_XATTR_NAME || memchr(name, '\0', name_len))
		return fail_entry(r, err, 0, ename, "pax header has an invalid xattr name");
	if (val_len > TAR_MAX_XATTR_VALUE)
		return fail_entry(r, err, EFBIG, ename,
				  "pax header has an xattr value larger than 64 KiB");
	for (size_t i = 0; i < r->n_xattrs; i++) {
		struct tar_xattr *x = &r->xattrs[i];
		if (strlen(x->name) == name_len && !memcmp(x->name, name, name_len)) {
			free(x->value);
			x->value = xcalloc(1, val_len + 1);
			memcpy(x->value, val, val_len);
			x->len = val_len;
			return 0;
		}
	}
	if (r->n_xattrs >= TAR_MAX_XATTRS)
		return fail_entry(r, err, EFBIG, ename, "pax header has more than 256 xattrs");
	r->xattrs = xrealloc(r->xattrs, (r->n_xattrs + 1) * sizeof(*r->xattrs));
	struct tar_xattr *x = &r->xattrs[r->n_xattrs++];
	x->name = xcalloc(1, name_len + 1);
	memcpy(x->name, name, name_len);
	x->value = xcalloc(1, val_len + 1);
	memcpy(x->value, val, val_len);
	x->len = val_len;
	return 0;
}

/* A path-like pax value; empty means "back to what the header block says". */
static int set_pax_string(struct tar_reader *r, char **slot, const char *what, const char *val,
			  size_t val_len, struct hutch_err **err)
{
	const char *ename = r->hdr_path ? r->hdr_path : "";
	char msg[96];
	if (val_len > TAR_MAX_NAME) {
		snprintf(msg, sizeof(msg), "pax %s is longer than 64 KiB", what);
		return fail_entry(r, err, ENAMETOOLONG, ename, msg);
	}
	if (memchr(val, '\0', val_len)) {
		snprintf(msg, sizeof(msg), "pax %s contains a NUL byte", what);
		return fail_entry(r, err, 0, ename, msg);
	}
	free(*slot);
	*slot = NULL;
	if (val_len > 0) {
		*slot = xcalloc(1, val_len + 1);
		memcpy(*slot, val, val_len);
	}
	return 0;
}

/* Apply one pax record (global ones first, then the entry's own) to the entry
 * being built. An empty value restores the header block's value, which is
 * what both "delete this global" and "no override here" mean. */
static int apply_pax_record(struct tar_reader *r, const char *key, size_t key_len, const char *val,
			    size_t val_len, struct hutch_err **err)
{
	struct tar_entry *e = &r->entry;
	const char *ename = r->hdr_path ? r->hdr_path : "";
	uint64_t v;
	char msg[128];

	if (key_is(key, key_len, "path"))
		return set_pax_string(r, &r->pax_path, "path", val, val_len, err);
	if (key_is(key, key_len, "linkpath"))
		return set_pax_string(r, &r->pax_link, "linkpath", val, val_len, err);
	if (key_has_prefix(key, key_len, "SCHILY.xattr.")) {
		size_t plen = strlen("SCHILY.xattr.");
		return set_xattr(r, key + plen, key_len - plen, val, val_len, err);
	}
	if (key_has_prefix(key, key_len, "GNU.sparse."))
		return fail_entry(r, err, ENOTSUP, ename,
				  "GNU sparse files are not supported in image layers");

	const char *which = NULL;
	if (key_is(key, key_len, "size")) {
		which = "size";
		if (val_len == 0)
			e->size = r->hdr.size;
		else if (parse_decimal(val, val_len, INT64_MAX, &v))
			e->size = (int64_t)v;
		else
			goto bad_number;
	} else if (key_is(key, key_len, "uid")) {
		which = "uid";
		if (val_len == 0)
			e->uid = r->hdr.uid;
		else if (parse_decimal(val, val_len, UINT32_MAX - 1, &v))
			e->uid = (uid_t)v;
		else
			goto bad_number;
	} else if (key_is(key, key_len, "gid")) {
		which = "gid";
		if (val_len == 0)
			e->gid = r->hdr.gid;
		else if (parse_decimal(val, val_len, UINT32_MAX - 1, &v))
			e->gid = (gid_t)v;
		else
			goto bad_number;
	} else if (key_is(key, key_len, "mtime")) {
		which = "mtime";
		if (val_len == 0)
			e->mtime = r->hdr.mtime;
		else if (!parse_pax_time(val, val_len, &e->mtime))
			goto bad_number;
	} else if (key_is(key, key_len, "SCHILY.devmajor")) {
		which = "devmajor";
		if (val_len == 0)
			e->devmajor = r->hdr.devmajor;
		else if (parse_decimal(val, val_len, UINT32_MAX, &v))
			e->devmajor = (unsigned)v;
		else
			goto bad_number;
	} else if (key_is(key, key_len, "SCHILY.devminor")) {
		which = "devminor";
		if (val_len == 0)
			e->devminor = r->hdr.devminor;
		else if (parse_decimal(val, val_len, UINT32_MAX, &v))
			e->devminor = (unsigned)v;
		else
			goto bad_number;
	}
	/* Everything else (atime, ctime, uname, gname, comment, charset,
	 * LIBARCHIVE.* duplicates of the SCHILY keys, vendor keys) does not
	 * change what lands on disk. */
	return 0;

bad_number:;
	_cleanup_free_ char *shown = printable(val, val_len);
	snprintf(msg, sizeof(msg), "pax %s '%.40s' is not a valid number", which, shown);
	return fail_entry(r, err, 0, ename, msg);
}

/* ---- entries ------------------------------------------------------------------------ */

static int map_type(uint8_t flag, const char *name, enum tar_type *out)
{
	switch (flag) {
	case '\0':
		/* V7 had no type for directories: a trailing slash was the mark. */
		if (*name && name[strlen(name) - 1] == '/') {
			*out = TAR_DIR;
			return 0;
		}
		/* fallthrough */
	case '0':
	case '7':
		*out = TAR_FILE;
		return 0; /* '7': contiguous file, a regular file here */
	case '1':
		*out = TAR_HARDLINK;
		return 0;
	case '2':
		*out = TAR_SYMLINK;
		return 0;
	case '3':
		*out = TAR_CHAR;
		return 0;
	case '4':
		*out = TAR_BLOCK;
		return 0;
	case '5':
		*out = TAR_DIR;
		return 0;
	case '6':
		*out = TAR_FIFO;
		return 0;
	default:
		return -1;
	}
}

static const char *type_description(uint8_t flag)
{
	switch (flag) {
	case 'S':
		return " (GNU sparse file)";
	case 'D':
		return " (GNU dump directory)";
	case 'M':
		return " (GNU multi-volume continuation)";
	case 'V':
		return " (GNU volume label)";
	case 'N':
		return " (old GNU long name)";
	default:
		return flag >= 'A' && flag <= 'Z' ? " (vendor extension)" : "";
	}
}

static char *header_path(const uint8_t *h, enum tar_format fmt)
{
	size_t name_len = field_strlen(h + H_NAME, 100);
	size_t prefix_len = fmt == FMT_USTAR ? field_strlen(h + H_PREFIX, 155) : 0;
	char *p = xcalloc(1, prefix_len + 1 + name_len + 1);
	if (prefix_len > 0) {
		memcpy(p, h + H_PREFIX, prefix_len);
		p[prefix_len] = '/';
		memcpy(p + prefix_len + 1, h + H_NAME, name_len);
	} else {
		memcpy(p, h + H_NAME, name_len);
	}
	return p;
}

/* Fill r->hdr and r->entry from a header block (after the metadata headers
 * that preceded it), then apply pax records. */
static int build_entry(struct tar_reader *r, const uint8_t *h, enum tar_format fmt,
		       struct hutch_err **err)
{
	struct tar_entry *hd = &r->hdr;
	int64_t mode, uid, gid, size, mtime, devmajor = 0, devminor = 0;

	r->hdr_path = r->gnu_name ? steal_ptr(r->gnu_name) : header_path(h, fmt);
	if (r->gnu_link) {
		r->hdr_link = steal_ptr(r->gnu_link);
	} else {
		size_t n = field_strlen(h + H_LINKNAME, 100);
		r->hdr_link = xcalloc(1, n + 1);
		memcpy(r->hdr_link, h + H_LINKNAME, n);
	}
	hd->path = r->hdr_path;
	hd->linkname = r->hdr_link;

	const char *bad = NULL;
	if (parse_numeric(h + H_MODE, 8, &mode) < 0)
		bad = "mode";
	else if (parse_numeric(h + H_UID, 8, &uid) < 0 || uid < 0 || uid >= UINT32_MAX)
		bad = "uid";
	else if (parse_numeric(h + H_GID, 8, &gid) < 0 || gid < 0 || gid >= UINT32_MAX)
		bad = "gid";
	else if (parse_numeric(h + H_SIZE, 12, &size) < 0 || size < 0)
		bad = "size";
	else if (parse_numeric(h + H_MTIME, 12, &mtime) < 0)
		bad = "mtime";
	else if (fmt != FMT_V7 && (parse_numeric(h + H_DEVMAJOR, 8, &devmajor) < 0 ||
				   devmajor < 0 || devmajor > UINT32_MAX))
		bad = "devmajor";
	else if (fmt != FMT_V7 && (parse_numeric(h + H_DEVMINOR, 8, &devminor) < 0 ||
				   devminor < 0 || devminor > UINT32_MAX))
		bad = "devminor";
	if (bad) {
		char msg[64];
		snprintf(msg, sizeof(msg), "header field '%s' is not a valid number", bad);
		return fail_entry(r, err, 0, r->hdr_path, msg);
	}

	if (map_type(h[H_TYPE], r->hdr_path, &hd->type) < 0) {
		char msg[96];
		uint8_t t = h[H_TYPE];
		if (t >= 0x20 && t < 0x7f)
			snprintf(msg, sizeof(msg), "unsupported tar entry type '%c'%s", t,
				 type_description(t));
		else
			snprintf(msg, sizeof(msg), "unsupported tar entry type 0x%02x", t);
		return fail_entry(r, err, ENOTSUP, r->hdr_path, msg);
	}
	hd->mode = (mode_t)(mode & 07777); /* some writers add S_IFMT bits */
	hd->uid = (uid_t)uid;
	hd->gid = (gid_t)gid;
	hd->size = size;
	hd->mtime.tv_sec = mtime;
	hd->mtime.tv_nsec = 0;
	hd->devmajor = (unsigned)devmajor;
	hd->devminor = (unsigned)devminor;

	r->entry = *hd;
	if (r->pax_global &&
	    pax_walk(r, r->pax_global, r->pax_global_len, r->hdr_path, apply_pax_record, err) < 0)
		return -1;
	if (r->pax_local) {
		int ret =
		    pax_walk(r, r->pax_local, r->pax_local_len, r->hdr_path, apply_pax_record, err);
		free(r->pax_local);
		r->pax_local = NULL;
		r->pax_local_len = 0;
		if (ret < 0)
			return -1;
	}

	struct tar_entry *e = &r->entry;
	e->path = r->pax_path ? r->pax_path : r->hdr_path;
	e->linkname = r->pax_link ? r->pax_link : r->hdr_link;
	e->xattrs = r->xattrs;
	e->n_xattrs = r->n_xattrs;
	if (e->mtime.tv_nsec < 0 || e->mtime.tv_nsec >= 1000000000L)
		return fail_entry(r, err, 0, e->path, "mtime has invalid nanoseconds");
	/* Only regular files carry data (see the top of the file). */
	if (e->type != TAR_FILE)
		e->size = 0;
	r->data_left = e->size;
	r->pad_left = (int64_t)padding_for((uint64_t)e->size);
	return 0;
}

static int check_pax_records(struct tar_reader *r, const char *data, size_t len, const char *name,
			     struct hutch_err **err)
{
	return pax_walk(r, data, len, name, check_pax_syntax, err);
}

/* "after entry 'x'" for messages about the header that follows x. */
static char *describe_previous(const char *prev)
{
	if (!*prev)
		return xstrdup("before any entry");
	_cleanup_free_ char *shown = printable(prev, strlen(prev));
	return xasprintf("after entry '%s'", shown);
}

/* Skip what the caller did not read of the previous entry. */
static int finish_previous(struct tar_reader *r, struct hutch_err **err)
{
	uint64_t left = (uint64_t)r->data_left + (uint64_t)r->pad_left;
	if (left == 0)
		return 0;
	/* data and padding apart, for a tap that tells them apart */
	r->tap_data = true;
	int s = skip_bytes(r, (uint64_t)r->data_left, err);
	r->tap_data = false;
	if (s > 0)
		s = skip_bytes(r, (uint64_t)r->pad_left, err);
	if (s < 0) {
		r->failed = true;
		return -1;
	}
	if (s == 0) {
		char msg[96];
		snprintf(msg, sizeof(msg), "archive is truncated (%" PRId64 " data bytes missing)",
			 r->data_left);
		return fail_entry(r, err, 0, entry_name(r), msg);
	}
	r->data_left = r->pad_left = 0;
	return 0;
}

int tar_next(struct tar_reader *r, const struct tar_entry **out, struct hutch_err **err)
{
	if (r->failed)
		return hutch_fail(err, 0, "the archive already failed to read");
	if (r->done)
		return 0;
	if (finish_previous(r, err) < 0)
		return -1;
	/* Keep the previous name for messages about a header that follows it. */
	_cleanup_free_ char *prev = xstrdup(entry_name(r));
	clear_entry(r);

	for (;;) {
		bool pending = r->gnu_name || r->gnu_link || r->pax_local;
		int got = fill(r, BLOCK_SIZE, err);
		if (got < 0) {
			r->failed = true;
			return -1;
		}
		if (got == 0 && r->consumed == 0 && r->len > r->pos) {
			r->failed = true;
			size_t n = r->len - r->pos;
			return hutch_fail(err, 0,
					  "not a tar archive: %zu byte%s, less than one tar header",
					  n, n == 1 ? "" : "s");
		}
		if (got == 0 && (r->len - r->pos > 0 || pending)) {
			_cleanup_free_ char *after = describe_previous(prev);
			r->failed = true;
			return hutch_fail(
			    err, 0, "archive is truncated in the header at byte %" PRIu64 " (%s)",
			    r->consumed, after);
		}
		/* Ending at a header boundary without the two zero blocks is
		 * accepted, as Go and GNU tar do; the blob digest is what
		 * guards against a short download. */
		if (got == 0) {
			r->done = true;
			return 0;
		}
		const uint8_t *h = r->buf + r->pos;
		if (block_is_zero(h)) {
			if (pending) {
				_cleanup_free_ char *after = describe_previous(prev);
				r->failed = true;
				return hutch_fail(err, 0,
						  "archive ends right after a long-name or pax "
						  "header at byte %" PRIu64 " (%s)",
						  r->consumed, after);
			}
			r->done = true;
			return 0;
		}

		char name[101];
		memcpy(name, h + H_NAME, 100);
		name[100] = '\0';
		int64_t stated, computed;
		if (!checksum_ok(h, &stated, &computed)) {
			_cleanup_free_ char *shown = printable(name, strlen(name));
			r->failed = true;
			if (r->consumed == 0)
				return hutch_fail(err, 0,
						  "not a tar archive: the first header's checksum "
						  "does not match (plain tar, gzip and zstd are "
						  "supported)");
			if (stated < 0)
				return hutch_fail(
				    err, 0,
				    "layer entry '%s': header at byte %" PRIu64
				    " has an unreadable checksum (not a tar archive?)",
				    shown, r->consumed);
			return hutch_fail(err, 0,
					  "layer entry '%s': header at byte %" PRIu64
					  " has a bad checksum (says %" PRId64 ", sums to %" PRId64
					  "): corrupt archive",
					  shown, r->consumed, stated, computed);
		}

		/* The header block stays in r->buf until consumed; copy it, as
		 * reading metadata data below refills the buffer. */
		uint8_t hdr[BLOCK_SIZE];
		memcpy(hdr, h, BLOCK_SIZE);
		consume(r, BLOCK_SIZE);
		enum tar_format fmt = header_format(hdr);
		uint8_t type = hdr[H_TYPE];

		if (type == 'L' || type == 'K' || type == 'x' || type == 'g') {
			int64_t size;
			if (parse_numeric(hdr + H_SIZE, 12, &size) < 0 || size < 0)
				return fail_entry(r, err, 0, name,
						  "header field 'size' is not a valid number");
			char *data;
			size_t len;
			if (type == 'L' || type == 'K') {
				const char *what = type == 'L' ? "GNU long name" : "GNU long link";
				if (read_meta_data(r, what, name, size, TAR_MAX_NAME, &data, &len,
						   err) < 0)
					return -1;
				char **slot = type == 'L' ? &r->gnu_name : &r->gnu_link;
				free(*slot);
				*slot = gnu_long_string(data, len);
				continue;
			}
			if (type == 'x') {
				if (read_meta_data(r, "pax extended header", name, size,
						   TAR_MAX_PAX, &data, &len, err) < 0)
					return -1;
				free(r->pax_local);
				r->pax_local = data;
				r->pax_local_len = len;
				/* Malformed records are reported now, naming this header. */
				if (check_pax_records(r, data, len, name, err) < 0)
					return -1;
				continue;
			}
			/* 'g': globals accumulate; later records win when applied in order. */
			if (read_meta_data(r, "pax global header", name, size, TAR_MAX_PAX_GLOBAL,
					   &data, &len, err) < 0)
				return -1;
			if (check_pax_records(r, data, len, name, err) < 0) {
				free(data);
				return -1;
			}
			if (r->pax_global_len + len > TAR_MAX_PAX_GLOBAL) {
				free(data);
				return fail_entry(r, err, EFBIG, name,
						  "pax global headers add up to more than 1 MiB");
			}
			r->pax_global = xrealloc(r->pax_global, r->pax_global_len + len + 1);
			memcpy(r->pax_global + r->pax_global_len, data, len);
			r->pax_global_len += len;
			r->pax_global[r->pax_global_len] = '\0';
			free(data);
			continue;
		}

		if (build_entry(r, hdr, fmt, err) < 0) {
			r->failed = true;
			return -1;
		}
		*out = &r->entry;
		return 1;
	}
}

ssize_t tar_read_data(struct tar_reader *r, void *buf, size_t len, struct hutch_err **err)
{
	if (r->failed)
		return hutch_fail(err, 0, "the archive already failed to read");
	if (r->data_left == 0 || len == 0)
		return 0;
	if ((uint64_t)len > (uint64_t)r->data_left)
		len = (size_t)r->data_left;
	r->tap_data = true;
	ssize_t n = read_archive(r, buf, len, err);
	r->tap_data = false;
	if (n < 0) {
		_cleanup_free_ char *shown = printable(entry_name(r), strlen(entry_name(r)));
		r->failed = true;
		return hutch_err_wrap(err, "layer entry '%s'", shown);
	}
	if (n == 0) {
		char msg[96];
		snprintf(msg, sizeof(msg), "archive is truncated (%" PRId64 " data bytes missing)",
			 r->data_left);
		return fail_entry(r, err, 0, entry_name(r), msg);
	}
	r->data_left -= n;
	return n;
}
