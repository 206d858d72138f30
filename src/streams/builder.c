/*
 * builder.c — the DSL: handles over a graph of nodes and stores; building a
 * topology (sub-topologies, store wiring, checks) and describing it as text
 * in the shape of Kafka Streams' Topology#describe().
 *
 * Invariant: node ids are indexes into g->nodes, store ids into g->stores;
 * names come from one counter, as Kafka's InternalStreamsBuilder does, so the
 * same program always gets the same names.
 */
#include <stdlib.h>
#include <string.h>

#include "streams/streams_int.h"

static void *xcalloc(size_t n, size_t sz) {
    void *p = calloc(n ? n : 1, sz);
    if (!p) abort();
    return p;
}

static void node_free(gpointer p) {
    rs_node *n = p;
    g_free(n->name);
    g_array_free(n->children, TRUE);
    g_array_free(n->parents, TRUE);
    for (size_t i = 0; i < n->ntopics; i++) g_free(n->topics[i]);
    free(n->topics);
    if (n->is_pattern) regfree(&n->re);
    g_free(n->topic);
    g_free(n->late_topic);
    free(n->preds);
    free(n->pctxs);
    g_array_free(n->stores, TRUE);
    free(n);
}

static void store_free(gpointer p) {
    rs_store_def *s = p;
    g_free(s->name);
    free(s);
}

static rs_graph *graph_new(void) {
    rs_graph *g = xcalloc(1, sizeof(*g));
    g->nodes = g_ptr_array_new_with_free_func(node_free);
    g->stores = g_ptr_array_new_with_free_func(store_free);
    return g;
}

static void graph_free(rs_graph *g) {
    if (!g) return;
    g_ptr_array_free(g->nodes, TRUE);
    g_ptr_array_free(g->stores, TRUE);
    free(g);
}

static rs_node *NODE(const rs_graph *g, int id) { return g_ptr_array_index(g->nodes, id); }

rs_builder *rs_builder_new(void) {
    rs_builder *b = xcalloc(1, sizeof(*b));
    b->g = graph_new();
    b->handles = g_ptr_array_new_with_free_func(free);
    return b;
}

void rs_builder_free(rs_builder *b) {
    if (!b) return;
    graph_free(b->g);
    g_ptr_array_free(b->handles, TRUE);
    free(b);
}

static char *gen_name(rs_graph *g, const char *prefix) {
    return g_strdup_printf("%s%010d", prefix, g->next_index++);
}

static int add_node(rs_builder *b, rs_node_kind kind, const char *prefix, const char *name, int parent) {
    rs_node *n = xcalloc(1, sizeof(*n));
    n->id = (int)b->g->nodes->len;
    n->kind = kind;
    n->name = name ? g_strdup(name) : gen_name(b->g, prefix);
    n->children = g_array_new(FALSE, FALSE, sizeof(int));
    n->parents = g_array_new(FALSE, FALSE, sizeof(int));
    n->stores = g_array_new(FALSE, FALSE, sizeof(int));
    n->subtopo = -1;
    g_ptr_array_add(b->g->nodes, n);
    if (parent >= 0) {
        g_array_append_val(NODE(b->g, parent)->children, n->id);
        g_array_append_val(n->parents, parent);
    }
    return n->id;
}

static int add_store(rs_builder *b, const char *name, const rs_materialized *m, int owner) {
    rs_store_def *s = xcalloc(1, sizeof(*s));
    s->id = (int)b->g->stores->len;
    if (m) s->m = *m;
    s->name = (m && m->store_name) ? g_strdup(m->store_name)
              : name               ? g_strdup(name)
                                   : NULL;
    s->owner = owner;
    g_ptr_array_add(b->g->stores, s);
    return s->id;
}

static rs_stream *stream_handle(rs_builder *b, int node) {
    rs_stream *s = xcalloc(1, sizeof(*s));
    s->b = b;
    s->node = node;
    g_ptr_array_add(b->handles, s);
    return s;
}

static rs_table *table_handle(rs_builder *b, int node, int store) {
    rs_table *t = xcalloc(1, sizeof(*t));
    t->b = b;
    t->node = node;
    t->store = store;
    g_ptr_array_add(b->handles, t);
    return t;
}

rs_stream *rs_stream_from(rs_builder *b, const char *const *topics, size_t n, const rs_consumed *c) {
    if (!b->g || !topics || !n) return NULL;
    int id = add_node(b, RS_N_SOURCE, "KSTREAM-SOURCE-", NULL, -1);
    rs_node *nd = NODE(b->g, id);
    nd->topics = xcalloc(n, sizeof(char *));
    for (size_t i = 0; i < n; i++) nd->topics[i] = g_strdup(topics[i]);
    nd->ntopics = n;
    if (c) nd->consumed = *c;
    return stream_handle(b, id);
}

rs_stream *rs_stream_from_topic(rs_builder *b, const char *topic) { return rs_stream_from(b, &topic, 1, NULL); }

rs_stream *rs_stream_from_pattern(rs_builder *b, const char *regex, const rs_consumed *c) {
    if (!b->g || !regex) return NULL;
    regex_t re;
    if (regcomp(&re, regex, REG_EXTENDED | REG_NOSUB)) return NULL;
    rs_stream *s = rs_stream_from(b, &regex, 1, c);
    rs_node *nd = NODE(b->g, s->node);
    nd->is_pattern = true;
    nd->re = re;
    return s;
}

rs_table *rs_table_from(rs_builder *b, const char *topic, const rs_consumed *c, const rs_materialized *m) {
    rs_stream *s = rs_stream_from(b, &topic, 1, c);
    if (!s) return NULL;
    int id = add_node(b, RS_N_TABLE, "KTABLE-SOURCE-", NULL, s->node);
    char *sname = (m && m->store_name) ? NULL : g_strdup_printf("%s-STATE-STORE-%010d", topic, b->g->next_index++);
    int st = add_store(b, sname, m, id);
    g_free(sname);
    g_array_append_val(NODE(b->g, id)->stores, st);
    return table_handle(b, id, st);
}

static rs_stream *unary(rs_stream *s, rs_node_kind kind, const char *prefix, const char *name, void *fn,
                        void *ctx) {
    if (!s || !s->b->g) return NULL;
    int id = add_node(s->b, kind, prefix, name, s->node);
    NODE(s->b->g, id)->fn = fn;
    NODE(s->b->g, id)->ctx = ctx;
    return stream_handle(s->b, id);
}

rs_stream *rs_stream_filter(rs_stream *s, rs_predicate_fn fn, void *ctx, const char *name) {
    return unary(s, RS_N_FILTER, "KSTREAM-FILTER-", name, (void *)fn, ctx);
}
rs_stream *rs_stream_filter_not(rs_stream *s, rs_predicate_fn fn, void *ctx, const char *name) {
    rs_stream *r = unary(s, RS_N_FILTER, "KSTREAM-FILTER-", name, (void *)fn, ctx);
    if (r) NODE(r->b->g, r->node)->negate = true;
    return r;
}
static rs_stream *map_like(rs_stream *s, int op, const char *prefix, rs_map_fn fn, void *ctx, const char *name) {
    rs_stream *r = unary(s, RS_N_MAP, prefix, name, (void *)fn, ctx);
    if (r) NODE(r->b->g, r->node)->op = op;
    return r;
}
rs_stream *rs_stream_map(rs_stream *s, rs_map_fn fn, void *ctx, const char *name) {
    return map_like(s, RS_OP_MAP, "KSTREAM-MAP-", fn, ctx, name);
}
rs_stream *rs_stream_map_values(rs_stream *s, rs_map_fn fn, void *ctx, const char *name) {
    return map_like(s, RS_OP_MAP_VALUES, "KSTREAM-MAPVALUES-", fn, ctx, name);
}
rs_stream *rs_stream_flat_map(rs_stream *s, rs_map_fn fn, void *ctx, const char *name) {
    return map_like(s, RS_OP_FLAT_MAP, "KSTREAM-FLATMAP-", fn, ctx, name);
}
rs_stream *rs_stream_flat_map_values(rs_stream *s, rs_map_fn fn, void *ctx, const char *name) {
    return map_like(s, RS_OP_FLAT_MAP_VALUES, "KSTREAM-FLATMAPVALUES-", fn, ctx, name);
}
rs_stream *rs_stream_select_key(rs_stream *s, rs_key_fn fn, void *ctx, const char *name) {
    return unary(s, RS_N_KEY, "KSTREAM-KEY-SELECT-", name, (void *)fn, ctx);
}
rs_stream *rs_stream_peek(rs_stream *s, rs_foreach_fn fn, void *ctx, const char *name) {
    return unary(s, RS_N_PEEK, "KSTREAM-PEEK-", name, (void *)fn, ctx);
}
void rs_stream_foreach(rs_stream *s, rs_foreach_fn fn, void *ctx, const char *name) {
    unary(s, RS_N_FOREACH, "KSTREAM-FOREACH-", name, (void *)fn, ctx);
}

rs_stream *rs_stream_merge(rs_stream *a, rs_stream *b, const char *name) {
    if (!a || !b || a->b != b->b || !a->b->g) return NULL;
    int id = add_node(a->b, RS_N_MERGE, "KSTREAM-MERGE-", name, a->node);
    g_array_append_val(NODE(a->b->g, b->node)->children, id);
    g_array_append_val(NODE(a->b->g, id)->parents, b->node);
    return stream_handle(a->b, id);
}

void rs_stream_split(rs_stream *s, size_t n, const rs_predicate_fn *preds, void *const *ctxs, bool with_default,
                     rs_stream **out) {
    if (!s || !s->b->g) return;
    int id = add_node(s->b, RS_N_BRANCH, "KSTREAM-BRANCH-", NULL, s->node);
    rs_node *nd = NODE(s->b->g, id);
    nd->preds = xcalloc(n, sizeof(*nd->preds));
    nd->pctxs = xcalloc(n, sizeof(void *));
    for (size_t i = 0; i < n; i++) {
        nd->preds[i] = preds[i];
        nd->pctxs[i] = ctxs ? ctxs[i] : NULL;
    }
    nd->npreds = n;
    nd->with_default = with_default;
    for (size_t i = 0; i < n + (with_default ? 1 : 0); i++)
        out[i] = stream_handle(s->b, add_node(s->b, RS_N_BRANCH_CHILD, "KSTREAM-BRANCHCHILD-", NULL, id));
}

void rs_stream_to(rs_stream *s, const char *topic, const rs_produced *p) {
    if (!s || !s->b->g || !topic) return;
    int id = add_node(s->b, RS_N_SINK, "KSTREAM-SINK-", NULL, s->node);
    NODE(s->b->g, id)->topic = g_strdup(topic);
    if (p) NODE(s->b->g, id)->produced = *p;
}

/* Did an operation upstream change the key since the last source or table?
 * Then grouping by key repartitions (Kafka's repartitionRequired). */
static bool key_changed(const rs_graph *g, int id) {
    const rs_node *n = NODE(g, id);
    switch (n->kind) {
    case RS_N_KEY:
    case RS_N_PROCESS:
        return true;
    case RS_N_MAP:
        if (n->op == RS_OP_MAP || n->op == RS_OP_FLAT_MAP) return true;
        break;
    case RS_N_SOURCE:
    case RS_N_AGGREGATE:
    case RS_N_WINDOW_AGG:
    case RS_N_TABLE:
    case RS_N_TAGG:
        return false;
    default:
        break;
    }
    for (guint i = 0; i < n->parents->len; i++)
        if (key_changed(g, g_array_index(n->parents, int, i))) return true;
    return false;
}

rs_grouped *rs_stream_group_by_key(rs_stream *s) {
    if (!s || !s->b->g) return NULL;
    rs_grouped *g = xcalloc(1, sizeof(*g));
    g->b = s->b;
    g->node = s->node;
    g->repartition = key_changed(s->b->g, s->node);
    g_ptr_array_add(s->b->handles, g);
    return g;
}

rs_grouped *rs_stream_group_by(rs_stream *s, rs_key_fn fn, void *ctx, const char *name) {
    if (!fn) return NULL;
    rs_stream *k = unary(s, RS_N_KEY, "KSTREAM-KEY-SELECT-", name, (void *)fn, ctx);
    return rs_stream_group_by_key(k);
}

/* parent -> sink <store>-repartition | source of it (returned): the cut
 * between two sub-topologies */
static int repartition(rs_builder *b, int parent, const char *store_name) {
    int snk = add_node(b, RS_N_SINK, "KSTREAM-SINK-", NULL, parent);
    rs_node *sn = NODE(b->g, snk);
    sn->topic = g_strdup_printf("%s-repartition", store_name);
    sn->internal_topic = true;
    int src = add_node(b, RS_N_SOURCE, "KSTREAM-SOURCE-", NULL, -1);
    rs_node *so = NODE(b->g, src);
    so->topics = xcalloc(1, sizeof(char *));
    so->topics[0] = g_strdup(sn->topic);
    so->ntopics = 1;
    so->internal_topic = true;
    return src;
}

/* The aggregate node; a grouped stream whose key changed first goes through
 * sink -> <store>-repartition -> source, as Kafka Streams does. */
static rs_table *aggregate(rs_grouped *g, const rs_windows *w, int op, void *fn, void *fn2, void *fn3, void *ctx,
                           const rs_materialized *m) {
    if (!g || !g->b->g) return NULL;
    if (w && (w->size < 1 || w->advance < 0 || w->grace < 0 ||
              (w->kind == RS_WINDOW_TIME && w->advance > w->size) ||
              (w->kind == RS_WINDOW_COUNT && w->advance > w->size) ||
              (w->kind == RS_WINDOW_SESSION && op == RS_AGG_AGGREGATE && !fn3) || w->kind > RS_WINDOW_COUNT))
        return NULL;
    rs_builder *b = g->b;
    int parent = g->node;
    char *store_name = (m && m->store_name) ? g_strdup(m->store_name)
                       : g_strdup_printf("KSTREAM-AGGREGATE-STATE-STORE-%010d", b->g->next_index++);
    if (g->repartition) parent = repartition(b, parent, store_name);
    int id = add_node(b, w ? RS_N_WINDOW_AGG : RS_N_AGGREGATE, "KSTREAM-AGGREGATE-", NULL, parent);
    rs_node *nd = NODE(b->g, id);
    nd->op = op;
    nd->fn = fn;
    nd->fn2 = fn2;
    nd->fn3 = fn3;
    nd->ctx = ctx;
    if (w) {
        nd->win = *w;
        if (w->kind == RS_WINDOW_TIME && !w->advance) nd->win.advance = w->size;
        if (w->kind == RS_WINDOW_COUNT && !w->advance) nd->win.advance = 1;
        nd->late_topic = g_strdup(w->late_topic);
        nd->win.late_topic = nd->late_topic;
    }
    /* time and session window stores are cached and their node forwards on
     * flush (window.c); count and sliding windows compute their outputs from
     * the records kept, so they forward by themselves, uncached */
    rs_materialized mm = m ? *m : (rs_materialized){0};
    bool self = w && (w->kind == RS_WINDOW_COUNT || w->kind == RS_WINDOW_SLIDING);
    if (self) mm.no_caching = true;
    int st = add_store(b, store_name, &mm, self ? -1 : id);
    g_free(store_name);
    g_array_append_val(nd->stores, st);
    return table_handle(b, id, st);
}

rs_table *rs_grouped_count(rs_grouped *g, const rs_materialized *m) {
    return aggregate(g, NULL, RS_AGG_COUNT, NULL, NULL, NULL, NULL, m);
}
rs_table *rs_grouped_reduce(rs_grouped *g, rs_reducer_fn fn, void *ctx, const rs_materialized *m) {
    return fn ? aggregate(g, NULL, RS_AGG_REDUCE, (void *)fn, NULL, NULL, ctx, m) : NULL;
}
rs_table *rs_grouped_aggregate(rs_grouped *g, rs_initializer_fn init, rs_aggregator_fn agg, void *ctx,
                               const rs_materialized *m) {
    return init && agg ? aggregate(g, NULL, RS_AGG_AGGREGATE, (void *)init, (void *)agg, NULL, ctx, m) : NULL;
}
rs_table *rs_grouped_windowed_count(rs_grouped *g, const rs_windows *w, const rs_materialized *m) {
    return w ? aggregate(g, w, RS_AGG_COUNT, NULL, NULL, NULL, NULL, m) : NULL;
}
rs_table *rs_grouped_windowed_reduce(rs_grouped *g, const rs_windows *w, rs_reducer_fn fn, void *ctx,
                                     const rs_materialized *m) {
    return w && fn ? aggregate(g, w, RS_AGG_REDUCE, (void *)fn, NULL, NULL, ctx, m) : NULL;
}
rs_table *rs_grouped_windowed_aggregate(rs_grouped *g, const rs_windows *w, rs_initializer_fn init,
                                        rs_aggregator_fn agg, rs_merger_fn merger, void *ctx,
                                        const rs_materialized *m) {
    return w && init && agg ? aggregate(g, w, RS_AGG_AGGREGATE, (void *)init, (void *)agg, (void *)merger, ctx, m)
                            : NULL;
}

rs_stream *rs_table_to_stream(rs_table *t, const char *name) {
    if (!t || !t->b->g) return NULL;
    return stream_handle(t->b, add_node(t->b, RS_N_TOSTREAM, "KTABLE-TOSTREAM-", name, t->node));
}

rs_table *rs_stream_to_table(rs_stream *s, const rs_materialized *m) {
    if (!s || !s->b->g) return NULL;
    int id = add_node(s->b, RS_N_TABLE, "KSTREAM-TOTABLE-", NULL, s->node);
    char *sname = (m && m->store_name) ? NULL : g_strdup_printf("KSTREAM-TOTABLE-STATE-STORE-%010d", s->b->g->next_index++);
    int st = add_store(s->b, sname, m, id);
    g_free(sname);
    g_array_append_val(NODE(s->b->g, id)->stores, st);
    return table_handle(s->b, id, st);
}

const char *rs_table_store_name(const rs_table *t) {
    if (!t || !t->b->g || t->store < 0) return NULL;
    return ((rs_store_def *)g_ptr_array_index(t->b->g->stores, t->store))->name;
}

/* ---- table operations ---- */

static bool table_op(rs_node_kind k) { return k == RS_N_TFILTER || k == RS_N_TMAP; }

static rs_table *table_unary(rs_table *t, rs_node_kind kind, const char *prefix, const char *name, void *fn,
                             void *ctx) {
    if (!t || !t->b->g || !fn) return NULL;
    int id = add_node(t->b, kind, prefix, name, t->node);
    NODE(t->b->g, id)->fn = fn;
    NODE(t->b->g, id)->ctx = ctx;
    return table_handle(t->b, id, -1);
}

rs_table *rs_table_filter(rs_table *t, rs_predicate_fn fn, void *ctx, const char *name) {
    return table_unary(t, RS_N_TFILTER, "KTABLE-FILTER-", name, (void *)fn, ctx);
}
rs_table *rs_table_filter_not(rs_table *t, rs_predicate_fn fn, void *ctx, const char *name) {
    rs_table *r = table_unary(t, RS_N_TFILTER, "KTABLE-FILTER-", name, (void *)fn, ctx);
    if (r) NODE(r->b->g, r->node)->negate = true;
    return r;
}
rs_table *rs_table_map_values(rs_table *t, rs_map_fn fn, void *ctx, const char *name) {
    return table_unary(t, RS_N_TMAP, "KTABLE-MAPVALUES-", name, (void *)fn, ctx);
}

/* KTable.groupBy: the table (and every table operation between it and the
 * node that owns its store) sends old values from now on (S5) */
rs_grouped_table *rs_table_group_by(rs_table *t, rs_map_fn fn, void *ctx, const char *name) {
    if (!t || !t->b->g || !fn) return NULL;
    rs_graph *g = t->b->g;
    int p = t->node;
    while (table_op(NODE(g, p)->kind)) p = g_array_index(NODE(g, p)->parents, int, 0);
    if (NODE(g, p)->kind == RS_N_WINDOW_AGG) return NULL; /* no old values there */
    for (p = t->node;; p = g_array_index(NODE(g, p)->parents, int, 0)) {
        NODE(g, p)->send_old = true;
        if (!table_op(NODE(g, p)->kind)) break;
    }
    int id = add_node(t->b, RS_N_TSELECT, "KTABLE-SELECT-", name, t->node);
    NODE(g, id)->fn = (void *)fn;
    NODE(g, id)->ctx = ctx;
    rs_grouped_table *gt = xcalloc(1, sizeof(*gt));
    gt->b = t->b;
    gt->node = id;
    g_ptr_array_add(t->b->handles, gt);
    return gt;
}

/* sink -> <store>-repartition -> source -> the table aggregate node, as
 * Kafka's KGroupedTableImpl */
static rs_table *table_aggregate(rs_grouped_table *gt, int op, const char *kind, void *fn, void *fn2, void *fn3,
                                 void *ctx, const rs_materialized *m) {
    if (!gt || !gt->b->g) return NULL;
    rs_builder *b = gt->b;
    char *prefix = g_strdup_printf("KTABLE-%s-", kind);
    char *store_name = (m && m->store_name) ? g_strdup(m->store_name)
                       : g_strdup_printf("KTABLE-%s-STATE-STORE-%010d", kind, b->g->next_index++);
    int src = repartition(b, gt->node, store_name);
    int id = add_node(b, RS_N_TAGG, prefix, NULL, src);
    g_free(prefix);
    rs_node *nd = NODE(b->g, id);
    nd->op = op;
    nd->fn = fn;
    nd->fn2 = fn2;
    nd->fn3 = fn3;
    nd->ctx = ctx;
    int st = add_store(b, store_name, m, id);
    g_free(store_name);
    g_array_append_val(nd->stores, st);
    return table_handle(b, id, st);
}

rs_table *rs_grouped_table_count(rs_grouped_table *g, const rs_materialized *m) {
    return table_aggregate(g, RS_AGG_COUNT, "AGGREGATE", NULL, NULL, NULL, NULL, m);
}
rs_table *rs_grouped_table_reduce(rs_grouped_table *g, rs_reducer_fn adder, rs_reducer_fn subtractor, void *ctx,
                                  const rs_materialized *m) {
    return adder && subtractor ? table_aggregate(g, RS_AGG_REDUCE, "REDUCE", (void *)adder, (void *)subtractor,
                                                 NULL, ctx, m)
                               : NULL;
}
rs_table *rs_grouped_table_aggregate(rs_grouped_table *g, rs_initializer_fn init, rs_aggregator_fn adder,
                                     rs_aggregator_fn subtractor, void *ctx, const rs_materialized *m) {
    return init && adder && subtractor ? table_aggregate(g, RS_AGG_AGGREGATE, "AGGREGATE", (void *)init,
                                                         (void *)adder, (void *)subtractor, ctx, m)
                                       : NULL;
}

static int store_by_name(const rs_graph *g, const char *name) {
    for (guint i = 0; i < g->stores->len; i++)
        if (!strcmp(((rs_store_def *)g_ptr_array_index(g->stores, i))->name, name)) return (int)i;
    return -1;
}

int rs_builder_add_kv_store(rs_builder *b, const char *name, const rs_materialized *m) {
    if (!b->g || !name || store_by_name(b->g, name) >= 0) return -1;
    rs_materialized mm = m ? *m : (rs_materialized){0};
    mm.store_name = name;
    add_store(b, name, &mm, -1);
    return 0;
}

rs_stream *rs_stream_process(rs_stream *s, const rs_processor_def *def, const char *const *stores, size_t nstores,
                             const char *name) {
    if (!s || !s->b->g || !def || !def->process) return NULL;
    for (size_t i = 0; i < nstores; i++)
        if (store_by_name(s->b->g, stores[i]) < 0) return NULL;
    int id = add_node(s->b, RS_N_PROCESS, "KSTREAM-PROCESSOR-", name, s->node);
    rs_node *nd = NODE(s->b->g, id);
    nd->pdef = *def;
    for (size_t i = 0; i < nstores; i++) {
        int st = store_by_name(s->b->g, stores[i]);
        g_array_append_val(nd->stores, st);
    }
    return stream_handle(s->b, id);
}

/* ---- build ---- */

static int uf_find(int *p, int x) {
    while (p[x] != x) x = p[x] = p[p[x]];
    return x;
}

rs_topology *rs_builder_build(rs_builder *b, char *errstr, size_t errlen) {
    rs_graph *g = b->g;
    if (!g) {
        if (errstr && errlen) snprintf(errstr, errlen, "builder already built");
        return NULL;
    }
    int n = (int)g->nodes->len, ns = (int)g->stores->len;
    if (!n) {
        if (errstr && errlen) snprintf(errstr, errlen, "topology has no source");
        return NULL;
    }
    /* names must be unique (they key processor state and metrics) */
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (!strcmp(NODE(g, i)->name, NODE(g, j)->name)) {
                if (errstr && errlen) snprintf(errstr, errlen, "duplicate processor name %s", NODE(g, i)->name);
                return NULL;
            }
    /* union nodes joined by an edge or by a shared store */
    int *p = xcalloc((size_t)(n + ns), sizeof(int));
    for (int i = 0; i < n + ns; i++) p[i] = i;
    for (int i = 0; i < n; i++) {
        rs_node *nd = NODE(g, i);
        for (guint c = 0; c < nd->children->len; c++) p[uf_find(p, g_array_index(nd->children, int, c))] = uf_find(p, i);
        for (guint s = 0; s < nd->stores->len; s++) p[uf_find(p, n + g_array_index(nd->stores, int, s))] = uf_find(p, i);
    }
    /* number sub-topologies in order of their first node */
    int *num = xcalloc((size_t)(n + ns), sizeof(int));
    for (int i = 0; i < n + ns; i++) num[i] = -1;
    int next = 0;
    for (int i = 0; i < n; i++) {
        int r = uf_find(p, i);
        if (num[r] < 0) num[r] = next++;
        NODE(g, i)->subtopo = num[r];
    }
    free(num);
    free(p);
    g->nsubtopos = next;
    rs_topology *t = xcalloc(1, sizeof(*t));
    t->g = g;
    b->g = NULL;
    return t;
}

void rs_topology_free(rs_topology *t) {
    if (!t) return;
    graph_free(t->g);
    free(t);
}

/* ---- describe ---- */

static void names_list(GString *s, const rs_graph *g, GArray *ids) {
    for (guint i = 0; i < ids->len; i++)
        g_string_append_printf(s, "%s%s", i ? ", " : "", NODE(g, g_array_index(ids, int, i))->name);
}

char *rs_topology_describe(const rs_topology *t) {
    const rs_graph *g = t->g;
    GString *s = g_string_new("Topologies:\n");
    for (int st = 0; st < g->nsubtopos; st++) {
        g_string_append_printf(s, "   Sub-topology: %d\n", st);
        for (guint i = 0; i < g->nodes->len; i++) {
            rs_node *nd = NODE(g, (int)i);
            if (nd->subtopo != st) continue;
            if (nd->kind == RS_N_SOURCE) {
                if (nd->is_pattern) g_string_append_printf(s, "    Source: %s (topics: %s)\n", nd->name, nd->topics[0]);
                else {
                    g_string_append_printf(s, "    Source: %s (topics: [", nd->name);
                    for (size_t k = 0; k < nd->ntopics; k++)
                        g_string_append_printf(s, "%s%s", k ? ", " : "", nd->topics[k]);
                    g_string_append(s, "])\n");
                }
            } else if (nd->kind == RS_N_SINK) {
                g_string_append_printf(s, "    Sink: %s (topic: %s)\n", nd->name, nd->topic);
            } else {
                g_string_append_printf(s, "    Processor: %s (stores: [", nd->name);
                for (guint k = 0; k < nd->stores->len; k++)
                    g_string_append_printf(s, "%s%s", k ? ", " : "",
                                           ((rs_store_def *)g_ptr_array_index(g->stores, g_array_index(nd->stores, int, k)))->name);
                g_string_append(s, "])\n");
            }
            if (nd->children->len) {
                g_string_append(s, "      --> ");
                names_list(s, g, nd->children);
                g_string_append(s, "\n");
            } else if (nd->kind != RS_N_SINK) {
                g_string_append(s, "      --> none\n");
            }
            if (nd->parents->len) {
                g_string_append(s, "      <-- ");
                names_list(s, g, nd->parents);
                g_string_append(s, "\n");
            }
        }
        g_string_append(s, "\n");
    }
    char *out = strdup(s->str);
    g_string_free(s, TRUE);
    if (!out) abort();
    return out;
}

char *rs__full_topic(const char *app_id, const rs_node *n, size_t i) {
    const char *name = n->kind == RS_N_SINK ? n->topic : n->topics[i];
    return n->internal_topic ? g_strdup_printf("%s-%s", app_id, name) : g_strdup(name);
}

int rs__source_for(const rs_topology *topo, int st, const char *app_id, const char *topic) {
    const rs_graph *g = topo->g;
    for (guint i = 0; i < g->nodes->len; i++) {
        rs_node *nd = NODE(g, (int)i);
        if (nd->kind != RS_N_SOURCE || nd->subtopo != st) continue;
        if (nd->is_pattern) {
            if (!regexec(&nd->re, topic, 0, NULL, 0)) return (int)i;
            continue;
        }
        for (size_t k = 0; k < nd->ntopics; k++) {
            char *full = rs__full_topic(app_id, nd, k);
            bool eq = !strcmp(full, topic);
            g_free(full);
            if (eq) return (int)i;
        }
    }
    return -1;
}
