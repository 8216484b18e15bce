/*
 * ngx_stream_vmess_module: WebSocket frames (RFC 6455) of the transport.
 *
 * Client frames are unframed in place (payload bytes never overtake the
 * frame bytes they come from), in the preread buffer and in the proxy's
 * buffers; the encoder's buffers leave headroom for a server frame header
 * (and a queued pong or close) in front of each buffer.
 *
 * The frame parser is resumable: it keeps a partial frame header, the
 * mask position and a control frame's payload in its state, and always
 * consumes all of its input.
 */

#include "ngx_stream_vmess_module.h"


#define NGX_STREAM_VMESS_WS_CONT        0x0
#define NGX_STREAM_VMESS_WS_TEXT        0x1
#define NGX_STREAM_VMESS_WS_BINARY      0x2
#define NGX_STREAM_VMESS_WS_CLOSE       0x8
#define NGX_STREAM_VMESS_WS_PING        0x9
#define NGX_STREAM_VMESS_WS_PONG        0xa

#define NGX_STREAM_VMESS_WS_ST_HEADER   0
#define NGX_STREAM_VMESS_WS_ST_PAYLOAD  1


static ngx_int_t ngx_stream_vmess_ws_frame_start(ngx_stream_session_t *s,
    ngx_stream_vmess_ws_t *ws);
static void ngx_stream_vmess_ws_frame_end(ngx_stream_vmess_ws_t *ws);
static u_char *ngx_stream_vmess_ws_frame_header(u_char *p, ngx_uint_t opcode,
    size_t len);


/*
 * The proxy's buffer of client bytes: unframe it in place (payload bytes
 * never overtake the frame bytes they come from).  The unframer writes
 * from *wp on and leaves its end there.
 */

ngx_int_t
ngx_stream_vmess_ws_input(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_buf_t *b)
{
    u_char            *w;
    ngx_connection_t  *c;

    c = s->connection;

    if (ngx_buf_size(b) == 0 || !ngx_buf_in_memory(b)) {
        return NGX_OK;
    }

    /* the preread remainder was unframed in preread */

    if (c->buffer && b->pos >= c->buffer->start && b->pos < c->buffer->end) {
        return NGX_OK;
    }

    if (ctx->proxy_protocol && !ctx->ws->proxy_protocol_seen) {
        ctx->ws->proxy_protocol_seen = 1;
        return NGX_OK;
    }

    ctx->ws->proxy_protocol_seen = 1;

    w = b->pos;

    if (ngx_stream_vmess_ws_unframe(s, ctx->ws, b->pos, b->last, &w)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    b->last = w;

    if (ctx->ws->closed) {
        /* the client's close frame ends its side like a FIN */
        ctx->dir[0].last = 1;
    }

    return NGX_OK;
}


ngx_int_t
ngx_stream_vmess_ws_unframe(ngx_stream_session_t *s, ngx_stream_vmess_ws_t *ws,
    u_char *p, u_char *last, u_char **wp)
{
    u_char  *w;
    size_t   n, i;

    w = *wp;

    while (p < last) {

        if (ws->closed) {
            /* nothing after a close frame counts */
            p = last;
            break;
        }

        if (ws->state == NGX_STREAM_VMESS_WS_ST_HEADER) {

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

            if (ngx_stream_vmess_ws_frame_start(s, ws) != NGX_OK) {
                return NGX_ERROR;
            }

            if (ws->left == 0) {
                ngx_stream_vmess_ws_frame_end(ws);
            }

            continue;
        }

        n = ngx_min((uint64_t) (last - p), ws->left);

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
            ngx_stream_vmess_ws_frame_end(ws);
        }
    }

    *wp = w;

    return NGX_OK;
}


static ngx_int_t
ngx_stream_vmess_ws_frame_start(ngx_stream_session_t *s,
    ngx_stream_vmess_ws_t *ws)
{
    u_char             *h;
    uint64_t            len;
    ngx_uint_t          i, opcode, fin;
    const char         *err;
    ngx_connection_t   *c;

    c = s->connection;
    h = ws->hdr;

    fin = h[0] & 0x80;
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

    ngx_memcpy(ws->mask, h + ws->hlen - 4, 4);
    ws->mpos = 0;
    ws->hlen = 0;
    ws->left = len;
    ws->opcode = opcode;
    ws->fin = fin ? 1 : 0;
    ws->control = (opcode & 0x08) ? 1 : 0;
    ws->ctl_len = 0;

    err = NULL;

    if (h[0] & 0x70) {
        err = "reserved bits set";

    } else if (!(h[1] & 0x80)) {
        err = "unmasked client frame";

    } else if (ws->control) {

        if (opcode != NGX_STREAM_VMESS_WS_CLOSE
            && opcode != NGX_STREAM_VMESS_WS_PING
            && opcode != NGX_STREAM_VMESS_WS_PONG)
        {
            err = "unknown opcode";

        } else if (!fin || len > 125) {
            err = "bad control frame";
        }

    } else if (opcode == NGX_STREAM_VMESS_WS_CONT) {

        if (!ws->in_message) {
            err = "unexpected continuation frame";
        }

    } else if (opcode == NGX_STREAM_VMESS_WS_BINARY) {

        if (ws->in_message) {
            err = "unfinished fragmented message";
        }

    } else {
        err = (opcode == NGX_STREAM_VMESS_WS_TEXT) ? "text frame"
                                                   : "unknown opcode";
    }

    if (err == NULL && len > ws->max_frame) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "vmess websocket: frame of %uL bytes too large, "
                      "closing", len);
        return NGX_ERROR;
    }

    if (err) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "vmess websocket: %s, closing", err);
        return NGX_ERROR;
    }

    ws->state = NGX_STREAM_VMESS_WS_ST_PAYLOAD;

    return NGX_OK;
}


static void
ngx_stream_vmess_ws_frame_end(ngx_stream_vmess_ws_t *ws)
{
    ws->state = NGX_STREAM_VMESS_WS_ST_HEADER;

    if (!ws->control) {
        ws->in_message = !ws->fin;
        return;
    }

    switch (ws->opcode) {

    case NGX_STREAM_VMESS_WS_PING:
        /* answer the latest ping only (RFC 6455, 5.5.3) */
        ngx_memcpy(ws->reply, ws->ctl, ws->ctl_len);
        ws->reply_len = ws->ctl_len;
        ws->reply_opcode = NGX_STREAM_VMESS_WS_PONG;
        break;

    case NGX_STREAM_VMESS_WS_CLOSE:
        /* echo the status code */
        ws->reply_len = ngx_min(ws->ctl_len, 2);
        ngx_memcpy(ws->reply, ws->ctl, ws->reply_len);
        ws->reply_opcode = NGX_STREAM_VMESS_WS_CLOSE;
        ws->closed = 1;
        break;

    default:
        /* a pong */
        break;
    }
}


/*
 * The encoder filled b->pos..last (pos at start + headroom):
 * put a binary frame header, and a queued pong or close, in front of it;
 * after the VMess end chunk, append a close frame.  The filter then keeps
 * the client connection "buffered" until the client's close frame (or its
 * EOF) arrives: closing earlier makes the client's answer arrive after
 * nginx's TLS close_notify, which nginx 1.22 logs at crit.
 */

void
ngx_stream_vmess_ws_wrap(ngx_stream_vmess_ctx_t *ctx, ngx_buf_t *b)
{
    u_char                 *p;
    size_t                  len;
    ngx_stream_vmess_ws_t  *ws;

    ws = ctx->ws;
    len = b->last - b->pos;

    if (ws->close_sent) {
        /* nothing may follow a close frame */
        b->pos = b->last;
        ws->reply_opcode = 0;
        return;
    }

    if (len) {
        p = b->pos - (len < 126 ? 2 : 4);
        (void) ngx_stream_vmess_ws_frame_header(p, NGX_STREAM_VMESS_WS_BINARY,
                                                len);
        b->pos = p;
    }

    if (ws->reply_opcode) {
        p = b->pos - 2 - ws->reply_len;
        ngx_memcpy(ngx_stream_vmess_ws_frame_header(p, ws->reply_opcode,
                                                    ws->reply_len),
                   ws->reply, ws->reply_len);
        b->pos = p;

        if (ws->reply_opcode == NGX_STREAM_VMESS_WS_CLOSE) {
            /* the data frame after it is dropped */
            ws->close_sent = 1;
            b->last = b->pos + 2 + ws->reply_len;
        }

        ws->reply_opcode = 0;
    }

    if (b->last_buf && !ws->close_sent) {
        /* 1000, normal closure */
        b->last = ngx_stream_vmess_ws_frame_header(b->last,
                                                   NGX_STREAM_VMESS_WS_CLOSE,
                                                   2);
        *b->last++ = 0x03;
        *b->last++ = 0xe8;
        ws->close_sent = 1;
    }

    if (b->last > b->pos) {
        b->temporary = 1;
    }
}


static u_char *
ngx_stream_vmess_ws_frame_header(u_char *p, ngx_uint_t opcode, size_t len)
{
    *p++ = (u_char) (0x80 | opcode);

    if (len < 126) {
        *p++ = (u_char) len;

    } else {
        *p++ = 126;
        *p++ = (u_char) (len >> 8);
        *p++ = (u_char) len;
    }

    return p;
}
