"""Transaction state through kill -9 (issue 5; storage.h S22-S23,
docs/durability.md D34-D35): a confluent-kafka transactional producer
commits and aborts small transactions into a topic with 8 KiB segments (so
markers, .txnindex entries and producer snapshots spread over many
segments) while rilld is killed with kill -9 once the round has completed a
few transactions, then restarted; a new producer instance with the same
transactional.id fences the old one (its open transaction aborted). After
every restart, and after a final clean restart, read_committed shows every
acknowledged committed transaction whole, nothing of an acknowledged abort,
and each unacknowledged transaction all or nothing; the LSO equals the high
watermark once nothing is open; read_uncommitted sees at least as much."""
import os
import sys
import threading

import confluent_kafka as ck

import kwire
from rilltest import ck_create_topic, ck_read_until, unique, wait_until

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
from test_transactions import txn_producer  # noqa: E402

ROUNDS = 3
PER_TXN = 20


class Worker:
    """Runs transactions until the broker dies under it; outcome per txn:
    'commit' / 'abort' (acknowledged) or 'unknown' (interrupted)."""

    def __init__(self, broker, topic, tid, start):
        self.p = txn_producer(broker, tid, transaction_timeout_ms=10000, message_timeout_ms=2000)
        self.p.init_transactions(60)
        self.topic, self.n, self.outcome = topic, start, {}
        self.stop = threading.Event()
        self.done = 0
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop.is_set():
            n = self.n
            self.outcome[n] = "unknown"
            try:
                self.p.begin_transaction()
                for i in range(PER_TXN):
                    self.p.produce(self.topic, value=b"t%d-%d-" % (n, i) + b"y" * 100)
                self.p.flush(3)
                if n % 3 == 2:
                    self.p.abort_transaction(3)
                    self.outcome[n] = "abort"
                else:
                    self.p.commit_transaction(3)
                    self.outcome[n] = "commit"
            except ck.KafkaException:
                return
            self.n += 1
            self.done += 1

    def join(self):
        self.stop.set()
        self.t.join(60)
        assert not self.t.is_alive()


def check(broker, topic, outcome):
    with kwire.Conn(broker.port) as c:
        wait_until(lambda: kwire.list_latest(c, topic, 0, 1) == kwire.list_latest(c, topic, 0, 0), 30,
                   "the LSO at the high watermark (nothing open)")
        end = kwire.list_latest(c, topic, 0, 0)
    got = ck_read_until(broker, topic, 0, end, isolation_level="read_committed")
    per = {}
    for v in got:
        n = int(v.split(b"-")[0][1:])
        per[n] = per.get(n, 0) + 1
    for n, o in outcome.items():
        c = per.get(n, 0)
        if o == "commit":
            assert c == PER_TXN, (n, o, c)
        elif o == "abort":
            assert c == 0, (n, o, c)
        else:
            assert c in (0, PER_TXN), (n, o, c)
    assert set(per) <= set(outcome)
    assert len(ck_read_until(broker, topic, 0, end, isolation_level="read_uncommitted")) >= len(got)
    return sum(1 for o in outcome.values() if o == "abort")


def test_txn_state_through_kill9(broker_factory):
    b = broker_factory()
    topic = ck_create_topic(b, unique("txk"), config={"segment.bytes": "8192"})
    tid = unique("tid")
    outcome, start = {}, 0
    for r in range(ROUNDS):
        w = Worker(b, topic, tid, start)
        wait_until(lambda: w.done >= 4 + r, 60, "transactions of round %d" % r)
        b.kill9()
        w.join()
        outcome.update(w.outcome)
        start = w.n + 1
        b.start()
        # a new instance fences the old one and aborts what it left open
        fence = txn_producer(b, tid)
        fence.init_transactions(60)
        check(b, topic, outcome)
    assert check(b, topic, outcome) >= 1  # some acknowledged aborts to filter
    assert len(b.segment_files(topic, 0)) > 5
    b.restart(clean=True)
    check(b, topic, outcome)
