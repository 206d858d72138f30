/*
 * cli — the `rill` command-line tool (internal header of src/cli/).
 *
 * Owns: the `rill` executable: topic and consumer group administration, a
 * line producer, a consumer, and the perf tools. It is a plain Kafka client on librdkafka and
 * must work against any Kafka-protocol broker; it never includes broker
 * internals (DESIGN.md §2). Only rill_base is used from the project.
 *
 * Conventions every command follows:
 *  1. `cli_<cmd>_main(argc, argv)` is the entry point; argv[0] is the command
 *     word. Parsing (`cli_<cmd>_parse`) is separate from running so parsing can
 *     be checked without a broker.
 *  2. Common options -b/--brokers, -X key=value, -v, -h/--help are parsed by
 *     cli_common_opt(); the brokers default to $RILL_BROKERS, else
 *     127.0.0.1:9092.
 *  3. Exit codes: CLI_EXIT_OK (0) success, CLI_EXIT_FAIL (1) an operation
 *     failed (broker error, delivery failure, timeout), CLI_EXIT_USAGE (2) bad
 *     command line.
 *  4. Results go to stdout (tab-separated columns where they are tables);
 *     progress, summaries and errors go to stderr, prefixed "rill: ".
 *
 * Threads: everything runs on the main thread except the consumer thread of
 * `rill perf e2e` (perf_e2e.c), which owns its own rd_kafka_t and histogram.
 * librdkafka callbacks installed here (error, log) may run on librdkafka's
 * threads (log) or inside rd_kafka_poll (error); they only write to stderr and
 * to a mutex-protected last-error buffer.
 */
#ifndef RILL_CLI_H
#define RILL_CLI_H

#include <getopt.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/base.h"

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

#define CLI_DEFAULT_BROKERS "127.0.0.1:9092"
#define CLI_DEFAULT_TIMEOUT_MS 10000

/* ---- common options ------------------------------------------------------ */
typedef struct {
    const char *cm_brokers;  /* -b, $RILL_BROKERS or the default */
    char **cm_props;         /* -X "key=value" strings, in command-line order */
    size_t cm_nprops;
    int cm_verbose;          /* -v count */
    int cm_timeout_ms;       /* --timeout: metadata/admin request timeout */
} cli_common_t;

/* Short and long option fragments every command includes in its getopt table.
 * Long-only options use values >= CLI_OPT_LONG_BASE. */
#define CLI_COMMON_SHORTOPTS "b:X:vh"
#define CLI_OPT_LONG_BASE 1000
#define CLI_OPT_TIMEOUT (CLI_OPT_LONG_BASE + 0)
#define CLI_COMMON_LONGOPTS                                \
    {"brokers", required_argument, NULL, 'b'},             \
        {"property", required_argument, NULL, 'X'},        \
        {"verbose", no_argument, NULL, 'v'},               \
        {"help", no_argument, NULL, 'h'},                  \
        {"timeout", required_argument, NULL, CLI_OPT_TIMEOUT}
#define CLI_COMMON_HELP                                                                \
    "Common options:\n"                                                                \
    "  -b, --brokers HOST:PORT[,..]  bootstrap brokers (default $RILL_BROKERS or "     \
    CLI_DEFAULT_BROKERS ")\n"                                                          \
    "  -X KEY=VALUE                  set any librdkafka property (repeatable)\n"       \
    "      --timeout MS              metadata/admin request timeout (default 10000)\n" \
    "  -v, --verbose                 show librdkafka log lines\n"                      \
    "  -h, --help                    this help\n"

void cli_common_init(cli_common_t *cm);
void cli_common_free(cli_common_t *cm);
/* Handles one common option. Returns 1 if handled, 0 if c is not a common
 * option, -1 if its value is invalid (an error was printed). 'h' is not
 * handled here: each command prints its own help. */
int cli_common_opt(cli_common_t *cm, int c, const char *arg);
/* The usual tail of a getopt loop: prints the error for '?'/':' or an unknown
 * option and returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints only the "Run 'rill CMD --help'" hint; returns CLI_EXIT_USAGE. */
int cli_usage_hint(const char *cmd);

/* For the default branch of a getopt loop (optstring starting with ':'):
 * reports an unknown option, a missing value or an option this command does
 * not take. Returns CLI_EXIT_USAGE. */
int cli_getopt_error(const char *cmd, int c, char **argv);

/* ---- messages -------------------------------------------------------------- */
void cli_errf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));   /* "rill: error: ..." */
void cli_warnf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));  /* "rill: warning: ..." */
void cli_infof(const char *fmt, ...) __attribute__((format(printf, 1, 2)));  /* "rill: ..." */

/* ---- value parsing ----------------------------------------------------------- */
/* Whole-string decimal integer in [min, max]; returns 0 or -1. */
int cli_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
int cli_parse_int(const char *s, int min, int max, int *out);
/* Splits "key=value" at the first '='. *val is NULL when there is no '='.
 * Returns a malloc'd copy the caller frees (key points into it), or NULL when
 * the key is empty. */
char *cli_split_kv(const char *s, const char **key, const char **val);
/* Appends a malloc'd copy of s to a growable string array. */
void cli_strv_push(char ***v, size_t *n, const char *s);
void cli_strv_free(char ***v, size_t *n);

/* ---- librdkafka setup ------------------------------------------------------- */
/* A new configuration: bootstrap.servers, then `defaults` (NULL-terminated
 * key, value pairs; may be NULL), then every -X property (so -X wins), plus
 * Rill's error and log callbacks. NULL on an invalid property (printed). */
rd_kafka_conf_t *cli_conf_new(const cli_common_t *cm, const char *const *defaults);
/* Sets one property, printing librdkafka's reason on failure. 0 or -1. */
int cli_conf_set(rd_kafka_conf_t *conf, const char *key, const char *val);
/* rd_kafka_new that takes ownership of conf in every case. NULL on failure. */
rd_kafka_t *cli_kafka_new(rd_kafka_type_t type, rd_kafka_conf_t *conf);
/* The text of the last error librdkafka reported through the error callback
 * ("" if none), copied into buf. Call rd_kafka_poll(rk, 0) first so queued
 * errors are served. */
const char *cli_last_error(char *buf, size_t size);
/* Prints "rill: error: <what>: <librdkafka error>" plus the last broker error
 * when it adds information (e.g. "Connection refused"). */
void cli_report_kafka_error(rd_kafka_t *rk, const char *what, rd_kafka_resp_err_t err);
/* When set (produce, consume, perf) the error callback prints transient
 * errors as warnings (deduplicated); otherwise it only records them for
 * cli_last_error. Fatal errors are always printed. */
extern int cli_show_transient;
/* When set, librdkafka's configuration warnings (CONFWARN) are not shown
 * (perf e2e passes every -X to both its producer and its consumer). */
extern int cli_hide_confwarn;

/* Runs one admin call (`start` issues it with the options and queue given)
 * and waits for its result event; NULL (error printed) on a timeout or a
 * request-level error. The caller destroys the event. */
typedef void (*cli_admin_start_fn)(rd_kafka_t *rk, rd_kafka_AdminOptions_t *o, rd_kafka_queue_t *q, void *arg);
rd_kafka_event_t *cli_admin_call(rd_kafka_t *rk, rd_kafka_admin_op_t op, int timeout_ms, bool validate_only,
                                 const char *what, cli_admin_start_fn start, void *arg);

/* ---- configs (configs.c) ------------------------------------------------------ */
typedef struct {
    char *name;
    char *value; /* NULL: unset or sensitive */
    rd_kafka_ConfigSource_t source;
    bool read_only;
} cli_cfg_t;
/* DescribeConfigs of one resource into *out (free with cli_cfgs_free). 0, or
 * -1 with the error printed (e.g. the topic does not exist). */
int cli_describe_configs(rd_kafka_t *rk, rd_kafka_ResourceType_t type, const char *name, int timeout_ms,
                         cli_cfg_t **out, size_t *nout);
void cli_cfgs_free(cli_cfg_t *v, size_t n);
/* Sets ("key=value") and deletes ("key") on the `level` values of one
 * resource (DescribeConfigs, then AlterConfigs with the whole level). 0 or -1
 * (error printed). */
int cli_alter_configs(rd_kafka_t *rk, rd_kafka_ResourceType_t type, const char *name, rd_kafka_ConfigSource_t level,
                      char **sets, size_t nsets, char **dels, size_t ndels, int timeout_ms, bool validate_only);
/* Prints CONFIG VALUE SOURCE READ_ONLY rows (prefixed by resource when not
 * NULL); without `all` only values that are not defaults (no DEFAULT_CONFIG
 * or STATIC_BROKER_CONFIG source). */
void cli_print_configs(const char *resource, const cli_cfg_t *v, size_t n, bool all, bool header);

/* Partition count of a topic from a metadata request. Prints an error and
 * returns -1 when the topic does not exist or the request fails. */
int cli_topic_partition_count(rd_kafka_t *rk, const char *topic, int timeout_ms);
/* Parses a consumer start position: "beginning" (or earliest/oldest), "end"
 * (or latest/newest), an absolute offset N >= 0, or -N (the last N records of
 * each partition, RD_KAFKA_OFFSET_TAIL). 0 or -1. */
int cli_parse_offset(const char *s, int64_t *out);

/* ---- signals ------------------------------------------------------------------ */
/* Set by SIGINT/SIGTERM; long loops check it and finish cleanly. */
extern volatile sig_atomic_t cli_stop;
void cli_signals_install(void);

/* ---- latency histogram (log-linear, ~0.8% relative precision) ----------------- */
#define CLI_HIST_SUB_BITS 7
#define CLI_HIST_BUCKETS ((1 << CLI_HIST_SUB_BITS) + (64 - CLI_HIST_SUB_BITS) * (1 << (CLI_HIST_SUB_BITS - 1)))
typedef struct {
    uint64_t h_counts[CLI_HIST_BUCKETS];
    uint64_t h_n;
    uint64_t h_sum;
    uint64_t h_min;
    uint64_t h_max;
} cli_hist_t;

void cli_hist_init(cli_hist_t *h);
void cli_hist_add(cli_hist_t *h, uint64_t v);
/* The value at percentile p (0 < p <= 100), within the bucket precision and
 * clamped to [min, max]; 0 when empty. */
uint64_t cli_hist_pct(const cli_hist_t *h, double p);
double cli_hist_avg(const cli_hist_t *h);

/* ---- commands ------------------------------------------------------------------ */
int cli_topic_main(int argc, char **argv);
/* logdirs.c: adds each partition's size (bytes, all log dirs) on the broker at
 * host:port into sizes[0..nparts) (entries left -1 stay -1 when absent).
 * Returns 0, or -1 when the request failed. */
/* One request of API api_key version ver (body: the kp request struct) to
 * host:port, its response decoded into resp (the kp response struct; strings
 * and arrays live in ar, which the caller frees). 0 or -1 (connect, I/O,
 * timeout, undecodable answer). */
int cli_kp_call(const char *host, int port, int16_t api_key, int16_t ver, const void *body, void *resp,
                rb_arena_t *ar, int timeout_ms);
/* txn.c: `rill txn list|describe` (ListTransactions / DescribeTransactions). */
int cli_txn_main(int argc, char **argv);
int cli_logdirs_sizes(const char *host, int port, const char *topic, int32_t nparts, int64_t *sizes, int timeout_ms);
int cli_produce_main(int argc, char **argv);
int cli_consume_main(int argc, char **argv);
int cli_perf_main(int argc, char **argv);
/* group.c: rill group list|describe|reset-offsets|delete */
int cli_group_main(int argc, char **argv);
/* `rill broker config|alter-config` (broker.c) */
int cli_broker_main(int argc, char **argv);

/* ---- perf: shared by perf.c and perf_*.c ---------------------------------------- */
typedef enum { CLI_PERF_PRODUCE, CLI_PERF_CONSUME, CLI_PERF_E2E } cli_perf_mode_t;

typedef struct {
    cli_perf_mode_t mode;
    cli_common_t common;
    const char *topic;
    int64_t num_records;     /* --num-records (required) */
    int64_t record_size;     /* --record-size, default 100 */
    double rate;             /* --throughput/--rate records/s; <= 0 unlimited */
    const char *acks;        /* --acks, default all */
    const char *compression; /* -z, default none */
    int partitions;          /* -P: round-robin over 0..P-1; 0 = partitioner; -1 = all */
    int64_t offset;          /* consume: start position (default beginning) */
    int idle_timeout_ms;     /* consume/e2e: give up after this long without records */
    bool json;               /* --json: the final summary as one JSON line */
} cli_perf_args_t;

/* Producer defaults of the perf tools (overridable with -X): Nagle off,
 * linger.ms=5, plus --acks and -z. NULL-terminated key/value pairs. */
void cli_perf_producer_defaults(const cli_perf_args_t *a, const char *out[9]);
/* Resolves -P against the topic: the number of partitions to round-robin
 * over (0 = let the partitioner choose), or -1 on error (printed). */
int cli_perf_partitions(rd_kafka_t *rk, const cli_perf_args_t *a);
/* A payload of `size` pseudo-random letters (malloc'd; aborts on OOM). */
char *cli_perf_payload_new(size_t size);
/* Appends `"name_p50":x,...` latency fields (us in, ms out) to a JSON line. */
void cli_perf_json_latency(FILE *out, const char *prefix, const cli_hist_t *h);
/* Writes " avg X ms, p50 X ms, ..., max X ms" for a human summary. */
void cli_perf_text_latency(FILE *out, const cli_hist_t *h);
/* Prints a JSON string literal (escaped). */
void cli_perf_json_str(FILE *out, const char *s);
/* MB as Kafka's perf tools print it: 2^20 bytes. */
static inline double cli_mb(uint64_t bytes) { return (double)bytes / (1024.0 * 1024.0); }
static inline double cli_us_to_ms(double us) { return us / 1000.0; }
/* Progress line interval. */
#define CLI_PERF_REPORT_US 2000000

/* perf sub-commands (perf_*.c), run by perf.c after parsing */
int cli_perf_produce_run(const cli_perf_args_t *a);
int cli_perf_consume_run(const cli_perf_args_t *a);
int cli_perf_e2e_run(const cli_perf_args_t *a);

#endif
