"""Faults: kill -9 under acks=all load, torn and corrupt segment tails, and
injected write errors (RILL_FAILPOINTS).

The rule under test (docs/durability.md): an acks=all record is acknowledged
only once it is on stable storage, so after kill -9 at any moment every
acknowledged record is found again at the offset its acknowledgement named;
offsets stay contiguous with no gaps or duplicates; rilld restarts on its own
data without manual repair; a torn tail loses only the torn batch.
"""
import os
import random
import re
import threading
import time

import confluent_kafka as ck
import pytest
from confluent_kafka import KafkaError, TopicPartition

import kwire
from rilltest import (ERR, ck_consumer, ck_create_topic, ck_produce_sync, ck_producer, ck_read_partition,
                      err_name, unique, wait_until)

VALUE_RE = re.compile(rb"^p(\d+)-s(\d{9})-")


def value_of(part, seq):
    return b"p%d-s%09d-" % (part, seq) + b"x" * (seq % 50)


# ---------------------------------------------------------------------------
# kill -9 under load
# ---------------------------------------------------------------------------

class AckedProducer(threading.Thread):
    """One acks=all producer owning some partitions, writing unique sequential
    values per partition and recording each acknowledged (seq, offset)."""

    def __init__(self, broker, topic, partitions, name):
        super().__init__(name=name, daemon=True)
        self.broker, self.topic, self.partitions = broker, topic, list(partitions)
        self.acked = {p: [] for p in self.partitions}   # (seq, offset) in ack order
        self.failed = {p: [] for p in self.partitions}  # (seq, error)
        self.sent = {p: 0 for p in self.partitions}
        self.stop_ev = threading.Event()
        self.error = None
        self.lock = threading.Lock()
        self.unflushed = None

    def acked_count(self):
        with self.lock:
            return sum(len(v) for v in self.acked.values())

    def _cb(self, err, msg):
        m = VALUE_RE.match(msg.value())
        part, seq = int(m.group(1)), int(m.group(2))
        with self.lock:
            if err is None:
                assert msg.partition() == part
                self.acked[part].append((seq, msg.offset()))
            else:
                self.failed[part].append((seq, err))

    def run(self):
        try:
            p = ck.Producer({
                "bootstrap.servers": self.broker.bootstrap,
                "acks": "all",
                "enable.idempotence": False,
                "max.in.flight.requests.per.connection": 1,  # keeps per-partition order across retries
                "message.timeout.ms": 180000,
                "message.send.max.retries": 1000000,
                "retry.backoff.ms": 20,
                "reconnect.backoff.ms": 10,
                "reconnect.backoff.max.ms": 200,
                "socket.nagle.disable": True,
                "linger.ms": 2,
                "log.connection.close": False,
                "topic.metadata.refresh.interval.ms": 1000,
            })
            rng = random.Random(self.name)
            for _ in range(10_000_000):  # bounded; the stop event ends it
                if self.stop_ev.is_set():
                    break
                for part in self.partitions:
                    for _ in range(rng.randint(1, 8)):
                        seq = self.sent[part]
                        p.produce(self.topic, value=value_of(part, seq), key=b"%d" % part, partition=part,
                                  on_delivery=self._cb)
                        self.sent[part] = seq + 1
                p.poll(0.005)
                for _ in range(1000):  # bound the queue while the broker is down
                    if len(p) < 2000 or self.stop_ev.is_set():
                        break
                    p.poll(0.02)
            self.unflushed = p.flush(180)
        except Exception as e:
            self.error = e


def crash_cycles(broker_factory, cycles, partitions=6, nproducers=2, seed=None):
    seed = seed if seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    b = broker_factory(props={"log.segment.bytes": 256 * 1024, "log.index.interval.bytes": 1024})
    topic = ck_create_topic(b, unique("crash"), partitions=partitions)
    producers = [AckedProducer(b, topic, range(i, partitions, nproducers), "producer-%d" % i)
                 for i in range(nproducers)]
    for pr in producers:
        pr.start()
    kills = []
    try:
        for cycle in range(cycles):
            # the producers reconnected and make progress after the last restart
            base = sum(pr.acked_count() for pr in producers)
            need = rng.randint(1, 400)
            wait_until(lambda: sum(pr.acked_count() for pr in producers) >= base + need, 60,
                       "producers to get %d more acks after restart %d (seed %d)" % (need, cycle, seed))
            for pr in producers:
                assert pr.is_alive(), "producer thread died: %r" % pr.error
            time.sleep(rng.uniform(0, 0.3))  # a random moment to kill at, not a wait for a condition
            kills.append(sum(pr.acked_count() for pr in producers))
            b.kill9()
            b.start()  # same port, same data: must come up without manual repair
        # last leg: keep producing a little, then stop and drain
        base = sum(pr.acked_count() for pr in producers)
        wait_until(lambda: sum(pr.acked_count() for pr in producers) >= base + 100, 60,
                   "producers to make progress after the last restart")
    finally:
        for pr in producers:
            pr.stop_ev.set()
        for pr in producers:
            pr.join(240)
    for pr in producers:
        assert not pr.is_alive(), "%s did not finish" % pr.name
        assert pr.error is None, "%s failed: %r" % (pr.name, pr.error)
        assert pr.unflushed == 0, "%s: %d records never got a delivery report" % (pr.name, pr.unflushed)
    # one more crash after everything was acknowledged: all of it must survive
    b.kill9()
    b.start()
    acked, stored, dups = verify(b, topic, producers, seed)
    print("crash test (seed %d): %d kill -9 cycles, %d records acknowledged, %d in the log, %d stored twice "
          "by retries" % (seed, cycles, acked, stored, dups))
    return b, topic, producers, kills


def verify(b, topic, producers, seed):
    """Checks every partition; returns (records acknowledged, records in the
    log, values stored twice because a retried batch had been stored before
    its acknowledgement was lost)."""
    stats = [0, 0, 0]
    c = ck_consumer(b)
    try:
        for pr in producers:
            for part in pr.partitions:
                acked = pr.acked[part]
                assert not pr.failed[part], "partition %d: %d deliveries failed, first: %s (seed %d)" % (
                    part, len(pr.failed[part]), pr.failed[part][0][1], seed)
                assert len(acked) == pr.sent[part], "partition %d: %d acked of %d sent" % (
                    part, len(acked), pr.sent[part])
                low, high = c.get_watermark_offsets(TopicPartition(topic, part), timeout=10, cached=False)
                assert low == 0
                by_offset = {}
                for seq, off in acked:
                    assert off not in by_offset, "partition %d: offset %d acknowledged twice (seq %d and %d)" % (
                        part, off, by_offset[off], seq)
                    by_offset[off] = seq
                top = max(by_offset) if by_offset else -1
                assert high > top, "partition %d: end offset %d but offset %d was acknowledged (seed %d)" % (
                    part, high, top, seed)
                # in order: acknowledged sequence numbers increase with their offsets
                seqs = [by_offset[o] for o in sorted(by_offset)]
                assert seqs == sorted(seqs), "partition %d: acknowledged records out of order (seed %d)" % (part, seed)
                assert sorted(seqs) == list(range(pr.sent[part])), \
                    "partition %d: acknowledged sequence numbers are not 0..%d" % (part, pr.sent[part] - 1)

                msgs = ck_read_partition(b, topic, part, 0, high, timeout=120)
                stats[0] += len(acked)
                stats[1] += len(msgs)
                stats[2] += len(msgs) - len({m.value() for m in msgs})
                offsets = [m.offset() for m in msgs]
                assert offsets == list(range(high)), \
                    "partition %d: offsets read are not contiguous 0..%d (gap or duplicate; seed %d)" % (
                        part, high - 1, seed)
                for m in msgs:
                    mm = VALUE_RE.match(m.value() or b"")
                    assert mm and int(mm.group(1)) == part, \
                        "partition %d offset %d holds %r, not a value produced for it" % (part, m.offset(), m.value())
                    assert m.value() == value_of(part, int(mm.group(2))), "offset %d: torn value" % m.offset()
                    if m.offset() in by_offset:
                        want = value_of(part, by_offset[m.offset()])
                        assert m.value() == want, \
                            "partition %d offset %d holds %r but %r was acknowledged there (seed %d)" % (
                                part, m.offset(), m.value()[:24], want[:24], seed)
    finally:
        c.close()
    return stats


def test_kill9_under_acks_all_load(broker_factory):
    crash_cycles(broker_factory, cycles=30)


@pytest.mark.soak
def test_kill9_under_acks_all_load_soak(broker_factory):
    crash_cycles(broker_factory, cycles=200)


# ---------------------------------------------------------------------------
# torn and corrupt tails
# ---------------------------------------------------------------------------

def produce_batches(b, topic, n, start=0):
    """n records, one batch each (flush after every produce)."""
    p = ck_producer(b, acks="all", **{"linger.ms": 0})
    offs = []
    for i in range(start, start + n):
        got = []
        p.produce(topic, key=b"k%d" % i, value=b"record-%05d-" % i + bytes(range(i % 64)), partition=0,
                  on_delivery=lambda e, m: got.append((e, m)))
        ck_produce_sync(p)
        assert got and got[0][0] is None, "produce %d failed: %s" % (i, got)
        offs.append(got[0][1].offset())
    return offs


def expected_value(i):
    return b"record-%05d-" % i + bytes(range(i % 64))


def last_batch_of(b, topic):
    segs = b.segment_files(topic, 0)
    assert segs, "no segment files for %s-0" % topic
    seg = segs[-1]
    batches = kwire.read_segment_batches(seg)
    assert batches, "active segment %s holds no batches" % seg
    assert all(x["crc_ok"] for x in batches)
    return seg, batches[-1], os.path.getsize(seg)


TAIL_DAMAGE = ["truncate-mid-batch", "truncate-in-header", "flip-byte-in-last-record", "zero-tail",
               "garbage-tail", "length-field-too-big"]


@pytest.mark.parametrize("segment_bytes", [1 << 30, 4096])
@pytest.mark.parametrize("damage", TAIL_DAMAGE)
def test_recovery_of_damaged_tail(broker_factory, damage, segment_bytes):
    b = broker_factory(props={"log.segment.bytes": segment_bytes})
    topic = ck_create_topic(b, unique("torn"), partitions=1)
    n = 60
    assert produce_batches(b, topic, n) == list(range(n))
    b.kill9()  # unclean: recovery must scan the tail
    seg, last, size = last_batch_of(b, topic)
    assert last["offset"] == n - 1 and last["position"] + last["size"] == size
    rng = random.Random(damage)
    with open(seg, "r+b") as f:
        if damage == "truncate-mid-batch":
            f.truncate(last["position"] + last["size"] // 2)
        elif damage == "truncate-in-header":
            f.truncate(last["position"] + 7)
        elif damage == "flip-byte-in-last-record":
            f.seek(last["position"] + last["size"] - 3)
            byte = f.read(1)[0]
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte ^ 0x20]))
        elif damage == "zero-tail":
            f.seek(0, os.SEEK_END)
            f.write(bytes(4096))  # as if the file system kept preallocated zeros
        elif damage == "garbage-tail":
            f.seek(0, os.SEEK_END)
            f.write(bytes(rng.randrange(256) for _ in range(333)))
        elif damage == "length-field-too-big":
            f.seek(last["position"] + 8)
            f.write(kwire.i32(1 << 30))
    survivors = n if damage in ("zero-tail", "garbage-tail") else n - 1
    b.start()
    c = ck_consumer(b)
    try:
        wm = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
    finally:
        c.close()
    assert wm == (0, survivors), "after %s recovery the partition spans %r, expected (0, %d)" % (damage, wm, survivors)
    # the segment was cut exactly at the end of the last good batch
    cut = last["position"] + last["size"] if survivors == n else last["position"]
    assert os.path.getsize(seg) == cut, "%s: segment is %d bytes after recovery, last good batch ends at %d" % (
        damage, os.path.getsize(seg), cut)
    msgs = ck_read_partition(b, topic, 0, 0, survivors)
    assert [m.value() for m in msgs] == [expected_value(i) for i in range(survivors)], \
        "records before the damaged batch changed"
    mid = survivors // 2  # a read from the middle goes through the rebuilt index
    assert [m.offset() for m in ck_read_partition(b, topic, 0, mid, survivors)] == list(range(mid, survivors))
    # new produce continues right after the survivors
    assert produce_batches(b, topic, 5, start=1000) == list(range(survivors, survivors + 5))
    msgs = ck_read_partition(b, topic, 0, survivors, survivors + 5)
    assert [m.value() for m in msgs] == [expected_value(i) for i in range(1000, 1005)]
    # and a clean restart keeps all of it
    b.restart()
    msgs = ck_read_partition(b, topic, 0, 0, survivors + 5)
    assert len(msgs) == survivors + 5


def test_recovery_after_clean_shutdown_keeps_everything(broker_factory):
    b = broker_factory(props={"log.segment.bytes": 4096})
    topic = ck_create_topic(b, unique("clean"), partitions=1)
    produce_batches(b, topic, 80)
    b.restart()
    msgs = ck_read_partition(b, topic, 0, 0, 80)
    assert [m.value() for m in msgs] == [expected_value(i) for i in range(80)]
    assert produce_batches(b, topic, 1, start=500) == [80]


# ---------------------------------------------------------------------------
# injected write errors
# ---------------------------------------------------------------------------

FAILPOINT = "st.append.write=ENOSPC@5*3"  # 5 appends pass, the next 3 fail with ENOSPC


def test_enospc_on_append_raw_produce(broker_factory):
    """Produce requests one at a time: the 6th-8th get KAFKA_STORAGE_ERROR,
    the others succeed at contiguous offsets, and nothing of the failed ones
    is stored."""
    b = broker_factory(env={"RILL_FAILPOINTS": FAILPOINT})
    topic = ck_create_topic(b, unique("enospc"), partitions=1)
    results = []
    with kwire.Conn(b.port) as c:
        for i in range(12):
            batch = kwire.build_batch([(b"k%d" % i, b"v%d" % i, [])])
            res = c.produce(9, [(topic, [(0, batch)])], acks=-1)
            results.append((res[(topic, 0)]["error"], res[(topic, 0)]["base_offset"]))
    codes = [e for e, _ in results]
    assert codes == [0] * 5 + [ERR["KAFKA_STORAGE_ERROR"]] * 3 + [0] * 4, \
        "errors per produce with %s: %s" % (FAILPOINT, [err_name(e) for e in codes])
    ok = [i for i, (e, _) in enumerate(results) if e == 0]
    assert [results[i][1] for i in ok] == list(range(len(ok))), "offsets of successful appends: %s" % results
    msgs = ck_read_partition(b, topic, 0, 0, len(ok))
    assert [m.value() for m in msgs] == [b"v%d" % i for i in ok]
    c = ck_consumer(b)
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, len(ok))
    finally:
        c.close()
    # every acknowledged record survives a crash; nothing of the failed ones appears
    b.kill9()
    b.start()
    msgs = ck_read_partition(b, topic, 0, 0, len(ok))
    assert [m.value() for m in msgs] == [b"v%d" % i for i in ok]
    seg_batches = [x for s in b.segment_files(topic, 0) for x in kwire.read_segment_batches(s)]
    assert sum(x["count"] for x in seg_batches) == len(ok), "failed appends left batches on disk"


def test_enospc_on_append_librdkafka(broker_factory):
    """The same through librdkafka with retries off: the failing produces'
    delivery reports say KAFKA_STORAGE_ERROR, every acknowledged record is
    stored, and producing succeeds afterwards."""
    b = broker_factory(env={"RILL_FAILPOINTS": FAILPOINT})
    topic = ck_create_topic(b, unique("enospc-ck"), partitions=1)
    p = ck_producer(b, acks="all", **{"message.send.max.retries": 0, "linger.ms": 0, "enable.idempotence": False})
    outcomes = []
    for i in range(12):
        got = []
        p.produce(topic, value=b"r%d" % i, partition=0, on_delivery=lambda e, m: got.append((e, m)))
        ck_produce_sync(p)
        assert len(got) == 1
        outcomes.append(got[0])
    codes = [None if e is None else e.code() for e, _ in outcomes]
    assert codes == [None] * 5 + [KafkaError.KAFKA_STORAGE_ERROR] * 3 + [None] * 4, \
        "delivery results with %s: %s" % (FAILPOINT, [str(e) if e else "ok" for e, _ in outcomes])
    acked = [(m.offset(), m.value()) for e, m in outcomes if e is None]
    assert [o for o, _ in acked] == list(range(len(acked)))
    msgs = ck_read_partition(b, topic, 0, 0, len(acked))
    assert [(m.offset(), m.value()) for m in msgs] == acked
