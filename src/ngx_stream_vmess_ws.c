/*
 * ngx_stream_vmess_module: the WebSocket transport ("vmess_websocket").
 *
 * Preread: the HTTP/1.1 upgrade request is checked in c->buffer; a GET on
 * the configured path with a valid handshake gets "101 Switching
 * Protocols" (written here with c->send), anything else goes to
 * vmess_fallback with the bytes untouched.  After the 101 the module
 * unframes the client's frames in place, so that c->buffer->pos..last
 * holds plain VMess bytes (early data first) for the header parse and for
 * the proxy's preread copy.
 *
 * Filter: client frames read by the proxy are unframed in place before
 * the VMess decode; the encoder's buffers leave headroom for a server
 * frame header (and a queued pong or close) in front of each buffer.
 *
 * The frame parser is resumable: it keeps a partial frame header, the
 * mask position and a control frame's payload in its state, and always
 * consumes all of its input.
 */

#include <ngx_sha1.h>

#include "ngx_stream_vmess_module.h"


#define NGX_STREAM_VMESS_WS_HEADER_MAX  8192
#define NGX_STREAM_VMESS_WS_FRAME_MAX   (1024 * 1024)

#define NGX_STREAM_VMESS_WS_CONT        0x0
#define NGX_STREAM_VMESS_WS_TEXT        0x1
#define NGX_STREAM_VMESS_WS_BINARY      0x2
#define NGX_STREAM_VMESS_WS_CLOSE       0x8
#define NGX_STREAM_VMESS_WS_PING        0x9
#define NGX_STREAM_VMESS_WS_PONG        0xa

#define NGX_STREAM_VMESS_WS_ST_HEADER   0
#define NGX_STREAM_VMESS_WS_ST_PAYLOAD  1


typedef struct {
    ngx_str_t                       key;
    ngx_str_t                       protocol;
    ngx_str_t                       real_ip;
    size_t                          header_len;
} ngx_stream_vmess_ws_request_t;


static ngx_int_t ngx_stream_vmess_ws_request(ngx_stream_session_t *s,
    ngx_stream_vmess_ws_conf_t *wscf, ngx_stream_vmess_ws_request_t *r,
    const char **reason);
static ngx_int_t ngx_stream_vmess_ws_header(ngx_stream_vmess_ws_conf_t *wscf,
    ngx_stream_vmess_ws_request_t *r, u_char *name, size_t nlen,
    u_char *value, size_t vlen, ngx_uint_t *seen, const char **reason);
static ngx_uint_t ngx_stream_vmess_ws_token(u_char *p, size_t len,
    const char *token);
static ngx_int_t ngx_stream_vmess_ws_accept(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_ws_request_t *r);
static ngx_int_t ngx_stream_vmess_ws_real_ip(ngx_stream_session_t *s,
    ngx_str_t *value);
static ngx_int_t ngx_stream_vmess_ws_fallback(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf,
    const char *reason);
static ngx_int_t ngx_stream_vmess_ws_unframe(ngx_stream_session_t *s,
    ngx_stream_vmess_ws_t *ws, u_char *p, u_char *last, u_char **w);
static ngx_int_t ngx_stream_vmess_ws_frame_start(ngx_stream_session_t *s,
    ngx_stream_vmess_ws_t *ws);
static void ngx_stream_vmess_ws_frame_end(ngx_stream_vmess_ws_t *ws);
static u_char *ngx_stream_vmess_ws_frame_header(u_char *p, ngx_uint_t opcode,
    size_t len);


static u_char  ngx_stream_vmess_ws_guid[] =
    "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";


/*
 * Returns NGX_DECLINED when the VMess preread goes on with unframed bytes
 * in c->buffer, else what the preread handler returns.
 */

ngx_int_t
ngx_stream_vmess_ws_preread(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf)
{
    u_char                         *p, *raw;
    ngx_int_t                       rc;
    const char                     *reason;
    ngx_connection_t               *c;
    ngx_stream_vmess_ws_t          *ws;
    ngx_stream_vmess_ws_request_t   r;

    c = s->connection;

    if (ctx->state == NGX_STREAM_VMESS_FALLBACK
        || ctx->state == NGX_STREAM_VMESS_ACTIVE)
    {
        return NGX_DECLINED;
    }

    ws = ctx->ws;

    if (ws == NULL) {
        ngx_memzero(&r, sizeof(ngx_stream_vmess_ws_request_t));
        reason = NULL;

        rc = ngx_stream_vmess_ws_request(s, vscf->ws, &r, &reason);

        if (rc == NGX_AGAIN) {
            return NGX_AGAIN;
        }

        if (rc != NGX_OK) {
            return ngx_stream_vmess_ws_fallback(s, ctx, vscf, reason);
        }

        if (r.real_ip.len && ngx_stream_vmess_ws_real_ip(s, &r.real_ip)
                             != NGX_OK)
        {
            return NGX_ERROR;
        }

        rc = ngx_stream_vmess_ws_accept(s, ctx, &r);

        if (rc != NGX_OK) {
            return rc;
        }

        ws = ctx->ws;
        ws->max_frame = vscf->ws->max_frame;
        raw = c->buffer->pos + r.header_len;

        /* early data first, then the payload of the frames that follow */

        p = c->buffer->pos;

        if (r.protocol.len) {
            if (ngx_decode_base64url(&ws->early, &r.protocol) != NGX_OK) {
                ngx_log_error(NGX_LOG_INFO, c->log, 0,
                              "vmess websocket: bad early data");
                return NGX_STREAM_BAD_REQUEST;
            }

            p = ngx_cpymem(p, ws->early.data, ws->early.len);
        }

        ws->w = p;

        ngx_log_debug2(NGX_LOG_DEBUG_STREAM, c->log, 0,
                       "vmess websocket: handshake %uz bytes, early %uz",
                       r.header_len, ws->early.len);

    } else {
        raw = ws->w;
    }

    /* the bytes the preread checker appended since the last call */

    if (ngx_stream_vmess_ws_unframe(s, ws, raw, c->buffer->last, &ws->w)
        != NGX_OK)
    {
        return NGX_STREAM_BAD_REQUEST;
    }

    c->buffer->last = ws->w;

    if (ws->closed) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "vmess websocket: closed before the VMess header");
        return NGX_STREAM_OK;
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_stream_vmess_ws_request(ngx_stream_session_t *s,
    ngx_stream_vmess_ws_conf_t *wscf, ngx_stream_vmess_ws_request_t *r,
    const char **reason)
{
    u_char      *p, *last, *end, *line, *colon, *v, *ve;
    size_t       n, limit;
    ngx_uint_t   seen;
    ngx_buf_t   *b;

    b = s->connection->buffer;
    p = b->pos;
    last = b->last;

    /* "GET /path " or "GET /path?": decide on the request line's start */

    n = ngx_min((size_t) (last - p), 4 + wscf->path.len);

    if (ngx_strncmp(p, "GET ", ngx_min(n, 4)) != 0
        || (n > 4 && ngx_strncmp(p + 4, wscf->path.data, n - 4) != 0))
    {
        *reason = "not a request for the websocket path";
        return NGX_DECLINED;
    }

    if ((size_t) (last - p) <= 4 + wscf->path.len) {
        return NGX_AGAIN;
    }

    p += 4 + wscf->path.len;

    if (*p != ' ' && *p != '?') {
        *reason = "not a request for the websocket path";
        return NGX_DECLINED;
    }

    limit = ngx_min((size_t) (b->end - b->pos),
                    NGX_STREAM_VMESS_WS_HEADER_MAX);

    end = ngx_strlcasestrn(b->pos, ngx_min(last, b->pos + limit),
                           (u_char *) "\r\n\r\n", 4 - 1);

    if (end == NULL) {
        if ((size_t) (last - b->pos) >= limit) {
            *reason = "request header too large";
            return NGX_DECLINED;
        }

        return NGX_AGAIN;
    }

    end += 4;
    r->header_len = end - b->pos;

    /* the rest of the request line: " HTTP/1.1\r\n" after the target */

    line = ngx_strlchr(p, end, LF);

    if (line - p < 10
        || ngx_strncmp(line - 10, " HTTP/1.1\r", 10) != 0
        || ngx_strlchr(p, line - 10, ' ') != NULL)
    {
        *reason = "bad request line";
        return NGX_DECLINED;
    }

    seen = 0;
    p = line + 1;

    while (p < end - 2) {
        line = ngx_strlchr(p, end, LF);

        if (line == NULL || line == p || line[-1] != CR) {
            *reason = "bad header line";
            return NGX_DECLINED;
        }

        colon = ngx_strlchr(p, line, ':');

        if (colon == NULL || colon == p) {
            *reason = "bad header line";
            return NGX_DECLINED;
        }

        v = colon + 1;
        ve = line - 1;

        while (v < ve && (*v == ' ' || *v == '\t')) {
            v++;
        }

        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) {
            ve--;
        }

        if (ngx_stream_vmess_ws_header(wscf, r, p, colon - p, v, ve - v,
                                       &seen, reason)
            != NGX_OK)
        {
            return NGX_DECLINED;
        }

        p = line + 1;
    }

    if (seen != 0x1f) {
        *reason = (seen & 0x01) ? "incomplete websocket handshake"
                                : "no websocket upgrade";
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* seen: 1 upgrade, 2 connection, 4 key, 8 version, 0x10 host */

static ngx_int_t
ngx_stream_vmess_ws_header(ngx_stream_vmess_ws_conf_t *wscf,
    ngx_stream_vmess_ws_request_t *r, u_char *name, size_t nlen,
    u_char *value, size_t vlen, ngx_uint_t *seen, const char **reason)
{
    u_char     key[24], *colon;
    size_t     hlen;
    ngx_str_t  src, dst;

#define ngx_ws_is(s)                                                         \
    (nlen == sizeof(s) - 1 && ngx_strncasecmp(name, (u_char *) s, nlen) == 0)

    if (wscf->host.len == 0) {
        *seen |= 0x10;
    }

    if (ngx_ws_is("Upgrade")) {
        if (vlen != 9 || ngx_strncasecmp(value, (u_char *) "websocket", 9)
                         != 0)
        {
            *reason = "no websocket upgrade";
            return NGX_DECLINED;
        }

        *seen |= 0x01;

    } else if (ngx_ws_is("Connection")) {
        if (ngx_stream_vmess_ws_token(value, vlen, "upgrade")) {
            *seen |= 0x02;
        }

    } else if (ngx_ws_is("Sec-WebSocket-Key")) {
        src.data = value;
        src.len = vlen;
        dst.data = key;

        if (vlen != 24 || ngx_decode_base64(&dst, &src) != NGX_OK
            || dst.len != 16)
        {
            *reason = "bad Sec-WebSocket-Key";
            return NGX_DECLINED;
        }

        r->key = src;
        *seen |= 0x04;

    } else if (ngx_ws_is("Sec-WebSocket-Version")) {
        if (vlen != 2 || value[0] != '1' || value[1] != '3') {
            *reason = "unsupported Sec-WebSocket-Version";
            return NGX_DECLINED;
        }

        *seen |= 0x08;

    } else if (ngx_ws_is("Sec-WebSocket-Protocol")) {
        r->protocol.data = value;
        r->protocol.len = vlen;

    } else if (ngx_ws_is("Host") && wscf->host.len) {
        hlen = vlen;

        if (hlen && value[0] != '[') {
            colon = ngx_strlchr(value, value + vlen, ':');

            if (colon) {
                hlen = colon - value;
            }
        }

        if (hlen != wscf->host.len
            || ngx_strncasecmp(value, wscf->host.data, hlen) != 0)
        {
            *reason = "other host";
            return NGX_DECLINED;
        }

        *seen |= 0x10;

    } else if (wscf->real_ip_header.len
               && nlen == wscf->real_ip_header.len
               && ngx_strncasecmp(name, wscf->real_ip_header.data, nlen)
                  == 0)
    {
        r->real_ip.data = value;
        r->real_ip.len = vlen;
    }

#undef ngx_ws_is

    return NGX_OK;
}


/* a token in a comma separated list, case-insensitive */

static ngx_uint_t
ngx_stream_vmess_ws_token(u_char *p, size_t len, const char *token)
{
    u_char  *last, *e;
    size_t   n;

    n = ngx_strlen(token);
    last = p + len;

    while (p < last) {
        while (p < last && (*p == ' ' || *p == '\t' || *p == ',')) {
            p++;
        }

        e = p;

        while (e < last && *e != ',' && *e != ' ' && *e != '\t') {
            e++;
        }

        if ((size_t) (e - p) == n && ngx_strncasecmp(p, (u_char *) token, n)
                                     == 0)
        {
            return 1;
        }

        p = e;
    }

    return 0;
}


static ngx_int_t
ngx_stream_vmess_ws_accept(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_ws_request_t *r)
{
    u_char                 *p, *out, hash[20], accept[28];
    ssize_t                 n;
    ngx_str_t               src, dst;
    ngx_sha1_t              sha1;
    ngx_connection_t       *c;
    ngx_stream_vmess_ws_t  *ws;

    c = s->connection;

    ws = ngx_pcalloc(c->pool, sizeof(ngx_stream_vmess_ws_t));
    if (ws == NULL) {
        return NGX_ERROR;
    }

    if (r->protocol.len) {
        ws->early.data = ngx_pnalloc(c->pool,
                                     ngx_base64_decoded_length(
                                         r->protocol.len));
        if (ws->early.data == NULL) {
            return NGX_ERROR;
        }
    }

    ngx_sha1_init(&sha1);
    ngx_sha1_update(&sha1, r->key.data, r->key.len);
    ngx_sha1_update(&sha1, ngx_stream_vmess_ws_guid,
                    sizeof(ngx_stream_vmess_ws_guid) - 1);
    ngx_sha1_final(hash, &sha1);

    src.data = hash;
    src.len = 20;
    dst.data = accept;
    ngx_encode_base64(&dst, &src);

    out = ngx_pnalloc(c->pool, 256 + r->protocol.len);
    if (out == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(out, "HTTP/1.1 101 Switching Protocols\r\n"
                   "Upgrade: websocket\r\n"
                   "Connection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: ",
                   sizeof("HTTP/1.1 101 Switching Protocols\r\n"
                          "Upgrade: websocket\r\n"
                          "Connection: Upgrade\r\n"
                          "Sec-WebSocket-Accept: ") - 1);
    p = ngx_cpymem(p, dst.data, dst.len);
    *p++ = CR; *p++ = LF;

    if (r->protocol.len) {
        p = ngx_cpymem(p, "Sec-WebSocket-Protocol: ",
                       sizeof("Sec-WebSocket-Protocol: ") - 1);
        p = ngx_cpymem(p, r->protocol.data, r->protocol.len);
        *p++ = CR; *p++ = LF;
    }

    *p++ = CR; *p++ = LF;

    /* a fresh connection: the short response fits in the socket buffer */

    n = c->send(c, out, p - out);

    if (n != p - out) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "vmess websocket: 101 response not sent");
        return NGX_STREAM_OK;
    }

    ctx->ws = ws;

    return NGX_OK;
}


/*
 * The front server's header (for example X-Real-IP set by an http
 * proxy_pass to a unix socket) becomes $remote_addr; honoured on unix
 * socket connections only.
 */

static ngx_int_t
ngx_stream_vmess_ws_real_ip(ngx_stream_session_t *s, ngx_str_t *value)
{
    u_char            *p;
    ngx_addr_t         addr;
    ngx_connection_t  *c;

    c = s->connection;

    if (c->sockaddr->sa_family != AF_UNIX) {
        return NGX_OK;
    }

    if (ngx_parse_addr(c->pool, &addr, value->data, value->len) != NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "vmess websocket: bad real ip \"%V\"", value);
        return NGX_OK;
    }

    p = ngx_pnalloc(c->pool, value->len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, value->data, value->len);

    c->sockaddr = addr.sockaddr;
    c->socklen = addr.socklen;
    c->addr_text.data = p;
    c->addr_text.len = value->len;

    return NGX_OK;
}


static ngx_int_t
ngx_stream_vmess_ws_fallback(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf,
    const char *reason)
{
    ngx_connection_t  *c;

    c = s->connection;

    ctx->status = NGX_STREAM_VMESS_ST_FALLBACK;

    if (vscf->fallback.len == 0) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "vmess websocket: %s, closing", reason);
        ctx->state = NGX_STREAM_VMESS_REFUSED;
        return NGX_STREAM_OK;
    }

    ngx_log_error(NGX_LOG_INFO, c->log, 0,
                  "vmess websocket: %s, fallback to %V",
                  reason, &vscf->fallback);

    ctx->state = NGX_STREAM_VMESS_FALLBACK;
    ctx->target = vscf->fallback;

    return NGX_OK;
}


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


static ngx_int_t
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


char *
ngx_stream_vmess_websocket(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_vmess_srv_conf_t *vscf = conf;

    ssize_t                      size;
    ngx_str_t                   *value, s;
    ngx_uint_t                   i;
    ngx_stream_vmess_ws_conf_t  *wscf;

    if (vscf->ws) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0 || value[1].data[0] != '/'
        || ngx_strlchr(value[1].data, value[1].data + value[1].len, ' ')
        || ngx_strlchr(value[1].data, value[1].data + value[1].len, '?'))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid websocket path \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    wscf = ngx_pcalloc(cf->pool, sizeof(ngx_stream_vmess_ws_conf_t));
    if (wscf == NULL) {
        return NGX_CONF_ERROR;
    }

    wscf->path = value[1];
    wscf->max_frame = NGX_STREAM_VMESS_WS_FRAME_MAX;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "host=", 5) == 0
            && value[i].len > 5)
        {
            wscf->host.data = value[i].data + 5;
            wscf->host.len = value[i].len - 5;
            continue;
        }

        if (ngx_strncmp(value[i].data, "max_frame=", 10) == 0) {
            s.data = value[i].data + 10;
            s.len = value[i].len - 10;

            size = ngx_parse_size(&s);

            if (size <= 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid max_frame \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            wscf->max_frame = size;
            continue;
        }

        if (ngx_strncmp(value[i].data, "real_ip_header=", 15) == 0
            && value[i].len > 15)
        {
            wscf->real_ip_header.data = value[i].data + 15;
            wscf->real_ip_header.len = value[i].len - 15;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    vscf->ws = wscf;

    return NGX_CONF_OK;
}
