"""The log cleaner and transactions (issue 5; storage.h S19-S21) with
confluent-kafka transactional producers and read_committed /
read_uncommitted consumers against a real rilld:
- committed, aborted and open transactions and plain records on the same
  keys of a compacted topic: after cleaning, read_committed shows per key the
  latest committed value (an aborted record never shadows a committed one; a
  plain record supersedes a transactional one and the reverse),
  read_uncommitted no longer sees aborted records below the cleaner
  checkpoint, the open transaction's records are untouched and invisible to
  read_committed until it commits;
- a topic written only by a transactional producer shrinks (the partition
  dir measured before and after the cleaner ran);
- markers disappear only after delete.retention.ms, and only those whose
  transaction has no record left;
- __consumer_offsets written through TxnOffsetCommit (with markers) is
  compacted and replays to the committed offsets after a restart, never to
  an aborted transaction's."""
import os
import re
import time

import confluent_kafka as ck
from confluent_kafka import TopicPartition

import kwire
from rilltest import Delivery, ck_consumer, ck_create_topic, ck_producer, unique, wait_until
from test_compaction import PROPS, TOPIC_CFG, cleaner_offset

PAD = b"x" * 60
SMALL = {"batch.num.messages": 20}  # batches well below segment.bytes (4096)


def markers(broker, topic, partition=0):
    """{offset: commit?} of the control batches in the partition's segments
    (read again when a cleaner swap removed a file under the listing)."""
    for _ in range(50):
        try:
            return {o: c for path in broker.segment_files(topic, partition) for o, _, c in kwire.segment_markers(path)}
        except FileNotFoundError:
            continue
    raise AssertionError("the segments of %s-%d kept changing" % (topic, partition))


def dir_bytes(broker, topic, partition=0):
    d = broker.partition_dir(topic, partition)
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if os.path.isfile(os.path.join(d, f)))


def read_kv(broker, topic, isolation, upto, timeout=30):
    """(offset, key, value) of every record a consumer with this isolation
    level returns from offset 0 until it returned the record at offset upto."""
    c = ck_consumer(broker, isolation_level=isolation)
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        out = []

        def done():
            for m in c.consume(num_messages=500, timeout=0.2):
                assert m.error() is None, m.error()
                assert not out or m.offset() > out[-1][0]
                out.append((m.offset(), m.key(), m.value()))
            return out and out[-1][0] >= upto
        wait_until(done, timeout, "a %s read of %s up to offset %d" % (isolation, topic, upto))
        return out
    finally:
        c.close()


def latest(records):
    out = {}
    for _, k, v in records:
        out[k] = v
    return out


def txn_round(p, topic, keys, tag, commit):
    """One transaction writing key -> tag-key+PAD for each key; returns the
    delivered offsets and the wall time just before EndTxn."""
    d = Delivery()
    p.begin_transaction()
    for k in keys:
        p.produce(topic, key=b"k%d" % k, value=b"%s-%d" % (tag, k) + PAD, on_delivery=d)
    p.flush(30)
    assert not d.errors(), d.errors()[:3]
    t_end = time.time()
    if commit:
        p.commit_transaction(30)
    else:
        p.abort_transaction(30)
    return [m.offset() for m in d.ok()], t_end


def plain(p, topic, kvs):
    d = Delivery()
    for k, v in kvs:
        p.produce(topic, key=k, value=v, on_delivery=d)
    p.flush(30)
    assert not d.errors(), d.errors()[:3]
    return max(m.offset() for m in d.ok())


def test_committed_aborted_open_same_keys(broker_factory):
    b = broker_factory(props=PROPS)
    topic = ck_create_topic(b, unique("tc-mix"), config=TOPIC_CFG)
    pp = ck_producer(b, **SMALL)
    plain(pp, topic, [(b"k%d" % k, b"p-%d" % k + PAD) for k in range(20)])  # superseded by transactions
    p1 = ck_producer(b, transactional_id=unique("tid1"), **SMALL)
    p1.init_transactions(30)
    aborted_offs = []
    for r in range(8):  # even rounds commit, odd ones abort
        offs, _ = txn_round(p1, topic, range(20), b"c-%d" % r if r % 2 == 0 else b"a-%d" % r, r % 2 == 0)
        if r % 2:
            aborted_offs += offs
    # the last word on k0-k9 is an aborted record, on k10-k18 a committed one
    txn_round(p1, topic, range(10, 20), b"c-8", True)
    late = plain(pp, topic, [(b"k19", b"plain-late")])
    last_plain = plain(pp, topic, [(b"f%d" % (i % 5), PAD) for i in range(60)])  # rolls a segment or two
    p2 = ck_producer(b, transactional_id=unique("tid2"), **SMALL)
    p2.init_transactions(30)
    p2.begin_transaction()
    d2 = Delivery()
    for k in range(5):
        p2.produce(topic, key=b"k%d" % k, value=b"open-%d" % k, on_delivery=d2)
    p2.flush(30)
    open_offs = sorted(m.offset() for m in d2.ok())
    assert len(open_offs) == 5
    last = plain(pp, topic, [(b"g%d" % (i % 5), PAD) for i in range(60)])
    nmarkers = len(markers(b, topic))
    assert nmarkers == 9

    # the cleaner gets past the transactions, never to the open one
    wait_until(lambda: cleaner_offset(b, topic) > late, 30, "a pass over the transactions")
    e = cleaner_offset(b, topic)
    assert e <= open_offs[0]
    assert re.search(r"compacted \[\d+, \d+\): .* [1-9]\d* record\(s\) removed \([1-9]\d* aborted\)", b.log_text())
    want = {b"k%d" % k: b"c-6-%d" % k + PAD for k in range(10)}  # not the later aborted a-7
    want.update({b"k%d" % k: b"c-8-%d" % k + PAD for k in range(10, 19)})
    want[b"k19"] = b"plain-late"
    committed = read_kv(b, topic, "read_committed", last_plain)
    assert all(o < open_offs[0] for o, _, _ in committed), "read_committed passed the open transaction"
    assert not [v for _, _, v in committed if v.startswith((b"a-", b"open-"))]
    got = latest(committed)
    assert {k: got[k] for k in want} == want
    uncommitted = read_kv(b, topic, "read_uncommitted", last)
    left = [o for o, _, _ in uncommitted if o in set(aborted_offs) and o < e]
    assert not left, "aborted records below the cleaner checkpoint %d: %s" % (e, left[:5])
    assert [o for o, _, v in uncommitted if v.startswith(b"open-")] == open_offs  # untouched
    assert len(markers(b, topic)) == nmarkers  # younger than delete.retention.ms (1 day)

    # the open transaction commits: visible, and later compacted like any
    p2.commit_transaction(30)
    last2 = plain(pp, topic, [(b"h%d" % (i % 5), PAD) for i in range(60)])
    want.update({b"k%d" % k: b"open-%d" % k for k in range(5)})
    got = latest(read_kv(b, topic, "read_committed", last2))
    assert {k: got[k] for k in want} == want
    wait_until(lambda: cleaner_offset(b, topic) > open_offs[-1], 30, "a pass over the committed transaction")
    got = latest(read_kv(b, topic, "read_committed", last2))
    assert {k: got[k] for k in want} == want
    # and after a restart (the transaction tables rebuilt from the cleaned log)
    b.restart(clean=False)
    got = latest(read_kv(b, topic, "read_committed", last2))
    assert {k: got[k] for k in want} == want


def test_transactional_only_topic_shrinks(broker_factory):
    props = dict(PROPS)
    props["log.cleaner.enable"] = False
    b = broker_factory(props=props)
    topic = ck_create_topic(b, unique("tc-only"), config=TOPIC_CFG)
    p = ck_producer(b, transactional_id=unique("tid"), **SMALL)
    p.init_transactions(30)
    want = {}
    last = 0
    for r in range(30):
        commit = r % 5 != 3
        offs, _ = txn_round(p, topic, range(20), b"r%d" % r, commit)
        last = max(offs)
        if commit:
            want.update({b"k%d" % k: b"r%d-%d" % (r, k) + PAD for k in range(20)})
    before = dir_bytes(b, topic)
    assert cleaner_offset(b, topic) == -1
    b.props["log.cleaner.enable"] = True
    b.restart()
    wait_until(lambda: dir_bytes(b, topic) < before // 3, 30, "the partition dir of %s below a third of %d bytes"
               % (topic, before))
    after = dir_bytes(b, topic)
    print("transactional-only topic: partition dir %d -> %d bytes" % (before, after))
    assert latest(read_kv(b, topic, "read_committed", last)) == want


def test_markers_removed_after_delete_retention(broker_factory):
    b = broker_factory(props=PROPS)
    cfg = dict(TOPIC_CFG)
    cfg["delete.retention.ms"] = "2000"
    topic = ck_create_topic(b, unique("tc-mark"), config=cfg)
    p = ck_producer(b, transactional_id=unique("tid"), **SMALL)
    p.init_transactions(30)
    t_end = []
    for r in range(6):  # 0-3 superseded by 4 (committed) and 5 (aborted, the producer's last batch)
        _, t = txn_round(p, topic, range(10), b"c-%d" % r if r % 2 == 0 else b"a-%d" % r, r % 2 == 0)
        t_end.append(t)
    first = sorted(markers(b, topic))
    assert len(first) == 6
    pp = ck_producer(b, **SMALL)
    gone_at = {}
    deadline = time.monotonic() + 30
    while len(gone_at) < 4:  # more plain data makes more passes
        assert time.monotonic() < deadline, "markers left: %s" % sorted(markers(b, topic))
        plain(pp, topic, [(b"f%d" % (i % 3), PAD) for i in range(40)])
        now = markers(b, topic)
        for r, off in enumerate(first):
            if off not in now and r not in gone_at:
                gone_at[r] = time.time()
                assert gone_at[r] - t_end[r] > 2.0, "the marker of transaction %d went %.2f s after it" % (
                    r, gone_at[r] - t_end[r])
    assert sorted(gone_at) == [0, 1, 2, 3]
    now = markers(b, topic)
    assert [now.get(off) for off in first[4:]] == [True, False]  # records of 4 and 5 remain
    e = cleaner_offset(b, topic)
    got = latest(read_kv(b, topic, "read_committed", first[5] - 1))
    assert {k: v for k, v in got.items() if k.startswith(b"k")} == {b"k%d" % k: b"c-4-%d" % k + PAD for k in range(10)}
    assert re.search(r"compacted .* [1-9]\d* marker\(s\) removed", b.log_text())
    assert e > first[5]


def test_consumer_offsets_via_transactions(broker_factory):
    props = dict(PROPS)
    props.update({"offsets.topic.num.partitions": 1, "offsets.topic.segment.bytes": 4096})
    b = broker_factory(props=props)
    topic = ck_create_topic(b, unique("tc-grp"), 2)
    out = ck_create_topic(b, unique("tc-out"), 1)
    group = unique("g-txn")
    c = ck.Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "enable.auto.commit": False})
    p = ck_producer(b, transactional_id=unique("tid"), **SMALL)
    p.init_transactions(30)
    last = {}
    for i in range(77):
        commit = i % 7 != 6
        p.begin_transaction()
        p.produce(out, value=b"%d" % i)
        offs = {q: i * 10 + q + 1 for q in range(2)}
        p.send_offsets_to_transaction([TopicPartition(topic, q, o) for q, o in offs.items()],
                                      c.consumer_group_metadata(), 30)
        if commit:
            p.commit_transaction(30)
            last = offs
        else:
            p.abort_transaction(30)
    assert not commit  # the last transaction aborted: its offsets must never show
    wait_until(lambda: cleaner_offset(b, "__consumer_offsets") > 0, 30, "compaction of __consumer_offsets")
    assert re.search(r"__consumer_offsets-0: compacted .* [1-9]\d* record\(s\) removed", b.log_text())
    assert markers(b, "__consumer_offsets"), "no transaction marker in __consumer_offsets"
    c.close()
    for clean in (True, False):
        b.restart(clean=clean)
        c2 = ck.Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "enable.auto.commit": False})
        got = {tp.partition: tp.offset for tp in c2.committed([TopicPartition(topic, q) for q in range(2)],
                                                              timeout=20)}
        assert got == last, "committed offsets after compaction and restart: %s, want %s" % (got, last)
        c2.close()
