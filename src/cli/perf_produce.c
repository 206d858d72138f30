/*
 * perf_produce.c — `rill perf produce`: producer throughput and per-record
 * delivery latency, in the kafka-producer-perf-test tradition. Each record's
 * send time (monotonic us) travels as its message opaque; the delivery report
 * callback (served by rd_kafka_poll on this thread) turns it into a latency.
 * Progress every ~2 s on stderr, the summary on stdout (text or --json).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

#define CLI_PERF_MAX_ERRORS_SHOWN 5

typedef struct {
    cli_hist_t *pp_lat;      /* whole run, us */
    uint64_t pp_delivered;
    uint64_t pp_failed;
    uint64_t pp_bytes;
    int64_t pp_last_dr_us;   /* time of the latest delivery report */
    /* the current progress window */
    uint64_t pp_w_n, pp_w_bytes, pp_w_lat_sum, pp_w_lat_max;
    int64_t pp_w_start_us;
} cli_perf_prod_t;

static void cli_perf_prod_on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    cli_perf_prod_t *st = opaque;
    int64_t now = rb_mono_us();
    uint64_t lat = (uint64_t)(now - (int64_t)(intptr_t)m->_private);
    st->pp_last_dr_us = now;
    if (m->err) {
        st->pp_failed++;
        if (st->pp_failed <= CLI_PERF_MAX_ERRORS_SHOWN)
            cli_errf("delivery to %s [%d] failed: %s", rd_kafka_topic_name(m->rkt), (int)m->partition,
                     rd_kafka_err2str(m->err));
        else if (st->pp_failed == CLI_PERF_MAX_ERRORS_SHOWN + 1)
            cli_errf("(further delivery errors not shown)");
        return;
    }
    st->pp_delivered++;
    st->pp_bytes += m->len;
    cli_hist_add(st->pp_lat, lat);
    st->pp_w_n++;
    st->pp_w_bytes += m->len;
    st->pp_w_lat_sum += lat;
    if (lat > st->pp_w_lat_max) st->pp_w_lat_max = lat;
}

/* Prints a progress line when the window is ~2 s old. */
static void cli_perf_prod_progress(cli_perf_prod_t *st, int64_t now, bool force) {
    double secs = (double)(now - st->pp_w_start_us) / 1e6;
    if (!force && now - st->pp_w_start_us < CLI_PERF_REPORT_US) return;
    if (secs <= 0) return;
    fprintf(stderr,
            "rill perf: %llu records sent, %.1f records/s (%.2f MB/s), %.3f ms avg latency, "
            "%.3f ms max latency\n",
            (unsigned long long)st->pp_w_n, (double)st->pp_w_n / secs, cli_mb(st->pp_w_bytes) / secs,
            st->pp_w_n ? cli_us_to_ms((double)st->pp_w_lat_sum / (double)st->pp_w_n) : 0.0,
            cli_us_to_ms((double)st->pp_w_lat_max));
    st->pp_w_n = st->pp_w_bytes = st->pp_w_lat_sum = st->pp_w_lat_max = 0;
    st->pp_w_start_us = now;
}

/* Sleeps/polls until `due` (monotonic us), serving delivery reports. */
static void cli_perf_prod_wait_until(rd_kafka_t *rk, cli_perf_prod_t *st, int64_t due) {
    for (;;) {
        int64_t now = rb_mono_us(), left = due - now;
        cli_perf_prod_progress(st, now, false);
        if (left <= 0 || cli_stop) return;
        if (left > 2000) {
            rd_kafka_poll(rk, 1);
        } else {
            rd_kafka_poll(rk, 0);
            if (left > 50) usleep((useconds_t)(left - 20));
        }
    }
}

static void cli_perf_prod_report(const cli_perf_args_t *a, const cli_perf_prod_t *st, int nparts, double secs) {
    double rps = secs > 0 ? (double)st->pp_delivered / secs : 0.0;
    double mbps = secs > 0 ? cli_mb(st->pp_bytes) / secs : 0.0;
    if (a->json) {
        printf("{\"tool\":\"produce\",\"topic\":");
        cli_perf_json_str(stdout, a->topic);
        printf(",\"records\":%llu,\"failed\":%llu,\"record_size\":%lld,\"partitions\":%d,\"acks\":",
               (unsigned long long)st->pp_delivered, (unsigned long long)st->pp_failed, (long long)a->record_size,
               nparts);
        cli_perf_json_str(stdout, a->acks);
        printf(",\"compression\":");
        cli_perf_json_str(stdout, a->compression);
        printf(",\"target_rate\":%.1f,\"elapsed_s\":%.3f,\"records_per_s\":%.1f,\"mb_per_s\":%.3f", a->rate, secs,
               rps, mbps);
        cli_perf_json_latency(stdout, "latency", st->pp_lat);
        printf(",\"interrupted\":%s}\n", cli_stop ? "true" : "false");
    } else {
        printf("%llu records sent, %.1f records/s (%.2f MB/s), ", (unsigned long long)st->pp_delivered, rps, mbps);
        cli_perf_text_latency(stdout, st->pp_lat);
        printf(" latency%s\n", st->pp_failed ? "" : ".");
        if (st->pp_failed) printf("%llu records failed.\n", (unsigned long long)st->pp_failed);
    }
    fflush(stdout);
}

int cli_perf_produce_run(const cli_perf_args_t *a) {
    const char *defaults[9];
    cli_perf_prod_t st;
    rd_kafka_conf_t *conf = NULL;
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_t *rkt = NULL;
    char *payload = NULL;
    int nparts, rc = CLI_EXIT_FAIL;
    int64_t t0, i;
    bool refused = false;

    memset(&st, 0, sizeof st);
    st.pp_lat = malloc(sizeof *st.pp_lat);
    if (!st.pp_lat) goto fail;
    cli_hist_init(st.pp_lat);
    cli_perf_producer_defaults(a, defaults);
    if (!(conf = cli_conf_new(&a->common, defaults))) goto fail;
    rd_kafka_conf_set_opaque(conf, &st);
    rd_kafka_conf_set_dr_msg_cb(conf, cli_perf_prod_on_delivery);
    rk = cli_kafka_new(RD_KAFKA_PRODUCER, conf);
    conf = NULL;
    if (!rk) goto fail;
    if ((nparts = cli_perf_partitions(rk, a)) < 0) goto fail;
    cli_show_transient = 1; /* connected: report later trouble as it happens */
    if (!(rkt = rd_kafka_topic_new(rk, a->topic, NULL))) {
        cli_errf("topic '%s': %s", a->topic, rd_kafka_err2str(rd_kafka_last_error()));
        goto fail;
    }
    payload = cli_perf_payload_new((size_t)a->record_size);

    t0 = rb_mono_us();
    st.pp_w_start_us = t0;
    for (i = 0; i < a->num_records && !cli_stop; i++) {
        int32_t part = nparts > 0 ? (int32_t)(i % nparts) : RD_KAFKA_PARTITION_UA;
        if (a->rate > 0) cli_perf_prod_wait_until(rk, &st, t0 + (int64_t)((double)i * 1e6 / a->rate));
        /* no copy: the payload outlives the producer */
        while (rd_kafka_produce(rkt, part, 0, payload, (size_t)a->record_size, NULL, 0,
                                (void *)(intptr_t)rb_mono_us()) == -1) {
            rd_kafka_resp_err_t err = rd_kafka_last_error();
            if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                cli_errf("produce to %s [%d]: %s", a->topic, (int)part, rd_kafka_err2str(err));
                refused = true;
                goto drain;
            }
            rd_kafka_poll(rk, 1);
            cli_perf_prod_progress(&st, rb_mono_us(), false);
            if (cli_stop) goto drain;
        }
        rd_kafka_poll(rk, 0);
        if ((i & 63) == 0) cli_perf_prod_progress(&st, rb_mono_us(), false);
    }
drain:
    /* every delivery report (bounded by message.timeout.ms) */
    while (rd_kafka_outq_len(rk) > 0) {
        rd_kafka_poll(rk, 10);
        cli_perf_prod_progress(&st, rb_mono_us(), false);
    }
    if (st.pp_w_n) cli_perf_prod_progress(&st, rb_mono_us(), true);
    cli_perf_prod_report(a, &st, nparts, st.pp_last_dr_us > t0 ? (double)(st.pp_last_dr_us - t0) / 1e6 : 0.0);
    rc = st.pp_failed || refused || st.pp_delivered < (uint64_t)a->num_records ? CLI_EXIT_FAIL : CLI_EXIT_OK;
fail:
    free(payload);
    if (rkt) rd_kafka_topic_destroy(rkt);
    if (conf) rd_kafka_conf_destroy(conf);
    if (rk) rd_kafka_destroy(rk);
    free(st.pp_lat);
    return rc;
}
