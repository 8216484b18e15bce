/*
 * ngx_stream_vmess_module: Mux.Cool (command 3), a mode of the module's
 * own relay (ngx_stream_vmess_upstream.c).
 *
 * The request plaintext is a stream of Mux.Cool frames (the core's
 * reader): New opens a sub-session to its own target (checked by the
 * destination policy, a name looked up first), Keep carries its data,
 * End closes it.  Each upstream read goes back as one Keep frame in one
 * response chunk; a sub-session that ends gets an End frame.
 */

#include "ngx_stream_vmess_module.h"


static ngx_int_t ngx_stream_vmess_mux_input(ngx_stream_vmess_own_t *own);
static ngx_int_t ngx_stream_vmess_mux_output(ngx_stream_vmess_sub_t *sub,
    u_char *data, size_t len);
static void ngx_stream_vmess_mux_ended(ngx_stream_vmess_sub_t *sub,
    ngx_uint_t how);
static ngx_int_t ngx_stream_vmess_mux_frame(ngx_stream_vmess_own_t *own);
static ngx_int_t ngx_stream_vmess_mux_data(ngx_stream_vmess_own_t *own,
    const u_char *data, size_t len, int last);
static ngx_stream_vmess_sub_t *ngx_stream_vmess_mux_find(
    ngx_stream_vmess_own_t *own, ngx_uint_t id);
static ngx_int_t ngx_stream_vmess_mux_target(ngx_stream_vmess_sub_t *sub,
    vmess_mux_frame_t *f);
static void ngx_stream_vmess_mux_resolved(ngx_resolver_ctx_t *rctx);
static void ngx_stream_vmess_mux_fail(ngx_stream_vmess_sub_t *sub,
    ngx_uint_t error);
static ngx_int_t ngx_stream_vmess_mux_end_frame(ngx_stream_vmess_own_t *own,
    ngx_uint_t id, ngx_uint_t error);
static void ngx_stream_vmess_mux_stall_start(ngx_stream_vmess_sub_t *sub);
static void ngx_stream_vmess_mux_stalled(ngx_event_t *ev);


static const ngx_stream_vmess_own_ops_t  ngx_stream_vmess_mux_ops = {
    ngx_stream_vmess_mux_input,
    ngx_stream_vmess_mux_output,
    ngx_stream_vmess_mux_ended
};


void
ngx_stream_vmess_mux_start(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf)
{
    ngx_stream_vmess_own_t  *own;

    own = ngx_stream_vmess_own_create(s, ctx, vscf,
                                      &ngx_stream_vmess_mux_ops);
    if (own == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    vmess_mux_reader_init(&own->reader);

    ngx_stream_vmess_own_run(own);
}


/* Mux.Cool: frames from the plaintext; the data goes to its sub-session */

static ngx_int_t
ngx_stream_vmess_mux_input(ngx_stream_vmess_own_t *own)
{
    int                      rc, last;
    size_t                   len, room, consumed, dlen;
    ngx_buf_t               *p;
    ngx_int_t                r;
    const uint8_t           *data;
    ngx_connection_t        *c;
    ngx_stream_vmess_sub_t  *sub;

    c = own->session->connection;
    p = own->plain;

    while (p->pos < p->last) {

        len = p->last - p->pos;
        sub = own->cur;

        if (own->reader.data_left && sub && !sub->udp) {
            room = sub->out->end - sub->out->last;

            if (room == 0) {
                if (ngx_stream_vmess_sub_flush(sub) == NGX_ERROR) {
                    ngx_stream_vmess_mux_fail(sub, 1);
                    continue;
                }

                room = sub->out->end - sub->out->last;

                if (room == 0) {
                    ngx_log_debug1(NGX_LOG_DEBUG_STREAM, c->log, 0,
                                   "vmess mux: paused on session %ui",
                                   sub->id);
                    own->paused = sub;
                    ngx_stream_vmess_mux_stall_start(sub);
                    return NGX_AGAIN;
                }
            }

            len = ngx_min(len, room);
        }

        consumed = 0;
        data = NULL;
        dlen = 0;
        last = 0;

        rc = vmess_mux_read(&own->reader, p->pos, len, &consumed,
                            &own->frame, &data, &dlen, &last);

        p->pos += consumed;

        switch (rc) {

        case VMESS_AGAIN:
            break;

        case VMESS_MUX_FRAME:
            r = ngx_stream_vmess_mux_frame(own);
            if (r != NGX_OK) {
                return r;
            }
            break;

        case VMESS_MUX_DATA:
            r = ngx_stream_vmess_mux_data(own, data, dlen, last);
            if (r != NGX_OK) {
                return r;
            }
            break;

        default:
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "vmess: bad mux frame (%s), closing",
                          vmess_strerror(rc));
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* an upstream read, as one Keep frame with its header in the headroom */

static ngx_int_t
ngx_stream_vmess_mux_output(ngx_stream_vmess_sub_t *sub, u_char *data,
    size_t len)
{
    size_t             hlen;
    vmess_mux_frame_t  f;
    u_char             hdr[VMESS_MUX_HEADER_MAX];

    ngx_memzero(&f, sizeof(vmess_mux_frame_t));
    f.session_id = (uint16_t) sub->id;
    f.status = VMESS_MUX_KEEP;
    f.option = VMESS_MUX_OPT_DATA;
    f.data_len = (uint16_t) len;

    if (vmess_mux_write_header(&f, hdr, sizeof(hdr), &hlen) != VMESS_OK
        || hlen > NGX_STREAM_VMESS_OWN_HEADROOM)
    {
        ngx_log_error(NGX_LOG_ALERT, sub->own->session->connection->log, 0,
                      "vmess_mux_write_header() failed");
        return NGX_ERROR;
    }

    ngx_memcpy(data - hlen, hdr, hlen);

    if (sub->own->ctx->stat) {
        ngx_stream_vmess_stats_add(sub->own->ctx->stat, NGX_STREAM_VMESS_DOWN,
                                   len);
    }

    return ngx_stream_vmess_own_send(sub->own, data - hlen, len + hlen, 0);
}


/* a sub-session's upstream ended: the others go on */

static void
ngx_stream_vmess_mux_ended(ngx_stream_vmess_sub_t *sub, ngx_uint_t how)
{
    ngx_stream_vmess_mux_fail(sub, how == NGX_STREAM_VMESS_SUB_RECV_ERROR
                                   || how == NGX_STREAM_VMESS_SUB_FAILED);
}


static ngx_int_t
ngx_stream_vmess_mux_frame(ngx_stream_vmess_own_t *own)
{
    ngx_connection_t        *c;
    vmess_mux_frame_t       *f;
    ngx_stream_vmess_sub_t  *sub;

    c = own->session->connection;
    f = &own->frame;

    ngx_log_debug4(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "vmess mux frame: session %ui, status %ui, option %ui, "
                   "data %ui", (ngx_uint_t) f->session_id,
                   (ngx_uint_t) f->status, (ngx_uint_t) f->option,
                   (ngx_uint_t) ((f->option & VMESS_MUX_OPT_DATA)
                                 ? f->data_len : 0));

    own->cur = NULL;

    sub = ngx_stream_vmess_mux_find(own, f->session_id);

    switch (f->status) {

    case VMESS_MUX_NEW:

        if (sub) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "vmess: mux session %ui opened twice, "
                          "ending it", (ngx_uint_t) f->session_id);
            ngx_stream_vmess_mux_fail(sub, 1);
            return NGX_OK;
        }

        if (own->nsubs >= own->conf->mux_sessions) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "vmess: mux session limit %ui reached, "
                          "session %ui refused", own->conf->mux_sessions,
                          (ngx_uint_t) f->session_id);
            return ngx_stream_vmess_mux_end_frame(own, f->session_id, 1);
        }

        if (own->ended && own->ended_id == f->session_id) {
            own->ended = 0;
        }

        sub = ngx_stream_vmess_sub_create(own, f->session_id,
                                          f->network == VMESS_MUX_NET_UDP);
        if (sub == NULL) {
            return NGX_ERROR;
        }

        own->opened++;
        own->cur = sub;

        return ngx_stream_vmess_mux_target(sub, f);

    case VMESS_MUX_KEEP:

        if (sub == NULL && own->ended && own->ended_id == f->session_id) {
            /* sent before our End reached the client: discarded */
            return NGX_OK;
        }

        if (sub == NULL) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "vmess: mux session %ui unknown, ending it",
                          (ngx_uint_t) f->session_id);
            return ngx_stream_vmess_mux_end_frame(own, f->session_id, 0);
        }

        if (!sub->end) {
            own->cur = sub;
        }

        return NGX_OK;

    case VMESS_MUX_END:

        if (sub == NULL || sub->end) {
            return NGX_OK;
        }

        ngx_log_debug1(NGX_LOG_DEBUG_STREAM, c->log, 0,
                       "vmess mux: session %ui ended by the client",
                       sub->id);

        sub->end = 1;

        if ((f->option & VMESS_MUX_OPT_ERROR)
            || sub->udp || sub->out->pos == sub->out->last)
        {
            ngx_stream_vmess_sub_close(sub);
        }

        return NGX_OK;

    default: /* VMESS_MUX_KEEPALIVE: data, if any, is discarded */
        return NGX_OK;
    }
}


static ngx_int_t
ngx_stream_vmess_mux_data(ngx_stream_vmess_own_t *own, const u_char *data,
    size_t len, int last)
{
    ssize_t                  n;
    ngx_buf_t               *b;
    ngx_connection_t        *uc;
    ngx_stream_vmess_sub_t  *sub;

    sub = own->cur;

    if (sub == NULL) {
        return NGX_OK;
    }

    if (own->ctx->stat) {
        ngx_stream_vmess_stats_add(own->ctx->stat, NGX_STREAM_VMESS_UP, len);
    }

    b = sub->out;

    if (!sub->udp) {
        /* the room was checked before the read */
        b->last = ngx_cpymem(b->last, data, len);

        if (sub->connected && ngx_stream_vmess_sub_flush(sub) == NGX_ERROR) {
            ngx_stream_vmess_mux_fail(sub, 1);
        }

        return NGX_OK;
    }

    /* UDP: a frame's data is one datagram, gathered if split */

    if (sub->drop || (size_t) (b->end - b->last) < len) {
        sub->drop = 1;

    } else {
        b->last = ngx_cpymem(b->last, data, len);
    }

    if (!last) {
        return NGX_OK;
    }

    uc = sub->peer.connection;

    if (sub->drop) {
        ngx_log_error(NGX_LOG_INFO, own->session->connection->log, 0,
                      "vmess: mux session %ui: datagram over %uz bytes "
                      "dropped", sub->id, (size_t) (b->end - b->start));
        own->dropped_over++;

    } else if (uc && sub->connected) {
        n = uc->send(uc, b->pos, b->last - b->pos);

        if (n == NGX_ERROR) {
            ngx_stream_vmess_mux_fail(sub, 1);
            return NGX_OK;
        }

        if (n == NGX_AGAIN) {
            own->dropped_target++;
        }

        ngx_add_timer(uc->read, own->conf->udp_timeout);

    } else {
        /* sent while the target is resolved: lost, as with any UDP */
        own->dropped_early++;
    }

    sub->drop = 0;
    b->pos = b->start;
    b->last = b->start;

    return NGX_OK;
}


static ngx_stream_vmess_sub_t *
ngx_stream_vmess_mux_find(ngx_stream_vmess_own_t *own, ngx_uint_t id)
{
    ngx_queue_t             *q;
    ngx_stream_vmess_sub_t  *sub;

    for (q = ngx_queue_head(&own->subs);
         q != ngx_queue_sentinel(&own->subs);
         q = ngx_queue_next(q))
    {
        sub = ngx_queue_data(q, ngx_stream_vmess_sub_t, queue);

        if (sub->id == id) {
            return sub;
        }
    }

    return NULL;
}


/* a New frame's target: a literal, else resolved; then the policy */

static ngx_int_t
ngx_stream_vmess_mux_target(ngx_stream_vmess_sub_t *sub, vmess_mux_frame_t *f)
{
    u_char                 host[256];
    size_t                 len;
    ngx_connection_t      *c;
    ngx_resolver_ctx_t    *rctx;
    ngx_stream_session_t  *s;

    s = sub->own->session;
    c = s->connection;

    if (vmess_addr_format_host(f->addr_type, f->addr, f->addr_len,
                               (char *) host, sizeof(host), &len)
        != VMESS_OK)
    {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "vmess: mux session %ui: bad address", sub->id);
        ngx_stream_vmess_mux_fail(sub, 1);
        return NGX_OK;
    }

    sub->port = f->port;

    sub->host.data = ngx_pnalloc(sub->pool, len);
    if (sub->host.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(sub->host.data, host, len);
    sub->host.len = len;

    if (ngx_stream_vmess_literal_addr(sub->pool, f->addr_type, f->addr,
                                      &sub->host, &sub->sockaddr,
                                      &sub->socklen)
        == NGX_OK)
    {
        if (ngx_stream_vmess_sub_connect(sub) != NGX_OK) {
            ngx_stream_vmess_mux_fail(sub, 1);
        }

        return NGX_OK;
    }

    rctx = ngx_stream_vmess_resolve_start(s, sub->pool, &sub->host,
                                          ngx_stream_vmess_mux_resolved, sub);
    if (rctx == NULL) {
        return NGX_ERROR;
    }

    if (rctx == NGX_NO_RESOLVER) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "vmess: no resolver defined to resolve %V",
                      &sub->host);
        ngx_stream_vmess_mux_fail(sub, 1);
        return NGX_OK;
    }

    sub->rctx = rctx;

    if (ngx_resolve_name(rctx) != NGX_OK) {
        sub->rctx = NULL;
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_stream_vmess_mux_resolved(ngx_resolver_ctx_t *rctx)
{
    ngx_uint_t               failed;
    ngx_connection_t        *c;
    ngx_stream_vmess_sub_t  *sub;

    sub = rctx->data;
    c = sub->own->session->connection;

    failed = 0;

    if (rctx->state || rctx->naddrs == 0) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "vmess: %V could not be resolved (%i: %s)",
                      &rctx->name, rctx->state,
                      ngx_resolver_strerror(rctx->state));
        failed = 1;

    } else {
        ngx_stream_vmess_resolved_addr(rctx, sub->own->conf,
                                       &sub->sockaddr, &sub->socklen);
    }

    ngx_resolve_name_done(rctx);
    sub->rctx = NULL;

    if (failed || ngx_stream_vmess_sub_connect(sub) != NGX_OK) {
        ngx_stream_vmess_mux_fail(sub, 1);
    }
}


/* the sub-session ends: End frame to the client, close the upstream */

static void
ngx_stream_vmess_mux_fail(ngx_stream_vmess_sub_t *sub, ngx_uint_t error)
{
    ngx_stream_vmess_own_t  *own;

    own = sub->own;

    if (!sub->end) {
        own->ended_id = sub->id;
        own->ended = 1;

        if (ngx_stream_vmess_mux_end_frame(own, sub->id, error) != NGX_OK) {
            /* the write handler closes the connection */
            own->error = 1;
            ngx_post_event(own->session->connection->write,
                           &ngx_posted_events);
        }
    }

    ngx_stream_vmess_sub_close(sub);
}


static ngx_int_t
ngx_stream_vmess_mux_end_frame(ngx_stream_vmess_own_t *own, ngx_uint_t id,
    ngx_uint_t error)
{
    size_t             len;
    vmess_mux_frame_t  f;
    u_char             hdr[VMESS_MUX_HEADER_MAX];

    ngx_memzero(&f, sizeof(vmess_mux_frame_t));
    f.session_id = (uint16_t) id;
    f.status = VMESS_MUX_END;
    f.option = error ? VMESS_MUX_OPT_ERROR : 0;

    if (vmess_mux_write_header(&f, hdr, sizeof(hdr), &len) != VMESS_OK) {
        return NGX_ERROR;
    }

    return ngx_stream_vmess_own_send(own, hdr, len, 0);
}


/*
 * Mux.Cool has no flow control per sub-session: while the reader waits
 * for one, all wait.  One whose upstream takes no byte for
 * vmess_mux_stall_timeout is ended, so the others go on; each byte taken
 * re-arms the timer (ngx_stream_vmess_sub_flush()), closing deletes it.
 */

static void
ngx_stream_vmess_mux_stall_start(ngx_stream_vmess_sub_t *sub)
{
    ngx_msec_t  timeout;

    timeout = sub->own->conf->mux_stall_timeout;

    if (timeout == 0 || sub->stall.timer_set) {
        return;
    }

    sub->stall.handler = ngx_stream_vmess_mux_stalled;
    sub->stall.data = sub;
    sub->stall.log = sub->own->session->connection->log;

    ngx_add_timer(&sub->stall, timeout);
}


static void
ngx_stream_vmess_mux_stalled(ngx_event_t *ev)
{
    ngx_str_t                target;
    ngx_connection_t        *c;
    ngx_stream_vmess_sub_t  *sub;
    u_char                   text[256 + sizeof(":65535")];

    sub = ev->data;
    c = sub->own->session->connection;

    /*
     * the kernel signals a full socket writable only once much of its send
     * buffer is free: a slow reader may have taken bytes with no write
     * event yet, so try to write before calling it a stall
     */

    if (ngx_stream_vmess_sub_flush(sub) == NGX_ERROR) {
        ngx_stream_vmess_mux_fail(sub, 1);
        return;
    }

    if (sub->own->paused != sub) {
        /* bytes taken: the reader goes on */
        return;
    }

    if (sub->name.len) {
        target = sub->name;

    } else {
        /* still being resolved */
        target.data = text;
        target.len = ngx_snprintf(text, sizeof(text), "%V:%d", &sub->host,
                                  (int) sub->port)
                     - text;
    }

    ngx_log_error(NGX_LOG_INFO, c->log, 0,
                  "vmess: mux session %ui (%V): upstream took no byte for "
                  "%M ms with %uz bytes waiting, ending it", sub->id, &target,
                  sub->own->conf->mux_stall_timeout,
                  (size_t) (sub->out->last - sub->out->pos));

    ngx_stream_vmess_mux_fail(sub, 1);
}


ngx_int_t
ngx_stream_vmess_mux_sessions_variable(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data)
{
    u_char                  *p;
    ngx_stream_vmess_ctx_t  *ctx;
    ngx_stream_vmess_own_t  *own;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_vmess_module);

    own = ctx ? ctx->own : NULL;

    if (own == NULL || !own->mux) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(s->connection->pool, NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->len = ngx_sprintf(p, "%ui", own->opened) - p;
    v->data = p;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}
