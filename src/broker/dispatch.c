/*
 * dispatch.c — from a request frame to a handler and back: header decode,
 * the served-API table (the source of ApiVersions, B4), version checks with
 * Kafka's answers, request decode into a capped arena, response encode into
 * the connection's next in-order slot.
 */
#include "broker/broker.h"

#include <stdio.h>
#include <stdlib.h>

/* Per-request arena cap: decoded structures point into the frame, so the
 * arena holds only arrays of small structs; 4x the frame plus slack bounds
 * what any request can make us allocate. */
#define BK_ARENA_SLACK (1u << 20)

/* Served APIs. Every API is advertised from v0 (librdkafka 2.0.2 needs v0 in
 * the Produce range to compress and in FindCoordinator's to use groups);
 * versions below serve_min are answered with UNSUPPORTED_VERSION per item,
 * as Kafka 4.0 does. Maxima follow Kafka 3.8 so kafka-python infers a
 * modern broker (see docs/protocol.md). */
const bk_api_t bk_apis[] = {
    {0, 0, 3, 11, bk_handle_produce, bk_produce_error_response},
    {1, 0, 4, 16, bk_handle_fetch, bk_fetch_error_response},
    {2, 0, 0, 8, bk_handle_list_offsets, bk_list_offsets_error_response},
    {3, 0, 0, 12, bk_handle_metadata, bk_metadata_error_response},
    {8, 0, 0, 8, bk_handle_offset_commit, bk_offset_commit_error_response},
    {9, 0, 0, 8, bk_handle_offset_fetch, NULL},
    {10, 0, 0, 5, bk_handle_find_coordinator, NULL},
    {11, 0, 0, 9, bk_handle_join_group, NULL},
    {12, 0, 0, 4, bk_handle_heartbeat, NULL},
    {13, 0, 0, 5, bk_handle_leave_group, NULL},
    {14, 0, 0, 5, bk_handle_sync_group, NULL},
    {15, 0, 0, 5, bk_handle_describe_groups, NULL},
    {16, 0, 0, 4, bk_handle_list_groups, NULL},
    {18, 0, 0, 3, bk_handle_api_versions, NULL},
    {19, 0, 0, 7, bk_handle_create_topics, bk_create_topics_error_response},
    {20, 0, 0, 6, bk_handle_delete_topics, bk_delete_topics_error_response},
    {21, 0, 0, 2, bk_handle_delete_records, NULL},
    {22, 0, 0, 5, bk_handle_init_producer_id, NULL},
    {24, 0, 0, 3, bk_handle_add_partitions_to_txn, NULL},
    {25, 0, 0, 3, bk_handle_add_offsets_to_txn, NULL},
    {26, 0, 0, 3, bk_handle_end_txn, NULL},
    {28, 0, 0, 3, bk_handle_txn_offset_commit, NULL},
    {32, 0, 0, 4, bk_handle_describe_configs, NULL},
    {33, 0, 0, 2, bk_handle_alter_configs, NULL},
    {35, 0, 0, 4, bk_handle_describe_log_dirs, NULL},
    {37, 0, 0, 3, bk_handle_create_partitions, NULL},
    {42, 0, 0, 2, bk_handle_delete_groups, NULL},
    {44, 0, 0, 1, bk_handle_incremental_alter_configs, NULL},
    {47, 0, 0, 0, bk_handle_offset_delete, NULL},
    {60, 0, 0, 1, bk_handle_describe_cluster, NULL},
    {61, 0, 0, 0, bk_handle_describe_producers, NULL},
    {65, 0, 0, 0, bk_handle_describe_transactions, NULL},
    {66, 0, 0, 1, bk_handle_list_transactions, NULL},
};
const int bk_napis = (int)RB_ARRAY_LEN(bk_apis);

static const bk_api_t *bk_api_lookup(int16_t key) {
    for (int i = 0; i < bk_napis; i++)
        if (bk_apis[i].key == key) return &bk_apis[i];
    return NULL;
}

void *bk_arena_alloc_or_die(rb_arena_t *a, size_t n) {
    void *p = rb_arena_alloc(a, n);
    if (!p) {
        fprintf(stderr, "rilld: out of memory (%zu bytes for a response)\n", n);
        abort();
    }
    return p;
}

kp_str_t bk_strn(bk_req_t *r, const char *s, size_t n) {
    kp_str_t out = {"", 0};
    char *d = rb_arena_alloc(&r->r_arena, n + 1);
    if (!d) return out;
    memcpy(d, s, n);
    out.p = d;
    out.len = (int32_t)n;
    return out;
}

kp_str_t bk_str(bk_req_t *r, const char *s) {
    if (!s) {
        kp_str_t n = {"", -1};
        return n;
    }
    return bk_strn(r, s, strlen(s));
}

void bk_req_free(bk_req_t *r) {
    if (!r) return;
    rb_arena_free(&r->r_arena);
    free(r->r_frame);
    free(r);
}

void *bk_req_resp_new(bk_req_t *r) {
    void *resp = rb_arena_alloc(&r->r_arena, r->r_api->resp->size);
    if (!resp) {
        fprintf(stderr, "rilld: out of memory building a response\n");
        abort();
    }
    kp_init_defaults(r->r_api->resp, resp);
    return resp;
}

static void bk_encode_into_slot(rn_slot_t *slot, int16_t key, int16_t ver, int32_t corr, const kp_struct_desc_t *d,
                                bool flex, const void *resp) {
    rb_chain_t c;
    rb_chain_init(&c);
    rb_buf_u32(&c.buf, 0); /* size, patched below */
    kp_resp_header_encode(key, ver, corr, &c);
    kp_encode(d, ver, flex, resp, &c);
    size_t total = rb_chain_len(&c);
    rb_wbe32(c.buf.p, (uint32_t)(total - 4));
    rn_slot_complete(slot, &c);
}

void bk_req_respond(bk_req_t *r, void *resp) {
    bool flex = kp_api_flexible(r->r_api, r->r_hdr.api_version);
    /* completing the slot may drop the last reference to a closed
     * connection: take its name first */
    char peer[64] = "";
    if (rb_log_min_level <= RB_LOG_DEBUG) snprintf(peer, sizeof(peer), "%s", rn_conn_peer(r->r_conn));
    bk_encode_into_slot(r->r_slot, r->r_hdr.api_key, r->r_hdr.api_version, r->r_hdr.correlation_id, r->r_api->resp,
                        flex, resp);
    int64_t us = rb_mono_us() - r->r_start_us;
    if (rb_log_min_level <= RB_LOG_DEBUG)
        rb_debug("%s v%d corr %d from %s answered in %lld us", r->r_api->name, r->r_hdr.api_version,
                 r->r_hdr.correlation_id, peer, (long long)us);
    bk_req_free(r);
}

void bk_req_respond_none(bk_req_t *r) {
    rn_slot_complete_empty(r->r_slot);
    bk_req_free(r);
}

/* ApiVersions for a version we do not serve: answer in v0 format with
 * UNSUPPORTED_VERSION and our list, so the client retries with one we do. */
static void bk_api_versions_unsupported(rn_conn_t *c, int32_t corr) {
    rb_chain_t ch;
    rb_chain_init(&ch);
    rb_buf_u32(&ch.buf, 0);
    rb_buf_u32(&ch.buf, (uint32_t)corr);
    rb_buf_u16(&ch.buf, RB_UNSUPPORTED_VERSION);
    rb_buf_u32(&ch.buf, (uint32_t)bk_napis);
    for (int i = 0; i < bk_napis; i++) {
        rb_buf_u16(&ch.buf, (uint16_t)bk_apis[i].key);
        rb_buf_u16(&ch.buf, (uint16_t)bk_apis[i].min_ver);
        rb_buf_u16(&ch.buf, (uint16_t)bk_apis[i].max_ver);
    }
    rb_wbe32(ch.buf.p, (uint32_t)(ch.buf.len - 4));
    rn_slot_t *slot = rn_conn_slot(c);
    rn_slot_complete(slot, &ch);
}

void bk_dispatch_frame(rn_conn_t *c, uint8_t *frame, size_t len, void *ud) {
    bk_broker_t *b = ud;
    rb_rd_t rd;
    rb_rd_init(&rd, frame, len);
    kp_req_header_t h;
    int rc = kp_req_header_decode(&rd, &h);
    const bk_api_t *api = rc == RB_ERR_TRUNCATED || rc == RB_ERR_MALFORMED ? NULL : bk_api_lookup(h.api_key);
    char why[200];
    if (rc == RB_ERR_TRUNCATED || rc == RB_ERR_MALFORMED) {
        snprintf(why, sizeof(why), "malformed request header (%s)", rb_err_name(rc));
        goto close;
    }
    if (!api) {
        snprintf(why, sizeof(why), "unsupported API key %d (version %d)", h.api_key, h.api_version);
        goto close;
    }
    if (h.api_version < api->min_ver || h.api_version > api->max_ver || rc == RB_ERR_NOT_FOUND) {
        if (h.api_key == KP_API_API_VERSIONS) {
            bk_api_versions_unsupported(c, h.correlation_id);
            free(frame);
            return;
        }
        snprintf(why, sizeof(why), "unsupported version %d of API key %d", h.api_version, h.api_key);
        goto close;
    }
    bk_req_t *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(why, sizeof(why), "out of memory");
        goto close;
    }
    r->r_broker = b;
    r->r_conn = c;
    r->r_frame = frame;
    r->r_frame_len = len;
    r->r_hdr = h;
    r->r_api = kp_api_find(h.api_key);
    r->r_start_us = rb_mono_us();
    rb_arena_init(&r->r_arena, len * 4 + BK_ARENA_SLACK);
    r->r_body = rb_arena_alloc(&r->r_arena, r->r_api->req->size);
    bool flex = kp_api_flexible(r->r_api, h.api_version);
    rc = r->r_body ? kp_decode(r->r_api->req, h.api_version, flex, &rd, r->r_body, &r->r_arena) : RB_ERR_NOMEM;
    /* trailing bytes after a well-formed body are ignored, as Kafka does */
    if (rc) {
        /* A request we cannot decode: Kafka closes the connection (there is no
         * way to build a per-item error response for bytes we cannot read). */
        snprintf(why, sizeof(why), "cannot decode %s v%d request (corr %d, %zu bytes): %s", r->r_api->name,
                 h.api_version, h.correlation_id, len, rb_err_name(rc));
        r->r_frame = NULL;
        bk_req_free(r);
        goto close;
    }
    /* the cap bounds what untrusted lengths can make us allocate while
     * decoding; the response is sized by our own state, so lift it now */
    r->r_arena.ra_cap = 0;
    r->r_slot = rn_conn_slot(c);
    if (h.api_version < api->serve_min) {
        void *resp = bk_req_resp_new(r);
        if (api->error_response) api->error_response(r, RB_UNSUPPORTED_VERSION, resp);
        rb_info("%s v%d from %s answered with UNSUPPORTED_VERSION (served from v%d)", r->r_api->name, h.api_version,
                rn_conn_peer(c), api->serve_min);
        if (h.api_key == KP_API_PRODUCE && ((kp_produce_req_t *)r->r_body)->acks == 0) {
            rn_conn_close(c, "unsupported Produce version with acks=0");
            bk_req_respond_none(r);
            return;
        }
        bk_req_respond(r, resp);
        return;
    }
    api->handler(r);
    return;
close:
    free(frame);
    rn_conn_close(c, why);
}

void bk_dispatch_close(rn_conn_t *c, void *ud) {
    (void)c;
    (void)ud;
}
