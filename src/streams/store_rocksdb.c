/*
 * store_rocksdb.c — the persistent key-value store on RocksDB's C API, and
 * the one memory budget all RocksDB stores of the process share.
 *
 * Budget (rocksdb.memory.bytes, default 64 MiB): one LRU block cache of that
 * size is shared by every store's table reader (index and filter blocks are
 * kept in it too, so they are bounded by it); RocksDB 7.8's C API offers no
 * WriteBufferManager, so memtables cannot be charged to that cache: each
 * store gets a fixed memtable allowance of 2 x 1 MiB (write_buffer_size x
 * max_write_buffer_number). Process bound: budget + stores x 2 MiB.
 *
 * The WAL is off: the changelog topic is the store's durable copy (as in
 * Kafka Streams); a crash loses at most what the next restore replays.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <rocksdb/c.h>

#include "streams/streams_int.h"

#define MEMTABLE_BYTES (1u << 20)
#define MEMTABLES 2

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static rocksdb_cache_t *g_cache;
static size_t g_cache_refs;

typedef struct {
    rocksdb_t *db;
    rocksdb_options_t *opt;
    rocksdb_block_based_table_options_t *topt;
    rocksdb_readoptions_t *ropt;
    rocksdb_writeoptions_t *wopt;
    rocksdb_flushoptions_t *fopt;
} rstore;

static rocksdb_cache_t *cache_ref(size_t bytes) {
    pthread_mutex_lock(&g_mu);
    if (!g_cache) g_cache = rocksdb_cache_create_lru(bytes);
    g_cache_refs++;
    rocksdb_cache_t *c = g_cache;
    pthread_mutex_unlock(&g_mu);
    return c;
}

static void cache_unref(void) {
    pthread_mutex_lock(&g_mu);
    if (--g_cache_refs == 0) {
        rocksdb_cache_destroy(g_cache);
        g_cache = NULL;
    }
    pthread_mutex_unlock(&g_mu);
}

void *rs__rocksdb_store_open(const char *path, size_t budget, char *errstr, size_t errlen) {
    rstore *s = calloc(1, sizeof(*s));
    if (!s) abort();
    s->opt = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(s->opt, 1);
    rocksdb_options_set_write_buffer_size(s->opt, MEMTABLE_BYTES);
    rocksdb_options_set_max_write_buffer_number(s->opt, MEMTABLES);
    rocksdb_options_set_max_open_files(s->opt, 64);
    s->topt = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(s->topt, cache_ref(budget));
    rocksdb_block_based_options_set_cache_index_and_filter_blocks(s->topt, 1);
    /* point reads of absent keys (every new window, every first word) are
     * answered by bloom filters instead of index and data blocks of every
     * level-0 file; the options own the policy */
    rocksdb_block_based_options_set_filter_policy(s->topt, rocksdb_filterpolicy_create_bloom_full(10));
    rocksdb_options_set_memtable_prefix_bloom_size_ratio(s->opt, 0.1);
    rocksdb_options_set_memtable_whole_key_filtering(s->opt, 1);
    rocksdb_options_set_block_based_table_factory(s->opt, s->topt);
    char *err = NULL;
    s->db = rocksdb_open(s->opt, path, &err);
    if (!s->db) {
        if (errstr && errlen) snprintf(errstr, errlen, "rocksdb open %s: %s", path, err ? err : "?");
        rocksdb_free(err);
        rocksdb_block_based_options_destroy(s->topt);
        rocksdb_options_destroy(s->opt);
        cache_unref();
        free(s);
        return NULL;
    }
    s->ropt = rocksdb_readoptions_create();
    s->wopt = rocksdb_writeoptions_create();
    rocksdb_writeoptions_disable_WAL(s->wopt, 1);
    s->fopt = rocksdb_flushoptions_create();
    rocksdb_flushoptions_set_wait(s->fopt, 1);
    return s;
}

static int r_get(void *impl, rs_bytes key, rs_buf *out) {
    rstore *s = impl;
    char *err = NULL;
    size_t vlen = 0;
    char *v = rocksdb_get(s->db, s->ropt, key.data, key.len, &vlen, &err);
    if (err) {
        rocksdb_free(err);
        return -1;
    }
    if (!v) return 0;
    rs_buf_append(out, v, vlen);
    rocksdb_free(v);
    return 1;
}

static int r_put(void *impl, rs_bytes key, rs_bytes value) {
    rstore *s = impl;
    char *err = NULL;
    if (value.data) rocksdb_put(s->db, s->wopt, key.data, key.len, value.data, value.len, &err);
    else rocksdb_delete(s->db, s->wopt, key.data, key.len, &err);
    if (err) {
        rocksdb_free(err);
        return -1;
    }
    return 0;
}

static int r_range(void *impl, rs_bytes from, rs_bytes to, rs_kv_fn fn, void *arg) {
    rstore *s = impl;
    rocksdb_iterator_t *it = rocksdb_create_iterator(s->db, s->ropt);
    if (from.data) rocksdb_iter_seek(it, from.data, from.len);
    else rocksdb_iter_seek_to_first(it);
    int rc = 0;
    for (; rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl, vl;
        const char *k = rocksdb_iter_key(it, &kl), *v = rocksdb_iter_value(it, &vl);
        if (to.data) {
            size_t n = kl < to.len ? kl : to.len;
            int c = n ? memcmp(k, to.data, n) : 0;
            if (c > 0 || (c == 0 && kl > to.len)) break;
        }
        if ((rc = fn((rs_bytes){k, kl}, (rs_bytes){v, vl}, arg))) break;
    }
    rocksdb_iter_destroy(it);
    return rc;
}

static int count_one(rs_bytes k, rs_bytes v, void *arg) {
    (*(size_t *)arg)++;
    return 0;
}
static size_t r_count(void *impl) {
    size_t n = 0;
    r_range(impl, RS_NULL_BYTES, RS_NULL_BYTES, count_one, &n);
    return n;
}

static int r_flush(void *impl) {
    rstore *s = impl;
    char *err = NULL;
    rocksdb_flush(s->db, s->fopt, &err);
    if (err) {
        rocksdb_free(err);
        return -1;
    }
    return 0;
}

static void r_close(void *impl) {
    rstore *s = impl;
    rocksdb_close(s->db);
    rocksdb_readoptions_destroy(s->ropt);
    rocksdb_writeoptions_destroy(s->wopt);
    rocksdb_flushoptions_destroy(s->fopt);
    rocksdb_options_destroy(s->opt);
    rocksdb_block_based_options_destroy(s->topt);
    cache_unref();
    free(s);
}

const rs_kv_vt rs__rocksdb_store_vt = {r_get, r_put, r_range, r_count, r_flush, r_close, NULL};
