/*
 * streams_stockstats.c — events/s for the stock-statistics topology
 * (examples/lib: hopping windows of 5 s advancing by 1 s; count, min and
 * average ask price per ticker and window) through the test driver with
 * in-memory and with RocksDB stores, against a hand-written C loop computing
 * the same windowed statistics over the same in-memory input and encoding
 * the same output records. One process, one thread: events/s = per core.
 *
 *   bench_streams_stockstats [events] [tickers] [memory [row]]   (defaults 300000, 100)
 *
 * "memory" skips the RocksDB rows; a row number runs only that row of the
 * table (both for profiling).
 *
 * Input: trades in time order, 0-4 ms apart (about 500 trades/s), tickers
 * drawn by xorshift; every trade updates 5 windows. Without a record cache
 * every update is an output (as in the loop, the like-for-like rows); with
 * the default 10 MB cache and no commit until the end, updates coalesce and
 * each window goes out when it closes. Outputs are drained every 1000
 * inputs (the driver keeps them until read).
 *
 * Same results, checked: the loop and every uncached run hash their output
 * records (key, value) in order with the same function, inside the timed
 * part (both pay it), and the hashes must be equal; a cached run keeps its
 * outputs, is committed at the end, and its last output per window (the one
 * with the largest count) must equal the loop's final value for every
 * window. The exit status is 1 when any check fails.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <glib.h>

#include "examples.h"

typedef struct {
    int ticker;
    int64_t ts;
    double price;
} trade;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---- the hand-written loop ---- */

typedef struct {
    int64_t count;
    double sum, min;
} stat;

static uint64_t sink_bytes;
static size_t loop_outputs;

/* an ordered hash of output records, 8 bytes at a time */
static uint64_t mix(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t w;
    for (; n >= 8; b += 8, n -= 8) {
        memcpy(&w, b, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 29;
    }
    w = 0;
    if (n) memcpy(&w, b, n);
    return ((h ^ w) * 0x94D049BB133111EBull) ^ n;
}

/* finals: when given (an untimed reference run), every window's last value
 * by windowed key (GBytes -> GBytes) */
static double run_loop(const trade *in, size_t n, char (*names)[16], uint64_t *hash, GHashTable *finals) {
    /* open windows per (ticker, start): a hash table, closed ones freed as
     * time passes (the same retention as the topology's emit-changes store) */
    GHashTable *open = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, g_free);
    int64_t last_purge = 0;
    uint8_t out[64];
    double t0 = cpu_s();
    for (size_t i = 0; i < n; i++) {
        int64_t ts = in[i].ts;
        int64_t lo = ts - 5000 + 1 < 0 ? 0 : ts - 5000 + 1;
        lo = (lo + 999) / 1000 * 1000;
        for (int64_t s = lo; s <= ts; s += 1000) {
            int64_t k = s * 1024 + in[i].ticker;
            stat *st = g_hash_table_lookup(open, &k);
            if (!st) {
                int64_t *kk = g_new(int64_t, 1);
                *kk = k;
                st = g_new0(stat, 1);
                g_hash_table_insert(open, kk, st);
            }
            st->min = st->count == 0 || in[i].price < st->min ? in[i].price : st->min;
            st->count++;
            st->sum += in[i].price;
            /* the output record: windowed key and (count, min, avg) */
            size_t kl = strlen(names[in[i].ticker]);
            memcpy(out, names[in[i].ticker], kl);
            rs_int64_to_bytes(s, out + kl);
            rs_int64_to_bytes(s + 5000, out + kl + 8);
            rs_int64_to_bytes(st->count, out + kl + 16);
            rs_double_to_bytes(st->min, out + kl + 24);
            rs_double_to_bytes(st->sum / (double)st->count, out + kl + 32);
            *hash = mix(mix(*hash, out, kl + 16), out + kl + 16, 24);
            if (finals)
                g_hash_table_replace(finals, g_bytes_new(out, kl + 16), g_bytes_new(out + kl + 16, 24));
            loop_outputs++;
        }
        if (ts - last_purge >= 1000) { /* drop closed windows */
            GHashTableIter it;
            gpointer kp, vp;
            g_hash_table_iter_init(&it, open);
            while (g_hash_table_iter_next(&it, &kp, &vp))
                if (*(int64_t *)kp / 1024 + 5000 <= ts) g_hash_table_iter_remove(&it);
            last_purge = ts;
        }
    }
    double t = cpu_s() - t0;
    g_hash_table_destroy(open);
    return t;
}

/* appends key length, key, value length, value to flat */
static void keep_rec(uint8_t *flat, size_t cap, size_t *used, const rs_record *r) {
    if (*used + r->key.len + r->value.len + 2 > cap || r->key.len > 255 || r->value.len > 255) {
        fprintf(stderr, "output buffer too small\n");
        exit(1);
    }
    uint8_t *p = flat + *used;
    *p++ = (uint8_t)r->key.len;
    memcpy(p, r->key.data, r->key.len);
    p += r->key.len;
    *p++ = (uint8_t)r->value.len;
    memcpy(p, r->value.data, r->value.len);
    *used += r->key.len + r->value.len + 2;
}

/* cache: cache.max.bytes.buffering; 0 = every update goes out, as the loop's.
 * keep: when given, the outputs (key then value, GBytes) after the timed
 * part; otherwise their ordered hash in *hash. */
static double run_topology(const trade *in, size_t n, char (*names)[16], rs_store_type type, bool logged,
                           const char *cache, size_t *outputs, uint64_t *hash, GPtrArray *keep) {
    rs_builder *b = rs_builder_new();
    rs_ex_stockstats(b, &(rs_materialized){.type = type, .no_logging = !logged});
    char err[256];
    rs_topology *t = rs_builder_build(b, err, sizeof(err));
    rs_config *c = rs_config_new();
    rs_config_set(c, "cache.max.bytes.buffering", cache, NULL, 0);
    rs_driver *d = rs_driver_new(t, c, 0, err, sizeof(err));
    rs_config_free(c);
    if (!d) {
        fprintf(stderr, "driver: %s\n", err);
        exit(1);
    }
    rs_driver_set_auto_commit(d, false);
    *outputs = 0;
    /* a cached run keeps its outputs in one flat buffer (key length, key,
     * value length, value): ~10 ns per output inside the timed part */
    size_t cap = keep ? n * 64 : 0, used = 0;
    uint8_t *flat = keep ? malloc(cap) : NULL;
    double t0 = cpu_s();
    for (size_t i = 0; i < n; i++) {
        uint8_t v[8];
        rs_driver_pipe(d, "stockstats-trades", rs_str(names[in[i].ticker]), rs_double_to_bytes(in[i].price, v),
                       in[i].ts);
        if (i % 1000 == 999 || i == n - 1) {
            rs_record r;
            while (rs_driver_read(d, "stockstats-output", &r)) {
                if (flat) keep_rec(flat, cap, &used, &r);
                else *hash = mix(mix(*hash, r.key.data, r.key.len), r.value.data, r.value.len);
                (*outputs)++;
            }
            while (rs_driver_read(d, "rill-streams-test-stockstats-windows-changelog", &r)) sink_bytes += r.value.len;
        }
    }
    double el = cpu_s() - t0;
    if (keep) { /* untimed: the windows still in the cache go out on commit */
        rs_driver_commit(d);
        rs_record r;
        while (rs_driver_read(d, "stockstats-output", &r)) keep_rec(flat, cap, &used, &r);
        for (size_t o = 0; o < used;) {
            size_t kl = flat[o++];
            g_ptr_array_add(keep, g_bytes_new(flat + o, kl));
            o += kl;
            size_t vl = flat[o++];
            g_ptr_array_add(keep, g_bytes_new(flat + o, vl));
            o += vl;
        }
        free(flat);
    }
    rs_driver_free(d);
    rs_topology_free(t);
    rs_builder_free(b);
    return el;
}

int main(int argc, char **argv) {
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 300000;
    int tickers = argc > 2 ? atoi(argv[2]) : 100;
    if (tickers < 1 || tickers > 1000 || n < 1) return 2;
    char(*names)[16] = calloc((size_t)tickers, 16);
    for (int i = 0; i < tickers; i++) snprintf(names[i], 16, "TICK%03d", i);
    trade *in = calloc(n, sizeof(trade));
    uint64_t x = 0x9E3779B97F4A7C15ull;
    int64_t ts = 0;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        ts += (int64_t)(x % 5);
        in[i] = (trade){(int)((x >> 8) % (uint64_t)tickers), ts, 10 + (double)((x >> 20) % 10000) / 100.0};
    }
    double w0 = now_s();
    uint64_t loop_hash = 0, ref_hash = 0;
    GHashTable *finals = g_hash_table_new_full(g_bytes_hash, g_bytes_equal, (GDestroyNotify)g_bytes_unref,
                                               (GDestroyNotify)g_bytes_unref);
    run_loop(in, n, names, &ref_hash, finals); /* untimed reference */
    loop_outputs = 0;
    double loop = run_loop(in, n, names, &loop_hash, NULL);
    bool ok = loop_hash == ref_hash;
    /* a third argument "memory" skips the RocksDB runs (profiling) */
    bool rocks = !(argc > 3 && !strcmp(argv[3], "memory"));
    /* the store is logged (a changelog record per store write, as Kafka's
     * default) except in the one row that shows what the changelog costs */
    static const struct {
        const char *name;
        rs_store_type type;
        bool logged;
        const char *cache;
    } runs[] = {
        {"topology, in-memory stores, no cache (every update out)", RS_STORE_IN_MEMORY, true, "0"},
        {"topology, in-memory stores, no cache, no changelog", RS_STORE_IN_MEMORY, false, "0"},
        {"topology, RocksDB stores, no cache (every update out)", RS_STORE_ROCKSDB, true, "0"},
        {"topology, in-memory stores, 10 MB cache (coalesced)", RS_STORE_IN_MEMORY, true, "10485760"},
        {"topology, RocksDB stores, 10 MB cache (coalesced)", RS_STORE_ROCKSDB, true, "10485760"},
    };
    enum { NRUNS = sizeof(runs) / sizeof(runs[0]) };
    double cpu[NRUNS] = {0};
    size_t outs[NRUNS] = {0};
    const char *verdict[NRUNS] = {0};
    /* a fourth argument N runs only row N of runs[] (profiling) */
    int only = argc > 4 ? atoi(argv[4]) : -1;
    for (int i = 0; i < NRUNS; i++) {
        if (!rocks && runs[i].type != RS_STORE_IN_MEMORY) continue;
        if (only >= 0 && i != only) continue;
        bool cached = strcmp(runs[i].cache, "0") != 0;
        uint64_t h = 0;
        GPtrArray *keep = cached ? g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref) : NULL;
        cpu[i] = run_topology(in, n, names, runs[i].type, runs[i].logged, runs[i].cache, &outs[i], &h, keep);
        bool same;
        if (!cached) {
            same = h == loop_hash && outs[i] == loop_outputs;
        } else { /* last output per window = the one with the largest count */
            GHashTable *last = g_hash_table_new(g_bytes_hash, g_bytes_equal);
            for (guint k = 0; k + 1 < keep->len; k += 2) {
                GBytes *kb = g_ptr_array_index(keep, k), *vb = g_ptr_array_index(keep, k + 1), *pv;
                rs_ex_stats a, b;
                gsize l;
                const uint8_t *p = g_bytes_get_data(vb, &l);
                if (rs_ex_stats_decode((rs_bytes){p, l}, &a)) continue;
                if ((pv = g_hash_table_lookup(last, kb))) {
                    p = g_bytes_get_data(pv, &l);
                    if (!rs_ex_stats_decode((rs_bytes){p, l}, &b) && b.count >= a.count) continue;
                }
                g_hash_table_replace(last, kb, vb);
            }
            same = g_hash_table_size(last) == g_hash_table_size(finals);
            GHashTableIter it;
            gpointer kp, vp;
            g_hash_table_iter_init(&it, finals);
            while (same && g_hash_table_iter_next(&it, &kp, &vp)) {
                GBytes *got = g_hash_table_lookup(last, kp);
                same = got && g_bytes_equal(got, vp);
            }
            g_hash_table_destroy(last);
            g_ptr_array_free(keep, TRUE);
        }
        verdict[i] = same ? (cached ? "final per window = loop's" : "= loop's (ordered hash)") : "DIFFERENT";
        ok = ok && same;
    }
    printf("events=%zu tickers=%d loop outputs=%zu wall=%.1fs\n", n, tickers, loop_outputs, now_s() - w0);
    printf("| variant | outputs | results | CPU s | events/s per core | vs loop |\n|---|---|---|---|---|---|\n");
    printf("| hand-written C loop | %zu | %zu windows | %.3f | %.0f | 1.00x |\n", loop_outputs,
           (size_t)g_hash_table_size(finals), loop, (double)n / loop);
    for (int i = 0; i < NRUNS; i++)
        if (cpu[i] > 0)
            printf("| %s | %zu | %s | %.3f | %.0f | %.2fx slower |\n", runs[i].name, outs[i], verdict[i], cpu[i],
                   (double)n / cpu[i], cpu[i] / loop);
    g_hash_table_destroy(finals);
    free(in);
    free(names);
    if (!ok) fprintf(stderr, "results differ from the loop's\n");
    return ok ? 0 : 1;
}
