/*
 * vmess-client: probe mode: connections that a server must refuse, each
 * sent its bytes and closed at once, without waiting for the server's
 * drain, so that what a refusal costs the server is what is measured.
 */

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include "client.h"


static int client_probe_bytes(client_worker_t *w, size_t *len);
static int client_probe_send(client_worker_t *w, const uint8_t *p,
    size_t len);


int
client_probe(client_worker_t *w, uint64_t index)
{
    int                rc;
    size_t             len;
    client_session_t  *s = w->s;

    memset(s, 0, sizeof(client_session_t));
    s->fd = -1;
    s->index = index;

    rc = client_probe_bytes(w, &len);

    if (rc == CLIENT_OK) {
        rc = client_probe_send(w, w->out, len);
    }

    client_session_close(w);

    return rc;
}


/* random bytes, a fresh header of -u, or the bytes of --send-header */
static int
client_probe_bytes(client_worker_t *w, size_t *len)
{
    int  rc;

    if (conf.send_header != NULL) {
        rc = client_raw_header(w);
        *len = w->s->out_len;
        return rc;
    }

    if (conf.probe_header) {
        return client_seal_request(w, len);
    }

    *len = (size_t) conf.bytes;
    client_random(w->out, *len);

    return CLIENT_OK;
}


/* a blocking connect and send, then close: the FIN follows the bytes */
static int
client_probe_send(client_worker_t *w, const uint8_t *p, size_t len)
{
    int                fd, one;
    ssize_t            n;
    client_session_t  *s = w->s;

    fd = socket(conf.server.ss_family, SOCK_STREAM, 0);
    if (fd == -1) {
        return client_fail(w, "socket: %s", strerror(errno));
    }

    s->fd = fd;

    one = 1;
    (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    if (connect(fd, (struct sockaddr *) &conf.server, conf.server_len)
        == -1)
    {
        return client_fail(w, "connect: %s", strerror(errno));
    }

    while (len > 0) {
        n = send(fd, p, len, MSG_NOSIGNAL);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }

            return client_fail(w, "send: %s", strerror(errno));
        }

        p += n;
        len -= n;
        s->sent += n;
    }

    return CLIENT_OK;
}
