"""librill-streams exactly-once (processing.guarantee=exactly_once_v2) under
kill -9. Two instances of the word-count example (examples/wordcount.c:
wordcount-input -> split -> repartition by word -> count in a RocksDB store
with a changelog -> wordcount-output) count words that a producer here
writes while, KILLS times, once both run tasks, an instance is killed
with SIGKILL at a random moment (in turn one reading the input and one
counting) and started again (a new process: new transactional ids, its
RocksDB stores without checkpoint, so wiped and restored from the
changelogs). Each kill leaves the killed thread's open transaction
(outputs, repartition records, changelog records, offsets) to be aborted
by rilld's transaction timeout; the records it had processed are
processed again by the next owner of their partitions.

Checked at the end, reading wordcount-output with read_committed: the last
count of every word equals the number of its occurrences written (an
at-least-once run over-counts after such kills), and the counts a
read_committed reader sees of each word strictly increase (no increment is
ever visible twice). The test prints, and asserts non-zero, the records in
aborted transactions (read_uncommitted minus read_committed, over the
output, repartition and changelog topics) and the transactions rilld aborted
on timeout, so the abort path is known to be exercised."""
import collections
import random
import re
import struct
import threading
import time

import pytest

from rilltest import ck_create_topic, ck_producer, ck_read_settled, wait_until
from streamsapp import StreamsApp

NPARTS = 4
APP = "wc-eos"
WORDS = ["apple", "Banana", "cherry", "the", "date", "elder", "fig", "grape", "kiwi", "lemon", "mango", "nut"]
BROKER_PROPS = {"group.initial.rebalance.delay.ms": 0, "group.min.session.timeout.ms": 1000,
                "transaction.abort.timed.out.transaction.cleanup.interval.ms": 200}


def App(broker, state_dir, log_path, guarantee="exactly_once_v2"):
    """One example_wordcount process under the guarantee given."""
    return StreamsApp(broker, state_dir, log_path, app_id=APP,
                      extra=["--commit-ms", "100", "--set", "processing.guarantee=" + guarantee,
                             "--set", "default.dsl.store=rocksDB", "--set", "producer.transaction.timeout.ms=2000"])


class Input:
    """Writes lines of random words at a steady pace in a thread; expected
    holds the count of every word written (acknowledged)."""

    def __init__(self, broker, lines, seed, per_batch=10, pause=0.05):
        self.broker, self.lines, self.rnd = broker, lines, random.Random(seed)
        self.per_batch, self.pause = per_batch, pause
        self.expected = collections.Counter()
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            p = ck_producer(self.broker, acks="all", enable_idempotence=True)
            for i in range(self.lines):
                line = " ".join(self.rnd.choice(WORDS) for _ in range(self.rnd.randint(1, 6)))
                for w in re.split(r"[^a-z0-9']+", line.lower()):
                    if w and w != "the":
                        self.expected[w] += 1
                p.produce("wordcount-input", key=str(self.rnd.randint(0, 1000)).encode(), value=line.encode())
                if i % self.per_batch == self.per_batch - 1:
                    p.poll(0)
                    time.sleep(self.pause)
            assert p.flush(60) == 0, "input not acknowledged"
        except Exception as e:  # reported by the test
            self.error = e

    def join(self, timeout):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the input producer did not finish"
        assert self.error is None, self.error


def counts_exact(expected):
    def ok(msgs):
        last = {}
        for m in msgs:
            last[m.key().decode()] = struct.unpack(">q", m.value())[0]
        return last == dict(expected)
    return ok


@pytest.mark.parametrize("kills,lines", [pytest.param(5, 3000, id="ci"),
                                         pytest.param(30, 20000, id="soak", marks=pytest.mark.soak)])
def test_wordcount_exactly_once_under_kill9(broker_factory, tmp_path, kills, lines):
    broker = broker_factory(props=BROKER_PROPS)
    ck_create_topic(broker, "wordcount-input", partitions=NPARTS)
    ck_create_topic(broker, "wordcount-output", partitions=NPARTS)
    rnd = random.Random(7 + kills)
    logs = str(tmp_path / "app.log")
    dirs = [str(tmp_path / "state-a"), str(tmp_path / "state-b")]
    apps = [App(broker, dirs[0], logs), App(broker, dirs[1], logs)]
    t0 = time.monotonic()
    try:
        wait_until(lambda: apps[0].tasks and apps[1].tasks, 60, "both instances running tasks")
        inp = Input(broker, lines, seed=kills)
        # kills spread over the input: each at a random moment once both
        # instances run tasks again, of an instance running tasks, started
        # again at once
        for k in range(kills):
            wait_until(lambda: apps[0].tasks and apps[1].tasks, 60, "both instances running tasks again")
            time.sleep(rnd.uniform(0.2, 1.0))
            # even kills: one reading the input (tasks 0_*: it writes
            # repartition records all the time, so its open transaction
            # holds records when it dies); odd kills: one counting (tasks
            # 1_*: the next owner restores their stores)
            prefix = "0_" if k % 2 == 0 else "1_"
            i = rnd.choice([i for i, a in enumerate(apps) if any(t.startswith(prefix) for t in a.tasks or [])] or
                           [i for i, a in enumerate(apps) if a.tasks] or [0, 1])
            apps[i].kill9()
            apps[i] = App(broker, dirs[i], logs)
        inp.join(240)
        produced = sum(inp.expected.values())
        out = ck_read_settled(broker, "wordcount-output", "read_committed", want=counts_exact(inp.expected), timeout=180)
        for a in apps:
            assert a.alive(), open(logs).read()[-3000:]
    finally:
        rcs = [a.stop() for a in apps]
    elapsed = time.monotonic() - t0
    assert rcs == [0, 0], open(logs).read()[-3000:]

    # exact: the last committed count of every word
    last = {}
    seen = collections.defaultdict(list)
    for m in out:
        w, n = m.key().decode(), struct.unpack(">q", m.value())[0]
        seen[w].append(n)
        last[w] = n
    assert last == dict(inp.expected)
    # monotone: no increment visible twice to a read_committed reader
    for w, ns in seen.items():
        assert all(a < b for a, b in zip(ns, ns[1:])), "%s: committed counts not increasing: %s" % (w, ns)

    # the abort path ran: records of aborted transactions are in the logs
    aborted = {}
    for topic in ["wordcount-output", APP + "-wordcount-counts-repartition", APP + "-wordcount-counts-changelog"]:
        n_unc = len(ck_read_settled(broker, topic, "read_uncommitted", settle=0.5))
        n_com = len(ck_read_settled(broker, topic, "read_committed", settle=0.5))
        assert n_unc >= n_com
        aborted[topic] = n_unc - n_com
    timed_out = len(re.findall(r"timed out after \d+ ms: aborting", broker.log_text()))
    closes = [l for a in apps for l in a.lines if l.startswith("closed:")]
    print("\nexactly_once_v2 under %d kill -9: %d input lines, %d words, %d output updates read_committed, "
          "%.1fs; records in aborted transactions (processed again): %s; transactions aborted by rilld on "
          "timeout: %d; last instances: %s" % (kills, lines, produced, len(out), elapsed, aborted, timed_out, closes))
    assert sum(aborted.values()) > 0, "no kill left an aborted transaction: the abort path was not exercised"
    assert timed_out > 0
