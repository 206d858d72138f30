/*
 * txnidx.c — a partition's transactions (storage.h S17-S19) through a real
 * log: the LSO held at the first offset of the oldest open transaction and
 * released by its marker, the aborted list (producer, first offset, marker
 * offset) filtered by range, markers fencing older epochs, a read trimmed
 * to the LSO, the marker format, the rebuild of everything at a clean and an
 * unclean reopen (segments rolled in between), and the cleaner keeping a
 * producer's last batch while rewriting the rest of its segment.
 * The persisted state (S22-S23): the per-segment .txnindex files (Kafka's
 * 34-byte entries, in the segment of their abort marker), rebuilt when
 * missing, torn, damaged or past the recovery point, removed with their
 * segment, carried by the cleaner's swap, dropped after a failed write; the
 * version 2 producer snapshot carrying a marker's epoch and each open
 * transaction, a version 1 snapshot discarded.
 */
#include <dirent.h>
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

/* ---- persisted transaction state (S22, S23) ---------------------------------------------- */

static void plain_roll(fx_t *f, int n) { /* n plain 1-record batches of ~100 bytes */
    for (int i = 0; i < n; i++) stt_append(f->l, 1, 1, rb_now_ms(), 40, rb_now_ms());
}

/* What the scenario below leaves: the aborted list, the LSO, pid 4's fenced epoch. */
typedef struct {
    st_aborted_txn_t want[8];
    int n;
    int64_t lso, m4, open5;
} scen_t;

/* Five producers over many 1500-byte segments: 1 aborts, 2 commits, 3 aborts
 * a transaction spanning a roll, 4 is fenced by an abort marker of epoch 1
 * (what InitProducerId of a new instance writes), 5 stays open across rolls. */
static void scenario(fx_t *f, scen_t *sc) {
    int64_t o, x, m;
    memset(sc, 0, sizeof(*sc));
    assert_int_equal(txn_append(f->l, 1, 0, 0, 3, false, &o), 0);
    assert_int_equal(txn_append(f->l, 1, 0, 3, 3, false, &x), 0);
    assert_int_equal(marker(f->l, 1, 0, false, &m), 0);
    sc->want[sc->n++] = (st_aborted_txn_t){1, o, m};
    assert_int_equal(txn_append(f->l, 2, 0, 0, 3, false, &o), 0);
    assert_int_equal(marker(f->l, 2, 0, true, &m), 0);
    plain_roll(f, 20);
    assert_int_equal(txn_append(f->l, 3, 0, 0, 2, false, &o), 0);
    plain_roll(f, 20); /* rolls: the marker lands in a later segment than the first offset */
    assert_int_equal(marker(f->l, 3, 0, false, &m), 0);
    sc->want[sc->n++] = (st_aborted_txn_t){3, o, m};
    assert_int_equal(txn_append(f->l, 4, 0, 0, 2, false, &o), 0);
    assert_int_equal(marker(f->l, 4, 1, false, &m), 0); /* fences epoch 0 */
    sc->want[sc->n++] = (st_aborted_txn_t){4, o, m};
    sc->m4 = m;
    assert_int_equal(txn_append(f->l, 5, 0, 0, 2, false, &o), 0);
    sc->open5 = sc->lso = o;
    plain_roll(f, 20); /* a snapshot past pid 4's marker, pid 5 open in it */
}

static void check_state(fx_t *f, const scen_t *sc) {
    assert_int_equal(lso_durable(f->l), sc->lso);
    expect_aborted(f->l, 0, INT64_MAX, sc->n, sc->want);
    int64_t x;
    assert_int_equal(txn_append(f->l, 4, 0, 2, 1, false, &x), RB_INVALID_PRODUCER_EPOCH);
    st_txn_open_t *op;
    int n;
    assert_int_equal(st_log_open_txns(f->l, &op, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(op[0].pid, 5);
    assert_int_equal(op[0].first, sc->open5);
    free(op);
}

static int cmp_i64s(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Base offsets of the files with extension ext in the partition dir, sorted. */
static int list_ext(fx_t *f, const char *ext, int64_t *out, int max) {
    DIR *d = opendir(f->pdir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t k = strlen(de->d_name);
        if (k != 20 + strlen(ext) || strcmp(de->d_name + 20, ext)) continue;
        assert_true(n < max);
        out[n++] = strtoll(de->d_name, NULL, 10);
    }
    closedir(d);
    qsort(out, (size_t)n, sizeof(*out), cmp_i64s);
    return n;
}

static char *xpath(fx_t *f, int64_t base, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/%020lld.txnindex", f->pdir, (long long)base);
    return buf;
}

/* Every .txnindex: one per segment, entries in Kafka's layout, each in the
 * segment holding its marker; their concatenation (returned, malloc'd) is
 * the aborted list. */
static uint8_t *check_files_n(fx_t *f, const scen_t *sc, size_t *len, int min_segs) {
    int64_t logs[256], xs[256];
    int nl = list_ext(f, ".log", logs, 256), nx = list_ext(f, ".txnindex", xs, 256);
    assert_true(nl >= min_segs);
    assert_int_equal(nl, nx);
    assert_memory_equal(logs, xs, sizeof(*logs) * (size_t)nl);
    uint8_t *all = NULL;
    *len = 0;
    int k = 0;
    for (int i = 0; i < nl; i++) {
        char p[4400];
        char *data;
        size_t dl;
        assert_int_equal(rb_read_file(xpath(f, logs[i], p, sizeof(p)), &data, &dl), 0);
        assert_int_equal(dl % ST_XIDX_ENTRY, 0);
        for (size_t at = 0; at < dl; at += ST_XIDX_ENTRY, k++) {
            const uint8_t *e = (const uint8_t *)data + at;
            assert_true(k < sc->n);
            assert_int_equal(rb_be16(e), 0);
            assert_int_equal((int64_t)rb_be64(e + 2), sc->want[k].pid);
            assert_int_equal((int64_t)rb_be64(e + 10), sc->want[k].first);
            assert_int_equal((int64_t)rb_be64(e + 18), sc->want[k].last);
            assert_true(sc->want[k].last >= logs[i] && (i + 1 == nl || sc->want[k].last < logs[i + 1]));
            int64_t lso = (int64_t)rb_be64(e + 26); /* pid 5's transaction holds it once open */
            assert_int_equal(lso, sc->open5 < sc->want[k].last ? sc->open5 : sc->want[k].last + 1);
        }
        all = realloc(all, *len + dl + 1);
        memcpy(all + *len, data, dl);
        *len += dl;
        free(data);
    }
    assert_int_equal(k, sc->n);
    return all;
}

static uint8_t *check_files(fx_t *f, const scen_t *sc, size_t *len) { return check_files_n(f, sc, len, 4); }

/* The state, and the files byte for byte as they were (a0, n0). */
static void expect_same(fx_t *f, const scen_t *sc, const uint8_t *a0, size_t n0, int min_segs) {
    check_state(f, sc);
    size_t n1;
    uint8_t *a1 = check_files_n(f, sc, &n1, min_segs);
    assert_int_equal(n0, n1);
    assert_memory_equal(a0, a1, n0);
    free(a1);
}

static void reopen(fx_t *f, bool clean) {
    stt_fx_close(f);
    if (!clean) {
        char p[4300];
        snprintf(p, sizeof(p), "%s/.kafka_cleanShutdown", f->dir);
        assert_int_equal(unlink(p), 0);
    }
    fx_open(f);
}

static void test_txnindex_files_and_reopen(void **state) {
    fx_t *f = *state;
    fx_open(f);
    scen_t sc;
    scenario(f, &sc);
    check_state(f, &sc);
    size_t n0;
    uint8_t *a0 = check_files(f, &sc, &n0); /* written at append */
    assert_int_equal(n0, (size_t)sc.n * ST_XIDX_ENTRY);
    /* S22: once the markers are durable, so are their entries */
    for (int i = 0; i < f->l->l_nsegs; i++) {
        pthread_mutex_lock(&f->l->l_mutex);
        st_seg_t *s = f->l->l_segs[i];
        assert_int_equal(s->seg_xsynced, s->seg_xn);
        pthread_mutex_unlock(&f->l->l_mutex);
    }
    for (int round = 0; round < 2; round++) {
        reopen(f, round == 0);
        expect_same(f, &sc, a0, n0, 4);
    }
    free(a0);
    /* DeleteRecords past pid 1's marker: its segments and their .txnindex go,
     * its entry leaves the list */
    int64_t low;
    assert_int_equal(st_log_delete_records(f->l, sc.want[1].first, &low), 0);
    int64_t xs[256];
    int nx = list_ext(f, ".txnindex", xs, 256);
    assert_true(xs[0] > sc.want[0].last);
    int64_t logs[256];
    assert_int_equal(list_ext(f, ".log", logs, 256), nx);
    expect_aborted(f->l, low, INT64_MAX, sc.n - 1, sc.want + 1);
    reopen(f, true);
    expect_aborted(f->l, 0, INT64_MAX, sc.n - 1, sc.want + 1); /* the open drops it from the list */
}

/* A .txnindex missing or damaged below the recovery point, one past it, and
 * none at all (nor snapshots): rebuilt from the segments, byte for byte. */
static void test_txnindex_rebuild(void **state) {
    fx_t *f = *state;
    fx_open(f);
    scen_t sc;
    scenario(f, &sc);
    size_t n0;
    uint8_t *a0 = check_files(f, &sc, &n0);
    int64_t logs[256];
    for (int c = 0; c < 5; c++) {
        stt_fx_close(f);
        int nl = list_ext(f, ".log", logs, 256);
        char p[4400];
        int64_t seg3 = -1; /* the segment holding pid 3's marker (below the recovery point) */
        for (int i = 0; i < nl; i++)
            if (logs[i] <= sc.want[1].last) seg3 = logs[i];
        xpath(f, seg3, p, sizeof(p));
        bool clean = true;
        if (c == 0) {
            assert_int_equal(unlink(p), 0); /* missing */
        } else if (c == 1) {
            assert_int_equal(truncate(p, 20), 0); /* torn */
        } else if (c == 2) {
            int fd = open(p, O_WRONLY);
            assert_true(fd >= 0);
            assert_int_equal(pwrite(fd, "\x00\x07", 2, 0), 2); /* version 7 */
            close(fd);
        } else if (c == 3) {
            /* past the recovery point (the active segment after an unclean
             * stop): a plausible entry that no marker backs is dropped */
            st_aborted_txn_t bogus = {9, logs[nl - 1], logs[nl - 1]};
            uint8_t e[ST_XIDX_ENTRY];
            st__xidx_encode(e, &bogus, logs[nl - 1] + 1);
            int fd = open(xpath(f, logs[nl - 1], p, sizeof(p)), O_WRONLY | O_APPEND);
            assert_true(fd >= 0);
            assert_int_equal(write(fd, e, sizeof(e)), (ssize_t)sizeof(e));
            close(fd);
            clean = false;
        } else {
            for (int i = 0; i < nl; i++) assert_int_equal(unlink(xpath(f, logs[i], p, sizeof(p))), 0);
            int64_t sn[16];
            int ns = list_ext(f, ".snapshot", sn, 16);
            assert_true(ns >= 1);
            for (int i = 0; i < ns; i++) {
                snprintf(p, sizeof(p), "%s/%020lld.snapshot", f->pdir, (long long)sn[i]);
                assert_int_equal(unlink(p), 0);
            }
        }
        if (!clean) {
            snprintf(p, sizeof(p), "%s/.kafka_cleanShutdown", f->dir);
            assert_int_equal(unlink(p), 0);
        }
        fx_open(f);
        expect_same(f, &sc, a0, n0, 4);
    }
    free(a0);
}

/* The snapshot written at a roll after pid 4's fencing marker carries epoch 1
 * (no batch of it yet) and pid 5's open transaction; a clean reopen loads
 * it (the file stays) and refuses epoch 0. A version 1 snapshot is removed
 * and the state rebuilt from the log, the marker's epoch included. */
static void test_snapshot_v2(void **state) {
    fx_t *f = *state;
    fx_open(f);
    scen_t sc;
    scenario(f, &sc);
    stt_fx_close(f);
    int64_t sn[16];
    int ns = list_ext(f, ".snapshot", sn, 16);
    assert_true(ns >= 1 && sn[ns - 1] > sc.m4);
    char p[4400];
    snprintf(p, sizeof(p), "%s/%020lld.snapshot", f->pdir, (long long)sn[ns - 1]);
    char *data;
    size_t len;
    assert_int_equal(rb_read_file(p, &data, &len), 0);
    st_ptab_t t = {0};
    int64_t off;
    int version = 0;
    assert_int_equal(st_pt_decode_v(&t, (const uint8_t *)data, len, &off, &version), 0);
    assert_int_equal(version, 2);
    assert_int_equal(off, sn[ns - 1]);
    const st_prod_t *p4 = st_pt_find(&t, 4), *p5 = st_pt_find(&t, 5), *p3 = st_pt_find(&t, 3);
    assert_non_null(p4);
    assert_int_equal(p4->p_epoch, 1);
    assert_int_equal(p4->p_n, 0);
    assert_int_equal(p4->p_txn_first, -1);
    assert_int_equal(p5->p_txn_first, sc.open5);
    assert_int_equal(p3->p_txn_first, -1);
    st_pt_free(&t);
    free(data);
    fx_open(f);
    check_state(f, &sc);
    assert_true(stt_file_size(p) > 0); /* loaded, not discarded */
    /* a version 1 file in its place: discarded, the log replayed */
    stt_fx_close(f);
    ns = list_ext(f, ".snapshot", sn, 16);
    for (int i = 0; i < ns; i++) {
        snprintf(p, sizeof(p), "%s/%020lld.snapshot", f->pdir, (long long)sn[i]);
        assert_int_equal(unlink(p), 0);
    }
    uint8_t v1[20 + 19 + 24];
    rb_wbe32(v1, 0x52505331u);
    rb_wbe64(v1 + 8, (uint64_t)sn[ns - 1]);
    rb_wbe32(v1 + 16, 1);
    rb_wbe64(v1 + 20, 4); /* pid 4 at epoch 0: what the old format would have said */
    rb_wbe16(v1 + 28, 0);
    rb_wbe64(v1 + 30, (uint64_t)rb_now_ms());
    v1[38] = 1;
    rb_wbe32(v1 + 39, 0);
    rb_wbe32(v1 + 43, 1);
    rb_wbe64(v1 + 47, 0);
    rb_wbe64(v1 + 55, 1);
    rb_wbe32(v1 + 4, rb_crc32c(0, v1 + 8, sizeof(v1) - 8));
    t = (st_ptab_t){0};
    assert_int_equal(st_pt_decode_v(&t, v1, sizeof(v1), &off, &version), 0);
    assert_int_equal(version, 1);
    assert_int_equal(st_pt_find(&t, 4)->p_txn_first, -1);
    st_pt_free(&t);
    snprintf(p, sizeof(p), "%s/%020lld.snapshot", f->pdir, (long long)sn[ns - 1]);
    assert_int_equal(rb_write_file_atomic(p, v1, sizeof(v1)), 0);
    fx_open(f);
    check_state(f, &sc);
    assert_int_equal(stt_file_size(p), -1);
}

/* A failed .txnindex write: the list keeps the abort, the file is removed,
 * later aborts of that segment are not written; the next open rebuilds it. */
static void test_txnindex_write_failure(void **state) {
    fx_t *f = *state;
    fx_open(f);
    int64_t o, m, o2, m2, x;
    assert_int_equal(txn_append(f->l, 1, 0, 0, 2, false, &o), 0);
    setenv("RILL_FAILPOINTS", "st.txnindex.write=5", 1);
    rb_failpoint_reload();
    assert_int_equal(marker(f->l, 1, 0, false, &m), 0);
    unsetenv("RILL_FAILPOINTS");
    rb_failpoint_reload();
    assert_int_equal(txn_append(f->l, 2, 0, 0, 2, false, &o2), 0);
    assert_int_equal(marker(f->l, 2, 0, false, &m2), 0);
    st_aborted_txn_t want[2] = {{1, o, m}, {2, o2, m2}};
    expect_aborted(f->l, 0, INT64_MAX, 2, want);
    assert_int_equal(lso_durable(f->l), m2 + 1);
    char p[4400];
    assert_int_equal(stt_file_size(xpath(f, 0, p, sizeof(p))), -1);
    reopen(f, true);
    assert_int_equal(stt_file_size(p), 2 * ST_XIDX_ENTRY);
    expect_aborted(f->l, 0, INT64_MAX, 2, want);
    assert_int_equal(txn_append(f->l, 3, 0, 0, 1, false, &x), 0);
}

/* The cleaner's swap carries the .txnindex of every segment it merges. */
static void test_compaction_carries_txnindex(void **state) {
    fx_t *f = *state;
    f->cfg.compact = true;
    f->cfg.min_cleanable_dirty_ratio = 0;
    fx_open(f);
    scen_t sc;
    scenario(f, &sc);
    int64_t before[256], after[256];
    int nb = list_ext(f, ".log", before, 256);
    lso_durable(f->l); /* the cleaner works below the high watermark */
    f->cfg.segment_bytes = 1 << 20; /* groups of many segments merge into one */
    st_log_set_config(f->l, &f->cfg);
    st_clean_stats_t cs;
    assert_int_equal(st_log_compact_run(f->l, rb_now_ms(), 0, &cs), 1);
    int na = list_ext(f, ".log", after, 256);
    assert_true(na < nb); /* segments were merged */
    size_t n0;
    uint8_t *a0 = check_files_n(f, &sc, &n0, 2);
    assert_int_equal(n0, (size_t)sc.n * ST_XIDX_ENTRY);
    check_state(f, &sc);
    reopen(f, true);
    expect_same(f, &sc, a0, n0, 2);
    free(a0);
}

/* Closes without a roll write snapshots at the log end; the one at the
 * active segment's base stays, so an unclean open rebuilds that segment's
 * .txnindex from it (not from the log start). */
static void test_snapshot_kept_at_segment_base(void **state) {
    fx_t *f = *state;
    fx_open(f);
    scen_t sc;
    scenario(f, &sc);
    int64_t x, m;
    st_log_state_t st;
    for (int r = 0; r < 3; r++) { /* three closes inside the active segment */
        reopen(f, true);
        assert_int_equal(txn_append(f->l, 6, 0, r, 1, false, &x), 0);
        assert_int_equal(marker(f->l, 6, 0, false, &m), 0); /* an abort in the active segment */
        sc.want[sc.n++] = (st_aborted_txn_t){6, x, m};
    }
    st_log_state(f->l, &st);
    int64_t logs[256], sn[16];
    int nl = list_ext(f, ".log", logs, 256);
    reopen(f, false);
    int ns = list_ext(f, ".snapshot", sn, 16);
    bool at_base = false;
    for (int i = 0; i < ns; i++) at_base |= sn[i] == logs[nl - 1];
    assert_true(at_base);
    assert_true(ns >= 3);
    check_state(f, &sc);
    size_t n0;
    free(check_files(f, &sc, &n0));
}


static int nsegs(fx_t *f);

/* A segment whose .txnindex write failed (file removed, S22) merged by the
 * cleaner into an earlier one: the group's first file must not survive
 * alone (it would be trusted without the merged segment's entries); the
 * reopen rebuilds it and finds both aborted transactions. */
static void test_clean_merges_segment_without_txnindex(void **state) {
    fx_t *f = *state;
    f->cfg.compact = true;
    f->cfg.min_cleanable_dirty_ratio = 0;
    fx_open(f);
    int64_t o1, m1, o2, m2;
    assert_int_equal(txn_append(f->l, 1, 0, 0, 2, false, &o1), 0);
    assert_int_equal(marker(f->l, 1, 0, false, &m1), 0);
    plain_roll(f, 20);
    assert_int_equal(txn_append(f->l, 2, 0, 0, 2, false, &o2), 0);
    setenv("RILL_FAILPOINTS", "st.txnindex.write=5", 1);
    rb_failpoint_reload();
    assert_int_equal(marker(f->l, 2, 0, false, &m2), 0);
    unsetenv("RILL_FAILPOINTS");
    rb_failpoint_reload();
    plain_roll(f, 40);
    st_aborted_txn_t want[2] = {{1, o1, m1}, {2, o2, m2}};
    expect_aborted(f->l, 0, INT64_MAX, 2, want);
    lso_durable(f->l);
    int n_before = nsegs(f);
    f->cfg.segment_bytes = 1 << 20; /* the cleaner merges the sealed segments into one */
    st_log_set_config(f->l, &f->cfg);
    st_clean_stats_t cs;
    assert_int_equal(st_log_compact_run(f->l, rb_now_ms(), 0, &cs), 1);
    assert_true(nsegs(f) < n_before);
    expect_aborted(f->l, 0, INT64_MAX, 2, want); /* in memory: right */
    reopen(f, true);
    expect_aborted(f->l, 0, INT64_MAX, 2, want);
}

static void plain_key(fx_t *f, const char *key) {
    kp_record_in_t rec = {0};
    rec.key.p = (const uint8_t *)key;
    rec.key.len = (int32_t)strlen(key);
    rec.value.p = (const uint8_t *)"plain-value-plain-value-plain-value-plain-value";
    rec.value.len = 47;
    rec.timestamp = rb_now_ms();
    rb_buf_t b;
    rb_buf_init(&b);
    kp_batch_build(&b, 0, KP_COMP_NONE, &rec, 1, -1, -1, -1, 0);
    int64_t x, e;
    assert_int_equal(stt_append_blob(f->l, &b, rb_now_ms(), &x, &e), 0);
    rb_buf_free(&b);
}

static int nsegs(fx_t *f) { int64_t v[256]; return list_ext(f, ".log", v, 256); }

static void reopen_expiring(fx_t *f, int64_t exp_ms) {
    stt_fx_close(f);
    assert_int_equal(st_mgr_open(f->dir, &f->m), 0);
    st_mgr_set_producer_expiration_ms(f->m, exp_ms);
    assert_int_equal(st_log_open(f->m, f->topic, 0, &f->cfg, &f->l), 0);
}

/* Producer 7's transaction opens at *F, a roll snapshots it open (the
 * returned base), then its commit marker at *M. */
static int64_t open_txn_across_roll(fx_t *f, int64_t *F, int64_t *M) {
    plain_roll(f, 3);
    assert_int_equal(txn_append(f->l, 7, 0, 0, 2, true, F), 0); /* keys k0, k1 */
    int n0 = nsegs(f);
    while (nsegs(f) == n0) plain_key(f, "z");
    int64_t segs[256];
    int ns = list_ext(f, ".log", segs, 256);
    assert_int_equal(marker(f->l, 7, 0, true, M), 0);
    return segs[ns - 1];
}

/* A roll whose snapshot write fails (ENOSPC: only a warning), then one
 * more record. */
static void roll_without_snapshot(fx_t *f) {
    int n0 = nsegs(f);
    setenv("RILL_FAILPOINTS", "st.snapshot.write=28", 1);
    rb_failpoint_reload();
    while (nsegs(f) == n0) plain_key(f, "z");
    unsetenv("RILL_FAILPOINTS");
    rb_failpoint_reload();
    plain_key(f, "z");
}

/* Later records supersede k0 and k1; a reopen expires producer 7 (its last
 * marker is then unknown) and a pass removes its batches and marker. */
static void supersede_and_clean(fx_t *f) {
    plain_key(f, "k0");
    plain_key(f, "k1");
    roll_without_snapshot(f);
    reopen_expiring(f, 1);
    lso_durable(f->l);
    usleep(5000);
    st_clean_stats_t cs;
    assert_int_equal(st_log_compact_run(f->l, rb_now_ms() + 10, 0, &cs), 1);
    assert_true(cs.markers_removed >= 1);
}

static void expect_no_open_txn(fx_t *f) {
    st_txn_open_t *op;
    int n;
    assert_int_equal(st_log_open_txns(f->l, &op, &n), 0);
    free(op);
    assert_int_equal(n, 0);
    st_log_state_t st;
    st_log_state(f->l, &st);
    assert_int_equal(lso_durable(f->l), st.log_end_offset); /* the LSO is not held */
}

static void compact_no_retention(fx_t *f) {
    f->cfg.compact = true;
    f->cfg.min_cleanable_dirty_ratio = 0;
    f->cfg.delete_retention_ms = 0;
    fx_open(f);
}

/* A snapshot taken while a transaction was open; the cleaner later removes
 * the transaction's batches and its marker; the newer snapshots are lost
 * (unsynced at a power loss): the open from the old snapshot must not keep
 * the transaction open (S23). */
static void test_snapshot_open_txn_cleaned_lost_snapshots(void **state) {
    fx_t *f = *state;
    compact_no_retention(f);
    int64_t F, M;
    int64_t X = open_txn_across_roll(f, &F, &M);
    supersede_and_clean(f);
    int64_t sn[32];
    int nsn = list_ext(f, ".snapshot", sn, 32);
    stt_fx_close(f);
    for (int i = 0; i < nsn; i++) {
        if (sn[i] <= X) continue;
        char p[4400];
        snprintf(p, sizeof(p), "%s/%020lld.snapshot", f->pdir, (long long)sn[i]);
        assert_int_equal(unlink(p), 0);
    }
    fx_open(f);
    expect_no_open_txn(f);
}

/* The same, the open unclean: it rebuilds the active segment's .txnindex
 * from the snapshot at or below its base, the old one (the roll's snapshot
 * after the marker failed). */
static void test_snapshot_open_txn_cleaned_unclean_open(void **state) {
    fx_t *f = *state;
    compact_no_retention(f);
    int64_t F, M;
    open_txn_across_roll(f, &F, &M);
    supersede_and_clean(f);
    reopen(f, false);
    expect_no_open_txn(f);
}

/* A crash during an open that rebuilds .txnindex files (e.g. the first
 * start after the upgrade: none exist): what it leaves is the rebuild mark
 * (durable before any file is created or emptied), empty or partial files
 * and no clean-shutdown marker. The next open must not trust those files
 * below the recovery point: it rebuilds all, and removes the mark. */
static void test_crash_during_rebuild(void **state) {
    fx_t *f = *state;
    fx_open(f);
    scen_t sc;
    scenario(f, &sc);
    check_state(f, &sc);
    stt_fx_close(f);
    int64_t logs[256];
    int nl = list_ext(f, ".log", logs, 256);
    for (int i = 0; i < nl; i++) {
        char p[4400];
        xpath(f, logs[i], p, sizeof(p));
        assert_int_equal(truncate(p, 0), 0); /* what open #1 leaves: created (O_CREAT) / emptied, not yet refilled */
    }
    char p[4300];
    snprintf(p, sizeof(p), "%s/.kafka_cleanShutdown", f->dir);
    assert_int_equal(unlink(p), 0); /* open #1 removed the marker, then the process died */
    char mark[4400];
    snprintf(mark, sizeof(mark), "%s/txnindex-rebuild", f->pdir);
    FILE *mf = fopen(mark, "w");
    assert_non_null(mf);
    fclose(mf);
    fx_open(f);
    assert_int_equal(access(mark, F_OK), -1); /* gone once the rebuilt files are durable */
    st_aborted_txn_t *got = NULL; int ng = -1; int64_t lso;
    assert_int_equal(st_log_txn_view(f->l, 0, INT64_MAX, &lso, &got, &ng), 0);
    free(got);
    expect_aborted(f->l, 0, INT64_MAX, sc.n, sc.want);
}

/* DeleteRecords removes the segment holding a transaction's marker; the
 * newer snapshot was lost: the open from the old snapshot must not keep the
 * transaction open (its batches are all below the log start). */
static void test_snapshot_open_txn_below_start(void **state) {
    fx_t *f = *state;
    fx_open(f);
    int64_t F, M;
    open_txn_across_roll(f, &F, &M);
    roll_without_snapshot(f);
    int64_t segs[256];
    int ns = list_ext(f, ".log", segs, 256);
    lso_durable(f->l);
    int64_t low;
    assert_int_equal(st_log_delete_records(f->l, segs[ns - 1], &low), 0);
    assert_true(low > M); /* the marker's segment is gone */
    reopen(f, false);
    expect_no_open_txn(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lso_aborted_and_reopen, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_cleaner_keeps_producer_last_batch, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_txnindex_files_and_reopen, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_txnindex_rebuild, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_v2, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_txnindex_write_failure, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_compaction_carries_txnindex, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_kept_at_segment_base, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_clean_merges_segment_without_txnindex, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_open_txn_cleaned_lost_snapshots, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_open_txn_cleaned_unclean_open, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_crash_during_rebuild, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_open_txn_below_start, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
