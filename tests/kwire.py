"""kwire — a tiny, independent Kafka wire encoder/decoder for tests.

Written from the protocol documentation, deliberately separate from the
broker's codec so that the two check each other. It covers only what the
bad-input and fault tests need: request headers v1/v2, ApiVersions, Metadata
v1, Produce v0-v2 (legacy message sets, to get UNSUPPORTED_VERSION), Produce
v3..v11, record batch v2 (with CRC-32C) and the four codecs (zlib from the
standard library; snappy, lz4 and zstd through ctypes on the system libraries
librdkafka itself links).
"""
import ctypes
import ctypes.util
import socket
import struct
import time
import zlib

# ---------------------------------------------------------------------------
# CRC-32C (Castagnoli), reflected polynomial 0x82F63B78
# ---------------------------------------------------------------------------

def _crc32c_table():
    tab = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        tab.append(c)
    return tab


_CRC32C_TAB = _crc32c_table()


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    tab = _CRC32C_TAB
    for b in data:
        crc = tab[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283


# ---------------------------------------------------------------------------
# xxHash32 (the LZ4 frame header checksum)
# ---------------------------------------------------------------------------
_P1, _P2, _P3, _P4, _P5 = 2654435761, 2246822519, 3266489917, 668265263, 374761393
_M32 = 0xFFFFFFFF


def _rotl(x, r):
    return ((x << r) | (x >> (32 - r))) & _M32


def xxh32(data, seed=0):
    n = len(data)
    i = 0
    if n >= 16:
        v = [(seed + _P1 + _P2) & _M32, (seed + _P2) & _M32, seed & _M32, (seed - _P1) & _M32]
        while i + 16 <= n:
            for j in range(4):
                lane = struct.unpack_from("<I", data, i + 4 * j)[0]
                v[j] = (_rotl((v[j] + lane * _P2) & _M32, 13) * _P1) & _M32
            i += 16
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & _M32
    else:
        h = (seed + _P5) & _M32
    h = (h + n) & _M32
    while i + 4 <= n:
        h = (h + struct.unpack_from("<I", data, i)[0] * _P3) & _M32
        h = (_rotl(h, 17) * _P4) & _M32
        i += 4
    while i < n:
        h = (h + data[i] * _P5) & _M32
        h = (_rotl(h, 11) * _P1) & _M32
        i += 1
    h ^= h >> 15
    h = (h * _P2) & _M32
    h ^= h >> 13
    h = (h * _P3) & _M32
    h ^= h >> 16
    return h


# ---------------------------------------------------------------------------
# primitive encoding
# ---------------------------------------------------------------------------

def i8(v): return struct.pack(">b", v)
def i16(v): return struct.pack(">h", v)
def i32(v): return struct.pack(">i", v)
def u32(v): return struct.pack(">I", v)
def i64(v): return struct.pack(">q", v)


def uvarint(v):
    assert v >= 0
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def varint(v):  # zigzag, 32 or 64 bit alike
    return uvarint((v << 1) ^ (v >> 63))


def string(s):
    if s is None:
        return i16(-1)
    if isinstance(s, str):
        s = s.encode()
    return i16(len(s)) + s


def compact_string(s):
    if s is None:
        return uvarint(0)
    if isinstance(s, str):
        s = s.encode()
    return uvarint(len(s) + 1) + s


def nbytes(b):
    return i32(-1) if b is None else i32(len(b)) + b


def compact_bytes(b):
    return uvarint(0) if b is None else uvarint(len(b) + 1) + b


def array(items, enc=lambda x: x):
    if items is None:
        return i32(-1)
    return i32(len(items)) + b"".join(enc(x) for x in items)


def compact_array(items, enc=lambda x: x):
    if items is None:
        return uvarint(0)
    return uvarint(len(items) + 1) + b"".join(enc(x) for x in items)


TAGS_NONE = uvarint(0)


# ---------------------------------------------------------------------------
# decoding
# ---------------------------------------------------------------------------

class Truncated(Exception):
    pass


class Reader:
    def __init__(self, data, pos=0):
        self.d = data
        self.p = pos

    def left(self):
        return len(self.d) - self.p

    def take(self, n):
        if n < 0 or self.p + n > len(self.d):
            raise Truncated("need %d bytes at %d, have %d" % (n, self.p, len(self.d) - self.p))
        b = self.d[self.p:self.p + n]
        self.p += n
        return b

    def _un(self, fmt, n):
        return struct.unpack(fmt, self.take(n))[0]

    def i8(self): return self._un(">b", 1)
    def i16(self): return self._un(">h", 2)
    def i32(self): return self._un(">i", 4)
    def u32(self): return self._un(">I", 4)
    def i64(self): return self._un(">q", 8)
    def boolean(self): return self.i8() != 0

    def uvarint(self):
        v = shift = 0
        for _ in range(10):
            b = self.take(1)[0]
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                return v
            shift += 7
        raise ValueError("varint too long")

    def varint(self):
        v = self.uvarint()
        return (v >> 1) ^ -(v & 1)

    def string(self):
        n = self.i16()
        return None if n < 0 else self.take(n).decode("utf-8", "replace")

    def compact_string(self):
        n = self.uvarint()
        return None if n == 0 else self.take(n - 1).decode("utf-8", "replace")

    def bytes_(self):
        n = self.i32()
        return None if n < 0 else self.take(n)

    def compact_bytes(self):
        n = self.uvarint()
        return None if n == 0 else self.take(n - 1)

    def array(self, fn):
        n = self.i32()
        if n < 0:
            return None
        if n > self.left():
            raise Truncated("array count %d > bytes left %d" % (n, self.left()))
        return [fn(self) for _ in range(n)]

    def compact_array(self, fn):
        n = self.uvarint()
        if n == 0:
            return None
        if n - 1 > self.left():
            raise Truncated("array count %d > bytes left %d" % (n - 1, self.left()))
        return [fn(self) for _ in range(n - 1)]

    def tags(self):
        out = {}
        for _ in range(self.uvarint()):
            tag = self.uvarint()
            out[tag] = self.take(self.uvarint())
        return out


# ---------------------------------------------------------------------------
# request framing
# ---------------------------------------------------------------------------
API_PRODUCE, API_FETCH, API_LIST_OFFSETS, API_METADATA = 0, 1, 2, 3
API_API_VERSIONS, API_CREATE_TOPICS, API_DELETE_TOPICS = 18, 19, 20


def request_header(api_key, version, corr, client_id="rill-kwire", header_version=1):
    h = i16(api_key) + i16(version) + i32(corr) + string(client_id)
    if header_version >= 2:
        h += TAGS_NONE
    return h


def frame(payload):
    return i32(len(payload)) + payload


def request(api_key, version, corr, body, header_version=1, client_id="rill-kwire"):
    return frame(request_header(api_key, version, corr, client_id, header_version) + body)


# ---------------------------------------------------------------------------
# record batch v2
# ---------------------------------------------------------------------------
CODEC_NONE, CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD = 0, 1, 2, 3, 4
CODEC_NAMES = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


def encode_record(offset_delta, key, value, headers=(), ts_delta=0, attributes=0):
    body = i8(attributes) + varint(ts_delta) + varint(offset_delta)
    body += varint(-1) if key is None else varint(len(key)) + key
    body += varint(-1) if value is None else varint(len(value)) + value
    body += varint(len(headers))
    for hk, hv in headers:
        if isinstance(hk, str):
            hk = hk.encode()
        body += varint(len(hk)) + hk
        body += varint(-1) if hv is None else varint(len(hv)) + hv
    return varint(len(body)) + body


def build_batch(records, base_ts=None, codec=CODEC_NONE, compress=None, magic=2,
                base_offset=0, record_count=None, attributes_extra=0, crc_override=None,
                records_blob=None, producer_id=-1, producer_epoch=-1, base_sequence=-1):
    """records: list of (key, value, headers) or (key, value, headers, ts_delta).
    compress: a function bytes->bytes for the records section (defaults to
    the codec's compressor). records_blob replaces the (uncompressed) encoded
    records. Returns the batch bytes."""
    if base_ts is None:
        base_ts = int(time.time() * 1000)
    encoded = []
    max_delta = 0
    for i, r in enumerate(records):
        key, value, headers = r[0], r[1], r[2]
        ts_delta = r[3] if len(r) > 3 else 0
        max_delta = max(max_delta, ts_delta)
        encoded.append(encode_record(i, key, value, headers, ts_delta))
    blob = b"".join(encoded) if records_blob is None else records_blob
    if codec != CODEC_NONE:
        blob = (compress or COMPRESSORS[codec])(blob)
    n = len(records) if record_count is None else record_count
    attributes = (codec & 7) | attributes_extra
    after_crc = (i16(attributes) + i32(max(len(records) - 1, 0)) + i64(base_ts) + i64(base_ts + max_delta)
                 + i64(producer_id) + i16(producer_epoch) + i32(base_sequence) + i32(n) + blob)
    crc = crc32c(after_crc) if crc_override is None else crc_override
    after_len = i32(-1) + i8(magic) + u32(crc) + after_crc
    return i64(base_offset) + i32(len(after_len)) + after_len


BATCH_HEADER_LEN = 61  # bytes before the first record


def parse_batches(data, start=0):
    """Yields dicts describing each complete batch in `data` (a segment file
    or a fetch response's records): offset, length, position, attributes,
    codec, magic, crc, crc_ok, last_offset_delta, count, first/max timestamp."""
    pos = start
    while pos + 12 <= len(data):
        base_offset, length = struct.unpack_from(">qi", data, pos)
        if length < BATCH_HEADER_LEN - 12 or pos + 12 + length > len(data):
            return
        magic = data[pos + 16]
        crc = struct.unpack_from(">I", data, pos + 17)[0]
        attrs, lod, first_ts, max_ts = struct.unpack_from(">hiqq", data, pos + 21)
        count = struct.unpack_from(">i", data, pos + 57)[0]
        yield dict(offset=base_offset, length=length, position=pos, size=12 + length,
                   magic=magic, crc=crc, crc_ok=crc32c(data[pos + 21:pos + 12 + length]) == crc,
                   attributes=attrs, codec=attrs & 7, last_offset_delta=lod,
                   first_timestamp=first_ts, max_timestamp=max_ts, count=count)
        pos += 12 + length


def read_segment_batches(path):
    with open(path, "rb") as f:
        return list(parse_batches(f.read()))


def segment_markers(path):
    """(offset, producer id, commit?) of each transaction marker (control
    batch) in a segment file; asserts Kafka's marker format."""
    with open(path, "rb") as f:
        data = f.read()
    out = []
    for b in parse_batches(data):
        if not b["attributes"] & 0x20:
            continue
        assert b["attributes"] & 0x10, "a control batch must be transactional"
        pid = struct.unpack_from(">q", data, b["position"] + 43)[0]
        r = Reader(data[b["position"] + BATCH_HEADER_LEN:b["position"] + b["size"]])
        r.varint()  # record length
        r.i8()      # attributes
        r.varint()  # timestamp delta
        r.varint()  # offset delta
        assert r.varint() == 4
        version, typ = r.i16(), r.i16()
        assert version == 0 and typ in (0, 1), (version, typ)
        assert r.varint() == 6
        assert r.i16() == 0  # value: version 0 + coordinator epoch
        r.i32()
        out.append((b["offset"], pid, typ == 1))
    return out


# ---------------------------------------------------------------------------
# codecs
# ---------------------------------------------------------------------------

def gzip_compress(data, level=6):
    c = zlib.compressobj(level, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


def gzip_zeros(total, level=9, chunk=1 << 20):
    """gzip of `total` zero bytes, streamed (no big buffer)."""
    c = zlib.compressobj(level, zlib.DEFLATED, 31)
    z = bytes(chunk)
    out = []
    left = total
    while left > 0:
        n = min(chunk, left)
        out.append(c.compress(z if n == chunk else bytes(n)))
        left -= n
    out.append(c.flush())
    return b"".join(out)


def _lib(names):
    for n in names:
        try:
            return ctypes.CDLL(n)
        except OSError:
            continue
    found = ctypes.util.find_library(names[0].split(".")[0][3:])
    if found:
        return ctypes.CDLL(found)
    raise OSError("cannot load any of %s" % (names,))


_libs = {}


def _snappy():
    if "snappy" not in _libs:
        lib = _lib(["libsnappy.so.1", "libsnappy.so"])
        lib.snappy_max_compressed_length.restype = ctypes.c_size_t
        lib.snappy_max_compressed_length.argtypes = [ctypes.c_size_t]
        lib.snappy_compress.restype = ctypes.c_int
        lib.snappy_compress.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                                        ctypes.POINTER(ctypes.c_size_t)]
        lib.snappy_uncompress.restype = ctypes.c_int
        lib.snappy_uncompress.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                                          ctypes.POINTER(ctypes.c_size_t)]
        lib.snappy_uncompressed_length.restype = ctypes.c_int
        lib.snappy_uncompressed_length.argtypes = [ctypes.c_char_p, ctypes.c_size_t,
                                                   ctypes.POINTER(ctypes.c_size_t)]
        _libs["snappy"] = lib
    return _libs["snappy"]


def snappy_raw(data):
    lib = _snappy()
    cap = lib.snappy_max_compressed_length(len(data))
    out = ctypes.create_string_buffer(cap)
    n = ctypes.c_size_t(cap)
    rc = lib.snappy_compress(data, len(data), out, ctypes.byref(n))
    assert rc == 0, "snappy_compress failed: %d" % rc
    return out.raw[:n.value]


def snappy_raw_decompress(data):
    lib = _snappy()
    n = ctypes.c_size_t(0)
    assert lib.snappy_uncompressed_length(data, len(data), ctypes.byref(n)) == 0
    out = ctypes.create_string_buffer(max(n.value, 1))
    assert lib.snappy_uncompress(data, len(data), out, ctypes.byref(n)) == 0
    return out.raw[:n.value]


XERIAL_HEADER = b"\x82SNAPPY\x00" + i32(1) + i32(1)


def snappy_xerial(data, chunk=32 * 1024):
    """snappy-java's stream framing, as Java Kafka clients write it."""
    out = [XERIAL_HEADER]
    for i in range(0, max(len(data), 1), chunk):
        block = snappy_raw(data[i:i + chunk])
        out.append(i32(len(block)) + block)
    return b"".join(out)


def _lz4():
    if "lz4" not in _libs:
        lib = _lib(["liblz4.so.1", "liblz4.so"])
        lib.LZ4F_compressFrameBound.restype = ctypes.c_size_t
        lib.LZ4F_compressFrameBound.argtypes = [ctypes.c_size_t, ctypes.c_void_p]
        lib.LZ4F_compressFrame.restype = ctypes.c_size_t
        lib.LZ4F_compressFrame.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                                           ctypes.c_size_t, ctypes.c_void_p]
        lib.LZ4F_isError.restype = ctypes.c_uint
        lib.LZ4F_isError.argtypes = [ctypes.c_size_t]
        _libs["lz4"] = lib
    return _libs["lz4"]


def lz4_frame(data):
    lib = _lz4()
    cap = lib.LZ4F_compressFrameBound(len(data), None)
    out = ctypes.create_string_buffer(cap)
    n = lib.LZ4F_compressFrame(out, cap, data, len(data), None)
    assert not lib.LZ4F_isError(n), "LZ4F_compressFrame failed"
    return out.raw[:n]


def lz4_frame_header_len(frame_bytes):
    flg = frame_bytes[4]
    n = 4 + 2 + 1  # magic, FLG, BD, HC
    if flg & 0x08:
        n += 8
    if flg & 0x01:
        n += 4
    return n


def lz4_with_claimed_size(frame_bytes, claimed):
    """Rewrites an LZ4 frame's header to declare `claimed` content bytes
    (content-size flag set, header checksum recomputed)."""
    assert frame_bytes[:4] == b"\x04\x22\x4d\x18"
    hl = lz4_frame_header_len(frame_bytes)
    flg = frame_bytes[4] | 0x08
    bd = frame_bytes[5]
    desc = bytes([flg, bd]) + struct.pack("<Q", claimed)
    if frame_bytes[4] & 0x01:  # dict id
        desc += frame_bytes[hl - 5:hl - 1]
    hc = (xxh32(desc) >> 8) & 0xFF
    return frame_bytes[:4] + desc + bytes([hc]) + frame_bytes[hl:]


def _zstd():
    if "zstd" not in _libs:
        lib = _lib(["libzstd.so.1", "libzstd.so"])
        lib.ZSTD_compressBound.restype = ctypes.c_size_t
        lib.ZSTD_compressBound.argtypes = [ctypes.c_size_t]
        lib.ZSTD_compress.restype = ctypes.c_size_t
        lib.ZSTD_compress.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                                      ctypes.c_size_t, ctypes.c_int]
        lib.ZSTD_isError.restype = ctypes.c_uint
        lib.ZSTD_isError.argtypes = [ctypes.c_size_t]
        _libs["zstd"] = lib
    return _libs["zstd"]


def zstd_compress(data, level=3):
    lib = _zstd()
    cap = lib.ZSTD_compressBound(len(data))
    out = ctypes.create_string_buffer(cap)
    n = lib.ZSTD_compress(out, cap, data, len(data), level)
    assert not lib.ZSTD_isError(n), "ZSTD_compress failed"
    return out.raw[:n]


def zstd_with_claimed_size(frame_bytes, claimed):
    """Rewrites a zstd frame header to an 8-byte Frame_Content_Size of
    `claimed` (single-segment frames then also claim that window size)."""
    assert frame_bytes[:4] == b"\x28\xb5\x2f\xfd"
    fhd = frame_bytes[4]
    fcs_flag, single, dict_flag = fhd >> 6, (fhd >> 5) & 1, fhd & 3
    pos = 5
    wd = b""
    if not single:
        wd = frame_bytes[pos:pos + 1]
        pos += 1
    dlen = [0, 1, 2, 4][dict_flag]
    did = frame_bytes[pos:pos + dlen]
    pos += dlen
    fcs_len = [1 if single else 0, 2, 4, 8][fcs_flag]
    pos += fcs_len
    new_fhd = (3 << 6) | (fhd & 0x3F)
    return frame_bytes[:4] + bytes([new_fhd]) + wd + did + struct.pack("<Q", claimed) + frame_bytes[pos:]


COMPRESSORS = {
    CODEC_GZIP: gzip_compress,
    CODEC_SNAPPY: snappy_raw,
    CODEC_LZ4: lz4_frame,
    CODEC_ZSTD: zstd_compress,
}


# ---------------------------------------------------------------------------
# request bodies
# ---------------------------------------------------------------------------

def produce_body(version, topics, acks=-1, timeout_ms=10000, transactional_id=None):
    """topics: [(name, [(partition, records_bytes), ...]), ...]."""
    if version >= 9:
        def part(p):
            return i32(p[0]) + compact_bytes(p[1]) + TAGS_NONE

        def topic(t):
            return compact_string(t[0]) + compact_array(t[1], part) + TAGS_NONE
        return (compact_string(transactional_id) + i16(acks) + i32(timeout_ms)
                + compact_array(topics, topic) + TAGS_NONE)

    def part_(p):
        return i32(p[0]) + nbytes(p[1])

    def topic_(t):
        return string(t[0]) + array(t[1], part_)
    head = string(transactional_id) if version >= 3 else b""
    return head + i16(acks) + i32(timeout_ms) + array(topics, topic_)


def produce_request(version, corr, topics, acks=-1, timeout_ms=10000, transactional_id=None):
    return request(API_PRODUCE, version, corr, produce_body(version, topics, acks, timeout_ms, transactional_id),
                   header_version=2 if version >= 9 else 1)


def parse_produce_response(version, payload):
    """payload: the response frame without its length. Returns
    (corr, {(topic, partition): dict(error, base_offset, ...)})."""
    r = Reader(payload)
    corr = r.i32()
    flex = version >= 9
    if flex:
        r.tags()
    out = {}

    def part(r, topic):
        d = dict(partition=r.i32(), error=r.i16(), base_offset=r.i64())
        if version >= 2:
            d["log_append_time"] = r.i64()
        if version >= 5:
            d["log_start_offset"] = r.i64()
        if version >= 8:
            def rec_err(r):
                e = (r.i32(), r.compact_string() if flex else r.string())
                if flex:
                    r.tags()
                return e
            d["record_errors"] = (r.compact_array if flex else r.array)(rec_err)
            d["error_message"] = r.compact_string() if flex else r.string()
        if flex:
            r.tags()
        out[(topic, d["partition"])] = d

    def topic(r):
        name = r.compact_string() if flex else r.string()
        (r.compact_array if flex else r.array)(lambda r: part(r, name))
        if flex:
            r.tags()
    (r.compact_array if flex else r.array)(topic)
    if version >= 1:
        r.i32()  # throttle
    if flex:
        r.tags()
    return corr, out


def legacy_message_v1(key, value, ts=None):
    """A magic-1 message set entry (for Produce v0-v2 requests)."""
    if ts is None:
        ts = int(time.time() * 1000)
    body = i8(1) + i8(0) + i64(ts) + nbytes(key) + nbytes(value)
    msg = u32(zlib.crc32(body) & 0xFFFFFFFF) + body
    return i64(0) + i32(len(msg)) + msg


def metadata_v1_body(topics):
    return array(topics, string) if topics is not None else i32(-1)


def parse_metadata_v1(payload):
    r = Reader(payload)
    corr = r.i32()
    brokers = r.array(lambda r: dict(node_id=r.i32(), host=r.string(), port=r.i32(), rack=r.string()))
    controller = r.i32()

    def part(r):
        return dict(error=r.i16(), partition=r.i32(), leader=r.i32(),
                    replicas=r.array(lambda r: r.i32()), isr=r.array(lambda r: r.i32()))

    def topic(r):
        return dict(error=r.i16(), name=r.string(), internal=r.boolean(), partitions=r.array(part))
    topics = r.array(topic)
    return corr, dict(brokers=brokers, controller=controller, topics={t["name"]: t for t in topics})


def api_versions_body(version):
    if version >= 3:
        return compact_string("rill-kwire") + compact_string("1.0") + TAGS_NONE
    return b""


def parse_api_versions(payload, version):
    """The ApiVersions response header never has tagged fields. Versions 0-2
    share a layout (plus throttle from v1); v3 is flexible."""
    r = Reader(payload)
    corr = r.i32()
    err = r.i16()
    if version >= 3:
        def key(r):
            k = (r.i16(), r.i16(), r.i16())
            r.tags()
            return k
        keys = r.compact_array(key)
    else:
        keys = r.array(lambda r: (r.i16(), r.i16(), r.i16()))
    return corr, err, {k: (lo, hi) for k, lo, hi in (keys or [])}


# ---------------------------------------------------------------------------
# a raw connection
# ---------------------------------------------------------------------------

def list_latest(conn, topic, partition, isolation_level):
    """ListOffsets v2 LATEST: the high watermark, or the LSO with isolation 1."""
    body = (i32(-1) + i8(isolation_level) + i32(1) + string(topic) + i32(1)
            + i32(partition) + i64(-1))
    r = Reader(conn.roundtrip(2, 2, body))
    r.i32()  # correlation id
    r.i32()  # throttle
    assert r.i32() == 1 and r.string() == topic and r.i32() == 1
    assert r.i32() == partition
    assert r.i16() == 0
    r.i64()  # timestamp
    return r.i64()


class Closed(Exception):
    pass


class Conn:
    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.corr = 1000
        self.peer_closed = False  # set when a send found the connection closed

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    @property
    def local_port(self):
        return self.sock.getsockname()[1]

    def next_corr(self):
        self.corr += 1
        return self.corr

    def send(self, data):
        """Sends all of data. A broker may close the connection while we are
        still sending a request it has already judged: that is noted (and
        then seen by recv_frame/wait_closed), not raised."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            self.peer_closed = True

    def _recv_exact(self, n, deadline):
        buf = bytearray()
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out reading %d bytes (got %d)" % (n, len(buf)))
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(min(n - len(buf), 1 << 20))
            except (ConnectionResetError, BrokenPipeError):
                raise Closed("connection reset")
            if not chunk:
                raise Closed("EOF after %d of %d bytes" % (len(buf), n))
            buf += chunk
        return bytes(buf)

    def recv_frame(self, timeout=None):
        """Returns the next response frame's payload; raises Closed on EOF
        or reset, socket.timeout on timeout."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        try:
            n = struct.unpack(">i", self._recv_exact(4, deadline))[0]
        except socket.timeout:
            if self.peer_closed:
                raise Closed("connection closed while sending")
            raise
        assert 0 <= n < (1 << 30), "broker sent a bad frame length %d" % n
        return self._recv_exact(n, deadline)

    def roundtrip(self, api_key, version, body, header_version=None, timeout=None):
        if header_version is None:
            header_version = 1
        corr = self.next_corr()
        self.send(request(api_key, version, corr, body, header_version))
        payload = self.recv_frame(timeout)
        got = struct.unpack_from(">i", payload)[0]
        assert got == corr, "correlation id %d in response, expected %d" % (got, corr)
        return payload

    def produce(self, version, topics, acks=-1, timeout=None, transactional_id=None):
        corr = self.next_corr()
        self.send(produce_request(version, corr, topics, acks, transactional_id=transactional_id))
        if acks == 0:
            return None
        payload = self.recv_frame(timeout)
        got, res = parse_produce_response(version, payload)
        assert got == corr, "correlation id %d in response, expected %d" % (got, corr)
        return res

    def wait_closed(self, timeout=10.0):
        """True if the peer closes (EOF/reset) within timeout, reading and
        discarding anything it sends first. False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return self.peer_closed
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionResetError, BrokenPipeError):
                return True
            if not chunk:
                return True


def zstd_rle_bomb(total, byte=0):
    """A valid zstd frame of `total` copies of `byte` made of RLE blocks
    (4 bytes per 128 KiB): no content size in the header, so a decoder
    learns the size only by decompressing."""
    block = 128 * 1024
    out = [b"\x28\xb5\x2f\xfd", bytes([0x00]), bytes([(17 - 10) << 3])]  # FHD: no FCS; window 128 KiB
    left = total
    while left > 0:
        n = min(block, left)
        left -= n
        hdr = (n << 3) | (1 << 1) | (1 if left == 0 else 0)
        out.append(struct.pack("<I", hdr)[:3] + bytes([byte]))
    return b"".join(out)
