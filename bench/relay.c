/*
 * relay: the smallest TCP relay that does a VMess server's cipher work, the
 * "in-situ floor" of bench/run.
 *
 *   relay TARGET_PORT BUFFER_KIB CIPHER upload|download [PROCESSES]
 *
 * Listens on 127.0.0.1 (an ephemeral port, printed as "listening PORT") in
 * PROCESSES processes (default 1, as nginx's workers share their listening
 * socket).  Each relays up to RELAY_SESSIONS client connections at a time:
 * it connects to 127.0.0.1:TARGET_PORT and forwards both ways through one
 * BUFFER_KIB buffer per direction.  The bulk direction (client to target
 * for upload, target to client for download) is run through the AEAD where
 * it lies in that buffer, one operation per 16 KiB of the stream as VMess
 * chunks are: seal for download, open for upload.  The 8-byte count that
 * "vmess-client --plain" sends first is left alone, so that the targets
 * still read it; tags are computed and dropped and opening reports a
 * mismatch, so the bytes stay those of plain TCP and "vmess-client
 * --plain" is the load generator.  CIPHER is aes-128-gcm,
 * chacha20-poly1305 or none.
 *
 * No VMess parsing, no framing, no event library: what this costs per GiB
 * beyond the same relay with "none" is what the cipher costs on bytes in
 * flight, which bench/run compares with the bare EVP loop of crypto-cost.
 * Runs until killed; the other processes end with the first.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include <openssl/evp.h>


#define RELAY_PIECE             16384
#define RELAY_TAG               16
#define RELAY_PREFIX            8       /* the client's count */
#define RELAY_SESSIONS          16      /* at a time, per process */
#define RELAY_PROCESSES         16


typedef struct {
    uint8_t                    *buf;
    size_t                      size;
    size_t                      start;      /* next byte to send */
    size_t                      end;        /* end of what came */
    int                         eof;        /* the reading side closed */
    int                         bulk;       /* runs through the cipher */
    size_t                      prefix;     /* bytes left alone first */
    uint64_t                    seen;       /* bytes read so far */
} relay_dir_t;


typedef struct {
    int                         client;     /* -1: a free slot */
    int                         target;
    relay_dir_t                 up;
    relay_dir_t                 down;
    EVP_CIPHER_CTX             *ctx;
    uint32_t                    pieces;     /* AEAD operations begun */
} relay_session_t;


static void relay_serve(int ls);
static int relay_open(relay_session_t *s, int c);
static void relay_close(relay_session_t *s);
static int relay_pump(relay_session_t *s, int from, int to, relay_dir_t *d,
    int can_read, int can_write);
static void relay_cipher(relay_session_t *s, relay_dir_t *d, uint8_t *p,
    size_t n);


static relay_session_t   relay_sessions[RELAY_SESSIONS];
static int               relay_target_port;
static int               relay_seal;
static const uint8_t     relay_key[16] = {
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
    0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff
};
static const uint8_t     relay_chacha_key[32] = {
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
    0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
    0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78,
    0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0
};


int
main(int argc, char **argv)
{
    int                  ls, one, i, processes;
    long                 kib;
    pid_t                pid;
    socklen_t            len;
    relay_session_t     *s;
    struct sockaddr_in   sin;
    const EVP_CIPHER    *cipher;

    processes = (argc == 6) ? atoi(argv[5]) : 1;

    if ((argc != 5 && argc != 6)
        || (relay_target_port = atoi(argv[1])) <= 0
        || relay_target_port > 65535
        || (kib = atol(argv[2])) <= 0 || kib > 65536
        || (strcmp(argv[4], "upload") != 0
            && strcmp(argv[4], "download") != 0)
        || processes < 1 || processes > RELAY_PROCESSES)
    {
        fprintf(stderr, "usage: relay TARGET_PORT BUFFER_KIB "
                "aes-128-gcm|chacha20-poly1305|none upload|download "
                "[PROCESSES]\n");
        return 2;
    }

    if (strcmp(argv[3], "aes-128-gcm") == 0) {
        cipher = EVP_aes_128_gcm();

    } else if (strcmp(argv[3], "chacha20-poly1305") == 0) {
        cipher = EVP_chacha20_poly1305();

    } else if (strcmp(argv[3], "none") == 0) {
        cipher = NULL;

    } else {
        fprintf(stderr, "relay: unknown cipher \"%s\"\n", argv[3]);
        return 2;
    }

    relay_seal = (strcmp(argv[4], "download") == 0);

    for (i = 0; i < RELAY_SESSIONS; i++) {
        s = &relay_sessions[i];
        s->client = -1;
        s->up.size = s->down.size = (size_t) kib * 1024;
        s->up.buf = malloc(s->up.size);
        s->down.buf = malloc(s->down.size);
        s->up.prefix = RELAY_PREFIX;
        s->up.bulk = !relay_seal && cipher != NULL;
        s->down.bulk = relay_seal && cipher != NULL;

        if (s->up.buf == NULL || s->down.buf == NULL) {
            fprintf(stderr, "relay: out of memory\n");
            return 1;
        }

        if (cipher == NULL) {
            continue;
        }

        s->ctx = EVP_CIPHER_CTX_new();

        if (s->ctx == NULL
            || !EVP_CipherInit_ex(s->ctx, cipher, NULL,
                                  EVP_CIPHER_key_length(cipher) == 16
                                  ? relay_key : relay_chacha_key,
                                  NULL, relay_seal))
        {
            fprintf(stderr, "relay: %s init failed\n", argv[3]);
            return 1;
        }
    }

    ls = socket(AF_INET, SOCK_STREAM, 0);
    one = 1;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof(sin);

    if (ls == -1
        || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1
        || bind(ls, (struct sockaddr *) &sin, sizeof(sin)) == -1
        || listen(ls, 64) == -1
        || getsockname(ls, (struct sockaddr *) &sin, &len) == -1
        || fcntl(ls, F_SETFL, O_NONBLOCK) == -1)
    {
        fprintf(stderr, "relay: listen: %s\n", strerror(errno));
        return 1;
    }

    for (i = 1; i < processes; i++) {
        pid = fork();

        if (pid == -1) {
            fprintf(stderr, "relay: fork: %s\n", strerror(errno));
            return 1;
        }

        if (pid == 0) {
            (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
            relay_serve(ls);
        }
    }

    printf("listening %d\n", ntohs(sin.sin_port));
    fflush(stdout);

    relay_serve(ls);
}


/* the event loop of one process: accepts and relays, never returns */
static void
relay_serve(int ls)
{
    int                  c, i, n, re, free_slot;
    short                ev;
    nfds_t               nfds;
    relay_session_t     *s;
    struct pollfd        pfd[1 + 2 * RELAY_SESSIONS];

    for ( ;; ) {
        nfds = 1;
        free_slot = -1;

        for (i = 0; i < RELAY_SESSIONS; i++) {
            s = &relay_sessions[i];

            if (s->client == -1) {
                if (free_slot == -1) {
                    free_slot = i;
                }

                continue;
            }

            pfd[nfds].fd = s->client;
            pfd[nfds].events = (!s->up.eof && s->up.end < s->up.size
                                ? POLLIN : 0)
                               | (s->down.start < s->down.end ? POLLOUT : 0);
            pfd[nfds].revents = 0;
            pfd[nfds + 1].fd = s->target;
            pfd[nfds + 1].events = (!s->down.eof
                                    && s->down.end < s->down.size
                                    ? POLLIN : 0)
                                   | (s->up.start < s->up.end ? POLLOUT : 0);
            pfd[nfds + 1].revents = 0;
            nfds += 2;
        }

        /* a full process leaves new connections to the others */
        pfd[0].fd = ls;
        pfd[0].events = (free_slot != -1) ? POLLIN : 0;
        pfd[0].revents = 0;

        if (poll(pfd, nfds, -1) == -1) {
            if (errno == EINTR) {
                continue;
            }

            fprintf(stderr, "relay: poll: %s\n", strerror(errno));
            exit(1);
        }

        n = 1;

        for (i = 0; i < RELAY_SESSIONS; i++) {
            s = &relay_sessions[i];

            if (s->client == -1) {
                continue;
            }

            ev = pfd[n].revents;
            re = pfd[n + 1].revents;
            n += 2;

            if (relay_pump(s, s->client, s->target, &s->up,
                           ev & (POLLIN | POLLHUP | POLLERR),
                           re & (POLLOUT | POLLERR)) != 0
                || relay_pump(s, s->target, s->client, &s->down,
                              re & (POLLIN | POLLHUP | POLLERR),
                              ev & (POLLOUT | POLLERR)) != 0
                || (s->up.eof && s->up.start == s->up.end)
                || (s->down.eof && s->down.start == s->down.end))
            {
                relay_close(s);
            }
        }

        if (pfd[0].revents & POLLIN) {
            c = accept(ls, NULL, NULL);

            if (c != -1 && relay_open(&relay_sessions[free_slot], c) != 0) {
                fprintf(stderr, "relay: target: %s\n", strerror(errno));
            }
        }
    }
}


/* a client connection in a free slot: its target connected */
static int
relay_open(relay_session_t *s, int c)
{
    int                  t, one;
    struct sockaddr_in   sin;

    t = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons((uint16_t) relay_target_port);

    if (t == -1 || connect(t, (struct sockaddr *) &sin, sizeof(sin)) == -1) {
        close(c);
        if (t != -1) {
            close(t);
        }
        return -1;
    }

    /* as nginx's proxy sets them */
    one = 1;
    (void) setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    (void) setsockopt(t, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    (void) fcntl(c, F_SETFL, O_NONBLOCK);
    (void) fcntl(t, F_SETFL, O_NONBLOCK);

    s->client = c;
    s->target = t;
    s->up.start = s->up.end = s->down.start = s->down.end = 0;
    s->up.eof = s->down.eof = 0;
    s->up.seen = s->down.seen = 0;
    s->pieces = 0;

    return 0;
}


static void
relay_close(relay_session_t *s)
{
    close(s->client);
    close(s->target);
    s->client = -1;
}


/* reads what there is room for, sends what there is; 0 or -1 */
static int
relay_pump(relay_session_t *s, int from, int to, relay_dir_t *d,
    int can_read, int can_write)
{
    ssize_t  n;

    if (can_read && !d->eof && d->end < d->size) {
        n = recv(from, d->buf + d->end, d->size - d->end, 0);

        if (n > 0) {
            if (d->bulk) {
                relay_cipher(s, d, d->buf + d->end, (size_t) n);
            }

            d->end += (size_t) n;
            d->seen += (uint64_t) n;

            /* what came may leave at once */
            can_write = 1;

        } else if (n == 0) {
            d->eof = 1;

        } else if (errno != EAGAIN && errno != EINTR) {
            return -1;
        }
    }

    if (can_write && d->start < d->end) {
        n = send(to, d->buf + d->start, d->end - d->start, MSG_NOSIGNAL);

        if (n > 0) {
            d->start += (size_t) n;

            if (d->start == d->end) {
                d->start = d->end = 0;
            }

        } else if (n == -1 && errno != EAGAIN && errno != EINTR) {
            return -1;
        }
    }

    return 0;
}


/*
 * n bytes that just came, in place: one AEAD operation per RELAY_PIECE
 * bytes of the stream after the prefix, begun and finished wherever its
 * bytes fall across reads
 */
static void
relay_cipher(relay_session_t *s, relay_dir_t *d, uint8_t *p, size_t n)
{
    int       len;
    size_t    skip, room, k;
    uint64_t  offset;
    uint8_t   nonce[12], tag[RELAY_TAG];

    offset = d->seen;

    if (offset < d->prefix) {
        skip = (size_t) (d->prefix - offset);
        if (skip >= n) {
            return;
        }

        p += skip;
        n -= skip;
        offset += skip;
    }

    offset -= d->prefix;

    while (n > 0) {
        room = RELAY_PIECE - (size_t) (offset % RELAY_PIECE);
        k = n < room ? n : room;

        if (room == RELAY_PIECE) {
            memset(nonce, 0, sizeof(nonce));
            nonce[0] = (uint8_t) (s->pieces >> 8);
            nonce[1] = (uint8_t) s->pieces;
            s->pieces++;
            (void) EVP_CipherInit_ex(s->ctx, NULL, NULL, NULL, nonce, -1);
        }

        (void) EVP_CipherUpdate(s->ctx, p, &len, p, (int) k);

        if (k == room) {
            if (relay_seal) {
                (void) EVP_CipherFinal_ex(s->ctx, tag, &len);
                (void) EVP_CIPHER_CTX_ctrl(s->ctx, EVP_CTRL_AEAD_GET_TAG,
                                           RELAY_TAG, tag);

            } else {
                /* the bytes were never sealed: the check fails, its cost
                 * is the same */
                memset(tag, 0, sizeof(tag));
                (void) EVP_CIPHER_CTX_ctrl(s->ctx, EVP_CTRL_AEAD_SET_TAG,
                                           RELAY_TAG, tag);
                (void) EVP_CipherFinal_ex(s->ctx, tag, &len);
            }
        }

        p += k;
        n -= k;
        offset += k;
    }
}
