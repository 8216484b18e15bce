/*
 * ngx_stream_vmess_module: sessions the module relays itself.
 *
 * The stock proxy opens one upstream of the client's socket type, so the
 * UDP command (a UDP target behind a TCP client connection) and Mux.Cool
 * (many TCP and UDP sub-sessions in one connection) get upstream
 * connections of our own (NGINX-STREAM-NOTES.md §4.3).  The content
 * handler of every "vmess on" server is wrapped at postconfiguration:
 * plain TCP sessions go on to the saved handler (proxy_pass), UDP and mux
 * sessions stay here.
 *
 * Client -> upstream: our read handler reads c->recv (the preread
 * remainder first), opens one chunk at a time with the core and either
 * sends it as one datagram (UDP command) or feeds it to the Mux.Cool
 * reader.  Upstream -> client: each read is sealed as one chunk (one
 * datagram, or one Keep frame) into a buffer of ours and written through
 * ngx_stream_top_filter(); the VMess filter passes it on untouched, as
 * the ctx state is OWN.
 *
 * Backpressure: a mux sub-session buffers up to SUB_BUF bytes for its
 * upstream; when the buffer of the frame being read is full, reading
 * from the client pauses until it drains (the mux's own head-of-line
 * rule, as in v2ray).  When all client output buffers are in flight,
 * upstream reads pause; datagrams are never held back but dropped.
 */

#include "ngx_stream_vmess_module.h"


#define NGX_STREAM_VMESS_OWN_NBUFS      8
#define NGX_STREAM_VMESS_OWN_OUT_SIZE   (NGX_STREAM_VMESS_SEAL_MAX + 1024)
#define NGX_STREAM_VMESS_PLAIN_SIZE     VMESS_CHUNK_MAX
#define NGX_STREAM_VMESS_HEADROOM       16
#define NGX_STREAM_VMESS_RECV_SIZE      65536
#define NGX_STREAM_VMESS_TCP_READ       8192    /* per Keep frame */
#define NGX_STREAM_VMESS_SUB_BUF        65536
#define NGX_STREAM_VMESS_CONNECT_TIME   30000


typedef struct ngx_stream_vmess_own_s  ngx_stream_vmess_own_t;


typedef struct {
    ngx_queue_t                     queue;
    ngx_stream_vmess_own_t         *own;
    ngx_pool_t                     *pool;
    ngx_peer_connection_t           peer;
    ngx_resolver_ctx_t             *rctx;
    ngx_buf_t                      *out;        /* to the upstream */
    ngx_str_t                       host;
    ngx_str_t                       name;       /* addr:port */
    in_port_t                       port;
    ngx_sockaddr_t                  sockaddr;
    socklen_t                       socklen;
    ngx_uint_t                      id;
    unsigned                        udp:1;
    unsigned                        connected:1;
    unsigned                        end:1;      /* client sent End */
    unsigned                        drop:1;     /* current datagram lost */
} ngx_stream_vmess_sub_t;


struct ngx_stream_vmess_own_s {
    ngx_stream_session_t           *session;
    ngx_stream_vmess_ctx_t         *ctx;
    ngx_stream_vmess_srv_conf_t    *conf;
    ngx_buf_t                      *plain;      /* one opened chunk */
    u_char                         *rbuf;       /* upstream reads */
    ngx_queue_t                     subs;
    ngx_uint_t                      nsubs;
    ngx_uint_t                      opened;     /* $vmess_mux_sessions */
    ngx_uint_t                      dropped;    /* datagrams > 2048 */
    ngx_stream_vmess_sub_t         *cur;        /* owner of frame data */
    ngx_stream_vmess_sub_t         *paused;     /* its buffer is full */
    vmess_mux_reader_t              reader;
    vmess_mux_frame_t               frame;
    ngx_chain_t                    *free;
    ngx_chain_t                    *busy;
    ngx_uint_t                      nbufs;
    ngx_msec_t                      timeout;
    unsigned                        mux:1;
    unsigned                        blocked:1;  /* no output buffer */
    unsigned                        finishing:1;
    unsigned                        error:1;
};


static void ngx_stream_vmess_content_handler(ngx_stream_session_t *s);
static void ngx_stream_vmess_own_read(ngx_event_t *rev);
static void ngx_stream_vmess_own_write(ngx_event_t *wev);
static ngx_int_t ngx_stream_vmess_own_input(ngx_stream_vmess_own_t *own);
static ngx_int_t ngx_stream_vmess_own_mux(ngx_stream_vmess_own_t *own);
static ngx_int_t ngx_stream_vmess_own_frame(ngx_stream_vmess_own_t *own);
static ngx_int_t ngx_stream_vmess_own_data(ngx_stream_vmess_own_t *own,
    const u_char *data, size_t len, int last);
static ngx_stream_vmess_sub_t *ngx_stream_vmess_sub_find(
    ngx_stream_vmess_own_t *own, ngx_uint_t id);
static ngx_stream_vmess_sub_t *ngx_stream_vmess_sub_create(
    ngx_stream_vmess_own_t *own, ngx_uint_t id, ngx_uint_t udp);
static ngx_int_t ngx_stream_vmess_sub_target(ngx_stream_vmess_sub_t *sub,
    vmess_mux_frame_t *f);
static void ngx_stream_vmess_sub_resolved(ngx_resolver_ctx_t *rctx);
static ngx_int_t ngx_stream_vmess_sub_connect(ngx_stream_vmess_sub_t *sub);
static void ngx_stream_vmess_sub_read(ngx_event_t *ev);
static void ngx_stream_vmess_sub_write(ngx_event_t *ev);
static ngx_int_t ngx_stream_vmess_sub_flush(ngx_stream_vmess_sub_t *sub);
static void ngx_stream_vmess_sub_fail(ngx_stream_vmess_sub_t *sub,
    ngx_uint_t error);
static void ngx_stream_vmess_sub_close(ngx_stream_vmess_sub_t *sub);
static ngx_int_t ngx_stream_vmess_own_send(ngx_stream_vmess_own_t *own,
    u_char *data, size_t len, ngx_uint_t end);
static ngx_int_t ngx_stream_vmess_own_end_frame(ngx_stream_vmess_own_t *own,
    ngx_uint_t id, ngx_uint_t error);
static ngx_int_t ngx_stream_vmess_own_flush(ngx_stream_vmess_own_t *own,
    ngx_chain_t *cl);
static void ngx_stream_vmess_own_resume(ngx_stream_vmess_own_t *own);
static void ngx_stream_vmess_own_finalize(ngx_stream_vmess_own_t *own,
    ngx_uint_t rc);
static void ngx_stream_vmess_own_cleanup(void *data);


ngx_int_t
ngx_stream_vmess_own_init(ngx_conf_t *cf)
{
    ngx_uint_t                     i;
    ngx_stream_core_srv_conf_t   **cscfp;
    ngx_stream_core_main_conf_t   *cmcf;
    ngx_stream_vmess_srv_conf_t   *vscf;

    cmcf = ngx_stream_conf_get_module_main_conf(cf, ngx_stream_core_module);

    cscfp = cmcf->servers.elts;

    for (i = 0; i < cmcf->servers.nelts; i++) {
        vscf = cscfp[i]->ctx->srv_conf[ngx_stream_vmess_module.ctx_index];

        if (vscf->enable != 1 || cscfp[i]->handler == NULL) {
            continue;
        }

        vscf->content_handler = cscfp[i]->handler;
        cscfp[i]->handler = ngx_stream_vmess_content_handler;
    }

    return NGX_OK;
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


static void
ngx_stream_vmess_content_handler(ngx_stream_session_t *s)
{
    ngx_connection_t             *c;
    ngx_pool_cleanup_t           *cln;
    ngx_stream_vmess_ctx_t       *ctx;
    ngx_stream_vmess_own_t       *own;
    ngx_stream_vmess_sub_t       *sub;
    ngx_stream_vmess_srv_conf_t  *vscf;

    c = s->connection;

    vscf = ngx_stream_get_module_srv_conf(s, ngx_stream_vmess_module);
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_vmess_module);

    if (ctx == NULL || ctx->state != NGX_STREAM_VMESS_ACTIVE
        || ctx->command == VMESS_CMD_TCP)
    {
        vscf->content_handler(s);
        return;
    }

    if (ctx->command == VMESS_CMD_UDP && !ctx->dec.chunked) {
        /* a raw stream has no datagram boundaries */
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "vmess: udp command without chunk stream refused");
        ctx->status = NGX_STREAM_VMESS_ST_DENIED;
        ctx->state = NGX_STREAM_VMESS_REFUSED;
        ngx_stream_finalize_session(s, NGX_STREAM_FORBIDDEN);
        return;
    }

    own = ngx_pcalloc(c->pool, sizeof(ngx_stream_vmess_own_t));
    if (own == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    own->session = s;
    own->ctx = ctx;
    own->conf = vscf;
    own->mux = (ctx->command == VMESS_CMD_MUX);
    own->timeout = own->mux ? vscf->mux_timeout : vscf->udp_timeout;
    ngx_queue_init(&own->subs);
    vmess_mux_reader_init(&own->reader);

    ctx->own = own;
    ctx->state = NGX_STREAM_VMESS_OWN;

    cln = ngx_pool_cleanup_add(c->pool, 0);
    if (cln == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    cln->handler = ngx_stream_vmess_own_cleanup;
    cln->data = own;

    own->plain = ngx_create_temp_buf(c->pool, NGX_STREAM_VMESS_PLAIN_SIZE);
    own->rbuf = ngx_pnalloc(c->pool, NGX_STREAM_VMESS_HEADROOM
                                     + NGX_STREAM_VMESS_RECV_SIZE);

    if (own->plain == NULL || own->rbuf == NULL) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    c->log->action = own->mux ? "relaying mux sessions"
                              : "relaying udp datagrams";

    if (!own->mux) {
        /* the UDP command: one sub-session, the target of the header */

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
    }

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
    ngx_stream_vmess_ctx_t  *ctx;

    c = rev->data;
    s = c->data;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_vmess_module);
    own = ctx->own;

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
 * Opens chunks from c->buffer and relays their plaintext.  NGX_OK: the
 * input is used up; NGX_AGAIN: paused on a full sub-session buffer;
 * NGX_DONE: the end chunk came; NGX_ERROR: close the connection.
 */

static ngx_int_t
ngx_stream_vmess_own_input(ngx_stream_vmess_own_t *own)
{
    int                      rc;
    size_t                   consumed, produced;
    ssize_t                  n;
    ngx_int_t                r;
    ngx_buf_t               *b, *p;
    ngx_uint_t               level;
    ngx_connection_t        *c;
    ngx_stream_vmess_ctx_t  *ctx;
    ngx_stream_vmess_sub_t  *sub;

    c = own->session->connection;
    ctx = own->ctx;
    b = c->buffer;
    p = own->plain;

    for ( ;; ) {

        if (p->pos < p->last) {
            r = ngx_stream_vmess_own_mux(own);

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

            ctx->staging = ngx_palloc(c->pool, VMESS_STAGING_SIZE);
            if (ctx->staging == NULL) {
                return NGX_ERROR;
            }

            vmess_body_set_staging(&ctx->dec, ctx->staging,
                                   VMESS_STAGING_SIZE);
            continue;
        }

        if (rc != VMESS_OK) {
            level = (rc == VMESS_ERR_CRYPTO) ? NGX_LOG_ALERT : NGX_LOG_INFO;

            ngx_log_error(level, c->log, 0, "vmess: bad request chunk: %s",
                          vmess_strerror(rc));
            return NGX_ERROR;
        }

        if (produced == 0 || own->mux) {
            continue;
        }

        /* the UDP command: one chunk, one datagram */

        sub = ngx_queue_data(ngx_queue_head(&own->subs),
                             ngx_stream_vmess_sub_t, queue);

        n = sub->peer.connection->send(sub->peer.connection, p->pos,
                                       produced);

        ngx_log_debug2(NGX_LOG_DEBUG_STREAM, c->log, 0,
                       "vmess udp: %uz bytes to upstream: %z", produced, n);

        if (n == NGX_ERROR) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "vmess: udp send to %V failed", &sub->name);
            return NGX_ERROR;
        }

        p->last = p->start;
    }
}


/* Mux.Cool: frames from the plaintext; the data goes to its sub-session */

static ngx_int_t
ngx_stream_vmess_own_mux(ngx_stream_vmess_own_t *own)
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
                    ngx_stream_vmess_sub_fail(sub, 1);
                    continue;
                }

                room = sub->out->end - sub->out->last;

                if (room == 0) {
                    ngx_log_debug1(NGX_LOG_DEBUG_STREAM, c->log, 0,
                                   "vmess mux: paused on session %ui",
                                   sub->id);
                    own->paused = sub;
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
            r = ngx_stream_vmess_own_frame(own);
            if (r != NGX_OK) {
                return r;
            }
            break;

        case VMESS_MUX_DATA:
            r = ngx_stream_vmess_own_data(own, data, dlen, last);
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


static ngx_int_t
ngx_stream_vmess_own_frame(ngx_stream_vmess_own_t *own)
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

    sub = ngx_stream_vmess_sub_find(own, f->session_id);

    switch (f->status) {

    case VMESS_MUX_NEW:

        if (sub) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "vmess: mux session %ui opened twice, "
                          "ending it", (ngx_uint_t) f->session_id);
            ngx_stream_vmess_sub_fail(sub, 1);
            return NGX_OK;
        }

        if (own->nsubs >= own->conf->mux_sessions) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "vmess: mux session limit %ui reached, "
                          "session %ui refused", own->conf->mux_sessions,
                          (ngx_uint_t) f->session_id);
            return ngx_stream_vmess_own_end_frame(own, f->session_id, 1);
        }

        sub = ngx_stream_vmess_sub_create(own, f->session_id,
                                          f->network == VMESS_MUX_NET_UDP);
        if (sub == NULL) {
            return NGX_ERROR;
        }

        own->opened++;
        own->cur = sub;

        return ngx_stream_vmess_sub_target(sub, f);

    case VMESS_MUX_KEEP:

        if (sub == NULL) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "vmess: mux session %ui unknown, ending it",
                          (ngx_uint_t) f->session_id);
            return ngx_stream_vmess_own_end_frame(own, f->session_id, 0);
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
ngx_stream_vmess_own_data(ngx_stream_vmess_own_t *own, const u_char *data,
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

    b = sub->out;

    if (!sub->udp) {
        /* the room was checked before the read */
        b->last = ngx_cpymem(b->last, data, len);

        if (sub->connected && ngx_stream_vmess_sub_flush(sub) == NGX_ERROR) {
            ngx_stream_vmess_sub_fail(sub, 1);
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

    } else if (uc && sub->connected) {
        n = uc->send(uc, b->pos, b->last - b->pos);

        if (n == NGX_ERROR) {
            ngx_stream_vmess_sub_fail(sub, 1);
            return NGX_OK;
        }

        ngx_add_timer(uc->read, own->conf->udp_timeout);
    }

    /* a datagram sent while resolving is lost, as with any UDP */

    sub->drop = 0;
    b->pos = b->start;
    b->last = b->start;

    return NGX_OK;
}


static ngx_stream_vmess_sub_t *
ngx_stream_vmess_sub_find(ngx_stream_vmess_own_t *own, ngx_uint_t id)
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


static ngx_stream_vmess_sub_t *
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


/* a New frame's target: a literal, else resolved; then the policy */

static ngx_int_t
ngx_stream_vmess_sub_target(ngx_stream_vmess_sub_t *sub, vmess_mux_frame_t *f)
{
    u_char                       *p, host[256];
    size_t                        len;
    ngx_addr_t                    addr;
    ngx_connection_t             *c;
    ngx_resolver_ctx_t           *rctx, temp;
    ngx_stream_session_t         *s;
    ngx_stream_core_srv_conf_t   *cscf;

    s = sub->own->session;
    c = s->connection;

    if (vmess_addr_format_host(f->addr_type, f->addr, f->addr_len,
                               (char *) host, sizeof(host), &len)
        != VMESS_OK)
    {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "vmess: mux session %ui: bad address", sub->id);
        ngx_stream_vmess_sub_fail(sub, 1);
        return NGX_OK;
    }

    sub->port = f->port;

    sub->host.data = ngx_pnalloc(sub->pool, len);
    if (sub->host.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(sub->host.data, host, len);
    sub->host.len = len;

    if (ngx_parse_addr(sub->pool, &addr, host, len) == NGX_OK) {
        ngx_memcpy(&sub->sockaddr, addr.sockaddr, addr.socklen);
        sub->socklen = addr.socklen;

        if (ngx_stream_vmess_sub_connect(sub) != NGX_OK) {
            ngx_stream_vmess_sub_fail(sub, 1);
        }

        return NGX_OK;
    }

    cscf = ngx_stream_get_module_srv_conf(s, ngx_stream_core_module);

    temp.name = sub->host;

    rctx = ngx_resolve_start(cscf->resolver, &temp);
    if (rctx == NULL) {
        return NGX_ERROR;
    }

    if (rctx == NGX_NO_RESOLVER) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "vmess: no resolver defined to resolve %V",
                      &sub->host);
        ngx_stream_vmess_sub_fail(sub, 1);
        return NGX_OK;
    }

    p = ngx_pnalloc(sub->pool, len);
    if (p == NULL) {
        ngx_resolve_name_done(rctx);
        return NGX_ERROR;
    }

    rctx->name.data = ngx_cpymem(p, host, len) - len;
    rctx->name.len = len;
    rctx->handler = ngx_stream_vmess_sub_resolved;
    rctx->data = sub;
    rctx->timeout = cscf->resolver_timeout;

    sub->rctx = rctx;

    if (ngx_resolve_name(rctx) != NGX_OK) {
        sub->rctx = NULL;
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_stream_vmess_sub_resolved(ngx_resolver_ctx_t *rctx)
{
    ngx_uint_t               i, pick, failed;
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
        pick = 0;

        if (!sub->own->conf->allow_private) {
            for (i = 0; i < rctx->naddrs; i++) {
                if (!ngx_stream_vmess_private_addr(rctx->addrs[i].sockaddr)) {
                    pick = i;
                    break;
                }
            }
        }

        ngx_memcpy(&sub->sockaddr, rctx->addrs[pick].sockaddr,
                   rctx->addrs[pick].socklen);
        sub->socklen = rctx->addrs[pick].socklen;
    }

    ngx_resolve_name_done(rctx);
    sub->rctx = NULL;

    if (failed || ngx_stream_vmess_sub_connect(sub) != NGX_OK) {
        ngx_stream_vmess_sub_fail(sub, 1);
    }
}


static ngx_int_t
ngx_stream_vmess_sub_connect(ngx_stream_vmess_sub_t *sub)
{
    u_char                  *p;
    ngx_int_t                rc;
    ngx_connection_t        *c, *uc;
    ngx_peer_connection_t   *pc;
    ngx_stream_vmess_own_t  *own;

    own = sub->own;
    c = own->session->connection;

    if (sub->port) {
        ngx_inet_set_port(&sub->sockaddr.sockaddr, sub->port);
    }

    if (sub->name.len == 0) {
        p = ngx_pnalloc(sub->pool, NGX_STREAM_VMESS_ADDR_STRLEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        sub->name.len = ngx_sock_ntop(&sub->sockaddr.sockaddr, sub->socklen,
                                      p, NGX_STREAM_VMESS_ADDR_STRLEN, 1);
        sub->name.data = p;
    }

    if (!own->conf->allow_private
        && ngx_stream_vmess_private_addr(&sub->sockaddr.sockaddr))
    {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "vmess: destination %V denied", &sub->name);
        return NGX_DECLINED;
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
    u_char                  *data, *p;
    size_t                   size, hlen;
    ssize_t                  n;
    ngx_connection_t        *uc;
    vmess_mux_frame_t        f;
    ngx_stream_vmess_own_t  *own;
    ngx_stream_vmess_sub_t  *sub;
    u_char                   hdr[VMESS_MUX_HEADER_MAX];

    uc = ev->data;
    sub = uc->data;
    own = sub->own;

    if (ev->timedout) {
        ngx_log_debug1(NGX_LOG_DEBUG_STREAM, uc->log, 0,
                       "vmess own: session %ui idle timeout", sub->id);

        if (!own->mux) {
            ngx_log_error(NGX_LOG_INFO, uc->log, NGX_ETIMEDOUT,
                          "vmess: udp session idle timeout");
            ngx_stream_vmess_own_finalize(own, NGX_STREAM_OK);
            return;
        }

        ngx_stream_vmess_sub_fail(sub, 0);
        return;
    }

    data = own->rbuf + NGX_STREAM_VMESS_HEADROOM;
    size = (sub->udp || !own->mux) ? NGX_STREAM_VMESS_RECV_SIZE
                                   : NGX_STREAM_VMESS_TCP_READ;

    while (ev->ready && !own->blocked && !own->finishing) {

        if (own->free == NULL && own->nbufs >= NGX_STREAM_VMESS_OWN_NBUFS) {
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
            if (!own->mux) {
                ngx_stream_vmess_own_finalize(own, NGX_STREAM_OK);
                return;
            }

            ngx_stream_vmess_sub_fail(sub, n == NGX_ERROR);
            return;
        }

        if (sub->udp && n > VMESS_UDP_PAYLOAD_MAX) {
            /* a v2ray reader would split it into two datagrams */
            own->dropped++;
            continue;
        }

        p = data;

        if (own->mux) {
            ngx_memzero(&f, sizeof(vmess_mux_frame_t));
            f.session_id = (uint16_t) sub->id;
            f.status = VMESS_MUX_KEEP;
            f.option = VMESS_MUX_OPT_DATA;
            f.data_len = (uint16_t) n;

            if (vmess_mux_write_header(&f, hdr, sizeof(hdr), &hlen)
                != VMESS_OK || hlen > NGX_STREAM_VMESS_HEADROOM)
            {
                ngx_log_error(NGX_LOG_ALERT, uc->log, 0,
                              "vmess_mux_write_header() failed");
                ngx_stream_vmess_own_finalize(own,
                                            NGX_STREAM_INTERNAL_SERVER_ERROR);
                return;
            }

            p = data - hlen;
            ngx_memcpy(p, hdr, hlen);
            n += hlen;
        }

        if (ngx_stream_vmess_own_send(own, p, n, 0) == NGX_ERROR) {
            ngx_stream_vmess_own_finalize(own, NGX_STREAM_OK);
            return;
        }
    }

    if (ngx_handle_read_event(uc->read, 0) != NGX_OK) {
        ngx_stream_vmess_sub_fail(sub, 1);
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
        ngx_stream_vmess_sub_fail(sub, 1);
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
        ngx_stream_vmess_sub_fail(sub, 1);
    }
}


/* TCP sub-session: write the buffered bytes; NGX_ERROR closes it */

static ngx_int_t
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
        own->paused = NULL;
        ngx_post_event(own->session->connection->read, &ngx_posted_events);
    }

    return NGX_OK;
}


/* the sub-session ends: End frame to the client, close the upstream */

static void
ngx_stream_vmess_sub_fail(ngx_stream_vmess_sub_t *sub, ngx_uint_t error)
{
    ngx_stream_vmess_own_t  *own;

    own = sub->own;

    if (own->mux && !sub->end) {
        if (ngx_stream_vmess_own_end_frame(own, sub->id, error) != NGX_OK) {
            /* the write handler closes the connection */
            own->error = 1;
            ngx_post_event(own->session->connection->write,
                           &ngx_posted_events);
        }
    }

    if (!own->mux) {
        ngx_stream_vmess_own_finalize(own, NGX_STREAM_BAD_GATEWAY);
        return;
    }

    ngx_stream_vmess_sub_close(sub);
}


static void
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

static ngx_int_t
ngx_stream_vmess_own_send(ngx_stream_vmess_own_t *own, u_char *data,
    size_t len, ngx_uint_t end)
{
    int                      rc;
    size_t                   written;
    ngx_buf_t               *b;
    ngx_uint_t               level;
    ngx_chain_t             *cl;
    ngx_connection_t        *c;
    ngx_stream_vmess_ctx_t  *ctx;

    c = own->session->connection;
    ctx = own->ctx;

    if (own->finishing) {
        return NGX_OK;
    }

    if (own->free) {
        cl = own->free;
        own->free = cl->next;

    } else {
        cl = ngx_alloc_chain_link(c->pool);
        if (cl == NULL) {
            return NGX_ERROR;
        }

        cl->buf = ngx_create_temp_buf(c->pool, NGX_STREAM_VMESS_OWN_OUT_SIZE);
        if (cl->buf == NULL) {
            return NGX_ERROR;
        }

        own->nbufs++;
    }

    cl->next = NULL;

    b = cl->buf;
    b->pos = b->start;
    b->last = b->start;
    b->temporary = 1;
    b->flush = 1;
    b->last_buf = 0;
    b->tag = (ngx_buf_tag_t) &ngx_stream_vmess_module;

    if (!ctx->header_sent) {
        rc = vmess_response_header_seal(&ctx->enc, ctx->response_v, NULL,
                                        b->last, b->end - b->last, &written);
        if (rc != VMESS_OK) {
            ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                          "vmess_response_header_seal() failed: %s",
                          vmess_strerror(rc));
            return NGX_ERROR;
        }

        b->last += written;
        ctx->header_sent = 1;
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


static ngx_int_t
ngx_stream_vmess_own_end_frame(ngx_stream_vmess_own_t *own, ngx_uint_t id,
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
 * Passes cl (may be NULL) to the client.  own->busy lists, in order, the
 * buffers the write filter still holds; sent ones go back to own->free.
 */

static ngx_int_t
ngx_stream_vmess_own_flush(ngx_stream_vmess_own_t *own, ngx_chain_t *cl)
{
    ngx_int_t              rc;
    ngx_chain_t          **ll, *ln;
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

    if (cl) {
        for (ll = &own->busy; *ll; ll = &(*ll)->next) { /* void */ }
        *ll = cl;
    }

    while (own->busy && ngx_buf_size(own->busy->buf) == 0) {
        ln = own->busy;
        own->busy = ln->next;
        ln->next = own->free;
        own->free = ln;
    }

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

    } else if (own->blocked && own->free) {
        ngx_stream_vmess_own_resume(own);
    }

    return NGX_OK;
}


static void
ngx_stream_vmess_own_write(ngx_event_t *wev)
{
    ngx_connection_t        *c;
    ngx_stream_session_t    *s;
    ngx_stream_vmess_ctx_t  *ctx;
    ngx_stream_vmess_own_t  *own;

    c = wev->data;
    s = c->data;
    ctx = ngx_stream_get_module_ctx(s, ngx_stream_vmess_module);
    own = ctx->own;

    if (wev->timedout) {
        ngx_log_error(NGX_LOG_INFO, c->log, NGX_ETIMEDOUT,
                      "vmess: client timed out");
        ngx_stream_vmess_own_finalize(own, NGX_STREAM_OK);
        return;
    }

    if (own->error
        || ngx_stream_vmess_own_flush(own, NULL) == NGX_ERROR
        || (own->finishing && !c->buffered))
    {
        ngx_stream_vmess_own_finalize(own, NGX_STREAM_OK);
        return;
    }
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


static void
ngx_stream_vmess_own_finalize(ngx_stream_vmess_own_t *own, ngx_uint_t rc)
{
    ngx_stream_vmess_own_cleanup(own);

    ngx_stream_finalize_session(own->session, rc);
}


/* closes every sub-session; runs again harmlessly from the pool cleanup */

static void
ngx_stream_vmess_own_cleanup(void *data)
{
    ngx_stream_vmess_own_t  *own = data;

    ngx_queue_t             *q;
    ngx_stream_vmess_sub_t  *sub;

    if (own->dropped) {
        ngx_log_error(NGX_LOG_INFO, own->session->connection->log, 0,
                      "vmess: %ui udp datagrams over %d bytes dropped",
                      own->dropped, VMESS_UDP_PAYLOAD_MAX);
        own->dropped = 0;
    }

    while (!ngx_queue_empty(&own->subs)) {
        q = ngx_queue_head(&own->subs);
        sub = ngx_queue_data(q, ngx_stream_vmess_sub_t, queue);
        ngx_stream_vmess_sub_close(sub);
    }
}
