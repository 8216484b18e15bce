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
static ngx_int_t ngx_stream_vmess_auth_legacy(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf,
    int64_t now);
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
static ngx_int_t ngx_stream_vmess_target_host(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, vmess_request_t *req, u_char *host,
    size_t len);
static ngx_int_t ngx_stream_vmess_destination_addr(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf,
    vmess_request_t *req);
static ngx_int_t ngx_stream_vmess_resolve(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx);
static void ngx_stream_vmess_resolve_handler(ngx_resolver_ctx_t *rctx);
static ngx_int_t ngx_stream_vmess_target(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf);
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
    u_char                        *p, text[64];
    size_t                         found;
    int64_t                        now, timestamp, skew;
    ngx_int_t                      rc, legacy, added;
    ngx_str_t                      reason;
    ngx_connection_t              *c;
    ngx_stream_vmess_main_conf_t  *vmcf;

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
        ctx->timestamp = timestamp;

        if (vscf->detour) {
            /* an expired ID is refused before the zone keeps its AuthID */
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

        vmcf = ngx_stream_get_module_main_conf(s, ngx_stream_vmess_module);

        rc = ngx_stream_vmess_replay_check(vmcf->shm_zone, c->buffer->pos,
                                           (time_t) timestamp);

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
    ctx->legacy = 1;
    ctx->state = NGX_STREAM_VMESS_HEADER;

    return NGX_OK;
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


/* the target as sent: "$vmess_target_host", "$vmess_target_port" */

static ngx_int_t
ngx_stream_vmess_target_host(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, vmess_request_t *req, u_char *host,
    size_t len)
{
    ctx->host.data = ngx_pnalloc(s->connection->pool, len);
    if (ctx->host.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(ctx->host.data, host, len);
    ctx->host.len = len;

    ctx->port = req->port;
    ngx_sprintf(ctx->port_text, "%ui%Z", (ngx_uint_t) req->port);

    return NGX_OK;
}


/* the address to check: sent as one, an IP literal as a name, or looked up */

static ngx_int_t
ngx_stream_vmess_destination_addr(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf,
    vmess_request_t *req)
{
    ngx_addr_t            addr;
    ngx_connection_t     *c;
    struct sockaddr_in   *sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6  *sin6;
#endif

    c = s->connection;

    switch (req->addr_type) {

    case VMESS_ADDR_IPV4:
        sin = (struct sockaddr_in *) &ctx->sockaddr;
        sin->sin_family = AF_INET;
        ngx_memcpy(&sin->sin_addr, req->addr, 4);
        ctx->socklen = sizeof(struct sockaddr_in);
        break;

#if (NGX_HAVE_INET6)
    case VMESS_ADDR_IPV6:
        sin6 = (struct sockaddr_in6 *) &ctx->sockaddr;
        sin6->sin6_family = AF_INET6;
        ngx_memcpy(&sin6->sin6_addr, req->addr, 16);
        ctx->socklen = sizeof(struct sockaddr_in6);
        break;
#endif

    case VMESS_ADDR_DOMAIN:

        if (ngx_parse_addr(c->pool, &addr, ctx->host.data, ctx->host.len)
            == NGX_OK)
        {
            ngx_memcpy(&ctx->sockaddr, addr.sockaddr, addr.socklen);
            ctx->socklen = addr.socklen;
            break;
        }

        return ngx_stream_vmess_resolve(s, ctx);

    default:
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "vmess: address type %ui not supported",
                      (ngx_uint_t) req->addr_type);
        ctx->status = NGX_STREAM_VMESS_ST_DENIED;
        ctx->state = NGX_STREAM_VMESS_REFUSED;
        return NGX_STREAM_FORBIDDEN;
    }

    return ngx_stream_vmess_target(s, ctx, vscf);
}


static ngx_int_t
ngx_stream_vmess_resolve(ngx_stream_session_t *s, ngx_stream_vmess_ctx_t *ctx)
{
    ngx_connection_t             *c;
    ngx_resolver_ctx_t           *rctx;
    ngx_stream_vmess_srv_conf_t  *vscf;

    c = s->connection;

    rctx = ngx_stream_vmess_resolve_start(s, c->pool, &ctx->host,
                                          ngx_stream_vmess_resolve_handler,
                                          ctx);
    if (rctx == NULL) {
        return NGX_ERROR;
    }

    if (rctx == NGX_NO_RESOLVER) {
        /*
         * Without a resolver the name is left to proxy_pass: an upstream{}
         * ignores it, and "proxy_pass $vmess_target" cannot resolve it
         * either, so no unchecked address is ever connected to.
         */

        ctx->target.len = ctx->host.len + 1 + ngx_strlen(ctx->port_text);
        ctx->target.data = ngx_pnalloc(c->pool, ctx->target.len);
        if (ctx->target.data == NULL) {
            return NGX_ERROR;
        }

        ngx_sprintf(ctx->target.data, "%V:%s", &ctx->host, ctx->port_text);
        ctx->state = NGX_STREAM_VMESS_ACTIVE;

        return NGX_OK;
    }

    ctx->rctx = rctx;
    ctx->state = NGX_STREAM_VMESS_RESOLVING;
    ctx->in_resolver = 1;

    if (ngx_resolve_name(rctx) != NGX_OK) {
        /* the resolver context is freed on error */
        ctx->rctx = NULL;
        ctx->in_resolver = 0;
        return NGX_ERROR;
    }

    ctx->in_resolver = 0;

    if (ctx->rctx) {
        /*
         * Park the session until the lookup ends: the preread checker
         * would otherwise keep reading into c->buffer, and a client that
         * uploads at once would fill it ("preread buffer full").  Unread
         * data stays in the socket; the resolver timeout bounds the wait.
         */
        return NGX_DONE;
    }

    /* the name was cached: the handler already ran */

    if (ctx->resolve_failed) {
        return NGX_STREAM_BAD_GATEWAY;
    }

    vscf = ngx_stream_get_module_srv_conf(s, ngx_stream_vmess_module);

    return ngx_stream_vmess_target(s, ctx, vscf);
}


static void
ngx_stream_vmess_resolve_handler(ngx_resolver_ctx_t *rctx)
{
    ngx_connection_t             *c;
    ngx_stream_session_t         *s;
    ngx_stream_vmess_ctx_t       *ctx;
    ngx_stream_vmess_srv_conf_t  *vscf;

    ctx = rctx->data;
    s = ctx->session;
    c = s->connection;

    vscf = ngx_stream_get_module_srv_conf(s, ngx_stream_vmess_module);

    if (rctx->state || rctx->naddrs == 0) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "vmess: %V could not be resolved (%i: %s)",
                      &rctx->name, rctx->state,
                      ngx_resolver_strerror(rctx->state));

        ctx->resolve_failed = 1;

    } else {
        ngx_stream_vmess_resolved_addr(rctx, vscf->allow_private,
                                       &ctx->sockaddr, &ctx->socklen);
    }

    ngx_resolve_name_done(rctx);
    ctx->rctx = NULL;

    ngx_log_debug2(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "vmess resolved, failed:%ui sync:%ui",
                   (ngx_uint_t) ctx->resolve_failed,
                   (ngx_uint_t) ctx->in_resolver);

    if (ctx->in_resolver) {
        /* called from ngx_resolve_name() inside the preread handler */
        return;
    }

    /*
     * Resume the preread phase: the checker calls the handler again only
     * when no preread timer is set.
     */

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    ngx_stream_core_run_phases(s);
}


static ngx_int_t
ngx_stream_vmess_target(ngx_stream_session_t *s, ngx_stream_vmess_ctx_t *ctx,
    ngx_stream_vmess_srv_conf_t *vscf)
{
    ngx_int_t          rc;
    ngx_connection_t  *c;

    c = s->connection;

    rc = ngx_stream_vmess_destination(c->log, c->pool, &ctx->sockaddr,
                                      ctx->socklen, ctx->port,
                                      vscf->allow_private, &ctx->target);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        ctx->status = NGX_STREAM_VMESS_ST_DENIED;
        ctx->state = NGX_STREAM_VMESS_REFUSED;
        return NGX_STREAM_FORBIDDEN;
    }

    ctx->state = NGX_STREAM_VMESS_ACTIVE;

    ngx_log_debug1(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "vmess target: \"%V\"", &ctx->target);

    return NGX_OK;
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

