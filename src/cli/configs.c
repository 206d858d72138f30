/*
 * configs.c — config helpers shared by `rill topic` and `rill broker`:
 * DescribeConfigs into a flat list, and "alter" as set/delete operations on
 * one level of dynamic configs. librdkafka 2.0.2 has no
 * IncrementalAlterConfigs, so an alter reads the level's current dynamic
 * values (DescribeConfigs), applies the operations and sends the whole level
 * with AlterConfigs (which replaces it), as kafka-configs did before
 * IncrementalAlterConfigs existed. A concurrent alter of the same resource
 * between the two requests can be lost.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

void cli_cfgs_free(cli_cfg_t *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].value);
    }
    free(v);
}

static void cli_cfg_start_describe(rd_kafka_t *rk, rd_kafka_AdminOptions_t *o, rd_kafka_queue_t *q, void *arg) {
    rd_kafka_DescribeConfigs(rk, (rd_kafka_ConfigResource_t **)arg, 1, o, q);
}

static void cli_cfg_start_alter(rd_kafka_t *rk, rd_kafka_AdminOptions_t *o, rd_kafka_queue_t *q, void *arg) {
    rd_kafka_AlterConfigs(rk, (rd_kafka_ConfigResource_t **)arg, 1, o, q);
}

/* The one resource of a Describe/AlterConfigs result, or NULL with the
 * broker's error printed. */
static const rd_kafka_ConfigResource_t *cli_cfg_result(const rd_kafka_ConfigResource_t **rs, size_t n,
                                                       const char *what) {
    if (n != 1) {
        cli_errf("%s: %zu results", what, n);
        return NULL;
    }
    rd_kafka_resp_err_t err = rd_kafka_ConfigResource_error(rs[0]);
    if (err) {
        const char *m = rd_kafka_ConfigResource_error_string(rs[0]);
        cli_errf("%s: %s (%s)", what, m && *m ? m : rd_kafka_err2str(err), rd_kafka_err2name(err));
        return NULL;
    }
    return rs[0];
}

int cli_describe_configs(rd_kafka_t *rk, rd_kafka_ResourceType_t type, const char *name, int timeout_ms,
                         cli_cfg_t **out, size_t *nout) {
    rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(type, name);
    rd_kafka_event_t *ev = NULL;
    int rc = -1;
    char what[300];
    *out = NULL;
    *nout = 0;
    snprintf(what, sizeof what, "describe configs of %s '%s'", rd_kafka_ResourceType_name(type), name);
    if (!res) {
        cli_errf("%s: librdkafka refused the resource (an empty name?)", what);
        return -1;
    }
    ev = cli_admin_call(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS, timeout_ms, false, what, cli_cfg_start_describe, &res);
    if (ev) {
        const rd_kafka_DescribeConfigs_result_t *r = rd_kafka_event_DescribeConfigs_result(ev);
        size_t nres = 0, nent = 0;
        const rd_kafka_ConfigResource_t **rs = r ? rd_kafka_DescribeConfigs_result_resources(r, &nres) : NULL;
        const rd_kafka_ConfigResource_t *one = cli_cfg_result(rs, nres, what);
        const rd_kafka_ConfigEntry_t **es = one ? rd_kafka_ConfigResource_configs(one, &nent) : NULL;
        if (one && (*out = calloc(nent + 1, sizeof **out))) {
            for (size_t i = 0; i < nent; i++) {
                const char *v = rd_kafka_ConfigEntry_value(es[i]);
                (*out)[i].name = strdup(rd_kafka_ConfigEntry_name(es[i]));
                (*out)[i].value = v ? strdup(v) : NULL;
                (*out)[i].source = rd_kafka_ConfigEntry_source(es[i]);
                (*out)[i].read_only = rd_kafka_ConfigEntry_is_read_only(es[i]) == 1;
            }
            *nout = nent;
            rc = 0;
        }
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_ConfigResource_destroy(res);
    return rc;
}

/* Whether "key=value" s sets name. */
static bool cli_cfg_sets(const char *s, const char *name) {
    const char *k, *v;
    char *copy = cli_split_kv(s, &k, &v);
    bool same = copy && !strcmp(k, name);
    free(copy);
    return same;
}

int cli_alter_configs(rd_kafka_t *rk, rd_kafka_ResourceType_t type, const char *name, rd_kafka_ConfigSource_t level,
                      char **sets, size_t nsets, char **dels, size_t ndels, int timeout_ms, bool validate_only) {
    cli_cfg_t *cur = NULL;
    size_t ncur = 0;
    rd_kafka_ConfigResource_t *res = NULL;
    rd_kafka_event_t *ev = NULL;
    int rc = -1;
    char what[300];
    snprintf(what, sizeof what, "alter configs of %s '%s'", rd_kafka_ResourceType_name(type), name);
    if (cli_describe_configs(rk, type, name, timeout_ms, &cur, &ncur) != 0) return -1;
    for (size_t d = 0; d < ndels; d++) {
        bool found = false;
        for (size_t i = 0; i < ncur; i++) found |= cur[i].source == level && !strcmp(cur[i].name, dels[d]);
        if (!found) cli_warnf("%s: '%s' has no value of its own to delete", what, dels[d]);
    }
    if (!(res = rd_kafka_ConfigResource_new(type, name))) goto done;
    /* the level's current values, minus deleted and re-set ones, then the sets */
    for (size_t i = 0; i < ncur; i++) {
        bool drop = cur[i].source != level || !cur[i].value;
        for (size_t d = 0; d < ndels && !drop; d++) drop = !strcmp(cur[i].name, dels[d]);
        for (size_t s = 0; s < nsets && !drop; s++) drop = cli_cfg_sets(sets[s], cur[i].name);
        if (!drop) rd_kafka_ConfigResource_set_config(res, cur[i].name, cur[i].value);
    }
    for (size_t s = 0; s < nsets; s++) {
        const char *k, *v;
        char *copy = cli_split_kv(sets[s], &k, &v);
        if (copy && v) rd_kafka_ConfigResource_set_config(res, k, v);
        free(copy);
    }
    ev = cli_admin_call(rk, RD_KAFKA_ADMIN_OP_ALTERCONFIGS, timeout_ms, validate_only, what, cli_cfg_start_alter,
                        &res);
    if (ev) {
        const rd_kafka_AlterConfigs_result_t *r = rd_kafka_event_AlterConfigs_result(ev);
        size_t nres = 0;
        const rd_kafka_ConfigResource_t **rs = r ? rd_kafka_AlterConfigs_result_resources(r, &nres) : NULL;
        if (cli_cfg_result(rs, nres, what)) rc = 0;
    }
done:
    if (ev) rd_kafka_event_destroy(ev);
    if (res) rd_kafka_ConfigResource_destroy(res);
    cli_cfgs_free(cur, ncur);
    return rc;
}

void cli_print_configs(const char *resource, const cli_cfg_t *v, size_t n, bool all, bool header) {
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        if (!all && (v[i].source == RD_KAFKA_CONFIG_SOURCE_DEFAULT_CONFIG ||
                     v[i].source == RD_KAFKA_CONFIG_SOURCE_STATIC_BROKER_CONFIG))
            continue;
        if (!any && header) printf("%sCONFIG\tVALUE\tSOURCE\tREAD_ONLY\n", resource ? "TOPIC\t" : "");
        any = true;
        if (resource) printf("%s\t", resource);
        printf("%s\t%s\t%s\t%s\n", v[i].name, v[i].value ? v[i].value : "-",
               rd_kafka_ConfigSource_name(v[i].source), v[i].read_only ? "yes" : "no");
    }
    fflush(stdout);
}
