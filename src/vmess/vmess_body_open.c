/*
 * Body codec, one direction, the opening side (VMESS-SPEC.md §7): the
 * length field, then Sealed || Padding, opened in place, into the
 * caller's buffer, or from the caller's staging buffer when a chunk
 * arrives split over calls.
 */

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "vmess_body.h"


static int vmess_body_read(vmess_body_t *b, uint8_t *in, size_t len,
    int stage, size_t *consumed, uint8_t *out, size_t cap, uint8_t **plain,
    size_t *produced);
static int vmess_body_take_length(vmess_body_t *b, const uint8_t *in,
    size_t len, size_t *taken);
static int vmess_body_stage(vmess_body_t *b, const uint8_t *in,
    size_t avail, int stage, size_t *taken);
static int vmess_body_read_length(vmess_body_t *b);
static int vmess_body_open_chunk(vmess_body_t *b, uint8_t *src,
    uint8_t *out, uint8_t **plain, size_t *produced);
static int vmess_body_open_raw(vmess_body_t *b, uint8_t *in,
    size_t len, size_t *consumed, uint8_t *out, size_t cap, uint8_t **plain,
    size_t *produced);


int
vmess_body_open(vmess_body_t *b, const uint8_t *in, size_t len,
    size_t *consumed, uint8_t *out, size_t cap, size_t *produced)
{
    uint8_t  *plain;

    /* with an out buffer, in is only read */
    return vmess_body_read(b, (uint8_t *) in, len, 1, consumed, out, cap,
                           &plain, produced);
}


int
vmess_body_open_inplace(vmess_body_t *b, uint8_t *in, size_t len, int stage,
    size_t *consumed, uint8_t **plain, size_t *produced)
{
    return vmess_body_read(b, in, len, stage, consumed, NULL, 0, plain,
                           produced);
}


size_t
vmess_body_pending(const vmess_body_t *b)
{
    if (!b->chunked || b->state != VMESS_BODY_READ_DATA) {
        return 0;
    }

    return b->chunk_len - b->staged;
}


/* out == NULL: the plaintext is left in place (in or staging) */

static int
vmess_body_read(vmess_body_t *b, uint8_t *in, size_t len, int stage,
    size_t *consumed, uint8_t *out, size_t cap, uint8_t **plain,
    size_t *produced)
{
    int       rc;
    size_t    pos, take, need, avail, plain_len;
    uint8_t  *src;

    *consumed = 0;
    *produced = 0;
    *plain = NULL;

    if (b->state == VMESS_BODY_FAILED) {
        return VMESS_ERR_INVALID;
    }

    if (b->eof) {
        return len > 0 ? VMESS_ERR_BAD_LENGTH : VMESS_OK;
    }

    if (!b->chunked) {
        return vmess_body_open_raw(b, in, len, consumed, out, cap, plain,
                                   produced);
    }

    pos = 0;

    if (b->state == VMESS_BODY_READ_LEN) {
        rc = vmess_body_take_length(b, in, len, &pos);

        if (rc == VMESS_AGAIN) {
            *consumed = pos;
            return VMESS_AGAIN;
        }

        if (rc != VMESS_OK) {
            goto failed;
        }
    }

    need = b->chunk_len - b->staged;
    avail = len - pos;

    /*
     * In place, security none over a stream (not UDP, where a chunk is a
     * datagram) has no tag to wait for and no padding: the data of a
     * chunk that has not all come is passed on where it lies, without
     * staging.  Some of it is still to come, so the chunk still ends (and
     * is counted) below, and only a chunk without data is the end marker.
     */
    if (out == NULL && b->bare && avail > 0 && avail < need) {
        b->chunk_len -= avail;
        *plain = in + pos;
        *produced = avail;
        *consumed = len;

        return VMESS_OK;
    }

    if (avail < need) {
        rc = vmess_body_stage(b, in + pos, avail, stage, &take);
        *consumed = pos + take;

        return rc;
    }

    plain_len = b->chunk_len - b->pad_len - b->overhead;

    if (out != NULL && plain_len > cap) {
        *consumed = pos;
        return VMESS_ERR_NO_SPACE;
    }

    if (b->staged == 0) {
        src = in + pos;

    } else {
        memcpy(b->staging + b->staged, in + pos, need);
        src = b->staging;
    }

    pos += need;
    b->staged = 0;
    b->state = VMESS_BODY_READ_LEN;

    rc = vmess_body_open_chunk(b, src, out, plain, produced);
    if (rc != VMESS_OK) {
        goto failed;
    }

    *consumed = pos;

    return VMESS_OK;

failed:

    /* a stream that failed is never resumed */
    b->state = VMESS_BODY_FAILED;
    *consumed = 0;
    *produced = 0;
    *plain = NULL;

    return rc;
}


/*
 * The length field, collected from the front of "in" (taken bytes) and
 * decoded once whole: VMESS_OK, the chunk's data comes next; VMESS_AGAIN,
 * all of "in" went into it.
 */

static int
vmess_body_take_length(vmess_body_t *b, const uint8_t *in, size_t len,
    size_t *taken)
{
    int     rc;
    size_t  take;

    *taken = 0;

    if (len == 0) {
        return VMESS_AGAIN;
    }

    take = b->len_size - b->lenbuf_n;
    if (take > len) {
        take = len;
    }

    rc = vmess_body_cfb_copy(b, VMESS_CFB_DECRYPT, b->lenbuf + b->lenbuf_n,
                             in, take);
    if (rc != VMESS_OK) {
        return rc;
    }

    b->lenbuf_n += take;
    *taken = take;

    if (b->lenbuf_n < b->len_size) {
        return VMESS_AGAIN;
    }

    b->lenbuf_n = 0;

    rc = vmess_body_read_length(b);
    if (rc != VMESS_OK) {
        return rc;
    }

    b->state = VMESS_BODY_READ_DATA;

    return VMESS_OK;
}


/*
 * The part of a chunk that has come so far ("avail" bytes, fewer than it
 * needs) goes to staging when the caller asked for it or staging has
 * begun; taken says how much of it went there.
 */

static int
vmess_body_stage(vmess_body_t *b, const uint8_t *in, size_t avail,
    int stage, size_t *taken)
{
    *taken = 0;

    if (avail == 0 || (!stage && b->staged == 0)) {
        return VMESS_AGAIN;
    }

    /* staging is asked for only now, when a chunk really straddles */
    if (b->staging == NULL) {
        return VMESS_NEED_STAGING;
    }

    if (b->staging_cap < b->chunk_len) {
        return VMESS_ERR_INVALID;
    }

    memcpy(b->staging + b->staged, in, avail);
    b->staged += avail;
    *taken = avail;

    return VMESS_AGAIN;
}


static int
vmess_body_read_length(vmess_body_t *b)
{
    int       rc;
    size_t    l, pad_len;
    uint8_t   nonce[VMESS_NONCE_LEN], field[VMESS_LEN_FIELD];
    uint16_t  mask;

    rc = vmess_body_nonce_check(b);
    if (rc != VMESS_OK) {
        return rc;
    }

    pad_len = b->padding ? vmess_shake128_next16(&b->shake) % 64 : 0;

    if (b->auth_len) {
        vmess_body_nonce(nonce, b->len_count, b->len_iv);

        rc = vmess_aead_open(b->len_cipher, nonce, b->lenbuf,
                             VMESS_LEN_FIELD_SEALED, field);
        if (rc != VMESS_OK) {
            return rc;
        }

        b->len_count++;
        l = (size_t) ((field[0] << 8) | field[1]) + VMESS_TAG_LEN;

        if (l > VMESS_CHUNK_MAX) {
            return VMESS_ERR_BAD_LENGTH;
        }

    } else {
        mask = b->masking ? vmess_shake128_next16(&b->shake) : 0;
        l = (size_t) (((b->lenbuf[0] << 8) | b->lenbuf[1]) ^ mask);
    }

    if (l < (size_t) b->overhead + pad_len) {
        return VMESS_ERR_BAD_LENGTH;
    }

    b->chunk_len = l;
    b->pad_len = pad_len;

    return VMESS_OK;
}


/*
 * src holds the chunk's L bytes: Sealed || Padding.  out == NULL opens it
 * in place: the plaintext is left where its ciphertext was.
 */

static int
vmess_body_open_chunk(vmess_body_t *b, uint8_t *src, uint8_t *out,
    uint8_t **plain, size_t *produced)
{
    int       rc;
    size_t    sealed, plain_len;
    uint8_t   nonce[VMESS_NONCE_LEN], sum[VMESS_FNV_LEN], want[VMESS_FNV_LEN];
    uint8_t   skip[VMESS_PAD_MAX];
    uint32_t  fnv;

    sealed = b->chunk_len - b->pad_len;
    plain_len = sealed - b->overhead;

    if (out == NULL) {
        out = (b->security == VMESS_SEC_AES_128_CFB) ? src + VMESS_FNV_LEN
                                                      : src;
    }

    switch (b->security) {
    case VMESS_SEC_AES_128_GCM:
    case VMESS_SEC_CHACHA20_POLY1305:
        vmess_body_nonce(nonce, b->count, b->iv);

        rc = vmess_aead_open(b->cipher, nonce, src, sealed, out);
        if (rc != VMESS_OK) {
            return rc;
        }

        break;

    case VMESS_SEC_AES_128_CFB:
        rc = vmess_cipher_update(b->cipher, sum, src, VMESS_FNV_LEN);
        if (rc == VMESS_OK) {
            rc = vmess_cipher_update(b->cipher, out, src + VMESS_FNV_LEN,
                                     plain_len);
        }

        /* the padding is part of the CFB stream */
        if (rc == VMESS_OK) {
            rc = vmess_cipher_update(b->cipher, skip, src + sealed, b->pad_len);
        }

        if (rc != VMESS_OK) {
            return rc;
        }

        fnv = vmess_fnv1a(out, plain_len);
        want[0] = (uint8_t) (fnv >> 24);
        want[1] = (uint8_t) (fnv >> 16);
        want[2] = (uint8_t) (fnv >> 8);
        want[3] = (uint8_t) fnv;

        if (CRYPTO_memcmp(sum, want, VMESS_FNV_LEN) != 0) {
            return VMESS_ERR_BAD_AUTH;
        }

        break;

    default: /* VMESS_SEC_NONE */
        if (plain_len > 0 && out != src) {
            memcpy(out, src, plain_len);
        }

        break;
    }

    vmess_body_count(b);

    if (plain_len == 0) {
        b->eof = 1;
    }

    *plain = out;
    *produced = plain_len;

    return VMESS_OK;
}


/*
 * security 1 or 5 without 0x01: a bare (CFB) stream, no boundaries; out ==
 * NULL decrypts all of in where it lies
 */

static int
vmess_body_open_raw(vmess_body_t *b, uint8_t *in, size_t len,
    size_t *consumed, uint8_t *out, size_t cap, uint8_t **plain,
    size_t *produced)
{
    int     rc;
    size_t  n;

    if (len == 0) {
        return VMESS_AGAIN;
    }

    if (out == NULL) {
        out = in;
        cap = len;
    }

    n = len < cap ? len : cap;

    /* EVP counts in int */
    if (n > INT_MAX) {
        n = INT_MAX;
    }

    if (n == 0) {
        return VMESS_ERR_NO_SPACE;
    }

    rc = vmess_body_cfb_copy(b, VMESS_CFB_DECRYPT, out, in, n);
    if (rc != VMESS_OK) {
        b->state = VMESS_BODY_FAILED;
        return rc;
    }

    *consumed = n;
    *plain = out;
    *produced = n;

    return VMESS_OK;
}
