/*
 * txnclean.c — the cleaner and transactions (storage.h S19-S21) against a
 * model: three transactional producers committing and aborting on a small
 * key set, interleaved with plain records, one transaction left open, then
 * compaction passes forced with st_log_compact_run. After every pass a full
 * read from offset 0 is checked:
 *  - read_committed (the aborted list + LSO, filtered as a client does)
 *    gives per key exactly the latest committed value below the LSO;
 *  - no record of an aborted transaction remains below the pass's end;
 *    nothing at or above the LSO changed;
 *  - every remaining record is the one appended at its offset, and a batch
 *    that lost records kept its header fields (attributes, producer id,
 *    epoch, base sequence, base offset, lastOffsetDelta);
 *  - every remaining transactional record is still followed by its own
 *    marker; every aborted-list entry still has its abort marker;
 *  - markers stay while younger than delete.retention.ms; then those of
 *    transactions with no record left go (an abort marker one pass after
 *    its records), but never a producer's last one (S19), also for a
 *    producer that writes markers only (offsets in __consumer_offsets).
 * The same holds after a clean reopen (the tables rebuilt from the log) and
 * after the open transaction commits.
 */
#include "st_test.h"

STT_FIXTURE("txc", 700, 100)

#define NREC 3000
#define NTXN 400
#define NKEY 12
#define NPID 3
#define DAY_MS (24LL * 3600 * 1000)

typedef struct {
    int key;
    int txn;       /* -1: plain */
    int64_t off;
} mrec_t;

typedef struct {
    int64_t pid;
    int state;     /* 0 open, 1 committed, 2 aborted */
    int64_t marker;
} mtxn_t;

typedef struct {
    int64_t base;
    int16_t attrs;
    int64_t pid;
    int16_t epoch;
    int32_t seq, lod;
} mbatch_t;

static mrec_t R[NREC];
static int nr;
static mtxn_t T[NTXN];
static int nt;
static mbatch_t B[NREC];
static int nb;
static int open_txn[NPID]; /* per producer: its open transaction, -1 */
static int32_t seqs[NPID];

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int64_t leo(st_log_t *l) {
    st_log_state_t st;
    st_log_state(l, &st);
    return st.log_end_offset;
}

/* A batch of n records (producer index pi, or -1 for plain) on random keys. */
static void data_batch(st_log_t *l, int pi, int n, int fixed_key) {
    kp_record_in_t recs[4];
    char keys[4][16], vals[4][16];
    memset(recs, 0, sizeof(recs));
    int txn = -1;
    if (pi >= 0) {
        if (open_txn[pi] < 0) {
            assert_true(nt < NTXN);
            T[nt] = (mtxn_t){101 + pi, 0, -1};
            open_txn[pi] = nt++;
        }
        txn = open_txn[pi];
    }
    int64_t base0 = leo(l);
    for (int i = 0; i < n; i++) {
        int k = fixed_key >= 0 ? fixed_key : (int)(rnd() % NKEY);
        snprintf(keys[i], sizeof(keys[i]), "k%d", k);
        snprintf(vals[i], sizeof(vals[i]), "r%d", nr + i);
        recs[i].key.p = (const uint8_t *)keys[i];
        recs[i].key.len = (int32_t)strlen(keys[i]);
        recs[i].value.p = (const uint8_t *)vals[i];
        recs[i].value.len = (int32_t)strlen(vals[i]);
        recs[i].timestamp = rb_now_ms();
        assert_true(nr + i < NREC);
        R[nr + i] = (mrec_t){k, txn, base0 + i};
    }
    rb_buf_t b;
    rb_buf_init(&b);
    int32_t seq = pi >= 0 ? seqs[pi] : -1;
    kp_batch_build(&b, 0, KP_COMP_NONE, recs, n, pi >= 0 ? 101 + pi : -1, pi >= 0 ? 0 : -1, seq,
                   pi >= 0 ? KP_ATTR_TRANSACTIONAL : 0);
    int64_t base, last;
    assert_int_equal(stt_append_blob(l, &b, rb_now_ms(), &base, &last), 0);
    assert_int_equal(base, base0);
    B[nb++] = (mbatch_t){base, pi >= 0 ? KP_ATTR_TRANSACTIONAL : 0, pi >= 0 ? 101 + pi : -1, pi >= 0 ? 0 : -1, seq,
                         n - 1};
    if (pi >= 0) seqs[pi] += n;
    nr += n;
    rb_buf_free(&b);
}

static void end_txn(st_log_t *l, int pi, bool commit) {
    int t = open_txn[pi];
    assert_true(t >= 0);
    int64_t off;
    assert_int_equal(stt_marker(l, 101 + pi, 0, commit, &off), 0);
    T[t].state = commit ? 1 : 2;
    T[t].marker = off;
    open_txn[pi] = -1;
}

typedef struct {
    int64_t off, pid;
    int rec;       /* model index (data), -1 for a marker */
    bool commit;   /* marker type */
    kp_batch_hdr_t h;
} seen_t;

static seen_t S[NREC + NTXN];
static int ns;

/* Every record and marker from offset 0 to the high watermark. */
static void read_log(st_log_t *l) {
    ns = 0;
    int64_t next = 0;
    for (int guard = 0;; guard++) {
        assert_true(guard < 100000);
        st_read_t r;
        assert_int_equal(st_log_read(l, next, 1 << 20, true, &r), 0);
        if (r.len == 0) break;
        uint8_t *buf = malloc(r.len);
        assert_int_equal(pread(r.fd, buf, r.len, r.file_off), (ssize_t)r.len);
        close(r.fd);
        size_t p = 0;
        while (p < r.len) {
            kp_batch_hdr_t h;
            assert_int_equal(kp_batch_hdr_parse(buf + p, r.len - p, &h), 0);
            size_t sz = (size_t)h.batch_length + KP_BATCH_LOG_OVERHEAD;
            assert_int_equal(rb_crc32c(0, buf + p + 21, sz - 21), h.crc);
            if (h.base_offset + h.last_offset_delta < next) {
                p += sz;
                continue;
            }
            if (h.attributes & KP_ATTR_CONTROL) {
                bool commit;
                assert_int_equal(st_marker_parse(buf + p, sz, &commit), 0);
                S[ns++] = (seen_t){h.base_offset, h.producer_id, -1, commit, h};
            } else {
                rb_rd_t rd;
                rb_rd_init(&rd, buf + p + KP_BATCH_HEADER_SIZE, sz - KP_BATCH_HEADER_SIZE);
                for (int32_t i = 0; i < h.records_count; i++) {
                    kp_record_t rec;
                    assert_int_equal(kp_record_next(&rd, &rec), 0);
                    assert_true(rec.value.len > 1 && rec.value.p[0] == 'r'); /* "r<id>" */
                    int id = 0;
                    for (int32_t c = 1; c < rec.value.len; c++) {
                        assert_true(rec.value.p[c] >= '0' && rec.value.p[c] <= '9');
                        id = id * 10 + (rec.value.p[c] - '0');
                    }
                    assert_true(id < nr);
                    assert_int_equal(R[id].off, h.base_offset + rec.offset_delta);
                    S[ns++] = (seen_t){R[id].off, h.producer_id, id, false, h};
                }
            }
            next = h.base_offset + h.last_offset_delta + 1;
            p += sz;
        }
        free(buf);
    }
}

static const mbatch_t *orig_batch(int64_t base) {
    for (int i = 0; i < nb; i++)
        if (B[i].base == base) return &B[i];
    return NULL;
}

/* The checks of the header comment; E = the last pass's end offset. */
static void check(st_log_t *l, int64_t E) {
    read_log(l);
    int64_t lso;
    st_aborted_txn_t *ab = NULL;
    int nab = 0;
    assert_int_equal(st_log_txn_view(l, 0, INT64_MAX, &lso, &ab, &nab), 0);
    /* every aborted-list entry still has its abort marker */
    for (int a = 0; a < nab; a++) {
        bool found = false;
        for (int i = 0; i < ns && !found; i++)
            found = S[i].rec < 0 && S[i].off == ab[a].last && S[i].pid == ab[a].pid && !S[i].commit;
        assert_true(found);
    }
    int latest_want[NKEY], latest_got[NKEY];
    for (int k = 0; k < NKEY; k++) latest_want[k] = latest_got[k] = -1;
    for (int i = 0; i < nr; i++)
        if (R[i].off < lso && (R[i].txn < 0 || T[R[i].txn].state == 1)) latest_want[R[i].key] = i;
    /* read_committed as a client filters: a transactional batch of a
     * producer is aborted from an entry's first offset to its marker */
    bool aborted_now[NPID + 1] = {false};
    int ai = 0;
    for (int i = 0; i < ns; i++) {
        const seen_t *s = &S[i];
        if (s->rec >= 0) {
            const mrec_t *m = &R[s->rec];
            /* the batch header as appended */
            const mbatch_t *ob = orig_batch(s->h.base_offset);
            assert_non_null(ob);
            assert_int_equal(s->h.attributes, ob->attrs);
            assert_int_equal(s->h.producer_id, ob->pid);
            assert_int_equal(s->h.producer_epoch, ob->epoch);
            assert_int_equal(s->h.base_sequence, ob->seq);
            assert_int_equal(s->h.last_offset_delta, ob->lod);
            if (m->txn >= 0) {
                /* no aborted record below the pass's end */
                if (T[m->txn].state == 2) assert_true(m->off >= E);
                /* its own marker still follows it */
                bool found = T[m->txn].state == 0;
                for (int j = i + 1; j < ns && !found; j++) {
                    if (S[j].rec >= 0 || S[j].pid != T[m->txn].pid) continue;
                    assert_int_equal(S[j].off, T[m->txn].marker);
                    found = true;
                }
                assert_true(found);
            }
        }
        if (s->off >= lso) continue;
        while (ai < nab && ab[ai].first <= s->off) {
            aborted_now[ab[ai].pid - 101] = true;
            ai++;
        }
        if (s->rec < 0) {
            if (!s->commit) aborted_now[s->pid - 101] = false;
            continue;
        }
        if (s->pid >= 0 && aborted_now[s->pid - 101]) continue;
        assert_true(R[s->rec].txn < 0 || T[R[s->rec].txn].state == 1); /* nothing aborted visible */
        latest_got[R[s->rec].key] = s->rec;
    }
    for (int k = 0; k < NKEY; k++) assert_int_equal(latest_got[k], latest_want[k]);
    /* everything at or above the LSO is there as appended */
    for (int i = 0; i < nr; i++) {
        if (R[i].off < lso) continue;
        bool found = false;
        for (int j = 0; j < ns && !found; j++) found = S[j].rec == i;
        assert_true(found);
    }
    free(ab);
}

static int count_markers(bool commit) {
    int n = 0;
    for (int i = 0; i < ns; i++) n += S[i].rec < 0 && S[i].commit == commit;
    return n;
}

static bool marker_present(int64_t off) {
    for (int i = 0; i < ns; i++)
        if (S[i].rec < 0 && S[i].off == off) return true;
    return false;
}

static int64_t pass(st_log_t *l, int64_t now, st_clean_stats_t *cs) {
    int rc = st_log_compact_run(l, now, 0, cs);
    assert_true(rc == 0 || rc == 1);
    return st_log_cleaner_offset(l);
}

static void test_model(void **state) {
    fx_t *f = *state;
    f->cfg.compact = true;
    f->cfg.min_cleanable_dirty_ratio = 0;
    fx_open(f);
    for (int i = 0; i < NPID; i++) open_txn[i] = -1;
    /* 104 writes markers only, as a transaction with only offsets does in
     * __consumer_offsets: they go but its last one */
    int64_t only[100];
    int nonly = 0;
    /* producers 101 and 102 commit or abort; 103 commits or aborts until
     * its last transaction, which stays open */
    for (int op = 0; op < 500; op++) {
        int pi = (int)(rnd() % NPID);
        int what = (int)(rnd() % 10);
        if (what < 4) data_batch(f->l, pi, 1 + (int)(rnd() % 3), -1);
        else if (what < 6 && open_txn[pi] >= 0) end_txn(f->l, pi, rnd() % 2 == 0);
        else if (what == 6 && rnd() % 8 == 0) assert_int_equal(stt_marker(f->l, 104, 0, true, &only[nonly++]), 0);
        else data_batch(f->l, -1, 1 + (int)(rnd() % 3), -1);
    }
    assert_true(nonly > 3);
    for (int pi = 0; pi < 2; pi++) { /* each ends with a committed batch of its own key */
        if (open_txn[pi] >= 0) end_txn(f->l, pi, false);
        data_batch(f->l, pi, 1, 10 + pi);
        end_txn(f->l, pi, true);
    }
    /* the coordinator fences 101 (epoch 1) with nothing open here: that
     * marker is what a replay without a snapshot learns the epoch from */
    int64_t fence;
    assert_int_equal(stt_marker(f->l, 101, 1, false, &fence), 0);
    if (open_txn[2] < 0) data_batch(f->l, 2, 2, -1);
    int open3 = open_txn[2];
    int64_t open_first = R[nr - 1].off; /* a record of the open transaction */
    for (int i = 0; i < 40; i++) data_batch(f->l, -1, 1, 11); /* roll past it */
    assert_int_equal(stt_durable(f->l, leo(f->l)), 0);
    int64_t lso = st_log_lso(f->l);
    assert_true(lso <= open_first);
    read_log(f->l);
    int commits0 = count_markers(true), aborts0 = count_markers(false);
    assert_true(commits0 > 10 && aborts0 > 10);

    /* markers younger than delete.retention.ms (1 day) all stay */
    st_clean_stats_t cs;
    int64_t now = rb_now_ms();
    int64_t E = pass(f->l, now, &cs);
    assert_true(cs.aborted_removed > 0);
    assert_true(cs.records_removed > cs.aborted_removed);
    assert_int_equal(cs.markers_removed, 0);
    assert_true(E <= lso);
    check(f->l, E);
    assert_int_equal(count_markers(true), commits0);
    assert_int_equal(count_markers(false), aborts0);

    /* while the transaction is open nothing past its first offset is
     * cleanable: more data makes no new pass */
    for (int i = 0; i < 40; i++) data_batch(f->l, -1, 1, 11);
    assert_int_equal(stt_durable(f->l, leo(f->l)), 0);
    assert_int_equal(st_log_compact_run(f->l, now, 0, &cs), 0);
    check(f->l, E);

    /* it commits: its records become visible */
    end_txn(f->l, 2, true);
    assert_int_equal(T[open3].state, 1);
    for (int i = 0; i < 40; i++) data_batch(f->l, -1, 1, 11);
    assert_int_equal(stt_durable(f->l, leo(f->l)), 0);
    lso = st_log_lso(f->l);
    assert_true(lso > open_first);
    check(f->l, E);

    /* two days later: commit markers of transactions with nothing left go in
     * one pass, abort markers in the next (their records went before) */
    now += 2 * DAY_MS;
    E = pass(f->l, now, &cs);
    assert_true(E > open_first);
    check(f->l, E);
    int commits1 = count_markers(true), aborts1 = count_markers(false);
    assert_true(commits1 < commits0);
    assert_true(aborts1 <= aborts0);
    for (int i = 0; i < 40; i++) data_batch(f->l, -1, 1, 11);
    assert_int_equal(stt_durable(f->l, leo(f->l)), 0);
    E = pass(f->l, now, &cs);
    check(f->l, E);
    assert_true(count_markers(false) < aborts1);
    /* each producer's last marker stays (S19) */
    int64_t last_marker[NPID] = {-1, -1, -1};
    for (int t = 0; t < nt; t++)
        if (T[t].state) last_marker[T[t].pid - 101] = T[t].marker;
    for (int pi = 0; pi < NPID; pi++)
        if (last_marker[pi] >= 0) assert_true(marker_present(last_marker[pi]));
    assert_true(marker_present(fence));
    for (int i = 0; i < nonly; i++) assert_int_equal(marker_present(only[i]), i == nonly - 1);

    /* a clean reopen rebuilds the tables from what is left */
    stt_fx_close(f);
    fx_open(f);
    assert_int_equal(stt_durable(f->l, leo(f->l)), 0);
    assert_int_equal(st_log_lso(f->l), leo(f->l)); /* nothing open */
    check(f->l, E);

    /* the reopen loaded a snapshot, so the log does not know where each
     * producer's last marker is: a pass after it still keeps them (S19) */
    for (int i = 0; i < 40; i++) data_batch(f->l, -1, 1, 11);
    assert_int_equal(stt_durable(f->l, leo(f->l)), 0);
    E = pass(f->l, now, &cs);
    check(f->l, E);
    for (int pi = 0; pi < NPID; pi++)
        if (last_marker[pi] >= 0) assert_true(marker_present(last_marker[pi]));
    assert_true(marker_present(fence));
    assert_true(marker_present(only[nonly - 1]));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_model, fx_setup, fx_teardown),
    };
    rb_log_min_level = RB_LOG_ERROR;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
