/*
 * ngx_stream_vmess_module: the preread phase (and a log phase check).
 *
 * A resumable state machine over c->buffer, one step a call: AUTH finds
 * the user by AuthID (or the legacy auth hash) and checks the replay
 * zone, HEADER opens the request header through the core, RESOLVING waits
 * for the stream resolver; ACTIVE is reached with the header consumed,
 * the codecs set up and $vmess_target an IP literal the destination
 * policy allows, so that a stock "proxy_pass $vmess_target" relays the
 * session through our filter (ngx_stream_vmess_filter.c).  Input that
 * does not authenticate goes to ngx_stream_vmess_refuse().
 */

#include "ngx_stream_vmess_module.h"


typedef struct {
    ngx_str_t                       name;
    ngx_uint_t                      mask;
} ngx_stream_vmess_security_t;


static ngx_int_t ngx_stream_vmess_auth(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf);
static ngx_int_t ngx_stream_vmess_replay(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf,
    const u_char *key);
static ngx_int_t ngx_stream_vmess_auth_legacy(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf,
    int64_t now);
static ngx_int_t ngx_stream_vmess_user_found(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf,
    int64_t timestamp);
static ngx_int_t ngx_stream_vmess_expired(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf);
static ngx_int_t ngx_stream_vmess_header(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf);
static ngx_int_t ngx_stream_vmess_bad_header(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf, int rc);
static ngx_int_t ngx_stream_vmess_accept(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf,
    vmess_request_t *req, size_t consumed);
static ngx_uint_t ngx_stream_vmess_session_security(vmess_session_t *sess);
static ngx_int_t ngx_stream_vmess_auth_refused(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf);
static void ngx_stream_vmess_conf_user(ngx_stream_vmess_ctx_t *ctx,
    ngx_stream_vmess_srv_conf_t *vscf, ngx_uint_t found);
static void ngx_stream_vmess_cleanup(void *data);


static ngx_stream_vmess_security_t  ngx_stream_vmess_securities[] = {
    { ngx_string("aes-128-cfb"), NGX_STREAM_VMESS_SEC_CFB },
    { ngx_string("aes-128-gcm"), NGX_STREAM_VMESS_SEC_GCM },
    { ngx_string("chacha20-poly1305"), NGX_STREAM_VMESS_SEC_CHACHA },
    { ngx_string("none"), NGX_STREAM_VMESS_SEC_NONE },
    { ngx_string("zero"), NGX_STREAM_VMESS_SEC_ZERO },
    { ngx_null_string, 0 }
};


/* "vmess_security" names: 0 for an unknown one */

ngx_uint_t
ngx_stream_vmess_security_mask(ngx_str_t *name)
{
    ngx_stream_vmess_security_t  *sec;

    for (sec = ngx_stream_vmess_securities; sec->mask; sec++) {
        if (name->len == sec->name.len
            && ngx_strncmp(name->data, sec->name.data, name->len) == 0)
        {
            return sec->mask;
        }
    }

    return 0;
}


/* the name of one NGX_STREAM_VMESS_SEC_* bit; an empty one for 0 */

ngx_str_t *
ngx_stream_vmess_security_name(ngx_uint_t mask)
{
    ngx_stream_vmess_security_t  *sec;

    for (sec = ngx_stream_vmess_securities; sec->mask; sec++) {
        if (sec->mask == mask) {
            break;
        }
    }

    return &sec->name;
}


/*
 * nginx's preread checker closes a connection on EOF or preread_timeout
 * without calling the handler again, so a header that never completed is
 * reported here, when the session ends.
 */

ngx_int_t
ngx_stream_vmess_log_handler(ngx_stream_session_t *s)
{
    size_t                        received;
    ngx_connection_t             *c;
    ngx_stream_vmess_ctx_t       *ctx;
    ngx_stream_vmess_srv_conf_t  *vscf;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_vmess_module);

    if (ctx == NULL) {
        return NGX_OK;
    }

    vscf = ngx_stream_get_module_srv_conf(s, ngx_stream_vmess_module);

    ngx_stream_vmess_stats_status(vscf, ctx->status);

    if (ctx->state != NGX_STREAM_VMESS_AUTH
        && ctx->state != NGX_STREAM_VMESS_HEADER)
    {
        return NGX_OK;
    }

    c = s->connection;
    received = c->buffer ? (size_t) (c->buffer->last - c->buffer->start) : 0;

    ngx_log_error(NGX_LOG_INFO, c->log, 0,
                  "vmess: incomplete header, %uz bytes received", received);

    return NGX_OK;
}


ngx_int_t
ngx_stream_vmess_preread_handler(ngx_stream_session_t *s)
{
    ngx_int_t                     rc;
    ngx_connection_t             *c;
    ngx_stream_vmess_ctx_t       *ctx;
    ngx_stream_vmess_srv_conf_t  *vscf;

    c = s->connection;

    vscf = ngx_stream_get_module_srv_conf(s, ngx_stream_vmess_module);

    if (!vscf->enable || c->type != SOCK_STREAM) {
        return NGX_DECLINED;
    }

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_vmess_module);

    if (ctx == NULL) {
        ctx = ngx_pcalloc(c->pool, sizeof(ngx_stream_vmess_ctx_t));
        if (ctx == NULL) {
            return NGX_ERROR;
        }

        ctx->session = s;
        ctx->start = ngx_current_msec;

        ngx_stream_set_ctx(s, ctx, ngx_stream_vmess_module);
    }

    /* the first call happens before anything was read */

    if (c->buffer == NULL) {
        return NGX_AGAIN;
    }

    if (vscf->ws || vscf->httpupgrade) {
        rc = ngx_stream_vmess_ws_preread(s, ctx, vscf);

        if (rc != NGX_DECLINED) {
            return rc;
        }
    }

    ngx_log_debug2(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "vmess preread: state %ui, %uz bytes", ctx->state,
                   (size_t) (c->buffer->last - c->buffer->pos));

    switch (ctx->state) {

    case NGX_STREAM_VMESS_AUTH:

        rc = ngx_stream_vmess_auth(s, ctx, vscf);

        if (rc != NGX_OK || ctx->state != NGX_STREAM_VMESS_HEADER) {
            return rc;
        }

        /* fall through */

    case NGX_STREAM_VMESS_HEADER:
        return ngx_stream_vmess_header(s, ctx, vscf);

    case NGX_STREAM_VMESS_RESOLVING:

        if (ctx->rctx) {
            /* a read event while the lookup is in flight: stay parked */
            return NGX_DONE;
        }

        if (ctx->resolve_failed) {
            return NGX_STREAM_BAD_GATEWAY;
        }

        return ngx_stream_vmess_target(s, ctx, vscf);

    case NGX_STREAM_VMESS_ACTIVE:
    case NGX_STREAM_VMESS_FALLBACK:
        return NGX_OK;

    default:
        return NGX_ERROR;
    }
}


static ngx_int_t
ngx_stream_vmess_auth(ngx_stream_session_t *s, ngx_stream_vmess_ctx_t *ctx,
    ngx_stream_vmess_srv_conf_t *vscf)
{
    u_char            *p, text[64];
    size_t             found;
    int64_t            now, timestamp, skew;
    ngx_int_t          rc, legacy, added;
    ngx_str_t          reason;
    ngx_connection_t  *c;

    c = s->connection;

    if (c->buffer->last - c->buffer->pos < 16) {
        return NGX_AGAIN;
    }

    now = ngx_time();
    found = 0;
    timestamp = 0;
    skew = 0;

    if (vscf->detour
        && ngx_stream_vmess_dynamic_refresh(c->log, vscf, (time_t) now)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    rc = vmess_users_find_authid(vscf->users, vscf->nusers, c->buffer->pos,
                                 now, &found, &timestamp, &skew);

    if (rc == VMESS_OK) {
        ngx_stream_vmess_conf_user(ctx, vscf, found);

    } else if (rc == VMESS_ERR_UNKNOWN_USER) {
        /* not a configuration's user: maybe one the API added */
        added = ngx_stream_vmess_runtime_find(s, ctx, vscf, now, &timestamp,
                                              0);

        if (added == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (added == NGX_OK) {
            rc = VMESS_OK;
        }
    }

    if (rc == VMESS_OK) {
        /* an expired or refused user before the zone keeps its AuthID */
        rc = ngx_stream_vmess_user_found(s, ctx, vscf, timestamp);

        if (rc != NGX_DECLINED) {
            return rc;
        }

        rc = ngx_stream_vmess_replay(s, ctx, vscf, c->buffer->pos);

        if (rc != NGX_DECLINED) {
            return rc;
        }

        ctx->state = NGX_STREAM_VMESS_HEADER;

        return NGX_OK;
    }

    if (rc != VMESS_ERR_UNKNOWN_USER && rc != VMESS_ERR_CLOCK_SKEW) {
        ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                      "vmess_users_find_authid() failed: %s",
                      vmess_strerror(rc));
        return NGX_ERROR;
    }

    if (vscf->legacy_index) {
        legacy = ngx_stream_vmess_auth_legacy(s, ctx, vscf, now);

        if (legacy != NGX_DECLINED) {
            return legacy;
        }
    }

    if (rc == VMESS_ERR_CLOCK_SKEW) {
        ngx_stream_vmess_conf_user(ctx, vscf, found);
        ctx->has_user = 1;

        p = ngx_snprintf(text, sizeof(text), "clock skew %L s", skew);
        reason.data = text;
        reason.len = p - text;

        return ngx_stream_vmess_refuse(s, ctx, vscf, NGX_STREAM_VMESS_ST_SKEW,
                                       NGX_LOG_INFO, &reason);
    }

    ngx_str_set(&reason, "unknown user");

    return ngx_stream_vmess_refuse(s, ctx, vscf, NGX_STREAM_VMESS_ST_UNKNOWN,
                                   NGX_LOG_INFO, &reason);
}


/*
 * The replay zone, shared by the workers, for a header's key (its AuthID,
 * or a legacy header's triple): NGX_DECLINED when it is new, else what
 * the refusal returns (NGX_OK for the fallback).  A full zone refuses
 * too: no header goes unchecked.
 */

static ngx_int_t
ngx_stream_vmess_replay(ngx_stream_session_t *s, ngx_stream_vmess_ctx_t *ctx,
    ngx_stream_vmess_srv_conf_t *vscf, const u_char *key)
{
    u_char                        *p, text[64];
    ngx_int_t                      rc;
    ngx_str_t                      reason;
    ngx_stream_vmess_main_conf_t  *vmcf;

    vmcf = ngx_stream_get_module_main_conf(s, ngx_stream_vmess_module);

    rc = ngx_stream_vmess_replay_check(vmcf->shm_zone, key,
                                       (time_t) ctx->timestamp);

    if (rc == NGX_DECLINED) {
        ngx_str_set(&reason, "replayed header");
        return ngx_stream_vmess_refuse(s, ctx, vscf,
                                       NGX_STREAM_VMESS_ST_REPLAY,
                                       NGX_LOG_INFO, &reason);
    }

    if (rc == NGX_BUSY) {
        p = ngx_snprintf(text, sizeof(text), "replay zone \"%V\" is full",
                         &vmcf->shm_zone->shm.name);
        reason.data = text;
        reason.len = p - text;

        return ngx_stream_vmess_refuse(s, ctx, vscf,
                                       NGX_STREAM_VMESS_ST_REPLAY,
                                       NGX_LOG_ERR, &reason);
    }

    return NGX_DECLINED;
}


/*
 * The legacy auth: the first 16 bytes are an HMAC-MD5 of a timestamp in
 * the window; the index of those hashes is refreshed every 10 s.
 * NGX_DECLINED: no user matches.
 */

static ngx_int_t
ngx_stream_vmess_auth_legacy(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf,
    int64_t now)
{
    size_t             found;
    int64_t            timestamp;
    ngx_int_t          rc;
    ngx_connection_t  *c;

    c = s->connection;

    if ((time_t) now - vscf->legacy_updated
        >= NGX_STREAM_VMESS_LEGACY_REFRESH)
    {
        if (vmess_legacy_index_update(vscf->legacy_index, now) != VMESS_OK) {
            ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                          "vmess_legacy_index_update() failed");
            return NGX_ERROR;
        }

        vscf->legacy_updated = (time_t) now;
    }

    if (vmess_legacy_index_find(vscf->legacy_index, c->buffer->pos, now,
                                &found, &timestamp)
        == VMESS_OK)
    {
        ngx_stream_vmess_conf_user(ctx, vscf, found);

    } else {
        rc = ngx_stream_vmess_runtime_find(s, ctx, vscf, now, &timestamp, 1);

        if (rc != NGX_OK) {
            return rc;
        }
    }

    rc = ngx_stream_vmess_user_found(s, ctx, vscf, timestamp);

    if (rc != NGX_DECLINED) {
        return rc;
    }

    ctx->legacy = 1;
    ctx->state = NGX_STREAM_VMESS_HEADER;

    return NGX_OK;
}


/*
 * The user an AuthID or a legacy hash found (ctx->user, ctx->vuser) is
 * refused when its dynamic port ID expired or the API refused it
 * (disabled, quota, expiry); NGX_DECLINED: the session goes on as it.
 */

static ngx_int_t
ngx_stream_vmess_user_found(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf,
    int64_t timestamp)
{
    ngx_int_t  rc;

    ctx->timestamp = timestamp;

    if (vscf->detour) {
        rc = ngx_stream_vmess_expired(s, ctx, vscf);

        if (rc != NGX_DECLINED) {
            return rc;
        }
    }

    rc = ngx_stream_vmess_auth_refused(s, ctx, vscf);

    if (rc != NGX_DECLINED) {
        return rc;
    }

    ctx->has_user = 1;

    return NGX_DECLINED;
}


/* a detour server's user found: NGX_DECLINED when its ID is still valid */

static ngx_int_t
ngx_stream_vmess_expired(ngx_stream_session_t *s, ngx_stream_vmess_ctx_t *ctx,
    ngx_stream_vmess_srv_conf_t *vscf)
{
    ngx_str_t  reason;

    if (!ngx_stream_vmess_dynamic_expired(vscf, ctx->user, ngx_time())) {
        return NGX_DECLINED;
    }

    /* the log names the user whose ID expired */
    ctx->has_user = 1;

    ngx_str_set(&reason, "expired dynamic port ID");

    return ngx_stream_vmess_refuse(s, ctx, vscf, NGX_STREAM_VMESS_ST_EXPIRED,
                                   NGX_LOG_INFO, &reason);
}


/*
 * A user the API disabled, or past the quota or expiry it set, is refused
 * as an unknown user is (drain or fallback), with its own log line.
 * NGX_DECLINED: the user may go on.
 */

static ngx_int_t
ngx_stream_vmess_auth_refused(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf)
{
    u_char                   *p;
    size_t                    len;
    ngx_str_t                 reason;
    const char               *why;
    ngx_stream_vmess_stat_t  *st;

    st = ctx->user_stat;

    if (st == NULL) {
        return NGX_DECLINED;
    }

    why = ngx_stream_vmess_stats_refused(st);

    if (why == NULL) {
        return NGX_DECLINED;
    }

    len = sizeof("user \"\" over quota") + st->name->len;

    p = ngx_pnalloc(s->connection->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    reason.data = p;
    reason.len = ngx_snprintf(p, len, "user \"%V\" %s", st->name, why) - p;

    return ngx_stream_vmess_refuse(s, ctx, vscf, NGX_STREAM_VMESS_ST_UNKNOWN,
                                   NGX_LOG_INFO, &reason);
}


/* the AuthID (or legacy hash) matched the configuration's user found */

static void
ngx_stream_vmess_conf_user(ngx_stream_vmess_ctx_t *ctx,
    ngx_stream_vmess_srv_conf_t *vscf, ngx_uint_t found)
{
    ctx->user = found;
    ctx->vuser = &vscf->users[found];
    ctx->user_stat = vscf->stats ? &vscf->stats[found] : NULL;
}


static ngx_int_t
ngx_stream_vmess_header(ngx_stream_session_t *s, ngx_stream_vmess_ctx_t *ctx,
    ngx_stream_vmess_srv_conf_t *vscf)
{
    u_char             id[16];
    size_t             len, consumed;
    ngx_int_t          rc;
    vmess_user_t      *user;
    vmess_request_t    req;
    ngx_connection_t  *c;

    c = s->connection;

    user = ctx->vuser;
    len = c->buffer->last - c->buffer->pos;
    consumed = 0;

    if (ctx->legacy) {
        rc = vmess_legacy_header_open(user, ctx->timestamp, c->buffer->pos,
                                      len, &consumed, &req);

    } else {
        rc = vmess_aead_header_open(user, c->buffer->pos, len, &consumed,
                                    &req);
    }

    if (rc == VMESS_AGAIN) {
        return NGX_AGAIN;
    }

    if (rc == VMESS_ERR_CRYPTO || rc == VMESS_ERR_INVALID) {
        ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                      "vmess header open failed: %s", vmess_strerror(rc));
        ngx_explicit_memzero(&req, sizeof(vmess_request_t));
        return NGX_ERROR;
    }

    if (rc != VMESS_OK) {
        ngx_explicit_memzero(&req, sizeof(vmess_request_t));
        return ngx_stream_vmess_bad_header(s, ctx, vscf, rc);
    }

    if (ctx->legacy) {
        if (vmess_legacy_replay_id(c->buffer->pos, &req, id) != VMESS_OK) {
            ngx_explicit_memzero(&req, sizeof(vmess_request_t));
            ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                          "vmess_legacy_replay_id() failed");
            return NGX_ERROR;
        }

        rc = ngx_stream_vmess_replay(s, ctx, vscf, id);

        if (rc != NGX_DECLINED) {
            ngx_explicit_memzero(&req, sizeof(vmess_request_t));
            return rc;
        }
    }

    rc = ngx_stream_vmess_accept(s, ctx, vscf, &req, consumed);

    ngx_explicit_memzero(&req, sizeof(vmess_request_t));

    return rc;
}


static ngx_int_t
ngx_stream_vmess_bad_header(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf, int rc)
{
    u_char     *p, text[80];
    ngx_str_t   reason;

    p = ngx_snprintf(text, sizeof(text), "bad header: %s",
                     vmess_strerror(rc));
    reason.data = text;
    reason.len = p - text;

    return ngx_stream_vmess_refuse(s, ctx, vscf,
                                   NGX_STREAM_VMESS_ST_BAD_HEADER,
                                   NGX_LOG_INFO, &reason);
}


/*
 * The header is open: the session's keys become its codecs, the header
 * bytes are consumed (the proxy forwards only pos..last), and the target
 * is checked.
 */

static ngx_int_t
ngx_stream_vmess_accept(ngx_stream_session_t *s, ngx_stream_vmess_ctx_t *ctx,
    ngx_stream_vmess_srv_conf_t *vscf, vmess_request_t *req, size_t consumed)
{
    u_char               host[256];
    size_t               len;
    ngx_int_t            rc;
    vmess_session_t      sess;
    ngx_connection_t    *c;
    ngx_pool_cleanup_t  *cln;

    c = s->connection;

    rc = vmess_session_init(&sess, req, ctx->legacy);

    if (rc != VMESS_OK) {
        ngx_explicit_memzero(&sess, sizeof(vmess_session_t));
        return ngx_stream_vmess_bad_header(s, ctx, vscf, rc);
    }

    ctx->command = sess.command;
    ctx->response_v = sess.response_v;
    ctx->security = ngx_stream_vmess_session_security(&sess);

    if (req->command != VMESS_CMD_MUX) {

        rc = vmess_addr_format_host(req->addr_type, req->addr, req->addr_len,
                                    (char *) host, sizeof(host), &len);

        if (rc != VMESS_OK) {
            ngx_explicit_memzero(&sess, sizeof(vmess_session_t));
            return ngx_stream_vmess_bad_header(s, ctx, vscf, rc);
        }

        if (ngx_stream_vmess_target_host(s, ctx, req, host, len) != NGX_OK) {
            ngx_explicit_memzero(&sess, sizeof(vmess_session_t));
            return NGX_ERROR;
        }
    }

    /* from here on the session is authenticated: no fallback, no drain */

    ctx->status = NGX_STREAM_VMESS_ST_OK;

    if (!(vscf->security & ctx->security)) {
        ngx_explicit_memzero(&sess, sizeof(vmess_session_t));

        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "vmess: security \"%V\" not allowed",
                      ngx_stream_vmess_security_name(ctx->security));

        ctx->status = NGX_STREAM_VMESS_ST_DENIED;
        ctx->state = NGX_STREAM_VMESS_REFUSED;

        return NGX_STREAM_FORBIDDEN;
    }

    /* the codecs (and a lookup) are freed with the session */

    cln = ngx_pool_cleanup_add(c->pool, 0);
    if (cln == NULL) {
        ngx_explicit_memzero(&sess, sizeof(vmess_session_t));
        return NGX_ERROR;
    }

    cln->handler = ngx_stream_vmess_cleanup;
    cln->data = ctx;

    rc = ngx_stream_vmess_codecs_init(s, ctx, &sess, vscf->strict_nonce);

    ngx_explicit_memzero(&sess, sizeof(vmess_session_t));

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    if (ctx->user_stat) {
        /* ended by the cleanup above */
        ctx->stat = ctx->user_stat;
        ngx_stream_vmess_stats_start(ctx->stat, &ctx->live, c);
    }

    c->buffer->pos += consumed;

    ngx_log_debug3(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "vmess header: %uz bytes, security %ui, options %ui",
                   consumed, ctx->security, (ngx_uint_t) req->options);

    if (req->command == VMESS_CMD_MUX) {
        /* sub-session targets come in the frames (ngx_stream_vmess_mux.c) */
        ctx->state = NGX_STREAM_VMESS_ACTIVE;
        return NGX_OK;
    }

    return ngx_stream_vmess_destination_addr(s, ctx, vscf, req);
}


static ngx_uint_t
ngx_stream_vmess_session_security(vmess_session_t *sess)
{
    switch (sess->security) {

    case VMESS_SEC_AES_128_CFB:
        return NGX_STREAM_VMESS_SEC_CFB;

    case VMESS_SEC_AES_128_GCM:
        return NGX_STREAM_VMESS_SEC_GCM;

    case VMESS_SEC_CHACHA20_POLY1305:
        return NGX_STREAM_VMESS_SEC_CHACHA;

    case VMESS_SEC_NONE:
        return (sess->options & VMESS_OPT_CHUNK_STREAM)
               ? NGX_STREAM_VMESS_SEC_NONE : NGX_STREAM_VMESS_SEC_ZERO;

    default:
        return 0;
    }
}


static void
ngx_stream_vmess_cleanup(void *data)
{
    ngx_stream_vmess_ctx_t  *ctx = data;

    if (ctx->rctx) {
        ngx_resolve_name_done(ctx->rctx);
        ctx->rctx = NULL;
    }

    if (ctx->dec_init) {
        vmess_body_free(&ctx->dec);
        ctx->dec_init = 0;
    }

    if (ctx->enc_init) {
        vmess_body_free(&ctx->enc);
        ctx->enc_init = 0;
    }

    if (ctx->stat) {
        ngx_stream_vmess_stats_end(ctx->stat, &ctx->live);
        ctx->stat = NULL;
    }
}

