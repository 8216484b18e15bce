/*
 * libFuzzer harness: the HTTP upgrade request parser
 * (vmess_http_upgrade_parse, vmess_http_path_match).
 *
 * Input: a conf byte (bit 0: HTTPUpgrade, bit 1: a Host to match, bit 2:
 * a real ip header, bits 3-4: the path, bit 5: a small buffer), a cut
 * byte pair, then the request bytes.
 * Checks: the result is OK, AGAIN or an HTTP error, and the path match
 * agrees with it; an accepted request ends with the empty line within
 * the limits, its fields lie inside it and it has the headers its
 * transport needs; the header alone gives the same answer as with bytes
 * behind it; a prefix (cut at the input's choice) of a request accepted
 * or awaited is awaited.
 */

#include <stdlib.h>
#include <string.h>

#include "vmess.h"
#include "common.h"


#define FUZZ_ROOM_SMALL     512
#define FUZZ_ROOM_BIG       16384


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_parse(const vmess_http_upgrade_conf_t *conf,
    const uint8_t *p, size_t len, size_t room, vmess_http_upgrade_t *r);
static void fuzz_inside(vmess_bytes_t b, const uint8_t *p, size_t len,
    const char *what);
static int fuzz_same(const vmess_http_upgrade_t *a,
    const vmess_http_upgrade_t *b);


static const char  *fuzz_paths[] = { "/ws", "/", "/a/b.c", "/up%20grade" };


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                        rc, rc2;
    size_t                     len, cut, room;
    uint8_t                    flags;
    unsigned                   needs;
    fuzz_in_t                  in;
    const uint8_t             *p;
    vmess_http_upgrade_t       r, r2;
    vmess_http_upgrade_conf_t  conf;

    in.p = data;
    in.len = size;

    flags = fuzz_u8(&in);
    cut = fuzz_u16(&in);

    memset(&conf, 0, sizeof(vmess_http_upgrade_conf_t));
    conf.raw = flags & 1;
    conf.path.data = (const uint8_t *) fuzz_paths[(flags >> 3) & 3];
    conf.path.len = strlen(fuzz_paths[(flags >> 3) & 3]);

    if (flags & 2) {
        conf.host.data = (const uint8_t *) "Example.com";
        conf.host.len = 11;
    }

    if (flags & 4) {
        conf.real_ip_header.data = (const uint8_t *) "X-Forwarded-For";
        conf.real_ip_header.len = 15;
    }

    len = fuzz_take(&in, in.len, &p);
    room = (flags & 0x20) ? FUZZ_ROOM_SMALL : FUZZ_ROOM_BIG;

    if (room < len) {
        room = len;
    }

    rc = fuzz_parse(&conf, p, len, room, &r);

    fuzz_assert(rc == VMESS_OK || rc == VMESS_AGAIN
                || (rc <= VMESS_ERR_HTTP_OTHER_PATH
                    && rc >= VMESS_ERR_HTTP_HOST), "an HTTP result");

    if (rc == VMESS_ERR_HTTP_OTHER_PATH || rc == VMESS_AGAIN) {
        rc2 = vmess_http_path_match(p, len, &conf.path);
        fuzz_assert(rc2 == rc || (rc == VMESS_AGAIN && rc2 == VMESS_OK),
                    "the path decides first");
    }

    if (rc == VMESS_AGAIN) {
        fuzz_assert(len < room && len < VMESS_HTTP_HEADER_MAX,
                    "AGAIN only while the header may still end");
    }

    if (rc == VMESS_ERR_HTTP_TOO_LARGE) {
        fuzz_assert(len >= VMESS_HTTP_HEADER_MAX || len >= room,
                    "too large only at a limit");
    }

    if (rc == VMESS_OK) {
        fuzz_assert(r.header_len >= 4 && r.header_len <= len
                    && r.header_len <= VMESS_HTTP_HEADER_MAX
                    && r.header_len <= room
                    && memcmp(p + r.header_len - 4, "\r\n\r\n", 4) == 0,
                    "the header ends at an empty line");
        fuzz_assert(memcmp(p, "GET ", 4) == 0
                    && memcmp(p + 4, conf.path.data, conf.path.len) == 0,
                    "a request for the path");

        fuzz_inside(r.key, p, r.header_len, "key inside the header");
        fuzz_inside(r.protocol, p, r.header_len,
                    "protocol inside the header");
        fuzz_inside(r.real_ip, p, r.header_len, "real ip inside the header");

        needs = VMESS_HTTP_SEEN_UPGRADE | VMESS_HTTP_SEEN_CONNECTION
                | VMESS_HTTP_SEEN_HOST;

        if (!conf.raw) {
            needs |= VMESS_HTTP_SEEN_KEY | VMESS_HTTP_SEEN_VERSION;
            fuzz_assert(r.key.len == 24, "a websocket key of 24");

        } else {
            fuzz_assert(r.protocol.len == 0, "httpupgrade: no protocol");
        }

        fuzz_assert((r.seen & needs) == needs, "the needed headers seen");

        if (conf.real_ip_header.len == 0) {
            fuzz_assert(r.real_ip.len == 0, "no real ip without a header");
        }

        /* what follows the header does not count */

        rc2 = fuzz_parse(&conf, p, r.header_len, room, &r2);
        fuzz_assert(rc2 == VMESS_OK && fuzz_same(&r, &r2),
                    "the header alone gives the same");
    }

    /* a prefix: AGAIN while the empty line is not in it */

    if (len > 0 && (rc == VMESS_OK || rc == VMESS_AGAIN)) {
        cut %= len;
        rc2 = fuzz_parse(&conf, p, cut, room, &r2);

        fuzz_assert(rc2 == VMESS_AGAIN
                    || (rc2 == VMESS_OK && rc == VMESS_OK
                        && r2.header_len == r.header_len
                        && cut >= r.header_len),
                    "a prefix without the empty line is AGAIN");
    }

    return 0;
}


/* the request in an exact heap copy, so that ASan sees any over-read */

static int
fuzz_parse(const vmess_http_upgrade_conf_t *conf, const uint8_t *p,
    size_t len, size_t room, vmess_http_upgrade_t *r)
{
    int               rc;
    uint8_t          *copy;
    const uint8_t    *base;
    vmess_bytes_t    *f[3];
    size_t            i;

    copy = fuzz_dup(p, len);
    rc = vmess_http_upgrade_parse(conf, copy, len, room, r);

    /* the fields (an empty value too), moved from the copy onto p */

    base = copy;
    f[0] = &r->key;
    f[1] = &r->protocol;
    f[2] = &r->real_ip;

    for (i = 0; i < 3; i++) {
        if (f[i]->data != NULL) {
            fuzz_assert(f[i]->data >= base && f[i]->data + f[i]->len
                        <= base + len, "a field inside the input");
            f[i]->data = p + (f[i]->data - base);
        }
    }

    free(copy);

    return rc;
}


static void
fuzz_inside(vmess_bytes_t b, const uint8_t *p, size_t len, const char *what)
{
    if (b.len) {
        fuzz_assert(b.data >= p && b.data + b.len <= p + len, what);
    }
}


static int
fuzz_same(const vmess_http_upgrade_t *a, const vmess_http_upgrade_t *b)
{
    return a->header_len == b->header_len && a->seen == b->seen
           && a->key.data == b->key.data && a->key.len == b->key.len
           && a->protocol.data == b->protocol.data
           && a->protocol.len == b->protocol.len
           && a->real_ip.data == b->real_ip.data
           && a->real_ip.len == b->real_ip.len;
}
