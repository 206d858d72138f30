/*
 * producers.c — idempotent producer state: the sequence rules of the table
 * (storage.h S13), snapshot encoding, and through a real log: duplicates
 * answered with their original offsets and stored once, state surviving
 * a clean reopen, an unclean reopen without snapshots (rebuilt from the log),
 * a damaged snapshot, a snapshot past the recovered log end, and DeleteRecords
 * and retention deleting the segments that held the producer's batches
 * (S15, S16).
 */
#include "st_test.h"

#include <dirent.h>

/* ---- the table ------------------------------------------------------------------ */

static void test_seq_add_wraps(void **state) {
    (void)state;
    assert_int_equal(st_seq_add(0, 4), 4);
    assert_int_equal(st_seq_add(INT32_MAX, 0), INT32_MAX);
    assert_int_equal(st_seq_add(INT32_MAX, 1), 0);
    assert_int_equal(st_seq_add(INT32_MAX - 2, 5), 2);
    assert_int_equal(st_seq_add(INT32_MAX - 4, 4), INT32_MAX);
}

static void test_rules(void **state) {
    (void)state;
    st_ptab_t t = {0};
    int64_t df = -1, dl = -1;
    /* unknown producer: only sequence 0 starts it */
    assert_int_equal(st_pt_check(&t, 7, 0, 3, 5, &df, &dl), RB_UNKNOWN_PRODUCER_ID);
    assert_int_equal(st_pt_check(&t, 7, 0, 0, 4, &df, &dl), 0);
    st_pt_record(&t, 7, 0, 0, 4, 100, 104, 1000);
    /* in sequence, gap, duplicate */
    assert_int_equal(st_pt_check(&t, 7, 0, 5, 9, &df, &dl), 0);
    assert_int_equal(st_pt_check(&t, 7, 0, 6, 9, &df, &dl), RB_OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_int_equal(st_pt_check(&t, 7, 0, 0, 4, &df, &dl), RB_DUPLICATE_SEQUENCE_NUMBER);
    assert_int_equal(df, 100);
    assert_int_equal(dl, 104);
    /* same first sequence, different length: not a duplicate, out of order */
    assert_int_equal(st_pt_check(&t, 7, 0, 0, 3, &df, &dl), RB_OUT_OF_ORDER_SEQUENCE_NUMBER);
    /* the window: 5 batches; the 6th-oldest is no longer a duplicate */
    for (int i = 1; i <= 5; i++) st_pt_record(&t, 7, 0, i * 5, i * 5 + 4, 100 + i * 5, 104 + i * 5, 1000);
    assert_int_equal(st_pt_check(&t, 7, 0, 0, 4, &df, &dl), RB_OUT_OF_ORDER_SEQUENCE_NUMBER);
    for (int i = 1; i <= 5; i++) {
        assert_int_equal(st_pt_check(&t, 7, 0, i * 5, i * 5 + 4, &df, &dl), RB_DUPLICATE_SEQUENCE_NUMBER);
        assert_int_equal(df, 100 + i * 5);
        assert_int_equal(dl, 104 + i * 5);
    }
    assert_int_equal(st_pt_check(&t, 7, 0, 30, 30, &df, &dl), 0);
    /* epochs: older refused, newer must start at 0 and resets the window */
    assert_int_equal(st_pt_check(&t, 7, -1, 30, 30, &df, &dl), RB_INVALID_PRODUCER_EPOCH);
    assert_int_equal(st_pt_check(&t, 7, 1, 30, 30, &df, &dl), RB_OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_int_equal(st_pt_check(&t, 7, 1, 0, 0, &df, &dl), 0);
    st_pt_record(&t, 7, 1, 0, 0, 200, 200, 2000);
    assert_int_equal(st_pt_check(&t, 7, 0, 30, 30, &df, &dl), RB_INVALID_PRODUCER_EPOCH);
    assert_int_equal(st_pt_check(&t, 7, 1, 25, 29, &df, &dl), RB_OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_int_equal(st_pt_check(&t, 7, 1, 1, 1, &df, &dl), 0);
    /* producers are independent */
    assert_int_equal(st_pt_check(&t, 8, 0, 0, 0, &df, &dl), 0);
    /* wrap: after a batch ending at INT32_MAX the next starts at 0 */
    st_pt_record(&t, 9, 3, INT32_MAX - 9, INT32_MAX, 300, 309, 3000);
    assert_int_equal(st_pt_check(&t, 9, 3, 0, 9, &df, &dl), 0);
    assert_int_equal(st_pt_check(&t, 9, 3, INT32_MAX, INT32_MAX, &df, &dl), RB_OUT_OF_ORDER_SEQUENCE_NUMBER);
    st_pt_record(&t, 9, 3, INT32_MAX - 1, 1, 310, 313, 3000); /* a batch spanning the wrap */
    assert_int_equal(st_pt_check(&t, 9, 3, 2, 2, &df, &dl), 0);
    assert_int_equal(st_pt_check(&t, 9, 3, INT32_MAX - 1, 1, &df, &dl), RB_DUPLICATE_SEQUENCE_NUMBER);
    assert_int_equal(df, 310);
    /* expiry drops idle producers only */
    assert_int_equal(t.pt_n, 2);
    st_pt_record(&t, 8, 0, 0, 0, 400, 400, 9000);
    st_pt_expire(&t, 10000, 5000);
    assert_null(st_pt_find(&t, 7));
    assert_null(st_pt_find(&t, 9));
    assert_non_null(st_pt_find(&t, 8));
    assert_int_equal(t.pt_n, 1);
    st_pt_free(&t);
}

static void test_many_producers_and_codec(void **state) {
    (void)state;
    st_ptab_t t = {0}, u = {0};
    for (int64_t pid = 0; pid < 3000; pid++)
        for (int k = 0; k < (int)(pid % 7); k++) st_pt_record(&t, pid, (int16_t)(pid % 3), k, k, pid * 10 + k, pid * 10 + k, 5);
    rb_buf_t b;
    rb_buf_init(&b);
    assert_int_equal(st_pt_encode(&t, 1234, &b), 0);
    int64_t off = -1;
    assert_int_equal(st_pt_decode(&u, b.p, b.len, &off), 0);
    assert_int_equal(off, 1234);
    assert_int_equal(u.pt_n, t.pt_n);
    for (int64_t pid = 0; pid < 3000; pid++) {
        const st_prod_t *a = st_pt_find(&t, pid), *c = st_pt_find(&u, pid);
        if (!a) {
            assert_null(c);
            continue;
        }
        assert_non_null(c);
        assert_int_equal(a->p_epoch, c->p_epoch);
        assert_int_equal(a->p_n, RB_MIN(c->p_n, ST_PROD_WINDOW));
        assert_memory_equal(a->p_b, c->p_b, sizeof(a->p_b[0]) * (size_t)a->p_n);
    }
    /* every single-byte flip and every truncation is refused */
    for (size_t i = 0; i < b.len; i += 7) {
        st_ptab_t v = {0};
        b.p[i] ^= 0x40;
        assert_int_equal(st_pt_decode(&v, b.p, b.len, &off), RB_CORRUPT_MESSAGE);
        b.p[i] ^= 0x40;
        st_pt_free(&v);
    }
    for (size_t n = 0; n < b.len; n += 13) {
        st_ptab_t v = {0};
        assert_int_equal(st_pt_decode(&v, b.p, n, &off), RB_CORRUPT_MESSAGE);
        st_pt_free(&v);
    }
    rb_buf_free(&b);
    st_pt_free(&t);
    st_pt_free(&u);
}

/* ---- through a log ------------------------------------------------------------- */

STT_FIXTURE("idem", 1500, 100)

static void fx_close(fx_t *f, bool clean) {
    stt_fx_close(f);
    if (!clean) {
        char p[4300];
        snprintf(p, sizeof(p), "%s/.kafka_cleanShutdown", f->dir);
        assert_int_equal(unlink(p), 0);
    }
}

/* Appends one batch of n records from (pid, epoch) starting at seq; returns rc. */
static int idem_append(st_log_t *l, int64_t pid, int16_t epoch, int32_t seq, int n, int64_t *base, int64_t *last) {
    kp_record_in_t recs[16];
    char vals[16][16];
    memset(recs, 0, sizeof(recs));
    for (int i = 0; i < n; i++) {
        snprintf(vals[i], sizeof(vals[i]), "v%d-%d", seq, i);
        recs[i].key.len = -1;
        recs[i].value.p = (const uint8_t *)vals[i];
        recs[i].value.len = (int32_t)strlen(vals[i]);
        recs[i].timestamp = rb_now_ms();
    }
    rb_buf_t b;
    rb_buf_init(&b);
    kp_batch_build(&b, 0, KP_COMP_NONE, recs, n, pid, epoch, seq, 0);
    int rc = stt_append_blob(l, &b, rb_now_ms(), base, last);
    rb_buf_free(&b);
    return rc;
}

static int count_snapshots(fx_t *f) {
    DIR *d = opendir(f->pdir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strstr(de->d_name, ".snapshot") && !strstr(de->d_name, ".tmp")) n++;
    closedir(d);
    return n;
}

static void remove_snapshots(fx_t *f) {
    DIR *d = opendir(f->pdir);
    assert_non_null(d);
    struct dirent *de;
    char p[4600];
    while ((de = readdir(d))) {
        if (!strstr(de->d_name, ".snapshot")) continue;
        snprintf(p, sizeof(p), "%s/%s", f->pdir, de->d_name);
        assert_int_equal(unlink(p), 0);
    }
    closedir(d);
}

/* Writes 40 batches of 4 records for pid 1 (seq 0..159); every batch is then
 * retried and must come back as a duplicate with its offsets (last 5 only). */
static void write_and_check_dups(fx_t *f, int64_t *offs) {
    for (int i = 0; i < 40; i++) {
        int64_t b, e;
        assert_int_equal(idem_append(f->l, 1, 0, i * 4, 4, &b, &e), 0);
        offs[i] = b;
        assert_int_equal(e, b + 3);
    }
}

static void expect_dups(fx_t *f, const int64_t *offs) {
    st_log_state_t before, after;
    st_log_state(f->l, &before);
    for (int i = 35; i < 40; i++) {
        int64_t b = -1, e = -1;
        assert_int_equal(idem_append(f->l, 1, 0, i * 4, 4, &b, &e), RB_DUPLICATE_SEQUENCE_NUMBER);
        assert_int_equal(b, offs[i]);
        assert_int_equal(e, offs[i] + 3);
    }
    /* older than the window: out of order; a gap: out of order */
    assert_int_equal(idem_append(f->l, 1, 0, 34 * 4, 4, NULL, NULL), RB_OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_int_equal(idem_append(f->l, 1, 0, 161, 1, NULL, NULL), RB_OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_int_equal(idem_append(f->l, 1, -1, 160, 1, NULL, NULL), RB_INVALID_PRODUCER_EPOCH);
    st_log_state(f->l, &after);
    assert_int_equal(after.log_end_offset, before.log_end_offset); /* nothing stored */
    int16_t ep;
    int32_t ls;
    assert_int_equal(st_log_producer(f->l, 1, &ep, &ls), 0);
    assert_int_equal(ep, 0);
    assert_int_equal(ls, 159);
}

static void test_log_dups_and_reopen(void **state) {
    fx_t *f = *state;
    fx_open(f);
    int64_t offs[40];
    /* a plain batch in between: offsets of pid 1 are not contiguous */
    stt_append(f->l, 1, 3, 0, 10, rb_now_ms());
    write_and_check_dups(f, offs);
    assert_true(count_snapshots(f) >= 1); /* rolled at least once (1500-byte segments) */
    assert_true(count_snapshots(f) <= 2);
    expect_dups(f, offs);
    assert_int_equal(stt_durable(f->l, offs[39] + 4), 0);
    /* clean close: snapshot at the end; reopen keeps dedup */
    fx_close(f, true);
    fx_open(f);
    expect_dups(f, offs);
    /* unclean, no snapshots: rebuilt from the log */
    fx_close(f, false);
    remove_snapshots(f);
    fx_open(f);
    expect_dups(f, offs);
    /* a damaged snapshot is ignored (rebuilt from the log) */
    fx_close(f, true);
    char p[4400];
    st_log_state_t s;
    snprintf(p, sizeof(p), "%s/%020lld.snapshot", f->pdir, (long long)(offs[39] + 4));
    FILE *fp = fopen(p, "r+b");
    assert_non_null(fp);
    fseek(fp, 30, SEEK_SET);
    fputc(0x55, fp);
    fclose(fp);
    fx_open(f);
    expect_dups(f, offs);
    /* the next batch in sequence is accepted after all that */
    assert_int_equal(idem_append(f->l, 1, 0, 160, 2, NULL, NULL), 0);
    st_log_state(f->l, &s);
    assert_int_equal(s.log_end_offset, offs[39] + 6);
}

/* A snapshot past the log end (the log lost its tail) must not be used. */
static void test_snapshot_past_end(void **state) {
    fx_t *f = *state;
    fx_open(f);
    int64_t offs[40];
    write_and_check_dups(f, offs);
    fx_close(f, true);
    /* chop the last batch off the active segment, as an unclean recovery of a
     * torn write would, and keep the snapshot taken at close (covers it) */
    int64_t last_base = offs[39];
    DIR *d = opendir(f->pdir);
    struct dirent *de;
    int64_t active = -1;
    while ((de = readdir(d))) {
        long long b;
        char ext[16];
        if (sscanf(de->d_name, "%20lld.%15s", &b, ext) == 2 && !strcmp(ext, "log") && b > active) active = b;
    }
    closedir(d);
    char p[4400];
    snprintf(p, sizeof(p), "%s/%020lld.log", f->pdir, (long long)active);
    int64_t sz = stt_file_size(p);
    assert_true(sz > 0);
    /* walk the segment to its last batch */
    int fd = open(p, O_RDONLY);
    int64_t pos = 0, bsz = 0;
    while (pos < sz) {
        uint8_t hdr[12];
        assert_int_equal(pread(fd, hdr, 12, pos), 12);
        bsz = (int64_t)rb_be32(hdr + 8) + 12;
        pos += bsz;
    }
    close(fd);
    assert_int_equal(pos, sz);
    assert_int_equal(truncate(p, sz - bsz), 0);
    char m[4300];
    snprintf(m, sizeof(m), "%s/.kafka_cleanShutdown", f->dir);
    unlink(m);
    fx_open(f);
    st_log_state_t s;
    st_log_state(f->l, &s);
    assert_int_equal(s.log_end_offset, last_base);
    /* the lost batch is not a duplicate: it is the next in sequence */
    int64_t b = -1;
    assert_int_equal(idem_append(f->l, 1, 0, 39 * 4, 4, &b, NULL), 0);
    assert_int_equal(b, last_base);
    assert_int_equal(idem_append(f->l, 1, 0, 38 * 4, 4, &b, NULL), RB_DUPLICATE_SEQUENCE_NUMBER);
    assert_int_equal(b, offs[38]);
}

/* Writes pid 1's 40 batches, then plain records so that its batches sit in
 * sealed segments only, all durable; returns the log end offset. */
static int64_t fill_then_plain(fx_t *f, int64_t *offs) {
    fx_open(f);
    write_and_check_dups(f, offs);
    for (int i = 0; i < 30; i++) stt_append(f->l, 1, 4, 0, 10, rb_now_ms());
    st_log_state_t s;
    st_log_state(f->l, &s);
    assert_int_equal(stt_durable(f->l, s.log_end_offset), 0);
    return s.log_end_offset;
}

/* After the deletion: every segment holding pid 1's batches is gone, and its
 * state is intact now, after a clean reopen and after an unclean one. */
static void expect_state_outlived(fx_t *f, const int64_t *offs) {
    st_log_state_t s;
    st_log_state(f->l, &s);
    assert_true(s.log_start_offset > offs[39]);
    expect_dups(f, offs);
    fx_close(f, true);
    fx_open(f);
    expect_dups(f, offs);
    fx_close(f, false); /* unclean: the snapshot still holds the state */
    fx_open(f);
    expect_dups(f, offs);
}

/* DeleteRecords removing every segment holding the producer's batches keeps
 * its state (S16). */
static void test_state_outlives_segments(void **state) {
    fx_t *f = *state;
    int64_t offs[40], low = -1;
    int64_t leo = fill_then_plain(f, offs);
    assert_int_equal(st_log_delete_records(f->l, leo, &low), 0);
    expect_state_outlived(f, offs);
}

/* The same through retention (by size): the cleaner's deletion path. */
static void test_state_outlives_retention(void **state) {
    fx_t *f = *state;
    int64_t offs[40];
    fill_then_plain(f, offs);
    st_log_config_t c = f->cfg;
    c.retention_bytes = 1; /* keep only what cannot go: the active segment */
    st_log_set_config(f->l, &c);
    assert_true(st_log_retention_run(f->l, rb_now_ms()) > 0);
    expect_state_outlived(f, offs);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seq_add_wraps),
        cmocka_unit_test(test_rules),
        cmocka_unit_test(test_many_producers_and_codec),
        cmocka_unit_test_setup_teardown(test_log_dups_and_reopen, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_past_end, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_state_outlives_segments, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_state_outlives_retention, fx_setup, fx_teardown),
    };
    rb_log_min_level = RB_LOG_ERROR;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
