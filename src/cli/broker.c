/*
 * broker.c — `rill broker config|alter-config`: a broker's settings as
 * DescribeConfigs shows them (value, source, read-only), and changes to the
 * dynamic ones of one node (resource name = node id), through configs.c.
 * The cluster-wide default level (resource name "") is not reachable from
 * here: librdkafka 2.0.2 refuses an empty resource name.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define CLI_OPT_ALL (CLI_OPT_LONG_BASE + 20)
#define CLI_OPT_DELETE_KEY (CLI_OPT_LONG_BASE + 22)
#define CLI_OPT_NODE (CLI_OPT_LONG_BASE + 23)
#define CLI_OPT_NOHDR (CLI_OPT_LONG_BASE + 24)
#define CLI_OPT_DRY (CLI_OPT_LONG_BASE + 25)

typedef struct {
    bool alter;
    cli_common_t common;
    int node;           /* -1: the first broker of the metadata */
    bool all;
    bool no_header;
    bool dry_run;
    char **sets, **dels;
    size_t nsets, ndels;
} cli_broker_args_t;

static const char *cli_broker_usage =
    "Usage: rill broker config [--node ID] [--all] [options]\n"
    "       rill broker alter-config KEY=VALUE... [--delete KEY]... [--node ID] [options]\n"
    "\n"
    "config: the broker's settings, CONFIG<TAB>VALUE<TAB>SOURCE<TAB>READ_ONLY; without --all only\n"
    "the ones set dynamically. alter-config: sets or removes dynamic settings of one node\n"
    "(the other dynamic settings of that node are kept).\n"
    "\n"
    "      --node ID          the broker (default: the first one the metadata names)\n"
    "      --all              config: every setting, static and default ones included\n"
    "      --delete KEY       alter-config: remove the dynamic value KEY (repeatable)\n"
    "      --dry-run          alter-config: ask the broker to validate only\n"
    "      --no-header        omit the header line\n";

static int cli_broker_parse(bool alter, int argc, char **argv, cli_broker_args_t *a) {
    static const struct option longopts[] = {
        CLI_COMMON_LONGOPTS,
        {"node", required_argument, NULL, CLI_OPT_NODE},
        {"all", no_argument, NULL, CLI_OPT_ALL},
        {"delete", required_argument, NULL, CLI_OPT_DELETE_KEY},
        {"dry-run", no_argument, NULL, CLI_OPT_DRY},
        {"no-header", no_argument, NULL, CLI_OPT_NOHDR},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = alter ? "broker alter-config" : "broker config";
    int c;
    memset(a, 0, sizeof *a);
    a->alter = alter;
    a->node = -1;
    cli_common_init(&a->common);
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":" CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
        int rc = cli_common_opt(&a->common, c, optarg);
        if (rc < 0) return cli_usage_hint(cmd);
        if (rc > 0) continue;
        switch (c) {
        case 'h': fputs(cli_broker_usage, stdout); fputs("\n" CLI_COMMON_HELP, stdout); return -1;
        case CLI_OPT_NODE:
            if (cli_parse_int(optarg, 0, INT32_MAX, &a->node) != 0)
                return cli_usage_error(cmd, "--node expects a broker id, got '%s'", optarg);
            break;
        case CLI_OPT_ALL:
            if (alter) goto unknown;
            a->all = true;
            break;
        case CLI_OPT_DELETE_KEY:
            if (!alter) goto unknown;
            cli_strv_push(&a->dels, &a->ndels, optarg);
            break;
        case CLI_OPT_DRY:
            if (!alter) goto unknown;
            a->dry_run = true;
            break;
        case CLI_OPT_NOHDR: a->no_header = true; break;
        default:
        unknown:
            return cli_getopt_error(cmd, c, argv);
        }
    }
    for (int i = optind; i < argc; i++) {
        const char *k, *v;
        char *copy = alter ? cli_split_kv(argv[i], &k, &v) : NULL;
        free(copy);
        if (!copy || !v) return cli_usage_error(cmd, "unexpected argument '%s' (expected KEY=VALUE)", argv[i]);
        cli_strv_push(&a->sets, &a->nsets, argv[i]);
    }
    if (alter && !a->nsets && !a->ndels) return cli_usage_error(cmd, "nothing to change: give KEY=VALUE or --delete KEY");
    return 0;
}

static int cli_broker_run(cli_broker_args_t *a) {
    static const char *const defaults[] = {"allow.auto.create.topics", "false", NULL};
    rd_kafka_conf_t *conf = cli_conf_new(&a->common, defaults);
    rd_kafka_t *rk = conf ? cli_kafka_new(RD_KAFKA_PRODUCER, conf) : NULL;
    int rc = CLI_EXIT_FAIL;
    char name[24];
    if (!rk) return CLI_EXIT_FAIL;
    if (a->node < 0) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, NULL, &md, a->common.cm_timeout_ms);
        if (err || md->broker_cnt < 1) {
            cli_report_kafka_error(rk, "find a broker (metadata request)", err ? err : RD_KAFKA_RESP_ERR__TRANSPORT);
            if (md) rd_kafka_metadata_destroy(md);
            goto done;
        }
        a->node = md->brokers[0].id;
        rd_kafka_metadata_destroy(md);
    }
    snprintf(name, sizeof name, "%d", a->node);
    if (a->alter) {
        if (cli_alter_configs(rk, RD_KAFKA_RESOURCE_BROKER, name, RD_KAFKA_CONFIG_SOURCE_DYNAMIC_BROKER_CONFIG,
                              a->sets, a->nsets, a->dels, a->ndels, a->common.cm_timeout_ms, a->dry_run) == 0) {
            cli_infof("broker %s: configs %s", name, a->dry_run ? "validated (not changed)" : "changed");
            rc = CLI_EXIT_OK;
        }
    } else {
        cli_cfg_t *v = NULL;
        size_t n = 0;
        if (cli_describe_configs(rk, RD_KAFKA_RESOURCE_BROKER, name, a->common.cm_timeout_ms, &v, &n) == 0) {
            if (!a->no_header) printf("CONFIG\tVALUE\tSOURCE\tREAD_ONLY\n");
            cli_print_configs(NULL, v, n, a->all, false);
            cli_cfgs_free(v, n);
            rc = CLI_EXIT_OK;
        }
    }
done:
    rd_kafka_destroy(rk);
    return rc;
}

int cli_broker_main(int argc, char **argv) {
    cli_broker_args_t a;
    bool alter;
    int rc;
    if (argc < 2) {
        fputs(cli_broker_usage, stderr);
        return CLI_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(cli_broker_usage, stdout);
        return CLI_EXIT_OK;
    }
    if (!strcmp(argv[1], "config")) alter = false;
    else if (!strcmp(argv[1], "alter-config")) alter = true;
    else return cli_usage_error("broker", "unknown broker command '%s'", argv[1]);
    rc = cli_broker_parse(alter, argc - 1, argv + 1, &a);
    if (rc == 0) rc = cli_broker_run(&a);
    else if (rc < 0) rc = CLI_EXIT_OK;
    cli_common_free(&a.common);
    cli_strv_free(&a.sets, &a.nsets);
    cli_strv_free(&a.dels, &a.ndels);
    return rc;
}
