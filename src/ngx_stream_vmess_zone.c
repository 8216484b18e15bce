/*
 * ngx_stream_vmess_module: the shared-memory zone ("vmess_zone").
 *
 * Replay filter for AEAD AuthIDs, shared by all workers: an rbtree keyed
 * by the first bytes of the AuthID and a queue ordered by expiry time,
 * under the slab pool mutex.  An AuthID is remembered until its own
 * timestamp + 120 s (the end of the window in which it is accepted) plus
 * a little slack.  The per-user counters (ngx_stream_vmess_stats.c) live
 * in the same zone.
 */

#include "ngx_stream_vmess_module.h"


#define NGX_STREAM_VMESS_REPLAY_SLACK   10


typedef struct {
    ngx_rbtree_node_t               node;       /* key: AuthID prefix */
    ngx_queue_t                     queue;
    time_t                          expire;
    u_char                          authid[16];
} ngx_stream_vmess_replay_node_t;


typedef struct {
    ngx_rbtree_t                    rbtree;
    ngx_rbtree_node_t               sentinel;
    ngx_queue_t                     expire;     /* head: latest expiry */
    ngx_stream_vmess_stats_sh_t     stats;
} ngx_stream_vmess_zone_sh_t;


typedef struct {
    ngx_stream_vmess_zone_sh_t     *sh;
    ngx_slab_pool_t                *shpool;
    ngx_stream_vmess_main_conf_t   *vmcf;
} ngx_stream_vmess_zone_ctx_t;


static void ngx_stream_vmess_replay_expire(ngx_stream_vmess_zone_ctx_t *ctx,
    time_t now);
static void ngx_stream_vmess_replay_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_int_t ngx_stream_vmess_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);


/*
 * NGX_OK: the AuthID is new and is now remembered; NGX_DECLINED: replay;
 * NGX_BUSY: the zone has no room (the caller fails closed).
 */

ngx_int_t
ngx_stream_vmess_replay_check(ngx_shm_zone_t *shm_zone, const u_char *authid,
    time_t timestamp)
{
    time_t                           now, expire;
    ngx_int_t                        rc;
    ngx_queue_t                     *q;
    ngx_rbtree_key_t                 key;
    ngx_rbtree_node_t               *node, *sentinel;
    ngx_stream_vmess_zone_ctx_t     *ctx;
    ngx_stream_vmess_replay_node_t  *rn, *qn;

    ctx = shm_zone->data;

    now = ngx_time();
    expire = timestamp + VMESS_AUTHID_WINDOW + NGX_STREAM_VMESS_REPLAY_SLACK;

    ngx_memcpy(&key, authid, sizeof(ngx_rbtree_key_t));

    ngx_shmtx_lock(&ctx->shpool->mutex);

    ngx_stream_vmess_replay_expire(ctx, now);

    node = ctx->sh->rbtree.root;
    sentinel = ctx->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (key < node->key) {
            node = node->left;
            continue;
        }

        if (key > node->key) {
            node = node->right;
            continue;
        }

        /* key == node->key */

        rn = (ngx_stream_vmess_replay_node_t *) node;

        rc = ngx_memcmp(authid, rn->authid, 16);

        if (rc == 0) {
            ngx_shmtx_unlock(&ctx->shpool->mutex);
            return NGX_DECLINED;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    /*
     * The queue is ordered by expiry and every expired entry was removed
     * above, so there is nothing left that may be dropped safely: when
     * the slab is exhausted, fail closed.
     */

    rn = ngx_slab_alloc_locked(ctx->shpool,
                               sizeof(ngx_stream_vmess_replay_node_t));

    if (rn == NULL) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        return NGX_BUSY;
    }

    rn->node.key = key;
    rn->expire = expire;
    ngx_memcpy(rn->authid, authid, 16);

    ngx_rbtree_insert(&ctx->sh->rbtree, &rn->node);

    /*
     * Most clients are in sync, so a new entry usually has the latest
     * expiry and goes to the head at once.
     */

    for (q = ngx_queue_head(&ctx->sh->expire);
         q != ngx_queue_sentinel(&ctx->sh->expire);
         q = ngx_queue_next(q))
    {
        qn = ngx_queue_data(q, ngx_stream_vmess_replay_node_t, queue);

        if (qn->expire <= expire) {
            break;
        }
    }

    /* insert before q, or at the tail when q is the sentinel */
    ngx_queue_insert_tail(q, &rn->queue);

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return NGX_OK;
}


static void
ngx_stream_vmess_replay_expire(ngx_stream_vmess_zone_ctx_t *ctx, time_t now)
{
    ngx_queue_t                     *q;
    ngx_stream_vmess_replay_node_t  *rn;

    while (!ngx_queue_empty(&ctx->sh->expire)) {

        q = ngx_queue_last(&ctx->sh->expire);
        rn = ngx_queue_data(q, ngx_stream_vmess_replay_node_t, queue);

        if (rn->expire >= now) {
            return;
        }

        ngx_queue_remove(q);
        ngx_rbtree_delete(&ctx->sh->rbtree, &rn->node);
        ngx_slab_free_locked(ctx->shpool, rn);
    }
}


static void
ngx_stream_vmess_replay_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t               **p;
    ngx_stream_vmess_replay_node_t   *rn, *rnt;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else { /* node->key == temp->key */

            rn = (ngx_stream_vmess_replay_node_t *) node;
            rnt = (ngx_stream_vmess_replay_node_t *) temp;

            p = (ngx_memcmp(rn->authid, rnt->authid, 16) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


static ngx_int_t
ngx_stream_vmess_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_stream_vmess_zone_ctx_t  *octx = data;

    size_t                        len;
    ngx_stream_vmess_zone_ctx_t  *ctx;

    ctx = shm_zone->data;

    if (octx) {
        /* reload: the zone (same name, size and tag) is kept */
        ctx->sh = octx->sh;
        ctx->shpool = octx->shpool;

        return ngx_stream_vmess_stats_init_zone(ctx->shpool, &ctx->sh->stats,
                                                0, ctx->vmcf);
    }

    ctx->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        ctx->sh = ctx->shpool->data;

        return ngx_stream_vmess_stats_init_zone(ctx->shpool, &ctx->sh->stats,
                                                0, ctx->vmcf);
    }

    ctx->sh = ngx_slab_alloc(ctx->shpool, sizeof(ngx_stream_vmess_zone_sh_t));
    if (ctx->sh == NULL) {
        return NGX_ERROR;
    }

    ctx->shpool->data = ctx->sh;

    ngx_rbtree_init(&ctx->sh->rbtree, &ctx->sh->sentinel,
                    ngx_stream_vmess_replay_insert_value);

    ngx_queue_init(&ctx->sh->expire);

    len = sizeof(" in vmess zone \"\"") + shm_zone->shm.name.len;

    ctx->shpool->log_ctx = ngx_slab_alloc(ctx->shpool, len);
    if (ctx->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(ctx->shpool->log_ctx, " in vmess zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* a full zone is reported once per refused session by the module */
    ctx->shpool->log_nomem = 0;

    return ngx_stream_vmess_stats_init_zone(ctx->shpool, &ctx->sh->stats, 1,
                                            ctx->vmcf);
}


/* the counters of a zone, for the HTTP API; NULL before it is set up */

ngx_stream_vmess_stats_sh_t *
ngx_stream_vmess_zone_stats(ngx_shm_zone_t *shm_zone,
    ngx_slab_pool_t **shpool)
{
    ngx_stream_vmess_zone_ctx_t  *ctx;

    ctx = shm_zone->data;

    if (ctx == NULL || ctx->sh == NULL) {
        return NULL;
    }

    *shpool = ctx->shpool;

    return &ctx->sh->stats;
}


char *
ngx_stream_vmess_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_vmess_main_conf_t  *vmcf = conf;

    u_char                       *p;
    ssize_t                       size;
    ngx_str_t                    *value, name, s;
    ngx_shm_zone_t               *shm_zone;
    ngx_stream_vmess_zone_ctx_t  *ctx;

    if (vmcf->shm_zone) {
        return "is duplicate";
    }

    value = cf->args->elts;

    p = (u_char *) ngx_strchr(value[1].data, ':');

    if (p == NULL || p == value[1].data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone \"%V\", expected name:size",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    name.data = value[1].data;
    name.len = p - value[1].data;

    s.data = p + 1;
    s.len = value[1].data + value[1].len - s.data;

    size = ngx_parse_size(&s);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is too small", &value[1]);
        return NGX_CONF_ERROR;
    }

    ctx = ngx_pcalloc(cf->pool, sizeof(ngx_stream_vmess_zone_ctx_t));
    if (ctx == NULL) {
        return NGX_CONF_ERROR;
    }

    shm_zone = ngx_shared_memory_add(cf, &name, size,
                                     &ngx_stream_vmess_module);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate zone \"%V\"", &name);
        return NGX_CONF_ERROR;
    }

    ctx->vmcf = vmcf;

    shm_zone->init = ngx_stream_vmess_init_zone;
    shm_zone->data = ctx;

    vmcf->shm_zone = shm_zone;

    return NGX_CONF_OK;
}
