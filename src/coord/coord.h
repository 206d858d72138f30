/*
 * coord — the group coordinator: classic consumer groups (JoinGroup,
 * SyncGroup, Heartbeat, LeaveGroup, ListGroups, DescribeGroups, DeleteGroups)
 * and committed offsets (OffsetCommit, OffsetFetch, OffsetDelete), with all
 * durable state stored as records in the internal topic `__consumer_offsets`
 * using Kafka's key/value formats. Uses storage (the partition logs of that
 * topic) and proto (decoded requests, record batches); knows nothing of net:
 * parked requests complete through a callback the broker gives (which posts
 * to the request's event loop).
 *
 * Owns: cg_coord_t (one per broker): the group table, one cg_group per group
 * id (members, generation, protocol, assignments, committed offsets), and a
 * timer thread that expires sessions, rebalance timeouts and the initial
 * rebalance delay.
 *
 * Group state machine (Kafka's classic protocol; functions in group.c):
 *
 *                 cg_prepare_rebalance (first JoinGroup)
 *      +-------+ ------------------------------------> +--------------------+
 *      | Empty |                                        | PreparingRebalance |<----+
 *      +-------+ <------------------------------------ +--------------------+     |
 *        |  ^     cg_complete_join (no member left)       |        ^              |
 *        |  |                                              |        | cg_prepare_  |
 *        |  |           cg_complete_join (all joined or    |        | rebalance    |
 *        |  |           rebalance timeout passed)          v        | (join/leave/ |
 *        |  |                              +---------------------+  | expiry,      |
 *        |  |                              | CompletingRebalance |--+ new member)  |
 *        |  |                              +---------------------+                 |
 *        |  |                                 | cg_sync_complete (leader's         |
 *        |  |                                 |  SyncGroup with assignments), once |
 *        |  |                                 v  durable: cg_sync_store_done       |
 *        |  |                              +--------+  cg_prepare_rebalance        |
 *        |  |                              | Stable |------------------------------+
 *        |  |                              +--------+  (join with new metadata,
 *        |  |                                           leave, session expiry)
 *        v  |
 *      +------+   cg_group_delete (DeleteGroups on an Empty group); a Dead group
 *      | Dead |   is revived as Empty by the next JoinGroup or OffsetCommit
 *      +------+   (cg_group_get with create), its offsets gone.
 *
 * Invariants:
 *  G1. A group's mutable state (members, state, generation, offsets) is read
 *      and written only under its g_mu. The table (c_mu) maps ids to groups;
 *      lock order is c_mu -> g_mu, and no thread takes c_mu while holding a
 *      g_mu. Group objects are never freed before cg_coord_free (deletion
 *      makes them Dead), so pointers to them stay valid without c_mu.
 *  G2. Every member of a group in PreparingRebalance either has a parked
 *      JoinGroup or is removed when the rebalance completes
 *      (cg_complete_join): at the rebalance deadline (the largest rebalance
 *      timeout of the members, i.e. max.poll.interval.ms) or as soon as all
 *      members and no pending (MEMBER_ID_REQUIRED) ids have joined, and never
 *      before the initial delay (group.initial.rebalance.delay.ms) of a group
 *      that was Empty.
 *  G3. Each completed join increments the generation by one; SyncGroup,
 *      Heartbeat and OffsetCommit name the generation they belong to and get
 *      ILLEGAL_GENERATION for any other one. An assignment is handed out only
 *      for the generation it was computed for (cg_sync_complete); a new
 *      rebalance clears assignments and answers parked SyncGroups with
 *      REBALANCE_IN_PROGRESS.
 *  G4. A member not awaiting a JoinGroup or SyncGroup answer is removed when
 *      session.timeout.ms passes without a Heartbeat, JoinGroup or SyncGroup
 *      from it (checked by the timer thread every CG_TICK_MS).
 *  G5. A static member (group.instance.id) is known by its instance id; a
 *      JoinGroup with that id and an empty member id replaces the old member
 *      id (the old one is fenced: FENCED_INSTANCE_ID) and, when the group is
 *      Stable and the member's metadata is unchanged, causes no rebalance:
 *      it gets its old assignment back (a leader also gets the member list,
 *      with skip_assignment from v9 on; its SyncGroup in Stable returns the
 *      stored assignment whatever it proposes, as for any member).
 *  G6. An OffsetCommit is acknowledged only after its record is durable
 *      (st_log_sync_wait); the in-memory offset is updated at that moment and
 *      only if the record is later in the log than the one it replaces, so
 *      what OffsetFetch returns is always durable and never goes backwards
 *      relative to the log.
 *  G7. The log is the state: each group's metadata (on every completed
 *      generation, and on deletion as a tombstone) and each committed offset
 *      (and tombstone) is a record in partition
 *      abs(java hashCode(group)) % offsets.topic.num.partitions, with Kafka's
 *      formats: OffsetCommitKey v1 / OffsetCommitValue v3, GroupMetadataKey
 *      v2 / GroupMetadataValue v3. cg_coord_open replays every partition up to
 *      its high watermark, the last record of a key winning; a group restored
 *      with members is Stable and its members' sessions restart at open.
 *      Offsets are waited for (G6), and so is the record of a completed
 *      generation: CompletingRebalance becomes Stable, and the leader's
 *      assignments are handed out, only once the group record holding them
 *      is durable (cg_sync_complete -> cg_sync_store_done; a storage error
 *      answers the parked SyncGroups with COORDINATOR_NOT_AVAILABLE and
 *      rebalances). Records of an Empty group or a deletion are appended
 *      without waiting (a crash may lose them: the group is then restored
 *      one step earlier, and its members rejoin).
 *  G8. `__consumer_offsets` is created with cleanup.policy=compact (and
 *      offsets.topic.segment.bytes): the storage cleaner keeps the last
 *      record of each key and drops tombstones after delete.retention.ms
 *      (storage.h S9-S12), so the replay of G7 reads one record per live
 *      key plus the uncleaned head and rebuilds the same state.
 *  G9. Offsets committed in a transaction (TxnOffsetCommit) are kept by the
 *      transaction coordinator (broker/txncoord.c, T6) until the transaction
 *      commits; only then are they written here, as ordinary offset records
 *      (cg_offset_commit_txn), so OffsetFetch never returns an offset of an
 *      open or aborted transaction.
 *
 * Threads: cg_* request functions are called on event-loop threads, any
 * number concurrently. A parked request's response is filled in later (under
 * the group's mutex) by whichever thread completes it — another loop thread,
 * the timer thread or a storage flusher thread — and then `done(ctx)` is
 * called exactly once; `done` must only hand the response over (e.g.
 * rn_loop_post) and must not call into coord. A request function may also
 * call `done` before it returns. The response and the arena belong to the
 * caller and must stay untouched by it until `done` runs.
 */
#ifndef RILL_COORD_H
#define RILL_COORD_H

#include "base/base.h"
#include "proto/proto.h"
#include "storage/storage.h"

#define CG_OFFSETS_TOPIC "__consumer_offsets"
#define CG_TICK_MS 50

typedef struct cg_coord cg_coord_t;

typedef struct {
    int32_t num_partitions;              /* offsets.topic.num.partitions */
    int64_t initial_rebalance_delay_ms;  /* group.initial.rebalance.delay.ms */
    int32_t min_session_timeout_ms;      /* group.min.session.timeout.ms */
    int32_t max_session_timeout_ms;      /* group.max.session.timeout.ms */
    int32_t offset_metadata_max_bytes;   /* offset.metadata.max.bytes */
    /* Whether topic-partition exists (OffsetCommit's UNKNOWN_TOPIC_OR_PARTITION).
     * Called without any coord lock held. */
    bool (*partition_exists)(void *ctx, const char *topic, size_t len, int32_t partition);
    void *ctx;
} cg_config_t;

typedef void (*cg_done_fn)(void *ctx);

typedef struct {
    const char *client_id;   /* may be NULL */
    const char *client_host; /* e.g. "/127.0.0.1" */
} cg_client_t;

/* Opens the coordinator over the logs of __consumer_offsets (logs[i] is
 * partition i; cfg->num_partitions of them, which stay open until after
 * cg_coord_free) and replays them (G7). Starts the timer thread. */
int cg_coord_open(const cg_config_t *cfg, st_log_t **logs, cg_coord_t **out);
/* Stops the timer thread and answers every parked JoinGroup/SyncGroup with
 * COORDINATOR_NOT_AVAILABLE (request functions must not be called after).
 * Offset commits waiting for their sync complete when the logs close. */
void cg_coord_stop(cg_coord_t *c);
/* Frees everything; call after the logs are closed. */
void cg_coord_free(cg_coord_t *c);

/* Kafka's partitionFor: abs(String.hashCode(group)) % n (Java's hashCode
 * over the UTF-16 code units of the UTF-8 id; abs(MIN_VALUE) is 0). */
int32_t cg_partition_for(const char *group, size_t len, int32_t n);

/* The classic group protocol. `version` is the request's API version;
 * responses are kp structs initialised with defaults by the caller;
 * strings put in them are allocated from `arena`. */
void cg_join_group(cg_coord_t *c, const cg_client_t *cl, int16_t version, const kp_join_group_req_t *req,
                   kp_join_group_resp_t *resp, rb_arena_t *arena, cg_done_fn done, void *ctx);
void cg_sync_group(cg_coord_t *c, int16_t version, const kp_sync_group_req_t *req, kp_sync_group_resp_t *resp,
                   rb_arena_t *arena, cg_done_fn done, void *ctx);
void cg_heartbeat(cg_coord_t *c, int16_t version, const kp_heartbeat_req_t *req, kp_heartbeat_resp_t *resp);
void cg_leave_group(cg_coord_t *c, int16_t version, const kp_leave_group_req_t *req, kp_leave_group_resp_t *resp,
                    rb_arena_t *arena);

/* Offsets. OffsetCommit completes through done (after the records are
 * durable, G6); the others answer before returning. */
void cg_offset_commit(cg_coord_t *c, int16_t version, const kp_offset_commit_req_t *req,
                      kp_offset_commit_resp_t *resp, rb_arena_t *arena, cg_done_fn done, void *ctx);
/* The offsets of a committed transaction (the transaction coordinator's
 * TxnOffsetCommit, G9): as an OffsetCommit v8 with no member checks; the
 * group is created if absent. Completes through done once durable. */
void cg_offset_commit_txn(cg_coord_t *c, const kp_offset_commit_req_t *req, kp_offset_commit_resp_t *resp,
                          rb_arena_t *arena, cg_done_fn done, void *ctx);
/* TxnOffsetCommit v3+ names the consumer's generation, member id and
 * instance id: checked as OffsetCommit's (UNKNOWN_MEMBER_ID,
 * ILLEGAL_GENERATION, FENCED_INSTANCE_ID); generation < 0 with an empty
 * member id and no instance id (v0-v2, standalone) passes. 0 or the error. */
int16_t cg_txn_offset_check(cg_coord_t *c, kp_str_t group, int32_t gen, kp_str_t member_id, kp_str_t inst);
void cg_offset_fetch(cg_coord_t *c, int16_t version, const kp_offset_fetch_req_t *req, kp_offset_fetch_resp_t *resp,
                     rb_arena_t *arena);

/* Administration. */
void cg_list_groups(cg_coord_t *c, int16_t version, const kp_list_groups_req_t *req, kp_list_groups_resp_t *resp,
                    rb_arena_t *arena);
void cg_describe_groups(cg_coord_t *c, int16_t version, const kp_describe_groups_req_t *req,
                        kp_describe_groups_resp_t *resp, rb_arena_t *arena);
void cg_delete_groups(cg_coord_t *c, int16_t version, const kp_delete_groups_req_t *req,
                      kp_delete_groups_resp_t *resp, rb_arena_t *arena);
void cg_offset_delete(cg_coord_t *c, int16_t version, const kp_offset_delete_req_t *req,
                      kp_offset_delete_resp_t *resp, rb_arena_t *arena);

#endif
