/*
 * runtime.c — running a topology against Kafka through librdkafka: the
 * application (internal topics, threads), stream threads (a consumer in the
 * group application.id with the cooperative-sticky assignor, a producer),
 * tasks created and closed as partitions are assigned and revoked, store
 * restore from changelogs with checkpoint files, and the commit loop:
 * at-least-once, or exactly-once (processing.guarantee=exactly_once_v2, one
 * transactional producer per thread, as Kafka Streams' "v2").
 *
 * Invariants:
 *  R1. An input offset is committed only after every record its processing
 *      produced (outputs, repartition records, changelog records) was
 *      acknowledged by the broker and the stores were flushed: commit =
 *      flush caches -> producer flush -> store flush + checkpoint -> offsets.
 *  R2. A task is closed only after such a commit of its partitions, so no
 *      delivery report can name a store of a closed task.
 *  R3. A checkpoint names, per changelog partition, an offset the store's
 *      contents already reflect; a RocksDB store without a checkpoint is
 *      wiped and restored from the beginning.
 *  R4. A thread touches only its own tasks, consumer and producer; the app
 *      shares with threads only the stop flag, metrics (atomics) and the
 *      task list text (under mu).
 * Exactly-once (exactly_once_v2; R1's offsets and checkpoints change):
 *  R5. Every record a thread writes (outputs, repartition records,
 *      changelogs) is sent in the thread's open transaction
 *      (transactional.id <application.id>-<process uuid>-<thread index>),
 *      and the input offsets of what produced them are added to that same
 *      transaction with the consumer's group metadata; commit = flush
 *      caches -> producer flush -> send_offsets_to_transaction ->
 *      commit_transaction. The consumer never commits offsets itself.
 *  R6. Every read is read_committed (input, repartition topics, changelog
 *      restore), so no record of an aborted or open transaction is ever
 *      processed or restored; a restore ends at the partition's end as a
 *      read_committed consumer sees it (its last stable offset).
 *  R7. When a transaction cannot commit (an abortable error: abort it; a
 *      fatal one, e.g. fenced: a new producer under the same id, whose
 *      init_transactions aborts what was open), every task of the thread
 *      is closed dirty: caches dropped unwritten, state directory wiped, no
 *      checkpoint; the consumer seeks to the committed offsets, and a task
 *      is made again (stores restored from the changelogs, R6) before it
 *      processes a record. So the state a task processes on is always the
 *      one its committed offsets name.
 *  R8. A checkpoint is written only at a clean close (after a successful
 *      commit of the task: revocation, shutdown) and deleted when the task
 *      opens; so after a crash a RocksDB store has no checkpoint and is
 *      wiped and restored from the beginning (R3), never trusted with
 *      uncommitted writes.
 */
#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "streams/streams_int.h"

typedef struct rs_app rs_app;

typedef struct {
    rs_app *app;
    int idx;
    pthread_t th;
    bool started;
    rd_kafka_t *consumer, *producer, *restorer;
    GHashTable *tasks;   /* "st_p" -> rs_task * */
    GHashTable *offsets; /* "p|topic" -> int64 next offset (boxed) */
    GHashTable *nparts;  /* topic -> partition count (for user partitioners) */
    int64_t last_commit;
    /* exactly-once (R5-R7): a transaction is open; a send in it failed */
    bool in_txn, txn_error;
    bool drop_reports; /* a rollback: delivery reports of the old transaction name freed stores */
    bool assigned_once; /* the rebalance callback has run (the first SyncGroup answer is in) */
    char *txn_id;
    rs_cache_budget cache; /* this thread's share of cache.max.bytes.buffering */
    char err[512];
} rs_thread;

struct rs_app {
    const rs_topology *topo;
    rs_config *cfg;
    char *app_id, *state_dir;
    int nthreads;
    rs_thread *threads;
    atomic_bool stop;
    atomic_bool failed;
    pthread_mutex_t mu;
    char err[512];
    GHashTable *task_names; /* "st_p" -> thread idx (under mu) */
    int *st_partitions;     /* per sub-topology: partition count */
    bool copartitioned;     /* some sub-topology reads several topics: range assignor */
    bool eos;               /* processing.guarantee=exactly_once_v2 */
    char *process_id;       /* a uuid per rs_app: the middle of transactional ids */
    atomic_llong m_process, m_dropped, m_skipped, m_commits, m_restored, m_aborts;
};

static int64_t now_ms(void) { return g_get_real_time() / 1000; }

static void fail(rs_thread *th, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(rs_thread *th, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&th->app->mu);
    if (!th->app->failed) {
        vsnprintf(th->app->err, sizeof(th->app->err), fmt, ap);
        atomic_store(&th->app->failed, true);
    }
    pthread_mutex_unlock(&th->app->mu);
    va_end(ap);
    atomic_store(&th->app->stop, true);
}

/* librdkafka settings: ours, then the user's (any name Streams does not own;
 * "consumer." / "producer." prefixes apply to that client only) */
static bool streams_name(const char *n) {
    static const char *own[] = {"application.id", "num.stream.threads", "commit.interval.ms", "state.dir",
                                "processing.guarantee", "cache.max.bytes.buffering", "default.timestamp.extractor",
                                "default.dsl.store", "rocksdb.memory.bytes", NULL};
    for (int i = 0; own[i]; i++)
        if (!strcmp(n, own[i])) return true;
    return false;
}

static int conf_set(rd_kafka_conf_t *kc, const char *n, const char *v, char *errstr, size_t errlen) {
    return rd_kafka_conf_set(kc, n, v, errstr, errlen) == RD_KAFKA_CONF_OK ? 0 : -1;
}

static rd_kafka_conf_t *client_conf(rs_app *a, const char *kind, char *errstr, size_t errlen) {
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, a->cfg->kv);
    size_t kl = strlen(kind);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        const char *n = k;
        if (streams_name(n)) continue;
        if (!strncmp(n, "consumer.", 9) || !strncmp(n, "producer.", 9)) {
            if (strncmp(n, kind, kl) || n[kl] != '.') continue;
            n += kl + 1;
        }
        if (conf_set(kc, n, v, errstr, errlen)) {
            rd_kafka_conf_destroy(kc);
            return NULL;
        }
    }
    return kc;
}

/* ---- producing ---- */

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    rs_thread *th = opaque;
    if (th->drop_reports) return;
    if (m->err && th->app->eos) { /* the transaction cannot commit: R7 (the first failure said) */
        if (!th->txn_error)
            fprintf(stderr, "rill-streams: produce to %s [%d] in transaction %s failed: %s\n",
                    rd_kafka_topic_name(m->rkt), (int)m->partition, th->txn_id, rd_kafka_err2str(m->err));
        th->txn_error = true;
        return;
    }
    if (m->err) {
        fail(th, "produce to %s [%d] failed: %s", rd_kafka_topic_name(m->rkt), (int)m->partition,
             rd_kafka_err2str(m->err));
        return;
    }
    rs_kv_store *s = m->_private;
    if (s && m->offset + 1 > s->changelog_end) s->changelog_end = m->offset + 1;
}

static void txn_begin(rs_thread *th) {
    if (th->in_txn || th->txn_error) return;
    rd_kafka_error_t *e = rd_kafka_begin_transaction(th->producer);
    if (e) {
        fprintf(stderr, "rill-streams: begin transaction %s: %s\n", th->txn_id, rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        th->txn_error = true;
        return;
    }
    th->in_txn = true;
}

static void thread_sink(void *arg, const char *topic, int32_t partition, const rs_record *r, rs_kv_store *store) {
    rs_thread *th = arg;
    if (!th->producer) return; /* its replacement failed (R7): the app has failed */
    if (th->app->eos) {
        txn_begin(th); /* R5 */
        if (th->txn_error) return; /* the transaction will be aborted anyway */
    }
    for (int tries = 0;; tries++) {
        rd_kafka_headers_t *hs = NULL;
        if (r->headers && r->header_count) {
            hs = rd_kafka_headers_new(r->header_count);
            for (size_t i = 0; i < r->header_count; i++)
                rd_kafka_header_add(hs, r->headers[i].key, -1, r->headers[i].value.data,
                                    r->headers[i].value.data ? (ssize_t)r->headers[i].value.len : 0);
        }
        rd_kafka_resp_err_t e = rd_kafka_producev(
            th->producer, RD_KAFKA_V_TOPIC(topic),
            RD_KAFKA_V_PARTITION(partition < 0 ? RD_KAFKA_PARTITION_UA : partition),
            RD_KAFKA_V_KEY(r->key.data, r->key.data ? r->key.len : 0),
            RD_KAFKA_V_VALUE((void *)r->value.data, r->value.data ? r->value.len : 0),
            RD_KAFKA_V_TIMESTAMP(r->timestamp), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(store),
            RD_KAFKA_V_HEADERS(hs), RD_KAFKA_V_END);
        if (!e) return; /* the message owns hs now */
        if (hs) rd_kafka_headers_destroy(hs);
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL && tries < 600) {
            rd_kafka_poll(th->producer, 100);
            continue;
        }
        if (th->app->eos) {
            fprintf(stderr, "rill-streams: produce to %s in transaction %s: %s\n", topic, th->txn_id,
                    rd_kafka_err2str(e));
            th->txn_error = true;
            return;
        }
        fail(th, "produce to %s: %s", topic, rd_kafka_err2str(e));
        return;
    }
}

static int32_t thread_partitions(void *arg, const char *topic) {
    rs_thread *th = arg;
    gpointer v;
    if (g_hash_table_lookup_extended(th->nparts, topic, NULL, &v)) return GPOINTER_TO_INT(v);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(th->producer, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    int32_t n = -1;
    if (rkt && !rd_kafka_metadata(th->producer, 0, rkt, &md, 10000)) {
        if (md->topic_cnt == 1 && !md->topics[0].err) n = md->topics[0].partition_cnt;
        rd_kafka_metadata_destroy(md);
    }
    if (rkt) rd_kafka_topic_destroy(rkt);
    if (n > 0) g_hash_table_insert(th->nparts, g_strdup(topic), GINT_TO_POINTER(n));
    return n;
}

/* ---- checkpoints (R3) ---- */

static char *ckpt_path(rs_task *t) { return g_strdup_printf("%s/.checkpoint", t->state_dir); }

static void write_checkpoint(rs_task *t) {
    GString *s = g_string_new("0\n"); /* version */
    const rs_graph *g = t->topo->g;
    for (guint i = 0; i < g->stores->len; i++) {
        rs_kv_store *st = t->stores[i];
        if (st && st->changelog && st->changelog_end >= 0)
            g_string_append_printf(s, "%s %d %lld\n", st->changelog, (int)t->partition, (long long)st->changelog_end);
    }
    char *p = ckpt_path(t), *tmp = g_strdup_printf("%s.tmp", p);
    g_mkdir_with_parents(t->state_dir, 0755);
    if (g_file_set_contents(tmp, s->str, (gssize)s->len, NULL)) rename(tmp, p);
    g_free(tmp);
    g_free(p);
    g_string_free(s, TRUE);
}

/* the checkpointed offset of a store's changelog, or -1 */
static int64_t read_checkpoint(const char *task_dir, const char *changelog, int32_t partition) {
    char *p = g_strdup_printf("%s/.checkpoint", task_dir), *text = NULL;
    int64_t off = -1;
    if (g_file_get_contents(p, &text, NULL, NULL)) {
        char **lines = g_strsplit(text, "\n", -1);
        for (char **l = lines; *l; l++) {
            char topic[512];
            int part;
            long long o;
            if (sscanf(*l, "%511s %d %lld", topic, &part, &o) == 3 && !strcmp(topic, changelog) && part == partition)
                off = o;
        }
        g_strfreev(lines);
        g_free(text);
    }
    g_free(p);
    return off;
}

/* ---- tasks ---- */


/* true when the store holds its changelog up to the end; false when the
 * restore was cut short (the app stopping, or a failure, which it reports) */
static bool restore_store(rs_thread *th, rs_task *t, rs_kv_store *s) {
    int64_t lo = 0, hi = 0;
    rd_kafka_resp_err_t e =
        rd_kafka_query_watermark_offsets(th->restorer, s->changelog, t->partition, &lo, &hi, 10000);
    if (e) { /* no changelog yet: nothing to restore */
        s->changelog_end = -1;
        return true;
    }
    int64_t from = lo;
    if (s->vt == &rs__rocksdb_store_vt) {
        int64_t ck = read_checkpoint(t->state_dir, s->changelog, t->partition);
        if (ck >= lo && ck <= hi) from = ck;
    }
    s->changelog_end = hi;
    if (from >= hi) return true;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, s->changelog, t->partition)->offset = from;
    rd_kafka_assign(th->restorer, l);
    rd_kafka_topic_partition_list_destroy(l);
    int64_t deadline = now_ms() + 120000, pos = from;
    while (pos < hi && now_ms() < deadline && !atomic_load(&th->app->stop)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(th->restorer, 100);
        if (!m) continue;
        bool mine = m->partition == t->partition && m->rkt && !strcmp(rd_kafka_topic_name(m->rkt), s->changelog);
        if (!mine) {
            /* left from an earlier assignment of the restorer */
        } else if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && m->offset >= from) {
            /* the end as this consumer sees it: under read_committed the
             * last stable offset; aborted records and transaction markers
             * before it are never delivered (R6) */
            if (m->offset > pos) pos = m->offset;
            if (pos < hi) hi = s->changelog_end = pos;
        } else if (!m->err) {
            rs_bytes k = {m->key ? m->key : "", m->key_len};
            rs_bytes v = m->payload ? (rs_bytes){m->payload, m->len} : RS_NULL_BYTES;
            s->vt->put(s->impl, k, v);
            pos = m->offset + 1;
            atomic_fetch_add(&th->app->m_restored, 1);
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_assign(th->restorer, NULL);
    if (pos >= hi) return true;
    if (!atomic_load(&th->app->stop)) /* a stop cuts a restore short without failing */
        fail(th, "restore of %s [%d] stopped at %lld of %lld", s->changelog, (int)t->partition, (long long)pos,
             (long long)hi);
    return false;
}

static void publish_tasks(rs_thread *th) {
    pthread_mutex_lock(&th->app->mu);
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, th->app->task_names);
    while (g_hash_table_iter_next(&it, &k, &v))
        if (GPOINTER_TO_INT(v) == th->idx) g_hash_table_iter_remove(&it);
    g_hash_table_iter_init(&it, th->tasks);
    while (g_hash_table_iter_next(&it, &k, &v)) g_hash_table_insert(th->app->task_names, g_strdup(k), GINT_TO_POINTER(th->idx));
    pthread_mutex_unlock(&th->app->mu);
}

static rs_task *task_get(rs_thread *th, int st, int32_t p, bool create) {
    char name[32];
    snprintf(name, sizeof(name), "%d_%d", st, (int)p);
    rs_task *t = g_hash_table_lookup(th->tasks, name);
    if (t || !create) return t;
    rs_app *a = th->app;
    char *dir = g_strdup_printf("%s/%s", a->state_dir, name);
    /* R3: persistent stores without a checkpoint are stale: start empty */
    char *ck = g_strdup_printf("%s/.checkpoint", dir);
    if (!g_file_test(ck, G_FILE_TEST_EXISTS)) {
        char *rdb = g_strdup_printf("%s/rocksdb", dir);
        rs__rm_rf(rdb);
        g_free(rdb);
    }
    g_free(ck);
    g_free(dir);
    char err[512] = "";
    t = rs__task_new(a->topo, a->cfg, a->app_id, st, p, thread_sink, th, now_ms(), a->state_dir, &th->cache, err,
                     sizeof(err));
    if (!t) {
        fail(th, "task %s: %s", name, err);
        return NULL;
    }
    t->partitions = thread_partitions;
    const rs_graph *g = a->topo->g;
    for (guint i = 0; i < g->stores->len; i++)
        if (t->stores[i] && t->stores[i]->changelog && !restore_store(th, t, t->stores[i])) {
            /* a store restored in part never processes a record, and it is
             * never closed clean (that would checkpoint it as whole) */
            rs__task_free(t);
            return NULL;
        }
    if (a->eos) { /* R8: from here on the stores may hold uncommitted writes */
        char *ckp = ckpt_path(t);
        remove(ckp);
        g_free(ckp);
    }
    rs__task_reinit_windows(t);
    g_hash_table_insert(th->tasks, g_strdup(name), t);
    publish_tasks(th);
    return t;
}

static void flush_and_checkpoint(rs_task *t) {
    for (guint i = 0; i < t->topo->g->stores->len; i++)
        if (t->stores[i]) t->stores[i]->vt->flush(t->stores[i]->impl);
    write_checkpoint(t);
}

/* the thread's input offsets to commit, or NULL when there are none */
static rd_kafka_topic_partition_list_t *offsets_list(rs_thread *th) {
    int n = (int)g_hash_table_size(th->offsets);
    if (!n) return NULL;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, th->offsets);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        const char *key = k, *bar = strchr(key, '|');
        rd_kafka_topic_partition_list_add(l, bar + 1, atoi(key))->offset = *(int64_t *)v;
    }
    return l;
}

static int commit_eos(rs_thread *th, bool final);

/* R1 */
static int commit(rs_thread *th, bool final) {
    if (th->app->eos) return commit_eos(th, final);
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, th->tasks);
    while (g_hash_table_iter_next(&it, &k, &v)) rs__task_commit(v);
    if (rd_kafka_flush(th->producer, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fail(th, "producer flush timed out: not committing");
        return -1;
    }
    if (atomic_load(&th->app->failed)) return -1;
    g_hash_table_iter_init(&it, th->tasks);
    while (g_hash_table_iter_next(&it, &k, &v)) flush_and_checkpoint(v);
    rd_kafka_topic_partition_list_t *l = offsets_list(th);
    if (l) {
        rd_kafka_resp_err_t e = rd_kafka_commit(th->consumer, l, 0);
        rd_kafka_topic_partition_list_destroy(l);
        if (e && !final)
            fprintf(stderr, "rill-streams: offset commit failed: %s\n", rd_kafka_err2str(e));
        if (!e) g_hash_table_remove_all(th->offsets);
    }
    atomic_fetch_add(&th->app->m_commits, 1);
    th->last_commit = now_ms();
    return 0;
}

static int source_subtopo(rs_app *a, const char *topic) {
    for (int st = 0; st < a->topo->g->nsubtopos; st++)
        if (rs__source_for(a->topo, st, a->app_id, topic) >= 0) return st;
    return -1;
}

static void add_task_metrics(rs_app *a, const rs_task *t) {
    atomic_fetch_add(&a->m_process, t->m.process_total);
    atomic_fetch_add(&a->m_dropped, t->m.dropped);
    atomic_fetch_add(&a->m_skipped, t->m.skipped);
}

/* clean: the commit of R2 succeeded. Under exactly-once only such a close
 * writes a checkpoint (R8); a dirty one leaves the store without one, so
 * its next open wipes and restores it (R3). */
static void close_task(rs_thread *th, const char *name, bool clean) {
    rs_task *t = g_hash_table_lookup(th->tasks, name);
    if (!t) return;
    if (th->app->eos && clean) flush_and_checkpoint(t);
    add_task_metrics(th->app, t);
    g_hash_table_remove(th->tasks, name);
}

static rd_kafka_t *new_producer(rs_app *a, rs_thread *th, char *errstr, size_t errlen);

/* R7: the open transaction cannot commit. Abort it (or, when the producer
 * is in a fatal state, replace the producer: the new one's
 * init_transactions aborts it), close every task dirty and wipe its state
 * directory, and (seek) go back to the committed offsets; tasks are made
 * again (and restored) by the next record of their partitions. Without
 * seek (the whole assignment is being taken away: lost partitions), the
 * next owner starts from the committed offsets anyway. */
static void txn_rollback(rs_thread *th, rd_kafka_error_t *cause, const char *reason, bool seek) {
    rs_app *a = th->app;
    bool fatal = cause ? rd_kafka_error_is_fatal(cause) : false;
    char why[512];
    snprintf(why, sizeof(why), "%s", cause ? rd_kafka_error_string(cause) : reason);
    if (!fatal) {
        char ferr[256];
        fatal = rd_kafka_fatal_error(th->producer, ferr, sizeof(ferr)) != RD_KAFKA_RESP_ERR_NO_ERROR;
    }
    if (!fatal) {
        rd_kafka_error_t *e = rd_kafka_abort_transaction(th->producer, 60000);
        if (e) {
            fprintf(stderr, "rill-streams: abort transaction %s: %s\n", th->txn_id, rd_kafka_error_string(e));
            fatal = true; /* whatever state it is in, a new producer starts clean */
            rd_kafka_error_destroy(e);
        }
    }
    fprintf(stderr, "rill-streams: transaction %s %s (%s): tasks closed dirty, state restored from changelogs\n",
            th->txn_id, fatal ? "fenced or fatal, new producer" : "aborted", why);
    /* the reports of the old transaction (purged, or delivered and not yet
     * served) are served now, before the stores they name are freed */
    th->drop_reports = true;
    if (fatal) rd_kafka_purge(th->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    while (rd_kafka_poll(th->producer, 0) > 0) {
    }
    if (fatal) {
        rd_kafka_destroy(th->producer);
        char e[512] = "";
        th->producer = new_producer(a, th, e, sizeof(e));
        if (!th->producer) {
            fail(th, "new producer after a fatal transaction error: %s", e);
            return;
        }
    }
    th->drop_reports = false;
    th->in_txn = th->txn_error = false;
    atomic_fetch_add(&a->m_aborts, 1);
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, th->tasks);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        rs_task *t = v;
        char *dir = g_strdup(t->state_dir);
        add_task_metrics(a, t);
        g_hash_table_iter_remove(&it); /* frees the task: nothing is written */
        rs__rm_rf(dir);
        g_free(dir);
    }
    g_hash_table_remove_all(th->offsets);
    publish_tasks(th);
    if (!seek) return;
    rd_kafka_topic_partition_list_t *as = NULL;
    if (rd_kafka_assignment(th->consumer, &as) || !as) {
        fail(th, "rollback: no assignment");
        return;
    }
    if (as->cnt) {
        rd_kafka_resp_err_t e = rd_kafka_committed(th->consumer, as, 60000);
        if (e) {
            fail(th, "rollback: committed offsets: %s", rd_kafka_err2str(e));
        } else {
            for (int i = 0; i < as->cnt; i++)
                if (as->elems[i].offset < 0) as->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
            rd_kafka_error_t *se = rd_kafka_seek_partitions(th->consumer, as, 60000);
            if (se) {
                fail(th, "rollback: seek: %s", rd_kafka_error_string(se));
                rd_kafka_error_destroy(se);
            }
        }
    }
    rd_kafka_topic_partition_list_destroy(as);
}

/* R5: the commit under exactly-once; with final (a clean close of all
 * tasks) the checkpoints follow a successful commit (R8) */
static int commit_eos(rs_thread *th, bool final) {
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, th->tasks);
    while (g_hash_table_iter_next(&it, &k, &v)) rs__task_commit(v);
    if (atomic_load(&th->app->failed) || !th->producer) return -1; /* what is open is aborted at rs_app_free */
    rd_kafka_topic_partition_list_t *l = offsets_list(th);
    rd_kafka_error_t *e = NULL;
    if (!th->in_txn && !th->txn_error && !l) goto done; /* nothing to commit */
    if (rd_kafka_flush(th->producer, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR) th->txn_error = true;
    txn_begin(th); /* offsets alone are a transaction too */
    if (th->txn_error) {
        if (l) rd_kafka_topic_partition_list_destroy(l);
        txn_rollback(th, NULL, "a send in the transaction failed", true);
        return -1;
    }
    if (l) {
        rd_kafka_consumer_group_metadata_t *md = rd_kafka_consumer_group_metadata(th->consumer);
        e = rd_kafka_send_offsets_to_transaction(th->producer, l, md, 60000);
        rd_kafka_consumer_group_metadata_destroy(md);
        rd_kafka_topic_partition_list_destroy(l);
    }
    if (!e) e = rd_kafka_commit_transaction(th->producer, 60000);
    if (e) {
        txn_rollback(th, e, NULL, true);
        rd_kafka_error_destroy(e);
        return -1;
    }
    th->in_txn = false;
    g_hash_table_remove_all(th->offsets);
    atomic_fetch_add(&th->app->m_commits, 1);
done:
    if (final) {
        g_hash_table_iter_init(&it, th->tasks);
        while (g_hash_table_iter_next(&it, &k, &v)) flush_and_checkpoint(v);
    }
    th->last_commit = now_ms();
    return 0;
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                         void *opaque) {
    rs_thread *th = opaque;
    th->assigned_once = true;
    bool cooperative = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        rd_kafka_error_t *e = cooperative ? rd_kafka_incremental_assign(rk, parts) : NULL;
        if (!cooperative && rd_kafka_assign(rk, parts)) {
            fail(th, "assign failed");
            return;
        }
        if (e) {
            fail(th, "incremental assign: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
            return;
        }
        for (int i = 0; i < parts->cnt; i++) {
            int st = source_subtopo(th->app, parts->elems[i].topic);
            if (st >= 0) task_get(th, st, parts->elems[i].partition, true);
        }
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        bool clean = false;
        if (th->app->eos && rd_kafka_assignment_lost(rk))
            txn_rollback(th, NULL, "partitions lost", false); /* another member may own them: no commit (R7) */
        else
            clean = commit(th, false) == 0; /* R2 */
        for (int i = 0; i < parts->cnt; i++) {
            int st = source_subtopo(th->app, parts->elems[i].topic);
            char name[32];
            snprintf(name, sizeof(name), "%d_%d", st, (int)parts->elems[i].partition);
            close_task(th, name, clean);
            /* never commit for a partition we no longer own: a failed commit
             * must not later overwrite the new owner's progress */
            char key[600];
            snprintf(key, sizeof(key), "%d|%s", (int)parts->elems[i].partition, parts->elems[i].topic);
            g_hash_table_remove(th->offsets, key);
        }
        publish_tasks(th);
        if (cooperative) {
            rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
            if (e) rd_kafka_error_destroy(e);
        } else {
            rd_kafka_assign(rk, NULL);
        }
    } else {
        fail(th, "rebalance: %s", rd_kafka_err2str(err));
    }
}

static void task_free_cb(gpointer p) { rs__task_free(p); }

/* librdkafka before 2.3.0 (Debian 12 has 2.0.2) fails an assertion and
 * aborts the process when it destroys a consumer of a cooperative assignor
 * that has chosen its protocol (JoinGroup answered) but not yet had its
 * first assignment (SyncGroup answered): librdkafka issue #4312, reproduced
 * by test_streams.py::test_stop_in_first_rebalance. So a consumer in that
 * window is polled until its first assignment arrives (the rebalance
 * callback always runs once for it, even empty), for at most 30 s, before
 * it is closed. A stop has been asked: a task made meanwhile restores
 * nothing (restore_store) and a record polled is dropped uncounted. */
static void first_assignment_wait(rs_thread *th) {
    int64_t until = now_ms() + 30000;
    while (!th->assigned_once && !strcmp(rd_kafka_rebalance_protocol(th->consumer), "COOPERATIVE") &&
           now_ms() < until) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(th->consumer, 50);
        if (m) rd_kafka_message_destroy(m);
    }
}

static void *thread_main(void *arg) {
    rs_thread *th = arg;
    rs_app *a = th->app;
    th->last_commit = now_ms();
    int64_t interval = rs__config_commit_interval(a->cfg);
    while (!atomic_load(&a->stop)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(th->consumer, 50);
        if (m) {
            if (!m->err) {
                const char *topic = rd_kafka_topic_name(m->rkt);
                int st = source_subtopo(a, topic);
                rs_task *t = st >= 0 ? task_get(th, st, m->partition, true) : NULL;
                if (t) {
                    rs_header hbuf[32];
                    size_t nh = 0;
                    rd_kafka_headers_t *hs = NULL;
                    if (!rd_kafka_message_headers(m, &hs)) { /* the first 32 headers travel on */
                        const char *hn;
                        const void *hv;
                        size_t hl;
                        while (nh < 32 && !rd_kafka_header_get_all(hs, nh, &hn, &hv, &hl)) {
                            hbuf[nh].key = hn;
                            hbuf[nh].value = hv ? (rs_bytes){hv, hl} : RS_NULL_BYTES;
                            nh++;
                        }
                    }
                    rs_record r = {.key = m->key ? (rs_bytes){m->key, m->key_len} : RS_NULL_BYTES,
                                   .headers = nh ? hbuf : NULL,
                                   .header_count = nh,
                                   .value = m->payload ? (rs_bytes){m->payload, m->len} : RS_NULL_BYTES,
                                   .timestamp = rd_kafka_message_timestamp(m, NULL),
                                   .topic = topic,
                                   .partition = m->partition,
                                   .offset = m->offset};
                    rs__task_process(t, topic, &r);
                    char key[600];
                    snprintf(key, sizeof(key), "%d|%s", (int)m->partition, topic);
                    int64_t *next = g_hash_table_lookup(th->offsets, key);
                    if (!next) {
                        next = g_new(int64_t, 1);
                        g_hash_table_insert(th->offsets, g_strdup(key), next);
                    }
                    *next = m->offset + 1;
                }
            } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                fprintf(stderr, "rill-streams: consumer: %s\n", rd_kafka_message_errstr(m));
            }
            rd_kafka_message_destroy(m);
        }
        if (th->producer) rd_kafka_poll(th->producer, 0);
        int64_t now = now_ms();
        GHashTableIter it;
        gpointer k, v;
        g_hash_table_iter_init(&it, th->tasks);
        while (g_hash_table_iter_next(&it, &k, &v)) rs__task_wall_clock(v, now);
        if (now - th->last_commit >= interval) commit(th, false);
    }
    if (!atomic_load(&a->failed)) commit(th, true);
    first_assignment_wait(th);
    rd_kafka_consumer_close(th->consumer);
    return NULL;
}

/* ---- the application ---- */

rs_app *rs_app_new(const rs_topology *t, const rs_config *c, char *errstr, size_t errlen) {
    if (!t || !c || !rs_config_get(c, "application.id") || !rs_config_get(c, "bootstrap.servers")) {
        if (errstr && errlen) snprintf(errstr, errlen, "application.id and bootstrap.servers are required");
        return NULL;
    }
    rs_app *a = calloc(1, sizeof(*a));
    if (!a) abort();
    a->topo = t;
    a->cfg = rs__config_dup(c);
    a->app_id = g_strdup(rs_config_get(c, "application.id"));
    a->state_dir = g_strdup_printf("%s/%s", rs__config_str(c, "state.dir", "/tmp/rill-streams"), a->app_id);
    a->nthreads = (int)rs__config_int(c, "num.stream.threads", 1);
    a->eos = rs__config_eos(c);
    a->process_id = g_uuid_string_random();
    a->threads = calloc((size_t)a->nthreads, sizeof(rs_thread));
    a->task_names = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    pthread_mutex_init(&a->mu, NULL);
    a->st_partitions = calloc((size_t)t->g->nsubtopos + 1, sizeof(int));
    if (!a->threads || !a->st_partitions) abort();
    return a;
}

/* partition counts: user topics from metadata; a repartition topic gets the
 * count of the sub-topology writing it; a changelog that of its store's. */
static int plan_topics(rs_app *a, rd_kafka_t *rk, char *errstr, size_t errlen) {
    const rs_graph *g = a->topo->g;
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(rk, 1, NULL, &md, 10000)) {
        snprintf(errstr, errlen, "cannot read metadata from %s", rs_config_get(a->cfg, "bootstrap.servers"));
        return -1;
    }
    for (guint i = 0; i < g->nodes->len; i++) {
        rs_node *nd = g_ptr_array_index(g->nodes, i);
        if (nd->kind != RS_N_SOURCE || nd->internal_topic) continue;
        for (int k = 0; k < md->topic_cnt; k++) {
            bool match = nd->is_pattern ? !regexec(&nd->re, md->topics[k].topic, 0, NULL, 0) : false;
            for (size_t j = 0; !nd->is_pattern && j < nd->ntopics; j++) match |= !strcmp(nd->topics[j], md->topics[k].topic);
            if (match && md->topics[k].partition_cnt > a->st_partitions[nd->subtopo])
                a->st_partitions[nd->subtopo] = md->topics[k].partition_cnt;
        }
    }
    /* co-partitioning: the topics one sub-topology reads must have the same
     * partition count; then the range assignor gives partition p of each to
     * the same member, which is what makes task st_p whole */
    int *ntop = calloc((size_t)g->nsubtopos + 1, sizeof(int));
    if (!ntop) abort();
    for (guint i = 0; i < g->nodes->len; i++) {
        rs_node *nd = g_ptr_array_index(g->nodes, i);
        if (nd->kind != RS_N_SOURCE) continue;
        ntop[nd->subtopo] += nd->is_pattern ? 2 : (int)nd->ntopics;
        for (int k = 0; k < md->topic_cnt && !nd->internal_topic; k++)
            for (size_t j = 0; !nd->is_pattern && j < nd->ntopics; j++)
                if (!strcmp(nd->topics[j], md->topics[k].topic) &&
                    md->topics[k].partition_cnt != a->st_partitions[nd->subtopo]) {
                    snprintf(errstr, errlen, "topics of sub-topology %d are not co-partitioned: %s has %d partitions, "
                             "another %d", nd->subtopo, nd->topics[j], md->topics[k].partition_cnt,
                             a->st_partitions[nd->subtopo]);
                    free(ntop);
                    rd_kafka_metadata_destroy(md);
                    return -1;
                }
    }
    for (int st = 0; st < g->nsubtopos; st++) a->copartitioned |= ntop[st] > 1;
    free(ntop);
    rd_kafka_metadata_destroy(md);
    for (int round = 0; round < 16; round++)
        for (guint i = 0; i < g->nodes->len; i++) {
            rs_node *sink = g_ptr_array_index(g->nodes, i);
            if (sink->kind != RS_N_SINK || !sink->internal_topic) continue;
            for (guint j = 0; j < g->nodes->len; j++) {
                rs_node *src = g_ptr_array_index(g->nodes, j);
                if (src->kind == RS_N_SOURCE && src->internal_topic && !strcmp(src->topics[0], sink->topic) &&
                    a->st_partitions[sink->subtopo] > a->st_partitions[src->subtopo])
                    a->st_partitions[src->subtopo] = a->st_partitions[sink->subtopo];
            }
        }
    for (int st = 0; st < g->nsubtopos; st++)
        if (a->st_partitions[st] < 1) {
            snprintf(errstr, errlen, "sub-topology %d: no source topic exists yet", st);
            return -1;
        }
    return 0;
}

static int create_topics(rs_app *a, rd_kafka_t *rk, char *errstr, size_t errlen) {
    const rs_graph *g = a->topo->g;
    GPtrArray *nts = g_ptr_array_new_with_free_func((GDestroyNotify)rd_kafka_NewTopic_destroy);
    char e[256];
    for (guint i = 0; i < g->nodes->len; i++) {
        rs_node *nd = g_ptr_array_index(g->nodes, i);
        if (nd->kind != RS_N_SOURCE || !nd->internal_topic) continue;
        char *name = rs__full_topic(a->app_id, nd, 0);
        g_ptr_array_add(nts, rd_kafka_NewTopic_new(name, a->st_partitions[nd->subtopo], 1, e, sizeof(e)));
        g_free(name);
    }
    for (guint i = 0; i < g->stores->len; i++) {
        rs_store_def *sd = g_ptr_array_index(g->stores, i);
        if (sd->m.no_logging) continue;
        int st = -1;
        for (guint j = 0; j < g->nodes->len && st < 0; j++) {
            rs_node *nd = g_ptr_array_index(g->nodes, j);
            for (guint k = 0; k < nd->stores->len; k++)
                if (g_array_index(nd->stores, int, k) == (int)i) st = nd->subtopo;
        }
        if (st < 0) continue;
        char *name = g_strdup_printf("%s-%s-changelog", a->app_id, sd->name);
        rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(name, a->st_partitions[st], 1, e, sizeof(e));
        rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "compact");
        g_ptr_array_add(nts, nt);
        g_free(name);
    }
    int rc = 0;
    if (nts->len) {
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_CreateTopics(rk, (rd_kafka_NewTopic_t **)nts->pdata, nts->len, NULL, q);
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
        const rd_kafka_CreateTopics_result_t *res = ev ? rd_kafka_event_CreateTopics_result(ev) : NULL;
        if (!res) {
            snprintf(errstr, errlen, "CreateTopics: %s", ev ? rd_kafka_event_error_string(ev) : "timed out");
            rc = -1;
        } else {
            size_t n;
            const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &n);
            for (size_t i = 0; i < n; i++) {
                rd_kafka_resp_err_t te = rd_kafka_topic_result_error(tr[i]);
                if (te && te != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                    snprintf(errstr, errlen, "create %s: %s", rd_kafka_topic_result_name(tr[i]),
                             rd_kafka_err2str(te));
                    rc = -1;
                }
            }
        }
        if (ev) rd_kafka_event_destroy(ev);
        rd_kafka_queue_destroy(q);
    }
    g_ptr_array_free(nts, TRUE);
    return rc;
}

static int subscribe(rs_app *a, rs_thread *th, char *errstr, size_t errlen) {
    const rs_graph *g = a->topo->g;
    int n = 0;
    for (guint i = 0; i < g->nodes->len; i++) {
        rs_node *nd = g_ptr_array_index(g->nodes, i);
        if (nd->kind == RS_N_SOURCE) n += (int)nd->ntopics;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    for (guint i = 0; i < g->nodes->len; i++) {
        rs_node *nd = g_ptr_array_index(g->nodes, i);
        if (nd->kind != RS_N_SOURCE) continue;
        for (size_t k = 0; k < nd->ntopics; k++) {
            char *name = rs__full_topic(a->app_id, nd, k);
            /* librdkafka treats a name starting with ^ as a regex */
            char *sub = nd->is_pattern && name[0] != '^' ? g_strdup_printf("^%s", name) : g_strdup(name);
            rd_kafka_topic_partition_list_add(l, sub, RD_KAFKA_PARTITION_UA);
            g_free(sub);
            g_free(name);
        }
    }
    rd_kafka_resp_err_t e = rd_kafka_subscribe(th->consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) snprintf(errstr, errlen, "subscribe: %s", rd_kafka_err2str(e));
    return e ? -1 : 0;
}

/* the user set name for client kind ("consumer" / "producer"), plainly or
 * with the kind's prefix */
static bool user_set(rs_app *a, const char *kind, const char *name) {
    char *pn = g_strdup_printf("%s.%s", kind, name);
    bool set = rs_config_get(a->cfg, name) || rs_config_get(a->cfg, pn);
    g_free(pn);
    return set;
}

/* a thread's producer; under exactly-once transactional (R5), its
 * transactions initialized (which fences an older producer of the same id
 * and aborts what it left open) */
static rd_kafka_t *new_producer(rs_app *a, rs_thread *th, char *errstr, size_t errlen) {
    rd_kafka_conf_t *pc = client_conf(a, "producer", errstr, errlen);
    if (!pc || conf_set(pc, "partitioner", "murmur2_random", errstr, errlen) ||
        conf_set(pc, "acks", "all", errstr, errlen) ||
        (a->eos && (conf_set(pc, "transactional.id", th->txn_id, errstr, errlen) ||
                    /* Kafka Streams' exactly-once default: a dead instance's
                     * open transaction blocks read_committed readers this long */
                    (!user_set(a, "producer", "transaction.timeout.ms") &&
                     conf_set(pc, "transaction.timeout.ms", "10000", errstr, errlen))))) {
        if (pc) rd_kafka_conf_destroy(pc);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(pc, dr_cb);
    rd_kafka_conf_set_opaque(pc, th);
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, pc, errstr, errlen);
    if (!p || !a->eos) return p;
    rd_kafka_error_t *e = rd_kafka_init_transactions(p, 60000);
    if (e) {
        snprintf(errstr, errlen, "init_transactions %s: %s", th->txn_id, rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        rd_kafka_destroy(p);
        return NULL;
    }
    return p;
}

int rs_app_start(rs_app *a, char *errstr, size_t errlen) {
    char e[512] = "";
    if (g_mkdir_with_parents(a->state_dir, 0755)) {
        snprintf(errstr, errlen, "state.dir %s: %s", a->state_dir, strerror(errno));
        return -1;
    }
    for (int i = 0; i < a->nthreads; i++) {
        rs_thread *th = &a->threads[i];
        th->app = a;
        th->idx = i;
        th->cache.max = (size_t)rs__config_int(a->cfg, "cache.max.bytes.buffering", 10 * 1024 * 1024) /
                        (size_t)a->nthreads;
        th->tasks = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, task_free_cb);
        th->offsets = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        th->nparts = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        if (a->eos) th->txn_id = g_strdup_printf("%s-%s-%d", a->app_id, a->process_id, i);
        if (!(th->producer = new_producer(a, th, e, sizeof(e)))) goto fail;
        if (i == 0 && (plan_topics(a, th->producer, e, sizeof(e)) || create_topics(a, th->producer, e, sizeof(e))))
            goto fail;
        rd_kafka_conf_t *cc = client_conf(a, "consumer", e, sizeof(e));
        if (!cc || conf_set(cc, "group.id", a->app_id, e, sizeof(e)) ||
            (!rs_config_get(a->cfg, "consumer.partition.assignment.strategy") &&
             !rs_config_get(a->cfg, "partition.assignment.strategy") &&
             conf_set(cc, "partition.assignment.strategy", a->copartitioned ? "range" : "cooperative-sticky", e,
                      sizeof(e))) ||
            conf_set(cc, "enable.auto.commit", "false", e, sizeof(e)) ||
            conf_set(cc, "auto.offset.reset", "earliest", e, sizeof(e)) ||
            /* R6; at-least-once reads uncommitted, as Kafka Streams does */
            ((a->eos || !user_set(a, "consumer", "isolation.level")) &&
             conf_set(cc, "isolation.level", a->eos ? "read_committed" : "read_uncommitted", e, sizeof(e)))) {
            if (cc) rd_kafka_conf_destroy(cc);
            goto fail;
        }
        rd_kafka_conf_t *rc = rd_kafka_conf_dup(cc);
        /* a restore ends at the end the restorer sees (R6) */
        if (conf_set(rc, "enable.partition.eof", "true", e, sizeof(e))) {
            rd_kafka_conf_destroy(rc);
            rd_kafka_conf_destroy(cc);
            goto fail;
        }
        rd_kafka_conf_set_rebalance_cb(cc, rebalance_cb);
        rd_kafka_conf_set_opaque(cc, th);
        if (!(th->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cc, e, sizeof(e)))) {
            rd_kafka_conf_destroy(rc);
            goto fail;
        }
        rd_kafka_poll_set_consumer(th->consumer);
        /* the restore consumer never joins the group: assign() only */
        char *rgid = g_strdup_printf("%s-restore", a->app_id);
        conf_set(rc, "group.id", rgid, e, sizeof(e));
        g_free(rgid);
        if (!(th->restorer = rd_kafka_new(RD_KAFKA_CONSUMER, rc, e, sizeof(e)))) goto fail;
        if (subscribe(a, th, e, sizeof(e))) goto fail;
    }
    for (int i = 0; i < a->nthreads; i++) {
        if (pthread_create(&a->threads[i].th, NULL, thread_main, &a->threads[i])) {
            snprintf(e, sizeof(e), "pthread_create failed");
            atomic_store(&a->stop, true);
            goto fail;
        }
        a->threads[i].started = true;
    }
    return 0;
fail:
    if (errstr && errlen) snprintf(errstr, errlen, "%s", e);
    return -1;
}

void rs_app_close(rs_app *a) {
    if (!a) return;
    atomic_store(&a->stop, true);
    for (int i = 0; i < a->nthreads; i++)
        if (a->threads[i].started) {
            pthread_join(a->threads[i].th, NULL);
            a->threads[i].started = false;
        }
}

void rs_app_free(rs_app *a) {
    if (!a) return;
    rs_app_close(a);
    for (int i = 0; i < a->nthreads; i++) {
        rs_thread *th = &a->threads[i];
        if (th->consumer) rd_kafka_destroy(th->consumer);
        if (th->restorer) {
            rd_kafka_consumer_close(th->restorer);
            rd_kafka_destroy(th->restorer);
        }
        /* the producer goes before the tasks: the delivery reports it still
         * serves name their stores; a clean close left none, and for a
         * failed app they no longer matter */
        if (th->producer) {
            th->drop_reports = true;
            if (th->in_txn) { /* a failed app: what it left open is not committed */
                rd_kafka_error_t *e = rd_kafka_abort_transaction(th->producer, 10000);
                if (e) rd_kafka_error_destroy(e);
            }
            rd_kafka_flush(th->producer, 10000);
            rd_kafka_destroy(th->producer);
        }
        if (th->tasks) {
            GHashTableIter it;
            gpointer k, v;
            g_hash_table_iter_init(&it, th->tasks);
            while (g_hash_table_iter_next(&it, &k, &v)) {
                rs_task *t = v;
                add_task_metrics(a, t);
            }
            g_hash_table_destroy(th->tasks);
        }
        if (th->offsets) g_hash_table_destroy(th->offsets);
        if (th->nparts) g_hash_table_destroy(th->nparts);
        g_free(th->txn_id);
    }
    free(a->threads);
    free(a->st_partitions);
    g_hash_table_destroy(a->task_names);
    pthread_mutex_destroy(&a->mu);
    rs_config_free(a->cfg);
    g_free(a->app_id);
    g_free(a->process_id);
    g_free(a->state_dir);
    free(a);
}

bool rs_app_running(const rs_app *a, char *errstr, size_t errlen) {
    if (atomic_load(&a->failed)) {
        if (errstr && errlen) {
            pthread_mutex_lock((pthread_mutex_t *)&a->mu);
            snprintf(errstr, errlen, "%s", a->err);
            pthread_mutex_unlock((pthread_mutex_t *)&a->mu);
        }
        return false;
    }
    return true;
}

static gint cmp_str(gconstpointer x, gconstpointer y) { return strcmp(*(char *const *)x, *(char *const *)y); }

size_t rs_app_tasks(rs_app *a, char *buf, size_t len) {
    pthread_mutex_lock(&a->mu);
    GPtrArray *names = g_ptr_array_new();
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, a->task_names);
    while (g_hash_table_iter_next(&it, &k, &v)) g_ptr_array_add(names, k);
    g_ptr_array_sort(names, cmp_str);
    GString *s = g_string_new("");
    for (guint i = 0; i < names->len; i++) g_string_append_printf(s, "%s%s", i ? " " : "", (char *)names->pdata[i]);
    pthread_mutex_unlock(&a->mu);
    g_ptr_array_free(names, TRUE);
    size_t n = s->len;
    if (len) snprintf(buf, len, "%s", s->str);
    g_string_free(s, TRUE);
    return n;
}

int64_t rs_app_metric(rs_app *a, const char *name) {
    if (!strcmp(name, "commit-total")) return a->m_commits;
    if (!strcmp(name, "abort-total")) return a->m_aborts;
    if (!strcmp(name, "restored-records")) return a->m_restored;
    if (!strcmp(name, "process-total")) return a->m_process;
    if (!strcmp(name, "dropped-records")) return a->m_dropped;
    if (!strcmp(name, "skipped-records")) return a->m_skipped;
    return -1;
}
