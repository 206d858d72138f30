/*
 * configs.c — configs as clients see them: DescribeConfigs (api 32),
 * AlterConfigs (33) and IncrementalAlterConfigs (44) for topics (resource
 * type 2) and the broker (type 4), the describe metadata of every topic
 * config (Kafka type, broker synonym, documentation), and the dynamic broker
 * configs with their durable file.
 *
 * Dynamic broker configs come at two levels, as in Kafka: the cluster
 * default (resource name "") and this node (resource name = node.id). The
 * value in effect for a setting is: node override, else cluster default,
 * else the static value (file / command line), else the built-in default.
 * Only Kafka's dynamically updatable (cluster-wide) log settings are
 * alterable here; every other setting describes as read_only.
 *
 * Invariants:
 *   C1  A change is durable before it is in effect: the topic catalog (topic
 *       configs) or `<first log dir>/rill-broker-configs` (broker configs,
 *       written tmp + fsync + rename + dir fsync) is replaced first; if that
 *       fails the change is answered KAFKA_STORAGE_ERROR and nothing changes.
 *   C2  The effective broker settings (b_cfg) and every topic's derived
 *       settings change under the topics write lock; readers of b_cfg's
 *       dynamic fields hold the read lock (bk_topic_configs_apply callers).
 *   C3  validate_only runs every check of the real change and changes nothing.
 *
 * File format (one setting per line; values %-encoded as in the catalog):
 *   default <name>=<value>      cluster-wide default
 *   node <name>=<value>         this node
 */
#include "broker/broker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

/* Kafka's ConfigSource and ConfigType numbers (DescribeConfigs v1+ / v3+) */
enum {
    BK_SRC_TOPIC = 1,
    BK_SRC_DYNAMIC_BROKER = 2,
    BK_SRC_DYNAMIC_DEFAULT = 3,
    BK_SRC_STATIC = 4,
    BK_SRC_DEFAULT = 5,
};
enum { BK_CT_BOOLEAN = 1, BK_CT_STRING = 2, BK_CT_INT = 3, BK_CT_LONG = 5, BK_CT_DOUBLE = 6, BK_CT_LIST = 7 };
enum { BK_RES_TOPIC = 2, BK_RES_BROKER = 4 };
enum { BK_OP_SET = 0, BK_OP_DELETE = 1, BK_OP_APPEND = 2, BK_OP_SUBTRACT = 3 };

/* Every topic config: its broker synonym (whose value is the topic's default
 * when rilld has that setting, else `def`), Kafka type and documentation.
 * The names match bk_topic_config_defs (topics.c), which validates values. */
static const struct {
    const char *name, *synonym;
    int8_t type;
    const char *def, *doc;
} bk_tcmeta[] = {
    {"cleanup.policy", "log.cleanup.policy", BK_CT_LIST, "delete",
     "delete: old segments are removed by retention; compact: the latest record of each key is kept"},
    {"compression.type", "compression.type", BK_CT_STRING, "producer",
     "Codec of stored batches: producer keeps the producer's codec, else the broker recompresses"},
    {"delete.retention.ms", "log.cleaner.delete.retention.ms", BK_CT_LONG, "86400000",
     "How long tombstones are kept on compacted topics"},
    {"file.delete.delay.ms", "log.segment.delete.delay.ms", BK_CT_LONG, "60000",
     "Delay before a deleted segment's files are removed"},
    {"flush.messages", "log.flush.interval.messages", BK_CT_LONG, NULL,
     "Force an fsync after this many unsynced records"},
    {"flush.ms", "log.flush.interval.ms", BK_CT_LONG, NULL, "Force an fsync when unsynced data is this old"},
    {"follower.replication.throttled.replicas", NULL, BK_CT_LIST, "",
     "Replicas throttled on the follower side (no replication on a single node)"},
    {"index.interval.bytes", "log.index.interval.bytes", BK_CT_INT, NULL,
     "Bytes of log between two offset-index entries"},
    {"leader.replication.throttled.replicas", NULL, BK_CT_LIST, "",
     "Replicas throttled on the leader side (no replication on a single node)"},
    {"max.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms", BK_CT_LONG, "9223372036854775807",
     "Longest a record stays ineligible for compaction"},
    {"max.message.bytes", "message.max.bytes", BK_CT_INT, NULL, "Largest record batch the topic accepts"},
    {"message.downconversion.enable", "log.message.downconversion.enable", BK_CT_BOOLEAN, "true",
     "Down-conversion for old fetch versions (rilld serves record batch v2 only)"},
    {"message.timestamp.difference.max.ms", "log.message.timestamp.difference.max.ms", BK_CT_LONG, NULL,
     "Largest difference between a CreateTime record timestamp and the broker's clock"},
    {"message.timestamp.type", "log.message.timestamp.type", BK_CT_STRING, NULL,
     "CreateTime keeps the producer's timestamps; LogAppendTime stamps batches with the broker's clock"},
    {"min.cleanable.dirty.ratio", "log.cleaner.min.cleanable.ratio", BK_CT_DOUBLE, "0.5",
     "Dirty share of the log above which the cleaner compacts it"},
    {"min.compaction.lag.ms", "log.cleaner.min.compaction.lag.ms", BK_CT_LONG, "0",
     "Shortest time a record stays uncompacted"},
    {"min.insync.replicas", "min.insync.replicas", BK_CT_INT, "1",
     "Replicas that must acknowledge acks=all (a single node has one)"},
    {"preallocate", "log.preallocate", BK_CT_BOOLEAN, "false", "Preallocate segment files"},
    {"retention.bytes", "log.retention.bytes", BK_CT_LONG, NULL,
     "Delete the oldest segments while a partition stays at least this big without them (-1: no limit)"},
    {"retention.ms", "log.retention.ms", BK_CT_LONG, NULL,
     "Delete a segment once its newest record is this old (-1: never)"},
    {"segment.bytes", "log.segment.bytes", BK_CT_INT, NULL, "Segment file size before a roll"},
    {"segment.index.bytes", "log.index.size.max.bytes", BK_CT_INT, NULL,
     "Maximum size of one offset index; the segment rolls when it is full"},
    {"segment.jitter.ms", "log.roll.jitter.ms", BK_CT_LONG, "0", "Random jitter subtracted from segment.ms"},
    {"segment.ms", "log.roll.ms", BK_CT_LONG, NULL, "Roll a segment this long after its first record"},
    {"unclean.leader.election.enable", "unclean.leader.election.enable", BK_CT_BOOLEAN, "false",
     "Elect out-of-sync replicas (no replication on a single node)"},
};

/* Broker settings Kafka updates dynamically cluster-wide that rilld has, with
 * their value ranges (INT) or choices (STRING). */
static const struct {
    const char *name;
    int64_t min, max;
    const char *choices; /* '|'-separated, STRING settings */
} bk_dynamic[] = {
    {"compression.type", 0, 0, "producer|uncompressed|gzip|snappy|lz4|zstd"},
    {"log.cleanup.policy", 0, 0, "delete|compact|compact,delete|delete,compact"},
    {"log.flush.interval.messages", 1, INT64_MAX, NULL},
    {"log.flush.interval.ms", 0, INT64_MAX, NULL},
    {"log.index.interval.bytes", 0, INT32_MAX, NULL},
    {"log.index.size.max.bytes", 4, INT32_MAX, NULL},
    {"log.message.timestamp.difference.max.ms", 0, INT64_MAX, NULL},
    {"log.message.timestamp.type", 0, 0, "CreateTime|LogAppendTime"},
    {"log.retention.bytes", -1, INT64_MAX, NULL},
    {"log.retention.ms", -1, INT64_MAX, NULL},
    {"log.roll.ms", 1, INT64_MAX, NULL},
    {"log.segment.bytes", 14, INT32_MAX, NULL},
    {"message.max.bytes", 0, INT32_MAX, NULL},
};

typedef struct bk_dyncfg {
    bk_topic_configs_t dflt;  /* cluster default level */
    bk_topic_configs_t node;  /* this node's level */
    char **static_str;        /* per bk_config_desc(i): the static value */
    int64_t *static_val;
    bool *static_set;         /* given in the file or on the command line */
} bk_dyncfg_t;

static int bk_dynamic_index(const char *name) {
    for (size_t i = 0; i < RB_ARRAY_LEN(bk_dynamic); i++)
        if (!strcmp(bk_dynamic[i].name, name)) return (int)i;
    return -1;
}

static const char *bk_cfgs_get(const bk_topic_configs_t *c, const char *name) {
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->names[i], name)) return c->values[i];
    return NULL;
}

/* ---- topic settings outside st_log_config_t ------------------------------------------- */

static int8_t bk_codec_of(const char *v) {
    if (!strcmp(v, "uncompressed")) return KP_COMP_NONE;
    if (!strcmp(v, "gzip")) return KP_COMP_GZIP;
    if (!strcmp(v, "snappy")) return KP_COMP_SNAPPY;
    if (!strcmp(v, "lz4")) return KP_COMP_LZ4;
    if (!strcmp(v, "zstd")) return KP_COMP_ZSTD;
    return -1; /* producer */
}

void bk_topic_configs_extra(bk_broker_t *b, const bk_topic_configs_t *c, int8_t *codec, int64_t *ts_diff_max_ms) {
    const char *v = bk_cfgs_get(c, "compression.type");
    *codec = bk_codec_of(v ? v : b->b_cfg.compression_type_str);
    v = bk_cfgs_get(c, "message.timestamp.difference.max.ms");
    *ts_diff_max_ms = v ? strtoll(v, NULL, 10) : b->b_cfg.log_message_timestamp_difference_max_ms;
}

/* ---- dynamic broker configs: effective values and the file ------------------------------ */

static char *bk_dyncfg_path(bk_broker_t *b) {
    char *p = NULL;
    if (asprintf(&p, "%s/rill-broker-configs", st_mgr_dir(b->b_mgrs[0])) < 0) abort();
    return p;
}

/* Sets b_cfg's value of setting d to v (already validated), or back to the
 * static value when v is NULL. Write lock held (C2). */
static void bk_dyncfg_set_effective(bk_broker_t *b, int i, const char *v) {
    const bk_cfg_desc_t *d = bk_config_desc(i);
    bk_dyncfg_t *dy = b->b_dyn;
    char **sp = &BK_CFG_STR(&b->b_cfg, d);
    free(*sp);
    if (!v) {
        *sp = strdup(dy->static_str[i]);
        BK_CFG_VAL(&b->b_cfg, d) = dy->static_val[i];
        return;
    }
    *sp = strdup(v);
    if (d->type == BK_CFG_INT) BK_CFG_VAL(&b->b_cfg, d) = strtoll(v, NULL, 10);
    else if (d->type == BK_CFG_BOOL) BK_CFG_VAL(&b->b_cfg, d) = !strcmp(v, "true");
}

/* Recomputes every dynamic setting's value in effect. Write lock held. */
static void bk_dyncfg_recompute(bk_broker_t *b) {
    for (size_t k = 0; k < RB_ARRAY_LEN(bk_dynamic); k++) {
        const bk_cfg_desc_t *d = bk_config_find(bk_dynamic[k].name);
        if (!d) continue;
        int i = (int)(d - bk_config_desc(0));
        const char *v = bk_cfgs_get(&b->b_dyn->node, d->name);
        if (!v) v = bk_cfgs_get(&b->b_dyn->dflt, d->name);
        bk_dyncfg_set_effective(b, i, v);
    }
}

static int bk_dyncfg_write(bk_broker_t *b, const bk_topic_configs_t *dflt, const bk_topic_configs_t *node) {
    rb_buf_t buf;
    rb_buf_init(&buf);
    rb_buf_printf(&buf, "# rill dynamic broker configs v1: default|node <name>=<value>\n");
    for (int lvl = 0; lvl < 2; lvl++) {
        const bk_topic_configs_t *c = lvl ? node : dflt;
        for (int i = 0; i < c->n; i++) {
            rb_buf_printf(&buf, "%s %s=", lvl ? "node" : "default", c->names[i]);
            bk_pct_encode(&buf, c->values[i]);
            rb_buf_u8(&buf, '\n');
        }
    }
    char *path = bk_dyncfg_path(b);
    int rc = rb_failpoint("bk.configs.write");
    rc = rc ? -rc : rb_write_file_atomic(path, buf.p, buf.len);
    if (rc) rb_error("cannot write %s: %s", path, strerror(-rc));
    free(path);
    rb_buf_free(&buf);
    return rc ? RB_KAFKA_STORAGE_ERROR : 0;
}

/* Checks one broker setting change. 0, INVALID_CONFIG (unknown name, bad
 * value) or INVALID_REQUEST (not dynamically updatable), with a message. */
static int bk_broker_value_check(const char *name, const char *v, char *msg, size_t msz) {
    const bk_cfg_desc_t *d = bk_config_find(name);
    if (!d) {
        snprintf(msg, msz, "Unknown broker config name: %s", name);
        return RB_INVALID_CONFIG;
    }
    int k = bk_dynamic_index(d->name);
    if (k < 0) {
        snprintf(msg, msz, "Cannot update these configs dynamically: %s", name);
        return RB_INVALID_REQUEST;
    }
    if (!v) return 0;
    if (bk_dynamic[k].choices) {
        if (!bk_enum_has(bk_dynamic[k].choices, v)) {
            snprintf(msg, msz, "Invalid value %s for configuration %s: must be one of %s", v, name,
                     bk_dynamic[k].choices);
            return RB_INVALID_CONFIG;
        }
        return 0;
    }
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || !*v || *end || x < bk_dynamic[k].min || x > bk_dynamic[k].max) {
        snprintf(msg, msz, "Invalid value %s for configuration %s: must be an integer in [%lld, %lld]", v, name,
                 (long long)bk_dynamic[k].min, (long long)bk_dynamic[k].max);
        return RB_INVALID_CONFIG;
    }
    return 0;
}

static void bk_cfgs_put(bk_topic_configs_t *c, const char *name, const char *v) {
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->names[i], name)) {
            free(c->values[i]);
            c->values[i] = strdup(v);
            return;
        }
    if (c->n >= BK_MAX_TOPIC_CONFIGS) return; /* callers check room first */
    c->names[c->n] = strdup(name);
    c->values[c->n] = strdup(v);
    c->n++;
}

static void bk_cfgs_del(bk_topic_configs_t *c, const char *name) {
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->names[i], name)) {
            free(c->names[i]);
            free(c->values[i]);
            c->names[i] = c->names[c->n - 1];
            c->values[i] = c->values[c->n - 1];
            c->n--;
            return;
        }
}

int bk_dyncfg_load(bk_broker_t *b) {
    bk_dyncfg_t *dy = calloc(1, sizeof(*dy));
    int n = bk_config_ndescs();
    dy->static_str = calloc((size_t)n, sizeof(char *));
    dy->static_val = calloc((size_t)n, sizeof(int64_t));
    dy->static_set = calloc((size_t)n, sizeof(bool));
    if (!dy || !dy->static_str || !dy->static_val || !dy->static_set) abort();
    for (int i = 0; i < n; i++) {
        const bk_cfg_desc_t *d = bk_config_desc(i);
        dy->static_str[i] = strdup(BK_CFG_STR(&b->b_cfg, d));
        dy->static_val[i] = BK_CFG_VAL(&b->b_cfg, d);
        /* set in the file or on the command line, or derived (log.retention.ms from .hours) */
        dy->static_set[i] = strcmp(dy->static_str[i], d->def) != 0 ||
                            (d->type == BK_CFG_INT && dy->static_val[i] != strtoll(d->def, NULL, 10));
    }
    dy->static_set[bk_config_find("log.roll.ms") - bk_config_desc(0)] |= b->b_cfg.log_roll_ms_set;
    dy->static_set[bk_config_find("log.retention.ms") - bk_config_desc(0)] |= b->b_cfg.log_retention_ms_set;
    b->b_dyn = dy;
    char *path = bk_dyncfg_path(b);
    char *text = NULL;
    int rc = rb_read_file(path, &text, NULL);
    if (rc == -ENOENT) {
        free(path);
        return 0;
    }
    if (rc) {
        rb_error("cannot read %s: %s", path, strerror(-rc));
        free(path);
        return -1;
    }
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#' || !line[0]) continue;
        char *sp = strchr(line, ' ');
        char *eq = sp ? strchr(sp, '=') : NULL;
        if (!sp || !eq) {
            rb_warn("%s: malformed line ignored", path);
            continue;
        }
        *sp = 0;
        *eq = 0;
        char *v = bk_pct_decode(eq + 1), msg[256];
        bool node = !strcmp(line, "node");
        if ((!node && strcmp(line, "default")) || bk_broker_value_check(sp + 1, v, msg, sizeof(msg))) {
            rb_warn("%s: setting %s=%s ignored (%s)", path, sp + 1, v, node || !strcmp(line, "default") ? msg
                                                                                                    : "bad level");
        } else {
            bk_cfgs_put(node ? &dy->node : &dy->dflt, sp + 1, v);
        }
        free(v);
    }
    free(text);
    free(path);
    bk_dyncfg_recompute(b);
    if (dy->dflt.n + dy->node.n) rb_info("applied %d dynamic broker config(s)", dy->dflt.n + dy->node.n);
    return 0;
}

void bk_dyncfg_free(bk_broker_t *b) {
    bk_dyncfg_t *dy = b->b_dyn;
    if (!dy) return;
    for (int i = 0; i < bk_config_ndescs(); i++) free(dy->static_str[i]);
    free(dy->static_str);
    free(dy->static_val);
    free(dy->static_set);
    bk_topic_configs_free(&dy->dflt);
    bk_topic_configs_free(&dy->node);
    free(dy);
    b->b_dyn = NULL;
}

/* ---- DescribeConfigs ---------------------------------------------------------------------- */

typedef kp_describe_configs_resp_describe_configs_resource_result_t bk_dc_entry_t;
typedef kp_describe_configs_resp_describe_configs_synonym_t bk_dc_syn_t;

typedef struct {
    bk_req_t *r;
    int16_t ver;
    bool synonyms, docs;
    const kp_describe_configs_req_describe_configs_resource_t *res;
    bk_dc_entry_t *v;
    int32_t n, cap;
} bk_dc_t;

static bool bk_dc_wanted(const bk_dc_t *dc, const char *name) {
    if (dc->res->configuration_keys.n < 0) return true;
    for (int32_t i = 0; i < dc->res->configuration_keys.n; i++) {
        kp_str_t k = dc->res->configuration_keys.v[i];
        if (k.len >= 0 && (size_t)k.len == strlen(name) && !memcmp(k.p, name, (size_t)k.len)) return true;
    }
    return false;
}

static bk_dc_entry_t *bk_dc_add(bk_dc_t *dc, const char *name, const char *value, int8_t source, bool read_only,
                                int8_t type, const char *doc) {
    if (dc->n == dc->cap) {
        int32_t nc = dc->cap ? dc->cap * 2 : 64;
        bk_dc_entry_t *nv = bk_arena_alloc_or_die(&dc->r->r_arena, sizeof(*nv) * (size_t)nc);
        if (dc->n) memcpy(nv, dc->v, sizeof(*nv) * (size_t)dc->n);
        dc->v = nv;
        dc->cap = nc;
    }
    bk_dc_entry_t *e = &dc->v[dc->n++];
    kp_init_defaults(&kp_describe_configs_resp_describe_configs_resource_result_desc, e);
    e->name = bk_str(dc->r, name);
    e->value = bk_str(dc->r, value);
    e->read_only = read_only;
    e->is_default = source == BK_SRC_DEFAULT;
    e->config_source = source;
    e->is_sensitive = false;
    e->config_type = type;
    e->documentation = dc->docs && doc ? bk_str(dc->r, doc) : bk_str(dc->r, NULL);
    e->synonyms.n = 0;
    e->synonyms.v = NULL;
    return e;
}

static void bk_dc_syn(bk_dc_t *dc, bk_dc_entry_t *e, const char *name, const char *value, int8_t source) {
    if (!dc->synonyms || dc->ver < 1) return;
    bk_dc_syn_t *nv = bk_arena_alloc_or_die(&dc->r->r_arena, sizeof(*nv) * (size_t)(e->synonyms.n + 1));
    if (e->synonyms.n) memcpy(nv, e->synonyms.v, sizeof(*nv) * (size_t)e->synonyms.n);
    nv[e->synonyms.n].name = bk_str(dc->r, name);
    nv[e->synonyms.n].value = bk_str(dc->r, value);
    nv[e->synonyms.n].source = source;
    e->synonyms.v = nv;
    e->synonyms.n++;
}

static int8_t bk_cfg_kafka_type(const bk_cfg_desc_t *d) {
    return d->type == BK_CFG_INT ? BK_CT_LONG : d->type == BK_CFG_BOOL ? BK_CT_BOOLEAN : BK_CT_STRING;
}

/* The value in effect of broker setting i as text (derived values such as
 * log.retention.ms from log.retention.hours included). */
static const char *bk_cfg_effective(bk_broker_t *b, int i, char *buf, size_t n) {
    const bk_cfg_desc_t *d = bk_config_desc(i);
    if (d->type != BK_CFG_INT) return BK_CFG_STR(&b->b_cfg, d);
    snprintf(buf, n, "%lld", (long long)BK_CFG_VAL(&b->b_cfg, d));
    return buf;
}

/* Adds the broker-level chain of setting i (node, cluster default, static,
 * default) as synonyms of e, and returns the source of the value in effect. */
static int8_t bk_dc_broker_chain(bk_dc_t *dc, bk_dc_entry_t *e, int i) {
    bk_broker_t *b = dc->r->r_broker;
    const bk_cfg_desc_t *d = bk_config_desc(i);
    int8_t src = BK_SRC_DEFAULT;
    const char *v;
    if ((v = bk_cfgs_get(&b->b_dyn->node, d->name))) {
        if (e) bk_dc_syn(dc, e, d->name, v, BK_SRC_DYNAMIC_BROKER);
        src = BK_SRC_DYNAMIC_BROKER;
    }
    if ((v = bk_cfgs_get(&b->b_dyn->dflt, d->name))) {
        if (e) bk_dc_syn(dc, e, d->name, v, BK_SRC_DYNAMIC_DEFAULT);
        if (src == BK_SRC_DEFAULT) src = BK_SRC_DYNAMIC_DEFAULT;
    }
    if (b->b_dyn->static_set[i]) {
        char buf[32];
        const char *sv = b->b_dyn->static_str[i];
        if (d->type == BK_CFG_INT) {
            snprintf(buf, sizeof(buf), "%lld", (long long)b->b_dyn->static_val[i]);
            sv = buf;
        }
        if (e) bk_dc_syn(dc, e, d->name, sv, BK_SRC_STATIC);
        if (src == BK_SRC_DEFAULT) src = BK_SRC_STATIC;
    }
    if (e) bk_dc_syn(dc, e, d->name, d->def, BK_SRC_DEFAULT);
    return src;
}

static void bk_dc_topic(bk_dc_t *dc, const bk_topic_t *t) {
    bk_broker_t *b = dc->r->r_broker;
    for (size_t k = 0; k < RB_ARRAY_LEN(bk_tcmeta); k++) {
        const char *name = bk_tcmeta[k].name;
        if (!bk_dc_wanted(dc, name)) continue;
        const char *ov = bk_cfgs_get(&t->t_configs, name);
        const bk_cfg_desc_t *bd = bk_tcmeta[k].synonym ? bk_config_find(bk_tcmeta[k].synonym) : NULL;
        int bi = bd ? (int)(bd - bk_config_desc(0)) : -1;
        char buf[32];
        const char *v = ov ? ov : bi >= 0 ? bk_cfg_effective(b, bi, buf, sizeof(buf)) : bk_tcmeta[k].def;
        bk_dc_entry_t *e = bk_dc_add(dc, name, v, BK_SRC_DEFAULT, false, bk_tcmeta[k].type, bk_tcmeta[k].doc);
        if (ov) bk_dc_syn(dc, e, name, ov, BK_SRC_TOPIC);
        int8_t src = BK_SRC_DEFAULT;
        if (bi >= 0) src = bk_dc_broker_chain(dc, e, bi);
        else if (bk_tcmeta[k].synonym) bk_dc_syn(dc, e, bk_tcmeta[k].synonym, bk_tcmeta[k].def, BK_SRC_DEFAULT);
        else bk_dc_syn(dc, e, name, bk_tcmeta[k].def, BK_SRC_DEFAULT);
        e->config_source = ov ? BK_SRC_TOPIC : src;
        e->is_default = e->config_source == BK_SRC_DEFAULT;
    }
}

static void bk_dc_broker(bk_dc_t *dc, bool cluster_default) {
    bk_broker_t *b = dc->r->r_broker;
    for (int i = 0; i < bk_config_ndescs(); i++) {
        const bk_cfg_desc_t *d = bk_config_desc(i);
        if (!bk_dc_wanted(dc, d->name)) continue;
        bool ro = bk_dynamic_index(d->name) < 0;
        if (cluster_default) { /* Kafka lists only the cluster-wide dynamic values */
            const char *v = bk_cfgs_get(&b->b_dyn->dflt, d->name);
            if (!v) continue;
            bk_dc_entry_t *e = bk_dc_add(dc, d->name, v, BK_SRC_DYNAMIC_DEFAULT, ro, bk_cfg_kafka_type(d), d->doc);
            bk_dc_syn(dc, e, d->name, v, BK_SRC_DYNAMIC_DEFAULT);
            continue;
        }
        char buf[32];
        bk_dc_entry_t *e = bk_dc_add(dc, d->name, bk_cfg_effective(b, i, buf, sizeof(buf)), BK_SRC_DEFAULT, ro,
                                     bk_cfg_kafka_type(d), d->doc);
        e->config_source = bk_dc_broker_chain(dc, e, i);
        e->is_default = e->config_source == BK_SRC_DEFAULT;
    }
}

/* node.id as text, for broker resource names */
static bool bk_is_this_node(bk_broker_t *b, kp_str_t name) {
    char id[24];
    int n = snprintf(id, sizeof(id), "%d", b->b_node_id);
    return name.len == n && !memcmp(name.p, id, (size_t)n);
}

void bk_handle_describe_configs(bk_req_t *r) {
    bk_broker_t *b = r->r_broker;
    kp_describe_configs_req_t *req = r->r_body;
    kp_describe_configs_resp_t *resp = bk_req_resp_new(r);
    int16_t ver = r->r_hdr.api_version;
    int32_t nres = req->resources.n < 0 ? 0 : req->resources.n;
    BK_ALLOC_ARR(r, resp->results, nres);
    pthread_rwlock_rdlock(&b->b_topics_lock);
    for (int32_t i = 0; i < nres; i++) {
        const kp_describe_configs_req_describe_configs_resource_t *res = &req->resources.v[i];
        kp_describe_configs_resp_describe_configs_result_t *out = &resp->results.v[i];
        kp_init_defaults(&kp_describe_configs_resp_describe_configs_result_desc, out);
        out->resource_type = res->resource_type;
        out->resource_name = res->resource_name;
        out->error_message = bk_str(r, NULL);
        /* include_synonyms exists from v1; v0 answers never carry synonyms */
        bk_dc_t dc = {r, ver, ver >= 1 && req->include_synonyms, ver >= 3 && req->include_documentation, res,
                      NULL, 0, 0};
        char msg[300] = "";
        int err = 0;
        kp_str_t nm = res->resource_name;
        if (res->resource_type == BK_RES_TOPIC) {
            bk_topic_t *t = nm.len > 0 ? bk_topic_find(b, nm.p, (size_t)nm.len) : NULL;
            if (!t) {
                err = RB_UNKNOWN_TOPIC_OR_PARTITION;
                snprintf(msg, sizeof(msg), "Topic %.*s does not exist.", nm.len < 0 ? 0 : (int)RB_MIN(nm.len, 250),
                         nm.p);
            } else {
                bk_dc_topic(&dc, t);
            }
        } else if (res->resource_type == BK_RES_BROKER) {
            if (nm.len == 0) bk_dc_broker(&dc, true);
            else if (bk_is_this_node(b, nm)) bk_dc_broker(&dc, false);
            else {
                err = RB_INVALID_REQUEST;
                snprintf(msg, sizeof(msg), "Unexpected broker id, expected %d or empty string, but received %.*s",
                         b->b_node_id, nm.len < 0 ? 0 : (int)RB_MIN(nm.len, 100), nm.p);
            }
        } else {
            err = RB_INVALID_REQUEST;
            snprintf(msg, sizeof(msg), "Unsupported resource type %d", res->resource_type);
        }
        out->error_code = (int16_t)err;
        if (err) out->error_message = bk_str(r, msg);
        out->configs.n = dc.n;
        out->configs.v = dc.v;
    }
    pthread_rwlock_unlock(&b->b_topics_lock);
    bk_req_respond(r, resp);
}

/* ---- AlterConfigs / IncrementalAlterConfigs ------------------------------------------------- */

/* One config operation of a request, whichever API it came in. */
typedef struct {
    kp_str_t name, value;
    int8_t op;
} bk_cfg_op_t;

/* The built-in default of a list-typed topic config (what APPEND and
 * SUBTRACT start from without an override, as in Kafka), or NULL when name
 * is not a list config. */
static const char *bk_topic_list_default(const char *name) {
    for (size_t k = 0; k < RB_ARRAY_LEN(bk_tcmeta); k++)
        if (!strcmp(bk_tcmeta[k].name, name)) return bk_tcmeta[k].type == BK_CT_LIST ? bk_tcmeta[k].def : NULL;
    return NULL;
}

/* APPEND / SUBTRACT on a comma-separated list value. */
static char *bk_list_op(const char *cur, const char *items, bool append) {
    rb_buf_t out;
    rb_buf_init(&out);
    char *c = strdup(cur ? cur : ""), *add = strdup(items), *s1 = NULL, *s2 = NULL;
    for (char *x = strtok_r(c, ",", &s1); x; x = strtok_r(NULL, ",", &s1)) {
        bool drop = false;
        if (!append) {
            char *it = strdup(items);
            for (char *y = strtok_r(it, ",", &s2); y; y = strtok_r(NULL, ",", &s2)) drop |= !strcmp(x, y);
            free(it);
        }
        if (!drop) rb_buf_printf(&out, "%s%s", out.len ? "," : "", x);
    }
    if (append)
        for (char *y = strtok_r(add, ",", &s2); y; y = strtok_r(NULL, ",", &s2)) {
            bool have = false;
            char *cc = strdup(cur ? cur : ""), *s3 = NULL;
            for (char *x = strtok_r(cc, ",", &s3); x; x = strtok_r(NULL, ",", &s3)) have |= !strcmp(x, y);
            free(cc);
            if (!have) rb_buf_printf(&out, "%s%s", out.len ? "," : "", y);
        }
    free(c);
    free(add);
    rb_buf_u8(&out, 0);
    char *res = strdup((char *)out.p);
    rb_buf_free(&out);
    return res;
}

/* Builds the new set from cur and ops into *next. `incremental` false: the
 * set is replaced by the ops' values (AlterConfigs). 0 or an error + msg. */
static int bk_cfg_ops_apply(const bk_topic_configs_t *cur, const bk_cfg_op_t *ops, int32_t nops, bool incremental,
                            bool topic, bk_topic_configs_t *next, char *msg, size_t msz) {
    memset(next, 0, sizeof(*next));
    if (incremental) bk_topic_configs_copy(next, cur);
    for (int32_t i = 0; i < nops; i++)
        for (int32_t k = 0; k < i; k++)
            if (ops[i].name.len >= 0 && ops[k].name.len == ops[i].name.len &&
                !memcmp(ops[k].name.p, ops[i].name.p, (size_t)ops[i].name.len)) {
                snprintf(msg, msz, "Error due to duplicate config keys");
                return RB_INVALID_REQUEST;
            }
    for (int32_t i = 0; i < nops; i++) {
        if (ops[i].name.len <= 0) {
            snprintf(msg, msz, "Config name must not be empty");
            return RB_INVALID_CONFIG;
        }
        char *name = strndup(ops[i].name.p, (size_t)ops[i].name.len);
        char *val = ops[i].value.len >= 0 ? strndup(ops[i].value.p, (size_t)ops[i].value.len) : NULL;
        int rc = 0;
        switch (ops[i].op) {
        case BK_OP_SET:
            if (!val) {
                snprintf(msg, msz, "Null value not supported for : %s", name);
                rc = RB_INVALID_REQUEST;
            } else if (next->n >= BK_MAX_TOPIC_CONFIGS && !bk_cfgs_get(next, name)) {
                snprintf(msg, msz, "Too many configs");
                rc = RB_INVALID_CONFIG;
            } else {
                bk_cfgs_put(next, name, val);
            }
            break;
        case BK_OP_DELETE: bk_cfgs_del(next, name); break;
        case BK_OP_APPEND:
        case BK_OP_SUBTRACT:
            if (!topic || !bk_topic_list_default(name)) {
                snprintf(msg, msz, "Config value append or subtract is not allowed for config key: %s", name);
                rc = RB_INVALID_CONFIG;
            } else if (!val) {
                snprintf(msg, msz, "Null value not supported for : %s", name);
                rc = RB_INVALID_REQUEST;
            } else if (next->n >= BK_MAX_TOPIC_CONFIGS && !bk_cfgs_get(next, name)) {
                snprintf(msg, msz, "Too many configs");
                rc = RB_INVALID_CONFIG;
            } else {
                const char *c = bk_cfgs_get(next, name);
                if (!c) c = bk_topic_list_default(name);
                char *nv = bk_list_op(c, val, ops[i].op == BK_OP_APPEND);
                bk_cfgs_put(next, name, nv);
                free(nv);
            }
            break;
        default:
            snprintf(msg, msz, "Unknown config operation %d for %s", ops[i].op, name);
            rc = RB_INVALID_REQUEST;
        }
        free(name);
        free(val);
        if (rc) return rc;
    }
    return 0;
}

static int bk_alter_topic(bk_broker_t *b, kp_str_t nm, const bk_cfg_op_t *ops, int32_t nops, bool incremental,
                          bool validate_only, char *msg, size_t msz) {
    bk_topic_configs_t cur = {0}, next = {0};
    pthread_rwlock_rdlock(&b->b_topics_lock);
    bk_topic_t *t = nm.len > 0 ? bk_topic_find(b, nm.p, (size_t)nm.len) : NULL;
    if (t) bk_topic_configs_copy(&cur, &t->t_configs);
    pthread_rwlock_unlock(&b->b_topics_lock);
    if (!t) {
        snprintf(msg, msz, "Topic %.*s does not exist.", nm.len < 0 ? 0 : (int)RB_MIN(nm.len, 250), nm.p);
        return RB_UNKNOWN_TOPIC_OR_PARTITION;
    }
    int rc = bk_cfg_ops_apply(&cur, ops, nops, incremental, true, &next, msg, msz);
    for (int32_t i = 0; i < nops && !rc; i++) { /* DELETE of a name we do not know is an error too */
        size_t k;
        for (k = 0; k < RB_ARRAY_LEN(bk_tcmeta); k++)
            if (ops[i].name.len >= 0 && (size_t)ops[i].name.len == strlen(bk_tcmeta[k].name) &&
                !memcmp(ops[i].name.p, bk_tcmeta[k].name, (size_t)ops[i].name.len))
                break;
        if (k == RB_ARRAY_LEN(bk_tcmeta)) {
            snprintf(msg, msz, "Unknown topic config name: %.*s", (int)RB_MIN(ops[i].name.len, 200), ops[i].name.p);
            rc = RB_INVALID_CONFIG;
        }
    }
    if (!rc) {
        st_log_config_t lc;
        int64_t max_msg;
        pthread_rwlock_rdlock(&b->b_topics_lock);
        rc = bk_topic_configs_apply(b, &next, &lc, &max_msg, msg, msz);
        pthread_rwlock_unlock(&b->b_topics_lock);
    }
    if (!rc && !validate_only) {
        rc = bk_topic_set_configs(b, nm.p, (size_t)nm.len, &next);
        if (rc == RB_UNKNOWN_TOPIC_OR_PARTITION) snprintf(msg, msz, "Topic deleted while being altered.");
        else if (rc) snprintf(msg, msz, "Storage error while saving the topic configs");
    }
    bk_topic_configs_free(&cur);
    bk_topic_configs_free(&next);
    return rc;
}

static int bk_alter_broker(bk_broker_t *b, kp_str_t nm, const bk_cfg_op_t *ops, int32_t nops, bool incremental,
                           bool validate_only, char *msg, size_t msz) {
    bool node;
    if (nm.len == 0) node = false;
    else if (bk_is_this_node(b, nm)) node = true;
    else {
        snprintf(msg, msz, "Unexpected broker id, expected %d or empty string, but received %.*s", b->b_node_id,
                 nm.len < 0 ? 0 : (int)RB_MIN(nm.len, 100), nm.p);
        return RB_INVALID_REQUEST;
    }
    bk_topic_configs_t next = {0};
    /* the write lock throughout: levels are read, checked, written, applied (C1, C2) */
    pthread_rwlock_wrlock(&b->b_topics_lock);
    bk_dyncfg_t *dy = b->b_dyn;
    int rc = bk_cfg_ops_apply(node ? &dy->node : &dy->dflt, ops, nops, incremental, false, &next, msg, msz);
    for (int32_t i = 0; i < nops && !rc; i++) {
        char *name = strndup(ops[i].name.p, (size_t)ops[i].name.len);
        rc = bk_broker_value_check(name, bk_cfgs_get(&next, name), msg, msz);
        free(name);
    }
    if (!rc && !validate_only) {
        rc = bk_dyncfg_write(b, node ? &dy->dflt : &next, node ? &next : &dy->node);
        if (rc) {
            snprintf(msg, msz, "Storage error while saving the broker configs");
        } else {
            bk_topic_configs_t *lvl = node ? &dy->node : &dy->dflt;
            bk_topic_configs_free(lvl);
            *lvl = next;
            memset(&next, 0, sizeof(next));
            bk_dyncfg_recompute(b);
            bk_topics_reapply_configs(b);
            rb_info("dynamic broker configs (%s level) changed", node ? "node" : "cluster default");
        }
    }
    pthread_rwlock_unlock(&b->b_topics_lock);
    bk_topic_configs_free(&next);
    return rc;
}

/* Runs one resource's operations and fills its answer (error, message). */
static void bk_alter_answer(bk_req_t *r, int8_t type, kp_str_t nm, const bk_cfg_op_t *ops, int32_t nops,
                            bool incremental, bool validate_only, int16_t *err, kp_str_t *msg_out) {
    char msg[300] = "";
    int rc;
    if (type == BK_RES_TOPIC) {
        rc = bk_alter_topic(r->r_broker, nm, ops, nops, incremental, validate_only, msg, sizeof(msg));
    } else if (type == BK_RES_BROKER) {
        rc = bk_alter_broker(r->r_broker, nm, ops, nops, incremental, validate_only, msg, sizeof(msg));
    } else {
        snprintf(msg, sizeof(msg), "Unsupported resource type %d", type);
        rc = RB_INVALID_REQUEST;
    }
    *err = (int16_t)rc;
    *msg_out = bk_str(r, rc ? msg : NULL);
}

void bk_handle_alter_configs(bk_req_t *r) {
    kp_alter_configs_req_t *req = r->r_body;
    kp_alter_configs_resp_t *resp = bk_req_resp_new(r);
    BK_ALLOC_ARR(r, resp->responses, req->resources.n < 0 ? 0 : req->resources.n);
    for (int32_t i = 0; i < resp->responses.n; i++) {
        kp_alter_configs_req_alter_configs_resource_t *res = &req->resources.v[i];
        kp_alter_configs_resp_alter_configs_resource_response_t *out = &resp->responses.v[i];
        int32_t nops = res->configs.n < 0 ? 0 : res->configs.n;
        bk_cfg_op_t *ops = nops ? bk_arena_alloc_or_die(&r->r_arena, sizeof(*ops) * (size_t)nops) : NULL;
        for (int32_t k = 0; k < nops; k++)
            ops[k] = (bk_cfg_op_t){res->configs.v[k].name, res->configs.v[k].value, BK_OP_SET};
        bk_alter_answer(r, res->resource_type, res->resource_name, ops, nops, false, req->validate_only,
                        &out->error_code, &out->error_message);
        out->resource_type = res->resource_type;
        out->resource_name = res->resource_name;
    }
    bk_req_respond(r, resp);
}

void bk_handle_incremental_alter_configs(bk_req_t *r) {
    kp_incremental_alter_configs_req_t *req = r->r_body;
    kp_incremental_alter_configs_resp_t *resp = bk_req_resp_new(r);
    BK_ALLOC_ARR(r, resp->responses, req->resources.n < 0 ? 0 : req->resources.n);
    for (int32_t i = 0; i < resp->responses.n; i++) {
        kp_incremental_alter_configs_req_alter_configs_resource_t *res = &req->resources.v[i];
        kp_incremental_alter_configs_resp_alter_configs_resource_response_t *out = &resp->responses.v[i];
        int32_t nops = res->configs.n < 0 ? 0 : res->configs.n;
        bk_cfg_op_t *ops = nops ? bk_arena_alloc_or_die(&r->r_arena, sizeof(*ops) * (size_t)nops) : NULL;
        for (int32_t k = 0; k < nops; k++)
            ops[k] = (bk_cfg_op_t){res->configs.v[k].name, res->configs.v[k].value,
                                   res->configs.v[k].config_operation};
        bk_alter_answer(r, res->resource_type, res->resource_name, ops, nops, true, req->validate_only,
                        &out->error_code, &out->error_message);
        out->resource_type = res->resource_type;
        out->resource_name = res->resource_name;
    }
    bk_req_respond(r, resp);
}
