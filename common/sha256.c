#include "common/sha256.h"

#include <stdio.h>

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define HAVE_X86_SHA 1
#include <cpuid.h>
#include <immintrin.h>
#endif

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

typedef void (*sha256_blocks_fn)(uint32_t state[8], const uint8_t *data, size_t nblocks);

/* ---- portable ------------------------------------------------------------ */

static inline uint32_t ror32(uint32_t x, unsigned n)
{
	return (x >> n) | (x << (32 - n));
}

static inline uint32_t load_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void sha256_blocks_portable(uint32_t state[8], const uint8_t *data, size_t nblocks)
{
	for (; nblocks > 0; nblocks--, data += 64) {
		uint32_t w[64];
		for (int i = 0; i < 16; i++)
			w[i] = load_be32(data + 4 * i);
		for (int i = 16; i < 64; i++) {
			uint32_t s0 = ror32(w[i - 15], 7) ^ ror32(w[i - 15], 18) ^ (w[i - 15] >> 3);
			uint32_t s1 = ror32(w[i - 2], 17) ^ ror32(w[i - 2], 19) ^ (w[i - 2] >> 10);
			w[i] = w[i - 16] + s0 + w[i - 7] + s1;
		}
		uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
		uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
		for (int i = 0; i < 64; i++) {
			uint32_t S1 = ror32(e, 6) ^ ror32(e, 11) ^ ror32(e, 25);
			uint32_t ch = (e & f) ^ (~e & g);
			uint32_t t1 = h + S1 + ch + K[i] + w[i];
			uint32_t S0 = ror32(a, 2) ^ ror32(a, 13) ^ ror32(a, 22);
			uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
			uint32_t t2 = S0 + maj;
			h = g;
			g = f;
			f = e;
			e = d + t1;
			d = c;
			c = b;
			b = a;
			a = t1 + t2;
		}
		state[0] += a;
		state[1] += b;
		state[2] += c;
		state[3] += d;
		state[4] += e;
		state[5] += f;
		state[6] += g;
		state[7] += h;
	}
}

/* ---- x86 SHA extensions ---------------------------------------------------- */

#ifdef HAVE_X86_SHA
/* The SHA-NI round instruction works on the state split as ABEF and CDGH and
 * does two rounds per call; each group of four rounds below feeds it W+K for
 * those rounds, low half first. The message schedule for rounds 16..63 is
 * built four words at a time with sha256msg1/msg2 plus the W[t-7] term. */
__attribute__((target("sha,sse4.1"))) static void
sha256_blocks_shani(uint32_t state[8], const uint8_t *data, size_t nblocks)
{
	/* byte swap of each 32-bit word: the message is big-endian */
	const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);

	__m128i dcba = _mm_loadu_si128((const __m128i *)&state[0]);
	__m128i hgfe = _mm_loadu_si128((const __m128i *)&state[4]);
	__m128i cdab = _mm_shuffle_epi32(dcba, 0xb1);
	__m128i efgh = _mm_shuffle_epi32(hgfe, 0x1b);
	__m128i abef = _mm_alignr_epi8(cdab, efgh, 8);
	__m128i cdgh = _mm_blend_epi16(efgh, cdab, 0xf0);

	for (; nblocks > 0; nblocks--, data += 64) {
		const __m128i abef_start = abef, cdgh_start = cdgh;
		__m128i msg[4];

#pragma GCC unroll 16
		for (int g = 0; g < 16; g++) {
			__m128i w;
			if (g < 4) {
				w = _mm_loadu_si128((const __m128i *)(data + 16 * g));
				w = _mm_shuffle_epi8(w, bswap);
			} else {
				__m128i w4 = msg[g & 3], w3 = msg[(g + 1) & 3];
				__m128i w2 = msg[(g + 2) & 3], w1 = msg[(g + 3) & 3];
				w = _mm_sha256msg1_epu32(w4, w3);
				w = _mm_add_epi32(w, _mm_alignr_epi8(w1, w2, 4));
				w = _mm_sha256msg2_epu32(w, w1);
			}
			msg[g & 3] = w;
			__m128i wk = _mm_add_epi32(w, _mm_loadu_si128((const __m128i *)&K[4 * g]));
			cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);
			wk = _mm_shuffle_epi32(wk, 0x0e);
			abef = _mm_sha256rnds2_epu32(abef, cdgh, wk);
		}
		abef = _mm_add_epi32(abef, abef_start);
		cdgh = _mm_add_epi32(cdgh, cdgh_start);
	}

	__m128i feba = _mm_shuffle_epi32(abef, 0x1b);
	__m128i dchg = _mm_shuffle_epi32(cdgh, 0xb1);
	dcba = _mm_blend_epi16(feba, dchg, 0xf0);
	hgfe = _mm_alignr_epi8(dchg, feba, 8);
	_mm_storeu_si128((__m128i *)&state[0], dcba);
	_mm_storeu_si128((__m128i *)&state[4], hgfe);
}

static bool cpu_has_sha_ni(void)
{
#if defined(__clang__)
	/* clang (at least 14) has no "sha" in __builtin_cpu_supports: ask cpuid.
	 * Leaf 7 EBX bit 29 = SHA; leaf 1 ECX bit 19 = SSE4.1, bit 9 = SSSE3. */
	unsigned a, b, c, d;
	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 19)) || !(c & (1u << 9)))
		return false;
	if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
		return false;
	return b & (1u << 29);
#else
	__builtin_cpu_init();
	return __builtin_cpu_supports("sha") && __builtin_cpu_supports("sse4.1") &&
	       __builtin_cpu_supports("ssse3");
#endif
}
#endif /* HAVE_X86_SHA */

/* ---- dispatch ---------------------------------------------------------------- */

/* Chosen on first use. Racing first uses store the same value, so relaxed
 * atomics are enough. */
static sha256_blocks_fn blocks_impl;

static sha256_blocks_fn detect_impl(void)
{
#ifdef HAVE_X86_SHA
	if (cpu_has_sha_ni())
		return sha256_blocks_shani;
#endif
	return sha256_blocks_portable;
}

static inline sha256_blocks_fn get_impl(void)
{
	sha256_blocks_fn fn = __atomic_load_n(&blocks_impl, __ATOMIC_RELAXED);
	if (__builtin_expect(fn == NULL, 0)) {
		fn = detect_impl();
		__atomic_store_n(&blocks_impl, fn, __ATOMIC_RELAXED);
	}
	return fn;
}

const char *sha256_impl_name(void)
{
	return get_impl() == sha256_blocks_portable ? "portable" : "sha-ni";
}

bool sha256_force_portable(bool on)
{
	sha256_blocks_fn fn = on ? sha256_blocks_portable : detect_impl();
	__atomic_store_n(&blocks_impl, fn, __ATOMIC_RELAXED);
	return detect_impl() != sha256_blocks_portable;
}

/* ---- streaming API ------------------------------------------------------------ */

void sha256_init(struct sha256_ctx *ctx)
{
	static const uint32_t iv[8] = {
	    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
	};
	memcpy(ctx->state, iv, sizeof(iv));
	ctx->total = 0;
	ctx->block_len = 0;
}

void sha256_update(struct sha256_ctx *ctx, const void *data, size_t len)
{
	const uint8_t *p = data;
	sha256_blocks_fn blocks = get_impl();

	ctx->total += len;
	if (ctx->block_len > 0) {
		size_t take = 64 - ctx->block_len;
		if (take > len)
			take = len;
		memcpy(ctx->block + ctx->block_len, p, take);
		ctx->block_len += take;
		p += take;
		len -= take;
		if (ctx->block_len < 64)
			return;
		blocks(ctx->state, ctx->block, 1);
		ctx->block_len = 0;
	}
	/* Whole blocks straight from the caller's buffer: no copy on the hot path. */
	if (len >= 64) {
		size_t n = len / 64;
		blocks(ctx->state, p, n);
		p += n * 64;
		len -= n * 64;
	}
	if (len > 0) {
		memcpy(ctx->block, p, len);
		ctx->block_len = len;
	}
}

void sha256_final(struct sha256_ctx *ctx, uint8_t out[SHA256_DIGEST_LEN])
{
	sha256_blocks_fn blocks = get_impl();
	uint64_t bits = ctx->total * 8;
	size_t n = ctx->block_len;

	ctx->block[n++] = 0x80;
	if (n > 56) {
		memset(ctx->block + n, 0, 64 - n);
		blocks(ctx->state, ctx->block, 1);
		n = 0;
	}
	memset(ctx->block + n, 0, 56 - n);
	for (int i = 0; i < 8; i++)
		ctx->block[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
	blocks(ctx->state, ctx->block, 1);

	for (int i = 0; i < 8; i++) {
		out[4 * i] = (uint8_t)(ctx->state[i] >> 24);
		out[4 * i + 1] = (uint8_t)(ctx->state[i] >> 16);
		out[4 * i + 2] = (uint8_t)(ctx->state[i] >> 8);
		out[4 * i + 3] = (uint8_t)ctx->state[i];
	}
	memset(ctx, 0, sizeof(*ctx));
}

void sha256_hex(const uint8_t in[SHA256_DIGEST_LEN], char out[SHA256_HEX_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";
	for (int i = 0; i < SHA256_DIGEST_LEN; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0xf];
	}
	out[SHA256_HEX_LEN] = '\0';
}

void sha256_digest(const void *data, size_t len, char out[72])
{
	struct sha256_ctx c;
	uint8_t d[SHA256_DIGEST_LEN];
	char hex[SHA256_HEX_LEN + 1];
	sha256_init(&c);
	sha256_update(&c, data, len);
	sha256_final(&c, d);
	sha256_hex(d, hex);
	snprintf(out, 72, "sha256:%s", hex);
}
