/*
 * ngx_stream_vmess_proxy_module: the outbound filters ("proxy_vmess").
 *
 * Two filters, installed around the inbound filter of
 * ngx_stream_vmess_filter.c (see ngx_stream_vmess_init()):
 *
 *     top -> proxy_open -> inbound vmess -> proxy_seal -> write filter
 *
 * The chain is the same for both directions, so each filter works in one
 * direction only and passes the other through: from_upstream == 0 the
 * inbound opens the client's chunks first and proxy_seal seals them for
 * the upstream; from_upstream == 1 proxy_open opens the upstream's chunks
 * first and the inbound seals them for the client.  Each layer writes into
 * buffers of its own: one crypto pass per layer, no other copy.
 *
 * The request header is sealed at the first from_upstream == 0 call, which
 * the proxy makes right after connecting (an empty preread buffer is
 * enough, see ngx_stream_vmess_proxy_preread()), so the header goes to the
 * peer actually connected: proxy_next_upstream retries happen before that
 * call.
 */

#include "ngx_stream_vmess_module.h"

#include <openssl/rand.h>


/* a free bit of c->buffered: this layer still holds data */
#define NGX_STREAM_VMESS_PROXY_BUFFERED 0x40

/* this layer's own bufs, for ngx_chain_update_chains() */
#define NGX_STREAM_VMESS_PROXY_TAG                                          \
    (ngx_buf_tag_t) &ngx_stream_vmess_proxy_module

#define NGX_STREAM_VMESS_PROXY_NBUFS    2
#define NGX_STREAM_VMESS_PROXY_OPEN     65536
#define NGX_STREAM_VMESS_PROXY_SEAL     (NGX_STREAM_VMESS_SEAL_MAX       \
                                         + VMESS_HEADER_MAX + 512)


typedef struct {
    vmess_request_t                 req;
    vmess_session_t                 keys;
    vmess_body_t                    enc;        /* to the upstream */
    vmess_body_t                    dec;        /* from the upstream */
    u_char                         *staging;
    u_char                          rhdr[VMESS_RESPONSE_HEADER_MAX];
    size_t                          rhdr_len;
    u_char                          pad[64];
    ngx_stream_vmess_stat_t        *stat;       /* the outbound user's */
    ngx_stream_vmess_live_t         live;

    unsigned                        failed:1;
    unsigned                        header_sent:1;
    unsigned                        response:1;  /* header verified */

    ngx_stream_vmess_dir_t          dir[2];
} ngx_stream_vmess_proxy_ctx_t;


static ngx_int_t ngx_stream_vmess_proxy_seal_filter(ngx_stream_session_t *s,
    ngx_chain_t *in, ngx_uint_t from_upstream);
static ngx_int_t ngx_stream_vmess_proxy_open_filter(ngx_stream_session_t *s,
    ngx_chain_t *in, ngx_uint_t from_upstream);
static ngx_int_t ngx_stream_vmess_proxy_layer(ngx_stream_session_t *s,
    ngx_chain_t *in, ngx_uint_t from_upstream);
static ngx_stream_vmess_proxy_ctx_t *ngx_stream_vmess_proxy_get_ctx(
    ngx_stream_session_t *s);
static ngx_int_t ngx_stream_vmess_proxy_start(ngx_stream_session_t *s,
    ngx_stream_vmess_proxy_ctx_t *ctx,
    ngx_stream_vmess_proxy_srv_conf_t *pscf);
static ngx_int_t ngx_stream_vmess_proxy_parse_target(ngx_stream_session_t *s,
    ngx_str_t *target, vmess_request_t *req);
static ngx_int_t ngx_stream_vmess_proxy_run(ngx_stream_session_t *s,
    ngx_stream_vmess_proxy_ctx_t *ctx, ngx_chain_t *in,
    ngx_uint_t from_upstream);
static ngx_int_t ngx_stream_vmess_proxy_seal(ngx_stream_session_t *s,
    ngx_stream_vmess_proxy_ctx_t *ctx, ngx_stream_vmess_dir_t *d,
    ngx_chain_t ***ll);
static ngx_int_t ngx_stream_vmess_proxy_open(ngx_stream_session_t *s,
    ngx_stream_vmess_proxy_ctx_t *ctx, ngx_stream_vmess_dir_t *d,
    ngx_chain_t ***ll);
static ngx_int_t ngx_stream_vmess_proxy_open_into(ngx_stream_session_t *s,
    ngx_stream_vmess_proxy_ctx_t *ctx, ngx_stream_vmess_dir_t *d,
    ngx_buf_t *b);
static ngx_int_t ngx_stream_vmess_proxy_response(ngx_stream_session_t *s,
    ngx_stream_vmess_proxy_ctx_t *ctx, ngx_stream_vmess_dir_t *d);
static void ngx_stream_vmess_proxy_cleanup(void *data);


static ngx_stream_filter_pt  ngx_stream_vmess_proxy_next_seal;
static ngx_stream_filter_pt  ngx_stream_vmess_proxy_next_open;


/* below the inbound: client bytes (already opened) sealed for upstream */

static ngx_int_t
ngx_stream_vmess_proxy_seal_filter(ngx_stream_session_t *s, ngx_chain_t *in,
    ngx_uint_t from_upstream)
{
    if (from_upstream) {
        return ngx_stream_vmess_proxy_next_seal(s, in, from_upstream);
    }

    return ngx_stream_vmess_proxy_layer(s, in, 0);
}


/* above the inbound: upstream bytes opened before the inbound seals them */

static ngx_int_t
ngx_stream_vmess_proxy_open_filter(ngx_stream_session_t *s, ngx_chain_t *in,
    ngx_uint_t from_upstream)
{
    if (!from_upstream) {
        return ngx_stream_vmess_proxy_next_open(s, in, from_upstream);
    }

    return ngx_stream_vmess_proxy_layer(s, in, 1);
}


/* the direction this layer works in */

static ngx_int_t
ngx_stream_vmess_proxy_layer(ngx_stream_session_t *s, ngx_chain_t *in,
    ngx_uint_t from_upstream)
{
    ngx_chain_t                   *cl;
    ngx_stream_vmess_proxy_ctx_t  *ctx;

    ctx = ngx_stream_vmess_proxy_get_ctx(s);

    if (ctx == NULL) {
        return from_upstream
               ? ngx_stream_vmess_proxy_next_open(s, in, from_upstream)
               : ngx_stream_vmess_proxy_next_seal(s, in, from_upstream);
    }

    if (ctx == NGX_CONF_ERROR) {
        return NGX_ERROR;
    }

    if (!from_upstream && ctx->stat) {
        /* the client's payload, each byte once, as the layer gets it */
        for (cl = in; cl; cl = cl->next) {
            ngx_stream_vmess_stats_add(ctx->stat, NGX_STREAM_VMESS_UP,
                                       cl->buf->last - cl->buf->pos);
        }
    }

    return ngx_stream_vmess_proxy_run(s, ctx, in, from_upstream);
}


/*
 * NULL: not an outbound VMess session; (void *) NGX_CONF_ERROR: failed.
 */

static ngx_stream_vmess_proxy_ctx_t *
ngx_stream_vmess_proxy_get_ctx(ngx_stream_session_t *s)
{
    ngx_stream_vmess_proxy_ctx_t       *ctx;
    ngx_stream_vmess_proxy_srv_conf_t  *pscf;

    pscf = ngx_stream_get_module_srv_conf(s, ngx_stream_vmess_proxy_module);

    if (!pscf->enable || s->upstream == NULL
        || s->upstream->peer.connection == NULL)
    {
        return NULL;
    }

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_vmess_proxy_module);

    if (ctx) {
        return ctx->failed ? NGX_CONF_ERROR : (void *) ctx;
    }

    ctx = ngx_pcalloc(s->connection->pool,
                      sizeof(ngx_stream_vmess_proxy_ctx_t));
    if (ctx == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_stream_set_ctx(s, ctx, ngx_stream_vmess_proxy_module);

    if (ngx_stream_vmess_proxy_start(s, ctx, pscf) != NGX_OK) {
        ctx->failed = 1;
        return NGX_CONF_ERROR;
    }

    return ctx;
}


/* the outbound request: target, fresh keys, codecs */

static ngx_int_t
ngx_stream_vmess_proxy_start(ngx_stream_session_t *s,
    ngx_stream_vmess_proxy_ctx_t *ctx, ngx_stream_vmess_proxy_srv_conf_t *pscf)
{
    int                  rc;
    u_char               rnd[16 + 16 + 1 + 1 + 15];
    ngx_str_t            target;
    vmess_request_t     *req;
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(s->connection->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_stream_vmess_proxy_cleanup;
    cln->data = ctx;

    if (ngx_stream_complex_value(s, pscf->target, &target) != NGX_OK) {
        return NGX_ERROR;
    }

    req = &ctx->req;

    if (ngx_stream_vmess_proxy_parse_target(s, &target, req) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, s->connection->log, 0,
                      "vmess: invalid proxy_vmess_target \"%V\"", &target);
        return NGX_ERROR;
    }

    if (RAND_bytes(rnd, sizeof(rnd)) != 1
        || RAND_bytes(ctx->pad, sizeof(ctx->pad)) != 1)
    {
        ngx_log_error(NGX_LOG_ALERT, s->connection->log, 0,
                      "RAND_bytes() failed");
        return NGX_ERROR;
    }

    req->version = 1;
    ngx_memcpy(req->body_key, rnd, 16);
    ngx_memcpy(req->body_iv, rnd + 16, 16);
    req->response_v = rnd[32];
    req->padding_len = rnd[33] % 16;
    ngx_memcpy(req->padding, rnd + 34, 15);
    req->options = (uint8_t) pscf->sec->options;
    req->security = (uint8_t) pscf->sec->security;
    req->command = VMESS_CMD_TCP;

    OPENSSL_cleanse(rnd, sizeof(rnd));

    rc = vmess_session_init(&ctx->keys, req, 0);

    if (rc == VMESS_OK) {
        rc = vmess_body_init(&ctx->enc, &ctx->keys, VMESS_DIR_REQUEST, 0);
    }

    if (rc == VMESS_OK) {
        rc = vmess_body_init(&ctx->dec, &ctx->keys, VMESS_DIR_RESPONSE, 0);
    }

    if (rc != VMESS_OK) {
        ngx_log_error(NGX_LOG_ALERT, s->connection->log, 0,
                      "vmess: outbound session init failed: %s",
                      vmess_strerror(rc));
        return NGX_ERROR;
    }

    if (pscf->stat) {
        /* ended by the cleanup */
        ctx->stat = pscf->stat;
        ngx_stream_vmess_stats_start(ctx->stat, &ctx->live, s->connection);
    }

    ngx_log_debug2(NGX_LOG_DEBUG_STREAM, s->connection->log, 0,
                   "vmess outbound to %V, security %ui", &target,
                   pscf->sec->security);

    return NGX_OK;
}


/* "1.2.3.4:80", "[::1]:80", "example.com:80" */

static ngx_int_t
ngx_stream_vmess_proxy_parse_target(ngx_stream_session_t *s,
    ngx_str_t *target, vmess_request_t *req)
{
    u_char     *p, *last, *colon;
    size_t      i, len;
    in_addr_t   a;
    ngx_int_t   port;

    p = target->data;
    last = p + target->len;

    colon = NULL;

    for (i = target->len; i > 0; i--) {
        if (p[i - 1] == ':') {
            colon = &p[i - 1];
            break;
        }
    }

    if (colon == NULL || colon == p) {
        return NGX_ERROR;
    }

    port = ngx_atoi(colon + 1, last - colon - 1);

    if (port < 1 || port > 65535) {
        return NGX_ERROR;
    }

    req->port = (uint16_t) port;

    len = colon - p;

    if (p[0] == '[') {
#if (NGX_HAVE_INET6)
        if (len < 3 || p[len - 1] != ']'
            || ngx_inet6_addr(p + 1, len - 2, req->addr) != NGX_OK)
        {
            return NGX_ERROR;
        }

        req->addr_type = VMESS_ADDR_IPV6;
        req->addr_len = 16;

        return NGX_OK;
#else
        return NGX_ERROR;
#endif
    }

    a = ngx_inet_addr(p, len);

    if (a != INADDR_NONE) {
        req->addr_type = VMESS_ADDR_IPV4;
        req->addr_len = 4;
        ngx_memcpy(req->addr, &a, 4);   /* network order, as on the wire */
        return NGX_OK;
    }

    if (len > 255) {
        return NGX_ERROR;
    }

    for (i = 0; i < len; i++) {
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z')
              || (p[i] >= '0' && p[i] <= '9')
              || p[i] == '.' || p[i] == '-' || p[i] == '_'))
        {
            return NGX_ERROR;
        }
    }

    req->addr_type = VMESS_ADDR_DOMAIN;
    req->addr_len = (uint8_t) len;
    ngx_memcpy(req->addr, p, len);

    return NGX_OK;
}


/* the filter loop of one layer: remember input, transform, pass, recycle */

static ngx_int_t
ngx_stream_vmess_proxy_run(ngx_stream_session_t *s,
    ngx_stream_vmess_proxy_ctx_t *ctx, ngx_chain_t *in,
    ngx_uint_t from_upstream)
{
    ngx_int_t                rc;
    ngx_chain_t            **ll, *out;
    ngx_connection_t        *c, *dst;
    ngx_stream_filter_pt     next;
    ngx_stream_vmess_dir_t  *d;

    c = s->connection;
    d = &ctx->dir[from_upstream];

    if (from_upstream) {
        dst = c;
        next = ngx_stream_vmess_proxy_next_open;

    } else {
        dst = s->upstream->peer.connection;
        next = ngx_stream_vmess_proxy_next_seal;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "vmess proxy filter u:%ui in:%p", from_upstream, in);

    if (ngx_stream_vmess_add_input(s, d, in) != NGX_OK) {
        return NGX_ERROR;
    }

    for ( ;; ) {

        out = NULL;
        ll = &out;

        if (from_upstream) {
            rc = ngx_stream_vmess_proxy_open(s, ctx, d, &ll);

        } else {
            rc = ngx_stream_vmess_proxy_seal(s, ctx, d, &ll);
        }

        if (rc == NGX_ERROR) {
            ctx->failed = 1;
            return NGX_ERROR;
        }

        if (out == NULL
            && !(dst->buffered & ~NGX_STREAM_VMESS_PROXY_BUFFERED))
        {
            rc = NGX_OK;
            break;
        }

        rc = next(s, out, from_upstream);

        ngx_chain_update_chains(c->pool, &d->free, &d->busy, &out,
                                NGX_STREAM_VMESS_PROXY_TAG);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (!(d->in != NULL || (d->last && !d->last_sent))
            || (d->free == NULL && d->nbufs >= NGX_STREAM_VMESS_PROXY_NBUFS))
        {
            break;
        }
    }

    if (d->in || (d->last && !d->last_sent)) {
        dst->buffered |= NGX_STREAM_VMESS_PROXY_BUFFERED;

    } else {
        dst->buffered &= ~NGX_STREAM_VMESS_PROXY_BUFFERED;
    }

    return rc;
}


/* to the upstream: the request header, then sealed chunks */

static ngx_int_t
ngx_stream_vmess_proxy_seal(ngx_stream_session_t *s,
    ngx_stream_vmess_proxy_ctx_t *ctx, ngx_stream_vmess_dir_t *d,
    ngx_chain_t ***ll)
{
    int                                 rc;
    u_char                              rand4[4], nonce8[8];
    size_t                              written;
    ngx_buf_t                          *b;
    ngx_chain_t                        *cl;
    ngx_stream_vmess_ctx_t             *ictx;
    ngx_stream_vmess_proxy_srv_conf_t  *pscf;

    while (!ctx->header_sent || d->in || (d->last && !d->last_sent)) {

        cl = ngx_stream_vmess_get_buf(s, d, NGX_STREAM_VMESS_PROXY_SEAL,
                                      NGX_STREAM_VMESS_PROXY_NBUFS,
                                      NGX_STREAM_VMESS_PROXY_TAG);
        if (cl == NGX_CHAIN_ERROR) {
            return NGX_ERROR;
        }

        if (cl == NULL) {
            return NGX_AGAIN;
        }

        b = cl->buf;

        if (!ctx->header_sent) {
            pscf = ngx_stream_get_module_srv_conf(s,
                                               ngx_stream_vmess_proxy_module);

            if (RAND_bytes(rand4, 4) != 1 || RAND_bytes(nonce8, 8) != 1) {
                ngx_log_error(NGX_LOG_ALERT, s->connection->log, 0,
                              "RAND_bytes() failed");
                return NGX_ERROR;
            }

            rc = vmess_aead_header_seal(pscf->user, (int64_t) ngx_time(),
                                        rand4, nonce8, &ctx->req, b->last,
                                        b->end - b->last, &written);
            if (rc != VMESS_OK) {
                ngx_log_error(NGX_LOG_ALERT, s->connection->log, 0,
                              "vmess_aead_header_seal() failed: %s",
                              vmess_strerror(rc));
                return NGX_ERROR;
            }

            b->last += written;
            ctx->header_sent = 1;

            /* the keys of the header are no longer needed */
            OPENSSL_cleanse(ctx->req.body_key, 16);
            OPENSSL_cleanse(ctx->req.body_iv, 16);
        }

        rc = ngx_stream_vmess_seal_input(s, &ctx->enc, ctx->pad, d, b);

        if (rc != VMESS_OK) {
            ngx_log_error(NGX_LOG_ERR, s->connection->log, 0,
                          "vmess: cannot seal upstream chunk: %s",
                          vmess_strerror(rc));
            return NGX_ERROR;
        }

        rc = ngx_stream_vmess_seal_last(&ctx->enc, ctx->pad, d, b);

        if (rc != VMESS_OK) {
            ngx_log_error(NGX_LOG_ERR, s->connection->log, 0,
                          "vmess: cannot seal upstream end chunk: %s",
                          vmess_strerror(rc));
            return NGX_ERROR;
        }

        if (b->last_buf) {
            /*
             * The end chunk is the exit's end of the request, as a v2ray
             * client sends it: no TCP half-close after it (the inbound
             * filter would do one), since an exit proxying without
             * proxy_half_close would end the session at once.
             */

            ictx = ngx_stream_get_module_ctx(s, ngx_stream_vmess_module);

            if (ictx) {
                ictx->dir[0].shut = 1;
            }
        }

        if (b->pos == b->last) {
            /* not reached: a buf here always holds the header or data */
            cl->next = d->free;
            d->free = cl;
            break;
        }

        **ll = cl;
        *ll = &cl->next;
    }

    return NGX_OK;
}


/* from the upstream: the response header, then opened chunks */

static ngx_int_t
ngx_stream_vmess_proxy_open(ngx_stream_session_t *s,
    ngx_stream_vmess_proxy_ctx_t *ctx, ngx_stream_vmess_dir_t *d,
    ngx_chain_t ***ll)
{
    ngx_int_t     rv;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    if (!ctx->response) {
        rv = ngx_stream_vmess_proxy_response(s, ctx, d);

        if (rv != NGX_OK) {
            return rv;
        }
    }

    while (d->in || (d->last && !d->last_sent)) {

        if (d->eof) {
            /* after the end chunk nothing more goes to the client */

            while (d->in) {
                d->in->buf->pos = d->in->buf->last;
                ngx_stream_vmess_consumed(s, d);
            }

            d->last_sent = 1;
            break;
        }

        cl = ngx_stream_vmess_get_buf(s, d, NGX_STREAM_VMESS_PROXY_OPEN,
                                      NGX_STREAM_VMESS_PROXY_NBUFS,
                                      NGX_STREAM_VMESS_PROXY_TAG);
        if (cl == NGX_CHAIN_ERROR) {
            return NGX_ERROR;
        }

        if (cl == NULL) {
            return NGX_AGAIN;
        }

        b = cl->buf;

        if (ngx_stream_vmess_proxy_open_into(s, ctx, d, b) != NGX_OK) {
            return NGX_ERROR;
        }

        if (d->in == NULL && d->last && !d->eof) {
            ngx_log_error(NGX_LOG_INFO, s->connection->log, 0,
                          "vmess: upstream closed without the end chunk");
            b->last_buf = 1;
            d->last_sent = 1;
        }

        if (b->pos == b->last) {

            if (!b->last_buf) {
                cl->next = d->free;
                d->free = cl;
                continue;
            }

            b->temporary = 0;
        }

        **ll = cl;
        *ll = &cl->next;
    }

    return NGX_OK;
}


/* chunks of d's input opened into b, until b is full or the input ends */

static ngx_int_t
ngx_stream_vmess_proxy_open_into(ngx_stream_session_t *s,
    ngx_stream_vmess_proxy_ctx_t *ctx, ngx_stream_vmess_dir_t *d,
    ngx_buf_t *b)
{
    int                rc;
    size_t             consumed, produced;
    ngx_buf_t         *ib;
    ngx_connection_t  *c;

    c = s->connection;

    while (d->in && b->last < b->end) {
        ib = d->in->buf;

        consumed = 0;
        produced = 0;

        rc = vmess_body_open(&ctx->dec, ib->pos, ib->last - ib->pos,
                             &consumed, b->last, b->end - b->last,
                             &produced);

        ib->pos += consumed;
        b->last += produced;

        if (ctx->stat) {
            ngx_stream_vmess_stats_add(ctx->stat, NGX_STREAM_VMESS_DOWN,
                                       produced);
        }

        if (ib->pos == ib->last) {
            ngx_stream_vmess_consumed(s, d);
        }

        if (rc == VMESS_OK) {
            if (ctx->dec.eof) {
                ngx_log_debug0(NGX_LOG_DEBUG_STREAM, c->log, 0,
                               "vmess upstream end chunk");
                d->eof = 1;
                b->last_buf = 1;
                break;
            }

            if (consumed == 0 && produced == 0) {
                ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                              "vmess_body_open() made no progress");
                return NGX_ERROR;
            }

            continue;
        }

        if (rc == VMESS_AGAIN) {
            continue;
        }

        if (rc == VMESS_NEED_STAGING && ctx->staging == NULL) {
            if (ngx_stream_vmess_staging(c->pool, &ctx->dec, &ctx->staging)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            continue;
        }

        if (rc == VMESS_ERR_NO_SPACE && b->last > b->pos) {
            break;
        }

        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "vmess: bad chunk from upstream: %s",
                      vmess_strerror(rc));
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The response header: gathered from the first input bytes (at most
 * VMESS_RESPONSE_HEADER_MAX) and verified before any body byte.  Copy one
 * input buf at a time and try after each, so the bytes copied past the
 * header all come from the last buf and can be given back to it.
 */

static ngx_int_t
ngx_stream_vmess_proxy_response(ngx_stream_session_t *s,
    ngx_stream_vmess_proxy_ctx_t *ctx, ngx_stream_vmess_dir_t *d)
{
    int                     rc, found;
    size_t                  n, consumed;
    ngx_buf_t              *ib;
    vmess_switch_account_t  cmd;

    while (d->in) {
        ib = d->in->buf;

        n = ngx_min((size_t) (ib->last - ib->pos),
                    sizeof(ctx->rhdr) - ctx->rhdr_len);

        ngx_memcpy(ctx->rhdr + ctx->rhdr_len, ib->pos, n);
        ctx->rhdr_len += n;
        ib->pos += n;

        consumed = 0;
        found = 0;

        rc = vmess_response_header_open(&ctx->dec, ctx->req.response_v,
                                        ctx->rhdr, ctx->rhdr_len, &consumed,
                                        &cmd, &found);

        if (rc == VMESS_OK) {
            /* give back what came after the header */
            ib->pos -= ctx->rhdr_len - consumed;
            ctx->response = 1;

            if (ib->pos == ib->last) {
                ngx_stream_vmess_consumed(s, d);
            }

            ngx_log_debug2(NGX_LOG_DEBUG_STREAM, s->connection->log, 0,
                           "vmess upstream response header: %uz bytes, "
                           "command:%d", consumed, found);
            return NGX_OK;
        }

        if (rc != VMESS_AGAIN || ctx->rhdr_len == sizeof(ctx->rhdr)) {
            ngx_log_error(NGX_LOG_ERR, s->connection->log, 0,
                          "vmess: bad response header from upstream: %s",
                          vmess_strerror(rc == VMESS_AGAIN
                                         ? VMESS_ERR_BAD_RESPONSE : rc));
            return NGX_ERROR;
        }

        ngx_stream_vmess_consumed(s, d);
    }

    if (d->last) {
        ngx_log_error(NGX_LOG_ERR, s->connection->log, 0,
                      "vmess: upstream closed before the response header");
        return NGX_ERROR;
    }

    /* need more: nothing to pass yet */
    return NGX_AGAIN;
}


static void
ngx_stream_vmess_proxy_cleanup(void *data)
{
    ngx_stream_vmess_proxy_ctx_t  *ctx = data;

    vmess_body_free(&ctx->enc);
    vmess_body_free(&ctx->dec);

    if (ctx->stat) {
        ngx_stream_vmess_stats_end(ctx->stat, &ctx->live);
    }

    OPENSSL_cleanse(&ctx->keys, sizeof(vmess_session_t));
    OPENSSL_cleanse(&ctx->req, sizeof(vmess_request_t));
}


/*
 * upper == 0 before the inbound filter is installed (proxy_seal ends up
 * below it), upper == 1 after (proxy_open ends up above it).
 */

ngx_int_t
ngx_stream_vmess_proxy_filter_init(ngx_conf_t *cf, ngx_uint_t upper)
{
    if (upper) {
        ngx_stream_vmess_proxy_next_open = ngx_stream_top_filter;
        ngx_stream_top_filter = ngx_stream_vmess_proxy_open_filter;

    } else {
        ngx_stream_vmess_proxy_next_seal = ngx_stream_top_filter;
        ngx_stream_top_filter = ngx_stream_vmess_proxy_seal_filter;
    }

    return NGX_OK;
}
