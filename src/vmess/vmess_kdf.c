/*
 * cmdKey, alter IDs, the AEAD KDF (nested HMAC-SHA256), AuthID sealing and
 * the dynamic port IDs.
 */

#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/crypto.h>

#include "vmess.h"


#define VMESS_KDF_DEPTH_MAX  4
/* a message at level n is at most 64 + the message of level n + 1 */
#define VMESS_KDF_MSG_MAX    (64 * (VMESS_KDF_DEPTH_MAX + 1) + 96)


/* one KDF's digest: SHA-256 fetched once, one context for every step */
typedef struct {
    EVP_MD_CTX  *ctx;
    EVP_MD      *sha256;
} vmess_kdf_digest_t;


static int vmess_kdf_level(vmess_kdf_digest_t *d, size_t level,
    const vmess_bytes_t *path, const uint8_t *msg, size_t len,
    uint8_t out[32]);
static int vmess_sha256(vmess_kdf_digest_t *d, const uint8_t *a,
    size_t a_len, const uint8_t *b, size_t b_len, uint8_t out[32]);
static int vmess_md5(const uint8_t *a, size_t a_len, const uint8_t *b,
    size_t b_len, uint8_t out[16]);


static const char  vmess_cmd_key_salt[] =
    "c48619fe-8f02-49e0-b9e9-edf763e17e21";
static const char  vmess_alter_salt[] = "16167dc8-16b6-4e6d-b8bb-65dd68113a81";
static const char  vmess_alter_retry_salt[] =
    "533eff8a-4113-4b10-b5ce-0f5d76b98cd2";
static const char  vmess_kdf_root[] = "VMess AEAD KDF";
static const char  vmess_authid_salt[] = "AES Auth ID Encryption";


static int
vmess_md5(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len,
    uint8_t out[16])
{
    int          ok;
    EVP_MD_CTX  *md;

    md = EVP_MD_CTX_new();
    if (md == NULL) {
        return VMESS_ERR_CRYPTO;
    }

    ok = EVP_DigestInit_ex(md, EVP_md5(), NULL)
         && EVP_DigestUpdate(md, a, a_len)
         && EVP_DigestUpdate(md, b, b_len)
         && EVP_DigestFinal_ex(md, out, NULL);

    EVP_MD_CTX_free(md);

    return ok ? VMESS_OK : VMESS_ERR_CRYPTO;
}


int
vmess_cmd_key(const uint8_t id[16], uint8_t cmd_key[16])
{
    return vmess_md5(id, 16, (const uint8_t *) vmess_cmd_key_salt,
                     sizeof(vmess_cmd_key_salt) - 1, cmd_key);
}


int
vmess_alter_id_next(const uint8_t prev[16], uint8_t next[16])
{
    int           rc;
    EVP_MD_CTX   *md, *copy;

    /* the same MD5 context keeps growing while the result equals prev */
    md = EVP_MD_CTX_new();
    copy = EVP_MD_CTX_new();

    if (md == NULL || copy == NULL
        || !EVP_DigestInit_ex(md, EVP_md5(), NULL)
        || !EVP_DigestUpdate(md, prev, 16)
        || !EVP_DigestUpdate(md, vmess_alter_salt,
                             sizeof(vmess_alter_salt) - 1))
    {
        rc = VMESS_ERR_CRYPTO;
        goto done;
    }

    for ( ;; ) {
        if (!EVP_MD_CTX_copy_ex(copy, md)
            || !EVP_DigestFinal_ex(copy, next, NULL))
        {
            rc = VMESS_ERR_CRYPTO;
            goto done;
        }

        if (memcmp(next, prev, 16) != 0) {
            rc = VMESS_OK;
            goto done;
        }

        if (!EVP_DigestUpdate(md, vmess_alter_retry_salt,
                              sizeof(vmess_alter_retry_salt) - 1))
        {
            rc = VMESS_ERR_CRYPTO;
            goto done;
        }
    }

done:

    EVP_MD_CTX_free(copy);
    EVP_MD_CTX_free(md);

    return rc;
}


/*
 * H0 = HMAC-SHA256 keyed with "VMess AEAD KDF"; Hi = HMAC over H(i-1)
 * keyed with path[i-1].  out = H_level(msg).  Every level, H0 as well, is
 * built from plain SHA-256 digests on one context with the digest fetched
 * once: the 2^level HMACs of a KDF cost no context or fetch each (a
 * quarter of the time of OpenSSL's one-shot HMAC() for each).
 */

static int
vmess_kdf_level(vmess_kdf_digest_t *d, size_t level,
    const vmess_bytes_t *path, const uint8_t *msg, size_t len,
    uint8_t out[32])
{
    int                   rc;
    size_t                i;
    uint8_t               k0[64], pad[64], inner[32];
    uint8_t               buf[VMESS_KDF_MSG_MAX];
    const vmess_bytes_t  *k;

    memset(k0, 0, sizeof(k0));

    if (level == 0) {
        memcpy(k0, vmess_kdf_root, sizeof(vmess_kdf_root) - 1);

        for (i = 0; i < 64; i++) {
            pad[i] = k0[i] ^ 0x36;
        }

        rc = vmess_sha256(d, pad, 64, msg, len, inner);

        if (rc == VMESS_OK) {
            for (i = 0; i < 64; i++) {
                pad[i] = k0[i] ^ 0x5c;
            }

            rc = vmess_sha256(d, pad, 64, inner, 32, out);
        }

        OPENSSL_cleanse(inner, sizeof(inner));

        return rc;
    }

    if (len > sizeof(buf) - 64) {
        return VMESS_ERR_INVALID;
    }

    k = &path[level - 1];

    if (k->len > 64) {
        rc = vmess_kdf_level(d, level - 1, path, k->data, k->len, k0);
        if (rc != VMESS_OK) {
            return rc;
        }

    } else {
        memcpy(k0, k->data, k->len);
    }

    for (i = 0; i < 64; i++) {
        buf[i] = k0[i] ^ 0x36;
    }

    memcpy(buf + 64, msg, len);

    rc = vmess_kdf_level(d, level - 1, path, buf, 64 + len, inner);
    if (rc != VMESS_OK) {
        return rc;
    }

    for (i = 0; i < 64; i++) {
        buf[i] = k0[i] ^ 0x5c;
    }

    memcpy(buf + 64, inner, 32);

    rc = vmess_kdf_level(d, level - 1, path, buf, 96, out);

    OPENSSL_cleanse(k0, sizeof(k0));
    OPENSSL_cleanse(buf, sizeof(buf));

    return rc;
}


static int
vmess_sha256(vmess_kdf_digest_t *d, const uint8_t *a, size_t a_len,
    const uint8_t *b, size_t b_len, uint8_t out[32])
{
    return (EVP_DigestInit_ex(d->ctx, d->sha256, NULL)
            && EVP_DigestUpdate(d->ctx, a, a_len)
            && EVP_DigestUpdate(d->ctx, b, b_len)
            && EVP_DigestFinal_ex(d->ctx, out, NULL))
           ? VMESS_OK : VMESS_ERR_CRYPTO;
}


int
vmess_kdf(const uint8_t *key, size_t key_len, const vmess_bytes_t *path,
    size_t n, uint8_t out[32])
{
    int                 rc;
    vmess_kdf_digest_t  d;

    if (n > VMESS_KDF_DEPTH_MAX) {
        return VMESS_ERR_INVALID;
    }

    d.ctx = EVP_MD_CTX_new();
    d.sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);

    rc = (d.ctx && d.sha256)
         ? vmess_kdf_level(&d, n, path, key, key_len, out)
         : VMESS_ERR_CRYPTO;

    EVP_MD_free(d.sha256);
    EVP_MD_CTX_free(d.ctx);

    return rc;
}


int
vmess_authid_key(const uint8_t cmd_key[16], uint8_t key[16])
{
    int            rc;
    uint8_t        full[32];
    vmess_bytes_t  path;

    path.data = (const uint8_t *) vmess_authid_salt;
    path.len = sizeof(vmess_authid_salt) - 1;

    rc = vmess_kdf(cmd_key, 16, &path, 1, full);
    memcpy(key, full, 16);
    OPENSSL_cleanse(full, sizeof(full));

    return rc;
}


int
vmess_authid_seal(const uint8_t authid_key[16], int64_t now,
    const uint8_t rand4[4], uint8_t authid[16])
{
    int              i, n, ok;
    uint8_t          plain[16];
    uint32_t         crc;
    uint64_t         t;
    EVP_CIPHER_CTX  *ctx;

    t = (uint64_t) now;

    for (i = 0; i < 8; i++) {
        plain[i] = (uint8_t) (t >> (56 - 8 * i));
    }

    memcpy(plain + 8, rand4, 4);
    crc = vmess_crc32(plain, 12);

    for (i = 0; i < 4; i++) {
        plain[12 + i] = (uint8_t) (crc >> (24 - 8 * i));
    }

    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) {
        return VMESS_ERR_CRYPTO;
    }

    ok = EVP_EncryptInit_ex(ctx, EVP_aes_128_ecb(), NULL, authid_key, NULL)
         && EVP_CIPHER_CTX_set_padding(ctx, 0)
         && EVP_EncryptUpdate(ctx, authid, &n, plain, 16)
         && n == 16;

    EVP_CIPHER_CTX_free(ctx);

    return ok ? VMESS_OK : VMESS_ERR_CRYPTO;
}


int
vmess_dynamic_id(const uint8_t *secret, size_t secret_len, uint64_t period,
    const uint8_t id[16], uint8_t out[16])
{
    int           i;
    uint8_t       msg[8 + 16], md[EVP_MAX_MD_SIZE];
    unsigned int  n;

    if (secret_len > INT32_MAX) {
        return VMESS_ERR_INVALID;
    }

    for (i = 0; i < 8; i++) {
        msg[i] = (uint8_t) (period >> (56 - 8 * i));
    }

    memcpy(msg + 8, id, 16);

    if (HMAC(EVP_sha256(), secret, (int) secret_len, msg, sizeof(msg), md,
             &n)
        == NULL)
    {
        return VMESS_ERR_CRYPTO;
    }

    memcpy(out, md, 16);
    OPENSSL_cleanse(md, sizeof(md));

    out[6] = (uint8_t) ((out[6] & 0x0f) | 0x40);
    out[8] = (uint8_t) ((out[8] & 0x3f) | 0x80);

    return VMESS_OK;
}
