/*
 * ngx_stream_vmess_module: the users the API added to a server
 * (ngx_stream_vmess_api_users.c), as each worker knows them.
 *
 * The API adds and removes nodes in the zone and moves its generation.
 * A worker compares that generation with its own when an AuthID matched
 * none of the configuration's users, and then rebuilds the server's
 * table of API users from the zone before trying the AuthID on it.  A
 * session of such a user holds the table it was found in (its user, its
 * counters' slot) until it ends, so a rebuild never moves what a live
 * session points at; the table is freed with its last session.
 */

#include "ngx_stream_vmess_module.h"


static ngx_int_t ngx_stream_vmess_runtime_rebuild(ngx_log_t *log,
    ngx_stream_vmess_srv_conf_t *vscf, ngx_slab_pool_t *shpool,
    ngx_stream_vmess_stats_sh_t *sh);
static ngx_uint_t ngx_stream_vmess_runtime_copy(
    ngx_stream_vmess_runtime_t *rt, ngx_stream_vmess_srv_conf_t *vscf,
    ngx_stream_vmess_stats_sh_t *sh, ngx_uint_t n);
static ngx_int_t ngx_stream_vmess_runtime_keys(ngx_log_t *log,
    ngx_stream_vmess_runtime_t *rt, ngx_uint_t n, ngx_flag_t legacy);
static ngx_int_t ngx_stream_vmess_runtime_legacy(ngx_connection_t *c,
    ngx_stream_vmess_runtime_t *rt, int64_t now, size_t *found,
    int64_t *timestamp);
static void ngx_stream_vmess_runtime_release(void *data);
static void ngx_stream_vmess_runtime_free(void *data);


/*
 * The AuthID (or with legacy, the legacy auth hash) among the server's
 * API users: NGX_OK with ctx->vuser, ctx->user_stat and ctx->runtime set
 * (held until the session's pool goes), NGX_DECLINED when none matches.
 */

ngx_int_t
ngx_stream_vmess_runtime_find(ngx_stream_session_t *s,
    ngx_stream_vmess_ctx_t *ctx, ngx_stream_vmess_srv_conf_t *vscf,
    int64_t now, int64_t *timestamp, ngx_uint_t legacy)
{
    size_t                         found;
    int64_t                        skew;
    ngx_int_t                      rc;
    ngx_slab_pool_t               *shpool;
    ngx_pool_cleanup_t            *cln;
    ngx_stream_vmess_runtime_t    *rt;
    ngx_stream_vmess_stats_sh_t   *sh;
    ngx_stream_vmess_main_conf_t  *vmcf;

    if (vscf->server_sh == NULL || vscf->detour) {
        return NGX_DECLINED;
    }

    vmcf = ngx_stream_get_module_main_conf(s, ngx_stream_vmess_module);

    sh = ngx_stream_vmess_zone_stats(vmcf->shm_zone, &shpool);

    if (sh == NULL) {
        return NGX_DECLINED;
    }

    if (sh->generation != vscf->generation
        && ngx_stream_vmess_runtime_rebuild(s->connection->log, vscf, shpool,
                                            sh)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    rt = vscf->runtime;

    if (rt == NULL) {
        return NGX_DECLINED;
    }

    if (legacy) {
        rc = ngx_stream_vmess_runtime_legacy(s->connection, rt, now, &found,
                                             timestamp);
        if (rc != NGX_OK) {
            return rc;
        }

    } else if (vmess_users_find_authid(rt->users, rt->nusers,
                                       s->connection->buffer->pos, now,
                                       &found, timestamp, &skew)
               != VMESS_OK)
    {
        return NGX_DECLINED;
    }

    cln = ngx_pool_cleanup_add(s->connection->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_stream_vmess_runtime_release;
    cln->data = rt;
    rt->refs++;

    ctx->runtime = rt;
    ctx->vuser = &rt->users[found];
    ctx->user_stat = &rt->stats[found];

    return NGX_OK;
}


/* the server's API users, anew from the zone */

static ngx_int_t
ngx_stream_vmess_runtime_rebuild(ngx_log_t *log,
    ngx_stream_vmess_srv_conf_t *vscf, ngx_slab_pool_t *shpool,
    ngx_stream_vmess_stats_sh_t *sh)
{
    size_t                        size;
    ngx_uint_t                    n;
    ngx_pool_t                   *pool;
    ngx_queue_t                  *q;
    ngx_pool_cleanup_t           *cln;
    ngx_atomic_uint_t             generation;
    ngx_stream_vmess_runtime_t   *rt;
    ngx_stream_vmess_user_sh_t   *u;

    ngx_shmtx_lock(&shpool->mutex);

    generation = sh->generation;
    n = 0;
    size = sizeof(ngx_stream_vmess_runtime_t) + 1024;

    for (q = ngx_queue_head(&sh->users);
         q != ngx_queue_sentinel(&sh->users);
         q = ngx_queue_next(q))
    {
        u = ngx_queue_data(q, ngx_stream_vmess_user_sh_t, queue);

        if ((u->from & NGX_STREAM_VMESS_FROM_API) && !u->removed
            && u->server == vscf->server_sh)
        {
            n++;

            /* the pool's block holds the names; the arrays are large */
            size += ngx_align(36 + u->name_len, NGX_ALIGNMENT);
        }
    }

    rt = NULL;

    if (n) {
        /* the table outlives the session that builds it: not its log */
        pool = ngx_create_pool(size, ngx_cycle->log);
        if (pool == NULL) {
            goto failed;
        }

        rt = ngx_pcalloc(pool, sizeof(ngx_stream_vmess_runtime_t));
        if (rt == NULL) {
            ngx_destroy_pool(pool);
            goto failed;
        }

        rt->pool = pool;

        cln = ngx_pool_cleanup_add(pool, 0);
        if (cln == NULL) {
            ngx_destroy_pool(pool);
            goto failed;
        }

        cln->handler = ngx_stream_vmess_runtime_free;
        cln->data = rt;

        if (ngx_stream_vmess_runtime_copy(rt, vscf, sh, n) != n) {
            ngx_destroy_pool(pool);
            goto failed;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (rt && ngx_stream_vmess_runtime_keys(log, rt, n, vscf->legacy)
              != NGX_OK)
    {
        ngx_destroy_pool(rt->pool);
        return NGX_ERROR;
    }

    ngx_log_error(NGX_LOG_INFO, log, 0,
                  "vmess: %ui users added through the API on %V",
                  n, &vscf->label);

    if (vscf->runtime) {
        ngx_stream_vmess_runtime_release(vscf->runtime);
    }

    if (rt) {
        rt->refs = 1;
    }

    vscf->runtime = rt;
    vscf->generation = generation;

    return NGX_OK;

failed:

    ngx_shmtx_unlock(&shpool->mutex);

    return NGX_ERROR;
}


/* under the zone's mutex: the n users' IDs, names and counters' nodes */

static ngx_uint_t
ngx_stream_vmess_runtime_copy(ngx_stream_vmess_runtime_t *rt,
    ngx_stream_vmess_srv_conf_t *vscf, ngx_stream_vmess_stats_sh_t *sh,
    ngx_uint_t n)
{
    char                           uuid[37];
    ngx_uint_t                     i;
    ngx_queue_t                   *q;
    ngx_stream_vmess_stat_t       *st;
    ngx_stream_vmess_user_sh_t    *u;
    ngx_stream_vmess_user_conf_t  *uc;

    rt->users = ngx_pcalloc(rt->pool, n * sizeof(vmess_user_t));
    rt->confs = ngx_pcalloc(rt->pool,
                            n * sizeof(ngx_stream_vmess_user_conf_t));
    rt->stats = ngx_pcalloc(rt->pool, n * sizeof(ngx_stream_vmess_stat_t));

    if (rt->users == NULL || rt->confs == NULL || rt->stats == NULL) {
        return 0;
    }

    i = 0;

    for (q = ngx_queue_head(&sh->users);
         q != ngx_queue_sentinel(&sh->users) && i < n;
         q = ngx_queue_next(q))
    {
        u = ngx_queue_data(q, ngx_stream_vmess_user_sh_t, queue);

        if (!(u->from & NGX_STREAM_VMESS_FROM_API) || u->removed
            || u->server != vscf->server_sh)
        {
            continue;
        }

        uc = &rt->confs[i];
        ngx_memcpy(uc->id, u->id, 16);
        uc->alter_ids = u->alter_ids;

        vmess_uuid_format(u->id, uuid);

        uc->uuid.data = ngx_pnalloc(rt->pool, 36 + u->name_len);
        if (uc->uuid.data == NULL) {
            return 0;
        }

        uc->uuid.len = 36;
        uc->name.data = ngx_cpymem(uc->uuid.data, uuid, 36);
        uc->name.len = u->name_len;
        ngx_memcpy(uc->name.data, u->name, u->name_len);

        st = &rt->stats[i];
        st->sh = u;
        st->id = uc->id;
        st->name = &uc->name;
        st->killed = u->kill;
        ngx_queue_init(&st->live);

        i++;
    }

    return i;
}


/* outside the mutex: each user's keys (the core's KDF per user) */

static ngx_int_t
ngx_stream_vmess_runtime_keys(ngx_log_t *log, ngx_stream_vmess_runtime_t *rt,
    ngx_uint_t n, ngx_flag_t legacy)
{
    void                          *mem;
    size_t                         size;
    ngx_uint_t                     i;
    ngx_stream_vmess_user_conf_t  *uc;

    uc = rt->confs;

    for (i = 0; i < n; i++) {
        if (vmess_user_init(&rt->users[i], uc[i].id,
                            (uint16_t) uc[i].alter_ids, &uc[i])
            != VMESS_OK)
        {
            ngx_log_error(NGX_LOG_ALERT, log, 0, "vmess_user_init() failed");
            return NGX_ERROR;
        }

        rt->nusers++;
    }

    if (!legacy) {
        return NGX_OK;
    }

    /* its hashes are made at first use */

    size = vmess_legacy_index_size(rt->users, rt->nusers);

    mem = ngx_palloc(rt->pool, size);
    if (mem == NULL) {
        return NGX_ERROR;
    }

    rt->legacy_index = vmess_legacy_index_init(mem, size, rt->users,
                                               rt->nusers);
    if (rt->legacy_index == NULL) {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "vmess_legacy_index_init() failed");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the legacy auth hash among the table's users, as in the preread */

static ngx_int_t
ngx_stream_vmess_runtime_legacy(ngx_connection_t *c,
    ngx_stream_vmess_runtime_t *rt, int64_t now, size_t *found,
    int64_t *timestamp)
{
    if (rt->legacy_index == NULL) {
        return NGX_DECLINED;
    }

    if ((time_t) now - rt->legacy_updated
        >= NGX_STREAM_VMESS_LEGACY_REFRESH)
    {
        if (vmess_legacy_index_update(rt->legacy_index, now) != VMESS_OK) {
            ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                          "vmess_legacy_index_update() failed");
            return NGX_ERROR;
        }

        rt->legacy_updated = (time_t) now;
    }

    if (vmess_legacy_index_find(rt->legacy_index, c->buffer->pos, now,
                                found, timestamp)
        != VMESS_OK)
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* a session (or the server, at a rebuild) lets go of the table */

static void
ngx_stream_vmess_runtime_release(void *data)
{
    ngx_stream_vmess_runtime_t  *rt = data;

    if (--rt->refs == 0) {
        ngx_destroy_pool(rt->pool);
    }
}


static void
ngx_stream_vmess_runtime_free(void *data)
{
    ngx_stream_vmess_runtime_t  *rt = data;

    ngx_uint_t  i;

    for (i = 0; i < rt->nusers; i++) {
        vmess_user_free(&rt->users[i]);
    }
}
