/*
 * libFuzzer harness: the WebSocket unframer (vmess_ws_unframe) and the
 * frame header writer.
 *
 * Input: a mode byte, a split, then
 *   bit 0 clear: the client's byte stream itself
 *   bit 0 set:   frame fields (see fuzz_build), written with
 *                vmess_ws_frame_header and masked, so that the unframer's
 *                answer is known in advance: unframe(frame(x)) == x
 * Bit 1 of the mode makes max_frame small (the next byte), else 1 MiB.
 * The stream is unframed whole in place, into a separate buffer, and in
 * input-sized pieces each in place; all must give the same data, reply,
 * close and result.
 */

#include <stdlib.h>
#include <string.h>

#include "vmess.h"
#include "common.h"


#define FUZZ_STREAM_MAX     (96 * 1024)
#define FUZZ_FRAMES_MAX     64
#define FUZZ_PIECES_MAX     4096
#define FUZZ_MAX_FRAME      (1024 * 1024)


typedef struct {
    int                         rc;
    uint8_t                    *out;
    size_t                      out_len;
    vmess_ws_t                  ws;
} fuzz_result_t;

typedef struct {
    uint8_t                    *data;       /* the data frames' payload */
    size_t                      data_len;
    uint8_t                     reply[VMESS_WS_CONTROL_MAX];
    size_t                      reply_len;
    unsigned                    reply_opcode;
    int                         closed;
} fuzz_expect_t;


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_unframe(const uint8_t *stream, size_t len, uint64_t max,
    fuzz_split_t *sp, int in_place, fuzz_result_t *r);
static void fuzz_same(const fuzz_result_t *a, const fuzz_result_t *b,
    const char *what);
static size_t fuzz_build(fuzz_in_t *in, uint8_t *stream,
    fuzz_expect_t *e);
static size_t fuzz_frame(uint8_t *p, int fin, unsigned opcode,
    const uint8_t *payload, size_t len, const uint8_t mask[4], int wide);


/* scratch reused by every run (large mallocs would be mmaps under ASan):
 * what the unframer reads is always an exact heap copy of a piece */
static uint8_t  fuzz_stream[FUZZ_STREAM_MAX];
static uint8_t  fuzz_expect_data[FUZZ_STREAM_MAX];
static uint8_t  fuzz_payload[65536 + 256];
static uint8_t  fuzz_out[3][FUZZ_STREAM_MAX];
static uint8_t  fuzz_other[FUZZ_STREAM_MAX];


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t          len;
    uint8_t         mode, *stream;
    uint64_t        max;
    fuzz_in_t       in;
    fuzz_split_t    sp, whole;
    fuzz_expect_t   e;
    fuzz_result_t   a, b, c;

    in.p = data;
    in.len = size;

    mode = fuzz_u8(&in);
    fuzz_split_read(&sp, &in);
    max = (mode & 2) ? fuzz_u8(&in) : FUZZ_MAX_FRAME;

    memset(&e, 0, sizeof(fuzz_expect_t));

    if (mode & 1) {
        max = FUZZ_MAX_FRAME;
        stream = fuzz_stream;
        e.data = fuzz_expect_data;
        len = fuzz_build(&in, stream, &e);

    } else if (in.len <= FUZZ_STREAM_MAX) {
        stream = (uint8_t *) in.p;
        len = in.len;

    } else {
        return 0;
    }

    whole.n = 0;
    a.out = fuzz_out[0];
    b.out = fuzz_out[1];
    c.out = fuzz_out[2];

    fuzz_unframe(stream, len, max, &whole, 1, &a);
    fuzz_unframe(stream, len, max, &whole, 0, &b);
    fuzz_unframe(stream, len, max, &sp, 1, &c);

    fuzz_same(&a, &b, "in place and into another buffer");
    fuzz_same(&a, &c, "whole and split");

    if (a.rc == VMESS_ERR_WS_TOO_LARGE) {
        fuzz_assert(a.ws.left > max, "too large: over max_frame");
    }

    if (mode & 1) {
        fuzz_assert(a.rc == VMESS_OK, "written frames are read");
        fuzz_assert(a.out_len == e.data_len
                    && memcmp(a.out, e.data, e.data_len) == 0,
                    "unframe(frame(x)) == x");
        fuzz_assert(a.ws.closed == e.closed, "closed by the close frame");
        fuzz_assert(a.ws.reply_opcode == e.reply_opcode
                    && a.ws.reply_len == e.reply_len
                    && memcmp(a.ws.reply, e.reply, e.reply_len) == 0,
                    "the latest ping or the close answered");
    }

    return 0;
}


/*
 * The caller's loop: each piece in an exact heap copy, unframed in place
 * (or into another buffer), its data appended to the result.  After
 * FUZZ_PIECES_MAX pieces the rest is one piece: a payload over 64 KiB cut
 * into single bytes would only slow the fuzzer down.
 */

static void
fuzz_unframe(const uint8_t *stream, size_t len, uint64_t max,
    fuzz_split_t *sp, int in_place, fuzz_result_t *r)
{
    size_t    pos, n, got, pieces;
    uint8_t  *piece, *dst;

    sp->next = 0;
    vmess_ws_init(&r->ws, max);
    r->out_len = 0;
    r->rc = VMESS_OK;
    pieces = 0;

    for (pos = 0; pos < len; pos += n) {
        n = (++pieces < FUZZ_PIECES_MAX) ? fuzz_split_next(sp, len - pos)
                                         : len - pos;
        piece = fuzz_dup(stream + pos, n);
        dst = in_place ? piece : fuzz_other;
        got = (size_t) -1;

        r->rc = vmess_ws_unframe(&r->ws, piece, n, dst, &got);

        fuzz_assert(got <= n, "no more data out than bytes in");
        fuzz_assert(r->ws.hlen < VMESS_WS_HEADER_MAX, "header within hdr");
        fuzz_assert(r->ws.ctl_len <= VMESS_WS_CONTROL_MAX,
                    "control payload within ctl");
        fuzz_assert(r->ws.reply_len <= VMESS_WS_CONTROL_MAX,
                    "reply within reply");

        memcpy(r->out + r->out_len, dst, got);
        r->out_len += got;
        free(piece);

        if (r->rc != VMESS_OK) {
            fuzz_assert(r->rc <= VMESS_ERR_WS_RESERVED
                        && r->rc >= VMESS_ERR_WS_TOO_LARGE,
                        "a WebSocket error");
            break;
        }
    }
}


static void
fuzz_same(const fuzz_result_t *a, const fuzz_result_t *b, const char *what)
{
    fuzz_assert(a->rc == b->rc, what);
    fuzz_assert(a->out_len == b->out_len
                && memcmp(a->out, b->out, a->out_len) == 0, what);
    fuzz_assert(a->ws.closed == b->ws.closed, what);
    fuzz_assert(a->ws.reply_opcode == b->ws.reply_opcode
                && a->ws.reply_len == b->ws.reply_len
                && memcmp(a->ws.reply, b->ws.reply, a->ws.reply_len) == 0,
                what);

    if (a->rc == VMESS_ERR_WS_TOO_LARGE) {
        fuzz_assert(a->ws.left == b->ws.left, what);
    }
}


/*
 * Frames while input lasts, each: a kind byte (low 3 bits: binary,
 * fragment, ping, pong, close; bit 3: the length written 64-bit wide;
 * bits 4-6 all set: a payload over 64 KiB), a length byte, a 4-byte
 * mask, then the payload's source bytes (repeated to its length).  After
 * a close frame the rest of the input follows as it is.
 */

static size_t
fuzz_build(fuzz_in_t *in, uint8_t *stream, fuzz_expect_t *e)
{
    int             in_message, fin, wide;
    size_t          len, plen, n, i, src_len;
    uint8_t         kind, mask[4], *big;
    unsigned        opcode;
    const uint8_t  *src;

    len = 0;
    in_message = 0;
    big = fuzz_payload;

    for (i = 0; i < FUZZ_FRAMES_MAX && in->len > 0 && !e->closed; i++) {
        kind = fuzz_u8(in);
        plen = fuzz_u8(in);
        mask[0] = fuzz_u8(in);
        mask[1] = fuzz_u8(in);
        mask[2] = fuzz_u8(in);
        mask[3] = fuzz_u8(in);
        wide = (kind & 0x08) != 0;
        fin = 1;

        switch (kind & 7) {

        case 0:
            opcode = in_message ? VMESS_WS_CONT : VMESS_WS_BINARY;
            in_message = 0;
            break;

        case 1:
            opcode = in_message ? VMESS_WS_CONT : VMESS_WS_BINARY;
            fin = 0;
            in_message = 1;
            break;

        case 2:
            opcode = VMESS_WS_PING;
            break;

        case 3:
            opcode = VMESS_WS_PONG;
            break;

        default:
            opcode = VMESS_WS_CLOSE;
            break;
        }

        if (opcode & 0x08) {
            plen %= VMESS_WS_CONTROL_MAX + 1;
            wide = 0;

        } else if ((kind & 0x70) == 0x70) {
            plen += 65536;
        }

        if (len + VMESS_WS_HEADER_MAX + plen > FUZZ_STREAM_MAX) {
            break;
        }

        src_len = fuzz_take(in, plen < 256 ? plen : 256, &src);

        if (src_len == 0) {
            memset(big, 0, plen);

        } else {
            fuzz_fill(big, plen, src, src_len);
        }

        len += fuzz_frame(stream + len, fin, opcode, big, plen, mask, wide);

        switch (opcode) {

        case VMESS_WS_PING:
            memcpy(e->reply, big, plen);
            e->reply_len = plen;
            e->reply_opcode = VMESS_WS_PONG;
            break;

        case VMESS_WS_PONG:
            break;

        case VMESS_WS_CLOSE:
            n = plen < 2 ? plen : 2;
            memcpy(e->reply, big, n);
            e->reply_len = n;
            e->reply_opcode = VMESS_WS_CLOSE;
            e->closed = 1;
            break;

        default:
            memcpy(e->data + e->data_len, big, plen);
            e->data_len += plen;
            break;
        }
    }

    /* whatever follows a close frame is not read */

    if (e->closed) {
        n = fuzz_take(in, FUZZ_STREAM_MAX - len, &src);
        memcpy(stream + len, src, n);
        len += n;
    }

    return len;
}


/* a client frame; wide: the length as 64 bits, which is allowed */

static size_t
fuzz_frame(uint8_t *p, int fin, unsigned opcode, const uint8_t *payload,
    size_t len, const uint8_t mask[4], int wide)
{
    size_t  n, i;

    if (wide) {
        p[0] = (uint8_t) ((fin ? 0x80 : 0) | opcode);
        p[1] = 0x80 | 127;

        for (i = 0; i < 8; i++) {
            p[2 + i] = (uint8_t) ((uint64_t) len >> (8 * (7 - i)));
        }

        memcpy(p + 10, mask, 4);
        n = 14;

    } else {
        n = vmess_ws_frame_header(p, fin, opcode, len, mask);
        fuzz_assert(n == vmess_ws_frame_header_len(len, 1),
                    "header size as announced");
    }

    for (i = 0; i < len; i++) {
        p[n + i] = payload[i] ^ mask[i & 3];
    }

    return n + len;
}
