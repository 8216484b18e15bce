/*
 * Request header: AEAD and legacy open/seal, the instruction parser
 * (VMESS-SPEC.md §3.3, §4, §5), target address text and session keys
 * (§6.1).
 */

#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/crypto.h>

#include "vmess.h"


#define VMESS_HEADER_FIXED_PLAIN    38      /* version .. command */
/* the longest instruction up to its checksum: fixed, port, type, domain
 * length, domain, padding, checksum */
#define VMESS_HEADER_PLAIN_MAX      (38 + 2 + 1 + 1 + 255 + 15 + 4)
#define VMESS_LEGACY_AUTH_LEN       16
#define VMESS_GCM_TAG_LEN           16
#define VMESS_GCM_NONCE_LEN         12
#define VMESS_ENC_LEN_OFFSET        16
#define VMESS_CONN_NONCE_OFFSET     34
#define VMESS_HOST_TEXT_MAX         256     /* a domain and its NUL */


/* the KDF salts of one AEAD part of the header */

typedef struct {
    const char                 *key;
    const char                 *nonce;
} vmess_header_salts_t;


static int vmess_header_parse(const uint8_t *p, size_t len, size_t *used,
    vmess_request_t *req);
static int vmess_header_parse_addr(const uint8_t *p, size_t len,
    size_t *pos, vmess_request_t *req);
static int vmess_domain_to_ip(vmess_request_t *req);
static int vmess_header_build(const vmess_request_t *req, uint8_t *p,
    size_t *len);
static int vmess_header_aead(const uint8_t cmd_key[16], const uint8_t *head,
    const vmess_header_salts_t *salts, int seal, const uint8_t *in,
    size_t len, uint8_t *out);
static int vmess_header_aead_keys(const uint8_t cmd_key[16],
    const uint8_t *head, const vmess_header_salts_t *salts, uint8_t key[16],
    uint8_t nonce[VMESS_GCM_NONCE_LEN]);
static int vmess_gcm_open(const uint8_t key[16], const uint8_t *nonce,
    const uint8_t *aad, const uint8_t *in, size_t len, uint8_t *out);
static int vmess_gcm_seal(const uint8_t key[16], const uint8_t *nonce,
    const uint8_t *aad, const uint8_t *in, size_t len, uint8_t *out);
static int vmess_legacy_iv(int64_t timestamp, uint8_t iv[16]);
static int vmess_cfb128(const uint8_t key[16], const uint8_t iv[16],
    int encrypt, const uint8_t *in, size_t len, uint8_t *out);
static void vmess_put_be64(uint8_t *p, uint64_t v);


static const vmess_header_salts_t  vmess_len_salts = {
    "VMess Header AEAD Key_Length", "VMess Header AEAD Nonce_Length"
};

static const vmess_header_salts_t  vmess_payload_salts = {
    "VMess Header AEAD Key", "VMess Header AEAD Nonce"
};


/*
 * The instruction, in v2ray's order: the address error is remembered and
 * reported only after padding and checksum are in and verified.
 * VMESS_AGAIN when p ends before the checksum.
 */

static int
vmess_header_parse(const uint8_t *p, size_t len, size_t *used,
    vmess_request_t *req)
{
    int       rc, deferred;
    size_t    pos;
    uint32_t  sum;

    if (len < VMESS_HEADER_FIXED_PLAIN) {
        return VMESS_AGAIN;
    }

    memset(req, 0, sizeof(vmess_request_t));

    req->version = p[0];
    memcpy(req->body_iv, p + 1, 16);
    memcpy(req->body_key, p + 17, 16);
    req->response_v = p[33];
    req->options = p[34];
    req->padding_len = p[35] >> 4;
    req->security = p[35] & 0x0f;
    req->reserved = p[36];
    req->command = p[37];

    pos = VMESS_HEADER_FIXED_PLAIN;
    deferred = VMESS_OK;

    switch (req->command) {

    case VMESS_CMD_TCP:
    case VMESS_CMD_UDP:
        rc = vmess_header_parse_addr(p, len, &pos, req);
        if (rc == VMESS_AGAIN) {
            return rc;
        }

        deferred = rc;
        break;

    case VMESS_CMD_MUX:
        break;

    default:
        /* v2ray reads no address for an unknown command */
        deferred = VMESS_ERR_UNSUPPORTED_COMMAND;
    }

    if (len - pos < (size_t) req->padding_len + 4) {
        return VMESS_AGAIN;
    }

    memcpy(req->padding, p + pos, req->padding_len);
    pos += req->padding_len;

    sum = (uint32_t) p[pos] << 24 | (uint32_t) p[pos + 1] << 16
          | (uint32_t) p[pos + 2] << 8 | p[pos + 3];

    if (vmess_fnv1a(p, pos) != sum) {
        return VMESS_ERR_BAD_CHECKSUM;
    }

    pos += 4;

    if (deferred != VMESS_OK) {
        return deferred;
    }

    if (req->security == 0) {
        /* v2ray maps 0 to AES-128-CFB for old clients */
        req->security = VMESS_SEC_AES_128_CFB;
    }

    /* an unknown command was returned above, as deferred */
    rc = vmess_session_check(req->security, req->command, req->options);
    if (rc != VMESS_OK) {
        return rc;
    }

    *used = pos;

    return VMESS_OK;
}


/*
 * Port first, then type and address.  Returns VMESS_AGAIN, VMESS_OK or
 * VMESS_ERR_UNSUPPORTED_ADDRESS with *pos past what v2ray would have read.
 */

static int
vmess_header_parse_addr(const uint8_t *p, size_t len, size_t *pos,
    vmess_request_t *req)
{
    int  rc;

    if (len - *pos < 2) {
        return VMESS_AGAIN;
    }

    req->port = (uint16_t) (p[*pos] << 8 | p[*pos + 1]);
    *pos += 2;

    rc = vmess_addr_parse(p, len, pos, &req->addr_type, req->addr,
                          &req->addr_len);

    if (rc != VMESS_OK || req->addr_type != VMESS_ADDR_DOMAIN) {
        return rc;
    }

    if (req->addr_len == 0) {
        return VMESS_ERR_UNSUPPORTED_ADDRESS;
    }

    if (vmess_domain_to_ip(req)) {
        return VMESS_OK;
    }

    return vmess_domain_valid(req->addr, req->addr_len)
           ? VMESS_OK : VMESS_ERR_UNSUPPORTED_ADDRESS;
}


/*
 * As v2ray: a domain starting with a digit or '[' that parses as an IP
 * address (brackets stripped) becomes that address; IPv4-mapped IPv6
 * becomes IPv4.  Returns 1 when req was converted.
 */

static int
vmess_domain_to_ip(vmess_request_t *req)
{
    char            text[INET6_ADDRSTRLEN + 2];
    size_t          n;
    uint8_t         ip[16];
    const uint8_t  *s;

    s = req->addr;
    n = req->addr_len;

    if (!(s[0] == '[' || (s[0] >= '0' && s[0] <= '9'))) {
        return 0;
    }

    if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
        s++;
        n -= 2;
    }

    if (n >= sizeof(text) || memchr(s, '\0', n) != NULL) {
        return 0;
    }

    memcpy(text, s, n);
    text[n] = '\0';

    if (inet_pton(AF_INET, text, ip) == 1) {
        n = 4;

    } else if (inet_pton(AF_INET6, text, ip) == 1) {
        n = 16;

        if (memcmp(ip, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0) {
            memmove(ip, ip + 12, 4);
            n = 4;
        }

    } else {
        return 0;
    }

    memset(req->addr, 0, sizeof(req->addr));
    memcpy(req->addr, ip, n);
    req->addr_len = (uint8_t) n;
    req->addr_type = (n == 4) ? VMESS_ADDR_IPV4 : VMESS_ADDR_IPV6;

    return 1;
}


/* the instruction with its checksum into p (VMESS_HEADER_PLAIN_MAX) */

static int
vmess_header_build(const vmess_request_t *req, uint8_t *p, size_t *len)
{
    size_t    pos;
    uint32_t  sum;

    if (req->padding_len > 15 || req->security > 15) {
        return VMESS_ERR_INVALID;
    }

    p[0] = req->version;
    memcpy(p + 1, req->body_iv, 16);
    memcpy(p + 17, req->body_key, 16);
    p[33] = req->response_v;
    p[34] = req->options;
    p[35] = (uint8_t) (req->padding_len << 4 | req->security);
    p[36] = req->reserved;
    p[37] = req->command;

    pos = VMESS_HEADER_FIXED_PLAIN;

    if (req->command == VMESS_CMD_TCP || req->command == VMESS_CMD_UDP) {

        switch (req->addr_type) {

        case VMESS_ADDR_IPV4:
            if (req->addr_len != 4) {
                return VMESS_ERR_INVALID;
            }
            break;

        case VMESS_ADDR_IPV6:
            if (req->addr_len != 16) {
                return VMESS_ERR_INVALID;
            }
            break;

        case VMESS_ADDR_DOMAIN:
            if (req->addr_len == 0) {
                return VMESS_ERR_INVALID;
            }
            break;

        default:
            return VMESS_ERR_INVALID;
        }

        p[pos++] = (uint8_t) (req->port >> 8);
        p[pos++] = (uint8_t) req->port;
        p[pos++] = req->addr_type;

        if (req->addr_type == VMESS_ADDR_DOMAIN) {
            p[pos++] = req->addr_len;
        }

        memcpy(p + pos, req->addr, req->addr_len);
        pos += req->addr_len;
    }

    memcpy(p + pos, req->padding, req->padding_len);
    pos += req->padding_len;

    sum = vmess_fnv1a(p, pos);
    p[pos++] = (uint8_t) (sum >> 24);
    p[pos++] = (uint8_t) (sum >> 16);
    p[pos++] = (uint8_t) (sum >> 8);
    p[pos++] = (uint8_t) sum;

    *len = pos;

    return VMESS_OK;
}


/*
 * Seals or opens one AEAD part of the header, EncLen or the payload, with
 * the key and nonce of its salts; head is the header's first byte: the
 * AuthID (also the AAD), with the connection nonce at offset 34.  The keys
 * are wiped here, whatever the outcome.
 */

static int
vmess_header_aead(const uint8_t cmd_key[16], const uint8_t *head,
    const vmess_header_salts_t *salts, int seal, const uint8_t *in,
    size_t len, uint8_t *out)
{
    int      rc;
    uint8_t  key[16], nonce[VMESS_GCM_NONCE_LEN];

    rc = vmess_header_aead_keys(cmd_key, head, salts, key, nonce);

    if (rc == VMESS_OK) {
        rc = seal ? vmess_gcm_seal(key, nonce, head, in, len, out)
                  : vmess_gcm_open(key, nonce, head, in, len, out);
    }

    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(nonce, sizeof(nonce));

    return rc;
}


static int
vmess_header_aead_keys(const uint8_t cmd_key[16], const uint8_t *head,
    const vmess_header_salts_t *salts, uint8_t key[16],
    uint8_t nonce[VMESS_GCM_NONCE_LEN])
{
    int            rc;
    uint8_t        out[32];
    vmess_bytes_t  path[3];

    path[0].data = (const uint8_t *) salts->key;
    path[0].len = strlen(salts->key);
    path[1].data = head;
    path[1].len = 16;
    path[2].data = head + VMESS_CONN_NONCE_OFFSET;
    path[2].len = 8;

    rc = vmess_kdf(cmd_key, 16, path, 3, out);
    if (rc != VMESS_OK) {
        goto done;
    }

    memcpy(key, out, 16);

    path[0].data = (const uint8_t *) salts->nonce;
    path[0].len = strlen(salts->nonce);

    rc = vmess_kdf(cmd_key, 16, path, 3, out);
    if (rc != VMESS_OK) {
        goto done;
    }

    memcpy(nonce, out, VMESS_GCM_NONCE_LEN);

done:

    OPENSSL_cleanse(out, sizeof(out));

    return rc;
}


/* AES-128-GCM with a 16-byte AAD; in holds len bytes and then the tag */

static int
vmess_gcm_open(const uint8_t key[16], const uint8_t *nonce,
    const uint8_t *aad, const uint8_t *in, size_t len, uint8_t *out)
{
    int              n, rc;
    uint8_t          tag[VMESS_GCM_TAG_LEN];
    EVP_CIPHER_CTX  *ctx;

    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) {
        return VMESS_ERR_CRYPTO;
    }

    rc = VMESS_ERR_CRYPTO;
    memcpy(tag, in + len, VMESS_GCM_TAG_LEN);

    if (!EVP_DecryptInit_ex(ctx, EVP_aes_128_gcm(), NULL, NULL, NULL)
        || !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN,
                                VMESS_GCM_NONCE_LEN, NULL)
        || !EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce)
        || !EVP_DecryptUpdate(ctx, NULL, &n, aad, 16)
        || !EVP_DecryptUpdate(ctx, out, &n, in, (int) len)
        || !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG,
                                VMESS_GCM_TAG_LEN, tag))
    {
        goto done;
    }

    /* the tag is compared in constant time by the library */
    if (EVP_DecryptFinal_ex(ctx, out + n, &n) <= 0) {
        OPENSSL_cleanse(out, len);
        rc = VMESS_ERR_BAD_AUTH;
        goto done;
    }

    rc = VMESS_OK;

done:

    EVP_CIPHER_CTX_free(ctx);

    return rc;
}


/* out gets len bytes and then the tag */

static int
vmess_gcm_seal(const uint8_t key[16], const uint8_t *nonce,
    const uint8_t *aad, const uint8_t *in, size_t len, uint8_t *out)
{
    int              n, ok;
    EVP_CIPHER_CTX  *ctx;

    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) {
        return VMESS_ERR_CRYPTO;
    }

    ok = EVP_EncryptInit_ex(ctx, EVP_aes_128_gcm(), NULL, NULL, NULL)
         && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN,
                                VMESS_GCM_NONCE_LEN, NULL)
         && EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce)
         && EVP_EncryptUpdate(ctx, NULL, &n, aad, 16)
         && EVP_EncryptUpdate(ctx, out, &n, in, (int) len)
         && EVP_EncryptFinal_ex(ctx, out + n, &n)
         && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG,
                                VMESS_GCM_TAG_LEN, out + len);

    EVP_CIPHER_CTX_free(ctx);

    return ok ? VMESS_OK : VMESS_ERR_CRYPTO;
}


/* IV = MD5(BE64(ts) x 4) */

static int
vmess_legacy_iv(int64_t timestamp, uint8_t iv[16])
{
    int           i;
    uint8_t       ts4[32];
    unsigned int  n;

    for (i = 0; i < 4; i++) {
        vmess_put_be64(ts4 + 8 * i, (uint64_t) timestamp);
    }

    return EVP_Digest(ts4, sizeof(ts4), iv, &n, EVP_md5(), NULL)
           ? VMESS_OK : VMESS_ERR_CRYPTO;
}


static int
vmess_cfb128(const uint8_t key[16], const uint8_t iv[16], int encrypt,
    const uint8_t *in, size_t len, uint8_t *out)
{
    int              n, ok;
    EVP_CIPHER_CTX  *ctx;

    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) {
        return VMESS_ERR_CRYPTO;
    }

    ok = EVP_CipherInit_ex(ctx, EVP_aes_128_cfb128(), NULL, key, iv, encrypt)
         && EVP_CipherUpdate(ctx, out, &n, in, (int) len)
         && (size_t) n == len;

    EVP_CIPHER_CTX_free(ctx);

    return ok ? VMESS_OK : VMESS_ERR_CRYPTO;
}


static void
vmess_put_be64(uint8_t *p, uint64_t v)
{
    int  i;

    for (i = 0; i < 8; i++) {
        p[i] = (uint8_t) (v >> (56 - 8 * i));
    }
}


int
vmess_aead_header_open(const vmess_user_t *user, const uint8_t *in,
    size_t len, size_t *consumed, vmess_request_t *req)
{
    int      rc;
    size_t   plain_len, used;
    uint8_t  len_plain[2], plain[VMESS_AEAD_HEADER_MAX_LEN];

    if (len < VMESS_AEAD_HEADER_FIXED) {
        return VMESS_AGAIN;
    }

    /* the nonce follows EncLen on the wire but is needed to open it */
    rc = vmess_header_aead(user->cmd_key, in, &vmess_len_salts, 0,
                           in + VMESS_ENC_LEN_OFFSET, 2, len_plain);
    if (rc != VMESS_OK) {
        goto done;
    }

    plain_len = (size_t) len_plain[0] << 8 | len_plain[1];

    if (plain_len < VMESS_AEAD_HEADER_MIN_LEN
        || plain_len > VMESS_AEAD_HEADER_MAX_LEN)
    {
        rc = VMESS_ERR_BAD_LENGTH;
        goto done;
    }

    if (len - VMESS_AEAD_HEADER_FIXED < plain_len + VMESS_GCM_TAG_LEN) {
        rc = VMESS_AGAIN;
        goto done;
    }

    rc = vmess_header_aead(user->cmd_key, in, &vmess_payload_salts, 0,
                           in + VMESS_AEAD_HEADER_FIXED, plain_len, plain);
    if (rc != VMESS_OK) {
        goto done;
    }

    /* the plaintext is whole: running out of it is a bad header */
    rc = vmess_header_parse(plain, plain_len, &used, req);

    if (rc == VMESS_AGAIN) {
        rc = VMESS_ERR_TRUNCATED;

    } else if (rc == VMESS_OK) {
        *consumed = VMESS_AEAD_HEADER_FIXED + plain_len + VMESS_GCM_TAG_LEN;
    }

done:

    OPENSSL_cleanse(plain, sizeof(plain));

    return rc;
}


int
vmess_legacy_replay_id(const uint8_t auth[16], const vmess_request_t *req,
    uint8_t out[16])
{
    uint8_t       in[48], md[32];
    unsigned int  md_len;
    int           ok;

    memcpy(in, auth, 16);
    memcpy(in + 16, req->body_key, 16);
    memcpy(in + 32, req->body_iv, 16);

    ok = EVP_Digest(in, sizeof(in), md, &md_len, EVP_sha256(), NULL);

    OPENSSL_cleanse(in, sizeof(in));

    if (!ok) {
        return VMESS_ERR_CRYPTO;
    }

    memcpy(out, md, 16);
    OPENSSL_cleanse(md, sizeof(md));

    return VMESS_OK;
}


int
vmess_legacy_header_open(const vmess_user_t *user, int64_t timestamp,
    const uint8_t *in, size_t len, size_t *consumed, vmess_request_t *req)
{
    int      rc;
    size_t   n, used;
    uint8_t  iv[16], plain[VMESS_HEADER_PLAIN_MAX];

    if (len < VMESS_LEGACY_AUTH_LEN + VMESS_HEADER_FIXED_PLAIN) {
        return VMESS_AGAIN;
    }

    /*
     * No length prefix: decrypt what is there (a CFB stream restarts
     * cleanly from the IV) and parse again from the first byte.
     */
    n = len - VMESS_LEGACY_AUTH_LEN;

    if (n > sizeof(plain)) {
        n = sizeof(plain);
    }

    rc = vmess_legacy_iv(timestamp, iv);
    if (rc != VMESS_OK) {
        return rc;
    }

    rc = vmess_cfb128(user->cmd_key, iv, 0, in + VMESS_LEGACY_AUTH_LEN, n,
                      plain);
    if (rc != VMESS_OK) {
        goto done;
    }

    rc = vmess_header_parse(plain, n, &used, req);

    if (rc == VMESS_OK) {
        *consumed = VMESS_LEGACY_AUTH_LEN + used;
    }

done:

    OPENSSL_cleanse(plain, sizeof(plain));

    return rc;
}


int
vmess_aead_header_seal(const vmess_user_t *user, int64_t now,
    const uint8_t rand4[4], const uint8_t nonce8[8],
    const vmess_request_t *req, uint8_t *out, size_t cap, size_t *len)
{
    int      rc;
    size_t   plain_len;
    uint8_t  len_plain[2], plain[VMESS_HEADER_PLAIN_MAX];

    rc = vmess_header_build(req, plain, &plain_len);
    if (rc != VMESS_OK) {
        goto done;
    }

    if (cap < VMESS_AEAD_HEADER_FIXED + plain_len + VMESS_GCM_TAG_LEN) {
        rc = VMESS_ERR_NO_SPACE;
        goto done;
    }

    rc = vmess_authid_seal(user->authid_key, now, rand4, out);
    if (rc != VMESS_OK) {
        goto done;
    }

    memcpy(out + VMESS_CONN_NONCE_OFFSET, nonce8, 8);

    len_plain[0] = (uint8_t) (plain_len >> 8);
    len_plain[1] = (uint8_t) plain_len;

    rc = vmess_header_aead(user->cmd_key, out, &vmess_len_salts, 1,
                           len_plain, 2, out + VMESS_ENC_LEN_OFFSET);
    if (rc != VMESS_OK) {
        goto done;
    }

    rc = vmess_header_aead(user->cmd_key, out, &vmess_payload_salts, 1,
                           plain, plain_len, out + VMESS_AEAD_HEADER_FIXED);
    if (rc != VMESS_OK) {
        goto done;
    }

    *len = VMESS_AEAD_HEADER_FIXED + plain_len + VMESS_GCM_TAG_LEN;

done:

    OPENSSL_cleanse(plain, sizeof(plain));

    return rc;
}


int
vmess_legacy_header_seal(const vmess_user_t *user,
    const uint8_t auth_id[16], int64_t timestamp, const vmess_request_t *req,
    uint8_t *out, size_t cap, size_t *len)
{
    int           rc;
    size_t        plain_len;
    uint8_t       ts[8], iv[16], plain[VMESS_HEADER_PLAIN_MAX];
    unsigned int  n;

    rc = vmess_header_build(req, plain, &plain_len);
    if (rc != VMESS_OK) {
        goto done;
    }

    if (cap < VMESS_LEGACY_AUTH_LEN + plain_len) {
        rc = VMESS_ERR_NO_SPACE;
        goto done;
    }

    /* auth_id may be an alter ID; the header key is always the primary */
    vmess_put_be64(ts, (uint64_t) timestamp);
    n = VMESS_LEGACY_AUTH_LEN;

    if (HMAC(EVP_md5(), auth_id, 16, ts, sizeof(ts), out, &n) == NULL) {
        rc = VMESS_ERR_CRYPTO;
        goto done;
    }

    rc = vmess_legacy_iv(timestamp, iv);
    if (rc != VMESS_OK) {
        goto done;
    }

    rc = vmess_cfb128(user->cmd_key, iv, 1, plain, plain_len,
                      out + VMESS_LEGACY_AUTH_LEN);
    if (rc != VMESS_OK) {
        goto done;
    }

    *len = VMESS_LEGACY_AUTH_LEN + plain_len;

done:

    OPENSSL_cleanse(plain, sizeof(plain));

    return rc;
}


int
vmess_addr_format_host(uint8_t addr_type, const uint8_t *addr,
    size_t addr_len, char *out, size_t cap, size_t *len)
{
    int   n;
    char  text[VMESS_HOST_TEXT_MAX];

    switch (addr_type) {

    case VMESS_ADDR_IPV4:
        if (addr_len != 4) {
            return VMESS_ERR_UNSUPPORTED_ADDRESS;
        }

        n = snprintf(text, sizeof(text), "%u.%u.%u.%u",
                     (unsigned) addr[0], (unsigned) addr[1],
                     (unsigned) addr[2], (unsigned) addr[3]);
        break;

    case VMESS_ADDR_IPV6:
        if (addr_len != 16
            || inet_ntop(AF_INET6, addr, text, sizeof(text)) == NULL)
        {
            return VMESS_ERR_UNSUPPORTED_ADDRESS;
        }

        n = (int) strlen(text);
        break;

    case VMESS_ADDR_DOMAIN:
        if (!vmess_domain_valid(addr, addr_len)) {
            return VMESS_ERR_UNSUPPORTED_ADDRESS;
        }

        memcpy(text, addr, addr_len);
        n = (int) addr_len;
        break;

    default:
        return VMESS_ERR_UNSUPPORTED_ADDRESS;
    }

    if (n < 0 || (size_t) n >= cap) {
        return VMESS_ERR_NO_SPACE;
    }

    memcpy(out, text, (size_t) n);
    out[n] = '\0';
    *len = (size_t) n;

    return VMESS_OK;
}


int
vmess_addr_format(uint8_t addr_type, const uint8_t *addr, size_t addr_len,
    uint16_t port, char *out, size_t cap, size_t *len)
{
    int     rc, n;
    char    host[VMESS_HOST_TEXT_MAX];
    size_t  host_len;

    rc = vmess_addr_format_host(addr_type, addr, addr_len, host,
                                sizeof(host), &host_len);
    if (rc != VMESS_OK) {
        return rc;
    }

    if (addr_type == VMESS_ADDR_IPV6) {
        n = snprintf(out, cap, "[%s]:%u", host, (unsigned) port);

    } else {
        n = snprintf(out, cap, "%s:%u", host, (unsigned) port);
    }

    if (n < 0 || (size_t) n >= cap) {
        if (cap > 0) {
            out[0] = '\0';
        }

        return VMESS_ERR_NO_SPACE;
    }

    *len = (size_t) n;

    return VMESS_OK;
}


int
vmess_session_init(vmess_session_t *s, const vmess_request_t *req,
    int legacy_header)
{
    int            ok;
    uint8_t        key[EVP_MAX_MD_SIZE], iv[EVP_MAX_MD_SIZE];
    const EVP_MD  *md;

    memset(s, 0, sizeof(vmess_session_t));

    s->legacy_header = legacy_header ? 1 : 0;
    s->security = req->security ? req->security : VMESS_SEC_AES_128_CFB;
    s->options = req->options;
    s->command = req->command;
    s->response_v = req->response_v;
    memcpy(s->req_key, req->body_key, 16);
    memcpy(s->req_iv, req->body_iv, 16);

    /* the response keys are truncated hashes of the request ones */
    md = legacy_header ? EVP_md5() : EVP_sha256();

    ok = EVP_Digest(s->req_key, 16, key, NULL, md, NULL)
         && EVP_Digest(s->req_iv, 16, iv, NULL, md, NULL);

    if (ok) {
        memcpy(s->resp_key, key, 16);
        memcpy(s->resp_iv, iv, 16);
    }

    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(iv, sizeof(iv));

    if (!ok) {
        OPENSSL_cleanse(s, sizeof(vmess_session_t));
        return VMESS_ERR_CRYPTO;
    }

    return VMESS_OK;
}
