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

/* n may be 0: the right shift is masked, not by 64 */
#define vmess_rotl64(x, n)   (((x) << (n)) | ((x) >> ((64 - (n)) & 63)))

/* lane (x, y) of the state */
#define VMESS_LANE(x, y)     ((x) + 5 * (y))

/*
 * theta's column sums applied to lane (x, y), rotated by rho's offset r
 * and moved by pi to (y, 2x + 3y): written out lane by lane, so that
 * every index is a constant and no table is read
 */
#define VMESS_KECCAK_MOVE(x, y, r)                                          \
    b[VMESS_LANE(y, (2 * (x) + 3 * (y)) % 5)] =                             \
        vmess_rotl64(a[VMESS_LANE(x, y)] ^ d[x], r)

/* the lanes of row y, x = 0..4, with their offsets */
#define VMESS_KECCAK_MOVE_ROW(y, r0, r1, r2, r3, r4)                        \
    VMESS_KECCAK_MOVE(0, y, r0); VMESS_KECCAK_MOVE(1, y, r1);               \
    VMESS_KECCAK_MOVE(2, y, r2); VMESS_KECCAK_MOVE(3, y, r3);               \
    VMESS_KECCAK_MOVE(4, y, r4)

#define VMESS_KECCAK_CHI(x, y)                                              \
    a[VMESS_LANE(x, y)] = b[VMESS_LANE(x, y)]                               \
        ^ (~b[VMESS_LANE(((x) + 1) % 5, y)] & b[VMESS_LANE(((x) + 2) % 5, y)])

#define VMESS_KECCAK_CHI_ROW(y)                                             \
    VMESS_KECCAK_CHI(0, y); VMESS_KECCAK_CHI(1, y);                         \
    VMESS_KECCAK_CHI(2, y); VMESS_KECCAK_CHI(3, y); VMESS_KECCAK_CHI(4, y)

#define VMESS_KECCAK_COLUMN(x)                                              \
    (a[(x)] ^ a[(x) + 5] ^ a[(x) + 10] ^ a[(x) + 15] ^ a[(x) + 20])


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


static void
vmess_keccak_f1600(uint64_t st[25])
{
    int       round;
    uint64_t  a[25], b[25], c[5], d[5];

    memcpy(a, st, sizeof(a));

    for (round = 0; round < VMESS_KECCAK_ROUNDS; round++) {

        /* theta */
        c[0] = VMESS_KECCAK_COLUMN(0);
        c[1] = VMESS_KECCAK_COLUMN(1);
        c[2] = VMESS_KECCAK_COLUMN(2);
        c[3] = VMESS_KECCAK_COLUMN(3);
        c[4] = VMESS_KECCAK_COLUMN(4);

        d[0] = c[4] ^ vmess_rotl64(c[1], 1);
        d[1] = c[0] ^ vmess_rotl64(c[2], 1);
        d[2] = c[1] ^ vmess_rotl64(c[3], 1);
        d[3] = c[2] ^ vmess_rotl64(c[4], 1);
        d[4] = c[3] ^ vmess_rotl64(c[0], 1);

        /* theta applied, rho and pi: the offsets of FIPS 202 table 2 */
        VMESS_KECCAK_MOVE_ROW(0, 0, 1, 62, 28, 27);
        VMESS_KECCAK_MOVE_ROW(1, 36, 44, 6, 55, 20);
        VMESS_KECCAK_MOVE_ROW(2, 3, 10, 43, 25, 39);
        VMESS_KECCAK_MOVE_ROW(3, 41, 45, 15, 21, 8);
        VMESS_KECCAK_MOVE_ROW(4, 18, 2, 61, 56, 14);

        /* chi */
        VMESS_KECCAK_CHI_ROW(0);
        VMESS_KECCAK_CHI_ROW(1);
        VMESS_KECCAK_CHI_ROW(2);
        VMESS_KECCAK_CHI_ROW(3);
        VMESS_KECCAK_CHI_ROW(4);

        /* iota */
        a[0] ^= vmess_keccak_rc[round];
    }

    memcpy(st, a, sizeof(a));
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


/*
 * Two bytes per chunk for the whole connection: they are read straight
 * from the block the last permutation left (the rate is even, so a
 * stream of 2-byte draws never straddles blocks); only a block used up,
 * or an odd offset left by a caller's squeeze, takes the general path.
 */

uint16_t
vmess_shake128_next16(vmess_shake128_t *sh)
{
    size_t   i;
    uint8_t  b[2];

    i = sh->offset;

    if (i + 2 > VMESS_SHAKE128_RATE) {
        vmess_shake128_squeeze(sh, b, 2);
        return (uint16_t) ((b[0] << 8) | b[1]);
    }

    sh->offset = i + 2;

    return (uint16_t) ((vmess_shake128_byte(sh, i) << 8)
                       | vmess_shake128_byte(sh, i + 1));
}
