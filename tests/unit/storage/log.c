/*
 * log.c — storage unit tests: append/read round trips across segment rolls
 * (size, time, index full), reads at every offset, max_bytes/min_one, the
 * high-watermark bound (S2, durability rule D5), offset_for_time and
 * max_timestamp, LogAppendTime, and the state after a clean reopen.
 */
#include "st_test.h"

#include <dirent.h>

typedef struct {
    char *dir;
    st_mgr_t *m;
} fx_t;

static int fx_setup(void **state) {
    fx_t *f = calloc(1, sizeof(*f));
    f->dir = stt_mkdtemp();
    assert_int_equal(st_mgr_open(f->dir, &f->m), 0);
    *state = f;
    return 0;
}

static int fx_teardown(void **state) {
    fx_t *f = *state;
    if (f->m) st_mgr_close(f->m);
    stt_rmdir(f->dir);
    free(f);
    return 0;
}

static int count_files(const char *dir, const char *ext) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name), k = strlen(ext);
        if (l == 20 + k && !strcmp(de->d_name + 20, ext)) n++;
    }
    closedir(d);
    return n;
}

/* Every offset reads back as the batch holding it (max_bytes 1, min_one). */
static void check_every_offset(st_log_t *l, int64_t leo) {
    for (int64_t off = 0; off < leo; off++) {
        st_read_t r;
        assert_int_equal(st_log_read(l, off, 1, true, &r), 0);
        stt_b_t b[2];
        assert_int_equal(stt_parse_read(&r, b, 2), 1);
        assert_true(b[0].base <= off && off <= b[0].last);
    }
}

static void test_roundtrip_size_rolls(void **state) {
    fx_t *f = *state;
    st_log_config_t c = stt_cfg(4096, 512);
    st_log_t *l;
    assert_int_equal(st_log_open(f->m, "rt", 0, &c, &l), 0);
    int64_t expect = 0;
    for (int i = 0; i < 150; i++) {
        int nb = 1 + i % 3, n = 1 + i % 4;
        int64_t base = stt_append(l, nb, n, 1000 + i, 50 + (size_t)(i * 7) % 200, 1000);
        assert_int_equal(base, expect);
        expect += (int64_t)nb * n;
    }
    assert_int_equal(stt_durable(l, expect), 0);
    st_log_state_t s;
    st_log_state(l, &s);
    assert_int_equal(s.log_end_offset, expect);
    assert_int_equal(s.high_watermark, expect);
    assert_int_equal(s.log_start_offset, 0);
    assert_true(s.nsegments > 5);
    char pdir[4096];
    snprintf(pdir, sizeof(pdir), "%s/rt-0", f->dir);
    assert_int_equal(count_files(pdir, ".log"), s.nsegments);
    assert_int_equal(count_files(pdir, ".index"), s.nsegments);
    assert_int_equal(count_files(pdir, ".timeindex"), s.nsegments);
    char p0[4200];
    snprintf(p0, sizeof(p0), "%s/00000000000000000000.log", pdir);
    assert_true(stt_file_size(p0) > 0 && stt_file_size(p0) <= 4096);
    snprintf(p0, sizeof(p0), "%s/00000000000000000000.index", pdir);
    assert_true(stt_file_size(p0) > 0 && stt_file_size(p0) % 8 == 0);
    snprintf(p0, sizeof(p0), "%s/00000000000000000000.timeindex", pdir);
    assert_true(stt_file_size(p0) > 0 && stt_file_size(p0) % 12 == 0);

    check_every_offset(l, expect);
    size_t sizes[] = {1, 100, 700, 5000, 1 << 20};
    for (size_t i = 0; i < RB_ARRAY_LEN(sizes); i++) assert_int_equal(stt_read_all(l, 0, sizes[i]), expect);
    /* out of range */
    st_read_t r;
    assert_int_equal(st_log_read(l, expect + 1, 100, true, &r), RB_OFFSET_OUT_OF_RANGE);
    assert_int_equal(st_log_read(l, -1, 100, true, &r), RB_OFFSET_OUT_OF_RANGE);
    assert_int_equal(st_log_read(l, expect, 100, true, &r), 0);
    assert_int_equal(r.len, 0);
    assert_int_equal(r.fd, -1);
    st_log_close(l);
}

static void test_time_roll(void **state) {
    fx_t *f = *state;
    st_log_config_t c = stt_cfg(1 << 20, 4096);
    c.segment_ms = 1000;
    st_log_t *l;
    assert_int_equal(st_log_open(f->m, "tr", 0, &c, &l), 0);
    stt_append(l, 1, 2, 1, 10, 10000);
    stt_append(l, 1, 2, 1, 10, 10500);
    st_log_state_t s;
    st_log_state(l, &s);
    assert_int_equal(s.nsegments, 1);
    stt_append(l, 1, 2, 1, 10, 11000); /* 1000 ms after the segment's first append */
    st_log_state(l, &s);
    assert_int_equal(s.nsegments, 2);
    stt_append(l, 1, 2, 1, 10, 11999);
    st_log_state(l, &s);
    assert_int_equal(s.nsegments, 2);
    stt_append(l, 1, 2, 1, 10, 12000);
    st_log_state(l, &s);
    assert_int_equal(s.nsegments, 3);
    assert_int_equal(stt_durable(l, 10), 0);
    assert_int_equal(stt_read_all(l, 0, 1 << 20), 10);
    check_every_offset(l, 10);
    st_log_close(l);
}

static void test_index_full_roll(void **state) {
    fx_t *f = *state;
    st_log_config_t c = stt_cfg(1 << 20, 0); /* an index entry for every batch */
    c.segment_index_bytes = 8 * 10;           /* 10 offset entries, 6 time entries */
    st_log_t *l;
    assert_int_equal(st_log_open(f->m, "ifull", 0, &c, &l), 0);
    for (int i = 0; i < 40; i++) stt_append(l, 1, 1, 100 + i, 10, 1000);
    st_log_state_t s;
    st_log_state(l, &s);
    assert_true(s.nsegments >= 5);
    assert_int_equal(stt_durable(l, 40), 0);
    check_every_offset(l, 40);
    assert_int_equal(stt_read_all(l, 0, 300), 40);
    st_log_close(l);
}

static void test_max_bytes_min_one(void **state) {
    fx_t *f = *state;
    st_log_config_t c = stt_cfg(1 << 20, 256);
    st_log_t *l;
    assert_int_equal(st_log_open(f->m, "mb", 0, &c, &l), 0);
    /* 20 batches of 5 records, 100-byte values: all the same size */
    for (int i = 0; i < 20; i++) stt_append(l, 1, 5, 1000, 100, 1000);
    assert_int_equal(stt_durable(l, 100), 0);
    st_read_t r;
    stt_b_t b[64];
    assert_int_equal(st_log_read(l, 0, 1 << 20, true, &r), 0);
    assert_int_equal(stt_parse_read(&r, b, 64), 20);
    int64_t bsz = b[0].size;
    for (int i = 0; i < 20; i++) assert_int_equal(b[i].size, bsz);
    /* smaller than one batch */
    assert_int_equal(st_log_read(l, 7, (size_t)bsz - 1, false, &r), 0);
    assert_int_equal(r.len, 0);
    assert_int_equal(r.fd, -1);
    assert_int_equal(st_log_read(l, 7, (size_t)bsz - 1, true, &r), 0);
    assert_int_equal(stt_parse_read(&r, b, 64), 1);
    assert_int_equal(b[0].base, 5);
    /* exactly two batches; two and a half */
    assert_int_equal(st_log_read(l, 10, (size_t)bsz * 2, false, &r), 0);
    assert_int_equal(stt_parse_read(&r, b, 64), 2);
    assert_int_equal(b[0].base, 10);
    assert_int_equal(st_log_read(l, 12, (size_t)(bsz * 5 / 2), false, &r), 0);
    assert_int_equal(stt_parse_read(&r, b, 64), 2);
    assert_int_equal(b[0].base, 10);
    /* every max_bytes from 0 to 6 batches, from several offsets */
    for (int64_t off = 0; off < 100; off += 13) {
        for (size_t mb = 0; mb < (size_t)bsz * 6; mb += 17) {
            assert_int_equal(st_log_read(l, off, mb, false, &r), 0);
            int64_t nb = stt_parse_read(&r, b, 64);
            int64_t left = 20 - off / 5;
            assert_int_equal(nb, RB_MIN((int64_t)mb / bsz, left));
            if (nb) assert_int_equal(b[0].base, off / 5 * 5);
        }
    }
    st_log_close(l);
}

/* A read never spans two segments and never passes the segment end. */
static void test_read_one_segment(void **state) {
    fx_t *f = *state;
    st_log_config_t c = stt_cfg(2000, 256);
    st_log_t *l;
    assert_int_equal(st_log_open(f->m, "oneseg", 0, &c, &l), 0);
    for (int i = 0; i < 30; i++) stt_append(l, 1, 3, 1000, 100, 1000);
    assert_int_equal(stt_durable(l, 90), 0);
    st_log_state_t s;
    st_log_state(l, &s);
    assert_true(s.nsegments > 3);
    st_read_t r;
    stt_b_t b[64];
    assert_int_equal(st_log_read(l, 0, 1 << 20, false, &r), 0);
    int nb = stt_parse_read(&r, b, 64);
    assert_true(nb >= 1 && nb < 30);
    assert_true(r.len <= 2000);
    st_log_close(l);
}

/* The flusher is held inside the durable callback so that appends stay
 * above the high watermark. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool hold, held, release;
    int64_t last_hw;
} hold_t;

static void hold_cb(void *ctx, st_log_t *l, int64_t hw) {
    (void)l;
    hold_t *h = ctx;
    pthread_mutex_lock(&h->mu);
    h->last_hw = hw;
    pthread_cond_broadcast(&h->cv);
    if (h->hold) {
        h->held = true;
        pthread_cond_broadcast(&h->cv);
        while (!h->release) pthread_cond_wait(&h->cv, &h->mu);
        h->hold = false;
    }
    pthread_mutex_unlock(&h->mu);
}

static void test_hw_bound(void **state) {
    fx_t *f = *state;
    hold_t h = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    st_mgr_set_durable_cb(f->m, hold_cb, &h);
    st_log_config_t c = stt_cfg(1 << 20, 256);
    st_log_t *l;
    assert_int_equal(st_log_open(f->m, "hw", 0, &c, &l), 0);
    stt_append(l, 1, 4, 1000, 50, 1000);
    assert_int_equal(stt_durable(l, 4), 0);
    pthread_mutex_lock(&h.mu);
    /* sync waiters run before the durable callback of the same flusher round:
     * let that callback (hw 4) pass before holding the next one */
    while (h.last_hw < 4) pthread_cond_wait(&h.cv, &h.mu);
    h.hold = true;
    pthread_mutex_unlock(&h.mu);
    stt_append(l, 1, 4, 2000, 50, 1000); /* the flusher syncs it and parks in the callback */
    pthread_mutex_lock(&h.mu);
    while (!h.held) pthread_cond_wait(&h.cv, &h.mu);
    pthread_mutex_unlock(&h.mu);
    assert_int_equal(h.last_hw, 8);
    stt_append(l, 1, 4, 3000, 50, 1000); /* cannot become durable while it is parked */
    st_log_state_t s;
    st_log_state(l, &s);
    assert_int_equal(s.high_watermark, 8);
    assert_int_equal(s.log_end_offset, 12);
    st_read_t r;
    stt_b_t b[8];
    assert_int_equal(st_log_read(l, 0, 1 << 20, true, &r), 0);
    assert_int_equal(stt_parse_read(&r, b, 8), 2);
    assert_int_equal(r.high_watermark, 8);
    assert_int_equal(b[1].last, 7);
    for (int64_t off = 8; off <= 12; off++) { /* D5: written, not durable: empty, no error */
        assert_int_equal(st_log_read(l, off, 1 << 20, true, &r), 0);
        assert_int_equal(r.len, 0);
    }
    assert_int_equal(st_log_read(l, 13, 1 << 20, true, &r), RB_OFFSET_OUT_OF_RANGE);
    int64_t off, ts;
    assert_int_equal(st_log_offset_for_time(l, 3000, &off, &ts), RB_ERR_NOT_FOUND);
    assert_int_equal(st_log_max_timestamp(l, &off, &ts), 0);
    assert_int_equal(ts, 2003);
    assert_int_equal(off, 7);
    stt_wait_t w;
    stt_wait_init(&w);
    assert_int_equal(st_log_sync_wait(l, 12, stt_wait_cb, &w), 0);
    assert_int_equal(w.done, 0);
    pthread_mutex_lock(&h.mu);
    h.release = true;
    pthread_cond_broadcast(&h.cv);
    pthread_mutex_unlock(&h.mu);
    assert_int_equal(stt_wait_done(&w), 0);
    assert_int_equal(stt_read_all(l, 0, 1 << 20), 12);
    assert_int_equal(st_log_max_timestamp(l, &off, &ts), 0);
    assert_int_equal(ts, 3003);
    assert_int_equal(off, 11);
    /* an already durable offset completes synchronously */
    stt_wait_init(&w);
    assert_int_equal(st_log_sync_wait(l, 12, stt_wait_cb, &w), 1);
    assert_int_equal(w.done, 1);
    assert_int_equal(w.err, 0);
    st_log_close(l);
    st_mgr_set_durable_cb(f->m, NULL, NULL);
}

/* Model: (offset, timestamp) of every record; brute-force expectations. */
typedef struct {
    int64_t off, ts;
} rec_t;

static void expect_for_time(const rec_t *m, int n, int64_t target, int64_t *off, int64_t *ts) {
    *off = -1;
    *ts = -1;
    for (int i = 0; i < n; i++) {
        if (m[i].ts >= target) {
            *off = m[i].off;
            *ts = m[i].ts;
            return;
        }
    }
}

static void append_with_ts(st_log_t *l, const int64_t *ts, int n, kp_compression_t codec) {
    kp_record_in_t recs[64];
    memset(recs, 0, sizeof(recs));
    for (int i = 0; i < n; i++) {
        recs[i].key.len = -1;
        recs[i].value.p = (const uint8_t *)"value-value-value";
        recs[i].value.len = 17;
        recs[i].timestamp = ts[i];
    }
    rb_buf_t b;
    rb_buf_init(&b);
    kp_batch_build(&b, 0, codec, recs, n, -1, -1, -1, 0);
    assert_int_equal(stt_append_blob(l, &b, 5, NULL, NULL), 0);
    rb_buf_free(&b);
}

static void test_offset_for_time(void **state) {
    fx_t *f = *state;
    st_log_config_t c = stt_cfg(1500, 200);
    st_log_t *l;
    assert_int_equal(st_log_open(f->m, "oft", 0, &c, &l), 0);
    rec_t model[4096];
    int n = 0;
    uint32_t seed = 12345;
    int64_t base_ts = 100000;
    for (int b = 0; b < 120; b++) {
        int k = 1 + b % 5;
        int64_t ts[8];
        for (int i = 0; i < k; i++) {
            seed = seed * 1103515245 + 12345;
            /* mostly increasing, with some records going back in time */
            ts[i] = base_ts + (seed >> 16) % 50 - 10;
            base_ts += 7;
        }
        append_with_ts(l, ts, k, b % 7 == 3 ? KP_COMP_GZIP : KP_COMP_NONE);
        for (int i = 0; i < k; i++) model[n].off = n, model[n].ts = ts[i], n++;
    }
    assert_int_equal(stt_durable(l, n), 0);
    st_log_state_t s;
    st_log_state(l, &s);
    assert_true(s.nsegments > 3);
    for (int64_t t = 99000; t < base_ts + 100; t += 3) {
        int64_t eo, et, o, ts;
        expect_for_time(model, n, t, &eo, &et);
        int rc = st_log_offset_for_time(l, t, &o, &ts);
        if (eo < 0) {
            assert_int_equal(rc, RB_ERR_NOT_FOUND);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(o, eo);
            assert_int_equal(ts, et);
        }
    }
    int64_t mo = -1, mt = -1;
    for (int i = 0; i < n; i++)
        if (model[i].ts > mt) mt = model[i].ts, mo = model[i].off;
    int64_t o, ts;
    assert_int_equal(st_log_max_timestamp(l, &o, &ts), 0);
    assert_int_equal(ts, mt);
    assert_int_equal(o, mo);
    /* the same answers after a clean reopen (indexes from disk) */
    st_log_close(l);
    st_mgr_close(f->m);
    assert_int_equal(st_mgr_open(f->dir, &f->m), 0);
    assert_int_equal(st_log_open(f->m, "oft", 0, &c, &l), 0);
    for (int64_t t = 99000; t < base_ts + 100; t += 5) {
        int64_t eo, et;
        expect_for_time(model, n, t, &eo, &et);
        int rc = st_log_offset_for_time(l, t, &o, &ts);
        if (eo < 0) {
            assert_int_equal(rc, RB_ERR_NOT_FOUND);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(o, eo);
            assert_int_equal(ts, et);
        }
    }
    assert_int_equal(st_log_max_timestamp(l, &o, &ts), 0);
    assert_int_equal(ts, mt);
    assert_int_equal(o, mo);
    st_log_close(l);
}

static void test_empty_log(void **state) {
    fx_t *f = *state;
    st_log_config_t c = stt_cfg(1 << 20, 4096);
    st_log_t *l;
    assert_int_equal(st_log_open(f->m, "empty", 3, &c, &l), 0);
    assert_string_equal(st_log_topic(l), "empty");
    assert_int_equal(st_log_partition(l), 3);
    int x;
    st_log_set_user(l, &x);
    assert_ptr_equal(st_log_user(l), &x);
    int64_t o, ts;
    assert_int_equal(st_log_max_timestamp(l, &o, &ts), RB_ERR_NOT_FOUND);
    assert_int_equal(st_log_offset_for_time(l, 0, &o, &ts), RB_ERR_NOT_FOUND);
    st_read_t r;
    assert_int_equal(st_log_read(l, 0, 100, true, &r), 0);
    assert_int_equal(r.len, 0);
    assert_int_equal(st_log_read(l, 1, 100, true, &r), RB_OFFSET_OUT_OF_RANGE);
    st_log_t *l2;
    assert_int_equal(st_log_open(f->m, "empty", 3, &c, &l2), RB_ERR_EXISTS);
    assert_int_equal(st_log_open(f->m, "bad/name", 0, &c, &l2), RB_ERR_INVALID_ARG);
    assert_int_equal(st_log_open(f->m, "..", 0, &c, &l2), RB_ERR_INVALID_ARG);
    assert_int_equal(st_log_open(f->m, "ok", -1, &c, &l2), RB_ERR_INVALID_ARG);
    /* a blob that does not frame is refused before anything is written */
    uint8_t junk[100];
    memset(junk, 0x5a, sizeof(junk));
    int64_t bo, lo, lat;
    assert_int_equal(st_log_append(l, junk, sizeof(junk), NULL, 1, &bo, &lo, &lat), RB_CORRUPT_MESSAGE);
    st_log_state_t s;
    st_log_state(l, &s);
    assert_int_equal(s.log_end_offset, 0);
    assert_int_equal(s.size_bytes, 0);
    st_log_close(l);
}

static void test_too_large(void **state) {
    fx_t *f = *state;
    st_log_config_t c = stt_cfg(1000, 4096);
    st_log_t *l;
    assert_int_equal(st_log_open(f->m, "big", 0, &c, &l), 0);
    rb_buf_t b;
    rb_buf_init(&b);
    stt_batch(&b, 1, 1, 2000, KP_COMP_NONE);
    assert_int_equal(stt_append_blob(l, &b, 1, NULL, NULL), RB_RECORD_LIST_TOO_LARGE);
    rb_buf_free(&b);
    /* several batches whose sum passes segment_bytes but each fits: one segment */
    rb_buf_init(&b);
    for (int i = 0; i < 4; i++) stt_batch(&b, 1, 1, 400, KP_COMP_NONE);
    int64_t base, last;
    assert_int_equal(stt_append_blob(l, &b, 1, &base, &last), 0);
    assert_int_equal(base, 0);
    assert_int_equal(last, 3);
    rb_buf_free(&b);
    assert_int_equal(stt_durable(l, 4), 0);
    assert_int_equal(stt_read_all(l, 0, 100), 4);
    st_log_close(l);
}

static void test_log_append_time(void **state) {
    fx_t *f = *state;
    st_log_config_t c = stt_cfg(1 << 20, 4096);
    c.log_append_time = true;
    st_log_t *l;
    assert_int_equal(st_log_open(f->m, "lat", 0, &c, &l), 0);
    rb_buf_t b;
    rb_buf_init(&b);
    stt_batch(&b, 3, 111, 20, KP_COMP_NONE);
    stt_batch(&b, 2, 222, 20, KP_COMP_GZIP);
    kp_batch_info_t info;
    kp_batch_limits_t lim = {.max_batch_bytes = 1 << 20, .max_decompressed_bytes = 1 << 20};
    assert_int_equal(kp_batch_validate(b.p, b.len, &lim, &info, NULL, 0), 0);
    int64_t bo, lo, lat;
    assert_int_equal(st_log_append(l, b.p, b.len, &info, 777777, &bo, &lo, &lat), 0);
    assert_int_equal(lat, 777777);
    assert_int_equal(bo, 0);
    assert_int_equal(lo, 4);
    /* the caller's buffer was rewritten in place: offsets, type bit, max
     * timestamp, CRC recomputed (the base timestamp stays) */
    for (size_t p = 0, i = 0; p < b.len; i++) {
        kp_batch_hdr_t h;
        assert_int_equal(kp_batch_hdr_parse(b.p + p, b.len - p, &h), 0);
        size_t sz = (size_t)h.batch_length + KP_BATCH_LOG_OVERHEAD;
        assert_int_equal(h.base_offset, i == 0 ? 0 : 3);
        assert_int_equal(h.max_timestamp, 777777);
        assert_int_equal(h.base_timestamp, i == 0 ? 111 : 222);
        assert_true(h.attributes & KP_ATTR_TIMESTAMP_TYPE);
        assert_int_equal(rb_crc32c(0, b.p + p + 21, sz - 21), h.crc);
        p += sz;
    }
    rb_buf_free(&b);
    assert_int_equal(stt_durable(l, 5), 0);
    st_read_t r;
    stt_b_t bs[4];
    assert_int_equal(st_log_read(l, 0, 1 << 20, true, &r), 0);
    assert_int_equal(stt_parse_read(&r, bs, 4), 2);
    for (int i = 0; i < 2; i++) {
        assert_true(bs[i].attrs & KP_ATTR_TIMESTAMP_TYPE);
        assert_int_equal(bs[i].max_ts, 777777);
    }
    assert_int_equal(bs[1].attrs & KP_ATTR_COMPRESSION_MASK, KP_COMP_GZIP);
    int64_t o, ts;
    assert_int_equal(st_log_offset_for_time(l, 777777, &o, &ts), 0);
    assert_int_equal(o, 0);
    assert_int_equal(ts, 777777);
    assert_int_equal(st_log_max_timestamp(l, &o, &ts), 0);
    assert_int_equal(o, 0);
    assert_int_equal(ts, 777777);
    /* CreateTime topics keep the producer's timestamps */
    c.log_append_time = false;
    st_log_set_config(l, &c);
    stt_append(l, 1, 1, 5, 10, 888888);
    assert_int_equal(stt_durable(l, 6), 0);
    assert_int_equal(st_log_read(l, 5, 1 << 20, true, &r), 0);
    assert_int_equal(stt_parse_read(&r, bs, 4), 1);
    assert_false(bs[0].attrs & KP_ATTR_TIMESTAMP_TYPE);
    assert_int_equal(bs[0].max_ts, 5);
    st_log_close(l);
}

static void test_reopen_clean(void **state) {
    fx_t *f = *state;
    st_log_config_t c = stt_cfg(3000, 300);
    st_log_t *l;
    assert_int_equal(st_log_open(f->m, "ro", 1, &c, &l), 0);
    for (int i = 0; i < 60; i++) stt_append(l, 1 + i % 2, 3, 5000 + i * 10, 80, 1000);
    st_log_state_t s1, s2;
    st_log_state(l, &s1);
    int64_t mo1, mt1, fo1, ft1;
    assert_int_equal(stt_durable(l, s1.log_end_offset), 0);
    assert_int_equal(st_log_max_timestamp(l, &mo1, &mt1), 0);
    assert_int_equal(st_log_offset_for_time(l, 5300, &fo1, &ft1), 0);
    st_log_close(l);
    st_mgr_close(f->m);
    char marker[4200];
    snprintf(marker, sizeof(marker), "%s/.kafka_cleanShutdown", f->dir);
    assert_int_equal(access(marker, F_OK), 0);
    assert_int_equal(st_mgr_open(f->dir, &f->m), 0);
    assert_int_equal(access(marker, F_OK), -1); /* removed: the broker is running */
    assert_true(f->m->m_clean_start);
    assert_int_equal(st_log_open(f->m, "ro", 1, &c, &l), 0);
    st_log_state(l, &s2);
    assert_int_equal(s2.log_end_offset, s1.log_end_offset);
    assert_int_equal(s2.high_watermark, s1.log_end_offset);
    assert_int_equal(s2.nsegments, s1.nsegments);
    assert_int_equal(s2.size_bytes, s1.size_bytes);
    int64_t mo2, mt2, fo2, ft2;
    assert_int_equal(st_log_max_timestamp(l, &mo2, &mt2), 0);
    assert_int_equal(st_log_offset_for_time(l, 5300, &fo2, &ft2), 0);
    assert_int_equal(mo1, mo2);
    assert_int_equal(mt1, mt2);
    assert_int_equal(fo1, fo2);
    assert_int_equal(ft1, ft2);
    check_every_offset(l, s2.log_end_offset);
    /* appends continue where the log ended */
    int64_t base = stt_append(l, 1, 2, 9999, 10, 1000);
    assert_int_equal(base, s1.log_end_offset);
    assert_int_equal(stt_durable(l, base + 2), 0);
    assert_int_equal(stt_read_all(l, 0, 1000), base + 2);
    st_log_close(l);
}

static void list_cb(void *ctx, const char *topic, int32_t partition) {
    char *acc = ctx;
    char one[300];
    snprintf(one, sizeof(one), "%s:%d;", topic, (int)partition);
    strcat(acc, one);
}

static void test_mgr_list(void **state) {
    fx_t *f = *state;
    st_log_config_t c = stt_cfg(1 << 20, 4096);
    st_log_t *a, *b;
    assert_int_equal(st_log_open(f->m, "my-topic", 12, &c, &a), 0);
    assert_int_equal(st_log_open(f->m, "x", 0, &c, &b), 0);
    char junk[4200];
    snprintf(junk, sizeof(junk), "%s/not_a_partition", f->dir);
    mkdir(junk, 0755);
    char acc[1000] = "";
    st_mgr_list(f->m, list_cb, acc);
    assert_non_null(strstr(acc, "my-topic:12;"));
    assert_non_null(strstr(acc, "x:0;"));
    assert_null(strstr(acc, "not_a"));
    assert_string_equal(st_mgr_dir(f->m), f->dir);
    st_log_close(a);
    st_log_close(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip_size_rolls, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_time_roll, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_index_full_roll, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_max_bytes_min_one, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_read_one_segment, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_hw_bound, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_offset_for_time, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_empty_log, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_too_large, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_log_append_time, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_reopen_clean, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_mgr_list, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
