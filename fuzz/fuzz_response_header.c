/*
 * libFuzzer harness: the client side of the response
 * (vmess_response_header_open), AEAD and legacy header modes, then the
 * response body from the same codec: with security 1 in legacy mode the
 * body continues the header's CFB stream.
 *
 * Input: flags byte, combo byte (security, options), split, [small out
 * cap], then by mode (flags bits 1-2)
 *   0 raw:    the wire bytes
 *   1 deep:   V, option, command, M, command bytes (FNV fixed if told),
 *             [the length field], tail: the harness seals the fuzzer's
 *             plaintext with the real keys (GCM or CFB)
 *   2, 3 sealed: V, switch-account fields, chunks: the server codec seals
 *             header and body; the client must get back all of it
 * The header is tried on growing prefixes of the input, as a client gets
 * it; the first answer other than VMESS_AGAIN must be the whole input's.
 */

#include <stdlib.h>
#include <string.h>

#include "vmess.h"
#include "common.h"


#define FUZZ_F_LEGACY       0x01
#define FUZZ_F_MODE         0x06
#define FUZZ_F_MISMATCH     0x08
#define FUZZ_F_FIX_FNV      0x10
#define FUZZ_F_HONEST_LEN   0x20
#define FUZZ_F_SMALL_CAP    0x40
#define FUZZ_F_END          0x80

#define FUZZ_MODE_RAW       0
#define FUZZ_MODE_DEEP      2

#define FUZZ_PLAIN_MAX      (4 + 4 + 255)
#define FUZZ_CHUNKS_MAX     8
#define FUZZ_CHUNK_MAX      3000


typedef struct {
    int                         rc;
    size_t                      consumed;
    int                         cmd_found;
    vmess_switch_account_t      cmd;
    int                         body;       /* the body was read */
    fuzz_body_result_t          r;
} fuzz_client_t;


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_client(const vmess_session_t *s, const uint8_t *wire,
    size_t len, fuzz_split_t *sp, int small, size_t small_cap,
    fuzz_client_t *c);
static void fuzz_deep(const vmess_session_t *s, uint8_t flags,
    fuzz_split_t *sp, size_t small_cap, fuzz_in_t *in);
static void fuzz_sealed(const vmess_session_t *s, uint8_t flags,
    fuzz_split_t *sp, size_t small_cap, fuzz_in_t *in);
static int fuzz_decode_cmd(const uint8_t *p, size_t len,
    vmess_switch_account_t *cmd);


static const uint8_t  fuzz_securities[] = { 1, 3, 4, 5 };
static const uint8_t  fuzz_options[] = { 0x01, 0x05, 0x0d, 0x00, 0x11, 0x1d };


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int              sec, opt;
    size_t           small_cap;
    uint8_t          flags, combo;
    fuzz_in_t        in;
    fuzz_split_t     sp;
    fuzz_client_t    c;
    vmess_session_t  s;

    in.p = data;
    in.len = size;

    flags = fuzz_u8(&in);
    combo = fuzz_u8(&in);
    fuzz_split_read(&sp, &in);
    small_cap = (flags & FUZZ_F_SMALL_CAP) ? fuzz_u16(&in) % 4096 : 0;

    sec = fuzz_securities[combo % 4];
    opt = fuzz_options[(combo / 4) % 6];

    fuzz_session(&s, sec, opt, VMESS_CMD_TCP, flags & FUZZ_F_LEGACY);

    switch (flags & FUZZ_F_MODE) {

    case FUZZ_MODE_RAW:
        fuzz_client(&s, in.p, in.len, &sp, (flags & FUZZ_F_SMALL_CAP) != 0,
                    small_cap, &c);

        if (c.body) {
            fuzz_body_result_free(&c.r);
        }

        break;

    case FUZZ_MODE_DEEP:
        fuzz_deep(&s, flags, &sp, small_cap, &in);
        break;

    default:
        fuzz_sealed(&s, flags, &sp, small_cap, &in);
    }

    return 0;
}


/*
 * The client: header on growing prefixes (and once on the whole input,
 * with a codec of its own, to compare), then the rest through the same
 * codec as body.
 */

static void
fuzz_client(const vmess_session_t *s, const uint8_t *wire, size_t len,
    fuzz_split_t *sp, int small, size_t small_cap, fuzz_client_t *c)
{
    int                     rc, found;
    size_t                  have, consumed;
    uint8_t                *buf;
    vmess_body_t            b, whole;
    vmess_switch_account_t  cmd;

    memset(c, 0, sizeof(fuzz_client_t));

    fuzz_assert(vmess_body_init(&b, s, VMESS_DIR_RESPONSE, 0) == VMESS_OK
                && vmess_body_init(&whole, s, VMESS_DIR_RESPONSE, 0)
                   == VMESS_OK, "vmess_body_init");

    have = 0;
    rc = VMESS_AGAIN;

    do {
        have += (len > have) ? fuzz_split_next(sp, len - have) : 0;

        buf = fuzz_dup(wire, have);
        c->consumed = (size_t) -1;
        rc = vmess_response_header_open(&b, FUZZ_RESPONSE_V, buf, have,
                                        &c->consumed, &c->cmd,
                                        &c->cmd_found);
        free(buf);

        if (rc == VMESS_AGAIN) {
            fuzz_assert(c->consumed == 0 && c->cmd_found == 0,
                        "AGAIN: nothing consumed, no command");
        }

    } while (rc == VMESS_AGAIN && have < len);

    c->rc = rc;

    buf = fuzz_dup(wire, len);
    memset(&cmd, 0, sizeof(vmess_switch_account_t));
    consumed = (size_t) -1;
    rc = vmess_response_header_open(&whole, FUZZ_RESPONSE_V, buf, len,
                                    &consumed, &cmd, &found);
    free(buf);

    fuzz_assert(rc == c->rc, "prefix and whole agree");

    if (rc == VMESS_OK) {
        fuzz_assert(consumed == c->consumed && consumed <= have
                    && found == c->cmd_found,
                    "prefix and whole: same header");

        if (found) {
            fuzz_assert(memcmp(&cmd, &c->cmd, sizeof(cmd)) == 0,
                        "prefix and whole: same command");
        }
    }

    vmess_body_free(&whole);

    if (c->rc == VMESS_OK) {
        /* one header per codec */
        fuzz_assert(vmess_response_header_open(&b, FUZZ_RESPONSE_V, wire,
                                               len, &consumed, NULL, NULL)
                    == VMESS_ERR_INVALID, "a second header is refused");

        fuzz_body_feed(&b, wire + c->consumed, len - c->consumed, sp, small,
                       small_cap, &c->r);
        c->body = 1;
    }

    vmess_body_free(&b);
}


/*
 * plain = V opt cmd M || command bytes; with FIX_FNV the command bytes
 * are FNV1a(body) || body and M their length.
 */

static void
fuzz_deep(const vmess_session_t *s, uint8_t flags, fuzz_split_t *sp,
    size_t small_cap, fuzz_in_t *in)
{
    int                     want, found;
    size_t                  plen, n, k, len, m, field, tail_len;
    uint8_t                 plain[FUZZ_PLAIN_MAX], key[32], nonce[32];
    uint8_t                 lf[2], *wire;
    uint32_t                sum;
    fuzz_client_t           c;
    const uint8_t          *p, *tail;
    vmess_switch_account_t  cmd;

    memset(plain, 0, sizeof(plain));
    n = fuzz_take(in, 4, &p);
    memcpy(plain, p, n);
    plen = 4;

    k = fuzz_u8(in);

    if (flags & FUZZ_F_FIX_FNV) {
        k = fuzz_take(in, k > 251 ? 251 : k, &p);
        memcpy(plain + 8, p, k);
        sum = vmess_fnv1a(plain + 8, k);
        plain[4] = (uint8_t) (sum >> 24);
        plain[5] = (uint8_t) (sum >> 16);
        plain[6] = (uint8_t) (sum >> 8);
        plain[7] = (uint8_t) sum;
        plain[3] = (uint8_t) (4 + k);
        plen += 4 + k;

    } else {
        k = fuzz_take(in, k, &p);
        memcpy(plain + 4, p, k);
        plen += k;
    }

    field = (s->legacy_header || (flags & FUZZ_F_HONEST_LEN))
            ? plen : fuzz_u16(in);

    tail = in->p;
    tail_len = in->len;

    wire = fuzz_alloc(18 + plen + 16 + tail_len);

    if (s->legacy_header) {
        memcpy(wire, plain, plen);
        memcpy(wire + plen, tail, tail_len);
        len = plen + tail_len;

        /* security 1: the body is the same CFB stream */
        fuzz_cfb_encrypt(s->resp_key, s->resp_iv, wire,
                         s->security == VMESS_SEC_AES_128_CFB ? len : plen,
                         wire);

    } else {
        lf[0] = (uint8_t) (field >> 8);
        lf[1] = (uint8_t) field;

        fuzz_kdf1(s->resp_key, "AEAD Resp Header Len Key", key);
        fuzz_kdf1(s->resp_iv, "AEAD Resp Header Len IV", nonce);
        fuzz_gcm_seal(key, nonce, NULL, 0, lf, 2, wire);

        fuzz_kdf1(s->resp_key, "AEAD Resp Header Key", key);
        fuzz_kdf1(s->resp_iv, "AEAD Resp Header IV", nonce);
        fuzz_gcm_seal(key, nonce, NULL, 0, plain, plen, wire + 18);

        memcpy(wire + 18 + plen + 16, tail, tail_len);
        len = 18 + plen + 16 + tail_len;
    }

    fuzz_client(s, wire, len, sp, (flags & FUZZ_F_SMALL_CAP) != 0, small_cap,
                &c);

    /* what the client must say, from the plaintext */
    m = plain[2] != 0 ? plain[3] : 0;
    found = 0;

    if (s->legacy_header) {
        if (len < 4 + m) {
            want = VMESS_AGAIN;

        } else if (4 + m > plen) {
            /* the header runs into the tail: no knowing its bytes */
            want = c.rc;

        } else {
            want = (plain[0] == FUZZ_RESPONSE_V)
                   ? VMESS_OK : VMESS_ERR_BAD_RESPONSE;
        }

    } else if (field < 4 || field > 4 + 255) {
        want = VMESS_ERR_BAD_RESPONSE;

    } else if (len < 18 + field + 16) {
        want = VMESS_AGAIN;

    } else if (field != plen) {
        want = VMESS_ERR_BAD_AUTH;

    } else if (plain[2] != 0 && plen < 4 + m) {
        want = VMESS_ERR_BAD_RESPONSE;

    } else {
        want = (plain[0] == FUZZ_RESPONSE_V)
               ? VMESS_OK : VMESS_ERR_BAD_RESPONSE;
    }

    fuzz_assert(c.rc == want, "deep header result");

    if (c.rc == VMESS_OK && 4 + m <= plen) {
        fuzz_assert(c.consumed == (s->legacy_header ? 4 + m
                                                    : 18 + plen + 16),
                    "deep header length");

        found = plain[2] == 1 && fuzz_decode_cmd(plain + 4, m, &cmd);

        fuzz_assert(c.cmd_found == found, "command found");

        if (found) {
            fuzz_assert(memcmp(&cmd, &c.cmd, sizeof(cmd)) == 0,
                        "command fields");
        }
    }

    if (c.body) {
        fuzz_body_result_free(&c.r);
    }

    free(wire);
}


/*
 * Input: V (used with MISMATCH), command flag, host length, host, port,
 * id, alter IDs, level, minutes, chunk count and lengths, plaintext.
 */

static void
fuzz_sealed(const vmess_session_t *s, uint8_t flags, fuzz_split_t *sp,
    size_t small_cap, fuzz_in_t *in)
{
    int                     rc, has_cmd, chunked;
    size_t                  i, n, k, len, hlen, written, over, total;
    size_t                  off, src_len, n_ends;
    size_t                  lens[FUZZ_CHUNKS_MAX];
    size_t                  ends[FUZZ_CHUNKS_MAX + 1];
    uint8_t                 v, *wire, *plain, *hdr, *chunk;
    fuzz_client_t           c;
    const uint8_t          *p, *src;
    vmess_body_t            w;
    vmess_switch_account_t  cmd;

    static const uint8_t  fallback[] = "resp";

    memset(&c, 0, sizeof(fuzz_client_t));
    v = fuzz_u8(in);

    if (!(flags & FUZZ_F_MISMATCH)) {
        v = FUZZ_RESPONSE_V;
    }

    memset(&cmd, 0, sizeof(vmess_switch_account_t));
    has_cmd = fuzz_u8(in) & 1;

    if (has_cmd) {
        cmd.host_len = fuzz_u8(in);
        k = fuzz_take(in, cmd.host_len, &p);
        memcpy(cmd.host, p, k);
        cmd.port = fuzz_u16(in);
        k = fuzz_take(in, 16, &p);
        memcpy(cmd.id, p, k);
        cmd.alter_ids = fuzz_u16(in);
        cmd.level = fuzz_u8(in);
        cmd.valid_minutes = fuzz_u8(in);
    }

    n = fuzz_u8(in) % (FUZZ_CHUNKS_MAX + 1);
    total = 0;

    for (i = 0; i < n; i++) {
        lens[i] = fuzz_u16(in) % FUZZ_CHUNK_MAX;
        total += lens[i];
    }

    src = in->p;
    src_len = in->len;

    if (src_len == 0) {
        src = fallback;
        src_len = sizeof(fallback) - 1;
    }

    plain = fuzz_alloc(total);

    fuzz_fill(plain, total, src, src_len);

    rc = vmess_body_init(&w, s, VMESS_DIR_RESPONSE, 0);
    fuzz_assert(rc == VMESS_OK, "vmess_body_init (server)");

    chunked = w.chunked;
    over = vmess_body_overhead(&w);

    wire = fuzz_alloc(VMESS_RESPONSE_HEADER_MAX + total
                      + (n + 1) * over);

    /* a header buffer of exactly the cap that always suffices */
    hdr = fuzz_alloc(VMESS_RESPONSE_HEADER_MAX);
    rc = vmess_response_header_seal(&w, v, has_cmd ? &cmd : NULL, hdr,
                                    VMESS_RESPONSE_HEADER_MAX, &hlen);

    if (rc != VMESS_OK) {
        fuzz_assert(has_cmd && 4 + 23 + (size_t) cmd.host_len > 255
                    && rc == VMESS_ERR_INVALID, "response header sealed");
        goto done;
    }

    memcpy(wire, hdr, hlen);
    len = hlen;
    off = 0;
    n_ends = 0;

    for (i = 0; i < n; i++) {
        if (chunked && lens[i] == 0) {
            continue;
        }

        chunk = fuzz_alloc(lens[i] + over);
        rc = vmess_body_seal(&w, plain + off, lens[i], NULL, chunk,
                             lens[i] + over, &written);
        fuzz_assert(rc == VMESS_OK, "response chunk sealed");
        memcpy(wire + len, chunk, written);
        len += written;
        off += lens[i];
        free(chunk);

        if (chunked) {
            ends[n_ends++] = off;
        }
    }

    if (flags & FUZZ_F_END) {
        chunk = fuzz_alloc(over);
        rc = vmess_body_seal_end(&w, NULL, chunk, over, &written);
        fuzz_assert(rc == VMESS_OK, "response end marker sealed");
        memcpy(wire + len, chunk, written);
        len += written;
        free(chunk);

        if (chunked) {
            ends[n_ends++] = off;
        }
    }

    fuzz_client(s, wire, len, sp, (flags & FUZZ_F_SMALL_CAP) != 0, small_cap,
                &c);

    if (v != FUZZ_RESPONSE_V) {
        fuzz_assert(c.rc == VMESS_ERR_BAD_RESPONSE, "V mismatch refused");
        goto done;
    }

    fuzz_assert(c.rc == VMESS_OK && c.consumed == hlen, "header opens");
    fuzz_assert(c.cmd_found == has_cmd, "command found");

    if (has_cmd) {
        fuzz_assert(memcmp(&cmd, &c.cmd, sizeof(cmd)) == 0, "command fields");
    }

    fuzz_assert(c.r.out_len == off && memcmp(c.r.out, plain, off) == 0,
                "response body plaintext");
    fuzz_assert(c.r.consumed == len - hlen, "all the body is read");
    fuzz_assert(c.r.n_ends == n_ends
                && memcmp(c.r.ends, ends, n_ends * sizeof(size_t)) == 0,
                "response body chunks");
    fuzz_assert(c.r.eof == (chunked && (flags & FUZZ_F_END)),
                "response end marker seen");
    fuzz_assert(c.r.rc == (c.r.eof ? VMESS_OK : VMESS_AGAIN),
                "response body result");

done:

    if (c.body) {
        fuzz_body_result_free(&c.r);
    }

    vmess_body_free(&w);
    free(hdr);
    free(wire);
    free(plain);
}


/* VMESS-SPEC.md §9: FNV1a(body) || body, body = hostLen host port id(16)
 * alterIds level minutes; 1 when it decodes */

static int
fuzz_decode_cmd(const uint8_t *p, size_t len, vmess_switch_account_t *cmd)
{
    const uint8_t  *q;

    if (len < 4 + 23
        || vmess_fnv1a(p + 4, len - 4)
           != ((uint32_t) p[0] << 24 | (uint32_t) p[1] << 16
               | (uint32_t) p[2] << 8 | p[3])
        || len - 4 < 23 + (size_t) p[4])
    {
        return 0;
    }

    memset(cmd, 0, sizeof(vmess_switch_account_t));

    q = p + 4;
    cmd->host_len = q[0];
    memcpy(cmd->host, q + 1, q[0]);
    q += 1 + q[0];
    cmd->port = (uint16_t) (q[0] << 8 | q[1]);
    memcpy(cmd->id, q + 2, 16);
    cmd->alter_ids = (uint16_t) (q[18] << 8 | q[19]);
    cmd->level = q[20];
    cmd->valid_minutes = q[21];

    return 1;
}
