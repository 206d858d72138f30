/*
 * lifecycle.c — DeleteRecords (moves partitions' log start offsets, S7) and
 * CreatePartitions (grow only).
 *
 * DeleteRecords runs on the event-loop thread and waits for one checkpoint
 * write per moved partition (write, fsync, rename of two small files): the
 * new start must be durable before the answer, and segments are unlinked
 * only after it is (storage S7).
 */
#include "broker/broker.h"

#include <stdio.h>

/* ---- DeleteRecords --------------------------------------------------------------------- */

void bk_handle_delete_records(bk_req_t *r) {
    bk_broker_t *b = r->r_broker;
    kp_delete_records_req_t *req = r->r_body;
    kp_delete_records_resp_t *resp = bk_req_resp_new(r);
    int32_t nt = req->topics.n < 0 ? 0 : req->topics.n;
    BK_ALLOC_ARR(r, resp->topics, nt);
    pthread_rwlock_rdlock(&b->b_topics_lock);
    for (int32_t i = 0; i < nt; i++) {
        kp_delete_records_req_delete_records_topic_t *rt = &req->topics.v[i];
        kp_delete_records_resp_delete_records_topic_result_t *tr = &resp->topics.v[i];
        tr->name = rt->name;
        int32_t np = rt->partitions.n < 0 ? 0 : rt->partitions.n;
        BK_ALLOC_ARR(r, tr->partitions, np);
        bk_topic_t *t = rt->name.len > 0 ? bk_topic_find(b, rt->name.p, (size_t)rt->name.len) : NULL;
        for (int32_t k = 0; k < np; k++) {
            kp_delete_records_req_delete_records_partition_t *rp = &rt->partitions.v[k];
            kp_delete_records_resp_delete_records_partition_result_t *pr = &tr->partitions.v[k];
            pr->partition_index = rp->partition_index;
            pr->low_watermark = -1;
            if (!t || rp->partition_index < 0 || rp->partition_index >= t->t_npartitions) {
                pr->error_code = RB_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            if (t->t_internal) { /* the coordinator reads its topic from the start */
                pr->error_code = RB_POLICY_VIOLATION;
                continue;
            }
            int64_t lw = -1;
            int rc = st_log_delete_records(t->t_parts[rp->partition_index]->p_log, rp->offset, &lw);
            pr->error_code = (int16_t)rc;
            if (rc == 0) pr->low_watermark = lw;
        }
    }
    pthread_rwlock_unlock(&b->b_topics_lock);
    bk_req_respond(r, resp);
}

/* ---- CreatePartitions ------------------------------------------------------------------- */

void bk_handle_create_partitions(bk_req_t *r) {
    bk_broker_t *b = r->r_broker;
    kp_create_partitions_req_t *req = r->r_body;
    kp_create_partitions_resp_t *resp = bk_req_resp_new(r);
    int32_t nt = req->topics.n < 0 ? 0 : req->topics.n;
    BK_ALLOC_ARR(r, resp->results, nt);
    for (int32_t i = 0; i < nt; i++) {
        kp_create_partitions_req_create_partitions_topic_t *rt = &req->topics.v[i];
        kp_create_partitions_resp_create_partitions_topic_result_t *tr = &resp->results.v[i];
        kp_init_defaults(&kp_create_partitions_resp_create_partitions_topic_result_desc, tr);
        tr->name = rt->name;
        char msg[512] = "";
        int rc = 0;
        bool dup = false;
        for (int32_t j = 0; j < nt; j++)
            if (j != i && req->topics.v[j].name.len == rt->name.len &&
                !memcmp(req->topics.v[j].name.p, rt->name.p, (size_t)(rt->name.len < 0 ? 0 : rt->name.len)))
                dup = true;
        if (dup) {
            rc = RB_INVALID_REQUEST;
            snprintf(msg, sizeof(msg), "Duplicate topic in request.");
        }
        if (!rc && rt->assignments.n > 0) { /* explicit assignments: only this broker exists */
            for (int32_t a = 0; a < rt->assignments.n && !rc; a++) {
                kp_create_partitions_req_create_partitions_assignment_t *as = &rt->assignments.v[a];
                if (as->broker_ids.n != 1 || as->broker_ids.v[0] != b->b_node_id) {
                    rc = RB_INVALID_REPLICA_ASSIGNMENT;
                    snprintf(msg, sizeof(msg), "Replica assignment must name exactly this broker (%d).",
                             (int)b->b_node_id);
                }
            }
        }
        if (!rc)
            rc = bk_topic_add_partitions(b, rt->name.len > 0 ? rt->name.p : "", rt->name.len > 0 ? (size_t)rt->name.len : 0,
                                         rt->count, req->validate_only, msg, sizeof(msg));
        tr->error_code = (int16_t)rc;
        tr->error_message = rc ? bk_str(r, msg[0] ? msg : rb_err_msg(rc)) : bk_str(r, NULL);
    }
    bk_req_respond(r, resp);
}
