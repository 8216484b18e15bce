/*
 * ngx_stream_vmess_proxy_module: VMess outbound ("proxy_vmess"), its
 * directives and configuration.
 *
 * The session's upstream (a proxy_pass peer, usually one of an upstream{}
 * pool of VMess servers) speaks VMess: the bytes nginx would send it are
 * sealed into a request (AEAD header with the first bytes, then chunks),
 * and its reply is opened (response header verified, then chunks); the
 * filters that do it are in ngx_stream_vmess_proxy_filter.c.
 */

#include "ngx_stream_vmess_module.h"


static ngx_int_t ngx_stream_vmess_proxy_preread(ngx_stream_session_t *s);
static void ngx_stream_vmess_proxy_user_cleanup(void *data);
static char *ngx_stream_vmess_proxy_security(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static void *ngx_stream_vmess_proxy_create_srv_conf(ngx_conf_t *cf);
static char *ngx_stream_vmess_proxy_merge_srv_conf(ngx_conf_t *cf,
    void *parent, void *child);


static ngx_stream_vmess_proxy_sec_t  ngx_stream_vmess_proxy_secs[] = {
    { ngx_string("aes-128-gcm"), VMESS_SEC_AES_128_GCM,
      VMESS_OPT_CHUNK_STREAM | VMESS_OPT_CHUNK_MASKING
      | VMESS_OPT_GLOBAL_PADDING },
    { ngx_string("chacha20-poly1305"), VMESS_SEC_CHACHA20_POLY1305,
      VMESS_OPT_CHUNK_STREAM | VMESS_OPT_CHUNK_MASKING
      | VMESS_OPT_GLOBAL_PADDING },
    { ngx_string("none"), VMESS_SEC_NONE,
      VMESS_OPT_CHUNK_STREAM | VMESS_OPT_CHUNK_MASKING },
    { ngx_string("zero"), VMESS_SEC_NONE, 0 },
    { ngx_string("aes-128-cfb"), VMESS_SEC_AES_128_CFB,
      VMESS_OPT_CHUNK_STREAM },
    { ngx_null_string, 0, 0 }
};


static ngx_command_t  ngx_stream_vmess_proxy_commands[] = {

    { ngx_string("proxy_vmess"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_vmess_proxy_srv_conf_t, enable),
      NULL },

    { ngx_string("proxy_vmess_user"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_vmess_proxy_srv_conf_t, uuid),
      NULL },

    { ngx_string("proxy_vmess_security"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_stream_vmess_proxy_security,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("proxy_vmess_target"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_stream_set_complex_value_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_vmess_proxy_srv_conf_t, target),
      NULL },

      ngx_null_command
};


static ngx_stream_module_t  ngx_stream_vmess_proxy_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration: see
                                              ngx_stream_vmess_init() */
    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    ngx_stream_vmess_proxy_create_srv_conf, /* create server configuration */
    ngx_stream_vmess_proxy_merge_srv_conf  /* merge server configuration */
};


ngx_module_t  ngx_stream_vmess_proxy_module = {
    NGX_MODULE_V1,
    &ngx_stream_vmess_proxy_module_ctx,    /* module context */
    ngx_stream_vmess_proxy_commands,       /* module directives */
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


/*
 * An empty preread buffer makes the proxy call the filter right after
 * connecting, so the request header leaves at once even when the client
 * waits for the server to speak first.
 */

static ngx_int_t
ngx_stream_vmess_proxy_preread(ngx_stream_session_t *s)
{
    ngx_connection_t                   *c;
    ngx_stream_core_srv_conf_t         *cscf;
    ngx_stream_vmess_proxy_srv_conf_t  *pscf;

    c = s->connection;

    pscf = ngx_stream_get_module_srv_conf(s, ngx_stream_vmess_proxy_module);

    if (!pscf->enable || c->buffer || c->type != SOCK_STREAM) {
        return NGX_DECLINED;
    }

    cscf = ngx_stream_get_module_srv_conf(s, ngx_stream_core_module);

    c->buffer = ngx_create_temp_buf(c->pool, cscf->preread_buffer_size);
    if (c->buffer == NULL) {
        return NGX_ERROR;
    }

    return NGX_DECLINED;
}


static void
ngx_stream_vmess_proxy_user_cleanup(void *data)
{
    vmess_user_t  *user = data;

    vmess_user_free(user);
}


static char *
ngx_stream_vmess_proxy_security(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_stream_vmess_proxy_srv_conf_t  *pscf = conf;

    ngx_str_t                     *value;
    ngx_stream_vmess_proxy_sec_t  *sec;

    if (pscf->sec != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (sec = ngx_stream_vmess_proxy_secs; sec->name.len; sec++) {
        if (sec->name.len == value[1].len
            && ngx_strncmp(sec->name.data, value[1].data, value[1].len) == 0)
        {
            pscf->sec = sec;
            return NGX_CONF_OK;
        }
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid proxy_vmess_security \"%V\"", &value[1]);

    return NGX_CONF_ERROR;
}


static void *
ngx_stream_vmess_proxy_create_srv_conf(ngx_conf_t *cf)
{
    ngx_stream_vmess_proxy_srv_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_stream_vmess_proxy_srv_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->uuid = { 0, NULL };
     *     conf->user = NULL;
     */

    conf->enable = NGX_CONF_UNSET;
    conf->sec = NGX_CONF_UNSET_PTR;
    conf->target = NGX_CONF_UNSET_PTR;

    return conf;
}


static char *
ngx_stream_vmess_proxy_merge_srv_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_stream_vmess_proxy_srv_conf_t  *prev = parent;
    ngx_stream_vmess_proxy_srv_conf_t  *conf = child;

    u_char                              id[16], *stat_id;
    ngx_pool_cleanup_t                 *cln;
    ngx_stream_compile_complex_value_t  ccv;

    static ngx_str_t  default_target = ngx_string("$vmess_target");

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_str_value(conf->uuid, prev->uuid, "");

    /* aes-128-gcm, with the options v2ray sends */
    ngx_conf_merge_ptr_value(conf->sec, prev->sec,
                             &ngx_stream_vmess_proxy_secs[0]);
    ngx_conf_merge_ptr_value(conf->target, prev->target, NULL);

    if (!conf->enable) {
        return NGX_CONF_OK;
    }

    if (conf->target == NULL) {
        conf->target = ngx_palloc(cf->pool,
                                  sizeof(ngx_stream_complex_value_t));
        if (conf->target == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(&ccv, sizeof(ngx_stream_compile_complex_value_t));

        ccv.cf = cf;
        ccv.value = &default_target;
        ccv.complex_value = conf->target;

        if (ngx_stream_compile_complex_value(&ccv) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    if (conf->uuid.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"proxy_vmess\" requires \"proxy_vmess_user\"");
        return NGX_CONF_ERROR;
    }

    if (vmess_uuid_parse((char *) conf->uuid.data, conf->uuid.len, id)
        != VMESS_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid proxy_vmess_user \"%V\"", &conf->uuid);
        return NGX_CONF_ERROR;
    }

    conf->user = ngx_pcalloc(cf->pool, sizeof(vmess_user_t));
    if (conf->user == NULL) {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    if (vmess_user_init(conf->user, id, 0, NULL) != VMESS_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "vmess_user_init() failed");
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_stream_vmess_proxy_user_cleanup;
    cln->data = conf->user;

    stat_id = ngx_pnalloc(cf->pool, 16);
    if (stat_id == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(stat_id, id, 16);

    if (ngx_stream_vmess_stats_outbound(cf, stat_id, &conf->uuid, &conf->stat)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * Called from ngx_stream_vmess_init(): upper == 0 before the inbound
 * filter is installed (proxy_seal ends up below it), upper == 1 after
 * (proxy_open ends up above it).  Nothing is installed unless a server
 * has "proxy_vmess on".
 */

ngx_int_t
ngx_stream_vmess_proxy_init(ngx_conf_t *cf, ngx_uint_t upper)
{
    ngx_uint_t                          i;
    ngx_stream_handler_pt              *h;
    ngx_stream_core_srv_conf_t        **cscfp;
    ngx_stream_core_main_conf_t        *cmcf;
    ngx_stream_vmess_proxy_srv_conf_t  *pscf;

    cmcf = ngx_stream_conf_get_module_main_conf(cf, ngx_stream_core_module);

    cscfp = cmcf->servers.elts;

    for (i = 0; i < cmcf->servers.nelts; i++) {
        pscf = cscfp[i]->ctx->srv_conf[
                                    ngx_stream_vmess_proxy_module.ctx_index];

        if (pscf->enable == 1) {
            break;
        }
    }

    if (i == cmcf->servers.nelts) {
        return NGX_OK;
    }

    if (upper) {
        return ngx_stream_vmess_proxy_filter_init(cf, 1);
    }

    h = ngx_array_push(&cmcf->phases[NGX_STREAM_PREREAD_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_stream_vmess_proxy_preread;

    return ngx_stream_vmess_proxy_filter_init(cf, 0);
}
