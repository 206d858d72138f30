/*
 * txn.c — `rill txn list` and `rill txn describe ID`: the transactions a
 * broker coordinates, from ListTransactions (key 66) and DescribeTransactions
 * (key 65). librdkafka 2.0.2 has neither Admin call, so both are spoken with
 * Rill's codec over cli_kp_call (logdirs.c): `list` asks the first bootstrap
 * broker (a single node coordinates every id; a multi-broker Kafka cluster
 * would need the question asked of each broker), `describe` first asks
 * FindCoordinator (key type 1) for the id's coordinator.
 *
 * Output (stdout, tab-separated): list: TRANSACTIONAL_ID PRODUCER_ID STATE;
 * describe: one "field<TAB>value" line per field, then one
 * "partition<TAB>topic<TAB>N" line per partition of the transaction.
 */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

static void cli_txn_help(FILE *out) {
    fprintf(out,
            "Usage: rill txn list [--state STATE]... [options]\n"
            "       rill txn describe TRANSACTIONAL_ID [options]\n"
            "\n"
            "list      transactional ids known to the coordinator: id, producer id, state\n"
            "          (--state filters: Empty, Ongoing, PrepareCommit, PrepareAbort,\n"
            "          CompleteCommit, CompleteAbort)\n"
            "describe  one id: state, producer id and epoch, timeout, start time, partitions\n"
            "\n" CLI_COMMON_HELP);
}

/* host:port of the first bootstrap broker, into host (cap bytes). */
static int cli_txn_bootstrap(const char *brokers, char *host, size_t cap, int *port) {
    const char *end = strchr(brokers, ',');
    size_t n = end ? (size_t)(end - brokers) : strlen(brokers);
    const char *colon = memrchr(brokers, ':', n);
    if (!colon || (size_t)(colon - brokers) >= cap) return -1;
    memcpy(host, brokers, (size_t)(colon - brokers));
    host[colon - brokers] = 0;
    char ps[16];
    size_t pl = n - (size_t)(colon - brokers) - 1;
    if (pl == 0 || pl >= sizeof ps) return -1;
    memcpy(ps, colon + 1, pl);
    ps[pl] = 0;
    return cli_parse_int(ps, 1, 65535, port);
}

/* The first bootstrap broker and a fresh arena for the answers; 0 or
 * CLI_EXIT_USAGE (printed). */
static int cli_txn_begin(const cli_common_t *cm, char *host, size_t cap, int *port, rb_arena_t *ar) {
    if (cli_txn_bootstrap(cm->cm_brokers, host, cap, port)) {
        cli_errf("cannot parse the broker address '%s'", cm->cm_brokers);
        return CLI_EXIT_USAGE;
    }
    rb_arena_init(ar, 64u << 20);
    return 0;
}

static int cli_txn_list(const cli_common_t *cm, char **states, size_t nstates) {
    char host[256];
    int port;
    rb_arena_t ar;
    if (cli_txn_begin(cm, host, sizeof host, &port, &ar)) return CLI_EXIT_USAGE;
    kp_list_transactions_req_t req;
    kp_init_defaults(&kp_list_transactions_req_desc, &req);
    kp_str_t *sf = nstates ? calloc(nstates, sizeof(*sf)) : NULL;
    for (size_t i = 0; i < nstates; i++) {
        sf[i].p = states[i];
        sf[i].len = (int32_t)strlen(states[i]);
    }
    req.state_filters.n = (int32_t)nstates;
    req.state_filters.v = sf;
    kp_list_transactions_resp_t resp;
    int rc = cli_kp_call(host, port, KP_API_LIST_TRANSACTIONS, 0, &req, &resp, &ar, cm->cm_timeout_ms);
    free(sf);
    int out = CLI_EXIT_OK;
    if (rc) {
        cli_errf("ListTransactions to %s:%d failed (no answer or not understood)", host, port);
        out = CLI_EXIT_FAIL;
    } else if (resp.error_code) {
        cli_errf("ListTransactions: %s", rb_err_name(resp.error_code));
        out = CLI_EXIT_FAIL;
    } else {
        for (int32_t i = 0; i < resp.unknown_state_filters.n; i++)
            cli_warnf("unknown state '%.*s'", (int)resp.unknown_state_filters.v[i].len,
                      resp.unknown_state_filters.v[i].p);
        for (int32_t i = 0; i < resp.transaction_states.n; i++) {
            kp_list_transactions_resp_transaction_state_t *t = &resp.transaction_states.v[i];
            printf("%.*s\t%lld\t%.*s\n", (int)t->transactional_id.len, t->transactional_id.p,
                   (long long)t->producer_id, (int)t->transaction_state.len, t->transaction_state.p);
        }
    }
    rb_arena_free(&ar);
    return out;
}

static int cli_txn_describe(const cli_common_t *cm, const char *id) {
    char host[256];
    int port;
    rb_arena_t ar;
    if (cli_txn_begin(cm, host, sizeof host, &port, &ar)) return CLI_EXIT_USAGE;
    int out = CLI_EXIT_FAIL;
    kp_find_coordinator_req_t fq;
    kp_init_defaults(&kp_find_coordinator_req_desc, &fq);
    fq.key.p = id;
    fq.key.len = (int32_t)strlen(id);
    fq.key_type = 1;
    kp_find_coordinator_resp_t fr;
    if (cli_kp_call(host, port, KP_API_FIND_COORDINATOR, 1, &fq, &fr, &ar, cm->cm_timeout_ms)) {
        cli_errf("FindCoordinator to %s:%d failed (no answer or not understood)", host, port);
        goto done;
    }
    if (fr.error_code) {
        cli_errf("no transaction coordinator for '%s': %s", id, rb_err_name(fr.error_code));
        goto done;
    }
    char chost[256];
    snprintf(chost, sizeof chost, "%.*s", (int)fr.host.len, fr.host.p);
    kp_describe_transactions_req_t dq;
    kp_init_defaults(&kp_describe_transactions_req_desc, &dq);
    kp_str_t ids = {id, (int32_t)strlen(id)};
    dq.transactional_ids.n = 1;
    dq.transactional_ids.v = &ids;
    kp_describe_transactions_resp_t dr;
    if (cli_kp_call(chost, fr.port, KP_API_DESCRIBE_TRANSACTIONS, 0, &dq, &dr, &ar, cm->cm_timeout_ms) ||
        dr.transaction_states.n != 1) {
        cli_errf("DescribeTransactions to %s:%d failed (no answer or not understood)", chost, fr.port);
        goto done;
    }
    kp_describe_transactions_resp_transaction_state_t *t = &dr.transaction_states.v[0];
    if (t->error_code) {
        cli_errf("transactional id '%s': %s", id, rb_err_name(t->error_code));
        goto done;
    }
    printf("transactional.id\t%s\n", id);
    printf("state\t%.*s\n", (int)t->transaction_state.len, t->transaction_state.p);
    printf("producer.id\t%lld\n", (long long)t->producer_id);
    printf("producer.epoch\t%d\n", t->producer_epoch);
    printf("transaction.timeout.ms\t%d\n", t->transaction_timeout_ms);
    printf("start.time.ms\t%lld\n", (long long)t->transaction_start_time_ms);
    for (int32_t i = 0; i < t->topics.n; i++)
        for (int32_t k = 0; k < t->topics.v[i].partitions.n; k++)
            printf("partition\t%.*s\t%d\n", (int)t->topics.v[i].topic.len, t->topics.v[i].topic.p,
                   t->topics.v[i].partitions.v[k]);
    out = CLI_EXIT_OK;
done:
    rb_arena_free(&ar);
    return out;
}

int cli_txn_main(int argc, char **argv) {
    if (argc < 2) {
        cli_txn_help(stderr);
        return CLI_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        cli_txn_help(stdout);
        return CLI_EXIT_OK;
    }
    bool list = !strcmp(argv[1], "list") || !strcmp(argv[1], "ls");
    if (!list && strcmp(argv[1], "describe") != 0) return cli_usage_error("txn", "unknown txn command '%s'", argv[1]);
    static const struct option longopts[] = {CLI_COMMON_LONGOPTS, {"state", required_argument, NULL, 's'},
                                             {NULL, 0, NULL, 0}};
    cli_common_t cm;
    cli_common_init(&cm);
    char **states = NULL;
    size_t nstates = 0;
    int rc = CLI_EXIT_OK;
    int c;
    optind = 1;
    argc--;
    argv++;
    while ((c = getopt_long(argc, argv, ":" CLI_COMMON_SHORTOPTS "s:", longopts, NULL)) != -1) {
        if (c == 'h') {
            cli_txn_help(stdout);
            goto out;
        }
        if (c == 's' && list) {
            cli_strv_push(&states, &nstates, optarg);
            continue;
        }
        int r = cli_common_opt(&cm, c, optarg);
        if (r == 1) continue;
        rc = r < 0 ? CLI_EXIT_USAGE : cli_getopt_error("txn", c, argv);
        goto out;
    }
    if (list) {
        if (optind != argc) {
            rc = cli_usage_error("txn", "txn list takes no arguments");
            goto out;
        }
        rc = cli_txn_list(&cm, states, nstates);
    } else {
        if (optind + 1 != argc) {
            rc = cli_usage_error("txn", "txn describe takes one TRANSACTIONAL_ID");
            goto out;
        }
        rc = cli_txn_describe(&cm, argv[optind]);
    }
out:
    cli_strv_free(&states, &nstates);
    cli_common_free(&cm);
    return rc;
}
