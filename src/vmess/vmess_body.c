/*
 * Body codec, one direction (VMESS-SPEC.md §7): keying and the sealing
 * side; vmess_body_open.c opens, vmess_response.c does the response header.
 *
 * A chunk is LengthField || Sealed || Padding with L = len(Sealed) + pad.
 * The length field is 2 bytes (plain, or XOR a SHAKE128 mask) or, with
 * option 0x10, an 18-byte AEAD seal of L - 16.  Security 1 runs the whole
 * framed stream of a direction through one AES-128-CFB stream.
 *
 * Hot path: the contexts are keyed once in vmess_body_init; per chunk only
 * the nonce is set, and data goes straight from "in" to "out" (or from the
 * caller's staging buffer when a chunk arrives split over calls).
 */

#include <limits.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "vmess_body.h"


static int vmess_aead_tag(EVP_CIPHER_CTX *ctx, int set, uint8_t *tag);
static int vmess_chacha_key(const uint8_t key[16], uint8_t out[32]);
static int vmess_body_aead_ctx(EVP_CIPHER_CTX **ctx, int security,
    const uint8_t key[16]);
static int vmess_body_cipher_ctx(EVP_CIPHER_CTX **ctx,
    const EVP_CIPHER *cipher);
static int vmess_body_is_aead(const vmess_body_t *b);
static size_t vmess_body_max_plain(const vmess_body_t *b);
static size_t vmess_body_head_size(const vmess_body_t *b);
static int vmess_body_seal_chunk(vmess_body_t *b, const uint8_t *in,
    size_t len, const uint8_t *pad, uint8_t *head, uint8_t *data,
    uint8_t *tail, size_t *head_len, size_t *tail_len);


static const uint8_t  vmess_zero_pad[VMESS_PAD_MAX];

static const char  vmess_auth_len_salt[] = "auth_len";


/* ChaCha20-Poly1305 key: MD5(k) || MD5(MD5(k)) */

static int
vmess_chacha_key(const uint8_t key[16], uint8_t out[32])
{
    return EVP_Digest(key, 16, out, NULL, EVP_md5(), NULL)
           && EVP_Digest(out, 16, out + 16, NULL, EVP_md5(), NULL)
           ? VMESS_OK : VMESS_ERR_CRYPTO;
}


static int
vmess_body_cipher_ctx(EVP_CIPHER_CTX **ctx, const EVP_CIPHER *cipher)
{
    *ctx = EVP_CIPHER_CTX_new();

    if (*ctx == NULL || !EVP_CipherInit_ex(*ctx, cipher, NULL, NULL, NULL, 1))
    {
        return VMESS_ERR_CRYPTO;
    }

    return VMESS_OK;
}


/* a chunk AEAD keyed once; chunks only set their nonce */

static int
vmess_body_aead_ctx(EVP_CIPHER_CTX **ctx, int security, const uint8_t key[16])
{
    int             rc;
    uint8_t         full[32];
    const uint8_t  *k;

    if (security == VMESS_SEC_CHACHA20_POLY1305) {
        rc = vmess_body_cipher_ctx(ctx, EVP_chacha20_poly1305());
        if (rc == VMESS_OK) {
            rc = vmess_chacha_key(key, full);
        }

        k = full;

    } else {
        rc = vmess_body_cipher_ctx(ctx, EVP_aes_128_gcm());
        k = key;
    }

    if (rc == VMESS_OK && !EVP_CipherInit_ex(*ctx, NULL, NULL, k, NULL, 1)) {
        rc = VMESS_ERR_CRYPTO;
    }

    OPENSSL_cleanse(full, sizeof(full));

    return rc;
}


/* BE16(count) || IV[2:12] */

void
vmess_body_nonce(uint8_t nonce[VMESS_NONCE_LEN], uint16_t count,
    const uint8_t iv[16])
{
    nonce[0] = (uint8_t) (count >> 8);
    nonce[1] = (uint8_t) count;
    memcpy(nonce + 2, iv + 2, VMESS_NONCE_LEN - 2);
}


/* out = ciphertext (len bytes, may be in itself), tag: 16 bytes; empty AAD */

int
vmess_aead_seal(EVP_CIPHER_CTX *ctx, const uint8_t *nonce, const uint8_t *in,
    size_t len, uint8_t *out, uint8_t *tag)
{
    int      n, rc;
    uint8_t  final[16];

    if (!EVP_CipherInit_ex(ctx, NULL, NULL, NULL, nonce, 1)) {
        return VMESS_ERR_CRYPTO;
    }

    rc = vmess_cipher_update(ctx, out, in, len);
    if (rc != VMESS_OK) {
        return rc;
    }

    if (!EVP_CipherFinal_ex(ctx, final, &n)) {
        return VMESS_ERR_CRYPTO;
    }

    return vmess_aead_tag(ctx, 0, tag);
}


/*
 * in = ciphertext || tag (len >= 16 bytes); out gets len - 16 bytes.  Per
 * chunk only the nonce changes: the key schedule stays in ctx.  The tag
 * is handed to the library before the data is opened (it keeps its own
 * copy), so out may overlap it.
 */

int
vmess_aead_open(EVP_CIPHER_CTX *ctx, const uint8_t *nonce, const uint8_t *in,
    size_t len, uint8_t *out)
{
    int      n, rc;
    size_t   plain;
    uint8_t  final[16];

    plain = len - VMESS_TAG_LEN;

    if (!EVP_CipherInit_ex(ctx, NULL, NULL, NULL, nonce, 0)) {
        return VMESS_ERR_CRYPTO;
    }

    rc = vmess_aead_tag(ctx, 1, (uint8_t *) in + plain);
    if (rc != VMESS_OK) {
        return rc;
    }

    rc = vmess_cipher_update(ctx, out, in, plain);
    if (rc != VMESS_OK) {
        return rc;
    }

    /* the library compares the tag in constant time */
    if (!EVP_CipherFinal_ex(ctx, final, &n)) {
        return VMESS_ERR_BAD_AUTH;
    }

    return VMESS_OK;
}


/*
 * The tag as a parameter of the provider's context, set (to open) or
 * read (after sealing): the EVP_CIPHER_CTX_ctrl() route builds the same
 * parameter for each call, plus a switch.
 */

static int
vmess_aead_tag(EVP_CIPHER_CTX *ctx, int set, uint8_t *tag)
{
    int         ok;
    OSSL_PARAM  params[2];

    params[0] = OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG,
                                                  tag, VMESS_TAG_LEN);
    params[1] = OSSL_PARAM_construct_end();

    ok = set ? EVP_CIPHER_CTX_set_params(ctx, params)
             : EVP_CIPHER_CTX_get_params(ctx, params);

    return ok ? VMESS_OK : VMESS_ERR_CRYPTO;
}


/* the CFB stream and the AEADs give out all they are given at once */

int
vmess_cipher_update(EVP_CIPHER_CTX *ctx, uint8_t *out, const uint8_t *in,
    size_t len)
{
    int  n;

    if (len == 0) {
        return VMESS_OK;
    }

    if (!EVP_CipherUpdate(ctx, out, &n, in, (int) len) || (size_t) n != len) {
        return VMESS_ERR_CRYPTO;
    }

    return VMESS_OK;
}


/*
 * The CFB stream is keyed on first use: only then is it known whether
 * this codec writes or reads.
 */

int
vmess_body_cfb_start(vmess_body_t *b, int role)
{
    if (b->cfb_role == role) {
        return VMESS_OK;
    }

    if (b->cfb_role != VMESS_CFB_UNSET) {
        return VMESS_ERR_INVALID;
    }

    if (!EVP_CipherInit_ex(b->cipher, NULL, NULL, b->key, b->iv,
                           role == VMESS_CFB_ENCRYPT))
    {
        return VMESS_ERR_CRYPTO;
    }

    b->cfb_role = (uint8_t) role;
    vmess_body_forget_key(b);

    return VMESS_OK;
}


/*
 * Bytes outside any AEAD: with security 1 through the CFB stream (keyed
 * for role on first use), otherwise as they are; out may be in.
 */

int
vmess_body_cfb_copy(vmess_body_t *b, int role, uint8_t *out,
    const uint8_t *in, size_t len)
{
    int  rc;

    if (b->security != VMESS_SEC_AES_128_CFB) {
        if (out != in && len > 0) {
            memcpy(out, in, len);
        }

        return VMESS_OK;
    }

    rc = vmess_body_cfb_start(b, role);
    if (rc != VMESS_OK) {
        return rc;
    }

    return vmess_cipher_update(b->cipher, out, in, len);
}


/* the raw key is kept only for a CFB stream not yet keyed and for the
 * response header */

void
vmess_body_forget_key(vmess_body_t *b)
{
    if ((b->security == VMESS_SEC_AES_128_CFB
         && b->cfb_role == VMESS_CFB_UNSET)
        || (b->dir == VMESS_DIR_RESPONSE && !b->header_done))
    {
        return;
    }

    OPENSSL_cleanse(b->key, sizeof(b->key));
}


static int
vmess_body_is_aead(const vmess_body_t *b)
{
    return b->security == VMESS_SEC_AES_128_GCM
           || b->security == VMESS_SEC_CHACHA20_POLY1305;
}


/* largest plaintext whose L (tag + data + worst padding) fits 16 bits */

static size_t
vmess_body_max_plain(const vmess_body_t *b)
{
    return VMESS_CHUNK_MAX - b->overhead - (b->padding ? VMESS_PAD_MAX : 0);
}


/* CFB puts the FNV sum in front of the data, AEAD its tag behind */

static size_t
vmess_body_head_size(const vmess_body_t *b)
{
    return b->len_size
           + (b->security == VMESS_SEC_AES_128_CFB ? VMESS_FNV_LEN : 0);
}


/* strict mode: the chunk about to be sealed or opened would reuse
 * counter 0 under the same key */

int
vmess_body_nonce_check(const vmess_body_t *b)
{
    if ((b->flags & VMESS_BODY_STRICT_NONCE) && vmess_body_is_aead(b)
        && b->wraps > 0 && b->count == 0)
    {
        return VMESS_ERR_NONCE_WRAP;
    }

    return VMESS_OK;
}


/* the data nonce counter; the 0x10 length counter moves on its own */

void
vmess_body_count(vmess_body_t *b)
{
    if (vmess_body_is_aead(b) && ++b->count == 0) {
        b->wraps++;
    }
}


int
vmess_body_init(vmess_body_t *b, const vmess_session_t *s, int dir,
    unsigned flags)
{
    int             rc, aead;
    uint8_t         len_key[32];
    vmess_bytes_t   path;
    const uint8_t  *key, *iv;

    memset(b, 0, sizeof(vmess_body_t));

    rc = vmess_session_check(s->security, s->command, s->options);
    if (rc != VMESS_OK) {
        return rc;
    }

    if (dir == VMESS_DIR_REQUEST) {
        key = s->req_key;
        iv = s->req_iv;

    } else if (dir == VMESS_DIR_RESPONSE) {
        key = s->resp_key;
        iv = s->resp_iv;

    } else {
        return VMESS_ERR_INVALID;
    }

    b->security = s->security;
    b->options = s->options;
    b->command = s->command;
    b->flags = (uint8_t) flags;
    b->dir = (uint8_t) dir;
    b->legacy_header = s->legacy_header ? 1 : 0;
    memcpy(b->key, key, 16);
    memcpy(b->iv, iv, 16);

    aead = vmess_body_is_aead(b);

    /* GCM/ChaCha chunk whatever 0x01 says; 0x10 is theirs alone; none over
     * a stream is the bare chunk stream that ignores 0x08 */
    b->chunked = aead || (b->options & VMESS_OPT_CHUNK_STREAM);
    b->bare = b->security == VMESS_SEC_NONE && b->command != VMESS_CMD_UDP;
    b->auth_len = aead && (b->options & VMESS_OPT_AUTH_LENGTH);
    b->masking = b->chunked && !b->auth_len
                 && (b->options & VMESS_OPT_CHUNK_MASKING);
    b->padding = b->chunked && !b->bare
                 && (b->options & VMESS_OPT_GLOBAL_PADDING);
    b->len_size = b->auth_len ? VMESS_LEN_FIELD_SEALED : VMESS_LEN_FIELD;
    b->overhead = aead ? VMESS_TAG_LEN
                  : (b->security == VMESS_SEC_AES_128_CFB ? VMESS_FNV_LEN : 0);

    if (b->masking || b->padding) {
        vmess_shake128_init(&b->shake, iv, 16);
    }

    if (aead) {
        rc = vmess_body_aead_ctx(&b->cipher, b->security, key);

    } else if (b->security == VMESS_SEC_AES_128_CFB) {
        rc = vmess_body_cipher_ctx(&b->cipher, EVP_aes_128_cfb128());

    } else {
        rc = VMESS_OK;
    }

    if (rc != VMESS_OK) {
        return rc;
    }

    if (b->auth_len) {
        /* v2fly: the REQUEST key and IV seal lengths in both directions */
        path.data = (const uint8_t *) vmess_auth_len_salt;
        path.len = sizeof(vmess_auth_len_salt) - 1;

        rc = vmess_kdf(s->req_key, 16, &path, 1, len_key);
        if (rc == VMESS_OK) {
            rc = vmess_body_aead_ctx(&b->len_cipher, b->security, len_key);
        }

        OPENSSL_cleanse(len_key, sizeof(len_key));

        if (rc != VMESS_OK) {
            return rc;
        }

        memcpy(b->len_iv, s->req_iv, 16);
    }

    if (dir == VMESS_DIR_RESPONSE) {
        rc = VMESS_OK;

        if (!b->legacy_header) {
            rc = vmess_body_cipher_ctx(&b->hdr_cipher, EVP_aes_128_gcm());

        } else if (b->security != VMESS_SEC_AES_128_CFB) {
            /* with security 1 the header shares the body's stream */
            rc = vmess_body_cipher_ctx(&b->hdr_cipher, EVP_aes_128_cfb128());
        }

        if (rc != VMESS_OK) {
            return rc;
        }
    }

    vmess_body_forget_key(b);

    return VMESS_OK;
}


void
vmess_body_free(vmess_body_t *b)
{
    EVP_CIPHER_CTX_free(b->cipher);
    EVP_CIPHER_CTX_free(b->len_cipher);
    EVP_CIPHER_CTX_free(b->hdr_cipher);

    /* keys, IVs, the SHAKE state and a decrypted length field */
    OPENSSL_cleanse(b, sizeof(vmess_body_t));
}


void
vmess_body_set_staging(vmess_body_t *b, uint8_t *buf, size_t cap)
{
    b->staging = buf;
    b->staging_cap = cap;
}


size_t
vmess_body_overhead(const vmess_body_t *b)
{
    if (!b->chunked) {
        return 0;
    }

    return b->len_size + b->overhead + (b->padding ? VMESS_PAD_MAX : 0);
}


int
vmess_body_seal(vmess_body_t *b, const uint8_t *in, size_t len,
    const uint8_t *pad, uint8_t *out, size_t cap, size_t *written)
{
    int     rc;
    size_t  head_len, tail_len, data_off;

    *written = 0;

    if (b->eof) {
        return VMESS_ERR_INVALID;
    }

    if (b->chunked) {
        if (len == 0 || len > vmess_body_max_plain(b)) {
            return VMESS_ERR_INVALID;
        }

        if (len + vmess_body_overhead(b) > cap) {
            return VMESS_ERR_NO_SPACE;
        }

        data_off = vmess_body_head_size(b);

        rc = vmess_body_seal_chunk(b, in, len, pad, out, out + data_off,
                                   out + data_off + len, &head_len,
                                   &tail_len);
        if (rc == VMESS_OK) {
            *written = head_len + len + tail_len;
        }

        return rc;
    }

    if (len > INT_MAX) {
        return VMESS_ERR_INVALID;
    }

    if (len > cap) {
        return VMESS_ERR_NO_SPACE;
    }

    rc = vmess_body_cfb_copy(b, VMESS_CFB_ENCRYPT, out, in, len);
    if (rc != VMESS_OK) {
        return rc;
    }

    *written = len;

    return VMESS_OK;
}


int
vmess_body_seal_inplace(vmess_body_t *b, uint8_t *data, size_t len,
    const uint8_t *pad, uint8_t *head, size_t *head_len, uint8_t *tail,
    size_t *tail_len)
{
    *head_len = 0;
    *tail_len = 0;

    if (b->eof || len > INT_MAX) {
        return VMESS_ERR_INVALID;
    }

    if (b->chunked) {
        if (len == 0 || len > vmess_body_max_plain(b)) {
            return VMESS_ERR_INVALID;
        }

        return vmess_body_seal_chunk(b, data, len, pad, head, data, tail,
                                     head_len, tail_len);
    }

    return vmess_body_cfb_copy(b, VMESS_CFB_ENCRYPT, data, data, len);
}


int
vmess_body_seal_end(vmess_body_t *b, const uint8_t *pad, uint8_t *out,
    size_t cap, size_t *written)
{
    int     rc;
    size_t  head_len, tail_len;

    *written = 0;

    if (b->eof) {
        return VMESS_ERR_INVALID;
    }

    if (!b->chunked) {
        b->eof = 1;
        return VMESS_OK;
    }

    if (vmess_body_overhead(b) > cap) {
        return VMESS_ERR_NO_SPACE;
    }

    /* no data: the tag or FNV sum of nothing and the padding follow */
    rc = vmess_body_seal_chunk(b, NULL, 0, pad, out, NULL,
                               out + vmess_body_head_size(b), &head_len,
                               &tail_len);
    if (rc == VMESS_OK) {
        *written = head_len + tail_len;
        b->eof = 1;
    }

    return rc;
}


/*
 * One chunk, len 0 for the end marker.  On the wire: head (length field;
 * with CFB also the FNV sum), the len sealed bytes (written to data, which
 * may be in itself), tail (tag with AEAD; padding).  With CFB all three are
 * one cipher stream, encrypted in wire order.  Draw order per chunk:
 * padding length, then mask (§7.5).
 */

static int
vmess_body_seal_chunk(vmess_body_t *b, const uint8_t *in, size_t len,
    const uint8_t *pad, uint8_t *head, uint8_t *data, uint8_t *tail,
    size_t *head_len, size_t *tail_len)
{
    int       rc;
    size_t    pad_len, l;
    uint8_t   nonce[VMESS_NONCE_LEN], field[VMESS_LEN_FIELD + VMESS_FNV_LEN];
    uint16_t  mask;
    uint32_t  fnv;

    rc = vmess_body_nonce_check(b);
    if (rc != VMESS_OK) {
        return rc;
    }

    if (b->security == VMESS_SEC_AES_128_CFB) {
        rc = vmess_body_cfb_start(b, VMESS_CFB_ENCRYPT);
        if (rc != VMESS_OK) {
            return rc;
        }
    }

    if (pad == NULL) {
        pad = vmess_zero_pad;
    }

    pad_len = b->padding ? vmess_shake128_next16(&b->shake) % 64 : 0;
    mask = b->masking ? vmess_shake128_next16(&b->shake) : 0;
    l = b->overhead + len + pad_len;

    if (b->auth_len) {
        field[0] = (uint8_t) ((l - VMESS_TAG_LEN) >> 8);
        field[1] = (uint8_t) (l - VMESS_TAG_LEN);
        vmess_body_nonce(nonce, b->len_count, b->len_iv);

        rc = vmess_aead_seal(b->len_cipher, nonce, field, VMESS_LEN_FIELD,
                             head, head + VMESS_LEN_FIELD);
        if (rc != VMESS_OK) {
            return rc;
        }

        b->len_count++;

    } else {
        field[0] = (uint8_t) ((l ^ mask) >> 8);
        field[1] = (uint8_t) (l ^ mask);
    }

    *head_len = b->len_size;

    switch (b->security) {
    case VMESS_SEC_AES_128_GCM:
    case VMESS_SEC_CHACHA20_POLY1305:
        if (!b->auth_len) {
            memcpy(head, field, VMESS_LEN_FIELD);
        }

        vmess_body_nonce(nonce, b->count, b->iv);

        rc = vmess_aead_seal(b->cipher, nonce, in, len, data, tail);
        if (rc != VMESS_OK) {
            return rc;
        }

        memcpy(tail + VMESS_TAG_LEN, pad, pad_len);
        *tail_len = VMESS_TAG_LEN + pad_len;
        break;

    case VMESS_SEC_AES_128_CFB:
        fnv = vmess_fnv1a(in, len);
        field[2] = (uint8_t) (fnv >> 24);
        field[3] = (uint8_t) (fnv >> 16);
        field[4] = (uint8_t) (fnv >> 8);
        field[5] = (uint8_t) fnv;

        rc = vmess_cipher_update(b->cipher, head, field, sizeof(field));
        if (rc == VMESS_OK) {
            rc = vmess_cipher_update(b->cipher, data, in, len);
        }

        if (rc == VMESS_OK) {
            rc = vmess_cipher_update(b->cipher, tail, pad, pad_len);
        }

        if (rc != VMESS_OK) {
            return rc;
        }

        *head_len = sizeof(field);
        *tail_len = pad_len;
        break;

    default: /* VMESS_SEC_NONE */
        memcpy(head, field, VMESS_LEN_FIELD);

        if (len > 0 && data != in) {
            memcpy(data, in, len);
        }

        memcpy(tail, pad, pad_len);
        *tail_len = pad_len;
        break;
    }

    vmess_body_count(b);

    return VMESS_OK;
}
