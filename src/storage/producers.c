/*
 * producers.c — per-partition idempotent producer state: for each producer id
 * that wrote to the log, its epoch, the sequence ranges and offsets of its
 * last ST_PROD_WINDOW batches, and when it last wrote; the sequence check an
 * append runs against it; the `<offset>.snapshot` files beside the segments;
 * and the rebuild at open (latest valid snapshot, then the batches after it).
 *
 * Rules (storage.h S13-S16, docs/durability.md):
 *  - A batch with producer id >= 0 is checked and recorded under l_mutex in
 *    the same section as its write (st_log_append), so no other append to the
 *    partition can slip between the check and the write.
 *  - Check, as Kafka 3.x's ProducerAppendInfo with two deliberate choices:
 *      epoch < current                          INVALID_PRODUCER_EPOCH
 *      epoch > current (a bump)                 first sequence must be 0, else
 *                                               OUT_OF_ORDER_SEQUENCE_NUMBER
 *      same epoch, (first, last) sequence equal
 *        to one of the last 5 batches           duplicate: the original offsets
 *      same epoch, first != last seen + 1       OUT_OF_ORDER_SEQUENCE_NUMBER
 *        (sequences wrap from INT32_MAX to 0)
 *      producer unknown to the partition        first sequence must be 0, else
 *                                               UNKNOWN_PRODUCER_ID (its state
 *                                               expired: the client resets)
 *    (Kafka 3.x accepts any sequence from an unknown producer; we keep state
 *    through retention and DeleteRecords, so the only way to lose it is
 *    expiry, and answering UNKNOWN_PRODUCER_ID then is what librdkafka and
 *    the Java client handle by resetting their sequence.)
 *  - Snapshots are a cache: written (tmp + rename, CRC-32C over the content,
 *    no fsync) at every segment roll and at close, named by the offset they
 *    cover up to (exclusive). At open a snapshot past the log end offset is
 *    removed (recovery truncated what it described), one that fails its CRC
 *    or has the old version is removed, and the state is the newest valid one
 *    (at or below the first segment whose .txnindex is rebuilt, S23) plus
 *    every batch from its offset to the log end, markers included (their
 *    epochs fence, they close transactions); with none, every batch of the
 *    log. The snapshot also restores the open transactions (S17).
 *    Retention never removes snapshots, so state survives segment deletion;
 *    after writing one we keep only the two newest, and the newest at or
 *    below each of the last two segments' bases (what an unclean open needs
 *    to rebuild their .txnindex files without replaying the whole log).
 *  - A producer that has not written for producer.id.expiration.ms (default
 *    1 day) is dropped: by an append to the log, at most every
 *    min(expiration, 10 min) (Kafka's check interval), and when a snapshot is
 *    written or loaded. A log nobody appends to keeps its (small) table until
 *    its next open.
 *
 * With compaction (compact.c): the cleaner rewrites only sealed segments,
 * all below the newest snapshot, so the replay after it never meets a
 * compacted segment. Without a valid newest snapshot (or when an older one
 * is taken to rebuild a .txnindex, S23) the replay may cross
 * compacted segments; the cleaner keeps each producer's last batch verbatim
 * (S19, as Kafka does), so the replay still finds every producer's last
 * sequence (docs/durability.md D22).
 *
 * Snapshot format (ours, big-endian): u32 magic "RPS2", u32 CRC-32C of what
 * follows, i64 offset, i32 count, then count entries: i64 producer id,
 * i16 epoch, i64 last write ms, i64 first offset of the producer's open
 * transaction (-1: none), u8 n (0..5; 0 for a producer only a marker told
 * about: its epoch fences older ones, S17), n x (i32 first seq, i32 last
 * seq, i64 first offset, i64 last offset), oldest batch first. Version 1
 * ("RPS1": no transaction field, n >= 1) still decodes, but st__pt_load
 * discards such a file (it does not say which transactions are open): the
 * replay from the log start rebuilds everything once, then version 2
 * snapshots are written (S15, S23).
 */
#include "storage/storage_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define ST_SNAP_MAGIC1 0x52505331u /* "RPS1" */
#define ST_SNAP_MAGIC 0x52505332u  /* "RPS2" */
#define ST_SNAP_KEEP 2

int32_t st_seq_add(int32_t seq, int32_t delta) {
    if (seq > INT32_MAX - delta) return delta - (INT32_MAX - seq) - 1;
    return seq + delta;
}

static size_t pt_slot(const st_ptab_t *t, int64_t pid) {
    uint64_t x = (uint64_t)pid * 0x9E3779B97F4A7C15ull;
    return (size_t)(x >> 32) & (t->pt_nb - 1);
}

const st_prod_t *st_pt_find(const st_ptab_t *t, int64_t pid) {
    if (!t->pt_nb) return NULL;
    for (st_prod_t *p = t->pt_b[pt_slot(t, pid)]; p; p = p->p_next)
        if (p->p_id == pid) return p;
    return NULL;
}

static void pt_grow(st_ptab_t *t) {
    size_t nb = t->pt_nb ? t->pt_nb * 2 : 16;
    st_prod_t **b = calloc(nb, sizeof(*b));
    if (!b) abort();
    st_ptab_t n = {b, nb, t->pt_n};
    for (size_t i = 0; i < t->pt_nb; i++) {
        st_prod_t *p = t->pt_b[i];
        while (p) {
            st_prod_t *next = p->p_next;
            size_t s = pt_slot(&n, p->p_id);
            p->p_next = b[s];
            b[s] = p;
            p = next;
        }
    }
    free(t->pt_b);
    *t = n;
}

static st_prod_t *pt_get(st_ptab_t *t, int64_t pid) {
    st_prod_t *p = (st_prod_t *)st_pt_find(t, pid);
    if (p) return p;
    if (t->pt_n + 1 > t->pt_nb) pt_grow(t);
    p = calloc(1, sizeof(*p));
    if (!p) abort();
    p->p_id = pid;
    p->p_epoch = -1;
    p->p_txn_first = -1;
    size_t s = pt_slot(t, pid);
    p->p_next = t->pt_b[s];
    t->pt_b[s] = p;
    t->pt_n++;
    return p;
}

int st_pt_check(const st_ptab_t *t, int64_t pid, int16_t epoch, int32_t first_seq, int32_t last_seq,
                int64_t *dup_first, int64_t *dup_last) {
    const st_prod_t *p = st_pt_find(t, pid);
    if (p && epoch < p->p_epoch) return RB_INVALID_PRODUCER_EPOCH; /* also after a fencing marker (S17) */
    if (!p || p->p_n == 0) return first_seq == 0 ? 0 : RB_UNKNOWN_PRODUCER_ID;
    if (epoch > p->p_epoch) return first_seq == 0 ? 0 : RB_OUT_OF_ORDER_SEQUENCE_NUMBER;
    for (int i = 0; i < p->p_n; i++) {
        const st_pbatch_t *b = &p->p_b[i];
        if (b->pb_first_seq == first_seq && b->pb_last_seq == last_seq) {
            *dup_first = b->pb_first_off;
            *dup_last = b->pb_last_off;
            return RB_DUPLICATE_SEQUENCE_NUMBER;
        }
    }
    if (first_seq != st_seq_add(p->p_b[p->p_n - 1].pb_last_seq, 1)) return RB_OUT_OF_ORDER_SEQUENCE_NUMBER;
    return 0;
}

void st_pt_record(st_ptab_t *t, int64_t pid, int16_t epoch, int32_t first_seq, int32_t last_seq, int64_t first_off,
                  int64_t last_off, int64_t now_ms) {
    st_prod_t *p = pt_get(t, pid);
    if (epoch != p->p_epoch) {
        p->p_epoch = epoch;
        p->p_n = 0;
    }
    if (p->p_n == ST_PROD_WINDOW) {
        memmove(&p->p_b[0], &p->p_b[1], sizeof(p->p_b[0]) * (ST_PROD_WINDOW - 1));
        p->p_n--;
    }
    st_pbatch_t *b = &p->p_b[p->p_n++];
    b->pb_first_seq = first_seq;
    b->pb_last_seq = last_seq;
    b->pb_first_off = first_off;
    b->pb_last_off = last_off;
    if (now_ms > p->p_last_ms) p->p_last_ms = now_ms;
}

void st_pt_fence(st_ptab_t *t, int64_t pid, int16_t epoch, int64_t now_ms) {
    const st_prod_t *c = st_pt_find(t, pid);
    if (c && epoch <= c->p_epoch) return;
    st_prod_t *p = pt_get(t, pid);
    p->p_epoch = epoch;
    p->p_n = 0; /* the new epoch's first batch starts at sequence 0 */
    p->p_last_ms = now_ms;
}

void st_pt_set_txn(st_ptab_t *t, int64_t pid, int64_t first) {
    if (first < 0 && !st_pt_find(t, pid)) return;
    pt_get(t, pid)->p_txn_first = first;
}

void st_pt_expire(st_ptab_t *t, int64_t now_ms, int64_t max_idle_ms) {
    for (size_t i = 0; i < t->pt_nb; i++) {
        for (st_prod_t **pp = &t->pt_b[i]; *pp;) {
            st_prod_t *p = *pp;
            if (now_ms - p->p_last_ms >= max_idle_ms && p->p_txn_first < 0) {
                *pp = p->p_next;
                free(p);
                t->pt_n--;
            } else {
                pp = &p->p_next;
            }
        }
    }
}

void st_pt_free(st_ptab_t *t) {
    for (size_t i = 0; i < t->pt_nb; i++) {
        st_prod_t *p = t->pt_b[i];
        while (p) {
            st_prod_t *n = p->p_next;
            free(p);
            p = n;
        }
    }
    free(t->pt_b);
    memset(t, 0, sizeof(*t));
}

/* ---- per log ------------------------------------------------------------------- */

int st_log_producer(st_log_t *l, int64_t pid, int16_t *epoch, int32_t *last_seq) {
    pthread_mutex_lock(&l->l_mutex);
    const st_prod_t *p = st_pt_find(&l->l_prods, pid);
    int rc = RB_ERR_NOT_FOUND;
    if (p && p->p_n > 0) {
        *epoch = p->p_epoch;
        *last_seq = p->p_b[p->p_n - 1].pb_last_seq;
        rc = 0;
    }
    pthread_mutex_unlock(&l->l_mutex);
    return rc;
}

void st_mgr_set_producer_expiration_ms(st_mgr_t *m, int64_t ms) {
    atomic_store(&m->m_prod_expire_ms, ms < 1 ? 1 : ms);
}

void st__pt_maybe_expire(st_log_t *l, int64_t now_ms) {
    if (now_ms < l->l_prods_expire_at || l->l_prods.pt_n == 0) return;
    int64_t exp = atomic_load(&l->l_mgr->m_prod_expire_ms);
    st_pt_expire(&l->l_prods, now_ms, exp);
    l->l_prods_expire_at = now_ms + RB_MIN(exp, ST_PRODUCER_EXPIRE_CHECK_MS);
}

int st_log_producers(st_log_t *l, st_producer_info_t **out, int *n) {
    pthread_mutex_lock(&l->l_mutex);
    *n = 0;
    *out = calloc(l->l_prods.pt_n ? l->l_prods.pt_n : 1, sizeof(**out));
    if (!*out) abort();
    for (size_t i = 0; i < l->l_prods.pt_nb; i++) {
        for (const st_prod_t *p = l->l_prods.pt_b[i]; p; p = p->p_next) {
            if (p->p_n == 0) continue;
            st_producer_info_t *o = &(*out)[(*n)++];
            o->pid = p->p_id;
            o->epoch = p->p_epoch;
            o->last_seq = p->p_b[p->p_n - 1].pb_last_seq;
            o->last_ms = p->p_last_ms;
        }
    }
    pthread_mutex_unlock(&l->l_mutex);
    return 0;
}

/* ---- snapshots ------------------------------------------------------------------- */

#define SNAP_HDR 20
#define SNAP_ENT_FIXED1 19 /* version 1: no transaction field */
#define SNAP_ENT_FIXED 27
#define SNAP_BATCH 24

int st_pt_encode(const st_ptab_t *t, int64_t offset, rb_buf_t *out) {
    size_t cap = SNAP_HDR + t->pt_n * (SNAP_ENT_FIXED + ST_PROD_WINDOW * SNAP_BATCH);
    rb_buf_reserve(out, cap);
    uint8_t *p = out->p + out->len, *q = p + SNAP_HDR;
    int32_t count = 0;
    for (size_t i = 0; i < t->pt_nb; i++) {
        for (const st_prod_t *e = t->pt_b[i]; e; e = e->p_next) {
            rb_wbe64(q, (uint64_t)e->p_id);
            rb_wbe16(q + 8, (uint16_t)e->p_epoch);
            rb_wbe64(q + 10, (uint64_t)e->p_last_ms);
            rb_wbe64(q + 18, (uint64_t)e->p_txn_first);
            q[26] = (uint8_t)e->p_n;
            q += SNAP_ENT_FIXED;
            for (int k = 0; k < e->p_n; k++) {
                rb_wbe32(q, (uint32_t)e->p_b[k].pb_first_seq);
                rb_wbe32(q + 4, (uint32_t)e->p_b[k].pb_last_seq);
                rb_wbe64(q + 8, (uint64_t)e->p_b[k].pb_first_off);
                rb_wbe64(q + 16, (uint64_t)e->p_b[k].pb_last_off);
                q += SNAP_BATCH;
            }
            count++;
        }
    }
    rb_wbe32(p, ST_SNAP_MAGIC);
    rb_wbe64(p + 8, (uint64_t)offset);
    rb_wbe32(p + 16, (uint32_t)count);
    rb_wbe32(p + 4, rb_crc32c(0, p + 8, (size_t)(q - p) - 8));
    out->len += (size_t)(q - p);
    return 0;
}

int st_pt_decode_v(st_ptab_t *t, const uint8_t *p, size_t len, int64_t *offset, int *version) {
    if (len < SNAP_HDR) return RB_CORRUPT_MESSAGE;
    int v = rb_be32(p) == ST_SNAP_MAGIC ? 2 : rb_be32(p) == ST_SNAP_MAGIC1 ? 1 : 0;
    if (!v) return RB_CORRUPT_MESSAGE;
    if (version) *version = v;
    if (rb_be32(p + 4) != rb_crc32c(0, p + 8, len - 8)) return RB_CORRUPT_MESSAGE;
    *offset = (int64_t)rb_be64(p + 8);
    int32_t count = (int32_t)rb_be32(p + 16);
    size_t at = SNAP_HDR, fixed = v == 2 ? SNAP_ENT_FIXED : SNAP_ENT_FIXED1;
    if (count < 0) return RB_CORRUPT_MESSAGE;
    for (int32_t i = 0; i < count; i++) {
        if (len - at < fixed) return RB_CORRUPT_MESSAGE;
        const uint8_t *q = p + at;
        int64_t pid = (int64_t)rb_be64(q);
        int16_t epoch = (int16_t)rb_be16(q + 8);
        int64_t last_ms = (int64_t)rb_be64(q + 10);
        int64_t txn_first = v == 2 ? (int64_t)rb_be64(q + 18) : -1;
        int n = q[fixed - 1];
        at += fixed;
        if (n < (v == 2 ? 0 : 1) || n > ST_PROD_WINDOW || pid < 0 || txn_first < -1 ||
            len - at < (size_t)n * SNAP_BATCH || st_pt_find(t, pid))
            return RB_CORRUPT_MESSAGE;
        if (n == 0) st_pt_fence(t, pid, epoch, last_ms); /* epoch only (a marker's) */
        for (int k = 0; k < n; k++, at += SNAP_BATCH) {
            q = p + at;
            st_pt_record(t, pid, epoch, (int32_t)rb_be32(q), (int32_t)rb_be32(q + 4), (int64_t)rb_be64(q + 8),
                         (int64_t)rb_be64(q + 16), last_ms);
        }
        st_prod_t *e = pt_get(t, pid);
        e->p_last_ms = last_ms;
        e->p_txn_first = txn_first;
    }
    return at == len ? 0 : RB_CORRUPT_MESSAGE;
}

int st_pt_decode(st_ptab_t *t, const uint8_t *p, size_t len, int64_t *offset) {
    return st_pt_decode_v(t, p, len, offset, NULL);
}

static int64_t snap_name_offset(const char *nm) {
    size_t n = strlen(nm), e = strlen(ST_SNAP_EXT);
    if (n != 20 + e || strcmp(nm + 20, ST_SNAP_EXT)) return -1;
    int64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (nm[i] < '0' || nm[i] > '9' || v > (INT64_MAX - 9) / 10) return -1;
        v = v * 10 + (nm[i] - '0');
    }
    return v;
}

static int cmp_desc(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Snapshot offsets present in dir, newest first. */
static int snap_list(const char *dir, int64_t **out, int *nout) {
    *out = NULL;
    *nout = 0;
    DIR *d = opendir(dir);
    if (!d) return -errno;
    int cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        int64_t off = snap_name_offset(de->d_name);
        if (off < 0) continue;
        if (*nout == cap) {
            cap = cap ? cap * 2 : 8;
            int64_t *n = realloc(*out, sizeof(*n) * (size_t)cap);
            if (!n) abort();
            *out = n;
        }
        (*out)[(*nout)++] = off;
    }
    closedir(d);
    if (*nout > 1) qsort(*out, (size_t)*nout, sizeof(**out), cmp_desc);
    return 0;
}

static void snap_unlink(const char *dir, int64_t off) {
    char path[4096];
    st__seg_path(path, sizeof(path), dir, off, ST_SNAP_EXT);
    if (unlink(path) < 0 && errno != ENOENT) rb_warn("storage: removing %s: %s", path, strerror(errno));
}

/* Writes `<offset>.snapshot` (tmp + rename, no fsync: a torn or missing file
 * is detected by its CRC and rebuilt from the log), then keeps only the
 * ST_SNAP_KEEP newest and the newest at or below each of the last two
 * segments' bases. Caller holds l_mutex (or owns l exclusively). */
int st__pt_snapshot(st_log_t *l, int64_t offset, int64_t now_ms) {
    st_pt_expire(&l->l_prods, now_ms, atomic_load(&l->l_mgr->m_prod_expire_ms));
    rb_buf_t b;
    rb_buf_init(&b);
    int rc = st_pt_encode(&l->l_prods, offset, &b);
    char path[4096], tmp[4200];
    st__seg_path(path, sizeof(path), l->l_dir, offset, ST_SNAP_EXT);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = -1;
    if (rc == 0 && rb_failpoint("st.snapshot.write")) rc = -EIO;
    if (rc == 0 && (fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) rc = -errno;
    for (size_t at = 0; rc == 0 && at < b.len;) {
        ssize_t w = write(fd, b.p + at, b.len - at);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) rc = w < 0 ? -errno : -EIO;
        else at += (size_t)w;
    }
    if (fd >= 0 && close(fd) < 0 && rc == 0) rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0) rc = -errno;
    rb_buf_free(&b);
    if (rc) {
        if (fd >= 0) unlink(tmp);
        rb_warn("storage: %s: producer snapshot at %" PRId64 " not written (%s); it is rebuilt from the log",
                l->l_dir, offset, rc < 0 ? strerror(-rc) : rb_err_name(rc));
        return rc;
    }
    int64_t *offs;
    int n;
    if (snap_list(l->l_dir, &offs, &n) == 0) {
        /* also the newest at or below the bases of the last two segments:
         * an unclean open rebuilds their .txnindex from such a snapshot
         * (S23) instead of replaying the whole log */
        int64_t keep[2] = {l->l_segs[l->l_nsegs - 1]->seg_base, l->l_nsegs > 1 ? l->l_segs[l->l_nsegs - 2]->seg_base : -1};
        bool kept[2] = {false, false};
        for (int i = 0; i < n; i++) {
            bool k = i < ST_SNAP_KEEP;
            for (int j = 0; j < 2; j++) {
                if (!kept[j] && offs[i] <= keep[j]) {
                    kept[j] = true;
                    k = true;
                }
            }
            if (!k) snap_unlink(l->l_dir, offs[i]);
        }
        free(offs);
    }
    return 0;
}

static int snap_read(const char *dir, int64_t off, st_ptab_t *t) {
    char path[4096];
    st__seg_path(path, sizeof(path), dir, off, ST_SNAP_EXT);
    char *data;
    size_t len;
    int rc = rb_read_file(path, &data, &len);
    if (rc < 0) return rc;
    int64_t inner = -1;
    int version = 0;
    rc = st_pt_decode_v(t, (const uint8_t *)data, len, &inner, &version);
    free(data);
    if (rc == 0 && inner != off) rc = RB_CORRUPT_MESSAGE;
    if (rc == 0 && version != 2) rc = RB_UNSUPPORTED_VERSION; /* no open transactions in it (S23) */
    if (rc) st_pt_free(t);
    return rc;
}

/* Replays every batch with base offset >= from in segment s, as the append
 * did: producer batches into the producer state (S15), transactional ones
 * into the open transactions, markers closing them and fencing older epochs
 * (S17); an abort goes to the segment's .txnindex when it is being rebuilt
 * (S23). Markers are read whole (they are tiny). */
/* Calls fn for every batch header of s in order (fn returns 0 to go on,
 * else stops the scan with that value); p is the header's bytes in r,
 * which fn may read further. */
typedef int (*seg_scan_fn)(void *ctx, st_seg_t *s, st_frd_t *r, int64_t pos, kp_batch_hdr_t *h, const uint8_t *p);

static int seg_scan(st_seg_t *s, seg_scan_fn fn, void *ctx) {
    if (s->seg_size == 0) return 0;
    st_frd_t r;
    st__frd_init(&r, s->seg_fd, s->seg_size, 4096); /* headers only: small reads */
    int64_t pos = 0;
    int rc = 0;
    while (pos < s->seg_size && rc == 0) {
        int err = 0;
        const uint8_t *p = st__frd_get(&r, pos, KP_BATCH_HEADER_SIZE, &err);
        if (!p) {
            rc = err;
            break;
        }
        kp_batch_hdr_t h;
        if (st__hdr_decode(p, &h) != 0) break; /* recovery already bounded the segment */
        int64_t sz = st__hdr_size(&h);
        rc = fn(ctx, s, &r, pos, &h, p);
        pos += sz;
    }
    st__frd_free(&r);
    return rc;
}

typedef struct {
    st_log_t *l;
    int64_t from, now_ms;
} replay_ctx_t;

static int replay_batch(void *ctx, st_seg_t *s, st_frd_t *r, int64_t pos, kp_batch_hdr_t *hp, const uint8_t *p) {
    replay_ctx_t *x = ctx;
    st_log_t *l = x->l;
    kp_batch_hdr_t h = *hp;
    if (h.base_offset < x->from || h.producer_id < 0) return 0;
    bool control = h.attributes & KP_ATTR_CONTROL;
    if (h.attributes & KP_ATTR_TRANSACTIONAL) {
        if (control) {
            int64_t sz = st__hdr_size(&h);
            int err = 0;
            p = sz <= 4096 ? st__frd_get(r, pos, (size_t)sz, &err) : NULL;
            if (!p) return err ? err : RB_CORRUPT_MESSAGE;
            st__hdr_decode(p, &h); /* the buffer may have moved */
        }
        st__txn_apply(l, p, &h, s->seg_xrebuild ? s : NULL, s->seg_xrebuild);
    }
    /* a replayed batch counts as written now: its timestamps are the
     * client's, and expiring on them could drop a live producer */
    if (control)
        st_pt_fence(&l->l_prods, h.producer_id, h.producer_epoch, x->now_ms);
    else
        st_pt_record(&l->l_prods, h.producer_id, h.producer_epoch, h.base_sequence,
                     st_seq_add(h.base_sequence, h.last_offset_delta), h.base_offset, st__hdr_last(&h), x->now_ms);
    return 0;
}

/* ---- the snapshot's open transactions (S23) ----
 * An open transaction a snapshot at S names (first offset F < S) must still
 * have a data batch in [max(F, log start), S): the cleaner removes a
 * transaction's marker only with all its batches (S21), retention and
 * DeleteRecords remove whole segments; one whose batches are all gone may
 * have lost its marker too, and the replay from S would never close it (the
 * LSO stuck for good). Such an entry is dropped before the replay; a batch
 * of the producer at or after S opens its transaction again. */
typedef struct {
    int64_t pid, first;
    bool found;
} snap_open_t;

typedef struct {
    snap_open_t *v;
    int n;
    int64_t lo, snap;
} snap_check_t;

static int snap_check_batch(void *ctx, st_seg_t *s, st_frd_t *r, int64_t pos, kp_batch_hdr_t *h, const uint8_t *p) {
    (void)s, (void)r, (void)pos, (void)p;
    snap_check_t *x = ctx;
    if (h->base_offset >= x->snap) return 1;
    if (h->base_offset < x->lo || h->producer_id < 0 || !(h->attributes & KP_ATTR_TRANSACTIONAL) ||
        (h->attributes & KP_ATTR_CONTROL))
        return 0;
    for (int i = 0; i < x->n; i++)
        if (x->v[i].pid == h->producer_id && h->base_offset >= x->v[i].first) x->v[i].found = true;
    return 0;
}

static int snap_check_open(st_log_t *l, int64_t snap) {
    snap_check_t x = {NULL, 0, INT64_MAX, snap};
    int cap = 0;
    for (size_t b = 0; b < l->l_prods.pt_nb; b++)
        for (const st_prod_t *p = l->l_prods.pt_b[b]; p; p = p->p_next) {
            if (p->p_txn_first < 0 || p->p_txn_first >= snap) continue;
            if (x.n == cap) {
                cap = cap ? cap * 2 : 8;
                x.v = realloc(x.v, (size_t)cap * sizeof(*x.v));
                if (!x.v) abort();
            }
            x.v[x.n++] = (snap_open_t){p->p_id, p->p_txn_first, false};
            if (p->p_txn_first < x.lo) x.lo = p->p_txn_first;
        }
    if (!x.n) return 0;
    if (x.lo < l->l_start) x.lo = l->l_start;
    int rc = 0;
    for (int i = 0; i < l->l_nsegs && rc == 0; i++) {
        st_seg_t *s = l->l_segs[i];
        if (s->seg_base >= snap) break;
        if (i + 1 < l->l_nsegs && l->l_segs[i + 1]->seg_base <= x.lo) continue;
        rc = seg_scan(s, snap_check_batch, &x);
    }
    if (rc > 0) rc = 0;
    for (int i = 0; i < x.n && rc == 0; i++) {
        if (x.v[i].found) continue;
        rb_info("storage: %s: producer %" PRId64 ": the snapshot's open transaction at %" PRId64
                " has no batch left in the log: dropped",
                l->l_dir, x.v[i].pid, x.v[i].first);
        st_pt_set_txn(&l->l_prods, x.v[i].pid, -1);
    }
    free(x.v);
    return rc;
}

/* At open, after recovery and after st__xidx_load marked the segments whose
 * .txnindex must be rebuilt (the caller owns l): the newest valid snapshot at
 * or below the log end offset and at or below the first such segment's base
 * (the replay must pass over all of them), then the batches after it. */
int st__pt_load(st_log_t *l) {
    int64_t *offs;
    int n;
    int rc = snap_list(l->l_dir, &offs, &n);
    if (rc < 0) return rc;
    int64_t limit = l->l_leo;
    for (int i = 0; i < l->l_nsegs; i++) {
        if (l->l_segs[i]->seg_xrebuild) {
            limit = RB_MIN(limit, l->l_segs[i]->seg_base);
            break;
        }
    }
    int64_t from = -1;
    for (int i = 0; i < n && from < 0; i++) {
        if (offs[i] > l->l_leo) {
            snap_unlink(l->l_dir, offs[i]); /* describes batches recovery truncated away */
            continue;
        }
        if (offs[i] > limit) continue; /* valid, but past a .txnindex to rebuild */
        int r = snap_read(l->l_dir, offs[i], &l->l_prods);
        if (r == 0) {
            from = offs[i];
        } else {
            if (r == RB_UNSUPPORTED_VERSION)
                rb_info("storage: %s: producer snapshot %" PRId64 " has the old format; removed, rebuilt from the log",
                        l->l_dir, offs[i]);
            else
                rb_warn("storage: %s: producer snapshot %" PRId64 " unreadable (%s); removed", l->l_dir, offs[i],
                        r < 0 ? strerror(-r) : rb_err_name(r));
            snap_unlink(l->l_dir, offs[i]);
        }
    }
    free(offs);
    int64_t now = rb_now_ms();
    if (from < 0) from = 0;
    if (from > 0) rc = snap_check_open(l, from);
    st__txn_from_prods(l); /* the snapshot's open transactions */
    replay_ctx_t x = {l, from, now};
    for (int i = 0; i < l->l_nsegs && rc == 0; i++) {
        st_seg_t *s = l->l_segs[i];
        if (i + 1 < l->l_nsegs && l->l_segs[i + 1]->seg_base <= from) continue;
        rc = seg_scan(s, replay_batch, &x);
    }
    st_pt_expire(&l->l_prods, now, atomic_load(&l->l_mgr->m_prod_expire_ms));
    return rc;
}
