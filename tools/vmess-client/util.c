/*
 * vmess-client: helpers every part uses: exits and errors, randomness,
 * the clock and CPU time, big-endian counts, the pattern and the
 * descriptor limit.
 */

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/resource.h>

#include <openssl/rand.h>

#include "client.h"


uint8_t  *pattern;


void
client_die(const char *fmt, ...)
{
    va_list  args;

    fputs("vmess-client: ", stderr);
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fputs(" (see --help)\n", stderr);

    exit(CLIENT_FAIL);
}


void
client_random(void *buf, size_t len)
{
    if (RAND_bytes(buf, (int) len) != 1) {
        fputs("vmess-client: RAND_bytes failed\n", stderr);
        exit(CLIENT_FAIL);
    }
}


double
client_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


/* user + system seconds of this process, all its threads */
double
client_cpu_seconds(void)
{
    struct rusage  ru;

    if (getrusage(RUSAGE_SELF, &ru) != 0) {
        return 0;
    }

    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6
           + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}


void
client_put_be64(uint8_t *p, uint64_t v)
{
    int  i;

    for (i = 7; i >= 0; i--) {
        p[i] = (uint8_t) v;
        v >>= 8;
    }
}


uint64_t
client_get_be64(const uint8_t *p)
{
    int       i;
    uint64_t  v;

    v = 0;

    for (i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }

    return v;
}


/* the payload of every mode; see the usage text */
void
client_pattern_init(void)
{
    int              len;
    uint8_t          zero[16];
    EVP_CIPHER_CTX  *ctx;

    pattern = calloc(PATTERN_SIZE + PATTERN_TAIL, 1);
    ctx = EVP_CIPHER_CTX_new();
    memset(zero, 0, sizeof(zero));

    if (pattern == NULL || ctx == NULL
        || !EVP_EncryptInit_ex(ctx, EVP_aes_128_ctr(), NULL, zero, zero)
        || !EVP_EncryptUpdate(ctx, pattern, &len, pattern, PATTERN_SIZE))
    {
        fputs("vmess-client: cannot make the pattern\n", stderr);
        exit(CLIENT_FAIL);
    }

    EVP_CIPHER_CTX_free(ctx);
    memcpy(pattern + PATTERN_SIZE, pattern, PATTERN_TAIL);
}


/*
 * hold and the targets keep a descriptor per connection: the soft limit
 * (often 1024) goes up to the hard one, which only privilege could raise.
 * Returns the limit in force.
 */
uint64_t
client_raise_nofile(void)
{
    struct rlimit  rl, raised;

    if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
        return 0;
    }

    raised = rl;
    raised.rlim_cur = rl.rlim_max;

    if (rl.rlim_cur < rl.rlim_max && setrlimit(RLIMIT_NOFILE, &raised) == 0)
    {
        rl = raised;
    }

    return (uint64_t) rl.rlim_cur;
}


/*
 * A buffer that is sent from pos up to len: empty again once drained,
 * else what is left moves down when pos is past the middle.
 */
void
client_buffer_compact(uint8_t *buf, size_t size, size_t *pos, size_t *len)
{
    if (*pos == *len) {
        *pos = 0;
        *len = 0;

    } else if (*pos >= size / 2) {
        memmove(buf, buf + *pos, *len - *pos);
        *len -= *pos;
        *pos = 0;
    }
}


/* signo to handler, with no flags and nothing else blocked */
void
client_signal(int signo, void (*handler)(int signo))
{
    struct sigaction  sa;

    memset(&sa, 0, sizeof(struct sigaction));
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sigaction(signo, &sa, NULL);
}


int
client_fail(client_worker_t *w, const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    vsnprintf(w->s->error, sizeof(w->s->error), fmt, args);
    va_end(args);

    return CLIENT_FAIL;
}
