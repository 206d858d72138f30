/*
 * gen_corpus.c — writes the seed corpus of the batch fuzz target: small valid
 * batches in every codec (and both snappy framings), several batches back to
 * back, and a set of broken ones (bad CRC, magic, lengths, counts, codec,
 * control batch, malformed records, truncations), plus bare compressed
 * streams for the decompression mode. Each file starts with the target's
 * mode byte (see fuzz.c). Not built by CMake; regenerate with:
 *
 *   cmake --build build --target rill_proto
 *   cc -Isrc -Ibuild/gen tests/fuzz/batch/gen_corpus.c build/librill_proto.a \
 *      build/librill_base.a -lz -llz4 -lzstd -lsnappy -o /tmp/gen_corpus
 *   /tmp/gen_corpus tests/fuzz/batch/corpus
 */
#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>

#include "proto/proto.h"

static const char *g_dir;
static int g_files;

static void put_file(const char *name, uint8_t mode, const uint8_t *p, size_t len) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", g_dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(&mode, 1, 1, f) != 1 || (len && fwrite(p, 1, len, f) != len) || fclose(f)) {
        perror(path);
        exit(1);
    }
    if (len + 1 > 4096) {
        fprintf(stderr, "%s: %zu bytes, over the 4 KiB budget\n", path, len + 1);
        exit(1);
    }
    g_files++;
}

static kp_bytes_t bs(const char *s) {
    kp_bytes_t b = {(const uint8_t *)s, s ? (int32_t)strlen(s) : -1};
    return b;
}

static void fix_crc(uint8_t *b) {
    size_t total = KP_BATCH_LOG_OVERHEAD + rb_be32(b + 8);
    rb_wbe32(b + 17, rb_crc32c(0, b + 21, total - 21));
}

/* Four records: a null key, a null value, headers (one with a null value). */
static void build(rb_buf_t *b, kp_compression_t codec, int64_t pid, int16_t attrs) {
    static const kp_bytes_t hk[2] = {{(const uint8_t *)"trace", 5}, {(const uint8_t *)"", 0}};
    static const kp_bytes_t hv[2] = {{(const uint8_t *)"abc123", 6}, {NULL, -1}};
    kp_record_in_t r[4];
    memset(r, 0, sizeof(r));
    const char *keys[4] = {"user-1", NULL, "user-3", "user-1"};
    const char *vals[4] = {"{\"n\":1}", "{\"n\":2,\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxx\"}", NULL, ""};
    for (int i = 0; i < 4; i++) {
        r[i].key = bs(keys[i]);
        r[i].value = bs(vals[i]);
        r[i].timestamp = 1700000000000 + i * 5 - (i == 2 ? 30 : 0);
    }
    r[0].nheaders = 2;
    r[0].header_keys = hk;
    r[0].header_values = hv;
    r[3].nheaders = 1;
    r[3].header_keys = hk;
    r[3].header_values = hv;
    kp_batch_build(b, 0, codec, r, 4, pid, pid >= 0 ? 0 : -1, pid >= 0 ? 0 : -1, attrs);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s <corpus dir>\n", argv[0]);
        return 2;
    }
    g_dir = argv[1];
    static const char *names[] = {"none", "gzip", "snappy", "lz4", "zstd"};
    rb_buf_t b, t;
    rb_buf_init(&b);
    rb_buf_init(&t);
    char name[64];

    /* valid, each codec, as is (mode 0) and with CRC fix-up (mode 1) */
    for (int c = 0; c <= KP_COMP_ZSTD; c++) {
        rb_buf_reset(&b);
        build(&b, (kp_compression_t)c, c == 1 ? 4000 : -1, c == 1 ? KP_ATTR_TRANSACTIONAL : 0);
        snprintf(name, sizeof(name), "valid-%s", names[c]);
        put_file(name, 0, b.p, b.len);
        snprintf(name, sizeof(name), "valid-%s-fixcrc", names[c]);
        put_file(name, 1, b.p, b.len);
    }
    /* three batches back to back, different codecs */
    rb_buf_reset(&b);
    build(&b, KP_COMP_NONE, -1, 0);
    build(&b, KP_COMP_LZ4, -1, 0);
    build(&b, KP_COMP_ZSTD, 17, 0);
    put_file("valid-three-batches", 1, b.p, b.len);

    /* raw (unframed) snappy records section */
    rb_buf_reset(&b);
    build(&b, KP_COMP_NONE, -1, 0);
    {
        size_t rl = b.len - KP_BATCH_HEADER_SIZE, cl = snappy_max_compressed_length(rl);
        rb_buf_reset(&t);
        rb_buf_put(&t, b.p, KP_BATCH_HEADER_SIZE);
        rb_buf_reserve(&t, cl);
        snappy_compress((const char *)b.p + KP_BATCH_HEADER_SIZE, rl, (char *)t.p + t.len, &cl);
        t.len += cl;
        rb_wbe32(t.p + 8, (uint32_t)(t.len - KP_BATCH_LOG_OVERHEAD));
        t.p[22] = (uint8_t)((t.p[22] & ~7) | KP_COMP_SNAPPY);
        fix_crc(t.p);
        put_file("valid-snappy-raw", 0, t.p, t.len);
    }

    /* broken batches */
    rb_buf_reset(&b);
    build(&b, KP_COMP_NONE, -1, 0);
    rb_buf_reset(&t);
    rb_buf_put(&t, b.p, b.len);
    t.p[t.len - 3] ^= 0x10;
    put_file("bad-crc", 0, t.p, t.len);
    t.p[t.len - 3] ^= 0x10;
    t.p[16] = 1;
    put_file("bad-magic1", 0, t.p, t.len);
    t.p[16] = 2;
    rb_wbe32(t.p + 8, 40);
    put_file("bad-length-small", 0, t.p, t.len);
    rb_wbe32(t.p + 8, (uint32_t)(t.len - KP_BATCH_LOG_OVERHEAD));
    put_file("bad-trailing-partial", 0, t.p, t.len - 9); /* a batch cut short */
    rb_buf_put(&t, b.p, 20);
    put_file("bad-trailing-bytes", 1, t.p, t.len);
    t.len = b.len;
    rb_wbe32(t.p + 57, 5); /* records_count */
    put_file("bad-count", 1, t.p, t.len);
    rb_wbe32(t.p + 23, 4); /* last offset delta, consistent with the count */
    put_file("bad-count-consistent", 1, t.p, t.len);
    rb_wbe32(t.p + 57, 4);
    rb_wbe32(t.p + 23, 3);
    t.p[22] = (uint8_t)(t.p[22] | KP_ATTR_CONTROL);
    put_file("bad-control", 1, t.p, t.len);
    t.p[22] = (uint8_t)((t.p[22] & ~KP_ATTR_CONTROL & ~7) | 6);
    put_file("bad-codec6", 1, t.p, t.len);
    t.p[22] = (uint8_t)(t.p[22] & ~7);
    t.p[KP_BATCH_HEADER_SIZE + 3] ^= 0x02; /* inside the first record: its offset delta */
    put_file("bad-record-delta", 1, t.p, t.len);
    t.p[KP_BATCH_HEADER_SIZE + 3] ^= 0x02;
    t.p[KP_BATCH_HEADER_SIZE] = 0x7f; /* first record's length */
    put_file("bad-record-length", 1, t.p, t.len);

    /* compressed batch with a damaged stream */
    for (int c = 1; c <= KP_COMP_ZSTD; c++) {
        rb_buf_reset(&b);
        build(&b, (kp_compression_t)c, -1, 0);
        if (c == KP_COMP_SNAPPY) {
            /* snappy carries no checksum: damage the xerial chunk length */
            b.p[KP_BATCH_HEADER_SIZE + 16 + 3] ^= 0x40;
        } else {
            b.p[b.len - 2] ^= 0x55;
            b.p[KP_BATCH_HEADER_SIZE + (b.len - KP_BATCH_HEADER_SIZE) / 2] ^= 0x21;
        }
        snprintf(name, sizeof(name), "bad-stream-%s", names[c]);
        put_file(name, 1, b.p, b.len);
    }

    /* bare compressed streams for the decompression mode: a records section
     * and a short repetitive text */
    rb_buf_reset(&b);
    build(&b, KP_COMP_NONE, -1, 0);
    for (int c = 0; c <= KP_COMP_ZSTD; c++) {
        rb_buf_reset(&t);
        kp_compress((kp_compression_t)c, b.p + KP_BATCH_HEADER_SIZE, b.len - KP_BATCH_HEADER_SIZE, &t);
        snprintf(name, sizeof(name), "stream-%s", names[c]);
        put_file(name, (uint8_t)(2 + 4 * c), t.p, t.len);
    }
    {
        char text[2000];
        for (size_t i = 0; i < sizeof(text); i++) text[i] = "the quick brown fox "[i % 20];
        rb_buf_reset(&t);
        kp_compress(KP_COMP_SNAPPY, (const uint8_t *)text, sizeof(text), &t);
        put_file("stream-snappy-text", 2 + 4 * KP_COMP_SNAPPY, t.p, t.len);
        rb_buf_reset(&t);
        kp_compress(KP_COMP_GZIP, (const uint8_t *)text, sizeof(text), &t);
        put_file("stream-gzip-text", 2 + 4 * KP_COMP_GZIP, t.p, t.len);
    }
    rb_buf_free(&b);
    rb_buf_free(&t);
    printf("wrote %d files to %s\n", g_files, g_dir);
    return 0;
}
