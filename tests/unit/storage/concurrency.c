/*
 * concurrency.c — storage unit tests for the thread rules: 4 appender threads
 * and a reader on one log (contiguous offsets, disjoint ranges, reads never
 * past the high watermark); 1000 logs (memory independent of data size);
 * and measured figures printed for the report (appends/s alone, with a sync
 * wait per append, with 4 threads sharing group commits; fdatasyncs per
 * append; flushing 1000 dirty logs with and without syncfs).
 */
#include "st_test.h"

typedef struct {
    st_log_t *l;
    int id, n;
    int64_t (*ranges)[2];
    bool wait;
} app_arg_t;

static void *app_main(void *arg) {
    app_arg_t *a = arg;
    for (int i = 0; i < a->n; i++) {
        rb_buf_t b;
        rb_buf_init(&b);
        int nb = 1 + (i + a->id) % 3;
        for (int k = 0; k < nb; k++) stt_batch(&b, 1 + (i + k) % 4, 1000 + i, 40 + (size_t)a->id * 10, KP_COMP_NONE);
        int64_t base, last;
        assert_int_equal(stt_append_blob(a->l, &b, 1000, &base, &last), 0);
        rb_buf_free(&b);
        a->ranges[i][0] = base;
        a->ranges[i][1] = last;
        if (a->wait && i % 16 == 0) assert_int_equal(stt_durable(a->l, last + 1), 0);
    }
    return NULL;
}

typedef struct {
    st_log_t *l;
    _Atomic int64_t total;
    _Atomic bool *done;
    int64_t reads, max_hw_seen;
} rd_arg_t;

static void *rd_main(void *arg) {
    rd_arg_t *a = arg;
    int64_t next = 0;
    stt_b_t *bs = malloc(4096 * sizeof(*bs));
    for (;;) {
        st_read_t r;
        assert_int_equal(st_log_read(a->l, next, 8192, true, &r), 0);
        a->reads++;
        if (r.len == 0) {
            if (next >= a->total && *a->done) break;
            usleep(200);
            continue;
        }
        int64_t hw = r.high_watermark;
        int nb = stt_parse_read(&r, bs, 4096);
        assert_true(nb >= 1);
        assert_true(bs[0].base <= next && next <= bs[0].last);
        for (int i = 1; i < nb; i++) assert_int_equal(bs[i].base, bs[i - 1].last + 1);
        assert_true(bs[nb - 1].last < hw); /* S2: never past the high watermark */
        next = bs[nb - 1].last + 1;
        a->max_hw_seen = hw;
    }
    free(bs);
    assert_int_equal(next, a->total);
    return NULL;
}

static int cmp_range(const void *x, const void *y) {
    const int64_t *a = x, *b = y;
    return a[0] < b[0] ? -1 : a[0] > b[0];
}

static void test_4_appenders_1_reader(void **state) {
    (void)state;
    char *dir = stt_mkdtemp();
    st_mgr_t *m;
    assert_int_equal(st_mgr_open(dir, &m), 0);
    st_log_config_t c = stt_cfg(64 * 1024, 1024);
    st_log_t *l;
    assert_int_equal(st_log_open(m, "conc", 0, &c, &l), 0);
    enum { T = 4, N = 1500 };
    pthread_t th[T], rt;
    app_arg_t aa[T];
    int64_t(*ranges)[2] = calloc(T * N, sizeof(*ranges));
    _Atomic bool done = false;
    rd_arg_t ra = {.l = l, .done = &done};
    /* the total is only known at the end; the reader stops at the LEO then */
    for (int t = 0; t < T; t++) {
        aa[t] = (app_arg_t){l, t, N, ranges + t * N, t % 2 == 0};
        pthread_create(&th[t], NULL, app_main, &aa[t]);
    }
    atomic_store(&ra.total, INT64_MAX);
    pthread_create(&rt, NULL, rd_main, &ra);
    for (int t = 0; t < T; t++) pthread_join(th[t], NULL);
    st_log_state_t s;
    st_log_state(l, &s);
    assert_int_equal(stt_durable(l, s.log_end_offset), 0);
    atomic_store(&ra.total, s.log_end_offset);
    done = true;
    pthread_join(rt, NULL);
    /* the ranges handed out tile [0, LEO) exactly */
    qsort(ranges, T * N, sizeof(*ranges), cmp_range);
    int64_t expect = 0;
    for (int i = 0; i < T * N; i++) {
        assert_int_equal(ranges[i][0], expect);
        expect = ranges[i][1] + 1;
    }
    assert_int_equal(expect, s.log_end_offset);
    assert_true(s.nsegments > 3);
    assert_int_equal(stt_read_all(l, 0, 100000), expect);
    print_message("concurrency: %d appends by %d threads, %lld offsets, %d segments, %lld reads\n", T * N, T,
                  (long long)expect, s.nsegments, (long long)ra.reads);
    free(ranges);
    st_log_close(l);
    st_mgr_close(m);
    stt_rmdir(dir);
}

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
        fclose(f);
    }
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static double now_s(void) { return (double)rb_mono_us() / 1e6; }

static void flush_all(st_log_t **ls, int n, int64_t *leo) {
    for (int i = 0; i < n; i++) assert_int_equal(stt_durable(ls[i], leo[i]), 0);
}

static void test_many_logs(void **state) {
    (void)state;
    char *dir = stt_mkdtemp();
    st_mgr_t *m;
    assert_int_equal(st_mgr_open(dir, &m), 0);
    enum { N = 1000 };
    st_log_t **ls = calloc(N, sizeof(*ls));
    int64_t *leo = calloc(N, sizeof(*leo));
    st_log_config_t c = stt_cfg(256 * 1024, 4096);
    long rss0 = rss_kb();
    char name[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "many%d", i);
        assert_int_equal(st_log_open(m, name, i % 7, &c, &ls[i]), 0);
    }
    rb_buf_t blob;
    rb_buf_init(&blob);
    for (int k = 0; k < 4; k++) stt_batch(&blob, 8, 1, 120, KP_COMP_NONE); /* ~4.3 KB per append */
    rb_buf_t work;
    rb_buf_init(&work);
    for (int r = 0; r < 3; r++) {
        for (int i = 0; i < N; i++) {
            rb_buf_reset(&work);
            rb_buf_put(&work, blob.p, blob.len);
            int64_t last;
            assert_int_equal(stt_append_blob(ls[i], &work, 1000, NULL, &last), 0);
            leo[i] = last + 1;
        }
    }
    flush_all(ls, N, leo);
    long rss1 = rss_kb();
    /* 10x more data: memory must not follow it */
    for (int r = 0; r < 30; r++) {
        for (int i = 0; i < N; i++) {
            rb_buf_reset(&work);
            rb_buf_put(&work, blob.p, blob.len);
            int64_t last;
            assert_int_equal(stt_append_blob(ls[i], &work, 1000, NULL, &last), 0);
            leo[i] = last + 1;
        }
        if (r % 10 == 9) flush_all(ls, N, leo);
    }
    flush_all(ls, N, leo);
    for (int i = 0; i < N; i += 97) assert_int_equal(stt_read_all(ls[i], 0, 1 << 16), leo[i]);
    long rss2 = rss_kb();
    print_message("memory: 1000 logs: RSS %ld KB before, %ld KB with 13 MB written, %ld KB with 140 MB written\n",
                  rss0, rss1, rss2);
    assert_true(rss1 - rss0 < 32 * 1024);
    assert_true(rss2 - rss1 < 8 * 1024);

    /* flushing 1000 dirty logs: per-file fdatasync vs one syncfs */
    for (int mode = 0; mode < 2; mode++) {
        st_mgr_set_syncfs_min(m, mode ? 8 : 0);
        if (mode && m->m_syncfs_min == 0) break;
        uint64_t fds0 = m->m_stat_fdatasyncs, sfs0 = m->m_stat_syncfs;
        double t0 = now_s();
        for (int r = 0; r < 3; r++) {
            for (int i = 0; i < N; i++) {
                rb_buf_reset(&work);
                rb_buf_put(&work, blob.p, blob.len);
                int64_t last;
                assert_int_equal(stt_append_blob(ls[i], &work, 1000, NULL, &last), 0);
                leo[i] = last + 1;
            }
            flush_all(ls, N, leo);
        }
        double dt = now_s() - t0;
        print_message("flush: 3 x (append to 1000 logs, wait all durable) with %s: %.1f ms per round, "
                      "%llu fdatasyncs, %llu syncfs\n",
                      mode ? "syncfs (>= 8 dirty)" : "fdatasync per log", dt * 1000 / 3,
                      (unsigned long long)(m->m_stat_fdatasyncs - fds0), (unsigned long long)(m->m_stat_syncfs - sfs0));
    }
    rb_buf_free(&blob);
    rb_buf_free(&work);
    for (int i = 0; i < N; i++) st_log_close(ls[i]);
    free(ls);
    free(leo);
    st_mgr_close(m);
    stt_rmdir(dir);
}

typedef struct {
    st_log_t *l;
    double secs;
    int64_t count;
} tp_arg_t;

static void *tp_main(void *arg) {
    tp_arg_t *a = arg;
    rb_buf_t blob, work;
    rb_buf_init(&blob);
    rb_buf_init(&work);
    stt_batch(&blob, 10, 1, 100, KP_COMP_NONE);
    double end = now_s() + a->secs;
    while (now_s() < end) {
        rb_buf_reset(&work);
        rb_buf_put(&work, blob.p, blob.len);
        int64_t last;
        assert_int_equal(stt_append_blob(a->l, &work, 1000, NULL, &last), 0);
        assert_int_equal(stt_durable(a->l, last + 1), 0);
        a->count++;
    }
    rb_buf_free(&blob);
    rb_buf_free(&work);
    return NULL;
}

static void test_throughput(void **state) {
    (void)state;
    char *dir = stt_mkdtemp();
    st_mgr_t *m;
    assert_int_equal(st_mgr_open(dir, &m), 0);
    st_log_config_t c = stt_cfg(64 << 20, 4096);
    st_log_t *l;
    assert_int_equal(st_log_open(m, "tp", 0, &c, &l), 0);
    rb_buf_t blob, work;
    rb_buf_init(&blob);
    rb_buf_init(&work);
    stt_batch(&blob, 10, 1, 100, KP_COMP_NONE);
    kp_batch_info_t info;
    kp_batch_limits_t lim = {.max_batch_bytes = 1 << 20, .max_decompressed_bytes = 1 << 20};
    assert_int_equal(kp_batch_validate(blob.p, blob.len, &lim, &info, NULL, 0), 0);
    /* appends alone (acks=1): the write path */
    int64_t n = 0, last = 0, bo, lat;
    double t0 = now_s();
    uint64_t fds0 = m->m_stat_fdatasyncs;
    while (now_s() - t0 < 0.5) {
        for (int k = 0; k < 100; k++) {
            rb_buf_reset(&work);
            rb_buf_put(&work, blob.p, blob.len);
            assert_int_equal(st_log_append(l, work.p, work.len, &info, 1000, &bo, &last, &lat), 0);
            n++;
        }
    }
    double dt = now_s() - t0;
    assert_int_equal(stt_durable(l, last + 1), 0);
    print_message("throughput: appends only: %.0f appends/s (%zu-byte batches, %.0f MB/s), %llu fdatasyncs "
                  "(%.3f per append)\n",
                  n / dt, blob.len, n * blob.len / dt / 1e6, (unsigned long long)(m->m_stat_fdatasyncs - fds0),
                  (double)(m->m_stat_fdatasyncs - fds0) / (double)n);
    /* one thread, wait for durability after every append (acks=all, serial) */
    for (int threads = 1; threads <= 4; threads *= 4) {
        tp_arg_t a[4];
        pthread_t th[4];
        fds0 = m->m_stat_fdatasyncs;
        for (int t = 0; t < threads; t++) {
            a[t] = (tp_arg_t){l, 0.7, 0};
            pthread_create(&th[t], NULL, tp_main, &a[t]);
        }
        int64_t total = 0;
        for (int t = 0; t < threads; t++) {
            pthread_join(th[t], NULL);
            total += a[t].count;
        }
        print_message("throughput: %d thread(s) waiting for durability after each append: %.0f appends/s, "
                      "%.2f fdatasyncs per append\n",
                      threads, total / 0.7, (double)(m->m_stat_fdatasyncs - fds0) / (double)total);
        assert_true(total > 0);
    }
    /* sequential reads (a consumer catching up): st_log_read calls/s */
    st_log_state_t s;
    st_log_state(l, &s);
    size_t sizes[] = {16 * 1024, 1 << 20};
    for (size_t k = 0; k < RB_ARRAY_LEN(sizes); k++) {
        int64_t next = 0, calls = 0, bytes = 0;
        t0 = now_s();
        while (next < s.high_watermark && now_s() - t0 < 0.5) {
            st_read_t r;
            assert_int_equal(st_log_read(l, next, sizes[k], true, &r), 0);
            assert_true(r.len > 0);
            /* copy the range out (as sendfile would move it) and find the next offset */
            rb_buf_reserve(&work, r.len);
            assert_int_equal(pread(r.fd, work.p, r.len, r.file_off), (ssize_t)r.len);
            int64_t p = 0, last = -1;
            while (p < (int64_t)r.len) {
                last = (int64_t)rb_be64(work.p + p) + (int32_t)rb_be32(work.p + p + 23);
                p += (int64_t)rb_be32(work.p + p + 8) + KP_BATCH_LOG_OVERHEAD;
            }
            close(r.fd);
            next = last + 1;
            calls++;
            bytes += (int64_t)r.len;
        }
        dt = now_s() - t0;
        print_message("reads: max_bytes %zu: %.0f st_log_read/s, %.0f MB/s read back with one pread each\n",
                      sizes[k], calls / dt, bytes / dt / 1e6);
    }
    rb_buf_free(&blob);
    rb_buf_free(&work);
    st_log_close(l);
    st_mgr_close(m);
    stt_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_4_appenders_1_reader),
        cmocka_unit_test(test_many_logs),
        cmocka_unit_test(test_throughput),
    };
    rb_log_min_level = RB_LOG_WARN;
    /* base's CRC-32C picks its implementation lazily, racily (reported to
     * base); pick it before the threads start */
    (void)rb_crc32c(0, "", 0);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
