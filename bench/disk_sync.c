/*
 * disk_sync.c — the disk baseline for acks=all: how fast can this filesystem
 * take sequential appends when every write of N bytes is followed by
 * fdatasync, and how long does each fdatasync take?
 *
 *   bench_disk_sync DIR [--seconds S] [--nosync] [--max-bytes B] [--json] SIZE...
 *
 * For each SIZE (bytes; suffix K or M for KiB/MiB) it appends SIZE-byte
 * writes to a fresh file in DIR, fdatasync after each one, for S seconds
 * (default 3), the way rilld appends a produce batch to the active segment
 * and syncs it (no preallocation, so each sync also carries the size change).
 * A file is rolled at 1 GiB (like a segment) and removed at the end.
 * Prints per size: MB/s (2^20 bytes over the whole time, writes + syncs),
 * fdatasync latency p50/p99/max, and this process's CPU seconds per 10^9
 * bytes (user + system: the kernel's cost of buffered writes and of the
 * writeback that fdatasync starts, the floor under rilld's own CPU per GB);
 * with --json one JSON line per size. --nosync: no fdatasync at all (page
 * cache only; writeback is then left to the kernel's flusher threads and not
 * charged here). --max-bytes: stop a size after that many bytes (K/M/G).
 * Run it in the directory that holds rilld's data (same filesystem).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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

static int parse_bytes(const char *s, unsigned long long max, unsigned long long *out) {
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s) return -1;
    if (*end == 'K' || *end == 'k') v <<= 10, end++;
    else if (*end == 'M' || *end == 'm') v <<= 20, end++;
    else if (*end == 'G' || *end == 'g') v <<= 30, end++;
    if (*end || v == 0 || v > max) return -1;
    *out = v;
    return 0;
}

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

static int open_fresh(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) fprintf(stderr, "disk_sync: open %s: %s\n", path, strerror(errno));
    return fd;
}

/* One size: returns 0, or -1 after printing why. */
static int run_size(const char *dir, size_t size, double seconds, int nosync, long long max_bytes, int json) {
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
    double c0 = cpu_seconds();
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
        if (!nosync && fdatasync(fd) < 0) {
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
        if (t_end >= deadline || (max_bytes > 0 && total >= max_bytes)) break;
        if (file_bytes >= ROLL_BYTES) { /* roll like a segment */
            close(fd);
            fd = open_fresh(path);
            if (fd < 0) return -1;
            file_bytes = 0;
        }
    }
    close(fd);
    double cpu = cpu_seconds() - c0;
    unlink(path);
    double secs = (double)(t_end - t0) / 1e9;
    double mbps = (double)total / (1 << 20) / secs;
    qsort(lat, n, sizeof *lat, cmp_i64);
    double p50 = pct_ms(lat, n, 50), p99 = pct_ms(lat, n, 99), mx = (double)lat[n - 1] / 1e6;
    if (json)
        printf("{\"tool\":\"disk_sync\",\"write_bytes\":%zu,\"writes\":%zu,\"seconds\":%.3f,\"bytes\":%lld,"
               "\"mb_per_s\":%.3f,\"sync_p50_ms\":%.3f,\"sync_p99_ms\":%.3f,\"sync_max_ms\":%.3f,"
               "\"cpu_s\":%.3f,\"cpu_s_per_gb\":%.3f,\"fdatasync\":%s}\n",
               size, n, secs, (long long)total, mbps, p50, p99, mx, cpu, cpu / ((double)total / 1e9),
               nosync ? "false" : "true");
    else
        printf("%8zu B writes: %7zu writes in %.2f s, %8.1f MB/s; %s p50 %.3f ms, p99 %.3f ms, max %.3f ms; "
               "%.2f CPU-s/GB\n",
               size, n, secs, mbps, nosync ? "(no sync) write" : "fdatasync", p50, p99, mx,
               cpu / ((double)total / 1e9));
    fflush(stdout);
    free(buf);
    free(lat);
    return 0;
}

int main(int argc, char **argv) {
    const char *dir = NULL;
    double seconds = 3.0;
    int json = 0, nosync = 0, nsizes = 0, rc = 0;
    long long max_bytes = 0;
    size_t sizes[64];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "--nosync")) {
            nosync = 1;
        } else if (!strcmp(argv[i], "--max-bytes") && i + 1 < argc) {
            unsigned long long v;
            if (parse_bytes(argv[++i], 1ULL << 40, &v) != 0) {
                fprintf(stderr, "disk_sync: --max-bytes expects bytes (suffix K/M/G), got '%s'\n", argv[i]);
                return 2;
            }
            max_bytes = (long long)v;
        } else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
            char *end = NULL;
            seconds = strtod(argv[++i], &end);
            if (*end || !(seconds > 0 && seconds <= 600)) {
                fprintf(stderr, "disk_sync: --seconds expects 0 < S <= 600, got '%s'\n", argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("Usage: bench_disk_sync DIR [--seconds S] [--nosync] [--max-bytes B] [--json] SIZE...\n"
                   "Appends SIZE-byte writes to a fresh file in DIR with fdatasync after each one for S\n"
                   "seconds (default 3) per SIZE (bytes, or with suffix K/M); prints MB/s, fdatasync\n"
                   "latency p50/p99/max and CPU-s per 10^9 bytes. --nosync: no fdatasync (page cache\n"
                   "only); --max-bytes B: stop each size after B bytes.\n");
            return 0;
        } else if (!dir) {
            dir = argv[i];
        } else {
            unsigned long long v;
            if (nsizes == (int)(sizeof sizes / sizeof sizes[0]) || parse_bytes(argv[i], 256ULL << 20, &v) != 0) {
                fprintf(stderr, "disk_sync: bad size '%s' (bytes, or with suffix K/M, up to 256M)\n", argv[i]);
                return 2;
            }
            sizes[nsizes++] = (size_t)v;
        }
    }
    if (!dir || !nsizes) {
        fprintf(stderr, "Usage: bench_disk_sync DIR [--seconds S] [--json] SIZE...\n");
        return 2;
    }
    for (int i = 0; i < nsizes; i++)
        if (run_size(dir, sizes[i], seconds, nosync, max_bytes, json) != 0) rc = 1;
    return rc;
}
