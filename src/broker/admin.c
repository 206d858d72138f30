/*
 * admin.c — ListOffsets (earliest, latest, by timestamp, max timestamp),
 * CreateTopics (validate_only, per-topic configs), DeleteTopics (by name, or
 * by id from v6) and DescribeLogDirs (partition sizes, for `rill topic
 * describe`).
 */
#include "broker/broker.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* ---- ListOffsets ---------------------------------------------------------------------- */

void bk_list_offsets_error_response(bk_req_t *r, int16_t err, void *vresp) {
    kp_list_offsets_req_t *req = r->r_body;
    kp_list_offsets_resp_t *resp = vresp;
    BK_ALLOC_ARR(r, resp->topics, req->topics.n < 0 ? 0 : req->topics.n);
    for (int32_t i = 0; i < resp->topics.n; i++) {
        resp->topics.v[i].name = req->topics.v[i].name;
        int32_t n = req->topics.v[i].partitions.n < 0 ? 0 : req->topics.v[i].partitions.n;
        BK_ALLOC_ARR(r, resp->topics.v[i].partitions, n);
        for (int32_t k = 0; k < n; k++) {
            kp_list_offsets_resp_list_offsets_partition_response_t *p = &resp->topics.v[i].partitions.v[k];
            kp_init_defaults(&kp_list_offsets_resp_list_offsets_partition_response_desc, p);
            p->partition_index = req->topics.v[i].partitions.v[k].partition_index;
            p->error_code = err;
            p->timestamp = -1;
            p->offset = -1;
            p->leader_epoch = -1;
        }
    }
}

void bk_handle_list_offsets(bk_req_t *r) {
    bk_broker_t *b = r->r_broker;
    kp_list_offsets_req_t *req = r->r_body;
    kp_list_offsets_resp_t *resp = bk_req_resp_new(r);
    int16_t v = r->r_hdr.api_version;
    bk_list_offsets_error_response(r, RB_NONE, resp);
    pthread_rwlock_rdlock(&b->b_topics_lock);
    for (int32_t i = 0; i < req->topics.n; i++) {
        kp_list_offsets_req_list_offsets_topic_t *rt = &req->topics.v[i];
        bk_topic_t *t = rt->name.len > 0 ? bk_topic_find(b, rt->name.p, (size_t)rt->name.len) : NULL;
        for (int32_t k = 0; k < rt->partitions.n; k++) {
            kp_list_offsets_req_list_offsets_partition_t *rp = &rt->partitions.v[k];
            kp_list_offsets_resp_list_offsets_partition_response_t *pr = &resp->topics.v[i].partitions.v[k];
            if (!t || rp->partition_index < 0 || rp->partition_index >= t->t_npartitions) {
                pr->error_code = RB_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            st_log_t *log = t->t_parts[rp->partition_index]->p_log;
            st_log_state_t st;
            st_log_state(log, &st);
            int64_t off = -1, ts = -1;
            if (rp->timestamp == -2) { /* EARLIEST */
                off = st.log_start_offset;
            } else if (rp->timestamp == -1) { /* LATEST: the high watermark (LSO for read_committed) */
                off = req->isolation_level == 1 ? st_log_lso(log) : st.high_watermark;
            } else if (rp->timestamp == -3) { /* MAX_TIMESTAMP (v7+) */
                if (v < 7) {
                    pr->error_code = RB_UNSUPPORTED_VERSION;
                    continue;
                }
                if (st_log_max_timestamp(log, &off, &ts) != 0) off = ts = -1;
            } else if (rp->timestamp < 0) {
                pr->error_code = RB_INVALID_REQUEST; /* -4 (earliest local) and below are not served */
                continue;
            } else {
                if (st_log_offset_for_time(log, rp->timestamp, &off, &ts) != 0) off = ts = -1;
            }
            pr->leader_epoch = 0;
            if (v == 0) {
                /* v0: a list of offsets; latest-first, up to max_num_offsets */
                int n = off >= 0 && rp->max_num_offsets > 0 ? 1 : 0;
                BK_ALLOC_ARR(r, pr->old_style_offsets, n);
                if (n) pr->old_style_offsets.v[0] = off;
            } else {
                pr->offset = off;
                pr->timestamp = (rp->timestamp == -1 || rp->timestamp == -2) ? -1 : ts;
            }
        }
    }
    pthread_rwlock_unlock(&b->b_topics_lock);
    bk_req_respond(r, resp);
}

/* ---- CreateTopics ------------------------------------------------------------------------ */

void bk_create_topics_error_response(bk_req_t *r, int16_t err, void *vresp) {
    kp_create_topics_req_t *req = r->r_body;
    kp_create_topics_resp_t *resp = vresp;
    BK_ALLOC_ARR(r, resp->topics, req->topics.n < 0 ? 0 : req->topics.n);
    for (int32_t i = 0; i < resp->topics.n; i++) {
        kp_create_topics_resp_creatable_topic_result_t *tr = &resp->topics.v[i];
        kp_init_defaults(&kp_create_topics_resp_creatable_topic_result_desc, tr);
        tr->name = req->topics.v[i].name;
        tr->error_code = err;
        tr->num_partitions = -1;
        tr->replication_factor = -1;
        tr->configs.n = -1;
    }
}

void bk_handle_create_topics(bk_req_t *r) {
    bk_broker_t *b = r->r_broker;
    kp_create_topics_req_t *req = r->r_body;
    kp_create_topics_resp_t *resp = bk_req_resp_new(r);
    bk_create_topics_error_response(r, RB_NONE, resp);
    for (int32_t i = 0; i < req->topics.n; i++) {
        kp_create_topics_req_creatable_topic_t *ct = &req->topics.v[i];
        kp_create_topics_resp_creatable_topic_result_t *tr = &resp->topics.v[i];
        char msg[512] = "";
        int err = 0;
        /* a name given twice in one request is refused for both (Kafka) */
        for (int32_t k = 0; k < req->topics.n; k++)
            if (k != i && ct->name.len == req->topics.v[k].name.len && ct->name.len > 0 &&
                !memcmp(ct->name.p, req->topics.v[k].name.p, (size_t)ct->name.len)) {
                err = RB_INVALID_REQUEST;
                snprintf(msg, sizeof(msg), "Create topics request from client contains duplicate topic %.*s",
                         (int)RB_MIN(ct->name.len, 249), ct->name.p);
            }
        int32_t nparts = ct->num_partitions;
        int16_t rf = ct->replication_factor;
        if (!err && ct->assignments.n > 0) {
            if (nparts != -1 || rf != -1) {
                err = RB_INVALID_REQUEST;
                snprintf(msg, sizeof(msg), "Both numPartitions or replicationFactor and replicasAssignments were set");
            } else {
                nparts = ct->assignments.n;
                for (int32_t k = 0; k < ct->assignments.n && !err; k++) {
                    kp_create_topics_req_creatable_replica_assignment_t *a = &ct->assignments.v[k];
                    if (a->partition_index != k || a->broker_ids.n != 1 || a->broker_ids.v[0] != b->b_node_id) {
                        err = RB_INVALID_REPLICA_ASSIGNMENT;
                        snprintf(msg, sizeof(msg), "Replica assignment must place partitions 0..N-1 on broker %d",
                                 b->b_node_id);
                    }
                }
                rf = 1;
            }
        }
        bk_topic_configs_t cfgs = {0};
        if (!err) {
            for (int32_t k = 0; k < ct->configs.n; k++) {
                kp_create_topics_req_createable_topic_config_t *c = &ct->configs.v[k];
                if (cfgs.n == BK_MAX_TOPIC_CONFIGS) {
                    err = RB_INVALID_CONFIG;
                    snprintf(msg, sizeof(msg), "Too many configs");
                    break;
                }
                if (c->name.len <= 0 || c->value.len < 0) {
                    err = RB_INVALID_CONFIG;
                    snprintf(msg, sizeof(msg), "Null value not supported for topic configs: %.*s",
                             c->name.len < 0 ? 0 : (int)RB_MIN(c->name.len, 200), c->name.p);
                    break;
                }
                cfgs.names[cfgs.n] = strndup(c->name.p, (size_t)c->name.len);
                cfgs.values[cfgs.n] = strndup(c->value.p, (size_t)c->value.len);
                cfgs.n++;
            }
        }
        kp_uuid_t id = {{0}};
        if (!err)
            err = bk_topic_create(b, ct->name.p, ct->name.len < 0 ? 0 : (size_t)ct->name.len, nparts, rf, &cfgs,
                                  req->validate_only, msg, sizeof(msg), &id);
        tr->error_code = (int16_t)err;
        if (err) {
            tr->error_message = bk_str(r, msg);
        } else {
            tr->topic_id = id;
            tr->num_partitions = nparts == -1 ? (int32_t)b->b_cfg.num_partitions : nparts;
            tr->replication_factor = 1;
            BK_ALLOC_ARR(r, tr->configs, cfgs.n);
            for (int k = 0; k < cfgs.n; k++) {
                tr->configs.v[k].name = bk_str(r, cfgs.names[k]);
                tr->configs.v[k].value = bk_str(r, cfgs.values[k]);
                tr->configs.v[k].config_source = 1; /* DYNAMIC_TOPIC_CONFIG */
            }
        }
        for (int k = 0; k < cfgs.n; k++) {
            free(cfgs.names[k]);
            free(cfgs.values[k]);
        }
    }
    bk_req_respond(r, resp);
}

/* ---- DeleteTopics ------------------------------------------------------------------------- */

void bk_delete_topics_error_response(bk_req_t *r, int16_t err, void *vresp) {
    kp_delete_topics_req_t *req = r->r_body;
    kp_delete_topics_resp_t *resp = vresp;
    bool by_state = r->r_hdr.api_version >= 6;
    int32_t n = by_state ? req->topics.n : req->topic_names.n;
    BK_ALLOC_ARR(r, resp->responses, n < 0 ? 0 : n);
    for (int32_t i = 0; i < resp->responses.n; i++) {
        kp_delete_topics_resp_deletable_topic_result_t *dr = &resp->responses.v[i];
        kp_init_defaults(&kp_delete_topics_resp_deletable_topic_result_desc, dr);
        dr->name = by_state ? req->topics.v[i].name : req->topic_names.v[i];
        if (by_state) dr->topic_id = req->topics.v[i].topic_id;
        dr->error_code = err;
    }
}

void bk_handle_delete_topics(bk_req_t *r) {
    bk_broker_t *b = r->r_broker;
    kp_delete_topics_resp_t *resp = bk_req_resp_new(r);
    bk_delete_topics_error_response(r, RB_NONE, resp);
    for (int32_t i = 0; i < resp->responses.n; i++) {
        kp_delete_topics_resp_deletable_topic_result_t *dr = &resp->responses.v[i];
        kp_str_t name = dr->name;
        int err;
        if (name.len < 0) {
            /* by id (v6) */
            char buf[256] = "";
            pthread_rwlock_rdlock(&b->b_topics_lock);
            bk_topic_t *t = bk_topic_find_id(b, &dr->topic_id);
            if (t) snprintf(buf, sizeof(buf), "%s", t->t_name);
            pthread_rwlock_unlock(&b->b_topics_lock);
            if (!buf[0]) {
                dr->error_code = RB_UNKNOWN_TOPIC_ID;
                continue;
            }
            dr->name = bk_str(r, buf);
            err = bk_topic_delete(b, buf, strlen(buf), NULL);
        } else {
            err = bk_topic_delete(b, name.p, (size_t)name.len, &dr->topic_id);
        }
        dr->error_code = (int16_t)err;
        if (err && r->r_hdr.api_version >= 5) dr->error_message = bk_str(r, rb_err_msg(err));
    }
    bk_req_respond(r, resp);
}

/* ---- DescribeLogDirs ----------------------------------------------------------------------- */

void bk_handle_describe_log_dirs(bk_req_t *r) {
    bk_broker_t *b = r->r_broker;
    kp_describe_log_dirs_req_t *req = r->r_body;
    kp_describe_log_dirs_resp_t *resp = bk_req_resp_new(r);
    BK_ALLOC_ARR(r, resp->results, b->b_nmgrs);
    pthread_rwlock_rdlock(&b->b_topics_lock);
    for (int d = 0; d < b->b_nmgrs; d++) {
        kp_describe_log_dirs_resp_describe_log_dirs_result_t *res = &resp->results.v[d];
        kp_init_defaults(&kp_describe_log_dirs_resp_describe_log_dirs_result_desc, res);
        const char *dir = st_mgr_dir(b->b_mgrs[d]);
        char real[4096];
        res->log_dir = bk_str(r, realpath(dir, real) ? real : dir);
        res->error_code = st_mgr_fatal_count(b->b_mgrs[d]) ? RB_KAFKA_STORAGE_ERROR : 0;
        struct statvfs sv;
        if (statvfs(dir, &sv) == 0) {
            res->total_bytes = (int64_t)sv.f_blocks * (int64_t)sv.f_frsize;
            res->usable_bytes = (int64_t)sv.f_bavail * (int64_t)sv.f_frsize;
        } else {
            res->total_bytes = res->usable_bytes = -1;
        }
        /* topics: all (null) or those asked for, with the partitions in this dir */
        size_t cap = req->topics.n < 0 ? b->b_ntopics : (size_t)req->topics.n;
        BK_ALLOC_ARR(r, res->topics, cap);
        bk_topic_t **all = NULL;
        if (req->topics.n < 0 && cap) {
            all = rb_arena_alloc(&r->r_arena, cap * sizeof(*all));
            size_t k = 0;
            BK_TOPICS_FOREACH(b, x) {
                if (k < cap) all[k++] = x;
            }
        }
        int32_t nt = 0;
        for (size_t i = 0; i < cap; i++) {
            bk_topic_t *t = NULL;
            if (req->topics.n < 0) {
                t = all ? all[i] : NULL;
            } else {
                kp_str_t nm = req->topics.v[i].topic;
                t = nm.len > 0 ? bk_topic_find(b, nm.p, (size_t)nm.len) : NULL;
            }
            if (!t) continue;
            kp_describe_log_dirs_resp_describe_log_dirs_topic_t *rt = &res->topics.v[nt];
            rt->name = bk_str(r, t->t_name);
            BK_ALLOC_ARR(r, rt->partitions, t->t_npartitions);
            int32_t np = 0;
            for (int32_t p = 0; p < t->t_npartitions; p++) {
                if (req->topics.n >= 0) {
                    bool want = false;
                    for (int32_t q = 0; q < req->topics.v[i].partitions.n; q++)
                        if (req->topics.v[i].partitions.v[q] == p) want = true;
                    if (!want) continue;
                }
                char path[4096];
                snprintf(path, sizeof(path), "%s/%s-%d", dir, t->t_name, p);
                st_log_state_t st;
                st_log_state(t->t_parts[p]->p_log, &st);
                /* only partitions whose directory lives in this log dir */
                if (access(path, F_OK) != 0) continue;
                rt->partitions.v[np].partition_index = p;
                rt->partitions.v[np].partition_size = st.size_bytes;
                rt->partitions.v[np].offset_lag = 0;
                rt->partitions.v[np].is_future_key = false;
                np++;
            }
            rt->partitions.n = np;
            nt++;
        }
        res->topics.n = nt;
    }
    pthread_rwlock_unlock(&b->b_topics_lock);
    bk_req_respond(r, resp);
}
