/*
 * retention.c — moving the log start offset (DeleteRecords), retention by
 * time and size, and the cleaner thread that applies retention (S7, S8).
 *
 * A start move takes three steps, serialised per manager by m_del_mutex:
 *   1. under l_mutex: decide the new start (<= high watermark) and store it;
 *      reads below it now fail with OFFSET_OUT_OF_RANGE;
 *   2. write the checkpoints (write-then-fsync-then-rename): the new start
 *      is durable before anything is removed;
 *   3. under l_mutex: take the segments wholly below the start out of the
 *      array; then, without the lock, unlink their files and drop the array's
 *      reference (readers holding a reference keep their fds).
 * A crash after 2 leaves segments below a checkpointed start; the next open
 * restores the start and removes them. A crash before 2 leaves the old start
 * and every segment: nothing of the old state is lost.
 * If step 2 fails the start goes back (nothing was removed) and the caller
 * gets RB_KAFKA_STORAGE_ERROR.
 */
#include "storage/storage_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int st__log_drop_below_start(st_log_t *l) {
    st_seg_t *drop[64];
    int rc = 0;
    for (;;) {
        int nd = 0;
        pthread_mutex_lock(&l->l_mutex);
        while (nd < (int)RB_ARRAY_LEN(drop) && l->l_nsegs - nd > 1 && l->l_segs[nd + 1]->seg_base <= l->l_start)
            nd++;
        if (nd) {
            memcpy(drop, l->l_segs, (size_t)nd * sizeof(*drop));
            memmove(l->l_segs, l->l_segs + nd, (size_t)(l->l_nsegs - nd) * sizeof(*l->l_segs));
            l->l_nsegs -= nd;
            for (int i = 0; i < ST_RCACHE; i++)
                if (l->l_rcache[i].rc_seg_base < l->l_segs[0]->seg_base) l->l_rcache[i].rc_off = -1;
        }
        pthread_mutex_unlock(&l->l_mutex);
        if (!nd) break;
        for (int i = 0; i < nd; i++) {
            int r = st__seg_unlink(l->l_dir, drop[i]->seg_base);
            if (r < 0 && r != -ENOENT) {
                rb_warn("storage: %s: removing segment %" PRId64 ": %s (removed at next open)", l->l_dir,
                        drop[i]->seg_base, strerror(-r));
                if (!rc) rc = r;
            } else {
                rb_info("storage: %s: deleted segment %" PRId64 " (log start offset %" PRId64 ")", l->l_dir,
                        drop[i]->seg_base, __atomic_load_n(&l->l_start, __ATOMIC_ACQUIRE));
            }
            st__seg_unref(drop[i]);
        }
    }
    /* removals need not be durable: a segment that comes back is wholly
     * below the checkpointed start and is removed again at open */
    return rc;
}

/* Steps 2 and 3 after the start moved from old_start (under m_del_mutex). */
static int start_commit(st_log_t *l, int64_t old_start) {
    atomic_fetch_add(&l->l_mgr->m_ckpt_gen, 1);
    if (st__ckpt_write(l->l_mgr) < 0) {
        pthread_mutex_lock(&l->l_mutex);
        __atomic_store_n(&l->l_start, old_start, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&l->l_mutex);
        return RB_KAFKA_STORAGE_ERROR;
    }
    st__log_drop_below_start(l);
    return 0;
}

int st_log_delete_records(st_log_t *l, int64_t before, int64_t *low_watermark) {
    st_mgr_t *m = l->l_mgr;
    if (before < -1) return RB_OFFSET_OUT_OF_RANGE;
    pthread_mutex_lock(&m->m_del_mutex);
    pthread_mutex_lock(&l->l_mutex);
    if (l->l_fatal || l->l_closing) {
        pthread_mutex_unlock(&l->l_mutex);
        pthread_mutex_unlock(&m->m_del_mutex);
        return RB_KAFKA_STORAGE_ERROR;
    }
    if (before == -1) before = l->l_hw;
    if (before > l->l_hw) {
        pthread_mutex_unlock(&l->l_mutex);
        pthread_mutex_unlock(&m->m_del_mutex);
        return RB_OFFSET_OUT_OF_RANGE;
    }
    int64_t old = l->l_start;
    if (before <= old) {
        *low_watermark = old;
        pthread_mutex_unlock(&l->l_mutex);
        pthread_mutex_unlock(&m->m_del_mutex);
        return 0;
    }
    __atomic_store_n(&l->l_start, before, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&l->l_mutex);
    int rc = start_commit(l, old);
    pthread_mutex_unlock(&m->m_del_mutex);
    if (rc == 0) {
        *low_watermark = before;
        rb_info("storage: %s: log start offset %" PRId64 " -> %" PRId64 " (DeleteRecords)", l->l_dir, old, before);
    }
    return rc;
}

/* Largest timestamp of a sealed segment for time retention: its max batch
 * timestamp, or (no timestamps) the file's modification time, as Kafka. */
static int64_t seg_largest_ts(const st_seg_t *s) {
    if (s->seg_max_ts != ST_NO_TS) return s->seg_max_ts;
    struct stat st;
    if (fstat(s->seg_fd, &st) < 0) return INT64_MAX;
    return (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
}

int st_log_retention_run(st_log_t *l, int64_t now_ms) {
    st_mgr_t *m = l->l_mgr;
    pthread_mutex_lock(&m->m_del_mutex);
    pthread_mutex_lock(&l->l_mutex);
    if (l->l_fatal || l->l_closing) {
        pthread_mutex_unlock(&l->l_mutex);
        pthread_mutex_unlock(&m->m_del_mutex);
        return 0;
    }
    const st_log_config_t *c = &l->l_cfg;
    int64_t total = 0;
    for (int i = 0; i < l->l_nsegs; i++) total += l->l_segs[i]->seg_size;
    int k = 0; /* segments [0, k) go */
    const char *why = "log start offset";
    while (k < l->l_nsegs - 1) {
        st_seg_t *s = l->l_segs[k];
        int64_t next_base = l->l_segs[k + 1]->seg_base;
        if (next_base > l->l_hw) break; /* S8: never past the high watermark */
        bool go = next_base <= l->l_start;
        if (!go && c->retention_ms >= 0 && now_ms - seg_largest_ts(s) > c->retention_ms) go = true, why = "retention.ms";
        if (!go && c->retention_bytes >= 0 && total - s->seg_size >= c->retention_bytes)
            go = true, why = "retention.bytes";
        if (!go) break;
        total -= s->seg_size;
        k++;
    }
    int64_t old = l->l_start;
    int64_t ns = k ? l->l_segs[k]->seg_base : old;
    if (ns <= old) {
        pthread_mutex_unlock(&l->l_mutex);
        int rc = k ? st__log_drop_below_start(l) : 0;
        pthread_mutex_unlock(&m->m_del_mutex);
        return rc < 0 ? RB_KAFKA_STORAGE_ERROR : k;
    }
    __atomic_store_n(&l->l_start, ns, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&l->l_mutex);
    int rc = start_commit(l, old);
    pthread_mutex_unlock(&m->m_del_mutex);
    if (rc) return rc;
    rb_info("storage: %s: %s: %d segment(s) deleted, log start offset %" PRId64 " -> %" PRId64, l->l_dir, why, k, old,
            ns);
    return k;
}

void st_mgr_set_retention_check_ms(st_mgr_t *m, int64_t ms) {
    pthread_mutex_lock(&m->m_cl_mutex);
    m->m_cl_interval_ms = ms < 1 ? 1 : ms;
    pthread_cond_signal(&m->m_cl_cond);
    pthread_mutex_unlock(&m->m_cl_mutex);
}

/* Calls fn on every open log, each marked l_cleaning (m_mutex) meanwhile so
 * that close/delete wait for it (log_detach), as they wait for the flusher;
 * stops early when the cleaner thread is asked to stop. */
void st__for_each_log(st_mgr_t *m, void (*fn)(st_log_t *l, int64_t now_ms)) {
    /* snapshot the list, marking every log */
    pthread_mutex_lock(&m->m_mutex);
    int n = 0;
    for (st_log_t *o = m->m_logs; o; o = o->l_next) n++;
    st_log_t **v = n ? malloc((size_t)n * sizeof(*v)) : NULL;
    if (n && !v) abort();
    n = 0;
    for (st_log_t *o = m->m_logs; o; o = o->l_next) {
        o->l_cleaning = true;
        v[n++] = o;
    }
    pthread_mutex_unlock(&m->m_mutex);
    for (int i = 0; i < n; i++) {
        fn(v[i], rb_now_ms());
        pthread_mutex_lock(&m->m_mutex);
        v[i]->l_cleaning = false; /* released one by one: a close waits for its own log only */
        pthread_cond_broadcast(&m->m_idle);
        pthread_mutex_unlock(&m->m_mutex);
        pthread_mutex_lock(&m->m_cl_mutex);
        bool stop = m->m_cl_stop;
        pthread_mutex_unlock(&m->m_cl_mutex);
        if (stop) {
            pthread_mutex_lock(&m->m_mutex);
            for (int j = i + 1; j < n; j++) v[j]->l_cleaning = false;
            pthread_cond_broadcast(&m->m_idle);
            pthread_mutex_unlock(&m->m_mutex);
            break;
        }
    }
    free(v);
}

static void retention_one(st_log_t *l, int64_t now_ms) { st_log_retention_run(l, now_ms); }

void *st__cleaner_main(void *arg) {
    st_mgr_t *m = arg;
    pthread_mutex_lock(&m->m_cl_mutex);
    int64_t next = rb_mono_ms() + m->m_cl_interval_ms;
    int64_t interval = m->m_cl_interval_ms;
    int64_t cc_next = rb_mono_ms() + m->m_cc_backoff_ms, cc_backoff = m->m_cc_backoff_ms;
    while (!m->m_cl_stop) {
        if (m->m_cl_interval_ms != interval) { /* changed: restart the period */
            interval = m->m_cl_interval_ms;
            next = rb_mono_ms() + interval;
        }
        if (m->m_cc_backoff_ms != cc_backoff) {
            cc_backoff = m->m_cc_backoff_ms;
            cc_next = rb_mono_ms() + cc_backoff;
        }
        int64_t now = rb_mono_ms();
        bool ret_due = now >= next, cc_due = m->m_cc_enable && now >= cc_next;
        if (!ret_due && !cc_due) {
            int64_t wake = m->m_cc_enable ? RB_MIN(next, cc_next) : next;
            struct timespec ts = {(time_t)(wake / 1000), (long)(wake % 1000) * 1000000};
            pthread_cond_timedwait(&m->m_cl_cond, &m->m_cl_mutex, &ts);
            continue;
        }
        pthread_mutex_unlock(&m->m_cl_mutex);
        if (ret_due) st__for_each_log(m, retention_one);
        if (cc_due) st__for_each_log(m, st__compact_one);
        pthread_mutex_lock(&m->m_cl_mutex);
        if (ret_due) next = rb_mono_ms() + m->m_cl_interval_ms;
        if (cc_due) cc_next = rb_mono_ms() + m->m_cc_backoff_ms;
    }
    pthread_mutex_unlock(&m->m_cl_mutex);
    return NULL;
}
