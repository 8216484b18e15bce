/*
 * ngx_stream_vmess_module: the HTTP upgrade transports, "vmess_websocket"
 * and "vmess_httpupgrade", their handshake.
 *
 * Preread: bytes that begin "GET <path>" for one of the server's paths
 * are read as an HTTP/1.1 upgrade request in c->buffer (parsed by the
 * core, src/vmess/vmess_http.c; a refusal logs its vmess_strerror()); a
 * valid handshake gets "101 Switching Protocols" (written here with
 * c->send), a bad one goes to vmess_fallback with the bytes untouched.
 * Any other bytes are raw VMess (an AuthID is no request line).  After a
 * WebSocket 101 the frames are unframed in place
 * (ngx_stream_vmess_ws_frame.c), so that c->buffer->pos..last holds
 * plain VMess bytes (early data first) for the header parse and for the
 * proxy's preread copy; after an HTTPUpgrade 101 the VMess bytes follow
 * the request as they are.
 */

#include <ngx_sha1.h>

#include "ngx_stream_vmess_module.h"


#define NGX_STREAM_VMESS_WS_FRAME_MAX   (1024 * 1024)


/* a request for a transport's path, as the core parsed it */

typedef struct {
    ngx_stream_vmess_ws_conf_t     *conf;
    vmess_http_upgrade_t            http;
} ngx_stream_vmess_ws_request_t;

static ngx_int_t ngx_stream_vmess_ws_handshake(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf,
    u_char **raw);
static ngx_int_t ngx_stream_vmess_ws_path(ngx_buf_t *b,
    ngx_stream_vmess_srv_conf_t *vscf, ngx_stream_vmess_ws_conf_t **conf);
static int ngx_stream_vmess_ws_request(ngx_buf_t *b,
    ngx_stream_vmess_ws_request_t *r);
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

    if (ws->frames.closed) {
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
    int                             vrc;
    u_char                         *p;
    ngx_int_t                       rc;
    ngx_str_t                       protocol;
    ngx_connection_t               *c;
    ngx_stream_vmess_ws_t          *ws;
    ngx_stream_vmess_ws_request_t   r;

    c = s->connection;

    ngx_memzero(&r, sizeof(ngx_stream_vmess_ws_request_t));

    rc = ngx_stream_vmess_ws_path(c->buffer, vscf, &r.conf);

    if (rc != NGX_OK) {
        return rc;
    }

    vrc = ngx_stream_vmess_ws_request(c->buffer, &r);

    if (vrc == VMESS_AGAIN) {
        return NGX_AGAIN;
    }

    if (vrc != VMESS_OK) {
        return ngx_stream_vmess_ws_fallback(s, ctx, vscf, r.conf,
                                            vmess_strerror(vrc));
    }

    if (r.http.real_ip.len && ngx_stream_vmess_ws_real_ip(s, &r) != NGX_OK) {
        return NGX_ERROR;
    }

    rc = ngx_stream_vmess_ws_accept(s, ctx, &r);

    if (rc != NGX_OK) {
        return rc;
    }

    if (r.conf->raw) {
        c->buffer->pos += r.http.header_len;
        return NGX_DECLINED;
    }

    ws = ctx->ws;
    vmess_ws_init(&ws->frames, r.conf->max_frame);
    *raw = c->buffer->pos + r.http.header_len;

    /* early data first, then the payload of the frames that follow */

    p = c->buffer->pos;

    if (r.http.protocol.len) {
        protocol.data = (u_char *) r.http.protocol.data;
        protocol.len = r.http.protocol.len;

        if (ngx_decode_base64url(&ws->early, &protocol) != NGX_OK) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "vmess websocket: bad early data");
            return NGX_STREAM_BAD_REQUEST;
        }

        p = ngx_cpymem(p, ws->early.data, ws->early.len);
    }

    ws->w = p;

    ngx_log_debug2(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "vmess websocket: handshake %uz bytes, early %uz",
                   r.http.header_len, ws->early.len);

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
    int                          rc;
    ngx_int_t                    found;
    ngx_uint_t                   i;
    vmess_bytes_t                path;
    ngx_stream_vmess_ws_conf_t  *transports[2];

    transports[0] = vscf->ws;
    transports[1] = vscf->httpupgrade;

    found = NGX_DECLINED;

    for (i = 0; i < 2; i++) {

        if (transports[i] == NULL) {
            continue;
        }

        path.data = transports[i]->path.data;
        path.len = transports[i]->path.len;

        rc = vmess_http_path_match(b->pos, b->last - b->pos, &path);

        if (rc == VMESS_OK) {
            *conf = transports[i];
            return NGX_OK;
        }

        if (rc == VMESS_AGAIN) {
            found = NGX_AGAIN;
        }
    }

    return found;
}


/* the request in b, up to the empty line: VMESS_OK, AGAIN or the error */

static int
ngx_stream_vmess_ws_request(ngx_buf_t *b, ngx_stream_vmess_ws_request_t *r)
{
    ngx_stream_vmess_ws_conf_t  *wscf;
    vmess_http_upgrade_conf_t    conf;

    wscf = r->conf;

    conf.path.data = wscf->path.data;
    conf.path.len = wscf->path.len;
    conf.host.data = wscf->host.data;
    conf.host.len = wscf->host.len;
    conf.real_ip_header.data = wscf->real_ip_header.data;
    conf.real_ip_header.len = wscf->real_ip_header.len;
    conf.raw = wscf->raw;

    return vmess_http_upgrade_parse(&conf, b->pos, b->last - b->pos,
                                    b->end - b->pos, &r->http);
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

        if (r->http.protocol.len) {
            ws->early.data = ngx_pnalloc(c->pool,
                                         ngx_base64_decoded_length(
                                             r->http.protocol.len));
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

    out = ngx_pnalloc(c->pool, 256 + r->http.protocol.len);
    if (out == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(out, "HTTP/1.1 101 Switching Protocols\r\n"
                   "Upgrade: websocket\r\n"
                   "Connection: Upgrade\r\n",
                   sizeof("HTTP/1.1 101 Switching Protocols\r\n"
                          "Upgrade: websocket\r\n"
                          "Connection: Upgrade\r\n") - 1);

    if (r->http.key.len) {
        ngx_sha1_init(&sha1);
        ngx_sha1_update(&sha1, r->http.key.data, r->http.key.len);
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

    if (r->http.protocol.len) {
        p = ngx_cpymem(p, "Sec-WebSocket-Protocol: ",
                       sizeof("Sec-WebSocket-Protocol: ") - 1);
        p = ngx_cpymem(p, r->http.protocol.data, r->http.protocol.len);
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
    ngx_str_t          value;
    ngx_addr_t         addr;
    ngx_connection_t  *c;

    c = s->connection;
    value.data = (u_char *) r->http.real_ip.data;
    value.len = r->http.real_ip.len;

    if (c->sockaddr->sa_family != AF_UNIX) {
        return NGX_OK;
    }

    if (ngx_parse_addr(c->pool, &addr, value.data, value.len) != NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "vmess %s: bad real ip \"%V\"",
                      ngx_stream_vmess_ws_name(r->conf), &value);
        return NGX_OK;
    }

    p = ngx_pnalloc(c->pool, value.len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, value.data, value.len);

    c->sockaddr = addr.sockaddr;
    c->socklen = addr.socklen;
    c->addr_text.data = p;
    c->addr_text.len = value.len;

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
