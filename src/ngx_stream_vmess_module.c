/*
 * ngx_stream_vmess_module: directives, variables, preread handler.
 *
 * The preread handler authenticates the client (AuthID or legacy auth),
 * opens the request header through the core, consumes the header bytes,
 * resolves a domain target with the stream resolver and applies the
 * destination policy, so that a stock "proxy_pass $vmess_target" relays
 * the session through our filter (ngx_stream_vmess_filter.c).  Input that
 * does not authenticate goes to "vmess_fallback" untouched, or is drained
 * and closed without a response byte.
 */

#include "ngx_stream_vmess_module.h"

#include <openssl/hmac.h>
#include <openssl/rand.h>


#define NGX_STREAM_VMESS_VAR_USER       0
#define NGX_STREAM_VMESS_VAR_UUID       1
#define NGX_STREAM_VMESS_VAR_TARGET     2
#define NGX_STREAM_VMESS_VAR_HOST       3
#define NGX_STREAM_VMESS_VAR_PORT       4
#define NGX_STREAM_VMESS_VAR_COMMAND    5
#define NGX_STREAM_VMESS_VAR_SECURITY   6
#define NGX_STREAM_VMESS_VAR_HEADER     7
#define NGX_STREAM_VMESS_VAR_STATUS     8

#define NGX_STREAM_VMESS_LEGACY_REFRESH 10      /* seconds */
#define NGX_STREAM_VMESS_DRAIN_BUF      2048


typedef struct {
    ngx_str_t                       name;
    ngx_uint_t                      mask;
} ngx_stream_vmess_security_t;


static ngx_int_t ngx_stream_vmess_preread_handler(ngx_stream_session_t *s);
static ngx_int_t ngx_stream_vmess_log_handler(ngx_stream_session_t *s);
static ngx_int_t ngx_stream_vmess_auth(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf);
static ngx_int_t ngx_stream_vmess_header(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf);
static ngx_int_t ngx_stream_vmess_accept(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf,
    vmess_request_t *req, size_t consumed);
static ngx_int_t ngx_stream_vmess_refuse(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf,
    ngx_uint_t status, ngx_uint_t level, ngx_str_t *reason);
static void ngx_stream_vmess_drain_handler(ngx_event_t *rev);
static void ngx_stream_vmess_empty_handler(ngx_event_t *wev);
static ngx_int_t ngx_stream_vmess_resolve(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx);
static void ngx_stream_vmess_resolve_handler(ngx_resolver_ctx_t *rctx);
static ngx_int_t ngx_stream_vmess_target(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf);
static ngx_uint_t ngx_stream_vmess_private_addr4(in_addr_t addr);
static void ngx_stream_vmess_cleanup(void *data);
static ngx_int_t ngx_stream_vmess_variable(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_stream_vmess_add_variables(ngx_conf_t *cf);
static char *ngx_stream_vmess_enable(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_vmess_user(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_vmess_user_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_vmess_add_user(ngx_conf_t *cf,
    ngx_stream_vmess_srv_conf_t *vscf, ngx_str_t *field, ngx_uint_t n,
    ngx_str_t *file, ngx_uint_t line);
static char *ngx_stream_vmess_security(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_vmess_fallback(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void *ngx_stream_vmess_create_main_conf(ngx_conf_t *cf);
static void *ngx_stream_vmess_create_srv_conf(ngx_conf_t *cf);
static char *ngx_stream_vmess_merge_srv_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_stream_vmess_init_users(ngx_conf_t *cf,
    ngx_stream_vmess_srv_conf_t *vscf);
static void ngx_stream_vmess_cleanup_users(void *data);
static ngx_int_t ngx_stream_vmess_init(ngx_conf_t *cf);


static ngx_conf_num_bounds_t  ngx_stream_vmess_mux_sessions_bounds = {
    ngx_conf_check_num_bounds, 1, 65535
};


static ngx_command_t  ngx_stream_vmess_commands[] = {

    { ngx_string("vmess"),
      NGX_STREAM_SRV_CONF|NGX_CONF_FLAG,
      ngx_stream_vmess_enable,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_vmess_srv_conf_t, enable),
      NULL },

    { ngx_string("vmess_user"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE123,
      ngx_stream_vmess_user,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("vmess_user_file"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_stream_vmess_user_file,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("vmess_security"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_1MORE,
      ngx_stream_vmess_security,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_vmess_srv_conf_t, security),
      NULL },

    { ngx_string("vmess_legacy"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_vmess_srv_conf_t, legacy),
      NULL },

    { ngx_string("vmess_fallback"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_stream_vmess_fallback,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("vmess_websocket"),
      NGX_STREAM_SRV_CONF|NGX_CONF_1MORE,
      ngx_stream_vmess_websocket,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("vmess_allow_private"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_vmess_srv_conf_t, allow_private),
      NULL },

    { ngx_string("vmess_strict_nonce"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_vmess_srv_conf_t, strict_nonce),
      NULL },

    { ngx_string("vmess_mux_sessions"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_vmess_srv_conf_t, mux_sessions),
      &ngx_stream_vmess_mux_sessions_bounds },

    { ngx_string("vmess_mux_timeout"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_vmess_srv_conf_t, mux_timeout),
      NULL },

    { ngx_string("vmess_udp_timeout"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_vmess_srv_conf_t, udp_timeout),
      NULL },

    { ngx_string("vmess_zone"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_stream_vmess_zone,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_stream_module_t  ngx_stream_vmess_module_ctx = {
    ngx_stream_vmess_add_variables,        /* preconfiguration */
    ngx_stream_vmess_init,                 /* postconfiguration */

    ngx_stream_vmess_create_main_conf,     /* create main configuration */
    NULL,                                  /* init main configuration */

    ngx_stream_vmess_create_srv_conf,      /* create server configuration */
    ngx_stream_vmess_merge_srv_conf        /* merge server configuration */
};


ngx_module_t  ngx_stream_vmess_module = {
    NGX_MODULE_V1,
    &ngx_stream_vmess_module_ctx,          /* module context */
    ngx_stream_vmess_commands,             /* module directives */
    NGX_STREAM_MODULE,                     /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_stream_variable_t  ngx_stream_vmess_vars[] = {

    { ngx_string("vmess_user"), NULL, ngx_stream_vmess_variable,
      NGX_STREAM_VMESS_VAR_USER, NGX_STREAM_VAR_NOCACHEABLE, 0 },

    { ngx_string("vmess_uuid"), NULL, ngx_stream_vmess_variable,
      NGX_STREAM_VMESS_VAR_UUID, NGX_STREAM_VAR_NOCACHEABLE, 0 },

    { ngx_string("vmess_target"), NULL, ngx_stream_vmess_variable,
      NGX_STREAM_VMESS_VAR_TARGET, NGX_STREAM_VAR_NOCACHEABLE, 0 },

    { ngx_string("vmess_target_host"), NULL, ngx_stream_vmess_variable,
      NGX_STREAM_VMESS_VAR_HOST, NGX_STREAM_VAR_NOCACHEABLE, 0 },

    { ngx_string("vmess_target_port"), NULL, ngx_stream_vmess_variable,
      NGX_STREAM_VMESS_VAR_PORT, NGX_STREAM_VAR_NOCACHEABLE, 0 },

    { ngx_string("vmess_command"), NULL, ngx_stream_vmess_variable,
      NGX_STREAM_VMESS_VAR_COMMAND, NGX_STREAM_VAR_NOCACHEABLE, 0 },

    { ngx_string("vmess_security"), NULL, ngx_stream_vmess_variable,
      NGX_STREAM_VMESS_VAR_SECURITY, NGX_STREAM_VAR_NOCACHEABLE, 0 },

    { ngx_string("vmess_header"), NULL, ngx_stream_vmess_variable,
      NGX_STREAM_VMESS_VAR_HEADER, NGX_STREAM_VAR_NOCACHEABLE, 0 },

    { ngx_string("vmess_status"), NULL, ngx_stream_vmess_variable,
      NGX_STREAM_VMESS_VAR_STATUS, NGX_STREAM_VAR_NOCACHEABLE, 0 },

    { ngx_string("vmess_mux_sessions"), NULL,
      ngx_stream_vmess_mux_sessions_variable, 0,
      NGX_STREAM_VAR_NOCACHEABLE, 0 },

      ngx_stream_null_variable
};


static ngx_stream_vmess_security_t  ngx_stream_vmess_securities[] = {
    { ngx_string("aes-128-cfb"), NGX_STREAM_VMESS_SEC_CFB },
    { ngx_string("aes-128-gcm"), NGX_STREAM_VMESS_SEC_GCM },
    { ngx_string("chacha20-poly1305"), NGX_STREAM_VMESS_SEC_CHACHA },
    { ngx_string("none"), NGX_STREAM_VMESS_SEC_NONE },
    { ngx_string("zero"), NGX_STREAM_VMESS_SEC_ZERO },
    { ngx_null_string, 0 }
};


static ngx_str_t  ngx_stream_vmess_status_names[] = {
    ngx_null_string,
    ngx_string("ok"),
    ngx_string("fallback"),
    ngx_string("unknown_user"),
    ngx_string("replay"),
    ngx_string("clock_skew"),
    ngx_string("bad_header"),
    ngx_string("denied")
};


static ngx_str_t  ngx_stream_vmess_command_names[] = {
    ngx_null_string,
    ngx_string("tcp"),
    ngx_string("udp"),
    ngx_string("mux")
};


/*
 * nginx's preread checker closes a connection on EOF or preread_timeout
 * without calling the handler again, so a header that never completed is
 * reported here, when the session ends.
 */

static ngx_int_t
ngx_stream_vmess_log_handler(ngx_stream_session_t *s)
{
    size_t                   received;
    ngx_connection_t        *c;
    ngx_stream_vmess_ctx_t  *ctx;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_vmess_module);

    if (ctx == NULL
        || (ctx->state != NGX_STREAM_VMESS_AUTH
            && ctx->state != NGX_STREAM_VMESS_HEADER))
    {
        return NGX_OK;
    }

    c = s->connection;
    received = c->buffer ? (size_t) (c->buffer->last - c->buffer->start) : 0;

    ngx_log_error(NGX_LOG_INFO, c->log, 0,
                  "vmess: incomplete header, %uz bytes received", received);

    return NGX_OK;
}


static ngx_int_t
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

    if (vscf->ws) {
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
    ngx_int_t                      rc;
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

    rc = vmess_users_find_authid(vscf->users, vscf->nusers, c->buffer->pos,
                                 now, &found, &timestamp, &skew);

    if (rc == VMESS_OK) {
        ctx->user = found;
        ctx->has_user = 1;
        ctx->timestamp = timestamp;

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

        if ((time_t) now - vscf->legacy_updated
            >= NGX_STREAM_VMESS_LEGACY_REFRESH)
        {
            if (vmess_legacy_index_update(vscf->legacy_index, now)
                != VMESS_OK)
            {
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
            ctx->user = found;
            ctx->has_user = 1;
            ctx->legacy = 1;
            ctx->timestamp = timestamp;
            ctx->state = NGX_STREAM_VMESS_HEADER;

            return NGX_OK;
        }
    }

    if (rc == VMESS_ERR_CLOCK_SKEW) {
        ctx->user = found;
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


static ngx_int_t
ngx_stream_vmess_header(ngx_stream_session_t *s, ngx_stream_vmess_ctx_t *ctx,
    ngx_stream_vmess_srv_conf_t *vscf)
{
    u_char            *p, text[80];
    size_t             len, consumed;
    ngx_int_t          rc;
    ngx_str_t          reason;
    vmess_user_t      *user;
    vmess_request_t    req;
    ngx_connection_t  *c;

    c = s->connection;

    user = &vscf->users[ctx->user];
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

        p = ngx_snprintf(text, sizeof(text), "bad header: %s",
                         vmess_strerror(rc));
        reason.data = text;
        reason.len = p - text;

        return ngx_stream_vmess_refuse(s, ctx, vscf,
                                       NGX_STREAM_VMESS_ST_BAD_HEADER,
                                       NGX_LOG_INFO, &reason);
    }

    rc = ngx_stream_vmess_accept(s, ctx, vscf, &req, consumed);

    ngx_explicit_memzero(&req, sizeof(vmess_request_t));

    return rc;
}


static ngx_int_t
ngx_stream_vmess_accept(ngx_stream_session_t *s, ngx_stream_vmess_ctx_t *ctx,
    ngx_stream_vmess_srv_conf_t *vscf, vmess_request_t *req, size_t consumed)
{
    u_char                        *p, host[256], text[80];
    size_t                         len;
    unsigned                       flags;
    ngx_int_t                      rc;
    ngx_str_t                      reason;
    ngx_uint_t                     i;
    ngx_addr_t                     addr;
    vmess_session_t                sess;
    ngx_connection_t              *c;
    ngx_pool_cleanup_t            *cln;
    struct sockaddr_in            *sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6           *sin6;
#endif

    c = s->connection;

    rc = vmess_session_init(&sess, req, ctx->legacy);

    if (rc != VMESS_OK) {
        ngx_explicit_memzero(&sess, sizeof(vmess_session_t));

        p = ngx_snprintf(text, sizeof(text), "bad header: %s",
                         vmess_strerror(rc));
        reason.data = text;
        reason.len = p - text;

        return ngx_stream_vmess_refuse(s, ctx, vscf,
                                       NGX_STREAM_VMESS_ST_BAD_HEADER,
                                       NGX_LOG_INFO, &reason);
    }

    ctx->command = sess.command;
    ctx->response_v = sess.response_v;

    switch (sess.security) {

    case VMESS_SEC_AES_128_CFB:
        ctx->security = NGX_STREAM_VMESS_SEC_CFB;
        break;

    case VMESS_SEC_AES_128_GCM:
        ctx->security = NGX_STREAM_VMESS_SEC_GCM;
        break;

    case VMESS_SEC_CHACHA20_POLY1305:
        ctx->security = NGX_STREAM_VMESS_SEC_CHACHA;
        break;

    case VMESS_SEC_NONE:
        ctx->security = (sess.options & VMESS_OPT_CHUNK_STREAM)
                        ? NGX_STREAM_VMESS_SEC_NONE
                        : NGX_STREAM_VMESS_SEC_ZERO;
        break;

    default:
        ctx->security = 0;
    }

    /* the target as sent: "$vmess_target_host", "$vmess_target_port" */

    if (req->command != VMESS_CMD_MUX) {

        rc = vmess_addr_format_host(req->addr_type, req->addr, req->addr_len,
                                    (char *) host, sizeof(host), &len);

        if (rc != VMESS_OK) {
            ngx_explicit_memzero(&sess, sizeof(vmess_session_t));

            p = ngx_snprintf(text, sizeof(text), "bad header: %s",
                             vmess_strerror(rc));
            reason.data = text;
            reason.len = p - text;

            return ngx_stream_vmess_refuse(s, ctx, vscf,
                                           NGX_STREAM_VMESS_ST_BAD_HEADER,
                                           NGX_LOG_INFO, &reason);
        }

        ctx->host.data = ngx_pnalloc(c->pool, len);
        if (ctx->host.data == NULL) {
            ngx_explicit_memzero(&sess, sizeof(vmess_session_t));
            return NGX_ERROR;
        }

        ngx_memcpy(ctx->host.data, host, len);
        ctx->host.len = len;

        ctx->port = req->port;
        ngx_sprintf(ctx->port_text, "%ui%Z", (ngx_uint_t) req->port);
    }

    /* from here on the session is authenticated: no fallback, no drain */

    ctx->status = NGX_STREAM_VMESS_ST_OK;

    if (!(vscf->security & ctx->security)) {
        ngx_explicit_memzero(&sess, sizeof(vmess_session_t));

        for (i = 0; ngx_stream_vmess_securities[i].mask; i++) {
            if (ngx_stream_vmess_securities[i].mask == ctx->security) {
                break;
            }
        }

        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "vmess: security \"%V\" not allowed",
                      &ngx_stream_vmess_securities[i].name);

        ctx->status = NGX_STREAM_VMESS_ST_DENIED;
        ctx->state = NGX_STREAM_VMESS_REFUSED;

        return NGX_STREAM_FORBIDDEN;
    }

    /* body codecs, freed with the session */

    cln = ngx_pool_cleanup_add(c->pool, 0);
    if (cln == NULL) {
        ngx_explicit_memzero(&sess, sizeof(vmess_session_t));
        return NGX_ERROR;
    }

    cln->handler = ngx_stream_vmess_cleanup;
    cln->data = ctx;

    flags = vscf->strict_nonce ? VMESS_BODY_STRICT_NONCE : 0;

    rc = vmess_body_init(&ctx->dec, &sess, VMESS_DIR_REQUEST, flags);

    if (rc == VMESS_OK) {
        ctx->dec_init = 1;
        rc = vmess_body_init(&ctx->enc, &sess, VMESS_DIR_RESPONSE, flags);
    }

    ngx_explicit_memzero(&sess, sizeof(vmess_session_t));

    if (rc != VMESS_OK) {
        ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                      "vmess_body_init() failed: %s", vmess_strerror(rc));
        return NGX_ERROR;
    }

    ctx->enc_init = 1;

    if (RAND_bytes(ctx->pad, sizeof(ctx->pad)) != 1) {
        ngx_log_error(NGX_LOG_ALERT, c->log, 0, "RAND_bytes() failed");
        return NGX_ERROR;
    }

    /* consume the header: the proxy forwards only pos..last */

    c->buffer->pos += consumed;

    ngx_log_debug3(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "vmess header: %uz bytes, security %ui, options %ui",
                   consumed, ctx->security, (ngx_uint_t) req->options);

    if (req->command == VMESS_CMD_MUX) {
        /* sub-session targets come in the frames (ngx_stream_vmess_udp.c) */
        ctx->state = NGX_STREAM_VMESS_ACTIVE;
        return NGX_OK;
    }

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

        /* an IP literal sent as a name is not resolved */

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


/*
 * Input that did not authenticate: fallback (bytes untouched), or drain
 * (VMESS-SPEC.md §10.1): read and discard up to a per-server byte count
 * plus jitter, counted from the first byte, then close without a byte.
 */

static ngx_int_t
ngx_stream_vmess_refuse(ngx_stream_session_t *s, ngx_stream_vmess_ctx_t *ctx,
    ngx_stream_vmess_srv_conf_t *vscf, ngx_uint_t status, ngx_uint_t level,
    ngx_str_t *reason)
{
    size_t             n;
    uint32_t           r;
    ngx_connection_t  *c;

    c = s->connection;

    ctx->status = status;

    /* after a 101 the site cannot take the bytes: drain */

    if (vscf->fallback.len && ctx->ws == NULL) {
        ctx->state = NGX_STREAM_VMESS_FALLBACK;
        ctx->target = vscf->fallback;

        ngx_log_error(level, c->log, 0, "vmess: %V, fallback to %V",
                      reason, &vscf->fallback);

        return NGX_OK;
    }

    ctx->state = NGX_STREAM_VMESS_DRAIN;

    if (RAND_bytes((u_char *) &r, sizeof(uint32_t)) != 1) {
        r = (uint32_t) ngx_random();
    }

    ctx->drain_size = 16 + 38 + vscf->drain_base + r % vscf->drain_max;

    n = c->buffer->last - c->buffer->start;

    ngx_log_error(level, c->log, 0, "vmess: %V, drain %uz bytes",
                  reason, ctx->drain_size);

    if (n >= ctx->drain_size) {
        return NGX_STREAM_OK;
    }

    ctx->drained = n;

    /*
     * Take over the connection: the preread checker parks the session on
     * NGX_DONE and deletes its timer, so the timer is set by our handler.
     */

    c->read->handler = ngx_stream_vmess_drain_handler;
    c->write->handler = ngx_stream_vmess_empty_handler;

    ngx_post_event(c->read, &ngx_posted_events);

    return NGX_DONE;
}


static void
ngx_stream_vmess_drain_handler(ngx_event_t *rev)
{
    u_char                       buf[NGX_STREAM_VMESS_DRAIN_BUF];
    size_t                       size;
    ssize_t                      n;
    ngx_msec_t                   elapsed;
    ngx_connection_t            *c;
    ngx_stream_session_t        *s;
    ngx_stream_vmess_ctx_t      *ctx;
    ngx_stream_core_srv_conf_t  *cscf;

    c = rev->data;
    s = c->data;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_vmess_module);

    if (rev->timedout || c->close) {
        ngx_log_debug0(NGX_LOG_DEBUG_STREAM, c->log, 0,
                       "vmess drain: timed out");
        ngx_stream_finalize_session(s, NGX_STREAM_OK);
        return;
    }

    while (ctx->drained < ctx->drain_size) {

        size = ngx_min(sizeof(buf), ctx->drain_size - ctx->drained);

        n = c->recv(c, buf, size);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR || n == 0) {
            ngx_stream_finalize_session(s, NGX_STREAM_OK);
            return;
        }

        ctx->drained += n;
    }

    if (ctx->drained >= ctx->drain_size) {
        ngx_log_debug1(NGX_LOG_DEBUG_STREAM, c->log, 0,
                       "vmess drain: done, %uz bytes", ctx->drained);
        ngx_stream_finalize_session(s, NGX_STREAM_OK);
        return;
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_stream_finalize_session(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }

    if (!rev->timer_set) {
        /* the preread deadline, counted from the start of the session */

        cscf = ngx_stream_get_module_srv_conf(s, ngx_stream_core_module);

        elapsed = ngx_current_msec - ctx->start;

        if (elapsed >= cscf->preread_timeout) {
            ngx_stream_finalize_session(s, NGX_STREAM_OK);
            return;
        }

        ngx_add_timer(rev, cscf->preread_timeout - elapsed);
    }
}


static void
ngx_stream_vmess_empty_handler(ngx_event_t *wev)
{
    ngx_log_debug0(NGX_LOG_DEBUG_STREAM, wev->log, 0,
                   "vmess empty handler");
}


static ngx_int_t
ngx_stream_vmess_resolve(ngx_stream_session_t *s, ngx_stream_vmess_ctx_t *ctx)
{
    ngx_connection_t            *c;
    ngx_resolver_ctx_t          *rctx, temp;
    ngx_stream_vmess_srv_conf_t *vscf;
    ngx_stream_core_srv_conf_t  *cscf;

    c = s->connection;

    cscf = ngx_stream_get_module_srv_conf(s, ngx_stream_core_module);

    temp.name = ctx->host;

    rctx = ngx_resolve_start(cscf->resolver, &temp);
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

    /* the resolver lowercases the name in place: keep the one sent */

    rctx->name.data = ngx_pnalloc(c->pool, ctx->host.len);
    if (rctx->name.data == NULL) {
        ngx_resolve_name_done(rctx);
        return NGX_ERROR;
    }

    ngx_memcpy(rctx->name.data, ctx->host.data, ctx->host.len);
    rctx->name.len = ctx->host.len;

    rctx->handler = ngx_stream_vmess_resolve_handler;
    rctx->data = ctx;
    rctx->timeout = cscf->resolver_timeout;

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
    ngx_uint_t                    i, pick;
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

        /* the first address the policy allows, else the first one */

        pick = 0;

        if (!vscf->allow_private) {
            for (i = 0; i < rctx->naddrs; i++) {
                if (!ngx_stream_vmess_private_addr(rctx->addrs[i].sockaddr)) {
                    pick = i;
                    break;
                }
            }
        }

        ngx_memcpy(&ctx->sockaddr, rctx->addrs[pick].sockaddr,
                   rctx->addrs[pick].socklen);
        ctx->socklen = rctx->addrs[pick].socklen;
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
    u_char            *p;
    size_t             len;
    ngx_connection_t  *c;

    c = s->connection;

    ngx_inet_set_port((struct sockaddr *) &ctx->sockaddr, ctx->port);

    p = ngx_pnalloc(c->pool, NGX_STREAM_VMESS_ADDR_STRLEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    len = ngx_sock_ntop((struct sockaddr *) &ctx->sockaddr, ctx->socklen,
                        p, NGX_STREAM_VMESS_ADDR_STRLEN, 1);

    ctx->target.data = p;
    ctx->target.len = len;

    if (!vscf->allow_private
        && ngx_stream_vmess_private_addr((struct sockaddr *) &ctx->sockaddr))
    {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "vmess: destination %V denied", &ctx->target);

        ctx->status = NGX_STREAM_VMESS_ST_DENIED;
        ctx->state = NGX_STREAM_VMESS_REFUSED;

        return NGX_STREAM_FORBIDDEN;
    }

    ctx->state = NGX_STREAM_VMESS_ACTIVE;

    ngx_log_debug1(NGX_LOG_DEBUG_STREAM, c->log, 0,
                   "vmess target: \"%V\"", &ctx->target);

    return NGX_OK;
}


ngx_uint_t
ngx_stream_vmess_private_addr(struct sockaddr *sa)
{
    struct sockaddr_in   *sin;
#if (NGX_HAVE_INET6)
    u_char               *p;
    in_addr_t             a;
    struct sockaddr_in6  *sin6;
#endif

    switch (sa->sa_family) {

    case AF_INET:
        sin = (struct sockaddr_in *) sa;
        return ngx_stream_vmess_private_addr4(ntohl(sin->sin_addr.s_addr));

#if (NGX_HAVE_INET6)
    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) sa;
        p = sin6->sin6_addr.s6_addr;

        /*
         * ::/96 (::, ::1 and IPv4-compatible), ::ffff:0:0/96 (IPv4-mapped)
         * and 64:ff9b::/96 (NAT64) carry an IPv4 address
         */

        if ((ngx_memcmp(p, "\0\0\0\0\0\0\0\0\0\0", 10) == 0
             && ((p[10] == 0 && p[11] == 0)
                 || (p[10] == 0xff && p[11] == 0xff)))
            || ngx_memcmp(p, "\x00\x64\xff\x9b\0\0\0\0\0\0\0\0", 12) == 0)
        {
            a = ((in_addr_t) p[12] << 24) | ((in_addr_t) p[13] << 16)
                | ((in_addr_t) p[14] << 8) | p[15];

            return ngx_stream_vmess_private_addr4(a);
        }

        if ((p[0] & 0xfe) == 0xfc                      /* fc00::/7 */
            || (p[0] == 0xfe && (p[1] & 0xc0) == 0x80)  /* fe80::/10 */
            || (p[0] == 0xfe && (p[1] & 0xc0) == 0xc0)  /* fec0::/10 */
            || p[0] == 0xff)                            /* ff00::/8 */
        {
            return 1;
        }

        return 0;
#endif

    default:
        return 1;
    }
}


static ngx_uint_t
ngx_stream_vmess_private_addr4(in_addr_t a)
{
    return (a & 0xff000000) == 0x00000000       /* 0.0.0.0/8 */
           || (a & 0xff000000) == 0x0a000000    /* 10.0.0.0/8 */
           || (a & 0xffc00000) == 0x64400000    /* 100.64.0.0/10 */
           || (a & 0xff000000) == 0x7f000000    /* 127.0.0.0/8 */
           || (a & 0xffff0000) == 0xa9fe0000    /* 169.254.0.0/16 */
           || (a & 0xfff00000) == 0xac100000    /* 172.16.0.0/12 */
           || (a & 0xffff0000) == 0xc0a80000    /* 192.168.0.0/16 */
           || (a & 0xf0000000) == 0xe0000000    /* 224.0.0.0/4 */
           || (a & 0xf0000000) == 0xf0000000;   /* 240.0.0.0/4 */
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
}


static ngx_int_t
ngx_stream_vmess_variable(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data)
{
    ngx_uint_t                     i;
    ngx_str_t                     *value;
    ngx_stream_vmess_ctx_t        *ctx;
    ngx_stream_vmess_srv_conf_t   *vscf;
    ngx_stream_vmess_user_conf_t  *uc;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_vmess_module);

    if (ctx == NULL || ctx->status == NGX_STREAM_VMESS_ST_NONE) {
        v->not_found = 1;
        return NGX_OK;
    }

    value = NULL;

    switch (data) {

    case NGX_STREAM_VMESS_VAR_USER:
    case NGX_STREAM_VMESS_VAR_UUID:

        if (!ctx->has_user) {
            break;
        }

        vscf = ngx_stream_get_module_srv_conf(s, ngx_stream_vmess_module);
        uc = vscf->users[ctx->user].data;

        value = (data == NGX_STREAM_VMESS_VAR_USER) ? &uc->name : &uc->uuid;
        break;

    case NGX_STREAM_VMESS_VAR_TARGET:
        value = &ctx->target;
        break;

    case NGX_STREAM_VMESS_VAR_HOST:
        value = &ctx->host;
        break;

    case NGX_STREAM_VMESS_VAR_PORT:

        if (ctx->host.len) {
            v->len = ngx_strlen(ctx->port_text);
            v->data = ctx->port_text;
            goto found;
        }

        break;

    case NGX_STREAM_VMESS_VAR_COMMAND:

        if (ctx->command && ctx->command <= VMESS_CMD_MUX) {
            value = &ngx_stream_vmess_command_names[ctx->command];
        }

        break;

    case NGX_STREAM_VMESS_VAR_SECURITY:

        for (i = 0; ngx_stream_vmess_securities[i].mask; i++) {
            if (ngx_stream_vmess_securities[i].mask == ctx->security) {
                value = &ngx_stream_vmess_securities[i].name;
                break;
            }
        }

        break;

    case NGX_STREAM_VMESS_VAR_HEADER:

        if (ctx->status == NGX_STREAM_VMESS_ST_OK
            || ctx->status == NGX_STREAM_VMESS_ST_DENIED
            || ctx->status == NGX_STREAM_VMESS_ST_BAD_HEADER
            || ctx->status == NGX_STREAM_VMESS_ST_REPLAY)
        {
            if (ctx->has_user) {
                v->len = ctx->legacy ? 6 : 4;
                v->data = (u_char *) (ctx->legacy ? "legacy" : "aead");
                goto found;
            }
        }

        break;

    default: /* NGX_STREAM_VMESS_VAR_STATUS */
        value = &ngx_stream_vmess_status_names[ctx->status];
        break;
    }

    if (value == NULL || value->len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = value->len;
    v->data = value->data;

found:

    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_stream_vmess_add_variables(ngx_conf_t *cf)
{
    ngx_stream_variable_t  *var, *v;

    for (v = ngx_stream_vmess_vars; v->name.len; v++) {
        var = ngx_stream_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static char *
ngx_stream_vmess_enable(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_vmess_srv_conf_t  *vscf = conf;

    char  *rv;

    rv = ngx_conf_set_flag_slot(cf, cmd, conf);

    if (rv != NGX_CONF_OK) {
        return rv;
    }

    vscf->file = cf->conf_file->file.name;
    vscf->line = cf->conf_file->line;

    return NGX_CONF_OK;
}


static char *
ngx_stream_vmess_user(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_vmess_srv_conf_t  *vscf = conf;

    ngx_str_t  *value;

    value = cf->args->elts;

    return ngx_stream_vmess_add_user(cf, vscf, &value[1],
                                     cf->args->nelts - 1, NULL, 0);
}


static char *
ngx_stream_vmess_user_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_vmess_srv_conf_t  *vscf = conf;

    u_char           *p, *last, *eol;
    char             *rv;
    off_t             size;
    ssize_t           n;
    ngx_str_t        *value, name, field[4];
    ngx_uint_t        line, nf;
    ngx_file_t        file;
    ngx_file_info_t   fi;

    value = cf->args->elts;
    name = value[1];

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));

    file.name = name;
    file.log = cf->log;

    file.fd = ngx_open_file(name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (file.fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%V\" failed", &name);
        return NGX_CONF_ERROR;
    }

    rv = NGX_CONF_ERROR;
    p = NULL;
    size = 0;

    if (ngx_fd_info(file.fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_fd_info_n " \"%V\" failed", &name);
        goto done;
    }

    size = ngx_file_size(&fi);

    if (size > 0) {
        p = ngx_pnalloc(cf->temp_pool, (size_t) size);
        if (p == NULL) {
            goto done;
        }

        n = ngx_read_file(&file, p, (size_t) size, 0);

        if (n == NGX_ERROR) {
            goto done;
        }

        if (n != size) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               ngx_read_file_n " \"%V\" returned only "
                               "%z bytes instead of %O", &name, n, size);
            goto done;
        }
    }

    last = p + size;
    line = 0;

    while (p < last) {

        line++;

        eol = ngx_strlchr(p, last, '\n');
        if (eol == NULL) {
            eol = last;
        }

        /* split into fields; '#' starts a comment */

        nf = 0;

        while (p < eol) {

            if (*p == ' ' || *p == '\t' || *p == '\r') {
                p++;
                continue;
            }

            if (*p == '#') {
                break;
            }

            if (nf == 4) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "too many fields in %V:%ui",
                                   &name, line);
                goto done;
            }

            field[nf].data = p;

            while (p < eol && *p != ' ' && *p != '\t' && *p != '\r'
                   && *p != '#')
            {
                p++;
            }

            field[nf].len = p - field[nf].data;
            nf++;
        }

        p = eol + 1;

        if (nf == 0) {
            continue;
        }

        if (nf > 3) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "too many fields in %V:%ui", &name, line);
            goto done;
        }

        if (ngx_stream_vmess_add_user(cf, vscf, field, nf, &name, line)
            != NGX_CONF_OK)
        {
            goto done;
        }
    }

    rv = NGX_CONF_OK;

done:

    if (ngx_close_file(file.fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, cf->log, ngx_errno,
                      ngx_close_file_n " \"%V\" failed", &name);
    }

    return rv;
}


/* "uuid [email] [alter_id=n]", from the directive or a line of a file */

static char *
ngx_stream_vmess_add_user(ngx_conf_t *cf, ngx_stream_vmess_srv_conf_t *vscf,
    ngx_str_t *field, ngx_uint_t n, ngx_str_t *file, ngx_uint_t line)
{
    u_char                        *p;
    char                           uuid[37];
    ngx_int_t                      alter;
    ngx_str_t                      email, where, *bad;
    ngx_uint_t                     i;
    ngx_stream_vmess_user_conf_t  *uc;

    ngx_str_null(&email);
    ngx_str_null(&where);
    alter = 0;
    bad = NULL;

    if (file) {
        where.len = sizeof(" in :") - 1 + file->len + NGX_INT_T_LEN;
        where.data = ngx_pnalloc(cf->temp_pool, where.len);
        if (where.data == NULL) {
            return NGX_CONF_ERROR;
        }

        p = ngx_sprintf(where.data, " in %V:%ui", file, line);
        where.len = p - where.data;
    }

    if (vscf->user_confs == NULL) {
        vscf->user_confs = ngx_array_create(cf->pool, 4,
                                       sizeof(ngx_stream_vmess_user_conf_t));
        if (vscf->user_confs == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    uc = ngx_array_push(vscf->user_confs);
    if (uc == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(uc, sizeof(ngx_stream_vmess_user_conf_t));

    if (vmess_uuid_parse((char *) field[0].data, field[0].len, uc->id)
        != VMESS_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid UUID \"%V\"%V",
                           &field[0], &where);
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < n; i++) {

        if (field[i].len > 9
            && ngx_strncmp(field[i].data, "alter_id=", 9) == 0)
        {
            alter = ngx_atoi(field[i].data + 9, field[i].len - 9);

            if (alter == NGX_ERROR || alter > 65535) {
                bad = &field[i];
                break;
            }

            continue;
        }

        if (i == 1 && field[i].len <= 255) {
            email = field[i];
            continue;
        }

        bad = &field[i];
        break;
    }

    if (bad) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"%V", bad, &where);
        return NGX_CONF_ERROR;
    }

    vmess_uuid_format(uc->id, uuid);

    uc->uuid.len = 36;
    uc->uuid.data = ngx_pnalloc(cf->pool, 36);
    if (uc->uuid.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(uc->uuid.data, uuid, 36);

    if (email.len) {
        uc->name.data = ngx_pstrdup(cf->pool, &email);
        if (uc->name.data == NULL) {
            return NGX_CONF_ERROR;
        }

        uc->name.len = email.len;

    } else {
        uc->name = uc->uuid;
    }

    uc->alter_ids = (ngx_uint_t) alter;

    return NGX_CONF_OK;
}


static char *
ngx_stream_vmess_security(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_vmess_srv_conf_t  *vscf = conf;

    ngx_str_t   *value;
    ngx_uint_t   i, j;

    if (vscf->security != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    vscf->security = 0;

    for (i = 1; i < cf->args->nelts; i++) {

        for (j = 0; ngx_stream_vmess_securities[j].mask; j++) {
            if (value[i].len == ngx_stream_vmess_securities[j].name.len
                && ngx_strncmp(value[i].data,
                               ngx_stream_vmess_securities[j].name.data,
                               value[i].len) == 0)
            {
                break;
            }
        }

        if (ngx_stream_vmess_securities[j].mask == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "unknown security \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        vscf->security |= ngx_stream_vmess_securities[j].mask;
    }

    return NGX_CONF_OK;
}


static char *
ngx_stream_vmess_fallback(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_vmess_srv_conf_t  *vscf = conf;

    ngx_url_t   u;
    ngx_str_t  *value;

    if (vscf->fallback.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = value[1];
    u.no_resolve = 1;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in \"vmess_fallback\" address \"%V\"",
                               u.err, &u.url);
        }

        return NGX_CONF_ERROR;
    }

    if (u.family != AF_UNIX && u.no_port) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "no port in \"vmess_fallback\" address \"%V\"",
                           &u.url);
        return NGX_CONF_ERROR;
    }

    vscf->fallback = value[1];

    return NGX_CONF_OK;
}


static void *
ngx_stream_vmess_create_main_conf(ngx_conf_t *cf)
{
    ngx_stream_vmess_main_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_stream_vmess_main_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->shm_zone = NULL;
     */

    return conf;
}


static void *
ngx_stream_vmess_create_srv_conf(ngx_conf_t *cf)
{
    ngx_stream_vmess_srv_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_stream_vmess_srv_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->user_confs = NULL;
     *     conf->fallback = { 0, NULL };
     *     conf->users = NULL;
     *     conf->nusers = 0;
     *     conf->legacy_index = NULL;
     *     conf->legacy_updated = 0;
     *     conf->file = { 0, NULL };
     */

    conf->enable = NGX_CONF_UNSET;
    conf->legacy = NGX_CONF_UNSET;
    conf->allow_private = NGX_CONF_UNSET;
    conf->strict_nonce = NGX_CONF_UNSET;
    conf->security = NGX_CONF_UNSET_UINT;
    conf->mux_sessions = NGX_CONF_UNSET_UINT;
    conf->mux_timeout = NGX_CONF_UNSET_MSEC;
    conf->udp_timeout = NGX_CONF_UNSET_MSEC;

    return conf;
}


static char *
ngx_stream_vmess_merge_srv_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_stream_vmess_srv_conf_t *prev = parent;
    ngx_stream_vmess_srv_conf_t *conf = child;

    ngx_stream_vmess_main_conf_t  *vmcf;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_value(conf->legacy, prev->legacy, 0);
    ngx_conf_merge_value(conf->allow_private, prev->allow_private, 0);
    ngx_conf_merge_value(conf->strict_nonce, prev->strict_nonce, 0);
    ngx_conf_merge_uint_value(conf->security, prev->security,
                              NGX_STREAM_VMESS_SEC_ALL);
    ngx_conf_merge_str_value(conf->fallback, prev->fallback, "");
    ngx_conf_merge_uint_value(conf->mux_sessions, prev->mux_sessions, 128);
    ngx_conf_merge_msec_value(conf->mux_timeout, prev->mux_timeout, 300000);
    ngx_conf_merge_msec_value(conf->udp_timeout, prev->udp_timeout, 60000);

    if (conf->user_confs == NULL) {
        conf->user_confs = prev->user_confs;
    }

    if (!conf->enable) {
        return NGX_CONF_OK;
    }

    vmcf = ngx_stream_conf_get_module_main_conf(cf, ngx_stream_vmess_module);

    if (vmcf->shm_zone == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"vmess_zone\" is not defined for \"vmess\" in %V:%ui",
                      &conf->file, conf->line);
        return NGX_CONF_ERROR;
    }

    if (conf->user_confs == NULL || conf->user_confs->nelts == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "no \"vmess_user\" is defined for \"vmess\" in %V:%ui",
                      &conf->file, conf->line);
        return NGX_CONF_ERROR;
    }

    return ngx_stream_vmess_init_users(cf, conf);
}


/*
 * The user table of a "vmess on" server, its legacy index, and the drain
 * size (VMESS-SPEC.md §10.1): base in 0..3265 and max in 1..64, derived
 * from the users' IDs with HMAC-SHA256, constant for a given user set.
 */

static char *
ngx_stream_vmess_init_users(ngx_conf_t *cf, ngx_stream_vmess_srv_conf_t *vscf)
{
    u_char                        *ids, md[EVP_MAX_MD_SIZE];
    void                          *mem;
    size_t                         size;
    uint32_t                       base, max;
    ngx_uint_t                     i, j, n;
    unsigned int                   mdlen;
    ngx_pool_cleanup_t            *cln;
    ngx_stream_vmess_user_conf_t  *uc;

    static u_char  drain_key[] = "VMESSBSKDF drain";

    uc = vscf->user_confs->elts;
    n = vscf->user_confs->nelts;

    for (i = 0; i < n; i++) {
        for (j = i + 1; j < n; j++) {
            if (ngx_memcmp(uc[i].id, uc[j].id, 16) == 0) {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "duplicate UUID \"%V\" for \"vmess\" "
                              "in %V:%ui", &uc[j].uuid, &vscf->file,
                              vscf->line);
                return NGX_CONF_ERROR;
            }
        }
    }

    vscf->users = ngx_pcalloc(cf->pool, n * sizeof(vmess_user_t));
    if (vscf->users == NULL) {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_stream_vmess_cleanup_users;
    cln->data = vscf;

    ids = ngx_pnalloc(cf->temp_pool, n * 16);
    if (ids == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < n; i++) {
        if (vmess_user_init(&vscf->users[i], uc[i].id,
                            (uint16_t) uc[i].alter_ids, &uc[i])
            != VMESS_OK)
        {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "vmess_user_init() failed");
            return NGX_CONF_ERROR;
        }

        vscf->nusers++;

        ngx_memcpy(ids + i * 16, uc[i].id, 16);
    }

    if (HMAC(EVP_sha256(), drain_key, sizeof(drain_key) - 1, ids, n * 16,
             md, &mdlen)
        == NULL)
    {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "HMAC() failed");
        return NGX_CONF_ERROR;
    }

    base = ((uint32_t) md[0] << 24) | ((uint32_t) md[1] << 16)
           | ((uint32_t) md[2] << 8) | md[3];
    max = ((uint32_t) md[4] << 24) | ((uint32_t) md[5] << 16)
          | ((uint32_t) md[6] << 8) | md[7];

    vscf->drain_base = base % 3266;
    vscf->drain_max = max % 64 + 1;

    if (!vscf->legacy) {
        return NGX_CONF_OK;
    }

    size = vmess_legacy_index_size(vscf->users, n);

    mem = ngx_palloc(cf->pool, size);
    if (mem == NULL) {
        return NGX_CONF_ERROR;
    }

    vscf->legacy_index = vmess_legacy_index_init(mem, size, vscf->users, n);

    if (vscf->legacy_index == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "vmess_legacy_index_init() failed");
        return NGX_CONF_ERROR;
    }

    /* refreshed by the preread handler at first use */
    vscf->legacy_updated = 0;

    return NGX_CONF_OK;
}


static void
ngx_stream_vmess_cleanup_users(void *data)
{
    ngx_stream_vmess_srv_conf_t  *vscf = data;

    ngx_uint_t  i;

    for (i = 0; i < vscf->nusers; i++) {
        vmess_user_free(&vscf->users[i]);
    }

    vscf->nusers = 0;
}


static ngx_int_t
ngx_stream_vmess_init(ngx_conf_t *cf)
{
    ngx_uint_t                     i;
    ngx_stream_handler_pt         *h;
    ngx_stream_core_srv_conf_t   **cscfp;
    ngx_stream_core_main_conf_t   *cmcf;
    ngx_stream_vmess_srv_conf_t   *vscf;

    cmcf = ngx_stream_conf_get_module_main_conf(cf, ngx_stream_core_module);

    /* no handler and no filter unless a server has "vmess on" */

    cscfp = cmcf->servers.elts;

    for (i = 0; i < cmcf->servers.nelts; i++) {
        vscf = cscfp[i]->ctx->srv_conf[ngx_stream_vmess_module.ctx_index];

        if (vscf->enable == 1) {
            break;
        }
    }

    if (i == cmcf->servers.nelts) {
        /* "proxy_vmess" alone: nginx as a VMess client */

        if (ngx_stream_vmess_proxy_init(cf, 0) != NGX_OK) {
            return NGX_ERROR;
        }

        return ngx_stream_vmess_proxy_init(cf, 1);
    }

    h = ngx_array_push(&cmcf->phases[NGX_STREAM_PREREAD_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_stream_vmess_preread_handler;

    h = ngx_array_push(&cmcf->phases[NGX_STREAM_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_stream_vmess_log_handler;

    if (ngx_stream_vmess_own_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    /* the chain: outbound open, inbound, outbound seal, write */

    if (ngx_stream_vmess_proxy_init(cf, 0) != NGX_OK
        || ngx_stream_vmess_filter_init(cf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_stream_vmess_proxy_init(cf, 1);
}
