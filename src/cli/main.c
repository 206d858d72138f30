/*
 * main.c — entry point of the `rill` tool: dispatches the first word of the
 * command line to a command (topic, produce, consume, group, perf) and prints the
 * top-level help.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} cli_cmd_t;

static const cli_cmd_t cli_cmds[] = {
    {"topic", cli_topic_main, "create, list, describe, delete topics; alter configs, add partitions, delete records"},
    {"broker", cli_broker_main, "show a broker's configs and change its dynamic ones"},
    {"produce", cli_produce_main, "produce one record per stdin line"},
    {"consume", cli_consume_main, "print records of a topic (partition assignment, no group)"},
    {"group", cli_group_main, "list, describe (members, offsets, lag), reset offsets of and delete groups"},
    {"txn", cli_txn_main, "list transactions and describe one (ListTransactions / DescribeTransactions)"},
    {"perf", cli_perf_main, "throughput and latency tests: produce, consume, e2e"},
};

static void cli_main_help(FILE *out) {
    fprintf(out,
            "rill — command-line client for Rill and any Kafka-protocol broker\n"
            "\n"
            "Usage: rill <command> [arguments] [options]\n"
            "\n"
            "Commands:\n");
    for (size_t i = 0; i < RB_ARRAY_LEN(cli_cmds); i++)
        fprintf(out, "  %-10s %s\n", cli_cmds[i].name, cli_cmds[i].summary);
    fprintf(out,
            "  %-10s %s\n"
            "  %-10s %s\n"
            "\n"
            "Examples:\n"
            "  rill topic create orders -p 6 -c retention.ms=604800000\n"
            "  rill topic describe orders\n"
            "  printf 'a\\nb\\n' | rill produce orders -k user1\n"
            "  rill consume orders -o beginning -e -f '%%p %%o %%k %%v'\n"
            "  rill group describe order-processor\n"
            "  rill perf produce bench --num-records 1000000 --record-size 100\n"
            "\n"
            "Every command takes -b/--brokers HOST:PORT (default $RILL_BROKERS or %s)\n"
            "and -X KEY=VALUE for any librdkafka property. 'rill <command> --help' has the rest.\n"
            "Exit codes: 0 success, 1 operation failed, 2 bad command line.\n",
            "help", "this help ('rill help <command>' for a command's help)", "version",
            "print the versions of rill and librdkafka", CLI_DEFAULT_BROKERS);
}

int main(int argc, char **argv) {
    const char *cmd;
    if (argc < 2) {
        cli_main_help(stderr);
        return CLI_EXIT_USAGE;
    }
    cmd = argv[1];
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        if (argc > 2 && strcmp(cmd, "help") == 0) {
            /* rill help <command> [sub]: the command's own --help */
            char *hargv[4] = {argv[2], NULL, NULL, NULL};
            int n = 1;
            if (argc > 3) hargv[n++] = argv[3];
            hargv[n++] = (char *)"--help";
            for (size_t i = 0; i < RB_ARRAY_LEN(cli_cmds); i++)
                if (!strcmp(argv[2], cli_cmds[i].name)) return cli_cmds[i].run(n, hargv);
            return cli_usage_error("help", "unknown command '%s'", argv[2]);
        }
        cli_main_help(stdout);
        return CLI_EXIT_OK;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("rill 0.1 (librdkafka %s)\n", rd_kafka_version_str());
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < RB_ARRAY_LEN(cli_cmds); i++) {
        if (!strcmp(cmd, cli_cmds[i].name)) {
            cli_signals_install();
            return cli_cmds[i].run(argc - 1, argv + 1);
        }
    }
    cli_errf("unknown command '%s'", cmd);
    fprintf(stderr, "Run 'rill help' for the list of commands.\n");
    return CLI_EXIT_USAGE;
}
