/* The tar parser alone, fast: arbitrary bytes through tar_next and
 * tar_read_data with odd read sizes, touching everything an entry exposes. */
#include <string.h>

#include "tests/fuzz/fuzz_common.h"

struct mem {
	const uint8_t *p;
	size_t len, pos, chunk;
};

static ssize_t mem_read(void *ctx, void *buf, size_t len)
{
	struct mem *m = ctx;
	size_t n = m->len - m->pos;
	if (n > len)
		n = len;
	if (n > m->chunk)
		n = m->chunk;
	if (n)
		memcpy(buf, m->p + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Short source reads for some inputs exercise the refill paths. */
	struct mem m = {.p = data, .len = size, .chunk = size % 7 == 0 ? 13 : 1 << 20};
	struct tar_reader *r = tar_reader_new(mem_read, &m);
	struct hutch_err *err = NULL;
	static uint8_t buf[70000];
	size_t data_chunk = size % 3 == 0 ? 1 : sizeof(buf);
	const struct tar_entry *e;
	volatile size_t sink = 0;
	while (tar_next(r, &e, &err) == 1) {
		sink += strlen(e->path) + strlen(e->linkname) + (size_t)e->type + e->mode;
		if (e->size < 0)
			abort();
		for (size_t i = 0; i < e->n_xattrs; i++) {
			sink += strlen(e->xattrs[i].name) + e->xattrs[i].len;
			if (e->xattrs[i].len)
				sink += (uint8_t)e->xattrs[i].value[e->xattrs[i].len - 1];
		}
		if (size % 5 == 0)
			continue; /* leave the data to be skipped */
		int64_t got = 0;
		ssize_t n;
		while ((n = tar_read_data(r, buf, data_chunk, &err)) > 0)
			got += n;
		if (n == 0 && got != e->size)
			abort(); /* a short entry must be an error, never a quiet EOF */
		if (n < 0)
			break;
	}
	(void)sink;
	hutch_err_free(&err);
	tar_reader_free(r);
	return 0;
}
