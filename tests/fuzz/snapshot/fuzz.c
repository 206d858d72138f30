/*
 * fuzz.c (snapshot) — libFuzzer target for the producer-state snapshot
 * decoder (src/storage/producers.c): a `.snapshot` file is disk input that a
 * crash or a bad disk may leave in any shape.
 *
 * The first input byte picks a mode; the rest is the file:
 *   mode % 2 == 0  decode as is.
 *   mode % 2 == 1  first rewrite the CRC-32C field (bytes 4..7, over bytes
 *                  8..end) so that mutations get past the checksum and reach
 *                  the entry parser.
 * Whenever decoding succeeds (version 1 or 2), the table must survive
 * encode (version 2) -> decode unchanged (every producer, epoch, batch
 * window and open transaction); anything else aborts.
 */
#include <stdio.h>
#include <stdlib.h>

#include "storage/storage.h"

static void fz_die(const char *what) {
    fprintf(stderr, "fuzz_snapshot: %s\n", what);
    abort();
}

static void fz_same(const st_ptab_t *a, const st_ptab_t *b) {
    if (a->pt_n != b->pt_n) fz_die("producer count changed in a round trip");
    for (size_t i = 0; i < a->pt_nb; i++) {
        for (const st_prod_t *p = a->pt_b[i]; p; p = p->p_next) {
            const st_prod_t *q = st_pt_find(b, p->p_id);
            if (!q || q->p_epoch != p->p_epoch || q->p_n != p->p_n || q->p_last_ms != p->p_last_ms ||
                q->p_txn_first != p->p_txn_first)
                fz_die("producer changed in a round trip");
            if (memcmp(q->p_b, p->p_b, sizeof(p->p_b[0]) * (size_t)p->p_n)) fz_die("batch window changed");
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int mode = data[0];
    size_t len = size - 1;
    uint8_t *p = malloc(len ? len : 1);
    if (!p) return 0;
    memcpy(p, data + 1, len);
    if ((mode & 1) && len >= 8) rb_wbe32(p + 4, rb_crc32c(0, p + 8, len - 8));
    st_ptab_t t = {0};
    int64_t off = -1;
    if (st_pt_decode(&t, p, len, &off) == 0) {
        rb_buf_t b;
        rb_buf_init(&b);
        if (st_pt_encode(&t, off, &b) != 0) fz_die("encode failed");
        st_ptab_t u = {0};
        int64_t off2 = -1;
        if (st_pt_decode(&u, b.p, b.len, &off2) != 0 || off2 != off) fz_die("re-encoded snapshot does not decode");
        fz_same(&t, &u);
        st_pt_free(&u);
        rb_buf_free(&b);
    }
    st_pt_free(&t);
    free(p);
    return 0;
}
