"""Exactly-once copy through transactions under kill -9 (issue 5): a
transactional copier (tests/fault/txn_copier.py: read_committed consumer ->
transform -> transactional producer + send_offsets_to_transaction) is killed
with SIGKILL at random points and restarted KILLS times, and rilld itself is
killed (SIGKILL) and restarted every fourth round. At the end every input
record appears exactly once in the committed output (read_committed), none
twice (no aborted or replayed copy is visible), none from the transaction
the last kill left open (a last run is killed after writing a transaction's
records, before its commit); read_uncommitted shows the aborted copies are
really there (the aborted transactions were filtered, not absent)."""
import os
import random
import subprocess
import sys
import time

import pytest

import kwire
from rilltest import ck_consumer, ck_create_topic, ck_producer, ck_read_settled, unique, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
NPARTS = 3


def read_values(broker, topic, isolation, expect):
    """The values of topic once at least expect were read and nothing new
    came for a second."""
    return [m.value() for m in ck_read_settled(broker, topic, isolation, want=lambda out: len(out) >= expect)]


def start_copier(broker, tin, tout, group, tid, pause_ms=20):
    return subprocess.Popen([sys.executable, os.path.join(HERE, "txn_copier.py"), broker.bootstrap, tin, tout,
                             str(NPARTS), group, tid, str(pause_ms), "20"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def kill(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


@pytest.mark.parametrize("kills,records", [pytest.param(12, 3000, id="ci"),
                                           pytest.param(60, 30000, id="soak", marks=pytest.mark.soak)])
def test_copier_exactly_once_under_kill9(broker, kills, records):
    rng = random.Random(20261130)
    tin = ck_create_topic(broker, unique("cp-in"), partitions=NPARTS)
    tout = ck_create_topic(broker, unique("cp-out"), partitions=NPARTS)
    group, tid = unique("cp-group"), unique("cp-tid")
    assert records % NPARTS == 0
    inputs = [b"r%06d" % i for i in range(records)]
    chunk = (records + kills) // (kills + 1)
    fed = 0

    def feed(n):
        # input arrives while the copier runs, so every kill lands with work in flight
        nonlocal fed
        p = ck_producer(broker)
        for i in range(fed, min(records, fed + n)):
            p.produce(tin, value=inputs[i], partition=i % NPARTS)
        assert p.flush(60) == 0
        fed = min(records, fed + n)

    restarts = exits = 0
    for k in range(kills):
        feed(chunk)
        for attempt in range(3):
            proc = start_copier(broker, tin, tout, group, tid)
            try:
                # wait until this run has committed a transaction, then kill it at
                # a random point of the following ones (a delay, not a condition)
                line = proc.stdout.readline()
                while line and not line.startswith(b"committed"):
                    line = proc.stdout.readline()
                if line:
                    time.sleep(rng.uniform(0.0, 0.1))
                    break
                exits += 1  # it ended on an error (status 3): restarted, as after a crash
            finally:
                kill(proc)
        else:
            raise AssertionError("the copier ended 3 times in a row without committing")
        if k % 4 == 3:
            broker.restart(clean=False)
            restarts += 1
    assert restarts >= 3
    # the last run copies the rest; stop it once everything is committed
    feed(records)
    proc = start_copier(broker, tin, tout, group, tid)
    try:
        import confluent_kafka as ck
        gc = ck_consumer(broker, group_id=group, isolation_level="read_committed")
        try:
            want = records // NPARTS
            wait_until(lambda: all(tp.offset == want for tp in gc.committed(
                [ck.TopicPartition(tin, i) for i in range(NPARTS)], timeout=10)), 120,
                "the copier's committed offsets at the end of %s" % tin, interval=0.2)
        finally:
            gc.close()
    finally:
        kill(proc)
    # one more run that stops inside a transaction (records written, not
    # committed): they must stay invisible to read_committed
    proc = start_copier(broker, tin, tout, group, tid, pause_ms=600000)
    try:
        assert proc.stdout.readline().strip() == b"ready"
        p = ck_producer(broker)
        for i in range(30):
            p.produce(tin, value=b"open-%02d" % i, partition=i % NPARTS)
        assert p.flush(60) == 0
        line = proc.stdout.readline()
        assert line.startswith(b"produced"), line
    finally:
        kill(proc)
    committed = read_values(broker, tout, "read_committed", expect=records)
    assert len(committed) == records, "duplicates or losses: %d committed for %d inputs" % (len(committed), records)
    assert sorted(committed) == sorted(b"copied:" + v for v in inputs)
    everything = read_values(broker, tout, "read_uncommitted", expect=records)
    extras = set(everything) - set(committed)  # the open transaction's records, written but invisible
    assert len(extras) == int(line.split()[1]) and all(v.startswith(b"copied:open-") for v in extras), extras
    aborts = sum(1 for part in range(NPARTS) for path in broker.segment_files(tout, part)
                 for _, _, commit in kwire.segment_markers(path) if not commit)
    assert exits <= kills // 4, "the copier ended on errors %d times" % exits
    print("copier: %d error exits, %d abort markers, %d kills, %d broker restarts, %d records, %d read_uncommitted copies (%d aborted/open)" % (
        exits, aborts, kills, restarts, records, len(everything), len(everything) - records))
