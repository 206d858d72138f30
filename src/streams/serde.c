/*
 * serde.c — byte buffers, the built-in serdes (bytes, string, int64, double,
 * JSON via jansson) and the windowed-key encoding.
 *
 * Invariant: a deserializer never reads past in.len and returns -1 for any
 * input of the wrong size or shape; it never aborts on bad bytes.
 */
#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "streams/streams_int.h"

rs_bytes rs_str(const char *s) { return s ? (rs_bytes){s, strlen(s)} : RS_NULL_BYTES; }

void rs_buf_init(rs_buf *b) { b->data = NULL, b->len = b->cap = 0; }
void rs_buf_free(rs_buf *b) {
    free(b->data);
    rs_buf_init(b);
}
void rs_buf_append(rs_buf *b, const void *p, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n) cap *= 2;
        uint8_t *d = realloc(b->data, cap);
        if (!d) abort();
        b->data = d, b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void wbe64(uint8_t *p, uint64_t v) {
    v = htobe64(v);
    memcpy(p, &v, 8);
}
static uint64_t be64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return be64toh(v);
}

rs_bytes rs_int64_to_bytes(int64_t v, uint8_t out[8]) {
    wbe64(out, (uint64_t)v);
    return (rs_bytes){out, 8};
}
int rs_bytes_to_int64(rs_bytes b, int64_t *v) {
    if (!b.data || b.len != 8) return -1;
    *v = (int64_t)be64(b.data);
    return 0;
}
rs_bytes rs_double_to_bytes(double v, uint8_t out[8]) {
    uint64_t u;
    memcpy(&u, &v, 8);
    wbe64(out, u);
    return (rs_bytes){out, 8};
}
int rs_bytes_to_double(rs_bytes b, double *v) {
    if (!b.data || b.len != 8) return -1;
    uint64_t u = be64(b.data);
    memcpy(v, &u, 8);
    return 0;
}

/* bytes */
static int bytes_ser(const void *obj, rs_buf *out, void *ctx) {
    const rs_bytes *b = obj;
    if (!b->data) return -1;
    rs_buf_append(out, b->data, b->len);
    return 0;
}
static int bytes_de(rs_bytes in, void *obj, void *ctx) {
    *(rs_bytes *)obj = in;
    return in.data ? 0 : -1;
}
const rs_serde rs_serde_bytes = {"bytes", bytes_ser, bytes_de, NULL, NULL};

/* string: UTF-8 is not checked (Kafka's StringSerde does not either), but an
 * embedded NUL is refused since the C value could not hold it. */
static int string_ser(const void *obj, rs_buf *out, void *ctx) {
    const char *s = *(const char *const *)obj;
    if (!s) return -1;
    rs_buf_append(out, s, strlen(s));
    return 0;
}
static int string_de(rs_bytes in, void *obj, void *ctx) {
    if (!in.data || memchr(in.data, 0, in.len)) return -1;
    char *s = malloc(in.len + 1);
    if (!s) return -1;
    memcpy(s, in.data, in.len);
    s[in.len] = 0;
    *(char **)obj = s;
    return 0;
}
static void string_free(void *obj, void *ctx) {
    free(*(char **)obj);
    *(char **)obj = NULL;
}
const rs_serde rs_serde_string = {"string", string_ser, string_de, string_free, NULL};

static int int64_ser(const void *obj, rs_buf *out, void *ctx) {
    uint8_t b[8];
    rs_int64_to_bytes(*(const int64_t *)obj, b);
    rs_buf_append(out, b, 8);
    return 0;
}
static int int64_de(rs_bytes in, void *obj, void *ctx) { return rs_bytes_to_int64(in, obj); }
const rs_serde rs_serde_int64 = {"int64", int64_ser, int64_de, NULL, NULL};

static int double_ser(const void *obj, rs_buf *out, void *ctx) {
    uint8_t b[8];
    rs_double_to_bytes(*(const double *)obj, b);
    rs_buf_append(out, b, 8);
    return 0;
}
static int double_de(rs_bytes in, void *obj, void *ctx) { return rs_bytes_to_double(in, obj); }
const rs_serde rs_serde_double = {"double", double_ser, double_de, NULL, NULL};

static int json_dump_cb(const char *buf, size_t size, void *data) {
    rs_buf_append(data, buf, size);
    return 0;
}
static int json_ser(const void *obj, rs_buf *out, void *ctx) {
    const json_t *j = *(json_t *const *)obj;
    if (!j) return -1;
    return json_dump_callback(j, json_dump_cb, out, JSON_COMPACT | JSON_ENCODE_ANY) == 0 ? 0 : -1;
}
static int json_de(rs_bytes in, void *obj, void *ctx) {
    if (!in.data) return -1;
    json_error_t err;
    json_t *j = json_loadb(in.data, in.len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
    if (!j) return -1;
    *(json_t **)obj = j;
    return 0;
}
static void json_free(void *obj, void *ctx) {
    json_decref(*(json_t **)obj);
    *(json_t **)obj = NULL;
}
const rs_serde rs_serde_json = {"json", json_ser, json_de, json_free, NULL};

int rs_serialize(const rs_serde *s, const void *obj, rs_buf *out) {
    size_t before = out->len;
    int rc = s->serialize(obj, out, s->ctx);
    if (rc) out->len = before;
    return rc;
}
int rs_deserialize(const rs_serde *s, rs_bytes in, void *obj) { return s->deserialize(in, obj, s->ctx); }
void rs_serde_free(const rs_serde *s, void *obj) {
    if (s->free_obj) s->free_obj(obj, s->ctx);
}

void rs_windowed_key_encode(const rs_windowed_key *wk, rs_buf *out) {
    uint8_t b[16];
    wbe64(b, (uint64_t)wk->start);
    wbe64(b + 8, (uint64_t)wk->end);
    rs_buf_append(out, wk->key.data ? wk->key.data : "", wk->key.len);
    rs_buf_append(out, b, 16);
}
int rs_windowed_key_decode(rs_bytes in, rs_windowed_key *wk) {
    if (!in.data || in.len < 16) return -1;
    const uint8_t *p = in.data;
    wk->key = (rs_bytes){p, in.len - 16};
    wk->start = (int64_t)be64(p + in.len - 16);
    wk->end = (int64_t)be64(p + in.len - 8);
    return wk->end >= wk->start ? 0 : -1;
}

int64_t rs_json_field_timestamp(const rs_record *r, int64_t partition_time, void *field_name) {
    if (!r->value.data) return r->timestamp;
    json_t *j = json_loadb(r->value.data, r->value.len, 0, NULL);
    int64_t ts = r->timestamp;
    json_t *f = j ? json_object_get(j, field_name) : NULL;
    if (f && json_is_integer(f)) ts = (int64_t)json_integer_value(f);
    else if (f && json_is_real(f)) ts = (int64_t)json_real_value(f);
    json_decref(j);
    return ts;
}
