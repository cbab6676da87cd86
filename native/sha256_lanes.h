/* The lane-parallel share pipeline, built once per lane count by
 * sha256_portable.c: define LANES, LANE_FN(name) and LANE_ATTRS, then include. */

#define vec LANE_FN(vec)
#define broadcast LANE_FN(broadcast)
#define compress LANE_FN(compress)
#define compress_fixed LANE_FN(compress_fixed)
#define set_iv LANE_FN(set_iv)
#define load_block LANE_FN(load_block)
#define broadcast_block LANE_FN(broadcast_block)
#define hash_digest LANE_FN(hash_digest)
#define hash_group LANE_FN(hash_group)

typedef uint32_t vec __attribute__((vector_size(4 * LANES)));

INLINE vec broadcast(uint32_t x)
{
    return (vec){0} + x;
}

/* 64 rounds on the message words in w (overwritten by the schedule). */
INLINE void compress(vec s[8], vec w[16])
{
    vec a = s[0], b = s[1], c = s[2], d = s[3], e = s[4], f = s[5], g = s[6], h = s[7];
    EIGHT_ROUNDS(0, WK_FIRST);
    EIGHT_ROUNDS(8, WK_FIRST);
    for (int i = 16; i < 64; i += 8)
        EIGHT_ROUNDS(i, WK_NEXT);
    s[0] += a; s[1] += b; s[2] += c; s[3] += d;
    s[4] += e; s[5] += f; s[6] += g; s[7] += h;
}

/* 64 rounds on a block whose W + K is known in advance. */
INLINE void compress_fixed(vec s[8], const uint32_t wk[64])
{
    vec a = s[0], b = s[1], c = s[2], d = s[3], e = s[4], f = s[5], g = s[6], h = s[7];
    for (int i = 0; i < 64; i += 8)
        EIGHT_ROUNDS(i, WK_FIXED);
    s[0] += a; s[1] += b; s[2] += c; s[3] += d;
    s[4] += e; s[5] += f; s[6] += g; s[7] += h;
}

INLINE void set_iv(vec s[8])
{
    for (int i = 0; i < 8; i++)
        s[i] = broadcast(SHA256_IV[i]);
}

INLINE void load_block(vec w[16], int lane, const uint8_t block[64])
{
    for (int i = 0; i < 16; i++)
        w[i][lane] = load_be32(block + 4 * i);
}

INLINE void broadcast_block(vec w[16], const uint8_t block[64])
{
    for (int i = 0; i < 16; i++)
        w[i] = broadcast(load_be32(block + 4 * i));
}

/* sha256 of the 32-byte digests held as words in d, left in d. */
INLINE void hash_digest(vec d[8])
{
    vec w[16] = {[8] = broadcast(0x80000000u), [15] = broadcast(256)};
    memcpy(w, d, 8 * sizeof(vec));
    set_iv(d);
    compress(d, w);
}

LANE_ATTRS static void hash_group(const fleetd_job *job, int count, const uint8_t *const extranonce[],
                       const uint32_t *const fields[], uint8_t *const out[])
{
    vec s[8], w[16], header[8];
    uint8_t scratch[64];

    /* coinbase: from the coinb1 midstate through the padded tail, then sha256 again */
    for (int i = 0; i < 8; i++)
        s[i] = broadcast(job->midstate[i]);
    for (size_t k = 0; k < job->tail_blocks; k++) {
        memset(w, 0, sizeof w);
        for (int l = 0; l < count; l++)
            load_block(w, l, tail_block(job, k, extranonce[l], scratch));
        compress(s, w);
    }
    hash_digest(s);

    /* merkle branch: sha256d(node || sibling) per level */
    for (size_t i = 0; i < job->branch_count; i++) {
        memcpy(w, s, 8 * sizeof(vec));
        for (int j = 0; j < 8; j++)
            w[8 + j] = broadcast(load_be32(job->branch + 32 * i + 4 * j));
        set_iv(s);
        compress(s, w);
        compress_fixed(s, PAD64_WK);
        hash_digest(s);
    }

    /* header: version, prevhash and the root's first 28 bytes, then the rest */
    broadcast_block(w, job->header);
    for (int l = 0; l < count; l++)
        w[0][l] = swap32(fields[l][0]);
    memcpy(&w[9], s, 7 * sizeof(vec));
    set_iv(header);
    compress(header, w);
    broadcast_block(w, job->header + 64);
    w[0] = s[7];
    for (int l = 0; l < count; l++) {
        w[1][l] = swap32(fields[l][1]);
        w[3][l] = swap32(fields[l][2]);
    }
    compress(header, w);
    hash_digest(header);
    for (int l = 0; l < count; l++)
        for (int i = 0; i < 8; i++)
            store_be32(out[l] + 4 * i, header[i][l]);
}

#undef vec
#undef broadcast
#undef compress
#undef compress_fixed
#undef set_iv
#undef load_block
#undef broadcast_block
#undef hash_digest
#undef hash_group
