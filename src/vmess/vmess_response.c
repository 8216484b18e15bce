/*
 * Response header (VMESS-SPEC.md §6.2-6.4): sealed by the server's
 * response body codec, opened by the client's, in AEAD or legacy form,
 * with the switch-account command (§9).
 */

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "vmess_body.h"


/* V, option, command, M, then at most 255 bytes of command data */
#define VMESS_RESP_PLAIN_MAX    (4 + 255)
/* hostLen(1) port(2) id(16) alterIds(2) level(1) validMinutes(1) */
#define VMESS_SWITCH_FIXED      23


static int vmess_response_kdf(const uint8_t secret[16], const char *salt,
    uint8_t *out, size_t n);
static int vmess_response_aead_key(vmess_body_t *b, const char *key_salt,
    const char *nonce_salt, int enc, uint8_t nonce[VMESS_NONCE_LEN]);
static int vmess_response_open_aead(vmess_body_t *b, const uint8_t *in,
    size_t len, uint8_t *plain, size_t *used);
static int vmess_response_open_legacy(vmess_body_t *b, const uint8_t *in,
    size_t len, uint8_t *plain, size_t *used);
static int vmess_response_done(vmess_body_t *b);
static int vmess_switch_account_encode(const vmess_switch_account_t *cmd,
    uint8_t *out, size_t *len);
static int vmess_switch_account_decode(const uint8_t *p, size_t len,
    vmess_switch_account_t *cmd);


static const char  vmess_resp_len_key[] = "AEAD Resp Header Len Key";
static const char  vmess_resp_len_iv[] = "AEAD Resp Header Len IV";
static const char  vmess_resp_key[] = "AEAD Resp Header Key";
static const char  vmess_resp_iv[] = "AEAD Resp Header IV";


static int
vmess_response_kdf(const uint8_t secret[16], const char *salt, uint8_t *out,
    size_t n)
{
    int            rc;
    uint8_t        full[32];
    vmess_bytes_t  path;

    path.data = (const uint8_t *) salt;
    path.len = strlen(salt);

    rc = vmess_kdf(secret, 16, &path, 1, full);
    memcpy(out, full, n);
    OPENSSL_cleanse(full, sizeof(full));

    return rc;
}


/* keys hdr_cipher with KDF16(respKey, key_salt); nonce from respIV */

static int
vmess_response_aead_key(vmess_body_t *b, const char *key_salt,
    const char *nonce_salt, int enc, uint8_t nonce[VMESS_NONCE_LEN])
{
    int      rc;
    uint8_t  key[16];

    rc = vmess_response_kdf(b->key, key_salt, key, sizeof(key));
    if (rc == VMESS_OK) {
        rc = vmess_response_kdf(b->iv, nonce_salt, nonce, VMESS_NONCE_LEN);
    }

    if (rc == VMESS_OK
        && !EVP_CipherInit_ex(b->hdr_cipher, NULL, NULL, key, NULL, enc))
    {
        rc = VMESS_ERR_CRYPTO;
    }

    OPENSSL_cleanse(key, sizeof(key));

    return rc;
}


static int
vmess_response_done(vmess_body_t *b)
{
    b->header_done = 1;

    /* the header context is not needed for the rest of the connection */
    EVP_CIPHER_CTX_free(b->hdr_cipher);
    b->hdr_cipher = NULL;

    vmess_body_forget_key(b);

    return VMESS_OK;
}


int
vmess_response_header_seal(vmess_body_t *b, uint8_t response_v,
    const vmess_switch_account_t *cmd, uint8_t *out, size_t cap, size_t *len)
{
    int              rc;
    size_t           n, m, need;
    uint8_t          plain[VMESS_RESP_PLAIN_MAX], field[VMESS_LEN_FIELD];
    uint8_t          nonce[VMESS_NONCE_LEN];
    EVP_CIPHER_CTX  *ctx;

    *len = 0;

    if (b->dir != VMESS_DIR_RESPONSE || b->header_done) {
        return VMESS_ERR_INVALID;
    }

    plain[0] = response_v;
    plain[1] = 0;
    plain[2] = 0;
    plain[3] = 0;
    n = 4;

    if (cmd != NULL) {
        rc = vmess_switch_account_encode(cmd, plain + 4, &m);
        if (rc != VMESS_OK) {
            return rc;
        }

        plain[2] = 1;
        plain[3] = (uint8_t) m;
        n += m;
    }

    need = b->legacy_header ? n : VMESS_LEN_FIELD_SEALED + n + VMESS_TAG_LEN;

    if (need > cap) {
        return VMESS_ERR_NO_SPACE;
    }

    if (b->legacy_header) {
        if (b->security == VMESS_SEC_AES_128_CFB) {
            rc = vmess_body_cfb_start(b, VMESS_CFB_ENCRYPT);
            ctx = b->cipher;

        } else {
            rc = EVP_CipherInit_ex(b->hdr_cipher, NULL, NULL, b->key, b->iv, 1)
                 ? VMESS_OK : VMESS_ERR_CRYPTO;
            ctx = b->hdr_cipher;
        }

        if (rc == VMESS_OK) {
            rc = vmess_cipher_update(ctx, out, plain, n);
        }

    } else {
        field[0] = (uint8_t) (n >> 8);
        field[1] = (uint8_t) n;

        rc = vmess_response_aead_key(b, vmess_resp_len_key, vmess_resp_len_iv,
                                     1, nonce);
        if (rc == VMESS_OK) {
            rc = vmess_aead_seal(b->hdr_cipher, nonce, field, VMESS_LEN_FIELD,
                                 out, out + VMESS_LEN_FIELD);
        }

        if (rc == VMESS_OK) {
            rc = vmess_response_aead_key(b, vmess_resp_key, vmess_resp_iv, 1,
                                         nonce);
        }

        if (rc == VMESS_OK) {
            rc = vmess_aead_seal(b->hdr_cipher, nonce, plain, n,
                                 out + VMESS_LEN_FIELD_SEALED,
                                 out + VMESS_LEN_FIELD_SEALED + n);
        }
    }

    if (rc != VMESS_OK) {
        return rc;
    }

    *len = need;

    return vmess_response_done(b);
}


int
vmess_response_header_open(vmess_body_t *b, uint8_t response_v,
    const uint8_t *in, size_t len, size_t *consumed,
    vmess_switch_account_t *cmd, int *cmd_found)
{
    int                     rc;
    size_t                  used;
    uint8_t                 plain[VMESS_RESP_PLAIN_MAX];
    vmess_switch_account_t  parsed;

    *consumed = 0;

    if (cmd_found != NULL) {
        *cmd_found = 0;
    }

    if (b->dir != VMESS_DIR_RESPONSE || b->header_done) {
        return VMESS_ERR_INVALID;
    }

    if (b->legacy_header) {
        rc = vmess_response_open_legacy(b, in, len, plain, &used);

    } else {
        rc = vmess_response_open_aead(b, in, len, plain, &used);
    }

    if (rc != VMESS_OK) {
        return rc;
    }

    if (plain[0] != response_v) {
        return VMESS_ERR_BAD_RESPONSE;
    }

    /* the option byte is ignored; a bad command is skipped (§6.5) */
    if (plain[2] == 1
        && vmess_switch_account_decode(plain + 4, plain[3], &parsed)
           == VMESS_OK)
    {
        if (cmd != NULL) {
            *cmd = parsed;
        }

        if (cmd_found != NULL) {
            *cmd_found = 1;
        }
    }

    *consumed = used;

    return vmess_response_done(b);
}


/* plain gets V opt cmd M [command]; every attempt starts from byte 0 */

static int
vmess_response_open_aead(vmess_body_t *b, const uint8_t *in, size_t len,
    uint8_t *plain, size_t *used)
{
    int      rc;
    size_t   n;
    uint8_t  field[VMESS_LEN_FIELD], nonce[VMESS_NONCE_LEN];

    if (len < VMESS_LEN_FIELD_SEALED) {
        return VMESS_AGAIN;
    }

    rc = vmess_response_aead_key(b, vmess_resp_len_key, vmess_resp_len_iv, 0,
                                 nonce);
    if (rc == VMESS_OK) {
        rc = vmess_aead_open(b->hdr_cipher, nonce, in, VMESS_LEN_FIELD_SEALED,
                             field);
    }

    if (rc != VMESS_OK) {
        return rc;
    }

    n = (size_t) ((field[0] << 8) | field[1]);

    if (n < 4 || n > VMESS_RESP_PLAIN_MAX) {
        return VMESS_ERR_BAD_RESPONSE;
    }

    if (len < VMESS_LEN_FIELD_SEALED + n + VMESS_TAG_LEN) {
        return VMESS_AGAIN;
    }

    rc = vmess_response_aead_key(b, vmess_resp_key, vmess_resp_iv, 0, nonce);
    if (rc == VMESS_OK) {
        rc = vmess_aead_open(b->hdr_cipher, nonce,
                             in + VMESS_LEN_FIELD_SEALED, n + VMESS_TAG_LEN,
                             plain);
    }

    if (rc != VMESS_OK) {
        return rc;
    }

    if (plain[2] != 0 && n < 4 + (size_t) plain[3]) {
        return VMESS_ERR_BAD_RESPONSE;
    }

    *used = VMESS_LEN_FIELD_SEALED + n + VMESS_TAG_LEN;

    return VMESS_OK;
}


static int
vmess_response_open_legacy(vmess_body_t *b, const uint8_t *in, size_t len,
    uint8_t *plain, size_t *used)
{
    int              rc;
    size_t           m;
    EVP_CIPHER_CTX  *ctx;

    if (len < 4) {
        return VMESS_AGAIN;
    }

    if (b->security == VMESS_SEC_AES_128_CFB) {
        if (b->cfb_role == VMESS_CFB_ENCRYPT) {
            return VMESS_ERR_INVALID;
        }

        ctx = b->cipher;

    } else {
        ctx = b->hdr_cipher;
    }

    /* the header is the start of the stream: restart it on every try */
    if (!EVP_CipherInit_ex(ctx, NULL, NULL, b->key, b->iv, 0)) {
        return VMESS_ERR_CRYPTO;
    }

    if (b->security == VMESS_SEC_AES_128_CFB) {
        b->cfb_role = VMESS_CFB_DECRYPT;
    }

    rc = vmess_cipher_update(ctx, plain, in, 4);
    if (rc != VMESS_OK) {
        return rc;
    }

    m = plain[2] != 0 ? plain[3] : 0;

    if (len < 4 + m) {
        return VMESS_AGAIN;
    }

    rc = vmess_cipher_update(ctx, plain + 4, in + 4, m);
    if (rc != VMESS_OK) {
        return rc;
    }

    *used = 4 + m;

    return VMESS_OK;
}


/*
 * BE32 FNV1a(body) || body, body = hostLen host BE16(port) id(16)
 * BE16(alterIds) level validMinutes; out holds up to 255 bytes.
 */

static int
vmess_switch_account_encode(const vmess_switch_account_t *cmd, uint8_t *out,
    size_t *len)
{
    size_t    n;
    uint8_t  *p;
    uint32_t  fnv;

    n = VMESS_FNV_LEN + VMESS_SWITCH_FIXED + cmd->host_len;

    if (n > 255) {
        return VMESS_ERR_INVALID;
    }

    p = out + VMESS_FNV_LEN;
    *p++ = cmd->host_len;
    memcpy(p, cmd->host, cmd->host_len);
    p += cmd->host_len;
    *p++ = (uint8_t) (cmd->port >> 8);
    *p++ = (uint8_t) cmd->port;
    memcpy(p, cmd->id, 16);
    p += 16;
    *p++ = (uint8_t) (cmd->alter_ids >> 8);
    *p++ = (uint8_t) cmd->alter_ids;
    *p++ = cmd->level;
    *p = cmd->valid_minutes;

    fnv = vmess_fnv1a(out + VMESS_FNV_LEN, n - VMESS_FNV_LEN);
    out[0] = (uint8_t) (fnv >> 24);
    out[1] = (uint8_t) (fnv >> 16);
    out[2] = (uint8_t) (fnv >> 8);
    out[3] = (uint8_t) fnv;

    *len = n;

    return VMESS_OK;
}


static int
vmess_switch_account_decode(const uint8_t *p, size_t len,
    vmess_switch_account_t *cmd)
{
    uint32_t  fnv;

    if (len < VMESS_FNV_LEN + VMESS_SWITCH_FIXED) {
        return VMESS_ERR_BAD_RESPONSE;
    }

    fnv = ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16)
          | ((uint32_t) p[2] << 8) | p[3];

    p += VMESS_FNV_LEN;
    len -= VMESS_FNV_LEN;

    if (fnv != vmess_fnv1a(p, len)
        || len < (size_t) VMESS_SWITCH_FIXED + p[0])
    {
        return VMESS_ERR_BAD_RESPONSE;
    }

    memset(cmd, 0, sizeof(vmess_switch_account_t));

    cmd->host_len = *p++;
    memcpy(cmd->host, p, cmd->host_len);
    p += cmd->host_len;
    cmd->port = (uint16_t) ((p[0] << 8) | p[1]);
    p += 2;
    memcpy(cmd->id, p, 16);
    p += 16;
    cmd->alter_ids = (uint16_t) ((p[0] << 8) | p[1]);
    p += 2;
    cmd->level = p[0];
    cmd->valid_minutes = p[1];

    return VMESS_OK;
}
