/* codec.c (test) — the table-driven codec: round trips of every declared API
 * at every version, exact bytes for known encodings, compact and tagged
 * forms, and hostile input (truncation, huge counts, bad tags). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "proto/proto.h"

static void encode_to(const kp_struct_desc_t *d, int16_t v, bool flex, const void *in, rb_chain_t *c) {
    rb_chain_init(c);
    kp_encode(d, v, flex, in, c);
    rb_chain_finish(c);
}

/* encode(defaults) -> decode -> encode gives the same bytes, for every API,
 * both sides, every version. */
static void test_roundtrip_all_versions(void **state) {
    (void)state;
    int checked = 0;
    for (int i = 0; i < kp_api_ndescs; i++) {
        const kp_api_desc_t *a = &kp_api_descs[i];
        for (int side = 0; side < 2; side++) {
            const kp_struct_desc_t *d = side ? a->resp : a->req;
            for (int16_t v = a->min_ver; v <= a->max_ver; v++) {
                bool flex = kp_api_flexible(a, v);
                void *in = calloc(1, d->size), *out = calloc(1, d->size);
                kp_init_defaults(d, in);
                rb_chain_t c1, c2;
                encode_to(d, v, flex, in, &c1);
                rb_rd_t rd;
                rb_rd_init(&rd, c1.buf.p, c1.buf.len);
                rb_arena_t ar;
                rb_arena_init(&ar, 1 << 20);
                int rc = kp_decode(d, v, flex, &rd, out, &ar);
                if (rc) fail_msg("%s v%d side %d: decode failed %d", a->name, v, side, rc);
                assert_int_equal(rb_rd_left(&rd), 0);
                encode_to(d, v, flex, out, &c2);
                assert_int_equal(c1.buf.len, c2.buf.len);
                assert_memory_equal(c1.buf.p, c2.buf.p, c1.buf.len);
                rb_chain_free(&c1);
                rb_chain_free(&c2);
                rb_arena_free(&ar);
                free(in);
                free(out);
                checked++;
            }
        }
    }
    assert_true(checked > 100);
}

/* ApiVersions v3 request: compact strings + empty tagged fields. */
static void test_api_versions_v3_bytes(void **state) {
    (void)state;
    kp_api_versions_req_t req;
    kp_init_defaults(&kp_api_versions_req_desc, &req);
    req.client_software_name.p = "rill";
    req.client_software_name.len = 4;
    req.client_software_version.p = "1";
    req.client_software_version.len = 1;
    rb_chain_t c;
    encode_to(&kp_api_versions_req_desc, 3, true, &req, &c);
    const uint8_t want[] = {5, 'r', 'i', 'l', 'l', 2, '1', 0};
    assert_int_equal(c.buf.len, sizeof(want));
    assert_memory_equal(c.buf.p, want, sizeof(want));
    rb_chain_free(&c);
}

/* Metadata v1 with null topics (= all topics) and v9 compact null array. */
static void test_metadata_null_topics(void **state) {
    (void)state;
    kp_metadata_req_t req, out;
    kp_init_defaults(&kp_metadata_req_desc, &req);
    req.topics.n = -1;
    rb_chain_t c;
    encode_to(&kp_metadata_req_desc, 1, false, &req, &c);
    const uint8_t want1[] = {0xff, 0xff, 0xff, 0xff};
    assert_int_equal(c.buf.len, 4);
    assert_memory_equal(c.buf.p, want1, 4);
    rb_chain_free(&c);
    encode_to(&kp_metadata_req_desc, 9, true, &req, &c);
    assert_int_equal(c.buf.p[0], 0); /* compact null */
    rb_rd_t rd;
    rb_rd_init(&rd, c.buf.p, c.buf.len);
    rb_arena_t ar;
    rb_arena_init(&ar, 4096);
    assert_int_equal(kp_decode(&kp_metadata_req_desc, 9, true, &rd, &out, &ar), 0);
    assert_int_equal(out.topics.n, -1);
    rb_chain_free(&c);
    rb_arena_free(&ar);
}

/* A v0 Metadata request may not carry a null array (not nullable in v0). */
static void test_null_where_not_nullable(void **state) {
    (void)state;
    const uint8_t in[] = {0xff, 0xff, 0xff, 0xff};
    kp_metadata_req_t out;
    rb_rd_t rd;
    rb_rd_init(&rd, in, sizeof(in));
    rb_arena_t ar;
    rb_arena_init(&ar, 4096);
    assert_int_equal(kp_decode(&kp_metadata_req_desc, 0, false, &rd, &out, &ar), RB_ERR_MALFORMED);
    rb_arena_free(&ar);
}

/* An array count far larger than the bytes present fails before allocating. */
static void test_huge_array_count(void **state) {
    (void)state;
    const uint8_t in[] = {0x7f, 0xff, 0xff, 0xff, 0, 1, 'a'};
    kp_metadata_req_t out;
    rb_rd_t rd;
    rb_rd_init(&rd, in, sizeof(in));
    rb_arena_t ar;
    rb_arena_init(&ar, 1024);
    assert_int_equal(kp_decode(&kp_metadata_req_desc, 1, false, &rd, &out, &ar), RB_ERR_TRUNCATED);
    assert_int_equal(ar.ra_used, 0);
    rb_arena_free(&ar);
    /* negative counts other than -1 are malformed */
    const uint8_t neg[] = {0xff, 0xff, 0xff, 0xfe};
    rb_rd_init(&rd, neg, sizeof(neg));
    rb_arena_init(&ar, 1024);
    assert_int_equal(kp_decode(&kp_metadata_req_desc, 1, false, &rd, &out, &ar), RB_ERR_MALFORMED);
    rb_arena_free(&ar);
}

/* Tagged fields: a non-default one is written and read back; an unknown tag
 * is skipped; a tag whose size runs past the end fails. */
static void test_tagged_fields(void **state) {
    (void)state;
    kp_api_versions_resp_t resp, out;
    kp_init_defaults(&kp_api_versions_resp_desc, &resp);
    assert_int_equal(resp.finalized_features_epoch, -1);
    resp.finalized_features_epoch = 7;
    rb_chain_t c;
    encode_to(&kp_api_versions_resp_desc, 3, true, &resp, &c);
    rb_rd_t rd;
    rb_rd_init(&rd, c.buf.p, c.buf.len);
    rb_arena_t ar;
    rb_arena_init(&ar, 4096);
    assert_int_equal(kp_decode(&kp_api_versions_resp_desc, 3, true, &rd, &out, &ar), 0);
    assert_int_equal(out.finalized_features_epoch, 7);
    rb_chain_free(&c);
    /* hand-built: error 0, empty api_keys, throttle 0, 1 tag (#9, 2 bytes) */
    const uint8_t unk[] = {0, 0, 1, 0, 0, 0, 0, 1, 9, 2, 0xaa, 0xbb};
    rb_rd_init(&rd, unk, sizeof(unk));
    assert_int_equal(kp_decode(&kp_api_versions_resp_desc, 3, true, &rd, &out, &ar), 0);
    assert_int_equal(out.finalized_features_epoch, -1);
    const uint8_t bad[] = {0, 0, 1, 0, 0, 0, 0, 1, 9, 50, 0xaa};
    rb_rd_init(&rd, bad, sizeof(bad));
    assert_int_not_equal(kp_decode(&kp_api_versions_resp_desc, 3, true, &rd, &out, &ar), 0);
    rb_arena_free(&ar);
}

/* Every strict prefix of a populated Produce v9 request fails cleanly. */
static void test_truncation_every_prefix(void **state) {
    (void)state;
    kp_produce_req_t req, out;
    kp_init_defaults(&kp_produce_req_desc, &req);
    req.acks = -1;
    req.timeout_ms = 30000;
    kp_produce_req_topic_produce_data_t td;
    kp_init_defaults(&kp_produce_req_topic_produce_data_desc, &td);
    td.name.p = "orders";
    td.name.len = 6;
    kp_produce_req_partition_produce_data_t pd;
    kp_init_defaults(&kp_produce_req_partition_produce_data_desc, &pd);
    pd.index = 2;
    static const uint8_t recs[70] = {1, 2, 3};
    pd.records.p = recs;
    pd.records.len = sizeof(recs);
    td.partition_data.n = 1;
    td.partition_data.v = &pd;
    req.topic_data.n = 1;
    req.topic_data.v = &td;
    rb_chain_t c;
    encode_to(&kp_produce_req_desc, 9, true, &req, &c);
    for (size_t n = 0; n < c.buf.len; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, c.buf.p, n);
        rb_rd_t rd;
        rb_rd_init(&rd, copy, n);
        rb_arena_t ar;
        rb_arena_init(&ar, 1 << 16);
        assert_int_not_equal(kp_decode(&kp_produce_req_desc, 9, true, &rd, &out, &ar), 0);
        rb_arena_free(&ar);
        free(copy);
    }
    rb_rd_t rd;
    rb_rd_init(&rd, c.buf.p, c.buf.len);
    rb_arena_t ar;
    rb_arena_init(&ar, 1 << 16);
    assert_int_equal(kp_decode(&kp_produce_req_desc, 9, true, &rd, &out, &ar), 0);
    assert_int_equal(out.acks, -1);
    assert_int_equal(out.topic_data.n, 1);
    assert_int_equal(out.topic_data.v[0].partition_data.v[0].index, 2);
    assert_int_equal(out.topic_data.v[0].partition_data.v[0].records.len, 70);
    assert_int_equal(out.transactional_id.len, -1);
    rb_arena_free(&ar);
    rb_chain_free(&c);
}

/* Request header v1/v2 and the ApiVersions response header exception. */
static void test_headers(void **state) {
    (void)state;
    kp_req_header_t h = {KP_API_METADATA, 9, 42, {"cli", 3}}, out;
    rb_chain_t c;
    rb_chain_init(&c);
    kp_req_header_encode(&h, &c);
    const uint8_t want[] = {0, 3, 0, 9, 0, 0, 0, 42, 0, 3, 'c', 'l', 'i', 0};
    assert_int_equal(c.buf.len, sizeof(want));
    assert_memory_equal(c.buf.p, want, sizeof(want));
    rb_rd_t rd;
    rb_rd_init(&rd, c.buf.p, c.buf.len);
    assert_int_equal(kp_req_header_decode(&rd, &out), 0);
    assert_int_equal(out.correlation_id, 42);
    assert_int_equal(out.client_id.len, 3);
    rb_chain_free(&c);
    assert_int_equal(kp_resp_header_version(KP_API_API_VERSIONS, 3), 0);
    assert_int_equal(kp_resp_header_version(KP_API_METADATA, 9), 1);
    assert_int_equal(kp_resp_header_version(KP_API_METADATA, 8), 0);
    /* unknown api: only the fixed part is read */
    const uint8_t unk[] = {0x7f, 0, 0, 1, 0, 0, 0, 5};
    rb_rd_init(&rd, unk, sizeof(unk));
    assert_int_equal(kp_req_header_decode(&rd, &out), RB_ERR_NOT_FOUND);
    assert_int_equal(out.correlation_id, 5);
}

/* A records field that lives in a file becomes a file element of the chain. */
static void test_records_from_file(void **state) {
    (void)state;
    kp_fetch_resp_partition_data_t pd;
    kp_init_defaults(&kp_fetch_resp_partition_data_desc, &pd);
    pd.records.in_file = true;
    pd.records.fd = -1; /* not a real fd: the chain will not close it */
    pd.records.file_off = 100;
    pd.records.len = 5000;
    rb_chain_t c;
    encode_to(&kp_fetch_resp_partition_data_desc, 12, true, &pd, &c);
    size_t files = 0, total = 0;
    for (size_t i = 0; i < c.nels; i++) {
        total += c.els[i].len;
        if (c.els[i].is_file) {
            files++;
            assert_int_equal(c.els[i].off, 100);
            assert_int_equal(c.els[i].len, 5000);
        }
    }
    assert_int_equal(files, 1);
    assert_int_equal(total, c.total);
    rb_chain_free(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_all_versions), cmocka_unit_test(test_api_versions_v3_bytes),
        cmocka_unit_test(test_metadata_null_topics),   cmocka_unit_test(test_null_where_not_nullable),
        cmocka_unit_test(test_huge_array_count),       cmocka_unit_test(test_tagged_fields),
        cmocka_unit_test(test_truncation_every_prefix), cmocka_unit_test(test_headers),
        cmocka_unit_test(test_records_from_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
