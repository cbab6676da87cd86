/* fleetd native core: SHA-256d share validation.
 *
 * This header is read as-is by the cffi cdef, so it holds only declarations
 * and integer #defines. Hashes are in internal byte order (as sha256d returns
 * them); targets are 32-byte little-endian numbers, the order hashes compare in.
 */

#define FLEETD_MAX_BRANCH 32         /* merkle levels: 2^32 transactions */
#define FLEETD_MAX_EXTRANONCE 64
#define FLEETD_MAX_COINBASE 1000000  /* bytes; a block is smaller than this */

#define FLEETD_MEETS_TARGET 1        /* flag bits of a share check */
#define FLEETD_MEETS_NETWORK 2

#define FLEETD_IMPL_BEST 0
#define FLEETD_IMPL_PORTABLE 1
#define FLEETD_IMPL_SHANI 2

#define FLEETD_ERR_LENGTH -1         /* a length out of its allowed range */
#define FLEETD_ERR_NOMEM -2
#define FLEETD_ERR_UNAVAILABLE -3    /* implementation not supported by this CPU */

typedef struct fleetd_job fleetd_job;

/* Implementation dispatch: select one (0 on success) and name the active one. */
int fleetd_select(int impl);
const char *fleetd_impl_name(void);
int fleetd_impl_available(int impl);

void fleetd_sha256(const uint8_t *data, size_t len, uint8_t out[32]);
void fleetd_sha256d(const uint8_t *data, size_t len, uint8_t out[32]);

/* A job prepared once: coinb1 midstate, coinbase tail and header template.
 * branch is branch_count concatenated 32-byte hashes. Returns NULL and sets
 * *err on a bad length or no memory. */
fleetd_job *fleetd_job_new(const uint8_t *coinb1, size_t coinb1_len,
                           size_t extranonce_len,
                           const uint8_t *coinb2, size_t coinb2_len,
                           const uint8_t *branch, size_t branch_count,
                           const uint8_t prevhash[32], uint32_t nbits,
                           const uint8_t network_target[32], int *err);
void fleetd_job_free(fleetd_job *job);

/* One share from its raw parts, without keeping a job: fleetd_check's result. */
int fleetd_header_hash(const uint8_t *coinb1, size_t coinb1_len,
                       const uint8_t *extranonce, size_t extranonce_len,
                       const uint8_t *coinb2, size_t coinb2_len,
                       const uint8_t *branch, size_t branch_count,
                       uint32_t version, const uint8_t prevhash[32],
                       uint32_t ntime, uint32_t nbits, uint32_t nonce,
                       uint8_t hash_out[32]);

/* One share: writes its header hash and returns its FLEETD_MEETS_* flags
 * (target may be NULL: no target check), or FLEETD_ERR_LENGTH. */
int fleetd_check(const fleetd_job *job, const uint8_t *extranonce, size_t extranonce_len,
                 uint32_t version, uint32_t ntime, uint32_t nonce,
                 const uint8_t *target, uint8_t hash_out[32]);

/* n shares in one call: n * extranonce_len extranonce bytes, n versions,
 * ntimes and nonces, n * 32 target bytes. Writes n * 32 hash bytes and n
 * flag bytes. Returns 0, or FLEETD_ERR_LENGTH. */
int fleetd_check_batch(const fleetd_job *job, size_t n,
                       const uint8_t *extranonces, size_t extranonce_len,
                       const uint32_t *versions, const uint32_t *ntimes, const uint32_t *nonces,
                       const uint8_t *targets, uint8_t *hashes_out, uint8_t *flags_out);
