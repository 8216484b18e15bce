/*
 * vmess-client: serve-sink and serve-source, the two ends of the
 * upload/download sub-protocol: an 8-byte count first, then that many
 * bytes discarded (and the count sent back) or pattern bytes sent.
 */

#include <errno.h>
#include <string.h>

#include "client.h"


static size_t serve_prefix(serve_conn_t *c, const uint8_t *p, size_t n);


int
serve_sink_io(serve_conn_t *c, short revents, uint8_t *scratch)
{
    size_t    used;
    ssize_t   n;
    uint64_t  take;

    if (revents & (POLLIN | POLLHUP | POLLERR)) {
        n = recv(c->fd, scratch, SERVE_IO_SIZE, 0);

        if (n == 0) {
            return -1;
        }

        if (n < 0) {
            return (errno == EAGAIN || errno == EWOULDBLOCK
                    || errno == EINTR) ? 0 : -1;
        }

        used = (c->state == SERVE_PREFIX) ? serve_prefix(c, scratch, n) : 0;

        if (c->state == SERVE_BODY) {
            take = c->count - c->done;
            if (take > (uint64_t) (n - used)) {
                take = n - used;
            }

            c->done += take;

            if (c->done == c->count) {
                c->state = SERVE_ACK;
            }
        }
    }

    if (c->state == SERVE_ACK) {
        /* the ack is the prefix itself: the count that arrived */
        n = send(c->fd, c->prefix + c->head, 8 - c->head, MSG_NOSIGNAL);

        if (n > 0) {
            c->head += n;

            if (c->head == 8) {
                c->state = SERVE_FINISHED;
            }

        } else if (errno != EAGAIN && errno != EWOULDBLOCK
                   && errno != EINTR)
        {
            return -1;
        }
    }

    return 0;
}


int
serve_source_io(serve_conn_t *c, short revents, uint8_t *scratch)
{
    size_t    off, len;
    ssize_t   n;

    if ((revents & (POLLIN | POLLHUP | POLLERR)) && !c->eof) {
        n = recv(c->fd, scratch, SERVE_IO_SIZE, 0);

        if (n == 0) {
            c->eof = 1;

            if (c->state != SERVE_BODY) {
                return -1;
            }

        } else if (n > 0) {
            if (c->state == SERVE_PREFIX) {
                (void) serve_prefix(c, scratch, n);
            }

        } else if (errno != EAGAIN && errno != EWOULDBLOCK
                   && errno != EINTR)
        {
            return -1;
        }
    }

    if (c->state == SERVE_BODY && c->done < c->count) {
        off = (size_t) (c->done % PATTERN_SIZE);
        len = PATTERN_SIZE + PATTERN_TAIL - off;

        if (len > SERVE_IO_SIZE) {
            len = SERVE_IO_SIZE;
        }

        if (len > c->count - c->done) {
            len = (size_t) (c->count - c->done);
        }

        n = send(c->fd, pattern + off, len, MSG_NOSIGNAL);

        if (n > 0) {
            c->done += n;

        } else if (errno != EAGAIN && errno != EWOULDBLOCK
                   && errno != EINTR)
        {
            return -1;
        }
    }

    if (c->state == SERVE_BODY && c->done == c->count) {
        /* read on until the peer closes: a close now could reset it */
        shutdown(c->fd, SHUT_WR);
        c->state = SERVE_FINISHED;
    }

    return (c->state == SERVE_FINISHED && c->eof) ? -1 : 0;
}


/* gathers the 8-byte count; returns the bytes it took */
static size_t
serve_prefix(serve_conn_t *c, const uint8_t *p, size_t n)
{
    size_t  take;

    take = sizeof(c->prefix) - c->prefix_len;
    if (take > n) {
        take = n;
    }

    memcpy(c->prefix + c->prefix_len, p, take);
    c->prefix_len += take;

    if (c->prefix_len == sizeof(c->prefix)) {
        c->count = client_get_be64(c->prefix);
        c->state = SERVE_BODY;
    }

    return take;
}
