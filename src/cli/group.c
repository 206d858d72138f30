/*
 * group.c — `rill group list|describe|reset-offsets|delete`: consumer group
 * administration through librdkafka 2.0's Admin API (ListConsumerGroups,
 * DescribeConsumerGroups, ListConsumerGroupOffsets, AlterConsumerGroupOffsets,
 * DeleteGroups) plus ListOffsets (watermarks, offsets for times). librdkafka
 * decodes the members' assignments from the consumer protocol. Tables go to
 * stdout, tab-separated, with a header line unless --no-header.
 *
 * reset-offsets follows kafka-consumer-groups: it works only on a group with
 * no active members (Empty, or unknown/Dead: it then creates the offsets),
 * prints the plan and changes nothing unless --execute is given.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"

#define CLI_OPT_NO_HEADER (CLI_OPT_LONG_BASE + 20)
#define CLI_OPT_TOPIC (CLI_OPT_LONG_BASE + 21)
#define CLI_OPT_TO_EARLIEST (CLI_OPT_LONG_BASE + 22)
#define CLI_OPT_TO_LATEST (CLI_OPT_LONG_BASE + 23)
#define CLI_OPT_TO_OFFSET (CLI_OPT_LONG_BASE + 24)
#define CLI_OPT_TO_DATETIME (CLI_OPT_LONG_BASE + 25)
#define CLI_OPT_SHIFT_BY (CLI_OPT_LONG_BASE + 26)
#define CLI_OPT_EXECUTE (CLI_OPT_LONG_BASE + 27)
#define CLI_OPT_DRY_RUN (CLI_OPT_LONG_BASE + 28)

typedef enum { CLI_GROUP_LIST, CLI_GROUP_DESCRIBE, CLI_GROUP_RESET, CLI_GROUP_DELETE } cli_group_op_t;
typedef enum { CLI_RESET_NONE, CLI_RESET_EARLIEST, CLI_RESET_LATEST, CLI_RESET_OFFSET, CLI_RESET_DATETIME,
               CLI_RESET_SHIFT } cli_reset_kind_t;

typedef struct {
    cli_group_op_t op;
    cli_common_t common;
    char **names; /* groups named on the command line */
    size_t nnames;
    bool no_header;
    const char *topic;      /* reset: --topic */
    cli_reset_kind_t reset; /* reset: which target */
    int64_t value;          /* --to-offset N, --shift-by N, --to-datetime (ms since the epoch) */
    bool execute;           /* reset: apply (default: dry run) */
} cli_group_args_t;

static const char *cli_group_usage[] = {
    [CLI_GROUP_LIST] = "Usage: rill group list [options]\n"
                       "\n"
                       "Lists consumer groups (ListGroups): GROUP<TAB>STATE<TAB>TYPE (consumer or simple).\n"
                       "\n"
                       "      --no-header        omit the header line\n",
    [CLI_GROUP_DESCRIBE] =
        "Usage: rill group describe GROUP... [options]\n"
        "\n"
        "For each group, a summary line, its members, then one line per partition with a\n"
        "committed offset or an owner, tab-separated (tables separated by an empty line):\n"
        "  GROUP STATE ASSIGNOR MEMBERS COORDINATOR\n"
        "  GROUP MEMBER INSTANCE CLIENT_ID HOST ASSIGNMENT\n"
        "  GROUP TOPIC PARTITION COMMITTED END LAG MEMBER CLIENT_ID HOST\n"
        "END is the log end offset (high watermark); LAG = END - COMMITTED; \"-\" where unknown.\n"
        "\n"
        "      --no-header        omit the header lines\n",
    [CLI_GROUP_RESET] =
        "Usage: rill group reset-offsets GROUP --topic TOPIC <target> [--execute] [options]\n"
        "\n"
        "Sets the group's committed offsets for every partition of TOPIC. The group must\n"
        "have no active members. Without --execute only the plan is printed (dry run):\n"
        "  GROUP TOPIC PARTITION CURRENT NEW\n"
        "Targets (exactly one):\n"
        "      --to-earliest      the log start offset\n"
        "      --to-latest        the log end offset\n"
        "      --to-offset N      offset N (clamped to the log start/end)\n"
        "      --to-datetime ISO  the first offset with a timestamp >= ISO, e.g. 2026-11-22T05:30:00Z,\n"
        "                         2026-11-22T05:30:00.250+01:00 (no zone: UTC); the end if none\n"
        "      --shift-by N       the committed offset plus N (negative: back), clamped\n"
        "      --execute          apply the plan\n"
        "      --no-header        omit the header line\n",
    [CLI_GROUP_DELETE] = "Usage: rill group delete GROUP... [options]\n"
                         "\n"
                         "Deletes groups and their committed offsets (DeleteGroups); a group with active\n"
                         "members cannot be deleted. Prints GROUP<TAB>STATUS; exits 1 if any failed.\n"
                         "\n"
                         "      --no-header        omit the header line\n",
};

static const char *cli_group_names[] = {
    [CLI_GROUP_LIST] = "group list",
    [CLI_GROUP_DESCRIBE] = "group describe",
    [CLI_GROUP_RESET] = "group reset-offsets",
    [CLI_GROUP_DELETE] = "group delete",
};

static void cli_group_help(FILE *out) {
    fprintf(out, "Usage: rill group <list|describe|reset-offsets|delete> [arguments] [options]\n"
                 "\n"
                 "  list                                         list consumer groups and their states\n"
                 "  describe GROUP...                            members, assignments, offsets and lag\n"
                 "  reset-offsets GROUP --topic T <target>       plan (or --execute) new committed offsets\n"
                 "  delete GROUP...                              delete groups and their offsets\n"
                 "\n" CLI_COMMON_HELP);
}

static void cli_group_args_free(cli_group_args_t *a) {
    cli_common_free(&a->common);
    cli_strv_free(&a->names, &a->nnames);
}

/* ISO-8601 date and time to ms since the epoch: YYYY-MM-DDTHH:MM:SS[.fff]
 * followed by Z, +HH:MM, -HH:MM or nothing (UTC). 0 or -1. */
static int cli_parse_datetime(const char *s, int64_t *out) {
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p) return -1;
    int64_t ms = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 3) ms = ms * 10 + (*p - '0');
        if (!digits) return -1;
        for (; digits < 3; digits++) ms *= 10;
    }
    int64_t zone_s = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int hh, mm;
        char sign = *p;
        if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2 || hh > 23 || mm > 59) return -1;
        zone_s = (int64_t)(hh * 3600 + mm * 60) * (sign == '+' ? 1 : -1);
        p += 6;
    }
    if (*p) return -1;
    time_t t = timegm(&tm);
    *out = ((int64_t)t - zone_s) * 1000 + ms;
    return 0;
}

/* Returns -1 when help was printed (exit 0), CLI_EXIT_USAGE on errors, 0 ok. */
static int cli_group_parse(cli_group_op_t op, int argc, char **argv, cli_group_args_t *a) {
    static const struct option longopts[] = {
        CLI_COMMON_LONGOPTS,
        {"no-header", no_argument, NULL, CLI_OPT_NO_HEADER},
        {"topic", required_argument, NULL, CLI_OPT_TOPIC},
        {"to-earliest", no_argument, NULL, CLI_OPT_TO_EARLIEST},
        {"to-latest", no_argument, NULL, CLI_OPT_TO_LATEST},
        {"to-offset", required_argument, NULL, CLI_OPT_TO_OFFSET},
        {"to-datetime", required_argument, NULL, CLI_OPT_TO_DATETIME},
        {"shift-by", required_argument, NULL, CLI_OPT_SHIFT_BY},
        {"execute", no_argument, NULL, CLI_OPT_EXECUTE},
        {"dry-run", no_argument, NULL, CLI_OPT_DRY_RUN},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = cli_group_names[op];
    int c;
    memset(a, 0, sizeof *a);
    a->op = op;
    cli_common_init(&a->common);
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":" CLI_COMMON_SHORTOPTS "t:", longopts, NULL)) != -1) {
        int rc = cli_common_opt(&a->common, c, optarg);
        if (rc < 0) return cli_usage_hint(cmd);
        if (rc > 0) continue;
        cli_reset_kind_t kind = CLI_RESET_NONE;
        switch (c) {
        case 'h':
            fputs(cli_group_usage[op], stdout);
            fputs("\n" CLI_COMMON_HELP, stdout);
            return -1;
        case CLI_OPT_NO_HEADER:
            a->no_header = true;
            break;
        case 't':
        case CLI_OPT_TOPIC:
            if (op != CLI_GROUP_RESET) goto unknown;
            if (!optarg[0]) return cli_usage_error(cmd, "empty topic name");
            a->topic = optarg;
            break;
        case CLI_OPT_TO_EARLIEST: kind = CLI_RESET_EARLIEST; goto target;
        case CLI_OPT_TO_LATEST: kind = CLI_RESET_LATEST; goto target;
        case CLI_OPT_TO_OFFSET:
            kind = CLI_RESET_OFFSET;
            if (op == CLI_GROUP_RESET && cli_parse_i64(optarg, 0, INT64_MAX, &a->value) != 0)
                return cli_usage_error(cmd, "--to-offset expects an offset >= 0, got '%s'", optarg);
            goto target;
        case CLI_OPT_SHIFT_BY:
            kind = CLI_RESET_SHIFT;
            if (op == CLI_GROUP_RESET && cli_parse_i64(optarg, INT64_MIN / 2, INT64_MAX / 2, &a->value) != 0)
                return cli_usage_error(cmd, "--shift-by expects an integer, got '%s'", optarg);
            goto target;
        case CLI_OPT_TO_DATETIME:
            kind = CLI_RESET_DATETIME;
            if (op == CLI_GROUP_RESET && cli_parse_datetime(optarg, &a->value) != 0)
                return cli_usage_error(cmd, "--to-datetime expects YYYY-MM-DDTHH:MM:SS[.fff][Z|+HH:MM], got '%s'",
                                       optarg);
        target:
            if (op != CLI_GROUP_RESET) goto unknown;
            if (a->reset != CLI_RESET_NONE) return cli_usage_error(cmd, "give exactly one reset target");
            a->reset = kind;
            break;
        case CLI_OPT_EXECUTE:
            if (op != CLI_GROUP_RESET) goto unknown;
            a->execute = true;
            break;
        case CLI_OPT_DRY_RUN:
            if (op != CLI_GROUP_RESET) goto unknown;
            a->execute = false;
            break;
        default:
        unknown:
            return cli_getopt_error(cmd, c, argv);
        }
    }
    for (int i = optind; i < argc; i++) cli_strv_push(&a->names, &a->nnames, argv[i]);
    if (op == CLI_GROUP_LIST && a->nnames) return cli_usage_error(cmd, "unexpected argument '%s'", a->names[0]);
    if (op != CLI_GROUP_LIST && !a->nnames) return cli_usage_error(cmd, "missing group name");
    if (op == CLI_GROUP_RESET) {
        if (a->nnames > 1) return cli_usage_error(cmd, "reset-offsets takes one group");
        if (!a->topic) return cli_usage_error(cmd, "missing --topic");
        if (a->reset == CLI_RESET_NONE)
            return cli_usage_error(cmd, "missing a target: --to-earliest, --to-latest, --to-offset, "
                                        "--to-datetime or --shift-by");
    }
    for (size_t i = 0; i < a->nnames; i++)
        if (!a->names[i][0]) return cli_usage_error(cmd, "empty group name");
    return 0;
}

/* ---- admin plumbing ------------------------------------------------------------------------------ */

static rd_kafka_t *cli_group_client_new(const cli_group_args_t *a) {
    static const char *const defaults[] = {"allow.auto.create.topics", "false", NULL};
    rd_kafka_conf_t *conf = cli_conf_new(&a->common, defaults);
    if (!conf) return NULL;
    return cli_kafka_new(RD_KAFKA_PRODUCER, conf);
}

/* One admin call with this command's timeout (common.c). */
static rd_kafka_event_t *cli_group_admin(rd_kafka_t *rk, rd_kafka_admin_op_t op, const cli_group_args_t *a,
                                         const char *what, cli_admin_start_fn start, void *arg) {
    return cli_admin_call(rk, op, a->common.cm_timeout_ms, false, what, start, arg);
}

static void cli_group_start_list(rd_kafka_t *rk, rd_kafka_AdminOptions_t *o, rd_kafka_queue_t *q, void *arg) {
    (void)arg;
    rd_kafka_ListConsumerGroups(rk, o, q);
}

typedef struct {
    const char **groups;
    size_t n;
} cli_group_names_t;

static void cli_group_start_describe(rd_kafka_t *rk, rd_kafka_AdminOptions_t *o, rd_kafka_queue_t *q, void *arg) {
    cli_group_names_t *g = arg;
    rd_kafka_DescribeConsumerGroups(rk, g->groups, g->n, o, q);
}

static void cli_group_start_offsets(rd_kafka_t *rk, rd_kafka_AdminOptions_t *o, rd_kafka_queue_t *q, void *arg) {
    rd_kafka_ListConsumerGroupOffsets_t *l = rd_kafka_ListConsumerGroupOffsets_new((const char *)arg, NULL);
    rd_kafka_ListConsumerGroupOffsets(rk, &l, 1, o, q);
    rd_kafka_ListConsumerGroupOffsets_destroy(l);
}

typedef struct {
    const char *group;
    const rd_kafka_topic_partition_list_t *parts;
} cli_group_alter_t;

static void cli_group_start_alter(rd_kafka_t *rk, rd_kafka_AdminOptions_t *o, rd_kafka_queue_t *q, void *arg) {
    cli_group_alter_t *al = arg;
    rd_kafka_AlterConsumerGroupOffsets_t *x = rd_kafka_AlterConsumerGroupOffsets_new(al->group, al->parts);
    rd_kafka_AlterConsumerGroupOffsets(rk, &x, 1, o, q);
    rd_kafka_AlterConsumerGroupOffsets_destroy(x);
}

static void cli_group_start_delete(rd_kafka_t *rk, rd_kafka_AdminOptions_t *o, rd_kafka_queue_t *q, void *arg) {
    cli_group_names_t *g = arg;
    rd_kafka_DeleteGroup_t **d = calloc(g->n + 1, sizeof *d);
    if (!d) abort();
    for (size_t i = 0; i < g->n; i++) d[i] = rd_kafka_DeleteGroup_new(g->groups[i]);
    rd_kafka_DeleteGroups(rk, d, g->n, o, q);
    rd_kafka_DeleteGroup_destroy_array(d, g->n);
    free(d);
}

/* The group's committed offsets (a copy the caller destroys), or NULL
 * (error printed). */
static rd_kafka_topic_partition_list_t *cli_group_committed(rd_kafka_t *rk, const char *group,
                                                            const cli_group_args_t *a) {
    char what[300];
    snprintf(what, sizeof what, "offsets of group '%s'", group);
    rd_kafka_event_t *ev = cli_group_admin(rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS, a, what,
                                           cli_group_start_offsets, (void *)group);
    if (!ev) return NULL;
    rd_kafka_topic_partition_list_t *out = NULL;
    const rd_kafka_ListConsumerGroupOffsets_result_t *res = rd_kafka_event_ListConsumerGroupOffsets_result(ev);
    size_t n = 0;
    const rd_kafka_group_result_t **gr = res ? rd_kafka_ListConsumerGroupOffsets_result_groups(res, &n) : NULL;
    if (n != 1) {
        cli_errf("%s: unexpected result", what);
    } else if (rd_kafka_group_result_error(gr[0])) {
        cli_errf("%s: %s", what, rd_kafka_error_string(rd_kafka_group_result_error(gr[0])));
    } else {
        const rd_kafka_topic_partition_list_t *p = rd_kafka_group_result_partitions(gr[0]);
        out = p ? rd_kafka_topic_partition_list_copy(p) : rd_kafka_topic_partition_list_new(0);
    }
    rd_kafka_event_destroy(ev);
    return out;
}

/* ---- list ------------------------------------------------------------------------------------------ */

static int cli_group_list(const cli_group_args_t *a) {
    rd_kafka_t *rk = cli_group_client_new(a);
    if (!rk) return CLI_EXIT_FAIL;
    int rc = CLI_EXIT_FAIL;
    rd_kafka_event_t *ev = cli_group_admin(rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS, a, "list groups",
                                           cli_group_start_list, NULL);
    if (!ev) goto out;
    const rd_kafka_ListConsumerGroups_result_t *res = rd_kafka_event_ListConsumerGroups_result(ev);
    size_t n = 0, ne = 0;
    const rd_kafka_ConsumerGroupListing_t **gl = rd_kafka_ListConsumerGroups_result_valid(res, &n);
    const rd_kafka_error_t **errs = rd_kafka_ListConsumerGroups_result_errors(res, &ne);
    const rd_kafka_ConsumerGroupListing_t **sorted = calloc(n + 1, sizeof *sorted);
    if (!sorted) abort();
    if (n) memcpy(sorted, gl, n * sizeof *sorted); /* gl is NULL when there are no groups */
    /* group_id is the first thing we compare: sort by it */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(rd_kafka_ConsumerGroupListing_group_id(sorted[j - 1]),
                                           rd_kafka_ConsumerGroupListing_group_id(sorted[j])) > 0;
             j--) {
            const rd_kafka_ConsumerGroupListing_t *t = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = t;
        }
    if (!a->no_header) printf("GROUP\tSTATE\tTYPE\n");
    for (size_t i = 0; i < n; i++)
        printf("%s\t%s\t%s\n", rd_kafka_ConsumerGroupListing_group_id(sorted[i]),
               rd_kafka_consumer_group_state_name(rd_kafka_ConsumerGroupListing_state(sorted[i])),
               rd_kafka_ConsumerGroupListing_is_simple_consumer_group(sorted[i]) ? "simple" : "consumer");
    fflush(stdout);
    free(sorted);
    for (size_t i = 0; i < ne; i++) cli_errf("list groups: %s", rd_kafka_error_string(errs[i]));
    rc = ne ? CLI_EXIT_FAIL : CLI_EXIT_OK;
    rd_kafka_event_destroy(ev);
out:
    rd_kafka_destroy(rk);
    return rc;
}

/* ---- describe -------------------------------------------------------------------------------------- */

typedef struct {
    char *topic;
    int32_t partition;
    int64_t committed; /* -1: none */
    const rd_kafka_MemberDescription_t *owner;
} cli_group_row_t;

static int cli_group_cmp_row(const void *x, const void *y) {
    const cli_group_row_t *a = x, *b = y;
    int c = strcmp(a->topic, b->topic);
    return c ? c : (a->partition > b->partition) - (a->partition < b->partition);
}

static cli_group_row_t *cli_group_row(cli_group_row_t **rows, size_t *n, size_t *cap, const char *topic,
                                      int32_t partition) {
    for (size_t i = 0; i < *n; i++)
        if ((*rows)[i].partition == partition && !strcmp((*rows)[i].topic, topic)) return &(*rows)[i];
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *rows = realloc(*rows, *cap * sizeof **rows);
        if (!*rows) abort();
    }
    cli_group_row_t *r = &(*rows)[(*n)++];
    r->topic = strdup(topic);
    if (!r->topic) abort();
    r->partition = partition;
    r->committed = -1;
    r->owner = NULL;
    return r;
}

static const char *cli_dash(const char *s) { return s && *s ? s : "-"; }

static int cli_group_describe_one(rd_kafka_t *rk, const rd_kafka_ConsumerGroupDescription_t *d,
                                  const cli_group_args_t *a, bool *header_due) {
    const char *group = rd_kafka_ConsumerGroupDescription_group_id(d);
    const rd_kafka_error_t *e = rd_kafka_ConsumerGroupDescription_error(d);
    if (e) {
        cli_errf("describe group '%s': %s", group, rd_kafka_error_string(e));
        return -1;
    }
    rd_kafka_consumer_group_state_t st = rd_kafka_ConsumerGroupDescription_state(d);
    if (st == RD_KAFKA_CONSUMER_GROUP_STATE_DEAD) {
        cli_errf("group '%s' does not exist", group);
        return -1;
    }
    rd_kafka_topic_partition_list_t *committed = cli_group_committed(rk, group, a);
    if (!committed) return -1;
    size_t nm = rd_kafka_ConsumerGroupDescription_member_count(d);
    const rd_kafka_Node_t *coord = rd_kafka_ConsumerGroupDescription_coordinator(d);
    if (!*header_due) printf("\n");
    if (!a->no_header) printf("GROUP\tSTATE\tASSIGNOR\tMEMBERS\tCOORDINATOR\n");
    printf("%s\t%s\t%s\t%zu\t", group, rd_kafka_consumer_group_state_name(st),
           cli_dash(rd_kafka_ConsumerGroupDescription_partition_assignor(d)), nm);
    if (coord) printf("%d\n", rd_kafka_Node_id(coord));
    else printf("-\n");
    *header_due = false;

    cli_group_row_t *rows = NULL;
    size_t nrows = 0, cap = 0;
    printf("\n");
    if (!a->no_header) printf("GROUP\tMEMBER\tINSTANCE\tCLIENT_ID\tHOST\tASSIGNMENT\n");
    for (size_t i = 0; i < nm; i++) {
        const rd_kafka_MemberDescription_t *m = rd_kafka_ConsumerGroupDescription_member(d, i);
        const rd_kafka_MemberAssignment_t *as = rd_kafka_MemberDescription_assignment(m);
        const rd_kafka_topic_partition_list_t *tp = as ? rd_kafka_MemberAssignment_partitions(as) : NULL;
        printf("%s\t%s\t%s\t%s\t%s\t", group, rd_kafka_MemberDescription_consumer_id(m),
               cli_dash(rd_kafka_MemberDescription_group_instance_id(m)),
               cli_dash(rd_kafka_MemberDescription_client_id(m)), cli_dash(rd_kafka_MemberDescription_host(m)));
        if (!tp || !tp->cnt) printf("-");
        for (int k = 0; tp && k < tp->cnt; k++) {
            printf("%s%s:%d", k ? "," : "", tp->elems[k].topic, (int)tp->elems[k].partition);
            cli_group_row(&rows, &nrows, &cap, tp->elems[k].topic, tp->elems[k].partition)->owner = m;
        }
        printf("\n");
    }
    for (int k = 0; k < committed->cnt; k++) {
        const rd_kafka_topic_partition_t *p = &committed->elems[k];
        if (p->err || p->offset < 0) continue;
        cli_group_row(&rows, &nrows, &cap, p->topic, p->partition)->committed = p->offset;
    }
    if (nrows) qsort(rows, nrows, sizeof *rows, cli_group_cmp_row);
    printf("\n");
    if (!a->no_header) printf("GROUP\tTOPIC\tPARTITION\tCOMMITTED\tEND\tLAG\tMEMBER\tCLIENT_ID\tHOST\n");
    for (size_t i = 0; i < nrows; i++) {
        cli_group_row_t *r = &rows[i];
        int64_t lo = -1, hi = -1;
        rd_kafka_resp_err_t err =
            rd_kafka_query_watermark_offsets(rk, r->topic, r->partition, &lo, &hi, a->common.cm_timeout_ms);
        if (err) cli_warnf("topic '%s' partition %d: log end offset: %s", r->topic, (int)r->partition,
                           rd_kafka_err2str(err));
        printf("%s\t%s\t%d\t", group, r->topic, (int)r->partition);
        if (r->committed >= 0) printf("%lld\t", (long long)r->committed);
        else printf("-\t");
        if (!err) printf("%lld\t", (long long)hi);
        else printf("-\t");
        if (!err && r->committed >= 0) printf("%lld\t", (long long)(hi > r->committed ? hi - r->committed : 0));
        else printf("-\t");
        if (r->owner)
            printf("%s\t%s\t%s\n", rd_kafka_MemberDescription_consumer_id(r->owner),
                   cli_dash(rd_kafka_MemberDescription_client_id(r->owner)),
                   cli_dash(rd_kafka_MemberDescription_host(r->owner)));
        else printf("-\t-\t-\n");
        free(r->topic);
    }
    free(rows);
    fflush(stdout);
    rd_kafka_topic_partition_list_destroy(committed);
    return 0;
}

static int cli_group_describe(const cli_group_args_t *a) {
    rd_kafka_t *rk = cli_group_client_new(a);
    if (!rk) return CLI_EXIT_FAIL;
    int failed = 0;
    cli_group_names_t names = {(const char **)a->names, a->nnames};
    rd_kafka_event_t *ev = cli_group_admin(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS, a, "describe groups",
                                           cli_group_start_describe, &names);
    if (!ev) {
        rd_kafka_destroy(rk);
        return CLI_EXIT_FAIL;
    }
    size_t n = 0;
    const rd_kafka_ConsumerGroupDescription_t **ds =
        rd_kafka_DescribeConsumerGroups_result_groups(rd_kafka_event_DescribeConsumerGroups_result(ev), &n);
    bool header_due = true;
    for (size_t i = 0; i < n; i++)
        if (cli_group_describe_one(rk, ds[i], a, &header_due) != 0) failed++;
    rd_kafka_event_destroy(ev);
    rd_kafka_destroy(rk);
    return failed || n != a->nnames ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

/* ---- reset-offsets --------------------------------------------------------------------------------- */

static int cli_group_reset(const cli_group_args_t *a) {
    const char *group = a->names[0];
    rd_kafka_t *rk = cli_group_client_new(a);
    if (!rk) return CLI_EXIT_FAIL;
    int rc = CLI_EXIT_FAIL;
    rd_kafka_event_t *ev = NULL;
    rd_kafka_topic_partition_list_t *committed = NULL, *plan = NULL;
    cli_group_names_t names = {(const char **)a->names, 1};

    /* only a group without active members (kafka-consumer-groups' rule) */
    ev = cli_group_admin(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS, a, "describe group",
                         cli_group_start_describe, &names);
    if (!ev) goto out;
    size_t n = 0;
    const rd_kafka_ConsumerGroupDescription_t **ds =
        rd_kafka_DescribeConsumerGroups_result_groups(rd_kafka_event_DescribeConsumerGroups_result(ev), &n);
    if (n != 1) {
        cli_errf("describe group '%s': unexpected result", group);
        goto out;
    }
    if (rd_kafka_ConsumerGroupDescription_error(ds[0])) {
        cli_errf("describe group '%s': %s", group,
                 rd_kafka_error_string(rd_kafka_ConsumerGroupDescription_error(ds[0])));
        goto out;
    }
    rd_kafka_consumer_group_state_t st = rd_kafka_ConsumerGroupDescription_state(ds[0]);
    if (st != RD_KAFKA_CONSUMER_GROUP_STATE_EMPTY && st != RD_KAFKA_CONSUMER_GROUP_STATE_DEAD) {
        cli_errf("group '%s' is %s with %zu member(s): offsets can only be reset when it has no active members",
                 group, rd_kafka_consumer_group_state_name(st), rd_kafka_ConsumerGroupDescription_member_count(ds[0]));
        goto out;
    }
    rd_kafka_event_destroy(ev);
    ev = NULL;

    int nparts = cli_topic_partition_count(rk, a->topic, a->common.cm_timeout_ms);
    if (nparts < 0) goto out;
    if (!(committed = cli_group_committed(rk, group, a))) goto out;
    plan = rd_kafka_topic_partition_list_new(nparts);
    if (a->reset == CLI_RESET_DATETIME) {
        rd_kafka_topic_partition_list_t *ts = rd_kafka_topic_partition_list_new(nparts);
        for (int p = 0; p < nparts; p++) rd_kafka_topic_partition_list_add(ts, a->topic, p)->offset = a->value;
        rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(rk, ts, a->common.cm_timeout_ms);
        if (err) {
            cli_report_kafka_error(rk, "offsets for --to-datetime", err);
            rd_kafka_topic_partition_list_destroy(ts);
            goto out;
        }
        for (int p = 0; p < nparts; p++) rd_kafka_topic_partition_list_add(plan, a->topic, p)->offset =
            ts->elems[p].offset;
        rd_kafka_topic_partition_list_destroy(ts);
    }
    if (!a->no_header) printf("GROUP\tTOPIC\tPARTITION\tCURRENT\tNEW\n");
    for (int p = 0; p < nparts; p++) {
        int64_t lo = -1, hi = -1, cur = -1, target;
        rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(rk, a->topic, p, &lo, &hi,
                                                                   a->common.cm_timeout_ms);
        if (err) {
            char w[300];
            snprintf(w, sizeof w, "topic '%s' partition %d: offsets", a->topic, p);
            cli_report_kafka_error(rk, w, err);
            goto out;
        }
        rd_kafka_topic_partition_t *c = rd_kafka_topic_partition_list_find(committed, a->topic, p);
        if (c && !c->err && c->offset >= 0) cur = c->offset;
        switch (a->reset) {
        case CLI_RESET_EARLIEST: target = lo; break;
        case CLI_RESET_LATEST: target = hi; break;
        case CLI_RESET_OFFSET: target = a->value; break;
        case CLI_RESET_SHIFT: target = (cur >= 0 ? cur : lo) + a->value; break;
        case CLI_RESET_DATETIME: {
            rd_kafka_topic_partition_t *x = rd_kafka_topic_partition_list_find(plan, a->topic, p);
            target = x && x->offset >= 0 ? x->offset : hi; /* no record that late: the end */
            break;
        }
        default: target = lo; break;
        }
        if (target < lo) target = lo;
        if (target > hi) target = hi;
        rd_kafka_topic_partition_t *x = rd_kafka_topic_partition_list_find(plan, a->topic, p);
        if (!x) x = rd_kafka_topic_partition_list_add(plan, a->topic, p);
        x->offset = target;
        printf("%s\t%s\t%d\t", group, a->topic, p);
        if (cur >= 0) printf("%lld", (long long)cur);
        else printf("-");
        printf("\t%lld\n", (long long)target);
    }
    fflush(stdout);
    if (!a->execute) {
        cli_infof("dry run: nothing changed; add --execute to apply");
        rc = CLI_EXIT_OK;
        goto out;
    }
    cli_group_alter_t al = {group, plan};
    ev = cli_group_admin(rk, RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS, a, "alter offsets",
                         cli_group_start_alter, &al);
    if (!ev) goto out;
    {
        size_t ng = 0;
        const rd_kafka_group_result_t **gr =
            rd_kafka_AlterConsumerGroupOffsets_result_groups(rd_kafka_event_AlterConsumerGroupOffsets_result(ev), &ng);
        if (ng != 1) {
            cli_errf("alter offsets of group '%s': unexpected result", group);
            goto out;
        }
        if (rd_kafka_group_result_error(gr[0])) {
            cli_errf("alter offsets of group '%s': %s", group,
                     rd_kafka_error_string(rd_kafka_group_result_error(gr[0])));
            goto out;
        }
        const rd_kafka_topic_partition_list_t *res = rd_kafka_group_result_partitions(gr[0]);
        int bad = 0;
        for (int k = 0; res && k < res->cnt; k++)
            if (res->elems[k].err) {
                bad++;
                cli_errf("alter offset of %s[%d]: %s", res->elems[k].topic, (int)res->elems[k].partition,
                         rd_kafka_err2str(res->elems[k].err));
            }
        if (bad) goto out;
    }
    cli_infof("offsets of group '%s' for topic '%s' reset", group, a->topic);
    rc = CLI_EXIT_OK;
out:
    if (ev) rd_kafka_event_destroy(ev);
    if (committed) rd_kafka_topic_partition_list_destroy(committed);
    if (plan) rd_kafka_topic_partition_list_destroy(plan);
    rd_kafka_destroy(rk);
    return rc;
}

/* ---- delete ---------------------------------------------------------------------------------------- */

static int cli_group_delete(const cli_group_args_t *a) {
    rd_kafka_t *rk = cli_group_client_new(a);
    if (!rk) return CLI_EXIT_FAIL;
    int failed = 0;
    cli_group_names_t names = {(const char **)a->names, a->nnames};
    rd_kafka_event_t *ev =
        cli_group_admin(rk, RD_KAFKA_ADMIN_OP_DELETEGROUPS, a, "delete groups", cli_group_start_delete, &names);
    if (!ev) {
        rd_kafka_destroy(rk);
        return CLI_EXIT_FAIL;
    }
    size_t n = 0;
    const rd_kafka_group_result_t **gr =
        rd_kafka_DeleteGroups_result_groups(rd_kafka_event_DeleteGroups_result(ev), &n);
    if (!a->no_header) printf("GROUP\tSTATUS\n");
    for (size_t i = 0; i < n; i++) {
        const rd_kafka_error_t *e = rd_kafka_group_result_error(gr[i]);
        const char *name = rd_kafka_group_result_name(gr[i]);
        if (!e) {
            printf("%s\tOK\n", name);
            continue;
        }
        failed++;
        printf("%s\t%s\n", name, rd_kafka_err2name(rd_kafka_error_code(e)));
        cli_errf("delete group '%s': %s", name, rd_kafka_error_string(e));
    }
    fflush(stdout);
    rd_kafka_event_destroy(ev);
    rd_kafka_destroy(rk);
    return failed || n != a->nnames ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

int cli_group_main(int argc, char **argv) {
    static const struct {
        const char *name;
        cli_group_op_t op;
    } subs[] = {
        {"list", CLI_GROUP_LIST},      {"ls", CLI_GROUP_LIST},          {"describe", CLI_GROUP_DESCRIBE},
        {"reset-offsets", CLI_GROUP_RESET}, {"delete", CLI_GROUP_DELETE}, {"rm", CLI_GROUP_DELETE},
    };
    cli_group_args_t a;
    int rc;
    if (argc < 2) {
        cli_group_help(stderr);
        return CLI_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        cli_group_help(stdout);
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < RB_ARRAY_LEN(subs); i++) {
        if (strcmp(argv[1], subs[i].name) != 0) continue;
        rc = cli_group_parse(subs[i].op, argc - 1, argv + 1, &a);
        if (rc == 0) {
            switch (a.op) {
            case CLI_GROUP_LIST: rc = cli_group_list(&a); break;
            case CLI_GROUP_DESCRIBE: rc = cli_group_describe(&a); break;
            case CLI_GROUP_RESET: rc = cli_group_reset(&a); break;
            case CLI_GROUP_DELETE: rc = cli_group_delete(&a); break;
            }
        } else if (rc < 0) {
            rc = CLI_EXIT_OK; /* help printed */
        }
        cli_group_args_free(&a);
        return rc;
    }
    return cli_usage_error("group", "unknown group command '%s'", argv[1]);
}
