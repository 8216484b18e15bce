/*
 * vmess-client: serve-echo, per TCP connection, and serve-udp-echo, on
 * its one socket.
 */

#include <errno.h>
#include <stdlib.h>

#include "client.h"


int
serve_echo_io(serve_conn_t *c, short revents)
{
    ssize_t  n;

    if ((revents & (POLLIN | POLLHUP | POLLERR))
        && !c->eof && c->tail < SERVE_BUF_SIZE)
    {
        n = recv(c->fd, c->buf + c->tail, SERVE_BUF_SIZE - c->tail, 0);

        if (n > 0) {
            c->tail += n;

        } else if (n == 0) {
            c->eof = 1;

        } else if (errno != EAGAIN && errno != EWOULDBLOCK
                   && errno != EINTR)
        {
            return -1;
        }
    }

    if (c->head < c->tail) {
        n = send(c->fd, c->buf + c->head, c->tail - c->head, MSG_NOSIGNAL);

        if (n > 0) {
            c->head += n;

        } else if (errno != EAGAIN && errno != EWOULDBLOCK
                   && errno != EINTR)
        {
            return -1;
        }
    }

    client_buffer_compact(c->buf, SERVE_BUF_SIZE, &c->head, &c->tail);

    /* the peer has sent everything and got it all back */
    return (c->eof && c->tail == 0) ? -1 : 0;
}


int
serve_udp(int fd)
{
    int                      size;
    ssize_t                  n;
    uint8_t                 *buf;
    socklen_t                len;
    struct sockaddr_storage  peer;

    /*
     * One socket serves every session: a default-sized receive buffer
     * overflows with a few sessions' datagrams in flight (the kernel caps
     * the request at net.core.rmem_max).
     */
    size = SERVE_UDP_BUFFER;
    (void) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    (void) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));

    buf = malloc(65536);
    if (buf == NULL) {
        return CLIENT_FAIL;
    }

    for ( ;; ) {
        len = sizeof(peer);
        n = recvfrom(fd, buf, 65536, 0, (struct sockaddr *) &peer, &len);

        if (n >= 0) {
            (void) sendto(fd, buf, n, 0, (struct sockaddr *) &peer, len);
        }
    }
}
