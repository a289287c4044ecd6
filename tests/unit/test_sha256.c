/* SHA-256: FIPS 180-4 vectors through both implementations, and streaming
 * updates split at every kind of boundary against one-shot hashing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/sha256.h"

static void hash_hex(const void *data, size_t len, char out[65])
{
	struct sha256_ctx ctx;
	uint8_t d[32];
	sha256_init(&ctx);
	sha256_update(&ctx, data, len);
	sha256_final(&ctx, d);
	sha256_hex(d, out);
}

static const struct {
	const char *msg;
	const char *hex;
} vectors[] = {
    {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    /* 448 bits: the padding no longer fits in the last block */
    {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqr"
     "lmnopqrsmnopqrstnopqrstu",
     "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
};

static void check_vectors(void)
{
	char hex[65];
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		hash_hex(vectors[i].msg, strlen(vectors[i].msg), hex);
		assert_string_equal(hex, vectors[i].hex);
	}
	/* one million 'a' */
	size_t n = 1000000;
	char *a = malloc(n);
	assert_non_null(a);
	memset(a, 'a', n);
	hash_hex(a, n, hex);
	assert_string_equal(hex,
			    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	/* the same, fed one byte at a time through the partial-block path */
	struct sha256_ctx ctx;
	uint8_t d[32];
	sha256_init(&ctx);
	for (size_t i = 0; i < n; i++)
		sha256_update(&ctx, "a", 1);
	sha256_final(&ctx, d);
	sha256_hex(d, hex);
	assert_string_equal(hex,
			    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	free(a);
}

static void test_vectors_default(void **state)
{
	sha256_force_portable(false);
	check_vectors();
}

static void test_vectors_portable(void **state)
{
	sha256_force_portable(true);
	assert_string_equal(sha256_impl_name(), "portable");
	check_vectors();
	sha256_force_portable(false);
}

static void test_fast_path_present(void **state)
{
	/* This machine has SHA-NI; elsewhere the portable code is the answer. */
	bool have = sha256_force_portable(false);
	assert_string_equal(sha256_impl_name(), have ? "sha-ni" : "portable");
	print_message("sha256 implementation: %s\n", sha256_impl_name());
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void test_random_splits(void **state)
{
	size_t n = 300000;
	uint8_t *buf = malloc(n);
	assert_non_null(buf);
	for (size_t i = 0; i < n; i++)
		buf[i] = (uint8_t)rng();
	for (int round = 0; round < 200; round++) {
		size_t len = round < 130 ? (size_t)round : (size_t)(rng() % n);
		char one[65], split[65], portable[65];
		hash_hex(buf, len, one);

		struct sha256_ctx ctx;
		uint8_t d[32];
		sha256_init(&ctx);
		size_t off = 0;
		while (off < len) {
			size_t step = (size_t)(rng() % (rng() % 3 == 0 ? 200 : 70000)) + 1;
			if (step > len - off)
				step = len - off;
			sha256_update(&ctx, buf + off, step);
			off += step;
		}
		sha256_final(&ctx, d);
		sha256_hex(d, split);
		assert_string_equal(one, split);

		sha256_force_portable(true);
		hash_hex(buf, len, portable);
		sha256_force_portable(false);
		assert_string_equal(one, portable);
	}
	free(buf);
}

static void test_hex(void **state)
{
	uint8_t d[32];
	for (int i = 0; i < 32; i++)
		d[i] = (uint8_t)(i * 8 + 7);
	char hex[65];
	memset(hex, 'X', sizeof(hex));
	sha256_hex(d, hex);
	assert_int_equal(strlen(hex), 64);
	assert_string_equal(hex,
			    "070f171f272f373f474f575f676f777f878f979fa7afb7bfc7cfd7dfe7eff7ff");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vectors_default),
	    cmocka_unit_test(test_vectors_portable),
	    cmocka_unit_test(test_fast_path_present),
	    cmocka_unit_test(test_random_splits),
	    cmocka_unit_test(test_hex),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
