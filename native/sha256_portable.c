/* SHA-256 in portable C: the fallback on every CPU and the cross-check for SHA-NI.
 *
 * Batches run 8 shares at a time in GCC vector types: plain C on any target,
 * SIMD wherever the compiler has some. Digests stay message words between the
 * hashes of a share, so no hash is written out as bytes and read back.
 */
#include "internal.h"

/* Every function passing a vector by value is static and inlined: no ABI to keep. */
#pragma GCC diagnostic ignored "-Wpsabi"

/* The 8-lane build twice on x86-64, picked at load time: one AVX2 register per
 * word where the CPU has them, two SSE2 registers elsewhere. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define WIDEST_VECTORS __attribute__((target_clones("avx2", "default")))
#else
#define WIDEST_VECTORS
#endif
#define INLINE static inline __attribute__((always_inline)) /* into each build of hash_group */

const uint32_t SHA256_IV[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

const uint32_t SHA256_K[64] __attribute__((aligned(16))) = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

uint32_t PAD64_WK[64] __attribute__((aligned(16)));

#define ROTR(x, n) ((x) >> (n) | (x) << (32 - (n)))
#define BSIG0(x) (ROTR(x, 2) ^ ROTR(x, 13) ^ ROTR(x, 22))
#define BSIG1(x) (ROTR(x, 6) ^ ROTR(x, 11) ^ ROTR(x, 25))
#define SSIG0(x) (ROTR(x, 7) ^ ROTR(x, 18) ^ ((x) >> 3))
#define SSIG1(x) (ROTR(x, 17) ^ ROTR(x, 19) ^ ((x) >> 10))
#define CH(e, f, g) ((g) ^ ((e) & ((f) ^ (g))))
#define MAJ(a, b, c) (((a) & (b)) | ((c) & ((a) | (b))))

/* Message word i >= 16, computed in place in the 16-word ring w. */
#define W_NEXT(w, i) ((w)[(i) & 15] += SSIG1((w)[((i) - 2) & 15]) + (w)[((i) - 7) & 15] + SSIG0((w)[((i) - 15) & 15]))

/* One round; callers rotate the names instead of moving eight words. */
#define ROUND(a, b, c, d, e, f, g, h, wk)                \
    do {                                                 \
        vec t = (h) + BSIG1(e) + CH(e, f, g) + (wk);     \
        (d) += t;                                        \
        (h) = t + BSIG0(a) + MAJ(a, b, c);               \
    } while (0)

#define EIGHT_ROUNDS(i, WK)                              \
    do {                                                 \
        ROUND(a, b, c, d, e, f, g, h, WK((i) + 0));      \
        ROUND(h, a, b, c, d, e, f, g, WK((i) + 1));      \
        ROUND(g, h, a, b, c, d, e, f, WK((i) + 2));      \
        ROUND(f, g, h, a, b, c, d, e, WK((i) + 3));      \
        ROUND(e, f, g, h, a, b, c, d, WK((i) + 4));      \
        ROUND(d, e, f, g, h, a, b, c, WK((i) + 5));      \
        ROUND(c, d, e, f, g, h, a, b, WK((i) + 6));      \
        ROUND(b, c, d, e, f, g, h, a, WK((i) + 7));      \
    } while (0)

#define WK_FIRST(i) (w[i] + SHA256_K[i])
#define WK_NEXT(i) (W_NEXT(w, i) + SHA256_K[i])
#define WK_FIXED(i) (wk[i])

/* The big-endian word of a header field stored little-endian. */
INLINE uint32_t swap32(uint32_t x)
{
    return x >> 24 | (x >> 8 & 0xff00) | (x << 8 & 0xff0000) | x << 24;
}

/* One share alone runs fastest on single words; batches on 8 lanes. */
#define LANES 1
#define LANE_FN(name) name##_1
#define LANE_ATTRS
#include "sha256_lanes.h"
#undef LANES
#undef LANE_FN
#undef LANE_ATTRS

/* Plain streaming SHA-256 (job midstates, known-answer tests) on single words. */
static void transform(uint32_t s[8], const uint8_t *blocks, size_t count)
{
    vec_1 v[8], w[16];
    for (int i = 0; i < 8; i++)
        v[i] = broadcast_1(s[i]);
    for (size_t k = 0; k < count; k++) {
        broadcast_block_1(w, blocks + 64 * k);
        compress_1(v, w);
    }
    for (int i = 0; i < 8; i++)
        s[i] = v[i][0];
}

#define LANES 8
#define LANE_FN(name) name##_8
#define LANE_ATTRS WIDEST_VECTORS
#include "sha256_lanes.h"

static void hash_group(const fleetd_job *job, int count, const uint8_t *const extranonce[],
                       const uint32_t *const fields[], uint8_t *const out[])
{
    if (count == 1)
        hash_group_1(job, count, extranonce, fields, out);
    else
        hash_group_8(job, count, extranonce, fields, out);
}

__attribute__((constructor)) static void portable_init(void)
{
    uint32_t w[64] = {[0] = 0x80000000u, [15] = 512}; /* the padding block after a 64-byte message */
    for (int i = 16; i < 64; i++)
        w[i] = w[i - 16] + SSIG0(w[i - 15]) + w[i - 7] + SSIG1(w[i - 2]);
    for (int i = 0; i < 64; i++)
        PAD64_WK[i] = w[i] + SHA256_K[i];
}

const fleetd_impl PORTABLE_IMPL = {"portable", transform, LANES, hash_group};
