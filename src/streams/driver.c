/*
 * driver.c — the topology test driver (Kafka Streams' TopologyTestDriver):
 * one task per sub-topology on partition 0, no broker, no threads, no
 * wall clock of its own. Every record a task writes is kept in a per-topic
 * output queue; a record written to a topic some sub-topology reads (a
 * repartition topic, or a user topic the topology also consumes) is also
 * processed by that sub-topology before rs_driver_pipe returns.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "streams/streams_int.h"

typedef struct out_rec {
    const char *topic; /* interned in the driver's queues table */
    uint8_t *key, *value; /* NULL: null; else inside data[] */
    size_t klen, vlen;
    int64_t ts;
    rs_header *h; /* nh headers at the start of data[], names and values after */
    size_t nh;
    size_t size; /* of the whole record, aligned (its place in a queue chunk) */
    _Alignas(max_align_t) uint8_t data[];
} out_rec;

/* a FIFO of pointers on one growable array (no allocation per record) */
typedef struct {
    void **v;
    size_t head, tail, cap;
} fifo;

static void fifo_push(fifo *f, void *p) {
    if (f->tail == f->cap) {
        if (f->head > f->cap / 2) { /* slide down before growing */
            memmove(f->v, f->v + f->head, (f->tail - f->head) * sizeof(void *));
            f->tail -= f->head;
            f->head = 0;
        } else {
            f->cap = f->cap ? f->cap * 2 : 64;
            f->v = realloc(f->v, f->cap * sizeof(void *));
            if (!f->v) abort();
        }
    }
    f->v[f->tail++] = p;
}
static void *fifo_pop(fifo *f) { return f->head < f->tail ? f->v[f->head++] : NULL; }
static size_t fifo_len(const fifo *f) { return f->tail - f->head; }
static void fifo_free(fifo *f, void (*fn)(void *)) {
    void *p;
    while ((p = fifo_pop(f))) fn(p);
    free(f->v);
    memset(f, 0, sizeof(*f));
}

/* An output queue: records laid end to end in chunks (no allocation per
 * record). Readers pop from the head chunk; an exhausted chunk is released
 * (or, the last one, rewound) only when the next record is popped, which is
 * a driver call: the record handed out before stays valid until then. */
typedef struct chunk {
    struct chunk *next;
    size_t used, read, cap;
    _Alignas(max_align_t) uint8_t data[];
} chunk;

#define CHUNK_BYTES (256 * 1024 - sizeof(chunk))

typedef struct {
    chunk *head, *tail, *spare; /* spare: one released chunk kept for reuse */
    size_t n;
} recq;

static size_t rec_size(const rs_record *r) {
    size_t kl = r->key.data ? r->key.len : 0, vl = r->value.data ? r->value.len : 0;
    size_t nh = r->headers ? r->header_count : 0, hb = nh * sizeof(rs_header);
    for (size_t i = 0; i < nh; i++) hb += strlen(r->headers[i].key) + 1 + (r->headers[i].value.data ? r->headers[i].value.len : 0);
    size_t a = _Alignof(max_align_t);
    return (sizeof(out_rec) + hb + kl + vl + a - 1) / a * a;
}

/* the record, its headers, key, value, header names and values, at o */
static out_rec *out_fill(out_rec *o, const char *topic, const rs_record *r, size_t size) {
    size_t kl = r->key.data ? r->key.len : 0, vl = r->value.data ? r->value.len : 0;
    size_t nh = r->headers ? r->header_count : 0;
    o->topic = topic;
    o->size = size;
    o->nh = nh;
    o->h = nh ? (rs_header *)o->data : NULL;
    uint8_t *p = o->data + nh * sizeof(rs_header);
    o->key = r->key.data ? p : NULL;
    if (kl) memcpy(p, r->key.data, kl);
    p += kl;
    o->value = r->value.data ? p : NULL;
    if (vl) memcpy(p, r->value.data, vl);
    p += vl;
    for (size_t i = 0; i < nh; i++) {
        size_t n = strlen(r->headers[i].key) + 1, hv = r->headers[i].value.data ? r->headers[i].value.len : 0;
        memcpy(p, r->headers[i].key, n);
        o->h[i].key = (const char *)p;
        p += n;
        if (hv) memcpy(p, r->headers[i].value.data, hv);
        o->h[i].value = r->headers[i].value.data ? (rs_bytes){p, hv} : RS_NULL_BYTES;
        p += hv;
    }
    o->klen = kl, o->vlen = vl;
    o->ts = r->timestamp;
    return o;
}

static void out_free(void *o) { free(o); }

/* one allocation (records fed back into the topology) */
static out_rec *out_new(const char *topic, const rs_record *r) {
    size_t size = rec_size(r);
    out_rec *o = malloc(size);
    if (!o) abort();
    return out_fill(o, topic, r, size);
}

static void recq_push(recq *q, const char *topic, const rs_record *r) {
    size_t need = rec_size(r);
    chunk *c = q->tail;
    if (!c || c->cap - c->used < need) {
        size_t cap = need > CHUNK_BYTES ? need : CHUNK_BYTES;
        if (q->spare && q->spare->cap >= cap) {
            c = q->spare;
            q->spare = NULL;
        } else {
            c = malloc(sizeof(chunk) + cap);
            if (!c) abort();
            c->cap = cap;
        }
        c->next = NULL;
        c->used = c->read = 0;
        if (q->tail) q->tail->next = c;
        else q->head = c;
        q->tail = c;
    }
    out_fill((out_rec *)(c->data + c->used), topic, r, need);
    c->used += need;
    q->n++;
}

static const out_rec *recq_pop(recq *q) {
    chunk *c = q->head;
    while (c && c->read == c->used) {
        if (c == q->tail) { /* empty: rewind the last chunk */
            c->used = c->read = 0;
            return NULL;
        }
        q->head = c->next;
        if (!q->spare) q->spare = c;
        else free(c);
        c = q->head;
    }
    if (!c) return NULL;
    const out_rec *o = (const out_rec *)(c->data + c->read);
    c->read += o->size;
    q->n--;
    return o;
}

static void recq_free(recq *q) {
    for (chunk *c = q->head, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    free(q->spare);
    memset(q, 0, sizeof(*q));
}

struct rs_driver {
    const rs_topology *topo;
    rs_config *cfg; /* private copy of the names that matter */
    char *app_id;
    rs_task **tasks;
    int ntasks;
    GHashTable *queues; /* topic -> topic_q */
    fifo pending;       /* out_rec * to feed back into the topology */
    bool auto_commit;
    int64_t wall, last_commit, commit_interval;
    int64_t offsets;
    char *state_dir;
    bool own_state_dir;
    GHashTable *by_ptr; /* topic name pointer a task passes (stable for the
                         * driver's life) -> topic_q: no hashing of names */
    const char *last_read_name;
    void *last_read_q;
    const char *sink_name[4]; /* the last topic name pointers sinks passed */
    void *sink_q[4];
    rs_cache_budget cache; /* the driver is one thread */
};


static bool consumed_by_topology(rs_driver *d, const char *topic) {
    for (int i = 0; i < d->ntasks; i++)
        if (rs__task_source(d->tasks[i], topic) >= 0) return true;
    return false;
}

typedef struct {
    recq q;
    bool consumed; /* some sub-topology reads this topic */
    const char *name;
} topic_q;

static topic_q *queue_of(rs_driver *d, const char *topic, const char **interned) {
    gpointer k, v;
    if (g_hash_table_lookup_extended(d->queues, topic, &k, &v)) {
        *interned = k;
        return v;
    }
    topic_q *q = calloc(1, sizeof(*q));
    if (!q) abort();
    q->consumed = consumed_by_topology(d, topic);
    char *name = g_strdup(topic);
    q->name = name;
    g_hash_table_insert(d->queues, name, q);
    *interned = name;
    return q;
}

static void driver_sink(void *arg, const char *topic, int32_t partition, const rs_record *r, rs_kv_store *store) {
    rs_driver *d = arg;
    topic_q *q = NULL;
    for (int i = 0; i < 4; i++)
        if (d->sink_name[i] == topic) {
            q = d->sink_q[i];
            break;
        }
    if (!q) {
        const char *name;
        if (!(q = g_hash_table_lookup(d->by_ptr, topic))) {
            q = queue_of(d, topic, &name);
            g_hash_table_insert(d->by_ptr, (gpointer)topic, q);
        }
        memmove(d->sink_name + 1, d->sink_name, 3 * sizeof(d->sink_name[0]));
        memmove(d->sink_q + 1, d->sink_q, 3 * sizeof(d->sink_q[0]));
        d->sink_name[0] = topic, d->sink_q[0] = q;
    }
    recq_push(&q->q, q->name, r);
    if (q->consumed) fifo_push(&d->pending, out_new(q->name, r));
}

static void queue_free(gpointer p) {
    topic_q *q = p;
    recq_free(&q->q);
    free(q);
}

rs_driver *rs_driver_new(const rs_topology *t, const rs_config *c, int64_t wall_clock_ms, char *errstr,
                         size_t errlen) {
    if (!t) {
        if (errstr && errlen) snprintf(errstr, errlen, "no topology");
        return NULL;
    }
    rs_driver *d = calloc(1, sizeof(*d));
    if (!d) abort();
    d->topo = t;
    d->cfg = rs__config_dup(c);
    d->app_id = g_strdup(rs__config_str(d->cfg, "application.id", "rill-streams-test"));
    d->queues = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, queue_free);
    d->by_ptr = g_hash_table_new(g_direct_hash, g_direct_equal);
    d->auto_commit = true;
    d->wall = d->last_commit = wall_clock_ms;
    d->commit_interval = rs__config_int(d->cfg, "commit.interval.ms", 30000);
    d->cache.max = (size_t)rs__config_int(d->cfg, "cache.max.bytes.buffering", 10 * 1024 * 1024);
    d->ntasks = t->g->nsubtopos;
    d->tasks = calloc((size_t)(d->ntasks ? d->ntasks : 1), sizeof(rs_task *));
    if (!d->tasks) abort();
    /* state.dir given: stores live there and stay; otherwise a temporary
     * directory removed by rs_driver_free */
    const char *sd = rs_config_get(d->cfg, "state.dir");
    if (sd) {
        d->state_dir = g_strdup_printf("%s/%s", sd, d->app_id);
    } else {
        d->state_dir = g_dir_make_tmp("rill-streams-driver-XXXXXX", NULL);
        d->own_state_dir = true;
        if (!d->state_dir) {
            if (errstr && errlen) snprintf(errstr, errlen, "cannot make a temporary state directory");
            rs_driver_free(d);
            return NULL;
        }
    }
    for (int i = 0; i < d->ntasks; i++) {
        d->tasks[i] = rs__task_new(t, d->cfg, d->app_id, i, 0, driver_sink, d, wall_clock_ms, d->state_dir,
                                   &d->cache, errstr, errlen);
        if (!d->tasks[i]) {
            rs_driver_free(d);
            return NULL;
        }
    }
    return d;
}

void rs_driver_free(rs_driver *d) {
    if (!d) return;
    for (int i = 0; i < d->ntasks; i++) rs__task_free(d->tasks[i]);
    free(d->tasks);
    if (d->own_state_dir && d->state_dir) rs__rm_rf(d->state_dir);
    g_free(d->state_dir);
    fifo_free(&d->pending, out_free);
    g_hash_table_destroy(d->by_ptr);
    g_hash_table_destroy(d->queues); /* after: records point at its names */
    g_free(d->app_id);
    rs_config_free(d->cfg);
    free(d);
}

void rs_driver_set_auto_commit(rs_driver *d, bool on) { d->auto_commit = on; }

static void feed(rs_driver *d, const char *topic, const rs_record *r) {
    for (int i = 0; i < d->ntasks; i++) rs__task_process(d->tasks[i], topic, r);
}

static void drain_pending(rs_driver *d) {
    out_rec *o;
    while ((o = fifo_pop(&d->pending))) {
        rs_record r = {.key = {o->key, o->klen}, .value = {o->value, o->vlen}, .timestamp = o->ts,
                       .headers = o->h, .header_count = o->nh, .topic = o->topic, .partition = 0,
                       .offset = d->offsets++};
        feed(d, o->topic, &r);
        out_free(o);
    }
}

void rs_driver_commit(rs_driver *d) {
    /* a flush may write repartition topics whose records flush more stores */
    for (int round = 0; round < 64; round++) {
        for (int i = 0; i < d->ntasks; i++) rs__task_commit(d->tasks[i]);
        if (!fifo_len(&d->pending)) break;
        drain_pending(d);
    }
    d->last_commit = d->wall;
}

int rs_driver_pipe(rs_driver *d, const char *topic, rs_bytes key, rs_bytes value, int64_t timestamp) {
    rs_record r = {.key = key, .value = value, .timestamp = timestamp};
    return rs_driver_pipe_record(d, topic, &r);
}

int rs_driver_pipe_record(rs_driver *d, const char *topic, const rs_record *in) {
    if (!topic || !consumed_by_topology(d, topic)) return -1;
    rs_record r = *in;
    r.topic = topic;
    r.partition = 0;
    r.offset = d->offsets++;
    feed(d, topic, &r);
    drain_pending(d);
    if (d->auto_commit) rs_driver_commit(d);
    return 0;
}

int rs_driver_pipe_str(rs_driver *d, const char *topic, const char *key, const char *value, int64_t timestamp) {
    return rs_driver_pipe(d, topic, rs_str(key), rs_str(value), timestamp);
}

void rs_driver_advance_wall_clock(rs_driver *d, int64_t ms) {
    d->wall += ms;
    for (int i = 0; i < d->ntasks; i++) rs__task_wall_clock(d->tasks[i], d->wall);
    drain_pending(d);
    if (d->wall - d->last_commit >= d->commit_interval) rs_driver_commit(d);
}

bool rs_driver_read(rs_driver *d, const char *topic, rs_record *out) {
    topic_q *q;
    if (d->last_read_q && topic == d->last_read_name && !strcmp(topic, ((topic_q *)d->last_read_q)->name))
        q = d->last_read_q;
    else if ((q = g_hash_table_lookup(d->queues, topic)))
        d->last_read_name = topic, d->last_read_q = q;
    const out_rec *o = q ? recq_pop(&q->q) : NULL;
    if (!o) return false;
    *out = (rs_record){.key = {o->key, o->klen}, .value = {o->value, o->vlen}, .timestamp = o->ts,
                       .headers = o->h, .header_count = o->nh, .topic = o->topic, .partition = 0, .offset = -1};
    return true;
}

size_t rs_driver_queue_size(const rs_driver *d, const char *topic) {
    topic_q *q = g_hash_table_lookup(d->queues, topic);
    return q ? q->q.n : 0;
}

rs_kv_store *rs_driver_kv_store(rs_driver *d, const char *name) {
    const rs_graph *g = d->topo->g;
    for (guint i = 0; i < g->stores->len; i++) {
        if (strcmp(((rs_store_def *)g_ptr_array_index(g->stores, i))->name, name)) continue;
        for (int k = 0; k < d->ntasks; k++)
            if (d->tasks[k]->stores[i]) return d->tasks[k]->stores[i];
    }
    return NULL;
}

int64_t rs_driver_metric(const rs_driver *d, const char *name) {
    int64_t sum = 0;
    for (int i = 0; i < d->ntasks; i++) {
        const rs_metrics *m = &d->tasks[i]->m;
        if (!strcmp(name, "dropped-records")) sum += m->dropped;
        else if (!strcmp(name, "skipped-records")) sum += m->skipped;
        else if (!strcmp(name, "process-total")) sum += m->process_total;
        else if (!strcmp(name, "punctuate-total")) sum += m->punctuate_total;
        else return -1;
    }
    return sum;
}
