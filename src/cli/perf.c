/*
 * perf.c — `rill perf produce|consume|e2e`: option parsing and the pieces the
 * three perf tools share (producer defaults, partition spreading, payloads,
 * latency summaries in text and JSON). The tools themselves are in
 * perf_produce.c, perf_consume.c and perf_e2e.c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

enum {
    CLI_OPT_NUM_RECORDS = CLI_OPT_LONG_BASE + 40,
    CLI_OPT_RECORD_SIZE,
    CLI_OPT_THROUGHPUT,
    CLI_OPT_PERF_ACKS,
    CLI_OPT_JSON,
    CLI_OPT_IDLE_TIMEOUT,
};

static const char *cli_perf_names[] = {
    [CLI_PERF_PRODUCE] = "perf produce",
    [CLI_PERF_CONSUME] = "perf consume",
    [CLI_PERF_E2E] = "perf e2e",
};

static const char *cli_perf_usage[] = {
    [CLI_PERF_PRODUCE] =
        "Usage: rill perf produce TOPIC --num-records N [--record-size B] [--throughput R]\n"
        "                         [--acks all|1|0] [-P PARTITIONS] [-z CODEC] [--json] [options]\n"
        "\n"
        "Produces N records of B bytes as fast as possible (or R records/s) and reports\n"
        "throughput and delivery latency (produce() to delivery report). A progress line\n"
        "goes to stderr every 2 s; the summary to stdout.\n"
        "\n"
        "      --num-records N      records to produce (required)\n"
        "      --record-size B      value size in bytes (default 100)\n"
        "      --throughput R       records/s to aim for; -1 = unlimited (default)\n"
        "      --acks all|1|0       required acknowledgements (default all)\n"
        "  -P, --partitions P       round-robin over partitions 0..P-1 (default: all of the\n"
        "                           topic's partitions; 0: librdkafka's partitioner)\n"
        "  -z, --compression CODEC  none|gzip|snappy|lz4|zstd (default none)\n"
        "      --json               print the summary as one JSON line\n"
        "Producer defaults: socket.nagle.disable=true, linger.ms=5 (change with -X).\n",
    [CLI_PERF_CONSUME] =
        "Usage: rill perf consume TOPIC --num-records N [-o POS] [--json] [options]\n"
        "\n"
        "Reads N records from every partition of TOPIC (assigned directly, no group) and\n"
        "reports throughput, measured from the first record to the N-th.\n"
        "\n"
        "      --num-records N      records to read (required)\n"
        "  -o, --offset POS         beginning (default) | end | N | -N\n"
        "      --idle-timeout MS    give up after MS without a record (default 10000)\n"
        "      --json               print the summary as one JSON line\n",
    [CLI_PERF_E2E] =
        "Usage: rill perf e2e TOPIC --rate R --num-records N [--record-size B] [--acks all|1|0]\n"
        "                     [--json] [options]\n"
        "\n"
        "End-to-end latency: a producer sends N records at R records/s, each carrying its\n"
        "send time; a consumer in the same process reads them back and measures the time\n"
        "from produce() to receipt. Reports p50/p99/p99.9.\n"
        "\n"
        "      --rate R             records/s (required)\n"
        "      --num-records N      records to send (required)\n"
        "      --record-size B      value size in bytes, >= 28 (default 100)\n"
        "      --acks all|1|0       producer acks (default all)\n"
        "  -P, --partitions P       as for perf produce (default: all partitions)\n"
        "  -z, --compression CODEC  none|gzip|snappy|lz4|zstd (default none)\n"
        "      --idle-timeout MS    stop waiting for missing records after MS (default 10000)\n"
        "      --json               print the summary as one JSON line\n"
        "Producer defaults: socket.nagle.disable=true, linger.ms=5 (change with -X).\n",
};

static void cli_perf_help(FILE *out) {
    fprintf(out,
            "Usage: rill perf <produce|consume|e2e> TOPIC [options]\n"
            "\n"
            "  produce   producer throughput and delivery latency\n"
            "  consume   consumer throughput\n"
            "  e2e       end-to-end latency at a fixed rate (producer and consumer in one process)\n"
            "\n"
            "'rill perf <tool> --help' lists each tool's options.\n"
            "\n" CLI_COMMON_HELP);
}

/* Returns 0 to run, -1 when help was printed, CLI_EXIT_USAGE on errors. */
static int cli_perf_parse(cli_perf_mode_t mode, int argc, char **argv, cli_perf_args_t *a) {
    static const struct option longopts[] = {
        CLI_COMMON_LONGOPTS,
        {"num-records", required_argument, NULL, CLI_OPT_NUM_RECORDS},
        {"record-size", required_argument, NULL, CLI_OPT_RECORD_SIZE},
        {"throughput", required_argument, NULL, CLI_OPT_THROUGHPUT},
        {"rate", required_argument, NULL, CLI_OPT_THROUGHPUT},
        {"acks", required_argument, NULL, CLI_OPT_PERF_ACKS},
        {"partitions", required_argument, NULL, 'P'},
        {"compression", required_argument, NULL, 'z'},
        {"offset", required_argument, NULL, 'o'},
        {"idle-timeout", required_argument, NULL, CLI_OPT_IDLE_TIMEOUT},
        {"json", no_argument, NULL, CLI_OPT_JSON},
        {NULL, 0, NULL, 0},
    };
    static const char *const codecs[] = {"none", "gzip", "snappy", "lz4", "zstd"};
    const char *cmd = cli_perf_names[mode];
    bool producing = mode != CLI_PERF_CONSUME;
    bool have_rate = false;
    int c;

    memset(a, 0, sizeof *a);
    a->mode = mode;
    cli_common_init(&a->common);
    a->record_size = 100;
    a->rate = -1;
    a->acks = "all";
    a->compression = "none";
    a->partitions = -1;
    a->offset = RD_KAFKA_OFFSET_BEGINNING;
    a->idle_timeout_ms = 10000;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":" CLI_COMMON_SHORTOPTS "P:z:o:", longopts, NULL)) != -1) {
        int rc = cli_common_opt(&a->common, c, optarg);
        if (rc < 0) return cli_usage_hint(cmd);
        if (rc > 0) continue;
        switch (c) {
        case 'h':
            fputs(cli_perf_usage[mode], stdout);
            fputs("\n" CLI_COMMON_HELP, stdout);
            return -1;
        case CLI_OPT_NUM_RECORDS:
            if (cli_parse_i64(optarg, 1, INT64_MAX / 2, &a->num_records) != 0)
                return cli_usage_error(cmd, "--num-records expects a count >= 1, got '%s'", optarg);
            break;
        case CLI_OPT_RECORD_SIZE:
            if (!producing) goto unknown;
            if (cli_parse_i64(optarg, 0, 100 * 1024 * 1024, &a->record_size) != 0)
                return cli_usage_error(cmd, "--record-size expects bytes (0..104857600), got '%s'", optarg);
            break;
        case CLI_OPT_THROUGHPUT: {
            char *end = NULL;
            if (!producing) goto unknown;
            a->rate = strtod(optarg, &end);
            if (!*optarg || *end || !isfinite(a->rate) || (a->rate <= 0 && a->rate != -1))
                return cli_usage_error(cmd, "--throughput/--rate expects records/s > 0 or -1, got '%s'", optarg);
            have_rate = a->rate > 0;
            break;
        }
        case CLI_OPT_PERF_ACKS:
            if (!producing) goto unknown;
            if (strcmp(optarg, "all") && strcmp(optarg, "-1") && strcmp(optarg, "1") && strcmp(optarg, "0"))
                return cli_usage_error(cmd, "--acks expects all, 1 or 0, got '%s'", optarg);
            a->acks = optarg;
            break;
        case 'P':
            if (!producing) goto unknown;
            if (cli_parse_int(optarg, 0, 1000000, &a->partitions) != 0)
                return cli_usage_error(cmd, "-P expects a partition count >= 0, got '%s'", optarg);
            break;
        case 'z': {
            bool ok = false;
            if (!producing) goto unknown;
            for (size_t i = 0; i < RB_ARRAY_LEN(codecs); i++) ok |= !strcmp(optarg, codecs[i]);
            if (!ok) return cli_usage_error(cmd, "-z expects none, gzip, snappy, lz4 or zstd, got '%s'", optarg);
            a->compression = optarg;
            break;
        }
        case 'o':
            if (mode != CLI_PERF_CONSUME) goto unknown;
            if (cli_parse_offset(optarg, &a->offset) != 0)
                return cli_usage_error(cmd, "-o expects beginning, end, N or -N, got '%s'", optarg);
            break;
        case CLI_OPT_IDLE_TIMEOUT:
            if (mode == CLI_PERF_PRODUCE) goto unknown;
            if (cli_parse_int(optarg, 1, 3600 * 1000, &a->idle_timeout_ms) != 0)
                return cli_usage_error(cmd, "--idle-timeout expects milliseconds, got '%s'", optarg);
            break;
        case CLI_OPT_JSON:
            a->json = true;
            break;
        default:
        unknown:
            return cli_getopt_error(cmd, c, argv);
        }
    }
    if (optind >= argc) return cli_usage_error(cmd, "missing topic name");
    a->topic = argv[optind++];
    if (!*a->topic) return cli_usage_error(cmd, "empty topic name");
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!a->num_records) return cli_usage_error(cmd, "--num-records is required");
    if (mode == CLI_PERF_E2E) {
        if (!have_rate) return cli_usage_error(cmd, "--rate is required (records/s > 0)");
        if (a->record_size < 28) return cli_usage_error(cmd, "--record-size must be >= 28 for e2e");
    }
    return 0;
}

void cli_perf_producer_defaults(const cli_perf_args_t *a, const char *out[9]) {
    out[0] = "socket.nagle.disable";
    out[1] = "true";
    out[2] = "linger.ms";
    out[3] = "5";
    out[4] = "acks";
    out[5] = a->acks;
    out[6] = "compression.codec";
    out[7] = a->compression;
    out[8] = NULL;
}

int cli_perf_partitions(rd_kafka_t *rk, const cli_perf_args_t *a) {
    int n = cli_topic_partition_count(rk, a->topic, a->common.cm_timeout_ms);
    if (n < 0) return -1;
    if (a->partitions < 0) return n;
    if (a->partitions > n) {
        cli_errf("-P %d: topic '%s' has only %d partition%s", a->partitions, a->topic, n, n == 1 ? "" : "s");
        return -1;
    }
    return a->partitions;
}

char *cli_perf_payload_new(size_t size) {
    char *p = malloc(size ? size : 1);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    if (!p) {
        cli_errf("out of memory for a %zu-byte payload", size);
        abort();
    }
    for (size_t i = 0; i < size; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (char)('A' + x % 26);
    }
    return p;
}

void cli_perf_json_str(FILE *out, const char *s) {
    fputc('"', out);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(out, "\\u%04x", ch);
        else
            fputc(ch, out);
    }
    fputc('"', out);
}

void cli_perf_json_latency(FILE *out, const char *prefix, const cli_hist_t *h) {
    fprintf(out,
            ",\"%s_avg_ms\":%.3f,\"%s_p50_ms\":%.3f,\"%s_p95_ms\":%.3f,\"%s_p99_ms\":%.3f,"
            "\"%s_p999_ms\":%.3f,\"%s_max_ms\":%.3f",
            prefix, cli_us_to_ms(cli_hist_avg(h)), prefix, cli_us_to_ms((double)cli_hist_pct(h, 50)), prefix,
            cli_us_to_ms((double)cli_hist_pct(h, 95)), prefix, cli_us_to_ms((double)cli_hist_pct(h, 99)), prefix,
            cli_us_to_ms((double)cli_hist_pct(h, 99.9)), prefix, cli_us_to_ms((double)h->h_max));
}

void cli_perf_text_latency(FILE *out, const cli_hist_t *h) {
    fprintf(out, "%.3f ms avg, %.3f ms p50, %.3f ms p95, %.3f ms p99, %.3f ms p99.9, %.3f ms max",
            cli_us_to_ms(cli_hist_avg(h)), cli_us_to_ms((double)cli_hist_pct(h, 50)),
            cli_us_to_ms((double)cli_hist_pct(h, 95)), cli_us_to_ms((double)cli_hist_pct(h, 99)),
            cli_us_to_ms((double)cli_hist_pct(h, 99.9)), cli_us_to_ms((double)h->h_max));
}

int cli_perf_main(int argc, char **argv) {
    static const struct {
        const char *name;
        cli_perf_mode_t mode;
    } tools[] = {{"produce", CLI_PERF_PRODUCE}, {"consume", CLI_PERF_CONSUME}, {"e2e", CLI_PERF_E2E}};
    cli_perf_args_t a;
    int rc;
    if (argc < 2) {
        cli_perf_help(stderr);
        return CLI_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        cli_perf_help(stdout);
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < RB_ARRAY_LEN(tools); i++) {
        if (strcmp(argv[1], tools[i].name) != 0) continue;
        rc = cli_perf_parse(tools[i].mode, argc - 1, argv + 1, &a);
        if (rc == 0) {
            switch (a.mode) {
            case CLI_PERF_PRODUCE: rc = cli_perf_produce_run(&a); break;
            case CLI_PERF_CONSUME: rc = cli_perf_consume_run(&a); break;
            case CLI_PERF_E2E: rc = cli_perf_e2e_run(&a); break;
            }
        } else if (rc < 0) {
            rc = CLI_EXIT_OK;
        }
        cli_common_free(&a.common);
        return rc;
    }
    return cli_usage_error("perf", "unknown perf tool '%s' (produce, consume or e2e)", argv[1]);
}
