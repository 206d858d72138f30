/*
 * common.c — what every `rill` command shares: the common options (-b, -X,
 * -v, --timeout), messages on stderr, value parsing, librdkafka configuration
 * with Rill's error/log callbacks, topic metadata lookups, signal handling and
 * the latency histogram used by the perf tools.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "cli/cli.h"

volatile sig_atomic_t cli_stop;
int cli_show_transient;
int cli_hide_confwarn;

static int cli_verbose;
static pthread_mutex_t cli_err_lock = PTHREAD_MUTEX_INITIALIZER;
static char cli_err_last[512];    /* last error from the error callback */
static char cli_err_printed[512]; /* last one printed, to deduplicate */

/* ---- messages ------------------------------------------------------------------ */
static void cli_vmsg(const char *prefix, const char *fmt, va_list ap) {
    char line[2048];
    vsnprintf(line, sizeof line, fmt, ap);
    fprintf(stderr, "rill: %s%s\n", prefix, line);
}

void cli_errf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    cli_vmsg("error: ", fmt, ap);
    va_end(ap);
}

void cli_warnf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    cli_vmsg("warning: ", fmt, ap);
    va_end(ap);
}

void cli_infof(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    cli_vmsg("", fmt, ap);
    va_end(ap);
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    cli_vmsg("error: ", fmt, ap);
    va_end(ap);
    fprintf(stderr, "Run 'rill %s --help' for usage.\n", cmd);
    return CLI_EXIT_USAGE;
}

int cli_getopt_error(const char *cmd, int c, char **argv) {
    const char *arg = optind > 0 ? argv[optind - 1] : "?";
    if (c == ':') {
        if (optopt && optopt < 256)
            return cli_usage_error(cmd, "option '-%c' needs a value", optopt);
        return cli_usage_error(cmd, "option '%s' needs a value", arg);
    }
    if (c == '?') {
        if (optopt && optopt < 256) return cli_usage_error(cmd, "unknown option '-%c'", optopt);
        return cli_usage_error(cmd, "unknown option '%s'", arg);
    }
    /* a known option that this command does not take */
    if (c > 0 && c < 256) return cli_usage_error(cmd, "option '-%c' does not apply here", c);
    if (arg[0] != '-' && optind > 1) arg = argv[optind - 2]; /* "--opt value": name the option */
    return cli_usage_error(cmd, "option '%.*s' does not apply here", (int)strcspn(arg, "="), arg);
}

int cli_usage_hint(const char *cmd) {
    fprintf(stderr, "Run 'rill %s --help' for usage.\n", cmd);
    return CLI_EXIT_USAGE;
}

/* ---- value parsing ------------------------------------------------------------- */
int cli_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out) {
    char *end = NULL;
    long long v;
    if (!s || !*s) return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0') return -1;
    if (v < min || v > max) return -1;
    *out = (int64_t)v;
    return 0;
}

int cli_parse_int(const char *s, int min, int max, int *out) {
    int64_t v;
    if (cli_parse_i64(s, min, max, &v) != 0) return -1;
    *out = (int)v;
    return 0;
}

char *cli_split_kv(const char *s, const char **key, const char **val) {
    char *copy = strdup(s);
    char *eq;
    if (!copy) return NULL;
    eq = strchr(copy, '=');
    if (eq) {
        *eq = '\0';
        *val = eq + 1;
    } else {
        *val = NULL;
    }
    *key = copy;
    if (!*copy) {
        free(copy);
        return NULL;
    }
    return copy;
}

void cli_strv_push(char ***v, size_t *n, const char *s) {
    char **nv = realloc(*v, (*n + 1) * sizeof **v);
    if (!nv || !(nv[*n] = strdup(s))) {
        fprintf(stderr, "rill: out of memory\n");
        abort();
    }
    *v = nv;
    (*n)++;
}

void cli_strv_free(char ***v, size_t *n) {
    for (size_t i = 0; i < *n; i++) free((*v)[i]);
    free(*v);
    *v = NULL;
    *n = 0;
}

int cli_parse_offset(const char *s, int64_t *out) {
    int64_t v;
    if (!strcmp(s, "beginning") || !strcmp(s, "earliest") || !strcmp(s, "oldest")) {
        *out = RD_KAFKA_OFFSET_BEGINNING;
        return 0;
    }
    if (!strcmp(s, "end") || !strcmp(s, "latest") || !strcmp(s, "newest")) {
        *out = RD_KAFKA_OFFSET_END;
        return 0;
    }
    if (s[0] == '-') {
        /* -N: the last N records of each partition */
        if (cli_parse_i64(s + 1, 1, INT32_MAX, &v) != 0) return -1;
        *out = RD_KAFKA_OFFSET_TAIL(v);
        return 0;
    }
    if (cli_parse_i64(s, 0, INT64_MAX, &v) != 0) return -1;
    *out = v;
    return 0;
}

/* ---- common options ----------------------------------------------------------- */
void cli_common_init(cli_common_t *cm) {
    const char *env = getenv("RILL_BROKERS");
    memset(cm, 0, sizeof *cm);
    cm->cm_brokers = env && *env ? env : CLI_DEFAULT_BROKERS;
    cm->cm_timeout_ms = CLI_DEFAULT_TIMEOUT_MS;
}

void cli_common_free(cli_common_t *cm) { cli_strv_free(&cm->cm_props, &cm->cm_nprops); }

int cli_common_opt(cli_common_t *cm, int c, const char *arg) {
    switch (c) {
    case 'b':
        if (!*arg) {
            cli_errf("-b/--brokers needs HOST:PORT");
            return -1;
        }
        cm->cm_brokers = arg;
        return 1;
    case 'X':
        if (!strchr(arg, '=') || arg[0] == '=') {
            cli_errf("-X expects KEY=VALUE, got '%s'", arg);
            return -1;
        }
        cli_strv_push(&cm->cm_props, &cm->cm_nprops, arg);
        return 1;
    case 'v':
        cm->cm_verbose++;
        return 1;
    case CLI_OPT_TIMEOUT:
        if (cli_parse_int(arg, 1, 3600 * 1000, &cm->cm_timeout_ms) != 0) {
            cli_errf("--timeout expects milliseconds (1..3600000), got '%s'", arg);
            return -1;
        }
        return 1;
    default:
        return 0;
    }
}

/* ---- librdkafka callbacks ----------------------------------------------------- */
/* Runs inside rd_kafka_poll() (application thread) or, for errors raised
 * before any poll, whichever thread serves the main queue. */
static void cli_on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    bool fatal = err == RD_KAFKA_RESP_ERR__FATAL;
    bool print;
    char fbuf[512];
    if (fatal) {
        rd_kafka_fatal_error(rk, fbuf, sizeof fbuf);
        reason = fbuf;
    }
    pthread_mutex_lock(&cli_err_lock);
    snprintf(cli_err_last, sizeof cli_err_last, "%s", reason);
    print = fatal || cli_show_transient || cli_verbose;
    if (print && !fatal && !strcmp(cli_err_printed, reason)) print = false;
    if (print) snprintf(cli_err_printed, sizeof cli_err_printed, "%s", reason);
    pthread_mutex_unlock(&cli_err_lock);
    if (print) {
        if (fatal)
            cli_errf("fatal client error: %s", reason);
        else
            cli_warnf("%s (%s)", reason, rd_kafka_err2name((rd_kafka_resp_err_t)err));
    }
}

/* May run on librdkafka's internal threads. */
static void cli_on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    /* configuration warnings (e.g. a -X property of the wrong client type)
     * always show; the rest needs -v since errors also reach cli_on_error */
    bool confwarn = level <= LOG_WARNING && !strcmp(fac, "CONFWARN") && !cli_hide_confwarn;
    if (!cli_verbose && level > LOG_CRIT && !confwarn) return;
    fprintf(stderr, "rill: librdkafka %d %s %s: %s\n", level, rd_kafka_name(rk), fac, buf);
}

const char *cli_last_error(char *buf, size_t size) {
    pthread_mutex_lock(&cli_err_lock);
    snprintf(buf, size, "%s", cli_err_last);
    pthread_mutex_unlock(&cli_err_lock);
    return buf;
}

void cli_report_kafka_error(rd_kafka_t *rk, const char *what, rd_kafka_resp_err_t err) {
    char last[512];
    if (rk) rd_kafka_poll(rk, 0); /* serve queued error callbacks */
    cli_last_error(last, sizeof last);
    if (last[0] && (err == RD_KAFKA_RESP_ERR__TIMED_OUT || err == RD_KAFKA_RESP_ERR__TRANSPORT ||
                    err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN))
        cli_errf("%s: %s (last broker error: %s)", what, rd_kafka_err2str(err), last);
    else
        cli_errf("%s: %s", what, rd_kafka_err2str(err));
}

int cli_conf_set(rd_kafka_conf_t *conf, const char *key, const char *val) {
    char err[512];
    if (rd_kafka_conf_set(conf, key, val, err, sizeof err) != RD_KAFKA_CONF_OK) {
        cli_errf("property %s=%s: %s", key, val, err);
        return -1;
    }
    return 0;
}

rd_kafka_conf_t *cli_conf_new(const cli_common_t *cm, const char *const *defaults) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    cli_verbose = cm->cm_verbose;
    if (cli_conf_set(conf, "bootstrap.servers", cm->cm_brokers) != 0) goto fail;
    if (cli_conf_set(conf, "client.id", "rill-cli") != 0) goto fail;
    for (size_t i = 0; defaults && defaults[i]; i += 2)
        if (cli_conf_set(conf, defaults[i], defaults[i + 1]) != 0) goto fail;
    for (size_t i = 0; i < cm->cm_nprops; i++) {
        const char *key, *val;
        char *copy = cli_split_kv(cm->cm_props[i], &key, &val);
        int rc;
        if (!copy || !val) {
            free(copy);
            cli_errf("-X expects KEY=VALUE, got '%s'", cm->cm_props[i]);
            goto fail;
        }
        if (!strcmp(key, "debug")) cli_verbose = RB_MAX(cli_verbose, 1);
        rc = cli_conf_set(conf, key, val);
        free(copy);
        if (rc != 0) goto fail;
    }
    rd_kafka_conf_set_error_cb(conf, cli_on_error);
    rd_kafka_conf_set_log_cb(conf, cli_on_log);
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

rd_kafka_t *cli_kafka_new(rd_kafka_type_t type, rd_kafka_conf_t *conf) {
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof err);
    if (!rk) {
        rd_kafka_conf_destroy(conf); /* rd_kafka_new owns conf only on success */
        cli_errf("cannot create client: %s", err);
        return NULL;
    }
    return rk;
}

/* ---- metadata -------------------------------------------------------------------- */
rd_kafka_event_t *cli_admin_call(rd_kafka_t *rk, rd_kafka_admin_op_t op, int timeout_ms, bool validate_only,
                                 const char *what, cli_admin_start_fn start, void *arg) {
    char err[512];
    rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(rk, op);
    if (!o || rd_kafka_AdminOptions_set_request_timeout(o, timeout_ms, err, sizeof err) ||
        (validate_only && rd_kafka_AdminOptions_set_validate_only(o, 1, err, sizeof err))) {
        cli_errf("%s: admin options: %s", what, o ? err : "cannot create");
        if (o) rd_kafka_AdminOptions_destroy(o);
        return NULL;
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    start(rk, o, q, arg);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 5000);
    rd_kafka_queue_destroy(q);
    rd_kafka_AdminOptions_destroy(o);
    if (!ev) {
        cli_report_kafka_error(rk, what, RD_KAFKA_RESP_ERR__TIMED_OUT);
        return NULL;
    }
    if (rd_kafka_event_error(ev)) {
        cli_errf("%s: %s", what, rd_kafka_event_error_string(ev));
        rd_kafka_event_destroy(ev);
        return NULL;
    }
    return ev;
}

int cli_topic_partition_count(rd_kafka_t *rk, const char *topic, int timeout_ms) {
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    int64_t deadline = rb_mono_ms() + timeout_ms;
    int cnt = -1;
    char what[300];
    snprintf(what, sizeof what, "metadata for topic '%s'", topic);
    if (!rkt) {
        cli_errf("topic '%s': %s", topic, rd_kafka_err2str(rd_kafka_last_error()));
        return -1;
    }
    for (;;) {
        int left = (int)(deadline - rb_mono_ms());
        rd_kafka_resp_err_t err;
        if (left <= 0) {
            cli_report_kafka_error(rk, what, RD_KAFKA_RESP_ERR__TIMED_OUT);
            goto fail;
        }
        err = rd_kafka_metadata(rk, 0, rkt, &md, left);
        if (err) {
            cli_report_kafka_error(rk, what, err);
            goto fail;
        }
        if (md->topic_cnt != 1) {
            cli_errf("%s: broker returned %d topics", what, md->topic_cnt);
            goto fail;
        }
        err = md->topics[0].err;
        if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
            cli_errf("topic '%s' does not exist (create it with: rill topic create %s -p N)", topic, topic);
            goto fail;
        }
        if (err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE || (!err && md->topics[0].partition_cnt == 0)) {
            /* being created (auto-create or just made): ask again shortly */
            rd_kafka_metadata_destroy(md);
            md = NULL;
            usleep(100 * 1000);
            continue;
        }
        if (err) {
            cli_errf("%s: %s", what, rd_kafka_err2str(err));
            goto fail;
        }
        cnt = md->topics[0].partition_cnt;
        break;
    }
fail:
    if (md) rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return cnt;
}

/* ---- signals ------------------------------------------------------------------------ */
static void cli_on_signal(int sig) {
    if (cli_stop) {
        /* second Ctrl-C: leave now */
        signal(sig, SIG_DFL);
        raise(sig);
    }
    cli_stop = 1;
}

void cli_signals_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = cli_on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: a blocking read returns EINTR */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* ---- histogram -------------------------------------------------------------------------
 * Values below 2^S are exact; above, each power of two [2^e, 2^(e+1)) is cut
 * into 2^(S-1) equal buckets, so a bucket is at most 1/64 of its value wide. */
#define CLI_HIST_SUB (1u << CLI_HIST_SUB_BITS)
#define CLI_HIST_HALF (1u << (CLI_HIST_SUB_BITS - 1))

static unsigned cli_hist_index(uint64_t v) {
    unsigned e, top;
    if (v < CLI_HIST_SUB) return (unsigned)v;
    e = 63u - (unsigned)__builtin_clzll(v);                /* >= S */
    top = (unsigned)(v >> (e - (CLI_HIST_SUB_BITS - 1))); /* [2^(S-1), 2^S) */
    return CLI_HIST_SUB + (e - CLI_HIST_SUB_BITS) * CLI_HIST_HALF + (top - CLI_HIST_HALF);
}

/* Midpoint of a bucket. */
static uint64_t cli_hist_value(unsigned idx) {
    unsigned e, top;
    uint64_t lo, width;
    if (idx < CLI_HIST_SUB) return idx;
    e = (idx - CLI_HIST_SUB) / CLI_HIST_HALF + CLI_HIST_SUB_BITS;
    top = (idx - CLI_HIST_SUB) % CLI_HIST_HALF + CLI_HIST_HALF;
    width = 1ull << (e - (CLI_HIST_SUB_BITS - 1));
    lo = (uint64_t)top * width;
    return lo + width / 2;
}

void cli_hist_init(cli_hist_t *h) {
    memset(h, 0, sizeof *h);
    h->h_min = UINT64_MAX;
}

void cli_hist_add(cli_hist_t *h, uint64_t v) {
    h->h_counts[cli_hist_index(v)]++;
    h->h_n++;
    h->h_sum += v;
    if (v < h->h_min) h->h_min = v;
    if (v > h->h_max) h->h_max = v;
}

uint64_t cli_hist_pct(const cli_hist_t *h, double p) {
    uint64_t rank, seen = 0;
    if (!h->h_n) return 0;
    if (p >= 100.0) return h->h_max;
    rank = (uint64_t)(p / 100.0 * (double)h->h_n + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > h->h_n) rank = h->h_n;
    for (unsigned i = 0; i < CLI_HIST_BUCKETS; i++) {
        seen += h->h_counts[i];
        if (seen >= rank) {
            uint64_t v = cli_hist_value(i);
            if (v < h->h_min) v = h->h_min;
            if (v > h->h_max) v = h->h_max;
            return v;
        }
    }
    return h->h_max;
}

double cli_hist_avg(const cli_hist_t *h) { return h->h_n ? (double)h->h_sum / (double)h->h_n : 0.0; }
