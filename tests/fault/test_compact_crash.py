"""kill -9 during log compaction (bounded: 15 cycles). Each cycle produces
keyed records and tombstones with acks=all (the model: offset -> key, value
from the acknowledgements), lets the cleaner (log.cleaner.backoff.ms 20,
min.cleanable.dirty.ratio 0, small segments) work for a random moment, kills
rilld and restarts it on the same data. After every restart the full read
from offset 0 must be a valid compaction of the model: every record returned
is the acknowledged one at that offset, the latest acknowledged record of
every key is there, nothing at or after the cleaner checkpoint is missing,
and no staging files are left. Every other cycle kills as soon as a pass's
staging dir appears (plus up to 10 ms), the others at a random moment. The
number of kills that left a pass's files staged is printed (it varies with
timing)."""
import os
import random
import re
import time

from confluent_kafka import TopicPartition

from rilltest import Delivery, ck_consumer, ck_create_topic, ck_produce_sync, ck_producer, unique, wait_until

CYCLES = 15


def cleaner_offset(broker, topic):
    try:
        with open(os.path.join(broker.data_dir, "cleaner-offset-checkpoint")) as f:
            lines = f.read().split("\n")
    except FileNotFoundError:
        return -1
    for ln in lines[2:]:
        parts = ln.split()
        if len(parts) == 3 and parts[0] == topic and parts[1] == "0":
            return int(parts[2])
    return -1


def read_values(broker, topic, isolation, upto):
    """offset -> (key, value) a consumer with this isolation level returns
    from 0 until it returned offset upto (or everything when upto < 0)."""
    c = ck_consumer(broker, isolation_level=isolation)
    c.assign([TopicPartition(topic, 0, 0)])
    out, last = {}, [-1]

    def done():
        for m in c.consume(num_messages=1000, timeout=0.2):
            assert m.error() is None, m.error()
            assert m.offset() > last[0]
            last[0] = m.offset()
            out[m.offset()] = (m.key(), m.value())
        return last[0] >= upto
    if upto >= 0:
        wait_until(done, 60, "a %s read up to %d" % (isolation, upto))
    c.close()
    return out


def read_all(broker, topic):
    c = ck_consumer(broker)
    lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=20)
    c.close()
    assert lo == 0
    return read_values(broker, topic, "read_uncommitted", hi - 1), hi


def kill9_in_pass(b, topic, rng, aim):
    """kill -9: with aim, as soon as a pass's staging dir shows (or after
    2 s) plus up to 10 ms, else at a random moment; True if the kill left a
    pass's files staged."""
    stage = os.path.join(b.partition_dir(topic, 0), "cleaner-staging")
    if aim:
        deadline = time.monotonic() + 2
        while not os.path.exists(stage) and time.monotonic() < deadline:
            time.sleep(0.0005)
        time.sleep(rng.uniform(0, 0.01))
    else:
        time.sleep(rng.uniform(0, 0.25))  # a random moment to kill at, not a wait for a condition
    b.kill9()
    return os.path.exists(stage)


def test_kill9_during_compaction(broker_factory):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    b = broker_factory(props={"log.cleaner.backoff.ms": 20})
    topic = unique("cmp-crash")
    ck_create_topic(b, topic, 1, config={"cleanup.policy": "compact", "segment.bytes": "8192",
                                          "min.cleanable.dirty.ratio": "0"})
    model = {}
    staged_kills = 0
    for cycle in range(CYCLES):
        p = ck_producer(b, **{"acks": "all", "linger.ms": 5, "batch.num.messages": 40, "compression.type": rng.choice(["none", "gzip", "zstd"])})
        d = Delivery()
        for i in range(rng.randint(300, 1500)):
            k = b"k%d" % rng.randrange(80)
            v = None if rng.randrange(10) == 0 else b"c%d-%d-%s" % (cycle, i, b"y" * rng.randrange(60))
            p.produce(topic, key=k, value=v, on_delivery=d)
        ck_produce_sync(p, 60)
        assert not d.errors(), "seed %d: %s" % (seed, d.errors()[:3])
        for m in d.ok():
            model[m.offset()] = (m.key(), m.value())
        # every other cycle aims at a pass in flight
        staged_kills += kill9_in_pass(b, topic, rng, cycle % 2 == 0)
        b.start()
        got, hi = read_all(b, topic)
        assert hi == max(model) + 1, "seed %d cycle %d: high watermark %d, acknowledged up to %d" % (
            seed, cycle, hi, max(model))
        for off, kv in got.items():
            assert model.get(off) == kv, "seed %d cycle %d: offset %d holds %r, acknowledged %r" % (
                seed, cycle, off, kv, model.get(off))
        latest = {}
        for off in sorted(model):
            latest[model[off][0]] = off
        lost = [off for off in latest.values() if off not in got]
        assert not lost, "seed %d cycle %d: latest records lost at %s" % (seed, cycle, lost[:5])
        e = cleaner_offset(b, topic)
        tail = [off for off in model if off >= max(e, 0) and off not in got]
        assert not tail, "seed %d cycle %d: uncleaned records lost at %s" % (seed, cycle, tail[:5])
        assert not os.path.exists(os.path.join(b.partition_dir(topic, 0), "cleaner-staging"))
    # the cleaner still works after all that: compaction reaches the end of the sealed data
    wait_until(lambda: cleaner_offset(b, topic) > len(model) // 2, 30, "compaction after the crashes")
    finished = b.log_text().count("finishing an interrupted compaction swap")
    print("kill -9 cycles: %d, with a pass's files staged: %d, of them after the commit point (swap finished "
          "at restart): %d (seed %d)" % (CYCLES, staged_kills, finished, seed))


TXN_CYCLES = 10


def test_kill9_during_compaction_with_transactions(broker_factory):
    """kill -9 while the cleaner works on transactional data (bounded:
    TXN_CYCLES cycles). Each cycle: a transactional producer (same
    transactional.id, so its first act aborts a transaction the last kill
    left open) commits or aborts transactions of keyed records, a plain
    producer writes between them, then some cycles leave a transaction open
    and rilld is killed while a pass is staged or at a random moment. After
    every restart: read_committed shows per key exactly the latest committed
    value, no record of an aborted or open transaction; read_uncommitted
    returns only acknowledged records at their offsets, none of an aborted
    transaction below the cleaner checkpoint but in a producer's last batch
    (S19); no staging files are left. delete.retention.ms 0 lets markers go
    as soon as their transactions have no record left, across the kills."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    b = broker_factory(props={"log.cleaner.backoff.ms": 20})
    topic = unique("cmp-txn-crash")
    ck_create_topic(b, topic, 1, config={"cleanup.policy": "compact", "segment.bytes": "8192",
                                          "min.cleanable.dirty.ratio": "0", "delete.retention.ms": "0"})
    tid = unique("tid-crash")
    model = {}        # offset -> (key, value, state, txn): "c" committed / plain, "a" aborted; txn None for plain
    pending = {}      # the open transaction the last kill left: offset -> (key, value)
    pending_txn = None
    staged_kills = 0

    def plain(pp, n, tag):
        dp = Delivery()
        for i in range(n):
            pp.produce(topic, key=b"k%d" % rng.randrange(40), value=b"%s-%d" % (tag, i), on_delivery=dp)
        ck_produce_sync(pp, 60)
        assert not dp.errors(), "seed %d: %s" % (seed, dp.errors()[:3])
        for m in dp.ok():
            model[m.offset()] = (m.key(), m.value(), "c", None)
    for cycle in range(TXN_CYCLES):
        p = ck_producer(b, **{"transactional_id": tid, "linger.ms": 5, "batch.num.messages": 40,
                              "compression.type": rng.choice(["none", "gzip", "zstd"])})
        p.init_transactions(30)  # aborts what the kill left open
        for off, (k, v) in pending.items():
            model[off] = (k, v, "a", pending_txn)
        pending = {}
        pp = ck_producer(b, **{"acks": "all", "linger.ms": 5, "batch.num.messages": 40})
        for t in range(rng.randint(10, 25)):
            commit = rng.randrange(3) != 0
            d = Delivery()
            p.begin_transaction()
            for i in range(rng.randint(5, 40)):
                p.produce(topic, key=b"k%d" % rng.randrange(40),
                          value=b"%s%d-%d-%d-%s" % (b"c" if commit else b"a", cycle, t, i, b"y" * rng.randrange(60)),
                          on_delivery=d)
            p.flush(30)
            assert not d.errors(), "seed %d: %s" % (seed, d.errors()[:3])
            if commit:
                p.commit_transaction(30)
            else:
                p.abort_transaction(30)
            for m in d.ok():
                model[m.offset()] = (m.key(), m.value(), "c" if commit else "a", (cycle, t))
            if rng.randrange(3) == 0:
                plain(pp, rng.randint(1, 20), b"p%d-%d" % (cycle, t))
        if cycle % 3 == 1:  # a transaction left open by the kill
            d = Delivery()
            p.begin_transaction()
            for i in range(rng.randint(1, 10)):
                p.produce(topic, key=b"k%d" % rng.randrange(40), value=b"o%d-%d" % (cycle, i), on_delivery=d)
            p.flush(30)
            assert not d.errors(), "seed %d: %s" % (seed, d.errors()[:3])
            pending = {m.offset(): (m.key(), m.value()) for m in d.ok()}
            pending_txn = (cycle, "open")
        if cycle % 2 == 0 and not pending:
            # aiming at a pass in flight: a segment's worth of plain records
            # makes new dirty data
            plain(pp, 120, b"q%d" % cycle + b"z" * 60)
        staged_kills += kill9_in_pass(b, topic, rng, cycle % 2 == 0)
        b.start()
        what = "seed %d cycle %d" % (seed, cycle)
        committed = [off for off in sorted(model) if model[off][2] == "c"]
        got = read_values(b, topic, "read_committed", committed[-1])
        for off, kv in got.items():
            assert off in model and model[off][:2] == kv, "%s: read_committed offset %d holds %r" % (what, off, kv)
            assert model[off][2] == "c", "%s: read_committed returned aborted offset %d" % (what, off)
        assert not set(got) & set(pending), "%s: read_committed returned the open transaction" % what
        want = {}
        for off in committed:
            want[model[off][0]] = off
        latest = {}
        for off in sorted(got):
            latest[got[off][0]] = off
        assert latest == want, "%s: latest committed per key differs at %s" % (
            what, sorted(k for k in want if latest.get(k) != want[k])[:5])
        raw = read_values(b, topic, "read_uncommitted", max(list(model) + list(pending)))
        e = cleaner_offset(b, topic)
        for off, kv in raw.items():
            assert (off in model and model[off][:2] == kv) or pending.get(off) == kv, \
                "%s: offset %d holds %r, not what was acknowledged" % (what, off, kv)
        # aborted records below the cleaner checkpoint are gone, but those of
        # the producer's last batch (S19), in its last transaction
        last_txn = pending_txn if pending else model[max(o for o in model if model[o][3] is not None)][3]
        left = [off for off in raw if off < e and off in model and model[off][2] == "a" and model[off][3] != last_txn]
        assert not left, "%s: aborted records below the cleaner checkpoint %d: %s" % (what, e, left[:5])
        assert not os.path.exists(os.path.join(b.partition_dir(topic, 0), "cleaner-staging"))
        del p, pp
    finished = b.log_text().count("finishing an interrupted compaction swap")
    removed = sum(int(x) for x in re.findall(r"\((\d+) aborted\)", b.log_text()))
    markers = sum(int(x) for x in re.findall(r"(\d+) marker\(s\) removed", b.log_text()))
    assert removed > 0 and markers > 0, "no aborted record or marker removed (%d, %d)" % (removed, markers)
    print("transactional kill -9 cycles: %d, with a pass's files staged: %d, swaps finished at restart: %d, "
          "aborted records removed: %d, markers removed: %d (seed %d)" % (TXN_CYCLES, staged_kills, finished,
                                                                         removed, markers, seed))
