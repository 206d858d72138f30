/*
 * crc32c.c — CRC-32C (Castagnoli, reflected poly 0x82F63B78), as Kafka's
 * record batch v2 uses.
 *
 * Written by hand because Debian 12 ships no C library for it (zlib has only
 * CRC-32/IEEE; google/crc32c is not packaged).
 *
 * x86-64 with SSE4.2: the crc32 instruction has a latency of 3 cycles and a
 * throughput of 1, so one dependent chain runs at a third of what the unit
 * can do (measured here: ~7 GB/s, ~21% of rilld's CPU at 1 KiB records —
 * bench/RESULTS.md). Long inputs are therefore cut into three equal blocks
 * whose CRCs run as three independent chains, then joined: the CRC register
 * of A||B is the register of A advanced over len(B) zero bytes, XOR the
 * register of B started from 0. Advancing over a fixed block length is a
 * linear map on 32 bits, precomputed once as four 256-entry tables.
 * Elsewhere: slicing-by-8 tables (~1.5 GB/s).
 */
#include "base.h"

#include <pthread.h>

#define CRC_POLY 0x82F63B78u
#define CRC_LONG 8192 /* bytes per chain in the long loop (a power of two) */
#define CRC_SHORT 256 /* ... in the short loop */

static uint32_t crc_tab[8][256];
static uint32_t crc_long_shift[4][256], crc_short_shift[4][256];
static int crc_have_hw;
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init_tables(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ CRC_POLY : c >> 1;
        crc_tab[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++) crc_tab[t][i] = (crc_tab[t - 1][i] >> 8) ^ crc_tab[0][crc_tab[t - 1][i] & 0xff];
}

/* ---- advancing a CRC register over zero bytes (GF(2) 32x32 matrices) ---- */

/* mat is 32 columns: mat[i] is the image of bit i. */
static uint32_t gf2_apply(const uint32_t *mat, uint32_t vec) {
    uint32_t sum = 0;
    for (int i = 0; vec; i++, vec >>= 1)
        if (vec & 1) sum ^= mat[i];
    return sum;
}

static void gf2_square(uint32_t *out, const uint32_t *mat) {
    for (int i = 0; i < 32; i++) out[i] = gf2_apply(mat, mat[i]);
}

/* The operator that advances a register over `len` zero bytes (len a power
 * of two >= 1). */
static void crc_zeros_op(uint32_t op[32], size_t len) {
    uint32_t a[32], b[32];
    a[0] = CRC_POLY; /* one zero bit */
    for (int i = 1; i < 32; i++) a[i] = 1u << (i - 1);
    gf2_square(b, a); /* 2 bits */
    gf2_square(a, b); /* 4 bits */
    gf2_square(b, a); /* 8 bits = 1 byte */
    uint32_t *cur = b, *other = a;
    for (size_t n = 1; n < len; n <<= 1) { /* square until 2^k == len bytes */
        gf2_square(other, cur);
        uint32_t *t = cur;
        cur = other;
        other = t;
    }
    memcpy(op, cur, sizeof(uint32_t) * 32);
}

static void crc_shift_table(uint32_t tab[4][256], size_t len) {
    uint32_t op[32];
    crc_zeros_op(op, len);
    for (uint32_t n = 0; n < 256; n++)
        for (int k = 0; k < 4; k++) tab[k][n] = gf2_apply(op, n << (8 * k));
}

static inline uint32_t crc_shift(uint32_t tab[4][256], uint32_t crc) {
    return tab[0][crc & 0xff] ^ tab[1][(crc >> 8) & 0xff] ^ tab[2][(crc >> 16) & 0xff] ^ tab[3][crc >> 24];
}

static uint32_t crc_sw(uint32_t crc, const uint8_t *p, size_t n) {
    while (n >= 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
        crc = crc_tab[7][lo & 0xff] ^ crc_tab[6][(lo >> 8) & 0xff] ^ crc_tab[5][(lo >> 16) & 0xff] ^
              crc_tab[4][lo >> 24] ^ crc_tab[3][hi & 0xff] ^ crc_tab[2][(hi >> 8) & 0xff] ^
              crc_tab[1][(hi >> 16) & 0xff] ^ crc_tab[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--) crc = crc_tab[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__)
static inline uint64_t crc_ld64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Three chains of `blk` bytes each, joined with the shift table for blk. */
__attribute__((target("sse4.2"))) static inline uint64_t crc_hw3(uint64_t c0, const uint8_t **pp, size_t blk,
                                                                  uint32_t tab[4][256]) {
    const uint8_t *p = *pp, *end = p + blk;
    uint64_t c1 = 0, c2 = 0;
    do {
        c0 = __builtin_ia32_crc32di(c0, crc_ld64(p));
        c1 = __builtin_ia32_crc32di(c1, crc_ld64(p + blk));
        c2 = __builtin_ia32_crc32di(c2, crc_ld64(p + 2 * blk));
        p += 8;
    } while (p < end);
    c0 = crc_shift(tab, (uint32_t)c0) ^ (uint32_t)c1;
    c0 = crc_shift(tab, (uint32_t)c0) ^ (uint32_t)c2;
    *pp = end + 2 * blk;
    return c0;
}

__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const uint8_t *p, size_t n) {
    uint64_t c = crc;
    while (n && ((uintptr_t)p & 7)) {
        c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
        n--;
    }
    while (n >= 3 * CRC_LONG) {
        c = crc_hw3(c, &p, CRC_LONG, crc_long_shift);
        n -= 3 * CRC_LONG;
    }
    while (n >= 3 * CRC_SHORT) {
        c = crc_hw3(c, &p, CRC_SHORT, crc_short_shift);
        n -= 3 * CRC_SHORT;
    }
    while (n >= 8) {
        c = __builtin_ia32_crc32di(c, crc_ld64(p));
        p += 8;
        n -= 8;
    }
    while (n--) c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
    return (uint32_t)c;
}
#endif

/* Runs once, whichever thread asks first (no half-built tables). */
static void crc_init(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    crc_have_hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
#else
    crc_have_hw = 0;
#endif
    crc_init_tables();
    crc_shift_table(crc_long_shift, CRC_LONG);
    crc_shift_table(crc_short_shift, CRC_SHORT);
}

uint32_t rb_crc32c(uint32_t crc, const void *data, size_t n) {
    const uint8_t *p = data;
    pthread_once(&crc_once, crc_init);
    crc = ~crc;
#if defined(__x86_64__)
    if (crc_have_hw) return ~crc_hw(crc, p, n);
#endif
    return ~crc_sw(crc, p, n);
}

uint32_t rb__crc32c_sw(uint32_t crc, const void *data, size_t n) {
    pthread_once(&crc_once, crc_init);
    return ~crc_sw(~crc, data, n);
}
