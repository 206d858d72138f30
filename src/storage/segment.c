/*
 * segment.c — segment files and the batch scan used by recovery and loading.
 *
 * A segment is `<20-digit base>.log` plus `.index`, `.timeindex` and
 * `.txnindex` (its aborted transactions, txnidx.c). This file
 * opens/creates/unlinks them, decodes the fixed batch header from disk (our own
 * 61-byte decode, so a batch larger than the scan buffer can still be checked
 * in bounded memory), and scans a segment's batches from a position:
 * framing, offsets increasing and inside the segment's range, and (unclean
 * recovery, S6) the CRC-32C over bytes 21..end, computed in chunks. The scan
 * can rebuild the indexes as it goes, through the same index code appends use.
 */
#include "storage/storage_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_SCAN_BUF (256 * 1024)

int st__hdr_decode(const uint8_t *p, kp_batch_hdr_t *h) {
    h->base_offset = (int64_t)rb_be64(p);
    h->batch_length = (int32_t)rb_be32(p + 8);
    h->partition_leader_epoch = (int32_t)rb_be32(p + 12);
    h->magic = (int8_t)p[16];
    h->crc = rb_be32(p + 17);
    h->attributes = (int16_t)rb_be16(p + 21);
    h->last_offset_delta = (int32_t)rb_be32(p + 23);
    h->base_timestamp = (int64_t)rb_be64(p + 27);
    h->max_timestamp = (int64_t)rb_be64(p + 35);
    h->producer_id = (int64_t)rb_be64(p + 43);
    h->producer_epoch = (int16_t)rb_be16(p + 51);
    h->base_sequence = (int32_t)rb_be32(p + 53);
    h->records_count = (int32_t)rb_be32(p + 57);
    if (h->batch_length < KP_BATCH_HEADER_SIZE - KP_BATCH_LOG_OVERHEAD) return RB_CORRUPT_MESSAGE;
    if (h->magic != 2) return RB_CORRUPT_MESSAGE;
    if (h->last_offset_delta < 0 || h->records_count < 0) return RB_CORRUPT_MESSAGE;
    if (h->base_offset < 0 || h->base_offset > INT64_MAX - INT32_MAX) return RB_CORRUPT_MESSAGE;
    return 0;
}

/* ---- buffered positional reader ------------------------------------------ */

void st__frd_init(st_frd_t *r, int fd, int64_t limit, size_t cap) {
    r->fd = fd;
    r->limit = limit;
    r->cap = cap;
    r->chunk = cap;
    r->buf = malloc(cap);
    if (!r->buf) abort();
    r->boff = 0;
    r->blen = 0;
}

void st__frd_free(st_frd_t *r) {
    free(r->buf);
    r->buf = NULL;
}

const uint8_t *st__frd_get(st_frd_t *r, int64_t pos, size_t n, int *err) {
    *err = 0;
    if (pos < 0 || n > r->cap || pos + (int64_t)n > r->limit) return NULL;
    if (pos >= r->boff && pos + (int64_t)n <= r->boff + (int64_t)r->blen) return r->buf + (pos - r->boff);
    size_t want = (size_t)RB_MIN((int64_t)RB_MAX(r->chunk, n), r->limit - pos);
    size_t got = 0;
    r->boff = pos;
    r->blen = 0;
    while (got < want) {
        ssize_t k = pread(r->fd, r->buf + got, want - got, pos + (int64_t)got);
        if (k < 0) {
            if (errno == EINTR) continue;
            *err = -errno;
            return NULL;
        }
        if (k == 0) break;
        got += (size_t)k;
    }
    r->blen = got;
    if (got < n) return NULL; /* the file is shorter than the limit said */
    return r->buf;
}

int st__frd_crc(st_frd_t *r, int64_t pos, int64_t n, uint32_t *crc) {
    uint32_t c = 0;
    while (n > 0) {
        size_t k = (size_t)RB_MIN(n, (int64_t)r->cap);
        int err;
        const uint8_t *p = st__frd_get(r, pos, k, &err);
        if (!p) return err ? err : -EIO;
        c = rb_crc32c(c, p, k);
        pos += (int64_t)k;
        n -= (int64_t)k;
    }
    *crc = c;
    return 0;
}

/* ---- segment files ------------------------------------------------------------ */

void st__seg_path(char *out, size_t cap, const char *dir, int64_t base, const char *ext) {
    snprintf(out, cap, "%s/%020" PRId64 "%s", dir, base, ext);
}

static int seg_open_one(const char *dir, int64_t base, const char *ext, int flags, bool *missing) {
    char path[4096];
    st__seg_path(path, sizeof(path), dir, base, ext);
    int fd = open(path, flags | O_CLOEXEC, 0644);
    if (fd < 0 && errno == ENOENT && missing) {
        *missing = true;
        fd = open(path, flags | O_CREAT | O_CLOEXEC, 0644);
    }
    return fd < 0 ? -errno : fd;
}

int st__seg_open(const char *dir, int64_t base, bool create, st_seg_t **out) {
    int flags = O_RDWR | (create ? O_CREAT | O_TRUNC : 0);
    st_seg_t *s = calloc(1, sizeof(*s));
    if (!s) return -ENOMEM;
    s->seg_fd = s->seg_ofd = s->seg_tfd = s->seg_xfd = -1;
    s->seg_base = base;
    s->seg_next_off = base;
    s->seg_tlast_ts = ST_NO_TS;
    s->seg_max_ts = ST_NO_TS;
    s->seg_max_ts_off = -1;
    s->seg_roll_ms = -1;
    atomic_init(&s->seg_refs, 1);
    bool missing = false;
    int rc = seg_open_one(dir, base, ".log", flags, NULL);
    if (rc < 0) goto fail;
    s->seg_fd = rc;
    rc = seg_open_one(dir, base, ".index", flags, &missing);
    if (rc < 0) goto fail;
    s->seg_ofd = rc;
    rc = seg_open_one(dir, base, ".timeindex", flags, &missing);
    if (rc < 0) goto fail;
    s->seg_tfd = rc;
    /* a missing .txnindex is rebuilt alone (S23), and created only then
     * (st__xidx_load), after the rebuild mark */
    rc = seg_open_one(dir, base, ST_XIDX_EXT, flags, NULL);
    if (rc == -ENOENT && !create) {
        s->seg_xrebuild = true;
    } else if (rc < 0) {
        goto fail;
    } else {
        s->seg_xfd = rc;
    }
    struct stat st;
    if (fstat(s->seg_fd, &st) < 0) {
        rc = -errno;
        goto fail;
    }
    s->seg_size = st.st_size;
    s->seg_synced = create ? 0 : st.st_size;
    if (missing && !create) {
        /* an index file was missing: make the sanity check fail */
        s->seg_on = UINT32_MAX;
    }
    *out = s;
    return 0;
fail:
    if (s->seg_fd >= 0) close(s->seg_fd);
    if (s->seg_ofd >= 0) close(s->seg_ofd);
    if (s->seg_tfd >= 0) close(s->seg_tfd);
    if (s->seg_xfd >= 0) close(s->seg_xfd);
    free(s);
    return rc;
}

void st__seg_ref(st_seg_t *s) { atomic_fetch_add(&s->seg_refs, 1); }

void st__seg_unref(st_seg_t *s) {
    if (atomic_fetch_sub(&s->seg_refs, 1) != 1) return;
    if (s->seg_fd >= 0) close(s->seg_fd);
    if (s->seg_ofd >= 0) close(s->seg_ofd);
    if (s->seg_tfd >= 0) close(s->seg_tfd);
    if (s->seg_xfd >= 0) close(s->seg_xfd);
    free(s->seg_otail);
    free(s->seg_ttail);
    free(s);
}

int st__seg_unlink(const char *dir, int64_t base) {
    static const char *exts[] = {".log", ".index", ".timeindex", ST_XIDX_EXT};
    int rc = 0;
    for (size_t i = 0; i < RB_ARRAY_LEN(exts); i++) {
        char path[4096];
        st__seg_path(path, sizeof(path), dir, base, exts[i]);
        if (unlink(path) < 0 && errno != ENOENT && !rc) rc = -errno;
    }
    return rc;
}

/* ---- scan ------------------------------------------------------------------------ */

int st__seg_scan(st_seg_t *s, st_scan_t *sc) {
    struct stat st;
    if (fstat(s->seg_fd, &st) < 0) return -errno;
    int64_t fsize = st.st_size;
    st_frd_t r;
    st__frd_init(&r, s->seg_fd, fsize, ST_SCAN_BUF);
    int rc = 0;
    int64_t pos = sc->from_pos, expect = sc->min_off;
    sc->max_ts = ST_NO_TS;
    sc->max_ts_off = -1;
    sc->first_ts = ST_NO_TS;
    sc->nbatches = 0;
    sc->first_off = -1;
    sc->invalid = false;
    if (sc->build_index) {
        rc = st__idx_reset(s);
        if (rc < 0) goto out;
        st__idx_tail_alloc(s);
    }
    while (pos < fsize) {
        int err;
        const uint8_t *p = st__frd_get(&r, pos, KP_BATCH_HEADER_SIZE, &err);
        if (!p) {
            if (err) { rc = err; goto out; }
            sc->invalid = true; /* torn header */
            break;
        }
        kp_batch_hdr_t h;
        if (st__hdr_decode(p, &h) != 0) { sc->invalid = true; break; }
        int64_t size = st__hdr_size(&h);
        if (pos + size > fsize) { sc->invalid = true; break; }              /* torn batch */
        if (h.base_offset < expect || h.base_offset < s->seg_base) { sc->invalid = true; break; }
        if (sc->contiguous && h.base_offset != expect) { sc->invalid = true; break; }
        if (st__hdr_last(&h) >= sc->next_base) { sc->invalid = true; break; }
        if (st__hdr_last(&h) - s->seg_base > INT32_MAX) { sc->invalid = true; break; }
        if (pos + size > INT32_MAX) { sc->invalid = true; break; }
        if (sc->verify_crc) {
            uint32_t crc;
            rc = st__frd_crc(&r, pos + 21, size - 21, &crc);
            if (rc < 0) goto out;
            if (crc != h.crc) { sc->invalid = true; break; }
        }
        if (sc->nbatches == 0) {
            sc->first_ts = h.max_timestamp;
            sc->first_off = h.base_offset;
        }
        sc->nbatches++;
        if (h.max_timestamp > sc->max_ts) {
            sc->max_ts = h.max_timestamp;
            sc->max_ts_off = h.base_offset;
        }
        if (sc->build_index) st__idx_on_batch(s, pos, &h, sc->interval);
        expect = st__hdr_last(&h) + 1;
        pos += size;
    }
    sc->end_pos = pos;
    sc->next_off = expect;
out:
    st__frd_free(&r);
    return rc;
}
