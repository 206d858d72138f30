/*
 * txn.c — producer ids: InitProducerId v0-v5 for idempotent producers, the
 * durable producer-id allocator, and DescribeProducers v0 (each partition's
 * producer state, as kafka-transactions.sh describe-producers shows it). An
 * InitProducerId with a transactional.id goes to the transaction coordinator
 * (txncoord.c).
 *
 * Invariants:
 *  B5. A producer id is never handed out twice, across restarts and crashes.
 *      Ids are reserved in blocks of BK_PID_BLOCK: before the first id of a
 *      block is handed out, `<first log dir>/rill-producer-ids` (one decimal
 *      line: the first id not reserved) is replaced write-then-fsync-then-
 *      rename-then-dir-fsync with the block's end. At start the next id is the
 *      value in the file, so ids reserved but unused before a stop are skipped,
 *      never reused. Ids are handed out in increasing order.
 *  B6. A produce carrying a producer id at or above the next id to hand out
 *      (one we never issued) is answered UNKNOWN_PRODUCER_ID, nothing stored.
 *      Each InitProducerId without a transactional.id gets a new id with
 *      epoch 0, as Kafka's coordinator does (a client bumping its epoch
 *      after a fatal sequence error receives a fresh id).
 */
#include "broker/broker.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#define BK_PID_BLOCK 1000
#define BK_PID_FILE "rill-producer-ids"

static void bk_pid_path(bk_broker_t *b, char *out, size_t cap) {
    snprintf(out, cap, "%s/%s", st_mgr_dir(b->b_mgrs[0]), BK_PID_FILE);
}

int bk_pids_load(bk_broker_t *b) {
    char path[4096];
    bk_pid_path(b, path, sizeof(path));
    char *data = NULL;
    size_t len = 0;
    int64_t next = 0;
    int rc = rb_read_file(path, &data, &len);
    if (rc == 0) {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(data, &end, 10);
        if (errno || end == data || (*end && *end != '\n') || v < 0) {
            rb_error("%s: not a producer id (\"%.40s\")", path, data);
            free(data);
            return -1;
        }
        next = v;
        free(data);
    } else if (rc != -ENOENT) {
        rb_error("cannot read %s: %s", path, strerror(-rc));
        return -1;
    }
    b->b_pid_reserved = next;
    atomic_store(&b->b_pid_next, next);
    return 0;
}

/* B5: the next producer id, reserving a new block first when needed.
 * Returns -1 if the reservation cannot be made durable. Any thread. */
int64_t bk_pid_allocate(bk_broker_t *b) {
    pthread_mutex_lock(&b->b_pid_mu);
    int64_t id = atomic_load(&b->b_pid_next);
    if (id >= b->b_pid_reserved) {
        char path[4096], line[32];
        bk_pid_path(b, path, sizeof(path));
        int64_t end = id + BK_PID_BLOCK;
        int n = snprintf(line, sizeof(line), "%" PRId64 "\n", end);
        int rc = rb_failpoint("bk.pid.reserve");
        if (!rc) rc = rb_write_file_atomic(path, line, (size_t)n);
        if (!rc) rc = rb_fsync_dir(st_mgr_dir(b->b_mgrs[0]));
        if (rc) {
            pthread_mutex_unlock(&b->b_pid_mu);
            rb_error("cannot reserve producer ids in %s: %s", path, strerror(rc < 0 ? -rc : rc));
            return -1;
        }
        b->b_pid_reserved = end;
    }
    atomic_store(&b->b_pid_next, id + 1);
    pthread_mutex_unlock(&b->b_pid_mu);
    return id;
}

bool bk_pid_issued(bk_broker_t *b, int64_t pid) { return pid >= 0 && pid < atomic_load(&b->b_pid_next); }

void bk_handle_init_producer_id(bk_req_t *r) {
    bk_broker_t *b = r->r_broker;
    kp_init_producer_id_req_t *req = r->r_body;
    kp_init_producer_id_resp_t *resp = bk_req_resp_new(r);
    resp->producer_id = -1;
    resp->producer_epoch = -1;
    if (req->transactional_id.len == 0) {
        resp->error_code = RB_INVALID_REQUEST; /* Kafka: an empty transactional.id */
    } else if (req->transactional_id.len > 0) {
        bk_txn_init_producer_id(r, resp); /* txncoord.c answers */
        return;
    } else {
        int64_t id = bk_pid_allocate(b);
        if (id < 0) {
            resp->error_code = RB_COORDINATOR_NOT_AVAILABLE; /* retriable; the log dir is failing */
        } else {
            resp->producer_id = id;
            resp->producer_epoch = 0;
        }
    }
    bk_req_respond(r, resp);
}

/* DescribeProducers v0: per requested partition, the producers the log
 * holds state for (storage S13-S16). last_timestamp is when the broker last
 * appended for the producer (Kafka: the batch's max timestamp);
 * current_txn_start_offset is the first offset of its open transaction in
 * the partition (S17), else -1. Unknown topics/partitions: UNKNOWN_TOPIC_OR_PARTITION per partition. */
void bk_handle_describe_producers(bk_req_t *r) {
    bk_broker_t *b = r->r_broker;
    kp_describe_producers_req_t *req = r->r_body;
    kp_describe_producers_resp_t *resp = bk_req_resp_new(r);
    int32_t nt = req->topics.n < 0 ? 0 : req->topics.n;
    BK_ALLOC_ARR(r, resp->topics, nt);
    pthread_rwlock_rdlock(&b->b_topics_lock);
    for (int32_t i = 0; i < nt; i++) {
        kp_describe_producers_req_topic_request_t *tq = &req->topics.v[i];
        kp_describe_producers_resp_topic_response_t *tr = &resp->topics.v[i];
        tr->name = tq->name;
        bk_topic_t *t = tq->name.len > 0 ? bk_topic_find(b, tq->name.p, (size_t)tq->name.len) : NULL;
        int32_t np = tq->partition_indexes.n < 0 ? 0 : tq->partition_indexes.n;
        BK_ALLOC_ARR(r, tr->partitions, np);
        for (int32_t k = 0; k < np; k++) {
            kp_describe_producers_resp_partition_response_t *pr = &tr->partitions.v[k];
            int32_t idx = tq->partition_indexes.v[k];
            kp_init_defaults(&kp_describe_producers_resp_partition_response_desc, pr);
            pr->partition_index = idx;
            if (!t || idx < 0 || idx >= t->t_npartitions) {
                pr->error_code = RB_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            st_producer_info_t *ps = NULL;
            int n = 0;
            st_log_producers(t->t_parts[idx]->p_log, &ps, &n);
            st_txn_open_t *open = NULL;
            int nopen = 0;
            st_log_open_txns(t->t_parts[idx]->p_log, &open, &nopen);
            BK_ALLOC_ARR(r, pr->active_producers, n);
            for (int j = 0; j < n; j++) {
                kp_describe_producers_resp_producer_state_t *o = &pr->active_producers.v[j];
                o->producer_id = ps[j].pid;
                o->producer_epoch = ps[j].epoch;
                o->last_sequence = ps[j].last_seq;
                o->last_timestamp = ps[j].last_ms;
                o->coordinator_epoch = -1;
                o->current_txn_start_offset = -1;
                for (int q = 0; q < nopen; q++)
                    if (open[q].pid == ps[j].pid) {
                        o->coordinator_epoch = 0; /* a single coordinator that never changes */
                        o->current_txn_start_offset = open[q].first;
                    }
            }
            free(ps);
            free(open);
        }
    }
    pthread_rwlock_unlock(&b->b_topics_lock);
    bk_req_respond(r, resp);
}
