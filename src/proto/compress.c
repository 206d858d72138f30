/*
 * compress.c — the four record-batch codecs Kafka uses (gzip, snappy, lz4,
 * zstd), with a hard cap on decompressed output.
 *
 * Every decompressor writes straight into the caller's buffer in slices no
 * larger than what is left of the cap (plus one byte, so that "exactly cap"
 * and "more than cap" can be told apart). The output buffer therefore never
 * grows past cap+1 bytes beyond where it started, whatever the input claims:
 * a decompression bomb fails with RB_CORRUPT_MESSAGE after at most that much
 * work and memory. Library-internal state is bounded as well: zstd's window
 * is limited (see kp_zstd_window_log), lz4 frames are at most 4 MiB blocks,
 * snappy chunks are sized from their own header and checked against the cap
 * before anything is allocated.
 *
 * Framings, as Kafka clients write them:
 *  - gzip: RFC 1952 members (concatenated members are accepted).
 *  - snappy: the xerial/snappy-java stream (magic, two version words, then
 *    [u32 big-endian length][raw snappy block]...), or one raw snappy block.
 *  - lz4: LZ4 frames (concatenated frames accepted).
 *  - zstd: zstd frames (concatenated and skippable frames accepted).
 */
#include "proto/proto.h"

#include <limits.h>
#include <lz4frame.h>
#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

#define KP_DECOMP_STEP (64u * 1024u)  /* growth step of the output buffer */
#define KP_SNAPPY_BLOCK (32u * 1024u) /* what snappy-java writes per chunk */

static const uint8_t kp_xerial_magic[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0};
#define KP_XERIAL_HDR 16 /* magic + version + compatible version */

/* Room for the next slice of output: at most `left` bytes (left >= 1). */
static uint8_t *kp_out_room(rb_buf_t *out, size_t left, size_t *room) {
    size_t n = RB_MIN((size_t)KP_DECOMP_STEP, left);
    rb_buf_reserve(out, n);
    *room = n;
    return out->p + out->len;
}

/* ---- gzip ---------------------------------------------------------------- */
static int kp_gzip_inflate(const uint8_t *in, size_t in_len, size_t cap, rb_buf_t *out) {
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (in_len == 0 || inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) return RB_CORRUPT_MESSAGE;
    int rc = RB_CORRUPT_MESSAGE;
    size_t made = 0, fed = 0;
    for (;;) {
        /* zlib counts in uInt; feed at most UINT_MAX at a time */
        if (zs.avail_in == 0 && fed < in_len) {
            size_t n = RB_MIN(in_len - fed, (size_t)UINT_MAX);
            zs.next_in = (Bytef *)(uintptr_t)(in + fed);
            zs.avail_in = (uInt)n;
            fed += n;
        }
        size_t room;
        zs.next_out = kp_out_room(out, cap + 1 - made, &room);
        zs.avail_out = (uInt)room;
        int zr = inflate(&zs, Z_NO_FLUSH);
        size_t got = room - zs.avail_out;
        out->len += got;
        made += got;
        if (made > cap) goto fail;
        if (zr == Z_STREAM_END) {
            if (zs.avail_in == 0 && fed == in_len) break;
            /* another gzip member follows */
            if (inflateReset(&zs) != Z_OK) goto fail;
            continue;
        }
        if (zr == Z_BUF_ERROR && got == 0 && zs.avail_in == 0 && fed == in_len) goto fail; /* truncated */
        if (zr != Z_OK && zr != Z_BUF_ERROR) goto fail;
    }
    rc = 0;
fail:
    inflateEnd(&zs);
    return rc;
}

static int kp_gzip_deflate(const uint8_t *in, size_t in_len, rb_buf_t *out) {
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (in_len > UINT_MAX / 2) return RB_ERR_INVALID_ARG;
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return RB_ERR_NOMEM;
    int rc = RB_UNKNOWN_SERVER_ERROR;
    size_t bound = deflateBound(&zs, (uLong)in_len) + 32; /* gzip header/trailer slack */
    rb_buf_reserve(out, bound);
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)in_len;
    zs.next_out = out->p + out->len;
    zs.avail_out = (uInt)bound;
    if (deflate(&zs, Z_FINISH) != Z_STREAM_END) goto fail;
    out->len += bound - zs.avail_out;
    rc = 0;
fail:
    deflateEnd(&zs);
    return rc;
}

/* ---- snappy ---------------------------------------------------------------- */
/* One raw snappy block, appended; its declared size is checked first. */
static int kp_snappy_block(const uint8_t *in, size_t in_len, size_t *made, size_t cap, rb_buf_t *out) {
    size_t ulen;
    if (in_len == 0) return RB_CORRUPT_MESSAGE;
    if (snappy_uncompressed_length((const char *)in, in_len, &ulen) != SNAPPY_OK) return RB_CORRUPT_MESSAGE;
    if (ulen > cap - *made) return RB_CORRUPT_MESSAGE;
    if (ulen == 0) return 0;
    /* the declared size is within the cap; snappy_uncompress checks the
     * block against it as it decodes */
    rb_buf_reserve(out, ulen);
    size_t n = ulen;
    if (snappy_uncompress((const char *)in, in_len, (char *)out->p + out->len, &n) != SNAPPY_OK || n != ulen)
        return RB_CORRUPT_MESSAGE;
    out->len += n;
    *made += n;
    return 0;
}

static int kp_snappy_inflate(const uint8_t *in, size_t in_len, size_t cap, rb_buf_t *out) {
    size_t made = 0;
    if (in_len < KP_XERIAL_HDR || memcmp(in, kp_xerial_magic, sizeof(kp_xerial_magic)) != 0)
        return kp_snappy_block(in, in_len, &made, cap, out);
    /* xerial: the two version words are not checked (snappy-java writes 1/1) */
    size_t off = KP_XERIAL_HDR;
    while (off < in_len) {
        if (in_len - off < 4) return RB_CORRUPT_MESSAGE;
        size_t clen = rb_be32(in + off);
        off += 4;
        if (clen > in_len - off) return RB_CORRUPT_MESSAGE;
        int rc = kp_snappy_block(in + off, clen, &made, cap, out);
        if (rc) return rc;
        off += clen;
    }
    return 0;
}

static int kp_snappy_deflate(const uint8_t *in, size_t in_len, rb_buf_t *out) {
    rb_buf_put(out, kp_xerial_magic, sizeof(kp_xerial_magic));
    rb_buf_u32(out, 1); /* version */
    rb_buf_u32(out, 1); /* compatible version */
    size_t off = 0;
    while (off < in_len) {
        size_t n = RB_MIN(in_len - off, (size_t)KP_SNAPPY_BLOCK);
        size_t bound = snappy_max_compressed_length(n);
        rb_buf_reserve(out, 4 + bound);
        size_t clen = bound;
        if (snappy_compress((const char *)in + off, n, (char *)out->p + out->len + 4, &clen) != SNAPPY_OK)
            return RB_UNKNOWN_SERVER_ERROR;
        rb_wbe32(out->p + out->len, (uint32_t)clen);
        out->len += 4 + clen;
        off += n;
    }
    return 0;
}

/* ---- lz4 ----------------------------------------------------------------- */
static int kp_lz4_inflate(const uint8_t *in, size_t in_len, size_t cap, rb_buf_t *out) {
    LZ4F_dctx *dc = NULL;
    if (in_len == 0) return RB_CORRUPT_MESSAGE;
    if (LZ4F_isError(LZ4F_createDecompressionContext(&dc, LZ4F_VERSION))) return RB_ERR_NOMEM;
    int rc = RB_CORRUPT_MESSAGE;
    size_t made = 0, off = 0, hint = 1;
    while (off < in_len || hint != 0) {
        size_t room;
        uint8_t *dst = kp_out_room(out, cap + 1 - made, &room);
        size_t src_n = in_len - off;
        hint = LZ4F_decompress(dc, dst, &room, in + off, &src_n, NULL);
        if (LZ4F_isError(hint)) goto fail;
        out->len += room;
        made += room;
        off += src_n;
        if (made > cap) goto fail;
        if (room == 0 && src_n == 0) goto fail; /* no progress: truncated frame */
        /* hint == 0: a frame ended; the context is reset for a following one */
    }
    rc = 0;
fail:
    LZ4F_freeDecompressionContext(dc);
    return rc;
}

static int kp_lz4_deflate(const uint8_t *in, size_t in_len, rb_buf_t *out) {
    LZ4F_preferences_t pr;
    memset(&pr, 0, sizeof(pr));
    pr.frameInfo.blockSizeID = LZ4F_max64KB;
    /* what Kafka's Java writer produces: independent 64 KiB blocks, no
     * content size (its reader refuses dependent blocks) */
    pr.frameInfo.blockMode = LZ4F_blockIndependent;
    size_t bound = LZ4F_compressFrameBound(in_len, &pr);
    rb_buf_reserve(out, bound);
    size_t n = LZ4F_compressFrame(out->p + out->len, bound, in, in_len, &pr);
    if (LZ4F_isError(n)) return RB_UNKNOWN_SERVER_ERROR;
    out->len += n;
    return 0;
}

/* ---- zstd ------------------------------------------------------------------ */
/* Window log the decoder accepts: enough for the cap, never less than 2^23
 * (what zstd's levels up to 19 use, so ordinary producer output always
 * decodes), never more than zstd's default limit 2^27. The window is the
 * decoder's only large allocation. */
static int kp_zstd_window_log(size_t cap) {
    int lg = 23;
    while (lg < 27 && ((size_t)1 << lg) < cap) lg++;
    return lg;
}

static int kp_zstd_inflate(const uint8_t *in, size_t in_len, size_t cap, rb_buf_t *out) {
    if (in_len == 0) return RB_CORRUPT_MESSAGE;
    /* a frame that states its size up front can be refused before any work */
    unsigned long long declared = ZSTD_getFrameContentSize(in, in_len);
    if (declared == ZSTD_CONTENTSIZE_ERROR) return RB_CORRUPT_MESSAGE;
    if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared > (unsigned long long)cap) return RB_CORRUPT_MESSAGE;
    ZSTD_DCtx *dc = ZSTD_createDCtx();
    if (!dc) return RB_ERR_NOMEM;
    int rc = RB_CORRUPT_MESSAGE;
    if (ZSTD_isError(ZSTD_DCtx_setParameter(dc, ZSTD_d_windowLogMax, kp_zstd_window_log(cap)))) goto fail;
    ZSTD_inBuffer ib = {in, in_len, 0};
    size_t made = 0, hint = 1;
    while (ib.pos < ib.size || hint != 0) {
        size_t room;
        uint8_t *dst = kp_out_room(out, cap + 1 - made, &room);
        ZSTD_outBuffer ob = {dst, room, 0};
        size_t before = ib.pos;
        hint = ZSTD_decompressStream(dc, &ob, &ib);
        if (ZSTD_isError(hint)) goto fail;
        out->len += ob.pos;
        made += ob.pos;
        if (made > cap) goto fail;
        if (ob.pos == 0 && ib.pos == before) goto fail; /* no progress: truncated frame */
    }
    rc = 0;
fail:
    ZSTD_freeDCtx(dc);
    return rc;
}

static int kp_zstd_deflate(const uint8_t *in, size_t in_len, rb_buf_t *out) {
    size_t bound = ZSTD_compressBound(in_len);
    rb_buf_reserve(out, bound);
    size_t n = ZSTD_compress(out->p + out->len, bound, in, in_len, 3);
    if (ZSTD_isError(n)) return RB_UNKNOWN_SERVER_ERROR;
    out->len += n;
    return 0;
}

/* ---- public ---------------------------------------------------------------- */
int kp_decompress(kp_compression_t codec, const uint8_t *in, size_t in_len, size_t cap, rb_buf_t *out) {
    if (cap >= SIZE_MAX / 2) cap = SIZE_MAX / 2; /* keeps cap + 1 arithmetic safe */
    size_t start = out->len;
    int rc;
    switch (codec) {
    case KP_COMP_NONE:
        if (in_len > cap) return RB_CORRUPT_MESSAGE;
        rb_buf_put(out, in, in_len);
        return 0;
    case KP_COMP_GZIP: rc = kp_gzip_inflate(in, in_len, cap, out); break;
    case KP_COMP_SNAPPY: rc = kp_snappy_inflate(in, in_len, cap, out); break;
    case KP_COMP_LZ4: rc = kp_lz4_inflate(in, in_len, cap, out); break;
    case KP_COMP_ZSTD: rc = kp_zstd_inflate(in, in_len, cap, out); break;
    default: return RB_UNSUPPORTED_COMPRESSION_TYPE;
    }
    if (rc) out->len = start; /* nothing half-written is left behind */
    return rc;
}

int kp_compress(kp_compression_t codec, const uint8_t *in, size_t in_len, rb_buf_t *out) {
    size_t start = out->len;
    int rc;
    switch (codec) {
    case KP_COMP_NONE: rb_buf_put(out, in, in_len); return 0;
    case KP_COMP_GZIP: rc = kp_gzip_deflate(in, in_len, out); break;
    case KP_COMP_SNAPPY: rc = kp_snappy_deflate(in, in_len, out); break;
    case KP_COMP_LZ4: rc = kp_lz4_deflate(in, in_len, out); break;
    case KP_COMP_ZSTD: rc = kp_zstd_deflate(in, in_len, out); break;
    default: return RB_UNSUPPORTED_COMPRESSION_TYPE;
    }
    if (rc) out->len = start;
    return rc;
}
