/*
 * fetch.c — Fetch v4-v16: whole batches from the segment files, sent by
 * sendfile; max_bytes and partition_max_bytes honoured with at least one
 * whole batch for the first partition that has data; long poll: a fetch
 * below min_bytes parks on its partitions until the high watermark advances
 * (st_durable_cb) or max_wait_ms passes. Fetch sessions are declined
 * (session id 0), so every request is a full fetch and answers are complete.
 */
#include "broker/broker.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct bk_fetch bk_fetch_t;

/* One per (parked fetch, partition): on the fetch's list (w_next) and, while
 * w_linked, on the partition's list (w_pnext/w_pprev, under p_waiters_mu).
 * w_linked changes only with the topics lock held (read lock + p_waiters_mu
 * by the fetch's own loop thread, or the write lock on topic deletion), so
 * the owner may read it under the read lock before touching w_part. */
struct bk_fetch_waiter {
    struct bk_fetch_waiter *w_next;
    struct bk_fetch_waiter *w_pnext, *w_pprev;
    bk_fetch_t *w_fetch;
    bk_partition_t *w_part;
    bool w_linked;
};

struct bk_fetch {
    bk_req_t *f_req;
    rn_loop_t *f_loop;
    atomic_int f_refs;
    atomic_bool f_wake_pending;
    uint64_t f_timer;
    bool f_done;
    rb_arena_t f_arena;    /* the response under construction; reset on each rebuild */
    kp_fetch_resp_t *f_resp;
    int64_t f_bytes;
    bool f_any_error;
    struct bk_fetch_waiter *f_waiters;
    int f_nwaiters;
};

static void bk_fetch_unref(bk_fetch_t *f) {
    if (atomic_fetch_sub_explicit(&f->f_refs, 1, memory_order_acq_rel) != 1) return;
    struct bk_fetch_waiter *w = f->f_waiters;
    while (w) {
        struct bk_fetch_waiter *n = w->w_next;
        free(w);
        w = n;
    }
    rb_arena_free(&f->f_arena);
    free(f);
}

static void bk_fetch_close_fds(kp_fetch_resp_t *resp) {
    if (!resp) return;
    for (int32_t i = 0; i < resp->responses.n; i++)
        for (int32_t k = 0; k < resp->responses.v[i].partitions.n; k++) {
            kp_records_t *rec = &resp->responses.v[i].partitions.v[k].records;
            if (rec->in_file && rec->fd >= 0) close(rec->fd);
            rec->in_file = false;
            rec->fd = -1;
        }
}

void bk_fetch_error_response(bk_req_t *r, int16_t err, void *vresp) {
    kp_fetch_req_t *req = r->r_body;
    kp_fetch_resp_t *resp = vresp;
    resp->error_code = err;
    BK_ALLOC_ARR(r, resp->responses, req->topics.n < 0 ? 0 : req->topics.n);
    for (int32_t i = 0; i < resp->responses.n; i++) {
        kp_fetch_req_fetch_topic_t *ft = &req->topics.v[i];
        kp_fetch_resp_fetchable_topic_response_t *rt = &resp->responses.v[i];
        rt->topic = ft->topic;
        rt->topic_id = ft->topic_id;
        BK_ALLOC_ARR(r, rt->partitions, ft->partitions.n < 0 ? 0 : ft->partitions.n);
        for (int32_t k = 0; k < rt->partitions.n; k++) {
            kp_fetch_resp_partition_data_t *pd = &rt->partitions.v[k];
            kp_init_defaults(&kp_fetch_resp_partition_data_desc, pd);
            pd->partition_index = ft->partitions.v[k].partition;
            pd->error_code = err;
            pd->high_watermark = -1;
            pd->last_stable_offset = -1;
            pd->log_start_offset = -1;
            pd->preferred_read_replica = -1;
            pd->records.len = 0;
        }
    }
}

/* Builds the response from the logs as they are now. Loop thread; takes the
 * topics read lock. */
static void bk_fetch_build(bk_fetch_t *f) {
    bk_req_t *r = f->f_req;
    bk_broker_t *b = r->r_broker;
    kp_fetch_req_t *req = r->r_body;
    int16_t v = r->r_hdr.api_version;
    bk_fetch_close_fds(f->f_resp);
    rb_arena_reset(&f->f_arena);
    /* build in f_arena: swap it in for the helpers that allocate from r */
    rb_arena_t saved = r->r_arena;
    r->r_arena = f->f_arena;
    kp_fetch_resp_t *resp = bk_req_resp_new(r);
    bk_fetch_error_response(r, RB_NONE, resp);
    f->f_bytes = 0;
    f->f_any_error = false;
    int64_t budget = req->max_bytes > 0 ? req->max_bytes : 0;
    if (v < 3) budget = INT32_MAX;

    pthread_rwlock_rdlock(&b->b_topics_lock);
    for (int32_t i = 0; i < req->topics.n; i++) {
        kp_fetch_req_fetch_topic_t *ft = &req->topics.v[i];
        kp_fetch_resp_fetchable_topic_response_t *rt = &resp->responses.v[i];
        bk_topic_t *t = v >= 13 ? bk_topic_find_id(b, &ft->topic_id)
                                : (ft->topic.len > 0 ? bk_topic_find(b, ft->topic.p, (size_t)ft->topic.len) : NULL);
        for (int32_t k = 0; k < ft->partitions.n; k++) {
            kp_fetch_req_fetch_partition_t *fp = &ft->partitions.v[k];
            kp_fetch_resp_partition_data_t *pd = &rt->partitions.v[k];
            if (!t) {
                pd->error_code = v >= 13 ? RB_UNKNOWN_TOPIC_ID : RB_UNKNOWN_TOPIC_OR_PARTITION;
                f->f_any_error = true;
                continue;
            }
            if (fp->partition < 0 || fp->partition >= t->t_npartitions) {
                pd->error_code = RB_UNKNOWN_TOPIC_OR_PARTITION;
                f->f_any_error = true;
                continue;
            }
            bk_partition_t *p = t->t_parts[fp->partition];
            st_log_state_t st;
            st_log_state(p->p_log, &st);
            bool committed = v >= 4 && req->isolation_level == 1;
            int64_t lso = st_log_lso(p->p_log);
            pd->high_watermark = st.high_watermark;
            pd->last_stable_offset = lso;
            pd->log_start_offset = st.log_start_offset;
            if (st.fatal) {
                pd->error_code = RB_KAFKA_STORAGE_ERROR;
                f->f_any_error = true;
                continue;
            }
            if (fp->fetch_offset < st.log_start_offset || fp->fetch_offset > st.log_end_offset) {
                pd->error_code = RB_OFFSET_OUT_OF_RANGE;
                f->f_any_error = true;
                continue;
            }
            if (fp->fetch_offset >= st.high_watermark) continue; /* nothing visible yet */
            if (committed && fp->fetch_offset >= lso) continue;     /* read_committed: not yet stable (S17) */
            int64_t pmax = fp->partition_max_bytes;
            if (pmax <= 0) continue;
            int64_t limit = RB_MIN(pmax, budget - f->f_bytes);
            bool min_one = f->f_bytes == 0;
            if (limit <= 0 && !min_one) continue;
            st_read_t rd;
            int rc = st_log_read(p->p_log, fp->fetch_offset, (size_t)(limit < 0 ? 0 : limit), min_one, &rd);
            if (rc) {
                pd->error_code = (int16_t)(rc == RB_OFFSET_OUT_OF_RANGE ? RB_OFFSET_OUT_OF_RANGE : RB_KAFKA_STORAGE_ERROR);
                f->f_any_error = true;
                continue;
            }
            pd->high_watermark = rd.high_watermark;
            pd->log_start_offset = rd.log_start_offset;
            if (committed) {
                /* only whole batches below the LSO, and the aborted
                 * transactions of that range for the client to filter (S18),
                 * taken after the read: the cleaner drops an abort marker's
                 * entry with its segments (S21) */
                st_aborted_txn_t *ab = NULL;
                int nab = 0;
                st_log_txn_view(p->p_log, fp->fetch_offset, lso, &lso, &ab, &nab);
                if (st_read_trim(&rd, lso) != 0) {
                    if (rd.fd >= 0) close(rd.fd);
                    free(ab);
                    pd->error_code = RB_KAFKA_STORAGE_ERROR;
                    f->f_any_error = true;
                    continue;
                }
                BK_ALLOC_ARR(r, pd->aborted_transactions, nab);
                for (int j = 0; j < nab; j++) {
                    pd->aborted_transactions.v[j].producer_id = ab[j].pid;
                    pd->aborted_transactions.v[j].first_offset = ab[j].first;
                }
                free(ab);
            }
            pd->last_stable_offset = lso;
            if (rd.len > 0) {
                pd->records.in_file = true;
                pd->records.fd = rd.fd;
                pd->records.file_off = rd.file_off;
                pd->records.len = (int32_t)rd.len;
                f->f_bytes += (int64_t)rd.len;
            } else if (rd.fd >= 0) {
                close(rd.fd);
            }
        }
    }
    pthread_rwlock_unlock(&b->b_topics_lock);
    f->f_arena = r->r_arena;
    r->r_arena = saved;
    f->f_resp = resp;
}

/* p_waiters_mu held. */
static void bk_waiter_unlink(bk_partition_t *p, struct bk_fetch_waiter *w) {
    if (w->w_pprev) w->w_pprev->w_pnext = w->w_pnext;
    else p->p_waiters = w->w_pnext;
    if (w->w_pnext) w->w_pnext->w_pprev = w->w_pprev;
    w->w_pnext = w->w_pprev = NULL;
    w->w_linked = false;
}

static void bk_fetch_wake(void *arg);

/* Flusher thread: the high watermark of l advanced; wake its parked fetches
 * (once each until they run). */
void bk_fetch_on_durable(void *ctx, st_log_t *l, int64_t hw) {
    (void)ctx;
    (void)hw;
    bk_partition_t *p = st_log_user(l);
    if (!p) return;
    pthread_mutex_lock(&p->p_waiters_mu);
    for (struct bk_fetch_waiter *w = p->p_waiters; w; w = w->w_pnext) {
        bk_fetch_t *f = w->w_fetch;
        if (!atomic_exchange(&f->f_wake_pending, true)) {
            atomic_fetch_add(&f->f_refs, 1);
            rn_loop_post(f->f_loop, bk_fetch_wake, f);
        }
    }
    pthread_mutex_unlock(&p->p_waiters_mu);
}

/* Topic deletion (write lock held): unlink every waiter and wake its fetch,
 * which will answer UNKNOWN_TOPIC_OR_PARTITION for it. */
void bk_fetch_wake_all(bk_partition_t *p) {
    pthread_mutex_lock(&p->p_waiters_mu);
    while (p->p_waiters) {
        struct bk_fetch_waiter *w = p->p_waiters;
        bk_fetch_t *f = w->w_fetch;
        bk_waiter_unlink(p, w);
        atomic_fetch_add(&f->f_refs, 1);
        rn_loop_post(f->f_loop, bk_fetch_wake, f);
    }
    pthread_mutex_unlock(&p->p_waiters_mu);
}

/* Unlinks f's waiters from their partitions. Loop thread. */
static void bk_fetch_unpark(bk_fetch_t *f) {
    bk_broker_t *b = f->f_req->r_broker;
    pthread_rwlock_rdlock(&b->b_topics_lock);
    for (struct bk_fetch_waiter *w = f->f_waiters; w; w = w->w_next) {
        if (!w->w_linked) continue; /* its partition was deleted */
        bk_partition_t *p = w->w_part;
        pthread_mutex_lock(&p->p_waiters_mu);
        bk_waiter_unlink(p, w);
        pthread_mutex_unlock(&p->p_waiters_mu);
    }
    pthread_rwlock_unlock(&b->b_topics_lock);
}

static void bk_fetch_respond(bk_fetch_t *f) {
    f->f_done = true;
    if (f->f_timer) {
        rn_loop_timer_cancel(f->f_loop, f->f_timer);
        f->f_timer = 0;
    }
    if (f->f_nwaiters) bk_fetch_unpark(f);
    bk_req_t *r = f->f_req;
    f->f_req = NULL;
    kp_fetch_resp_t *resp = f->f_resp;
    f->f_resp = NULL;
    bk_req_respond(r, resp); /* the fds now belong to the chain */
    bk_fetch_unref(f);
}

static void bk_fetch_timeout(void *arg) {
    bk_fetch_t *f = arg;
    f->f_timer = 0;
    if (f->f_done) return;
    bk_fetch_build(f);
    bk_fetch_respond(f);
}

static void bk_fetch_wake(void *arg) {
    bk_fetch_t *f = arg;
    atomic_store(&f->f_wake_pending, false);
    if (!f->f_done) {
        kp_fetch_req_t *req = f->f_req->r_body;
        bk_fetch_build(f);
        if (f->f_bytes >= req->min_bytes || f->f_any_error || atomic_load(&f->f_req->r_broker->b_stopping))
            bk_fetch_respond(f);
    }
    bk_fetch_unref(f);
}

/* Parks f on every partition it reads. Loop thread. */
static void bk_fetch_park(bk_fetch_t *f) {
    bk_req_t *r = f->f_req;
    bk_broker_t *b = r->r_broker;
    kp_fetch_req_t *req = r->r_body;
    int16_t v = r->r_hdr.api_version;
    pthread_rwlock_rdlock(&b->b_topics_lock);
    for (int32_t i = 0; i < req->topics.n; i++) {
        kp_fetch_req_fetch_topic_t *ft = &req->topics.v[i];
        bk_topic_t *t = v >= 13 ? bk_topic_find_id(b, &ft->topic_id)
                                : (ft->topic.len > 0 ? bk_topic_find(b, ft->topic.p, (size_t)ft->topic.len) : NULL);
        if (!t) continue;
        for (int32_t k = 0; k < ft->partitions.n; k++) {
            int32_t pi = ft->partitions.v[k].partition;
            if (pi < 0 || pi >= t->t_npartitions) continue;
            bk_partition_t *p = t->t_parts[pi];
            struct bk_fetch_waiter *w = calloc(1, sizeof(*w));
            w->w_fetch = f;
            w->w_part = p;
            w->w_next = f->f_waiters;
            f->f_waiters = w;
            f->f_nwaiters++;
            pthread_mutex_lock(&p->p_waiters_mu);
            w->w_pprev = NULL;
            w->w_pnext = p->p_waiters;
            if (p->p_waiters) p->p_waiters->w_pprev = w;
            p->p_waiters = w;
            w->w_linked = true;
            pthread_mutex_unlock(&p->p_waiters_mu);
        }
    }
    pthread_rwlock_unlock(&b->b_topics_lock);
}

void bk_handle_fetch(bk_req_t *r) {
    kp_fetch_req_t *req = r->r_body;
    int16_t v = r->r_hdr.api_version;
    bk_fetch_t *f = calloc(1, sizeof(*f));
    f->f_req = r;
    f->f_loop = rn_conn_loop(r->r_conn);
    atomic_init(&f->f_refs, 1);
    rb_arena_init(&f->f_arena, 0);
    if (v >= 7 && req->session_id != 0) {
        /* we never hand out sessions, so a non-zero id is not ours */
        rb_arena_t saved = r->r_arena;
        r->r_arena = f->f_arena;
        kp_fetch_resp_t *resp = bk_req_resp_new(r);
        resp->error_code = RB_FETCH_SESSION_ID_NOT_FOUND;
        f->f_arena = r->r_arena;
        r->r_arena = saved;
        f->f_resp = resp;
        bk_fetch_respond(f);
        return;
    }
    bk_fetch_build(f);
    if (f->f_bytes >= req->min_bytes || f->f_any_error || req->max_wait_ms <= 0 ||
        atomic_load(&r->r_broker->b_stopping)) {
        bk_fetch_respond(f);
        return;
    }
    bk_fetch_close_fds(f->f_resp);
    f->f_resp = NULL;
    bk_fetch_park(f);
    f->f_timer = rn_loop_timer_add(f->f_loop, req->max_wait_ms, bk_fetch_timeout, f);
}
