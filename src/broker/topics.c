/*
 * topics.c — the topic table and its durable catalog: create, delete, load at
 * start, topic configs (validated against the names Kafka uses), and the
 * cluster identity file (meta.properties). Invariants B1 and B2 (broker.h).
 *
 * Catalog line format (`<first log dir>/rill-topics`, one topic per line):
 *   topic <name> <topic id, 32 hex digits> <partitions> [<config>=<%-encoded value>]...
 */
#include "broker/broker.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- names ------------------------------------------------------------------------- */

bool bk_topic_name_valid(const char *p, size_t len) {
    if (len == 0 || len > 249) return false;
    if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.')) return false;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return false;
    }
    return true;
}

static uint64_t bk_hash(const char *p, size_t len) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

bk_topic_t *bk_topic_find(bk_broker_t *b, const char *p, size_t len) {
    if (!b->b_ntopic_buckets) return NULL;
    for (bk_topic_t *t = b->b_topic_buckets[bk_hash(p, len) % b->b_ntopic_buckets]; t; t = t->t_next)
        if (strlen(t->t_name) == len && !memcmp(t->t_name, p, len)) return t;
    return NULL;
}

static size_t bk_id_bucket(const kp_uuid_t *id, size_t nb) {
    uint64_t h;
    memcpy(&h, id->b + 8, 8); /* random bits of a v4 UUID */
    return (size_t)(h % nb);
}

bk_topic_t *bk_topic_find_id(bk_broker_t *b, const kp_uuid_t *id) {
    if (!b->b_ntopic_buckets) return NULL;
    for (bk_topic_t *t = b->b_topic_id_buckets[bk_id_bucket(id, b->b_ntopic_buckets)]; t; t = t->t_id_next)
        if (!memcmp(t->t_id.b, id->b, 16)) return t;
    return NULL;
}

static void bk_topics_rehash(bk_broker_t *b, size_t nb) {
    bk_topic_t **nbk = calloc(nb, sizeof(*nbk)), **nid = calloc(nb, sizeof(*nid));
    if (!nbk || !nid) abort();
    for (size_t i = 0; i < b->b_ntopic_buckets; i++) {
        bk_topic_t *t = b->b_topic_buckets[i];
        while (t) {
            bk_topic_t *next = t->t_next;
            size_t h = bk_hash(t->t_name, strlen(t->t_name)) % nb;
            t->t_next = nbk[h];
            nbk[h] = t;
            size_t k = bk_id_bucket(&t->t_id, nb);
            t->t_id_next = nid[k];
            nid[k] = t;
            t = next;
        }
    }
    free(b->b_topic_buckets);
    free(b->b_topic_id_buckets);
    b->b_topic_buckets = nbk;
    b->b_topic_id_buckets = nid;
    b->b_ntopic_buckets = nb;
}

static void bk_topics_insert(bk_broker_t *b, bk_topic_t *t) {
    if (b->b_ntopics + 1 > b->b_ntopic_buckets * 2) bk_topics_rehash(b, b->b_ntopic_buckets ? b->b_ntopic_buckets * 4 : 64);
    size_t h = bk_hash(t->t_name, strlen(t->t_name)) % b->b_ntopic_buckets;
    t->t_next = b->b_topic_buckets[h];
    b->b_topic_buckets[h] = t;
    size_t k = bk_id_bucket(&t->t_id, b->b_ntopic_buckets);
    t->t_id_next = b->b_topic_id_buckets[k];
    b->b_topic_id_buckets[k] = t;
    b->b_ntopics++;
}

static void bk_topics_unlink(bk_broker_t *b, bk_topic_t *t) {
    bk_topic_t **pp = &b->b_topic_buckets[bk_hash(t->t_name, strlen(t->t_name)) % b->b_ntopic_buckets];
    while (*pp && *pp != t) pp = &(*pp)->t_next;
    if (*pp) {
        *pp = t->t_next;
        b->b_ntopics--;
    }
    pp = &b->b_topic_id_buckets[bk_id_bucket(&t->t_id, b->b_ntopic_buckets)];
    while (*pp && *pp != t) pp = &(*pp)->t_id_next;
    if (*pp) *pp = t->t_id_next;
}

/* ---- configs ------------------------------------------------------------------------ */

typedef enum { BK_TC_LONG, BK_TC_DOUBLE, BK_TC_BOOL, BK_TC_ENUM, BK_TC_LIST } bk_tc_type_t;

static const struct {
    const char *name;
    bk_tc_type_t type;
    int64_t min;
    const char *choices; /* ENUM: '|'-separated */
} bk_topic_config_defs[] = {
    {"cleanup.policy", BK_TC_ENUM, 0, "delete|compact|compact,delete|delete,compact"},
    {"compression.type", BK_TC_ENUM, 0, "producer|uncompressed|gzip|snappy|lz4|zstd"},
    {"delete.retention.ms", BK_TC_LONG, 0, NULL},
    {"file.delete.delay.ms", BK_TC_LONG, 0, NULL},
    {"flush.messages", BK_TC_LONG, 1, NULL},
    {"flush.ms", BK_TC_LONG, 0, NULL},
    {"index.interval.bytes", BK_TC_LONG, 0, NULL},
    {"max.compaction.lag.ms", BK_TC_LONG, 1, NULL},
    {"max.message.bytes", BK_TC_LONG, 0, NULL},
    {"message.timestamp.difference.max.ms", BK_TC_LONG, 0, NULL},
    {"message.timestamp.type", BK_TC_ENUM, 0, "CreateTime|LogAppendTime"},
    {"min.cleanable.dirty.ratio", BK_TC_DOUBLE, 0, NULL},
    {"min.compaction.lag.ms", BK_TC_LONG, 0, NULL},
    {"min.insync.replicas", BK_TC_LONG, 1, NULL},
    {"preallocate", BK_TC_BOOL, 0, NULL},
    {"retention.bytes", BK_TC_LONG, -1, NULL},
    {"retention.ms", BK_TC_LONG, -1, NULL},
    {"segment.bytes", BK_TC_LONG, 14, NULL},
    {"segment.index.bytes", BK_TC_LONG, 4, NULL},
    {"segment.jitter.ms", BK_TC_LONG, 0, NULL},
    {"segment.ms", BK_TC_LONG, 1, NULL},
    {"unclean.leader.election.enable", BK_TC_BOOL, 0, NULL},
    {"message.downconversion.enable", BK_TC_BOOL, 0, NULL},
    {"leader.replication.throttled.replicas", BK_TC_LIST, 0, NULL},
    {"follower.replication.throttled.replicas", BK_TC_LIST, 0, NULL},
};

bool bk_enum_has(const char *choices, const char *v) {
    size_t vl = strlen(v);
    const char *p = choices;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t l = bar ? (size_t)(bar - p) : strlen(p);
        if (l == vl && !memcmp(p, v, l)) return true;
        if (!bar) break;
        p = bar + 1;
    }
    return false;
}

int bk_topic_configs_apply(bk_broker_t *b, const bk_topic_configs_t *c, st_log_config_t *lc, int64_t *max_msg,
                           char *err_msg, size_t err_size) {
    const bk_config_t *cfg = &b->b_cfg;
    st_log_config_defaults(lc);
    lc->segment_bytes = cfg->log_segment_bytes;
    lc->segment_ms = cfg->log_roll_ms;
    lc->index_interval_bytes = (int32_t)cfg->log_index_interval_bytes;
    lc->segment_index_bytes = (int32_t)cfg->log_index_size_max_bytes;
    lc->flush_messages = cfg->log_flush_interval_messages;
    lc->flush_ms = cfg->log_flush_interval_ms;
    lc->log_append_time = !strcmp(cfg->log_message_timestamp_type_str, "LogAppendTime");
    lc->retention_ms = cfg->log_retention_ms;
    lc->retention_bytes = cfg->log_retention_bytes;
    lc->compact = strstr(cfg->log_cleanup_policy_str, "compact") != NULL;
    bool compact_only = !strcmp(cfg->log_cleanup_policy_str, "compact");
    *max_msg = cfg->message_max_bytes;
    for (int i = 0; i < c->n; i++) {
        const char *n = c->names[i], *v = c->values[i];
        size_t k;
        for (k = 0; k < RB_ARRAY_LEN(bk_topic_config_defs); k++)
            if (!strcmp(bk_topic_config_defs[k].name, n)) break;
        if (k == RB_ARRAY_LEN(bk_topic_config_defs)) {
            snprintf(err_msg, err_size, "Unknown topic config name: %s", n);
            return RB_INVALID_CONFIG;
        }
        int64_t lv = 0;
        switch (bk_topic_config_defs[k].type) {
        case BK_TC_LONG: {
            char *end = NULL;
            errno = 0;
            lv = strtoll(v, &end, 10);
            if (errno || !*v || *end || lv < bk_topic_config_defs[k].min) {
                snprintf(err_msg, err_size, "Invalid value %s for configuration %s: must be an integer >= %lld", v, n,
                         (long long)bk_topic_config_defs[k].min);
                return RB_INVALID_CONFIG;
            }
            break;
        }
        case BK_TC_DOUBLE: {
            char *end = NULL;
            double d = strtod(v, &end);
            if (!*v || *end || d < 0 || d > 1) {
                snprintf(err_msg, err_size, "Invalid value %s for configuration %s: must be a number in [0,1]", v, n);
                return RB_INVALID_CONFIG;
            }
            break;
        }
        case BK_TC_BOOL:
            if (strcmp(v, "true") && strcmp(v, "false")) {
                snprintf(err_msg, err_size, "Invalid value %s for configuration %s: must be true or false", v, n);
                return RB_INVALID_CONFIG;
            }
            break;
        case BK_TC_ENUM:
            if (!bk_enum_has(bk_topic_config_defs[k].choices, v)) {
                snprintf(err_msg, err_size, "Invalid value %s for configuration %s: must be one of %s", v, n,
                         bk_topic_config_defs[k].choices);
                return RB_INVALID_CONFIG;
            }
            break;
        case BK_TC_LIST: break;
        }
        if (!strcmp(n, "segment.bytes")) lc->segment_bytes = lv;
        else if (!strcmp(n, "segment.ms")) lc->segment_ms = lv;
        else if (!strcmp(n, "segment.index.bytes")) lc->segment_index_bytes = (int32_t)RB_MIN(lv, INT32_MAX);
        else if (!strcmp(n, "index.interval.bytes")) lc->index_interval_bytes = (int32_t)RB_MIN(lv, INT32_MAX);
        else if (!strcmp(n, "flush.messages")) lc->flush_messages = lv;
        else if (!strcmp(n, "flush.ms")) lc->flush_ms = lv;
        else if (!strcmp(n, "max.message.bytes")) *max_msg = lv;
        else if (!strcmp(n, "message.timestamp.type")) lc->log_append_time = !strcmp(v, "LogAppendTime");
        else if (!strcmp(n, "retention.ms")) lc->retention_ms = lv;
        else if (!strcmp(n, "retention.bytes")) lc->retention_bytes = lv;
        else if (!strcmp(n, "cleanup.policy")) compact_only = !strcmp(v, "compact"), lc->compact = !!strstr(v, "compact");
        else if (!strcmp(n, "delete.retention.ms")) lc->delete_retention_ms = lv;
        else if (!strcmp(n, "min.cleanable.dirty.ratio")) lc->min_cleanable_dirty_ratio = strtod(v, NULL);
        else if (!strcmp(n, "min.compaction.lag.ms")) lc->min_compaction_lag_ms = lv;
        else if (!strcmp(n, "max.compaction.lag.ms")) lc->max_compaction_lag_ms = lv;
    }
    if (compact_only) { /* retention deletes only under the delete policy */
        lc->retention_ms = -1;
        lc->retention_bytes = -1;
    }
    return 0;
}

void bk_topic_configs_free(bk_topic_configs_t *c) {
    for (int i = 0; i < c->n; i++) {
        free(c->names[i]);
        free(c->values[i]);
    }
    c->n = 0;
}

void bk_topic_configs_copy(bk_topic_configs_t *dst, const bk_topic_configs_t *src) {
    dst->n = src->n;
    for (int i = 0; i < src->n; i++) {
        dst->names[i] = strdup(src->names[i]);
        dst->values[i] = strdup(src->values[i]);
    }
}

/* ---- the catalog ----------------------------------------------------------------------- */

void bk_pct_encode(rb_buf_t *b, const char *s) {
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
            c == '-' || c == ',')
            rb_buf_u8(b, c);
        else
            rb_buf_printf(b, "%%%02X", c);
    }
}

char *bk_pct_decode(const char *s) {
    size_t n = strlen(s);
    char *out = malloc(n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n + 0 + 1 && s[i + 1] && s[i + 2]) {
            char hex[3] = {s[i + 1], s[i + 2], 0};
            *o++ = (char)strtol(hex, NULL, 16);
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = 0;
    return out;
}

static void bk_uuid_hex(const kp_uuid_t *u, char out[33]) {
    for (int i = 0; i < 16; i++) snprintf(out + 2 * i, 3, "%02x", u->b[i]);
}

static int bk_uuid_parse(const char *s, kp_uuid_t *u) {
    if (strlen(s) != 32) return -1;
    for (int i = 0; i < 16; i++) {
        char hex[3] = {s[2 * i], s[2 * i + 1], 0};
        char *end;
        long v = strtol(hex, &end, 16);
        if (*end) return -1;
        u->b[i] = (uint8_t)v;
    }
    return 0;
}

static void bk_uuid_random(kp_uuid_t *u) {
    do {
        if (getrandom(u->b, 16, 0) != 16) {
            for (int i = 0; i < 16; i++) u->b[i] = (uint8_t)(rand() >> 7);
        }
        u->b[6] = (uint8_t)((u->b[6] & 0x0f) | 0x40); /* version 4 */
        u->b[8] = (uint8_t)((u->b[8] & 0x3f) | 0x80);
    } while (0);
}

static char *bk_catalog_path(bk_broker_t *b) {
    char *p = NULL;
    if (asprintf(&p, "%s/rill-topics", st_mgr_dir(b->b_mgrs[0])) < 0) abort();
    return p;
}

static void bk_catalog_line(rb_buf_t *buf, const bk_topic_t *t) {
    char hex[33];
    bk_uuid_hex(&t->t_id, hex);
    rb_buf_printf(buf, "topic %s %s %d", t->t_name, hex, t->t_npartitions);
    for (int i = 0; i < t->t_configs.n; i++) {
        rb_buf_printf(buf, " %s=", t->t_configs.names[i]);
        bk_pct_encode(buf, t->t_configs.values[i]);
    }
    rb_buf_u8(buf, '\n');
}

/* Rewrites the catalog from the table plus/minus one topic. Write lock held. */
static int bk_catalog_write(bk_broker_t *b, const bk_topic_t *extra, const bk_topic_t *skip) {
    rb_buf_t buf;
    rb_buf_init(&buf);
    rb_buf_printf(&buf, "# rill topic catalog v1: topic <name> <id> <partitions> [config=value]...\n");
    BK_TOPICS_FOREACH(b, t) {
        if (t != skip) bk_catalog_line(&buf, t);
    }
    if (extra) bk_catalog_line(&buf, extra);
    char *path = bk_catalog_path(b);
    int rc = rb_write_file_atomic(path, buf.p, buf.len);
    if (rc) rb_error("cannot write topic catalog %s: %s", path, strerror(-rc));
    free(path);
    rb_buf_free(&buf);
    return rc ? RB_KAFKA_STORAGE_ERROR : 0;
}

/* ---- partitions -------------------------------------------------------------------------- */

static st_mgr_t *bk_mgr_for(bk_broker_t *b, const char *topic, int32_t p) {
    for (int i = 0; i < b->b_nmgrs; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s-%d", st_mgr_dir(b->b_mgrs[i]), topic, p);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return b->b_mgrs[i];
    }
    return b->b_mgrs[(bk_hash(topic, strlen(topic)) + (uint64_t)p) % (uint64_t)b->b_nmgrs];
}

static bk_partition_t *bk_partition_new(bk_topic_t *t, int32_t i) {
    bk_partition_t *p = calloc(1, sizeof(*p));
    if (!p) abort();
    p->p_topic = t;
    p->p_index = i;
    pthread_mutex_init(&p->p_waiters_mu, NULL);
    return p;
}

static void bk_partition_free(bk_partition_t *p) {
    if (!p) return;
    pthread_mutex_destroy(&p->p_waiters_mu);
    free(p);
}

static void bk_topic_free(bk_topic_t *t) {
    if (!t) return;
    if (t->t_parts)
        for (int32_t i = 0; i < t->t_npartitions; i++) bk_partition_free(t->t_parts[i]);
    free(t->t_parts);
    bk_topic_configs_free(&t->t_configs);
    free(t->t_name);
    free(t);
}

/* Opens (creating when absent) the partition logs [from, to) of t; on
 * failure closes those it opened. */
static int bk_topic_open_range(bk_broker_t *b, bk_topic_t *t, int32_t from, int32_t to) {
    for (int32_t i = from; i < to; i++) {
        bk_partition_t *p = t->t_parts[i];
        st_mgr_t *m = bk_mgr_for(b, t->t_name, i);
        int rc = st_log_open(m, t->t_name, i, &t->t_logcfg, &p->p_log);
        if (rc) {
            rb_error("cannot open log %s-%d: %s", t->t_name, i, rb_err_name(rc));
            for (int32_t k = from; k < i; k++) {
                st_log_close(t->t_parts[k]->p_log);
                t->t_parts[k]->p_log = NULL;
            }
            return RB_KAFKA_STORAGE_ERROR;
        }
        st_log_set_user(p->p_log, p);
    }
    return 0;
}

/* Opens (creating when absent) every partition log of t. */
static int bk_topic_open_logs(bk_broker_t *b, bk_topic_t *t) { return bk_topic_open_range(b, t, 0, t->t_npartitions); }

static bk_topic_t *bk_topic_new(const char *name, size_t len, int32_t nparts) {
    bk_topic_t *t = calloc(1, sizeof(*t));
    t->t_name = strndup(name, len);
    t->t_npartitions = nparts;
    t->t_parts = calloc((size_t)nparts, sizeof(*t->t_parts));
    if (!t->t_parts) abort();
    for (int32_t i = 0; i < nparts; i++) t->t_parts[i] = bk_partition_new(t, i);
    t->t_internal = len > 2 && name[0] == '_' && name[1] == '_';
    return t;
}

int bk_topic_create(bk_broker_t *b, const char *name, size_t len, int32_t partitions, int16_t rf,
                    const bk_topic_configs_t *configs, bool validate_only, char *err_msg, size_t err_size,
                    kp_uuid_t *id_out) {
    if (!bk_topic_name_valid(name, len)) {
        snprintf(err_msg, err_size, "Topic name \"%.*s\" is illegal, it contains a character other than ASCII "
                 "alphanumerics, '.', '_' and '-', or is empty, too long, '.' or '..'", (int)RB_MIN(len, 300), name);
        return RB_INVALID_TOPIC_EXCEPTION;
    }
    if (partitions == -1) partitions = (int32_t)b->b_cfg.num_partitions;
    if (rf == -1) rf = (int16_t)b->b_cfg.default_replication_factor;
    if (partitions < 1 || partitions > 100000) {
        snprintf(err_msg, err_size, "Number of partitions must be between 1 and 100000, got %d", partitions);
        return RB_INVALID_PARTITIONS;
    }
    if (rf != 1) {
        snprintf(err_msg, err_size, "Replication factor: %d larger than available brokers: 1", rf);
        return RB_INVALID_REPLICATION_FACTOR;
    }
    st_log_config_t lc;
    int64_t max_msg;
    pthread_rwlock_wrlock(&b->b_topics_lock); /* the broker defaults change under it (configs.c) */
    int rc = bk_topic_configs_apply(b, configs, &lc, &max_msg, err_msg, err_size);
    if (rc) {
        pthread_rwlock_unlock(&b->b_topics_lock);
        return rc;
    }
    if (bk_topic_find(b, name, len)) {
        pthread_rwlock_unlock(&b->b_topics_lock);
        snprintf(err_msg, err_size, "Topic '%.*s' already exists.", (int)len, name);
        return RB_TOPIC_ALREADY_EXISTS;
    }
    if (validate_only) {
        pthread_rwlock_unlock(&b->b_topics_lock);
        return 0;
    }
    bk_topic_t *t = bk_topic_new(name, len, partitions);
    bk_topic_configs_copy(&t->t_configs, configs);
    t->t_logcfg = lc;
    t->t_max_message_bytes = max_msg;
    bk_topic_configs_extra(b, configs, &t->t_codec, &t->t_ts_diff_max_ms);
    bk_uuid_random(&t->t_id);
    /* B2: directories first, then the catalog */
    rc = bk_topic_open_logs(b, t);
    if (!rc) rc = bk_catalog_write(b, t, NULL);
    if (rc) {
        for (int32_t i = 0; i < t->t_npartitions; i++)
            if (t->t_parts[i]->p_log) st_log_delete(t->t_parts[i]->p_log);
        pthread_rwlock_unlock(&b->b_topics_lock);
        bk_topic_free(t);
        snprintf(err_msg, err_size, "Storage error while creating the topic");
        return RB_KAFKA_STORAGE_ERROR;
    }
    bk_topics_insert(b, t);
    if (id_out) *id_out = t->t_id;
    pthread_rwlock_unlock(&b->b_topics_lock);
    rb_info("created topic %s with %d partition(s)", t->t_name, partitions);
    return 0;
}

int bk_topic_add_partitions(bk_broker_t *b, const char *name, size_t len, int32_t count, bool validate_only,
                            char *err_msg, size_t err_size) {
    pthread_rwlock_wrlock(&b->b_topics_lock);
    bk_topic_t *t = bk_topic_find(b, name, len);
    int rc = 0;
    if (!t) {
        snprintf(err_msg, err_size, "The topic '%.*s' does not exist.", (int)RB_MIN(len, 300), name);
        rc = RB_UNKNOWN_TOPIC_OR_PARTITION;
        goto out;
    }
    if (t->t_internal) {
        /* group -> partition is a hash modulo the count: growing would move groups */
        snprintf(err_msg, err_size, "Internal topic %s cannot get more partitions.", t->t_name);
        rc = RB_INVALID_REQUEST;
        goto out;
    }
    int32_t old = t->t_npartitions;
    if (count == old) {
        snprintf(err_msg, err_size, "Topic already has %d partitions.", old);
        rc = RB_INVALID_PARTITIONS;
        goto out;
    }
    if (count < old) {
        snprintf(err_msg, err_size, "Topic currently has %d partitions, which is higher than the requested %d.", old,
                 count);
        rc = RB_INVALID_PARTITIONS;
        goto out;
    }
    if (count > 100000) {
        snprintf(err_msg, err_size, "Number of partitions must be at most 100000, got %d", count);
        rc = RB_INVALID_PARTITIONS;
        goto out;
    }
    if (validate_only) goto out;
    bk_partition_t **np = calloc((size_t)count, sizeof(*np));
    if (!np) abort();
    memcpy(np, t->t_parts, (size_t)old * sizeof(*np));
    for (int32_t i = old; i < count; i++) np[i] = bk_partition_new(t, i);
    bk_partition_t **op = t->t_parts;
    /* B2: directories first, then the catalog; readers see the new count
     * only once both exist (we hold the write lock throughout) */
    t->t_parts = np;
    rc = bk_topic_open_range(b, t, old, count);
    for (int32_t i = old; i < count && !rc; i++) {
        /* a directory left from an earlier life of the name (an orphan the
         * catalog never named) must not lend the new partition its records */
        st_log_state_t st;
        st_log_state(np[i]->p_log, &st);
        if (st.log_end_offset == 0 && st.log_start_offset == 0) continue;
        rb_warn("topic %s: partition directory %d held records the catalog never named; emptied", t->t_name, i);
        st_mgr_t *m = bk_mgr_for(b, t->t_name, i);
        st_log_delete(np[i]->p_log);
        np[i]->p_log = NULL;
        if (st_log_open(m, t->t_name, i, &t->t_logcfg, &np[i]->p_log)) {
            for (int32_t k = old; k < count; k++)
                if (np[k]->p_log) st_log_close(np[k]->p_log);
            rc = RB_KAFKA_STORAGE_ERROR;
            break;
        }
        st_log_set_user(np[i]->p_log, np[i]);
    }
    if (!rc) {
        t->t_npartitions = count;
        rc = bk_catalog_write(b, NULL, NULL);
        if (rc) {
            for (int32_t i = old; i < count; i++) st_log_delete(np[i]->p_log);
            t->t_npartitions = old;
        }
    }
    if (rc) {
        for (int32_t i = old; i < count; i++) bk_partition_free(np[i]);
        t->t_parts = op;
        free(np);
        snprintf(err_msg, err_size, "Storage error while adding partitions");
        rc = RB_KAFKA_STORAGE_ERROR;
        goto out;
    }
    free(op);
    rb_info("topic %s: partitions %d -> %d", t->t_name, old, count);
out:
    pthread_rwlock_unlock(&b->b_topics_lock);
    return rc;
}

/* Hands t's current settings to its open logs. Write lock held. */
static void bk_topic_push_config(bk_topic_t *t) {
    for (int32_t i = 0; i < t->t_npartitions; i++)
        if (t->t_parts[i]->p_log) st_log_set_config(t->t_parts[i]->p_log, &t->t_logcfg);
}

int bk_topic_set_configs(bk_broker_t *b, const char *name, size_t len, const bk_topic_configs_t *c) {
    pthread_rwlock_wrlock(&b->b_topics_lock);
    bk_topic_t *t = bk_topic_find(b, name, len);
    if (!t) {
        pthread_rwlock_unlock(&b->b_topics_lock);
        return RB_UNKNOWN_TOPIC_OR_PARTITION;
    }
    st_log_config_t lc;
    int64_t max_msg;
    char msg[256];
    int rc = bk_topic_configs_apply(b, c, &lc, &max_msg, msg, sizeof(msg));
    if (rc) { /* validated by the caller; the broker defaults cannot make it fail */
        pthread_rwlock_unlock(&b->b_topics_lock);
        return rc;
    }
    bk_topic_configs_t old = t->t_configs;
    bk_topic_configs_copy(&t->t_configs, c);
    /* durable first: the catalog names the new configs, then logs use them */
    rc = rb_failpoint("bk.configs.write") ? RB_KAFKA_STORAGE_ERROR : bk_catalog_write(b, NULL, NULL);
    if (rc) {
        bk_topic_configs_free(&t->t_configs);
        t->t_configs = old;
        pthread_rwlock_unlock(&b->b_topics_lock);
        return rc;
    }
    bk_topic_configs_free(&old);
    t->t_logcfg = lc;
    t->t_max_message_bytes = max_msg;
    bk_topic_configs_extra(b, &t->t_configs, &t->t_codec, &t->t_ts_diff_max_ms);
    bk_topic_push_config(t);
    pthread_rwlock_unlock(&b->b_topics_lock);
    rb_info("topic %s: configs changed (%d override(s))", t->t_name, c->n);
    return 0;
}

void bk_topics_reapply_configs(bk_broker_t *b) {
    BK_TOPICS_FOREACH(b, t) {
        char msg[256];
        if (bk_topic_configs_apply(b, &t->t_configs, &t->t_logcfg, &t->t_max_message_bytes, msg, sizeof(msg)))
            rb_warn("topic %s: %s", t->t_name, msg);
        bk_topic_configs_extra(b, &t->t_configs, &t->t_codec, &t->t_ts_diff_max_ms);
        bk_topic_push_config(t);
    }
}

int bk_topic_delete(bk_broker_t *b, const char *name, size_t len, kp_uuid_t *id_out) {
    if (!b->b_cfg.delete_topic_enable) return RB_TOPIC_DELETION_DISABLED;
    /* the coordinator keeps the logs of its internal topic open */
    if (len == strlen(CG_OFFSETS_TOPIC) && !memcmp(name, CG_OFFSETS_TOPIC, len)) return RB_INVALID_REQUEST;
    pthread_rwlock_wrlock(&b->b_topics_lock);
    bk_topic_t *t = bk_topic_find(b, name, len);
    if (!t) {
        pthread_rwlock_unlock(&b->b_topics_lock);
        return RB_UNKNOWN_TOPIC_OR_PARTITION;
    }
    /* B2: the catalog first, then the directories */
    int rc = bk_catalog_write(b, NULL, t);
    if (rc) {
        pthread_rwlock_unlock(&b->b_topics_lock);
        return rc;
    }
    bk_topics_unlink(b, t);
    if (id_out) *id_out = t->t_id;
    for (int32_t i = 0; i < t->t_npartitions; i++) {
        bk_fetch_wake_all(t->t_parts[i]);
        if (t->t_parts[i]->p_log) st_log_delete(t->t_parts[i]->p_log);
        t->t_parts[i]->p_log = NULL;
    }
    pthread_rwlock_unlock(&b->b_topics_lock);
    rb_info("deleted topic %s", t->t_name);
    bk_topic_free(t);
    return 0;
}

/* ---- start-up ------------------------------------------------------------------------------ */

static int bk_meta_load(bk_broker_t *b) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/meta.properties", st_mgr_dir(b->b_mgrs[0]));
    char *text = NULL;
    if (rb_read_file(path, &text, NULL) == 0) {
        const char *cid = strstr(text, "cluster.id=");
        const char *nid = strstr(text, "node.id=");
        if (cid) {
            cid += 11;
            size_t l = strcspn(cid, "\r\n");
            snprintf(b->b_cluster_id, sizeof(b->b_cluster_id), "%.*s", (int)RB_MIN(l, 31), cid);
        }
        if (nid && atoi(nid + 8) != (int)b->b_cfg.node_id) {
            rb_error("%s says node.id=%d but the configuration says %lld", path, atoi(nid + 8),
                     (long long)b->b_cfg.node_id);
            free(text);
            return -1;
        }
        free(text);
        if (b->b_cluster_id[0]) return 0;
    }
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    kp_uuid_t u;
    bk_uuid_random(&u);
    for (int i = 0; i < 22; i++) b->b_cluster_id[i] = b64[(u.b[(i * 6) / 8] >> (i % 4)) & 63];
    b->b_cluster_id[22] = 0;
    char body[256];
    int n = snprintf(body, sizeof(body), "#Rill broker identity\nversion=1\ncluster.id=%s\nnode.id=%lld\n",
                     b->b_cluster_id, (long long)b->b_cfg.node_id);
    int rc = rb_write_file_atomic(path, body, (size_t)n);
    if (rc) {
        rb_error("cannot write %s: %s", path, strerror(-rc));
        return -1;
    }
    return 0;
}

typedef struct {
    bk_broker_t *b;
} bk_orphan_ctx_t;

static void bk_orphan_cb(void *ctx, const char *topic, int32_t partition) {
    bk_orphan_ctx_t *o = ctx;
    bk_topic_t *t = bk_topic_find(o->b, topic, strlen(topic));
    if (!t || partition >= t->t_npartitions)
        rb_warn("partition directory %s-%d is not in the topic catalog; left alone", topic, partition);
}

int bk_topics_load(bk_broker_t *b) {
    if (bk_meta_load(b) < 0) return -1;
    char *path = bk_catalog_path(b);
    char *text = NULL;
    int rc = rb_read_file(path, &text, NULL);
    free(path);
    if (rc == -ENOENT) return 0;
    if (rc) {
        rb_error("cannot read the topic catalog: %s", strerror(-rc));
        return -1;
    }
    int lineno = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        if (line[0] == '#' || !line[0]) continue;
        char *ts = NULL;
        char *kw = strtok_r(line, " ", &ts), *name = strtok_r(NULL, " ", &ts), *id = strtok_r(NULL, " ", &ts),
             *np = strtok_r(NULL, " ", &ts);
        kp_uuid_t uid;
        if (!kw || strcmp(kw, "topic") || !name || !id || !np || bk_uuid_parse(id, &uid) || atoi(np) < 1 ||
            !bk_topic_name_valid(name, strlen(name))) {
            rb_error("topic catalog line %d is malformed", lineno);
            free(text);
            return -1;
        }
        bk_topic_t *t = bk_topic_new(name, strlen(name), atoi(np));
        t->t_id = uid;
        for (char *kv = strtok_r(NULL, " ", &ts); kv && t->t_configs.n < BK_MAX_TOPIC_CONFIGS;
             kv = strtok_r(NULL, " ", &ts)) {
            char *eq = strchr(kv, '=');
            if (!eq) continue;
            *eq = 0;
            t->t_configs.names[t->t_configs.n] = strdup(kv);
            t->t_configs.values[t->t_configs.n] = bk_pct_decode(eq + 1);
            t->t_configs.n++;
        }
        char msg[256];
        if (bk_topic_configs_apply(b, &t->t_configs, &t->t_logcfg, &t->t_max_message_bytes, msg, sizeof(msg))) {
            rb_warn("topic %s: stored config rejected (%s); overrides dropped, using defaults", name, msg);
            bk_topic_configs_t none = {0};
            bk_topic_configs_apply(b, &none, &t->t_logcfg, &t->t_max_message_bytes, msg, sizeof(msg));
            bk_topic_configs_free(&t->t_configs);
        }
        bk_topic_configs_extra(b, &t->t_configs, &t->t_codec, &t->t_ts_diff_max_ms);
        if (bk_topic_open_logs(b, t)) {
            bk_topic_free(t);
            free(text);
            return -1;
        }
        bk_topics_insert(b, t);
    }
    free(text);
    bk_orphan_ctx_t o = {b};
    for (int i = 0; i < b->b_nmgrs; i++) st_mgr_list(b->b_mgrs[i], bk_orphan_cb, &o);
    rb_info("loaded %zu topic(s)", b->b_ntopics);
    return 0;
}

void bk_topics_close(bk_broker_t *b) {
    pthread_rwlock_wrlock(&b->b_topics_lock);
    for (size_t i = 0; i < b->b_ntopic_buckets; i++) {
        bk_topic_t *t = b->b_topic_buckets[i];
        while (t) {
            bk_topic_t *next = t->t_next;
            for (int32_t k = 0; k < t->t_npartitions; k++)
                if (t->t_parts[k]->p_log) st_log_close(t->t_parts[k]->p_log);
            bk_topic_free(t);
            t = next;
        }
    }
    free(b->b_topic_buckets);
    free(b->b_topic_id_buckets);
    b->b_topic_buckets = NULL;
    b->b_topic_id_buckets = NULL;
    b->b_ntopic_buckets = 0;
    b->b_ntopics = 0;
    pthread_rwlock_unlock(&b->b_topics_lock);
}
