/*
 * libFuzzer harness: the legacy (MD5) request header
 * (vmess_legacy_header_open at the fixed timestamp T0) and the legacy
 * auth index (vmess_legacy_index_find, vmess_legacy_index_update).
 *
 * Input: a mode byte, then
 *   0 raw:        split, wire bytes (also: index lookup of bytes 0..15)
 *   1 auth:       flags, user, ID, times: the HMAC of a chosen ID and
 *                 second is looked up, after optional index updates
 *   2 deep:       split, auth, plaintext: the harness CFB-encrypts the
 *                 fuzzer's plaintext with the real key and IV
 *   3 round trip: a request built from input, sealed, opened, compared
 * Every header is also fed in input-sized prefixes: the first answer
 * other than VMESS_AGAIN must equal the answer for the whole.
 */

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "vmess.h"
#include "common.h"


#define FUZZ_USERS          3
#define FUZZ_VECTOR_USER    0
#define FUZZ_ALTER_MAX      4
#define FUZZ_PLAIN_MAX      400

#define FUZZ_DEEP_FIX_SUM   0x01

#define FUZZ_AUTH_UPDATE    0x01
#define FUZZ_AUTH_UPDATE2   0x02


int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_raw(fuzz_in_t *in);
static void fuzz_auth(fuzz_in_t *in);
static void fuzz_deep(fuzz_in_t *in);
static void fuzz_round_trip(fuzz_in_t *in);
static int fuzz_open_split(const uint8_t *wire, size_t len,
    fuzz_split_t *sp, size_t *consumed, vmess_request_t *req);
static void fuzz_reseal(const vmess_request_t *req);
static void fuzz_auth_hmac(const uint8_t id[16], int64_t ts,
    uint8_t auth[16]);
static void fuzz_header_iv(int64_t ts, uint8_t iv[16]);
static int fuzz_domain_chars(const uint8_t *p, size_t len);


static vmess_user_t           fuzz_users[FUZZ_USERS];
static uint8_t                fuzz_ids[FUZZ_USERS][1 + FUZZ_ALTER_MAX][16];
static vmess_legacy_index_t  *fuzz_index;       /* at T0, never changed */
static vmess_legacy_index_t  *fuzz_scratch;     /* updated, then restored */
static uint8_t               *fuzz_scratch_mem;
static uint8_t               *fuzz_snapshot;
static size_t                 fuzz_index_size;

static const uint16_t  fuzz_alters[FUZZ_USERS] = { 4, 0, 2 };

static const uint8_t  fuzz_other_ids[2][16] = {
    { 0x2b, 0x5a, 0x9f, 0x5c, 0x52, 0xa1, 0x4b, 0x13,
      0x9e, 0x36, 0x3c, 0x1a, 0x4b, 0x7e, 0x6d, 0x80 },
    { 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
      0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f }
};


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    size_t   u, a;
    uint8_t  id[16];
    void    *mem;

    (void) argc;
    (void) argv;

    for (u = 0; u < FUZZ_USERS; u++) {
        if (u == FUZZ_VECTOR_USER) {
            if (vmess_uuid_parse(FUZZ_UUID, sizeof(FUZZ_UUID) - 1, id)
                != VMESS_OK)
            {
                fuzz_fail("vmess_uuid_parse");
            }

        } else {
            memcpy(id, fuzz_other_ids[u - 1], 16);
        }

        if (vmess_user_init(&fuzz_users[u], id, fuzz_alters[u], NULL)
            != VMESS_OK)
        {
            fuzz_fail("vmess_user_init");
        }

        memcpy(fuzz_ids[u][0], id, 16);

        for (a = 1; a <= fuzz_alters[u]; a++) {
            if (vmess_alter_id_next(fuzz_ids[u][a - 1], fuzz_ids[u][a])
                != VMESS_OK)
            {
                fuzz_fail("vmess_alter_id_next");
            }
        }
    }

    fuzz_index_size = vmess_legacy_index_size(fuzz_users, FUZZ_USERS);

    /* malloc memory is aligned to 16 */
    mem = fuzz_alloc(fuzz_index_size);
    fuzz_index = vmess_legacy_index_init(mem, fuzz_index_size, fuzz_users,
                                         FUZZ_USERS);

    fuzz_scratch_mem = fuzz_alloc(fuzz_index_size);
    fuzz_scratch = vmess_legacy_index_init(fuzz_scratch_mem,
                                           fuzz_index_size, fuzz_users,
                                           FUZZ_USERS);

    if (fuzz_index == NULL || fuzz_scratch == NULL
        || vmess_legacy_index_update(fuzz_index, FUZZ_T0) != VMESS_OK
        || vmess_legacy_index_update(fuzz_scratch, FUZZ_T0) != VMESS_OK)
    {
        fuzz_fail("legacy index");
    }

    /* the index points into its own memory: restore it in place */
    fuzz_snapshot = fuzz_dup(fuzz_scratch_mem, fuzz_index_size);

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_in_t  in;

    in.p = data;
    in.len = size;

    switch (fuzz_u8(&in) & 3) {

    case 0:
        fuzz_raw(&in);
        break;

    case 1:
        fuzz_auth(&in);
        break;

    case 2:
        fuzz_deep(&in);
        break;

    default:
        fuzz_round_trip(&in);
    }

    return 0;
}


static void
fuzz_raw(fuzz_in_t *in)
{
    int              rc;
    size_t           found, consumed;
    int64_t          ts;
    uint8_t         *auth;
    fuzz_split_t     sp;
    vmess_request_t  req;

    fuzz_split_read(&sp, in);

    if (in->len >= 16) {
        auth = fuzz_dup(in->p, 16);
        found = (size_t) -1;

        rc = vmess_legacy_index_find(fuzz_index, auth, FUZZ_T0, &found,
                                     &ts);
        fuzz_assert(rc == VMESS_OK || rc == VMESS_ERR_UNKNOWN_USER,
                    "index find rc");

        if (rc == VMESS_OK) {
            fuzz_assert(found < FUZZ_USERS, "found in range");
            fuzz_assert(ts >= FUZZ_T0 - VMESS_AUTHID_WINDOW
                        && ts <= FUZZ_T0 + VMESS_AUTHID_WINDOW, "window");
        }

        free(auth);
    }

    rc = fuzz_open_split(in->p, in->len, &sp, &consumed, &req);

    if (rc == VMESS_OK) {
        fuzz_reseal(&req);
    }
}


/*
 * flags: bit 0 update the scratch index to T0 + u1 first, bit 1 then to
 * T0 + u2; user (3: a stranger), ID (primary or alter), the HMAC's
 * second and the lookup's "now", all as offsets from T0.
 */

static void
fuzz_auth(fuzz_in_t *in)
{
    int                    rc, want;
    size_t                 u, a, found;
    int64_t                ts, now, lo, hi, upd, ts_found;
    uint8_t                flags, auth[16], stranger[16], *key;
    vmess_legacy_index_t  *idx;

    flags = fuzz_u8(in);
    u = fuzz_u8(in) % (FUZZ_USERS + 1);
    a = fuzz_u8(in);
    ts = FUZZ_T0 + (int16_t) fuzz_u16(in) % 400;
    now = FUZZ_T0 + (int16_t) fuzz_u16(in) % 400;

    idx = fuzz_index;
    upd = FUZZ_T0;

    if (flags & (FUZZ_AUTH_UPDATE | FUZZ_AUTH_UPDATE2)) {
        memcpy(fuzz_scratch_mem, fuzz_snapshot, fuzz_index_size);
        idx = fuzz_scratch;

        if (flags & FUZZ_AUTH_UPDATE) {
            upd = FUZZ_T0 + (int16_t) fuzz_u16(in) % 512;
            rc = vmess_legacy_index_update(idx, upd);
            fuzz_assert(rc == VMESS_OK, "index update");
        }

        if (flags & FUZZ_AUTH_UPDATE2) {
            upd = FUZZ_T0 + (int16_t) fuzz_u16(in) % 512;
            rc = vmess_legacy_index_update(idx, upd);
            fuzz_assert(rc == VMESS_OK, "second index update");
        }
    }

    if (u == FUZZ_USERS) {
        memset(stranger, 0x5c, sizeof(stranger));
        key = stranger;

    } else {
        key = fuzz_ids[u][a % (1 + (size_t) fuzz_alters[u])];
    }

    fuzz_auth_hmac(key, ts, auth);

    lo = upd - VMESS_AUTHID_WINDOW;
    hi = upd + VMESS_AUTHID_WINDOW;

    want = (u < FUZZ_USERS && ts >= lo && ts <= hi
            && ts - now <= VMESS_AUTHID_WINDOW
            && now - ts <= VMESS_AUTHID_WINDOW)
           ? VMESS_OK : VMESS_ERR_UNKNOWN_USER;

    found = (size_t) -1;
    ts_found = -1;

    rc = vmess_legacy_index_find(idx, auth, now, &found, &ts_found);

    fuzz_assert(rc == want, "index lookup result");

    if (rc == VMESS_OK) {
        fuzz_assert(found == u && ts_found == ts, "index lookup entry");
    }

    if (idx == fuzz_scratch) {
        memcpy(fuzz_scratch_mem, fuzz_snapshot, fuzz_index_size);
    }
}


/*
 * wire = auth(16) || CFB(cmdKey, IV(T0), prefix || FNV1a(prefix) ||
 * trailer); FNV1a only with flag FIX_SUM.
 */

static void
fuzz_deep(fuzz_in_t *in)
{
    int              rc;
    size_t           n, plen, consumed;
    uint8_t          flags, iv[16], plain[FUZZ_PLAIN_MAX];
    uint8_t          wire[16 + FUZZ_PLAIN_MAX];
    uint32_t         sum;
    fuzz_split_t     sp;
    const uint8_t   *p;
    vmess_request_t  req;

    flags = fuzz_u8(in);
    fuzz_split_read(&sp, in);

    memset(wire, 0, 16);
    n = fuzz_take(in, 16, &p);
    memcpy(wire, p, n);

    n = fuzz_u16(in) % (FUZZ_PLAIN_MAX - 4 + 1);
    plen = fuzz_take(in, n, &p);
    memcpy(plain, p, plen);

    if (flags & FUZZ_DEEP_FIX_SUM) {
        sum = vmess_fnv1a(plain, plen);
        plain[plen++] = (uint8_t) (sum >> 24);
        plain[plen++] = (uint8_t) (sum >> 16);
        plain[plen++] = (uint8_t) (sum >> 8);
        plain[plen++] = (uint8_t) sum;
    }

    n = fuzz_take(in, FUZZ_PLAIN_MAX - plen, &p);
    memcpy(plain + plen, p, n);
    plen += n;

    fuzz_header_iv(FUZZ_T0, iv);
    fuzz_cfb_encrypt(fuzz_users[FUZZ_VECTOR_USER].cmd_key, iv, plain, plen,
                     wire + 16);

    rc = fuzz_open_split(wire, 16 + plen, &sp, &consumed, &req);

    if (rc == VMESS_OK) {
        fuzz_reseal(&req);
    }
}


/*
 * Input: version, iv(16), key(16), V, options, P<<4|sec, reserved,
 * command, port(2), address type, address length, address, padding,
 * the ID index that authenticates, split.
 */

static void
fuzz_round_trip(fuzz_in_t *in)
{
    int              rc, sec, ok_addr;
    size_t           len, consumed, n, a, found;
    int64_t          ts;
    uint8_t          b35, wire[16 + 512];
    fuzz_split_t     sp;
    const uint8_t   *p;
    vmess_request_t  req, got;

    memset(&req, 0, sizeof(vmess_request_t));

    req.version = fuzz_u8(in);
    n = fuzz_take(in, 16, &p);
    memcpy(req.body_iv, p, n);
    n = fuzz_take(in, 16, &p);
    memcpy(req.body_key, p, n);
    req.response_v = fuzz_u8(in);
    req.options = fuzz_u8(in);
    b35 = fuzz_u8(in);
    req.padding_len = b35 >> 4;
    req.security = b35 & 0x0f;
    req.reserved = fuzz_u8(in);
    req.command = fuzz_u8(in);
    req.port = fuzz_u16(in);
    req.addr_type = fuzz_u8(in);
    req.addr_len = fuzz_u8(in);
    n = fuzz_take(in, req.addr_len, &p);
    memcpy(req.addr, p, n);
    n = fuzz_take(in, req.padding_len, &p);
    memcpy(req.padding, p, n);

    a = fuzz_u8(in) % (1 + FUZZ_ALTER_MAX);
    fuzz_split_read(&sp, in);

    /* the auth may come from an alter ID; the key is the primary's */
    rc = vmess_legacy_header_seal(&fuzz_users[FUZZ_VECTOR_USER],
                                  fuzz_ids[FUZZ_VECTOR_USER][a], FUZZ_T0,
                                  &req, wire, sizeof(wire), &len);
    if (rc != VMESS_OK) {
        fuzz_assert(rc == VMESS_ERR_INVALID, "seal rc");
        return;
    }

    rc = vmess_legacy_index_find(fuzz_index, wire, FUZZ_T0, &found, &ts);
    fuzz_assert(rc == VMESS_OK && found == FUZZ_VECTOR_USER && ts == FUZZ_T0,
                "a sealed auth is in the index");

    rc = fuzz_open_split(wire, len, &sp, &consumed, &got);

    sec = req.security ? req.security : VMESS_SEC_AES_128_CFB;

    ok_addr = req.command == VMESS_CMD_MUX
              || req.addr_type == VMESS_ADDR_IPV4
              || req.addr_type == VMESS_ADDR_IPV6
              || (req.addr_type == VMESS_ADDR_DOMAIN
                  && fuzz_domain_chars(req.addr, req.addr_len));

    if (req.command < VMESS_CMD_TCP || req.command > VMESS_CMD_MUX) {
        fuzz_assert(rc == VMESS_ERR_UNSUPPORTED_COMMAND, "bad command");
        return;
    }

    if (rc == VMESS_ERR_UNSUPPORTED_ADDRESS) {
        fuzz_assert(!ok_addr, "a valid address refused");
        return;
    }

    if (sec != 1 && sec != 3 && sec != 4 && sec != 5) {
        fuzz_assert(rc == VMESS_ERR_UNSUPPORTED_SECURITY, "bad security");
        return;
    }

    if ((req.options & VMESS_OPT_GLOBAL_PADDING)
        && !(req.options & VMESS_OPT_CHUNK_MASKING))
    {
        fuzz_assert(rc == VMESS_ERR_BAD_OPTION, "0x08 without 0x04");
        return;
    }

    fuzz_assert(rc == VMESS_OK, "a well-formed header refused");
    fuzz_assert(consumed == len, "consumed = sealed length");

    fuzz_assert(got.version == req.version
                && memcmp(got.body_iv, req.body_iv, 16) == 0
                && memcmp(got.body_key, req.body_key, 16) == 0
                && got.response_v == req.response_v
                && got.options == req.options
                && got.padding_len == req.padding_len
                && memcmp(got.padding, req.padding, req.padding_len) == 0
                && got.security == sec
                && got.reserved == req.reserved
                && got.command == req.command, "fixed fields");

    if (req.command != VMESS_CMD_MUX) {
        fuzz_assert(got.port == req.port, "port");

        if (got.addr_type == req.addr_type) {
            fuzz_assert(got.addr_len == req.addr_len
                        && memcmp(got.addr, req.addr, req.addr_len) == 0,
                        "address");
        } else {
            fuzz_assert(req.addr_type == VMESS_ADDR_DOMAIN, "address type");
        }
    }

    fuzz_reseal(&got);
}


static int
fuzz_open_split(const uint8_t *wire, size_t len, fuzz_split_t *sp,
    size_t *consumed, vmess_request_t *req)
{
    int              rc, first;
    size_t           have, first_consumed;
    uint8_t         *buf;
    vmess_request_t  first_req;

    first = VMESS_AGAIN;
    first_consumed = 0;
    have = 0;

    memset(&first_req, 0, sizeof(vmess_request_t));

    while (have < len) {
        have += fuzz_split_next(sp, len - have);

        buf = fuzz_dup(wire, have);
        first_consumed = (size_t) -1;
        first = vmess_legacy_header_open(&fuzz_users[FUZZ_VECTOR_USER],
                                         FUZZ_T0, buf, have, &first_consumed,
                                         &first_req);
        free(buf);

        if (first != VMESS_AGAIN) {
            break;
        }
    }

    buf = fuzz_dup(wire, len);
    *consumed = (size_t) -1;
    memset(req, 0, sizeof(vmess_request_t));
    rc = vmess_legacy_header_open(&fuzz_users[FUZZ_VECTOR_USER], FUZZ_T0,
                                  buf, len, consumed, req);
    free(buf);

    fuzz_assert(rc == first, "prefix and whole agree");

    if (rc == VMESS_OK) {
        fuzz_assert(*consumed == first_consumed
                    && memcmp(req, &first_req, sizeof(vmess_request_t)) == 0,
                    "prefix and whole give the same request");
        fuzz_assert(*consumed <= have, "consumed within the prefix");
    }

    return rc;
}


static void
fuzz_reseal(const vmess_request_t *req)
{
    int              rc;
    size_t           len, consumed;
    uint8_t          wire[16 + 512], *buf;
    vmess_request_t  again;

    fuzz_addr_text(req);

    rc = vmess_legacy_header_seal(&fuzz_users[FUZZ_VECTOR_USER],
                                  fuzz_ids[FUZZ_VECTOR_USER][0], FUZZ_T0,
                                  req, wire, sizeof(wire), &len);
    fuzz_assert(rc == VMESS_OK, "an opened request seals");

    buf = fuzz_dup(wire, len);
    memset(&again, 0xff, sizeof(vmess_request_t));
    rc = vmess_legacy_header_open(&fuzz_users[FUZZ_VECTOR_USER], FUZZ_T0,
                                  buf, len, &consumed, &again);
    free(buf);

    fuzz_assert(rc == VMESS_OK && consumed == len, "resealed header opens");
    fuzz_assert(memcmp(&again, req, sizeof(vmess_request_t)) == 0,
                "resealed header gives the same request");
}


/* HMAC-MD5(id, BE64(ts)) (VMESS-SPEC.md §4) */

static void
fuzz_auth_hmac(const uint8_t id[16], int64_t ts, uint8_t auth[16])
{
    int           i;
    uint8_t       msg[8];
    unsigned int  n;

    for (i = 0; i < 8; i++) {
        msg[i] = (uint8_t) ((uint64_t) ts >> (56 - 8 * i));
    }

    n = 16;

    if (HMAC(EVP_md5(), id, 16, msg, sizeof(msg), auth, &n) == NULL) {
        fuzz_fail("HMAC-MD5");
    }
}


/* MD5(BE64(ts) x 4) */

static void
fuzz_header_iv(int64_t ts, uint8_t iv[16])
{
    int           i;
    uint8_t       msg[32];
    unsigned int  n;

    for (i = 0; i < 32; i++) {
        msg[i] = (uint8_t) ((uint64_t) ts >> (56 - 8 * (i % 8)));
    }

    if (!EVP_Digest(msg, sizeof(msg), iv, &n, EVP_md5(), NULL)) {
        fuzz_fail("MD5");
    }
}


static int
fuzz_domain_chars(const uint8_t *p, size_t len)
{
    size_t   i;
    uint8_t  c;

    if (len == 0) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        c = p[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
        {
            return 0;
        }
    }

    return 1;
}
