/* SHA-256 (FIPS 180-4) without libcrypto: a portable implementation and an x86
 * SHA-NI one, picked once at run time. Linking libcrypto would cost every
 * `hutch run` its load time for the sake of hashing layers on import. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_LEN 32
#define SHA256_HEX_LEN	  64

struct sha256_ctx {
	uint32_t state[8];
	uint64_t total;	   /* bytes hashed so far */
	uint8_t block[64]; /* a partial block waiting for more bytes */
	size_t block_len;
};

void sha256_init(struct sha256_ctx *ctx);
void sha256_update(struct sha256_ctx *ctx, const void *data, size_t len);
/* Writes the digest; ctx must be re-initialised before reuse. */
void sha256_final(struct sha256_ctx *ctx, uint8_t out[SHA256_DIGEST_LEN]);
/* 64 lowercase hex digits and a NUL. */
void sha256_hex(const uint8_t in[SHA256_DIGEST_LEN], char out[SHA256_HEX_LEN + 1]);

/* "sha256:<64 hex>" of a buffer (out holds 72 bytes). */
void sha256_digest(const void *data, size_t len, char out[72]);

/* For tests and benchmarks: "sha-ni" or "portable", and a switch that forces the
 * portable code (returns false if the fast path was never available). */
const char *sha256_impl_name(void);
bool sha256_force_portable(bool on);
