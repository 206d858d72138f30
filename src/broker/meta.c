/*
 * meta.c — cluster-facing metadata APIs: ApiVersions (from the served table,
 * B4), Metadata (brokers, cluster id, controller, topics with ids, topic
 * auto-creation) and DescribeCluster.
 */
#include "broker/broker.h"

#include <stdio.h>

void bk_handle_api_versions(bk_req_t *r) {
    kp_api_versions_resp_t *resp = bk_req_resp_new(r);
    BK_ALLOC_ARR(r, resp->api_keys, bk_napis);
    for (int i = 0; i < bk_napis; i++) {
        resp->api_keys.v[i].api_key = bk_apis[i].key;
        resp->api_keys.v[i].min_version = bk_apis[i].min_ver;
        resp->api_keys.v[i].max_version = bk_apis[i].max_ver;
    }
    resp->finalized_features_epoch = -1;
    bk_req_respond(r, resp);
}

/* Fills one topic entry of a Metadata response. Read lock held. */
static void bk_metadata_fill_topic(bk_req_t *r, kp_metadata_resp_metadata_response_topic_t *mt, bk_topic_t *t) {
    bk_broker_t *b = r->r_broker;
    mt->error_code = 0;
    mt->name = bk_str(r, t->t_name);
    mt->topic_id = t->t_id;
    mt->is_internal = t->t_internal;
    mt->topic_authorized_operations = INT32_MIN;
    BK_ALLOC_ARR(r, mt->partitions, t->t_npartitions);
    for (int32_t i = 0; i < t->t_npartitions; i++) {
        kp_metadata_resp_metadata_response_partition_t *mp = &mt->partitions.v[i];
        mp->error_code = 0;
        mp->partition_index = i;
        mp->leader_id = b->b_node_id;
        mp->leader_epoch = 0;
        BK_ALLOC_ARR(r, mp->replica_nodes, 1);
        BK_ALLOC_ARR(r, mp->isr_nodes, 1);
        mp->replica_nodes.v[0] = b->b_node_id;
        mp->isr_nodes.v[0] = b->b_node_id;
        mp->offline_replicas.n = 0;
    }
}

static void bk_metadata_brokers(bk_req_t *r, kp_metadata_resp_t *resp) {
    bk_broker_t *b = r->r_broker;
    BK_ALLOC_ARR(r, resp->brokers, 1);
    resp->brokers.v[0].node_id = b->b_node_id;
    resp->brokers.v[0].host = bk_str(r, b->b_cfg.adv_host);
    resp->brokers.v[0].port = b->b_cfg.adv_port;
    resp->brokers.v[0].rack.len = -1;
    resp->cluster_id = bk_str(r, b->b_cluster_id);
    resp->controller_id = b->b_node_id;
    resp->cluster_authorized_operations = INT32_MIN;
}

void bk_metadata_error_response(bk_req_t *r, int16_t err, void *vresp) {
    kp_metadata_req_t *req = r->r_body;
    kp_metadata_resp_t *resp = vresp;
    bk_metadata_brokers(r, resp);
    int32_t n = req->topics.n < 0 ? 0 : req->topics.n;
    BK_ALLOC_ARR(r, resp->topics, n);
    for (int32_t i = 0; i < n; i++) {
        resp->topics.v[i].error_code = err;
        resp->topics.v[i].name = req->topics.v[i].name;
    }
}

void bk_handle_metadata(bk_req_t *r) {
    bk_broker_t *b = r->r_broker;
    kp_metadata_req_t *req = r->r_body;
    kp_metadata_resp_t *resp = bk_req_resp_new(r);
    int16_t v = r->r_hdr.api_version;
    bk_metadata_brokers(r, resp);
    /* v0: an empty list means all topics; v1+: null means all topics */
    bool all = req->topics.n < 0 || (v == 0 && req->topics.n == 0);
    /* v0-v3 always allow auto-creation; later versions ask */
    bool allow_create = b->b_cfg.auto_create_topics_enable && (v < 4 || req->allow_auto_topic_creation);
    if (!all && allow_create) {
        for (int32_t i = 0; i < req->topics.n; i++) {
            kp_str_t nm = req->topics.v[i].name;
            if (nm.len <= 0 || !bk_topic_name_valid(nm.p, (size_t)nm.len)) continue;
            pthread_rwlock_rdlock(&b->b_topics_lock);
            bool exists = bk_topic_find(b, nm.p, (size_t)nm.len) != NULL;
            pthread_rwlock_unlock(&b->b_topics_lock);
            if (!exists) {
                char msg[256];
                bk_topic_configs_t none = {0};
                int rc = bk_topic_create(b, nm.p, (size_t)nm.len, -1, -1, &none, false, msg, sizeof(msg), NULL);
                if (rc && rc != RB_TOPIC_ALREADY_EXISTS)
                    rb_warn("auto-creating topic %.*s failed: %s", nm.len, nm.p, msg);
            }
        }
    }
    pthread_rwlock_rdlock(&b->b_topics_lock);
    if (all) {
        BK_ALLOC_ARR(r, resp->topics, b->b_ntopics);
        int32_t k = 0;
        BK_TOPICS_FOREACH(b, t) { bk_metadata_fill_topic(r, &resp->topics.v[k++], t); }
        resp->topics.n = k;
    } else {
        BK_ALLOC_ARR(r, resp->topics, req->topics.n);
        for (int32_t i = 0; i < req->topics.n; i++) {
            kp_metadata_resp_metadata_response_topic_t *mt = &resp->topics.v[i];
            kp_metadata_req_metadata_request_topic_t *rt = &req->topics.v[i];
            bk_topic_t *t = NULL;
            if (rt->name.len >= 0) t = bk_topic_find(b, rt->name.p, (size_t)rt->name.len);
            else t = bk_topic_find_id(b, &rt->topic_id);
            mt->topic_authorized_operations = INT32_MIN;
            if (t) {
                bk_metadata_fill_topic(r, mt, t);
                continue;
            }
            mt->name = rt->name;
            mt->topic_id = rt->topic_id;
            if (rt->name.len < 0) mt->error_code = RB_UNKNOWN_TOPIC_ID;
            else if (!bk_topic_name_valid(rt->name.p, (size_t)rt->name.len)) mt->error_code = RB_INVALID_TOPIC_EXCEPTION;
            else mt->error_code = RB_UNKNOWN_TOPIC_OR_PARTITION;
        }
    }
    pthread_rwlock_unlock(&b->b_topics_lock);
    bk_req_respond(r, resp);
}

void bk_handle_describe_cluster(bk_req_t *r) {
    bk_broker_t *b = r->r_broker;
    kp_describe_cluster_req_t *req = r->r_body;
    kp_describe_cluster_resp_t *resp = bk_req_resp_new(r);
    resp->endpoint_type = 1;
    if (req->endpoint_type != 1 && r->r_hdr.api_version >= 1) {
        resp->error_code = RB_UNSUPPORTED_ENDPOINT_TYPE;
        resp->error_message = bk_str(r, "Only brokers are described by this listener");
        bk_req_respond(r, resp);
        return;
    }
    resp->cluster_id = bk_str(r, b->b_cluster_id);
    resp->controller_id = b->b_node_id;
    BK_ALLOC_ARR(r, resp->brokers, 1);
    resp->brokers.v[0].broker_id = b->b_node_id;
    resp->brokers.v[0].host = bk_str(r, b->b_cfg.adv_host);
    resp->brokers.v[0].port = b->b_cfg.adv_port;
    resp->brokers.v[0].rack.len = -1;
    resp->cluster_authorized_operations = INT32_MIN;
    bk_req_respond(r, resp);
}

/* FindCoordinator v0-v5: on a single node this broker coordinates every group
 * (key type 0) and every transactional id (key type 1). Served now because
 * librdkafka 2.0.2 enables LZ4 only when FindCoordinator v0 is advertised;
 * the group APIs themselves come with consumer groups. */
void bk_handle_find_coordinator(bk_req_t *r) {
    bk_broker_t *b = r->r_broker;
    kp_find_coordinator_req_t *req = r->r_body;
    kp_find_coordinator_resp_t *resp = bk_req_resp_new(r);
    int16_t v = r->r_hdr.api_version;
    int16_t err = 0;
    const char *msg = NULL;
    if (req->key_type == 1 && !b->b_txn) {
        err = RB_COORDINATOR_NOT_AVAILABLE;
        msg = "the transaction coordinator is not started";
    } else if (req->key_type != 0 && req->key_type != 1) {
        err = RB_INVALID_REQUEST;
        msg = "unknown coordinator key type";
    }
    if (v < 4) {
        resp->error_code = err;
        resp->error_message = msg ? bk_str(r, msg) : bk_str(r, NULL);
        resp->node_id = err ? -1 : b->b_node_id;
        resp->host = bk_str(r, err ? "" : b->b_cfg.adv_host);
        resp->port = err ? -1 : b->b_cfg.adv_port;
    } else {
        int32_t n = req->coordinator_keys.n < 0 ? 0 : req->coordinator_keys.n;
        BK_ALLOC_ARR(r, resp->coordinators, n);
        for (int32_t i = 0; i < n; i++) {
            kp_find_coordinator_resp_coordinator_t *c = &resp->coordinators.v[i];
            c->key = req->coordinator_keys.v[i];
            c->error_code = err;
            c->error_message = msg ? bk_str(r, msg) : bk_str(r, NULL);
            c->node_id = err ? -1 : b->b_node_id;
            c->host = bk_str(r, err ? "" : b->b_cfg.adv_host);
            c->port = err ? -1 : b->b_cfg.adv_port;
        }
    }
    bk_req_respond(r, resp);
}
