/*
 * ngx_stream_vmess_module: the chunk codecs of a session, in glue terms.
 *
 * Shared by the inbound filter, the module's own relay and the outbound
 * filters: set-up from the request header, staging memory when the core
 * asks for it, the response header, sealing queued input into a buffer,
 * and the log lines of chunk errors and counter wraps.
 */

#include "ngx_stream_vmess_module.h"

#include <openssl/rand.h>


/* dec and enc from the keys of the header; freed by the session's cleanup */

ngx_int_t
ngx_stream_vmess_codecs_init(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, vmess_session_t *sess, ngx_flag_t strict)
{
    int         rc;
    unsigned    flags;
    ngx_log_t  *log;

    log = s->connection->log;
    flags = strict ? VMESS_BODY_STRICT_NONCE : 0;

    rc = vmess_body_init(&ctx->dec, sess, VMESS_DIR_REQUEST, flags);

    if (rc == VMESS_OK) {
        ctx->dec_init = 1;
        rc = vmess_body_init(&ctx->enc, sess, VMESS_DIR_RESPONSE, flags);
    }

    if (rc != VMESS_OK) {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "vmess_body_init() failed: %s", vmess_strerror(rc));
        return NGX_ERROR;
    }

    ctx->enc_init = 1;

    if (RAND_bytes(ctx->pad, sizeof(ctx->pad)) != 1) {
        ngx_log_error(NGX_LOG_ALERT, log, 0, "RAND_bytes() failed");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* VMESS_NEED_STAGING: memory for one chunk, once per codec */

ngx_int_t
ngx_stream_vmess_staging(ngx_pool_t *pool, vmess_body_t *body,
    u_char **staging)
{
    *staging = ngx_palloc(pool, VMESS_STAGING_SIZE);
    if (*staging == NULL) {
        return NGX_ERROR;
    }

    vmess_body_set_staging(body, *staging, VMESS_STAGING_SIZE);

    return NGX_OK;
}


/* the response header goes in front of the first response bytes */

ngx_int_t
ngx_stream_vmess_response_header(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_buf_t *b)
{
    int                      rc;
    size_t                   written;
    ngx_int_t                dynamic;
    vmess_switch_account_t   cmd;

    if (ctx->header_sent) {
        return NGX_OK;
    }

    dynamic = ngx_stream_vmess_dynamic_command(s, ctx, &cmd);

    if (dynamic == NGX_ERROR) {
        return NGX_ERROR;
    }

    rc = vmess_response_header_seal(&ctx->enc, ctx->response_v,
                                    dynamic == NGX_OK ? &cmd : NULL, b->last,
                                    b->end - b->last, &written);
    if (rc != VMESS_OK) {
        ngx_log_error(NGX_LOG_ALERT, s->connection->log, 0,
                      "vmess_response_header_seal() failed: %s",
                      vmess_strerror(rc));
        return NGX_ERROR;
    }

    ngx_explicit_memzero(&cmd, sizeof(vmess_switch_account_t));

    b->last += written;
    ctx->header_sent = 1;

    return NGX_OK;
}


/*
 * As much of d's input as fits sealed into b, in chunks of up to
 * SEAL_MAX bytes; what is sealed is consumed.  A VMESS_* code.
 */

int
ngx_stream_vmess_seal_input(ngx_stream_session_t *s, vmess_body_t *body,
    u_char *pad, ngx_stream_vmess_dir_t *d, ngx_buf_t *b)
{
    int         rc;
    size_t      len, room, written, overhead;
    ngx_buf_t  *ib;

    overhead = vmess_body_overhead(body);

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

        rc = vmess_body_seal(body, ib->pos, len, pad, b->last, room,
                             &written);
        if (rc != VMESS_OK) {
            return rc;
        }

        ib->pos += len;
        b->last += written;

        if (ib->pos == ib->last) {
            ngx_stream_vmess_consumed(s, d);
        }
    }

    return VMESS_OK;
}


/*
 * After the last input: the end chunk into b, marked last_buf; when b has
 * data but no room left, it goes into the next buffer.  A VMESS_* code.
 */

int
ngx_stream_vmess_seal_last(vmess_body_t *body, u_char *pad,
    ngx_stream_vmess_dir_t *d, ngx_buf_t *b)
{
    int     rc;
    size_t  written;

    if (d->in || !d->last || d->last_sent) {
        return VMESS_OK;
    }

    written = 0;

    rc = vmess_body_seal_end(body, pad, b->last, b->end - b->last, &written);

    if (rc == VMESS_OK) {
        b->last += written;
        b->last_buf = 1;
        d->last_sent = 1;
        return VMESS_OK;
    }

    if (rc == VMESS_ERR_NO_SPACE && b->last > b->pos) {
        return VMESS_OK;
    }

    return rc;
}


void
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


ngx_int_t
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
