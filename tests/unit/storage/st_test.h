/*
 * st_test.h — helpers shared by the storage unit tests (a header, so the
 * test glob does not turn it into an executable): temp dirs, batch building,
 * waiting for durability, reading back what st_log_read returns.
 */
#ifndef RILL_ST_TEST_H
#define RILL_ST_TEST_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "storage/storage_int.h"

static inline char *stt_mkdtemp(void) {
    char *d = strdup("/tmp/rill-st-XXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

static inline void stt_rmdir(char *d) {
    rb_rm_rf(d);
    free(d);
}

/* One batch of n records with timestamps ts0+i and values of vlen bytes. */
static inline void stt_batch(rb_buf_t *out, int n, int64_t ts0, size_t vlen, kp_compression_t codec) {
    kp_record_in_t *recs = calloc((size_t)n, sizeof(*recs));
    uint8_t *val = malloc(vlen + 1);
    char (*keys)[32] = calloc((size_t)n, 32);
    for (size_t i = 0; i < vlen; i++) val[i] = (uint8_t)('a' + i % 26);
    for (int i = 0; i < n; i++) {
        snprintf(keys[i], 32, "k%d", i);
        recs[i].key.p = (const uint8_t *)keys[i];
        recs[i].key.len = (int32_t)strlen(keys[i]);
        recs[i].value.p = val;
        recs[i].value.len = (int32_t)vlen;
        recs[i].timestamp = ts0 + i;
    }
    kp_batch_build(out, 0, codec, recs, n, -1, -1, -1, 0);
    free(recs);
    free(val);
    free(keys);
}

/* Appends the blob (validated first, as the broker does). Returns the rc. */
static inline int stt_append_blob(st_log_t *l, rb_buf_t *b, int64_t now, int64_t *base, int64_t *last) {
    kp_batch_info_t info;
    kp_batch_limits_t lim = {.max_batch_bytes = 64u << 20, .max_decompressed_bytes = 64u << 20};
    char msg[128];
    int rc = kp_batch_validate(b->p, b->len, &lim, &info, msg, sizeof(msg));
    assert_int_equal(rc, 0);
    int64_t lat, bo = -1, lo = -1;
    rc = st_log_append(l, b->p, b->len, &info, now, &bo, &lo, &lat);
    if (base) *base = bo;
    if (last) *last = lo;
    return rc;
}

/* Appends nb batches of n records each in one call. */
static inline int64_t stt_append(st_log_t *l, int nb, int n, int64_t ts0, size_t vlen, int64_t now) {
    rb_buf_t b;
    rb_buf_init(&b);
    for (int i = 0; i < nb; i++) stt_batch(&b, n, ts0 + (int64_t)i * n, vlen, KP_COMP_NONE);
    int64_t base, last;
    assert_int_equal(stt_append_blob(l, &b, now, &base, &last), 0);
    assert_int_equal(last - base + 1, (int64_t)nb * n);
    rb_buf_free(&b);
    return base;
}

/* Appends a transaction marker as the coordinator does (directly: the
 * produce path refuses control batches). Returns st_log_append's code. */
static inline int stt_marker(st_log_t *l, int64_t pid, int16_t epoch, bool commit, int64_t *off) {
    rb_buf_t b;
    rb_buf_init(&b);
    st_marker_build(&b, pid, epoch, commit, 0, rb_now_ms());
    kp_batch_info_t info = {0};
    info.nbatches = 1;
    info.nrecords = 1;
    info.any_transactional = info.any_control = true;
    info.producer_id = pid;
    int64_t last, lat;
    int rc = st_log_append(l, b.p, b.len, &info, rb_now_ms(), off, &last, &lat);
    rb_buf_free(&b);
    return rc;
}

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    int err;
} stt_wait_t;

static inline void stt_wait_cb(void *ctx, int err) {
    stt_wait_t *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->done++;
    w->err = err;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static inline void stt_wait_init(stt_wait_t *w) {
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->done = 0;
    w->err = -999;
}

/* Waits (max 20 s) until the callback ran; returns its err (or -998 on timeout). */
static inline int stt_wait_done(stt_wait_t *w) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 20;
    pthread_mutex_lock(&w->mu);
    while (!w->done)
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT) break;
    int err = w->done ? w->err : -998;
    pthread_mutex_unlock(&w->mu);
    return err;
}

static inline int stt_durable(st_log_t *l, int64_t off) {
    stt_wait_t w;
    stt_wait_init(&w);
    st_log_sync_wait(l, off, stt_wait_cb, &w);
    int err = stt_wait_done(&w);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    return err;
}

/* A batch seen in a read result. */
typedef struct {
    int64_t base, last, size, max_ts;
    int16_t attrs;
} stt_b_t;

/* Walks the returned range batch by batch (and checks each CRC); returns the
 * number of batches (up to max) and closes the fd. */
static inline int stt_parse_read(st_read_t *r, stt_b_t *out, int max) {
    int nb = 0;
    if (r->len == 0) {
        assert_int_equal(r->fd, -1);
        return 0;
    }
    uint8_t *buf = malloc(r->len);
    assert_int_equal(pread(r->fd, buf, r->len, r->file_off), (ssize_t)r->len);
    close(r->fd);
    r->fd = -1;
    size_t p = 0;
    while (p < r->len) {
        kp_batch_hdr_t h;
        assert_int_equal(kp_batch_hdr_parse(buf + p, r->len - p, &h), 0);
        size_t sz = (size_t)h.batch_length + KP_BATCH_LOG_OVERHEAD;
        assert_true(sz <= r->len - p);
        assert_int_equal(rb_crc32c(0, buf + p + 21, sz - 21), h.crc);
        if (nb < max) {
            out[nb].base = h.base_offset;
            out[nb].last = h.base_offset + h.last_offset_delta;
            out[nb].size = (int64_t)sz;
            out[nb].max_ts = h.max_timestamp;
            out[nb].attrs = h.attributes;
        }
        nb++;
        p += sz;
    }
    free(buf);
    return nb;
}

/* Reads everything from `from` to the high watermark, checking offsets are
 * contiguous; returns the next offset. */
static inline int64_t stt_read_all(st_log_t *l, int64_t from, size_t max_bytes) {
    int64_t next = from;
    for (;;) {
        st_read_t r;
        int rc = st_log_read(l, next, max_bytes, true, &r);
        assert_int_equal(rc, 0);
        if (r.len == 0) {
            assert_int_equal(next, r.high_watermark);
            return next;
        }
        stt_b_t bs[4096] = {{0}};
        int nb = stt_parse_read(&r, bs, 4096);
        assert_true(nb >= 1 && nb <= 4096);
        assert_true(bs[0].base <= next && bs[0].last >= next);
        for (int i = 0; i < nb; i++) {
            if (i) assert_int_equal(bs[i].base, bs[i - 1].last + 1);
        }
        next = bs[nb - 1].last + 1;
    }
}

static inline st_log_config_t stt_cfg(int64_t seg_bytes, int32_t interval) {
    st_log_config_t c;
    st_log_config_defaults(&c);
    c.segment_bytes = seg_bytes;
    c.index_interval_bytes = interval;
    return c;
}

/* A fixture: one log `<topic>-0` in a temp log dir, opened and closed whole
 * (manager and log) so tests can reopen it clean or after a "crash". */
typedef struct {
    char *dir;
    st_mgr_t *m;
    st_log_t *l;
    st_log_config_t cfg;
    char pdir[4096];
    const char *topic;
} stt_fx_t;

static inline stt_fx_t *stt_fx_new(const char *topic, int64_t seg_bytes, int32_t interval) {
    stt_fx_t *f = calloc(1, sizeof(*f));
    f->dir = stt_mkdtemp();
    f->cfg = stt_cfg(seg_bytes, interval);
    f->topic = topic;
    snprintf(f->pdir, sizeof(f->pdir), "%s/%s-0", f->dir, topic);
    return f;
}

static inline void stt_fx_free(stt_fx_t *f) {
    if (f->l) st_log_close(f->l);
    if (f->m) st_mgr_close(f->m);
    stt_rmdir(f->dir);
    free(f);
}

static inline void stt_fx_open(stt_fx_t *f) {
    assert_int_equal(st_mgr_open(f->dir, &f->m), 0);
    assert_int_equal(st_log_open(f->m, f->topic, 0, &f->cfg, &f->l), 0);
}

static inline void stt_fx_close(stt_fx_t *f) {
    st_log_close(f->l);
    f->l = NULL;
    st_mgr_close(f->m);
    f->m = NULL;
}

/* Declares fx_t, the cmocka fx_setup/fx_teardown for it and fx_open. */
#define STT_FIXTURE(topic, seg_bytes, interval)                                        \
    typedef stt_fx_t fx_t;                                                             \
    static int fx_setup(void **state) {                                                \
        *state = stt_fx_new(topic, seg_bytes, interval);                               \
        return 0;                                                                      \
    }                                                                                  \
    static int fx_teardown(void **state) {                                             \
        stt_fx_free(*state);                                                           \
        return 0;                                                                      \
    }                                                                                  \
    static void fx_open(fx_t *f) { stt_fx_open(f); }

static inline int64_t stt_file_size(const char *path) {
    struct stat st;
    return stat(path, &st) < 0 ? -1 : st.st_size;
}

#endif
