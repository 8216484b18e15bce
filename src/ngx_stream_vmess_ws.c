/*
 * ngx_stream_vmess_module: the HTTP upgrade transports, "vmess_websocket"
 * and "vmess_httpupgrade", their handshake.
 *
 * Preread: bytes that begin "GET <path>" for one of the server's paths
 * are read as an HTTP/1.1 upgrade request in c->buffer; a valid handshake
 * gets "101 Switching Protocols" (written here with c->send), a bad one
 * goes to vmess_fallback with the bytes untouched.  Any other bytes are
 * raw VMess (an AuthID is no request line).  After a WebSocket 101 the
 * frames are unframed in place (ngx_stream_vmess_ws_frame.c), so that
 * c->buffer->pos..last holds plain VMess bytes (early data first) for the
 * header parse and for the proxy's preread copy; after an HTTPUpgrade 101
 * the VMess bytes follow the request as they are.
 */

#include <ngx_sha1.h>

#include "ngx_stream_vmess_module.h"


#define NGX_STREAM_VMESS_WS_HEADER_MAX  8192
#define NGX_STREAM_VMESS_WS_FRAME_MAX   (1024 * 1024)


/* the headers a handshake needs, ngx_stream_vmess_ws_request_t.seen */
#define NGX_STREAM_VMESS_WS_UPGRADE     0x01
#define NGX_STREAM_VMESS_WS_CONNECTION  0x02
#define NGX_STREAM_VMESS_WS_KEY         0x04
#define NGX_STREAM_VMESS_WS_VERSION     0x08
#define NGX_STREAM_VMESS_WS_HOST        0x10

#define NGX_STREAM_VMESS_HU_NEEDS                                          \
    (NGX_STREAM_VMESS_WS_UPGRADE|NGX_STREAM_VMESS_WS_CONNECTION             \
     |NGX_STREAM_VMESS_WS_HOST)
#define NGX_STREAM_VMESS_WS_NEEDS                                          \
    (NGX_STREAM_VMESS_HU_NEEDS|NGX_STREAM_VMESS_WS_KEY                      \
     |NGX_STREAM_VMESS_WS_VERSION)


typedef struct {
    ngx_stream_vmess_ws_conf_t     *conf;       /* whose path it asks for */
    ngx_str_t                       key;
    ngx_str_t                       protocol;
    ngx_str_t                       real_ip;
    size_t                          header_len;
    ngx_uint_t                      seen;
} ngx_stream_vmess_ws_request_t;

static ngx_int_t ngx_stream_vmess_ws_handshake(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf,
    u_char **raw);
static ngx_int_t ngx_stream_vmess_ws_path(ngx_buf_t *b,
    ngx_stream_vmess_srv_conf_t *vscf, ngx_stream_vmess_ws_conf_t **conf);
static ngx_int_t ngx_stream_vmess_ws_path_match(ngx_buf_t *b,
    ngx_str_t *path);
static ngx_int_t ngx_stream_vmess_ws_request(ngx_stream_session_t *s,
    ngx_stream_vmess_ws_request_t *r, const char **reason);
static ngx_int_t ngx_stream_vmess_ws_header(ngx_stream_vmess_ws_request_t *r,
    u_char *name, size_t nlen, u_char *value, size_t vlen,
    const char **reason);
static ngx_uint_t ngx_stream_vmess_ws_token(u_char *p, size_t len,
    const char *token);
static ngx_int_t ngx_stream_vmess_ws_accept(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_ws_request_t *r);
static ngx_int_t ngx_stream_vmess_ws_respond(ngx_stream_session_t *s,
    ngx_stream_vmess_ws_request_t *r);
static ngx_int_t ngx_stream_vmess_ws_real_ip(ngx_stream_session_t *s,
    ngx_stream_vmess_ws_request_t *r);
static ngx_int_t ngx_stream_vmess_ws_fallback(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf,
    ngx_stream_vmess_ws_conf_t *conf, const char *reason);
static const char *ngx_stream_vmess_ws_name(ngx_stream_vmess_ws_conf_t *conf);


static u_char  ngx_stream_vmess_ws_guid[] =
    "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";


/*
 * Returns NGX_DECLINED when the VMess preread goes on with VMess bytes at
 * c->buffer->pos, else what the preread handler returns.
 */

ngx_int_t
ngx_stream_vmess_ws_preread(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf)
{
    u_char                 *raw;
    ngx_int_t               rc;
    ngx_connection_t       *c;
    ngx_stream_vmess_ws_t  *ws;

    c = s->connection;

    if (ctx->state == NGX_STREAM_VMESS_FALLBACK
        || ctx->state == NGX_STREAM_VMESS_ACTIVE)
    {
        return NGX_DECLINED;
    }

    ws = ctx->ws;

    if (ws == NULL) {

        if (ctx->upgraded || ctx->state != NGX_STREAM_VMESS_AUTH) {
            /* after an HTTPUpgrade 101, or raw VMess past its AuthID */
            return NGX_DECLINED;
        }

        raw = NULL;

        rc = ngx_stream_vmess_ws_handshake(s, ctx, vscf, &raw);

        if (rc != NGX_DECLINED || ctx->ws == NULL) {
            return rc;
        }

        ws = ctx->ws;

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


/*
 * NGX_DECLINED: VMess bytes follow, raw or after an HTTPUpgrade 101; or,
 * with ctx->ws set, WebSocket frames from *raw on.  Else what the preread
 * handler returns.
 */

static ngx_int_t
ngx_stream_vmess_ws_handshake(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf,
    u_char **raw)
{
    u_char                         *p;
    ngx_int_t                       rc;
    const char                     *reason;
    ngx_connection_t               *c;
    ngx_stream_vmess_ws_t          *ws;
    ngx_stream_vmess_ws_request_t   r;

    c = s->connection;

    ngx_memzero(&r, sizeof(ngx_stream_vmess_ws_request_t));

    rc = ngx_stream_vmess_ws_path(c->buffer, vscf, &r.conf);

    if (rc != NGX_OK) {
        return rc;
    }

    reason = NULL;

    rc = ngx_stream_vmess_ws_request(s, &r, &reason);

    if (rc == NGX_AGAIN) {
        return NGX_AGAIN;
    }

    if (rc != NGX_OK) {
        return ngx_stream_vmess_ws_fallback(s, ctx, vscf, r.conf, reason);
    }

    if (r.real_ip.len && ngx_stream_vmess_ws_real_ip(s, &r) != NGX_OK) {
        return NGX_ERROR;
    }

    rc = ngx_stream_vmess_ws_accept(s, ctx, &r);

    if (rc != NGX_OK) {
        return rc;
    }

    if (r.conf->raw) {
        c->buffer->pos += r.header_len;
        return NGX_DECLINED;
    }

    ws = ctx->ws;
    ws->max_frame = r.conf->max_frame;
    *raw = c->buffer->pos + r.header_len;

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

    return NGX_DECLINED;
}


/*
 * Which transport the request line asks for: NGX_OK with *conf set,
 * NGX_AGAIN while the bytes could still become one, NGX_DECLINED when
 * they ask for neither path.
 */

static ngx_int_t
ngx_stream_vmess_ws_path(ngx_buf_t *b, ngx_stream_vmess_srv_conf_t *vscf,
    ngx_stream_vmess_ws_conf_t **conf)
{
    ngx_int_t                    rc, found;
    ngx_uint_t                   i;
    ngx_stream_vmess_ws_conf_t  *transports[2];

    transports[0] = vscf->ws;
    transports[1] = vscf->httpupgrade;

    found = NGX_DECLINED;

    for (i = 0; i < 2; i++) {

        if (transports[i] == NULL) {
            continue;
        }

        rc = ngx_stream_vmess_ws_path_match(b, &transports[i]->path);

        if (rc == NGX_OK) {
            *conf = transports[i];
            return NGX_OK;
        }

        if (rc == NGX_AGAIN) {
            found = NGX_AGAIN;
        }
    }

    return found;
}


/* "GET /path " or "GET /path?" at b->pos */

static ngx_int_t
ngx_stream_vmess_ws_path_match(ngx_buf_t *b, ngx_str_t *path)
{
    u_char  *p;
    size_t   len, n;

    p = b->pos;
    len = b->last - p;

    n = ngx_min(len, 4);

    if (ngx_strncmp(p, "GET ", n) != 0) {
        return NGX_DECLINED;
    }

    if (ngx_strncmp(p + n, path->data, ngx_min(len - n, path->len)) != 0) {
        return NGX_DECLINED;
    }

    if (len <= 4 + path->len) {
        return NGX_AGAIN;
    }

    p += 4 + path->len;

    return (*p == ' ' || *p == '?') ? NGX_OK : NGX_DECLINED;
}


/* the request after "GET /path", up to the empty line */

static ngx_int_t
ngx_stream_vmess_ws_request(ngx_stream_session_t *s,
    ngx_stream_vmess_ws_request_t *r, const char **reason)
{
    u_char      *p, *last, *end, *line, *colon, *v, *ve;
    size_t       limit;
    ngx_uint_t   needs;
    ngx_buf_t   *b;

    b = s->connection->buffer;
    p = b->pos + 4 + r->conf->path.len;
    last = b->last;

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

    if (r->conf->host.len == 0) {
        r->seen |= NGX_STREAM_VMESS_WS_HOST;
    }

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

        if (ngx_stream_vmess_ws_header(r, p, colon - p, v, ve - v, reason)
            != NGX_OK)
        {
            return NGX_DECLINED;
        }

        p = line + 1;
    }

    needs = r->conf->raw ? NGX_STREAM_VMESS_HU_NEEDS
                         : NGX_STREAM_VMESS_WS_NEEDS;

    if ((r->seen & needs) != needs) {
        if (!(r->seen & NGX_STREAM_VMESS_WS_UPGRADE)) {
            *reason = "no websocket upgrade";

        } else {
            *reason = r->conf->raw ? "incomplete handshake"
                                   : "incomplete websocket handshake";
        }

        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * HTTPUpgrade clients (Xray, sing-box, v2fly 5) send the WebSocket
 * Upgrade and Connection headers; Xray also a key, whose accept value
 * goes back as Xray's own server does.  Their early data is only sent
 * before the 101, as raw bytes behind the request.
 */

static ngx_int_t
ngx_stream_vmess_ws_header(ngx_stream_vmess_ws_request_t *r, u_char *name,
    size_t nlen, u_char *value, size_t vlen, const char **reason)
{
    u_char                      *colon, key[24];
    size_t                       hlen;
    ngx_str_t                    src, dst;
    ngx_stream_vmess_ws_conf_t  *wscf;

#define ngx_ws_is(s)                                                         \
    (nlen == sizeof(s) - 1 && ngx_strncasecmp(name, (u_char *) s, nlen) == 0)

    wscf = r->conf;

    if (ngx_ws_is("Upgrade")) {
        if (vlen != 9 || ngx_strncasecmp(value, (u_char *) "websocket", 9)
                         != 0)
        {
            *reason = "no websocket upgrade";
            return NGX_DECLINED;
        }

        r->seen |= NGX_STREAM_VMESS_WS_UPGRADE;

    } else if (ngx_ws_is("Connection")) {
        if (ngx_stream_vmess_ws_token(value, vlen, "upgrade")) {
            r->seen |= NGX_STREAM_VMESS_WS_CONNECTION;
        }

    } else if (ngx_ws_is("Sec-WebSocket-Key")) {
        src.data = value;
        src.len = vlen;
        dst.data = key;

        if (!wscf->raw
            && (vlen != 24 || ngx_decode_base64(&dst, &src) != NGX_OK
                || dst.len != 16))
        {
            *reason = "bad Sec-WebSocket-Key";
            return NGX_DECLINED;
        }

        r->key = src;
        r->seen |= NGX_STREAM_VMESS_WS_KEY;

    } else if (ngx_ws_is("Sec-WebSocket-Version") && !wscf->raw) {
        if (vlen != 2 || value[0] != '1' || value[1] != '3') {
            *reason = "unsupported Sec-WebSocket-Version";
            return NGX_DECLINED;
        }

        r->seen |= NGX_STREAM_VMESS_WS_VERSION;

    } else if (ngx_ws_is("Sec-WebSocket-Protocol") && !wscf->raw) {
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

        r->seen |= NGX_STREAM_VMESS_WS_HOST;

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


/* a WebSocket's state made first, so that nothing fails after the 101 */

static ngx_int_t
ngx_stream_vmess_ws_accept(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_ws_request_t *r)
{
    ngx_int_t               rc;
    ngx_connection_t       *c;
    ngx_stream_vmess_ws_t  *ws;

    c = s->connection;
    ws = NULL;

    if (!r->conf->raw) {
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
    }

    rc = ngx_stream_vmess_ws_respond(s, r);

    if (rc != NGX_OK) {
        return rc;
    }

    ctx->ws = ws;
    ctx->upgraded = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_stream_vmess_ws_respond(ngx_stream_session_t *s,
    ngx_stream_vmess_ws_request_t *r)
{
    u_char            *p, *out, hash[20], accept[28];
    ssize_t            n;
    ngx_str_t          src, dst;
    ngx_sha1_t         sha1;
    ngx_connection_t  *c;

    c = s->connection;

    out = ngx_pnalloc(c->pool, 256 + r->protocol.len);
    if (out == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(out, "HTTP/1.1 101 Switching Protocols\r\n"
                   "Upgrade: websocket\r\n"
                   "Connection: Upgrade\r\n",
                   sizeof("HTTP/1.1 101 Switching Protocols\r\n"
                          "Upgrade: websocket\r\n"
                          "Connection: Upgrade\r\n") - 1);

    if (r->key.len) {
        ngx_sha1_init(&sha1);
        ngx_sha1_update(&sha1, r->key.data, r->key.len);
        ngx_sha1_update(&sha1, ngx_stream_vmess_ws_guid,
                        sizeof(ngx_stream_vmess_ws_guid) - 1);
        ngx_sha1_final(hash, &sha1);

        src.data = hash;
        src.len = 20;
        dst.data = accept;
        ngx_encode_base64(&dst, &src);

        p = ngx_cpymem(p, "Sec-WebSocket-Accept: ",
                       sizeof("Sec-WebSocket-Accept: ") - 1);
        p = ngx_cpymem(p, dst.data, dst.len);
        *p++ = CR; *p++ = LF;
    }

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
                      "vmess %s: 101 response not sent",
                      ngx_stream_vmess_ws_name(r->conf));
        return NGX_STREAM_OK;
    }

    return NGX_OK;
}


/*
 * The front server's header (for example X-Real-IP set by an http
 * proxy_pass to a unix socket) becomes $remote_addr; honoured on unix
 * socket connections only.
 */

static ngx_int_t
ngx_stream_vmess_ws_real_ip(ngx_stream_session_t *s,
    ngx_stream_vmess_ws_request_t *r)
{
    u_char            *p;
    ngx_str_t         *value;
    ngx_addr_t         addr;
    ngx_connection_t  *c;

    c = s->connection;
    value = &r->real_ip;

    if (c->sockaddr->sa_family != AF_UNIX) {
        return NGX_OK;
    }

    if (ngx_parse_addr(c->pool, &addr, value->data, value->len) != NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "vmess %s: bad real ip \"%V\"",
                      ngx_stream_vmess_ws_name(r->conf), value);
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
    ngx_stream_vmess_ws_conf_t *conf, const char *reason)
{
    ngx_connection_t  *c;

    c = s->connection;

    ctx->status = NGX_STREAM_VMESS_ST_FALLBACK;

    if (vscf->fallback.len == 0) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0, "vmess %s: %s, closing",
                      ngx_stream_vmess_ws_name(conf), reason);
        ctx->state = NGX_STREAM_VMESS_REFUSED;
        return NGX_STREAM_OK;
    }

    ngx_log_error(NGX_LOG_INFO, c->log, 0, "vmess %s: %s, fallback to %V",
                  ngx_stream_vmess_ws_name(conf), reason, &vscf->fallback);

    ctx->state = NGX_STREAM_VMESS_FALLBACK;
    ctx->target = vscf->fallback;

    return NGX_OK;
}


/* the transport's name in log lines */

static const char *
ngx_stream_vmess_ws_name(ngx_stream_vmess_ws_conf_t *conf)
{
    return conf->raw ? "httpupgrade" : "websocket";
}


/*
 * "vmess_websocket" and "vmess_httpupgrade": cmd->offset is the srv conf
 * field of the one being set.
 */

char *
ngx_stream_vmess_transport(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_vmess_srv_conf_t *vscf = conf;

    ssize_t                      size;
    ngx_str_t                   *value, s;
    ngx_uint_t                   i, raw;
    ngx_stream_vmess_ws_conf_t  *wscf, **field, *other;

    field = (ngx_stream_vmess_ws_conf_t **) ((char *) conf + cmd->offset);

    if (*field) {
        return "is duplicate";
    }

    raw = (field == &vscf->httpupgrade);
    other = raw ? vscf->ws : vscf->httpupgrade;
    value = cf->args->elts;

    if (value[1].len == 0 || value[1].data[0] != '/'
        || ngx_strlchr(value[1].data, value[1].data + value[1].len, ' ')
        || ngx_strlchr(value[1].data, value[1].data + value[1].len, '?'))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid %s path \"%V\"",
                           raw ? "httpupgrade" : "websocket", &value[1]);
        return NGX_CONF_ERROR;
    }

    /* both send the same request: only the path tells them apart */

    if (other && other->path.len == value[1].len
        && ngx_strncmp(other->path.data, value[1].data, value[1].len) == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"vmess_websocket\" and \"vmess_httpupgrade\" "
                           "need different paths, \"%V\" is both",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    wscf = ngx_pcalloc(cf->pool, sizeof(ngx_stream_vmess_ws_conf_t));
    if (wscf == NULL) {
        return NGX_CONF_ERROR;
    }

    wscf->path = value[1];
    wscf->max_frame = NGX_STREAM_VMESS_WS_FRAME_MAX;
    wscf->file = cf->conf_file->file.name;
    wscf->line = cf->conf_file->line;
    wscf->raw = raw;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "host=", 5) == 0
            && value[i].len > 5)
        {
            wscf->host.data = value[i].data + 5;
            wscf->host.len = value[i].len - 5;
            continue;
        }

        if (!raw && ngx_strncmp(value[i].data, "max_frame=", 10) == 0) {
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

    *field = wscf;

    return NGX_CONF_OK;
}
