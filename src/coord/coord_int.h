/*
 * coord_int.h — coord's internal types, shared by group.c (the state machine
 * and the group APIs) and offsets.c (records, commits, replay). Not for use
 * outside src/coord/.
 */
#ifndef RILL_COORD_INT_H
#define RILL_COORD_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "coord/coord.h"

typedef enum {
    CG_EMPTY = 0,
    CG_PREPARING_REBALANCE,
    CG_COMPLETING_REBALANCE,
    CG_STABLE,
    CG_DEAD,
} cg_state_t;

/* A parked JoinGroup or SyncGroup. */
typedef struct {
    void *resp;
    rb_arena_t *arena;
    cg_done_fn done;
    void *ctx;
    int16_t version;
} cg_wait_t;

typedef struct {
    char *name;
    uint8_t *meta;
    int32_t meta_len;
} cg_proto_t;

typedef struct cg_member {
    struct cg_member *m_next;
    char *m_id;
    char *m_instance_id; /* NULL: dynamic member */
    char *m_client_id;
    char *m_client_host;
    int32_t m_session_timeout_ms;
    int32_t m_rebalance_timeout_ms;
    int m_nprotos;
    cg_proto_t *m_protos;
    uint8_t *m_assignment;
    int32_t m_assignment_len;
    cg_wait_t *m_join; /* parked JoinGroup, or NULL */
    cg_wait_t *m_sync; /* parked SyncGroup, or NULL */
    int64_t m_deadline; /* session expiry, monotonic ms (G4) */
} cg_member_t;

/* A member id handed out with MEMBER_ID_REQUIRED, not yet joined. */
typedef struct cg_pending {
    struct cg_pending *p_next;
    char *p_id;
    int64_t p_deadline;
} cg_pending_t;

typedef struct {
    char *topic;
    int32_t partition;
    int64_t offset;
    int32_t leader_epoch;
    char *metadata; /* NULL: null */
    int64_t commit_ts;
    int64_t rec_offset; /* log offset of the record that set it (G6) */
} cg_offset_t;

typedef struct cg_group {
    struct cg_group *g_next; /* table chain, under c_mu */
    char *g_id;
    int32_t g_part;
    pthread_mutex_t g_mu;
    cg_state_t g_state;
    int32_t g_generation;
    char *g_protocol_type;
    char *g_protocol_name;
    char *g_leader;
    cg_member_t *g_members;
    int g_nmembers;
    cg_pending_t *g_pending;
    int64_t g_rebalance_deadline; /* PreparingRebalance: monotonic ms */
    int64_t g_delay_until;        /* initial delay (0: none) */
    int64_t g_delay_max;
    int64_t g_state_ts;           /* wall ms of the last state change */
    bool g_sync_storing;          /* CompletingRebalance: the leader's assignments are being made durable (G8) */
    cg_offset_t *g_offsets;
    int g_noffsets, g_offsets_cap;
} cg_group_t;

struct cg_coord {
    cg_config_t c_cfg;
    st_log_t **c_logs;
    int32_t c_nparts;
    pthread_mutex_t c_mu; /* guards the table */
    cg_group_t **c_buckets;
    size_t c_nbuckets;
    size_t c_ngroups;
    pthread_t c_timer;
    pthread_cond_t c_cv;
    bool c_stopping;
    bool c_timer_started;
};

/* group.c */
cg_group_t *cg_group_get(cg_coord_t *c, const char *id, size_t len, bool create);
const char *cg_state_name(cg_state_t s);
char *cg_strndup(const char *p, size_t n);
void cg_group_member_free(cg_member_t *m);

/* offsets.c */
cg_offset_t *cg_offset_find(cg_group_t *g, const char *topic, size_t tlen, int32_t partition);
void cg_offset_set(cg_group_t *g, const char *topic, size_t tlen, int32_t partition, int64_t offset,
                   int32_t leader_epoch, const char *meta, int32_t meta_len, int64_t commit_ts, int64_t rec_offset);
void cg_offset_remove(cg_group_t *g, const char *topic, size_t tlen, int32_t partition);
void cg_offsets_clear(cg_group_t *g);
/* Appends the group's metadata record (g_mu held); tombstone when `deleted`.
 * Returns 0 or an error; does not wait for durability (G7). */
int cg_store_group(cg_coord_t *c, cg_group_t *g, bool deleted, int64_t *offset_out);
int cg_replay(cg_coord_t *c);
/* Appends records (key/value pairs) to partition part; sets *last_offset. */
int cg_append(cg_coord_t *c, int32_t part, const kp_record_in_t *recs, int n, int64_t *base_offset,
              int64_t *last_offset);
/* Restores a group from a GroupMetadataValue (replay). */
void cg_group_restore(cg_coord_t *c, const char *id, size_t idlen, rb_rd_t *value, bool tombstone);

#endif
