/* SHA-256 with the x86 SHA extensions, chosen at run time by CPUID.
 *
 * Compiled with function-level target attributes so one build runs on any
 * x86-64. Digests stay in registers as message words between the hashes of a
 * share, and two shares run interleaved so one's SHA rounds fill the other's
 * latency. State lives in the ABEF/CDGH lane order sha256rnds2 works on.
 */
#include "internal.h"

#if defined(__x86_64__) || defined(__i386__)

#include <cpuid.h>
#include <immintrin.h>

#define SHANI __attribute__((target("sha,sse4.1")))
#define INLINE static inline __attribute__((always_inline))

int shani_supported(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    int ssse3 = (c >> 9) & 1, sse41 = (c >> 19) & 1;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 0;
    return ssse3 && sse41 && ((b >> 29) & 1);
}

INLINE SHANI __m128i bswap_mask(void)
{
    return _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
}

INLINE SHANI void set_iv(const int lanes, __m128i abef[], __m128i cdgh[])
{
    for (int l = 0; l < lanes; l++) {
        abef[l] = _mm_set_epi32(0x6a09e667, 0xbb67ae85, 0x510e527f, 0x9b05688c);
        cdgh[l] = _mm_set_epi32(0x3c6ef372, 0xa54ff53a, 0x1f83d9ab, 0x5be0cd19);
    }
}

/* 64 rounds on the message words in m (overwritten by the schedule). */
INLINE SHANI void rounds(const int lanes, __m128i abef[], __m128i cdgh[], __m128i m[][4])
{
    __m128i save_abef[2], save_cdgh[2], wk[2];
    for (int l = 0; l < lanes; l++) {
        save_abef[l] = abef[l];
        save_cdgh[l] = cdgh[l];
    }
#pragma GCC unroll 16
    for (int q = 0; q < 16; q++) {
        const __m128i k = _mm_load_si128((const __m128i *)&SHA256_K[4 * q]);
#pragma GCC unroll 2
        for (int l = 0; l < lanes; l++) {
            __m128i *w = m[l];
            if (q >= 4)
                w[q & 3] = _mm_sha256msg2_epu32(
                    _mm_add_epi32(_mm_sha256msg1_epu32(w[q & 3], w[(q + 1) & 3]),
                                  _mm_alignr_epi8(w[(q + 3) & 3], w[(q + 2) & 3], 4)),
                    w[(q + 3) & 3]);
            wk[l] = _mm_add_epi32(w[q & 3], k);
            cdgh[l] = _mm_sha256rnds2_epu32(cdgh[l], abef[l], wk[l]);
        }
#pragma GCC unroll 2
        for (int l = 0; l < lanes; l++)
            abef[l] = _mm_sha256rnds2_epu32(abef[l], cdgh[l], _mm_shuffle_epi32(wk[l], 0x0E));
    }
    for (int l = 0; l < lanes; l++) {
        abef[l] = _mm_add_epi32(abef[l], save_abef[l]);
        cdgh[l] = _mm_add_epi32(cdgh[l], save_cdgh[l]);
    }
}

/* 64 rounds on a block whose W + K is known in advance. */
INLINE SHANI void rounds_wk(const int lanes, __m128i abef[], __m128i cdgh[], const uint32_t wk_all[64])
{
    __m128i save_abef[2], save_cdgh[2];
    for (int l = 0; l < lanes; l++) {
        save_abef[l] = abef[l];
        save_cdgh[l] = cdgh[l];
    }
#pragma GCC unroll 16
    for (int q = 0; q < 16; q++) {
        const __m128i wk = _mm_load_si128((const __m128i *)&wk_all[4 * q]);
        const __m128i wk_hi = _mm_shuffle_epi32(wk, 0x0E);
#pragma GCC unroll 2
        for (int l = 0; l < lanes; l++)
            cdgh[l] = _mm_sha256rnds2_epu32(cdgh[l], abef[l], wk);
#pragma GCC unroll 2
        for (int l = 0; l < lanes; l++)
            abef[l] = _mm_sha256rnds2_epu32(abef[l], cdgh[l], wk_hi);
    }
    for (int l = 0; l < lanes; l++) {
        abef[l] = _mm_add_epi32(abef[l], save_abef[l]);
        cdgh[l] = _mm_add_epi32(cdgh[l], save_cdgh[l]);
    }
}

/* The digest as message words: lo = A B C D, hi = E F G H. */
INLINE SHANI void digest_words(__m128i abef, __m128i cdgh, __m128i *lo, __m128i *hi)
{
    *lo = _mm_shuffle_epi32(_mm_unpackhi_epi64(cdgh, abef), 0x1B);
    *hi = _mm_shuffle_epi32(_mm_unpacklo_epi64(cdgh, abef), 0x1B);
}

INLINE SHANI void load_block(const uint8_t *p, __m128i m[4])
{
    const __m128i mask = bswap_mask();
    for (int i = 0; i < 4; i++)
        m[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), mask);
}

/* sha256 of the 32-byte digests held in lo/hi, left in lo/hi. */
INLINE SHANI void hash_digest(const int lanes, __m128i lo[], __m128i hi[])
{
    __m128i abef[2], cdgh[2], m[2][4];
    for (int l = 0; l < lanes; l++) {
        m[l][0] = lo[l];
        m[l][1] = hi[l];
        m[l][2] = _mm_set_epi32(0, 0, 0, (int)0x80000000);
        m[l][3] = _mm_set_epi32(256, 0, 0, 0);
    }
    set_iv(lanes, abef, cdgh);
    rounds(lanes, abef, cdgh, m);
    for (int l = 0; l < lanes; l++)
        digest_words(abef[l], cdgh[l], &lo[l], &hi[l]);
}

INLINE SHANI void store_digest(__m128i lo, __m128i hi, uint8_t *out)
{
    const __m128i mask = bswap_mask();
    _mm_storeu_si128((__m128i *)out, _mm_shuffle_epi8(lo, mask));
    _mm_storeu_si128((__m128i *)(out + 16), _mm_shuffle_epi8(hi, mask));
}

INLINE SHANI void hash_shares(const int lanes, const fleetd_job *job,
                              const uint8_t *const extranonce[], const uint32_t *const fields[],
                              uint8_t *const out[])
{
    __m128i abef[2], cdgh[2], m[2][4], lo[2], hi[2];
    uint8_t scratch[2][64], header[2][128];

    /* coinbase: from the coinb1 midstate through the padded tail, then sha256 again */
    for (int l = 0; l < lanes; l++) {
        abef[l] = _mm_loadu_si128((const __m128i *)&job->midstate_shani[0]);
        cdgh[l] = _mm_loadu_si128((const __m128i *)&job->midstate_shani[4]);
    }
    for (size_t k = 0; k < job->tail_blocks; k++) {
        for (int l = 0; l < lanes; l++)
            load_block(tail_block(job, k, extranonce[l], scratch[l]), m[l]);
        rounds(lanes, abef, cdgh, m);
    }
    for (int l = 0; l < lanes; l++)
        digest_words(abef[l], cdgh[l], &lo[l], &hi[l]);
    hash_digest(lanes, lo, hi);

    /* merkle branch: sha256d(node || sibling) per level */
    for (size_t i = 0; i < job->branch_count; i++) {
        const __m128i mask = bswap_mask();
        const uint8_t *node = job->branch + 32 * i;
        const __m128i sibling[2] = {
            _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)node), mask),
            _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(node + 16)), mask),
        };
        for (int l = 0; l < lanes; l++) {
            m[l][0] = lo[l];
            m[l][1] = hi[l];
            m[l][2] = sibling[0];
            m[l][3] = sibling[1];
        }
        set_iv(lanes, abef, cdgh);
        rounds(lanes, abef, cdgh, m);
        rounds_wk(lanes, abef, cdgh, PAD64_WK);
        for (int l = 0; l < lanes; l++)
            digest_words(abef[l], cdgh[l], &lo[l], &hi[l]);
        hash_digest(lanes, lo, hi);
    }

    /* header: two blocks, then sha256 again */
    for (int l = 0; l < lanes; l++) {
        memcpy(header[l], job->header, 128);
        fill_header(header[l], fields[l]);
        store_digest(lo[l], hi[l], header[l] + HEADER_OFF_ROOT);
    }
    set_iv(lanes, abef, cdgh);
    for (int half = 0; half < 2; half++) {
        for (int l = 0; l < lanes; l++)
            load_block(header[l] + 64 * half, m[l]);
        rounds(lanes, abef, cdgh, m);
    }
    for (int l = 0; l < lanes; l++)
        digest_words(abef[l], cdgh[l], &lo[l], &hi[l]);
    hash_digest(lanes, lo, hi);
    for (int l = 0; l < lanes; l++)
        store_digest(lo[l], hi[l], out[l]);
}

/* Two shares interleave: one's SHA rounds fill the other's latency. */
SHANI static void hash_group(const fleetd_job *job, int count, const uint8_t *const extranonce[],
                             const uint32_t *const fields[], uint8_t *const out[])
{
    if (count == 2)
        hash_shares(2, job, extranonce, fields, out);
    else
        hash_shares(1, job, extranonce, fields, out);
}

SHANI static void transform(uint32_t s[8], const uint8_t *blocks, size_t count)
{
    __m128i abef[1], cdgh[1], m[1][4];
    abef[0] = _mm_set_epi32((int)s[0], (int)s[1], (int)s[4], (int)s[5]);
    cdgh[0] = _mm_set_epi32((int)s[2], (int)s[3], (int)s[6], (int)s[7]);
    for (size_t i = 0; i < count; i++) {
        load_block(blocks + 64 * i, m[0]);
        rounds(1, abef, cdgh, m);
    }
    __m128i lo, hi;
    digest_words(abef[0], cdgh[0], &lo, &hi);
    _mm_storeu_si128((__m128i *)&s[0], lo);
    _mm_storeu_si128((__m128i *)&s[4], hi);
}

const fleetd_impl SHANI_IMPL = {"shani", transform, 2, hash_group};

#endif
