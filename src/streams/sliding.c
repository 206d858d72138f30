/*
 * sliding.c — Kafka Streams' sliding windows (SlidingWindows: a time
 * difference D and a grace): every distinct set of records of a key that
 * fits in D+1 ms is one window. Those windows are the "left" window of each
 * record time t, [t-D, t], and the "right" window just after it,
 * [t+1, t+1+D], when that holds records and is not some record's left
 * window. Both ends inclusive; the output key's end is the window's last ms.
 *
 * The store keeps the raw records (key ++ be64(ts) ++ be64(seq) -> value)
 * for D + grace, and window aggregates are computed from them when emitted.
 * That costs O(records in D) per emission; it is exact under any disorder
 * within grace, which the incremental form of Kafka Streams works hard for.
 *
 * Open index entries (pc->wopen): be64(close) ++ type ++ raw key, type 0 =
 * emit the left window (emit_final), 1 = emit the right window (emit_final),
 * 2 = expire the raw record. For one close time the emissions sort first,
 * so a record is never expired before a window holding it is emitted (W1).
 */
#include <stdlib.h>
#include <string.h>

#include "streams/streams_int.h"

enum { T_LEFT = 0, T_RIGHT = 1, T_EXPIRE = 2 };

static rs_kv_store *wstore(rs_task *t, const rs_node *nd) { return t->stores[g_array_index(nd->stores, int, 0)]; }

static void index_put(rs_pctx *pc, int64_t close, int type, rs_bytes raw, bool add) {
    rs_buf b;
    rs_buf_init(&b);
    uint8_t c[9];
    rs__put64(c, close);
    c[8] = (uint8_t)type;
    rs_buf_append(&b, c, 9);
    rs_buf_append(&b, raw.data, raw.len);
    rs__mem_store_vt.put(pc->wopen, rs_buf_bytes(&b), add ? (rs_bytes){"", 0} : RS_NULL_BYTES);
    if (add && close < pc->wnext) pc->wnext = close; /* rs__window_due */
    rs_buf_free(&b);
}

/* the index entries of one raw record (at insert, and when rebuilding) */
void rs__sliding_index(rs_pctx *pc, const rs_node *nd, rs_bytes raw) {
    if (raw.len < 16) return;
    int64_t ts = rs__get64((const uint8_t *)raw.data + raw.len - 16), d = nd->win.size, g = nd->win.grace;
    int64_t seq = rs__get64((const uint8_t *)raw.data + raw.len - 8);
    if (seq >= pc->wseq) pc->wseq = seq + 1; /* after a rebuild too */
    if (nd->win.emit_final) {
        index_put(pc, ts + g, T_LEFT, raw, true);
        index_put(pc, ts + 1 + d + g, T_RIGHT, raw, true);
    }
    index_put(pc, ts + d + g + 1, T_EXPIRE, raw, true);
}

typedef struct {
    const rs_node *nd;
    rs_bytes key;
    int64_t lo, hi;
    rs_buf agg, tmp;
    size_t n;
    GArray *times; /* distinct ts (int64), when collecting */
} scan;

static bool raw_of_key(const scan *sc, rs_bytes k) {
    return k.len == sc->key.len + 16 && (!sc->key.len || !memcmp(k.data, sc->key.data, sc->key.len));
}

static int agg_hit(rs_bytes k, rs_bytes v, void *arg) {
    scan *sc = arg;
    if (!raw_of_key(sc, k)) return 0;
    int64_t ts = rs__get64((const uint8_t *)k.data + sc->key.len);
    if (ts < sc->lo || ts > sc->hi) return 0;
    sc->tmp.len = 0;
    rs_bytes ab = rs_buf_bytes(&sc->agg);
    rs__agg_step(sc->nd, sc->key, v, sc->n ? &ab : NULL, &sc->tmp);
    sc->agg.len = 0;
    rs_buf_append(&sc->agg, sc->tmp.data, sc->tmp.len);
    sc->n++;
    if (sc->times && (!sc->times->len || g_array_index(sc->times, int64_t, sc->times->len - 1) != ts))
        g_array_append_val(sc->times, ts);
    return 0;
}

static void range_keys(rs_buf *from, rs_buf *to, rs_bytes key, int64_t lo, int64_t hi) {
    uint8_t n[16];
    from->len = to->len = 0;
    rs__put64(n, lo < 0 ? 0 : lo);
    rs__put64(n + 8, 0);
    rs_buf_append(from, key.data, key.len);
    rs_buf_append(from, n, 16);
    rs__put64(n, hi);
    rs__put64(n + 8, INT64_MAX);
    rs_buf_append(to, key.data, key.len);
    rs_buf_append(to, n, 16);
}

/* aggregates the raw records of key in [lo, hi]; returns how many */
static size_t window_agg(rs_task *t, const rs_node *nd, rs_bytes key, int64_t lo, int64_t hi, rs_buf *out,
                         GArray *times) {
    scan sc = {.nd = nd, .key = key, .lo = lo, .hi = hi, .times = times};
    rs_buf_init(&sc.agg);
    rs_buf_init(&sc.tmp);
    rs_buf from, to;
    rs_buf_init(&from);
    rs_buf_init(&to);
    range_keys(&from, &to, key, lo, hi);
    rs_kv_range(wstore(t, nd), rs_buf_bytes(&from), rs_buf_bytes(&to), agg_hit, &sc);
    if (out) rs_buf_append(out, sc.agg.data, sc.agg.len);
    rs_buf_free(&sc.agg);
    rs_buf_free(&sc.tmp);
    rs_buf_free(&from);
    rs_buf_free(&to);
    return sc.n;
}

static gint cmp64(gconstpointer a, gconstpointer b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static bool has_time(GArray *times, int64_t ts) {
    for (guint i = 0; i < times->len; i++)
        if (g_array_index(times, int64_t, i) == ts) return true;
    return false;
}

/* emits window [lo, hi] of key if it holds records */
static void emit_window(rs_task *t, const rs_node *nd, rs_bytes key, int64_t lo, int64_t hi, int64_t ts) {
    rs_buf agg;
    rs_buf_init(&agg);
    if (window_agg(t, nd, key, lo, hi, &agg, NULL)) /* no time before 0: start clipped */
        rs__window_emit(t, nd, key, lo < 0 ? 0 : lo, hi, rs_buf_bytes(&agg), ts);
    rs_buf_free(&agg);
}

void rs__sliding_process(rs_task *t, rs_node *nd, rs_pctx *pc, const rs_record *r) {
    int64_t ts = r->timestamp, d = nd->win.size, g = nd->win.grace, st = t->stream_time;
    if (ts + d + g <= st) { /* every window that could hold it is closed */
        rs__window_late(t, nd, r);
        return;
    }
    rs_buf raw;
    rs_buf_init(&raw);
    uint8_t n[16];
    rs__put64(n, ts);
    rs__put64(n + 8, pc->wseq++);
    rs_buf_append(&raw, r->key.data, r->key.len);
    rs_buf_append(&raw, n, 16);
    rs__kv_put_ts(wstore(t, nd), rs_buf_bytes(&raw), r->value, ts);
    rs__sliding_index(pc, nd, rs_buf_bytes(&raw));
    rs_buf_free(&raw);
    if (nd->win.emit_final) return;
    /* emit changes: every open window holding ts, ascending by start */
    GArray *times = g_array_new(FALSE, FALSE, sizeof(int64_t));
    window_agg(t, nd, r->key, ts - d - 1, ts + d + 1, NULL, times);
    GArray *starts = g_array_new(FALSE, FALSE, sizeof(int64_t));
    for (guint i = 0; i < times->len; i++) {
        int64_t x = g_array_index(times, int64_t, i);
        if (x >= ts && x <= ts + d) { /* left window of x holds ts */
            int64_t s0 = x - d;
            g_array_append_val(starts, s0);
        }
        if (x < ts && x + 1 + d >= ts && !has_time(times, x + 1 + d)) { /* right window of x */
            int64_t s0 = x + 1;
            g_array_append_val(starts, s0);
        }
    }
    /* ts's own right window holds later records only: unchanged by ts, not emitted */
    g_array_sort(starts, cmp64);
    for (guint i = 0; i < starts->len; i++) {
        int64_t s0 = g_array_index(starts, int64_t, i);
        if (i && s0 == g_array_index(starts, int64_t, i - 1)) continue;
        if (s0 + d + g <= st) continue; /* W1: closed */
        emit_window(t, nd, r->key, s0, s0 + d, ts);
    }
    g_array_free(times, TRUE);
    g_array_free(starts, TRUE);
}

typedef struct {
    rs_bytes key;
    int64_t ts;
    int64_t first_seq;
} first_scan;

static int first_hit(rs_bytes k, rs_bytes v, void *arg) {
    first_scan *fs = arg;
    if (k.len != fs->key.len + 16 || (fs->key.len && memcmp(k.data, fs->key.data, fs->key.len))) return 0;
    fs->first_seq = rs__get64((const uint8_t *)k.data + k.len - 8);
    return 1;
}

/* is raw the first stored record of its key at its ts (emit each window once)? */
static bool first_at_ts(rs_task *t, const rs_node *nd, rs_bytes key, int64_t ts, int64_t seq) {
    rs_buf from, to;
    rs_buf_init(&from);
    rs_buf_init(&to);
    range_keys(&from, &to, key, ts, ts);
    first_scan fs = {key, ts, -1};
    rs_kv_range(wstore(t, nd), rs_buf_bytes(&from), rs_buf_bytes(&to), first_hit, &fs);
    rs_buf_free(&from);
    rs_buf_free(&to);
    return fs.first_seq == seq;
}

void rs__sliding_close(rs_task *t, rs_node *nd, rs_pctx *pc) {
    GPtrArray *due = rs__window_due(pc, t->stream_time);
    if (!due) return;
    int64_t d = nd->win.size;
    for (guint i = 0; i < due->len; i++) {
        gsize il;
        const uint8_t *ik = g_bytes_get_data(g_ptr_array_index(due, i), &il);
        int type = ik[8];
        rs_bytes raw = {ik + 9, il - 9};
        rs_bytes key = {raw.data, raw.len - 16};
        int64_t ts = rs__get64(ik + 9 + key.len), seq = rs__get64(ik + 9 + key.len + 8);
        if (type == T_LEFT && first_at_ts(t, nd, key, ts, seq)) {
            emit_window(t, nd, key, ts - d, ts, ts);
        } else if (type == T_RIGHT && first_at_ts(t, nd, key, ts, seq)) {
            /* not a left window too: no record exactly at its end */
            if (!window_agg(t, nd, key, ts + 1 + d, ts + 1 + d, NULL, NULL))
                emit_window(t, nd, key, ts + 1, ts + 1 + d, ts + 1 + d);
        } else if (type == T_EXPIRE) {
            rs__kv_put_ts(wstore(t, nd), raw, RS_NULL_BYTES, t->stream_time);
        }
        rs__mem_store_vt.put(pc->wopen, (rs_bytes){ik, il}, RS_NULL_BYTES);
    }
    g_ptr_array_free(due, TRUE);
}
