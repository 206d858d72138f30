/*
 * disk_sync.c — the disk baseline for acks=all: how fast can this filesystem
 * take sequential appends when every write of N bytes is followed by
 * fdatasync, and how long does each fdatasync take?
 *
 *   bench_disk_sync DIR [--seconds S] [--json] SIZE...
 *
 * For each SIZE (bytes; suffix K or M for KiB/MiB) it appends SIZE-byte
 * writes to a fresh file in DIR, fdatasync after each one, for S seconds
 * (default 3), the way rilld appends a produce batch to the active segment
 * and syncs it (no preallocation, so each sync also carries the size change).
 * A file is rolled at 1 GiB (like a segment) and removed at the end.
 * Prints per size: MB/s (2^20 bytes over the whole time, writes + syncs) and
 * fdatasync latency p50/p99/max; with --json one JSON line per size.
 * Run it in the directory that holds rilld's data (same filesystem).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ROLL_BYTES (1LL << 30)

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double pct_ms(const int64_t *v, size_t n, double p) {
    if (!n) return 0.0;
    size_t i = (size_t)(p / 100.0 * (double)n);
    if (i >= n) i = n - 1;
    return (double)v[i] / 1e6;
}

static int parse_size(const char *s, size_t *out) {
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) return -1;
    if (*end == 'K' || *end == 'k') v <<= 10, end++;
    else if (*end == 'M' || *end == 'm') v <<= 20, end++;
    if (*end || v == 0 || v > (256ULL << 20)) return -1;
    *out = (size_t)v;
    return 0;
}

static int open_fresh(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) fprintf(stderr, "disk_sync: open %s: %s\n", path, strerror(errno));
    return fd;
}

/* One size: returns 0, or -1 after printing why. */
static int run_size(const char *dir, size_t size, double seconds, int json) {
    char path[4096];
    snprintf(path, sizeof path, "%s/disk_sync.%ld.tmp", dir, (long)getpid());
    char *buf = malloc(size);
    size_t cap = 4096, n = 0;
    int64_t *lat = malloc(cap * sizeof *lat);
    if (!buf || !lat) {
        fprintf(stderr, "disk_sync: out of memory\n");
        return -1;
    }
    uint64_t x = 0x9e3779b97f4a7c15ULL ^ size;
    for (size_t i = 0; i < size; i++) { /* incompressible-ish bytes, like record values */
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[i] = (char)x;
    }
    int fd = open_fresh(path);
    if (fd < 0) return -1;
    int64_t file_bytes = 0, total = 0;
    int64_t t0 = now_ns(), deadline = t0 + (int64_t)(seconds * 1e9), t_end = t0;
    for (;;) {
        size_t off = 0;
        while (off < size) {
            ssize_t w = write(fd, buf + off, size - off);
            if (w < 0) {
                if (errno == EINTR) continue;
                fprintf(stderr, "disk_sync: write %s: %s\n", path, strerror(errno));
                close(fd);
                unlink(path);
                return -1;
            }
            off += (size_t)w;
        }
        int64_t s0 = now_ns();
        if (fdatasync(fd) < 0) {
            fprintf(stderr, "disk_sync: fdatasync %s: %s\n", path, strerror(errno));
            close(fd);
            unlink(path);
            return -1;
        }
        t_end = now_ns();
        if (n == cap) {
            cap *= 2;
            int64_t *nl = realloc(lat, cap * sizeof *lat);
            if (!nl) {
                fprintf(stderr, "disk_sync: out of memory\n");
                return -1;
            }
            lat = nl;
        }
        lat[n++] = t_end - s0;
        total += (int64_t)size;
        file_bytes += (int64_t)size;
        if (t_end >= deadline) break;
        if (file_bytes >= ROLL_BYTES) { /* roll like a segment */
            close(fd);
            fd = open_fresh(path);
            if (fd < 0) return -1;
            file_bytes = 0;
        }
    }
    close(fd);
    unlink(path);
    double secs = (double)(t_end - t0) / 1e9;
    double mbps = (double)total / (1 << 20) / secs;
    qsort(lat, n, sizeof *lat, cmp_i64);
    double p50 = pct_ms(lat, n, 50), p99 = pct_ms(lat, n, 99), mx = (double)lat[n - 1] / 1e6;
    if (json)
        printf("{\"tool\":\"disk_sync\",\"write_bytes\":%zu,\"writes\":%zu,\"seconds\":%.3f,\"bytes\":%lld,"
               "\"mb_per_s\":%.3f,\"sync_p50_ms\":%.3f,\"sync_p99_ms\":%.3f,\"sync_max_ms\":%.3f}\n",
               size, n, secs, (long long)total, mbps, p50, p99, mx);
    else
        printf("%8zu B writes: %7zu writes in %.2f s, %8.1f MB/s; fdatasync p50 %.3f ms, p99 %.3f ms, max %.3f ms\n",
               size, n, secs, mbps, p50, p99, mx);
    fflush(stdout);
    free(buf);
    free(lat);
    return 0;
}

int main(int argc, char **argv) {
    const char *dir = NULL;
    double seconds = 3.0;
    int json = 0, nsizes = 0, rc = 0;
    size_t sizes[64];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
            char *end = NULL;
            seconds = strtod(argv[++i], &end);
            if (*end || !(seconds > 0 && seconds <= 600)) {
                fprintf(stderr, "disk_sync: --seconds expects 0 < S <= 600, got '%s'\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("Usage: bench_disk_sync DIR [--seconds S] [--json] SIZE...\n"
                   "Appends SIZE-byte writes to a fresh file in DIR with fdatasync after each one for S\n"
                   "seconds (default 3) per SIZE (bytes, or with suffix K/M); prints MB/s and fdatasync\n"
                   "latency p50/p99/max.\n");
            return 0;
        } else if (!dir) {
            dir = argv[i];
        } else {
            if (nsizes == (int)(sizeof sizes / sizeof sizes[0]) || parse_size(argv[i], &sizes[nsizes]) != 0) {
                fprintf(stderr, "disk_sync: bad size '%s' (bytes, or with suffix K/M, up to 256M)\n", argv[i]);
                return 2;
            }
            nsizes++;
        }
    }
    if (!dir || !nsizes) {
        fprintf(stderr, "Usage: bench_disk_sync DIR [--seconds S] [--json] SIZE...\n");
        return 2;
    }
    for (int i = 0; i < nsizes; i++)
        if (run_size(dir, sizes[i], seconds, json) != 0) rc = 1;
    return rc;
}
