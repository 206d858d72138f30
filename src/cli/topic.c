/*
 * topic.c — `rill topic create|list|describe|delete|alter-config|add-partitions|
 * delete-records`: topic administration through librdkafka's Admin API
 * (CreateTopics, DeleteTopics, DescribeConfigs, AlterConfigs,
 * CreatePartitions, DeleteRecords), metadata requests and ListOffsets
 * (watermarks). Tables go to stdout, tab-separated, with a header line unless
 * --no-header.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define CLI_OPT_NO_HEADER (CLI_OPT_LONG_BASE + 10)
#define CLI_OPT_DRY_RUN (CLI_OPT_LONG_BASE + 11)
#define CLI_OPT_DELETE (CLI_OPT_LONG_BASE + 12)
#define CLI_OPT_ALL_CONFIGS (CLI_OPT_LONG_BASE + 13)
#define CLI_OPT_BEFORE (CLI_OPT_LONG_BASE + 14)

typedef enum {
    CLI_TOPIC_CREATE,
    CLI_TOPIC_LIST,
    CLI_TOPIC_DESCRIBE,
    CLI_TOPIC_DELETE,
    CLI_TOPIC_ALTER_CONFIG,
    CLI_TOPIC_ADD_PARTITIONS,
    CLI_TOPIC_DELETE_RECORDS,
} cli_topic_op_t;

typedef struct {
    cli_topic_op_t op;
    cli_common_t common;
    char **names; /* topics named on the command line */
    size_t nnames;
    int partitions;  /* create: -1 = broker default */
    int replicas;    /* create: -1 = broker default */
    char **configs;  /* create: -c key=value */
    size_t nconfigs;
    bool dry_run;    /* create: validate only */
    bool no_header;
    bool internal;   /* list: also show "__" topics */
    char **deletes;  /* alter-config: --delete KEY */
    size_t ndeletes;
    bool all_configs; /* describe: every config, defaults included */
    int64_t before;   /* delete-records: --before OFFSET (-1: the high watermark) */
} cli_topic_args_t;

static const char *cli_topic_usage[] = {
    [CLI_TOPIC_CREATE] =
        "Usage: rill topic create NAME... [-p PARTITIONS] [-r REPLICAS] [-c KEY=VALUE]... [options]\n"
        "\n"
        "Creates topics with the Admin API (CreateTopics). Prints TOPIC<TAB>STATUS per topic;\n"
        "exits 1 if any topic could not be created (e.g. it already exists).\n"
        "\n"
        "  -p, --partitions N     partition count (default: the broker's num.partitions)\n"
        "  -r, --replicas N       replication factor (default 1; -1: the broker's default)\n"
        "  -c, --config KEY=VALUE topic config, e.g. -c retention.ms=604800000 (repeatable)\n"
        "      --dry-run          ask the broker to validate only\n"
        "      --no-header        omit the header line\n",
    [CLI_TOPIC_LIST] =
        "Usage: rill topic list [-i] [options]\n"
        "\n"
        "Lists topics from a metadata request: TOPIC<TAB>PARTITIONS<TAB>REPLICAS.\n"
        "\n"
        "  -i, --internal         also list internal topics (names starting with \"__\")\n"
        "      --no-header        omit the header line\n",
    [CLI_TOPIC_DESCRIBE] =
        "Usage: rill topic describe NAME... [options]\n"
        "\n"
        "One line per partition, tab-separated:\n"
        "  TOPIC PARTITION LEADER REPLICAS ISR LOG_START END SIZE\n"
        "LOG_START and END are the low and high watermarks (ListOffsets).\n"
        "SIZE is the bytes on disk (DescribeLogDirs on the leader), \"-\" if the broker cannot tell.\n"
        "\n"
        "Then, after an empty line, the topic's configs that are not defaults:\n"
        "  TOPIC CONFIG VALUE SOURCE READ_ONLY   (SOURCE as Kafka's DescribeConfigs names it)\n"
        "\n"
        "      --all-configs      list every config, defaults included\n"
        "      --no-header        omit the header lines\n",
    [CLI_TOPIC_DELETE] =
        "Usage: rill topic delete NAME... [options]\n"
        "\n"
        "Deletes topics with the Admin API (DeleteTopics). Prints TOPIC<TAB>STATUS per topic;\n"
        "exits 1 if any topic could not be deleted.\n"
        "\n"
        "      --no-header        omit the header line\n",
    [CLI_TOPIC_ALTER_CONFIG] =
        "Usage: rill topic alter-config NAME [KEY=VALUE]... [--delete KEY]... [options]\n"
        "\n"
        "Sets and removes topic config overrides (DescribeConfigs + AlterConfigs: the other\n"
        "overrides are kept). A removed override falls back to the broker's default.\n"
        "\n"
        "      --delete KEY       remove the override KEY (repeatable)\n"
        "      --dry-run          ask the broker to validate only\n",
    [CLI_TOPIC_ADD_PARTITIONS] =
        "Usage: rill topic add-partitions NAME -p TOTAL [options]\n"
        "\n"
        "Grows the topic to TOTAL partitions (CreatePartitions); partitions are never removed,\n"
        "so TOTAL must exceed the current count (else INVALID_PARTITIONS).\n"
        "\n"
        "  -p, --partitions N     the new total partition count\n"
        "      --dry-run          ask the broker to validate only\n",
    [CLI_TOPIC_DELETE_RECORDS] =
        "Usage: rill topic delete-records NAME -p PARTITION [--before OFFSET] [options]\n"
        "\n"
        "Deletes the records of one partition below OFFSET (DeleteRecords): the log start\n"
        "offset moves there. Without --before, everything up to the high watermark.\n"
        "Prints TOPIC<TAB>PARTITION<TAB>LOG_START.\n"
        "\n"
        "  -p, --partition N      the partition\n"
        "      --before OFFSET    delete records with offsets below OFFSET\n"
        "      --no-header        omit the header line\n",
};

static const char *cli_topic_names[] = {
    [CLI_TOPIC_CREATE] = "topic create",
    [CLI_TOPIC_LIST] = "topic list",
    [CLI_TOPIC_DESCRIBE] = "topic describe",
    [CLI_TOPIC_DELETE] = "topic delete",
    [CLI_TOPIC_ALTER_CONFIG] = "topic alter-config",
    [CLI_TOPIC_ADD_PARTITIONS] = "topic add-partitions",
    [CLI_TOPIC_DELETE_RECORDS] = "topic delete-records",
};

static void cli_topic_help(FILE *out) {
    fprintf(out,
            "Usage: rill topic <create|list|describe|delete> [arguments] [options]\n"
            "\n"
            "  create NAME... -p N [-r R] [-c KEY=VALUE]...   create topics\n"
            "  list                                           list topics and partition counts\n"
            "  describe NAME... [--all-configs]               leader, offsets, size per partition; configs\n"
            "  delete NAME...                                 delete topics\n"
            "  alter-config NAME KEY=VALUE... [--delete KEY]  set or remove topic config overrides\n"
            "  add-partitions NAME -p TOTAL                   grow a topic to TOTAL partitions\n"
            "  delete-records NAME -p N [--before OFFSET]     delete a partition's records below OFFSET\n"
            "\n" CLI_COMMON_HELP);
}

static void cli_topic_args_free(cli_topic_args_t *a) {
    cli_common_free(&a->common);
    cli_strv_free(&a->names, &a->nnames);
    cli_strv_free(&a->configs, &a->nconfigs);
    cli_strv_free(&a->deletes, &a->ndeletes);
}

/* Returns -1 when help was printed (exit 0), CLI_EXIT_USAGE on errors, 0 ok. */
static int cli_topic_parse(cli_topic_op_t op, int argc, char **argv, cli_topic_args_t *a) {
    static const struct option longopts[] = {
        CLI_COMMON_LONGOPTS,
        {"partitions", required_argument, NULL, 'p'},
        {"replicas", required_argument, NULL, 'r'},
        {"replication-factor", required_argument, NULL, 'r'},
        {"config", required_argument, NULL, 'c'},
        {"internal", no_argument, NULL, 'i'},
        {"dry-run", no_argument, NULL, CLI_OPT_DRY_RUN},
        {"no-header", no_argument, NULL, CLI_OPT_NO_HEADER},
        {"delete", required_argument, NULL, CLI_OPT_DELETE},
        {"all-configs", no_argument, NULL, CLI_OPT_ALL_CONFIGS},
        {"before", required_argument, NULL, CLI_OPT_BEFORE},
        {"partition", required_argument, NULL, 'p'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = cli_topic_names[op];
    int c;
    memset(a, 0, sizeof *a);
    a->op = op;
    a->partitions = -1;
    a->replicas = 1;
    a->before = -1;
    cli_common_init(&a->common);
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":" CLI_COMMON_SHORTOPTS "p:r:c:i", longopts, NULL)) != -1) {
        int rc = cli_common_opt(&a->common, c, optarg);
        if (rc < 0) return cli_usage_hint(cmd);
        if (rc > 0) continue;
        switch (c) {
        case 'h':
            fputs(cli_topic_usage[op], stdout);
            fputs("\n" CLI_COMMON_HELP, stdout);
            return -1;
        case 'p':
            if (op == CLI_TOPIC_DELETE_RECORDS) {
                if (cli_parse_int(optarg, 0, INT32_MAX, &a->partitions) != 0)
                    return cli_usage_error(cmd, "-p expects a partition number >= 0, got '%s'", optarg);
                break;
            }
            if (op != CLI_TOPIC_CREATE && op != CLI_TOPIC_ADD_PARTITIONS) goto unknown;
            if (cli_parse_int(optarg, -1, 1000000, &a->partitions) != 0 || a->partitions == 0 ||
                (op == CLI_TOPIC_ADD_PARTITIONS && a->partitions < 1))
                return cli_usage_error(cmd, "-p expects a partition count >= 1, got '%s'", optarg);
            break;
        case CLI_OPT_DELETE:
            if (op != CLI_TOPIC_ALTER_CONFIG) goto unknown;
            cli_strv_push(&a->deletes, &a->ndeletes, optarg);
            break;
        case CLI_OPT_ALL_CONFIGS:
            if (op != CLI_TOPIC_DESCRIBE) goto unknown;
            a->all_configs = true;
            break;
        case CLI_OPT_BEFORE:
            if (op != CLI_TOPIC_DELETE_RECORDS) goto unknown;
            if (cli_parse_i64(optarg, 0, INT64_MAX, &a->before) != 0)
                return cli_usage_error(cmd, "--before expects an offset >= 0, got '%s'", optarg);
            break;
        case 'r':
            if (op != CLI_TOPIC_CREATE) goto unknown;
            if (cli_parse_int(optarg, -1, 32767, &a->replicas) != 0 || a->replicas == 0)
                return cli_usage_error(cmd, "-r expects a replication factor >= 1, got '%s'", optarg);
            break;
        case 'c': {
            const char *k, *v;
            char *copy;
            if (op != CLI_TOPIC_CREATE) goto unknown;
            copy = cli_split_kv(optarg, &k, &v);
            if (!copy || !v) {
                free(copy);
                return cli_usage_error(cmd, "-c expects KEY=VALUE, got '%s'", optarg);
            }
            free(copy);
            cli_strv_push(&a->configs, &a->nconfigs, optarg);
            break;
        }
        case 'i':
            if (op != CLI_TOPIC_LIST) goto unknown;
            a->internal = true;
            break;
        case CLI_OPT_DRY_RUN:
            if (op != CLI_TOPIC_CREATE && op != CLI_TOPIC_ALTER_CONFIG && op != CLI_TOPIC_ADD_PARTITIONS)
                goto unknown;
            a->dry_run = true;
            break;
        case CLI_OPT_NO_HEADER:
            a->no_header = true;
            break;
        default:
        unknown:
            return cli_getopt_error(cmd, c, argv);
        }
    }
    for (int i = optind; i < argc; i++) {
        if (op == CLI_TOPIC_ALTER_CONFIG && a->nnames == 1) { /* NAME KEY=VALUE... */
            const char *k, *v;
            char *copy = cli_split_kv(argv[i], &k, &v);
            free(copy);
            if (!copy || !v) return cli_usage_error(cmd, "expected KEY=VALUE, got '%s'", argv[i]);
            cli_strv_push(&a->configs, &a->nconfigs, argv[i]);
            continue;
        }
        cli_strv_push(&a->names, &a->nnames, argv[i]);
    }
    if ((op == CLI_TOPIC_ADD_PARTITIONS || op == CLI_TOPIC_DELETE_RECORDS) && a->nnames > 1)
        return cli_usage_error(cmd, "one topic at a time, got '%s' too", a->names[1]);
    if ((op == CLI_TOPIC_ADD_PARTITIONS || op == CLI_TOPIC_DELETE_RECORDS) && a->partitions < 0 && a->nnames)
        return cli_usage_error(cmd, "missing -p");
    if (op == CLI_TOPIC_ALTER_CONFIG && a->nnames && !a->nconfigs && !a->ndeletes)
        return cli_usage_error(cmd, "nothing to change: give KEY=VALUE or --delete KEY");
    if (op == CLI_TOPIC_LIST && a->nnames)
        return cli_usage_error(cmd, "unexpected argument '%s'", a->names[0]);
    if (op != CLI_TOPIC_LIST && !a->nnames) return cli_usage_error(cmd, "missing topic name");
    for (size_t i = 0; i < a->nnames; i++)
        if (!a->names[i][0]) return cli_usage_error(cmd, "empty topic name");
    return 0;
}

/* An admin-capable client handle (a producer that never produces). */
static rd_kafka_t *cli_topic_client_new(const cli_topic_args_t *a) {
    static const char *const defaults[] = {"allow.auto.create.topics", "false", NULL};
    rd_kafka_conf_t *conf = cli_conf_new(&a->common, defaults);
    if (!conf) return NULL;
    return cli_kafka_new(RD_KAFKA_PRODUCER, conf);
}

static rd_kafka_AdminOptions_t *cli_topic_admin_options(rd_kafka_t *rk, rd_kafka_admin_op_t op,
                                                        const cli_topic_args_t *a) {
    char err[512];
    rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(rk, op);
    if (!o) {
        cli_errf("cannot create admin options");
        return NULL;
    }
    if (rd_kafka_AdminOptions_set_request_timeout(o, a->common.cm_timeout_ms, err, sizeof err) ||
        rd_kafka_AdminOptions_set_operation_timeout(o, a->common.cm_timeout_ms, err, sizeof err) ||
        (a->dry_run && rd_kafka_AdminOptions_set_validate_only(o, 1, err, sizeof err))) {
        cli_errf("admin options: %s", err);
        rd_kafka_AdminOptions_destroy(o);
        return NULL;
    }
    return o;
}

/* Waits for the admin result event; NULL (error printed) on timeout or a
 * request-level error. */
static rd_kafka_event_t *cli_topic_admin_wait(rd_kafka_t *rk, rd_kafka_queue_t *q, const cli_topic_args_t *a,
                                              const char *what) {
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, a->common.cm_timeout_ms + 5000);
    rd_kafka_resp_err_t err;
    if (!ev) {
        cli_report_kafka_error(rk, what, RD_KAFKA_RESP_ERR__TIMED_OUT);
        return NULL;
    }
    err = rd_kafka_event_error(ev);
    if (err) {
        char last[512];
        rd_kafka_poll(rk, 0);
        cli_last_error(last, sizeof last);
        if (last[0])
            cli_errf("%s: %s (last broker error: %s)", what, rd_kafka_event_error_string(ev), last);
        else
            cli_errf("%s: %s", what, rd_kafka_event_error_string(ev));
        rd_kafka_event_destroy(ev);
        return NULL;
    }
    return ev;
}

/* Prints the per-topic results of CreateTopics/DeleteTopics; returns how
 * many failed. */
static int cli_topic_print_results(const rd_kafka_topic_result_t **res, size_t n, const char *verb,
                                   const cli_topic_args_t *a) {
    int failed = 0;
    if (!a->no_header) printf("TOPIC\tSTATUS\n");
    for (size_t i = 0; i < n; i++) {
        const char *name = rd_kafka_topic_result_name(res[i]);
        rd_kafka_resp_err_t err = rd_kafka_topic_result_error(res[i]);
        const char *msg = rd_kafka_topic_result_error_string(res[i]);
        if (!err) {
            printf("%s\t%s\n", name, a->dry_run ? "OK (validated only)" : "OK");
            continue;
        }
        failed++;
        printf("%s\t%s\n", name, rd_kafka_err2name(err));
        cli_errf("%s topic '%s': %s (%s)", verb, name, msg && *msg ? msg : rd_kafka_err2str(err),
                 rd_kafka_err2name(err));
    }
    fflush(stdout);
    return failed;
}

static int cli_topic_create(const cli_topic_args_t *a) {
    rd_kafka_t *rk = NULL;
    rd_kafka_queue_t *q = NULL;
    rd_kafka_AdminOptions_t *opts = NULL;
    rd_kafka_NewTopic_t **nts = calloc(a->nnames, sizeof *nts);
    rd_kafka_event_t *ev = NULL;
    int rc = CLI_EXIT_FAIL;
    char err[512];

    if (!nts) goto fail;
    for (size_t i = 0; i < a->nnames; i++) {
        nts[i] = rd_kafka_NewTopic_new(a->names[i], a->partitions, a->replicas, err, sizeof err);
        if (!nts[i]) {
            cli_errf("topic '%s': %s", a->names[i], err);
            goto fail;
        }
        for (size_t j = 0; j < a->nconfigs; j++) {
            const char *k, *v;
            char *copy = cli_split_kv(a->configs[j], &k, &v);
            rd_kafka_resp_err_t e = copy && v ? rd_kafka_NewTopic_set_config(nts[i], k, v)
                                              : RD_KAFKA_RESP_ERR__INVALID_ARG;
            free(copy);
            if (e) {
                cli_errf("topic '%s': config '%s': %s", a->names[i], a->configs[j], rd_kafka_err2str(e));
                goto fail;
            }
        }
    }
    if (!(rk = cli_topic_client_new(a))) goto fail;
    q = rd_kafka_queue_new(rk);
    if (!(opts = cli_topic_admin_options(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS, a))) goto fail;
    rd_kafka_CreateTopics(rk, nts, a->nnames, opts, q);
    if (!(ev = cli_topic_admin_wait(rk, q, a, "create topics"))) goto fail;
    {
        const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
        size_t n = 0;
        const rd_kafka_topic_result_t **tr;
        if (!res) {
            cli_errf("create topics: unexpected event %s", rd_kafka_event_name(ev));
            goto fail;
        }
        tr = rd_kafka_CreateTopics_result_topics(res, &n);
        rc = cli_topic_print_results(tr, n, "create", a) ? CLI_EXIT_FAIL : CLI_EXIT_OK;
    }
fail:
    if (ev) rd_kafka_event_destroy(ev);
    if (opts) rd_kafka_AdminOptions_destroy(opts);
    if (q) rd_kafka_queue_destroy(q);
    if (nts) {
        for (size_t i = 0; i < a->nnames; i++)
            if (nts[i]) rd_kafka_NewTopic_destroy(nts[i]);
        free(nts);
    }
    if (rk) rd_kafka_destroy(rk);
    return rc;
}

static int cli_topic_delete(const cli_topic_args_t *a) {
    rd_kafka_t *rk = NULL;
    rd_kafka_queue_t *q = NULL;
    rd_kafka_AdminOptions_t *opts = NULL;
    rd_kafka_DeleteTopic_t **dts = calloc(a->nnames, sizeof *dts);
    rd_kafka_event_t *ev = NULL;
    int rc = CLI_EXIT_FAIL;

    if (!dts) goto fail;
    for (size_t i = 0; i < a->nnames; i++) dts[i] = rd_kafka_DeleteTopic_new(a->names[i]);
    if (!(rk = cli_topic_client_new(a))) goto fail;
    q = rd_kafka_queue_new(rk);
    if (!(opts = cli_topic_admin_options(rk, RD_KAFKA_ADMIN_OP_DELETETOPICS, a))) goto fail;
    rd_kafka_DeleteTopics(rk, dts, a->nnames, opts, q);
    if (!(ev = cli_topic_admin_wait(rk, q, a, "delete topics"))) goto fail;
    {
        const rd_kafka_DeleteTopics_result_t *res = rd_kafka_event_DeleteTopics_result(ev);
        size_t n = 0;
        const rd_kafka_topic_result_t **tr;
        if (!res) {
            cli_errf("delete topics: unexpected event %s", rd_kafka_event_name(ev));
            goto fail;
        }
        tr = rd_kafka_DeleteTopics_result_topics(res, &n);
        rc = cli_topic_print_results(tr, n, "delete", a) ? CLI_EXIT_FAIL : CLI_EXIT_OK;
    }
fail:
    if (ev) rd_kafka_event_destroy(ev);
    if (opts) rd_kafka_AdminOptions_destroy(opts);
    if (q) rd_kafka_queue_destroy(q);
    if (dts) {
        for (size_t i = 0; i < a->nnames; i++)
            if (dts[i]) rd_kafka_DeleteTopic_destroy(dts[i]);
        free(dts);
    }
    if (rk) rd_kafka_destroy(rk);
    return rc;
}

static int cli_topic_cmp_md(const void *x, const void *y) {
    const rd_kafka_metadata_topic_t *a = x, *b = y;
    return strcmp(a->topic, b->topic);
}

static int cli_topic_list(const cli_topic_args_t *a) {
    rd_kafka_t *rk = NULL;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_metadata_topic_t *sorted = NULL;
    rd_kafka_resp_err_t err;
    int rc = CLI_EXIT_FAIL;

    if (!(rk = cli_topic_client_new(a))) goto fail;
    err = rd_kafka_metadata(rk, 1, NULL, &md, a->common.cm_timeout_ms);
    if (err) {
        cli_report_kafka_error(rk, "list topics (metadata request)", err);
        goto fail;
    }
    sorted = calloc((size_t)md->topic_cnt + 1, sizeof *sorted);
    if (!sorted) goto fail;
    memcpy(sorted, md->topics, (size_t)md->topic_cnt * sizeof *sorted);
    qsort(sorted, (size_t)md->topic_cnt, sizeof *sorted, cli_topic_cmp_md);
    if (!a->no_header) printf("TOPIC\tPARTITIONS\tREPLICAS\n");
    for (int i = 0; i < md->topic_cnt; i++) {
        const rd_kafka_metadata_topic_t *t = &sorted[i];
        if (!a->internal && !strncmp(t->topic, "__", 2)) continue;
        if (t->err) {
            cli_warnf("topic '%s': %s", t->topic, rd_kafka_err2str(t->err));
            continue;
        }
        printf("%s\t%d\t%d\n", t->topic, t->partition_cnt, t->partition_cnt ? t->partitions[0].replica_cnt : 0);
    }
    fflush(stdout);
    rc = CLI_EXIT_OK;
fail:
    free(sorted);
    if (md) rd_kafka_metadata_destroy(md);
    if (rk) rd_kafka_destroy(rk);
    return rc;
}

static void cli_topic_print_ids(const int32_t *ids, int n) {
    if (!n) {
        fputs("-", stdout);
        return;
    }
    for (int i = 0; i < n; i++) printf("%s%d", i ? "," : "", (int)ids[i]);
}

static int cli_topic_cmp_part(const void *x, const void *y) {
    const rd_kafka_metadata_partition_t *a = x, *b = y;
    return (a->id > b->id) - (a->id < b->id);
}

/* Describes one topic; returns 0 or -1 (error printed). */
static int cli_topic_describe_one(rd_kafka_t *rk, const char *name, const cli_topic_args_t *a,
                                  bool *header_due) {
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, name, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_metadata_partition_t *parts = NULL;
    int64_t *sizes = NULL;
    const rd_kafka_metadata_topic_t *t;
    rd_kafka_resp_err_t err;
    int rc = -1;
    char what[300];

    snprintf(what, sizeof what, "describe topic '%s' (metadata request)", name);
    if (!rkt) {
        cli_errf("topic '%s': %s", name, rd_kafka_err2str(rd_kafka_last_error()));
        goto fail;
    }
    err = rd_kafka_metadata(rk, 0, rkt, &md, a->common.cm_timeout_ms);
    if (err) {
        cli_report_kafka_error(rk, what, err);
        goto fail;
    }
    if (md->topic_cnt != 1) {
        cli_errf("%s: broker returned %d topics", what, md->topic_cnt);
        goto fail;
    }
    t = &md->topics[0];
    if (t->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
        cli_errf("topic '%s' does not exist", name);
        goto fail;
    }
    if (t->err) {
        cli_errf("topic '%s': %s", name, rd_kafka_err2str(t->err));
        goto fail;
    }
    parts = calloc((size_t)t->partition_cnt + 1, sizeof *parts);
    if (!parts) goto fail;
    memcpy(parts, t->partitions, (size_t)t->partition_cnt * sizeof *parts);
    qsort(parts, (size_t)t->partition_cnt, sizeof *parts, cli_topic_cmp_part);
    /* sizes: DescribeLogDirs on each partition's leader (logdirs.c) */
    sizes = malloc(((size_t)t->partition_cnt + 1) * sizeof *sizes);
    if (!sizes) goto fail;
    for (int i = 0; i < t->partition_cnt; i++) sizes[i] = -1;
    for (int bi = 0; bi < md->broker_cnt; bi++) {
        bool leads = false;
        for (int i = 0; i < t->partition_cnt; i++)
            if (parts[i].leader == md->brokers[bi].id) leads = true;
        if (leads && cli_logdirs_sizes(md->brokers[bi].host, md->brokers[bi].port, name, t->partition_cnt, sizes,
                                       a->common.cm_timeout_ms) != 0)
            cli_warnf("topic '%s': sizes from broker %d unavailable (DescribeLogDirs failed)", name,
                      (int)md->brokers[bi].id);
    }
    if (*header_due) {
        /* only once there is something to show */
        printf("TOPIC\tPARTITION\tLEADER\tREPLICAS\tISR\tLOG_START\tEND\tSIZE\n");
        *header_due = false;
    }
    for (int i = 0; i < t->partition_cnt; i++) {
        const rd_kafka_metadata_partition_t *p = &parts[i];
        int64_t lo = -1, hi = -1;
        if (p->err) cli_warnf("topic '%s' partition %d: %s", name, (int)p->id, rd_kafka_err2str(p->err));
        err = rd_kafka_query_watermark_offsets(rk, name, p->id, &lo, &hi, a->common.cm_timeout_ms);
        if (err) {
            char w[300];
            snprintf(w, sizeof w, "topic '%s' partition %d: offsets", name, (int)p->id);
            cli_report_kafka_error(rk, w, err);
        }
        printf("%s\t%d\t%d\t", name, (int)p->id, (int)p->leader);
        cli_topic_print_ids(p->replicas, p->replica_cnt);
        putchar('\t');
        cli_topic_print_ids(p->isrs, p->isr_cnt);
        if (err)
            printf("\t-\t-");
        else
            printf("\t%lld\t%lld", (long long)lo, (long long)hi);
        if (sizes[p->id] >= 0) printf("\t%lld\n", (long long)sizes[p->id]);
        else printf("\t-\n");
    }
    fflush(stdout);
    rc = 0;
fail:
    free(parts);
    free(sizes);
    if (md) rd_kafka_metadata_destroy(md);
    if (rkt) rd_kafka_topic_destroy(rkt);
    return rc;
}

static int cli_topic_describe(const cli_topic_args_t *a) {
    rd_kafka_t *rk = cli_topic_client_new(a);
    bool header_due = !a->no_header;
    int failed = 0;
    bool *ok = calloc(a->nnames + 1, sizeof *ok);
    if (!rk || !ok) {
        free(ok);
        if (rk) rd_kafka_destroy(rk);
        return CLI_EXIT_FAIL;
    }
    for (size_t i = 0; i < a->nnames; i++) {
        ok[i] = cli_topic_describe_one(rk, a->names[i], a, &header_due) == 0;
        if (!ok[i]) failed++;
    }
    /* the configs table, after an empty line, when there is something to show */
    bool first = true;
    for (size_t i = 0; i < a->nnames; i++) {
        cli_cfg_t *cfgs = NULL;
        size_t n = 0, shown = 0;
        if (!ok[i]) continue;
        if (cli_describe_configs(rk, RD_KAFKA_RESOURCE_TOPIC, a->names[i], a->common.cm_timeout_ms, &cfgs, &n)) {
            failed++;
            continue;
        }
        for (size_t k = 0; k < n; k++)
            shown += a->all_configs || (cfgs[k].source != RD_KAFKA_CONFIG_SOURCE_DEFAULT_CONFIG &&
                                        cfgs[k].source != RD_KAFKA_CONFIG_SOURCE_STATIC_BROKER_CONFIG);
        if (shown) {
            if (first) putchar('\n');
            cli_print_configs(a->names[i], cfgs, n, a->all_configs, first && !a->no_header);
            first = false;
        }
        cli_cfgs_free(cfgs, n);
    }
    free(ok);
    rd_kafka_destroy(rk);
    return failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

static int cli_topic_alter_config(const cli_topic_args_t *a) {
    rd_kafka_t *rk = cli_topic_client_new(a);
    int failed = 0;
    if (!rk) return CLI_EXIT_FAIL;
    for (size_t i = 0; i < a->nnames; i++) {
        if (cli_alter_configs(rk, RD_KAFKA_RESOURCE_TOPIC, a->names[i], RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG,
                              a->configs, a->nconfigs, a->deletes, a->ndeletes, a->common.cm_timeout_ms,
                              a->dry_run) != 0) {
            failed++;
            continue;
        }
        cli_infof("topic '%s': configs %s", a->names[i], a->dry_run ? "validated (not changed)" : "changed");
    }
    rd_kafka_destroy(rk);
    return failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

static int cli_topic_add_partitions(const cli_topic_args_t *a) {
    rd_kafka_t *rk = cli_topic_client_new(a);
    rd_kafka_queue_t *q = NULL;
    rd_kafka_AdminOptions_t *opts = NULL;
    rd_kafka_NewPartitions_t *np = NULL;
    rd_kafka_event_t *ev = NULL;
    int rc = CLI_EXIT_FAIL;
    char err[512];
    if (!rk) return CLI_EXIT_FAIL;
    if (!(np = rd_kafka_NewPartitions_new(a->names[0], (size_t)a->partitions, err, sizeof err))) {
        cli_errf("topic '%s': %s", a->names[0], err);
        goto fail;
    }
    q = rd_kafka_queue_new(rk);
    if (!(opts = cli_topic_admin_options(rk, RD_KAFKA_ADMIN_OP_CREATEPARTITIONS, a))) goto fail;
    rd_kafka_CreatePartitions(rk, &np, 1, opts, q);
    if (!(ev = cli_topic_admin_wait(rk, q, a, "add partitions"))) goto fail;
    {
        const rd_kafka_CreatePartitions_result_t *res = rd_kafka_event_CreatePartitions_result(ev);
        size_t n = 0;
        const rd_kafka_topic_result_t **tr = res ? rd_kafka_CreatePartitions_result_topics(res, &n) : NULL;
        if (!tr) {
            cli_errf("add partitions: unexpected event %s", rd_kafka_event_name(ev));
            goto fail;
        }
        rc = cli_topic_print_results(tr, n, "add partitions to", a) ? CLI_EXIT_FAIL : CLI_EXIT_OK;
    }
fail:
    if (ev) rd_kafka_event_destroy(ev);
    if (opts) rd_kafka_AdminOptions_destroy(opts);
    if (q) rd_kafka_queue_destroy(q);
    if (np) rd_kafka_NewPartitions_destroy(np);
    rd_kafka_destroy(rk);
    return rc;
}

static int cli_topic_delete_records(const cli_topic_args_t *a) {
    rd_kafka_t *rk = cli_topic_client_new(a);
    rd_kafka_queue_t *q = NULL;
    rd_kafka_AdminOptions_t *opts = NULL;
    rd_kafka_DeleteRecords_t *dr = NULL;
    rd_kafka_topic_partition_list_t *tpl = rd_kafka_topic_partition_list_new(1);
    rd_kafka_event_t *ev = NULL;
    int rc = CLI_EXIT_FAIL;
    if (!rk) {
        rd_kafka_topic_partition_list_destroy(tpl);
        return CLI_EXIT_FAIL;
    }
    /* -1 asks for the high watermark (Kafka's DeleteRecords convention) */
    rd_kafka_topic_partition_list_add(tpl, a->names[0], a->partitions)->offset = a->before;
    dr = rd_kafka_DeleteRecords_new(tpl);
    q = rd_kafka_queue_new(rk);
    if (!(opts = cli_topic_admin_options(rk, RD_KAFKA_ADMIN_OP_DELETERECORDS, a))) goto fail;
    rd_kafka_DeleteRecords(rk, &dr, 1, opts, q);
    if (!(ev = cli_topic_admin_wait(rk, q, a, "delete records"))) goto fail;
    {
        const rd_kafka_DeleteRecords_result_t *res = rd_kafka_event_DeleteRecords_result(ev);
        const rd_kafka_topic_partition_list_t *offs = res ? rd_kafka_DeleteRecords_result_offsets(res) : NULL;
        if (!offs || offs->cnt != 1) {
            cli_errf("delete records: unexpected result");
            goto fail;
        }
        const rd_kafka_topic_partition_t *p = &offs->elems[0];
        if (p->err) {
            cli_errf("delete records of '%s' partition %d: %s (%s)", p->topic, (int)p->partition,
                     rd_kafka_err2str(p->err), rd_kafka_err2name(p->err));
            goto fail;
        }
        if (!a->no_header) printf("TOPIC\tPARTITION\tLOG_START\n");
        printf("%s\t%d\t%lld\n", p->topic, (int)p->partition, (long long)p->offset);
        fflush(stdout);
        rc = CLI_EXIT_OK;
    }
fail:
    if (ev) rd_kafka_event_destroy(ev);
    if (opts) rd_kafka_AdminOptions_destroy(opts);
    if (q) rd_kafka_queue_destroy(q);
    if (dr) rd_kafka_DeleteRecords_destroy(dr);
    rd_kafka_topic_partition_list_destroy(tpl);
    rd_kafka_destroy(rk);
    return rc;
}

int cli_topic_main(int argc, char **argv) {
    static const struct {
        const char *name;
        cli_topic_op_t op;
    } subs[] = {
        {"create", CLI_TOPIC_CREATE},     {"list", CLI_TOPIC_LIST},     {"ls", CLI_TOPIC_LIST},
        {"describe", CLI_TOPIC_DESCRIBE}, {"delete", CLI_TOPIC_DELETE}, {"rm", CLI_TOPIC_DELETE},
        {"alter-config", CLI_TOPIC_ALTER_CONFIG}, {"add-partitions", CLI_TOPIC_ADD_PARTITIONS},
        {"delete-records", CLI_TOPIC_DELETE_RECORDS},
    };
    cli_topic_args_t a;
    int rc;
    if (argc < 2) {
        cli_topic_help(stderr);
        return CLI_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        cli_topic_help(stdout);
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < RB_ARRAY_LEN(subs); i++) {
        if (strcmp(argv[1], subs[i].name) != 0) continue;
        rc = cli_topic_parse(subs[i].op, argc - 1, argv + 1, &a);
        if (rc == 0) {
            switch (a.op) {
            case CLI_TOPIC_CREATE: rc = cli_topic_create(&a); break;
            case CLI_TOPIC_LIST: rc = cli_topic_list(&a); break;
            case CLI_TOPIC_DESCRIBE: rc = cli_topic_describe(&a); break;
            case CLI_TOPIC_DELETE: rc = cli_topic_delete(&a); break;
            case CLI_TOPIC_ALTER_CONFIG: rc = cli_topic_alter_config(&a); break;
            case CLI_TOPIC_ADD_PARTITIONS: rc = cli_topic_add_partitions(&a); break;
            case CLI_TOPIC_DELETE_RECORDS: rc = cli_topic_delete_records(&a); break;
            }
        } else if (rc < 0) {
            rc = CLI_EXIT_OK; /* help printed */
        }
        cli_topic_args_free(&a);
        return rc;
    }
    return cli_usage_error("topic", "unknown topic command '%s'", argv[1]);
}
