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


def read_all(broker, topic):
    c = ck_consumer(broker)
    lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=20)
    assert lo == 0
    c.assign([TopicPartition(topic, 0, 0)])
    out, last = {}, [-1]

    def done():
        for m in c.consume(num_messages=1000, timeout=0.2):
            assert m.error() is None, m.error()
            assert m.offset() > last[0]
            last[0] = m.offset()
            out[m.offset()] = (m.key(), m.value())
        return last[0] >= hi - 1
    wait_until(done, 60, "a full read up to %d" % hi)
    c.close()
    return out, hi


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
        stage = os.path.join(b.partition_dir(topic, 0), "cleaner-staging")
        if cycle % 2 == 0:
            # aim at a pass in flight: kill as soon as its staging dir shows (or after 2 s)
            deadline = time.monotonic() + 2
            while not os.path.exists(stage) and time.monotonic() < deadline:
                time.sleep(0.0005)
            time.sleep(rng.uniform(0, 0.01))
        else:
            time.sleep(rng.uniform(0, 0.25))  # a random moment to kill at, not a wait for a condition
        b.kill9()
        if os.path.exists(stage):
            staged_kills += 1
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
