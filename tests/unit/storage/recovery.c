/*
 * recovery.c — storage unit tests for S5/S6: recovery after an unclean stop
 * (a torn tail at every byte position, a corrupt byte anywhere in the last
 * batch, garbage appended, a torn middle segment, a hole), index rebuilds
 * (missing, wrong size, not increasing, pointing past the segment), the
 * recovery checkpoint (format, where the scan starts, never above the high
 * watermark) and kill -9 of a process appending with sync waits.
 */
#include "st_test.h"

#include <signal.h>
#include <sys/wait.h>

STT_FIXTURE("rec", 2000, 100)
static void fx_close(fx_t *f) { stt_fx_close(f); }

static void rm_marker(fx_t *f) {
    char p[4200];
    snprintf(p, sizeof(p), "%s/.kafka_cleanShutdown", f->dir);
    assert_int_equal(unlink(p), 0);
}

static char *seg_file(fx_t *f, int64_t base, const char *ext) {
    static char p[4300];
    snprintf(p, sizeof(p), "%s/%020lld%s", f->pdir, (long long)base, ext);
    return p;
}

static uint8_t *slurp(const char *path, size_t *len) {
    char *d;
    assert_int_equal(rb_read_file(path, &d, len), 0);
    return (uint8_t *)d;
}

static void spit(const char *path, const void *p, size_t n) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    close(fd);
}

/* Builds a log of `n` appends (1 batch of 2 records, 60-byte values) and
 * closes it cleanly. Returns the log end offset. */
static int64_t build(fx_t *f, int n) {
    fx_open(f);
    for (int i = 0; i < n; i++) stt_append(f->l, 1, 2, 1000 + 2 * i, 60, 1000);
    st_log_state_t s;
    st_log_state(f->l, &s);
    assert_int_equal(stt_durable(f->l, s.log_end_offset), 0);
    fx_close(f);
    return s.log_end_offset;
}

/* Segment bases in order (from the file names). */
static int bases(fx_t *f, int64_t *out, int max) {
    fx_open(f);
    pthread_mutex_lock(&f->l->l_mutex);
    int n = f->l->l_nsegs;
    for (int i = 0; i < n && i < max; i++) out[i] = f->l->l_segs[i]->seg_base;
    pthread_mutex_unlock(&f->l->l_mutex);
    fx_close(f);
    return n;
}

/* Batch boundaries of a .log image: pos[i] and the offset starting there. */
static int boundaries(const uint8_t *p, size_t len, int64_t *pos, int64_t *off, int max) {
    int n = 0;
    size_t at = 0;
    while (at < len && n < max) {
        kp_batch_hdr_t h;
        assert_int_equal(kp_batch_hdr_parse(p + at, len - at, &h), 0);
        pos[n] = (int64_t)at;
        off[n] = h.base_offset;
        n++;
        at += (size_t)h.batch_length + KP_BATCH_LOG_OVERHEAD;
    }
    assert_int_equal(at, len);
    return n;
}

static void check_state(fx_t *f, int64_t leo) {
    st_log_state_t s;
    st_log_state(f->l, &s);
    assert_int_equal(s.log_end_offset, leo);
    assert_int_equal(s.high_watermark, leo);
    assert_int_equal(stt_read_all(f->l, s.log_start_offset, 700), leo);
}

static void test_torn_tail_every_byte(void **state) {
    fx_t *f = *state;
    int64_t leo = build(f, 40);
    int64_t b[64];
    int nseg = bases(f, b, 64);
    assert_true(nseg >= 3);
    int64_t last = b[nseg - 1];
    size_t len;
    uint8_t *img = slurp(seg_file(f, last, ".log"), &len);
    size_t ilen, tlen;
    uint8_t *idx = slurp(seg_file(f, last, ".index"), &ilen);
    uint8_t *tidx = slurp(seg_file(f, last, ".timeindex"), &tlen);
    assert_true(len > 500);
    int64_t pos[64], off[64];
    int nb = boundaries(img, len, pos, off, 64);
    for (size_t cut = 0; cut <= len; cut++) {
        spit(seg_file(f, last, ".log"), img, cut);
        spit(seg_file(f, last, ".index"), idx, ilen); /* stale: entries past the cut */
        spit(seg_file(f, last, ".timeindex"), tidx, tlen);
        rm_marker(f);
        int64_t expect = leo, keep = (int64_t)len;
        for (int i = nb - 1; i >= 0; i--) {
            int64_t end = i + 1 < nb ? pos[i + 1] : (int64_t)len;
            if (end > (int64_t)cut) expect = off[i], keep = pos[i];
        }
        fx_open(f);
        check_state(f, expect);
        assert_int_equal(stt_file_size(seg_file(f, last, ".log")), keep);
        assert_int_equal(stt_file_size(seg_file(f, last, ".index")) % 8, 0);
        if (cut % 23 == 0) {
            int64_t base = stt_append(f->l, 1, 1, 5, 10, 1000);
            assert_int_equal(base, expect);
            assert_int_equal(stt_durable(f->l, base + 1), 0);
            check_state(f, expect + 1);
        }
        fx_close(f);
    }
    free(img);
    free(idx);
    free(tidx);
}

static void test_corrupt_last_batch(void **state) {
    fx_t *f = *state;
    int64_t leo = build(f, 30);
    int64_t b[64];
    int nseg = bases(f, b, 64);
    int64_t last = b[nseg - 1];
    size_t len;
    uint8_t *img = slurp(seg_file(f, last, ".log"), &len);
    int64_t pos[64], off[64];
    int nb = boundaries(img, len, pos, off, 64);
    assert_true(nb >= 2);
    int64_t lb = pos[nb - 1];
    for (int64_t p = lb; p < (int64_t)len; p++) {
        if (p - lb >= 12 && p - lb < 16) continue; /* partition leader epoch: not covered by the CRC (Kafka) */
        uint8_t *c = malloc(len);
        memcpy(c, img, len);
        c[p] ^= 0x41;
        spit(seg_file(f, last, ".log"), c, len);
        free(c);
        rm_marker(f);
        fx_open(f);
        check_state(f, off[nb - 1]);
        assert_int_equal(stt_file_size(seg_file(f, last, ".log")), lb);
        fx_close(f);
    }
    /* the intact image put back: a clean open trusts it, all there */
    spit(seg_file(f, last, ".log"), img, len);
    fx_open(f);
    check_state(f, leo);
    fx_close(f);
    free(img);
}

static void test_garbage_appended(void **state) {
    fx_t *f = *state;
    int64_t leo = build(f, 20);
    int64_t b[64];
    int nseg = bases(f, b, 64);
    int64_t last = b[nseg - 1];
    size_t len;
    uint8_t *img = slurp(seg_file(f, last, ".log"), &len);
    size_t glens[] = {1, 11, 12, 60, 61, 62, 500, 5000};
    uint32_t seed = 7;
    for (int kind = 0; kind < 3; kind++) {
        for (size_t g = 0; g < RB_ARRAY_LEN(glens); g++) {
            size_t n = len + glens[g];
            uint8_t *c = malloc(n);
            memcpy(c, img, len);
            for (size_t i = len; i < n; i++) {
                seed = seed * 1103515245 + 12345;
                c[i] = kind == 0 ? 0 : kind == 1 ? (uint8_t)(seed >> 16) : 0xff;
            }
            if (kind == 1 && glens[g] >= 61) {
                /* a plausible header: right offset and length, wrong CRC */
                rb_wbe64(c + len, (uint64_t)leo);
                rb_wbe32(c + len + 8, (uint32_t)(glens[g] - 12));
                c[len + 16] = 2;
                rb_wbe32(c + len + 23, 0);
            }
            spit(seg_file(f, last, ".log"), c, n);
            free(c);
            rm_marker(f);
            fx_open(f);
            check_state(f, leo);
            assert_int_equal(stt_file_size(seg_file(f, last, ".log")), (int64_t)len);
            fx_close(f);
        }
    }
    free(img);
}

/* A torn middle segment (scanned because the recovery point is before it):
 * truncated, and every later segment deleted. */
static void test_torn_middle_segment(void **state) {
    fx_t *f = *state;
    build(f, 40);
    int64_t b[64];
    int nseg = bases(f, b, 64);
    assert_true(nseg >= 4);
    size_t len;
    uint8_t *img = slurp(seg_file(f, b[1], ".log"), &len);
    int64_t pos[64], off[64];
    int nb = boundaries(img, len, pos, off, 64);
    assert_true(nb >= 3);
    /* cut inside batch 2 of segment 1 */
    spit(seg_file(f, b[1], ".log"), img, (size_t)pos[2] + 5);
    char ck[4200];
    snprintf(ck, sizeof(ck), "%s/recovery-point-offset-checkpoint", f->dir);
    spit(ck, "0\n1\nrec 0 0\n", 12);
    rm_marker(f);
    fx_open(f);
    check_state(f, off[2]);
    st_log_state_t s;
    st_log_state(f->l, &s);
    assert_int_equal(s.nsegments, 2);
    for (int i = 2; i < nseg; i++) assert_int_equal(access(seg_file(f, b[i], ".log"), F_OK), -1);
    fx_close(f);
    free(img);
}

/* A segment that ends early at a batch boundary leaves a hole before the next
 * segment: nothing after the hole was ever durable, so it goes. */
static void test_hole(void **state) {
    fx_t *f = *state;
    build(f, 40);
    int64_t b[64];
    int nseg = bases(f, b, 64);
    size_t len;
    uint8_t *img = slurp(seg_file(f, b[1], ".log"), &len);
    int64_t pos[64], off[64];
    int nb = boundaries(img, len, pos, off, 64);
    spit(seg_file(f, b[1], ".log"), img, (size_t)pos[nb - 1]);
    char ck[4200];
    snprintf(ck, sizeof(ck), "%s/recovery-point-offset-checkpoint", f->dir);
    spit(ck, "0\n1\nrec 0 0\n", 12);
    rm_marker(f);
    fx_open(f);
    check_state(f, off[nb - 1]);
    st_log_state_t s;
    st_log_state(f->l, &s);
    assert_int_equal(s.nsegments, 2);
    int64_t base = stt_append(f->l, 1, 1, 1, 10, 1000);
    assert_int_equal(base, off[nb - 1]);
    fx_close(f);
    free(img);
    (void)nseg;
}

/* Recovery starts at the segment holding the recovery point: damage before it
 * is not scanned; without a checkpoint everything is. */
static void test_checkpoint_scan_start(void **state) {
    fx_t *f = *state;
    int64_t leo = build(f, 40);
    int64_t b[64];
    int nseg = bases(f, b, 64);
    char ck[4200];
    snprintf(ck, sizeof(ck), "%s/recovery-point-offset-checkpoint", f->dir);
    char *txt;
    size_t tl;
    assert_int_equal(rb_read_file(ck, &txt, &tl), 0);
    char want[100];
    snprintf(want, sizeof(want), "0\n1\nrec 0 %lld\n", (long long)leo);
    assert_string_equal(txt, want);
    free(txt);
    size_t len;
    uint8_t *img = slurp(seg_file(f, b[0], ".log"), &len);
    img[70] ^= 1; /* inside the first batch's records */
    spit(seg_file(f, b[0], ".log"), img, len);
    rm_marker(f);
    fx_open(f);
    st_log_state_t s;
    st_log_state(f->l, &s);
    assert_int_equal(s.log_end_offset, leo); /* segment 0 was trusted */
    assert_int_equal(s.nsegments, nseg);
    fx_close(f);
    /* no checkpoint: the scan starts at segment 0 and truncates there */
    assert_int_equal(unlink(ck), 0);
    rm_marker(f);
    fx_open(f);
    check_state(f, 0);
    st_log_state(f->l, &s);
    assert_int_equal(s.nsegments, 1);
    fx_close(f);
    /* a malformed checkpoint is ignored the same way */
    spit(ck, "0\n5\nrec 0 x\n", 12);
    rm_marker(f);
    fx_open(f);
    check_state(f, 0);
    fx_close(f);
    free(img);
}

/* An unclean open of an intact log ends in the same state as before. */
static void test_unclean_intact(void **state) {
    fx_t *f = *state;
    int64_t leo = build(f, 40);
    fx_open(f);
    int64_t mo, mt, fo, ft;
    assert_int_equal(st_log_max_timestamp(f->l, &mo, &mt), 0);
    assert_int_equal(st_log_offset_for_time(f->l, 1033, &fo, &ft), 0);
    st_log_state_t s1, s2;
    st_log_state(f->l, &s1);
    fx_close(f);
    char ck[4200];
    snprintf(ck, sizeof(ck), "%s/recovery-point-offset-checkpoint", f->dir);
    unlink(ck);
    rm_marker(f);
    fx_open(f);
    assert_false(f->m->m_clean_start);
    st_log_state(f->l, &s2);
    assert_int_equal(s1.log_start_offset, s2.log_start_offset);
    assert_int_equal(s1.log_end_offset, s2.log_end_offset);
    assert_int_equal(s1.high_watermark, s2.high_watermark);
    assert_int_equal(s1.size_bytes, s2.size_bytes);
    assert_int_equal(s1.nsegments, s2.nsegments);
    assert_false(s2.fatal);
    check_state(f, leo);
    int64_t o, t;
    assert_int_equal(st_log_max_timestamp(f->l, &o, &t), 0);
    assert_int_equal(o, mo);
    assert_int_equal(t, mt);
    assert_int_equal(st_log_offset_for_time(f->l, 1033, &o, &t), 0);
    assert_int_equal(o, fo);
    assert_int_equal(t, ft);
    fx_close(f);
}

/* ---- index rebuilds ---------------------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t n;
} blob_t;

static void snap_indexes(fx_t *f, const int64_t *b, int nseg, blob_t *oi, blob_t *ti) {
    for (int i = 0; i < nseg; i++) {
        oi[i].p = slurp(seg_file(f, b[i], ".index"), &oi[i].n);
        ti[i].p = slurp(seg_file(f, b[i], ".timeindex"), &ti[i].n);
    }
}

static void check_indexes(fx_t *f, const int64_t *b, int nseg, blob_t *oi, blob_t *ti) {
    for (int i = 0; i < nseg; i++) {
        size_t n;
        uint8_t *p = slurp(seg_file(f, b[i], ".index"), &n);
        assert_int_equal(n, oi[i].n);
        assert_memory_equal(p, oi[i].p, n);
        free(p);
        p = slurp(seg_file(f, b[i], ".timeindex"), &n);
        assert_int_equal(n, ti[i].n);
        assert_memory_equal(p, ti[i].p, n);
        free(p);
    }
}

static void test_index_rebuild(void **state) {
    fx_t *f = *state;
    f->cfg = stt_cfg(3000, 250);
    int64_t leo = build(f, 68); /* the active segment gets 12 batches */
    int64_t b[64];
    int nseg = bases(f, b, 64);
    assert_true(nseg >= 4);
    blob_t oi[64], ti[64];
    snap_indexes(f, b, nseg, oi, ti);
    for (int i = 0; i < nseg; i++) {
        if (oi[i].n < 16 || ti[i].n < 12) print_message("segment %d: index %zu, timeindex %zu bytes\n", i, oi[i].n, ti[i].n);
        assert_true(oi[i].n >= 16 && ti[i].n >= 12);
    }

    /* clean start, one kind of damage at a time, on an old and on the active segment */
    for (int round = 0; round < 10; round++) {
        int si = round % 2 ? nseg - 1 : 1;
        switch (round / 2) {
        case 0: /* missing */
            assert_int_equal(unlink(seg_file(f, b[si], ".index")), 0);
            assert_int_equal(unlink(seg_file(f, b[si], ".timeindex")), 0);
            break;
        case 1: { /* size not a multiple of the entry size */
            uint8_t *c = malloc(ti[si].n + 3);
            memcpy(c, ti[si].p, ti[si].n);
            memset(c + ti[si].n, 7, 3);
            spit(seg_file(f, b[si], ".timeindex"), c, ti[si].n + 3);
            free(c);
            break;
        }
        case 2: { /* not increasing: first and last entries swapped */
            uint8_t *c = malloc(oi[si].n);
            memcpy(c, oi[si].p, oi[si].n);
            memcpy(c, oi[si].p + oi[si].n - 8, 8);
            memcpy(c + oi[si].n - 8, oi[si].p, 8);
            spit(seg_file(f, b[si], ".index"), c, oi[si].n);
            free(c);
            break;
        }
        case 3: { /* last entry points past the segment */
            uint8_t *c = malloc(oi[si].n);
            memcpy(c, oi[si].p, oi[si].n);
            rb_wbe32(c + oi[si].n - 4, 1u << 30);
            spit(seg_file(f, b[si], ".index"), c, oi[si].n);
            free(c);
            break;
        }
        case 4: { /* Kafka-style preallocated zeros after the entries */
            uint8_t *c = calloc(1, oi[si].n + 800);
            memcpy(c, oi[si].p, oi[si].n);
            spit(seg_file(f, b[si], ".index"), c, oi[si].n + 800);
            free(c);
            break;
        }
        }
        fx_open(f);
        assert_true(f->m->m_clean_start);
        check_state(f, leo);
        fx_close(f);
        check_indexes(f, b, nseg, oi, ti);
    }
    /* unclean: the scanned (last) segment's indexes are rebuilt identically */
    assert_int_equal(unlink(seg_file(f, b[nseg - 1], ".index")), 0);
    spit(seg_file(f, b[nseg - 1], ".timeindex"), "garbage-garbage", 15);
    rm_marker(f);
    fx_open(f);
    check_state(f, leo);
    fx_close(f);
    check_indexes(f, b, nseg, oi, ti);
    for (int i = 0; i < nseg; i++) {
        free(oi[i].p);
        free(ti[i].p);
    }
}

/* S5: the checkpoint never names an offset above the high watermark, even
 * while appends run. */
typedef struct {
    st_log_t *l;
    _Atomic bool stop;
} app_t;

static void *appender(void *arg) {
    app_t *a = arg;
    while (!a->stop) stt_append(a->l, 1, 3, 1, 30, 1000);
    return NULL;
}

static void test_checkpoint_below_hw(void **state) {
    fx_t *f = *state;
    f->cfg = stt_cfg(1 << 20, 4096);
    fx_open(f);
    app_t a = {f->l, false};
    pthread_t t;
    pthread_create(&t, NULL, appender, &a);
    char ck[4200];
    snprintf(ck, sizeof(ck), "%s/recovery-point-offset-checkpoint", f->dir);
    int64_t prev = -1;
    for (int i = 0; i < 200; i++) {
        assert_int_equal(st_mgr_checkpoint(f->m), 0);
        char *txt;
        size_t tl;
        assert_int_equal(rb_read_file(ck, &txt, &tl), 0);
        long long v = -1;
        assert_int_equal(sscanf(txt, "0\n1\nrec 0 %lld\n", &v), 1);
        free(txt);
        st_log_state_t s;
        st_log_state(f->l, &s);
        assert_true(v <= s.high_watermark);
        assert_true(v >= prev);
        prev = v;
    }
    a.stop = true;
    pthread_join(t, NULL);
    assert_true(prev > 0);
    fx_close(f);
}

/* kill -9 of a process that appends and waits for durability: every offset
 * it saw acknowledged is there after recovery, offsets contiguous. */
static void child_run(const char *dir, int wfd) {
    st_mgr_t *m;
    st_log_t *l;
    st_log_config_t c = stt_cfg(64 * 1024, 1024);
    if (st_mgr_open(dir, &m) || st_log_open(m, "rec", 0, &c, &l)) _exit(3);
    for (int i = 0;; i++) {
        rb_buf_t b;
        rb_buf_init(&b);
        int nb = 1 + i % 3;
        for (int k = 0; k < nb; k++) stt_batch(&b, 1 + k, i, 100, KP_COMP_NONE);
        kp_batch_info_t info;
        kp_batch_limits_t lim = {.max_batch_bytes = 1 << 20, .max_decompressed_bytes = 1 << 20};
        int64_t bo, lo, lat;
        if (kp_batch_validate(b.p, b.len, &lim, &info, NULL, 0) ||
            st_log_append(l, b.p, b.len, &info, 1000, &bo, &lo, &lat))
            _exit(4);
        rb_buf_free(&b);
        if (i % 2 == 0) { /* acks=all */
            stt_wait_t w;
            stt_wait_init(&w);
            st_log_sync_wait(l, lo + 1, stt_wait_cb, &w);
            if (stt_wait_done(&w) != 0) _exit(5);
            if (write(wfd, &lo, sizeof(lo)) != sizeof(lo)) _exit(6);
        }
    }
}

static void test_kill9(void **state) {
    fx_t *f = *state;
    int64_t acked = -1;
    for (int cycle = 0; cycle < 6; cycle++) {
        int pfd[2];
        assert_int_equal(pipe(pfd), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(pfd[0]);
            rb_log_min_level = RB_LOG_ERROR;
            child_run(f->dir, pfd[1]);
            _exit(0);
        }
        close(pfd[1]);
        usleep((useconds_t)(30000 + cycle * 17000));
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        assert_true(WIFSIGNALED(st));
        int64_t v;
        while (read(pfd[0], &v, sizeof(v)) == sizeof(v)) acked = RB_MAX(acked, v);
        close(pfd[0]);
        fx_open(f);
        assert_false(f->m->m_clean_start);
        st_log_state_t s;
        st_log_state(f->l, &s);
        assert_true(s.log_end_offset >= acked + 1);
        assert_int_equal(stt_read_all(f->l, 0, 1 << 16), s.log_end_offset);
        st_log_close(f->l);
        f->l = NULL;
        /* leave without the marker, as a crash would */
        char p[4200];
        st_mgr_close(f->m);
        f->m = NULL;
        snprintf(p, sizeof(p), "%s/.kafka_cleanShutdown", f->dir);
        unlink(p);
    }
    assert_true(acked > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_torn_tail_every_byte, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_last_batch, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_garbage_appended, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_torn_middle_segment, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_hole, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_scan_start, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_unclean_intact, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_index_rebuild, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_below_hw, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_kill9, fx_setup, fx_teardown),
    };
    rb_log_min_level = RB_LOG_ERROR;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
