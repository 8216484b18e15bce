/*
 * vmess-client: what the TCP modes expect back: upload the sink's count,
 * echo, handshakes, download and hold the pattern, byte for byte.
 */

#include <string.h>

#include "client.h"


/* upload: the sink's 8 bytes, the count it discarded */
int
client_check_count(client_worker_t *w, const uint8_t *data, size_t len)
{
    client_session_t  *s = w->s;

    if (s->ack_len + len > sizeof(s->ack)) {
        return client_fail(w, "sink sent more than its count");
    }

    memcpy(s->ack + s->ack_len, data, len);
    s->ack_len += len;
    s->received = s->ack_len;

    if (s->ack_len == sizeof(s->ack)) {
        if (client_get_be64(s->ack) != s->to_send) {
            return client_fail(w, "sink counted %" PRIu64 " bytes, sent"
                               " %" PRIu64, client_get_be64(s->ack),
                               s->to_send);
        }

        s->complete = 1;
    }

    return CLIENT_OK;
}


/* echo, handshakes, download, hold: the pattern, byte for byte */
int
client_check_pattern(client_worker_t *w, const uint8_t *data, size_t len)
{
    size_t             off;
    client_session_t  *s = w->s;

    if (len > s->to_receive - s->received) {
        return client_fail(w, "%" PRIu64 " bytes came back, expected %"
                           PRIu64, s->received + len, s->to_receive);
    }

    off = (size_t) ((s->start + s->received) % PATTERN_SIZE);

    if (!conf.unchecked && memcmp(data, pattern + off, len) != 0) {
        /* the first differing byte, for the message */
        off = 0;
        while (data[off]
               == pattern[(s->start + s->received + off) % PATTERN_SIZE])
        {
            off++;
        }

        return client_fail(w, "data mismatch at byte %" PRIu64,
                           s->received + off);
    }

    if (s->hash && !EVP_DigestUpdate(w->sha, data, len)) {
        return client_fail(w, "sha256 failed");
    }

    s->received += len;

    return (s->received == s->to_receive) ? client_complete(w) : CLIENT_OK;
}
