/*
 * read.c — reads (fetch), ListOffsets by timestamp and MAX_TIMESTAMP.
 *
 * A read takes l_mutex only to find the segment (binary search by base
 * offset), take a reference, copy the active segment's small in-memory index
 * tail and note the readable limit (the high watermark's position in its
 * segment, S2). Everything else — index binary search with pread, a short
 * scan of batch headers to the batch holding the offset, and the search for
 * the last whole batch that fits max_bytes (an index lookup by position, then
 * a short scan) — runs without the lock on bytes below that limit, which
 * never change. The result is a dup'd fd and a file range for sendfile.
 * A few (next offset -> position) entries per log skip the index for
 * consumers reading sequentially.
 */
#include "storage/storage_int.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define ST_READ_BUF (16 * 1024)
#define ST_READ_CHUNK 4096 /* a fetch touches ~2 header neighbourhoods */

typedef struct {
    st_seg_t *seg;      /* referenced */
    uint32_t on, otn;
    uint32_t tn, ttn;
    st_oent_t otail[ST_TAIL_MAX];
    st_tent_t ttail[ST_TAIL_MAX];
    int64_t limit;      /* readable bytes: below the high watermark */
    int64_t next_off;   /* offset right after `limit` */
} st_snap_t;

/* Index of the segment holding offset (largest base <= offset). l_mutex held. */
static int seg_find(const st_log_t *l, int64_t offset) {
    int lo = 0, hi = l->l_nsegs - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        if (l->l_segs[mid]->seg_base <= offset) lo = mid; else hi = mid - 1;
    }
    return lo;
}

/* l_mutex held. */
static void snap_take(const st_log_t *l, int i, st_snap_t *sn) {
    st_seg_t *s = l->l_segs[i];
    st__seg_ref(s);
    sn->seg = s;
    sn->on = s->seg_on;
    sn->tn = s->seg_tn;
    sn->otn = s->seg_otail ? s->seg_otail_n : 0;
    sn->ttn = s->seg_ttail ? s->seg_ttail_n : 0;
    if (sn->otn) memcpy(sn->otail, s->seg_otail, sn->otn * sizeof(st_oent_t));
    if (sn->ttn) memcpy(sn->ttail, s->seg_ttail, sn->ttn * sizeof(st_tent_t));
    /* a sealed segment wholly below the high watermark is readable to its
     * end even when the watermark's (segment, position) still names it: a
     * compaction swap may have replaced it with a shorter file (S11) */
    bool whole = s->seg_sealed && l->l_hw >= s->seg_next_off;
    if (s->seg_base == l->l_hw_seg_base && !whole) {
        sn->limit = l->l_hw_pos;
        sn->next_off = l->l_hw;
    } else if (s->seg_base < l->l_hw_seg_base || whole) {
        sn->limit = s->seg_size;
        sn->next_off = s->seg_next_off;
    } else {
        sn->limit = 0;
        sn->next_off = s->seg_base;
    }
}

/* Finds the batch holding `off` (the first whose last offset >= off) below
 * the limit. Returns 0 (setting pos and h), RB_ERR_NOT_FOUND, or RB_KAFKA_STORAGE_ERROR. */
static int snap_find(st_snap_t *sn, st_frd_t *r, int64_t off, int64_t *pos, kp_batch_hdr_t *h) {
    st_seg_t *s = sn->seg;
    int64_t rel64 = off - s->seg_base;
    uint32_t rel = rel64 < 0 ? 0 : rel64 > UINT32_MAX ? UINT32_MAX : (uint32_t)rel64;
    int64_t frel;
    int64_t p = st__idx_lookup(s, sn->on, sn->otail, sn->otn, false, rel, &frel);
    for (int attempt = 0; attempt < 2; attempt++) {
        bool first = true, bad = false;
        while (p < sn->limit) {
            int err;
            const uint8_t *b = st__frd_get(r, p, KP_BATCH_HEADER_SIZE, &err);
            if (!b || st__hdr_decode(b, h) != 0 || p + st__hdr_size(h) > sn->limit ||
                (first && frel >= 0 && h->base_offset != s->seg_base + frel)) {
                bad = true;
                break;
            }
            first = false;
            if (st__hdr_last(h) >= off) {
                *pos = p;
                return 0;
            }
            p += st__hdr_size(h);
        }
        if (!bad) return RB_ERR_NOT_FOUND;
        if (p == 0 && frel < 0) break; /* the data itself is bad */
        rb_warn("storage: segment %lld: index entry or data inconsistent near position %lld; scanning from the start",
                (long long)s->seg_base, (long long)p);
        p = 0;
        frel = -1;
    }
    return RB_KAFKA_STORAGE_ERROR;
}

static void rcache_put(st_log_t *l, int64_t off, int64_t seg_base, int64_t pos) {
    for (int i = 0; i < ST_RCACHE; i++) {
        if (l->l_rcache[i].rc_off == off && l->l_rcache[i].rc_seg_base == seg_base) {
            l->l_rcache[i].rc_pos = pos;
            return;
        }
    }
    st_rcache_t *c = &l->l_rcache[l->l_rcache_next];
    l->l_rcache_next = (l->l_rcache_next + 1) % ST_RCACHE;
    c->rc_off = off;
    c->rc_seg_base = seg_base;
    c->rc_pos = pos;
}

/* Thread note: any thread, concurrently with appends and the flusher; holds
 * l_mutex only to snapshot, never during I/O. */
int st_log_read(st_log_t *l, int64_t offset, size_t max_bytes, bool min_one, st_read_t *out) {
    out->fd = -1;
    out->file_off = 0;
    out->len = 0;
    st_snap_t sn;
    int64_t cached = -1;
    pthread_mutex_lock(&l->l_mutex);
    out->high_watermark = l->l_hw;
    out->log_start_offset = l->l_start;
    if (l->l_fatal) {
        pthread_mutex_unlock(&l->l_mutex);
        return RB_KAFKA_STORAGE_ERROR;
    }
    if (offset < l->l_start || offset > l->l_leo) {
        pthread_mutex_unlock(&l->l_mutex);
        return RB_OFFSET_OUT_OF_RANGE;
    }
    if (offset >= l->l_hw) { /* written but not yet durable: nothing yet (D5) */
        pthread_mutex_unlock(&l->l_mutex);
        return 0;
    }
    int si = seg_find(l, offset);
    snap_take(l, si, &sn);
    for (int i = 0; i < ST_RCACHE; i++)
        if (l->l_rcache[i].rc_off == offset && l->l_rcache[i].rc_seg_base == sn.seg->seg_base)
            cached = l->l_rcache[i].rc_pos;
    pthread_mutex_unlock(&l->l_mutex);

    st_seg_t *s = sn.seg;
    st_frd_t r;
    st__frd_init(&r, s->seg_fd, sn.limit, ST_READ_BUF);
    r.chunk = ST_READ_CHUNK;
    int rc = 0;
    int64_t start = -1;
    kp_batch_hdr_t h;
    if (cached >= 0) {
        int err;
        const uint8_t *b = st__frd_get(&r, cached, KP_BATCH_HEADER_SIZE, &err);
        if (b && st__hdr_decode(b, &h) == 0 && h.base_offset == offset) start = cached;
    }
    while (start < 0) {
        rc = snap_find(&sn, &r, offset, &start, &h);
        if (rc != RB_ERR_NOT_FOUND) break;
        /* a gap at the end of a segment (compaction, S10), or a segment
         * emptied by it: continue in the next segment, if readable */
        rc = 0;
        pthread_mutex_lock(&l->l_mutex);
        int ni = seg_find(l, s->seg_base) + 1;
        bool more = ni < l->l_nsegs && l->l_segs[ni]->seg_base > s->seg_base && l->l_segs[ni]->seg_base < l->l_hw;
        if (more) {
            st__frd_free(&r);
            st__seg_unref(s);
            offset = l->l_segs[ni]->seg_base;
            snap_take(l, ni, &sn);
            s = sn.seg;
            st__frd_init(&r, s->seg_fd, sn.limit, ST_READ_BUF);
            r.chunk = ST_READ_CHUNK;
        }
        pthread_mutex_unlock(&l->l_mutex);
        if (!more) goto out;
    }
    if (rc) goto out;
    int64_t first_size = st__hdr_size(&h);
    int64_t want = max_bytes > (size_t)(sn.limit - start) ? sn.limit : start + (int64_t)max_bytes;
    int64_t end, next_off = -1;
    if (want >= sn.limit) {
        end = sn.limit;
        next_off = sn.next_off;
    } else {
        /* the last batch boundary <= want: index by position, then scan */
        int64_t frel;
        int64_t p = st__idx_lookup(s, sn.on, sn.otail, sn.otn, true, (uint32_t)want, &frel);
        if (p < start) p = start, frel = -1;
        for (int attempt = 0;; attempt++) {
            bool bad = false, first = true;
            end = p;
            while (p < sn.limit) {
                int err;
                const uint8_t *b = st__frd_get(&r, p, KP_BATCH_HEADER_SIZE, &err);
                kp_batch_hdr_t hh;
                if (!b || st__hdr_decode(b, &hh) != 0 ||
                    (first && frel >= 0 && hh.base_offset != s->seg_base + frel)) {
                    bad = true;
                    break;
                }
                first = false;
                if (p + st__hdr_size(&hh) > want) {
                    next_off = hh.base_offset;
                    break;
                }
                p += st__hdr_size(&hh);
                end = p;
            }
            if (!bad || attempt == 1) break;
            p = start; /* distrust the index */
            frel = -1;
        }
        if (end == sn.limit) next_off = sn.next_off;
    }
    if (end <= start) {
        if (!min_one) goto out;
        end = start + first_size;
        next_off = -1;
    }
    int fd = dup(s->seg_fd);
    if (fd < 0) {
        rc = RB_KAFKA_STORAGE_ERROR;
        goto out;
    }
    out->fd = fd;
    out->file_off = start;
    out->len = (size_t)(end - start);
    if (next_off >= 0 && end < sn.limit) {
        pthread_mutex_lock(&l->l_mutex);
        rcache_put(l, next_off, s->seg_base, end);
        pthread_mutex_unlock(&l->l_mutex);
    }
out:
    st__frd_free(&r);
    st__seg_unref(s);
    return rc;
}

/* ---- timestamps ------------------------------------------------------------------------ */

/* Reads a whole batch and finds the first record with timestamp >= target
 * (mode 0) or == target (mode 1). Falls back to the batch's base offset and
 * max timestamp when the records cannot be read (too big, codec error). */
static void batch_refine(int fd, int64_t pos, const kp_batch_hdr_t *h, int64_t target, int mode, int64_t *off,
                         int64_t *ts) {
    *off = h->base_offset;
    *ts = h->max_timestamp;
    if (h->attributes & KP_ATTR_TIMESTAMP_TYPE) return; /* LogAppendTime: every record has max_timestamp */
    int64_t size = st__hdr_size(h);
    if (size > 64LL * 1024 * 1024 || h->records_count <= 0) return;
    uint8_t *buf = malloc((size_t)size);
    rb_buf_t dec;
    rb_buf_init(&dec);
    if (!buf) return;
    if (pread(fd, buf, (size_t)size, pos) != (ssize_t)size) goto out;
    const uint8_t *recs = buf + KP_BATCH_HEADER_SIZE;
    size_t rlen = (size_t)size - KP_BATCH_HEADER_SIZE;
    int codec = h->attributes & KP_ATTR_COMPRESSION_MASK;
    if (codec != KP_COMP_NONE) {
        if (kp_decompress((kp_compression_t)codec, recs, rlen, 256u * 1024 * 1024, &dec) != 0) goto out;
        recs = dec.p;
        rlen = dec.len;
    }
    rb_rd_t rd;
    rb_rd_init(&rd, recs, rlen);
    for (int32_t i = 0; i < h->records_count; i++) {
        kp_record_t rec;
        if (kp_record_next(&rd, &rec) != 0) break;
        int64_t t = h->base_timestamp + rec.timestamp_delta;
        if (mode == 0 ? t >= target : t == target) {
            *off = h->base_offset + rec.offset_delta;
            *ts = t;
            break;
        }
    }
out:
    rb_buf_free(&dec);
    free(buf);
}

/* Thread note: any thread, like st_log_read. */
int st_log_offset_for_time(st_log_t *l, int64_t ts, int64_t *offset, int64_t *timestamp) {
    st_snap_t sn;
    pthread_mutex_lock(&l->l_mutex);
    int si = -1;
    int64_t start = l->l_start;
    for (int i = 0; i < l->l_nsegs; i++) {
        st_seg_t *s = l->l_segs[i];
        if (s->seg_base >= l->l_hw) break;
        if (s->seg_max_ts != ST_NO_TS && s->seg_max_ts >= ts) {
            si = i;
            break;
        }
    }
    if (si < 0) {
        pthread_mutex_unlock(&l->l_mutex);
        return RB_ERR_NOT_FOUND;
    }
    snap_take(l, si, &sn);
    pthread_mutex_unlock(&l->l_mutex);

    st_seg_t *s = sn.seg;
    st_frd_t r;
    st__frd_init(&r, s->seg_fd, sn.limit, 64 * 1024);
    int rc = RB_ERR_NOT_FOUND;
    /* start from the batch that last raised the max timestamp to <= ts */
    int64_t rel = st__tidx_lookup(s, sn.tn, sn.ttail, sn.ttn, ts);
    int64_t p = 0;
    kp_batch_hdr_t h;
    if (rel >= 0 && snap_find(&sn, &r, s->seg_base + rel, &p, &h) != 0) p = 0;
    while (p < sn.limit) {
        int err;
        const uint8_t *b = st__frd_get(&r, p, KP_BATCH_HEADER_SIZE, &err);
        if (!b || st__hdr_decode(b, &h) != 0) {
            rc = RB_KAFKA_STORAGE_ERROR;
            break;
        }
        if (h.max_timestamp >= ts && st__hdr_last(&h) >= start) {
            batch_refine(s->seg_fd, p, &h, ts, 0, offset, timestamp);
            rc = 0;
            break;
        }
        p += st__hdr_size(&h);
    }
    st__frd_free(&r);
    st__seg_unref(s);
    if (rc == 0 && *offset < start) *offset = start; /* the batch straddles the log start (S7) */
    return rc;
}

int st_log_max_timestamp(st_log_t *l, int64_t *offset, int64_t *timestamp) {
    st_snap_t sn;
    pthread_mutex_lock(&l->l_mutex);
    int64_t mts = l->l_dmax_ts, moff = l->l_dmax_ts_off;
    if (mts == ST_NO_TS || moff < 0 || moff >= l->l_hw || moff < l->l_start) {
        pthread_mutex_unlock(&l->l_mutex);
        return RB_ERR_NOT_FOUND;
    }
    snap_take(l, seg_find(l, moff), &sn);
    pthread_mutex_unlock(&l->l_mutex);
    st_frd_t r;
    st__frd_init(&r, sn.seg->seg_fd, sn.limit, ST_READ_BUF);
    int64_t p;
    kp_batch_hdr_t h;
    *offset = moff;
    *timestamp = mts;
    if (snap_find(&sn, &r, moff, &p, &h) == 0 && h.max_timestamp == mts)
        batch_refine(sn.seg->seg_fd, p, &h, mts, 1, offset, timestamp);
    st__frd_free(&r);
    st__seg_unref(sn.seg);
    return 0;
}

/* Thread note: any thread; reads through st_log_read (whole batches below the
 * high watermark), so appends continue meanwhile. */
int st_log_scan_records(st_log_t *l, st_record_fn fn, void *ctx, int64_t *nrecords) {
    st_log_state_t st;
    st_log_state(l, &st);
    int64_t off = st.log_start_offset, n = 0;
    uint8_t *buf = NULL;
    size_t cap = 0;
    int rc = 0;
    while (off < st.high_watermark) {
        st_read_t rd;
        rc = st_log_read(l, off, 4u << 20, true, &rd);
        if (rc) break;
        if (rd.len == 0) {
            if (rd.fd >= 0) close(rd.fd);
            break;
        }
        if (rd.len > cap) {
            free(buf);
            cap = rd.len;
            buf = malloc(cap);
            if (!buf) abort();
        }
        size_t got = 0;
        while (got < rd.len) {
            ssize_t k = pread(rd.fd, buf + got, rd.len - got, rd.file_off + (off_t)got);
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) break;
            got += (size_t)k;
        }
        close(rd.fd);
        if (got < rd.len) {
            rc = RB_KAFKA_STORAGE_ERROR;
            break;
        }
        size_t pos = 0;
        int64_t next = off;
        while (pos < got) {
            kp_batch_hdr_t h;
            if (kp_batch_hdr_parse(buf + pos, got - pos, &h)) break;
            size_t blen = KP_BATCH_LOG_OVERHEAD + (size_t)h.batch_length;
            next = h.base_offset + h.last_offset_delta + 1;
            if ((h.attributes & KP_ATTR_COMPRESSION_MASK) || (h.attributes & KP_ATTR_CONTROL)) {
                if (h.attributes & KP_ATTR_COMPRESSION_MASK)
                    rb_warn("storage: %s: compressed batch at %lld skipped by the scan", l->l_dir,
                            (long long)h.base_offset);
                pos += blen;
                continue;
            }
            rb_rd_t rr;
            rb_rd_init(&rr, buf + pos + KP_BATCH_HEADER_SIZE, blen - KP_BATCH_HEADER_SIZE);
            for (int32_t i = 0; i < h.records_count; i++) {
                kp_record_t rec;
                if (kp_record_next(&rr, &rec)) break;
                fn(ctx, h.base_offset + rec.offset_delta, &rec);
                n++;
            }
            pos += blen;
        }
        if (next <= off) break; /* no progress: stop rather than loop */
        off = next;
    }
    free(buf);
    if (nrecords) *nrecords = n;
    return rc;
}
