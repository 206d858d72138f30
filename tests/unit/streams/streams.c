/* streams.c (test) — librill-streams through the test driver: serdes,
 * windowed keys, configuration checks, Topology describe text, every
 * stateless operation, grouping with and without repartition, count /
 * reduce / aggregate, the record cache (coalescing per key until commit,
 * flush when over budget), changelog records, tables, the processor API
 * with stores and both kinds of punctuation, and the drop/skip metrics. */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <glib.h>
#include <jansson.h>

#include "rill/streams.h"
#include "streams/streams_int.h" /* rs__config_eos, rs__config_commit_interval */

/* ---- helpers ---- */

static rs_driver *driver(rs_topology *t, rs_config *c) {
    char err[256] = "";
    rs_driver *d = rs_driver_new(t, c, 0, err, sizeof(err));
    assert_non_null(d);
    return d;
}

static rs_topology *build(rs_builder *b) {
    char err[256] = "";
    rs_topology *t = rs_builder_build(b, err, sizeof(err));
    if (!t) fail_msg("build: %s", err);
    return t;
}

static bool bytes_eq(rs_bytes b, const char *s) {
    if (!s) return b.data == NULL;
    return b.data && b.len == strlen(s) && !memcmp(b.data, s, b.len);
}

/* reads the next record of topic and checks key and value strings */
static void expect(rs_driver *d, const char *topic, const char *key, const char *value) {
    rs_record r;
    if (!rs_driver_read(d, topic, &r)) fail_msg("no record on %s (want %s=%s)", topic, key, value);
    if (!bytes_eq(r.key, key) || !bytes_eq(r.value, value))
        fail_msg("%s: got %.*s=%.*s want %s=%s", topic, (int)r.key.len, r.key.data ? (const char *)r.key.data : "",
                 (int)r.value.len, r.value.data ? (const char *)r.value.data : "", key, value);
}

static void expect_count(rs_driver *d, const char *topic, const char *key, int64_t n) {
    rs_record r;
    if (!rs_driver_read(d, topic, &r)) fail_msg("no record on %s (want %s=%lld)", topic, key, (long long)n);
    int64_t v;
    assert_true(bytes_eq(r.key, key));
    assert_int_equal(rs_bytes_to_int64(r.value, &v), 0);
    assert_int_equal(v, n);
}

/* ---- serdes ---- */

static void test_serdes(void **state) {
    (void)state;
    rs_buf b;
    rs_buf_init(&b);
    int64_t i = -2, i2 = 0;
    assert_int_equal(rs_serialize(&rs_serde_int64, &i, &b), 0);
    assert_int_equal(b.len, 8);
    assert_int_equal(b.data[0], 0xff); /* big-endian, as Kafka's LongSerializer */
    assert_int_equal(b.data[7], 0xfe);
    assert_int_equal(rs_deserialize(&rs_serde_int64, rs_buf_bytes(&b), &i2), 0);
    assert_int_equal(i2, -2);
    assert_int_equal(rs_deserialize(&rs_serde_int64, (rs_bytes){"abc", 3}, &i2), -1);
    assert_int_equal(rs_deserialize(&rs_serde_int64, RS_NULL_BYTES, &i2), -1);
    b.len = 0;
    double dv = 1.5, dv2 = 0;
    rs_serialize(&rs_serde_double, &dv, &b);
    static const uint8_t one_half[8] = {0x3f, 0xf8, 0, 0, 0, 0, 0, 0};
    assert_memory_equal(b.data, one_half, 8);
    assert_int_equal(rs_deserialize(&rs_serde_double, rs_buf_bytes(&b), &dv2), 0);
    assert_true(dv2 == 1.5);
    b.len = 0;
    const char *s = "héllo";
    char *s2 = NULL;
    rs_serialize(&rs_serde_string, &s, &b);
    assert_int_equal(rs_deserialize(&rs_serde_string, rs_buf_bytes(&b), &s2), 0);
    assert_string_equal(s2, s);
    rs_serde_free(&rs_serde_string, &s2);
    assert_null(s2);
    assert_int_equal(rs_deserialize(&rs_serde_string, (rs_bytes){"a\0b", 3}, &s2), -1);
    /* JSON through jansson; malformed input refused */
    json_t *j = json_pack("{s:i,s:s}", "price", 42, "sym", "ACME"), *j2 = NULL;
    b.len = 0;
    assert_int_equal(rs_serialize(&rs_serde_json, &j, &b), 0);
    assert_int_equal(rs_deserialize(&rs_serde_json, rs_buf_bytes(&b), &j2), 0);
    assert_true(json_equal(j, j2));
    rs_serde_free(&rs_serde_json, &j2);
    json_decref(j);
    assert_int_equal(rs_deserialize(&rs_serde_json, (rs_bytes){"{\"a\":", 5}, &j2), -1);
    assert_int_equal(rs_deserialize(&rs_serde_json, (rs_bytes){"{\"a\":1,\"a\":2}", 13}, &j2), -1);
    /* bytes serde: no copy, refuses null */
    rs_bytes in = {"xy", 2}, outb;
    assert_int_equal(rs_deserialize(&rs_serde_bytes, in, &outb), 0);
    assert_ptr_equal(outb.data, in.data);
    assert_int_equal(rs_deserialize(&rs_serde_bytes, RS_NULL_BYTES, &outb), -1);
    /* windowed key: key ++ start ++ end, each int64 big-endian */
    b.len = 0;
    rs_windowed_key wk = {{"k1", 2}, 5000, 10000}, wk2;
    rs_windowed_key_encode(&wk, &b);
    assert_int_equal(b.len, 18);
    assert_int_equal(rs_windowed_key_decode(rs_buf_bytes(&b), &wk2), 0);
    assert_true(bytes_eq(wk2.key, "k1"));
    assert_int_equal(wk2.start, 5000);
    assert_int_equal(wk2.end, 10000);
    assert_int_equal(rs_windowed_key_decode((rs_bytes){"short", 5}, &wk2), -1);
    rs_buf_free(&b);
}

static void test_config(void **state) {
    (void)state;
    rs_config *c = rs_config_new();
    char err[256];
    assert_int_equal(rs_config_set(c, "application.id", "wordcount", err, sizeof(err)), 0);
    assert_int_equal(rs_config_set(c, "application.id", "bad id!", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "application.id"));
    assert_int_equal(rs_config_set(c, "num.stream.threads", "0", err, sizeof(err)), -1);
    assert_int_equal(rs_config_set(c, "num.stream.threads", "2", err, sizeof(err)), 0);
    assert_int_equal(rs_config_set(c, "commit.interval.ms", "-1", err, sizeof(err)), -1);
    assert_int_equal(rs_config_set(c, "commit.interval.ms", "12x", err, sizeof(err)), -1);
    /* Kafka's names: exactly_once_v2; the removed v1 names are refused with
     * a message naming the one to use; an unknown value keeps the old one */
    assert_int_equal(rs_config_set(c, "processing.guarantee", "exactly_once_v2", err, sizeof(err)), 0);
    assert_string_equal(rs_config_get(c, "processing.guarantee"), "exactly_once_v2");
    assert_int_equal(rs_config_set(c, "processing.guarantee", "exactly_once", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "exactly_once_v2"));
    assert_int_equal(rs_config_set(c, "processing.guarantee", "exactly_once_beta", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "exactly_once_v2"));
    assert_int_equal(rs_config_set(c, "processing.guarantee", "EXACTLY_ONCE_V2", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "processing.guarantee"));
    assert_string_equal(rs_config_get(c, "processing.guarantee"), "exactly_once_v2");
    assert_int_equal(rs_config_set(c, "processing.guarantee", "at_least_once", err, sizeof(err)), 0);
    assert_int_equal(rs_config_set(c, "default.dsl.store", "rocksDB", err, sizeof(err)), 0);
    assert_int_equal(rs_config_set(c, "default.dsl.store", "leveldb", err, sizeof(err)), -1);
    assert_int_equal(rs_config_set(c, "linger.ms", "5", err, sizeof(err)), 0); /* for librdkafka */
    assert_string_equal(rs_config_get(c, "application.id"), "wordcount");
    assert_string_equal(rs_config_get(c, "linger.ms"), "5");
    assert_null(rs_config_get(c, "state.dir"));
    rs_config_free(c);
}

/* the defaults that follow processing.guarantee: commit.interval.ms is 100
 * under exactly_once_v2 (Kafka's EOS default), 30000 otherwise, unless set */
static void test_config_guarantee_defaults(void **state) {
    (void)state;
    rs_config *c = rs_config_new();
    char err[256];
    assert_false(rs__config_eos(c));
    assert_int_equal(rs__config_commit_interval(c), 30000);
    assert_int_equal(rs_config_set(c, "processing.guarantee", "exactly_once_v2", err, sizeof(err)), 0);
    assert_true(rs__config_eos(c));
    assert_int_equal(rs__config_commit_interval(c), 100);
    assert_int_equal(rs_config_set(c, "commit.interval.ms", "250", err, sizeof(err)), 0);
    assert_int_equal(rs__config_commit_interval(c), 250);
    assert_int_equal(rs_config_set(c, "processing.guarantee", "at_least_once", err, sizeof(err)), 0);
    assert_false(rs__config_eos(c));
    assert_int_equal(rs__config_commit_interval(c), 250);
    rs_config_free(c);
}

/* ---- stateless operations ---- */

static bool starts_with_a(const rs_record *r, void *ctx) {
    return r->value.len > 0 && ((const char *)r->value.data)[0] == 'a';
}
static void upper_value(const rs_record *r, rs_emitter *e, void *ctx) {
    char buf[64];
    size_t n = r->value.len < sizeof(buf) ? r->value.len : sizeof(buf);
    for (size_t i = 0; i < n; i++) buf[i] = (char)toupper(((const char *)r->value.data)[i]);
    rs_emit(e, RS_NULL_BYTES, (rs_bytes){buf, n});
}
static void split_words(const rs_record *r, rs_emitter *e, void *ctx) {
    const char *p = r->value.data, *end = p + r->value.len;
    while (p < end) {
        while (p < end && *p == ' ') p++;
        const char *w = p;
        while (p < end && *p != ' ') p++;
        if (p > w) rs_emit(e, (rs_bytes){w, (size_t)(p - w)}, (rs_bytes){w, (size_t)(p - w)});
    }
}
static void swap_kv(const rs_record *r, rs_emitter *e, void *ctx) { rs_emit(e, r->value, r->key); }
static void key_is_len(const rs_record *r, rs_buf *out, void *ctx) {
    char k[24];
    rs_buf_append(out, k, (size_t)snprintf(k, sizeof(k), "%zu", r->value.len));
}
static void count_calls(const rs_record *r, void *ctx) { (*(int *)ctx)++; }
static int32_t part_by_len(const rs_record *r, int32_t n, void *ctx) {
    (*(int *)ctx)++;
    assert_int_equal(n, 1); /* the driver's topics have one partition */
    return r->value.len > 6 ? 1 : 0; /* 1 is out of range: dropped */
}

static void test_stateless(void **state) {
    (void)state;
    int peeked = 0, eached = 0;
    rs_builder *b = rs_builder_new();
    rs_stream *in = rs_stream_from_topic(b, "in");
    rs_stream_to(rs_stream_filter(in, starts_with_a, NULL, NULL), "a-only", NULL);
    rs_stream_to(rs_stream_filter_not(in, starts_with_a, NULL, NULL), "not-a", NULL);
    rs_stream_to(rs_stream_map_values(rs_stream_peek(in, count_calls, &peeked, NULL), upper_value, NULL, NULL), "upper",
                 NULL);
    rs_stream_to(rs_stream_flat_map(in, split_words, NULL, NULL), "words", NULL);
    rs_stream_to(rs_stream_map(in, swap_kv, NULL, NULL), "swapped", NULL);
    rs_stream_to(rs_stream_select_key(in, key_is_len, NULL, NULL), "by-len", NULL);
    rs_stream_foreach(in, count_calls, &eached, NULL);
    int parted = 0;
    rs_stream_to(in, "partitioned", &(rs_produced){part_by_len, &parted});
    rs_topology *t = build(b);
    rs_driver *d = driver(t, NULL);
    assert_int_equal(rs_driver_pipe_str(d, "in", "k1", "apple pie", 10), 0);
    assert_int_equal(rs_driver_pipe_str(d, "in", "k2", "banana", 11), 0);
    assert_int_equal(rs_driver_pipe_str(d, "nobody-reads-this", "k", "v", 1), -1);
    expect(d, "a-only", "k1", "apple pie");
    assert_int_equal(rs_driver_queue_size(d, "a-only"), 0);
    expect(d, "not-a", "k2", "banana");
    expect(d, "upper", "k1", "APPLE PIE");
    expect(d, "upper", "k2", "BANANA");
    expect(d, "words", "apple", "apple");
    expect(d, "words", "pie", "pie");
    expect(d, "words", "banana", "banana");
    expect(d, "swapped", "apple pie", "k1");
    expect(d, "by-len", "9", "apple pie");
    expect(d, "by-len", "6", "banana");
    rs_record r;
    assert_false(rs_driver_read(d, "words", &r));
    /* headers travel through map_values to the sink */
    rs_header hs[2] = {{"trace", {"abc", 3}}, {"empty", RS_NULL_BYTES}};
    rs_record in_h = {.key = rs_str("k3"), .value = rs_str("avocado"), .timestamp = 12, .headers = hs,
                      .header_count = 2};
    assert_int_equal(rs_driver_pipe_record(d, "in", &in_h), 0);
    assert_true(rs_driver_read(d, "upper", &r));
    assert_true(bytes_eq(r.value, "AVOCADO"));
    assert_int_equal(r.header_count, 2);
    assert_string_equal(r.headers[0].key, "trace");
    assert_true(bytes_eq(r.headers[0].value, "abc"));
    assert_string_equal(r.headers[1].key, "empty");
    assert_null(r.headers[1].value.data);
    assert_true(rs_driver_read(d, "a-only", &r));
    assert_int_equal(r.header_count, 2);
    assert_int_equal(peeked, 3);
    assert_int_equal(eached, 3);
    assert_int_equal(parted, 3);
    expect(d, "partitioned", "k2", "banana"); /* "apple pie", "avocado" went to partition 1: dropped */
    assert_int_equal(rs_driver_queue_size(d, "partitioned"), 0);
    assert_int_equal(rs_driver_metric(d, "dropped-records"), 2);
    assert_int_equal(rs_driver_metric(d, "process-total"), 3);
    rs_driver_free(d);
    rs_topology_free(t);
    rs_builder_free(b);
}

static bool is_small(const rs_record *r, void *ctx) { return r->value.len < 4; }
static bool is_medium(const rs_record *r, void *ctx) { return r->value.len < 8; }

static void test_split_merge(void **state) {
    (void)state;
    rs_builder *b = rs_builder_new();
    rs_stream *in = rs_stream_from_topic(b, "in");
    rs_stream *br[3];
    rs_predicate_fn preds[2] = {is_small, is_medium};
    rs_stream_split(in, 2, preds, NULL, true, br);
    rs_stream_to(br[0], "small", NULL);
    rs_stream_to(br[1], "medium", NULL);
    rs_stream_to(br[2], "large", NULL);
    /* a merge of two sources */
    rs_stream *other = rs_stream_from_topic(b, "in2");
    rs_stream_to(rs_stream_merge(br[0], other, "merged"), "small-or-in2", NULL);
    rs_topology *t = build(b);
    rs_driver *d = driver(t, NULL);
    rs_driver_pipe_str(d, "in", "a", "xy", 1);       /* small only (first match) */
    rs_driver_pipe_str(d, "in", "b", "xyzxyz", 2);   /* medium */
    rs_driver_pipe_str(d, "in", "c", "xyzxyzxyz", 3); /* default */
    rs_driver_pipe_str(d, "in2", "d", "zzzzzzzzzzz", 4);
    expect(d, "small", "a", "xy");
    expect(d, "medium", "b", "xyzxyz");
    expect(d, "large", "c", "xyzxyzxyz");
    expect(d, "small-or-in2", "a", "xy");
    expect(d, "small-or-in2", "d", "zzzzzzzzzzz");
    assert_int_equal(rs_driver_queue_size(d, "small") + rs_driver_queue_size(d, "medium") +
                         rs_driver_queue_size(d, "large") + rs_driver_queue_size(d, "small-or-in2"),
                     0);
    rs_driver_free(d);
    rs_topology_free(t);
    rs_builder_free(b);
}

/* ---- describe ---- */

static void lower_words(const rs_record *r, rs_emitter *e, void *ctx) { split_words(r, e, ctx); }
static void word_key(const rs_record *r, rs_buf *out, void *ctx) { rs_buf_append(out, r->value.data, r->value.len); }

static void test_describe(void **state) {
    (void)state;
    rs_builder *b = rs_builder_new();
    rs_stream *words = rs_stream_flat_map_values(rs_stream_from_topic(b, "lines"), lower_words, NULL, NULL);
    rs_table *counts = rs_grouped_count(rs_stream_group_by(words, word_key, NULL, NULL),
                                        &(rs_materialized){.store_name = "counts"});
    rs_stream_to(rs_table_to_stream(counts, NULL), "wordcount-output", NULL);
    rs_topology *t = build(b);
    char *text = rs_topology_describe(t);
    const char *want =
        "Topologies:\n"
        "   Sub-topology: 0\n"
        "    Source: KSTREAM-SOURCE-0000000000 (topics: [lines])\n"
        "      --> KSTREAM-FLATMAPVALUES-0000000001\n"
        "    Processor: KSTREAM-FLATMAPVALUES-0000000001 (stores: [])\n"
        "      --> KSTREAM-KEY-SELECT-0000000002\n"
        "      <-- KSTREAM-SOURCE-0000000000\n"
        "    Processor: KSTREAM-KEY-SELECT-0000000002 (stores: [])\n"
        "      --> KSTREAM-SINK-0000000003\n"
        "      <-- KSTREAM-FLATMAPVALUES-0000000001\n"
        "    Sink: KSTREAM-SINK-0000000003 (topic: counts-repartition)\n"
        "      <-- KSTREAM-KEY-SELECT-0000000002\n"
        "\n"
        "   Sub-topology: 1\n"
        "    Source: KSTREAM-SOURCE-0000000004 (topics: [counts-repartition])\n"
        "      --> KSTREAM-AGGREGATE-0000000005\n"
        "    Processor: KSTREAM-AGGREGATE-0000000005 (stores: [counts])\n"
        "      --> KTABLE-TOSTREAM-0000000006\n"
        "      <-- KSTREAM-SOURCE-0000000004\n"
        "    Processor: KTABLE-TOSTREAM-0000000006 (stores: [])\n"
        "      --> KSTREAM-SINK-0000000007\n"
        "      <-- KSTREAM-AGGREGATE-0000000005\n"
        "    Sink: KSTREAM-SINK-0000000007 (topic: wordcount-output)\n"
        "      <-- KTABLE-TOSTREAM-0000000006\n"
        "\n";
    if (strcmp(text, want)) fail_msg("describe:\n%s", text);
    free(text);
    /* building twice, or a duplicate name, is an error */
    char err[128];
    assert_null(rs_builder_build(b, err, sizeof(err)));
    rs_topology_free(t);
    rs_builder_free(b);
    b = rs_builder_new();
    rs_stream *s = rs_stream_from_topic(b, "x");
    rs_stream_filter(s, is_small, NULL, "same");
    rs_stream_filter(s, is_small, NULL, "same");
    assert_null(rs_builder_build(b, err, sizeof(err)));
    assert_non_null(strstr(err, "duplicate"));
    rs_builder_free(b);
}

/* ---- stateful ---- */

static rs_topology *wordcount(rs_builder *b, const rs_materialized *m) {
    rs_stream *words = rs_stream_flat_map_values(rs_stream_from_topic(b, "lines"), lower_words, NULL, NULL);
    rs_table *counts = rs_grouped_count(rs_stream_group_by(words, word_key, NULL, NULL), m);
    rs_stream_to(rs_table_to_stream(counts, NULL), "counts-out", NULL);
    return build(b);
}

static void test_count_repartition(void **state) {
    (void)state;
    rs_builder *b = rs_builder_new();
    rs_topology *t = wordcount(b, &(rs_materialized){.store_name = "counts"});
    rs_config *c = rs_config_new();
    rs_config_set(c, "application.id", "wc", NULL, 0);
    rs_driver *d = driver(t, c);
    rs_driver_pipe_str(d, "lines", NULL, "a b a", 1);
    rs_driver_pipe_str(d, "lines", NULL, "b", 2);
    /* through the repartition topic, which is named after application.id */
    assert_int_equal(rs_driver_queue_size(d, "wc-counts-repartition"), 4);
    /* auto-commit after each input record: the cache coalesced a=1,a=2 */
    expect_count(d, "counts-out", "a", 2);
    expect_count(d, "counts-out", "b", 1);
    expect_count(d, "counts-out", "b", 2);
    assert_int_equal(rs_driver_queue_size(d, "counts-out"), 0);
    /* the changelog carries the same updates */
    assert_int_equal(rs_driver_queue_size(d, "wc-counts-changelog"), 3);
    rs_kv_store *s = rs_driver_kv_store(d, "counts");
    assert_non_null(s);
    rs_buf v;
    rs_buf_init(&v);
    int64_t n = 0;
    assert_int_equal(rs_kv_get(s, rs_str("a"), &v), 1);
    rs_bytes_to_int64(rs_buf_bytes(&v), &n);
    assert_int_equal(n, 2);
    v.len = 0;
    assert_int_equal(rs_kv_get(s, rs_str("zzz"), &v), 0);
    assert_int_equal(rs_kv_count(s), 2);
    rs_buf_free(&v);
    rs_driver_free(d);
    rs_config_free(c);
    rs_topology_free(t);
    rs_builder_free(b);
}

static void test_cache_coalescing(void **state) {
    (void)state;
    rs_builder *b = rs_builder_new();
    rs_topology *t = wordcount(b, &(rs_materialized){.store_name = "counts"});
    rs_config *c = rs_config_new();
    rs_config_set(c, "commit.interval.ms", "1000", NULL, 0);
    rs_driver *d = driver(t, c);
    rs_driver_set_auto_commit(d, false);
    for (int i = 0; i < 100; i++) rs_driver_pipe_str(d, "lines", NULL, "x y x", i);
    /* nothing downstream until a commit */
    assert_int_equal(rs_driver_queue_size(d, "counts-out"), 0);
    rs_driver_advance_wall_clock(d, 999);
    assert_int_equal(rs_driver_queue_size(d, "counts-out"), 0);
    rs_driver_advance_wall_clock(d, 1); /* commit.interval.ms reached */
    expect_count(d, "counts-out", "x", 200);
    expect_count(d, "counts-out", "y", 100);
    assert_int_equal(rs_driver_queue_size(d, "counts-out"), 0);
    rs_driver_free(d);
    rs_config_free(c);
    /* no caching: every update goes downstream */
    rs_driver *d2 = driver(t, NULL);
    rs_driver_free(d2);
    rs_topology_free(t);
    rs_builder_free(b);
    b = rs_builder_new();
    t = wordcount(b, &(rs_materialized){.store_name = "counts", .no_caching = true, .no_logging = true});
    d = driver(t, NULL);
    rs_driver_set_auto_commit(d, false);
    rs_driver_pipe_str(d, "lines", NULL, "x y x", 0);
    expect_count(d, "counts-out", "x", 1);
    expect_count(d, "counts-out", "y", 1);
    expect_count(d, "counts-out", "x", 2);
    assert_int_equal(rs_driver_queue_size(d, "rill-streams-test-counts-changelog"), 0);
    rs_driver_free(d);
    rs_topology_free(t);
    rs_builder_free(b);
    /* a tiny cache budget flushes before commit */
    b = rs_builder_new();
    t = wordcount(b, &(rs_materialized){.store_name = "counts"});
    c = rs_config_new();
    rs_config_set(c, "cache.max.bytes.buffering", "200", NULL, 0);
    d = driver(t, c);
    rs_driver_set_auto_commit(d, false);
    rs_driver_pipe_str(d, "lines", NULL, "a b c d e f g h", 0);
    assert_true(rs_driver_queue_size(d, "counts-out") > 0);
    rs_driver_commit(d);
    assert_int_equal(rs_driver_queue_size(d, "counts-out"), 8);
    rs_driver_free(d);
    rs_config_free(c);
    rs_topology_free(t);
    rs_builder_free(b);
    /* one budget for all tasks of a thread: a second sub-topology's store
     * overflows what the first one's entries already use (an entry of a
     * 1-byte key is 1 + 8 + 64 accounted bytes) */
    b = rs_builder_new();
    rs_stream_to(rs_table_to_stream(rs_grouped_count(rs_stream_group_by_key(rs_stream_flat_map(
                                         rs_stream_from_topic(b, "t1"), split_words, NULL, NULL)), NULL), NULL),
                 "out1", NULL);
    rs_stream_to(rs_table_to_stream(rs_grouped_count(rs_stream_group_by_key(rs_stream_flat_map(
                                         rs_stream_from_topic(b, "t2"), split_words, NULL, NULL)), NULL), NULL),
                 "out2", NULL);
    t = build(b);
    c = rs_config_new();
    rs_config_set(c, "cache.max.bytes.buffering", "300", NULL, 0);
    rs_config_set(c, "default.dsl.store", "in_memory", NULL, 0);
    d = driver(t, c);
    rs_driver_set_auto_commit(d, false);
    rs_driver_pipe_str(d, "t1", NULL, "a b", 0); /* 146 bytes */
    rs_driver_pipe_str(d, "t2", NULL, "c d", 0); /* 292 */
    assert_int_equal(rs_driver_queue_size(d, "out1") + rs_driver_queue_size(d, "out2"), 0);
    rs_driver_pipe_str(d, "t2", NULL, "e", 0); /* 365 > 300: the writing store flushes */
    assert_int_equal(rs_driver_queue_size(d, "out1"), 0);
    assert_int_equal(rs_driver_queue_size(d, "out2"), 3);
    rs_driver_commit(d);
    assert_int_equal(rs_driver_queue_size(d, "out1"), 2);
    rs_driver_free(d);
    rs_config_free(c);
    rs_topology_free(t);
    rs_builder_free(b);
}

static void concat(rs_bytes agg, rs_bytes value, rs_buf *out, void *ctx) {
    rs_buf_append(out, agg.data, agg.len);
    rs_buf_append(out, "+", 1);
    rs_buf_append(out, value.data, value.len);
}
static void init_sum(rs_buf *out, void *ctx) {
    uint8_t b[8];
    rs_buf_append(out, rs_int64_to_bytes(0, b).data, 8);
}
static void add_len(rs_bytes key, rs_bytes value, rs_bytes agg, rs_buf *out, void *ctx) {
    int64_t s = 0;
    rs_bytes_to_int64(agg, &s);
    uint8_t b[8];
    rs_buf_append(out, rs_int64_to_bytes(s + (int64_t)value.len, b).data, 8);
}

static void test_reduce_aggregate_table(void **state) {
    (void)state;
    rs_builder *b = rs_builder_new();
    rs_stream *in = rs_stream_from_topic(b, "in");
    rs_table *red = rs_grouped_reduce(rs_stream_group_by_key(in), concat, NULL, NULL);
    rs_stream_to(rs_table_to_stream(red, NULL), "reduced", NULL);
    rs_table *agg = rs_grouped_aggregate(rs_stream_group_by_key(in), init_sum, add_len, NULL,
                                         &(rs_materialized){.store_name = "lens"});
    rs_stream_to(rs_table_to_stream(agg, NULL), "lens-out", NULL);
    rs_table *tab = rs_table_from(b, "tab", NULL, &(rs_materialized){.store_name = "tab-store"});
    rs_stream_to(rs_table_to_stream(tab, NULL), "tab-out", NULL);
    rs_topology *t = build(b);
    char *desc = rs_topology_describe(t);
    /* group_by_key needs no repartition: one sub-topology for in, one for tab */
    assert_null(strstr(desc, "repartition"));
    assert_non_null(strstr(desc, "Sub-topology: 1"));
    assert_null(strstr(desc, "Sub-topology: 2"));
    free(desc);
    rs_driver *d = driver(t, NULL);
    rs_driver_pipe_str(d, "in", "k", "a", 1);
    rs_driver_pipe_str(d, "in", "k", "bb", 2);
    rs_driver_pipe_str(d, "in", NULL, "dropped: null key", 3);
    rs_driver_pipe_str(d, "in", "j", "ccc", 4);
    expect(d, "reduced", "k", "a");
    expect(d, "reduced", "k", "a+bb");
    expect(d, "reduced", "j", "ccc");
    expect_count(d, "lens-out", "k", 1);
    expect_count(d, "lens-out", "k", 3);
    expect_count(d, "lens-out", "j", 3);
    assert_int_equal(rs_driver_metric(d, "dropped-records"), 2); /* once per aggregation */
    rs_driver_pipe_str(d, "tab", "x", "1", 5);
    rs_driver_pipe_str(d, "tab", "x", "2", 6);
    rs_driver_pipe(d, "tab", rs_str("x"), RS_NULL_BYTES, 7); /* tombstone */
    rs_driver_pipe_str(d, "tab", "y", "9", 8);
    expect(d, "tab-out", "x", "1");
    expect(d, "tab-out", "x", "2");
    expect(d, "tab-out", "x", NULL);
    expect(d, "tab-out", "y", "9");
    rs_kv_store *s = rs_driver_kv_store(d, "tab-store");
    rs_buf v;
    rs_buf_init(&v);
    assert_int_equal(rs_kv_get(s, rs_str("x"), &v), 0);
    assert_int_equal(rs_kv_get(s, rs_str("y"), &v), 1);
    assert_true(bytes_eq(rs_buf_bytes(&v), "9"));
    rs_buf_free(&v);
    assert_int_equal(rs_driver_metric(d, "no-such-metric"), -1);
    rs_driver_free(d);
    rs_topology_free(t);
    rs_builder_free(b);
}

/* ---- processor API ---- */

typedef struct {
    int inits, closes;
    int64_t wall_fires[8];
    int nwall;
} proc_ctx;

static void on_stream_time(rs_pctx *pc, int64_t now, void *st) {
    /* emit every stored key's running total and clear the store */
    rs_kv_store *s = rs_pctx_kv_store(pc, "totals");
    char key[32];
    int n = snprintf(key, sizeof(key), "tick@%lld", (long long)now);
    uint8_t b[8];
    rs_forward(pc, (rs_bytes){key, (size_t)n}, rs_int64_to_bytes((int64_t)rs_kv_count(s), b), now);
}
static void on_wall(rs_pctx *pc, int64_t now, void *st) {
    proc_ctx *c = st;
    if (c->nwall < 8) c->wall_fires[c->nwall++] = now;
}
static void *proc_init(rs_pctx *pc, void *ctx) {
    proc_ctx *c = ctx;
    c->inits++;
    assert_int_equal(rs_pctx_schedule(pc, 10, RS_PUNCT_STREAM_TIME, on_stream_time), 0);
    assert_int_equal(rs_pctx_schedule(pc, 100, RS_PUNCT_WALL_CLOCK, on_wall), 0);
    assert_int_equal(rs_pctx_schedule(pc, 0, RS_PUNCT_WALL_CLOCK, on_wall), -1);
    assert_null(rs_pctx_kv_store(pc, "not-connected"));
    return c;
}
static void proc_process(rs_pctx *pc, const rs_record *r, void *st) {
    rs_kv_store *s = rs_pctx_kv_store(pc, "totals");
    assert_non_null(s);
    rs_buf v;
    rs_buf_init(&v);
    int64_t total = 0;
    if (rs_kv_get(s, r->key, &v)) rs_bytes_to_int64(rs_buf_bytes(&v), &total);
    uint8_t b[8];
    rs_kv_put(s, r->key, rs_int64_to_bytes(total + 1, b));
    rs_buf_free(&v);
    assert_int_equal(rs_pctx_partition(pc), 0);
}
static void proc_close(void *st) { ((proc_ctx *)st)->closes++; }

static int collect_keys(rs_bytes k, rs_bytes v, void *arg) {
    rs_buf *b = arg;
    rs_buf_append(b, k.data, k.len);
    rs_buf_append(b, ",", 1);
    return 0;
}

static void test_processor_api(void **state) {
    (void)state;
    proc_ctx pc = {0};
    rs_builder *b = rs_builder_new();
    assert_int_equal(rs_builder_add_kv_store(b, "totals", NULL), 0);
    assert_int_equal(rs_builder_add_kv_store(b, "totals", NULL), -1);
    rs_processor_def def = {proc_init, proc_process, proc_close, &pc};
    const char *stores[] = {"totals"};
    const char *missing[] = {"nope"};
    rs_stream *in = rs_stream_from_topic(b, "in");
    assert_null(rs_stream_process(in, &def, missing, 1, NULL));
    rs_stream_to(rs_stream_process(in, &def, stores, 1, "counter"), "ticks", NULL);
    rs_topology *t = build(b);
    char *desc = rs_topology_describe(t);
    assert_non_null(strstr(desc, "Processor: counter (stores: [totals])"));
    free(desc);
    rs_driver *d = driver(t, NULL);
    assert_int_equal(pc.inits, 1);
    rs_driver_pipe_str(d, "in", "a", "", 100); /* first stream time: schedules from 100 */
    rs_driver_pipe_str(d, "in", "b", "", 105);
    assert_int_equal(rs_driver_queue_size(d, "ticks"), 0);
    rs_driver_pipe_str(d, "in", "c", "", 131); /* passes 110, 120, 130 */
    expect_count(d, "ticks", "tick@110", 3);
    expect_count(d, "ticks", "tick@120", 3);
    expect_count(d, "ticks", "tick@130", 3);
    assert_int_equal(rs_driver_queue_size(d, "ticks"), 0);
    rs_driver_pipe_str(d, "in", "a", "", 50); /* out of order: stream time stays 131 */
    assert_int_equal(rs_driver_queue_size(d, "ticks"), 0);
    rs_driver_advance_wall_clock(d, 99);
    assert_int_equal(pc.nwall, 0);
    rs_driver_advance_wall_clock(d, 250);
    assert_int_equal(pc.nwall, 3);
    assert_int_equal(pc.wall_fires[0], 100);
    assert_int_equal(pc.wall_fires[2], 300);
    assert_int_equal(rs_driver_metric(d, "punctuate-total"), 6);
    rs_kv_store *s = rs_driver_kv_store(d, "totals");
    rs_buf keys;
    rs_buf_init(&keys);
    rs_kv_range(s, RS_NULL_BYTES, RS_NULL_BYTES, collect_keys, &keys);
    assert_true(bytes_eq(rs_buf_bytes(&keys), "a,b,c,"));
    keys.len = 0;
    rs_kv_range(s, rs_str("b"), rs_str("c"), collect_keys, &keys);
    assert_true(bytes_eq(rs_buf_bytes(&keys), "b,c,"));
    rs_buf_free(&keys);
    rs_driver_free(d);
    assert_int_equal(pc.closes, 1);
    rs_topology_free(t);
    rs_builder_free(b);
}

/* ---- time: extractors, invalid timestamps, serde validation ---- */

static void test_time_and_skips(void **state) {
    (void)state;
    rs_builder *b = rs_builder_new();
    rs_consumed cons = {.value_serde = &rs_serde_json, .timestamp_fn = rs_json_field_timestamp, .timestamp_ctx = "ts"};
    const char *topic = "events";
    rs_stream_to(rs_stream_from(b, &topic, 1, &cons), "out", NULL);
    rs_stream_to(rs_stream_from_pattern(b, "^metrics-[0-9]+$", NULL), "metrics-out", NULL);
    rs_topology *t = build(b);
    rs_driver *d = driver(t, NULL);
    rs_driver_pipe_str(d, "events", "k", "{\"ts\": 12345, \"v\": 1}", 1);
    rs_driver_pipe_str(d, "events", "k", "{\"v\": 2}", 7);   /* no field: record time */
    rs_driver_pipe_str(d, "events", "k", "not json", 8);    /* skipped by the serde */
    rs_driver_pipe_str(d, "events", "k", "{\"ts\": -5}", 9); /* negative: dropped */
    rs_record r;
    assert_true(rs_driver_read(d, "out", &r));
    assert_int_equal(r.timestamp, 12345);
    assert_true(rs_driver_read(d, "out", &r));
    assert_int_equal(r.timestamp, 7);
    assert_false(rs_driver_read(d, "out", &r));
    assert_int_equal(rs_driver_metric(d, "skipped-records"), 1);
    assert_int_equal(rs_driver_metric(d, "dropped-records"), 1);
    assert_int_equal(rs_driver_pipe_str(d, "metrics-12", "m", "1", 1), 0);
    assert_int_equal(rs_driver_pipe_str(d, "metrics-x", "m", "1", 1), -1);
    expect(d, "metrics-out", "m", "1");
    rs_driver_free(d);
    /* default.timestamp.extractor=wallclock: the driver's clock, not the record's */
    rs_config *c = rs_config_new();
    assert_int_equal(rs_config_set(c, "default.timestamp.extractor", "wallclock", NULL, 0), 0);
    char err[128];
    d = rs_driver_new(t, c, 5000, err, sizeof(err));
    rs_driver_advance_wall_clock(d, 250);
    rs_driver_pipe_str(d, "metrics-1", "m", "1", 7);
    assert_true(rs_driver_read(d, "metrics-out", &r));
    assert_int_equal(r.timestamp, 5250);
    rs_driver_free(d);
    rs_config_free(c);
    rs_topology_free(t);
    rs_builder_free(b);
}

/* the same word count on both store types; RocksDB files under state.dir
 * survive the driver and are found again by the next one */
static void test_store_types(void **state) {
    (void)state;
    char *dir = g_dir_make_tmp("rill-streams-test-XXXXXX", NULL);
    assert_non_null(dir);
    const char *types[] = {"in_memory", "rocksDB"};
    for (int ti = 0; ti < 2; ti++) {
        for (int round = 0; round < 2; round++) {
            rs_builder *b = rs_builder_new();
            rs_topology *t = wordcount(b, &(rs_materialized){.store_name = "counts"});
            rs_config *c = rs_config_new();
            rs_config_set(c, "application.id", types[ti], NULL, 0);
            rs_config_set(c, "default.dsl.store", types[ti], NULL, 0);
            rs_config_set(c, "state.dir", dir, NULL, 0);
            rs_driver *d = driver(t, c);
            rs_driver_pipe_str(d, "lines", NULL, "the cat and the hat", 1);
            rs_kv_store *s = rs_driver_kv_store(d, "counts");
            rs_buf v;
            rs_buf_init(&v);
            int64_t n = 0;
            assert_int_equal(rs_kv_get(s, rs_str("the"), &v), 1);
            rs_bytes_to_int64(rs_buf_bytes(&v), &n);
            /* in memory starts over; RocksDB continues from disk */
            assert_int_equal(n, ti == 1 && round == 1 ? 4 : 2);
            assert_int_equal(rs_kv_count(s), 4);
            rs_buf_free(&v);
            rs_driver_free(d);
            char *path = g_strdup_printf("%s/%s/1_0/rocksdb/counts/CURRENT", dir, types[ti]);
            assert_int_equal(g_file_test(path, G_FILE_TEST_EXISTS), ti == 1);
            g_free(path);
            rs_config_free(c);
            rs_topology_free(t);
            rs_builder_free(b);
        }
    }
    char *cmd = g_strdup_printf("rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    g_free(cmd);
    g_free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_serdes),          cmocka_unit_test(test_config),
        cmocka_unit_test(test_config_guarantee_defaults),
        cmocka_unit_test(test_stateless),       cmocka_unit_test(test_split_merge),
        cmocka_unit_test(test_describe),        cmocka_unit_test(test_count_repartition),
        cmocka_unit_test(test_cache_coalescing), cmocka_unit_test(test_reduce_aggregate_table),
        cmocka_unit_test(test_processor_api),   cmocka_unit_test(test_time_and_skips),
        cmocka_unit_test(test_store_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
