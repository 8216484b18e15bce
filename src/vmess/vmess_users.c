/*
 * User table: per-user keys, AuthID trial, legacy time-window index.
 */

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "vmess.h"


/*
 * A wrong key decrypts an AuthID to a uniformly random block, so its time
 * lands within 2^32 s of now once in 2^31 trials.  The CRC, which costs
 * more than the AES block, is only computed for such plausible times; a
 * real client's clock off by more than 136 years is not worth a CRC each.
 */
#define VMESS_AUTHID_SKEW_MAX       ((int64_t) 1 << 32)

/* one second of the legacy window per slot: slot = ts % SLOTS */
#define VMESS_LEGACY_SLOTS          (2 * VMESS_AUTHID_WINDOW + 1)

/*
 * Buckets name entries by a uint32 reference (entry + 1, 0 marks a free
 * bucket) and number at least twice the entries.
 */
#define VMESS_LEGACY_ENTRIES_MAX    ((uint64_t) 0x7fffffff)


typedef struct {
    uint32_t                    tag;        /* first auth bytes */
    uint32_t                    ref;        /* entry + 1, 0: free */
} vmess_legacy_bucket_t;


/*
 * Entry e = slot * n_ids + id is HMAC-MD5(ids[id], BE64(slot_ts[slot])),
 * kept at ring[e * 16].  The table is open addressing with linear probing
 * over the entries' first four bytes; deletion shifts back, so there are
 * no tombstones and a probe ends at the first free bucket.  The pointers
 * lead into the same caller's memory, which must not move after init.
 */
struct vmess_legacy_index_s {
    size_t                      n_ids;
    size_t                      mask;       /* buckets - 1 */
    size_t                      used;       /* buckets in use */
    int64_t                     lo;         /* seconds in the index: */
    int64_t                     hi;         /* [lo, hi]; none if lo > hi */
    int64_t                     slot_ts[VMESS_LEGACY_SLOTS];
    uint8_t                    *ids;        /* n_ids * 16: every ID */
    uint32_t                   *owner;      /* n_ids: user of each ID */
    vmess_legacy_bucket_t      *table;
    uint8_t                    *ring;       /* SLOTS * n_ids * 16 */
};


static uint64_t vmess_users_be64(const uint8_t *p);
static uint32_t vmess_users_be32(const uint8_t *p);
static size_t vmess_legacy_layout(const vmess_user_t *users, size_t n,
    size_t *n_ids, size_t *buckets, size_t *ids_off, size_t *owner_off,
    size_t *table_off, size_t *ring_off);
static void vmess_legacy_clear(vmess_legacy_index_t *idx);
static int vmess_legacy_add(vmess_legacy_index_t *idx, EVP_MAC_CTX *mac,
    int64_t from, int64_t to);
static void vmess_legacy_drop(vmess_legacy_index_t *idx, int64_t from,
    int64_t to);
static uint32_t vmess_legacy_tag(const uint8_t *auth);
static int vmess_legacy_insert(vmess_legacy_index_t *idx, uint32_t e);
static void vmess_legacy_delete(vmess_legacy_index_t *idx, uint32_t e);


int
vmess_user_init(vmess_user_t *u, const uint8_t id[16], uint16_t alter_ids,
    void *data)
{
    int  rc;

    memset(u, 0, sizeof(vmess_user_t));
    memcpy(u->id, id, 16);
    u->alter_ids = alter_ids;
    u->data = data;

    rc = vmess_cmd_key(u->id, u->cmd_key);
    if (rc != VMESS_OK) {
        return rc;
    }

    rc = vmess_authid_key(u->cmd_key, u->authid_key);
    if (rc != VMESS_OK) {
        return rc;
    }

    /* the key schedule is made once: a trial is then one block */
    u->authid_ctx = EVP_CIPHER_CTX_new();

    if (u->authid_ctx == NULL
        || !EVP_DecryptInit_ex(u->authid_ctx, EVP_aes_128_ecb(), NULL,
                               u->authid_key, NULL)
        || !EVP_CIPHER_CTX_set_padding(u->authid_ctx, 0))
    {
        vmess_user_free(u);
        return VMESS_ERR_CRYPTO;
    }

    return VMESS_OK;
}


void
vmess_user_free(vmess_user_t *u)
{
    EVP_CIPHER_CTX_free(u->authid_ctx);
    OPENSSL_cleanse(u, sizeof(vmess_user_t));
}


static uint64_t
vmess_users_be64(const uint8_t *p)
{
    return (uint64_t) p[0] << 56 | (uint64_t) p[1] << 48
           | (uint64_t) p[2] << 40 | (uint64_t) p[3] << 32
           | (uint64_t) p[4] << 24 | (uint64_t) p[5] << 16
           | (uint64_t) p[6] << 8 | (uint64_t) p[7];
}


static uint32_t
vmess_users_be32(const uint8_t *p)
{
    return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16
           | (uint32_t) p[2] << 8 | (uint32_t) p[3];
}


int
vmess_users_find_authid(vmess_user_t *users, size_t n,
    const uint8_t authid[16], int64_t now, size_t *found, int64_t *timestamp,
    int64_t *skew)
{
    int       outl, skewed;
    size_t    i, skewed_user;
    int64_t   d, skewed_by;
    uint64_t  t;
    uint8_t   plain[16];

    if (now < 0) {
        return VMESS_ERR_INVALID;
    }

    skewed = 0;
    skewed_user = 0;
    skewed_by = 0;

    /*
     * ECB without padding keeps no state between whole blocks, so the
     * context made by vmess_user_init() serves every trial as it is.
     */

    for (i = 0; i < n; i++) {
        if (!EVP_DecryptUpdate(users[i].authid_ctx, plain, &outl, authid, 16)
            || outl != 16)
        {
            return VMESS_ERR_CRYPTO;
        }

        t = vmess_users_be64(plain);

        /* a negative time is no clock at all */
        if (t > INT64_MAX) {
            continue;
        }

        /* both are non-negative: the difference cannot overflow */
        d = (int64_t) t - now;

        if (d > VMESS_AUTHID_SKEW_MAX || d < -VMESS_AUTHID_SKEW_MAX
            || vmess_crc32(plain, 12) != vmess_users_be32(plain + 12))
        {
            continue;
        }

        if (d <= VMESS_AUTHID_WINDOW && d >= -VMESS_AUTHID_WINDOW) {
            *found = i;
            *timestamp = (int64_t) t;
            return VMESS_OK;
        }

        /* a later user may still match in the window */
        if (!skewed) {
            skewed = 1;
            skewed_user = i;
            skewed_by = d;
        }
    }

    if (skewed) {
        *found = skewed_user;
        *skew = skewed_by;
        return VMESS_ERR_CLOCK_SKEW;
    }

    return VMESS_ERR_UNKNOWN_USER;
}


/* computes the offsets of the arrays in the caller's memory; 0: too big */

static size_t
vmess_legacy_layout(const vmess_user_t *users, size_t n, size_t *n_ids,
    size_t *buckets, size_t *ids_off, size_t *owner_off, size_t *table_off,
    size_t *ring_off)
{
    size_t    i, size;
    uint64_t  ids, entries, b;

    if (n > UINT32_MAX) {
        return 0;
    }

    ids = 0;

    for (i = 0; i < n; i++) {
        ids += 1 + (uint64_t) users[i].alter_ids;
    }

    entries = ids * VMESS_LEGACY_SLOTS;

    if (entries > VMESS_LEGACY_ENTRIES_MAX) {
        return 0;
    }

    for (b = 16; b < 2 * entries; b <<= 1) {
        /* void */
    }

    /* with entries < 2^31 the sum is below 2^37: no 64-bit overflow */
    if ((uint64_t) sizeof(struct vmess_legacy_index_s) + ids * 16
        + ids * 4 + 8 + b * sizeof(vmess_legacy_bucket_t) + entries * 16
        > (uint64_t) SIZE_MAX)
    {
        return 0;
    }

    *n_ids = (size_t) ids;
    *buckets = (size_t) b;

    size = (sizeof(struct vmess_legacy_index_s) + 7) & ~(size_t) 7;
    *ids_off = size;
    size += *n_ids * 16;
    *owner_off = size;
    size += (*n_ids * sizeof(uint32_t) + 7) & ~(size_t) 7;
    *table_off = size;
    size += *buckets * sizeof(vmess_legacy_bucket_t);
    *ring_off = size;
    size += (size_t) entries * 16;

    return size;
}


size_t
vmess_legacy_index_size(const vmess_user_t *users, size_t n)
{
    size_t  n_ids, buckets, ids_off, owner_off, table_off, ring_off;

    return vmess_legacy_layout(users, n, &n_ids, &buckets, &ids_off,
                               &owner_off, &table_off, &ring_off);
}


vmess_legacy_index_t *
vmess_legacy_index_init(void *mem, size_t size, vmess_user_t *users,
    size_t n)
{
    size_t                 i, a, k, need, n_ids, buckets, ids_off,
                           owner_off, table_off, ring_off;
    uint8_t               *base;
    vmess_legacy_index_t  *idx;

    if (mem == NULL || ((uintptr_t) mem & 7) != 0) {
        return NULL;
    }

    need = vmess_legacy_layout(users, n, &n_ids, &buckets, &ids_off,
                               &owner_off, &table_off, &ring_off);

    if (need == 0 || size < need) {
        return NULL;
    }

    base = mem;
    idx = mem;

    memset(idx, 0, sizeof(vmess_legacy_index_t));
    idx->n_ids = n_ids;
    idx->mask = buckets - 1;
    idx->ids = base + ids_off;
    idx->owner = (uint32_t *) (base + owner_off);
    idx->table = (vmess_legacy_bucket_t *) (base + table_off);
    idx->ring = base + ring_off;

    /* alter IDs are derived once here, each the next link of a chain */
    k = 0;

    for (i = 0; i < n; i++) {
        memcpy(idx->ids + k * 16, users[i].id, 16);
        idx->owner[k++] = (uint32_t) i;

        for (a = 0; a < users[i].alter_ids; a++) {
            if (vmess_alter_id_next(idx->ids + (k - 1) * 16,
                                    idx->ids + k * 16)
                != VMESS_OK)
            {
                OPENSSL_cleanse(idx->ids, n_ids * 16);
                return NULL;
            }

            idx->owner[k++] = (uint32_t) i;
        }
    }

    vmess_legacy_clear(idx);

    return idx;
}


static void
vmess_legacy_clear(vmess_legacy_index_t *idx)
{
    size_t  i;

    memset(idx->table, 0, (idx->mask + 1) * sizeof(vmess_legacy_bucket_t));

    for (i = 0; i < VMESS_LEGACY_SLOTS; i++) {
        idx->slot_ts[i] = -1;
    }

    idx->used = 0;
    idx->lo = 1;
    idx->hi = 0;
}


int
vmess_legacy_index_update(vmess_legacy_index_t *idx, int64_t now)
{
    int           rc;
    int64_t       lo, hi;
    EVP_MAC      *hmac;
    EVP_MAC_CTX  *mac;
    char          digest[] = "MD5";
    OSSL_PARAM    params[2];

    if (now < 0 || now > INT64_MAX - VMESS_AUTHID_WINDOW) {
        return VMESS_ERR_INVALID;
    }

    lo = now - VMESS_AUTHID_WINDOW;
    hi = now + VMESS_AUTHID_WINDOW;

    if (lo < 0) {
        lo = 0;
    }

    if (lo == idx->lo && hi == idx->hi) {
        return VMESS_OK;
    }

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 digest, 0);
    params[1] = OSSL_PARAM_construct_end();

    hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    mac = (hmac != NULL) ? EVP_MAC_CTX_new(hmac) : NULL;

    if (mac == NULL || !EVP_MAC_CTX_set_params(mac, params)) {
        rc = VMESS_ERR_CRYPTO;
        goto done;
    }

    if (idx->lo > idx->hi || lo > idx->hi || hi < idx->lo) {
        /* nothing in common with the new window */
        vmess_legacy_clear(idx);
        rc = vmess_legacy_add(idx, mac, lo, hi);
        goto done;
    }

    /* only the seconds that leave or enter the window are touched */
    vmess_legacy_drop(idx, idx->lo, lo - 1);
    vmess_legacy_drop(idx, hi + 1, idx->hi);

    rc = vmess_legacy_add(idx, mac, lo, idx->lo - 1);

    if (rc == VMESS_OK) {
        rc = vmess_legacy_add(idx, mac, idx->hi + 1, hi);
    }

done:

    if (rc == VMESS_OK) {
        idx->lo = lo;
        idx->hi = hi;

    } else {
        /* a half-done update is not worth tracking: start over next time */
        vmess_legacy_clear(idx);
    }

    EVP_MAC_CTX_free(mac);
    EVP_MAC_free(hmac);

    return rc;
}


/*
 * Adds the seconds [from, to] (none if from > to) of every ID.  Each ID is
 * keyed once: EVP_MAC_init() with a NULL key restarts from the key already
 * set, half the cost of keying again.  OpenSSL 3.0.0 to 3.0.2 take that
 * restart as a silent no-op (openssl issue 17811): there every second is
 * keyed.
 */

static int
vmess_legacy_add(vmess_legacy_index_t *idx, EVP_MAC_CTX *mac, int64_t from,
    int64_t to)
{
    int             i, restart;
    size_t          id, len, slot;
    int64_t         ts;
    uint8_t         msg[8];
    uint32_t        e;
    const uint8_t  *key;

    if (from > to) {
        return VMESS_OK;
    }

    restart = OpenSSL_version_num() >= 0x30000030L;

    for (ts = from; ts <= to; ts++) {
        idx->slot_ts[ts % VMESS_LEGACY_SLOTS] = ts;
    }

    for (id = 0; id < idx->n_ids; id++) {
        key = idx->ids + id * 16;

        for (ts = from; ts <= to; ts++) {
            for (i = 0; i < 8; i++) {
                msg[i] = (uint8_t) ((uint64_t) ts >> (56 - 8 * i));
            }

            slot = (size_t) (ts % VMESS_LEGACY_SLOTS);
            e = (uint32_t) (slot * idx->n_ids + id);

            if (!EVP_MAC_init(mac, (ts == from || !restart) ? key : NULL, 16,
                              NULL)
                || !EVP_MAC_update(mac, msg, 8)
                || !EVP_MAC_final(mac, idx->ring + (size_t) e * 16, &len, 16)
                || len != 16)
            {
                return VMESS_ERR_CRYPTO;
            }

            if (vmess_legacy_insert(idx, e) != VMESS_OK) {
                return VMESS_ERR_NO_SPACE;
            }
        }
    }

    return VMESS_OK;
}


/* removes the seconds [from, to] (none if from > to) of every ID */

static void
vmess_legacy_drop(vmess_legacy_index_t *idx, int64_t from, int64_t to)
{
    size_t   id, slot;
    int64_t  ts;

    for (ts = from; ts <= to; ts++) {
        slot = (size_t) (ts % VMESS_LEGACY_SLOTS);

        for (id = 0; id < idx->n_ids; id++) {
            vmess_legacy_delete(idx, (uint32_t) (slot * idx->n_ids + id));
        }

        idx->slot_ts[slot] = -1;
    }
}


static uint32_t
vmess_legacy_tag(const uint8_t *auth)
{
    uint32_t  tag;

    /* HMAC output is uniform: its first bytes are a hash already */
    memcpy(&tag, auth, sizeof(uint32_t));

    return tag;
}


static int
vmess_legacy_insert(vmess_legacy_index_t *idx, uint32_t e)
{
    size_t    i;
    uint32_t  tag;

    /*
     * Never more entries than the window holds, so at least half the
     * buckets stay free and every probe ends; a lost entry shows up here
     * as an error, not as a probe loop that never ends.
     */
    if (idx->used == VMESS_LEGACY_SLOTS * idx->n_ids) {
        return VMESS_ERR_NO_SPACE;
    }

    tag = vmess_legacy_tag(idx->ring + (size_t) e * 16);

    for (i = tag & idx->mask; idx->table[i].ref != 0; i = (i + 1) & idx->mask)
    {
        /* void */
    }

    idx->table[i].tag = tag;
    idx->table[i].ref = e + 1;
    idx->used++;

    return VMESS_OK;
}


static void
vmess_legacy_delete(vmess_legacy_index_t *idx, uint32_t e)
{
    size_t    i, j, home;
    uint32_t  tag;

    tag = vmess_legacy_tag(idx->ring + (size_t) e * 16);

    for (i = tag & idx->mask; idx->table[i].ref != e + 1;
         i = (i + 1) & idx->mask)
    {
        if (idx->table[i].ref == 0) {
            return;
        }
    }

    /*
     * Shift back every later bucket of the run whose home is not between
     * the hole and itself, so no probe sequence is cut by the hole.
     */
    j = i;

    for ( ;; ) {
        j = (j + 1) & idx->mask;

        if (idx->table[j].ref == 0) {
            break;
        }

        home = idx->table[j].tag & idx->mask;

        if (((j - home) & idx->mask) >= ((j - i) & idx->mask)) {
            idx->table[i] = idx->table[j];
            i = j;
        }
    }

    idx->table[i].ref = 0;
    idx->used--;
}


int
vmess_legacy_index_find(const vmess_legacy_index_t *idx,
    const uint8_t auth[16], int64_t now, size_t *found, int64_t *timestamp)
{
    size_t    i, slot;
    int64_t   ts;
    uint32_t  tag, e;
    uint64_t  d;

    tag = vmess_legacy_tag(auth);

    for (i = tag & idx->mask; idx->table[i].ref != 0; i = (i + 1) & idx->mask)
    {
        if (idx->table[i].tag != tag) {
            continue;
        }

        e = idx->table[i].ref - 1;

        if (CRYPTO_memcmp(idx->ring + (size_t) e * 16, auth, 16) != 0) {
            continue;
        }

        slot = e / idx->n_ids;
        ts = idx->slot_ts[slot];

        /* unsigned differences of two int64 values cannot overflow */
        d = (ts >= now) ? (uint64_t) ts - (uint64_t) now
                        : (uint64_t) now - (uint64_t) ts;

        if (d > VMESS_AUTHID_WINDOW) {
            continue;
        }

        *found = idx->owner[e - slot * idx->n_ids];
        *timestamp = ts;

        return VMESS_OK;
    }

    return VMESS_ERR_UNKNOWN_USER;
}
