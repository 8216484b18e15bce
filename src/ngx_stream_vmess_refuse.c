/*
 * ngx_stream_vmess_module: input that did not authenticate.
 *
 * It goes to "vmess_fallback" with its bytes untouched, or is drained
 * (VMESS-SPEC.md §10.1): read and discarded up to a per-server byte count
 * plus jitter, counted from the first byte, then closed without a byte,
 * as v2ray does, so that a prober learns nothing from when we close.
 */

#include "ngx_stream_vmess_module.h"

#include <openssl/rand.h>


#define NGX_STREAM_VMESS_DRAIN_BUF      2048


static void ngx_stream_vmess_drain_handler(ngx_event_t *rev);
static void ngx_stream_vmess_empty_handler(ngx_event_t *wev);


/* what the preread handler returns for the session */

ngx_int_t
ngx_stream_vmess_refuse(ngx_stream_session_t *s, ngx_stream_vmess_ctx_t *ctx,
    ngx_stream_vmess_srv_conf_t *vscf, ngx_uint_t status, ngx_uint_t level,
    ngx_str_t *reason)
{
    size_t             n;
    uint32_t           r;
    ngx_connection_t  *c;

    c = s->connection;

    ctx->status = status;

    /* after a 101 the site cannot take the bytes: drain */

    if (vscf->fallback.len && !ctx->upgraded) {
        ctx->state = NGX_STREAM_VMESS_FALLBACK;
        ctx->target = vscf->fallback;

        ngx_log_error(level, c->log, 0, "vmess: %V, fallback to %V",
                      reason, &vscf->fallback);

        return NGX_OK;
    }

    ctx->state = NGX_STREAM_VMESS_DRAIN;

    if (RAND_bytes((u_char *) &r, sizeof(uint32_t)) != 1) {
        r = (uint32_t) ngx_random();
    }

    ctx->drain_size = 16 + 38 + vscf->drain_base + r % vscf->drain_max;

    n = c->buffer->last - c->buffer->start;

    ngx_log_error(level, c->log, 0, "vmess: %V, drain %uz bytes",
                  reason, ctx->drain_size);

    if (n >= ctx->drain_size) {
        return NGX_STREAM_OK;
    }

    ctx->drained = n;

    /*
     * Take over the connection: the preread checker parks the session on
     * NGX_DONE and deletes its timer, so the timer is set by our handler.
     */

    c->read->handler = ngx_stream_vmess_drain_handler;
    c->write->handler = ngx_stream_vmess_empty_handler;

    ngx_post_event(c->read, &ngx_posted_events);

    return NGX_DONE;
}


static void
ngx_stream_vmess_drain_handler(ngx_event_t *rev)
{
    u_char                       buf[NGX_STREAM_VMESS_DRAIN_BUF];
    size_t                       size;
    ssize_t                      n;
    ngx_msec_t                   elapsed;
    ngx_connection_t            *c;
    ngx_stream_session_t        *s;
    ngx_stream_vmess_ctx_t      *ctx;
    ngx_stream_core_srv_conf_t  *cscf;

    c = rev->data;
    s = c->data;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_vmess_module);

    if (rev->timedout || c->close) {
        ngx_log_debug0(NGX_LOG_DEBUG_STREAM, c->log, 0,
                       "vmess drain: timed out");
        ngx_stream_finalize_session(s, NGX_STREAM_OK);
        return;
    }

    while (ctx->drained < ctx->drain_size) {

        size = ngx_min(sizeof(buf), ctx->drain_size - ctx->drained);

        n = c->recv(c, buf, size);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR || n == 0) {
            ngx_stream_finalize_session(s, NGX_STREAM_OK);
            return;
        }

        ctx->drained += n;
    }

    if (ctx->drained >= ctx->drain_size) {
        ngx_log_debug1(NGX_LOG_DEBUG_STREAM, c->log, 0,
                       "vmess drain: done, %uz bytes", ctx->drained);
        ngx_stream_finalize_session(s, NGX_STREAM_OK);
        return;
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    if (!rev->timer_set) {
        /* the preread deadline, counted from the start of the session */

        cscf = ngx_stream_get_module_srv_conf(s, ngx_stream_core_module);

        elapsed = ngx_current_msec - ctx->start;

        if (elapsed >= cscf->preread_timeout) {
            ngx_stream_finalize_session(s, NGX_STREAM_OK);
            return;
        }

        ngx_add_timer(rev, cscf->preread_timeout - elapsed);
    }
}


static void
ngx_stream_vmess_empty_handler(ngx_event_t *wev)
{
    ngx_log_debug0(NGX_LOG_DEBUG_STREAM, wev->log, 0,
                   "vmess empty handler");
}
