/*
 * groups.c — the group and offset APIs, handed to the coordinator (coord.h):
 * JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch,
 * ListGroups, DescribeGroups, DeleteGroups, OffsetDelete; and the start of
 * the coordinator over `__consumer_offsets` (created at start if absent).
 * Parked answers (JoinGroup, SyncGroup, OffsetCommit) come back through
 * bk_group_done on any thread and are posted to the request's loop.
 */
#include "broker/broker.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct {
    bk_req_t *r;
    void *resp;
    rn_loop_t *loop;
} bk_group_wait_t;

static void bk_group_finish(void *arg) {
    bk_group_wait_t *w = arg;
    bk_req_t *r = w->r;
    bk_req_respond(r, w->resp); /* frees r and its arena (w lives in it) */
}

static void bk_group_done(void *ctx) {
    bk_group_wait_t *w = ctx;
    rn_loop_post(w->loop, bk_group_finish, w);
}

static bk_group_wait_t *bk_group_wait(bk_req_t *r, void *resp) {
    bk_group_wait_t *w = bk_arena_alloc_or_die(&r->r_arena, sizeof(*w));
    w->r = r;
    w->resp = resp;
    w->loop = rn_conn_loop(r->r_conn);
    return w;
}

static bool bk_coord_ready(bk_req_t *r) { return r->r_broker->b_coord != NULL; }

static void bk_client(bk_req_t *r, cg_client_t *cl) {
    const char *cid = r->r_hdr.client_id.len >= 0 ? bk_strn(r, r->r_hdr.client_id.p, (size_t)r->r_hdr.client_id.len).p
                                                  : "";
    const char *peer = rn_conn_peer(r->r_conn);
    const char *colon = strrchr(peer, ':');
    size_t hl = colon ? (size_t)(colon - peer) : strlen(peer);
    char *host = bk_arena_alloc_or_die(&r->r_arena, hl + 2);
    host[0] = '/';
    memcpy(host + 1, peer, hl);
    cl->client_id = cid;
    cl->client_host = host;
}

void bk_handle_join_group(bk_req_t *r) {
    kp_join_group_resp_t *resp = bk_req_resp_new(r);
    if (!bk_coord_ready(r)) {
        resp->error_code = RB_COORDINATOR_NOT_AVAILABLE;
        bk_req_respond(r, resp);
        return;
    }
    cg_client_t cl;
    bk_client(r, &cl);
    cg_join_group(r->r_broker->b_coord, &cl, r->r_hdr.api_version, r->r_body, resp, &r->r_arena, bk_group_done,
                  bk_group_wait(r, resp));
}

void bk_handle_sync_group(bk_req_t *r) {
    kp_sync_group_resp_t *resp = bk_req_resp_new(r);
    if (!bk_coord_ready(r)) {
        resp->error_code = RB_COORDINATOR_NOT_AVAILABLE;
        bk_req_respond(r, resp);
        return;
    }
    cg_sync_group(r->r_broker->b_coord, r->r_hdr.api_version, r->r_body, resp, &r->r_arena, bk_group_done,
                  bk_group_wait(r, resp));
}

void bk_handle_heartbeat(bk_req_t *r) {
    kp_heartbeat_resp_t *resp = bk_req_resp_new(r);
    if (!bk_coord_ready(r)) resp->error_code = RB_COORDINATOR_NOT_AVAILABLE;
    else cg_heartbeat(r->r_broker->b_coord, r->r_hdr.api_version, r->r_body, resp);
    bk_req_respond(r, resp);
}

void bk_handle_leave_group(bk_req_t *r) {
    kp_leave_group_resp_t *resp = bk_req_resp_new(r);
    if (!bk_coord_ready(r)) resp->error_code = RB_COORDINATOR_NOT_AVAILABLE;
    else cg_leave_group(r->r_broker->b_coord, r->r_hdr.api_version, r->r_body, resp, &r->r_arena);
    bk_req_respond(r, resp);
}

void bk_offset_commit_error_response(bk_req_t *r, int16_t err, void *vresp) {
    kp_offset_commit_req_t *req = r->r_body;
    kp_offset_commit_resp_t *resp = vresp;
    int32_t nt = req->topics.n < 0 ? 0 : req->topics.n;
    BK_ALLOC_ARR(r, resp->topics, nt);
    for (int32_t i = 0; i < nt; i++) {
        resp->topics.v[i].name = req->topics.v[i].name;
        int32_t np = req->topics.v[i].partitions.n < 0 ? 0 : req->topics.v[i].partitions.n;
        BK_ALLOC_ARR(r, resp->topics.v[i].partitions, np);
        for (int32_t k = 0; k < np; k++) {
            resp->topics.v[i].partitions.v[k].partition_index = req->topics.v[i].partitions.v[k].partition_index;
            resp->topics.v[i].partitions.v[k].error_code = err;
        }
    }
}

void bk_handle_offset_commit(bk_req_t *r) {
    kp_offset_commit_resp_t *resp = bk_req_resp_new(r);
    if (!bk_coord_ready(r)) {
        bk_offset_commit_error_response(r, RB_COORDINATOR_NOT_AVAILABLE, resp);
        bk_req_respond(r, resp);
        return;
    }
    cg_offset_commit(r->r_broker->b_coord, r->r_hdr.api_version, r->r_body, resp, &r->r_arena, bk_group_done,
                     bk_group_wait(r, resp));
}

void bk_handle_offset_fetch(bk_req_t *r) {
    kp_offset_fetch_resp_t *resp = bk_req_resp_new(r);
    if (!bk_coord_ready(r)) resp->error_code = RB_COORDINATOR_NOT_AVAILABLE;
    else cg_offset_fetch(r->r_broker->b_coord, r->r_hdr.api_version, r->r_body, resp, &r->r_arena);
    kp_offset_fetch_req_t *req = r->r_body;
    int16_t v = r->r_hdr.api_version;
    if (v >= 7 && req->require_stable) { /* T6: an offset pending in a transaction */
        bk_broker_t *b = r->r_broker;
        if (v == 7) {
            for (int32_t i = 0; i < resp->topics.n; i++)
                for (int32_t k = 0; k < resp->topics.v[i].partitions.n; k++)
                    if (bk_txn_offset_pending(b, req->group_id.p, (size_t)RB_MAX(req->group_id.len, 0),
                                              resp->topics.v[i].name.p, (size_t)RB_MAX(resp->topics.v[i].name.len, 0),
                                              resp->topics.v[i].partitions.v[k].partition_index))
                        resp->topics.v[i].partitions.v[k].error_code = RB_UNSTABLE_OFFSET_COMMIT;
        } else {
            for (int32_t g = 0; g < resp->groups.n; g++) {
                kp_offset_fetch_resp_offset_fetch_response_group_t *gr = &resp->groups.v[g];
                for (int32_t i = 0; i < gr->topics.n; i++)
                    for (int32_t k = 0; k < gr->topics.v[i].partitions.n; k++)
                        if (bk_txn_offset_pending(b, gr->group_id.p, (size_t)RB_MAX(gr->group_id.len, 0),
                                                  gr->topics.v[i].name.p, (size_t)RB_MAX(gr->topics.v[i].name.len, 0),
                                                  gr->topics.v[i].partitions.v[k].partition_index))
                            gr->topics.v[i].partitions.v[k].error_code = RB_UNSTABLE_OFFSET_COMMIT;
            }
        }
    }
    bk_req_respond(r, resp);
}

void bk_handle_list_groups(bk_req_t *r) {
    kp_list_groups_resp_t *resp = bk_req_resp_new(r);
    if (!bk_coord_ready(r)) resp->error_code = RB_COORDINATOR_NOT_AVAILABLE;
    else cg_list_groups(r->r_broker->b_coord, r->r_hdr.api_version, r->r_body, resp, &r->r_arena);
    bk_req_respond(r, resp);
}

void bk_handle_describe_groups(bk_req_t *r) {
    kp_describe_groups_resp_t *resp = bk_req_resp_new(r);
    if (bk_coord_ready(r))
        cg_describe_groups(r->r_broker->b_coord, r->r_hdr.api_version, r->r_body, resp, &r->r_arena);
    bk_req_respond(r, resp);
}

void bk_handle_delete_groups(bk_req_t *r) {
    kp_delete_groups_resp_t *resp = bk_req_resp_new(r);
    if (bk_coord_ready(r)) cg_delete_groups(r->r_broker->b_coord, r->r_hdr.api_version, r->r_body, resp, &r->r_arena);
    bk_req_respond(r, resp);
}

void bk_handle_offset_delete(bk_req_t *r) {
    kp_offset_delete_resp_t *resp = bk_req_resp_new(r);
    if (!bk_coord_ready(r)) resp->error_code = RB_COORDINATOR_NOT_AVAILABLE;
    else cg_offset_delete(r->r_broker->b_coord, r->r_hdr.api_version, r->r_body, resp, &r->r_arena);
    bk_req_respond(r, resp);
}

/* ---- start ------------------------------------------------------------------------------------- */

static bool bk_partition_exists(void *ctx, const char *topic, size_t len, int32_t partition) {
    bk_broker_t *b = ctx;
    pthread_rwlock_rdlock(&b->b_topics_lock);
    bk_topic_t *t = bk_topic_find(b, topic, len);
    bool ok = t && partition >= 0 && partition < t->t_npartitions;
    pthread_rwlock_unlock(&b->b_topics_lock);
    return ok;
}

int bk_groups_start(bk_broker_t *b) {
    const char *name = CG_OFFSETS_TOPIC;
    if (bk_internal_topic_ensure(b, name, (int32_t)b->b_cfg.offsets_topic_num_partitions,
                                 b->b_cfg.offsets_topic_segment_bytes) < 0)
        return -1;
    pthread_rwlock_rdlock(&b->b_topics_lock);
    bk_topic_t *t = bk_topic_find(b, name, strlen(name));
    int32_t n = t ? t->t_npartitions : 0;
    st_log_t **logs = calloc((size_t)(n ? n : 1), sizeof(*logs));
    if (!logs) abort();
    for (int32_t i = 0; i < n; i++) logs[i] = t->t_parts[i]->p_log;
    pthread_rwlock_unlock(&b->b_topics_lock);
    if (!n) {
        free(logs);
        rb_error("%s has no partitions", name);
        return -1;
    }
    cg_config_t cc = {0};
    cc.num_partitions = n;
    cc.initial_rebalance_delay_ms = b->b_cfg.group_initial_rebalance_delay_ms;
    cc.min_session_timeout_ms = (int32_t)b->b_cfg.group_min_session_timeout_ms;
    cc.max_session_timeout_ms = (int32_t)b->b_cfg.group_max_session_timeout_ms;
    cc.offset_metadata_max_bytes = (int32_t)b->b_cfg.offset_metadata_max_bytes;
    cc.partition_exists = bk_partition_exists;
    cc.ctx = b;
    int64_t t0 = rb_mono_ms();
    int rc = cg_coord_open(&cc, logs, &b->b_coord);
    free(logs);
    if (rc) {
        rb_error("cannot start the group coordinator: %s", rb_err_name(rc));
        return -1;
    }
    rb_info("group coordinator ready over %s (%d partitions) in %lld ms", name, n, (long long)(rb_mono_ms() - t0));
    return 0;
}

int bk_internal_topic_ensure(bk_broker_t *b, const char *name, int32_t partitions, int64_t segment_bytes) {
    pthread_rwlock_rdlock(&b->b_topics_lock);
    bool exists = bk_topic_find(b, name, strlen(name)) != NULL;
    pthread_rwlock_unlock(&b->b_topics_lock);
    if (exists) return 0;
    bk_topic_configs_t tc = {0};
    tc.names[tc.n] = "cleanup.policy";
    tc.values[tc.n++] = "compact";
    char segb[32];
    snprintf(segb, sizeof(segb), "%lld", (long long)segment_bytes);
    tc.names[tc.n] = "segment.bytes";
    tc.values[tc.n++] = segb;
    char msg[300];
    int rc = bk_topic_create(b, name, strlen(name), partitions, 1, &tc, false, msg, sizeof(msg), NULL);
    if (rc && rc != RB_TOPIC_ALREADY_EXISTS) {
        rb_error("cannot create %s: %s (%s)", name, rb_err_name(rc), msg);
        return -1;
    }
    return 0;
}
