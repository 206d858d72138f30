/*
 * fuzz.c (batch) — libFuzzer target for record batch v2 validation,
 * iteration and the decompressors.
 *
 * The first input byte picks a mode; the rest is the payload:
 *   mode % 4 == 0  validate the payload as a produce records blob, as is.
 *   mode % 4 == 1  the same after rewriting each batch's CRC-32C, so that
 *                  mutations get past the checksum and reach the records.
 *   mode % 4 == 2  decompress the payload with codec (mode / 4) % 5 under a
 *                  small cap, then walk it as a records section.
 *   mode % 4 == 3  as 1, with a tiny decompression cap.
 * Whenever validation accepts a blob, every batch in it must iterate cleanly:
 * decompression within the cap succeeds, records_count records parse with
 * offset deltas 0..n-1 and end exactly at the section's end. Anything else
 * aborts (a disagreement between the validator and the iterator is a bug).
 */
#include <stdio.h>
#include <stdlib.h>

#include "proto/proto.h"

#define FZ_MAX_BATCH (64 * 1024)
#define FZ_CAP (256 * 1024)
#define FZ_TINY_CAP 512

static void fz_die(const char *what) {
    fprintf(stderr, "fuzz_batch: %s\n", what);
    abort();
}

/* Rewrites the CRC of every whole batch, walking by batch length. */
static void fz_fix_crcs(uint8_t *p, size_t len) {
    size_t off = 0;
    while (len - off >= KP_BATCH_HEADER_SIZE) {
        uint32_t bl = rb_be32(p + off + 8);
        if (bl < KP_BATCH_HEADER_SIZE - KP_BATCH_LOG_OVERHEAD || bl > len - off - KP_BATCH_LOG_OVERHEAD) return;
        size_t total = KP_BATCH_LOG_OVERHEAD + bl;
        rb_wbe32(p + off + 17, rb_crc32c(0, p + off + 21, total - 21));
        off += total;
    }
}

/* Walks a records section; returns how many records parsed. */
static int32_t fz_walk(const uint8_t *p, size_t len, bool strict, int32_t want) {
    static const uint8_t none[1];
    if (!p) p = none; /* an empty buffer may have p == NULL */
    rb_rd_t rd;
    rb_rd_init(&rd, p, len);
    int32_t n = 0;
    kp_record_t r;
    while (rb_rd_left(&rd) && kp_record_next(&rd, &r) == 0) {
        if (r.key.len > 0 && (r.key.p < p || r.key.p + r.key.len > p + len)) fz_die("key outside input");
        if (r.value.len > 0 && (r.value.p < p || r.value.p + r.value.len > p + len)) fz_die("value outside input");
        if (r.nheaders && (r.headers < p || r.headers + r.headers_len > p + len)) fz_die("headers outside input");
        if (strict && r.offset_delta != n) fz_die("accepted batch has a wrong offset delta");
        n++;
    }
    if (strict && (n != want || !rb_rd_ok(&rd) || rb_rd_left(&rd) != 0)) fz_die("accepted batch does not iterate");
    return n;
}

static void fz_iterate(const uint8_t *p, size_t len, size_t cap, const kp_batch_info_t *info) {
    size_t off = 0;
    int64_t nrec = 0;
    int32_t nb = 0;
    rb_buf_t plain;
    rb_buf_init(&plain);
    while (off < len) {
        kp_batch_hdr_t h;
        if (kp_batch_hdr_parse(p + off, len - off, &h)) fz_die("accepted blob has a bad header");
        size_t total = KP_BATCH_LOG_OVERHEAD + (size_t)h.batch_length;
        kp_compression_t codec = (kp_compression_t)(h.attributes & KP_ATTR_COMPRESSION_MASK);
        rb_buf_reset(&plain);
        if (kp_decompress(codec, p + off + KP_BATCH_HEADER_SIZE, total - KP_BATCH_HEADER_SIZE, cap, &plain))
            fz_die("accepted batch does not decompress");
        fz_walk(plain.p, plain.len, true, h.records_count);
        nrec += h.records_count;
        nb++;
        off += total;
    }
    if (nb != info->nbatches || nrec != info->nrecords) fz_die("info disagrees with the blob");
    rb_buf_free(&plain);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    uint8_t mode = data[0];
    size_t len = size - 1;
    uint8_t *p = malloc(len ? len : 1);
    if (!p) return 0;
    memcpy(p, data + 1, len);
    if (mode % 4 == 2) {
        rb_buf_t out;
        rb_buf_init(&out);
        kp_compression_t codec = (kp_compression_t)((mode / 4) % 5);
        int rc = kp_decompress(codec, p, len, FZ_CAP, &out);
        if (rc == 0) {
            if (out.len > FZ_CAP) fz_die("decompressed past the cap");
            fz_walk(out.p, out.len, false, 0);
            /* what came out must survive our own compressor */
            rb_buf_t z, back;
            rb_buf_init(&z);
            rb_buf_init(&back);
            if (kp_compress(codec, out.p, out.len, &z)) fz_die("compress failed");
            if (kp_decompress(codec, z.p, z.len, FZ_CAP, &back) || back.len != out.len ||
                (out.len && memcmp(back.p, out.p, out.len)))
                fz_die("compress/decompress round trip differs");
            rb_buf_free(&z);
            rb_buf_free(&back);
        } else if (out.len != 0) {
            fz_die("failed decompression left output behind");
        }
        rb_buf_free(&out);
    } else {
        if (mode % 4 != 0) fz_fix_crcs(p, len);
        kp_batch_limits_t lim = {FZ_MAX_BATCH, mode % 4 == 3 ? FZ_TINY_CAP : FZ_CAP, true};
        kp_batch_info_t info;
        char msg[256];
        int rc = kp_batch_validate(p, len, &lim, &info, msg, sizeof(msg));
        if (rc == 0) fz_iterate(p, len, lim.max_decompressed_bytes, &info);
        else if (strlen(msg) == 0) fz_die("rejection without a reason");
    }
    free(p);
    return 0;
}
