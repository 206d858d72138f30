/*
 * codec.c — the one table-driven Kafka codec: decodes and encodes any message
 * declared in the .kps schemas (src/proto/schema), at any version, flexible or not, by
 * walking the descriptor tables kpgen.py generates. Also the request and
 * response headers. See proto.h for the invariants (bounds, arena, defaults,
 * tagged fields).
 */
#include "proto/proto.h"

#include <stdlib.h>

/* Guards recursion on hostile input (nesting is bounded by the schemas, but a
 * bug in a schema must not become a stack overflow). */
#define KP_MAX_DEPTH 16

static bool kp_in(int16_t v, int16_t lo, int16_t hi) { return lo >= 0 && v >= lo && v <= hi; }

static bool kp_field_present(const kp_field_desc_t *f, int16_t v, bool flexible) {
    if (!kp_in(v, f->vmin, f->vmax)) return false;
    if (f->tag >= 0) return flexible && kp_in(v, f->tmin, f->tmax);
    return true;
}

static bool kp_field_tagged(const kp_field_desc_t *f, int16_t v, bool flexible) {
    return f->tag >= 0 && flexible && kp_in(v, f->tmin, f->tmax) && kp_in(v, f->vmin, f->vmax);
}

static bool kp_field_nullable(const kp_field_desc_t *f, int16_t v) { return kp_in(v, f->nmin, f->nmax); }

/* A string/bytes field defaults to null only when it may be null in every
 * version it exists in; otherwise to empty. */
static bool kp_field_null_default(const kp_field_desc_t *f) {
    return f->nmin >= 0 && f->nmin <= f->vmin && f->nmax >= f->vmax;
}

static size_t kp_elem_size(const kp_field_desc_t *f) {
    switch (f->elem_type) {
    case KP_T_BOOL:
    case KP_T_INT8: return 1;
    case KP_T_INT16:
    case KP_T_UINT16: return 2;
    case KP_T_INT32: return 4;
    case KP_T_INT64:
    case KP_T_FLOAT64: return 8;
    case KP_T_UUID: return sizeof(kp_uuid_t);
    case KP_T_STRING: return sizeof(kp_str_t);
    case KP_T_BYTES: return sizeof(kp_bytes_t);
    case KP_T_STRUCT: return f->sub->size;
    }
    return 0;
}

typedef KP_ARR(uint8_t) kp_arr_any_t;

static void kp_field_default(const kp_field_desc_t *f, uint8_t *base) {
    void *p = base + f->offset;
    switch (f->type) {
    case KP_T_BOOL: *(bool *)p = f->def != 0; break;
    case KP_T_INT8: *(int8_t *)p = (int8_t)f->def; break;
    case KP_T_INT16: *(int16_t *)p = (int16_t)f->def; break;
    case KP_T_UINT16: *(uint16_t *)p = (uint16_t)f->def; break;
    case KP_T_INT32: *(int32_t *)p = (int32_t)f->def; break;
    case KP_T_INT64: *(int64_t *)p = f->def; break;
    case KP_T_FLOAT64: *(double *)p = (double)f->def; break;
    case KP_T_UUID: memset(p, 0, sizeof(kp_uuid_t)); break;
    case KP_T_STRING: {
        kp_str_t *s = p;
        s->p = "";
        s->len = kp_field_null_default(f) ? -1 : 0;
        break;
    }
    case KP_T_BYTES: {
        kp_bytes_t *b = p;
        b->p = (const uint8_t *)"";
        b->len = kp_field_null_default(f) ? -1 : 0;
        break;
    }
    case KP_T_RECORDS: {
        kp_records_t *r = p;
        memset(r, 0, sizeof(*r));
        r->p = (const uint8_t *)"";
        r->len = kp_field_null_default(f) ? -1 : 0;
        r->fd = -1;
        break;
    }
    case KP_T_STRUCT: kp_init_defaults(f->sub, p); break;
    case KP_T_ARRAY: {
        kp_arr_any_t *a = p;
        a->n = 0;
        a->v = NULL;
        break;
    }
    }
}

void kp_init_defaults(const kp_struct_desc_t *d, void *out) {
    memset(out, 0, d->size);
    for (uint16_t i = 0; i < d->nfields; i++) kp_field_default(&d->fields[i], out);
}

/* ---- decode ---------------------------------------------------------------------- */

static int kp_decode_struct(const kp_struct_desc_t *d, int16_t v, bool flex, rb_rd_t *rd, uint8_t *out,
                            rb_arena_t *arena, int depth);

/* Reads a length prefix: compact (uvarint N+1, 0 = null) or classic. Returns
 * -1 for null, -2 on error (rd->err set). */
static int64_t kp_read_len(rb_rd_t *rd, bool flex, bool wide) {
    int64_t n;
    if (flex) {
        uint32_t u = rb_rd_uvarint32(rd);
        if (!rb_rd_ok(rd)) return -2;
        n = (int64_t)u - 1;
    } else {
        n = wide ? rb_rd_i32(rd) : rb_rd_i16(rd);
        if (!rb_rd_ok(rd)) return -2;
    }
    if (n < -1) {
        rb_rd_fail(rd, RB_ERR_MALFORMED);
        return -2;
    }
    return n;
}

static int kp_decode_prim(uint8_t type, const kp_field_desc_t *f, int16_t v, bool flex, rb_rd_t *rd, void *p) {
    switch (type) {
    case KP_T_BOOL: *(bool *)p = rb_rd_u8(rd) != 0; break;
    case KP_T_INT8: *(int8_t *)p = rb_rd_i8(rd); break;
    case KP_T_INT16: *(int16_t *)p = rb_rd_i16(rd); break;
    case KP_T_UINT16: *(uint16_t *)p = rb_rd_u16(rd); break;
    case KP_T_INT32: *(int32_t *)p = rb_rd_i32(rd); break;
    case KP_T_INT64: *(int64_t *)p = rb_rd_i64(rd); break;
    case KP_T_FLOAT64: {
        uint64_t u = rb_rd_u64(rd);
        memcpy(p, &u, 8);
        break;
    }
    case KP_T_UUID: {
        const uint8_t *b = rb_rd_bytes(rd, 16);
        if (b) memcpy(p, b, 16);
        break;
    }
    case KP_T_STRING: {
        int64_t n = kp_read_len(rd, flex, false);
        if (n == -2) break;
        kp_str_t *s = p;
        if (n == -1) {
            if (f && !kp_field_nullable(f, v)) { rb_rd_fail(rd, RB_ERR_MALFORMED); break; }
            s->p = "";
            s->len = -1;
            break;
        }
        const uint8_t *b = rb_rd_bytes(rd, (size_t)n);
        if (!b) break;
        s->p = (const char *)b;
        s->len = (int32_t)n;
        break;
    }
    case KP_T_BYTES:
    case KP_T_RECORDS: {
        int64_t n = kp_read_len(rd, flex, true);
        if (n == -2) break;
        const uint8_t *b = (const uint8_t *)"";
        if (n == -1) {
            if (f && !kp_field_nullable(f, v)) { rb_rd_fail(rd, RB_ERR_MALFORMED); break; }
        } else {
            b = rb_rd_bytes(rd, (size_t)n);
            if (!b) break;
        }
        if (type == KP_T_BYTES) {
            kp_bytes_t *x = p;
            x->p = b;
            x->len = (int32_t)n;
        } else {
            kp_records_t *x = p;
            memset(x, 0, sizeof(*x));
            x->p = b;
            x->len = (int32_t)n;
            x->fd = -1;
        }
        break;
    }
    default: rb_rd_fail(rd, RB_ERR_MALFORMED); break;
    }
    return rd->err;
}

static int kp_decode_field(const kp_field_desc_t *f, int16_t v, bool flex, rb_rd_t *rd, uint8_t *base,
                           rb_arena_t *arena, int depth) {
    void *p = base + f->offset;
    if (f->type == KP_T_STRUCT) return kp_decode_struct(f->sub, v, flex, rd, p, arena, depth + 1);
    if (f->type != KP_T_ARRAY) return kp_decode_prim(f->type, f, v, flex, rd, p);
    kp_arr_any_t *a = p;
    int64_t n = kp_read_len(rd, flex, true);
    if (n == -2) return rd->err;
    if (n == -1) {
        if (!kp_field_nullable(f, v)) {
            rb_rd_fail(rd, RB_ERR_MALFORMED);
            return rd->err;
        }
        a->n = -1;
        a->v = NULL;
        return 0;
    }
    /* invariant 1: every element takes at least one byte on the wire */
    if ((uint64_t)n > rb_rd_left(rd)) {
        rb_rd_fail(rd, RB_ERR_TRUNCATED);
        return rd->err;
    }
    size_t esz = kp_elem_size(f);
    a->n = (int32_t)n;
    a->v = NULL;
    if (n == 0) return 0;
    uint8_t *items = rb_arena_alloc(arena, (size_t)n * esz);
    if (!items) return RB_ERR_NOMEM;
    a->v = items;
    for (int64_t i = 0; i < n; i++) {
        uint8_t *it = items + (size_t)i * esz;
        int rc = f->elem_type == KP_T_STRUCT ? kp_decode_struct(f->sub, v, flex, rd, it, arena, depth + 1)
                                             : kp_decode_prim(f->elem_type, NULL, v, flex, rd, it);
        if (rc) return rc;
    }
    return 0;
}

static int kp_decode_tags(const kp_struct_desc_t *d, int16_t v, rb_rd_t *rd, uint8_t *out, rb_arena_t *arena,
                          int depth) {
    uint32_t ntags = rb_rd_uvarint32(rd);
    if (!rb_rd_ok(rd)) return rd->err;
    if (ntags > rb_rd_left(rd)) {
        rb_rd_fail(rd, RB_ERR_TRUNCATED);
        return rd->err;
    }
    int64_t last_tag = -1;
    for (uint32_t i = 0; i < ntags; i++) {
        uint32_t tag = rb_rd_uvarint32(rd);
        uint32_t size = rb_rd_uvarint32(rd);
        if (!rb_rd_ok(rd)) return rd->err;
        if ((int64_t)tag <= last_tag) { /* tags must be strictly ascending */
            rb_rd_fail(rd, RB_ERR_MALFORMED);
            return rd->err;
        }
        last_tag = tag;
        const uint8_t *body = rb_rd_bytes(rd, size);
        if (!body) return rd->err;
        for (uint16_t k = 0; k < d->nfields; k++) {
            const kp_field_desc_t *f = &d->fields[k];
            if (f->tag != (int16_t)tag || !kp_field_tagged(f, v, true)) continue;
            rb_rd_t sub;
            rb_rd_init(&sub, body, size);
            int rc = kp_decode_field(f, v, true, &sub, out, arena, depth);
            if (rc) return rc;
            if (rb_rd_left(&sub) != 0) { /* the value must fill its declared size */
                rb_rd_fail(rd, RB_ERR_MALFORMED);
                return rd->err;
            }
            break;
        }
    }
    return 0;
}

static int kp_decode_struct(const kp_struct_desc_t *d, int16_t v, bool flex, rb_rd_t *rd, uint8_t *out,
                            rb_arena_t *arena, int depth) {
    if (depth > KP_MAX_DEPTH) return RB_ERR_MALFORMED;
    for (uint16_t i = 0; i < d->nfields; i++) kp_field_default(&d->fields[i], out);
    for (uint16_t i = 0; i < d->nfields; i++) {
        const kp_field_desc_t *f = &d->fields[i];
        if (!kp_field_present(f, v, flex) || f->tag >= 0) continue;
        int rc = kp_decode_field(f, v, flex, rd, out, arena, depth);
        if (rc) return rc;
    }
    if (flex) return kp_decode_tags(d, v, rd, out, arena, depth);
    return rd->err;
}

int kp_decode(const kp_struct_desc_t *d, int16_t version, bool flexible, rb_rd_t *rd, void *out, rb_arena_t *arena) {
    int rc = kp_decode_struct(d, version, flexible, rd, out, arena, 0);
    if (!rc) rc = rd->err;
    return rc;
}

/* ---- encode ---------------------------------------------------------------------- */

static void kp_encode_struct(const kp_struct_desc_t *d, int16_t v, bool flex, const uint8_t *in, rb_chain_t *c);

static void kp_write_len(rb_buf_t *b, bool flex, bool wide, int64_t n) {
    if (flex) rb_buf_uvarint(b, (uint64_t)(n + 1));
    else if (wide) rb_buf_u32(b, (uint32_t)(int32_t)n);
    else rb_buf_u16(b, (uint16_t)(int16_t)n);
}

static void kp_encode_prim(uint8_t type, const kp_field_desc_t *f, int16_t v, bool flex, const void *p,
                           rb_chain_t *c) {
    rb_buf_t *b = &c->buf;
    switch (type) {
    case KP_T_BOOL: rb_buf_u8(b, *(const bool *)p ? 1 : 0); break;
    case KP_T_INT8: rb_buf_u8(b, (uint8_t) * (const int8_t *)p); break;
    case KP_T_INT16: rb_buf_u16(b, (uint16_t) * (const int16_t *)p); break;
    case KP_T_UINT16: rb_buf_u16(b, *(const uint16_t *)p); break;
    case KP_T_INT32: rb_buf_u32(b, (uint32_t) * (const int32_t *)p); break;
    case KP_T_INT64: rb_buf_u64(b, (uint64_t) * (const int64_t *)p); break;
    case KP_T_FLOAT64: {
        uint64_t u;
        memcpy(&u, p, 8);
        rb_buf_u64(b, u);
        break;
    }
    case KP_T_UUID: rb_buf_put(b, p, 16); break;
    case KP_T_STRING: {
        const kp_str_t *s = p;
        int32_t n = s->len;
        if (n < 0 && f && !kp_field_nullable(f, v)) n = 0; /* null not expressible: empty */
        kp_write_len(b, flex, false, n < 0 ? -1 : n);
        if (n > 0) rb_buf_put(b, s->p, (size_t)n);
        break;
    }
    case KP_T_BYTES: {
        const kp_bytes_t *x = p;
        int32_t n = x->len;
        if (n < 0 && f && !kp_field_nullable(f, v)) n = 0;
        kp_write_len(b, flex, true, n < 0 ? -1 : n);
        if (n > 0) rb_buf_put(b, x->p, (size_t)n);
        break;
    }
    case KP_T_RECORDS: {
        const kp_records_t *x = p;
        int32_t n = x->len;
        if (n < 0 && f && !kp_field_nullable(f, v)) n = 0;
        kp_write_len(b, flex, true, n < 0 ? -1 : n);
        if (n > 0) {
            if (x->in_file) rb_chain_add_file(c, x->fd, (uint64_t)x->file_off, (size_t)n);
            else rb_buf_put(b, x->p, (size_t)n);
        } else if (x->in_file && x->fd >= 0) {
            rb_chain_add_file(c, x->fd, (uint64_t)x->file_off, 0); /* hand over ownership */
        }
        break;
    }
    }
}

static void kp_encode_field(const kp_field_desc_t *f, int16_t v, bool flex, const uint8_t *base, rb_chain_t *c) {
    const void *p = base + f->offset;
    if (f->type == KP_T_STRUCT) {
        kp_encode_struct(f->sub, v, flex, p, c);
        return;
    }
    if (f->type != KP_T_ARRAY) {
        kp_encode_prim(f->type, f, v, flex, p, c);
        return;
    }
    const kp_arr_any_t *a = p;
    int32_t n = a->n;
    if (n < 0 && !kp_field_nullable(f, v)) n = 0;
    kp_write_len(&c->buf, flex, true, n < 0 ? -1 : n);
    size_t esz = kp_elem_size(f);
    for (int32_t i = 0; i < n; i++) {
        const uint8_t *it = a->v + (size_t)i * esz;
        if (f->elem_type == KP_T_STRUCT) kp_encode_struct(f->sub, v, flex, it, c);
        else kp_encode_prim(f->elem_type, NULL, v, flex, it, c);
    }
}

static bool kp_struct_is_default(const kp_struct_desc_t *d, const uint8_t *in);

static bool kp_field_is_default(const kp_field_desc_t *f, const uint8_t *base) {
    const void *p = base + f->offset;
    switch (f->type) {
    case KP_T_BOOL: return *(const bool *)p == (f->def != 0);
    case KP_T_INT8: return *(const int8_t *)p == (int8_t)f->def;
    case KP_T_INT16: return *(const int16_t *)p == (int16_t)f->def;
    case KP_T_UINT16: return *(const uint16_t *)p == (uint16_t)f->def;
    case KP_T_INT32: return *(const int32_t *)p == (int32_t)f->def;
    case KP_T_INT64: return *(const int64_t *)p == f->def;
    case KP_T_FLOAT64: return *(const double *)p == (double)f->def;
    case KP_T_UUID: {
        static const uint8_t zero[16];
        return memcmp(p, zero, 16) == 0;
    }
    case KP_T_STRING: {
        const kp_str_t *s = p;
        return kp_field_null_default(f) ? s->len < 0 : s->len <= 0;
    }
    case KP_T_BYTES: {
        const kp_bytes_t *s = p;
        return kp_field_null_default(f) ? s->len < 0 : s->len <= 0;
    }
    case KP_T_RECORDS: {
        const kp_records_t *s = p;
        return kp_field_null_default(f) ? s->len < 0 : s->len <= 0;
    }
    case KP_T_STRUCT: return kp_struct_is_default(f->sub, p);
    case KP_T_ARRAY: return ((const kp_arr_any_t *)p)->n == 0;
    }
    return true;
}

static bool kp_struct_is_default(const kp_struct_desc_t *d, const uint8_t *in) {
    for (uint16_t i = 0; i < d->nfields; i++)
        if (!kp_field_is_default(&d->fields[i], in)) return false;
    return true;
}

static void kp_encode_struct(const kp_struct_desc_t *d, int16_t v, bool flex, const uint8_t *in, rb_chain_t *c) {
    for (uint16_t i = 0; i < d->nfields; i++) {
        const kp_field_desc_t *f = &d->fields[i];
        if (!kp_field_present(f, v, flex) || f->tag >= 0) continue;
        kp_encode_field(f, v, flex, in, c);
    }
    if (!flex) return;
    /* tagged fields: those present at v and not at their default, ascending tag */
    const kp_field_desc_t *tagged[32];
    int nt = 0;
    for (uint16_t i = 0; i < d->nfields && nt < 32; i++) {
        const kp_field_desc_t *f = &d->fields[i];
        if (kp_field_tagged(f, v, flex) && !kp_field_is_default(f, in)) tagged[nt++] = f;
    }
    for (int i = 1; i < nt; i++) /* insertion sort by tag; nt is tiny */
        for (int j = i; j > 0 && tagged[j - 1]->tag > tagged[j]->tag; j--) {
            const kp_field_desc_t *t = tagged[j];
            tagged[j] = tagged[j - 1];
            tagged[j - 1] = t;
        }
    rb_buf_uvarint(&c->buf, (uint64_t)nt);
    for (int i = 0; i < nt; i++) {
        rb_chain_t tmp;
        rb_chain_init(&tmp);
        kp_encode_field(tagged[i], v, flex, in, &tmp);
        rb_buf_uvarint(&c->buf, (uint64_t)tagged[i]->tag);
        rb_buf_uvarint(&c->buf, tmp.buf.len);
        rb_buf_put(&c->buf, tmp.buf.p, tmp.buf.len);
        rb_chain_free(&tmp);
    }
}

void kp_encode(const kp_struct_desc_t *d, int16_t version, bool flexible, const void *in, rb_chain_t *out) {
    kp_encode_struct(d, version, flexible, in, out);
}

/* ---- API table and headers ------------------------------------------------------ */

const kp_api_desc_t *kp_api_find(int16_t key) {
    int lo = 0, hi = kp_api_ndescs - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (kp_api_descs[mid].key == key) return &kp_api_descs[mid];
        if (kp_api_descs[mid].key < key) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

int kp_req_header_version(int16_t api_key, int16_t api_version) {
    const kp_api_desc_t *a = kp_api_find(api_key);
    if (a && kp_api_flexible(a, api_version)) return 2;
    return 1;
}

int kp_resp_header_version(int16_t api_key, int16_t api_version) {
    if (api_key == 18) return 0; /* ApiVersions: header v0 always */
    const kp_api_desc_t *a = kp_api_find(api_key);
    return a && kp_api_flexible(a, api_version) ? 1 : 0;
}

static int kp_skip_tags(rb_rd_t *rd) {
    uint32_t n = rb_rd_uvarint32(rd);
    for (uint32_t i = 0; i < n && rb_rd_ok(rd); i++) {
        rb_rd_uvarint32(rd);
        uint32_t size = rb_rd_uvarint32(rd);
        rb_rd_bytes(rd, size);
    }
    return rd->err;
}

int kp_req_header_decode(rb_rd_t *rd, kp_req_header_t *h) {
    h->api_key = rb_rd_i16(rd);
    h->api_version = rb_rd_i16(rd);
    h->correlation_id = rb_rd_i32(rd);
    h->client_id.p = "";
    h->client_id.len = -1;
    if (!rb_rd_ok(rd)) return rd->err;
    const kp_api_desc_t *a = kp_api_find(h->api_key);
    if (!a || h->api_version < a->min_ver || h->api_version > a->max_ver) return RB_ERR_NOT_FOUND;
    int16_t n = rb_rd_i16(rd); /* client_id: nullable, never compact */
    if (!rb_rd_ok(rd)) return rd->err;
    if (n < -1) return RB_ERR_MALFORMED;
    if (n >= 0) {
        const uint8_t *b = rb_rd_bytes(rd, (size_t)n);
        if (!b) return rd->err;
        h->client_id.p = (const char *)b;
        h->client_id.len = n;
    }
    if (kp_api_flexible(a, h->api_version)) return kp_skip_tags(rd);
    return 0;
}

void kp_req_header_encode(const kp_req_header_t *h, rb_chain_t *out) {
    rb_buf_u16(&out->buf, (uint16_t)h->api_key);
    rb_buf_u16(&out->buf, (uint16_t)h->api_version);
    rb_buf_u32(&out->buf, (uint32_t)h->correlation_id);
    rb_buf_u16(&out->buf, (uint16_t)(h->client_id.len < 0 ? -1 : h->client_id.len));
    if (h->client_id.len > 0) rb_buf_put(&out->buf, h->client_id.p, (size_t)h->client_id.len);
    if (kp_req_header_version(h->api_key, h->api_version) >= 2) rb_buf_uvarint(&out->buf, 0);
}

void kp_resp_header_encode(int16_t api_key, int16_t api_version, int32_t correlation_id, rb_chain_t *out) {
    rb_buf_u32(&out->buf, (uint32_t)correlation_id);
    if (kp_resp_header_version(api_key, api_version) >= 1) rb_buf_uvarint(&out->buf, 0);
}
