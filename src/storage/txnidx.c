/*
 * txnidx.c — a partition's transactions (storage.h S17-S18): the open
 * transaction of each producer (its first offset), the list of aborted
 * transactions (producer, first offset, abort marker offset) that
 * read_committed fetches return, the last stable offset, the rebuild of
 * both from the segments at open, and transaction markers (control batches)
 * built and parsed in Kafka's format.
 *
 * Both tables live under l_mutex and are small: one entry per producer with
 * an open transaction, one per aborted transaction still in the log. The
 * aborted list is ordered by marker offset (markers are appended in order).
 * A third, for the cleaner (S19), holds each producer's last marker offset;
 * the cleaner drops the entry of an abort marker it removed (S21).
 */
#include "storage/storage_int.h"

#include <errno.h>
#include <stdlib.h>
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

void st__txn_on_batch(st_log_t *l, const uint8_t *batch, const kp_batch_hdr_t *h) {
    if (!(h->attributes & KP_ATTR_TRANSACTIONAL) || h->producer_id < 0) return;
    int i = topen_find(l, h->producer_id);
    if (!(h->attributes & KP_ATTR_CONTROL)) {
        if (i >= 0) return; /* already open: its first offset stands */
        if (l->l_ntopen == l->l_topen_cap) l->l_topen = grow(l->l_topen, &l->l_topen_cap, sizeof(*l->l_topen));
        l->l_topen[l->l_ntopen].pid = h->producer_id;
        l->l_topen[l->l_ntopen].first = h->base_offset;
        l->l_ntopen++;
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
    if (!commit) { /* S18 */
        if (l->l_ntab == l->l_tab_cap) l->l_tab = grow(l->l_tab, &l->l_tab_cap, sizeof(*l->l_tab));
        st_aborted_txn_t *a = &l->l_tab[l->l_ntab++];
        a->pid = h->producer_id;
        a->first = first;
        a->last = h->base_offset;
    }
    /* drop what retention or DeleteRecords put wholly below the start */
    int drop = 0;
    while (drop < l->l_ntab && l->l_tab[drop].last < l->l_start) drop++;
    if (drop) {
        memmove(l->l_tab, l->l_tab + drop, (size_t)(l->l_ntab - drop) * sizeof(*l->l_tab));
        l->l_ntab -= drop;
    }
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

/* S18: every batch header of every segment; markers are read whole (they are
 * tiny) to learn commit or abort. */
int st__txn_load(st_log_t *l) {
    int rc = 0;
    for (int si = 0; si < l->l_nsegs && rc == 0; si++) {
        st_seg_t *s = l->l_segs[si];
        if (s->seg_size == 0) continue;
        st_frd_t r;
        st__frd_init(&r, s->seg_fd, s->seg_size, 4096);
        int64_t pos = 0;
        while (pos < s->seg_size) {
            int err = 0;
            const uint8_t *p = st__frd_get(&r, pos, KP_BATCH_HEADER_SIZE, &err);
            if (!p) {
                rc = err;
                break;
            }
            kp_batch_hdr_t h;
            if (st__hdr_decode(p, &h) != 0) break; /* recovery already bounded the segment */
            int64_t sz = st__hdr_size(&h);
            if ((h.attributes & KP_ATTR_TRANSACTIONAL) && h.producer_id >= 0) {
                const uint8_t *whole = p;
                if (h.attributes & KP_ATTR_CONTROL) {
                    whole = sz <= 4096 ? st__frd_get(&r, pos, (size_t)sz, &err) : NULL;
                    if (!whole) {
                        rc = err ? err : RB_CORRUPT_MESSAGE;
                        break;
                    }
                    /* the buffer may have moved: decode the header again */
                    st__hdr_decode(whole, &h);
                }
                st__txn_on_batch(l, whole, &h);
            }
            pos += sz;
        }
        st__frd_free(&r);
    }
    return rc;
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
