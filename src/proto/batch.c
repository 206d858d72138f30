/*
 * batch.c — record batch v2: header parsing, produce-time validation, record
 * iteration and building.
 *
 * What a client may send (produce v3+) is checked here, in Kafka's order and
 * with Kafka's answers where Kafka has a deliberate one:
 *
 *   check                                            answer
 *   -----------------------------------------------  ----------------------------
 *   batches whole, back to back, nothing trailing    CORRUPT_MESSAGE
 *   magic == 2                                       CORRUPT_MESSAGE (see KP_ERR_MAGIC)
 *   batch_length >= 49                               CORRUPT_MESSAGE
 *   base_offset == 0 (the broker assigns offsets)    INVALID_RECORD
 *   12 + batch_length <= max_batch_bytes             MESSAGE_TOO_LARGE
 *   CRC-32C of bytes 21..end                         CORRUPT_MESSAGE
 *   codec 0..4                                       UNSUPPORTED_COMPRESSION_TYPE
 *   last_offset_delta + 1 >= 1, records_count >= 1,
 *     last_offset_delta + 1 == records_count         INVALID_RECORD
 *   not a control batch                              INVALID_RECORD
 *   producer_id >= 0 implies base_sequence >= 0      INVALID_RECORD
 *   records section decompresses within the cap      CORRUPT_MESSAGE
 *   each record parses exactly to its length,
 *     lengths >= -1, header keys not null, offset
 *     deltas 0..n-1, exactly records_count records
 *     ending exactly at the section's end            INVALID_RECORD
 *
 * Batch-level damage (lengths, CRC, what decompression finds) is
 * CORRUPT_MESSAGE, which Kafka clients treat as retriable: it is what a
 * damaged transfer looks like. What is wrong inside a batch whose CRC matched
 * was sent that way on purpose and will not improve on retry: Kafka throws
 * InvalidRecordException for all of it (DefaultRecord's "Invalid record size",
 * "Found invalid record structure", DefaultRecordBatch's "Incorrect declared
 * batch size"), which it answers INVALID_RECORD, and so do we.
 *
 * Limits: lim may be NULL; max_batch_bytes 0 means no size limit;
 * max_decompressed_bytes 0 means KP_DECOMP_DEFAULT_CAP (64 MiB). Every batch
 * is decompressed and every record parsed, whatever check_keys says (Kafka
 * does the same), so keyless_record is always set.
 *
 * Info: max_timestamp and first_timestamp come from the records themselves
 * (base_timestamp + delta), not from the header's max_timestamp, which a
 * client may have got wrong (Kafka rewrites it for CreateTime topics; see
 * LogValidator). any_control stays false: a control batch is refused. After
 * a failure info is partial and means nothing.
 *
 * Memory: validation allocates only the decompression buffer, bounded by the
 * decompression cap; no length from the wire is used before it is checked
 * against the bytes present.
 */
#include "proto/proto.h"

#include <stdio.h>
#include <stdlib.h>

/* Kafka 2.4+ answers a non-v2 batch in produce v3+ with INVALID_RECORD
 * (ProduceRequest.validateRecords throws InvalidRecordException); 0.11..2.3
 * answered CORRUPT_MESSAGE. Our contract (proto.h) says CORRUPT_MESSAGE. */
#define KP_ERR_MAGIC RB_CORRUPT_MESSAGE

/* A codec id 5..7: Kafka has no deliberate answer (CompressionType.forId throws
 * an IllegalArgumentException, which surfaces as UNKNOWN_SERVER_ERROR); we say
 * what is wrong instead. */
#define KP_ERR_CODEC RB_UNSUPPORTED_COMPRESSION_TYPE

/* Decompression cap when the caller gives none. */
#define KP_DECOMP_DEFAULT_CAP (64u * 1024u * 1024u)

#define KP_BATCH_MIN_LENGTH (KP_BATCH_HEADER_SIZE - KP_BATCH_LOG_OVERHEAD) /* 49 */
#define KP_CRC_START 21

/* ---- header ------------------------------------------------------------------ */
static void kp_hdr_read(const uint8_t *p, kp_batch_hdr_t *h) {
    h->base_offset = (int64_t)rb_be64(p);
    h->batch_length = (int32_t)rb_be32(p + 8);
    h->partition_leader_epoch = (int32_t)rb_be32(p + 12);
    h->magic = (int8_t)p[16];
    h->crc = rb_be32(p + 17);
    h->attributes = (int16_t)rb_be16(p + 21);
    h->last_offset_delta = (int32_t)rb_be32(p + 23);
    h->base_timestamp = (int64_t)rb_be64(p + 27);
    h->max_timestamp = (int64_t)rb_be64(p + 35);
    h->producer_id = (int64_t)rb_be64(p + 43);
    h->producer_epoch = (int16_t)rb_be16(p + 51);
    h->base_sequence = (int32_t)rb_be32(p + 53);
    h->records_count = (int32_t)rb_be32(p + 57);
}

int kp_batch_hdr_parse(const uint8_t *p, size_t len, kp_batch_hdr_t *h) {
    if (len < KP_BATCH_LOG_OVERHEAD) return RB_ERR_TRUNCATED;
    int32_t bl = (int32_t)rb_be32(p + 8);
    if (bl < KP_BATCH_MIN_LENGTH) return RB_CORRUPT_MESSAGE;
    if (len < KP_BATCH_HEADER_SIZE || (size_t)bl > len - KP_BATCH_LOG_OVERHEAD) return RB_ERR_TRUNCATED;
    kp_hdr_read(p, h);
    return 0;
}

/* ---- records ----------------------------------------------------------------- */
/* A varint length of a nullable byte string: -1 is null, below that is bad. */
static kp_bytes_t kp_rd_nbytes(rb_rd_t *rd) {
    kp_bytes_t b = {NULL, -1};
    int32_t n = rb_rd_varint32(rd);
    if (n < -1) rb_rd_fail(rd, RB_ERR_MALFORMED);
    if (n <= 0 || !rb_rd_ok(rd)) {
        if (n == 0) b.len = 0, b.p = rd->p;
        return b;
    }
    b.p = rb_rd_bytes(rd, (size_t)n);
    b.len = b.p ? n : -1;
    return b;
}

int kp_record_next(rb_rd_t *rd, kp_record_t *r) {
    memset(r, 0, sizeof(*r));
    int32_t len = rb_rd_varint32(rd);
    if (!rb_rd_ok(rd) || len < 0 || (size_t)len > rb_rd_left(rd)) goto fail;
    rb_rd_t body;
    rb_rd_init(&body, rd->p, (size_t)len);
    r->attributes = rb_rd_i8(&body);
    r->timestamp_delta = rb_rd_varint64(&body);
    r->offset_delta = rb_rd_varint32(&body);
    r->key = kp_rd_nbytes(&body);
    r->value = kp_rd_nbytes(&body);
    r->nheaders = rb_rd_varint32(&body);
    /* every header takes at least two bytes (two one-byte lengths) */
    if (!rb_rd_ok(&body) || r->nheaders < 0 || (size_t)r->nheaders > rb_rd_left(&body) / 2) goto fail;
    r->headers = body.p;
    for (int32_t i = 0; i < r->nheaders; i++) {
        int32_t klen = rb_rd_varint32(&body);
        if (klen < 0) goto fail; /* header keys are never null */
        rb_rd_bytes(&body, (size_t)klen);
        kp_rd_nbytes(&body);
        if (!rb_rd_ok(&body)) goto fail;
    }
    if (!rb_rd_ok(&body) || body.p != body.end) goto fail;
    r->headers_len = (size_t)(body.p - r->headers);
    rd->p += len;
    return 0;
fail:
    rb_rd_fail(rd, RB_ERR_MALFORMED);
    return RB_CORRUPT_MESSAGE;
}

/* ---- validation -------------------------------------------------------------- */
typedef struct {
    const kp_batch_limits_t *lim;
    kp_batch_info_t *info;
    char *msg;
    size_t msg_size;
    rb_buf_t scratch; /* decompressed records of the current batch */
} kp_vctx_t;

static int kp_vfail(kp_vctx_t *v, int err, int32_t bi, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int kp_vfail(kp_vctx_t *v, int err, int32_t bi, size_t at, const char *fmt, ...) {
    if (v->msg && v->msg_size) {
        int n = snprintf(v->msg, v->msg_size, "batch %d at byte %zu: ", (int)bi, at);
        if (n >= 0 && (size_t)n < v->msg_size) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(v->msg + n, v->msg_size - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return err;
}

/* Walks the records section; checks framing, offset deltas and the count. */
static int kp_records_check(kp_vctx_t *v, const kp_batch_hdr_t *h, const uint8_t *p, size_t len, int32_t bi,
                            size_t at) {
    static const uint8_t none[1];
    rb_rd_t rd;
    rb_rd_init(&rd, p ? p : none, len); /* an empty buffer may have p == NULL */
    kp_record_t r;
    for (int32_t i = 0; i < h->records_count; i++) {
        if (rb_rd_left(&rd) == 0)
            return kp_vfail(v, RB_INVALID_RECORD, bi, at, "records section ends after %d of %d records", (int)i,
                            (int)h->records_count);
        if (kp_record_next(&rd, &r))
            return kp_vfail(v, RB_INVALID_RECORD, bi, at, "record %d is malformed", (int)i);
        if (r.offset_delta != i)
            return kp_vfail(v, RB_INVALID_RECORD, bi, at, "record %d has offset delta %d", (int)i,
                            (int)r.offset_delta);
        int64_t ts = (int64_t)((uint64_t)h->base_timestamp + (uint64_t)r.timestamp_delta);
        if (ts > v->info->max_timestamp) v->info->max_timestamp = ts;
        if (v->info->nbatches == 0 && i == 0) v->info->first_timestamp = ts;
        if (r.key.len < 0) v->info->keyless_record = true;
    }
    if (rb_rd_left(&rd) != 0)
        return kp_vfail(v, RB_INVALID_RECORD, bi, at, "%zu bytes follow the last of %d records", rb_rd_left(&rd),
                        (int)h->records_count);
    return 0;
}

static int kp_batch_check(kp_vctx_t *v, const uint8_t *p, size_t left, int32_t bi, size_t at, size_t *used) {
    kp_batch_hdr_t h;
    if (left < KP_BATCH_LOG_OVERHEAD)
        return kp_vfail(v, RB_CORRUPT_MESSAGE, bi, at, "%zu trailing bytes are not a whole batch", left);
    int32_t bl = (int32_t)rb_be32(p + 8);
    /* the magic byte decides how the rest reads, so it is looked at first */
    if (left > 16 && bl >= 5 && p[16] != 2)
        return kp_vfail(v, KP_ERR_MAGIC, bi, at, "magic %d is not supported (only record batch v2)", (int8_t)p[16]);
    if (bl < KP_BATCH_MIN_LENGTH)
        return kp_vfail(v, RB_CORRUPT_MESSAGE, bi, at, "batch length %d is below the minimum %d", (int)bl,
                        KP_BATCH_MIN_LENGTH);
    if ((size_t)bl > left - KP_BATCH_LOG_OVERHEAD)
        return kp_vfail(v, RB_CORRUPT_MESSAGE, bi, at, "batch length %d exceeds the %zu bytes present", (int)bl,
                        left - KP_BATCH_LOG_OVERHEAD);
    size_t total = KP_BATCH_LOG_OVERHEAD + (size_t)bl;
    int64_t base = (int64_t)rb_be64(p);
    if (base != 0) /* offsets are the broker's to assign */
        return kp_vfail(v, RB_INVALID_RECORD, bi, at, "base offset %lld, but a produced batch must say 0",
                        (long long)base);
    if (v->lim->max_batch_bytes && total > v->lim->max_batch_bytes)
        return kp_vfail(v, RB_MESSAGE_TOO_LARGE, bi, at, "batch of %zu bytes exceeds the maximum %zu", total,
                        v->lim->max_batch_bytes);
    kp_hdr_read(p, &h);
    uint32_t crc = rb_crc32c(0, p + KP_CRC_START, total - KP_CRC_START);
    if (crc != h.crc)
        return kp_vfail(v, RB_CORRUPT_MESSAGE, bi, at, "CRC-32C mismatch (stored %08x, computed %08x)", h.crc, crc);
    int codec = h.attributes & KP_ATTR_COMPRESSION_MASK;
    if (codec > KP_COMP_ZSTD)
        return kp_vfail(v, KP_ERR_CODEC, bi, at, "unknown compression codec %d", codec);
    if ((int64_t)h.last_offset_delta + 1 <= 0)
        return kp_vfail(v, RB_INVALID_RECORD, bi, at, "invalid last offset delta %d", (int)h.last_offset_delta);
    if (h.records_count <= 0)
        return kp_vfail(v, RB_INVALID_RECORD, bi, at, "invalid record count %d", (int)h.records_count);
    if ((int64_t)h.last_offset_delta + 1 != h.records_count)
        return kp_vfail(v, RB_INVALID_RECORD, bi, at, "last offset delta %d does not match record count %d",
                        (int)h.last_offset_delta, (int)h.records_count);
    if (h.attributes & KP_ATTR_CONTROL)
        return kp_vfail(v, RB_INVALID_RECORD, bi, at, "clients may not write control batches");
    if (h.producer_id >= 0 && h.base_sequence < 0)
        return kp_vfail(v, RB_INVALID_RECORD, bi, at, "producer id %lld with base sequence %d",
                        (long long)h.producer_id, (int)h.base_sequence);

    const uint8_t *rec = p + KP_BATCH_HEADER_SIZE;
    size_t rec_len = total - KP_BATCH_HEADER_SIZE;
    if (codec != KP_COMP_NONE) {
        size_t cap = v->lim->max_decompressed_bytes ? v->lim->max_decompressed_bytes : KP_DECOMP_DEFAULT_CAP;
        rb_buf_reset(&v->scratch);
        int rc = kp_decompress((kp_compression_t)codec, rec, rec_len, cap, &v->scratch);
        if (rc == RB_ERR_NOMEM) /* our trouble, not the client's; never an internal code on the wire */
            return kp_vfail(v, RB_UNKNOWN_SERVER_ERROR, bi, at, "out of memory decompressing (codec %d)", codec);
        if (rc)
            return kp_vfail(v, RB_CORRUPT_MESSAGE, bi, at, "records do not decompress (codec %d) within %zu bytes",
                            codec, cap);
        rec = v->scratch.p;
        rec_len = v->scratch.len;
        v->info->any_compressed = true;
    }
    /* every record takes at least 7 bytes: refuse absurd counts before work */
    if ((size_t)h.records_count > rec_len / 7)
        return kp_vfail(v, RB_INVALID_RECORD, bi, at, "record count %d cannot fit in %zu bytes",
                        (int)h.records_count, rec_len);
    int rc = kp_records_check(v, &h, rec, rec_len, bi, at);
    if (rc) return rc;

    kp_batch_info_t *info = v->info;
    if (info->nbatches == 0) info->producer_id = h.producer_id;
    info->nbatches++;
    info->nrecords += h.records_count;
    if (h.attributes & KP_ATTR_TRANSACTIONAL) info->any_transactional = true;
    *used = total;
    return 0;
}

int kp_batch_validate(const uint8_t *p, size_t len, const kp_batch_limits_t *lim, kp_batch_info_t *info,
                      char *errmsg, size_t errmsg_size) {
    kp_batch_info_t tmp;
    kp_batch_limits_t nolim = {0, 0, false};
    kp_vctx_t v = {lim ? lim : &nolim, info ? info : &tmp, errmsg, errmsg_size, {NULL, 0, 0}};
    memset(v.info, 0, sizeof(*v.info));
    v.info->producer_id = -1;
    v.info->max_timestamp = -1;
    v.info->first_timestamp = -1;
    if (errmsg && errmsg_size) errmsg[0] = 0;
    int rc = 0;
    if (len == 0) {
        rc = kp_vfail(&v, RB_INVALID_RECORD, 0, 0, "no record batch");
        goto fail;
    }
    size_t off = 0;
    for (int32_t bi = 0; off < len; bi++) {
        size_t used = 0;
        rc = kp_batch_check(&v, p + off, len - off, bi, off, &used);
        if (rc) goto fail;
        off += used;
    }
fail:
    rb_buf_free(&v.scratch);
    return rc;
}

/* ---- building ---------------------------------------------------------------- */
static size_t kp_nbytes_size(kp_bytes_t b) {
    return b.len < 0 ? 1 : rb_varint_size(b.len) + (size_t)b.len;
}

static void kp_put_nbytes(rb_buf_t *out, kp_bytes_t b) {
    rb_buf_varint(out, b.len < 0 ? -1 : b.len);
    if (b.len > 0) rb_buf_put(out, b.p, (size_t)b.len);
}

static void kp_record_put(rb_buf_t *out, const kp_record_in_t *r, int32_t delta, int64_t base_ts) {
    int64_t ts_delta = (int64_t)((uint64_t)r->timestamp - (uint64_t)base_ts);
    size_t body = 1 + rb_varint_size(ts_delta) + rb_varint_size(delta) + kp_nbytes_size(r->key) +
                  kp_nbytes_size(r->value) + rb_varint_size(r->nheaders);
    for (int32_t i = 0; i < r->nheaders; i++)
        body += kp_nbytes_size(r->header_keys[i]) + kp_nbytes_size(r->header_values[i]);
    rb_buf_varint(out, (int64_t)body);
    rb_buf_u8(out, 0); /* record attributes: unused */
    rb_buf_varint(out, ts_delta);
    rb_buf_varint(out, delta);
    kp_put_nbytes(out, r->key);
    kp_put_nbytes(out, r->value);
    rb_buf_varint(out, r->nheaders);
    for (int32_t i = 0; i < r->nheaders; i++) {
        kp_put_nbytes(out, r->header_keys[i]);
        kp_put_nbytes(out, r->header_values[i]);
    }
}

void kp_batch_build(rb_buf_t *out, int64_t base_offset, kp_compression_t codec, const kp_record_in_t *recs,
                    int n, int64_t producer_id, int16_t producer_epoch, int32_t base_sequence, int16_t extra_attrs) {
    if ((unsigned)codec > KP_COMP_ZSTD || n < 0) {
        fprintf(stderr, "rill: kp_batch_build: bad codec %d or count %d\n", (int)codec, n);
        abort();
    }
    int64_t base_ts = n > 0 ? recs[0].timestamp : -1, max_ts = -1;
    for (int i = 0; i < n; i++) max_ts = RB_MAX(max_ts, recs[i].timestamp);

    size_t start = out->len;
    rb_buf_reserve(out, KP_BATCH_HEADER_SIZE);
    memset(out->p + start, 0, KP_BATCH_HEADER_SIZE);
    out->len += KP_BATCH_HEADER_SIZE;
    if (codec == KP_COMP_NONE) {
        for (int i = 0; i < n; i++) kp_record_put(out, &recs[i], i, base_ts);
    } else {
        rb_buf_t plain;
        rb_buf_init(&plain);
        for (int i = 0; i < n; i++) kp_record_put(&plain, &recs[i], i, base_ts);
        int rc = kp_compress(codec, plain.p, plain.len, out);
        rb_buf_free(&plain);
        if (rc) {
            fprintf(stderr, "rill: kp_batch_build: compression failed: %s\n", rb_err_name(rc));
            abort();
        }
    }
    uint8_t *h = out->p + start;
    size_t total = out->len - start;
    rb_wbe64(h, (uint64_t)base_offset);
    rb_wbe32(h + 8, (uint32_t)(total - KP_BATCH_LOG_OVERHEAD));
    rb_wbe32(h + 12, (uint32_t)-1); /* partition leader epoch: unknown, as producers send */
    h[16] = 2;
    rb_wbe16(h + 21, (uint16_t)((extra_attrs & ~KP_ATTR_COMPRESSION_MASK) | (int)codec));
    rb_wbe32(h + 23, (uint32_t)(n > 0 ? n - 1 : -1));
    rb_wbe64(h + 27, (uint64_t)base_ts);
    rb_wbe64(h + 35, (uint64_t)max_ts);
    rb_wbe64(h + 43, (uint64_t)producer_id);
    rb_wbe16(h + 51, (uint16_t)producer_epoch);
    rb_wbe32(h + 53, (uint32_t)base_sequence);
    rb_wbe32(h + 57, (uint32_t)n);
    rb_wbe32(h + 17, rb_crc32c(0, h + KP_CRC_START, total - KP_CRC_START));
}
