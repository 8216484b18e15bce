/*
 * Mux.Cool frame codec: the frames of mux.json decoded and re-encoded,
 * the same stream fed in every kind of split, malformed frames, and a
 * 64 KiB data frame in pieces.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "vmess.h"
#include "unit.h"


#define MUX_LOG_FRAMES      32
#define MUX_LOG_DATA        (128 * 1024)
#define MUX_BIG_DATA        65535


/* what a reader produced from a stream: frames and each frame's data */
typedef struct {
    vmess_mux_frame_t   frames[MUX_LOG_FRAMES];
    size_t              data_off[MUX_LOG_FRAMES];
    size_t              data_len[MUX_LOG_FRAMES];
    size_t              data_events[MUX_LOG_FRAMES];
    size_t              nframes;
    uint8_t            *data;       /* MUX_LOG_DATA bytes */
    size_t              data_used;
    size_t              faults;     /* broken API promises, see mux_feed */
    int                 rc;         /* last return: AGAIN or an error */
} mux_log_t;


static void mux_log_init(mux_log_t *log);
static void mux_log_free(mux_log_t *log);
static void mux_feed(vmess_mux_reader_t *r, mux_log_t *log,
    const uint8_t *in, size_t len);
static void mux_run(mux_log_t *log, const uint8_t *stream, size_t len,
    const size_t *pieces, size_t npieces);
static int mux_frame_eq(const vmess_mux_frame_t *a,
    const vmess_mux_frame_t *b);
static int mux_log_eq(const mux_log_t *a, const mux_log_t *b);
static void mux_target(const vmess_mux_frame_t *f, char *out, size_t cap);
static uint32_t mux_rand(uint32_t *state);
static uint8_t *mux_wire(size_t *len, const char *hex);

static void test_vectors(void);
static void test_splits(void);
static void test_errors(void);
static void test_extensions(void);
static void test_big_frame(void);
static void test_write_errors(void);


static void
mux_log_init(mux_log_t *log)
{
    memset(log, 0, sizeof(mux_log_t));
    log->data = malloc(MUX_LOG_DATA);
    log->rc = VMESS_AGAIN;

    if (log->data == NULL) {
        printf("Bail out! out of memory\n");
        exit(1);
    }
}


static void
mux_log_free(mux_log_t *log)
{
    free(log->data);
    log->data = NULL;
}


/*
 * Runs the reader over one input piece until it asks for more.  Counts
 * as a fault: DATA pointing outside the piece (it must be zero-copy),
 * data_last on any but the frame's final piece, data beyond dataLen,
 * consumption past the input, AGAIN without consuming everything.
 */

static void
mux_feed(vmess_mux_reader_t *r, mux_log_t *log, const uint8_t *in,
    size_t len)
{
    int                 rc, last;
    size_t              consumed, n, cur;
    const uint8_t      *data;
    vmess_mux_frame_t   frame;

    if (log->rc < 0) {
        return;
    }

    for ( ;; ) {
        consumed = (size_t) -1;
        data = NULL;
        n = 0;
        last = -1;

        rc = vmess_mux_read(r, in, len, &consumed, &frame, &data, &n, &last);
        log->rc = rc;

        if (rc < 0) {
            return;
        }

        if (consumed > len) {
            log->faults++;
            return;
        }

        if (rc == VMESS_AGAIN) {
            if (consumed != len) {
                log->faults++;
            }

            return;
        }

        if (rc == VMESS_MUX_FRAME) {
            if (log->nframes == MUX_LOG_FRAMES) {
                log->faults++;
                return;
            }

            log->frames[log->nframes] = frame;
            log->data_off[log->nframes] = log->data_used;
            log->nframes++;

        } else if (rc == VMESS_MUX_DATA) {
            if (log->nframes == 0 || n == 0 || data < in
                || data + n > in + len || data + n != in + consumed
                || log->data_used + n > MUX_LOG_DATA)
            {
                log->faults++;
                return;
            }

            cur = log->nframes - 1;
            memcpy(log->data + log->data_used, data, n);
            log->data_used += n;
            log->data_len[cur] += n;
            log->data_events[cur]++;

            if (log->data_len[cur] > log->frames[cur].data_len
                || last != (log->data_len[cur]
                            == log->frames[cur].data_len))
            {
                log->faults++;
            }

        } else {
            log->faults++;
            return;
        }

        in += consumed;
        len -= consumed;
    }
}


/* each piece is fed from its own exact-size copy, so that an overread
 * shows under ASan and a DATA pointer can only be zero-copy */

static void
mux_run(mux_log_t *log, const uint8_t *stream, size_t len,
    const size_t *pieces, size_t npieces)
{
    size_t               i, off, n;
    uint8_t             *copy;
    vmess_mux_reader_t   r;

    vmess_mux_reader_init(&r);
    off = 0;

    for (i = 0; i < npieces && off < len; i++) {
        n = pieces[i] < len - off ? pieces[i] : len - off;
        copy = malloc(n ? n : 1);

        if (copy == NULL) {
            printf("Bail out! out of memory\n");
            exit(1);
        }

        memcpy(copy, stream + off, n);
        mux_feed(&r, log, copy, n);
        free(copy);
        off += n;
    }

    if (off != len) {
        log->faults++;
    }
}


static int
mux_frame_eq(const vmess_mux_frame_t *a, const vmess_mux_frame_t *b)
{
    return a->session_id == b->session_id
           && a->status == b->status
           && a->option == b->option
           && a->network == b->network
           && a->port == b->port
           && a->addr_type == b->addr_type
           && a->addr_len == b->addr_len
           && memcmp(a->addr, b->addr, a->addr_len) == 0
           && a->data_len == b->data_len;
}


static int
mux_log_eq(const mux_log_t *a, const mux_log_t *b)
{
    size_t  i;

    if (a->nframes != b->nframes || a->rc != b->rc) {
        return 0;
    }

    for (i = 0; i < a->nframes; i++) {
        if (!mux_frame_eq(&a->frames[i], &b->frames[i])
            || a->data_len[i] != b->data_len[i]
            || memcmp(a->data + a->data_off[i], b->data + b->data_off[i],
                      a->data_len[i]) != 0)
        {
            return 0;
        }
    }

    return 1;
}


/* the vectors' "target": "tcp:example.com:80", "tcp:[2001:db8::1]:443" */

static void
mux_target(const vmess_mux_frame_t *f, char *out, size_t cap)
{
    char         host[INET6_ADDRSTRLEN];
    const char  *net;

    net = f->network == VMESS_MUX_NET_TCP ? "tcp"
          : f->network == VMESS_MUX_NET_UDP ? "udp" : "?";

    switch (f->addr_type) {

    case VMESS_ADDR_IPV4:
        inet_ntop(AF_INET, f->addr, host, sizeof(host));
        snprintf(out, cap, "%s:%s:%u", net, host, f->port);
        break;

    case VMESS_ADDR_IPV6:
        inet_ntop(AF_INET6, f->addr, host, sizeof(host));
        snprintf(out, cap, "%s:[%s]:%u", net, host, f->port);
        break;

    case VMESS_ADDR_DOMAIN:
        snprintf(out, cap, "%s:%.*s:%u", net, (int) f->addr_len,
                 (const char *) f->addr, f->port);
        break;

    default:
        snprintf(out, cap, "none");
    }
}


/* xorshift32: fixed seeds make every run the same */

static uint32_t
mux_rand(uint32_t *state)
{
    uint32_t  x;

    x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;

    return x;
}


static uint8_t *
mux_wire(size_t *len, const char *hex)
{
    size_t    n;
    uint8_t  *p;

    n = strlen(hex) / 2;
    p = malloc(n ? n : 1);

    if (p == NULL || unit_hex_decode(hex, p, n) != (int) n) {
        printf("Bail out! bad hex in test\n");
        exit(1);
    }

    *len = n;
    return p;
}


static void
test_vectors(void)
{
    char                target[300];
    size_t              i, count, len, hlen, whole;
    uint8_t             hdr[VMESS_MUX_HEADER_MAX];
    uint8_t            *wire;
    mux_log_t           log;
    const char         *want_target;
    vmess_mux_frame_t  *f;

    count = (size_t) vec_int("mux.frames.count");
    ok(count == 10, "ten mux frames in vectors");

    for (i = 0; i < count; i++) {
        wire = vec_hex(&len, "mux.frames.%zu.wire", i);
        mux_log_init(&log);
        whole = len;
        mux_run(&log, wire, len, &whole, 1);

        ok(log.rc == VMESS_AGAIN && log.faults == 0 && log.nframes == 1,
           "frame %zu read in one piece", i);

        f = &log.frames[0];

        ok(f->session_id == vec_int("mux.frames.%zu.session_id", i)
           && f->status == vec_int("mux.frames.%zu.status", i)
           && f->option == vec_int("mux.frames.%zu.option", i),
           "frame %zu session %u status %u option %u", i, f->session_id,
           f->status, f->option);

        want_target = vec_str("mux.frames.%zu.target", i);

        if (want_target != NULL) {
            mux_target(f, target, sizeof(target));
            ok(strcmp(target, want_target) == 0, "frame %zu target %s", i,
               target);

        } else {
            ok(f->network == 0 && f->port == 0 && f->addr_type == 0
               && f->addr_len == 0, "frame %zu has no target", i);
        }

        ok(log.data_len[0] == f->data_len
           && (f->data_len == 0) == (log.data_events[0] == 0),
           "frame %zu data %zu bytes", i, log.data_len[0]);

        /* re-encode: header + the data read == wire */
        ok(vmess_mux_write_header(f, hdr, sizeof(hdr), &hlen) == VMESS_OK
           && hlen + log.data_len[0] == len
           && unit_mem_eq(hdr, hlen, wire, len - log.data_len[0])
           && unit_mem_eq(log.data, log.data_len[0],
                          wire + hlen, len - hlen),
           "frame %zu re-encoded byte for byte", i);

        mux_log_free(&log);
        free(wire);
    }
}


static void
test_splits(void)
{
    size_t       i, j, count, len, total, off, whole, npieces, cap;
    size_t      *pieces;
    uint8_t     *wire, *stream;
    uint32_t     seed;
    mux_log_t    ref, log, one;

    count = (size_t) vec_int("mux.frames.count");
    stream = malloc(4096);
    total = 0;

    for (i = 0; i < count; i++) {
        wire = vec_hex(&len, "mux.frames.%zu.wire", i);

        if (wire == NULL || total + len > 4096) {
            printf("Bail out! mux vectors unusable\n");
            exit(1);
        }

        memcpy(stream + total, wire, len);
        total += len;
        free(wire);
    }

    /* reference: the whole stream at once; each frame as read alone */
    mux_log_init(&ref);
    whole = total;
    mux_run(&ref, stream, total, &whole, 1);

    ok(ref.rc == VMESS_AGAIN && ref.faults == 0 && ref.nframes == count,
       "concatenated stream: %zu frames", ref.nframes);

    for (i = 0; i < ref.nframes && i < count; i++) {
        wire = vec_hex(&len, "mux.frames.%zu.wire", i);
        mux_log_init(&one);
        mux_run(&one, wire, len, &len, 1);

        ok(one.nframes == 1
           && mux_frame_eq(&ref.frames[i], &one.frames[0])
           && ref.data_len[i] == one.data_len[0]
           && memcmp(ref.data + ref.data_off[i], one.data,
                     one.data_len[0]) == 0,
           "concatenated stream frame %zu as read alone", i);

        mux_log_free(&one);
        free(wire);
    }

    /* room for every piece even if many random ones are empty */
    cap = 2 * total;
    pieces = malloc(cap * sizeof(size_t));

    /* byte by byte: one DATA event per data byte */
    for (i = 0; i < total; i++) {
        pieces[i] = 1;
    }

    mux_log_init(&log);
    mux_run(&log, stream, total, pieces, total);

    ok(log.faults == 0 && mux_log_eq(&log, &ref), "byte by byte");

    for (i = 0, j = 0; i < log.nframes; i++) {
        j += log.data_events[i] == log.data_len[i];
    }

    ok(j == log.nframes, "byte by byte: one DATA event per byte");
    mux_log_free(&log);

    /* random splits, empty pieces included */
    seed = 0x5eed1234;
    j = 0;

    for (i = 0; i < 500; i++) {
        npieces = 0;
        off = 0;

        while (off < total) {
            len = mux_rand(&seed) % 48;
            if (len > total - off || npieces == cap - 1) {
                len = total - off;
            }

            pieces[npieces++] = len;
            off += len;
        }

        mux_log_init(&log);
        mux_run(&log, stream, total, pieces, npieces);
        j += log.faults == 0 && mux_log_eq(&log, &ref);
        mux_log_free(&log);
    }

    ok(j == 500, "random splits: %zu of 500 equal", j);

    mux_log_free(&ref);
    free(pieces);
    free(stream);
}


static void
test_errors(void)
{
    static const struct {
        const char  *name;
        const char  *hex;
    } bad[] = {
        { "metaLen 3", "0003000102" },
        { "metaLen 513", "0201" },
        { "metaLen 0", "0000" },
        { "New with metaLen 7", "00070001010001" "0050" },
        { "status 9", "0004000109" "00" },
        { "status 0", "0004000100" "00" },
        { "network 3", "000c00020100" "03" "1f90017f000001" },
        { "address type 4", "000c00020100011f9004" "7f000001" },
        { "address type 0", "000c00020100011f9000" "7f000001" },
        { "empty domain", "00090002010001005002" "00" },
        { "bad domain char", "000c000201000100500203" "612062" },
        { "domain longer than meta", "000c000201000100500209" "616263" },
        { "IPv4 cut by metaLen", "000a0002010001005001" "7f00" },
        { "IPv6 cut by metaLen", "00170002010001005003"
          "20010db80000000000000000000000" },
    };

    int                  rc, last;
    size_t               i, len, consumed, n;
    size_t               ones[VMESS_MUX_HEADER_MAX];
    uint8_t             *wire, *stream;
    mux_log_t            log;
    const uint8_t       *data;
    vmess_mux_frame_t    frame;
    vmess_mux_reader_t   r;

    for (i = 0; i < VMESS_MUX_HEADER_MAX; i++) {
        ones[i] = 1;
    }

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        wire = mux_wire(&len, bad[i].hex);

        mux_log_init(&log);
        mux_run(&log, wire, len, &len, 1);
        ok(log.rc == VMESS_ERR_BAD_FRAME && log.nframes == 0,
           "%s: bad frame", bad[i].name);
        mux_log_free(&log);

        mux_log_init(&log);
        mux_run(&log, wire, len, ones, len);
        ok(log.rc == VMESS_ERR_BAD_FRAME && log.nframes == 0,
           "%s: bad frame byte by byte", bad[i].name);
        mux_log_free(&log);
        free(wire);
    }

    /* a good frame before a bad one still comes out; the error sticks */
    stream = mux_wire(&len, "000400010300" "0004000109" "00");
    vmess_mux_reader_init(&r);

    rc = vmess_mux_read(&r, stream, len, &consumed, &frame, &data, &n,
                        &last);
    ok(rc == VMESS_MUX_FRAME && consumed == 6
       && frame.status == VMESS_MUX_END, "frame before the bad one");

    rc = vmess_mux_read(&r, stream + 6, len - 6, &consumed, &frame, &data,
                        &n, &last);
    ok(rc == VMESS_ERR_BAD_FRAME, "then bad frame");

    rc = vmess_mux_read(&r, stream, 6, &consumed, &frame, &data, &n, &last);
    ok(rc == VMESS_ERR_BAD_FRAME, "the error sticks");

    free(stream);
}


static void
test_extensions(void)
{
    size_t      len, whole;
    uint8_t    *stream;
    mux_log_t   log;

    /*
     * Xray XUDP: a UDP New with an 8-byte GlobalID after the address, a
     * Keep with network and address; the extra meta bytes are skipped.
     * Then a Keep with dataLen 0 (no DATA event) and an End.
     */
    stream = mux_wire(&len,
        "0014" "0003" "01" "01" "02" "0035" "01" "08080808"
        "1122334455667788" "0002" "abcd"
        "000c" "0003" "02" "01" "02" "0035" "01" "08080808" "0001" "ff"
        "0004" "0001" "02" "01" "0000"
        "0004" "0001" "03" "00");

    mux_log_init(&log);
    whole = len;
    mux_run(&log, stream, len, &whole, 1);

    ok(log.rc == VMESS_AGAIN && log.faults == 0 && log.nframes == 4,
       "extensions: four frames");

    ok(log.frames[0].status == VMESS_MUX_NEW
       && log.frames[0].network == VMESS_MUX_NET_UDP
       && log.frames[0].port == 53
       && log.frames[0].addr_type == VMESS_ADDR_IPV4
       && log.frames[0].addr_len == 4
       && memcmp(log.frames[0].addr, "\x08\x08\x08\x08", 4) == 0
       && log.data_len[0] == 2
       && memcmp(log.data + log.data_off[0], "\xab\xcd", 2) == 0,
       "XUDP New: GlobalID skipped, data intact");

    ok(log.frames[1].status == VMESS_MUX_KEEP
       && log.frames[1].session_id == 3
       && log.frames[1].network == 0 && log.frames[1].addr_type == 0
       && log.data_len[1] == 1 && log.data[log.data_off[1]] == 0xff,
       "XUDP Keep: address skipped, data intact");

    ok(log.frames[2].option == VMESS_MUX_OPT_DATA
       && log.frames[2].data_len == 0 && log.data_events[2] == 0,
       "dataLen 0: no DATA event");

    ok(log.frames[3].status == VMESS_MUX_END, "End after it");

    mux_log_free(&log);
    free(stream);
}


static void
test_big_frame(void)
{
    static const size_t  cuts[7] = { 3, 4997, 10000, 15000, 1, 20000,
                                     15542 };

    size_t               i, len, hlen, sum;
    uint8_t             *stream;
    mux_log_t            log;
    vmess_mux_frame_t    f;

    hlen = 0;
    memset(&f, 0, sizeof(f));
    f.session_id = 7;
    f.status = VMESS_MUX_KEEP;
    f.option = VMESS_MUX_OPT_DATA;
    f.data_len = MUX_BIG_DATA;

    stream = malloc(VMESS_MUX_HEADER_MAX + MUX_BIG_DATA);

    ok(vmess_mux_write_header(&f, stream, VMESS_MUX_HEADER_MAX, &hlen)
       == VMESS_OK && hlen == 8, "64 KiB frame header written");

    for (i = 0; i < MUX_BIG_DATA; i++) {
        stream[hlen + i] = (uint8_t) (i * 31 + i / 251);
    }

    len = hlen + MUX_BIG_DATA;

    for (i = 0, sum = 0; i < 7; i++) {
        sum += cuts[i];
    }

    ok(sum == len, "seven pieces cover the frame");

    mux_log_init(&log);
    mux_run(&log, stream, len, cuts, 7);

    /* the first piece is inside the header: six pieces carry data */
    ok(log.rc == VMESS_AGAIN && log.faults == 0 && log.nframes == 1
       && log.frames[0].data_len == MUX_BIG_DATA
       && log.data_events[0] == 6,
       "64 KiB frame in 7 pieces: %zu DATA events",
       log.data_events[0]);

    ok(unit_mem_eq(log.data, log.data_len[0], stream + hlen, MUX_BIG_DATA),
       "64 KiB frame reassembled");

    mux_log_free(&log);
    free(stream);
}


static void
test_write_errors(void)
{
    size_t              i, hlen, len, whole;
    uint8_t             out[VMESS_MUX_HEADER_MAX];
    mux_log_t           log;
    vmess_mux_frame_t   f;

    hlen = 0;
    memset(&f, 0, sizeof(f));
    f.session_id = 0x1234;
    f.status = VMESS_MUX_NEW;
    f.option = VMESS_MUX_OPT_DATA;
    f.network = VMESS_MUX_NET_TCP;
    f.port = 443;
    f.addr_type = VMESS_ADDR_DOMAIN;
    f.addr_len = 255;
    f.data_len = 3;

    for (i = 0; i < 255; i++) {
        f.addr[i] = "abcdefghijklmnopqrstuvwxyz0123456789.-_"[i % 39];
    }

    ok(vmess_mux_write_header(&f, out, sizeof(out), &hlen) == VMESS_OK
       && hlen == 2 + 4 + 1 + 2 + 1 + 1 + 255 + 2,
       "New with a 255-byte domain written (%zu bytes)", hlen);

    memcpy(out + hlen, "abc", 3);
    len = hlen + 3;
    whole = len;
    mux_log_init(&log);
    mux_run(&log, out, len, &whole, 1);
    ok(log.rc == VMESS_AGAIN && log.faults == 0 && log.nframes == 1
       && mux_frame_eq(&log.frames[0], &f) && log.data_len[0] == 3,
       "255-byte domain read back");
    mux_log_free(&log);

    ok(vmess_mux_write_header(&f, out, hlen - 1, &len)
       == VMESS_ERR_NO_SPACE, "short output refused");

    f.addr[100] = '/';
    ok(vmess_mux_write_header(&f, out, sizeof(out), &len)
       == VMESS_ERR_INVALID, "bad domain not written");

    f.addr_len = 0;
    ok(vmess_mux_write_header(&f, out, sizeof(out), &len)
       == VMESS_ERR_INVALID, "empty domain not written");

    f.addr_type = VMESS_ADDR_IPV4;
    f.addr_len = 3;
    ok(vmess_mux_write_header(&f, out, sizeof(out), &len)
       == VMESS_ERR_INVALID, "3-byte IPv4 not written");

    f.addr_len = 4;
    f.network = 3;
    ok(vmess_mux_write_header(&f, out, sizeof(out), &len)
       == VMESS_ERR_INVALID, "network 3 not written");

    f.status = 9;
    ok(vmess_mux_write_header(&f, out, sizeof(out), &len)
       == VMESS_ERR_INVALID, "status 9 not written");

    f.status = VMESS_MUX_END;
    f.option = VMESS_MUX_OPT_ERROR;
    ok(vmess_mux_write_header(&f, out, sizeof(out), &len) == VMESS_OK
       && unit_mem_eq(out, len, "\x00\x04\x12\x34\x03\x02", 6),
       "End with Error ignores the New fields");
}


int
main(void)
{
    vec_load();

    test_vectors();
    test_splits();
    test_errors();
    test_extensions();
    test_big_frame();
    test_write_errors();

    return unit_done();
}
