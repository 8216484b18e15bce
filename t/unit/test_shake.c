/*
 * SHAKE128 stream: known answers from shake.json and byte-for-byte
 * agreement with OpenSSL's one-shot SHAKE128 when squeezed in pieces.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "vmess.h"
#include "unit.h"


#define TEST_SHAKE_MAX  1000


static void test_vectors(void);
static void test_against_openssl(void);
static int openssl_shake128(const uint8_t *seed, size_t seed_len,
    uint8_t *out, size_t len);


static const char  *test_ivs[] = {
    "0f1e2d3c4b5a69788796a5b4c3d2e1f0",     /* request IV */
    "4179529caf32c8cca4a1772697d3c8b1",     /* AEAD response IV */
    "d79d4b62797c660ee53b91001ab31adc"      /* legacy response IV */
};


static void
test_vectors(void)
{
    size_t            i, j, len, count;
    uint8_t           iv[16], got[64];
    uint8_t          *want;
    uint16_t          mask;
    vmess_shake128_t  sh;

    for (i = 0; i < sizeof(test_ivs) / sizeof(test_ivs[0]); i++) {
        unit_hex_decode(test_ivs[i], iv, sizeof(iv));

        want = vec_hex(&len, "shake.%s.shake128_first_64", test_ivs[i]);
        ok(want != NULL && len == 64, "shake vector %zu present", i);
        if (want == NULL) {
            continue;
        }

        vmess_shake128_init(&sh, iv, 16);
        vmess_shake128_squeeze(&sh, got, 64);
        ok(unit_mem_eq(got, 64, want, len), "first 64 bytes, iv %s",
           test_ivs[i]);
        free(want);

        count = (size_t) vec_int("shake.%s.first_masks.count", test_ivs[i]);
        ok(count == 4, "four masks listed for iv %zu", i);

        vmess_shake128_init(&sh, iv, 16);

        for (j = 0; j < count; j++) {
            mask = vmess_shake128_next16(&sh);
            ok(mask == (uint16_t) strtoul(
                   vec_str("shake.%s.first_masks.%zu", test_ivs[i], j),
                   NULL, 16),
               "mask %zu of iv %zu is %04x", j, i, (unsigned) mask);
        }
    }
}


static int
openssl_shake128(const uint8_t *seed, size_t seed_len, uint8_t *out,
    size_t len)
{
    int          rc;
    EVP_MD_CTX  *md;

    md = EVP_MD_CTX_new();
    if (md == NULL) {
        return 0;
    }

    rc = EVP_DigestInit_ex(md, EVP_shake128(), NULL)
         && EVP_DigestUpdate(md, seed, seed_len)
         && EVP_DigestFinalXOF(md, out, len);

    EVP_MD_CTX_free(md);

    return rc;
}


/*
 * Seeds of lengths around the rate (167, 168, 169) and squeezes in odd
 * piece sizes that straddle block boundaries.
 */

static void
test_against_openssl(void)
{
    int               same;
    size_t            s, p, i, n, pos, total;
    uint8_t           seed[400], want[TEST_SHAKE_MAX], got[TEST_SHAKE_MAX];
    vmess_shake128_t  sh;

    static const size_t  seed_lens[] = { 0, 1, 16, 167, 168, 169, 337, 400 };
    static const size_t  pieces[] = { 1, 3, 7, 13, 61, 167, 168, 169, 333 };
    static const size_t  totals[] = { 1, 2, 167, 168, 169, 336, 505, 1000 };

    for (i = 0; i < sizeof(seed); i++) {
        seed[i] = (uint8_t) (i * 131 + 7);
    }

    for (s = 0; s < sizeof(seed_lens) / sizeof(seed_lens[0]); s++) {
        ok(openssl_shake128(seed, seed_lens[s], want, TEST_SHAKE_MAX),
           "openssl one-shot, seed %zu bytes", seed_lens[s]);

        for (p = 0; p < sizeof(pieces) / sizeof(pieces[0]); p++) {
            same = 1;

            for (i = 0; i < sizeof(totals) / sizeof(totals[0]); i++) {
                total = totals[i];
                memset(got, 0, sizeof(got));
                vmess_shake128_init(&sh, seed, seed_lens[s]);

                for (pos = 0; pos < total; pos += n) {
                    n = pieces[p] < total - pos ? pieces[p] : total - pos;
                    vmess_shake128_squeeze(&sh, got + pos, n);
                }

                if (memcmp(got, want, total) != 0) {
                    same = 0;
                    unit_mem_eq(got, total, want, total);
                }
            }

            ok(same, "seed %zu bytes, pieces of %zu, up to %d bytes",
               seed_lens[s], pieces[p], TEST_SHAKE_MAX);
        }
    }

    /* next16 continues the same stream as squeeze */
    vmess_shake128_init(&sh, seed, 16);
    vmess_shake128_squeeze(&sh, got, 167);
    n = vmess_shake128_next16(&sh);
    openssl_shake128(seed, 16, want, 169);
    ok(n == (size_t) ((want[167] << 8) | want[168]),
       "next16 across a block boundary");

    /*
     * a connection's masks: 2-byte draws over many blocks, read from the
     * block in place, then an odd squeeze and draws at odd offsets
     */
    vmess_shake128_init(&sh, seed, 16);
    openssl_shake128(seed, 16, want, TEST_SHAKE_MAX);
    same = 1;

    for (pos = 0; pos + 2 <= 2 * 168 * 2; pos += 2) {
        n = vmess_shake128_next16(&sh);
        same &= (n == (size_t) ((want[pos] << 8) | want[pos + 1]));
    }

    vmess_shake128_squeeze(&sh, got, 1);
    same &= (got[0] == want[pos]);

    for (pos++; pos + 2 <= TEST_SHAKE_MAX; pos += 2) {
        n = vmess_shake128_next16(&sh);
        same &= (n == (size_t) ((want[pos] << 8) | want[pos + 1]));
    }

    ok(same, "next16 draws over blocks, at even and odd offsets");
}


int
main(void)
{
    vec_load();

    test_vectors();
    test_against_openssl();

    return unit_done();
}
