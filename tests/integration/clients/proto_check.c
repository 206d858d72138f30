/*
 * proto_check.c — drives rilld at the protocol versions the real clients on
 * this machine do not use (librdkafka 2.0.2 stops at Fetch v11, kafka-python
 * at v10): flexible Produce v11, Fetch v12 by name and v13-v16 by topic id,
 * long poll woken by an append, max_bytes / partition_max_bytes with the
 * one-whole-batch rule, ListOffsets v8 (earliest, latest, max timestamp, by
 * time), Metadata v12 topic ids, DescribeCluster, DeleteTopics v6 by id, and
 * the oldest served / refused versions. Requests are encoded with Rill's codec
 * (whose declarations scripts/check_schemas.py checks against Kafka's specs).
 *
 * usage: proto_check HOST PORT TOPIC   — exit 0 when every check passed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto/proto.h"

static const char *g_host;
static int g_port;
static int g_failed;
static int32_t g_corr = 100;

#define CHECK(cond, ...)                                         \
    do {                                                         \
        if (!(cond)) {                                           \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                        \
            fprintf(stderr, "\n");                               \
            g_failed++;                                          \
        }                                                        \
    } while (0)

static int conn_open(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    inet_pton(AF_INET, g_host, &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror("connect");
        exit(2);
    }
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void io_all(int fd, void *p, size_t n, bool wr) {
    uint8_t *b = p;
    while (n) {
        ssize_t r = wr ? write(fd, b, n) : read(fd, b, n);
        if (r <= 0) {
            fprintf(stderr, "FAIL: connection %s (%s)\n", wr ? "write" : "read", r == 0 ? "closed" : strerror(errno));
            exit(1);
        }
        b += r;
        n -= (size_t)r;
    }
}

/* Sends a request; returns its correlation id. */
static int32_t send_req(int fd, int16_t key, int16_t ver, const void *body) {
    const kp_api_desc_t *a = kp_api_find(key);
    rb_chain_t c;
    rb_chain_init(&c);
    rb_buf_u32(&c.buf, 0);
    kp_req_header_t h = {key, ver, ++g_corr, {"proto-check", 11}};
    kp_req_header_encode(&h, &c);
    kp_encode(a->req, ver, kp_api_flexible(a, ver), body, &c);
    rb_wbe32(c.buf.p, (uint32_t)(c.buf.len - 4));
    io_all(fd, c.buf.p, c.buf.len, true);
    rb_chain_free(&c);
    return h.correlation_id;
}

/* Reads the response to corr and decodes it into out (arena-owned). */
static void recv_resp(int fd, int16_t key, int16_t ver, int32_t corr, void *out, rb_arena_t *ar) {
    const kp_api_desc_t *a = kp_api_find(key);
    uint8_t sz[4];
    io_all(fd, sz, 4, false);
    uint32_t n = rb_be32(sz);
    uint8_t *buf = rb_arena_alloc(ar, n);
    io_all(fd, buf, n, false);
    rb_rd_t rd;
    rb_rd_init(&rd, buf, n);
    int32_t got = rb_rd_i32(&rd);
    CHECK(got == corr, "%s v%d: correlation id %d, expected %d", a->name, ver, got, corr);
    if (kp_resp_header_version(key, ver) >= 1) {
        uint32_t nt = rb_rd_uvarint32(&rd);
        CHECK(nt == 0, "unexpected response header tags");
    }
    int rc = kp_decode(a->resp, ver, kp_api_flexible(a, ver), &rd, out, ar);
    CHECK(rc == 0, "%s v%d: response does not decode (%d)", a->name, ver, rc);
    CHECK(rb_rd_left(&rd) == 0, "%s v%d: %zu trailing bytes in the response", a->name, ver, rb_rd_left(&rd));
}

static void call(int fd, int16_t key, int16_t ver, const void *body, void *out, rb_arena_t *ar) {
    recv_resp(fd, key, ver, send_req(fd, key, ver, body), out, ar);
}

static kp_str_t S(const char *s) {
    kp_str_t x = {s, (int32_t)strlen(s)};
    return x;
}

/* ---- building requests ---------------------------------------------------------- */

static void produce(int fd, int16_t ver, const char *topic, const rb_buf_t *batch, int64_t *base, int16_t *err,
                    rb_arena_t *ar) {
    kp_produce_req_t req;
    kp_init_defaults(&kp_produce_req_desc, &req);
    kp_produce_req_topic_produce_data_t td;
    kp_init_defaults(&kp_produce_req_topic_produce_data_desc, &td);
    kp_produce_req_partition_produce_data_t pd;
    kp_init_defaults(&kp_produce_req_partition_produce_data_desc, &pd);
    pd.index = 0;
    pd.records.p = batch->p;
    pd.records.len = (int32_t)batch->len;
    td.name = S(topic);
    td.partition_data.n = 1;
    td.partition_data.v = &pd;
    req.acks = -1;
    req.timeout_ms = 10000;
    req.topic_data.n = 1;
    req.topic_data.v = &td;
    kp_produce_resp_t resp;
    call(fd, KP_API_PRODUCE, ver, &req, &resp, ar);
    CHECK(resp.responses.n == 1 && resp.responses.v[0].partition_responses.n == 1, "produce v%d: shape", ver);
    *base = resp.responses.v[0].partition_responses.v[0].base_offset;
    *err = resp.responses.v[0].partition_responses.v[0].error_code;
    if (ver >= 2) CHECK(resp.responses.v[0].partition_responses.v[0].log_append_time_ms == -1, "log_append_time");
}

static void fetch_req_init(kp_fetch_req_t *req, kp_fetch_req_fetch_topic_t *ft, kp_fetch_req_fetch_partition_t *fp,
                           const char *topic, const kp_uuid_t *id, int64_t offset, int32_t pmax, int32_t max,
                           int32_t wait_ms) {
    kp_init_defaults(&kp_fetch_req_desc, req);
    kp_init_defaults(&kp_fetch_req_fetch_topic_desc, ft);
    kp_init_defaults(&kp_fetch_req_fetch_partition_desc, fp);
    fp->partition = 0;
    fp->fetch_offset = offset;
    fp->partition_max_bytes = pmax;
    ft->topic = S(topic);
    if (id) ft->topic_id = *id;
    ft->partitions.n = 1;
    ft->partitions.v = fp;
    req->replica_id = -1;
    req->max_wait_ms = wait_ms;
    req->min_bytes = 1;
    req->max_bytes = max;
    req->session_epoch = -1;
    req->topics.n = 1;
    req->topics.v = ft;
}

/* Counts whole batches in a records blob; fills the first base offset. */
static int count_batches(const kp_records_t *r, int64_t *first_base) {
    int n = 0;
    size_t pos = 0;
    *first_base = -1;
    while (r->len > 0 && pos < (size_t)r->len) {
        kp_batch_hdr_t h;
        if (kp_batch_hdr_parse(r->p + pos, (size_t)r->len - pos, &h) != 0) return -1;
        if (n == 0) *first_base = h.base_offset;
        pos += KP_BATCH_LOG_OVERHEAD + (size_t)h.batch_length;
        n++;
    }
    return n;
}

static void make_batch(rb_buf_t *b, int i, size_t value_len, int64_t ts) {
    char *val = malloc(value_len);
    memset(val, 'a' + (i % 26), value_len);
    char key[32];
    snprintf(key, sizeof key, "key-%d", i);
    kp_record_in_t rec = {{(const uint8_t *)key, (int32_t)strlen(key)}, {(const uint8_t *)val, (int32_t)value_len},
                          ts, 0, NULL, NULL};
    rb_buf_reset(b);
    kp_batch_build(b, 0, KP_COMP_NONE, &rec, 1, -1, -1, -1, 0);
    free(val);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: proto_check HOST PORT TOPIC\n");
        return 2;
    }
    g_host = argv[1];
    g_port = atoi(argv[2]);
    const char *topic = argv[3];
    int fd = conn_open();
    rb_arena_t ar;
    rb_arena_init(&ar, 0);

    /* ApiVersions v3: Fetch advertised up to 16, Produce from 0 */
    kp_api_versions_req_t avq;
    kp_init_defaults(&kp_api_versions_req_desc, &avq);
    avq.client_software_name = S("proto-check");
    avq.client_software_version = S("1");
    kp_api_versions_resp_t av;
    call(fd, KP_API_API_VERSIONS, 3, &avq, &av, &ar);
    CHECK(av.error_code == 0, "ApiVersions error %d", av.error_code);
    bool fetch16 = false, produce0 = false;
    for (int i = 0; i < av.api_keys.n; i++) {
        if (av.api_keys.v[i].api_key == 1 && av.api_keys.v[i].max_version == 16) fetch16 = true;
        if (av.api_keys.v[i].api_key == 0 && av.api_keys.v[i].min_version == 0) produce0 = true;
    }
    CHECK(fetch16 && produce0, "ApiVersions: Fetch max 16 and Produce min 0 expected");

    /* Metadata v12: auto-create, cluster id, topic id */
    kp_metadata_req_t mq;
    kp_init_defaults(&kp_metadata_req_desc, &mq);
    kp_metadata_req_metadata_request_topic_t mt;
    kp_init_defaults(&kp_metadata_req_metadata_request_topic_desc, &mt);
    mt.name = S(topic);
    mq.topics.n = 1;
    mq.topics.v = &mt;
    mq.allow_auto_topic_creation = true;
    kp_metadata_resp_t md;
    call(fd, KP_API_METADATA, 12, &mq, &md, &ar);
    CHECK(md.cluster_id.len > 0, "Metadata v12: no cluster id");
    CHECK(md.controller_id == md.brokers.v[0].node_id, "controller is this node");
    CHECK(md.topics.n == 1 && md.topics.v[0].error_code == 0, "Metadata v12: topic not auto-created");
    kp_uuid_t tid = md.topics.v[0].topic_id;
    static const kp_uuid_t zero;
    CHECK(memcmp(&tid, &zero, 16) != 0, "Metadata v12: zero topic id");

    /* Produce v11 (flexible) and v3 (oldest served), v2 refused */
    rb_buf_t batch;
    rb_buf_init(&batch);
    int64_t base = -1;
    int16_t err = -1;
    int64_t t0 = 1700000000000;
    for (int i = 0; i < 5; i++) {
        make_batch(&batch, i, 1000, t0 + i * 1000);
        produce(fd, i % 2 ? 3 : 11, topic, &batch, &base, &err, &ar);
        CHECK(err == 0 && base == i, "produce %d: err %d base %lld", i, err, (long long)base);
    }
    produce(fd, 2, topic, &batch, &base, &err, &ar);
    CHECK(err == RB_UNSUPPORTED_VERSION, "Produce v2: expected UNSUPPORTED_VERSION, got %d", err);

    /* Fetch v16 by topic id: all 5 batches, byte-exact apart from the base offset */
    kp_fetch_req_t fq;
    kp_fetch_req_fetch_topic_t ft;
    kp_fetch_req_fetch_partition_t fp;
    kp_fetch_resp_t fr;
    fetch_req_init(&fq, &ft, &fp, "", &tid, 0, 1 << 20, 1 << 20, 500);
    call(fd, KP_API_FETCH, 16, &fq, &fr, &ar);
    CHECK(fr.error_code == 0 && fr.session_id == 0, "Fetch v16: error %d session %d", fr.error_code, fr.session_id);
    CHECK(fr.responses.n == 1 && !memcmp(&fr.responses.v[0].topic_id, &tid, 16), "Fetch v16: topic id echoed");
    kp_fetch_resp_partition_data_t *pd = &fr.responses.v[0].partitions.v[0];
    int64_t first;
    CHECK(pd->error_code == 0 && pd->high_watermark == 5, "Fetch v16: err %d hw %lld", pd->error_code,
          (long long)pd->high_watermark);
    CHECK(count_batches(&pd->records, &first) == 5 && first == 0, "Fetch v16: 5 batches from 0");
    make_batch(&batch, 4, 1000, t0 + 4000);
    size_t one = batch.len;
    CHECK((size_t)pd->records.len == 5 * one, "Fetch v16: %d bytes, expected %zu", pd->records.len, 5 * one);
    CHECK(!memcmp(pd->records.p + 4 * one + 8, batch.p + 8, one - 8), "Fetch v16: batch 4 not byte-exact");

    /* unknown topic id */
    kp_uuid_t bogus = tid;
    bogus.b[0] ^= 0xff;
    fetch_req_init(&fq, &ft, &fp, "", &bogus, 0, 1 << 20, 1 << 20, 0);
    call(fd, KP_API_FETCH, 13, &fq, &fr, &ar);
    CHECK(fr.responses.v[0].partitions.v[0].error_code == RB_UNKNOWN_TOPIC_ID, "Fetch v13 bogus id: %d",
          fr.responses.v[0].partitions.v[0].error_code);

    /* Fetch v12 by name, partition_max_bytes smaller than a batch: exactly one */
    fetch_req_init(&fq, &ft, &fp, topic, NULL, 1, 100, 1 << 20, 0);
    call(fd, KP_API_FETCH, 12, &fq, &fr, &ar);
    pd = &fr.responses.v[0].partitions.v[0];
    CHECK(count_batches(&pd->records, &first) == 1 && first == 1, "Fetch v12 pmax 100: one whole batch from 1");
    /* max_bytes 1 (response limit): still one whole batch */
    fetch_req_init(&fq, &ft, &fp, topic, NULL, 2, 1 << 20, 1, 0);
    call(fd, KP_API_FETCH, 4, &fq, &fr, &ar);
    pd = &fr.responses.v[0].partitions.v[0];
    CHECK(count_batches(&pd->records, &first) == 1 && first == 2, "Fetch v4 max_bytes 1: one whole batch from 2");
    /* partition_max_bytes of 2.5 batches: two whole batches */
    fetch_req_init(&fq, &ft, &fp, topic, NULL, 0, (int32_t)(one * 5 / 2), 1 << 20, 0);
    call(fd, KP_API_FETCH, 11, &fq, &fr, &ar);
    pd = &fr.responses.v[0].partitions.v[0];
    CHECK(count_batches(&pd->records, &first) == 2, "Fetch v11 pmax 2.5 batches: two batches");
    /* beyond the end: OFFSET_OUT_OF_RANGE; at the end: empty, no error */
    fetch_req_init(&fq, &ft, &fp, topic, NULL, 99, 1 << 20, 1 << 20, 0);
    call(fd, KP_API_FETCH, 12, &fq, &fr, &ar);
    CHECK(fr.responses.v[0].partitions.v[0].error_code == RB_OFFSET_OUT_OF_RANGE, "Fetch past end");
    fetch_req_init(&fq, &ft, &fp, topic, NULL, 5, 1 << 20, 1 << 20, 0);
    call(fd, KP_API_FETCH, 12, &fq, &fr, &ar);
    CHECK(fr.responses.v[0].partitions.v[0].error_code == 0 && fr.responses.v[0].partitions.v[0].records.len <= 0,
          "Fetch at the end: empty, no error");
    /* Fetch v3 is refused per partition */
    fetch_req_init(&fq, &ft, &fp, topic, NULL, 0, 1 << 20, 1 << 20, 0);
    call(fd, KP_API_FETCH, 3, &fq, &fr, &ar);
    CHECK(fr.responses.v[0].partitions.v[0].error_code == RB_UNSUPPORTED_VERSION, "Fetch v3: UNSUPPORTED_VERSION");
    /* a fetch session id we never gave out */
    fetch_req_init(&fq, &ft, &fp, topic, NULL, 0, 1 << 20, 1 << 20, 0);
    fq.session_id = 1234;
    fq.session_epoch = 1;
    call(fd, KP_API_FETCH, 12, &fq, &fr, &ar);
    CHECK(fr.error_code == RB_FETCH_SESSION_ID_NOT_FOUND, "Fetch with a foreign session id: %d", fr.error_code);

    /* long poll: a fetch parked at the end is woken by an append from another connection */
    int fd2 = conn_open();
    fetch_req_init(&fq, &ft, &fp, "", &tid, 5, 1 << 20, 1 << 20, 5000);
    int64_t t_start = rb_mono_ms();
    int32_t corr = send_req(fd, KP_API_FETCH, 16, &fq);
    usleep(300 * 1000);
    make_batch(&batch, 5, 1000, t0 + 5000);
    produce(fd2, 9, topic, &batch, &base, &err, &ar);
    CHECK(err == 0 && base == 5, "produce during long poll");
    recv_resp(fd, KP_API_FETCH, 16, corr, &fr, &ar);
    int64_t waited = rb_mono_ms() - t_start;
    pd = &fr.responses.v[0].partitions.v[0];
    CHECK(count_batches(&pd->records, &first) == 1 && first == 5, "long poll: the new batch");
    CHECK(waited >= 250 && waited < 2500, "long poll answered after %lld ms (expected soon after the append)",
          (long long)waited);
    /* and a fetch with nothing to return waits max_wait_ms */
    fetch_req_init(&fq, &ft, &fp, topic, NULL, 6, 1 << 20, 1 << 20, 400);
    t_start = rb_mono_ms();
    call(fd, KP_API_FETCH, 12, &fq, &fr, &ar);
    waited = rb_mono_ms() - t_start;
    CHECK(waited >= 350 && waited < 2000, "idle fetch answered after %lld ms, max_wait_ms 400", (long long)waited);

    /* ListOffsets v8 and v0 */
    kp_list_offsets_req_t lq;
    kp_init_defaults(&kp_list_offsets_req_desc, &lq);
    kp_list_offsets_req_list_offsets_topic_t lt;
    kp_init_defaults(&kp_list_offsets_req_list_offsets_topic_desc, &lt);
    kp_list_offsets_req_list_offsets_partition_t lp;
    kp_init_defaults(&kp_list_offsets_req_list_offsets_partition_desc, &lp);
    lt.name = S(topic);
    lt.partitions.n = 1;
    lt.partitions.v = &lp;
    lq.replica_id = -1;
    lq.topics.n = 1;
    lq.topics.v = &lt;
    struct {
        int64_t ts, want_off, want_ts;
    } cases[] = {{-2, 0, -1}, {-1, 6, -1}, {-3, 5, t0 + 5000}, {t0 + 2500, 3, t0 + 3000}, {t0 + 99999, -1, -1}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        lp.timestamp = cases[i].ts;
        kp_list_offsets_resp_t lr;
        call(fd, KP_API_LIST_OFFSETS, 8, &lq, &lr, &ar);
        kp_list_offsets_resp_list_offsets_partition_response_t *p = &lr.topics.v[0].partitions.v[0];
        CHECK(p->error_code == 0 && p->offset == cases[i].want_off && p->timestamp == cases[i].want_ts,
              "ListOffsets v8 ts %lld: err %d offset %lld ts %lld (want %lld / %lld)", (long long)cases[i].ts,
              p->error_code, (long long)p->offset, (long long)p->timestamp, (long long)cases[i].want_off,
              (long long)cases[i].want_ts);
    }
    lp.timestamp = -1;
    lp.max_num_offsets = 1;
    kp_list_offsets_resp_t lr0;
    call(fd, KP_API_LIST_OFFSETS, 0, &lq, &lr0, &ar);
    CHECK(lr0.topics.v[0].partitions.v[0].old_style_offsets.n == 1 &&
              lr0.topics.v[0].partitions.v[0].old_style_offsets.v[0] == 6,
          "ListOffsets v0 latest");

    /* DescribeCluster v1 */
    kp_describe_cluster_req_t dq;
    kp_init_defaults(&kp_describe_cluster_req_desc, &dq);
    dq.endpoint_type = 1;
    kp_describe_cluster_resp_t dr;
    call(fd, KP_API_DESCRIBE_CLUSTER, 1, &dq, &dr, &ar);
    CHECK(dr.error_code == 0 && dr.brokers.n == 1 && dr.cluster_id.len == md.cluster_id.len &&
              !memcmp(dr.cluster_id.p, md.cluster_id.p, (size_t)md.cluster_id.len),
          "DescribeCluster v1");

    /* DeleteTopics v6 by id, then the topic is gone */
    kp_delete_topics_req_t xq;
    kp_init_defaults(&kp_delete_topics_req_desc, &xq);
    kp_delete_topics_req_delete_topic_state_t xs;
    kp_init_defaults(&kp_delete_topics_req_delete_topic_state_desc, &xs);
    xs.name.len = -1;
    xs.topic_id = tid;
    xq.topics.n = 1;
    xq.topics.v = &xs;
    xq.timeout_ms = 10000;
    kp_delete_topics_resp_t xr;
    call(fd, KP_API_DELETE_TOPICS, 6, &xq, &xr, &ar);
    CHECK(xr.responses.n == 1 && xr.responses.v[0].error_code == 0 && xr.responses.v[0].name.len == (int32_t)strlen(topic),
          "DeleteTopics v6 by id: err %d", xr.responses.n ? xr.responses.v[0].error_code : -1);
    mq.allow_auto_topic_creation = false;
    call(fd, KP_API_METADATA, 12, &mq, &md, &ar);
    CHECK(md.topics.v[0].error_code == RB_UNKNOWN_TOPIC_OR_PARTITION, "deleted topic still in Metadata");

    close(fd);
    close(fd2);
    rb_buf_free(&batch);
    rb_arena_free(&ar);
    if (g_failed) {
        fprintf(stderr, "proto_check: %d check(s) failed\n", g_failed);
        return 1;
    }
    printf("proto_check: all checks passed\n");
    return 0;
}
