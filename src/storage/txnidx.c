/*
 * txnidx.c — a partition's transactions (storage.h S17-S18): the open
 * transaction of each producer (its first offset), the list of aborted
 * transactions (producer, first offset, abort marker offset) that
 * read_committed fetches return, the last stable offset, the per-segment
 * `.txnindex` files persisting the aborted list (S22) and their check and
 * rebuild at open (S23; the replay itself is producers.c's, which also
 * restores the open transactions from the snapshot), and transaction markers
 * (control batches) built and parsed in Kafka's format.
 *
 * Both tables live under l_mutex and are small: one entry per producer with
 * an open transaction, one per aborted transaction still in the log. The
 * aborted list is ordered by marker offset (markers are appended in order).
 * A third, for the cleaner (S19), holds each producer's last marker offset;
 * the cleaner drops the entry of an abort marker it removed (S21).
 */
#include "storage/storage_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- markers ---------------------------------------------------------------------------- */

void st_marker_build(rb_buf_t *out, int64_t pid, int16_t epoch, bool commit, int32_t coordinator_epoch,
                     int64_t now_ms) {
    uint8_t key[4], val[6];
    rb_wbe16(key, 0);
    rb_wbe16(key + 2, commit ? 1 : 0);
    rb_wbe16(val, 0);
    rb_wbe32(val + 2, (uint32_t)coordinator_epoch);
    kp_record_in_t rec = {0};
    rec.key.p = key;
    rec.key.len = 4;
    rec.value.p = val;
    rec.value.len = 6;
    rec.timestamp = now_ms;
    kp_batch_build(out, 0, KP_COMP_NONE, &rec, 1, pid, epoch, -1, KP_ATTR_TRANSACTIONAL | KP_ATTR_CONTROL);
}

int st_marker_parse(const uint8_t *batch, size_t len, bool *commit) {
    if (len <= KP_BATCH_HEADER_SIZE) return RB_CORRUPT_MESSAGE;
    rb_rd_t rd;
    rb_rd_init(&rd, batch + KP_BATCH_HEADER_SIZE, len - KP_BATCH_HEADER_SIZE);
    kp_record_t r;
    if (kp_record_next(&rd, &r) || r.key.len < 4) return RB_CORRUPT_MESSAGE;
    int16_t type = (int16_t)rb_be16(r.key.p + 2);
    if (type != 0 && type != 1) return RB_CORRUPT_MESSAGE;
    *commit = type == 1;
    return 0;
}

/* ---- .txnindex files (S22) ------------------------------------------------------------- */

/* Kafka's entry: i16 version 0, i64 producer id, i64 first offset, i64 last
 * offset (the abort marker's), i64 last stable offset after it; big-endian. */
void st__xidx_encode(uint8_t *p, const st_aborted_txn_t *a, int64_t lso) {
    rb_wbe16(p, 0);
    rb_wbe64(p + 2, (uint64_t)a->pid);
    rb_wbe64(p + 10, (uint64_t)a->first);
    rb_wbe64(p + 18, (uint64_t)a->last);
    rb_wbe64(p + 26, (uint64_t)lso);
}

/* Appends one entry to s's file (l_mutex held). A failed write removes the
 * file, so the next open rebuilds it from the segment (S23), and writes no
 * more entries for s; the in-memory list stays right. The dir entry change
 * reaches the disk before the marker counts as durable (the flusher's dir
 * sync, S4); failing to remove it makes the log fatal. */
static void xidx_append(st_log_t *l, st_seg_t *s, const st_aborted_txn_t *a, int64_t lso) {
    if (s->seg_xbad) return;
    uint8_t e[ST_XIDX_ENTRY];
    st__xidx_encode(e, a, lso);
    int rc = -rb_failpoint("st.txnindex.write");
    size_t at = 0;
    while (rc == 0 && at < sizeof(e)) {
        ssize_t w = pwrite(s->seg_xfd, e + at, sizeof(e) - at, (off_t)s->seg_xn * ST_XIDX_ENTRY + (off_t)at);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) rc = w < 0 ? -errno : -EIO;
        else at += (size_t)w;
    }
    if (rc == 0) {
        s->seg_xn++;
        return;
    }
    char path[4096];
    st__seg_path(path, sizeof(path), l->l_dir, s->seg_base, ST_XIDX_EXT);
    rb_warn("storage: %s: .txnindex write failed (%s); %s removed, rebuilt at the next open", l->l_dir,
            strerror(-rc), path);
    s->seg_xbad = true;
    if (unlink(path) < 0 && errno != ENOENT) {
        rb_error("storage: %s: cannot remove %s (%s): log is fatal", l->l_dir, path, strerror(errno));
        if (!l->l_fatal) {
            l->l_fatal = true;
            atomic_fetch_add(&l->l_mgr->m_fatal, 1);
        }
    }
    l->l_dirsync_gen++;
}

int st__xidx_read(st_seg_t *s, int64_t next_base, st_aborted_txn_t **out, int *n) {
    *out = NULL;
    *n = 0;
    struct stat st;
    if (fstat(s->seg_xfd, &st) < 0) return -errno;
    /* one entry per marker, each marker an offset and a whole batch of the
     * segment: a file claiming more is damaged (and never malloc'd) */
    int64_t most = RB_MIN(next_base - s->seg_base, s->seg_size / KP_BATCH_HEADER_SIZE);
    if (st.st_size % ST_XIDX_ENTRY || st.st_size / ST_XIDX_ENTRY > RB_MIN(most, INT32_MAX / 2)) return 1;
    int cnt = (int)(st.st_size / ST_XIDX_ENTRY);
    if (cnt == 0) {
        s->seg_xn = s->seg_xsynced = 0;
        return 0;
    }
    uint8_t *buf = malloc((size_t)st.st_size);
    st_aborted_txn_t *v = malloc((size_t)cnt * sizeof(*v));
    if (!buf || !v) abort();
    int rc = 0;
    for (size_t at = 0; at < (size_t)st.st_size;) {
        ssize_t r = pread(s->seg_xfd, buf + at, (size_t)st.st_size - at, (off_t)at);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            rc = r < 0 ? -errno : 1; /* shrank under us: treat as damaged */
            break;
        }
        at += (size_t)r;
    }
    int64_t prev = -1;
    for (int i = 0; i < cnt && rc == 0; i++) {
        const uint8_t *p = buf + (size_t)i * ST_XIDX_ENTRY;
        st_aborted_txn_t *a = &v[i];
        a->pid = (int64_t)rb_be64(p + 2);
        a->first = (int64_t)rb_be64(p + 10);
        a->last = (int64_t)rb_be64(p + 18);
        int64_t lso = (int64_t)rb_be64(p + 26);
        /* version 0; the marker inside the segment, after the previous one;
         * the transaction starts at or before it; the LSO after the marker */
        if (rb_be16(p) != 0 || a->pid < 0 || a->last < s->seg_base || a->last >= next_base || a->last <= prev ||
            a->first < 0 || a->first > a->last || lso < 0 || lso > a->last + 1)
            rc = 1;
        prev = a->last;
    }
    free(buf);
    if (rc) {
        free(v);
        return rc;
    }
    s->seg_xn = s->seg_xsynced = (uint32_t)cnt;
    *out = v;
    *n = cnt;
    return 0;
}

int st__xidx_copy(const char *dst_dir, st_seg_t *dst, st_seg_t *src, const st_aborted_txn_t *drop, int ndrop) {
    if (dst->seg_xbad) return 0;
    if (src->seg_xbad) { /* no complete file to copy: the next open rebuilds it (S23) */
        char path[4096];
        st__seg_path(path, sizeof(path), dst_dir, dst->seg_base, ST_XIDX_EXT);
        if (unlink(path) < 0 && errno != ENOENT) return -errno;
        dst->seg_xbad = true;
        return 0;
    }
    size_t len = (size_t)src->seg_xn * ST_XIDX_ENTRY;
    if (len == 0) return 0;
    uint8_t *buf = malloc(len);
    if (!buf) abort();
    int rc = 0;
    for (size_t at = 0; at < len && rc == 0;) {
        ssize_t r = pread(src->seg_xfd, buf + at, len - at, (off_t)at);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) rc = r < 0 ? -errno : -EIO;
        else at += (size_t)r;
    }
    /* the entries of abort markers the cleaner removed go with them (S21) */
    size_t keep = 0;
    for (size_t at = 0; at < len && rc == 0; at += ST_XIDX_ENTRY) {
        int64_t pid = (int64_t)rb_be64(buf + at + 2), last = (int64_t)rb_be64(buf + at + 18);
        bool gone = false;
        for (int i = 0; i < ndrop && !gone; i++) gone = drop[i].pid == pid && drop[i].last == last;
        if (gone) continue;
        if (keep != at) memmove(buf + keep, buf + at, ST_XIDX_ENTRY);
        keep += ST_XIDX_ENTRY;
    }
    len = keep;
    off_t to = (off_t)dst->seg_xn * ST_XIDX_ENTRY;
    for (size_t at = 0; at < len && rc == 0;) {
        ssize_t w = pwrite(dst->seg_xfd, buf + at, len - at, to + (off_t)at);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) rc = w < 0 ? -errno : -EIO;
        else at += (size_t)w;
    }
    free(buf);
    if (rc == 0) dst->seg_xn += (uint32_t)(len / ST_XIDX_ENTRY);
    return rc;
}

/* ---- the tables (l_mutex held) ---------------------------------------------------------- */

static int topen_find(const st_log_t *l, int64_t pid) {
    for (int i = 0; i < l->l_ntopen; i++)
        if (l->l_topen[i].pid == pid) return i;
    return -1;
}

static void *grow(void *p, int *cap, size_t elem) {
    int nc = *cap ? *cap * 2 : 8;
    void *np = realloc(p, (size_t)nc * elem);
    if (!np) abort();
    *cap = nc;
    return np;
}

/* S19: the cleaner keeps each producer's last marker (it may be all that
 * tells a replay the producer's epoch); markers come in offset order. */
static void txn_note_marker(st_log_t *l, int64_t pid, int64_t off) {
    for (int i = 0; i < l->l_nlastmk; i++)
        if (l->l_lastmk[i].pid == pid) {
            l->l_lastmk[i].first = off;
            return;
        }
    if (l->l_nlastmk == l->l_lastmk_cap) l->l_lastmk = grow(l->l_lastmk, &l->l_lastmk_cap, sizeof(*l->l_lastmk));
    l->l_lastmk[l->l_nlastmk].pid = pid;
    l->l_lastmk[l->l_nlastmk].first = off;
    l->l_nlastmk++;
}

int64_t st__txn_last_marker(const st_log_t *l, int64_t pid) {
    for (int i = 0; i < l->l_nlastmk; i++)
        if (l->l_lastmk[i].pid == pid) return l->l_lastmk[i].first;
    return -1;
}

static void topen_add(st_log_t *l, int64_t pid, int64_t first) {
    if (l->l_ntopen == l->l_topen_cap) l->l_topen = grow(l->l_topen, &l->l_topen_cap, sizeof(*l->l_topen));
    l->l_topen[l->l_ntopen].pid = pid;
    l->l_topen[l->l_ntopen].first = first;
    l->l_ntopen++;
}

static void tab_push(st_log_t *l, const st_aborted_txn_t *a) {
    if (l->l_ntab == l->l_tab_cap) l->l_tab = grow(l->l_tab, &l->l_tab_cap, sizeof(*l->l_tab));
    l->l_tab[l->l_ntab++] = *a;
}

/* Drops what retention or DeleteRecords put wholly below the start (S18). */
static void tab_drop_below_start(st_log_t *l) {
    int drop = 0;
    while (drop < l->l_ntab && l->l_tab[drop].last < l->l_start) drop++;
    if (drop) {
        memmove(l->l_tab, l->l_tab + drop, (size_t)(l->l_ntab - drop) * sizeof(*l->l_tab));
        l->l_ntab -= drop;
    }
}

void st__txn_apply(st_log_t *l, const uint8_t *batch, const kp_batch_hdr_t *h, st_seg_t *xseg, bool list) {
    if (!(h->attributes & KP_ATTR_TRANSACTIONAL) || h->producer_id < 0) return;
    int i = topen_find(l, h->producer_id);
    if (!(h->attributes & KP_ATTR_CONTROL)) {
        if (i >= 0) return; /* already open: its first offset stands */
        topen_add(l, h->producer_id, h->base_offset);
        st_pt_set_txn(&l->l_prods, h->producer_id, h->base_offset); /* snapshotted (S15) */
        return;
    }
    txn_note_marker(l, h->producer_id, h->base_offset);
    bool commit = true;
    if (batch && st_marker_parse(batch, (size_t)st__hdr_size(h), &commit) != 0) {
        rb_warn("storage: %s: unreadable transaction marker at %lld ignored", l->l_dir, (long long)h->base_offset);
        return;
    }
    if (i < 0) return; /* a marker for a partition with nothing open: nothing to close */
    int64_t first = l->l_topen[i].first;
    l->l_topen[i] = l->l_topen[--l->l_ntopen];
    st_pt_set_txn(&l->l_prods, h->producer_id, -1);
    if (!commit) { /* S18, S22 */
        st_aborted_txn_t a = {h->producer_id, first, h->base_offset};
        int64_t lso = h->base_offset + 1; /* Kafka's: the LSO once this one is closed */
        for (int k = 0; k < l->l_ntopen; k++)
            if (l->l_topen[k].first < lso) lso = l->l_topen[k].first;
        if (xseg) xidx_append(l, xseg, &a, lso);
        if (list) tab_push(l, &a);
    }
    tab_drop_below_start(l);
}

void st__txn_on_batch(st_log_t *l, const uint8_t *batch, const kp_batch_hdr_t *h) {
    st__txn_apply(l, batch, h, l->l_segs[l->l_nsegs - 1], true);
}

int64_t st__txn_lso(const st_log_t *l) {
    int64_t lso = l->l_hw;
    for (int i = 0; i < l->l_ntopen; i++)
        if (l->l_topen[i].first < lso) lso = l->l_topen[i].first;
    return lso;
}

void st__txn_forget_aborted(st_log_t *l, int64_t pid, int64_t marker_off) {
    for (int i = 0; i < l->l_ntab; i++) {
        if (l->l_tab[i].pid != pid || l->l_tab[i].last != marker_off) continue;
        memmove(l->l_tab + i, l->l_tab + i + 1, (size_t)(l->l_ntab - i - 1) * sizeof(*l->l_tab));
        l->l_ntab--;
        return;
    }
}

void st__txn_free(st_log_t *l) {
    free(l->l_topen);
    free(l->l_tab);
    free(l->l_lastmk);
    l->l_topen = NULL;
    l->l_tab = NULL;
    l->l_lastmk = NULL;
    l->l_ntopen = l->l_topen_cap = l->l_ntab = l->l_tab_cap = l->l_nlastmk = l->l_lastmk_cap = 0;
}

void st__txn_from_prods(st_log_t *l) {
    l->l_ntopen = 0;
    for (size_t b = 0; b < l->l_prods.pt_nb; b++)
        for (const st_prod_t *p = l->l_prods.pt_b[b]; p; p = p->p_next)
            if (p->p_txn_first >= 0) topen_add(l, p->p_id, p->p_txn_first);
}

/* S22/S23, before the replay: the aborted list from the .txnindex of every
 * segment that needs no rebuild; a damaged or missing one, and those of
 * recovered segments (marked by recovery), are emptied and marked for the
 * replay (st__pt_load) to fill. */
int st__xidx_load(st_log_t *l) {
    char mark[4096];
    snprintf(mark, sizeof(mark), "%s/%s", l->l_dir, ST_XIDX_REBUILD_FILE);
    if (access(mark, F_OK) == 0) {
        rb_warn("storage: %s: an earlier open stopped while rebuilding .txnindex files: rebuilding all", l->l_dir);
        for (int i = 0; i < l->l_nsegs; i++) l->l_segs[i]->seg_xrebuild = true;
    }
    bool any = false;
    for (int i = 0; i < l->l_nsegs; i++) {
        st_seg_t *s = l->l_segs[i];
        int64_t next_base = i + 1 < l->l_nsegs ? l->l_segs[i + 1]->seg_base : l->l_leo;
        if (!s->seg_xrebuild) {
            st_aborted_txn_t *v;
            int n;
            int rc = st__xidx_read(s, next_base, &v, &n);
            if (rc < 0) return rc;
            if (rc == 0) {
                for (int k = 0; k < n; k++) tab_push(l, &v[k]);
                free(v);
                continue;
            }
            rb_warn("storage: %s: segment %lld: .txnindex failed its sanity check, rebuilding", l->l_dir,
                    (long long)s->seg_base);
            s->seg_xrebuild = true;
        }
        any = true;
    }
    if (!any) return 0;
    /* S23: the mark is durable before any file is created or emptied, and
     * goes only once every rebuilt file is (st__txn_load): an open that
     * stops in between leaves it, and the next open rebuilds all */
    int rc = rb_write_file_atomic(mark, "", 0);
    if (rc < 0) return rc;
    for (int i = 0; i < l->l_nsegs; i++) {
        st_seg_t *s = l->l_segs[i];
        if (!s->seg_xrebuild) continue;
        if (s->seg_xfd < 0) { /* missing: created only now */
            char path[4096];
            st__seg_path(path, sizeof(path), l->l_dir, s->seg_base, ST_XIDX_EXT);
            s->seg_xfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
            if (s->seg_xfd < 0) return -errno;
        }
        if (ftruncate(s->seg_xfd, 0) < 0) return -errno;
        s->seg_xn = s->seg_xsynced = 0;
    }
    return 0;
}

static int cmp_last(const void *a, const void *b) {
    int64_t x = ((const st_aborted_txn_t *)a)->last, y = ((const st_aborted_txn_t *)b)->last;
    return x < y ? -1 : x > y;
}

/* S23, after the replay: the list in marker order, what lies wholly below
 * the start dropped, the rebuilt files made durable. */
int st__txn_load(st_log_t *l) {
    if (l->l_ntab > 1) qsort(l->l_tab, (size_t)l->l_ntab, sizeof(*l->l_tab), cmp_last);
    tab_drop_below_start(l);
    bool any = false;
    for (int i = 0; i < l->l_nsegs; i++) {
        st_seg_t *s = l->l_segs[i];
        if (!s->seg_xrebuild) continue;
        if (fdatasync(s->seg_xfd) < 0) return -errno;
        s->seg_xsynced = s->seg_xn;
        s->seg_xrebuild = false;
        any = true;
    }
    if (!any) return 0;
    int rc = rb_fsync_dir(l->l_dir); /* files created by st__xidx_load */
    if (rc < 0) return rc;
    char mark[4096];
    snprintf(mark, sizeof(mark), "%s/%s", l->l_dir, ST_XIDX_REBUILD_FILE);
    if (unlink(mark) < 0 && errno != ENOENT) return -errno;
    return rb_fsync_dir(l->l_dir);
}

/* ---- queries ----------------------------------------------------------------------------- */

int64_t st_log_lso(st_log_t *l) {
    pthread_mutex_lock(&l->l_mutex);
    int64_t lso = st__txn_lso(l);
    pthread_mutex_unlock(&l->l_mutex);
    return lso;
}

int st_log_txn_view(st_log_t *l, int64_t from, int64_t upto, int64_t *lso, st_aborted_txn_t **out, int *n) {
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&l->l_mutex);
    *lso = st__txn_lso(l);
    int cnt = 0;
    for (int i = 0; i < l->l_ntab; i++)
        if (l->l_tab[i].last >= from && l->l_tab[i].first < upto) cnt++;
    if (cnt) {
        *out = malloc((size_t)cnt * sizeof(**out));
        if (!*out) abort();
        for (int i = 0; i < l->l_ntab; i++)
            if (l->l_tab[i].last >= from && l->l_tab[i].first < upto) (*out)[(*n)++] = l->l_tab[i];
    }
    pthread_mutex_unlock(&l->l_mutex);
    return 0;
}

int st_log_open_txns(st_log_t *l, st_txn_open_t **out, int *n) {
    pthread_mutex_lock(&l->l_mutex);
    *n = l->l_ntopen;
    *out = NULL;
    if (*n) {
        *out = malloc((size_t)*n * sizeof(**out));
        if (!*out) abort();
        memcpy(*out, l->l_topen, (size_t)*n * sizeof(**out));
    }
    pthread_mutex_unlock(&l->l_mutex);
    return 0;
}

int st_read_trim(st_read_t *rd, int64_t upto) {
    if (rd->len == 0) return 0;
    size_t pos = 0;
    while (pos < rd->len) {
        uint8_t hb[12];
        size_t got = 0;
        while (got < sizeof(hb)) {
            ssize_t k = pread(rd->fd, hb + got, sizeof(hb) - got, rd->file_off + (off_t)(pos + got));
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) return RB_KAFKA_STORAGE_ERROR;
            got += (size_t)k;
        }
        int64_t base = (int64_t)rb_be64(hb);
        if (base >= upto) break;
        pos += (size_t)rb_be32(hb + 8) + KP_BATCH_LOG_OVERHEAD;
    }
    if (pos < rd->len) rd->len = pos;
    if (rd->len == 0 && rd->fd >= 0) {
        close(rd->fd);
        rd->fd = -1;
    }
    return 0;
}
