/*
 * broker.c — start and stop rilld: open the log dirs (recovery happens as
 * logs open), load the topic catalog, start the event loops; on stop, close
 * the listener and connections, flush and close every log, and leave the
 * clean-shutdown marker (storage writes it in st_mgr_close).
 */
#include "broker/broker.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int bk_broker_start(bk_broker_t *b) {
    bk_config_t *cfg = &b->b_cfg;
    b->b_node_id = (int32_t)cfg->node_id;
    pthread_rwlock_init(&b->b_topics_lock, NULL);
    pthread_mutex_init(&b->b_catalog_mu, NULL);
    pthread_mutex_init(&b->b_pid_mu, NULL);
    atomic_init(&b->b_stopping, false);
    /* log.dirs: comma-separated */
    char *dirs = strdup(cfg->log_dirs_str), *save = NULL;
    for (char *d = strtok_r(dirs, ",", &save); d; d = strtok_r(NULL, ",", &save)) {
        while (*d == ' ') d++;
        if (!*d) continue;
        st_mgr_t *m = NULL;
        int rc = rb_mkdir_p(d);
        if (rc == 0) rc = st_mgr_open(d, &m);
        if (rc) {
            rb_error("cannot open log dir %s: %s", d, rc < 0 && rc > -200 ? rb_err_name(rc) : strerror(-rc));
            free(dirs);
            return -1;
        }
        st_mgr_set_durable_cb(m, bk_fetch_on_durable, b);
        st_mgr_set_retention_check_ms(m, cfg->log_retention_check_interval_ms);
        st_mgr_set_cleaner(m, cfg->log_cleaner_enable != 0, cfg->log_cleaner_dedupe_buffer_size,
                           cfg->log_cleaner_backoff_ms);
        st_mgr_set_producer_expiration_ms(m, cfg->producer_id_expiration_ms);
        b->b_mgrs = realloc(b->b_mgrs, sizeof(*b->b_mgrs) * (size_t)(b->b_nmgrs + 1));
        b->b_mgrs[b->b_nmgrs++] = m;
    }
    free(dirs);
    if (!b->b_nmgrs) {
        rb_error("log.dirs is empty");
        return -1;
    }
    if (bk_dyncfg_load(b) < 0) return -1;
    if (bk_pids_load(b) < 0) return -1;
    if (bk_topics_load(b) < 0) return -1;
    if (bk_groups_start(b) < 0) return -1;
    if (bk_txn_start(b) < 0) return -1;
    int nloops = (int)cfg->num_network_threads;
    if (nloops <= 0) nloops = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (nloops <= 0) nloops = 1;
    rn_handler_t h = {0};
    h.on_frame = bk_dispatch_frame;
    h.on_close = bk_dispatch_close;
    h.max_frame = (size_t)cfg->socket_request_max_bytes;
    h.max_inflight = 256;
    h.max_unsent = 64u << 20;
    int rc = rn_server_start(cfg->listen_host, cfg->listen_port, nloops, &h, b, &b->b_server);
    if (rc) return -1;
    if (cfg->adv_port == 0) cfg->adv_port = rn_server_port(b->b_server);
    if (!strcmp(cfg->adv_host, "0.0.0.0")) {
        free(cfg->adv_host);
        cfg->adv_host = strdup("127.0.0.1");
    }
    rb_info("rilld node %d (cluster %s) listening on %s:%d with %d event loop(s); log dirs: %s", b->b_node_id,
            b->b_cluster_id, cfg->listen_host, rn_server_port(b->b_server), nloops, cfg->log_dirs_str);
    return 0;
}

void bk_broker_stop(bk_broker_t *b) {
    atomic_store(&b->b_stopping, true);
    rn_server_stop(b->b_server);      /* no more requests; connections closed */
    cg_coord_stop(b->b_coord);        /* timers stopped; parked joins/syncs answered (posts queued) */
    bk_txn_stop(b);                   /* the coordinator's worker joined (a completion in progress ends) */
    bk_topics_close(b);               /* logs flushed and closed (pending commits answered) */
    cg_coord_free(b->b_coord);
    bk_txn_free(b);
    b->b_coord = NULL;
    for (int i = 0; i < b->b_nmgrs; i++) st_mgr_close(b->b_mgrs[i]); /* checkpoint + clean-shutdown marker */
    rn_server_free(b->b_server);      /* late completions find their connections closed */
    b->b_server = NULL;
    free(b->b_mgrs);
    b->b_mgrs = NULL;
    b->b_nmgrs = 0;
    bk_dyncfg_free(b);
    pthread_rwlock_destroy(&b->b_topics_lock);
    pthread_mutex_destroy(&b->b_catalog_mu);
    pthread_mutex_destroy(&b->b_pid_mu);
    rb_info("rilld stopped cleanly");
}
