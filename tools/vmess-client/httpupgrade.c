/*
 * vmess-client: the HTTPUpgrade transport (--httpupgrade): the HTTP/1.1
 * upgrade request that sing-box (and, with --upgrade-key, Xray) sends,
 * and the 101 they accept, before the session's VMess bytes.
 */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <sys/uio.h>

#include <openssl/evp.h>

#include "client.h"


#define CLIENT_UPGRADE_MAX      4096    /* request or response header */


static int client_upgrade_response(client_worker_t *w, const char *accept);
static const uint8_t *client_upgrade_crlf(const uint8_t *p, size_t len,
    int twice);
static int client_upgrade_header(const char *h, size_t len, const char *name,
    const char *value);
static void client_upgrade_accept(const char *key, char accept[29]);


/* the request sent (with the first VMess bytes when --early) and the 101
 * read; what came behind it stays in w->in */
int
client_httpupgrade(client_worker_t *w)
{
    int                len, with_key;
    char               req[CLIENT_UPGRADE_MAX], key[25], accept[29];
    ssize_t            n;
    uint8_t            nonce[16];
    struct iovec       iov[2];
    client_session_t  *s = w->s;

    accept[0] = '\0';
    with_key = conf.upgrade_key;

    if (with_key) {
        client_random(nonce, sizeof(nonce));
        EVP_EncodeBlock((unsigned char *) key, nonce, sizeof(nonce));
        client_upgrade_accept(key, accept);
    }

    len = snprintf(req, sizeof(req),
                   "GET %s HTTP/1.1\r\n"
                   "Host: %s\r\n"
                   "User-Agent: vmess-client\r\n"
                   "Connection: Upgrade\r\n"
                   "%s%s%s"
                   "Upgrade: websocket\r\n"
                   "\r\n",
                   conf.httpupgrade, conf.http_host,
                   with_key ? "Sec-WebSocket-Key: " : "",
                   with_key ? key : "",
                   with_key ? "\r\nSec-WebSocket-Version: 13\r\n" : "");

    if (len < 0 || (size_t) len >= sizeof(req)) {
        return client_fail(w, "httpupgrade: request too long");
    }

    iov[0].iov_base = req;
    iov[0].iov_len = (size_t) len;
    iov[1].iov_base = w->out + s->out_pos;
    iov[1].iov_len = conf.early ? s->out_len - s->out_pos : 0;

    n = writev(s->fd, iov, 2);

    if (n < len) {
        return client_fail(w, "httpupgrade: request not sent: %s",
                           n < 0 ? strerror(errno) : "short write");
    }

    s->out_pos += (size_t) n - (size_t) len;

    return client_upgrade_response(w, accept);
}


static int
client_upgrade_response(client_worker_t *w, const char *accept)
{
    size_t             hlen;
    ssize_t            n;
    const uint8_t     *end, *eol;
    struct pollfd      pfd;
    client_session_t  *s = w->s;

    static const char  status[] = "HTTP/1.1 101 Switching Protocols\r\n";

    for ( ;; ) {
        end = client_upgrade_crlf(w->in, s->in_len, 1);

        if (end != NULL) {
            break;
        }

        if (s->in_len >= CLIENT_UPGRADE_MAX) {
            return client_fail(w, "httpupgrade: response header too large");
        }

        pfd.fd = s->fd;
        pfd.events = POLLIN;

        if (poll(&pfd, 1, conf.timeout_ms) != 1) {
            return client_fail(w, "httpupgrade: no response");
        }

        n = recv(s->fd, w->in + s->in_len, CLIENT_IN_SIZE - s->in_len, 0);

        if (n == 0) {
            return client_fail(w, "httpupgrade: closed before the 101");
        }

        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                continue;
            }

            return client_fail(w, "httpupgrade: recv: %s", strerror(errno));
        }

        s->in_len += (size_t) n;
    }

    hlen = (size_t) (end - w->in) + 4;

    if (hlen < sizeof(status) - 1
        || memcmp(w->in, status, sizeof(status) - 1) != 0)
    {
        eol = client_upgrade_crlf(w->in, hlen, 0);
        return client_fail(w, "httpupgrade: not a 101: %.*s",
                           (int) (eol - w->in), (const char *) w->in);
    }

    if (!client_upgrade_header((char *) w->in, hlen, "Upgrade", "websocket")
        || !client_upgrade_header((char *) w->in, hlen, "Connection",
                                  "upgrade"))
    {
        return client_fail(w, "httpupgrade: 101 without the upgrade"
                           " headers");
    }

    if (accept[0] != '\0'
        && !client_upgrade_header((char *) w->in, hlen,
                                  "Sec-WebSocket-Accept", accept))
    {
        return client_fail(w, "httpupgrade: wrong Sec-WebSocket-Accept");
    }

    memmove(w->in, w->in + hlen, s->in_len - hlen);
    s->in_len -= hlen;

    return CLIENT_OK;
}


/* the first CRLF (or CRLF CRLF) in p, or NULL */
static const uint8_t *
client_upgrade_crlf(const uint8_t *p, size_t len, int twice)
{
    size_t  i, n;

    n = twice ? 4 : 2;

    for (i = 0; i + n <= len; i++) {
        if (memcmp(p + i, "\r\n\r\n", n) == 0) {
            return p + i;
        }
    }

    return NULL;
}


/* a header line "name: value" in h, both compared case-insensitively */
static int
client_upgrade_header(const char *h, size_t len, const char *name,
    const char *value)
{
    size_t       nlen, vlen;
    const char  *p, *last, *eol;

    nlen = strlen(name);
    vlen = strlen(value);
    last = h + len;

    for (p = h; p < last; p = eol + 2) {
        eol = (const char *) client_upgrade_crlf((const uint8_t *) p,
                                                 (size_t) (last - p), 0);

        if (eol == NULL) {
            return 0;
        }

        if ((size_t) (eol - p) == nlen + 2 + vlen
            && strncasecmp(p, name, nlen) == 0
            && p[nlen] == ':' && p[nlen + 1] == ' '
            && strncasecmp(p + nlen + 2, value, vlen) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/* RFC 6455: base64(SHA-1(key + GUID)) */
static void
client_upgrade_accept(const char *key, char accept[29])
{
    char           in[64];
    unsigned char  md[EVP_MAX_MD_SIZE];
    unsigned int   mdlen;

    snprintf(in, sizeof(in), "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);

    if (EVP_Digest(in, strlen(in), md, &mdlen, EVP_sha1(), NULL) != 1) {
        client_die("SHA-1 failed");
    }

    EVP_EncodeBlock((unsigned char *) accept, md, (int) mdlen);
}
