/*
 * storage_int.h — storage internals shared by mgr.c, flush.c, log.c, read.c,
 * segment.c and index.c. Nothing outside src/storage includes this.
 *
 * Object model
 *   st_mgr_t   one per log dir: the list of open logs, the dirty queue, the
 *              flusher thread, the recovery checkpoint and the clean marker.
 *   st_log_t   one per topic-partition: an array of segments sorted by base
 *              offset, the last of which is the active (appendable) one.
 *   st_seg_t   one .log file with its .index/.timeindex/.txnindex. Only the active
 *              segment is appended to; older ones are "sealed" (immutable,
 *              final time-index entry written, files fdatasync'd once).
 *
 * Locks (order: m_open_mutex -> l_mutex -> m_mutex; never the reverse;
 *        m_del_mutex -> l_mutex, and m_del_mutex -> m_ckpt_mutex -> m_mutex)
 *   m_open_mutex  held through st_log_open/close and delete's rename.
 *   l_mutex    everything mutable in st_log_t and its segments' counters.
 *   m_mutex    the manager's log list, dirty queue, l_busy/l_in_queue flags.
 *   m_ckpt_mutex  around a checkpoint write (takes m_mutex inside).
 *   m_del_mutex   one log-start move / segment deletion at a time (retention.c);
 *              never held by the flusher, appends or reads.
 *   m_cl_mutex    the cleaner thread's stop flag, interval and wake-up.
 *   Segments are reference-counted (seg_refs) so a reader or the flusher may
 *   use a segment's fds without holding l_mutex.
 *
 * Positions vs offsets: a "position" is a byte offset inside a .log file;
 * an "offset" is a Kafka record offset.
 */
#ifndef RILL_STORAGE_INT_H
#define RILL_STORAGE_INT_H

#include "storage/storage.h"

#include <pthread.h>
#include <stdatomic.h>

#define ST_OIDX_ENTRY 8   /* .index entry: u32 relative offset, u32 position */
#define ST_TIDX_ENTRY 12  /* .timeindex entry: i64 timestamp, u32 relative offset */
#define ST_XIDX_REBUILD_FILE "txnindex-rebuild" /* S23: present while an open rebuilds .txnindex files */
#define ST_XIDX_ENTRY 34  /* .txnindex entry: i16 version 0, i64 pid, first, last, last stable offset */
#define ST_XIDX_EXT ".txnindex"
#define ST_TAIL_MAX 64    /* in-memory index tail of the active segment */
#define ST_NO_TS (-1)     /* Kafka's RecordBatch.NO_TIMESTAMP */
#define ST_RCACHE 4       /* per-log sequential-read cache entries */
#define ST_CKPT_FILE "recovery-point-offset-checkpoint"
#define ST_MARKER_FILE ".kafka_cleanShutdown"
#define ST_LSO_FILE "log-start-offset-checkpoint"
#define ST_CLEAN_FILE "cleaner-offset-checkpoint"
#define ST_STAGE_DIR "cleaner-staging"   /* per partition dir: a pass's new segments */
#define ST_SWAP_FILE "cleaner-swap"      /* per partition dir: the pass's commit record */
#define ST_CLEANER_BACKOFF_MS_DEFAULT 15000
#define ST_DEDUPE_BYTES_DEFAULT (128LL * 1024 * 1024)
#define ST_RETENTION_CHECK_MS_DEFAULT 300000
#define ST_CKPT_INTERVAL_MS 5000
#define ST_SYNCFS_MIN_DEFAULT 8 /* dirty logs in one round before syncfs() replaces fdatasyncs */

typedef struct {
    uint32_t rel; /* offset - segment base */
    uint32_t pos; /* position in the .log */
} st_oent_t;

typedef struct {
    int64_t ts;   /* max timestamp of the segment so far */
    uint32_t rel; /* relative offset of the (first) batch holding it */
} st_tent_t;

typedef struct st_seg {
    int64_t seg_base;         /* base offset (the file name) */
    int seg_fd;               /* .log, O_RDWR */
    int seg_ofd;              /* .index */
    int seg_tfd;              /* .timeindex */
    int seg_xfd;              /* .txnindex (txnidx.c, S22): one entry per abort marker in the segment */
    int64_t seg_size;         /* bytes in .log (written, maybe not synced) */
    int64_t seg_synced;       /* bytes of .log known fdatasync'd */
    int64_t seg_next_off;     /* offset after the segment's last batch (seg_base if empty) */
    uint32_t seg_on;          /* .index entries in the file */
    uint32_t seg_tn;          /* .timeindex entries in the file */
    st_oent_t *seg_otail;     /* active only: entries not yet written to the file */
    st_tent_t *seg_ttail;
    uint32_t seg_otail_n, seg_ttail_n;
    int64_t seg_tlast_ts;     /* timestamp of the last time-index entry, ST_NO_TS if none */
    uint32_t seg_tlast_rel;
    int64_t seg_max_ts;       /* largest batch max timestamp in the segment, ST_NO_TS if none */
    int64_t seg_max_ts_off;   /* base offset of the first batch holding seg_max_ts */
    int64_t seg_since_idx;    /* bytes appended since the last offset-index entry */
    int64_t seg_roll_ms;      /* time base of segment.ms rolls, -1 while empty */
    bool seg_sealed;          /* no more appends; indexes complete on disk */
    bool seg_sealed_synced;   /* sealed and .log/.index/.timeindex fdatasync'd */
    uint32_t seg_xn;          /* .txnindex entries in the file */
    uint32_t seg_xsynced;     /* ... of which fdatasync'd (the flusher, S22) */
    bool seg_xrebuild;        /* at open: the .txnindex is missing, damaged or past the
                                 recovery point; rebuilt by the replay (S23) */
    bool seg_xbad;            /* an entry write failed: file removed, no more entries (S22) */
    atomic_int seg_refs;
} st_seg_t;

typedef struct st_waiter {
    struct st_waiter *w_next;
    int64_t w_offset;
    st_sync_cb w_cb;
    void *w_ctx;
} st_waiter_t;

typedef struct {
    int64_t rc_off;      /* a batch base offset (-1: empty slot) */
    int64_t rc_seg_base;
    int64_t rc_pos;      /* position of that batch in the segment */
} st_rcache_t;

struct st_log {
    st_mgr_t *l_mgr;
    char *l_topic;
    int32_t l_partition;
    char *l_dir;                /* <mgr dir>/<topic>-<partition> */
    void *l_user;

    pthread_mutex_t l_mutex;    /* guards everything below */
    st_log_config_t l_cfg;
    st_seg_t **l_segs;          /* sorted by base; last = active */
    int l_nsegs, l_segs_cap;
    int64_t l_start;            /* log start offset (S7); read unlocked by the checkpoint */
    int64_t l_leo;              /* log end offset: next offset to assign */
    int64_t l_hw;               /* durable offset = high watermark (S2) */
    int64_t l_hw_seg_base;      /* segment holding the high watermark ... */
    int64_t l_hw_pos;           /* ... and its position there (a batch boundary) */
    int64_t l_max_ts, l_max_ts_off;   /* over all appended batches */
    int64_t l_dmax_ts, l_dmax_ts_off; /* over durable batches */
    bool l_fatal;               /* fsync/truncate failed: refuse appends (S1, S3) */
    bool l_closing;             /* close/delete started: no more queueing */
    bool l_queued;              /* already on the manager's dirty queue */
    uint64_t l_dirsync_gen;     /* bumped when a dir entry is created ... */
    uint64_t l_dirsync_done;    /* ... and the generation known fsynced (S4) */
    bool l_parent_sync;         /* the partition dir itself is new: fsync the log dir */
    st_waiter_t *l_waiters;
    st_rcache_t l_rcache[ST_RCACHE];
    int l_rcache_next;
    uint64_t l_stat_syncs;      /* fdatasync rounds that advanced this log */
    int64_t l_clean_off;        /* cleaner checkpoint: first dirty offset (-1: never cleaned) */
    st_ptab_t l_prods;          /* idempotent producer state (producers.c, S13-S16) */
    int64_t l_prods_expire_at;  /* wall-clock ms of the next expiry pass on append */
    st_txn_open_t *l_topen;     /* open transactions: producer -> first offset (txnidx.c, S17) */
    int l_ntopen, l_topen_cap;
    st_aborted_txn_t *l_tab;    /* aborted transactions, by marker offset (S18) */
    int l_ntab, l_tab_cap;
    st_txn_open_t *l_lastmk;    /* per producer: offset of its last marker in the log (S19) */
    int l_nlastmk, l_lastmk_cap;

    /* guarded by m_mutex */
    struct st_log *l_next;      /* manager's list of open logs */
    struct st_log *l_qnext;     /* dirty queue link */
    bool l_in_queue;
    bool l_busy;                /* the flusher is working on it */
    bool l_cleaning;            /* the cleaner thread is working on it */
};

typedef struct {
    char *ck_topic;
    int32_t ck_partition;
    int64_t ck_offset;
    int64_t ck_start;  /* log start offset (log-start-offset-checkpoint), -1 if none */
    int64_t ck_clean;  /* first dirty offset (cleaner-offset-checkpoint), -1 if none */
    bool ck_recovered; /* opened (and recovered if needed) in this session */
    bool ck_open;      /* open now: the live high watermark is written instead */
} st_ckpt_ent_t;

struct st_mgr {
    char *m_dir;
    int m_dirfd;                 /* for syncfs() */
    bool m_clean_start;          /* the clean-shutdown marker was present */
    pthread_mutex_t m_open_mutex; /* serialises st_log_open/close/delete: two opens
                                     of one dir never recover it at once */
    pthread_mutex_t m_ckpt_mutex; /* one checkpoint writer at a time (shared .tmp) */
    pthread_mutex_t m_mutex;
    pthread_cond_t m_cond;       /* flusher wake-up */
    pthread_cond_t m_idle;       /* a log's l_busy was cleared */
    pthread_t m_thread;
    bool m_thread_started;
    bool m_stop;
    st_log_t *m_logs;            /* open logs */
    st_log_t *m_qhead, *m_qtail; /* dirty queue */
    st_ckpt_ent_t *m_ckpt;       /* checkpoint entries of logs not open now (and recovery flags) */
    int m_nckpt, m_ckpt_cap;
    atomic_uint_fast64_t m_ckpt_gen; /* bumped when a recovery point may have changed */
    uint64_t m_ckpt_written;     /* generation last written (flusher, then close) */
    int64_t m_ckpt_next_ms;      /* monotonic time of the next checkpoint write */
    st_durable_cb m_durable_cb;
    void *m_durable_ctx;
    atomic_int m_fatal;          /* logs in the fatal state */
    int m_syncfs_min;            /* 0: never syncfs */
    /* statistics (flusher thread only, read racily by tests) */
    uint64_t m_stat_rounds, m_stat_fdatasyncs, m_stat_syncfs;
    /* cleaner thread (retention.c) */
    pthread_mutex_t m_del_mutex;  /* serialises log-start moves + segment deletions */
    pthread_mutex_t m_cl_mutex;
    pthread_cond_t m_cl_cond;
    pthread_t m_cl_thread;
    bool m_cl_started, m_cl_stop;
    int64_t m_cl_interval_ms;
    bool m_cc_enable;             /* compaction (compact.c), under m_cl_mutex */
    int64_t m_cc_buffer;          /* key map budget */
    int64_t m_cc_backoff_ms;
    atomic_uint_fast64_t m_cc_passes; /* statistics: passes that rewrote segments */
    _Atomic int64_t m_prod_expire_ms; /* producer.id.expiration.ms (producers.c, S16) */
};

/* ---- batch header (segment.c) ---- */
/* Decodes the fixed 61-byte header at p; checks magic 2 and batch_length >= 49.
 * Returns 0 or RB_CORRUPT_MESSAGE. */
int st__hdr_decode(const uint8_t *p, kp_batch_hdr_t *h);
static inline int64_t st__hdr_size(const kp_batch_hdr_t *h) {
    return (int64_t)h->batch_length + KP_BATCH_LOG_OVERHEAD;
}
static inline int64_t st__hdr_last(const kp_batch_hdr_t *h) { return h->base_offset + h->last_offset_delta; }

/* A buffered positional reader over one file (bounded memory). */
typedef struct {
    int fd;
    int64_t limit;   /* never read at or past this position */
    uint8_t *buf;
    size_t cap;
    size_t chunk;    /* bytes read per miss (<= cap); default cap */
    int64_t boff;    /* file position of buf[0] */
    size_t blen;     /* valid bytes in buf */
} st_frd_t;
void st__frd_init(st_frd_t *r, int fd, int64_t limit, size_t cap);
void st__frd_free(st_frd_t *r);
/* Makes [pos, pos+n) available; returns a pointer, or NULL with *err set
 * (0: the range passes the limit / end of file; -errno on I/O error). n <= cap. */
const uint8_t *st__frd_get(st_frd_t *r, int64_t pos, size_t n, int *err);
/* CRC-32C over [pos, pos+n) read in chunks. 0 or -errno (-EIO past EOF). */
int st__frd_crc(st_frd_t *r, int64_t pos, int64_t n, uint32_t *crc);

/* ---- segments (segment.c) ---- */
void st__seg_path(char *out, size_t cap, const char *dir, int64_t base, const char *ext);
/* Opens (create: creates/truncates) the three files of a segment. */
int st__seg_open(const char *dir, int64_t base, bool create, st_seg_t **out);
void st__seg_ref(st_seg_t *s);
void st__seg_unref(st_seg_t *s);        /* closes and frees at zero */
int st__seg_unlink(const char *dir, int64_t base);

/* Scan of a segment's batches from a position (recovery, index rebuild, load). */
typedef struct {
    /* in */
    int64_t from_pos;       /* a batch boundary */
    int64_t min_off;        /* first batch's base offset must be >= this */
    int64_t next_base;      /* batches must end below this (INT64_MAX: last segment) */
    bool verify_crc;        /* full validation (unclean recovery) */
    bool contiguous;        /* each batch must start right after the previous one
                               (true until compaction can leave gaps) */
    bool build_index;       /* rewrite .index/.timeindex from from_pos (must be 0) */
    int32_t interval;       /* index_interval_bytes */
    /* out */
    int64_t end_pos;        /* position after the last valid batch */
    int64_t next_off;       /* offset after the last valid batch (min_off if none) */
    int64_t first_off;      /* base offset of the first batch scanned (-1 if none) */
    int64_t max_ts, max_ts_off;
    int64_t first_ts;       /* max timestamp of the first batch seen (ST_NO_TS if none) */
    int64_t nbatches;
    bool invalid;           /* stopped at an invalid batch before the end of file */
} st_scan_t;
int st__seg_scan(st_seg_t *s, st_scan_t *sc);

/* ---- indexes (index.c) ---- */
void st__idx_tail_alloc(st_seg_t *s);
/* Called after a successful append of a batch at pos (under l_mutex). */
void st__idx_on_batch(st_seg_t *s, int64_t pos, const kp_batch_hdr_t *h, int32_t interval);
/* Writes the in-memory tail to the files (best effort; entries dropped on error). */
void st__idx_flush_tail(st_seg_t *s);
/* Seal: flush the tail, add the final time-index entry, free the tails. */
void st__idx_seal(st_seg_t *s);
/* Loads counters from the files and checks them against the segment (size,
 * next_base). full: every entry, else the first and last. Returns 0 if sane,
 * 1 if not (the caller rebuilds them), or -errno. */
int st__idx_check(st_seg_t *s, bool full, int64_t next_base);
/* Largest offset-index entry whose key (rel offset, or position if by_pos) is
 * <= key, over the file's first n entries plus a tail copy. Returns its
 * position, or 0 (segment start) if none. found_rel gets its rel (or -1). */
int64_t st__idx_lookup(const st_seg_t *s, uint32_t n, const st_oent_t *tail, uint32_t ntail, bool by_pos,
                       uint32_t key, int64_t *found_rel);
/* Largest time-index entry with ts <= target (file entries only + tail copy);
 * returns its rel offset, or -1. */
int64_t st__tidx_lookup(const st_seg_t *s, uint32_t n, const st_tent_t *tail, uint32_t ntail, int64_t target);
/* Reads the last offset/time-index entry from the file (0) or RB_ERR_NOT_FOUND. */
int st__oidx_last(const st_seg_t *s, st_oent_t *e);
int st__tidx_last(const st_seg_t *s, st_tent_t *e);
/* Reset counters for a rebuild and truncate the files. */
int st__idx_reset(st_seg_t *s);

/* ---- logs (log.c) ---- */
void st__log_free(st_log_t *l);
/* Completes and frees every waiter in list with err. */
void st__waiters_call(st_waiter_t *list, int err);

/* ---- flusher (flush.c) ---- */
void *st__flusher_main(void *arg);
/* Puts l on the dirty queue (caller holds l_mutex, l_queued was false). */
void st__mgr_enqueue(st_mgr_t *m, st_log_t *l);
/* Synchronously flushes a log that is not on the flusher's hands (close). */
int st__log_flush_now(st_log_t *l);
/* Writes the recovery checkpoint and the log-start-offset checkpoint
 * (flusher thread, close, or a log-start move). */
int st__ckpt_write(st_mgr_t *m);

/* ---- producer state (producers.c) ---- */
#define ST_SNAP_EXT ".snapshot"
/* Writes `<offset>.snapshot` of l's producer state (l_mutex held or l owned). */
int st__pt_snapshot(st_log_t *l, int64_t offset, int64_t now_ms);
/* Rebuilds l's producer state at open (S15). 0 or -errno. */
int st__pt_load(st_log_t *l);
/* Transactions (txnidx.c): account one written batch (l_mutex held, or the
 * log not yet shared), an abort adding its entry to the active segment's
 * .txnindex; free. */
void st__txn_on_batch(st_log_t *l, const uint8_t *batch, const kp_batch_hdr_t *h);
/* The same for a batch replayed at open: an abort goes to xseg's .txnindex
 * (NULL: none) and, if list, to the aborted list. */
void st__txn_apply(st_log_t *l, const uint8_t *batch, const kp_batch_hdr_t *h, st_seg_t *xseg, bool list);
/* Open (S23): st__xidx_load reads the trusted .txnindex files into the
 * aborted list and empties and marks (seg_xrebuild) the others; st__pt_load
 * replays (filling those); st__txn_from_prods takes the open transactions
 * from the loaded snapshot; st__txn_load sorts the list and syncs the
 * rebuilt files. 0 or -errno. */
int st__xidx_load(st_log_t *l);
void st__txn_from_prods(st_log_t *l);
int st__txn_load(st_log_t *l);
/* One .txnindex entry (ST_XIDX_ENTRY bytes). */
void st__xidx_encode(uint8_t *p, const st_aborted_txn_t *a, int64_t lso);
/* Reads and checks a segment's .txnindex (entries version 0, markers inside
 * [base, next_base) and increasing, first <= last): 0 with a malloc'd array
 * (NULL if empty) and seg_xn set, 1 if damaged, or -errno. */
int st__xidx_read(st_seg_t *s, int64_t next_base, st_aborted_txn_t **out, int *n);
/* Appends src's .txnindex entries to dst's (the cleaner merging a group),
 * but those naming an abort marker in drop (producer id, marker offset:
 * removed by the cleaner, S21); a src whose file was lost (seg_xbad) leaves
 * dst's file removed, for the next open to rebuild. 0 or -errno. */
int st__xidx_copy(const char *dst_dir, st_seg_t *dst, st_seg_t *src, const st_aborted_txn_t *drop, int ndrop);
void st__txn_free(st_log_t *l);
int64_t st__txn_lso(const st_log_t *l);
/* The cleaner removed the abort marker of pid at marker_off: its entry
 * leaves the aborted list (l_mutex held; compact.c, S21). */
void st__txn_forget_aborted(st_log_t *l, int64_t pid, int64_t marker_off);
/* The offset of pid's last marker in the log, or -1 (l_mutex held). */
int64_t st__txn_last_marker(const st_log_t *l, int64_t pid);
/* On append (l_mutex held): drops expired producers every
 * min(expiration, ST_PRODUCER_EXPIRE_CHECK_MS). */
void st__pt_maybe_expire(st_log_t *l, int64_t now_ms);
#define ST_PRODUCER_EXPIRE_CHECK_MS 600000 /* producer.id.expiration.check.interval.ms default */

/* ---- retention (retention.c) ---- */
void *st__cleaner_main(void *arg);
/* Calls fn(log, now) for every open log with the log marked l_cleaning (so a
 * close or delete waits for it); stops early when the thread must stop. */
void st__for_each_log(st_mgr_t *m, void (*fn)(st_log_t *l, int64_t now_ms));
/* Removes (unlinks) the segments wholly below the log start offset; the
 * start must already be persisted (or restored from the checkpoint). */
int st__log_drop_below_start(st_log_t *l);

/* ---- compaction (compact.c) ---- */
/* At log open, before the segments are listed: finishes a committed swap
 * (cleaner-swap present) or discards an uncommitted one (S11). */
int st__clean_recover(const char *dir);
/* One log's compaction on the cleaner thread (st__for_each_log). */
void st__compact_one(st_log_t *l, int64_t now_ms);

/* ---- manager (mgr.c) ---- */
/* Checkpointed first dirty offset of the cleaner, or -1. */
int64_t st__mgr_clean_off(st_mgr_t *m, const char *topic, int32_t partition);
/* Checkpointed log start offset, or -1. */
int64_t st__mgr_log_start(st_mgr_t *m, const char *topic, int32_t partition);
int64_t st__mgr_recovery_point(st_mgr_t *m, const char *topic, int32_t partition, bool *found);
/* The log was opened: it is recovered for this session and open now. */
void st__mgr_mark_recovered(st_mgr_t *m, const char *topic, int32_t partition);
/* The log was closed with this durable offset (kept for later checkpoints). */
void st__mgr_remember(st_mgr_t *m, const char *topic, int32_t partition, int64_t hw, int64_t start, int64_t clean);
/* The log was deleted: drop its checkpoint entry. */
void st__mgr_forget(st_mgr_t *m, const char *topic, int32_t partition);

#endif
