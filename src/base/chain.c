/* chain.c — write chains: buffer bytes interleaved with owned file ranges. */
#include "base.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

void rb_chain_init(rb_chain_t *c) {
    memset(c, 0, sizeof(*c));
    rb_buf_init(&c->buf);
}

static void chain_push(rb_chain_t *c, rb_chain_el_t el) {
    if (c->nels == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        rb_chain_el_t *n = realloc(c->els, cap * sizeof(*n));
        if (!n) {
            fprintf(stderr, "rill: out of memory growing a write chain\n");
            abort();
        }
        c->els = n;
        c->cap = cap;
    }
    c->els[c->nels++] = el;
}

static void chain_close_mem(rb_chain_t *c) {
    if (c->buf.len > c->mem_mark) {
        rb_chain_el_t el = {0, -1, c->mem_mark, c->buf.len - c->mem_mark};
        chain_push(c, el);
        c->mem_mark = c->buf.len;
    }
}

void rb_chain_add_file(rb_chain_t *c, int fd, uint64_t off, size_t len) {
    chain_close_mem(c);
    rb_chain_el_t el = {1, fd, off, len};
    chain_push(c, el);
}

void rb_chain_finish(rb_chain_t *c) {
    chain_close_mem(c);
    size_t t = 0;
    for (size_t i = 0; i < c->nels; i++) t += c->els[i].len;
    c->total = t;
}

size_t rb_chain_len(const rb_chain_t *c) {
    size_t t = c->buf.len - c->mem_mark;
    for (size_t i = 0; i < c->nels; i++) t += c->els[i].len;
    return t;
}

void rb_chain_free(rb_chain_t *c) {
    for (size_t i = 0; i < c->nels; i++)
        if (c->els[i].is_file && c->els[i].fd >= 0) close(c->els[i].fd);
    free(c->els);
    rb_buf_free(&c->buf);
    memset(c, 0, sizeof(*c));
}
