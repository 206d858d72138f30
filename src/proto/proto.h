/*
 * proto — the Kafka wire protocol: message declarations, one table-driven
 * codec for every version, record batch v2 validation and compression.
 *
 * Owns:
 *  - Our message schemas (src/proto/schema/ — the .kps format is in kpgen.py's header),
 *    turned at build time by kpgen.py into gen/proto/kp_msgs.{h,c}: one C
 *    struct per message and nested struct, plus a descriptor table the codec
 *    walks. Every API's request and response is declared once; versions,
 *    nullability, tags and defaults are data, not code.
 *  - The codec (codec.c): kp_decode / kp_encode for any descriptor and version,
 *    flexible (compact strings/arrays, tagged fields) or not.
 *  - Request/response headers (kp_req_header_decode, kp_resp_header_encode).
 *  - Record batch v2 (batch.c): validation of a produce payload, decompression
 *    with a hard output cap (compress.c), iteration over records.
 *
 * Invariants:
 *  1. Decoding never reads past the input and never allocates from an
 *     unchecked length: an array count is checked against the bytes left
 *     (each element needs at least one byte) before anything is allocated, and
 *     all allocation is from the caller's capped arena.
 *  2. Decoded strings/bytes point into the input buffer (zero copy); they live
 *     as long as that buffer.
 *  3. A field absent in the decoded version holds its declared default.
 *     Fields absent in the encoded version are not written.
 *  4. Unknown tagged fields are skipped on decode; tagged fields equal to their
 *     default are not written on encode.
 *  5. kp_batch_validate accepts a records blob only if every batch in it is a
 *     well-formed magic-2 batch whose CRC-32C matches and whose records parse
 *     exactly to the batch end (decompressing, within a cap, when compressed).
 *
 * Threads: all functions are reentrant; tables are const.
 */
#ifndef RILL_PROTO_H
#define RILL_PROTO_H

#include "base/base.h"

/* ---- value types used by generated structs --------------------------------- */
typedef struct {
    const char *p;
    int32_t len; /* -1: null */
} kp_str_t;

typedef struct {
    const uint8_t *p;
    int32_t len; /* -1: null */
} kp_bytes_t;

/* Record data. On decode: p/len point into the request. On encode: either
 * memory (p/len) or, when in_file, a file range that leaves by sendfile; the
 * encoder hands fd to the output chain, which owns and closes it. */
typedef struct {
    const uint8_t *p;
    int32_t len; /* -1: null */
    bool in_file;
    int fd;
    int64_t file_off;
} kp_records_t;

typedef struct {
    uint8_t b[16];
} kp_uuid_t;

#define KP_ARR(T) \
    struct {      \
        int32_t n; /* -1: null array */ \
        T *v;     \
    }

/* ---- descriptors (filled by the generator) -------------------------------- */
typedef enum {
    KP_T_BOOL = 1,
    KP_T_INT8,
    KP_T_INT16,
    KP_T_UINT16,
    KP_T_INT32,
    KP_T_INT64,
    KP_T_FLOAT64,
    KP_T_UUID,
    KP_T_STRING,  /* kp_str_t */
    KP_T_BYTES,   /* kp_bytes_t */
    KP_T_RECORDS, /* kp_records_t */
    KP_T_STRUCT,  /* nested struct, not an array */
    KP_T_ARRAY,   /* KP_ARR(elem) where elem is given by elem_type / sub */
} kp_type_t;

typedef struct kp_struct_desc kp_struct_desc_t;

typedef struct {
    const char *name;
    uint8_t type;          /* kp_type_t */
    uint8_t elem_type;     /* for KP_T_ARRAY: element type (KP_T_STRUCT for structs) */
    int16_t vmin, vmax;    /* versions the field exists in (vmax 0x7fff = open) */
    int16_t nmin, nmax;    /* nullable versions (nmin -1: never nullable) */
    int16_t tag;           /* -1: not tagged; else tag number in tmin..tmax */
    int16_t tmin, tmax;    /* tagged versions */
    uint32_t offset;       /* offsetof in the C struct */
    int64_t def;           /* default for integer/bool fields */
    const kp_struct_desc_t *sub; /* KP_T_STRUCT, or ARRAY of structs */
} kp_field_desc_t;

struct kp_struct_desc {
    const char *name;
    uint32_t size; /* sizeof the C struct */
    uint16_t nfields;
    const kp_field_desc_t *fields;
};

typedef struct {
    int16_t key;
    const char *name;
    int16_t min_ver, max_ver; /* the versions our schema declares */
    int16_t flex_min;         /* first flexible version, or -1 */
    const kp_struct_desc_t *req;
    const kp_struct_desc_t *resp;
} kp_api_desc_t;

/* Generated: kp_api_descs[] (sorted by key), KP_API_* keys, structs, descs. */
#include "proto/kp_msgs.h"

const kp_api_desc_t *kp_api_find(int16_t key); /* NULL if not declared */
static inline bool kp_api_flexible(const kp_api_desc_t *a, int16_t v) {
    return a->flex_min >= 0 && v >= a->flex_min;
}

/* ---- codec ---------------------------------------------------------------------- */
/* Decodes one struct of `d` at `version` into `out` (which must be d->size
 * bytes, zeroed or not). Returns 0, RB_ERR_TRUNCATED, RB_ERR_MALFORMED, or
 * RB_ERR_NOMEM (arena cap). */
int kp_decode(const kp_struct_desc_t *d, int16_t version, bool flexible, rb_rd_t *rd, void *out,
              rb_arena_t *arena);
/* Encodes `in` at `version` onto the end of `out`. */
void kp_encode(const kp_struct_desc_t *d, int16_t version, bool flexible, const void *in, rb_chain_t *out);
/* Sets every field of `out` to its declared default (arrays empty, strings
 * null where nullable else empty, records null). */
void kp_init_defaults(const kp_struct_desc_t *d, void *out);

/* ---- headers ------------------------------------------------------------------- */
typedef struct {
    int16_t api_key;
    int16_t api_version;
    int32_t correlation_id;
    kp_str_t client_id; /* header v1+; nullable, never compact */
} kp_req_header_t;

/* Request header version for (api, version): 2 when flexible, else 1 (and 0
 * for ControlledShutdown v0, which we do not serve). */
int kp_req_header_version(int16_t api_key, int16_t api_version);
/* Response header version: 1 when flexible, else 0 — except ApiVersions,
 * whose response header is always v0. */
int kp_resp_header_version(int16_t api_key, int16_t api_version);

/* Decodes the header at the start of a request frame (the 4-byte size already
 * stripped). For an api key we do not declare, or a version outside the
 * declared range, only api_key/api_version/correlation_id are decoded and
 * rd is left after them; the result is RB_ERR_NOT_FOUND. */
int kp_req_header_decode(rb_rd_t *rd, kp_req_header_t *h);
void kp_resp_header_encode(int16_t api_key, int16_t api_version, int32_t correlation_id, rb_chain_t *out);
/* Encodes a request header (for tests and tools). */
void kp_req_header_encode(const kp_req_header_t *h, rb_chain_t *out);

/* ---- record batch v2 --------------------------------------------------------------
 * Layout (offsets in bytes): baseOffset i64 @0, batchLength i32 @8,
 * partitionLeaderEpoch i32 @12, magic i8 @16, crc u32 @17 (CRC-32C of bytes
 * 21..end), attributes i16 @21, lastOffsetDelta i32 @23, baseTimestamp i64 @27,
 * maxTimestamp i64 @35, producerId i64 @43, producerEpoch i16 @51,
 * baseSequence i32 @53, recordsCount i32 @57, records @61. */
#define KP_BATCH_HEADER_SIZE 61
#define KP_BATCH_LOG_OVERHEAD 12 /* baseOffset + batchLength */
#define KP_ATTR_COMPRESSION_MASK 0x07
#define KP_ATTR_TIMESTAMP_TYPE 0x08 /* 1: LogAppendTime */
#define KP_ATTR_TRANSACTIONAL 0x10
#define KP_ATTR_CONTROL 0x20
#define KP_ATTR_DELETE_HORIZON 0x40

typedef enum {
    KP_COMP_NONE = 0,
    KP_COMP_GZIP = 1,
    KP_COMP_SNAPPY = 2,
    KP_COMP_LZ4 = 3,
    KP_COMP_ZSTD = 4,
} kp_compression_t;

typedef struct {
    int64_t base_offset;
    int32_t batch_length; /* bytes after the length field */
    int32_t partition_leader_epoch;
    int8_t magic;
    uint32_t crc;
    int16_t attributes;
    int32_t last_offset_delta;
    int64_t base_timestamp;
    int64_t max_timestamp;
    int64_t producer_id;
    int16_t producer_epoch;
    int32_t base_sequence;
    int32_t records_count;
} kp_batch_hdr_t;

/* Parses the fixed header of the batch at p (len bytes available); checks only
 * that the header fits and batch_length is sane (>= 49 and fits in len).
 * Returns 0 or RB_ERR_TRUNCATED / RB_CORRUPT_MESSAGE. */
int kp_batch_hdr_parse(const uint8_t *p, size_t len, kp_batch_hdr_t *h);

typedef struct {
    int32_t nbatches;
    int64_t nrecords;       /* sum of records_count */
    int64_t max_timestamp;  /* over all batches */
    int64_t first_timestamp;
    bool any_compressed;
    bool any_transactional;
    bool any_control;
    bool keyless_record;    /* some record has a null key (for compacted topics) */
    int64_t producer_id;    /* of the first batch (-1 if none) */
} kp_batch_info_t;

typedef struct {
    size_t max_batch_bytes;        /* message.max.bytes: per batch incl. overhead */
    size_t max_decompressed_bytes; /* cap for one batch's decompressed records */
    bool check_keys;               /* set keyless_record (needs decompression) */
} kp_batch_limits_t;

/* Validates a produce records blob: one or more whole batches, back to back,
 * nothing trailing. Checks, per batch: header fits; batch_length consistent;
 * magic == 2 (else UNSUPPORTED_FOR_MESSAGE_FORMAT... we answer CORRUPT_MESSAGE
 * for magic 0/1 inside a v3+ produce, as Kafka does for an invalid batch);
 * CRC-32C; size <= max_batch_bytes (MESSAGE_TOO_LARGE); compression codec known;
 * records_count >= 1 and matches last_offset_delta+1 (INVALID_RECORD); each
 * record's framing (varint lengths, deltas) parses exactly to the end of the
 * (decompressed) records section; decompressed size <= cap (CORRUPT_MESSAGE).
 * Returns 0 or a Kafka error code (RB_CORRUPT_MESSAGE, RB_INVALID_RECORD,
 * RB_MESSAGE_TOO_LARGE, RB_UNSUPPORTED_COMPRESSION_TYPE...), with a
 * human-readable reason in errmsg (may be NULL). */
int kp_batch_validate(const uint8_t *p, size_t len, const kp_batch_limits_t *lim, kp_batch_info_t *info,
                      char *errmsg, size_t errmsg_size);

/* Decompresses `in` with codec into out (appending), failing with
 * RB_CORRUPT_MESSAGE if the result would exceed cap bytes or the input is bad. */
int kp_decompress(kp_compression_t codec, const uint8_t *in, size_t in_len, size_t cap, rb_buf_t *out);
/* Compresses (for tests, tools and later broker-side recompression). Kafka's
 * framings: gzip stream, snappy in xerial framing (what Java and librdkafka
 * write; raw snappy also accepted on decompress), lz4 frame, zstd frame. */
int kp_compress(kp_compression_t codec, const uint8_t *in, size_t in_len, rb_buf_t *out);

/* Record iteration (over an uncompressed records section). */
typedef struct {
    int8_t attributes;
    int64_t timestamp_delta;
    int32_t offset_delta;
    kp_bytes_t key;   /* len -1: null */
    kp_bytes_t value; /* len -1: null */
    int32_t nheaders;
    const uint8_t *headers; /* raw header bytes, nheaders entries */
    size_t headers_len;
} kp_record_t;

/* Reads one record at rd; returns 0 or RB_CORRUPT_MESSAGE. */
int kp_record_next(rb_rd_t *rd, kp_record_t *r);

/* Builds an uncompressed or compressed batch (tests, tools, the broker's own
 * internal topics later). Records get offset deltas 0..n-1. */
typedef struct {
    kp_bytes_t key, value;
    int64_t timestamp;
    int32_t nheaders;
    const kp_bytes_t *header_keys, *header_values;
} kp_record_in_t;
void kp_batch_build(rb_buf_t *out, int64_t base_offset, kp_compression_t codec, const kp_record_in_t *recs,
                    int n, int64_t producer_id, int16_t producer_epoch, int32_t base_sequence, int16_t extra_attrs);

#endif
