"""Transactions (issue 5, second part) with confluent-kafka's transactional
producer against a real rilld: commit and abort write markers (control
batches) into every partition of the transaction (checked in the segment
files); read_committed consumers see committed records only, never aborted
ones nor those of an open transaction, read_uncommitted sees everything;
ListOffsets with isolation read_committed answers the LSO; the coordinator's
state (__transaction_state) and each partition's aborted transactions
survive a kill -9; a second producer with the same transactional.id fences
the first; an expired transaction is aborted by the coordinator."""
import time

import pytest

import kwire
from rilltest import ck_consumer, ck_create_topic, ck_producer, unique, wait_until

list_latest = kwire.list_latest


def txn_producer(broker, tid, **conf):
    return ck_producer(broker, transactional_id=tid, **conf)


def produce_txn(p, topic, values, commit, nparts=1):
    p.begin_transaction()
    for i, v in enumerate(values):
        p.produce(topic, value=v, partition=i % nparts)
    p.flush(30)  # written before the end (an abort would otherwise purge what is still queued)
    if commit:
        p.commit_transaction(30)
    else:
        p.abort_transaction(30)


def read_all(broker, topic, nparts, isolation, expect=None, quiet=1.0, timeout=30):
    """Values readable from every partition; with `expect`, polls until that
    many arrived, then keeps reading `quiet` seconds to catch extras."""
    import confluent_kafka as ck
    c = ck_consumer(broker, isolation_level=isolation)
    try:
        c.assign([ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING) for p in range(nparts)])
        out = []
        deadline = time.monotonic() + timeout
        quiet_until = None
        while True:
            now = time.monotonic()
            if expect is not None and len(out) >= expect and quiet_until is None:
                quiet_until = now + quiet
            if quiet_until is not None and now >= quiet_until:
                break
            if expect is None and quiet_until is None:
                quiet_until = now + quiet
            assert now < deadline, "read %d of %s within %ss" % (len(out), expect, timeout)
            for m in c.consume(num_messages=500, timeout=0.2):
                assert m.error() is None, m.error()
                out.append(m.value())
        return out
    finally:
        c.close()


def markers(broker, topic, partition=0):
    """(offset, commit?) of each control batch in the partition's segments."""
    return [(o, c) for path in broker.segment_files(topic, partition) for o, _, c in kwire.segment_markers(path)]


def test_commit_and_abort(broker):
    topic = ck_create_topic(broker, unique("txn-ca"), partitions=2)
    p = txn_producer(broker, unique("tid"))
    p.init_transactions(30)
    produce_txn(p, topic, [b"c1-%d" % i for i in range(10)], commit=True, nparts=2)
    produce_txn(p, topic, [b"a1-%d" % i for i in range(10)], commit=False, nparts=2)
    produce_txn(p, topic, [b"c2-%d" % i for i in range(5)], commit=True, nparts=2)
    committed = sorted(read_all(broker, topic, 2, "read_committed", expect=15))
    assert committed == sorted([b"c1-%d" % i for i in range(10)] + [b"c2-%d" % i for i in range(5)])
    everything = read_all(broker, topic, 2, "read_uncommitted", expect=25)
    assert len(everything) == 25 and set(everything) >= {b"a1-%d" % i for i in range(10)}
    # every partition of each transaction got its marker, after the transaction's records
    for part in range(2):
        ms = markers(broker, topic, part)
        assert [c for _, c in ms] == [True, False, True]
        assert [o for o, _ in ms] == sorted(o for o, _ in ms) and ms[0][0] == 5  # 5 records, then the marker


def test_open_transaction_invisible_then_committed(broker):
    import confluent_kafka as ck
    topic = ck_create_topic(broker, unique("txn-open"))
    plain = ck_producer(broker)
    plain.produce(topic, value=b"before")
    plain.flush(30)
    p = txn_producer(broker, unique("tid"))
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(5):
        p.produce(topic, value=b"open-%d" % i)
    p.flush(30)  # written and durable, transaction still open
    # a non-transactional record after the open transaction is held back too (LSO)
    plain.produce(topic, value=b"after")
    plain.flush(30)
    assert read_all(broker, topic, 1, "read_committed", expect=1) == [b"before"]
    assert len(read_all(broker, topic, 1, "read_uncommitted", expect=7)) == 7
    with kwire.Conn(broker.port) as c:
        lso = list_latest(c, topic, 0, 1)
        hw = list_latest(c, topic, 0, 0)
    assert (lso, hw) == (1, 7)
    p.commit_transaction(30)
    got = read_all(broker, topic, 1, "read_committed", expect=7)
    assert got == [b"before"] + [b"open-%d" % i for i in range(5)] + [b"after"]
    with kwire.Conn(broker.port) as c:
        assert list_latest(c, topic, 0, 1) == 8  # past the marker
    del ck


def test_state_survives_kill9(broker):
    topic = ck_create_topic(broker, unique("txn-k9"))
    tid = unique("tid")
    p = txn_producer(broker, tid)
    p.init_transactions(30)
    produce_txn(p, topic, [b"c-%d" % i for i in range(4)], commit=True)
    produce_txn(p, topic, [b"a-%d" % i for i in range(4)], commit=False)
    # an open transaction at the crash: aborted when the id is initialised again
    p.begin_transaction()
    p.produce(topic, value=b"open")
    p.flush(30)
    broker.restart(clean=False)
    assert sorted(read_all(broker, topic, 1, "read_committed", expect=4)) == [b"c-%d" % i for i in range(4)]
    p2 = txn_producer(broker, tid)
    p2.init_transactions(60)  # aborts the open transaction (CONCURRENT_TRANSACTIONS meanwhile)
    produce_txn(p2, topic, [b"c2"], commit=True)
    assert read_all(broker, topic, 1, "read_committed", expect=5) == [b"c-%d" % i for i in range(4)] + [b"c2"]
    assert [c for _, c in markers(broker, topic)] == [True, False, False, True]


def test_fencing(broker):
    import confluent_kafka as ck
    topic = ck_create_topic(broker, unique("txn-fence"))
    tid = unique("tid")
    p1 = txn_producer(broker, tid)
    p1.init_transactions(30)
    p1.begin_transaction()
    p1.produce(topic, value=b"zombie")
    p1.flush(30)
    p2 = txn_producer(broker, tid)
    p2.init_transactions(60)  # fences p1 and aborts its transaction
    with pytest.raises(ck.KafkaException) as ei:
        p1.commit_transaction(30)
    assert ei.value.args[0].fatal() or ei.value.args[0].code() in (
        ck.KafkaError._FENCED, ck.KafkaError.PRODUCER_FENCED, ck.KafkaError.INVALID_PRODUCER_EPOCH)
    produce_txn(p2, topic, [b"live"], commit=True)
    assert read_all(broker, topic, 1, "read_committed", expect=1) == [b"live"]


def test_timeout_aborts(broker_factory):
    b = broker_factory({"transaction.abort.timed.out.transaction.cleanup.interval.ms": "100"})
    topic = ck_create_topic(b, unique("txn-to"))
    p = txn_producer(b, unique("tid"), transaction_timeout_ms=3000, message_timeout_ms=3000)
    p.init_transactions(30)
    p.begin_transaction()
    p.produce(topic, value=b"late")
    p.flush(30)
    plain = ck_producer(b)
    plain.produce(topic, value=b"plain")
    plain.flush(30)
    with kwire.Conn(b.port) as c:
        assert list_latest(c, topic, 0, 1) == 0
        wait_until(lambda: list_latest(c, topic, 0, 1) == 3, 15,
                   "the expired transaction aborted (LSO past its marker)")
    assert read_all(b, topic, 1, "read_committed", expect=1) == [b"plain"]
    assert [c for _, c in markers(b, topic)] == [False]


def test_max_timeout(broker_factory):
    import confluent_kafka as ck
    b = broker_factory({"transaction.max.timeout.ms": "5000"})
    p = txn_producer(b, unique("tid"), transaction_timeout_ms=60000)
    with pytest.raises(ck.KafkaException) as ei:
        p.init_transactions(10)
    assert "timeout" in str(ei.value).lower()


def test_cli_list_describe(broker):
    from test_cli import rill, rows
    topic = ck_create_topic(broker, unique("txn-cli"), partitions=2)
    done, open_ = unique("tid-done"), unique("tid-open")
    p = txn_producer(broker, done)
    p.init_transactions(30)
    produce_txn(p, topic, [b"x"], commit=True)
    q = txn_producer(broker, open_)
    q.init_transactions(30)
    q.begin_transaction()
    q.produce(topic, value=b"y", partition=1)
    q.flush(30)
    _, out, _ = rill(["txn", "list"], broker)
    listed = {r[0]: r[1:] for r in rows(out)}
    assert listed[done][1] == "CompleteCommit" and listed[open_][1] == "Ongoing"
    assert int(listed[done][0]) >= 0 and listed[done][0] != listed[open_][0]
    _, out, _ = rill(["txn", "list", "--state", "Ongoing"], broker)
    assert [r[0] for r in rows(out)] == [open_]
    _, out, _ = rill(["txn", "describe", open_], broker)
    d = rows(out)
    fields = {r[0]: r[1] for r in d if r[0] != "partition"}
    assert fields["state"] == "Ongoing" and fields["producer.id"] == listed[open_][0]
    assert fields["producer.epoch"] == "0" and fields["transaction.timeout.ms"] == "60000"
    assert int(fields["start.time.ms"]) > 0
    assert [r[1:] for r in d if r[0] == "partition"] == [[topic, "1"]]
    _, _, err = rill(["txn", "describe", unique("tid-none")], broker, expect=1)
    assert "TRANSACTIONAL_ID_NOT_FOUND" in err
    q.abort_transaction(30)


def add_partitions(conn, tid, pid, epoch, topic, partitions):
    """AddPartitionsToTxn v1; returns the error of each partition."""
    body = (kwire.string(tid) + kwire.i64(pid) + kwire.i16(epoch) + kwire.i32(1) + kwire.string(topic)
            + kwire.i32(len(partitions)) + b"".join(kwire.i32(p) for p in partitions))
    r = kwire.Reader(conn.roundtrip(24, 1, body))
    r.i32()  # correlation id
    r.i32()  # throttle
    assert r.i32() == 1 and r.string() == topic
    return [(r.i32(), r.i16())[1] for _ in range(r.i32())]


def end_txn(conn, tid, pid, epoch, commit, version=1):
    body = kwire.string(tid) + kwire.i64(pid) + kwire.i16(epoch) + kwire.i8(1 if commit else 0)
    r = kwire.Reader(conn.roundtrip(26, version, body))
    r.i32()
    r.i32()
    return r.i16()


def test_bad_transactional_input(broker):
    """Raw wire: what a transactional produce must have (the partition in the
    ongoing transaction, the id's producer id and epoch), control batches from
    a client, and fenced or unknown ids — Kafka's codes, nothing stored."""
    from test_idempotent import init_producer_id, produce, stored
    topic = ck_create_topic(broker, unique("txn-bad"), partitions=2)
    tid = unique("tid")

    def tbatch(pid, epoch, seq, attrs=0x10):
        return kwire.build_batch([(None, b"v%d" % seq, [])], producer_id=pid, producer_epoch=epoch,
                                 base_sequence=seq, attributes_extra=attrs)

    def tproduce(c, b, partition=0, t=tid):
        res = c.produce(9, [(topic, [(partition, b)])], transactional_id=t)
        return res[(topic, partition)]["error"]

    with kwire.Conn(broker.port) as c:
        err, pid, epoch = init_producer_id(c, 1, transactional_id=tid)
        assert err == 0
        # not yet in a transaction
        assert tproduce(c, tbatch(pid, epoch, 0)) == 48  # INVALID_TXN_STATE
        assert add_partitions(c, tid, pid, epoch, topic, [0]) == [0]
        assert add_partitions(c, tid, pid, epoch, topic, [7]) == [3]  # UNKNOWN_TOPIC_OR_PARTITION
        assert add_partitions(c, tid, pid + 1, epoch, topic, [1]) == [49]  # INVALID_PRODUCER_ID_MAPPING
        assert add_partitions(c, "no-such-" + tid, pid, epoch, topic, [1]) == [49]
        cases = [
            ("partition not added", tbatch(pid, epoch, 0), 1, tid, 48),
            ("another issued producer id", tbatch(init_producer_id(c)[1], 0, 0), 0, tid, 49),
            ("a producer id never issued", tbatch(pid + 10 ** 9, 0, 0), 0, tid, 59),
            ("newer epoch", tbatch(pid, epoch + 1, 0), 0, tid, 47),
            ("unknown transactional id", tbatch(pid, epoch, 0), 0, "no-such-" + tid, 49),
            ("control batch from a client", tbatch(pid, epoch, 0, attrs=0x30), 0, tid, 87),
            ("transactional batch without an id", tbatch(pid, epoch, 0), 0, None, 87),
        ]
        for what, b, part, t, code in cases:
            assert tproduce(c, b, part, t) == code, what
        assert stored(broker, topic, 0) == [] and stored(broker, topic, 1) == []
        assert tproduce(c, tbatch(pid, epoch, 0)) == 0
        assert tproduce(c, tbatch(pid, epoch, 5)) == 45  # OUT_OF_ORDER_SEQUENCE_NUMBER
        # a second instance fences the first: its transaction is aborted first
        err2, pid2, epoch2 = init_producer_id(c, 1, transactional_id=tid)
        while err2 == 51:  # CONCURRENT_TRANSACTIONS while the abort completes
            err2, pid2, epoch2 = init_producer_id(c, 1, transactional_id=tid)
        assert (err2, pid2) == (0, pid) and epoch2 > epoch
        assert tproduce(c, tbatch(pid, epoch, 1)) == 47  # INVALID_PRODUCER_EPOCH: fenced
        assert end_txn(c, tid, pid, epoch, True, version=1) == 47
        assert end_txn(c, tid, pid, epoch, True, version=2) == 90  # PRODUCER_FENCED
        assert end_txn(c, tid, pid2, epoch2, True) == 48  # nothing ongoing to commit
        assert end_txn(c, tid, pid2, epoch2, False) == 0  # aborting nothing is fine
        assert stored(broker, topic, 0)[0] == (0, 1) and len(stored(broker, topic, 0)) == 2  # batch + abort marker
        assert [cm for _, cm in markers(broker, topic, 0)] == [False]


def test_compaction_keeps_aborted_filtered(broker_factory):
    """A compacted topic with committed and aborted transactions, keys
    overwritten by later plain records: after the cleaner ran over it,
    read_committed still shows no aborted record and every committed key's
    latest value; the markers are all still there (D30)."""
    from test_compaction import cleaner_offset
    b = broker_factory({"log.cleaner.backoff.ms": 100})
    topic = ck_create_topic(b, unique("txn-cmp"), config={
        "cleanup.policy": "compact", "segment.bytes": "4096", "min.cleanable.dirty.ratio": "0"})
    p = txn_producer(b, unique("tid"))
    p.init_transactions(30)
    for rnd in range(6):
        p.begin_transaction()
        for k in range(20):
            p.produce(topic, key=b"k%d" % k, value=b"%s-%d-%d" % (b"c" if rnd % 2 == 0 else b"a", rnd, k) + b"x" * 40)
        p.flush(30)
        if rnd % 2 == 0:
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)
    plain = ck_producer(b)
    for k in range(10):  # supersede half of the keys outside any transaction
        plain.produce(topic, key=b"k%d" % k, value=b"plain-%d" % k + b"x" * 40)
        plain.flush(30)
    for k in range(200):  # enough to roll segments past the transactions
        plain.produce(topic, key=b"filler-%d" % (k % 5), value=b"f" * 60)
    plain.flush(30)
    before = len(markers(b, topic))
    wait_until(lambda: cleaner_offset(b, topic) > 0, 30, "a compaction pass over %s" % topic)
    assert len(markers(b, topic)) == before == 6
    import confluent_kafka as ck
    c = ck_consumer(b, isolation_level="read_committed")
    try:
        lo, hi = c.get_watermark_offsets(ck.TopicPartition(topic, 0), timeout=10)
        c.assign([ck.TopicPartition(topic, 0, 0)])
        latest = {}
        seen = []
        deadline = time.monotonic() + 30
        pos = 0
        while pos < hi - 1 and time.monotonic() < deadline:
            for m in c.consume(num_messages=500, timeout=0.2):
                assert m.error() is None
                latest[m.key()] = m.value()
                seen.append(m.value())
                pos = m.offset()
    finally:
        c.close()
    assert not [v for v in seen if v.startswith(b"a-")], "an aborted record is visible after compaction"
    for k in range(20):
        want = (b"plain-%d" % k) if k < 10 else (b"c-4-%d" % k)
        assert latest[b"k%d" % k].startswith(want), (k, latest[b"k%d" % k])


def test_delayed_end_txn_never_ends_the_next_transaction(broker):
    """The KAFKA-17754 pattern on the raw wire (T8): the client's EndTxn
    (commit) of transaction 1 is held up on connection A; the client gives
    up on A, commits on a newer connection B and begins transaction 2 there;
    then A's EndTxn arrives (commit, and in a second round abort). It is
    refused with INVALID_TXN_STATE and changes nothing: transaction 2 stays
    open (the LSO stays at its first record, no marker is written) until B
    ends it. A held EndTxn arriving before the next transaction began is a
    harmless retry (answered 0, no second marker)."""
    from test_idempotent import init_producer_id
    topic = ck_create_topic(broker, unique("txn-late"), partitions=1)
    tid = unique("tid")

    def tproduce(c, pid, epoch, seq):
        b = kwire.build_batch([(None, b"v%d" % seq, [])], producer_id=pid, producer_epoch=epoch, base_sequence=seq,
                              attributes_extra=0x10)
        res = c.produce(9, [(topic, [(0, b)])], transactional_id=tid)[(topic, 0)]
        assert res["error"] == 0
        return res["base_offset"]

    with kwire.Conn(broker.port) as a, kwire.Conn(broker.port) as b:
        # A is accepted before B; touch both so both are surely accepted
        for conn in (a, b):
            init_producer_id(conn)
        err, pid, epoch = init_producer_id(b, 1, transactional_id=tid)
        assert err == 0
        seq = 0
        for late_commit in (True, False):
            assert add_partitions(b, tid, pid, epoch, topic, [0]) == [0]
            tproduce(b, pid, epoch, seq)
            seq += 1
            assert end_txn(b, tid, pid, epoch, True) == 0  # "the retry", on the newer connection
            # a held EndTxn arriving before the next transaction began: a retry of a finished one
            assert end_txn(a, tid, pid, epoch, True) == 0
            n_markers = len(markers(broker, topic))
            # transaction 2 begins on B
            assert add_partitions(b, tid, pid, epoch, topic, [0]) == [0]
            first = tproduce(b, pid, epoch, seq)
            seq += 1
            with kwire.Conn(broker.port) as q:
                assert list_latest(q, topic, 0, 1) == first
            # the held EndTxn arrives now on A
            assert end_txn(a, tid, pid, epoch, late_commit) == 48  # INVALID_TXN_STATE
            with kwire.Conn(broker.port) as q:
                assert list_latest(q, topic, 0, 1) == first, "transaction 2 was ended by the delayed EndTxn"
            assert len(markers(broker, topic)) == n_markers
            # transaction 2 goes on, on B, and commits whole
            tproduce(b, pid, epoch, seq)
            seq += 1
            assert end_txn(b, tid, pid, epoch, True) == 0
            with kwire.Conn(broker.port) as q:
                lso = list_latest(q, topic, 0, 1)
                assert lso == list_latest(q, topic, 0, 0) and lso > first
            assert [cm for _, cm in markers(broker, topic)][n_markers:] == [True]
        assert [cm for _, cm in markers(broker, topic)] == [True] * 4
