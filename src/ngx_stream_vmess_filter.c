/*
 * ngx_stream_vmess_module: the stream filter.
 *
 * from_upstream == 0: VMess chunks from the client are opened into
 * plaintext for the upstream; the end chunk half-closes the upstream.
 * from_upstream == 1: the response header, then upstream bytes sealed into
 * chunks of up to 16 KiB; last_buf adds the end chunk.
 *
 * The proxy reuses its buffers as soon as they are consumed, so the filter
 * writes into its own buffers (a small free list per direction, allocated
 * once), keeps its own links to input it has not consumed yet, and applies
 * backpressure by not consuming input (NGINX-STREAM-NOTES.md §2.4).
 */

#include "ngx_stream_vmess_module.h"


/* the filter's own bufs, for ngx_chain_update_chains() */
#define NGX_STREAM_VMESS_TAG            (ngx_buf_tag_t) &ngx_stream_vmess_module

/* WebSocket: buffers of sealed chunks, framed where they are */
#define NGX_STREAM_VMESS_NBUFS          2
#define NGX_STREAM_VMESS_ENC_SIZE       (NGX_STREAM_VMESS_SEAL_MAX + 512)

/* in place: a response header (38 bytes, no command) and a chunk's head,
 * a tail, or an end chunk; at most FRAMES / 3 chunks on their way */
#define NGX_STREAM_VMESS_FRAME_SIZE     VMESS_CHUNK_OVERHEAD_MAX
#define NGX_STREAM_VMESS_FRAMES         48


static ngx_int_t ngx_stream_vmess_filter(ngx_stream_session_t *s,
    ngx_chain_t *in, ngx_uint_t from_upstream);
static ngx_int_t ngx_stream_vmess_decode(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_dir_t *d,
    ngx_chain_t ***ll);
static ngx_int_t ngx_stream_vmess_seal(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_dir_t *d,
    ngx_chain_t ***ll);
static ngx_int_t ngx_stream_vmess_seal_ws(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_dir_t *d,
    ngx_chain_t ***ll);
static ngx_int_t ngx_stream_vmess_response_header(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_buf_t *b);
static void ngx_stream_vmess_hold(ngx_stream_vmess_dir_t *d, size_t n);
static void ngx_stream_vmess_release(ngx_stream_session_t *s,
    ngx_stream_vmess_dir_t *d);
static void ngx_stream_vmess_free_preread(ngx_stream_session_t *s,
    ngx_stream_vmess_dir_t *d);
static ngx_chain_t *ngx_stream_vmess_shadow(ngx_stream_session_t *s,
    ngx_stream_vmess_dir_t *d, u_char *pos, u_char *last);
static void ngx_stream_vmess_put_buf(ngx_stream_vmess_dir_t *d,
    ngx_chain_t *cl);
static void ngx_stream_vmess_check_wrap(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, vmess_body_t *b);
static ngx_int_t ngx_stream_vmess_chunk_error(ngx_stream_session_t *s,
    int rc, const char *dir);


static ngx_stream_filter_pt  ngx_stream_next_filter;


static ngx_int_t
ngx_stream_vmess_filter(ngx_stream_session_t *s, ngx_chain_t *in,
    ngx_uint_t from_upstream)
{
    u_char                  *p;
    size_t                   size;
    ngx_int_t                rc, coded;
    ngx_chain_t             *cl, *ln, **ll, *out;
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

    /*
     * "proxy_protocol on": the PROXY header comes first, in a buffer of
     * its own, before the preread remainder; it passes through untouched.
     */

    if (!d->started) {
        d->started = 1;

        if (!from_upstream) {
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
    }

    /*
     * Remember the new input.  Zero-size bufs (flush/last_buf marks) go
     * back to the proxy's free list right after we return: record their
     * flags, never the bufs.
     */

    for (ll = &d->in; *ll; ll = &(*ll)->next) { /* void */ }

    for (cl = in; cl; cl = cl->next) {

        if (cl->buf->last_buf) {
            d->last = 1;
        }

        if (ctx->ws && !from_upstream
            && ngx_stream_vmess_ws_input(s, ctx, cl->buf) != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (ngx_buf_size(cl->buf) == 0) {
            continue;
        }

        ln = ngx_alloc_chain_link(c->pool);
        if (ln == NULL) {
            return NGX_ERROR;
        }

        ln->buf = cl->buf;
        ln->next = NULL;

        *ll = ln;
        ll = &ln->next;
    }

    /* in place (all but WebSocket responses): read from d->pos on */

    if ((!from_upstream || ctx->ws == NULL) && d->pos == NULL && d->in) {
        d->pos = d->in->buf->pos;
    }

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
            break;
        }
    }

    /* the VMess end chunk: half-close the upstream once it is flushed */

    if (!from_upstream && d->eof && !d->shut && dst
        && d->busy == NULL
        && !(dst->buffered & ~NGX_STREAM_VMESS_BUFFERED))
    {
        d->shut = 1;

        ngx_log_debug0(NGX_LOG_DEBUG_STREAM, c->log, 0,
                       "vmess end chunk: upstream socket shutdown");

        if (ngx_shutdown_socket(dst->fd, NGX_WRITE_SHUTDOWN) == -1) {
            ngx_connection_error(dst, ngx_socket_errno,
                                 ngx_shutdown_socket_n " failed");
        }
    }

    if (dst) {
        if (d->in || (d->last && !d->last_sent)
            || (!from_upstream && d->eof && !d->shut)
            || (from_upstream && ctx->ws && ctx->ws->close_sent
                && !ctx->ws->closed && !c->read->eof))
        {
            dst->buffered |= NGX_STREAM_VMESS_BUFFERED;

        } else {
            dst->buffered &= ~NGX_STREAM_VMESS_BUFFERED;
        }
    }

    /* a pong or close for the client */

    if (!from_upstream && ctx->ws && ctx->ws->reply_opcode) {
        return ngx_stream_vmess_filter(s, NULL, 1);
    }

    return rc;
}


/*
 * client -> upstream: chunks are opened where they lie, in the proxy's
 * buffer, and passed on as bufs pointing at their plaintext; the input
 * stays unconsumed for the proxy until those are written.  A chunk that
 * cannot complete in place (the proxy's buffer ends first, or it began
 * in the preread buffer) is gathered in the staging buffer.
 */

static ngx_int_t
ngx_stream_vmess_decode(ngx_stream_session_t *s, ngx_stream_vmess_ctx_t *ctx,
    ngx_stream_vmess_dir_t *d, ngx_chain_t ***ll)
{
    int                rc;
    size_t             consumed, produced;
    u_char            *end, *plain;
    ngx_buf_t         *rb;
    ngx_uint_t         stage, exhausted;
    ngx_chain_t       *cl, *ln;
    ngx_connection_t  *c;

    c = s->connection;

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

        /* the input that is contiguous in memory from d->pos on */

        end = d->in->buf->last;

        for (ln = d->in->next; ln && ln->buf->pos == end; ln = ln->next) {
            end = ln->buf->last;
        }

        stage = 0;

        for ( ;; ) {
            rc = vmess_body_open_inplace(&ctx->dec, d->pos, end - d->pos,
                                         stage, &consumed, &plain,
                                         &produced);

            exhausted = (consumed == (size_t) (end - d->pos));

            ngx_stream_vmess_hold(d, consumed);

            if (rc == VMESS_NEED_STAGING) {
                ctx->staging = ngx_palloc(c->pool, VMESS_STAGING_SIZE);
                if (ctx->staging == NULL) {
                    return NGX_ERROR;
                }

                vmess_body_set_staging(&ctx->dec, ctx->staging,
                                       VMESS_STAGING_SIZE);
                continue;
            }

            if (rc != VMESS_AGAIN || stage || exhausted) {
                break;
            }

            /*
             * The chunk's data has begun but is not all here: it completes
             * in place if the proxy's next read lands right behind it and
             * its buffer has room for the rest.
             */

            rb = s->upstream ? &s->upstream->downstream_buf : NULL;

            if (!d->last && rb && rb->start && end == rb->last
                && d->pos >= rb->start
                && d->pos + vmess_body_pending(&ctx->dec) <= rb->end)
            {
                return NGX_OK;
            }

            if (d->staging_busy) {
                /* the plaintext of the last staged chunk is still queued */
                return NGX_AGAIN;
            }

            stage = 1;
        }

        if (rc == VMESS_AGAIN) {
            /* all of this input is read: the next, or more to come */
            continue;
        }

        if (rc != VMESS_OK) {
            return ngx_stream_vmess_chunk_error(s, rc, "request");
        }

        ngx_stream_vmess_check_wrap(s, ctx, &ctx->dec);

        if (ctx->staging && plain >= ctx->staging
            && plain < ctx->staging + VMESS_STAGING_SIZE)
        {
            d->staging_busy = 1;
        }

        if (ctx->dec.eof) {
            ngx_log_debug0(NGX_LOG_DEBUG_STREAM, c->log, 0,
                           "vmess request end chunk");
            d->eof = 1;
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
 * upstream -> client: the response header, then each chunk sealed where
 * it lies in the proxy's buffer and sent as three bufs: head, data, tail.
 */

static ngx_int_t
ngx_stream_vmess_seal(ngx_stream_session_t *s, ngx_stream_vmess_ctx_t *ctx,
    ngx_stream_vmess_dir_t *d, ngx_chain_t ***ll)
{
    int                rc;
    size_t             len, written, head_len, tail_len;
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
            ngx_stream_vmess_put_buf(d, head);
            ngx_stream_vmess_put_buf(d, body);
            ngx_stream_vmess_put_buf(d, tail);
            return NGX_AGAIN;
        }

        hb = head->buf;

        if (ngx_stream_vmess_response_header(s, ctx, hb) != NGX_OK) {
            return NGX_ERROR;
        }

        tb = tail->buf;

        if (d->in == NULL) {
            /* the end chunk goes in the tail: the head may hold the
             * response header */

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
            break;
        }

        ib = d->in->buf;
        len = ngx_min((size_t) (ib->last - d->pos),
                      NGX_STREAM_VMESS_SEAL_MAX);
        data = d->pos;

        if (!ib->temporary) {
            /* memory we may not write to: sealed in a copy */

            if (d->staging_busy) {
                ngx_stream_vmess_put_buf(d, head);
                ngx_stream_vmess_put_buf(d, body);
                ngx_stream_vmess_put_buf(d, tail);
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
            ngx_stream_vmess_put_buf(d, head);
            ngx_stream_vmess_put_buf(d, tail);
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
 * upstream -> client over WebSocket: the response header, then chunks
 * sealed into our buffers, each wrapped in a frame.
 */

static ngx_int_t
ngx_stream_vmess_seal_ws(ngx_stream_session_t *s, ngx_stream_vmess_ctx_t *ctx,
    ngx_stream_vmess_dir_t *d, ngx_chain_t ***ll)
{
    int           rc;
    size_t        len, room, written, overhead;
    ngx_buf_t    *b, *ib;
    ngx_chain_t  *cl;

    while (d->in || (d->last && !d->last_sent) || ctx->ws->reply_opcode) {

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

        overhead = vmess_body_overhead(&ctx->enc);

        while (d->in) {
            ib = d->in->buf;

            room = b->end - b->last;

            if (room <= overhead) {
                break;
            }

            len = ngx_min((size_t) (ib->last - ib->pos),
                          NGX_STREAM_VMESS_SEAL_MAX);
            len = ngx_min(len, room - overhead);

            written = 0;

            rc = vmess_body_seal(&ctx->enc, ib->pos, len, ctx->pad, b->last,
                                 room, &written);

            if (rc != VMESS_OK) {
                return ngx_stream_vmess_chunk_error(s, rc, "response");
            }

            ngx_stream_vmess_check_wrap(s, ctx, &ctx->enc);

            ib->pos += len;
            b->last += written;

            if (ib->pos == ib->last) {
                ngx_stream_vmess_consumed(s, d);
            }
        }

        if (d->in == NULL && d->last && !d->last_sent) {
            written = 0;

            rc = vmess_body_seal_end(&ctx->enc, ctx->pad, b->last,
                                     b->end - b->last, &written);

            if (rc == VMESS_OK) {
                b->last += written;
                b->last_buf = 1;
                d->last_sent = 1;

            } else if (rc != VMESS_ERR_NO_SPACE || b->last == b->pos) {
                return ngx_stream_vmess_chunk_error(s, rc, "response");
            }

            /* no room: the end chunk goes into the next buffer */
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


/* the response header goes in front of the first response bytes */

static ngx_int_t
ngx_stream_vmess_response_header(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_buf_t *b)
{
    int     rc;
    size_t  written;

    if (ctx->header_sent) {
        return NGX_OK;
    }

    rc = vmess_response_header_seal(&ctx->enc, ctx->response_v, NULL, b->last,
                                    b->end - b->last, &written);
    if (rc != VMESS_OK) {
        ngx_log_error(NGX_LOG_ALERT, s->connection->log, 0,
                      "vmess_response_header_seal() failed: %s",
                      vmess_strerror(rc));
        return NGX_ERROR;
    }

    b->last += written;
    ctx->header_sent = 1;

    return NGX_OK;
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


/*
 * a buf of d's own: a free one, or a new one while there are fewer than
 * max; NULL when all max are busy
 */

ngx_chain_t *
ngx_stream_vmess_get_buf(ngx_stream_session_t *s, ngx_stream_vmess_dir_t *d,
    size_t size, ngx_uint_t max, ngx_buf_tag_t tag)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    if (d->free) {
        cl = d->free;
        d->free = cl->next;

    } else if (d->nbufs < max) {
        cl = ngx_chain_get_free_buf(s->connection->pool, &d->free);
        if (cl == NULL) {
            return NGX_CHAIN_ERROR;
        }

        d->nbufs++;

    } else {
        return NULL;
    }

    b = cl->buf;

    /* size 0: a buf that points at data elsewhere; memory comes when a
     * buf is first asked for with a size */

    if (b->start == NULL && size) {
        b->start = ngx_palloc(s->connection->pool, size);
        if (b->start == NULL) {
            return NGX_CHAIN_ERROR;
        }

        b->end = b->start + size;
    }

    cl->next = NULL;

    /* a recycled buf keeps its old flags: reset everything we use */

    b->pos = b->start;
    b->last = b->start;
    b->temporary = 1;
    b->flush = 1;
    b->last_buf = 0;
    b->tag = tag;

    return cl;
}


/* cl may be NULL: nothing to give back */

static void
ngx_stream_vmess_put_buf(ngx_stream_vmess_dir_t *d, ngx_chain_t *cl)
{
    if (cl == NULL) {
        return;
    }

    cl->next = d->free;
    d->free = cl;
}


/* the first input link is used up: drop our link to it */

void
ngx_stream_vmess_consumed(ngx_stream_session_t *s, ngx_stream_vmess_dir_t *d)
{
    ngx_chain_t  *ln;

    ln = d->in;
    d->in = ln->next;

    ngx_free_chain(s->connection->pool, ln);
}


static void
ngx_stream_vmess_check_wrap(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, vmess_body_t *b)
{
    if (b->wraps == 0 || ctx->wrap_logged
        || (b->flags & VMESS_BODY_STRICT_NONCE))
    {
        return;
    }

    ctx->wrap_logged = 1;

    ngx_log_error(NGX_LOG_INFO, s->connection->log, 0,
                  "vmess: %s chunk counter wrapped, continuing",
                  b == &ctx->dec ? "request" : "response");
}


static ngx_int_t
ngx_stream_vmess_chunk_error(ngx_stream_session_t *s, int rc,
    const char *dir)
{
    ngx_uint_t  level;

    if (rc == VMESS_ERR_NONCE_WRAP) {
        ngx_log_error(NGX_LOG_INFO, s->connection->log, 0,
                      "vmess: %s chunk counter wrapped, "
                      "closing (vmess_strict_nonce)", dir);
        return NGX_ERROR;
    }

    level = (rc == VMESS_ERR_CRYPTO || rc == VMESS_ERR_INVALID
             || rc == VMESS_ERR_NO_SPACE)
            ? NGX_LOG_ALERT : NGX_LOG_INFO;

    ngx_log_error(level, s->connection->log, 0,
                  "vmess: bad %s chunk: %s", dir, vmess_strerror(rc));

    return NGX_ERROR;
}


ngx_int_t
ngx_stream_vmess_filter_init(ngx_conf_t *cf)
{
    ngx_stream_next_filter = ngx_stream_top_filter;
    ngx_stream_top_filter = ngx_stream_vmess_filter;

    return NGX_OK;
}
