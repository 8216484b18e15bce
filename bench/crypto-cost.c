/*
 * crypto-cost: CPU seconds per GiB of a bare OpenSSL EVP AEAD loop, the
 * crypto part of the "plain nginx + crypto" floor in bench/run.
 *
 *   crypto-cost [GiB [CHUNK]]   bytes per measurement, default 1 (best
 *                               of 3); plaintext bytes per chunk, default
 *                               16384 (1966 is what v2ray clients send)
 *
 * For AES-128-GCM and ChaCha20-Poly1305: seal (what the server does on
 * download) and open with tag check (upload), CHUNK bytes each, a fresh
 * 12-byte nonce per chunk as VMess does (BE16 count || IV[2..11]), out of
 * place.  CPU time is CLOCK_PROCESS_CPUTIME_ID.  One line per row:
 *
 *   aes-128-gcm seal cpu_s_per_gib=0.190 gib_per_s=5.26
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>


#define COST_CHUNK_MAX          65535
#define COST_TAG                16
#define COST_RING               16      /* sealed chunks for open */
#define COST_ROUNDS             3


typedef struct {
    const char                 *name;
    const EVP_CIPHER         *(*evp)(void);
} cost_cipher_t;


static double cost_cpu(void);
static double cost_wall(void);
static int cost_seal(EVP_CIPHER_CTX *ctx, unsigned count, const uint8_t *in,
    uint8_t *out);
static int cost_open(EVP_CIPHER_CTX *ctx, unsigned count, const uint8_t *in,
    uint8_t *out);
static void cost_nonce(unsigned count, uint8_t nonce[12]);


static const cost_cipher_t  cost_ciphers[] = {
    { "aes-128-gcm", EVP_aes_128_gcm },
    { "chacha20-poly1305", EVP_chacha20_poly1305 },
    { NULL, NULL }
};

static const uint8_t  cost_key[32] = {
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
    0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
    0x0f, 0x1e, 0x2d, 0x3c, 0x4b, 0x5a, 0x69, 0x78,
    0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0
};

static size_t  cost_chunk = 16384;

static const uint8_t  cost_iv[12] = {
    0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab
};


int
main(int argc, char **argv)
{
    int                   op, round;
    double                gib, cpu, wall, best, best_wall;
    unsigned              i, chunks;
    uint8_t              *in, *out, *ring;
    EVP_CIPHER_CTX       *enc, *dec;
    const cost_cipher_t  *c;

    gib = (argc > 1) ? atof(argv[1]) : 1.0;
    if (argc > 2) {
        cost_chunk = (size_t) atol(argv[2]);
    }

    if (gib <= 0 || cost_chunk == 0 || cost_chunk > COST_CHUNK_MAX) {
        fprintf(stderr, "usage: crypto-cost [GiB [CHUNK]]\n");
        return 2;
    }

    chunks = (unsigned) (gib * 1073741824.0 / cost_chunk);

    in = malloc(cost_chunk);
    out = malloc(cost_chunk + COST_TAG);
    ring = malloc(COST_RING * (cost_chunk + COST_TAG));
    if (in == NULL || out == NULL || ring == NULL) {
        fprintf(stderr, "crypto-cost: out of memory\n");
        return 1;
    }

    memset(in, 0x5a, cost_chunk);

    for (c = cost_ciphers; c->name != NULL; c++) {
        enc = EVP_CIPHER_CTX_new();
        dec = EVP_CIPHER_CTX_new();

        if (enc == NULL || dec == NULL
            || !EVP_EncryptInit_ex(enc, c->evp(), NULL, cost_key, NULL)
            || !EVP_DecryptInit_ex(dec, c->evp(), NULL, cost_key, NULL))
        {
            fprintf(stderr, "crypto-cost: %s init failed\n", c->name);
            return 1;
        }

        for (i = 0; i < COST_RING; i++) {
            if (cost_seal(enc, i, in, ring + i * (cost_chunk + COST_TAG))
                != 0)
            {
                fprintf(stderr, "crypto-cost: %s seal failed\n", c->name);
                return 1;
            }
        }

        for (op = 0; op < 2; op++) {
            best = 0;
            best_wall = 0;

            for (round = 0; round < COST_ROUNDS; round++) {
                cpu = cost_cpu();
                wall = cost_wall();

                for (i = 0; i < chunks; i++) {
                    if (op == 0) {
                        if (cost_seal(enc, i & 0xffff, in, out) != 0) {
                            fprintf(stderr, "crypto-cost: %s seal failed\n",
                                    c->name);
                            return 1;
                        }

                    } else if (cost_open(dec, i % COST_RING,
                                         ring + (i % COST_RING)
                                                * (cost_chunk + COST_TAG),
                                         out)
                               != 0)
                    {
                        fprintf(stderr, "crypto-cost: %s open failed\n",
                                c->name);
                        return 1;
                    }
                }

                cpu = cost_cpu() - cpu;
                wall = cost_wall() - wall;

                if (best == 0 || cpu < best) {
                    best = cpu;
                    best_wall = wall;
                }
            }

            gib = (double) chunks * cost_chunk / 1073741824.0;

            printf("%s %s cpu_s_per_gib=%.3f gib_per_s=%.2f\n", c->name,
                   op == 0 ? "seal" : "open", best / gib, gib / best_wall);
        }

        EVP_CIPHER_CTX_free(enc);
        EVP_CIPHER_CTX_free(dec);
    }

    free(in);
    free(out);
    free(ring);

    return 0;
}


static double
cost_cpu(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);

    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}


static double
cost_wall(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}


static void
cost_nonce(unsigned count, uint8_t nonce[12])
{
    memcpy(nonce, cost_iv, 12);
    nonce[0] = (uint8_t) (count >> 8);
    nonce[1] = (uint8_t) count;
}


/* in: cost_chunk bytes; out: ciphertext || tag */
static int
cost_seal(EVP_CIPHER_CTX *ctx, unsigned count, const uint8_t *in,
    uint8_t *out)
{
    int      n, m;
    uint8_t  nonce[12];

    cost_nonce(count, nonce);

    if (!EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce)
        || !EVP_EncryptUpdate(ctx, out, &n, in, (int) cost_chunk)
        || !EVP_EncryptFinal_ex(ctx, out + n, &m)
        || !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, COST_TAG,
                                out + cost_chunk))
    {
        return -1;
    }

    return 0;
}


/* in: ciphertext || tag; the tag is checked */
static int
cost_open(EVP_CIPHER_CTX *ctx, unsigned count, const uint8_t *in,
    uint8_t *out)
{
    int      n, m;
    uint8_t  nonce[12];

    cost_nonce(count, nonce);

    if (!EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, nonce)
        || !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, COST_TAG,
                                (void *) (in + cost_chunk))
        || !EVP_DecryptUpdate(ctx, out, &n, in, (int) cost_chunk)
        || EVP_DecryptFinal_ex(ctx, out + n, &m) <= 0)
    {
        return -1;
    }

    return 0;
}
