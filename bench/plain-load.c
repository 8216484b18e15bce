/*
 * plain-load: the plain-TCP twin of "vmess-client upload|download", for
 * the floor of the bulk benchmark (a stream proxy without VMess).  Same
 * sub-protocol as vmess-client's serve-sink and serve-source: the first 8
 * bytes are the count n (big-endian 64-bit); the sink discards n bytes
 * and answers with the same 8 bytes, the source sends n bytes and
 * half-closes.
 *
 *   plain-load -s host:port [-n bytes] [-c parallel] upload|download
 *
 * -n is per connection (suffixes k, m, g: x1024), one thread per
 * connection.  Prints "MODE ok sessions=C bytes=TOTAL seconds=S MiB/s=X",
 * or "MODE FAIL: reason" and exits 1.  Payload bytes are not checked (the
 * VMess runs check theirs; here only the relay cost matters).
 */

#define _GNU_SOURCE

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>


#define PLAIN_IO_SIZE           (256 * 1024)
#define PLAIN_MAX_PARALLEL      256
#define PLAIN_TIMEOUT           30      /* seconds without progress */


typedef struct {
    pthread_t                   thread;
    uint64_t                    bytes;
    char                        error[128];
} plain_worker_t;


static int plain_parse_size(const char *s, uint64_t *out);
static double plain_now(void);
static void *plain_thread(void *arg);
static int plain_write_all(int fd, const uint8_t *p, size_t len);


static struct sockaddr_in    plain_server;
static uint64_t              plain_bytes = 1048576;
static int                   plain_upload;


int
main(int argc, char **argv)
{
    int              i;
    char             host[64], *colon;
    double           start, seconds;
    uint64_t         total;
    unsigned long    parallel;
    const char      *server, *mode;
    plain_worker_t  *w;

    server = NULL;
    mode = NULL;
    parallel = 1;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) {
            server = argv[++i];

        } else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            if (plain_parse_size(argv[++i], &plain_bytes) != 0) {
                mode = NULL;
                break;
            }

        } else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            parallel = strtoul(argv[++i], NULL, 10);

        } else if (argv[i][0] != '-' && mode == NULL) {
            mode = argv[i];

        } else {
            mode = NULL;
            break;
        }
    }

    if (server == NULL || mode == NULL || parallel == 0
        || parallel > PLAIN_MAX_PARALLEL
        || (strcmp(mode, "upload") != 0 && strcmp(mode, "download") != 0)
        || strlen(server) >= sizeof(host))
    {
        fprintf(stderr, "usage: plain-load -s host:port [-n bytes]"
                " [-c parallel] upload|download\n");
        return 2;
    }

    plain_upload = (strcmp(mode, "upload") == 0);

    strcpy(host, server);
    colon = strrchr(host, ':');
    if (colon == NULL) {
        fprintf(stderr, "plain-load: bad server \"%s\"\n", server);
        return 2;
    }
    *colon = '\0';

    memset(&plain_server, 0, sizeof(plain_server));
    plain_server.sin_family = AF_INET;
    plain_server.sin_port = htons((uint16_t) atoi(colon + 1));
    if (inet_pton(AF_INET, host, &plain_server.sin_addr) != 1) {
        fprintf(stderr, "plain-load: bad server \"%s\"\n", server);
        return 2;
    }

    w = calloc(parallel, sizeof(plain_worker_t));
    if (w == NULL) {
        fprintf(stderr, "plain-load: out of memory\n");
        return 1;
    }

    start = plain_now();

    for (i = 0; i < (int) parallel; i++) {
        if (pthread_create(&w[i].thread, NULL, plain_thread, &w[i]) != 0) {
            printf("%s FAIL: pthread_create\n", mode);
            return 1;
        }
    }

    total = 0;

    for (i = 0; i < (int) parallel; i++) {
        pthread_join(w[i].thread, NULL);
        total += w[i].bytes;
    }

    seconds = plain_now() - start;

    for (i = 0; i < (int) parallel; i++) {
        if (w[i].error[0] != '\0') {
            printf("%s FAIL: %s\n", mode, w[i].error);
            return 1;
        }
    }

    printf("%s ok sessions=%lu bytes=%llu seconds=%.3f MiB/s=%.1f\n", mode,
           parallel, (unsigned long long) total, seconds,
           total / seconds / 1048576);

    return 0;
}


static int
plain_parse_size(const char *s, uint64_t *out)
{
    char      *end;
    uint64_t   v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || end == s) {
        return -1;
    }

    switch (*end) {
    case 'k': case 'K': v <<= 10; end++; break;
    case 'm': case 'M': v <<= 20; end++; break;
    case 'g': case 'G': v <<= 30; end++; break;
    default: break;
    }

    if (*end != '\0') {
        return -1;
    }

    *out = v;

    return 0;
}


static double
plain_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}


static void *
plain_thread(void *arg)
{
    int              fd, one, k;
    size_t           len, got;
    ssize_t          n;
    uint8_t          count[8], *buf;
    uint64_t         left;
    struct timeval   tv;
    plain_worker_t  *w = arg;

    buf = malloc(PLAIN_IO_SIZE);
    if (buf == NULL) {
        snprintf(w->error, sizeof(w->error), "out of memory");
        return NULL;
    }

    memset(buf, 0x5a, PLAIN_IO_SIZE);

    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd == -1) {
        snprintf(w->error, sizeof(w->error), "socket: %s", strerror(errno));
        goto done;
    }

    one = 1;
    (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    tv.tv_sec = PLAIN_TIMEOUT;
    tv.tv_usec = 0;
    (void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    (void) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));

    if (connect(fd, (struct sockaddr *) &plain_server, sizeof(plain_server))
        == -1)
    {
        snprintf(w->error, sizeof(w->error), "connect: %s", strerror(errno));
        goto done;
    }

    for (k = 0; k < 8; k++) {
        count[k] = (uint8_t) (plain_bytes >> (56 - 8 * k));
    }

    if (plain_write_all(fd, count, 8) != 0) {
        snprintf(w->error, sizeof(w->error), "send: %s", strerror(errno));
        goto done;
    }

    left = plain_bytes;

    if (plain_upload) {
        while (left > 0) {
            len = left < PLAIN_IO_SIZE ? (size_t) left : PLAIN_IO_SIZE;

            if (plain_write_all(fd, buf, len) != 0) {
                snprintf(w->error, sizeof(w->error), "send: %s",
                         strerror(errno));
                goto done;
            }

            left -= len;
            w->bytes += len;
        }

        /* the sink's answer: the same 8 count bytes */
        got = 0;
        while (got < 8) {
            n = recv(fd, buf + got, 8 - got, 0);
            if (n <= 0) {
                if (n == -1 && errno == EINTR) {
                    continue;
                }
                snprintf(w->error, sizeof(w->error), "no count from the"
                         " sink: %s", n == 0 ? "closed" : strerror(errno));
                goto done;
            }
            got += (size_t) n;
        }

        if (memcmp(buf, count, 8) != 0) {
            snprintf(w->error, sizeof(w->error), "sink counted otherwise");
        }

    } else {
        while (left > 0) {
            n = recv(fd, buf, PLAIN_IO_SIZE, 0);
            if (n <= 0) {
                if (n == -1 && errno == EINTR) {
                    continue;
                }
                snprintf(w->error, sizeof(w->error), "download: %s after"
                         " %llu bytes", n == 0 ? "closed" : strerror(errno),
                         (unsigned long long) w->bytes);
                goto done;
            }

            if ((uint64_t) n > left) {
                snprintf(w->error, sizeof(w->error), "source sent more");
                goto done;
            }

            left -= (uint64_t) n;
            w->bytes += (uint64_t) n;
        }
    }

done:

    if (fd != -1) {
        close(fd);
    }

    free(buf);

    return NULL;
}


static int
plain_write_all(int fd, const uint8_t *p, size_t len)
{
    ssize_t  n;

    while (len > 0) {
        n = send(fd, p, len, MSG_NOSIGNAL);
        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }

        p += n;
        len -= (size_t) n;
    }

    return 0;
}
