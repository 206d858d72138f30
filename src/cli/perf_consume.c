/*
 * perf_consume.c — `rill perf consume`: consumer throughput. Every partition
 * of the topic is started directly (no group) on one queue, served with
 * rd_kafka_consume_callback_queue so records are counted as soon as they
 * arrive; throughput is measured from the first record to the N-th.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

typedef struct {
    uint64_t pc_n, pc_bytes, pc_errors;
    uint64_t pc_target;
    int64_t pc_first_us, pc_last_us;
    uint64_t pc_w_n, pc_w_bytes;
    int64_t pc_w_start_us;
} cli_perf_cons_t;

static void cli_perf_cons_on_message(rd_kafka_message_t *m, void *opaque) {
    cli_perf_cons_t *st = opaque;
    if (m->err) {
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) return;
        if (++st->pc_errors <= 5)
            cli_warnf("consume %s [%d]: %s", rd_kafka_topic_name(m->rkt), (int)m->partition,
                      rd_kafka_message_errstr(m));
        return;
    }
    if (st->pc_n >= st->pc_target) return; /* count exactly N */
    st->pc_last_us = rb_mono_us();
    if (!st->pc_n) {
        st->pc_first_us = st->pc_last_us;
        st->pc_w_start_us = st->pc_last_us;
    }
    st->pc_n++;
    st->pc_bytes += m->len + m->key_len;
    st->pc_w_n++;
    st->pc_w_bytes += m->len + m->key_len;
}

static void cli_perf_cons_progress(cli_perf_cons_t *st, int64_t now) {
    double secs;
    if (!st->pc_n || now - st->pc_w_start_us < CLI_PERF_REPORT_US) return;
    secs = (double)(now - st->pc_w_start_us) / 1e6;
    fprintf(stderr, "rill perf: %llu records received, %.1f records/s (%.2f MB/s), %llu in total\n",
            (unsigned long long)st->pc_w_n, (double)st->pc_w_n / secs, cli_mb(st->pc_w_bytes) / secs,
            (unsigned long long)st->pc_n);
    st->pc_w_n = st->pc_w_bytes = 0;
    st->pc_w_start_us = now;
}

int cli_perf_consume_run(const cli_perf_args_t *a) {
    static const char *const defaults[] = {"enable.auto.commit", "false", "auto.offset.reset", "earliest", NULL};
    cli_perf_cons_t st;
    rd_kafka_conf_t *conf = NULL;
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_t *rkt = NULL;
    rd_kafka_queue_t *q = NULL;
    int nparts = 0, nstarted = 0, rc = CLI_EXIT_FAIL;
    int64_t t0, last_progress;
    double secs, rps, mbps;
    bool timed_out = false;

    memset(&st, 0, sizeof st);
    st.pc_target = (uint64_t)a->num_records;
    if (!(conf = cli_conf_new(&a->common, defaults))) goto fail;
    rk = cli_kafka_new(RD_KAFKA_CONSUMER, conf);
    conf = NULL;
    if (!rk) goto fail;
    if ((nparts = cli_topic_partition_count(rk, a->topic, a->common.cm_timeout_ms)) < 0) goto fail;
    cli_show_transient = 1; /* connected: report later trouble as it happens */
    if (!(rkt = rd_kafka_topic_new(rk, a->topic, NULL))) {
        cli_errf("topic '%s': %s", a->topic, rd_kafka_err2str(rd_kafka_last_error()));
        goto fail;
    }
    q = rd_kafka_queue_new(rk);
    t0 = rb_mono_us();
    for (; nstarted < nparts; nstarted++) {
        if (rd_kafka_consume_start_queue(rkt, nstarted, a->offset, q) == -1) {
            cli_errf("start consuming %s [%d]: %s", a->topic, nstarted, rd_kafka_err2str(rd_kafka_last_error()));
            goto fail;
        }
    }
    last_progress = t0;
    while (st.pc_n < st.pc_target && !cli_stop) {
        uint64_t before = st.pc_n;
        int64_t now;
        rd_kafka_consume_callback_queue(q, 100, cli_perf_cons_on_message, &st);
        rd_kafka_poll(rk, 0);
        now = rb_mono_us();
        if (st.pc_n != before) last_progress = now;
        if (now - last_progress > (int64_t)a->idle_timeout_ms * 1000) {
            timed_out = true;
            cli_errf("no record for %d ms; got %llu of %llu", a->idle_timeout_ms, (unsigned long long)st.pc_n,
                     (unsigned long long)st.pc_target);
            break;
        }
        cli_perf_cons_progress(&st, now);
    }
    secs = st.pc_n > 1 ? (double)(st.pc_last_us - st.pc_first_us) / 1e6 : 0.0;
    rps = secs > 0 ? (double)st.pc_n / secs : 0.0;
    mbps = secs > 0 ? cli_mb(st.pc_bytes) / secs : 0.0;
    if (a->json) {
        printf("{\"tool\":\"consume\",\"topic\":");
        cli_perf_json_str(stdout, a->topic);
        printf(",\"records\":%llu,\"bytes\":%llu,\"partitions\":%d,\"elapsed_s\":%.3f,\"records_per_s\":%.1f,"
               "\"mb_per_s\":%.3f,\"first_record_ms\":%.3f,\"complete\":%s}\n",
               (unsigned long long)st.pc_n, (unsigned long long)st.pc_bytes, nparts, secs, rps, mbps,
               st.pc_n ? (double)(st.pc_first_us - t0) / 1000.0 : -1.0,
               st.pc_n >= st.pc_target ? "true" : "false");
    } else {
        printf("%llu records received (%.2f MB) in %.3f s, %.1f records/s (%.2f MB/s); first record after %.1f ms.\n",
               (unsigned long long)st.pc_n, cli_mb(st.pc_bytes), secs, rps, mbps,
               st.pc_n ? (double)(st.pc_first_us - t0) / 1000.0 : -1.0);
    }
    fflush(stdout);
    rc = st.pc_n >= st.pc_target && !timed_out ? CLI_EXIT_OK : CLI_EXIT_FAIL;
fail:
    if (rkt) {
        for (int p = 0; p < nstarted; p++) rd_kafka_consume_stop(rkt, p);
        rd_kafka_topic_destroy(rkt);
    }
    if (q) rd_kafka_queue_destroy(q);
    if (conf) rd_kafka_conf_destroy(conf);
    if (rk) rd_kafka_destroy(rk);
    return rc;
}
