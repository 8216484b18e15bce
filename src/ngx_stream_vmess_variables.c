/*
 * ngx_stream_vmess_module: the embedded variables ($vmess_*).
 */

#include "ngx_stream_vmess_module.h"


/* the data of ngx_stream_vmess_variable(): its index in the names */
#define NGX_STREAM_VMESS_VAR_USER       0
#define NGX_STREAM_VMESS_VAR_UUID       1
#define NGX_STREAM_VMESS_VAR_TARGET     2
#define NGX_STREAM_VMESS_VAR_HOST       3
#define NGX_STREAM_VMESS_VAR_PORT       4
#define NGX_STREAM_VMESS_VAR_COMMAND    5
#define NGX_STREAM_VMESS_VAR_SECURITY   6
#define NGX_STREAM_VMESS_VAR_HEADER     7
#define NGX_STREAM_VMESS_VAR_STATUS     8
#define NGX_STREAM_VMESS_VAR_DYNAMIC    9


static ngx_int_t ngx_stream_vmess_variable(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_stream_vmess_udp_dropped_variable(
    ngx_stream_session_t *s, ngx_stream_variable_value_t *v, uintptr_t data);


static ngx_str_t  ngx_stream_vmess_variable_names[] = {
    ngx_string("vmess_user"),
    ngx_string("vmess_uuid"),
    ngx_string("vmess_target"),
    ngx_string("vmess_target_host"),
    ngx_string("vmess_target_port"),
    ngx_string("vmess_command"),
    ngx_string("vmess_security"),
    ngx_string("vmess_header"),
    ngx_string("vmess_status"),
    ngx_string("vmess_dynamic_port")
};


static ngx_str_t  ngx_stream_vmess_mux_sessions_name =
    ngx_string("vmess_mux_sessions");

static ngx_str_t  ngx_stream_vmess_udp_dropped_name =
    ngx_string("vmess_udp_dropped");


static ngx_str_t  ngx_stream_vmess_status_names[] = {
    ngx_null_string,
    ngx_string("ok"),
    ngx_string("fallback"),
    ngx_string("unknown_user"),
    ngx_string("replay"),
    ngx_string("clock_skew"),
    ngx_string("bad_header"),
    ngx_string("denied"),
    ngx_string("expired")
};


static ngx_str_t  ngx_stream_vmess_command_names[] = {
    ngx_null_string,
    ngx_string("tcp"),
    ngx_string("udp"),
    ngx_string("mux")
};


static ngx_int_t
ngx_stream_vmess_variable(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                     *value;
    ngx_stream_vmess_ctx_t        *ctx;
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

        uc = ctx->vuser->data;

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
        value = ngx_stream_vmess_security_name(ctx->security);
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

    case NGX_STREAM_VMESS_VAR_DYNAMIC:

        if (ctx->dynamic_port == 0) {
            break;
        }

        v->data = ngx_pnalloc(s->connection->pool, sizeof("65535") - 1);
        if (v->data == NULL) {
            return NGX_ERROR;
        }

        v->len = ngx_sprintf(v->data, "%d", (int) ctx->dynamic_port)
                 - v->data;
        goto found;

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


ngx_int_t
ngx_stream_vmess_add_variables(ngx_conf_t *cf)
{
    ngx_uint_t              i;
    ngx_stream_variable_t  *var;

    for (i = 0; i < sizeof(ngx_stream_vmess_variable_names)
                    / sizeof(ngx_str_t); i++)
    {
        var = ngx_stream_add_variable(cf, &ngx_stream_vmess_variable_names[i],
                                      NGX_STREAM_VAR_NOCACHEABLE);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = ngx_stream_vmess_variable;
        var->data = i;
    }

    var = ngx_stream_add_variable(cf, &ngx_stream_vmess_mux_sessions_name,
                                  NGX_STREAM_VAR_NOCACHEABLE);
    if (var == NULL) {
        return NGX_ERROR;
    }

    var->get_handler = ngx_stream_vmess_mux_sessions_variable;

    var = ngx_stream_add_variable(cf, &ngx_stream_vmess_udp_dropped_name,
                                  NGX_STREAM_VAR_NOCACHEABLE);
    if (var == NULL) {
        return NGX_ERROR;
    }

    var->get_handler = ngx_stream_vmess_udp_dropped_variable;

    return NGX_OK;
}


/* datagrams a UDP or mux session dropped; not found for other sessions */

static ngx_int_t
ngx_stream_vmess_udp_dropped_variable(ngx_stream_session_t *s,
    ngx_stream_variable_value_t *v, uintptr_t data)
{
    u_char                  *p;
    ngx_stream_vmess_ctx_t  *ctx;

    ctx = ngx_stream_get_module_ctx(s, ngx_stream_vmess_module);

    if (ctx == NULL || ctx->own == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(s->connection->pool, NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->len = ngx_sprintf(p, "%ui", ngx_stream_vmess_udp_dropped(ctx->own))
             - p;
    v->data = p;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


/* a $vmess_status value by its number, "none" for no status */

ngx_str_t *
ngx_stream_vmess_status_name(ngx_uint_t status)
{
    static ngx_str_t  none = ngx_string("none");

    if (status == NGX_STREAM_VMESS_ST_NONE || status >= NGX_STREAM_VMESS_ST_N) {
        return &none;
    }

    return &ngx_stream_vmess_status_names[status];
}
