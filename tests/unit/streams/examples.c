/* examples.c (test) — the example topologies of examples/ run through
 * the test driver on generated input, each checked against an independent
 * computation written here from the example's description (not from its
 * code), on both the in-memory and the RocksDB stores where it matters. */
#include <ctype.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <glib.h>

#include "examples.h"

static uint64_t rng = 88172645463325252ull;
static uint32_t next_rand(void) { /* xorshift64: the same input every run */
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

typedef struct {
    rs_builder *b;
    rs_topology *t;
    rs_driver *d;
} fixture;

static fixture start(void (*topo)(rs_builder *, const rs_materialized *), rs_store_type type) {
    fixture f;
    f.b = rs_builder_new();
    topo(f.b, &(rs_materialized){.type = type});
    char err[256] = "";
    f.t = rs_builder_build(f.b, err, sizeof(err));
    if (!f.t) fail_msg("build: %s", err);
    f.d = rs_driver_new(f.t, NULL, 0, err, sizeof(err));
    if (!f.d) fail_msg("driver: %s", err);
    return f;
}
static void stop(fixture *f) {
    rs_driver_free(f->d);
    rs_topology_free(f->t);
    rs_builder_free(f->b);
}

/* ---- word count ---- */

static const char *vocab[] = {"The", "quick", "brown", "fox", "THE", "lazy", "dog", "isn't", "the", "Fox", "a", "rill"};

static void run_wordcount(rs_store_type type) {
    fixture f = start(rs_ex_wordcount, type);
    GHashTable *want = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    for (int line = 0; line < 300; line++) {
        char text[512] = "";
        int nw = 1 + (int)(next_rand() % 12);
        for (int i = 0; i < nw; i++) {
            strcat(text, vocab[next_rand() % G_N_ELEMENTS(vocab)]);
            strcat(text, i % 3 == 2 ? ", " : " ");
        }
        /* independent count: lowercase, split on anything but letters, digits and ', drop "the" */
        char *low = g_ascii_strdown(text, -1);
        char **parts = g_regex_split_simple("[^a-z0-9']+", low, 0, 0);
        for (char **p = parts; *p; p++) {
            if (!**p || !strcmp(*p, "the")) continue;
            int64_t *n = g_hash_table_lookup(want, *p);
            if (!n) {
                n = g_new0(int64_t, 1);
                g_hash_table_insert(want, g_strdup(*p), n);
            }
            (*n)++;
        }
        g_strfreev(parts);
        g_free(low);
        assert_int_equal(rs_driver_pipe_str(f.d, "wordcount-input", NULL, text, line), 0);
    }
    /* the last output per word is its count */
    GHashTable *got = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    rs_record r;
    while (rs_driver_read(f.d, "wordcount-output", &r)) {
        int64_t *n = g_new0(int64_t, 1);
        assert_int_equal(rs_bytes_to_int64(r.value, n), 0);
        g_hash_table_replace(got, g_strndup(r.key.data, r.key.len), n);
    }
    assert_int_equal(g_hash_table_size(got), g_hash_table_size(want));
    assert_null(g_hash_table_lookup(got, "the"));
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, want);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        int64_t *n = g_hash_table_lookup(got, k);
        if (!n || *n != *(int64_t *)v) fail_msg("word %s: got %lld want %lld", (char *)k, n ? (long long)*n : -1LL,
                                                (long long)*(int64_t *)v);
    }
    assert_int_equal(rs_kv_count(rs_driver_kv_store(f.d, "wordcount-counts")), g_hash_table_size(want));
    g_hash_table_destroy(got);
    g_hash_table_destroy(want);
    stop(&f);
}

static void test_wordcount(void **state) {
    (void)state;
    run_wordcount(RS_STORE_IN_MEMORY);
    run_wordcount(RS_STORE_ROCKSDB);
}

/* ---- stock statistics ---- */

#define NTRADES 2000
static const char *tickers[] = {"ACME", "GLOBEX", "INITECH"};

static void run_stockstats(rs_store_type type) {
    fixture f = start(rs_ex_stockstats, type);
    static int64_t ts[NTRADES];
    static double px[NTRADES];
    static int tk[NTRADES];
    int64_t now = 0;
    for (int i = 0; i < NTRADES; i++) {
        now += next_rand() % 40; /* in order: the example has no grace */
        ts[i] = now;
        tk[i] = (int)(next_rand() % 3);
        px[i] = 10 + (next_rand() % 10000) / 100.0;
        uint8_t b[8];
        assert_int_equal(rs_driver_pipe(f.d, "stockstats-trades", rs_str(tickers[tk[i]]), rs_double_to_bytes(px[i], b), ts[i]), 0);
    }
    /* last output per (ticker, window start) */
    GHashTable *got = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    rs_record r;
    while (rs_driver_read(f.d, "stockstats-output", &r)) {
        rs_windowed_key wk;
        assert_int_equal(rs_windowed_key_decode(r.key, &wk), 0);
        assert_int_equal(wk.end - wk.start, 5000);
        assert_int_equal(wk.start % 1000, 0);
        rs_ex_stats *s = g_new0(rs_ex_stats, 1);
        assert_int_equal(rs_ex_stats_decode(r.value, s), 0);
        g_hash_table_replace(got, g_strdup_printf("%.*s@%lld", (int)wk.key.len, (const char *)wk.key.data,
                                                  (long long)wk.start), s);
    }
    /* independent: every 1 s-aligned 5 s window holding a trade of a ticker */
    int nwin = 0;
    for (int t = 0; t < 3; t++) {
        for (int64_t s0 = 0; s0 <= now; s0 += 1000) {
            int64_t n = 0;
            double sum = 0, mn = 0;
            for (int i = 0; i < NTRADES; i++) {
                if (tk[i] != t || ts[i] < s0 || ts[i] >= s0 + 5000) continue;
                mn = n == 0 || px[i] < mn ? px[i] : mn;
                sum += px[i];
                n++;
            }
            char *id = g_strdup_printf("%s@%lld", tickers[t], (long long)s0);
            rs_ex_stats *s = g_hash_table_lookup(got, id);
            if (!n) {
                assert_null(s);
            } else {
                nwin++;
                if (!s) fail_msg("no output for %s", id);
                assert_int_equal(s->count, n);
                assert_true(s->min_ask == mn);
                assert_true(fabs(s->avg_ask - sum / (double)n) < 1e-9);
            }
            g_free(id);
        }
    }
    assert_int_equal(g_hash_table_size(got), nwin);
    g_hash_table_destroy(got);
    stop(&f);
}

static void test_stockstats(void **state) {
    (void)state;
    run_stockstats(RS_STORE_IN_MEMORY);
    run_stockstats(RS_STORE_ROCKSDB);
}

/* ---- top 10 users ---- */

#define NTX 300
#define NUSERS 25

typedef struct {
    char user[8];
    double amount;
} usum;

static int usum_cmp(const void *a, const void *b) {
    const usum *x = a, *y = b;
    if (x->amount != y->amount) return x->amount > y->amount ? -1 : 1;
    return strcmp(x->user, y->user);
}

static void test_top10(void **state) {
    (void)state;
    fixture f = start(rs_ex_top10, RS_STORE_IN_MEMORY);
    static int64_t ts[NTX];
    static double amt[NTX];
    static int user[NTX];
    int64_t now = 0;
    for (int i = 0; i < NTX; i++) {
        now += next_rand() % 6000; /* about 15 minutes in all */
        ts[i] = now;
        user[i] = (int)(next_rand() % NUSERS);
        amt[i] = (1 + next_rand() % 10000) / 100.0;
        char u[8];
        snprintf(u, sizeof(u), "u%02d", user[i]);
        uint8_t b[8];
        assert_int_equal(rs_driver_pipe(f.d, "top10-transactions", rs_str(u), rs_double_to_bytes(amt[i], b), ts[i]), 0);
    }
    uint8_t b[8];
    rs_driver_pipe(f.d, "top10-transactions", rs_str("late-closer"), rs_double_to_bytes(0, b), now + 10000000);
    GHashTable *got = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, g_free);
    rs_record r;
    while (rs_driver_read(f.d, "top10-output", &r)) {
        int64_t *k = g_new(int64_t, 1);
        assert_int_equal(rs_bytes_to_int64(r.key, k), 0);
        g_hash_table_replace(got, k, g_strndup(r.value.data, r.value.len));
    }
    int nwin = 0;
    for (int64_t s0 = 0; s0 <= now; s0 += 1000) {
        usum sums[NUSERS];
        bool any = false;
        for (int u = 0; u < NUSERS; u++) {
            snprintf(sums[u].user, sizeof(sums[u].user), "u%02d", u);
            sums[u].amount = -1;
        }
        for (int i = 0; i < NTX; i++) {
            if (ts[i] < s0 || ts[i] >= s0 + 600000) continue;
            sums[user[i]].amount = sums[user[i]].amount < 0 ? amt[i] : sums[user[i]].amount + amt[i];
            any = true;
        }
        const char *g = g_hash_table_lookup(got, &s0);
        if (!any) {
            assert_null(g);
            continue;
        }
        nwin++;
        qsort(sums, NUSERS, sizeof(usum), usum_cmp);
        GString *want = g_string_new("");
        for (int i = 0; i < 10 && sums[i].amount >= 0; i++)
            g_string_append_printf(want, "%s%s=%.2f", i ? "," : "", sums[i].user, sums[i].amount);
        if (!g || strcmp(g, want->str)) fail_msg("window %lld: got %s want %s", (long long)s0, g ? g : "(none)", want->str);
        g_string_free(want, TRUE);
    }
    assert_true(nwin > 500);
    /* the closer's own windows are still open: only the checked windows were emitted */
    assert_int_equal(g_hash_table_size(got), nwin);
    g_hash_table_destroy(got);
    stop(&f);
}

/* ---- 3 consecutive rejections ---- */

static void test_alerts(void **state) {
    (void)state;
    fixture f = start(rs_ex_alerts, RS_STORE_ROCKSDB);
    enum { N = 600, NC = 5 };
    static int client[N];
    static bool rej[N];
    for (int i = 0; i < N; i++) {
        client[i] = (int)(next_rand() % NC);
        rej[i] = next_rand() % 10 < 6;
        char c[8];
        snprintf(c, sizeof(c), "c%d", client[i]);
        assert_int_equal(rs_driver_pipe_str(f.d, "alerts-requests", c, rej[i] ? "REJECTED" : "ACCEPTED", 1000 + i), 0);
    }
    /* independent: walk each client's requests in order */
    int run[NC] = {0};
    int64_t since[NC][3];
    int nalerts = 0;
    rs_record r;
    for (int i = 0; i < N; i++) {
        int c = client[i];
        since[c][0] = since[c][1], since[c][1] = since[c][2], since[c][2] = 1000 + i;
        run[c] = rej[i] ? run[c] + 1 : 0;
        if (run[c] < 3) continue;
        nalerts++;
        char key[8], text[128];
        snprintf(key, sizeof(key), "c%d", c);
        snprintf(text, sizeof(text), "3 consecutive rejections from %lld to %lld", (long long)since[c][0],
                 (long long)since[c][2]);
        assert_true(rs_driver_read(f.d, "alerts-output", &r));
        assert_true(r.key.len == strlen(key) && !memcmp(r.key.data, key, r.key.len));
        if (r.value.len != strlen(text) || memcmp(r.value.data, text, r.value.len))
            fail_msg("alert %d: got %.*s want %s", nalerts, (int)r.value.len, (const char *)r.value.data, text);
    }
    assert_false(rs_driver_read(f.d, "alerts-output", &r));
    assert_true(nalerts > 20);
    stop(&f);
}

/* the pattern source takes matching topics only; under the driver a topic
 * has one partition, so the partitioner sends numbered keys to 0 and drops
 * the rest; the value is tagged with the record's source topic */
static void test_routes(void **state) {
    (void)state;
    fixture f = start(rs_ex_routes, RS_STORE_IN_MEMORY);
    assert_int_equal(rs_driver_pipe_str(f.d, "routes-in-a", "7", "v", 1), 0);
    assert_int_equal(rs_driver_pipe_str(f.d, "routes-in-zz", "12", "w", 2), 0);
    assert_int_equal(rs_driver_pipe_str(f.d, "routes-in-9", "1", "no", 3), -1);
    assert_int_equal(rs_driver_pipe_str(f.d, "routes-in-", "1", "no", 3), -1);
    assert_int_equal(rs_driver_pipe_str(f.d, "routes-in-a", "x", "dropped", 4), 0);
    rs_record r;
    assert_true(rs_driver_read(f.d, "routes-out", &r));
    assert_true(r.value.len == 13 && !memcmp(r.value.data, "routes-in-a:v", 13));
    assert_true(rs_driver_read(f.d, "routes-out", &r));
    assert_true(r.key.len == 2 && !memcmp(r.key.data, "12", 2));
    assert_true(r.value.len == 14 && !memcmp(r.value.data, "routes-in-zz:w", 14));
    assert_false(rs_driver_read(f.d, "routes-out", &r));
    assert_int_equal(rs_driver_metric(f.d, "dropped-records"), 1);
    stop(&f);
}

/* ---- users per region: random moves and deletes ---- */

static const char *regions[] = {"eu", "us", "asia", "africa"};

/* 2000 random changes to 40 users (a move, the same region again, or a
 * delete), committed every 1 to 7 records (the caches coalesce between):
 * after each commit, the last output of every region ever seen equals the
 * number of users there now, computed here from the rows alone */
static void test_regions(void **state) {
    (void)state;
    fixture f = start(rs_ex_regions, RS_STORE_IN_MEMORY);
    rs_driver_set_auto_commit(f.d, false);
    int where[40]; /* region index, -1: no row */
    for (int u = 0; u < 40; u++) where[u] = -1;
    int64_t got[G_N_ELEMENTS(regions)];
    bool seen[G_N_ELEMENTS(regions)] = {false};
    int until_commit = 1;
    for (int i = 0; i < 2000; i++) {
        int u = (int)(next_rand() % 40);
        char user[8];
        snprintf(user, sizeof(user), "u%d", u);
        int to = next_rand() % 5 == 0 ? -1 : (int)(next_rand() % G_N_ELEMENTS(regions));
        where[u] = to;
        assert_int_equal(rs_driver_pipe_str(f.d, "regions-users", user, to < 0 ? NULL : regions[to], i), 0);
        if (--until_commit) continue;
        until_commit = 1 + (int)(next_rand() % 7);
        rs_driver_commit(f.d);
        rs_record r;
        while (rs_driver_read(f.d, "regions-output", &r)) {
            size_t k = 0;
            while (k < G_N_ELEMENTS(regions) && !(r.key.len == strlen(regions[k]) && !memcmp(r.key.data, regions[k], r.key.len)))
                k++;
            assert_true(k < G_N_ELEMENTS(regions));
            assert_int_equal(rs_bytes_to_int64(r.value, &got[k]), 0);
            seen[k] = true;
        }
        for (size_t k = 0; k < G_N_ELEMENTS(regions); k++) {
            int64_t want = 0;
            for (int x = 0; x < 40; x++) want += where[x] == (int)k;
            if (seen[k] && got[k] != want)
                fail_msg("record %d: %s has %lld users, output says %lld", i, regions[k], (long long)want,
                         (long long)got[k]);
            if (!seen[k]) assert_int_equal(want, 0);
        }
    }
    stop(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wordcount),
        cmocka_unit_test(test_stockstats),
        cmocka_unit_test(test_top10),
        cmocka_unit_test(test_alerts),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_regions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
