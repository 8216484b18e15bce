/*
 * User table: AuthID trial (window, skew, many users) and the legacy
 * HMAC-MD5 index (vectors, alter IDs, window moves, consistency).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/hmac.h>

#include "vmess.h"
#include "unit.h"


#define T0              ((int64_t) 1700000000)
#define MANY_USERS      1000
#define TIMING_USERS    10000


static uint64_t  rng_state = 0x9e3779b97f4a7c15ULL;


static void rng_bytes(uint8_t *p, size_t len);
static double now_ns(void);
static int make_users(vmess_user_t *users, size_t n, size_t alter_mod);
static void free_users(vmess_user_t *users, size_t n);
static void legacy_auth(const uint8_t id[16], int64_t ts, uint8_t auth[16]);
static int check_found(int rc, size_t found, int64_t ts, size_t want_user,
    int64_t want_ts);
static vmess_legacy_index_t *make_index(vmess_user_t *users, size_t n,
    void **mem);
static void test_authid_vectors(void);
static void test_authid_many(void);
static void test_authid_timing(void);
static void test_legacy_vectors(void);
static void test_legacy_moves(vmess_legacy_index_t *idx, const uint8_t *id);
static void test_legacy_empty(void);
static void test_legacy_churn(void);
static void test_legacy_timing(void);


/* xorshift64*: reproducible users and AuthID randoms */

static void
rng_bytes(uint8_t *p, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        p[i] = (uint8_t) ((rng_state * 0x2545f4914f6cdd1dULL) >> 56);
    }
}


static double
now_ns(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (double) ts.tv_sec * 1e9 + (double) ts.tv_nsec;
}


/* random users; user i gets i % alter_mod alter IDs (alter_mod 0: none) */

static int
make_users(vmess_user_t *users, size_t n, size_t alter_mod)
{
    size_t    i;
    uint8_t   id[16];
    uint16_t  alter;

    for (i = 0; i < n; i++) {
        rng_bytes(id, 16);
        alter = (uint16_t) (alter_mod ? i % alter_mod : 0);

        if (vmess_user_init(&users[i], id, alter, NULL) != VMESS_OK) {
            return 0;
        }
    }

    return 1;
}


static void
free_users(vmess_user_t *users, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        vmess_user_free(&users[i]);
    }
}


/* the reference: OpenSSL's one-shot HMAC, not the index's EVP_MAC path */

static void
legacy_auth(const uint8_t id[16], int64_t ts, uint8_t auth[16])
{
    int           i;
    uint8_t       msg[8];
    unsigned int  len;

    for (i = 0; i < 8; i++) {
        msg[i] = (uint8_t) ((uint64_t) ts >> (56 - 8 * i));
    }

    len = 16;

    if (HMAC(EVP_md5(), id, 16, msg, 8, auth, &len) == NULL) {
        memset(auth, 0, 16);
    }
}


static int
check_found(int rc, size_t found, int64_t ts, size_t want_user,
    int64_t want_ts)
{
    return rc == VMESS_OK && found == want_user && ts == want_ts;
}


static vmess_legacy_index_t *
make_index(vmess_user_t *users, size_t n, void **mem)
{
    size_t  size;

    size = vmess_legacy_index_size(users, n);
    *mem = (size != 0) ? malloc(size) : NULL;

    if (*mem == NULL) {
        return NULL;
    }

    return vmess_legacy_index_init(*mem, size, users, n);
}


static void
test_authid_vectors(void)
{
    int            rc;
    size_t         len, found, i, count, aead;
    int64_t        ts, skew, t0;
    uint8_t        authid[16];
    uint8_t       *id, *want, *wire;
    const char    *mode;
    vmess_user_t   user;

    id = vec_hex(&len, "ids.uuid_bytes");
    ok(id != NULL && len == 16
       && vmess_user_init(&user, id, 0, NULL) == VMESS_OK,
       "vector user made");
    free(id);

    want = vec_hex(&len, "authid.aes_key");
    ok(unit_mem_eq(user.authid_key, 16, want, len), "user authid key");
    free(want);

    want = vec_hex(&len, "authid.authid");
    t0 = vec_int("authid.timestamp");
    ok(want != NULL && len == 16 && t0 == T0, "authid vector loaded");
    if (want == NULL || len != 16) {
        vmess_user_free(&user);
        return;
    }

    memcpy(authid, want, 16);
    free(want);

    found = 99;
    ts = 0;
    rc = vmess_users_find_authid(&user, 1, authid, T0, &found, &ts, &skew);
    ok(check_found(rc, found, ts, 0, T0), "authid found at now = T0");

    rc = vmess_users_find_authid(&user, 1, authid, T0 + 120, &found, &ts,
                                 &skew);
    ok(check_found(rc, found, ts, 0, T0), "accepted at now = T0 + 120");

    rc = vmess_users_find_authid(&user, 1, authid, T0 - 120, &found, &ts,
                                 &skew);
    ok(check_found(rc, found, ts, 0, T0), "accepted at now = T0 - 120");

    found = 99;
    skew = 0;
    rc = vmess_users_find_authid(&user, 1, authid, T0 + 121, &found, &ts,
                                 &skew);
    ok(rc == VMESS_ERR_CLOCK_SKEW && found == 0 && skew == -121,
       "now = T0 + 121: clock skew -121 (rc %d, skew %lld)", rc,
       (long long) skew);

    found = 99;
    skew = 0;
    rc = vmess_users_find_authid(&user, 1, authid, T0 - 121, &found, &ts,
                                 &skew);
    ok(rc == VMESS_ERR_CLOCK_SKEW && found == 0 && skew == 121,
       "now = T0 - 121: clock skew +121 (rc %d, skew %lld)", rc,
       (long long) skew);

    skew = 0;
    rc = vmess_users_find_authid(&user, 1, authid, T0 + 315360000, &found,
                                 &ts, &skew);
    ok(rc == VMESS_ERR_CLOCK_SKEW && skew == -315360000,
       "ten years off: clock skew reported exactly");

    ok(vmess_users_find_authid(&user, 1, authid, -1, &found, &ts, &skew)
       == VMESS_ERR_INVALID, "negative now refused");

    ok(vmess_users_find_authid(&user, 0, authid, T0, &found, &ts, &skew)
       == VMESS_ERR_UNKNOWN_USER, "no users: unknown user");

    /* a negative time with a good CRC is not a clock at all */
    ok(vmess_authid_seal(user.authid_key, -5, (const uint8_t *) "abcd",
                         authid) == VMESS_OK
       && vmess_users_find_authid(&user, 1, authid, T0, &found, &ts, &skew)
          == VMESS_ERR_UNKNOWN_USER,
       "negative AuthID time refused as unknown");

    /* the AEAD request header vectors open with the same user's AuthID */
    count = (size_t) vec_int("request_headers.cases.count");
    aead = 0;

    for (i = 0; i < count; i++) {
        mode = vec_str("request_headers.cases.%zu.mode", i);
        if (mode == NULL || strcmp(mode, "aead") != 0) {
            continue;
        }

        aead++;
        wire = vec_hex(&len, "request_headers.cases.%zu.wire", i);
        ts = 0;
        rc = (wire != NULL && len >= 16)
             ? vmess_users_find_authid(&user, 1, wire, T0, &found, &ts,
                                       &skew)
             : VMESS_ERR_TRUNCATED;
        ok(check_found(rc, found, ts, 0,
                       vec_int("request_headers.cases.%zu.timestamp", i)),
           "aead header %zu: AuthID found", i);
        free(wire);
    }

    ok(aead == 6, "six aead header vectors (%zu)", aead);

    vmess_user_free(&user);
}


static void
test_authid_many(void)
{
    int            rc, bad;
    size_t         i, k, found;
    int64_t        ts, skew, now;
    uint8_t        authid[16], rand4[4], id[16];
    vmess_user_t  *users, stranger;
    const size_t   targets[] = { 0, MANY_USERS / 2, MANY_USERS - 1 };

    users = calloc(MANY_USERS, sizeof(vmess_user_t));
    ok(users != NULL && make_users(users, MANY_USERS, 0),
       "%d random users", MANY_USERS);
    if (users == NULL) {
        return;
    }

    now = T0 + 12345;

    for (i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        k = targets[i];
        rng_bytes(rand4, 4);

        ok(vmess_authid_seal(users[k].authid_key, now + 37, rand4, authid)
           == VMESS_OK, "sealed for user %zu", k);

        found = 0;
        ts = 0;
        rc = vmess_users_find_authid(users, MANY_USERS, authid, now, &found,
                                     &ts, &skew);
        ok(check_found(rc, found, ts, k, now + 37),
           "user %zu of %d found (rc %d, found %zu)", k, MANY_USERS, rc,
           found);

        /* the same contexts serve the next trial unchanged */
        rc = vmess_users_find_authid(users, MANY_USERS, authid, now, &found,
                                     &ts, &skew);
        ok(check_found(rc, found, ts, k, now + 37),
           "user %zu found again with the same contexts", k);
    }

    rng_bytes(rand4, 4);
    vmess_authid_seal(users[MANY_USERS - 1].authid_key, now - 500, rand4,
                      authid);
    skew = 0;
    rc = vmess_users_find_authid(users, MANY_USERS, authid, now, &found, &ts,
                                 &skew);
    ok(rc == VMESS_ERR_CLOCK_SKEW && found == MANY_USERS - 1 && skew == -500,
       "skewed last user: clock skew -500 (rc %d, skew %lld)", rc,
       (long long) skew);

    bad = 0;

    for (i = 0; i < 200; i++) {
        rng_bytes(authid, 16);

        if (vmess_users_find_authid(users, MANY_USERS, authid, now, &found,
                                    &ts, &skew)
            != VMESS_ERR_UNKNOWN_USER)
        {
            bad++;
        }
    }

    ok(bad == 0, "200 garbage AuthIDs: unknown user (%d not)", bad);

    rng_bytes(id, 16);
    ok(vmess_user_init(&stranger, id, 0, NULL) == VMESS_OK,
       "user outside the table");
    vmess_authid_seal(stranger.authid_key, now, rand4, authid);
    ok(vmess_users_find_authid(users, MANY_USERS, authid, now, &found, &ts,
                               &skew)
       == VMESS_ERR_UNKNOWN_USER, "stranger's AuthID: unknown user");
    vmess_user_free(&stranger);

    free_users(users, MANY_USERS);
    free(users);
}


static void
test_authid_timing(void)
{
    int            rc, r;
    size_t         found;
    double         t, best;
    int64_t        ts, skew;
    uint8_t        authid[16];
    vmess_user_t  *users;

    users = calloc(TIMING_USERS, sizeof(vmess_user_t));
    ok(users != NULL && make_users(users, TIMING_USERS, 0),
       "%d users for timing", TIMING_USERS);
    if (users == NULL) {
        return;
    }

    rng_bytes(authid, 16);
    best = 0;
    rc = VMESS_OK;

    /* an unknown AuthID is the worst case: every user is tried */
    for (r = 0; r < 20; r++) {
        t = now_ns();
        rc = vmess_users_find_authid(users, TIMING_USERS, authid, T0, &found,
                                     &ts, &skew);
        t = now_ns() - t;

        if (r == 0 || t < best) {
            best = t;
        }
    }

    ok(rc == VMESS_ERR_UNKNOWN_USER, "full scan over %d users", TIMING_USERS);
    unit_diag("authid trial: %.1f ns per user, %.0f us per full scan of %d",
              best / TIMING_USERS, best / 1000, TIMING_USERS);

    free_users(users, TIMING_USERS);
    free(users);
}


static void
test_legacy_vectors(void)
{
    int                    rc;
    size_t                 i, len, size, found, count, legacy, by_alter;
    int64_t                ts;
    uint8_t                auth[16], alter[16], next[16];
    uint8_t               *id, *want, *wire;
    void                  *mem;
    const char            *mode, *which;
    vmess_user_t           users[3];
    vmess_legacy_index_t  *idx;

    id = vec_hex(&len, "ids.uuid_bytes");
    ok(id != NULL && len == 16, "legacy: vector uuid");
    if (id == NULL || len != 16) {
        free(id);
        return;
    }

    /* the vector user sits between two others, all with alter IDs */
    rng_bytes(alter, 16);
    ok(make_users(&users[0], 1, 0)
       && vmess_user_init(&users[1], id, 4, NULL) == VMESS_OK
       && vmess_user_init(&users[2], alter, 2, NULL) == VMESS_OK,
       "legacy users made");

    size = vmess_legacy_index_size(users, 3);
    ok(size > 0, "index size %zu", size);
    mem = malloc(size + 8);
    if (mem == NULL) {
        free(id);
        free_users(users, 3);
        return;
    }

    ok(vmess_legacy_index_init(mem, size - 1, users, 3) == NULL,
       "too small memory refused");
    ok(vmess_legacy_index_init((uint8_t *) mem + 4, size, users, 3) == NULL,
       "misaligned memory refused");

    idx = vmess_legacy_index_init(mem, size, users, 3);
    ok(idx != NULL, "index made");
    if (idx == NULL) {
        free(mem);
        free(id);
        free_users(users, 3);
        return;
    }

    want = vec_hex(&len, "ids.legacy_auth.auth_primary");
    ok(want != NULL && len == 16
       && vec_int("ids.legacy_auth.timestamp") == T0,
       "legacy auth vector loaded");
    if (want == NULL || len != 16) {
        free(want);
        free(mem);
        free(id);
        free_users(users, 3);
        return;
    }

    ok(vmess_legacy_index_find(idx, want, T0, &found, &ts)
       == VMESS_ERR_UNKNOWN_USER, "empty index before the first update");

    ok(vmess_legacy_index_update(idx, -1) == VMESS_ERR_INVALID,
       "negative now refused");
    ok(vmess_legacy_index_update(idx, T0) == VMESS_OK, "index filled at T0");

    found = 99;
    ts = 0;
    rc = vmess_legacy_index_find(idx, want, T0, &found, &ts);
    ok(check_found(rc, found, ts, 1, T0), "primary auth vector found");

    legacy_auth(id, T0, auth);
    ok(unit_mem_eq(auth, 16, want, 16), "reference HMAC matches the vector");
    free(want);

    /* every vector alter ID authenticates the same user, edges included */
    for (i = 0; i < 4; i++) {
        want = vec_hex(&len, "ids.alter_ids.%zu.bytes", i);
        if (want == NULL || len != 16) {
            ok(0, "alter id %zu vector", i);
            free(want);
            continue;
        }

        memcpy(alter, want, 16);
        free(want);

        legacy_auth(alter, T0, auth);
        rc = vmess_legacy_index_find(idx, auth, T0, &found, &ts);
        ok(check_found(rc, found, ts, 1, T0), "alter id %zu at T0", i);

        legacy_auth(alter, T0 - 120, auth);
        rc = vmess_legacy_index_find(idx, auth, T0, &found, &ts);
        ok(check_found(rc, found, ts, 1, T0 - 120),
           "alter id %zu at T0 - 120", i);

        legacy_auth(alter, T0 + 120, auth);
        rc = vmess_legacy_index_find(idx, auth, T0, &found, &ts);
        ok(check_found(rc, found, ts, 1, T0 + 120),
           "alter id %zu at T0 + 120", i);
    }

    /* the fifth alter ID is beyond alterId = 4 */
    ok(vmess_alter_id_next(alter, next) == VMESS_OK, "fifth alter id");
    legacy_auth(next, T0, auth);
    ok(vmess_legacy_index_find(idx, auth, T0, &found, &ts)
       == VMESS_ERR_UNKNOWN_USER, "alter id beyond the count refused");

    /* the third user's second alter ID is in, its third is not */
    vmess_alter_id_next(users[2].id, alter);
    vmess_alter_id_next(alter, next);
    legacy_auth(next, T0 + 7, auth);
    rc = vmess_legacy_index_find(idx, auth, T0, &found, &ts);
    ok(check_found(rc, found, ts, 2, T0 + 7), "user 2 by its alter id 1");
    vmess_alter_id_next(next, alter);
    legacy_auth(alter, T0 + 7, auth);
    ok(vmess_legacy_index_find(idx, auth, T0, &found, &ts)
       == VMESS_ERR_UNKNOWN_USER, "user 2's alter id 2 refused");

    legacy_auth(users[0].id, T0 - 3, auth);
    rc = vmess_legacy_index_find(idx, auth, T0, &found, &ts);
    ok(check_found(rc, found, ts, 0, T0 - 3), "user 0 by its primary id");

    count = (size_t) vec_int("request_headers.cases.count");
    legacy = 0;
    by_alter = 0;

    for (i = 0; i < count; i++) {
        mode = vec_str("request_headers.cases.%zu.mode", i);
        if (mode == NULL || strcmp(mode, "legacy") != 0) {
            continue;
        }

        legacy++;
        which = vec_str("request_headers.cases.%zu.hmac_id_which", i);
        if (which != NULL && strncmp(which, "alter", 5) == 0) {
            by_alter++;
        }

        wire = vec_hex(&len, "request_headers.cases.%zu.wire", i);
        found = 99;
        ts = 0;
        rc = (wire != NULL && len >= 16)
             ? vmess_legacy_index_find(idx, wire, T0, &found, &ts)
             : VMESS_ERR_TRUNCATED;
        ok(check_found(rc, found, ts, 1,
                       vec_int("request_headers.cases.%zu.timestamp", i)),
           "legacy header %zu (%s id): user and timestamp", i,
           which ? which : "?");
        free(wire);
    }

    ok(legacy == 3 && by_alter == 1,
       "three legacy header vectors, one by alter id (%zu, %zu)", legacy,
       by_alter);

    rng_bytes(auth, 16);
    ok(vmess_legacy_index_find(idx, auth, T0, &found, &ts)
       == VMESS_ERR_UNKNOWN_USER, "garbage auth: unknown user");

    test_legacy_moves(idx, id);

    OPENSSL_cleanse(mem, size);
    free(mem);
    free(id);
    free_users(users, 3);
}


/* idx holds user 1 = id, updated at T0 */

static void
test_legacy_moves(vmess_legacy_index_t *idx, const uint8_t *id)
{
    int      rc;
    size_t   found;
    int64_t  ts;
    uint8_t  auth[16];

    legacy_auth(id, T0 - 120, auth);
    rc = vmess_legacy_index_find(idx, auth, T0, &found, &ts);
    ok(check_found(rc, found, ts, 1, T0 - 120), "T0 - 120 found at T0");
    ok(vmess_legacy_index_find(idx, auth, T0 + 1, &found, &ts)
       == VMESS_ERR_UNKNOWN_USER, "T0 - 120 refused when now = T0 + 1");

    legacy_auth(id, T0 + 121, auth);
    ok(vmess_legacy_index_find(idx, auth, T0 + 121, &found, &ts)
       == VMESS_ERR_UNKNOWN_USER, "T0 + 121 not indexed at T0");

    ok(vmess_legacy_index_update(idx, T0 + 5) == VMESS_OK, "moved to T0 + 5");

    /* now = T0 would pass the window check: only eviction refuses it */
    legacy_auth(id, T0 - 120, auth);
    ok(vmess_legacy_index_find(idx, auth, T0, &found, &ts)
       == VMESS_ERR_UNKNOWN_USER, "T0 - 120 evicted");

    legacy_auth(id, T0 - 115, auth);
    rc = vmess_legacy_index_find(idx, auth, T0 + 5, &found, &ts);
    ok(check_found(rc, found, ts, 1, T0 - 115), "T0 - 115 kept");

    legacy_auth(id, T0 + 125, auth);
    rc = vmess_legacy_index_find(idx, auth, T0 + 5, &found, &ts);
    ok(check_found(rc, found, ts, 1, T0 + 125), "T0 + 125 added");

    ok(vmess_legacy_index_update(idx, T0 - 10) == VMESS_OK,
       "moved back to T0 - 10");
    ok(vmess_legacy_index_find(idx, auth, T0 + 5, &found, &ts)
       == VMESS_ERR_UNKNOWN_USER, "T0 + 125 evicted going back");

    legacy_auth(id, T0 - 130, auth);
    rc = vmess_legacy_index_find(idx, auth, T0 - 10, &found, &ts);
    ok(check_found(rc, found, ts, 1, T0 - 130), "T0 - 130 added going back");

    ok(vmess_legacy_index_update(idx, T0 + 100000) == VMESS_OK,
       "jumped to T0 + 100000");
    legacy_auth(id, T0 + 100000 - 120, auth);
    rc = vmess_legacy_index_find(idx, auth, T0 + 100000, &found, &ts);
    ok(check_found(rc, found, ts, 1, T0 + 100000 - 120),
       "window rebuilt after the jump");
    legacy_auth(id, T0, auth);
    ok(vmess_legacy_index_find(idx, auth, T0, &found, &ts)
       == VMESS_ERR_UNKNOWN_USER, "old window gone after the jump");

    ok(vmess_legacy_index_update(idx, 50) == VMESS_OK,
       "now near the epoch");
    legacy_auth(id, 0, auth);
    rc = vmess_legacy_index_find(idx, auth, 50, &found, &ts);
    ok(check_found(rc, found, ts, 1, 0), "second 0 indexed");
    legacy_auth(id, -1, auth);
    ok(vmess_legacy_index_find(idx, auth, 50, &found, &ts)
       == VMESS_ERR_UNKNOWN_USER, "no negative seconds indexed");
}


static void
test_legacy_empty(void)
{
    size_t                 found;
    int64_t                ts;
    uint8_t                auth[16];
    void                  *mem;
    vmess_legacy_index_t  *idx;

    idx = make_index(NULL, 0, &mem);
    ok(idx != NULL && vmess_legacy_index_update(idx, T0) == VMESS_OK,
       "index of no users made and updated");

    rng_bytes(auth, 16);
    ok(idx != NULL
       && vmess_legacy_index_find(idx, auth, T0, &found, &ts)
          == VMESS_ERR_UNKNOWN_USER, "index of no users finds nobody");

    free(mem);
}


/*
 * Many small moves of the window, forwards and back, then every ID at
 * every second of the window must be found and the seconds just outside
 * must be gone: the backward-shift deletion must not cut probe chains.
 */

static void
test_legacy_churn(void)
{
    int                    rc;
    size_t                 i, k, a, n_ids, misses, strays, sampled, found,
                           updates_failed;
    int64_t                now, ts, t;
    uint8_t                auth[16];
    uint8_t               (*ids)[16];
    size_t                *owner;
    void                  *mem;
    vmess_user_t          *users;
    vmess_legacy_index_t  *idx;
    const int64_t          steps[] = { 1, 3, 7, 17, -5, 60, 1, 1, -30, 119,
                                       2, 200, -1, 11, 241, 5, -240, 13,
                                       20, -20, 20, -20, 20, -20, 20, -20,
                                       20, -20, 20, -20, 20, -20, 20, -20,
                                       20, -20, 20, -20, 20, -20, 20, -20,
                                       20, -20, 20, -20, 20, -20, 20, -20 };

    users = calloc(200, sizeof(vmess_user_t));
    ok(users != NULL && make_users(users, 200, 4),
       "200 users with 0..3 alter ids");
    if (users == NULL) {
        return;
    }

    /* the reference list of IDs, derived here independently */
    n_ids = 200 + 50 * (0 + 1 + 2 + 3);
    ids = malloc(n_ids * 16);
    owner = malloc(n_ids * sizeof(size_t));
    idx = make_index(users, 200, &mem);
    ok(ids != NULL && owner != NULL && idx != NULL, "churn index made");
    if (ids == NULL || owner == NULL || idx == NULL) {
        goto done;
    }

    k = 0;

    for (i = 0; i < 200; i++) {
        memcpy(ids[k], users[i].id, 16);
        owner[k++] = i;

        for (a = 0; a < users[i].alter_ids; a++) {
            vmess_alter_id_next(ids[k - 1], ids[k]);
            owner[k++] = i;
        }
    }

    now = T0;
    updates_failed = (vmess_legacy_index_update(idx, now) != VMESS_OK);
    sampled = 0;
    misses = 0;

    for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        now += steps[i];
        if (vmess_legacy_index_update(idx, now) != VMESS_OK) {
            updates_failed++;
        }

        /* a sample after each step */
        for (a = 0; a < 300; a++) {
            k = (a * 7919 + i * 104729) % n_ids;
            ts = now - 120 + (int64_t) ((a * 31 + i) % 241);
            legacy_auth(ids[k], ts, auth);
            sampled++;

            rc = vmess_legacy_index_find(idx, auth, now, &found, &t);

            if (!check_found(rc, found, t, owner[k], ts)) {
                misses++;
            }
        }
    }

    ok(updates_failed == 0, "every update ok (%zu failed)", updates_failed);
    ok(misses == 0, "samples after each move found (%zu of %zu missed)",
       misses, sampled);

    misses = 0;
    strays = 0;

    for (k = 0; k < n_ids; k++) {
        for (ts = now - 120; ts <= now + 120; ts++) {
            legacy_auth(ids[k], ts, auth);

            rc = vmess_legacy_index_find(idx, auth, now, &found, &t);

            if (!check_found(rc, found, t, owner[k], ts)) {
                misses++;
            }
        }

        /* looked up with now = ts itself: only absence refuses them */
        legacy_auth(ids[k], now - 121, auth);
        if (vmess_legacy_index_find(idx, auth, now - 121, &found, &t)
            != VMESS_ERR_UNKNOWN_USER)
        {
            strays++;
        }

        legacy_auth(ids[k], now + 121, auth);
        if (vmess_legacy_index_find(idx, auth, now + 121, &found, &t)
            != VMESS_ERR_UNKNOWN_USER)
        {
            strays++;
        }
    }

    ok(misses == 0, "all %zu ids x 241 s found after churn (%zu missed)",
       n_ids, misses);
    ok(strays == 0, "seconds outside the window gone (%zu left)", strays);

done:

    free(mem);
    free(ids);
    free(owner);
    free_users(users, 200);
    free(users);
}


static void
test_legacy_timing(void)
{
    int                    rc;
    size_t                 i, found, hits, n;
    double                 t_fill, t_step, t_find;
    int64_t                ts;
    uint8_t                auths[64][16];
    void                  *mem;
    vmess_user_t          *users;
    vmess_legacy_index_t  *idx;

    n = 1000;
    users = calloc(n, sizeof(vmess_user_t));
    ok(users != NULL && make_users(users, n, 0), "%zu users for timing", n);
    if (users == NULL) {
        return;
    }

    idx = make_index(users, n, &mem);
    ok(idx != NULL, "timing index made (%zu bytes)",
       vmess_legacy_index_size(users, n));
    if (idx == NULL) {
        free(mem);
        free_users(users, n);
        free(users);
        return;
    }

    t_fill = now_ns();
    rc = vmess_legacy_index_update(idx, T0);
    t_fill = now_ns() - t_fill;

    t_step = now_ns();
    rc |= vmess_legacy_index_update(idx, T0 + 1);
    t_step = now_ns() - t_step;

    for (i = 0; i < 64; i++) {
        legacy_auth(users[i * 15].id, T0 - 100 + (int64_t) i, auths[i]);
    }

    hits = 0;
    t_find = now_ns();

    for (i = 0; i < 64 * 100; i++) {
        if (vmess_legacy_index_find(idx, auths[i % 64], T0, &found, &ts)
            == VMESS_OK)
        {
            hits++;
        }
    }

    t_find = now_ns() - t_find;

    ok(rc == VMESS_OK, "timing updates ok");
    ok(hits == 64 * 100, "timed lookups all found (%zu)", hits);
    unit_diag("legacy index, %zu ids: fill %.1f ms (%.0f ns per HMAC), "
              "one-second step %.2f ms, find %.0f ns", n, t_fill / 1e6,
              t_fill / (241.0 * (double) n), t_step / 1e6,
              t_find / (64 * 100));

    free(mem);
    free_users(users, n);
    free(users);
}


int
main(void)
{
    vec_load();

    test_authid_vectors();
    test_authid_many();
    test_authid_timing();
    test_legacy_vectors();
    test_legacy_empty();
    test_legacy_churn();
    test_legacy_timing();

    return unit_done();
}
