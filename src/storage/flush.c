/*
 * flush.c — the flusher thread: group-commit fdatasync, the high watermark,
 * sync waiters, and the periodic recovery checkpoint.
 *
 * An append puts its log on the manager's dirty queue (once). The flusher
 * takes the whole queue, and for each log in three steps:
 *   prepare  (under l_mutex)  snapshot the log end offset, the active
 *            segment's size, the segments with unsynced bytes or unsynced
 *            sealed indexes, and whether a dir entry is new; take refs.
 *   sync     (no lock)        fdatasync those files; fsync the partition dir
 *            (and the log dir for a new partition) when entries were created
 *            (S4). A failure makes the log fatal (S3): no retry.
 *   publish  (under l_mutex)  high watermark := the snapshot's end offset
 *            (S2), then outside the lock call the waiters it satisfies and
 *            the durable callback.
 * Appends that arrive during a round re-queue the log for the next round, so
 * one fdatasync covers everything appended before it started: group commit.
 * The flusher never waits on purpose, so flush.ms / flush.messages (upper
 * bounds on how long / how many records stay unsynced) hold whenever the disk
 * keeps up; they need no timer of their own.
 *
 * syncfs: when at least m_syncfs_min logs are dirty in one round, one
 * syncfs() on the log dir's filesystem replaces the per-file fdatasyncs
 * (measured on ext4/virtio: 64 dirty files, 12.2 ms of fdatasyncs vs 1.0 ms
 * for one syncfs; break-even is ~2 files). Linux >= 5.8 reports writeback
 * errors from syncfs; on an error we fall back to per-file fdatasync, which
 * still reports each file's own error (errseq), so only the logs whose data
 * was lost become fatal. Older kernels never use syncfs.
 *
 * Checkpoint (S5): every ST_CKPT_INTERVAL_MS when something changed, and on
 * close, the durable offsets of open logs plus the remembered ones of logs
 * not open now are written with write-then-fsync-then-rename.
 */
#include "storage/storage_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    st_seg_t *js_seg;
    int64_t js_upto;   /* .log bytes to be durable */
    bool js_data;      /* fdatasync the .log */
    bool js_idx;       /* sealed: fdatasync .index/.timeindex too */
    uint32_t js_xupto; /* .txnindex entries to be durable (S22) */
} st_jseg_t;

typedef struct {
    st_log_t *j_log;
    st_jseg_t *j_segs;
    int j_n, j_cap;
    int64_t j_leo, j_hw_seg_base, j_hw_pos, j_max_ts, j_max_ts_off;
    uint64_t j_dirsync_gen;
    bool j_dirsync, j_parent;
    bool j_work;       /* something to sync or publish */
    int j_err;         /* -errno */
} st_job_t;

/* Thread note: appender threads (and st_log_open), under l_mutex; takes m_mutex. */
void st__mgr_enqueue(st_mgr_t *m, st_log_t *l) {
    pthread_mutex_lock(&m->m_mutex);
    if (!l->l_in_queue) {
        l->l_in_queue = true;
        l->l_qnext = NULL;
        if (m->m_qtail) m->m_qtail->l_qnext = l; else m->m_qhead = l;
        m->m_qtail = l;
        pthread_cond_signal(&m->m_cond);
    }
    pthread_mutex_unlock(&m->m_mutex);
}

static void job_add(st_job_t *j, st_seg_t *s, bool data, bool idx) {
    if (j->j_n == j->j_cap) {
        j->j_cap = j->j_cap ? j->j_cap * 2 : 4;
        j->j_segs = realloc(j->j_segs, (size_t)j->j_cap * sizeof(*j->j_segs));
        if (!j->j_segs) abort();
    }
    st__seg_ref(s);
    st_jseg_t *js = &j->j_segs[j->j_n++];
    js->js_seg = s;
    js->js_upto = s->seg_size;
    js->js_data = data;
    js->js_idx = idx;
    js->js_xupto = s->seg_xn;
}

static void job_prepare(st_job_t *j, st_log_t *l) {
    j->j_log = l;
    j->j_n = 0;
    j->j_err = 0;
    j->j_work = false;
    pthread_mutex_lock(&l->l_mutex);
    if (!l->l_closing) l->l_queued = false;
    if (l->l_fatal) goto out;
    for (int i = l->l_nsegs - 1; i >= 0; i--) {
        st_seg_t *s = l->l_segs[i];
        bool data = s->seg_synced < s->seg_size;
        bool idx = s->seg_sealed && !s->seg_sealed_synced;
        if (data || idx || s->seg_xsynced < s->seg_xn) job_add(j, s, data, idx);
        else if (s->seg_sealed) break; /* everything older is synced */
    }
    st_seg_t *a = l->l_segs[l->l_nsegs - 1];
    j->j_leo = l->l_leo;
    j->j_hw_seg_base = a->seg_base;
    j->j_hw_pos = a->seg_size;
    j->j_max_ts = l->l_max_ts;
    j->j_max_ts_off = l->l_max_ts_off;
    j->j_dirsync_gen = l->l_dirsync_gen;
    j->j_dirsync = l->l_dirsync_done != l->l_dirsync_gen;
    j->j_parent = l->l_parent_sync;
    j->j_work = j->j_n > 0 || j->j_dirsync || j->j_parent || j->j_leo != l->l_hw;
out:
    pthread_mutex_unlock(&l->l_mutex);
}

static int sync_fd(st_mgr_t *m, int fd) {
    int e = rb_failpoint("st.fsync");
    if (e) return -e;
    __atomic_fetch_add(&m->m_stat_fdatasyncs, 1, __ATOMIC_RELAXED);
    return fdatasync(fd) < 0 ? -errno : 0;
}

/* Per-file durability of one job. */
static void job_sync(st_mgr_t *m, st_job_t *j) {
    int rc = 0;
    for (int i = 0; i < j->j_n && !rc; i++) {
        st_jseg_t *js = &j->j_segs[i];
        if (js->js_data) rc = sync_fd(m, js->js_seg->seg_fd);
        if (!rc && js->js_idx) rc = sync_fd(m, js->js_seg->seg_ofd);
        if (!rc && js->js_idx) rc = sync_fd(m, js->js_seg->seg_tfd);
        /* S22: an abort marker is durable only with its .txnindex entry */
        if (!rc && js->js_xupto > js->js_seg->seg_xsynced) rc = sync_fd(m, js->js_seg->seg_xfd);
    }
    if (!rc && (j->j_dirsync || j->j_parent)) rc = -rb_failpoint("st.fsync.dir");
    if (!rc && j->j_dirsync) rc = rb_fsync_dir(j->j_log->l_dir);
    if (!rc && j->j_parent) rc = rb_fsync_dir(m->m_dir);
    j->j_err = rc;
}

/* Makes the job's snapshot durable-visible; returns the new high watermark
 * when it advanced (else -1). Waiters are called outside the lock. */
static int64_t job_publish(st_mgr_t *m, st_job_t *j) {
    st_log_t *l = j->j_log;
    st_waiter_t *done = NULL, *failed = NULL;
    int64_t advanced = -1;
    pthread_mutex_lock(&l->l_mutex);
    if (j->j_err) {
        if (!l->l_fatal) {
            l->l_fatal = true;
            atomic_fetch_add(&m->m_fatal, 1);
            rb_error("storage: %s: fdatasync failed (%s): log is fatal, appends refused, high watermark stays at %" PRId64,
                     l->l_dir, strerror(-j->j_err), l->l_hw);
        }
        failed = l->l_waiters;
        l->l_waiters = NULL;
    } else if (!l->l_fatal) {
        for (int i = 0; i < j->j_n; i++) {
            st_jseg_t *js = &j->j_segs[i];
            if (js->js_upto > js->js_seg->seg_synced) js->js_seg->seg_synced = js->js_upto;
            if (js->js_idx) js->js_seg->seg_sealed_synced = true;
            if (js->js_xupto > js->js_seg->seg_xsynced) js->js_seg->seg_xsynced = js->js_xupto;
        }
        if (j->j_dirsync && j->j_dirsync_gen > l->l_dirsync_done) l->l_dirsync_done = j->j_dirsync_gen;
        if (j->j_parent) l->l_parent_sync = false;
        if (j->j_leo > l->l_hw) {
            __atomic_store_n(&l->l_hw, j->j_leo, __ATOMIC_RELEASE); /* read unlocked by the checkpoint */
            l->l_hw_seg_base = j->j_hw_seg_base;
            l->l_hw_pos = j->j_hw_pos;
            l->l_dmax_ts = j->j_max_ts;
            l->l_dmax_ts_off = j->j_max_ts_off;
            l->l_stat_syncs++;
            advanced = l->l_hw;
        }
        for (st_waiter_t **pp = &l->l_waiters; *pp;) {
            st_waiter_t *w = *pp;
            if (w->w_offset <= l->l_hw) {
                *pp = w->w_next;
                w->w_next = done;
                done = w;
            } else {
                pp = &w->w_next;
            }
        }
    }
    pthread_mutex_unlock(&l->l_mutex);
    for (int i = 0; i < j->j_n; i++) st__seg_unref(j->j_segs[i].js_seg);
    j->j_n = 0;
    st__waiters_call(failed, RB_KAFKA_STORAGE_ERROR);
    /* reverse to call in registration order */
    st_waiter_t *rev = NULL;
    while (done) {
        st_waiter_t *n = done->w_next;
        done->w_next = rev;
        rev = done;
        done = n;
    }
    st__waiters_call(rev, 0);
    if (advanced >= 0) atomic_fetch_add(&m->m_ckpt_gen, 1);
    return advanced;
}

/* Thread note: the thread closing l, after log_detach (the flusher no longer
 * sees l). */
int st__log_flush_now(st_log_t *l) {
    st_job_t j;
    memset(&j, 0, sizeof(j));
    job_prepare(&j, l);
    if (j.j_work) job_sync(l->l_mgr, &j);
    job_publish(l->l_mgr, &j);
    free(j.j_segs);
    return j.j_err;
}

/* ---- checkpoint ------------------------------------------------------------------ */

/* Thread note: flusher thread, st_mgr_checkpoint's caller, or st_mgr_close;
 * one at a time (m_ckpt_mutex). */
int st__ckpt_write(st_mgr_t *m) {
    pthread_mutex_lock(&m->m_ckpt_mutex);
    rb_buf_t body, all, sbody, cbody;
    rb_buf_init(&body);
    rb_buf_init(&all);
    rb_buf_init(&sbody);
    rb_buf_init(&cbody);
    int n = 0, ns = 0, nc = 0;
    uint64_t gen = atomic_load(&m->m_ckpt_gen);
    pthread_mutex_lock(&m->m_mutex);
    for (st_log_t *l = m->m_logs; l; l = l->l_next) {
        /* l_hw and l_start are only read here: a torn read is impossible for
         * an aligned int64 on our targets, and atomics keep the sanitizers honest */
        int64_t hw = __atomic_load_n(&l->l_hw, __ATOMIC_ACQUIRE);
        int64_t start = __atomic_load_n(&l->l_start, __ATOMIC_ACQUIRE);
        rb_buf_printf(&body, "%s %d %" PRId64 "\n", l->l_topic, (int)l->l_partition, hw);
        rb_buf_printf(&sbody, "%s %d %" PRId64 "\n", l->l_topic, (int)l->l_partition, start);
        int64_t clean = __atomic_load_n(&l->l_clean_off, __ATOMIC_ACQUIRE);
        if (clean >= 0) {
            rb_buf_printf(&cbody, "%s %d %" PRId64 "\n", l->l_topic, (int)l->l_partition, clean);
            nc++;
        }
        n++;
        ns++;
    }
    for (int i = 0; i < m->m_nckpt; i++) {
        st_ckpt_ent_t *e = &m->m_ckpt[i];
        if (e->ck_open) continue;
        if (e->ck_offset >= 0) {
            rb_buf_printf(&body, "%s %d %" PRId64 "\n", e->ck_topic, (int)e->ck_partition, e->ck_offset);
            n++;
        }
        if (e->ck_start >= 0) {
            rb_buf_printf(&sbody, "%s %d %" PRId64 "\n", e->ck_topic, (int)e->ck_partition, e->ck_start);
            ns++;
        }
        if (e->ck_clean >= 0) {
            rb_buf_printf(&cbody, "%s %d %" PRId64 "\n", e->ck_topic, (int)e->ck_partition, e->ck_clean);
            nc++;
        }
    }
    pthread_mutex_unlock(&m->m_mutex);
    rb_buf_printf(&all, "0\n%d\n", n);
    if (body.len) rb_buf_put(&all, body.p, body.len);
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", m->m_dir, ST_CKPT_FILE);
    int rc = rb_write_file_atomic(path, all.p, all.len);
    if (rc < 0) rb_error("storage: writing %s failed: %s", path, strerror(-rc));
    if (rc == 0) {
        all.len = 0;
        rb_buf_printf(&all, "0\n%d\n", ns);
        if (sbody.len) rb_buf_put(&all, sbody.p, sbody.len);
        snprintf(path, sizeof(path), "%s/%s", m->m_dir, ST_LSO_FILE);
        int e = rb_failpoint("st.lso_ckpt");
        rc = e ? -e : rb_write_file_atomic(path, all.p, all.len);
        if (rc < 0) rb_error("storage: writing %s failed: %s", path, strerror(-rc));
    }
    if (rc == 0) {
        all.len = 0;
        rb_buf_printf(&all, "0\n%d\n", nc);
        if (cbody.len) rb_buf_put(&all, cbody.p, cbody.len);
        snprintf(path, sizeof(path), "%s/%s", m->m_dir, ST_CLEAN_FILE);
        rc = rb_write_file_atomic(path, all.p, all.len);
        if (rc < 0) rb_error("storage: writing %s failed: %s", path, strerror(-rc));
    }
    if (rc == 0) m->m_ckpt_written = gen;
    rb_buf_free(&cbody);
    rb_buf_free(&body);
    rb_buf_free(&sbody);
    rb_buf_free(&all);
    pthread_mutex_unlock(&m->m_ckpt_mutex);
    return rc;
}

/* ---- the thread --------------------------------------------------------------------- */

static void deadline_ts(int64_t mono_ms, struct timespec *ts) {
    ts->tv_sec = mono_ms / 1000;
    ts->tv_nsec = (mono_ms % 1000) * 1000000;
}

void *st__flusher_main(void *arg) {
    st_mgr_t *m = arg;
    st_job_t *jobs = NULL;
    int jcap = 0;
    pthread_mutex_lock(&m->m_mutex);
    for (;;) {
        while (!m->m_stop && !m->m_qhead && rb_mono_ms() < m->m_ckpt_next_ms) {
            struct timespec ts;
            deadline_ts(m->m_ckpt_next_ms, &ts);
            pthread_cond_timedwait(&m->m_cond, &m->m_mutex, &ts);
        }
        if (m->m_stop) break;
        int nj = 0;
        while (m->m_qhead) {
            st_log_t *l = m->m_qhead;
            m->m_qhead = l->l_qnext;
            if (!m->m_qhead) m->m_qtail = NULL;
            l->l_in_queue = false;
            l->l_busy = true;
            if (nj == jcap) {
                int nc = jcap ? jcap * 2 : 64;
                st_job_t *nj2 = realloc(jobs, (size_t)nc * sizeof(*jobs));
                if (!nj2) abort();
                memset(nj2 + jcap, 0, (size_t)(nc - jcap) * sizeof(*jobs));
                jobs = nj2;
                jcap = nc;
            }
            jobs[nj++].j_log = l;
        }
        st_durable_cb cb = m->m_durable_cb;
        void *cb_ctx = m->m_durable_ctx;
        int syncfs_min = m->m_syncfs_min;
        pthread_mutex_unlock(&m->m_mutex);

        if (nj) {
            /* fault tests: "st.fsync.delay_ms=N" stalls every round by N ms,
             * like a disk whose syncs hang */
            int stall = rb_failpoint("st.fsync.delay_ms");
            if (stall > 0) usleep((useconds_t)stall * 1000);
            int nwork = 0;
            for (int i = 0; i < nj; i++) {
                job_prepare(&jobs[i], jobs[i].j_log);
                nwork += jobs[i].j_work;
            }
            m->m_stat_rounds++;
            bool fs_done = false;
            if (syncfs_min > 0 && nwork >= syncfs_min) {
                /* injected per-log failures still apply in this mode */
                for (int i = 0; i < nj; i++) {
                    int e = jobs[i].j_work ? rb_failpoint("st.fsync") : 0;
                    if (e) jobs[i].j_err = -e;
                }
                m->m_stat_syncfs++;
                if (syncfs(m->m_dirfd) == 0) {
                    fs_done = true;
                } else {
                    rb_warn("storage: syncfs on %s failed (%s); checking each log", m->m_dir, strerror(errno));
                }
            }
            if (!fs_done)
                for (int i = 0; i < nj; i++)
                    if (jobs[i].j_work && !jobs[i].j_err) job_sync(m, &jobs[i]);
            for (int i = 0; i < nj; i++) {
                int64_t hw = job_publish(m, &jobs[i]);
                if (hw >= 0 && cb) cb(cb_ctx, jobs[i].j_log, hw);
            }
        }

        pthread_mutex_lock(&m->m_mutex);
        for (int i = 0; i < nj; i++) jobs[i].j_log->l_busy = false;
        if (nj) pthread_cond_broadcast(&m->m_idle);
        if (rb_mono_ms() >= m->m_ckpt_next_ms) {
            m->m_ckpt_next_ms = rb_mono_ms() + ST_CKPT_INTERVAL_MS;
            pthread_mutex_unlock(&m->m_mutex);
            pthread_mutex_lock(&m->m_ckpt_mutex);
            bool changed = atomic_load(&m->m_ckpt_gen) != m->m_ckpt_written;
            pthread_mutex_unlock(&m->m_ckpt_mutex);
            if (changed) st__ckpt_write(m);
            pthread_mutex_lock(&m->m_mutex);
        }
    }
    pthread_mutex_unlock(&m->m_mutex);
    for (int i = 0; i < jcap; i++) free(jobs[i].j_segs);
    free(jobs);
    return NULL;
}
