/*
 * ngx_stream_vmess_module: "vmess_dynamic_port", the switch-account
 * response command (VMESS-SPEC.md §9).
 *
 * A server with the directive tells each client a port of the list, a
 * user ID and how many minutes they stay valid; the client then opens some
 * of its next sessions there.  The servers listening on those ports (the
 * detour servers) accept only such IDs.  An ID is derived from the secret,
 * the refresh period's number and the user's own ID (vmess_dynamic_id),
 * so every worker and every reload agrees without shared state.  A detour
 * server keeps the IDs of three periods: the current one, the previous
 * one (valid for a grace window into the current period, for clients
 * whose minutes were rounded up or that connected at the turn) and the
 * one before, kept to tell an expired ID from an unknown one.
 */

#include "ngx_stream_vmess_module.h"


#define NGX_STREAM_VMESS_DYNAMIC_GRACE  60      /* seconds */
#define NGX_STREAM_VMESS_DYNAMIC_SLOTS  3       /* periods kept */
#define NGX_STREAM_VMESS_SECRET_MIN     16


static char *ngx_stream_vmess_dynamic_option(ngx_conf_t *cf,
    ngx_stream_vmess_dynamic_t *dyn, ngx_str_t *arg);
static ngx_int_t ngx_stream_vmess_dynamic_servers(ngx_conf_t *cf,
    ngx_stream_vmess_dynamic_t *dyn);
static ngx_int_t ngx_stream_vmess_dynamic_users(ngx_conf_t *cf,
    ngx_stream_vmess_srv_conf_t *vscf);


char *
ngx_stream_vmess_dynamic_port(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_vmess_srv_conf_t  *vscf = conf;

    ngx_int_t                      n;
    ngx_str_t                     *value;
    in_port_t                     *port, *ports;
    ngx_uint_t                     i, j;
    ngx_stream_vmess_dynamic_t    *dyn, **dynp;
    ngx_stream_vmess_main_conf_t  *vmcf;

    if (vscf->dynamic) {
        return "is duplicate";
    }

    dyn = ngx_pcalloc(cf->pool, sizeof(ngx_stream_vmess_dynamic_t));
    if (dyn == NULL
        || ngx_array_init(&dyn->ports, cf->pool, 4, sizeof(in_port_t))
           != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strlchr(value[i].data, value[i].data + value[i].len, '=')) {
            if (ngx_stream_vmess_dynamic_option(cf, dyn, &value[i])
                != NGX_CONF_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        n = ngx_atoi(value[i].data, value[i].len);

        if (n < 1 || n > 65535) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid port \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        ports = dyn->ports.elts;

        for (j = 0; j < dyn->ports.nelts; j++) {
            if (ports[j] == (in_port_t) n) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "duplicate port \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }
        }

        port = ngx_array_push(&dyn->ports);
        if (port == NULL) {
            return NGX_CONF_ERROR;
        }

        *port = (in_port_t) n;
    }

    if (dyn->ports.nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "no port in \"vmess_dynamic_port\"");
        return NGX_CONF_ERROR;
    }

    if (dyn->refresh == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "no \"refresh=\" in \"vmess_dynamic_port\"");
        return NGX_CONF_ERROR;
    }

    if (dyn->secret.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "no \"secret=\" in \"vmess_dynamic_port\"");
        return NGX_CONF_ERROR;
    }

    dyn->server = vscf;
    dyn->file = cf->conf_file->file.name;
    dyn->line = cf->conf_file->line;

    vmcf = ngx_stream_conf_get_module_main_conf(cf, ngx_stream_vmess_module);

    if (vmcf->dynamics == NULL) {
        vmcf->dynamics = ngx_array_create(cf->pool, 2,
                                          sizeof(ngx_stream_vmess_dynamic_t *));
        if (vmcf->dynamics == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    dynp = ngx_array_push(vmcf->dynamics);
    if (dynp == NULL) {
        return NGX_CONF_ERROR;
    }

    *dynp = dyn;
    vscf->dynamic = dyn;

    return NGX_CONF_OK;
}


static char *
ngx_stream_vmess_dynamic_option(ngx_conf_t *cf,
    ngx_stream_vmess_dynamic_t *dyn, ngx_str_t *arg)
{
    ngx_int_t  n;
    ngx_str_t  v;

    if (arg->len > 8 && ngx_strncmp(arg->data, "refresh=", 8) == 0) {
        n = ngx_atoi(arg->data + 8, arg->len - 8);

        /* the client is told the minutes left in one byte */
        if (n < 1 || n > 255) {
            goto invalid;
        }

        dyn->refresh = (time_t) n * 60;
        return NGX_CONF_OK;
    }

    if (arg->len > 9 && ngx_strncmp(arg->data, "alter_id=", 9) == 0) {
        n = ngx_atoi(arg->data + 9, arg->len - 9);

        if (n < 0 || n > 65535) {
            goto invalid;
        }

        dyn->alter_ids = (ngx_uint_t) n;
        return NGX_CONF_OK;
    }

    if (arg->len >= 7 && ngx_strncmp(arg->data, "secret=", 7) == 0) {
        v.data = arg->data + 7;
        v.len = arg->len - 7;

        if (v.len < NGX_STREAM_VMESS_SECRET_MIN) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"secret=\" of \"vmess_dynamic_port\" needs "
                               "at least %d characters",
                               NGX_STREAM_VMESS_SECRET_MIN);
            return NGX_CONF_ERROR;
        }

        dyn->secret = v;
        return NGX_CONF_OK;
    }

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid parameter \"%V\"", arg);

    return NGX_CONF_ERROR;
}


/*
 * At merge: a "vmess on" server listening on a port of some
 * "vmess_dynamic_port" list is its detour server (cf->ctx is the
 * server's, as are its listen entries').  Its users are made in
 * postconfiguration, once the sending server's are.
 */

ngx_int_t
ngx_stream_vmess_dynamic_detour(ngx_conf_t *cf,
    ngx_stream_vmess_srv_conf_t *vscf)
{
    in_port_t                      port, *ports;
    ngx_uint_t                     i, j, k;
    ngx_stream_listen_t           *ls;
    ngx_stream_vmess_dynamic_t   **dyns;
    ngx_stream_core_main_conf_t   *cmcf;
    ngx_stream_vmess_main_conf_t  *vmcf;

    vmcf = ngx_stream_conf_get_module_main_conf(cf, ngx_stream_vmess_module);

    if (vmcf->dynamics == NULL) {
        return NGX_OK;
    }

    cmcf = ngx_stream_conf_get_module_main_conf(cf, ngx_stream_core_module);

    ls = cmcf->listen.elts;
    dyns = vmcf->dynamics->elts;

    for (i = 0; i < cmcf->listen.nelts; i++) {

        if (ls[i].ctx != cf->ctx) {
            continue;
        }

        port = ngx_inet_get_port(ls[i].sockaddr);

        for (j = 0; j < vmcf->dynamics->nelts; j++) {
            ports = dyns[j]->ports.elts;

            for (k = 0; k < dyns[j]->ports.nelts; k++) {

                if (ports[k] != port) {
                    continue;
                }

                if (vscf->detour && vscf->detour != dyns[j]) {
                    ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                                  "the server of \"vmess\" in %V:%ui is in "
                                  "the ports of \"vmess_dynamic_port\" in "
                                  "%V:%ui and in %V:%ui", &vscf->file,
                                  vscf->line, &vscf->detour->file,
                                  vscf->detour->line, &dyns[j]->file,
                                  dyns[j]->line);
                    return NGX_ERROR;
                }

                vscf->detour = dyns[j];
            }
        }
    }

    if (vscf->detour && vscf->user_confs) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "the server of \"vmess\" in %V:%ui has users of its "
                      "own, but as a port of \"vmess_dynamic_port\" in "
                      "%V:%ui it accepts that list's IDs only", &vscf->file,
                      vscf->line, &vscf->detour->file, vscf->detour->line);
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_stream_vmess_dynamic_init(ngx_conf_t *cf)
{
    ngx_uint_t                     i;
    ngx_stream_vmess_dynamic_t   **dyns, *dyn;
    ngx_stream_vmess_main_conf_t  *vmcf;

    vmcf = ngx_stream_conf_get_module_main_conf(cf, ngx_stream_vmess_module);

    if (vmcf->dynamics == NULL) {
        return NGX_OK;
    }

    dyns = vmcf->dynamics->elts;

    for (i = 0; i < vmcf->dynamics->nelts; i++) {
        dyn = dyns[i];

        if (dyn->server->enable != 1) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"vmess_dynamic_port\" in %V:%ui needs \"vmess on\" "
                          "in its server", &dyn->file, dyn->line);
            return NGX_ERROR;
        }

        if (dyn->server->detour) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "the server of \"vmess_dynamic_port\" in %V:%ui "
                          "listens on a port of \"vmess_dynamic_port\" in "
                          "%V:%ui", &dyn->file, dyn->line,
                          &dyn->server->detour->file,
                          dyn->server->detour->line);
            return NGX_ERROR;
        }

        if (ngx_stream_vmess_dynamic_servers(cf, dyn) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* every port has a server, each with "vmess on" and what v2ray clients
 * use there: aes-128-cfb, and the legacy header with alter IDs */

static ngx_int_t
ngx_stream_vmess_dynamic_servers(ngx_conf_t *cf,
    ngx_stream_vmess_dynamic_t *dyn)
{
    in_port_t                     *ports;
    ngx_uint_t                     i, j, found;
    ngx_stream_listen_t           *ls;
    ngx_stream_core_main_conf_t   *cmcf;
    ngx_stream_vmess_srv_conf_t   *vscf;

    cmcf = ngx_stream_conf_get_module_main_conf(cf, ngx_stream_core_module);

    ls = cmcf->listen.elts;
    ports = dyn->ports.elts;

    for (i = 0; i < dyn->ports.nelts; i++) {
        found = 0;

        for (j = 0; j < cmcf->listen.nelts; j++) {

            if (ngx_inet_get_port(ls[j].sockaddr) != ports[i]) {
                continue;
            }

            found = 1;
            vscf = ls[j].ctx->srv_conf[ngx_stream_vmess_module.ctx_index];

            if (vscf->enable != 1) {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "the server on port %d of "
                              "\"vmess_dynamic_port\" in %V:%ui has no "
                              "\"vmess on\"", (int) ports[i], &dyn->file,
                              dyn->line);
                return NGX_ERROR;
            }

            if (!(vscf->security & NGX_STREAM_VMESS_SEC_CFB)
                || (dyn->alter_ids && !vscf->legacy))
            {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "the server of \"vmess\" in %V:%ui, on port %d "
                              "of \"vmess_dynamic_port\", must allow "
                              "\"aes-128-cfb\"%s: v2ray clients use %s there",
                              &vscf->file, vscf->line, (int) ports[i],
                              dyn->alter_ids ? " and have \"vmess_legacy on\""
                                             : "",
                              dyn->alter_ids ? "both" : "it");
                return NGX_ERROR;
            }

            if (vscf->users == NULL
                && ngx_stream_vmess_dynamic_users(cf, vscf) != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        if (!found) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "no server listens on port %d of "
                          "\"vmess_dynamic_port\" in %V:%ui", (int) ports[i],
                          &dyn->file, dyn->line);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* a detour server's table: SLOTS periods of the sending server's users */

static ngx_int_t
ngx_stream_vmess_dynamic_users(ngx_conf_t *cf,
    ngx_stream_vmess_srv_conf_t *vscf)
{
    ngx_uint_t                    n;
    ngx_stream_vmess_srv_conf_t  *server;

    server = vscf->detour->server;
    n = server->nusers * NGX_STREAM_VMESS_DYNAMIC_SLOTS;

    if (ngx_stream_vmess_users_alloc(cf, vscf, n) != NGX_CONF_OK) {
        return NGX_ERROR;
    }

    vscf->nusers = n;
    vscf->detour_period = -1;
    vscf->drain_base = server->drain_base;
    vscf->drain_max = server->drain_max;

    if (ngx_stream_vmess_dynamic_refresh(cf->log, vscf, ngx_time()) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (vscf->legacy
        && ngx_stream_vmess_legacy_index(cf, vscf) != NGX_CONF_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the IDs of now's period and the two before it, once a period */

ngx_int_t
ngx_stream_vmess_dynamic_refresh(ngx_log_t *log,
    ngx_stream_vmess_srv_conf_t *vscf, time_t now)
{
    size_t                        size;
    u_char                        id[16];
    int64_t                       period;
    ngx_uint_t                    i, n, slot;
    ngx_stream_vmess_dynamic_t   *dyn;
    ngx_stream_vmess_srv_conf_t  *server;

    dyn = vscf->detour;
    period = (int64_t) (now / dyn->refresh);

    if (period == vscf->detour_period) {
        return NGX_OK;
    }

    server = dyn->server;
    n = server->nusers;

    /* rebuilt whole on failure: no half-made table is searched */
    vscf->detour_period = -1;

    for (i = 0; i < vscf->nusers; i++) {
        slot = i / n;

        vmess_user_free(&vscf->users[i]);

        if (vmess_dynamic_id(dyn->secret.data, dyn->secret.len,
                             (uint64_t) (period + slot
                                         - NGX_STREAM_VMESS_DYNAMIC_SLOTS + 1),
                             server->users[i % n].id, id)
            != VMESS_OK
            || vmess_user_init(&vscf->users[i], id, (uint16_t) dyn->alter_ids,
                               server->users[i % n].data)
               != VMESS_OK)
        {
            ngx_explicit_memzero(id, sizeof(id));
            ngx_log_error(NGX_LOG_ALERT, log, 0,
                          "vmess: dynamic port IDs not made");
            return NGX_ERROR;
        }
    }

    ngx_explicit_memzero(id, sizeof(id));

    if (vscf->legacy_index) {
        size = vmess_legacy_index_size(vscf->users, vscf->nusers);

        if (vmess_legacy_index_init(vscf->legacy_index, size, vscf->users,
                                    vscf->nusers)
            == NULL)
        {
            ngx_log_error(NGX_LOG_ALERT, log, 0,
                          "vmess_legacy_index_init() failed");
            return NGX_ERROR;
        }

        vscf->legacy_updated = 0;
    }

    vscf->detour_period = period;

    ngx_log_debug1(NGX_LOG_DEBUG_STREAM, log, 0,
                   "vmess: dynamic port IDs of period %L made", period);

    return NGX_OK;
}


/* the oldest period's IDs, and the previous one's after the grace window */

ngx_uint_t
ngx_stream_vmess_dynamic_expired(ngx_stream_vmess_srv_conf_t *vscf,
    ngx_uint_t user, time_t now)
{
    ngx_uint_t  slot;

    slot = user / vscf->detour->server->nusers;

    if (slot == NGX_STREAM_VMESS_DYNAMIC_SLOTS - 1) {
        return 0;
    }

    if (slot == NGX_STREAM_VMESS_DYNAMIC_SLOTS - 2) {
        return now - (time_t) vscf->detour_period * vscf->detour->refresh
               >= NGX_STREAM_VMESS_DYNAMIC_GRACE;
    }

    return 1;
}


/*
 * The command for an authenticated session of a server with
 * "vmess_dynamic_port": a random port of the list, the user's ID of this
 * period and the minutes left in it.  NGX_DECLINED: no command.
 */

ngx_int_t
ngx_stream_vmess_dynamic_command(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, vmess_switch_account_t *cmd)
{
    time_t                        now, left;
    in_port_t                    *ports;
    ngx_stream_vmess_dynamic_t   *dyn;
    ngx_stream_vmess_srv_conf_t  *vscf;

    vscf = ngx_stream_get_module_srv_conf(s, ngx_stream_vmess_module);
    dyn = vscf->dynamic;

    /* the detour servers know only the configuration's users */
    if (dyn == NULL || !ctx->has_user || ctx->runtime) {
        return NGX_DECLINED;
    }

    now = ngx_time();

    ngx_memzero(cmd, sizeof(vmess_switch_account_t));

    if (vmess_dynamic_id(dyn->secret.data, dyn->secret.len,
                         (uint64_t) (now / dyn->refresh),
                         ctx->vuser->id, cmd->id)
        != VMESS_OK)
    {
        ngx_log_error(NGX_LOG_ALERT, s->connection->log, 0,
                      "vmess_dynamic_id() failed");
        return NGX_ERROR;
    }

    ports = dyn->ports.elts;
    left = dyn->refresh - now % dyn->refresh;

    cmd->port = ports[ngx_random() % dyn->ports.nelts];
    cmd->alter_ids = (uint16_t) dyn->alter_ids;
    cmd->valid_minutes = (uint8_t) ((left + 59) / 60);

    ctx->dynamic_port = cmd->port;

    ngx_log_debug2(NGX_LOG_DEBUG_STREAM, s->connection->log, 0,
                   "vmess: dynamic port %d for %d min sent",
                   (int) cmd->port, (int) cmd->valid_minutes);

    return NGX_OK;
}
