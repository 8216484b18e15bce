/*
 * ngx_stream_vmess_module: WebSocket frames (RFC 6455) of the transport.
 *
 * Client frames are unframed in place (payload bytes never overtake the
 * frame bytes they come from), in the preread buffer and in the proxy's
 * buffers; the encoder's buffers leave headroom for a server frame header
 * (and a queued pong or close) in front of each buffer.
 *
 * The frames themselves are read and written by the protocol core
 * (src/vmess/vmess_ws.c).
 */

#include "ngx_stream_vmess_module.h"


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

    if (ctx->ws->frames.closed) {
        /* the client's close frame ends its side like a FIN */
        ctx->dir[0].last = 1;
    }

    return NGX_OK;
}


ngx_int_t
ngx_stream_vmess_ws_unframe(ngx_stream_session_t *s, ngx_stream_vmess_ws_t *ws,
    u_char *p, u_char *last, u_char **wp)
{
    int                rc;
    size_t             n;
    ngx_connection_t  *c;

    rc = vmess_ws_unframe(&ws->frames, p, last - p, *wp, &n);

    if (rc == VMESS_OK) {
        *wp += n;
        return NGX_OK;
    }

    c = s->connection;

    if (rc == VMESS_ERR_WS_TOO_LARGE) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "vmess websocket: frame of %uL bytes too large, "
                      "closing", ws->frames.left);
        return NGX_ERROR;
    }

    ngx_log_error(NGX_LOG_INFO, c->log, 0,
                  "vmess websocket: %s, closing", vmess_strerror(rc));

    return NGX_ERROR;
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
    vmess_ws_t             *frames;
    ngx_stream_vmess_ws_t  *ws;

    ws = ctx->ws;
    frames = &ws->frames;
    len = b->last - b->pos;

    if (ws->close_sent) {
        /* nothing may follow a close frame */
        b->pos = b->last;
        frames->reply_opcode = 0;
        return;
    }

    if (len) {
        p = b->pos - vmess_ws_frame_header_len(len, 0);
        (void) vmess_ws_frame_header(p, 1, VMESS_WS_BINARY, len, NULL);
        b->pos = p;
    }

    if (frames->reply_opcode) {
        p = b->pos - vmess_ws_frame_header_len(frames->reply_len, 0)
            - frames->reply_len;
        len = vmess_ws_frame_header(p, 1, frames->reply_opcode,
                                    frames->reply_len, NULL);
        ngx_memcpy(p + len, frames->reply, frames->reply_len);
        b->pos = p;

        if (frames->reply_opcode == VMESS_WS_CLOSE) {
            /* the data frame after it is dropped */
            ws->close_sent = 1;
            b->last = b->pos + len + frames->reply_len;
        }

        frames->reply_opcode = 0;
    }

    if (b->last_buf && !ws->close_sent) {
        /* 1000, normal closure */
        b->last += vmess_ws_frame_header(b->last, 1, VMESS_WS_CLOSE, 2,
                                         NULL);
        *b->last++ = 0x03;
        *b->last++ = 0xe8;
        ws->close_sent = 1;
    }

    if (b->last > b->pos) {
        b->temporary = 1;
    }
}
