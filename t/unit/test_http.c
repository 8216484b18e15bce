/*
 * HTTP upgrade requests (vmess_http.c): the path match, a good WebSocket
 * and HTTPUpgrade request and what is found in it, AGAIN on each of its
 * prefixes, and one request for each bad field.
 */

#include <stdio.h>
#include <string.h>

#include "vmess.h"
#include "unit.h"


#define TEST_ROOM       16384

#define TEST_KEY        "dGhlIHNhbXBsZSBub25jZQ=="


static void test_conf(vmess_http_upgrade_conf_t *conf, int raw,
    const char *host);
static int test_parse(const vmess_http_upgrade_conf_t *conf,
    const char *req, vmess_http_upgrade_t *r);
static int test_is(vmess_bytes_t b, const char *s);
static void test_path(void);
static void test_good(void);
static void test_prefixes(void);
static void test_bad(void);
static void test_host(void);
static void test_too_large(void);
static void test_strerror(void);


static const char  test_ws_request[] =
    "GET /ws?ed=2048 HTTP/1.1\r\n"
    "Host: example.com\r\n"
    "upgrade: WebSocket\r\n"
    "Connection: keep-alive, Upgrade\r\n"
    "Sec-WebSocket-Key: \t" TEST_KEY "  \r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Protocol: AAECAw\r\n"
    "X-Real-IP: 192.0.2.7\r\n"
    "User-Agent: test\r\n"
    "\r\n"
    "VMESS";


static void
test_conf(vmess_http_upgrade_conf_t *conf, int raw, const char *host)
{
    conf->path.data = (const uint8_t *) "/ws";
    conf->path.len = 3;
    conf->host.data = (const uint8_t *) host;
    conf->host.len = strlen(host);
    conf->real_ip_header.data = (const uint8_t *) "x-real-ip";
    conf->real_ip_header.len = 9;
    conf->raw = raw;
}


static int
test_parse(const vmess_http_upgrade_conf_t *conf, const char *req,
    vmess_http_upgrade_t *r)
{
    return vmess_http_upgrade_parse(conf, (const uint8_t *) req, strlen(req),
                                    TEST_ROOM, r);
}


static int
test_is(vmess_bytes_t b, const char *s)
{
    return b.len == strlen(s) && memcmp(b.data, s, b.len) == 0;
}


static void
test_path(void)
{
    size_t          i;
    vmess_bytes_t   path;

    struct {
        const char             *bytes;
        int                     rc;
    } cases[] = {
        { "",                   VMESS_AGAIN },
        { "G",                  VMESS_AGAIN },
        { "GET ",               VMESS_AGAIN },
        { "GET /w",             VMESS_AGAIN },
        { "GET /ws",            VMESS_AGAIN },
        { "GET /ws ",           VMESS_OK },
        { "GET /ws?ed=1",       VMESS_OK },
        { "GET /wsx ",          VMESS_ERR_HTTP_OTHER_PATH },
        { "GET /ws/ ",          VMESS_ERR_HTTP_OTHER_PATH },
        { "GET /x",             VMESS_ERR_HTTP_OTHER_PATH },
        { "get /ws ",           VMESS_ERR_HTTP_OTHER_PATH },
        { "POST /ws ",          VMESS_ERR_HTTP_OTHER_PATH },
        { "\x16\x03\x01",       VMESS_ERR_HTTP_OTHER_PATH },
    };

    path.data = (const uint8_t *) "/ws";
    path.len = 3;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ok(vmess_http_path_match((const uint8_t *) cases[i].bytes,
                                 strlen(cases[i].bytes), &path)
           == cases[i].rc, "path match of \"%s\"", cases[i].bytes);
    }
}


static void
test_good(void)
{
    int                        rc;
    vmess_http_upgrade_t       r;
    vmess_http_upgrade_conf_t  conf;

    test_conf(&conf, 0, "");

    rc = test_parse(&conf, test_ws_request, &r);
    ok(rc == VMESS_OK, "websocket request: %s", vmess_strerror(rc));
    ok(r.header_len == strlen(test_ws_request) - 5,
       "header_len ends at the empty line");
    ok(test_is(r.key, TEST_KEY), "key, trimmed");
    ok(test_is(r.protocol, "AAECAw"), "protocol (early data)");
    ok(test_is(r.real_ip, "192.0.2.7"), "real ip from X-Real-IP");
    ok(r.key.data > (const uint8_t *) test_ws_request
       && r.key.data < (const uint8_t *) test_ws_request + r.header_len,
       "fields point into the request");
    ok(r.seen == (VMESS_HTTP_SEEN_UPGRADE | VMESS_HTTP_SEEN_CONNECTION
                  | VMESS_HTTP_SEEN_KEY | VMESS_HTTP_SEEN_VERSION
                  | VMESS_HTTP_SEEN_HOST), "every needed header seen");

    /* HTTPUpgrade: no key or version needed, a protocol not looked at */

    test_conf(&conf, 1, "");

    rc = test_parse(&conf,
                    "GET /ws HTTP/1.1\r\n"
                    "Upgrade: websocket\r\n"
                    "Connection: upgrade\r\n"
                    "Sec-WebSocket-Version: 8\r\n"
                    "Sec-WebSocket-Protocol: x\r\n"
                    "\r\n", &r);
    ok(rc == VMESS_OK && r.protocol.len == 0 && r.key.len == 0,
       "httpupgrade request without key: %s", vmess_strerror(rc));

    /* Xray's HTTPUpgrade key is kept, not checked */

    rc = test_parse(&conf,
                    "GET /ws HTTP/1.1\r\n"
                    "Upgrade: websocket\r\n"
                    "Connection: Upgrade\r\n"
                    "Sec-WebSocket-Key: short\r\n"
                    "\r\n", &r);
    ok(rc == VMESS_OK && test_is(r.key, "short"),
       "httpupgrade: any key kept");

    /* a real ip header named as one HTTPUpgrade ignores */

    conf.real_ip_header.data = (const uint8_t *) "Sec-WebSocket-Version";
    conf.real_ip_header.len = 21;

    rc = test_parse(&conf,
                    "GET /ws HTTP/1.1\r\n"
                    "Upgrade: websocket\r\n"
                    "Connection: Upgrade\r\n"
                    "Sec-WebSocket-Version: 10.0.0.1\r\n"
                    "\r\n", &r);
    ok(rc == VMESS_OK && test_is(r.real_ip, "10.0.0.1"),
       "httpupgrade: a header it ignores can be the real ip one");
}


static void
test_prefixes(void)
{
    int                        all;
    size_t                     n, len;
    vmess_http_upgrade_t       r;
    vmess_http_upgrade_conf_t  conf;

    test_conf(&conf, 0, "");

    len = strlen(test_ws_request) - 5;
    all = 1;

    for (n = 0; n < len; n++) {
        if (vmess_http_upgrade_parse(&conf, (const uint8_t *) test_ws_request,
                                     n, TEST_ROOM, &r)
            != VMESS_AGAIN)
        {
            unit_diag("not AGAIN with %zu bytes", n);
            all = 0;
        }
    }

    ok(all, "AGAIN on each of the %zu shorter prefixes", len);
    ok(vmess_http_upgrade_parse(&conf, (const uint8_t *) test_ws_request,
                                len, TEST_ROOM, &r)
       == VMESS_OK && r.header_len == len, "OK at the empty line");
}


static void
test_bad(void)
{
    int                        rc;
    size_t                     i;
    vmess_http_upgrade_t       r;
    vmess_http_upgrade_conf_t  conf;

#define TEST_WS_HEADERS                                                     \
    "Upgrade: websocket\r\nConnection: Upgrade\r\n"                        \
    "Sec-WebSocket-Key: " TEST_KEY "\r\nSec-WebSocket-Version: 13\r\n"

    struct {
        const char             *name;
        int                     raw;
        const char             *req;
        int                     rc;
    } cases[] = {
        { "HTTP/1.0", 0, "GET /ws HTTP/1.0\r\n" TEST_WS_HEADERS "\r\n",
          VMESS_ERR_HTTP_REQUEST_LINE },
        { "space in the target", 0,
          "GET /ws?a b HTTP/1.1\r\n" TEST_WS_HEADERS "\r\n",
          VMESS_ERR_HTTP_REQUEST_LINE },
        { "two spaces", 0, "GET /ws  HTTP/1.1\r\n" TEST_WS_HEADERS "\r\n",
          VMESS_ERR_HTTP_REQUEST_LINE },
        { "bare LF request line", 0,
          "GET /ws HTTP/1.1\n" TEST_WS_HEADERS "\r\n",
          VMESS_ERR_HTTP_REQUEST_LINE },
        { "no colon", 0,
          "GET /ws HTTP/1.1\r\nUpgrade websocket\r\n\r\n",
          VMESS_ERR_HTTP_HEADER_LINE },
        { "empty name", 0, "GET /ws HTTP/1.1\r\n: x\r\n\r\n",
          VMESS_ERR_HTTP_HEADER_LINE },
        { "bare LF header", 0,
          "GET /ws HTTP/1.1\r\nHost: a\nUpgrade: websocket\r\n\r\n",
          VMESS_ERR_HTTP_HEADER_LINE },
        { "other upgrade", 0,
          "GET /ws HTTP/1.1\r\nUpgrade: h2c\r\n\r\n",
          VMESS_ERR_HTTP_NO_UPGRADE },
        { "no upgrade", 0,
          "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\n\r\n",
          VMESS_ERR_HTTP_NO_UPGRADE },
        { "no upgrade, httpupgrade", 1,
          "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\n\r\n",
          VMESS_ERR_HTTP_NO_UPGRADE },
        { "no Connection: upgrade", 0,
          "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n"
          "Connection: upgrades\r\nSec-WebSocket-Key: " TEST_KEY "\r\n"
          "Sec-WebSocket-Version: 13\r\n\r\n",
          VMESS_ERR_HTTP_INCOMPLETE_WS },
        { "no key", 0,
          "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Version: 13\r\n\r\n",
          VMESS_ERR_HTTP_INCOMPLETE_WS },
        { "no version", 0,
          "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Key: " TEST_KEY "\r\n\r\n",
          VMESS_ERR_HTTP_INCOMPLETE_WS },
        { "no Connection, httpupgrade", 1,
          "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
          VMESS_ERR_HTTP_INCOMPLETE },
        { "key of 23", 0,
          "GET /ws HTTP/1.1\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=\r\n"
          "\r\n", VMESS_ERR_HTTP_WS_KEY },
        { "key of 18 bytes", 0,
          "GET /ws HTTP/1.1\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQab\r\n"
          "\r\n", VMESS_ERR_HTTP_WS_KEY },
        { "key with a bad character", 0,
          "GET /ws HTTP/1.1\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZ-==\r\n"
          "\r\n", VMESS_ERR_HTTP_WS_KEY },
        { "key of 15 bytes", 0,
          "GET /ws HTTP/1.1\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25j====\r\n"
          "\r\n", VMESS_ERR_HTTP_WS_KEY },
        { "version 8", 0,
          "GET /ws HTTP/1.1\r\nSec-WebSocket-Version: 8\r\n\r\n",
          VMESS_ERR_HTTP_WS_VERSION },
        { "version 130", 0,
          "GET /ws HTTP/1.1\r\nSec-WebSocket-Version: 130\r\n\r\n",
          VMESS_ERR_HTTP_WS_VERSION },
    };

    test_conf(&conf, 0, "");

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        conf.raw = cases[i].raw;
        rc = test_parse(&conf, cases[i].req, &r);
        ok(rc == cases[i].rc, "%s: %s", cases[i].name, vmess_strerror(rc));
    }

    /* the first bad header decides */

    rc = test_parse(&conf,
                    "GET /ws HTTP/1.1\r\nSec-WebSocket-Version: 8\r\n"
                    "Upgrade: h2c\r\n\r\n", &r);
    ok(rc == VMESS_ERR_HTTP_WS_VERSION, "first bad header reported");

    /* the key's 24th character is not looked at (nginx's decoder) */

    conf.raw = 0;
    rc = test_parse(&conf,
                    "GET /ws HTTP/1.1\r\n" TEST_WS_HEADERS
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=x\r\n\r\n",
                    &r);
    ok(rc == VMESS_OK && test_is(r.key, "dGhlIHNhbXBsZSBub25jZQ=x"),
       "key with any 24th character: %s", vmess_strerror(rc));

#undef TEST_WS_HEADERS
}


static void
test_host(void)
{
    int                        rc;
    size_t                     i;
    char                       req[512];
    vmess_http_upgrade_t       r;
    vmess_http_upgrade_conf_t  conf;

    struct {
        const char             *host;
        int                     rc;
    } cases[] = {
        { "example.com",        VMESS_OK },
        { "EXAMPLE.com:8443",   VMESS_OK },
        { "example.org",        VMESS_ERR_HTTP_HOST },
        { "example.com.",       VMESS_ERR_HTTP_HOST },
        { "",                   VMESS_ERR_HTTP_HOST },
        { "[example.com]",      VMESS_ERR_HTTP_HOST },
    };

    test_conf(&conf, 1, "example.com");

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(req, sizeof(req),
                 "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\n\r\n", cases[i].host);
        rc = test_parse(&conf, req, &r);
        ok(rc == cases[i].rc, "host \"%s\": %s", cases[i].host,
           vmess_strerror(rc));
    }

    rc = test_parse(&conf,
                    "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\n\r\n", &r);
    ok(rc == VMESS_ERR_HTTP_INCOMPLETE, "host set, no Host header: %s",
       vmess_strerror(rc));

    conf.host.data = (const uint8_t *) "[::1]";
    conf.host.len = 5;

    rc = test_parse(&conf,
                    "GET /ws HTTP/1.1\r\nHost: [::1]\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\n\r\n", &r);
    ok(rc == VMESS_OK, "IPv6 host, its colons kept: %s", vmess_strerror(rc));
}


static void
test_too_large(void)
{
    int                        rc;
    size_t                     len;
    static uint8_t             req[VMESS_HTTP_HEADER_MAX + 16];
    vmess_http_upgrade_t       r;
    vmess_http_upgrade_conf_t  conf;

    test_conf(&conf, 0, "");

    memset(req, 'a', sizeof(req));
    memcpy(req, "GET /ws HTTP/1.1\r\nX: ", 21);

    len = VMESS_HTTP_HEADER_MAX - 1;
    rc = vmess_http_upgrade_parse(&conf, req, len, TEST_ROOM, &r);
    ok(rc == VMESS_AGAIN, "8191 bytes without the end: AGAIN");

    rc = vmess_http_upgrade_parse(&conf, req, len + 1, TEST_ROOM, &r);
    ok(rc == VMESS_ERR_HTTP_TOO_LARGE, "8192 bytes without the end: %s",
       vmess_strerror(rc));

    rc = vmess_http_upgrade_parse(&conf, req, 100, 100, &r);
    ok(rc == VMESS_ERR_HTTP_TOO_LARGE, "a full buffer of 100 bytes: %s",
       vmess_strerror(rc));

    /* an end past the limit is not looked for */

    memcpy(req + VMESS_HTTP_HEADER_MAX - 2, "\r\n\r\n", 4);
    rc = vmess_http_upgrade_parse(&conf, req, VMESS_HTTP_HEADER_MAX + 2,
                                  TEST_ROOM, &r);
    ok(rc == VMESS_ERR_HTTP_TOO_LARGE, "end at 8194: too large");
}


/* the glue logs these strings, the tests of the transports look for them */

static void
test_strerror(void)
{
    ok(strcmp(vmess_strerror(VMESS_ERR_HTTP_TOO_LARGE),
              "request header too large") == 0
       && strcmp(vmess_strerror(VMESS_ERR_HTTP_REQUEST_LINE),
                 "bad request line") == 0
       && strcmp(vmess_strerror(VMESS_ERR_HTTP_HEADER_LINE),
                 "bad header line") == 0
       && strcmp(vmess_strerror(VMESS_ERR_HTTP_NO_UPGRADE),
                 "no websocket upgrade") == 0
       && strcmp(vmess_strerror(VMESS_ERR_HTTP_INCOMPLETE),
                 "incomplete handshake") == 0
       && strcmp(vmess_strerror(VMESS_ERR_HTTP_INCOMPLETE_WS),
                 "incomplete websocket handshake") == 0
       && strcmp(vmess_strerror(VMESS_ERR_HTTP_WS_KEY),
                 "bad Sec-WebSocket-Key") == 0
       && strcmp(vmess_strerror(VMESS_ERR_HTTP_WS_VERSION),
                 "unsupported Sec-WebSocket-Version") == 0
       && strcmp(vmess_strerror(VMESS_ERR_HTTP_HOST), "other host") == 0,
       "HTTP error strings");

    ok(strcmp(vmess_strerror(VMESS_ERR_WS_RESERVED), "reserved bits set")
       == 0
       && strcmp(vmess_strerror(VMESS_ERR_WS_UNMASKED),
                 "unmasked client frame") == 0
       && strcmp(vmess_strerror(VMESS_ERR_WS_OPCODE), "unknown opcode") == 0
       && strcmp(vmess_strerror(VMESS_ERR_WS_CONTROL), "bad control frame")
          == 0
       && strcmp(vmess_strerror(VMESS_ERR_WS_CONTINUATION),
                 "unexpected continuation frame") == 0
       && strcmp(vmess_strerror(VMESS_ERR_WS_UNFINISHED),
                 "unfinished fragmented message") == 0
       && strcmp(vmess_strerror(VMESS_ERR_WS_TEXT), "text frame") == 0,
       "WebSocket error strings");
}


int
main(void)
{
    test_path();
    test_good();
    test_prefixes();
    test_bad();
    test_host();
    test_too_large();
    test_strerror();

    return unit_done();
}
