/*
 * batch.c (tests) — record batch v2 and the codecs: round trips through
 * build -> validate -> iterate for every codec, every rejection with its
 * Kafka error code, decompression bombs per codec, truncation at every byte,
 * and the framings real clients write (xerial snappy, raw snappy,
 * concatenated gzip members / lz4 frames / zstd frames).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <lz4frame.h>
#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

#include "proto/proto.h"

#define MiB (1024u * 1024u)

static const kp_compression_t codecs[] = {KP_COMP_NONE, KP_COMP_GZIP, KP_COMP_SNAPPY, KP_COMP_LZ4, KP_COMP_ZSTD};

static kp_batch_limits_t lim_default(void) {
    kp_batch_limits_t l = {1 * MiB, 8 * MiB, true};
    return l;
}

static kp_bytes_t bs(const char *s) {
    kp_bytes_t b = {(const uint8_t *)s, s ? (int32_t)strlen(s) : -1};
    return b;
}

/* Recomputes the CRC of the batch at b after a test edited it. */
static void fix_crc(uint8_t *b) {
    size_t total = KP_BATCH_LOG_OVERHEAD + rb_be32(b + 8);
    rb_wbe32(b + 17, rb_crc32c(0, b + 21, total - 21));
}

static int validate(const rb_buf_t *b, kp_batch_info_t *info, char *msg, size_t msg_size) {
    kp_batch_limits_t l = lim_default();
    return kp_batch_validate(b->p, b->len, &l, info, msg, msg_size);
}

static int validate_rc(const uint8_t *p, size_t len) {
    kp_batch_limits_t l = lim_default();
    kp_batch_info_t info;
    char msg[256];
    return kp_batch_validate(p, len, &l, &info, msg, sizeof(msg));
}

/* A batch of three simple records. */
static void build_small(rb_buf_t *b, kp_compression_t codec) {
    kp_record_in_t r[3];
    memset(r, 0, sizeof(r));
    for (int i = 0; i < 3; i++) {
        r[i].key = bs("key");
        r[i].value = bs("value");
        r[i].timestamp = 1700000000000 + i;
    }
    kp_batch_build(b, 0, codec, r, 3, -1, -1, -1, 0);
}

/* A batch whose records section is given raw (uncompressed), header fields
 * chosen by the test, CRC correct. */
static void build_raw(rb_buf_t *b, const uint8_t *recs, size_t recs_len, int32_t count, int32_t last_delta,
                      int16_t attrs) {
    rb_buf_reset(b);
    rb_buf_u64(b, 0);
    rb_buf_u32(b, (uint32_t)(KP_BATCH_HEADER_SIZE - KP_BATCH_LOG_OVERHEAD + recs_len));
    rb_buf_u32(b, 0);
    rb_buf_u8(b, 2);
    rb_buf_u32(b, 0);
    rb_buf_u16(b, (uint16_t)attrs);
    rb_buf_u32(b, (uint32_t)last_delta);
    rb_buf_u64(b, 1000);
    rb_buf_u64(b, 1000);
    rb_buf_u64(b, (uint64_t)-1);
    rb_buf_u16(b, (uint16_t)-1);
    rb_buf_u32(b, (uint32_t)-1);
    rb_buf_u32(b, (uint32_t)count);
    rb_buf_put(b, recs, recs_len);
    fix_crc(b->p);
}

/* One record body with chosen fields, length-prefixed, appended to out. */
static void put_record(rb_buf_t *out, int32_t offset_delta, int32_t key_len, int32_t value_len, int32_t nheaders,
                       int32_t hkey_len, int extra_len) {
    rb_buf_t body;
    rb_buf_init(&body);
    rb_buf_u8(&body, 0);
    rb_buf_varint(&body, 0);
    rb_buf_varint(&body, offset_delta);
    rb_buf_varint(&body, key_len);
    for (int32_t i = 0; i < key_len; i++) rb_buf_u8(&body, 'k');
    rb_buf_varint(&body, value_len);
    for (int32_t i = 0; i < value_len; i++) rb_buf_u8(&body, 'v');
    rb_buf_varint(&body, nheaders);
    for (int32_t i = 0; i < nheaders && i < 4; i++) {
        rb_buf_varint(&body, hkey_len);
        for (int32_t j = 0; j < hkey_len; j++) rb_buf_u8(&body, 'h');
        rb_buf_varint(&body, -1);
    }
    rb_buf_varint(out, (int64_t)body.len + extra_len);
    rb_buf_put(out, body.p, body.len);
    rb_buf_free(&body);
}

/* Iterates the (decompressed) records of the single batch in b. */
static void records_of(const rb_buf_t *b, rb_buf_t *plain) {
    kp_batch_hdr_t h;
    assert_int_equal(kp_batch_hdr_parse(b->p, b->len, &h), 0);
    size_t total = KP_BATCH_LOG_OVERHEAD + (size_t)h.batch_length;
    rb_buf_reset(plain);
    assert_int_equal(kp_decompress((kp_compression_t)(h.attributes & KP_ATTR_COMPRESSION_MASK),
                                   b->p + KP_BATCH_HEADER_SIZE, total - KP_BATCH_HEADER_SIZE, 64 * MiB, plain),
                     0);
}

/* ---- round trips -------------------------------------------------------------- */
#define NREC 300

static void check_roundtrip(kp_compression_t codec) {
    static kp_record_in_t in[NREC];
    static char keys[NREC][16], vals[NREC][64];
    static kp_bytes_t hk[NREC][3], hv[NREC][3];
    memset(in, 0, sizeof(in));
    for (int i = 0; i < NREC; i++) {
        snprintf(keys[i], sizeof(keys[i]), "key-%d", i);
        snprintf(vals[i], sizeof(vals[i]), "value number %d %s", i, i % 7 ? "xx" : "a longer value here");
        in[i].key = i % 5 == 1 ? bs(NULL) : bs(keys[i]);
        in[i].value = i % 11 == 2 ? bs(NULL) : (i % 13 == 3 ? bs("") : bs(vals[i]));
        in[i].timestamp = 1700000000000 + (i % 17) * 3 - 20; /* deltas both ways */
        in[i].nheaders = i % 4;
        for (int j = 0; j < in[i].nheaders; j++) {
            hk[i][j] = j == 2 ? bs("") : bs("hdr");
            hv[i][j] = j == 1 ? bs(NULL) : bs(vals[i]);
        }
        in[i].header_keys = hk[i];
        in[i].header_values = hv[i];
    }
    rb_buf_t b, plain;
    rb_buf_init(&b);
    rb_buf_init(&plain);
    kp_batch_build(&b, 42, codec, in, NREC, 1234, 5, 77, KP_ATTR_TRANSACTIONAL);

    kp_batch_info_t info;
    char msg[256];
    /* a produced batch must carry base offset 0; the CRC does not cover it */
    assert_int_equal(validate(&b, &info, msg, sizeof(msg)), RB_INVALID_RECORD);
    assert_non_null(strstr(msg, "base offset 42"));
    assert_int_equal(rb_be64(b.p), 42);
    rb_wbe64(b.p, 0);
    int rc = validate(&b, &info, msg, sizeof(msg));
    if (rc) print_error("codec %d: %s\n", codec, msg);
    assert_int_equal(rc, 0);
    assert_int_equal(info.nbatches, 1);
    assert_int_equal(info.nrecords, NREC);
    assert_int_equal(info.any_compressed, codec != KP_COMP_NONE);
    assert_true(info.any_transactional);
    assert_false(info.any_control);
    assert_true(info.keyless_record);
    assert_int_equal(info.producer_id, 1234);
    assert_int_equal(info.first_timestamp, in[0].timestamp);
    int64_t maxts = 0;
    for (int i = 0; i < NREC; i++) maxts = RB_MAX(maxts, in[i].timestamp);
    assert_int_equal(info.max_timestamp, maxts);

    kp_batch_hdr_t h;
    assert_int_equal(kp_batch_hdr_parse(b.p, b.len, &h), 0);
    assert_int_equal(h.base_offset, 0);
    assert_int_equal((size_t)h.batch_length + KP_BATCH_LOG_OVERHEAD, b.len);
    assert_int_equal(h.magic, 2);
    assert_int_equal(h.attributes & KP_ATTR_COMPRESSION_MASK, codec);
    assert_int_equal(h.last_offset_delta, NREC - 1);
    assert_int_equal(h.records_count, NREC);
    assert_int_equal(h.producer_id, 1234);
    assert_int_equal(h.producer_epoch, 5);
    assert_int_equal(h.base_sequence, 77);
    assert_int_equal(h.base_timestamp, in[0].timestamp);
    assert_int_equal(h.max_timestamp, maxts);

    records_of(&b, &plain);
    rb_rd_t rd;
    rb_rd_init(&rd, plain.p, plain.len);
    for (int i = 0; i < NREC; i++) {
        kp_record_t r;
        assert_int_equal(kp_record_next(&rd, &r), 0);
        assert_int_equal(r.offset_delta, i);
        assert_int_equal(h.base_timestamp + r.timestamp_delta, in[i].timestamp);
        assert_int_equal(r.key.len, in[i].key.len);
        if (r.key.len > 0) assert_memory_equal(r.key.p, in[i].key.p, (size_t)r.key.len);
        assert_int_equal(r.value.len, in[i].value.len);
        if (r.value.len > 0) assert_memory_equal(r.value.p, in[i].value.p, (size_t)r.value.len);
        assert_int_equal(r.nheaders, in[i].nheaders);
        /* walk the raw headers */
        rb_rd_t hr;
        rb_rd_init(&hr, r.headers, r.headers_len);
        for (int j = 0; j < r.nheaders; j++) {
            int32_t kl = rb_rd_varint32(&hr);
            assert_int_equal(kl, in[i].header_keys[j].len);
            const uint8_t *k = rb_rd_bytes(&hr, (size_t)kl);
            if (kl) assert_memory_equal(k, in[i].header_keys[j].p, (size_t)kl);
            int32_t vl = rb_rd_varint32(&hr);
            assert_int_equal(vl, in[i].header_values[j].len);
            if (vl > 0) assert_memory_equal(rb_rd_bytes(&hr, (size_t)vl), in[i].header_values[j].p, (size_t)vl);
        }
        assert_true(rb_rd_ok(&hr));
        assert_int_equal(rb_rd_left(&hr), 0);
    }
    assert_int_equal(rb_rd_left(&rd), 0);
    rb_buf_free(&b);
    rb_buf_free(&plain);
}

static void test_roundtrip_none(void **st) { (void)st; check_roundtrip(KP_COMP_NONE); }
static void test_roundtrip_gzip(void **st) { (void)st; check_roundtrip(KP_COMP_GZIP); }
static void test_roundtrip_snappy(void **st) { (void)st; check_roundtrip(KP_COMP_SNAPPY); }
static void test_roundtrip_lz4(void **st) { (void)st; check_roundtrip(KP_COMP_LZ4); }
static void test_roundtrip_zstd(void **st) { (void)st; check_roundtrip(KP_COMP_ZSTD); }

static void test_several_batches(void **st) {
    (void)st;
    rb_buf_t b;
    rb_buf_init(&b);
    for (size_t i = 0; i < RB_ARRAY_LEN(codecs); i++) build_small(&b, codecs[i]);
    kp_batch_info_t info;
    char msg[256];
    assert_int_equal(validate(&b, &info, msg, sizeof(msg)), 0);
    assert_int_equal(info.nbatches, 5);
    assert_int_equal(info.nrecords, 15);
    assert_false(info.keyless_record);
    assert_int_equal(info.producer_id, -1);
    rb_buf_free(&b);
}

static void test_single_null_record(void **st) {
    (void)st;
    kp_record_in_t r;
    memset(&r, 0, sizeof(r));
    r.key = bs(NULL);
    r.value = bs(NULL);
    r.timestamp = -1;
    for (size_t c = 0; c < RB_ARRAY_LEN(codecs); c++) {
        rb_buf_t b;
        rb_buf_init(&b);
        kp_batch_build(&b, 0, codecs[c], &r, 1, -1, -1, -1, 0);
        kp_batch_info_t info;
        char msg[256];
        assert_int_equal(validate(&b, &info, msg, sizeof(msg)), 0);
        assert_true(info.keyless_record);
        assert_int_equal(info.nrecords, 1);
        rb_buf_free(&b);
    }
}

static void test_big_values(void **st) {
    (void)st;
    /* values larger than a snappy-java chunk and an lz4 block */
    size_t n = 300 * 1024;
    uint8_t *v = malloc(n);
    for (size_t i = 0; i < n; i++) v[i] = (uint8_t)(i * 2654435761u >> 13);
    kp_record_in_t r[2];
    memset(r, 0, sizeof(r));
    r[0].value.p = v;
    r[0].value.len = (int32_t)n;
    r[1].value = bs("tail");
    for (size_t c = 0; c < RB_ARRAY_LEN(codecs); c++) {
        rb_buf_t b;
        rb_buf_init(&b);
        kp_batch_build(&b, 0, codecs[c], r, 2, -1, -1, -1, 0);
        kp_batch_info_t info;
        char msg[256];
        assert_int_equal(validate(&b, &info, msg, sizeof(msg)), 0);
        rb_buf_t plain;
        rb_buf_init(&plain);
        records_of(&b, &plain);
        rb_rd_t rd;
        rb_rd_init(&rd, plain.p, plain.len);
        kp_record_t rec;
        assert_int_equal(kp_record_next(&rd, &rec), 0);
        assert_int_equal(rec.value.len, (int32_t)n);
        assert_memory_equal(rec.value.p, v, n);
        rb_buf_free(&plain);
        rb_buf_free(&b);
    }
    free(v);
}

/* ---- header parse ---------------------------------------------------------- */
static void test_hdr_parse(void **st) {
    (void)st;
    rb_buf_t b;
    rb_buf_init(&b);
    build_small(&b, KP_COMP_NONE);
    kp_batch_hdr_t h;
    for (size_t n = 0; n < b.len; n++) assert_int_equal(kp_batch_hdr_parse(b.p, n, &h), RB_ERR_TRUNCATED);
    assert_int_equal(kp_batch_hdr_parse(b.p, b.len, &h), 0);
    assert_int_equal(h.records_count, 3);
    rb_wbe32(b.p + 8, 48);
    assert_int_equal(kp_batch_hdr_parse(b.p, b.len, &h), RB_CORRUPT_MESSAGE);
    rb_wbe32(b.p + 8, (uint32_t)-5);
    assert_int_equal(kp_batch_hdr_parse(b.p, b.len, &h), RB_CORRUPT_MESSAGE);
    rb_buf_free(&b);
}

/* ---- rejections --------------------------------------------------------------- */
static void expect(const rb_buf_t *b, int want, const char *needle) {
    kp_batch_info_t info;
    char msg[256];
    int rc = validate(b, &info, msg, sizeof(msg));
    if (rc != want) print_error("want %s got %s (%s)\n", rb_err_name(want), rb_err_name(rc), msg);
    assert_int_equal(rc, want);
    if (needle && !strstr(msg, needle)) print_error("reason '%s' lacks '%s'\n", msg, needle);
    if (needle) assert_non_null(strstr(msg, needle));
}

static void test_reject_empty_and_trailing(void **st) {
    (void)st;
    rb_buf_t b;
    rb_buf_init(&b);
    expect(&b, RB_INVALID_RECORD, "no record batch");
    build_small(&b, KP_COMP_NONE);
    size_t one = b.len;
    rb_buf_put(&b, "\0\0\0\0\0", 5);
    expect(&b, RB_CORRUPT_MESSAGE, "trailing");
    /* a whole batch followed by the first 30 bytes of another */
    b.len = one;
    rb_buf_put(&b, b.p, 30);
    expect(&b, RB_CORRUPT_MESSAGE, "exceeds");
    rb_buf_free(&b);
}

static void test_reject_length(void **st) {
    (void)st;
    rb_buf_t b;
    rb_buf_init(&b);
    build_small(&b, KP_COMP_NONE);
    rb_wbe32(b.p + 8, 48);
    expect(&b, RB_CORRUPT_MESSAGE, "minimum");
    rb_wbe32(b.p + 8, (uint32_t)-1);
    expect(&b, RB_CORRUPT_MESSAGE, "minimum");
    rb_wbe32(b.p + 8, (uint32_t)(b.len - 11));
    expect(&b, RB_CORRUPT_MESSAGE, "exceeds");
    rb_wbe32(b.p + 8, 0x7fffffff);
    expect(&b, RB_CORRUPT_MESSAGE, "exceeds");
    rb_buf_free(&b);
}

static void test_reject_magic(void **st) {
    (void)st;
    rb_buf_t b;
    rb_buf_init(&b);
    int8_t magics[] = {0, 1, 3, -1};
    for (size_t i = 0; i < RB_ARRAY_LEN(magics); i++) {
        rb_buf_reset(&b);
        build_small(&b, KP_COMP_NONE);
        b.p[16] = (uint8_t)magics[i];
        expect(&b, RB_CORRUPT_MESSAGE, "magic");
    }
    /* a v1 message set (short, magic 1): still about magic, not length */
    uint8_t v1[12 + 26] = {0};
    rb_wbe32(v1 + 8, 26);
    v1[16] = 1;
    assert_int_equal(validate_rc(v1, sizeof(v1)), RB_CORRUPT_MESSAGE);
    rb_buf_free(&b);
}

static void test_reject_crc(void **st) {
    (void)st;
    for (size_t c = 0; c < RB_ARRAY_LEN(codecs); c++) {
        rb_buf_t b;
        rb_buf_init(&b);
        build_small(&b, codecs[c]);
        b.p[b.len - 1] ^= 0x40;
        expect(&b, RB_CORRUPT_MESSAGE, "CRC");
        b.p[b.len - 1] ^= 0x40;
        b.p[21 + 2] ^= 1; /* last offset delta: covered */
        expect(&b, RB_CORRUPT_MESSAGE, "CRC");
        b.p[21 + 2] ^= 1;
        b.p[12] ^= 1; /* the partition leader epoch is not covered */
        expect(&b, 0, NULL);
        rb_buf_free(&b);
    }
}

static void test_reject_too_large(void **st) {
    (void)st;
    rb_buf_t b;
    rb_buf_init(&b);
    build_small(&b, KP_COMP_NONE);
    kp_batch_limits_t l = lim_default();
    l.max_batch_bytes = b.len;
    assert_int_equal(kp_batch_validate(b.p, b.len, &l, NULL, NULL, 0), 0);
    l.max_batch_bytes = b.len - 1;
    char msg[128];
    assert_int_equal(kp_batch_validate(b.p, b.len, &l, NULL, msg, sizeof(msg)), RB_MESSAGE_TOO_LARGE);
    /* too large wins over a bad CRC, as in Kafka */
    b.p[b.len - 1] ^= 1;
    assert_int_equal(kp_batch_validate(b.p, b.len, &l, NULL, msg, sizeof(msg)), RB_MESSAGE_TOO_LARGE);
    rb_buf_free(&b);
}

static void test_reject_codec(void **st) {
    (void)st;
    for (int codec = 5; codec <= 7; codec++) {
        rb_buf_t b;
        rb_buf_init(&b);
        build_small(&b, KP_COMP_NONE);
        b.p[22] = (uint8_t)((b.p[22] & ~KP_ATTR_COMPRESSION_MASK) | codec);
        fix_crc(b.p);
        expect(&b, RB_UNSUPPORTED_COMPRESSION_TYPE, "compression");
        rb_buf_free(&b);
    }
    uint8_t junk[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    rb_buf_t o;
    rb_buf_init(&o);
    assert_int_equal(kp_decompress((kp_compression_t)6, junk, sizeof(junk), MiB, &o), RB_UNSUPPORTED_COMPRESSION_TYPE);
    rb_buf_free(&o);
}

static void test_reject_counts(void **st) {
    (void)st;
    rb_buf_t recs, b;
    rb_buf_init(&recs);
    rb_buf_init(&b);
    put_record(&recs, 0, 10, 10, 0, 0, 0);
    put_record(&recs, 1, 10, 10, 0, 0, 0);
    build_raw(&b, recs.p, recs.len, 2, 1, 0);
    expect(&b, 0, NULL);
    build_raw(&b, recs.p, recs.len, 0, -1, 0);
    expect(&b, RB_INVALID_RECORD, "last offset delta");
    build_raw(&b, recs.p, recs.len, 0, 1, 0);
    expect(&b, RB_INVALID_RECORD, "record count");
    build_raw(&b, recs.p, recs.len, -3, 1, 0);
    expect(&b, RB_INVALID_RECORD, "record count");
    build_raw(&b, recs.p, recs.len, 2, 2, 0);
    expect(&b, RB_INVALID_RECORD, "does not match");
    build_raw(&b, recs.p, recs.len, 2, 0x7fffffff, 0);
    expect(&b, RB_INVALID_RECORD, "last offset delta");
    /* header says 3 records, 2 present */
    build_raw(&b, recs.p, recs.len, 3, 2, 0);
    expect(&b, RB_INVALID_RECORD, "ends after 2 of 3");
    /* header says 1 record, 2 present */
    build_raw(&b, recs.p, recs.len, 1, 0, 0);
    expect(&b, RB_INVALID_RECORD, "follow the last");
    /* absurd count in a small batch */
    build_raw(&b, recs.p, recs.len, 1000000, 999999, 0);
    expect(&b, RB_INVALID_RECORD, "cannot fit");
    rb_buf_free(&recs);
    rb_buf_free(&b);
}

static void test_reject_control_and_sequence(void **st) {
    (void)st;
    rb_buf_t b;
    rb_buf_init(&b);
    kp_record_in_t r;
    memset(&r, 0, sizeof(r));
    r.key = bs("k");
    r.value = bs("v");
    kp_batch_build(&b, 0, KP_COMP_NONE, &r, 1, 5, 0, 0, KP_ATTR_CONTROL | KP_ATTR_TRANSACTIONAL);
    expect(&b, RB_INVALID_RECORD, "control");
    rb_buf_reset(&b);
    kp_batch_build(&b, 0, KP_COMP_NONE, &r, 1, 5, 0, -1, 0);
    expect(&b, RB_INVALID_RECORD, "sequence");
    rb_buf_reset(&b);
    kp_batch_build(&b, 0, KP_COMP_NONE, &r, 1, 5, 0, 0, 0); /* idempotent, fine */
    expect(&b, 0, NULL);
    rb_buf_free(&b);
}

/* one malformed record among good ones -> INVALID_RECORD */
static void check_bad_record(int32_t delta, int32_t klen, int32_t vlen, int32_t nh, int32_t hkl, int extra) {
    rb_buf_t recs, b;
    rb_buf_init(&recs);
    rb_buf_init(&b);
    put_record(&recs, 0, 2, 2, 0, 0, 0);
    put_record(&recs, delta, klen, vlen, nh, hkl, extra);
    put_record(&recs, 2, 2, 2, 0, 0, 0);
    build_raw(&b, recs.p, recs.len, 3, 2, 0);
    expect(&b, RB_INVALID_RECORD, "record");
    /* the same inside a compressed batch */
    for (size_t c = 1; c < RB_ARRAY_LEN(codecs); c++) {
        rb_buf_t z;
        rb_buf_init(&z);
        assert_int_equal(kp_compress(codecs[c], recs.p, recs.len, &z), 0);
        build_raw(&b, z.p, z.len, 3, 2, (int16_t)codecs[c]);
        expect(&b, RB_INVALID_RECORD, "record");
        rb_buf_free(&z);
    }
    rb_buf_free(&recs);
    rb_buf_free(&b);
}

static void test_reject_records(void **st) {
    (void)st;
    check_bad_record(7, 2, 2, 0, 0, 0);   /* offset delta out of order */
    check_bad_record(-1, 2, 2, 0, 0, 0);  /* negative offset delta */
    check_bad_record(1, -2, 2, 0, 0, 0);  /* key length below -1 */
    check_bad_record(1, 2, -7, 0, 0, 0);  /* value length below -1 */
    check_bad_record(1, 2, 2, -1, 0, 0);  /* negative header count */
    check_bad_record(1, 2, 2, 1000, 1, 0); /* header count beyond the record */
    check_bad_record(1, 2, 2, 1, -1, 0);  /* null header key */
    check_bad_record(1, 2, 2, 0, 0, 1);   /* length says one byte more */
    check_bad_record(1, 2, 2, 0, 0, -1);  /* length says one byte less */
    check_bad_record(1, 2, 2, 0, 0, 200); /* length past the section */
}

static void test_reject_bad_varint(void **st) {
    (void)st;
    rb_buf_t b;
    rb_buf_init(&b);
    /* a record whose length varint never ends */
    uint8_t recs[12];
    memset(recs, 0xff, sizeof(recs));
    build_raw(&b, recs, sizeof(recs), 1, 0, 0);
    expect(&b, RB_INVALID_RECORD, "malformed");
    /* a negative record length */
    recs[0] = 0x01; /* zigzag -1 */
    build_raw(&b, recs, sizeof(recs), 1, 0, 0);
    expect(&b, RB_INVALID_RECORD, "malformed");
    rb_buf_free(&b);
}

static void test_reject_corrupt_compressed(void **st) {
    (void)st;
    for (size_t c = 1; c < RB_ARRAY_LEN(codecs); c++) {
        rb_buf_t b;
        rb_buf_init(&b);
        build_small(&b, codecs[c]);
        /* garbage in place of the compressed section, CRC fixed up */
        for (size_t i = KP_BATCH_HEADER_SIZE; i < b.len; i++) b.p[i] = (uint8_t)(i * 37 + 11);
        fix_crc(b.p);
        expect(&b, RB_CORRUPT_MESSAGE, "decompress");
        /* an empty compressed section */
        b.len = KP_BATCH_HEADER_SIZE;
        rb_wbe32(b.p + 8, KP_BATCH_HEADER_SIZE - KP_BATCH_LOG_OVERHEAD);
        fix_crc(b.p);
        expect(&b, RB_CORRUPT_MESSAGE, "decompress");
        rb_buf_free(&b);
    }
}

/* ---- truncation ----------------------------------------------------------------- */
static void test_truncation_every_byte(void **st) {
    (void)st;
    for (size_t c = 0; c < RB_ARRAY_LEN(codecs); c++) {
        rb_buf_t b;
        rb_buf_init(&b);
        build_small(&b, codecs[c]);
        size_t one = b.len;
        build_small(&b, codecs[c]);
        for (size_t n = 0; n < b.len; n++) {
            /* an exact copy so ASan sees reads past the prefix */
            uint8_t *cp = malloc(n ? n : 1);
            memcpy(cp, b.p, n);
            int rc = validate_rc(cp, n);
            if (n == one) assert_int_equal(rc, 0);
            else assert_int_not_equal(rc, 0);
            if (n && n != one) assert_true(rc == RB_CORRUPT_MESSAGE || rc == RB_INVALID_RECORD);
            free(cp);
        }
        assert_int_equal(validate_rc(b.p, b.len), 0);
        rb_buf_free(&b);
    }
}

static void test_decompress_truncated_streams(void **st) {
    (void)st;
    uint8_t plain[5000];
    for (size_t i = 0; i < sizeof(plain); i++) plain[i] = (uint8_t)("abcdefgh"[i % 8] + (i / 100));
    for (size_t c = 1; c < RB_ARRAY_LEN(codecs); c++) {
        rb_buf_t z, o;
        rb_buf_init(&z);
        rb_buf_init(&o);
        assert_int_equal(kp_compress(codecs[c], plain, sizeof(plain), &z), 0);
        assert_int_equal(kp_decompress(codecs[c], z.p, z.len, sizeof(plain), &o), 0);
        assert_int_equal(o.len, sizeof(plain));
        assert_memory_equal(o.p, plain, sizeof(plain));
        for (size_t n = 0; n < z.len; n++) {
            uint8_t *cp = malloc(n ? n : 1);
            memcpy(cp, z.p, n);
            rb_buf_reset(&o);
            int rc = kp_decompress(codecs[c], cp, n, MiB, &o);
            /* xerial snappy cut exactly between chunks is a valid shorter stream */
            if (rc == 0) assert_true(codecs[c] == KP_COMP_SNAPPY && o.len < sizeof(plain));
            else assert_int_equal(rc, RB_CORRUPT_MESSAGE), assert_int_equal(o.len, 0);
            free(cp);
        }
        rb_buf_free(&z);
        rb_buf_free(&o);
    }
}

/* ---- caps and bombs ------------------------------------------------------------- */
static void test_cap_boundary(void **st) {
    (void)st;
    uint8_t plain[10000];
    memset(plain, 'x', sizeof(plain));
    for (size_t c = 0; c < RB_ARRAY_LEN(codecs); c++) {
        rb_buf_t z, o;
        rb_buf_init(&z);
        rb_buf_init(&o);
        assert_int_equal(kp_compress(codecs[c], plain, sizeof(plain), &z), 0);
        rb_buf_put(&o, "pre", 3); /* decompress appends; the cap counts new bytes */
        assert_int_equal(kp_decompress(codecs[c], z.p, z.len, sizeof(plain), &o), 0);
        assert_int_equal(o.len, 3 + sizeof(plain));
        o.len = 3;
        assert_int_equal(kp_decompress(codecs[c], z.p, z.len, sizeof(plain) - 1, &o), RB_CORRUPT_MESSAGE);
        assert_int_equal(o.len, 3);
        assert_memory_equal(o.p, "pre", 3);
        rb_buf_free(&z);
        rb_buf_free(&o);
    }
}

static void test_bombs(void **st) {
    (void)st;
    size_t big = 100 * MiB, cap = 1 * MiB;
    uint8_t *zeros = calloc(1, big);
    assert_non_null(zeros);
    for (size_t c = 1; c < RB_ARRAY_LEN(codecs); c++) {
        rb_buf_t z, o;
        rb_buf_init(&z);
        rb_buf_init(&o);
        assert_int_equal(kp_compress(codecs[c], zeros, big, &z), 0);
        assert_true(z.len < big / 10);
        assert_int_equal(kp_decompress(codecs[c], z.p, z.len, cap, &o), RB_CORRUPT_MESSAGE);
        assert_int_equal(o.len, 0);
        /* memory stayed near the cap */
        assert_true(o.cap <= 2 * cap + 64 * 1024);
        rb_buf_free(&o);

        /* the same as a batch's records section */
        rb_buf_t b;
        rb_buf_init(&b);
        if (z.len + KP_BATCH_HEADER_SIZE < 64 * MiB) {
            build_raw(&b, z.p, z.len, 1, 0, (int16_t)codecs[c]);
            kp_batch_limits_t l = {64 * MiB, cap, true};
            char msg[256];
            assert_int_equal(kp_batch_validate(b.p, b.len, &l, NULL, msg, sizeof(msg)), RB_CORRUPT_MESSAGE);
            assert_non_null(strstr(msg, "decompress"));
        }
        rb_buf_free(&b);
        rb_buf_free(&z);
    }
    free(zeros);
}

static void test_zstd_bomb_unknown_size(void **st) {
    (void)st;
    /* a streamed frame does not state its size: the cap must stop it */
    size_t big = 100 * MiB, cap = 1 * MiB;
    uint8_t *zeros = calloc(1, big);
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0)));
    size_t bound = ZSTD_compressBound(big);
    uint8_t *z = malloc(bound);
    size_t zn = ZSTD_compress2(cc, z, bound, zeros, big);
    assert_false(ZSTD_isError(zn));
    assert_int_equal(ZSTD_getFrameContentSize(z, zn), ZSTD_CONTENTSIZE_UNKNOWN);
    rb_buf_t o;
    rb_buf_init(&o);
    assert_int_equal(kp_decompress(KP_COMP_ZSTD, z, zn, cap, &o), RB_CORRUPT_MESSAGE);
    assert_true(o.cap <= 2 * cap + 64 * 1024);
    rb_buf_reset(&o);
    assert_int_equal(kp_decompress(KP_COMP_ZSTD, z, zn, big, &o), 0);
    assert_int_equal(o.len, big);
    rb_buf_free(&o);
    ZSTD_freeCCtx(cc);
    free(z);
    free(zeros);
}

static void test_zstd_window_limit(void **st) {
    (void)st;
    /* a streamed frame asking for a 32 MiB window: refused under a small cap
     * (the window would be the decoder's allocation), fine under a big one */
    size_t n = 100000;
    uint8_t *plain = malloc(n);
    for (size_t i = 0; i < n; i++) plain[i] = (uint8_t)(i % 251);
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0)));
    assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, 25)));
    uint8_t *z = malloc(ZSTD_compressBound(n) + 64);
    /* stream it so the window is not shrunk to the input size */
    ZSTD_inBuffer ib = {plain, n, 0};
    ZSTD_outBuffer ob = {z, ZSTD_compressBound(n) + 64, 0};
    assert_false(ZSTD_isError(ZSTD_compressStream2(cc, &ob, &ib, ZSTD_e_continue)));
    assert_int_equal(ZSTD_compressStream2(cc, &ob, &ib, ZSTD_e_end), 0);
    assert_int_equal(ZSTD_getFrameContentSize(z, ob.pos), ZSTD_CONTENTSIZE_UNKNOWN);
    rb_buf_t o;
    rb_buf_init(&o);
    assert_int_equal(kp_decompress(KP_COMP_ZSTD, z, ob.pos, MiB, &o), RB_CORRUPT_MESSAGE);
    assert_int_equal(kp_decompress(KP_COMP_ZSTD, z, ob.pos, 64 * MiB, &o), 0);
    assert_int_equal(o.len, n);
    assert_memory_equal(o.p, plain, n);
    /* the usual window (level 19 uses 2^23) decodes under a small cap */
    rb_buf_reset(&o);
    assert_false(ZSTD_isError(ZSTD_CCtx_reset(cc, ZSTD_reset_session_and_parameters)));
    assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0)));
    assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, 23)));
    ib.pos = 0;
    ob.pos = 0;
    assert_false(ZSTD_isError(ZSTD_compressStream2(cc, &ob, &ib, ZSTD_e_continue)));
    assert_int_equal(ZSTD_compressStream2(cc, &ob, &ib, ZSTD_e_end), 0);
    assert_int_equal(kp_decompress(KP_COMP_ZSTD, z, ob.pos, 200000, &o), 0);
    assert_int_equal(o.len, n);
    rb_buf_free(&o);
    ZSTD_freeCCtx(cc);
    free(z);
    free(plain);
}

static void test_null_limits_and_info(void **st) {
    (void)st;
    rb_buf_t b;
    rb_buf_init(&b);
    build_small(&b, KP_COMP_ZSTD);
    assert_int_equal(kp_batch_validate(b.p, b.len, NULL, NULL, NULL, 0), 0);
    b.p[b.len - 1] ^= 1;
    assert_int_equal(kp_batch_validate(b.p, b.len, NULL, NULL, NULL, 0), RB_CORRUPT_MESSAGE);
    char tiny[8];
    assert_int_equal(kp_batch_validate(b.p, b.len, NULL, NULL, tiny, sizeof(tiny)), RB_CORRUPT_MESSAGE);
    assert_true(strlen(tiny) < sizeof(tiny));
    rb_buf_free(&b);
}

static void test_empty_decompressed_section(void **st) {
    (void)st;
    /* xerial header with no chunks: decompresses to nothing (found by the
     * fuzzer in its own harness: an empty buffer has no memory behind it) */
    rb_buf_t b;
    rb_buf_init(&b);
    build_raw(&b, (const uint8_t *)"\x82SNAPPY\0\0\0\0\1\0\0\0\1", 16, 1, 0, KP_COMP_SNAPPY);
    expect(&b, RB_INVALID_RECORD, "cannot fit in 0 bytes");
    rb_buf_free(&b);
}

static void test_snappy_lying_header(void **st) {
    (void)st;
    /* raw snappy block that claims 4 GiB - 1 of output from 6 bytes */
    uint8_t raw[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x00};
    rb_buf_t o;
    rb_buf_init(&o);
    assert_int_equal(kp_decompress(KP_COMP_SNAPPY, raw, sizeof(raw), MiB, &o), RB_CORRUPT_MESSAGE);
    assert_true(o.cap < MiB); /* refused before allocating */
    /* the same inside xerial framing */
    uint8_t x[16 + 4 + sizeof(raw)] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1};
    rb_wbe32(x + 16, sizeof(raw));
    memcpy(x + 20, raw, sizeof(raw));
    assert_int_equal(kp_decompress(KP_COMP_SNAPPY, x, sizeof(x), MiB, &o), RB_CORRUPT_MESSAGE);
    /* xerial chunk length past the end */
    rb_wbe32(x + 16, 1000);
    assert_int_equal(kp_decompress(KP_COMP_SNAPPY, x, sizeof(x), MiB, &o), RB_CORRUPT_MESSAGE);
    rb_buf_free(&o);
}

/* ---- framings real clients write -------------------------------------------- */
static void test_snappy_raw_and_xerial(void **st) {
    (void)st;
    rb_buf_t recs, b, z;
    rb_buf_init(&recs);
    rb_buf_init(&b);
    rb_buf_init(&z);
    for (int i = 0; i < 3000; i++) put_record(&recs, i, 3, 40, i % 3, 2, 0);
    /* raw snappy, as some clients send it */
    size_t clen = snappy_max_compressed_length(recs.len);
    rb_buf_reserve(&z, clen);
    assert_int_equal(snappy_compress((const char *)recs.p, recs.len, (char *)z.p, &clen), SNAPPY_OK);
    z.len = clen;
    build_raw(&b, z.p, z.len, 3000, 2999, KP_COMP_SNAPPY);
    expect(&b, 0, NULL);
    /* xerial, several chunks (what kp_compress writes) */
    rb_buf_reset(&z);
    assert_int_equal(kp_compress(KP_COMP_SNAPPY, recs.p, recs.len, &z), 0);
    assert_memory_equal(z.p, "\x82SNAPPY\0", 8);
    assert_true(recs.len > 3 * 32 * 1024);
    build_raw(&b, z.p, z.len, 3000, 2999, KP_COMP_SNAPPY);
    expect(&b, 0, NULL);
    /* xerial with a hand-made uneven chunking */
    rb_buf_reset(&z);
    rb_buf_put(&z, "\x82SNAPPY\0\0\0\0\1\0\0\0\1", 16);
    size_t cuts[] = {0, 1, 5000, 70000, recs.len};
    for (size_t i = 0; i + 1 < RB_ARRAY_LEN(cuts); i++) {
        size_t n = cuts[i + 1] - cuts[i];
        size_t cl = snappy_max_compressed_length(n);
        rb_buf_reserve(&z, 4 + cl);
        assert_int_equal(snappy_compress((const char *)recs.p + cuts[i], n, (char *)z.p + z.len + 4, &cl), SNAPPY_OK);
        rb_wbe32(z.p + z.len, (uint32_t)cl);
        z.len += 4 + cl;
    }
    build_raw(&b, z.p, z.len, 3000, 2999, KP_COMP_SNAPPY);
    expect(&b, 0, NULL);
    rb_buf_free(&recs);
    rb_buf_free(&b);
    rb_buf_free(&z);
}

static void test_concatenated_streams(void **st) {
    (void)st;
    rb_buf_t recs, b, z;
    rb_buf_init(&recs);
    rb_buf_init(&b);
    rb_buf_init(&z);
    put_record(&recs, 0, 3, 40, 1, 2, 0);
    size_t half = recs.len;
    put_record(&recs, 1, 3, 40, 0, 0, 0);
    for (size_t c = 1; c < RB_ARRAY_LEN(codecs); c++) {
        if (codecs[c] == KP_COMP_SNAPPY) continue; /* xerial chunks are covered above */
        rb_buf_reset(&z);
        assert_int_equal(kp_compress(codecs[c], recs.p, half, &z), 0);
        assert_int_equal(kp_compress(codecs[c], recs.p + half, recs.len - half, &z), 0);
        build_raw(&b, z.p, z.len, 2, 1, (int16_t)codecs[c]);
        expect(&b, 0, NULL);
        /* garbage after the last member/frame */
        rb_buf_put(&z, "garbage!", 8);
        build_raw(&b, z.p, z.len, 2, 1, (int16_t)codecs[c]);
        expect(&b, RB_CORRUPT_MESSAGE, "decompress");
    }
    rb_buf_free(&recs);
    rb_buf_free(&b);
    rb_buf_free(&z);
}

static void test_record_next_garbage(void **st) {
    (void)st;
    uint8_t g[64];
    for (unsigned seed = 0; seed < 2000; seed++) {
        for (size_t i = 0; i < sizeof(g); i++) g[i] = (uint8_t)((seed * 131 + i * 7919) >> (i % 5));
        size_t n = seed % sizeof(g);
        rb_rd_t rd;
        rb_rd_init(&rd, g, n);
        kp_record_t r;
        while (rb_rd_left(&rd) && kp_record_next(&rd, &r) == 0) {
            if (r.key.len > 0) assert_true(r.key.p >= g && r.key.p + r.key.len <= g + n);
            if (r.value.len > 0) assert_true(r.value.p >= g && r.value.p + r.value.len <= g + n);
            assert_true(r.headers_len <= n);
        }
        if (!rb_rd_ok(&rd)) assert_int_equal(kp_record_next(&rd, &r), RB_CORRUPT_MESSAGE);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_none),
        cmocka_unit_test(test_roundtrip_gzip),
        cmocka_unit_test(test_roundtrip_snappy),
        cmocka_unit_test(test_roundtrip_lz4),
        cmocka_unit_test(test_roundtrip_zstd),
        cmocka_unit_test(test_several_batches),
        cmocka_unit_test(test_single_null_record),
        cmocka_unit_test(test_big_values),
        cmocka_unit_test(test_hdr_parse),
        cmocka_unit_test(test_reject_empty_and_trailing),
        cmocka_unit_test(test_reject_length),
        cmocka_unit_test(test_reject_magic),
        cmocka_unit_test(test_reject_crc),
        cmocka_unit_test(test_reject_too_large),
        cmocka_unit_test(test_reject_codec),
        cmocka_unit_test(test_reject_counts),
        cmocka_unit_test(test_reject_control_and_sequence),
        cmocka_unit_test(test_reject_records),
        cmocka_unit_test(test_reject_bad_varint),
        cmocka_unit_test(test_reject_corrupt_compressed),
        cmocka_unit_test(test_truncation_every_byte),
        cmocka_unit_test(test_decompress_truncated_streams),
        cmocka_unit_test(test_cap_boundary),
        cmocka_unit_test(test_bombs),
        cmocka_unit_test(test_zstd_bomb_unknown_size),
        cmocka_unit_test(test_zstd_window_limit),
        cmocka_unit_test(test_null_limits_and_info),
        cmocka_unit_test(test_empty_decompressed_section),
        cmocka_unit_test(test_snappy_lying_header),
        cmocka_unit_test(test_snappy_raw_and_xerial),
        cmocka_unit_test(test_concatenated_streams),
        cmocka_unit_test(test_record_next_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
