/*
 * group.c — the group table, the classic rebalance state machine (coord.h's
 * diagram: cg_prepare_rebalance, cg_complete_join, cg_sync_complete,
 * cg_group_delete), JoinGroup / SyncGroup / Heartbeat / LeaveGroup,
 * ListGroups / DescribeGroups / DeleteGroups, and the timer thread (G2, G4).
 */
#include "coord/coord_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>

/* ---- small helpers -------------------------------------------------------------------- */

char *cg_strndup(const char *p, size_t n) {
    char *s = malloc(n + 1);
    if (!s) abort();
    if (n) memcpy(s, p, n);
    s[n] = 0;
    return s;
}

static char *cg_kstrdup(kp_str_t s) { return s.len < 0 ? NULL : cg_strndup(s.p, (size_t)s.len); }

static bool cg_keq(kp_str_t s, const char *c) {
    if (s.len < 0) return c == NULL;
    if (!c) return false;
    return strlen(c) == (size_t)s.len && !memcmp(c, s.p, (size_t)s.len);
}

static void *cg_alloc(rb_arena_t *a, size_t n) {
    void *p = rb_arena_alloc(a, n ? n : 1);
    if (!p) {
        fprintf(stderr, "rilld: out of memory building a group response\n");
        abort();
    }
    return p;
}

static kp_str_t cg_astr(rb_arena_t *a, const char *s) {
    kp_str_t out = {"", -1};
    if (!s) return out;
    size_t n = strlen(s);
    char *d = cg_alloc(a, n + 1);
    memcpy(d, s, n);
    out.p = d;
    out.len = (int32_t)n;
    return out;
}

static kp_bytes_t cg_abytes(rb_arena_t *a, const uint8_t *p, int32_t n) {
    kp_bytes_t out = {(const uint8_t *)"", 0};
    if (n <= 0) return out;
    uint8_t *d = cg_alloc(a, (size_t)n);
    memcpy(d, p, (size_t)n);
    out.p = d;
    out.len = n;
    return out;
}

#define CG_ALLOC_ARR(a, arr, count)                                                                  \
    do {                                                                                             \
        (arr).n = (int32_t)(count);                                                                  \
        (arr).v = (count) ? cg_alloc((a), sizeof(*(arr).v) * (size_t)(count)) : NULL;               \
    } while (0)

const char *cg_state_name(cg_state_t s) {
    switch (s) {
    case CG_EMPTY: return "Empty";
    case CG_PREPARING_REBALANCE: return "PreparingRebalance";
    case CG_COMPLETING_REBALANCE: return "CompletingRebalance";
    case CG_STABLE: return "Stable";
    case CG_DEAD: return "Dead";
    }
    return "Unknown";
}

int32_t cg_partition_for(const char *p, size_t len, int32_t n) {
    /* Java String.hashCode over UTF-16 code units of the UTF-8 bytes */
    int32_t h = 0;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        uint8_t b0 = (uint8_t)p[i];
        size_t need = 0;
        if (b0 < 0x80) cp = b0;
        else if ((b0 & 0xe0) == 0xc0) cp = b0 & 0x1f, need = 1;
        else if ((b0 & 0xf0) == 0xe0) cp = b0 & 0x0f, need = 2;
        else if ((b0 & 0xf8) == 0xf0) cp = b0 & 0x07, need = 3;
        else cp = 0xfffd;
        i++;
        for (size_t k = 0; k < need; k++) {
            if (i >= len || ((uint8_t)p[i] & 0xc0) != 0x80) {
                cp = 0xfffd;
                break;
            }
            cp = (cp << 6) | ((uint8_t)p[i] & 0x3f);
            i++;
        }
        if (cp >= 0x10000) {
            cp -= 0x10000;
            h = (int32_t)((uint32_t)h * 31u + (0xd800u + (cp >> 10)));
            h = (int32_t)((uint32_t)h * 31u + (0xdc00u + (cp & 0x3ff)));
        } else {
            h = (int32_t)((uint32_t)h * 31u + cp);
        }
    }
    int32_t a = h == INT32_MIN ? 0 : (h < 0 ? -h : h);
    return n > 0 ? a % n : 0;
}

static int64_t cg_now(void) { return rb_mono_ms(); }

static char *cg_new_member_id(const char *prefix) {
    uint8_t r[16];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        uint64_t t = (uint64_t)rb_mono_us() ^ (uint64_t)(uintptr_t)r;
        for (int i = 0; i < 16; i++) r[i] = (uint8_t)(t >> ((i % 8) * 8)) ^ (uint8_t)(i * 37);
    }
    char buf[512];
    snprintf(buf, sizeof(buf), "%.400s-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             prefix && *prefix ? prefix : "member", r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10],
             r[11], r[12], r[13], r[14], r[15]);
    return cg_strndup(buf, strlen(buf));
}

/* ---- the table --------------------------------------------------------------------------- */

static uint64_t cg_hash(const char *p, size_t len) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static void cg_table_grow(cg_coord_t *c) {
    size_t nb = c->c_nbuckets ? c->c_nbuckets * 4 : 64;
    cg_group_t **b = calloc(nb, sizeof(*b));
    if (!b) abort();
    for (size_t i = 0; i < c->c_nbuckets; i++) {
        cg_group_t *g = c->c_buckets[i];
        while (g) {
            cg_group_t *n = g->g_next;
            size_t h = cg_hash(g->g_id, strlen(g->g_id)) % nb;
            g->g_next = b[h];
            b[h] = g;
            g = n;
        }
    }
    free(c->c_buckets);
    c->c_buckets = b;
    c->c_nbuckets = nb;
}

/* Finds (or, with create, makes) a group; a Dead group is revived as Empty
 * when create is set. Takes c_mu; returns with no lock held. */
cg_group_t *cg_group_get(cg_coord_t *c, const char *id, size_t len, bool create) {
    pthread_mutex_lock(&c->c_mu);
    cg_group_t *g = NULL;
    if (c->c_nbuckets) {
        for (g = c->c_buckets[cg_hash(id, len) % c->c_nbuckets]; g; g = g->g_next)
            if (strlen(g->g_id) == len && !memcmp(g->g_id, id, len)) break;
    }
    if (!g && create) {
        if (c->c_ngroups + 1 > c->c_nbuckets * 2) cg_table_grow(c);
        g = calloc(1, sizeof(*g));
        if (!g) abort();
        g->g_id = cg_strndup(id, len);
        g->g_part = cg_partition_for(id, len, c->c_nparts);
        pthread_mutex_init(&g->g_mu, NULL);
        g->g_state = CG_EMPTY;
        g->g_state_ts = rb_now_ms();
        size_t h = cg_hash(id, len) % c->c_nbuckets;
        g->g_next = c->c_buckets[h];
        c->c_buckets[h] = g;
        c->c_ngroups++;
    }
    pthread_mutex_unlock(&c->c_mu);
    if (g && create) {
        pthread_mutex_lock(&g->g_mu);
        if (g->g_state == CG_DEAD) {
            g->g_state = CG_EMPTY;
            g->g_generation = 0;
            g->g_state_ts = rb_now_ms();
        }
        pthread_mutex_unlock(&g->g_mu);
    }
    return g;
}

/* ---- members ------------------------------------------------------------------------------- */

static void cg_protos_free(cg_member_t *m) {
    for (int i = 0; i < m->m_nprotos; i++) {
        free(m->m_protos[i].name);
        free(m->m_protos[i].meta);
    }
    free(m->m_protos);
    m->m_protos = NULL;
    m->m_nprotos = 0;
}

void cg_group_member_free(cg_member_t *m) {
    cg_protos_free(m);
    free(m->m_id);
    free(m->m_instance_id);
    free(m->m_client_id);
    free(m->m_client_host);
    free(m->m_assignment);
    free(m->m_join);
    free(m->m_sync);
    free(m);
}

static void cg_member_set_protos(cg_member_t *m, const kp_join_group_req_t *req) {
    cg_protos_free(m);
    int n = req->protocols.n < 0 ? 0 : req->protocols.n;
    m->m_protos = calloc((size_t)(n ? n : 1), sizeof(*m->m_protos));
    if (!m->m_protos) abort();
    for (int i = 0; i < n; i++) {
        kp_join_group_req_join_group_request_protocol_t *p = &req->protocols.v[i];
        m->m_protos[i].name = cg_strndup(p->name.p, p->name.len < 0 ? 0 : (size_t)p->name.len);
        int32_t ml = p->metadata.len < 0 ? 0 : p->metadata.len;
        m->m_protos[i].meta = malloc((size_t)(ml ? ml : 1));
        if (!m->m_protos[i].meta) abort();
        if (ml) memcpy(m->m_protos[i].meta, p->metadata.p, (size_t)ml);
        m->m_protos[i].meta_len = ml;
    }
    m->m_nprotos = n;
}

static bool cg_member_protos_equal(const cg_member_t *m, const kp_join_group_req_t *req) {
    int n = req->protocols.n < 0 ? 0 : req->protocols.n;
    if (n != m->m_nprotos) return false;
    for (int i = 0; i < n; i++) {
        kp_join_group_req_join_group_request_protocol_t *p = &req->protocols.v[i];
        int32_t ml = p->metadata.len < 0 ? 0 : p->metadata.len;
        if (!cg_keq(p->name, m->m_protos[i].name) || ml != m->m_protos[i].meta_len ||
            (ml && memcmp(p->metadata.p, m->m_protos[i].meta, (size_t)ml)))
            return false;
    }
    return true;
}

static const cg_proto_t *cg_member_proto(const cg_member_t *m, const char *name) {
    if (!name) return NULL;
    for (int i = 0; i < m->m_nprotos; i++)
        if (!strcmp(m->m_protos[i].name, name)) return &m->m_protos[i];
    return NULL;
}

static cg_member_t *cg_member_find(cg_group_t *g, const char *id, size_t len) {
    for (cg_member_t *m = g->g_members; m; m = m->m_next)
        if (strlen(m->m_id) == len && !memcmp(m->m_id, id, len)) return m;
    return NULL;
}

static cg_member_t *cg_member_find_k(cg_group_t *g, kp_str_t id) {
    return id.len <= 0 ? NULL : cg_member_find(g, id.p, (size_t)id.len);
}

static cg_member_t *cg_member_find_instance(cg_group_t *g, kp_str_t inst) {
    if (inst.len < 0) return NULL;
    for (cg_member_t *m = g->g_members; m; m = m->m_next)
        if (m->m_instance_id && cg_keq(inst, m->m_instance_id)) return m;
    return NULL;
}

static cg_pending_t *cg_pending_take(cg_group_t *g, kp_str_t id) {
    for (cg_pending_t **pp = &g->g_pending; *pp; pp = &(*pp)->p_next)
        if (cg_keq(id, (*pp)->p_id)) {
            cg_pending_t *p = *pp;
            *pp = p->p_next;
            return p;
        }
    return NULL;
}

/* Is protocol `name` supported by every member (except `skip`)? */
static bool cg_all_support(cg_group_t *g, const char *name, const cg_member_t *skip) {
    for (cg_member_t *m = g->g_members; m; m = m->m_next)
        if (m != skip && !cg_member_proto(m, name)) return false;
    return true;
}

/* Kafka's JoinGroup protocol check: the type must match the group's, and the
 * request must name a protocol every other member supports. */
static bool cg_protocols_ok(cg_group_t *g, const kp_join_group_req_t *req, const cg_member_t *self) {
    if (req->protocol_type.len <= 0 || req->protocols.n <= 0) return false;
    bool others = false;
    for (cg_member_t *m = g->g_members; m; m = m->m_next)
        if (m != self) others = true;
    if (!others) return true;
    if (!g->g_protocol_type || !cg_keq(req->protocol_type, g->g_protocol_type)) return false;
    for (int32_t i = 0; i < req->protocols.n; i++) {
        char *n = cg_kstrdup(req->protocols.v[i].name);
        bool ok = n && cg_all_support(g, n, self);
        free(n);
        if (ok) return true;
    }
    return false;
}

/* ---- completing parked requests --------------------------------------------------------------- */

static void cg_join_answer(cg_group_t *g, cg_member_t *m, cg_wait_t *w, int16_t err) {
    kp_join_group_resp_t *resp = w->resp;
    rb_arena_t *a = w->arena;
    resp->error_code = err;
    if (!err) {
        resp->generation_id = g->g_generation;
        resp->protocol_type = cg_astr(a, g->g_protocol_type);
        resp->protocol_name = cg_astr(a, g->g_protocol_name);
        resp->leader = cg_astr(a, g->g_leader ? g->g_leader : "");
        resp->member_id = cg_astr(a, m->m_id);
        if (g->g_leader && !strcmp(g->g_leader, m->m_id)) {
            CG_ALLOC_ARR(a, resp->members, g->g_nmembers);
            int i = 0;
            for (cg_member_t *o = g->g_members; o; o = o->m_next, i++) {
                kp_join_group_resp_join_group_response_member_t *rm = &resp->members.v[i];
                rm->member_id = cg_astr(a, o->m_id);
                rm->group_instance_id = cg_astr(a, o->m_instance_id);
                const cg_proto_t *p = cg_member_proto(o, g->g_protocol_name);
                rm->metadata = p ? cg_abytes(a, p->meta, p->meta_len) : cg_abytes(a, NULL, 0);
            }
        }
    } else {
        if (m) resp->member_id = cg_astr(a, m->m_id);
        resp->leader = cg_astr(a, "");
        resp->protocol_name = w->version >= 7 ? cg_astr(a, NULL) : cg_astr(a, "");
    }
    w->done(w->ctx);
    free(w);
}

static void cg_sync_answer(cg_group_t *g, cg_member_t *m, cg_wait_t *w, int16_t err) {
    kp_sync_group_resp_t *resp = w->resp;
    resp->error_code = err;
    if (!err) {
        resp->protocol_type = cg_astr(w->arena, g->g_protocol_type);
        resp->protocol_name = cg_astr(w->arena, g->g_protocol_name);
        resp->assignment = cg_abytes(w->arena, m->m_assignment, m->m_assignment_len);
    } else {
        resp->assignment = cg_abytes(w->arena, NULL, 0);
    }
    w->done(w->ctx);
    free(w);
}

static void cg_member_fail_waits(cg_group_t *g, cg_member_t *m, int16_t err) {
    if (m->m_join) {
        cg_wait_t *w = m->m_join;
        m->m_join = NULL;
        cg_join_answer(g, m, w, err);
    }
    if (m->m_sync) {
        cg_wait_t *w = m->m_sync;
        m->m_sync = NULL;
        cg_sync_answer(g, m, w, err);
    }
}

static cg_wait_t *cg_wait_new(void *resp, rb_arena_t *a, cg_done_fn done, void *ctx, int16_t v) {
    cg_wait_t *w = calloc(1, sizeof(*w));
    if (!w) abort();
    w->resp = resp;
    w->arena = a;
    w->done = done;
    w->ctx = ctx;
    w->version = v;
    return w;
}

/* ---- state machine ------------------------------------------------------------------------------ */

static void cg_set_state(cg_group_t *g, cg_state_t s) {
    if (g->g_state != s)
        rb_debug("group %s: %s -> %s (generation %d)", g->g_id, cg_state_name(g->g_state), cg_state_name(s),
                 g->g_generation);
    g->g_state = s;
    g->g_state_ts = rb_now_ms();
    g->g_sync_storing = false;
}

static int32_t cg_max_rebalance_timeout(cg_group_t *g) {
    int32_t t = 0;
    for (cg_member_t *m = g->g_members; m; m = m->m_next) t = RB_MAX(t, m->m_rebalance_timeout_ms);
    return t;
}

/* Stable/CompletingRebalance/Empty -> PreparingRebalance. */
static void cg_prepare_rebalance(cg_coord_t *c, cg_group_t *g) {
    int64_t now = cg_now();
    if (g->g_state == CG_COMPLETING_REBALANCE || g->g_state == CG_STABLE) {
        for (cg_member_t *m = g->g_members; m; m = m->m_next) {
            free(m->m_assignment);
            m->m_assignment = NULL;
            m->m_assignment_len = 0;
            if (m->m_sync) {
                cg_wait_t *w = m->m_sync;
                m->m_sync = NULL;
                cg_sync_answer(g, m, w, RB_REBALANCE_IN_PROGRESS);
            }
        }
    }
    int32_t rt = cg_max_rebalance_timeout(g);
    if (g->g_state == CG_EMPTY && c->c_cfg.initial_rebalance_delay_ms > 0) {
        g->g_delay_until = now + RB_MIN(c->c_cfg.initial_rebalance_delay_ms, (int64_t)rt);
        g->g_delay_max = now + rt;
    } else if (g->g_state != CG_PREPARING_REBALANCE) {
        g->g_delay_until = 0;
    }
    if (g->g_state != CG_PREPARING_REBALANCE) g->g_rebalance_deadline = now + rt;
    cg_set_state(g, CG_PREPARING_REBALANCE);
}

static void cg_member_remove(cg_group_t *g, cg_member_t *m) {
    for (cg_member_t **pp = &g->g_members; *pp; pp = &(*pp)->m_next)
        if (*pp == m) {
            *pp = m->m_next;
            g->g_nmembers--;
            break;
        }
    if (g->g_leader && !strcmp(g->g_leader, m->m_id)) {
        free(g->g_leader);
        g->g_leader = g->g_members ? cg_strndup(g->g_members->m_id, strlen(g->g_members->m_id)) : NULL;
    }
    cg_group_member_free(m);
}

/* The protocol every member supports with the most first-choice votes. */
static char *cg_select_protocol(cg_group_t *g) {
    const char *best = NULL;
    int best_votes = -1;
    if (!g->g_members) return NULL;
    for (int i = 0; i < g->g_members->m_nprotos; i++) {
        const char *cand = g->g_members->m_protos[i].name;
        if (!cg_all_support(g, cand, NULL)) continue;
        int votes = 0;
        for (cg_member_t *m = g->g_members; m; m = m->m_next)
            for (int k = 0; k < m->m_nprotos; k++)
                if (cg_all_support(g, m->m_protos[k].name, NULL)) {
                    if (!strcmp(m->m_protos[k].name, cand)) votes++;
                    break;
                }
        if (votes > best_votes) {
            best = cand;
            best_votes = votes;
        }
    }
    return best ? cg_strndup(best, strlen(best)) : NULL;
}

/* PreparingRebalance -> CompletingRebalance (or Empty when no member is
 * left): members that did not rejoin are removed, the generation advances,
 * every parked JoinGroup is answered (the leader with the member list). */
static void cg_complete_join(cg_coord_t *c, cg_group_t *g) {
    cg_member_t *m = g->g_members;
    while (m) {
        cg_member_t *n = m->m_next;
        if (!m->m_join) {
            rb_info("group %s: member %s did not rejoin within the rebalance timeout; removed", g->g_id, m->m_id);
            cg_member_fail_waits(g, m, RB_UNKNOWN_MEMBER_ID);
            cg_member_remove(g, m);
        }
        m = n;
    }
    while (g->g_pending) {
        cg_pending_t *p = g->g_pending;
        g->g_pending = p->p_next;
        free(p->p_id);
        free(p);
    }
    g->g_generation++;
    g->g_delay_until = 0;
    free(g->g_protocol_name);
    g->g_protocol_name = NULL;
    if (!g->g_members) {
        free(g->g_protocol_type);
        g->g_protocol_type = NULL;
        free(g->g_leader);
        g->g_leader = NULL;
        cg_set_state(g, CG_EMPTY);
        cg_store_group(c, g, false, NULL);
        rb_info("group %s: generation %d is empty", g->g_id, g->g_generation);
        return;
    }
    g->g_protocol_name = cg_select_protocol(g);
    if (!g->g_leader) g->g_leader = cg_strndup(g->g_members->m_id, strlen(g->g_members->m_id));
    cg_set_state(g, CG_COMPLETING_REBALANCE);
    rb_info("group %s: generation %d with %d member(s), protocol %s, leader %s", g->g_id, g->g_generation,
            g->g_nmembers, g->g_protocol_name ? g->g_protocol_name : "-", g->g_leader);
    int64_t now = cg_now();
    for (m = g->g_members; m; m = m->m_next) {
        m->m_deadline = now + m->m_session_timeout_ms;
        cg_wait_t *w = m->m_join;
        m->m_join = NULL;
        cg_join_answer(g, m, w, RB_NONE);
    }
}

static bool cg_all_joined(cg_group_t *g) {
    if (g->g_pending) return false;
    for (cg_member_t *m = g->g_members; m; m = m->m_next)
        if (!m->m_join) return false;
    return true;
}

/* G2: complete the join when everyone is in (after the initial delay) or the
 * rebalance deadline passed. g_mu held. */
static void cg_maybe_complete_join(cg_coord_t *c, cg_group_t *g) {
    if (g->g_state != CG_PREPARING_REBALANCE) return;
    int64_t now = cg_now();
    if (g->g_delay_until && now < g->g_delay_until) return;
    if (cg_all_joined(g) || now >= g->g_rebalance_deadline) cg_complete_join(c, g);
}

/* The leader's assignments are durable (or could not be stored): if the group
 * is still in the generation they were computed for, CompletingRebalance ->
 * Stable and every parked SyncGroup gets its assignment; on a storage error
 * the parked SyncGroups get COORDINATOR_NOT_AVAILABLE and the group
 * rebalances (G7). g_mu held. */
static void cg_sync_stored(cg_coord_t *c, cg_group_t *g, int err) {
    g->g_sync_storing = false;
    if (err) {
        rb_warn("group %s: generation %d's assignments could not be stored: %s; rebalancing", g->g_id,
                g->g_generation, rb_err_name(err));
        for (cg_member_t *m = g->g_members; m; m = m->m_next)
            if (m->m_sync) {
                cg_wait_t *w = m->m_sync;
                m->m_sync = NULL;
                cg_sync_answer(g, m, w, RB_COORDINATOR_NOT_AVAILABLE);
            }
        cg_prepare_rebalance(c, g);
        return;
    }
    cg_set_state(g, CG_STABLE);
    int64_t now = cg_now();
    for (cg_member_t *m = g->g_members; m; m = m->m_next) {
        m->m_deadline = now + m->m_session_timeout_ms;
        if (m->m_sync) {
            cg_wait_t *w = m->m_sync;
            m->m_sync = NULL;
            cg_sync_answer(g, m, w, RB_NONE);
        }
    }
}

typedef struct {
    cg_coord_t *c;
    cg_group_t *g;
    int32_t generation;
} cg_sync_store_t;

/* st_log_sync_wait callback: on the flusher thread, on the caller's thread
 * when already durable, or on the thread closing the log. */
static void cg_sync_store_done(void *arg, int err) {
    cg_sync_store_t *st = arg;
    cg_group_t *g = st->g;
    pthread_mutex_lock(&g->g_mu);
    /* a rebalance since (join, leave, expiry) already answered the parked
     * SyncGroups and cleared g_sync_storing through cg_set_state */
    if (g->g_sync_storing && g->g_state == CG_COMPLETING_REBALANCE && g->g_generation == st->generation)
        cg_sync_stored(st->c, g, err);
    pthread_mutex_unlock(&g->g_mu);
    free(st);
}

/* CompletingRebalance -> Stable, with the leader's assignments, once the
 * group record holding them is durable (G7). Returns the offset to wait for
 * (the caller calls st_log_sync_wait after dropping g_mu), or -1 when there is
 * nothing to wait for. */
static int64_t cg_sync_complete(cg_coord_t *c, cg_group_t *g, const kp_sync_group_req_t *req) {
    for (cg_member_t *m = g->g_members; m; m = m->m_next) {
        free(m->m_assignment);
        m->m_assignment = NULL;
        m->m_assignment_len = 0;
        for (int32_t i = 0; i < req->assignments.n; i++) {
            kp_sync_group_req_sync_group_request_assignment_t *as = &req->assignments.v[i];
            if (!cg_keq(as->member_id, m->m_id)) continue;
            int32_t n = as->assignment.len < 0 ? 0 : as->assignment.len;
            m->m_assignment = malloc((size_t)(n ? n : 1));
            if (!m->m_assignment) abort();
            if (n) memcpy(m->m_assignment, as->assignment.p, (size_t)n);
            m->m_assignment_len = n;
            break;
        }
    }
    /* the record describes the group as it will be: Stable */
    cg_state_t prev = g->g_state;
    g->g_state = CG_STABLE;
    int64_t off = -1;
    int err = cg_store_group(c, g, false, &off);
    g->g_state = prev;
    if (err) {
        cg_sync_stored(c, g, err);
        return -1;
    }
    g->g_sync_storing = true;
    return off + 1;
}

/* A member leaves (LeaveGroup, session expiry, fencing): rebalance. */
static void cg_member_leave(cg_coord_t *c, cg_group_t *g, cg_member_t *m, int16_t err) {
    cg_member_fail_waits(g, m, err);
    cg_member_remove(g, m);
    if (g->g_state == CG_STABLE || g->g_state == CG_COMPLETING_REBALANCE) cg_prepare_rebalance(c, g);
    cg_maybe_complete_join(c, g);
}

/* ---- JoinGroup ---------------------------------------------------------------------------------- */

static void cg_join_immediate(cg_group_t *g, cg_member_t *m, cg_wait_t *w) { cg_join_answer(g, m, w, RB_NONE); }

void cg_join_group(cg_coord_t *c, const cg_client_t *cl, int16_t version, const kp_join_group_req_t *req,
                   kp_join_group_resp_t *resp, rb_arena_t *arena, cg_done_fn done, void *ctx) {
    cg_wait_t *w = cg_wait_new(resp, arena, done, ctx, version);
    resp->member_id = cg_astr(arena, "");
    if (req->member_id.len > 0) resp->member_id = (kp_str_t){req->member_id.p, req->member_id.len};
    if (req->group_id.len <= 0) {
        cg_join_answer(NULL, NULL, w, RB_INVALID_GROUP_ID);
        return;
    }
    if (req->session_timeout_ms < c->c_cfg.min_session_timeout_ms ||
        req->session_timeout_ms > c->c_cfg.max_session_timeout_ms) {
        cg_join_answer(NULL, NULL, w, RB_INVALID_SESSION_TIMEOUT);
        return;
    }
    int32_t rebalance_timeout = version >= 1 && req->rebalance_timeout_ms > 0 ? req->rebalance_timeout_ms
                                                                               : req->session_timeout_ms;
    bool is_static = version >= 5 && req->group_instance_id.len > 0;
    cg_group_t *g = cg_group_get(c, req->group_id.p, (size_t)req->group_id.len, req->member_id.len <= 0);
    if (!g) {
        /* a known member id for a group we do not have */
        cg_join_answer(NULL, NULL, w, RB_UNKNOWN_MEMBER_ID);
        return;
    }
    pthread_mutex_lock(&g->g_mu);
    int64_t now = cg_now();
    cg_member_t *m = NULL;
    if (g->g_state == CG_DEAD) {
        cg_join_answer(g, NULL, w, RB_COORDINATOR_NOT_AVAILABLE);
        goto out;
    }
    if (req->member_id.len <= 0) {
        /* a new member */
        if (!cg_protocols_ok(g, req, NULL)) {
            cg_join_answer(g, NULL, w, RB_INCONSISTENT_GROUP_PROTOCOL);
            goto out;
        }
        cg_member_t *old = is_static ? cg_member_find_instance(g, req->group_instance_id) : NULL;
        if (old) {
            /* G5: a static member restarting: new id, old one fenced */
            char *nid = cg_new_member_id(old->m_instance_id);
            rb_info("group %s: static member %s rejoined; member id %s replaces %s", g->g_id, old->m_instance_id,
                    nid, old->m_id);
            cg_member_fail_waits(g, old, RB_FENCED_INSTANCE_ID);
            if (g->g_leader && !strcmp(g->g_leader, old->m_id)) {
                free(g->g_leader);
                g->g_leader = cg_strndup(nid, strlen(nid));
            }
            free(old->m_id);
            old->m_id = nid;
            old->m_session_timeout_ms = req->session_timeout_ms;
            old->m_rebalance_timeout_ms = rebalance_timeout;
            old->m_deadline = now + req->session_timeout_ms;
            bool same = cg_member_protos_equal(old, req);
            if (g->g_state == CG_STABLE && same) {
                /* no rebalance (KIP-345); a leader gets the member list
                 * with skip_assignment (KIP-814, v9): an older client
                 * computes assignments anyway, and its SyncGroup in Stable
                 * gets the stored one back */
                if (g->g_leader && !strcmp(g->g_leader, old->m_id)) resp->skip_assignment = true;
                cg_join_immediate(g, old, w);
                goto out;
            }
            cg_member_set_protos(old, req);
            old->m_join = w;
            if (g->g_state != CG_PREPARING_REBALANCE) cg_prepare_rebalance(c, g);
            cg_maybe_complete_join(c, g);
            goto out;
        }
        if (version >= 4 && !is_static) {
            /* KIP-394: hand out the id; the member joins again with it */
            cg_pending_t *p = calloc(1, sizeof(*p));
            if (!p) abort();
            p->p_id = cg_new_member_id(cl->client_id);
            p->p_deadline = now + req->session_timeout_ms;
            p->p_next = g->g_pending;
            g->g_pending = p;
            resp->member_id = cg_astr(arena, p->p_id);
            cg_join_answer(g, NULL, w, RB_MEMBER_ID_REQUIRED);
            goto out;
        }
        m = calloc(1, sizeof(*m));
        if (!m) abort();
        m->m_id = cg_new_member_id(is_static ? NULL : cl->client_id);
        if (is_static) {
            free(m->m_id);
            char *inst = cg_kstrdup(req->group_instance_id);
            m->m_id = cg_new_member_id(inst);
            free(inst);
        }
        goto add;
    }
    /* a member id is given */
    m = cg_member_find_k(g, req->member_id);
    if (!m) {
        cg_pending_t *p = cg_pending_take(g, req->member_id);
        if (!p) {
            cg_join_answer(g, NULL, w, is_static && cg_member_find_instance(g, req->group_instance_id)
                                           ? RB_FENCED_INSTANCE_ID
                                           : RB_UNKNOWN_MEMBER_ID);
            goto out;
        }
        if (!cg_protocols_ok(g, req, NULL)) {
            cg_join_answer(g, NULL, w, RB_INCONSISTENT_GROUP_PROTOCOL);
            free(p->p_id);
            free(p);
            goto out;
        }
        m = calloc(1, sizeof(*m));
        if (!m) abort();
        m->m_id = p->p_id;
        free(p);
        goto add;
    }
    if (is_static && (!m->m_instance_id || !cg_keq(req->group_instance_id, m->m_instance_id))) {
        cg_join_answer(g, m, w, RB_FENCED_INSTANCE_ID);
        goto out;
    }
    if (!cg_protocols_ok(g, req, m)) {
        cg_join_answer(g, m, w, RB_INCONSISTENT_GROUP_PROTOCOL);
        goto out;
    }
    m->m_session_timeout_ms = req->session_timeout_ms;
    m->m_rebalance_timeout_ms = rebalance_timeout;
    m->m_deadline = now + req->session_timeout_ms;
    switch (g->g_state) {
    case CG_PREPARING_REBALANCE:
        cg_member_set_protos(m, req);
        if (m->m_join) cg_join_answer(g, m, m->m_join, RB_REBALANCE_IN_PROGRESS);
        m->m_join = w;
        cg_maybe_complete_join(c, g);
        break;
    case CG_COMPLETING_REBALANCE:
        if (cg_member_protos_equal(m, req)) {
            cg_join_immediate(g, m, w);
        } else {
            cg_member_set_protos(m, req);
            m->m_join = w;
            cg_prepare_rebalance(c, g);
            cg_maybe_complete_join(c, g);
        }
        break;
    case CG_STABLE:
        if ((g->g_leader && !strcmp(g->g_leader, m->m_id)) || !cg_member_protos_equal(m, req)) {
            cg_member_set_protos(m, req);
            m->m_join = w;
            cg_prepare_rebalance(c, g);
            cg_maybe_complete_join(c, g);
        } else {
            cg_join_immediate(g, m, w);
        }
        break;
    default:
        cg_join_answer(g, m, w, RB_UNKNOWN_MEMBER_ID);
        break;
    }
    goto out;
add:
    m->m_instance_id = is_static ? cg_kstrdup(req->group_instance_id) : NULL;
    m->m_client_id = cg_strndup(cl->client_id ? cl->client_id : "", cl->client_id ? strlen(cl->client_id) : 0);
    m->m_client_host = cg_strndup(cl->client_host ? cl->client_host : "", cl->client_host ? strlen(cl->client_host) : 0);
    m->m_session_timeout_ms = req->session_timeout_ms;
    m->m_rebalance_timeout_ms = rebalance_timeout;
    m->m_deadline = now + req->session_timeout_ms;
    cg_member_set_protos(m, req);
    m->m_join = w;
    /* append at the tail: the first member stays the default leader */
    cg_member_t **tail = &g->g_members;
    while (*tail) tail = &(*tail)->m_next;
    *tail = m;
    g->g_nmembers++;
    if (!g->g_protocol_type) g->g_protocol_type = cg_kstrdup(req->protocol_type);
    if (g->g_state == CG_PREPARING_REBALANCE) {
        if (g->g_delay_until) g->g_delay_until = RB_MIN(now + c->c_cfg.initial_rebalance_delay_ms, g->g_delay_max);
        int64_t dl = now + rebalance_timeout;
        if (dl > g->g_rebalance_deadline) g->g_rebalance_deadline = dl;
    } else {
        cg_prepare_rebalance(c, g);
    }
    cg_maybe_complete_join(c, g);
out:
    pthread_mutex_unlock(&g->g_mu);
}

/* ---- SyncGroup ------------------------------------------------------------------------------------ */

void cg_sync_group(cg_coord_t *c, int16_t version, const kp_sync_group_req_t *req, kp_sync_group_resp_t *resp,
                   rb_arena_t *arena, cg_done_fn done, void *ctx) {
    cg_wait_t *w = cg_wait_new(resp, arena, done, ctx, version);
    cg_group_t *g = req->group_id.len > 0 ? cg_group_get(c, req->group_id.p, (size_t)req->group_id.len, false)
                                          : NULL;
    if (!g) {
        cg_sync_answer(NULL, NULL, w, req->group_id.len > 0 ? RB_UNKNOWN_MEMBER_ID : RB_INVALID_GROUP_ID);
        return;
    }
    int64_t wait_to = -1;
    pthread_mutex_lock(&g->g_mu);
    cg_member_t *m = cg_member_find_k(g, req->member_id);
    if (g->g_state == CG_DEAD || g->g_state == CG_EMPTY || !m) {
        cg_sync_answer(g, NULL, w, RB_UNKNOWN_MEMBER_ID);
    } else if (version >= 3 && req->group_instance_id.len >= 0 &&
               (!m->m_instance_id || !cg_keq(req->group_instance_id, m->m_instance_id))) {
        cg_sync_answer(g, NULL, w, RB_FENCED_INSTANCE_ID);
    } else if (req->generation_id != g->g_generation) {
        cg_sync_answer(g, NULL, w, RB_ILLEGAL_GENERATION);
    } else if (version >= 5 && ((req->protocol_type.len >= 0 && !cg_keq(req->protocol_type, g->g_protocol_type)) ||
                                (req->protocol_name.len >= 0 && !cg_keq(req->protocol_name, g->g_protocol_name)))) {
        cg_sync_answer(g, NULL, w, RB_INCONSISTENT_GROUP_PROTOCOL);
    } else if (g->g_state == CG_PREPARING_REBALANCE) {
        cg_sync_answer(g, NULL, w, RB_REBALANCE_IN_PROGRESS);
    } else if (g->g_state == CG_STABLE) {
        m->m_deadline = cg_now() + m->m_session_timeout_ms;
        cg_sync_answer(g, m, w, RB_NONE);
    } else {
        /* CompletingRebalance: park; the leader's assignments complete all */
        if (m->m_sync) {
            cg_wait_t *old = m->m_sync;
            m->m_sync = NULL;
            cg_sync_answer(g, NULL, old, RB_REBALANCE_IN_PROGRESS);
        }
        m->m_sync = w;
        m->m_deadline = cg_now() + m->m_session_timeout_ms;
        if (g->g_leader && !strcmp(g->g_leader, m->m_id) && !g->g_sync_storing)
            wait_to = cg_sync_complete(c, g, req);
    }
    int32_t gen = g->g_generation;
    pthread_mutex_unlock(&g->g_mu);
    if (wait_to >= 0) { /* outside g_mu: the callback may run right here and takes it */
        cg_sync_store_t *st = malloc(sizeof(*st));
        if (!st) abort();
        st->c = c;
        st->g = g;
        st->generation = gen;
        st_log_sync_wait(c->c_logs[g->g_part], wait_to, cg_sync_store_done, st);
    }
}

/* ---- Heartbeat ----------------------------------------------------------------------------------------- */

void cg_heartbeat(cg_coord_t *c, int16_t version, const kp_heartbeat_req_t *req, kp_heartbeat_resp_t *resp) {
    cg_group_t *g = req->group_id.len > 0 ? cg_group_get(c, req->group_id.p, (size_t)req->group_id.len, false)
                                          : NULL;
    if (!g) {
        resp->error_code = req->group_id.len > 0 ? RB_UNKNOWN_MEMBER_ID : RB_INVALID_GROUP_ID;
        return;
    }
    pthread_mutex_lock(&g->g_mu);
    cg_member_t *m = cg_member_find_k(g, req->member_id);
    if (g->g_state == CG_DEAD) resp->error_code = RB_COORDINATOR_NOT_AVAILABLE;
    else if (g->g_state == CG_EMPTY || !m) resp->error_code = RB_UNKNOWN_MEMBER_ID;
    else if (version >= 3 && req->group_instance_id.len >= 0 &&
             (!m->m_instance_id || !cg_keq(req->group_instance_id, m->m_instance_id)))
        resp->error_code = RB_FENCED_INSTANCE_ID;
    else if (req->generation_id != g->g_generation) resp->error_code = RB_ILLEGAL_GENERATION;
    else {
        m->m_deadline = cg_now() + m->m_session_timeout_ms;
        resp->error_code = g->g_state == CG_PREPARING_REBALANCE ? RB_REBALANCE_IN_PROGRESS : RB_NONE;
    }
    pthread_mutex_unlock(&g->g_mu);
    (void)c;
}

/* ---- LeaveGroup ------------------------------------------------------------------------------------------ */

static int16_t cg_leave_one(cg_coord_t *c, cg_group_t *g, kp_str_t member_id, kp_str_t instance_id) {
    if (instance_id.len >= 0) {
        cg_member_t *m = cg_member_find_instance(g, instance_id);
        if (!m) return RB_UNKNOWN_MEMBER_ID;
        /* an admin removal may name only the instance (member id "" / UNKNOWN) */
        if (member_id.len > 0 && !cg_keq(member_id, m->m_id)) return RB_FENCED_INSTANCE_ID;
        rb_info("group %s: static member %s (%s) left", g->g_id, m->m_instance_id, m->m_id);
        cg_member_leave(c, g, m, RB_UNKNOWN_MEMBER_ID);
        return RB_NONE;
    }
    cg_member_t *m = cg_member_find_k(g, member_id);
    if (!m) {
        cg_pending_t *p = cg_pending_take(g, member_id);
        if (!p) return RB_UNKNOWN_MEMBER_ID;
        free(p->p_id);
        free(p);
        cg_maybe_complete_join(c, g);
        return RB_NONE;
    }
    rb_info("group %s: member %s left", g->g_id, m->m_id);
    cg_member_leave(c, g, m, RB_UNKNOWN_MEMBER_ID);
    return RB_NONE;
}

void cg_leave_group(cg_coord_t *c, int16_t version, const kp_leave_group_req_t *req, kp_leave_group_resp_t *resp,
                    rb_arena_t *arena) {
    cg_group_t *g = req->group_id.len > 0 ? cg_group_get(c, req->group_id.p, (size_t)req->group_id.len, false)
                                          : NULL;
    kp_str_t null_str = {"", -1};
    if (version < 3) {
        if (!g) {
            resp->error_code = req->group_id.len > 0 ? RB_UNKNOWN_MEMBER_ID : RB_INVALID_GROUP_ID;
            return;
        }
        pthread_mutex_lock(&g->g_mu);
        resp->error_code = g->g_state == CG_DEAD ? RB_COORDINATOR_NOT_AVAILABLE
                                                  : cg_leave_one(c, g, req->member_id, null_str);
        pthread_mutex_unlock(&g->g_mu);
        return;
    }
    int32_t n = req->members.n < 0 ? 0 : req->members.n;
    CG_ALLOC_ARR(arena, resp->members, n);
    if (!g) {
        resp->error_code = req->group_id.len > 0 ? RB_UNKNOWN_MEMBER_ID : RB_INVALID_GROUP_ID;
        for (int32_t i = 0; i < n; i++) {
            resp->members.v[i].member_id = req->members.v[i].member_id;
            resp->members.v[i].group_instance_id = req->members.v[i].group_instance_id;
            resp->members.v[i].error_code = resp->error_code;
        }
        return;
    }
    pthread_mutex_lock(&g->g_mu);
    for (int32_t i = 0; i < n; i++) {
        kp_leave_group_req_member_identity_t *mi = &req->members.v[i];
        kp_leave_group_resp_member_response_t *mr = &resp->members.v[i];
        mr->member_id = mi->member_id;
        mr->group_instance_id = mi->group_instance_id;
        mr->error_code = g->g_state == CG_DEAD ? RB_COORDINATOR_NOT_AVAILABLE
                                                : cg_leave_one(c, g, mi->member_id, mi->group_instance_id);
    }
    pthread_mutex_unlock(&g->g_mu);
}

/* ---- ListGroups / DescribeGroups / DeleteGroups ---------------------------------------------------------- */

static bool cg_state_matches(cg_state_t s, const kp_list_groups_req_t *req) {
    if (req->states_filter.n <= 0) return true;
    for (int32_t i = 0; i < req->states_filter.n; i++) {
        kp_str_t f = req->states_filter.v[i];
        const char *n = cg_state_name(s);
        if (f.len >= 0 && strlen(n) == (size_t)f.len && !strncasecmp(n, f.p, (size_t)f.len)) return true;
    }
    return false;
}

static bool cg_type_matches(const kp_list_groups_req_t *req) {
    if (req->types_filter.n <= 0) return true;
    for (int32_t i = 0; i < req->types_filter.n; i++) {
        kp_str_t f = req->types_filter.v[i];
        if (f.len == 7 && !strncasecmp(f.p, "classic", 7)) return true;
    }
    return false;
}

void cg_list_groups(cg_coord_t *c, int16_t version, const kp_list_groups_req_t *req, kp_list_groups_resp_t *resp,
                    rb_arena_t *arena) {
    (void)version;
    pthread_mutex_lock(&c->c_mu);
    size_t cap = c->c_ngroups, n = 0;
    CG_ALLOC_ARR(arena, resp->groups, cap);
    if (cg_type_matches(req)) {
        for (size_t i = 0; i < c->c_nbuckets; i++)
            for (cg_group_t *g = c->c_buckets[i]; g; g = g->g_next) {
                pthread_mutex_lock(&g->g_mu);
                if (g->g_state != CG_DEAD && cg_state_matches(g->g_state, req) && n < cap) {
                    kp_list_groups_resp_listed_group_t *lg = &resp->groups.v[n++];
                    lg->group_id = cg_astr(arena, g->g_id);
                    lg->protocol_type = cg_astr(arena, g->g_protocol_type ? g->g_protocol_type : "consumer");
                    lg->group_state = cg_astr(arena, cg_state_name(g->g_state));
                    lg->group_type = cg_astr(arena, "classic");
                }
                pthread_mutex_unlock(&g->g_mu);
            }
    }
    pthread_mutex_unlock(&c->c_mu);
    resp->groups.n = (int32_t)n;
    resp->error_code = RB_NONE;
}

void cg_describe_groups(cg_coord_t *c, int16_t version, const kp_describe_groups_req_t *req,
                        kp_describe_groups_resp_t *resp, rb_arena_t *arena) {
    (void)version;
    int32_t n = req->groups.n < 0 ? 0 : req->groups.n;
    CG_ALLOC_ARR(arena, resp->groups, n);
    for (int32_t i = 0; i < n; i++) {
        kp_describe_groups_resp_described_group_t *dg = &resp->groups.v[i];
        kp_str_t id = req->groups.v[i];
        dg->group_id = id;
        dg->protocol_type = cg_astr(arena, "");
        dg->protocol_data = cg_astr(arena, "");
        dg->authorized_operations = INT32_MIN;
        if (id.len <= 0) {
            dg->error_code = RB_INVALID_GROUP_ID;
            dg->group_state = cg_astr(arena, "");
            continue;
        }
        cg_group_t *g = cg_group_get(c, id.p, (size_t)id.len, false);
        if (!g) {
            dg->group_state = cg_astr(arena, "Dead");
            continue;
        }
        pthread_mutex_lock(&g->g_mu);
        dg->group_state = cg_astr(arena, cg_state_name(g->g_state));
        dg->protocol_type = cg_astr(arena, g->g_protocol_type ? g->g_protocol_type : "");
        dg->protocol_data = cg_astr(arena, g->g_state == CG_STABLE && g->g_protocol_name ? g->g_protocol_name : "");
        if (g->g_state != CG_DEAD) {
            CG_ALLOC_ARR(arena, dg->members, g->g_nmembers);
            int k = 0;
            for (cg_member_t *m = g->g_members; m; m = m->m_next, k++) {
                kp_describe_groups_resp_described_group_member_t *dm = &dg->members.v[k];
                dm->member_id = cg_astr(arena, m->m_id);
                dm->group_instance_id = cg_astr(arena, m->m_instance_id);
                dm->client_id = cg_astr(arena, m->m_client_id);
                dm->client_host = cg_astr(arena, m->m_client_host);
                const cg_proto_t *p = g->g_state == CG_STABLE ? cg_member_proto(m, g->g_protocol_name) : NULL;
                dm->member_metadata = p ? cg_abytes(arena, p->meta, p->meta_len) : cg_abytes(arena, NULL, 0);
                dm->member_assignment = g->g_state == CG_STABLE
                                            ? cg_abytes(arena, m->m_assignment, m->m_assignment_len)
                                            : cg_abytes(arena, NULL, 0);
            }
        }
        pthread_mutex_unlock(&g->g_mu);
    }
}

/* Empty -> Dead: tombstones for the group and its offsets. g_mu held. */
static int16_t cg_group_delete(cg_coord_t *c, cg_group_t *g) {
    if (g->g_state == CG_DEAD) return RB_GROUP_ID_NOT_FOUND;
    if (g->g_state != CG_EMPTY) return RB_NON_EMPTY_GROUP;
    if (cg_store_group(c, g, true, NULL)) return RB_COORDINATOR_NOT_AVAILABLE;
    cg_offsets_clear(g);
    free(g->g_protocol_type);
    g->g_protocol_type = NULL;
    cg_set_state(g, CG_DEAD);
    rb_info("group %s deleted", g->g_id);
    return RB_NONE;
}

void cg_delete_groups(cg_coord_t *c, int16_t version, const kp_delete_groups_req_t *req,
                      kp_delete_groups_resp_t *resp, rb_arena_t *arena) {
    (void)version;
    int32_t n = req->groups_names.n < 0 ? 0 : req->groups_names.n;
    CG_ALLOC_ARR(arena, resp->results, n);
    for (int32_t i = 0; i < n; i++) {
        kp_str_t id = req->groups_names.v[i];
        resp->results.v[i].group_id = id;
        if (id.len <= 0) {
            resp->results.v[i].error_code = RB_INVALID_GROUP_ID;
            continue;
        }
        cg_group_t *g = cg_group_get(c, id.p, (size_t)id.len, false);
        if (!g) {
            resp->results.v[i].error_code = RB_GROUP_ID_NOT_FOUND;
            continue;
        }
        pthread_mutex_lock(&g->g_mu);
        resp->results.v[i].error_code = cg_group_delete(c, g);
        pthread_mutex_unlock(&g->g_mu);
    }
}

/* ---- timers (G2, G4) ----------------------------------------------------------------------------------- */

static void cg_group_tick(cg_coord_t *c, cg_group_t *g, int64_t now) {
    for (cg_pending_t **pp = &g->g_pending; *pp;) {
        cg_pending_t *p = *pp;
        if (now >= p->p_deadline) {
            *pp = p->p_next;
            free(p->p_id);
            free(p);
        } else {
            pp = &p->p_next;
        }
    }
    for (cg_member_t *m = g->g_members, *n; m; m = n) {
        n = m->m_next;
        if (m->m_join || m->m_sync) continue;
        if (now >= m->m_deadline) {
            rb_info("group %s: member %s session expired (session.timeout.ms %d)", g->g_id, m->m_id,
                    m->m_session_timeout_ms);
            cg_member_leave(c, g, m, RB_UNKNOWN_MEMBER_ID);
            n = g->g_members; /* the list changed; rescan (expired ones go) */
        }
    }
    cg_maybe_complete_join(c, g);
}

static void *cg_timer_main(void *arg) {
    cg_coord_t *c = arg;
    pthread_mutex_lock(&c->c_mu);
    while (!c->c_stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += CG_TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&c->c_cv, &c->c_mu, &ts);
        if (c->c_stopping) break;
        int64_t now = cg_now();
        for (size_t i = 0; i < c->c_nbuckets; i++)
            for (cg_group_t *g = c->c_buckets[i]; g; g = g->g_next) {
                pthread_mutex_lock(&g->g_mu);
                if (g->g_members || g->g_pending) cg_group_tick(c, g, now);
                pthread_mutex_unlock(&g->g_mu);
            }
    }
    pthread_mutex_unlock(&c->c_mu);
    return NULL;
}

/* ---- lifecycle ------------------------------------------------------------------------------------------- */

int cg_coord_open(const cg_config_t *cfg, st_log_t **logs, cg_coord_t **out) {
    cg_coord_t *c = calloc(1, sizeof(*c));
    if (!c) return RB_ERR_NOMEM;
    c->c_cfg = *cfg;
    c->c_nparts = cfg->num_partitions;
    c->c_logs = calloc((size_t)c->c_nparts, sizeof(*c->c_logs));
    if (!c->c_logs) abort();
    memcpy(c->c_logs, logs, sizeof(*logs) * (size_t)c->c_nparts);
    pthread_mutex_init(&c->c_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->c_cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = cg_replay(c);
    if (rc) {
        cg_coord_free(c);
        return rc;
    }
    if (pthread_create(&c->c_timer, NULL, cg_timer_main, c)) {
        cg_coord_free(c);
        return RB_ERR_IO;
    }
    c->c_timer_started = true;
    *out = c;
    return 0;
}

void cg_coord_stop(cg_coord_t *c) {
    if (!c) return;
    pthread_mutex_lock(&c->c_mu);
    c->c_stopping = true;
    pthread_cond_broadcast(&c->c_cv);
    pthread_mutex_unlock(&c->c_mu);
    if (c->c_timer_started) pthread_join(c->c_timer, NULL);
    c->c_timer_started = false;
    pthread_mutex_lock(&c->c_mu);
    for (size_t i = 0; i < c->c_nbuckets; i++)
        for (cg_group_t *g = c->c_buckets[i]; g; g = g->g_next) {
            pthread_mutex_lock(&g->g_mu);
            for (cg_member_t *m = g->g_members; m; m = m->m_next) cg_member_fail_waits(g, m, RB_COORDINATOR_NOT_AVAILABLE);
            pthread_mutex_unlock(&g->g_mu);
        }
    pthread_mutex_unlock(&c->c_mu);
}

void cg_coord_free(cg_coord_t *c) {
    if (!c) return;
    if (c->c_timer_started) cg_coord_stop(c);
    for (size_t i = 0; i < c->c_nbuckets; i++) {
        cg_group_t *g = c->c_buckets[i];
        while (g) {
            cg_group_t *n = g->g_next;
            while (g->g_members) {
                cg_member_t *m = g->g_members;
                g->g_members = m->m_next;
                cg_group_member_free(m);
            }
            while (g->g_pending) {
                cg_pending_t *p = g->g_pending;
                g->g_pending = p->p_next;
                free(p->p_id);
                free(p);
            }
            cg_offsets_clear(g);
            free(g->g_offsets);
            free(g->g_protocol_type);
            free(g->g_protocol_name);
            free(g->g_leader);
            free(g->g_id);
            pthread_mutex_destroy(&g->g_mu);
            free(g);
            g = n;
        }
    }
    free(c->c_buckets);
    free(c->c_logs);
    pthread_mutex_destroy(&c->c_mu);
    pthread_cond_destroy(&c->c_cv);
    free(c);
}

/* ---- restore (replay of GroupMetadataValue v0-v3, G7) ------------------------------------------------------ */

static char *cg_rd_str(rb_rd_t *rd, bool nullable) {
    int16_t n = rb_rd_i16(rd);
    if (!rb_rd_ok(rd)) return NULL;
    if (n < 0) return nullable ? NULL : cg_strndup("", 0);
    const uint8_t *p = rb_rd_bytes(rd, (size_t)n);
    return p ? cg_strndup((const char *)p, (size_t)n) : NULL;
}

static uint8_t *cg_rd_bytes(rb_rd_t *rd, int32_t *len) {
    int32_t n = rb_rd_i32(rd);
    *len = 0;
    if (!rb_rd_ok(rd) || n < 0) return NULL;
    const uint8_t *p = rb_rd_bytes(rd, (size_t)n);
    if (!p) return NULL;
    uint8_t *d = malloc((size_t)(n ? n : 1));
    if (!d) abort();
    if (n) memcpy(d, p, (size_t)n);
    *len = n;
    return d;
}

void cg_group_restore(cg_coord_t *c, const char *id, size_t idlen, rb_rd_t *rd, bool tombstone) {
    cg_group_t *g = cg_group_get(c, id, idlen, true);
    pthread_mutex_lock(&g->g_mu);
    while (g->g_members) {
        cg_member_t *m = g->g_members;
        g->g_members = m->m_next;
        cg_group_member_free(m);
    }
    g->g_nmembers = 0;
    free(g->g_protocol_type);
    free(g->g_protocol_name);
    free(g->g_leader);
    g->g_protocol_type = g->g_protocol_name = g->g_leader = NULL;
    if (tombstone) {
        cg_offsets_clear(g);
        g->g_state = CG_DEAD;
        g->g_generation = 0;
        pthread_mutex_unlock(&g->g_mu);
        return;
    }
    int16_t ver = rb_rd_i16(rd);
    g->g_protocol_type = cg_rd_str(rd, false);
    g->g_generation = rb_rd_i32(rd);
    g->g_protocol_name = cg_rd_str(rd, true);
    g->g_leader = cg_rd_str(rd, true);
    if (ver >= 2) (void)rb_rd_i64(rd); /* current_state_timestamp */
    int32_t n = rb_rd_i32(rd);
    int64_t now = cg_now();
    cg_member_t **tail = &g->g_members;
    for (int32_t i = 0; rb_rd_ok(rd) && i < n; i++) {
        cg_member_t *m = calloc(1, sizeof(*m));
        if (!m) abort();
        m->m_id = cg_rd_str(rd, false);
        if (ver >= 3) m->m_instance_id = cg_rd_str(rd, true);
        m->m_client_id = cg_rd_str(rd, false);
        m->m_client_host = cg_rd_str(rd, false);
        m->m_rebalance_timeout_ms = ver >= 1 ? rb_rd_i32(rd) : 0;
        m->m_session_timeout_ms = rb_rd_i32(rd);
        if (ver < 1) m->m_rebalance_timeout_ms = m->m_session_timeout_ms;
        int32_t sl = 0;
        uint8_t *sub = cg_rd_bytes(rd, &sl);
        m->m_assignment = cg_rd_bytes(rd, &m->m_assignment_len);
        m->m_deadline = now + m->m_session_timeout_ms;
        if (g->g_protocol_name && rb_rd_ok(rd)) {
            m->m_protos = calloc(1, sizeof(*m->m_protos));
            if (!m->m_protos) abort();
            m->m_protos[0].name = cg_strndup(g->g_protocol_name, strlen(g->g_protocol_name));
            m->m_protos[0].meta = sub ? sub : malloc(1);
            m->m_protos[0].meta_len = sl;
            m->m_nprotos = 1;
            sub = NULL;
        }
        free(sub);
        if (!rb_rd_ok(rd) || !m->m_id || !m->m_client_id || !m->m_client_host) {
            cg_group_member_free(m);
            break;
        }
        *tail = m;
        tail = &m->m_next;
        g->g_nmembers++;
    }
    if (!rb_rd_ok(rd)) rb_warn("group %s: malformed group metadata record; members dropped", g->g_id);
    g->g_state = g->g_members ? CG_STABLE : CG_EMPTY;
    if (!g->g_members) {
        free(g->g_leader);
        g->g_leader = NULL;
    }
    pthread_mutex_unlock(&g->g_mu);
}
