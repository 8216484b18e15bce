/*
 * Request header: known-answer open and seal in both modes, byte-by-byte
 * feeding, every rejection path, address text and session keys; the
 * session check and address parser it shares with the body and Mux.Cool.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "vmess.h"
#include "unit.h"


#define T0              1700000000
#define WIRE_MAX        1024
#define MODE_AEAD       0
#define MODE_LEGACY     1


static int user_init_uuid(vmess_user_t *u, const char *uuid,
    uint16_t alter_ids);
static int fields_hex(size_t i, const char *name, uint8_t *out, size_t cap);
static void req_from_fields(size_t i, vmess_request_t *req);
static const char *req_diff(const vmess_request_t *a,
    const vmess_request_t *b);
static size_t plain_finish(uint8_t *p, size_t pos);
static size_t plain_fixed(uint8_t *p, uint8_t command, uint8_t padlen_sec);
static size_t wrap_aead(const vmess_user_t *u, size_t len_field,
    const uint8_t *plain, size_t n, uint8_t *out);
static size_t wrap_legacy(const vmess_user_t *u, const uint8_t *plain,
    size_t n, uint8_t *out);
static int open_mode(int mode, const vmess_user_t *u, const uint8_t *in,
    size_t len, size_t *consumed, vmess_request_t *req);
static void check_plain(const vmess_user_t *u, const char *name,
    const uint8_t *plain, size_t n, int want);
static void test_vectors(void);
static void test_feed(size_t i, int mode, const vmess_user_t *u,
    const uint8_t *wire, size_t len);
static void test_errors(void);
static void test_aead_only(void);
static void test_domain_ip(void);
static void test_seal_limits(void);
static void test_addr_format(void);
static void test_session(void);
static void test_shared(void);
static void test_legacy_replay_id(void);


static const uint8_t  rand4[4] = { 0xa1, 0xb2, 0xc3, 0xd4 };
static const uint8_t  nonce8[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
static const char     uuid_main[] = "b831381d-6324-4d53-ad4f-8cda48b30811";


static int
user_init_uuid(vmess_user_t *u, const char *uuid, uint16_t alter_ids)
{
    uint8_t  id[16];

    if (vmess_uuid_parse(uuid, strlen(uuid), id) != VMESS_OK) {
        return VMESS_ERR_BAD_UUID;
    }

    return vmess_user_init(u, id, alter_ids, NULL);
}


/* a hex field of case i; returns its length or -1 when absent */

static int
fields_hex(size_t i, const char *name, uint8_t *out, size_t cap)
{
    const char  *v;

    v = vec_str("request_headers.cases.%zu.fields.%s", i, name);
    if (v == NULL) {
        return -1;
    }

    return unit_hex_decode(v, out, cap);
}


static void
req_from_fields(size_t i, vmess_request_t *req)
{
    int      n;
    uint8_t  b[256];

    memset(req, 0, sizeof(vmess_request_t));

    fields_hex(i, "version", &req->version, 1);
    fields_hex(i, "body_iv", req->body_iv, 16);
    fields_hex(i, "body_key", req->body_key, 16);
    fields_hex(i, "response_v", &req->response_v, 1);
    fields_hex(i, "option", &req->options, 1);
    fields_hex(i, "reserved", &req->reserved, 1);
    fields_hex(i, "command", &req->command, 1);

    req->padding_len = (uint8_t) vec_int(
        "request_headers.cases.%zu.fields.padding_len", i);
    req->security = (uint8_t) vec_int(
        "request_headers.cases.%zu.fields.security", i);
    fields_hex(i, "padding", req->padding, 15);

    if (fields_hex(i, "port", b, 2) == 2) {
        req->port = (uint16_t) (b[0] << 8 | b[1]);
    }

    fields_hex(i, "addr_type", &req->addr_type, 1);
    n = fields_hex(i, "addr", b, sizeof(b));

    if (n <= 0) {
        return;
    }

    /* the vectors keep a domain's length byte in front of it */
    if (req->addr_type == VMESS_ADDR_DOMAIN) {
        req->addr_len = b[0];
        memcpy(req->addr, b + 1, (size_t) n - 1);

    } else {
        req->addr_len = (uint8_t) n;
        memcpy(req->addr, b, (size_t) n);
    }
}


static const char *
req_diff(const vmess_request_t *a, const vmess_request_t *b)
{
    if (a->version != b->version) {
        return "version";
    }

    if (memcmp(a->body_iv, b->body_iv, 16) != 0) {
        return "body_iv";
    }

    if (memcmp(a->body_key, b->body_key, 16) != 0) {
        return "body_key";
    }

    if (a->response_v != b->response_v) {
        return "response_v";
    }

    if (a->options != b->options) {
        return "options";
    }

    if (a->padding_len != b->padding_len
        || memcmp(a->padding, b->padding, a->padding_len) != 0)
    {
        return "padding";
    }

    if (a->security != b->security) {
        return "security";
    }

    if (a->reserved != b->reserved) {
        return "reserved";
    }

    if (a->command != b->command) {
        return "command";
    }

    if (a->port != b->port) {
        return "port";
    }

    if (a->addr_type != b->addr_type) {
        return "addr_type";
    }

    if (a->addr_len != b->addr_len
        || memcmp(a->addr, b->addr, a->addr_len) != 0)
    {
        return "addr";
    }

    return NULL;
}


/* appends FNV-1a of p[0..pos) and returns the new length */

static size_t
plain_finish(uint8_t *p, size_t pos)
{
    uint32_t  sum;

    sum = vmess_fnv1a(p, pos);
    p[pos] = (uint8_t) (sum >> 24);
    p[pos + 1] = (uint8_t) (sum >> 16);
    p[pos + 2] = (uint8_t) (sum >> 8);
    p[pos + 3] = (uint8_t) sum;

    return pos + 4;
}


/* the 38 fixed bytes of case 0 with another command and P/security */

static size_t
plain_fixed(uint8_t *p, uint8_t command, uint8_t padlen_sec)
{
    uint8_t  *want;
    size_t    len;

    want = vec_hex(&len, "request_headers.cases.0.header_plain");
    if (want == NULL || len < 38) {
        free(want);
        memset(p, 0, 38);
        return 38;
    }

    memcpy(p, want, 38);
    free(want);

    p[35] = padlen_sec;
    p[37] = command;

    return 38;
}


/*
 * An AEAD header built here, independently of vmess_header.c, so that
 * broken plaintexts and lengths can be sealed properly.  len_field is what
 * EncLen says; n bytes of plain are sealed.
 */

static size_t
wrap_aead(const vmess_user_t *u, size_t len_field, const uint8_t *plain,
    size_t n, uint8_t *out)
{
    int              i, k, outl;
    uint8_t          key[32], nonce[32], len_plain[2];
    const uint8_t   *in;
    size_t           in_len;
    vmess_bytes_t    path[3];
    EVP_CIPHER_CTX  *ctx;
    static const char  *salts[4] = {
        "VMess Header AEAD Key_Length", "VMess Header AEAD Nonce_Length",
        "VMess Header AEAD Key", "VMess Header AEAD Nonce"
    };

    if (vmess_authid_seal(u->authid_key, T0, rand4, out) != VMESS_OK) {
        return 0;
    }

    memcpy(out + 34, nonce8, 8);
    len_plain[0] = (uint8_t) (len_field >> 8);
    len_plain[1] = (uint8_t) len_field;

    path[1].data = out;
    path[1].len = 16;
    path[2].data = nonce8;
    path[2].len = 8;

    for (i = 0; i < 2; i++) {
        path[0].data = (const uint8_t *) salts[2 * i];
        path[0].len = strlen(salts[2 * i]);

        if (vmess_kdf(u->cmd_key, 16, path, 3, key) != VMESS_OK) {
            return 0;
        }

        path[0].data = (const uint8_t *) salts[2 * i + 1];
        path[0].len = strlen(salts[2 * i + 1]);

        if (vmess_kdf(u->cmd_key, 16, path, 3, nonce) != VMESS_OK) {
            return 0;
        }

        in = (i == 0) ? len_plain : plain;
        in_len = (i == 0) ? 2 : n;
        k = (i == 0) ? 16 : 42;

        ctx = EVP_CIPHER_CTX_new();

        if (ctx == NULL
            || !EVP_EncryptInit_ex(ctx, EVP_aes_128_gcm(), NULL, key, nonce)
            || !EVP_EncryptUpdate(ctx, NULL, &outl, out, 16)
            || !EVP_EncryptUpdate(ctx, out + k, &outl, in, (int) in_len)
            || !EVP_EncryptFinal_ex(ctx, out + k + outl, &outl)
            || !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16,
                                    out + k + in_len))
        {
            EVP_CIPHER_CTX_free(ctx);
            return 0;
        }

        EVP_CIPHER_CTX_free(ctx);
    }

    return 42 + n + 16;
}


/* a legacy header built here: HMAC-MD5 auth at T0 and AES-128-CFB */

static size_t
wrap_legacy(const vmess_user_t *u, const uint8_t *plain, size_t n,
    uint8_t *out)
{
    int              i, outl;
    uint8_t          ts[32], iv[16];
    unsigned int     md_len;
    EVP_CIPHER_CTX  *ctx;

    for (i = 0; i < 32; i++) {
        ts[i] = (uint8_t) ((uint64_t) T0 >> (56 - 8 * (i % 8)));
    }

    md_len = 16;

    if (HMAC(EVP_md5(), u->id, 16, ts, 8, out, &md_len) == NULL
        || !EVP_Digest(ts, 32, iv, &md_len, EVP_md5(), NULL))
    {
        return 0;
    }

    ctx = EVP_CIPHER_CTX_new();

    if (ctx == NULL
        || !EVP_EncryptInit_ex(ctx, EVP_aes_128_cfb128(), NULL, u->cmd_key,
                               iv)
        || !EVP_EncryptUpdate(ctx, out + 16, &outl, plain, (int) n))
    {
        EVP_CIPHER_CTX_free(ctx);
        return 0;
    }

    EVP_CIPHER_CTX_free(ctx);

    return 16 + n;
}


static int
open_mode(int mode, const vmess_user_t *u, const uint8_t *in, size_t len,
    size_t *consumed, vmess_request_t *req)
{
    if (mode == MODE_AEAD) {
        return vmess_aead_header_open(u, in, len, consumed, req);
    }

    return vmess_legacy_header_open(u, T0, in, len, consumed, req);
}


/* seals the plaintext both ways and expects rc want from both opens */

static void
check_plain(const vmess_user_t *u, const char *name, const uint8_t *plain,
    size_t n, int want)
{
    int              mode, rc;
    size_t           len, consumed;
    uint8_t          wire[WIRE_MAX];
    vmess_request_t  req;

    for (mode = MODE_AEAD; mode <= MODE_LEGACY; mode++) {
        len = (mode == MODE_AEAD) ? wrap_aead(u, n, plain, n, wire)
                                  : wrap_legacy(u, plain, n, wire);

        consumed = 0;
        rc = open_mode(mode, u, wire, len, &consumed, &req);

        ok(len != 0 && rc == want
           && (rc != VMESS_OK || consumed == len),
           "%s %s: %s (want %s)", mode == MODE_AEAD ? "aead" : "legacy",
           name, vmess_strerror(rc), vmess_strerror(want));
    }
}


static void
test_vectors(void)
{
    int              rc, mode;
    char             name[80];
    size_t           i, count, wire_len, len, consumed, id_len, plain_len;
    uint8_t          out[WIRE_MAX], extra[WIRE_MAX];
    uint8_t         *wire, *hmac_id, *plain;
    const char      *uuid, *s, *diff;
    vmess_user_t     user, other;
    vmess_request_t  want, got;

    count = (size_t) vec_int("request_headers.cases.count");
    ok(count == 9, "nine request header cases (%zu)", count);

    for (i = 0; i < count; i++) {
        s = vec_str("request_headers.cases.%zu.name", i);
        snprintf(name, sizeof(name), "%s", s ? s : "?");

        s = vec_str("request_headers.cases.%zu.mode", i);
        mode = (s != NULL && strcmp(s, "legacy") == 0)
               ? MODE_LEGACY : MODE_AEAD;

        uuid = vec_str("request_headers.cases.%zu.uuid", i);
        wire = vec_hex(&wire_len, "request_headers.cases.%zu.wire", i);

        ok(vec_int("request_headers.cases.%zu.timestamp", i) == T0,
           "%s: timestamp is T0", name);

        rc = (uuid == NULL || wire == NULL || wire_len + 16 > WIRE_MAX)
             ? VMESS_ERR_INVALID
             : user_init_uuid(&user, uuid, (uint16_t) (mode == MODE_LEGACY
                   ? vec_int("request_headers.cases.%zu.alter_id_count", i)
                   : 0));
        ok(rc == VMESS_OK, "%s: vectors and user", name);

        if (rc != VMESS_OK) {
            free(wire);
            continue;
        }

        req_from_fields(i, &want);

        /* open */
        consumed = 0;
        rc = open_mode(mode, &user, wire, wire_len, &consumed, &got);
        ok(rc == VMESS_OK, "%s: open (%s)", name, vmess_strerror(rc));
        ok(consumed == wire_len, "%s: consumed %zu of %zu", name, consumed,
           wire_len);

        diff = (rc == VMESS_OK) ? req_diff(&got, &want) : "open failed";
        ok(diff == NULL, "%s: every field as in the vectors%s%s", name,
           diff ? ", differs: " : "", diff ? diff : "");

        /* body bytes after the header stay unconsumed */
        memcpy(extra, wire, wire_len);
        memset(extra + wire_len, 0x17, 16);
        consumed = 0;
        rc = open_mode(mode, &user, extra, wire_len + 16, &consumed, &got);
        ok(rc == VMESS_OK && consumed == wire_len,
           "%s: 16 body bytes after the header not consumed", name);

        /* seal with the same randomness gives the same bytes */
        len = 0;

        if (mode == MODE_AEAD) {
            rc = vmess_aead_header_seal(&user, T0, rand4, nonce8, &want, out,
                                        sizeof(out), &len);

        } else {
            hmac_id = vec_hex(&id_len, "request_headers.cases.%zu.hmac_id",
                              i);
            rc = (hmac_id != NULL && id_len == 16)
                 ? vmess_legacy_header_seal(&user, hmac_id, T0, &want, out,
                                            sizeof(out), &len)
                 : VMESS_ERR_INVALID;
            free(hmac_id);
        }

        ok(rc == VMESS_OK && unit_mem_eq(out, len, wire, wire_len),
           "%s: seal gives the wire bytes", name);

        /* our own independent wrapper agrees on the vectors too */
        if (mode == MODE_AEAD) {
            plain = vec_hex(&plain_len,
                            "request_headers.cases.%zu.header_plain", i);
            len = plain ? wrap_aead(&user, plain_len, plain, plain_len, out)
                        : 0;
            ok(unit_mem_eq(out, len, wire, wire_len),
               "%s: test wrapper matches the vector", name);
            free(plain);

            ok(user_init_uuid(&other, "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
                              0) == VMESS_OK
               && vmess_aead_header_open(&other, wire, wire_len, &consumed,
                                         &got)
                  == VMESS_ERR_BAD_AUTH,
               "%s: another user's key fails authentication", name);
            vmess_user_free(&other);
        }

        test_feed(i, mode, &user, wire, wire_len);

        vmess_user_free(&user);
        free(wire);
    }
}


/* one byte at a time, each prefix in a buffer of exactly its size */

static void
test_feed(size_t i, int mode, const vmess_user_t *u, const uint8_t *wire,
    size_t len)
{
    int              rc, early;
    size_t           k, consumed, bad_at;
    uint8_t         *buf;
    vmess_request_t  req;

    early = 0;
    bad_at = 0;

    for (k = 0; k < len; k++) {
        buf = malloc(k ? k : 1);
        if (buf == NULL) {
            early = VMESS_ERR_INVALID;
            break;
        }

        memcpy(buf, wire, k);
        rc = open_mode(mode, u, buf, k, &consumed, &req);
        free(buf);

        if (rc != VMESS_AGAIN) {
            early = rc;
            bad_at = k;
            break;
        }
    }

    ok(early == 0, "case %zu: AGAIN for every shorter prefix", i);

    if (early != 0) {
        unit_diag("rc %d (%s) at %zu bytes", early, vmess_strerror(early),
                  bad_at);
    }

    buf = malloc(len);
    if (buf == NULL) {
        return;
    }

    memcpy(buf, wire, len);
    consumed = 0;
    rc = open_mode(mode, u, buf, len, &consumed, &req);
    free(buf);

    ok(rc == VMESS_OK && consumed == len,
       "case %zu: OK at exactly the last byte", i);
}


static void
test_errors(void)
{
    size_t        n, base_len;
    uint8_t       p[WIRE_MAX];
    uint8_t      *base;
    vmess_user_t  user;

    if (user_init_uuid(&user, uuid_main, 0) != VMESS_OK) {
        ok(0, "user for error tests");
        return;
    }

    base = vec_hex(&base_len, "request_headers.cases.0.header_plain");
    if (base == NULL || base_len < 46 || base_len > 300) {
        ok(0, "case 0 plaintext");
        free(base);
        vmess_user_free(&user);
        return;
    }

    /* the crafting itself is right: case 0 re-checksummed is accepted */
    memcpy(p, base, base_len);
    n = plain_finish(p, base_len - 4);
    check_plain(&user, "case 0 re-checksummed", p, n, VMESS_OK);

    p[n - 1] ^= 0x01;
    check_plain(&user, "checksum wrong", p, n, VMESS_ERR_BAD_CHECKSUM);

    memcpy(p, base, base_len);
    p[39] ^= 0x01;
    check_plain(&user, "a field changed under the checksum", p, n,
                VMESS_ERR_BAD_CHECKSUM);

    memcpy(p, base, base_len);
    p[35] = (uint8_t) ((p[35] & 0xf0) | 2);
    n = plain_finish(p, base_len - 4);
    check_plain(&user, "security 2 (auto)", p, n,
                VMESS_ERR_UNSUPPORTED_SECURITY);

    p[n - 1] ^= 0x01;
    check_plain(&user, "security 2 and bad checksum", p, n,
                VMESS_ERR_BAD_CHECKSUM);

    p[35] = (uint8_t) ((p[35] & 0xf0) | 7);
    n = plain_finish(p, base_len - 4);
    check_plain(&user, "security 7", p, n, VMESS_ERR_UNSUPPORTED_SECURITY);

    p[35] = (uint8_t) ((p[35] & 0xf0) | 6);
    n = plain_finish(p, base_len - 4);
    check_plain(&user, "security 6 (zero)", p, n,
                VMESS_ERR_UNSUPPORTED_SECURITY);

    p[35] = (uint8_t) ((p[35] & 0xf0) | 15);
    n = plain_finish(p, base_len - 4);
    check_plain(&user, "security 15", p, n, VMESS_ERR_UNSUPPORTED_SECURITY);

    memcpy(p, base, base_len);
    p[34] = VMESS_OPT_GLOBAL_PADDING;
    n = plain_finish(p, base_len - 4);
    check_plain(&user, "option 0x08 alone", p, n, VMESS_ERR_BAD_OPTION);

    p[34] = VMESS_OPT_GLOBAL_PADDING | VMESS_OPT_CHUNK_STREAM;
    n = plain_finish(p, base_len - 4);
    check_plain(&user, "option 0x09", p, n, VMESS_ERR_BAD_OPTION);

    p[34] = VMESS_OPT_GLOBAL_PADDING | VMESS_OPT_CHUNK_MASKING;
    n = plain_finish(p, base_len - 4);
    check_plain(&user, "option 0x0c", p, n, VMESS_OK);

    /* unknown command: no address is read */
    n = plain_fixed(p, 9, 0x03);
    n = plain_finish(p, n);
    check_plain(&user, "command 9", p, n, VMESS_ERR_UNSUPPORTED_COMMAND);

    n = plain_fixed(p, 9, 0x07);
    n = plain_finish(p, n);
    check_plain(&user, "command 9 with security 7", p, n,
                VMESS_ERR_UNSUPPORTED_COMMAND);

    n = plain_fixed(p, 0, 0x03);
    n = plain_finish(p, n);
    check_plain(&user, "command 0", p, n, VMESS_ERR_UNSUPPORTED_COMMAND);

    /* address type 4: port and type read, then padding and checksum */
    n = plain_fixed(p, VMESS_CMD_TCP, 0x23);
    memcpy(p + n, "\x01\xbb\x04\xaa\xbb", 5);
    n = plain_finish(p, n + 5);
    check_plain(&user, "address type 4", p, n,
                VMESS_ERR_UNSUPPORTED_ADDRESS);

    p[n - 1] ^= 0x01;
    check_plain(&user, "address type 4 and bad checksum", p, n,
                VMESS_ERR_BAD_CHECKSUM);

    n = plain_fixed(p, VMESS_CMD_TCP, 0x03);
    p[34] = VMESS_OPT_GLOBAL_PADDING;
    memcpy(p + n, "\x01\xbb\x04", 3);
    n = plain_finish(p, n + 3);
    check_plain(&user, "address type 4 and option 0x08", p, n,
                VMESS_ERR_UNSUPPORTED_ADDRESS);

    n = plain_fixed(p, VMESS_CMD_UDP, 0x03);
    memcpy(p + n, "\x01\xbb\x00", 3);
    n = plain_finish(p, n + 3);
    check_plain(&user, "address type 0", p, n,
                VMESS_ERR_UNSUPPORTED_ADDRESS);

    n = plain_fixed(p, VMESS_CMD_TCP, 0x03);
    memcpy(p + n, "\x01\xbb\x02\x03" "a/b", 7);
    n = plain_finish(p, n + 7);
    check_plain(&user, "domain a/b", p, n, VMESS_ERR_UNSUPPORTED_ADDRESS);

    n = plain_fixed(p, VMESS_CMD_TCP, 0x03);
    memcpy(p + n, "\x01\xbb\x02\x00", 4);
    n = plain_finish(p, n + 4);
    check_plain(&user, "empty domain", p, n, VMESS_ERR_UNSUPPORTED_ADDRESS);

    n = plain_fixed(p, VMESS_CMD_TCP, 0x03);
    memcpy(p + n, "\x01\xbb\x02\x07" "unix:/x", 11);
    n = plain_finish(p, n + 11);
    check_plain(&user, "domain unix:/x", p, n,
                VMESS_ERR_UNSUPPORTED_ADDRESS);

    n = plain_fixed(p, VMESS_CMD_TCP, 0x03);
    memcpy(p + n, "\x01\xbb\x02\x05" "a\0b.c", 9);
    n = plain_finish(p, n + 9);
    check_plain(&user, "domain with a NUL", p, n,
                VMESS_ERR_UNSUPPORTED_ADDRESS);

    n = plain_fixed(p, VMESS_CMD_TCP, 0x03);
    memcpy(p + n, "\x01\xbb\x02\x07" "a_b-c.D", 11);
    n = plain_finish(p, n + 11);
    check_plain(&user, "domain a_b-c.D", p, n, VMESS_OK);

    /* the shortest real header: mux without padding, L = 42 */
    n = plain_fixed(p, VMESS_CMD_MUX, 0x03);
    n = plain_finish(p, n);
    check_plain(&user, "mux without padding", p, n, VMESS_OK);

    n = plain_fixed(p, VMESS_CMD_TCP, 0x00);
    memcpy(p + n, "\x00\x50\x01\x7f\x00\x00\x01", 7);
    n = plain_finish(p, n + 7);
    check_plain(&user, "security nibble 0", p, n, VMESS_OK);

    free(base);
    vmess_user_free(&user);
}


static void
test_aead_only(void)
{
    int              rc;
    size_t           i, n, len, base_len, consumed, wire_len;
    uint8_t          p[WIRE_MAX], wire[WIRE_MAX];
    uint8_t         *base;
    vmess_user_t     user;
    vmess_request_t  req, want;
    static const size_t  tamper[] = { 0, 15, 16, 17, 33, 34, 41, 42, 60 };

    if (user_init_uuid(&user, uuid_main, 0) != VMESS_OK) {
        ok(0, "user for aead tests");
        return;
    }

    base = vec_hex(&base_len, "request_headers.cases.0.header_plain");
    if (base == NULL || base_len > 300) {
        ok(0, "case 0 plaintext");
        free(base);
        vmess_user_free(&user);
        return;
    }

    wire_len = wrap_aead(&user, base_len, base, base_len, wire);

    for (i = 0; i < sizeof(tamper) / sizeof(tamper[0]); i++) {
        memcpy(p, wire, wire_len);
        p[tamper[i]] ^= 0x40;
        rc = vmess_aead_header_open(&user, p, wire_len, &consumed, &req);
        ok(rc == VMESS_ERR_BAD_AUTH, "byte %zu tampered: %s", tamper[i],
           vmess_strerror(rc));
    }

    memcpy(p, wire, wire_len);
    p[wire_len - 1] ^= 0x01;
    rc = vmess_aead_header_open(&user, p, wire_len, &consumed, &req);
    ok(rc == VMESS_ERR_BAD_AUTH, "last tag byte tampered: %s",
       vmess_strerror(rc));

    /* properly sealed lengths out of bounds, found with 42 bytes only */
    memset(p, 0x33, sizeof(p));
    memcpy(p, base, base_len);

    n = wrap_aead(&user, 600, p, 600, wire);
    rc = vmess_aead_header_open(&user, wire, n, &consumed, &req);
    ok(rc == VMESS_ERR_BAD_LENGTH, "L = 600: %s", vmess_strerror(rc));
    rc = vmess_aead_header_open(&user, wire, 42, &consumed, &req);
    ok(rc == VMESS_ERR_BAD_LENGTH, "L = 600 seen in 42 bytes");

    n = wrap_aead(&user, 513, p, 513, wire);
    rc = vmess_aead_header_open(&user, wire, n, &consumed, &req);
    ok(rc == VMESS_ERR_BAD_LENGTH, "L = 513: %s", vmess_strerror(rc));

    n = wrap_aead(&user, 10, p, 10, wire);
    rc = vmess_aead_header_open(&user, wire, n, &consumed, &req);
    ok(rc == VMESS_ERR_BAD_LENGTH, "L = 10: %s", vmess_strerror(rc));

    n = wrap_aead(&user, 41, p, 41, wire);
    rc = vmess_aead_header_open(&user, wire, n, &consumed, &req);
    ok(rc == VMESS_ERR_BAD_LENGTH, "L = 41: %s", vmess_strerror(rc));

    /* bytes after the checksum inside the plaintext are ignored */
    req_from_fields(0, &want);

    n = wrap_aead(&user, 512, p, 512, wire);
    consumed = 0;
    rc = vmess_aead_header_open(&user, wire, n, &consumed, &req);
    ok(rc == VMESS_OK && consumed == 42 + 512 + 16
       && req_diff(&req, &want) == NULL,
       "L = 512 with trailing plaintext: %s, consumed %zu",
       vmess_strerror(rc), consumed);

    /* EncLen says more than the plaintext's real extent: v2ray stops at
     * the checksum, so it is still fine */
    memcpy(p, base, base_len);
    memset(p + base_len, 0, 7);
    n = wrap_aead(&user, base_len + 7, p, base_len + 7, wire);
    rc = vmess_aead_header_open(&user, wire, n, &consumed, &req);
    ok(rc == VMESS_OK && consumed == n, "seven trailing plaintext bytes");

    /* the plaintext ends before its padding and checksum */
    len = plain_fixed(p, VMESS_CMD_MUX, 0xf3);
    memset(p + len, 0, 4);
    n = wrap_aead(&user, len + 4, p, len + 4, wire);
    rc = vmess_aead_header_open(&user, wire, n, &consumed, &req);
    ok(rc == VMESS_ERR_TRUNCATED, "padding beyond L: %s",
       vmess_strerror(rc));

    /* the same plaintext in legacy mode just waits for more */
    n = wrap_legacy(&user, p, len + 4, wire);
    rc = vmess_legacy_header_open(&user, T0, wire, n, &consumed, &req);
    ok(rc == VMESS_AGAIN, "legacy: padding not yet in is AGAIN");

    len = plain_fixed(p, VMESS_CMD_TCP, 0x03);
    memcpy(p + len, "\x01\xbb\x02\x10" "example", 11);
    n = wrap_aead(&user, 49, p, 49, wire);
    rc = vmess_aead_header_open(&user, wire, n, &consumed, &req);
    ok(rc == VMESS_ERR_TRUNCATED, "domain beyond L: %s",
       vmess_strerror(rc));

    free(base);
    vmess_user_free(&user);
}


static void
test_domain_ip(void)
{
    int              mode, rc;
    size_t           i, n, len, consumed;
    uint8_t          p[WIRE_MAX], wire[WIRE_MAX], want[16];
    vmess_user_t     user;
    vmess_request_t  req;
    static const struct {
        const char  *domain;
        int          rc;
        uint8_t      type;
        size_t       len;
        const char  *hex;
    } cases[] = {
        { "10.0.0.1", VMESS_OK, VMESS_ADDR_IPV4, 4, "0a000001" },
        { "[10.0.0.2]", VMESS_OK, VMESS_ADDR_IPV4, 4, "0a000002" },
        { "2001:db8::1", VMESS_OK, VMESS_ADDR_IPV6, 16,
          "20010db8000000000000000000000001" },
        { "[2001:db8::2]", VMESS_OK, VMESS_ADDR_IPV6, 16,
          "20010db8000000000000000000000002" },
        { "[::ffff:1.2.3.4]", VMESS_OK, VMESS_ADDR_IPV4, 4, "01020304" },
        { "1.2.3.4.example", VMESS_OK, VMESS_ADDR_DOMAIN, 15,
          "312e322e332e342e6578616d706c65" },
        { "::1", VMESS_ERR_UNSUPPORTED_ADDRESS, 0, 0, "" },
        { "[::1", VMESS_ERR_UNSUPPORTED_ADDRESS, 0, 0, "" },
        { "1.2.3.4:80", VMESS_ERR_UNSUPPORTED_ADDRESS, 0, 0, "" },
    };

    if (user_init_uuid(&user, uuid_main, 0) != VMESS_OK) {
        ok(0, "user for domain tests");
        return;
    }

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        len = plain_fixed(p, VMESS_CMD_TCP, 0x03);
        n = strlen(cases[i].domain);
        p[len] = 0x01;
        p[len + 1] = 0xbb;
        p[len + 2] = VMESS_ADDR_DOMAIN;
        p[len + 3] = (uint8_t) n;
        memcpy(p + len + 4, cases[i].domain, n);
        len = plain_finish(p, len + 4 + n);

        unit_hex_decode(cases[i].hex, want, sizeof(want));

        for (mode = MODE_AEAD; mode <= MODE_LEGACY; mode++) {
            n = (mode == MODE_AEAD) ? wrap_aead(&user, len, p, len, wire)
                                    : wrap_legacy(&user, p, len, wire);

            rc = open_mode(mode, &user, wire, n, &consumed, &req);

            ok(rc == cases[i].rc
               && (rc != VMESS_OK
                   || (req.addr_type == cases[i].type
                       && req.port == 443
                       && unit_mem_eq(req.addr, req.addr_len, want,
                                      cases[i].len))),
               "%s domain \"%s\": %s", mode == MODE_AEAD ? "aead" : "legacy",
               cases[i].domain, vmess_strerror(rc));
        }
    }

    vmess_user_free(&user);
}


static void
test_seal_limits(void)
{
    int              rc;
    size_t           len, need;
    uint8_t          out[WIRE_MAX];
    vmess_user_t     user;
    vmess_request_t  req;

    if (user_init_uuid(&user, uuid_main, 0) != VMESS_OK) {
        ok(0, "user for seal tests");
        return;
    }

    req_from_fields(0, &req);
    need = 42 + (38 + 2 + 1 + 1 + 11 + 5 + 4) + 16;

    rc = vmess_aead_header_seal(&user, T0, rand4, nonce8, &req, out,
                                need - 1, &len);
    ok(rc == VMESS_ERR_NO_SPACE, "aead seal: one byte short");

    rc = vmess_aead_header_seal(&user, T0, rand4, nonce8, &req, out, need,
                                &len);
    ok(rc == VMESS_OK && len == need, "aead seal: exact space");

    rc = vmess_legacy_header_seal(&user, user.id, T0, &req, out,
                                  need - 42 - 16 + 16 - 1, &len);
    ok(rc == VMESS_ERR_NO_SPACE, "legacy seal: one byte short");

    req.padding_len = 16;
    rc = vmess_aead_header_seal(&user, T0, rand4, nonce8, &req, out,
                                sizeof(out), &len);
    ok(rc == VMESS_ERR_INVALID, "seal: padding 16 refused");

    req_from_fields(1, &req);
    req.addr_len = 5;
    rc = vmess_legacy_header_seal(&user, user.id, T0, &req, out,
                                  sizeof(out), &len);
    ok(rc == VMESS_ERR_INVALID, "seal: IPv4 of 5 bytes refused");

    req.addr_type = 4;
    rc = vmess_aead_header_seal(&user, T0, rand4, nonce8, &req, out,
                                sizeof(out), &len);
    ok(rc == VMESS_ERR_INVALID, "seal: address type 4 refused");

    req_from_fields(1, &req);
    req.security = 16;
    rc = vmess_aead_header_seal(&user, T0, rand4, nonce8, &req, out,
                                sizeof(out), &len);
    ok(rc == VMESS_ERR_INVALID, "seal: security 16 refused");

    vmess_user_free(&user);
}


static void
test_addr_format(void)
{
    int             rc;
    char            out[300];
    size_t          len, i;
    uint8_t         long_name[255];
    static const uint8_t  ip4[4] = { 1, 2, 3, 4 };
    static const uint8_t  ip6[16] = {
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1
    };
    static const char    *bad[] = {
        "unix:/x", "unix:/var/run/a.sock", "[::1]", "a b", "a/b", "a:80",
        "example.com\n", "\xc3\xa9t\xc3\xa9", ""
    };

    rc = vmess_addr_format(VMESS_ADDR_IPV4, ip4, 4, 80, out, sizeof(out),
                           &len);
    ok(rc == VMESS_OK && strcmp(out, "1.2.3.4:80") == 0 && len == 10,
       "ipv4: \"%s\"", rc == VMESS_OK ? out : "");

    rc = vmess_addr_format(VMESS_ADDR_IPV6, ip6, 16, 443, out, sizeof(out),
                           &len);
    ok(rc == VMESS_OK && strcmp(out, "[2001:db8::1]:443") == 0 && len == 17,
       "ipv6: \"%s\"", rc == VMESS_OK ? out : "");

    rc = vmess_addr_format(VMESS_ADDR_DOMAIN, (const uint8_t *) "example.com",
                           11, 80, out, sizeof(out), &len);
    ok(rc == VMESS_OK && strcmp(out, "example.com:80") == 0 && len == 14,
       "domain: \"%s\"", rc == VMESS_OK ? out : "");

    rc = vmess_addr_format(VMESS_ADDR_IPV4, ip4, 4, 65535, out, sizeof(out),
                           &len);
    ok(rc == VMESS_OK && strcmp(out, "1.2.3.4:65535") == 0,
       "port 65535");

    rc = vmess_addr_format_host(VMESS_ADDR_IPV6, ip6, 16, out, sizeof(out),
                                &len);
    ok(rc == VMESS_OK && strcmp(out, "2001:db8::1") == 0 && len == 11,
       "ipv6 host without brackets");

    rc = vmess_addr_format_host(VMESS_ADDR_IPV4, ip4, 4, out, sizeof(out),
                                &len);
    ok(rc == VMESS_OK && strcmp(out, "1.2.3.4") == 0 && len == 7,
       "ipv4 host");

    rc = vmess_addr_format_host(VMESS_ADDR_DOMAIN,
                                (const uint8_t *) "Ex-am_ple.com", 13, out,
                                sizeof(out), &len);
    ok(rc == VMESS_OK && strcmp(out, "Ex-am_ple.com") == 0 && len == 13,
       "domain host");

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rc = vmess_addr_format(VMESS_ADDR_DOMAIN, (const uint8_t *) bad[i],
                               strlen(bad[i]), 80, out, sizeof(out), &len);
        ok(rc == VMESS_ERR_UNSUPPORTED_ADDRESS, "domain %zu refused", i);

        rc = vmess_addr_format_host(VMESS_ADDR_DOMAIN,
                                    (const uint8_t *) bad[i], strlen(bad[i]),
                                    out, sizeof(out), &len);
        ok(rc == VMESS_ERR_UNSUPPORTED_ADDRESS, "domain host %zu refused",
           i);
    }

    rc = vmess_addr_format(VMESS_ADDR_DOMAIN, (const uint8_t *) "a\0b", 3, 80,
                           out, sizeof(out), &len);
    ok(rc == VMESS_ERR_UNSUPPORTED_ADDRESS, "domain with NUL refused");

    rc = vmess_addr_format(VMESS_ADDR_IPV4, ip4, 3, 80, out, sizeof(out),
                           &len);
    ok(rc == VMESS_ERR_UNSUPPORTED_ADDRESS, "ipv4 of 3 bytes refused");

    rc = vmess_addr_format(VMESS_ADDR_IPV6, ip6, 4, 80, out, sizeof(out),
                           &len);
    ok(rc == VMESS_ERR_UNSUPPORTED_ADDRESS, "ipv6 of 4 bytes refused");

    rc = vmess_addr_format(4, ip6, 16, 80, out, sizeof(out), &len);
    ok(rc == VMESS_ERR_UNSUPPORTED_ADDRESS, "address type 4 refused");

    rc = vmess_addr_format(VMESS_ADDR_IPV4, ip4, 4, 80, out, 10, &len);
    ok(rc == VMESS_ERR_NO_SPACE, "no room for the NUL");

    rc = vmess_addr_format(VMESS_ADDR_IPV4, ip4, 4, 80, out, 11, &len);
    ok(rc == VMESS_OK && len == 10, "exact room");

    rc = vmess_addr_format_host(VMESS_ADDR_IPV6, ip6, 16, out, 11, &len);
    ok(rc == VMESS_ERR_NO_SPACE, "host: no room for the NUL");

    memset(long_name, 'a', sizeof(long_name));
    rc = vmess_addr_format(VMESS_ADDR_DOMAIN, long_name, 255, 65535, out,
                           sizeof(out), &len);
    ok(rc == VMESS_OK && len == 261, "255-byte domain");

    rc = vmess_addr_format(VMESS_ADDR_DOMAIN, long_name, 256, 1, out,
                           sizeof(out), &len);
    ok(rc == VMESS_ERR_UNSUPPORTED_ADDRESS, "256-byte domain refused");
}


static void
test_session(void)
{
    int               rc, legacy;
    size_t            i, count, len;
    uint8_t          *key, *iv, *want_key, *want_iv;
    const char       *mode;
    vmess_request_t   req;
    vmess_session_t   s;

    count = (size_t) vec_int("response_headers.cases.count");
    ok(count == 4, "four response header cases (%zu)", count);

    for (i = 0; i < count; i++) {
        mode = vec_str("response_headers.cases.%zu.header_mode", i);
        legacy = (mode != NULL && strcmp(mode, "legacy") == 0);

        key = vec_hex(&len, "response_headers.cases.%zu.request_body_key", i);
        iv = vec_hex(&len, "response_headers.cases.%zu.request_body_iv", i);
        want_key = vec_hex(&len,
                           "response_headers.cases.%zu.response_body_key", i);
        want_iv = vec_hex(&len,
                          "response_headers.cases.%zu.response_body_iv", i);

        if (key == NULL || iv == NULL || want_key == NULL
            || want_iv == NULL)
        {
            ok(0, "response case %zu vectors", i);

        } else {
            req_from_fields(0, &req);
            memcpy(req.body_key, key, 16);
            memcpy(req.body_iv, iv, 16);

            rc = vmess_session_init(&s, &req, legacy);

            ok(rc == VMESS_OK && s.legacy_header == legacy
               && memcmp(s.req_key, key, 16) == 0
               && memcmp(s.req_iv, iv, 16) == 0,
               "response case %zu (%s): session made", i, mode);
            ok(unit_mem_eq(s.resp_key, 16, want_key, 16),
               "response case %zu: response key", i);
            ok(unit_mem_eq(s.resp_iv, 16, want_iv, 16),
               "response case %zu: response iv", i);
        }

        free(key);
        free(iv);
        free(want_key);
        free(want_iv);
    }

    req_from_fields(0, &req);
    req.security = 0;
    req.options = 0x1d;
    req.command = VMESS_CMD_MUX;
    req.response_v = 0xa7;

    rc = vmess_session_init(&s, &req, 0);
    ok(rc == VMESS_OK && s.security == VMESS_SEC_AES_128_CFB
       && s.options == 0x1d && s.command == VMESS_CMD_MUX
       && s.response_v == 0xa7 && s.legacy_header == 0,
       "session copies options, command, V; security 0 becomes 1");

    req.security = VMESS_SEC_CHACHA20_POLY1305;
    rc = vmess_session_init(&s, &req, 7);
    ok(rc == VMESS_OK && s.security == VMESS_SEC_CHACHA20_POLY1305
       && s.legacy_header == 1, "session keeps security 4, legacy flag 1");
}


static void
test_shared(void)
{
    int      rc;
    size_t   pos;
    uint8_t  type, addr[255], addr_len;

    static const uint8_t  ipv6[] = {
        0xee, 3, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 1, 0xff
    };
    static const uint8_t  domain[] = { 2, 3, 'a', '.', 'b' };
    static const uint8_t  unknown[] = { 9, 9, 9 };

    ok(vmess_session_check(5, 3, 0x0d) == VMESS_OK,
       "session check: none, mux, 0x08 with 0x04");
    ok(vmess_session_check(2, 9, 0x08) == VMESS_ERR_UNSUPPORTED_SECURITY,
       "session check: security before command and option");
    ok(vmess_session_check(3, 9, 0x08) == VMESS_ERR_UNSUPPORTED_COMMAND,
       "session check: command before option");
    ok(vmess_session_check(4, 1, 0x08) == VMESS_ERR_BAD_OPTION,
       "session check: 0x08 without 0x04");

    pos = 1;
    rc = vmess_addr_parse(ipv6, sizeof(ipv6), &pos, &type, addr, &addr_len);
    ok(rc == VMESS_OK && pos == 18 && type == VMESS_ADDR_IPV6
       && addr_len == 16 && memcmp(addr, ipv6 + 2, 16) == 0,
       "address parse: IPv6 from *pos, *pos past it, the rest left");

    pos = 0;
    rc = vmess_addr_parse(domain, sizeof(domain), &pos, &type, addr,
                          &addr_len);
    ok(rc == VMESS_OK && pos == 5 && type == VMESS_ADDR_DOMAIN
       && addr_len == 3 && memcmp(addr, "a.b", 3) == 0,
       "address parse: domain after its length byte");

    pos = 0;
    rc = vmess_addr_parse(domain, sizeof(domain) - 1, &pos, &type, addr,
                          &addr_len);
    ok(rc == VMESS_AGAIN && pos == 0, "address parse: short domain, AGAIN");

    pos = 0;
    rc = vmess_addr_parse(domain, 0, &pos, &type, addr, &addr_len);
    ok(rc == VMESS_AGAIN && pos == 0, "address parse: no type byte, AGAIN");

    pos = 0;
    rc = vmess_addr_parse(unknown, sizeof(unknown), &pos, &type, addr,
                          &addr_len);
    ok(rc == VMESS_ERR_UNSUPPORTED_ADDRESS && pos == 1 && type == 9,
       "address parse: unknown type, *pos past the type byte");
}


static void
test_legacy_replay_id(void)
{
    size_t           i;
    uint8_t          auth[16], id[16], other[16], want[16];
    vmess_request_t  req;

    /* sha256(00..0f || 10..1f || 20..2f), first 16 bytes */
    unit_hex_decode("4dbdc2b2b62cb00749785bc84202236d", want, sizeof(want));

    memset(&req, 0, sizeof(req));

    for (i = 0; i < 16; i++) {
        auth[i] = (uint8_t) i;
        req.body_key[i] = (uint8_t) (16 + i);
        req.body_iv[i] = (uint8_t) (32 + i);
    }

    ok(vmess_legacy_replay_id(auth, &req, id) == VMESS_OK
       && unit_mem_eq(id, 16, want, 16),
       "legacy replay id: sha256(auth, key, iv) known answer");

    auth[15] ^= 1;
    vmess_legacy_replay_id(auth, &req, other);
    ok(memcmp(id, other, 16) != 0, "legacy replay id: auth counts");
    auth[15] ^= 1;

    req.body_key[0] ^= 1;
    vmess_legacy_replay_id(auth, &req, other);
    ok(memcmp(id, other, 16) != 0, "legacy replay id: body key counts");
    req.body_key[0] ^= 1;

    req.body_iv[7] ^= 1;
    vmess_legacy_replay_id(auth, &req, other);
    ok(memcmp(id, other, 16) != 0, "legacy replay id: body IV counts");
}


int
main(void)
{
    vec_load();

    test_vectors();
    test_errors();
    test_aead_only();
    test_domain_ip();
    test_seal_limits();
    test_addr_format();
    test_session();
    test_shared();
    test_legacy_replay_id();

    return unit_done();
}
