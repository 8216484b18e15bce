/*
 * vmess-client: the serve-* targets: the listener and, for TCP, the
 * poll(2) loop over every connection; each target's own part is in
 * serve_echo.c and serve_count.c.
 */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "client.h"


static int serve_listen(int type, uint16_t *port);
static int serve_tcp(int lfd);
static int serve_accept(int lfd, serve_conn_t **conns, size_t *n,
    size_t *cap);
static short serve_events(serve_conn_t *c);
static int serve_io(serve_conn_t *c, short revents, uint8_t *scratch);
static void serve_sigterm(int signo);


int
serve_main(void)
{
    int        fd;
    uint16_t   port;

    client_signal(SIGTERM, serve_sigterm);

    fd = serve_listen(conf.mode == MODE_SERVE_UDP_ECHO ? SOCK_DGRAM
                                                       : SOCK_STREAM,
                      &port);
    if (fd == -1) {
        return CLIENT_FAIL;
    }

    printf("listening %u\n", port);
    fflush(stdout);

    if (conf.mode == MODE_SERVE_UDP_ECHO) {
        return serve_udp(fd);
    }

    return serve_tcp(fd);
}


static int
serve_listen(int type, uint16_t *port)
{
    int                      fd, rc, one;
    char                     host[256];
    const char              *port_text;
    socklen_t                len;
    struct addrinfo          hints, *res;
    struct sockaddr_storage  sa;

    if (strchr(conf.listen, ':') == NULL) {
        strcpy(host, "127.0.0.1");
        port_text = conf.listen;

    } else if (client_split_host_port(conf.listen, host, sizeof(host),
                                      &port_text) != 0)
    {
        fprintf(stderr, "vmess-client: bad address \"%s\"\n", conf.listen);
        return -1;
    }

    memset(&hints, 0, sizeof(struct addrinfo));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = type;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;

    rc = getaddrinfo(host, port_text, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "vmess-client: %s: %s\n", conf.listen,
                gai_strerror(rc));
        return -1;
    }

    fd = socket(res->ai_family, type, 0);
    one = 1;

    if (fd == -1
        || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1
        || bind(fd, res->ai_addr, res->ai_addrlen) == -1
        || (type == SOCK_STREAM && listen(fd, 4096) == -1))
    {
        fprintf(stderr, "vmess-client: %s: %s\n", conf.listen,
                strerror(errno));
        freeaddrinfo(res);
        return -1;
    }

    freeaddrinfo(res);

    len = sizeof(sa);
    if (getsockname(fd, (struct sockaddr *) &sa, &len) == -1) {
        fprintf(stderr, "vmess-client: getsockname: %s\n", strerror(errno));
        return -1;
    }

    *port = ntohs(sa.ss_family == AF_INET6
                  ? ((struct sockaddr_in6 *) &sa)->sin6_port
                  : ((struct sockaddr_in *) &sa)->sin_port);

    return fd;
}


static int
serve_tcp(int lfd)
{
    int             rc;
    size_t          i, n, cap, pfds_cap;
    uint8_t        *scratch;
    serve_conn_t   *conns;
    struct pollfd  *pfds;

    n = 0;
    cap = 0;
    pfds_cap = 0;
    conns = NULL;
    pfds = NULL;
    scratch = malloc(SERVE_IO_SIZE);

    if (scratch == NULL
        || fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK) == -1)
    {
        fprintf(stderr, "vmess-client: serve: %s\n", strerror(errno));
        return CLIENT_FAIL;
    }

    for ( ;; ) {
        /* one for the listener and one per connection slot */
        if (pfds_cap != cap + 1) {
            pfds_cap = cap + 1;
            pfds = realloc(pfds, pfds_cap * sizeof(struct pollfd));
            if (pfds == NULL) {
                fputs("vmess-client: serve: out of memory\n", stderr);
                return CLIENT_FAIL;
            }
        }

        pfds[0].fd = lfd;
        pfds[0].events = POLLIN;
        pfds[0].revents = 0;

        for (i = 0; i < n; i++) {
            pfds[i + 1].fd = conns[i].fd;
            pfds[i + 1].events = serve_events(&conns[i]);
            pfds[i + 1].revents = 0;
        }

        rc = poll(pfds, n + 1, -1);

        if (rc == -1) {
            if (errno == EINTR) {
                continue;
            }

            fprintf(stderr, "vmess-client: poll: %s\n", strerror(errno));
            return CLIENT_FAIL;
        }

        /* a closed connection is replaced by the last one, in both lists */
        for (i = 0; i < n; /* void */) {
            if (pfds[i + 1].revents != 0
                && serve_io(&conns[i], pfds[i + 1].revents, scratch) != 0)
            {
                close(conns[i].fd);
                free(conns[i].buf);
                n--;
                conns[i] = conns[n];
                pfds[i + 1] = pfds[n + 1];
                continue;
            }

            i++;
        }

        if (pfds[0].revents & POLLIN) {
            serve_accept(lfd, &conns, &n, &cap);
        }
    }
}


static int
serve_accept(int lfd, serve_conn_t **conns, size_t *n, size_t *cap)
{
    int            fd, one;
    serve_conn_t  *c;

    for ( ;; ) {
        fd = accept(lfd, NULL, NULL);

        if (fd == -1) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR
                && errno != ECONNABORTED)
            {
                fprintf(stderr, "vmess-client: accept: %s\n",
                        strerror(errno));
            }
            return 0;
        }

        if (*n == *cap) {
            c = realloc(*conns, (*cap * 2 + 64) * sizeof(serve_conn_t));
            if (c == NULL) {
                close(fd);
                return -1;
            }

            *conns = c;
            *cap = *cap * 2 + 64;
        }

        c = &(*conns)[*n];
        memset(c, 0, sizeof(serve_conn_t));
        c->fd = fd;

        one = 1;
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

        if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1) {
            close(fd);
            continue;
        }

        if (conf.mode == MODE_SERVE_ECHO) {
            c->buf = malloc(SERVE_BUF_SIZE);
            if (c->buf == NULL) {
                close(fd);
                continue;
            }
        }

        (*n)++;
    }
}


static short
serve_events(serve_conn_t *c)
{
    short  events;

    events = 0;

    switch (conf.mode) {

    case MODE_SERVE_ECHO:
        if (!c->eof && c->tail < SERVE_BUF_SIZE) {
            events |= POLLIN;
        }
        if (c->head < c->tail) {
            events |= POLLOUT;
        }
        break;

    case MODE_SERVE_SINK:
        events = POLLIN;
        if (c->state == SERVE_ACK) {
            events |= POLLOUT;
        }
        break;

    default: /* MODE_SERVE_SOURCE */
        if (!c->eof) {
            events |= POLLIN;
        }
        if (c->state == SERVE_BODY) {
            events |= POLLOUT;
        }
        break;
    }

    return events;
}


/* returns -1 when the connection is to be closed */
static int
serve_io(serve_conn_t *c, short revents, uint8_t *scratch)
{
    switch (conf.mode) {

    case MODE_SERVE_ECHO:
        return serve_echo_io(c, revents);

    case MODE_SERVE_SINK:
        return serve_sink_io(c, revents, scratch);

    default: /* MODE_SERVE_SOURCE */
        return serve_source_io(c, revents, scratch);
    }
}


static void
serve_sigterm(int signo)
{
    (void) signo;

    _exit(CLIENT_OK);
}
