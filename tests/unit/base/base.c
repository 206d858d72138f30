/* base.c (test) — the bottom layer: CRC-32C against known vectors and the
 * table path, varints (sizes, zigzag, overlong/oversized rejection), the
 * bounds-checked reader, the arena cap, write chains and failpoints. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/base.h"

static void test_crc32c_vectors(void **state) {
    (void)state;
    /* RFC 3720 / iSCSI check value and test patterns */
    assert_int_equal(rb_crc32c(0, "123456789", 9), 0xE3069283u);
    uint8_t zeros[32] = {0}, ones[32];
    memset(ones, 0xff, sizeof(ones));
    assert_int_equal(rb_crc32c(0, zeros, 32), 0x8A9136AAu);
    assert_int_equal(rb_crc32c(0, ones, 32), 0x62A8AB43u);
    uint8_t inc[32];
    for (int i = 0; i < 32; i++) inc[i] = (uint8_t)i;
    assert_int_equal(rb_crc32c(0, inc, 32), 0x46DD794Eu);
    /* incremental == one shot, at every split and misalignment */
    uint8_t big[1000];
    for (int i = 0; i < 1000; i++) big[i] = (uint8_t)(i * 7 + 3);
    uint32_t whole = rb_crc32c(0, big, sizeof(big));
    for (size_t cut = 0; cut <= 1000; cut += 37)
        assert_int_equal(rb_crc32c(rb_crc32c(0, big, cut), big + cut, 1000 - cut), whole);
    for (size_t off = 1; off < 8; off++) {
        uint32_t a = rb_crc32c(0, big + off, 500);
        uint8_t copy[500];
        memcpy(copy, big + off, 500);
        assert_int_equal(rb_crc32c(0, copy, 500), a);
    }
}

/* The hardware path (three interleaved chains joined by shift tables) agrees
 * with the table path at every length around the block boundaries, every
 * alignment and every incremental split. */
static void test_crc32c_hw_matches_table(void **state) {
    (void)state;
    size_t max = 3 * 8192 * 2 + 3 * 256 + 100;
    uint8_t *buf = malloc(max + 8);
    uint32_t x = 12345;
    for (size_t i = 0; i < max + 8; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    size_t lens[] = {0, 1, 7, 8, 9, 255, 256, 767, 768, 769, 1000, 3 * 256 * 5 + 3, 24575, 24576, 24577,
                     3 * 8192 + 3 * 256, 3 * 8192 + 3 * 256 + 17, max};
    for (size_t i = 0; i < RB_ARRAY_LEN(lens); i++)
        for (size_t off = 0; off < 8; off++) {
            uint32_t hw = rb_crc32c(0, buf + off, lens[i]);
            uint32_t sw = rb__crc32c_sw(0, buf + off, lens[i]);
            if (hw != sw) fail_msg("len %zu off %zu: %08x vs %08x", lens[i], off, hw, sw);
            size_t cut = lens[i] / 3;
            assert_int_equal(rb_crc32c(rb_crc32c(0, buf + off, cut), buf + off + cut, lens[i] - cut), sw);
        }
    free(buf);
}

static void test_varints(void **state) {
    (void)state;
    int64_t vals[] = {0, 1, -1, 63, -64, 64, -65, 300, INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < RB_ARRAY_LEN(vals); i++) {
        rb_buf_t b;
        rb_buf_init(&b);
        rb_buf_varint(&b, vals[i]);
        assert_int_equal(b.len, rb_varint_size(vals[i]));
        rb_rd_t rd;
        rb_rd_init(&rd, b.p, b.len);
        assert_true(rb_rd_varint64(&rd) == vals[i]);
        assert_true(rb_rd_ok(&rd));
        assert_int_equal(rb_rd_left(&rd), 0);
        if (vals[i] >= INT32_MIN && vals[i] <= INT32_MAX) {
            rb_rd_init(&rd, b.p, b.len);
            assert_int_equal(rb_rd_varint32(&rd), (int32_t)vals[i]);
            assert_true(rb_rd_ok(&rd));
        }
        rb_buf_free(&b);
    }
    /* zigzag: -1 is one byte 0x01 */
    const uint8_t m1[] = {0x01};
    rb_rd_t rd;
    rb_rd_init(&rd, m1, 1);
    assert_int_equal(rb_rd_varint32(&rd), -1);
    /* a 32-bit varint longer than 5 bytes, or with bits past 32, is malformed */
    const uint8_t six[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    rb_rd_init(&rd, six, sizeof(six));
    rb_rd_uvarint32(&rd);
    assert_int_equal(rd.err, RB_ERR_MALFORMED);
    const uint8_t wide[] = {0xff, 0xff, 0xff, 0xff, 0x7f};
    rb_rd_init(&rd, wide, sizeof(wide));
    rb_rd_uvarint32(&rd);
    assert_int_equal(rd.err, RB_ERR_MALFORMED);
    const uint8_t max32[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    rb_rd_init(&rd, max32, sizeof(max32));
    assert_int_equal(rb_rd_uvarint32(&rd), UINT32_MAX);
    assert_true(rb_rd_ok(&rd));
    /* truncated */
    const uint8_t cut[] = {0x80, 0x80};
    rb_rd_init(&rd, cut, sizeof(cut));
    rb_rd_uvarint64(&rd);
    assert_int_equal(rd.err, RB_ERR_TRUNCATED);
}

static void test_reader_sticky_errors(void **state) {
    (void)state;
    const uint8_t in[] = {0, 1, 2};
    rb_rd_t rd;
    rb_rd_init(&rd, in, sizeof(in));
    assert_int_equal(rb_rd_u16(&rd), 1);
    assert_int_equal(rb_rd_u32(&rd), 0); /* only 1 byte left */
    assert_false(rb_rd_ok(&rd));
    assert_int_equal(rb_rd_u8(&rd), 0); /* sticky: even though a byte remains */
    assert_int_equal(rb_rd_left(&rd), 0);
    assert_null(rb_rd_bytes(&rd, 0));
    rb_rd_init(&rd, NULL, 0); /* an empty reader is valid */
    assert_true(rb_rd_ok(&rd));
    assert_int_equal(rb_rd_left(&rd), 0);
    assert_non_null(rb_rd_bytes(&rd, 0));
}

static void test_arena_cap(void **state) {
    (void)state;
    rb_arena_t a;
    rb_arena_init(&a, 1000);
    assert_non_null(rb_arena_alloc(&a, 500));
    assert_null(rb_arena_alloc(&a, 600)); /* would pass the cap */
    assert_non_null(rb_arena_alloc(&a, 400));
    assert_null(rb_arena_alloc(&a, SIZE_MAX / 2)); /* no overflow */
    uint8_t *p = rb_arena_alloc(&a, 16); /* 512 + 400 + 16 = 928 <= 1000 */
    assert_non_null(p);
    assert_null(rb_arena_alloc(&a, 100)); /* 928 + 112 > 1000 */
    assert_int_equal(a.ra_used, 928);
    rb_arena_reset(&a);
    p = rb_arena_alloc(&a, 64);
    assert_non_null(p);
    for (int i = 0; i < 64; i++) assert_int_equal(p[i], 0);
    assert_int_equal((uintptr_t)p % 16, 0);
    rb_arena_free(&a);
    rb_arena_init(&a, 0); /* unlimited */
    for (int i = 0; i < 100; i++) assert_non_null(rb_arena_alloc(&a, 100000));
    rb_arena_free(&a);
}

static void test_chain(void **state) {
    (void)state;
    rb_chain_t c;
    rb_chain_init(&c);
    rb_buf_put(&c.buf, "abc", 3);
    int fd = dup(0);
    rb_chain_add_file(&c, fd, 10, 100);
    rb_buf_put(&c.buf, "de", 2);
    assert_int_equal(rb_chain_len(&c), 105);
    rb_chain_finish(&c);
    assert_int_equal(c.nels, 3);
    assert_int_equal(c.total, 105);
    assert_false(c.els[0].is_file);
    assert_true(c.els[1].is_file);
    assert_int_equal(c.els[2].off, 3);
    rb_chain_free(&c); /* closes fd */
    assert_int_equal(close(fd), -1);
}

static void test_failpoints(void **state) {
    (void)state;
    setenv("RILL_FAILPOINTS", "a.b=ENOSPC@2*2,c=5", 1);
    rb_failpoint_reload();
    assert_int_equal(rb_failpoint("a.b"), 0);
    assert_int_equal(rb_failpoint("a.b"), 0);
    assert_int_equal(rb_failpoint("a.b"), 28); /* ENOSPC */
    assert_int_equal(rb_failpoint("a.b"), 28);
    assert_int_equal(rb_failpoint("a.b"), 0);
    assert_int_equal(rb_failpoint("c"), 5);
    assert_int_equal(rb_failpoint("other"), 0);
    unsetenv("RILL_FAILPOINTS");
    rb_failpoint_reload();
    assert_int_equal(rb_failpoint("c"), 0);
}

static void test_errors_table(void **state) {
    (void)state;
    assert_string_equal(rb_err_name(RB_CORRUPT_MESSAGE), "CORRUPT_MESSAGE");
    assert_int_equal(RB_CORRUPT_MESSAGE, 2);
    assert_int_equal(RB_INVALID_RECORD, 87);
    assert_int_equal(RB_UNSUPPORTED_VERSION, 35);
    assert_string_equal(rb_err_name(12345), "UNKNOWN");
    assert_true(RB_ERR_IO < 0);
}

static void test_atomic_file(void **state) {
    (void)state;
    char dir[] = "/tmp/rill-base-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], sub[256];
    snprintf(path, sizeof(path), "%s/f", dir);
    assert_int_equal(rb_write_file_atomic(path, "one", 3), 0);
    assert_int_equal(rb_write_file_atomic(path, "two!", 4), 0);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(rb_read_file(path, &text, &len), 0);
    assert_int_equal(len, 4);
    assert_string_equal(text, "two!");
    free(text);
    snprintf(sub, sizeof(sub), "%s/x/y/z", dir);
    assert_int_equal(rb_mkdir_p(sub), 0);
    assert_int_equal(rb_mkdir_p(sub), 0);
    assert_int_equal(rb_rm_rf(dir), 0);
    assert_int_equal(access(dir, F_OK), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_vectors), cmocka_unit_test(test_crc32c_hw_matches_table),
        cmocka_unit_test(test_varints),
        cmocka_unit_test(test_reader_sticky_errors), cmocka_unit_test(test_arena_cap),
        cmocka_unit_test(test_chain), cmocka_unit_test(test_failpoints),
        cmocka_unit_test(test_errors_table), cmocka_unit_test(test_atomic_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
