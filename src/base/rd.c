/* rd.c — the bounds-checked reader: big-endian integers and varints. */
#include "base.h"

uint8_t rb__rd_u8_slow(rb_rd_t *rd) {
    if (rd->err || rd->end - rd->p < 1) { rb_rd_fail(rd, RB_ERR_TRUNCATED); return 0; }
    return *rd->p++;
}

uint16_t rb_rd_u16(rb_rd_t *rd) {
    if (rd->err || rd->end - rd->p < 2) { rb_rd_fail(rd, RB_ERR_TRUNCATED); return 0; }
    uint16_t v = rb_be16(rd->p);
    rd->p += 2;
    return v;
}

uint32_t rb_rd_u32(rb_rd_t *rd) {
    if (rd->err || rd->end - rd->p < 4) { rb_rd_fail(rd, RB_ERR_TRUNCATED); return 0; }
    uint32_t v = rb_be32(rd->p);
    rd->p += 4;
    return v;
}

uint64_t rb_rd_u64(rb_rd_t *rd) {
    if (rd->err || rd->end - rd->p < 8) { rb_rd_fail(rd, RB_ERR_TRUNCATED); return 0; }
    uint64_t v = rb_be64(rd->p);
    rd->p += 8;
    return v;
}

const uint8_t *rb_rd_bytes(rb_rd_t *rd, size_t n) {
    if (rd->err || (size_t)(rd->end - rd->p) < n) { rb_rd_fail(rd, RB_ERR_TRUNCATED); return NULL; }
    const uint8_t *p = rd->p;
    rd->p += n;
    return p;
}

static uint64_t rd_uvarint(rb_rd_t *rd, int max_bytes) {
    uint64_t v = 0;
    for (int i = 0; i < max_bytes; i++) {
        if (rd->err || rd->p >= rd->end) { rb_rd_fail(rd, RB_ERR_TRUNCATED); return 0; }
        uint8_t b = *rd->p++;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            /* the last byte of a maximal varint may not carry bits past the width */
            if (i == max_bytes - 1 && max_bytes == 5 && (b & 0x70)) break;
            if (i == max_bytes - 1 && max_bytes == 10 && (b & 0x7e)) break;
            return v;
        }
    }
    rb_rd_fail(rd, RB_ERR_MALFORMED);
    return 0;
}

uint32_t rb__rd_uvarint32_slow(rb_rd_t *rd) { return (uint32_t)rd_uvarint(rd, 5); }
uint64_t rb__rd_uvarint64_slow(rb_rd_t *rd) { return rd_uvarint(rd, 10); }
