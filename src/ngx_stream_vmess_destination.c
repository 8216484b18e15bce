/*
 * ngx_stream_vmess_module: a session's destination, the RESOLVING state
 * of the preread phase.  The address the header sent (a literal, an IP
 * literal as a name, or a name looked up with the stream resolver while
 * the session parks on NGX_DONE) is checked against the destination
 * policy (ngx_stream_vmess_policy.c) and becomes $vmess_target, an IP
 * literal, for a stock "proxy_pass $vmess_target".
 */

#include "ngx_stream_vmess_module.h"


static ngx_int_t ngx_stream_vmess_resolve(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx);
static void ngx_stream_vmess_resolve_handler(ngx_resolver_ctx_t *rctx);


/* the target as sent: "$vmess_target_host", "$vmess_target_port" */

ngx_int_t
ngx_stream_vmess_target_host(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, vmess_request_t *req, u_char *host,
    size_t len)
{
    ctx->host.data = ngx_pnalloc(s->connection->pool, len);
    if (ctx->host.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(ctx->host.data, host, len);
    ctx->host.len = len;

    ctx->port = req->port;
    ngx_sprintf(ctx->port_text, "%ui%Z", (ngx_uint_t) req->port);

    return NGX_OK;
}


/* the address to check: sent as one, an IP literal as a name, or looked up */

ngx_int_t
ngx_stream_vmess_destination_addr(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf,
    vmess_request_t *req)
{
    ngx_int_t          rc;
    ngx_connection_t  *c;

    c = s->connection;

    rc = ngx_stream_vmess_literal_addr(c->pool, req->addr_type, req->addr,
                                       &ctx->host, &ctx->sockaddr,
                                       &ctx->socklen);

    if (rc == NGX_DECLINED) {
        return ngx_stream_vmess_resolve(s, ctx);
    }

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "vmess: address type %ui not supported",
                      (ngx_uint_t) req->addr_type);
        ctx->status = NGX_STREAM_VMESS_ST_DENIED;
        ctx->state = NGX_STREAM_VMESS_REFUSED;
        return NGX_STREAM_FORBIDDEN;
    }

    return ngx_stream_vmess_target(s, ctx, vscf);
}


static ngx_int_t
ngx_stream_vmess_resolve(ngx_stream_session_t *s, ngx_stream_vmess_ctx_t *ctx)
{
    ngx_connection_t             *c;
    ngx_resolver_ctx_t           *rctx;
    ngx_stream_vmess_srv_conf_t  *vscf;

    c = s->connection;

    rctx = ngx_stream_vmess_resolve_start(s, c->pool, &ctx->host,
                                          ngx_stream_vmess_resolve_handler,
                                          ctx);
    if (rctx == NULL) {
        return NGX_ERROR;
    }

    if (rctx == NGX_NO_RESOLVER) {
        /*
         * Without a resolver the name is left to proxy_pass: an upstream{}
         * ignores it, and "proxy_pass $vmess_target" cannot resolve it
         * either, so no unchecked address is ever connected to.
         */

        ctx->target.len = ctx->host.len + 1 + ngx_strlen(ctx->port_text);
        ctx->target.data = ngx_pnalloc(c->pool, ctx->target.len);
        if (ctx->target.data == NULL) {
            return NGX_ERROR;
        }

        ngx_sprintf(ctx->target.data, "%V:%s", &ctx->host, ctx->port_text);
        ctx->state = NGX_STREAM_VMESS_ACTIVE;

        return NGX_OK;
    }

    ctx->rctx = rctx;
    ctx->state = NGX_STREAM_VMESS_RESOLVING;
    ctx->in_resolver = 1;

    if (ngx_resolve_name(rctx) != NGX_OK) {
        /* the resolver context is freed on error */
        ctx->rctx = NULL;
        ctx->in_resolver = 0;
        return NGX_ERROR;
    }

    ctx->in_resolver = 0;

    if (ctx->rctx) {
        /*
         * Park the session until the lookup ends: the preread checker
         * would otherwise keep reading into c->buffer, and a client that
         * uploads at once would fill it ("preread buffer full").  Unread
         * data stays in the socket; the resolver timeout bounds the wait.
         */
        return NGX_DONE;
    }

    /* the name was cached: the handler already ran */

    if (ctx->resolve_failed) {
        return NGX_STREAM_BAD_GATEWAY;
    }

    vscf = ngx_stream_get_module_srv_conf(s, ngx_stream_vmess_module);

    return ngx_stream_vmess_target(s, ctx, vscf);
}


static void
ngx_stream_vmess_resolve_handler(ngx_resolver_ctx_t *rctx)
{
    ngx_connection_t             *c;
    ngx_stream_session_t         *s;
    ngx_stream_vmess_ctx_t       *ctx;
    ngx_stream_vmess_srv_conf_t  *vscf;

    ctx = rctx->data;
    s = ctx->session;
    c = s->connection;

    vscf = ngx_stream_get_module_srv_conf(s, ngx_stream_vmess_module);

    if (rctx->state || rctx->naddrs == 0) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "vmess: %V could not be resolved (%i: %s)",
                      &rctx->name, rctx->state,
                      ngx_resolver_strerror(rctx->state));

        ctx->resolve_failed = 1;

    } else {
        ngx_stream_vmess_resolved_addr(rctx, vscf,
                                       &ctx->sockaddr, &ctx->socklen);
    }

    ngx_resolve_name_done(rctx);
    ctx->rctx = NULL;

    ngx_log_debug2(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "vmess resolved, failed:%ui sync:%ui",
                   (ngx_uint_t) ctx->resolve_failed,
                   (ngx_uint_t) ctx->in_resolver);

    if (ctx->in_resolver) {
        /* called from ngx_resolve_name() inside the preread handler */
        return;
    }

    /*
     * Resume the preread phase: the checker calls the handler again only
     * when no preread timer is set.
     */

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    ngx_stream_core_run_phases(s);
}


ngx_int_t
ngx_stream_vmess_target(ngx_stream_session_t *s, ngx_stream_vmess_ctx_t *ctx,
    ngx_stream_vmess_srv_conf_t *vscf)
{
    ngx_int_t          rc;
    ngx_connection_t  *c;

    c = s->connection;

    rc = ngx_stream_vmess_destination(c->log, c->pool, &ctx->sockaddr,
                                      ctx->socklen, ctx->port,
                                      vscf, &ctx->target);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        ctx->status = NGX_STREAM_VMESS_ST_DENIED;
        ctx->state = NGX_STREAM_VMESS_REFUSED;
        return NGX_STREAM_FORBIDDEN;
    }

    ctx->state = NGX_STREAM_VMESS_ACTIVE;

    ngx_log_debug1(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "vmess target: \"%V\"", &ctx->target);

    return NGX_OK;
}
