"""A partition's persisted transaction state (issue 5; storage.h S22-S23,
docs/durability.md D34-D35) with confluent-kafka's transactional producer
against a real rilld: every abort marker leaves a Kafka-layout entry in the
.txnindex of its segment; after a clean restart and after a kill -9,
read_committed still filters every aborted record and holds back the open
transaction, read_uncommitted sees everything, ListOffsets with
read_committed answers the same LSO; and a producer fenced by a marker (its
transaction aborted by a new instance's InitProducerId, or by the
transaction timeout) is refused its old epoch after a clean restart that
loaded a producer snapshot written past the marker."""
import os
import struct

import pytest

import kwire
from rilltest import ck_create_topic, ck_producer, ck_read_until, unique, wait_until
from test_idempotent import INVALID_PRODUCER_EPOCH, batch, produce
from test_transactions import markers, produce_txn, read_all, txn_producer

SEG = 16384  # bytes per segment: a few KiB of records roll


def txnindex(broker, topic, partition=0):
    """{segment base: [(pid, first, last, lso)]} of every .txnindex file."""
    d = broker.partition_dir(topic, partition)
    out = {}
    for name in sorted(os.listdir(d)):
        if not name.endswith(".txnindex"):
            continue
        with open(os.path.join(d, name), "rb") as f:
            data = f.read()
        assert len(data) % 34 == 0, name
        ents = []
        for i in range(0, len(data), 34):
            version, pid, first, last, lso = struct.unpack(">hqqqq", data[i:i + 34])
            assert version == 0
            ents.append((pid, first, last, lso))
        out[int(name[:20])] = ents
    return out


def snapshots(broker, topic, partition=0):
    d = broker.partition_dir(topic, partition)
    return sorted(int(n[:20]) for n in os.listdir(d) if n.endswith(".snapshot"))


def offsets(broker, topic):
    with kwire.Conn(broker.port) as c:
        return kwire.list_latest(c, topic, 0, 1), kwire.list_latest(c, topic, 0, 0)


@pytest.mark.parametrize("clean", [True, False], ids=["sigterm", "kill9"])
def test_aborted_and_open_survive_restart(broker_factory, clean):
    b = broker_factory()
    topic = ck_create_topic(b, unique("txs"), config={"segment.bytes": "6000"})
    p = txn_producer(b, unique("tid"))
    p.init_transactions(30)
    plain = ck_producer(b)
    committed, aborted = [], []
    for r in range(8):  # ~2.5 KiB a transaction: the markers land in several segments
        vals = [b"r%d-%02d-" % (r, i) + b"x" * 100 for i in range(20)]
        produce_txn(p, topic, vals, commit=r % 2 == 0)
        (committed if r % 2 == 0 else aborted).extend(vals)
        plain.produce(topic, value=b"plain-%d" % r)
        plain.flush(30)
        committed.append(b"plain-%d" % r)
    q = txn_producer(b, unique("tid-open"))  # open at the restart
    q.init_transactions(30)
    q.begin_transaction()
    for i in range(5):
        q.produce(topic, value=b"open-%d" % i)
    q.flush(30)
    plain.produce(topic, value=b"after-open")
    plain.flush(30)
    lso, hw = offsets(b, topic)
    assert lso < hw
    idx = txnindex(b, topic)
    aborts = [(o, c) for o, c in markers(b, topic) if not c]
    assert len(aborts) == 4
    # one entry per abort marker, in the file of the segment holding the marker
    bases = sorted(idx)
    assert len(bases) == len(b.segment_files(topic, 0)) >= 4
    ents = [(base, e) for base in bases for e in idx[base]]
    assert [e[2] for _, e in ents] == [o for o, _ in aborts]
    for base, e in ents:
        nxt = [x for x in bases if x > base]
        assert base <= e[2] < (nxt[0] if nxt else hw)
        assert e[1] < e[2] and e[3] == e[2] + 1  # first offset, LSO after the marker

    b.restart(clean=clean)
    assert offsets(b, topic) == (lso, hw)
    got = read_all(b, topic, 1, "read_committed", expect=len(committed))
    assert got == committed
    everything = read_all(b, topic, 1, "read_uncommitted", expect=len(committed) + len(aborted) + 6)
    assert len(everything) == len(committed) + len(aborted) + 6  # + the open transaction, after-open
    assert set(aborted) <= set(everything) and b"after-open" in everything
    after = txnindex(b, topic)
    assert [e for base in sorted(after) for e in after[base]] == [e for _, e in ents]
    # the open transaction, aborted now: its records filtered, the LSO released
    q.abort_transaction(30)
    wait_until(lambda: offsets(b, topic)[0] == offsets(b, topic)[1], 15, "the LSO released by the abort")
    got = read_all(b, topic, 1, "read_committed", expect=len(committed) + 1)
    assert got == committed + [b"after-open"]
    assert sum(len(v) for v in txnindex(b, topic).values()) == 5


def last_data_batch(broker, topic, pid):
    """(epoch, next sequence) after the producer's last data batch in the partition."""
    best = None
    for path in broker.segment_files(topic, 0):
        with open(path, "rb") as f:
            data = f.read()
        for bt in kwire.parse_batches(data):
            if bt["attributes"] & 0x20:
                continue
            bpid, epoch, seq = struct.unpack_from(">qhi", data, bt["position"] + 43)
            if bpid == pid:
                best = (epoch, seq + bt["count"])
    return best


@pytest.mark.parametrize("how", ["init", "timeout"])
def test_fenced_epoch_refused_after_restart(broker_factory, how):
    import confluent_kafka as ck
    b = broker_factory({"transaction.abort.timed.out.transaction.cleanup.interval.ms": "100"})
    topic = ck_create_topic(b, unique("txf"), config={"segment.bytes": str(SEG)})
    tid = unique("tid")
    conf = {"transaction_timeout_ms": 2000, "message_timeout_ms": 2000} if how == "timeout" else {}
    p1 = txn_producer(b, tid, **conf)
    p1.init_transactions(30)
    p1.begin_transaction()
    for i in range(3):
        p1.produce(topic, value=b"zombie-%d" % i)
    p1.flush(30)
    if how == "init":
        p2 = txn_producer(b, tid)
        p2.init_transactions(60)  # aborts p1's transaction with the bumped epoch
    wait_until(lambda: [c for _, c in markers(b, topic)] == [False], 15, "the abort marker")
    (moff, pid, _), = [m for path in b.segment_files(topic, 0) for m in kwire.segment_markers(path)]
    old_epoch, next_seq = last_data_batch(b, topic, pid)
    # plain records roll the segment: a producer snapshot past the marker
    with kwire.Conn(b.port) as c:
        while not any(s > moff for s in snapshots(b, topic)):
            assert produce(c, topic, kwire.build_batch([(None, b"p" * 4000, [])]))[0] == 0
        stale = batch(pid, old_epoch, next_seq, tag=b"stale")
        assert produce(c, topic, stale)[0] == INVALID_PRODUCER_EPOCH
    snap = max(snapshots(b, topic))
    b.restart(clean=True)
    assert snap in snapshots(b, topic)  # loaded, not discarded as unreadable
    with kwire.Conn(b.port) as c:
        # the partition still knows the marker's epoch: the old one is refused
        assert produce(c, topic, stale)[0] == INVALID_PRODUCER_EPOCH
        assert produce(c, topic, batch(pid, old_epoch, 0, tag=b"stale0"))[0] == INVALID_PRODUCER_EPOCH
    # the zombie client itself is fenced too
    with pytest.raises(ck.KafkaException):
        p1.produce(topic, value=b"zombie-late")
        p1.commit_transaction(30)
    lso, hw = offsets(b, topic)
    assert lso == hw
    got = ck_read_until(b, topic, 0, hw, isolation_level="read_committed")
    assert got and not any(v.startswith(b"zombie") or v.startswith(b"stale") for v in got)
