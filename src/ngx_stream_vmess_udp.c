/*
 * ngx_stream_vmess_module: the UDP command (command 2), a mode of the
 * module's own relay (ngx_stream_vmess_upstream.c).
 *
 * One sub-session, to the target of the header: each request chunk is
 * one datagram to it, each datagram from it one response chunk.
 */

#include "ngx_stream_vmess_module.h"


static ngx_int_t ngx_stream_vmess_udp_input(ngx_stream_vmess_own_t *own);
static ngx_int_t ngx_stream_vmess_udp_output(ngx_stream_vmess_sub_t *sub,
    u_char *data, size_t len);
static void ngx_stream_vmess_udp_ended(ngx_stream_vmess_sub_t *sub,
    ngx_uint_t how);


static const ngx_stream_vmess_own_ops_t  ngx_stream_vmess_udp_ops = {
    ngx_stream_vmess_udp_input,
    ngx_stream_vmess_udp_output,
    ngx_stream_vmess_udp_ended
};


void
ngx_stream_vmess_udp_start(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf)
{
    ngx_connection_t        *c;
    ngx_stream_vmess_own_t  *own;
    ngx_stream_vmess_sub_t  *sub;

    c = s->connection;

    if (!ctx->dec.chunked) {
        /* a raw stream has no datagram boundaries */
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "vmess: udp command without chunk stream refused");
        ctx->status = NGX_STREAM_VMESS_ST_DENIED;
        ctx->state = NGX_STREAM_VMESS_REFUSED;
        ngx_stream_finalize_session(s, NGX_STREAM_FORBIDDEN);
        return;
    }

    own = ngx_stream_vmess_own_create(s, ctx, vscf,
                                      &ngx_stream_vmess_udp_ops);
    if (own == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    sub = ngx_stream_vmess_sub_create(own, 0, 1);
    if (sub == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_memcpy(&sub->sockaddr, &ctx->sockaddr, ctx->socklen);
    sub->socklen = ctx->socklen;
    sub->name = ctx->target;

    if (ngx_stream_vmess_sub_connect(sub) != NGX_OK) {
        ngx_stream_vmess_own_finalize(own, NGX_STREAM_BAD_GATEWAY);
        return;
    }

    ngx_stream_vmess_own_run(own);
}


/* one chunk, one datagram */

static ngx_int_t
ngx_stream_vmess_udp_input(ngx_stream_vmess_own_t *own)
{
    size_t                   len;
    ssize_t                  n;
    ngx_buf_t               *p;
    ngx_connection_t        *c;
    ngx_stream_vmess_sub_t  *sub;

    c = own->session->connection;
    p = own->plain;
    len = p->last - p->pos;

    sub = ngx_queue_data(ngx_queue_head(&own->subs), ngx_stream_vmess_sub_t,
                         queue);

    if (own->ctx->stat) {
        ngx_stream_vmess_stats_add(own->ctx->stat, NGX_STREAM_VMESS_UP, len);
    }

    n = sub->peer.connection->send(sub->peer.connection, p->pos, len);

    ngx_log_debug2(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "vmess udp: %uz bytes to upstream: %z", len, n);

    if (n == NGX_ERROR) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "vmess: udp send to %V failed", &sub->name);
        return NGX_ERROR;
    }

    if (n == NGX_AGAIN) {
        /* the socket's send buffer is full: as on any UDP path, lost */
        own->dropped_target++;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_stream_vmess_udp_output(ngx_stream_vmess_sub_t *sub, u_char *data,
    size_t len)
{
    if (sub->own->ctx->stat) {
        ngx_stream_vmess_stats_add(sub->own->ctx->stat, NGX_STREAM_VMESS_DOWN,
                                   len);
    }

    return ngx_stream_vmess_own_send(sub->own, data, len, 0);
}


/* the one upstream is the session: it ends with it */

static void
ngx_stream_vmess_udp_ended(ngx_stream_vmess_sub_t *sub, ngx_uint_t how)
{
    ngx_stream_vmess_own_t  *own;

    own = sub->own;

    switch (how) {

    case NGX_STREAM_VMESS_SUB_TIMEDOUT:
        ngx_log_error(NGX_LOG_INFO, own->session->connection->log,
                      NGX_ETIMEDOUT, "vmess: udp session idle timeout");
        ngx_stream_vmess_own_finalize(own, NGX_STREAM_OK);
        return;

    case NGX_STREAM_VMESS_SUB_FAILED:
        ngx_stream_vmess_own_finalize(own, NGX_STREAM_BAD_GATEWAY);
        return;

    default:
        ngx_stream_vmess_own_finalize(own, NGX_STREAM_OK);
        return;
    }
}
