/*
 * compact.c — log compaction against a model: random keys, values and
 * tombstones (plain, gzip and zstd batches) appended to a real log, passes
 * forced with st_log_compact_run, and a full read from offset 0 compared with
 * the expected state (latest per key below the pass's end offset, full
 * history above it). Also: several passes under a small key-map budget,
 * tombstone expiry, ENOSPC during a pass, and a crash (a forked child that
 * exits without closing) at every step of the swap (S9-S12).
 */
#include "st_test.h"

#include <dirent.h>
#include <stdatomic.h>
#include <sys/wait.h>

#define NKEYS_MAX 4000
#define HIST_MAX 20000

typedef struct {
    int key;      /* -1: none (never produced here) */
    int val;      /* -1: tombstone */
    int64_t ts;
} mrec_t;

typedef struct {
    mrec_t h[HIST_MAX]; /* by offset */
    int64_t n;
} model_t;

static uint64_t rng_state = 88172645463325252ULL;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Appends nb random batches; codecs rotate none/gzip/zstd. */
static void append_random(st_log_t *l, model_t *m, int nb, int nkeys, int64_t ts) {
    static const kp_compression_t codecs[] = {KP_COMP_NONE, KP_COMP_GZIP, KP_COMP_ZSTD};
    for (int b = 0; b < nb; b++) {
        int n = 1 + (int)(rnd() % 6);
        kp_record_in_t recs[8];
        char keys[8][16], vals[8][24];
        memset(recs, 0, sizeof(recs));
        for (int i = 0; i < n; i++) {
            int k = (int)(rnd() % (uint64_t)nkeys);
            int v = rnd() % 8 == 0 ? -1 : (int)(rnd() % 1000000);
            snprintf(keys[i], sizeof(keys[i]), "key-%d", k);
            recs[i].key.p = (const uint8_t *)keys[i];
            recs[i].key.len = (int32_t)strlen(keys[i]);
            if (v >= 0) {
                snprintf(vals[i], sizeof(vals[i]), "v%d", v);
                recs[i].value.p = (const uint8_t *)vals[i];
                recs[i].value.len = (int32_t)strlen(vals[i]);
            } else {
                recs[i].value.len = -1;
            }
            recs[i].timestamp = ts;
            assert_true(m->n + i < HIST_MAX);
            m->h[m->n + i] = (mrec_t){k, v, ts};
        }
        rb_buf_t buf;
        rb_buf_init(&buf);
        kp_batch_build(&buf, 0, codecs[rnd() % 3], recs, n, -1, -1, -1, 0);
        int64_t base, last;
        assert_int_equal(stt_append_blob(l, &buf, rb_now_ms(), &base, &last), 0);
        assert_int_equal(base, m->n);
        m->n += n;
        rb_buf_free(&buf);
    }
    assert_int_equal(stt_durable(l, m->n), 0);
}

/* What a full read returns: offset -> (key, value) for present records. */
typedef struct {
    int64_t n;
    int64_t off[HIST_MAX];
    int key[HIST_MAX], val[HIST_MAX];
} seen_t;

static int parse_num(const uint8_t *p, int32_t len, const char *prefix) {
    size_t pl = strlen(prefix);
    char tmp[32];
    assert_true(len > (int32_t)pl && len < 31);
    memcpy(tmp, p, (size_t)len);
    tmp[len] = 0;
    assert_memory_equal(tmp, prefix, pl);
    return atoi(tmp + pl);
}

static void read_all(st_log_t *l, seen_t *s) {
    s->n = 0;
    int64_t next = 0;
    rb_buf_t dec;
    rb_buf_init(&dec);
    for (int guard = 0;; guard++) {
        assert_true(guard < 100000); /* a fetch never loops */
        st_read_t r;
        assert_int_equal(st_log_read(l, next, 1 << 20, true, &r), 0);
        if (r.len == 0) {
            assert_int_equal(next, r.high_watermark);
            break;
        }
        uint8_t *buf = malloc(r.len);
        assert_int_equal(pread(r.fd, buf, r.len, r.file_off), (ssize_t)r.len);
        close(r.fd);
        size_t p = 0;
        int64_t first_base = -1;
        while (p < r.len) {
            kp_batch_hdr_t h;
            assert_int_equal(kp_batch_hdr_parse(buf + p, r.len - p, &h), 0);
            size_t sz = (size_t)h.batch_length + KP_BATCH_LOG_OVERHEAD;
            assert_int_equal(rb_crc32c(0, buf + p + 21, sz - 21), h.crc);
            if (first_base < 0) first_base = h.base_offset;
            const uint8_t *recs = buf + p + KP_BATCH_HEADER_SIZE;
            size_t rl = sz - KP_BATCH_HEADER_SIZE;
            int codec = h.attributes & KP_ATTR_COMPRESSION_MASK;
            if (codec) {
                rb_buf_reset(&dec);
                assert_int_equal(kp_decompress((kp_compression_t)codec, recs, rl, 1 << 26, &dec), 0);
                recs = dec.p;
                rl = dec.len;
            }
            rb_rd_t rd;
            rb_rd_init(&rd, recs, rl);
            for (int32_t i = 0; i < h.records_count; i++) {
                kp_record_t rec;
                assert_int_equal(kp_record_next(&rd, &rec), 0);
                int64_t off = h.base_offset + rec.offset_delta;
                assert_true(off <= h.base_offset + h.last_offset_delta);
                if (off < next) continue;
                assert_true(s->n == 0 || off > s->off[s->n - 1]); /* strictly increasing */
                s->off[s->n] = off;
                s->key[s->n] = parse_num(rec.key.p, rec.key.len, "key-");
                s->val[s->n] = rec.value.len < 0 ? -1 : parse_num(rec.value.p, rec.value.len, "v");
                s->n++;
            }
            assert_int_equal(rb_rd_left(&rd), 0);
            next = h.base_offset + h.last_offset_delta + 1;
            p += sz;
        }
        assert_true(first_base >= 0);
        free(buf);
    }
    rb_buf_free(&dec);
}

/* The expected state after passes with end offset E: below E the latest
 * record per key (a tombstone only if tomb_keep), from E on everything. */
static void expect_state(const model_t *m, int64_t E, bool tomb_keep, seen_t *x) {
    static int64_t latest[NKEYS_MAX];
    for (int k = 0; k < NKEYS_MAX; k++) latest[k] = -1;
    for (int64_t o = 0; o < E && o < m->n; o++) latest[m->h[o].key] = o;
    x->n = 0;
    for (int64_t o = 0; o < m->n; o++) {
        const mrec_t *r = &m->h[o];
        if (o < E && (latest[r->key] != o || (r->val < 0 && !tomb_keep))) continue;
        x->off[x->n] = o;
        x->key[x->n] = r->key;
        x->val[x->n] = r->val;
        x->n++;
    }
}

static bool seen_equal(const seen_t *a, const seen_t *b) {
    if (a->n != b->n) return false;
    for (int64_t i = 0; i < a->n; i++)
        if (a->off[i] != b->off[i] || a->key[i] != b->key[i] || a->val[i] != b->val[i]) return false;
    return true;
}

static st_log_config_t ccfg(void) {
    st_log_config_t c = stt_cfg(2048, 256);
    c.compact = true;
    c.min_cleanable_dirty_ratio = 0;
    c.retention_ms = -1;
    return c;
}

static model_t M;
static seen_t S, X, OLD;

/* A fresh dir with one open compacted log "t-0" of segment_bytes seg; the model reset. */
static st_log_t *open_fresh(char **dir, st_mgr_t **mg, st_log_config_t *c, int64_t seg) {
    *dir = stt_mkdtemp();
    assert_int_equal(st_mgr_open(*dir, mg), 0);
    *c = ccfg();
    if (seg) c->segment_bytes = seg;
    st_log_t *l;
    assert_int_equal(st_log_open(*mg, "t", 0, c, &l), 0);
    memset(&M, 0, sizeof(M));
    return l;
}

/* A full read equals the model compacted up to E. */
static void check_model(st_log_t *l, int64_t E, bool tomb_keep) {
    read_all(l, &S);
    expect_state(&M, E, tomb_keep, &X);
    assert_true(seen_equal(&S, &X));
}

static void close_all(st_log_t *l, st_mgr_t *mg, char *dir) {
    st_log_close(l);
    st_mgr_close(mg);
    stt_rmdir(dir);
}

static void test_model(void **state) {
    (void)state;
    char *dir;
    st_mgr_t *mg;
    st_log_config_t c;
    st_log_t *l = open_fresh(&dir, &mg, &c, 0);
    int64_t now = rb_now_ms();
    for (int round = 0; round < 4; round++) {
        append_random(l, &M, 60, 40, now);
        st_log_state_t before;
        st_log_state(l, &before);
        st_clean_stats_t cs;
        int rc = st_log_compact_run(l, now, 0, &cs);
        assert_int_equal(rc, 1);
        assert_true(cs.records_removed > 0);
        assert_int_equal(st_log_cleaner_offset(l), cs.end_offset);
        check_model(l, cs.end_offset, true);
        st_log_state_t ls;
        st_log_state(l, &ls);
        assert_int_equal(ls.log_start_offset, 0); /* compaction never moves it */
        if (round > 0) assert_true(ls.nsegments < before.nsegments); /* small cleaned segments merge */
    }
    /* restart: the same state, the checkpoint remembered */
    int64_t E = st_log_cleaner_offset(l);
    st_log_close(l);
    st_mgr_close(mg);
    assert_int_equal(st_mgr_open(dir, &mg), 0);
    assert_int_equal(st_log_open(mg, "t", 0, &c, &l), 0);
    assert_int_equal(st_log_cleaner_offset(l), E);
    read_all(l, &S);
    assert_true(seen_equal(&S, &X));
    /* nothing dirty: no pass */
    assert_int_equal(st_log_compact_run(l, now, 0, NULL), 0);
    /* tombstones expire after delete.retention.ms */
    c.delete_retention_ms = 1000;
    st_log_set_config(l, &c);
    append_random(l, &M, 20, 40, now);
    st_clean_stats_t cs;
    assert_int_equal(st_log_compact_run(l, now + 5000, 0, &cs), 1);
    check_model(l, cs.end_offset, false);
    close_all(l, mg, dir);
}

/* A key map too small for the dirty part: several passes, each correct. */
static void test_small_budget(void **state) {
    (void)state;
    char *dir;
    st_mgr_t *mg;
    st_log_config_t c;
    st_log_t *l = open_fresh(&dir, &mg, &c, 16384);
    int64_t now = rb_now_ms();
    append_random(l, &M, 1500, 3000, now);
    int passes = 0;
    int64_t prev = -1;
    for (;;) {
        st_clean_stats_t cs;
        int rc = st_log_compact_run(l, now, 65536, &cs);
        assert_true(rc == 0 || rc == 1);
        if (rc == 0) break;
        passes++;
        assert_true(cs.end_offset > prev);
        assert_true(cs.map_bytes <= 65536);
        prev = cs.end_offset;
        check_model(l, cs.end_offset, true);
        assert_true(passes < 50);
    }
    assert_true(passes >= 2);
    close_all(l, mg, dir);
}

static bool stage_exists(const char *dir) {
    char p[4096];
    snprintf(p, sizeof(p), "%s/t-0/%s", dir, ST_STAGE_DIR);
    struct stat st;
    return stat(p, &st) == 0;
}

/* ENOSPC while writing cleaned segments: abandoned, nothing changed; later ok. */
static void test_enospc(void **state) {
    (void)state;
    char *dir;
    st_mgr_t *mg;
    st_log_config_t c;
    st_log_t *l = open_fresh(&dir, &mg, &c, 0);
    int64_t now = rb_now_ms();
    append_random(l, &M, 80, 30, now);
    read_all(l, &OLD);
    setenv("RILL_FAILPOINTS", "st.clean.write=ENOSPC@1", 1);
    rb_failpoint_reload();
    assert_int_equal(st_log_compact_run(l, now, 0, NULL), RB_KAFKA_STORAGE_ERROR);
    unsetenv("RILL_FAILPOINTS");
    rb_failpoint_reload();
    assert_false(stage_exists(dir));
    read_all(l, &S);
    assert_true(seen_equal(&S, &OLD));
    st_log_state_t ls;
    st_log_state(l, &ls);
    assert_false(ls.fatal);
    st_clean_stats_t cs;
    assert_int_equal(st_log_compact_run(l, now, 0, &cs), 1);
    check_model(l, cs.end_offset, true);
    /* appends still work */
    append_random(l, &M, 2, 30, now);
    close_all(l, mg, dir);
}

/* A crash at every step of the swap: a child runs the pass with a failpoint
 * and exits without closing anything; the reopened log holds exactly the old
 * or exactly the new state (never a mix), per the commit point. */
static void test_crash_steps(void **state) {
    (void)state;
    char *tmpl = stt_mkdtemp();
    st_mgr_t *mg;
    assert_int_equal(st_mgr_open(tmpl, &mg), 0);
    st_log_config_t c = ccfg();
    st_log_t *l;
    assert_int_equal(st_log_open(mg, "t", 0, &c, &l), 0);
    memset(&M, 0, sizeof(M));
    int64_t now = rb_now_ms();
    append_random(l, &M, 120, 20, now);
    read_all(l, &OLD);
    st_log_close(l);
    st_mgr_close(mg);
    struct {
        char fp[64];
        bool after_commit;
    } steps[128];
    int ns = 0;
    snprintf(steps[ns].fp, 64, "st.clean.write=EIO@1");
    steps[ns++].after_commit = false;
    snprintf(steps[ns].fp, 64, "st.clean.commit=EIO");
    steps[ns++].after_commit = false;
    snprintf(steps[ns].fp, 64, "st.clean.swapped=EIO");
    steps[ns++].after_commit = true;
    /* every rename of a staged file and unlink of a merged segment, until the pass gets through */
    for (int k = 0; k < 120; k++) {
        snprintf(steps[ns].fp, 64, "st.clean.rename=EIO@%d", k);
        steps[ns++].after_commit = true;
    }
    int renames = 0;
    for (int i = 0; i < ns; i++) {
        char *dir = stt_mkdtemp();
        char cmd[8192];
        snprintf(cmd, sizeof(cmd), "cp -a %s/. %s/", tmpl, dir);
        assert_int_equal(system(cmd), 0);
        int pfd[2];
        assert_int_equal(pipe(pfd), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(pfd[0]);
            setenv("RILL_FAILPOINTS", steps[i].fp, 1);
            rb_failpoint_reload();
            st_mgr_t *cm;
            st_log_t *cl;
            if (st_mgr_open(dir, &cm) || st_log_open(cm, "t", 0, &c, &cl)) _exit(2);
            st_clean_stats_t cs;
            int rc = st_log_compact_run(cl, now, 0, &cs);
            int64_t msg[2] = {rc, cs.end_offset};
            if (write(pfd[1], msg, sizeof(msg)) != (ssize_t)sizeof(msg)) _exit(3);
            _exit(0); /* a crash: nothing closed, no clean-shutdown marker */
        }
        close(pfd[1]);
        int64_t msg[2];
        assert_int_equal(read(pfd[0], msg, sizeof(msg)), (ssize_t)sizeof(msg));
        close(pfd[0]);
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        bool through = msg[0] == 1 && strstr(steps[i].fp, "rename");
        if (msg[0] != RB_KAFKA_STORAGE_ERROR && !through)
            fail_msg("step %s: the pass returned %d", steps[i].fp, (int)msg[0]);
        if (!through && strstr(steps[i].fp, "rename")) renames++;
        assert_int_equal(st_mgr_open(dir, &mg), 0);
        assert_int_equal(st_log_open(mg, "t", 0, &c, &l), 0);
        assert_false(stage_exists(dir));
        read_all(l, &S);
        if (steps[i].after_commit) {
            expect_state(&M, msg[1], true, &X);
            if (!seen_equal(&S, &X)) fail_msg("step %s: not the new state", steps[i].fp);
        } else if (!seen_equal(&S, &OLD)) {
            fail_msg("step %s: not the old state", steps[i].fp);
        }
        /* the log works on: append, compact, read */
        model_t *mm = &M;
        int64_t saved = mm->n;
        append_random(l, mm, 3, 20, now);
        st_clean_stats_t cs;
        assert_true(st_log_compact_run(l, now, 0, &cs) >= 0);
        read_all(l, &S);
        mm->n = saved; /* the template's history for the next step */
        close_all(l, mg, dir);
        if (through) break;
        assert_true(i + 1 < ns);
    }
    assert_true(renames >= 6); /* staged files and merged segments: several steps each crashed at */
    stt_rmdir(tmpl);
}

/* Keyless records and gaps: reads continue past emptied segments. */
static void test_fetch_gaps(void **state) {
    (void)state;
    char *dir;
    st_mgr_t *mg;
    st_log_config_t c;
    st_log_t *l = open_fresh(&dir, &mg, &c, 600);
    int64_t now = rb_now_ms();
    /* many updates of one key, then other keys: whole segments empty out */
    for (int i = 0; i < 40; i++) {
        kp_record_in_t r = {0};
        char v[16];
        snprintf(v, sizeof(v), "v%d", i);
        r.key.p = (const uint8_t *)"key-1";
        r.key.len = 5;
        r.value.p = (const uint8_t *)v;
        r.value.len = (int32_t)strlen(v);
        r.timestamp = now;
        rb_buf_t b;
        rb_buf_init(&b);
        kp_batch_build(&b, 0, KP_COMP_NONE, &r, 1, -1, -1, -1, 0);
        assert_int_equal(stt_append_blob(l, &b, now, NULL, NULL), 0);
        rb_buf_free(&b);
        M.h[M.n++] = (mrec_t){1, i, now};
    }
    append_random(l, &M, 10, 5, now);
    st_clean_stats_t cs;
    assert_int_equal(st_log_compact_run(l, now, 0, &cs), 1);
    /* a fetch at a removed offset returns the next batch at a higher offset */
    st_read_t r;
    assert_int_equal(st_log_read(l, 3, 1 << 20, true, &r), 0);
    assert_true(r.len > 0);
    stt_b_t bs[256];
    int nb = stt_parse_read(&r, bs, 256);
    assert_true(nb >= 1 && bs[0].base > 3);
    check_model(l, cs.end_offset, true);
    /* unclean reopen (no marker): recovery accepts the gaps */
    st_log_close(l);
    st_mgr_close(mg);
    char mk[4096];
    snprintf(mk, sizeof(mk), "%s/%s", dir, ST_MARKER_FILE);
    assert_int_equal(unlink(mk), 0);
    snprintf(mk, sizeof(mk), "%s/%s", dir, ST_CKPT_FILE);
    assert_int_equal(unlink(mk), 0); /* no recovery point: everything scanned */
    assert_int_equal(st_mgr_open(dir, &mg), 0);
    assert_int_equal(st_log_open(mg, "t", 0, &c, &l), 0);
    read_all(l, &S);
    assert_true(seen_equal(&S, &X));
    close_all(l, mg, dir);
}

/* The cleaner thread compacting (backoff 1 ms) while the test appends and a
 * reader thread reads everything again and again: reads never fail, never
 * return a record other than the one appended at its offset, offsets always
 * increase; afterwards (and after a reopen) the log matches the model. */
typedef struct {
    st_log_t *l;
    atomic_int stop;
    atomic_int bad;
    int reads;
} rd_ctx_t;

static void *reader_main(void *arg) {
    rd_ctx_t *x = arg;
    rb_buf_t dec;
    rb_buf_init(&dec);
    while (!atomic_load(&x->stop) && !atomic_load(&x->bad)) {
        int64_t next = 0, last = -1;
        for (int guard = 0; guard < 100000; guard++) {
            st_read_t r;
            if (st_log_read(x->l, next, 64 * 1024, true, &r)) { atomic_store(&x->bad, 1); break; }
            if (r.len == 0) {
                if (next != r.high_watermark) atomic_store(&x->bad, 2);
                break;
            }
            uint8_t *buf = malloc(r.len);
            if (pread(r.fd, buf, r.len, r.file_off) != (ssize_t)r.len) atomic_store(&x->bad, 3);
            close(r.fd);
            size_t p = 0;
            while (p < r.len && !atomic_load(&x->bad)) {
                kp_batch_hdr_t h;
                if (kp_batch_hdr_parse(buf + p, r.len - p, &h)) { atomic_store(&x->bad, 4); break; }
                size_t sz = (size_t)h.batch_length + KP_BATCH_LOG_OVERHEAD;
                if (rb_crc32c(0, buf + p + 21, sz - 21) != h.crc) { atomic_store(&x->bad, 5); break; }
                const uint8_t *recs = buf + p + KP_BATCH_HEADER_SIZE;
                size_t rl = sz - KP_BATCH_HEADER_SIZE;
                int codec = h.attributes & KP_ATTR_COMPRESSION_MASK;
                if (codec) {
                    rb_buf_reset(&dec);
                    if (kp_decompress((kp_compression_t)codec, recs, rl, 1 << 26, &dec)) { atomic_store(&x->bad, 6); break; }
                    recs = dec.p;
                    rl = dec.len;
                }
                rb_rd_t rd;
                rb_rd_init(&rd, recs, rl);
                for (int32_t i = 0; i < h.records_count; i++) {
                    kp_record_t rec;
                    if (kp_record_next(&rd, &rec)) { atomic_store(&x->bad, 7); break; }
                    int64_t off = h.base_offset + rec.offset_delta;
                    if (off < next) continue;
                    char kb[32];
                    snprintf(kb, sizeof(kb), "key-%d", M.h[off].key);
                    if (off <= last || rec.key.len != (int32_t)strlen(kb) || memcmp(rec.key.p, kb, strlen(kb)) ||
                        (rec.value.len < 0) != (M.h[off].val < 0)) {
                        atomic_store(&x->bad, 8);
                        break;
                    }
                    last = off;
                }
                next = h.base_offset + h.last_offset_delta + 1;
                p += sz;
            }
            free(buf);
            if (atomic_load(&x->bad)) break;
        }
        x->reads++;
    }
    rb_buf_free(&dec);
    return NULL;
}

static void test_concurrent(void **state) {
    (void)state;
    char *dir;
    st_mgr_t *mg;
    st_log_config_t c;
    st_log_t *l = open_fresh(&dir, &mg, &c, 4096);
    st_mgr_set_cleaner(mg, true, 1 << 20, 1);
    rd_ctx_t x = {.l = l};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, reader_main, &x), 0);
    int64_t now = rb_now_ms();
    for (int i = 0; i < 40 && !atomic_load(&x.bad); i++) append_random(l, &M, 25, 60, now);
    atomic_store(&x.stop, 1);
    pthread_join(th, NULL);
    if (atomic_load(&x.bad)) fail_msg("reader saw an inconsistency (code %d) after %d reads", atomic_load(&x.bad), x.reads);
    assert_true(x.reads > 0);
    uint64_t passes = atomic_load(&mg->m_cc_passes);
    fprintf(stderr, "concurrent: %d full reads, %d compaction passes meanwhile\n", x.reads, (int)passes);
    assert_true(passes >= 2);
    st_mgr_set_cleaner(mg, false, 1 << 20, 1);
    st_log_close(l); /* waits for the cleaner to leave the log */
    st_mgr_close(mg);
    assert_int_equal(st_mgr_open(dir, &mg), 0);
    assert_int_equal(st_log_open(mg, "t", 0, &c, &l), 0);
    int64_t E = st_log_cleaner_offset(l);
    assert_true(E > 0); /* the cleaner ran */
    check_model(l, E, true);
    close_all(l, mg, dir);
}

/* Appends one record at now_ms (the roll clock's time). Returns its offset. */
static int64_t append_one_at(st_log_t *l, int64_t now_ms) {
    rb_buf_t b;
    rb_buf_init(&b);
    stt_batch(&b, 1, now_ms, 10, KP_COMP_NONE);
    M.h[M.n] = (mrec_t){0, -2, now_ms};
    kp_batch_info_t info;
    kp_batch_limits_t lim = {.max_batch_bytes = 1 << 20};
    assert_int_equal(kp_batch_validate(b.p, b.len, &lim, &info, NULL, 0), 0);
    int64_t bo, lo, lat;
    assert_int_equal(st_log_append(l, b.p, b.len, &info, now_ms, &bo, &lo, &lat), 0);
    rb_buf_free(&b);
    M.n = lo + 1;
    assert_int_equal(stt_durable(l, lo + 1), 0);
    return lo;
}

/* max.compaction.lag.ms: the active segment rolls after it (on the next
 * append, although segment.ms is a week), and dirty data older than it is
 * cleaned even below min.cleanable.dirty.ratio. */
static void test_max_lag(void **state) {
    (void)state;
    char *dir;
    st_mgr_t *mg;
    st_log_config_t c;
    st_log_t *l = open_fresh(&dir, &mg, &c, 1 << 20);
    c.max_compaction_lag_ms = 1000;
    st_log_set_config(l, &c);
    int64_t now = rb_now_ms();
    append_random(l, &M, 30, 10, now - 5000); /* the roll clock starts at this append (now) */
    assert_int_equal(st_log_compact_run(l, now + 2000, 0, NULL), 0); /* all in the active segment */
    st_log_state_t ls;
    st_log_state(l, &ls);
    int32_t before = ls.nsegments;
    append_one_at(l, now + 2000);
    st_log_state(l, &ls);
    assert_int_equal(ls.nsegments, before + 1); /* rolled by the lag */
    assert_int_equal(st_log_compact_run(l, now + 2000, 0, NULL), 1); /* ratio 0: a first pass */
    /* now a clean part exists: more dirty data, but below a ratio of 1.0 */
    c.min_cleanable_dirty_ratio = 1.0;
    c.max_compaction_lag_ms = INT64_MAX;
    st_log_set_config(l, &c);
    c.segment_ms = 1000;
    st_log_set_config(l, &c);
    append_random(l, &M, 30, 10, now - 5000);
    st_log_state(l, &ls);
    before = ls.nsegments;
    append_one_at(l, now + 20000); /* rolls by segment.ms */
    st_log_state(l, &ls);
    assert_int_equal(ls.nsegments, before + 1);
    assert_int_equal(st_log_compact_run(l, now + 20000, 0, NULL), 0); /* below the ratio, no lag: nothing */
    c.max_compaction_lag_ms = 1000;
    st_log_set_config(l, &c);
    st_clean_stats_t cs;
    assert_int_equal(st_log_compact_run(l, now + 20000, 0, &cs), 1); /* overdue: cleaned */
    assert_true(cs.records_removed > 0);
    close_all(l, mg, dir);
}

/* min.compaction.lag.ms: segments with records younger than it wait. */
static void test_min_lag(void **state) {
    (void)state;
    char *dir;
    st_mgr_t *mg;
    st_log_config_t c;
    st_log_t *l = open_fresh(&dir, &mg, &c, 0);
    c.min_compaction_lag_ms = 3600 * 1000;
    st_log_set_config(l, &c);
    int64_t now = rb_now_ms();
    append_random(l, &M, 60, 20, now);
    assert_int_equal(st_log_compact_run(l, now, 0, NULL), 0);
    st_clean_stats_t cs;
    assert_int_equal(st_log_compact_run(l, now + 2 * 3600 * 1000, 0, &cs), 1);
    check_model(l, cs.end_offset, true);
    close_all(l, mg, dir);
}

/* ListOffsets MAX_TIMESTAMP after the record holding it was compacted away. */
static void one_rec(st_log_t *l, const char *key, int64_t ts) {
    kp_record_in_t r = {0};
    r.key.p = (const uint8_t *)key;
    r.key.len = (int32_t)strlen(key);
    r.value.p = (const uint8_t *)"v";
    r.value.len = 1;
    r.timestamp = ts;
    rb_buf_t b;
    rb_buf_init(&b);
    kp_batch_build(&b, 0, KP_COMP_NONE, &r, 1, -1, -1, -1, 0);
    int64_t lo;
    assert_int_equal(stt_append_blob(l, &b, rb_now_ms(), NULL, &lo), 0);
    assert_int_equal(stt_durable(l, lo + 1), 0);
    rb_buf_free(&b);
}

static void test_max_timestamp(void **state) {
    (void)state;
    char *dir;
    st_mgr_t *mg;
    st_log_config_t c;
    st_log_t *l = open_fresh(&dir, &mg, &c, 200); /* about two one-record batches per segment */
    one_rec(l, "key-a", 9000); /* 0: the largest timestamp, superseded below */
    one_rec(l, "key-b", 5000); /* 1 */
    one_rec(l, "key-a", 6000); /* 2 */
    for (int i = 0; i < 6; i++) one_rec(l, "key-c", 1000 + i); /* seal the above */
    int64_t off, ts;
    assert_int_equal(st_log_max_timestamp(l, &off, &ts), 0);
    assert_int_equal(off, 0);
    assert_int_equal(ts, 9000);
    st_clean_stats_t cs;
    assert_int_equal(st_log_compact_run(l, rb_now_ms(), 0, &cs), 1);
    assert_true(cs.end_offset > 2);
    assert_int_equal(st_log_max_timestamp(l, &off, &ts), 0);
    assert_int_equal(off, 2);
    assert_int_equal(ts, 6000);
    /* and after a reopen (from the segments' time indexes) */
    st_log_close(l);
    st_mgr_close(mg);
    assert_int_equal(st_mgr_open(dir, &mg), 0);
    assert_int_equal(st_log_open(mg, "t", 0, &c, &l), 0);
    assert_int_equal(st_log_max_timestamp(l, &off, &ts), 0);
    assert_int_equal(off, 2);
    assert_int_equal(ts, 6000);
    close_all(l, mg, dir);
}

/* A transaction holds the cleaner below its first offset while open (S20):
 * its batch stays byte for byte though later plain records supersede it;
 * once committed, its records are compacted like plain ones (the batch
 * superseded whole goes; the producer's last batch stays, S19).
 * tests/unit/storage/txnclean.c checks the rest against a model. */
static void test_transactional(void **state) {
    (void)state;
    char *dir;
    st_mgr_t *mg;
    st_log_config_t c;
    st_log_t *l = open_fresh(&dir, &mg, &c, 300);
    kp_record_in_t r[2];
    memset(r, 0, sizeof(r));
    for (int i = 0; i < 2; i++) {
        r[i].key.p = (const uint8_t *)"key-a";
        r[i].key.len = 5;
        r[i].value.p = (const uint8_t *)"txn";
        r[i].value.len = 3;
        r[i].timestamp = 1000 + i;
    }
    rb_buf_t b;
    rb_buf_init(&b);
    kp_batch_build(&b, 0, KP_COMP_GZIP, r, 2, 7, 0, 0, KP_ATTR_TRANSACTIONAL);
    int64_t lo;
    assert_int_equal(stt_append_blob(l, &b, rb_now_ms(), NULL, &lo), 0);
    assert_int_equal(lo, 1);
    for (int i = 0; i < 8; i++) one_rec(l, "key-a", 2000 + i); /* supersede it, seal it */
    st_read_t rd;
    assert_int_equal(st_log_read(l, 0, 1 << 20, true, &rd), 0);
    uint8_t *before = malloc(b.len);
    assert_int_equal(pread(rd.fd, before, b.len, rd.file_off), (ssize_t)b.len);
    close(rd.fd);
    st_clean_stats_t cs;
    assert_int_equal(st_log_lso(l), 0);
    assert_int_equal(st_log_compact_run(l, rb_now_ms(), 0, &cs), 0); /* nothing below the LSO */
    assert_int_equal(st_log_read(l, 0, 1 << 20, true, &rd), 0);
    uint8_t *after = malloc(b.len);
    assert_true(rd.len >= b.len);
    assert_int_equal(pread(rd.fd, after, b.len, rd.file_off), (ssize_t)b.len);
    close(rd.fd);
    assert_memory_equal(before, after, b.len); /* offsets 0-1 still there, byte for byte */
    /* a second batch of the transaction (key-b), the commit, more plain ones */
    r[0].key.p = (const uint8_t *)"key-b";
    rb_buf_reset(&b);
    kp_batch_build(&b, 0, KP_COMP_NONE, r, 1, 7, 0, 2, KP_ATTR_TRANSACTIONAL);
    int64_t second;
    assert_int_equal(stt_append_blob(l, &b, rb_now_ms(), &second, &lo), 0);
    int64_t m;
    assert_int_equal(stt_marker(l, 7, 0, true, &m), 0);
    for (int i = 0; i < 8; i++) one_rec(l, "key-c", 3000 + i);
    assert_int_equal(st_log_lso(l), m + 9);
    assert_int_equal(st_log_compact_run(l, rb_now_ms(), 0, &cs), 1);
    assert_true(cs.records_removed >= 2);
    stt_b_t bs[8];
    assert_int_equal(st_log_read(l, 0, 1 << 20, true, &rd), 0);
    assert_true(stt_parse_read(&rd, bs, 8) >= 1);
    assert_true(bs[0].base >= 2); /* the superseded transactional batch is gone */
    assert_int_equal(st_log_read(l, second, 1 << 20, true, &rd), 0);
    assert_true(stt_parse_read(&rd, bs, 8) >= 1);
    assert_int_equal(bs[0].base, second); /* the producer's last batch (S19) */
    assert_int_equal(st_log_read(l, m, 1 << 20, true, &rd), 0);
    assert_true(stt_parse_read(&rd, bs, 8) >= 1);
    assert_int_equal(bs[0].base, m); /* and its marker (records of it remain) */
    assert_true(bs[0].attrs & KP_ATTR_CONTROL);
    free(before);
    free(after);
    rb_buf_free(&b);
    close_all(l, mg, dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model),
        cmocka_unit_test(test_small_budget),
        cmocka_unit_test(test_enospc),
        cmocka_unit_test(test_fetch_gaps),
        cmocka_unit_test(test_crash_steps),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_max_lag),
        cmocka_unit_test(test_min_lag),
        cmocka_unit_test(test_max_timestamp),
        cmocka_unit_test(test_transactional),
    };
    rb_log_min_level = RB_LOG_ERROR;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
