/* tables.c (test) — librill-streams tables forwarding changes (new and old
 * values) through the test driver: KTable.groupBy then count / reduce
 * (adder, subtractor) / aggregate (initializer, adder, subtractor), a row
 * moving between groups, a deleted row, a stream count grouped again, table
 * filter / mapValues, the
 * describe text of the new nodes, and malformed repartition records. Each
 * stateful test runs with the record cache, without it, and on RocksDB. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <glib.h>

#include "rill/streams.h"

/* ---- helpers ---- */

static char *state_dir;
static int app_seq; /* a fresh application.id per driver: RocksDB stores persist */

typedef struct mode {
    const char *store; /* default.dsl.store */
    bool no_caching;
} mode;
static const mode MODES[] = {{"in_memory", false}, {"in_memory", true}, {"rocksDB", false}, {"rocksDB", true}};
#define NMODES (sizeof(MODES) / sizeof(MODES[0]))

static rs_topology *build(rs_builder *b) {
    char err[256] = "";
    rs_topology *t = rs_builder_build(b, err, sizeof(err));
    if (!t) fail_msg("build: %s", err);
    return t;
}

static rs_driver *driver(rs_topology *t, rs_config **cp, const mode *md) {
    rs_config *c = rs_config_new();
    char id[32];
    snprintf(id, sizeof(id), "tables-%d", app_seq++);
    rs_config_set(c, "application.id", id, NULL, 0);
    rs_config_set(c, "default.dsl.store", md->store, NULL, 0);
    rs_config_set(c, "state.dir", state_dir, NULL, 0);
    char err[256] = "";
    rs_driver *d = rs_driver_new(t, c, 0, err, sizeof(err));
    if (!d) fail_msg("driver: %s", err);
    *cp = c;
    return d;
}

static bool bytes_eq(rs_bytes b, const char *s) {
    if (!s) return b.data == NULL;
    return b.data && b.len == strlen(s) && !memcmp(b.data, s, b.len);
}

static void expect(rs_driver *d, const char *topic, const char *key, const char *value) {
    rs_record r;
    if (!rs_driver_read(d, topic, &r)) fail_msg("no record on %s (want %s=%s)", topic, key, value);
    if (!bytes_eq(r.key, key) || !bytes_eq(r.value, value))
        fail_msg("%s: got %.*s=%.*s want %s=%s", topic, (int)r.key.len, r.key.data ? (const char *)r.key.data : "",
                 (int)r.value.len, r.value.data ? (const char *)r.value.data : "(null)", key,
                 value ? value : "(null)");
}

static void expect_int(rs_driver *d, const char *topic, const char *key, int64_t n) {
    rs_record r;
    if (!rs_driver_read(d, topic, &r)) fail_msg("no record on %s (want %s=%lld)", topic, key, (long long)n);
    int64_t v = -999;
    if (!bytes_eq(r.key, key) || rs_bytes_to_int64(r.value, &v) || v != n)
        fail_msg("%s: got %.*s=%lld want %s=%lld", topic, (int)r.key.len, r.key.data ? (const char *)r.key.data : "",
                 (long long)v, key, (long long)n);
}

static void expect_none(rs_driver *d, const char *topic) {
    size_t n = rs_driver_queue_size(d, topic);
    if (n) fail_msg("%zu unexpected records on %s", n, topic);
}

/* the int64 value of key in store, or -999 when absent */
static int64_t store_int(rs_driver *d, const char *store, const char *key) {
    rs_kv_store *s = rs_driver_kv_store(d, store);
    assert_non_null(s);
    rs_buf v;
    rs_buf_init(&v);
    int64_t n = -999;
    if (rs_kv_get(s, rs_str(key), &v) == 1) assert_int_equal(rs_bytes_to_int64(rs_buf_bytes(&v), &n), 0);
    rs_buf_free(&v);
    return n;
}

static void pipe_row(rs_driver *d, const char *topic, const char *key, const char *value, int64_t ts) {
    assert_int_equal(rs_driver_pipe_str(d, topic, key, value, ts), 0);
}

/* ---- group_by + count: users per region ---- */

/* (user, region) -> (region, user) */
static void by_region(const rs_record *r, rs_emitter *e, void *ctx) {
    (void)ctx;
    rs_emit(e, r->value, r->key);
}

static rs_topology *region_counts(const mode *md) {
    rs_builder *b = rs_builder_new();
    rs_materialized m = {.no_caching = md->no_caching};
    rs_table *users = rs_table_from(b, "users", NULL, &m);
    rs_materialized mc = {.store_name = "per-region", .no_caching = md->no_caching};
    rs_table *counts = rs_grouped_table_count(rs_table_group_by(users, by_region, NULL, NULL), &mc);
    rs_stream_to(rs_table_to_stream(counts, NULL), "region-counts", NULL);
    rs_topology *t = build(b);
    rs_builder_free(b);
    return t;
}

static void test_group_by_count(void **state) {
    (void)state;
    for (size_t mi = 0; mi < NMODES; mi++) {
        rs_topology *t = region_counts(&MODES[mi]);
        rs_config *c;
        rs_driver *d = driver(t, &c, &MODES[mi]);
        pipe_row(d, "users", "alice", "eu", 1);
        expect_int(d, "region-counts", "eu", 1);
        pipe_row(d, "users", "bob", "eu", 2);
        expect_int(d, "region-counts", "eu", 2);
        pipe_row(d, "users", "carol", "us", 3);
        expect_int(d, "region-counts", "us", 1);
        /* alice moves: eu loses her first, then us gains her */
        pipe_row(d, "users", "alice", "us", 4);
        expect_int(d, "region-counts", "eu", 1);
        expect_int(d, "region-counts", "us", 2);
        expect_none(d, "region-counts");
        /* the same region again: one repartition record with both values,
         * one update (subtract then add), the count unchanged */
        pipe_row(d, "users", "alice", "us", 5);
        expect_int(d, "region-counts", "us", 2);
        expect_none(d, "region-counts");
        /* bob deleted: a tombstone subtracts him; eu stays with 0 */
        pipe_row(d, "users", "bob", NULL, 6);
        expect_int(d, "region-counts", "eu", 0);
        /* deleting an unknown user changes nothing */
        pipe_row(d, "users", "nobody", NULL, 7);
        expect_none(d, "region-counts");
        assert_int_equal(store_int(d, "per-region", "eu"), 0);
        assert_int_equal(store_int(d, "per-region", "us"), 2);
        /* the repartition topic carried: 3 additions; for the move a
         * subtraction from eu, then an addition to us; for the same region
         * one record with both (flags 3, be32 length of the new value); the
         * delete a subtraction */
        char topic[96];
        snprintf(topic, sizeof(topic), "%s-per-region-repartition", rs_config_get(c, "application.id"));
        const struct {
            const char *k, *v;
            size_t n;
        } want[] = {{"eu", "\x01" "alice", 6}, {"eu", "\x01" "bob", 4},   {"us", "\x01" "carol", 6},
                    {"eu", "\x02" "alice", 6}, {"us", "\x01" "alice", 6}, {"us", "\x03\x00\x00\x00\x05" "alicealice", 15},
                    {"eu", "\x02" "bob", 4}};
        for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
            rs_record r;
            assert_true(rs_driver_read(d, topic, &r));
            assert_true(bytes_eq(r.key, want[i].k));
            assert_int_equal(r.value.len, want[i].n);
            assert_memory_equal(r.value.data, want[i].v, want[i].n);
        }
        expect_none(d, topic);
        rs_driver_free(d);
        rs_config_free(c);
        rs_topology_free(t);
    }
}

/* the caches coalesce: several moves before one commit still give exact
 * counts, each region updated once */
static void test_group_by_count_coalesced(void **state) {
    (void)state;
    const mode *md = &MODES[0];
    rs_topology *t = region_counts(md);
    rs_config *c;
    rs_driver *d = driver(t, &c, md);
    rs_driver_set_auto_commit(d, false);
    pipe_row(d, "users", "alice", "eu", 1);
    pipe_row(d, "users", "bob", "eu", 2);
    rs_driver_commit(d);
    expect_int(d, "region-counts", "eu", 2);
    pipe_row(d, "users", "alice", "us", 3);
    pipe_row(d, "users", "alice", "asia", 4);
    pipe_row(d, "users", "bob", "asia", 5);
    pipe_row(d, "users", "carol", "us", 6);
    pipe_row(d, "users", "carol", NULL, 7);
    rs_driver_commit(d);
    /* the users table flushed alice eu->asia (the intermediate us never
     * reached the repartition topic), bob eu->asia, carol added and deleted
     * within one commit: nothing at all */
    expect_int(d, "region-counts", "eu", 0);
    expect_int(d, "region-counts", "asia", 2);
    expect_none(d, "region-counts");
    assert_int_equal(store_int(d, "per-region", "us"), -999);
    rs_driver_free(d);
    rs_config_free(c);
    rs_topology_free(t);
}

/* ---- reduce and aggregate over a numeric column ---- */

/* order id -> "region:amount"; grouped: region -> amount (int64) */
static void region_amount(const rs_record *r, rs_emitter *e, void *ctx) {
    (void)ctx;
    char buf[64];
    size_t n = r->value.len < sizeof(buf) - 1 ? r->value.len : sizeof(buf) - 1;
    memcpy(buf, r->value.data, n);
    buf[n] = 0;
    char *colon = strchr(buf, ':');
    if (!colon) return; /* no emission: the row is in no group */
    *colon = 0;
    uint8_t a[8];
    rs_emit(e, rs_str(buf), rs_int64_to_bytes(strtoll(colon + 1, NULL, 10), a));
}

static int64_t i64(rs_bytes b) {
    int64_t v = 0;
    assert_int_equal(rs_bytes_to_int64(b, &v), 0);
    return v;
}
static void add_i64(rs_bytes agg, rs_bytes v, rs_buf *out, void *ctx) {
    (void)ctx;
    uint8_t a[8];
    rs_buf_append(out, rs_int64_to_bytes(i64(agg) + i64(v), a).data, 8);
}
static void sub_i64(rs_bytes agg, rs_bytes v, rs_buf *out, void *ctx) {
    (void)ctx;
    uint8_t a[8];
    rs_buf_append(out, rs_int64_to_bytes(i64(agg) - i64(v), a).data, 8);
}

/* aggregate: "n=<rows>,sum=<amount>" text */
static void stats_init(rs_buf *out, void *ctx) {
    (void)ctx;
    rs_buf_append(out, "n=0,sum=0", 9);
}
static void stats_step(rs_bytes agg, rs_bytes v, rs_buf *out, int sign) {
    long long n = 0, sum = 0;
    char buf[64];
    snprintf(buf, sizeof(buf), "%.*s", (int)agg.len, (const char *)agg.data);
    assert_int_equal(sscanf(buf, "n=%lld,sum=%lld", &n, &sum), 2);
    n += sign;
    sum += sign * i64(v);
    int len = snprintf(buf, sizeof(buf), "n=%lld,sum=%lld", n, sum);
    rs_buf_append(out, buf, (size_t)len);
}
static void stats_add(rs_bytes key, rs_bytes v, rs_bytes agg, rs_buf *out, void *ctx) {
    (void)key, (void)ctx;
    stats_step(agg, v, out, 1);
}
static void stats_sub(rs_bytes key, rs_bytes v, rs_bytes agg, rs_buf *out, void *ctx) {
    (void)key, (void)ctx;
    stats_step(agg, v, out, -1);
}

static void test_group_by_reduce_aggregate(void **state) {
    (void)state;
    for (size_t mi = 0; mi < NMODES; mi++) {
        const mode *md = &MODES[mi];
        rs_builder *b = rs_builder_new();
        rs_materialized m = {.no_caching = md->no_caching};
        rs_table *orders = rs_table_from(b, "orders", NULL, &m);
        rs_grouped_table *g = rs_table_group_by(orders, region_amount, NULL, NULL);
        rs_materialized ms = {.store_name = "sums", .no_caching = md->no_caching};
        rs_materialized ma = {.store_name = "stats", .no_caching = md->no_caching};
        rs_table *sums = rs_grouped_table_reduce(g, add_i64, sub_i64, NULL, &ms);
        rs_table *stats = rs_grouped_table_aggregate(g, stats_init, stats_add, stats_sub, NULL, &ma);
        assert_null(rs_grouped_table_reduce(g, add_i64, NULL, NULL, NULL));
        rs_stream_to(rs_table_to_stream(sums, NULL), "sums-out", NULL);
        rs_stream_to(rs_table_to_stream(stats, NULL), "stats-out", NULL);
        rs_topology *t = build(b);
        rs_builder_free(b);
        rs_config *c;
        rs_driver *d = driver(t, &c, md);

        pipe_row(d, "orders", "o1", "eu:10", 1);
        expect_int(d, "sums-out", "eu", 10);
        expect(d, "stats-out", "eu", "n=1,sum=10");
        pipe_row(d, "orders", "o2", "eu:5", 2);
        expect_int(d, "sums-out", "eu", 15);
        expect(d, "stats-out", "eu", "n=2,sum=15");
        /* o1's amount changes within eu: subtract 10, add 7 in one step */
        pipe_row(d, "orders", "o1", "eu:7", 3);
        expect_int(d, "sums-out", "eu", 12);
        expect(d, "stats-out", "eu", "n=2,sum=12");
        expect_none(d, "sums-out");
        /* o2 moves to us */
        pipe_row(d, "orders", "o2", "us:5", 4);
        expect_int(d, "sums-out", "eu", 7);
        expect_int(d, "sums-out", "us", 5);
        expect(d, "stats-out", "eu", "n=1,sum=7");
        expect(d, "stats-out", "us", "n=1,sum=5");
        /* a row the group_by function maps to no group leaves its old one */
        pipe_row(d, "orders", "o2", "garbage", 5);
        expect_int(d, "sums-out", "us", 0);
        expect(d, "stats-out", "us", "n=0,sum=0");
        /* o1 deleted */
        pipe_row(d, "orders", "o1", NULL, 6);
        expect_int(d, "sums-out", "eu", 0);
        expect(d, "stats-out", "eu", "n=0,sum=0");
        expect_none(d, "sums-out");
        expect_none(d, "stats-out");
        assert_int_equal(store_int(d, "sums", "eu"), 0);
        rs_driver_free(d);
        rs_config_free(c);
        rs_topology_free(t);
    }
}

/* ---- a stream aggregation's result grouped again ---- */

/* (word, count) -> (decimal count, word) */
static void by_count(const rs_record *r, rs_emitter *e, void *ctx) {
    (void)ctx;
    char buf[24];
    snprintf(buf, sizeof(buf), "%lld", (long long)i64(r->value));
    rs_emit(e, rs_str(buf), r->key);
}

/* how many words have been seen n times: the counts table sends old values */
static void test_stream_count_grouped_again(void **state) {
    (void)state;
    for (size_t mi = 0; mi < NMODES; mi++) {
        const mode *md = &MODES[mi];
        rs_builder *b = rs_builder_new();
        rs_materialized mw = {.store_name = "word-counts", .no_caching = md->no_caching};
        rs_table *words = rs_grouped_count(rs_stream_group_by_key(rs_stream_from_topic(b, "words")), &mw);
        rs_materialized mh = {.store_name = "histogram", .no_caching = md->no_caching};
        rs_table *hist = rs_grouped_table_count(rs_table_group_by(words, by_count, NULL, NULL), &mh);
        rs_stream_to(rs_table_to_stream(hist, NULL), "hist-out", NULL);
        rs_topology *t = build(b);
        rs_builder_free(b);
        rs_config *c;
        rs_driver *d = driver(t, &c, md);
        pipe_row(d, "words", "a", "x", 1);
        expect_int(d, "hist-out", "1", 1);
        pipe_row(d, "words", "b", "x", 2);
        expect_int(d, "hist-out", "1", 2);
        pipe_row(d, "words", "a", "x", 3); /* a: 1 -> 2 */
        expect_int(d, "hist-out", "1", 1);
        expect_int(d, "hist-out", "2", 1);
        pipe_row(d, "words", "a", "x", 4); /* a: 2 -> 3 */
        expect_int(d, "hist-out", "2", 0);
        expect_int(d, "hist-out", "3", 1);
        expect_none(d, "hist-out");
        assert_int_equal(store_int(d, "histogram", "1"), 1);
        rs_driver_free(d);
        rs_config_free(c);
        rs_topology_free(t);
    }
}

/* ---- table filter and map_values ---- */

static bool is_big(const rs_record *r, void *ctx) {
    (void)ctx;
    char buf[64];
    snprintf(buf, sizeof(buf), "%.*s", (int)r->value.len, (const char *)r->value.data);
    const char *colon = strchr(buf, ':');
    return colon && atoi(colon + 1) >= 10;
}

static void upper(const rs_record *r, rs_emitter *e, void *ctx) {
    (void)ctx;
    char buf[64];
    size_t n = r->value.len < sizeof(buf) ? r->value.len : sizeof(buf);
    const char *v = r->value.data;
    for (size_t i = 0; i < n; i++) buf[i] = (v[i] >= 'a' && v[i] <= 'z') ? (char)(v[i] - 'a' + 'A') : v[i];
    rs_emit(e, RS_NULL_BYTES, (rs_bytes){buf, n});
}

static void test_table_filter_map_values(void **state) {
    (void)state;
    for (size_t mi = 0; mi < NMODES; mi++) {
        const mode *md = &MODES[mi];
        rs_builder *b = rs_builder_new();
        rs_materialized m = {.no_caching = md->no_caching};
        rs_table *orders = rs_table_from(b, "orders", NULL, &m);
        rs_table *big = rs_table_filter(orders, is_big, NULL, NULL);
        assert_null(rs_table_store_name(big));
        rs_table *shout = rs_table_map_values(orders, upper, NULL, NULL);
        rs_stream_to(rs_table_to_stream(big, NULL), "big-out", NULL);
        rs_stream_to(rs_table_to_stream(shout, NULL), "shout-out", NULL);
        /* big orders per region: the filter sends old values to group_by */
        rs_materialized mc = {.store_name = "big-per-region", .no_caching = md->no_caching};
        rs_table *nbig = rs_grouped_table_count(
            rs_table_group_by(rs_table_map_values(big, upper, NULL, NULL), region_amount, NULL, NULL), &mc);
        rs_stream_to(rs_table_to_stream(nbig, NULL), "nbig-out", NULL);
        rs_topology *t = build(b);
        rs_builder_free(b);
        rs_config *c;
        rs_driver *d = driver(t, &c, md);

        pipe_row(d, "orders", "o1", "eu:20", 1);
        expect(d, "big-out", "o1", "eu:20");
        expect(d, "shout-out", "o1", "EU:20");
        expect_int(d, "nbig-out", "EU", 1);
        /* o1 stops matching: a tombstone downstream, the count drops */
        pipe_row(d, "orders", "o1", "eu:3", 2);
        expect(d, "big-out", "o1", NULL);
        expect(d, "shout-out", "o1", "EU:3");
        expect_int(d, "nbig-out", "EU", 0);
        /* never matched and still does not: the filter sends old values
         * (group_by needs them), so it knows nothing changed downstream and
         * forwards nothing at all (as Kafka) */
        pipe_row(d, "orders", "o2", "us:1", 3);
        expect(d, "shout-out", "o2", "US:1");
        expect_none(d, "big-out");
        expect_none(d, "nbig-out");
        /* matches again, then deleted */
        pipe_row(d, "orders", "o1", "eu:11", 4);
        expect(d, "big-out", "o1", "eu:11");
        expect(d, "shout-out", "o1", "EU:11");
        expect_int(d, "nbig-out", "EU", 1);
        pipe_row(d, "orders", "o1", NULL, 5);
        expect(d, "big-out", "o1", NULL);
        expect(d, "shout-out", "o1", NULL);
        expect_int(d, "nbig-out", "EU", 0);
        expect_none(d, "big-out");
        expect_none(d, "shout-out");
        expect_none(d, "nbig-out");
        rs_driver_free(d);
        rs_config_free(c);
        rs_topology_free(t);
    }
}

/* ---- describe, malformed repartition input, refusals ---- */

static void test_describe_and_malformed(void **state) {
    (void)state;
    rs_topology *t = region_counts(&MODES[0]);
    char *text = rs_topology_describe(t);
    const char *want =
        "Topologies:\n"
        "   Sub-topology: 0\n"
        "    Source: KSTREAM-SOURCE-0000000000 (topics: [users])\n"
        "      --> KTABLE-SOURCE-0000000001\n"
        "    Processor: KTABLE-SOURCE-0000000001 (stores: [users-STATE-STORE-0000000002])\n"
        "      --> KTABLE-SELECT-0000000003\n"
        "      <-- KSTREAM-SOURCE-0000000000\n"
        "    Processor: KTABLE-SELECT-0000000003 (stores: [])\n"
        "      --> KSTREAM-SINK-0000000004\n"
        "      <-- KTABLE-SOURCE-0000000001\n"
        "    Sink: KSTREAM-SINK-0000000004 (topic: per-region-repartition)\n"
        "      <-- KTABLE-SELECT-0000000003\n"
        "\n"
        "   Sub-topology: 1\n"
        "    Source: KSTREAM-SOURCE-0000000005 (topics: [per-region-repartition])\n"
        "      --> KTABLE-AGGREGATE-0000000006\n"
        "    Processor: KTABLE-AGGREGATE-0000000006 (stores: [per-region])\n"
        "      --> KTABLE-TOSTREAM-0000000007\n"
        "      <-- KSTREAM-SOURCE-0000000005\n"
        "    Processor: KTABLE-TOSTREAM-0000000007 (stores: [])\n"
        "      --> KSTREAM-SINK-0000000008\n"
        "      <-- KTABLE-AGGREGATE-0000000006\n"
        "    Sink: KSTREAM-SINK-0000000008 (topic: region-counts)\n"
        "      <-- KTABLE-TOSTREAM-0000000007\n"
        "\n";
    if (strcmp(text, want)) fail_msg("describe:\n%s", text);
    free(text);
    /* filter, map_values and reduce nodes and a generated reduce store */
    {
        rs_builder *b2 = rs_builder_new();
        rs_table *o = rs_table_from(b2, "orders", NULL, &(rs_materialized){.store_name = "orders"});
        rs_table *f = rs_table_map_values(rs_table_filter_not(o, is_big, NULL, NULL), upper, NULL, "shout");
        rs_grouped_table_reduce(rs_table_group_by(f, region_amount, NULL, NULL), add_i64, sub_i64, NULL, NULL);
        rs_topology *t2 = build(b2);
        rs_builder_free(b2);
        char *d2 = rs_topology_describe(t2);
        const char *parts[] = {
            "    Processor: KTABLE-FILTER-0000000002 (stores: [])\n      --> shout\n",
            "    Processor: shout (stores: [])\n      --> KTABLE-SELECT-0000000003\n      <-- KTABLE-FILTER-0000000002\n",
            "    Sink: KSTREAM-SINK-0000000005 (topic: KTABLE-REDUCE-STATE-STORE-0000000004-repartition)\n",
            "    Processor: KTABLE-REDUCE-0000000007 (stores: [KTABLE-REDUCE-STATE-STORE-0000000004])\n      --> none\n",
        };
        for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
            if (!strstr(d2, parts[i])) fail_msg("describe lacks\n%s\nin\n%s", parts[i], d2);
        free(d2);
        rs_topology_free(t2);
    }

    /* records on the repartition topic that are not changes are skipped
     * and counted; a good one after them still counts */
    rs_config *c;
    rs_driver *d = driver(t, &c, &MODES[1]);
    char topic[96];
    snprintf(topic, sizeof(topic), "%s-per-region-repartition", rs_config_get(c, "application.id"));
    const struct {
        const char *v;
        size_t n;
    } bad[] = {{"", 0}, {"\x07zz", 3}, {"\x03\x00\x00", 3}, {"\x03\x00\x00\x00\x09xx", 7}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(rs_driver_pipe(d, topic, rs_str("eu"), (rs_bytes){bad[i].v, bad[i].n}, 1), 0);
    assert_int_equal(rs_driver_pipe(d, topic, rs_str("eu"), RS_NULL_BYTES, 1), 0);
    assert_int_equal(rs_driver_pipe(d, topic, RS_NULL_BYTES, (rs_bytes){"\x01u", 2}, 1), 0);
    assert_int_equal(rs_driver_metric(d, "skipped-records"), 6);
    expect_none(d, "region-counts");
    assert_int_equal(rs_driver_pipe(d, topic, rs_str("eu"), (rs_bytes){"\x01u", 2}, 1), 0);
    expect_int(d, "region-counts", "eu", 1);
    rs_driver_free(d);
    rs_config_free(c);
    rs_topology_free(t);

    /* a windowed table cannot be grouped (it sends no old values) */
    rs_builder *b = rs_builder_new();
    rs_windows w = {.kind = RS_WINDOW_TIME, .size = 10};
    rs_table *wt = rs_grouped_windowed_count(rs_stream_group_by_key(rs_stream_from_topic(b, "x")), &w, NULL);
    assert_null(rs_table_group_by(wt, by_region, NULL, NULL));
    assert_null(rs_table_group_by(wt, NULL, NULL, NULL));
    rs_builder_free(b);
}

static int setup(void **state) {
    (void)state;
    state_dir = g_dir_make_tmp("rill-tables-test-XXXXXX", NULL);
    return state_dir ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char *cmd = g_strdup_printf("rm -rf '%s'", state_dir);
    int rc = system(cmd);
    g_free(cmd);
    g_free(state_dir);
    return rc;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_group_by_count),
        cmocka_unit_test(test_group_by_count_coalesced),
        cmocka_unit_test(test_group_by_reduce_aggregate),
        cmocka_unit_test(test_stream_count_grouped_again),
        cmocka_unit_test(test_table_filter_map_values),
        cmocka_unit_test(test_describe_and_malformed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
