/* arena.c — per-request bump allocator with a hard cap (base.h invariant 3). */
#include "base.h"

#include <stdlib.h>

struct rb_arena_chunk {
    rb_arena_chunk_t *next;
    size_t size; /* usable bytes in data[] */
    size_t used;
    _Alignas(16) uint8_t data[];
};

#define RB_ARENA_CHUNK 16384

void rb_arena_init(rb_arena_t *a, size_t cap) {
    a->ra_head = NULL;
    a->ra_used = 0;
    a->ra_cap = cap;
}

void *rb_arena_alloc(rb_arena_t *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    if (a->ra_cap && (n > a->ra_cap || a->ra_used > a->ra_cap - n)) return NULL;
    rb_arena_chunk_t *c = a->ra_head;
    if (!c || c->size - c->used < n) {
        size_t sz = n > RB_ARENA_CHUNK ? n : RB_ARENA_CHUNK;
        c = malloc(sizeof(*c) + sz);
        if (!c) return NULL;
        c->size = sz;
        c->used = 0;
        c->next = a->ra_head;
        a->ra_head = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    a->ra_used += n;
    memset(p, 0, n);
    return p;
}

void *rb_arena_memdup(rb_arena_t *a, const void *p, size_t n) {
    void *d = rb_arena_alloc(a, n);
    if (d && n) memcpy(d, p, n);
    return d;
}

char *rb_arena_strndup(rb_arena_t *a, const char *p, size_t n) {
    char *d = rb_arena_alloc(a, n + 1);
    if (!d) return NULL;
    memcpy(d, p, n);
    d[n] = 0;
    return d;
}

void rb_arena_reset(rb_arena_t *a) {
    rb_arena_chunk_t *c = a->ra_head, *keep = NULL;
    while (c) {
        rb_arena_chunk_t *next = c->next;
        if (!keep && c->size == RB_ARENA_CHUNK) {
            keep = c;
            keep->used = 0;
            keep->next = NULL;
        } else {
            free(c);
        }
        c = next;
    }
    a->ra_head = keep;
    a->ra_used = 0;
}

void rb_arena_free(rb_arena_t *a) {
    rb_arena_chunk_t *c = a->ra_head;
    while (c) {
        rb_arena_chunk_t *next = c->next;
        free(c);
        c = next;
    }
    a->ra_head = NULL;
    a->ra_used = 0;
}
