"""Idempotent producer on the wire (issue 5, first part), spoken with
tests/kwire.py so every field is under the test's control: InitProducerId
v0-v5 hands out distinct ids (never reused across a clean restart or a
kill -9); a retried batch is answered with its original base offset and
no error and stored once; a gap answers OUT_OF_ORDER_SEQUENCE_NUMBER, an old
epoch INVALID_PRODUCER_EPOCH, a producer id never issued (or unknown to the
partition with a sequence other than 0) UNKNOWN_PRODUCER_ID, transactional
and control batches from a client INVALID_RECORD — nothing stored for any of
them; and a batch replayed after a SIGTERM restart and after a kill -9 is
still recognised as a duplicate."""
import pytest

import kwire
from rilltest import ck_create_topic, unique, wait_until

API_INIT_PRODUCER_ID = 22
NONE = 0
REQUEST_TIMED_OUT = 7
INVALID_REQUEST = 42
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47
UNKNOWN_PRODUCER_ID = 59
INVALID_RECORD = 87
PRODUCE_V = 9


def init_producer_id(conn, version=1, transactional_id=None, pid=-1, epoch=-1):
    """Returns (error, producer_id, epoch)."""
    if version >= 2:
        body = kwire.compact_string(transactional_id) + kwire.i32(60000)
        if version >= 3:
            body += kwire.i64(pid) + kwire.i16(epoch)
        body += kwire.TAGS_NONE
        payload = conn.roundtrip(API_INIT_PRODUCER_ID, version, body, header_version=2)
        r = kwire.Reader(payload)
        r.i32()
        r.tags()
    else:
        body = kwire.string(transactional_id) + kwire.i32(60000)
        payload = conn.roundtrip(API_INIT_PRODUCER_ID, version, body)
        r = kwire.Reader(payload)
        r.i32()
    r.i32()  # throttle
    return r.i16(), r.i64(), r.i16()


def batch(pid, epoch, seq, n=3, tag=b"", attributes_extra=0):
    return kwire.build_batch([(None, b"%s-%d" % (tag, seq + i), []) for i in range(n)],
                             producer_id=pid, producer_epoch=epoch, base_sequence=seq,
                             attributes_extra=attributes_extra)


def produce(conn, topic, b, partition=0, acks=-1):
    res = conn.produce(PRODUCE_V, [(topic, [(partition, b)])], acks=acks)
    d = res[(topic, partition)]
    return d["error"], d["base_offset"]


def stored(broker, topic, partition=0):
    """(base offset, count) of every batch in the partition's segments."""
    out = []
    for path in broker.segment_files(topic, partition):
        out += [(b["offset"], b["count"]) for b in kwire.read_segment_batches(path)]
    return sorted(out)


def plain_offset(conn, topic):
    """The offset a plain (non-idempotent) batch gets now: the log end."""
    err, off = produce(conn, topic, kwire.build_batch([(None, b"plain", [])]))
    assert err == NONE
    return off


@pytest.mark.parametrize("version", [0, 1, 2, 3, 4, 5])
def test_init_producer_id_versions(shared_broker, version):
    with kwire.Conn(shared_broker.port) as c:
        seen = set()
        for _ in range(3):
            err, pid, epoch = init_producer_id(c, version)
            assert err == NONE and pid >= 0 and epoch == 0
            seen.add(pid)
        assert len(seen) == 3
        if version >= 3:  # an epoch-bump request without transactional.id gets a fresh id (Kafka)
            err, pid2, epoch2 = init_producer_id(c, version, pid=pid, epoch=0)
            assert err == NONE and pid2 not in seen and epoch2 == 0


def test_init_producer_id_transactional_served(shared_broker):
    """With the transaction coordinator (test_transactions.py) a transactional.id gets an id;
    an empty one is still INVALID_REQUEST."""
    with kwire.Conn(shared_broker.port) as c:
        err, pid, epoch = init_producer_id(c, 1, transactional_id="txn-1")
        assert (err, epoch) == (NONE, 0) and pid >= 0
        err, pid2, epoch2 = init_producer_id(c, 4, transactional_id="txn-1")
        assert (err, pid2, epoch2) == (NONE, pid, 1)  # the same id, the epoch bumped (fencing)
        assert init_producer_id(c, 1, transactional_id="")[0] == INVALID_REQUEST


def test_duplicate_returns_original_offset(shared_broker):
    topic = ck_create_topic(shared_broker, unique("idem-dup"), partitions=2)
    with kwire.Conn(shared_broker.port) as c:
        _, pid, epoch = init_producer_id(c)
        b0 = batch(pid, epoch, 0)
        err, off0 = produce(c, topic, b0)
        assert (err, off0) == (NONE, 0)
        err, off1 = produce(c, topic, batch(pid, epoch, 3))
        assert (err, off1) == (NONE, 3)
        # retries of both (acks=all and acks=1): original offsets, no error
        for acks in (-1, 1):
            assert produce(c, topic, b0, acks=acks) == (NONE, 0)
            assert produce(c, topic, batch(pid, epoch, 3), acks=acks) == (NONE, 3)
        # the same sequences on another partition are a different stream
        assert produce(c, topic, batch(pid, epoch, 0), partition=1) == (NONE, 0)
        assert plain_offset(c, topic) == 6
        assert stored(shared_broker, topic) == [(0, 3), (3, 3), (6, 1)]
        # the window is 5 batches: the 6th-oldest is out of order, not a duplicate
        for k in range(2, 7):
            assert produce(c, topic, batch(pid, epoch, k * 3)) == (NONE, 7 + (k - 2) * 3)
        assert produce(c, topic, b0)[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
        assert produce(c, topic, batch(pid, epoch, 6))[0] == NONE  # seq 6..8 is in the window: duplicate
        assert produce(c, topic, batch(pid, epoch, 6))[1] == 7


def test_bad_sequences_store_nothing(shared_broker):
    topic = ck_create_topic(shared_broker, unique("idem-bad"))
    with kwire.Conn(shared_broker.port) as c:
        _, pid, _ = init_producer_id(c)
        assert produce(c, topic, batch(pid, 0, 0)) == (NONE, 0)
        before = stored(shared_broker, topic)
        cases = [
            ("gap", batch(pid, 0, 5), OUT_OF_ORDER_SEQUENCE_NUMBER),
            ("overlap", batch(pid, 0, 1), OUT_OF_ORDER_SEQUENCE_NUMBER),
            ("new epoch not at 0", batch(pid, 1, 3), OUT_OF_ORDER_SEQUENCE_NUMBER),
            ("never issued", batch(pid + 10 ** 9, 0, 0), UNKNOWN_PRODUCER_ID),
            ("unknown to the partition", batch(init_producer_id(c)[1], 0, 7), UNKNOWN_PRODUCER_ID),
            ("negative sequence", batch(pid, 0, -5), INVALID_RECORD),
            ("transactional", batch(pid, 0, 3, attributes_extra=0x10), INVALID_RECORD),
            ("control", batch(pid, 0, 3, attributes_extra=0x30), INVALID_RECORD),
        ]
        for what, b, code in cases:
            assert produce(c, topic, b)[0] == code, what
        assert stored(shared_broker, topic) == before
        # a bump to epoch 1 (sequence 0) fences epoch 0
        assert produce(c, topic, batch(pid, 1, 0)) == (NONE, 3)
        assert produce(c, topic, batch(pid, 0, 3))[0] == INVALID_PRODUCER_EPOCH
        assert produce(c, topic, batch(pid, 1, 3)) == (NONE, 6)
        assert stored(shared_broker, topic) == [(0, 3), (3, 3), (6, 3)]


@pytest.mark.parametrize("clean", [True, False], ids=["sigterm", "kill9"])
def test_dedup_survives_restart(broker_factory, clean):
    # small segments so the producer's batches span rolls (snapshots at roll)
    broker = broker_factory(props={"log.segment.bytes": 1000})
    topic = ck_create_topic(broker, unique("idem-restart"))
    with kwire.Conn(broker.port) as c:
        _, pid, _ = init_producer_id(c)
        offs = []
        for k in range(60):
            err, off = produce(c, topic, batch(pid, 0, k * 3, tag=b"r"))
            assert err == NONE
            offs.append(off)
        seen_pids = {pid}
    assert len(broker.segment_files(topic, 0)) > 3
    broker.restart(clean=clean)
    with kwire.Conn(broker.port) as c:
        for k in range(55, 60):
            assert produce(c, topic, batch(pid, 0, k * 3, tag=b"r")) == (NONE, offs[k]), k
        assert produce(c, topic, batch(pid, 0, 60 * 3 + 1))[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
        assert produce(c, topic, batch(pid, 0, 60 * 3)) == (NONE, 180)
        # a restart never hands out an id again
        _, pid2, _ = init_producer_id(c)
        assert pid2 not in seen_pids and pid2 > pid
    assert stored(broker, topic)[-1] == (180, 3)
    assert sum(n for _, n in stored(broker, topic)) == 183


def test_duplicate_waits_for_durable_original(broker_factory):
    """acks=all: a duplicate is not acknowledged before its original is
    durable. The original goes in with acks=1 while fsyncs are slowed
    (failpoint st.fsync.delay_ms); its retry with acks=all and a 200 ms
    timeout must time out, and with a long timeout succeed at the original
    offset once the sync is done."""
    broker = broker_factory(env={"RILL_FAILPOINTS": "st.fsync.delay_ms=1500"})
    topic = ck_create_topic(broker, unique("idem-durable"))
    with kwire.Conn(broker.port, timeout=30) as c:
        _, pid, _ = init_producer_id(c)
        b0 = batch(pid, 0, 0)
        assert produce(c, topic, b0, acks=1) == (NONE, 0)
        corr = c.next_corr()
        c.send(kwire.produce_request(PRODUCE_V, corr, [(topic, [(0, b0)])], acks=-1, timeout_ms=200))
        got, res = kwire.parse_produce_response(PRODUCE_V, c.recv_frame(10))
        assert got == corr and res[(topic, 0)]["error"] == REQUEST_TIMED_OUT, res
        corr = c.next_corr()
        c.send(kwire.produce_request(PRODUCE_V, corr, [(topic, [(0, b0)])], acks=-1, timeout_ms=20000))
        got, res = kwire.parse_produce_response(PRODUCE_V, c.recv_frame(25))
        assert got == corr and (res[(topic, 0)]["error"], res[(topic, 0)]["base_offset"]) == (NONE, 0), res
    assert stored(broker, topic) == [(0, 3)]


API_DESCRIBE_PRODUCERS = 61


def describe_producers(conn, topics):
    """topics: [(name, [partition, ...])]. Returns {(topic, partition): (error, {pid: (epoch, last_seq, ts)})}."""
    def topic(t):
        return (kwire.compact_string(t[0]) + kwire.compact_array(t[1], kwire.i32) + kwire.TAGS_NONE)
    body = kwire.compact_array(topics, topic) + kwire.TAGS_NONE
    r = kwire.Reader(conn.roundtrip(API_DESCRIBE_PRODUCERS, 0, body, header_version=2))
    r.i32()
    r.tags()
    r.i32()  # throttle
    out = {}

    def prod(r):
        p = (r.i64(), r.i32(), r.i32(), r.i64(), r.i32(), r.i64())
        r.tags()
        assert p[4] == -1 and p[5] == -1  # no transactions
        return p

    def part(r, name):
        idx, err = r.i32(), r.i16()
        r.compact_string()
        ps = r.compact_array(prod)
        r.tags()
        out[(name, idx)] = (err, {p[0]: (p[1], p[2], p[3]) for p in ps})

    def top(r):
        name = r.compact_string()
        r.compact_array(lambda r: part(r, name))
        r.tags()
    r.compact_array(top)
    r.tags()
    return out


def test_describe_producers(broker_factory):
    broker = broker_factory()
    topic = ck_create_topic(broker, unique("idem-describe"), partitions=2)
    with kwire.Conn(broker.port) as c:
        _, p1, _ = init_producer_id(c)
        _, p2, _ = init_producer_id(c)
        assert produce(c, topic, batch(p1, 0, 0, n=4)) == (NONE, 0)
        assert produce(c, topic, batch(p1, 0, 4, n=2)) == (NONE, 4)
        assert produce(c, topic, batch(p2, 0, 0, n=1)) == (NONE, 6)
        assert produce(c, topic, batch(p2, 1, 0, n=3)) == (NONE, 7)  # epoch bump
        assert produce(c, topic, kwire.build_batch([(None, b"plain", [])])) == (NONE, 10)
        res = describe_producers(c, [(topic, [0, 1, 7]), ("no-such-topic", [0])])
        err, ps = res[(topic, 0)]
        assert err == NONE and {k: v[:2] for k, v in ps.items()} == {p1: (0, 5), p2: (1, 2)}
        assert res[(topic, 1)] == (NONE, {})
        assert res[(topic, 7)][0] == 3 and res[("no-such-topic", 0)][0] == 3  # UNKNOWN_TOPIC_OR_PARTITION
    broker.restart(clean=False)  # the same after a kill -9 (state rebuilt)
    with kwire.Conn(broker.port) as c:
        err, ps = describe_producers(c, [(topic, [0])])[(topic, 0)]
        assert err == NONE and {k: v[:2] for k, v in ps.items()} == {p1: (0, 5), p2: (1, 2)}


def test_producer_expiry(broker_factory):
    """producer.id.expiration.ms: a producer idle that long is forgotten by
    its partition (checked on appends); its next batch with a sequence other
    than 0 gets UNKNOWN_PRODUCER_ID, sequence 0 starts it afresh. A producer
    still writing is kept."""
    broker = broker_factory(props={"producer.id.expiration.ms": 1500})
    topic = ck_create_topic(broker, unique("idem-expiry"))
    with kwire.Conn(broker.port) as c:
        _, idle, _ = init_producer_id(c)
        _, busy, _ = init_producer_id(c)
        assert produce(c, topic, batch(idle, 0, 0))[0] == NONE
        seq = [0]

        def expired():
            # the busy producer's appends run the expiry check
            assert produce(c, topic, batch(busy, 0, seq[0], n=1))[0] == NONE
            seq[0] += 1
            ps = describe_producers(c, [(topic, [0])])[(topic, 0)][1]
            assert busy in ps
            return idle not in ps
        wait_until(expired, 15, "the idle producer to expire", interval=0.1)
        assert produce(c, topic, batch(idle, 0, 3))[0] == UNKNOWN_PRODUCER_ID
        assert produce(c, topic, batch(idle, 0, 0))[0] == NONE


SEQ_MAX = 2 ** 31 - 1


def patch_sequence(path, offset, seq):
    """Rewrites the base sequence of the batch at `offset` in a segment file
    (its CRC recomputed): the way to give a producer a sequence near
    INT32_MAX without writing 2^31 records."""
    import struct
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        for b in kwire.parse_batches(bytes(data)):
            if b["offset"] == offset:
                pos = b["position"]
                struct.pack_into(">i", data, pos + 53, seq)
                struct.pack_into(">I", data, pos + 17, kwire.crc32c(bytes(data[pos + 21:pos + b["size"]])))
                f.seek(0)
                f.write(data)
                return
    raise AssertionError("no batch at offset %d in %s" % (offset, path))


def test_sequence_wraps_at_int32_max(broker_factory):
    """Kafka's sequence arithmetic at the limit, on the raw wire: after a last
    sequence of INT32_MAX the next batch starts at 0; a batch may span the
    wrap (last = base + count - 1, wrapped), and its retry is a duplicate;
    a transactional producer wraps the same way across transactions;
    negative base sequences (-1 included) are INVALID_RECORD, a wrong
    sequence after the wrap OUT_OF_ORDER_SEQUENCE_NUMBER, nothing stored.
    The state near the wrap survives a SIGTERM restart (the producer
    snapshot) and a kill -9 (rebuilt from the log). Sequences near INT32_MAX
    are set by rewriting the first batches in the segment while rilld is
    stopped, with the snapshots removed so the state is rebuilt from them."""
    import os
    from test_transactions import add_partitions, end_txn, read_all
    broker = broker_factory()
    topic = ck_create_topic(broker, unique("idem-wrap"))
    tid = unique("tid-wrap")

    def tproduce(c, b):
        res = c.produce(PRODUCE_V, [(topic, [(0, b)])], transactional_id=tid)
        return res[(topic, 0)]["error"], res[(topic, 0)]["base_offset"]

    with kwire.Conn(broker.port) as c:
        _, a, _ = init_producer_id(c)
        _, b, _ = init_producer_id(c)
        err, t, te = init_producer_id(c, 1, transactional_id=tid)
        assert err == NONE
        assert produce(c, topic, batch(a, 0, 0, n=1, tag=b"a")) == (NONE, 0)
        assert produce(c, topic, batch(b, 0, 0, n=1, tag=b"b")) == (NONE, 1)
        assert add_partitions(c, tid, t, te, topic, [0]) == [NONE]
        assert tproduce(c, batch(t, te, 0, n=1, tag=b"t", attributes_extra=0x10)) == (NONE, 2)
        assert end_txn(c, tid, t, te, True) == NONE  # marker at 3
    broker.stop()
    pdir = broker.partition_dir(topic, 0)
    seg = broker.segment_files(topic, 0)[0]
    patch_sequence(seg, 0, SEQ_MAX - 2)
    patch_sequence(seg, 1, SEQ_MAX - 1)
    patch_sequence(seg, 2, SEQ_MAX - 1)
    for f in os.listdir(pdir):
        if f.endswith(".snapshot"):
            os.remove(os.path.join(pdir, f))
    broker.start()
    with kwire.Conn(broker.port) as c:
        before = stored(broker, topic)
        cases = [
            ("a: INT32_MAX skipped", batch(a, 0, 0, n=1), OUT_OF_ORDER_SEQUENCE_NUMBER),
            ("a: base -1", batch(a, 0, -1, n=1), INVALID_RECORD),
            ("a: base INT32_MIN", batch(a, 0, -2 ** 31, n=1), INVALID_RECORD),
            ("b: base -2", batch(b, 0, -2, n=3), INVALID_RECORD),
            ("b: restarts at 0 without reaching INT32_MAX", batch(b, 0, 0, n=1), OUT_OF_ORDER_SEQUENCE_NUMBER),
        ]
        for what, bt, code in cases:
            assert produce(c, topic, bt)[0] == code, what
        assert stored(broker, topic) == before
        # a: a batch ending at INT32_MAX, then the next starts at 0
        assert produce(c, topic, batch(a, 0, SEQ_MAX - 1, n=2, tag=b"a")) == (NONE, 4)
        assert produce(c, topic, batch(a, 0, 1, n=2))[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
        assert produce(c, topic, batch(a, 0, SEQ_MAX, n=1))[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
        assert produce(c, topic, batch(a, 0, 0, n=2, tag=b"a")) == (NONE, 6)
        # b: one batch spanning the wrap (INT32_MAX, 0, 1); its retry is a duplicate
        assert produce(c, topic, batch(b, 0, SEQ_MAX, n=3, tag=b"b")) == (NONE, 8)
        assert produce(c, topic, batch(b, 0, SEQ_MAX, n=3, tag=b"b")) == (NONE, 8)
        assert produce(c, topic, batch(b, 0, 0, n=2))[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
        # t: the next transaction spans the wrap too
        assert add_partitions(c, tid, t, te, topic, [0]) == [NONE]
        assert tproduce(c, batch(t, te, -1, n=2, attributes_extra=0x10))[0] == INVALID_RECORD
        assert tproduce(c, batch(t, te, 0, n=2, attributes_extra=0x10))[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
        assert tproduce(c, batch(t, te, SEQ_MAX, n=2, tag=b"t", attributes_extra=0x10)) == (NONE, 11)
        assert end_txn(c, tid, t, te, True) == NONE  # marker at 13
    assert stored(broker, topic) == [(0, 1), (1, 1), (2, 1), (3, 1), (4, 2), (6, 2), (8, 3), (11, 2), (13, 1)]
    nxt = {a: 2, b: 2, t: 1}  # the next sequence of each
    off = 14
    for clean in (True, False):
        if clean:
            broker.stop()
            assert any(f.endswith(".snapshot") for f in os.listdir(pdir))
            broker.start()
        else:
            broker.restart(clean=False)
        with kwire.Conn(broker.port) as c:
            # the batches around the wrap are still known: duplicates at their offsets
            assert produce(c, topic, batch(a, 0, 0, n=2, tag=b"a")) == (NONE, 6)
            assert produce(c, topic, batch(b, 0, SEQ_MAX, n=3, tag=b"b")) == (NONE, 8)
            assert produce(c, topic, batch(a, 0, nxt[a] + 1, n=1))[0] == OUT_OF_ORDER_SEQUENCE_NUMBER
            for p in (a, b):
                assert produce(c, topic, batch(p, 0, nxt[p], n=1)) == (NONE, off)
                nxt[p] += 1
                off += 1
            assert add_partitions(c, tid, t, te, topic, [0]) == [NONE]
            assert tproduce(c, batch(t, te, nxt[t], n=1, tag=b"t", attributes_extra=0x10)) == (NONE, off)
            assert end_txn(c, tid, t, te, True) == NONE
            nxt[t] += 1
            off += 2
    # read_committed: every record, the committed transactional ones included (12 + 2 x 3)
    assert len(read_all(broker, topic, 1, "read_committed", expect=18)) == 18
