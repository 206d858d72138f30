/*
 * mgr.c — a log dir: opening it (leftovers, recovery checkpoint, the
 * clean-shutdown marker), listing its partitions, the checkpoint entries of
 * logs that are not open, and closing it (flush all, checkpoint, marker).
 *
 * The marker (.kafka_cleanShutdown) is removed, and its removal fsynced, as
 * soon as the dir is opened: from then on a crash must be treated as unclean.
 * It is written at close only when no log went fatal and every partition dir
 * on disk is known good — it was clean at start, or it was opened (and so
 * recovered) in this session — because the next start trusts all of them.
 */
#include "storage/storage_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

/* "topic-N" -> topic (written into buf) and N; false if not a partition dir. */
static bool parse_part_dir(const char *name, char *buf, size_t cap, int32_t *part) {
    const char *dash = strrchr(name, '-');
    if (!dash || dash == name || !dash[1] || strlen(dash + 1) > 10) return false;
    int64_t v = 0;
    for (const char *p = dash + 1; *p; p++) {
        if (*p < '0' || *p > '9') return false;
        v = v * 10 + (*p - '0');
    }
    if (v > INT32_MAX) return false;
    size_t tl = (size_t)(dash - name);
    if (tl + 1 > cap) return false;
    memcpy(buf, name, tl);
    buf[tl] = 0;
    *part = (int32_t)v;
    return true;
}

static bool has_suffix(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && !strcmp(s + n - k, suf);
}

static bool is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Removes "-delete" dirs and .tmp/.cleaned files at the top and one level down. */
static void remove_leftovers(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    char path[4096];
    while ((de = readdir(d))) {
        const char *nm = de->d_name;
        if (!strcmp(nm, ".") || !strcmp(nm, "..")) continue;
        snprintf(path, sizeof(path), "%s/%s", dir, nm);
        if (has_suffix(nm, "-delete")) {
            rb_info("storage: removing leftover %s", path);
            rb_rm_rf(path);
        } else if (has_suffix(nm, ".tmp") || has_suffix(nm, ".cleaned")) {
            unlink(path);
        } else if (is_dir(path)) {
            DIR *pd = opendir(path);
            if (!pd) continue;
            struct dirent *pe;
            while ((pe = readdir(pd))) {
                if (has_suffix(pe->d_name, ".tmp") || has_suffix(pe->d_name, ".cleaned")) {
                    char fp[4096 + 256];
                    snprintf(fp, sizeof(fp), "%s/%s", path, pe->d_name);
                    unlink(fp);
                }
            }
            closedir(pd);
        }
    }
    closedir(d);
}

static st_ckpt_ent_t *ckpt_find(st_mgr_t *m, const char *topic, int32_t partition) {
    for (int i = 0; i < m->m_nckpt; i++)
        if (m->m_ckpt[i].ck_partition == partition && !strcmp(m->m_ckpt[i].ck_topic, topic)) return &m->m_ckpt[i];
    return NULL;
}

static st_ckpt_ent_t *ckpt_add(st_mgr_t *m, const char *topic, int32_t partition, int64_t off) {
    if (m->m_nckpt == m->m_ckpt_cap) {
        int cap = m->m_ckpt_cap ? m->m_ckpt_cap * 2 : 16;
        st_ckpt_ent_t *n = realloc(m->m_ckpt, (size_t)cap * sizeof(*n));
        if (!n) abort();
        m->m_ckpt = n;
        m->m_ckpt_cap = cap;
    }
    st_ckpt_ent_t *e = &m->m_ckpt[m->m_nckpt++];
    memset(e, 0, sizeof(*e));
    e->ck_topic = strdup(topic);
    if (!e->ck_topic) abort();
    e->ck_partition = partition;
    e->ck_offset = off;
    e->ck_start = -1;
    e->ck_clean = -1;
    return e;
}

/* Kafka's text format: version 0, count, then "topic partition offset" lines.
 * A damaged recovery checkpoint is ignored (every log is then fully scanned:
 * slow, safe); a damaged log-start checkpoint too (starts fall back to the
 * first segments' bases: records come back, none is lost). */
static void ckpt_read(st_mgr_t *m, const char *file, int kind) { /* 0 recovery, 1 start, 2 cleaner */
    bool start = kind != 0;
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", m->m_dir, file);
    char *data = NULL;
    size_t len = 0;
    int rc = rb_read_file(path, &data, &len);
    if (rc < 0) {
        if (rc != -ENOENT) rb_warn("storage: cannot read %s: %s", path, strerror(-rc));
        return;
    }
    char *save = NULL;
    char *line = strtok_r(data, "\n", &save);
    long count = -1;
    bool ok = line && !strcmp(line, "0");
    if (ok) {
        line = strtok_r(NULL, "\n", &save);
        char *end;
        count = line ? strtol(line, &end, 10) : -1;
        ok = line && *end == 0 && count >= 0;
    }
    for (long i = 0; ok && i < count; i++) {
        line = strtok_r(NULL, "\n", &save);
        char topic[256];
        int part;
        long long off;
        char extra;
        if (!line || sscanf(line, "%255s %d %lld %c", topic, &part, &off, &extra) != 3 || part < 0 || off < 0) {
            ok = false;
            break;
        }
        if (start) {
            st_ckpt_ent_t *e = ckpt_find(m, topic, part);
            if (!e) e = ckpt_add(m, topic, part, -1);
            if (kind == 1) e->ck_start = off; else e->ck_clean = off;
        } else if (!ckpt_find(m, topic, part)) {
            ckpt_add(m, topic, part, off);
        }
    }
    if (!ok && kind == 2) {
        rb_warn("storage: %s is malformed; ignoring it (compacted logs are cleaned again from their start)", path);
        for (int i = 0; i < m->m_nckpt; i++) m->m_ckpt[i].ck_clean = -1;
    } else if (!ok && start) {
        rb_warn("storage: %s is malformed; ignoring it (log start offsets fall back to the first segments)", path);
        for (int i = 0; i < m->m_nckpt; i++) m->m_ckpt[i].ck_start = -1;
    } else if (!ok) {
        rb_warn("storage: %s is malformed; ignoring it (logs will be scanned from their start)", path);
        for (int i = 0; i < m->m_nckpt; i++) free(m->m_ckpt[i].ck_topic);
        m->m_nckpt = 0;
    }
    free(data);
}

int64_t st__mgr_recovery_point(st_mgr_t *m, const char *topic, int32_t partition, bool *found) {
    pthread_mutex_lock(&m->m_mutex);
    st_ckpt_ent_t *e = ckpt_find(m, topic, partition);
    int64_t off = e && e->ck_offset >= 0 ? e->ck_offset : 0;
    *found = e && e->ck_offset >= 0;
    pthread_mutex_unlock(&m->m_mutex);
    return off;
}

/* The log start (clean false) or cleaner (true) checkpoint entry, or -1. */
static int64_t ckpt_get(st_mgr_t *m, const char *topic, int32_t partition, bool clean) {
    pthread_mutex_lock(&m->m_mutex);
    st_ckpt_ent_t *e = ckpt_find(m, topic, partition);
    int64_t off = !e ? -1 : clean ? e->ck_clean : e->ck_start;
    pthread_mutex_unlock(&m->m_mutex);
    return off;
}

int64_t st__mgr_clean_off(st_mgr_t *m, const char *topic, int32_t partition) {
    return ckpt_get(m, topic, partition, true);
}

int64_t st__mgr_log_start(st_mgr_t *m, const char *topic, int32_t partition) {
    return ckpt_get(m, topic, partition, false);
}

void st__mgr_mark_recovered(st_mgr_t *m, const char *topic, int32_t partition) {
    pthread_mutex_lock(&m->m_mutex);
    st_ckpt_ent_t *e = ckpt_find(m, topic, partition);
    if (!e) e = ckpt_add(m, topic, partition, -1);
    e->ck_recovered = true;
    e->ck_open = true;
    pthread_mutex_unlock(&m->m_mutex);
    atomic_fetch_add(&m->m_ckpt_gen, 1);
}

void st__mgr_remember(st_mgr_t *m, const char *topic, int32_t partition, int64_t hw, int64_t start, int64_t clean) {
    pthread_mutex_lock(&m->m_mutex);
    st_ckpt_ent_t *e = ckpt_find(m, topic, partition);
    if (!e) e = ckpt_add(m, topic, partition, hw);
    e->ck_offset = hw;
    e->ck_start = start;
    e->ck_clean = clean;
    e->ck_open = false;
    pthread_mutex_unlock(&m->m_mutex);
    atomic_fetch_add(&m->m_ckpt_gen, 1);
}

void st__mgr_forget(st_mgr_t *m, const char *topic, int32_t partition) {
    pthread_mutex_lock(&m->m_mutex);
    st_ckpt_ent_t *e = ckpt_find(m, topic, partition);
    if (e) {
        free(e->ck_topic);
        *e = m->m_ckpt[--m->m_nckpt];
    }
    pthread_mutex_unlock(&m->m_mutex);
    atomic_fetch_add(&m->m_ckpt_gen, 1);
}

/* syncfs() reports writeback errors only since Linux 5.8. */
static bool syncfs_reports_errors(void) {
    struct utsname u;
    int maj = 0, min = 0;
    if (uname(&u) < 0 || sscanf(u.release, "%d.%d", &maj, &min) != 2) return false;
    return maj > 5 || (maj == 5 && min >= 8);
}

int st_mgr_open(const char *dir, st_mgr_t **out) {
    int rc = rb_mkdir_p(dir);
    if (rc < 0) {
        rb_error("storage: cannot create log dir %s: %s", dir, strerror(-rc));
        return RB_KAFKA_STORAGE_ERROR;
    }
    st_mgr_t *m = calloc(1, sizeof(*m));
    if (!m) return RB_ERR_NOMEM;
    m->m_dir = strdup(dir);
    if (!m->m_dir) abort();
    size_t dl = strlen(m->m_dir);
    while (dl > 1 && m->m_dir[dl - 1] == '/') m->m_dir[--dl] = 0;
    m->m_dirfd = open(m->m_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (m->m_dirfd < 0) {
        rb_error("storage: cannot open log dir %s: %s", dir, strerror(errno));
        free(m->m_dir);
        free(m);
        return RB_KAFKA_STORAGE_ERROR;
    }
    pthread_mutex_init(&m->m_mutex, NULL);
    pthread_mutex_init(&m->m_open_mutex, NULL);
    pthread_mutex_init(&m->m_ckpt_mutex, NULL);
    pthread_mutex_init(&m->m_del_mutex, NULL);
    pthread_mutex_init(&m->m_cl_mutex, NULL);
    m->m_cl_interval_ms = ST_RETENTION_CHECK_MS_DEFAULT;
    m->m_cc_enable = true;
    m->m_cc_buffer = ST_DEDUPE_BYTES_DEFAULT;
    m->m_cc_backoff_ms = ST_CLEANER_BACKOFF_MS_DEFAULT;
    atomic_init(&m->m_prod_expire_ms, ST_PRODUCER_EXPIRATION_MS);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->m_cond, &ca);
    pthread_cond_init(&m->m_cl_cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&m->m_idle, NULL);
    atomic_init(&m->m_fatal, 0);
    atomic_init(&m->m_ckpt_gen, 0);
    const char *env = getenv("RILL_STORAGE_SYNCFS_MIN");
    m->m_syncfs_min = env && *env ? atoi(env) : ST_SYNCFS_MIN_DEFAULT;
    if (m->m_syncfs_min < 0 || !syncfs_reports_errors()) m->m_syncfs_min = 0;

    remove_leftovers(m->m_dir);
    ckpt_read(m, ST_CKPT_FILE, 0);
    ckpt_read(m, ST_LSO_FILE, 1);
    ckpt_read(m, ST_CLEAN_FILE, 2);
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", m->m_dir, ST_MARKER_FILE);
    if (access(path, F_OK) == 0) {
        m->m_clean_start = true;
        /* from now on a crash is unclean: the removal must be durable */
        if (unlink(path) < 0 || fsync(m->m_dirfd) < 0) {
            rb_error("storage: cannot remove %s: %s", path, strerror(errno));
            goto fail;
        }
    }
    rb_info("storage: log dir %s opened (%s shutdown before, %d checkpoint entries)", m->m_dir,
            m->m_clean_start ? "clean" : "unclean or first", m->m_nckpt);
    m->m_ckpt_next_ms = rb_mono_ms() + ST_CKPT_INTERVAL_MS;
    if (pthread_create(&m->m_thread, NULL, st__flusher_main, m) != 0) goto fail;
    m->m_thread_started = true;
    if (pthread_create(&m->m_cl_thread, NULL, st__cleaner_main, m) != 0) {
        pthread_mutex_lock(&m->m_mutex);
        m->m_stop = true;
        pthread_cond_signal(&m->m_cond);
        pthread_mutex_unlock(&m->m_mutex);
        pthread_join(m->m_thread, NULL);
        goto fail;
    }
    m->m_cl_started = true;
    *out = m;
    return 0;
fail:
    close(m->m_dirfd);
    for (int i = 0; i < m->m_nckpt; i++) free(m->m_ckpt[i].ck_topic);
    free(m->m_ckpt);
    pthread_mutex_destroy(&m->m_mutex);
    pthread_mutex_destroy(&m->m_open_mutex);
    pthread_mutex_destroy(&m->m_ckpt_mutex);
    pthread_mutex_destroy(&m->m_del_mutex);
    pthread_mutex_destroy(&m->m_cl_mutex);
    pthread_cond_destroy(&m->m_cl_cond);
    pthread_cond_destroy(&m->m_cond);
    pthread_cond_destroy(&m->m_idle);
    free(m->m_dir);
    free(m);
    return RB_KAFKA_STORAGE_ERROR;
}

void st_mgr_set_durable_cb(st_mgr_t *m, st_durable_cb cb, void *ctx) {
    pthread_mutex_lock(&m->m_mutex);
    m->m_durable_cb = cb;
    m->m_durable_ctx = ctx;
    pthread_mutex_unlock(&m->m_mutex);
}

void st_mgr_set_syncfs_min(st_mgr_t *m, int nlogs) {
    pthread_mutex_lock(&m->m_mutex);
    m->m_syncfs_min = nlogs > 0 && syncfs_reports_errors() ? nlogs : 0;
    pthread_mutex_unlock(&m->m_mutex);
}

void st_mgr_list(st_mgr_t *m, void (*fn)(void *ctx, const char *topic, int32_t partition), void *ctx) {
    DIR *d = opendir(m->m_dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        char topic[256], path[4096];
        int32_t part;
        if (de->d_name[0] == '.' || !parse_part_dir(de->d_name, topic, sizeof(topic), &part)) continue;
        snprintf(path, sizeof(path), "%s/%s", m->m_dir, de->d_name);
        if (!is_dir(path)) continue;
        fn(ctx, topic, part);
    }
    closedir(d);
}

const char *st_mgr_dir(const st_mgr_t *m) { return m->m_dir; }

int st_mgr_fatal_count(const st_mgr_t *m) { return atomic_load(&((st_mgr_t *)m)->m_fatal); }

int st_mgr_checkpoint(st_mgr_t *m) { return st__ckpt_write(m) < 0 ? RB_KAFKA_STORAGE_ERROR : 0; }

typedef struct {
    st_mgr_t *m;
    bool all_known;
} st_known_t;

static void check_known(void *ctx, const char *topic, int32_t partition) {
    st_known_t *k = ctx;
    st_ckpt_ent_t *e = ckpt_find(k->m, topic, partition);
    if (!e || !e->ck_recovered) k->all_known = false;
}

void st_mgr_close(st_mgr_t *m) {
    if (m->m_cl_started) {
        pthread_mutex_lock(&m->m_cl_mutex);
        m->m_cl_stop = true;
        pthread_cond_signal(&m->m_cl_cond);
        pthread_mutex_unlock(&m->m_cl_mutex);
        pthread_join(m->m_cl_thread, NULL);
    }
    for (;;) {
        pthread_mutex_lock(&m->m_mutex);
        st_log_t *l = m->m_logs;
        pthread_mutex_unlock(&m->m_mutex);
        if (!l) break;
        st_log_close(l);
    }
    if (m->m_thread_started) {
        pthread_mutex_lock(&m->m_mutex);
        m->m_stop = true;
        pthread_cond_signal(&m->m_cond);
        pthread_mutex_unlock(&m->m_mutex);
        pthread_join(m->m_thread, NULL);
    }
    int rc = st__ckpt_write(m);
    st_known_t k = {m, true};
    if (!m->m_clean_start) st_mgr_list(m, check_known, &k);
    if (rc == 0 && atomic_load(&m->m_fatal) == 0 && k.all_known) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", m->m_dir, ST_MARKER_FILE);
        rc = rb_write_file_atomic(path, "", 0);
        if (rc < 0) rb_error("storage: cannot write %s: %s", path, strerror(-rc));
    } else {
        rb_warn("storage: %s closed without the clean-shutdown marker (%s)", m->m_dir,
                rc < 0 ? "checkpoint failed" : atomic_load(&m->m_fatal) ? "a log is fatal"
                                                                        : "some partitions were not recovered");
    }
    close(m->m_dirfd);
    for (int i = 0; i < m->m_nckpt; i++) free(m->m_ckpt[i].ck_topic);
    free(m->m_ckpt);
    pthread_mutex_destroy(&m->m_mutex);
    pthread_mutex_destroy(&m->m_open_mutex);
    pthread_mutex_destroy(&m->m_ckpt_mutex);
    pthread_mutex_destroy(&m->m_del_mutex);
    pthread_mutex_destroy(&m->m_cl_mutex);
    pthread_cond_destroy(&m->m_cl_cond);
    pthread_cond_destroy(&m->m_cond);
    pthread_cond_destroy(&m->m_idle);
    free(m->m_dir);
    free(m);
}
