/*
 * Mux.Cool frame codec (VMESS-SPEC.md §8): a resumable reader over the
 * decrypted body stream and a frame header writer.
 */

#include <string.h>

#include "vmess.h"


#define VMESS_MUX_META_MIN          4       /* session id, status, option */
#define VMESS_MUX_NEW_META_MIN      8       /* + network, port, addr type */
#define VMESS_MUX_OPTION_AT         5       /* metaLen, session id, status */


enum {
    vmess_mux_st_meta_len = 0,
    vmess_mux_st_meta,
    vmess_mux_st_data_len,
    vmess_mux_st_data,
    vmess_mux_st_error
};


static int vmess_mux_parse_header(const uint8_t *p, size_t meta_len,
    vmess_mux_frame_t *frame);
static size_t vmess_mux_addr_size(const vmess_mux_frame_t *frame);


void
vmess_mux_reader_init(vmess_mux_reader_t *r)
{
    r->state = vmess_mux_st_meta_len;
    r->have = 0;
    r->need = 2;
    r->data_left = 0;
}


int
vmess_mux_read(vmess_mux_reader_t *r, const uint8_t *in, size_t len,
    size_t *consumed, vmess_mux_frame_t *frame, const uint8_t **data,
    size_t *data_len, int *data_last)
{
    int     rc;
    size_t  pos, n, meta_len;

    pos = 0;

    for ( ;; ) {

        if (r->state == vmess_mux_st_error) {
            /* the stream cannot be resynchronised after a bad frame */
            *consumed = pos;
            return VMESS_ERR_BAD_FRAME;
        }

        if (r->state == vmess_mux_st_data) {
            n = r->data_left;
            if (n > len - pos) {
                n = len - pos;
            }

            if (n == 0) {
                *consumed = pos;
                return VMESS_AGAIN;
            }

            *data = in + pos;
            *data_len = n;
            *data_last = (n == r->data_left);
            r->data_left -= n;

            if (r->data_left == 0) {
                r->state = vmess_mux_st_meta_len;
            }

            *consumed = pos + n;
            return VMESS_MUX_DATA;
        }

        /* the header is gathered in r->buf: it may come byte by byte */

        n = r->need - r->have;
        if (n > len - pos) {
            n = len - pos;
        }

        memcpy(r->buf + r->have, in + pos, n);
        r->have += n;
        pos += n;

        if (r->have < r->need) {
            *consumed = pos;
            return VMESS_AGAIN;
        }

        meta_len = (size_t) r->buf[0] << 8 | r->buf[1];

        switch (r->state) {

        case vmess_mux_st_meta_len:
            if (meta_len < VMESS_MUX_META_MIN || meta_len > VMESS_MUX_META_MAX)
            {
                r->state = vmess_mux_st_error;
                continue;
            }

            r->state = vmess_mux_st_meta;
            r->need = 2 + meta_len;
            continue;

        case vmess_mux_st_meta:
            if (r->buf[VMESS_MUX_OPTION_AT] & VMESS_MUX_OPT_DATA) {
                r->state = vmess_mux_st_data_len;
                r->need += 2;
                continue;
            }

            break;

        default: /* vmess_mux_st_data_len */
            break;
        }

        rc = vmess_mux_parse_header(r->buf, meta_len, frame);
        if (rc != VMESS_OK) {
            r->state = vmess_mux_st_error;
            continue;
        }

        r->data_left = frame->data_len;
        r->have = 0;
        r->need = 2;
        r->state = r->data_left ? vmess_mux_st_data : vmess_mux_st_meta_len;

        *consumed = pos;
        return VMESS_MUX_FRAME;
    }
}


/*
 * p holds BE16 metaLen, the meta, and with OPT_DATA the BE16 dataLen.
 * Meta bytes beyond the fields we know (Xray's XUDP extensions) are
 * skipped.
 */

static int
vmess_mux_parse_header(const uint8_t *p, size_t meta_len,
    vmess_mux_frame_t *frame)
{
    int             rc;
    size_t          pos;
    const uint8_t  *meta;

    meta = p + 2;

    memset(frame, 0, sizeof(vmess_mux_frame_t));

    frame->session_id = (uint16_t) (meta[0] << 8 | meta[1]);
    frame->status = meta[2];
    frame->option = meta[3];

    if (frame->status < VMESS_MUX_NEW || frame->status > VMESS_MUX_KEEPALIVE)
    {
        return VMESS_ERR_BAD_FRAME;
    }

    if (frame->status == VMESS_MUX_NEW) {
        if (meta_len < VMESS_MUX_NEW_META_MIN) {
            return VMESS_ERR_BAD_FRAME;
        }

        frame->network = meta[4];

        if (frame->network != VMESS_MUX_NET_TCP
            && frame->network != VMESS_MUX_NET_UDP)
        {
            return VMESS_ERR_BAD_FRAME;
        }

        frame->port = (uint16_t) (meta[5] << 8 | meta[6]);
        pos = 7;

        rc = vmess_addr_parse(meta, meta_len, &pos, &frame->addr_type,
                              frame->addr, &frame->addr_len);

        /* an address running past the meta is as bad as an unknown type */
        if (rc != VMESS_OK
            || (frame->addr_type == VMESS_ADDR_DOMAIN
                && !vmess_domain_valid(frame->addr, frame->addr_len)))
        {
            return VMESS_ERR_BAD_FRAME;
        }
    }

    if (frame->option & VMESS_MUX_OPT_DATA) {
        frame->data_len = (uint16_t) (meta[meta_len] << 8
                                      | meta[meta_len + 1]);
    }

    return VMESS_OK;
}


/* wire size of the address type byte and address; 0 if invalid */

static size_t
vmess_mux_addr_size(const vmess_mux_frame_t *frame)
{
    switch (frame->addr_type) {

    case VMESS_ADDR_IPV4:
        return frame->addr_len == 4 ? 1 + 4 : 0;

    case VMESS_ADDR_IPV6:
        return frame->addr_len == 16 ? 1 + 16 : 0;

    case VMESS_ADDR_DOMAIN:
        if (!vmess_domain_valid(frame->addr, frame->addr_len)) {
            return 0;
        }

        return 1 + 1 + frame->addr_len;
    }

    return 0;
}


int
vmess_mux_write_header(const vmess_mux_frame_t *frame, uint8_t *out,
    size_t cap, size_t *len)
{
    size_t    meta_len, addr_size, total;
    uint8_t  *p;

    if (frame->status < VMESS_MUX_NEW || frame->status > VMESS_MUX_KEEPALIVE)
    {
        return VMESS_ERR_INVALID;
    }

    meta_len = VMESS_MUX_META_MIN;

    if (frame->status == VMESS_MUX_NEW) {
        if (frame->network != VMESS_MUX_NET_TCP
            && frame->network != VMESS_MUX_NET_UDP)
        {
            return VMESS_ERR_INVALID;
        }

        addr_size = vmess_mux_addr_size(frame);
        if (addr_size == 0) {
            return VMESS_ERR_INVALID;
        }

        meta_len += 1 + 2 + addr_size;
    }

    total = 2 + meta_len;

    if (frame->option & VMESS_MUX_OPT_DATA) {
        total += 2;
    }

    if (cap < total) {
        return VMESS_ERR_NO_SPACE;
    }

    p = out;

    *p++ = (uint8_t) (meta_len >> 8);
    *p++ = (uint8_t) meta_len;
    *p++ = (uint8_t) (frame->session_id >> 8);
    *p++ = (uint8_t) frame->session_id;
    *p++ = frame->status;
    *p++ = frame->option;

    if (frame->status == VMESS_MUX_NEW) {
        *p++ = frame->network;
        *p++ = (uint8_t) (frame->port >> 8);
        *p++ = (uint8_t) frame->port;
        *p++ = frame->addr_type;

        if (frame->addr_type == VMESS_ADDR_DOMAIN) {
            *p++ = frame->addr_len;
        }

        memcpy(p, frame->addr, frame->addr_len);
        p += frame->addr_len;
    }

    if (frame->option & VMESS_MUX_OPT_DATA) {
        *p++ = (uint8_t) (frame->data_len >> 8);
        *p++ = (uint8_t) frame->data_len;
    }

    *len = (size_t) (p - out);

    return VMESS_OK;
}
