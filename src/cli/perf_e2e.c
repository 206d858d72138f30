/*
 * perf_e2e.c — `rill perf e2e`: end-to-end latency at a fixed rate. The main
 * thread produces N records at R records/s; each value starts with
 *   magic "RE2E" | run id (8 bytes) | send time, monotonic us (8) | sequence (8)
 * all big-endian. A consumer thread in the same process, started on every
 * partition at the high watermark before the first send, reads them back and
 * records receive time minus send time. Records of other runs (same topic)
 * are ignored; a bitmap over sequences counts duplicates and losses.
 *
 * Threads: the consumer thread owns its rd_kafka_t; the statistics it fills
 * are shared with the main thread under cli_e2e_t.e2_lock.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

#define CLI_E2E_HDR 28
#define CLI_E2E_WARMUP_US 500000

typedef struct {
    /* consumer side (consumer thread writes, main reads under e2_lock) */
    pthread_mutex_t e2_lock;
    cli_hist_t *e2_lat;
    uint8_t *e2_seen; /* one bit per sequence number */
    uint64_t e2_n;    /* records in the run */
    uint64_t e2_received, e2_dupes, e2_foreign, e2_errors;
    uint64_t e2_w_n, e2_w_sum, e2_w_max; /* progress window */
    uint64_t e2_run_id;
    atomic_int e2_stop;
    rd_kafka_t *e2_crk;
    rd_kafka_queue_t *e2_q;
    /* producer side (main thread only) */
    uint64_t e2_sent, e2_delivered, e2_failed;
} cli_e2e_t;

/* Consumer thread: called from rd_kafka_consume_callback_queue. */
static void cli_e2e_on_message(rd_kafka_message_t *m, void *opaque) {
    cli_e2e_t *e = opaque;
    int64_t now = rb_mono_us();
    const uint8_t *p = m->payload;
    uint64_t seq, lat;
    if (m->err) {
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) return;
        pthread_mutex_lock(&e->e2_lock);
        e->e2_errors++;
        pthread_mutex_unlock(&e->e2_lock);
        cli_warnf("consume %s [%d]: %s", rd_kafka_topic_name(m->rkt), (int)m->partition, rd_kafka_message_errstr(m));
        return;
    }
    pthread_mutex_lock(&e->e2_lock);
    if (!p || m->len < CLI_E2E_HDR || memcmp(p, "RE2E", 4) != 0 || rb_be64(p + 4) != e->e2_run_id) {
        e->e2_foreign++;
        goto out;
    }
    seq = rb_be64(p + 20);
    if (seq >= e->e2_n) {
        e->e2_foreign++;
        goto out;
    }
    if (e->e2_seen[seq / 8] & (1u << (seq % 8))) {
        e->e2_dupes++;
        goto out;
    }
    e->e2_seen[seq / 8] |= (uint8_t)(1u << (seq % 8));
    lat = (uint64_t)(now - (int64_t)rb_be64(p + 12));
    e->e2_received++;
    cli_hist_add(e->e2_lat, lat);
    e->e2_w_n++;
    e->e2_w_sum += lat;
    if (lat > e->e2_w_max) e->e2_w_max = lat;
out:
    pthread_mutex_unlock(&e->e2_lock);
}

static void *cli_e2e_consumer_main(void *arg) {
    cli_e2e_t *e = arg;
    while (!atomic_load(&e->e2_stop)) {
        rd_kafka_consume_callback_queue(e->e2_q, 50, cli_e2e_on_message, e);
        rd_kafka_poll(e->e2_crk, 0);
    }
    return NULL;
}

/* Main thread, from rd_kafka_poll. */
static void cli_e2e_on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    cli_e2e_t *e = opaque;
    if (!m->err) {
        e->e2_delivered++;
        return;
    }
    if (++e->e2_failed <= 5)
        cli_errf("delivery to %s [%d] failed: %s", rd_kafka_topic_name(m->rkt), (int)m->partition,
                 rd_kafka_err2str(m->err));
}

static void cli_e2e_progress(cli_e2e_t *e, int64_t *w_start, bool force) {
    int64_t now = rb_mono_us();
    double secs = (double)(now - *w_start) / 1e6;
    uint64_t n, sum, max, total;
    if (!force && now - *w_start < CLI_PERF_REPORT_US) return;
    pthread_mutex_lock(&e->e2_lock);
    n = e->e2_w_n;
    sum = e->e2_w_sum;
    max = e->e2_w_max;
    total = e->e2_received;
    e->e2_w_n = e->e2_w_sum = e->e2_w_max = 0;
    pthread_mutex_unlock(&e->e2_lock);
    *w_start = now;
    if (secs <= 0) return;
    fprintf(stderr,
            "rill perf: %llu sent, %llu received (%.1f records/s), %.3f ms avg e2e latency, %.3f ms max e2e "
            "latency\n",
            (unsigned long long)e->e2_sent, (unsigned long long)total, (double)n / secs,
            n ? cli_us_to_ms((double)sum / (double)n) : 0.0, cli_us_to_ms((double)max));
}

/* Polls the producer until `due` (monotonic us). */
static void cli_e2e_wait_until(rd_kafka_t *rk, cli_e2e_t *e, int64_t due, int64_t *w_start) {
    for (;;) {
        int64_t left = due - rb_mono_us();
        cli_e2e_progress(e, w_start, false);
        if (left <= 0 || cli_stop) return;
        if (left > 2000) {
            rd_kafka_poll(rk, 1);
        } else {
            rd_kafka_poll(rk, 0);
            if (left > 50) usleep((useconds_t)(left - 20));
        }
    }
}

static void cli_e2e_report(const cli_perf_args_t *a, cli_e2e_t *e, double send_secs) {
    uint64_t lost = e->e2_n > e->e2_received ? e->e2_n - e->e2_received : 0;
    double rate = send_secs > 0 ? (double)e->e2_sent / send_secs : 0.0;
    if (a->json) {
        printf("{\"tool\":\"e2e\",\"topic\":");
        cli_perf_json_str(stdout, a->topic);
        printf(",\"records\":%llu,\"sent\":%llu,\"delivered\":%llu,\"failed\":%llu,\"received\":%llu,"
               "\"lost\":%llu,\"duplicates\":%llu,\"record_size\":%lld,\"acks\":",
               (unsigned long long)e->e2_n, (unsigned long long)e->e2_sent, (unsigned long long)e->e2_delivered,
               (unsigned long long)e->e2_failed, (unsigned long long)e->e2_received, (unsigned long long)lost,
               (unsigned long long)e->e2_dupes, (long long)a->record_size);
        cli_perf_json_str(stdout, a->acks);
        printf(",\"target_rate\":%.1f,\"send_rate\":%.1f", a->rate, rate);
        cli_perf_json_latency(stdout, "e2e", e->e2_lat);
        printf(",\"interrupted\":%s}\n", cli_stop ? "true" : "false");
    } else {
        printf("%llu records sent at %.1f records/s (target %.1f); %llu received, %llu lost, %llu duplicates.\n",
               (unsigned long long)e->e2_sent, rate, a->rate, (unsigned long long)e->e2_received,
               (unsigned long long)lost, (unsigned long long)e->e2_dupes);
        printf("end-to-end latency: ");
        cli_perf_text_latency(stdout, e->e2_lat);
        printf(".\n");
        if (e->e2_failed) printf("%llu records failed delivery.\n", (unsigned long long)e->e2_failed);
    }
    fflush(stdout);
}

int cli_perf_e2e_run(const cli_perf_args_t *a) {
    static const char *const cdefaults[] = {"enable.auto.commit", "false", "auto.offset.reset", "earliest", NULL};
    const char *pdefaults[9];
    cli_e2e_t e;
    rd_kafka_conf_t *conf = NULL;
    rd_kafka_t *prk = NULL;
    rd_kafka_topic_t *prkt = NULL, *crkt = NULL;
    char *payload = NULL;
    pthread_t thr;
    bool thr_started = false, lock_ready = false;
    int total, spread, nstarted = 0, rc = CLI_EXIT_FAIL;
    int64_t t0, t_end, w_start, last_change;
    uint64_t last_received = 0;

    memset(&e, 0, sizeof e);
    e.e2_n = (uint64_t)a->num_records;
    e.e2_run_id = ((uint64_t)getpid() << 32) ^ (uint64_t)rb_now_ms() ^ (uint64_t)rb_mono_us();
    atomic_init(&e.e2_stop, 0);
    e.e2_lat = malloc(sizeof *e.e2_lat);
    e.e2_seen = calloc(e.e2_n / 8 + 1, 1);
    if (!e.e2_lat || !e.e2_seen) {
        cli_errf("out of memory for %llu records", (unsigned long long)e.e2_n);
        goto fail;
    }
    cli_hist_init(e.e2_lat);
    pthread_mutex_init(&e.e2_lock, NULL);
    lock_ready = true;
    /* -X goes to both clients: a producer-only property is expected to be
     * ignored by the consumer and the other way round */
    cli_hide_confwarn = 1;

    /* producer */
    cli_perf_producer_defaults(a, pdefaults);
    if (!(conf = cli_conf_new(&a->common, pdefaults))) goto fail;
    rd_kafka_conf_set_opaque(conf, &e);
    rd_kafka_conf_set_dr_msg_cb(conf, cli_e2e_on_delivery);
    prk = cli_kafka_new(RD_KAFKA_PRODUCER, conf);
    conf = NULL;
    if (!prk) goto fail;
    if ((total = cli_topic_partition_count(prk, a->topic, a->common.cm_timeout_ms)) < 0) goto fail;
    cli_show_transient = 1; /* connected: report later trouble as it happens */
    spread = a->partitions < 0 ? total : a->partitions;
    if (spread > total) {
        cli_errf("-P %d: topic '%s' has only %d partition%s", spread, a->topic, total, total == 1 ? "" : "s");
        goto fail;
    }
    if (!(prkt = rd_kafka_topic_new(prk, a->topic, NULL))) {
        cli_errf("topic '%s': %s", a->topic, rd_kafka_err2str(rd_kafka_last_error()));
        goto fail;
    }

    /* consumer: every partition from its current end */
    if (!(conf = cli_conf_new(&a->common, cdefaults))) goto fail;
    e.e2_crk = cli_kafka_new(RD_KAFKA_CONSUMER, conf);
    conf = NULL;
    if (!e.e2_crk) goto fail;
    if (!(crkt = rd_kafka_topic_new(e.e2_crk, a->topic, NULL))) {
        cli_errf("topic '%s': %s", a->topic, rd_kafka_err2str(rd_kafka_last_error()));
        goto fail;
    }
    e.e2_q = rd_kafka_queue_new(e.e2_crk);
    for (; nstarted < total; nstarted++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t err =
            rd_kafka_query_watermark_offsets(e.e2_crk, a->topic, nstarted, &lo, &hi, a->common.cm_timeout_ms);
        if (err) {
            char what[300];
            snprintf(what, sizeof what, "end offset of %s [%d]", a->topic, nstarted);
            cli_report_kafka_error(e.e2_crk, what, err);
            goto fail;
        }
        if (rd_kafka_consume_start_queue(crkt, nstarted, hi, e.e2_q) == -1) {
            cli_errf("start consuming %s [%d]: %s", a->topic, nstarted, rd_kafka_err2str(rd_kafka_last_error()));
            goto fail;
        }
    }
    if (pthread_create(&thr, NULL, cli_e2e_consumer_main, &e) != 0) {
        cli_errf("cannot start the consumer thread");
        goto fail;
    }
    thr_started = true;
    /* Give the consumer time to connect and park its first fetch, so the
     * first records do not measure connection setup. */
    usleep(CLI_E2E_WARMUP_US);

    payload = cli_perf_payload_new((size_t)a->record_size);
    memcpy(payload, "RE2E", 4);
    rb_wbe64((uint8_t *)payload + 4, e.e2_run_id);
    t0 = rb_mono_us();
    w_start = t0;
    for (uint64_t i = 0; i < e.e2_n && !cli_stop; i++) {
        int32_t part = spread > 0 ? (int32_t)(i % (uint64_t)spread) : RD_KAFKA_PARTITION_UA;
        cli_e2e_wait_until(prk, &e, t0 + (int64_t)((double)i * 1e6 / a->rate), &w_start);
        rb_wbe64((uint8_t *)payload + 20, i);
        for (;;) {
            rb_wbe64((uint8_t *)payload + 12, (uint64_t)rb_mono_us());
            if (rd_kafka_produce(prkt, part, RD_KAFKA_MSG_F_COPY, payload, (size_t)a->record_size, NULL, 0, NULL) == 0)
                break;
            if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                cli_errf("produce to %s [%d]: %s", a->topic, (int)part, rd_kafka_err2str(rd_kafka_last_error()));
                goto drain;
            }
            rd_kafka_poll(prk, 1);
            if (cli_stop) goto drain;
        }
        e.e2_sent++;
        rd_kafka_poll(prk, 0);
    }
drain:
    t_end = rb_mono_us();
    while (rd_kafka_outq_len(prk) > 0) {
        rd_kafka_poll(prk, 10);
        cli_e2e_progress(&e, &w_start, false);
    }
    /* wait for the consumer to catch up, or for --idle-timeout without news */
    last_change = rb_mono_us();
    for (;;) {
        uint64_t got;
        int64_t now = rb_mono_us();
        pthread_mutex_lock(&e.e2_lock);
        got = e.e2_received;
        pthread_mutex_unlock(&e.e2_lock);
        if (got >= e.e2_delivered || cli_stop) break;
        if (got != last_received) {
            last_received = got;
            last_change = now;
        } else if (now - last_change > (int64_t)a->idle_timeout_ms * 1000) {
            cli_errf("no new record for %d ms; received %llu of %llu delivered", a->idle_timeout_ms,
                     (unsigned long long)got, (unsigned long long)e.e2_delivered);
            break;
        }
        cli_e2e_progress(&e, &w_start, false);
        usleep(10000);
    }
    atomic_store(&e.e2_stop, 1);
    pthread_join(thr, NULL);
    thr_started = false;
    if (e.e2_w_n) cli_e2e_progress(&e, &w_start, true);
    cli_e2e_report(a, &e, (double)(t_end - t0) / 1e6);
    rc = e.e2_received == e.e2_n && !e.e2_failed ? CLI_EXIT_OK : CLI_EXIT_FAIL;
fail:
    if (thr_started) {
        atomic_store(&e.e2_stop, 1);
        pthread_join(thr, NULL);
    }
    free(payload);
    if (crkt) {
        for (int p = 0; p < nstarted; p++) rd_kafka_consume_stop(crkt, p);
        rd_kafka_topic_destroy(crkt);
    }
    if (e.e2_q) rd_kafka_queue_destroy(e.e2_q);
    if (e.e2_crk) rd_kafka_destroy(e.e2_crk);
    if (prkt) rd_kafka_topic_destroy(prkt);
    if (conf) rd_kafka_conf_destroy(conf);
    if (prk) rd_kafka_destroy(prk);
    if (lock_ready) pthread_mutex_destroy(&e.e2_lock);
    free(e.e2_lat);
    free(e.e2_seen);
    return rc;
}
