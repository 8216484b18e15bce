/*
 * ngx_stream_vmess_module: the HTTP API ("vmess_api"), an http module in
 * the same .so as the stream modules.
 *
 * It reads the counters of a stream "vmess_zone", found by its name
 * (ngx_shared_memory_add() with size 0 and the stream module's tag, so
 * the zone may be declared before or after the http block):
 *
 *     GET <location>users            every user's counters (JSON)
 *     GET <location>users/<id>       one user, by UUID or email
 *     GET <location>servers          sessions per server and $vmess_status
 *     GET <location>metrics          all of it, Prometheus text format
 *     POST <location>users/<id>      {"enabled":false,"kill":true,
 *                                    "quota_bytes":n,"expire":t}, any of
 *     POST <location>users           {"id":UUID,"email":..,"alter_id":n,
 *                                    and the above}: a new user
 *     DELETE <location>users/<id>    the user goes ("?kill=1": and its
 *                                    live sessions)
 *
 * "?reset=1" on users reads and zeroes the traffic counters in one atomic
 * step per counter, so a panel polling with it loses no byte.  What POST
 * sets lives in the zone: every worker sees it at the user's next session.
 */

#include "ngx_stream_vmess_module.h"

#include <ngx_http.h>


/* the largest POST body read */
#define NGX_HTTP_VMESS_API_BODY_MAX     4096


typedef struct {
    ngx_shm_zone_t                 *shm_zone;
} ngx_http_vmess_api_loc_conf_t;


static ngx_int_t ngx_http_vmess_api_handler(ngx_http_request_t *r);
static void ngx_http_vmess_api_endpoint(ngx_http_request_t *r,
    ngx_str_t *path);
static void ngx_http_vmess_api_post_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_vmess_api_post(ngx_http_request_t *r);
static ngx_int_t ngx_http_vmess_api_change(ngx_http_request_t *r,
    ngx_stream_vmess_api_set_t *set, ngx_str_t *id);
static ngx_int_t ngx_http_vmess_api_changed(ngx_http_request_t *r,
    ngx_int_t rc, ngx_stream_vmess_api_change_t *ch);
static ngx_int_t ngx_http_vmess_api_body(ngx_http_request_t *r,
    ngx_str_t *body);
static ngx_int_t ngx_http_vmess_api_send(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *type, ngx_buf_t *b);
static ngx_int_t ngx_http_vmess_api_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *text);
static char *ngx_http_vmess_api(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void *ngx_http_vmess_api_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_vmess_api_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);


static ngx_command_t  ngx_http_vmess_api_commands[] = {

    { ngx_string("vmess_api"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_vmess_api,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_vmess_api_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_vmess_api_create_loc_conf,    /* create location configuration */
    ngx_http_vmess_api_merge_loc_conf      /* merge location configuration */
};


ngx_module_t  ngx_http_vmess_api_module = {
    NGX_MODULE_V1,
    &ngx_http_vmess_api_module_ctx,        /* module context */
    ngx_http_vmess_api_commands,           /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_str_t  ngx_http_vmess_api_json = ngx_string("application/json");
static ngx_str_t  ngx_http_vmess_api_text =
    ngx_string("text/plain; version=0.0.4");


static ngx_int_t
ngx_http_vmess_api_handler(ngx_http_request_t *r)
{
    ngx_int_t                       rc;
    ngx_buf_t                      *b;
    ngx_str_t                       path, value, *type;
    ngx_slab_pool_t                *shpool;
    ngx_stream_vmess_api_read_t     rd;
    ngx_http_vmess_api_loc_conf_t  *vacf;

    ngx_http_vmess_api_endpoint(r, &path);

    if (r->method == NGX_HTTP_DELETE
        && path.len > 6 && ngx_strncmp(path.data, "users/", 6) == 0)
    {
        rc = ngx_http_discard_request_body(r);

        if (rc != NGX_OK) {
            return rc;
        }

        path.data += 6;
        path.len -= 6;

        return ngx_http_vmess_api_change(r, NULL, &path);
    }

    if (r->method == NGX_HTTP_POST
        && path.len >= 5 && ngx_strncmp(path.data, "users", 5) == 0
        && (path.len == 5 || path.data[5] == '/'))
    {
        if (r->headers_in.content_length_n < 0) {
            /* a chunked body would have no bound before it is read */
            return ngx_http_vmess_api_error(r, NGX_HTTP_LENGTH_REQUIRED,
                                            "length required");
        }

        if (r->headers_in.content_length_n > NGX_HTTP_VMESS_API_BODY_MAX) {
            return ngx_http_vmess_api_error(r,
                                       NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                       "body too large");
        }

        rc = ngx_http_read_client_request_body(r,
                                               ngx_http_vmess_api_post_body);

        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            return rc;
        }

        return NGX_DONE;
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_vmess_api_error(r, NGX_HTTP_NOT_ALLOWED,
                                        "method not allowed");
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    vacf = ngx_http_get_module_loc_conf(r, ngx_http_vmess_api_module);

    ngx_memzero(&rd, sizeof(ngx_stream_vmess_api_read_t));

    rd.pool = r->pool;
    rd.sh = ngx_stream_vmess_zone_stats(vacf->shm_zone, &shpool);

    if (rd.sh == NULL) {
        return ngx_http_vmess_api_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "zone not ready");
    }

    if (ngx_http_arg(r, (u_char *) "reset", 5, &value) == NGX_OK) {
        rd.reset = (value.len == 1 && value.data[0] == '1');
    }

    type = &ngx_http_vmess_api_json;
    b = NULL;

    ngx_shmtx_lock(&shpool->mutex);

    if (path.len == 5 && ngx_strncmp(path.data, "users", 5) == 0) {
        rc = ngx_stream_vmess_api_users(&rd, &b);

    } else if (path.len > 6 && ngx_strncmp(path.data, "users/", 6) == 0) {
        rd.id.data = path.data + 6;
        rd.id.len = path.len - 6;
        rc = ngx_stream_vmess_api_users(&rd, &b);

    } else if (path.len == 7 && ngx_strncmp(path.data, "servers", 7) == 0) {
        rc = ngx_stream_vmess_api_servers(&rd, &b);

    } else if (path.len == 7 && ngx_strncmp(path.data, "metrics", 7) == 0) {
        type = &ngx_http_vmess_api_text;
        rc = ngx_stream_vmess_api_metrics(&rd, &b);

    } else {
        rc = NGX_DECLINED;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        return ngx_http_vmess_api_error(r, NGX_HTTP_NOT_FOUND,
                                        "unknown endpoint");
    }

    if (rd.id.len && !rd.found) {
        return ngx_http_vmess_api_error(r, NGX_HTTP_NOT_FOUND,
                                        "unknown user");
    }

    return ngx_http_vmess_api_send(r, NGX_HTTP_OK, type, b);
}


/* the endpoint is the rest of the URI after the location's prefix */

static void
ngx_http_vmess_api_endpoint(ngx_http_request_t *r, ngx_str_t *path)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    *path = r->uri;

    if (path->len >= clcf->name.len
        && ngx_strncmp(path->data, clcf->name.data, clcf->name.len) == 0)
    {
        path->data += clcf->name.len;
        path->len -= clcf->name.len;
    }

    if (path->len && path->data[0] == '/') {
        path->data++;
        path->len--;
    }
}


static void
ngx_http_vmess_api_post_body(ngx_http_request_t *r)
{
    ngx_http_finalize_request(r, ngx_http_vmess_api_post(r));
}


/* POST users/ID: set what the body says, answer the user */

static ngx_int_t
ngx_http_vmess_api_post(ngx_http_request_t *r)
{
    ngx_int_t                       rc;
    ngx_buf_t                      *b;
    ngx_str_t                       path, body, id;
    const char                     *err;
    ngx_slab_pool_t                *shpool;
    ngx_stream_vmess_api_set_t      set;
    ngx_stream_vmess_user_sh_t     *u;
    ngx_stream_vmess_stats_sh_t    *sh;
    ngx_http_vmess_api_loc_conf_t  *vacf;

    rc = ngx_http_vmess_api_body(r, &body);

    if (rc != NGX_OK) {
        return rc;
    }

    set.enabled = -1;
    set.kill = -1;
    set.quota = -1;
    set.expire = -1;
    set.alter_id = -1;
    ngx_str_null(&set.id);
    ngx_str_null(&set.email);

    err = ngx_stream_vmess_api_parse(body.data, body.data + body.len, &set);

    if (err) {
        return ngx_http_vmess_api_error(r, NGX_HTTP_BAD_REQUEST, err);
    }

    ngx_http_vmess_api_endpoint(r, &path);

    if (path.len == 5) {
        return ngx_http_vmess_api_change(r, &set, NULL);
    }

    if (set.id.len || set.email.len || set.alter_id != -1) {
        return ngx_http_vmess_api_error(r, NGX_HTTP_BAD_REQUEST,
                                        "\"id\", \"email\" and "
                                        "\"alter_id\" are for a new user");
    }

    vacf = ngx_http_get_module_loc_conf(r, ngx_http_vmess_api_module);

    sh = ngx_stream_vmess_zone_stats(vacf->shm_zone, &shpool);

    if (sh == NULL) {
        return ngx_http_vmess_api_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "zone not ready");
    }

    id.data = path.data + 6;
    id.len = path.len - 6;

    ngx_shmtx_lock(&shpool->mutex);

    u = ngx_stream_vmess_api_find(sh, &id);

    if (u == NULL) {
        ngx_shmtx_unlock(&shpool->mutex);
        return ngx_http_vmess_api_error(r, NGX_HTTP_NOT_FOUND,
                                        "unknown user");
    }

    b = ngx_create_temp_buf(r->pool,
                            NGX_STREAM_VMESS_API_USER_JSON + 6 * u->name_len);
    if (b == NULL) {
        ngx_shmtx_unlock(&shpool->mutex);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (set.enabled != -1) {
        u->disabled = !set.enabled;
    }

    if (set.quota != -1) {
        u->quota = (ngx_atomic_uint_t) set.quota;
    }

    if (set.expire != -1) {
        u->expire = (ngx_atomic_uint_t) set.expire;
    }

    if (set.kill == 1) {
        /* each worker's next tick ends the user's sessions there */
        (void) ngx_atomic_fetch_add(&u->kill, 1);
    }

    b->last = ngx_stream_vmess_api_user_json(b->last, u, 0);
    *b->last++ = '\n';

    ngx_shmtx_unlock(&shpool->mutex);

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                  "vmess: user \"%V\" set by the API: %V", &id, &body);

    return ngx_http_vmess_api_send(r, NGX_HTTP_OK, &ngx_http_vmess_api_json,
                                   b);
}


/*
 * POST users (set, the body) or DELETE users/ID (id): the change in the
 * zone and the user file, answered with the user's object.
 */

static ngx_int_t
ngx_http_vmess_api_change(ngx_http_request_t *r,
    ngx_stream_vmess_api_set_t *set, ngx_str_t *id)
{
    ngx_int_t                       rc;
    ngx_str_t                       value;
    ngx_stream_vmess_api_change_t   ch;
    ngx_http_vmess_api_loc_conf_t  *vacf;

    ngx_memzero(&ch, sizeof(ngx_stream_vmess_api_change_t));

    if (set) {
        if (set->id.len == 0) {
            return ngx_http_vmess_api_error(r, NGX_HTTP_BAD_REQUEST,
                                            "\"id\" is required");
        }

        if (vmess_uuid_parse((char *) set->id.data, set->id.len, ch.uid)
            != VMESS_OK)
        {
            return ngx_http_vmess_api_error(r, NGX_HTTP_BAD_REQUEST,
                                            "invalid UUID");
        }

        if (set->alter_id > 65535 || set->kill != -1) {
            return ngx_http_vmess_api_error(r, NGX_HTTP_BAD_REQUEST,
                                            "\"alter_id\" takes 0 to 65535, "
                                            "\"kill\" is for a user");
        }

        if (set->alter_id == -1) {
            set->alter_id = 0;
        }

        if (ngx_http_arg(r, (u_char *) "server", 6, &ch.server) != NGX_OK) {
            ngx_str_null(&ch.server);
        }

    } else {
        ch.id = *id;

        if (ngx_http_arg(r, (u_char *) "kill", 4, &value) == NGX_OK) {
            ch.kill = (value.len == 1 && value.data[0] == '1');
        }
    }

    vacf = ngx_http_get_module_loc_conf(r, ngx_http_vmess_api_module);

    ch.pool = r->pool;
    ch.log = r->connection->log;
    ch.set = set;
    ch.sh = ngx_stream_vmess_zone_stats(vacf->shm_zone, &ch.shpool);

    if (ch.sh == NULL) {
        return ngx_http_vmess_api_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "zone not ready");
    }

    ngx_shmtx_lock(&ch.shpool->mutex);

    if (set) {
        rc = ngx_stream_vmess_api_add(&ch);

        if (rc == NGX_OK) {
            ch.user->disabled = (set->enabled == 0);
            ch.user->quota = (set->quota > 0) ? (ngx_atomic_uint_t) set->quota
                                               : 0;
            ch.user->expire = (set->expire > 0)
                              ? (ngx_atomic_uint_t) set->expire : 0;
        }

    } else {
        rc = ngx_stream_vmess_api_remove(&ch);
    }

    return ngx_http_vmess_api_changed(r, rc, &ch);
}


/* still under the zone's mutex: the answer to a change */

static ngx_int_t
ngx_http_vmess_api_changed(ngx_http_request_t *r, ngx_int_t rc,
    ngx_stream_vmess_api_change_t *ch)
{
    ngx_buf_t  *b;

    b = NULL;

    if (rc == NGX_OK) {
        b = ngx_create_temp_buf(r->pool, NGX_STREAM_VMESS_API_USER_JSON
                                         + 6 * ch->user->name_len);
        if (b) {
            b->last = ngx_stream_vmess_api_user_json(b->last, ch->user, 0);
            *b->last++ = '\n';
        }
    }

    ngx_shmtx_unlock(&ch->shpool->mutex);

    switch (rc) {

    case NGX_OK:
        break;

    case NGX_ABORT:
        return ngx_http_vmess_api_error(r, NGX_HTTP_BAD_REQUEST, ch->error);

    case NGX_DECLINED:
        return ngx_http_vmess_api_error(r, NGX_HTTP_NOT_FOUND, ch->error);

    case NGX_BUSY:
        return ngx_http_vmess_api_error(r, NGX_HTTP_CONFLICT, ch->error);

    default:
        return ngx_http_vmess_api_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        ch->error ? ch->error : "error");
    }

    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                  "vmess: user \"%*s\" %s by the API",
                  ch->user->name_len, ch->user->name,
                  ch->set ? "added" : "removed");

    return ngx_http_vmess_api_send(r, ch->set ? NGX_HTTP_CREATED : NGX_HTTP_OK,
                                   &ngx_http_vmess_api_json, b);
}


/* the request body in one piece of memory */

static ngx_int_t
ngx_http_vmess_api_body(ngx_http_request_t *r, ngx_str_t *body)
{
    u_char       *p;
    size_t        len;
    ngx_chain_t  *cl;

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return ngx_http_vmess_api_error(r, NGX_HTTP_BAD_REQUEST,
                                        "no body");
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        if (cl->buf->in_file) {
            return ngx_http_vmess_api_error(r,
                                       NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                       "body too large");
        }

        len += cl->buf->last - cl->buf->pos;
    }

    if (len > NGX_HTTP_VMESS_API_BODY_MAX) {
        return ngx_http_vmess_api_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                        "body too large");
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    body->data = p;
    body->len = len;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        p = ngx_cpymem(p, cl->buf->pos, cl->buf->last - cl->buf->pos);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_vmess_api_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, ngx_buf_t *b)
{
    ngx_int_t    rc;
    ngx_chain_t  out;

    r->headers_out.status = status;
    r->headers_out.content_type = *type;
    r->headers_out.content_type_len = type->len;
    r->headers_out.content_length_n = b->last - b->pos;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* {"error":"..."} with a 4xx or 5xx status, the text JSON-escaped */

static ngx_int_t
ngx_http_vmess_api_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *text)
{
    size_t      len;
    ngx_buf_t  *b;

    if (status == NGX_HTTP_NOT_ALLOWED || status == NGX_HTTP_NOT_FOUND) {
        r->keepalive = 0;
    }

    len = ngx_strlen(text);

    b = ngx_create_temp_buf(r->pool, sizeof("{\"error\":\"\"}\n") + len
                            + ngx_escape_json(NULL, (u_char *) text, len));
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->last, "{\"error\":\"", 10);
    b->last = (u_char *) ngx_escape_json(b->last, (u_char *) text, len);
    b->last = ngx_cpymem(b->last, "\"}\n", 3);

    ngx_http_discard_request_body(r);

    return ngx_http_vmess_api_send(r, status, &ngx_http_vmess_api_json, b);
}


static char *
ngx_http_vmess_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_vmess_api_loc_conf_t  *vacf = conf;

    ngx_str_t                 *value, name;
    ngx_http_core_loc_conf_t  *clcf;

    if (vacf->shm_zone) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len <= 5 || ngx_strncmp(value[1].data, "zone=", 5) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\", expected zone=name",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    name.data = value[1].data + 5;
    name.len = value[1].len - 5;

    /* the stream "vmess_zone" of that name, declared there with its size */

    vacf->shm_zone = ngx_shared_memory_add(cf, &name, 0,
                                           &ngx_stream_vmess_module);
    if (vacf->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_vmess_api_handler;

    return NGX_CONF_OK;
}


static void *
ngx_http_vmess_api_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_vmess_api_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_vmess_api_loc_conf_t));
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


/*
 * The API limits its bodies itself (NGX_HTTP_VMESS_API_BODY_MAX) and
 * answers a larger one in JSON: client_max_body_size, merged by the core
 * module before this one, would answer first, in HTML.
 */

static char *
ngx_http_vmess_api_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_vmess_api_loc_conf_t  *conf = child;

    ngx_http_core_loc_conf_t  *clcf;

    if (conf->shm_zone) {
        clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
        clcf->client_max_body_size = 0;
    }

    return NGX_CONF_OK;
}
