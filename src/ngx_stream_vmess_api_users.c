/*
 * ngx_stream_vmess_module: users added and removed through the HTTP API
 * (ngx_stream_vmess_api.c), in the zone and in the server's user file.
 *
 * Both run under the zone's mutex, which also orders the writes of the
 * user file: each change rewrites the file whole (a temporary file
 * renamed over it), so that a reload or a restart loads what the zone
 * holds.  Then the zone's generation moves, and each worker rebuilds its
 * table of API users at its next unknown AuthID
 * (ngx_stream_vmess_runtime.c).  Users of "vmess_user" lines stay
 * (NGX_BUSY); a user file's users may be removed, being the API's.
 */

#include "ngx_stream_vmess_module.h"


static ngx_stream_vmess_server_sh_t *ngx_stream_vmess_api_server(
    ngx_stream_vmess_api_change_t *ch);
static ngx_int_t ngx_stream_vmess_api_new(ngx_stream_vmess_api_change_t *ch,
    ngx_stream_vmess_server_sh_t *srv);
static ngx_int_t ngx_stream_vmess_api_name(ngx_stream_vmess_api_change_t *ch,
    ngx_stream_vmess_user_sh_t *u, ngx_str_t *name);
static ngx_int_t ngx_stream_vmess_api_write(ngx_stream_vmess_api_change_t *ch,
    ngx_stream_vmess_server_sh_t *srv);
static ngx_int_t ngx_stream_vmess_api_write_file(
    ngx_stream_vmess_api_change_t *ch, u_char *name, u_char *data,
    size_t len);


/*
 * POST users: the user in ch->set is added to a server, or a user the API
 * removed comes back.  NGX_OK with ch->user; NGX_ABORT (bad server),
 * NGX_BUSY (a conflict) or NGX_ERROR with ch->error.
 */

ngx_int_t
ngx_stream_vmess_api_add(ngx_stream_vmess_api_change_t *ch)
{
    ngx_int_t                      rc;
    ngx_str_t                      name;
    ngx_queue_t                   *q;
    ngx_stream_vmess_user_sh_t    *u, *found;
    ngx_stream_vmess_server_sh_t  *srv;

    srv = ngx_stream_vmess_api_server(ch);

    if (srv == NULL) {
        return NGX_ABORT;
    }

    if (srv->file == NULL) {
        ch->error = "the server has no vmess_user_file";
        return NGX_BUSY;
    }

    name = ch->set->email.len ? ch->set->email : ch->set->id;
    found = NULL;

    for (q = ngx_queue_head(&ch->sh->users);
         q != ngx_queue_sentinel(&ch->sh->users);
         q = ngx_queue_next(q))
    {
        u = ngx_queue_data(q, ngx_stream_vmess_user_sh_t, queue);

        if (u->outbound) {
            continue;
        }

        if (ngx_memcmp(u->id, ch->uid, 16) == 0) {
            found = u;
            continue;
        }

        if (!u->removed && ch->set->email.len && u->name_len == name.len
            && ngx_memcmp(u->name, name.data, name.len) == 0)
        {
            ch->error = "duplicate email";
            return NGX_BUSY;
        }
    }

    if (found == NULL) {
        return ngx_stream_vmess_api_new(ch, srv);
    }

    u = found;

    if (!u->removed) {
        ch->error = "duplicate user";
        return NGX_BUSY;
    }

    if ((u->from & NGX_STREAM_VMESS_FROM_CONF)
        || ((u->from & NGX_STREAM_VMESS_FROM_FILE) && u->server != srv))
    {
        ch->error = "the user belongs to another server";
        return NGX_BUSY;
    }

    /* a user file's user is still in the workers' tables: it only wakes */

    if (!(u->from & NGX_STREAM_VMESS_FROM_FILE)) {
        if (ngx_stream_vmess_api_name(ch, u, &name) != NGX_OK) {
            return NGX_ERROR;
        }

        u->from |= NGX_STREAM_VMESS_FROM_API;
        u->server = srv;
        u->alter_ids = (ngx_uint_t) ch->set->alter_id;
    }

    u->removed = 0;
    ch->user = u;

    rc = ngx_stream_vmess_api_write(ch, srv);

    if (rc != NGX_OK) {
        u->removed = 1;
    }

    return rc;
}


/* "?server=" by its first listen address, or the only one */

static ngx_stream_vmess_server_sh_t *
ngx_stream_vmess_api_server(ngx_stream_vmess_api_change_t *ch)
{
    ngx_uint_t                     n;
    ngx_queue_t                   *q;
    ngx_stream_vmess_server_sh_t  *srv, *found;

    n = 0;
    found = NULL;

    for (q = ngx_queue_head(&ch->sh->servers);
         q != ngx_queue_sentinel(&ch->sh->servers);
         q = ngx_queue_next(q))
    {
        srv = ngx_queue_data(q, ngx_stream_vmess_server_sh_t, queue);
        n++;

        if (ch->server.len == 0
            || (srv->name_len == ch->server.len
                && ngx_memcmp(srv->name, ch->server.data, ch->server.len)
                   == 0))
        {
            found = srv;
        }
    }

    if (ch->server.len == 0 && n > 1) {
        ch->error = "more than one server: \"?server=\" is required";
        return NULL;
    }

    if (found == NULL) {
        ch->error = "unknown server";
    }

    return found;
}


static ngx_int_t
ngx_stream_vmess_api_new(ngx_stream_vmess_api_change_t *ch,
    ngx_stream_vmess_server_sh_t *srv)
{
    ngx_int_t                    rc;
    ngx_str_t                    name;
    ngx_stream_vmess_user_sh_t  *u;

    u = ngx_slab_calloc_locked(ch->shpool,
                               sizeof(ngx_stream_vmess_user_sh_t));
    if (u == NULL) {
        ch->error = "no room in the zone";
        return NGX_ERROR;
    }

    name = ch->set->email.len ? ch->set->email : ch->set->id;

    if (ngx_stream_vmess_api_name(ch, u, &name) != NGX_OK) {
        ngx_slab_free_locked(ch->shpool, u);
        return NGX_ERROR;
    }

    ngx_memcpy(&u->node.key, ch->uid, sizeof(ngx_rbtree_key_t));
    ngx_memcpy(u->id, ch->uid, 16);
    u->from = NGX_STREAM_VMESS_FROM_API;
    u->server = srv;
    u->alter_ids = (ngx_uint_t) ch->set->alter_id;

    ngx_rbtree_insert(&ch->sh->rbtree, &u->node);
    ngx_queue_insert_tail(&ch->sh->users, &u->queue);

    ch->user = u;

    rc = ngx_stream_vmess_api_write(ch, srv);

    if (rc != NGX_OK) {
        /* nodes stay while the zone lives: a worker may have seen it */
        u->removed = 1;
    }

    return rc;
}


/* the user's name in the zone: its email, else its UUID as sent */

static ngx_int_t
ngx_stream_vmess_api_name(ngx_stream_vmess_api_change_t *ch,
    ngx_stream_vmess_user_sh_t *u, ngx_str_t *name)
{
    u_char  *p;

    if (u->name_len == name->len
        && ngx_memcmp(u->name, name->data, name->len) == 0)
    {
        return NGX_OK;
    }

    p = ngx_slab_alloc_locked(ch->shpool, name->len);
    if (p == NULL) {
        ch->error = "no room in the zone";
        return NGX_ERROR;
    }

    if (u->name) {
        ngx_slab_free_locked(ch->shpool, u->name);
    }

    u->name = p;
    u->name_len = name->len;
    ngx_memcpy(p, name->data, name->len);

    return NGX_OK;
}


/*
 * DELETE users/ID: the user's new sessions are refused from now on, and
 * with ch->kill its live ones end.  NGX_OK with ch->user; NGX_DECLINED
 * (unknown), NGX_BUSY (a "vmess_user") or NGX_ERROR with ch->error.
 */

ngx_int_t
ngx_stream_vmess_api_remove(ngx_stream_vmess_api_change_t *ch)
{
    ngx_int_t                    rc;
    ngx_stream_vmess_user_sh_t  *u;

    u = ngx_stream_vmess_api_find(ch->sh, &ch->id);

    if (u == NULL || u->outbound) {
        ch->error = "unknown user";
        return NGX_DECLINED;
    }

    if (!(u->from & (NGX_STREAM_VMESS_FROM_FILE|NGX_STREAM_VMESS_FROM_API))
        || (u->from & NGX_STREAM_VMESS_FROM_CONF))
    {
        ch->error = "the user is in the configuration (vmess_user)";
        return NGX_BUSY;
    }

    u->removed = 1;
    ch->user = u;

    rc = ngx_stream_vmess_api_write(ch, u->server);

    if (rc != NGX_OK) {
        u->removed = 0;
        return rc;
    }

    if (ch->kill) {
        /* each worker's next tick ends the user's sessions there */
        (void) ngx_atomic_fetch_add(&u->kill, 1);
    }

    return NGX_OK;
}


/*
 * The server's user file, anew: its users from the file and the API, one
 * a line as "vmess_user_file" reads them.  Then the workers are told.
 */

static ngx_int_t
ngx_stream_vmess_api_write(ngx_stream_vmess_api_change_t *ch,
    ngx_stream_vmess_server_sh_t *srv)
{
    u_char                      *data, *p, uuid[37];
    size_t                       size;
    ngx_queue_t                 *q;
    ngx_stream_vmess_user_sh_t  *u;

    static u_char  head[] = "# rewritten by the vmess API at each change: "
                            "uuid [email] [alter_id=n]\n";

    size = sizeof(head);

    for (q = ngx_queue_head(&ch->sh->users);
         q != ngx_queue_sentinel(&ch->sh->users);
         q = ngx_queue_next(q))
    {
        u = ngx_queue_data(q, ngx_stream_vmess_user_sh_t, queue);
        size += sizeof(" alter_id=65535\n") + 36 + 1 + u->name_len;
    }

    data = ngx_pnalloc(ch->pool, size);
    if (data == NULL) {
        ch->error = "no memory";
        return NGX_ERROR;
    }

    p = ngx_cpymem(data, head, sizeof(head) - 1);

    for (q = ngx_queue_head(&ch->sh->users);
         q != ngx_queue_sentinel(&ch->sh->users);
         q = ngx_queue_next(q))
    {
        u = ngx_queue_data(q, ngx_stream_vmess_user_sh_t, queue);

        if (u->outbound || u->removed || u->server != srv
            || !(u->from & (NGX_STREAM_VMESS_FROM_FILE
                            |NGX_STREAM_VMESS_FROM_API)))
        {
            continue;
        }

        vmess_uuid_format(u->id, (char *) uuid);
        p = ngx_cpymem(p, uuid, 36);

        if (u->name_len != 36 || ngx_strncasecmp(u->name, uuid, 36) != 0) {
            *p++ = ' ';
            p = ngx_cpymem(p, u->name, u->name_len);
        }

        if (u->alter_ids) {
            p = ngx_sprintf(p, " alter_id=%ui", u->alter_ids);
        }

        *p++ = '\n';
    }

    if (ngx_stream_vmess_api_write_file(ch, srv->file, data, p - data)
        != NGX_OK)
    {
        ch->error = "the user file could not be written";
        return NGX_ERROR;
    }

    (void) ngx_atomic_fetch_add(&ch->sh->generation, 1);

    return NGX_OK;
}


/* a temporary file beside it, renamed over it: never half a file */

static ngx_int_t
ngx_stream_vmess_api_write_file(ngx_stream_vmess_api_change_t *ch,
    u_char *name, u_char *data, size_t len)
{
    u_char        *tmp;
    size_t         n;
    ssize_t        written;
    ngx_fd_t       fd;
    ngx_int_t      rc;

    n = ngx_strlen(name);

    tmp = ngx_pnalloc(ch->pool, n + sizeof(".tmp"));
    if (tmp == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(ngx_cpymem(tmp, name, n), ".tmp", sizeof(".tmp"));

    fd = ngx_open_file(tmp, NGX_FILE_WRONLY, NGX_FILE_TRUNCATE,
                       NGX_FILE_DEFAULT_ACCESS);

    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_ERR, ch->log, ngx_errno,
                      ngx_open_file_n " \"%s\" failed", tmp);
        return NGX_ERROR;
    }

    rc = NGX_OK;
    written = ngx_write_fd(fd, data, len);

    if (written != (ssize_t) len) {
        ngx_log_error(NGX_LOG_ERR, ch->log, ngx_errno,
                      ngx_write_fd_n " \"%s\" failed", tmp);
        rc = NGX_ERROR;
    }

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ch->log, ngx_errno,
                      ngx_close_file_n " \"%s\" failed", tmp);
        rc = NGX_ERROR;
    }

    if (rc == NGX_OK && ngx_rename_file(tmp, name) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ch->log, ngx_errno,
                      ngx_rename_file_n " \"%s\" to \"%s\" failed",
                      tmp, name);
        rc = NGX_ERROR;
    }

    if (rc != NGX_OK) {
        (void) ngx_delete_file(tmp);
    }

    return rc;
}
