/* Shared by the implementations; never seen by cffi. */
#ifndef FLEETD_INTERNAL_H
#define FLEETD_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fleetd_native.h"

#define HEADER_OFF_VERSION 0
#define HEADER_OFF_ROOT 36
#define HEADER_OFF_NTIME 68
#define HEADER_OFF_NONCE 76

struct fleetd_job {
    uint32_t midstate[8];        /* after the whole 64-byte blocks of coinb1 */
    uint32_t midstate_shani[8];  /* the same in SHA-NI's ABEF/CDGH lane order */
    size_t extranonce_len;
    size_t extranonce_offset;    /* where the extranonce starts inside tail */
    size_t tail_blocks;
    const uint8_t *tail;         /* rest of the coinbase, padded; extranonce bytes zero */
    size_t branch_count;
    const uint8_t *branch;       /* branch_count * 32 bytes */
    uint8_t header[128];         /* prevhash, nbits and padding set; the rest per share */
    uint8_t network_target[32];
};

/* Hashes count <= group shares of a job at once; fields are version, ntime, nonce. */
typedef void (*hash_group_fn)(const fleetd_job *job, int count, const uint8_t *const extranonce[],
                              const uint32_t *const fields[], uint8_t *const out[]);
typedef void (*transform_fn)(uint32_t state[8], const uint8_t *blocks, size_t count);

typedef struct {
    const char *name;
    transform_fn transform;
    int group;                   /* shares hash_group takes at once, at most MAX_GROUP */
    hash_group_fn hash_group;
} fleetd_impl;

#define MAX_GROUP 8

extern const uint32_t SHA256_IV[8];
extern const uint32_t SHA256_K[64];
extern uint32_t PAD64_WK[64];    /* W + K of the padding block after any 64-byte message */

extern const fleetd_impl PORTABLE_IMPL;
#if defined(__x86_64__) || defined(__i386__)
#define FLEETD_HAVE_SHANI 1
extern const fleetd_impl SHANI_IMPL;
int shani_supported(void);
#endif

/* Block k of the coinbase tail with this share's extranonce in place: a pointer
 * into the job when the block holds no extranonce byte, else into scratch. */
static inline const uint8_t *tail_block(const fleetd_job *job, size_t k,
                                        const uint8_t *extranonce, uint8_t scratch[64])
{
    const uint8_t *block = job->tail + 64 * k;
    size_t start = 64 * k, end = start + 64;
    size_t en_start = job->extranonce_offset, en_end = en_start + job->extranonce_len;
    if (en_end <= start || en_start >= end)
        return block;
    size_t from = en_start > start ? en_start : start;
    size_t to = en_end < end ? en_end : end;
    memcpy(scratch, block, 64);
    memcpy(scratch + (from - start), extranonce + (from - en_start), to - from);
    return scratch;
}

static inline void store_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline void store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline uint32_t load_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The per-share header fields; the merkle root is written by the caller. */
static inline void fill_header(uint8_t header[128], const uint32_t fields[3])
{
    store_le32(header + HEADER_OFF_VERSION, fields[0]);
    store_le32(header + HEADER_OFF_NTIME, fields[1]);
    store_le32(header + HEADER_OFF_NONCE, fields[2]);
}

#endif
