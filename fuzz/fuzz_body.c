/*
 * libFuzzer harness: the body readers (vmess_body_open and
 * vmess_body_open_inplace) for every security (1, 3, 4, 5) x options
 * (0x01, 0x05, 0x0D, 0x11, 0x1D, 0x00) x command (1, 2, 3), both
 * directions, both header modes.
 *
 * Input: combo byte, flags byte, reader byte, split, [small out cap], then
 *   raw mode:    the wire stream
 *   sealed mode: chunk count and lengths, [bit flips], [cut], forge,
 *                [padding filler], plaintext source: the harness seals
 *                the chunks with vmess_body_seal (and the end marker),
 *                then damages the stream as told; with option 0x10 the
 *                forge byte may replace a length field by a validly
 *                sealed length of the fuzzer's choice
 * The stream is fed in pieces of input-chosen sizes, with a staging
 * buffer given on VMESS_NEED_STAGING, to the reader the low bits of the
 * reader byte pick: vmess_body_open into a 65535-byte out buffer (or
 * first a small one, to take the VMESS_ERR_NO_SPACE path), or
 * vmess_body_open_inplace on a writable copy, with stage 0 (what a call
 * leaves unconsumed waits for the next piece), stage 1, or the stage of
 * each call from the six high bits.  Checks: the contract of every
 * return, the same output and result as one whole feed copied by
 * vmess_body_open, and in sealed mode the plaintext itself: exact when
 * undamaged, a prefix when cut, and (AEAD securities) a prefix whatever
 * the damage.
 */

#include <stdlib.h>
#include <string.h>

#include "vmess.h"
#include "common.h"


#define FUZZ_F_RESPONSE     0x01
#define FUZZ_F_LEGACY       0x02
#define FUZZ_F_SEALED       0x04
#define FUZZ_F_SMALL_CAP    0x08
#define FUZZ_F_END          0x10
#define FUZZ_F_FLIP         0x20
#define FUZZ_F_CUT          0x40
#define FUZZ_F_PAD          0x80

/* reader byte, low two bits */
#define FUZZ_READ_COPY      0   /* vmess_body_open */
#define FUZZ_READ_GLUE      1   /* in place, stage 0 */
#define FUZZ_READ_STAGE     2   /* in place, stage 1 */
#define FUZZ_READ_MIXED     3   /* in place, stages from bits 2..7 */

/* > 42: the SHAKE stream passes its first 168-byte block */
#define FUZZ_CHUNKS_MAX     100
/* below 128 KiB: bigger blocks cost ASan an mmap and munmap each */
#define FUZZ_PLAIN_TOTAL    (96 * 1024)
#define FUZZ_PAD_LEN        63


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_feed(const vmess_session_t *s, int dir,
    const uint8_t *stream, size_t len, fuzz_split_t *sp, uint8_t reader,
    int small, size_t small_cap, fuzz_body_result_t *r);
static void fuzz_compare(const fuzz_body_result_t *a,
    const fuzz_body_result_t *b);
static void fuzz_sealed(const vmess_session_t *s, int dir, uint8_t flags,
    uint8_t reader, fuzz_split_t *sp, size_t small_cap, fuzz_in_t *in);


static const uint8_t  fuzz_securities[] = { 1, 3, 4, 5 };
static const uint8_t  fuzz_options[] = { 0x01, 0x05, 0x0d, 0x11, 0x1d, 0x00 };
static const uint8_t  fuzz_commands[] = { 1, 2, 3 };


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                 dir, sec, opt, cmd;
    size_t              small_cap;
    uint8_t             combo, flags, reader;
    fuzz_in_t           in;
    fuzz_split_t        sp, whole;
    vmess_session_t     s;
    fuzz_body_result_t  a, b;

    in.p = data;
    in.len = size;

    combo = fuzz_u8(&in);
    flags = fuzz_u8(&in);
    reader = fuzz_u8(&in);
    fuzz_split_read(&sp, &in);
    small_cap = (flags & FUZZ_F_SMALL_CAP) ? fuzz_u16(&in) % 4096 : 0;

    sec = fuzz_securities[combo % 4];
    opt = fuzz_options[(combo / 4) % 6];
    cmd = fuzz_commands[(combo / 24) % 3];
    dir = (flags & FUZZ_F_RESPONSE) ? VMESS_DIR_RESPONSE : VMESS_DIR_REQUEST;

    fuzz_session(&s, sec, opt, cmd, (flags & FUZZ_F_LEGACY) != 0);

    if (flags & FUZZ_F_SEALED) {
        fuzz_sealed(&s, dir, flags, reader, &sp, small_cap, &in);
        return 0;
    }

    whole.n = 0;

    fuzz_feed(&s, dir, in.p, in.len, &whole, FUZZ_READ_COPY, 0, 0, &a);
    fuzz_feed(&s, dir, in.p, in.len, &sp, reader,
              (flags & FUZZ_F_SMALL_CAP) != 0, small_cap, &b);

    fuzz_compare(&a, &b);

    fuzz_body_result_free(&a);
    fuzz_body_result_free(&b);

    return 0;
}


/* a codec made from the session, fed to the reader picked and freed */

static void
fuzz_feed(const vmess_session_t *s, int dir, const uint8_t *stream,
    size_t len, fuzz_split_t *sp, uint8_t reader, int small,
    size_t small_cap, fuzz_body_result_t *r)
{
    int           rc;
    vmess_body_t  b;

    rc = vmess_body_init(&b, s, dir, 0);
    fuzz_assert(rc == VMESS_OK, "vmess_body_init");

    switch (reader & 0x03) {
    case FUZZ_READ_COPY:
        fuzz_body_feed(&b, stream, len, sp, small, small_cap, r);
        break;
    case FUZZ_READ_GLUE:
        fuzz_body_feed_inplace(&b, stream, len, sp, 0, r);
        break;
    case FUZZ_READ_STAGE:
        fuzz_body_feed_inplace(&b, stream, len, sp, 0x3f, r);
        break;
    default: /* FUZZ_READ_MIXED */
        fuzz_body_feed_inplace(&b, stream, len, sp, reader >> 2, r);
        break;
    }

    vmess_body_free(&b);
}


/* the whole feed copied and the split feed (copied or in place) agree */

static void
fuzz_compare(const fuzz_body_result_t *a, const fuzz_body_result_t *b)
{
    fuzz_assert(a->rc == b->rc, "whole and split: result");
    fuzz_assert(a->eof == b->eof, "whole and split: eof");
    /* the split feed may end inside a chunk it passed on in part */
    fuzz_assert(a->part == 0 && a->out_len == b->out_len - b->part
                && memcmp(a->out, b->out, a->out_len) == 0,
                "whole and split: plaintext");
    fuzz_assert(a->n_ends == b->n_ends
                && memcmp(a->ends, b->ends, a->n_ends * sizeof(size_t)) == 0,
                "whole and split: chunk boundaries");

    /* after an error, staged bytes count as consumed in a split feed;
     * bytes the in-place reader left for a retry are the rest */
    if (a->rc >= 0) {
        fuzz_assert(a->consumed == b->consumed + b->kept,
                    "whole and split: consumed");
    }
}


static void
fuzz_sealed(const vmess_session_t *s, int dir, uint8_t flags, uint8_t reader,
    fuzz_split_t *sp, size_t small_cap, fuzz_in_t *in)
{
    int                  rc, aead, chunked, damaged;
    size_t               i, n, len, max, total, stream_cap, stream_len;
    size_t               doc_max, written, src_len, flips, cut, over, k;
    size_t               off, exp_len, n_ends, n_starts;
    size_t               lens[FUZZ_CHUNKS_MAX], ends[FUZZ_CHUNKS_MAX + 1];
    size_t               starts[FUZZ_CHUNKS_MAX + 1];
    uint8_t             *stream, *plain, *expect, *chunk, *pad;
    uint8_t              forge, len_key[32], nonce[12], field[2];
    uint8_t              flip_x[4];
    uint16_t             v, forged;
    uint32_t             flip_at[4];
    fuzz_split_t         whole;
    vmess_body_t         w;
    const uint8_t       *p, *src;
    fuzz_body_result_t   a, b;

    static const uint8_t  fallback[] = "fuzz";

    rc = vmess_body_init(&w, s, dir, 0);
    fuzz_assert(rc == VMESS_OK, "vmess_body_init (writer)");

    chunked = w.chunked;
    over = vmess_body_overhead(&w);
    max = w.chunked ? VMESS_CHUNK_MAX - (over - w.len_size) : VMESS_CHUNK_MAX;
    doc_max = w.chunked ? VMESS_CHUNK_MAX - over : VMESS_CHUNK_MAX;

    n = fuzz_u8(in) % (FUZZ_CHUNKS_MAX + 1);
    total = 0;

    for (i = 0; i < n; i++) {
        /* the high bit picks the top of the range: the bounds exactly */
        v = fuzz_u16(in);

        if (!chunked) {
            len = v;

        } else if (v & 0x8000) {
            len = max - (v & 0x7fff) % max;

        } else {
            len = 1 + v;
        }

        if (total + len > FUZZ_PLAIN_TOTAL) {
            len = 0;
        }

        lens[i] = len;
        total += len;
    }

    flips = 0;

    if (flags & FUZZ_F_FLIP) {
        flips = 1 + fuzz_u8(in) % 4;

        for (i = 0; i < flips; i++) {
            flip_at[i] = fuzz_u32(in);
            flip_x[i] = fuzz_u8(in) | 1;
        }
    }

    cut = (flags & FUZZ_F_CUT) ? fuzz_u32(in) : 0;
    forge = fuzz_u8(in);
    forged = fuzz_u16(in);

    pad = NULL;

    if (flags & FUZZ_F_PAD) {
        pad = fuzz_alloc(FUZZ_PAD_LEN);
        memset(pad, 0, FUZZ_PAD_LEN);
        k = fuzz_take(in, FUZZ_PAD_LEN, &p);
        memcpy(pad, p, k);
    }

    src = in->p;
    src_len = in->len;

    if (src_len == 0) {
        src = fallback;
        src_len = sizeof(fallback) - 1;
    }

    /* the plaintext: the rest of the input, cycled */
    plain = fuzz_alloc(total);
    expect = fuzz_alloc(total);

    fuzz_fill(plain, total, src, src_len);

    stream_cap = total + (n + 1) * over;
    stream = fuzz_alloc(stream_cap);
    stream_len = 0;
    exp_len = 0;
    off = 0;
    n_ends = 0;
    n_starts = 0;

    for (i = 0; i < n; i++) {
        len = lens[i];

        if (chunked && len == 0) {
            continue;
        }

        /* a chunk buffer of exactly the cap the contract asks for */
        chunk = fuzz_alloc(len + over);
        rc = vmess_body_seal(&w, plain + off, len, pad, chunk, len + over,
                             &written);

        if (rc == VMESS_OK) {
            fuzz_assert(written <= len + over, "seal within the cap");
            starts[n_starts++] = stream_len;
            memcpy(stream + stream_len, chunk, written);
            stream_len += written;
            memcpy(expect + exp_len, plain + off, len);
            exp_len += len;

            if (chunked) {
                ends[n_ends++] = exp_len;
            }

        } else {
            /* the code's own bound may be looser than the documented */
            fuzz_assert(len > doc_max && rc == VMESS_ERR_INVALID,
                        "a chunk within the documented bound is sealed");
        }

        off += len;
        free(chunk);
    }

    if (flags & FUZZ_F_END) {
        chunk = fuzz_alloc(over);
        rc = vmess_body_seal_end(&w, pad, chunk, over, &written);
        fuzz_assert(rc == VMESS_OK && written <= over, "end marker sealed");
        starts[n_starts++] = stream_len;
        memcpy(stream + stream_len, chunk, written);
        stream_len += written;
        free(chunk);

        if (chunked) {
            ends[n_ends++] = exp_len;
        }
    }

    vmess_body_free(&w);

    damaged = flips > 0;

    if (forge && n_starts > 0 && (s->options & VMESS_OPT_AUTH_LENGTH)
        && (s->security == VMESS_SEC_AES_128_GCM
            || s->security == VMESS_SEC_CHACHA20_POLY1305))
    {
        /* length field j: BE16(L - 16) sealed under nonce j (§7.6) */
        k = (forge - 1) % n_starts;
        fuzz_kdf1(s->req_key, "auth_len", len_key);
        nonce[0] = (uint8_t) (k >> 8);
        nonce[1] = (uint8_t) k;
        memcpy(nonce + 2, s->req_iv + 2, 10);
        field[0] = (uint8_t) (forged >> 8);
        field[1] = (uint8_t) forged;
        fuzz_body_aead_seal(s->security, len_key, nonce, field, 2,
                            stream + starts[k]);
        damaged = 1;
    }

    for (i = 0; i < flips && stream_len > 0; i++) {
        stream[flip_at[i] % stream_len] ^= flip_x[i];
    }

    if (flags & FUZZ_F_CUT) {
        stream_len = cut % (stream_len + 1);
    }

    whole.n = 0;

    fuzz_feed(s, dir, stream, stream_len, &whole, FUZZ_READ_COPY, 0, 0, &a);
    fuzz_feed(s, dir, stream, stream_len, sp, reader,
              (flags & FUZZ_F_SMALL_CAP) != 0, small_cap, &b);

    fuzz_compare(&a, &b);

    aead = s->security == VMESS_SEC_AES_128_GCM
           || s->security == VMESS_SEC_CHACHA20_POLY1305;

    if (!damaged || aead) {
        /* what came out is what went in, in the same chunks */
        fuzz_assert(b.out_len <= exp_len
                    && memcmp(b.out, expect, b.out_len) == 0,
                    "plaintext is a prefix of the sealed");
        fuzz_assert(b.n_ends <= n_ends
                    && memcmp(b.ends, ends, b.n_ends * sizeof(size_t)) == 0,
                    "chunks are the sealed chunks");
    }

    if (!damaged) {
        fuzz_assert(b.rc == VMESS_OK || b.rc == VMESS_AGAIN,
                    "an undamaged stream opens");
    }

    if (!damaged && !(flags & FUZZ_F_CUT)) {
        fuzz_assert(b.out_len == exp_len, "all the plaintext comes out");
        fuzz_assert(b.consumed == stream_len, "all the stream is read");
        fuzz_assert(b.n_ends == n_ends, "one call per chunk");
        fuzz_assert(b.eof == (chunked && (flags & FUZZ_F_END)),
                    "the end marker is seen");
        fuzz_assert(b.rc == (b.eof ? VMESS_OK : VMESS_AGAIN),
                    "final result");
    }

    fuzz_body_result_free(&a);
    fuzz_body_result_free(&b);
    free(stream);
    free(plain);
    free(expect);
    free(pad);
}
