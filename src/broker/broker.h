/*
 * broker — rilld: configuration, the topic catalog, request dispatch and one
 * file per API family. Uses storage (partition logs), net (event loops) and
 * proto (codec, record batches) and coord (groups and offsets); never
 * librdkafka.
 *
 * Owns: bk_broker_t (one per process): its config, the log dirs (st_mgr_t),
 * the topic table, the network server, the cluster id and node id.
 *
 * Invariants:
 *  B1. The topic table is guarded by b_topics_lock (a rwlock): request
 *      handlers look topics up and append/read under the read lock; creating
 *      and deleting topics take the write lock. Nothing outside the lock keeps
 *      a topic pointer: parked requests keep names and re-look them up.
 *  B2. The catalog file (`<first log dir>/rill-topics`) is the authority on
 *      which topics exist; it is replaced atomically (write, fsync, rename)
 *      after the partition directories of a new topic exist and before the
 *      directories of a deleted topic are removed.
 *  B3. A request's response is built in the request's arena and encoded into
 *      the connection's next response slot; slots complete in order (net).
 *  B5, B6. Producer ids: see txn.c.
 *  B4. ApiVersions advertises exactly the rows of bk_apis[]: served versions,
 *      with old versions we only refuse (UNSUPPORTED_VERSION per request)
 *      included where clients need them in the range (see docs/protocol.md).
 *
 * Threads: handlers run on event-loop threads; storage callbacks (sync
 * waiters, durable offset advances) run on the flusher thread and only post
 * to event loops.
 */
#ifndef RILL_BROKER_H
#define RILL_BROKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "base/base.h"
#include "coord/coord.h"
#include "net/net.h"
#include "proto/proto.h"
#include "storage/storage.h"

/* ---- configuration (config.c) ------------------------------------------------------ */
typedef enum { BK_CFG_STRING, BK_CFG_INT, BK_CFG_BOOL } bk_cfg_type_t;

/* X(field, "kafka.name", type, "default", "documentation") */
#define BK_CONFIGS(X)                                                                                       \
    X(listeners, "listeners", BK_CFG_STRING, "PLAINTEXT://127.0.0.1:9092",                                 \
      "Listener to bind, PLAINTEXT://HOST:PORT (IPv4 host; port 0 picks a free port)")                     \
    X(advertised_listeners, "advertised.listeners", BK_CFG_STRING, "",                                     \
      "Listener given to clients in Metadata (default: listeners)")                                         \
    X(log_dirs, "log.dirs", BK_CFG_STRING, "./var", "Comma-separated directories holding partition logs")   \
    X(node_id, "node.id", BK_CFG_INT, "1", "This broker's id (broker.id is accepted as a synonym)")         \
    X(num_network_threads, "num.network.threads", BK_CFG_INT, "0",                                          \
      "Event-loop threads; 0 means one per CPU core")                                                       \
    X(num_partitions, "num.partitions", BK_CFG_INT, "1", "Default partitions for new topics")              \
    X(default_replication_factor, "default.replication.factor", BK_CFG_INT, "1",                           \
      "Default replication factor (single node: only 1 is valid)")                                         \
    X(auto_create_topics_enable, "auto.create.topics.enable", BK_CFG_BOOL, "true",                          \
      "Create a topic when Metadata or Produce names one that does not exist")                              \
    X(log_segment_bytes, "log.segment.bytes", BK_CFG_INT, "1073741824", "Segment file size before a roll")  \
    X(log_roll_ms, "log.roll.ms", BK_CFG_INT, "604800000", "Roll a segment this long after its first record") \
    X(log_roll_hours, "log.roll.hours", BK_CFG_INT, "168", "log.roll.ms in hours (used when log.roll.ms is not set)") \
    X(log_retention_ms, "log.retention.ms", BK_CFG_INT, "604800000",                                        \
      "Delete a segment once its newest record is this old (-1: never); default from log.retention.hours")   \
    X(log_retention_hours, "log.retention.hours", BK_CFG_INT, "168",                                        \
      "log.retention.ms in hours (used when log.retention.ms is not set)")                                 \
    X(log_retention_bytes, "log.retention.bytes", BK_CFG_INT, "-1",                                         \
      "Delete the oldest segments while a partition stays at least this big without them (-1: no limit)")  \
    X(log_retention_check_interval_ms, "log.retention.check.interval.ms", BK_CFG_INT, "300000",             \
      "How often the cleaner thread applies retention")                                                    \
    X(log_cleanup_policy, "log.cleanup.policy", BK_CFG_STRING, "delete",                                    \
      "Default cleanup.policy of topics: delete, compact or compact,delete")                               \
    X(log_cleaner_enable, "log.cleaner.enable", BK_CFG_BOOL, "true",                                        \
      "Run log compaction for topics whose cleanup.policy contains compact")                               \
    X(log_cleaner_dedupe_buffer_size, "log.cleaner.dedupe.buffer.size", BK_CFG_INT, "134217728",            \
      "Memory budget of the cleaner's key->offset map per log dir (larger logs take several passes)")       \
    X(log_cleaner_backoff_ms, "log.cleaner.backoff.ms", BK_CFG_INT, "15000",                                \
      "How often the cleaner looks for logs to compact")                                                   \
    X(producer_id_expiration_ms, "producer.id.expiration.ms", BK_CFG_INT, "86400000",                       \
      "Forget an idempotent producer's state in a partition after it has not written for this long")       \
    X(log_index_interval_bytes, "log.index.interval.bytes", BK_CFG_INT, "4096",                             \
      "Bytes of log between two offset-index entries")                                                     \
    X(log_index_size_max_bytes, "log.index.size.max.bytes", BK_CFG_INT, "10485760",                         \
      "Maximum size of one offset index; the segment rolls when it is full")                                \
    X(message_max_bytes, "message.max.bytes", BK_CFG_INT, "1048588",                                        \
      "Largest record batch the broker accepts (topic config max.message.bytes)")                          \
    X(socket_request_max_bytes, "socket.request.max.bytes", BK_CFG_INT, "104857600",                        \
      "Largest request frame; a bigger one closes the connection")                                          \
    X(log_flush_interval_messages, "log.flush.interval.messages", BK_CFG_INT, "9223372036854775807",        \
      "Force an fsync after this many unsynced records (the flusher syncs continuously anyway)")            \
    X(log_flush_interval_ms, "log.flush.interval.ms", BK_CFG_INT, "9223372036854775807",                    \
      "Force an fsync when unsynced data is this old (the flusher syncs continuously anyway)")             \
    X(log_message_timestamp_type, "log.message.timestamp.type", BK_CFG_STRING, "CreateTime",                \
      "CreateTime or LogAppendTime: default timestamp type of topics")                                      \
    X(log_message_timestamp_difference_max_ms, "log.message.timestamp.difference.max.ms", BK_CFG_INT,       \
      "9223372036854775807",                                                                                \
      "Largest difference between a CreateTime record timestamp and the broker's clock (topic default)")   \
    X(compression_type, "compression.type", BK_CFG_STRING, "producer",                                      \
      "Default codec of topics: producer (keep the batch's) or uncompressed, gzip, snappy, lz4, zstd")      \
    X(delete_topic_enable, "delete.topic.enable", BK_CFG_BOOL, "true", "Allow DeleteTopics")               \
    X(max_decompressed_batch_bytes, "rill.max.decompressed.batch.bytes", BK_CFG_INT, "67108864",           \
      "Cap on one batch's decompressed size during validation (decompression bombs fail past it)")        \
    X(offsets_topic_num_partitions, "offsets.topic.num.partitions", BK_CFG_INT, "50",                      \
      "Partitions of __consumer_offsets when it is created (group -> partition by hash of the group id)")   \
    X(offsets_topic_segment_bytes, "offsets.topic.segment.bytes", BK_CFG_INT, "104857600",                 \
      "segment.bytes of __consumer_offsets when it is created (it is compacted)")                          \
    X(group_initial_rebalance_delay_ms, "group.initial.rebalance.delay.ms", BK_CFG_INT, "3000",              \
      "How long the first rebalance of an empty group waits for more members to join")                     \
    X(group_min_session_timeout_ms, "group.min.session.timeout.ms", BK_CFG_INT, "6000",                     \
      "Smallest session.timeout.ms a group member may ask for")                                            \
    X(group_max_session_timeout_ms, "group.max.session.timeout.ms", BK_CFG_INT, "1800000",                  \
      "Largest session.timeout.ms a group member may ask for")                                             \
    X(offset_metadata_max_bytes, "offset.metadata.max.bytes", BK_CFG_INT, "4096",                           \
      "Largest metadata string of a committed offset")                                                     \
    X(transaction_state_log_num_partitions, "transaction.state.log.num.partitions", BK_CFG_INT, "50",        \
      "Partitions of __transaction_state when it is created (id -> partition by hash of the transactional.id)") \
    X(transaction_state_log_segment_bytes, "transaction.state.log.segment.bytes", BK_CFG_INT, "104857600",  \
      "segment.bytes of __transaction_state when it is created (it is compacted)")                         \
    X(transaction_max_timeout_ms, "transaction.max.timeout.ms", BK_CFG_INT, "900000",                       \
      "Largest transaction.timeout.ms a producer may ask for (else INVALID_TRANSACTION_TIMEOUT)")          \
    X(transaction_abort_timed_out_transaction_cleanup_interval_ms,                                          \
      "transaction.abort.timed.out.transaction.cleanup.interval.ms", BK_CFG_INT, "10000",                   \
      "How often the transaction coordinator aborts transactions older than their timeout")                \
    X(transactional_id_expiration_ms, "transactional.id.expiration.ms", BK_CFG_INT, "604800000",             \
      "Remove a transactional id (Empty or Complete*) not updated for this long (T7)")                      \
    X(transaction_remove_expired_transaction_cleanup_interval_ms,                                           \
      "transaction.remove.expired.transaction.cleanup.interval.ms", BK_CFG_INT, "3600000",                  \
      "How often the transaction coordinator removes expired transactional ids")                           \
    X(log_level, "rill.log.level", BK_CFG_STRING, "info", "debug, info, warn or error")

typedef struct {
#define BK__CFG_FIELD(field, name, type, def, doc) char *field##_str; int64_t field;
    BK_CONFIGS(BK__CFG_FIELD)
#undef BK__CFG_FIELD
    char *listen_host;
    int listen_port;
    char *adv_host;
    int adv_port;
    bool log_roll_ms_set;
    bool log_retention_ms_set;
} bk_config_t;

/* One setting's description (the BK_CONFIGS table, config.c). */
typedef struct {
    const char *name;
    bk_cfg_type_t type;
    const char *def;
    const char *doc;
    size_t str_off;
    size_t val_off;
} bk_cfg_desc_t;
int bk_config_ndescs(void);
const bk_cfg_desc_t *bk_config_desc(int i);
/* By name (broker.id is taken as node.id); NULL when unknown. */
const bk_cfg_desc_t *bk_config_find(const char *name);
#define BK_CFG_STR(cfg, d) (*(char **)((char *)(cfg) + (d)->str_off))
#define BK_CFG_VAL(cfg, d) (*(int64_t *)((char *)(cfg) + (d)->val_off))

/* Parses argv (`--config FILE`, `--name value`, `--name=value`, `--help`).
 * Returns 0, 1 when --help was printed, or -1 after printing an error. */
int bk_config_load(bk_config_t *cfg, int argc, char **argv);
void bk_config_free(bk_config_t *cfg);
void bk_config_print_help(FILE *f);

/* ---- topics (topics.c) --------------------------------------------------------------- */
typedef struct bk_partition bk_partition_t;
typedef struct bk_topic bk_topic_t;
typedef struct bk_broker bk_broker_t;

#define BK_MAX_TOPIC_CONFIGS 32
typedef struct {
    int n;
    char *names[BK_MAX_TOPIC_CONFIGS];
    char *values[BK_MAX_TOPIC_CONFIGS];
} bk_topic_configs_t;

struct bk_partition {
    bk_topic_t *p_topic;
    int32_t p_index;
    st_log_t *p_log;
    pthread_mutex_t p_waiters_mu;  /* guards p_waiters (parked fetches) */
    struct bk_fetch_waiter *p_waiters;
};

struct bk_topic {
    bk_topic_t *t_next;    /* name hash chain */
    bk_topic_t *t_id_next; /* topic-id hash chain */
    char *t_name;
    kp_uuid_t t_id;
    int32_t t_npartitions;
    bk_partition_t **t_parts;   /* each allocated alone: a partition never moves (CreatePartitions grows the array) */
    bk_topic_configs_t t_configs;
    st_log_config_t t_logcfg;
    int64_t t_max_message_bytes;
    bool t_internal;
    int8_t t_codec;              /* compression.type: -1 producer, else a kp_compression_t (configs.c) */
    int64_t t_ts_diff_max_ms;    /* message.timestamp.difference.max.ms */
};

/* CreatePartitions: grows t to count partitions (write lock taken inside);
 * the new partition dirs exist before the catalog names them (B2).
 * INVALID_PARTITIONS when count <= the current count. */
int bk_topic_add_partitions(bk_broker_t *b, const char *name, size_t len, int32_t count, bool validate_only,
                            char *err_msg, size_t err_size);
/* Kafka's topic name rule: 1..249 of [a-zA-Z0-9._-], not "." or "..". */
bool bk_topic_name_valid(const char *p, size_t len);
/* Looks a topic up by name; caller holds b_topics_lock (read or write). */
bk_topic_t *bk_topic_find(bk_broker_t *b, const char *p, size_t len);
bk_topic_t *bk_topic_find_id(bk_broker_t *b, const kp_uuid_t *id);
/* Creates a topic (write lock taken inside). err_msg gets a reason on error.
 * Returns 0 or a Kafka error code. */
int bk_topic_create(bk_broker_t *b, const char *name, size_t name_len, int32_t partitions, int16_t rf,
                    const bk_topic_configs_t *configs, bool validate_only, char *err_msg, size_t err_size,
                    kp_uuid_t *id_out);
int bk_topic_delete(bk_broker_t *b, const char *name, size_t name_len, kp_uuid_t *id_out);
/* Loads the catalog and opens every partition log. */
int bk_topics_load(bk_broker_t *b);
void bk_topics_close(bk_broker_t *b);
/* Validates topic configs (name known, value well-formed); fills log config. */
int bk_topic_configs_apply(bk_broker_t *b, const bk_topic_configs_t *c, st_log_config_t *lc, int64_t *max_msg,
                           char *err_msg, size_t err_size);
/* The topic settings that live outside st_log_config_t (compression.type,
 * message.timestamp.difference.max.ms), from c over the broker defaults.
 * configs.c; values already validated by bk_topic_configs_apply. */
void bk_topic_configs_extra(bk_broker_t *b, const bk_topic_configs_t *c, int8_t *codec, int64_t *ts_diff_max_ms);
/* Replaces the config overrides of topic `name` (already validated): the
 * catalog is rewritten and open logs take the new settings at once. Write
 * lock taken inside. 0, RB_UNKNOWN_TOPIC_OR_PARTITION or KAFKA_STORAGE_ERROR. */
int bk_topic_set_configs(bk_broker_t *b, const char *name, size_t len, const bk_topic_configs_t *c);
/* Recomputes every topic's settings from its overrides and the broker's
 * (dynamic) defaults and hands them to the open logs. Write lock held. */
void bk_topics_reapply_configs(bk_broker_t *b);
void bk_topic_configs_copy(bk_topic_configs_t *dst, const bk_topic_configs_t *src);
void bk_topic_configs_free(bk_topic_configs_t *c);
/* %-encoding of catalog values (topics.c; also the broker config file). */
void bk_pct_encode(rb_buf_t *b, const char *s);
char *bk_pct_decode(const char *s);
/* Whether v is one of the '|'-separated choices (topics.c). */
bool bk_enum_has(const char *choices, const char *v);
/* Calls fn for each topic under the read lock the caller holds. */
#define BK_TOPICS_FOREACH(b, t) \
    for (size_t bk__i = 0; bk__i < (b)->b_ntopic_buckets; bk__i++) \
        for (bk_topic_t *t = (b)->b_topic_buckets[bk__i]; t; t = t->t_next)

/* ---- the broker ------------------------------------------------------------------------ */
struct bk_broker {
    bk_config_t b_cfg;
    int b_nmgrs;
    st_mgr_t **b_mgrs;
    rn_server_t *b_server;
    char b_cluster_id[32];
    int32_t b_node_id;
    pthread_rwlock_t b_topics_lock;
    bk_topic_t **b_topic_buckets;    /* by name */
    bk_topic_t **b_topic_id_buckets; /* by topic id; same bucket count */
    size_t b_ntopic_buckets;
    size_t b_ntopics;
    pthread_mutex_t b_catalog_mu;  /* serialises catalog rewrites */
    atomic_bool b_stopping;
    cg_coord_t *b_coord;           /* the group coordinator (groups.c) */
    struct bk_dyncfg *b_dyn;       /* dynamic broker configs (configs.c) */
    pthread_mutex_t b_pid_mu;      /* producer-id allocation (txn.c, B5) */
    int64_t b_pid_reserved;        /* first id not reserved on disk */
    _Atomic int64_t b_pid_next;    /* next id to hand out */
    struct bk_txnc *b_txn;         /* the transaction coordinator (txncoord.c) */
};

int bk_broker_start(bk_broker_t *b);
void bk_broker_stop(bk_broker_t *b);

/* ---- requests (dispatch.c) -------------------------------------------------------------- */
typedef struct bk_req {
    bk_broker_t *r_broker;
    rn_conn_t *r_conn;
    rn_slot_t *r_slot;
    uint8_t *r_frame;        /* the request bytes (owned) */
    size_t r_frame_len;
    kp_req_header_t r_hdr;
    const kp_api_desc_t *r_api;
    void *r_body;            /* decoded request (arena) */
    rb_arena_t r_arena;
    int64_t r_start_us;
} bk_req_t;

typedef struct {
    int16_t key;
    int16_t min_ver;     /* advertised minimum (0 for every served API, see B4) */
    int16_t serve_min;   /* first version actually served; older get UNSUPPORTED_VERSION */
    int16_t max_ver;
    /* Handles a decoded request. Returns 0 after it has completed (or
     * arranged to complete) the response; the dispatcher then frees nothing —
     * the handler owns r until bk_req_respond/bk_req_free. */
    void (*handler)(bk_req_t *r);
    /* Fills an error response for every item of the request (per-request
     * UNSUPPORTED_VERSION answers); NULL when the API has a top-level code. */
    void (*error_response)(bk_req_t *r, int16_t err, void *resp);
} bk_api_t;

extern const bk_api_t bk_apis[];
extern const int bk_napis;

void bk_dispatch_frame(rn_conn_t *c, uint8_t *frame, size_t len, void *ud);
void bk_dispatch_close(rn_conn_t *c, void *ud);
/* Allocates the response struct for r's API with defaults set. */
void *bk_req_resp_new(bk_req_t *r);
/* Encodes resp as r's response, completes r's slot and frees r. Loop thread. */
void bk_req_respond(bk_req_t *r, void *resp);
/* Completes r's slot with no response (acks=0) and frees r. */
void bk_req_respond_none(bk_req_t *r);
void bk_req_free(bk_req_t *r);
/* arena helpers */
kp_str_t bk_str(bk_req_t *r, const char *s);
kp_str_t bk_strn(bk_req_t *r, const char *s, size_t n);
/* Response arrays come from the request's arena, uncapped once the request
 * is decoded (dispatch.c); running out of memory there aborts (base.h I4). */
#define BK_ALLOC_ARR(r, arr, count)                                                        \
    do {                                                                                   \
        (arr).n = (int32_t)(count);                                                        \
        (arr).v = (count) ? bk_arena_alloc_or_die(&(r)->r_arena, sizeof(*(arr).v) * (size_t)(count)) : NULL; \
    } while (0)
void *bk_arena_alloc_or_die(rb_arena_t *a, size_t n);

/* ---- handlers (one file per family) ----------------------------------------------------- */
void bk_handle_api_versions(bk_req_t *r);
void bk_handle_metadata(bk_req_t *r);
void bk_handle_produce(bk_req_t *r);
void bk_handle_fetch(bk_req_t *r);
void bk_handle_list_offsets(bk_req_t *r);
void bk_handle_create_topics(bk_req_t *r);
void bk_handle_delete_topics(bk_req_t *r);
void bk_handle_describe_cluster(bk_req_t *r);
void bk_handle_describe_log_dirs(bk_req_t *r);
void bk_handle_find_coordinator(bk_req_t *r);
void bk_handle_join_group(bk_req_t *r);
void bk_handle_sync_group(bk_req_t *r);
void bk_handle_heartbeat(bk_req_t *r);
void bk_handle_leave_group(bk_req_t *r);
void bk_handle_offset_commit(bk_req_t *r);
void bk_handle_offset_fetch(bk_req_t *r);
void bk_handle_list_groups(bk_req_t *r);
void bk_handle_describe_groups(bk_req_t *r);
void bk_handle_delete_groups(bk_req_t *r);
void bk_handle_offset_delete(bk_req_t *r);
void bk_handle_delete_records(bk_req_t *r);
void bk_handle_create_partitions(bk_req_t *r);
/* configs.c: DescribeConfigs, AlterConfigs, IncrementalAlterConfigs and the
 * dynamic broker configs file (<first log dir>/rill-broker-configs). */
void bk_handle_describe_configs(bk_req_t *r);
void bk_handle_alter_configs(bk_req_t *r);
void bk_handle_incremental_alter_configs(bk_req_t *r);
/* Loads the dynamic broker configs (after the log dirs open, before topics
 * load) and applies them over the static ones. 0 or -1. */
int bk_dyncfg_load(bk_broker_t *b);
void bk_dyncfg_free(bk_broker_t *b);
void bk_handle_init_producer_id(bk_req_t *r);
void bk_handle_describe_producers(bk_req_t *r);
/* Producer ids (txn.c): load the allocator at start; allocate (-1 on failure);
 * was pid handed out by this broker (B5, B6)? */
int bk_pids_load(bk_broker_t *b);
int64_t bk_pid_allocate(bk_broker_t *b);
bool bk_pid_issued(bk_broker_t *b, int64_t pid);
/* The transaction coordinator (txncoord.c, T1-T9). */
typedef struct bk_txnc bk_txnc_t;
int bk_txn_start(bk_broker_t *b);
void bk_txn_stop(bk_broker_t *b);
void bk_txn_free(bk_broker_t *b);
/* InitProducerId with a transactional.id (resp allocated, defaults set). */
void bk_txn_init_producer_id(bk_req_t *r, void *resp);
void bk_handle_add_partitions_to_txn(bk_req_t *r);
void bk_handle_end_txn(bk_req_t *r);
void bk_handle_add_offsets_to_txn(bk_req_t *r);
void bk_handle_txn_offset_commit(bk_req_t *r);
void bk_handle_describe_transactions(bk_req_t *r);
void bk_handle_list_transactions(bk_req_t *r);
/* Whether a transaction holds an offset of group for topic-part not yet
 * committed (OffsetFetch require_stable, T6). */
bool bk_txn_offset_pending(bk_broker_t *b, const char *group, size_t gl, const char *topic, size_t tl, int32_t part);
/* A transactional batch for topic-part: 0 with the coordinator locked (append,
 * then bk_txn_produce_unlock), or the Kafka error to answer (T3). */
int bk_txn_produce_lock(bk_broker_t *b, const kp_str_t *tid, int64_t pid, int16_t epoch, const char *topic,
                        int32_t part);
void bk_txn_produce_unlock(bk_broker_t *b);
void bk_offset_commit_error_response(bk_req_t *r, int16_t err, void *resp);
/* Creates an internal compacted topic (__consumer_offsets,
 * __transaction_state) if absent (groups.c). 0 or -1 (logged). */
int bk_internal_topic_ensure(bk_broker_t *b, const char *name, int32_t partitions, int64_t segment_bytes);
/* Creates __consumer_offsets if absent and starts the coordinator. */
int bk_groups_start(bk_broker_t *b);
void bk_produce_error_response(bk_req_t *r, int16_t err, void *resp);
void bk_fetch_error_response(bk_req_t *r, int16_t err, void *resp);
void bk_list_offsets_error_response(bk_req_t *r, int16_t err, void *resp);
void bk_metadata_error_response(bk_req_t *r, int16_t err, void *resp);
void bk_create_topics_error_response(bk_req_t *r, int16_t err, void *resp);
void bk_delete_topics_error_response(bk_req_t *r, int16_t err, void *resp);

/* Fetch long-poll wakeups (fetch.c): called on the flusher thread. */
void bk_fetch_on_durable(void *ctx, st_log_t *l, int64_t hw);
/* Wakes every parked fetch on a partition (topic deletion). Write lock held. */
void bk_fetch_wake_all(bk_partition_t *p);

#endif
