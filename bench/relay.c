/*
 * relay: the smallest TCP relay that does a VMess server's cipher work, the
 * "in-situ floor" of bench/run.
 *
 *   relay TARGET_PORT BUFFER_KIB CIPHER upload|download
 *
 * Listens on 127.0.0.1 (an ephemeral port, printed as "listening PORT"),
 * and for one client connection at a time connects to 127.0.0.1:TARGET_PORT
 * and forwards both ways through one BUFFER_KIB buffer per direction.  The
 * bulk direction (client to target for upload, target to client for
 * download) is run through the AEAD where it lies in that buffer, one
 * operation per 16 KiB of the stream as VMess chunks are: seal for
 * download, open for upload.  The 8-byte count that bench/plain-load sends
 * first is left alone, so that the targets still read it; tags are computed
 * and dropped and opening reports a mismatch, so the byte counts stay those
 * of plain TCP and bench/plain-load is the load generator.  CIPHER is
 * aes-128-gcm, chacha20-poly1305 or none.
 *
 * No VMess parsing, no framing, no event library: what this costs per GiB
 * beyond the same relay with "none" is what the cipher costs on bytes in
 * flight, which bench/run compares with the bare EVP loop of crypto-cost.
 * Runs until killed.
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
#include <sys/socket.h>

#include <openssl/evp.h>


#define RELAY_PIECE             16384
#define RELAY_TAG               16
#define RELAY_PREFIX            8       /* plain-load's count */


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


static int relay_accept(int ls, int target_port, relay_dir_t *up,
    relay_dir_t *down);
static int relay_pump(int from, int to, relay_dir_t *d);
static void relay_cipher(relay_dir_t *d, uint8_t *p, size_t n);


static EVP_CIPHER_CTX   *relay_ctx;
static int               relay_seal;
static uint32_t          relay_pieces;
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
    int                  ls, one, target_port;
    long                 kib;
    socklen_t            len;
    relay_dir_t          up, down;
    struct sockaddr_in   sin;
    const EVP_CIPHER    *cipher;

    if (argc != 5
        || (target_port = atoi(argv[1])) <= 0 || target_port > 65535
        || (kib = atol(argv[2])) <= 0 || kib > 65536
        || (strcmp(argv[4], "upload") != 0
            && strcmp(argv[4], "download") != 0))
    {
        fprintf(stderr, "usage: relay TARGET_PORT BUFFER_KIB "
                "aes-128-gcm|chacha20-poly1305|none upload|download\n");
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

    if (cipher != NULL) {
        relay_ctx = EVP_CIPHER_CTX_new();

        if (relay_ctx == NULL
            || !EVP_CipherInit_ex(relay_ctx, cipher, NULL,
                                  EVP_CIPHER_key_length(cipher) == 16
                                  ? relay_key : relay_chacha_key,
                                  NULL, relay_seal))
        {
            fprintf(stderr, "relay: %s init failed\n", argv[3]);
            return 1;
        }
    }

    memset(&up, 0, sizeof(up));
    memset(&down, 0, sizeof(down));
    up.size = down.size = (size_t) kib * 1024;
    up.buf = malloc(up.size);
    down.buf = malloc(down.size);

    if (up.buf == NULL || down.buf == NULL) {
        fprintf(stderr, "relay: out of memory\n");
        return 1;
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
        || listen(ls, 16) == -1
        || getsockname(ls, (struct sockaddr *) &sin, &len) == -1)
    {
        fprintf(stderr, "relay: listen: %s\n", strerror(errno));
        return 1;
    }

    printf("listening %d\n", ntohs(sin.sin_port));
    fflush(stdout);

    for ( ;; ) {
        up.bulk = !relay_seal && cipher != NULL;
        up.prefix = RELAY_PREFIX;
        down.bulk = relay_seal && cipher != NULL;
        down.prefix = 0;

        if (relay_accept(ls, target_port, &up, &down) != 0) {
            fprintf(stderr, "relay: session: %s\n", strerror(errno));
        }
    }
}


/* one client session, to its end */
static int
relay_accept(int ls, int target_port, relay_dir_t *up, relay_dir_t *down)
{
    int                  c, t, one, rc;
    struct pollfd        pfd[2];
    struct sockaddr_in   sin;

    c = accept(ls, NULL, NULL);
    if (c == -1) {
        return -1;
    }

    t = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons((uint16_t) target_port);

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

    up->start = up->end = down->start = down->end = 0;
    up->eof = down->eof = 0;
    up->seen = down->seen = 0;
    relay_pieces = 0;
    rc = 0;

    for ( ;; ) {
        if (relay_pump(c, t, up) != 0 || relay_pump(t, c, down) != 0) {
            rc = -1;
            break;
        }

        if ((up->eof && up->start == up->end)
            || (down->eof && down->start == down->end))
        {
            break;
        }

        pfd[0].fd = c;
        pfd[0].events = (!up->eof && up->end < up->size ? POLLIN : 0)
                        | (down->start < down->end ? POLLOUT : 0);
        pfd[1].fd = t;
        pfd[1].events = (!down->eof && down->end < down->size ? POLLIN : 0)
                        | (up->start < up->end ? POLLOUT : 0);

        if (poll(pfd, 2, 30000) <= 0) {
            rc = -1;
            break;
        }
    }

    close(c);
    close(t);

    return rc;
}


/* reads what there is room for, sends what there is; 0 or -1 */
static int
relay_pump(int from, int to, relay_dir_t *d)
{
    ssize_t  n;

    if (!d->eof && d->end < d->size) {
        n = recv(from, d->buf + d->end, d->size - d->end, 0);

        if (n > 0) {
            if (d->bulk) {
                relay_cipher(d, d->buf + d->end, (size_t) n);
            }

            d->end += (size_t) n;
            d->seen += (uint64_t) n;

        } else if (n == 0) {
            d->eof = 1;

        } else if (errno != EAGAIN && errno != EINTR) {
            return -1;
        }
    }

    if (d->start < d->end) {
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
relay_cipher(relay_dir_t *d, uint8_t *p, size_t n)
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
            nonce[0] = (uint8_t) (relay_pieces >> 8);
            nonce[1] = (uint8_t) relay_pieces;
            relay_pieces++;
            (void) EVP_CipherInit_ex(relay_ctx, NULL, NULL, NULL, nonce, -1);
        }

        (void) EVP_CipherUpdate(relay_ctx, p, &len, p, (int) k);

        if (k == room) {
            if (relay_seal) {
                (void) EVP_CipherFinal_ex(relay_ctx, tag, &len);
                (void) EVP_CIPHER_CTX_ctrl(relay_ctx, EVP_CTRL_AEAD_GET_TAG,
                                           RELAY_TAG, tag);

            } else {
                /* the bytes were never sealed: the check fails, its cost
                 * is the same */
                memset(tag, 0, sizeof(tag));
                (void) EVP_CIPHER_CTX_ctrl(relay_ctx, EVP_CTRL_AEAD_SET_TAG,
                                           RELAY_TAG, tag);
                (void) EVP_CipherFinal_ex(relay_ctx, tag, &len);
            }
        }

        p += k;
        n -= k;
        offset += k;
    }
}
