/*
 * VMess protocol core: the one public header.
 *
 * Plain C99 + OpenSSL EVP.  No nginx headers, no sockets, no hidden
 * allocation: every buffer is the caller's, and the only allocations are
 * the OpenSSL contexts made by the *_init() functions and freed by the
 * matching *_free().  Clock and randomness are parameters.
 *
 * Return codes: VMESS_OK (0), VMESS_AGAIN (feed more input, or give more
 * output space), or a negative VMESS_ERR_* with a string from
 * vmess_strerror().
 */

#ifndef VMESS_H
#define VMESS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>


/* return codes */

#define VMESS_OK                        0
#define VMESS_AGAIN                     1   /* need more input */
#define VMESS_NEED_STAGING              2   /* body: set a staging buffer */

#define VMESS_ERR_UNKNOWN_USER        -1
#define VMESS_ERR_CLOCK_SKEW          -2
#define VMESS_ERR_REPLAY              -3   /* for callers; core never
                                                stores AuthIDs itself */
#define VMESS_ERR_BAD_CHECKSUM        -4
#define VMESS_ERR_BAD_LENGTH          -5
#define VMESS_ERR_BAD_AUTH            -6   /* AEAD tag or FNV mismatch */
#define VMESS_ERR_UNSUPPORTED_SECURITY -7
#define VMESS_ERR_UNSUPPORTED_COMMAND -8
#define VMESS_ERR_UNSUPPORTED_ADDRESS -9
#define VMESS_ERR_BAD_OPTION          -10  /* 0x08 without 0x04 */
#define VMESS_ERR_TRUNCATED           -11  /* input ended inside a unit */
#define VMESS_ERR_NO_SPACE            -12  /* output buffer too small */
#define VMESS_ERR_NONCE_WRAP          -13  /* strict mode: counter wrapped */
#define VMESS_ERR_BAD_FRAME           -14  /* Mux.Cool frame malformed */
#define VMESS_ERR_BAD_RESPONSE        -15  /* client: V mismatch etc. */
#define VMESS_ERR_BAD_UUID            -16
#define VMESS_ERR_CRYPTO              -17  /* OpenSSL call failed */
#define VMESS_ERR_INVALID             -18  /* caller passed bad arguments */

/* WebSocket frames (vmess_ws.c) */
#define VMESS_ERR_WS_RESERVED         -19
#define VMESS_ERR_WS_UNMASKED         -20
#define VMESS_ERR_WS_OPCODE           -21
#define VMESS_ERR_WS_CONTROL          -22  /* fragmented or over 125 */
#define VMESS_ERR_WS_CONTINUATION     -23  /* no message to continue */
#define VMESS_ERR_WS_UNFINISHED       -24  /* new message inside one */
#define VMESS_ERR_WS_TEXT             -25
#define VMESS_ERR_WS_TOO_LARGE        -26  /* over max_frame */

/* HTTP upgrade requests (vmess_http.c) */
#define VMESS_ERR_HTTP_OTHER_PATH     -27  /* not "GET <path>[ ?]" */
#define VMESS_ERR_HTTP_TOO_LARGE      -28
#define VMESS_ERR_HTTP_REQUEST_LINE   -29
#define VMESS_ERR_HTTP_HEADER_LINE    -30
#define VMESS_ERR_HTTP_NO_UPGRADE     -31
#define VMESS_ERR_HTTP_INCOMPLETE     -32  /* HTTPUpgrade: headers missing */
#define VMESS_ERR_HTTP_INCOMPLETE_WS  -33  /* WebSocket: headers missing */
#define VMESS_ERR_HTTP_WS_KEY         -34
#define VMESS_ERR_HTTP_WS_VERSION     -35
#define VMESS_ERR_HTTP_HOST           -36

const char *vmess_strerror(int rc);


/* wire constants (real values, VMESS-SPEC.md §5, §14) */

#define VMESS_SEC_AES_128_CFB           1
#define VMESS_SEC_AUTO                  2   /* config only */
#define VMESS_SEC_AES_128_GCM           3
#define VMESS_SEC_CHACHA20_POLY1305     4
#define VMESS_SEC_NONE                  5
#define VMESS_SEC_ZERO                  6   /* config name: sent as 5, opt 0 */

#define VMESS_OPT_CHUNK_STREAM          0x01
#define VMESS_OPT_CONNECTION_REUSE      0x02
#define VMESS_OPT_CHUNK_MASKING         0x04
#define VMESS_OPT_GLOBAL_PADDING        0x08
#define VMESS_OPT_AUTH_LENGTH           0x10

#define VMESS_CMD_TCP                   1
#define VMESS_CMD_UDP                   2
#define VMESS_CMD_MUX                   3

#define VMESS_ADDR_IPV4                 1
#define VMESS_ADDR_DOMAIN               2
#define VMESS_ADDR_IPV6                 3

#define VMESS_AUTHID_WINDOW             120     /* seconds, inclusive */
#define VMESS_AEAD_HEADER_FIXED         42      /* AuthID + EncLen + nonce */
#define VMESS_AEAD_HEADER_MIN_LEN       42      /* plaintext length bounds */
#define VMESS_AEAD_HEADER_MAX_LEN       512
#define VMESS_HEADER_MAX                (VMESS_AEAD_HEADER_FIXED           \
                                         + VMESS_AEAD_HEADER_MAX_LEN + 16)
#define VMESS_RESPONSE_HEADER_MAX       (18 + 4 + 255 + 16)

#define VMESS_CHUNK_MAX                 65535   /* value of a length field */
#define VMESS_STAGING_SIZE              (18 + VMESS_CHUNK_MAX)
#define VMESS_CHUNK_OVERHEAD_MAX        (18 + 16 + 63)
#define VMESS_CHUNK_HEAD_MAX            18      /* length field (+ FNV) */
#define VMESS_CHUNK_TAIL_MAX            (16 + 63)   /* tag, padding */
#define VMESS_UDP_PAYLOAD_MAX           2048    /* v2ray splits larger */


/* small helpers */

uint32_t vmess_fnv1a(const uint8_t *p, size_t len);
uint32_t vmess_crc32(const uint8_t *p, size_t len);

/* "b831381d-6324-4d53-ad4f-8cda48b30811" (dashes optional) -> 16 bytes */
int vmess_uuid_parse(const char *s, size_t len, uint8_t id[16]);
void vmess_uuid_format(const uint8_t id[16], char out[37]);  /* NUL-ended */

/* 1..255 bytes of [A-Za-z0-9._-] (v2ray's rule): the text of a destination
 * ends up in proxy_pass, where "unix:" or "[" would mean something else */
int vmess_domain_valid(const uint8_t *p, size_t len);

/* address type, then the address (a domain after its length byte) from
 * p[*pos] on; *pos moves past them.  VMESS_AGAIN when p ends first;
 * VMESS_ERR_UNSUPPORTED_ADDRESS for an unknown type, *pos past the type
 * byte.  The address is not checked (a domain may be empty). */
int vmess_addr_parse(const uint8_t *p, size_t len, size_t *pos, uint8_t *type,
    uint8_t addr[255], uint8_t *addr_len);

/* what a session can run with, checked in this order: security (1, 3, 4,
 * 5), command, option 0x08 only with 0x04.  VMESS_OK or
 * UNSUPPORTED_SECURITY, UNSUPPORTED_COMMAND, BAD_OPTION. */
int vmess_session_check(uint8_t security, uint8_t command, uint8_t options);


/* keys and KDF (vmess_kdf.c) */

typedef struct {
    const uint8_t              *data;
    size_t                      len;
} vmess_bytes_t;

/* cmdKey = MD5(id || "c48619fe-...") */
int vmess_cmd_key(const uint8_t id[16], uint8_t cmd_key[16]);

/* next alter ID in the chain after prev (VMESS-SPEC.md §1.3) */
int vmess_alter_id_next(const uint8_t prev[16], uint8_t next[16]);

/* KDF(key, path[0..n-1]) -> 32 bytes, n <= 4 */
int vmess_kdf(const uint8_t *key, size_t key_len, const vmess_bytes_t *path,
    size_t n, uint8_t out[32]);

/* KDF16(cmdKey, "AES Auth ID Encryption") */
int vmess_authid_key(const uint8_t cmd_key[16], uint8_t key[16]);

/* the user ID of a dynamic port for one refresh period:
 * HMAC-SHA256(secret, BE64(period) || id), its first 16 bytes with the
 * UUID version 4 and variant bits set */
int vmess_dynamic_id(const uint8_t *secret, size_t secret_len,
    uint64_t period, const uint8_t id[16], uint8_t out[16]);

/* AuthID = AES-ECB(authid_key, BE64(now) || rand4 || CRC32) */
int vmess_authid_seal(const uint8_t authid_key[16], int64_t now,
    const uint8_t rand4[4], uint8_t authid[16]);


/* SHAKE128 stream (vmess_shake.c): an incremental XOF, which OpenSSL 3.0
 * lacks; a Keccak-f[1600] sponge, checked against OpenSSL's one-shot. */

typedef struct {
    uint64_t                    state[25];
    size_t                      offset;     /* bytes squeezed of block */
} vmess_shake128_t;

void vmess_shake128_init(vmess_shake128_t *sh, const uint8_t *seed,
    size_t len);
void vmess_shake128_squeeze(vmess_shake128_t *sh, uint8_t *out, size_t len);
uint16_t vmess_shake128_next16(vmess_shake128_t *sh);   /* BE16 draw */


/* users (vmess_users.c) */

typedef struct {
    uint8_t                     id[16];         /* primary ID bytes */
    uint8_t                     cmd_key[16];
    uint8_t                     authid_key[16];
    uint16_t                    alter_ids;      /* legacy alterId count */
    void                       *data;           /* caller's (email, ...) */
    EVP_CIPHER_CTX             *authid_ctx;     /* ECB decrypt schedule */
} vmess_user_t;

/* fills id, cmd_key, authid_key and makes authid_ctx (free with
 * vmess_user_free) */
int vmess_user_init(vmess_user_t *u, const uint8_t id[16], uint16_t alter_ids,
    void *data);
void vmess_user_free(vmess_user_t *u);

/*
 * AuthID trial over users[0..n-1] (VMESS-SPEC.md §3.4).  On VMESS_OK sets
 * *found and *timestamp.  VMESS_ERR_CLOCK_SKEW when a user's CRC matched but
 * the time is out of the ±120 s window: *found and *skew (timestamp - now,
 * seconds) are set.  Otherwise VMESS_ERR_UNKNOWN_USER.  Replay checking is
 * the caller's: it owns the shared store.
 */
int vmess_users_find_authid(vmess_user_t *users, size_t n,
    const uint8_t authid[16], int64_t now, size_t *found, int64_t *timestamp,
    int64_t *skew);

/*
 * Legacy (MD5) auth index: every ID (primary + alters) of every user, for
 * every second of [now - 120, now + 120].  Memory is the caller's:
 * vmess_legacy_index_size() bytes, aligned to 8.  Rebuild or refresh with
 * vmess_legacy_index_update() (cheap when now moved little).
 */
typedef struct vmess_legacy_index_s  vmess_legacy_index_t;

size_t vmess_legacy_index_size(const vmess_user_t *users, size_t n);
vmess_legacy_index_t *vmess_legacy_index_init(void *mem, size_t size,
    vmess_user_t *users, size_t n);
int vmess_legacy_index_update(vmess_legacy_index_t *idx, int64_t now);
/* VMESS_OK with *found (user index) and *timestamp, or UNKNOWN_USER */
int vmess_legacy_index_find(const vmess_legacy_index_t *idx,
    const uint8_t auth[16], int64_t now, size_t *found, int64_t *timestamp);


/* request header (vmess_header.c) */

typedef struct {
    uint8_t                     version;
    uint8_t                     body_iv[16];
    uint8_t                     body_key[16];
    uint8_t                     response_v;
    uint8_t                     options;
    uint8_t                     padding_len;    /* 0..15 */
    uint8_t                     security;       /* wire nibble; 0 -> 1 */
    uint8_t                     reserved;
    uint8_t                     command;
    uint16_t                    port;
    uint8_t                     addr_type;      /* 0 for command 3 */
    uint8_t                     addr_len;
    uint8_t                     addr[255];      /* 4, 16, or domain bytes */
    uint8_t                     padding[15];    /* seal: filler to send */
} vmess_request_t;

/*
 * Server: open an AEAD header for a user already found by AuthID.  "in" is
 * everything received so far from the first byte (AuthID included),
 * contiguous.  VMESS_AGAIN while incomplete; VMESS_OK with *consumed = the
 * header's wire length.  Checks: L bounds, both GCM tags, FNV checksum,
 * security, command, address, option 0x08 without 0x04.
 */
int vmess_aead_header_open(const vmess_user_t *user, const uint8_t *in,
    size_t len, size_t *consumed, vmess_request_t *req);

/* the same for a legacy header; timestamp from the legacy index */
int vmess_legacy_header_open(const vmess_user_t *user, int64_t timestamp,
    const uint8_t *in, size_t len, size_t *consumed, vmess_request_t *req);

/*
 * The replay key of an opened legacy header, which has no AuthID: the
 * first 16 bytes of SHA-256(auth || body key || body IV), the triple
 * v2ray's session history keeps.  auth is the header's first 16 bytes.
 */
int vmess_legacy_replay_id(const uint8_t auth[16],
    const vmess_request_t *req, uint8_t out[16]);

/* Client: seal a header.  rand4 and nonce8 are the AuthID random and the
 * connection nonce; req->padding holds the padding bytes to send.  For a
 * legacy header auth_id is the ID whose HMAC authenticates it (the primary
 * ID or one of its alter IDs); the header is encrypted with user->cmd_key
 * either way. */
int vmess_aead_header_seal(const vmess_user_t *user, int64_t now,
    const uint8_t rand4[4], const uint8_t nonce8[8],
    const vmess_request_t *req, uint8_t *out, size_t cap, size_t *len);
int vmess_legacy_header_seal(const vmess_user_t *user,
    const uint8_t auth_id[16], int64_t timestamp, const vmess_request_t *req,
    uint8_t *out, size_t cap, size_t *len);

/* "1.2.3.4:80", "[2001:db8::1]:443", "example.com:80"; refuses domains
 * with characters outside [A-Za-z0-9._-] (VMESS_ERR_UNSUPPORTED_ADDRESS).
 * *len excludes the NUL that is written. */
int vmess_addr_format(uint8_t addr_type, const uint8_t *addr, size_t addr_len,
    uint16_t port, char *out, size_t cap, size_t *len);
/* the host part alone (no brackets, no port) */
int vmess_addr_format_host(uint8_t addr_type, const uint8_t *addr,
    size_t addr_len, char *out, size_t cap, size_t *len);


/* session keys after a header is opened */

typedef struct {
    uint8_t                     legacy_header;  /* 1: MD5 header mode */
    uint8_t                     security;       /* 1, 3, 4, 5 */
    uint8_t                     options;
    uint8_t                     command;
    uint8_t                     response_v;
    uint8_t                     req_key[16];
    uint8_t                     req_iv[16];
    uint8_t                     resp_key[16];
    uint8_t                     resp_iv[16];
} vmess_session_t;

int vmess_session_init(vmess_session_t *s, const vmess_request_t *req,
    int legacy_header);


/* dynamic-port ("switch account") response command, VMESS-SPEC.md §9 */

typedef struct {
    uint8_t                     host_len;
    uint8_t                     host[255];
    uint16_t                    port;
    uint8_t                     id[16];
    uint16_t                    alter_ids;
    uint8_t                     level;
    uint8_t                     valid_minutes;
} vmess_switch_account_t;


/* body codec, one direction (vmess_body.c) */

#define VMESS_DIR_REQUEST               0   /* client -> server */
#define VMESS_DIR_RESPONSE              1   /* server -> client */

#define VMESS_BODY_STRICT_NONCE         0x01

typedef struct {
    /* set by vmess_body_init */
    uint8_t                     security;
    uint8_t                     options;
    uint8_t                     command;
    uint8_t                     flags;
    uint8_t                     dir;
    uint8_t                     chunked;    /* 0: raw stream */
    uint8_t                     bare;       /* none over TCP/mux */
    uint8_t                     masking;    /* 0x04: lengths XOR SHAKE */
    uint8_t                     padding;    /* 0x08 applies */
    uint8_t                     auth_len;   /* 0x10 applies (sec 3, 4) */
    uint8_t                     overhead;   /* tag or FNV bytes */
    uint8_t                     len_size;   /* length field: 2 or 18 */
    uint8_t                     legacy_header;
    uint8_t                     cfb_role;   /* CFB keyed to: 0 not yet,
                                               1 encrypt, 2 decrypt */
    uint8_t                     key[16];    /* wiped once not needed */
    uint8_t                     iv[16];
    uint8_t                     len_iv[16]; /* 0x10: request IV */
    vmess_shake128_t            shake;
    EVP_CIPHER_CTX             *cipher;     /* data AEAD or CFB stream */
    EVP_CIPHER_CTX             *len_cipher; /* 0x10 length AEAD */
    EVP_CIPHER_CTX             *hdr_cipher; /* response header; freed
                                               once it is done */
    uint16_t                    count;      /* data nonce counter */
    uint16_t                    len_count;  /* 0x10 length counter */
    uint32_t                    wraps;      /* times count wrapped */

    /* decoder state */
    int                         state;
    uint8_t                     lenbuf[18]; /* length field (decrypted) */
    size_t                      lenbuf_n;
    size_t                      chunk_len;  /* L */
    size_t                      pad_len;
    size_t                      staged;     /* bytes in staging */
    uint8_t                    *staging;    /* caller's, >= STAGING_SIZE */
    size_t                      staging_cap;
    unsigned                    header_done:1;
    unsigned                    eof:1;      /* end marker seen or sent */
} vmess_body_t;

/*
 * dir says whose key: REQUEST uses req_key/req_iv, RESPONSE resp_*.
 * Both the writer and the reader of a direction init the same way; one
 * vmess_body_t is then used either to seal or to open, never both.
 * Errors: UNSUPPORTED_SECURITY, UNSUPPORTED_COMMAND, BAD_OPTION (0x08
 * without 0x04), CRYPTO.  vmess_body_free is safe after a failed init.
 */
int vmess_body_init(vmess_body_t *b, const vmess_session_t *s, int dir,
    unsigned flags);
void vmess_body_free(vmess_body_t *b);

/*
 * Response header, written/read through the RESPONSE direction codec
 * before its first body byte (in legacy header mode with security 1 it
 * shares the body's CFB stream).  Seal: cap >= VMESS_RESPONSE_HEADER_MAX
 * always suffices; cmd may be NULL (no command).
 */
int vmess_response_header_seal(vmess_body_t *b, uint8_t response_v,
    const vmess_switch_account_t *cmd, uint8_t *out, size_t cap, size_t *len);
/*
 * Client: "in" is everything received so far from the header's first
 * byte, contiguous.  VMESS_AGAIN (*consumed = 0) until the whole header
 * is there; VMESS_OK with *consumed = its wire length.  *cmd_found is set
 * when a valid switch-account command came (cmd may be NULL); a command
 * failing its FNV check or parse is ignored, as v2ray does.  Errors:
 * BAD_AUTH (a GCM tag), BAD_RESPONSE (V mismatch, bad lengths).
 */
int vmess_response_header_open(vmess_body_t *b, uint8_t response_v,
    const uint8_t *in, size_t len, size_t *consumed,
    vmess_switch_account_t *cmd, int *cmd_found);

/* worst-case bytes one sealed chunk adds to its plaintext (length field,
 * tag or FNV, padding); 0 in raw mode */
size_t vmess_body_overhead(const vmess_body_t *b);

/*
 * Writer: seal len bytes as one chunk (one datagram for UDP) into out.
 * 0 < len <= VMESS_CHUNK_MAX - vmess_body_overhead(b) is always accepted
 * (the exact bound keeps L = tag + len + 63 <= VMESS_CHUNK_MAX).  cap must
 * be >= len + vmess_body_overhead(b), else VMESS_ERR_NO_SPACE with nothing
 * changed.  pad is the filler source for option 0x08 (>= 63 bytes, may be
 * NULL: zeros).  In raw (unchunked) mode len bytes are just (CFB-)copied
 * and in == out is allowed; otherwise in and out must not overlap.
 * VMESS_ERR_NONCE_WRAP in strict mode when the counter would reuse 0.
 */
int vmess_body_seal(vmess_body_t *b, const uint8_t *in, size_t len,
    const uint8_t *pad, uint8_t *out, size_t cap, size_t *written);
/*
 * Writer, in place: seals the len bytes at data where they lie, for a
 * caller that sends head (*head_len bytes), data, tail (*tail_len bytes)
 * in that order.  head needs VMESS_CHUNK_HEAD_MAX bytes, tail
 * VMESS_CHUNK_TAIL_MAX; len as for vmess_body_seal.  Raw mode: data is
 * (CFB-)encrypted where it lies, no head or tail, any len.
 */
int vmess_body_seal_inplace(vmess_body_t *b, uint8_t *data, size_t len,
    const uint8_t *pad, uint8_t *head, size_t *head_len, uint8_t *tail,
    size_t *tail_len);
/* end marker (nothing in raw mode); sets b->eof */
int vmess_body_seal_end(vmess_body_t *b, const uint8_t *pad, uint8_t *out,
    size_t cap, size_t *written);

/*
 * Reader: consume from in, produce plaintext into out.  *consumed and
 * *produced are set on every return: always advance by them.  Produces at
 * most one chunk's plaintext per call (so UDP datagrams stay whole: one
 * call, one datagram); VMESS_OK with *produced = 0 and b->eof set is the
 * end marker (its tag or FNV is verified like any chunk's).  After an
 * error every further call fails (VMESS_ERR_INVALID).
 * A chunk wholly inside "in" is opened straight from it; a chunk split
 * over calls is gathered in the staging buffer: VMESS_NEED_STAGING asks
 * the caller to provide one (vmess_body_set_staging) and call again with
 * the input from *consumed on.  VMESS_AGAIN with *consumed = all of in
 * when more input is needed (partial chunk staged).  VMESS_ERR_NO_SPACE
 * when out is smaller than the chunk's plaintext: none of the chunk's
 * data is consumed (*consumed may count its length field, already
 * decoded); out of VMESS_CHUNK_MAX bytes never sees it.  Raw mode fills
 * out as far as input and cap go.  After the end marker b->eof is set
 * and further input is VMESS_ERR_BAD_LENGTH.  in and out must not
 * overlap.  Errors: BAD_AUTH, BAD_LENGTH, NONCE_WRAP (strict), CRYPTO.
 */
int vmess_body_open(vmess_body_t *b, const uint8_t *in, size_t len,
    size_t *consumed, uint8_t *out, size_t cap, size_t *produced);
/*
 * Reader, in place, for a caller that keeps its input until the plaintext
 * is sent on: as vmess_body_open, but a chunk wholly inside in is opened
 * where it lies and *plain points at its *produced bytes inside in; a
 * chunk gathered in the staging buffer is opened there (*plain points
 * into staging: be done with it before anything is staged again).  With
 * stage == 0 the data of a chunk not wholly inside in is left unconsumed
 * (VMESS_AGAIN, *consumed counts at most its length field;
 * vmess_body_pending tells how many bytes it needs): call again when they
 * are all contiguous in one in, or with stage != 0 to gather them in
 * staging; once a chunk is partly staged, the rest of it is staged
 * whatever stage says.  Security none over a stream (TCP, mux: no tag,
 * no padding, no datagrams) never waits or stages: the data of a chunk
 * not wholly inside in is passed on as it comes (VMESS_OK, *plain inside
 * in, all of in consumed, vmess_body_pending still > 0).  Raw mode
 * decrypts all of in where it lies.
 */
int vmess_body_open_inplace(vmess_body_t *b, uint8_t *in, size_t len,
    int stage, size_t *consumed, uint8_t **plain, size_t *produced);
/* data bytes the chunk being read still needs (0 between chunks) */
size_t vmess_body_pending(const vmess_body_t *b);
/* buf of cap >= VMESS_STAGING_SIZE bytes, kept until vmess_body_free */
void vmess_body_set_staging(vmess_body_t *b, uint8_t *buf, size_t cap);


/* Mux.Cool (vmess_mux.c) */

#define VMESS_MUX_NEW                   0x01
#define VMESS_MUX_KEEP                  0x02
#define VMESS_MUX_END                   0x03
#define VMESS_MUX_KEEPALIVE             0x04

#define VMESS_MUX_OPT_DATA              0x01
#define VMESS_MUX_OPT_ERROR             0x02

#define VMESS_MUX_NET_TCP               0x01
#define VMESS_MUX_NET_UDP               0x02

#define VMESS_MUX_META_MAX              512
#define VMESS_MUX_HEADER_MAX            (2 + VMESS_MUX_META_MAX + 2)

typedef struct {
    uint16_t                    session_id;
    uint8_t                     status;
    uint8_t                     option;
    uint8_t                     network;    /* New only */
    uint16_t                    port;
    uint8_t                     addr_type;
    uint8_t                     addr_len;
    uint8_t                     addr[255];
    uint16_t                    data_len;   /* valid with OPT_DATA */
} vmess_mux_frame_t;

typedef struct {
    int                         state;
    uint8_t                     buf[VMESS_MUX_HEADER_MAX];
    size_t                      have;
    size_t                      need;
    size_t                      data_left;  /* data bytes still to come */
} vmess_mux_reader_t;

#define VMESS_MUX_FRAME                 3   /* a frame header was parsed */
#define VMESS_MUX_DATA                  4   /* a piece of frame data */

void vmess_mux_reader_init(vmess_mux_reader_t *r);

/*
 * Incremental: returns VMESS_AGAIN (all consumed, need more),
 * VMESS_MUX_FRAME (*frame filled; its data, if any, follows in DATA
 * events), VMESS_MUX_DATA (*data and *data_len point into in; *data_last set on
 * the frame's last piece), or VMESS_ERR_BAD_FRAME (metaLen out of 4..512,
 * New with metaLen < 8, unknown status, bad address).  Frames with zero
 * data give no DATA event.
 */
int vmess_mux_read(vmess_mux_reader_t *r, const uint8_t *in, size_t len,
    size_t *consumed, vmess_mux_frame_t *frame, const uint8_t **data,
    size_t *data_len, int *data_last);

/* frame header (meta and, with OPT_DATA, the BE16 data length) */
int vmess_mux_write_header(const vmess_mux_frame_t *frame, uint8_t *out,
    size_t cap, size_t *len);


/*
 * WebSocket frames, RFC 6455 (vmess_ws.c): the server's side.  The
 * unframer takes client frames (masked) in pieces of any size and writes
 * their data payload out; control frames are read into its state and
 * answered through reply (a pong, or an echoed close).
 */

#define VMESS_WS_CONT                   0x0
#define VMESS_WS_TEXT                   0x1
#define VMESS_WS_BINARY                 0x2
#define VMESS_WS_CLOSE                  0x8
#define VMESS_WS_PING                   0x9
#define VMESS_WS_PONG                   0xa

#define VMESS_WS_CONTROL_MAX            125     /* control payload bytes */
#define VMESS_WS_HEADER_MAX             14      /* 64-bit length, mask */

typedef struct {
    uint64_t                    max_frame;  /* payload bytes of a frame */
    uint64_t                    left;       /* payload left in the frame;
                                               after WS_TOO_LARGE its
                                               length */
    uint8_t                     hdr[VMESS_WS_HEADER_MAX];
    size_t                      hlen;
    size_t                      need;       /* header bytes, once known */
    uint8_t                     mask[4];
    unsigned                    mpos;
    unsigned                    opcode;

    uint8_t                     ctl[VMESS_WS_CONTROL_MAX];
    size_t                      ctl_len;

    /* a queued pong or close: the caller sends it and clears
     * reply_opcode; a later ping replaces a pong not yet sent */
    uint8_t                     reply[VMESS_WS_CONTROL_MAX];
    size_t                      reply_len;
    unsigned                    reply_opcode;

    unsigned                    in_payload:1;
    unsigned                    fin:1;
    unsigned                    control:1;
    unsigned                    in_message:1;   /* a fragmented one */
    unsigned                    closed:1;   /* the client's close read */
} vmess_ws_t;

void vmess_ws_init(vmess_ws_t *ws, uint64_t max_frame);

/*
 * All of in[0..len) is consumed; the data payload goes to out, *out_len
 * bytes.  out may be in (in place): what is written never overtakes what
 * is read.  Bytes after a close frame are dropped.  VMESS_OK, or a
 * VMESS_ERR_WS_* error, after which ws is not to be used again.
 */
int vmess_ws_unframe(vmess_ws_t *ws, const uint8_t *in, size_t len,
    uint8_t *out, size_t *out_len);

/* bytes of a frame header for a payload of len (2, 4 or 10, + 4 masked) */
size_t vmess_ws_frame_header_len(uint64_t len, int masked);
/* writes the header at p (mask NULL: a server frame, unmasked) and
 * returns its size; the caller masks a client frame's payload itself */
size_t vmess_ws_frame_header(uint8_t *p, int fin, unsigned opcode,
    uint64_t len, const uint8_t mask[4]);


/*
 * The HTTP/1.1 upgrade request of the WebSocket and HTTPUpgrade
 * transports (vmess_http.c): "GET <path>[ ?]... HTTP/1.1", headers, the
 * empty line.  Parsed whole, again from its start each time more bytes
 * arrive; what it finds points into the caller's bytes.
 */

#define VMESS_HTTP_HEADER_MAX           8192    /* up to the empty line */

typedef struct {
    vmess_bytes_t               path;       /* "/...", no ' ' or '?' */
    vmess_bytes_t               host;       /* empty: any Host or none */
    vmess_bytes_t               real_ip_header;  /* empty: none */
    int                         raw;        /* HTTPUpgrade: no key or
                                               version needed */
} vmess_http_upgrade_conf_t;

/* the headers a handshake needs, vmess_http_upgrade_t.seen */
#define VMESS_HTTP_SEEN_UPGRADE         0x01
#define VMESS_HTTP_SEEN_CONNECTION      0x02
#define VMESS_HTTP_SEEN_KEY             0x04
#define VMESS_HTTP_SEEN_VERSION         0x08
#define VMESS_HTTP_SEEN_HOST            0x10

typedef struct {
    vmess_bytes_t               key;        /* Sec-WebSocket-Key */
    vmess_bytes_t               protocol;   /* Sec-WebSocket-Protocol */
    vmess_bytes_t               real_ip;    /* conf's real_ip_header */
    size_t                      header_len; /* through the empty line */
    unsigned                    seen;
} vmess_http_upgrade_t;

/* "GET <path> " or "GET <path>?" at p: VMESS_OK; VMESS_AGAIN while the
 * bytes could still become it; else VMESS_ERR_HTTP_OTHER_PATH */
int vmess_http_path_match(const uint8_t *p, size_t len,
    const vmess_bytes_t *path);

/*
 * The request in p[0..len); room (>= len) is how many bytes the caller's
 * buffer could hold, the request is refused as too large when neither it
 * nor VMESS_HTTP_HEADER_MAX bytes hold the header.  VMESS_OK with *r
 * filled, VMESS_AGAIN, or a VMESS_ERR_HTTP_* error: the first bad field.
 * Values are trimmed of spaces and tabs; names are case-insensitive.
 */
int vmess_http_upgrade_parse(const vmess_http_upgrade_conf_t *conf,
    const uint8_t *p, size_t len, size_t room, vmess_http_upgrade_t *r);

#endif /* VMESS_H */
