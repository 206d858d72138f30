/*
 * window.c — windowed aggregation: time windows (tumbling, hopping), session
 * windows (merging) and count windows (the last N records of a key); grace,
 * late records (dropped, counted, optionally written to a side topic), and
 * the two emit modes (every update, or only the final result on close).
 *
 * Store keys: time windows key ++ be64(start); sessions key ++ be64(end) ++
 * be64(start) (so a scan from key ++ be64(t - gap) finds every session that
 * may touch t); count windows key -> be64(seen) then (be64 ts, be32 len,
 * bytes) per kept record. A scan over key ++ ... also meets longer keys that
 * start with key: every hit is checked for exact length and prefix.
 *
 * Invariants:
 *  W1. A window is closed once stream time >= its close time (time windows:
 *      end + grace; sessions: end + gap + grace + 1); a closed window is
 *      never updated again, is emitted once (emit_final) and leaves the store.
 *  W2. Every window in the store has exactly one entry in the open index:
 *      pc->wopen keyed be64(close) ++ store key (sessions, sliding), or for
 *      time windows its key in the bucket of its close time (pc->wbuckets);
 *      a closing bucket is sorted, so windows close in the same order
 *      (close, store key) either way.
 */
#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include "streams/streams_int.h"

void rs__put64(uint8_t *p, int64_t v) {
    uint64_t b = htobe64((uint64_t)v);
    memcpy(p, &b, 8);
}
int64_t rs__get64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return (int64_t)be64toh(v);
}

static rs_kv_store *wstore(rs_task *t, const rs_node *nd) { return t->stores[g_array_index(nd->stores, int, 0)]; }

void rs__window_emit(rs_task *t, const rs_node *nd, rs_bytes key, int64_t start, int64_t end, rs_bytes value,
                 int64_t ts) {
    uint8_t small[128]; /* the windowed key key ++ be64(start) ++ be64(end) */
    rs_bytes kb;
    if (key.len <= sizeof(small) - 16) {
        if (key.len) memcpy(small, key.data, key.len);
        rs__put64(small + key.len, start);
        rs__put64(small + key.len + 8, end);
        kb = (rs_bytes){small, key.len + 16};
    } else {
        rs_buf *k = &t->pcs[nd->id].wb[3]; /* S2: the node is not re-entered while forwarding */
        k->len = 0;
        rs_windowed_key wk = {key, start, end};
        rs_windowed_key_encode(&wk, k);
        kb = rs_buf_bytes(k);
    }
    rs_record o = {.key = kb, .value = value, .timestamp = ts, .partition = t->partition, .offset = -1};
    if (t->cur) o.topic = t->cur->topic, o.partition = t->cur->partition, o.offset = t->cur->offset;
    rs__forward(t, nd->id, &o);
}

void rs__window_late(rs_task *t, const rs_node *nd, const rs_record *r) {
    t->m.dropped++;
    if (nd->late_topic) t->sink(t->sink_arg, nd->late_topic, -1, r, NULL);
}

static void index_key(rs_buf *b, int64_t close, rs_bytes skey) {
    uint8_t c[8];
    rs__put64(c, close);
    b->len = 0;
    rs_buf_append(b, c, 8);
    rs_buf_append(b, skey.data, skey.len);
}

static void index_put(rs_pctx *pc, int64_t close, rs_bytes skey, bool add) {
    uint8_t small[128];
    rs_buf b;
    rs_buf_init(&b);
    bool heap = skey.len > sizeof(small) - 8;
    if (heap) index_key(&b, close, skey);
    else rs__put64(small, close), memcpy(small + 8, skey.data, skey.len);
    rs_bytes k = heap ? rs_buf_bytes(&b) : (rs_bytes){small, 8 + skey.len};
    rs__mem_store_vt.put(pc->wopen, k, add ? (rs_bytes){"", 0} : RS_NULL_BYTES);
    if (add && close < pc->wnext) pc->wnext = close;
    rs_buf_free(&b);
}

/* time windows: skey joins the bucket of close (made in order when new;
 * closes mostly grow, so the search starts at the end) */
static void bucket_add(rs_pctx *pc, int64_t close, rs_bytes skey) {
    GArray *a = pc->wbuckets;
    guint i = a->len;
    while (i > 0 && g_array_index(a, rs_wbucket, i - 1).close > close) i--;
    if (i == 0 || g_array_index(a, rs_wbucket, i - 1).close != close) {
        rs_buf *b;
        if (pc->wspare->len) {
            b = g_ptr_array_steal_index_fast(pc->wspare, pc->wspare->len - 1);
        } else {
            b = calloc(1, sizeof(*b));
            if (!b) abort();
        }
        b->len = 0;
        rs_wbucket nb = {close, b};
        g_array_insert_val(a, i, nb);
        i++;
    }
    rs_buf *b = g_array_index(a, rs_wbucket, i - 1).keys;
    uint32_t l = (uint32_t)skey.len;
    rs_buf_append(b, &l, 4);
    rs_buf_append(b, skey.data, skey.len);
}

void rs__window_index_free(rs_pctx *pc) {
    if (pc->wopen) rs__mem_store_vt.close(pc->wopen);
    pc->wopen = NULL;
    if (pc->wbuckets) {
        for (guint i = 0; i < pc->wbuckets->len; i++) {
            rs_buf *b = g_array_index(pc->wbuckets, rs_wbucket, i).keys;
            rs_buf_free(b);
            free(b);
        }
        g_array_free(pc->wbuckets, TRUE);
        pc->wbuckets = NULL;
    }
    if (pc->wspare) {
        for (guint i = 0; i < pc->wspare->len; i++) {
            rs_buf_free(g_ptr_array_index(pc->wspare, i));
            free(g_ptr_array_index(pc->wspare, i));
        }
        g_ptr_array_free(pc->wspare, TRUE);
        pc->wspare = NULL;
    }
}

static int64_t close_time(const rs_node *nd, rs_bytes skey) {
    const uint8_t *p = (const uint8_t *)skey.data + skey.len;
    if (nd->win.kind == RS_WINDOW_TIME) return rs__get64(p - 8) + nd->win.size + nd->win.grace;
    return rs__get64(p - 16) + nd->win.size + nd->win.grace + 1; /* session: end at -16 */
}

static int rebuild_one(rs_bytes k, rs_bytes v, void *arg) {
    void **a = arg;
    const rs_node *nd = a[1];
    if (nd->win.kind == RS_WINDOW_SLIDING) rs__sliding_index(a[0], nd, k);
    else if (nd->win.kind == RS_WINDOW_TIME && k.len >= 8) bucket_add(a[0], close_time(nd, k), k);
    else if (nd->win.kind == RS_WINDOW_SESSION && k.len >= 16) index_put(a[0], close_time(nd, k), k, true);
    return 0;
}

void rs__window_init(rs_task *t, rs_node *nd, rs_pctx *pc) {
    rs__window_index_free(pc);
    pc->wopen = rs__mem_store_open();
    pc->wnext = INT64_MIN; /* unknown: the first close scans */
    if (nd->win.kind == RS_WINDOW_TIME) {
        pc->wbuckets = g_array_new(FALSE, FALSE, sizeof(rs_wbucket));
        pc->wspare = g_ptr_array_new();
    }
    if (nd->win.kind == RS_WINDOW_COUNT) return;
    rs_kv_store *s = wstore(t, nd);
    void *a[2] = {pc, nd};
    s->vt->range(s->impl, RS_NULL_BYTES, RS_NULL_BYTES, rebuild_one, a); /* W2 after a restart */
}

static void store_key(rs_buf *b, rs_bytes key, int64_t x, int64_t y, bool two) {
    uint8_t n[8];
    b->len = 0;
    rs_buf_append(b, key.data, key.len);
    rs__put64(n, x);
    rs_buf_append(b, n, 8);
    if (two) {
        rs__put64(n, y);
        rs_buf_append(b, n, 8);
    }
}

/* ---- time windows ---- */

static void time_process(rs_task *t, rs_node *nd, rs_pctx *pc, const rs_record *r) {
    int64_t ts = r->timestamp, st = t->stream_time, size = nd->win.size, adv = nd->win.advance;
    int64_t lo = ts - size + 1 < 0 ? 0 : ts - size + 1;
    lo = (lo + adv - 1) / adv * adv;
    /* the first window still open: W1 closes end + grace <= stream time */
    __int128 open_from = (__int128)st - nd->win.grace - size + 1;
    if (open_from > lo) lo += (int64_t)((open_from - lo + adv - 1) / adv * adv);
    if (lo > ts) {
        rs__window_late(t, nd, r);
        return;
    }
    rs_kv_store *s = wstore(t, nd);
    /* the store key key ++ be64(start): the key written once, the start
     * rewritten per window */
    rs_buf *skp = &pc->wb[0];
    skp->len = 0;
    rs_buf_append(skp, r->key.data, r->key.len);
    rs_buf_append(skp, "\0\0\0\0\0\0\0\0", 8);
    rs_bytes sk = rs_buf_bytes(skp);
    uint8_t *sp = skp->data + r->key.len;
    for (int64_t start = lo; start <= ts; start += adv) {
        rs__put64(sp, start);
        if (!rs__kv_aggregate(s, nd, sk, r->key, r->value, ts, &pc->wb[2]))
            bucket_add(pc, start + size + nd->win.grace, sk);
    }
}

/* ---- session windows ---- */

typedef struct {
    rs_bytes key;
    int64_t lo, hi; /* sessions with end >= lo (scan) and start <= hi */
    GPtrArray *hits; /* GBytes: store key, then GBytes value, alternating */
} sess_scan;

static int sess_hit(rs_bytes k, rs_bytes v, void *arg) {
    sess_scan *sc = arg;
    if (k.len != sc->key.len + 16 || (sc->key.len && memcmp(k.data, sc->key.data, sc->key.len))) return 0;
    int64_t start = rs__get64((const uint8_t *)k.data + sc->key.len + 8);
    if (start > sc->hi) return 0;
    g_ptr_array_add(sc->hits, g_bytes_new(k.data, k.len));
    g_ptr_array_add(sc->hits, g_bytes_new(v.data, v.len));
    return 0;
}

static void merge_aggs(const rs_node *nd, rs_bytes key, rs_bytes a, rs_bytes b, rs_buf *out) {
    switch (nd->op) {
    case RS_AGG_COUNT: {
        int64_t x = 0, y = 0;
        rs_bytes_to_int64(a, &x);
        rs_bytes_to_int64(b, &y);
        uint8_t n[8];
        rs_buf_append(out, rs_int64_to_bytes(x + y, n).data, 8);
        break;
    }
    case RS_AGG_REDUCE:
        ((rs_reducer_fn)nd->fn)(a, b, out, nd->ctx);
        break;
    case RS_AGG_AGGREGATE:
        ((rs_merger_fn)nd->fn3)(key, a, b, out, nd->ctx);
        break;
    }
}

static void session_process(rs_task *t, rs_node *nd, rs_pctx *pc, const rs_record *r) {
    int64_t ts = r->timestamp, gap = nd->win.size, grace = nd->win.grace;
    rs_kv_store *s = wstore(t, nd);
    rs_buf from, to, agg, tmp;
    rs_buf_init(&from);
    rs_buf_init(&to);
    rs_buf_init(&agg);
    rs_buf_init(&tmp);
    store_key(&from, r->key, ts - gap < 0 ? 0 : ts - gap, 0, false);
    store_key(&to, r->key, INT64_MAX, INT64_MAX, true);
    sess_scan sc = {r->key, ts - gap, ts + gap, g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref)};
    rs_kv_range(s, rs_buf_bytes(&from), rs_buf_bytes(&to), sess_hit, &sc);
    int64_t start = ts, end = ts;
    for (guint i = 0; i < sc.hits->len; i += 2) {
        gsize kl;
        const uint8_t *k = g_bytes_get_data(g_ptr_array_index(sc.hits, i), &kl);
        int64_t e = rs__get64(k + kl - 16), b = rs__get64(k + kl - 8);
        if (b < start) start = b;
        if (e > end) end = e;
    }
    if (end + grace < t->stream_time) { /* W1: the merged session is already closed */
        rs__window_late(t, nd, r);
        goto out;
    }
    bool have = false;
    for (guint i = 0; i < sc.hits->len; i += 2) {
        gsize kl, vl;
        const uint8_t *k = g_bytes_get_data(g_ptr_array_index(sc.hits, i), &kl);
        const uint8_t *v = g_bytes_get_data(g_ptr_array_index(sc.hits, i + 1), &vl);
        rs_bytes vb = {v ? v : (const uint8_t *)"", vl}, kb = {k, kl};
        bool same = rs__get64(k + kl - 16) == end && rs__get64(k + kl - 8) == start; /* overwritten below */
        if (have) {
            tmp.len = 0;
            merge_aggs(nd, r->key, rs_buf_bytes(&agg), vb, &tmp);
            agg.len = 0;
            rs_buf_append(&agg, tmp.data, tmp.len);
        } else {
            rs_buf_append(&agg, vb.data, vb.len);
            have = true;
        }
        /* the merged-away session leaves store and index; downstream hears a delete */
        if (same) continue;
        rs__kv_put_ts(s, kb, RS_NULL_BYTES, ts);
        index_put(pc, close_time(nd, kb), kb, false);
    }
    tmp.len = 0;
    rs_bytes ab = rs_buf_bytes(&agg);
    rs__agg_step(nd, r->key, r->value, have ? &ab : NULL, &tmp);
    store_key(&from, r->key, end, start, true);
    rs__kv_put_ts(s, rs_buf_bytes(&from), rs_buf_bytes(&tmp), ts);
    index_put(pc, close_time(nd, rs_buf_bytes(&from)), rs_buf_bytes(&from), true);
out:
    g_ptr_array_free(sc.hits, TRUE);
    rs_buf_free(&from);
    rs_buf_free(&to);
    rs_buf_free(&agg);
    rs_buf_free(&tmp);
}

/* ---- count windows ---- */

static void count_process(rs_task *t, rs_node *nd, const rs_record *r) {
    rs_kv_store *s = wstore(t, nd);
    rs_buf old, neu, agg, tmp;
    rs_buf_init(&old);
    rs_buf_init(&neu);
    rs_buf_init(&agg);
    rs_buf_init(&tmp);
    int64_t seen = 0;
    size_t n = 0;
    const uint8_t *p = NULL, *end = NULL;
    if (rs_kv_get(s, r->key, &old) == 1 && old.len >= 8) {
        seen = rs__get64(old.data);
        p = old.data + 8;
        end = old.data + old.len;
        for (const uint8_t *q = p; q + 12 <= end;) { /* count well-formed entries */
            uint32_t l = (uint32_t)q[8] << 24 | (uint32_t)q[9] << 16 | (uint32_t)q[10] << 8 | q[11];
            if ((size_t)(end - q - 12) < l) break;
            q += 12 + l;
            n++;
        }
    }
    uint8_t h[12];
    rs__put64(h, seen + 1);
    rs_buf_append(&neu, h, 8);
    size_t skip = n + 1 > (size_t)nd->win.size ? n + 1 - (size_t)nd->win.size : 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t l = (uint32_t)p[8] << 24 | (uint32_t)p[9] << 16 | (uint32_t)p[10] << 8 | p[11];
        if (i >= skip) rs_buf_append(&neu, p, 12 + l);
        p += 12 + l;
    }
    rs__put64(h, r->timestamp);
    uint32_t vl = (uint32_t)r->value.len;
    h[8] = (uint8_t)(vl >> 24), h[9] = (uint8_t)(vl >> 16), h[10] = (uint8_t)(vl >> 8), h[11] = (uint8_t)vl;
    rs_buf_append(&neu, h, 12);
    rs_buf_append(&neu, r->value.data, r->value.len);
    size_t kept = n + 1 - skip;
    if (kept == (size_t)nd->win.size && (seen + 1 - nd->win.size) % nd->win.advance == 0) {
        const uint8_t *q = neu.data + 8;
        int64_t first = rs__get64(q), last = first;
        bool have = false;
        for (size_t i = 0; i < kept; i++) {
            uint32_t l = (uint32_t)q[8] << 24 | (uint32_t)q[9] << 16 | (uint32_t)q[10] << 8 | q[11];
            last = rs__get64(q);
            tmp.len = 0;
            rs_bytes ab = rs_buf_bytes(&agg);
            rs__agg_step(nd, r->key, (rs_bytes){q + 12, l}, have ? &ab : NULL, &tmp);
            agg.len = 0;
            rs_buf_append(&agg, tmp.data, tmp.len);
            have = true;
            q += 12 + l;
        }
        rs__window_emit(t, nd, r->key, first, last + 1, rs_buf_bytes(&agg), r->timestamp);
    }
    rs__kv_put_ts(s, r->key, rs_buf_bytes(&neu), r->timestamp);
    rs_buf_free(&old);
    rs_buf_free(&neu);
    rs_buf_free(&agg);
    rs_buf_free(&tmp);
}

void rs__window_process(rs_task *t, rs_node *nd, rs_pctx *pc, const rs_record *r) {
    if (!r->key.data || !r->value.data) {
        t->m.dropped++;
        return;
    }
    switch (nd->win.kind) {
    case RS_WINDOW_TIME:
        time_process(t, nd, pc, r);
        break;
    case RS_WINDOW_SESSION:
        session_process(t, nd, pc, r);
        break;
    case RS_WINDOW_COUNT:
        count_process(t, nd, r);
        break;
    case RS_WINDOW_SLIDING:
        rs__sliding_process(t, nd, pc, r);
        break;
    }
}

/* ---- emitting changes (on the store's flush) ---- */

void rs__window_flushed(rs_task *t, const rs_node *nd, const rs_record *sr) {
    if (nd->win.emit_final) return;
    const uint8_t *k = sr->key.data;
    size_t n = sr->key.len;
    if (nd->win.kind == RS_WINDOW_TIME && n >= 8) {
        int64_t start = rs__get64(k + n - 8);
        if (sr->value.data) /* a null here is only ever retention: not emitted */
            rs__window_emit(t, nd, (rs_bytes){k, n - 8}, start, start + nd->win.size, sr->value, sr->timestamp);
    } else if (nd->win.kind == RS_WINDOW_SESSION && n >= 16) {
        /* a null is a session merged away: downstream hears the delete */
        rs__window_emit(t, nd, (rs_bytes){k, n - 16}, rs__get64(k + n - 8), rs__get64(k + n - 16), sr->value,
                        sr->timestamp);
    }
}

/* ---- closing ---- */

typedef struct {
    int64_t now, next;
    GPtrArray *due; /* GBytes index keys */
} close_scan;

static int close_hit(rs_bytes k, rs_bytes v, void *arg) {
    close_scan *cs = arg;
    int64_t close = rs__get64(k.data);
    if (close > cs->now) {
        cs->next = close;
        return 1;
    }
    if (!cs->due) cs->due = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
    g_ptr_array_add(cs->due, g_bytes_new(k.data, k.len));
    return 0;
}

/* NULL when nothing is due (the common case: no allocation) */
GPtrArray *rs__window_due(rs_pctx *pc, int64_t now) {
    if (now < pc->wnext) return NULL; /* nothing closes yet: no scan */
    close_scan cs = {now, INT64_MAX, NULL};
    rs__mem_store_vt.range(pc->wopen, RS_NULL_BYTES, RS_NULL_BYTES, close_hit, &cs);
    /* the due entries leave the index (callers); entries added meanwhile
     * lower wnext again (index_put) */
    pc->wnext = cs.next;
    return cs.due;
}

/* store keys of a bucket, (u32 length, bytes) packed */
typedef struct {
    const uint8_t *p;
    size_t n;
} kref;

static int kref_cmp(const void *a, const void *b) {
    const kref *x = a, *y = b;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = n ? memcmp(x->p, y->p, n) : 0;
    if (c) return c;
    return x->n < y->n ? -1 : x->n > y->n;
}

/* W1 for one closing window: emit-final emits it, then it leaves the store */
static void close_one(rs_task *t, rs_node *nd, rs_kv_store *s, rs_bytes skey, rs_buf *v) {
    size_t klen = skey.len - (nd->win.kind == RS_WINDOW_TIME ? 8 : 16);
    const uint8_t *sp = (const uint8_t *)skey.data;
    int64_t start, end;
    if (nd->win.kind == RS_WINDOW_TIME) start = rs__get64(sp + klen), end = start + nd->win.size;
    else end = rs__get64(sp + klen), start = rs__get64(sp + klen + 8);
    v->len = 0;
    if (nd->win.emit_final && rs_kv_get(s, skey, v) == 1)
        rs__window_emit(t, nd, (rs_bytes){sp, klen}, start, end, rs_buf_bytes(v),
                        nd->win.kind == RS_WINDOW_TIME ? end - 1 : end);
    rs__kv_delete_quiet(s, skey, t->stream_time); /* W1: retention ends at close */
}

static void time_close(rs_task *t, rs_node *nd, rs_pctx *pc) {
    GArray *a = pc->wbuckets;
    if (!a->len || g_array_index(a, rs_wbucket, 0).close > t->stream_time) return;
    rs_kv_store *s = wstore(t, nd);
    rs__kv_store_flush(s); /* pending updates go out before windows leave */
    rs_buf *v = &pc->wb[1];
    GArray *refs = g_array_new(FALSE, FALSE, sizeof(kref));
    /* a bucket is detached before its windows close: the store flush and
     * forwarding may add windows (later closes) to the index */
    while (a->len && g_array_index(a, rs_wbucket, 0).close <= t->stream_time) {
        rs_buf *b = g_array_index(a, rs_wbucket, 0).keys;
        g_array_remove_index(a, 0);
        g_array_set_size(refs, 0);
        for (size_t o = 0; o + 4 <= b->len;) {
            uint32_t l;
            memcpy(&l, b->data + o, 4);
            kref r = {b->data + o + 4, l};
            g_array_append_val(refs, r);
            o += 4 + (size_t)l;
        }
        g_array_sort(refs, kref_cmp);
        for (guint i = 0; i < refs->len; i++) {
            kref *r = &g_array_index(refs, kref, i);
            if (i && !kref_cmp(r, r - 1)) continue; /* W2: once */
            close_one(t, nd, s, (rs_bytes){r->p, r->n}, v);
        }
        b->len = 0;
        g_ptr_array_add(pc->wspare, b);
    }
    g_array_free(refs, TRUE);
}

void rs__window_close(rs_task *t, rs_node *nd, rs_pctx *pc) {
    if (nd->win.kind == RS_WINDOW_COUNT || t->stream_time == INT64_MIN) return;
    if (nd->win.kind == RS_WINDOW_SLIDING) {
        rs__sliding_close(t, nd, pc);
        return;
    }
    if (nd->win.kind == RS_WINDOW_TIME) {
        time_close(t, nd, pc);
        return;
    }
    GPtrArray *due = rs__window_due(pc, t->stream_time);
    if (!due) return;
    rs_kv_store *s = wstore(t, nd);
    rs__kv_store_flush(s); /* pending updates go out before windows leave */
    rs_buf v;
    rs_buf_init(&v);
    for (guint i = 0; i < due->len; i++) {
        gsize il;
        const uint8_t *ik = g_bytes_get_data(g_ptr_array_index(due, i), &il);
        close_one(t, nd, s, (rs_bytes){ik + 8, il - 8}, &v);
        rs__mem_store_vt.put(pc->wopen, (rs_bytes){ik, il}, RS_NULL_BYTES);
    }
    rs_buf_free(&v);
    g_ptr_array_free(due, TRUE);
}
