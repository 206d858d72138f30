/*
 * offsets.c — committed offsets and the records of __consumer_offsets:
 * Kafka's key/value formats (OffsetCommitKey v1 / OffsetCommitValue v3,
 * GroupMetadataKey v2 / GroupMetadataValue v3; older value versions are read
 * too), appends through storage, OffsetCommit (acknowledged once durable,
 * G6), OffsetFetch (v0-v8, multi-group), OffsetDelete, and the replay of
 * every partition at start (G7).
 */
#include "coord/coord_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void *cg_oalloc(rb_arena_t *a, size_t n) {
    void *p = rb_arena_alloc(a, n ? n : 1);
    if (!p) {
        fprintf(stderr, "rilld: out of memory building an offsets response\n");
        abort();
    }
    return p;
}

#define CG_OALLOC_ARR(a, arr, count)                                                             \
    do {                                                                                         \
        (arr).n = (int32_t)(count);                                                              \
        (arr).v = (count) ? cg_oalloc((a), sizeof(*(arr).v) * (size_t)(count)) : NULL;          \
    } while (0)

static kp_str_t cg_ostr(rb_arena_t *a, const char *s) {
    kp_str_t out = {"", -1};
    if (!s) return out;
    size_t n = strlen(s);
    char *d = cg_oalloc(a, n + 1);
    memcpy(d, s, n);
    out.p = d;
    out.len = (int32_t)n;
    return out;
}

/* ---- in-memory offsets (g_mu held) ------------------------------------------------------ */

cg_offset_t *cg_offset_find(cg_group_t *g, const char *topic, size_t tlen, int32_t partition) {
    for (int i = 0; i < g->g_noffsets; i++) {
        cg_offset_t *o = &g->g_offsets[i];
        if (o->partition == partition && strlen(o->topic) == tlen && !memcmp(o->topic, topic, tlen)) return o;
    }
    return NULL;
}

void cg_offset_set(cg_group_t *g, const char *topic, size_t tlen, int32_t partition, int64_t offset,
                   int32_t leader_epoch, const char *meta, int32_t meta_len, int64_t commit_ts, int64_t rec_offset) {
    cg_offset_t *o = cg_offset_find(g, topic, tlen, partition);
    if (o && o->rec_offset > rec_offset) return; /* a later record already set it (G6) */
    if (!o) {
        if (g->g_noffsets == g->g_offsets_cap) {
            g->g_offsets_cap = g->g_offsets_cap ? g->g_offsets_cap * 2 : 16;
            g->g_offsets = realloc(g->g_offsets, sizeof(*g->g_offsets) * (size_t)g->g_offsets_cap);
            if (!g->g_offsets) abort();
        }
        o = &g->g_offsets[g->g_noffsets++];
        memset(o, 0, sizeof(*o));
        o->topic = cg_strndup(topic, tlen);
        o->partition = partition;
    }
    free(o->metadata);
    o->metadata = meta_len >= 0 ? cg_strndup(meta, (size_t)meta_len) : NULL;
    o->offset = offset;
    o->leader_epoch = leader_epoch;
    o->commit_ts = commit_ts;
    o->rec_offset = rec_offset;
}

void cg_offset_remove(cg_group_t *g, const char *topic, size_t tlen, int32_t partition) {
    cg_offset_t *o = cg_offset_find(g, topic, tlen, partition);
    if (!o) return;
    free(o->topic);
    free(o->metadata);
    *o = g->g_offsets[--g->g_noffsets];
}

void cg_offsets_clear(cg_group_t *g) {
    for (int i = 0; i < g->g_noffsets; i++) {
        free(g->g_offsets[i].topic);
        free(g->g_offsets[i].metadata);
    }
    g->g_noffsets = 0;
}

/* ---- record formats ------------------------------------------------------------------------ */

static void cg_put_str(rb_buf_t *b, const char *p, int32_t len) {
    if (len < 0) {
        rb_buf_u16(b, 0xffff);
        return;
    }
    rb_buf_u16(b, (uint16_t)len);
    rb_buf_put(b, p, (size_t)len);
}

static void cg_put_cstr(rb_buf_t *b, const char *s) { cg_put_str(b, s ? s : "", s ? (int32_t)strlen(s) : -1); }

static void cg_offset_key(rb_buf_t *b, const char *group, const char *topic, size_t tlen, int32_t partition) {
    rb_buf_u16(b, 1);
    cg_put_cstr(b, group);
    cg_put_str(b, topic, (int32_t)tlen);
    rb_buf_u32(b, (uint32_t)partition);
}

static void cg_offset_value(rb_buf_t *b, int64_t offset, int32_t epoch, const char *meta, int32_t meta_len,
                            int64_t ts) {
    rb_buf_u16(b, 3);
    rb_buf_u64(b, (uint64_t)offset);
    rb_buf_u32(b, (uint32_t)epoch);
    cg_put_str(b, meta_len < 0 ? "" : meta, meta_len < 0 ? 0 : meta_len);
    rb_buf_u64(b, (uint64_t)ts);
}

int cg_append(cg_coord_t *c, int32_t part, const kp_record_in_t *recs, int n, int64_t *base_offset,
              int64_t *last_offset) {
    rb_buf_t batch;
    rb_buf_init(&batch);
    kp_batch_build(&batch, 0, KP_COMP_NONE, recs, n, -1, -1, -1, 0);
    kp_batch_limits_t lim = {0};
    lim.max_batch_bytes = batch.len + 1;
    lim.max_decompressed_bytes = batch.len + 1;
    kp_batch_info_t info;
    char msg[200];
    int rc = kp_batch_validate(batch.p, batch.len, &lim, &info, msg, sizeof(msg));
    if (rc) {
        rb_error("coord: built an invalid batch for %s-%d: %s", CG_OFFSETS_TOPIC, part, msg);
        rb_buf_free(&batch);
        return rc;
    }
    int64_t lat;
    rc = st_log_append(c->c_logs[part], batch.p, batch.len, &info, rb_now_ms(), base_offset, last_offset, &lat);
    rb_buf_free(&batch);
    if (rc) rb_warn("coord: append to %s-%d failed: %s", CG_OFFSETS_TOPIC, part, rb_err_name(rc));
    return rc;
}

int cg_store_group(cg_coord_t *c, cg_group_t *g, bool deleted, int64_t *offset_out) {
    rb_buf_t k, v;
    rb_buf_init(&k);
    rb_buf_init(&v);
    rb_buf_u16(&k, 2);
    cg_put_cstr(&k, g->g_id);
    if (!deleted) {
        rb_buf_u16(&v, 3);
        cg_put_cstr(&v, g->g_protocol_type ? g->g_protocol_type : "");
        rb_buf_u32(&v, (uint32_t)g->g_generation);
        cg_put_cstr(&v, g->g_protocol_name);
        cg_put_cstr(&v, g->g_leader);
        rb_buf_u64(&v, (uint64_t)g->g_state_ts);
        rb_buf_u32(&v, (uint32_t)g->g_nmembers);
        for (cg_member_t *m = g->g_members; m; m = m->m_next) {
            cg_put_cstr(&v, m->m_id);
            cg_put_cstr(&v, m->m_instance_id);
            cg_put_cstr(&v, m->m_client_id);
            cg_put_cstr(&v, m->m_client_host);
            rb_buf_u32(&v, (uint32_t)m->m_rebalance_timeout_ms);
            rb_buf_u32(&v, (uint32_t)m->m_session_timeout_ms);
            const cg_proto_t *p = NULL;
            for (int i = 0; g->g_protocol_name && i < m->m_nprotos; i++)
                if (!strcmp(m->m_protos[i].name, g->g_protocol_name)) p = &m->m_protos[i];
            rb_buf_u32(&v, (uint32_t)(p ? p->meta_len : 0));
            if (p && p->meta_len) rb_buf_put(&v, p->meta, (size_t)p->meta_len);
            rb_buf_u32(&v, (uint32_t)m->m_assignment_len);
            if (m->m_assignment_len) rb_buf_put(&v, m->m_assignment, (size_t)m->m_assignment_len);
        }
    }
    kp_record_in_t rec = {0};
    rec.key.p = k.p;
    rec.key.len = (int32_t)k.len;
    rec.value.p = deleted ? NULL : v.p;
    rec.value.len = deleted ? -1 : (int32_t)v.len;
    rec.timestamp = rb_now_ms();
    int64_t base, last;
    int rc = cg_append(c, g->g_part, &rec, 1, &base, &last);
    rb_buf_free(&k);
    rb_buf_free(&v);
    if (offset_out) *offset_out = rc ? -1 : base;
    return rc;
}

/* ---- OffsetCommit ------------------------------------------------------------------------------- */

typedef struct {
    cg_coord_t *c;
    cg_group_t *g;
    const kp_offset_commit_req_t *req;
    kp_offset_commit_resp_t *resp;
    cg_done_fn done;
    void *ctx;
    int64_t base;
    int n;
    int32_t *ti, *pi; /* record i -> (topic index, partition index) */
} cg_commit_t;

static void cg_commit_synced(void *arg, int err) {
    cg_commit_t *cc = arg;
    cg_group_t *g = cc->g;
    pthread_mutex_lock(&g->g_mu);
    for (int i = 0; i < cc->n; i++) {
        kp_offset_commit_req_offset_commit_request_topic_t *t = &cc->req->topics.v[cc->ti[i]];
        kp_offset_commit_req_offset_commit_request_partition_t *p = &t->partitions.v[cc->pi[i]];
        if (err) {
            cc->resp->topics.v[cc->ti[i]].partitions.v[cc->pi[i]].error_code = RB_COORDINATOR_NOT_AVAILABLE;
            continue;
        }
        if (g->g_state == CG_DEAD) continue;
        cg_offset_set(g, t->name.p, (size_t)t->name.len, p->partition_index, p->committed_offset,
                      p->committed_leader_epoch, p->committed_metadata.p, p->committed_metadata.len, rb_now_ms(),
                      cc->base + i);
    }
    pthread_mutex_unlock(&g->g_mu);
    cg_done_fn done = cc->done;
    void *ctx = cc->ctx;
    free(cc->ti);
    free(cc->pi);
    free(cc);
    done(ctx);
}

/* The member check of an offset commit (OffsetCommit, TxnOffsetCommit v3+),
 * as Kafka's validateCurrentMember then the generation: a static member's
 * instance id (inst.len >= 0) must name the member (else FENCED_INSTANCE_ID,
 * UNKNOWN_MEMBER_ID when no member has it), the member must be in the group
 * (UNKNOWN_MEMBER_ID) and gen its generation (ILLEGAL_GENERATION). g_mu
 * held; *out is the member when 0 is returned. */
static int16_t cg_commit_member_check(cg_group_t *g, int32_t gen, kp_str_t member_id, kp_str_t inst,
                                      cg_member_t **out) {
    cg_member_t *m = NULL;
    if (member_id.len > 0)
        for (m = g->g_members; m; m = m->m_next)
            if (strlen(m->m_id) == (size_t)member_id.len && !memcmp(m->m_id, member_id.p, (size_t)member_id.len))
                break;
    *out = m;
    if (inst.len >= 0) {
        cg_member_t *s = g->g_members;
        while (s && !(s->m_instance_id && strlen(s->m_instance_id) == (size_t)inst.len &&
                      !memcmp(s->m_instance_id, inst.p, (size_t)inst.len)))
            s = s->m_next;
        if (!s) return RB_UNKNOWN_MEMBER_ID;
        if (s != m) return RB_FENCED_INSTANCE_ID;
    }
    if (!m) return RB_UNKNOWN_MEMBER_ID;
    if (gen != g->g_generation) return RB_ILLEGAL_GENERATION;
    return RB_NONE;
}

static void cg_offset_commit_impl(cg_coord_t *c, int16_t version, const kp_offset_commit_req_t *req,
                                  kp_offset_commit_resp_t *resp, rb_arena_t *arena, cg_done_fn done, void *ctx,
                                  bool txn) {
    int32_t nt = req->topics.n < 0 ? 0 : req->topics.n;
    int total = 0;
    CG_OALLOC_ARR(arena, resp->topics, nt);
    for (int32_t i = 0; i < nt; i++) {
        kp_offset_commit_req_offset_commit_request_topic_t *t = &req->topics.v[i];
        kp_offset_commit_resp_offset_commit_response_topic_t *rt = &resp->topics.v[i];
        rt->name = t->name;
        int32_t np = t->partitions.n < 0 ? 0 : t->partitions.n;
        CG_OALLOC_ARR(arena, rt->partitions, np);
        for (int32_t k = 0; k < np; k++) {
            kp_offset_commit_req_offset_commit_request_partition_t *p = &t->partitions.v[k];
            rt->partitions.v[k].partition_index = p->partition_index;
            int16_t err = RB_NONE;
            if (t->name.len <= 0 ||
                !c->c_cfg.partition_exists(c->c_cfg.ctx, t->name.p, (size_t)t->name.len, p->partition_index))
                err = RB_UNKNOWN_TOPIC_OR_PARTITION;
            else if (p->committed_metadata.len > c->c_cfg.offset_metadata_max_bytes)
                err = RB_OFFSET_METADATA_TOO_LARGE;
            rt->partitions.v[k].error_code = err;
            if (!err) total++;
        }
    }
    int16_t gerr = RB_NONE;
    int32_t gen = version >= 1 ? req->generation_id_or_member_epoch : -1;
    cg_group_t *g = NULL;
    if (req->group_id.len <= 0) gerr = RB_INVALID_GROUP_ID;
    else {
        g = cg_group_get(c, req->group_id.p, (size_t)req->group_id.len, gen < 0 || txn);
        if (!g) gerr = RB_ILLEGAL_GENERATION;
    }
    cg_commit_t *cc = NULL;
    if (!gerr) {
        pthread_mutex_lock(&g->g_mu);
        cg_member_t *m = NULL;
        if (g->g_state == CG_DEAD) gerr = gen < 0 ? RB_COORDINATOR_NOT_AVAILABLE : RB_ILLEGAL_GENERATION;
        else if (txn) gerr = RB_NONE; /* G9: the transaction coordinator checked the producer and member */
        else if (gen < 0 && g->g_state == CG_EMPTY) gerr = RB_NONE;
        else if (!(gerr = cg_commit_member_check(g, gen, req->member_id,
                                                 version >= 7 ? req->group_instance_id : (kp_str_t){"", -1}, &m))) {
            if (g->g_state == CG_COMPLETING_REBALANCE) gerr = RB_REBALANCE_IN_PROGRESS;
            else if (!m->m_join && !m->m_sync) m->m_deadline = rb_mono_ms() + m->m_session_timeout_ms;
        }
        if (!gerr && total > 0) {
            kp_record_in_t *recs = calloc((size_t)total, sizeof(*recs));
            rb_buf_t *bufs = calloc((size_t)total * 2, sizeof(*bufs));
            cc = calloc(1, sizeof(*cc));
            if (!recs || !bufs || !cc) abort();
            cc->ti = calloc((size_t)total, sizeof(int32_t));
            cc->pi = calloc((size_t)total, sizeof(int32_t));
            if (!cc->ti || !cc->pi) abort();
            int64_t now = rb_now_ms();
            int n = 0;
            for (int32_t i = 0; i < nt; i++) {
                kp_offset_commit_req_offset_commit_request_topic_t *t = &req->topics.v[i];
                for (int32_t k = 0; k < resp->topics.v[i].partitions.n; k++) {
                    if (resp->topics.v[i].partitions.v[k].error_code) continue;
                    kp_offset_commit_req_offset_commit_request_partition_t *p = &t->partitions.v[k];
                    rb_buf_init(&bufs[2 * n]);
                    rb_buf_init(&bufs[2 * n + 1]);
                    cg_offset_key(&bufs[2 * n], g->g_id, t->name.p, (size_t)t->name.len, p->partition_index);
                    cg_offset_value(&bufs[2 * n + 1], p->committed_offset, p->committed_leader_epoch,
                                    p->committed_metadata.p, p->committed_metadata.len, now);
                    recs[n].key.p = bufs[2 * n].p;
                    recs[n].key.len = (int32_t)bufs[2 * n].len;
                    recs[n].value.p = bufs[2 * n + 1].p;
                    recs[n].value.len = (int32_t)bufs[2 * n + 1].len;
                    recs[n].timestamp = now;
                    cc->ti[n] = i;
                    cc->pi[n] = k;
                    n++;
                }
            }
            int64_t last = -1;
            int rc = cg_append(c, g->g_part, recs, n, &cc->base, &last);
            for (int i = 0; i < 2 * n; i++) rb_buf_free(&bufs[i]);
            free(bufs);
            free(recs);
            if (rc) {
                gerr = RB_COORDINATOR_NOT_AVAILABLE;
                free(cc->ti);
                free(cc->pi);
                free(cc);
                cc = NULL;
            } else {
                cc->c = c;
                cc->g = g;
                cc->req = req;
                cc->resp = resp;
                cc->done = done;
                cc->ctx = ctx;
                cc->n = n;
            }
        }
        pthread_mutex_unlock(&g->g_mu);
    }
    if (gerr) {
        for (int32_t i = 0; i < nt; i++)
            for (int32_t k = 0; k < resp->topics.v[i].partitions.n; k++)
                if (!resp->topics.v[i].partitions.v[k].error_code) resp->topics.v[i].partitions.v[k].error_code = gerr;
    }
    if (!cc) {
        done(ctx);
        return;
    }
    /* G6: answer once the records are durable (outside g_mu: the callback
     * may run synchronously and takes it) */
    st_log_sync_wait(c->c_logs[g->g_part], cc->base + cc->n, cg_commit_synced, cc);
}

void cg_offset_commit(cg_coord_t *c, int16_t version, const kp_offset_commit_req_t *req,
                      kp_offset_commit_resp_t *resp, rb_arena_t *arena, cg_done_fn done, void *ctx) {
    cg_offset_commit_impl(c, version, req, resp, arena, done, ctx, false);
}

void cg_offset_commit_txn(cg_coord_t *c, const kp_offset_commit_req_t *req, kp_offset_commit_resp_t *resp,
                          rb_arena_t *arena, cg_done_fn done, void *ctx) {
    cg_offset_commit_impl(c, 8, req, resp, arena, done, ctx, true);
}

int16_t cg_txn_offset_check(cg_coord_t *c, kp_str_t group, int32_t gen, kp_str_t member_id, kp_str_t inst) {
    /* standalone use (v0-v2, or no consumer metadata): nothing to check */
    if (gen < 0 && member_id.len <= 0 && inst.len < 0) return RB_NONE;
    cg_group_t *g = group.len > 0 ? cg_group_get(c, group.p, (size_t)group.len, false) : NULL;
    if (!g) return RB_UNKNOWN_MEMBER_ID; /* Kafka: a new Empty group has no such member */
    pthread_mutex_lock(&g->g_mu);
    cg_member_t *m;
    int16_t err = g->g_state == CG_DEAD ? RB_UNKNOWN_MEMBER_ID : cg_commit_member_check(g, gen, member_id, inst, &m);
    pthread_mutex_unlock(&g->g_mu);
    return err;
}

/* ---- OffsetFetch -------------------------------------------------------------------------------------- */

typedef struct {
    int32_t partition_index;
    int64_t committed_offset;
    int32_t committed_leader_epoch;
    kp_str_t metadata;
    int16_t error_code;
} cg_fetch_part_t;

typedef KP_ARR(int32_t) cg_i32_arr_t;

/* Fills one group's answer as a list of (topic, partitions) in the arena. */
typedef struct {
    kp_str_t name;
    int32_t n;
    cg_fetch_part_t *v;
} cg_fetch_topic_t;

static int32_t cg_fetch_group(cg_coord_t *c, kp_str_t group, int32_t ntopics, const kp_str_t *tnames,
                              const void *parts, size_t parts_stride, rb_arena_t *a,
                              cg_fetch_topic_t **out, int16_t *gerr) {
    *gerr = RB_NONE;
    *out = NULL;
    if (group.len <= 0) {
        *gerr = RB_INVALID_GROUP_ID;
        return 0;
    }
    cg_group_t *g = cg_group_get(c, group.p, (size_t)group.len, false);
    if (g) pthread_mutex_lock(&g->g_mu);
    if (g && g->g_state == CG_DEAD) {
        pthread_mutex_unlock(&g->g_mu);
        g = NULL;
    }
    int32_t nt = ntopics;
    cg_fetch_topic_t *ts;
    if (ntopics < 0) {
        /* every committed offset, grouped by topic */
        int cnt = g ? g->g_noffsets : 0;
        ts = cg_oalloc(a, sizeof(*ts) * (size_t)(cnt ? cnt : 1));
        nt = 0;
        for (int i = 0; i < cnt; i++) {
            cg_offset_t *o = &g->g_offsets[i];
            int32_t k;
            for (k = 0; k < nt; k++)
                if ((size_t)ts[k].name.len == strlen(o->topic) && !memcmp(ts[k].name.p, o->topic, strlen(o->topic))) break;
            if (k == nt) {
                ts[nt].name = cg_ostr(a, o->topic);
                ts[nt].v = cg_oalloc(a, sizeof(cg_fetch_part_t) * (size_t)cnt);
                ts[nt].n = 0;
                nt++;
            }
            cg_fetch_part_t *fp = &ts[k].v[ts[k].n++];
            fp->partition_index = o->partition;
            fp->committed_offset = o->offset;
            fp->committed_leader_epoch = o->leader_epoch;
            fp->metadata = cg_ostr(a, o->metadata ? o->metadata : "");
            fp->error_code = RB_NONE;
        }
    } else {
        ts = cg_oalloc(a, sizeof(*ts) * (size_t)(nt ? nt : 1));
        for (int32_t i = 0; i < nt; i++) {
            const cg_i32_arr_t *pl = (const void *)((const char *)parts + parts_stride * (size_t)i);
            ts[i].name = *(const kp_str_t *)((const char *)tnames + parts_stride * (size_t)i);
            int32_t np = pl->n < 0 ? 0 : pl->n;
            ts[i].n = np;
            ts[i].v = cg_oalloc(a, sizeof(cg_fetch_part_t) * (size_t)(np ? np : 1));
            for (int32_t k = 0; k < np; k++) {
                cg_fetch_part_t *fp = &ts[i].v[k];
                fp->partition_index = pl->v[k];
                cg_offset_t *o = g && ts[i].name.len >= 0
                                     ? cg_offset_find(g, ts[i].name.p, (size_t)ts[i].name.len, pl->v[k])
                                     : NULL;
                fp->committed_offset = o ? o->offset : -1;
                fp->committed_leader_epoch = o ? o->leader_epoch : -1;
                fp->metadata = cg_ostr(a, o && o->metadata ? o->metadata : "");
                fp->error_code = RB_NONE;
            }
        }
    }
    if (g) pthread_mutex_unlock(&g->g_mu);
    *out = ts;
    return nt;
}

void cg_offset_fetch(cg_coord_t *c, int16_t version, const kp_offset_fetch_req_t *req, kp_offset_fetch_resp_t *resp,
                     rb_arena_t *arena) {
    if (version < 8) {
        cg_fetch_topic_t *ts;
        int16_t gerr;
        int32_t ntopics = req->topics.n;
        if (version < 2 && ntopics < 0) ntopics = 0;
        int32_t nt = cg_fetch_group(c, req->group_id, ntopics, ntopics > 0 ? &req->topics.v[0].name : NULL,
                                    ntopics > 0 ? (const void *)&req->topics.v[0].partition_indexes : NULL,
                                    sizeof(req->topics.v[0]), arena, &ts, &gerr);
        resp->error_code = gerr;
        CG_OALLOC_ARR(arena, resp->topics, nt);
        for (int32_t i = 0; i < nt; i++) {
            resp->topics.v[i].name = ts[i].name;
            CG_OALLOC_ARR(arena, resp->topics.v[i].partitions, ts[i].n);
            for (int32_t k = 0; k < ts[i].n; k++) {
                kp_offset_fetch_resp_offset_fetch_response_partition_t *rp = &resp->topics.v[i].partitions.v[k];
                rp->partition_index = ts[i].v[k].partition_index;
                rp->committed_offset = ts[i].v[k].committed_offset;
                rp->committed_leader_epoch = ts[i].v[k].committed_leader_epoch;
                rp->metadata = ts[i].v[k].metadata;
                rp->error_code = gerr ? gerr : ts[i].v[k].error_code;
            }
        }
        return;
    }
    int32_t ng = req->groups.n < 0 ? 0 : req->groups.n;
    CG_OALLOC_ARR(arena, resp->groups, ng);
    for (int32_t gi = 0; gi < ng; gi++) {
        kp_offset_fetch_req_offset_fetch_request_group_t *rg = &req->groups.v[gi];
        kp_offset_fetch_resp_offset_fetch_response_group_t *og = &resp->groups.v[gi];
        cg_fetch_topic_t *ts;
        int16_t gerr;
        int32_t ntopics = rg->topics.n;
        int32_t nt = cg_fetch_group(c, rg->group_id, ntopics, ntopics > 0 ? &rg->topics.v[0].name : NULL,
                                    ntopics > 0 ? (const void *)&rg->topics.v[0].partition_indexes : NULL,
                                    sizeof(rg->topics.v[0]), arena, &ts, &gerr);
        og->group_id = rg->group_id;
        og->error_code = gerr;
        CG_OALLOC_ARR(arena, og->topics, nt);
        for (int32_t i = 0; i < nt; i++) {
            og->topics.v[i].name = ts[i].name;
            CG_OALLOC_ARR(arena, og->topics.v[i].partitions, ts[i].n);
            for (int32_t k = 0; k < ts[i].n; k++) {
                kp_offset_fetch_resp_offset_fetch_response_partitions_t *rp = &og->topics.v[i].partitions.v[k];
                rp->partition_index = ts[i].v[k].partition_index;
                rp->committed_offset = ts[i].v[k].committed_offset;
                rp->committed_leader_epoch = ts[i].v[k].committed_leader_epoch;
                rp->metadata = ts[i].v[k].metadata;
                rp->error_code = ts[i].v[k].error_code;
            }
        }
    }
}

/* ---- OffsetDelete ------------------------------------------------------------------------------------------ */

/* Does any member's ConsumerProtocolSubscription (of the chosen protocol)
 * name topic? g_mu held. */
static bool cg_group_subscribed(cg_group_t *g, const char *topic, size_t tlen) {
    if (g->g_state == CG_EMPTY || g->g_state == CG_DEAD) return false;
    if (!g->g_protocol_type || strcmp(g->g_protocol_type, "consumer")) return false;
    for (cg_member_t *m = g->g_members; m; m = m->m_next)
        for (int i = 0; i < m->m_nprotos; i++) {
            if (g->g_protocol_name && strcmp(m->m_protos[i].name, g->g_protocol_name)) continue;
            rb_rd_t rd;
            rb_rd_init(&rd, m->m_protos[i].meta, (size_t)m->m_protos[i].meta_len);
            (void)rb_rd_i16(&rd);
            int32_t n = rb_rd_i32(&rd);
            for (int32_t k = 0; rb_rd_ok(&rd) && k < n; k++) {
                int16_t l = rb_rd_i16(&rd);
                const uint8_t *p = l >= 0 ? rb_rd_bytes(&rd, (size_t)l) : NULL;
                if (p && (size_t)l == tlen && !memcmp(p, topic, tlen)) return true;
            }
            break;
        }
    return false;
}

void cg_offset_delete(cg_coord_t *c, int16_t version, const kp_offset_delete_req_t *req,
                      kp_offset_delete_resp_t *resp, rb_arena_t *arena) {
    (void)version;
    int32_t nt = req->topics.n < 0 ? 0 : req->topics.n;
    CG_OALLOC_ARR(arena, resp->topics, nt);
    for (int32_t i = 0; i < nt; i++) {
        resp->topics.v[i].name = req->topics.v[i].name;
        int32_t np = req->topics.v[i].partitions.n < 0 ? 0 : req->topics.v[i].partitions.n;
        CG_OALLOC_ARR(arena, resp->topics.v[i].partitions, np);
        for (int32_t k = 0; k < np; k++)
            resp->topics.v[i].partitions.v[k].partition_index = req->topics.v[i].partitions.v[k].partition_index;
    }
    if (req->group_id.len <= 0) {
        resp->error_code = RB_INVALID_GROUP_ID;
        return;
    }
    cg_group_t *g = cg_group_get(c, req->group_id.p, (size_t)req->group_id.len, false);
    if (g) pthread_mutex_lock(&g->g_mu);
    if (!g || g->g_state == CG_DEAD) {
        if (g) pthread_mutex_unlock(&g->g_mu);
        resp->error_code = RB_GROUP_ID_NOT_FOUND;
        return;
    }
    for (int32_t i = 0; i < nt; i++) {
        kp_offset_delete_req_offset_delete_request_topic_t *t = &req->topics.v[i];
        bool sub = t->name.len > 0 && cg_group_subscribed(g, t->name.p, (size_t)t->name.len);
        for (int32_t k = 0; k < resp->topics.v[i].partitions.n; k++) {
            int32_t pidx = t->partitions.v[k].partition_index;
            int16_t *err = &resp->topics.v[i].partitions.v[k].error_code;
            if (t->name.len <= 0) {
                *err = RB_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            if (sub) {
                *err = RB_GROUP_SUBSCRIBED_TO_TOPIC;
                continue;
            }
            if (!cg_offset_find(g, t->name.p, (size_t)t->name.len, pidx)) continue;
            rb_buf_t k2;
            rb_buf_init(&k2);
            cg_offset_key(&k2, g->g_id, t->name.p, (size_t)t->name.len, pidx);
            kp_record_in_t rec = {0};
            rec.key.p = k2.p;
            rec.key.len = (int32_t)k2.len;
            rec.value.len = -1;
            rec.timestamp = rb_now_ms();
            int64_t base, last;
            int rc = cg_append(c, g->g_part, &rec, 1, &base, &last);
            rb_buf_free(&k2);
            if (rc) *err = RB_COORDINATOR_NOT_AVAILABLE;
            else cg_offset_remove(g, t->name.p, (size_t)t->name.len, pidx);
        }
    }
    pthread_mutex_unlock(&g->g_mu);
}

/* ---- replay (G7) ---------------------------------------------------------------------------------------------- */

static void cg_replay_record(cg_coord_t *c, int32_t part, int64_t offset, const kp_record_t *r) {
    if (r->key.len < 2) return;
    rb_rd_t k;
    rb_rd_init(&k, r->key.p, (size_t)r->key.len);
    int16_t kv = rb_rd_i16(&k);
    int16_t gl = rb_rd_i16(&k);
    const uint8_t *gp = gl >= 0 ? rb_rd_bytes(&k, (size_t)gl) : NULL;
    if (!gp || gl <= 0) return;
    if (kv == 0 || kv == 1) {
        int16_t tl = rb_rd_i16(&k);
        const uint8_t *tp = tl >= 0 ? rb_rd_bytes(&k, (size_t)tl) : NULL;
        int32_t partition = rb_rd_i32(&k);
        if (!tp || !rb_rd_ok(&k)) return;
        cg_group_t *g = cg_group_get(c, (const char *)gp, (size_t)gl, true);
        pthread_mutex_lock(&g->g_mu);
        if (r->value.len < 0) {
            cg_offset_remove(g, (const char *)tp, (size_t)tl, partition);
        } else {
            rb_rd_t v;
            rb_rd_init(&v, r->value.p, (size_t)r->value.len);
            int16_t vv = rb_rd_i16(&v);
            int64_t off = rb_rd_i64(&v);
            int32_t epoch = vv >= 3 ? rb_rd_i32(&v) : -1;
            int16_t ml = rb_rd_i16(&v);
            const uint8_t *mp = ml > 0 ? rb_rd_bytes(&v, (size_t)ml) : NULL;
            int64_t ts = rb_rd_i64(&v);
            if (vv >= 0 && vv <= 3 && rb_rd_ok(&v))
                cg_offset_set(g, (const char *)tp, (size_t)tl, partition, off, epoch, mp ? (const char *)mp : "",
                              ml > 0 ? ml : 0, ts, offset);
            else
                rb_warn("coord: %s-%d offset %lld: unreadable offset value (version %d); skipped", CG_OFFSETS_TOPIC,
                        part, (long long)offset, vv);
        }
        pthread_mutex_unlock(&g->g_mu);
    } else if (kv == 2) {
        rb_rd_t v;
        rb_rd_init(&v, r->value.p, r->value.len < 0 ? 0 : (size_t)r->value.len);
        cg_group_restore(c, (const char *)gp, (size_t)gl, &v, r->value.len < 0);
    }
}

typedef struct {
    cg_coord_t *c;
    int32_t part;
} cg_replay_ctx_t;

static void cg_replay_one(void *ctx, int64_t offset, const kp_record_t *rec) {
    cg_replay_ctx_t *x = ctx;
    cg_replay_record(x->c, x->part, offset, rec);
}

static int cg_replay_partition(cg_coord_t *c, int32_t part) {
    cg_replay_ctx_t x = {c, part};
    int64_t nrec = 0;
    int rc = st_log_scan_records(c->c_logs[part], cg_replay_one, &x, &nrec);
    if (nrec) rb_info("coord: replayed %lld record(s) of %s-%d", (long long)nrec, CG_OFFSETS_TOPIC, part);
    return rc;
}

int cg_replay(cg_coord_t *c) {
    for (int32_t p = 0; p < c->c_nparts; p++) {
        int rc = cg_replay_partition(c, p);
        if (rc) {
            rb_error("coord: cannot replay %s-%d: %s", CG_OFFSETS_TOPIC, p, rb_err_name(rc));
            return rc;
        }
    }
    return 0;
}
