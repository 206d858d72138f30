/* gen_corpus.c — writes the seed corpus of the request fuzz target: for every
 * declared API and version, a header plus a default request body, and a few
 * populated requests (Metadata with topics, Produce with a batch, Fetch).
 * Build and run: see tests/fuzz/README.md. */
#include <stdio.h>
#include <stdlib.h>

#include "proto/proto.h"

static void emit(const char *dir, const char *name, int16_t key, int16_t v, const void *body) {
    const kp_api_desc_t *a = kp_api_find(key);
    kp_req_header_t h = {key, v, 7, {"seed", 4}};
    rb_chain_t c;
    rb_chain_init(&c);
    kp_req_header_encode(&h, &c);
    kp_encode(a->req, v, kp_api_flexible(a, v), body, &c);
    char path[512];
    snprintf(path, sizeof(path), "%s/%s_%d", dir, name, v);
    FILE *f = fopen(path, "wb");
    fwrite(c.buf.p, 1, c.buf.len, f);
    fclose(f);
    rb_chain_free(&c);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "corpus";
    for (int i = 0; i < kp_api_ndescs; i++) {
        const kp_api_desc_t *a = &kp_api_descs[i];
        void *body = calloc(1, a->req->size);
        kp_init_defaults(a->req, body);
        /* a few versions per API: first, first flexible, last */
        int16_t vs[3] = {a->min_ver, a->flex_min >= 0 ? a->flex_min : a->min_ver, a->max_ver};
        for (int k = 0; k < 3; k++) emit(dir, a->name, a->key, vs[k], body);
        free(body);
    }
    kp_metadata_req_t md;
    kp_init_defaults(&kp_metadata_req_desc, &md);
    kp_metadata_req_metadata_request_topic_t t[2];
    kp_init_defaults(&kp_metadata_req_metadata_request_topic_desc, &t[0]);
    kp_init_defaults(&kp_metadata_req_metadata_request_topic_desc, &t[1]);
    t[0].name.p = "orders"; t[0].name.len = 6;
    t[1].name.p = "clicks"; t[1].name.len = 6;
    md.topics.n = 2; md.topics.v = t;
    emit(dir, "MetadataTopics", KP_API_METADATA, 4, &md);
    emit(dir, "MetadataTopics", KP_API_METADATA, 12, &md);
    kp_record_in_t rec = {{(const uint8_t *)"k", 1}, {(const uint8_t *)"value", 5}, 1700000000000, 0, NULL, NULL};
    rb_buf_t batch;
    rb_buf_init(&batch);
    kp_batch_build(&batch, 0, KP_COMP_NONE, &rec, 1, -1, -1, -1, 0);
    kp_produce_req_t pr;
    kp_init_defaults(&kp_produce_req_desc, &pr);
    kp_produce_req_topic_produce_data_t td;
    kp_init_defaults(&kp_produce_req_topic_produce_data_desc, &td);
    kp_produce_req_partition_produce_data_t pd;
    kp_init_defaults(&kp_produce_req_partition_produce_data_desc, &pd);
    pd.records.p = batch.p; pd.records.len = (int32_t)batch.len;
    td.name.p = "orders"; td.name.len = 6;
    td.partition_data.n = 1; td.partition_data.v = &pd;
    pr.acks = -1; pr.timeout_ms = 1000;
    pr.topic_data.n = 1; pr.topic_data.v = &td;
    emit(dir, "ProduceBatch", KP_API_PRODUCE, 3, &pr);
    emit(dir, "ProduceBatch", KP_API_PRODUCE, 9, &pr);
    kp_fetch_req_t fr;
    kp_init_defaults(&kp_fetch_req_desc, &fr);
    kp_fetch_req_fetch_topic_t ft;
    kp_init_defaults(&kp_fetch_req_fetch_topic_desc, &ft);
    kp_fetch_req_fetch_partition_t fp;
    kp_init_defaults(&kp_fetch_req_fetch_partition_desc, &fp);
    fp.partition = 0; fp.fetch_offset = 5; fp.partition_max_bytes = 1048576;
    ft.topic.p = "orders"; ft.topic.len = 6;
    ft.partitions.n = 1; ft.partitions.v = &fp;
    fr.max_wait_ms = 500; fr.min_bytes = 1; fr.max_bytes = 52428800;
    fr.topics.n = 1; fr.topics.v = &ft;
    emit(dir, "FetchOne", KP_API_FETCH, 4, &fr);
    emit(dir, "FetchOne", KP_API_FETCH, 12, &fr);
    emit(dir, "FetchOne", KP_API_FETCH, 16, &fr);
    rb_buf_free(&batch);
    return 0;
}
