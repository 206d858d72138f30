/*
 * rill/streams.h — librill-streams, the Kafka Streams model in C.
 *
 * A program builds a topology with a small DSL over stream / table handles,
 * then runs it: in-process through the test driver (rs_driver_*, no broker,
 * deterministic), or against a Kafka cluster such as rilld through
 * librdkafka (rs_app_*). Design notes: docs/streams.md.
 *
 * Records are (key, value, timestamp, headers) where key and value are byte
 * slices: the library never interprets them. Serdes (rs_serde) turn C values
 * into bytes and back; the built-in ones are bytes, string, int64 and double
 * (both big-endian, as Kafka's LongSerde / DoubleSerde) and JSON (jansson).
 *
 * Memory: every rs_bytes handed to a callback is valid only during that call;
 * every rs_bytes handed to the library is copied before the call returns.
 * A NULL data pointer is a null key / null value (a tombstone for tables);
 * {"", 0} is an empty, non-null slice.
 *
 * Threads: a builder, topology and driver belong to one thread at a time.
 * A built topology is immutable and may be shared by several drivers.
 *
 * Names follow Kafka Streams: nodes get KSTREAM-<KIND>-%010d names unless the
 * caller names them, stores KSTREAM-AGGREGATE-STATE-STORE-%010d, repartition
 * topics <application.id>-<store>-repartition, changelog topics
 * <application.id>-<store>-changelog.
 *
 * Not offered by RocksDB 7.8's C API (Debian 12): a WriteBufferManager. The
 * shared memory budget (rocksdb.memory.bytes) is therefore enforced as a
 * shared LRU block cache for all stores plus a fixed per-store memtable
 * allowance (write_buffer_size x max_write_buffer_number); see docs/streams.md.
 */
#ifndef RILL_STREAMS_H
#define RILL_STREAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define RS_API __attribute__((visibility("default")))
#else
#define RS_API
#endif

/* ---------------------------------------------------------------- bytes */

typedef struct rs_bytes {
    const void *data; /* NULL = null */
    size_t len;
} rs_bytes;

#define RS_NULL_BYTES ((rs_bytes){NULL, 0})
RS_API rs_bytes rs_str(const char *s); /* NULL -> null slice; no copy */

/* A growable byte buffer owned by the caller (serdes append to it). */
typedef struct rs_buf {
    uint8_t *data;
    size_t len, cap;
} rs_buf;
RS_API void rs_buf_init(rs_buf *b);
RS_API void rs_buf_free(rs_buf *b);
RS_API void rs_buf_append(rs_buf *b, const void *p, size_t n); /* aborts on OOM */
static inline rs_bytes rs_buf_bytes(const rs_buf *b) { return (rs_bytes){b->data ? b->data : (const void *)"", b->len}; }

/* ---------------------------------------------------------------- records */

typedef struct rs_header {
    const char *key;
    rs_bytes value;
} rs_header;

/* Headers travel with a record through stateless operations and sinks, as
 * in Kafka Streams; a record forwarded by a store's cache flush carries the
 * headers of the record being processed then (if any); changelog records
 * carry none. The runtime passes on the first 32 headers of an input. */
typedef struct rs_record {
    rs_bytes key, value;
    int64_t timestamp;          /* event time, ms since the epoch */
    const rs_header *headers;
    size_t header_count;
    /* where the record that caused this one was read (NULL/-1 if none) */
    const char *topic;
    int32_t partition;
    int64_t offset;
} rs_record;

/* ---------------------------------------------------------------- serdes */

/* A serde is a small table. serialize appends the encoding of *obj to out;
 * deserialize decodes in into *obj (storage of the serde's C type). Both
 * return 0, or -1 when the value cannot be encoded / the bytes are malformed.
 * free_obj (may be NULL) releases what deserialize allocated inside *obj. */
typedef struct rs_serde {
    const char *name;
    int (*serialize)(const void *obj, rs_buf *out, void *ctx);
    int (*deserialize)(rs_bytes in, void *obj, void *ctx);
    void (*free_obj)(void *obj, void *ctx);
    void *ctx;
} rs_serde;

RS_API extern const rs_serde rs_serde_bytes;  /* obj: rs_bytes (deserialize: no copy) */
RS_API extern const rs_serde rs_serde_string; /* obj: char * (deserialize: malloc'd, NUL-terminated; free_obj frees) */
RS_API extern const rs_serde rs_serde_int64;  /* obj: int64_t, 8 bytes big-endian */
RS_API extern const rs_serde rs_serde_double; /* obj: double, IEEE-754 8 bytes big-endian */
RS_API extern const rs_serde rs_serde_json;   /* obj: json_t * (jansson); deserialize gives a new reference, free_obj decrefs */

RS_API int rs_serialize(const rs_serde *s, const void *obj, rs_buf *out);
RS_API int rs_deserialize(const rs_serde *s, rs_bytes in, void *obj);
RS_API void rs_serde_free(const rs_serde *s, void *obj);

/* int64 / double big-endian without a buffer: out must hold 8 bytes. */
RS_API rs_bytes rs_int64_to_bytes(int64_t v, uint8_t out[8]);
RS_API int rs_bytes_to_int64(rs_bytes b, int64_t *v); /* -1 unless 8 bytes */
RS_API rs_bytes rs_double_to_bytes(double v, uint8_t out[8]);
RS_API int rs_bytes_to_double(rs_bytes b, double *v);

/* Windowed keys, as Kafka Streams' TimeWindowedSerde with the end time too:
 * key bytes, then window start and window end, each int64 big-endian. */
typedef struct rs_windowed_key {
    rs_bytes key;
    int64_t start, end; /* [start, end) in ms */
} rs_windowed_key;
RS_API void rs_windowed_key_encode(const rs_windowed_key *wk, rs_buf *out);
RS_API int rs_windowed_key_decode(rs_bytes in, rs_windowed_key *wk); /* key points into in */

/* ---------------------------------------------------------------- configuration */

/* Kafka Streams' names. Known: application.id, bootstrap.servers,
 * num.stream.threads, commit.interval.ms, state.dir, processing.guarantee
 * (at_least_once, the default, or exactly_once_v2: one transactional
 * producer per stream thread, read_committed reads, commit.interval.ms
 * default 100; see docs/streams.md; exactly_once / exactly_once_beta are
 * refused),
 * cache.max.bytes.buffering, default.timestamp.extractor (record |
 * wallclock; a user extractor is set with rs_config_set_timestamp_extractor),
 * default.dsl.store (in_memory | rocksDB), rocksdb.memory.bytes (Rill: the
 * one budget shared by all RocksDB stores of the process). Any name with a
 * "consumer." / "producer." prefix, or unknown to Streams, is kept for
 * librdkafka. */
typedef struct rs_config rs_config;
RS_API rs_config *rs_config_new(void);
RS_API void rs_config_free(rs_config *c);
/* 0, or -1 with a message in errstr when the value is invalid */
RS_API int rs_config_set(rs_config *c, const char *name, const char *value, char *errstr, size_t errlen);
RS_API const char *rs_config_get(const rs_config *c, const char *name); /* NULL if unset */

/* Event time of a record; return a negative value to drop the record
 * (counted in the dropped-records metric, as Kafka's extractors do). */
typedef int64_t (*rs_timestamp_fn)(const rs_record *r, int64_t partition_time, void *ctx);
RS_API void rs_config_set_timestamp_extractor(rs_config *c, rs_timestamp_fn fn, void *ctx);
/* An extractor reading a JSON number field (ms) at the top of the value;
 * records without it, or not JSON, fall back to the record timestamp. */
RS_API int64_t rs_json_field_timestamp(const rs_record *r, int64_t partition_time, void *field_name);

/* ---------------------------------------------------------------- the DSL */

typedef struct rs_builder rs_builder;
typedef struct rs_stream rs_stream;   /* KStream */
typedef struct rs_table rs_table;     /* KTable */
typedef struct rs_grouped rs_grouped; /* KGroupedStream */
typedef struct rs_grouped_table rs_grouped_table; /* KGroupedTable */
typedef struct rs_topology rs_topology;

/* Emitting from map / flat_map / select_key callbacks: the slices are copied. */
typedef struct rs_emitter rs_emitter;
RS_API void rs_emit(rs_emitter *e, rs_bytes key, rs_bytes value);

typedef bool (*rs_predicate_fn)(const rs_record *r, void *ctx);
/* map: emit exactly one record; flat_map: zero or more. For map_values /
 * flat_map_values the emitted key is ignored (the input key is kept). */
typedef void (*rs_map_fn)(const rs_record *r, rs_emitter *e, void *ctx);
typedef void (*rs_foreach_fn)(const rs_record *r, void *ctx);
/* select_key / group_by: write the new key into out */
typedef void (*rs_key_fn)(const rs_record *r, rs_buf *out, void *ctx);
/* reduce: out = combine(agg, value); aggregate: out = f(key, value, agg) where
 * agg is the initializer's result for a key's first record. */
typedef void (*rs_reducer_fn)(rs_bytes agg, rs_bytes value, rs_buf *out, void *ctx);
typedef void (*rs_initializer_fn)(rs_buf *out, void *ctx);
typedef void (*rs_aggregator_fn)(rs_bytes key, rs_bytes value, rs_bytes agg, rs_buf *out, void *ctx);
/* sink partitioner: partition in [0, n) for a record, n = the topic's
 * partition count (1 under the test driver); a result outside [0, n) drops
 * the record (counted in dropped-records). NULL = murmur2 of the key, as
 * the Java client. */
typedef int32_t (*rs_partitioner_fn)(const rs_record *r, int32_t n, void *ctx);

typedef enum rs_store_type {
    RS_STORE_DEFAULT = 0, /* default.dsl.store */
    RS_STORE_IN_MEMORY,
    RS_STORE_ROCKSDB,
} rs_store_type;

/* Kafka's Materialized. NULL anywhere = all defaults. */
typedef struct rs_materialized {
    const char *store_name; /* NULL: generated */
    rs_store_type type;
    bool no_caching;        /* default: cached (coalesced per key until commit) */
    bool no_logging;        /* default: a compacted changelog topic */
} rs_materialized;

/* Kafka's Consumed: serdes (may be NULL) validate input; a record they
 * cannot deserialize is skipped and counted (LogAndContinue). */
typedef struct rs_consumed {
    const rs_serde *key_serde, *value_serde;
    rs_timestamp_fn timestamp_fn; /* overrides default.timestamp.extractor */
    void *timestamp_ctx;
} rs_consumed;

typedef struct rs_produced {
    rs_partitioner_fn partitioner;
    void *partitioner_ctx;
} rs_produced;

RS_API rs_builder *rs_builder_new(void);
/* Frees the builder and every handle it gave out (after build too). */
RS_API void rs_builder_free(rs_builder *b);

/* Sources. Topic names are copied. */
RS_API rs_stream *rs_stream_from(rs_builder *b, const char *const *topics, size_t n, const rs_consumed *c);
RS_API rs_stream *rs_stream_from_topic(rs_builder *b, const char *topic);
RS_API rs_stream *rs_stream_from_pattern(rs_builder *b, const char *regex, const rs_consumed *c); /* POSIX ERE */
/* A table from a (compacted) topic: a null value deletes the key. */
RS_API rs_table *rs_table_from(rs_builder *b, const char *topic, const rs_consumed *c, const rs_materialized *m);

/* Stateless operations. name may be NULL (generated). ctx is passed back. */
RS_API rs_stream *rs_stream_filter(rs_stream *s, rs_predicate_fn fn, void *ctx, const char *name);
RS_API rs_stream *rs_stream_filter_not(rs_stream *s, rs_predicate_fn fn, void *ctx, const char *name);
RS_API rs_stream *rs_stream_map(rs_stream *s, rs_map_fn fn, void *ctx, const char *name);
RS_API rs_stream *rs_stream_map_values(rs_stream *s, rs_map_fn fn, void *ctx, const char *name);
RS_API rs_stream *rs_stream_flat_map(rs_stream *s, rs_map_fn fn, void *ctx, const char *name);
RS_API rs_stream *rs_stream_flat_map_values(rs_stream *s, rs_map_fn fn, void *ctx, const char *name);
RS_API rs_stream *rs_stream_select_key(rs_stream *s, rs_key_fn fn, void *ctx, const char *name);
RS_API rs_stream *rs_stream_peek(rs_stream *s, rs_foreach_fn fn, void *ctx, const char *name);
RS_API void rs_stream_foreach(rs_stream *s, rs_foreach_fn fn, void *ctx, const char *name);
RS_API rs_stream *rs_stream_merge(rs_stream *a, rs_stream *b, const char *name);
/* split / branch: a record goes to the first branch whose predicate holds
 * (ctx[i] for preds[i]); with a default branch (out[n]) the rest go there.
 * out must hold n (+1 if with_default) handles. */
RS_API void rs_stream_split(rs_stream *s, size_t n, const rs_predicate_fn *preds, void *const *ctxs,
                            bool with_default, rs_stream **out);
RS_API void rs_stream_to(rs_stream *s, const char *topic, const rs_produced *p);

/* Grouping and aggregation (results are tables; values of count are int64
 * big-endian). group_by re-keys through an internal repartition topic;
 * group_by_key does too when an operation upstream may have changed the key
 * (map, flat_map, select_key, process), as Kafka Streams does. */
RS_API rs_grouped *rs_stream_group_by_key(rs_stream *s);
RS_API rs_grouped *rs_stream_group_by(rs_stream *s, rs_key_fn fn, void *ctx, const char *name);
RS_API rs_table *rs_grouped_count(rs_grouped *g, const rs_materialized *m);
RS_API rs_table *rs_grouped_reduce(rs_grouped *g, rs_reducer_fn fn, void *ctx, const rs_materialized *m);
RS_API rs_table *rs_grouped_aggregate(rs_grouped *g, rs_initializer_fn init, rs_aggregator_fn agg, void *ctx,
                                      const rs_materialized *m);
RS_API rs_stream *rs_table_to_stream(rs_table *t, const char *name);
RS_API rs_table *rs_stream_to_table(rs_stream *s, const rs_materialized *m);
/* the store holding a table's contents (for rs_driver_kv_store); NULL for
 * a table made by rs_table_filter / rs_table_map_values (not materialized) */
RS_API const char *rs_table_store_name(const rs_table *t);

/* ---------------------------------------------------------------- table operations */

/* Tables forward changes, as Kafka Streams' Change<V>: the new value (null:
 * the key was deleted) and, when an operation downstream needs it, the old
 * one (a table then reads its store's previous value before each write: the
 * cost of Kafka's sendOldValues). With the record cache, one change per key
 * and commit: old = the value before the first coalesced update. to_stream
 * forwards the new values only. Windowed tables forward no old values (they
 * cannot be grouped again).
 *
 * filter / filter_not: the predicate sees the new value; a row that does not
 * match is forwarded as a tombstone (so a row that stops matching is deleted
 * downstream); with old values sent, a change where neither old nor new
 * matches is not forwarded at all (as Kafka). A null value (delete) is never
 * passed to the predicate: it stays a delete.
 * map_values: fn emits one value for each non-null value (the key is kept;
 * no emission = null). Neither is materialized (rs_table_store_name: NULL). */
RS_API rs_table *rs_table_filter(rs_table *t, rs_predicate_fn fn, void *ctx, const char *name);
RS_API rs_table *rs_table_filter_not(rs_table *t, rs_predicate_fn fn, void *ctx, const char *name);
RS_API rs_table *rs_table_map_values(rs_table *t, rs_map_fn fn, void *ctx, const char *name);

/* KTable.groupBy: fn maps a row (key, value) to a new (key, value) with
 * exactly one rs_emit (none, or a null key: the row is left out of every
 * group). Changes go through the internal repartition topic
 * <application.id>-<store>-repartition, partitioned by the new key: an
 * update whose old and new rows map to the same key is one record carrying
 * both (the aggregate subtracts then adds in one step, one output); when the
 * key moves, two records - the subtraction to the old key, then the
 * addition to the new key - each to its key's partition, so each group's
 * partition sees exactly its own changes in source order. A delete of the
 * source row (tombstone) is a subtraction only.
 *
 * The aggregations keep one row per group key:
 *  count: int64 big-endian, +1 for an added row, -1 for a subtracted one (a
 *    group whose count falls to 0 keeps the value 0, as Kafka);
 *  reduce: the first added value, then adder(agg, value) for an addition
 *    and subtractor(agg, value) for a subtraction;
 *  aggregate: initializer() for a new group, then adder(key, value, agg)
 *    and subtractor(key, value, agg).
 * An update with both applies the subtractor first, then the adder. The
 * results are tables (forwarding changes, so they can be grouped again).
 * NULL on a windowed table, or a NULL function. */
RS_API rs_grouped_table *rs_table_group_by(rs_table *t, rs_map_fn fn, void *ctx, const char *name);
RS_API rs_table *rs_grouped_table_count(rs_grouped_table *g, const rs_materialized *m);
RS_API rs_table *rs_grouped_table_reduce(rs_grouped_table *g, rs_reducer_fn adder, rs_reducer_fn subtractor,
                                         void *ctx, const rs_materialized *m);
RS_API rs_table *rs_grouped_table_aggregate(rs_grouped_table *g, rs_initializer_fn init, rs_aggregator_fn adder,
                                            rs_aggregator_fn subtractor, void *ctx, const rs_materialized *m);

/* ---------------------------------------------------------------- windows */

typedef enum rs_window_kind {
    RS_WINDOW_TIME,    /* tumbling (advance 0 or = size) and hopping: [start, start+size) */
    RS_WINDOW_SLIDING, /* Kafka's SlidingWindows: [t-size, t] inclusive, one per distinct content */
    RS_WINDOW_SESSION, /* inactivity gap = size; sessions merge; [first, last] inclusive */
    RS_WINDOW_COUNT,   /* length windows: the last size records of a key, every advance records */
} rs_window_kind;

/* A window is open until stream time reaches its end + grace (sessions: end
 * + gap + grace); a record arriving for closed windows only is late: dropped,
 * counted in dropped-records, and, when late_topic is set, written there
 * unchanged (Kafka Streams cannot do that). Emit modes: every update (Kafka's
 * emit changes), or with emit_final only the final result once the window
 * closes (suppress until window closes / EmitStrategy.onWindowClose); a
 * closed window is then removed from the store (retention = size + grace).
 * Count windows emit when full (size records), then every advance records;
 * they have no time, grace or lateness. Output keys are rs_windowed_key
 * encodings; session windows merged away emit a null value (emit changes). */
typedef struct rs_windows {
    rs_window_kind kind;
    int64_t size;    /* ms; session: the inactivity gap; count: records */
    int64_t advance; /* time: ms (0 = size, tumbling); count: records (0 = 1) */
    int64_t grace;   /* ms */
    bool emit_final;
    const char *late_topic;
} rs_windows;

/* Windowed aggregation. merger is needed by session windows only (it
 * combines two sessions' aggregates when a record bridges them). Values of
 * count are int64 big-endian. Time and session window stores have the record
 * cache (materialized.no_caching turns it off): with emit changes, updates of
 * a window coalesce until a commit, and a closing window first flushes its
 * store's pending updates. Count and sliding windows emit every update. */
typedef void (*rs_merger_fn)(rs_bytes key, rs_bytes agg1, rs_bytes agg2, rs_buf *out, void *ctx);
RS_API rs_table *rs_grouped_windowed_count(rs_grouped *g, const rs_windows *w, const rs_materialized *m);
RS_API rs_table *rs_grouped_windowed_reduce(rs_grouped *g, const rs_windows *w, rs_reducer_fn fn, void *ctx,
                                            const rs_materialized *m);
RS_API rs_table *rs_grouped_windowed_aggregate(rs_grouped *g, const rs_windows *w, rs_initializer_fn init,
                                               rs_aggregator_fn agg, rs_merger_fn merger, void *ctx,
                                               const rs_materialized *m);

/* ---------------------------------------------------------------- processor API */

typedef struct rs_pctx rs_pctx;       /* a processor's context, one per task */
typedef struct rs_kv_store rs_kv_store;

typedef enum rs_punctuation_type { RS_PUNCT_STREAM_TIME, RS_PUNCT_WALL_CLOCK } rs_punctuation_type;
typedef void (*rs_punctuate_fn)(rs_pctx *pc, int64_t now, void *state);

typedef struct rs_processor_def {
    /* per task: returns the processor's state (may be NULL) */
    void *(*init)(rs_pctx *pc, void *ctx);
    void (*process)(rs_pctx *pc, const rs_record *r, void *state);
    void (*close)(void *state);
    void *ctx;
} rs_processor_def;

/* Adds a key-value store the processors can reach by name. */
RS_API int rs_builder_add_kv_store(rs_builder *b, const char *name, const rs_materialized *m);
RS_API rs_stream *rs_stream_process(rs_stream *s, const rs_processor_def *def, const char *const *stores,
                                    size_t nstores, const char *name);

RS_API void rs_forward(rs_pctx *pc, rs_bytes key, rs_bytes value, int64_t timestamp);
RS_API rs_kv_store *rs_pctx_kv_store(rs_pctx *pc, const char *name); /* NULL unless connected */
RS_API int rs_pctx_schedule(rs_pctx *pc, int64_t interval_ms, rs_punctuation_type type, rs_punctuate_fn fn);
RS_API int64_t rs_pctx_stream_time(const rs_pctx *pc);
RS_API int32_t rs_pctx_partition(const rs_pctx *pc);

/* Key-value stores. get: 1 found (value appended to out), 0 missing. */
typedef int (*rs_kv_fn)(rs_bytes key, rs_bytes value, void *arg); /* non-zero stops */
RS_API int rs_kv_get(rs_kv_store *s, rs_bytes key, rs_buf *out);
RS_API int rs_kv_put(rs_kv_store *s, rs_bytes key, rs_bytes value); /* null value deletes */
RS_API int rs_kv_delete(rs_kv_store *s, rs_bytes key);
/* keys in [from, to] in byte order; a null bound is open */
RS_API int rs_kv_range(rs_kv_store *s, rs_bytes from, rs_bytes to, rs_kv_fn fn, void *arg);
RS_API size_t rs_kv_count(rs_kv_store *s);

/* ---------------------------------------------------------------- topology */

/* Builds the topology; the builder may then only be freed. NULL on error
 * (message in errstr): e.g. a store used by a processor but never added. */
RS_API rs_topology *rs_builder_build(rs_builder *b, char *errstr, size_t errlen);
RS_API void rs_topology_free(rs_topology *t);
/* Kafka Streams' Topology#describe() text; malloc'd, caller frees. */
RS_API char *rs_topology_describe(const rs_topology *t);

/* ---------------------------------------------------------------- the runtime */

/* Runs a topology against Kafka (rilld or any cluster) through librdkafka:
 * num.stream.threads threads, each with its own consumer (group
 * application.id, cooperative-sticky) and producer; one task per assigned
 * (sub-topology, partition); internal repartition and changelog topics
 * (cleanup.policy=compact) are created at start. At-least-once: every
 * commit.interval.ms a thread flushes caches (producing outputs and
 * changelogs), waits for every produced record to be acknowledged, flushes
 * the stores and writes each task's checkpoint file, then commits the input
 * offsets. After a crash the records since the last commit are processed
 * again, so counts may include them twice (never miss them).
 * Stores are restored from their changelogs when a task starts: in-memory
 * stores always from the beginning, RocksDB stores from their checkpoint
 * (or from the beginning, after wiping, when there is none).
 * Co-partitioning: when a sub-topology reads several topics (or a pattern),
 * those topics must have the same partition count (checked at start), and
 * the group uses the range assignor instead (eager: partition p of every
 * topic goes to the same member, so task st_p is whole); librdkafka has no
 * pluggable assignor for a Streams-aware cooperative one. */
typedef struct rs_app rs_app;
RS_API rs_app *rs_app_new(const rs_topology *t, const rs_config *c, char *errstr, size_t errlen);
RS_API int rs_app_start(rs_app *a, char *errstr, size_t errlen);
/* stops the threads after a last commit; the app may then only be freed */
RS_API void rs_app_close(rs_app *a);
RS_API void rs_app_free(rs_app *a);
/* false once a thread stopped on a fatal error (message in errstr) */
RS_API bool rs_app_running(const rs_app *a, char *errstr, size_t errlen);
/* the tasks this instance runs now, as "0_1 0_3 1_1" (sorted) into buf */
RS_API size_t rs_app_tasks(rs_app *a, char *buf, size_t len);
/* "commit-total", "abort-total" (exactly-once: transactions that could
 * not commit and were rolled back; Rill's) and "restored-records" (live), "process-total",
 * "dropped-records", "skipped-records" (a task's counts are added when it
 * closes: on revoke and at rs_app_free), over all threads; -1 for an unknown
 * name */
RS_API int64_t rs_app_metric(rs_app *a, const char *name);

/* ---------------------------------------------------------------- test driver */

/* Kafka Streams' TopologyTestDriver: one task per sub-topology, partition 0,
 * records processed synchronously; records written to internal repartition
 * topics are processed before rs_driver_pipe returns. By default the driver
 * commits (flushes caches) after each piped record; with auto-commit off it
 * commits when rs_driver_commit is called or wall-clock time passes
 * commit.interval.ms. */
typedef struct rs_driver rs_driver;
RS_API rs_driver *rs_driver_new(const rs_topology *t, const rs_config *c, int64_t wall_clock_ms, char *errstr,
                                size_t errlen);
RS_API void rs_driver_free(rs_driver *d);
RS_API void rs_driver_set_auto_commit(rs_driver *d, bool on);
RS_API int rs_driver_pipe(rs_driver *d, const char *topic, rs_bytes key, rs_bytes value, int64_t timestamp);
RS_API int rs_driver_pipe_str(rs_driver *d, const char *topic, const char *key, const char *value, int64_t timestamp);
/* key, value, timestamp and headers of r (topic/partition/offset ignored) */
RS_API int rs_driver_pipe_record(rs_driver *d, const char *topic, const rs_record *r);
RS_API void rs_driver_advance_wall_clock(rs_driver *d, int64_t ms);
RS_API void rs_driver_commit(rs_driver *d);
/* Pops the oldest record written to topic; false when none. The record's
 * slices stay valid until the next call on the driver. */
RS_API bool rs_driver_read(rs_driver *d, const char *topic, rs_record *out);
RS_API size_t rs_driver_queue_size(const rs_driver *d, const char *topic);
RS_API rs_kv_store *rs_driver_kv_store(rs_driver *d, const char *name);
/* metrics by Kafka's names: "dropped-records", "skipped-records",
 * "process-total", "punctuate-total" */
RS_API int64_t rs_driver_metric(const rs_driver *d, const char *name);

#ifdef __cplusplus
}
#endif
#endif
