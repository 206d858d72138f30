"""Transaction coordinator completeness (issue 5): TxnOffsetCommit v3+
checks the consumer's group metadata as OffsetCommit does (a zombie's stale
generation, an unknown member, a fenced static instance are refused with
Kafka's codes and nothing is kept), confluent-kafka's
send_offsets_to_transaction(consumer_group_metadata()) works; and
transactional.id.expiration.ms removes an idle transactional id with a
tombstone in __transaction_state (gone from DescribeTransactions and
ListTransactions, still gone after kill -9, a fresh producer id for it
afterwards) while an Ongoing transaction is never expired."""
import time

import confluent_kafka as ck

import kwire
from rilltest import ck_consumer, ck_create_topic, ck_producer, unique, wait_until
from test_groups import SUBSCRIPTION, join, sync
from test_idempotent import init_producer_id
from test_transactions import add_partitions, end_txn

NONE, ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID = 0, 22, 25, 82
TRANSACTIONAL_ID_NOT_FOUND = 105


def add_offsets(conn, tid, pid, epoch, group):
    """AddOffsetsToTxn v1; returns the error."""
    body = kwire.string(tid) + kwire.i64(pid) + kwire.i16(epoch) + kwire.string(group)
    r = kwire.Reader(conn.roundtrip(25, 1, body), 4)
    r.i32()  # throttle
    return r.i16()


def txn_offset_commit(conn, version, tid, pid, epoch, group, topic, partition, offset,
                      gen=-1, member="", instance=None):
    """TxnOffsetCommit (v0-v2 classic, v3 flexible with the group metadata);
    returns the partition's error."""
    if version >= 3:
        s, a = kwire.compact_string, kwire.compact_array
        part = lambda p: kwire.i32(p) + kwire.i64(offset) + kwire.i32(-1) + s("m") + kwire.TAGS_NONE
        body = (s(tid) + s(group) + kwire.i64(pid) + kwire.i16(epoch) + kwire.i32(gen) + s(member) + s(instance)
                + a([topic], lambda t: s(t) + a([partition], part) + kwire.TAGS_NONE) + kwire.TAGS_NONE)
        r = kwire.Reader(conn.roundtrip(28, version, body, header_version=2), 4)
        r.tags()
        r.i32()  # throttle
        assert r.uvarint() == 2 and r.compact_string() == topic and r.uvarint() == 2
    else:
        part = lambda p: kwire.i32(p) + kwire.i64(offset) + (kwire.i32(-1) if version >= 2 else b"") \
            + kwire.string("m")
        body = (kwire.string(tid) + kwire.string(group) + kwire.i64(pid) + kwire.i16(epoch)
                + kwire.array([topic], lambda t: kwire.string(t) + kwire.array([partition], part)))
        r = kwire.Reader(conn.roundtrip(28, version, body), 4)
        r.i32()  # throttle
        assert r.i32() == 1 and r.string() == topic and r.i32() == 1
    assert r.i32() == partition
    return r.i16()


def fetch_offset(conn, group, topic, partition):
    """OffsetFetch v1: the committed offset (-1: none)."""
    body = kwire.string(group) + kwire.array([topic], lambda t: kwire.string(t) + kwire.array([partition], kwire.i32))
    r = kwire.Reader(conn.roundtrip(9, 1, body), 4)
    assert r.i32() == 1 and r.string() == topic and r.i32() == 1 and r.i32() == partition
    off = r.i64()
    r.string()
    assert r.i16() == NONE
    return off


def describe_txn(conn, tid):
    """DescribeTransactions v0: (error, state, producer id, epoch)."""
    body = kwire.compact_array([tid], kwire.compact_string) + kwire.TAGS_NONE
    r = kwire.Reader(conn.roundtrip(65, 0, body, header_version=2), 4)
    r.tags()
    r.i32()  # throttle
    assert r.uvarint() == 2
    err, got, state = r.i16(), r.compact_string(), r.compact_string()
    assert got == tid
    r.i32()
    r.i64()
    return err, state, r.i64(), r.i16()


def list_txns(conn):
    """ListTransactions v0: {transactional id: state}."""
    body = kwire.compact_array([]) + kwire.compact_array([]) + kwire.TAGS_NONE
    r = kwire.Reader(conn.roundtrip(66, 0, body, header_version=2), 4)
    r.tags()
    r.i32()
    assert r.i16() == NONE
    r.compact_array(lambda r: r.compact_string())
    out = {}
    for _ in range(r.uvarint() - 1):
        tid, _pid, state = r.compact_string(), r.i64(), r.compact_string()
        r.tags()
        out[tid] = state
    return out


def init_txn(conn, tid):
    err, pid, epoch = init_producer_id(conn, 1, transactional_id=tid)
    while err == 51:  # CONCURRENT_TRANSACTIONS while an abort completes
        err, pid, epoch = init_producer_id(conn, 1, transactional_id=tid)
    assert err == NONE
    return pid, epoch


def test_send_offsets_with_consumer_group_metadata(broker_factory):
    """confluent-kafka's consume-transform-produce: the offsets sent with the
    consumer's group metadata (TxnOffsetCommit v3 with its generation and
    member id) are committed with the transaction."""
    b = broker_factory({"group.initial.rebalance.delay.ms": 0})
    src = ck_create_topic(b, unique("src"))
    dst = ck_create_topic(b, unique("dst"))
    group = unique("g")
    p = ck_producer(b)
    for i in range(10):
        p.produce(src, value=b"in-%d" % i)
    assert p.flush(30) == 0
    c = ck_consumer(b, **{"group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest",
                          "isolation.level": "read_committed"})
    tp = ck.TopicPartition(src, 0)
    try:
        c.subscribe([src])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 10:
            assert time.monotonic() < deadline, "consumed %d of 10" % len(got)
            for m in c.consume(num_messages=10, timeout=0.2):
                assert m.error() is None, m.error()
                got.append(m)
        q = ck_producer(b, transactional_id=unique("tid"))
        q.init_transactions(30)
        q.begin_transaction()
        for m in got:
            q.produce(dst, value=m.value().replace(b"in", b"out"))
        q.send_offsets_to_transaction([ck.TopicPartition(src, 0, got[-1].offset() + 1)],
                                      c.consumer_group_metadata(), 30)
        q.commit_transaction(30)
        committed = c.committed([tp], timeout=10)[0]
        assert committed.error is None and committed.offset == 10
    finally:
        c.close()


def test_txn_offset_commit_checks_group_metadata(broker_factory):
    """Raw wire: the consumer's generation, member id and static instance id
    sent with TxnOffsetCommit v3 are checked against the group; a refused
    commit keeps nothing (OffsetFetch after the commit shows the accepted
    offset); v0-v2 and v3 without metadata skip the check."""
    b = broker_factory({"group.initial.rebalance.delay.ms": 0})
    topic = ck_create_topic(b, unique("t"))
    group, tid = unique("g"), unique("tid")
    with kwire.Conn(b.port) as gc, kwire.Conn(b.port) as c:
        err, gen1, a, _ = join(gc, 5, group, instance="inst-1")
        assert err == NONE and sync(gc, group, gen1, a, [(a, b"x")]) == NONE
        # the member rejoins with new metadata: a rebalance, generation 2
        other = (("range", SUBSCRIPTION + b"\x00"),)
        err, gen2, a2, _ = join(gc, 5, group, member=a, instance="inst-1", protos=other)
        assert err == NONE and a2 == a and gen2 == gen1 + 1
        assert sync(gc, group, gen2, a, [(a, b"x")]) == NONE

        pid, epoch = init_txn(c, tid)
        assert add_offsets(c, tid, pid, epoch, group) == NONE
        tc = lambda off, **kw: txn_offset_commit(c, 3, tid, pid, epoch, group, topic, 0, off, **kw)
        assert tc(5, gen=gen2, member=a, instance="inst-1") == NONE
        cases = [
            ("zombie: stale generation", dict(gen=gen1, member=a, instance="inst-1"), ILLEGAL_GENERATION),
            ("zombie without instance id", dict(gen=gen1, member=a), ILLEGAL_GENERATION),
            ("unknown member", dict(gen=gen2, member="stranger"), UNKNOWN_MEMBER_ID),
            ("member id with generation -1", dict(member=a), ILLEGAL_GENERATION),
            ("unknown instance id", dict(gen=gen2, member=a, instance="inst-9"), UNKNOWN_MEMBER_ID),
        ]
        for what, kw, code in cases:
            assert tc(99, **kw) == code, what
        # the static instance restarts under a new member id: the old one is fenced
        err, gen3, b_, _ = join(gc, 5, group, instance="inst-1", protos=other)
        assert err == NONE and b_ != a
        assert tc(98, gen=gen3, member=a, instance="inst-1") == FENCED_INSTANCE_ID
        assert end_txn(c, tid, pid, epoch, True) == NONE
        assert fetch_offset(c, group, topic, 0) == 5

        # a group nobody joined: metadata names no member of it
        g2 = unique("g-empty")
        assert add_offsets(c, tid, pid, epoch, g2) == NONE
        assert txn_offset_commit(c, 3, tid, pid, epoch, g2, topic, 0, 97, gen=1, member="m") == UNKNOWN_MEMBER_ID
        # standalone use: v0-v2, or v3 with generation -1 and no member
        assert add_offsets(c, tid, pid, epoch, group) == NONE
        for v in (0, 2):
            assert txn_offset_commit(c, v, tid, pid, epoch, group, topic, 0, 6 + v) == NONE
        assert txn_offset_commit(c, 3, tid, pid, epoch, g2, topic, 0, 11) == NONE
        assert end_txn(c, tid, pid, epoch, True) == NONE
        assert fetch_offset(c, group, topic, 0) == 8
        assert fetch_offset(c, g2, topic, 0) == 11


def test_transactional_id_expiration(broker_factory):
    """An idle transactional id (CompleteCommit, Empty) is removed after
    transactional.id.expiration.ms; an Ongoing one is not. The removal is a
    tombstone: after kill -9 (restarted with the default expiration, so no
    new expiry can hide a missing tombstone) the ids stay gone, and
    InitProducerId gives them a fresh producer id at epoch 0."""
    from test_configs import BROKER, describe
    props = {"transactional.id.expiration.ms": 1500,
             "transaction.remove.expired.transaction.cleanup.interval.ms": 100}
    b = broker_factory(props)
    topic = ck_create_topic(b, unique("t"))
    done_id, empty_id, open_id = unique("tid-done"), unique("tid-empty"), unique("tid-open")
    with kwire.Conn(b.port) as c:
        res = describe(c, 4, [(BROKER, "1", list(props))])[0]
        assert res["error"] == NONE
        assert {k: v["value"] for k, v in res["configs"].items()} == {k: str(v) for k, v in props.items()}
        res = describe(c, 4, [(BROKER, "1", None)])[0]["configs"]
        assert res["transactional.id.expiration.ms"]["value"] == "1500"

        done_pid, e = init_txn(c, done_id)
        assert add_partitions(c, done_id, done_pid, e, topic, [0]) == [NONE]
        assert end_txn(c, done_id, done_pid, e, True) == NONE
        empty_pid, _ = init_txn(c, empty_id)
        open_pid, oe = init_txn(c, open_id)  # transaction.timeout.ms 60000 (init_producer_id)
        t_ongoing = time.monotonic()
        assert add_partitions(c, open_id, open_pid, oe, topic, [0]) == [NONE]
        assert describe_txn(c, done_id)[:2] == (NONE, "CompleteCommit")

        wait_until(lambda: describe_txn(c, done_id)[0] == TRANSACTIONAL_ID_NOT_FOUND and
                   describe_txn(c, empty_id)[0] == TRANSACTIONAL_ID_NOT_FOUND, 20, "idle ids expired")
        listed = list_txns(c)
        assert done_id not in listed and empty_id not in listed
        # the Ongoing transaction outlives the expiration (and many scans)
        assert listed.get(open_id) == "Ongoing"
        while time.monotonic() < t_ongoing + 2.5:
            assert describe_txn(c, open_id)[:2] == (NONE, "Ongoing")
            time.sleep(0.1)  # polling: the state must hold over the whole interval
        assert describe_txn(c, open_id) == (NONE, "Ongoing", open_pid, oe)
    b.kill9()
    del b.props["transactional.id.expiration.ms"]
    b.start()
    with kwire.Conn(b.port) as c:
        for tid in (done_id, empty_id):
            assert describe_txn(c, tid)[0] == TRANSACTIONAL_ID_NOT_FOUND, tid
        listed = list_txns(c)
        assert done_id not in listed and empty_id not in listed and listed.get(open_id) == "Ongoing"
        pid, epoch = init_txn(c, done_id)
        assert pid not in (done_pid, empty_pid, open_pid) and epoch == 0
        assert describe_txn(c, done_id) == (NONE, "Empty", pid, 0)
        assert end_txn(c, open_id, open_pid, oe, False) == NONE
