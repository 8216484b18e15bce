/*
 * ngx_stream_vmess_module: the inbound stream filter.
 *
 * from_upstream == 0: VMess chunks from the client are opened into
 * plaintext for the upstream; the end chunk half-closes the upstream.
 * from_upstream == 1: the response header, then upstream bytes sealed into
 * chunks of up to 16 KiB; last_buf adds the end chunk.
 *
 * Both directions work in place where they can: a request chunk is opened
 * where it lies in the proxy's buffer and passed on as a buf pointing at
 * its plaintext, a response chunk is sealed where it lies and sent as
 * three bufs (head, data, tail).  The input stays unconsumed for the
 * proxy until what was made of it is written; that is the backpressure
 * (NGINX-STREAM-NOTES.md §2.4).  WebSocket responses are sealed into bufs
 * of ours instead, which leave room for the frame header.
 */

#include "ngx_stream_vmess_module.h"


/* WebSocket: buffers of sealed chunks, framed where they are */
#define NGX_STREAM_VMESS_NBUFS          2
#define NGX_STREAM_VMESS_ENC_SIZE       (NGX_STREAM_VMESS_SEAL_MAX + 512)

/* in place: a response header (38 bytes, 69 with a dynamic port command)
 * and a chunk's head (18), a tail, or an end chunk; at most FRAMES / 3
 * chunks on their way */
#define NGX_STREAM_VMESS_FRAME_SIZE     VMESS_CHUNK_OVERHEAD_MAX
#define NGX_STREAM_VMESS_FRAMES         48


static ngx_int_t ngx_stream_vmess_filter(ngx_stream_session_t *s,
    ngx_chain_t *in, ngx_uint_t from_upstream);
static void ngx_stream_vmess_proxy_protocol(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_chain_t *in);
static ngx_int_t ngx_stream_vmess_pass(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_dir_t *d,
    ngx_connection_t *dst, ngx_uint_t from_upstream);
static void ngx_stream_vmess_half_close(ngx_stream_session_t *s,
    ngx_stream_vmess_dir_t *d, ngx_connection_t *dst);
static ngx_int_t ngx_stream_vmess_decode(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_dir_t *d,
    ngx_chain_t ***ll);
static ngx_int_t ngx_stream_vmess_open_chunk(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_dir_t *d, u_char **plain,
    size_t *produced);
static ngx_int_t ngx_stream_vmess_seal(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_dir_t *d,
    ngx_chain_t ***ll);
static ngx_int_t ngx_stream_vmess_seal_end(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_dir_t *d,
    ngx_chain_t *head, ngx_chain_t *body, ngx_chain_t *tail,
    ngx_chain_t ***ll);
static ngx_int_t ngx_stream_vmess_seal_ws(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_dir_t *d,
    ngx_chain_t ***ll);
static void ngx_stream_vmess_put_bufs(ngx_stream_vmess_dir_t *d,
    ngx_chain_t *head, ngx_chain_t *body, ngx_chain_t *tail);
static void ngx_stream_vmess_hold(ngx_stream_vmess_dir_t *d, size_t n);
static void ngx_stream_vmess_release(ngx_stream_session_t *s,
    ngx_stream_vmess_dir_t *d);
static void ngx_stream_vmess_free_preread(ngx_stream_session_t *s,
    ngx_stream_vmess_dir_t *d);
static ngx_chain_t *ngx_stream_vmess_shadow(ngx_stream_session_t *s,
    ngx_stream_vmess_dir_t *d, u_char *pos, u_char *last);


static ngx_stream_filter_pt  ngx_stream_next_filter;


static ngx_int_t
ngx_stream_vmess_filter(ngx_stream_session_t *s, ngx_chain_t *in,
    ngx_uint_t from_upstream)
{
    ngx_int_t                rc;
    ngx_chain_t             *cl;
    ngx_connection_t        *c, *dst;
    ngx_stream_vmess_ctx_t  *ctx;
    ngx_stream_vmess_dir_t  *d;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_vmess_module);

    if (ctx == NULL || ctx->state != NGX_STREAM_VMESS_ACTIVE) {
        return ngx_stream_next_filter(s, in, from_upstream);
    }

    c = s->connection;
    d = &ctx->dir[from_upstream ? 1 : 0];

    if (from_upstream) {
        dst = c;

    } else {
        dst = s->upstream ? s->upstream->peer.connection : NULL;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "vmess filter u:%ui in:%p", from_upstream, in);

    if (!d->started) {
        d->started = 1;

        if (!from_upstream) {
            ngx_stream_vmess_proxy_protocol(s, ctx, in);
        }
    }

    if (from_upstream && ctx->stat) {
        /* the upstream's bytes are the payload each is sealed from */
        for (cl = in; cl; cl = cl->next) {
            ngx_stream_vmess_stats_add(ctx->stat, NGX_STREAM_VMESS_DOWN,
                                       cl->buf->last - cl->buf->pos);
        }
    }

    if (ctx->ws && !from_upstream) {
        for (cl = in; cl; cl = cl->next) {
            if (ngx_stream_vmess_ws_input(s, ctx, cl->buf) != NGX_OK) {
                return NGX_ERROR;
            }
        }
    }

    if (ngx_stream_vmess_add_input(s, d, in) != NGX_OK) {
        return NGX_ERROR;
    }

    /* in place (all but WebSocket responses): read from d->pos on */

    if ((!from_upstream || ctx->ws == NULL) && d->pos == NULL && d->in) {
        d->pos = d->in->buf->pos;
    }

    rc = ngx_stream_vmess_pass(s, ctx, d, dst, from_upstream);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (!from_upstream) {
        ngx_stream_vmess_half_close(s, d, dst);
    }

    if (dst) {
        if (d->in || (d->last && !d->last_sent)
            || (!from_upstream && d->eof && !d->shut)
            || (from_upstream && ctx->ws && ctx->ws->close_sent
                && !ctx->ws->frames.closed && !c->read->eof))
        {
            dst->buffered |= NGX_STREAM_VMESS_BUFFERED;

        } else {
            dst->buffered &= ~NGX_STREAM_VMESS_BUFFERED;
        }
    }

    /* a pong or close for the client */

    if (!from_upstream && ctx->ws && ctx->ws->frames.reply_opcode) {
        return ngx_stream_vmess_filter(s, NULL, 1);
    }

    return rc;
}


/*
 * "proxy_protocol on": the PROXY header comes first, in a buffer of its
 * own, before the preread remainder; it passes through untouched.
 */

static void
ngx_stream_vmess_proxy_protocol(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_chain_t *in)
{
    u_char            *p;
    size_t             size;
    ngx_chain_t       *cl;
    ngx_connection_t  *c;

    c = s->connection;

    for (cl = in; cl; cl = cl->next) {
        size = ngx_buf_size(cl->buf);

        if (size == 0) {
            continue;
        }

        p = cl->buf->pos;

        if (size >= 8
            && ngx_buf_in_memory(cl->buf)
            && (c->buffer == NULL || p < c->buffer->start
                || p >= c->buffer->end)
            && ngx_strncmp(p, "PROXY ", 6) == 0
            && p[size - 2] == CR && p[size - 1] == LF)
        {
            ctx->proxy_protocol = 1;
        }

        break;
    }
}


/* code and pass on until the coder waits for more input */

static ngx_int_t
ngx_stream_vmess_pass(ngx_stream_session_t *s, ngx_stream_vmess_ctx_t *ctx,
    ngx_stream_vmess_dir_t *d, ngx_connection_t *dst,
    ngx_uint_t from_upstream)
{
    ngx_int_t          rc, coded;
    ngx_chain_t       *out, **ll;
    ngx_connection_t  *c;

    c = s->connection;

    for ( ;; ) {

        out = NULL;
        ll = &out;

        if (from_upstream) {
            coded = ctx->ws ? ngx_stream_vmess_seal_ws(s, ctx, d, &ll)
                            : ngx_stream_vmess_seal(s, ctx, d, &ll);

        } else {
            coded = ngx_stream_vmess_decode(s, ctx, d, &ll);
        }

        if (coded == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (out == NULL
            && (dst == NULL
                || !(dst->buffered & ~NGX_STREAM_VMESS_BUFFERED)))
        {
            /* the write filter alerts on an empty chain with nothing saved */
            rc = NGX_OK;

        } else {
            rc = ngx_stream_next_filter(s, out, from_upstream);

            ngx_chain_update_chains(c->pool, &d->free, &d->busy, &out,
                                    NGX_STREAM_VMESS_TAG);

            if (rc == NGX_ERROR) {
                return NGX_ERROR;
            }
        }

        if (d->busy == NULL) {
            ngx_stream_vmess_release(s, d);

            if (!from_upstream && c->buffer) {
                ngx_stream_vmess_free_preread(s, d);
            }
        }

        /* NGX_AGAIN: the coder waited for its own output to be written */

        if (coded != NGX_AGAIN || d->busy) {
            return rc;
        }
    }
}


/* the VMess end chunk: half-close the upstream once it is flushed */

static void
ngx_stream_vmess_half_close(ngx_stream_session_t *s,
    ngx_stream_vmess_dir_t *d, ngx_connection_t *dst)
{
    if (!d->eof || d->shut || dst == NULL || d->busy
        || (dst->buffered & ~NGX_STREAM_VMESS_BUFFERED))
    {
        return;
    }

    d->shut = 1;

    ngx_log_debug0(NGX_LOG_DEBUG_STREAM, s->connection->log, 0,
                   "vmess end chunk: upstream socket shutdown");

    if (ngx_shutdown_socket(dst->fd, NGX_WRITE_SHUTDOWN) == -1) {
        ngx_connection_error(dst, ngx_socket_errno,
                             ngx_shutdown_socket_n " failed");
    }
}


/*
 * client -> upstream: chunks are opened where they lie, in the proxy's
 * buffer, and passed on as bufs pointing at their plaintext; the input
 * stays unconsumed for the proxy until those are written.
 */

static ngx_int_t
ngx_stream_vmess_decode(ngx_stream_session_t *s, ngx_stream_vmess_ctx_t *ctx,
    ngx_stream_vmess_dir_t *d, ngx_chain_t ***ll)
{
    size_t        produced;
    u_char       *plain;
    ngx_int_t     rc;
    ngx_chain_t  *cl;

    while (d->in || (d->last && !d->last_sent)) {

        if (d->eof) {
            /* after the end chunk: nothing more goes to the upstream */

            while (d->in) {
                ngx_stream_vmess_hold(d, d->in->buf->last - d->pos);
            }

            d->last_sent = 1;
            break;
        }

        if (d->in == NULL) {
            /* the client closed without an end chunk */

            cl = ngx_stream_vmess_shadow(s, d, NULL, 0);
            if (cl == NULL) {
                return NGX_ERROR;
            }

            cl->buf->last_buf = 1;
            d->last_sent = 1;

            **ll = cl;
            *ll = &cl->next;
            break;
        }

        if (ctx->proxy_protocol) {
            /* the PROXY header goes to the upstream as it is */

            ctx->proxy_protocol = 0;

            cl = ngx_stream_vmess_shadow(s, d, d->pos, d->in->buf->last);
            if (cl == NULL) {
                return NGX_ERROR;
            }

            ngx_stream_vmess_hold(d, d->in->buf->last - d->pos);

            **ll = cl;
            *ll = &cl->next;
            continue;
        }

        rc = ngx_stream_vmess_open_chunk(s, ctx, d, &plain, &produced);

        if (rc == NGX_DECLINED) {
            /* all of this input is read: the next, or more to come */
            continue;
        }

        if (rc == NGX_DONE) {
            return NGX_OK;
        }

        if (rc != NGX_OK) {
            return rc;
        }

        if (ctx->stat) {
            ngx_stream_vmess_stats_add(ctx->stat, NGX_STREAM_VMESS_UP,
                                       produced);
        }

        cl = ngx_stream_vmess_shadow(s, d, plain, plain + produced);
        if (cl == NULL) {
            return NGX_ERROR;
        }

        if (d->eof) {
            cl->buf->last_buf = 1;  /* for a layer below (proxy) */
        }

        **ll = cl;
        *ll = &cl->next;
    }

    return NGX_OK;
}


/*
 * One chunk from d->pos on, opened in place.  A chunk that cannot
 * complete there (the proxy's buffer ends first, or it began in the
 * preread buffer) is gathered in the staging buffer.  NGX_OK: *plain
 * holds *produced bytes; NGX_DECLINED: the input is used up; NGX_DONE:
 * the rest comes behind it in the proxy's buffer; NGX_AGAIN: staging is
 * still queued for writing.
 */

static ngx_int_t
ngx_stream_vmess_open_chunk(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_dir_t *d, u_char **plain,
    size_t *produced)
{
    int           rc;
    size_t        consumed;
    u_char       *end;
    ngx_buf_t    *rb;
    ngx_uint_t    stage, exhausted;
    ngx_chain_t  *ln;

    /* the input that is contiguous in memory from d->pos on */

    end = d->in->buf->last;

    for (ln = d->in->next; ln && ln->buf->pos == end; ln = ln->next) {
        end = ln->buf->last;
    }

    stage = 0;

    for ( ;; ) {
        rc = vmess_body_open_inplace(&ctx->dec, d->pos, end - d->pos, stage,
                                     &consumed, plain, produced);

        exhausted = (consumed == (size_t) (end - d->pos));

        ngx_stream_vmess_hold(d, consumed);

        if (rc == VMESS_NEED_STAGING) {
            if (ngx_stream_vmess_staging(s->connection->pool, &ctx->dec,
                                         &ctx->staging)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            continue;
        }

        if (rc != VMESS_AGAIN || stage || exhausted) {
            break;
        }

        /*
         * The chunk's data has begun but is not all here: it completes in
         * place if the proxy's next read lands right behind it and its
         * buffer has room for the rest.
         */

        rb = s->upstream ? &s->upstream->downstream_buf : NULL;

        if (!d->last && rb && rb->start && end == rb->last
            && d->pos >= rb->start
            && d->pos + vmess_body_pending(&ctx->dec) <= rb->end)
        {
            return NGX_DONE;
        }

        if (d->staging_busy) {
            /* the plaintext of the last staged chunk is still queued */
            return NGX_AGAIN;
        }

        stage = 1;
    }

    if (rc == VMESS_AGAIN) {
        return NGX_DECLINED;
    }

    if (rc != VMESS_OK) {
        return ngx_stream_vmess_chunk_error(s, rc, "request");
    }

    ngx_stream_vmess_check_wrap(s, ctx, &ctx->dec);

    if (ctx->staging && *plain >= ctx->staging
        && *plain < ctx->staging + VMESS_STAGING_SIZE)
    {
        d->staging_busy = 1;
    }

    if (ctx->dec.eof) {
        ngx_log_debug0(NGX_LOG_DEBUG_STREAM, s->connection->log, 0,
                       "vmess request end chunk");
        d->eof = 1;
    }

    return NGX_OK;
}


/*
 * upstream -> client: the response header, then each chunk sealed where
 * it lies in the proxy's buffer and sent as three bufs: head, data, tail.
 */

static ngx_int_t
ngx_stream_vmess_seal(ngx_stream_session_t *s, ngx_stream_vmess_ctx_t *ctx,
    ngx_stream_vmess_dir_t *d, ngx_chain_t ***ll)
{
    int                rc;
    size_t             len, head_len, tail_len;
    u_char            *data;
    ngx_buf_t         *hb, *tb, *ib;
    ngx_chain_t       *head, *body, *tail;
    ngx_connection_t  *c;

    c = s->connection;

    while (d->in || (d->last && !d->last_sent)) {

        head = ngx_stream_vmess_get_buf(s, d, NGX_STREAM_VMESS_FRAME_SIZE,
                                        NGX_STREAM_VMESS_FRAMES,
                                        NGX_STREAM_VMESS_TAG);
        body = ngx_stream_vmess_get_buf(s, d, 0, NGX_STREAM_VMESS_FRAMES,
                                        NGX_STREAM_VMESS_TAG);
        tail = ngx_stream_vmess_get_buf(s, d, NGX_STREAM_VMESS_FRAME_SIZE,
                                        NGX_STREAM_VMESS_FRAMES,
                                        NGX_STREAM_VMESS_TAG);

        if (head == NGX_CHAIN_ERROR || body == NGX_CHAIN_ERROR
            || tail == NGX_CHAIN_ERROR)
        {
            return NGX_ERROR;
        }

        if (head == NULL || body == NULL || tail == NULL) {
            /* as many chunks as we allow are on their way */
            ngx_stream_vmess_put_bufs(d, head, body, tail);
            return NGX_AGAIN;
        }

        hb = head->buf;

        if (ngx_stream_vmess_response_header(s, ctx, hb) != NGX_OK) {
            return NGX_ERROR;
        }

        if (d->in == NULL) {
            return ngx_stream_vmess_seal_end(s, ctx, d, head, body, tail, ll);
        }

        tb = tail->buf;
        ib = d->in->buf;
        len = ngx_min((size_t) (ib->last - d->pos),
                      NGX_STREAM_VMESS_SEAL_MAX);
        data = d->pos;

        if (!ib->temporary) {
            /* memory we may not write to: sealed in a copy */

            if (d->staging_busy) {
                ngx_stream_vmess_put_bufs(d, head, body, tail);
                return NGX_AGAIN;
            }

            if (ctx->scratch == NULL) {
                ctx->scratch = ngx_palloc(c->pool, NGX_STREAM_VMESS_SEAL_MAX);
                if (ctx->scratch == NULL) {
                    return NGX_ERROR;
                }
            }

            data = ngx_cpymem(ctx->scratch, d->pos, len) - len;
            d->staging_busy = 1;
        }

        rc = vmess_body_seal_inplace(&ctx->enc, data, len, ctx->pad,
                                     hb->last, &head_len, tb->last,
                                     &tail_len);
        if (rc != VMESS_OK) {
            return ngx_stream_vmess_chunk_error(s, rc, "response");
        }

        ngx_stream_vmess_check_wrap(s, ctx, &ctx->enc);
        ngx_stream_vmess_hold(d, len);

        hb->last += head_len;
        tb->last += tail_len;

        body->buf->pos = data;
        body->buf->last = data + len;

        head->next = body;
        body->next = tail;

        if (hb->pos == hb->last) {
            /* raw mode: no head or tail */
            ngx_stream_vmess_put_bufs(d, head, NULL, tail);
            body->next = NULL;
            head = body;
            tail = body;

        } else if (tb->pos == tb->last) {
            ngx_stream_vmess_put_buf(d, tail);
            body->next = NULL;
            tail = body;
        }

        **ll = head;
        *ll = &tail->next;
    }

    return NGX_OK;
}


/*
 * The end chunk goes in the tail: the head may hold the response header.
 */

static ngx_int_t
ngx_stream_vmess_seal_end(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_dir_t *d,
    ngx_chain_t *head, ngx_chain_t *body, ngx_chain_t *tail,
    ngx_chain_t ***ll)
{
    int         rc;
    size_t      written;
    ngx_buf_t  *hb, *tb;

    hb = head->buf;
    tb = tail->buf;

    ngx_stream_vmess_put_buf(d, body);

    rc = vmess_body_seal_end(&ctx->enc, ctx->pad, tb->last,
                             tb->end - tb->last, &written);
    if (rc != VMESS_OK) {
        return ngx_stream_vmess_chunk_error(s, rc, "response");
    }

    tb->last += written;
    tb->last_buf = 1;
    d->last_sent = 1;

    if (tb->pos == tb->last) {
        /* raw mode: an empty last_buf is no in-memory data */
        tb->temporary = 0;
    }

    if (hb->pos == hb->last) {
        ngx_stream_vmess_put_buf(d, head);
        head = tail;

    } else {
        head->next = tail;
    }

    **ll = head;
    *ll = &tail->next;

    return NGX_OK;
}


/*
 * upstream -> client over WebSocket: the response header, then chunks
 * sealed into our buffers, each wrapped in a frame.
 */

static ngx_int_t
ngx_stream_vmess_seal_ws(ngx_stream_session_t *s, ngx_stream_vmess_ctx_t *ctx,
    ngx_stream_vmess_dir_t *d, ngx_chain_t ***ll)
{
    int           rc;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    while (d->in || (d->last && !d->last_sent)
           || ctx->ws->frames.reply_opcode)
    {

        cl = ngx_stream_vmess_get_buf(s, d, NGX_STREAM_VMESS_WS_HEADROOM
                                            + NGX_STREAM_VMESS_ENC_SIZE
                                            + NGX_STREAM_VMESS_WS_TAILROOM,
                                      NGX_STREAM_VMESS_NBUFS,
                                      NGX_STREAM_VMESS_TAG);

        if (cl == NGX_CHAIN_ERROR) {
            return NGX_ERROR;
        }

        if (cl == NULL) {
            return NGX_AGAIN;
        }

        b = cl->buf;

        /* room for the frame header in front and a close frame behind */
        b->pos += NGX_STREAM_VMESS_WS_HEADROOM;
        b->last = b->pos;
        b->end = b->start + NGX_STREAM_VMESS_WS_HEADROOM
                 + NGX_STREAM_VMESS_ENC_SIZE;

        if (ngx_stream_vmess_response_header(s, ctx, b) != NGX_OK) {
            return NGX_ERROR;
        }

        rc = ngx_stream_vmess_seal_input(s, &ctx->enc, ctx->pad, d, b);

        ngx_stream_vmess_check_wrap(s, ctx, &ctx->enc);

        if (rc == VMESS_OK) {
            rc = ngx_stream_vmess_seal_last(&ctx->enc, ctx->pad, d, b);
        }

        if (rc != VMESS_OK) {
            return ngx_stream_vmess_chunk_error(s, rc, "response");
        }

        ngx_stream_vmess_ws_wrap(ctx, b);

        if (b->pos == b->last) {

            if (!b->last_buf) {
                ngx_stream_vmess_put_buf(d, cl);
                break;
            }

            b->temporary = 0;
        }

        **ll = cl;
        *ll = &cl->next;
    }

    return NGX_OK;
}


/* any of them may be NULL */

static void
ngx_stream_vmess_put_bufs(ngx_stream_vmess_dir_t *d, ngx_chain_t *head,
    ngx_chain_t *body, ngx_chain_t *tail)
{
    ngx_stream_vmess_put_buf(d, head);
    ngx_stream_vmess_put_buf(d, body);
    ngx_stream_vmess_put_buf(d, tail);
}


/*
 * n more bytes of the input are read: links to bufs read to their end move
 * to d->held, where they stay unconsumed until what was made of them is
 * written (ngx_stream_vmess_release)
 */

static void
ngx_stream_vmess_hold(ngx_stream_vmess_dir_t *d, size_t n)
{
    size_t        left;
    ngx_chain_t  *ln;

    while (d->in) {
        left = d->in->buf->last - d->pos;

        if (n < left) {
            d->pos += n;
            return;
        }

        n -= left;

        ln = d->in;
        d->in = ln->next;
        ln->next = d->held;
        d->held = ln;

        d->pos = d->in ? d->in->buf->pos : NULL;
    }
}


/* everything sent: the proxy may reuse the input read so far */

static void
ngx_stream_vmess_release(ngx_stream_session_t *s, ngx_stream_vmess_dir_t *d)
{
    ngx_chain_t  *ln;

    while (d->held) {
        ln = d->held;
        d->held = ln->next;

        ln->buf->pos = ln->buf->last;
        ngx_free_chain(s->connection->pool, ln);
    }

    if (d->in && d->pos) {
        d->in->buf->pos = d->pos;
    }

    d->staging_busy = 0;
}


/*
 * The preread buffer is read and its plaintext written: nobody reads it
 * again (the proxy hands it to an upstream once, after the connect), and
 * an idle session should not keep its 16 KiB.
 */

static void
ngx_stream_vmess_free_preread(ngx_stream_session_t *s,
    ngx_stream_vmess_dir_t *d)
{
    ngx_buf_t         *b;
    ngx_connection_t  *c;

    c = s->connection;
    b = c->buffer;

    if (d->in && d->pos >= b->start && d->pos < b->end) {
        return;
    }

    if (ngx_pfree(c->pool, b->start) == NGX_OK) {
        c->buffer = NULL;
    }
}


/* a buf of ours pointing at memory we do not own */

static ngx_chain_t *
ngx_stream_vmess_shadow(ngx_stream_session_t *s, ngx_stream_vmess_dir_t *d,
    u_char *pos, u_char *last)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    cl = ngx_chain_get_free_buf(s->connection->pool, &d->free);
    if (cl == NULL) {
        return NULL;
    }

    b = cl->buf;
    ngx_memzero(b, sizeof(ngx_buf_t));

    b->pos = pos;
    b->last = last;
    /* an empty last_buf must not look like in-memory data */
    b->temporary = (pos != last);
    b->flush = 1;
    b->tag = NGX_STREAM_VMESS_TAG;

    return cl;
}


ngx_int_t
ngx_stream_vmess_filter_init(ngx_conf_t *cf)
{
    ngx_stream_next_filter = ngx_stream_top_filter;
    ngx_stream_top_filter = ngx_stream_vmess_filter;

    return NGX_OK;
}
