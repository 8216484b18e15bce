/*
 * Support for the libFuzzer harnesses of the protocol core: an input
 * cursor, input-chosen piece sizes, the fixed test identity (the vectors'
 * UUID, keys and clock) and the raw OpenSSL seals a harness needs to put
 * fuzzer-chosen plaintext behind a valid tag.
 */

#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "vmess.h"


/* VMESS-SPEC.md §12 fixed inputs */
#define FUZZ_T0                 1700000000LL
#define FUZZ_UUID               "b831381d-6324-4d53-ad4f-8cda48b30811"
#define FUZZ_RESPONSE_V         0x5a

#define FUZZ_SPLIT_MAX          16
#define FUZZ_OUT_CAP            65535
#define FUZZ_ENDS_MAX           4096


typedef struct {
    const uint8_t              *p;
    size_t                      len;
} fuzz_in_t;

/* piece sizes for feeding a stream, cycled; none: one piece */
typedef struct {
    uint8_t                     code[FUZZ_SPLIT_MAX];
    size_t                      n;
    size_t                      next;
} fuzz_split_t;


/* what a body reader gave over a whole stream */
typedef struct {
    int                         rc;         /* AGAIN, OK (eof) or error */
    int                         eof;
    uint8_t                    *out;        /* plaintext, concatenated */
    size_t                      out_len;
    size_t                     *ends;       /* chunked: end of each chunk */
    size_t                      n_ends;
    size_t                      part;       /* of out: data of a chunk not
                                               ended (bare none, in place) */
    int                         ends_lost;  /* more than FUZZ_ENDS_MAX */
    size_t                      consumed;
    size_t                      kept;       /* in place: left unconsumed
                                               for a contiguous retry */
    uint8_t                    *staging;    /* given on NEED_STAGING */
} fuzz_body_result_t;


/* reads past the end give zeros */
uint8_t fuzz_u8(fuzz_in_t *in);
uint16_t fuzz_u16(fuzz_in_t *in);
uint32_t fuzz_u32(fuzz_in_t *in);
uint64_t fuzz_u64(fuzz_in_t *in);
/* up to n bytes: *p points at them, the count is returned */
size_t fuzz_take(fuzz_in_t *in, size_t n, const uint8_t **p);

/* a count byte (low 4 bits) and that many size codes */
void fuzz_split_read(fuzz_split_t *sp, fuzz_in_t *in);
/* the next piece, 1..left bytes (left > 0) */
size_t fuzz_split_next(fuzz_split_t *sp, size_t left);

/* a malloc'ed copy of exactly len bytes, so ASan sees any over-read */
uint8_t *fuzz_dup(const uint8_t *p, size_t len);
void *fuzz_alloc(size_t len);

/*
 * Of buf (len bytes, heap) only [from, to) is readable under ASan: a
 * zero-copy exact-size input window.  (from is exact to 8 bytes only.)
 * A window only moves forward, so a move changes the shadow of the bytes
 * it passes over, not of the whole buffer.  Close it before freeing buf.
 */
typedef struct {
    uint8_t                    *buf;
    size_t                      len;
    size_t                      from;
    size_t                      to;
} fuzz_window_t;

void fuzz_window_open(fuzz_window_t *w, uint8_t *buf, size_t len);
void fuzz_window_move(fuzz_window_t *w, size_t from, size_t to);
void fuzz_window_close(fuzz_window_t *w);
/* buf = src repeated (src_len > 0) */
void fuzz_fill(uint8_t *buf, size_t len, const uint8_t *src,
    size_t src_len);

void fuzz_fail(const char *fmt, ...);
#define fuzz_assert(cond, what)                                             \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fuzz_fail("%s:%d: %s: %s", __FILE__, __LINE__, what, #cond);    \
        }                                                                   \
    } while (0)

/*
 * The caller's loop over vmess_body_open with every contract check:
 * pieces from sp, staging on request, and with "small" an out buffer of
 * small_cap bytes before the full 65535 one.
 */
void fuzz_body_feed(vmess_body_t *b, const uint8_t *stream, size_t len,
    fuzz_split_t *sp, int small, size_t small_cap, fuzz_body_result_t *r);
/*
 * The same over vmess_body_open_inplace, for a caller with one contiguous
 * receive buffer: what a call leaves unconsumed stays in front of the
 * next piece.  Bit (k % 6) of stages is the stage flag of call k.
 */
void fuzz_body_feed_inplace(vmess_body_t *b, const uint8_t *stream,
    size_t len, fuzz_split_t *sp, unsigned stages, fuzz_body_result_t *r);
void fuzz_body_result_free(fuzz_body_result_t *r);

/* vmess_addr_format checks on an opened request */
void fuzz_addr_text(const vmess_request_t *req);

/* the vectors' user, keyed once */
void fuzz_user_init(vmess_user_t *u);

/* a session with the vectors' request key and IV */
void fuzz_session(vmess_session_t *s, int security, int options,
    int command, int legacy_header);

/* KDF(secret(16), salt) */
void fuzz_kdf1(const uint8_t secret[16], const char *salt, uint8_t out[32]);

/* AES-128-GCM, 12-byte nonce: out = ciphertext || tag(16) */
void fuzz_gcm_seal(const uint8_t key[16], const uint8_t nonce[12],
    const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
    uint8_t *out);
/* a body chunk AEAD seal: GCM, or ChaCha20-Poly1305 with the VMess key
 * expansion of a 16-byte key */
void fuzz_body_aead_seal(int security, const uint8_t key[16],
    const uint8_t nonce[12], const uint8_t *in, size_t len, uint8_t *out);
/* AES-128-CFB128 encryption from a fresh IV */
void fuzz_cfb_encrypt(const uint8_t key[16], const uint8_t iv[16],
    const uint8_t *in, size_t len, uint8_t *out);

#endif /* FUZZ_COMMON_H */
