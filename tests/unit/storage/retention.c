/*
 * retention.c — storage unit tests for the log start offset (S7) and
 * retention (S8): DeleteRecords bounds and effects on reads and ListOffsets
 * by time, persistence across a clean stop and an unclean one, a crash
 * between the checkpoint and the unlink, a failed checkpoint, retention by
 * time (largest timestamp of a segment), by size, never the active segment,
 * and the cleaner thread.
 */
#include "st_test.h"

#include <dirent.h>
#include <stdatomic.h>

static int count_logs(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t k = strlen(de->d_name);
        if (k > 4 && !strcmp(de->d_name + k - 4, ".log")) n++;
    }
    closedir(d);
    return n;
}

static void part_dir(char *out, size_t cap, const char *dir, const char *t) { snprintf(out, cap, "%s/%s-0", dir, t); }

/* 10 segments of 3 batches x 5 records (segment_bytes fits 3 batches). */
static st_log_t *fill(st_mgr_t *m, const char *topic, st_log_config_t *c, int64_t ts0) {
    st_log_t *l;
    assert_int_equal(st_log_open(m, topic, 0, c, &l), 0);
    for (int i = 0; i < 30; i++) stt_append(l, 1, 5, ts0 + i * 5, 100, 1000);
    assert_int_equal(stt_durable(l, 150), 0);
    return l;
}

static void close_unclean(st_mgr_t *m, const char *dir) {
    st_mgr_close(m);
    char p[4200];
    snprintf(p, sizeof(p), "%s/.kafka_cleanShutdown", dir);
    unlink(p);
}

static void test_delete_records(void **state) {
    (void)state;
    char *dir = stt_mkdtemp(), pd[4200];
    st_mgr_t *m;
    assert_int_equal(st_mgr_open(dir, &m), 0);
    st_log_config_t c = stt_cfg(3 * 700, 256);
    c.retention_ms = -1;
    st_log_t *l = fill(m, "dr", &c, 1000);
    part_dir(pd, sizeof(pd), dir, "dr");
    st_log_state_t s;
    st_log_state(l, &s);
    int nseg = s.nsegments;
    assert_true(nseg >= 5);
    assert_int_equal(count_logs(pd), nseg);
    int64_t lw = -5;
    /* bounds */
    assert_int_equal(st_log_delete_records(l, 151, &lw), RB_OFFSET_OUT_OF_RANGE);
    assert_int_equal(st_log_delete_records(l, -2, &lw), RB_OFFSET_OUT_OF_RANGE);
    assert_int_equal(st_log_delete_records(l, 0, &lw), 0);
    assert_int_equal(lw, 0);
    /* inside a batch of a middle segment */
    assert_int_equal(st_log_delete_records(l, 37, &lw), 0);
    assert_int_equal(lw, 37);
    st_log_state(l, &s);
    assert_int_equal(s.log_start_offset, 37);
    assert_true(s.nsegments < nseg);
    assert_int_equal(count_logs(pd), s.nsegments);
    st_read_t r;
    assert_int_equal(st_log_read(l, 36, 1 << 20, true, &r), RB_OFFSET_OUT_OF_RANGE);
    assert_int_equal(r.log_start_offset, 37);
    assert_int_equal(st_log_read(l, 37, 1 << 20, true, &r), 0);
    stt_b_t b[64];
    assert_true(stt_parse_read(&r, b, 64) >= 1);
    assert_true(b[0].base <= 37 && b[0].last >= 37);
    /* by time: ts 1000 is offset 0, now below the start */
    int64_t off, ts;
    assert_int_equal(st_log_offset_for_time(l, 1000, &off, &ts), 0);
    assert_int_equal(off, 37);
    assert_int_equal(st_log_offset_for_time(l, 1000 + 100, &off, &ts), 0);
    assert_int_equal(off, 100);
    /* never backwards */
    assert_int_equal(st_log_delete_records(l, 10, &lw), 0);
    assert_int_equal(lw, 37);
    /* the checkpoint file has it */
    char p[4300], *txt;
    size_t tl;
    snprintf(p, sizeof(p), "%s/log-start-offset-checkpoint", dir);
    assert_int_equal(rb_read_file(p, &txt, &tl), 0);
    assert_string_equal(txt, "0\n1\ndr 0 37\n");
    free(txt);
    /* -1: the high watermark; the active segment stays */
    assert_int_equal(st_log_delete_records(l, -1, &lw), 0);
    assert_int_equal(lw, 150);
    st_log_state(l, &s);
    assert_int_equal(s.log_start_offset, 150);
    assert_int_equal(s.nsegments, 1);
    assert_int_equal(st_log_read(l, 149, 1 << 20, true, &r), RB_OFFSET_OUT_OF_RANGE);
    assert_int_equal(st_log_read(l, 150, 1 << 20, true, &r), 0);
    assert_int_equal(r.len, 0);
    assert_int_equal(st_log_offset_for_time(l, 0, &off, &ts), RB_ERR_NOT_FOUND);
    /* appends go on */
    assert_int_equal(stt_append(l, 1, 5, 9000, 100, 1000), 150);
    assert_int_equal(stt_durable(l, 155), 0);
    assert_int_equal(stt_read_all(l, 150, 1 << 16), 155);
    st_log_close(l);
    st_mgr_close(m);
    stt_rmdir(dir);
}

static void test_start_persists(void **state) {
    (void)state;
    char *dir = stt_mkdtemp();
    st_mgr_t *m;
    assert_int_equal(st_mgr_open(dir, &m), 0);
    st_log_config_t c = stt_cfg(3 * 700, 256);
    c.retention_ms = -1;
    st_log_t *l = fill(m, "ps", &c, 1000);
    int64_t lw;
    assert_int_equal(st_log_delete_records(l, 52, &lw), 0);
    st_log_close(l); /* remembered while closed */
    st_mgr_close(m);
    /* clean reopen */
    assert_int_equal(st_mgr_open(dir, &m), 0);
    assert_true(m->m_clean_start);
    assert_int_equal(st_log_open(m, "ps", 0, &c, &l), 0);
    st_log_state_t s;
    st_log_state(l, &s);
    assert_int_equal(s.log_start_offset, 52);
    assert_int_equal(s.log_end_offset, 150);
    assert_int_equal(stt_read_all(l, 52, 1 << 16), 150);
    st_read_t r;
    assert_int_equal(st_log_read(l, 51, 100, true, &r), RB_OFFSET_OUT_OF_RANGE);
    assert_int_equal(st_log_delete_records(l, 80, &lw), 0);
    /* unclean stop (no marker) */
    close_unclean(m, dir);
    assert_int_equal(st_mgr_open(dir, &m), 0);
    assert_false(m->m_clean_start);
    assert_int_equal(st_log_open(m, "ps", 0, &c, &l), 0);
    st_log_state(l, &s);
    assert_int_equal(s.log_start_offset, 80);
    assert_int_equal(stt_read_all(l, 80, 1 << 16), 150);
    /* deleting the log forgets its start */
    assert_int_equal(st_log_delete(l), 0);
    assert_int_equal(st_log_open(m, "ps", 0, &c, &l), 0);
    st_log_state(l, &s);
    assert_int_equal(s.log_start_offset, 0);
    assert_int_equal(s.log_end_offset, 0);
    st_log_close(l);
    st_mgr_close(m);
    stt_rmdir(dir);
}

/* A crash after the checkpoint, before the unlinks: segments below the
 * restored start are removed at open. */
static void test_crash_before_unlink(void **state) {
    (void)state;
    char *dir = stt_mkdtemp(), pd[4200], p[4300];
    st_mgr_t *m;
    assert_int_equal(st_mgr_open(dir, &m), 0);
    st_log_config_t c = stt_cfg(3 * 700, 256);
    c.retention_ms = -1;
    st_log_t *l = fill(m, "cu", &c, 1000);
    st_log_state_t s;
    st_log_state(l, &s);
    int nseg = s.nsegments;
    st_log_close(l);
    close_unclean(m, dir);
    snprintf(p, sizeof(p), "%s/log-start-offset-checkpoint", dir);
    const char *ck = "0\n1\ncu 0 61\n";
    assert_int_equal(rb_write_file_atomic(p, ck, strlen(ck)), 0);
    assert_int_equal(st_mgr_open(dir, &m), 0);
    assert_int_equal(st_log_open(m, "cu", 0, &c, &l), 0);
    st_log_state(l, &s);
    assert_int_equal(s.log_start_offset, 61);
    assert_true(s.nsegments < nseg);
    part_dir(pd, sizeof(pd), dir, "cu");
    assert_int_equal(count_logs(pd), s.nsegments);
    assert_int_equal(stt_read_all(l, 61, 1 << 16), 150);
    st_log_close(l);
    /* a start past the log end (the log lost its tail) is capped there */
    st_mgr_close(m);
    ck = "0\n1\ncu 0 500\n";
    assert_int_equal(rb_write_file_atomic(p, ck, strlen(ck)), 0);
    assert_int_equal(st_mgr_open(dir, &m), 0);
    assert_int_equal(st_log_open(m, "cu", 0, &c, &l), 0);
    st_log_state(l, &s);
    assert_int_equal(s.log_start_offset, 150);
    assert_int_equal(s.nsegments, 1);
    st_log_close(l);
    st_mgr_close(m);
    /* a malformed file is ignored: starts fall back to the first segment */
    ck = "0\n7\ngarbage\n";
    assert_int_equal(rb_write_file_atomic(p, ck, strlen(ck)), 0);
    assert_int_equal(st_mgr_open(dir, &m), 0);
    assert_int_equal(st_log_open(m, "cu", 0, &c, &l), 0);
    st_log_state(l, &s);
    assert_int_equal(s.log_start_offset, l->l_segs[0]->seg_base);
    assert_true(s.log_start_offset < 150);
    st_log_close(l);
    st_mgr_close(m);
    stt_rmdir(dir);
}

/* A failed checkpoint write: the start does not move, nothing is removed. */
static void test_ckpt_failure(void **state) {
    (void)state;
    char *dir = stt_mkdtemp(), pd[4200];
    st_mgr_t *m;
    assert_int_equal(st_mgr_open(dir, &m), 0);
    st_log_config_t c = stt_cfg(3 * 700, 256);
    c.retention_ms = -1;
    st_log_t *l = fill(m, "cf", &c, 1000);
    part_dir(pd, sizeof(pd), dir, "cf");
    int n0 = count_logs(pd);
    setenv("RILL_FAILPOINTS", "st.lso_ckpt=EIO*1", 1);
    rb_failpoint_reload();
    int64_t lw = -7;
    assert_int_equal(st_log_delete_records(l, 100, &lw), RB_KAFKA_STORAGE_ERROR);
    unsetenv("RILL_FAILPOINTS");
    rb_failpoint_reload();
    st_log_state_t s;
    st_log_state(l, &s);
    assert_int_equal(s.log_start_offset, 0);
    assert_int_equal(count_logs(pd), n0);
    assert_int_equal(stt_read_all(l, 0, 1 << 16), 150);
    assert_int_equal(st_log_delete_records(l, 100, &lw), 0);
    assert_int_equal(lw, 100);
    st_log_close(l);
    st_mgr_close(m);
    stt_rmdir(dir);
}

static void test_retention_time(void **state) {
    (void)state;
    char *dir = stt_mkdtemp(), pd[4200];
    st_mgr_t *m;
    assert_int_equal(st_mgr_open(dir, &m), 0);
    st_log_config_t c = stt_cfg(3 * 700, 256);
    c.retention_ms = 10000;
    /* timestamps 1000 + offset */
    st_log_t *l = fill(m, "rt", &c, 1000);
    part_dir(pd, sizeof(pd), dir, "rt");
    st_log_state_t s0, s;
    st_log_state(l, &s0);
    /* now = 1000 + 60 + 10000: segments whose largest ts < 1060 go */
    int k = st_log_retention_run(l, 1000 + 60 + 10000);
    assert_true(k >= 1);
    st_log_state(l, &s);
    assert_int_equal(s.nsegments, s0.nsegments - k);
    assert_true(s.log_start_offset > 0 && s.log_start_offset <= 60);
    assert_int_equal(count_logs(pd), s.nsegments);
    /* the start is a segment base: a whole batch starts there */
    st_read_t r;
    assert_int_equal(st_log_read(l, s.log_start_offset, 1 << 20, true, &r), 0);
    stt_b_t b[64];
    assert_true(stt_parse_read(&r, b, 64) >= 1);
    assert_int_equal(b[0].base, s.log_start_offset);
    /* far in the future: all but the active segment */
    k = st_log_retention_run(l, 1LL << 50);
    st_log_state(l, &s);
    assert_int_equal(s.nsegments, 1);
    assert_true(s.log_start_offset > 60 && s.log_start_offset < 150);
    assert_int_equal(stt_read_all(l, s.log_start_offset, 1 << 16), 150);
    assert_int_equal(st_log_retention_run(l, 1LL << 50), 0);
    /* persisted */
    int64_t start = s.log_start_offset;
    st_log_close(l);
    close_unclean(m, dir);
    assert_int_equal(st_mgr_open(dir, &m), 0);
    c.retention_ms = -1;
    assert_int_equal(st_log_open(m, "rt", 0, &c, &l), 0);
    st_log_state(l, &s);
    assert_int_equal(s.log_start_offset, start);
    st_log_close(l);
    st_mgr_close(m);
    stt_rmdir(dir);
}

static void test_retention_bytes(void **state) {
    (void)state;
    char *dir = stt_mkdtemp();
    st_mgr_t *m;
    assert_int_equal(st_mgr_open(dir, &m), 0);
    st_log_config_t c = stt_cfg(3 * 700, 256);
    c.retention_ms = -1;
    c.retention_bytes = 3000;
    st_log_t *l = fill(m, "rb", &c, 1000);
    st_log_state_t s0, s;
    st_log_state(l, &s0);
    int k = st_log_retention_run(l, rb_now_ms());
    assert_true(k >= 1);
    st_log_state(l, &s);
    assert_true(s.size_bytes >= 3000);
    /* one more segment off would go below the limit */
    assert_true(s.size_bytes - l->l_segs[0]->seg_size < 3000);
    assert_int_equal(s.log_start_offset, l->l_segs[0]->seg_base);
    assert_int_equal(stt_read_all(l, s.log_start_offset, 1 << 16), 150);
    /* a limit of 0 keeps the active segment */
    c.retention_bytes = 0;
    st_log_set_config(l, &c);
    st_log_retention_run(l, rb_now_ms());
    st_log_state(l, &s);
    assert_int_equal(s.nsegments, 1);
    st_log_close(l);
    st_mgr_close(m);
    stt_rmdir(dir);
}

/* The cleaner thread applies retention every check interval, next to
 * appends and reads, and a delete of a log it visits waits for it. */
static void test_cleaner_thread(void **state) {
    (void)state;
    char *dir = stt_mkdtemp();
    st_mgr_t *m;
    assert_int_equal(st_mgr_open(dir, &m), 0);
    st_log_config_t c = stt_cfg(3 * 700, 256);
    c.retention_ms = 1000; /* timestamps from 1000: all old */
    st_log_t *l = fill(m, "ct", &c, 1000);
    st_mgr_set_retention_check_ms(m, 20);
    st_log_state_t s;
    for (int i = 0; i < 200; i++) {
        st_log_state(l, &s);
        if (s.nsegments == 1) break;
        usleep(10000);
    }
    assert_int_equal(s.nsegments, 1);
    assert_true(s.log_start_offset > 0);
    /* appends and reads keep working while it runs */
    for (int i = 0; i < 20; i++) stt_append(l, 1, 5, 1000, 100, 1000);
    assert_int_equal(stt_durable(l, 250), 0);
    st_log_state(l, &s);
    assert_true(s.log_start_offset <= 250);
    assert_int_equal(stt_read_all(l, s.log_start_offset, 1 << 16), 250);
    /* close and delete while the cleaner is busy */
    assert_int_equal(st_log_delete(l), 0);
    st_mgr_close(m);
    stt_rmdir(dir);
}

/* DeleteRecords and retention next to an appender and a reader: reads
 * either succeed with whole batches at or after the start they saw, or get
 * OFFSET_OUT_OF_RANGE; nothing tears (run under TSan/ASan too). */
typedef struct {
    st_log_t *l;
    atomic_bool stop;
    int reads, oor;
} race_t;

static void *race_reader(void *arg) {
    race_t *x = arg;
    while (!atomic_load(&x->stop)) {
        st_log_state_t s;
        st_log_state(x->l, &s);
        st_read_t r;
        int rc = st_log_read(x->l, s.log_start_offset, 4096, true, &r);
        if (rc == RB_OFFSET_OUT_OF_RANGE) {
            x->oor++;
            continue;
        }
        assert_int_equal(rc, 0);
        if (r.len) {
            stt_b_t b[64];
            int nb = stt_parse_read(&r, b, 64);
            assert_true(nb >= 1);
            assert_true(b[0].last >= s.log_start_offset);
        }
        x->reads++;
    }
    return NULL;
}

static void test_race(void **state) {
    (void)state;
    char *dir = stt_mkdtemp();
    st_mgr_t *m;
    assert_int_equal(st_mgr_open(dir, &m), 0);
    st_log_config_t c = stt_cfg(3 * 700, 256);
    c.retention_bytes = 8000;
    c.retention_ms = -1;
    st_log_t *l;
    assert_int_equal(st_log_open(m, "race", 0, &c, &l), 0);
    st_mgr_set_retention_check_ms(m, 5);
    race_t x = {.l = l, .reads = 0, .oor = 0};
    atomic_init(&x.stop, false);
    pthread_t th;
    pthread_create(&th, NULL, race_reader, &x);
    int64_t next = 0, lw;
    for (int i = 0; i < 200; i++) {
        next = stt_append(l, 1, 5, 1000 + i, 100, 1000) + 5;
        if (i % 10 == 9) {
            assert_int_equal(stt_durable(l, next), 0);
            int rc = st_log_delete_records(l, next - 7, &lw);
            assert_int_equal(rc, 0);
            assert_true(lw >= next - 7);
        }
    }
    assert_int_equal(stt_durable(l, next), 0);
    atomic_store(&x.stop, true);
    pthread_join(th, NULL);
    assert_true(x.reads > 0);
    st_log_state_t s;
    st_log_state(l, &s);
    assert_int_equal(s.log_end_offset, 1000);
    assert_int_equal(stt_read_all(l, s.log_start_offset, 1 << 16), 1000);
    st_log_close(l);
    st_mgr_close(m);
    stt_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delete_records),
        cmocka_unit_test(test_start_persists),
        cmocka_unit_test(test_crash_before_unlink),
        cmocka_unit_test(test_ckpt_failure),
        cmocka_unit_test(test_retention_time),
        cmocka_unit_test(test_retention_bytes),
        cmocka_unit_test(test_cleaner_thread),
        cmocka_unit_test(test_race),
    };
    rb_log_min_level = RB_LOG_ERROR;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
