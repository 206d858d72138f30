/*
 * produce_consume.c — a librdkafka client that checks a broker round trip
 * byte for byte. Used by tests/integration/test_c_client.py.
 *
 *   produce_consume BOOTSTRAP TOPIC COUNT PARTITIONS [CODEC]
 *
 * Produces COUNT records with acks=all across PARTITIONS explicit partitions
 * (the topic must exist with that many partitions): keys (some NULL), values
 * (some NULL, some empty, binary, varied sizes), two headers, CreateTime
 * timestamps; records each delivery report's partition and offset; then
 * consumes every partition from the beginning with assign() (no group
 * commits) and checks each record at the offset its delivery report named.
 * Exit 0: every record delivered and read back identical, each offset once.
 * Exit 1: a check failed (the reason is printed). Exit 2: usage/setup error.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#define TS_BASE INT64_C(1700000000000)
#define MAX_ERRORS 20

typedef struct {
    int32_t partition;
    int64_t offset;
    int delivered; /* 1 ok, -1 failed */
    int seen;
} rec_state_t;

static rec_state_t *g_state;
static int g_count;
static int g_errors;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...) {
    va_list ap;
    g_errors++;
    if (g_errors > MAX_ERRORS) return;
    va_start(ap, fmt);
    fputs("produce_consume: FAIL: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the records: all derived from the index, so nothing is stored ---- */

static uint64_t mix(uint64_t x) {
    x += UINT64_C(0x9E3779B97F4A7C15);
    x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
    return x ^ (x >> 31);
}

static void fill(uint8_t *buf, size_t len, uint64_t seed) {
    for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)(mix(seed * 1000003 + i) >> 24);
}

/* key: NULL for i%17==0, empty for i%23==0, else "key-<i>-" + binary */
static int make_key(int i, uint8_t *buf, size_t cap, size_t *len) {
    if (i % 17 == 0) return 0;
    if (i % 23 == 0) { *len = 0; return 1; }
    int n = snprintf((char *)buf, cap, "key-%d-", i);
    size_t extra = (size_t)(mix((uint64_t)i) % 24);
    fill(buf + n, extra, (uint64_t)i ^ 0xABCDu);
    *len = (size_t)n + extra;
    return 1;
}

/* value: NULL for i%19==0, empty for i%29==0, else binary of 1..4000 bytes */
static int make_value(int i, uint8_t *buf, size_t *len) {
    if (i % 19 == 0) return 0;
    if (i % 29 == 0) { *len = 0; return 1; }
    *len = 1 + (size_t)(mix((uint64_t)i + 77) % 4000);
    fill(buf, *len, (uint64_t)i);
    return 1;
}

static int32_t partition_of(int i, int partitions) { return (int32_t)(i % partitions); }

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    intptr_t i = (intptr_t)m->_private;
    if (i < 0 || i >= g_count) { fail("delivery report with unknown opaque %ld", (long)i); return; }
    rec_state_t *s = &g_state[i];
    if (s->delivered) { fail("record %ld: second delivery report", (long)i); return; }
    if (m->err) {
        s->delivered = -1;
        fail("record %ld: delivery failed: %s", (long)i, rd_kafka_err2str(m->err));
        return;
    }
    s->delivered = 1;
    s->partition = m->partition;
    s->offset = m->offset;
    if (m->partition != partition_of((int)i, (int)(intptr_t)opaque))
        fail("record %ld: delivered to partition %d, produced to %d", (long)i, m->partition,
             partition_of((int)i, (int)(intptr_t)opaque));
}

static rd_kafka_conf_t *base_conf(const char *bootstrap) {
    char err[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    if (rd_kafka_conf_set(c, "bootstrap.servers", bootstrap, err, sizeof(err)) != RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(c, "socket.nagle.disable", "true", err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "produce_consume: conf: %s\n", err);
        exit(2);
    }
    return c;
}

static void conf_set(rd_kafka_conf_t *c, const char *k, const char *v) {
    char err[512];
    if (rd_kafka_conf_set(c, k, v, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "produce_consume: conf %s=%s: %s\n", k, v, err);
        exit(2);
    }
}

static int produce_all(const char *bootstrap, const char *topic, int partitions, const char *codec) {
    char err[512];
    rd_kafka_conf_t *c = base_conf(bootstrap);
    conf_set(c, "acks", "all");
    conf_set(c, "linger.ms", "5");
    conf_set(c, "message.timeout.ms", "60000");
    conf_set(c, "compression.codec", codec);
    rd_kafka_conf_set_dr_msg_cb(c, dr_cb);
    rd_kafka_conf_set_opaque(c, (void *)(intptr_t)partitions);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
    if (!rk) { fprintf(stderr, "produce_consume: producer: %s\n", err); exit(2); }

    uint8_t kbuf[128], vbuf[4096];
    for (int i = 0; i < g_count; i++) {
        size_t klen = 0, vlen = 0;
        int has_key = make_key(i, kbuf, sizeof(kbuf), &klen);
        int has_val = make_value(i, vbuf, &vlen);
        char idx[32];
        int idxlen = snprintf(idx, sizeof(idx), "%d", i);
        uint8_t bin[4] = {0, 0xff, (uint8_t)i, (uint8_t)(i >> 8)};
        rd_kafka_resp_err_t e;
        int tries = 0;
        do {
            rd_kafka_headers_t *hdrs = rd_kafka_headers_new(2);
            rd_kafka_header_add(hdrs, "idx", -1, idx, (ssize_t)idxlen);
            rd_kafka_header_add(hdrs, "bin", -1, bin, sizeof(bin));
            e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition_of(i, partitions)),
                                  RD_KAFKA_V_KEY((has_key ? kbuf : NULL), klen),
                                  RD_KAFKA_V_VALUE((has_val ? vbuf : NULL), vlen),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs),
                                  RD_KAFKA_V_TIMESTAMP(TS_BASE + i), RD_KAFKA_V_OPAQUE((void *)(intptr_t)i),
                                  RD_KAFKA_V_END);
            if (e) rd_kafka_headers_destroy(hdrs); /* not taken over on failure */
            if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) rd_kafka_poll(rk, 50);
        } while (e == RD_KAFKA_RESP_ERR__QUEUE_FULL && ++tries < 1200);
        if (e) { fail("record %d: produce: %s", i, rd_kafka_err2str(e)); break; }
        rd_kafka_poll(rk, 0);
    }
    rd_kafka_resp_err_t fe = rd_kafka_flush(rk, 60000);
    if (fe) fail("flush: %s (%d still queued)", rd_kafka_err2str(fe), rd_kafka_outq_len(rk));
    rd_kafka_destroy(rk);

    int ok = 0;
    for (int i = 0; i < g_count; i++) {
        if (g_state[i].delivered == 1) ok++;
        else if (g_state[i].delivered == 0) fail("record %d: no delivery report", i);
    }
    /* per partition, delivery offsets are 0..n-1 in production order */
    for (int p = 0; p < partitions; p++) {
        int64_t next = 0;
        for (int i = p; i < g_count; i += partitions) {
            if (g_state[i].delivered != 1) continue;
            if (g_state[i].offset != next)
                fail("partition %d: record %d delivered at offset %" PRId64 ", expected %" PRId64, p, i,
                     g_state[i].offset, next);
            next = g_state[i].offset + 1;
        }
    }
    return ok;
}

static int find_record(int32_t partition, int64_t offset, int partitions) {
    /* record i of partition p is the (i/partitions)-th produced there, and
     * produce_all checked offsets are assigned in that order */
    if (partition < 0 || partition >= partitions || offset < 0) return -1;
    int64_t i = offset * partitions + partition;
    if (i >= g_count) return -1;
    if (g_state[i].partition != partition || g_state[i].offset != offset) return -1;
    return (int)i;
}

static void check_message(const rd_kafka_message_t *m, int partitions) {
    int i = find_record(m->partition, m->offset, partitions);
    if (i < 0) {
        fail("consumed unexpected message at partition %d offset %" PRId64, m->partition, m->offset);
        return;
    }
    rec_state_t *s = &g_state[i];
    if (s->seen++) { fail("record %d (partition %d offset %" PRId64 ") consumed twice", i, m->partition, m->offset); return; }

    uint8_t kbuf[128], vbuf[4096];
    size_t klen = 0, vlen = 0;
    int has_key = make_key(i, kbuf, sizeof(kbuf), &klen);
    int has_val = make_value(i, vbuf, &vlen);
    if (has_key != (m->key != NULL))
        fail("record %d: key is %s, expected %s", i, m->key ? "set" : "NULL", has_key ? "set" : "NULL");
    else if (has_key && (m->key_len != klen || memcmp(m->key, kbuf, klen)))
        fail("record %d: key differs (%zu bytes, expected %zu)", i, m->key_len, klen);
    if (has_val != (m->payload != NULL))
        fail("record %d: value is %s, expected %s", i, m->payload ? "set" : "NULL", has_val ? "set" : "NULL");
    else if (has_val && (m->len != vlen || memcmp(m->payload, vbuf, vlen)))
        fail("record %d: value differs (%zu bytes, expected %zu)", i, m->len, vlen);

    rd_kafka_timestamp_type_t tstype;
    int64_t ts = rd_kafka_message_timestamp(m, &tstype);
    if (tstype != RD_KAFKA_TIMESTAMP_CREATE_TIME || ts != TS_BASE + i)
        fail("record %d: timestamp %" PRId64 " type %d, expected CreateTime %" PRId64, i, ts, (int)tstype,
             TS_BASE + i);

    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(m, &hdrs) || !hdrs) { fail("record %d: no headers", i); return; }
    if (rd_kafka_header_cnt(hdrs) != 2) fail("record %d: %zu headers, expected 2", i, rd_kafka_header_cnt(hdrs));
    const char *name;
    const void *val;
    size_t size;
    char idx[32];
    int idxlen = snprintf(idx, sizeof(idx), "%d", i);
    uint8_t bin[4] = {0, 0xff, (uint8_t)i, (uint8_t)(i >> 8)};
    if (rd_kafka_header_get_all(hdrs, 0, &name, &val, &size) || strcmp(name, "idx") || size != (size_t)idxlen ||
        memcmp(val, idx, size))
        fail("record %d: header 0 is not idx=%s", i, idx);
    if (rd_kafka_header_get_all(hdrs, 1, &name, &val, &size) || strcmp(name, "bin") || size != sizeof(bin) ||
        memcmp(val, bin, size))
        fail("record %d: header 1 is not the 4 binary bytes", i);
}

static int consume_all(const char *bootstrap, const char *topic, int partitions, int expect) {
    char err[512];
    rd_kafka_conf_t *c = base_conf(bootstrap);
    conf_set(c, "group.id", "rill-produce-consume");
    conf_set(c, "enable.auto.commit", "false");
    conf_set(c, "enable.auto.offset.store", "false");
    conf_set(c, "fetch.wait.max.ms", "100");
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof(err));
    if (!rk) { fprintf(stderr, "produce_consume: consumer: %s\n", err); exit(2); }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; p++)
        rd_kafka_topic_partition_list_add(tl, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, tl);
    rd_kafka_topic_partition_list_destroy(tl);
    if (e) { fprintf(stderr, "produce_consume: assign: %s\n", rd_kafka_err2str(e)); exit(2); }

    int got = 0;
    int64_t deadline = now_ms() + 60000;
    while (got < expect && now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m) continue;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) fail("consume: %s", rd_kafka_message_errstr(m));
        } else {
            check_message(m, partitions);
            got++;
        }
        rd_kafka_message_destroy(m);
    }
    if (got < expect) fail("consumed %d of %d delivered records within 60 s", got, expect);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return got;
}

int main(int argc, char **argv) {
    if (argc < 5 || argc > 6) {
        fprintf(stderr, "usage: %s BOOTSTRAP TOPIC COUNT PARTITIONS [CODEC]\n", argv[0]);
        return 2;
    }
    const char *bootstrap = argv[1], *topic = argv[2];
    g_count = atoi(argv[3]);
    int partitions = atoi(argv[4]);
    const char *codec = argc == 6 ? argv[5] : "none";
    if (g_count <= 0 || partitions <= 0) { fprintf(stderr, "produce_consume: bad COUNT or PARTITIONS\n"); return 2; }
    g_state = calloc((size_t)g_count, sizeof(*g_state));
    if (!g_state) return 2;

    int delivered = produce_all(bootstrap, topic, partitions, codec);
    if (delivered != g_count) fail("%d of %d records delivered", delivered, g_count);
    int consumed = consume_all(bootstrap, topic, partitions, delivered);
    for (int i = 0; i < g_count; i++)
        if (g_state[i].delivered == 1 && !g_state[i].seen)
            fail("record %d (partition %d offset %" PRId64 ") was not consumed", i, g_state[i].partition,
                 g_state[i].offset);
    free(g_state);
    if (g_errors) {
        fprintf(stderr, "produce_consume: %d check(s) failed (%d delivered, %d consumed)\n", g_errors, delivered,
                consumed);
        return 1;
    }
    printf("produce_consume: OK %d records over %d partitions (%s)\n", g_count, partitions, codec);
    return 0;
}
