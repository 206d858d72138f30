/* windows.c (test) — windowed aggregation through the test driver:
 * tumbling and hopping windows, grace and late records (metric and side
 * topic), emit changes vs emit final and retention, close order and the
 * changelog replaying to the store (cached and not), session windows merging,
 * count (length) windows, sliding windows; hopping, session and sliding
 * results checked against brute-force computations over random input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <glib.h>

#include "rill/streams.h"

typedef struct {
    char key[32];
    int64_t start, end, count; /* count -1: null value */
    int64_t ts;
} wrec;

/* reads every windowed record of topic whose value is an int64 */
static int read_all(rs_driver *d, const char *topic, wrec *out, int max) {
    int n = 0;
    rs_record r;
    while (rs_driver_read(d, topic, &r)) {
        assert_true(n < max);
        rs_windowed_key wk;
        assert_int_equal(rs_windowed_key_decode(r.key, &wk), 0);
        assert_true(wk.key.len < sizeof(out[n].key));
        memcpy(out[n].key, wk.key.data, wk.key.len);
        out[n].key[wk.key.len] = 0;
        out[n].start = wk.start;
        out[n].end = wk.end;
        out[n].ts = r.timestamp;
        if (!r.value.data) out[n].count = -1;
        else assert_int_equal(rs_bytes_to_int64(r.value, &out[n].count), 0);
        n++;
    }
    return n;
}

static void check(const wrec *w, const char *key, int64_t start, int64_t end, int64_t count) {
    if (strcmp(w->key, key) || w->start != start || w->end != end || w->count != count)
        fail_msg("got %s[%lld,%lld]=%lld want %s[%lld,%lld]=%lld", w->key, (long long)w->start, (long long)w->end,
                 (long long)w->count, key, (long long)start, (long long)end, (long long)count);
}

typedef struct {
    rs_builder *b;
    rs_topology *t;
    rs_driver *d;
} fixture;

static fixture setup(const rs_windows *w, const char *store) {
    fixture f;
    f.b = rs_builder_new();
    rs_stream *in = rs_stream_from_topic(f.b, "in");
    rs_table *c = rs_grouped_windowed_count(rs_stream_group_by_key(in), w,
                                            &(rs_materialized){.store_name = store, .type = RS_STORE_IN_MEMORY});
    assert_non_null(c);
    rs_stream_to(rs_table_to_stream(c, NULL), "out", NULL);
    char err[256];
    f.t = rs_builder_build(f.b, err, sizeof(err));
    assert_non_null(f.t);
    f.d = rs_driver_new(f.t, NULL, 0, err, sizeof(err));
    assert_non_null(f.d);
    return f;
}

static void teardown(fixture *f) {
    rs_driver_free(f->d);
    rs_topology_free(f->t);
    rs_builder_free(f->b);
}

static void pipe_at(rs_driver *d, const char *key, int64_t ts) {
    assert_int_equal(rs_driver_pipe_str(d, "in", key, "v", ts), 0);
}

static void test_tumbling_hopping(void **state) {
    (void)state;
    wrec w[64];
    fixture f = setup(&(rs_windows){.kind = RS_WINDOW_TIME, .size = 1000, .grace = 10000}, "tumble");
    pipe_at(f.d, "a", 0);
    pipe_at(f.d, "a", 500);
    pipe_at(f.d, "a", 1000);
    pipe_at(f.d, "b", 999);
    assert_int_equal(read_all(f.d, "out", w, 64), 4);
    check(&w[0], "a", 0, 1000, 1);
    check(&w[1], "a", 0, 1000, 2);
    check(&w[2], "a", 1000, 2000, 1);
    check(&w[3], "b", 0, 1000, 1);
    teardown(&f);
    /* hopping 5 s advancing by 1 s: a record at 7.0 s is in the five windows
     * starting 3..7 s, emitted in ascending start order */
    f = setup(&(rs_windows){.kind = RS_WINDOW_TIME, .size = 5000, .advance = 1000, .grace = 100000}, "hop");
    pipe_at(f.d, "a", 7000);
    assert_int_equal(read_all(f.d, "out", w, 64), 5);
    for (int i = 0; i < 5; i++) check(&w[i], "a", 3000 + 1000 * i, 8000 + 1000 * i, 1);
    pipe_at(f.d, "a", 1500); /* early: windows starting 0 and 1000 */
    assert_int_equal(read_all(f.d, "out", w, 64), 2);
    check(&w[0], "a", 0, 5000, 1);
    check(&w[1], "a", 1000, 6000, 1);
    teardown(&f);
    /* bad definitions are refused */
    rs_builder *b = rs_builder_new();
    rs_grouped *g = rs_stream_group_by_key(rs_stream_from_topic(b, "x"));
    assert_null(rs_grouped_windowed_count(g, &(rs_windows){.kind = RS_WINDOW_TIME, .size = 0}, NULL));
    assert_null(rs_grouped_windowed_count(g, &(rs_windows){.kind = RS_WINDOW_TIME, .size = 10, .advance = 20}, NULL));
    assert_null(rs_grouped_windowed_count(g, &(rs_windows){.kind = RS_WINDOW_TIME, .size = 10, .grace = -1}, NULL));
    assert_null(rs_grouped_windowed_aggregate(g, &(rs_windows){.kind = RS_WINDOW_SESSION, .size = 10}, NULL, NULL,
                                              NULL, NULL, NULL));
    rs_builder_free(b);
}

static void test_grace_late_side_topic(void **state) {
    (void)state;
    wrec w[64];
    fixture f = setup(&(rs_windows){.kind = RS_WINDOW_TIME, .size = 1000, .grace = 500, .late_topic = "late"}, "g");
    pipe_at(f.d, "a", 100);
    pipe_at(f.d, "a", 1499); /* stream time 1499: [0,1000) still open (closes at 1500) */
    pipe_at(f.d, "a", 200);  /* in grace: accepted */
    assert_int_equal(read_all(f.d, "out", w, 64), 3);
    check(&w[2], "a", 0, 1000, 2);
    pipe_at(f.d, "b", 1500); /* stream time 1500: [0,1000) closed */
    pipe_at(f.d, "a", 300);  /* late */
    assert_int_equal(read_all(f.d, "out", w, 64), 1);
    check(&w[0], "b", 1000, 2000, 1);
    assert_int_equal(rs_driver_metric(f.d, "dropped-records"), 1);
    rs_record r;
    assert_true(rs_driver_read(f.d, "late", &r));
    assert_int_equal(r.timestamp, 300);
    assert_int_equal(r.key.len, 1);
    assert_false(rs_driver_read(f.d, "late", &r));
    /* the closed window left the store (retention = size + grace) */
    assert_int_equal(rs_kv_count(rs_driver_kv_store(f.d, "g")), 2);
    teardown(&f);
}

static void test_emit_final(void **state) {
    (void)state;
    wrec w[64];
    fixture f = setup(&(rs_windows){.kind = RS_WINDOW_TIME, .size = 1000, .grace = 200, .emit_final = true}, "fin");
    pipe_at(f.d, "a", 100);
    pipe_at(f.d, "a", 900);
    pipe_at(f.d, "b", 1100);
    pipe_at(f.d, "a", 1199); /* closes at 1200 */
    assert_int_equal(rs_driver_queue_size(f.d, "out"), 0);
    pipe_at(f.d, "a", 1200);
    assert_int_equal(read_all(f.d, "out", w, 64), 1);
    check(&w[0], "a", 0, 1000, 2);
    assert_int_equal(w[0].ts, 999);
    pipe_at(f.d, "c", 5000); /* closes [1000,2000) for a (2) and b (1), in key order */
    assert_int_equal(read_all(f.d, "out", w, 64), 2);
    check(&w[0], "a", 1000, 2000, 2);
    check(&w[1], "b", 1000, 2000, 1);
    assert_int_equal(rs_kv_count(rs_driver_kv_store(f.d, "fin")), 1); /* only c's window */
    teardown(&f);
}

/* windows of one close time close in key order whatever order they opened
 * in; the changelog carries every store write (updates and the deletes at
 * close) and replays to the store's content; with and without the cache */
static int collect_kv(rs_bytes k, rs_bytes v, void *arg) {
    g_hash_table_insert(arg, g_bytes_new(k.data, k.len), g_bytes_new(v.data, v.len));
    return 0;
}

static void test_close_order_changelog(void **state) {
    (void)state;
    for (int cached = 0; cached < 2; cached++) {
        rs_builder *b = rs_builder_new();
        rs_windows w = {.kind = RS_WINDOW_TIME, .size = 1000, .advance = 500, .emit_final = true};
        rs_table *c = rs_grouped_windowed_count(rs_stream_group_by_key(rs_stream_from_topic(b, "in")), &w,
                                                &(rs_materialized){.store_name = "ord", .type = RS_STORE_IN_MEMORY});
        rs_stream_to(rs_table_to_stream(c, NULL), "out", NULL);
        char err[256];
        rs_topology *t = rs_builder_build(b, err, sizeof(err));
        assert_non_null(t);
        rs_config *cfg = rs_config_new();
        assert_int_equal(rs_config_set(cfg, "cache.max.bytes.buffering", cached ? "10485760" : "0", NULL, 0), 0);
        rs_driver *d = rs_driver_new(t, cfg, 0, err, sizeof(err));
        rs_config_free(cfg);
        assert_non_null(d);
        pipe_at(d, "c", 100);
        pipe_at(d, "b", 200);
        pipe_at(d, "a", 300);
        pipe_at(d, "b", 600); /* windows 0 and 500 */
        pipe_at(d, "z", 5000); /* closes 0 (a, b, c) then 500 (b) */
        wrec o[16];
        assert_int_equal(read_all(d, "out", o, 16), 4);
        check(&o[0], "a", 0, 1000, 1);
        check(&o[1], "b", 0, 1000, 2);
        check(&o[2], "c", 0, 1000, 1);
        check(&o[3], "b", 500, 1500, 1);
        /* 7 window updates (z opens 4500 and 5000) and 4 deletes */
        GHashTable *replay = g_hash_table_new_full(g_bytes_hash, g_bytes_equal, (GDestroyNotify)g_bytes_unref,
                                                   (GDestroyNotify)g_bytes_unref);
        rs_record r;
        int n = 0, dels = 0;
        while (rs_driver_read(d, "rill-streams-test-ord-changelog", &r)) {
            GBytes *k = g_bytes_new(r.key.data, r.key.len);
            if (r.value.data) g_hash_table_replace(replay, k, g_bytes_new(r.value.data, r.value.len));
            else g_hash_table_remove(replay, k), g_bytes_unref(k), dels++;
            n++;
        }
        assert_int_equal(n, 11);
        assert_int_equal(dels, 4);
        GHashTable *store = g_hash_table_new_full(g_bytes_hash, g_bytes_equal, (GDestroyNotify)g_bytes_unref,
                                                  (GDestroyNotify)g_bytes_unref);
        rs_kv_range(rs_driver_kv_store(d, "ord"), RS_NULL_BYTES, RS_NULL_BYTES, collect_kv, store);
        assert_int_equal(g_hash_table_size(store), 2);
        assert_int_equal(g_hash_table_size(replay), 2);
        GHashTableIter it;
        gpointer k, v;
        g_hash_table_iter_init(&it, store);
        while (g_hash_table_iter_next(&it, &k, &v)) {
            GBytes *rv = g_hash_table_lookup(replay, k);
            assert_non_null(rv);
            assert_true(g_bytes_equal(rv, v));
        }
        g_hash_table_destroy(store);
        g_hash_table_destroy(replay);
        rs_driver_free(d);
        rs_topology_free(t);
        rs_builder_free(b);
    }
}

static void test_session(void **state) {
    (void)state;
    wrec w[64];
    fixture f = setup(&(rs_windows){.kind = RS_WINDOW_SESSION, .size = 100, .grace = 1000}, "sess");
    pipe_at(f.d, "a", 0);
    pipe_at(f.d, "a", 50);
    pipe_at(f.d, "a", 300);
    pipe_at(f.d, "a", 200);  /* joins [300] */
    pipe_at(f.d, "a", 120);  /* bridges [0,50] and [200,300] */
    pipe_at(f.d, "a", 250);  /* inside: same bounds, no delete */
    int n = read_all(f.d, "out", w, 64);
    assert_int_equal(n, 10);
    check(&w[0], "a", 0, 0, 1);
    check(&w[1], "a", 0, 0, -1);
    check(&w[2], "a", 0, 50, 2);
    check(&w[3], "a", 300, 300, 1);
    check(&w[4], "a", 300, 300, -1);
    check(&w[5], "a", 200, 300, 2);
    check(&w[6], "a", 0, 50, -1);
    check(&w[7], "a", 200, 300, -1);
    check(&w[8], "a", 0, 300, 5);
    check(&w[9], "a", 0, 300, 6);
    assert_int_equal(rs_kv_count(rs_driver_kv_store(f.d, "sess")), 1);
    teardown(&f);
}

static void test_count_windows(void **state) {
    (void)state;
    wrec w[64];
    /* the last 3 records of a key, every record once full */
    fixture f = setup(&(rs_windows){.kind = RS_WINDOW_COUNT, .size = 3}, "len");
    for (int i = 0; i < 5; i++) pipe_at(f.d, "a", 10 * i);
    pipe_at(f.d, "b", 7);
    assert_int_equal(read_all(f.d, "out", w, 64), 3);
    check(&w[0], "a", 0, 21, 3);
    check(&w[1], "a", 10, 31, 3);
    check(&w[2], "a", 20, 41, 3);
    teardown(&f);
    /* tumbling by count: advance = size */
    f = setup(&(rs_windows){.kind = RS_WINDOW_COUNT, .size = 2, .advance = 2}, "len2");
    for (int i = 0; i < 5; i++) pipe_at(f.d, "a", i);
    assert_int_equal(read_all(f.d, "out", w, 64), 2);
    check(&w[0], "a", 0, 2, 2);
    check(&w[1], "a", 2, 4, 2);
    teardown(&f);
}

static void test_sliding_changes(void **state) {
    (void)state;
    wrec w[64];
    fixture f = setup(&(rs_windows){.kind = RS_WINDOW_SLIDING, .size = 10, .grace = 1000}, "slide");
    pipe_at(f.d, "a", 5);
    assert_int_equal(read_all(f.d, "out", w, 64), 1);
    check(&w[0], "a", 0, 5, 1); /* [t-D, t], clipped at 0 */
    pipe_at(f.d, "a", 12);
    assert_int_equal(read_all(f.d, "out", w, 64), 2);
    check(&w[0], "a", 2, 12, 2);  /* left window of 12 */
    check(&w[1], "a", 6, 16, 1);  /* right window of 5 now holds 12 */
    pipe_at(f.d, "a", 8); /* out of order */
    int n = read_all(f.d, "out", w, 64);
    assert_int_equal(n, 3);
    check(&w[0], "a", 0, 8, 2);  /* left of 8: 5, 8 */
    check(&w[1], "a", 2, 12, 3); /* left of 12 */
    check(&w[2], "a", 6, 16, 2); /* right of 5: 8, 12 */
    teardown(&f);
}

/* time and session window stores are cached like key-value stores: with
 * commits only on request, updates coalesce per window until the commit,
 * and a window closing flushes the store's pending updates first */
static void test_window_cache(void **state) {
    (void)state;
    wrec w[64];
    fixture f = setup(&(rs_windows){.kind = RS_WINDOW_TIME, .size = 1000, .grace = 0}, "cached");
    rs_driver_set_auto_commit(f.d, false);
    pipe_at(f.d, "a", 10);
    pipe_at(f.d, "a", 20);
    pipe_at(f.d, "b", 30);
    pipe_at(f.d, "a", 40);
    assert_int_equal(rs_driver_queue_size(f.d, "out"), 0);
    rs_driver_commit(f.d);
    assert_int_equal(read_all(f.d, "out", w, 64), 2);
    check(&w[0], "a", 0, 1000, 3);
    check(&w[1], "b", 0, 1000, 1);
    pipe_at(f.d, "a", 500);
    pipe_at(f.d, "a", 1000); /* closes [0,1000): the store's pending updates go out first */
    assert_int_equal(read_all(f.d, "out", w, 64), 2);
    check(&w[0], "a", 0, 1000, 4);
    check(&w[1], "a", 1000, 2000, 1);
    rs_driver_commit(f.d);
    assert_int_equal(rs_driver_queue_size(f.d, "out"), 0);
    teardown(&f);
    /* sessions: the merged session is the last word (the merge scan flushes) */
    f = setup(&(rs_windows){.kind = RS_WINDOW_SESSION, .size = 100, .grace = 1000}, "cached-sess");
    rs_driver_set_auto_commit(f.d, false);
    pipe_at(f.d, "a", 0);
    pipe_at(f.d, "a", 180);
    pipe_at(f.d, "a", 90); /* within the gap of both: bridges them */
    rs_driver_commit(f.d);
    int n = read_all(f.d, "out", w, 64);
    assert_true(n >= 1);
    check(&w[n - 1], "a", 0, 180, 3);
    assert_int_equal(rs_kv_count(rs_driver_kv_store(f.d, "cached-sess")), 1);
    teardown(&f);
}

/* ---- brute force over random input, emit final ---- */

static int cmp_wrec(const void *a, const void *b) {
    const wrec *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c) return c;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static void compare(wrec *got, int ngot, wrec *want, int nwant) {
    qsort(got, (size_t)ngot, sizeof(wrec), cmp_wrec);
    qsort(want, (size_t)nwant, sizeof(wrec), cmp_wrec);
    for (int i = 0; i < ngot && i < nwant; i++) check(&got[i], want[i].key, want[i].start, want[i].end, want[i].count);
    assert_int_equal(ngot, nwant);
}

#define NREC 200
static void random_times(int64_t *ts, char (*keys)[2], unsigned seed) {
    srand(seed);
    for (int i = 0; i < NREC; i++) {
        ts[i] = rand() % 2000;
        keys[i][0] = (char)('a' + rand() % 3);
        keys[i][1] = 0;
    }
}

static void test_random_vs_brute_force(void **state) {
    (void)state;
    static wrec got[20000], want[20000];
    int64_t ts[NREC];
    char keys[NREC][2];
    for (unsigned seed = 1; seed <= 3; seed++) {
        random_times(ts, keys, seed);
        for (int kind = 0; kind < 3; kind++) {
            rs_windows w = {.grace = 5000, .emit_final = true};
            if (kind == 0) w.kind = RS_WINDOW_TIME, w.size = 100, w.advance = 30;
            if (kind == 1) w.kind = RS_WINDOW_SESSION, w.size = 15;
            if (kind == 2) w.kind = RS_WINDOW_SLIDING, w.size = 40;
            fixture f = setup(&w, "bf");
            for (int i = 0; i < NREC; i++) pipe_at(f.d, keys[i], ts[i]);
            pipe_at(f.d, "zz", 100000); /* closes everything else */
            int ngot = read_all(f.d, "out", got, 20000), nwant = 0;
            for (char k = 'a'; k <= 'c'; k++) {
                char key[2] = {k, 0};
                int64_t kt[NREC];
                int nk = 0;
                for (int i = 0; i < NREC; i++)
                    if (keys[i][0] == k) kt[nk++] = ts[i];
                GHashTable *seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
                for (int i = 0; i < nk; i++) {
                    int64_t cand[2][2];
                    int nc = 0;
                    if (kind == 0) {
                        for (int64_t s = 0; s <= kt[i]; s += w.advance)
                            if (kt[i] < s + w.size) {
                                char *id = g_strdup_printf("%lld", (long long)s);
                                if (g_hash_table_add(seen, id)) {
                                    int64_t c = 0;
                                    for (int j = 0; j < nk; j++) c += kt[j] >= s && kt[j] < s + w.size;
                                    want[nwant++] = (wrec){.start = s, .end = s + w.size, .count = c};
                                    strcpy(want[nwant - 1].key, key);
                                }
                            }
                        continue;
                    }
                    if (kind == 1) { /* the session holding kt[i]: grow while a record is within the gap */
                        int64_t lo = kt[i], hi = kt[i];
                        for (bool grew = true; grew;) {
                            grew = false;
                            for (int j = 0; j < nk; j++) {
                                if (kt[j] < lo && kt[j] >= lo - w.size) lo = kt[j], grew = true;
                                if (kt[j] > hi && kt[j] <= hi + w.size) hi = kt[j], grew = true;
                            }
                        }
                        cand[nc][0] = lo, cand[nc][1] = hi, nc++;
                    } else {
                        cand[nc][0] = kt[i] - w.size < 0 ? 0 : kt[i] - w.size, cand[nc][1] = kt[i], nc++;
                        bool at_end = false;
                        for (int j = 0; j < nk; j++) at_end |= kt[j] == kt[i] + 1 + w.size;
                        if (!at_end) cand[nc][0] = kt[i] + 1, cand[nc][1] = kt[i] + 1 + w.size, nc++;
                    }
                    for (int c = 0; c < nc; c++) {
                        int64_t cnt = 0;
                        for (int j = 0; j < nk; j++) cnt += kt[j] >= cand[c][0] && kt[j] <= cand[c][1];
                        if (!cnt) continue;
                        char *id = g_strdup_printf("%lld-%lld", (long long)cand[c][0], (long long)cand[c][1]);
                        if (!g_hash_table_add(seen, id)) continue;
                        want[nwant++] = (wrec){.start = cand[c][0], .end = cand[c][1], .count = cnt};
                        strcpy(want[nwant - 1].key, key);
                    }
                }
                g_hash_table_destroy(seen);
            }
            compare(got, ngot, want, nwant);
            teardown(&f);
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tumbling_hopping), cmocka_unit_test(test_grace_late_side_topic),
        cmocka_unit_test(test_emit_final),       cmocka_unit_test(test_close_order_changelog),       cmocka_unit_test(test_session),
        cmocka_unit_test(test_count_windows),    cmocka_unit_test(test_sliding_changes),
        cmocka_unit_test(test_window_cache),     cmocka_unit_test(test_random_vs_brute_force),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
