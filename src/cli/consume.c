/*
 * consume.c — `rill consume TOPIC`: reads all partitions of a topic (or the
 * one given) from a start offset, without a consumer group: partitions are
 * assigned by the client itself (librdkafka's per-partition consume_start on
 * one shared queue), so nothing is committed and no group coordinator is
 * needed. Prints each record with a format (value only by default), stops
 * after -n records or, with -e, at the end of every partition.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define CLI_OPT_NULL (CLI_OPT_LONG_BASE + 30)

typedef struct {
    cli_common_t common;
    const char *topic;
    int32_t partition;  /* -p, or -1 for all */
    int64_t offset;     /* start: >= 0, or an RD_KAFKA_OFFSET_* logical value */
    int64_t count;      /* -n, 0 = unlimited */
    bool exit_at_end;   /* -e */
    bool quiet;         /* -q: no summary */
    char *format;       /* escapes already decoded; ends with a newline */
    const char *null_str;
} cli_consume_args_t;

static void cli_consume_help(FILE *out) {
    fprintf(out,
            "Usage: rill consume TOPIC [options]\n"
            "\n"
            "Prints the records of a topic, one per line (the value, by default). Partitions\n"
            "are assigned directly (no consumer group, nothing committed).\n"
            "\n"
            "  -p, --partition N      read only partition N (default: all)\n"
            "  -o, --offset POS       start at: beginning | end | N (absolute offset) |\n"
            "                         -N (the last N records of each partition);\n"
            "                         default beginning\n"
            "  -n, --count N          stop after N records\n"
            "  -e, --exit             stop at the end of every partition\n"
            "  -f, --format FMT       how to print a record (default '%%v'):\n"
            "                           %%v value   %%k key   %%p partition   %%o offset\n"
            "                           %%T timestamp (ms since the epoch, -1 if none)\n"
            "                           %%t topic   %%h headers (k=v,k2=v2)   %%S value size\n"
            "                           %%K key size (-1 if null)   %%%% a percent sign\n"
            "                         escapes \\n \\t \\r \\\\; a newline ends each record\n"
            "                         unless FMT already ends with one\n"
            "      --null STR         how a null key/value/header prints (default <null>)\n"
            "  -q, --quiet            no summary line on stderr\n"
            "\n" CLI_COMMON_HELP);
}

/* Decodes backslash escapes and makes sure the format ends with a newline. */
static char *cli_consume_format_new(const char *src) {
    size_t n = strlen(src);
    char *out = malloc(n + 2), *o = out;
    if (!out) return NULL;
    for (const char *s = src; *s; s++) {
        if (*s == '\\' && s[1]) {
            s++;
            switch (*s) {
            case 'n': *o++ = '\n'; break;
            case 't': *o++ = '\t'; break;
            case 'r': *o++ = '\r'; break;
            case '\\': *o++ = '\\'; break;
            default: *o++ = '\\'; *o++ = *s; break;
            }
            continue;
        }
        *o++ = *s;
    }
    if (o == out || o[-1] != '\n') *o++ = '\n';
    *o = '\0';
    return out;
}

/* Rejects unknown %-directives up front so a typo is a usage error. */
static int cli_consume_format_check(const char *fmt) {
    for (const char *s = fmt; *s; s++) {
        if (*s != '%') continue;
        s++;
        if (!*s || !strchr("vkpoTthSK%", *s)) return -1;
    }
    return 0;
}

/* Returns 0 to run, -1 when help was printed, CLI_EXIT_USAGE on errors. */
static int cli_consume_parse(int argc, char **argv, cli_consume_args_t *a) {
    static const struct option longopts[] = {
        CLI_COMMON_LONGOPTS,
        {"partition", required_argument, NULL, 'p'},
        {"offset", required_argument, NULL, 'o'},
        {"count", required_argument, NULL, 'n'},
        {"exit", no_argument, NULL, 'e'},
        {"format", required_argument, NULL, 'f'},
        {"null", required_argument, NULL, CLI_OPT_NULL},
        {"quiet", no_argument, NULL, 'q'},
        {NULL, 0, NULL, 0},
    };
    const char *fmt = "%v";
    int c;
    memset(a, 0, sizeof *a);
    cli_common_init(&a->common);
    a->partition = -1;
    a->offset = RD_KAFKA_OFFSET_BEGINNING;
    a->null_str = "<null>";
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":" CLI_COMMON_SHORTOPTS "p:o:n:ef:q", longopts, NULL)) != -1) {
        int rc = cli_common_opt(&a->common, c, optarg);
        if (rc < 0) return cli_usage_hint("consume");
        if (rc > 0) continue;
        switch (c) {
        case 'h':
            cli_consume_help(stdout);
            return -1;
        case 'p': {
            int p;
            if (cli_parse_int(optarg, 0, INT32_MAX, &p) != 0)
                return cli_usage_error("consume", "-p expects a partition number >= 0, got '%s'", optarg);
            a->partition = p;
            break;
        }
        case 'o':
            if (cli_parse_offset(optarg, &a->offset) != 0)
                return cli_usage_error("consume", "-o expects beginning, end, N or -N, got '%s'", optarg);
            break;
        case 'n':
            if (cli_parse_i64(optarg, 1, INT64_MAX, &a->count) != 0)
                return cli_usage_error("consume", "-n expects a count >= 1, got '%s'", optarg);
            break;
        case 'e':
            a->exit_at_end = true;
            break;
        case 'f':
            fmt = optarg;
            break;
        case CLI_OPT_NULL:
            a->null_str = optarg;
            break;
        case 'q':
            a->quiet = true;
            break;
        default:
            return cli_getopt_error("consume", c, argv);
        }
    }
    if (optind >= argc) return cli_usage_error("consume", "missing topic name");
    a->topic = argv[optind++];
    if (!*a->topic) return cli_usage_error("consume", "empty topic name");
    if (optind < argc) return cli_usage_error("consume", "unexpected argument '%s'", argv[optind]);
    if (cli_consume_format_check(fmt) != 0)
        return cli_usage_error("consume", "bad -f format '%s' (see --help for the %% directives)", fmt);
    a->format = cli_consume_format_new(fmt);
    if (!a->format) return CLI_EXIT_FAIL;
    return 0;
}

static void cli_consume_args_free(cli_consume_args_t *a) {
    cli_common_free(&a->common);
    free(a->format);
    a->format = NULL;
}

static void cli_consume_put_bytes(const void *p, size_t len, bool is_null, const char *null_str, FILE *out) {
    if (is_null)
        fputs(null_str, out);
    else if (len)
        fwrite(p, 1, len, out);
}

static void cli_consume_put_headers(const rd_kafka_message_t *m, const char *null_str, FILE *out) {
    rd_kafka_headers_t *hdrs = NULL;
    const char *name;
    const void *val;
    size_t size;
    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR) return;
    for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; i++) {
        if (i) fputc(',', out);
        fputs(name, out);
        fputc('=', out);
        cli_consume_put_bytes(val, size, val == NULL, null_str, out);
    }
}

/* Prints one record according to the (validated) format. */
static void cli_consume_print(const cli_consume_args_t *a, const rd_kafka_message_t *m, FILE *out) {
    for (const char *s = a->format; *s; s++) {
        if (*s != '%') {
            fputc(*s, out);
            continue;
        }
        switch (*++s) {
        case 'v': cli_consume_put_bytes(m->payload, m->len, m->payload == NULL, a->null_str, out); break;
        case 'k': cli_consume_put_bytes(m->key, m->key_len, m->key == NULL, a->null_str, out); break;
        case 'p': fprintf(out, "%" PRId32, m->partition); break;
        case 'o': fprintf(out, "%" PRId64, m->offset); break;
        case 'T': fprintf(out, "%" PRId64, rd_kafka_message_timestamp(m, NULL)); break;
        case 't': fputs(rd_kafka_topic_name(m->rkt), out); break;
        case 'h': cli_consume_put_headers(m, a->null_str, out); break;
        case 'S': fprintf(out, "%lld", m->payload ? (long long)m->len : -1LL); break;
        case 'K': fprintf(out, "%lld", m->key ? (long long)m->key_len : -1LL); break;
        case '%': fputc('%', out); break;
        default: break; /* rejected by cli_consume_format_check */
        }
    }
}

static int cli_consume_run(const cli_consume_args_t *a) {
    static const char *const defaults[] = {"enable.partition.eof", "true", "enable.auto.commit", "false",
                                           "auto.offset.reset", "earliest", NULL};
    rd_kafka_conf_t *conf = NULL;
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_t *rkt = NULL;
    rd_kafka_queue_t *q = NULL;
    bool *at_end = NULL, *started = NULL;
    int nparts, first, last, nat_end = 0, rc = CLI_EXIT_FAIL;
    uint64_t nrecords = 0;
    const char *why = "interrupted";

    if (!(conf = cli_conf_new(&a->common, defaults))) goto fail;
    rk = cli_kafka_new(RD_KAFKA_CONSUMER, conf);
    conf = NULL;
    if (!rk) goto fail;
    if ((nparts = cli_topic_partition_count(rk, a->topic, a->common.cm_timeout_ms)) < 0) goto fail;
    cli_show_transient = 1; /* connected: report later trouble as it happens */
    if (a->partition >= nparts) {
        cli_errf("topic '%s' has %d partition%s; partition %d does not exist", a->topic, nparts,
                 nparts == 1 ? "" : "s", (int)a->partition);
        goto fail;
    }
    first = a->partition >= 0 ? a->partition : 0;
    last = a->partition >= 0 ? a->partition : nparts - 1;
    at_end = calloc((size_t)nparts, sizeof *at_end);
    started = calloc((size_t)nparts, sizeof *started);
    if (!at_end || !started) goto fail;
    if (!(rkt = rd_kafka_topic_new(rk, a->topic, NULL))) {
        cli_errf("topic '%s': %s", a->topic, rd_kafka_err2str(rd_kafka_last_error()));
        goto fail;
    }
    q = rd_kafka_queue_new(rk);
    for (int p = first; p <= last; p++) {
        if (rd_kafka_consume_start_queue(rkt, p, a->offset, q) == -1) {
            cli_errf("start consuming %s [%d]: %s", a->topic, p, rd_kafka_err2str(rd_kafka_last_error()));
            goto fail;
        }
        started[p] = true;
    }

    while (!cli_stop) {
        rd_kafka_message_t *m = rd_kafka_consume_queue(q, 200);
        rd_kafka_poll(rk, 0); /* error callbacks */
        if (!m) continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (m->partition >= 0 && m->partition < nparts && !at_end[m->partition]) {
                at_end[m->partition] = true;
                nat_end++;
            }
            rd_kafka_message_destroy(m);
            if (a->exit_at_end && nat_end == last - first + 1) {
                why = "reached the end of every partition";
                break;
            }
            continue;
        }
        if (m->err) {
            bool fatal = m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                         m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED || m->err == RD_KAFKA_RESP_ERR__FATAL;
            if (fatal) {
                cli_errf("consume %s [%d]: %s", a->topic, (int)m->partition, rd_kafka_message_errstr(m));
                rd_kafka_message_destroy(m);
                goto fail;
            }
            cli_warnf("consume %s [%d]: %s", a->topic, (int)m->partition, rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        if (m->partition >= 0 && m->partition < nparts && at_end[m->partition]) {
            at_end[m->partition] = false;
            nat_end--;
        }
        cli_consume_print(a, m, stdout);
        rd_kafka_message_destroy(m);
        nrecords++;
        if (ferror(stdout)) {
            if (errno != EPIPE) cli_errf("writing standard output: %s", strerror(errno));
            why = "output closed";
            break;
        }
        if (a->count && nrecords >= (uint64_t)a->count) {
            why = "count reached";
            break;
        }
    }
    fflush(stdout);
    if (!a->quiet)
        cli_infof("consumed %llu record%s from '%s' (%s)", (unsigned long long)nrecords, nrecords == 1 ? "" : "s",
                  a->topic, why);
    rc = CLI_EXIT_OK;
fail:
    fflush(stdout);
    if (rkt) {
        for (int p = 0; started && p < nparts; p++)
            if (started[p]) rd_kafka_consume_stop(rkt, p);
        rd_kafka_topic_destroy(rkt);
    }
    if (q) rd_kafka_queue_destroy(q);
    free(at_end);
    free(started);
    if (conf) rd_kafka_conf_destroy(conf);
    if (rk) rd_kafka_destroy(rk);
    return rc;
}

int cli_consume_main(int argc, char **argv) {
    cli_consume_args_t a;
    int rc = cli_consume_parse(argc, argv, &a);
    if (rc == 0)
        rc = cli_consume_run(&a);
    else if (rc < 0)
        rc = CLI_EXIT_OK;
    cli_consume_args_free(&a);
    return rc;
}
