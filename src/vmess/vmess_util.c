/*
 * Error strings, checksums, UUID text, and what the header shares with the
 * body (the session check) and with Mux.Cool (the address parser).
 */

#include <string.h>

#include "vmess.h"


static int vmess_hex_value(char c);


const char *
vmess_strerror(int rc)
{
    switch (rc) {
    case VMESS_OK:
        return "ok";
    case VMESS_AGAIN:
        return "incomplete";
    case VMESS_NEED_STAGING:
        return "staging buffer needed";
    case VMESS_ERR_UNKNOWN_USER:
        return "unknown user";
    case VMESS_ERR_CLOCK_SKEW:
        return "clock skew";
    case VMESS_ERR_REPLAY:
        return "replayed header";
    case VMESS_ERR_BAD_CHECKSUM:
        return "bad checksum";
    case VMESS_ERR_BAD_LENGTH:
        return "bad length";
    case VMESS_ERR_BAD_AUTH:
        return "authentication failed";
    case VMESS_ERR_UNSUPPORTED_SECURITY:
        return "unsupported security";
    case VMESS_ERR_UNSUPPORTED_COMMAND:
        return "unsupported command";
    case VMESS_ERR_UNSUPPORTED_ADDRESS:
        return "unsupported address";
    case VMESS_ERR_BAD_OPTION:
        return "bad option (global padding without chunk masking)";
    case VMESS_ERR_TRUNCATED:
        return "truncated";
    case VMESS_ERR_NO_SPACE:
        return "output buffer too small";
    case VMESS_ERR_NONCE_WRAP:
        return "chunk nonce counter wrapped";
    case VMESS_ERR_BAD_FRAME:
        return "bad mux frame";
    case VMESS_ERR_BAD_RESPONSE:
        return "bad response header";
    case VMESS_ERR_BAD_UUID:
        return "bad uuid";
    case VMESS_ERR_CRYPTO:
        return "crypto library error";
    case VMESS_ERR_INVALID:
        return "invalid argument";
    case VMESS_ERR_WS_RESERVED:
        return "reserved bits set";
    case VMESS_ERR_WS_UNMASKED:
        return "unmasked client frame";
    case VMESS_ERR_WS_OPCODE:
        return "unknown opcode";
    case VMESS_ERR_WS_CONTROL:
        return "bad control frame";
    case VMESS_ERR_WS_CONTINUATION:
        return "unexpected continuation frame";
    case VMESS_ERR_WS_UNFINISHED:
        return "unfinished fragmented message";
    case VMESS_ERR_WS_TEXT:
        return "text frame";
    case VMESS_ERR_WS_TOO_LARGE:
        return "frame too large";
    case VMESS_ERR_HTTP_OTHER_PATH:
        return "not a request for the path";
    case VMESS_ERR_HTTP_TOO_LARGE:
        return "request header too large";
    case VMESS_ERR_HTTP_REQUEST_LINE:
        return "bad request line";
    case VMESS_ERR_HTTP_HEADER_LINE:
        return "bad header line";
    case VMESS_ERR_HTTP_NO_UPGRADE:
        return "no websocket upgrade";
    case VMESS_ERR_HTTP_INCOMPLETE:
        return "incomplete handshake";
    case VMESS_ERR_HTTP_INCOMPLETE_WS:
        return "incomplete websocket handshake";
    case VMESS_ERR_HTTP_WS_KEY:
        return "bad Sec-WebSocket-Key";
    case VMESS_ERR_HTTP_WS_VERSION:
        return "unsupported Sec-WebSocket-Version";
    case VMESS_ERR_HTTP_HOST:
        return "other host";
    }

    return "unknown error";
}


uint32_t
vmess_fnv1a(const uint8_t *p, size_t len)
{
    size_t    i;
    uint32_t  h;

    h = 0x811c9dc5;

    for (i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x01000193;
    }

    return h;
}


uint32_t
vmess_crc32(const uint8_t *p, size_t len)
{
    /* IEEE, reflected; bitwise is enough for one 12-byte AuthID block */
    int       k;
    size_t    i;
    uint32_t  crc;

    crc = 0xffffffff;

    for (i = 0; i < len; i++) {
        crc ^= p[i];
        for (k = 0; k < 8; k++) {
            crc = (crc >> 1) ^ (0xedb88320 & (0 - (crc & 1)));
        }
    }

    return ~crc;
}


static int
vmess_hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


int
vmess_uuid_parse(const char *s, size_t len, uint8_t id[16])
{
    int     hi, lo;
    size_t  i, n;

    /* 8-4-4-4-12 with dashes, or 32 hex digits */
    if (len == 36) {
        if (s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-') {
            return VMESS_ERR_BAD_UUID;
        }

    } else if (len != 32) {
        return VMESS_ERR_BAD_UUID;
    }

    n = 0;

    for (i = 0; i < len; /* void */) {
        if (s[i] == '-' && len == 36) {
            i++;
            continue;
        }

        if (i + 1 >= len) {
            return VMESS_ERR_BAD_UUID;
        }

        hi = vmess_hex_value(s[i]);
        lo = vmess_hex_value(s[i + 1]);

        if (hi < 0 || lo < 0 || n == 16) {
            return VMESS_ERR_BAD_UUID;
        }

        id[n++] = (uint8_t) (hi << 4 | lo);
        i += 2;
    }

    return n == 16 ? VMESS_OK : VMESS_ERR_BAD_UUID;
}


void
vmess_uuid_format(const uint8_t id[16], char out[37])
{
    static const char  hex[] = "0123456789abcdef";
    size_t             i, n;

    n = 0;

    for (i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out[n++] = '-';
        }

        out[n++] = hex[id[i] >> 4];
        out[n++] = hex[id[i] & 0x0f];
    }

    out[n] = '\0';
}


int
vmess_domain_valid(const uint8_t *p, size_t len)
{
    size_t   i;
    uint8_t  c;

    if (len == 0 || len > 255) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        c = p[i];

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')
        {
            continue;
        }

        return 0;
    }

    return 1;
}


int
vmess_addr_parse(const uint8_t *p, size_t len, size_t *pos, uint8_t *type,
    uint8_t addr[255], uint8_t *addr_len)
{
    size_t  i, n;

    i = *pos;

    if (len - i < 1) {
        return VMESS_AGAIN;
    }

    *type = p[i++];

    switch (*type) {

    case VMESS_ADDR_IPV4:
        n = 4;
        break;

    case VMESS_ADDR_IPV6:
        n = 16;
        break;

    case VMESS_ADDR_DOMAIN:
        if (len - i < 1) {
            return VMESS_AGAIN;
        }

        n = p[i++];
        break;

    default:
        *pos = i;
        return VMESS_ERR_UNSUPPORTED_ADDRESS;
    }

    if (len - i < n) {
        return VMESS_AGAIN;
    }

    memcpy(addr, p + i, n);
    *addr_len = (uint8_t) n;
    *pos = i + n;

    return VMESS_OK;
}


int
vmess_session_check(uint8_t security, uint8_t command, uint8_t options)
{
    switch (security) {

    case VMESS_SEC_AES_128_CFB:
    case VMESS_SEC_AES_128_GCM:
    case VMESS_SEC_CHACHA20_POLY1305:
    case VMESS_SEC_NONE:
        break;

    default:
        return VMESS_ERR_UNSUPPORTED_SECURITY;
    }

    switch (command) {

    case VMESS_CMD_TCP:
    case VMESS_CMD_UDP:
    case VMESS_CMD_MUX:
        break;

    default:
        return VMESS_ERR_UNSUPPORTED_COMMAND;
    }

    /* global padding draws from the masking stream: it crashes v2ray */
    if ((options & VMESS_OPT_GLOBAL_PADDING)
        && !(options & VMESS_OPT_CHUNK_MASKING))
    {
        return VMESS_ERR_BAD_OPTION;
    }

    return VMESS_OK;
}
