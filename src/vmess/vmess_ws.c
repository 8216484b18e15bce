/*
 * WebSocket frames (RFC 6455), the server's side: a resumable unframer of
 * client frames and a frame header writer.
 *
 * The unframer keeps a partial frame header, the mask position and a
 * control frame's payload in its state, so that it always consumes all
 * of its input and a frame may end anywhere between two calls.
 */

#include <string.h>

#include "vmess.h"


static int vmess_ws_frame_start(vmess_ws_t *ws);
static void vmess_ws_frame_end(vmess_ws_t *ws);


void
vmess_ws_init(vmess_ws_t *ws, uint64_t max_frame)
{
    memset(ws, 0, sizeof(vmess_ws_t));
    ws->max_frame = max_frame;
}


int
vmess_ws_unframe(vmess_ws_t *ws, const uint8_t *in, size_t len,
    uint8_t *out, size_t *out_len)
{
    int             rc;
    size_t          n, i;
    uint8_t        *w;
    const uint8_t  *p, *last;

    p = in;
    last = in + len;
    w = out;

    while (p < last) {

        if (ws->closed) {
            /* nothing after a close frame counts */
            break;
        }

        if (!ws->in_payload) {

            ws->hdr[ws->hlen++] = *p++;

            if (ws->hlen == 2) {
                ws->need = 2 + 4;

                switch (ws->hdr[1] & 0x7f) {
                case 126:
                    ws->need += 2;
                    break;
                case 127:
                    ws->need += 8;
                    break;
                }
            }

            if (ws->hlen < 2 || ws->hlen < ws->need) {
                continue;
            }

            rc = vmess_ws_frame_start(ws);

            if (rc != VMESS_OK) {
                *out_len = w - out;
                return rc;
            }

            if (ws->left == 0) {
                vmess_ws_frame_end(ws);
            }

            continue;
        }

        n = (size_t) (last - p) < ws->left ? (size_t) (last - p)
                                           : (size_t) ws->left;

        if (ws->control) {
            for (i = 0; i < n; i++) {
                ws->ctl[ws->ctl_len++] = p[i] ^ ws->mask[ws->mpos++ & 3];
            }

        } else {
            for (i = 0; i < n; i++) {
                *w++ = p[i] ^ ws->mask[ws->mpos++ & 3];
            }
        }

        p += n;
        ws->left -= n;

        if (ws->left == 0) {
            vmess_ws_frame_end(ws);
        }
    }

    *out_len = w - out;

    return VMESS_OK;
}


static int
vmess_ws_frame_start(vmess_ws_t *ws)
{
    size_t    i;
    uint8_t  *h;
    uint64_t  len;
    unsigned  opcode;
    int       fin;

    h = ws->hdr;

    fin = (h[0] & 0x80) != 0;
    opcode = h[0] & 0x0f;
    len = h[1] & 0x7f;

    if (len == 126) {
        len = ((uint64_t) h[2] << 8) | h[3];

    } else if (len == 127) {
        len = 0;

        for (i = 2; i < 10; i++) {
            len = (len << 8) | h[i];
        }
    }

    memcpy(ws->mask, h + ws->hlen - 4, 4);
    ws->mpos = 0;
    ws->hlen = 0;
    ws->left = len;
    ws->opcode = opcode;
    ws->fin = fin;
    ws->control = (opcode & 0x08) ? 1 : 0;
    ws->ctl_len = 0;

    /* the first problem, in this order, is the one reported */

    if (h[0] & 0x70) {
        return VMESS_ERR_WS_RESERVED;
    }

    if (!(h[1] & 0x80)) {
        return VMESS_ERR_WS_UNMASKED;
    }

    if (ws->control) {

        if (opcode != VMESS_WS_CLOSE && opcode != VMESS_WS_PING
            && opcode != VMESS_WS_PONG)
        {
            return VMESS_ERR_WS_OPCODE;
        }

        if (!fin || len > VMESS_WS_CONTROL_MAX) {
            return VMESS_ERR_WS_CONTROL;
        }

    } else if (opcode == VMESS_WS_CONT) {

        if (!ws->in_message) {
            return VMESS_ERR_WS_CONTINUATION;
        }

    } else if (opcode == VMESS_WS_BINARY) {

        if (ws->in_message) {
            return VMESS_ERR_WS_UNFINISHED;
        }

    } else {
        return (opcode == VMESS_WS_TEXT) ? VMESS_ERR_WS_TEXT
                                         : VMESS_ERR_WS_OPCODE;
    }

    if (len > ws->max_frame) {
        return VMESS_ERR_WS_TOO_LARGE;
    }

    ws->in_payload = 1;

    return VMESS_OK;
}


static void
vmess_ws_frame_end(vmess_ws_t *ws)
{
    ws->in_payload = 0;

    if (!ws->control) {
        ws->in_message = !ws->fin;
        return;
    }

    switch (ws->opcode) {

    case VMESS_WS_PING:
        /* answer the latest ping only (RFC 6455, 5.5.3) */
        memcpy(ws->reply, ws->ctl, ws->ctl_len);
        ws->reply_len = ws->ctl_len;
        ws->reply_opcode = VMESS_WS_PONG;
        break;

    case VMESS_WS_CLOSE:
        /* echo the status code */
        ws->reply_len = ws->ctl_len < 2 ? ws->ctl_len : 2;
        memcpy(ws->reply, ws->ctl, ws->reply_len);
        ws->reply_opcode = VMESS_WS_CLOSE;
        ws->closed = 1;
        break;

    default:
        /* a pong */
        break;
    }
}


size_t
vmess_ws_frame_header_len(uint64_t len, int masked)
{
    size_t  n;

    n = (len < 126) ? 2 : (len <= 0xffff) ? 4 : 10;

    return masked ? n + 4 : n;
}


size_t
vmess_ws_frame_header(uint8_t *p, int fin, unsigned opcode, uint64_t len,
    const uint8_t mask[4])
{
    int       i;
    uint8_t  *start, masked;

    start = p;
    masked = mask ? 0x80 : 0;

    *p++ = (uint8_t) ((fin ? 0x80 : 0) | (opcode & 0x0f));

    if (len < 126) {
        *p++ = (uint8_t) (masked | len);

    } else if (len <= 0xffff) {
        *p++ = masked | 126;
        *p++ = (uint8_t) (len >> 8);
        *p++ = (uint8_t) len;

    } else {
        *p++ = masked | 127;

        for (i = 7; i >= 0; i--) {
            *p++ = (uint8_t) (len >> (8 * i));
        }
    }

    if (mask) {
        memcpy(p, mask, 4);
        p += 4;
    }

    return p - start;
}
