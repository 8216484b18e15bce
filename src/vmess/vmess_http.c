/*
 * The HTTP/1.1 upgrade request of the WebSocket and HTTPUpgrade
 * transports: the request line for a path, then the headers up to the
 * empty line.  Only the few headers a handshake needs are looked at; the
 * first bad one decides the error.
 */

#include <string.h>

#include "vmess.h"


#define VMESS_HTTP_NEEDS_RAW                                                \
    (VMESS_HTTP_SEEN_UPGRADE|VMESS_HTTP_SEEN_CONNECTION                     \
     |VMESS_HTTP_SEEN_HOST)
#define VMESS_HTTP_NEEDS_WS                                                 \
    (VMESS_HTTP_NEEDS_RAW|VMESS_HTTP_SEEN_KEY|VMESS_HTTP_SEEN_VERSION)


static int vmess_http_header(const vmess_http_upgrade_conf_t *conf,
    vmess_http_upgrade_t *r, const uint8_t *name, size_t nlen,
    const uint8_t *value, size_t vlen);
static int vmess_http_is(const uint8_t *name, size_t nlen, const char *s);
static int vmess_http_casecmp(const uint8_t *a, const uint8_t *b, size_t n);
static int vmess_http_token(const uint8_t *p, size_t len, const char *token);
static int vmess_http_ws_key_valid(const uint8_t *p, size_t len);
static const uint8_t *vmess_http_find(const uint8_t *p, const uint8_t *last,
    uint8_t c);
static const uint8_t *vmess_http_header_end(const uint8_t *p, size_t len);


int
vmess_http_path_match(const uint8_t *p, size_t len, const vmess_bytes_t *path)
{
    size_t  n;

    n = len < 4 ? len : 4;

    if (memcmp(p, "GET ", n) != 0) {
        return VMESS_ERR_HTTP_OTHER_PATH;
    }

    if (memcmp(p + n, path->data, len - n < path->len ? len - n : path->len)
        != 0)
    {
        return VMESS_ERR_HTTP_OTHER_PATH;
    }

    if (len <= 4 + path->len) {
        return VMESS_AGAIN;
    }

    p += 4 + path->len;

    return (*p == ' ' || *p == '?') ? VMESS_OK : VMESS_ERR_HTTP_OTHER_PATH;
}


int
vmess_http_upgrade_parse(const vmess_http_upgrade_conf_t *conf,
    const uint8_t *p, size_t len, size_t room, vmess_http_upgrade_t *r)
{
    int             rc;
    size_t          limit;
    unsigned        needs;
    const uint8_t  *start, *end, *line, *colon, *v, *ve;

    memset(r, 0, sizeof(vmess_http_upgrade_t));

    rc = vmess_http_path_match(p, len, &conf->path);

    if (rc != VMESS_OK) {
        return rc;
    }

    start = p;
    p += 4 + conf->path.len;

    limit = room < VMESS_HTTP_HEADER_MAX ? room : VMESS_HTTP_HEADER_MAX;

    end = vmess_http_header_end(start, len < limit ? len : limit);

    if (end == NULL) {
        return (len >= limit) ? VMESS_ERR_HTTP_TOO_LARGE : VMESS_AGAIN;
    }

    r->header_len = end - start;

    /* the rest of the request line: " HTTP/1.1\r\n" after the target */

    line = vmess_http_find(p, end, '\n');

    if (line == NULL || line - p < 10
        || memcmp(line - 10, " HTTP/1.1\r", 10) != 0
        || vmess_http_find(p, line - 10, ' ') != NULL)
    {
        return VMESS_ERR_HTTP_REQUEST_LINE;
    }

    if (conf->host.len == 0) {
        r->seen |= VMESS_HTTP_SEEN_HOST;
    }

    p = line + 1;

    while (p < end - 2) {
        line = vmess_http_find(p, end, '\n');

        if (line == NULL || line == p || line[-1] != '\r') {
            return VMESS_ERR_HTTP_HEADER_LINE;
        }

        colon = vmess_http_find(p, line, ':');

        if (colon == NULL || colon == p) {
            return VMESS_ERR_HTTP_HEADER_LINE;
        }

        v = colon + 1;
        ve = line - 1;

        while (v < ve && (*v == ' ' || *v == '\t')) {
            v++;
        }

        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) {
            ve--;
        }

        rc = vmess_http_header(conf, r, p, colon - p, v, ve - v);

        if (rc != VMESS_OK) {
            return rc;
        }

        p = line + 1;
    }

    needs = conf->raw ? VMESS_HTTP_NEEDS_RAW : VMESS_HTTP_NEEDS_WS;

    if ((r->seen & needs) != needs) {
        if (!(r->seen & VMESS_HTTP_SEEN_UPGRADE)) {
            return VMESS_ERR_HTTP_NO_UPGRADE;
        }

        return conf->raw ? VMESS_ERR_HTTP_INCOMPLETE
                         : VMESS_ERR_HTTP_INCOMPLETE_WS;
    }

    return VMESS_OK;
}


/*
 * HTTPUpgrade clients (Xray, sing-box, v2fly 5) send the WebSocket
 * Upgrade and Connection headers, Xray also a key, which is kept
 * unchecked for the accept value Xray's own server sends back.  A header
 * that is not one of the transport's falls through to the real ip one.
 */

static int
vmess_http_header(const vmess_http_upgrade_conf_t *conf,
    vmess_http_upgrade_t *r, const uint8_t *name, size_t nlen,
    const uint8_t *value, size_t vlen)
{
    size_t          hlen;
    const uint8_t  *colon;

    if (vmess_http_is(name, nlen, "Upgrade")) {
        if (vlen != 9
            || vmess_http_casecmp(value, (const uint8_t *) "websocket", 9)
               != 0)
        {
            return VMESS_ERR_HTTP_NO_UPGRADE;
        }

        r->seen |= VMESS_HTTP_SEEN_UPGRADE;

    } else if (vmess_http_is(name, nlen, "Connection")) {
        if (vmess_http_token(value, vlen, "upgrade")) {
            r->seen |= VMESS_HTTP_SEEN_CONNECTION;
        }

    } else if (vmess_http_is(name, nlen, "Sec-WebSocket-Key")) {
        if (!conf->raw && !vmess_http_ws_key_valid(value, vlen)) {
            return VMESS_ERR_HTTP_WS_KEY;
        }

        r->key.data = value;
        r->key.len = vlen;
        r->seen |= VMESS_HTTP_SEEN_KEY;

    } else if (vmess_http_is(name, nlen, "Sec-WebSocket-Version")
               && !conf->raw)
    {
        if (vlen != 2 || value[0] != '1' || value[1] != '3') {
            return VMESS_ERR_HTTP_WS_VERSION;
        }

        r->seen |= VMESS_HTTP_SEEN_VERSION;

    } else if (vmess_http_is(name, nlen, "Sec-WebSocket-Protocol")
               && !conf->raw)
    {
        r->protocol.data = value;
        r->protocol.len = vlen;

    } else if (vmess_http_is(name, nlen, "Host") && conf->host.len) {
        hlen = vlen;

        if (hlen && value[0] != '[') {
            colon = vmess_http_find(value, value + vlen, ':');

            if (colon) {
                hlen = colon - value;
            }
        }

        if (hlen != conf->host.len
            || vmess_http_casecmp(value, conf->host.data, hlen) != 0)
        {
            return VMESS_ERR_HTTP_HOST;
        }

        r->seen |= VMESS_HTTP_SEEN_HOST;

    } else if (conf->real_ip_header.len
               && nlen == conf->real_ip_header.len
               && vmess_http_casecmp(name, conf->real_ip_header.data, nlen)
                  == 0)
    {
        r->real_ip.data = value;
        r->real_ip.len = vlen;
    }

    return VMESS_OK;
}


static int
vmess_http_is(const uint8_t *name, size_t nlen, const char *s)
{
    return nlen == strlen(s)
           && vmess_http_casecmp(name, (const uint8_t *) s, nlen) == 0;
}


/* ASCII letters only, as HTTP field names and tokens are */

static int
vmess_http_casecmp(const uint8_t *a, const uint8_t *b, size_t n)
{
    size_t   i;
    uint8_t  ca, cb;

    for (i = 0; i < n; i++) {
        ca = (a[i] >= 'A' && a[i] <= 'Z') ? (a[i] | 0x20) : a[i];
        cb = (b[i] >= 'A' && b[i] <= 'Z') ? (b[i] | 0x20) : b[i];

        if (ca != cb) {
            return ca - cb;
        }
    }

    return 0;
}


/* a token in a comma separated list, case-insensitive */

static int
vmess_http_token(const uint8_t *p, size_t len, const char *token)
{
    size_t          n;
    const uint8_t  *last, *e;

    n = strlen(token);
    last = p + len;

    while (p < last) {
        while (p < last && (*p == ' ' || *p == '\t' || *p == ',')) {
            p++;
        }

        e = p;

        while (e < last && *e != ',' && *e != ' ' && *e != '\t') {
            e++;
        }

        if ((size_t) (e - p) == n
            && vmess_http_casecmp(p, (const uint8_t *) token, n) == 0)
        {
            return 1;
        }

        p = e;
    }

    return 0;
}


/*
 * 16 bytes in base64: 22 characters of the alphabet, then '='.  The 24th
 * character is not looked at, as nginx's ngx_decode_base64() (which did
 * this check before) stops at the first '='.
 */

static int
vmess_http_ws_key_valid(const uint8_t *p, size_t len)
{
    size_t   i;
    uint8_t  c;

    if (len != 24 || p[22] != '=') {
        return 0;
    }

    for (i = 0; i < 22; i++) {
        c = p[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
              || (c >= '0' && c <= '9') || c == '+' || c == '/'))
        {
            return 0;
        }
    }

    return 1;
}


static const uint8_t *
vmess_http_find(const uint8_t *p, const uint8_t *last, uint8_t c)
{
    if (p >= last) {
        return NULL;
    }

    return memchr(p, c, last - p);
}


/* just past the first "\r\n\r\n" in p[0..len), or NULL */

static const uint8_t *
vmess_http_header_end(const uint8_t *p, size_t len)
{
    size_t  i;

    for (i = 0; i + 4 <= len; i++) {
        if (p[i] == '\r' && memcmp(p + i, "\r\n\r\n", 4) == 0) {
            return p + i + 4;
        }
    }

    return NULL;
}
