/*
 * SHAKE128 as an incremental byte stream (FIPS 202): a Keccak-f[1600]
 * sponge with rate 168 and SHAKE padding.  OpenSSL 3.0 can only squeeze
 * an XOF once, and VMess draws 2 to 4 bytes per chunk for the whole life
 * of a connection, so the core keeps its own sponge.  The state is plain
 * data: no allocation, copyable, nothing to free.
 */

#include <string.h>

#include "vmess.h"


#define VMESS_SHAKE128_RATE  168
#define VMESS_KECCAK_ROUNDS  24

#define vmess_rotl64(x, n)   (((x) << (n)) | ((x) >> (64 - (n))))


static void vmess_keccak_f1600(uint64_t st[25]);
static uint8_t vmess_shake128_byte(const vmess_shake128_t *sh, size_t i);


static const uint64_t  vmess_keccak_rc[VMESS_KECCAK_ROUNDS] = {
    0x0000000000000001ULL, 0x0000000000008082ULL, 0x800000000000808aULL,
    0x8000000080008000ULL, 0x000000000000808bULL, 0x0000000080000001ULL,
    0x8000000080008081ULL, 0x8000000000008009ULL, 0x000000000000008aULL,
    0x0000000000000088ULL, 0x0000000080008009ULL, 0x000000008000000aULL,
    0x000000008000808bULL, 0x800000000000008bULL, 0x8000000000008089ULL,
    0x8000000000008003ULL, 0x8000000000008002ULL, 0x8000000000000080ULL,
    0x000000000000800aULL, 0x800000008000000aULL, 0x8000000080008081ULL,
    0x8000000000008080ULL, 0x0000000080000001ULL, 0x8000000080008008ULL
};

/* rho offsets along the pi walk that starts at lane 1 */
static const unsigned  vmess_keccak_rho[24] = {
    1, 3, 6, 10, 15, 21, 28, 36, 45, 55, 2, 14,
    27, 41, 56, 8, 25, 43, 62, 18, 39, 61, 20, 44
};

/* the lane each step of that walk moves to */
static const unsigned  vmess_keccak_pi[24] = {
    10, 7, 11, 17, 18, 3, 5, 16, 8, 21, 24, 4,
    15, 23, 19, 13, 12, 2, 20, 14, 22, 9, 6, 1
};


static void
vmess_keccak_f1600(uint64_t st[25])
{
    int       round;
    unsigned  x, y;
    uint64_t  c[5], d, lane, next;

    for (round = 0; round < VMESS_KECCAK_ROUNDS; round++) {

        /* theta */
        for (x = 0; x < 5; x++) {
            c[x] = st[x] ^ st[x + 5] ^ st[x + 10] ^ st[x + 15] ^ st[x + 20];
        }

        for (x = 0; x < 5; x++) {
            d = c[(x + 4) % 5] ^ vmess_rotl64(c[(x + 1) % 5], 1);

            for (y = 0; y < 25; y += 5) {
                st[y + x] ^= d;
            }
        }

        /* rho and pi in one walk over the 24 moving lanes */
        lane = st[1];

        for (x = 0; x < 24; x++) {
            next = st[vmess_keccak_pi[x]];
            st[vmess_keccak_pi[x]] = vmess_rotl64(lane, vmess_keccak_rho[x]);
            lane = next;
        }

        /* chi */
        for (y = 0; y < 25; y += 5) {
            for (x = 0; x < 5; x++) {
                c[x] = st[y + x];
            }

            for (x = 0; x < 5; x++) {
                st[y + x] = c[x] ^ (~c[(x + 1) % 5] & c[(x + 2) % 5]);
            }
        }

        /* iota */
        st[0] ^= vmess_keccak_rc[round];
    }
}


/* lanes are little-endian: byte i of the rate is in lane i / 8 */
static uint8_t
vmess_shake128_byte(const vmess_shake128_t *sh, size_t i)
{
    return (uint8_t) (sh->state[i / 8] >> (8 * (i % 8)));
}


void
vmess_shake128_init(vmess_shake128_t *sh, const uint8_t *seed, size_t len)
{
    size_t  i, pos;

    memset(sh->state, 0, sizeof(sh->state));
    pos = 0;

    for (i = 0; i < len; i++) {
        sh->state[pos / 8] ^= (uint64_t) seed[i] << (8 * (pos % 8));

        if (++pos == VMESS_SHAKE128_RATE) {
            vmess_keccak_f1600(sh->state);
            pos = 0;
        }
    }

    /* SHAKE domain bits 1111 and the first pad bit, then the last pad bit */
    sh->state[pos / 8] ^= (uint64_t) 0x1f << (8 * (pos % 8));
    sh->state[(VMESS_SHAKE128_RATE - 1) / 8] ^=
        (uint64_t) 0x80 << (8 * ((VMESS_SHAKE128_RATE - 1) % 8));

    vmess_keccak_f1600(sh->state);
    sh->offset = 0;
}


void
vmess_shake128_squeeze(vmess_shake128_t *sh, uint8_t *out, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (sh->offset == VMESS_SHAKE128_RATE) {
            vmess_keccak_f1600(sh->state);
            sh->offset = 0;
        }

        out[i] = vmess_shake128_byte(sh, sh->offset++);
    }
}


uint16_t
vmess_shake128_next16(vmess_shake128_t *sh)
{
    uint8_t  b[2];

    vmess_shake128_squeeze(sh, b, 2);

    return (uint16_t) ((b[0] << 8) | b[1]);
}
