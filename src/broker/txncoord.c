/*
 * txncoord.c — the transaction coordinator: InitProducerId with a
 * transactional.id, AddPartitionsToTxn v0-v3, EndTxn, the state of every
 * transactional id in `__transaction_state` (Kafka's TransactionLogKey v0 /
 * TransactionLogValue v0), transaction markers written into the partitions
 * of a transaction, the abort of expired transactions, the replay at start,
 * and the check a transactional Produce runs (bk_txn_produce_lock).
 *
 * One worker thread does every state change that must reach the log: a
 * handler queues its request, the worker validates it under c_mu, appends
 * the state record, waits (blocking) until it is durable, and posts the
 * answer to the request's event loop. Completions (commit/abort) run on the
 * same thread, so one transactional id never has two completions at once.
 *
 * Invariants:
 *  T1. The state of a transactional id (producer id, epoch, timeout, status,
 *      partitions) is answered to a client only after its record in
 *      partition abs(hash(id)) % transaction.state.log.num.partitions of
 *      `__transaction_state` is durable; at start every partition is
 *      replayed to its high watermark, the last record of a key winning.
 *  T2. A completion runs in order: (1) PrepareCommit/PrepareAbort with the
 *      partitions, durable; (2) one marker per partition, all durable;
 *      (3) CompleteCommit/CompleteAbort with no partitions. EndTxn is
 *      answered after (2). A replayed Prepare* redoes (2) and (3) at start
 *      (a second marker for a partition with nothing open is a no-op,
 *      storage S17), so a transaction is either committed in every partition
 *      or aborted in every partition, never mixed.
 *  T3. From (1) on, the id's status is Prepare*: a transactional Produce, an
 *      AddPartitionsToTxn or an EndTxn for it gets CONCURRENT_TRANSACTIONS or
 *      INVALID_TXN_STATE; a transactional Produce checks the id's producer
 *      id, epoch, Ongoing status and partition membership and appends under
 *      c_mu, so no batch of a transaction lands after its marker.
 *  T4. Fencing: InitProducerId for an id with a producer bumps the epoch
 *      (a record, durable, before the answer); a request with an older epoch
 *      gets PRODUCER_FENCED (EndTxn, AddPartitionsToTxn from v? on) or
 *      INVALID_PRODUCER_EPOCH (Produce: partitions fence through the bumped
 *      epoch of the abort markers, S17). If the id has an Ongoing
 *      transaction, it is aborted with the bumped epoch first and the
 *      InitProducerId is answered CONCURRENT_TRANSACTIONS (the client
 *      retries, as with Kafka).
 *  T5. An Ongoing transaction older than its transaction.timeout.ms is
 *      aborted by the worker (checked every
 *      transaction.abort.timed.out.transaction.cleanup.interval.ms), its
 *      epoch bumped so the late producer is fenced.
 *  T6. TxnOffsetCommit (after AddOffsetsToTxn put the group's
 *      __consumer_offsets partition into the transaction) keeps the offsets
 *      in the transaction, durable before the answer as a rill record in
 *      __transaction_state (key version 100 + id; value: producer id, epoch
 *      and every pending offset; a tombstone when the transaction ends).
 *      They reach the group coordinator (cg_offset_commit_txn, durable) in
 *      step (2) of a commit, before the Complete record, and are dropped by
 *      an abort; OffsetFetch with require_stable answers
 *      UNSTABLE_OFFSET_COMMIT for a partition with a pending offset.
 *  T7. An id that is Empty, CompleteCommit or CompleteAbort and whose state
 *      was not updated for transactional.id.expiration.ms is removed by the
 *      worker (checked every
 *      transaction.remove.expired.transaction.cleanup.interval.ms): a
 *      tombstone for its key, durable, then Dead and out of the table, so
 *      DescribeTransactions answers TRANSACTIONAL_ID_NOT_FOUND only once the
 *      replay at start can no longer bring it back (the replay drops ids
 *      whose last record is a tombstone); its next InitProducerId allocates a
 *      new producer id at epoch 0. Ongoing and Prepare* ids are never
 *      removed (T5 aborts an Ongoing one first; it expires after that).
 *  T8. A delayed EndTxn never ends a later transaction (the KAFKA-17754
 *      pattern: a client's EndTxn is held up in the network, the client
 *      gives up on that connection, retries on a new one, and begins the
 *      next transaction before the held request arrives). Clients send all
 *      of a transactional id's coordinator requests on one connection at a
 *      time and only ever move to a newer one; connection ids grow in
 *      accept order. So each transaction keeps the newest connection id
 *      that AddPartitionsToTxn / AddOffsetsToTxn arrived on, and an EndTxn
 *      for an Ongoing transaction arriving on an older connection is
 *      refused with INVALID_TXN_STATE, changing nothing. rilld does not
 *      bump the epoch per transaction (KIP-890 part 2; EndTxn v0-v3 are
 *      served), so this is what tells the two transactions apart: same
 *      producer id, same epoch. The floor lives in memory only: a restart closes every
 *      connection, so no request from before it can arrive after it.
 *  T9. TxnOffsetCommit v3+ carries the consumer's generation, member id and
 *      group.instance.id; the group coordinator checks them as an
 *      OffsetCommit's (cg_txn_offset_check: UNKNOWN_MEMBER_ID,
 *      ILLEGAL_GENERATION, FENCED_INSTANCE_ID) before any offset is kept, so
 *      a zombie consumer's offsets never join a transaction. v0-v2, or
 *      generation -1 with an empty member id and no instance id, is not
 *      checked (a producer committing offsets without a consumer group).
 */
#include "broker/broker.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

enum { TX_EMPTY = 0, TX_ONGOING = 1, TX_PREP_COMMIT = 2, TX_PREP_ABORT = 3, TX_DONE_COMMIT = 4, TX_DONE_ABORT = 5,
       TX_DEAD = 6 };
static const char *const tx_state_names[] = {"Empty", "Ongoing", "PrepareCommit", "PrepareAbort",
                                             "CompleteCommit", "CompleteAbort", "Dead"};

typedef struct {
    char *topic;
    int32_t part;
} bk_tp_t;

typedef struct bk_txn {
    struct bk_txn *next;
    char *id;
    int64_t pid;
    int16_t epoch;
    int32_t timeout_ms;
    int8_t state;
    int64_t start_ms, update_ms;
    bk_tp_t *parts;
    int nparts, cap;
    struct bk_toff *offs; /* T6: offsets pending until the commit */
    int noffs, offs_cap;
    uint64_t conn_floor; /* T8: newest connection that added to the transaction (not persisted) */
} bk_txn_t;

typedef struct bk_toff {
    char *group, *topic, *meta; /* meta NULL: null metadata */
    int32_t part, leader_epoch;
    int64_t offset;
} bk_toff_t;

typedef enum { JOB_INIT, JOB_ADD, JOB_END, JOB_RECOVER, JOB_EXPIRE, JOB_ADD_OFFSETS, JOB_TXN_OFFSETS } bk_job_kind_t;

typedef struct bk_job {
    struct bk_job *next;
    bk_job_kind_t kind;
    bk_req_t *r;
    void *resp;
    rn_loop_t *loop;
    bk_txn_t *t; /* RECOVER / EXPIRE */
    uint64_t conn_id; /* the request's connection (accept order, T8) */
} bk_job_t;

struct bk_txnc {
    bk_broker_t *b;
    pthread_mutex_t mu; /* guards the table and every bk_txn_t (T3) */
    pthread_cond_t cv;
    bk_txn_t *list;
    int ntxn;
    bk_job_t *head, *tail;
    bool stop;
    pthread_t thread;
    st_log_t **logs;
    int32_t nparts;
};

#define BK_TXN_TOPIC "__transaction_state"

/* ---- records (TransactionLogKey v0 / TransactionLogValue v0) ----------------------------- */

static void put_str(rb_buf_t *b, const char *s, size_t n) {
    rb_buf_u16(b, (uint16_t)n);
    rb_buf_put(b, s, n);
}

/* Appends one record (key k, value v or a tombstone) to the id's partition
 * of __transaction_state; frees k and v. */
static int txn_append_kv(bk_txnc_t *c, const char *id, rb_buf_t *k, rb_buf_t *v, bool tombstone, int64_t *last) {
    kp_record_in_t rec = {0};
    rec.key.p = k->p;
    rec.key.len = (int32_t)k->len;
    rec.value.p = v->p;
    rec.value.len = tombstone ? -1 : (int32_t)v->len;
    rec.timestamp = rb_now_ms();
    rb_buf_t batch;
    rb_buf_init(&batch);
    kp_batch_build(&batch, 0, KP_COMP_NONE, &rec, 1, -1, -1, -1, 0);
    rb_buf_free(k);
    rb_buf_free(v);
    kp_batch_info_t info = {0};
    info.nbatches = 1;
    info.nrecords = 1;
    info.producer_id = -1;
    int32_t part = cg_partition_for(id, strlen(id), c->nparts);
    int64_t base, lat;
    int rc = st_log_append(c->logs[part], batch.p, batch.len, &info, rb_now_ms(), &base, last, &lat);
    rb_buf_free(&batch);
    if (rc) rb_warn("txn: append to %s-%d failed: %s", BK_TXN_TOPIC, part, rb_err_name(rc));
    return rc;
}

static int txn_append_state(bk_txnc_t *c, const bk_txn_t *t, int64_t *last) {
    rb_buf_t k, v;
    rb_buf_init(&k);
    rb_buf_init(&v);
    rb_buf_u16(&k, 0);
    put_str(&k, t->id, strlen(t->id));
    rb_buf_u16(&v, 0);
    rb_buf_u64(&v, (uint64_t)t->pid);
    rb_buf_u16(&v, (uint16_t)t->epoch);
    rb_buf_u32(&v, (uint32_t)t->timeout_ms);
    rb_buf_u8(&v, (uint8_t)t->state);
    /* partitions grouped by topic, in order of addition */
    int32_t ntopics = 0;
    size_t cnt_at = v.len;
    rb_buf_u32(&v, 0);
    for (int i = 0; i < t->nparts; i++) {
        bool seen = false;
        for (int j = 0; j < i && !seen; j++) seen = !strcmp(t->parts[j].topic, t->parts[i].topic);
        if (seen) continue;
        ntopics++;
        put_str(&v, t->parts[i].topic, strlen(t->parts[i].topic));
        int32_t np = 0;
        size_t np_at = v.len;
        rb_buf_u32(&v, 0);
        for (int j = i; j < t->nparts; j++)
            if (!strcmp(t->parts[j].topic, t->parts[i].topic)) {
                rb_buf_u32(&v, (uint32_t)t->parts[j].part);
                np++;
            }
        rb_wbe32(v.p + np_at, (uint32_t)np);
    }
    rb_wbe32(v.p + cnt_at, (uint32_t)ntopics);
    rb_buf_u64(&v, (uint64_t)t->update_ms);
    rb_buf_u64(&v, (uint64_t)t->start_ms);
    return txn_append_kv(c, t->id, &k, &v, false, last);
}

/* T6: the pending offsets of t (none: a tombstone). */
static int txn_append_offs(bk_txnc_t *c, const bk_txn_t *t, int64_t *last) {
    rb_buf_t k, v;
    rb_buf_init(&k);
    rb_buf_init(&v);
    rb_buf_u16(&k, 100);
    put_str(&k, t->id, strlen(t->id));
    if (t->noffs) {
        rb_buf_u16(&v, 0);
        rb_buf_u64(&v, (uint64_t)t->pid);
        rb_buf_u16(&v, (uint16_t)t->epoch);
        rb_buf_u32(&v, (uint32_t)t->noffs);
        for (int i = 0; i < t->noffs; i++) {
            const bk_toff_t *o = &t->offs[i];
            put_str(&v, o->group, strlen(o->group));
            put_str(&v, o->topic, strlen(o->topic));
            rb_buf_u32(&v, (uint32_t)o->part);
            rb_buf_u64(&v, (uint64_t)o->offset);
            rb_buf_u32(&v, (uint32_t)o->leader_epoch);
            if (o->meta) put_str(&v, o->meta, strlen(o->meta));
            else rb_buf_u16(&v, 0xffff);
        }
    }
    return txn_append_kv(c, t->id, &k, &v, t->noffs == 0, last);
}

/* ---- blocking durability waits (worker thread only) --------------------------------------- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int pending;
    int err;
} bk_syncw_t;

static void syncw_cb(void *ctx, int err) {
    bk_syncw_t *w = ctx;
    pthread_mutex_lock(&w->mu);
    if (err && !w->err) w->err = err;
    w->pending--;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void syncw_init(bk_syncw_t *w) {
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->pending = 0;
    w->err = 0;
}

static void syncw_add(bk_syncw_t *w, st_log_t *l, int64_t offset) {
    pthread_mutex_lock(&w->mu);
    w->pending++;
    pthread_mutex_unlock(&w->mu);
    st_log_sync_wait(l, offset, syncw_cb, w);
}

static int syncw_wait(bk_syncw_t *w) {
    pthread_mutex_lock(&w->mu);
    while (w->pending > 0) pthread_cond_wait(&w->cv, &w->mu);
    int err = w->err;
    pthread_mutex_unlock(&w->mu);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    return err;
}

/* Appends t's state and waits until it is durable (T1). c->mu NOT held. */
static int txn_store(bk_txnc_t *c, const bk_txn_t *t) {
    int64_t last;
    int rc = txn_append_state(c, t, &last);
    if (rc) return rc;
    bk_syncw_t w;
    syncw_init(&w);
    syncw_add(&w, c->logs[cg_partition_for(t->id, strlen(t->id), c->nparts)], last + 1);
    return syncw_wait(&w);
}

static int txn_store_offs(bk_txnc_t *c, const bk_txn_t *t) {
    int64_t last;
    int rc = txn_append_offs(c, t, &last);
    if (rc) return rc;
    bk_syncw_t w;
    syncw_init(&w);
    syncw_add(&w, c->logs[cg_partition_for(t->id, strlen(t->id), c->nparts)], last + 1);
    return syncw_wait(&w);
}

/* ---- table (c->mu held) ------------------------------------------------------------------- */

static bk_txn_t *txn_find(bk_txnc_t *c, const char *id, size_t len) {
    for (bk_txn_t *t = c->list; t; t = t->next)
        if (strlen(t->id) == len && !memcmp(t->id, id, len)) return t;
    return NULL;
}

static bk_txn_t *txn_get(bk_txnc_t *c, const char *id, size_t len) {
    bk_txn_t *t = txn_find(c, id, len);
    if (t) return t;
    t = calloc(1, sizeof(*t));
    if (!t) abort();
    t->id = strndup(id, len);
    if (!t->id) abort();
    t->pid = -1;
    t->epoch = -1;
    t->next = c->list;
    c->list = t;
    c->ntxn++;
    return t;
}

static void txn_clear_parts(bk_txn_t *t) {
    for (int i = 0; i < t->nparts; i++) free(t->parts[i].topic);
    t->nparts = 0;
}

static void txn_clear_offs(bk_txn_t *t) {
    for (int i = 0; i < t->noffs; i++) {
        free(t->offs[i].group);
        free(t->offs[i].topic);
        free(t->offs[i].meta);
    }
    t->noffs = 0;
}

/* A new transaction (Empty or Complete -> Ongoing) starts with no partitions
 * and no pending offsets. c->mu held. */
static void txn_begin(bk_txn_t *t) {
    txn_clear_parts(t);
    txn_clear_offs(t);
    t->state = TX_ONGOING;
    t->start_ms = rb_now_ms();
}

/* T8: the floor only rises (connection ids grow in accept order). */
static void txn_raise_floor(bk_txn_t *t, uint64_t conn_id) {
    if (conn_id > t->conn_floor) t->conn_floor = conn_id;
}

static void txn_put_off(bk_txn_t *t, const char *group, size_t gl, const char *topic, size_t tl, int32_t part,
                        int64_t offset, int32_t leader_epoch, const char *meta, int32_t ml) {
    bk_toff_t *o = NULL;
    for (int i = 0; i < t->noffs && !o; i++)
        if (t->offs[i].part == part && strlen(t->offs[i].group) == gl && !memcmp(t->offs[i].group, group, gl) &&
            strlen(t->offs[i].topic) == tl && !memcmp(t->offs[i].topic, topic, tl))
            o = &t->offs[i];
    if (!o) {
        if (t->noffs == t->offs_cap) {
            t->offs_cap = t->offs_cap ? t->offs_cap * 2 : 8;
            t->offs = realloc(t->offs, (size_t)t->offs_cap * sizeof(*t->offs));
            if (!t->offs) abort();
        }
        o = &t->offs[t->noffs++];
        o->group = strndup(group, gl);
        o->topic = strndup(topic, tl);
        if (!o->group || !o->topic) abort();
        o->part = part;
    } else {
        free(o->meta);
    }
    o->offset = offset;
    o->leader_epoch = leader_epoch;
    o->meta = ml >= 0 ? strndup(meta, (size_t)ml) : NULL;
    if (ml >= 0 && !o->meta) abort();
}

static bool txn_has_part(const bk_txn_t *t, const char *topic, size_t len, int32_t part) {
    for (int i = 0; i < t->nparts; i++)
        if (t->parts[i].part == part && strlen(t->parts[i].topic) == len && !memcmp(t->parts[i].topic, topic, len))
            return true;
    return false;
}

static void txn_add_part(bk_txn_t *t, const char *topic, size_t len, int32_t part) {
    if (txn_has_part(t, topic, len, part)) return;
    if (t->nparts == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 8;
        t->parts = realloc(t->parts, (size_t)t->cap * sizeof(*t->parts));
        if (!t->parts) abort();
    }
    t->parts[t->nparts].topic = strndup(topic, len);
    if (!t->parts[t->nparts].topic) abort();
    t->parts[t->nparts].part = part;
    t->nparts++;
}

/* A copy of t's persistent fields, for writing outside c->mu. */
static void txn_copy(bk_txn_t *dst, const bk_txn_t *src) {
    *dst = *src;
    dst->next = NULL;
    dst->id = strdup(src->id);
    dst->parts = src->nparts ? malloc((size_t)src->nparts * sizeof(*dst->parts)) : NULL;
    if (!dst->id || (src->nparts && !dst->parts)) abort();
    dst->cap = src->nparts;
    for (int i = 0; i < src->nparts; i++) {
        dst->parts[i].topic = strdup(src->parts[i].topic);
        if (!dst->parts[i].topic) abort();
        dst->parts[i].part = src->parts[i].part;
    }
    dst->offs = NULL;
    dst->noffs = dst->offs_cap = 0;
    for (int i = 0; i < src->noffs; i++) {
        const bk_toff_t *o = &src->offs[i];
        txn_put_off(dst, o->group, strlen(o->group), o->topic, strlen(o->topic), o->part, o->offset,
                    o->leader_epoch, o->meta, o->meta ? (int32_t)strlen(o->meta) : -1);
    }
}

static void txn_copy_free(bk_txn_t *t) {
    txn_clear_parts(t);
    txn_clear_offs(t);
    free(t->parts);
    free(t->offs);
    free(t->id);
}

/* Frees an entry taken out of the table (c->mu not needed). */
static void txn_free_one(bk_txn_t *t) {
    txn_copy_free(t);
    free(t);
}

/* ---- completion (T2) ---------------------------------------------------------------------- */

/* Writes the markers of snapshot s into its partitions and waits until all
 * are durable. Partitions that no longer exist are skipped. */
static int txn_write_markers(bk_txnc_t *c, const bk_txn_t *s, bool commit) {
    bk_broker_t *b = c->b;
    bk_syncw_t w;
    syncw_init(&w);
    int err = 0;
    int64_t now = rb_now_ms();
    pthread_rwlock_rdlock(&b->b_topics_lock);
    for (int i = 0; i < s->nparts; i++) {
        bk_topic_t *tp = bk_topic_find(b, s->parts[i].topic, strlen(s->parts[i].topic));
        if (!tp || s->parts[i].part >= tp->t_npartitions) continue;
        st_log_t *l = tp->t_parts[s->parts[i].part]->p_log;
        rb_buf_t m;
        rb_buf_init(&m);
        st_marker_build(&m, s->pid, s->epoch, commit, 0, now);
        kp_batch_info_t info = {0};
        info.nbatches = 1;
        info.nrecords = 1;
        info.any_transactional = info.any_control = true;
        info.producer_id = s->pid;
        int64_t base, last, lat;
        int rc = st_log_append(l, m.p, m.len, &info, now, &base, &last, &lat);
        rb_buf_free(&m);
        if (rc == RB_INVALID_PRODUCER_EPOCH) {
            /* the partition saw a newer epoch of this producer: nothing of
             * ours can be open there */
            continue;
        }
        if (rc) {
            rb_warn("txn %s: marker to %s-%d failed: %s", s->id, s->parts[i].topic, s->parts[i].part,
                    rb_err_name(rc));
            err = rc;
            continue;
        }
        syncw_add(&w, l, last + 1);
    }
    /* waits under the read lock: the logs must not close meanwhile (B1) */
    int werr = syncw_wait(&w);
    pthread_rwlock_unlock(&b->b_topics_lock);
    return err ? err : werr;
}

/* T6: hands the pending offsets of snapshot s to the group coordinator and
 * waits until they are durable. */
typedef struct {
    bk_syncw_t *w;
} bk_offw_t;

static void offs_done(void *ctx) { syncw_cb(ctx, 0); }

static int txn_commit_offsets(bk_txnc_t *c, const bk_txn_t *s) {
    cg_coord_t *cg = c->b->b_coord;
    if (!s->noffs) return 0;
    if (!cg) return RB_COORDINATOR_NOT_AVAILABLE;
    int err = 0;
    /* one OffsetCommit per group, one topic entry per offset */
    for (int i = 0; i < s->noffs; i++) {
        bool seen = false;
        for (int j = 0; j < i && !seen; j++) seen = !strcmp(s->offs[j].group, s->offs[i].group);
        if (seen) continue;
        rb_arena_t a;
        rb_arena_init(&a, 0);
        int n = 0;
        for (int j = i; j < s->noffs; j++) n += !strcmp(s->offs[j].group, s->offs[i].group);
        kp_offset_commit_req_t *req = bk_arena_alloc_or_die(&a, sizeof(*req));
        kp_offset_commit_resp_t *resp = bk_arena_alloc_or_die(&a, sizeof(*resp));
        kp_init_defaults(&kp_offset_commit_req_desc, req);
        kp_init_defaults(&kp_offset_commit_resp_desc, resp);
        req->group_id.p = s->offs[i].group;
        req->group_id.len = (int32_t)strlen(s->offs[i].group);
        req->generation_id_or_member_epoch = -1;
        req->topics.n = n;
        req->topics.v = bk_arena_alloc_or_die(&a, (size_t)n * sizeof(*req->topics.v));
        int k = 0;
        for (int j = i; j < s->noffs; j++) {
            const bk_toff_t *o = &s->offs[j];
            if (strcmp(o->group, s->offs[i].group)) continue;
            kp_offset_commit_req_offset_commit_request_topic_t *tq = &req->topics.v[k++];
            tq->name.p = o->topic;
            tq->name.len = (int32_t)strlen(o->topic);
            tq->partitions.n = 1;
            tq->partitions.v = bk_arena_alloc_or_die(&a, sizeof(*tq->partitions.v));
            kp_init_defaults(&kp_offset_commit_req_offset_commit_request_partition_desc, tq->partitions.v);
            tq->partitions.v->partition_index = o->part;
            tq->partitions.v->committed_offset = o->offset;
            tq->partitions.v->committed_leader_epoch = o->leader_epoch;
            tq->partitions.v->committed_metadata.p = o->meta ? o->meta : "";
            tq->partitions.v->committed_metadata.len = o->meta ? (int32_t)strlen(o->meta) : -1;
        }
        bk_syncw_t w;
        syncw_init(&w);
        pthread_mutex_lock(&w.mu);
        w.pending = 1;
        pthread_mutex_unlock(&w.mu);
        cg_offset_commit_txn(cg, req, resp, &a, offs_done, &w);
        syncw_wait(&w);
        for (int32_t t = 0; t < resp->topics.n; t++)
            for (int32_t p = 0; p < resp->topics.v[t].partitions.n; p++)
                if (resp->topics.v[t].partitions.v[p].error_code && !err) {
                    err = resp->topics.v[t].partitions.v[p].error_code;
                    rb_warn("txn %s: offsets of group %s not committed: %s", s->id, s->offs[i].group,
                            rb_err_name(err));
                }
        rb_arena_free(&a);
    }
    return err == RB_UNKNOWN_TOPIC_OR_PARTITION ? 0 : err; /* a deleted topic's offset is moot */
}

/* Runs T2 for t, whose status the caller set to Prepare* under c->mu (the
 * Prepare record is not yet written unless `prepared`). Worker thread. */
static int txn_complete(bk_txnc_t *c, bk_txn_t *t, bool prepared) {
    bk_txn_t s;
    pthread_mutex_lock(&c->mu);
    bool commit = t->state == TX_PREP_COMMIT;
    t->update_ms = rb_now_ms();
    txn_copy(&s, t);
    pthread_mutex_unlock(&c->mu);
    int rc = prepared ? 0 : txn_store(c, &s);
    if (!rc && commit) rc = txn_commit_offsets(c, &s);
    if (!rc) rc = txn_write_markers(c, &s, commit);
    pthread_mutex_lock(&c->mu);
    if (!rc) {
        t->state = commit ? TX_DONE_COMMIT : TX_DONE_ABORT;
        t->update_ms = rb_now_ms();
        txn_clear_parts(t);
        txn_clear_offs(t);
        bk_txn_t d;
        txn_copy(&d, t);
        pthread_mutex_unlock(&c->mu);
        int64_t last;
        int arc = txn_append_state(c, &d, &last); /* not waited for: a lost Complete replays as Prepare (T2) */
        if (!arc && s.noffs) arc = txn_append_offs(c, &d, &last); /* the tombstone of the pending offsets */
        if (arc) rb_warn("txn %s: Complete record not written: %s", d.id, rb_err_name(arc));
        rb_debug("txn %s: %s (producer %lld epoch %d, %d partition(s))", d.id, commit ? "committed" : "aborted",
                 (long long)d.pid, d.epoch, s.nparts);
        txn_copy_free(&d);
    } else {
        pthread_mutex_unlock(&c->mu);
        rb_warn("txn %s: completion failed (%s); it stays %s and is retried", s.id, rb_err_name(rc),
                tx_state_names[s.state]);
    }
    txn_copy_free(&s);
    return rc;
}

/* ---- the worker's jobs --------------------------------------------------------------------- */

static void job_finish(void *arg) {
    bk_job_t *j = arg;
    bk_req_respond(j->r, j->resp);
    free(j);
}

static void job_answer(bk_job_t *j) {
    if (j->r) rn_loop_post(j->loop, job_finish, j);
    else free(j);
}

static void job_init(bk_txnc_t *c, bk_job_t *j) {
    bk_broker_t *b = c->b;
    kp_init_producer_id_req_t *req = j->r->r_body;
    kp_init_producer_id_resp_t *resp = j->resp;
    int32_t to = req->transaction_timeout_ms;
    if (to <= 0 || to > b->b_cfg.transaction_max_timeout_ms) {
        resp->error_code = RB_INVALID_TRANSACTION_TIMEOUT;
        return;
    }
    pthread_mutex_lock(&c->mu);
    bk_txn_t *t = txn_get(c, req->transactional_id.p, (size_t)req->transactional_id.len);
    if (t->state == TX_PREP_COMMIT || t->state == TX_PREP_ABORT) {
        pthread_mutex_unlock(&c->mu);
        resp->error_code = RB_CONCURRENT_TRANSACTIONS;
        return;
    }
    /* KIP-360: a client that names its producer id and epoch must name the current ones */
    if (req->producer_id >= 0 && t->pid >= 0 && (req->producer_id != t->pid || req->producer_epoch != t->epoch)) {
        pthread_mutex_unlock(&c->mu);
        resp->error_code = RB_PRODUCER_FENCED;
        return;
    }
    bool ongoing = t->state == TX_ONGOING;
    if (ongoing) {
        /* T4: abort the previous instance's transaction under a bumped epoch
         * (kept at an exhausted epoch: the retry then gets a new id) */
        if (t->epoch < INT16_MAX - 1) t->epoch++;
        t->timeout_ms = to;
        t->update_ms = rb_now_ms();
        t->state = TX_PREP_ABORT;
        pthread_mutex_unlock(&c->mu);
        txn_complete(c, t, false);
        resp->error_code = RB_CONCURRENT_TRANSACTIONS; /* the client retries and gets a fresh epoch */
        return;
    }
    if (t->pid < 0 || t->epoch >= INT16_MAX - 1) {
        pthread_mutex_unlock(&c->mu);
        int64_t id = bk_pid_allocate(b);
        pthread_mutex_lock(&c->mu);
        if (id < 0) {
            pthread_mutex_unlock(&c->mu);
            resp->error_code = RB_COORDINATOR_NOT_AVAILABLE;
            return;
        }
        t->pid = id;
        t->epoch = -1;
    }
    t->epoch++; /* T4: fence the previous instance */
    t->timeout_ms = to;
    t->update_ms = rb_now_ms();
    t->state = TX_EMPTY;
    txn_clear_parts(t);
    bk_txn_t s;
    txn_copy(&s, t);
    pthread_mutex_unlock(&c->mu);
    int rc = txn_store(c, &s);
    if (rc) {
        resp->error_code = RB_COORDINATOR_NOT_AVAILABLE;
    } else {
        resp->producer_id = s.pid;
        resp->producer_epoch = s.epoch;
    }
    txn_copy_free(&s);
}

/* Common checks of AddPartitionsToTxn / EndTxn (c->mu held). */
static int txn_check(bk_txnc_t *c, const kp_str_t *id, int64_t pid, int16_t epoch, bk_txn_t **out, int16_t ver,
                     int16_t fenced_from) {
    bk_txn_t *t = id->len > 0 ? txn_find(c, id->p, (size_t)id->len) : NULL;
    *out = t;
    if (!t || t->pid < 0) return RB_INVALID_PRODUCER_ID_MAPPING;
    if (t->pid != pid) return RB_INVALID_PRODUCER_ID_MAPPING;
    if (epoch != t->epoch) return ver >= fenced_from ? RB_PRODUCER_FENCED : RB_INVALID_PRODUCER_EPOCH;
    if (t->state == TX_PREP_COMMIT || t->state == TX_PREP_ABORT) return RB_CONCURRENT_TRANSACTIONS;
    return 0;
}

static void job_add(bk_txnc_t *c, bk_job_t *j) {
    bk_broker_t *b = c->b;
    kp_add_partitions_to_txn_req_t *req = j->r->r_body;
    kp_add_partitions_to_txn_resp_t *resp = j->resp;
    bk_req_t *r = j->r;
    int32_t nt = req->v3_and_below_topics.n < 0 ? 0 : req->v3_and_below_topics.n;
    BK_ALLOC_ARR(r, resp->results_by_topic_v3_and_below, nt);
    int err = 0;
    /* existence first, as Kafka: unknown partitions fail the request */
    bool unknown = false;
    pthread_rwlock_rdlock(&b->b_topics_lock);
    for (int32_t i = 0; i < nt; i++) {
        kp_add_partitions_to_txn_req_add_partitions_to_txn_topic_t *tq = &req->v3_and_below_topics.v[i];
        bk_topic_t *tp = tq->name.len > 0 ? bk_topic_find(b, tq->name.p, (size_t)tq->name.len) : NULL;
        for (int32_t k = 0; k < tq->partitions.n; k++)
            if (!tp || tq->partitions.v[k] < 0 || tq->partitions.v[k] >= tp->t_npartitions) unknown = true;
    }
    pthread_rwlock_unlock(&b->b_topics_lock);
    bk_txn_t *t = NULL;
    bk_txn_t s;
    bool stored = false;
    pthread_mutex_lock(&c->mu);
    err = txn_check(c, &req->v3_and_below_transactional_id, req->v3_and_below_producer_id,
                    req->v3_and_below_producer_epoch, &t, r->r_hdr.api_version, 2);
    if (!err && unknown) err = RB_UNKNOWN_TOPIC_OR_PARTITION;
    if (!err) {
        bool added = false;
        txn_raise_floor(t, j->conn_id);
        if (t->state != TX_ONGOING) { /* the first partition starts the transaction */
            txn_begin(t);
            added = true;
        }
        for (int32_t i = 0; i < nt; i++) {
            kp_add_partitions_to_txn_req_add_partitions_to_txn_topic_t *tq = &req->v3_and_below_topics.v[i];
            for (int32_t k = 0; k < tq->partitions.n; k++) {
                if (!txn_has_part(t, tq->name.p, (size_t)tq->name.len, tq->partitions.v[k])) {
                    txn_add_part(t, tq->name.p, (size_t)tq->name.len, tq->partitions.v[k]);
                    added = true;
                }
            }
        }
        if (added) {
            t->update_ms = rb_now_ms();
            txn_copy(&s, t);
            stored = true;
        }
    }
    pthread_mutex_unlock(&c->mu);
    if (stored) {
        /* the partitions are in the table before they are durable: a
         * produce may see them, but cannot be acknowledged before this
         * answer is (the client sends it after), and a crash in between
         * leaves the transaction to be aborted by its timeout */
        if (txn_store(c, &s)) err = RB_COORDINATOR_NOT_AVAILABLE;
        txn_copy_free(&s);
    }
    for (int32_t i = 0; i < nt; i++) {
        kp_add_partitions_to_txn_req_add_partitions_to_txn_topic_t *tq = &req->v3_and_below_topics.v[i];
        kp_add_partitions_to_txn_resp_add_partitions_to_txn_topic_result_t *tr = &resp->results_by_topic_v3_and_below.v[i];
        tr->name = tq->name;
        int32_t np = tq->partitions.n < 0 ? 0 : tq->partitions.n;
        BK_ALLOC_ARR(r, tr->results_by_partition, np);
        for (int32_t k = 0; k < np; k++) {
            tr->results_by_partition.v[k].partition_index = tq->partitions.v[k];
            tr->results_by_partition.v[k].partition_error_code = (int16_t)err;
        }
    }
}

/* AddOffsetsToTxn: the group's __consumer_offsets partition joins the
 * transaction (T6), as Kafka does. */
static void job_add_offsets(bk_txnc_t *c, bk_job_t *j) {
    bk_broker_t *b = c->b;
    kp_add_offsets_to_txn_req_t *req = j->r->r_body;
    kp_add_offsets_to_txn_resp_t *resp = j->resp;
    if (req->group_id.len <= 0) {
        resp->error_code = RB_INVALID_GROUP_ID;
        return;
    }
    pthread_rwlock_rdlock(&b->b_topics_lock);
    bk_topic_t *ot = bk_topic_find(b, CG_OFFSETS_TOPIC, strlen(CG_OFFSETS_TOPIC));
    int32_t n = ot ? ot->t_npartitions : 0;
    pthread_rwlock_unlock(&b->b_topics_lock);
    if (!n) {
        resp->error_code = RB_COORDINATOR_NOT_AVAILABLE;
        return;
    }
    int32_t part = cg_partition_for(req->group_id.p, (size_t)req->group_id.len, n);
    bk_txn_t *t = NULL;
    bk_txn_t s;
    bool stored = false;
    pthread_mutex_lock(&c->mu);
    int err = txn_check(c, &req->transactional_id, req->producer_id, req->producer_epoch, &t, j->r->r_hdr.api_version,
                        2);
    if (!err && t->state != TX_ONGOING) txn_begin(t); /* Kafka lets AddOffsetsToTxn start a transaction too */
    if (!err) txn_raise_floor(t, j->conn_id);
    if (!err && !txn_has_part(t, CG_OFFSETS_TOPIC, strlen(CG_OFFSETS_TOPIC), part)) {
        txn_add_part(t, CG_OFFSETS_TOPIC, strlen(CG_OFFSETS_TOPIC), part);
        t->update_ms = rb_now_ms();
        txn_copy(&s, t);
        stored = true;
    }
    pthread_mutex_unlock(&c->mu);
    if (stored) {
        if (txn_store(c, &s)) err = RB_COORDINATOR_NOT_AVAILABLE;
        txn_copy_free(&s);
    }
    resp->error_code = (int16_t)err;
}

static void job_txn_offsets(bk_txnc_t *c, bk_job_t *j) {
    bk_broker_t *b = c->b;
    bk_req_t *r = j->r;
    kp_txn_offset_commit_req_t *req = r->r_body;
    kp_txn_offset_commit_resp_t *resp = j->resp;
    int32_t nt = req->topics.n < 0 ? 0 : req->topics.n;
    BK_ALLOC_ARR(r, resp->topics, nt);
    int err = 0;
    if (req->group_id.len <= 0) err = RB_INVALID_GROUP_ID;
    /* T9: the consumer's group metadata, checked before anything is kept */
    if (!err && r->r_hdr.api_version >= 3) {
        if (!b->b_coord) err = RB_COORDINATOR_NOT_AVAILABLE;
        else err = cg_txn_offset_check(b->b_coord, req->group_id, req->generation_id, req->member_id,
                                       req->group_instance_id);
    }
    bk_txn_t *t = NULL;
    bk_txn_t s;
    bool stored = false;
    pthread_rwlock_rdlock(&b->b_topics_lock);
    pthread_mutex_lock(&c->mu);
    if (!err) err = txn_check(c, &req->transactional_id, req->producer_id, req->producer_epoch, &t, 0, 0);
    if (!err && t->state != TX_ONGOING) err = RB_INVALID_TXN_STATE;
    for (int32_t i = 0; i < nt; i++) {
        kp_txn_offset_commit_req_txn_offset_commit_request_topic_t *tq = &req->topics.v[i];
        kp_txn_offset_commit_resp_txn_offset_commit_response_topic_t *tr = &resp->topics.v[i];
        tr->name = tq->name;
        bk_topic_t *tp = tq->name.len > 0 ? bk_topic_find(b, tq->name.p, (size_t)tq->name.len) : NULL;
        int32_t np = tq->partitions.n < 0 ? 0 : tq->partitions.n;
        BK_ALLOC_ARR(r, tr->partitions, np);
        for (int32_t k = 0; k < np; k++) {
            kp_txn_offset_commit_req_txn_offset_commit_request_partition_t *pq = &tq->partitions.v[k];
            int perr = err;
            if (!perr && (!tp || pq->partition_index < 0 || pq->partition_index >= tp->t_npartitions))
                perr = RB_UNKNOWN_TOPIC_OR_PARTITION;
            else if (!perr && pq->committed_metadata.len > b->b_cfg.offset_metadata_max_bytes)
                perr = RB_OFFSET_METADATA_TOO_LARGE;
            if (!perr) {
                txn_put_off(t, req->group_id.p, (size_t)req->group_id.len, tq->name.p, (size_t)tq->name.len,
                            pq->partition_index, pq->committed_offset, pq->committed_leader_epoch,
                            pq->committed_metadata.p, pq->committed_metadata.len);
                stored = true;
            }
            tr->partitions.v[k].partition_index = pq->partition_index;
            tr->partitions.v[k].error_code = (int16_t)perr;
        }
    }
    if (stored) txn_copy(&s, t);
    pthread_mutex_unlock(&c->mu);
    pthread_rwlock_unlock(&b->b_topics_lock);
    if (stored) {
        if (txn_store_offs(c, &s)) /* T6: durable before the answer */
            for (int32_t i = 0; i < nt; i++)
                for (int32_t k = 0; k < resp->topics.v[i].partitions.n; k++)
                    if (!resp->topics.v[i].partitions.v[k].error_code)
                        resp->topics.v[i].partitions.v[k].error_code = RB_COORDINATOR_NOT_AVAILABLE;
        txn_copy_free(&s);
    }
}

static void job_end(bk_txnc_t *c, bk_job_t *j) {
    kp_end_txn_req_t *req = j->r->r_body;
    kp_end_txn_resp_t *resp = j->resp;
    bk_txn_t *t = NULL;
    pthread_mutex_lock(&c->mu);
    int err = txn_check(c, &req->transactional_id, req->producer_id, req->producer_epoch, &t, j->r->r_hdr.api_version,
                        2);
    if (!err && t->state == TX_ONGOING && j->conn_id < t->conn_floor) {
        /* T8: sent before the client moved to a newer connection, which has
         * since added to this transaction: a delayed EndTxn of an earlier
         * transaction, never one for this one */
        rb_warn("txn %s: EndTxn(%s) on connection %llu, older than connection %llu that added to the ongoing "
                "transaction: refused as a delayed request",
                t->id, req->committed ? "commit" : "abort", (unsigned long long)j->conn_id,
                (unsigned long long)t->conn_floor);
        err = RB_INVALID_TXN_STATE;
    }
    if (!err) {
        if (t->state == TX_ONGOING) {
            t->state = req->committed ? TX_PREP_COMMIT : TX_PREP_ABORT;
        } else if ((t->state == TX_DONE_COMMIT && req->committed) || (t->state == TX_DONE_ABORT && !req->committed) ||
                   (t->state == TX_EMPTY && !req->committed)) {
            /* a retry of a completed EndTxn, or an abort of nothing: done */
            pthread_mutex_unlock(&c->mu);
            return;
        } else {
            err = RB_INVALID_TXN_STATE;
        }
    }
    pthread_mutex_unlock(&c->mu);
    if (!err && txn_complete(c, t, false)) err = RB_COORDINATOR_NOT_AVAILABLE;
    resp->error_code = (int16_t)err;
}

/* T5: abort expired Ongoing transactions with a bumped epoch. */
static void txn_expire_scan(bk_txnc_t *c) {
    int64_t now = rb_now_ms();
    for (;;) {
        bk_txn_t *hit = NULL;
        pthread_mutex_lock(&c->mu);
        for (bk_txn_t *t = c->list; t && !hit; t = t->next)
            if (t->state == TX_ONGOING && t->start_ms + t->timeout_ms < now) hit = t;
        if (hit) {
            rb_info("txn %s: transaction of producer %lld epoch %d timed out after %d ms: aborting", hit->id,
                    (long long)hit->pid, hit->epoch, hit->timeout_ms);
            if (hit->epoch < INT16_MAX - 1) hit->epoch++;
            hit->state = TX_PREP_ABORT;
        }
        pthread_mutex_unlock(&c->mu);
        if (!hit) return;
        if (txn_complete(c, hit, false)) return; /* retried at the next scan */
    }
}

/* T7: removes transactional ids idle (Empty or Complete*) for longer than
 * transactional.id.expiration.ms: a tombstone of the key, durable, then Dead
 * and out of the table. Worker thread only: every state change runs here, so
 * the id cannot change while the tombstone is written (a transactional
 * Produce meanwhile finds it not Ongoing: INVALID_TXN_STATE). A failed
 * tombstone leaves the id as it was; the next scan retries. */
static void txn_remove_expired(bk_txnc_t *c) {
    int64_t exp = c->b->b_cfg.transactional_id_expiration_ms;
    for (;;) {
        int64_t now = rb_now_ms();
        bk_txn_t *hit = NULL;
        pthread_mutex_lock(&c->mu);
        for (bk_txn_t *t = c->list; t && !hit; t = t->next)
            if (t->pid >= 0 && (t->state == TX_EMPTY || t->state == TX_DONE_COMMIT || t->state == TX_DONE_ABORT) &&
                t->noffs == 0 && now - t->update_ms > exp)
                hit = t;
        pthread_mutex_unlock(&c->mu);
        if (!hit) return;
        rb_buf_t k, v;
        rb_buf_init(&k);
        rb_buf_init(&v);
        rb_buf_u16(&k, 0);
        put_str(&k, hit->id, strlen(hit->id));
        int64_t last;
        int rc = txn_append_kv(c, hit->id, &k, &v, true, &last);
        if (!rc) {
            bk_syncw_t w;
            syncw_init(&w);
            syncw_add(&w, c->logs[cg_partition_for(hit->id, strlen(hit->id), c->nparts)], last + 1);
            rc = syncw_wait(&w);
        }
        if (rc) {
            rb_warn("txn %s: expiry tombstone not written (%s); retried at the next scan", hit->id, rb_err_name(rc));
            return;
        }
        pthread_mutex_lock(&c->mu);
        hit->state = TX_DEAD; /* answered as unknown from here (T1: the tombstone is durable) */
        rb_info("txn %s: transactional id expired (producer %lld epoch %d, idle %lld ms): removed", hit->id,
                (long long)hit->pid, hit->epoch, (long long)(now - hit->update_ms));
        for (bk_txn_t **pp = &c->list; *pp; pp = &(*pp)->next)
            if (*pp == hit) {
                *pp = hit->next;
                break;
            }
        c->ntxn--;
        pthread_mutex_unlock(&c->mu);
        txn_free_one(hit);
    }
}

static void *txn_worker(void *arg) {
    bk_txnc_t *c = arg;
    const bk_config_t *cfg = &c->b->b_cfg;
    int64_t next_scan = rb_mono_ms() + cfg->transaction_abort_timed_out_transaction_cleanup_interval_ms;
    int64_t next_remove = rb_mono_ms() + cfg->transaction_remove_expired_transaction_cleanup_interval_ms;
    pthread_mutex_lock(&c->mu);
    while (!c->stop) {
        bk_job_t *j = c->head;
        if (!j) {
            int64_t now = rb_mono_ms();
            if (now >= next_scan) {
                pthread_mutex_unlock(&c->mu);
                txn_expire_scan(c);
                next_scan = rb_mono_ms() + cfg->transaction_abort_timed_out_transaction_cleanup_interval_ms;
                pthread_mutex_lock(&c->mu);
                continue;
            }
            if (now >= next_remove) {
                pthread_mutex_unlock(&c->mu);
                txn_remove_expired(c);
                next_remove = rb_mono_ms() + cfg->transaction_remove_expired_transaction_cleanup_interval_ms;
                pthread_mutex_lock(&c->mu);
                continue;
            }
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t wait = (next_scan < next_remove ? next_scan : next_remove) - now;
            ts.tv_sec += wait / 1000;
            ts.tv_nsec += (wait % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&c->cv, &c->mu, &ts);
            continue;
        }
        c->head = j->next;
        if (!c->head) c->tail = NULL;
        pthread_mutex_unlock(&c->mu);
        switch (j->kind) {
        case JOB_INIT: job_init(c, j); break;
        case JOB_ADD: job_add(c, j); break;
        case JOB_END: job_end(c, j); break;
        case JOB_RECOVER: txn_complete(c, j->t, true); break;
        case JOB_EXPIRE: txn_expire_scan(c); break;
        case JOB_ADD_OFFSETS: job_add_offsets(c, j); break;
        case JOB_TXN_OFFSETS: job_txn_offsets(c, j); break;
        }
        job_answer(j);
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

static void txn_enqueue(bk_txnc_t *c, bk_job_t *j) {
    pthread_mutex_lock(&c->mu);
    j->next = NULL;
    if (c->tail) c->tail->next = j;
    else c->head = j;
    c->tail = j;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void txn_submit(bk_req_t *r, void *resp, bk_job_kind_t kind) {
    bk_job_t *j = calloc(1, sizeof(*j));
    if (!j) abort();
    j->kind = kind;
    j->r = r;
    j->resp = resp;
    j->loop = rn_conn_loop(r->r_conn);
    j->conn_id = rn_conn_id(r->r_conn);
    txn_enqueue(r->r_broker->b_txn, j);
}

/* ---- handlers ------------------------------------------------------------------------------ */

void bk_txn_init_producer_id(bk_req_t *r, void *resp) {
    if (!r->r_broker->b_txn) {
        ((kp_init_producer_id_resp_t *)resp)->error_code = RB_COORDINATOR_NOT_AVAILABLE;
        bk_req_respond(r, resp);
        return;
    }
    txn_submit(r, resp, JOB_INIT);
}

void bk_handle_add_partitions_to_txn(bk_req_t *r) {
    kp_add_partitions_to_txn_resp_t *resp = bk_req_resp_new(r);
    if (r->r_hdr.api_version >= 4) { /* the broker-to-broker batched form */
        resp->error_code = RB_UNSUPPORTED_VERSION;
        bk_req_respond(r, resp);
        return;
    }
    txn_submit(r, resp, JOB_ADD);
}

void bk_handle_end_txn(bk_req_t *r) { txn_submit(r, bk_req_resp_new(r), JOB_END); }

void bk_handle_add_offsets_to_txn(bk_req_t *r) { txn_submit(r, bk_req_resp_new(r), JOB_ADD_OFFSETS); }

void bk_handle_txn_offset_commit(bk_req_t *r) { txn_submit(r, bk_req_resp_new(r), JOB_TXN_OFFSETS); }

/* DescribeTransactions v0: the coordinator's view of each id (read under
 * c_mu; answered at once). */
void bk_handle_describe_transactions(bk_req_t *r) {
    bk_txnc_t *c = r->r_broker->b_txn;
    kp_describe_transactions_req_t *req = r->r_body;
    kp_describe_transactions_resp_t *resp = bk_req_resp_new(r);
    int32_t n = req->transactional_ids.n < 0 ? 0 : req->transactional_ids.n;
    BK_ALLOC_ARR(r, resp->transaction_states, n);
    if (c) pthread_mutex_lock(&c->mu);
    for (int32_t i = 0; i < n; i++) {
        kp_describe_transactions_resp_transaction_state_t *o = &resp->transaction_states.v[i];
        kp_init_defaults(&kp_describe_transactions_resp_transaction_state_desc, o);
        kp_str_t id = req->transactional_ids.v[i];
        o->transactional_id = id;
        o->transaction_state = bk_str(r, "");
        o->producer_id = -1;
        o->producer_epoch = -1;
        o->transaction_start_time_ms = -1;
        bk_txn_t *t = c && id.len > 0 ? txn_find(c, id.p, (size_t)id.len) : NULL;
        if (!c) {
            o->error_code = RB_COORDINATOR_NOT_AVAILABLE;
            continue;
        }
        if (!t || t->pid < 0 || t->state == TX_DEAD) {
            o->error_code = RB_TRANSACTIONAL_ID_NOT_FOUND;
            continue;
        }
        o->transaction_state = bk_str(r, tx_state_names[t->state]);
        o->transaction_timeout_ms = t->timeout_ms;
        o->transaction_start_time_ms = t->state == TX_EMPTY ? -1 : t->start_ms;
        o->producer_id = t->pid;
        o->producer_epoch = t->epoch;
        int nt = 0;
        for (int a = 0; a < t->nparts; a++) {
            bool seen = false;
            for (int x = 0; x < a && !seen; x++) seen = !strcmp(t->parts[x].topic, t->parts[a].topic);
            nt += !seen;
        }
        BK_ALLOC_ARR(r, o->topics, nt);
        int k = 0;
        for (int a = 0; a < t->nparts; a++) {
            bool seen = false;
            for (int x = 0; x < a && !seen; x++) seen = !strcmp(t->parts[x].topic, t->parts[a].topic);
            if (seen) continue;
            kp_describe_transactions_resp_topic_data_t *td = &o->topics.v[k++];
            td->topic = bk_str(r, t->parts[a].topic);
            int np = 0;
            for (int x = a; x < t->nparts; x++) np += !strcmp(t->parts[x].topic, t->parts[a].topic);
            BK_ALLOC_ARR(r, td->partitions, np);
            int q = 0;
            for (int x = a; x < t->nparts; x++)
                if (!strcmp(t->parts[x].topic, t->parts[a].topic)) td->partitions.v[q++] = t->parts[x].part;
        }
    }
    if (c) pthread_mutex_unlock(&c->mu);
    bk_req_respond(r, resp);
}

/* ListTransactions v0-v1: filters by state names (unknown ones are echoed
 * back), producer ids and (v1) a minimum running time of Ongoing ones. */
void bk_handle_list_transactions(bk_req_t *r) {
    bk_txnc_t *c = r->r_broker->b_txn;
    kp_list_transactions_req_t *req = r->r_body;
    kp_list_transactions_resp_t *resp = bk_req_resp_new(r);
    int32_t ns = req->state_filters.n < 0 ? 0 : req->state_filters.n;
    int32_t np = req->producer_id_filters.n < 0 ? 0 : req->producer_id_filters.n;
    int nunknown = 0;
    kp_str_t *unknown = ns ? bk_arena_alloc_or_die(&r->r_arena, (size_t)ns * sizeof(*unknown)) : NULL;
    for (int32_t i = 0; i < ns; i++) {
        bool known = false;
        for (int st = 0; st <= TX_DEAD && !known; st++)
            known = req->state_filters.v[i].len == (int32_t)strlen(tx_state_names[st]) &&
                    !memcmp(req->state_filters.v[i].p, tx_state_names[st], strlen(tx_state_names[st]));
        if (!known) unknown[nunknown++] = req->state_filters.v[i];
    }
    resp->unknown_state_filters.n = nunknown;
    resp->unknown_state_filters.v = unknown;
    if (!c) {
        resp->error_code = RB_COORDINATOR_NOT_AVAILABLE;
        bk_req_respond(r, resp);
        return;
    }
    int64_t now = rb_now_ms();
    pthread_mutex_lock(&c->mu);
    BK_ALLOC_ARR(r, resp->transaction_states, c->ntxn);
    int n = 0;
    for (bk_txn_t *t = c->list; t; t = t->next) {
        if (t->pid < 0 || t->state == TX_DEAD) continue;
        bool ok = ns == 0;
        for (int32_t i = 0; i < ns && !ok; i++)
            ok = req->state_filters.v[i].len == (int32_t)strlen(tx_state_names[t->state]) &&
                 !memcmp(req->state_filters.v[i].p, tx_state_names[t->state], strlen(tx_state_names[t->state]));
        if (ok && np) {
            ok = false;
            for (int32_t i = 0; i < np && !ok; i++) ok = req->producer_id_filters.v[i] == t->pid;
        }
        if (ok && r->r_hdr.api_version >= 1 && req->duration_filter >= 0)
            ok = t->state == TX_ONGOING && now - t->start_ms >= req->duration_filter;
        if (!ok) continue;
        kp_list_transactions_resp_transaction_state_t *o = &resp->transaction_states.v[n++];
        o->transactional_id = bk_str(r, t->id);
        o->producer_id = t->pid;
        o->transaction_state = bk_str(r, tx_state_names[t->state]);
    }
    resp->transaction_states.n = n;
    pthread_mutex_unlock(&c->mu);
    bk_req_respond(r, resp);
}

/* T6: OffsetFetch require_stable. */
bool bk_txn_offset_pending(bk_broker_t *b, const char *group, size_t gl, const char *topic, size_t tl,
                           int32_t part) {
    bk_txnc_t *c = b->b_txn;
    if (!c) return false;
    bool hit = false;
    pthread_mutex_lock(&c->mu);
    for (bk_txn_t *t = c->list; t && !hit; t = t->next)
        for (int i = 0; i < t->noffs && !hit; i++) {
            const bk_toff_t *o = &t->offs[i];
            hit = o->part == part && strlen(o->group) == gl && !memcmp(o->group, group, gl) &&
                  strlen(o->topic) == tl && !memcmp(o->topic, topic, tl);
        }
    pthread_mutex_unlock(&c->mu);
    return hit;
}

/* T3: checks a transactional batch and, when it may be written, returns 0
 * with c->mu held (the caller appends, then bk_txn_produce_unlock). */
int bk_txn_produce_lock(bk_broker_t *b, const kp_str_t *tid, int64_t pid, int16_t epoch, const char *topic,
                        int32_t part) {
    bk_txnc_t *c = b->b_txn;
    if (!c) return RB_COORDINATOR_NOT_AVAILABLE;
    pthread_mutex_lock(&c->mu);
    bk_txn_t *t = tid->len > 0 ? txn_find(c, tid->p, (size_t)tid->len) : NULL;
    int err = 0;
    if (!t || t->pid != pid) err = RB_INVALID_PRODUCER_ID_MAPPING;
    else if (epoch < t->epoch) err = RB_INVALID_PRODUCER_EPOCH;
    else if (epoch > t->epoch) err = RB_INVALID_PRODUCER_EPOCH;
    else if (t->state != TX_ONGOING || !txn_has_part(t, topic, strlen(topic), part)) err = RB_INVALID_TXN_STATE;
    if (err) pthread_mutex_unlock(&c->mu);
    return err;
}

void bk_txn_produce_unlock(bk_broker_t *b) { pthread_mutex_unlock(&b->b_txn->mu); }

/* ---- replay and start (T1) ------------------------------------------------------------------ */

static const uint8_t *rd_str(rb_rd_t *rd, int16_t *n) {
    *n = rb_rd_i16(rd);
    if (!rb_rd_ok(rd) || *n < 0) return NULL;
    return rb_rd_bytes(rd, (size_t)*n);
}

static void txn_replay_record(bk_txnc_t *c, const kp_record_t *rec) {
    rb_rd_t k;
    rb_rd_init(&k, rec->key.p, rec->key.len < 0 ? 0 : (size_t)rec->key.len);
    int16_t kv = rb_rd_i16(&k), idn;
    if (!rb_rd_ok(&k) || (kv != 0 && kv != 100)) return; /* not a transaction record */
    const uint8_t *idp = rd_str(&k, &idn);
    if (!idp || idn == 0) return;
    bk_txn_t *t = txn_get(c, (const char *)idp, (size_t)idn);
    if (kv == 100) { /* T6: pending offsets */
        txn_clear_offs(t);
        if (rec->value.len < 0) return;
        rb_rd_t v;
        rb_rd_init(&v, rec->value.p, (size_t)rec->value.len);
        int16_t vv = rb_rd_i16(&v);
        rb_rd_i64(&v); /* producer id and epoch: for tools */
        rb_rd_i16(&v);
        int32_t n = rb_rd_i32(&v);
        for (int32_t i = 0; i < n && rb_rd_ok(&v) && vv == 0; i++) {
            int16_t gl, tl, ml;
            const uint8_t *gp = rd_str(&v, &gl);
            const uint8_t *tp = rd_str(&v, &tl);
            int32_t part = rb_rd_i32(&v);
            int64_t off = rb_rd_i64(&v);
            int32_t le = rb_rd_i32(&v);
            ml = rb_rd_i16(&v);
            const uint8_t *mp = ml >= 0 ? rb_rd_bytes(&v, (size_t)ml) : NULL;
            if (!gp || !tp || !rb_rd_ok(&v)) break;
            txn_put_off(t, (const char *)gp, (size_t)gl, (const char *)tp, (size_t)tl, part, off, le,
                        (const char *)mp, ml);
        }
        return;
    }
    if (rec->value.len < 0) { /* tombstone: the id expired */
        t->state = TX_DEAD;
        t->pid = -1;
        txn_clear_parts(t);
        return;
    }
    rb_rd_t v;
    rb_rd_init(&v, rec->value.p, (size_t)rec->value.len);
    int16_t vv = rb_rd_i16(&v);
    int64_t pid = rb_rd_i64(&v);
    int16_t epoch = rb_rd_i16(&v);
    int32_t to = rb_rd_i32(&v);
    int8_t st = rb_rd_i8(&v);
    int32_t ntopics = rb_rd_i32(&v);
    if (!rb_rd_ok(&v) || vv != 0 || st < 0 || st > TX_DEAD || ntopics < 0) {
        /* v1 (flexible) is not written by us */
        rb_warn("txn: %s record for %.*s not understood (value v%d); skipped", BK_TXN_TOPIC, (int)idn, idp, vv);
        return;
    }
    txn_clear_parts(t);
    for (int32_t i = 0; i < ntopics && rb_rd_ok(&v); i++) {
        int16_t tn;
        const uint8_t *tp = rd_str(&v, &tn);
        int32_t np = rb_rd_i32(&v);
        for (int32_t kq = 0; tp && kq < np && rb_rd_ok(&v); kq++) {
            int32_t part = rb_rd_i32(&v);
            if (rb_rd_ok(&v)) txn_add_part(t, (const char *)tp, (size_t)tn, part);
        }
    }
    int64_t upd = rb_rd_i64(&v), start = rb_rd_i64(&v);
    if (!rb_rd_ok(&v)) upd = start = rb_now_ms();
    t->pid = pid;
    t->epoch = epoch;
    t->timeout_ms = to;
    t->state = st;
    t->update_ms = upd;
    t->start_ms = start;
}

static void txn_replay_one(void *ctx, int64_t offset, const kp_record_t *rec) {
    (void)offset;
    txn_replay_record(ctx, rec);
}

int bk_txn_start(bk_broker_t *b) {
    const char *name = BK_TXN_TOPIC;
    if (bk_internal_topic_ensure(b, name, (int32_t)b->b_cfg.transaction_state_log_num_partitions,
                                 b->b_cfg.transaction_state_log_segment_bytes) < 0)
        return -1;
    bk_txnc_t *c = calloc(1, sizeof(*c));
    if (!c) abort();
    c->b = b;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    pthread_rwlock_rdlock(&b->b_topics_lock);
    bk_topic_t *t = bk_topic_find(b, name, strlen(name));
    c->nparts = t ? t->t_npartitions : 0;
    c->logs = calloc((size_t)(c->nparts ? c->nparts : 1), sizeof(*c->logs));
    if (!c->logs) abort();
    for (int32_t i = 0; i < c->nparts; i++) c->logs[i] = t->t_parts[i]->p_log;
    pthread_rwlock_unlock(&b->b_topics_lock);
    if (!c->nparts) {
        rb_error("%s has no partitions", name);
        free(c->logs);
        free(c);
        return -1;
    }
    int64_t t0 = rb_mono_ms();
    for (int32_t p = 0; p < c->nparts; p++) {
        int rc = st_log_scan_records(c->logs[p], txn_replay_one, c, NULL);
        if (rc) {
            rb_error("txn: cannot replay %s-%d: %s", name, p, rb_err_name(rc));
            free(c->logs);
            free(c);
            return -1;
        }
    }
    /* T7: ids whose last record is a tombstone are gone */
    for (bk_txn_t **pp = &c->list; *pp;) {
        bk_txn_t *x = *pp;
        if (x->state != TX_DEAD || x->pid >= 0 || x->noffs) {
            pp = &x->next;
            continue;
        }
        *pp = x->next;
        c->ntxn--;
        txn_free_one(x);
    }
    /* T2: completions interrupted by a stop or crash are finished first */
    int nrec = 0;
    for (bk_txn_t *x = c->list; x; x = x->next) {
        if (x->state != TX_ONGOING && x->state != TX_PREP_COMMIT && x->state != TX_PREP_ABORT)
            txn_clear_offs(x); /* a Complete whose tombstone was lost */
        if (x->state == TX_PREP_COMMIT || x->state == TX_PREP_ABORT) {
            bk_job_t *j = calloc(1, sizeof(*j));
            if (!j) abort();
            j->kind = JOB_RECOVER;
            j->t = x;
            txn_enqueue(c, j);
            nrec++;
        }
    }
    if (pthread_create(&c->thread, NULL, txn_worker, c)) {
        rb_error("txn: cannot start the coordinator thread");
        return -1;
    }
    b->b_txn = c;
    rb_info("transaction coordinator ready over %s (%d partitions, %d id(s), %d completion(s) to finish) in %lld ms",
            name, c->nparts, c->ntxn, nrec, (long long)(rb_mono_ms() - t0));
    return 0;
}

void bk_txn_stop(bk_broker_t *b) {
    bk_txnc_t *c = b->b_txn;
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    /* requests still queued: their connections are closed already */
    for (bk_job_t *j = c->head; j;) {
        bk_job_t *n = j->next;
        if (j->r) bk_req_free(j->r);
        free(j);
        j = n;
    }
    c->head = c->tail = NULL;
}

void bk_txn_free(bk_broker_t *b) {
    bk_txnc_t *c = b->b_txn;
    if (!c) return;
    for (bk_txn_t *t = c->list; t;) {
        bk_txn_t *n = t->next;
        txn_free_one(t);
        t = n;
    }
    free(c->logs);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
    b->b_txn = NULL;
}
