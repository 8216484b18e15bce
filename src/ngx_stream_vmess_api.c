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
 *
 * "?reset=1" on users reads and zeroes the traffic counters in one atomic
 * step per counter, so a panel polling with it loses no byte.
 */

#include "ngx_stream_vmess_module.h"

#include <ngx_http.h>


#define NGX_HTTP_VMESS_API_USER_JSON                                        \
    sizeof("{\"uuid\":\"00000000-0000-0000-0000-000000000000\","           \
           "\"user\":\"\",\"outbound\":false,"                              \
           "\"uplink_bytes\":,\"downlink_bytes\":,"                         \
           "\"sessions_total\":,\"sessions_active\":,\"last_seen\":},")     \
    + 5 * NGX_INT64_LEN

#define NGX_HTTP_VMESS_API_FAMILIES     5

/* a sample line: the longest name, the labels but the user, a value */
#define NGX_HTTP_VMESS_API_USER_METRICS                                     \
    (NGX_HTTP_VMESS_API_FAMILIES                                            \
     * (sizeof("vmess_user_downlink_bytes_total{user=\"\",uuid=\"\","        \
               "direction=\"outbound\"} \n") + 36 + NGX_INT64_LEN))

#define NGX_HTTP_VMESS_API_SERVER_JSON                                      \
    (sizeof("{\"server\":\"\",\"sessions\":{}},")                           \
     + NGX_STREAM_VMESS_ST_N * (sizeof("\"unknown_user\":,")                \
                                + NGX_INT64_LEN))

#define NGX_HTTP_VMESS_API_SERVER_METRICS                                   \
    (NGX_STREAM_VMESS_ST_N                                                  \
     * (sizeof("vmess_server_sessions_total{server=\"\","                   \
               "status=\"unknown_user\"} \n") + NGX_INT64_LEN))


typedef struct {
    ngx_shm_zone_t                 *shm_zone;
} ngx_http_vmess_api_loc_conf_t;


typedef struct {
    const char                     *name;
    const char                     *head;       /* HELP and TYPE lines */
} ngx_http_vmess_api_family_t;


/* what one request reads, under the zone's mutex */

typedef struct {
    ngx_http_request_t             *r;
    ngx_stream_vmess_stats_sh_t    *sh;
    ngx_str_t                       id;         /* one user, or empty */
    ngx_uint_t                      reset;
    ngx_uint_t                      found;
} ngx_http_vmess_api_read_t;


static ngx_int_t ngx_http_vmess_api_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_vmess_api_users(ngx_http_vmess_api_read_t *rd,
    ngx_buf_t **out);
static u_char *ngx_http_vmess_api_user_json(u_char *p,
    ngx_stream_vmess_user_sh_t *u, ngx_uint_t reset);
static ngx_int_t ngx_http_vmess_api_servers(ngx_http_vmess_api_read_t *rd,
    ngx_buf_t **out);
static ngx_int_t ngx_http_vmess_api_metrics(ngx_http_vmess_api_read_t *rd,
    ngx_buf_t **out);
static u_char *ngx_http_vmess_api_user_metric(u_char *p,
    ngx_stream_vmess_user_sh_t *u, ngx_uint_t k);
static ngx_uint_t ngx_http_vmess_api_match(ngx_stream_vmess_user_sh_t *u,
    ngx_str_t *id);
static size_t ngx_http_vmess_api_label_len(u_char *s, size_t len);
static u_char *ngx_http_vmess_api_label(u_char *p, u_char *s, size_t len);
static ngx_int_t ngx_http_vmess_api_send(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *type, ngx_buf_t *b);
static ngx_int_t ngx_http_vmess_api_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *text);
static char *ngx_http_vmess_api(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void *ngx_http_vmess_api_create_loc_conf(ngx_conf_t *cf);


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
    NULL                                   /* merge location configuration */
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


/* the per-user metric families, in the order of user_metric()'s switch */

static ngx_http_vmess_api_family_t  ngx_http_vmess_api_families[] = {

    { "vmess_user_uplink_bytes_total",
      "# HELP vmess_user_uplink_bytes_total Payload bytes from the user's "
      "clients to their destinations.\n"
      "# TYPE vmess_user_uplink_bytes_total counter\n" },

    { "vmess_user_downlink_bytes_total",
      "# HELP vmess_user_downlink_bytes_total Payload bytes from the "
      "destinations to the user's clients.\n"
      "# TYPE vmess_user_downlink_bytes_total counter\n" },

    { "vmess_user_sessions_total",
      "# HELP vmess_user_sessions_total Sessions of the user.\n"
      "# TYPE vmess_user_sessions_total counter\n" },

    { "vmess_user_sessions_active",
      "# HELP vmess_user_sessions_active Sessions of the user open now.\n"
      "# TYPE vmess_user_sessions_active gauge\n" },

    { "vmess_user_last_seen_seconds",
      "# HELP vmess_user_last_seen_seconds When the user last had a "
      "session or traffic, as a Unix time.\n"
      "# TYPE vmess_user_last_seen_seconds gauge\n" }
};


static u_char  ngx_http_vmess_api_server_family[] =
    "# HELP vmess_server_sessions_total Sessions of a vmess server, by "
    "$vmess_status.\n"
    "# TYPE vmess_server_sessions_total counter\n";


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
    ngx_http_core_loc_conf_t       *clcf;
    ngx_http_vmess_api_read_t       rd;
    ngx_http_vmess_api_loc_conf_t  *vacf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_vmess_api_error(r, NGX_HTTP_NOT_ALLOWED,
                                        "method not allowed");
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    vacf = ngx_http_get_module_loc_conf(r, ngx_http_vmess_api_module);
    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    /* the endpoint is the rest of the URI after the location's prefix */

    path = r->uri;

    if (path.len >= clcf->name.len
        && ngx_strncmp(path.data, clcf->name.data, clcf->name.len) == 0)
    {
        path.data += clcf->name.len;
        path.len -= clcf->name.len;
    }

    if (path.len && path.data[0] == '/') {
        path.data++;
        path.len--;
    }

    ngx_memzero(&rd, sizeof(ngx_http_vmess_api_read_t));

    rd.r = r;
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
        rc = ngx_http_vmess_api_users(&rd, &b);

    } else if (path.len > 6 && ngx_strncmp(path.data, "users/", 6) == 0) {
        rd.id.data = path.data + 6;
        rd.id.len = path.len - 6;
        rc = ngx_http_vmess_api_users(&rd, &b);

    } else if (path.len == 7 && ngx_strncmp(path.data, "servers", 7) == 0) {
        rc = ngx_http_vmess_api_servers(&rd, &b);

    } else if (path.len == 7 && ngx_strncmp(path.data, "metrics", 7) == 0) {
        type = &ngx_http_vmess_api_text;
        rc = ngx_http_vmess_api_metrics(&rd, &b);

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


/* {"users":[...]}, or one user's object */

static ngx_int_t
ngx_http_vmess_api_users(ngx_http_vmess_api_read_t *rd, ngx_buf_t **out)
{
    size_t                       size;
    ngx_buf_t                   *b;
    ngx_queue_t                 *q;
    ngx_stream_vmess_user_sh_t  *u;

    size = sizeof("{\"users\":[]}\n");

    for (q = ngx_queue_head(&rd->sh->users);
         q != ngx_queue_sentinel(&rd->sh->users);
         q = ngx_queue_next(q))
    {
        u = ngx_queue_data(q, ngx_stream_vmess_user_sh_t, queue);
        size += NGX_HTTP_VMESS_API_USER_JSON + 6 * u->name_len;
    }

    b = ngx_create_temp_buf(rd->r->pool, size);
    if (b == NULL) {
        return NGX_ERROR;
    }

    *out = b;

    if (rd->id.len == 0) {
        b->last = ngx_cpymem(b->last, "{\"users\":[", 10);
    }

    for (q = ngx_queue_head(&rd->sh->users);
         q != ngx_queue_sentinel(&rd->sh->users);
         q = ngx_queue_next(q))
    {
        u = ngx_queue_data(q, ngx_stream_vmess_user_sh_t, queue);

        if (rd->id.len == 0) {
            b->last = ngx_http_vmess_api_user_json(b->last, u, rd->reset);
            *b->last++ = ',';
            continue;
        }

        /* one user: the inbound one first, as it was created first */

        if (ngx_http_vmess_api_match(u, &rd->id)) {
            b->last = ngx_http_vmess_api_user_json(b->last, u, rd->reset);
            *b->last++ = '\n';
            rd->found = 1;
            return NGX_OK;
        }
    }

    if (rd->id.len) {
        return NGX_OK;
    }

    if (b->last[-1] == ',') {
        b->last--;
    }

    b->last = ngx_cpymem(b->last, "]}\n", 3);

    return NGX_OK;
}


static u_char *
ngx_http_vmess_api_user_json(u_char *p, ngx_stream_vmess_user_sh_t *u,
    ngx_uint_t reset)
{
    u_char  uuid[37];       /* vmess_uuid_format(), NUL-ended */

    vmess_uuid_format(u->id, (char *) uuid);

    p = ngx_sprintf(p, "{\"uuid\":\"%*s\",\"user\":\"", sizeof(uuid) - 1,
                    uuid);
    p = (u_char *) ngx_escape_json(p, u->name, u->name_len);

    return ngx_sprintf(p, "\",\"outbound\":%s,\"uplink_bytes\":%uL,"
                       "\"downlink_bytes\":%uL,\"sessions_total\":%uL,"
                       "\"sessions_active\":%uA,\"last_seen\":%uA}",
                       u->outbound ? "true" : "false",
                       ngx_stream_vmess_stats_read(&u->bytes[0], reset),
                       ngx_stream_vmess_stats_read(&u->bytes[1], reset),
                       ngx_stream_vmess_stats_read(&u->sessions, reset),
                       u->active, u->last_seen);
}


/* {"servers":[{"server":"addr:port","sessions":{"ok":n,...}},...]} */

static ngx_int_t
ngx_http_vmess_api_servers(ngx_http_vmess_api_read_t *rd, ngx_buf_t **out)
{
    size_t                         size;
    ngx_buf_t                     *b;
    ngx_uint_t                     i;
    ngx_queue_t                   *q;
    ngx_stream_vmess_server_sh_t  *srv;

    size = sizeof("{\"servers\":[]}\n");

    for (q = ngx_queue_head(&rd->sh->servers);
         q != ngx_queue_sentinel(&rd->sh->servers);
         q = ngx_queue_next(q))
    {
        srv = ngx_queue_data(q, ngx_stream_vmess_server_sh_t, queue);
        size += NGX_HTTP_VMESS_API_SERVER_JSON + 6 * srv->name_len;
    }

    b = ngx_create_temp_buf(rd->r->pool, size);
    if (b == NULL) {
        return NGX_ERROR;
    }

    *out = b;

    b->last = ngx_cpymem(b->last, "{\"servers\":[", 12);

    for (q = ngx_queue_head(&rd->sh->servers);
         q != ngx_queue_sentinel(&rd->sh->servers);
         q = ngx_queue_next(q))
    {
        srv = ngx_queue_data(q, ngx_stream_vmess_server_sh_t, queue);

        b->last = ngx_cpymem(b->last, "{\"server\":\"", 11);
        b->last = (u_char *) ngx_escape_json(b->last, srv->name,
                                             srv->name_len);
        b->last = ngx_cpymem(b->last, "\",\"sessions\":{", 14);

        for (i = 0; i < NGX_STREAM_VMESS_ST_N; i++) {
            b->last = ngx_sprintf(b->last, "%s\"%V\":%uA", i ? "," : "",
                                  ngx_stream_vmess_status_name(i),
                                  srv->status[i]);
        }

        b->last = ngx_cpymem(b->last, "}},", 3);
    }

    if (b->last[-1] == ',') {
        b->last--;
    }

    b->last = ngx_cpymem(b->last, "]}\n", 3);

    return NGX_OK;
}


/* each family's HELP and TYPE lines, then its samples */

static ngx_int_t
ngx_http_vmess_api_metrics(ngx_http_vmess_api_read_t *rd, ngx_buf_t **out)
{
    size_t                         size;
    ngx_buf_t                     *b;
    ngx_uint_t                     i, k;
    ngx_queue_t                   *q;
    ngx_stream_vmess_user_sh_t    *u;
    ngx_stream_vmess_server_sh_t  *srv;

    size = sizeof(ngx_http_vmess_api_server_family);

    for (k = 0; k < NGX_HTTP_VMESS_API_FAMILIES; k++) {
        size += ngx_strlen(ngx_http_vmess_api_families[k].head);
    }

    for (q = ngx_queue_head(&rd->sh->users);
         q != ngx_queue_sentinel(&rd->sh->users);
         q = ngx_queue_next(q))
    {
        u = ngx_queue_data(q, ngx_stream_vmess_user_sh_t, queue);
        size += NGX_HTTP_VMESS_API_USER_METRICS
                + NGX_HTTP_VMESS_API_FAMILIES
                  * ngx_http_vmess_api_label_len(u->name, u->name_len);
    }

    for (q = ngx_queue_head(&rd->sh->servers);
         q != ngx_queue_sentinel(&rd->sh->servers);
         q = ngx_queue_next(q))
    {
        srv = ngx_queue_data(q, ngx_stream_vmess_server_sh_t, queue);
        size += NGX_HTTP_VMESS_API_SERVER_METRICS
                + NGX_STREAM_VMESS_ST_N
                  * ngx_http_vmess_api_label_len(srv->name, srv->name_len);
    }

    b = ngx_create_temp_buf(rd->r->pool, size);
    if (b == NULL) {
        return NGX_ERROR;
    }

    *out = b;

    for (k = 0; k < NGX_HTTP_VMESS_API_FAMILIES; k++) {
        b->last = ngx_cpymem(b->last, ngx_http_vmess_api_families[k].head,
                             ngx_strlen(ngx_http_vmess_api_families[k].head));

        for (q = ngx_queue_head(&rd->sh->users);
             q != ngx_queue_sentinel(&rd->sh->users);
             q = ngx_queue_next(q))
        {
            u = ngx_queue_data(q, ngx_stream_vmess_user_sh_t, queue);
            b->last = ngx_http_vmess_api_user_metric(b->last, u, k);
        }
    }

    b->last = ngx_cpymem(b->last, ngx_http_vmess_api_server_family,
                         sizeof(ngx_http_vmess_api_server_family) - 1);

    for (q = ngx_queue_head(&rd->sh->servers);
         q != ngx_queue_sentinel(&rd->sh->servers);
         q = ngx_queue_next(q))
    {
        srv = ngx_queue_data(q, ngx_stream_vmess_server_sh_t, queue);

        for (i = 0; i < NGX_STREAM_VMESS_ST_N; i++) {
            b->last = ngx_cpymem(b->last,
                                 "vmess_server_sessions_total{server=\"", 36);
            b->last = ngx_http_vmess_api_label(b->last, srv->name,
                                               srv->name_len);
            b->last = ngx_sprintf(b->last, "\",status=\"%V\"} %uA\n",
                                  ngx_stream_vmess_status_name(i),
                                  srv->status[i]);
        }
    }

    return NGX_OK;
}


/* one sample of family k for user u */

static u_char *
ngx_http_vmess_api_user_metric(u_char *p, ngx_stream_vmess_user_sh_t *u,
    ngx_uint_t k)
{
    uint64_t  value;
    u_char    uuid[37];     /* vmess_uuid_format(), NUL-ended */

    switch (k) {
    case 0:
        value = u->bytes[NGX_STREAM_VMESS_UP];
        break;
    case 1:
        value = u->bytes[NGX_STREAM_VMESS_DOWN];
        break;
    case 2:
        value = u->sessions;
        break;
    case 3:
        value = u->active;
        break;
    default:
        value = u->last_seen;
        break;
    }

    vmess_uuid_format(u->id, (char *) uuid);

    p = ngx_sprintf(p, "%s{user=\"", ngx_http_vmess_api_families[k].name);
    p = ngx_http_vmess_api_label(p, u->name, u->name_len);

    return ngx_sprintf(p, "\",uuid=\"%*s\",direction=\"%s\"} %uL\n",
                       sizeof(uuid) - 1, uuid,
                       u->outbound ? "outbound" : "inbound", value);
}


static ngx_uint_t
ngx_http_vmess_api_match(ngx_stream_vmess_user_sh_t *u, ngx_str_t *id)
{
    u_char  uuid[37];       /* vmess_uuid_format(), NUL-ended */

    if (id->len == u->name_len
        && ngx_strncmp(id->data, u->name, id->len) == 0)
    {
        return 1;
    }

    vmess_uuid_format(u->id, (char *) uuid);

    return id->len == sizeof(uuid) - 1
           && ngx_strncasecmp(id->data, uuid, id->len) == 0;
}


/* a Prometheus label value escapes only backslash, quote and newline */

static size_t
ngx_http_vmess_api_label_len(u_char *s, size_t len)
{
    size_t  n;

    for (n = len; len--; s++) {
        if (*s == '\\' || *s == '"' || *s == '\n') {
            n++;
        }
    }

    return n;
}


static u_char *
ngx_http_vmess_api_label(u_char *p, u_char *s, size_t len)
{
    while (len--) {
        switch (*s) {

        case '\\':
        case '"':
            *p++ = '\\';
            *p++ = *s;
            break;

        case '\n':
            *p++ = '\\';
            *p++ = 'n';
            break;

        default:
            *p++ = *s;
        }

        s++;
    }

    return p;
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


/* {"error":"..."} with a 4xx or 5xx status */

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

    b = ngx_create_temp_buf(r->pool, sizeof("{\"error\":\"\"}\n") + len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_sprintf(b->last, "{\"error\":\"%s\"}\n", text);

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
