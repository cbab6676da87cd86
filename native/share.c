/* Jobs, share checks, batches and the choice of implementation. */
#include <stdlib.h>

#include "internal.h"

static const fleetd_impl *active = &PORTABLE_IMPL;

int fleetd_impl_available(int impl)
{
    switch (impl) {
    case FLEETD_IMPL_BEST:
    case FLEETD_IMPL_PORTABLE:
        return 1;
#ifdef FLEETD_HAVE_SHANI
    case FLEETD_IMPL_SHANI:
        return shani_supported();
#endif
    default:
        return 0;
    }
}

int fleetd_select(int impl)
{
    if (!fleetd_impl_available(impl))
        return FLEETD_ERR_UNAVAILABLE;
#ifdef FLEETD_HAVE_SHANI
    if (impl == FLEETD_IMPL_SHANI || (impl == FLEETD_IMPL_BEST && shani_supported())) {
        active = &SHANI_IMPL;
        return 0;
    }
#endif
    active = &PORTABLE_IMPL;
    return 0;
}

const char *fleetd_impl_name(void)
{
    return active->name;
}

/* Streams data through the active transform, padding the final blocks. */
static void sha256_from(uint32_t s[8], const uint8_t *data, size_t len, uint64_t total_len, uint8_t out[32])
{
    uint8_t last[128] = {0};
    size_t whole = len / 64, rest = len % 64;
    active->transform(s, data, whole);
    memcpy(last, data + 64 * whole, rest);
    last[rest] = 0x80;
    size_t blocks = rest < 56 ? 1 : 2;
    uint64_t bits = total_len * 8;
    for (int i = 0; i < 8; i++)
        last[64 * blocks - 1 - i] = (uint8_t)(bits >> (8 * i));
    active->transform(s, last, blocks);
    for (int i = 0; i < 8; i++)
        store_be32(out + 4 * i, s[i]);
}

void fleetd_sha256(const uint8_t *data, size_t len, uint8_t out[32])
{
    uint32_t s[8];
    memcpy(s, SHA256_IV, sizeof s);
    sha256_from(s, data, len, len, out);
}

void fleetd_sha256d(const uint8_t *data, size_t len, uint8_t out[32])
{
    uint8_t first[32];
    fleetd_sha256(data, len, first);
    fleetd_sha256(first, 32, out);
}

static int job_lengths_ok(size_t coinb1_len, size_t extranonce_len, size_t coinb2_len, size_t branch_count)
{
    return extranonce_len <= FLEETD_MAX_EXTRANONCE && branch_count <= FLEETD_MAX_BRANCH &&
           coinb1_len <= FLEETD_MAX_COINBASE && coinb2_len <= FLEETD_MAX_COINBASE &&
           coinb1_len + extranonce_len + coinb2_len <= FLEETD_MAX_COINBASE;
}

/* Bytes a job needs: the struct, the padded coinbase tail after the midstate, the branch. */
static size_t job_size(size_t coinb1_len, size_t extranonce_len, size_t coinb2_len, size_t branch_count)
{
    size_t rest = coinb1_len % 64 + extranonce_len + coinb2_len;
    return sizeof(fleetd_job) + 64 * ((rest + 9 + 63) / 64) + 32 * branch_count;
}

static void job_init(fleetd_job *job, const uint8_t *coinb1, size_t coinb1_len,
                     size_t extranonce_len, const uint8_t *coinb2, size_t coinb2_len,
                     const uint8_t *branch, size_t branch_count,
                     const uint8_t prevhash[32], uint32_t nbits, const uint8_t network_target[32])
{
    size_t coinbase_len = coinb1_len + extranonce_len + coinb2_len;
    size_t mid_len = coinb1_len / 64 * 64;
    size_t rest = coinbase_len - mid_len;
    size_t tail_blocks = (rest + 9 + 63) / 64, tail_len = 64 * tail_blocks;
    uint8_t *tail = (uint8_t *)(job + 1), *branch_copy = tail + tail_len;

    memset(job, 0, sizeof *job + tail_len);
    memcpy(job->midstate, SHA256_IV, sizeof job->midstate);
    PORTABLE_IMPL.transform(job->midstate, coinb1, mid_len / 64);
    const uint32_t *s = job->midstate;
    const uint32_t shani_order[8] = {s[5], s[4], s[1], s[0], s[7], s[6], s[3], s[2]};
    memcpy(job->midstate_shani, shani_order, sizeof shani_order);

    memcpy(tail, coinb1 + mid_len, coinb1_len - mid_len);
    memcpy(tail + (coinb1_len - mid_len) + extranonce_len, coinb2, coinb2_len);
    tail[rest] = 0x80;
    uint64_t bits = (uint64_t)coinbase_len * 8;
    for (int i = 0; i < 8; i++)
        tail[tail_len - 1 - i] = (uint8_t)(bits >> (8 * i));

    memcpy(branch_copy, branch, 32 * branch_count);
    job->extranonce_len = extranonce_len;
    job->extranonce_offset = coinb1_len - mid_len;
    job->tail_blocks = tail_blocks;
    job->tail = tail;
    job->branch_count = branch_count;
    job->branch = branch_copy;

    memcpy(job->header + 4, prevhash, 32);
    store_le32(job->header + 72, nbits);
    job->header[80] = 0x80;
    job->header[126] = 0x02; /* 640 bits */
    job->header[127] = 0x80;
    if (network_target)
        memcpy(job->network_target, network_target, 32);
}

fleetd_job *fleetd_job_new(const uint8_t *coinb1, size_t coinb1_len,
                           size_t extranonce_len,
                           const uint8_t *coinb2, size_t coinb2_len,
                           const uint8_t *branch, size_t branch_count,
                           const uint8_t prevhash[32], uint32_t nbits,
                           const uint8_t network_target[32], int *err)
{
    if (!job_lengths_ok(coinb1_len, extranonce_len, coinb2_len, branch_count)) {
        *err = FLEETD_ERR_LENGTH;
        return NULL;
    }
    fleetd_job *job = malloc(job_size(coinb1_len, extranonce_len, coinb2_len, branch_count));
    if (!job) {
        *err = FLEETD_ERR_NOMEM;
        return NULL;
    }
    job_init(job, coinb1, coinb1_len, extranonce_len, coinb2, coinb2_len, branch, branch_count,
             prevhash, nbits, network_target);
    *err = 0;
    return job;
}

static void hash_share(const fleetd_job *job, const uint8_t *extranonce,
                       uint32_t version, uint32_t ntime, uint32_t nonce, uint8_t hash_out[32])
{
    const uint32_t fields[3] = {version, ntime, nonce};
    const uint32_t *const field_list[1] = {fields};
    active->hash_group(job, 1, &extranonce, field_list, &hash_out);
}

int fleetd_header_hash(const uint8_t *coinb1, size_t coinb1_len,
                       const uint8_t *extranonce, size_t extranonce_len,
                       const uint8_t *coinb2, size_t coinb2_len,
                       const uint8_t *branch, size_t branch_count,
                       uint32_t version, const uint8_t prevhash[32],
                       uint32_t ntime, uint32_t nbits, uint32_t nonce,
                       uint8_t hash_out[32])
{
    /* Typical coinbases fit on the stack; larger ones pay for one allocation. */
    _Alignas(16) uint8_t stack[2048];
    if (!job_lengths_ok(coinb1_len, extranonce_len, coinb2_len, branch_count))
        return FLEETD_ERR_LENGTH;
    size_t size = job_size(coinb1_len, extranonce_len, coinb2_len, branch_count);
    fleetd_job *job = size <= sizeof stack ? (fleetd_job *)stack : malloc(size);
    if (!job)
        return FLEETD_ERR_NOMEM;
    job_init(job, coinb1, coinb1_len, extranonce_len, coinb2, coinb2_len, branch, branch_count,
             prevhash, nbits, NULL);
    hash_share(job, extranonce, version, ntime, nonce, hash_out);
    if (job != (fleetd_job *)stack)
        free(job);
    return 0;
}

void fleetd_job_free(fleetd_job *job)
{
    free(job);
}

/* hash <= target, both little-endian 256-bit numbers. */
static int le256_at_most(const uint8_t hash[32], const uint8_t target[32])
{
    for (int i = 31; i >= 0; i--)
        if (hash[i] != target[i])
            return hash[i] < target[i];
    return 1;
}

static int flags_of(const fleetd_job *job, const uint8_t hash[32], const uint8_t *target)
{
    int flags = 0;
    if (target && le256_at_most(hash, target))
        flags |= FLEETD_MEETS_TARGET;
    if (le256_at_most(hash, job->network_target))
        flags |= FLEETD_MEETS_NETWORK;
    return flags;
}

int fleetd_check(const fleetd_job *job, const uint8_t *extranonce, size_t extranonce_len,
                 uint32_t version, uint32_t ntime, uint32_t nonce,
                 const uint8_t *target, uint8_t hash_out[32])
{
    if (extranonce_len != job->extranonce_len)
        return FLEETD_ERR_LENGTH;
    hash_share(job, extranonce, version, ntime, nonce, hash_out);
    return flags_of(job, hash_out, target);
}

int fleetd_check_batch(const fleetd_job *job, size_t n,
                       const uint8_t *extranonces, size_t extranonce_len,
                       const uint32_t *versions, const uint32_t *ntimes, const uint32_t *nonces,
                       const uint8_t *targets, uint8_t *hashes_out, uint8_t *flags_out)
{
    if (extranonce_len != job->extranonce_len)
        return FLEETD_ERR_LENGTH;
    const size_t group = (size_t)active->group;
    for (size_t first = 0; first < n; first += group) {
        const int count = (int)(n - first < group ? n - first : group);
        uint32_t fields[MAX_GROUP][3];
        const uint32_t *field_list[MAX_GROUP];
        const uint8_t *en[MAX_GROUP];
        uint8_t *out[MAX_GROUP];
        for (int l = 0; l < count; l++) {
            size_t i = first + (size_t)l;
            fields[l][0] = versions[i];
            fields[l][1] = ntimes[i];
            fields[l][2] = nonces[i];
            field_list[l] = fields[l];
            en[l] = extranonces + i * extranonce_len;
            out[l] = hashes_out + 32 * i;
        }
        active->hash_group(job, count, en, field_list, out);
    }
    for (size_t i = 0; i < n; i++)
        flags_out[i] = (uint8_t)flags_of(job, hashes_out + 32 * i, targets + 32 * i);
    return 0;
}
