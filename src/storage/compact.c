/*
 * compact.c — log compaction (cleanup.policy=compact) on the manager's
 * cleaner thread, and the crash-safe swap of cleaned segments (S9-S12;
 * with transactions S19-S21).
 *
 * A pass over one log:
 *   1. under l_mutex: pick the sealed segments wholly below the last
 *      stable offset (at most the high watermark; never the active one, never
 *      an open transaction's records, S20), minus those younger than
 *      min.compaction.lag.ms; decide from the dirty ratio (bytes at or after
 *      the cleaner checkpoint over all of them) or max.compaction.lag.ms
 *      whether to clean; take references and a copy of the aborted
 *      transactions that can touch them (S18). Nothing else runs under the lock.
 *   2. write the recovery checkpoint (so the recovery point covers every
 *      segment this pass may rewrite, which recovery relies on, S10);
 *   3. map: read the dirty records from the checkpoint on (plain ones and
 *      those of committed transactions; never markers or aborted records),
 *      key -> latest offset, within the memory budget; where the budget ends, the pass ends
 *      (end offset E), and the rest waits for the next pass;
 *   4. group the selected segments with base < E (consecutive ones whose
 *      sizes add up to at most segment.bytes) and write each group's
 *      cleaned copy into `<partition>/cleaner-staging/` (the group's first
 *      base, same offsets: a record is
 *      dropped when its key has a later offset in the map, or it is a
 *      tombstone older than delete.retention.ms, or its batch belongs to an
 *      aborted transaction (S20); a marker is dropped once no record of its
 *      transaction remains and it is older than delete.retention.ms (S21);
 *      records at or after E, null keys and each producer's last batch
 *      (S19) are kept verbatim; a batch
 *      that loses records is rebuilt with the same base offset,
 *      lastOffsetDelta, base timestamp, attributes (transactional bit
 *      included) and producer fields, the kept
 *      records' largest timestamp as max timestamp (CreateTime), and
 *      recompressed with its codec), build its indexes (the .txnindex: the
 *      group's entries concatenated, S22), fdatasync all of it and the
 *      staging dir;
 *   5. under m_del_mutex (no retention or DeleteRecords meanwhile): check
 *      the source segments are still in the log, write `cleaner-swap`
 *      (write-then-fsync-then-rename, listing the merged segments): the
 *      commit point; rename every staged file over its original, unlink the
 *      merged segments, fsync the partition dir, swap the segments in
 *      memory under l_mutex (readers holding the old ones keep their fds),
 *      drop the removed abort markers' entries from the aborted list (same
 *      l_mutex section), remove `cleaner-swap` and fsync the dir again;
 *   6. the cleaner checkpoint becomes E (written with the other checkpoints).
 * A failure before the commit point removes the staging dir (the old
 * segments stay); a failure after it makes the log fatal and the next open
 * finishes the renames (st__clean_recover).
 */
#include "storage/storage_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define CC_MAX_BATCH (256u * 1024 * 1024)  /* decompressed records of one batch */
#define CC_WBUF (1u << 20)                   /* staged writes are buffered this much */
#define CC_SLOT_BYTES (sizeof(cc_slot_t))

/* ---- the key -> offset map: open addressing, keys copied into an arena ---- */
typedef struct {
    uint64_t hash;   /* 0: empty slot */
    uint32_t koff;   /* key bytes at arena + koff ... */
    uint32_t klen;   /* ... this long */
    int64_t off;     /* latest offset seen for the key */
} cc_slot_t;

typedef struct {
    cc_slot_t *slots;
    size_t cap, n;   /* cap a power of two; full at 3/4 */
    uint8_t *arena;
    size_t alen, acap;
} cc_map_t;

static uint64_t cc_hash(const uint8_t *p, size_t n) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 29;
    return h ? h : 1;
}

/* Half the budget for slots, half for key bytes; no more than the dirty
 * bytes can need (a record takes at least 8 bytes of log). */
static int cc_map_init(cc_map_t *m, int64_t budget, int64_t dirty_bytes) {
    memset(m, 0, sizeof(*m));
    if (budget < 65536) budget = 65536;
    size_t cap = 1024;
    while ((int64_t)(cap * 2 * CC_SLOT_BYTES) <= budget / 2 && (int64_t)cap * 3 / 4 < dirty_bytes / 8) cap *= 2;
    m->cap = cap;
    m->acap = (size_t)RB_MIN(RB_MIN(budget / 2, dirty_bytes + 1024), (int64_t)UINT32_MAX);
    m->slots = calloc(cap, CC_SLOT_BYTES);
    m->arena = malloc(m->acap);
    if (!m->slots || !m->arena) {
        free(m->slots);
        free(m->arena);
        return RB_ERR_NOMEM;
    }
    return 0;
}

static void cc_map_free(cc_map_t *m) {
    free(m->slots);
    free(m->arena);
}

static cc_slot_t *cc_find(cc_map_t *m, const uint8_t *k, size_t n, uint64_t h) {
    size_t i = h & (m->cap - 1);
    for (;;) {
        cc_slot_t *s = &m->slots[i];
        if (s->hash == 0) return s;
        if (s->hash == h && s->klen == n && !memcmp(m->arena + s->koff, k, n)) return s;
        i = (i + 1) & (m->cap - 1);
    }
}

/* Records key -> off. Returns 0, or 1 when the map is full (nothing stored). */
static int cc_put(cc_map_t *m, const uint8_t *k, size_t n, int64_t off) {
    uint64_t h = cc_hash(k, n);
    cc_slot_t *s = cc_find(m, k, n, h);
    if (s->hash) {
        s->off = off;
        return 0;
    }
    if ((m->n + 1) * 4 > m->cap * 3 || n > m->acap - m->alen) return 1;
    if (n) memcpy(m->arena + m->alen, k, n);
    s->hash = h;
    s->koff = (uint32_t)m->alen;
    s->klen = (uint32_t)n;
    s->off = off;
    m->alen += n;
    m->n++;
    return 0;
}

static int64_t cc_get(cc_map_t *m, const uint8_t *k, size_t n) {
    cc_slot_t *s = cc_find(m, k, n, cc_hash(k, n));
    return s->hash ? s->off : -1;
}

/* ---- reading batches ---- */
typedef struct {
    int fd;
    int64_t pos, limit;
    uint8_t *buf;
    size_t cap;
    rb_buf_t dec; /* decompressed records */
} cc_rd_t;

/* Reads the next whole batch: 1 (h, buf filled), 0 at the end, or -errno /
 * RB_KAFKA_STORAGE_ERROR on bad data. */
static int cc_next(cc_rd_t *r, kp_batch_hdr_t *h) {
    if (r->pos >= r->limit) return 0;
    if (r->limit - r->pos < KP_BATCH_HEADER_SIZE) return RB_KAFKA_STORAGE_ERROR;
    uint8_t hb[KP_BATCH_HEADER_SIZE];
    if (pread(r->fd, hb, sizeof(hb), r->pos) != (ssize_t)sizeof(hb)) return -EIO;
    if (st__hdr_decode(hb, h)) return RB_KAFKA_STORAGE_ERROR;
    int64_t size = st__hdr_size(h);
    if (r->pos + size > r->limit) return RB_KAFKA_STORAGE_ERROR;
    if ((size_t)size > r->cap) {
        uint8_t *nb = realloc(r->buf, (size_t)size);
        if (!nb) return RB_ERR_NOMEM;
        r->buf = nb;
        r->cap = (size_t)size;
    }
    ssize_t got = pread(r->fd, r->buf, (size_t)size, r->pos);
    if (got != (ssize_t)size) return got < 0 ? -errno : -EIO;
    r->pos += size;
    return 1;
}

/* The (decompressed) records section of the batch in r->buf. */
static int cc_records(cc_rd_t *r, const kp_batch_hdr_t *h, const uint8_t **p, size_t *n) {
    const uint8_t *recs = r->buf + KP_BATCH_HEADER_SIZE;
    size_t len = (size_t)st__hdr_size(h) - KP_BATCH_HEADER_SIZE;
    int codec = h->attributes & KP_ATTR_COMPRESSION_MASK;
    if (codec != KP_COMP_NONE) {
        rb_buf_reset(&r->dec);
        if (kp_decompress((kp_compression_t)codec, recs, len, CC_MAX_BATCH, &r->dec)) return RB_KAFKA_STORAGE_ERROR;
        recs = r->dec.p;
        len = r->dec.len;
    }
    *p = recs;
    *n = len;
    return 0;
}

/* S19: the last batch of a producer keeps its sequence state readable from
 * the log (a replay without a snapshot, D22): it is never rewritten. */
static bool cc_producer_last(st_log_t *l, const kp_batch_hdr_t *h) {
    if (h->producer_id < 0) return false;
    pthread_mutex_lock(&l->l_mutex);
    const st_prod_t *pp = st_pt_find(&l->l_prods, h->producer_id);
    bool last = pp && pp->p_n > 0 && pp->p_b[pp->p_n - 1].pb_last_off == st__hdr_last(h);
    pthread_mutex_unlock(&l->l_mutex);
    return last;
}

/* S19 for markers: the producer's last marker, unless a data batch of the
 * producer follows it, may be all that carries its epoch (a fence) to a
 * replay without a snapshot: it stays. The log learns last markers from
 * appends and from the replay after the snapshot (S23), not from the
 * segments before it: for a live producer whose last marker is unknown
 * since the open, every marker of it counts as its last until it writes
 * one. */
static bool cc_marker_last(st_log_t *l, const kp_batch_hdr_t *h) {
    pthread_mutex_lock(&l->l_mutex);
    const st_prod_t *pp = st_pt_find(&l->l_prods, h->producer_id);
    int64_t lm = st__txn_last_marker(l, h->producer_id);
    bool last = (lm == h->base_offset || (lm < 0 && pp)) &&
                !(pp && pp->p_n > 0 && pp->p_b[pp->p_n - 1].pb_last_off > h->base_offset);
    pthread_mutex_unlock(&l->l_mutex);
    return last;
}

/* ---- transactions in a pass ----
 * Which transaction a batch belongs to follows from the log's order: a
 * producer's transactional batches up to its next marker. The pass reads
 * every batch from the first segment to its end offset in order, so for
 * each producer it knows whether a batch of its current transaction was
 * read (seen) and whether one was written to the cleaned copy (kept) when
 * it reaches the marker; every record of that transaction lies before the
 * marker, hence in the pass's range. */
typedef struct {
    int64_t pid;  /* -1: empty slot */
    bool seen;    /* a batch of its current transaction was read in this pass ... */
    bool kept;    /* ... and one of them is kept */
} cc_txn_t;

static int cc_ab_cmp(const void *a, const void *b) {
    const st_aborted_txn_t *x = a, *y = b;
    if (x->pid != y->pid) return x->pid < y->pid ? -1 : 1;
    return x->first < y->first ? -1 : x->first > y->first;
}

/* ---- the pass ---- */
typedef struct {
    st_seg_t *src;      /* referenced */
    int64_t next_base;  /* base of the segment after it */
    st_seg_t *dst;      /* first of a group: the cleaned copy of the group (staging dir) */
    int ngroup;         /* first of a group: sources in it (this one and the next ngroup-1) */
    bool merged;        /* a later member of a group: its files go at the swap */
} cc_job_t;

typedef struct {
    st_log_t *l;
    cc_map_t map;
    int64_t first_dirty, end;
    int64_t now_ms;
    char stage[4096];
    cc_job_t *jobs;
    int njobs;
    int64_t swapped_end;  /* next base after the last rewritten group */
    rb_buf_t wbuf, out, plain;
    cc_rd_t rd;
    st_clean_stats_t *st;
    st_aborted_txn_t *ab;   /* the aborted transactions of the range (S18), by (pid, first) */
    int nab;
    cc_txn_t *tx;           /* per producer: its current transaction (open addressing) */
    size_t txcap, ntx;
    st_aborted_txn_t *gone; /* abort markers removed: their aborted-list entries go at the swap */
    int ngone, gone_cap;
} cc_pass_t;

/* The transactional batch h belongs to an aborted transaction: one of its
 * producer's aborted entries has first <= base <= marker offset. */
static bool cc_aborted(const cc_pass_t *p, const kp_batch_hdr_t *h) {
    if (!(h->attributes & KP_ATTR_TRANSACTIONAL) || h->producer_id < 0) return false;
    int lo = 0, hi = p->nab; /* first entry > (pid, base) */
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        const st_aborted_txn_t *a = &p->ab[mid];
        if (a->pid < h->producer_id || (a->pid == h->producer_id && a->first <= h->base_offset)) lo = mid + 1;
        else hi = mid;
    }
    if (lo == 0) return false;
    const st_aborted_txn_t *a = &p->ab[lo - 1];
    return a->pid == h->producer_id && h->base_offset <= a->last;
}

static cc_txn_t *cc_txn(cc_pass_t *p, int64_t pid) {
    if ((p->ntx + 1) * 4 > p->txcap * 3) {
        size_t nc = p->txcap ? p->txcap * 2 : 64;
        cc_txn_t *nt = malloc(nc * sizeof(*nt));
        if (!nt) abort();
        for (size_t i = 0; i < nc; i++) nt[i].pid = -1;
        for (size_t i = 0; i < p->txcap; i++) {
            if (p->tx[i].pid < 0) continue;
            size_t j = (size_t)((uint64_t)p->tx[i].pid * 0x9E3779B97F4A7C15ull >> 32) & (nc - 1);
            while (nt[j].pid >= 0) j = (j + 1) & (nc - 1);
            nt[j] = p->tx[i];
        }
        free(p->tx);
        p->tx = nt;
        p->txcap = nc;
    }
    size_t j = (size_t)((uint64_t)pid * 0x9E3779B97F4A7C15ull >> 32) & (p->txcap - 1);
    while (p->tx[j].pid >= 0 && p->tx[j].pid != pid) j = (j + 1) & (p->txcap - 1);
    if (p->tx[j].pid < 0) {
        p->tx[j].pid = pid;
        p->tx[j].seen = p->tx[j].kept = false;
        p->ntx++;
    }
    return &p->tx[j];
}

/* A transactional data batch of h's producer was read; kept: written out. */
static void cc_txn_note(cc_pass_t *p, const kp_batch_hdr_t *h, bool kept) {
    if (!(h->attributes & KP_ATTR_TRANSACTIONAL) || h->producer_id < 0) return;
    cc_txn_t *t = cc_txn(p, h->producer_id);
    t->seen = true;
    if (kept) t->kept = true;
}

/* Step 3: the map over [first_dirty, end of the selected segments). */
static int cc_build_map(cc_pass_t *p, int64_t limit_off) {
    p->end = limit_off;
    for (int j = 0; j < p->njobs; j++) {
        cc_job_t *jb = &p->jobs[j];
        if (jb->next_base <= p->first_dirty) continue;
        p->rd.fd = jb->src->seg_fd;
        p->rd.pos = 0;
        p->rd.limit = jb->src->seg_size;
        kp_batch_hdr_t h;
        int rc;
        while ((rc = cc_next(&p->rd, &h)) == 1) {
            /* markers carry no key; aborted records never enter the map, so
             * one never shadows a committed record of its key (S20) */
            if (st__hdr_last(&h) < p->first_dirty || (h.attributes & KP_ATTR_CONTROL) || cc_aborted(p, &h)) continue;
            const uint8_t *recs;
            size_t n;
            if ((rc = cc_records(&p->rd, &h, &recs, &n))) return rc;
            rb_rd_t rd;
            rb_rd_init(&rd, recs, n);
            for (int32_t i = 0; i < h.records_count; i++) {
                kp_record_t rec;
                if (kp_record_next(&rd, &rec)) return RB_KAFKA_STORAGE_ERROR;
                int64_t off = h.base_offset + rec.offset_delta;
                if (off < p->first_dirty || rec.key.len < 0) continue;
                if (cc_put(&p->map, rec.key.p, (size_t)rec.key.len, off)) {
                    p->end = off; /* full: this pass covers [first_dirty, off) */
                    return 0;
                }
            }
        }
        if (rc < 0) return rc;
    }
    return 0;
}

static int cc_flush(cc_pass_t *p, int fd, int64_t *pos) {
    if (!p->wbuf.len) return 0;
    int e = rb_failpoint("st.clean.write");
    if (e) return -e;
    size_t done = 0;
    while (done < p->wbuf.len) {
        ssize_t k = pwrite(fd, p->wbuf.p + done, p->wbuf.len - done, *pos + (int64_t)done);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        done += (size_t)k;
    }
    *pos += (int64_t)done;
    p->wbuf.len = 0;
    return 0;
}

/* A marker (in p->rd.buf) below the end offset goes (S21) when no record
 * of its transaction remains in the log (a commit: none kept in this pass;
 * an abort: none even read in this pass, i.e. an earlier pass removed them
 * all, so a fetch that read the old segments never meets an aborted-list
 * entry without its marker), it is older than delete.retention.ms, and it
 * is not its producer's last (S19). Else it is copied verbatim. Either way
 * the producer's next transactional batch starts a new transaction. */
static int cc_filter_marker(cc_pass_t *p, const kp_batch_hdr_t *h, int64_t delete_ms) {
    size_t size = (size_t)st__hdr_size(h);
    cc_txn_t *t = h->producer_id >= 0 ? cc_txn(p, h->producer_id) : NULL;
    bool commit = true;
    bool drop = t && st__hdr_last(h) < p->end && st_marker_parse(p->rd.buf, size, &commit) == 0 &&
                (commit ? !t->kept : !t->seen) && h->max_timestamp >= 0 &&
                p->now_ms - h->max_timestamp > delete_ms && !cc_marker_last(p->l, h);
    if (t) t->seen = t->kept = false;
    if (!drop) {
        rb_buf_put(&p->wbuf, p->rd.buf, size);
        return 0;
    }
    p->st->markers_removed++;
    if (!commit) {
        if (p->ngone == p->gone_cap) {
            int nc = p->gone_cap ? p->gone_cap * 2 : 16;
            st_aborted_txn_t *ng = realloc(p->gone, (size_t)nc * sizeof(*ng));
            if (!ng) abort();
            p->gone = ng;
            p->gone_cap = nc;
        }
        p->gone[p->ngone].pid = h->producer_id;
        p->gone[p->ngone].first = -1;
        p->gone[p->ngone].last = h->base_offset;
        p->ngone++;
    }
    return 0;
}

/* Filters one batch (in p->rd.buf) into p->wbuf. */
static int cc_filter_batch(cc_pass_t *p, const kp_batch_hdr_t *h, int64_t delete_ms) {
    size_t size = (size_t)st__hdr_size(h);
    if (h->attributes & KP_ATTR_CONTROL) return cc_filter_marker(p, h, delete_ms);
    if (h->base_offset >= p->end || cc_producer_last(p->l, h)) {
        rb_buf_put(&p->wbuf, p->rd.buf, size);
        cc_txn_note(p, h, true);
        return 0;
    }
    /* S20: a batch of an aborted transaction loses every record */
    bool aborted = cc_aborted(p, h);
    const uint8_t *recs;
    size_t n;
    int rc = cc_records(&p->rd, h, &recs, &n);
    if (rc) return rc;
    rb_buf_reset(&p->plain);
    int32_t kept = 0;
    int64_t max_ts = -1;
    rb_rd_t rd;
    rb_rd_init(&rd, recs, n);
    bool tomb_old = h->max_timestamp >= 0 && p->now_ms - h->max_timestamp > delete_ms;
    for (int32_t i = 0; i < h->records_count; i++) {
        const uint8_t *at = rd.p;
        kp_record_t rec;
        if (kp_record_next(&rd, &rec)) return RB_KAFKA_STORAGE_ERROR;
        int64_t off = h->base_offset + rec.offset_delta;
        bool keep = !aborted;
        if (keep && rec.key.len >= 0 && off < p->end) {
            int64_t latest = cc_get(&p->map, rec.key.p, (size_t)rec.key.len);
            if (latest > off) keep = false;                      /* superseded */
            else if (rec.value.len < 0 && tomb_old) keep = false; /* an expired tombstone */
        }
        if (keep) {
            rb_buf_put(&p->plain, at, (size_t)(rd.p - at));
            kept++;
            int64_t ts = (int64_t)((uint64_t)h->base_timestamp + (uint64_t)rec.timestamp_delta);
            if (ts > max_ts) max_ts = ts;
        }
    }
    cc_txn_note(p, h, kept > 0);
    if (kept == h->records_count) {
        rb_buf_put(&p->wbuf, p->rd.buf, size);
        return 0;
    }
    p->st->records_removed += h->records_count - kept;
    if (aborted) p->st->aborted_removed += h->records_count;
    if (kept == 0) return 0;
    /* rebuild: same header fields but count, length and CRC */
    size_t start = p->wbuf.len;
    rb_buf_put(&p->wbuf, p->rd.buf, KP_BATCH_HEADER_SIZE);
    int codec = h->attributes & KP_ATTR_COMPRESSION_MASK;
    if (codec == KP_COMP_NONE) {
        rb_buf_put(&p->wbuf, p->plain.p, p->plain.len);
    } else if (kp_compress((kp_compression_t)codec, p->plain.p, p->plain.len, &p->wbuf)) {
        return RB_KAFKA_STORAGE_ERROR;
    }
    uint8_t *b = p->wbuf.p + start;
    size_t total = p->wbuf.len - start;
    rb_wbe32(b + 8, (uint32_t)(total - KP_BATCH_LOG_OVERHEAD));
    rb_wbe32(b + 57, (uint32_t)kept);
    if (!(h->attributes & KP_ATTR_TIMESTAMP_TYPE)) /* CreateTime: the kept records' largest (LogAppendTime stays) */
        rb_wbe64(b + 35, (uint64_t)max_ts);
    rb_wbe32(b + 17, rb_crc32c(0, b + 21, total - 21));
    return 0;
}

/* Step 4 for one group of consecutive segments (jobs g .. g+ngroup-1): one
 * cleaned segment with the first one's base. */
static int cc_clean_group(cc_pass_t *p, int g, const st_log_config_t *cfg) {
    cc_job_t *jb = &p->jobs[g];
    cc_job_t *lastj = &p->jobs[g + jb->ngroup - 1];
    int rc = st__seg_open(p->stage, jb->src->seg_base, true, &jb->dst);
    if (rc < 0) return rc;
    int fd = jb->dst->seg_fd;
    int64_t wpos = 0;
    p->wbuf.len = 0;
    for (int j = g; j < g + jb->ngroup; j++) {
        st_seg_t *src = p->jobs[j].src;
        p->rd.fd = src->seg_fd;
        p->rd.pos = 0;
        p->rd.limit = src->seg_size;
        kp_batch_hdr_t h;
        while ((rc = cc_next(&p->rd, &h)) == 1) {
            if ((rc = cc_filter_batch(p, &h, cfg->delete_retention_ms))) return rc;
            if (p->wbuf.len >= CC_WBUF && (rc = cc_flush(p, fd, &wpos))) return rc;
        }
        if (rc < 0) return rc;
        if ((rc = st__xidx_copy(p->stage, jb->dst, src, p->gone, p->ngone)) < 0) /* the group's aborts (S22) */
            return rc;
        p->st->bytes_read += src->seg_size;
        p->jobs[j].merged = j > g;
    }
    if ((rc = cc_flush(p, fd, &wpos))) return rc;
    st_seg_t *d = jb->dst;
    d->seg_size = wpos;
    st_scan_t sc;
    memset(&sc, 0, sizeof(sc));
    sc.min_off = d->seg_base;
    sc.next_base = lastj->next_base;
    sc.build_index = true;
    sc.interval = cfg->index_interval_bytes;
    rc = st__seg_scan(d, &sc);
    if (rc < 0) return rc;
    if (sc.invalid || sc.end_pos != wpos) return RB_KAFKA_STORAGE_ERROR;
    st__idx_seal(d);
    if (fdatasync(d->seg_fd) < 0 || fdatasync(d->seg_ofd) < 0 || fdatasync(d->seg_tfd) < 0 ||
        fdatasync(d->seg_xfd) < 0)
        return -errno;
    d->seg_synced = wpos;
    d->seg_xsynced = d->seg_xn;
    d->seg_next_off = lastj->next_base;
    d->seg_max_ts = sc.max_ts;
    d->seg_max_ts_off = sc.max_ts_off;
    d->seg_sealed = true;
    d->seg_sealed_synced = true;
    p->st->bytes_written += wpos;
    p->st->segments += jb->ngroup;
    return 0;
}

/* Groups consecutive segments below the end offset, as Kafka does: sources
 * whose sizes add up to at most segment.bytes (their index entries, at worst
 * one per index.interval.bytes or per batch, also fit segment.index.bytes) and whose offsets stay within 2^31
 * of the group's base. Returns the number of jobs covered. */
static int cc_group(cc_pass_t *p, const st_log_config_t *cfg) {
    int j = 0;
    while (j < p->njobs && p->jobs[j].src->seg_base < p->end) {
        int k = j + 1;
        int64_t size = p->jobs[j].src->seg_size;
        while (k < p->njobs && p->jobs[k].src->seg_base < p->end) {
            int64_t ns = size + p->jobs[k].src->seg_size;
            if (ns > cfg->segment_bytes || ns / RB_MAX(cfg->index_interval_bytes, KP_BATCH_HEADER_SIZE) * ST_TIDX_ENTRY > cfg->segment_index_bytes ||
                p->jobs[k].next_base - p->jobs[j].src->seg_base > INT32_MAX)
                break;
            size = ns;
            k++;
        }
        p->jobs[j].ngroup = k - j;
        j = k;
    }
    return j;
}

/* Renames every file of the staging dir into dir (replacing). */
static int cc_move_staged(const char *dir, const char *stage) {
    DIR *d = opendir(stage);
    if (!d) return errno == ENOENT ? 0 : -errno;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char from[4096 + 256], to[4096 + 256];
        snprintf(from, sizeof(from), "%s/%s", stage, de->d_name);
        snprintf(to, sizeof(to), "%s/%s", dir, de->d_name);
        int e = rb_failpoint("st.clean.rename");
        if (e || rename(from, to) < 0) {
            rc = e ? -e : -errno;
            break;
        }
    }
    closedir(d);
    return rc;
}

int st__clean_recover(const char *dir) {
    char stage[4096], swap[4096];
    snprintf(stage, sizeof(stage), "%s/%s", dir, ST_STAGE_DIR);
    snprintf(swap, sizeof(swap), "%s/%s", dir, ST_SWAP_FILE);
    struct stat st;
    if (stat(swap, &st) == 0) {
        /* committed: finish the renames, remove the merged segments (S11) */
        rb_warn("storage: %s: finishing an interrupted compaction swap", dir);
        int rc = cc_move_staged(dir, stage);
        if (rc < 0) return rc;
        char *data = NULL;
        size_t len = 0;
        if ((rc = rb_read_file(swap, &data, &len)) < 0) return rc;
        char *save = NULL;
        for (char *ln = strtok_r(data, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
            long long base;
            if (sscanf(ln, "merged %lld", &base) == 1 && base >= 0) {
                rc = st__seg_unlink(dir, (int64_t)base);
                if (rc < 0 && rc != -ENOENT) break;
                rc = 0;
            }
        }
        free(data);
        if (rc < 0) return rc;
        if ((rc = rb_fsync_dir(dir)) < 0) return rc;
        if (unlink(swap) < 0 && errno != ENOENT) return -errno;
    }
    if (stat(stage, &st) == 0) rb_rm_rf(stage); /* uncommitted (or emptied) staging */
    char tmp[4096 + 8];
    snprintf(tmp, sizeof(tmp), "%s.tmp", swap);
    unlink(tmp);
    return rb_fsync_dir(dir);
}

/* The record holding the log's largest timestamp (ListOffsets -3) may have
 * been compacted away from [lo, hi): take the largest again from the
 * segments (their maxima come from the rewritten batches). The durable one
 * only from segments whose largest batch is below the high watermark; when
 * that cannot be known the flusher's next advance sets it. l_mutex held. */
static void cc_fix_max_ts(st_log_t *l, int64_t lo, int64_t hi) {
    bool all = l->l_max_ts_off >= lo && l->l_max_ts_off < hi;
    bool dur = l->l_dmax_ts_off >= lo && l->l_dmax_ts_off < hi;
    if (!all && !dur) return;
    int64_t mts = ST_NO_TS, moff = -1, dts = ST_NO_TS, doff = -1;
    bool dknown = true;
    for (int i = 0; i < l->l_nsegs; i++) {
        st_seg_t *s = l->l_segs[i];
        if (s->seg_max_ts == ST_NO_TS) continue;
        if (s->seg_max_ts > mts) mts = s->seg_max_ts, moff = s->seg_max_ts_off;
        if (s->seg_max_ts_off < l->l_hw) {
            if (s->seg_max_ts > dts) dts = s->seg_max_ts, doff = s->seg_max_ts_off;
        } else if (s->seg_base < l->l_hw) {
            dknown = false; /* part of this segment is durable, its durable maximum unknown */
        }
    }
    if (all) l->l_max_ts = mts, l->l_max_ts_off = moff;
    if (dur && dknown) l->l_dmax_ts = dts, l->l_dmax_ts_off = doff;
}

/* Step 5. Returns 0, 1 when a source segment went away (abandon), or an
 * error: negative before the commit point, and then *committed says whether
 * the commit record was written. */
static int cc_swap(cc_pass_t *p, bool *committed) {
    st_log_t *l = p->l;
    *committed = false;
    pthread_mutex_lock(&l->l_mutex);
    bool gone = l->l_fatal || l->l_closing;
    for (int j = 0; j < p->njobs && !gone; j++) {
        if (!p->jobs[j].dst && !p->jobs[j].merged) continue;
        bool found = false;
        for (int i = 0; i < l->l_nsegs && !found; i++) found = l->l_segs[i] == p->jobs[j].src;
        if (!found) gone = true;
    }
    pthread_mutex_unlock(&l->l_mutex);
    if (gone) return 1;
    int e = rb_failpoint("st.clean.commit");
    if (e) return -e;
    /* S22: a group whose staged .txnindex is missing (a source segment lost
     * its file to a failed write) must not keep its first segment's file
     * either: it would be trusted without the other sources' entries. It
     * goes before the commit record (whose dir sync makes that durable), so
     * the next open rebuilds it whichever way this pass ends. */
    for (int j = 0; j < p->njobs; j++) {
        cc_job_t *jb = &p->jobs[j];
        if (!jb->dst || !jb->dst->seg_xbad) continue;
        char path[4096];
        st__seg_path(path, sizeof(path), l->l_dir, jb->src->seg_base, ST_XIDX_EXT);
        if (unlink(path) < 0 && errno != ENOENT) return -errno;
        pthread_mutex_lock(&l->l_mutex);
        jb->src->seg_xbad = true; /* sealed: nothing more is appended to it */
        pthread_mutex_unlock(&l->l_mutex);
    }
    char swap[4096];
    snprintf(swap, sizeof(swap), "%s/%s", l->l_dir, ST_SWAP_FILE);
    rb_buf_t rec;
    rb_buf_init(&rec);
    rb_buf_printf(&rec, "cleaner-swap 0\n");
    for (int j = 0; j < p->njobs; j++)
        if (p->jobs[j].merged) rb_buf_printf(&rec, "merged %" PRId64 "\n", p->jobs[j].src->seg_base);
    int rc = rb_write_file_atomic(swap, rec.p, rec.len);
    rb_buf_free(&rec);
    if (rc < 0) return rc;
    *committed = true;
    if ((rc = cc_move_staged(l->l_dir, p->stage)) < 0) return rc;
    for (int j = 0; j < p->njobs; j++) {
        if (!p->jobs[j].merged) continue;
        if ((e = rb_failpoint("st.clean.rename"))) return -e;
        if ((rc = st__seg_unlink(l->l_dir, p->jobs[j].src->seg_base)) < 0 && rc != -ENOENT) return rc;
    }
    if ((e = rb_failpoint("st.clean.swapped"))) return -e;
    if ((rc = rb_fsync_dir(l->l_dir)) < 0) return rc;
    /* in memory: the new segments replace the old ones */
    pthread_mutex_lock(&l->l_mutex);
    for (int j = 0; j < p->njobs; j++) {
        cc_job_t *jb = &p->jobs[j];
        if (!jb->dst && !jb->merged) continue;
        for (int i = 0; i < l->l_nsegs; i++) {
            if (l->l_segs[i] != jb->src) continue;
            if (jb->dst) {
                l->l_segs[i] = jb->dst;
                jb->dst = NULL;
            } else { /* merged into the group's first segment */
                memmove(l->l_segs + i, l->l_segs + i + 1, (size_t)(l->l_nsegs - i - 1) * sizeof(*l->l_segs));
                l->l_nsegs--;
            }
            st__seg_unref(jb->src); /* the array's reference; the job still holds one */
            break;
        }
        for (int i = 0; i < ST_RCACHE; i++)
            if (l->l_rcache[i].rc_seg_base == jb->src->seg_base) l->l_rcache[i].rc_off = -1;
    }
    cc_fix_max_ts(l, p->jobs[0].src->seg_base, p->swapped_end);
    /* removed abort markers leave the aborted list with their segments, so
     * no fetch after the swap lists a transaction whose marker is gone */
    for (int i = 0; i < p->ngone; i++) st__txn_forget_aborted(l, p->gone[i].pid, p->gone[i].last);
    pthread_mutex_unlock(&l->l_mutex);
    if (unlink(swap) < 0) return -errno;
    return rb_fsync_dir(l->l_dir);
}

static int64_t seg_ts(const st_seg_t *s) {
    if (s->seg_max_ts != ST_NO_TS) return s->seg_max_ts;
    struct stat st;
    if (fstat(s->seg_fd, &st) < 0) return INT64_MAX;
    return (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
}

int st_log_compact_run(st_log_t *l, int64_t now_ms, int64_t budget, st_clean_stats_t *stats) {
    st_mgr_t *m = l->l_mgr;
    st_clean_stats_t dummy;
    if (!stats) stats = &dummy;
    memset(stats, 0, sizeof(*stats));
    if (budget <= 0) {
        pthread_mutex_lock(&m->m_cl_mutex);
        budget = m->m_cc_buffer;
        pthread_mutex_unlock(&m->m_cl_mutex);
    }
    int64_t t0 = rb_mono_ms();
    cc_pass_t p;
    memset(&p, 0, sizeof(p));
    p.l = l;
    p.now_ms = now_ms;
    p.st = stats;
    /* step 1 */
    pthread_mutex_lock(&l->l_mutex);
    st_log_config_t cfg = l->l_cfg;
    if (!cfg.compact || l->l_fatal || l->l_closing) {
        pthread_mutex_unlock(&l->l_mutex);
        return 0;
    }
    /* S20: the cleanable range ends at the last stable offset (at most the
     * high watermark): an open transaction's records are never touched */
    int64_t lso = st__txn_lso(l);
    int n = 0;
    while (n < l->l_nsegs - 1) {
        st_seg_t *s = l->l_segs[n];
        if (!s->seg_sealed || l->l_segs[n + 1]->seg_base > lso) break;
        if (cfg.min_compaction_lag_ms > 0 && now_ms - seg_ts(s) < cfg.min_compaction_lag_ms) break;
        n++;
    }
    int64_t first_dirty = RB_MAX(l->l_clean_off, l->l_start);
    int64_t dirty = 0, total = 0;
    bool overdue = false;
    for (int i = 0; i < n; i++) {
        st_seg_t *s = l->l_segs[i];
        total += s->seg_size;
        if (l->l_segs[i + 1]->seg_base > first_dirty) {
            dirty += s->seg_size;
            if (cfg.max_compaction_lag_ms < INT64_MAX && now_ms - seg_ts(s) > cfg.max_compaction_lag_ms)
                overdue = true;
        }
    }
    bool go = n > 0 && dirty > 0 &&
              (overdue || (double)dirty >= cfg.min_cleanable_dirty_ratio * (double)(total ? total : 1));
    if (!go) {
        pthread_mutex_unlock(&l->l_mutex);
        return 0;
    }
    p.jobs = calloc((size_t)n, sizeof(*p.jobs));
    if (!p.jobs) abort();
    for (int i = 0; i < n; i++) {
        st__seg_ref(l->l_segs[i]);
        p.jobs[i].src = l->l_segs[i];
        p.jobs[i].next_base = l->l_segs[i + 1]->seg_base;
    }
    p.njobs = n;
    int64_t limit_off = p.jobs[n - 1].next_base;
    /* the aborted transactions that can touch the range: every one whose
     * marker lies below the LSO is already listed (S18) */
    for (int i = 0; i < l->l_ntab; i++)
        if (l->l_tab[i].first < limit_off) p.nab++;
    if (p.nab) {
        p.ab = malloc((size_t)p.nab * sizeof(*p.ab));
        if (!p.ab) abort();
        p.nab = 0;
        for (int i = 0; i < l->l_ntab; i++)
            if (l->l_tab[i].first < limit_off) p.ab[p.nab++] = l->l_tab[i];
    }
    pthread_mutex_unlock(&l->l_mutex);
    if (p.nab > 1) qsort(p.ab, (size_t)p.nab, sizeof(*p.ab), cc_ab_cmp);
    p.first_dirty = first_dirty;
    snprintf(p.stage, sizeof(p.stage), "%s/%s", l->l_dir, ST_STAGE_DIR);
    rb_buf_init(&p.wbuf);
    rb_buf_init(&p.out);
    rb_buf_init(&p.plain);
    rb_buf_init(&p.rd.dec);
    bool committed = false;
    int rc;

    /* step 2: the recovery point reaches past every selected segment */
    atomic_fetch_add(&m->m_ckpt_gen, 1);
    if ((rc = st__ckpt_write(m)) < 0) goto fail;
    /* step 3 */
    if ((rc = cc_map_init(&p.map, budget, dirty)) < 0) goto fail;
    stats->map_bytes = (int64_t)(p.map.cap * CC_SLOT_BYTES + p.map.acap);
    if ((rc = cc_build_map(&p, limit_off)) < 0) goto fail;
    stats->first_dirty = p.first_dirty;
    stats->end_offset = p.end;
    if (p.end <= p.first_dirty) {
        rb_warn("storage: %s: the cleaner's key map (%" PRId64 " bytes) cannot hold one record; not compacting",
                l->l_dir, budget);
        rc = 0;
        goto done;
    }
    /* step 4 */
    rb_rm_rf(p.stage);
    if (mkdir(p.stage, 0755) < 0) {
        rc = -errno;
        goto fail;
    }
    int ncover = cc_group(&p, &cfg);
    p.swapped_end = ncover ? p.jobs[ncover - 1].next_base : 0;
    for (int j = 0; j < ncover; j++)
        if (p.jobs[j].next_base > p.first_dirty) stats->dirty_bytes += p.jobs[j].src->seg_size;
    for (int j = 0; j < ncover; j += p.jobs[j].ngroup)
        if ((rc = cc_clean_group(&p, j, &cfg)) < 0) goto fail;
    /* the staged files and the staging dir's own entry are durable before
     * the commit record can be */
    if ((rc = rb_fsync_dir(p.stage)) < 0 || (rc = rb_fsync_dir(l->l_dir)) < 0) goto fail;
    /* step 5 */
    pthread_mutex_lock(&m->m_del_mutex);
    rc = cc_swap(&p, &committed);
    pthread_mutex_unlock(&m->m_del_mutex);
    if (rc == 1) {
        rb_info("storage: %s: segments changed during compaction; pass abandoned", l->l_dir);
        rc = 0;
        goto fail;
    }
    if (rc < 0) goto fail;
    /* step 6 */
    pthread_mutex_lock(&l->l_mutex);
    __atomic_store_n(&l->l_clean_off, p.end, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&l->l_mutex);
    atomic_fetch_add(&m->m_ckpt_gen, 1);
    st__ckpt_write(m); /* best effort: a lost checkpoint only repeats work */
    rmdir(p.stage);
    atomic_fetch_add(&m->m_cc_passes, 1);
    stats->elapsed_ms = rb_mono_ms() - t0;
    rb_info("storage: %s: compacted [%" PRId64 ", %" PRId64 "): %d segment(s), %" PRId64 " -> %" PRId64
            " bytes, %" PRId64 " record(s) removed (%" PRId64 " aborted), %" PRId64 " marker(s) removed, dirty %" PRId64
            " bytes, map %" PRId64 " bytes, %" PRId64 " ms",
            l->l_dir, p.first_dirty, p.end, stats->segments, stats->bytes_read, stats->bytes_written,
            stats->records_removed, stats->aborted_removed, stats->markers_removed, stats->dirty_bytes,
            stats->map_bytes, stats->elapsed_ms);
    rc = 1;
    goto done;
fail:
    if (committed) {
        /* S11: the swap is committed on disk but not finished here; the next
         * open finishes it. Refuse everything until then. */
        rb_error("storage: %s: compaction swap failed after its commit point (%s); the log is offline until "
                 "reopened",
                 l->l_dir, rc < 0 && rc > -4096 ? strerror(-rc) : rb_err_name(rc));
        pthread_mutex_lock(&l->l_mutex);
        if (!l->l_fatal) {
            l->l_fatal = true;
            atomic_fetch_add(&m->m_fatal, 1);
        }
        st_waiter_t *w = l->l_waiters;
        l->l_waiters = NULL;
        pthread_mutex_unlock(&l->l_mutex);
        st__waiters_call(w, RB_KAFKA_STORAGE_ERROR);
        rc = RB_KAFKA_STORAGE_ERROR;
    } else {
        if (rc) rb_warn("storage: %s: compaction pass abandoned (%s); the old segments stay", l->l_dir,
                        rc < 0 && rc > -4096 ? strerror(-rc) : rb_err_name(rc));
        rb_rm_rf(p.stage);
        if (rc) rc = RB_KAFKA_STORAGE_ERROR;
    }
done:
    for (int j = 0; j < p.njobs; j++) {
        if (p.jobs[j].dst) st__seg_unref(p.jobs[j].dst);
        st__seg_unref(p.jobs[j].src);
    }
    free(p.jobs);
    free(p.ab);
    free(p.tx);
    free(p.gone);
    cc_map_free(&p.map);
    rb_buf_free(&p.wbuf);
    rb_buf_free(&p.out);
    rb_buf_free(&p.plain);
    rb_buf_free(&p.rd.dec);
    free(p.rd.buf);
    return rc;
}

int64_t st_log_cleaner_offset(st_log_t *l) {
    pthread_mutex_lock(&l->l_mutex);
    int64_t v = RB_MAX(l->l_clean_off, l->l_start);
    pthread_mutex_unlock(&l->l_mutex);
    return v;
}

void st__compact_one(st_log_t *l, int64_t now_ms) { st_log_compact_run(l, now_ms, 0, NULL); }

void st_mgr_set_cleaner(st_mgr_t *m, bool enable, int64_t dedupe_bytes, int64_t backoff_ms) {
    pthread_mutex_lock(&m->m_cl_mutex);
    m->m_cc_enable = enable;
    m->m_cc_buffer = dedupe_bytes < 65536 ? 65536 : dedupe_bytes;
    m->m_cc_backoff_ms = backoff_ms < 1 ? 1 : backoff_ms;
    pthread_cond_signal(&m->m_cl_cond);
    pthread_mutex_unlock(&m->m_cl_mutex);
}
