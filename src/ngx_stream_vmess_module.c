/*
 * ngx_stream_vmess_module: the module, its directives and configuration.
 *
 * Postconfiguration hooks the module into nginx only where a server has
 * "vmess on": the preread and log phase handlers
 * (ngx_stream_vmess_preread.c), a content handler in front of the
 * server's own (ngx_stream_vmess_content.c) and the stream filters
 * (ngx_stream_vmess_filter.c, ngx_stream_vmess_proxy.c).  src/README
 * shows how a session passes through the files.
 */

#include "ngx_stream_vmess_module.h"


static char *ngx_stream_vmess_enable(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_vmess_security(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_vmess_fallback(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void *ngx_stream_vmess_create_main_conf(ngx_conf_t *cf);
static void *ngx_stream_vmess_create_srv_conf(ngx_conf_t *cf);
static char *ngx_stream_vmess_merge_srv_conf(ngx_conf_t *cf, void *parent,
    void *child);
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
      ngx_stream_vmess_transport,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_vmess_srv_conf_t, ws),
      NULL },

    { ngx_string("vmess_httpupgrade"),
      NGX_STREAM_SRV_CONF|NGX_CONF_1MORE,
      ngx_stream_vmess_transport,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_vmess_srv_conf_t, httpupgrade),
      NULL },

    { ngx_string("vmess_dynamic_port"),
      NGX_STREAM_SRV_CONF|NGX_CONF_1MORE,
      ngx_stream_vmess_dynamic_port,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("vmess_allow_private"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_vmess_srv_conf_t, allow_private),
      NULL },

    { ngx_string("vmess_allow"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_stream_vmess_policy_rule,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("vmess_deny"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_stream_vmess_policy_rule,
      NGX_STREAM_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("vmess_strict_nonce"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_vmess_srv_conf_t, strict_nonce),
      NULL },

    { ngx_string("vmess_stats"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_vmess_srv_conf_t, stats_enable),
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

    { ngx_string("vmess_mux_stall_timeout"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_vmess_srv_conf_t, mux_stall_timeout),
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
ngx_stream_vmess_security(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_vmess_srv_conf_t  *vscf = conf;

    ngx_str_t   *value;
    ngx_uint_t   i, mask;

    if (vscf->security != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    vscf->security = 0;

    for (i = 1; i < cf->args->nelts; i++) {

        mask = ngx_stream_vmess_security_mask(&value[i]);

        if (mask == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "unknown security \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        vscf->security |= mask;
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
     *     conf->dynamics = NULL;
     */

    if (ngx_array_init(&conf->stats, cf->pool, 16,
                       sizeof(ngx_stream_vmess_stat_t *))
        != NGX_OK
        || ngx_array_init(&conf->servers, cf->pool, 4,
                          sizeof(ngx_stream_vmess_srv_conf_t *))
           != NGX_OK)
    {
        return NULL;
    }

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
     *     conf->rules = NULL;
     *     conf->fallback = { 0, NULL };
     *     conf->users = NULL;
     *     conf->nusers = 0;
     *     conf->legacy_index = NULL;
     *     conf->legacy_updated = 0;
     *     conf->dynamic = NULL;
     *     conf->detour = NULL;
     *     conf->file = { 0, NULL };
     *     conf->stats = NULL;
     *     conf->server_sh = NULL;
     *     conf->label = { 0, NULL };
     */

    conf->enable = NGX_CONF_UNSET;
    conf->legacy = NGX_CONF_UNSET;
    conf->allow_private = NGX_CONF_UNSET;
    conf->strict_nonce = NGX_CONF_UNSET;
    conf->stats_enable = NGX_CONF_UNSET;
    conf->security = NGX_CONF_UNSET_UINT;
    conf->mux_sessions = NGX_CONF_UNSET_UINT;
    conf->mux_timeout = NGX_CONF_UNSET_MSEC;
    conf->mux_stall_timeout = NGX_CONF_UNSET_MSEC;
    conf->udp_timeout = NGX_CONF_UNSET_MSEC;

    return conf;
}


static char *
ngx_stream_vmess_merge_srv_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_stream_vmess_srv_conf_t *prev = parent;
    ngx_stream_vmess_srv_conf_t *conf = child;

    ngx_stream_vmess_ws_conf_t    *wscf;
    ngx_stream_vmess_main_conf_t  *vmcf;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_value(conf->legacy, prev->legacy, 0);
    ngx_conf_merge_value(conf->allow_private, prev->allow_private, 0);
    ngx_conf_merge_value(conf->strict_nonce, prev->strict_nonce, 0);
    ngx_conf_merge_value(conf->stats_enable, prev->stats_enable, 1);
    ngx_conf_merge_uint_value(conf->security, prev->security,
                              NGX_STREAM_VMESS_SEC_ALL);
    ngx_conf_merge_str_value(conf->fallback, prev->fallback, "");
    ngx_conf_merge_uint_value(conf->mux_sessions, prev->mux_sessions, 128);
    ngx_conf_merge_msec_value(conf->mux_timeout, prev->mux_timeout, 300000);
    ngx_conf_merge_msec_value(conf->mux_stall_timeout,
                              prev->mux_stall_timeout, 5000);
    ngx_conf_merge_msec_value(conf->udp_timeout, prev->udp_timeout, 60000);

    if (conf->enable && ngx_stream_vmess_dynamic_detour(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (conf->user_confs == NULL) {
        conf->user_confs = prev->user_confs;
    }

    if (conf->rules == NULL) {
        conf->rules = prev->rules;
    }

    if (!conf->enable) {
        wscf = conf->ws ? conf->ws : conf->httpupgrade;

        if (wscf) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"vmess_%s\" needs \"vmess on\" in %V:%ui",
                          wscf->raw ? "httpupgrade" : "websocket",
                          &wscf->file, wscf->line);
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    vmcf = ngx_stream_conf_get_module_main_conf(cf, ngx_stream_vmess_module);

    if (vmcf->shm_zone == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"vmess_zone\" is not defined for \"vmess\" in %V:%ui",
                      &conf->file, conf->line);
        return NGX_CONF_ERROR;
    }

    if (conf->detour) {
        /* its users are made from the sending server's, in
         * ngx_stream_vmess_dynamic_init() */
        return NGX_CONF_OK;
    }

    if (conf->user_confs == NULL || conf->user_confs->nelts == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "no \"vmess_user\" is defined for \"vmess\" in %V:%ui",
                      &conf->file, conf->line);
        return NGX_CONF_ERROR;
    }

    if (ngx_stream_vmess_init_users(cf, conf) != NGX_CONF_OK
        || ngx_stream_vmess_stats_register(cf, conf) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * Nothing is installed unless a server has "vmess on" (or, in
 * ngx_stream_vmess_proxy_init(), "proxy_vmess on").
 */

static ngx_int_t
ngx_stream_vmess_init(ngx_conf_t *cf)
{
    ngx_uint_t                     i, enabled;
    ngx_stream_handler_pt         *h;
    ngx_stream_core_srv_conf_t   **cscfp;
    ngx_stream_core_main_conf_t   *cmcf;
    ngx_stream_vmess_srv_conf_t   *vscf;

    if (ngx_stream_vmess_dynamic_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    cmcf = ngx_stream_conf_get_module_main_conf(cf, ngx_stream_core_module);

    /* UDP and mux sessions are relayed before the server's own handler */

    enabled = 0;
    cscfp = cmcf->servers.elts;

    for (i = 0; i < cmcf->servers.nelts; i++) {
        vscf = cscfp[i]->ctx->srv_conf[ngx_stream_vmess_module.ctx_index];

        if (vscf->enable != 1) {
            continue;
        }

        enabled = 1;

        if (cscfp[i]->handler) {
            vscf->content_handler = cscfp[i]->handler;
            cscfp[i]->handler = ngx_stream_vmess_content_handler;
        }
    }

    if (!enabled) {
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

    /* the chain: outbound open, inbound, outbound seal, write */

    if (ngx_stream_vmess_proxy_init(cf, 0) != NGX_OK
        || ngx_stream_vmess_filter_init(cf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_stream_vmess_proxy_init(cf, 1);
}
