/*
 * run.c — the command line of the example programs: runs one example
 * topology against a Kafka cluster (rilld) until SIGINT/SIGTERM.
 *
 *   example_NAME --bootstrap HOST:PORT [--app-id ID] [--state-dir DIR]
 *                [--threads N] [--commit-ms MS] [--set name=value]...
 *
 * commit.interval.ms is 1000 unless given (or, with --set
 * processing.guarantee=exactly_once_v2, the library's 100).
 * Prints "tasks: <sorted task ids>" each time this instance's tasks change,
 * so a supervisor (our tests) can see how tasks are spread, and at a clean
 * stop "closed: commits=N restored=N processed=N aborts=N". A crash
 * (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT) prints the stack to stderr
 * first, as frames "binary(+offset)" for addr2line, so a crash in a test
 * run leaves more than its exit status (not under ASan, which reports it).
 */
#include <execinfo.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "examples.h"

static volatile sig_atomic_t stop;
static void on_signal(int sig) { stop = 1; }

#ifndef __SANITIZE_ADDRESS__
static void on_crash(int sig) {
    static const char head[] = "crash: signal, stack:\n";
    void *frames[64];
    int n = backtrace(frames, 64);
    if (write(2, head, sizeof(head) - 1) < 0) _exit(128 + sig);
    backtrace_symbols_fd(frames, n, 2);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void crash_handlers(void) {
    void *warm[1];
    backtrace(warm, 1); /* loads what backtrace needs now, not in the handler */
    int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) signal(sigs[i], on_crash);
}
#else
static void crash_handlers(void) {}
#endif

int rs_ex_run(int argc, char **argv, const char *name, void (*topo)(rs_builder *, const rs_materialized *)) {
    crash_handlers();
    rs_config *c = rs_config_new();
    char err[512];
    rs_config_set(c, "application.id", name, NULL, 0);
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        const char *key = !strcmp(opt, "--bootstrap")  ? "bootstrap.servers"
                          : !strcmp(opt, "--app-id")    ? "application.id"
                          : !strcmp(opt, "--state-dir") ? "state.dir"
                          : !strcmp(opt, "--threads")   ? "num.stream.threads"
                          : !strcmp(opt, "--commit-ms") ? "commit.interval.ms"
                                                        : NULL;
        if (!val || (!key && strcmp(opt, "--set"))) {
            fprintf(stderr, "usage: %s --bootstrap HOST:PORT [--app-id ID] [--state-dir DIR] [--threads N] "
                            "[--commit-ms MS] [--set name=value]...\n", argv[0]);
            rs_config_free(c);
            return 2;
        }
        int rc;
        if (key) {
            rc = rs_config_set(c, key, val, err, sizeof(err));
        } else {
            char *eq = strchr(val, '=');
            if (!eq) rc = -1, snprintf(err, sizeof(err), "--set needs name=value");
            else {
                *eq = 0;
                rc = rs_config_set(c, val, eq + 1, err, sizeof(err));
            }
        }
        if (rc) {
            fprintf(stderr, "%s\n", err);
            rs_config_free(c);
            return 2;
        }
        i++;
    }
    /* the examples commit every second at least once; exactly-once keeps
     * the library's default (100 ms, Kafka's) unless --commit-ms says */
    const char *pg = rs_config_get(c, "processing.guarantee");
    if (!rs_config_get(c, "commit.interval.ms") && !(pg && !strcmp(pg, "exactly_once_v2")))
        rs_config_set(c, "commit.interval.ms", "1000", NULL, 0);
    rs_builder *b = rs_builder_new();
    topo(b, NULL);
    rs_topology *t = rs_builder_build(b, err, sizeof(err));
    if (!t) {
        fprintf(stderr, "build: %s\n", err);
        rs_builder_free(b);
        rs_config_free(c);
        return 1;
    }
    char *desc = rs_topology_describe(t);
    fprintf(stderr, "%s", desc);
    free(desc);
    rs_app *a = rs_app_new(t, c, err, sizeof(err));
    if (!a || rs_app_start(a, err, sizeof(err))) {
        fprintf(stderr, "start: %s\n", err);
        rs_app_free(a);
        rs_topology_free(t);
        rs_builder_free(b);
        rs_config_free(c);
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    char tasks[4096] = "", seen[4096] = "-";
    int rc = 0;
    while (!stop) {
        if (!rs_app_running(a, err, sizeof(err))) {
            fprintf(stderr, "fatal: %s\n", err);
            rc = 1;
            break;
        }
        rs_app_tasks(a, tasks, sizeof(tasks));
        if (strcmp(tasks, seen)) {
            printf("tasks: %s\n", tasks);
            fflush(stdout);
            strcpy(seen, tasks);
        }
        usleep(50000);
    }
    rs_app_close(a);
    printf("closed: commits=%lld restored=%lld processed=%lld aborts=%lld\n",
           (long long)rs_app_metric(a, "commit-total"), (long long)rs_app_metric(a, "restored-records"),
           (long long)rs_app_metric(a, "process-total"), (long long)rs_app_metric(a, "abort-total"));
    rs_app_free(a);
    rs_topology_free(t);
    rs_builder_free(b);
    rs_config_free(c);
    return rc;
}
