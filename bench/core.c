/*
 * Body codec throughput: vmess_body_seal/vmess_body_open on 16 KiB chunks,
 * next to a bare OpenSSL EVP loop of the same cipher (same key and nonce
 * update pattern, same buffer sizes, out-of-place) measured in the same
 * run.  Gate: for AES-128-GCM and ChaCha20-Poly1305 the codec must reach
 * 90% of the bare EVP throughput; the exit status is 1 if a gated row
 * misses, 2 if the codec or an EVP loop failed.
 *
 *   core [seconds]     time per measurement, default 0.5 (best of 3)
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "vmess.h"


#define BENCH_CHUNK         16384
#define BENCH_BATCH         16      /* chunks timed between two clock reads */
#define BENCH_ROUNDS        3
#define BENCH_GATE          0.90
#define BENCH_TAG_LEN       16
#define BENCH_NONCE_LEN     12
#define BENCH_OUT_SIZE      (BENCH_CHUNK + VMESS_CHUNK_OVERHEAD_MAX)
#define BENCH_BARE_STEP     (BENCH_CHUNK + BENCH_TAG_LEN)


typedef struct bench_s  bench_t;

typedef struct {
    double                      rate;   /* bytes/s, best of the rounds */
    double                      peak;   /* bytes/s of the fastest batch */
} bench_rate_t;

typedef int (*bench_batch_pt)(bench_t *bt);

typedef struct {
    const char                 *name;
    uint8_t                     security;
    const EVP_CIPHER         *(*evp)(void);     /* NULL: memcpy */
    unsigned                    aead:1;
    unsigned                    gated:1;
} bench_cipher_t;

/*
 * The readers run in steady state: between two timed batches (untimed) a
 * writer of their own seals the next BENCH_BATCH chunks into a ring, so
 * nonce counters and SHAKE streams go on as in a long connection.
 */
struct bench_s {
    const bench_cipher_t       *cipher;
    vmess_session_t             session;

    vmess_body_t                writer;         /* timed */
    vmess_body_t                ring_writer;    /* feeds the reader */
    vmess_body_t                reader;         /* timed */
    unsigned                    writer_ready:1;
    unsigned                    ring_writer_ready:1;
    unsigned                    reader_ready:1;
    unsigned                    verify:1;

    EVP_CIPHER_CTX             *enc;            /* timed */
    EVP_CIPHER_CTX             *ring_enc;       /* feeds dec */
    EVP_CIPHER_CTX             *dec;            /* timed */
    uint16_t                    enc_count;      /* bare nonce counters */
    uint16_t                    ring_count;
    uint16_t                    dec_count;

    uint8_t                    *in;             /* one chunk of plaintext */
    uint8_t                    *out;            /* BENCH_OUT_SIZE */
    uint8_t                    *staging;        /* VMESS_STAGING_SIZE */
    uint8_t                    *codec_ring;     /* BATCH sealed chunks */
    size_t                      codec_ring_len;
    uint8_t                    *bare_ring;
    int                         rc;             /* codec error, if any */
};


static double bench_now(void);
static int bench_pair(bench_t *bt, bench_batch_pt codec_prepare,
    bench_batch_pt codec_batch, bench_batch_pt bare_prepare,
    bench_batch_pt bare_batch, double seconds, bench_rate_t *codec,
    bench_rate_t *bare);
static int bench_side(bench_t *bt, bench_batch_pt prepare,
    bench_batch_pt batch, double *time, double *fastest);
static int bench_codec_init(bench_t *bt);
static int bench_codec_seal(bench_t *bt);
static int bench_codec_ring(bench_t *bt);
static int bench_codec_open(bench_t *bt);
static int bench_bare_init(bench_t *bt);
static void bench_nonce(bench_t *bt, uint16_t count,
    uint8_t nonce[BENCH_NONCE_LEN]);
static int bench_bare_seal_chunk(bench_t *bt, EVP_CIPHER_CTX *ctx,
    uint16_t *count, uint8_t *out);
static int bench_bare_seal(bench_t *bt);
static int bench_bare_ring(bench_t *bt);
static int bench_bare_open(bench_t *bt);
static int bench_row(const bench_cipher_t *c, uint8_t options,
    double seconds, int *failed);
static void bench_print(const bench_cipher_t *c, uint8_t options,
    const char *op, const bench_rate_t *codec, const bench_rate_t *bare,
    int *failed);
static void bench_free(bench_t *bt);
static void bench_print_load(void);


static const bench_cipher_t  bench_ciphers[] = {
    { "aes-128-gcm", VMESS_SEC_AES_128_GCM, EVP_aes_128_gcm, 1, 1 },
    { "chacha20-poly1305", VMESS_SEC_CHACHA20_POLY1305,
      EVP_chacha20_poly1305, 1, 1 },
    { "none", VMESS_SEC_NONE, NULL, 0, 0 },
    { "aes-128-cfb", VMESS_SEC_AES_128_CFB, EVP_aes_128_cfb128, 0, 0 },
};

/* masked + padded (what v2ray clients send for GCM/ChaCha), then plain */
static const uint8_t  bench_options[] = {
    VMESS_OPT_CHUNK_STREAM | VMESS_OPT_CHUNK_MASKING
    | VMESS_OPT_GLOBAL_PADDING,
    VMESS_OPT_CHUNK_STREAM
};

/* fixed, arbitrary: throughput does not depend on key values */
static const uint8_t  bench_key[32] = {
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
    0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
    0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78,
    0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0
};

static uint8_t  bench_pad[64];


static double
bench_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}


/* one timed batch after its untimed preparation */

static int
bench_side(bench_t *bt, bench_batch_pt prepare, bench_batch_pt batch,
    double *time, double *fastest)
{
    double  start, t;

    if (prepare != NULL && prepare(bt) != 0) {
        return -1;
    }

    start = bench_now();

    if (batch(bt) != 0) {
        return -1;
    }

    t = bench_now() - start;
    *time += t;

    if (*fastest == 0 || t < *fastest) {
        *fastest = t;
    }

    return 0;
}


/*
 * Best of BENCH_ROUNDS measurements of "seconds" each, for the codec and
 * for the bare loop.  Their batches alternate, so that both see the same
 * machine state (clock frequency, other load).  The fastest single batch
 * of each side is kept too: preemption rarely hits a batch that short,
 * so that figure resists other load on the host.
 */

static int
bench_pair(bench_t *bt, bench_batch_pt codec_prepare,
    bench_batch_pt codec_batch, bench_batch_pt bare_prepare,
    bench_batch_pt bare_batch, double seconds, bench_rate_t *codec,
    bench_rate_t *bare)
{
    int     round;
    double  bytes, codec_time, bare_time, codec_fastest, bare_fastest;
    size_t  codec_batches, bare_batches;

    bytes = (double) BENCH_BATCH * BENCH_CHUNK;
    codec->rate = 0;
    bare->rate = 0;
    codec_fastest = 0;
    bare_fastest = 0;

    for (round = 0; round < BENCH_ROUNDS; round++) {
        codec_time = 0;
        bare_time = 0;
        codec_batches = 0;
        bare_batches = 0;

        while (codec_time < seconds || bare_time < seconds) {
            if (codec_time < seconds) {
                if (bench_side(bt, codec_prepare, codec_batch, &codec_time,
                               &codec_fastest)
                    != 0)
                {
                    return -1;
                }

                codec_batches++;
            }

            if (bare_time < seconds) {
                if (bench_side(bt, bare_prepare, bare_batch, &bare_time,
                               &bare_fastest)
                    != 0)
                {
                    return -1;
                }

                bare_batches++;
            }
        }

        if (codec_batches * bytes / codec_time > codec->rate) {
            codec->rate = codec_batches * bytes / codec_time;
        }

        if (bare_batches * bytes / bare_time > bare->rate) {
            bare->rate = bare_batches * bytes / bare_time;
        }
    }

    codec->peak = bytes / codec_fastest;
    bare->peak = bytes / bare_fastest;

    return 0;
}


/* one direction (client to server), one codec per role, as a peer has */

static int
bench_codec_init(bench_t *bt)
{
    /* vmess_body_free is safe after a failed init */
    bt->writer_ready = 1;
    bt->rc = vmess_body_init(&bt->writer, &bt->session, VMESS_DIR_REQUEST,
                             0);
    if (bt->rc != VMESS_OK) {
        return -1;
    }

    bt->ring_writer_ready = 1;
    bt->rc = vmess_body_init(&bt->ring_writer, &bt->session,
                             VMESS_DIR_REQUEST, 0);
    if (bt->rc != VMESS_OK) {
        return -1;
    }

    bt->reader_ready = 1;
    bt->rc = vmess_body_init(&bt->reader, &bt->session, VMESS_DIR_REQUEST,
                             0);
    if (bt->rc != VMESS_OK) {
        return -1;
    }

    vmess_body_set_staging(&bt->reader, bt->staging, VMESS_STAGING_SIZE);

    return 0;
}


static int
bench_codec_seal(bench_t *bt)
{
    int     i, rc;
    size_t  written;

    for (i = 0; i < BENCH_BATCH; i++) {
        rc = vmess_body_seal(&bt->writer, bt->in, BENCH_CHUNK, bench_pad,
                             bt->out, BENCH_OUT_SIZE, &written);
        if (rc != VMESS_OK) {
            bt->rc = rc;
            return -1;
        }
    }

    return 0;
}


static int
bench_codec_ring(bench_t *bt)
{
    int     i, rc;
    size_t  written;

    bt->codec_ring_len = 0;

    for (i = 0; i < BENCH_BATCH; i++) {
        rc = vmess_body_seal(&bt->ring_writer, bt->in, BENCH_CHUNK,
                             bench_pad, bt->codec_ring + bt->codec_ring_len,
                             BENCH_OUT_SIZE, &written);
        if (rc != VMESS_OK) {
            bt->rc = rc;
            return -1;
        }

        bt->codec_ring_len += written;
    }

    return 0;
}


static int
bench_codec_open(bench_t *bt)
{
    int             rc, chunks;
    size_t          left, consumed, produced;
    const uint8_t  *p;

    p = bt->codec_ring;
    left = bt->codec_ring_len;
    chunks = 0;

    while (left > 0) {
        rc = vmess_body_open(&bt->reader, p, left, &consumed, bt->out,
                             BENCH_OUT_SIZE, &produced);
        if (rc != VMESS_OK) {
            bt->rc = rc;
            return -1;
        }

        if (produced != BENCH_CHUNK
            || (bt->verify && memcmp(bt->out, bt->in, BENCH_CHUNK) != 0))
        {
            bt->rc = VMESS_ERR_BAD_LENGTH;
            return -1;
        }

        p += consumed;
        left -= consumed;
        chunks++;
    }

    if (chunks != BENCH_BATCH) {
        bt->rc = VMESS_ERR_BAD_LENGTH;
        return -1;
    }

    return 0;
}


/* key schedules made once, as the codec makes them at init */

static int
bench_bare_init(bench_t *bt)
{
    const EVP_CIPHER  *cipher;

    if (bt->cipher->evp == NULL) {
        return 0;
    }

    cipher = bt->cipher->evp();

    bt->enc = EVP_CIPHER_CTX_new();
    bt->ring_enc = EVP_CIPHER_CTX_new();
    bt->dec = EVP_CIPHER_CTX_new();

    if (bt->enc == NULL || bt->ring_enc == NULL || bt->dec == NULL
        || !EVP_EncryptInit_ex(bt->enc, cipher, NULL, bench_key,
                               bt->session.req_iv)
        || !EVP_EncryptInit_ex(bt->ring_enc, cipher, NULL, bench_key,
                               bt->session.req_iv)
        || !EVP_DecryptInit_ex(bt->dec, cipher, NULL, bench_key,
                               bt->session.req_iv))
    {
        return -1;
    }

    return 0;
}


/* VMESS-SPEC.md §7.3: BE16(count) || IV[2:12] */

static void
bench_nonce(bench_t *bt, uint16_t count, uint8_t nonce[BENCH_NONCE_LEN])
{
    nonce[0] = (uint8_t) (count >> 8);
    nonce[1] = (uint8_t) count;
    memcpy(nonce + 2, bt->session.req_iv + 2, BENCH_NONCE_LEN - 2);
}


static int
bench_bare_seal_chunk(bench_t *bt, EVP_CIPHER_CTX *ctx, uint16_t *count,
    uint8_t *out)
{
    int      n, fin;
    uint8_t  nonce[BENCH_NONCE_LEN];

    if (bt->cipher->evp == NULL) {
        memcpy(out, bt->in, BENCH_CHUNK);
        return 0;
    }

    if (!bt->cipher->aead) {
        /* CFB: one continuous stream per direction */
        return EVP_EncryptUpdate(ctx, out, &n, bt->in, BENCH_CHUNK) ? 0 : -1;
    }

    bench_nonce(bt, (*count)++, nonce);

    if (!EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce)
        || !EVP_EncryptUpdate(ctx, out, &n, bt->in, BENCH_CHUNK)
        || !EVP_EncryptFinal_ex(ctx, out + n, &fin)
        || !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, BENCH_TAG_LEN,
                                out + BENCH_CHUNK))
    {
        return -1;
    }

    return 0;
}


static int
bench_bare_seal(bench_t *bt)
{
    int  i;

    for (i = 0; i < BENCH_BATCH; i++) {
        if (bench_bare_seal_chunk(bt, bt->enc, &bt->enc_count, bt->out)
            != 0)
        {
            return -1;
        }
    }

    return 0;
}


static int
bench_bare_ring(bench_t *bt)
{
    int  i;

    for (i = 0; i < BENCH_BATCH; i++) {
        if (bench_bare_seal_chunk(bt, bt->ring_enc, &bt->ring_count,
                                  bt->bare_ring + i * BENCH_BARE_STEP)
            != 0)
        {
            return -1;
        }
    }

    return 0;
}


static int
bench_bare_open(bench_t *bt)
{
    int             i, n, fin;
    uint8_t         nonce[BENCH_NONCE_LEN];
    const uint8_t  *p;

    for (i = 0; i < BENCH_BATCH; i++) {
        p = bt->bare_ring + i * BENCH_BARE_STEP;

        if (bt->cipher->evp == NULL) {
            memcpy(bt->out, p, BENCH_CHUNK);

        } else if (!bt->cipher->aead) {
            if (!EVP_DecryptUpdate(bt->dec, bt->out, &n, p, BENCH_CHUNK)) {
                return -1;
            }

        } else {
            bench_nonce(bt, bt->dec_count++, nonce);

            if (!EVP_DecryptInit_ex(bt->dec, NULL, NULL, NULL, nonce)
                || !EVP_DecryptUpdate(bt->dec, bt->out, &n, p, BENCH_CHUNK)
                || !EVP_CIPHER_CTX_ctrl(bt->dec, EVP_CTRL_AEAD_SET_TAG,
                                        BENCH_TAG_LEN,
                                        (void *) (p + BENCH_CHUNK))
                || EVP_DecryptFinal_ex(bt->dec, bt->out + n, &fin) <= 0)
            {
                return -1;
            }
        }

        if (bt->verify && memcmp(bt->out, bt->in, BENCH_CHUNK) != 0) {
            return -1;
        }
    }

    return 0;
}


/* one cipher and option set: seal and open, codec and bare */

static int
bench_row(const bench_cipher_t *c, uint8_t options, double seconds,
    int *failed)
{
    int           i, rc;
    bench_t       bt;
    bench_rate_t  codec_seal, bare_seal, codec_open, bare_open;

    memset(&bt, 0, sizeof(bench_t));
    bt.cipher = c;
    rc = -1;

    bt.session.security = c->security;
    bt.session.options = options;
    bt.session.command = VMESS_CMD_TCP;
    memcpy(bt.session.req_key, bench_key, 16);
    memcpy(bt.session.req_iv, bench_key + 16, 16);
    memcpy(bt.session.resp_key, bench_key + 8, 16);
    memcpy(bt.session.resp_iv, bench_key + 4, 16);

    bt.in = malloc(BENCH_CHUNK);
    bt.out = malloc(BENCH_OUT_SIZE);
    bt.staging = malloc(VMESS_STAGING_SIZE);
    bt.codec_ring = malloc((size_t) BENCH_BATCH * BENCH_OUT_SIZE);
    bt.bare_ring = malloc((size_t) BENCH_BATCH * BENCH_BARE_STEP);

    if (bt.in == NULL || bt.out == NULL || bt.staging == NULL
        || bt.codec_ring == NULL || bt.bare_ring == NULL)
    {
        fprintf(stderr, "out of memory\n");
        goto done;
    }

    for (i = 0; i < BENCH_CHUNK; i++) {
        bt.in[i] = (uint8_t) (i * 7 + i / 256);
    }

    /* a first untimed round trip checks that both sides really work */
    bt.verify = 1;

    if (bench_bare_init(&bt) != 0 || bench_bare_ring(&bt) != 0
        || bench_bare_open(&bt) != 0)
    {
        printf("%-18s 0x%02x  EVP loop failed\n", c->name, options);
        goto done;
    }

    if (bench_codec_init(&bt) != 0 || bench_codec_ring(&bt) != 0
        || bench_codec_open(&bt) != 0)
    {
        goto codec_failed;
    }

    bt.verify = 0;

    if (bench_pair(&bt, NULL, bench_codec_seal, NULL, bench_bare_seal,
                   seconds, &codec_seal, &bare_seal)
        != 0
        || bench_pair(&bt, bench_codec_ring, bench_codec_open,
                      bench_bare_ring, bench_bare_open, seconds,
                      &codec_open, &bare_open)
           != 0)
    {
        if (bt.rc != VMESS_OK) {
            goto codec_failed;
        }

        printf("%-18s 0x%02x  EVP loop failed\n", c->name, options);
        goto done;
    }

    bench_print(c, options, "seal", &codec_seal, &bare_seal, failed);
    bench_print(c, options, "open", &codec_open, &bare_open, failed);

    rc = 0;
    goto done;

codec_failed:

    printf("%-18s 0x%02x  codec failed: %s\n", c->name, options,
           vmess_strerror(bt.rc));

done:

    bench_free(&bt);

    return rc;
}


static void
bench_print(const bench_cipher_t *c, uint8_t options, const char *op,
    const bench_rate_t *codec, const bench_rate_t *bare, int *failed)
{
    double       ratio;
    const char  *gate;

    ratio = codec->rate / bare->rate;

    if (!c->gated) {
        gate = "-";

    } else if (ratio >= BENCH_GATE) {
        gate = "PASS";

    } else {
        gate = "FAIL";
        *failed = 1;
    }

    printf("%-18s 0x%02x  %-4s %10.1f %7.3f %10.1f %7.3f %6.1f%% %6.1f%%"
           "  %s\n",
           c->name, options, op, codec->rate / 1e6, 1e9 / codec->rate,
           bare->rate / 1e6, 1e9 / bare->rate, ratio * 100,
           codec->peak / bare->peak * 100, gate);
}


static void
bench_free(bench_t *bt)
{
    if (bt->writer_ready) {
        vmess_body_free(&bt->writer);
    }

    if (bt->ring_writer_ready) {
        vmess_body_free(&bt->ring_writer);
    }

    if (bt->reader_ready) {
        vmess_body_free(&bt->reader);
    }

    EVP_CIPHER_CTX_free(bt->enc);
    EVP_CIPHER_CTX_free(bt->ring_enc);
    EVP_CIPHER_CTX_free(bt->dec);

    free(bt->in);
    free(bt->out);
    free(bt->staging);
    free(bt->codec_ring);
    free(bt->bare_ring);
}


/* other load moves absolute rates (ratios much less): show it */

static void
bench_print_load(void)
{
    char   line[128];
    FILE  *fp;

    fp = fopen("/proc/loadavg", "r");
    if (fp == NULL) {
        return;
    }

    if (fgets(line, sizeof(line), fp) != NULL) {
        printf("load average: %s", line);
    }

    fclose(fp);
}


int
main(int argc, char **argv)
{
    int     failed, broken;
    size_t  i, j;
    double  seconds;

    seconds = 0.5;

    if (argc > 1) {
        seconds = atof(argv[1]);

        if (seconds <= 0) {
            fprintf(stderr, "usage: %s [seconds per measurement]\n",
                    argv[0]);
            return 2;
        }
    }

    for (i = 0; i < sizeof(bench_pad); i++) {
        bench_pad[i] = (uint8_t) (0xa5 ^ i);
    }

    printf("body codec vs bare EVP, %d-byte chunks, out-of-place, "
           "best of %d x %.2f s\n%s\n"
           "gate: codec >= %.0f%% of bare EVP (aes-128-gcm, "
           "chacha20-poly1305); \"none\" compares with memcpy\n"
           "ratio: codec/bare of the best rates; peak: of the fastest "
           "single batches (%d KiB),\n"
           "which other load on the host disturbs less\n",
           BENCH_CHUNK, BENCH_ROUNDS, seconds,
           OpenSSL_version(OPENSSL_VERSION), BENCH_GATE * 100,
           BENCH_BATCH * BENCH_CHUNK / 1024);
    bench_print_load();
    printf("\n");

    printf("%-18s %-5s %-4s %10s %7s %10s %7s %7s %7s  %s\n",
           "cipher", "opt", "op", "codec MB/s", "ns/B", "bare MB/s",
           "ns/B", "ratio", "peak", "gate");

    failed = 0;
    broken = 0;

    for (i = 0; i < sizeof(bench_ciphers) / sizeof(bench_ciphers[0]); i++) {
        for (j = 0; j < sizeof(bench_options); j++) {
            if (bench_row(&bench_ciphers[i], bench_options[j], seconds,
                          &failed)
                != 0)
            {
                broken = 1;
            }

            fflush(stdout);
        }
    }

    if (broken) {
        printf("\nRESULT: ERROR (a codec or EVP loop failed)\n");
        return 2;
    }

    printf("\nRESULT: %s\n", failed ? "FAIL" : "PASS");

    return failed ? 1 : 0;
}
