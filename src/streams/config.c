/*
 * config.c — the application configuration under Kafka Streams' names.
 * Known names are validated when set; every other name is kept as given for
 * librdkafka (which validates it when a client is created).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "streams/streams_int.h"

rs_config *rs_config_new(void) {
    rs_config *c = calloc(1, sizeof(*c));
    if (!c) abort();
    c->kv = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    return c;
}

void rs_config_free(rs_config *c) {
    if (!c) return;
    g_hash_table_destroy(c->kv);
    free(c);
}

static int parse_int(const char *v, int64_t min, int64_t *out) {
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < min) return -1;
    *out = x;
    return 0;
}

static int fail(char *errstr, size_t errlen, const char *name, const char *why) {
    if (errstr && errlen) snprintf(errstr, errlen, "%s: %s", name, why);
    return -1;
}

int rs_config_set(rs_config *c, const char *name, const char *value, char *errstr, size_t errlen) {
    int64_t x;
    if (!name || !value) return fail(errstr, errlen, name ? name : "(null)", "null name or value");
    if (!strcmp(name, "num.stream.threads")) {
        if (parse_int(value, 1, &x)) return fail(errstr, errlen, name, "must be an integer >= 1");
    } else if (!strcmp(name, "commit.interval.ms") || !strcmp(name, "cache.max.bytes.buffering") ||
               !strcmp(name, "rocksdb.memory.bytes")) {
        if (parse_int(value, 0, &x)) return fail(errstr, errlen, name, "must be an integer >= 0");
    } else if (!strcmp(name, "processing.guarantee")) {
        if (!strcmp(value, "exactly_once") || !strcmp(value, "exactly_once_beta"))
            return fail(errstr, errlen, name,
                        "exactly_once and exactly_once_beta are removed (as in Kafka Streams 4): use exactly_once_v2");
        if (strcmp(value, "at_least_once") && strcmp(value, "exactly_once_v2"))
            return fail(errstr, errlen, name, "at_least_once or exactly_once_v2");
    } else if (!strcmp(name, "default.timestamp.extractor")) {
        if (strcmp(value, "record") && strcmp(value, "wallclock"))
            return fail(errstr, errlen, name, "record or wallclock (a user extractor is set by function)");
    } else if (!strcmp(name, "default.dsl.store")) {
        if (strcmp(value, "in_memory") && strcmp(value, "rocksDB"))
            return fail(errstr, errlen, name, "in_memory or rocksDB");
    } else if (!strcmp(name, "application.id")) {
        if (!*value || strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
                           strlen(value))
            return fail(errstr, errlen, name, "must be a legal topic-name prefix [a-zA-Z0-9._-]+");
    }
    g_hash_table_replace(c->kv, g_strdup(name), g_strdup(value));
    return 0;
}

const char *rs_config_get(const rs_config *c, const char *name) { return g_hash_table_lookup(c->kv, name); }

void rs_config_set_timestamp_extractor(rs_config *c, rs_timestamp_fn fn, void *ctx) {
    c->ts_fn = fn;
    c->ts_ctx = ctx;
}

int64_t rs__config_int(const rs_config *c, const char *name, int64_t dflt) {
    const char *v = c ? rs_config_get(c, name) : NULL;
    return v ? strtoll(v, NULL, 10) : dflt;
}

bool rs__config_eos(const rs_config *c) {
    return !strcmp(rs__config_str(c, "processing.guarantee", "at_least_once"), "exactly_once_v2");
}

/* Kafka Streams' defaults that depend on the guarantee: commit.interval.ms
 * is 100 under exactly-once, 30000 otherwise, unless set */
int64_t rs__config_commit_interval(const rs_config *c) {
    return rs__config_int(c, "commit.interval.ms", rs__config_eos(c) ? 100 : 30000);
}

const char *rs__config_str(const rs_config *c, const char *name, const char *dflt) {
    const char *v = c ? rs_config_get(c, name) : NULL;
    return v ? v : dflt;
}

rs_config *rs__config_dup(const rs_config *c) {
    rs_config *d = rs_config_new();
    if (!c) return d;
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, c->kv);
    while (g_hash_table_iter_next(&it, &k, &v)) g_hash_table_insert(d->kv, g_strdup(k), g_strdup(v));
    d->ts_fn = c->ts_fn;
    d->ts_ctx = c->ts_ctx;
    return d;
}

/* removes a file or a directory tree (state directories; no links there) */
int rs__rm_rf(const char *path) {
    GDir *dir = g_dir_open(path, 0, NULL);
    if (dir) {
        const char *name;
        while ((name = g_dir_read_name(dir))) {
            char *p = g_build_filename(path, name, NULL);
            rs__rm_rf(p);
            g_free(p);
        }
        g_dir_close(dir);
    }
    return remove(path);
}
