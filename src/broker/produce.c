/*
 * produce.c — Produce v3-v11: validate each partition's record batch, append
 * it, answer per acks. acks=0: no response (an error closes the connection,
 * as Kafka does); acks=1: after the append (in the page cache); acks=all:
 * after the flusher has fdatasync'd it (docs/durability.md D1-D3).
 * Idempotent batches (producer id >= 0) are checked against the partition's
 * producer state inside st_log_append (storage S13): a duplicate of one of the
 * producer's last 5 batches is answered with its original offsets and no
 * error, after the original is durable under acks=all (S14); a gap answers
 * OUT_OF_ORDER_SEQUENCE_NUMBER, an old epoch INVALID_PRODUCER_EPOCH, a
 * producer id we never issued (B6) or whose state expired UNKNOWN_PRODUCER_ID.
 */
#include "broker/broker.h"

#include <stdio.h>
#include <stdlib.h>

/* acks=all bookkeeping. The response lives in the request's arena, which is
 * freed when we answer; the flusher's callbacks may arrive after that (a
 * timeout answered first), so they only touch this context, never the
 * response. References: one for the loop until the answer is sent, one per
 * sync wait until its callback has run (the last callback hands its
 * reference to the post that finishes the request). */
typedef struct bk_produce_ctx bk_produce_ctx_t;

typedef struct {
    bk_produce_ctx_t *pw_ctx;
    kp_produce_resp_partition_produce_response_t *pw_part; /* valid until the answer */
    atomic_int pw_status; /* -1 waiting, else 0 or a Kafka error code */
} bk_produce_wait_t;

struct bk_produce_ctx {
    bk_req_t *pc_req;
    kp_produce_resp_t *pc_resp;
    rn_loop_t *pc_loop;
    atomic_int pc_refs;
    atomic_int pc_outstanding; /* sync waits whose callback has not run */
    int pc_nwaits, pc_capwaits;
    bk_produce_wait_t *pc_waits;
    uint64_t pc_timer;
    bool pc_done; /* answered (loop thread only) */
};

static void bk_produce_unref(bk_produce_ctx_t *pc) {
    if (atomic_fetch_sub_explicit(&pc->pc_refs, 1, memory_order_acq_rel) != 1) return;
    free(pc->pc_waits);
    free(pc);
}

/* Loop thread: copy each wait's outcome into the response and answer. */
static void bk_produce_answer(bk_produce_ctx_t *pc, bool timed_out) {
    if (pc->pc_done) return;
    pc->pc_done = true;
    if (pc->pc_timer && !timed_out) rn_loop_timer_cancel(pc->pc_loop, pc->pc_timer);
    pc->pc_timer = 0;
    for (int i = 0; i < pc->pc_nwaits; i++) {
        bk_produce_wait_t *w = &pc->pc_waits[i];
        int st = atomic_load(&w->pw_status);
        if (st == 0) continue;
        kp_produce_resp_partition_produce_response_t *pr = w->pw_part;
        const char *m;
        if (st < 0) {
            pr->error_code = RB_REQUEST_TIMED_OUT;
            m = "the batch was written but not yet fsynced within timeout_ms";
        } else {
            /* KAFKA_STORAGE_ERROR (fsync failed: the log refuses writes) or
             * UNKNOWN_TOPIC_OR_PARTITION (deleted while waiting) */
            pr->error_code = (int16_t)st;
            m = st == RB_UNKNOWN_TOPIC_OR_PARTITION ? "topic deleted before the batch became durable"
                                                    : "fsync failed; the log refuses writes";
        }
        pr->base_offset = -1;
        if (pc->pc_req->r_hdr.api_version >= 8) pr->error_message = bk_str(pc->pc_req, m);
    }
    bk_req_t *r = pc->pc_req;
    pc->pc_req = NULL;
    bk_req_respond(r, pc->pc_resp);
    pc->pc_resp = NULL;
    bk_produce_unref(pc); /* the loop's reference */
}

static void bk_produce_finish(void *arg) {
    bk_produce_ctx_t *pc = arg;
    bk_produce_answer(pc, false);
    bk_produce_unref(pc); /* the reference the last callback handed over */
}

static void bk_produce_timeout(void *arg) {
    bk_produce_ctx_t *pc = arg;
    pc->pc_timer = 0;
    bk_produce_answer(pc, true);
}

/* Flusher thread (or synchronously): the partition's batch is durable, or not. */
static void bk_produce_synced(void *arg, int err) {
    bk_produce_wait_t *w = arg;
    bk_produce_ctx_t *pc = w->pw_ctx;
    atomic_store(&w->pw_status, err > 0 ? err : (err < 0 ? RB_KAFKA_STORAGE_ERROR : 0));
    if (atomic_fetch_sub_explicit(&pc->pc_outstanding, 1, memory_order_acq_rel) == 1) {
        if (rn_loop_current() == pc->pc_loop) bk_produce_finish(pc);
        else rn_loop_post(pc->pc_loop, bk_produce_finish, pc);
    } else {
        bk_produce_unref(pc);
    }
}

void bk_produce_error_response(bk_req_t *r, int16_t err, void *vresp) {
    kp_produce_req_t *req = r->r_body;
    kp_produce_resp_t *resp = vresp;
    BK_ALLOC_ARR(r, resp->responses, req->topic_data.n < 0 ? 0 : req->topic_data.n);
    for (int32_t i = 0; i < resp->responses.n; i++) {
        kp_produce_req_topic_produce_data_t *td = &req->topic_data.v[i];
        kp_produce_resp_topic_produce_response_t *tr = &resp->responses.v[i];
        tr->name = td->name;
        BK_ALLOC_ARR(r, tr->partition_responses, td->partition_data.n < 0 ? 0 : td->partition_data.n);
        for (int32_t k = 0; k < tr->partition_responses.n; k++) {
            kp_produce_resp_partition_produce_response_t *pr = &tr->partition_responses.v[k];
            kp_init_defaults(&kp_produce_resp_partition_produce_response_desc, pr);
            pr->index = td->partition_data.v[k].index;
            pr->error_code = err;
            pr->base_offset = -1;
            pr->log_append_time_ms = -1;
            pr->log_start_offset = -1;
        }
    }
}

/* Creates topics named by the request that do not exist (auto-creation). */
static void bk_produce_autocreate(bk_broker_t *b, kp_produce_req_t *req) {
    if (!b->b_cfg.auto_create_topics_enable) return;
    for (int32_t i = 0; i < req->topic_data.n; i++) {
        kp_str_t nm = req->topic_data.v[i].name;
        if (nm.len <= 0 || !bk_topic_name_valid(nm.p, (size_t)nm.len)) continue;
        pthread_rwlock_rdlock(&b->b_topics_lock);
        bool exists = bk_topic_find(b, nm.p, (size_t)nm.len) != NULL;
        pthread_rwlock_unlock(&b->b_topics_lock);
        if (exists) continue;
        char msg[256];
        bk_topic_configs_t none = {0};
        int rc = bk_topic_create(b, nm.p, (size_t)nm.len, -1, -1, &none, false, msg, sizeof(msg), NULL);
        if (rc && rc != RB_TOPIC_ALREADY_EXISTS) rb_warn("auto-creating topic %.*s failed: %s", nm.len, nm.p, msg);
    }
}

/* compression.type: rewrites the single batch at *p (validated, *len bytes)
 * with the topic's codec when it differs from the batch's, into the request
 * arena; the header is kept, attributes, length and CRC updated. 0 or a
 * Kafka error code with msg. */
static int bk_recompress(bk_req_t *r, const uint8_t **p, size_t *len, int8_t codec, size_t cap, char *msg,
                         size_t msz) {
    kp_batch_hdr_t h;
    if (kp_batch_hdr_parse(*p, *len, &h)) return RB_CORRUPT_MESSAGE;
    int8_t cur = (int8_t)(h.attributes & 7);
    if (cur == codec || (h.attributes & 0x20)) return 0; /* same codec; control batches stay as written */
    const size_t hl = 61;
    rb_buf_t plain, packed;
    rb_buf_init(&plain);
    rb_buf_init(&packed);
    int rc = 0;
    const uint8_t *body = *p + hl;
    size_t blen = (size_t)h.batch_length + 12 - hl;
    if (cur != KP_COMP_NONE) {
        rc = kp_decompress((kp_compression_t)cur, body, blen, cap, &plain);
        body = plain.p;
        blen = plain.len;
    }
    if (!rc && codec != KP_COMP_NONE) {
        rc = kp_compress((kp_compression_t)codec, body, blen, &packed);
        body = packed.p;
        blen = packed.len;
    }
    if (rc) {
        snprintf(msg, msz, "recompression to the topic's codec failed");
        rc = rc > 0 ? rc : RB_CORRUPT_MESSAGE;
    } else {
        uint8_t *out = bk_arena_alloc_or_die(&r->r_arena, hl + blen);
        memcpy(out, *p, hl);
        memcpy(out + hl, body, blen);
        rb_wbe32(out + 8, (uint32_t)(hl + blen - 12));
        uint16_t attrs = (uint16_t)((h.attributes & ~7) | codec);
        out[21] = (uint8_t)(attrs >> 8);
        out[22] = (uint8_t)attrs;
        rb_wbe32(out + 17, rb_crc32c(0, out + 21, hl + blen - 21));
        *p = out;
        *len = hl + blen;
    }
    rb_buf_free(&plain);
    rb_buf_free(&packed);
    return rc;
}

/* message.timestamp.difference.max.ms for CreateTime topics: every record's
 * timestamp (base timestamp + delta) must be within max_ms of now, as Kafka
 * checks each record. The batch (validated, so its framing parses) is
 * decompressed when compressed; cap bounds that as in validation. */
static int bk_check_timestamps(const uint8_t *p, size_t len, int64_t now, int64_t max_ms, size_t cap, char *msg,
                               size_t msz) {
    if (max_ms == INT64_MAX) return 0;
    kp_batch_hdr_t h;
    if (kp_batch_hdr_parse(p, len, &h)) return RB_CORRUPT_MESSAGE;
    const size_t hl = 61;
    rb_buf_t plain;
    rb_buf_init(&plain);
    const uint8_t *body = p + hl;
    size_t blen = (size_t)h.batch_length + 12 - hl;
    int rc = 0;
    if ((h.attributes & 7) != KP_COMP_NONE) {
        rc = kp_decompress((kp_compression_t)(h.attributes & 7), body, blen, cap, &plain);
        body = plain.p;
        blen = plain.len;
    }
    rb_rd_t rd;
    rb_rd_init(&rd, body, blen);
    for (int32_t i = 0; !rc && i < h.records_count; i++) {
        kp_record_t rec;
        if (kp_record_next(&rd, &rec)) {
            rc = RB_CORRUPT_MESSAGE;
            break;
        }
        int64_t ts, d;
        bool out = __builtin_add_overflow(h.base_timestamp, rec.timestamp_delta, &ts);
        if (!out && ts == -1) continue; /* NO_TIMESTAMP is not checked, as in Kafka */
        out = out || __builtin_sub_overflow(ts, now, &d) || d > max_ms || d < -max_ms;
        if (out) {
            snprintf(msg, msz,
                     "Timestamp %lld of message with offset %d is out of range. The timestamp should be within "
                     "[%lld, %lld]",
                     (long long)ts, rec.offset_delta, (long long)(now - max_ms),
                     (long long)(max_ms > INT64_MAX - now ? INT64_MAX : now + max_ms));
            rc = RB_INVALID_TIMESTAMP;
        }
    }
    rb_buf_free(&plain);
    return rc;
}

static void bk_set_msg(bk_req_t *r, kp_produce_resp_partition_produce_response_t *pr, const char *msg) {
    if (r->r_hdr.api_version >= 8 && msg && *msg) pr->error_message = bk_str(r, msg);
}

void bk_handle_produce(bk_req_t *r) {
    bk_broker_t *b = r->r_broker;
    kp_produce_req_t *req = r->r_body;
    int16_t acks = req->acks;
    int16_t v = r->r_hdr.api_version;
    kp_produce_resp_t *resp = bk_req_resp_new(r);
    bk_produce_ctx_t *pc = calloc(1, sizeof(*pc));
    pc->pc_req = r;
    pc->pc_resp = resp;
    pc->pc_loop = rn_conn_loop(r->r_conn);
    atomic_init(&pc->pc_refs, 1);
    atomic_init(&pc->pc_outstanding, 1); /* +1 while the request is being appended */
    /* one wait slot per partition (the array must not move once waits exist) */
    for (int32_t i = 0; i < req->topic_data.n; i++) pc->pc_capwaits += req->topic_data.v[i].partition_data.n;
    if (acks == -1 && pc->pc_capwaits > 0) pc->pc_waits = calloc((size_t)pc->pc_capwaits, sizeof(*pc->pc_waits));
    bool any_error = false;
    char first_err[256] = "";

    bk_produce_error_response(r, RB_NONE, resp);
    if (acks != 0 && acks != 1 && acks != -1) {
        bk_produce_error_response(r, RB_INVALID_REQUIRED_ACKS, resp);
        any_error = true;
        snprintf(first_err, sizeof(first_err), "invalid acks %d", acks);
        goto done;
    }
    bk_produce_autocreate(b, req);
    kp_batch_limits_t lim = {0};
    lim.max_decompressed_bytes = (size_t)b->b_cfg.max_decompressed_batch_bytes;
    int64_t now = rb_now_ms();

    pthread_rwlock_rdlock(&b->b_topics_lock);
    for (int32_t i = 0; i < req->topic_data.n; i++) {
        kp_produce_req_topic_produce_data_t *td = &req->topic_data.v[i];
        kp_produce_resp_topic_produce_response_t *tr = &resp->responses.v[i];
        bk_topic_t *t = td->name.len > 0 ? bk_topic_find(b, td->name.p, (size_t)td->name.len) : NULL;
        bool name_ok = td->name.len > 0 && bk_topic_name_valid(td->name.p, (size_t)td->name.len);
        for (int32_t k = 0; k < td->partition_data.n; k++) {
            kp_produce_req_partition_produce_data_t *pd = &td->partition_data.v[k];
            kp_produce_resp_partition_produce_response_t *pr = &tr->partition_responses.v[k];
            char msg[256] = "";
            int err = 0;
            if (!name_ok) {
                err = RB_INVALID_TOPIC_EXCEPTION;
            } else if (!t || pd->index < 0 || pd->index >= t->t_npartitions) {
                err = RB_UNKNOWN_TOPIC_OR_PARTITION;
            } else if (pd->records.len <= 0) {
                err = RB_INVALID_RECORD;
                snprintf(msg, sizeof(msg), "produce request without a record batch");
            } else {
                bk_partition_t *p = t->t_parts[pd->index];
                kp_batch_info_t info;
                lim.max_batch_bytes = (size_t)t->t_max_message_bytes;
                lim.check_keys = t->t_logcfg.compact; /* the validation walks every record anyway */
                err = kp_batch_validate(pd->records.p, (size_t)pd->records.len, &lim, &info, msg, sizeof(msg));
                if (!err && lim.check_keys && info.keyless_record) {
                    err = RB_INVALID_RECORD; /* Kafka: a compacted topic needs keys */
                    snprintf(msg, sizeof(msg), "Compacted topic cannot accept message without key in topic partition %.*s-%d.",
                             (int)td->name.len, td->name.p, (int)pd->index);
                }
                if (!err && info.nbatches != 1) {
                    err = RB_INVALID_RECORD;
                    snprintf(msg, sizeof(msg),
                             "Produce v3+ requests must contain exactly one record batch per partition (got %d)",
                             info.nbatches);
                }
                if (!err && info.any_control) {
                    /* Kafka: markers are written by the coordinator only (S17) */
                    err = RB_INVALID_RECORD;
                    snprintf(msg, sizeof(msg), "control batches cannot be produced by clients");
                }
                if (!err && info.any_transactional && req->transactional_id.len < 0) {
                    /* Kafka: transactional records need a transactional id */
                    err = RB_INVALID_RECORD;
                    snprintf(msg, sizeof(msg), "transactional batch in a produce without a transactional id");
                }
                if (!err && info.any_transactional && info.producer_id < 0) {
                    err = RB_INVALID_RECORD;
                    snprintf(msg, sizeof(msg), "transactional batch without a producer id");
                }
                if (!err && info.producer_id >= 0 && !bk_pid_issued(b, info.producer_id)) {
                    err = RB_UNKNOWN_PRODUCER_ID; /* B6 */
                    snprintf(msg, sizeof(msg), "producer id %lld was never issued by this broker",
                             (long long)info.producer_id);
                }
                if (!err && !t->t_logcfg.log_append_time)
                    err = bk_check_timestamps(pd->records.p, (size_t)pd->records.len, now, t->t_ts_diff_max_ms,
                                              lim.max_decompressed_bytes, msg, sizeof(msg));
                const uint8_t *recs = pd->records.p;
                size_t rlen = (size_t)pd->records.len;
                if (!err && t->t_codec >= 0) {
                    err = bk_recompress(r, &recs, &rlen, t->t_codec, lim.max_decompressed_bytes, msg, sizeof(msg));
                    if (!err && recs != pd->records.p)
                        err = kp_batch_validate(recs, rlen, &lim, &info, msg, sizeof(msg));
                }
                bool txn_locked = false;
                if (!err && info.any_transactional) {
                    /* T3: the partition must be in the producer's ongoing transaction */
                    kp_batch_hdr_t bh;
                    err = kp_batch_hdr_parse(recs, rlen, &bh);
                    if (!err) err = bk_txn_produce_lock(b, &req->transactional_id, bh.producer_id, bh.producer_epoch,
                                                        t->t_name, pd->index);
                    if (err) snprintf(msg, sizeof(msg), "transactional batch of producer %lld: %s",
                                      (long long)info.producer_id, rb_err_name(err));
                    else txn_locked = true;
                }
                if (!err) {
                    int64_t base = -1, last = -1, lat = -1;
                    err = st_log_append(p->p_log, (uint8_t *)recs, rlen, &info, now,
                                        &base, &last, &lat);
                    if (txn_locked) bk_txn_produce_unlock(b);
                    if (err == RB_DUPLICATE_SEQUENCE_NUMBER) {
                        /* a retry of one of the producer's last 5 batches: stored
                         * once, answered with its original offsets and no error
                         * (Kafka); acks=all still waits for the original to be
                         * durable (the sync wait below) */
                        rb_debug("produce %s-%d: duplicate batch of producer %lld at offset %lld", t->t_name,
                                 pd->index, (long long)info.producer_id, (long long)base);
                        err = 0;
                    } else if (err == RB_OUT_OF_ORDER_SEQUENCE_NUMBER || err == RB_INVALID_PRODUCER_EPOCH ||
                               err == RB_UNKNOWN_PRODUCER_ID) {
                        snprintf(msg, sizeof(msg), "producer %lld: %s", (long long)info.producer_id,
                                 rb_err_name(err));
                    }
                    if (err) {
                        if (!msg[0]) snprintf(msg, sizeof(msg), "append to %s-%d failed", t->t_name, pd->index);
                    } else {
                        st_log_state_t st;
                        st_log_state(p->p_log, &st);
                        pr->base_offset = base;
                        pr->log_append_time_ms = lat;
                        pr->log_start_offset = st.log_start_offset;
                        if (acks == -1 && pc->pc_nwaits < pc->pc_capwaits) {
                            bk_produce_wait_t *w = &pc->pc_waits[pc->pc_nwaits++];
                            w->pw_ctx = pc;
                            w->pw_part = pr;
                            atomic_init(&w->pw_status, -1);
                            atomic_fetch_add(&pc->pc_refs, 1);
                            atomic_fetch_add(&pc->pc_outstanding, 1);
                            st_log_sync_wait(p->p_log, last + 1, bk_produce_synced, w);
                        }
                    }
                }
            }
            if (err) {
                pr->error_code = (int16_t)err;
                pr->base_offset = -1;
                bk_set_msg(r, pr, msg);
                if (!any_error) {
                    snprintf(first_err, sizeof(first_err), "%.*s-%d: %s %.100s",
                             td->name.len < 0 ? 0 : (int)RB_MIN(td->name.len, 100), td->name.p, pd->index,
                             rb_err_name(err), msg);
                    any_error = true;
                }
            }
        }
    }
    pthread_rwlock_unlock(&b->b_topics_lock);
done:
    if (any_error) rb_debug("produce from %s: %s", rn_conn_peer(r->r_conn), first_err);
    (void)v;
    if (acks == 0) {
        /* no response; an error closes the connection so the client notices */
        rn_conn_t *c = r->r_conn;
        free(pc->pc_waits);
        free(pc);
        if (any_error) {
            char why[300];
            snprintf(why, sizeof(why), "acks=0 produce failed: %s", first_err);
            rn_conn_close(c, why);
        }
        bk_req_respond_none(r);
        return;
    }
    /* acks=all: answer when every wait is done, or at timeout_ms (Kafka's
     * REQUEST_TIMED_OUT for what is not yet durable); acks=1: now */
    if (atomic_fetch_sub_explicit(&pc->pc_outstanding, 1, memory_order_acq_rel) == 1) {
        atomic_fetch_add(&pc->pc_refs, 1); /* what bk_produce_finish releases */
        bk_produce_finish(pc);
        return;
    }
    pc->pc_timer = rn_loop_timer_add(pc->pc_loop, req->timeout_ms < 0 ? 0 : req->timeout_ms, bk_produce_timeout, pc);
}
