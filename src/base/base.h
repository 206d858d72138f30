/*
 * base — the bottom layer every other module uses.
 *
 * Owns: byte slices and growable buffers, a bounds-checked reader, per-request
 * arenas, varints (unsigned and zigzag, as Kafka uses them), CRC-32C, clocks,
 * logging, and the one error table (Kafka's wire codes plus Rill's internal
 * negative codes).
 *
 * Invariants:
 *  1. A reader (rb_rd_t) never reads past its end: every getter checks the
 *     remaining length first and, on shortage, sets rd->err and returns a zero
 *     value; once rd->err is set every later read fails too. Callers check
 *     rb_rd_ok() once at the end of a decode instead of after every field.
 *  2. Kafka strings are never NUL-terminated here; a slice is {p, len}.
 *  3. An arena hands out memory that lives until rb_arena_reset/free; it never
 *     hands out more than its cap (rb_arena_alloc returns NULL past it), so an
 *     unchecked wire length can never make us allocate without bound.
 *  4. rb_buf_* abort on out-of-memory (the broker cannot make progress then).
 *
 * Threads: everything here is reentrant; an arena, buffer or reader belongs to
 * one thread at a time. rb_log may be called from any thread.
 */
#ifndef RILL_BASE_H
#define RILL_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define RB_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define RB_MIN(a, b) ((a) < (b) ? (a) : (b))
#define RB_MAX(a, b) ((a) > (b) ? (a) : (b))
#define RB_UNUSED(x) ((void)(x))

/* ---- errors -------------------------------------------------------------
 * One table: Kafka wire codes keep Kafka's numbers (Errors.java); Rill's
 * internal codes are negative and never go on the wire. */
#define RB_ERRORS(X)                                                                 \
    X(UNKNOWN_SERVER_ERROR, -1, "The server experienced an unexpected error")        \
    X(NONE, 0, "Success")                                                            \
    X(OFFSET_OUT_OF_RANGE, 1, "The requested offset is out of range")                \
    X(CORRUPT_MESSAGE, 2, "The message failed its CRC check or is otherwise corrupt") \
    X(UNKNOWN_TOPIC_OR_PARTITION, 3, "This server does not host this topic-partition") \
    X(INVALID_FETCH_SIZE, 4, "The requested fetch size is invalid")                  \
    X(LEADER_NOT_AVAILABLE, 5, "There is no leader for this topic-partition")        \
    X(NOT_LEADER_OR_FOLLOWER, 6, "This server is not the leader for that partition") \
    X(REQUEST_TIMED_OUT, 7, "The request timed out")                                 \
    X(BROKER_NOT_AVAILABLE, 8, "The broker is not available")                        \
    X(REPLICA_NOT_AVAILABLE, 9, "The replica is not available")                      \
    X(MESSAGE_TOO_LARGE, 10, "The request included a message larger than the max message size the server will accept") \
    X(STALE_CONTROLLER_EPOCH, 11, "The controller moved to another broker")          \
    X(OFFSET_METADATA_TOO_LARGE, 12, "The metadata field of the offset request was too large") \
    X(NETWORK_EXCEPTION, 13, "The server disconnected before a response was received") \
    X(COORDINATOR_LOAD_IN_PROGRESS, 14, "The coordinator is loading and hence can't process requests") \
    X(COORDINATOR_NOT_AVAILABLE, 15, "The coordinator is not available")             \
    X(NOT_COORDINATOR, 16, "This is not the correct coordinator")                    \
    X(INVALID_TOPIC_EXCEPTION, 17, "The request attempted to perform an operation on an invalid topic") \
    X(RECORD_LIST_TOO_LARGE, 18, "The request included message batch larger than the configured segment size on the server") \
    X(NOT_ENOUGH_REPLICAS, 19, "Messages are rejected since there are fewer in-sync replicas than required") \
    X(NOT_ENOUGH_REPLICAS_AFTER_APPEND, 20, "Messages are written to the log, but to fewer in-sync replicas than required") \
    X(INVALID_REQUIRED_ACKS, 21, "Produce request specified an invalid value for required acks") \
    X(ILLEGAL_GENERATION, 22, "Specified group generation id is not valid")         \
    X(INCONSISTENT_GROUP_PROTOCOL, 23, "The group member's supported protocols are incompatible with those of existing members") \
    X(INVALID_GROUP_ID, 24, "The configured groupId is invalid")                     \
    X(UNKNOWN_MEMBER_ID, 25, "The coordinator is not aware of this member")          \
    X(INVALID_SESSION_TIMEOUT, 26, "The session timeout is not within the range allowed by the broker") \
    X(REBALANCE_IN_PROGRESS, 27, "The group is rebalancing, so a rejoin is needed")  \
    X(INVALID_COMMIT_OFFSET_SIZE, 28, "The committing offset data size is not valid") \
    X(TOPIC_AUTHORIZATION_FAILED, 29, "Topic authorization failed")                  \
    X(GROUP_AUTHORIZATION_FAILED, 30, "Group authorization failed")                  \
    X(CLUSTER_AUTHORIZATION_FAILED, 31, "Cluster authorization failed")              \
    X(INVALID_TIMESTAMP, 32, "The timestamp of the message is out of acceptable range") \
    X(UNSUPPORTED_SASL_MECHANISM, 33, "The broker does not support the requested SASL mechanism") \
    X(ILLEGAL_SASL_STATE, 34, "Request is not valid given the current SASL state")   \
    X(UNSUPPORTED_VERSION, 35, "The version of API is not supported")                \
    X(TOPIC_ALREADY_EXISTS, 36, "Topic with this name already exists")               \
    X(INVALID_PARTITIONS, 37, "Number of partitions is below 1")                     \
    X(INVALID_REPLICATION_FACTOR, 38, "Replication factor is below 1 or larger than the number of available brokers") \
    X(INVALID_REPLICA_ASSIGNMENT, 39, "Replica assignment is invalid")               \
    X(INVALID_CONFIG, 40, "Configuration is invalid")                                \
    X(NOT_CONTROLLER, 41, "This is not the correct controller for this cluster")     \
    X(INVALID_REQUEST, 42, "This most likely occurs because of a request being malformed by the client library or the message was sent to an incompatible broker") \
    X(UNSUPPORTED_FOR_MESSAGE_FORMAT, 43, "The message format version on the broker does not support the request") \
    X(POLICY_VIOLATION, 44, "Request parameters do not satisfy the configured policy") \
    X(OUT_OF_ORDER_SEQUENCE_NUMBER, 45, "The broker received an out of order sequence number") \
    X(DUPLICATE_SEQUENCE_NUMBER, 46, "The broker received a duplicate sequence number") \
    X(INVALID_PRODUCER_EPOCH, 47, "Producer attempted to produce with an old epoch") \
    X(INVALID_TXN_STATE, 48, "The producer attempted a transactional operation in an invalid state") \
    X(INVALID_PRODUCER_ID_MAPPING, 49, "The producer attempted to use a producer id which is not currently assigned to its transactional id") \
    X(INVALID_TRANSACTION_TIMEOUT, 50, "The transaction timeout is larger than the maximum value allowed by the broker") \
    X(CONCURRENT_TRANSACTIONS, 51, "The producer attempted to update a transaction while another concurrent operation on the same transaction was ongoing") \
    X(TRANSACTION_COORDINATOR_FENCED, 52, "The transaction coordinator sending a WriteTxnMarker is no longer the current coordinator") \
    X(TRANSACTIONAL_ID_AUTHORIZATION_FAILED, 53, "Transactional Id authorization failed") \
    X(SECURITY_DISABLED, 54, "Security features are disabled")                       \
    X(OPERATION_NOT_ATTEMPTED, 55, "The broker did not attempt to execute this operation") \
    X(KAFKA_STORAGE_ERROR, 56, "Disk error when trying to access log file on the disk") \
    X(LOG_DIR_NOT_FOUND, 57, "The user-specified log directory is not found in the broker config") \
    X(SASL_AUTHENTICATION_FAILED, 58, "SASL Authentication failed")                  \
    X(UNKNOWN_PRODUCER_ID, 59, "This exception is raised by the broker if it could not locate the producer metadata") \
    X(REASSIGNMENT_IN_PROGRESS, 60, "A partition reassignment is in progress")       \
    X(DELEGATION_TOKEN_AUTH_DISABLED, 61, "Delegation Token feature is not enabled") \
    X(DELEGATION_TOKEN_NOT_FOUND, 62, "Delegation Token is not found on server")     \
    X(DELEGATION_TOKEN_OWNER_MISMATCH, 63, "Specified Principal is not valid Owner/Renewer") \
    X(DELEGATION_TOKEN_REQUEST_NOT_ALLOWED, 64, "Delegation Token requests are not allowed on PLAINTEXT/1-way SSL channels") \
    X(DELEGATION_TOKEN_AUTHORIZATION_FAILED, 65, "Delegation Token authorization failed") \
    X(DELEGATION_TOKEN_EXPIRED, 66, "Delegation Token is expired")                   \
    X(INVALID_PRINCIPAL_TYPE, 67, "Supplied principalType is not supported")         \
    X(NON_EMPTY_GROUP, 68, "The group is not empty")                                 \
    X(GROUP_ID_NOT_FOUND, 69, "The group id does not exist")                         \
    X(FETCH_SESSION_ID_NOT_FOUND, 70, "The fetch session ID was not found")          \
    X(INVALID_FETCH_SESSION_EPOCH, 71, "The fetch session epoch is invalid")         \
    X(LISTENER_NOT_FOUND, 72, "There is no listener on the leader broker that matches the listener on which metadata request was processed") \
    X(TOPIC_DELETION_DISABLED, 73, "Topic deletion is disabled")                     \
    X(FENCED_LEADER_EPOCH, 74, "The leader epoch in the request is older than the epoch on the broker") \
    X(UNKNOWN_LEADER_EPOCH, 75, "The leader epoch in the request is newer than the epoch on the broker") \
    X(UNSUPPORTED_COMPRESSION_TYPE, 76, "The requesting client does not support the compression type of given partition") \
    X(STALE_BROKER_EPOCH, 77, "Broker epoch has changed")                            \
    X(OFFSET_NOT_AVAILABLE, 78, "The leader high watermark has not caught up from a recent leader election so the offsets cannot be guaranteed to be monotonically increasing") \
    X(MEMBER_ID_REQUIRED, 79, "The group member needs to have a valid member id before actually entering a consumer group") \
    X(PREFERRED_LEADER_NOT_AVAILABLE, 80, "The preferred leader was not available")  \
    X(GROUP_MAX_SIZE_REACHED, 81, "The consumer group has reached its max size")     \
    X(FENCED_INSTANCE_ID, 82, "The broker rejected this static consumer since another consumer with the same group.instance.id has registered with a different member.id") \
    X(ELIGIBLE_LEADERS_NOT_AVAILABLE, 83, "Eligible topic partition leaders are not available") \
    X(ELECTION_NOT_NEEDED, 84, "Leader election not needed for topic partition")     \
    X(NO_REASSIGNMENT_IN_PROGRESS, 85, "No partition reassignment is in progress")   \
    X(GROUP_SUBSCRIBED_TO_TOPIC, 86, "Deleting offsets of a topic is forbidden while the consumer group is actively subscribed to it") \
    X(INVALID_RECORD, 87, "This record has failed the validation on broker and hence will be rejected") \
    X(UNSTABLE_OFFSET_COMMIT, 88, "There are unstable offsets that need to be cleared") \
    X(THROTTLING_QUOTA_EXCEEDED, 89, "The throttling quota has been exceeded")        \
    X(PRODUCER_FENCED, 90, "There is a newer producer with the same transactionalId which fences the current one") \
    X(RESOURCE_NOT_FOUND, 91, "A request illegally referred to a resource that does not exist") \
    X(DUPLICATE_RESOURCE, 92, "A request illegally referred to the same resource twice") \
    X(UNACCEPTABLE_CREDENTIAL, 93, "Requested credential would not meet criteria for acceptability") \
    X(INCONSISTENT_VOTER_SET, 94, "Indicates that the either the sender or recipient of a voter-only request is not one of the expected voters") \
    X(INVALID_UPDATE_VERSION, 95, "The given update version was invalid")            \
    X(FEATURE_UPDATE_FAILED, 96, "Unable to update finalized features due to an unexpected server error") \
    X(PRINCIPAL_DESERIALIZATION_FAILURE, 97, "Request principal deserialization failed during forwarding") \
    X(SNAPSHOT_NOT_FOUND, 98, "Requested snapshot was not found")                    \
    X(POSITION_OUT_OF_RANGE, 99, "Requested position is not greater than or equal to zero, and less than the size of the snapshot") \
    X(UNKNOWN_TOPIC_ID, 100, "This server does not host this topic ID")              \
    X(DUPLICATE_BROKER_REGISTRATION, 101, "This broker ID is already in use")        \
    X(BROKER_ID_NOT_REGISTERED, 102, "The given broker ID was not registered")       \
    X(INCONSISTENT_TOPIC_ID, 103, "The log's topic ID did not match the topic ID in the request") \
    X(INCONSISTENT_CLUSTER_ID, 104, "The clusterId in the request does not match that found on the server") \
    X(TRANSACTIONAL_ID_NOT_FOUND, 105, "The transactionalId could not be found")     \
    X(FETCH_SESSION_TOPIC_ID_ERROR, 106, "The fetch session encountered inconsistent topic ID usage") \
    X(INELIGIBLE_REPLICA, 107, "The new ISR contains at least one ineligible replica") \
    X(NEW_LEADER_ELECTED, 108, "The AlterPartition request successfully updated the partition state but the leader has changed") \
    X(OFFSET_MOVED_TO_TIERED_STORAGE, 109, "The requested offset is moved to tiered storage") \
    X(FENCED_MEMBER_EPOCH, 110, "The member epoch is fenced by the group coordinator") \
    X(UNRELEASED_INSTANCE_ID, 111, "The instance ID is still used by another member in the consumer group") \
    X(UNSUPPORTED_ASSIGNOR, 112, "The assignor or its version range is not supported by the consumer group") \
    X(STALE_MEMBER_EPOCH, 113, "The member epoch is stale")                          \
    X(MISMATCHED_ENDPOINT_TYPE, 114, "The request was sent to an endpoint of the wrong type") \
    X(UNSUPPORTED_ENDPOINT_TYPE, 115, "This endpoint type is not supported yet")     \
    X(UNKNOWN_CONTROLLER_ID, 116, "This controller ID is not known")                 \
    /* internal codes: never on the wire */                                          \
    X(ERR_IO, -100, "I/O error")                                                     \
    X(ERR_NOMEM, -101, "Out of memory")                                              \
    X(ERR_TRUNCATED, -102, "Input truncated")                                        \
    X(ERR_MALFORMED, -103, "Input malformed")                                        \
    X(ERR_NOT_FOUND, -104, "Not found")                                              \
    X(ERR_EXISTS, -105, "Already exists")                                            \
    X(ERR_FATAL, -106, "Log is in a fatal state after a failed fsync and refuses writes") \
    X(ERR_INVALID_ARG, -107, "Invalid argument")

typedef enum {
#define RB__ENUM(name, code, msg) RB_##name = code,
    RB_ERRORS(RB__ENUM)
#undef RB__ENUM
} rb_err_t;

const char *rb_err_name(int err);  /* "CORRUPT_MESSAGE"; "UNKNOWN(n)" never NULL */
const char *rb_err_msg(int err);

/* ---- slices and the bounds-checked reader -------------------------------- */
typedef struct {
    const uint8_t *p;
    size_t len;
} rb_slice_t;

static inline rb_slice_t rb_slice(const void *p, size_t len) {
    rb_slice_t s = {(const uint8_t *)p, len};
    return s;
}
static inline rb_slice_t rb_slice_cstr(const char *s) { return rb_slice(s, strlen(s)); }
static inline bool rb_slice_eq(rb_slice_t a, rb_slice_t b) {
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}
static inline bool rb_slice_eq_cstr(rb_slice_t a, const char *s) {
    return rb_slice_eq(a, rb_slice_cstr(s));
}

typedef struct {
    const uint8_t *p;   /* next byte */
    const uint8_t *end; /* one past the last byte */
    int err;            /* 0 or RB_ERR_TRUNCATED / RB_ERR_MALFORMED (sticky) */
} rb_rd_t;

static inline void rb_rd_init(rb_rd_t *rd, const void *p, size_t len) {
    static const uint8_t rb__empty[1];
    rd->p = p ? (const uint8_t *)p : rb__empty; /* never NULL + 0 */
    rd->end = rd->p + (p ? len : 0);
    rd->err = 0;
}
static inline size_t rb_rd_left(const rb_rd_t *rd) { return rd->err ? 0 : (size_t)(rd->end - rd->p); }
static inline bool rb_rd_ok(const rb_rd_t *rd) { return rd->err == 0; }
static inline void rb_rd_fail(rb_rd_t *rd, int err) {
    if (!rd->err) rd->err = err;
}

uint8_t rb__rd_u8_slow(rb_rd_t *rd);
static inline uint8_t rb_rd_u8(rb_rd_t *rd) {
    if (rd->p < rd->end && !rd->err) return *rd->p++;
    return rb__rd_u8_slow(rd);
}
uint16_t rb_rd_u16(rb_rd_t *rd); /* big-endian */
uint32_t rb_rd_u32(rb_rd_t *rd);
uint64_t rb_rd_u64(rb_rd_t *rd);
static inline int8_t rb_rd_i8(rb_rd_t *rd) { return (int8_t)rb_rd_u8(rd); }
static inline int16_t rb_rd_i16(rb_rd_t *rd) { return (int16_t)rb_rd_u16(rd); }
static inline int32_t rb_rd_i32(rb_rd_t *rd) { return (int32_t)rb_rd_u32(rd); }
static inline int64_t rb_rd_i64(rb_rd_t *rd) { return (int64_t)rb_rd_u64(rd); }
/* Returns a pointer to n bytes and advances, or NULL (and sets err). */
const uint8_t *rb_rd_bytes(rb_rd_t *rd, size_t n);
/* Unsigned varint (max 5 bytes for 32-bit, 10 for 64-bit). The one-byte
 * case (every length under 64 in zigzag form) is inline: it dominates the
 * per-record walk of produce validation. */
uint32_t rb__rd_uvarint32_slow(rb_rd_t *rd);
uint64_t rb__rd_uvarint64_slow(rb_rd_t *rd);
static inline uint32_t rb_rd_uvarint32(rb_rd_t *rd) {
    if (rd->p < rd->end && !(*rd->p & 0x80) && !rd->err) return *rd->p++;
    return rb__rd_uvarint32_slow(rd);
}
static inline uint64_t rb_rd_uvarint64(rb_rd_t *rd) {
    if (rd->p < rd->end && !(*rd->p & 0x80) && !rd->err) return *rd->p++;
    return rb__rd_uvarint64_slow(rd);
}
/* Zigzag signed varints (record fields). */
static inline int32_t rb_rd_varint32(rb_rd_t *rd) {
    uint32_t u = rb_rd_uvarint32(rd);
    return (int32_t)((u >> 1) ^ (~(u & 1) + 1));
}
static inline int64_t rb_rd_varint64(rb_rd_t *rd) {
    uint64_t u = rb_rd_uvarint64(rd);
    return (int64_t)((u >> 1) ^ (~(u & 1) + 1));
}

/* Big-endian helpers over raw memory (the caller has checked the length). */
static inline uint16_t rb_be16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t rb_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t rb_be64(const uint8_t *p) { return ((uint64_t)rb_be32(p) << 32) | rb_be32(p + 4); }
static inline void rb_wbe16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void rb_wbe32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline void rb_wbe64(uint8_t *p, uint64_t v) { rb_wbe32(p, (uint32_t)(v >> 32)); rb_wbe32(p + 4, (uint32_t)v); }

/* ---- growable buffer -------------------------------------------------------- */
typedef struct {
    uint8_t *p;
    size_t len;
    size_t cap;
} rb_buf_t;

void rb_buf_init(rb_buf_t *b);
void rb_buf_free(rb_buf_t *b);
void rb_buf_reserve(rb_buf_t *b, size_t extra); /* aborts on OOM */
static inline void rb_buf_reset(rb_buf_t *b) { b->len = 0; }
void rb_buf_put(rb_buf_t *b, const void *p, size_t n);
void rb_buf_u8(rb_buf_t *b, uint8_t v);
void rb_buf_u16(rb_buf_t *b, uint16_t v);
void rb_buf_u32(rb_buf_t *b, uint32_t v);
void rb_buf_u64(rb_buf_t *b, uint64_t v);
void rb_buf_uvarint(rb_buf_t *b, uint64_t v);
void rb_buf_varint(rb_buf_t *b, int64_t v); /* zigzag */
int rb_buf_printf(rb_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
size_t rb_uvarint_size(uint64_t v);
size_t rb_varint_size(int64_t v);

/* ---- write chain -------------------------------------------------------------
 * What a response is built into: bytes in one growable buffer, interleaved
 * with file ranges that leave by sendfile (nginx's ngx_buf_t idea). Memory
 * elements are offsets into c->buf (so the buffer may grow while encoding).
 * A file element owns its fd (a dup of a segment's fd): rb_chain_free closes it,
 * so a segment deleted meanwhile stays readable until the response is sent. */
typedef struct {
    uint8_t is_file;
    int fd;          /* file elements only; owned */
    uint64_t off;    /* memory: offset into buf; file: offset in the file */
    size_t len;
} rb_chain_el_t;

typedef struct {
    rb_buf_t buf;
    rb_chain_el_t *els;
    size_t nels, cap;
    size_t mem_mark; /* start of the bytes in buf not yet covered by an element */
    size_t total;    /* bytes in all elements, set by rb_chain_finish */
} rb_chain_t;

void rb_chain_init(rb_chain_t *c);
void rb_chain_free(rb_chain_t *c);   /* closes owned fds */
/* Appends a file range; takes ownership of fd (closed by rb_chain_free). */
void rb_chain_add_file(rb_chain_t *c, int fd, uint64_t off, size_t len);
/* Closes the trailing memory element and computes c->total. */
void rb_chain_finish(rb_chain_t *c);
/* Bytes appended so far (memory written to buf plus file ranges). */
size_t rb_chain_len(const rb_chain_t *c);

/* ---- arena ------------------------------------------------------------------- */
typedef struct rb_arena_chunk rb_arena_chunk_t;
typedef struct {
    rb_arena_chunk_t *ra_head;
    size_t ra_used;  /* bytes handed out since the last reset */
    size_t ra_cap;   /* max bytes this arena may hand out (0 = unlimited) */
} rb_arena_t;

void rb_arena_init(rb_arena_t *a, size_t cap);
/* 16-byte aligned, zeroed memory, or NULL when the cap would be exceeded. */
void *rb_arena_alloc(rb_arena_t *a, size_t n);
void *rb_arena_memdup(rb_arena_t *a, const void *p, size_t n);
char *rb_arena_strndup(rb_arena_t *a, const char *p, size_t n);
void rb_arena_reset(rb_arena_t *a); /* keeps one chunk for reuse */
void rb_arena_free(rb_arena_t *a);

/* ---- CRC-32C (Castagnoli), as record batches v2 use ------------------------ */
uint32_t rb_crc32c(uint32_t crc, const void *p, size_t n); /* start with crc=0 */
uint32_t rb__crc32c_sw(uint32_t crc, const void *p, size_t n); /* the table path (tests) */

/* ---- clocks ------------------------------------------------------------------ */
int64_t rb_now_ms(void);   /* wall clock, ms since the epoch */
int64_t rb_mono_ms(void);  /* monotonic ms */
int64_t rb_mono_us(void);  /* monotonic us */

/* ---- logging ----------------------------------------------------------------- */
typedef enum { RB_LOG_DEBUG = 0, RB_LOG_INFO, RB_LOG_WARN, RB_LOG_ERROR } rb_log_level_t;
extern int rb_log_min_level;
void rb_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define rb_debug(...) do { if (rb_log_min_level <= RB_LOG_DEBUG) rb_log(RB_LOG_DEBUG, __VA_ARGS__); } while (0)
#define rb_info(...) rb_log(RB_LOG_INFO, __VA_ARGS__)
#define rb_warn(...) rb_log(RB_LOG_WARN, __VA_ARGS__)
#define rb_error(...) rb_log(RB_LOG_ERROR, __VA_ARGS__)

/* ---- failpoints ----------------------------------------------------------------
 * For fault tests: RILL_FAILPOINTS="name=ERRNO[@skip][*count],..." makes
 * rb_failpoint(name) return that errno after `skip` passing hits, for `count`
 * hits (default: forever). ERRNO is a name (ENOSPC, EIO) or a number.
 * Example: RILL_FAILPOINTS="st.append.write=ENOSPC@100*1". Without the variable
 * every call returns 0 after one relaxed load. Thread-safe. */
int rb_failpoint(const char *name);
void rb_failpoint_reload(void); /* re-reads the environment (tests) */

/* ---- files ------------------------------------------------------------------- */
/* fsync a directory (after creating/renaming/removing entries in it). */
int rb_fsync_dir(const char *path);
/* Write-then-fsync-then-rename: atomically replaces path with data. 0 or -errno. */
int rb_write_file_atomic(const char *path, const void *data, size_t len);
/* Reads a whole (small) file into a NUL-terminated malloc'd buffer. */
int rb_read_file(const char *path, char **out, size_t *len_out);
int rb_mkdir_p(const char *path);
int rb_rm_rf(const char *path);

#endif
