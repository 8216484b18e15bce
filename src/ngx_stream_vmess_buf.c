/*
 * ngx_stream_vmess_module: the bufs of one direction of a filter (or of
 * the module's own relay).
 *
 * The proxy reuses its buffers as soon as a filter has consumed them, so
 * each layer keeps links of its own to the input it has not consumed yet
 * and writes into bufs of its own: a small free list per direction,
 * allocated once (NGINX-STREAM-NOTES.md §2.4).
 */

#include "ngx_stream_vmess_module.h"


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

void
ngx_stream_vmess_put_buf(ngx_stream_vmess_dir_t *d, ngx_chain_t *cl)
{
    if (cl == NULL) {
        return;
    }

    cl->next = d->free;
    d->free = cl;
}


/*
 * Links of our own to the new input.  Zero-size bufs (flush/last_buf
 * marks) go back to the proxy's free list right after the filter returns:
 * their flags are recorded, never the bufs.
 */

ngx_int_t
ngx_stream_vmess_add_input(ngx_stream_session_t *s,
    ngx_stream_vmess_dir_t *d, ngx_chain_t *in)
{
    ngx_chain_t  *cl, *ln, **ll;

    for (ll = &d->in; *ll; ll = &(*ll)->next) { /* void */ }

    for (cl = in; cl; cl = cl->next) {

        if (cl->buf->last_buf) {
            d->last = 1;
        }

        if (ngx_buf_size(cl->buf) == 0) {
            continue;
        }

        ln = ngx_alloc_chain_link(s->connection->pool);
        if (ln == NULL) {
            return NGX_ERROR;
        }

        ln->buf = cl->buf;
        ln->next = NULL;

        *ll = ln;
        ll = &ln->next;
    }

    return NGX_OK;
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
