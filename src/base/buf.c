/* buf.c — growable byte buffer with big-endian and varint writers. */
#include "base.h"

#include <stdio.h>
#include <stdlib.h>

void rb_buf_init(rb_buf_t *b) { b->p = NULL; b->len = b->cap = 0; }

void rb_buf_free(rb_buf_t *b) {
    free(b->p);
    rb_buf_init(b);
}

void rb_buf_reserve(rb_buf_t *b, size_t extra) {
    if (b->cap - b->len >= extra) return;
    size_t need = b->len + extra;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) {
        fprintf(stderr, "rill: out of memory growing a buffer to %zu bytes\n", cap);
        abort();
    }
    b->p = p;
    b->cap = cap;
}

void rb_buf_put(rb_buf_t *b, const void *p, size_t n) {
    if (!n) return;
    rb_buf_reserve(b, n);
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

void rb_buf_u8(rb_buf_t *b, uint8_t v) { rb_buf_reserve(b, 1); b->p[b->len++] = v; }
void rb_buf_u16(rb_buf_t *b, uint16_t v) { rb_buf_reserve(b, 2); rb_wbe16(b->p + b->len, v); b->len += 2; }
void rb_buf_u32(rb_buf_t *b, uint32_t v) { rb_buf_reserve(b, 4); rb_wbe32(b->p + b->len, v); b->len += 4; }
void rb_buf_u64(rb_buf_t *b, uint64_t v) { rb_buf_reserve(b, 8); rb_wbe64(b->p + b->len, v); b->len += 8; }

void rb_buf_uvarint(rb_buf_t *b, uint64_t v) {
    rb_buf_reserve(b, 10);
    while (v >= 0x80) {
        b->p[b->len++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    b->p[b->len++] = (uint8_t)v;
}

void rb_buf_varint(rb_buf_t *b, int64_t v) {
    rb_buf_uvarint(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

size_t rb_uvarint_size(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) { v >>= 7; n++; }
    return n;
}

size_t rb_varint_size(int64_t v) { return rb_uvarint_size(((uint64_t)v << 1) ^ (uint64_t)(v >> 63)); }

int rb_buf_printf(rb_buf_t *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return n;
    rb_buf_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return n;
}
