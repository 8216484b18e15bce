/*
 * vmess-client: udp-echo's datagrams: each carries its BE32 index, then
 * the pattern from an offset of its own; each that comes back is checked
 * against the one sent and counted once.
 */

#include <string.h>

#include "client.h"


static size_t client_datagram_len(client_session_t *s, uint64_t j);
static uint64_t client_datagram_offset(client_session_t *s, uint64_t j);


/* datagram j of the session, sealed as one chunk */
int
client_seal_datagram(client_worker_t *w, uint64_t j)
{
    size_t             len;
    client_session_t  *s = w->s;

    len = client_datagram_len(s, j);
    w->scratch[0] = (uint8_t) (j >> 24);
    w->scratch[1] = (uint8_t) (j >> 16);
    w->scratch[2] = (uint8_t) (j >> 8);
    w->scratch[3] = (uint8_t) j;
    memcpy(w->scratch + 4, pattern + client_datagram_offset(s, j), len - 4);

    return client_seal(w, w->scratch, len);
}


/* BE32 index, then the pattern from an offset of its own */
int
client_output_datagram(client_worker_t *w, const uint8_t *data, size_t len)
{
    uint64_t           j;
    client_session_t  *s = w->s;

    if (len < 4) {
        return client_fail(w, "a %zu-byte datagram came back", len);
    }

    j = ((uint64_t) data[0] << 24) | ((uint64_t) data[1] << 16)
        | ((uint64_t) data[2] << 8) | data[3];

    if (j >= s->dgrams_sent || len != client_datagram_len(s, j)
        || memcmp(data + 4, pattern + client_datagram_offset(s, j), len - 4)
           != 0)
    {
        return client_fail(w, "datagram of %zu bytes (index %" PRIu64 ")"
                           " is not one that was sent", len, j);
    }

    if (s->dgram_seen[j / 8] & (1 << (j % 8))) {
        return client_fail(w, "datagram %" PRIu64 " came back twice", j);
    }

    s->dgram_seen[j / 8] |= (uint8_t) (1 << (j % 8));
    s->dgrams_received++;
    s->received += len;

    if (s->dgrams_received == s->dgrams) {
        s->complete = 1;
    }

    return CLIENT_OK;
}


static size_t
client_datagram_len(client_session_t *s, uint64_t j)
{
    uint64_t  left;

    left = s->to_send - j * conf.chunk;

    return left < conf.chunk ? (size_t) left : conf.chunk;
}


static uint64_t
client_datagram_offset(client_session_t *s, uint64_t j)
{
    return (s->start + j * conf.chunk) % PATTERN_SIZE;
}
