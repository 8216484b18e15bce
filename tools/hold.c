/*
 * hold: open N authenticated VMess sessions (AEAD header, one small
 * chunk echoed by the target and checked), then keep them all open and
 * idle: the memory benchmark (bench/run) and the load test (t/load.t).
 *
 *   hold -s host:port -u uuid -t ipv4:port [-S security] [-n sessions]
 *        [-p in-flight] [--hold seconds] [--timeout seconds]
 *        [--answer seconds]
 *
 * A session that has no echo --answer seconds (default 5) after its
 * connect, or that the server closes first, is given up (closed and
 * counted): v2ray 4.34 drains a small share of genuine AEAD sessions
 * without answering ("replayed request": its AuthID replay filter has
 * false positives).  Once every session is established or given up it
 * prints "held E of N unanswered=U refused=R seconds=S" on stdout, then
 * sends and reads nothing until SIGTERM/SIGINT or --hold seconds
 * (default 60) have passed, closes everything and exits 0.  On a hard
 * failure (no session at all, --timeout seconds (default 30) passed, a
 * wrong echo): "hold FAIL established=K/N: reason", exit 1.  The target
 * must be an IPv4 literal (the benchmark only uses 127.0.0.1).  With
 * "-S plain" the sessions are plain TCP (16 bytes echoed, no VMess; -u
 * and -t are not needed): the memory floor of a stream proxy.
 *
 * One thread, epoll, non-blocking sockets; at most -p (default 128)
 * sessions between connect and echo at a time.  Body codecs are freed as
 * soon as a session is established, so the holder itself stays small.
 */

#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <openssl/rand.h>

#include "vmess.h"


#define HOLD_PAYLOAD            16
#define HOLD_OUT_SIZE           1024
#define HOLD_IN_SIZE            1024


typedef enum {
    HOLD_IDLE = 0,          /* not started */
    HOLD_CONNECTING,
    HOLD_WAITING,           /* header + chunk sent, echo expected */
    HOLD_ESTABLISHED,
    HOLD_GAVE_UP            /* no echo in time, or closed: closed */
} hold_state_e;


typedef struct {
    int                     fd;
    hold_state_e            state;
    int                     slot;           /* in-flight slot, or -1 */
    double                  started;
    vmess_request_t         req;
    vmess_session_t         keys;
    vmess_body_t            reader;
    unsigned                header_done:1;
    uint8_t                 payload[HOLD_PAYLOAD];
    size_t                  received;
} hold_session_t;


typedef struct {
    uint8_t                *in;             /* HOLD_IN_SIZE */
    size_t                  in_len;
    uint8_t                *staging;        /* VMESS_STAGING_SIZE */
    uint8_t                *plain;          /* VMESS_CHUNK_MAX */
    hold_session_t         *used;           /* owner, or NULL */
} hold_slot_t;


static int hold_parse(int argc, char **argv);
static void hold_fail(const char *fmt, ...);
static double hold_now(void);
static int hold_start(hold_session_t *s, int epfd);
static int hold_send(hold_session_t *s, int epfd);
static int hold_read(hold_session_t *s);
static void hold_done(hold_session_t *s, int epfd);
static void hold_give_up(hold_session_t *s, int epfd);
static void hold_signal(int signo);


static struct sockaddr_in    hold_server;
static uint8_t               hold_id[16];
static uint8_t               hold_addr[4];
static uint16_t              hold_port;
static uint8_t               hold_security = VMESS_SEC_AES_128_GCM;
static int                   hold_plain;
static uint8_t               hold_options = VMESS_OPT_CHUNK_STREAM
                                            | VMESS_OPT_CHUNK_MASKING
                                            | VMESS_OPT_GLOBAL_PADDING;
static unsigned long         hold_n = 1000;
static unsigned long         hold_inflight = 128;
static double                hold_seconds = 60;
static double                hold_timeout = 30;
static double                hold_answer = 5;
static unsigned long         hold_established;
static unsigned long         hold_unanswered;
static unsigned long         hold_refused;
static vmess_user_t          hold_user;
static uint8_t               hold_pad[64];
static hold_slot_t          *hold_slots;
static volatile sig_atomic_t hold_stop;


int
main(int argc, char **argv)
{
    int                 epfd, n, i, rc;
    double              start, end, deadline, now;
    unsigned long       next, inflight, k;
    hold_session_t     *sessions, *s;
    struct sigaction    sa;
    struct epoll_event  events[256];

    if (hold_parse(argc, argv) != 0) {
        fprintf(stderr, "usage: hold -s host:port -u uuid -t ipv4:port"
                " [-S aes-128-gcm|chacha20-poly1305|none|plain]"
                " [-n sessions]"
                " [-p in-flight] [--hold seconds] [--timeout seconds]"
                " [--answer seconds]\n");
        return 2;
    }

    signal(SIGPIPE, SIG_IGN);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = hold_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    if (!hold_plain
        && vmess_user_init(&hold_user, hold_id, 0, NULL) != VMESS_OK)
    {
        hold_fail("user init failed");
    }

    RAND_bytes(hold_pad, sizeof(hold_pad));

    sessions = calloc(hold_n, sizeof(hold_session_t));
    hold_slots = calloc(hold_inflight, sizeof(hold_slot_t));
    if (sessions == NULL || hold_slots == NULL) {
        hold_fail("out of memory");
    }

    for (k = 0; k < hold_inflight; k++) {
        hold_slots[k].in = malloc(HOLD_IN_SIZE);
        hold_slots[k].staging = malloc(VMESS_STAGING_SIZE);
        hold_slots[k].plain = malloc(VMESS_CHUNK_MAX);
        if (hold_slots[k].in == NULL || hold_slots[k].staging == NULL
            || hold_slots[k].plain == NULL)
        {
            hold_fail("out of memory");
        }
    }

    for (k = 0; k < hold_n; k++) {
        sessions[k].fd = -1;
        sessions[k].slot = -1;
    }

    epfd = epoll_create1(0);
    if (epfd == -1) {
        hold_fail("epoll_create1: %s", strerror(errno));
    }

    start = hold_now();
    deadline = start + hold_timeout;
    next = 0;
    inflight = 0;

    while (hold_established + hold_unanswered + hold_refused < hold_n) {

        while (next < hold_n && inflight < hold_inflight) {
            if (hold_start(&sessions[next], epfd) != 0) {
                hold_fail("session %lu: connect: %s", next,
                          strerror(errno));
            }
            next++;
            inflight++;
        }

        if (hold_stop) {
            hold_fail("stopped by a signal");
        }

        if (hold_now() > deadline) {
            hold_fail("timed out after %.0f s", hold_timeout);
        }

        n = epoll_wait(epfd, events, 256, 100);
        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }
            hold_fail("epoll_wait: %s", strerror(errno));
        }

        for (i = 0; i < n; i++) {
            s = events[i].data.ptr;

            if (s->state == HOLD_CONNECTING) {
                rc = hold_send(s, epfd);

            } else if (s->state == HOLD_WAITING) {
                rc = hold_read(s);

            } else {
                continue;
            }

            if (rc < 0) {
                hold_fail("session %ld: %s", (long) (s - sessions),
                          strerror(errno));
            }

            if (rc > 0) {
                hold_refused++;
                hold_give_up(s, epfd);
                inflight--;

            } else if (s->state == HOLD_ESTABLISHED) {
                hold_done(s, epfd);
                inflight--;
            }
        }

        now = hold_now();

        for (k = 0; k < hold_inflight; k++) {
            s = hold_slots[k].used;

            if (s != NULL && now - s->started > hold_answer) {
                hold_unanswered++;
                hold_give_up(s, epfd);
                inflight--;
            }
        }
    }

    if (hold_established == 0) {
        hold_fail("no session was answered");
    }

    end = hold_now();
    printf("held %lu of %lu unanswered=%lu refused=%lu seconds=%.3f\n",
           hold_established, hold_n, hold_unanswered, hold_refused,
           end - start);
    fflush(stdout);

    deadline = end + hold_seconds;

    while (!hold_stop && hold_now() < deadline) {
        usleep(50000);
    }

    for (k = 0; k < hold_n; k++) {
        if (sessions[k].fd != -1) {
            close(sessions[k].fd);
        }
    }

    return 0;
}


static int
hold_parse(int argc, char **argv)
{
    int          i;
    char         host[64], *colon;
    const char  *arg, *val, *server, *uuid, *target;

    server = NULL;
    uuid = NULL;
    target = NULL;

    for (i = 1; i + 1 < argc; i += 2) {
        arg = argv[i];
        val = argv[i + 1];

        if (strcmp(arg, "-s") == 0) {
            server = val;

        } else if (strcmp(arg, "-u") == 0) {
            uuid = val;

        } else if (strcmp(arg, "-t") == 0) {
            target = val;

        } else if (strcmp(arg, "-S") == 0) {
            if (strcmp(val, "aes-128-gcm") == 0) {
                hold_security = VMESS_SEC_AES_128_GCM;

            } else if (strcmp(val, "chacha20-poly1305") == 0) {
                hold_security = VMESS_SEC_CHACHA20_POLY1305;

            } else if (strcmp(val, "plain") == 0) {
                hold_plain = 1;

            } else if (strcmp(val, "none") == 0) {
                hold_security = VMESS_SEC_NONE;
                hold_options = VMESS_OPT_CHUNK_STREAM
                               | VMESS_OPT_CHUNK_MASKING;

            } else {
                return -1;
            }

        } else if (strcmp(arg, "-n") == 0) {
            hold_n = strtoul(val, NULL, 10);

        } else if (strcmp(arg, "-p") == 0) {
            hold_inflight = strtoul(val, NULL, 10);

        } else if (strcmp(arg, "--hold") == 0) {
            hold_seconds = strtod(val, NULL);

        } else if (strcmp(arg, "--timeout") == 0) {
            hold_timeout = strtod(val, NULL);

        } else if (strcmp(arg, "--answer") == 0) {
            hold_answer = strtod(val, NULL);

        } else {
            return -1;
        }
    }

    if (hold_plain) {
        uuid = "00000000-0000-4000-8000-000000000000";
        target = "127.0.0.1:9";
    }

    if (i != argc || server == NULL || uuid == NULL || target == NULL
        || hold_n == 0 || hold_inflight == 0)
    {
        return -1;
    }

    if (hold_inflight > hold_n) {
        hold_inflight = hold_n;
    }

    if (vmess_uuid_parse(uuid, strlen(uuid), hold_id) != VMESS_OK) {
        return -1;
    }

    /* server */
    if (strlen(server) >= sizeof(host)) {
        return -1;
    }
    strcpy(host, server);
    colon = strrchr(host, ':');
    if (colon == NULL) {
        return -1;
    }
    *colon = '\0';
    memset(&hold_server, 0, sizeof(hold_server));
    hold_server.sin_family = AF_INET;
    hold_server.sin_port = htons((uint16_t) atoi(colon + 1));
    if (inet_pton(AF_INET, host, &hold_server.sin_addr) != 1) {
        return -1;
    }

    /* target */
    if (strlen(target) >= sizeof(host)) {
        return -1;
    }
    strcpy(host, target);
    colon = strrchr(host, ':');
    if (colon == NULL) {
        return -1;
    }
    *colon = '\0';
    hold_port = (uint16_t) atoi(colon + 1);
    if (inet_pton(AF_INET, host, hold_addr) != 1) {
        return -1;
    }

    return 0;
}


static void
hold_fail(const char *fmt, ...)
{
    va_list  args;

    printf("hold FAIL established=%lu/%lu: ", hold_established, hold_n);
    va_start(args, fmt);
    vprintf(fmt, args);
    va_end(args);
    printf("\n");
    exit(1);
}


static double
hold_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}


static int
hold_start(hold_session_t *s, int epfd)
{
    int                 fd, one;
    unsigned long       k;
    struct epoll_event  ev;

    for (k = 0; k < hold_inflight; k++) {
        if (hold_slots[k].used == NULL) {
            break;
        }
    }

    hold_slots[k].used = s;
    hold_slots[k].in_len = 0;
    s->slot = (int) k;
    s->started = hold_now();

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd == -1) {
        return -1;
    }

    s->fd = fd;
    one = 1;
    (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    if (connect(fd, (struct sockaddr *) &hold_server, sizeof(hold_server))
        == -1 && errno != EINPROGRESS)
    {
        return -1;
    }

    s->state = HOLD_CONNECTING;

    ev.events = EPOLLOUT | EPOLLIN;
    ev.data.ptr = s;

    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}


/* connected: the header and one sealed chunk in one write */
static int
hold_send(hold_session_t *s, int epfd)
{
    int                 rc, err;
    size_t              len, written;
    ssize_t             n;
    int64_t             now;
    uint8_t             rnd[16 + 16 + 1 + 1 + 15], rand4[4], nonce8[8];
    uint8_t             out[HOLD_OUT_SIZE];
    socklen_t           elen;
    vmess_body_t        writer;
    struct epoll_event  ev;

    elen = sizeof(err);
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &elen) == -1) {
        return -1;
    }

    if (err != 0) {
        errno = err;
        return -1;
    }

    RAND_bytes(s->payload, sizeof(s->payload));

    if (hold_plain) {
        memcpy(out, s->payload, sizeof(s->payload));
        len = sizeof(s->payload);
        goto send;
    }

    RAND_bytes(rnd, sizeof(rnd));
    RAND_bytes(rand4, sizeof(rand4));
    RAND_bytes(nonce8, sizeof(nonce8));

    memset(&s->req, 0, sizeof(vmess_request_t));
    s->req.version = 1;
    memcpy(s->req.body_key, rnd, 16);
    memcpy(s->req.body_iv, rnd + 16, 16);
    s->req.response_v = rnd[32];
    s->req.padding_len = rnd[33] % 16;
    memcpy(s->req.padding, rnd + 34, 15);
    s->req.options = hold_options;
    s->req.security = hold_security;
    s->req.command = VMESS_CMD_TCP;
    s->req.port = hold_port;
    s->req.addr_type = VMESS_ADDR_IPV4;
    s->req.addr_len = 4;
    memcpy(s->req.addr, hold_addr, 4);

    now = (int64_t) time(NULL);

    rc = vmess_aead_header_seal(&hold_user, now, rand4, nonce8, &s->req,
                                out, sizeof(out), &len);
    if (rc == VMESS_OK) {
        rc = vmess_session_init(&s->keys, &s->req, 0);
    }

    if (rc == VMESS_OK) {
        rc = vmess_body_init(&writer, &s->keys, VMESS_DIR_REQUEST, 0);
        if (rc == VMESS_OK) {
            rc = vmess_body_seal(&writer, s->payload, sizeof(s->payload),
                                 hold_pad, out + len, sizeof(out) - len,
                                 &written);
            len += written;
        }
        vmess_body_free(&writer);
    }

    if (rc == VMESS_OK) {
        rc = vmess_body_init(&s->reader, &s->keys, VMESS_DIR_RESPONSE, 0);
    }

    if (rc != VMESS_OK) {
        hold_fail("vmess: %s", vmess_strerror(rc));
    }

    vmess_body_set_staging(&s->reader, hold_slots[s->slot].staging,
                           VMESS_STAGING_SIZE);

send:

    /* a fresh loopback socket takes ~100 bytes without blocking */
    n = send(s->fd, out, len, MSG_NOSIGNAL);
    if (n != (ssize_t) len) {
        if (n >= 0) {
            errno = EAGAIN;
        }
        return -1;
    }

    s->state = HOLD_WAITING;

    ev.events = EPOLLIN;
    ev.data.ptr = s;

    return epoll_ctl(epfd, EPOLL_CTL_MOD, s->fd, &ev);
}


static int
hold_read(hold_session_t *s)
{
    int           rc, found;
    size_t        consumed, produced, off;
    ssize_t       n;
    hold_slot_t  *slot = &hold_slots[s->slot];

    n = recv(s->fd, slot->in + slot->in_len, HOLD_IN_SIZE - slot->in_len, 0);

    if (n == -1) {
        if (errno == EAGAIN || errno == EINTR) {
            return 0;
        }

        return (errno == ECONNRESET) ? 1 : -1;
    }

    if (n == 0) {
        return 1;       /* closed by the server before its echo */
    }

    slot->in_len += (size_t) n;
    off = 0;

    if (hold_plain) {
        if (slot->in_len > HOLD_PAYLOAD
            || memcmp(slot->in, s->payload, slot->in_len) != 0)
        {
            hold_fail("echo differs from what was sent");
        }

        if (slot->in_len == HOLD_PAYLOAD) {
            s->state = HOLD_ESTABLISHED;
        }

        return 0;
    }

    while (off < slot->in_len && s->state == HOLD_WAITING) {

        if (!s->header_done) {
            found = 0;
            rc = vmess_response_header_open(&s->reader, s->req.response_v,
                                            slot->in + off,
                                            slot->in_len - off, &consumed,
                                            NULL, &found);
            if (rc == VMESS_AGAIN) {
                break;
            }

            if (rc != VMESS_OK) {
                hold_fail("response header: %s", vmess_strerror(rc));
            }

            s->header_done = 1;
            off += consumed;
            continue;
        }

        consumed = 0;
        produced = 0;

        rc = vmess_body_open(&s->reader, slot->in + off, slot->in_len - off,
                             &consumed, slot->plain, VMESS_CHUNK_MAX,
                             &produced);
        off += consumed;

        if (rc < 0 || rc == VMESS_NEED_STAGING) {
            hold_fail("response body: %s", vmess_strerror(rc));
        }

        if (produced != 0) {
            if (s->received + produced > HOLD_PAYLOAD
                || memcmp(slot->plain, s->payload + s->received, produced)
                   != 0)
            {
                hold_fail("echo differs from what was sent");
            }

            s->received += produced;

            if (s->received == HOLD_PAYLOAD) {
                s->state = HOLD_ESTABLISHED;
            }
        }

        if (s->reader.eof) {
            hold_fail("end marker before the echo");
        }

        if (rc == VMESS_AGAIN || (consumed == 0 && produced == 0)) {
            break;
        }
    }

    memmove(slot->in, slot->in + off, slot->in_len - off);
    slot->in_len -= off;

    return 0;
}


/* established: free the codec and the slot, stop watching the socket */
static void
hold_done(hold_session_t *s, int epfd)
{
    (void) epoll_ctl(epfd, EPOLL_CTL_DEL, s->fd, NULL);
    vmess_body_free(&s->reader);
    hold_slots[s->slot].used = NULL;
    s->slot = -1;
    hold_established++;
}


static void
hold_give_up(hold_session_t *s, int epfd)
{
    (void) epoll_ctl(epfd, EPOLL_CTL_DEL, s->fd, NULL);
    close(s->fd);
    s->fd = -1;
    vmess_body_free(&s->reader);
    hold_slots[s->slot].used = NULL;
    s->slot = -1;
    s->state = HOLD_GAVE_UP;
}


static void
hold_signal(int signo)
{
    (void) signo;
    hold_stop = 1;
}
