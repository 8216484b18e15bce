/*
 * vmess-client: raw mode: a header from --send-header, the payload from
 * stdin, the decoded answer to stdout.
 */

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "client.h"


/* the bytes of the file instead of a sealed header, its keys if it has */
int
client_raw_header(client_worker_t *w)
{
    int                rc;
    client_session_t  *s = w->s;

    if (header_file.len > CLIENT_OUT_SIZE / 2) {
        return client_fail(w, "--send-header file too large");
    }

    memcpy(w->out, header_file.data, header_file.len);
    s->out_len = header_file.len;
    s->req = header_file.req;

    if (header_file.have_keys) {
        rc = vmess_session_init(&s->keys, &s->req, header_file.legacy);
        if (rc != VMESS_OK) {
            return client_fail(w, "session keys: %s", vmess_strerror(rc));
        }
    }

    return CLIENT_OK;
}


/* raw: one read is one chunk (one datagram with --udp) */
int
client_read_stdin(client_worker_t *w)
{
    ssize_t            n;
    client_session_t  *s = w->s;

    n = read(STDIN_FILENO, w->scratch, conf.chunk);

    if (n > 0) {
        s->sent += n;
        return client_seal(w, w->scratch, n);
    }

    if (n == -1 && (errno == EINTR || errno == EAGAIN)) {
        return CLIENT_OK;
    }

    s->input_eof = 1;

    return CLIENT_OK;
}


/* the plaintext of one chunk, as it is */
int
client_raw_output(client_worker_t *w, const uint8_t *data, size_t len)
{
    ssize_t            n;
    client_session_t  *s = w->s;

    s->received += len;

    while (len > 0) {
        n = write(STDOUT_FILENO, data, len);
        if (n == -1 && errno != EINTR) {
            return client_fail(w, "stdout: %s", strerror(errno));
        }

        if (n > 0) {
            data += n;
            len -= n;
        }
    }

    return CLIENT_OK;
}
