/* SHA-256 in portable C: the fallback on every CPU and the cross-check for SHA-NI. */
#include "internal.h"

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

#define ROTR(x, n) ((x) >> (n) | (x) << (32 - (n)))

static void compress(uint32_t s[8], const uint8_t block[64])
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = load_be32(block + 4 * i);
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROTR(w[i - 15], 7) ^ ROTR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROTR(w[i - 2], 17) ^ ROTR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = s[0], b = s[1], c = s[2], d = s[3], e = s[4], f = s[5], g = s[6], h = s[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + (ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25)) + ((e & f) ^ (~e & g)) + SHA256_K[i] + w[i];
        uint32_t t2 = (ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g; g = f; f = e; e = d + t1;
        d = c; c = b; b = a; a = t1 + t2;
    }
    s[0] += a; s[1] += b; s[2] += c; s[3] += d;
    s[4] += e; s[5] += f; s[6] += g; s[7] += h;
}

static void transform(uint32_t s[8], const uint8_t *blocks, size_t count)
{
    for (size_t i = 0; i < count; i++)
        compress(s, blocks + 64 * i);
}

static void digest(const uint32_t s[8], uint8_t out[32])
{
    for (int i = 0; i < 8; i++)
        store_be32(out + 4 * i, s[i]);
}

/* sha256 of the 32 bytes at the front of block, padding the rest in place. */
static void hash32_in_place(uint8_t block[64], uint8_t out[32])
{
    uint32_t s[8];
    memset(block + 32, 0, 32);
    block[32] = 0x80;
    block[62] = 0x01; /* 256 bits */
    memcpy(s, SHA256_IV, sizeof s);
    compress(s, block);
    digest(s, out);
}

static void hash_one(const fleetd_job *job, const uint8_t *extranonce,
                     const uint32_t fields[3], uint8_t out[32])
{
    static const uint8_t pad64[64] = {[0] = 0x80, [62] = 0x02}; /* after a 512-bit message */
    uint8_t block[64], scratch[64], cur[32], header[128];
    uint32_t s[8];

    memcpy(s, job->midstate, sizeof s);
    for (size_t k = 0; k < job->tail_blocks; k++)
        compress(s, tail_block(job, k, extranonce, scratch));
    digest(s, block);
    hash32_in_place(block, cur);

    for (size_t i = 0; i < job->branch_count; i++) {
        memcpy(block, cur, 32);
        memcpy(block + 32, job->branch + 32 * i, 32);
        memcpy(s, SHA256_IV, sizeof s);
        compress(s, block);
        compress(s, pad64);
        digest(s, block);
        hash32_in_place(block, cur);
    }

    memcpy(header, job->header, sizeof header);
    fill_header(header, fields);
    memcpy(header + HEADER_OFF_ROOT, cur, 32);
    memcpy(s, SHA256_IV, sizeof s);
    transform(s, header, 2);
    digest(s, block);
    hash32_in_place(block, out);
}

static void hash_two(const fleetd_job *job, const uint8_t *const extranonce[2],
                     const uint32_t *const fields[2], uint8_t *const out[2])
{
    hash_one(job, extranonce[0], fields[0], out[0]);
    hash_one(job, extranonce[1], fields[1], out[1]);
}

const fleetd_impl PORTABLE_IMPL = {"portable", transform, hash_one, hash_two};
