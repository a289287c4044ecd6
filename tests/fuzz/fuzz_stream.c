/* Decompression alone: sniffing, gzip (multi-member, padding) and zstd on
 * arbitrary bytes, with odd read sizes, then the digests. */
#include <string.h>

#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hutch_err *err = NULL;
	struct layer_stream *ls = NULL;
	if (layer_stream_open(fuzz_input_fd(data, size), &ls, &err) < 0) {
		hutch_err_free(&err);
		return 0;
	}
	static uint8_t buf[300000];
	size_t chunk = size % 2 ? 7 : sizeof(buf);
	size_t total = 0;
	ssize_t n;
	while ((n = layer_stream_read(ls, buf, chunk, &err)) > 0) {
		total += (size_t)n;
		if ((size_t)n > chunk)
			abort();
		if (total > FUZZ_MAX_UNCOMPRESSED)
			break;
	}
	if (n == 0) {
		char comp[65], plain[65];
		if (layer_stream_finish(ls, comp, plain, &err) == 0 &&
		    (strlen(comp) != 64 || strlen(plain) != 64))
			abort();
		if (!strcmp(layer_stream_compression(ls), "none") && strcmp(comp, plain))
			abort();
	}
	hutch_err_free(&err);
	layer_stream_free(ls);
	return 0;
}
