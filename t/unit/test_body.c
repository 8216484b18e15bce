/*
 * Body codec and response header: every bodies.json stream decoded and
 * re-encoded byte for byte (whole, byte by byte, random pieces), by the
 * copying and the in-place calls alike, and tampered with; round trips
 * over security x options x command, both ways; error paths, the
 * switch-account command, and a throughput figure.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "vmess.h"
#include "unit.h"


#define TEST_PIECES         256
#define TEST_CHUNKS         64
#define TEST_SLACK          (2 * VMESS_CHUNK_MAX + 1024)

#define TEST_FEED_WHOLE     0
#define TEST_FEED_BYTES     1
#define TEST_FEED_RANDOM    2

/* how a stream is opened */
#define TEST_COPY           0   /* vmess_body_open into the sink */
#define TEST_INPLACE_GLUE   1   /* in place, stage 0: the window grows */
#define TEST_INPLACE_STAGE  2   /* in place, stage 1 */
#define TEST_INPLACE_MIXED  3   /* in place, stage 0 or 1 at random */

/* where the plaintext of an in-place pattern must be */
#define TEST_IN_INPUT       0   /* in the input; staging never set */
#define TEST_IN_STAGING     1   /* every chunk gathered in staging */
#define TEST_IN_EITHER      2

#define TEST_INPLACE_N      (sizeof(test_inplace) / sizeof(test_inplace[0]))


typedef struct {
    uint8_t        *buf;
    size_t          len;
    size_t          cap;
    size_t          n;                      /* pieces produced */
    size_t          ends[TEST_PIECES];      /* end of each piece in buf */
    size_t          from_staging;           /* pieces opened in staging */
    int             staging_asked;
} test_sink_t;

typedef struct {
    size_t          n;                      /* data chunks */
    uint8_t        *plain[TEST_CHUNKS];
    size_t          plain_len[TEST_CHUNKS];
    int             end;                    /* end marker expected */
    uint8_t        *all;                    /* the writes, concatenated */
    size_t          all_len;
    uint8_t        *stream;
    size_t          stream_len;
    size_t          header_len;             /* response header bytes */
} test_expect_t;

typedef struct {
    int             feed;                   /* TEST_FEED_* */
    int             reader;                 /* TEST_COPY, TEST_INPLACE_* */
    int             where;                  /* TEST_IN_* */
    const char     *name;
} test_pattern_t;


static uint64_t test_rand(void);
static void test_fill(uint8_t *p, size_t len);
static int test_case_session(size_t i, vmess_session_t *s);
static int test_expect_load(size_t i, int dir, test_expect_t *e);
static void test_expect_free(test_expect_t *e);
static uint8_t *test_dup(const uint8_t *p, size_t len);
static int test_inside(const uint8_t *p, size_t n, const uint8_t *buf,
    size_t len);
static void test_sink_init(test_sink_t *sink, size_t cap);
static int test_sink_take(test_sink_t *sink, int chunked, size_t made,
    int partial);
static size_t test_piece(int mode, size_t left);
static int test_seal(vmess_body_t *b, int inplace, const uint8_t *in,
    size_t len, const uint8_t *pad, uint8_t *out, size_t cap,
    size_t *written);
static int test_feed(vmess_body_t *b, const uint8_t *in, size_t len,
    test_sink_t *sink, uint8_t *staging);
static int test_decode(vmess_body_t *b, const uint8_t *wire, size_t len,
    int mode, test_sink_t *sink, uint8_t *staging);
static int test_decode_inplace(vmess_body_t *b, uint8_t *wire, size_t len,
    int mode, int reader, test_sink_t *sink, uint8_t *staging);
static int test_stays_failed(vmess_body_t *b, int reader);
static int test_header_open(vmess_body_t *b, uint8_t v, const uint8_t *in,
    size_t len, size_t want, int mode, size_t *consumed);
static int test_pieces_match(const test_sink_t *sink, const test_expect_t *e,
    int chunked, int eof, const char *what);
static int test_vector_open(vmess_body_t *b, const vmess_session_t *s,
    int dir, const test_expect_t *e, uint8_t *wire, int mode, int reader,
    test_sink_t *sink, uint8_t *staging);
static void test_vectors_decode(void);
static int test_inplace_where(const vmess_body_t *b, const test_sink_t *sink,
    int where);
static void test_vector_inplace(const char *name, const vmess_session_t *s,
    int dir, const test_expect_t *e, uint8_t *staging);
static void test_vector_tampered(size_t i, const char *name,
    const vmess_session_t *s, int dir, const test_expect_t *e,
    uint8_t *staging);
static int test_vector_seal(size_t i, int dir, int inplace, uint8_t *out,
    size_t cap, size_t *len);
static void test_vectors_encode(void);
static void test_round_trips(void);
static void test_round_trip(const vmess_session_t *s, int dir, int inplace,
    uint8_t *staging);
static void test_errors(void);
static void test_nonce_wrap(uint8_t *staging);
static void test_switch_account(void);
static void test_switch_account_vectors(void);
static double test_now(void);
static void test_speed(void);


static uint64_t  test_rng = 0x9e3779b97f4a7c15ULL;

static const char  *test_dirs[] = { "request", "response" };
static const char  *test_modes[] = { "whole", "byte by byte", "random" };

static const test_pattern_t  test_inplace[] = {
    { TEST_FEED_WHOLE, TEST_INPLACE_GLUE, TEST_IN_INPUT, "whole, stage 0" },
    { TEST_FEED_BYTES, TEST_INPLACE_STAGE, TEST_IN_STAGING,
      "byte by byte, stage 1" },
    { TEST_FEED_BYTES, TEST_INPLACE_GLUE, TEST_IN_INPUT,
      "byte by byte, glued" },
    { TEST_FEED_RANDOM, TEST_INPLACE_GLUE, TEST_IN_INPUT, "random, glued" },
    { TEST_FEED_RANDOM, TEST_INPLACE_MIXED, TEST_IN_EITHER,
      "random, stage 0/1 mixed" }
};


static uint64_t
test_rand(void)
{
    test_rng ^= test_rng << 13;
    test_rng ^= test_rng >> 7;
    test_rng ^= test_rng << 17;

    return test_rng;
}


static void
test_fill(uint8_t *p, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        p[i] = (uint8_t) test_rand();
    }
}


static int
test_case_session(size_t i, vmess_session_t *s)
{
    const char  *mode;

    memset(s, 0, sizeof(vmess_session_t));

    mode = vec_str("bodies.cases.%zu.header_mode", i);
    if (mode == NULL) {
        return -1;
    }

    s->legacy_header = strcmp(mode, "legacy") == 0;
    s->security = (uint8_t) vec_int("bodies.cases.%zu.security", i);
    s->options = (uint8_t) strtoul(vec_str("bodies.cases.%zu.option", i),
                                   NULL, 16);
    s->command = (uint8_t) vec_int("bodies.cases.%zu.command", i);
    s->response_v = (uint8_t) strtoul(
                        vec_str("bodies.cases.%zu.response_v", i), NULL, 16);

    if (unit_hex_decode(vec_str("bodies.cases.%zu.request_body_key", i),
                        s->req_key, 16) != 16
        || unit_hex_decode(vec_str("bodies.cases.%zu.request_body_iv", i),
                           s->req_iv, 16) != 16
        || unit_hex_decode(vec_str("bodies.cases.%zu.response_body_key", i),
                           s->resp_key, 16) != 16
        || unit_hex_decode(vec_str("bodies.cases.%zu.response_body_iv", i),
                           s->resp_iv, 16) != 16)
    {
        return -1;
    }

    return 0;
}


static int
test_expect_load(size_t i, int dir, test_expect_t *e)
{
    size_t       j, k, n, len, writes;
    uint8_t     *p;
    const char  *d, *name;

    memset(e, 0, sizeof(test_expect_t));
    d = test_dirs[dir];

    n = (size_t) vec_int("bodies.cases.%zu.%s_chunks.count", i, d);

    for (j = 0; j < n && e->n < TEST_CHUNKS; j++) {
        if (vec_int("bodies.cases.%zu.%s_chunks.%zu.end_marker", i, d, j)
            == 1)
        {
            e->end = 1;
            continue;
        }

        e->plain[e->n] = vec_hex(&e->plain_len[e->n],
                                 "bodies.cases.%zu.%s_chunks.%zu.plaintext",
                                 i, d, j);
        if (e->plain[e->n] == NULL) {
            return -1;
        }

        e->n++;
    }

    writes = (size_t) vec_int("bodies.cases.%zu.%s_writes.count", i, d);
    e->all = malloc(65536);
    if (e->all == NULL) {
        return -1;
    }

    for (k = 0; k < writes; k++) {
        name = vec_str("bodies.cases.%zu.%s_writes.%zu", i, d, k);
        p = vec_hex(&len, "bodies.payloads.%s", name);
        if (p == NULL || e->all_len + len > 65536) {
            free(p);
            return -1;
        }

        memcpy(e->all + e->all_len, p, len);
        e->all_len += len;
        free(p);
    }

    e->stream = vec_hex(&e->stream_len, "bodies.cases.%zu.%s_stream", i, d);
    e->header_len = dir == VMESS_DIR_RESPONSE
        ? (size_t) vec_int("bodies.cases.%zu.response_header_len", i) : 0;

    return e->stream != NULL && e->header_len <= e->stream_len ? 0 : -1;
}


static void
test_expect_free(test_expect_t *e)
{
    size_t  j;

    for (j = 0; j < e->n; j++) {
        free(e->plain[j]);
    }

    free(e->all);
    free(e->stream);
}


static uint8_t *
test_dup(const uint8_t *p, size_t len)
{
    uint8_t  *d;

    d = malloc(len ? len : 1);
    if (d != NULL && len > 0) {
        memcpy(d, p, len);
    }

    return d;
}


/* p[0..n) lies within buf[0..len) */

static int
test_inside(const uint8_t *p, size_t n, const uint8_t *buf, size_t len)
{
    uintptr_t  at, start;

    at = (uintptr_t) p;
    start = (uintptr_t) buf;

    return at >= start && at - start <= len && n <= len - (at - start);
}


static void
test_sink_init(test_sink_t *sink, size_t cap)
{
    memset(sink, 0, sizeof(test_sink_t));
    sink->buf = malloc(cap);
    sink->cap = cap;
}


/* made bytes of plaintext were put at sink->buf + sink->len */

static int
test_sink_take(test_sink_t *sink, int chunked, size_t made, int partial)
{
    if (!chunked || partial) {
        /* a raw stream has no boundaries to keep; a part of a chunk ends
         * none */
        sink->len += made;
        return VMESS_OK;
    }

    if (sink->n == TEST_PIECES) {
        return VMESS_ERR_INVALID;
    }

    sink->len += made;
    sink->ends[sink->n++] = sink->len;

    return VMESS_OK;
}


/* the size of the next piece of input, 1..left */

static size_t
test_piece(int mode, size_t left)
{
    size_t  n;

    switch (mode) {
    case TEST_FEED_WHOLE:
        n = left;
        break;
    case TEST_FEED_BYTES:
        n = 1;
        break;
    default:
        n = 1 + test_rand() % (test_rand() % 4 == 0 ? 5000 : 40);
        break;
    }

    return n < left ? n : left;
}


/*
 * vmess_body_seal, or vmess_body_seal_inplace on a copy of in (exactly
 * len bytes, as are head and tail exactly their documented maximum, so
 * that ASan sees any write past them), its head || data || tail put in
 * out: the two must give the same wire bytes.
 */

static int
test_seal(vmess_body_t *b, int inplace, const uint8_t *in, size_t len,
    const uint8_t *pad, uint8_t *out, size_t cap, size_t *written)
{
    int       rc;
    size_t    head_len, tail_len;
    uint8_t  *data, *head, *tail;

    if (!inplace) {
        return vmess_body_seal(b, in, len, pad, out, cap, written);
    }

    *written = 0;

    data = test_dup(in, len);
    head = malloc(VMESS_CHUNK_HEAD_MAX);
    tail = malloc(VMESS_CHUNK_TAIL_MAX);

    rc = vmess_body_seal_inplace(b, data, len, pad, head, &head_len, tail,
                                 &tail_len);

    if (rc == VMESS_OK
        && (head_len > VMESS_CHUNK_HEAD_MAX || tail_len > VMESS_CHUNK_TAIL_MAX
            || head_len + tail_len > vmess_body_overhead(b)))
    {
        unit_diag("in place: head %zu, tail %zu bytes, overhead %zu",
                  head_len, tail_len, vmess_body_overhead(b));
        rc = VMESS_ERR_INVALID;
    }

    if (rc == VMESS_OK && head_len + len + tail_len > cap) {
        rc = VMESS_ERR_NO_SPACE;
    }

    if (rc == VMESS_OK) {
        memcpy(out, head, head_len);
        memcpy(out + head_len, data, len);
        memcpy(out + head_len + len, tail, tail_len);
        *written = head_len + len + tail_len;
    }

    free(data);
    free(head);
    free(tail);

    return rc;
}


/* one piece of input, opened until it is all consumed */

static int
test_feed(vmess_body_t *b, const uint8_t *in, size_t len, test_sink_t *sink,
    uint8_t *staging)
{
    int     rc;
    size_t  off, used, made;

    off = 0;

    for ( ;; ) {
        rc = vmess_body_open(b, in + off, len - off, &used,
                             sink->buf + sink->len, sink->cap - sink->len,
                             &made);
        off += used;

        if (rc == VMESS_NEED_STAGING) {
            sink->staging_asked++;
            vmess_body_set_staging(b, staging, VMESS_STAGING_SIZE);
            continue;
        }

        if (rc == VMESS_AGAIN) {
            return off == len ? VMESS_OK : VMESS_ERR_INVALID;
        }

        if (rc != VMESS_OK) {
            return rc;
        }

        if (made > 0) {
            rc = test_sink_take(sink, b->chunked, made, 0);
            if (rc != VMESS_OK) {
                return rc;
            }

        } else if (used == 0) {
            /* no progress: only legal once the stream ended */
            return b->eof && off == len ? VMESS_OK : VMESS_ERR_INVALID;
        }

        if (off == len) {
            return VMESS_OK;
        }
    }
}


static int
test_decode(vmess_body_t *b, const uint8_t *wire, size_t len, int mode,
    test_sink_t *sink, uint8_t *staging)
{
    int     rc;
    size_t  pos, n;

    for (pos = 0; pos < len; pos += n) {
        n = test_piece(mode, len - pos);

        rc = test_feed(b, wire + pos, n, sink, staging);
        if (rc != VMESS_OK) {
            return rc;
        }
    }

    return VMESS_OK;
}


/*
 * The in-place reader as a caller with one contiguous receive buffer
 * drives it: wire (writable, opened where it lies) arrives in pieces and
 * whatever a call leaves unconsumed stays in the window, which grows by
 * a piece after each VMESS_AGAIN.  Checks the contract of every return:
 * VMESS_AGAIN leaves only the data of a chunk that does not fit yet
 * (fewer bytes than vmess_body_pending) and only with stage 0; each
 * plaintext lies in the bytes its call consumed, or in staging; a raw
 * stream is decrypted all where it lies.  In random pieces the window
 * sometimes grows to exactly what vmess_body_pending asks for, when the
 * chunk must open and end the window, or to one byte less, when it must
 * not.  VMESS_AGAIN when the input ran out with bytes left unconsumed.
 */

static int
test_decode_inplace(vmess_body_t *b, uint8_t *wire, size_t len, int mode,
    int reader, test_sink_t *sink, uint8_t *staging)
{
    int       rc, stage, short_by, partial;
    size_t    pos, end, left, used, made, pending;
    uint8_t  *plain;

    pos = 0;
    end = 0;
    rc = VMESS_AGAIN;

    for ( ;; ) {
        short_by = -1;

        if (rc == VMESS_AGAIN || pos == end) {
            if (end == len) {
                return pos == len ? VMESS_OK : VMESS_AGAIN;
            }

            pending = vmess_body_pending(b);

            if (mode == TEST_FEED_RANDOM && pending > 0
                && pending <= len - pos && test_rand() % 2)
            {
                short_by = pos + pending - 1 > end && test_rand() % 2;
                end = pos + pending - short_by;

            } else {
                end += test_piece(mode, len - end);
            }
        }

        switch (reader) {
        case TEST_INPLACE_GLUE:
            stage = 0;
            break;
        case TEST_INPLACE_STAGE:
            stage = 1;
            break;
        default:
            stage = (int) (test_rand() % 2);
            break;
        }

        left = end - pos;
        rc = vmess_body_open_inplace(b, wire + pos, left, stage, &used,
                                     &plain, &made);

        if (used > left || (rc != VMESS_OK && made != 0)) {
            unit_diag("in place: rc %d consumed %zu of %zu, produced %zu",
                      rc, used, left, made);
            return VMESS_ERR_INVALID;
        }

        /* security none over a stream passes on a chunk's data as it
         * comes */
        partial = rc == VMESS_OK && b->chunked && vmess_body_pending(b) > 0;

        if (partial
            && (!b->bare || made == 0 || used != left
                || !test_inside(plain, made, wire + pos, used)))
        {
            unit_diag("in place: part of a chunk, security %d, produced %zu,"
                      " consumed %zu of %zu", b->security, made, used, left);
            return VMESS_ERR_INVALID;
        }

        if ((short_by == 0
             && (rc == VMESS_AGAIN || (rc == VMESS_OK && used != left)))
            || (short_by == 1 && rc != VMESS_AGAIN
                && rc != VMESS_NEED_STAGING && !partial))
        {
            unit_diag("in place: window of pending %s: rc %d, consumed %zu"
                      " of %zu", short_by ? "- 1" : "bytes", rc, used, left);
            return VMESS_ERR_INVALID;
        }

        if (rc == VMESS_NEED_STAGING) {
            sink->staging_asked++;

            if (!stage || sink->staging_asked > 1) {
                unit_diag("in place: staging asked for with stage %d, %d"
                          " times", stage, sink->staging_asked);
                return VMESS_ERR_INVALID;
            }

            vmess_body_set_staging(b, staging, VMESS_STAGING_SIZE);
            pos += used;
            continue;
        }

        if (rc == VMESS_AGAIN) {
            if (used != left
                && (stage || left - used >= vmess_body_pending(b)))
            {
                unit_diag("in place: AGAIN with %zu of %zu bytes left,"
                          " stage %d, pending %zu", left - used, left, stage,
                          vmess_body_pending(b));
                return VMESS_ERR_INVALID;
            }

            pos += used;
            continue;
        }

        if (rc != VMESS_OK) {
            return rc;
        }

        if (!b->chunked && (plain != wire + pos || used != left
                            || made != left))
        {
            unit_diag("in place: raw stream not opened all where it lies");
            return VMESS_ERR_INVALID;
        }

        if (made == 0 && !b->eof) {
            unit_diag("in place: OK without data before the end");
            return VMESS_ERR_INVALID;
        }

        if (made > 0) {
            if (test_inside(plain, made, staging, VMESS_STAGING_SIZE)) {
                sink->from_staging++;

            } else if (!test_inside(plain, made, wire + pos, used)) {
                unit_diag("in place: plaintext neither in the %zu bytes"
                          " consumed nor in staging", used);
                return VMESS_ERR_INVALID;
            }

            if (made > sink->cap - sink->len) {
                return VMESS_ERR_NO_SPACE;
            }

            memcpy(sink->buf + sink->len, plain, made);

            rc = test_sink_take(sink, b->chunked, made, partial);
            if (rc != VMESS_OK) {
                return rc;
            }
        }

        pos += used;
    }
}


/* after an error every call fails, taking and giving nothing */

static int
test_stays_failed(vmess_body_t *b, int reader)
{
    int       rc;
    size_t    used, made;
    uint8_t   byte, out[16];
    uint8_t  *plain;

    byte = 0;

    if (reader == TEST_COPY) {
        rc = vmess_body_open(b, &byte, 1, &used, out, sizeof(out), &made);

    } else {
        rc = vmess_body_open_inplace(b, &byte, 1, reader != TEST_INPLACE_GLUE,
                                     &used, &plain, &made);
    }

    return rc == VMESS_ERR_INVALID && used == 0 && made == 0;
}


/* the client's view: everything received so far, growing */

static int
test_header_open(vmess_body_t *b, uint8_t v, const uint8_t *in, size_t len,
    size_t want, int mode, size_t *consumed)
{
    int     rc, found;
    size_t  have;

    have = mode == TEST_FEED_WHOLE ? len : 0;

    for ( ;; ) {
        if (mode == TEST_FEED_BYTES) {
            have++;

        } else if (mode == TEST_FEED_RANDOM) {
            have += 1 + test_rand() % 7;
        }

        if (have > len) {
            have = len;
        }

        rc = vmess_response_header_open(b, v, in, have, consumed, NULL,
                                        &found);

        if (rc != VMESS_AGAIN) {
            return rc;
        }

        if (*consumed != 0 || have >= want || have == len) {
            return VMESS_ERR_INVALID;
        }
    }
}


static int
test_pieces_match(const test_sink_t *sink, const test_expect_t *e,
    int chunked, int eof, const char *what)
{
    int     same;
    size_t  j, start;

    if (!chunked) {
        return unit_mem_eq(sink->buf, sink->len, e->all, e->all_len);
    }

    same = sink->n == e->n && eof == e->end;
    if (!same) {
        unit_diag("%s: %zu chunks (want %zu), eof %d (want %d)", what,
                  sink->n, e->n, eof, e->end);
    }

    for (j = 0, start = 0; same && j < e->n; j++) {
        same = unit_mem_eq(sink->buf + start, sink->ends[j] - start,
                           e->plain[j], e->plain_len[j]);
        start = sink->ends[j];
    }

    return same;
}


/*
 * A case's stream of one direction through the fresh reader b (the
 * caller frees it): the response header, then the body, copied (reader
 * TEST_COPY) or opened in place in wire, a writable copy of the stream.
 */

static int
test_vector_open(vmess_body_t *b, const vmess_session_t *s, int dir,
    const test_expect_t *e, uint8_t *wire, int mode, int reader,
    test_sink_t *sink, uint8_t *staging)
{
    int     rc;
    size_t  used;

    rc = vmess_body_init(b, s, dir, 0);
    used = 0;

    if (rc == VMESS_OK && e->header_len > 0) {
        rc = test_header_open(b, s->response_v, wire, e->stream_len,
                              e->header_len, mode, &used);
        if (rc == VMESS_OK && used != e->header_len) {
            rc = VMESS_ERR_INVALID;
        }
    }

    if (rc != VMESS_OK) {
        return rc;
    }

    if (reader == TEST_COPY) {
        return test_decode(b, wire + used, e->stream_len - used, mode, sink,
                           staging);
    }

    return test_decode_inplace(b, wire + used, e->stream_len - used, mode,
                               reader, sink, staging);
}


static void
test_vectors_decode(void)
{
    int              rc, mode, dir;
    size_t           i, count;
    uint8_t         *staging;
    const char      *name;
    test_sink_t      sink;
    vmess_body_t     b;
    test_expect_t    e;
    vmess_session_t  s;

    count = (size_t) vec_int("bodies.cases.count");
    ok(count == 21, "21 body cases (%zu)", count);

    staging = malloc(VMESS_STAGING_SIZE);

    for (i = 0; i < count; i++) {
        name = vec_str("bodies.cases.%zu.name", i);

        for (dir = 0; dir < 2; dir++) {
            if (test_case_session(i, &s) != 0
                || test_expect_load(i, dir, &e) != 0)
            {
                ok(0, "%s %s: vectors readable", name, test_dirs[dir]);
                continue;
            }

            for (mode = 0; mode < 3; mode++) {
                test_sink_init(&sink, e.stream_len + 1024);

                rc = test_vector_open(&b, &s, dir, &e, e.stream, mode,
                                      TEST_COPY, &sink, staging);

                ok(rc == VMESS_OK
                   && test_pieces_match(&sink, &e, b.chunked, b.eof, name),
                   "%s %s decoded, %s (%zu chunks%s) rc %d", name,
                   test_dirs[dir], test_modes[mode], e.n,
                   e.end ? " + end" : "", rc);

                if (mode == TEST_FEED_BYTES && b.chunked) {
                    ok(sink.staging_asked == 1,
                       "%s %s: staging asked for once, lazily", name,
                       test_dirs[dir]);
                }

                if (mode == TEST_FEED_WHOLE) {
                    ok(sink.staging_asked == 0,
                       "%s %s: whole stream needs no staging", name,
                       test_dirs[dir]);
                }

                vmess_body_free(&b);
                free(sink.buf);
            }

            test_vector_inplace(name, &s, dir, &e, staging);
            test_vector_tampered(i, name, &s, dir, &e, staging);

            test_expect_free(&e);
        }
    }

    free(staging);
}


static int
test_inplace_where(const vmess_body_t *b, const test_sink_t *sink, int where)
{
    switch (where) {
    case TEST_IN_INPUT:
        return sink->staging_asked == 0 && b->staging == NULL
               && sink->from_staging == 0;

    case TEST_IN_STAGING:
        /* a raw stream has nothing to gather, nor has security none
         * over a stream, which passes data on as it comes */
        if (b->bare) {
            return sink->staging_asked == 0 && sink->from_staging == 0;
        }

        return b->chunked ? sink->staging_asked == 1
                            && sink->from_staging == sink->n
                          : sink->from_staging == 0;

    default:
        return 1;
    }
}


/* the stream opened in place by each pattern of test_inplace[] */

static void
test_vector_inplace(const char *name, const vmess_session_t *s, int dir,
    const test_expect_t *e, uint8_t *staging)
{
    int                    rc;
    size_t                 k;
    uint8_t               *wire;
    test_sink_t            sink;
    vmess_body_t           b;
    const test_pattern_t  *p;

    static const char  *wheres[] = {
        "all in the input, no staging", "all in staging", "input or staging"
    };

    static const char  *wheres_none[] = {
        "all in the input, no staging", "all in the input, as it comes",
        "input or staging"
    };

    for (k = 0; k < TEST_INPLACE_N; k++) {
        p = &test_inplace[k];
        wire = test_dup(e->stream, e->stream_len);
        test_sink_init(&sink, e->stream_len + 1024);

        rc = test_vector_open(&b, s, dir, e, wire, p->feed, p->reader, &sink,
                              staging);

        ok(rc == VMESS_OK
           && test_pieces_match(&sink, e, b.chunked, b.eof, name)
           && test_inplace_where(&b, &sink, p->where),
           "%s %s opened in place, %s (%zu chunks%s): %s, rc %d", name,
           test_dirs[dir], p->name, e->n, e->end ? " + end" : "",
           !b.chunked ? "raw, all where it lies"
           : b.bare ? wheres_none[p->where]
           : wheres[p->where], rc);

        vmess_body_free(&b);
        free(sink.buf);
        free(wire);
    }
}


/*
 * One byte flipped in what authenticates a random chunk (its ciphertext,
 * tag or FNV sum): the copying reader and every in-place pattern give the
 * chunks before it, fail with VMESS_ERR_BAD_AUTH, and fail every call
 * after that.  Chunk j starts after the header and j wire chunks of
 * len_size + L bytes.
 */

static void
test_vector_tampered(size_t i, const char *name, const vmess_session_t *s,
    int dir, const test_expect_t *e, uint8_t *staging)
{
    int                    rc, good;
    size_t                 j, k, count, at, off, l, pad_len, len_size;
    uint8_t                flip;
    uint8_t               *wire;
    const char            *d;
    test_sink_t            sink;
    vmess_body_t           b;
    test_expect_t          before;
    const test_pattern_t  *p;

    static const test_pattern_t  copied = {
        TEST_FEED_WHOLE, TEST_COPY, TEST_IN_EITHER, "copied, whole"
    };

    d = test_dirs[dir];

    rc = vmess_body_init(&b, s, dir, 0);
    good = rc == VMESS_OK && b.chunked && b.overhead > 0;
    len_size = b.len_size;
    vmess_body_free(&b);

    if (!good) {
        /* a raw stream or security none: nothing authenticates a chunk */
        return;
    }

    count = (size_t) vec_int("bodies.cases.%zu.%s_chunks.count", i, d);
    j = test_rand() % count;
    at = 0;
    off = e->header_len;

    for (k = 0; k < count; k++) {
        l = (size_t) vec_int("bodies.cases.%zu.%s_chunks.%zu.length", i, d,
                             k);

        if (k == j) {
            pad_len = (size_t) vec_int(
                          "bodies.cases.%zu.%s_chunks.%zu.padding_len", i, d,
                          k);
            at = off + len_size + test_rand() % (l - pad_len);
        }

        off += len_size + l;
    }

    if (off != e->stream_len) {
        ok(0, "%s %s: the chunk lengths add up to the stream", name, d);
        return;
    }

    flip = (uint8_t) (1 + test_rand() % 255);

    /* the data chunks before chunk j: the end marker comes last */
    before = *e;
    before.n = j < e->n ? j : e->n;
    before.end = 0;

    good = 1;

    for (k = 0; k <= TEST_INPLACE_N; k++) {
        p = k == 0 ? &copied : &test_inplace[k - 1];
        wire = test_dup(e->stream, e->stream_len);
        wire[at] ^= flip;
        test_sink_init(&sink, e->stream_len + 1024);

        rc = test_vector_open(&b, s, dir, e, wire, p->feed, p->reader, &sink,
                              staging);

        if (rc != VMESS_ERR_BAD_AUTH
            || !test_pieces_match(&sink, &before, 1, b.eof, name)
            || !test_stays_failed(&b, p->reader))
        {
            unit_diag("%s: rc %d, %zu chunks", p->name, rc, sink.n);
            good = 0;
        }

        vmess_body_free(&b);
        free(sink.buf);
        free(wire);
    }

    ok(good, "%s %s: byte %zu (chunk %zu of %zu) flipped: its %zu chunks"
       " before, then BAD_AUTH and INVALID, copied and in place", name, d,
       at, j, count, before.n);
}


/*
 * Case i's stream of one direction sealed again into out (cap bytes),
 * from its session, plaintexts and padding filler, by vmess_body_seal or
 * by vmess_body_seal_inplace; *len is what was written.
 */

static int
test_vector_seal(size_t i, int dir, int inplace, uint8_t *out, size_t cap,
    size_t *len)
{
    int              rc;
    size_t           j, n, chunks, writes, plen, written;
    uint8_t          pad[64];
    uint8_t         *plain, *fill;
    const char      *d;
    vmess_body_t     b;
    vmess_session_t  s;

    d = test_dirs[dir];
    n = 0;
    *len = 0;

    if (test_case_session(i, &s) != 0) {
        return VMESS_ERR_INVALID;
    }

    rc = vmess_body_init(&b, &s, dir, 0);

    if (rc == VMESS_OK && dir == VMESS_DIR_RESPONSE
        && vec_int("bodies.cases.%zu.response_header_len", i) > 0)
    {
        rc = vmess_response_header_seal(&b, s.response_v, NULL, out, cap, &n);
    }

    chunks = (size_t) vec_int("bodies.cases.%zu.%s_chunks.count", i, d);

    for (j = 0; rc == VMESS_OK && j < chunks; j++) {
        memset(pad, 0, sizeof(pad));
        fill = vec_hex(&plen, "bodies.cases.%zu.%s_chunks.%zu.padding",
                       i, d, j);
        if (fill != NULL && plen <= sizeof(pad)) {
            memcpy(pad, fill, plen);
        }

        free(fill);

        if (vec_int("bodies.cases.%zu.%s_chunks.%zu.end_marker", i, d, j)
            == 1)
        {
            rc = vmess_body_seal_end(&b, pad, out + n, cap - n, &written);

        } else {
            plain = vec_hex(&plen, "bodies.cases.%zu.%s_chunks.%zu.plaintext",
                            i, d, j);
            rc = test_seal(&b, inplace, plain, plen, pad, out + n, cap - n,
                           &written);
            free(plain);
        }

        n += written;
    }

    if (chunks == 0) {
        /* raw stream: each write goes out as is (or CFB'd) */
        writes = (size_t) vec_int("bodies.cases.%zu.%s_writes.count", i, d);

        for (j = 0; rc == VMESS_OK && j < writes; j++) {
            plain = vec_hex(&plen, "bodies.payloads.%s",
                            vec_str("bodies.cases.%zu.%s_writes.%zu",
                                    i, d, j));
            rc = test_seal(&b, inplace, plain, plen, NULL, out + n, cap - n,
                           &written);
            n += written;
            free(plain);
        }
    }

    vmess_body_free(&b);
    *len = n;

    return rc;
}


static void
test_vectors_encode(void)
{
    int          rc, dir, inplace;
    size_t       i, n, count, len;
    uint8_t     *out, *want;
    const char  *name, *d;

    count = (size_t) vec_int("bodies.cases.count");

    for (i = 0; i < count; i++) {
        name = vec_str("bodies.cases.%zu.name", i);

        for (dir = 0; dir < 2; dir++) {
            d = test_dirs[dir];
            want = vec_hex(&len, "bodies.cases.%zu.%s_stream", i, d);

            if (want == NULL) {
                ok(0, "%s %s: vectors readable", name, d);
                continue;
            }

            out = malloc(len + TEST_SLACK);

            for (inplace = 0; inplace < 2; inplace++) {
                rc = test_vector_seal(i, dir, inplace, out, len + TEST_SLACK,
                                      &n);

                ok(rc == VMESS_OK && unit_mem_eq(out, n, want, len),
                   "%s %s re-encoded byte for byte%s (%zu bytes) rc %d",
                   name, d, inplace ? " in place" : "", len, rc);
            }

            free(out);
            free(want);
        }
    }
}


/*
 * Writer and reader of one direction agree on: sizes up to the exact
 * 16-bit limit, a 16 KiB chunk, the end marker, random input pieces.
 * inplace: sealed and opened in place, glued (stage 0), so that chunks
 * of every size are opened where they lie.
 */

static void
test_round_trip(const vmess_session_t *s, int dir, int inplace,
    uint8_t *staging)
{
    int            rc, rc_big, eof;
    size_t         j, n, max, written, used, sizes[6];
    uint8_t       *data, *wire, *all;
    const char    *how;
    test_sink_t    sink;
    vmess_body_t   w, r;
    test_expect_t  e;

    data = malloc(6 * VMESS_CHUNK_MAX);
    all = malloc(6 * VMESS_CHUNK_MAX);
    wire = malloc(7 * (VMESS_CHUNK_MAX + VMESS_CHUNK_OVERHEAD_MAX));
    test_fill(data, 6 * VMESS_CHUNK_MAX);

    rc = vmess_body_init(&w, s, dir, 0);
    if (rc == VMESS_OK) {
        rc = vmess_body_init(&r, s, dir, 0);
    }

    how = inplace ? " in place" : "";

    ok(rc == VMESS_OK, "init sec %d opt %02x cmd %d %s %s%s", s->security,
       s->options, s->command, test_dirs[dir],
       s->legacy_header ? "legacy" : "aead", how);

    max = w.chunked ? VMESS_CHUNK_MAX - w.overhead - (w.padding ? 63 : 0)
                    : VMESS_CHUNK_MAX;

    sizes[0] = 1;
    sizes[1] = 100;
    sizes[2] = 16384;
    sizes[3] = max;
    sizes[4] = 2048;
    sizes[5] = 7;

    memset(&e, 0, sizeof(test_expect_t));
    n = 0;

    if (dir == VMESS_DIR_RESPONSE) {
        rc = vmess_response_header_seal(&w, s->response_v, NULL, wire,
                                        VMESS_RESPONSE_HEADER_MAX, &n);
    }

    for (j = 0; rc == VMESS_OK && j < 6; j++) {
        e.plain[j] = data + j * VMESS_CHUNK_MAX;
        e.plain_len[j] = sizes[j];
        e.n++;
        memcpy(all + e.all_len, e.plain[j], sizes[j]);
        e.all_len += sizes[j];

        rc = test_seal(&w, inplace, e.plain[j], sizes[j], data, wire + n,
                       sizes[j] + vmess_body_overhead(&w), &written);
        n += written;

        if (rc == VMESS_OK
            && written > sizes[j] + vmess_body_overhead(&w))
        {
            rc = VMESS_ERR_NO_SPACE;
        }
    }

    e.all = all;

    rc_big = test_seal(&w, inplace, data, max + 1, NULL, wire + n,
                       VMESS_CHUNK_MAX + VMESS_CHUNK_OVERHEAD_MAX, &written);

    if (rc == VMESS_OK) {
        rc = vmess_body_seal_end(&w, data, wire + n,
                                 VMESS_CHUNK_OVERHEAD_MAX, &written);
        n += written;
        e.end = w.chunked;
    }

    ok(rc == VMESS_OK && vmess_body_overhead(&w) <= VMESS_CHUNK_OVERHEAD_MAX,
       "sealed%s %zu bytes, overhead %zu", how, n, vmess_body_overhead(&w));

    if (w.chunked) {
        ok(rc_big == VMESS_ERR_INVALID, "a chunk of max + 1 (%zu) refused%s",
           max + 1, how);
    }

    used = 0;

    if (rc == VMESS_OK && dir == VMESS_DIR_RESPONSE) {
        rc = test_header_open(&r, s->response_v, wire, n, 1, TEST_FEED_WHOLE,
                              &used);
    }

    test_sink_init(&sink, 7 * VMESS_CHUNK_MAX);

    if (rc == VMESS_OK && inplace) {
        rc = test_decode_inplace(&r, wire + used, n - used, TEST_FEED_RANDOM,
                                 TEST_INPLACE_GLUE, &sink, staging);

    } else if (rc == VMESS_OK) {
        rc = test_decode(&r, wire + used, n - used, TEST_FEED_RANDOM, &sink,
                         staging);
    }

    eof = r.eof;

    ok(rc == VMESS_OK
       && test_pieces_match(&sink, &e, r.chunked, eof, "round trip")
       && (!inplace || test_inplace_where(&r, &sink, TEST_IN_INPUT)),
       "opened back%s: sec %d opt %02x cmd %d %s, max chunk %zu, rc %d",
       how, s->security, s->options, s->command, test_dirs[dir], max, rc);

    free(sink.buf);
    vmess_body_free(&w);
    vmess_body_free(&r);
    free(wire);
    free(all);
    free(data);
}


static void
test_round_trips(void)
{
    int              dir, inplace;
    size_t           si, oi, ci;
    uint8_t         *staging;
    vmess_session_t  s;

    static const uint8_t  secs[] = { 1, 3, 4, 5 };
    static const uint8_t  opts[] = { 0x00, 0x01, 0x05, 0x0d, 0x11, 0x1d };
    static const uint8_t  cmds[] = { 1, 2 };

    staging = malloc(VMESS_STAGING_SIZE);

    for (si = 0; si < sizeof(secs); si++) {
        for (oi = 0; oi < sizeof(opts); oi++) {
            for (ci = 0; ci < sizeof(cmds); ci++) {
                memset(&s, 0, sizeof(vmess_session_t));
                s.security = secs[si];
                s.options = opts[oi];
                s.command = cmds[ci];
                s.response_v = (uint8_t) test_rand();
                s.legacy_header = (si + oi + ci) % 2;
                test_fill(s.req_key, 16);
                test_fill(s.req_iv, 16);
                test_fill(s.resp_key, 16);
                test_fill(s.resp_iv, 16);

                for (dir = 0; dir < 2; dir++) {
                    for (inplace = 0; inplace < 2; inplace++) {
                        test_round_trip(&s, dir, inplace, staging);
                    }
                }
            }
        }
    }

    free(staging);
}


static void
test_errors(void)
{
    int              rc, i;
    size_t           n, m, used, made;
    uint8_t          data[256], wire[512], out[256], hdr[64];
    uint8_t         *staging;
    vmess_body_t     w, r;
    vmess_session_t  s;

    static const uint8_t  secs[] = { 3, 4, 1 };

    memset(&s, 0, sizeof(vmess_session_t));
    test_fill(s.req_key, 16);
    test_fill(s.req_iv, 16);
    test_fill(s.resp_key, 16);
    test_fill(s.resp_iv, 16);
    test_fill(data, sizeof(data));
    s.command = VMESS_CMD_TCP;
    s.response_v = 0x77;

    /* a flipped bit in a sealed chunk */
    for (i = 0; i < 3; i++) {
        s.security = secs[i];
        s.options = 0x05;

        vmess_body_init(&w, &s, VMESS_DIR_REQUEST, 0);
        vmess_body_init(&r, &s, VMESS_DIR_REQUEST, 0);
        rc = vmess_body_seal(&w, data, 100, NULL, wire, sizeof(wire), &n);
        wire[2 + 10] ^= 0x04;
        rc = rc == VMESS_OK
             ? vmess_body_open(&r, wire, n, &used, out, sizeof(out), &made)
             : rc;
        ok(rc == VMESS_ERR_BAD_AUTH && made == 0,
           "sec %d: flipped bit in sealed chunk -> BAD_AUTH (%d)",
           s.security, rc);
        rc = vmess_body_open(&r, wire, n, &used, out, sizeof(out), &made);
        ok(rc == VMESS_ERR_INVALID, "sec %d: failed stream stays failed",
           s.security);
        vmess_body_free(&w);
        vmess_body_free(&r);
    }

    /* a flipped bit in the 0x10 length field */
    s.security = VMESS_SEC_AES_128_GCM;
    s.options = 0x11;
    vmess_body_init(&w, &s, VMESS_DIR_RESPONSE, 0);
    vmess_body_init(&r, &s, VMESS_DIR_RESPONSE, 0);
    vmess_body_seal(&w, data, 100, NULL, wire, sizeof(wire), &n);
    ok(n == 18 + 100 + 16, "0x10 chunk is 18 + data + 16 bytes");
    wire[3] ^= 0x80;
    rc = vmess_body_open(&r, wire, n, &used, out, sizeof(out), &made);
    ok(rc == VMESS_ERR_BAD_AUTH, "flipped bit in 0x10 length -> BAD_AUTH");
    vmess_body_free(&w);
    vmess_body_free(&r);

    /* out too small: nothing of the chunk consumed, then it goes on */
    s.options = 0x0d;
    vmess_body_init(&w, &s, VMESS_DIR_REQUEST, 0);
    vmess_body_init(&r, &s, VMESS_DIR_REQUEST, 0);
    rc = vmess_body_seal(&w, data, 100, NULL, wire, 100 + 18 + 62, &n);
    ok(rc == VMESS_ERR_NO_SPACE && n == 0,
       "seal with cap below len + overhead -> NO_SPACE");
    rc = vmess_body_seal(&w, data, 100, NULL, wire, sizeof(wire), &n);
    m = 0;
    rc = vmess_body_open(&r, wire, n, &used, out, 99, &made);
    ok(rc == VMESS_ERR_NO_SPACE && used == 2 && made == 0,
       "open into 99 bytes of a 100-byte chunk -> NO_SPACE, only the length"
       " consumed (%zu)", used);
    m = used;
    rc = vmess_body_open(&r, wire + m, n - m, &used, out, 100, &made);
    ok(rc == VMESS_OK && m + used == n && made == 100
       && memcmp(out, data, 100) == 0, "then opened with enough room");
    vmess_body_free(&w);
    vmess_body_free(&r);

    /* a length below overhead + padding */
    s.options = 0x01;
    vmess_body_init(&r, &s, VMESS_DIR_REQUEST, 0);
    wire[0] = 0;
    wire[1] = 15;
    rc = vmess_body_open(&r, wire, 2, &used, out, sizeof(out), &made);
    ok(rc == VMESS_ERR_BAD_LENGTH, "L = 15 under a 16-byte tag -> BAD_LENGTH");
    vmess_body_free(&r);

    /* input after the end marker; staging asked for lazily */
    staging = malloc(VMESS_STAGING_SIZE);
    vmess_body_init(&w, &s, VMESS_DIR_REQUEST, 0);
    vmess_body_init(&r, &s, VMESS_DIR_REQUEST, 0);
    vmess_body_seal(&w, data, 50, NULL, wire, sizeof(wire), &n);
    rc = vmess_body_open(&r, wire, 30, &used, out, sizeof(out), &made);
    ok(rc == VMESS_NEED_STAGING && used == 2,
       "split chunk without staging -> NEED_STAGING after the length");
    vmess_body_set_staging(&r, staging, VMESS_STAGING_SIZE);
    rc = vmess_body_open(&r, wire + 2, 28, &used, out, sizeof(out), &made);
    ok(rc == VMESS_AGAIN && used == 28 && made == 0,
       "then the piece is staged -> AGAIN");
    rc = vmess_body_open(&r, wire + 30, n - 30, &used, out, sizeof(out),
                         &made);
    ok(rc == VMESS_OK && made == 50 && memcmp(out, data, 50) == 0,
       "and the chunk completes from staging");
    vmess_body_seal_end(&w, NULL, wire, sizeof(wire), &n);
    rc = vmess_body_open(&r, wire, n, &used, out, sizeof(out), &made);
    ok(rc == VMESS_OK && r.eof && made == 0 && used == n, "end marker");
    rc = vmess_body_open(&r, data, 1, &used, out, sizeof(out), &made);
    ok(rc == VMESS_ERR_BAD_LENGTH, "input after the end -> BAD_LENGTH");
    rc = vmess_body_seal(&w, data, 1, NULL, wire, sizeof(wire), &n);
    ok(rc == VMESS_ERR_INVALID, "seal after the end -> INVALID");
    vmess_body_free(&w);
    vmess_body_free(&r);

    /* bad sessions */
    s.options = 0x09;
    ok(vmess_body_init(&r, &s, VMESS_DIR_REQUEST, 0) == VMESS_ERR_BAD_OPTION,
       "0x08 without 0x04 -> BAD_OPTION");
    vmess_body_free(&r);
    s.options = 0x05;
    s.security = VMESS_SEC_AUTO;
    ok(vmess_body_init(&r, &s, VMESS_DIR_REQUEST, 0)
       == VMESS_ERR_UNSUPPORTED_SECURITY, "security 2 -> UNSUPPORTED");
    vmess_body_free(&r);
    s.security = VMESS_SEC_AES_128_GCM;

    /* response header: wrong V, bad tag, truncated */
    for (i = 0; i < 2; i++) {
        s.legacy_header = i;
        vmess_body_init(&w, &s, VMESS_DIR_RESPONSE, 0);
        vmess_body_init(&r, &s, VMESS_DIR_RESPONSE, 0);
        vmess_response_header_seal(&w, 0x77, NULL, hdr, sizeof(hdr), &n);
        ok(n == (i ? 4u : 38u), "%s response header is %zu bytes",
           i ? "legacy" : "aead", n);
        rc = vmess_response_header_open(&r, 0x78, hdr, n, &used, NULL, NULL);
        ok(rc == VMESS_ERR_BAD_RESPONSE && used == 0,
           "%s response header with wrong V -> BAD_RESPONSE",
           i ? "legacy" : "aead");
        vmess_body_free(&r);

        vmess_body_init(&r, &s, VMESS_DIR_RESPONSE, 0);
        rc = vmess_response_header_open(&r, 0x77, hdr, n - 1, &used, NULL,
                                        NULL);
        ok(rc == VMESS_AGAIN && used == 0, "%s header short by one -> AGAIN",
           i ? "legacy" : "aead");
        rc = vmess_response_header_open(&r, 0x77, hdr, n, &used, NULL, NULL);
        ok(rc == VMESS_OK && used == n, "%s header then opens",
           i ? "legacy" : "aead");
        vmess_body_free(&r);
        vmess_body_free(&w);
    }

    s.legacy_header = 0;
    vmess_body_init(&w, &s, VMESS_DIR_RESPONSE, 0);
    vmess_body_init(&r, &s, VMESS_DIR_RESPONSE, 0);
    vmess_response_header_seal(&w, 0x77, NULL, hdr, sizeof(hdr), &n);
    hdr[25] ^= 1;
    rc = vmess_response_header_open(&r, 0x77, hdr, n, &used, NULL, NULL);
    ok(rc == VMESS_ERR_BAD_AUTH, "aead response header bad tag -> BAD_AUTH");
    ok(vmess_response_header_open(&r, 0x77, hdr, 0, &used, NULL, NULL)
       == VMESS_AGAIN, "nothing yet -> AGAIN");
    vmess_body_free(&w);
    vmess_body_free(&r);

    s.options = 0x05;
    vmess_body_init(&w, &s, VMESS_DIR_REQUEST, 0);
    ok(vmess_response_header_seal(&w, 1, NULL, hdr, sizeof(hdr), &n)
       == VMESS_ERR_INVALID, "response header on the request codec refused");
    vmess_body_free(&w);

    test_nonce_wrap(staging);
    free(staging);
}


/*
 * 65536 one-byte chunks use counters 0..65535; the next one would reuse
 * counter 0.
 */

static void
test_nonce_wrap(uint8_t *staging)
{
    int              rc, strict, ok_all;
    size_t           j, n, pos, wlen, used, made, chunk;
    uint8_t          data[1], out[16];
    uint8_t         *wire;
    vmess_body_t     w, r;
    vmess_session_t  s;

    memset(&s, 0, sizeof(vmess_session_t));
    test_fill(s.req_key, 16);
    test_fill(s.req_iv, 16);
    s.security = VMESS_SEC_AES_128_GCM;
    s.options = 0x05;
    s.command = VMESS_CMD_TCP;

    chunk = 2 + 1 + 16;
    wlen = (65536 + 2) * chunk;
    wire = malloc(wlen);

    for (strict = 1; strict >= 0; strict--) {
        vmess_body_init(&w, &s, VMESS_DIR_REQUEST,
                        strict ? VMESS_BODY_STRICT_NONCE : 0);
        vmess_body_init(&r, &s, VMESS_DIR_REQUEST,
                        strict ? VMESS_BODY_STRICT_NONCE : 0);
        vmess_body_set_staging(&r, staging, VMESS_STAGING_SIZE);

        ok_all = 1;
        pos = 0;

        for (j = 0; j < 65536; j++) {
            data[0] = (uint8_t) j;
            rc = vmess_body_seal(&w, data, 1, NULL, wire + pos, chunk, &n);
            ok_all = ok_all && rc == VMESS_OK && n == chunk;
            pos += n;
        }

        ok(ok_all && w.wraps == 1 && w.count == 0,
           "%s: 65536 chunks sealed, counter back at 0",
           strict ? "strict" : "compatible");

        data[0] = 0xaa;
        rc = vmess_body_seal(&w, data, 1, NULL, wire + pos, chunk, &n);

        if (strict) {
            ok(rc == VMESS_ERR_NONCE_WRAP && n == 0,
               "strict: chunk 65537 not sealed -> NONCE_WRAP");
            ok(vmess_body_seal_end(&w, NULL, wire + pos, chunk, &n)
               == VMESS_ERR_NONCE_WRAP, "strict: nor the end marker");

            /* a compatible peer's chunk 65537 for the strict reader */
            vmess_body_free(&w);
            vmess_body_init(&w, &s, VMESS_DIR_REQUEST, 0);

            for (j = 0; j <= 65536; j++) {
                data[0] = (uint8_t) j;
                vmess_body_seal(&w, data, 1, NULL, wire + j * chunk, chunk,
                                &n);
            }

        } else {
            ok(rc == VMESS_OK, "compatible: chunk 65537 sealed");
            pos += n;
            rc = vmess_body_seal_end(&w, NULL, wire + pos, chunk, &n);
            pos += n;
            ok(rc == VMESS_OK, "compatible: end marker sealed");
        }

        ok_all = 1;

        for (j = 0; j < 65536; j++) {
            rc = vmess_body_open(&r, wire + j * chunk, chunk, &used, out,
                                 sizeof(out), &made);
            ok_all = ok_all && rc == VMESS_OK && made == 1
                     && out[0] == (uint8_t) j;
        }

        ok(ok_all && r.wraps == 1, "%s: 65536 chunks opened",
           strict ? "strict" : "compatible");

        rc = vmess_body_open(&r, wire + 65536 * chunk, chunk, &used, out,
                             sizeof(out), &made);

        if (strict) {
            ok(rc == VMESS_ERR_NONCE_WRAP && made == 0,
               "strict: chunk 65537 not opened -> NONCE_WRAP");

        } else {
            ok(rc == VMESS_OK && made == 1 && out[0] == 0xaa,
               "compatible: chunk 65537 opened after the wrap");
            rc = vmess_body_open(&r, wire + 65537 * chunk, chunk, &used, out,
                                 sizeof(out), &made);
            ok(rc == VMESS_OK && r.eof && r.wraps == 1,
               "compatible: end marker after the wrap, wraps == 1");
        }

        vmess_body_free(&w);
        vmess_body_free(&r);
    }

    free(wire);
}


/* response_headers.json: sealed and opened in both modes */

static void
test_switch_account(void)
{
    int                     rc, found, with;
    size_t                  i, count, len, n, used;
    uint8_t                 out[VMESS_RESPONSE_HEADER_MAX];
    uint8_t                *want;
    const char             *mode, *uuid;
    vmess_body_t            b;
    vmess_session_t         s;
    vmess_switch_account_t  cmd, got;

    /* the command of dynamic_port.json case 0 */
    memset(&cmd, 0, sizeof(cmd));
    uuid = vec_str("dynamic_port.cases.0.uuid");
    ok(uuid != NULL
       && vmess_uuid_parse(uuid, strlen(uuid), cmd.id) == VMESS_OK,
       "dynamic port uuid");
    cmd.port = (uint16_t) vec_int("dynamic_port.cases.0.port");
    cmd.alter_ids = (uint16_t) vec_int("dynamic_port.cases.0.alter_ids");
    cmd.level = (uint8_t) vec_int("dynamic_port.cases.0.level");
    cmd.valid_minutes = (uint8_t) vec_int("dynamic_port.cases.0.valid_min");

    count = (size_t) vec_int("response_headers.cases.count");
    ok(count == 4, "4 response header cases");

    for (i = 0; i < count; i++) {
        memset(&s, 0, sizeof(vmess_session_t));
        mode = vec_str("response_headers.cases.%zu.header_mode", i);
        s.legacy_header = strcmp(mode, "legacy") == 0;
        s.security = VMESS_SEC_AES_128_GCM;
        s.options = 0x0d;
        s.command = VMESS_CMD_TCP;
        s.response_v = (uint8_t) strtoul(
            vec_str("response_headers.cases.%zu.response_v", i), NULL, 16);
        unit_hex_decode(vec_str("response_headers.cases.%zu.response_body_key",
                                i), s.resp_key, 16);
        unit_hex_decode(vec_str("response_headers.cases.%zu.response_body_iv",
                                i), s.resp_iv, 16);
        with = (int) vec_int(
            "response_headers.cases.%zu.with_switch_account_command", i);
        want = vec_hex(&len, "response_headers.cases.%zu.wire", i);

        vmess_body_init(&b, &s, VMESS_DIR_RESPONSE, 0);
        rc = vmess_response_header_seal(&b, s.response_v, with ? &cmd : NULL,
                                        out, sizeof(out), &n);
        ok(rc == VMESS_OK && unit_mem_eq(out, n, want, len),
           "response header %zu (%s%s) sealed", i, mode,
           with ? ", switch account" : "");
        ok(!b.header_done || b.hdr_cipher == NULL,
           "header context released once the header is done");
        vmess_body_free(&b);

        /* opened from a growing prefix */
        vmess_body_init(&b, &s, VMESS_DIR_RESPONSE, 0);
        memset(&got, 0, sizeof(got));
        found = -1;

        for (n = 1; n <= len; n++) {
            rc = vmess_response_header_open(&b, s.response_v, want, n, &used,
                                            &got, &found);
            if (rc != VMESS_AGAIN) {
                break;
            }
        }

        ok(rc == VMESS_OK && n == len && used == len && found == with
           && (!with || memcmp(&got, &cmd, sizeof(cmd)) == 0),
           "response header %zu opened at exactly %zu bytes, command %d",
           i, len, found);
        vmess_body_free(&b);
        free(want);
    }
}


/*
 * dynamic_port.json: the command bytes inside a legacy header, checked by
 * decrypting it with OpenSSL's CFB directly, then opened back.
 */

static void
test_switch_account_vectors(void)
{
    int                     rc, found, n;
    size_t                  i, count, len, hlen, used;
    uint8_t                 out[VMESS_RESPONSE_HEADER_MAX];
    uint8_t                 plain[VMESS_RESPONSE_HEADER_MAX];
    uint8_t                *want;
    const char             *host, *uuid;
    EVP_CIPHER_CTX         *ctx;
    vmess_body_t            b;
    vmess_session_t         s;
    vmess_switch_account_t  cmd, got;

    count = (size_t) vec_int("dynamic_port.cases.count");
    ok(count == 2, "2 dynamic port cases");

    memset(&s, 0, sizeof(vmess_session_t));
    s.legacy_header = 1;
    s.security = VMESS_SEC_NONE;
    s.options = 0x05;
    s.command = VMESS_CMD_TCP;
    test_fill(s.resp_key, 16);
    test_fill(s.resp_iv, 16);

    for (i = 0; i < count; i++) {
        memset(&cmd, 0, sizeof(cmd));
        host = vec_str("dynamic_port.cases.%zu.host", i);
        uuid = vec_str("dynamic_port.cases.%zu.uuid", i);
        cmd.host_len = (uint8_t) strlen(host);
        memcpy(cmd.host, host, cmd.host_len);
        vmess_uuid_parse(uuid, strlen(uuid), cmd.id);
        cmd.port = (uint16_t) vec_int("dynamic_port.cases.%zu.port", i);
        cmd.alter_ids = (uint16_t) vec_int("dynamic_port.cases.%zu.alter_ids",
                                           i);
        cmd.level = (uint8_t) vec_int("dynamic_port.cases.%zu.level", i);
        cmd.valid_minutes = (uint8_t) vec_int(
                                "dynamic_port.cases.%zu.valid_min", i);
        want = vec_hex(&len, "dynamic_port.cases.%zu.wire", i);

        vmess_body_init(&b, &s, VMESS_DIR_RESPONSE, 0);
        rc = vmess_response_header_seal(&b, 0x42, &cmd, out, sizeof(out),
                                        &hlen);
        vmess_body_free(&b);

        ctx = EVP_CIPHER_CTX_new();
        ok(rc == VMESS_OK && ctx != NULL
           && EVP_DecryptInit_ex(ctx, EVP_aes_128_cfb128(), NULL, s.resp_key,
                                 s.resp_iv)
           && EVP_DecryptUpdate(ctx, plain, &n, out, (int) hlen)
           && plain[0] == 0x42 && plain[1] == 0
           && unit_mem_eq(plain + 2, hlen - 2, want, len),
           "dynamic port case %zu: command bytes", i);
        EVP_CIPHER_CTX_free(ctx);

        vmess_body_init(&b, &s, VMESS_DIR_RESPONSE, 0);
        rc = vmess_response_header_open(&b, 0x42, out, hlen, &used, &got,
                                        &found);
        ok(rc == VMESS_OK && found == 1 && used == hlen
           && memcmp(&got, &cmd, sizeof(cmd)) == 0,
           "dynamic port case %zu: opened back (host '%s')", i, host);
        vmess_body_free(&b);

        /* a command failing its FNV check is ignored, the header is not */
        vmess_body_init(&b, &s, VMESS_DIR_RESPONSE, 0);
        out[6] ^= 0x01;
        rc = vmess_response_header_open(&b, 0x42, out, hlen, &used, &got,
                                        &found);
        ok(rc == VMESS_OK && found == 0 && used == hlen,
           "dynamic port case %zu: bad FNV -> command ignored", i);
        vmess_body_free(&b);

        free(want);
    }

    memset(&cmd, 0, sizeof(cmd));
    cmd.host_len = 229;
    vmess_body_init(&b, &s, VMESS_DIR_RESPONSE, 0);
    ok(vmess_response_header_seal(&b, 1, &cmd, out, sizeof(out), &hlen)
       == VMESS_ERR_INVALID, "a command over 255 bytes refused");
    vmess_body_free(&b);
}


static double
test_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}


/*
 * MB/s for 16 KiB chunks, next to a bare EVP loop doing the same AEAD
 * work per chunk (set nonce, encrypt, tag).  Diagnostics only.
 */

static void
test_speed(void)
{
    int                k, len, rc;
    size_t             n, used, made, iters;
    double             t0, t_seal, t_open, t_bare, mb;
    uint8_t            key[32], nonce[12];
    uint8_t           *in, *wire, *out;
    EVP_CIPHER_CTX    *ctx;
    vmess_body_t       w, r;
    vmess_session_t    s;
    const EVP_CIPHER  *cipher;

    static const uint8_t  secs[] = { 3, 4, 5 };
    static const char    *names[] = { "aes-128-gcm", "chacha20-poly1305",
                                      "none" };

    in = malloc(16384);
    wire = malloc(16384 + VMESS_CHUNK_OVERHEAD_MAX);
    out = malloc(16384);
    test_fill(in, 16384);
    memset(nonce, 0, sizeof(nonce));

    for (k = 0; k < 3; k++) {
        memset(&s, 0, sizeof(vmess_session_t));
        s.security = secs[k];
        s.options = secs[k] == VMESS_SEC_NONE ? 0x05 : 0x0d;
        s.command = VMESS_CMD_TCP;
        test_fill(s.req_key, 16);
        test_fill(s.req_iv, 16);

        vmess_body_init(&w, &s, VMESS_DIR_REQUEST, 0);
        vmess_body_init(&r, &s, VMESS_DIR_REQUEST, 0);

        t_seal = 0;
        t_open = 0;
        iters = 0;
        rc = VMESS_OK;

        while (rc == VMESS_OK && t_seal + t_open < 0.3) {
            t0 = test_now();
            rc = vmess_body_seal(&w, in, 16384, NULL, wire,
                                 16384 + VMESS_CHUNK_OVERHEAD_MAX, &n);
            t_seal += test_now() - t0;

            t0 = test_now();
            if (rc == VMESS_OK) {
                rc = vmess_body_open(&r, wire, n, &used, out, 16384, &made);
            }

            t_open += test_now() - t0;

            iters++;
        }

        if (rc != VMESS_OK) {
            unit_diag("%s: speed loop failed: %s", names[k],
                      vmess_strerror(rc));
        }

        ctx = EVP_CIPHER_CTX_new();
        cipher = k == 0 ? EVP_aes_128_gcm() : EVP_chacha20_poly1305();
        memset(key, 7, sizeof(key));

        if (k < 2) {
            EVP_EncryptInit_ex(ctx, cipher, NULL, key, NULL);
        }

        t0 = test_now();

        for (n = 0; n < iters; n++) {
            if (k < 2) {
                nonce[1] = (uint8_t) n;
                EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce);
                EVP_EncryptUpdate(ctx, wire, &len, in, 16384);
                EVP_EncryptFinal_ex(ctx, wire + len, &len);
                EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16,
                                    wire + 16384);

            } else {
                memcpy(wire, in, 16384);
            }
        }

        t_bare = test_now() - t0;
        EVP_CIPHER_CTX_free(ctx);

        mb = (double) iters * 16384 / 1e6;
        unit_diag("%-18s 16 KiB chunks: seal %7.0f MB/s, open %7.0f MB/s,"
                  " bare %s %7.0f MB/s", names[k], mb / t_seal, mb / t_open,
                  k < 2 ? "EVP" : "memcpy", mb / t_bare);

        vmess_body_free(&w);
        vmess_body_free(&r);
    }

    free(in);
    free(wire);
    free(out);
}


int
main(void)
{
    vec_load();

    test_vectors_decode();
    test_vectors_encode();
    test_round_trips();
    test_errors();
    test_switch_account();
    test_switch_account_vectors();
    test_speed();

    return unit_done();
}
