/* fuzz.c (request) — libFuzzer target for the request path's decoders: the
 * request header and the table-driven codec at whatever API/version the
 * header names. Checks: no crash or sanitizer report, no allocation past the
 * arena cap, and re-encoding a decoded request decodes again to the same
 * bytes (the codec agrees with itself on everything it accepts). */
#include <stdlib.h>

#include "proto/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    rb_rd_t rd;
    rb_rd_init(&rd, data, size);
    kp_req_header_t h;
    if (kp_req_header_decode(&rd, &h) != 0) return 0;
    const kp_api_desc_t *a = kp_api_find(h.api_key);
    if (!a) return 0;
    bool flex = kp_api_flexible(a, h.api_version);
    rb_arena_t ar;
    rb_arena_init(&ar, size * 4 + 65536); /* the broker's cap shape */
    void *req = rb_arena_alloc(&ar, a->req->size);
    if (req && kp_decode(a->req, h.api_version, flex, &rd, req, &ar) == 0) {
        rb_chain_t c1, c2;
        rb_chain_init(&c1);
        kp_encode(a->req, h.api_version, flex, req, &c1);
        rb_chain_finish(&c1);
        rb_arena_t ar2;
        rb_arena_init(&ar2, c1.buf.len * 4 + 65536);
        void *again = rb_arena_alloc(&ar2, a->req->size);
        rb_rd_t rd2;
        rb_rd_init(&rd2, c1.buf.p, c1.buf.len);
        if (kp_decode(a->req, h.api_version, flex, &rd2, again, &ar2) != 0 || rb_rd_left(&rd2) != 0) abort();
        rb_chain_init(&c2);
        kp_encode(a->req, h.api_version, flex, again, &c2);
        rb_chain_finish(&c2);
        if (c1.buf.len != c2.buf.len || (c1.buf.len && memcmp(c1.buf.p, c2.buf.p, c1.buf.len) != 0)) abort();
        rb_chain_free(&c1);
        rb_chain_free(&c2);
        rb_arena_free(&ar2);
    }
    rb_arena_free(&ar);
    return 0;
}
