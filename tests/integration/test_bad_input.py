"""Bad input on the wire, spoken with our own encoder (tests/kwire.py).

Each case gets the protocol's error code or, where none can be framed, the
connection is closed and the broker log says why. Throughout, a second,
healthy client keeps producing and reading back (a background producer for
the whole module, plus a produce/consume round trip after every case), the
broker stays up, and a rejected produce leaves nothing on disk: the target
partition's end offset and segment bytes are unchanged.

Positive controls (well-formed requests from the same encoder succeed and
read back byte for byte through librdkafka) make sure a rejection is about
the defect under test and not about the encoder.
"""
import functools
import re
import socket
import struct
import threading
import time

import pytest
from confluent_kafka import TopicPartition

import kwire
from kwire import Closed, Conn
from rilltest import (ERR, ck_consumer, ck_create_topic, ck_produce_sync, ck_producer, ck_read_partition,
                      ck_consume, err_name, unique, wait_until)

SOCKET_REQUEST_MAX_BYTES = 104857600
MESSAGE_MAX_BYTES = 1048588
VICTIM = "victim"
CONTROL = "control"
# a line a broker might write when it drops a connection for a reason
WHY_RE = re.compile(r"(?i)(clos|disconnect|drop|invalid|malformed|too (large|big)|exceed|unknown|unsupported|"
                    r"reject|bad|corrupt|error|truncat|negative|refus)")


# ---------------------------------------------------------------------------
# module fixtures: the broker, a victim partition, healthy traffic
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bk(shared_broker):
    ck_create_topic(shared_broker, VICTIM, partitions=1)
    ck_create_topic(shared_broker, CONTROL, partitions=1)
    p = ck_producer(shared_broker)
    p.produce(VICTIM, key=b"first", value=b"before any bad input", partition=0)
    ck_produce_sync(p)
    return shared_broker


class Healthy:
    """A second client on its own connections: a producer and an assigned
    consumer that do a round trip on demand, and a background thread that
    keeps producing acks=all records for the whole module."""

    def __init__(self, broker):
        self.broker = broker
        self.topic = ck_create_topic(broker, unique("healthy"), partitions=1)
        self.bg_topic = ck_create_topic(broker, unique("healthy-bg"), partitions=1)
        self.producer = ck_producer(broker, acks="all")
        self.consumer = ck_consumer(broker)
        self.consumer.assign([TopicPartition(self.topic, 0, 0)])
        self.n = 0
        self.stop_ev = threading.Event()
        self.bg_reports = []
        self.bg_sent = 0
        self.bg_error = None
        self.thread = threading.Thread(target=self._bg, daemon=True)
        self.thread.start()

    def _bg(self):
        try:
            p = ck_producer(self.broker, acks="all", **{"message.timeout.ms": 60000})
            cb = lambda err, msg: self.bg_reports.append((err, msg.offset(), msg.value()))  # noqa: E731
            for i in range(100000):  # bounded; stopped by the event long before
                if self.stop_ev.wait(0.02):
                    break
                p.produce(self.bg_topic, value=b"bg-%06d" % i, partition=0, on_delivery=cb)
                self.bg_sent += 1
                p.poll(0)
            ck_produce_sync(p, timeout=60)
        except Exception as e:  # reported by finish()
            self.bg_error = e

    def roundtrip(self, what):
        self.n += 1
        v = b"healthy-%d" % self.n
        dr = []
        self.producer.produce(self.topic, value=v, partition=0, on_delivery=lambda e, m: dr.append((e, m)))
        ck_produce_sync(self.producer)
        assert len(dr) == 1 and dr[0][0] is None, "healthy client's produce failed after %s: %s" % (what, dr)
        (m,) = ck_consume(self.consumer, 1, timeout=20, what="healthy client's record after %s" % what)
        assert (m.value(), m.offset()) == (v, dr[0][1].offset()), \
            "healthy client read %r@%d, produced %r@%d (after %s)" % (m.value(), m.offset(), v, dr[0][1].offset(), what)

    def end_offset(self, topic, partition=0):
        return self.consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)[1]

    def finish(self):
        self.stop_ev.set()
        self.thread.join(90)
        assert not self.thread.is_alive(), "background producer did not finish"
        assert self.bg_error is None, "background producer failed: %r" % self.bg_error
        errs = [r for r in self.bg_reports if r[0] is not None]
        assert not errs, "background producer had %d failed deliveries, first: %s" % (len(errs), errs[0][0])
        assert len(self.bg_reports) == self.bg_sent
        assert [o for _, o, _ in self.bg_reports] == list(range(self.bg_sent)), "background offsets not contiguous"
        msgs = ck_read_partition(self.broker, self.bg_topic, 0, 0, self.bg_sent)
        assert [m.value() for m in msgs] == [v for _, _, v in self.bg_reports], "background records differ"
        self.consumer.close()


@pytest.fixture(scope="module")
def healthy(request, bk):
    h = Healthy(bk)
    yield h
    try:
        h.finish()
    except AssertionError as e:
        if not (request.session.shouldfail or request.session.shouldstop):
            raise
        # pytest is stopping after an earlier failure (-x): raising from this
        # late teardown would abort its summary
        print("\nhealthy client teardown error: %s" % e)


@pytest.fixture
def guard(bk, healthy):
    """Wraps one bad-input case: afterwards the victim partition is unchanged
    (end offset and segment bytes), the broker is alive, and the healthy
    client's round trip works."""
    end0 = healthy.end_offset(VICTIM)
    bytes0 = bk.log_bytes(VICTIM, 0)
    g = type("Guard", (), {})()
    g.log_offset = bk.log_size()
    yield g
    bk.check()
    assert healthy.end_offset(VICTIM) == end0, "a rejected request moved %s-0's end offset %d -> %d" % (
        VICTIM, end0, healthy.end_offset(VICTIM))
    assert bk.log_bytes(VICTIM, 0) == bytes0, "a rejected request changed %s-0's segment bytes %d -> %d" % (
        VICTIM, bytes0, bk.log_bytes(VICTIM, 0))
    healthy.roundtrip("a bad-input case")


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

def wait_reason_logged(broker, log_offset, local_port, what):
    """A new broker log line naming our connection (its client port) and
    saying why it was closed."""
    def found():
        for line in broker.log_since(log_offset).splitlines():
            if re.search(r":%d\b" % local_port, line) and WHY_RE.search(line):
                return line
        return None
    return wait_until(found, 5, "a broker log line naming 127.0.0.1:%d and saying why the connection for %s "
                      "was closed" % (local_port, what))


def expect_closed_with_reason(conn, broker, log_offset, what):
    port = conn.local_port
    assert conn.wait_closed(10), "%s: the broker kept the connection open" % what
    wait_reason_logged(broker, log_offset, port, what)


def expect_closed_or_invalid(conn, broker, log_offset, what, check_response):
    """The request cannot be decoded: either the connection is closed (with a
    log line) or a response arrives for which check_response(payload)
    asserts INVALID_REQUEST."""
    port = conn.local_port
    try:
        payload = conn.recv_frame(timeout=10)
    except Closed:
        wait_reason_logged(broker, log_offset, port, what)
        return "closed"
    except socket.timeout:
        raise AssertionError("%s: no response and the connection stayed open for 10 s" % what)
    check_response(payload)
    return "answered"


def api_versions_error_is(code):
    def check(payload):
        err = struct.unpack_from(">h", payload, 4)[0]
        assert err == code, "ApiVersions answered %s, expected %s" % (err_name(err), err_name(code))
    return check


def produce_errors_are(version, code):
    def check(payload):
        _, res = kwire.parse_produce_response(version, payload)
        assert res, "Produce v%d answered a malformed request with no partition results" % version
        bad = {k: v["error"] for k, v in res.items() if v["error"] != code}
        assert not bad, "Produce v%d malformed request: partition errors %s, expected %s" % (
            version, {k: err_name(e) for k, e in bad.items()}, err_name(code))
    return check


def metadata_errors_are(code):
    def check(payload):
        _, md = kwire.parse_metadata_v1(payload)
        assert md["topics"], "Metadata v1 answered a malformed request with no topic results"
        bad = {k: t["error"] for k, t in md["topics"].items() if t["error"] != code}
        assert not bad, "Metadata v1 malformed request: topic errors %s" % bad
    return check


def produce_one(broker, version, topic, records_bytes, partition=0, acks=-1):
    with Conn(broker.port) as c:
        try:
            res = c.produce(version, [(topic, [(partition, records_bytes)])], acks=acks)
        except Closed as e:
            raise AssertionError("Produce v%d: the broker closed the connection (%s) instead of answering with "
                                 "an error code" % (version, e))
    assert (topic, partition) in res, "no result for %s[%d] in %r" % (topic, partition, res)
    return res[(topic, partition)]


def simple_batch(n=3, value_size=20, **kw):
    recs = [(b"key-%d" % i, (b"value-%d-" % i).ljust(value_size, b"."), [("h", b"%d" % i)], i)
            for i in range(n)]
    return kwire.build_batch(recs, **kw), recs


def peak_rss_mb(broker):
    return broker.peak_rss_kb() / 1024.0


# ---------------------------------------------------------------------------
# positive controls
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("version", [3, 5, 7, 8, 9, 10, 11])
def test_control_valid_produce_each_version(bk, healthy, version):
    end0 = healthy.end_offset(CONTROL)
    ts = 1_700_000_000_000 + version
    recs = [(b"k%d" % i, b"v%d-%d" % (version, i), [("a", b"1"), ("b", None)], i * 3) for i in range(4)]
    batch = kwire.build_batch(recs, base_ts=ts)
    r = produce_one(bk, version, CONTROL, batch)
    assert r["error"] == 0, "valid Produce v%d: %s" % (version, err_name(r["error"]))
    assert r["base_offset"] == end0, "base offset %d, partition end was %d" % (r["base_offset"], end0)
    if version >= 2:
        assert r["log_append_time"] == -1, "log_append_time %d for a CreateTime topic" % r["log_append_time"]
    if version >= 5:
        assert r["log_start_offset"] == 0
    msgs = ck_read_partition(bk, CONTROL, 0, end0, end0 + 4)
    for i, (m, (k, v, h, d)) in enumerate(zip(msgs, recs)):
        assert (m.key(), m.value(), m.headers(), m.timestamp()[1]) == (k, v, h, ts + d), \
            "record %d produced by kwire reads back as %r" % (i, (m.key(), m.value(), m.headers(), m.timestamp()))


@pytest.mark.parametrize("codec", ["gzip", "snappy", "snappy-xerial", "lz4", "zstd"])
def test_control_valid_compressed_batches(bk, healthy, codec):
    cid = {"gzip": 1, "snappy": 2, "snappy-xerial": 2, "lz4": 3, "zstd": 4}[codec]
    comp = kwire.snappy_xerial if codec == "snappy-xerial" else None
    end0 = healthy.end_offset(CONTROL)
    recs = [(b"k%d" % i, b"%s value %d " % (codec.encode(), i) * 10, [], 0) for i in range(20)]
    batch = kwire.build_batch(recs, codec=cid, compress=comp)
    r = produce_one(bk, 9, CONTROL, batch)
    assert r["error"] == 0, "valid %s batch: %s" % (codec, err_name(r["error"]))
    msgs = ck_read_partition(bk, CONTROL, 0, end0, end0 + 20)
    assert [(m.key(), m.value()) for m in msgs] == [(k, v) for k, v, _, _ in recs]


def test_control_api_versions_every_version(bk, guard):
    lists = {}
    with Conn(bk.port) as c:
        for v in range(4):
            payload = c.roundtrip(kwire.API_API_VERSIONS, v, kwire.api_versions_body(v),
                                  header_version=2 if v >= 3 else 1)
            _, err, keys = kwire.parse_api_versions(payload, v)
            assert err == 0, "ApiVersions v%d: %s" % (v, err_name(err))
            lists[v] = keys
    assert all(lists[v] == lists[0] for v in lists), "ApiVersions lists differ by request version: %r" % lists
    keys = lists[0]
    # the served ranges, every served API advertised from v0
    want_max = {0: 11, 1: 16, 2: 8, 3: 12, 18: 3, 19: 7, 20: 6}
    for k, mx in want_max.items():
        assert k in keys, "API key %d not advertised: %r" % (k, keys)
        assert keys[k] == (0, mx), "API key %d advertised as %r, expected (0, %d)" % (k, keys[k], mx)
    for k, (lo, hi) in keys.items():
        assert lo == 0 and hi >= lo, "API key %d advertised as %d..%d" % (k, lo, hi)


# ---------------------------------------------------------------------------
# framing
# ---------------------------------------------------------------------------

def test_frame_over_socket_request_max_bytes(bk, guard):
    rss0 = peak_rss_mb(bk)
    with Conn(bk.port) as c:
        c.send(kwire.i32(SOCKET_REQUEST_MAX_BYTES + 1) + kwire.request_header(18, 0, 1))
        expect_closed_with_reason(c, bk, guard.log_offset, "a frame over socket.request.max.bytes")
    assert peak_rss_mb(bk) - rss0 < 64, "peak RSS grew %.0f MB on an oversized frame header" % (peak_rss_mb(bk) - rss0)


@pytest.mark.parametrize("length", [-1, -2 ** 31, -100])
def test_negative_frame_length(bk, guard, length):
    with Conn(bk.port) as c:
        c.send(kwire.i32(length) + b"\x00" * 16)
        expect_closed_with_reason(c, bk, guard.log_offset, "negative frame length %d" % length)


@pytest.mark.parametrize("length", [0, 1, 3, 7])
def test_frame_shorter_than_a_request_header(bk, guard, length):
    with Conn(bk.port) as c:
        c.send(kwire.i32(length) + b"\x00" * length)
        expect_closed_with_reason(c, bk, guard.log_offset, "a %d-byte frame" % length)


def test_truncated_frame_then_eof(bk, guard):
    """The client announces 100 bytes, sends 20 and half-closes: the broker
    must close its side (and not wait forever or crash)."""
    with Conn(bk.port) as c:
        c.send(kwire.i32(100) + kwire.request_header(18, 0, 1) + b"\x00" * 4)
        c.sock.shutdown(socket.SHUT_WR)
        assert c.wait_closed(10), "broker did not close a connection that ended mid-frame"


def test_client_id_longer_than_frame(bk, guard):
    with Conn(bk.port) as c:
        payload = kwire.i16(18) + kwire.i16(0) + kwire.i32(77) + kwire.i16(500) + b"short"
        c.send(kwire.frame(payload))
        expect_closed_or_invalid(c, bk, guard.log_offset, "a client id overrunning its frame",
                                 api_versions_error_is(ERR["INVALID_REQUEST"]))


@pytest.mark.parametrize("n", [-2, -100])
def test_negative_client_id_length(bk, guard, n):
    with Conn(bk.port) as c:
        payload = kwire.i16(18) + kwire.i16(0) + kwire.i32(78) + kwire.i16(n)
        c.send(kwire.frame(payload))
        expect_closed_or_invalid(c, bk, guard.log_offset, "client id length %d" % n,
                                 api_versions_error_is(ERR["INVALID_REQUEST"]))


# ---------------------------------------------------------------------------
# lengths and counts inside requests
# ---------------------------------------------------------------------------

def _metadata_v1(body):
    return kwire.request(kwire.API_METADATA, 1, 5, body)


METADATA_CASES = {
    "topic count 2^31-1, no bytes": kwire.i32(0x7FFFFFFF),
    "topic count 1000, one topic present": kwire.i32(1000) + kwire.string("victim"),
    "topic name length 300, 6 bytes present": kwire.i32(1) + kwire.i16(300) + b"victim",
    "topic name length -1 (null, not nullable)": kwire.i32(1) + kwire.i16(-1),
    "topic name length -7": kwire.i32(1) + kwire.i16(-7) + b"victim",
    "topic count -2": kwire.i32(-2),
}


@pytest.mark.parametrize("case", sorted(METADATA_CASES))
def test_metadata_bad_lengths(bk, guard, case):
    with Conn(bk.port) as c:
        c.send(_metadata_v1(METADATA_CASES[case]))
        expect_closed_or_invalid(c, bk, guard.log_offset, "Metadata v1 with " + case,
                                 metadata_errors_are(ERR["INVALID_REQUEST"]))


def _produce_v3_raw(body):
    return kwire.request(kwire.API_PRODUCE, 3, 6, body)


def _produce_v3_prefix():
    return kwire.string(None) + kwire.i16(-1) + kwire.i32(5000)


PRODUCE_V3_CASES = {
    "topic count 10^9": kwire.i32(10 ** 9),
    "partition count 10^9": kwire.i32(1) + kwire.string(VICTIM) + kwire.i32(10 ** 9),
    "records length 10^9, 10 bytes present": kwire.i32(1) + kwire.string(VICTIM) + kwire.i32(1) + kwire.i32(0)
    + kwire.i32(10 ** 9) + b"\x00" * 10,
    "records length -5": kwire.i32(1) + kwire.string(VICTIM) + kwire.i32(1) + kwire.i32(0) + kwire.i32(-5),
    "topic name length 30000": kwire.i32(1) + kwire.i16(30000) + b"victim",
    "body ends after acks": None,
}


@pytest.mark.parametrize("case", sorted(PRODUCE_V3_CASES))
def test_produce_v3_bad_lengths(bk, guard, case):
    body = PRODUCE_V3_CASES[case]
    body = kwire.string(None) + kwire.i16(-1) if body is None else _produce_v3_prefix() + body
    with Conn(bk.port) as c:
        c.send(_produce_v3_raw(body))
        expect_closed_or_invalid(c, bk, guard.log_offset, "Produce v3 with " + case,
                                 produce_errors_are(3, ERR["INVALID_REQUEST"]))


def _flex_prefix():
    return kwire.compact_string(None) + kwire.i16(-1) + kwire.i32(5000)


PRODUCE_V9_CASES = {
    "compact topic count 2^31": kwire.uvarint(2 ** 31),
    "compact topic count 2^62 (varint)": kwire.uvarint(2 ** 62),
    "unterminated varint": b"\xff" * 12,
    "compact records length 10^9": kwire.uvarint(2) + kwire.compact_string(VICTIM) + kwire.uvarint(2)
    + kwire.i32(0) + kwire.uvarint(10 ** 9) + b"\x00" * 10,
    "tagged field count 10^6 at the end": kwire.uvarint(1) + kwire.uvarint(10 ** 6),
    "tagged field size past the frame": kwire.uvarint(1) + kwire.uvarint(1) + kwire.uvarint(0)
    + kwire.uvarint(5000) + b"xx",
}


@pytest.mark.parametrize("case", sorted(PRODUCE_V9_CASES))
def test_produce_v9_bad_lengths(bk, guard, case):
    body = _flex_prefix() + PRODUCE_V9_CASES[case]
    with Conn(bk.port) as c:
        c.send(kwire.request(kwire.API_PRODUCE, 9, 7, body, header_version=2))
        expect_closed_or_invalid(c, bk, guard.log_offset, "Produce v9 with " + case,
                                 produce_errors_are(9, ERR["INVALID_REQUEST"]))


HEADER_V2_CASES = {
    "header tagged field count 10^6": kwire.uvarint(10 ** 6),
    "header tagged field size 10^6": kwire.uvarint(1) + kwire.uvarint(0) + kwire.uvarint(10 ** 6) + b"ab",
    "header tagged count 2^35 (varint)": kwire.uvarint(2 ** 35),
}


@pytest.mark.parametrize("case", sorted(HEADER_V2_CASES))
def test_request_header_v2_bad_tagged_fields(bk, guard, case):
    payload = (kwire.i16(kwire.API_API_VERSIONS) + kwire.i16(3) + kwire.i32(9) + kwire.string("x")
               + HEADER_V2_CASES[case])
    with Conn(bk.port) as c:
        c.send(kwire.frame(payload))
        expect_closed_or_invalid(c, bk, guard.log_offset, "ApiVersions v3 with " + case,
                                 api_versions_error_is(ERR["INVALID_REQUEST"]))


# ---------------------------------------------------------------------------
# API keys and versions
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("api_key", [9999, 32767, -1, 250])
def test_unknown_api_key(bk, guard, api_key):
    with Conn(bk.port) as c:
        c.send(kwire.request(api_key, 0, 11, b"\x00" * 8))
        expect_closed_with_reason(c, bk, guard.log_offset, "unknown API key %d" % api_key)


@pytest.mark.parametrize("version", [0, 1, 2])
def test_produce_legacy_versions_unsupported(bk, guard, version):
    msgset = kwire.legacy_message_v1(b"k", b"legacy value")
    with Conn(bk.port) as c:
        try:
            res = c.produce(version, [(VICTIM, [(0, msgset)])])
        except Closed:
            raise AssertionError("Produce v%d: connection closed; expected UNSUPPORTED_VERSION in the response" % version)
        r = res.get((VICTIM, 0))
        assert r is not None, "Produce v%d response lacks %s-0: %r" % (version, VICTIM, res)
        assert r["error"] == ERR["UNSUPPORTED_VERSION"], "Produce v%d: %s, expected UNSUPPORTED_VERSION" % (
            version, err_name(r["error"]))
        # the connection stays usable
        _, err, _ = kwire.parse_api_versions(c.roundtrip(kwire.API_API_VERSIONS, 0, b""), 0)
        assert err == 0


@pytest.mark.parametrize("version", [12, 99])
def test_produce_version_above_served(bk, guard, version):
    batch, _ = simple_batch()
    body = kwire.produce_body(11, [(VICTIM, [(0, batch)])])
    with Conn(bk.port) as c:
        c.send(kwire.request(kwire.API_PRODUCE, version, 12, body, header_version=2))
        expect_closed_or_invalid(c, bk, guard.log_offset, "Produce v%d" % version,
                                 produce_errors_are(11, ERR["UNSUPPORTED_VERSION"]))


@pytest.mark.parametrize("header_version", [1, 2])
def test_api_versions_unsupported_version(bk, guard, header_version):
    with Conn(bk.port) as c:
        corr = c.next_corr()
        c.send(kwire.request(kwire.API_API_VERSIONS, 99, corr, kwire.api_versions_body(3), header_version))
        payload = c.recv_frame()
        got, err, keys = kwire.parse_api_versions(payload, 0)  # a v0-format response
        assert got == corr
        assert err == ERR["UNSUPPORTED_VERSION"], "ApiVersions v99: %s" % err_name(err)
        assert keys.get(18, (None, -1))[1] >= 3, "ApiVersions v99 answer lacks the broker's list: %r" % keys
        assert 0 in keys and 1 in keys and 3 in keys, "ApiVersions v99 answer lacks Produce/Fetch/Metadata: %r" % keys
        # a client retries with a version from the list on the same connection
        payload = c.roundtrip(kwire.API_API_VERSIONS, 3, kwire.api_versions_body(3), header_version=2)
        _, err, keys3 = kwire.parse_api_versions(payload, 3)
        assert err == 0 and keys3 == keys, "ApiVersions v3 after v99: %s, %r" % (err_name(err), keys3)


# ---------------------------------------------------------------------------
# record batches
# ---------------------------------------------------------------------------

VERSIONS = [3, 9]


@pytest.mark.parametrize("version", VERSIONS)
def test_bad_crc(bk, guard, version):
    good, _ = simple_batch()
    crc = struct.unpack_from(">I", good, 17)[0]
    bad, _ = simple_batch(crc_override=crc ^ 0x1)
    r = produce_one(bk, version, VICTIM, bad)
    assert r["error"] == ERR["CORRUPT_MESSAGE"], "bad CRC: %s" % err_name(r["error"])


@pytest.mark.parametrize("version", VERSIONS)
def test_flipped_byte_in_record(bk, guard, version):
    good, _ = simple_batch()
    bad = bytearray(good)
    bad[-5] ^= 0x40  # inside the last record's value; the CRC no longer matches
    r = produce_one(bk, version, VICTIM, bytes(bad))
    assert r["error"] == ERR["CORRUPT_MESSAGE"], "corrupted record byte: %s" % err_name(r["error"])


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("magic", [3, 99])
def test_wrong_magic(bk, guard, version, magic):
    bad, _ = simple_batch(magic=magic)
    r = produce_one(bk, version, VICTIM, bad)
    assert r["error"] == ERR["CORRUPT_MESSAGE"], "magic %d: %s" % (magic, err_name(r["error"]))


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("magic", [0, 1])
def test_legacy_magic_in_new_produce(bk, guard, version, magic):
    bad, _ = simple_batch(magic=magic)
    r = produce_one(bk, version, VICTIM, bad)
    assert r["error"] in (ERR["CORRUPT_MESSAGE"], ERR["INVALID_RECORD"]), \
        "magic %d batch in Produce v%d: %s" % (magic, version, err_name(r["error"]))


@pytest.mark.parametrize("version", VERSIONS)
def test_batch_length_beyond_bytes(bk, guard, version):
    good, _ = simple_batch()
    bad = good[:8] + kwire.i32(len(good) - 12 + 50) + good[12:]
    r = produce_one(bk, version, VICTIM, bad)
    assert r["error"] == ERR["CORRUPT_MESSAGE"], "batch length past the records: %s" % err_name(r["error"])


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("length", [0, 10, 48, -1])
def test_batch_length_too_small(bk, guard, version, length):
    good, _ = simple_batch()
    bad = good[:8] + kwire.i32(length) + good[12:]
    r = produce_one(bk, version, VICTIM, bad)
    assert r["error"] == ERR["CORRUPT_MESSAGE"], "batch length %d: %s" % (length, err_name(r["error"]))


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("count", [5, 2, 0, -1, 2 ** 31 - 1])
def test_record_count_mismatch(bk, guard, version, count):
    bad, _ = simple_batch(n=3, record_count=count)
    r = produce_one(bk, version, VICTIM, bad)
    assert r["error"] in (ERR["CORRUPT_MESSAGE"], ERR["INVALID_RECORD"]), \
        "record count %d for 3 records: %s" % (count, err_name(r["error"]))


@pytest.mark.parametrize("version", VERSIONS)
def test_record_length_overruns_batch(bk, guard, version):
    rec = kwire.encode_record(0, b"k", b"v" * 10)
    lying = kwire.varint(1000) + rec[1:]  # the record claims 1000 bytes
    bad = kwire.build_batch([(b"k", b"v" * 10, [])], records_blob=lying)
    r = produce_one(bk, version, VICTIM, bad)
    assert r["error"] in (ERR["CORRUPT_MESSAGE"], ERR["INVALID_RECORD"]), \
        "record length past the batch: %s" % err_name(r["error"])


@pytest.mark.parametrize("version", VERSIONS)
def test_negative_key_length_inside_record(bk, guard, version):
    body = kwire.i8(0) + kwire.varint(0) + kwire.varint(0) + kwire.varint(-7) + b"kkkkkkk" + kwire.varint(1) + b"v" \
        + kwire.varint(0)
    bad = kwire.build_batch([(b"k", b"v", [])], records_blob=kwire.varint(len(body)) + body)
    r = produce_one(bk, version, VICTIM, bad)
    assert r["error"] in (ERR["CORRUPT_MESSAGE"], ERR["INVALID_RECORD"]), \
        "key length -7: %s" % err_name(r["error"])


@pytest.mark.parametrize("version", VERSIONS)
def test_batch_over_message_max_bytes(bk, guard, version):
    bad = kwire.build_batch([(b"big", b"\xab" * (MESSAGE_MAX_BYTES + 100), [])])
    r = produce_one(bk, version, VICTIM, bad)
    assert r["error"] == ERR["MESSAGE_TOO_LARGE"], "batch of %d bytes: %s" % (len(bad), err_name(r["error"]))


def test_many_small_records_over_message_max_bytes(bk, guard):
    recs = [(b"k", b"\xcd" * 1000, []) for _ in range(1100)]
    bad = kwire.build_batch(recs)
    assert len(bad) > MESSAGE_MAX_BYTES
    r = produce_one(bk, 9, VICTIM, bad)
    assert r["error"] == ERR["MESSAGE_TOO_LARGE"], "batch of %d bytes: %s" % (len(bad), err_name(r["error"]))


@pytest.mark.parametrize("version", VERSIONS)
def test_invalid_required_acks(bk, guard, version):
    good, _ = simple_batch()
    with Conn(bk.port) as c:
        res = c.produce(version, [(VICTIM, [(0, good)])], acks=2)
    assert res[(VICTIM, 0)]["error"] == ERR["INVALID_REQUIRED_ACKS"], err_name(res[(VICTIM, 0)]["error"])


def test_unknown_partition(bk, guard):
    good, _ = simple_batch()
    r = produce_one(bk, 9, VICTIM, good, partition=99)
    assert r["error"] == ERR["UNKNOWN_TOPIC_OR_PARTITION"], "partition 99 of a 1-partition topic: %s" % err_name(
        r["error"])


def test_one_bad_partition_does_not_spoil_the_others(bk, healthy, guard):
    """A request with a bad batch for the victim and a good one for the
    control partition: the control append succeeds, the victim is refused."""
    good, recs = simple_batch()
    bad, _ = simple_batch(crc_override=0)
    end0 = healthy.end_offset(CONTROL)
    with Conn(bk.port) as c:
        res = c.produce(9, [(VICTIM, [(0, bad)]), (CONTROL, [(0, good)])])
    assert res[(VICTIM, 0)]["error"] == ERR["CORRUPT_MESSAGE"], err_name(res[(VICTIM, 0)]["error"])
    assert res[(CONTROL, 0)]["error"] == 0, err_name(res[(CONTROL, 0)]["error"])
    msgs = ck_read_partition(bk, CONTROL, 0, end0, end0 + len(recs))
    assert [m.value() for m in msgs] == [v for _, v, _, _ in recs]


# ---------------------------------------------------------------------------
# decompression bombs
# ---------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def bomb(kind):
    """Compressed records sections that expand enormously (or claim to)."""
    if kind == "gzip-768MiB-zeros":
        return 1, kwire.gzip_zeros(768 << 20)
    if kind == "gzip-garbage":
        return 1, b"\x1f\x8b\x08\x00" + bytes(range(256)) * 8
    if kind == "zstd-4GiB-rle":
        return 4, kwire.zstd_rle_bomb(4 << 30)
    if kind == "zstd-claims-1TiB":
        return 4, kwire.zstd_with_claimed_size(kwire.zstd_compress(bytes(1000)), 1 << 40)
    if kind == "lz4-200MiB-zeros":
        return 3, kwire.lz4_frame(bytes(200 << 20))
    if kind == "lz4-claims-1TiB":
        return 3, kwire.lz4_with_claimed_size(kwire.lz4_frame(bytes(1000)), 1 << 40)
    if kind == "snappy-claims-4GiB":
        raw = kwire.snappy_raw(bytes(1000))
        r = kwire.Reader(raw)
        r.uvarint()  # drop the real length preamble
        return 2, kwire.uvarint(0xFFFFFFFF) + raw[r.p:]
    if kind == "snappy-xerial-16MiB-zeros":
        return 2, kwire.snappy_xerial(bytes(16 << 20), chunk=1 << 20)
    if kind == "snappy-xerial-chunk-claims-4GiB":
        raw = kwire.snappy_raw(bytes(1000))
        r = kwire.Reader(raw)
        r.uvarint()
        block = kwire.uvarint(0xFFFFFFFF) + raw[r.p:]
        return 2, kwire.XERIAL_HEADER + kwire.i32(len(block)) + block
    raise KeyError(kind)


# snappy's ratio is at most ~21:1, so this one expands to only 16 MiB of zeros
ZEROS_UNDER_CAP = {"snappy-xerial-16MiB-zeros"}
BOMBS = ["gzip-768MiB-zeros", "gzip-garbage", "zstd-4GiB-rle", "zstd-claims-1TiB", "lz4-200MiB-zeros",
         "lz4-claims-1TiB", "snappy-claims-4GiB", "snappy-xerial-16MiB-zeros", "snappy-xerial-chunk-claims-4GiB"]


@pytest.mark.parametrize("kind", BOMBS)
def test_decompression_bomb(bk, guard, kind):
    codec, blob = bomb(kind)
    assert len(blob) < MESSAGE_MAX_BYTES - 200, "bomb %s is %d bytes, over message.max.bytes" % (kind, len(blob))
    batch = kwire.build_batch([(None, b"x", [])], codec=codec, compress=lambda _: blob)
    rss0 = peak_rss_mb(bk)
    t0 = time.monotonic()
    r = produce_one(bk, 9, VICTIM, batch)
    took = time.monotonic() - t0
    if kind in ZEROS_UNDER_CAP:
        # decompresses within any sane cap to zeros, i.e. records of length 0
        assert r["error"] in (ERR["CORRUPT_MESSAGE"], ERR["INVALID_RECORD"]), "%s: %s" % (kind, err_name(r["error"]))
    else:
        assert r["error"] == ERR["CORRUPT_MESSAGE"], "%s: %s" % (kind, err_name(r["error"]))
    grew = peak_rss_mb(bk) - rss0
    assert grew < 256, "%s: broker peak RSS grew by %.0f MB (decompressing without a bound?)" % (kind, grew)
    assert took < 30, "%s took %.1f s to reject" % (kind, took)


# ---------------------------------------------------------------------------
# topic names
# ---------------------------------------------------------------------------

BAD_NAMES = ["bad name", "..", ".", "a" * 250, "x/y", "semi;colon", "tab\tname", "ünï", ""]


def _assert_not_created(broker, name):
    with Conn(broker.port) as c:
        _, md = kwire.parse_metadata_v1(c.roundtrip(kwire.API_METADATA, 1, kwire.metadata_v1_body(None)))
    assert name not in md["topics"], "invalid topic %r was created" % name
    prefix = name + "-"
    assert not any(d.startswith(prefix) for d in broker.topic_dirs() if name), \
        "a directory for invalid topic %r exists: %s" % (name, broker.topic_dirs())


@pytest.mark.parametrize("name", BAD_NAMES)
def test_produce_to_invalid_topic_name(bk, guard, name):
    good, _ = simple_batch()
    r = produce_one(bk, 9, name, good)
    assert r["error"] == ERR["INVALID_TOPIC_EXCEPTION"], "produce to %r: %s" % (name, err_name(r["error"]))
    _assert_not_created(bk, name)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_metadata_for_invalid_topic_name(bk, guard, name):
    with Conn(bk.port) as c:
        _, md = kwire.parse_metadata_v1(c.roundtrip(kwire.API_METADATA, 1, kwire.metadata_v1_body([name])))
    t = md["topics"].get(name)
    assert t is not None, "Metadata v1 answer lacks the requested name %r: %r" % (name, list(md["topics"]))
    assert t["error"] == ERR["INVALID_TOPIC_EXCEPTION"], "Metadata for %r: %s" % (name, err_name(t["error"]))
    _assert_not_created(bk, name)


# ---------------------------------------------------------------------------
# more decoders: a huge array count right after each request's fixed fields
# ---------------------------------------------------------------------------

HUGE = 0x7FFFFFF0
# (api key, version, header version, body)
HUGE_ARRAY_CASES = {
    "Fetch v4 topics": (1, 4, 1, kwire.i32(-1) + kwire.i32(100) + kwire.i32(1) + kwire.i32(1 << 20) + kwire.i8(0)
                        + kwire.i32(HUGE)),
    "Fetch v12 topics (compact)": (1, 12, 2, kwire.i32(-1) + kwire.i32(100) + kwire.i32(1) + kwire.i32(1 << 20)
                                   + kwire.i8(0) + kwire.i32(0) + kwire.i32(-1) + kwire.uvarint(HUGE)),
    "ListOffsets v1 topics": (2, 1, 1, kwire.i32(-1) + kwire.i32(HUGE)),
    "ListOffsets v6 topics (compact)": (2, 6, 2, kwire.i32(-1) + kwire.i8(0) + kwire.uvarint(HUGE)),
    "CreateTopics v0 topics": (19, 0, 1, kwire.i32(HUGE)),
    "CreateTopics v5 topics (compact)": (19, 5, 2, kwire.uvarint(HUGE)),
    "DeleteTopics v0 names": (20, 0, 1, kwire.i32(HUGE)),
    "DeleteTopics v4 names (compact)": (20, 4, 2, kwire.uvarint(HUGE)),
    "Metadata v9 topics (compact)": (3, 9, 2, kwire.uvarint(HUGE)),
}


@pytest.mark.parametrize("case", sorted(HUGE_ARRAY_CASES))
def test_huge_array_count_each_api(bk, guard, case):
    """Closed with a log line (the request cannot be decoded), or answered:
    then the answer carries INVALID_REQUEST (42) somewhere. The second
    branch only looks for the code's bytes: these responses have different
    layouts and none is expected to be successful here."""
    api, version, hv, body = HUGE_ARRAY_CASES[case]
    rss0 = peak_rss_mb(bk)
    with Conn(bk.port) as c:
        c.send(kwire.request(api, version, 21, body, header_version=hv))

        def check(payload):
            assert struct.pack(">h", ERR["INVALID_REQUEST"]) in payload[4:], \
                "%s answered without INVALID_REQUEST: %r" % (case, payload[:64])
        expect_closed_or_invalid(c, bk, guard.log_offset, case, check)
    assert peak_rss_mb(bk) - rss0 < 64, "%s: peak RSS grew %.0f MB" % (case, peak_rss_mb(bk) - rss0)


# ---------------------------------------------------------------------------
# connections: partial frames do not block others; pipelining keeps order
# ---------------------------------------------------------------------------

def test_idle_partial_frames_do_not_block_others(bk, healthy, guard):
    """50 connections each stuck halfway through a frame (slow clients):
    the healthy client still gets its round trip meanwhile."""
    conns = []
    try:
        for i in range(50):
            c = Conn(bk.port)
            conns.append(c)
            frame = kwire.request(kwire.API_METADATA, 1, i, kwire.metadata_v1_body([VICTIM]))
            c.send(frame[:len(frame) // 2])
        t0 = time.monotonic()
        healthy.roundtrip("50 half-sent frames")
        assert time.monotonic() - t0 < 5, "healthy round trip took %.1f s beside half-sent frames" % (
            time.monotonic() - t0)
        # and each stalled request completes once its second half arrives
        for i, c in enumerate(conns):
            frame = kwire.request(kwire.API_METADATA, 1, i, kwire.metadata_v1_body([VICTIM]))
            c.send(frame[len(frame) // 2:])
        for i, c in enumerate(conns):
            corr, md = kwire.parse_metadata_v1(c.recv_frame())
            assert corr == i and md["topics"][VICTIM]["error"] == 0
    finally:
        for c in conns:
            c.close()


def test_pipelined_requests_answered_in_order(bk, guard):
    """500 requests of mixed APIs in one write: 500 answers, in order."""
    reqs = []
    for i in range(500):
        if i % 3 == 0:
            reqs.append(kwire.request(kwire.API_API_VERSIONS, i % 4, i, kwire.api_versions_body(i % 4),
                                      header_version=2 if i % 4 >= 3 else 1))
        elif i % 3 == 1:
            reqs.append(kwire.request(kwire.API_METADATA, 1, i, kwire.metadata_v1_body([VICTIM])))
        else:
            reqs.append(kwire.request(kwire.API_API_VERSIONS, 0, i, b""))
    with Conn(bk.port) as c:
        c.send(b"".join(reqs))
        for i in range(500):
            payload = c.recv_frame(timeout=20)
            corr = struct.unpack_from(">i", payload)[0]
            assert corr == i, "answer %d has correlation id %d: out of order" % (i, corr)
