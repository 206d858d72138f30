/*
 * streams_int.h — librill-streams internals shared by the files of src/streams.
 *
 * Owns the graph a builder makes (nodes, stores), the topology built from it
 * (sub-topologies = connected parts of the graph, a repartition topic cutting
 * a graph in two), the task that runs one sub-topology for one partition, and
 * the key-value store layers (a record cache and a changelog in front of an
 * in-memory or RocksDB store). See docs/streams.md for the design.
 *
 * Invariants:
 *  S1. A built topology is never written again; all per-run state (processor
 *      states, stores, stream time, caches) lives in tasks.
 *  S2. Records flow depth-first and synchronously from a source to its
 *      descendants; a node sees a record only after its parent finished with
 *      the previous one (no re-entry into a node of the same task).
 *  S3. A cached store writes a key to the inner store and to its changelog,
 *      and forwards it downstream, only on a cache flush (commit, or cache
 *      over budget), in the order keys were first dirtied; so a commit always
 *      follows: outputs produced -> stores and changelogs written -> offsets.
 *  S4. Stream time of a task never goes backwards; it is the largest
 *      extracted timestamp the task has accepted.
 *  S5. A table forwards changes: the record carries the new value, and
 *      t->old the old one (NULL: none, or not sent) for exactly the
 *      duration of a table operation child's processing (rs__forward_change
 *      sets it per child and restores it); every other node runs with
 *      t->old == NULL. A table sends old values (reads the inner store
 *      before a write) only when its node has send_old, set by the builder
 *      when a downstream operation needs them (group_by), as Kafka's
 *      enableSendingOldValues.
 */
#ifndef RILL_STREAMS_INT_H
#define RILL_STREAMS_INT_H

#include <regex.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <glib.h>

#include "rill/streams.h"

#define RS_INTERNAL __attribute__((visibility("hidden")))

typedef enum {
    RS_N_SOURCE,
    RS_N_SINK,
    RS_N_FILTER,
    RS_N_MAP,      /* op: map / map_values / flat_map / flat_map_values */
    RS_N_KEY,      /* select_key, or group_by's key selector */
    RS_N_PEEK,
    RS_N_FOREACH,
    RS_N_MERGE,
    RS_N_BRANCH,
    RS_N_BRANCH_CHILD,
    RS_N_AGGREGATE, /* op: count / reduce / aggregate */
    RS_N_TABLE,     /* table source / to_table: store the latest value */
    RS_N_TOSTREAM,
    RS_N_PROCESS,
    RS_N_WINDOW_AGG, /* op as RS_N_AGGREGATE, over windows */
    /* table operations: they receive changes (new value, and the old one
     * when the table sends old values: t->old, S5) */
    RS_N_TFILTER, /* KTable filter / filterNot */
    RS_N_TMAP,    /* KTable mapValues */
    RS_N_TSELECT, /* KTable groupBy: re-key + re-value into the repartition sink */
    RS_N_TAGG,    /* KGroupedTable count / reduce / aggregate (adder + subtractor) */
} rs_node_kind;

enum { RS_OP_MAP, RS_OP_MAP_VALUES, RS_OP_FLAT_MAP, RS_OP_FLAT_MAP_VALUES };
enum { RS_AGG_COUNT, RS_AGG_REDUCE, RS_AGG_AGGREGATE };

typedef struct rs_node {
    int id;
    char *name;
    rs_node_kind kind;
    int op;
    bool negate; /* filter_not */
    bool send_old; /* a table node: forward old values with changes (S5) */
    GArray *children, *parents; /* int node ids */
    /* source */
    char **topics;
    size_t ntopics;
    bool is_pattern, internal_topic;
    regex_t re;
    rs_consumed consumed;
    /* sink */
    char *topic;
    rs_produced produced;
    /* user functions */
    void *fn, *fn2, *fn3;
    void *ctx;
    rs_windows win;
    char *late_topic;
    rs_predicate_fn *preds;
    void **pctxs;
    size_t npreds;
    bool with_default;
    rs_processor_def pdef;
    GArray *stores; /* int store ids */
    int subtopo;
} rs_node;

typedef struct rs_store_def {
    int id;
    char *name;
    rs_materialized m;
    int owner; /* node whose updates a cache flush forwards, or -1 */
} rs_store_def;

typedef struct rs_graph {
    GPtrArray *nodes;  /* rs_node * */
    GPtrArray *stores; /* rs_store_def * */
    int next_index;    /* Kafka's one counter for node and store names */
    int nsubtopos;
} rs_graph;

struct rs_topology {
    rs_graph *g;
};

struct rs_builder {
    rs_graph *g;
    GPtrArray *handles; /* everything given out, freed with the builder */
};

struct rs_stream {
    rs_builder *b;
    int node;
};
struct rs_table {
    rs_builder *b;
    int node;
    int store;
};
struct rs_grouped {
    rs_builder *b;
    int node;
    bool repartition;
    char *name;
};
struct rs_grouped_table {
    rs_builder *b;
    int node; /* the RS_N_TSELECT node */
};

/* A grouped table's repartition record value (rs__change_encode): one flag
 * byte (bit 0: an addition, bit 1: a subtraction), then the added value,
 * or the subtracted one, or with both: be32 length of the added value, the
 * added value, the subtracted value. */
#define RS_CHG_NEW 1
#define RS_CHG_OLD 2
RS_INTERNAL void rs__change_encode(rs_buf *out, const rs_bytes *nv, const rs_bytes *ov);
/* 0, or -1 when malformed; nv / ov null slices when absent */
RS_INTERNAL int rs__change_decode(rs_bytes in, rs_bytes *nv, rs_bytes *ov);

/* ---- configuration ---- */
struct rs_config {
    GHashTable *kv; /* char * -> char * */
    rs_timestamp_fn ts_fn;
    void *ts_ctx;
};
RS_INTERNAL int64_t rs__config_int(const rs_config *c, const char *name, int64_t dflt);
RS_INTERNAL const char *rs__config_str(const rs_config *c, const char *name, const char *dflt);
RS_INTERNAL bool rs__config_eos(const rs_config *c); /* processing.guarantee=exactly_once_v2 */
RS_INTERNAL int64_t rs__config_commit_interval(const rs_config *c);

/* ---- stores ---- */
/* a value held by a store that an update may rewrite in place */
typedef struct rs_slot {
    size_t len, cap;
    uint8_t *data; /* inl while the value fits (no allocation of its own) */
    _Alignas(8) uint8_t inl[40];
} rs_slot;
RS_INTERNAL void rs__slot_set(rs_slot *v, rs_bytes b);

typedef struct rs_kv_vt {
    int (*get)(void *impl, rs_bytes key, rs_buf *out);
    int (*put)(void *impl, rs_bytes key, rs_bytes value); /* null value deletes */
    int (*range)(void *impl, rs_bytes from, rs_bytes to, rs_kv_fn fn, void *arg);
    size_t (*count)(void *impl);
    int (*flush)(void *impl);
    void (*close)(void *impl);
    /* optional (NULL: get then put): the value slot of key found or made by
     * one lookup; 1 found, 0 made (empty: the caller must set it) */
    int (*slot)(void *impl, rs_bytes key, rs_slot **out);
} rs_kv_vt;

RS_INTERNAL void *rs__mem_store_open(void);
RS_INTERNAL extern const rs_kv_vt rs__mem_store_vt;
/* path: the store's directory; budget: rocksdb.memory.bytes (first open wins) */
RS_INTERNAL void *rs__rocksdb_store_open(const char *path, size_t budget, char *errstr, size_t errlen);
RS_INTERNAL extern const rs_kv_vt rs__rocksdb_store_vt;

typedef struct rs_cache_entry rs_cache_entry;
typedef struct rs_task rs_task;

/* cache.max.bytes.buffering, divided among stream threads as in Kafka
 * Streams: all cached stores of a thread's tasks draw on one budget */
typedef struct rs_cache_budget {
    size_t max, used;
} rs_cache_budget;

struct rs_kv_store {
    const rs_store_def *def;
    rs_task *task;
    const rs_kv_vt *vt;
    void *impl;
    char *changelog; /* full topic name, NULL when not logged */
    bool caching;
    GHashTable *cache; /* rs_cache_entry * (keyed by its key bytes) */
    rs_cache_entry *dirty_head, *dirty_tail;
    rs_cache_entry *last; /* the entry found last (a put follows a get), or NULL */
    size_t cache_bytes;
    int64_t changelog_end; /* next changelog offset known written (checkpoint), -1 unknown */
};
RS_INTERNAL rs_kv_store *rs__kv_store_new(rs_task *t, const rs_store_def *def, const char *app_id, char *errstr,
                                          size_t errlen);
RS_INTERNAL void rs__kv_store_free(rs_kv_store *s);
RS_INTERNAL int rs__kv_put_ts(rs_kv_store *s, rs_bytes key, rs_bytes value, int64_t ts);
RS_INTERNAL void rs__kv_store_flush(rs_kv_store *s);
RS_INTERNAL void rs__kv_delete_quiet(rs_kv_store *s, rs_bytes key, int64_t ts);
/* one aggregation step of node nd for record key and value on store key
 * skey, as a get, an rs__agg_step and a put would do it (same store,
 * changelog and downstream effects) with one lookup and no copy of the old
 * value; out: scratch, holds the new value after. Returns 1 if skey had a
 * value. */
RS_INTERNAL int rs__kv_aggregate(rs_kv_store *s, const rs_node *nd, rs_bytes skey, rs_bytes key, rs_bytes value,
                                 int64_t ts, rs_buf *out);

/* ---- tasks ---- */
/* Where a task writes records: a sink node, a changelog (store != NULL: the
 * runtime tracks the store's changelog offset from its delivery report).
 * partition -1 means "let the client choose". */
typedef void (*rs_sink_cb)(void *arg, const char *topic, int32_t partition, const rs_record *r, rs_kv_store *store);

struct rs_pctx {
    rs_task *task;
    int node;
    void *state;
    bool inited; /* init ran: close must run */
    /* emitter of map-like nodes: copies of emitted key/values */
    rs_buf ebuf;
    size_t *eq, eqn, eqcap; /* size_t quadruples: key off, key len (SIZE_MAX null), value off, value len */
    bool emit_one;  /* map / map_values: emissions after the first are dropped */
    bool emit_vals; /* map_values / flat_map_values: emitted keys are ignored */
    /* windowed aggregation: open windows by close time (an in-memory store
     * keyed be64(close) ++ store key), rebuilt from the store at start */
    void *wopen;
    int64_t wnext; /* no index entry closes before this (a lower bound) */
    /* time windows: the open index as buckets by close time instead (every
     * window of a start closes together), ascending; each bucket's keys
     * packed as (u32 length, store key) in arrival order */
    GArray *wbuckets; /* rs_wbucket */
    GPtrArray *wspare; /* rs_buf * of emptied buckets, reused */
    int64_t wseq;
    rs_buf wb[4]; /* scratch buffers of the window code (S2: not re-entered) */
};

typedef struct rs_wbucket {
    int64_t close;
    rs_buf *keys;
} rs_wbucket;
RS_INTERNAL void rs__window_index_free(rs_pctx *pc); /* wopen and buckets */

struct rs_emitter {
    rs_pctx *pc;
};

typedef struct rs_punct {
    int node;
    int64_t interval, next;
    rs_punctuation_type type;
    rs_punctuate_fn fn;
} rs_punct;

typedef struct rs_metrics {
    int64_t process_total, punctuate_total, dropped, skipped;
} rs_metrics;

struct rs_task {
    const rs_topology *topo;
    rs_node *const *nodes; /* the topology's nodes by id (S1: fixed) */
    GArray **fwd; /* per node of this sub-topology: the nodes a forward runs
                   * (children, with pure pass-through nodes - to_stream,
                   * merge - replaced by their own, in the same order) */
    const rs_config *cfg;
    char *app_id;
    int subtopo;
    int32_t partition;
    rs_pctx *pcs;          /* indexed by node id (only this subtopo's used) */
    rs_kv_store **stores;  /* indexed by store id (NULL if not this subtopo's) */
    int64_t stream_time;   /* S4; INT64_MIN before the first record */
    int64_t wall_time;
    GArray *puncts;        /* rs_punct */
    rs_sink_cb sink;
    void *sink_arg;
    /* partition count of a topic for user partitioners (NULL: 1); <= 0 unknown */
    int32_t (*partitions)(void *sink_arg, const char *topic);
    const rs_record *cur;  /* the record being processed (context) */
    const rs_bytes *old;   /* S5: the old value of the change being processed */
    rs_metrics m;
    rs_cache_budget *cache; /* shared by the tasks of one thread (or driver) */
    GHashTable *src_of;    /* full topic name -> source node id + 1 (0: none), memoized */
    const char *last_topic; /* the last name asked of rs__task_source (pointer */
    char *last_topic_copy;  /* and a copy: a caller's buffer may change) */
    int last_src;
    bool wallclock_ts;     /* default.timestamp.extractor=wallclock (read once) */
    char **sink_topic;     /* full topic name per sink node id */
    GArray *wnodes;        /* ids of this task's window nodes (closed after each record) */
    char *state_dir;       /* <state.dir>/<application.id>/<subtopo>_<partition> */
};

/* NULL on error (a store that cannot be opened), message in errstr */
RS_INTERNAL rs_task *rs__task_new(const rs_topology *topo, const rs_config *cfg, const char *app_id, int subtopo,
                                  int32_t partition, rs_sink_cb sink, void *sink_arg, int64_t wall_time,
                                  const char *state_dir, rs_cache_budget *cache, char *errstr, size_t errlen);
RS_INTERNAL void rs__task_free(rs_task *t);
/* processes one record read from topic by the task's source node for it */
RS_INTERNAL int rs__task_process(rs_task *t, const char *topic, const rs_record *r);
RS_INTERNAL int rs__task_source(rs_task *t, const char *topic); /* source node id or -1 */
RS_INTERNAL void rs__task_commit(rs_task *t); /* flush caches, then stores */
RS_INTERNAL void rs__task_wall_clock(rs_task *t, int64_t now);
RS_INTERNAL void rs__task_reinit_windows(rs_task *t); /* after a restore wrote the stores */
RS_INTERNAL void rs__forward(rs_task *t, int node, const rs_record *r);
/* a table node forwards a change: r->value new, old (NULL: none) to the
 * table operation children (S5) */
RS_INTERNAL void rs__forward_change(rs_task *t, int node, const rs_record *r, const rs_bytes *old);
/* one aggregation step: out = op(old or the initial value, r->value) */
RS_INTERNAL void rs__agg_step(const rs_node *nd, rs_bytes key, rs_bytes value, const rs_bytes *old, rs_buf *out);
RS_INTERNAL void rs__window_init(rs_task *t, rs_node *nd, rs_pctx *pc);
RS_INTERNAL void rs__window_process(rs_task *t, rs_node *nd, rs_pctx *pc, const rs_record *r);
RS_INTERNAL void rs__window_close(rs_task *t, rs_node *nd, rs_pctx *pc);
/* a time or session window's store entry reached the store (cache flush):
 * emit changes forwards it with its windowed key */
RS_INTERNAL void rs__window_flushed(rs_task *t, const rs_node *nd, const rs_record *store_rec);
RS_INTERNAL void rs__sliding_process(rs_task *t, rs_node *nd, rs_pctx *pc, const rs_record *r);
RS_INTERNAL void rs__sliding_close(rs_task *t, rs_node *nd, rs_pctx *pc);
RS_INTERNAL void rs__sliding_index(rs_pctx *pc, const rs_node *nd, rs_bytes raw);
RS_INTERNAL void rs__window_emit(rs_task *t, const rs_node *nd, rs_bytes key, int64_t start, int64_t end,
                                 rs_bytes value, int64_t ts);
RS_INTERNAL void rs__window_late(rs_task *t, const rs_node *nd, const rs_record *r);
RS_INTERNAL void rs__put64(uint8_t *p, int64_t v);
/* the open-index keys (GBytes) of a window node due by now, in index order;
 * NULL if none (without a scan while now < pc->wnext) */
RS_INTERNAL GPtrArray *rs__window_due(rs_pctx *pc, int64_t now);
RS_INTERNAL uint32_t rs__fnv1a(const void *p, size_t n);
RS_INTERNAL int rs__rm_rf(const char *path);
RS_INTERNAL rs_config *rs__config_dup(const rs_config *c);
RS_INTERNAL int64_t rs__get64(const uint8_t *p);
/* the source node of sub-topology st reading full topic name, or -1 */
RS_INTERNAL int rs__source_for(const rs_topology *topo, int st, const char *app_id, const char *topic);
RS_INTERNAL char *rs__full_topic(const char *app_id, const rs_node *n, size_t i);

#endif
