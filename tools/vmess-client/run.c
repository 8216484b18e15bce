/*
 * vmess-client: the client modes but hold: -c threads, each running one
 * session at a time until -r have run, then the result line.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"


typedef struct {
    pthread_mutex_t             lock;
    uint64_t                    next;
    unsigned                    errors_shown;
} client_shared_t;


static void *client_thread(void *arg);
static void client_record(client_worker_t *w, int rc);
static int client_report(client_worker_t *workers, unsigned n,
    double seconds);


static client_shared_t  shared = { PTHREAD_MUTEX_INITIALIZER, 0, 0 };


int
client_run(void)
{
    int              rc;
    double           start, seconds;
    unsigned         i;
    pthread_attr_t   attr;
    client_worker_t *workers;

    workers = calloc(conf.parallel, sizeof(client_worker_t));
    if (workers == NULL) {
        fputs("vmess-client: out of memory\n", stderr);
        return CLIENT_FAIL;
    }

    for (i = 0; i < conf.parallel; i++) {
        if (client_worker_init(&workers[i]) != 0) {
            fputs("vmess-client: out of memory\n", stderr);
            return CLIENT_FAIL;
        }
    }

    start = client_now();

    if (conf.parallel == 1) {
        client_thread(&workers[0]);

    } else {
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, CLIENT_THREAD_STACK);

        for (i = 0; i < conf.parallel; i++) {
            rc = pthread_create(&workers[i].thread, &attr, client_thread,
                                &workers[i]);
            if (rc != 0) {
                fprintf(stderr, "vmess-client: thread %u: %s\n", i,
                        strerror(rc));
                exit(CLIENT_FAIL);
            }
        }

        for (i = 0; i < conf.parallel; i++) {
            pthread_join(workers[i].thread, NULL);
        }

        pthread_attr_destroy(&attr);
    }

    seconds = client_now() - start;

    rc = client_report(workers, conf.parallel, seconds);

    for (i = 0; i < conf.parallel; i++) {
        client_worker_free(&workers[i]);
    }

    free(workers);

    return rc;
}


int
client_worker_init(client_worker_t *w)
{
    w->s = &w->session;
    w->out = malloc(CLIENT_OUT_SIZE);
    w->in = malloc(CLIENT_IN_SIZE);
    w->plain = malloc(CLIENT_PLAIN_SIZE);
    w->staging = malloc(VMESS_STAGING_SIZE);
    w->scratch = malloc(VMESS_CHUNK_MAX);
    w->sha = EVP_MD_CTX_new();

    if (w->out == NULL || w->in == NULL || w->plain == NULL
        || w->staging == NULL || w->scratch == NULL || w->sha == NULL)
    {
        return -1;
    }

    if (conf.have_id) {
        if (vmess_user_init(&w->user, conf.id, conf.alter_ids, NULL)
            != VMESS_OK)
        {
            return -1;
        }

        w->user_ready = 1;
    }

    return 0;
}


void
client_worker_free(client_worker_t *w)
{
    if (w->user_ready) {
        vmess_user_free(&w->user);
    }

    EVP_MD_CTX_free(w->sha);
    free(w->out);
    free(w->in);
    free(w->plain);
    free(w->staging);
    free(w->scratch);
}


static void *
client_thread(void *arg)
{
    client_worker_t  *w = arg;
    uint64_t          index;

    for ( ;; ) {
        pthread_mutex_lock(&shared.lock);
        index = shared.next++;
        pthread_mutex_unlock(&shared.lock);

        if (index >= conf.sessions) {
            break;
        }

        client_record(w, conf.mode == MODE_PROBE ? client_probe(w, index)
                                                 : client_session(w, index));
    }

    return NULL;
}


static void
client_record(client_worker_t *w, int rc)
{
    client_session_t  *s = w->s;

    if (rc == CLIENT_OK) {
        w->ok++;
        w->dgrams += s->dgrams_received;
        w->bytes += (conf.mode == MODE_UPLOAD || conf.mode == MODE_PROBE)
                    ? s->sent : s->received;

    } else if (rc == CLIENT_REFUSED) {
        w->refused++;

    } else {
        w->failed++;
    }

    if (rc != CLIENT_OK && w->first_error[0] == '\0') {
        memcpy(w->first_error, s->error, sizeof(s->error));
    }

    if (conf.verbose) {
        fprintf(stderr, "session %" PRIu64 ": %s sent=%" PRIu64
                " received=%" PRIu64 " seconds=%.3f%s%s\n", s->index,
                rc == CLIENT_OK ? "ok" : "FAIL", s->sent, s->received,
                s->seconds, rc == CLIENT_OK ? "" : ": ",
                rc == CLIENT_OK ? "" : s->error);
        return;
    }

    if (rc == CLIENT_OK || conf.sessions == 1) {
        return;
    }

    pthread_mutex_lock(&shared.lock);

    if (shared.errors_shown < CLIENT_ERRORS_SHOWN) {
        fprintf(stderr, "session %" PRIu64 ": %s\n", s->index, s->error);

    } else if (shared.errors_shown == CLIENT_ERRORS_SHOWN) {
        fputs("(more failed sessions not shown)\n", stderr);
    }

    shared.errors_shown++;

    pthread_mutex_unlock(&shared.lock);
}


static int
client_report(client_worker_t *workers, unsigned n, double seconds)
{
    unsigned     i;
    uint64_t     ok, failed, refused, bytes, dgrams;
    const char  *error, *mode;

    ok = failed = refused = bytes = dgrams = 0;
    error = "";
    mode = conf.mode_name;

    for (i = 0; i < n; i++) {
        ok += workers[i].ok;
        failed += workers[i].failed;
        refused += workers[i].refused;
        bytes += workers[i].bytes;
        dgrams += workers[i].dgrams;

        if (error[0] == '\0') {
            error = workers[i].first_error;
        }
    }

    if (seconds <= 0) {
        seconds = 1e-9;
    }

    if (conf.mode == MODE_RAW) {
        /* stdout carries the payload: the status goes to stderr */
        if (ok == 1) {
            if (!conf.quiet) {
                fprintf(stderr, "raw ok bytes=%" PRIu64 " end=%s"
                        " seconds=%.3f%s\n", bytes,
                        workers[0].s->done ? "yes" : "no", seconds,
                        workers[0].s->codecs ? ""
                        : " (not decoded: no keys for this header)");
            }
            return CLIENT_OK;
        }

        fprintf(stderr, "raw %s: %s\n",
                refused ? "refused" : "FAIL", error);

        return refused ? CLIENT_REFUSED : CLIENT_FAIL;
    }

    if (failed + refused != 0) {
        if (conf.sessions == 1) {
            printf("%s FAIL received=%" PRIu64 "/%" PRIu64 ": %s\n", mode,
                   workers[0].s->received, workers[0].s->to_receive, error);

        } else {
            printf("%s FAIL sessions=%" PRIu64 " failed=%" PRIu64 ": %s\n",
                   mode, conf.sessions, failed + refused, error);
        }

        return CLIENT_FAIL;
    }

    if (conf.quiet) {
        return CLIENT_OK;
    }

    if (conf.mode == MODE_PROBE) {
        printf("probe ok connections=%" PRIu64 " bytes=%" PRIu64
               " seconds=%.3f per_second=%.1f cpu=%.3f\n", ok, bytes,
               seconds, ok / seconds, client_cpu_seconds());

    } else if (conf.mode == MODE_HANDSHAKES) {
        printf("handshakes ok sessions=%" PRIu64 " seconds=%.3f"
               " per_second=%.1f\n", ok, seconds, ok / seconds);

    } else if (conf.mode == MODE_UDP_ECHO) {
        if (conf.sessions == 1) {
            printf("%s ok datagrams=%" PRIu64 " bytes=%" PRIu64
                   " seconds=%.3f\n", mode, dgrams, bytes, seconds);
        } else {
            printf("%s ok sessions=%" PRIu64 " datagrams=%" PRIu64
                   " bytes=%" PRIu64 " seconds=%.3f\n", mode, ok, dgrams,
                   bytes, seconds);
        }

    } else if (conf.sessions == 1 && conf.mode == MODE_ECHO) {
        printf("echo ok bytes=%" PRIu64 " sha256=%s seconds=%.3f"
               " MiB/s=%.1f\n", bytes, workers[0].sha_hex, seconds,
               bytes / seconds / 1048576);

    } else if (conf.sessions == 1) {
        printf("%s ok bytes=%" PRIu64 " seconds=%.3f MiB/s=%.1f\n", mode,
               bytes, seconds, bytes / seconds / 1048576);

    } else {
        printf("%s ok sessions=%" PRIu64 " bytes=%" PRIu64 " seconds=%.3f"
               " MiB/s=%.1f\n", mode, ok, bytes, seconds,
               bytes / seconds / 1048576);
    }

    return CLIENT_OK;
}
