/*
 * storage — partition logs on disk, in Kafka's on-disk convention.
 *
 * Owns: for each log dir (st_mgr_t), the partition directories
 * `<dir>/<topic>-<partition>/` holding segments `<base offset, 20 digits>.log`
 * with sparse `.index` (u32 relative offset, u32 file position; one entry every
 * index_interval_bytes) and `.timeindex` (i64 max timestamp so far, u32
 * relative offset), the per-dir `recovery-point-offset-checkpoint`
 * (Kafka's text format), the per-dir `log-start-offset-checkpoint`, the
 * per-dir `cleaner-offset-checkpoint`, the `.kafka_cleanShutdown` marker and
 * the producer-state `.snapshot` files, the per-segment `.txnindex` (aborted
 * transactions, S22); one flusher thread per manager that
 * group-commits fdatasync for all logs, and one cleaner thread per manager
 * that applies retention and compacts logs whose cleanup policy includes
 * compact (compact.c).
 *
 * Durability invariants (docs/durability.md numbers them for the whole broker):
 *  S1. Batches are stored verbatim except for the base offset (not covered by
 *      the CRC) and, for LogAppendTime topics, the timestamp type and
 *      max timestamp (CRC recomputed). An append writes all batches of one
 *      call with one write(2); on failure the segment is truncated back to its
 *      previous length so nothing partial remains, the call returns
 *      RB_KAFKA_STORAGE_ERROR, and if even the truncate fails the log enters a
 *      fatal state and refuses all later appends.
 *  S2. The high watermark (what fetch may return, st_log_read's bound) is the
 *      durable offset: every byte below it has been fdatasync'd. A consumer
 *      therefore never reads (or commits an offset past) a record that a crash
 *      of the machine could take away.
 *  S3. A failed fdatasync makes the log fatal (fsyncgate): no retry pretends
 *      the data is safe; waiters get RB_KAFKA_STORAGE_ERROR.
 *  S4. New segment files, and the partition directory entry, are fsynced
 *      before any offset in them is reported durable.
 *  S5. The recovery point in the checkpoint never exceeds the durable offset;
 *      it is written with write-then-fsync-then-rename.
 *  S6. Recovery after an unclean stop (no marker) scans every segment from
 *      the one holding the recovery point to the end, validates every batch
 *      (framing, CRC, offsets increasing), truncates at the first invalid
 *      byte, deletes any later segments, and rebuilds the indexes of the
 *      scanned segments. With the marker present, nothing is scanned but
 *      indexes that fail a sanity check are rebuilt.
 *  S7. The log start offset (first offset a read may return) lies in
 *      [first segment's base, high watermark]; it only moves forward (DeleteRecords,
 *      retention). It is persisted per log dir in `log-start-offset-checkpoint`
 *      (the recovery checkpoint's text format, write-then-fsync-then-rename)
 *      before any segment below it is unlinked, so a crash at any point leaves
 *      either the old start with its segments or the new start (segments
 *      wholly below a restored start are removed at open). At open the start
 *      is max(first segment base, checkpointed value), capped at the log end.
 *  S8. Retention (a cleaner thread per manager, every retention check
 *      interval) deletes only whole sealed segments, oldest first, never the
 *      active one, never one reaching past the high watermark: by time when
 *      now - the segment's largest timestamp > retention_ms, by size while
 *      the log minus the segment stays >= retention_bytes, and those wholly
 *      below the log start offset. The start then moves to the first kept
 *      segment's base. Appends, reads and the flusher never wait for it
 *      beyond a short l_mutex section.
 *  S9. Compaction (cleanup.policy compact, compact.c) rewrites only sealed
 *      segments wholly below the last stable offset (S20; at most the high
 *      watermark), never the active one; it keeps offsets (a segment keeps
 *      its base even if its first records go), never moves the log start
 *      offset, keeps null-key records, and below a pass's end offset E
 *      drops a record only when a later record of its key (plain or of a
 *      committed transaction) lies below E, when it is a tombstone older
 *      than delete_retention_ms, or when it belongs to an aborted
 *      transaction (S20); a marker only as S21 says.
 *  S10. Gaps: offsets inside and between compacted segments may jump;
 *      reads skip them (a removed offset reads as the next batch, an empty
 *      segment as the next segment). Before a pass the recovery checkpoint
 *      is written, so compacted segments end at or below the recovery point
 *      and unclean recovery (S6) keeps its contiguity checks above it;
 *      without a recovery point it accepts increasing offsets with gaps.
 *  S11. A pass's new segments are staged in `<partition>/cleaner-staging/`
 *      and fsynced (consecutive small segments merged into the first one's
 *      base); `cleaner-swap` (write-fsync-rename, listing the merged bases)
 *      is the commit point; then the staged files are renamed over the old
 *      ones, the merged segments unlinked, the dir fsynced, `cleaner-swap`
 *      removed. At open: `cleaner-swap` present -> finish the renames and
 *      unlinks; absent -> delete the staging dir. A crash
 *      therefore leaves all old or all new segments of a pass. An error
 *      before the commit abandons the pass; after it, the log turns fatal
 *      until reopened.
 *  S12. The key map of a pass is bounded (log.cleaner.dedupe.buffer.size);
 *      when full the pass ends there. The first dirty offset is persisted
 *      per log dir in `cleaner-offset-checkpoint` after a swap. Appends,
 *      reads and the flusher wait for the cleaner only for short l_mutex
 *      sections; retention and DeleteRecords wait (m_del_mutex) only during
 *      the swap itself.
 *
 *  S13. Idempotent producer state (producers.c) is checked and updated under
 *      l_mutex in the same section as the batch's write: a batch with a
 *      producer id is written only if its sequence follows the producer's
 *      last one (or starts a new epoch at 0); a retry of one of the last 5
 *      batches is not written again and answers its original offsets
 *      (RB_DUPLICATE_SEQUENCE_NUMBER from st_log_append); nothing is written
 *      for any other outcome.
 *  S14. State is recorded only after the write succeeded, so a failed append
 *      leaves no trace in it; the broker answers a duplicate under acks=all
 *      only once the original's offsets are below the high watermark (S2).
 *  S15. `<offset>.snapshot` files hold the state for every batch below
 *      offset: per producer its epoch (also one only a marker set, S17), its
 *      last batches and the first offset of its open transaction (or -1);
 *      one is written at each roll and at close. They are a cache: at open a
 *      snapshot past the log end, failing its CRC, or of version 1 (no open
 *      transactions in it) is removed, and the state is the newest valid
 *      snapshot (at or below the first segment whose .txnindex is rebuilt,
 *      S23) plus a replay of the batches from its offset to the log end (all
 *      batches if none), so a crash anywhere leaves state equal to what the
 *      surviving log implies.
 *  S16. Retention and DeleteRecords never delete snapshots or state:
 *      producer state outlives its segments until the producer has not
 *      written for producer.id.expiration.ms (st_mgr_set_producer_expiration_ms,
 *      default 1 day); then it is dropped: by the next append to the log at
 *      least every min(expiration, 10 min), and when a snapshot is written
 *      or loaded.
 *  S17. Transactions (txnidx.c): a partition tracks, per producer, the first
 *      offset of its open transaction (a transactional batch opens one if
 *      none is open; a control batch, i.e. a marker, closes it), also kept
 *      in the producer state so snapshots carry it (a producer with an open
 *      transaction never expires). The last
 *      stable offset LSO = min(high watermark, first offset of the oldest
 *      open transaction); a read_committed read returns only whole batches
 *      below it (st_read_trim). A marker is written only by the broker
 *      (clients' control batches are refused before the append); a marker
 *      whose epoch is below the producer's is refused (INVALID_PRODUCER_EPOCH),
 *      one above it fences the older epoch (the next data batch starts at
 *      sequence 0); markers never enter the sequence window.
 *  S18. Each abort marker closing an open transaction adds (producer id,
 *      first offset, marker offset) to the partition's aborted list; entries
 *      wholly below the log start offset are dropped. The list is
 *      persisted in the segments' .txnindex files (S22), the open table in
 *      the snapshots (S15); both are rebuilt at open as S23 says.
 *      Compaction never drops a marker while a record of its transaction
 *      stays (S21), so a replay still pairs every remaining transactional
 *      record with its own marker.
 *  S19. The cleaner never rewrites the batch holding a producer's last
 *      sequence (the last batch the producer state records for it): it is
 *      copied verbatim even when all its records are superseded or aborted,
 *      so a replay of the log without a snapshot still finds every live
 *      producer's last sequence (closes docs/durability.md D22's gap). Nor
 *      does it drop a producer's last marker (the log tracks each
 *      producer's last marker offset, from appends and the replay after
 *      the snapshot; where that is unknown since the open, every marker of
 *      a producer in the producer state counts as its last) unless a data
 *      batch of the producer follows it: a fence may be all that carries
 *      the producer's epoch.
 *  S20. Compaction and transactions: the cleanable range ends at the LSO
 *      (S17), so an open transaction's records are never mapped or
 *      rewritten. Records of committed transactions enter the key map and
 *      are dropped like plain ones; a rebuilt batch keeps its attributes
 *      (transactional bit), producer id, epoch, base sequence, base offset
 *      and lastOffsetDelta. Batches of aborted transactions (a producer's
 *      transactional batch within an aborted-list entry of that producer)
 *      never enter the key map, so they never cause a committed record's
 *      removal, and lose all their records (but S19's batch).
 *  S21. A pass reads every batch from the first segment to its end in
 *      order; a marker below the end is dropped when no batch of its
 *      transaction is kept (commit) or none was even read in this pass
 *      (abort: an earlier pass removed them all), it is older than
 *      delete_retention_ms (its max timestamp) and it is not S19's last
 *      marker. A dropped abort marker's entry leaves the aborted list in
 *      the same l_mutex section as the segment swap; a read_committed fetch
 *      reads its data before it takes the aborted list, so it never gets an
 *      entry without its marker in data it could filter wrongly.
 *  S22. `<base>.txnindex` (txnidx.c): each abort marker that closes an open
 *      transaction appends one entry, Kafka's layout (i16 version 0, i64
 *      producer id, first offset, marker offset, LSO after it; 34 bytes,
 *      big-endian), to the file of the segment it is written to, under
 *      l_mutex with the write. The flusher fdatasyncs new entries in the
 *      round that makes the marker durable, so the high watermark and the
 *      recovery point never pass a marker whose entry is not on disk. A
 *      failed entry write unlinks the file (the dir sync precedes the
 *      marker's durability; an unlink failure makes the log fatal) and the
 *      segment gets no more entries: the next open rebuilds it; the list in
 *      memory stays right. The file is deleted with its segment (retention,
 *      DeleteRecords, recovery) and the cleaner stages a group's
 *      concatenated entries with the cleaned segment (fsynced before the
 *      swap's commit, S11).
 *  S23. At open, after recovery: a segment's .txnindex is trusted if the
 *      segment is (clean shutdown, or below the recovery point) and the file
 *      passes a check (whole entries, version 0, marker offsets increasing
 *      in [base, next base), first <= last); its entries form the aborted
 *      list. Otherwise (missing, torn, damaged, or a segment recovery
 *      scanned) it is emptied and rebuilt by the replay of S15, whose
 *      snapshot lies at or below that segment's base: data batches open
 *      transactions, markers close them (an abort writes the entry of a
 *      segment being rebuilt) and fence older epochs. The rebuilt files are
 *      fdatasync'd before the log is used. A clean open with valid files
 *      reads no batch header before the newest snapshot. A rebuild first
 *      makes `txnindex-rebuild` durable in the partition dir, before any
 *      file is created (a missing one is not created at segment open) or
 *      emptied, and removes it once every rebuilt file and the dir are
 *      synced; an open that finds it rebuilds every file. An open
 *      transaction the snapshot names (first offset F below its offset S)
 *      is kept only if a data batch of the producer remains in
 *      [max(F, log start), S): the cleaner (S21), retention and
 *      DeleteRecords may have removed the batches and the marker together,
 *      and the replay from S would never close it. A file claiming more
 *      entries than its segment has offsets or batches is damaged. The
 *      cleaner removes a group's first file before its commit record when
 *      a merged source had lost its file (S22), so the group is rebuilt,
 *      never trusted without the merged entries.
 *
 * Threads: retention and compaction run on the manager's cleaner thread (S8, S9); a close or
 * delete waits for it to leave that log, as it waits for the flusher.
 * st_log_* calls may come from any event-loop thread; a log's
 * mutable state is guarded by its own mutex (appends to one partition are
 * serialised by it). fdatasync runs on the flusher thread, never under a
 * log's mutex for longer than it takes to copy the state it needs.
 * Callbacks (sync waiters, the durable callback) run on the flusher thread and
 * must not call back into the same log's append, nor open, close or delete
 * any log (a close waits for the flusher). A sync waiter may also run
 * synchronously inside st_log_sync_wait (already durable / fatal), or on the
 * thread calling st_log_close / st_log_delete.
 * st_log_open/close/delete of one manager are serialised internally; a log
 * must not be used after (or during) its close or delete.
 */
#ifndef RILL_STORAGE_H
#define RILL_STORAGE_H

#include "base/base.h"
#include "proto/proto.h"

typedef struct {
    int64_t segment_bytes;        /* segment.bytes (log.segment.bytes), default 1 GiB */
    int64_t segment_ms;           /* segment.ms (log.roll.ms), default 7 days */
    int32_t index_interval_bytes; /* index.interval.bytes, default 4096 */
    int32_t segment_index_bytes;  /* segment.index.bytes, default 10 MiB: roll when the index is full */
    int64_t flush_messages;       /* flush.messages: also sync after this many unsynced records (default: max) */
    int64_t flush_ms;             /* flush.ms: also sync when the oldest unsynced record is this old (default: max) */
    bool log_append_time;         /* message.timestamp.type=LogAppendTime */
    int64_t retention_ms;         /* retention.ms: delete segments older than this (-1: never), default 7 days */
    int64_t retention_bytes;      /* retention.bytes: keep the log at most this big (-1: no limit), default -1 */
    bool compact;                 /* cleanup.policy contains compact: the cleaner compacts the log (S9) */
    int64_t delete_retention_ms;  /* delete.retention.ms: tombstones kept this long after their timestamp (1 day) */
    double min_cleanable_dirty_ratio; /* min.cleanable.dirty.ratio (0.5) */
    int64_t min_compaction_lag_ms;    /* min.compaction.lag.ms (0): younger segments are not compacted */
    int64_t max_compaction_lag_ms;    /* max.compaction.lag.ms (max): older dirty data forces a pass */
} st_log_config_t;

void st_log_config_defaults(st_log_config_t *c);

typedef struct st_mgr st_mgr_t;
typedef struct st_log st_log_t;

/* Called on the flusher thread whenever a log's durable offset (= high
 * watermark) advances; the broker uses it to complete long-polling fetches. */
typedef void (*st_durable_cb)(void *ctx, st_log_t *l, int64_t high_watermark);

/* Opens a log dir (creating it), reads the recovery, log-start and cleaner
 * checkpoints, notes whether the clean-shutdown marker is present and
 * removes it (the broker is now running), deletes leftover "-delete"
 * directories and ".tmp"/".cleaned" files, and starts the flusher and
 * cleaner threads. (A partition's interrupted compaction swap is finished
 * or discarded when the log is opened, S11.) */
int st_mgr_open(const char *dir, st_mgr_t **out);
void st_mgr_set_durable_cb(st_mgr_t *m, st_durable_cb cb, void *ctx);
/* Lists the partition directories present (name "topic-N") so the broker can
 * match them against its topic catalog. Calls fn for each. */
void st_mgr_list(st_mgr_t *m, void (*fn)(void *ctx, const char *topic, int32_t partition), void *ctx);
/* Flushes every log, writes the checkpoint, writes the clean-shutdown marker,
 * stops the flusher, frees everything. */
void st_mgr_close(st_mgr_t *m);
const char *st_mgr_dir(const st_mgr_t *m);
/* Number of logs whose fsync failed (a dir with fatal logs is reported by
 * DescribeLogDirs later). */
int st_mgr_fatal_count(const st_mgr_t *m);
/* Writes the recovery checkpoint now (the flusher also does every few
 * seconds and at close). 0 or RB_KAFKA_STORAGE_ERROR. Any thread. */
int st_mgr_checkpoint(st_mgr_t *m);
/* When at least nlogs logs are dirty in one flusher round, one syncfs() of
 * the filesystem replaces their fdatasyncs (0: never). Default 8; the
 * environment variable RILL_STORAGE_SYNCFS_MIN overrides it at open. Ignored
 * (never syncfs) on kernels older than 5.8, whose syncfs hides I/O errors. */
void st_mgr_set_syncfs_min(st_mgr_t *m, int nlogs);

/* Opens (recovering as S6 says) or creates the log of topic-partition.
 * Errors: RB_ERR_INVALID_ARG (topic not [a-zA-Z0-9._-]{1,249}, partition < 0),
 * RB_ERR_EXISTS (already open), RB_KAFKA_STORAGE_ERROR. */
int st_log_open(st_mgr_t *m, const char *topic, int32_t partition, const st_log_config_t *cfg, st_log_t **out);
/* Changes the config of an open log (topic config changes). */
void st_log_set_config(st_log_t *l, const st_log_config_t *cfg);
/* Closes the log (flushing it) without deleting it. */
void st_log_close(st_log_t *l);
/* Deletes the log: renames its dir to `<topic>-<p>.<random>-delete`, fsyncs
 * the parent, frees the log, removes the files. Readers holding dup'd fds keep
 * reading what they had. Pending sync waiters get RB_UNKNOWN_TOPIC_OR_PARTITION
 * (on st_log_close, waiters for offsets never appended get
 * RB_KAFKA_STORAGE_ERROR). No other call on l may run concurrently or follow. */
int st_log_delete(st_log_t *l);

/* Appends a records blob that kp_batch_validate accepted (info describes it).
 * Assigns offsets: batch i gets base offset LEO + sum of earlier batches'
 * record counts; writes them into the caller's buffer in place (S1). Rolls the
 * active segment first when the append would pass segment_bytes, when
 * segment_ms has passed since the segment's first record, or when its index is
 * full. Returns 0 and sets *base_offset (first offset assigned), *last_offset
 * (last offset assigned) and *log_append_time (-1 unless LogAppendTime), or
 * RB_KAFKA_STORAGE_ERROR, RB_RECORD_LIST_TOO_LARGE (a batch larger than
 * segment_bytes, as Kafka), RB_CORRUPT_MESSAGE (the blob does not frame into
 * whole magic-2 batches; nothing written). A batch with a producer id (only
 * alone in its blob; else RB_INVALID_RECORD) is checked against the producer
 * state (S9): RB_DUPLICATE_SEQUENCE_NUMBER with base_offset, last_offset set to
 * the original (nothing written), RB_OUT_OF_ORDER_SEQUENCE_NUMBER,
 * RB_INVALID_PRODUCER_EPOCH, RB_UNKNOWN_PRODUCER_ID (nothing written). With LogAppendTime the batch gets
 * the timestamp-type bit and max_timestamp = now_ms, its CRC recomputed; the
 * base timestamp is left as is (Kafka's in-place path does the same; readers
 * use max_timestamp for every record of such a batch). */
int st_log_append(st_log_t *l, uint8_t *records, size_t len, const kp_batch_info_t *info, int64_t now_ms,
                  int64_t *base_offset, int64_t *last_offset, int64_t *log_append_time);

/* Calls cb(ctx, err) once everything below `offset` is durable (err 0), or
 * the log became fatal (err RB_KAFKA_STORAGE_ERROR). Called on the flusher
 * thread, or synchronously from this call if already durable (returns 1 then,
 * else 0). */
typedef void (*st_sync_cb)(void *ctx, int err);
int st_log_sync_wait(st_log_t *l, int64_t offset, st_sync_cb cb, void *ctx);

typedef struct {
    int64_t log_start_offset;
    int64_t log_end_offset;  /* LEO: next offset to assign */
    int64_t high_watermark;  /* durable offset (S2) */
    int64_t size_bytes;      /* sum of segment sizes */
    int32_t nsegments;
    bool fatal;
} st_log_state_t;
void st_log_state(st_log_t *l, st_log_state_t *out);

/* A read: a byte range of one segment file, whole batches only. */
typedef struct {
    int fd;            /* dup'd: the caller owns it (give it to a write chain) or closes it; -1 when len 0 */
    int64_t file_off;
    size_t len;        /* 0: nothing to return (offset == high watermark) */
    int64_t high_watermark;
    int64_t log_start_offset;
} st_read_t;

/* Reads whole batches starting with the batch containing `offset`, from one
 * segment, up to max_bytes — but at least one whole batch if min_one is set
 * (Kafka's rule: the first batch is returned even if larger than the limit)
 * — and never past the high watermark. An offset in [high watermark, log end
 * offset] returns len 0 and no error (written, not yet durable: durability
 * rule D5). Errors: RB_OFFSET_OUT_OF_RANGE when offset < log start or > log
 * end offset; RB_KAFKA_STORAGE_ERROR (also for a fatal log). */
int st_log_read(st_log_t *l, int64_t offset, size_t max_bytes, bool min_one, st_read_t *out);

/* Calls fn for every record of every uncompressed data batch from the log
 * start to the high watermark, in offset order (control batches and, with a
 * warning, compressed ones are skipped): the replay of the internal topics.
 * 0 or the read's error; *nrecords (may be NULL) = records passed to fn. */
typedef void (*st_record_fn)(void *ctx, int64_t offset, const kp_record_t *rec);
int st_log_scan_records(st_log_t *l, st_record_fn fn, void *ctx, int64_t *nrecords);

/* ListOffsets by timestamp, as Kafka answers it: the first batch (below the
 * high watermark) whose max timestamp >= ts, then inside it the first record
 * whose timestamp >= ts — its offset and timestamp (for a LogAppendTime batch:
 * the base offset and max timestamp). RB_ERR_NOT_FOUND if none. */
int st_log_offset_for_time(st_log_t *l, int64_t ts, int64_t *offset, int64_t *timestamp);
/* ListOffsets MAX_TIMESTAMP (-3): offset and timestamp of the record with the
 * largest timestamp (the first such offset) below the high watermark;
 * RB_ERR_NOT_FOUND if empty. */
int st_log_max_timestamp(st_log_t *l, int64_t *offset, int64_t *timestamp);

/* DeleteRecords: moves the log start offset to before_offset (-1: the high
 * watermark) and deletes the segments wholly below it (S7). Returns 0 with
 * *low_watermark = the log start offset afterwards (unchanged if it was
 * already >= before_offset), RB_OFFSET_OUT_OF_RANGE when before_offset is
 * past the high watermark or < -1, or RB_KAFKA_STORAGE_ERROR (fatal log, the
 * checkpoint cannot be written: nothing changed). Any thread; blocks on one
 * checkpoint write (fsync). */
int st_log_delete_records(st_log_t *l, int64_t before_offset, int64_t *low_watermark);
/* Applies retention (S8) to one log now; returns the number of segments
 * deleted, or RB_KAFKA_STORAGE_ERROR. The cleaner thread calls it; tests may. */
int st_log_retention_run(st_log_t *l, int64_t now_ms);
/* How often the cleaner thread runs retention over all open logs
 * (log.retention.check.interval.ms; default 300000). Wakes it now. */
void st_mgr_set_retention_check_ms(st_mgr_t *m, int64_t ms);

/* Log compaction (S9-S12, compact.c). The manager's cleaner thread also
 * compacts every open log whose config says compact, every backoff_ms
 * (log.cleaner.backoff.ms, default 15000), with a key->offset map of at most
 * dedupe_bytes (log.cleaner.dedupe.buffer.size, default 128 MiB); enable
 * false (log.cleaner.enable) turns compaction off. Wakes the thread. */
void st_mgr_set_cleaner(st_mgr_t *m, bool enable, int64_t dedupe_bytes, int64_t backoff_ms);
typedef struct {
    int64_t first_dirty;     /* first offset the pass deduplicated ... */
    int64_t end_offset;      /* ... up to here (the new cleaner checkpoint) */
    int64_t bytes_read;      /* of the segments rewritten */
    int64_t bytes_written;
    int64_t records_removed;
    int64_t aborted_removed; /* of which records of aborted transactions (S20) */
    int64_t markers_removed; /* transaction markers removed (S21) */
    int32_t segments;        /* rewritten */
    int64_t map_bytes;       /* memory of the key map */
    int64_t dirty_bytes;     /* bytes of the segments holding [first_dirty, end_offset) */
    int64_t elapsed_ms;      /* wall time of the pass */
} st_clean_stats_t;
/* One compaction pass over one log now (the cleaner thread calls it; tests
 * may, and may pass a map budget; 0 = the manager's). Returns 1 when
 * segments were rewritten, 0 when there was nothing to do (not compacted,
 * below the dirty ratio, no sealed dirty segment), or a negative error
 * (RB_KAFKA_STORAGE_ERROR: the pass was abandoned, the old segments stay;
 * an error after the commit point makes the log fatal, the next open
 * finishes the swap). */
int st_log_compact_run(st_log_t *l, int64_t now_ms, int64_t map_budget, st_clean_stats_t *stats);
/* First offset not yet cleaned (the cleaner checkpoint; log start if never). */
int64_t st_log_cleaner_offset(st_log_t *l);

/* ---- idempotent producer state (producers.c; S13-S16) ----
 * Per partition: producer id -> epoch, the last ST_PROD_WINDOW batches'
 * sequence ranges and offsets, the time it last wrote. st_log_append keeps it;
 * the table functions are public so tests can exercise the sequence rules. */
#define ST_PROD_WINDOW 5
#define ST_PRODUCER_EXPIRATION_MS (24LL * 3600 * 1000) /* producer.id.expiration.ms default */
typedef struct {
    int32_t pb_first_seq, pb_last_seq;
    int64_t pb_first_off, pb_last_off;
} st_pbatch_t;
typedef struct st_prod {
    int64_t p_id;
    int16_t p_epoch;
    int p_n;                          /* batches in p_b, oldest first */
    st_pbatch_t p_b[ST_PROD_WINDOW];
    int64_t p_last_ms;                /* last write (wall clock ms), for expiry */
    int64_t p_txn_first;              /* first offset of its open transaction, -1 if none (S17) */
    struct st_prod *p_next;
} st_prod_t;
typedef struct {
    st_prod_t **pt_b;
    size_t pt_nb, pt_n;
} st_ptab_t;
/* seq + delta, wrapping from INT32_MAX to 0 as Kafka's sequences do (delta >= 0). */
int32_t st_seq_add(int32_t seq, int32_t delta);
const st_prod_t *st_pt_find(const st_ptab_t *t, int64_t pid);
/* The sequence rule (producers.c's header): 0 (append), RB_DUPLICATE_SEQUENCE_NUMBER
 * (dup_first, dup_last = the original's offsets), RB_OUT_OF_ORDER_SEQUENCE_NUMBER,
 * RB_INVALID_PRODUCER_EPOCH or RB_UNKNOWN_PRODUCER_ID. */
int st_pt_check(const st_ptab_t *t, int64_t pid, int16_t epoch, int32_t first_seq, int32_t last_seq,
                int64_t *dup_first, int64_t *dup_last);
/* Records an appended batch (a new epoch resets the window). Aborts on OOM. */
void st_pt_record(st_ptab_t *t, int64_t pid, int16_t epoch, int32_t first_seq, int32_t last_seq, int64_t first_off,
                  int64_t last_off, int64_t now_ms);
/* A transaction marker of pid at epoch: a higher epoch than the known one
 * replaces it, with an empty window (S17). Aborts on OOM. */
void st_pt_fence(st_ptab_t *t, int64_t pid, int16_t epoch, int64_t now_ms);
/* Drops producers idle for max_idle_ms or more (never one with an open
 * transaction: its first offset holds the LSO, S17). */
void st_pt_expire(st_ptab_t *t, int64_t now_ms, int64_t max_idle_ms);
void st_pt_free(st_ptab_t *t);
/* Snapshot encoding (the `.snapshot` file's content, version 2: with each
 * producer's open transaction, S15) and decoding (adds to t; RB_CORRUPT_MESSAGE
 * for anything malformed; a version 1 file decodes with no open transaction,
 * *version says which). */
int st_pt_encode(const st_ptab_t *t, int64_t offset, rb_buf_t *out);
int st_pt_decode(st_ptab_t *t, const uint8_t *p, size_t len, int64_t *offset);
int st_pt_decode_v(st_ptab_t *t, const uint8_t *p, size_t len, int64_t *offset, int *version);
/* The open transaction of pid starts at first (-1: none); creates the entry
 * (epoch -1) if needed. Aborts on OOM. */
void st_pt_set_txn(st_ptab_t *t, int64_t pid, int64_t first);
/* The state of one producer in a log: 0 with epoch and the last batch's last
 * sequence, or RB_ERR_NOT_FOUND. Any thread. */
int st_log_producer(st_log_t *l, int64_t pid, int16_t *epoch, int32_t *last_seq);
/* Every producer of the log (DescribeProducers): a malloc'd array the caller
 * frees, n entries. Any thread. */
typedef struct {
    int64_t pid;
    int16_t epoch;
    int32_t last_seq;
    int64_t last_ms;   /* when it last wrote (broker clock) */
} st_producer_info_t;
int st_log_producers(st_log_t *l, st_producer_info_t **out, int *n);
/* producer.id.expiration.ms for every log of the manager (default
 * ST_PRODUCER_EXPIRATION_MS; >= 1). */
void st_mgr_set_producer_expiration_ms(st_mgr_t *m, int64_t ms);

/* ---- transactions (txnidx.c; S17-S18, S22-S23) ---- */
typedef struct {
    int64_t pid;
    int64_t first;   /* first offset of the producer's open transaction */
} st_txn_open_t;
typedef struct {
    int64_t pid;
    int64_t first;   /* first offset of the aborted transaction ... */
    int64_t last;    /* ... and the offset of its abort marker */
} st_aborted_txn_t;
/* The last stable offset (S17). Any thread. */
int64_t st_log_lso(st_log_t *l);
/* The LSO and the aborted transactions overlapping [from, upto): a malloc'd
 * array (NULL when n is 0) the caller frees. Any thread. */
int st_log_txn_view(st_log_t *l, int64_t from, int64_t upto, int64_t *lso, st_aborted_txn_t **out, int *n);
/* The open transactions of the log (a malloc'd array the caller frees). */
int st_log_open_txns(st_log_t *l, st_txn_open_t **out, int *n);
/* Shortens a read to the whole batches whose base offset is below upto
 * (reads their headers from rd->fd); a read left empty has its fd closed
 * and set to -1. 0 or RB_KAFKA_STORAGE_ERROR. */
int st_read_trim(st_read_t *rd, int64_t upto);
/* Builds a transaction marker (a control batch of one record: key version 0
 * + type, 0 abort / 1 commit; value version 0 + coordinator epoch). */
void st_marker_build(rb_buf_t *out, int64_t pid, int16_t epoch, bool commit, int32_t coordinator_epoch,
                     int64_t now_ms);
/* Parses a marker batch (whole batch bytes); 0 with *commit, or RB_CORRUPT_MESSAGE. */
int st_marker_parse(const uint8_t *batch, size_t len, bool *commit);

const char *st_log_topic(const st_log_t *l);
int32_t st_log_partition(const st_log_t *l);
/* An opaque pointer the broker may attach (its partition object). */
void st_log_set_user(st_log_t *l, void *user);
void *st_log_user(const st_log_t *l);

#endif
