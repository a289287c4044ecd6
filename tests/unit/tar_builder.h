/* Building tar archives in memory for the tests: ustar, GNU and V7 headers,
 * pax records, GNU long names, and ways to break each of them. Test-only:
 * aborts on allocation failure. */
#pragma once
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

struct tb {
	uint8_t *buf;
	size_t len, cap;
};

enum tb_fmt { TB_USTAR, TB_GNU, TB_V7 };

struct tb_hdr {
	const char *name;
	char type; /* '0', '5', 'x', ... */
	unsigned mode;
	unsigned uid, gid;
	int64_t size; /* written as given; tb_entry fills it from the data */
	int64_t mtime;
	const char *linkname;
	unsigned devmajor, devminor;
	const char *prefix; /* ustar prefix field */
	enum tb_fmt fmt;
	bool base256;	      /* size, uid, gid and mtime in base-256 */
	int checksum_delta;   /* != 0: store a wrong checksum */
	bool signed_checksum; /* store the old signed-char sum */
};

static inline void tb_put(struct tb *t, const void *p, size_t n)
{
	if (t->len + n > t->cap) {
		t->cap = (t->len + n) * 2 + 4096;
		t->buf = realloc(t->buf, t->cap);
		if (!t->buf)
			abort();
	}
	memcpy(t->buf + t->len, p, n);
	t->len += n;
}

static inline void tb_zeros(struct tb *t, size_t n)
{
	static const uint8_t z[512];
	while (n > 0) {
		size_t k = n > sizeof(z) ? sizeof(z) : n;
		tb_put(t, z, k);
		n -= k;
	}
}

static inline void tb_pad(struct tb *t)
{
	tb_zeros(t, (512 - t->len % 512) % 512);
}

static inline void tb_free(struct tb *t)
{
	free(t->buf);
	t->buf = NULL;
	t->len = t->cap = 0;
}

static inline void tb_octal(uint8_t *f, size_t n, uint64_t v)
{
	/* n-1 digits and a NUL, as most writers do */
	char tmp[32];
	snprintf(tmp, sizeof(tmp), "%0*llo", (int)(n - 1), (unsigned long long)v);
	memcpy(f, tmp, n - 1);
	f[n - 1] = 0;
}

static inline void tb_base256(uint8_t *f, size_t n, int64_t v)
{
	uint64_t u = (uint64_t)v;
	for (size_t i = n; i-- > 0;) {
		f[i] = (uint8_t)u;
		u = v < 0 ? (u >> 8) | 0xff00000000000000ULL : u >> 8;
	}
	f[0] = v < 0 ? 0xff : 0x80;
}

static inline void tb_num(uint8_t *f, size_t n, int64_t v, bool base256)
{
	if (base256)
		tb_base256(f, n, v);
	else
		tb_octal(f, n, (uint64_t)v);
}

static inline void tb_header(struct tb *t, const struct tb_hdr *h)
{
	uint8_t b[512] = {0};
	strncpy((char *)b, h->name ? h->name : "", 100);
	tb_octal(b + 100, 8, h->mode);
	tb_num(b + 108, 8, h->uid, h->base256);
	tb_num(b + 116, 8, h->gid, h->base256);
	tb_num(b + 124, 12, h->size, h->base256);
	tb_num(b + 136, 12, h->mtime, h->base256);
	b[156] = (uint8_t)h->type;
	if (h->linkname)
		strncpy((char *)b + 157, h->linkname, 100);
	if (h->fmt == TB_USTAR) {
		memcpy(b + 257,
		       "ustar\0"
		       "00",
		       8);
	} else if (h->fmt == TB_GNU) {
		memcpy(b + 257, "ustar  \0", 8);
	}
	if (h->fmt != TB_V7) {
		strcpy((char *)b + 265, "root");
		strcpy((char *)b + 297, "root");
		tb_octal(b + 329, 8, h->devmajor);
		tb_octal(b + 337, 8, h->devminor);
		if (h->prefix)
			strncpy((char *)b + 345, h->prefix, 155);
	}
	memset(b + 148, ' ', 8);
	long sum = 0;
	for (int i = 0; i < 512; i++)
		sum += h->signed_checksum ? (long)(int8_t)b[i] : (long)b[i];
	sum += h->checksum_delta;
	char ck[16];
	snprintf(ck, sizeof(ck), "%06lo", (unsigned long)sum & 0777777);
	memcpy(b + 148, ck, 6);
	b[154] = 0;
	b[155] = ' ';
	tb_put(t, b, 512);
}

/* A header whose size is len, then the data, padded. */
static inline void tb_entry(struct tb *t, struct tb_hdr h, const void *data, size_t len)
{
	h.size = (int64_t)len;
	tb_header(t, &h);
	if (len)
		tb_put(t, data, len);
	tb_pad(t);
}

static inline struct tb_hdr tb_defaults(const char *name, char type, unsigned mode)
{
	return (struct tb_hdr){
	    .name = name, .type = type, .mode = mode, .mtime = 1600000000, .fmt = TB_USTAR};
}

static inline void tb_file(struct tb *t, const char *name, const char *content, unsigned mode)
{
	tb_entry(t, tb_defaults(name, '0', mode), content, content ? strlen(content) : 0);
}

static inline void tb_dir(struct tb *t, const char *name, unsigned mode)
{
	tb_entry(t, tb_defaults(name, '5', mode), NULL, 0);
}

static inline void tb_link(struct tb *t, char type, const char *name, const char *target)
{
	struct tb_hdr h = tb_defaults(name, type, 0777);
	h.linkname = target;
	tb_entry(t, h, NULL, 0);
}

static inline void tb_symlink(struct tb *t, const char *name, const char *target)
{
	tb_link(t, '2', name, target);
}

static inline void tb_hardlink(struct tb *t, const char *name, const char *target)
{
	tb_link(t, '1', name, target);
}

/* One pax record "LEN key=value\n" appended to rec (value may hold NULs). */
static inline void tb_pax_record(struct tb *rec, const char *key, const void *val, size_t vlen)
{
	size_t body = 1 + strlen(key) + 1 + vlen + 1; /* " key=value\n" */
	size_t digits = 1, total;
	for (;;) {
		total = body + digits;
		size_t d = snprintf(NULL, 0, "%zu", total);
		if (d == digits)
			break;
		digits = d;
	}
	char head[32];
	snprintf(head, sizeof(head), "%zu ", total);
	tb_put(rec, head, strlen(head));
	tb_put(rec, key, strlen(key));
	tb_put(rec, "=", 1);
	tb_put(rec, val, vlen);
	tb_put(rec, "\n", 1);
}

static inline void tb_pax_str(struct tb *rec, const char *key, const char *val)
{
	tb_pax_record(rec, key, val, strlen(val));
}

/* A pax header ('x' or 'g') carrying the records built in rec. */
static inline void tb_pax(struct tb *t, char type, const struct tb *rec)
{
	struct tb_hdr h = tb_defaults("PaxHeaders/x", type, 0644);
	tb_entry(t, h, rec->buf, rec->len);
}

/* A GNU 'L' (long name) or 'K' (long link) header. */
static inline void tb_gnu_long(struct tb *t, char type, const char *name)
{
	struct tb_hdr h = tb_defaults("././@LongLink", type, 0644);
	h.fmt = TB_GNU;
	tb_entry(t, h, name, strlen(name) + 1);
}

static inline void tb_end(struct tb *t)
{
	tb_zeros(t, 1024);
}

/* A hutch_read_fn over memory that hands out at most `chunk` bytes a call,
 * to exercise every buffer boundary of the reader. */
struct mem_source {
	const uint8_t *data;
	size_t len, pos, chunk;
	int fail_errno; /* != 0: fail with it once pos reaches fail_at */
	size_t fail_at;
};

static inline ssize_t mem_source_read(void *ctx, void *buf, size_t len)
{
	struct mem_source *m = ctx;
	if (m->fail_errno && m->pos >= m->fail_at) {
		errno = m->fail_errno;
		return -1;
	}
	size_t n = m->len - m->pos;
	if (n > len)
		n = len;
	if (m->chunk && n > m->chunk)
		n = m->chunk;
	if (m->fail_errno && m->pos + n > m->fail_at)
		n = m->fail_at - m->pos;
	if (n)
		memcpy(buf, m->data + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}
