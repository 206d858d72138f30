/*
 * faults.c — storage unit tests for S1, S3, S4 with injected failures:
 * ENOSPC on append (nothing partial stays, the next append works once the
 * failpoint clears), a failed fdatasync (the log goes fatal, waiters and later
 * appends get KAFKA_STORAGE_ERROR, the checkpoint and the high watermark stay
 * put, no clean-shutdown marker), a failed directory fsync after a roll, and
 * the syncfs() path with one failing log among many.
 */
#include "st_test.h"

typedef struct {
    char *dir;
    st_mgr_t *m;
} fx_t;

static void fp_set(const char *v) {
    if (v) setenv("RILL_FAILPOINTS", v, 1); else unsetenv("RILL_FAILPOINTS");
    rb_failpoint_reload();
}

static int fx_setup(void **state) {
    fx_t *f = calloc(1, sizeof(*f));
    f->dir = stt_mkdtemp();
    assert_int_equal(st_mgr_open(f->dir, &f->m), 0);
    *state = f;
    return 0;
}

static int fx_teardown(void **state) {
    fx_t *f = *state;
    fp_set(NULL);
    if (f->m) st_mgr_close(f->m);
    stt_rmdir(f->dir);
    free(f);
    return 0;
}

static int64_t seg_size0(fx_t *f, const char *topic) {
    char p[4200];
    snprintf(p, sizeof(p), "%s/%s-0/00000000000000000000.log", f->dir, topic);
    return stt_file_size(p);
}

static void test_enospc_once(void **state) {
    fx_t *f = *state;
    st_log_config_t c = stt_cfg(1 << 20, 4096);
    st_log_t *l;
    assert_int_equal(st_log_open(f->m, "nospc", 0, &c, &l), 0);
    stt_append(l, 2, 3, 100, 50, 1000);
    assert_int_equal(stt_durable(l, 6), 0);
    int64_t size = seg_size0(f, "nospc");
    fp_set("st.append.write=ENOSPC*1");
    rb_buf_t b;
    rb_buf_init(&b);
    for (int i = 0; i < 4; i++) stt_batch(&b, 5, 200, 300, KP_COMP_NONE);
    assert_int_equal(stt_append_blob(l, &b, 1000, NULL, NULL), RB_KAFKA_STORAGE_ERROR);
    rb_buf_free(&b);
    assert_int_equal(seg_size0(f, "nospc"), size); /* the half-written bytes were cut off */
    st_log_state_t s;
    st_log_state(l, &s);
    assert_int_equal(s.log_end_offset, 6);
    assert_int_equal(s.size_bytes, size);
    assert_false(s.fatal);
    /* the failpoint fired once: the next append works and takes the same offsets */
    int64_t base = stt_append(l, 1, 4, 300, 50, 1000);
    assert_int_equal(base, 6);
    assert_int_equal(stt_durable(l, 10), 0);
    assert_int_equal(stt_read_all(l, 0, 100), 10);
    st_log_close(l);
}

static void test_enospc_until_cleared(void **state) {
    fx_t *f = *state;
    st_log_config_t c = stt_cfg(1 << 20, 128);
    st_log_t *l;
    assert_int_equal(st_log_open(f->m, "full", 0, &c, &l), 0);
    stt_append(l, 3, 2, 100, 50, 1000);
    assert_int_equal(stt_durable(l, 6), 0);
    int64_t size = seg_size0(f, "full");
    fp_set("st.append.write=ENOSPC");
    for (int i = 0; i < 5; i++) {
        rb_buf_t b;
        rb_buf_init(&b);
        stt_batch(&b, 1 + i, 200, 100, KP_COMP_NONE);
        assert_int_equal(stt_append_blob(l, &b, 1000, NULL, NULL), RB_KAFKA_STORAGE_ERROR);
        rb_buf_free(&b);
        assert_int_equal(seg_size0(f, "full"), size);
    }
    fp_set(NULL);
    assert_int_equal(stt_append(l, 1, 1, 1, 10, 1000), 6);
    assert_int_equal(stt_durable(l, 7), 0);
    assert_int_equal(stt_read_all(l, 0, 1), 7);
    /* and what is on disk recovers to exactly that */
    st_log_close(l);
    st_mgr_close(f->m);
    char p[4200];
    snprintf(p, sizeof(p), "%s/.kafka_cleanShutdown", f->dir);
    unlink(p);
    assert_int_equal(st_mgr_open(f->dir, &f->m), 0);
    assert_int_equal(st_log_open(f->m, "full", 0, &c, &l), 0);
    assert_int_equal(stt_read_all(l, 0, 1000), 7);
    st_log_close(l);
}

static void test_fsync_fails(void **state) {
    fx_t *f = *state;
    st_log_config_t c = stt_cfg(1 << 20, 4096);
    st_log_t *l, *other;
    assert_int_equal(st_log_open(f->m, "fs", 0, &c, &l), 0);
    assert_int_equal(st_log_open(f->m, "fsok", 0, &c, &other), 0);
    stt_append(l, 1, 5, 100, 50, 1000);
    assert_int_equal(stt_durable(l, 5), 0);
    assert_int_equal(stt_durable(other, 0), 0);
    assert_int_equal(st_mgr_checkpoint(f->m), 0);
    fp_set("st.fsync=EIO*1");
    stt_append(l, 1, 5, 200, 50, 1000);
    /* three waiters: all get the error */
    stt_wait_t w[3];
    for (int i = 0; i < 3; i++) {
        stt_wait_init(&w[i]);
        st_log_sync_wait(l, 6 + i * 2, stt_wait_cb, &w[i]);
    }
    for (int i = 0; i < 3; i++) assert_int_equal(stt_wait_done(&w[i]), RB_KAFKA_STORAGE_ERROR);
    fp_set(NULL); /* the disk "works" again: no retry may pretend the data is safe */
    st_log_state_t s;
    st_log_state(l, &s);
    assert_true(s.fatal);
    assert_int_equal(s.high_watermark, 5);
    assert_int_equal(s.log_end_offset, 10);
    assert_int_equal(st_mgr_fatal_count(f->m), 1);
    rb_buf_t b;
    rb_buf_init(&b);
    stt_batch(&b, 1, 1, 10, KP_COMP_NONE);
    assert_int_equal(stt_append_blob(l, &b, 1000, NULL, NULL), RB_KAFKA_STORAGE_ERROR);
    rb_buf_free(&b);
    stt_wait_t w2;
    stt_wait_init(&w2);
    assert_int_equal(st_log_sync_wait(l, 1, stt_wait_cb, &w2), 1);
    assert_int_equal(w2.err, RB_KAFKA_STORAGE_ERROR);
    st_read_t r;
    assert_int_equal(st_log_read(l, 0, 100, true, &r), RB_KAFKA_STORAGE_ERROR);
    /* the other log is unaffected */
    stt_append(other, 1, 2, 1, 10, 1000);
    assert_int_equal(stt_durable(other, 2), 0);
    /* S5: the checkpoint keeps the fatal log's durable offset */
    assert_int_equal(st_mgr_checkpoint(f->m), 0);
    char p[4200], *txt;
    size_t tl;
    snprintf(p, sizeof(p), "%s/recovery-point-offset-checkpoint", f->dir);
    assert_int_equal(rb_read_file(p, &txt, &tl), 0);
    assert_non_null(strstr(txt, "fs 0 5\n"));
    assert_non_null(strstr(txt, "fsok 0 2\n"));
    free(txt);
    st_log_close(l);
    st_log_close(other);
    st_mgr_close(f->m);
    f->m = NULL;
    /* no clean-shutdown marker after a fatal log: the next start recovers */
    snprintf(p, sizeof(p), "%s/.kafka_cleanShutdown", f->dir);
    assert_int_equal(access(p, F_OK), -1);
    assert_int_equal(st_mgr_open(f->dir, &f->m), 0);
    assert_false(f->m->m_clean_start);
    assert_int_equal(st_log_open(f->m, "fs", 0, &c, &l), 0);
    st_log_state(l, &s);
    assert_false(s.fatal);
    assert_true(s.log_end_offset >= 5);
    assert_int_equal(stt_read_all(l, 0, 1000), s.log_end_offset);
    st_log_close(l);
}

/* S4: after a roll, the new segment's directory entry must be fsynced before
 * anything in it is durable. */
static void test_dir_fsync_fails(void **state) {
    fx_t *f = *state;
    st_log_config_t c = stt_cfg(1200, 4096);
    st_log_t *l;
    assert_int_equal(st_log_open(f->m, "dirs", 0, &c, &l), 0);
    stt_append(l, 1, 2, 1, 100, 1000);
    assert_int_equal(stt_durable(l, 2), 0);
    fp_set("st.fsync.dir=EIO");
    stt_append(l, 1, 2, 1, 100, 1000); /* same segment: no dir entry created */
    assert_int_equal(stt_durable(l, 4), 0);
    stt_append(l, 1, 2, 1, 300, 1000); /* rolls */
    st_log_state_t s;
    st_log_state(l, &s);
    assert_int_equal(s.nsegments, 2);
    assert_int_equal(stt_durable(l, 6), RB_KAFKA_STORAGE_ERROR);
    st_log_state(l, &s);
    assert_true(s.fatal);
    assert_int_equal(s.high_watermark, 4);
    fp_set(NULL);
    st_log_close(l);
}

static void test_syncfs_many_logs(void **state) {
    fx_t *f = *state;
    st_mgr_set_syncfs_min(f->m, 4);
    if (f->m->m_syncfs_min == 0) skip(); /* kernel < 5.8 */
    st_log_config_t c = stt_cfg(1 << 20, 4096);
    enum { N = 24 };
    st_log_t *l[N];
    char name[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "sfs%d", i);
        assert_int_equal(st_log_open(f->m, name, 0, &c, &l[i]), 0);
    }
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < N; i++) stt_append(l[i], 1, 3, 1, 100, 1000);
        for (int i = 0; i < N; i++) assert_int_equal(stt_durable(l[i], (round + 1) * 3), 0);
    }
    assert_true(f->m->m_stat_syncfs > 0);
    /* one injected failure among many dirty logs: exactly one goes fatal */
    fp_set("st.fsync=EIO*1");
    for (int i = 0; i < N; i++) stt_append(l[i], 1, 3, 1, 100, 1000);
    int failed = 0;
    for (int i = 0; i < N; i++) {
        int rc = stt_durable(l[i], 18);
        assert_true(rc == 0 || rc == RB_KAFKA_STORAGE_ERROR);
        failed += rc != 0;
    }
    fp_set(NULL);
    assert_int_equal(failed, 1);
    assert_int_equal(st_mgr_fatal_count(f->m), 1);
    for (int i = 0; i < N; i++) st_log_close(l[i]);
}

/* Closing with a waiter for an offset never appended completes it with an error. */
static void test_close_pending_waiter(void **state) {
    fx_t *f = *state;
    st_log_config_t c = stt_cfg(1 << 20, 4096);
    st_log_t *l;
    assert_int_equal(st_log_open(f->m, "pend", 0, &c, &l), 0);
    stt_append(l, 1, 2, 1, 10, 1000);
    stt_wait_t ok, never;
    stt_wait_init(&ok);
    stt_wait_init(&never);
    st_log_sync_wait(l, 2, stt_wait_cb, &ok);
    st_log_sync_wait(l, 100, stt_wait_cb, &never);
    st_log_close(l);
    assert_int_equal(stt_wait_done(&ok), 0);
    assert_int_equal(stt_wait_done(&never), RB_KAFKA_STORAGE_ERROR);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_enospc_once, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_enospc_until_cleared, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_fsync_fails, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_dir_fsync_fails, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_syncfs_many_logs, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_close_pending_waiter, fx_setup, fx_teardown),
    };
    rb_log_min_level = RB_LOG_ERROR + 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
