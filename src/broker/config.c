/*
 * config.c — rilld's settings: Kafka's property names, a properties file
 * (`--config FILE`, `key=value` lines, `#` comments) and command-line
 * overrides (`--name value` or `--name=value`), validated, with --help.
 */
#include "broker/broker.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

static const bk_cfg_desc_t bk_cfg_descs[] = {
#define BK__CFG_DESC(field, name, type, def, doc) \
    {name, type, def, doc, offsetof(bk_config_t, field##_str), offsetof(bk_config_t, field)},
    BK_CONFIGS(BK__CFG_DESC)
#undef BK__CFG_DESC
};

static const struct {
    const char *alias, *name;
} bk_cfg_aliases[] = {{"broker.id", "node.id"}};

void bk_config_print_help(FILE *f) {
    fprintf(f,
            "usage: rilld [--config FILE] [--<property> VALUE]...\n"
            "Rill broker: speaks the Kafka protocol; settings use Kafka's property names.\n"
            "A properties file holds key=value lines; command-line values override it.\n\n");
    for (size_t i = 0; i < RB_ARRAY_LEN(bk_cfg_descs); i++)
        fprintf(f, "  --%-34s %s\n  %-36s default: %s\n", bk_cfg_descs[i].name, bk_cfg_descs[i].doc, "",
                bk_cfg_descs[i].def[0] ? bk_cfg_descs[i].def : "(empty)");
}

int bk_config_ndescs(void) { return (int)RB_ARRAY_LEN(bk_cfg_descs); }
const bk_cfg_desc_t *bk_config_desc(int i) { return &bk_cfg_descs[i]; }

const bk_cfg_desc_t *bk_config_find(const char *name) {
    for (size_t i = 0; i < RB_ARRAY_LEN(bk_cfg_aliases); i++)
        if (!strcmp(name, bk_cfg_aliases[i].alias)) name = bk_cfg_aliases[i].name;
    for (size_t i = 0; i < RB_ARRAY_LEN(bk_cfg_descs); i++)
        if (!strcmp(name, bk_cfg_descs[i].name)) return &bk_cfg_descs[i];
    return NULL;
}

static int bk_cfg_set(bk_config_t *cfg, const char *name, const char *value, const char *where) {
    const bk_cfg_desc_t *d = bk_config_find(name);
    if (!d) {
        fprintf(stderr, "rilld: %s: unknown setting '%s' (see rilld --help)\n", where, name);
        return -1;
    }
    char **sp = (char **)((char *)cfg + d->str_off);
    free(*sp);
    *sp = strdup(value);
    if (!strcmp(d->name, "log.roll.ms")) cfg->log_roll_ms_set = true;
    if (!strcmp(d->name, "log.retention.ms")) cfg->log_retention_ms_set = true;
    return 0;
}

static char *bk_trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
    return s;
}

static int bk_cfg_load_file(bk_config_t *cfg, const char *path) {
    char *text = NULL;
    int rc = rb_read_file(path, &text, NULL);
    if (rc) {
        fprintf(stderr, "rilld: cannot read config file %s: %s\n", path, strerror(-rc));
        return -1;
    }
    int lineno = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        char *l = bk_trim(line);
        if (!*l || *l == '#' || *l == '!') continue;
        char *eq = strchr(l, '=');
        if (!eq) eq = strchr(l, ':');
        if (!eq) {
            fprintf(stderr, "rilld: %s:%d: expected key=value\n", path, lineno);
            free(text);
            return -1;
        }
        *eq = 0;
        char where[512];
        snprintf(where, sizeof(where), "%s:%d", path, lineno);
        if (bk_cfg_set(cfg, bk_trim(l), bk_trim(eq + 1), where) < 0) {
            free(text);
            return -1;
        }
    }
    free(text);
    return 0;
}

static int bk_parse_listener(const char *s, char **host, int *port) {
    const char *p = strstr(s, "://");
    if (p) {
        if (strncmp(s, "PLAINTEXT://", 12) != 0) return -1;
        p += 3;
    } else {
        p = s;
    }
    const char *colon = strrchr(p, ':');
    if (!colon) return -1;
    char *end = NULL;
    long v = strtol(colon + 1, &end, 10);
    if (!end || *end || v < 0 || v > 65535) return -1;
    size_t hl = (size_t)(colon - p);
    *host = strndup(p, hl);
    if (!**host || !strcmp(*host, "0.0.0.0")) {
        free(*host);
        *host = strdup("0.0.0.0");
    }
    *port = (int)v;
    return 0;
}

static int bk_cfg_finish(bk_config_t *cfg) {
    for (size_t i = 0; i < RB_ARRAY_LEN(bk_cfg_descs); i++) {
        const bk_cfg_desc_t *d = &bk_cfg_descs[i];
        char *s = *(char **)((char *)cfg + d->str_off);
        int64_t *v = (int64_t *)((char *)cfg + d->val_off);
        if (d->type == BK_CFG_INT) {
            errno = 0;
            char *end = NULL;
            long long x = strtoll(s, &end, 10);
            if (errno || !end || end == s || *end) {
                fprintf(stderr, "rilld: %s: '%s' is not an integer\n", d->name, s);
                return -1;
            }
            *v = x;
        } else if (d->type == BK_CFG_BOOL) {
            if (!strcmp(s, "true")) *v = 1;
            else if (!strcmp(s, "false")) *v = 0;
            else {
                fprintf(stderr, "rilld: %s: '%s' is not true or false\n", d->name, s);
                return -1;
            }
        }
    }
    if (bk_parse_listener(cfg->listeners_str, &cfg->listen_host, &cfg->listen_port) < 0) {
        fprintf(stderr, "rilld: listeners: expected PLAINTEXT://HOST:PORT, got '%s'\n", cfg->listeners_str);
        return -1;
    }
    const char *adv = cfg->advertised_listeners_str[0] ? cfg->advertised_listeners_str : cfg->listeners_str;
    if (bk_parse_listener(adv, &cfg->adv_host, &cfg->adv_port) < 0) {
        fprintf(stderr, "rilld: advertised.listeners: expected PLAINTEXT://HOST:PORT, got '%s'\n", adv);
        return -1;
    }
    if (!cfg->log_roll_ms_set) cfg->log_roll_ms = cfg->log_roll_hours * 3600 * 1000;
    if (!cfg->log_retention_ms_set)
        cfg->log_retention_ms = cfg->log_retention_hours < 0 ? -1 : cfg->log_retention_hours * 3600 * 1000;
    struct {
        const char *name;
        int64_t v, lo, hi;
    } ranges[] = {
        {"num.partitions", cfg->num_partitions, 1, 1000000},
        {"default.replication.factor", cfg->default_replication_factor, 1, 1},
        {"log.segment.bytes", cfg->log_segment_bytes, 14, INT32_MAX},
        {"message.max.bytes", cfg->message_max_bytes, 0, INT32_MAX},
        {"socket.request.max.bytes", cfg->socket_request_max_bytes, 1, INT32_MAX},
        {"log.index.interval.bytes", cfg->log_index_interval_bytes, 0, INT32_MAX},
        {"log.index.size.max.bytes", cfg->log_index_size_max_bytes, 4, INT32_MAX},
        {"num.network.threads", cfg->num_network_threads, 0, 256},
        {"log.roll.ms", cfg->log_roll_ms, 1, INT64_MAX},
        {"log.retention.ms", cfg->log_retention_ms, -1, INT64_MAX},
        {"log.retention.hours", cfg->log_retention_hours, -1, INT32_MAX},
        {"log.retention.bytes", cfg->log_retention_bytes, -1, INT64_MAX},
        {"log.retention.check.interval.ms", cfg->log_retention_check_interval_ms, 1, INT64_MAX},
        {"producer.id.expiration.ms", cfg->producer_id_expiration_ms, 1, INT64_MAX},
        {"log.flush.interval.messages", cfg->log_flush_interval_messages, 1, INT64_MAX},
        {"log.cleaner.dedupe.buffer.size", cfg->log_cleaner_dedupe_buffer_size, 65536, INT64_MAX},
        {"log.cleaner.backoff.ms", cfg->log_cleaner_backoff_ms, 1, INT64_MAX},
        {"offsets.topic.segment.bytes", cfg->offsets_topic_segment_bytes, 14, INT32_MAX},
        {"log.flush.interval.ms", cfg->log_flush_interval_ms, 0, INT64_MAX},
        {"rill.max.decompressed.batch.bytes", cfg->max_decompressed_batch_bytes, 1024, INT32_MAX},
        {"node.id", cfg->node_id, 0, INT32_MAX},
        {"transactional.id.expiration.ms", cfg->transactional_id_expiration_ms, 1, INT32_MAX},
        {"transaction.remove.expired.transaction.cleanup.interval.ms",
         cfg->transaction_remove_expired_transaction_cleanup_interval_ms, 1, INT64_MAX},
    };
    for (size_t i = 0; i < RB_ARRAY_LEN(ranges); i++) {
        if (ranges[i].v < ranges[i].lo || ranges[i].v > ranges[i].hi) {
            fprintf(stderr, "rilld: %s=%lld is out of range [%lld, %lld]%s\n", ranges[i].name,
                    (long long)ranges[i].v, (long long)ranges[i].lo, (long long)ranges[i].hi,
                    !strcmp(ranges[i].name, "default.replication.factor") ? " (a single node holds one replica)"
                                                                            : "");
            return -1;
        }
    }
    if (strcmp(cfg->log_message_timestamp_type_str, "CreateTime") &&
        strcmp(cfg->log_message_timestamp_type_str, "LogAppendTime")) {
        fprintf(stderr, "rilld: log.message.timestamp.type must be CreateTime or LogAppendTime\n");
        return -1;
    }
    const char *cp = cfg->log_cleanup_policy_str;
    if (strcmp(cp, "delete") && strcmp(cp, "compact") && strcmp(cp, "compact,delete") && strcmp(cp, "delete,compact")) {
        fprintf(stderr, "rilld: log.cleanup.policy must be delete, compact or compact,delete\n");
        return -1;
    }
    if (cfg->log_message_timestamp_difference_max_ms < 0) {
        fprintf(stderr, "rilld: log.message.timestamp.difference.max.ms must be >= 0\n");
        return -1;
    }
    static const char *codecs[] = {"producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"};
    bool codec_ok = false;
    for (size_t i = 0; i < RB_ARRAY_LEN(codecs); i++) codec_ok |= !strcmp(cfg->compression_type_str, codecs[i]);
    if (!codec_ok) {
        fprintf(stderr, "rilld: compression.type must be producer, uncompressed, gzip, snappy, lz4 or zstd\n");
        return -1;
    }
    const char *lv = cfg->log_level_str;
    rb_log_min_level = !strcmp(lv, "debug") ? RB_LOG_DEBUG
                       : !strcmp(lv, "warn") ? RB_LOG_WARN
                       : !strcmp(lv, "error") ? RB_LOG_ERROR
                                              : RB_LOG_INFO;
    return 0;
}

int bk_config_load(bk_config_t *cfg, int argc, char **argv) {
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < RB_ARRAY_LEN(bk_cfg_descs); i++)
        *(char **)((char *)cfg + bk_cfg_descs[i].str_off) = strdup(bk_cfg_descs[i].def);
    /* the file first, so command-line values override it */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            bk_config_print_help(stdout);
            return 1;
        }
        if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            if (bk_cfg_load_file(cfg, argv[i + 1]) < 0) return -1;
            i++;
        } else if (!strncmp(argv[i], "--config=", 9)) {
            if (bk_cfg_load_file(cfg, argv[i] + 9) < 0) return -1;
        }
    }
    cfg->log_roll_ms_set = cfg->log_roll_ms_set; /* kept from the file */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--config")) {
            i++;
            continue;
        }
        if (!strncmp(a, "--config=", 9)) continue;
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "rilld: unexpected argument '%s' (see rilld --help)\n", a);
            return -1;
        }
        const char *eq = strchr(a, '=');
        if (eq) {
            char *name = strndup(a + 2, (size_t)(eq - a - 2));
            int rc = bk_cfg_set(cfg, name, eq + 1, "command line");
            free(name);
            if (rc < 0) return -1;
        } else {
            if (i + 1 >= argc) {
                fprintf(stderr, "rilld: %s needs a value\n", a);
                return -1;
            }
            if (bk_cfg_set(cfg, a + 2, argv[i + 1], "command line") < 0) return -1;
            i++;
        }
    }
    return bk_cfg_finish(cfg);
}

void bk_config_free(bk_config_t *cfg) {
    for (size_t i = 0; i < RB_ARRAY_LEN(bk_cfg_descs); i++) free(*(char **)((char *)cfg + bk_cfg_descs[i].str_off));
    free(cfg->listen_host);
    free(cfg->adv_host);
    memset(cfg, 0, sizeof(*cfg));
}
