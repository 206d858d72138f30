/*
 * log.c — a partition log: open (load, or recover after an unclean stop),
 * append, roll, sync waiters, state, close and delete.
 *
 * Loading (S6). Segments are found by listing `<dir>/<topic>-<p>/`. With the
 * clean-shutdown marker present every segment is trusted; its indexes get a
 * sanity check (every entry for the two newest segments, first and last entry
 * for older ones: size a multiple of the entry size, entries increasing and
 * inside the segment) and are rebuilt when it fails; the log end offset and
 * the active segment's max timestamp come from a short scan from the last
 * index entry. Without the marker, every segment from the one holding the
 * recovery point onwards is fully validated (framing, CRC-32C, offsets
 * increasing and inside the segment's range), truncated at the first invalid
 * byte (later segments deleted), its indexes rebuilt, and what survived is
 * fdatasync'd before it counts as durable — after a process crash the page
 * cache may hold bytes that never reached the disk.
 *
 * Appends (S1). Offsets are assigned under l_mutex, the batches are rewritten
 * in the caller's buffer, and the whole call goes out with one pwrite at the
 * segment's end; a failure truncates back to the old length (a failed
 * truncate makes the log fatal). Index entries are added only after the write
 * succeeded. The flusher is told (dirty queue) and makes it durable.
 */
#include "storage/storage_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

void st_log_config_defaults(st_log_config_t *c) {
    c->segment_bytes = 1LL << 30;
    c->segment_ms = 7LL * 24 * 3600 * 1000;
    c->index_interval_bytes = 4096;
    c->segment_index_bytes = 10 * 1024 * 1024;
    c->flush_messages = INT64_MAX;
    c->flush_ms = INT64_MAX;
    c->log_append_time = false;
    c->retention_ms = 7LL * 24 * 3600 * 1000;
    c->retention_bytes = -1;
    c->compact = false;
    c->delete_retention_ms = 86400000;
    c->min_cleanable_dirty_ratio = 0.5;
    c->min_compaction_lag_ms = 0;
    c->max_compaction_lag_ms = INT64_MAX;
}

static void cfg_sanitize(st_log_config_t *c) {
    if (c->segment_bytes < KP_BATCH_HEADER_SIZE) c->segment_bytes = KP_BATCH_HEADER_SIZE;
    if (c->segment_bytes > INT32_MAX) c->segment_bytes = INT32_MAX;
    /* as Kafka: a compacted log rolls by max.compaction.lag.ms too, so no
     * record waits longer than that in the (never cleaned) active segment */
    if (c->compact && c->max_compaction_lag_ms > 0 && c->max_compaction_lag_ms < c->segment_ms)
        c->segment_ms = c->max_compaction_lag_ms;
    if (c->segment_ms < 1) c->segment_ms = 1;
    if (c->index_interval_bytes < 0) c->index_interval_bytes = 0;
    if (c->segment_index_bytes < ST_TIDX_ENTRY * 2) c->segment_index_bytes = ST_TIDX_ENTRY * 2;
}

static bool topic_valid(const char *t) {
    size_t n = strlen(t);
    if (n == 0 || n > 249 || !strcmp(t, ".") || !strcmp(t, "..")) return false;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return false;
    }
    return true;
}

static int segs_push(st_log_t *l, st_seg_t *s) {
    if (l->l_nsegs == l->l_segs_cap) {
        int cap = l->l_segs_cap ? l->l_segs_cap * 2 : 4;
        st_seg_t **n = realloc(l->l_segs, (size_t)cap * sizeof(*n));
        if (!n) return -ENOMEM;
        l->l_segs = n;
        l->l_segs_cap = cap;
    }
    l->l_segs[l->l_nsegs++] = s;
    return 0;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static bool has_suffix(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && !strcmp(s + n - k, suf);
}

/* "<20 digits><ext>" -> base offset, or -1. */
static int64_t parse_seg_name(const char *name, const char *ext) {
    size_t n = strlen(name), k = strlen(ext);
    if (n != 20 + k || strcmp(name + 20, ext)) return -1;
    int64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9') return -1;
        if (v > (INT64_MAX - 9) / 10) return -1;
        v = v * 10 + (name[i] - '0');
    }
    return v;
}

/* Lists segment bases; removes leftovers and index files without a .log. */
static int list_segments(const char *dir, int64_t **out, int *nout) {
    DIR *d = opendir(dir);
    if (!d) return -errno;
    int64_t *v = NULL;
    int n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *nm = de->d_name;
        if (nm[0] == '.') continue;
        if (has_suffix(nm, ".tmp") || has_suffix(nm, ".cleaned") || has_suffix(nm, ".deleted")) {
            char p[4096];
            snprintf(p, sizeof(p), "%s/%s", dir, nm);
            unlink(p);
            continue;
        }
        int64_t b = parse_seg_name(nm, ".log");
        if (b < 0) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            int64_t *nv = realloc(v, (size_t)cap * sizeof(*nv));
            if (!nv) { free(v); closedir(d); return -ENOMEM; }
            v = nv;
        }
        v[n++] = b;
    }
    rewinddir(d);
    if (n > 1) qsort(v, (size_t)n, sizeof(*v), cmp_i64);
    while ((de = readdir(d))) {
        int64_t b = parse_seg_name(de->d_name, ".index");
        if (b < 0) b = parse_seg_name(de->d_name, ".timeindex");
        if (b < 0) b = parse_seg_name(de->d_name, ST_XIDX_EXT);
        if (b < 0) continue;
        if (n == 0 || !bsearch(&b, v, (size_t)n, sizeof(*v), cmp_i64)) {
            char p[4096];
            snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
            unlink(p);
        }
    }
    closedir(d);
    *out = v;
    *nout = n;
    return 0;
}

static int fdatasync_seg_all(st_seg_t *s) {
    if (fdatasync(s->seg_fd) < 0 || fdatasync(s->seg_ofd) < 0 || fdatasync(s->seg_tfd) < 0) return -errno;
    return 0;
}

/* Reads the first batch's max timestamp (segment.ms time base after reopen). */
static int64_t seg_first_ts(st_seg_t *s) {
    uint8_t b[KP_BATCH_HEADER_SIZE];
    if (s->seg_size < KP_BATCH_HEADER_SIZE) return -1;
    if (pread(s->seg_fd, b, sizeof(b), 0) != (ssize_t)sizeof(b)) return -1;
    kp_batch_hdr_t h;
    if (st__hdr_decode(b, &h)) return -1;
    return h.max_timestamp;
}

/* Trusted segment i (clean marker, or below the recovery point): check the
 * indexes; for the last segment find its end. Returns 0, 1 if the segment
 * must be recovered instead (damaged), or -errno. */
static int load_trusted(st_log_t *l, int i) {
    st_seg_t *s = l->l_segs[i];
    bool last = i == l->l_nsegs - 1;
    int64_t next_base = last ? INT64_MAX : l->l_segs[i + 1]->seg_base;
    int rc = st__idx_check(s, i >= l->l_nsegs - 2, next_base);
    if (rc < 0) return rc;
    bool rebuilt = false;
    st_scan_t sc;
    if (rc == 1) {
        rb_warn("storage: %s: segment %" PRId64 ": index failed its sanity check, rebuilding", l->l_dir, s->seg_base);
        memset(&sc, 0, sizeof(sc));
        sc.min_off = s->seg_base;
        sc.next_base = next_base;
        sc.contiguous = last; /* a sealed segment may be compacted (gaps, S10) */
        sc.build_index = true;
        sc.interval = l->l_cfg.index_interval_bytes;
        rc = st__seg_scan(s, &sc);
        if (rc < 0) return rc;
        if (sc.invalid) return 1;
        if (last) st__idx_flush_tail(s); else st__idx_seal(s);
        if (fdatasync(s->seg_ofd) < 0 || fdatasync(s->seg_tfd) < 0) return -errno;
        s->seg_next_off = sc.nbatches ? sc.next_off : s->seg_base;
        rebuilt = true;
    }
    if (!last) {
        if (!rebuilt) {
            s->seg_max_ts = s->seg_tlast_ts;
            s->seg_max_ts_off = s->seg_tlast_ts == ST_NO_TS ? -1 : s->seg_base + s->seg_tlast_rel;
        }
        /* an inactive segment's last offset is only known by a scan; what
         * reads need is an upper bound */
        s->seg_next_off = next_base;
        st__idx_seal(s); /* no tails unless rebuilt (then already sealed) */
        s->seg_sealed_synced = true;
        return 0;
    }
    if (!rebuilt) {
        /* active segment: scan from the last index entry to the end */
        st_oent_t e = {0, 0};
        bool have = st__oidx_last(s, &e) == 0;
        memset(&sc, 0, sizeof(sc));
        sc.from_pos = have ? e.pos : 0;
        sc.min_off = s->seg_base + (have ? e.rel : 0);
        sc.next_base = INT64_MAX;
        sc.contiguous = true;
        rc = st__seg_scan(s, &sc);
        if (rc < 0) return rc;
        if (sc.invalid) return 1;
        if (have && (sc.nbatches == 0 || sc.first_off != sc.min_off)) return 1;
        s->seg_next_off = sc.nbatches ? sc.next_off : s->seg_base;
        s->seg_max_ts = s->seg_tlast_ts;
        s->seg_max_ts_off = s->seg_tlast_ts == ST_NO_TS ? -1 : s->seg_base + s->seg_tlast_rel;
        if (sc.max_ts > s->seg_max_ts) {
            s->seg_max_ts = sc.max_ts;
            s->seg_max_ts_off = sc.max_ts_off;
        }
        if ((int64_t)s->seg_tlast_rel + s->seg_base >= s->seg_next_off && s->seg_tn) return 1;
        s->seg_since_idx = s->seg_size - sc.from_pos;
        st__idx_tail_alloc(s);
    }
    return 0;
}

/* Unclean recovery of segments [k, n): validate, truncate, rebuild, sync. */
static int recover_from(st_log_t *l, int k, int64_t rp, bool rp_found) {
    int64_t min_off = l->l_segs[k]->seg_base;
    for (int i = k; i < l->l_nsegs; i++) {
        st_seg_t *s = l->l_segs[i];
        bool last = i == l->l_nsegs - 1;
        /* S10: compacted segments end at or below the recovery point, so a
         * gap is normal there (or everywhere when the point is unknown) */
        bool gaps = !rp_found || s->seg_base <= rp;
        if (i > k && s->seg_base != min_off && !(gaps && s->seg_base > min_off)) {
            /* a hole: the previous segment lost its tail; nothing after it
             * was ever durable (the high watermark cannot pass a hole) */
            rb_warn("storage: %s: segment %" PRId64 " does not follow offset %" PRId64 "; deleting %d segment(s)",
                    l->l_dir, s->seg_base, min_off, l->l_nsegs - i);
            for (int j = i; j < l->l_nsegs; j++) {
                st_seg_t *d = l->l_segs[j];
                int rc = st__seg_unlink(l->l_dir, d->seg_base);
                st__seg_unref(d);
                if (rc < 0) return rc;
            }
            l->l_nsegs = i;
            l->l_dirsync_gen++;
            break;
        }
        st_scan_t sc;
        memset(&sc, 0, sizeof(sc));
        sc.min_off = RB_MAX(min_off, s->seg_base);
        sc.next_base = last ? INT64_MAX : l->l_segs[i + 1]->seg_base;
        sc.verify_crc = true;
        sc.contiguous = !(!rp_found || sc.next_base <= rp);
        s->seg_xrebuild = true; /* its .txnindex too (S23) */
        sc.build_index = true;
        sc.interval = l->l_cfg.index_interval_bytes;
        int rc = st__seg_scan(s, &sc);
        if (rc < 0) return rc;
        if (sc.invalid) {
            rb_warn("storage: %s: segment %" PRId64 ": invalid data at position %" PRId64 " of %" PRId64
                    ", truncating; %d later segment(s) deleted",
                    l->l_dir, s->seg_base, sc.end_pos, s->seg_size, l->l_nsegs - 1 - i);
            if (ftruncate(s->seg_fd, sc.end_pos) < 0) return -errno;
            s->seg_size = sc.end_pos;
            for (int j = i + 1; j < l->l_nsegs; j++) {
                st_seg_t *d = l->l_segs[j];
                rc = st__seg_unlink(l->l_dir, d->seg_base);
                st__seg_unref(d);
                if (rc < 0) return rc;
            }
            l->l_nsegs = i + 1;
            l->l_dirsync_gen++;
            last = true;
        }
        if (last) st__idx_flush_tail(s); else st__idx_seal(s);
        s->seg_next_off = sc.nbatches ? sc.next_off : s->seg_base;
        min_off = s->seg_next_off;
        rc = fdatasync_seg_all(s);
        if (rc < 0) return rc;
        s->seg_synced = s->seg_size;
        if (!last) s->seg_sealed_synced = true;
        if (last) break;
    }
    if (l->l_dirsync_gen != l->l_dirsync_done) {
        int rc = rb_fsync_dir(l->l_dir);
        if (rc < 0) return rc;
        l->l_dirsync_done = l->l_dirsync_gen;
    }
    return 0;
}

static int log_load(st_log_t *l, bool clean, int64_t rp, bool rp_found) {
    int64_t *bases = NULL;
    int nb = 0;
    int rc = st__clean_recover(l->l_dir); /* S11: finish or discard a cleaner swap */
    if (rc < 0) return rc;
    rc = list_segments(l->l_dir, &bases, &nb);
    if (rc < 0) return rc;
    if (nb == 0) {
        st_seg_t *s;
        rc = st__seg_open(l->l_dir, 0, true, &s);
        if (rc < 0) goto out;
        if ((rc = segs_push(l, s)) < 0) { st__seg_unref(s); goto out; }
        st__idx_tail_alloc(s);
        l->l_dirsync_gen++;
        goto done;
    }
    for (int i = 0; i < nb; i++) {
        st_seg_t *s;
        rc = st__seg_open(l->l_dir, bases[i], false, &s);
        if (rc < 0) goto out;
        if ((rc = segs_push(l, s)) < 0) { st__seg_unref(s); goto out; }
    }
    int k = l->l_nsegs; /* first segment to recover */
    if (!clean) {
        k = 0;
        if (rp_found)
            for (int i = 0; i < l->l_nsegs; i++)
                if (l->l_segs[i]->seg_base <= rp) k = i;
    }
    for (int i = 0; i < k; i++) {
        rc = load_trusted(l, i);
        if (rc < 0) goto out;
        if (rc == 1) {
            rb_warn("storage: %s: segment %" PRId64 " is damaged although trusted; recovering from it", l->l_dir,
                    l->l_segs[i]->seg_base);
            k = i;
            break;
        }
    }
    if (k < l->l_nsegs) {
        if (clean) rb_warn("storage: %s: recovering after a damaged clean shutdown", l->l_dir);
        rc = recover_from(l, k, rp, rp_found);
        if (rc < 0) goto out;
    }
done: {
    st_seg_t *a = l->l_segs[l->l_nsegs - 1];
    a->seg_sealed = false;
    a->seg_sealed_synced = false;
    st__idx_tail_alloc(a);
    if (a->seg_size > 0) {
        int64_t now = rb_now_ms(), t = seg_first_ts(a);
        a->seg_roll_ms = t < 0 || t > now ? now : t;
    }
    l->l_start = l->l_segs[0]->seg_base;
    l->l_leo = a->seg_next_off;
    l->l_hw = l->l_leo;
    l->l_hw_seg_base = a->seg_base;
    l->l_hw_pos = a->seg_size;
    l->l_max_ts = ST_NO_TS;
    l->l_max_ts_off = -1;
    for (int i = 0; i < l->l_nsegs; i++) {
        st_seg_t *s = l->l_segs[i];
        s->seg_synced = s->seg_size;
        if (s->seg_max_ts > l->l_max_ts) {
            l->l_max_ts = s->seg_max_ts;
            l->l_max_ts_off = s->seg_max_ts_off;
        }
    }
    l->l_dmax_ts = l->l_max_ts;
    l->l_dmax_ts_off = l->l_max_ts_off;
    rc = 0;
}
out:
    free(bases);
    return rc;
}

static int log_open_locked(st_mgr_t *m, const char *topic, int32_t partition, const st_log_config_t *cfg,
                           st_log_t **out) {
    pthread_mutex_lock(&m->m_mutex);
    for (st_log_t *o = m->m_logs; o; o = o->l_next) {
        if (o->l_partition == partition && !strcmp(o->l_topic, topic)) {
            pthread_mutex_unlock(&m->m_mutex);
            return RB_ERR_EXISTS;
        }
    }
    pthread_mutex_unlock(&m->m_mutex);

    st_log_t *l = calloc(1, sizeof(*l));
    if (!l) return RB_ERR_NOMEM;
    l->l_mgr = m;
    l->l_topic = strdup(topic);
    l->l_partition = partition;
    l->l_cfg = *cfg;
    cfg_sanitize(&l->l_cfg);
    pthread_mutex_init(&l->l_mutex, NULL);
    for (int i = 0; i < ST_RCACHE; i++) l->l_rcache[i].rc_off = -1;
    size_t dl = strlen(m->m_dir) + strlen(topic) + 16;
    l->l_dir = malloc(dl);
    if (!l->l_topic || !l->l_dir) abort();
    snprintf(l->l_dir, dl, "%s/%s-%d", m->m_dir, topic, (int)partition);

    int rc;
    struct stat st;
    if (stat(l->l_dir, &st) < 0) {
        if (errno != ENOENT || mkdir(l->l_dir, 0755) < 0) {
            rc = -errno;
            goto fail;
        }
        l->l_parent_sync = true;
        l->l_dirsync_gen++;
    }
    bool found = false;
    int64_t rp = st__mgr_recovery_point(m, topic, partition, &found);
    rc = log_load(l, m->m_clean_start, rp, found);
    if (rc < 0) goto fail;
    /* S7: the checkpointed start, inside [first base, log end] */
    int64_t ck_start = st__mgr_log_start(m, topic, partition);
    if (ck_start > l->l_start) l->l_start = RB_MIN(ck_start, l->l_leo);
    l->l_clean_off = st__mgr_clean_off(m, topic, partition);
    if (l->l_clean_off > l->l_leo) l->l_clean_off = l->l_leo;
    rc = st__log_drop_below_start(l); /* a crash between checkpoint and unlink */
    if (rc < 0) goto fail;
    rc = st__xidx_load(l); /* aborted transactions from the .txnindex files (S22, S23) */
    if (rc < 0) goto fail;
    rc = st__pt_load(l); /* producer state and open transactions: snapshot + replay (S15, S23) */
    if (rc < 0) goto fail;
    rc = st__txn_load(l);
    if (rc < 0) goto fail;

    pthread_mutex_lock(&m->m_mutex);
    for (st_log_t *o = m->m_logs; o; o = o->l_next) {
        if (o->l_partition == partition && !strcmp(o->l_topic, topic)) {
            pthread_mutex_unlock(&m->m_mutex);
            st__log_free(l);
            return RB_ERR_EXISTS; /* cannot happen under m_open_mutex; kept as a guard */
        }
    }
    l->l_next = m->m_logs;
    m->m_logs = l;
    pthread_mutex_unlock(&m->m_mutex);
    st__mgr_mark_recovered(m, topic, partition);
    /* new files/dirs must reach the disk before anything is durable (S4) */
    if (l->l_dirsync_gen != l->l_dirsync_done || l->l_parent_sync) {
        pthread_mutex_lock(&l->l_mutex);
        if (!l->l_queued) {
            l->l_queued = true;
            st__mgr_enqueue(m, l);
        }
        pthread_mutex_unlock(&l->l_mutex);
    }
    rb_debug("storage: opened %s (segments %d, log end offset %" PRId64 ")", l->l_dir, l->l_nsegs, l->l_leo);
    *out = l;
    return 0;
fail:
    rb_error("storage: cannot open %s: %s", l->l_dir, rc < 0 ? strerror(-rc) : rb_err_name(rc));
    st__log_free(l);
    return RB_KAFKA_STORAGE_ERROR;
}

/* Thread note: any thread; opens, closes and deletes of one manager are
 * serialised (m_open_mutex), so the same dir is never loaded twice at once. */
int st_log_open(st_mgr_t *m, const char *topic, int32_t partition, const st_log_config_t *cfg, st_log_t **out) {
    if (!topic_valid(topic) || partition < 0) return RB_ERR_INVALID_ARG;
    pthread_mutex_lock(&m->m_open_mutex);
    int rc = log_open_locked(m, topic, partition, cfg, out);
    pthread_mutex_unlock(&m->m_open_mutex);
    return rc;
}

void st__log_free(st_log_t *l) {
    for (int i = 0; i < l->l_nsegs; i++) st__seg_unref(l->l_segs[i]);
    free(l->l_segs);
    st_pt_free(&l->l_prods);
    st__txn_free(l);
    st_waiter_t *w = l->l_waiters;
    while (w) {
        st_waiter_t *n = w->w_next;
        free(w);
        w = n;
    }
    pthread_mutex_destroy(&l->l_mutex);
    free(l->l_topic);
    free(l->l_dir);
    free(l);
}

void st__waiters_call(st_waiter_t *list, int err) {
    while (list) {
        st_waiter_t *n = list->w_next;
        list->w_cb(list->w_ctx, err);
        free(list);
        list = n;
    }
}

/* ---- append ----------------------------------------------------------------------- */

static int log_roll(st_log_t *l) {
    st_seg_t *old = l->l_segs[l->l_nsegs - 1];
    st_seg_t *ns;
    int rc = st__seg_open(l->l_dir, l->l_leo, true, &ns);
    if (rc < 0) {
        rb_error("storage: %s: cannot create segment %" PRId64 ": %s", l->l_dir, l->l_leo, strerror(-rc));
        return rc;
    }
    if ((rc = segs_push(l, ns)) < 0) {
        st__seg_unlink(l->l_dir, ns->seg_base);
        st__seg_unref(ns);
        return rc;
    }
    st__idx_tail_alloc(ns);
    old->seg_next_off = l->l_leo;
    st__idx_seal(old);
    l->l_dirsync_gen++;
    st__pt_snapshot(l, l->l_leo, rb_now_ms()); /* S15: state for everything below the new segment */
    rb_debug("storage: %s: rolled to segment %" PRId64, l->l_dir, ns->seg_base);
    return 0;
}

static bool log_need_roll(const st_log_t *l, const st_seg_t *s, size_t len, int nb, int64_t span, int64_t now_ms) {
    if (s->seg_size == 0) return false;
    const st_log_config_t *c = &l->l_cfg;
    if (s->seg_size + (int64_t)len > c->segment_bytes) return true;
    if (s->seg_size + (int64_t)len > INT32_MAX) return true;
    if (s->seg_roll_ms >= 0 && now_ms - s->seg_roll_ms >= c->segment_ms) return true;
    int64_t max_o = RB_MAX(1, c->segment_index_bytes / ST_OIDX_ENTRY);
    int64_t max_t = RB_MAX(1, c->segment_index_bytes / ST_TIDX_ENTRY);
    if ((int64_t)s->seg_on + s->seg_otail_n + nb > max_o) return true;
    if ((int64_t)s->seg_tn + s->seg_ttail_n + nb + 1 > max_t) return true;
    if (l->l_leo + span - 1 - s->seg_base > INT32_MAX) return true;
    return false;
}

/* One pwrite of the whole call (looping only on short writes). */
static int write_all(int fd, const uint8_t *p, size_t n, int64_t at) {
    while (n) {
        ssize_t w = pwrite(fd, p, n, at);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (w == 0) return -EIO;
        p += w;
        n -= (size_t)w;
        at += w;
    }
    return 0;
}

/* Thread note: any thread; appends to one log serialise on l_mutex (held for
 * the pwrite, never for an fsync); wakes the flusher through m_mutex. */
int st_log_append(st_log_t *l, uint8_t *records, size_t len, const kp_batch_info_t *info, int64_t now_ms,
                  int64_t *base_offset, int64_t *last_offset, int64_t *log_append_time) {
    (void)info;
    /* frame the blob (kp_batch_validate accepted it; this is a cheap re-check) */
    int nb = 0;
    int64_t span = 0, max_batch = 0;
    kp_batch_hdr_t first;
    bool any_pid = false;
    for (size_t p = 0; p < len;) {
        kp_batch_hdr_t h;
        if (kp_batch_hdr_parse(records + p, len - p, &h) != 0 || h.magic != 2 || h.last_offset_delta < 0)
            return RB_CORRUPT_MESSAGE;
        if (nb == 0) first = h;
        if (h.producer_id >= 0) any_pid = true;
        int64_t sz = st__hdr_size(&h);
        span += (int64_t)h.last_offset_delta + 1;
        max_batch = RB_MAX(max_batch, sz);
        p += (size_t)sz;
        nb++;
    }
    if (nb == 0) return RB_CORRUPT_MESSAGE;
    /* a transaction marker (S17): one control batch, no sequence */
    bool marker = any_pid && nb == 1 && (first.attributes & KP_ATTR_CONTROL);
    if (any_pid && (nb != 1 || (first.base_sequence < 0 && !marker))) return RB_INVALID_RECORD;
    int32_t last_seq = any_pid && !marker ? st_seq_add(first.base_sequence, first.last_offset_delta) : -1;

    pthread_mutex_lock(&l->l_mutex);
    int rc = RB_KAFKA_STORAGE_ERROR;
    if (l->l_fatal || l->l_closing) goto out;
    if (max_batch > l->l_cfg.segment_bytes || len > INT32_MAX) {
        rc = RB_RECORD_LIST_TOO_LARGE;
        goto out;
    }
    st__pt_maybe_expire(l, now_ms); /* S16 */
    if (marker) {
        const st_prod_t *pp = st_pt_find(&l->l_prods, first.producer_id);
        if (pp && first.producer_epoch < pp->p_epoch) {
            rc = RB_INVALID_PRODUCER_EPOCH;
            goto out;
        }
    } else if (any_pid) { /* S13: check and write in one l_mutex section */
        int64_t df = -1, dl = -1;
        rc = st_pt_check(&l->l_prods, first.producer_id, first.producer_epoch, first.base_sequence, last_seq, &df,
                         &dl);
        if (rc == RB_DUPLICATE_SEQUENCE_NUMBER) {
            *base_offset = df;
            *last_offset = dl;
            *log_append_time = -1;
        }
        if (rc) goto out;
        rc = RB_KAFKA_STORAGE_ERROR;
    }
    st_seg_t *s = l->l_segs[l->l_nsegs - 1];
    if (log_need_roll(l, s, len, nb, span, now_ms)) {
        if (log_roll(l) < 0) goto out;
        s = l->l_segs[l->l_nsegs - 1];
    }
    /* assign offsets in place; LogAppendTime: type bit + max timestamp, new CRC
     * (the base timestamp stays, as Kafka's in-place path leaves it) */
    int64_t next = l->l_leo;
    for (size_t p = 0; p < len;) {
        uint8_t *b = records + p;
        int64_t sz = (int64_t)rb_be32(b + 8) + KP_BATCH_LOG_OVERHEAD;
        rb_wbe64(b, (uint64_t)next);
        if (l->l_cfg.log_append_time) {
            uint16_t attrs = rb_be16(b + 21) | KP_ATTR_TIMESTAMP_TYPE;
            rb_wbe16(b + 21, attrs);
            rb_wbe64(b + 35, (uint64_t)now_ms);
            rb_wbe32(b + 17, rb_crc32c(0, b + 21, (size_t)sz - 21));
        }
        next += (int64_t)(int32_t)rb_be32(b + 23) + 1;
        p += (size_t)sz;
    }
    int64_t at = s->seg_size;
    int fp = rb_failpoint("st.append.write");
    int wrc;
    if (fp) {
        /* injected: model a write that got half way before the disk filled */
        wrc = write_all(s->seg_fd, records, len / 2, at);
        if (wrc == 0) wrc = -fp;
    } else {
        wrc = write_all(s->seg_fd, records, len, at);
    }
    if (wrc < 0) {
        rb_error("storage: %s: append of %zu bytes failed: %s", l->l_dir, len, strerror(-wrc));
        if (ftruncate(s->seg_fd, at) < 0) {
            rb_error("storage: %s: truncate back to %" PRId64 " failed (%s): log is fatal", l->l_dir, at,
                     strerror(errno));
            if (!l->l_fatal) {
                l->l_fatal = true;
                atomic_fetch_add(&l->l_mgr->m_fatal, 1);
            }
        }
        goto out;
    }
    /* committed: indexes, counters, then tell the flusher */
    for (size_t p = 0; p < len;) {
        kp_batch_hdr_t h;
        st__hdr_decode(records + p, &h);
        st__idx_on_batch(s, at + (int64_t)p, &h, l->l_cfg.index_interval_bytes);
        if (h.attributes & KP_ATTR_TRANSACTIONAL) st__txn_on_batch(l, records + p, &h); /* S17 */
        if (h.max_timestamp > l->l_max_ts) {
            l->l_max_ts = h.max_timestamp;
            l->l_max_ts_off = h.base_offset;
        }
        p += (size_t)st__hdr_size(&h);
    }
    s->seg_size += (int64_t)len;
    if (s->seg_roll_ms < 0) s->seg_roll_ms = now_ms;
    s->seg_next_off = next;
    *base_offset = l->l_leo;
    *last_offset = next - 1;
    *log_append_time = l->l_cfg.log_append_time ? now_ms : -1;
    if (marker) /* S17: a newer epoch fences the older one */
        st_pt_fence(&l->l_prods, first.producer_id, first.producer_epoch, now_ms);
    else if (any_pid) /* S14: only once written */
        st_pt_record(&l->l_prods, first.producer_id, first.producer_epoch, first.base_sequence, last_seq, l->l_leo,
                     next - 1, now_ms);
    l->l_leo = next;
    if (!l->l_queued) {
        l->l_queued = true;
        st__mgr_enqueue(l->l_mgr, l);
    }
    rc = 0;
out:
    pthread_mutex_unlock(&l->l_mutex);
    return rc;
}

/* ---- waiting, state, config -------------------------------------------------------- */

/* Thread note: any thread; cb runs here (returns 1) or later on the flusher
 * thread, or on a thread closing/deleting the log. */
int st_log_sync_wait(st_log_t *l, int64_t offset, st_sync_cb cb, void *ctx) {
    pthread_mutex_lock(&l->l_mutex);
    int err = -1;
    if (l->l_fatal || l->l_closing) err = RB_KAFKA_STORAGE_ERROR;
    else if (offset <= l->l_hw) err = 0;
    if (err < 0) {
        st_waiter_t *w = malloc(sizeof(*w));
        if (!w) abort();
        w->w_offset = offset;
        w->w_cb = cb;
        w->w_ctx = ctx;
        w->w_next = l->l_waiters;
        l->l_waiters = w;
        pthread_mutex_unlock(&l->l_mutex);
        return 0;
    }
    pthread_mutex_unlock(&l->l_mutex);
    cb(ctx, err);
    return 1;
}

/* Thread note: any thread (a consistent snapshot under l_mutex). */
void st_log_state(st_log_t *l, st_log_state_t *out) {
    pthread_mutex_lock(&l->l_mutex);
    out->log_start_offset = l->l_start;
    out->log_end_offset = l->l_leo;
    out->high_watermark = l->l_hw;
    out->size_bytes = 0;
    for (int i = 0; i < l->l_nsegs; i++) out->size_bytes += l->l_segs[i]->seg_size;
    out->nsegments = l->l_nsegs;
    out->fatal = l->l_fatal;
    pthread_mutex_unlock(&l->l_mutex);
}

void st_log_set_config(st_log_t *l, const st_log_config_t *cfg) {
    pthread_mutex_lock(&l->l_mutex);
    l->l_cfg = *cfg;
    cfg_sanitize(&l->l_cfg);
    pthread_mutex_unlock(&l->l_mutex);
}

const char *st_log_topic(const st_log_t *l) { return l->l_topic; }
int32_t st_log_partition(const st_log_t *l) { return l->l_partition; }
void st_log_set_user(st_log_t *l, void *user) { l->l_user = user; }
void *st_log_user(const st_log_t *l) { return l->l_user; }

/* ---- close and delete ---------------------------------------------------------------- */

/* Takes l away from the manager and the flusher; returns once the flusher
 * no longer touches it. */
static void log_detach(st_log_t *l) {
    st_mgr_t *m = l->l_mgr;
    pthread_mutex_lock(&l->l_mutex);
    l->l_closing = true;
    l->l_queued = true; /* nothing re-queues it */
    pthread_mutex_unlock(&l->l_mutex);
    pthread_mutex_lock(&m->m_mutex);
    for (st_log_t **pp = &m->m_logs; *pp; pp = &(*pp)->l_next) {
        if (*pp == l) {
            *pp = l->l_next;
            break;
        }
    }
    if (l->l_in_queue) {
        st_log_t *prev = NULL;
        for (st_log_t *q = m->m_qhead; q; prev = q, q = q->l_qnext) {
            if (q != l) continue;
            if (prev) prev->l_qnext = q->l_qnext; else m->m_qhead = q->l_qnext;
            if (m->m_qtail == q) m->m_qtail = prev;
            break;
        }
        l->l_in_queue = false;
    }
    while (l->l_busy || l->l_cleaning) pthread_cond_wait(&m->m_idle, &m->m_mutex);
    pthread_mutex_unlock(&m->m_mutex);
}

/* Thread note: any thread, with no other call on l running or to follow. */
void st_log_close(st_log_t *l) {
    st_mgr_t *m = l->l_mgr;
    pthread_mutex_lock(&m->m_open_mutex);
    log_detach(l);
    /* make the active segment's indexes complete on disk (the final time
     * entry makes a clean reopen exact), then flush everything */
    pthread_mutex_lock(&l->l_mutex);
    if (!l->l_fatal) {
        st_seg_t *a = l->l_segs[l->l_nsegs - 1];
        st__idx_seal(a);
    }
    pthread_mutex_unlock(&l->l_mutex);
    st__log_flush_now(l);
    pthread_mutex_lock(&l->l_mutex);
    st_waiter_t *w = l->l_waiters;
    l->l_waiters = NULL;
    int64_t hw = l->l_hw, start = l->l_start, clean = l->l_clean_off;
    if (!l->l_fatal) st__pt_snapshot(l, l->l_leo, rb_now_ms()); /* S15 */
    pthread_mutex_unlock(&l->l_mutex);
    st__waiters_call(w, RB_KAFKA_STORAGE_ERROR); /* offsets never appended */
    st__mgr_remember(m, l->l_topic, l->l_partition, hw, start, clean);
    rb_debug("storage: closed %s at %" PRId64, l->l_dir, hw);
    st__log_free(l);
    pthread_mutex_unlock(&m->m_open_mutex);
}

/* Thread note: any thread, with no other call on l running or to follow. */
int st_log_delete(st_log_t *l) {
    st_mgr_t *m = l->l_mgr;
    pthread_mutex_lock(&m->m_open_mutex);
    log_detach(l);
    pthread_mutex_lock(&l->l_mutex);
    st_waiter_t *w = l->l_waiters;
    l->l_waiters = NULL;
    pthread_mutex_unlock(&l->l_mutex);
    st__waiters_call(w, RB_UNKNOWN_TOPIC_OR_PARTITION);
    int rc = 0;
    size_t dl = strlen(l->l_dir) + 64;
    char *dst = malloc(dl);
    if (!dst) abort();
    uint64_t rnd = (uint64_t)rb_mono_us() ^ ((uint64_t)(uintptr_t)l << 16) ^ (uint64_t)getpid();
    snprintf(dst, dl, "%s.%016" PRIx64 "-delete", l->l_dir, rnd);
    if (rename(l->l_dir, dst) < 0) {
        rb_error("storage: cannot rename %s for deletion: %s", l->l_dir, strerror(errno));
        rc = RB_KAFKA_STORAGE_ERROR;
    } else if (rb_fsync_dir(m->m_dir) < 0) {
        rb_warn("storage: fsync of %s after renaming %s failed", m->m_dir, dst);
    }
    st__mgr_forget(m, l->l_topic, l->l_partition);
    char *topic_dir = l->l_dir;
    l->l_dir = NULL;
    st__log_free(l); /* closes the fds; readers' dup'd fds stay valid */
    pthread_mutex_unlock(&m->m_open_mutex);
    if (rc == 0) {
        int r = rb_rm_rf(dst);
        if (r < 0) rb_warn("storage: removing %s: %s (removed at next start)", dst, strerror(-r));
    }
    free(dst);
    free(topic_dir);
    return rc;
}
