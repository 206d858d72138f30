/*
 * examples.c — the example topologies described in examples.h, written as
 * an application programmer would with librill-streams' public API only.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "examples.h"

static void put_double(rs_buf *out, double v) {
    uint8_t b[8];
    rs_buf_append(out, rs_double_to_bytes(v, b).data, 8);
}
static void put_int64(rs_buf *out, int64_t v) {
    uint8_t b[8];
    rs_buf_append(out, rs_int64_to_bytes(v, b).data, 8);
}

/* ---- word count ---- */

static void split_lower(const rs_record *r, rs_emitter *e, void *ctx) {
    char word[256];
    size_t n = 0;
    const char *p = r->value.data;
    for (size_t i = 0; i <= r->value.len; i++) {
        int c = i < r->value.len ? (unsigned char)p[i] : ' ';
        if (isalnum(c) || c == '\'') {
            if (n < sizeof(word)) word[n++] = (char)tolower(c);
        } else if (n) {
            rs_emit(e, RS_NULL_BYTES, (rs_bytes){word, n});
            n = 0;
        }
    }
}
static bool is_the(const rs_record *r, void *ctx) { return r->value.len == 3 && !memcmp(r->value.data, "the", 3); }
static void value_as_key(const rs_record *r, rs_buf *out, void *ctx) { rs_buf_append(out, r->value.data, r->value.len); }

void rs_ex_wordcount(rs_builder *b, const rs_materialized *m) {
    rs_stream *words = rs_stream_flat_map_values(rs_stream_from_topic(b, "wordcount-input"), split_lower, NULL, NULL);
    words = rs_stream_filter_not(words, is_the, NULL, NULL);
    rs_materialized mm = m ? *m : (rs_materialized){0};
    mm.store_name = "wordcount-counts";
    rs_table *counts = rs_grouped_count(rs_stream_group_by(words, value_as_key, NULL, NULL), &mm);
    rs_stream_to(rs_table_to_stream(counts, NULL), "wordcount-output", NULL);
}

/* ---- stock statistics ---- */

typedef struct {
    int64_t count;
    double sum, min;
} stats_agg;

static void stats_read(rs_bytes b, stats_agg *a) {
    a->count = 0, a->sum = 0, a->min = 0;
    if (b.len != 24) return;
    rs_bytes_to_int64((rs_bytes){b.data, 8}, &a->count);
    rs_bytes_to_double((rs_bytes){(const uint8_t *)b.data + 8, 8}, &a->sum);
    rs_bytes_to_double((rs_bytes){(const uint8_t *)b.data + 16, 8}, &a->min);
}
static void stats_init(rs_buf *out, void *ctx) {
    put_int64(out, 0);
    put_double(out, 0);
    put_double(out, 0);
}
static void stats_add(rs_bytes key, rs_bytes value, rs_bytes agg, rs_buf *out, void *ctx) {
    stats_agg a;
    double price;
    stats_read(agg, &a);
    if (rs_bytes_to_double(value, &price)) price = 0;
    a.min = a.count == 0 || price < a.min ? price : a.min;
    a.count++;
    a.sum += price;
    put_int64(out, a.count);
    put_double(out, a.sum);
    put_double(out, a.min);
}
static void stats_out(const rs_record *r, rs_emitter *e, void *ctx) {
    stats_agg a;
    stats_read(r->value, &a);
    uint8_t out[24];
    rs_int64_to_bytes(a.count, out);
    rs_double_to_bytes(a.min, out + 8);
    rs_double_to_bytes(a.count ? a.sum / (double)a.count : 0, out + 16);
    rs_emit(e, RS_NULL_BYTES, (rs_bytes){out, sizeof(out)});
}

int rs_ex_stats_decode(rs_bytes b, rs_ex_stats *out) {
    if (!b.data || b.len != 24) return -1;
    rs_bytes_to_int64((rs_bytes){b.data, 8}, &out->count);
    rs_bytes_to_double((rs_bytes){(const uint8_t *)b.data + 8, 8}, &out->min_ask);
    rs_bytes_to_double((rs_bytes){(const uint8_t *)b.data + 16, 8}, &out->avg_ask);
    return 0;
}

void rs_ex_stockstats(rs_builder *b, const rs_materialized *m) {
    rs_consumed c = {.value_serde = &rs_serde_double};
    const char *topic = "stockstats-trades";
    rs_stream *trades = rs_stream_from(b, &topic, 1, &c);
    rs_materialized mm = m ? *m : (rs_materialized){0};
    mm.store_name = "stockstats-windows";
    rs_windows w = {.kind = RS_WINDOW_TIME, .size = 5000, .advance = 1000};
    rs_table *t = rs_grouped_windowed_aggregate(rs_stream_group_by_key(trades), &w, stats_init, stats_add, NULL,
                                                NULL, &mm);
    rs_stream_to(rs_stream_map_values(rs_table_to_stream(t, NULL), stats_out, NULL, NULL), "stockstats-output", NULL);
}

/* ---- top 10 users over a 10-minute window sliding by 1 s ---- */

static void sum_amounts(rs_bytes agg, rs_bytes value, rs_buf *out, void *ctx) {
    double a = 0, v = 0;
    rs_bytes_to_double(agg, &a);
    rs_bytes_to_double(value, &v);
    put_double(out, a + v);
}
/* (user, start, end) -> key be64(start), value double amount ++ user */
static void by_window(const rs_record *r, rs_emitter *e, void *ctx) {
    rs_windowed_key wk;
    if (rs_windowed_key_decode(r->key, &wk) || !r->value.data || r->value.len != 8) return;
    uint8_t k[8];
    rs_buf v;
    rs_buf_init(&v);
    rs_buf_append(&v, r->value.data, 8);
    rs_buf_append(&v, wk.key.data, wk.key.len);
    rs_emit(e, rs_int64_to_bytes(wk.start, k), rs_buf_bytes(&v));
    rs_buf_free(&v);
}

/* top-10 list: entries (be32 len, user bytes, double amount), best first */
typedef struct {
    const uint8_t *user;
    size_t ulen;
    double amount;
} entry;

static int entry_cmp(const void *a, const void *b) {
    const entry *x = a, *y = b;
    if (x->amount != y->amount) return x->amount > y->amount ? -1 : 1;
    size_t n = x->ulen < y->ulen ? x->ulen : y->ulen;
    int c = memcmp(x->user, y->user, n);
    return c ? c : (x->ulen < y->ulen ? -1 : x->ulen > y->ulen);
}

static size_t top_read(rs_bytes agg, entry *es, size_t max) {
    const uint8_t *p = agg.data, *end = p + agg.len;
    size_t n = 0;
    while (n < max && end - p >= 4) {
        uint32_t l = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if ((size_t)(end - p) < 12 + (size_t)l) break;
        es[n].user = p + 4;
        es[n].ulen = l;
        rs_bytes_to_double((rs_bytes){p + 4 + l, 8}, &es[n].amount);
        p += 12 + l;
        n++;
    }
    return n;
}
static void top_init(rs_buf *out, void *ctx) {}
static void top_add(rs_bytes key, rs_bytes value, rs_bytes agg, rs_buf *out, void *ctx) {
    entry es[11];
    size_t n = top_read(agg, es, 10);
    if (value.len < 8) return;
    entry ne = {(const uint8_t *)value.data + 8, value.len - 8, 0};
    rs_bytes_to_double((rs_bytes){value.data, 8}, &ne.amount);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) /* a user's newer total replaces the older */
        if (!(es[i].ulen == ne.ulen && !memcmp(es[i].user, ne.user, ne.ulen))) es[k++] = es[i];
    es[k++] = ne;
    qsort(es, k, sizeof(entry), entry_cmp);
    if (k > 10) k = 10;
    for (size_t i = 0; i < k; i++) {
        uint8_t l[4] = {(uint8_t)(es[i].ulen >> 24), (uint8_t)(es[i].ulen >> 16), (uint8_t)(es[i].ulen >> 8),
                        (uint8_t)es[i].ulen};
        rs_buf_append(out, l, 4);
        rs_buf_append(out, es[i].user, es[i].ulen);
        put_double(out, es[i].amount);
    }
}
static void top_text(const rs_record *r, rs_emitter *e, void *ctx) {
    entry es[10];
    size_t n = top_read(r->value, es, 10);
    rs_buf out;
    rs_buf_init(&out);
    for (size_t i = 0; i < n; i++) {
        char num[64];
        int l = snprintf(num, sizeof(num), "=%.2f", es[i].amount);
        if (i) rs_buf_append(&out, ",", 1);
        rs_buf_append(&out, es[i].user, es[i].ulen);
        rs_buf_append(&out, num, (size_t)l);
    }
    rs_emit(e, RS_NULL_BYTES, rs_buf_bytes(&out));
    rs_buf_free(&out);
}

void rs_ex_top10(rs_builder *b, const rs_materialized *m) {
    rs_consumed c = {.value_serde = &rs_serde_double};
    const char *topic = "top10-transactions";
    rs_stream *tx = rs_stream_from(b, &topic, 1, &c);
    rs_materialized m1 = m ? *m : (rs_materialized){0}, m2 = m1;
    m1.store_name = "top10-user-sums";
    m2.store_name = "top10-lists";
    rs_windows w = {.kind = RS_WINDOW_TIME, .size = 600000, .advance = 1000, .emit_final = true};
    rs_table *sums = rs_grouped_windowed_reduce(rs_stream_group_by_key(tx), &w, sum_amounts, NULL, &m1);
    rs_stream *per_window = rs_stream_map(rs_table_to_stream(sums, NULL), by_window, NULL, NULL);
    /* map changed the key: group_by_key must repartition, as Kafka does */
    rs_table *tops = rs_grouped_aggregate(rs_stream_group_by_key(per_window), top_init, top_add, NULL, &m2);
    rs_stream_to(rs_stream_map_values(rs_table_to_stream(tops, NULL), top_text, NULL, NULL), "top10-output", NULL);
}

/* ---- 3 consecutive rejections ---- */

static void rejected_count(rs_bytes key, rs_bytes value, rs_bytes agg, rs_buf *out, void *ctx) {
    int64_t n = 0;
    rs_bytes_to_int64(agg, &n);
    put_int64(out, n + (value.len == 8 && !memcmp(value.data, "REJECTED", 8)));
}
static void zero(rs_buf *out, void *ctx) { put_int64(out, 0); }
static bool all_three(const rs_record *r, void *ctx) {
    int64_t n = 0;
    return !rs_bytes_to_int64(r->value, &n) && n == 3;
}
static void alert_text(const rs_record *r, rs_emitter *e, void *ctx) {
    rs_windowed_key wk;
    if (rs_windowed_key_decode(r->key, &wk)) return;
    char text[128];
    int n = snprintf(text, sizeof(text), "3 consecutive rejections from %lld to %lld", (long long)wk.start,
                     (long long)(wk.end - 1));
    rs_emit(e, wk.key, (rs_bytes){text, (size_t)n});
}

void rs_ex_alerts(rs_builder *b, const rs_materialized *m) {
    rs_stream *req = rs_stream_from_topic(b, "alerts-requests");
    rs_materialized mm = m ? *m : (rs_materialized){0};
    mm.store_name = "alerts-last3";
    rs_windows w = {.kind = RS_WINDOW_COUNT, .size = 3, .advance = 1};
    rs_table *t = rs_grouped_windowed_aggregate(rs_stream_group_by_key(req), &w, zero, rejected_count, NULL, NULL, &mm);
    rs_stream *alerts = rs_stream_filter(rs_table_to_stream(t, NULL), all_three, NULL, NULL);
    rs_stream_to(rs_stream_map(alerts, alert_text, NULL, NULL), "alerts-output", NULL);
}

/* ---- clicks from two co-partitioned topics ---- */

void rs_ex_clicks(rs_builder *b, const rs_materialized *m) {
    const char *topics[] = {"clicks-web", "clicks-app"};
    rs_stream *clicks = rs_stream_from(b, topics, 2, NULL);
    rs_materialized mm = m ? *m : (rs_materialized){0};
    mm.store_name = "clicks-counts";
    rs_table *t = rs_grouped_count(rs_stream_group_by_key(clicks), &mm);
    rs_stream_to(rs_table_to_stream(t, NULL), "clicks-per-user", NULL);
}

/* ---- a pattern source and a user partitioner ---- */

static void tag_topic(const rs_record *r, rs_emitter *e, void *ctx) {
    rs_buf v;
    rs_buf_init(&v);
    const char *t = r->topic ? r->topic : "";
    rs_buf_append(&v, t, strlen(t));
    rs_buf_append(&v, ":", 1);
    if (r->value.data) rs_buf_append(&v, r->value.data, r->value.len);
    rs_emit(e, r->key, rs_buf_bytes(&v));
    rs_buf_free(&v);
}

static int32_t by_number(const rs_record *r, int32_t n, void *ctx) {
    if (!r->key.data || !r->key.len || r->key.len > 9) return -1;
    int32_t k = 0;
    for (size_t i = 0; i < r->key.len; i++) {
        uint8_t c = ((const uint8_t *)r->key.data)[i];
        if (c < '0' || c > '9') return -1;
        k = k * 10 + (c - '0');
    }
    return k % n;
}

void rs_ex_routes(rs_builder *b, const rs_materialized *m) {
    rs_stream *in = rs_stream_from_pattern(b, "routes-in-[a-z]+$", NULL);
    rs_stream_to(rs_stream_map_values(in, tag_topic, NULL, NULL), "routes-out",
                 &(rs_produced){.partitioner = by_number});
}

/* ---- a table grouped again: users per region ---- */

static void user_to_region(const rs_record *r, rs_emitter *e, void *ctx) {
    (void)ctx;
    rs_emit(e, r->value, r->key); /* (user, region) -> (region, user) */
}

void rs_ex_regions(rs_builder *b, const rs_materialized *m) {
    rs_materialized mu = m ? *m : (rs_materialized){0};
    mu.store_name = "regions-users-store";
    rs_table *users = rs_table_from(b, "regions-users", NULL, &mu);
    rs_materialized mc = m ? *m : (rs_materialized){0};
    mc.store_name = "regions-counts";
    rs_table *counts = rs_grouped_table_count(rs_table_group_by(users, user_to_region, NULL, NULL), &mc);
    rs_stream_to(rs_table_to_stream(counts, NULL), "regions-output", NULL);
}
