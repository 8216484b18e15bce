/*
 * ngx_stream_vmess_module: the formats of the HTTP API
 * (ngx_stream_vmess_api.c): the answers written from the zone's counters
 * (JSON and the Prometheus text format) and the POST body read (one flat
 * JSON object).  No HTTP here: bytes into a pool's buffers.
 */

#include "ngx_stream_vmess_module.h"


#define NGX_STREAM_VMESS_API_FAMILIES   5

/* a sample line: the longest name, the labels but the user, a value */
#define NGX_STREAM_VMESS_API_USER_METRICS                                   \
    (NGX_STREAM_VMESS_API_FAMILIES                                          \
     * (sizeof("vmess_user_downlink_bytes_total{user=\"\",uuid=\"\","        \
               "direction=\"outbound\"} \n") + 36 + NGX_INT64_LEN))

#define NGX_STREAM_VMESS_API_SERVER_JSON                                    \
    (sizeof("{\"server\":\"\",\"sessions\":{}},")                           \
     + NGX_STREAM_VMESS_ST_N * (sizeof("\"unknown_user\":,")                \
                                + NGX_INT64_LEN))

#define NGX_STREAM_VMESS_API_SERVER_METRICS                                 \
    (NGX_STREAM_VMESS_ST_N                                                  \
     * (sizeof("vmess_server_sessions_total{server=\"\","                   \
               "status=\"unknown_user\"} \n") + NGX_INT64_LEN))


typedef struct {
    const char                     *name;
    const char                     *head;       /* HELP and TYPE lines */
} ngx_stream_vmess_api_family_t;


static u_char *ngx_stream_vmess_api_space(u_char *p, u_char *last);
static const char *ngx_stream_vmess_api_field(ngx_str_t *key, u_char **pp,
    u_char *last, ngx_stream_vmess_api_set_t *set);
static u_char *ngx_stream_vmess_api_user_metric(u_char *p,
    ngx_stream_vmess_user_sh_t *u, ngx_uint_t k);
static ngx_uint_t ngx_stream_vmess_api_match(ngx_stream_vmess_user_sh_t *u,
    ngx_str_t *id);
static size_t ngx_stream_vmess_api_label_len(u_char *s, size_t len);
static u_char *ngx_stream_vmess_api_label(u_char *p, u_char *s, size_t len);


/* the per-user metric families, in the order of user_metric()'s switch */

static ngx_stream_vmess_api_family_t  ngx_stream_vmess_api_families[] = {

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


static u_char  ngx_stream_vmess_api_server_family[] =
    "# HELP vmess_server_sessions_total Sessions of a vmess server, by "
    "$vmess_status.\n"
    "# TYPE vmess_server_sessions_total counter\n";


/*
 * The body: one flat JSON object whose members are "enabled" and "kill"
 * (true or false), "quota_bytes" and "expire" (integers, 0 for none),
 * and for a new user "id", "email" (strings) and "alter_id" (integer).
 * NULL, or the error to answer.
 */

const char *
ngx_stream_vmess_api_parse(u_char *p, u_char *last,
    ngx_stream_vmess_api_set_t *set)
{
    u_char      *start;
    ngx_str_t    key;
    const char  *err;
    ngx_uint_t   members;

    members = 0;

    p = ngx_stream_vmess_api_space(p, last);

    if (p == last || *p++ != '{') {
        return "malformed JSON";
    }

    for ( ;; ) {
        p = ngx_stream_vmess_api_space(p, last);

        if (p == last) {
            return "malformed JSON";
        }

        if (*p == '}' && members == 0) {
            p++;
            break;
        }

        if (*p++ != '"') {
            return "malformed JSON";
        }

        start = p;

        while (p < last && *p != '"' && *p != '\\') {
            p++;
        }

        if (p == last || *p != '"') {
            return "malformed JSON";
        }

        key.data = start;
        key.len = p++ - start;

        err = ngx_stream_vmess_api_field(&key, &p, last, set);

        if (err) {
            return err;
        }

        members++;

        p = ngx_stream_vmess_api_space(p, last);

        if (p < last && *p == ',') {
            p++;
            continue;
        }

        if (p < last && *p == '}') {
            p++;
            break;
        }

        return "malformed JSON";
    }

    p = ngx_stream_vmess_api_space(p, last);

    return (p == last) ? NULL : "malformed JSON";
}


/* ": value" of one member, from *pp on */

static const char *
ngx_stream_vmess_api_field(ngx_str_t *key, u_char **pp, u_char *last,
    ngx_stream_vmess_api_set_t *set)
{
    u_char      *p, *start;
    int64_t     *number;
    ngx_int_t   *flag;
    ngx_str_t   *text;

    p = *pp;

    p = ngx_stream_vmess_api_space(p, last);

    if (p == last || *p++ != ':') {
        return "malformed JSON";
    }

    p = ngx_stream_vmess_api_space(p, last);

    flag = NULL;
    number = NULL;
    text = NULL;

    if (key->len == 7 && ngx_strncmp(key->data, "enabled", 7) == 0) {
        flag = &set->enabled;

    } else if (key->len == 4 && ngx_strncmp(key->data, "kill", 4) == 0) {
        flag = &set->kill;

    } else if (key->len == 11
               && ngx_strncmp(key->data, "quota_bytes", 11) == 0)
    {
        number = &set->quota;

    } else if (key->len == 6 && ngx_strncmp(key->data, "expire", 6) == 0) {
        number = &set->expire;

    } else if (key->len == 8 && ngx_strncmp(key->data, "alter_id", 8) == 0) {
        number = &set->alter_id;

    } else if (key->len == 2 && ngx_strncmp(key->data, "id", 2) == 0) {
        text = &set->id;

    } else if (key->len == 5 && ngx_strncmp(key->data, "email", 5) == 0) {
        text = &set->email;

    } else {
        return "unknown field";
    }

    if (text) {
        /* no escapes: a UUID, or an email as a user file line holds it */

        if (p == last || *p++ != '"') {
            return "\"id\" and \"email\" take a string";
        }

        start = p;

        while (p < last && *p > ' ' && *p < 0x7f && *p != '"' && *p != '\\'
               && *p != '#')
        {
            p++;
        }

        if (p == last || *p != '"' || p == start || p - start > 255) {
            return "\"id\" and \"email\" take 1 to 255 characters, "
                   "no blank, quote, backslash or '#'";
        }

        text->data = start;
        text->len = p++ - start;

        *pp = p;
        return NULL;
    }

    if (flag) {
        if (last - p >= 4 && ngx_strncmp(p, "true", 4) == 0) {
            *flag = 1;
            p += 4;

        } else if (last - p >= 5 && ngx_strncmp(p, "false", 5) == 0) {
            *flag = 0;
            p += 5;

        } else {
            return "\"enabled\" and \"kill\" take true or false";
        }

        *pp = p;
        return NULL;
    }

    start = p;

    while (p < last && *p >= '0' && *p <= '9') {
        p++;
    }

    *number = (p == start || p - start > 18)
              ? NGX_ERROR : ngx_atoof(start, p - start);

    if (*number == NGX_ERROR) {
        return "\"quota_bytes\", \"expire\" and \"alter_id\" take an "
               "integer 0 or more";
    }

    *pp = p;

    return NULL;
}


/* a user by UUID (any case) or email; an inbound one before an outbound */

ngx_stream_vmess_user_sh_t *
ngx_stream_vmess_api_find(ngx_stream_vmess_stats_sh_t *sh, ngx_str_t *id)
{
    ngx_queue_t                 *q;
    ngx_stream_vmess_user_sh_t  *u, *outbound;

    outbound = NULL;

    for (q = ngx_queue_head(&sh->users);
         q != ngx_queue_sentinel(&sh->users);
         q = ngx_queue_next(q))
    {
        u = ngx_queue_data(q, ngx_stream_vmess_user_sh_t, queue);

        if (u->removed || !ngx_stream_vmess_api_match(u, id)) {
            continue;
        }

        if (!u->outbound) {
            return u;
        }

        if (outbound == NULL) {
            outbound = u;
        }
    }

    return outbound;
}


/* {"users":[...]}, or one user's object */

ngx_int_t
ngx_stream_vmess_api_users(ngx_stream_vmess_api_read_t *rd, ngx_buf_t **out)
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
        size += NGX_STREAM_VMESS_API_USER_JSON + 6 * u->name_len;
    }

    b = ngx_create_temp_buf(rd->pool, size);
    if (b == NULL) {
        return NGX_ERROR;
    }

    *out = b;

    if (rd->id.len) {
        u = ngx_stream_vmess_api_find(rd->sh, &rd->id);

        if (u) {
            b->last = ngx_stream_vmess_api_user_json(b->last, u, rd->reset);
            *b->last++ = '\n';
            rd->found = 1;
        }

        return NGX_OK;
    }

    b->last = ngx_cpymem(b->last, "{\"users\":[", 10);

    for (q = ngx_queue_head(&rd->sh->users);
         q != ngx_queue_sentinel(&rd->sh->users);
         q = ngx_queue_next(q))
    {
        u = ngx_queue_data(q, ngx_stream_vmess_user_sh_t, queue);

        if (u->removed) {
            continue;
        }

        b->last = ngx_stream_vmess_api_user_json(b->last, u, rd->reset);
        *b->last++ = ',';
    }

    if (b->last[-1] == ',') {
        b->last--;
    }

    b->last = ngx_cpymem(b->last, "]}\n", 3);

    return NGX_OK;
}


u_char *
ngx_stream_vmess_api_user_json(u_char *p, ngx_stream_vmess_user_sh_t *u,
    ngx_uint_t reset)
{
    u_char  uuid[37];       /* vmess_uuid_format(), NUL-ended */

    vmess_uuid_format(u->id, (char *) uuid);

    p = ngx_sprintf(p, "{\"uuid\":\"%*s\",\"user\":\"", sizeof(uuid) - 1,
                    uuid);
    p = (u_char *) ngx_escape_json(p, u->name, u->name_len);

    return ngx_sprintf(p, "\",\"outbound\":%s,\"uplink_bytes\":%uL,"
                       "\"downlink_bytes\":%uL,\"sessions_total\":%uL,"
                       "\"sessions_active\":%uA,\"last_seen\":%uA,"
                       "\"enabled\":%s,\"quota_bytes\":%uA,\"expire\":%uA}",
                       u->outbound ? "true" : "false",
                       ngx_stream_vmess_stats_read(&u->bytes[0], reset),
                       ngx_stream_vmess_stats_read(&u->bytes[1], reset),
                       ngx_stream_vmess_stats_read(&u->sessions, reset),
                       u->active, u->last_seen,
                       u->disabled ? "false" : "true", u->quota, u->expire);
}


/* {"servers":[{"server":"addr:port","sessions":{"ok":n,...}},...]} */

ngx_int_t
ngx_stream_vmess_api_servers(ngx_stream_vmess_api_read_t *rd, ngx_buf_t **out)
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
        size += NGX_STREAM_VMESS_API_SERVER_JSON + 6 * srv->name_len;
    }

    b = ngx_create_temp_buf(rd->pool, size);
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

ngx_int_t
ngx_stream_vmess_api_metrics(ngx_stream_vmess_api_read_t *rd, ngx_buf_t **out)
{
    size_t                         size;
    ngx_buf_t                     *b;
    ngx_uint_t                     i, k;
    ngx_queue_t                   *q;
    ngx_stream_vmess_user_sh_t    *u;
    ngx_stream_vmess_server_sh_t  *srv;

    size = sizeof(ngx_stream_vmess_api_server_family);

    for (k = 0; k < NGX_STREAM_VMESS_API_FAMILIES; k++) {
        size += ngx_strlen(ngx_stream_vmess_api_families[k].head);
    }

    for (q = ngx_queue_head(&rd->sh->users);
         q != ngx_queue_sentinel(&rd->sh->users);
         q = ngx_queue_next(q))
    {
        u = ngx_queue_data(q, ngx_stream_vmess_user_sh_t, queue);
        size += NGX_STREAM_VMESS_API_USER_METRICS
                + NGX_STREAM_VMESS_API_FAMILIES
                  * ngx_stream_vmess_api_label_len(u->name, u->name_len);
    }

    for (q = ngx_queue_head(&rd->sh->servers);
         q != ngx_queue_sentinel(&rd->sh->servers);
         q = ngx_queue_next(q))
    {
        srv = ngx_queue_data(q, ngx_stream_vmess_server_sh_t, queue);
        size += NGX_STREAM_VMESS_API_SERVER_METRICS
                + NGX_STREAM_VMESS_ST_N
                  * ngx_stream_vmess_api_label_len(srv->name, srv->name_len);
    }

    b = ngx_create_temp_buf(rd->pool, size);
    if (b == NULL) {
        return NGX_ERROR;
    }

    *out = b;

    for (k = 0; k < NGX_STREAM_VMESS_API_FAMILIES; k++) {
        b->last = ngx_cpymem(b->last, ngx_stream_vmess_api_families[k].head,
                             ngx_strlen(ngx_stream_vmess_api_families[k].head));

        for (q = ngx_queue_head(&rd->sh->users);
             q != ngx_queue_sentinel(&rd->sh->users);
             q = ngx_queue_next(q))
        {
            u = ngx_queue_data(q, ngx_stream_vmess_user_sh_t, queue);

            if (!u->removed) {
                b->last = ngx_stream_vmess_api_user_metric(b->last, u, k);
            }
        }
    }

    b->last = ngx_cpymem(b->last, ngx_stream_vmess_api_server_family,
                         sizeof(ngx_stream_vmess_api_server_family) - 1);

    for (q = ngx_queue_head(&rd->sh->servers);
         q != ngx_queue_sentinel(&rd->sh->servers);
         q = ngx_queue_next(q))
    {
        srv = ngx_queue_data(q, ngx_stream_vmess_server_sh_t, queue);

        for (i = 0; i < NGX_STREAM_VMESS_ST_N; i++) {
            b->last = ngx_cpymem(b->last,
                                 "vmess_server_sessions_total{server=\"", 36);
            b->last = ngx_stream_vmess_api_label(b->last, srv->name,
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
ngx_stream_vmess_api_user_metric(u_char *p, ngx_stream_vmess_user_sh_t *u,
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

    p = ngx_sprintf(p, "%s{user=\"", ngx_stream_vmess_api_families[k].name);
    p = ngx_stream_vmess_api_label(p, u->name, u->name_len);

    return ngx_sprintf(p, "\",uuid=\"%*s\",direction=\"%s\"} %uL\n",
                       sizeof(uuid) - 1, uuid,
                       u->outbound ? "outbound" : "inbound", value);
}


static ngx_uint_t
ngx_stream_vmess_api_match(ngx_stream_vmess_user_sh_t *u, ngx_str_t *id)
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
ngx_stream_vmess_api_label_len(u_char *s, size_t len)
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
ngx_stream_vmess_api_label(u_char *p, u_char *s, size_t len)
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


static u_char *
ngx_stream_vmess_api_space(u_char *p, u_char *last)
{
    while (p < last && (*p == ' ' || *p == '\t' || *p == '\r'
                        || *p == '\n'))
    {
        p++;
    }

    return p;
}
