/*
 * index.c — the sparse offset index (.index) and time index (.timeindex).
 *
 * Format (Kafka's): .index entries are 8 bytes, u32 offset relative to the
 * segment base and u32 position in the .log, big-endian; .timeindex entries
 * are 12 bytes, i64 max timestamp of the segment so far and u32 relative
 * offset of the first batch that reached it. An offset entry is added for a
 * batch once index_interval_bytes have been appended since the previous entry;
 * a time entry goes with it when the segment's max timestamp grew; sealing a
 * segment adds a final time entry so the last entry is the segment's max.
 * Our offset entries name a batch's base offset and position, which any
 * lookup "largest entry <= target, then scan forward" handles.
 *
 * Memory: nothing is cached per sealed segment; lookups binary-search the
 * files with pread. The active segment keeps at most ST_TAIL_MAX entries of
 * each kind in memory and writes them out when the tail fills, on seal and on
 * close, so RSS does not grow with the data. A sparse index that misses
 * entries is still correct (lookups only scan further), so a failed index
 * write drops entries with a warning instead of failing the append; an index
 * is never needed for durability (recovery rebuilds what it scans, S6).
 *
 * Threads: called under the owning log's l_mutex, except the lookups, which
 * take a snapshot (entry count + tail copy) made under it and then only read
 * file entries that were complete before the snapshot.
 */
#include "storage/storage_int.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_IDX_BAD 1 /* st__idx_check: rebuild */

static int idx_pwrite(int fd, int64_t at, const uint8_t *p, size_t n) {
    while (n) {
        ssize_t w = pwrite(fd, p, n, at);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
        at += w;
    }
    return 0;
}

static int idx_pread(int fd, int64_t at, uint8_t *p, size_t n) {
    while (n) {
        ssize_t r = pread(fd, p, n, at);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (r == 0) return -EIO;
        p += r;
        n -= (size_t)r;
        at += r;
    }
    return 0;
}

void st__idx_tail_alloc(st_seg_t *s) {
    if (!s->seg_otail) s->seg_otail = malloc(ST_TAIL_MAX * sizeof(st_oent_t));
    if (!s->seg_ttail) s->seg_ttail = malloc(ST_TAIL_MAX * sizeof(st_tent_t));
    if (!s->seg_otail || !s->seg_ttail) abort();
}

void st__idx_flush_tail(st_seg_t *s) {
    uint8_t buf[ST_TAIL_MAX * ST_TIDX_ENTRY];
    if (s->seg_otail_n) {
        for (uint32_t i = 0; i < s->seg_otail_n; i++) {
            rb_wbe32(buf + i * ST_OIDX_ENTRY, s->seg_otail[i].rel);
            rb_wbe32(buf + i * ST_OIDX_ENTRY + 4, s->seg_otail[i].pos);
        }
        int rc = idx_pwrite(s->seg_ofd, (int64_t)s->seg_on * ST_OIDX_ENTRY, buf, s->seg_otail_n * ST_OIDX_ENTRY);
        if (rc == 0) {
            s->seg_on += s->seg_otail_n;
        } else {
            rb_warn("storage: segment %lld: .index write failed (%s); %u entries dropped", (long long)s->seg_base,
                    strerror(-rc), s->seg_otail_n);
            if (ftruncate(s->seg_ofd, (off_t)s->seg_on * ST_OIDX_ENTRY) < 0) { /* sanity check rebuilds it */ }
        }
        s->seg_otail_n = 0;
    }
    if (s->seg_ttail_n) {
        for (uint32_t i = 0; i < s->seg_ttail_n; i++) {
            rb_wbe64(buf + i * ST_TIDX_ENTRY, (uint64_t)s->seg_ttail[i].ts);
            rb_wbe32(buf + i * ST_TIDX_ENTRY + 8, s->seg_ttail[i].rel);
        }
        int rc = idx_pwrite(s->seg_tfd, (int64_t)s->seg_tn * ST_TIDX_ENTRY, buf, s->seg_ttail_n * ST_TIDX_ENTRY);
        if (rc == 0) {
            s->seg_tn += s->seg_ttail_n;
        } else {
            rb_warn("storage: segment %lld: .timeindex write failed (%s); %u entries dropped",
                    (long long)s->seg_base, strerror(-rc), s->seg_ttail_n);
            if (ftruncate(s->seg_tfd, (off_t)s->seg_tn * ST_TIDX_ENTRY) < 0) { /* sanity check rebuilds it */ }
        }
        s->seg_ttail_n = 0;
    }
}

static void tidx_push(st_seg_t *s, int64_t ts, uint32_t rel) {
    if (s->seg_ttail_n == ST_TAIL_MAX) st__idx_flush_tail(s);
    s->seg_ttail[s->seg_ttail_n].ts = ts;
    s->seg_ttail[s->seg_ttail_n].rel = rel;
    s->seg_ttail_n++;
    s->seg_tlast_ts = ts;
    s->seg_tlast_rel = rel;
}

void st__idx_on_batch(st_seg_t *s, int64_t pos, const kp_batch_hdr_t *h, int32_t interval) {
    if (h->max_timestamp > s->seg_max_ts) {
        s->seg_max_ts = h->max_timestamp;
        s->seg_max_ts_off = h->base_offset;
    }
    if (s->seg_since_idx >= interval && s->seg_otail) {
        if (s->seg_otail_n == ST_TAIL_MAX) st__idx_flush_tail(s);
        uint32_t rel = (uint32_t)(h->base_offset - s->seg_base);
        s->seg_otail[s->seg_otail_n].rel = rel;
        s->seg_otail[s->seg_otail_n].pos = (uint32_t)pos;
        s->seg_otail_n++;
        if (s->seg_max_ts > s->seg_tlast_ts) tidx_push(s, s->seg_max_ts, (uint32_t)(s->seg_max_ts_off - s->seg_base));
        s->seg_since_idx = 0;
    }
    s->seg_since_idx += st__hdr_size(h);
}

void st__idx_seal(st_seg_t *s) {
    if (s->seg_otail) {
        if (s->seg_max_ts > s->seg_tlast_ts) tidx_push(s, s->seg_max_ts, (uint32_t)(s->seg_max_ts_off - s->seg_base));
        st__idx_flush_tail(s);
    }
    free(s->seg_otail);
    free(s->seg_ttail);
    s->seg_otail = NULL;
    s->seg_ttail = NULL;
    s->seg_sealed = true;
}

int st__idx_reset(st_seg_t *s) {
    s->seg_on = s->seg_tn = 0;
    s->seg_otail_n = s->seg_ttail_n = 0;
    s->seg_tlast_ts = ST_NO_TS;
    s->seg_tlast_rel = 0;
    s->seg_max_ts = ST_NO_TS;
    s->seg_max_ts_off = -1;
    s->seg_since_idx = 0;
    if (ftruncate(s->seg_ofd, 0) < 0) return -errno;
    if (ftruncate(s->seg_tfd, 0) < 0) return -errno;
    return 0;
}

static void oent_dec(const uint8_t *p, st_oent_t *e) {
    e->rel = rb_be32(p);
    e->pos = rb_be32(p + 4);
}

static void tent_dec(const uint8_t *p, st_tent_t *e) {
    e->ts = (int64_t)rb_be64(p);
    e->rel = rb_be32(p + 8);
}

int st__oidx_last(const st_seg_t *s, st_oent_t *e) {
    uint8_t b[ST_OIDX_ENTRY];
    if (s->seg_on == 0) return RB_ERR_NOT_FOUND;
    int rc = idx_pread(s->seg_ofd, (int64_t)(s->seg_on - 1) * ST_OIDX_ENTRY, b, sizeof(b));
    if (rc < 0) return rc;
    oent_dec(b, e);
    return 0;
}

int st__tidx_last(const st_seg_t *s, st_tent_t *e) {
    uint8_t b[ST_TIDX_ENTRY];
    if (s->seg_tn == 0) return RB_ERR_NOT_FOUND;
    int rc = idx_pread(s->seg_tfd, (int64_t)(s->seg_tn - 1) * ST_TIDX_ENTRY, b, sizeof(b));
    if (rc < 0) return rc;
    tent_dec(b, e);
    return 0;
}

/* Checks entries [from, to) of one index file by streaming them. */
static int idx_check_range(const st_seg_t *s, bool time, uint32_t from, uint32_t to, int64_t max_rel,
                           bool *have_prev, st_tent_t *prev_t, st_oent_t *prev_o) {
    size_t esz = time ? ST_TIDX_ENTRY : ST_OIDX_ENTRY;
    uint8_t buf[4096 * ST_TIDX_ENTRY];
    size_t per = sizeof(buf) / esz;
    for (uint32_t i = from; i < to;) {
        size_t k = RB_MIN(per, (size_t)(to - i));
        int rc = idx_pread(time ? s->seg_tfd : s->seg_ofd, (int64_t)i * (int64_t)esz, buf, k * esz);
        if (rc < 0) return rc;
        for (size_t j = 0; j < k; j++) {
            if (time) {
                st_tent_t e;
                tent_dec(buf + j * esz, &e);
                if (e.ts < 0 || (int64_t)e.rel > max_rel) return ST_IDX_BAD;
                if (*have_prev && (e.ts <= prev_t->ts || e.rel < prev_t->rel)) return ST_IDX_BAD;
                *prev_t = e;
            } else {
                st_oent_t e;
                oent_dec(buf + j * esz, &e);
                if ((int64_t)e.pos >= s->seg_size || (int64_t)e.rel > max_rel) return ST_IDX_BAD;
                if (*have_prev && (e.rel <= prev_o->rel || e.pos <= prev_o->pos)) return ST_IDX_BAD;
                *prev_o = e;
            }
            *have_prev = true;
        }
        i += (uint32_t)k;
    }
    return 0;
}

int st__idx_check(st_seg_t *s, bool full, int64_t next_base) {
    if (s->seg_on == UINT32_MAX) return ST_IDX_BAD; /* a file was missing */
    struct stat so, stt;
    if (fstat(s->seg_ofd, &so) < 0 || fstat(s->seg_tfd, &stt) < 0) return -errno;
    if (so.st_size % ST_OIDX_ENTRY || stt.st_size % ST_TIDX_ENTRY) return ST_IDX_BAD;
    if (so.st_size / ST_OIDX_ENTRY > UINT32_MAX - 1 || stt.st_size / ST_TIDX_ENTRY > UINT32_MAX - 1)
        return ST_IDX_BAD;
    s->seg_on = (uint32_t)(so.st_size / ST_OIDX_ENTRY);
    s->seg_tn = (uint32_t)(stt.st_size / ST_TIDX_ENTRY);
    /* every entry must name an offset below the next segment's base */
    int64_t max_rel = next_base == INT64_MAX ? INT32_MAX : RB_MIN((int64_t)INT32_MAX, next_base - 1 - s->seg_base);
    if (max_rel < 0) return ST_IDX_BAD;
    if ((s->seg_on || s->seg_tn) && s->seg_size == 0) return ST_IDX_BAD;
    bool hp = false;
    st_tent_t pt;
    st_oent_t po;
    int rc;
    if (full || s->seg_on <= 2) {
        rc = idx_check_range(s, false, 0, s->seg_on, max_rel, &hp, &pt, &po);
    } else {
        rc = idx_check_range(s, false, 0, 1, max_rel, &hp, &pt, &po);
        if (rc == 0) rc = idx_check_range(s, false, s->seg_on - 1, s->seg_on, max_rel, &hp, &pt, &po);
    }
    if (rc) return rc;
    hp = false;
    if (full || s->seg_tn <= 2) {
        rc = idx_check_range(s, true, 0, s->seg_tn, max_rel, &hp, &pt, &po);
    } else {
        rc = idx_check_range(s, true, 0, 1, max_rel, &hp, &pt, &po);
        if (rc == 0) rc = idx_check_range(s, true, s->seg_tn - 1, s->seg_tn, max_rel, &hp, &pt, &po);
    }
    if (rc) return rc;
    s->seg_tlast_ts = ST_NO_TS;
    s->seg_tlast_rel = 0;
    if (s->seg_tn) {
        st_tent_t e;
        rc = st__tidx_last(s, &e);
        if (rc) return rc;
        s->seg_tlast_ts = e.ts;
        s->seg_tlast_rel = e.rel;
    }
    return 0;
}

/* ---- lookups -------------------------------------------------------------------- */

int64_t st__idx_lookup(const st_seg_t *s, uint32_t n, const st_oent_t *tail, uint32_t ntail, bool by_pos,
                       uint32_t key, int64_t *found_rel) {
    *found_rel = -1;
    if (ntail && (by_pos ? tail[0].pos : tail[0].rel) <= key) {
        uint32_t lo = 0, hi = ntail; /* answer in [lo, hi) */
        while (hi - lo > 1) {
            uint32_t mid = lo + (hi - lo) / 2;
            if ((by_pos ? tail[mid].pos : tail[mid].rel) <= key) lo = mid; else hi = mid;
        }
        *found_rel = tail[lo].rel;
        return tail[lo].pos;
    }
    if (n == 0) return 0;
    /* invariant: entry lo-1 <= key (or lo == 0), entry hi > key (or hi == n) */
    uint32_t lo = 0, hi = n;
    st_oent_t best = {0, 0};
    bool have = false;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        uint8_t b[ST_OIDX_ENTRY];
        if (idx_pread(s->seg_ofd, (int64_t)mid * ST_OIDX_ENTRY, b, sizeof(b)) < 0) return 0; /* scan from 0 */
        st_oent_t e;
        oent_dec(b, &e);
        if ((by_pos ? e.pos : e.rel) <= key) {
            best = e;
            have = true;
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (!have) return 0;
    *found_rel = best.rel;
    return best.pos;
}

int64_t st__tidx_lookup(const st_seg_t *s, uint32_t n, const st_tent_t *tail, uint32_t ntail, int64_t target) {
    if (ntail && tail[0].ts <= target) {
        uint32_t lo = 0, hi = ntail;
        while (hi - lo > 1) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (tail[mid].ts <= target) lo = mid; else hi = mid;
        }
        return tail[lo].rel;
    }
    uint32_t lo = 0, hi = n;
    int64_t best = -1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        uint8_t b[ST_TIDX_ENTRY];
        if (idx_pread(s->seg_tfd, (int64_t)mid * ST_TIDX_ENTRY, b, sizeof(b)) < 0) return -1;
        st_tent_t e;
        tent_dec(b, &e);
        if (e.ts <= target) {
            best = e.rel;
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return best;
}
