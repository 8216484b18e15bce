/*
 * WebSocket frames (vmess_ws.c): known client frames unframed whole, in
 * place and split at every byte boundary; control frames and their
 * replies; each refused frame; the frame header writer's bytes.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmess.h"
#include "unit.h"


#define TEST_STREAM_MAX     (80 * 1024)
#define TEST_MAX_FRAME      (1024 * 1024)


typedef struct {
    int                         rc;
    uint8_t                    *out;
    size_t                      out_len;
    vmess_ws_t                  ws;
} test_result_t;


static size_t test_frame(uint8_t *p, int fin, unsigned opcode,
    const uint8_t *payload, size_t len);
static void test_unframe(const uint8_t *stream, size_t len, size_t cut,
    test_result_t *r);
static int test_same(const test_result_t *a, const test_result_t *b);
static void test_header_writer(void);
static void test_lengths(void);
static void test_fragments_and_control(void);
static void test_close(void);
static void test_in_place(void);
static void test_refused(void);
static void test_every_split(void);


static const uint8_t  test_mask[4] = { 0x37, 0xfa, 0x21, 0x3d };


/* a client frame: header, test_mask, masked payload */

static size_t
test_frame(uint8_t *p, int fin, unsigned opcode, const uint8_t *payload,
    size_t len)
{
    size_t  n, i;

    n = vmess_ws_frame_header(p, fin, opcode, len, test_mask);

    for (i = 0; i < len; i++) {
        p[n + i] = payload[i] ^ test_mask[i & 3];
    }

    return n + len;
}


/* the stream fed as [0, cut) and [cut, len) (cut 0: whole) */

static void
test_unframe(const uint8_t *stream, size_t len, size_t cut, test_result_t *r)
{
    size_t  n;

    vmess_ws_init(&r->ws, TEST_MAX_FRAME);
    r->out = malloc(len + 1);
    r->out_len = 0;

    r->rc = vmess_ws_unframe(&r->ws, stream, cut, r->out, &n);
    r->out_len = n;

    if (r->rc == VMESS_OK) {
        r->rc = vmess_ws_unframe(&r->ws, stream + cut, len - cut,
                                 r->out + r->out_len, &n);
        r->out_len += n;
    }
}


static int
test_same(const test_result_t *a, const test_result_t *b)
{
    return a->rc == b->rc
           && (a->rc != VMESS_OK
               || (a->out_len == b->out_len
                   && memcmp(a->out, b->out, a->out_len) == 0))
           && a->ws.closed == b->ws.closed
           && a->ws.reply_opcode == b->ws.reply_opcode
           && a->ws.reply_len == b->ws.reply_len
           && memcmp(a->ws.reply, b->ws.reply, a->ws.reply_len) == 0;
}


static void
test_header_writer(void)
{
    uint8_t        h[VMESS_WS_HEADER_MAX];
    size_t         n;
    const uint8_t  h5[] = { 0x82, 0x05 };
    const uint8_t  h125[] = { 0x89, 0x7d };
    const uint8_t  h300[] = { 0x82, 0x7e, 0x01, 0x2c };
    const uint8_t  h65535[] = { 0x02, 0x7e, 0xff, 0xff };
    const uint8_t  h70000[] = { 0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x11,
                                0x70 };
    const uint8_t  masked[] = { 0x88, 0x82, 0x37, 0xfa, 0x21, 0x3d };

    n = vmess_ws_frame_header(h, 1, VMESS_WS_BINARY, 5, NULL);
    ok(unit_mem_eq(h, n, h5, sizeof(h5)), "server header, 5 bytes");

    n = vmess_ws_frame_header(h, 1, VMESS_WS_PING, 125, NULL);
    ok(unit_mem_eq(h, n, h125, sizeof(h125)), "server header, 125 bytes");

    n = vmess_ws_frame_header(h, 1, VMESS_WS_BINARY, 300, NULL);
    ok(unit_mem_eq(h, n, h300, sizeof(h300)), "server header, 16-bit");

    n = vmess_ws_frame_header(h, 0, VMESS_WS_BINARY, 65535, NULL);
    ok(unit_mem_eq(h, n, h65535, sizeof(h65535)),
       "server header, 65535 bytes, no FIN");

    n = vmess_ws_frame_header(h, 1, VMESS_WS_BINARY, 70000, NULL);
    ok(unit_mem_eq(h, n, h70000, sizeof(h70000)), "server header, 64-bit");

    n = vmess_ws_frame_header(h, 1, VMESS_WS_CLOSE, 2, test_mask);
    ok(unit_mem_eq(h, n, masked, sizeof(masked)), "client header, masked");

    ok(vmess_ws_frame_header_len(0, 0) == 2
       && vmess_ws_frame_header_len(125, 0) == 2
       && vmess_ws_frame_header_len(126, 0) == 4
       && vmess_ws_frame_header_len(65535, 0) == 4
       && vmess_ws_frame_header_len(65536, 0) == 10
       && vmess_ws_frame_header_len(125, 1) == 6
       && vmess_ws_frame_header_len(65536, 1) == 14,
       "header sizes");
}


/* 7-, 16- and 64-bit lengths, the payload back unmasked */

static void
test_lengths(void)
{
    size_t          i, k, len, sizes[] = { 0, 1, 125, 126, 300, 65535,
                                           65536, 70000 };
    uint8_t        *payload, *stream;
    test_result_t   r;

    payload = malloc(70000);
    stream = malloc(TEST_STREAM_MAX);

    for (i = 0; i < 70000; i++) {
        payload[i] = (uint8_t) (i * 7 + 3);
    }

    for (k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        len = test_frame(stream, 1, VMESS_WS_BINARY, payload, sizes[k]);

        ok(len == vmess_ws_frame_header_len(sizes[k], 1) + sizes[k],
           "frame of %zu bytes: size", sizes[k]);

        test_unframe(stream, len, 0, &r);
        ok(r.rc == VMESS_OK
           && unit_mem_eq(r.out, r.out_len, payload, sizes[k]),
           "frame of %zu bytes: payload", sizes[k]);
        ok(!r.ws.in_payload && r.ws.hlen == 0 && !r.ws.in_message,
           "frame of %zu bytes: at a frame boundary after it", sizes[k]);
        free(r.out);
    }

    free(stream);
    free(payload);
}


/* a message in three fragments with a ping and a pong between them */

static void
test_fragments_and_control(void)
{
    size_t          len;
    uint8_t         stream[256];
    test_result_t   r;

    len = test_frame(stream, 0, VMESS_WS_BINARY, (const uint8_t *) "abc", 3);
    len += test_frame(stream + len, 1, VMESS_WS_PING,
                      (const uint8_t *) "hello", 5);
    len += test_frame(stream + len, 0, VMESS_WS_CONT,
                      (const uint8_t *) "defg", 4);
    len += test_frame(stream + len, 1, VMESS_WS_PONG,
                      (const uint8_t *) "x", 1);
    len += test_frame(stream + len, 1, VMESS_WS_CONT,
                      (const uint8_t *) "h", 1);

    test_unframe(stream, len, 0, &r);

    ok(r.rc == VMESS_OK && unit_mem_eq(r.out, r.out_len, "abcdefgh", 8),
       "fragmented message: the data frames' payload only");
    ok(r.ws.reply_opcode == VMESS_WS_PONG
       && unit_mem_eq(r.ws.reply, r.ws.reply_len, "hello", 5),
       "ping: a pong with its payload queued, the pong ignored");
    ok(!r.ws.in_message && !r.ws.closed, "message ended, not closed");
    free(r.out);

    /* the latest ping wins */

    len = test_frame(stream, 1, VMESS_WS_PING, (const uint8_t *) "one", 3);
    len += test_frame(stream + len, 1, VMESS_WS_PING, NULL, 0);

    test_unframe(stream, len, 0, &r);
    ok(r.rc == VMESS_OK && r.out_len == 0
       && r.ws.reply_opcode == VMESS_WS_PONG && r.ws.reply_len == 0,
       "two pings: the empty second one answered");
    free(r.out);

    /* an empty data frame between fragments */

    len = test_frame(stream, 0, VMESS_WS_BINARY, NULL, 0);
    len += test_frame(stream + len, 1, VMESS_WS_CONT,
                      (const uint8_t *) "z", 1);

    test_unframe(stream, len, 0, &r);
    ok(r.rc == VMESS_OK && unit_mem_eq(r.out, r.out_len, "z", 1)
       && r.ws.reply_opcode == 0,
       "empty first fragment");
    free(r.out);
}


static void
test_close(void)
{
    size_t          len;
    uint8_t         stream[256];
    test_result_t   r;

    len = test_frame(stream, 1, VMESS_WS_BINARY, (const uint8_t *) "ab", 2);
    len += test_frame(stream + len, 1, VMESS_WS_CLOSE,
                      (const uint8_t *) "\x03\xe8" "bye", 5);
    len += test_frame(stream + len, 1, VMESS_WS_BINARY,
                      (const uint8_t *) "cd", 2);
    /* not even a valid frame: nothing after a close is read */
    stream[len++] = 0x81;
    stream[len++] = 0x00;

    test_unframe(stream, len, 0, &r);
    ok(r.rc == VMESS_OK && unit_mem_eq(r.out, r.out_len, "ab", 2),
       "close: data before it kept, everything after it dropped");
    ok(r.ws.closed && r.ws.reply_opcode == VMESS_WS_CLOSE
       && unit_mem_eq(r.ws.reply, r.ws.reply_len, "\x03\xe8", 2),
       "close: its status code echoed, without the reason");
    free(r.out);

    len = test_frame(stream, 1, VMESS_WS_CLOSE, NULL, 0);

    test_unframe(stream, len, 0, &r);
    ok(r.rc == VMESS_OK && r.ws.closed
       && r.ws.reply_opcode == VMESS_WS_CLOSE && r.ws.reply_len == 0,
       "close without a status: an empty close echoed");
    free(r.out);
}


static void
test_in_place(void)
{
    size_t      len, n;
    uint8_t     stream[512], payload[300];
    vmess_ws_t  ws;

    memset(payload, 'p', sizeof(payload));
    memcpy(payload, "first", 5);

    len = test_frame(stream, 1, VMESS_WS_BINARY, payload, 300);
    len += test_frame(stream + len, 1, VMESS_WS_BINARY,
                      (const uint8_t *) "second", 6);

    vmess_ws_init(&ws, TEST_MAX_FRAME);

    ok(vmess_ws_unframe(&ws, stream, len, stream, &n) == VMESS_OK
       && n == 306 && memcmp(stream, payload, 300) == 0
       && memcmp(stream + 300, "second", 6) == 0,
       "unframed in place");
}


static void
test_refused(void)
{
    size_t          len, i;
    uint8_t         stream[512], big[200];
    test_result_t   r;
    vmess_ws_t      ws;

    struct {
        const char             *name;
        uint8_t                 h0;
        int                     rc;
    } bad[] = {
        { "RSV1",            0xc2, VMESS_ERR_WS_RESERVED },
        { "RSV3",            0x92, VMESS_ERR_WS_RESERVED },
        { "text",            0x81, VMESS_ERR_WS_TEXT },
        { "opcode 3",        0x83, VMESS_ERR_WS_OPCODE },
        { "opcode 0xb",      0x8b, VMESS_ERR_WS_OPCODE },
        { "fragmented ping", 0x09, VMESS_ERR_WS_CONTROL },
        { "continuation",    0x80, VMESS_ERR_WS_CONTINUATION },
    };

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        len = test_frame(stream, 1, VMESS_WS_BINARY,
                         (const uint8_t *) "x", 1);
        stream[0] = bad[i].h0;

        test_unframe(stream, len, 0, &r);
        ok(r.rc == bad[i].rc, "%s: %s", bad[i].name, vmess_strerror(r.rc));
        free(r.out);
    }

    /* unmasked frames, as a server sends them: the header is read as if
     * it had a mask, so the refusal comes with its 6th byte */

    memcpy(stream, "\x82\x04" "data", 6);

    test_unframe(stream, 5, 0, &r);
    ok(r.rc == VMESS_OK && r.out_len == 0,
       "unmasked, 5 bytes: not yet refused");
    free(r.out);

    test_unframe(stream, 6, 0, &r);
    ok(r.rc == VMESS_ERR_WS_UNMASKED, "unmasked: %s", vmess_strerror(r.rc));
    free(r.out);

    /* reserved bits are reported before the missing mask */

    stream[0] = 0xa2;
    test_unframe(stream, 6, 0, &r);
    ok(r.rc == VMESS_ERR_WS_RESERVED, "RSV2, unmasked: reserved first");
    free(r.out);

    memset(big, 'b', sizeof(big));
    len = test_frame(stream, 1, VMESS_WS_PING, big, 126);
    test_unframe(stream, len, 0, &r);
    ok(r.rc == VMESS_ERR_WS_CONTROL, "ping of 126 bytes: %s",
       vmess_strerror(r.rc));
    free(r.out);

    len = test_frame(stream, 0, VMESS_WS_BINARY, big, 1);
    len += test_frame(stream + len, 1, VMESS_WS_BINARY, big, 1);
    test_unframe(stream, len, 0, &r);
    ok(r.rc == VMESS_ERR_WS_UNFINISHED
       && unit_mem_eq(r.out, r.out_len, "b", 1),
       "binary inside a message: %s, after the first fragment's payload",
       vmess_strerror(r.rc));
    free(r.out);

    /* max_frame: the length is there for the log line */

    len = test_frame(stream, 1, VMESS_WS_BINARY, big, 101);
    vmess_ws_init(&ws, 100);
    ok(vmess_ws_unframe(&ws, stream, len, stream, &i)
       == VMESS_ERR_WS_TOO_LARGE && ws.left == 101,
       "frame over max_frame: refused with its length");

    vmess_ws_init(&ws, 101);
    ok(vmess_ws_unframe(&ws, stream, len, stream, &i) == VMESS_OK
       && i == 101, "frame of max_frame bytes: read");

    /* a header announcing 2^63 + 1 bytes */

    stream[0] = 0x82;
    stream[1] = 0xff;
    memcpy(stream + 2, "\x80\0\0\0\0\0\0\x01", 8);
    memcpy(stream + 10, test_mask, 4);
    vmess_ws_init(&ws, TEST_MAX_FRAME);
    ok(vmess_ws_unframe(&ws, stream, 14, stream, &i)
       == VMESS_ERR_WS_TOO_LARGE && ws.left == 0x8000000000000001ULL,
       "64-bit length with the top bit set: too large");

    /* refused frames are not reported before their header is whole */

    vmess_ws_init(&ws, TEST_MAX_FRAME);
    stream[0] = 0x81;
    stream[1] = 0xfe;
    ok(vmess_ws_unframe(&ws, stream, 2, stream, &i) == VMESS_OK && i == 0,
       "text frame, 2 of its 8 header bytes: not yet refused");
}


/* a stream of every kind of frame: the same result however it is cut */

static void
test_every_split(void)
{
    int             same;
    size_t          len, cut, n, i, bytewise;
    uint8_t         stream[1024], payload[300], *out;
    vmess_ws_t      ws;
    test_result_t   whole, split;

    for (i = 0; i < sizeof(payload); i++) {
        payload[i] = (uint8_t) i;
    }

    len = test_frame(stream, 1, VMESS_WS_BINARY, payload, 5);
    len += test_frame(stream + len, 0, VMESS_WS_BINARY, payload + 5, 300 - 5);
    len += test_frame(stream + len, 1, VMESS_WS_PING,
                      (const uint8_t *) "ping!", 5);
    len += test_frame(stream + len, 1, VMESS_WS_CONT, payload, 0);
    len += test_frame(stream + len, 1, VMESS_WS_PONG, NULL, 0);
    len += test_frame(stream + len, 1, VMESS_WS_BINARY, payload, 126);
    len += test_frame(stream + len, 1, VMESS_WS_CLOSE,
                      (const uint8_t *) "\x03\xe9", 2);
    len += test_frame(stream + len, 1, VMESS_WS_TEXT, payload, 3);

    test_unframe(stream, len, 0, &whole);
    ok(whole.rc == VMESS_OK && whole.out_len == 300 + 126
       && whole.ws.closed && whole.ws.reply_opcode == VMESS_WS_CLOSE,
       "mixed stream read whole");

    same = 1;

    for (cut = 1; cut < len; cut++) {
        test_unframe(stream, len, cut, &split);

        if (!test_same(&whole, &split)) {
            unit_diag("different when cut at %zu", cut);
            same = 0;
        }

        free(split.out);
    }

    ok(same, "mixed stream cut at each of its %zu boundaries", len - 1);

    /* one byte a call, the same */

    vmess_ws_init(&ws, TEST_MAX_FRAME);
    out = malloc(len);
    bytewise = 0;

    for (i = 0; i < len; i++) {
        if (vmess_ws_unframe(&ws, stream + i, 1, out + bytewise, &n)
            != VMESS_OK)
        {
            break;
        }

        bytewise += n;
    }

    ok(i == len && unit_mem_eq(out, bytewise, whole.out, whole.out_len)
       && ws.closed, "mixed stream one byte a call");

    free(out);
    free(whole.out);

    /* an error found at the same frame wherever the cut */

    len = test_frame(stream, 1, VMESS_WS_BINARY, payload, 200);
    len += test_frame(stream + len, 1, VMESS_WS_TEXT, payload, 2);

    test_unframe(stream, len, 0, &whole);
    same = (whole.rc == VMESS_ERR_WS_TEXT);

    for (cut = 1; cut < len; cut++) {
        test_unframe(stream, len, cut, &split);
        same = same && split.rc == VMESS_ERR_WS_TEXT;
        free(split.out);
    }

    ok(same, "text frame after a binary one refused at every cut");
    free(whole.out);
}


int
main(void)
{
    test_header_writer();
    test_lengths();
    test_fragments_and_control();
    test_close();
    test_in_place();
    test_refused();
    test_every_split();

    return unit_done();
}
