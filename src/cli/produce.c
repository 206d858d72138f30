/*
 * produce.c — `rill produce TOPIC`: one record per line of standard input
 * (the newline is not part of the value), with an optional fixed key, key
 * separator, partition, headers, acks and compression. Waits for every
 * delivery report, prints a summary to stderr, exits 1 if any delivery failed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define CLI_OPT_ACKS (CLI_OPT_LONG_BASE + 20)
#define CLI_PRODUCE_MAX_ERRORS_SHOWN 10

typedef struct {
    cli_common_t common;
    const char *topic;
    const char *key;       /* -k: fixed key for every record, or NULL */
    const char *key_delim; /* -K: split each line into key DELIM value */
    int32_t partition;     /* -p, or RD_KAFKA_PARTITION_UA */
    char **headers;        /* -H key=value */
    size_t nheaders;
    const char *acks;        /* --acks: all|1|0 (passed as librdkafka "acks") */
    const char *compression; /* -z */
    bool empty_null;         /* -Z: empty value/key -> null (tombstones) */
} cli_produce_args_t;

typedef struct {
    uint64_t pr_sent;      /* produce() accepted */
    uint64_t pr_delivered; /* delivery report OK */
    uint64_t pr_failed;    /* delivery report error or produce() refusal */
    uint64_t pr_bytes;     /* value+key bytes delivered */
    rd_kafka_resp_err_t pr_first_err;
} cli_produce_stats_t;

static void cli_produce_help(FILE *out) {
    fprintf(out,
            "Usage: rill produce TOPIC [options] < input\n"
            "\n"
            "Produces one record per line of standard input (the newline is not part of\n"
            "the value). Waits for every delivery report, prints a summary to stderr and\n"
            "exits 1 if any record was not delivered.\n"
            "\n"
            "  -k, --key KEY             key for every record (default: no key)\n"
            "  -K, --key-delimiter STR   split each line at the first STR into key and value\n"
            "  -p, --partition N         produce to partition N (default: the partitioner)\n"
            "  -H, --header KEY=VALUE    add a header to every record (repeatable; KEY alone\n"
            "                            gives a header with a null value)\n"
            "      --acks all|1|0        required acknowledgements (default all)\n"
            "  -z, --compression CODEC   none|gzip|snappy|lz4|zstd (default none)\n"
            "  -Z, --null-empty          an empty line (or, with -K, an empty key or value)\n"
            "                            is sent as null: a tombstone for compacted topics\n"
            "\n" CLI_COMMON_HELP);
}

static void cli_produce_args_free(cli_produce_args_t *a) {
    cli_common_free(&a->common);
    cli_strv_free(&a->headers, &a->nheaders);
}

/* Returns 0 to run, -1 when help was printed, CLI_EXIT_USAGE on errors. */
static int cli_produce_parse(int argc, char **argv, cli_produce_args_t *a) {
    static const struct option longopts[] = {
        CLI_COMMON_LONGOPTS,
        {"key", required_argument, NULL, 'k'},
        {"key-delimiter", required_argument, NULL, 'K'},
        {"partition", required_argument, NULL, 'p'},
        {"header", required_argument, NULL, 'H'},
        {"acks", required_argument, NULL, CLI_OPT_ACKS},
        {"compression", required_argument, NULL, 'z'},
        {"null-empty", no_argument, NULL, 'Z'},
        {NULL, 0, NULL, 0},
    };
    static const char *const codecs[] = {"none", "gzip", "snappy", "lz4", "zstd"};
    int c;
    memset(a, 0, sizeof *a);
    cli_common_init(&a->common);
    a->partition = RD_KAFKA_PARTITION_UA;
    a->acks = "all";
    a->compression = "none";
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":" CLI_COMMON_SHORTOPTS "k:K:p:H:z:Z", longopts, NULL)) != -1) {
        int rc = cli_common_opt(&a->common, c, optarg);
        if (rc < 0) return cli_usage_hint("produce");
        if (rc > 0) continue;
        switch (c) {
        case 'h':
            cli_produce_help(stdout);
            return -1;
        case 'k':
            a->key = optarg;
            break;
        case 'K':
            if (!*optarg) return cli_usage_error("produce", "-K needs a non-empty delimiter");
            a->key_delim = optarg;
            break;
        case 'p': {
            int p;
            if (cli_parse_int(optarg, 0, INT32_MAX, &p) != 0)
                return cli_usage_error("produce", "-p expects a partition number >= 0, got '%s'", optarg);
            a->partition = p;
            break;
        }
        case 'H':
            if (!*optarg || optarg[0] == '=')
                return cli_usage_error("produce", "-H expects KEY=VALUE, got '%s'", optarg);
            cli_strv_push(&a->headers, &a->nheaders, optarg);
            break;
        case CLI_OPT_ACKS:
            if (strcmp(optarg, "all") && strcmp(optarg, "-1") && strcmp(optarg, "1") && strcmp(optarg, "0"))
                return cli_usage_error("produce", "--acks expects all, 1 or 0, got '%s'", optarg);
            a->acks = optarg;
            break;
        case 'z': {
            bool ok = false;
            for (size_t i = 0; i < RB_ARRAY_LEN(codecs); i++) ok |= !strcmp(optarg, codecs[i]);
            if (!ok)
                return cli_usage_error("produce", "-z expects none, gzip, snappy, lz4 or zstd, got '%s'",
                                       optarg);
            a->compression = optarg;
            break;
        }
        case 'Z':
            a->empty_null = true;
            break;
        default:
            return cli_getopt_error("produce", c, argv);
        }
    }
    if (optind >= argc) return cli_usage_error("produce", "missing topic name");
    a->topic = argv[optind++];
    if (!*a->topic) return cli_usage_error("produce", "empty topic name");
    if (optind < argc) return cli_usage_error("produce", "unexpected argument '%s'", argv[optind]);
    if (a->key && a->key_delim) return cli_usage_error("produce", "-k and -K exclude each other");
    return 0;
}

/* Delivery reports, served by rd_kafka_poll/flush on the main thread. */
static void cli_produce_on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    cli_produce_stats_t *st = opaque;
    if (!m->err) {
        st->pr_delivered++;
        st->pr_bytes += m->len + m->key_len;
        return;
    }
    st->pr_failed++;
    if (!st->pr_first_err) st->pr_first_err = m->err;
    if (st->pr_failed <= CLI_PRODUCE_MAX_ERRORS_SHOWN)
        cli_errf("delivery to %s [%d] failed: %s", rd_kafka_topic_name(m->rkt), (int)m->partition,
                 rd_kafka_err2str(m->err));
    else if (st->pr_failed == CLI_PRODUCE_MAX_ERRORS_SHOWN + 1)
        cli_errf("(further delivery errors not shown)");
}

/* Builds the header set every record gets (copied by producev). */
static rd_kafka_headers_t *cli_produce_headers_new(const cli_produce_args_t *a) {
    rd_kafka_headers_t *hdrs;
    if (!a->nheaders) return NULL;
    hdrs = rd_kafka_headers_new(a->nheaders);
    for (size_t i = 0; i < a->nheaders; i++) {
        const char *k, *v;
        char *copy = cli_split_kv(a->headers[i], &k, &v);
        if (!copy) continue; /* rejected by the parser already */
        rd_kafka_header_add(hdrs, k, -1, v, v ? -1 : 0);
        free(copy);
    }
    return hdrs;
}

/* Produces one record, waiting while the local queue is full. 0 or -1. */
static int cli_produce_one(rd_kafka_t *rk, const cli_produce_args_t *a, const rd_kafka_headers_t *hdrs,
                           const char *key, size_t key_len, const char *val, size_t val_len) {
    for (;;) {
        rd_kafka_headers_t *h = hdrs ? rd_kafka_headers_copy(hdrs) : NULL;
        rd_kafka_resp_err_t err = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(a->topic), RD_KAFKA_V_PARTITION(a->partition),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key_len),
            RD_KAFKA_V_VALUE((void *)val, val_len), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
        if (!err) return 0;
        if (h) rd_kafka_headers_destroy(h); /* not taken over on failure */
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && !cli_stop) {
            rd_kafka_poll(rk, 100);
            continue;
        }
        if (err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION)
            cli_errf("produce to %s [%d]: partition does not exist", a->topic, (int)a->partition);
        else
            cli_errf("produce to %s: %s", a->topic, rd_kafka_err2str(err));
        return -1;
    }
}

static int cli_produce_run(const cli_produce_args_t *a) {
    const char *defaults[] = {"acks", a->acks, "compression.codec", a->compression, NULL};
    cli_produce_stats_t st = {0};
    rd_kafka_conf_t *conf = NULL;
    rd_kafka_t *rk = NULL;
    rd_kafka_headers_t *hdrs = NULL;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int nparts, rc = CLI_EXIT_FAIL;
    bool refused = false;
    int64_t t0 = rb_mono_us();

    if (!(conf = cli_conf_new(&a->common, defaults))) goto fail;
    rd_kafka_conf_set_opaque(conf, &st);
    rd_kafka_conf_set_dr_msg_cb(conf, cli_produce_on_delivery);
    rk = cli_kafka_new(RD_KAFKA_PRODUCER, conf);
    conf = NULL;
    if (!rk) goto fail;
    /* Fail early and clearly when the broker is unreachable or the topic is
     * missing, instead of after message.timeout.ms. */
    if ((nparts = cli_topic_partition_count(rk, a->topic, a->common.cm_timeout_ms)) < 0) goto fail;
    cli_show_transient = 1; /* connected: report later trouble as it happens */
    if (a->partition != RD_KAFKA_PARTITION_UA && a->partition >= nparts) {
        cli_errf("topic '%s' has %d partition%s; partition %d does not exist", a->topic, nparts,
                 nparts == 1 ? "" : "s", (int)a->partition);
        goto fail;
    }
    hdrs = cli_produce_headers_new(a);

    while (!cli_stop && (n = getline(&line, &cap, stdin)) >= 0) {
        const char *key = a->key, *val = line;
        size_t key_len = a->key ? strlen(a->key) : 0, val_len = (size_t)n;
        if (val_len && line[val_len - 1] == '\n') val_len--;
        if (a->key_delim) {
            char *d = memmem(line, val_len, a->key_delim, strlen(a->key_delim));
            if (d) {
                key = line;
                key_len = (size_t)(d - line);
                val = d + strlen(a->key_delim);
                val_len -= key_len + strlen(a->key_delim);
            }
        }
        if (a->empty_null) {
            if (!val_len) val = NULL;
            if (a->key_delim && key && !key_len) key = NULL;
        }
        if (cli_produce_one(rk, a, hdrs, key, key_len, val, val_len) != 0) {
            refused = true;
            break;
        }
        st.pr_sent++;
        rd_kafka_poll(rk, 0);
    }
    if (ferror(stdin) && !cli_stop) cli_errf("reading standard input: %s", strerror(errno));

    /* Wait for every outstanding delivery report (bounded by
     * message.timeout.ms); a second Ctrl-C leaves at once. */
    while (rd_kafka_outq_len(rk) > 0) rd_kafka_poll(rk, 100);
    rd_kafka_flush(rk, 1000);

    {
        double secs = (double)(rb_mono_us() - t0) / 1e6;
        uint64_t undelivered = st.pr_sent - st.pr_delivered - st.pr_failed;
        cli_infof("produced %llu record%s (%llu bytes) to '%s' in %.3f s; %llu failed%s",
                  (unsigned long long)st.pr_delivered, st.pr_delivered == 1 ? "" : "s",
                  (unsigned long long)st.pr_bytes, a->topic, secs,
                  (unsigned long long)(st.pr_failed + undelivered), cli_stop ? " (interrupted)" : "");
        rc = st.pr_failed || undelivered || refused ? CLI_EXIT_FAIL : CLI_EXIT_OK;
    }
fail:
    free(line);
    if (hdrs) rd_kafka_headers_destroy(hdrs);
    if (conf) rd_kafka_conf_destroy(conf);
    if (rk) rd_kafka_destroy(rk);
    return rc;
}

int cli_produce_main(int argc, char **argv) {
    cli_produce_args_t a;
    int rc = cli_produce_parse(argc, argv, &a);
    if (rc == 0)
        rc = cli_produce_run(&a);
    else if (rc < 0)
        rc = CLI_EXIT_OK;
    cli_produce_args_free(&a);
    return rc;
}
