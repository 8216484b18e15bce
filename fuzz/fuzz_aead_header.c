/*
 * libFuzzer harness: the AEAD request header (vmess_aead_header_open) and
 * the AuthID trial (vmess_users_find_authid), for the vectors' user at
 * the fixed clock T0.
 *
 * Input: a mode byte, then
 *   0 raw:        split, wire bytes (also: AuthID trial on bytes 0..15)
 *   1 authid:     flags, time, rand4, crc: a chosen AuthID plaintext is
 *                 sealed with one user's key and tried over the table
 *   2 deep:       flags, split, AuthID, nonce, [L], [flip], plaintext:
 *                 the harness seals the fuzzer's plaintext itself, so the
 *                 instruction parser sees fuzzer bytes behind valid tags
 *   3 round trip: a request built from input, sealed, opened, compared
 * Every complete header is also fed in input-sized prefixes: the first
 * answer other than VMESS_AGAIN must equal the answer for the whole.
 */

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "vmess.h"
#include "common.h"


#define FUZZ_USERS          3
#define FUZZ_VECTOR_USER    1
#define FUZZ_PLAIN_MAX      600
#define FUZZ_WIRE_MAX       (VMESS_AEAD_HEADER_FIXED + FUZZ_PLAIN_MAX + 16)

#define FUZZ_DEEP_FIX_SUM   0x01
#define FUZZ_DEEP_HONEST_L  0x02
#define FUZZ_DEEP_FLIP      0x04


int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_raw(fuzz_in_t *in);
static void fuzz_authid(fuzz_in_t *in);
static void fuzz_deep(fuzz_in_t *in);
static void fuzz_round_trip(fuzz_in_t *in);
static int fuzz_open_split(const uint8_t *wire, size_t len,
    fuzz_split_t *sp, size_t *consumed, vmess_request_t *req);
static void fuzz_reseal(const vmess_request_t *req);
static void fuzz_ecb_encrypt(const uint8_t key[16], const uint8_t in[16],
    uint8_t out[16]);
static void fuzz_header_keys(const uint8_t *authid, const uint8_t *nonce8,
    const char *key_salt, const char *nonce_salt, uint8_t key[16],
    uint8_t nonce[12]);
static int fuzz_domain_chars(const uint8_t *p, size_t len);


static vmess_user_t  fuzz_users[FUZZ_USERS];
static vmess_user_t  fuzz_stranger;

static const uint8_t  fuzz_other_ids[3][16] = {
    { 0x5a, 0x07, 0x18, 0x34, 0x12, 0xd5, 0x98, 0x0a,
      0x72, 0xac, 0x84, 0x5d, 0x55, 0x68, 0xd1, 0x7d },
    { 0x2b, 0x5a, 0x9f, 0x5c, 0x52, 0xa1, 0x4b, 0x13,
      0x9e, 0x36, 0x3c, 0x1a, 0x4b, 0x7e, 0x6d, 0x80 },
    { 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
      0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f }
};


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;

    fuzz_user_init(&fuzz_users[FUZZ_VECTOR_USER]);

    if (vmess_user_init(&fuzz_users[0], fuzz_other_ids[0], 0, NULL)
        != VMESS_OK
        || vmess_user_init(&fuzz_users[2], fuzz_other_ids[1], 0, NULL)
           != VMESS_OK
        || vmess_user_init(&fuzz_stranger, fuzz_other_ids[2], 0, NULL)
           != VMESS_OK)
    {
        fuzz_fail("vmess_user_init");
    }

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
        fuzz_authid(&in);
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
    int64_t          ts, skew;
    uint8_t         *authid;
    fuzz_split_t     sp;
    vmess_request_t  req;

    fuzz_split_read(&sp, in);

    if (in->len >= 16) {
        authid = fuzz_dup(in->p, 16);
        found = (size_t) -1;

        rc = vmess_users_find_authid(fuzz_users, FUZZ_USERS, authid, FUZZ_T0,
                                     &found, &ts, &skew);

        fuzz_assert(rc == VMESS_OK || rc == VMESS_ERR_CLOCK_SKEW
                    || rc == VMESS_ERR_UNKNOWN_USER, "authid rc");

        if (rc == VMESS_OK) {
            fuzz_assert(found < FUZZ_USERS, "found in range");
            fuzz_assert(ts >= FUZZ_T0 - VMESS_AUTHID_WINDOW
                        && ts <= FUZZ_T0 + VMESS_AUTHID_WINDOW, "window");
        }

        free(authid);
    }

    rc = fuzz_open_split(in->p, in->len, &sp, &consumed, &req);

    if (rc == VMESS_OK) {
        fuzz_assert(consumed <= in->len, "consumed within input");
        fuzz_reseal(&req);
    }
}


/*
 * flags: bits 0-1 the sealing user (3: a user not in the table), bit 2
 * fix the CRC, bit 3 time = T0 + int16 (else any 64 bits).
 */

static void
fuzz_authid(fuzz_in_t *in)
{
    int                  i, rc, want;
    size_t               u, found;
    int64_t              d, ts, skew;
    uint8_t              flags, plain[16], authid[16];
    uint32_t             crc;
    uint64_t             raw;
    const uint8_t       *rand4;
    const vmess_user_t  *sealer;

    flags = fuzz_u8(in);
    u = flags & 3;

    if (flags & 0x08) {
        raw = (uint64_t) (FUZZ_T0 + (int16_t) fuzz_u16(in));

    } else {
        raw = fuzz_u64(in);
    }

    memset(plain, 0, sizeof(plain));

    for (i = 0; i < 8; i++) {
        plain[i] = (uint8_t) (raw >> (56 - 8 * i));
    }

    if (fuzz_take(in, 4, &rand4) == 4) {
        memcpy(plain + 8, rand4, 4);
    }

    crc = (flags & 0x04) ? vmess_crc32(plain, 12) : fuzz_u32(in);
    plain[12] = (uint8_t) (crc >> 24);
    plain[13] = (uint8_t) (crc >> 16);
    plain[14] = (uint8_t) (crc >> 8);
    plain[15] = (uint8_t) crc;

    sealer = (u < FUZZ_USERS) ? &fuzz_users[u] : &fuzz_stranger;
    fuzz_ecb_encrypt(sealer->authid_key, plain, authid);

    found = (size_t) -1;
    ts = 0;
    skew = 0;

    rc = vmess_users_find_authid(fuzz_users, FUZZ_USERS, authid, FUZZ_T0,
                                 &found, &ts, &skew);

    /*
     * What the contract says.  A key that is not the sealer's decrypts to
     * a random block, which passes the time and CRC checks with a chance
     * below 2^-60: never in practice.
     */
    d = (raw <= INT64_MAX) ? (int64_t) raw - FUZZ_T0 : 0;

    if (u == FUZZ_USERS || crc != vmess_crc32(plain, 12) || raw > INT64_MAX
        || d > ((int64_t) 1 << 32) || d < -((int64_t) 1 << 32))
    {
        want = VMESS_ERR_UNKNOWN_USER;

    } else if (d <= VMESS_AUTHID_WINDOW && d >= -VMESS_AUTHID_WINDOW) {
        want = VMESS_OK;

    } else {
        want = VMESS_ERR_CLOCK_SKEW;
    }

    fuzz_assert(rc == want, "authid trial result");

    if (rc == VMESS_ERR_UNKNOWN_USER) {
        return;
    }

    fuzz_assert(found == u, "authid trial user");

    if (rc == VMESS_OK) {
        fuzz_assert(ts == (int64_t) raw, "authid timestamp");

    } else {
        fuzz_assert(skew == d, "authid skew");
    }
}


/*
 * The plaintext is prefix || FNV1a(prefix) (flag FIX_SUM, else the
 * fuzzer's 4 bytes) || trailer, sealed with the real header keys.
 */

static void
fuzz_deep(fuzz_in_t *in)
{
    int              rc;
    size_t           plen, n, flip_at, consumed, wire_len;
    uint8_t          flags, flip, key[16], nonce[12], lf[2];
    uint8_t          plain[FUZZ_PLAIN_MAX], wire[FUZZ_WIRE_MAX];
    uint16_t         l_field;
    uint32_t         sum;
    fuzz_split_t     sp;
    const uint8_t   *p;
    vmess_request_t  req;

    flags = fuzz_u8(in);
    fuzz_split_read(&sp, in);

    memset(wire, 0, 42);

    n = fuzz_take(in, 16, &p);
    memcpy(wire, p, n);
    n = fuzz_take(in, 8, &p);
    memcpy(wire + 34, p, n);

    l_field = (flags & FUZZ_DEEP_HONEST_L) ? 0 : fuzz_u16(in);
    flip_at = 0;
    flip = 0;

    if (flags & FUZZ_DEEP_FLIP) {
        flip_at = fuzz_u16(in);
        flip = fuzz_u8(in) | 1;
    }

    /* the prefix: up to the checksum */
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

    if (flags & FUZZ_DEEP_HONEST_L) {
        l_field = (uint16_t) plen;
    }

    lf[0] = (uint8_t) (l_field >> 8);
    lf[1] = (uint8_t) l_field;

    fuzz_header_keys(wire, wire + 34, "VMess Header AEAD Key_Length",
                     "VMess Header AEAD Nonce_Length", key, nonce);
    fuzz_gcm_seal(key, nonce, wire, 16, lf, 2, wire + 16);

    fuzz_header_keys(wire, wire + 34, "VMess Header AEAD Key",
                     "VMess Header AEAD Nonce", key, nonce);
    fuzz_gcm_seal(key, nonce, wire, 16, plain, plen, wire + 42);

    wire_len = 42 + plen + 16;

    if (flip) {
        wire[flip_at % wire_len] ^= flip;
    }

    rc = fuzz_open_split(wire, wire_len, &sp, &consumed, &req);

    if (rc == VMESS_OK) {
        fuzz_assert(consumed == 42 + (size_t) l_field + 16, "consumed");
        fuzz_reseal(&req);
    }

    if (flip) {
        /* a flipped bit fails a tag, or sits in what is never read */
        fuzz_assert(rc != VMESS_ERR_CRYPTO && rc != VMESS_ERR_INVALID,
                    "deep rc after a flip");
        return;
    }

    if (l_field < VMESS_AEAD_HEADER_MIN_LEN
        || l_field > VMESS_AEAD_HEADER_MAX_LEN)
    {
        fuzz_assert(rc == VMESS_ERR_BAD_LENGTH, "L out of bounds");

    } else if (l_field > plen) {
        fuzz_assert(rc == VMESS_AGAIN, "L beyond the input");

    } else if (l_field < plen) {
        fuzz_assert(rc == VMESS_ERR_BAD_AUTH, "L short of the seal");

    } else {
        fuzz_assert(rc != VMESS_AGAIN && rc != VMESS_ERR_BAD_AUTH
                    && rc != VMESS_ERR_BAD_LENGTH && rc != VMESS_ERR_CRYPTO
                    && rc != VMESS_ERR_INVALID, "honest seal rc");
    }
}


/*
 * Input: version, iv(16), key(16), V, options, P<<4|sec, reserved,
 * command, port(2), address type, address length, address, padding.
 */

static void
fuzz_round_trip(fuzz_in_t *in)
{
    int              rc, sec, ok_addr;
    size_t           len, consumed, n;
    uint8_t          rand4[4], nonce8[8], wire[VMESS_HEADER_MAX];
    uint8_t          b35;
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

    n = fuzz_take(in, 4, &p);
    memset(rand4, 0, sizeof(rand4));
    memcpy(rand4, p, n);
    n = fuzz_take(in, 8, &p);
    memset(nonce8, 0, sizeof(nonce8));
    memcpy(nonce8, p, n);

    fuzz_split_read(&sp, in);

    rc = vmess_aead_header_seal(&fuzz_users[FUZZ_VECTOR_USER], FUZZ_T0,
                                rand4, nonce8, &req, wire, sizeof(wire),
                                &len);
    if (rc != VMESS_OK) {
        fuzz_assert(rc == VMESS_ERR_INVALID, "seal rc");
        return;
    }

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

        /* a domain that is an IP literal comes back as that address */
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


/*
 * Feeds prefixes of sizes from sp, as a server gets the header; the
 * first answer that is not VMESS_AGAIN must be the whole input's.
 */

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
        first = vmess_aead_header_open(&fuzz_users[FUZZ_VECTOR_USER], buf,
                                       have, &first_consumed, &first_req);
        free(buf);

        if (first != VMESS_AGAIN) {
            break;
        }
    }

    buf = fuzz_dup(wire, len);
    *consumed = (size_t) -1;
    memset(req, 0, sizeof(vmess_request_t));
    rc = vmess_aead_header_open(&fuzz_users[FUZZ_VECTOR_USER], buf, len,
                                consumed, req);
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


/* an accepted request formats, seals again and opens to itself */

static void
fuzz_reseal(const vmess_request_t *req)
{
    int              rc;
    size_t           len, consumed;
    uint8_t          wire[VMESS_HEADER_MAX], *buf;
    vmess_request_t  again;

    static const uint8_t  rand4[4] = { 0xa1, 0xb2, 0xc3, 0xd4 };
    static const uint8_t  nonce8[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };

    fuzz_addr_text(req);

    rc = vmess_aead_header_seal(&fuzz_users[FUZZ_VECTOR_USER], FUZZ_T0,
                                rand4, nonce8, req, wire, sizeof(wire),
                                &len);
    fuzz_assert(rc == VMESS_OK, "an opened request seals");

    buf = fuzz_dup(wire, len);
    memset(&again, 0xff, sizeof(vmess_request_t));
    rc = vmess_aead_header_open(&fuzz_users[FUZZ_VECTOR_USER], buf, len,
                                &consumed, &again);
    free(buf);

    fuzz_assert(rc == VMESS_OK && consumed == len, "resealed header opens");
    fuzz_assert(memcmp(&again, req, sizeof(vmess_request_t)) == 0,
                "resealed header gives the same request");
}


static void
fuzz_ecb_encrypt(const uint8_t key[16], const uint8_t in[16],
    uint8_t out[16])
{
    int              n, ok;
    EVP_CIPHER_CTX  *ctx;

    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) {
        fuzz_fail("EVP_CIPHER_CTX_new");
    }

    ok = EVP_EncryptInit_ex(ctx, EVP_aes_128_ecb(), NULL, key, NULL)
         && EVP_CIPHER_CTX_set_padding(ctx, 0)
         && EVP_EncryptUpdate(ctx, out, &n, in, 16) && n == 16;

    EVP_CIPHER_CTX_free(ctx);

    if (!ok) {
        fuzz_fail("ECB encrypt");
    }
}


/* VMESS-SPEC.md §3.3: KDF(cmdKey, salt, AuthID, ConnNonce) */

static void
fuzz_header_keys(const uint8_t *authid, const uint8_t *nonce8,
    const char *key_salt, const char *nonce_salt, uint8_t key[16],
    uint8_t nonce[12])
{
    uint8_t        out[32];
    vmess_bytes_t  path[3];

    path[0].data = (const uint8_t *) key_salt;
    path[0].len = strlen(key_salt);
    path[1].data = authid;
    path[1].len = 16;
    path[2].data = nonce8;
    path[2].len = 8;

    if (vmess_kdf(fuzz_users[FUZZ_VECTOR_USER].cmd_key, 16, path, 3, out)
        != VMESS_OK)
    {
        fuzz_fail("vmess_kdf");
    }

    memcpy(key, out, 16);

    path[0].data = (const uint8_t *) nonce_salt;
    path[0].len = strlen(nonce_salt);

    if (vmess_kdf(fuzz_users[FUZZ_VECTOR_USER].cmd_key, 16, path, 3, out)
        != VMESS_OK)
    {
        fuzz_fail("vmess_kdf");
    }

    memcpy(nonce, out, 12);
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
