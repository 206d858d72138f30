/*
 * storage_open.c — how long opening one partition takes (storage S18, S23):
 * the open reads the segments' indexes, the producer snapshot and, for the
 * transactions, either every batch header of every segment (before the
 * .txnindex files) or the .txnindex files plus a replay after the snapshot.
 *
 *   bench_storage_open DIR gen MIB SEG_MIB [txn]
 *       writes MIB MiB into DIR/bench-0 with SEG_MIB MiB segments: batches
 *       of 100 records of 100 bytes; with `txn`, one batch in 50 is a
 *       transactional batch of one of 10 producers, closed by a commit or
 *       an abort marker (alternating) 20 batches later, and the last two
 *       stay open; closes cleanly.
 *   bench_storage_open DIR open ROUNDS [cold]
 *       opens the log dir and the partition ROUNDS times (clean start each
 *       time: st_mgr_open, st_log_open, st_log_close, st_mgr_close) and
 *       prints each st_log_open's wall time and the median; with `cold`,
 *       every file of the partition is dropped from the page cache
 *       (posix_fadvise DONTNEED; the files are clean) before each open.
 *
 * Uses only the public storage API, so the same file builds against an
 * older tree for a before/after comparison (bench/RESULTS.md says how).
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "storage/storage.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void die(const char *what, int rc) {
    fprintf(stderr, "bench_storage_open: %s: %d\n", what, rc);
    exit(1);
}

static void append(st_log_t *l, rb_buf_t *b, bool marker, int64_t pid) {
    kp_batch_info_t info;
    memset(&info, 0, sizeof(info));
    if (marker) { /* built by the coordinator in the broker: no client validation */
        info.nbatches = info.nrecords = 1;
        info.any_transactional = info.any_control = true;
        info.producer_id = pid;
    } else {
        kp_batch_limits_t lim = {.max_batch_bytes = 64u << 20, .max_decompressed_bytes = 64u << 20};
        char msg[128];
        int rc = kp_batch_validate(b->p, b->len, &lim, &info, msg, sizeof(msg));
        if (rc) die(msg, rc);
    }
    int64_t base, last, lat;
    int rc = st_log_append(l, b->p, b->len, &info, rb_now_ms(), &base, &last, &lat);
    if (rc) die("append", rc);
}

static void gen(const char *dir, int64_t mib, int64_t seg_mib, bool txn) {
    st_mgr_t *m;
    st_log_t *l;
    int rc = st_mgr_open(dir, &m);
    if (rc) die("st_mgr_open", rc);
    st_log_config_t cfg;
    st_log_config_defaults(&cfg);
    cfg.segment_bytes = seg_mib << 20;
    cfg.retention_ms = -1;
    if ((rc = st_log_open(m, "bench", 0, &cfg, &l))) die("st_log_open", rc);
    static uint8_t val[100];
    memset(val, 'v', sizeof(val));
    kp_record_in_t recs[100];
    memset(recs, 0, sizeof(recs));
    for (int i = 0; i < 100; i++) {
        recs[i].key.len = -1;
        recs[i].value.p = val;
        recs[i].value.len = sizeof(val);
    }
    int32_t seq[10] = {0};
    int64_t open_at[10];
    for (int i = 0; i < 10; i++) open_at[i] = -1;
    int64_t written = 0, n = 0;
    bool commit = false;
    rb_buf_t b;
    rb_buf_init(&b);
    while (written < mib << 20) {
        b.len = 0;
        int64_t now = rb_now_ms();
        for (int i = 0; i < 100; i++) recs[i].timestamp = now;
        int p = (int)(n / 50 % 10);
        if (txn && n % 50 == 0) {
            kp_batch_build(&b, 0, KP_COMP_NONE, recs, 10, 1000 + p, 0, seq[p], KP_ATTR_TRANSACTIONAL);
            seq[p] += 10;
            if (open_at[p] < 0) open_at[p] = n;
        } else {
            kp_batch_build(&b, 0, KP_COMP_NONE, recs, 100, -1, -1, -1, 0);
        }
        append(l, &b, false, -1);
        written += (int64_t)b.len;
        for (int q = 0; txn && q < 8; q++) { /* producers 8, 9 stay open */
            if (open_at[q] >= 0 && n - open_at[q] >= 20) {
                b.len = 0;
                st_marker_build(&b, 1000 + q, 0, commit, 0, now);
                commit = !commit;
                append(l, &b, true, 1000 + q);
                open_at[q] = -1;
            }
        }
        n++;
    }
    rb_buf_free(&b);
    st_log_state_t st;
    st_log_state(l, &st);
    printf("generated %s: %.1f MiB in %d segments, %lld offsets, LSO %lld\n", dir, (double)st.size_bytes / 1048576,
           st.nsegments, (long long)st.log_end_offset, (long long)st_log_lso(l));
    st_log_close(l);
    st_mgr_close(m);
}

static void drop_cache(const char *pdir) {
    DIR *d = opendir(pdir);
    if (!d) die("opendir", -1);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char p[4096 + 256];
        snprintf(p, sizeof(p), "%s/%s", pdir, de->d_name);
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
    closedir(d);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void bench_open(const char *dir, int rounds, bool cold) {
    char pdir[4096];
    snprintf(pdir, sizeof(pdir), "%s/bench-0", dir);
    double *t = calloc((size_t)rounds, sizeof(*t));
    st_log_config_t cfg;
    st_log_config_defaults(&cfg);
    cfg.retention_ms = -1;
    for (int r = 0; r < rounds; r++) {
        st_mgr_t *m;
        st_log_t *l;
        int rc = st_mgr_open(dir, &m);
        if (rc) die("st_mgr_open", rc);
        if (cold) drop_cache(pdir);
        double t0 = now_ms();
        if ((rc = st_log_open(m, "bench", 0, &cfg, &l))) die("st_log_open", rc);
        t[r] = now_ms() - t0;
        st_log_state_t st;
        st_log_state(l, &st);
        printf("open %d: %.2f ms (%d segments, LSO %lld)\n", r, t[r], st.nsegments, (long long)st_log_lso(l));
        st_log_close(l);
        st_mgr_close(m);
    }
    qsort(t, (size_t)rounds, sizeof(*t), cmp_d);
    printf("median open: %.2f ms (%s cache, %d rounds)\n", t[rounds / 2], cold ? "cold" : "warm", rounds);
    free(t);
}

int main(int argc, char **argv) {
    rb_log_min_level = RB_LOG_WARN;
    if (argc >= 5 && !strcmp(argv[2], "gen")) {
        gen(argv[1], atoll(argv[3]), atoll(argv[4]), argc > 5 && !strcmp(argv[5], "txn"));
        return 0;
    }
    if (argc >= 4 && !strcmp(argv[2], "open")) {
        bench_open(argv[1], atoi(argv[3]), argc > 4 && !strcmp(argv[4], "cold"));
        return 0;
    }
    fprintf(stderr, "usage: %s DIR gen MIB SEG_MIB [txn] | DIR open ROUNDS [cold]\n", argv[0]);
    return 2;
}
