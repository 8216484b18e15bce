/*
 * libFuzzer harness: the Mux.Cool frame reader (vmess_mux_read).
 *
 * Input: a mode byte, a split, then
 *   bit 0 clear: the frame stream itself
 *   bit 0 set:   frame fields, written with vmess_mux_write_header and
 *                followed by their data, so the reader's answers are
 *                known in advance
 * The stream is read whole and in input-sized pieces; both must give the
 * same frames, data and end.  Every frame read is written again and must
 * read back the same.
 */

#include <stdlib.h>
#include <string.h>

#include "vmess.h"
#include "common.h"


#define FUZZ_STREAM_MAX     (64 * 1024)
#define FUZZ_FRAMES_MAX     64
#define FUZZ_DATA_MAX       600


typedef struct {
    int                         rc;         /* AGAIN or BAD_FRAME */
    uint8_t                    *log;        /* frames and data, in order */
    size_t                      log_len;
    size_t                      log_cap;
    size_t                      frames;
} fuzz_result_t;


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_read(const uint8_t *stream, size_t len, fuzz_split_t *sp,
    fuzz_result_t *r);
static void fuzz_log(fuzz_result_t *r, const void *p, size_t len);
static void fuzz_check_frame(const vmess_mux_frame_t *f);
static size_t fuzz_build(fuzz_in_t *in, uint8_t *stream, uint8_t *expect,
    size_t *expect_len);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t         len, expect_len;
    uint8_t        mode, *stream, *expect;
    fuzz_in_t      in;
    fuzz_split_t   sp, whole;
    fuzz_result_t  a, b;

    in.p = data;
    in.len = size;

    mode = fuzz_u8(&in);
    fuzz_split_read(&sp, &in);

    expect = NULL;
    expect_len = 0;

    if (mode & 1) {
        stream = fuzz_alloc(FUZZ_STREAM_MAX);
        expect = fuzz_alloc(2 * FUZZ_STREAM_MAX);
        len = fuzz_build(&in, stream, expect, &expect_len);

    } else {
        stream = fuzz_dup(in.p, in.len);
        len = in.len;
    }

    whole.n = 0;

    fuzz_read(stream, len, &whole, &a);
    fuzz_read(stream, len, &sp, &b);

    fuzz_assert(a.rc == b.rc, "whole and split: result");
    fuzz_assert(a.log_len == b.log_len
                && memcmp(a.log, b.log, a.log_len) == 0,
                "whole and split: frames and data");

    if (expect != NULL) {
        fuzz_assert(a.rc == VMESS_AGAIN, "written frames read back");
        fuzz_assert(a.log_len == expect_len
                    && memcmp(a.log, expect, expect_len) == 0,
                    "written frames read back the same");
    }

    free(a.log);
    free(b.log);
    free(stream);
    free(expect);

    return 0;
}


/*
 * The caller's loop; the log gets, per frame, the frame struct and then
 * its data, whatever the pieces were.
 */

static void
fuzz_read(const uint8_t *stream, size_t len, fuzz_split_t *sp,
    fuzz_result_t *r)
{
    int                  rc, last;
    size_t               pos, delivered, win, consumed, dlen, left, steps;
    size_t               hlen, c2;
    uint8_t             *copy, *in, hdr[VMESS_MUX_HEADER_MAX], *hbuf;
    const uint8_t       *d;
    vmess_mux_frame_t    f, f2;
    vmess_mux_reader_t   rd, rd2;
    fuzz_window_t        window;

    memset(r, 0, sizeof(fuzz_result_t));
    r->log_cap = 2 * len + 64;
    r->log = fuzz_alloc(r->log_cap);

    vmess_mux_reader_init(&rd);

    /* one exact copy; only the window being read is readable */
    copy = fuzz_dup(stream, len);
    fuzz_window_open(&window, copy, len);

    pos = 0;
    delivered = 0;
    left = 0;
    steps = 0;
    rc = VMESS_AGAIN;

    for ( ;; ) {

        if (pos == delivered) {
            if (delivered == len) {
                rc = VMESS_AGAIN;
                break;
            }

            delivered += fuzz_split_next(sp, len - delivered);
        }

        fuzz_assert(++steps <= 2 * len + 16, "the reader makes progress");

        win = delivered - pos;
        in = copy + pos;
        fuzz_window_move(&window, pos, delivered);
        consumed = (size_t) -1;
        d = NULL;
        dlen = (size_t) -1;
        last = -1;

        rc = vmess_mux_read(&rd, in, win, &consumed, &f, &d, &dlen, &last);

        fuzz_assert(consumed <= win, "consumed within the input");

        switch (rc) {

        case VMESS_AGAIN:
            fuzz_assert(consumed == win, "AGAIN consumes all");
            fuzz_assert(left == 0 || consumed == 0,
                        "AGAIN in data only for an empty input");
            break;

        case VMESS_MUX_FRAME:
            fuzz_assert(left == 0, "a frame only after the data");
            fuzz_check_frame(&f);

            r->frames++;
            fuzz_log(r, "F", 1);
            fuzz_log(r, &f, sizeof(vmess_mux_frame_t));
            left = f.data_len;

            /* written again, it reads back the same */
            hlen = 0;
            fuzz_assert(vmess_mux_write_header(&f, hdr, sizeof(hdr), &hlen)
                        == VMESS_OK, "a frame read is written");
            hbuf = fuzz_dup(hdr, hlen);
            vmess_mux_reader_init(&rd2);
            fuzz_assert(vmess_mux_read(&rd2, hbuf, hlen, &c2, &f2, &d, &dlen,
                                       &last)
                        == VMESS_MUX_FRAME && c2 == hlen
                        && memcmp(&f, &f2, sizeof(vmess_mux_frame_t)) == 0,
                        "a written frame reads back the same");
            free(hbuf);
            break;

        case VMESS_MUX_DATA:
            fuzz_assert(d >= in && dlen > 0 && dlen <= win
                        && d + dlen <= in + win
                        && (size_t) (d - in) + dlen == consumed,
                        "data inside the input, up to consumed");
            fuzz_assert(dlen <= left, "data within the frame's length");
            left -= dlen;
            fuzz_assert(last == (left == 0), "data_last on the last piece");

            fuzz_log(r, d, dlen);

            if (left == 0) {
                fuzz_log(r, "E", 1);
            }

            break;

        case VMESS_ERR_BAD_FRAME:
            /* a bad frame is for good */
            c2 = (size_t) -1;
            fuzz_assert(vmess_mux_read(&rd, in, win, &c2, &f2, &d, &dlen,
                                       &last)
                        == VMESS_ERR_BAD_FRAME && c2 == 0,
                        "BAD_FRAME again, nothing consumed");
            fuzz_log(r, "X", 1);
            goto done;

        default:
            fuzz_fail("vmess_mux_read returned %d", rc);
        }

        pos += consumed;
    }

done:

    fuzz_window_close(&window);
    free(copy);

    r->rc = rc;
}


static void
fuzz_log(fuzz_result_t *r, const void *p, size_t len)
{
    uint8_t  *n;

    if (r->log_len + len > r->log_cap) {
        r->log_cap = 2 * (r->log_len + len);
        n = fuzz_alloc(r->log_cap);
        memcpy(n, r->log, r->log_len);
        free(r->log);
        r->log = n;
    }

    memcpy(r->log + r->log_len, p, len);
    r->log_len += len;
}


static void
fuzz_check_frame(const vmess_mux_frame_t *f)
{
    size_t  i;

    fuzz_assert(f->status >= VMESS_MUX_NEW && f->status <= VMESS_MUX_KEEPALIVE,
                "frame status");
    fuzz_assert((f->option & VMESS_MUX_OPT_DATA) || f->data_len == 0,
                "data length only with OPT_DATA");

    if (f->status != VMESS_MUX_NEW) {
        fuzz_assert(f->network == 0 && f->port == 0 && f->addr_type == 0
                    && f->addr_len == 0, "no address but in New");
        return;
    }

    fuzz_assert(f->network == VMESS_MUX_NET_TCP
                || f->network == VMESS_MUX_NET_UDP, "New network");

    switch (f->addr_type) {

    case VMESS_ADDR_IPV4:
        fuzz_assert(f->addr_len == 4, "IPv4 length");
        break;

    case VMESS_ADDR_IPV6:
        fuzz_assert(f->addr_len == 16, "IPv6 length");
        break;

    case VMESS_ADDR_DOMAIN:
        fuzz_assert(f->addr_len > 0, "domain length");

        for (i = 0; i < f->addr_len; i++) {
            fuzz_assert(f->addr[i] != 0 && f->addr[i] != ':'
                        && f->addr[i] != '/' && f->addr[i] != '['
                        && f->addr[i] > ' ' && f->addr[i] < 0x7f,
                        "domain characters");
        }

        break;

    default:
        fuzz_fail("New frame address type %d", f->addr_type);
    }
}


/*
 * Per frame: status, option, session id, network, port, address type,
 * address length, address, data length; the data comes from the input.
 * Returns the stream length; expect gets what the reader must log.
 */

static size_t
fuzz_build(fuzz_in_t *in, uint8_t *stream, uint8_t *expect,
    size_t *expect_len)
{
    size_t             len, hlen, n, i, frames, k;
    uint8_t            hdr[VMESS_MUX_HEADER_MAX];
    const uint8_t     *p;
    vmess_mux_frame_t  f;

    len = 0;
    *expect_len = 0;
    frames = fuzz_u8(in) % FUZZ_FRAMES_MAX;

    for (i = 0; i < frames && in->len > 0; i++) {
        memset(&f, 0, sizeof(vmess_mux_frame_t));

        f.status = fuzz_u8(in);
        f.option = fuzz_u8(in);
        f.session_id = fuzz_u16(in);

        if (f.status == VMESS_MUX_NEW) {
            f.network = fuzz_u8(in);
            f.port = fuzz_u16(in);
            f.addr_type = fuzz_u8(in);
            f.addr_len = fuzz_u8(in);
            n = fuzz_take(in, f.addr_len, &p);
            memcpy(f.addr, p, n);
        }

        if (f.option & VMESS_MUX_OPT_DATA) {
            f.data_len = fuzz_u16(in) % FUZZ_DATA_MAX;
        }

        if (len + VMESS_MUX_HEADER_MAX + f.data_len > FUZZ_STREAM_MAX) {
            break;
        }

        if (vmess_mux_write_header(&f, hdr, sizeof(hdr), &hlen) != VMESS_OK)
        {
            continue;
        }

        memcpy(stream + len, hdr, hlen);
        len += hlen;

        expect[(*expect_len)++] = 'F';
        memcpy(expect + *expect_len, &f, sizeof(vmess_mux_frame_t));
        *expect_len += sizeof(vmess_mux_frame_t);

        /* data: input bytes, then zeros */
        n = fuzz_take(in, f.data_len, &p);
        memcpy(stream + len, p, n);

        for (k = n; k < f.data_len; k++) {
            stream[len + k] = 0;
        }

        memcpy(expect + *expect_len, stream + len, f.data_len);
        *expect_len += f.data_len;
        len += f.data_len;

        if (f.data_len > 0) {
            expect[(*expect_len)++] = 'E';
        }
    }

    return len;
}
