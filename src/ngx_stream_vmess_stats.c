/*
 * ngx_stream_vmess_module: per-user traffic counters in the zone.
 *
 * Each user of a server ("vmess_user") and each outbound user
 * ("proxy_vmess_user") has a slot in every worker that points at the
 * user's node in the shared zone.  Payload bytes are added to the slot
 * without a lock or an atomic; the slot goes to the zone with atomic adds
 * once it holds 1 MiB, at the end of each of the user's sessions, and from
 * a per-worker timer, every second while the worker has sessions of
 * counted users.  The same tick ends the sessions of users the API asked
 * to kill.  Nodes are found or created by the master when the zone is
 * initialised (at start and at every reload); the stream workers never
 * allocate in the zone (the API's POST users does, under its mutex).
 */

#include "ngx_stream_vmess_module.h"


#define NGX_STREAM_VMESS_STATS_BYTES    (1024 * 1024)
#define NGX_STREAM_VMESS_STATS_MSEC     1000


static ngx_int_t ngx_stream_vmess_stats_slot(ngx_conf_t *cf,
    ngx_stream_vmess_main_conf_t *vmcf, ngx_stream_vmess_stat_t *st,
    u_char *id, ngx_str_t *name, ngx_uint_t outbound);
static ngx_stream_vmess_user_sh_t *ngx_stream_vmess_stats_user(
    ngx_slab_pool_t *shpool, ngx_stream_vmess_stats_sh_t *sh,
    ngx_stream_vmess_stat_t *st);
static ngx_stream_vmess_server_sh_t *ngx_stream_vmess_stats_server(
    ngx_slab_pool_t *shpool, ngx_stream_vmess_stats_sh_t *sh,
    ngx_str_t *name);
static void ngx_stream_vmess_stats_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static void ngx_stream_vmess_stats_flush(ngx_stream_vmess_stat_t *st);
static void ngx_stream_vmess_stats_timer(ngx_event_t *ev);
static void ngx_stream_vmess_stats_kill(ngx_stream_vmess_stat_t *st);
static ngx_int_t ngx_stream_vmess_stats_origins(ngx_slab_pool_t *shpool,
    ngx_stream_vmess_stats_sh_t *sh, ngx_stream_vmess_main_conf_t *vmcf);
static ngx_int_t ngx_stream_vmess_stats_file(ngx_slab_pool_t *shpool,
    ngx_stream_vmess_server_sh_t *srv, ngx_str_t *file);


/* this worker's slots that hold bytes not yet in the zone */
static ngx_queue_t       ngx_stream_vmess_stats_dirty;
static ngx_queue_t       ngx_stream_vmess_stats_busy;   /* slots with live
                                                           sessions */
static ngx_uint_t        ngx_stream_vmess_stats_live;   /* sessions here */
static ngx_event_t       ngx_stream_vmess_stats_event;
static ngx_connection_t  ngx_stream_vmess_stats_dummy;  /* ev->data for the
                                                           timer's log */


/* merge time: a slot per user of a "vmess on" server, and its label */

ngx_int_t
ngx_stream_vmess_stats_register(ngx_conf_t *cf,
    ngx_stream_vmess_srv_conf_t *vscf)
{
    ngx_uint_t                      i;
    ngx_stream_listen_t            *ls;
    ngx_stream_vmess_user_conf_t   *uc;
    ngx_stream_core_main_conf_t    *cmcf;
    ngx_stream_vmess_main_conf_t   *vmcf;
    ngx_stream_vmess_srv_conf_t   **server;

    if (!vscf->stats_enable) {
        return NGX_OK;
    }

    vmcf = ngx_stream_conf_get_module_main_conf(cf, ngx_stream_vmess_module);
    cmcf = ngx_stream_conf_get_module_main_conf(cf, ngx_stream_core_module);

    /* the server is known by its first listen address */

    ls = cmcf->listen.elts;

    for (i = 0; i < cmcf->listen.nelts; i++) {
        if (ls[i].ctx->srv_conf[ngx_stream_vmess_module.ctx_index] == vscf) {
            vscf->label = ls[i].addr_text;
            break;
        }
    }

    server = ngx_array_push(&vmcf->servers);
    if (server == NULL) {
        return NGX_ERROR;
    }

    *server = vscf;

    vscf->stats = ngx_pcalloc(cf->pool,
                              vscf->nusers * sizeof(ngx_stream_vmess_stat_t));
    if (vscf->stats == NULL) {
        return NGX_ERROR;
    }

    uc = vscf->user_confs->elts;

    for (i = 0; i < vscf->nusers; i++) {
        if (ngx_stream_vmess_stats_slot(cf, vmcf, &vscf->stats[i], uc[i].id,
                                        &uc[i].name, 0)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* merge time: the slot of a "proxy_vmess_user", when there is a zone */

ngx_int_t
ngx_stream_vmess_stats_outbound(ngx_conf_t *cf, u_char *id, ngx_str_t *uuid,
    ngx_stream_vmess_stat_t **stat)
{
    ngx_stream_vmess_stat_t       *st;
    ngx_stream_vmess_main_conf_t  *vmcf;

    vmcf = ngx_stream_conf_get_module_main_conf(cf, ngx_stream_vmess_module);

    if (vmcf->shm_zone == NULL) {
        return NGX_OK;
    }

    st = ngx_pcalloc(cf->pool, sizeof(ngx_stream_vmess_stat_t));
    if (st == NULL) {
        return NGX_ERROR;
    }

    *stat = st;

    return ngx_stream_vmess_stats_slot(cf, vmcf, st, id, uuid, 1);
}


static ngx_int_t
ngx_stream_vmess_stats_slot(ngx_conf_t *cf,
    ngx_stream_vmess_main_conf_t *vmcf, ngx_stream_vmess_stat_t *st,
    u_char *id, ngx_str_t *name, ngx_uint_t outbound)
{
    ngx_stream_vmess_stat_t  **slot;

    slot = ngx_array_push(&vmcf->stats);
    if (slot == NULL) {
        return NGX_ERROR;
    }

    *slot = st;

    st->id = id;
    st->name = name;
    st->outbound = outbound;
    ngx_queue_init(&st->live);

    return NGX_OK;
}


/*
 * The master, at start and at every reload: every slot of the new
 * configuration gets its node, found by id (and direction) or created.
 * An existing node keeps its counters.
 */

ngx_int_t
ngx_stream_vmess_stats_init_zone(ngx_slab_pool_t *shpool,
    ngx_stream_vmess_stats_sh_t *sh, ngx_uint_t fresh,
    ngx_stream_vmess_main_conf_t *vmcf)
{
    ngx_uint_t                      i;
    ngx_stream_vmess_stat_t       **slot;
    ngx_stream_vmess_srv_conf_t   **server;

    if (fresh) {
        ngx_rbtree_init(&sh->rbtree, &sh->sentinel,
                        ngx_stream_vmess_stats_insert_value);
        ngx_queue_init(&sh->users);
        ngx_queue_init(&sh->servers);
    }

    slot = vmcf->stats.elts;

    for (i = 0; i < vmcf->stats.nelts; i++) {
        slot[i]->sh = ngx_stream_vmess_stats_user(shpool, sh, slot[i]);

        if (slot[i]->sh == NULL) {
            return NGX_ERROR;
        }

        /* a kill before this configuration is not for its workers */
        slot[i]->killed = slot[i]->sh->kill;
    }

    server = vmcf->servers.elts;

    for (i = 0; i < vmcf->servers.nelts; i++) {
        server[i]->server_sh = ngx_stream_vmess_stats_server(shpool, sh,
                                                      &server[i]->label);
        if (server[i]->server_sh == NULL) {
            return NGX_ERROR;
        }
    }

    return ngx_stream_vmess_stats_origins(shpool, sh, vmcf);
}


/*
 * A reload re-reads the user files, which hold what the API added: the
 * configuration says again which users exist and where they come from,
 * and every worker rebuilds its table of API users (now none).
 */

static ngx_int_t
ngx_stream_vmess_stats_origins(ngx_slab_pool_t *shpool,
    ngx_stream_vmess_stats_sh_t *sh, ngx_stream_vmess_main_conf_t *vmcf)
{
    ngx_int_t                       rc;
    ngx_uint_t                      i, k;
    ngx_queue_t                    *q;
    ngx_stream_vmess_user_sh_t     *u;
    ngx_stream_vmess_user_conf_t   *uc;
    ngx_stream_vmess_srv_conf_t   **server;

    rc = NGX_OK;

    ngx_shmtx_lock(&shpool->mutex);

    for (q = ngx_queue_head(&sh->users);
         q != ngx_queue_sentinel(&sh->users);
         q = ngx_queue_next(q))
    {
        u = ngx_queue_data(q, ngx_stream_vmess_user_sh_t, queue);

        if (!u->outbound) {
            u->from = 0;
            u->removed = 1;
        }
    }

    server = vmcf->servers.elts;

    for (i = 0; i < vmcf->servers.nelts; i++) {
        uc = server[i]->user_confs->elts;

        for (k = 0; k < server[i]->nusers; k++) {
            u = server[i]->stats[k].sh;
            u->removed = 0;

            if (uc[k].in_file && server[i]->user_file.len) {
                u->from |= NGX_STREAM_VMESS_FROM_FILE;
                u->server = server[i]->server_sh;
                u->alter_ids = uc[k].alter_ids;

            } else {
                u->from |= NGX_STREAM_VMESS_FROM_CONF;
            }
        }

        if (rc == NGX_OK) {
            rc = ngx_stream_vmess_stats_file(shpool, server[i]->server_sh,
                                             &server[i]->user_file);
        }
    }

    (void) ngx_atomic_fetch_add(&sh->generation, 1);

    ngx_shmtx_unlock(&shpool->mutex);

    return rc;
}


/* the server's user file name, NUL-ended, for the API to write */

static ngx_int_t
ngx_stream_vmess_stats_file(ngx_slab_pool_t *shpool,
    ngx_stream_vmess_server_sh_t *srv, ngx_str_t *file)
{
    if (srv->file_len == file->len
        && (file->len == 0
            || ngx_memcmp(srv->file, file->data, file->len) == 0))
    {
        return NGX_OK;
    }

    if (srv->file) {
        ngx_slab_free_locked(shpool, srv->file);
        srv->file = NULL;
        srv->file_len = 0;
    }

    if (file->len == 0) {
        return NGX_OK;
    }

    srv->file = ngx_slab_alloc_locked(shpool, file->len + 1);
    if (srv->file == NULL) {
        ngx_log_error(NGX_LOG_EMERG, ngx_cycle->log, 0,
                      "vmess: no room for the name of %V", file);
        return NGX_ERROR;
    }

    *ngx_cpymem(srv->file, file->data, file->len) = '\0';
    srv->file_len = file->len;

    return NGX_OK;
}


static ngx_stream_vmess_user_sh_t *
ngx_stream_vmess_stats_user(ngx_slab_pool_t *shpool,
    ngx_stream_vmess_stats_sh_t *sh, ngx_stream_vmess_stat_t *st)
{
    u_char                      *name;
    ngx_int_t                    rc;
    ngx_rbtree_key_t             key;
    ngx_rbtree_node_t           *node, *sentinel;
    ngx_stream_vmess_user_sh_t  *u;

    ngx_memcpy(&key, st->id, sizeof(ngx_rbtree_key_t));

    ngx_shmtx_lock(&shpool->mutex);

    node = sh->rbtree.root;
    sentinel = sh->rbtree.sentinel;
    u = NULL;

    while (node != sentinel) {

        if (key != node->key) {
            node = (key < node->key) ? node->left : node->right;
            continue;
        }

        u = (ngx_stream_vmess_user_sh_t *) node;

        rc = ngx_memcmp(st->id, u->id, 16);

        if (rc == 0) {
            rc = (ngx_int_t) st->outbound - (ngx_int_t) u->outbound;
        }

        if (rc == 0) {
            break;
        }

        u = NULL;
        node = (rc < 0) ? node->left : node->right;
    }

    if (u == NULL) {
        u = ngx_slab_calloc_locked(shpool, sizeof(ngx_stream_vmess_user_sh_t));
        if (u == NULL) {
            goto failed;
        }

        u->node.key = key;
        ngx_memcpy(u->id, st->id, 16);
        u->outbound = st->outbound;

        ngx_rbtree_insert(&sh->rbtree, &u->node);
        ngx_queue_insert_tail(&sh->users, &u->queue);
    }

    /* the email may have changed with the configuration */

    if (u->name_len != st->name->len
        || ngx_memcmp(u->name, st->name->data, st->name->len) != 0)
    {
        name = ngx_slab_alloc_locked(shpool, st->name->len);
        if (name == NULL) {
            goto failed;
        }

        if (u->name) {
            ngx_slab_free_locked(shpool, u->name);
        }

        u->name = ngx_cpymem(name, st->name->data, st->name->len)
                  - st->name->len;
        u->name_len = st->name->len;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return u;

failed:

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_log_error(NGX_LOG_EMERG, ngx_cycle->log, 0,
                  "vmess: no room for the counters of user %V",
                  st->name);

    return NULL;
}


static ngx_stream_vmess_server_sh_t *
ngx_stream_vmess_stats_server(ngx_slab_pool_t *shpool,
    ngx_stream_vmess_stats_sh_t *sh, ngx_str_t *name)
{
    ngx_queue_t                   *q;
    ngx_stream_vmess_server_sh_t  *srv;

    ngx_shmtx_lock(&shpool->mutex);

    for (q = ngx_queue_head(&sh->servers);
         q != ngx_queue_sentinel(&sh->servers);
         q = ngx_queue_next(q))
    {
        srv = ngx_queue_data(q, ngx_stream_vmess_server_sh_t, queue);

        if (srv->name_len == name->len
            && ngx_memcmp(srv->name, name->data, name->len) == 0)
        {
            goto done;
        }
    }

    srv = ngx_slab_calloc_locked(shpool, sizeof(ngx_stream_vmess_server_sh_t)
                                         + name->len);
    if (srv == NULL) {
        ngx_shmtx_unlock(&shpool->mutex);

        ngx_log_error(NGX_LOG_EMERG, ngx_cycle->log, 0,
                      "vmess: no room for the counters of server %V", name);
        return NULL;
    }

    srv->name_len = name->len;
    ngx_memcpy(srv->name, name->data, name->len);

    ngx_queue_insert_tail(&sh->servers, &srv->queue);

done:

    ngx_shmtx_unlock(&shpool->mutex);

    return srv;
}


static void
ngx_stream_vmess_stats_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_int_t                     rc;
    ngx_rbtree_node_t           **p;
    ngx_stream_vmess_user_sh_t   *u, *ut;

    for ( ;; ) {

        if (node->key != temp->key) {
            p = (node->key < temp->key) ? &temp->left : &temp->right;

        } else {
            u = (ngx_stream_vmess_user_sh_t *) node;
            ut = (ngx_stream_vmess_user_sh_t *) temp;

            rc = ngx_memcmp(u->id, ut->id, 16);

            if (rc == 0) {
                rc = (ngx_int_t) u->outbound - (ngx_int_t) ut->outbound;
            }

            p = (rc < 0) ? &temp->left : &temp->right;
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


/*
 * Why the user may not begin a session now (set through the API), or
 * NULL.  The quota counts the bytes since the last "?reset=1".
 */

const char *
ngx_stream_vmess_stats_refused(ngx_stream_vmess_stat_t *st)
{
    ngx_stream_vmess_user_sh_t  *u;

    u = st->sh;

    if (u->removed) {
        return "removed";
    }

    if (u->disabled) {
        return "disabled";
    }

    if (u->quota && u->bytes[0] + u->bytes[1] >= u->quota) {
        return "over quota";
    }

    if (u->expire && (ngx_atomic_uint_t) ngx_time() >= u->expire) {
        return "expired";
    }

    return NULL;
}


/* a session of the user begins on the client connection c */

void
ngx_stream_vmess_stats_start(ngx_stream_vmess_stat_t *st,
    ngx_stream_vmess_live_t *live, ngx_connection_t *c)
{
    ngx_event_t  *ev;

    (void) ngx_atomic_fetch_add(&st->sh->sessions, 1);
    (void) ngx_atomic_fetch_add(&st->sh->active, 1);

    st->sh->last_seen = ngx_time();

    ev = &ngx_stream_vmess_stats_event;

    if (ngx_stream_vmess_stats_dirty.next == NULL) {
        ngx_queue_init(&ngx_stream_vmess_stats_dirty);
        ngx_queue_init(&ngx_stream_vmess_stats_busy);

        ngx_stream_vmess_stats_dummy.fd = (ngx_socket_t) -1;
        ev->data = &ngx_stream_vmess_stats_dummy;
        ev->handler = ngx_stream_vmess_stats_timer;
        ev->log = ngx_cycle->log;
        ev->cancelable = 1;
    }

    if (ngx_queue_empty(&st->live)) {
        ngx_queue_insert_tail(&ngx_stream_vmess_stats_busy, &st->busy);
    }

    live->connection = c;
    ngx_queue_insert_tail(&st->live, &live->queue);

    if (ngx_stream_vmess_stats_live++ == 0 && !ev->timer_set) {
        ngx_add_timer(ev, NGX_STREAM_VMESS_STATS_MSEC);
    }
}


/* n payload bytes of the user, NGX_STREAM_VMESS_UP or _DOWN */

void
ngx_stream_vmess_stats_add(ngx_stream_vmess_stat_t *st, ngx_uint_t dir,
    size_t n)
{
    if (n == 0) {
        return;
    }

    if (st->pending[0] + st->pending[1] == 0) {
        ngx_queue_insert_tail(&ngx_stream_vmess_stats_dirty, &st->dirty);
    }

    st->pending[dir] += n;

    if (st->pending[dir] >= NGX_STREAM_VMESS_STATS_BYTES) {
        ngx_stream_vmess_stats_flush(st);
    }
}


/* a session of the user ends: its bytes are in the zone when it is gone */

void
ngx_stream_vmess_stats_end(ngx_stream_vmess_stat_t *st,
    ngx_stream_vmess_live_t *live)
{
    ngx_stream_vmess_stats_flush(st);

    (void) ngx_atomic_fetch_add(&st->sh->active, -1);

    ngx_queue_remove(&live->queue);
    ngx_stream_vmess_stats_live--;

    if (ngx_queue_empty(&st->live)) {
        ngx_queue_remove(&st->busy);
    }
}


/* every session of a server, by $vmess_status */

void
ngx_stream_vmess_stats_status(ngx_stream_vmess_srv_conf_t *vscf,
    ngx_uint_t status)
{
    if (vscf->server_sh && status < NGX_STREAM_VMESS_ST_N) {
        (void) ngx_atomic_fetch_add(&vscf->server_sh->status[status], 1);
    }
}


/* a counter as it is, or read and zeroed in one step (nothing is lost) */

uint64_t
ngx_stream_vmess_stats_read(ngx_atomic_t *counter, ngx_uint_t reset)
{
    ngx_atomic_uint_t  v;

    if (!reset) {
        return *counter;
    }

    do {
        v = *counter;
    } while (!ngx_atomic_cmp_set(counter, v, 0));

    return v;
}


static void
ngx_stream_vmess_stats_flush(ngx_stream_vmess_stat_t *st)
{
    if (st->pending[0] + st->pending[1] == 0) {
        return;
    }

    (void) ngx_atomic_fetch_add(&st->sh->bytes[0], st->pending[0]);
    (void) ngx_atomic_fetch_add(&st->sh->bytes[1], st->pending[1]);

    st->sh->last_seen = ngx_time();
    st->pending[0] = 0;
    st->pending[1] = 0;

    ngx_queue_remove(&st->dirty);
}


static void
ngx_stream_vmess_stats_timer(ngx_event_t *ev)
{
    ngx_queue_t              *q;
    ngx_stream_vmess_stat_t  *st;

    while (!ngx_queue_empty(&ngx_stream_vmess_stats_dirty)) {
        q = ngx_queue_head(&ngx_stream_vmess_stats_dirty);
        st = ngx_queue_data(q, ngx_stream_vmess_stat_t, dirty);

        ngx_stream_vmess_stats_flush(st);
    }

    for (q = ngx_queue_head(&ngx_stream_vmess_stats_busy);
         q != ngx_queue_sentinel(&ngx_stream_vmess_stats_busy);
         q = ngx_queue_next(q))
    {
        st = ngx_queue_data(q, ngx_stream_vmess_stat_t, busy);

        if (st->killed != st->sh->kill) {
            ngx_stream_vmess_stats_kill(st);
        }
    }

    if (ngx_stream_vmess_stats_live) {
        ngx_add_timer(ev, NGX_STREAM_VMESS_STATS_MSEC);
    }
}


/*
 * The API raised the user's kill count: each of its sessions in this
 * worker is shut down on the client's socket, so that whoever relays it
 * (the stream proxy or our own relay) sees the end and closes it as usual.
 */

static void
ngx_stream_vmess_stats_kill(ngx_stream_vmess_stat_t *st)
{
    ngx_queue_t              *q;
    ngx_stream_vmess_live_t  *live;

    st->killed = st->sh->kill;

    for (q = ngx_queue_head(&st->live);
         q != ngx_queue_sentinel(&st->live);
         q = ngx_queue_next(q))
    {
        live = ngx_queue_data(q, ngx_stream_vmess_live_t, queue);

        ngx_log_error(NGX_LOG_INFO, live->connection->log, 0,
                      "vmess: session of user \"%V\" ended by the API",
                      st->name);

        if (ngx_shutdown_socket(live->connection->fd, SHUT_RDWR)
            == -1)
        {
            ngx_log_error(NGX_LOG_INFO, live->connection->log,
                          ngx_socket_errno, ngx_shutdown_socket_n
                          " failed");
        }
    }
}
