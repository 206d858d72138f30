/* coord.c (test) — pure logic of the coordinator: Kafka's partitionFor
 * (Java String.hashCode over UTF-16 code units, abs with MIN_VALUE -> 0). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "coord/coord.h"

static int32_t pf(const char *s, int32_t n) { return cg_partition_for(s, strlen(s), n); }

static void test_partition_for(void **state) {
    (void)state;
    assert_int_equal(pf("", 50), 0);
    assert_int_equal(pf("a", 50), 97 % 50);
    assert_int_equal(pf("hello", 1000000000), 99162322);   /* "hello".hashCode() */
    assert_int_equal(pf("polygenelubricants", 50), 0);    /* hashCode() == Integer.MIN_VALUE */
    /* a negative hash: "order-processor".hashCode() computed as Java does */
    int32_t h = 0;
    for (const char *p = "order-processor"; *p; p++) h = (int32_t)((uint32_t)h * 31u + (uint8_t)*p);
    int32_t a = h == INT32_MIN ? 0 : (h < 0 ? -h : h);
    assert_int_equal(pf("order-processor", 50), a % 50);
    /* U+00E9 is one UTF-16 unit; U+1F600 is a surrogate pair \uD83D\uDE00 */
    assert_int_equal(pf("\xc3\xa9", 1000000000), 0xe9);
    assert_int_equal(pf("\xf0\x9f\x98\x80", 1000000000), 0xD83D * 31 + 0xDE00);
    for (int32_t n = 1; n < 100; n++) {
        int32_t p = pf("analytics", n);
        assert_true(p >= 0 && p < n);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_partition_for),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
