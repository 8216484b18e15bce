/*
 * ngx_stream_vmess_module: users ("vmess_user", "vmess_user_file").
 *
 * Both directives collect "uuid [email] [alter_id=n]" entries; a "vmess
 * on" server turns them into the core's user table at merge time, with
 * its legacy index and its drain size.
 */

#include "ngx_stream_vmess_module.h"

#include <openssl/hmac.h>


static char *ngx_stream_vmess_read_file(ngx_conf_t *cf, ngx_str_t *name,
    ngx_str_t *text);
static char *ngx_stream_vmess_parse_user_lines(ngx_conf_t *cf,
    ngx_stream_vmess_srv_conf_t *vscf, ngx_str_t *name, ngx_str_t *text);
static char *ngx_stream_vmess_add_user(ngx_conf_t *cf,
    ngx_stream_vmess_srv_conf_t *vscf, ngx_str_t *field, ngx_uint_t n,
    ngx_str_t *file, ngx_uint_t line);
static char *ngx_stream_vmess_unique_users(ngx_conf_t *cf,
    ngx_stream_vmess_srv_conf_t *vscf);
static char *ngx_stream_vmess_drain_size(ngx_conf_t *cf,
    ngx_stream_vmess_srv_conf_t *vscf);
static void ngx_stream_vmess_cleanup_users(void *data);


char *
ngx_stream_vmess_user(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_vmess_srv_conf_t  *vscf = conf;

    ngx_str_t  *value;

    value = cf->args->elts;

    return ngx_stream_vmess_add_user(cf, vscf, &value[1],
                                     cf->args->nelts - 1, NULL, 0);
}


char *
ngx_stream_vmess_user_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_vmess_srv_conf_t  *vscf = conf;

    ngx_str_t  *value, name, text;

    value = cf->args->elts;
    name = value[1];

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_stream_vmess_read_file(cf, &name, &text) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    /* the API keeps the users it adds in the server's first file */
    if (vscf->user_file.len == 0) {
        vscf->user_file = name;
    }

    return ngx_stream_vmess_parse_user_lines(cf, vscf, &name, &text);
}


/* the whole file, in cf->temp_pool */

static char *
ngx_stream_vmess_read_file(ngx_conf_t *cf, ngx_str_t *name, ngx_str_t *text)
{
    char             *rv;
    off_t             size;
    ssize_t           n;
    ngx_file_t        file;
    ngx_file_info_t   fi;

    ngx_memzero(&file, sizeof(ngx_file_t));

    file.name = *name;
    file.log = cf->log;

    file.fd = ngx_open_file(name->data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (file.fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%V\" failed", name);
        return NGX_CONF_ERROR;
    }

    rv = NGX_CONF_ERROR;
    text->data = NULL;
    text->len = 0;

    if (ngx_fd_info(file.fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_fd_info_n " \"%V\" failed", name);
        goto done;
    }

    size = ngx_file_size(&fi);

    if (size > 0) {
        text->data = ngx_pnalloc(cf->temp_pool, (size_t) size);
        if (text->data == NULL) {
            goto done;
        }

        n = ngx_read_file(&file, text->data, (size_t) size, 0);

        if (n == NGX_ERROR) {
            goto done;
        }

        if (n != size) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               ngx_read_file_n " \"%V\" returned only "
                               "%z bytes instead of %O", name, n, size);
            goto done;
        }

        text->len = (size_t) size;
    }

    rv = NGX_CONF_OK;

done:

    if (ngx_close_file(file.fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, cf->log, ngx_errno,
                      ngx_close_file_n " \"%V\" failed", name);
    }

    return rv;
}


/* one user a line, fields split by blanks; '#' starts a comment */

static char *
ngx_stream_vmess_parse_user_lines(ngx_conf_t *cf,
    ngx_stream_vmess_srv_conf_t *vscf, ngx_str_t *name, ngx_str_t *text)
{
    u_char                        *p, *last, *eol;
    ngx_str_t                      field[4];
    ngx_uint_t                     line, nf;
    ngx_stream_vmess_user_conf_t  *uc;

    p = text->data;
    last = p + text->len;
    line = 0;

    while (p < last) {

        line++;

        eol = ngx_strlchr(p, last, '\n');
        if (eol == NULL) {
            eol = last;
        }

        nf = 0;

        while (p < eol) {

            if (*p == ' ' || *p == '\t' || *p == '\r') {
                p++;
                continue;
            }

            if (*p == '#') {
                break;
            }

            if (nf == 4) {
                break;
            }

            field[nf].data = p;

            while (p < eol && *p != ' ' && *p != '\t' && *p != '\r'
                   && *p != '#')
            {
                p++;
            }

            field[nf].len = p - field[nf].data;
            nf++;
        }

        p = eol + 1;

        if (nf == 0) {
            continue;
        }

        if (nf > 3) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "too many fields in %V:%ui", name, line);
            return NGX_CONF_ERROR;
        }

        if (ngx_stream_vmess_add_user(cf, vscf, field, nf, name, line)
            != NGX_CONF_OK)
        {
            return NGX_CONF_ERROR;
        }

        if (name->data == vscf->user_file.data) {
            uc = vscf->user_confs->elts;
            uc[vscf->user_confs->nelts - 1].in_file = 1;
        }
    }

    return NGX_CONF_OK;
}


/* "uuid [email] [alter_id=n]", from the directive or a line of a file */

static char *
ngx_stream_vmess_add_user(ngx_conf_t *cf, ngx_stream_vmess_srv_conf_t *vscf,
    ngx_str_t *field, ngx_uint_t n, ngx_str_t *file, ngx_uint_t line)
{
    u_char                        *p;
    char                           uuid[37];
    ngx_int_t                      alter;
    ngx_str_t                      email, where, *bad;
    ngx_uint_t                     i;
    ngx_stream_vmess_user_conf_t  *uc;

    ngx_str_null(&email);
    ngx_str_null(&where);
    alter = 0;
    bad = NULL;

    if (file) {
        where.len = sizeof(" in :") - 1 + file->len + NGX_INT_T_LEN;
        where.data = ngx_pnalloc(cf->temp_pool, where.len);
        if (where.data == NULL) {
            return NGX_CONF_ERROR;
        }

        p = ngx_sprintf(where.data, " in %V:%ui", file, line);
        where.len = p - where.data;
    }

    if (vscf->user_confs == NULL) {
        vscf->user_confs = ngx_array_create(cf->pool, 4,
                                       sizeof(ngx_stream_vmess_user_conf_t));
        if (vscf->user_confs == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    uc = ngx_array_push(vscf->user_confs);
    if (uc == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(uc, sizeof(ngx_stream_vmess_user_conf_t));

    if (vmess_uuid_parse((char *) field[0].data, field[0].len, uc->id)
        != VMESS_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid UUID \"%V\"%V",
                           &field[0], &where);
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < n; i++) {

        if (field[i].len > 9
            && ngx_strncmp(field[i].data, "alter_id=", 9) == 0)
        {
            alter = ngx_atoi(field[i].data + 9, field[i].len - 9);

            if (alter == NGX_ERROR || alter > 65535) {
                bad = &field[i];
                break;
            }

            continue;
        }

        if (i == 1 && field[i].len <= 255) {
            email = field[i];
            continue;
        }

        bad = &field[i];
        break;
    }

    if (bad) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"%V", bad, &where);
        return NGX_CONF_ERROR;
    }

    vmess_uuid_format(uc->id, uuid);

    uc->uuid.len = 36;
    uc->uuid.data = ngx_pnalloc(cf->pool, 36);
    if (uc->uuid.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(uc->uuid.data, uuid, 36);

    if (email.len) {
        uc->name.data = ngx_pstrdup(cf->pool, &email);
        if (uc->name.data == NULL) {
            return NGX_CONF_ERROR;
        }

        uc->name.len = email.len;

    } else {
        uc->name = uc->uuid;
    }

    uc->alter_ids = (ngx_uint_t) alter;

    return NGX_CONF_OK;
}


/*
 * The user table of a "vmess on" server, its legacy index, and the drain
 * size.
 */

char *
ngx_stream_vmess_init_users(ngx_conf_t *cf, ngx_stream_vmess_srv_conf_t *vscf)
{
    ngx_uint_t                     i, n;
    ngx_stream_vmess_user_conf_t  *uc;

    if (ngx_stream_vmess_unique_users(cf, vscf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    uc = vscf->user_confs->elts;
    n = vscf->user_confs->nelts;

    if (ngx_stream_vmess_users_alloc(cf, vscf, n) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < n; i++) {
        if (vmess_user_init(&vscf->users[i], uc[i].id,
                            (uint16_t) uc[i].alter_ids, &uc[i])
            != VMESS_OK)
        {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "vmess_user_init() failed");
            return NGX_CONF_ERROR;
        }

        vscf->nusers++;
    }

    if (ngx_stream_vmess_drain_size(cf, vscf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (!vscf->legacy) {
        return NGX_CONF_OK;
    }

    return ngx_stream_vmess_legacy_index(cf, vscf);
}


/* n zeroed users for vscf, each freed with the configuration's pool */

char *
ngx_stream_vmess_users_alloc(ngx_conf_t *cf, ngx_stream_vmess_srv_conf_t *vscf,
    ngx_uint_t n)
{
    ngx_pool_cleanup_t  *cln;

    vscf->users = ngx_pcalloc(cf->pool, n * sizeof(vmess_user_t));
    if (vscf->users == NULL) {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_stream_vmess_cleanup_users;
    cln->data = vscf;

    return NGX_CONF_OK;
}


static char *
ngx_stream_vmess_unique_users(ngx_conf_t *cf,
    ngx_stream_vmess_srv_conf_t *vscf)
{
    ngx_uint_t                     i, j, n;
    ngx_stream_vmess_user_conf_t  *uc;

    uc = vscf->user_confs->elts;
    n = vscf->user_confs->nelts;

    for (i = 0; i < n; i++) {
        for (j = i + 1; j < n; j++) {
            if (ngx_memcmp(uc[i].id, uc[j].id, 16) == 0) {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "duplicate UUID \"%V\" for \"vmess\" "
                              "in %V:%ui", &uc[j].uuid, &vscf->file,
                              vscf->line);
                return NGX_CONF_ERROR;
            }
        }
    }

    return NGX_CONF_OK;
}


/*
 * The drain size (VMESS-SPEC.md §10.1): base in 0..3265 and max in 1..64,
 * derived from the users' IDs with HMAC-SHA256, constant for a given user
 * set.
 */

static char *
ngx_stream_vmess_drain_size(ngx_conf_t *cf, ngx_stream_vmess_srv_conf_t *vscf)
{
    u_char                        *ids, md[EVP_MAX_MD_SIZE];
    uint32_t                       base, max;
    ngx_uint_t                     i, n;
    unsigned int                   mdlen;
    ngx_stream_vmess_user_conf_t  *uc;

    static u_char  drain_key[] = "VMESSBSKDF drain";

    uc = vscf->user_confs->elts;
    n = vscf->user_confs->nelts;

    ids = ngx_pnalloc(cf->temp_pool, n * 16);
    if (ids == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < n; i++) {
        ngx_memcpy(ids + i * 16, uc[i].id, 16);
    }

    if (HMAC(EVP_sha256(), drain_key, sizeof(drain_key) - 1, ids, n * 16,
             md, &mdlen)
        == NULL)
    {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "HMAC() failed");
        return NGX_CONF_ERROR;
    }

    base = ((uint32_t) md[0] << 24) | ((uint32_t) md[1] << 16)
           | ((uint32_t) md[2] << 8) | md[3];
    max = ((uint32_t) md[4] << 24) | ((uint32_t) md[5] << 16)
          | ((uint32_t) md[6] << 8) | md[7];

    vscf->drain_base = base % 3266;
    vscf->drain_max = max % 64 + 1;

    return NGX_CONF_OK;
}


/* the legacy index of vscf's users, refreshed at first use */

char *
ngx_stream_vmess_legacy_index(ngx_conf_t *cf,
    ngx_stream_vmess_srv_conf_t *vscf)
{
    void    *mem;
    size_t   size;

    size = vmess_legacy_index_size(vscf->users, vscf->nusers);

    mem = ngx_palloc(cf->pool, size);
    if (mem == NULL) {
        return NGX_CONF_ERROR;
    }

    vscf->legacy_index = vmess_legacy_index_init(mem, size, vscf->users,
                                                 vscf->nusers);

    if (vscf->legacy_index == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "vmess_legacy_index_init() failed");
        return NGX_CONF_ERROR;
    }

    /* refreshed by the preread handler at first use */
    vscf->legacy_updated = 0;

    return NGX_CONF_OK;
}


static void
ngx_stream_vmess_cleanup_users(void *data)
{
    ngx_stream_vmess_srv_conf_t  *vscf = data;

    ngx_uint_t  i;

    for (i = 0; i < vscf->nusers; i++) {
        vmess_user_free(&vscf->users[i]);
    }

    vscf->nusers = 0;
}
