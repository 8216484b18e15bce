/*
 * vmess-client: one VMess session: what it sends and expects, its request
 * header, the body codecs, the connection and the loop that moves bytes
 * both ways, sealing the payload and opening the answer.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <openssl/crypto.h>

#include "client.h"


static int client_session_plan(client_worker_t *w);
static int client_session_header(client_worker_t *w);
static int client_session_codecs(client_worker_t *w);
static int client_legacy_id(client_worker_t *w, uint8_t id[16]);
static int client_session_connect(client_worker_t *w);
static int client_session_loop(client_worker_t *w);
static int client_produce(client_worker_t *w);
static int client_seal_end(client_worker_t *w);
static int client_input(client_worker_t *w);
static int client_input_plain(client_worker_t *w, uint8_t *p, size_t left);
static int client_output(client_worker_t *w, const uint8_t *data,
    size_t len);
static int client_closed(client_worker_t *w, int err);


int
client_session(client_worker_t *w, uint64_t index)
{
    int                rc;
    double             start;
    client_session_t  *s = w->s;

    start = client_now();

    rc = client_session_start(w, index);

    if (rc == CLIENT_OK) {
        rc = client_session_loop(w);
    }

    s->seconds = client_now() - start;

    client_session_close(w);

    return rc;
}


/* a fresh session: planned, its header made and its connect begun */
int
client_session_start(client_worker_t *w, uint64_t index)
{
    int                rc;
    client_session_t  *s = w->s;

    memset(s, 0, sizeof(client_session_t));
    s->fd = -1;
    s->index = index;

    rc = client_session_plan(w);

    if (rc == CLIENT_OK) {
        rc = client_session_header(w);
    }

    if (rc == CLIENT_OK) {
        rc = client_session_connect(w);
    }

    if (rc == CLIENT_OK && conf.httpupgrade != NULL) {
        rc = client_httpupgrade(w);

        /* what came right behind the 101 */
        if (rc == CLIENT_OK && s->in_len > 0) {
            rc = client_input(w);
        }
    }

    return rc;
}


/* what this session sends and expects back */
static int
client_session_plan(client_worker_t *w)
{
    uint32_t           r;
    client_session_t  *s = w->s;

    client_random(&r, sizeof(r));
    s->start = r % PATTERN_SIZE;

    switch (conf.mode) {

    case MODE_ECHO:
    case MODE_HANDSHAKES:
        s->to_send = conf.bytes;
        s->to_receive = conf.bytes;
        s->hash = (conf.sessions == 1 && conf.mode == MODE_ECHO);
        break;

    case MODE_HOLD:
        s->to_send = conf.bytes;
        s->to_receive = conf.bytes;
        s->keep_open = 1;
        break;

    case MODE_UPLOAD:
        client_put_be64(s->prefix, conf.bytes);
        s->prefix_len = 8;
        s->to_send = conf.bytes;
        s->to_receive = 8;
        break;

    case MODE_DOWNLOAD:
        client_put_be64(s->prefix, conf.bytes);
        s->prefix_len = 8;
        s->to_receive = conf.bytes;
        s->start = 0;
        break;

    case MODE_UDP_ECHO:
        s->dgrams = (conf.bytes + conf.chunk - 1) / conf.chunk;
        s->to_send = conf.bytes;
        s->to_receive = conf.bytes;
        s->dgram_seen = calloc(s->dgrams / 8 + 1, 1);
        if (s->dgram_seen == NULL) {
            return client_fail(w, "out of memory");
        }
        break;

    default: /* MODE_RAW */
        if (conf.bytes_set) {
            s->to_send = conf.bytes;

        } else if (!isatty(STDIN_FILENO)) {
            s->stdin_source = 1;
        }
        break;
    }

    if (s->hash && !EVP_DigestInit_ex(w->sha, EVP_sha256(), NULL)) {
        return client_fail(w, "sha256 init failed");
    }

    if (conf.mode != MODE_RAW && s->to_receive == 0) {
        return client_complete(w);
    }

    return CLIENT_OK;
}


/* the request header into the output buffer, then the first payload */
static int
client_session_header(client_worker_t *w)
{
    int                rc;
    size_t             len;
    client_session_t  *s = w->s;
    struct pollfd      pfd;

    if (conf.plain) {
        return client_produce(w);
    }

    client_random(w->pad, sizeof(w->pad));

    if (conf.send_header != NULL) {
        rc = client_raw_header(w);
        if (rc != CLIENT_OK) {
            return rc;
        }

    } else {
        rc = client_seal_request(w, &len);
        if (rc != CLIENT_OK) {
            return rc;
        }

        s->out_len = len;

        if (conf.replay_file != NULL && s->index == 0
            && client_save_header_file(conf.replay_file, w->out, len,
                                       &s->req) != 0)
        {
            return client_fail(w, "--replay-file %s: %s", conf.replay_file,
                               strerror(errno));
        }
    }

    if (conf.send_header == NULL || header_file.have_keys) {
        rc = client_session_codecs(w);
        if (rc != CLIENT_OK) {
            return rc;
        }
    }

    /* header and first data leave in one write, as v2ray sends them */
    if (s->stdin_source) {
        pfd.fd = STDIN_FILENO;
        pfd.events = POLLIN;

        if (poll(&pfd, 1, CLIENT_FIRST_DATA_MS) == 1) {
            rc = client_read_stdin(w);
            if (rc != CLIENT_OK) {
                return rc;
            }
        }
    }

    return client_produce(w);
}


static int
client_session_codecs(client_worker_t *w)
{
    int                rc;
    size_t             limit;
    client_session_t  *s = w->s;

    rc = vmess_body_init(&s->writer, &s->keys, VMESS_DIR_REQUEST, 0);

    if (rc == VMESS_OK) {
        rc = vmess_body_init(&s->reader, &s->keys, VMESS_DIR_RESPONSE, 0);
    }

    if (rc != VMESS_OK) {
        /* safe on a failed or a never-run init (zeroed) */
        vmess_body_free(&s->writer);
        vmess_body_free(&s->reader);

        /* raw refusal tests seal headers the codec cannot serve */
        if (conf.mode == MODE_RAW && rc != VMESS_ERR_CRYPTO) {
            if (conf.verbose) {
                fprintf(stderr, "raw: body not sealed: %s\n",
                        vmess_strerror(rc));
            }
            return CLIENT_OK;
        }

        return client_fail(w, "body codec: %s", vmess_strerror(rc));
    }

    s->codecs = 1;
    vmess_body_set_staging(&s->reader, w->staging, VMESS_STAGING_SIZE);

    s->overhead = vmess_body_overhead(&s->writer);
    limit = VMESS_CHUNK_MAX - s->overhead;

    if (conf.chunk > limit) {
        return client_fail(w, "--chunk %zu is over %zu for this security"
                           " and options", conf.chunk, limit);
    }

    return CLIENT_OK;
}


/* a fresh AEAD or legacy header of the user into w->out, its keys */
int
client_seal_request(client_worker_t *w, size_t *len)
{
    int                rc;
    int64_t            now;
    uint8_t            rnd[16 + 16 + 1 + 1 + 15], rand4[4], nonce8[8];
    uint8_t            auth_id[16];
    client_session_t  *s = w->s;
    vmess_request_t   *req = &s->req;

    client_random(rnd, sizeof(rnd));

    memset(req, 0, sizeof(vmess_request_t));
    req->version = 1;
    memcpy(req->body_key, rnd, 16);
    memcpy(req->body_iv, rnd + 16, 16);
    req->response_v = rnd[32];
    req->padding_len = rnd[33] % 16;
    memcpy(req->padding, rnd + 34, 15);
    req->options = conf.options;
    req->security = conf.security;
    req->command = conf.command;

    if (conf.command != VMESS_CMD_MUX) {
        req->port = conf.port;
        req->addr_type = conf.addr_type;
        req->addr_len = conf.addr_len;
        memcpy(req->addr, conf.addr, conf.addr_len);
    }

    now = (int64_t) time(NULL) + conf.time_offset;

    if (conf.legacy) {
        rc = client_legacy_id(w, auth_id);
        if (rc != CLIENT_OK) {
            return rc;
        }

        rc = vmess_legacy_header_seal(&w->user, auth_id, now, req, w->out,
                                      CLIENT_OUT_SIZE, len);

    } else {
        client_random(rand4, sizeof(rand4));
        client_random(nonce8, sizeof(nonce8));

        rc = vmess_aead_header_seal(&w->user, now, rand4, nonce8, req,
                                    w->out, CLIENT_OUT_SIZE, len);
    }

    if (rc != VMESS_OK) {
        return client_fail(w, "seal header: %s", vmess_strerror(rc));
    }

    rc = vmess_session_init(&s->keys, req, conf.legacy);
    if (rc != VMESS_OK) {
        return client_fail(w, "session keys: %s", vmess_strerror(rc));
    }

    return CLIENT_OK;
}


/* the id the legacy auth HMAC is keyed with: the primary one or, like
 * v2ray, a random one of the alter ids */
static int
client_legacy_id(client_worker_t *w, uint8_t id[16])
{
    uint8_t    next[16];
    uint16_t   pick, i;

    memcpy(id, conf.id, 16);

    if (conf.alter_ids != 0) {
        client_random(&pick, sizeof(pick));
        pick %= conf.alter_ids;

        for (i = 0; i <= pick; i++) {
            if (vmess_alter_id_next(id, next) != VMESS_OK) {
                return client_fail(w, "alter id failed");
            }
            memcpy(id, next, 16);
        }
    }

    return CLIENT_OK;
}


static int
client_session_connect(client_worker_t *w)
{
    int                fd, one, err, size;
    socklen_t          len;
    struct pollfd      pfd;
    client_session_t  *s = w->s;

    fd = socket(conf.server.ss_family, SOCK_STREAM, 0);
    if (fd == -1) {
        return client_fail(w, "socket: %s", strerror(errno));
    }

    s->fd = fd;

    one = 1;
    (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    if (conf.small_buffers) {
        /* a far peer's buffers are not this machine's memory: keep ours
         * small, as the kernel's TCP memory is shared with the server */
        size = CLIENT_SMALL_SOCKBUF;
        (void) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
        (void) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    }

    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1) {
        return client_fail(w, "fcntl: %s", strerror(errno));
    }

    if (connect(fd, (struct sockaddr *) &conf.server, conf.server_len) == 0) {
        return CLIENT_OK;
    }

    if (errno != EINPROGRESS) {
        return client_fail(w, "connect: %s", strerror(errno));
    }

    if (conf.mode == MODE_HOLD) {
        /* its poll loop waits: send fails with EAGAIN until connected */
        return CLIENT_OK;
    }

    pfd.fd = fd;
    pfd.events = POLLOUT;

    if (poll(&pfd, 1, conf.timeout_ms) != 1) {
        return client_fail(w, "connect: timed out");
    }

    len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1) {
        err = errno;
    }

    if (err != 0) {
        return client_fail(w, "connect: %s", strerror(err));
    }

    return CLIENT_OK;
}


/* poll only when neither direction moved */
static int
client_session_loop(client_worker_t *w)
{
    int                rc, progress, stdin_open;
    nfds_t             nfds;
    struct pollfd      pfd[2];
    struct timespec    nap;
    client_session_t  *s = w->s;

    for ( ;; ) {
        rc = client_session_io(w, &progress);
        if (rc != CLIENT_AGAIN) {
            return rc;
        }

        if (conf.stall_ms && s->out_len > 0 && s->out_pos == s->out_len) {
            /* the request is out: leave everything unread */
            nap.tv_sec = conf.stall_ms / 1000;
            nap.tv_nsec = 0;
            nanosleep(&nap, NULL);
            return CLIENT_OK;
        }

        stdin_open = s->stdin_source && !s->input_eof
                     && CLIENT_OUT_SIZE - s->out_len
                        >= conf.chunk + s->overhead;

        if (progress && !stdin_open) {
            continue;
        }

        pfd[0].fd = s->fd;
        pfd[0].events = POLLIN;
        pfd[0].revents = 0;

        if (s->out_pos < s->out_len) {
            pfd[0].events |= POLLOUT;
        }

        nfds = 1;

        if (stdin_open) {
            pfd[1].fd = STDIN_FILENO;
            pfd[1].events = POLLIN;
            pfd[1].revents = 0;
            nfds = 2;
        }

        rc = poll(pfd, nfds, progress ? 0 : conf.timeout_ms);

        if (rc == -1 && errno != EINTR) {
            return client_fail(w, "poll: %s", strerror(errno));
        }

        if (rc == 0 && !progress) {
            return client_timeout(w);
        }

        if (nfds == 2 && pfd[1].revents != 0) {
            rc = client_read_stdin(w);
            if (rc != CLIENT_OK) {
                return rc;
            }
        }
    }
}


/*
 * One pass without waiting: send and receive at once, so a large echo
 * cannot deadlock on full socket buffers.  CLIENT_AGAIN while the session
 * (or a hold round) goes on; *progress tells whether a byte moved.
 */
int
client_session_io(client_worker_t *w, int *progress)
{
    int                rc;
    ssize_t            n;
    client_session_t  *s = w->s;

    *progress = 0;

    rc = client_produce(w);
    if (rc != CLIENT_OK) {
        return rc;
    }

    if (s->out_pos < s->out_len) {
        n = send(s->fd, w->out + s->out_pos, s->out_len - s->out_pos,
                 MSG_NOSIGNAL);

        if (n > 0) {
            s->out_pos += n;
            *progress = 1;

        } else if (errno != EAGAIN && errno != EWOULDBLOCK
                   && errno != EINTR)
        {
            return client_closed(w, errno);
        }
    }

    n = recv(s->fd, w->in + s->in_len, CLIENT_IN_SIZE - s->in_len, 0);

    if (n > 0) {
        s->in_len += n;
        *progress = 1;

        rc = client_input(w);
        if (rc != CLIENT_OK) {
            return rc;
        }

    } else if (n == 0) {
        return client_closed(w, 0);

    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        return client_closed(w, errno);
    }

    if (s->done
        || (s->complete && (s->end_sent || s->keep_open)
            && s->out_pos == s->out_len))
    {
        return CLIENT_OK;
    }

    return CLIENT_AGAIN;
}


void
client_session_close(client_worker_t *w)
{
    client_session_t  *s = w->s;

    if (s->fd != -1) {
        close(s->fd);
    }

    if (s->codecs) {
        vmess_body_free(&s->writer);
        vmess_body_free(&s->reader);
    }

    free(s->dgram_seen);
    OPENSSL_cleanse(&s->req, sizeof(vmess_request_t));
    OPENSSL_cleanse(&s->keys, sizeof(vmess_session_t));
}


/* seal as much payload as the output buffer takes */
static int
client_produce(client_worker_t *w)
{
    int                rc;
    size_t             len, room;
    uint64_t           j;
    client_session_t  *s = w->s;

    client_buffer_compact(w->out, CLIENT_OUT_SIZE, &s->out_pos, &s->out_len);

    room = conf.chunk + s->overhead;

    while (!s->end_sent && CLIENT_OUT_SIZE - s->out_len >= room) {

        if (s->prefix_len != 0) {
            rc = client_seal(w, s->prefix, s->prefix_len);
            s->prefix_len = 0;

        } else if (conf.mode == MODE_UDP_ECHO) {
            if (s->dgrams_received == s->dgrams) {
                return client_seal_end(w);
            }

            j = s->dgrams_sent;

            if (j == s->dgrams
                || j - s->dgrams_received >= CLIENT_UDP_WINDOW)
            {
                return CLIENT_OK;
            }

            rc = client_seal_datagram(w, j);
            s->dgrams_sent++;

        } else if (s->sent < s->to_send) {
            len = conf.chunk;
            if (s->to_send - s->sent < len) {
                len = (size_t) (s->to_send - s->sent);
            }

            rc = client_seal(w, pattern + (s->start + s->sent) % PATTERN_SIZE,
                             len);
            s->sent += len;

        } else if (s->stdin_source && !s->input_eof) {
            return CLIENT_OK;

        } else if (s->keep_open) {
            /* hold: the session goes on after this round */
            return CLIENT_OK;

        } else {
            return client_seal_end(w);
        }

        if (rc != CLIENT_OK) {
            return rc;
        }
    }

    return CLIENT_OK;
}


int
client_seal(client_worker_t *w, const uint8_t *data, size_t len)
{
    int                rc;
    size_t             written;
    client_session_t  *s = w->s;

    if (!s->codecs) {
        memcpy(w->out + s->out_len, data, len);
        s->out_len += len;
        return CLIENT_OK;
    }

    rc = vmess_body_seal(&s->writer, data, len, w->pad, w->out + s->out_len,
                         CLIENT_OUT_SIZE - s->out_len, &written);
    if (rc != VMESS_OK) {
        return client_fail(w, "seal chunk: %s", vmess_strerror(rc));
    }

    s->out_len += written;

    return CLIENT_OK;
}


static int
client_seal_end(client_worker_t *w)
{
    int                rc;
    size_t             written;
    client_session_t  *s = w->s;

    s->end_sent = 1;

    if (!s->codecs) {
        return CLIENT_OK;
    }

    rc = vmess_body_seal_end(&s->writer, w->pad, w->out + s->out_len,
                             CLIENT_OUT_SIZE - s->out_len, &written);
    if (rc != VMESS_OK) {
        return client_fail(w, "seal end marker: %s", vmess_strerror(rc));
    }

    s->out_len += written;

    return CLIENT_OK;
}


/* opens what came: the response header, then chunks */
static int
client_input(client_worker_t *w)
{
    int                     rc, found;
    size_t                  left, consumed, produced;
    uint8_t                *p;
    client_session_t       *s = w->s;
    vmess_switch_account_t  cmd;

    p = w->in;
    left = s->in_len;

    if (conf.plain) {
        return client_input_plain(w, p, left);
    }

    if (!s->codecs) {
        /* no keys: nothing to decode, only count */
        s->received += left;
        s->in_len = 0;
        s->response_header = 1;
        return CLIENT_OK;
    }

    while (left > 0 && !s->done) {

        if (!s->response_header) {
            consumed = 0;
            found = 0;

            rc = vmess_response_header_open(&s->reader, s->req.response_v,
                                            p, left, &consumed, &cmd, &found);
            if (rc == VMESS_AGAIN) {
                break;
            }

            if (rc != VMESS_OK) {
                return client_fail(w, "response header: %s",
                                   vmess_strerror(rc));
            }

            s->response_header = 1;
            p += consumed;
            left -= consumed;

            if (found && conf.verbose) {
                fprintf(stderr, "session %" PRIu64 ": switch-account"
                        " command: port %u, %u alter ids, %u minutes\n",
                        s->index, cmd.port, cmd.alter_ids,
                        cmd.valid_minutes);
            }

            continue;
        }

        consumed = 0;
        produced = 0;

        rc = vmess_body_open(&s->reader, p, left, &consumed, w->plain,
                             CLIENT_PLAIN_SIZE, &produced);

        p += consumed;
        left -= consumed;

        if (rc < 0 || rc == VMESS_NEED_STAGING) {
            /* staging was given at init: the core never asks again */
            return client_fail(w, "response body: %s", vmess_strerror(rc));
        }

        if (produced != 0) {
            rc = client_output(w, w->plain, produced);
            if (rc != CLIENT_OK) {
                return rc;
            }
        }

        if (s->reader.eof) {
            if (conf.mode == MODE_RAW) {
                s->done = 1;
                break;
            }

            if (!s->complete) {
                return client_fail(w, "end marker after %" PRIu64 " of %"
                                   PRIu64 " bytes", s->received,
                                   s->to_receive);
            }

            break;
        }

        if (rc == VMESS_AGAIN || (consumed == 0 && produced == 0)) {
            break;
        }
    }

    /* only a partial response header is ever left over */
    memmove(w->in, p, left);
    s->in_len = left;

    if (s->in_len == CLIENT_IN_SIZE) {
        return client_fail(w, "receive buffer full");
    }

    return CLIENT_OK;
}


/* --plain: what came is the payload, in pieces the pattern's tail covers */
static int
client_input_plain(client_worker_t *w, uint8_t *p, size_t left)
{
    int                rc;
    size_t             consumed;
    client_session_t  *s = w->s;

    s->response_header = 1;
    s->in_len = 0;

    while (left > 0) {
        consumed = left < PATTERN_TAIL ? left : PATTERN_TAIL;

        rc = client_output(w, p, consumed);
        if (rc != CLIENT_OK) {
            return rc;
        }

        p += consumed;
        left -= consumed;
    }

    return CLIENT_OK;
}


/* the plaintext of one chunk */
static int
client_output(client_worker_t *w, const uint8_t *data, size_t len)
{
    if (conf.mode == MODE_UDP_ECHO) {
        return client_output_datagram(w, data, len);
    }

    if (conf.mode == MODE_RAW) {
        return client_raw_output(w, data, len);
    }

    if (conf.mode == MODE_UPLOAD) {
        return client_check_count(w, data, len);
    }

    return client_check_pattern(w, data, len);
}


int
client_complete(client_worker_t *w)
{
    unsigned           i, md_len;
    uint8_t            md[EVP_MAX_MD_SIZE];
    client_session_t  *s = w->s;

    s->complete = 1;

    if (!s->hash) {
        return CLIENT_OK;
    }

    if (!EVP_DigestFinal_ex(w->sha, md, &md_len)) {
        return client_fail(w, "sha256 failed");
    }

    for (i = 0; i < md_len && i < 32; i++) {
        snprintf(w->sha_hex + 2 * i, 3, "%02x", md[i]);
    }

    return CLIENT_OK;
}


/* the server closed (err 0) or reset the connection */
static int
client_closed(client_worker_t *w, int err)
{
    client_session_t  *s = w->s;

    if (s->complete) {
        return CLIENT_OK;
    }

    if (!s->response_header) {
        client_fail(w, "no response header: %s",
                    err ? strerror(err) : "connection closed");
        return CLIENT_REFUSED;
    }

    if (conf.mode == MODE_RAW) {
        if (err != 0 && conf.verbose) {
            fprintf(stderr, "raw: %s\n", strerror(err));
        }

        return CLIENT_OK;
    }

    return client_fail(w, "connection %s after %" PRIu64 " of %" PRIu64
                       " bytes", err ? strerror(err) : "closed",
                       s->received, s->to_receive);
}


int
client_timeout(client_worker_t *w)
{
    client_session_t  *s = w->s;

    if (!s->response_header) {
        client_fail(w, "no response header within %d s",
                    conf.timeout_ms / 1000);
        return CLIENT_REFUSED;
    }

    if (conf.mode == MODE_RAW) {
        return CLIENT_OK;
    }

    return client_fail(w, "timeout: nothing for %d s, %" PRIu64 " of %"
                       PRIu64 " bytes came", conf.timeout_ms / 1000,
                       s->received, s->to_receive);
}
