/*
 * store.c — key-value stores: the in-memory store (a GLib balanced tree in
 * byte order) and the layers every store of a task gets in front of it:
 * the record cache (coalesces updates per key until commit, S3) and the
 * changelog (every write that reaches the inner store is also produced to
 * <application.id>-<store>-changelog, partition = the task's partition).
 *
 * Reads see the cache first. A range read flushes the cache first, so it
 * sees one consistent ordered view (Kafka merges the two; we keep it simple).
 */
#include <stdlib.h>
#include <string.h>

#include "streams/streams_int.h"

/* ---- in-memory store ---- */

typedef struct {
    size_t len;
    uint8_t data[];
} mkey;

static gint mkey_cmp(gconstpointer a, gconstpointer b, gpointer unused) {
    const mkey *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = n ? memcmp(x->data, y->data, n) : 0;
    if (c) return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

static mkey *mkey_new(rs_bytes b) {
    mkey *k = malloc(sizeof(*k) + b.len);
    if (!k) abort();
    k->len = b.len;
    if (b.len) memcpy(k->data, b.data, b.len);
    return k;
}

/* a value is updated in place: the tree keeps the same slot */
typedef rs_slot mval;

/* A key and its value are one allocation: the value slot, then the key
 * (the tree's key destructor frees both; the tree has no value destructor) */
static mval *entry_new(rs_bytes key, mkey **k) {
    mval *v = malloc(sizeof(mval) + sizeof(mkey) + key.len);
    if (!v) abort();
    v->len = 0;
    v->cap = sizeof(v->inl);
    v->data = v->inl;
    *k = (mkey *)(void *)(v + 1);
    (*k)->len = key.len;
    if (key.len) memcpy((*k)->data, key.data, key.len);
    return v;
}

static void mentry_free(gpointer key) {
    mval *v = (mval *)key - 1;
    if (v->data != v->inl) free(v->data);
    free(v);
}

void rs__slot_set(rs_slot *v, rs_bytes b) {
    if (b.len > v->cap) {
        uint8_t *d = v->data == v->inl ? malloc(b.len) : realloc(v->data, b.len);
        if (!d) abort();
        v->data = d;
        v->cap = b.len;
    }
    if (b.len) memcpy(v->data, b.data, b.len);
    v->len = b.len;
}
#define mval_set rs__slot_set

/* The tree gives byte order for ranges; an open-addressing hash table
 * (linear probing, backward-shift deletion) over the same key objects
 * answers point reads and writes without ~log2(n) memcmp calls, hashing the
 * caller's bytes directly (no probe key copied, no indirect calls). */
typedef struct {
    uint32_t h;
    mkey *k; /* NULL: empty slot */
    mval *v;
} mslot;

typedef struct {
    GTree *tree;  /* mkey * -> mval * (owns both) */
    mslot *tab;   /* borrows the tree's keys and values */
    size_t mask, n;
    const mkey *last_k; /* the last key found: a put after a get of the */
    mval *last_v;       /* same key (every aggregation) skips the hash */
} mstore;

uint32_t rs__fnv1a(const void *p, size_t n) {
    const uint8_t *b = p;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 16777619u;
    return h;
}

/* store keys hash 8 bytes at a time (multiply and xor-shift mixing, as
 * splitmix64's finalizer): a byte-wise FNV cost ~1 ns per key byte. The
 * tail is read as one word overlapping the last full one (or, under 8
 * bytes, as two overlapping 4-byte halves): no variable-length copy. Only
 * in-memory tables use it (nothing persisted), so it may change. */
static guint key_hash(const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n, w;
    if (n >= 8) {
        const uint8_t *last = b + n - 8;
        for (; b < last; b += 8) {
            memcpy(&w, b, 8);
            h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
            h ^= h >> 31;
        }
        memcpy(&w, last, 8);
    } else if (n >= 4) {
        uint32_t x, y;
        memcpy(&x, b, 4);
        memcpy(&y, b + n - 4, 4);
        w = (uint64_t)x << 32 | y;
    } else {
        w = n ? (uint64_t)b[0] << 16 | (uint64_t)b[n / 2] << 8 | b[n - 1] : 0;
    }
    h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
    h = (h ^ (h >> 30)) * 0x94D049BB133111EBull;
    return (guint)(h ^ (h >> 32));
}

/* equal bytes; keys of up to 16 bytes (a ticker and a window start) are
 * compared as two overlapping words, without a call */
static inline bool bytes_eq(const uint8_t *a, const uint8_t *b, size_t n) {
    if (n >= 8 && n <= 16) {
        uint64_t x, y, u, v;
        memcpy(&x, a, 8), memcpy(&y, b, 8);
        memcpy(&u, a + n - 8, 8), memcpy(&v, b + n - 8, 8);
        return x == y && u == v;
    }
    return !n || !memcmp(a, b, n);
}

static bool key_is(const mkey *k, rs_bytes b) { return k->len == b.len && bytes_eq(k->data, b.data, b.len); }

void *rs__mem_store_open(void) {
    mstore *m = calloc(1, sizeof(*m));
    if (!m) abort();
    m->tree = g_tree_new_full(mkey_cmp, NULL, mentry_free, NULL);
    m->mask = 15;
    m->tab = calloc(m->mask + 1, sizeof(mslot));
    if (!m->tab) abort();
    return m;
}

/* the slot of key (h its hash), or the empty slot where it would go */
static size_t slot_of(const mstore *m, uint32_t h, rs_bytes key) {
    size_t i = h & m->mask;
    while (m->tab[i].k && !(m->tab[i].h == h && key_is(m->tab[i].k, key))) i = (i + 1) & m->mask;
    return i;
}

static void tab_add(mstore *m, uint32_t h, mkey *k, mval *v) {
    if ((m->n + 1) * 2 > m->mask + 1) { /* load <= 1/2 */
        size_t oc = m->mask + 1;
        mslot *old = m->tab;
        m->mask = oc * 2 - 1;
        m->tab = calloc(oc * 2, sizeof(mslot));
        if (!m->tab) abort();
        for (size_t i = 0; i < oc; i++) {
            if (!old[i].k) continue;
            size_t j = old[i].h & m->mask;
            while (m->tab[j].k) j = (j + 1) & m->mask;
            m->tab[j] = old[i];
        }
        free(old);
    }
    size_t i = slot_of(m, h, (rs_bytes){k->data, k->len});
    m->tab[i] = (mslot){h, k, v};
    m->n++;
}

static void tab_remove(mstore *m, size_t i) {
    m->tab[i].k = NULL;
    m->n--;
    for (size_t j = (i + 1) & m->mask; m->tab[j].k; j = (j + 1) & m->mask) {
        size_t home = m->tab[j].h & m->mask;
        if (((j - home) & m->mask) >= ((j - i) & m->mask)) { /* may move back to i */
            m->tab[i] = m->tab[j];
            m->tab[j].k = NULL;
            i = j;
        }
    }
}

static mval *mem_find(mstore *m, rs_bytes key) {
    if (m->last_k && key_is(m->last_k, key)) return m->last_v;
    mslot *sl = &m->tab[slot_of(m, key_hash(key.data, key.len), key)];
    if (!sl->k) return NULL;
    m->last_k = sl->k;
    m->last_v = sl->v;
    return sl->v;
}

static int mem_get(void *impl, rs_bytes key, rs_buf *out) {
    mval *v = mem_find(impl, key);
    if (!v) return 0;
    rs_buf_append(out, v->data, v->len);
    return 1;
}

/* one lookup: the slot of key, made (empty) when absent */
static int mem_slot(void *impl, rs_bytes key, rs_slot **out) {
    mstore *m = impl;
    uint32_t h = key_hash(key.data, key.len);
    mslot *sl = &m->tab[slot_of(m, h, key)];
    if (sl->k) {
        m->last_k = sl->k;
        *out = m->last_v = sl->v;
        return 1;
    }
    mkey *nk;
    mval *v = entry_new(key, &nk);
    g_tree_insert(m->tree, nk, v);
    tab_add(m, h, nk, v);
    m->last_k = nk;
    *out = m->last_v = v;
    return 0;
}

static int mem_put(void *impl, rs_bytes key, rs_bytes value) {
    mstore *m = impl;
    if (!value.data) {
        uint32_t h = key_hash(key.data, key.len);
        size_t i = slot_of(m, h, key);
        if (!m->tab[i].k) return 0;
        mkey *k = m->tab[i].k;
        m->last_k = NULL;
        m->last_v = NULL;
        tab_remove(m, i);        /* before the tree frees the key */
        g_tree_remove(m->tree, k);
        return 0;
    }
    mval *v = mem_find(m, key);
    if (!v) {
        mkey *nk;
        v = entry_new(key, &nk);
        g_tree_insert(m->tree, nk, v);
        tab_add(m, key_hash(key.data, key.len), nk, v);
    }
    mval_set(v, value);
    return 0;
}

/* a probe key on the stack for tree lookups */
#define PROBE(name, bytes)                                                                 \
    union {                                                                                \
        mkey k;                                                                            \
        uint8_t raw[sizeof(mkey) + 256];                                                   \
    } name##_u;                                                                            \
    mkey *name = (bytes).len <= 256 ? &name##_u.k : mkey_new(bytes);                       \
    if ((bytes).len <= 256) {                                                              \
        name->len = (bytes).len;                                                           \
        if ((bytes).len) memcpy(name->data, (bytes).data, (bytes).len);                    \
    }
#define PROBE_DONE(name) \
    if (name != &name##_u.k) free(name)

static int mem_range(void *impl, rs_bytes from, rs_bytes to, rs_kv_fn fn, void *arg) {
    mstore *m = impl;
    GTreeNode *n;
    mkey *hi = to.data ? mkey_new(to) : NULL;
    if (from.data) {
        PROBE(k, from);
        n = g_tree_lower_bound(m->tree, k);
        PROBE_DONE(k);
    } else {
        n = g_tree_node_first(m->tree);
    }
    int rc = 0;
    for (; n; n = g_tree_node_next(n)) {
        const mkey *k = g_tree_node_key(n);
        const mval *v = g_tree_node_value(n);
        if (hi && mkey_cmp(k, hi, NULL) > 0) break;
        if ((rc = fn((rs_bytes){k->data, k->len}, (rs_bytes){v->data ? v->data : (const uint8_t *)"", v->len}, arg)))
            break;
    }
    free(hi);
    return rc;
}

static size_t mem_count(void *impl) { return (size_t)g_tree_nnodes(((mstore *)impl)->tree); }
static int mem_flush(void *impl) { return 0; }
static void mem_close(void *impl) {
    mstore *m = impl;
    free(m->tab);
    g_tree_destroy(m->tree);
    free(m);
}

const rs_kv_vt rs__mem_store_vt = {mem_get, mem_put, mem_range, mem_count, mem_flush, mem_close, mem_slot};

/* ---- record cache and changelog ---- */

struct rs_cache_entry {
    uint8_t *key, *val; /* val: a buffer of vcap bytes, reused by updates */
    size_t klen, vlen, vcap;
    bool null; /* a cached delete */
    int64_t ts;
    bool dirty;
    rs_cache_entry *next_dirty;
};

#define ENTRY_OVERHEAD 64
#define ENTRY_BYTES(e) ((e)->klen + ((e)->null ? 0 : (e)->vlen) + ENTRY_OVERHEAD)

static guint entry_hash(gconstpointer p) { return key_hash(((const rs_cache_entry *)p)->key, ((const rs_cache_entry *)p)->klen); }
static gboolean entry_eq(gconstpointer a, gconstpointer b) {
    const rs_cache_entry *x = a, *y = b;
    return x->klen == y->klen && bytes_eq(x->key, y->key, x->klen);
}
static void entry_free(gpointer p) {
    rs_cache_entry *e = p;
    free(e->key);
    free(e->val);
    free(e);
}

rs_kv_store *rs__kv_store_new(rs_task *t, const rs_store_def *def, const char *app_id, char *errstr,
                              size_t errlen) {
    rs_store_type type = def->m.type;
    if (type == RS_STORE_DEFAULT)
        type = strcmp(rs__config_str(t->cfg, "default.dsl.store", "rocksDB"), "in_memory") ? RS_STORE_ROCKSDB
                                                                                           : RS_STORE_IN_MEMORY;
    void *impl;
    const rs_kv_vt *vt;
    if (type == RS_STORE_ROCKSDB) {
        char *dir = g_strdup_printf("%s/rocksdb", t->state_dir);
        char *path = g_strdup_printf("%s/%s", dir, def->name);
        g_mkdir_with_parents(dir, 0755);
        impl = rs__rocksdb_store_open(path, (size_t)rs__config_int(t->cfg, "rocksdb.memory.bytes", 64 << 20),
                                      errstr, errlen);
        g_free(path);
        g_free(dir);
        if (!impl) return NULL;
        vt = &rs__rocksdb_store_vt;
    } else {
        impl = rs__mem_store_open();
        vt = &rs__mem_store_vt;
    }
    rs_kv_store *s = calloc(1, sizeof(*s));
    if (!s) abort();
    s->def = def;
    s->task = t;
    s->vt = vt;
    s->impl = impl;
    s->caching = !def->m.no_caching && t->cache->max > 0;
    if (!def->m.no_logging) s->changelog = g_strdup_printf("%s-%s-changelog", app_id, def->name);
    s->cache = g_hash_table_new_full(entry_hash, entry_eq, entry_free, NULL);
    s->changelog_end = -1;
    return s;
}

void rs__kv_store_free(rs_kv_store *s) {
    if (!s) return;
    /* a task closed dirty (exactly-once rollback) drops its cached entries
     * unwritten: they leave the thread's budget with it */
    if (s->cache_bytes && s->task && s->task->cache) s->task->cache->used -= s->cache_bytes;
    g_hash_table_destroy(s->cache);
    s->vt->close(s->impl);
    g_free(s->changelog);
    free(s);
}

/* writes through: inner store, changelog, then (unless quiet) the owner's
 * children */
/* what follows a write to the inner store: the changelog, then (unless
 * quiet) the owner's children */
static void written(rs_kv_store *s, rs_bytes key, rs_bytes value, int64_t ts, bool quiet, const rs_bytes *old) {
    rs_task *t = s->task;
    rs_record r = {.key = key, .value = value, .timestamp = ts, .partition = t->partition, .offset = -1};
    if (s->changelog) t->sink(t->sink_arg, s->changelog, t->partition, &r, s);
    if (s->def->owner >= 0 && quiet) return;
    if (s->def->owner >= 0) {
        const rs_record *saved = t->cur;
        if (saved) {
            r.headers = saved->headers, r.header_count = saved->header_count;
            r.topic = saved->topic, r.partition = saved->partition, r.offset = saved->offset;
        }
        t->cur = &r;
        rs_node *owner = g_ptr_array_index(t->topo->g->nodes, s->def->owner);
        const rs_bytes *saved_old = t->old;
        t->old = NULL; /* S5: a flush may run inside a table operation */
        if (owner->kind == RS_N_WINDOW_AGG) rs__window_flushed(t, owner, &r);
        else rs__forward_change(t, s->def->owner, &r, old);
        t->old = saved_old;
        t->cur = saved;
    }
}

/* does a write of s forward the old value (S5)? */
static bool sends_old(const rs_kv_store *s) {
    return s->def->owner >= 0 && s->task->nodes[s->def->owner]->send_old;
}

static void write_through(rs_kv_store *s, rs_bytes key, rs_bytes value, int64_t ts, bool quiet) {
    if (!quiet && sends_old(s)) { /* the old value is read before it is overwritten */
        rs_buf ob;
        rs_buf_init(&ob);
        bool had = s->vt->get(s->impl, key, &ob) == 1;
        rs_bytes o = rs_buf_bytes(&ob);
        s->vt->put(s->impl, key, value);
        written(s, key, value, ts, quiet, had ? &o : NULL);
        rs_buf_free(&ob);
        return;
    }
    s->vt->put(s->impl, key, value);
    written(s, key, value, ts, quiet, NULL);
}

void rs__kv_store_flush(rs_kv_store *s) {
    /* detach the dirty list first: forwarding may write this store again */
    while (s->dirty_head) {
        rs_cache_entry *e = s->dirty_head;
        s->dirty_head = e->next_dirty;
        if (!s->dirty_head) s->dirty_tail = NULL;
        e->dirty = false;
        e->next_dirty = NULL;
        write_through(s, (rs_bytes){e->key ? e->key : (const uint8_t *)"", e->klen},
                      (rs_bytes){e->null ? NULL : (e->vlen ? e->val : (const uint8_t *)""), e->null ? 0 : e->vlen},
                      e->ts, false);
    }
    s->last = NULL;
    g_hash_table_remove_all(s->cache);
    s->task->cache->used -= s->cache_bytes;
    s->cache_bytes = 0;
    /* the inner store is not flushed to disk here: with the WAL off, that is
     * for a checkpoint (runtime) and for close */
}

/* the cached entry of key, or NULL; remembers it (a put follows a get) */
static rs_cache_entry *cache_find(rs_kv_store *s, rs_bytes key) {
    rs_cache_entry *e = s->last;
    if (e && e->klen == key.len && bytes_eq(e->key, key.data, key.len)) return e;
    rs_cache_entry probe = {.key = (uint8_t *)key.data, .klen = key.len};
    if ((e = g_hash_table_lookup(s->cache, &probe))) s->last = e;
    return e;
}

/* a new cached entry for key (clean, no value yet) */
static rs_cache_entry *cache_add(rs_kv_store *s, rs_bytes key) {
    rs_cache_entry *e = calloc(1, sizeof(*e));
    if (!e) abort();
    e->key = malloc(key.len ? key.len : 1);
    if (!e->key) abort();
    memcpy(e->key, key.data, key.len);
    e->klen = key.len;
    e->null = true;
    g_hash_table_add(s->cache, e);
    s->task->cache->used += ENTRY_BYTES(e);
    s->cache_bytes += ENTRY_BYTES(e);
    s->last = e;
    return e;
}

/* the entry takes value (null: a delete) at ts and joins the dirty list;
 * the store flushes when the thread's cache is over budget */
static void cache_set(rs_kv_store *s, rs_cache_entry *e, rs_bytes value, int64_t ts) {
    size_t had = ENTRY_BYTES(e);
    s->cache_bytes -= had;
    s->task->cache->used -= had;
    e->null = !value.data;
    if (value.data) {
        if (!e->val || e->vcap < value.len) {
            uint8_t *v = realloc(e->val, value.len ? value.len : 1);
            if (!v) abort();
            e->val = v;
            e->vcap = value.len;
        }
        if (value.len) memcpy(e->val, value.data, value.len);
    }
    e->vlen = value.data ? value.len : 0;
    e->ts = ts;
    if (!e->dirty) {
        e->dirty = true;
        if (s->dirty_tail) s->dirty_tail->next_dirty = e;
        else s->dirty_head = e;
        s->dirty_tail = e;
    }
    size_t need = ENTRY_BYTES(e);
    s->cache_bytes += need;
    s->task->cache->used += need;
    if (s->task->cache->used > s->task->cache->max) rs__kv_store_flush(s); /* over budget: evict by flushing */
}

int rs__kv_put_ts(rs_kv_store *s, rs_bytes key, rs_bytes value, int64_t ts) {
    if (!key.data) return -1;
    if (!s->caching) {
        write_through(s, key, value, ts, false);
        return 0;
    }
    rs_cache_entry *e = cache_find(s, key);
    if (!e) e = cache_add(s, key);
    cache_set(s, e, value, ts);
    return 0;
}

int rs__kv_aggregate(rs_kv_store *s, const rs_node *nd, rs_bytes skey, rs_bytes key, rs_bytes value, int64_t ts,
                     rs_buf *out) {
    out->len = 0;
    rs_bytes ob;
    int found;
    if (s->caching) {
        rs_cache_entry *e = cache_find(s, skey);
        if (e) { /* the aggregate is read where the cache holds it */
            found = !e->null;
            ob = (rs_bytes){e->val ? e->val : (const uint8_t *)"", e->vlen};
            rs__agg_step(nd, key, value, found ? &ob : NULL, out);
            cache_set(s, e, rs_buf_bytes(out), ts);
            return found;
        }
    } else if (s->vt->slot && !sends_old(s)) { /* one lookup; the new value is written once */
        rs_slot *sl;
        found = s->vt->slot(s->impl, skey, &sl);
        ob = (rs_bytes){sl->data ? sl->data : (const uint8_t *)"", sl->len};
        rs__agg_step(nd, key, value, found ? &ob : NULL, out);
        rs__slot_set(sl, rs_buf_bytes(out));
        /* downstream gets the scratch copy: it may write this store again */
        written(s, skey, rs_buf_bytes(out), ts, false, NULL);
        return found;
    }
    rs_buf old;
    rs_buf_init(&old);
    found = s->vt->get(s->impl, skey, &old) == 1;
    ob = rs_buf_bytes(&old);
    rs__agg_step(nd, key, value, found ? &ob : NULL, out);
    rs_buf_free(&old);
    if (s->caching) cache_set(s, cache_add(s, skey), rs_buf_bytes(out), ts);
    else write_through(s, skey, rs_buf_bytes(out), ts, false);
    return found;
}

/* a delete that nobody downstream hears of (window retention); the cache
 * holds nothing dirty for the key (callers flush first) */
void rs__kv_delete_quiet(rs_kv_store *s, rs_bytes key, int64_t ts) {
    if (s->caching) {
        rs_cache_entry *e = cache_find(s, key);
        if (e && !e->dirty) {
            size_t had = ENTRY_BYTES(e);
            s->cache_bytes -= had;
            s->task->cache->used -= had;
            s->last = NULL;
            g_hash_table_remove(s->cache, e);
        }
    }
    write_through(s, key, RS_NULL_BYTES, ts, true);
}

int rs_kv_get(rs_kv_store *s, rs_bytes key, rs_buf *out) {
    if (!key.data) return 0;
    if (s->caching) {
        rs_cache_entry *e = cache_find(s, key);
        if (e) {
            if (e->null) return 0;
            rs_buf_append(out, e->val, e->vlen);
            return 1;
        }
    }
    return s->vt->get(s->impl, key, out);
}

int rs_kv_put(rs_kv_store *s, rs_bytes key, rs_bytes value) {
    int64_t ts = s->task->cur ? s->task->cur->timestamp : s->task->stream_time;
    return rs__kv_put_ts(s, key, value, ts);
}

int rs_kv_delete(rs_kv_store *s, rs_bytes key) { return rs_kv_put(s, key, RS_NULL_BYTES); }

int rs_kv_range(rs_kv_store *s, rs_bytes from, rs_bytes to, rs_kv_fn fn, void *arg) {
    if (s->dirty_head) rs__kv_store_flush(s);
    return s->vt->range(s->impl, from, to, fn, arg);
}

size_t rs_kv_count(rs_kv_store *s) {
    if (s->dirty_head) rs__kv_store_flush(s);
    return s->vt->count(s->impl);
}
