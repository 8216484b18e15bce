/*
 * ngx_stream_vmess_module: the module's own relay, for sessions the stock
 * proxy cannot carry (the UDP command, Mux.Cool; ngx_stream_vmess_udp.c
 * and ngx_stream_vmess_mux.c are its modes, behind own->ops).
 *
 * Client -> upstream: our read handler reads c->recv (the preread
 * remainder first), opens one chunk at a time with the core and hands
 * the plaintext to the mode, which sends it to the sub-sessions'
 * upstream connections (ngx_event_connect_peer).  Upstream -> client:
 * each upstream read is given to the mode, which seals it as one chunk
 * (one datagram, or one Keep frame) into a buffer of ours through
 * ngx_stream_vmess_own_send(); it is written through
 * ngx_stream_top_filter(), and the VMess filter passes it on untouched,
 * as the ctx state is OWN.
 *
 * Backpressure: a mux sub-session buffers up to SUB_BUF bytes for its
 * upstream; when the buffer of the frame being read is full, reading
 * from the client pauses until it drains.  Mux.Cool has no flow control
 * per sub-session, so that pause holds all of them: one whose upstream
 * takes no byte for vmess_mux_stall_timeout is ended (the mux mode's
 * stall timer), and the others go on.  When all client output buffers
 * are in flight, TCP upstream reads pause; datagrams are never held
 * back: they are read and dropped, and counted, as are those the
 * target's socket refuses.
 */

#include "ngx_stream_vmess_module.h"


#define NGX_STREAM_VMESS_OWN_NBUFS      8
#define NGX_STREAM_VMESS_OWN_OUT_SIZE   (NGX_STREAM_VMESS_SEAL_MAX + 1024)
#define NGX_STREAM_VMESS_PLAIN_SIZE     VMESS_CHUNK_MAX
#define NGX_STREAM_VMESS_RECV_SIZE      65536
#define NGX_STREAM_VMESS_TCP_READ       8192    /* per Keep frame */
#define NGX_STREAM_VMESS_SUB_BUF        65536
#define NGX_STREAM_VMESS_CONNECT_TIME   30000


static void ngx_stream_vmess_own_read(ngx_event_t *rev);
static void ngx_stream_vmess_own_write(ngx_event_t *wev);
static ngx_stream_vmess_own_t *ngx_stream_vmess_event_own(ngx_event_t *ev);
static ngx_int_t ngx_stream_vmess_own_input(ngx_stream_vmess_own_t *own);
static void ngx_stream_vmess_sub_read(ngx_event_t *ev);
static void ngx_stream_vmess_sub_write(ngx_event_t *ev);
static ngx_int_t ngx_stream_vmess_own_flush(ngx_stream_vmess_own_t *own,
    ngx_chain_t *cl);
static void ngx_stream_vmess_own_resume(ngx_stream_vmess_own_t *own);
static void ngx_stream_vmess_own_cleanup(void *data);


/* NULL on failure: the caller finalizes the session */

ngx_stream_vmess_own_t *
ngx_stream_vmess_own_create(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf,
    const ngx_stream_vmess_own_ops_t *ops)
{
    ngx_connection_t        *c;
    ngx_pool_cleanup_t      *cln;
    ngx_stream_vmess_own_t  *own;

    c = s->connection;

    own = ngx_pcalloc(c->pool, sizeof(ngx_stream_vmess_own_t));
    if (own == NULL) {
        return NULL;
    }

    own->session = s;
    own->ctx = ctx;
    own->conf = vscf;
    own->ops = ops;
    own->mux = (ctx->command == VMESS_CMD_MUX);
    own->timeout = own->mux ? vscf->mux_timeout : vscf->udp_timeout;
    ngx_queue_init(&own->subs);

    ctx->own = own;
    ctx->state = NGX_STREAM_VMESS_OWN;

    cln = ngx_pool_cleanup_add(c->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_stream_vmess_own_cleanup;
    cln->data = own;

    own->plain = ngx_create_temp_buf(c->pool, NGX_STREAM_VMESS_PLAIN_SIZE);
    own->rbuf = ngx_pnalloc(c->pool, NGX_STREAM_VMESS_OWN_HEADROOM
                                     + NGX_STREAM_VMESS_RECV_SIZE);

    if (own->plain == NULL || own->rbuf == NULL) {
        return NULL;
    }

    c->log->action = own->mux ? "relaying mux sessions"
                              : "relaying udp datagrams";

    return own;
}


void
ngx_stream_vmess_own_run(ngx_stream_vmess_own_t *own)
{
    ngx_connection_t  *c;

    c = own->session->connection;

    c->read->handler = ngx_stream_vmess_own_read;
    c->write->handler = ngx_stream_vmess_own_write;

    /*
     * nginx's graceful shutdown calls the read handler of idle connections
     * with c->close set: the session then closes its upstreams itself
     * instead of leaving their sockets open when the worker exits.
     */
    c->idle = 1;

    ngx_stream_vmess_own_read(c->read);
}


/* client -> upstream */

static void
ngx_stream_vmess_own_read(ngx_event_t *rev)
{
    ssize_t                  n;
    ngx_int_t                rc;
    ngx_buf_t               *b;
    ngx_connection_t        *c;
    ngx_stream_session_t    *s;
    ngx_stream_vmess_own_t  *own;

    own = ngx_stream_vmess_event_own(rev);
    s = own->session;
    c = s->connection;

    if (rev->timedout) {
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "vmess: %s session idle timeout",
                      own->mux ? "mux" : "udp");
        ngx_stream_vmess_own_finalize(own, NGX_STREAM_OK);
        return;
    }

    if (c->close || ngx_exiting) {
        ngx_stream_vmess_own_finalize(own, NGX_STREAM_OK);
        return;
    }

    b = c->buffer;

    for ( ;; ) {

        rc = ngx_stream_vmess_own_input(own);

        if (rc == NGX_ERROR) {
            ngx_stream_vmess_own_finalize(own, NGX_STREAM_OK);
            return;
        }

        if (rc == NGX_DONE) {
            /* the client's end chunk: ours is sent, then we close */
            if (!c->buffered) {
                ngx_stream_vmess_own_finalize(own, NGX_STREAM_OK);
            }

            return;
        }

        if (rc == NGX_AGAIN) {
            /* paused: a sub-session buffer is full */
            return;
        }

        /* the input buffer is used up */

        b->pos = b->start;
        b->last = b->start;

        if (!rev->ready) {
            break;
        }

        n = c->recv(c, b->last, b->end - b->last);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR || n == 0) {
            ngx_log_debug0(NGX_LOG_DEBUG_STREAM, c->log, 0,
                           "vmess own: client closed");
            ngx_stream_vmess_own_finalize(own, NGX_STREAM_OK);
            return;
        }

        b->last += n;
        s->received += n;
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_stream_vmess_own_finalize(own, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_add_timer(rev, own->timeout);
}


/*
 * Opens chunks from c->buffer and hands their plaintext to the mode.
 * NGX_OK: the input is used up; NGX_AGAIN: paused on a full sub-session
 * buffer; NGX_DONE: the end chunk came; NGX_ERROR: close the connection.
 */

static ngx_int_t
ngx_stream_vmess_own_input(ngx_stream_vmess_own_t *own)
{
    int                      rc;
    size_t                   consumed, produced;
    ngx_int_t                r;
    ngx_buf_t               *b, *p;
    ngx_uint_t               level;
    ngx_connection_t        *c;
    ngx_stream_vmess_ctx_t  *ctx;

    c = own->session->connection;
    ctx = own->ctx;
    b = c->buffer;
    p = own->plain;

    for ( ;; ) {

        if (p->pos < p->last) {
            r = own->ops->input(own);

            if (r != NGX_OK) {
                return r;
            }
        }

        p->pos = p->start;
        p->last = p->start;

        if (ctx->dec.eof) {
            if (b->pos < b->last) {
                ngx_log_error(NGX_LOG_INFO, c->log, 0,
                              "vmess: data after the end chunk");
                return NGX_ERROR;
            }

            if (ngx_stream_vmess_own_send(own, NULL, 0, 1) == NGX_ERROR) {
                return NGX_ERROR;
            }

            return NGX_DONE;
        }

        if (b->pos == b->last) {
            return NGX_OK;
        }

        consumed = 0;
        produced = 0;

        rc = vmess_body_open(&ctx->dec, b->pos, b->last - b->pos, &consumed,
                             p->last, p->end - p->last, &produced);

        b->pos += consumed;
        p->last += produced;

        if (rc == VMESS_AGAIN) {
            continue;
        }

        if (rc == VMESS_NEED_STAGING) {

            if (ctx->staging) {
                ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                              "vmess_body_open() asked for staging twice");
                return NGX_ERROR;
            }

            if (ngx_stream_vmess_staging(c->pool, &ctx->dec, &ctx->staging)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            continue;
        }

        if (rc != VMESS_OK) {
            level = (rc == VMESS_ERR_CRYPTO) ? NGX_LOG_ALERT : NGX_LOG_INFO;

            ngx_log_error(level, c->log, 0, "vmess: bad request chunk: %s",
                          vmess_strerror(rc));
            return NGX_ERROR;
        }
    }
}


ngx_stream_vmess_sub_t *
ngx_stream_vmess_sub_create(ngx_stream_vmess_own_t *own, ngx_uint_t id,
    ngx_uint_t udp)
{
    ngx_pool_t              *pool;
    ngx_connection_t        *c;
    ngx_stream_vmess_sub_t  *sub;

    c = own->session->connection;

    pool = ngx_create_pool(1024, c->log);
    if (pool == NULL) {
        return NULL;
    }

    sub = ngx_pcalloc(pool, sizeof(ngx_stream_vmess_sub_t));
    if (sub == NULL) {
        ngx_destroy_pool(pool);
        return NULL;
    }

    sub->pool = pool;
    sub->own = own;
    sub->id = id;
    sub->udp = udp;

    if (own->mux) {
        sub->out = ngx_create_temp_buf(pool, udp ? VMESS_UDP_PAYLOAD_MAX
                                                 : NGX_STREAM_VMESS_SUB_BUF);
        if (sub->out == NULL) {
            ngx_destroy_pool(pool);
            return NULL;
        }
    }

    ngx_queue_insert_tail(&own->subs, &sub->queue);
    own->nsubs++;

    return sub;
}


ngx_int_t
ngx_stream_vmess_sub_connect(ngx_stream_vmess_sub_t *sub)
{
    ngx_int_t                rc;
    ngx_connection_t        *c, *uc;
    ngx_peer_connection_t   *pc;
    ngx_stream_vmess_own_t  *own;

    own = sub->own;
    c = own->session->connection;

    rc = ngx_stream_vmess_destination(c->log, sub->pool, &sub->sockaddr,
                                      sub->socklen, sub->port,
                                      own->conf, &sub->name);
    if (rc != NGX_OK) {
        return rc;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "vmess own: session %ui %s to %V", sub->id,
                   sub->udp ? "udp" : "tcp", &sub->name);

    pc = &sub->peer;
    pc->sockaddr = &sub->sockaddr.sockaddr;
    pc->socklen = sub->socklen;
    pc->name = &sub->name;
    pc->get = ngx_event_get_peer;
    pc->log = c->log;
    pc->log_error = NGX_ERROR_ERR;
    pc->type = sub->udp ? SOCK_DGRAM : SOCK_STREAM;

    rc = ngx_event_connect_peer(pc);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        return NGX_DECLINED;
    }

    uc = pc->connection;
    uc->data = sub;
    uc->pool = sub->pool;
    uc->read->handler = ngx_stream_vmess_sub_read;
    uc->write->handler = ngx_stream_vmess_sub_write;

    if (rc == NGX_AGAIN) {
        ngx_add_timer(uc->write, NGX_STREAM_VMESS_CONNECT_TIME);
        return NGX_OK;
    }

    sub->connected = 1;

    if (ngx_handle_read_event(uc->read, 0) != NGX_OK) {
        return NGX_DECLINED;
    }

    ngx_add_timer(uc->read, sub->udp ? own->conf->udp_timeout
                                     : own->conf->mux_timeout);

    if (sub->out && sub->out->pos < sub->out->last && !sub->udp) {
        if (ngx_stream_vmess_sub_flush(sub) == NGX_ERROR) {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


/* upstream -> client: one read, one chunk */

static void
ngx_stream_vmess_sub_read(ngx_event_t *ev)
{
    u_char                  *data;
    size_t                   size;
    ssize_t                  n;
    ngx_uint_t               full;
    ngx_connection_t        *uc;
    ngx_stream_vmess_own_t  *own;
    ngx_stream_vmess_sub_t  *sub;

    uc = ev->data;
    sub = uc->data;
    own = sub->own;

    if (ev->timedout) {
        ngx_log_debug1(NGX_LOG_DEBUG_STREAM, uc->log, 0,
                       "vmess own: session %ui idle timeout", sub->id);

        own->ops->ended(sub, NGX_STREAM_VMESS_SUB_TIMEDOUT);
        return;
    }

    data = own->rbuf + NGX_STREAM_VMESS_OWN_HEADROOM;
    size = (sub->udp || !own->mux) ? NGX_STREAM_VMESS_RECV_SIZE
                                   : NGX_STREAM_VMESS_TCP_READ;

    while (ev->ready && !own->finishing) {

        full = (own->out.free == NULL
                && own->out.nbufs >= NGX_STREAM_VMESS_OWN_NBUFS);

        if (full && !sub->udp) {
            own->blocked = 1;
            break;
        }

        n = uc->recv(uc, data, size);

        ngx_log_debug2(NGX_LOG_DEBUG_STREAM, uc->log, 0,
                       "vmess own: session %ui recv %z", sub->id, n);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR || n == 0) {
            own->ops->ended(sub, n == 0 ? NGX_STREAM_VMESS_SUB_EOF
                                        : NGX_STREAM_VMESS_SUB_RECV_ERROR);
            return;
        }

        if (sub->udp && n > VMESS_UDP_PAYLOAD_MAX) {
            /* a v2ray reader would split it into two datagrams */
            own->dropped_over++;
            continue;
        }

        if (full) {
            /* a datagram is not held back while the client does not read:
             * it is read (else the kernel drops it, uncounted) and lost */
            own->dropped_client++;
            continue;
        }

        if (own->ops->output(sub, data, n) == NGX_ERROR) {
            ngx_stream_vmess_own_finalize(own, NGX_STREAM_OK);
            return;
        }
    }

    if (ngx_handle_read_event(uc->read, 0) != NGX_OK) {
        own->ops->ended(sub, NGX_STREAM_VMESS_SUB_FAILED);
        return;
    }

    ngx_add_timer(uc->read, sub->udp ? own->conf->udp_timeout
                                     : own->conf->mux_timeout);

    ngx_add_timer(own->session->connection->read, own->timeout);
}


static void
ngx_stream_vmess_sub_write(ngx_event_t *ev)
{
    ngx_connection_t        *uc;
    ngx_stream_vmess_sub_t  *sub;

    uc = ev->data;
    sub = uc->data;

    if (ev->timedout) {
        ngx_log_error(NGX_LOG_ERR, uc->log, NGX_ETIMEDOUT,
                      "vmess: mux session %ui: upstream timed out (%V)",
                      sub->id, &sub->name);
        sub->own->ops->ended(sub, NGX_STREAM_VMESS_SUB_FAILED);
        return;
    }

    if (!sub->connected) {
        sub->connected = 1;

        if (ev->timer_set) {
            ngx_del_timer(ev);
        }

        ngx_add_timer(uc->read, sub->own->conf->mux_timeout);

        if (uc->read->ready) {
            ngx_post_event(uc->read, &ngx_posted_events);
        }
    }

    if (ngx_stream_vmess_sub_flush(sub) == NGX_ERROR) {
        sub->own->ops->ended(sub, NGX_STREAM_VMESS_SUB_FAILED);
    }
}


/* TCP sub-session: write the buffered bytes; NGX_ERROR closes it */

ngx_int_t
ngx_stream_vmess_sub_flush(ngx_stream_vmess_sub_t *sub)
{
    ssize_t                  n;
    ngx_buf_t               *b;
    ngx_connection_t        *uc;
    ngx_stream_vmess_own_t  *own;

    own = sub->own;
    uc = sub->peer.connection;
    b = sub->out;

    if (uc == NULL || !sub->connected || sub->udp) {
        /* datagrams are sent as they come, never buffered */
        return NGX_OK;
    }

    while (b->pos < b->last) {
        n = uc->send(uc, b->pos, b->last - b->pos);

        if (n == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (n == NGX_AGAIN || n == 0) {
            break;
        }

        b->pos += n;
    }

    if (b->pos == b->last) {
        b->pos = b->start;
        b->last = b->start;

        if (sub->end) {
            ngx_stream_vmess_sub_close(sub);
            return NGX_OK;
        }

    } else if (b->pos > b->start && b->last == b->end) {
        /* make room at the end for the rest of the paused frame */
        b->last = ngx_movemem(b->start, b->pos, b->last - b->pos);
        b->pos = b->start;
    }

    if (ngx_handle_write_event(uc->write, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    if (own->paused == sub && b->last < b->end) {
        /* bytes taken: the stall bound starts again at the next pause */
        own->paused = NULL;

        if (sub->stall.timer_set) {
            ngx_del_timer(&sub->stall);
        }

        ngx_post_event(own->session->connection->read, &ngx_posted_events);
    }

    return NGX_OK;
}


void
ngx_stream_vmess_sub_close(ngx_stream_vmess_sub_t *sub)
{
    ngx_stream_vmess_own_t  *own;

    own = sub->own;

    ngx_log_debug1(NGX_LOG_DEBUG_STREAM, own->session->connection->log, 0,
                   "vmess own: close session %ui", sub->id);

    if (own->cur == sub) {
        own->cur = NULL;
    }

    if (own->paused == sub) {
        own->paused = NULL;

        ngx_post_event(own->session->connection->read, &ngx_posted_events);
    }

    if (sub->stall.timer_set) {
        ngx_del_timer(&sub->stall);
    }

    if (sub->rctx) {
        ngx_resolve_name_done(sub->rctx);
        sub->rctx = NULL;
    }

    if (sub->peer.connection) {
        ngx_close_connection(sub->peer.connection);
        sub->peer.connection = NULL;
    }

    ngx_queue_remove(&sub->queue);
    own->nsubs--;

    ngx_destroy_pool(sub->pool);
}


/*
 * Seals len bytes as one chunk into an output buffer of ours and writes
 * it to the client (the response header goes first); end: the end chunk.
 */

ngx_int_t
ngx_stream_vmess_own_send(ngx_stream_vmess_own_t *own, u_char *data,
    size_t len, ngx_uint_t end)
{
    int                      rc;
    size_t                   written;
    ngx_buf_t               *b;
    ngx_uint_t               level;
    ngx_chain_t             *cl;
    ngx_connection_t        *c;
    ngx_stream_session_t    *s;
    ngx_stream_vmess_ctx_t  *ctx;

    s = own->session;
    c = s->connection;
    ctx = own->ctx;

    if (own->finishing) {
        return NGX_OK;
    }

    cl = ngx_stream_vmess_get_buf(s, &own->out, NGX_STREAM_VMESS_OWN_OUT_SIZE,
                                  NGX_MAX_UINT32_VALUE, NGX_STREAM_VMESS_TAG);
    if (cl == NGX_CHAIN_ERROR || cl == NULL) {
        return NGX_ERROR;
    }

    b = cl->buf;

    if (ngx_stream_vmess_response_header(s, ctx, b) != NGX_OK) {
        return NGX_ERROR;
    }

    written = 0;

    if (end) {
        rc = vmess_body_seal_end(&ctx->enc, ctx->pad, b->last,
                                 b->end - b->last, &written);
        own->finishing = 1;

    } else {
        rc = vmess_body_seal(&ctx->enc, data, len, ctx->pad, b->last,
                             b->end - b->last, &written);
    }

    if (rc != VMESS_OK) {
        level = (rc == VMESS_ERR_NONCE_WRAP) ? NGX_LOG_INFO : NGX_LOG_ALERT;

        ngx_log_error(level, c->log, 0,
                      "vmess: response chunk not sealed: %s",
                      vmess_strerror(rc));
        return NGX_ERROR;
    }

    b->last += written;

    return ngx_stream_vmess_own_flush(own, cl);
}


/*
 * Passes cl (may be NULL) to the client; the buffers the write filter has
 * sent go back to own->out.free.
 */

static ngx_int_t
ngx_stream_vmess_own_flush(ngx_stream_vmess_own_t *own, ngx_chain_t *cl)
{
    ngx_int_t              rc;
    ngx_connection_t      *c;
    ngx_stream_session_t  *s;

    s = own->session;
    c = s->connection;

    if (cl == NULL && !c->buffered) {
        /* the write filter alerts on an empty chain with nothing saved */
        rc = NGX_OK;

    } else {
        rc = ngx_stream_top_filter(s, cl, 1);
    }

    ngx_chain_update_chains(c->pool, &own->out.free, &own->out.busy, &cl,
                            NGX_STREAM_VMESS_TAG);

    if (rc == NGX_ERROR) {
        c->error = 1;
        return NGX_ERROR;
    }

    if (c->buffered) {
        if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
            return NGX_ERROR;
        }

    } else if (own->finishing) {
        /* all sent after the end chunk: the write handler closes */
        ngx_post_event(c->write, &ngx_posted_events);

    } else if (own->blocked && own->out.free) {
        ngx_stream_vmess_own_resume(own);
    }

    return NGX_OK;
}


static void
ngx_stream_vmess_own_write(ngx_event_t *wev)
{
    ngx_connection_t        *c;
    ngx_stream_vmess_own_t  *own;

    own = ngx_stream_vmess_event_own(wev);
    c = own->session->connection;

    if (wev->timedout) {
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "vmess: client timed out");

    } else if (!own->error
               && ngx_stream_vmess_own_flush(own, NULL) != NGX_ERROR
               && !(own->finishing && !c->buffered))
    {
        return;
    }

    ngx_stream_vmess_own_finalize(own, NGX_STREAM_OK);
}


/* the own relay of an event of the client connection */

static ngx_stream_vmess_own_t *
ngx_stream_vmess_event_own(ngx_event_t *ev)
{
    ngx_connection_t        *c;
    ngx_stream_vmess_ctx_t  *ctx;

    c = ev->data;
    ctx = ngx_stream_get_module_ctx((ngx_stream_session_t *) c->data,
                                    ngx_stream_vmess_module);

    return ctx->own;
}


/* output buffers are free again: let the upstreams read */

static void
ngx_stream_vmess_own_resume(ngx_stream_vmess_own_t *own)
{
    ngx_queue_t             *q;
    ngx_connection_t        *uc;
    ngx_stream_vmess_sub_t  *sub;

    own->blocked = 0;

    for (q = ngx_queue_head(&own->subs);
         q != ngx_queue_sentinel(&own->subs);
         q = ngx_queue_next(q))
    {
        sub = ngx_queue_data(q, ngx_stream_vmess_sub_t, queue);
        uc = sub->peer.connection;

        if (uc && sub->connected && uc->read->ready) {
            ngx_post_event(uc->read, &ngx_posted_events);
        }
    }
}


void
ngx_stream_vmess_own_finalize(ngx_stream_vmess_own_t *own, ngx_uint_t rc)
{
    ngx_stream_vmess_own_cleanup(own);

    ngx_stream_finalize_session(own->session, rc);
}


/* the datagrams the session dropped, for every reason */

ngx_uint_t
ngx_stream_vmess_udp_dropped(ngx_stream_vmess_own_t *own)
{
    return own->dropped_client + own->dropped_target + own->dropped_early
           + own->dropped_over;
}


/* closes every sub-session; runs again harmlessly from the pool cleanup */

static void
ngx_stream_vmess_own_cleanup(void *data)
{
    ngx_stream_vmess_own_t  *own = data;

    ngx_queue_t             *q;
    ngx_stream_vmess_sub_t  *sub;

    if (!own->drops_logged && ngx_stream_vmess_udp_dropped(own)) {
        ngx_log_error(NGX_LOG_INFO, own->session->connection->log, 0,
                      "vmess: udp datagrams dropped: %ui to the client "
                      "(client not reading), %ui to the target (send "
                      "buffer full), %ui to the target (sent while it was "
                      "resolved), %ui over %d bytes",
                      own->dropped_client, own->dropped_target,
                      own->dropped_early, own->dropped_over,
                      VMESS_UDP_PAYLOAD_MAX);
        own->drops_logged = 1;
    }

    while (!ngx_queue_empty(&own->subs)) {
        q = ngx_queue_head(&own->subs);
        sub = ngx_queue_data(q, ngx_stream_vmess_sub_t, queue);
        ngx_stream_vmess_sub_close(sub);
    }
}

