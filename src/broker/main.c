/* main.c — rilld's entry point: load settings, start, wait for SIGTERM or
 * SIGINT, stop cleanly (everything flushed, clean-shutdown marker written). */
#include "broker/broker.h"

#include <signal.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <sys/resource.h>

int main(int argc, char **argv) {
    static bk_broker_t broker;
    int rc = bk_config_load(&broker.b_cfg, argc, argv);
    if (rc) return rc > 0 ? 0 : 2;
    signal(SIGPIPE, SIG_IGN);
    /* Produce frames are ~1 MB each and live until their fsync: with glibc's
     * defaults each one is a fresh mmap, faulted in page by page and unmapped
     * after the response — measured (bench/RESULTS.md) at up to half of
     * rilld's CPU for acks=all on this VM. Keep such buffers in the heap and
     * let the heap keep up to 64 MiB of free memory for reuse. */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    /* each segment keeps three files open (.log, .index, .timeindex): take
     * the hard limit so a thousand partitions fit */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) rb_warn("cannot raise the open-file limit");
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    /* block before any thread starts so only sigwait sees them */
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (bk_broker_start(&broker) < 0) {
        rb_error("rilld failed to start");
        return 1;
    }
    int sig = 0;
    sigwait(&set, &sig);
    rb_info("received %s; shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    bk_broker_stop(&broker);
    bk_config_free(&broker.b_cfg);
    return 0;
}
