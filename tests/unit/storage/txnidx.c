/*
 * txnidx.c — a partition's transactions (storage.h S17-S19) through a real
 * log: the LSO held at the first offset of the oldest open transaction and
 * released by its marker, the aborted list (producer, first offset, marker
 * offset) filtered by range, markers fencing older epochs, a read trimmed
 * to the LSO, the marker format, the rebuild of everything at a clean and an
 * unclean reopen (segments rolled in between), and the cleaner keeping a
 * producer's last batch while rewriting the rest of its segment.
 */
#include "st_test.h"

STT_FIXTURE("txn", 1500, 100)

/* One transactional batch of n records (values "v<seq>-i", key k<i> when
 * keyed); returns st_log_append's code. */
static int txn_append(st_log_t *l, int64_t pid, int16_t epoch, int32_t seq, int n, bool keyed, int64_t *base) {
    kp_record_in_t recs[16];
    char vals[16][32], keys[16][16];
    memset(recs, 0, sizeof(recs));
    for (int i = 0; i < n; i++) {
        snprintf(vals[i], sizeof(vals[i]), "v%d-%d", seq, i);
        snprintf(keys[i], sizeof(keys[i]), "k%d", i);
        recs[i].key.p = (const uint8_t *)keys[i];
        recs[i].key.len = keyed ? (int32_t)strlen(keys[i]) : -1;
        recs[i].value.p = (const uint8_t *)vals[i];
        recs[i].value.len = (int32_t)strlen(vals[i]);
        recs[i].timestamp = rb_now_ms();
    }
    rb_buf_t b;
    rb_buf_init(&b);
    kp_batch_build(&b, 0, KP_COMP_NONE, recs, n, pid, epoch, seq, KP_ATTR_TRANSACTIONAL);
    int64_t last;
    int rc = stt_append_blob(l, &b, rb_now_ms(), base, &last);
    rb_buf_free(&b);
    return rc;
}

static int marker(st_log_t *l, int64_t pid, int16_t epoch, bool commit, int64_t *off) {
    rb_buf_t b;
    rb_buf_init(&b);
    st_marker_build(&b, pid, epoch, commit, 0, rb_now_ms());
    bool c = !commit;
    assert_int_equal(st_marker_parse(b.p, b.len, &c), 0);
    assert_int_equal(c, commit);
    rb_buf_free(&b);
    return stt_marker(l, pid, epoch, commit, off);
}

static int64_t lso_durable(st_log_t *l) {
    st_log_state_t st;
    st_log_state(l, &st);
    assert_int_equal(stt_durable(l, st.log_end_offset), 0);
    return st_log_lso(l);
}

static void expect_aborted(st_log_t *l, int64_t from, int64_t upto, int n, const st_aborted_txn_t *want) {
    st_aborted_txn_t *got = NULL;
    int ng = -1;
    int64_t lso;
    assert_int_equal(st_log_txn_view(l, from, upto, &lso, &got, &ng), 0);
    assert_int_equal(ng, n);
    for (int i = 0; i < n; i++) {
        assert_int_equal(got[i].pid, want[i].pid);
        assert_int_equal(got[i].first, want[i].first);
        assert_int_equal(got[i].last, want[i].last);
    }
    free(got);
}

static void test_lso_aborted_and_reopen(void **state) {
    fx_t *f = *state;
    fx_open(f);
    int64_t o1, o2, o3, m1, m2, m3, x;
    /* two producers interleaved: 1 commits, 2 aborts, 3 stays open */
    assert_int_equal(txn_append(f->l, 1, 0, 0, 3, false, &o1), 0); /* 0..2 */
    assert_int_equal(txn_append(f->l, 2, 0, 0, 3, false, &o2), 0); /* 3..5 */
    assert_int_equal(lso_durable(f->l), 0);
    assert_int_equal(txn_append(f->l, 1, 0, 3, 2, false, &x), 0); /* 6..7: same transaction */
    assert_int_equal(marker(f->l, 1, 0, true, &m1), 0);              /* 8 */
    assert_int_equal(lso_durable(f->l), o2);                         /* 2's still open */
    assert_int_equal(marker(f->l, 2, 0, false, &m2), 0);             /* 9 */
    assert_int_equal(lso_durable(f->l), m2 + 1);
    assert_int_equal(txn_append(f->l, 3, 0, 0, 2, false, &o3), 0);   /* 10..11 */
    assert_int_equal(lso_durable(f->l), o3);
    /* a marker with an older epoch is refused; one with a newer epoch fences */
    assert_int_equal(marker(f->l, 3, -1, false, &x), RB_INVALID_PRODUCER_EPOCH);
    st_aborted_txn_t want[2] = {{2, 3, 9}, {3, 10, 0}};
    expect_aborted(f->l, 0, 100, 1, want);
    expect_aborted(f->l, 10, 100, 0, want); /* after the aborted range */
    expect_aborted(f->l, 0, 3, 0, want);    /* before it */
    /* a read from 0 stops before the open transaction */
    st_read_t rd;
    assert_int_equal(st_log_read(f->l, 0, 1 << 20, true, &rd), 0);
    assert_int_equal(st_read_trim(&rd, o3), 0);
    stt_b_t bs[32];
    int nb = stt_parse_read(&rd, bs, 32);
    assert_int_equal(bs[nb - 1].base, m2);
    close(rd.fd);
    /* clean reopen, then an unclean one (segments rolled: 1500-byte segments) */
    for (int round = 0; round < 2; round++) {
        stt_fx_close(f);
        if (round == 1) {
            char p[4300];
            snprintf(p, sizeof(p), "%s/.kafka_cleanShutdown", f->dir);
            assert_int_equal(unlink(p), 0);
        }
        fx_open(f);
        assert_int_equal(lso_durable(f->l), o3);
        expect_aborted(f->l, 0, 100, 1, want);
    }
    assert_int_equal(marker(f->l, 3, 1, false, &m3), 0); /* epoch 1: fences epoch 0 */
    assert_int_equal(txn_append(f->l, 3, 0, 2, 1, false, &x), RB_INVALID_PRODUCER_EPOCH);
    assert_int_equal(txn_append(f->l, 3, 1, 0, 1, false, &x), 0); /* the new epoch starts at 0 */
    assert_int_equal(marker(f->l, 3, 1, true, &x), 0);
    want[1].first = o3;
    want[1].last = m3;
    expect_aborted(f->l, 0, 100, 2, want);
    st_log_state_t st;
    st_log_state(f->l, &st);
    assert_int_equal(lso_durable(f->l), st.log_end_offset);
    /* a marker for a partition with nothing open changes nothing */
    assert_int_equal(marker(f->l, 1, 0, false, &x), 0);
    expect_aborted(f->l, 0, 100, 2, want);
}

static void test_cleaner_keeps_producer_last_batch(void **state) {
    fx_t *f = *state;
    f->cfg.compact = true;
    f->cfg.min_cleanable_dirty_ratio = 0;
    fx_open(f);
    /* an idempotent (non-transactional) producer writes keys k0..k3 in batches;
     * its last batch is superseded by plain records of the same keys */
    int64_t last_base = -1;
    for (int s = 0; s < 4; s++) {
        kp_record_in_t recs[4];
        char keys[4][16];
        memset(recs, 0, sizeof(recs));
        for (int i = 0; i < 4; i++) {
            snprintf(keys[i], sizeof(keys[i]), "k%d", i);
            recs[i].key.p = (const uint8_t *)keys[i];
            recs[i].key.len = 2;
            recs[i].value.p = (const uint8_t *)"idem";
            recs[i].value.len = 4;
            recs[i].timestamp = rb_now_ms();
        }
        rb_buf_t b;
        rb_buf_init(&b);
        kp_batch_build(&b, 0, KP_COMP_NONE, recs, 4, 42, 0, s * 4, 0);
        int64_t e;
        assert_int_equal(stt_append_blob(f->l, &b, rb_now_ms(), &last_base, &e), 0);
        rb_buf_free(&b);
    }
    for (int r = 0; r < 30; r++) { /* plain keyed records: supersede, and roll segments */
        kp_record_in_t rec = {0};
        char key[16];
        snprintf(key, sizeof(key), "k%d", r % 4);
        rec.key.p = (const uint8_t *)key;
        rec.key.len = 2;
        rec.value.p = (const uint8_t *)"plain-value-plain-value-plain-value";
        rec.value.len = 35;
        rec.timestamp = rb_now_ms();
        rb_buf_t b;
        rb_buf_init(&b);
        kp_batch_build(&b, 0, KP_COMP_NONE, &rec, 1, -1, -1, -1, 0);
        int64_t x, e;
        assert_int_equal(stt_append_blob(f->l, &b, rb_now_ms(), &x, &e), 0);
        rb_buf_free(&b);
    }
    st_log_state_t st;
    st_log_state(f->l, &st);
    assert_int_equal(stt_durable(f->l, st.log_end_offset), 0);
    st_clean_stats_t cs;
    assert_int_equal(st_log_compact_run(f->l, rb_now_ms(), 0, &cs), 1);
    assert_true(cs.records_removed > 0);
    /* the producer's last batch is still there, whole; its earlier ones are gone */
    st_read_t rd;
    assert_int_equal(st_log_read(f->l, last_base, 1 << 20, true, &rd), 0);
    stt_b_t bs[4];
    assert_true(stt_parse_read(&rd, bs, 4) >= 1);
    assert_int_equal(bs[0].base, last_base);
    assert_int_equal(bs[0].last, last_base + 3);
    close(rd.fd);
    assert_int_equal(st_log_read(f->l, 0, 1 << 20, true, &rd), 0);
    assert_true(stt_parse_read(&rd, bs, 4) >= 1);
    assert_true(bs[0].base >= last_base); /* the first three batches were superseded and removed */
    close(rd.fd);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lso_aborted_and_reopen, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_cleaner_keeps_producer_last_batch, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
