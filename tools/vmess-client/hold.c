/*
 * vmess-client: hold mode: many sessions open at once in one thread,
 * a few of them moving at a time, idle in between.
 */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"


static void client_hold_round(client_hold_t *h, int first);
static void client_hold_start(client_hold_t *h, client_worker_t *w,
    int first, double now);
static void client_hold_io(client_hold_t *h, client_worker_t *w, int first,
    double now);
static void client_hold_end(client_hold_t *h, client_worker_t *w, int rc,
    int first);
static void client_hold_die(client_hold_t *h, client_session_t *s);
static void client_hold_signal(int signo);


static volatile sig_atomic_t  client_hold_wake;     /* SIGUSR1 */


/*
 * hold: every session runs a first round (connect, header, echo) with at
 * most conf.in_flight of them in a slot (the buffers a moving session
 * needs) at a time, stays open with no slot while all the others get
 * there, and after the hold runs a second round (more echo, the end
 * marker) the same way.  Only the moving sessions are polled.
 */
int
client_hold(void)
{
    double            start, end;
    uint64_t          limit;
    unsigned          k;
    client_hold_t     h;
    struct timespec   nap;

    limit = client_raise_nofile();

    if (limit < conf.sessions + CLIENT_FDS_SPARE) {
        printf("hold FAIL held=0 sessions=%" PRIu64 ": %" PRIu64
               " sessions need more descriptors than the limit (%" PRIu64
               ")\n", conf.sessions, conf.sessions, limit);
        return CLIENT_FAIL;
    }

    client_signal(SIGUSR1, client_hold_signal);

    memset(&h, 0, sizeof(client_hold_t));
    h.sessions = calloc(conf.sessions, sizeof(client_session_t));
    h.slots = calloc(conf.in_flight, sizeof(client_worker_t));
    h.pfds = calloc(conf.in_flight, sizeof(struct pollfd));

    if (h.sessions == NULL || h.slots == NULL || h.pfds == NULL) {
        fputs("vmess-client: out of memory\n", stderr);
        return CLIENT_FAIL;
    }

    for (k = 0; k < conf.in_flight; k++) {
        if (client_worker_init(&h.slots[k]) != 0) {
            fputs("vmess-client: out of memory\n", stderr);
            return CLIENT_FAIL;
        }

        h.slots[k].s = NULL;
    }

    start = client_now();

    client_hold_round(&h, 1);

    if (h.held == 0) {
        printf("hold FAIL held=0 sessions=%" PRIu64 ": no session was"
               " answered\n", conf.sessions);
        return CLIENT_FAIL;
    }

    printf("hold held=%" PRIu64 " sessions=%" PRIu64 " unanswered=%" PRIu64
           " refused=%" PRIu64 " seconds=%.3f\n", h.held, conf.sessions,
           h.unanswered, h.refused, client_now() - start);
    fflush(stdout);

    end = client_now() + conf.hold_ms / 1000.0;
    nap.tv_sec = 0;
    nap.tv_nsec = 20 * 1000 * 1000;

    while (!client_hold_wake && client_now() < end) {
        (void) nanosleep(&nap, NULL);
    }

    client_hold_round(&h, 0);

    if (!conf.quiet) {
        printf("hold ok sessions=%" PRIu64 " bytes=%" PRIu64 " seconds=%.3f\n",
               h.closed, h.bytes, client_now() - start);
    }

    for (k = 0; k < conf.in_flight; k++) {
        client_worker_free(&h.slots[k]);
    }

    free(h.sessions);
    free(h.slots);
    free(h.pfds);

    return CLIENT_OK;
}


/* returns when every session of the round has finished it */
static void
client_hold_round(client_hold_t *h, int first)
{
    int                rc;
    double             now;
    uint64_t           next;
    unsigned           k, moving;
    client_worker_t   *w;
    client_session_t  *s;

    next = 0;

    for ( ;; ) {
        now = client_now();
        moving = 0;

        for (k = 0; k < conf.in_flight; k++) {
            w = &h->slots[k];

            while (w->s == NULL && next < conf.sessions) {
                s = &h->sessions[next++];

                /* given up in the first round */
                if (!first && s->fd == -1) {
                    continue;
                }

                w->s = s;
                client_hold_start(h, w, first, now);
            }

            if (w->s == NULL) {
                h->pfds[k].fd = -1;
                continue;
            }

            moving++;
            h->pfds[k].fd = w->s->fd;
            h->pfds[k].events = POLLIN;
            h->pfds[k].revents = 0;

            if (w->s->out_pos < w->s->out_len) {
                h->pfds[k].events |= POLLOUT;
            }
        }

        if (moving == 0) {
            return;
        }

        rc = poll(h->pfds, conf.in_flight, CLIENT_HOLD_POLL_MS);

        if (rc == -1 && errno != EINTR) {
            printf("hold FAIL held=%" PRIu64 " sessions=%" PRIu64 ": poll:"
                   " %s\n", h->held, conf.sessions, strerror(errno));
            exit(CLIENT_FAIL);
        }

        now = client_now();

        for (k = 0; k < conf.in_flight; k++) {
            w = &h->slots[k];
            s = w->s;

            if (s == NULL) {
                continue;
            }

            if (rc > 0 && h->pfds[k].revents != 0) {
                client_hold_io(h, w, first, now);

                if (w->s == NULL) {
                    continue;
                }
            }

            if (first && conf.answer_ms != 0
                && (now - s->started) * 1000 > conf.answer_ms)
            {
                h->unanswered++;
                client_session_close(w);
                s->fd = -1;
                w->s = NULL;

            } else if ((now - s->progressed) * 1000 > conf.timeout_ms) {
                client_hold_end(h, w, client_timeout(w), first);
            }
        }
    }
}


static void
client_hold_start(client_hold_t *h, client_worker_t *w, int first,
    double now)
{
    int                rc;
    client_session_t  *s = w->s;

    if (first) {
        rc = client_session_start(w, (uint64_t) (s - h->sessions));
        if (rc != CLIENT_OK) {
            client_hold_end(h, w, rc, first);
            return;
        }

    } else {
        /*
         * The slot may differ from the first round's: nothing is staged
         * between rounds (checked when the first one ended).
         */
        if (s->codecs) {
            vmess_body_set_staging(&s->reader, w->staging,
                                   VMESS_STAGING_SIZE);
        }

        s->keep_open = 0;
        s->complete = 0;
        s->to_send += conf.bytes;
        s->to_receive += conf.bytes;
    }

    s->started = now;
    s->progressed = now;

    client_hold_io(h, w, first, now);
}


/* moves bytes until the socket has none and takes none */
static void
client_hold_io(client_hold_t *h, client_worker_t *w, int first, double now)
{
    int  rc, progress;

    do {
        rc = client_session_io(w, &progress);

        if (progress) {
            w->s->progressed = now;
        }

    } while (rc == CLIENT_AGAIN && progress);

    if (rc != CLIENT_AGAIN) {
        client_hold_end(h, w, rc, first);
    }
}


/* a session finished its round: it leaves its slot */
static void
client_hold_end(client_hold_t *h, client_worker_t *w, int rc, int first)
{
    client_session_t  *s = w->s;

    if (rc == CLIENT_OK && first
        && (s->in_len != 0 || s->reader.staged != 0))
    {
        rc = client_fail(w, "bytes after the echo");
    }

    if (rc == CLIENT_OK && first) {
        h->held++;
        w->s = NULL;
        return;
    }

    if (rc == CLIENT_OK) {
        h->closed++;
        h->bytes += s->received;

    } else if (rc == CLIENT_REFUSED && first && conf.answer_ms != 0) {
        h->refused++;

    } else {
        client_hold_die(h, s);
    }

    client_session_close(w);
    s->fd = -1;
    w->s = NULL;
}


static void
client_hold_die(client_hold_t *h, client_session_t *s)
{
    printf("hold FAIL held=%" PRIu64 " sessions=%" PRIu64 ": session %"
           PRIu64 ": %s\n", h->held, conf.sessions, s->index, s->error);
    exit(CLIENT_FAIL);
}


static void
client_hold_signal(int signo)
{
    (void) signo;

    client_hold_wake = 1;
}
