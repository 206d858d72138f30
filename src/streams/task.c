/*
 * task.c — a task: one sub-topology running for one input partition. Owns
 * the per-node processor contexts and states, the task's stores, stream time
 * (S4), punctuation schedules, and the walk of a record through the nodes
 * (S2). It writes through a sink callback, so the same task runs under the
 * test driver and (later) under the librdkafka runtime.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "streams/streams_int.h"

static rs_node *NODE(const rs_topology *t, int id) { return g_ptr_array_index(t->g->nodes, id); }

static void flat_children(rs_task *t, int node, GArray *out) {
    const GArray *ch = t->nodes[node]->children;
    for (guint i = 0; i < ch->len; i++) {
        int c = g_array_index(ch, int, i);
        rs_node_kind k = t->nodes[c]->kind;
        if (k == RS_N_TOSTREAM || k == RS_N_MERGE) flat_children(t, c, out);
        else g_array_append_val(out, c);
    }
}

rs_task *rs__task_new(const rs_topology *topo, const rs_config *cfg, const char *app_id, int subtopo,
                      int32_t partition, rs_sink_cb sink, void *sink_arg, int64_t wall_time,
                      const char *state_dir, rs_cache_budget *cache, char *errstr, size_t errlen) {
    rs_task *t = calloc(1, sizeof(*t));
    if (!t) abort();
    const rs_graph *g = topo->g;
    t->topo = topo;
    t->nodes = (rs_node *const *)g->nodes->pdata;
    t->cfg = cfg;
    t->app_id = g_strdup(app_id);
    t->subtopo = subtopo;
    t->partition = partition;
    t->sink = sink;
    t->sink_arg = sink_arg;
    t->stream_time = INT64_MIN;
    t->wall_time = wall_time;
    t->state_dir = g_strdup_printf("%s/%d_%d", state_dir, subtopo, (int)partition);
    t->cache = cache;
    t->puncts = g_array_new(FALSE, FALSE, sizeof(rs_punct));
    t->src_of = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    t->wallclock_ts = !strcmp(rs__config_str(cfg, "default.timestamp.extractor", "record"), "wallclock");
    t->wnodes = g_array_new(FALSE, FALSE, sizeof(int));
    t->sink_topic = calloc(g->nodes->len, sizeof(char *));
    if (!t->sink_topic) abort();
    for (guint i = 0; i < g->nodes->len; i++)
        if (NODE(topo, (int)i)->kind == RS_N_SINK) t->sink_topic[i] = rs__full_topic(app_id, NODE(topo, (int)i), 0);
    t->fwd = calloc(g->nodes->len, sizeof(GArray *));
    if (!t->fwd) abort();
    for (guint i = 0; i < g->nodes->len; i++) {
        if (t->nodes[i]->subtopo != subtopo) continue;
        t->fwd[i] = g_array_new(FALSE, FALSE, sizeof(int));
        flat_children(t, (int)i, t->fwd[i]);
    }
    t->pcs = calloc(g->nodes->len, sizeof(rs_pctx));
    t->stores = calloc(g->stores->len ? g->stores->len : 1, sizeof(rs_kv_store *));
    if (!t->pcs || !t->stores) abort();
    /* stores of this sub-topology, then processors in node order */
    for (guint i = 0; i < g->nodes->len; i++) {
        rs_node *nd = NODE(topo, (int)i);
        if (nd->subtopo != subtopo) continue;
        for (guint k = 0; k < nd->stores->len; k++) {
            int sid = g_array_index(nd->stores, int, k);
            if (t->stores[sid]) continue;
            t->stores[sid] = rs__kv_store_new(t, g_ptr_array_index(g->stores, sid), app_id, errstr, errlen);
            if (!t->stores[sid]) {
                rs__task_free(t);
                return NULL;
            }
        }
    }
    for (guint i = 0; i < g->nodes->len; i++) {
        rs_node *nd = NODE(topo, (int)i);
        rs_pctx *pc = &t->pcs[i];
        pc->task = t;
        pc->node = (int)i;
        if (nd->subtopo != subtopo) continue;
        if (nd->kind == RS_N_TMAP) pc->emit_one = pc->emit_vals = true;
        if (nd->kind == RS_N_TSELECT) pc->emit_one = true;
        if (nd->kind == RS_N_MAP) {
            pc->emit_one = nd->op == RS_OP_MAP || nd->op == RS_OP_MAP_VALUES;
            pc->emit_vals = nd->op == RS_OP_MAP_VALUES || nd->op == RS_OP_FLAT_MAP_VALUES;
        }
        if (nd->kind == RS_N_PROCESS && nd->pdef.init) pc->state = nd->pdef.init(pc, nd->pdef.ctx);
        pc->inited = nd->kind == RS_N_PROCESS;
        if (nd->kind == RS_N_WINDOW_AGG) {
            rs__window_init(t, nd, pc);
            g_array_append_val(t->wnodes, pc->node);
        }
    }
    return t;
}

void rs__task_free(rs_task *t) {
    if (!t) return;
    const rs_graph *g = t->topo->g;
    for (guint i = 0; i < g->nodes->len; i++) {
        rs_node *nd = NODE(t->topo, (int)i);
        rs_pctx *pc = &t->pcs[i];
        if (pc->inited && nd->pdef.close) nd->pdef.close(pc->state);
        rs_buf_free(&pc->ebuf);
        free(pc->eq);
        rs__window_index_free(pc);
        for (int k = 0; k < 4; k++) rs_buf_free(&pc->wb[k]);
        g_free(t->sink_topic[i]);
        if (t->fwd[i]) g_array_free(t->fwd[i], TRUE);
    }
    free(t->fwd);
    for (guint i = 0; i < g->stores->len; i++) rs__kv_store_free(t->stores[i]);
    free(t->stores);
    free(t->pcs);
    g_array_free(t->puncts, TRUE);
    g_hash_table_destroy(t->src_of);
    g_free(t->last_topic_copy);
    g_array_free(t->wnodes, TRUE);
    free(t->sink_topic);
    g_free(t->app_id);
    g_free(t->state_dir);
    free(t);
}

static void process_node(rs_task *t, int id, const rs_record *r);

void rs__forward(rs_task *t, int node, const rs_record *r) {
    const GArray *f = t->fwd[node];
    const int *c = (const int *)(const void *)f->data;
    for (guint i = 0; i < f->len; i++) process_node(t, c[i], r);
}

void rs__forward_change(rs_task *t, int node, const rs_record *r, const rs_bytes *old) {
    const GArray *f = t->fwd[node];
    const int *c = (const int *)(const void *)f->data;
    const rs_bytes *saved = t->old;
    for (guint i = 0; i < f->len; i++) {
        rs_node_kind k = t->nodes[c[i]]->kind;
        t->old = (k == RS_N_TFILTER || k == RS_N_TMAP || k == RS_N_TSELECT) ? old : NULL; /* S5 */
        process_node(t, c[i], r);
    }
    t->old = saved;
}

void rs_emit(rs_emitter *e, rs_bytes key, rs_bytes value) {
    rs_pctx *pc = e->pc;
    if (pc->emit_one && pc->eqn) return; /* map: exactly one */
    if (pc->eqn + 4 > pc->eqcap) {
        pc->eqcap = pc->eqcap ? pc->eqcap * 2 : 16;
        pc->eq = realloc(pc->eq, pc->eqcap * sizeof(size_t));
        if (!pc->eq) abort();
    }
    size_t *q = pc->eq + pc->eqn;
    pc->eqn += 4;
    if (pc->emit_vals) key = RS_NULL_BYTES; /* the input's key is kept */
    q[0] = pc->ebuf.len;
    q[1] = key.data ? key.len : SIZE_MAX;
    if (key.data) rs_buf_append(&pc->ebuf, key.data, key.len);
    q[2] = pc->ebuf.len;
    q[3] = value.data ? value.len : SIZE_MAX;
    if (value.data) rs_buf_append(&pc->ebuf, value.data, value.len);
}

static rs_bytes slice_at(const rs_buf *b, size_t off, size_t len) {
    if (len == SIZE_MAX) return RS_NULL_BYTES;
    return (rs_bytes){b->data ? b->data + off : (const uint8_t *)"", len};
}

static void run_map(rs_task *t, rs_node *nd, rs_pctx *pc, const rs_record *r) {
    rs_emitter e = {pc};
    pc->ebuf.len = 0; /* S2: this node is not re-entered, the buffer is ours */
    pc->eqn = 0;
    ((rs_map_fn)nd->fn)(r, &e, nd->ctx);
    size_t n = pc->eqn / 4;
    for (size_t i = 0; i < n; i++) {
        const size_t *q = pc->eq + i * 4;
        rs_record o = *r;
        if (!pc->emit_vals) o.key = slice_at(&pc->ebuf, q[0], q[1]);
        o.value = slice_at(&pc->ebuf, q[2], q[3]);
        rs__forward(t, nd->id, &o);
    }
}

void rs__agg_step(const rs_node *nd, rs_bytes key, rs_bytes value, const rs_bytes *old, rs_buf *out) {
    switch (nd->op) {
    case RS_AGG_COUNT: {
        int64_t c = 0;
        if (old && rs_bytes_to_int64(*old, &c)) c = 0;
        uint8_t b[8];
        rs_buf_append(out, rs_int64_to_bytes(c + 1, b).data, 8);
        break;
    }
    case RS_AGG_REDUCE:
        if (old) ((rs_reducer_fn)nd->fn)(*old, value, out, nd->ctx);
        else rs_buf_append(out, value.data, value.len);
        break;
    case RS_AGG_AGGREGATE:
        if (old) {
            ((rs_aggregator_fn)nd->fn2)(key, value, *old, out, nd->ctx);
        } else {
            rs_buf init;
            rs_buf_init(&init);
            ((rs_initializer_fn)nd->fn)(&init, nd->ctx);
            ((rs_aggregator_fn)nd->fn2)(key, value, rs_buf_bytes(&init), out, nd->ctx);
            rs_buf_free(&init);
        }
        break;
    }
}

/* ---- table operations (S5) ---- */

void rs__change_encode(rs_buf *out, const rs_bytes *nv, const rs_bytes *ov) {
    uint8_t f = (uint8_t)((nv ? RS_CHG_NEW : 0) | (ov ? RS_CHG_OLD : 0));
    rs_buf_append(out, &f, 1);
    if (nv && ov) {
        uint8_t l[4] = {(uint8_t)(nv->len >> 24), (uint8_t)(nv->len >> 16), (uint8_t)(nv->len >> 8),
                        (uint8_t)nv->len};
        rs_buf_append(out, l, 4);
    }
    if (nv) rs_buf_append(out, nv->data, nv->len);
    if (ov) rs_buf_append(out, ov->data, ov->len);
}

int rs__change_decode(rs_bytes in, rs_bytes *nv, rs_bytes *ov) {
    *nv = *ov = RS_NULL_BYTES;
    if (!in.data || in.len < 1) return -1;
    const uint8_t *p = in.data;
    uint8_t f = p[0];
    rs_bytes rest = {p + 1, in.len - 1};
    switch (f) {
    case RS_CHG_NEW:
        *nv = rest;
        return 0;
    case RS_CHG_OLD:
        *ov = rest;
        return 0;
    case RS_CHG_NEW | RS_CHG_OLD: {
        if (rest.len < 4) return -1;
        size_t n = (size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | p[4];
        if (n > rest.len - 4) return -1;
        *nv = (rs_bytes){p + 5, n};
        *ov = (rs_bytes){p + 5 + n, rest.len - 4 - n};
        return 0;
    }
    default:
        return -1;
    }
}

/* a map-like user function on (key, value): the first emission copied into
 * k and v (k may be NULL: not kept); false when it emitted nothing */
static bool map_one(rs_node *nd, rs_pctx *pc, const rs_record *r, rs_bytes value, rs_buf *k, bool *knull,
                    rs_buf *v, bool *vnull) {
    rs_record in = *r;
    in.value = value;
    rs_emitter e = {pc};
    pc->ebuf.len = 0;
    pc->eqn = 0;
    ((rs_map_fn)nd->fn)(&in, &e, nd->ctx);
    if (!pc->eqn) return false;
    const size_t *q = pc->eq;
    if (k) {
        *knull = q[1] == SIZE_MAX;
        if (!*knull) rs_buf_append(k, slice_at(&pc->ebuf, q[0], q[1]).data, q[1]);
    }
    *vnull = q[3] == SIZE_MAX;
    if (!*vnull) rs_buf_append(v, slice_at(&pc->ebuf, q[2], q[3]).data, q[3]);
    return true;
}

static bool table_match(rs_node *nd, const rs_record *r, rs_bytes value) {
    rs_record in = *r;
    in.value = value;
    return ((rs_predicate_fn)nd->fn)(&in, nd->ctx) != nd->negate;
}

/* KTableFilter: a non-matching row is a delete downstream */
static void run_table_filter(rs_task *t, rs_node *nd, const rs_record *r) {
    const rs_bytes *old = t->old;
    rs_record o = *r;
    if (r->value.data && !table_match(nd, r, r->value)) o.value = RS_NULL_BYTES;
    const rs_bytes *oo = old && old->data && table_match(nd, r, *old) ? old : NULL;
    if (nd->send_old && !o.value.data && !oo) return; /* nothing was or is visible */
    rs__forward_change(t, nd->id, &o, nd->send_old ? oo : NULL);
}

/* KTableMapValues: new and (when sent) old values mapped; a delete stays one */
static void run_table_map(rs_task *t, rs_node *nd, rs_pctx *pc, const rs_record *r) {
    const rs_bytes *old = t->old;
    rs_buf nb, ob;
    rs_buf_init(&nb);
    rs_buf_init(&ob);
    bool nnull = true, onull = true;
    if (r->value.data && !map_one(nd, pc, r, r->value, NULL, NULL, &nb, &nnull)) nnull = true;
    if (nd->send_old && old && old->data && !map_one(nd, pc, r, *old, NULL, NULL, &ob, &onull)) onull = true;
    rs_record o = *r;
    o.value = nnull ? RS_NULL_BYTES : rs_buf_bytes(&nb);
    rs_bytes ov = rs_buf_bytes(&ob);
    rs__forward_change(t, nd->id, &o, onull ? NULL : &ov);
    rs_buf_free(&nb);
    rs_buf_free(&ob);
}

/* KTableRepartitionMap: the old row's group loses it, the new row's group
 * gains it; one record when the group stays the same, else subtraction
 * first, then addition (each goes to its key's partition) */
static void run_table_select(rs_task *t, rs_node *nd, rs_pctx *pc, const rs_record *r) {
    const rs_bytes *old = t->old;
    rs_buf ok, ov, nk, nv, enc;
    rs_buf_init(&ok), rs_buf_init(&ov), rs_buf_init(&nk), rs_buf_init(&nv), rs_buf_init(&enc);
    bool oknull = true, ovnull = true, nknull = true, nvnull = true;
    bool has_old = old && old->data && map_one(nd, pc, r, *old, &ok, &oknull, &ov, &ovnull) && !oknull;
    bool has_new = r->value.data && map_one(nd, pc, r, r->value, &nk, &nknull, &nv, &nvnull) && !nknull;
    /* a null grouped value is nothing to add or subtract */
    has_old = has_old && !ovnull;
    has_new = has_new && !nvnull;
    rs_bytes okb = rs_buf_bytes(&ok), ovb = rs_buf_bytes(&ov), nkb = rs_buf_bytes(&nk), nvb = rs_buf_bytes(&nv);
    rs_record o = *r;
    if (has_old && has_new && okb.len == nkb.len && !memcmp(okb.data, nkb.data, nkb.len)) {
        rs__change_encode(&enc, &nvb, &ovb);
        o.key = nkb;
        o.value = rs_buf_bytes(&enc);
        rs__forward_change(t, nd->id, &o, NULL);
    } else {
        if (has_old) {
            rs__change_encode(&enc, NULL, &ovb);
            o.key = okb;
            o.value = rs_buf_bytes(&enc);
            rs__forward_change(t, nd->id, &o, NULL);
        }
        if (has_new) {
            enc.len = 0;
            rs__change_encode(&enc, &nvb, NULL);
            o.key = nkb;
            o.value = rs_buf_bytes(&enc);
            rs__forward_change(t, nd->id, &o, NULL);
        }
    }
    rs_buf_free(&ok), rs_buf_free(&ov), rs_buf_free(&nk), rs_buf_free(&nv), rs_buf_free(&enc);
}

/* KTableAggregate / KTableReduce: subtract the old row, then add the new */
static void run_table_aggregate(rs_task *t, rs_node *nd, const rs_record *r) {
    rs_bytes nv, ov;
    if (!r->key.data || rs__change_decode(r->value, &nv, &ov)) {
        t->m.skipped++;
        return;
    }
    rs_kv_store *s = t->stores[g_array_index(nd->stores, int, 0)];
    rs_buf cur, mid, out;
    rs_buf_init(&cur), rs_buf_init(&mid), rs_buf_init(&out);
    bool found = rs_kv_get(s, r->key, &cur) == 1;
    if (!found && nd->op != RS_AGG_REDUCE) { /* count and aggregate start from the initial value */
        if (nd->op == RS_AGG_COUNT) {
            uint8_t z[8];
            rs_buf_append(&cur, rs_int64_to_bytes(0, z).data, 8);
        } else {
            ((rs_initializer_fn)nd->fn)(&cur, nd->ctx);
        }
        found = true;
    }
    rs_buf *agg = &cur; /* the aggregate so far (absent: !found) */
    if (ov.data && found) {
        switch (nd->op) {
        case RS_AGG_COUNT: {
            int64_t c = 0;
            if (rs_bytes_to_int64(rs_buf_bytes(agg), &c)) c = 0;
            uint8_t b[8];
            rs_buf_append(&mid, rs_int64_to_bytes(c - 1, b).data, 8);
            break;
        }
        case RS_AGG_REDUCE:
            ((rs_reducer_fn)nd->fn2)(rs_buf_bytes(agg), ov, &mid, nd->ctx);
            break;
        case RS_AGG_AGGREGATE:
            ((rs_aggregator_fn)nd->fn3)(r->key, ov, rs_buf_bytes(agg), &mid, nd->ctx);
            break;
        }
        agg = &mid;
    }
    if (nv.data) {
        switch (nd->op) {
        case RS_AGG_COUNT: {
            int64_t c = 0;
            if (rs_bytes_to_int64(rs_buf_bytes(agg), &c)) c = 0;
            uint8_t b[8];
            rs_buf_append(&out, rs_int64_to_bytes(c + 1, b).data, 8);
            break;
        }
        case RS_AGG_REDUCE:
            if (found) ((rs_reducer_fn)nd->fn)(rs_buf_bytes(agg), nv, &out, nd->ctx);
            else rs_buf_append(&out, nv.data, nv.len);
            break;
        case RS_AGG_AGGREGATE:
            ((rs_aggregator_fn)nd->fn2)(r->key, nv, rs_buf_bytes(agg), &out, nd->ctx);
            break;
        }
        agg = &out;
    }
    if (found || nv.data) rs__kv_put_ts(s, r->key, rs_buf_bytes(agg), r->timestamp);
    rs_buf_free(&cur), rs_buf_free(&mid), rs_buf_free(&out);
}

static void run_aggregate(rs_task *t, rs_node *nd, const rs_record *r) {
    if (!r->key.data || !r->value.data) { /* Kafka skips null keys and values here */
        t->m.dropped++;
        return;
    }
    rs_kv_store *s = t->stores[g_array_index(nd->stores, int, 0)];
    rs_buf out;
    rs_buf_init(&out);
    rs__kv_aggregate(s, nd, r->key, r->key, r->value, r->timestamp, &out);
    rs_buf_free(&out);
}

static void process_node(rs_task *t, int id, const rs_record *r) {
    rs_node *nd = t->nodes[id];
    rs_pctx *pc = &t->pcs[id];
    switch (nd->kind) {
    case RS_N_SOURCE:
    case RS_N_MERGE:
    case RS_N_BRANCH_CHILD:
    case RS_N_TOSTREAM:
        rs__forward(t, id, r);
        break;
    case RS_N_FILTER:
        if (((rs_predicate_fn)nd->fn)(r, nd->ctx) != nd->negate) rs__forward(t, id, r);
        break;
    case RS_N_MAP:
        run_map(t, nd, pc, r);
        break;
    case RS_N_KEY: {
        rs_buf k;
        rs_buf_init(&k);
        ((rs_key_fn)nd->fn)(r, &k, nd->ctx);
        rs_record o = *r;
        o.key = rs_buf_bytes(&k);
        rs__forward(t, id, &o);
        rs_buf_free(&k);
        break;
    }
    case RS_N_PEEK:
        ((rs_foreach_fn)nd->fn)(r, nd->ctx);
        rs__forward(t, id, r);
        break;
    case RS_N_FOREACH:
        ((rs_foreach_fn)nd->fn)(r, nd->ctx);
        break;
    case RS_N_BRANCH: {
        size_t i = 0;
        for (; i < nd->npreds; i++)
            if (nd->preds[i](r, nd->pctxs[i])) break;
        if (i < nd->npreds || nd->with_default) process_node(t, g_array_index(nd->children, int, i), r);
        break;
    }
    case RS_N_SINK: {
        const char *topic = t->sink_topic[id];
        int32_t part = -1; /* -1: the client hashes the key (murmur2, as Java) */
        if (nd->produced.partitioner) {
            int32_t n = t->partitions ? t->partitions(t->sink_arg, topic) : 1;
            part = n > 0 ? nd->produced.partitioner(r, n, nd->produced.partitioner_ctx) : -1;
            if (n > 0 && (part < 0 || part >= n)) { /* a partitioner bug: not our record to lose */
                t->m.dropped++;
                break;
            }
        }
        t->sink(t->sink_arg, topic, part, r, NULL);
        break;
    }
    case RS_N_AGGREGATE:
        run_aggregate(t, nd, r);
        break;
    case RS_N_TABLE:
        if (!r->key.data) {
            t->m.dropped++;
            break;
        }
        rs__kv_put_ts(t->stores[g_array_index(nd->stores, int, 0)], r->key, r->value, r->timestamp);
        break;
    case RS_N_PROCESS:
        nd->pdef.process(pc, r, pc->state);
        break;
    case RS_N_WINDOW_AGG:
        rs__window_process(t, nd, pc, r);
        break;
    case RS_N_TFILTER:
        run_table_filter(t, nd, r);
        break;
    case RS_N_TMAP:
        run_table_map(t, nd, pc, r);
        break;
    case RS_N_TSELECT:
        run_table_select(t, nd, pc, r);
        break;
    case RS_N_TAGG:
        run_table_aggregate(t, nd, r);
        break;
    }
}

static void punctuate(rs_task *t, rs_punctuation_type type, int64_t now) {
    for (guint i = 0; i < t->puncts->len; i++) {
        rs_punct *p = &g_array_index(t->puncts, rs_punct, i);
        if (p->type != type) continue;
        if (p->next == INT64_MIN) p->next = now + p->interval; /* first observation of time */
        while (now >= p->next) {
            int64_t due = p->next;
            p->next += p->interval;
            t->m.punctuate_total++;
            rs_punctuate_fn fn = p->fn;
            int node = p->node;
            fn(&t->pcs[node], due, t->pcs[node].state);
            p = &g_array_index(t->puncts, rs_punct, i); /* fn may have scheduled more */
        }
    }
}

int rs__task_source(rs_task *t, const char *topic) {
    /* the same name as last time (every record of a single-source driver):
     * a pointer test and a strcmp instead of hashing the name */
    if (topic == t->last_topic && !strcmp(topic, t->last_topic_copy)) return t->last_src;
    gpointer v;
    int src;
    if (g_hash_table_lookup_extended(t->src_of, topic, NULL, &v)) {
        src = GPOINTER_TO_INT(v) - 1;
    } else {
        src = rs__source_for(t->topo, t->subtopo, t->app_id, topic);
        if (g_hash_table_size(t->src_of) < 4096) /* bounded: a pattern may match many names */
            g_hash_table_insert(t->src_of, g_strdup(topic), GINT_TO_POINTER(src + 1));
    }
    g_free(t->last_topic_copy);
    t->last_topic_copy = g_strdup(topic);
    t->last_topic = topic;
    t->last_src = src;
    return src;
}

/* a serde's C value fits in 256 bytes (documented with rs_consumed) */
static bool decodes(const rs_serde *serde, rs_bytes b) {
    if (!serde || !b.data) return true;
    _Alignas(max_align_t) char obj[256];
    if (rs_deserialize(serde, b, obj)) return false;
    rs_serde_free(serde, obj);
    return true;
}

int rs__task_process(rs_task *t, const char *topic, const rs_record *in) {
    int src = rs__task_source(t, topic);
    if (src < 0) return -1;
    rs_node *nd = NODE(t->topo, src);
    const rs_consumed *c = &nd->consumed;
    /* serdes validate input: undecodable records are skipped (LogAndContinue) */
    if (!decodes(c->key_serde, in->key) || !decodes(c->value_serde, in->value)) {
        t->m.skipped++;
        return 0;
    }
    rs_record r = *in;
    int64_t ptime = t->stream_time == INT64_MIN ? -1 : t->stream_time;
    if (c->timestamp_fn) r.timestamp = c->timestamp_fn(in, ptime, c->timestamp_ctx);
    else if (t->cfg && t->cfg->ts_fn) r.timestamp = t->cfg->ts_fn(in, ptime, t->cfg->ts_ctx);
    else if (t->wallclock_ts)
        r.timestamp = t->wall_time;
    if (r.timestamp < 0) { /* invalid timestamp: dropped, as Kafka's extractors do */
        t->m.dropped++;
        return 0;
    }
    if (r.timestamp > t->stream_time) t->stream_time = r.timestamp;
    t->m.process_total++;
    t->cur = &r;
    process_node(t, src, &r);
    for (guint i = 0; i < t->wnodes->len; i++) {
        int w = g_array_index(t->wnodes, int, i);
        rs__window_close(t, t->nodes[w], &t->pcs[w]);
    }
    t->cur = NULL;
    punctuate(t, RS_PUNCT_STREAM_TIME, t->stream_time);
    return 0;
}

void rs__task_commit(rs_task *t) {
    const rs_graph *g = t->topo->g;
    for (guint i = 0; i < g->stores->len; i++)
        if (t->stores[i]) rs__kv_store_flush(t->stores[i]);
}

void rs__task_reinit_windows(rs_task *t) {
    const rs_graph *g = t->topo->g;
    for (guint i = 0; i < g->nodes->len; i++) {
        rs_node *nd = NODE(t->topo, (int)i);
        if (nd->subtopo != t->subtopo || nd->kind != RS_N_WINDOW_AGG) continue;
        rs__window_index_free(&t->pcs[i]);
        rs__window_init(t, nd, &t->pcs[i]);
    }
}

void rs__task_wall_clock(rs_task *t, int64_t now) {
    t->wall_time = now;
    punctuate(t, RS_PUNCT_WALL_CLOCK, now);
}

/* ---- processor context ---- */

void rs_forward(rs_pctx *pc, rs_bytes key, rs_bytes value, int64_t timestamp) {
    rs_task *t = pc->task;
    rs_record r = {.key = key, .value = value, .timestamp = timestamp, .partition = t->partition, .offset = -1};
    if (t->cur) {
        r.headers = t->cur->headers, r.header_count = t->cur->header_count;
        r.topic = t->cur->topic, r.partition = t->cur->partition, r.offset = t->cur->offset;
    }
    const rs_record *saved = t->cur;
    t->cur = &r;
    rs__forward(t, pc->node, &r);
    t->cur = saved;
}

rs_kv_store *rs_pctx_kv_store(rs_pctx *pc, const char *name) {
    rs_node *nd = NODE(pc->task->topo, pc->node);
    for (guint i = 0; i < nd->stores->len; i++) {
        int sid = g_array_index(nd->stores, int, i);
        if (!strcmp(((rs_store_def *)g_ptr_array_index(pc->task->topo->g->stores, sid))->name, name))
            return pc->task->stores[sid];
    }
    return NULL;
}

int rs_pctx_schedule(rs_pctx *pc, int64_t interval_ms, rs_punctuation_type type, rs_punctuate_fn fn) {
    if (interval_ms < 1 || !fn) return -1;
    rs_task *t = pc->task;
    int64_t now = type == RS_PUNCT_WALL_CLOCK ? t->wall_time : t->stream_time;
    rs_punct p = {.node = pc->node, .interval = interval_ms, .type = type, .fn = fn,
                  .next = now == INT64_MIN ? INT64_MIN : now + interval_ms};
    g_array_append_val(t->puncts, p);
    return 0;
}

int64_t rs_pctx_stream_time(const rs_pctx *pc) { return pc->task->stream_time; }
int32_t rs_pctx_partition(const rs_pctx *pc) { return pc->task->partition; }
