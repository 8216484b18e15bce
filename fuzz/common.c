/*
 * Support for the libFuzzer harnesses (see common.h).
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <sanitizer/asan_interface.h>

#include "common.h"


static void fuzz_body_failed_again(const vmess_body_t *b, int rc,
    size_t consumed, size_t produced);
static void fuzz_body_take(const vmess_body_t *b, fuzz_body_result_t *r,
    const uint8_t *plain, size_t produced);
static int fuzz_inside(const uint8_t *p, size_t n, const uint8_t *buf,
    size_t len);
static void fuzz_aead_seal(const EVP_CIPHER *cipher, const uint8_t *key,
    const uint8_t nonce[12], const uint8_t *aad, size_t aad_len,
    const uint8_t *in, size_t len, uint8_t *out);


static const uint8_t  fuzz_req_key[16] = {
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
    0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff
};

static const uint8_t  fuzz_req_iv[16] = {
    0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78,
    0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0
};


uint8_t
fuzz_u8(fuzz_in_t *in)
{
    uint8_t  v;

    if (in->len == 0) {
        return 0;
    }

    v = in->p[0];
    in->p++;
    in->len--;

    return v;
}


uint16_t
fuzz_u16(fuzz_in_t *in)
{
    uint16_t  v;

    v = (uint16_t) (fuzz_u8(in) << 8);

    return (uint16_t) (v | fuzz_u8(in));
}


uint32_t
fuzz_u32(fuzz_in_t *in)
{
    uint32_t  v;

    v = (uint32_t) fuzz_u16(in) << 16;

    return v | fuzz_u16(in);
}


uint64_t
fuzz_u64(fuzz_in_t *in)
{
    uint64_t  v;

    v = (uint64_t) fuzz_u32(in) << 32;

    return v | fuzz_u32(in);
}


size_t
fuzz_take(fuzz_in_t *in, size_t n, const uint8_t **p)
{
    if (n > in->len) {
        n = in->len;
    }

    *p = in->p;
    in->p += n;
    in->len -= n;

    return n;
}


void
fuzz_split_read(fuzz_split_t *sp, fuzz_in_t *in)
{
    size_t  i;

    sp->n = fuzz_u8(in) & 0x0f;
    sp->next = 0;

    for (i = 0; i < sp->n; i++) {
        sp->code[i] = fuzz_u8(in);
    }
}


/* codes 0..191: 1..192 bytes; 192..255: 1 KiB .. 64 KiB */

size_t
fuzz_split_next(fuzz_split_t *sp, size_t left)
{
    size_t   n;
    uint8_t  c;

    if (sp->n == 0) {
        return left;
    }

    c = sp->code[sp->next];
    sp->next = (sp->next + 1) % sp->n;

    n = (c < 192) ? (size_t) c + 1 : (size_t) (c - 191) * 1024;

    return n < left ? n : left;
}


void
fuzz_window_open(fuzz_window_t *w, uint8_t *buf, size_t len)
{
    w->buf = buf;
    w->len = len;
    w->from = 0;
    w->to = 0;

    ASAN_POISON_MEMORY_REGION(buf, len);
}


void
fuzz_window_move(fuzz_window_t *w, size_t from, size_t to)
{
    if (from < w->from || to < w->to || from > to || to > w->len) {
        fuzz_fail("window moved back: [%zu, %zu) after [%zu, %zu)",
                  from, to, w->from, w->to);
    }

    ASAN_POISON_MEMORY_REGION(w->buf + w->from, from - w->from);
    ASAN_UNPOISON_MEMORY_REGION(w->buf + from, to - from);

    w->from = from;
    w->to = to;
}


void
fuzz_window_close(fuzz_window_t *w)
{
    ASAN_UNPOISON_MEMORY_REGION(w->buf, w->len);
}


void
fuzz_fill(uint8_t *buf, size_t len, const uint8_t *src, size_t src_len)
{
    size_t  have, n;

    have = len < src_len ? len : src_len;
    memcpy(buf, src, have);

    while (have < len) {
        n = len - have < have ? len - have : have;
        memcpy(buf + have, buf, n);
        have += n;
    }
}


void *
fuzz_alloc(size_t len)
{
    void  *p;

    p = malloc(len ? len : 1);
    if (p == NULL) {
        fuzz_fail("out of memory (%zu bytes)", len);
    }

    return p;
}


uint8_t *
fuzz_dup(const uint8_t *p, size_t len)
{
    uint8_t  *d;

    d = fuzz_alloc(len);

    if (len) {
        memcpy(d, p, len);
    }

    return d;
}


void
fuzz_fail(const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    fprintf(stderr, "FUZZ CHECK FAILED: ");
    vfprintf(stderr, fmt, args);
    fprintf(stderr, "\n");
    va_end(args);

    abort();
}


/*
 * The caller's loop: deliver a piece, call until it is used up, always
 * advancing by *consumed; a staging buffer when asked for.  With "small"
 * every chunk first meets an out buffer of small_cap bytes and, after
 * VMESS_ERR_NO_SPACE, the full one.
 */

void
fuzz_body_feed(vmess_body_t *b, const uint8_t *stream, size_t len,
    fuzz_split_t *sp, int small, size_t small_cap, fuzz_body_result_t *r)
{
    int            rc, rc2;
    size_t         pos, delivered, win, consumed, produced, cap, steps;
    size_t         consumed2, produced2;
    uint8_t       *copy, *in, *out, *big, *little;
    fuzz_window_t  window;

    memset(r, 0, sizeof(fuzz_body_result_t));

    copy = fuzz_dup(stream, len);
    fuzz_window_open(&window, copy, len);

    r->out = fuzz_alloc(len);
    r->ends = fuzz_alloc(FUZZ_ENDS_MAX * sizeof(size_t));

    /* exact sizes: ASan catches a write one past the cap */
    big = fuzz_alloc(FUZZ_OUT_CAP);
    little = fuzz_alloc(small_cap);

    pos = 0;
    delivered = 0;
    rc = VMESS_AGAIN;
    steps = 0;
    cap = small ? small_cap : FUZZ_OUT_CAP;

    for ( ;; ) {

        if (pos == delivered) {
            if (delivered == len) {
                /* the input ran out: at the end, or waiting for more */
                rc = b->eof ? VMESS_OK : VMESS_AGAIN;
                break;
            }

            delivered += fuzz_split_next(sp, len - delivered);
        }

        fuzz_assert(++steps <= 4 * len + 16, "the reader makes progress");

        win = delivered - pos;
        in = copy + pos;
        fuzz_window_move(&window, pos, delivered);
        out = (cap == FUZZ_OUT_CAP) ? big : little;
        consumed = (size_t) -1;
        produced = (size_t) -1;

        rc = vmess_body_open(b, in, win, &consumed, out, cap, &produced);

        fuzz_assert(consumed <= win, "consumed within the input");
        fuzz_assert(produced <= cap, "produced within the cap");

        if (rc == VMESS_OK) {
            fuzz_assert(consumed > 0 || produced > 0, "OK makes progress");
            fuzz_assert(produced > 0 || b->eof, "OK without data is the end");

            fuzz_body_take(b, r, out, produced);

            pos += consumed;
            cap = small ? small_cap : FUZZ_OUT_CAP;
            continue;
        }

        fuzz_assert(produced == 0, "nothing produced unless OK");

        if (rc == VMESS_AGAIN) {
            fuzz_assert(consumed == win, "AGAIN consumes all of the input");
            pos += consumed;
            continue;
        }

        if (rc == VMESS_NEED_STAGING) {
            fuzz_assert(r->staging == NULL, "staging asked for once");
            fuzz_assert(b->chunked, "staging only for chunks");

            r->staging = fuzz_alloc(VMESS_STAGING_SIZE);
            vmess_body_set_staging(b, r->staging, VMESS_STAGING_SIZE);
            pos += consumed;
            continue;
        }

        if (rc == VMESS_ERR_NO_SPACE) {
            fuzz_assert(cap < FUZZ_OUT_CAP, "NO_SPACE with a 65535 buffer");
            fuzz_assert(consumed <= b->len_size,
                        "NO_SPACE consumes at most the length field");
            pos += consumed;
            cap = FUZZ_OUT_CAP;
            continue;
        }

        fuzz_assert(rc < 0, "a known return code");

        /* a failed stream stays failed */
        rc2 = vmess_body_open(b, in, win, &consumed2, big, FUZZ_OUT_CAP,
                              &produced2);
        fuzz_body_failed_again(b, rc2, consumed2, produced2);

        break;
    }

    r->rc = rc;
    r->eof = b->eof;
    r->consumed = pos;

    fuzz_window_close(&window);
    free(copy);
    free(big);
    free(little);
}


/*
 * As fuzz_body_feed, over the in-place reader; besides the contract of
 * every return: each plaintext lies in the bytes its call consumed or in
 * staging, a raw stream is decrypted all where it lies, and a chunk that
 * was waited for takes exactly the bytes vmess_body_pending last said.
 */

void
fuzz_body_feed_inplace(vmess_body_t *b, const uint8_t *stream, size_t len,
    fuzz_split_t *sp, unsigned stages, fuzz_body_result_t *r)
{
    int             rc, rc2, stage, partial;
    size_t          pos, delivered, win, consumed, produced, steps, pending;
    size_t          consumed2, produced2;
    uint8_t        *copy, *in, *plain, *plain2;
    fuzz_window_t   window;

    memset(r, 0, sizeof(fuzz_body_result_t));

    /* writable: chunks are opened where they lie */
    copy = fuzz_dup(stream, len);
    fuzz_window_open(&window, copy, len);

    r->out = fuzz_alloc(len);
    r->ends = fuzz_alloc(FUZZ_ENDS_MAX * sizeof(size_t));

    pos = 0;
    delivered = 0;
    rc = VMESS_AGAIN;
    steps = 0;

    /* what the chunk under way still needed when a call last waited */
    pending = 0;

    for ( ;; ) {

        if (pos == delivered || rc == VMESS_AGAIN) {
            if (delivered == len) {
                rc = b->eof ? VMESS_OK : VMESS_AGAIN;
                break;
            }

            delivered += fuzz_split_next(sp, len - delivered);
        }

        fuzz_assert(++steps <= 4 * len + 16, "the reader makes progress");

        stage = (stages >> (steps % 6)) & 1;
        win = delivered - pos;
        in = copy + pos;
        fuzz_window_move(&window, pos, delivered);
        consumed = (size_t) -1;
        produced = (size_t) -1;

        rc = vmess_body_open_inplace(b, in, win, stage, &consumed, &plain,
                                     &produced);

        fuzz_assert(consumed <= win, "consumed within the input");

        if (rc == VMESS_OK) {
            fuzz_assert(consumed > 0 || produced > 0, "OK makes progress");
            fuzz_assert(produced > 0 || b->eof, "OK without data is the end");

            /* security none over a stream passes on data as it comes */
            partial = b->chunked && vmess_body_pending(b) > 0;

            fuzz_assert(!partial || (b->bare && produced > 0
                                     && consumed == win),
                        "only bare none passes on part of a chunk, all of"
                        " the input");
            fuzz_assert(pending == 0 || consumed == pending
                        || (partial && consumed < pending),
                        "a chunk waited for takes exactly its pending bytes");

            if (!b->chunked) {
                fuzz_assert(plain == in && consumed == win && produced == win,
                            "raw: all of the input, where it lies");

            } else if (produced > 0) {
                fuzz_assert(fuzz_inside(plain, produced, in, consumed)
                            || (r->staging != NULL
                                && fuzz_inside(plain, produced, r->staging,
                                               VMESS_STAGING_SIZE)),
                            "plaintext in what was consumed or in staging");
            }

            fuzz_body_take(b, r, plain, produced);

            pos += consumed;
            pending = partial ? vmess_body_pending(b) : 0;
            continue;
        }

        fuzz_assert(produced == 0, "nothing produced unless OK");

        pending = vmess_body_pending(b);

        if (rc == VMESS_AGAIN) {
            fuzz_assert(consumed == win
                        || (!stage && consumed <= b->len_size
                            && win - consumed < pending),
                        "AGAIN consumes all, or with stage 0 leaves a chunk"
                        " short of its pending bytes");
            pos += consumed;
            continue;
        }

        if (rc == VMESS_NEED_STAGING) {
            fuzz_assert(stage, "staging asked for only with stage 1");
            fuzz_assert(r->staging == NULL, "staging asked for once");
            fuzz_assert(b->chunked, "staging only for chunks");

            r->staging = fuzz_alloc(VMESS_STAGING_SIZE);
            vmess_body_set_staging(b, r->staging, VMESS_STAGING_SIZE);
            pos += consumed;
            continue;
        }

        fuzz_assert(rc < 0 && rc != VMESS_ERR_NO_SPACE, "a known error");

        /* a failed stream stays failed */
        rc2 = vmess_body_open_inplace(b, in, win, stage, &consumed2, &plain2,
                                      &produced2);
        fuzz_body_failed_again(b, rc2, consumed2, produced2);

        break;
    }

    r->rc = rc;
    r->eof = b->eof;
    r->consumed = pos;
    r->kept = delivered - pos;

    fuzz_window_close(&window);
    free(copy);
}


/* a call on a stream that has failed: it fails again and takes nothing */

static void
fuzz_body_failed_again(const vmess_body_t *b, int rc, size_t consumed,
    size_t produced)
{
    fuzz_assert(rc == VMESS_ERR_INVALID
                || (b->eof && rc == VMESS_ERR_BAD_LENGTH),
                "no call succeeds after an error");
    fuzz_assert(consumed == 0 && produced == 0,
                "nothing taken after an error");
}


/* a call's plaintext, appended; a chunked stream keeps the boundary */

static void
fuzz_body_take(const vmess_body_t *b, fuzz_body_result_t *r,
    const uint8_t *plain, size_t produced)
{
    memcpy(r->out + r->out_len, plain, produced);
    r->out_len += produced;

    if (vmess_body_pending(b) > 0) {
        /* part of a chunk (bare none, in place): no boundary yet */
        r->part += produced;
        return;
    }

    r->part = 0;

    if (b->chunked && r->n_ends < FUZZ_ENDS_MAX) {
        r->ends[r->n_ends++] = r->out_len;

    } else if (b->chunked) {
        r->ends_lost = 1;
    }
}


/* p[0..n) lies within buf[0..len) */

static int
fuzz_inside(const uint8_t *p, size_t n, const uint8_t *buf, size_t len)
{
    uintptr_t  at, start;

    at = (uintptr_t) p;
    start = (uintptr_t) buf;

    return at >= start && at - start <= len && n <= len - (at - start);
}


void
fuzz_body_result_free(fuzz_body_result_t *r)
{
    free(r->out);
    free(r->ends);
    free(r->staging);
}


/*
 * The target text the glue makes of an accepted request: an opened
 * request always formats, the exact cap fits, one byte less does not.
 */

void
fuzz_addr_text(const vmess_request_t *req)
{
    int     rc;
    char   *buf, *exact, *host, port[8];
    size_t  len, len2, host_len, n;

    buf = fuzz_alloc(300);
    len = 0;
    rc = vmess_addr_format(req->addr_type, req->addr, req->addr_len,
                           req->port, buf, 300, &len);

    if (req->command == VMESS_CMD_MUX) {
        fuzz_assert(rc == VMESS_ERR_UNSUPPORTED_ADDRESS, "mux: no address");
        free(buf);
        return;
    }

    fuzz_assert(rc == VMESS_OK && len == strlen(buf),
                "an opened address formats");

    n = (size_t) snprintf(port, sizeof(port), ":%u", (unsigned) req->port);
    fuzz_assert(len > n && memcmp(buf + len - n, port, n) == 0,
                "the text ends with the port");
    fuzz_assert((req->addr_type == VMESS_ADDR_IPV6) == (buf[0] == '['),
                "brackets for IPv6 only");

    exact = fuzz_alloc(len + 1);
    rc = vmess_addr_format(req->addr_type, req->addr, req->addr_len,
                           req->port, exact, len + 1, &len2);
    fuzz_assert(rc == VMESS_OK && len2 == len
                && memcmp(exact, buf, len + 1) == 0, "the exact cap fits");
    rc = vmess_addr_format(req->addr_type, req->addr, req->addr_len,
                           req->port, exact, len, &len2);
    fuzz_assert(rc == VMESS_ERR_NO_SPACE && exact[0] == '\0',
                "one byte short is NO_SPACE");

    host = fuzz_alloc(256);
    rc = vmess_addr_format_host(req->addr_type, req->addr, req->addr_len,
                                host, 256, &host_len);
    fuzz_assert(rc == VMESS_OK && host_len == strlen(host), "host text");

    if (req->addr_type == VMESS_ADDR_IPV6) {
        fuzz_assert(host_len + 2 + n == len
                    && memcmp(buf + 1, host, host_len) == 0, "IPv6 host");

    } else {
        fuzz_assert(host_len + n == len && memcmp(buf, host, host_len) == 0,
                    "host");
    }

    free(host);
    free(exact);
    free(buf);
}


void
fuzz_user_init(vmess_user_t *u)
{
    uint8_t  id[16];

    if (vmess_uuid_parse(FUZZ_UUID, sizeof(FUZZ_UUID) - 1, id) != VMESS_OK
        || vmess_user_init(u, id, 0, NULL) != VMESS_OK)
    {
        fuzz_fail("cannot make the test user");
    }
}


void
fuzz_session(vmess_session_t *s, int security, int options, int command,
    int legacy_header)
{
    vmess_request_t  req;

    memset(&req, 0, sizeof(vmess_request_t));

    req.version = 1;
    memcpy(req.body_key, fuzz_req_key, 16);
    memcpy(req.body_iv, fuzz_req_iv, 16);
    req.response_v = FUZZ_RESPONSE_V;
    req.options = (uint8_t) options;
    req.security = (uint8_t) security;
    req.command = (uint8_t) command;

    if (vmess_session_init(s, &req, legacy_header) != VMESS_OK) {
        fuzz_fail("vmess_session_init");
    }
}


void
fuzz_kdf1(const uint8_t secret[16], const char *salt, uint8_t out[32])
{
    vmess_bytes_t  path;

    path.data = (const uint8_t *) salt;
    path.len = strlen(salt);

    if (vmess_kdf(secret, 16, &path, 1, out) != VMESS_OK) {
        fuzz_fail("vmess_kdf");
    }
}


void
fuzz_gcm_seal(const uint8_t key[16], const uint8_t nonce[12],
    const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
    uint8_t *out)
{
    fuzz_aead_seal(EVP_aes_128_gcm(), key, nonce, aad, aad_len, in, len,
                   out);
}


void
fuzz_body_aead_seal(int security, const uint8_t key[16],
    const uint8_t nonce[12], const uint8_t *in, size_t len, uint8_t *out)
{
    uint8_t  full[32];

    if (security == VMESS_SEC_AES_128_GCM) {
        fuzz_aead_seal(EVP_aes_128_gcm(), key, nonce, NULL, 0, in, len, out);
        return;
    }

    /* ChaCha20-Poly1305 key: MD5(k) || MD5(MD5(k)) */
    if (!EVP_Digest(key, 16, full, NULL, EVP_md5(), NULL)
        || !EVP_Digest(full, 16, full + 16, NULL, EVP_md5(), NULL))
    {
        fuzz_fail("MD5");
    }

    fuzz_aead_seal(EVP_chacha20_poly1305(), full, nonce, NULL, 0, in, len,
                   out);
}


static void
fuzz_aead_seal(const EVP_CIPHER *cipher, const uint8_t *key,
    const uint8_t nonce[12], const uint8_t *aad, size_t aad_len,
    const uint8_t *in, size_t len, uint8_t *out)
{
    int              n, ok;
    EVP_CIPHER_CTX  *ctx;

    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) {
        fuzz_fail("EVP_CIPHER_CTX_new");
    }

    ok = EVP_EncryptInit_ex(ctx, cipher, NULL, key, nonce)
         && (aad_len == 0
             || EVP_EncryptUpdate(ctx, NULL, &n, aad, (int) aad_len))
         && (len == 0 || EVP_EncryptUpdate(ctx, out, &n, in, (int) len))
         && EVP_EncryptFinal_ex(ctx, out + len, &n)
         && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, out + len);

    EVP_CIPHER_CTX_free(ctx);

    if (!ok) {
        fuzz_fail("AEAD seal");
    }
}


void
fuzz_cfb_encrypt(const uint8_t key[16], const uint8_t iv[16],
    const uint8_t *in, size_t len, uint8_t *out)
{
    int              n, ok;
    EVP_CIPHER_CTX  *ctx;

    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) {
        fuzz_fail("EVP_CIPHER_CTX_new");
    }

    ok = EVP_EncryptInit_ex(ctx, EVP_aes_128_cfb128(), NULL, key, iv)
         && (len == 0 || EVP_EncryptUpdate(ctx, out, &n, in, (int) len));

    EVP_CIPHER_CTX_free(ctx);

    if (!ok) {
        fuzz_fail("CFB encrypt");
    }
}
