"""rilltest — shared helpers for Rill's integration and fault suites.

Starts a real `rilld` on a free loopback port with a temporary data dir and
gives the tests a handle on it (Broker), plus small helpers for the Python
clients (confluent_kafka, kafka-python) that every suite uses.

Rules the helpers follow (and the tests should too):
  * servers bind 127.0.0.1 only;
  * never a bare sleep in place of a condition: wait_until() polls a predicate
    until a deadline and fails with a message saying what it waited for;
  * every loop is bounded in count or time;
  * a broker that exits on its own, exits non-zero on SIGTERM, or whose log
    has a sanitizer report fails the test, with the log attached.

RILL_BUILD (set by ctest) points at the build dir holding rilld, rill and the
client programs; it defaults to <repo>/build.
"""
import os
import re
import signal
import socket
import subprocess
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("RILL_BUILD") or os.path.join(REPO, "build")
RILLD = os.path.join(BUILD, "rilld")
RILL_CLI = os.path.join(BUILD, "rill")

# Lines a sanitizer prints when it finds something.
SANITIZER_RE = re.compile(
    r"(ERROR: AddressSanitizer|ERROR: LeakSanitizer|WARNING: ThreadSanitizer|"
    r"SUMMARY: (Address|Leak|Thread|UndefinedBehavior)Sanitizer|runtime error: )")

# Brokers running right now; conftest attaches their logs to failing tests.
ACTIVE_BROKERS = []

# Kafka error codes used by the tests (Kafka's numbers).
ERR = dict(
    NONE=0, CORRUPT_MESSAGE=2, UNKNOWN_TOPIC_OR_PARTITION=3, REQUEST_TIMED_OUT=7, MESSAGE_TOO_LARGE=10,
    INVALID_TOPIC_EXCEPTION=17, RECORD_LIST_TOO_LARGE=18, INVALID_REQUIRED_ACKS=21,
    UNSUPPORTED_VERSION=35, TOPIC_ALREADY_EXISTS=36, INVALID_REQUEST=42,
    KAFKA_STORAGE_ERROR=56, INVALID_RECORD=87,
)
ERR_NAME = {v: k for k, v in ERR.items()}


def err_name(code):
    return "%s(%d)" % (ERR_NAME.get(code, "?"), code)


class WaitTimeout(AssertionError):
    pass


def wait_until(pred, timeout, what, interval=0.01, max_interval=0.2):
    """Polls pred() until it returns a truthy value (returned) or `timeout`
    seconds pass (raises WaitTimeout naming `what`). The poll interval backs
    off from `interval` to `max_interval`."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except (OSError, ConnectionError) as e:  # e.g. connect refused while starting
            last_exc = e
        if time.monotonic() >= deadline:
            raise WaitTimeout("timed out after %.1fs waiting for %s%s" % (
                timeout, what, (" (last error: %r)" % last_exc) if last_exc else ""))
        time.sleep(interval)
        interval = min(interval * 1.5, max_interval)


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _proc_stat(pid):
    """(utime+stime in seconds) of a process, from /proc."""
    with open("/proc/%d/stat" % pid) as f:
        data = f.read()
    fields = data[data.rindex(")") + 2:].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def _proc_status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


class BrokerError(AssertionError):
    pass


class Broker:
    """One rilld process on 127.0.0.1:<port> with its data in `data_dir`.

    props: extra Kafka-named properties passed as `--name value`.
    env:   extra environment (e.g. RILL_FAILPOINTS).
    """

    START_TIMEOUT = float(os.environ.get("RILL_TEST_START_TIMEOUT", "30"))
    STOP_TIMEOUT = float(os.environ.get("RILL_TEST_STOP_TIMEOUT", "60"))

    def __init__(self, data_dir=None, props=None, env=None, port=None, name="rilld"):
        if data_dir is None:
            data_dir = tempfile.mkdtemp(prefix="rill-test-")
        self.name = name
        self.base_dir = data_dir
        self.data_dir = os.path.join(data_dir, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.log_path = os.path.join(data_dir, "rilld.log")
        self.props = dict(props or {})
        self.env = dict(env or {})
        self.port = port
        self.proc = None
        self.starts = 0
        self._expected_exit = False
        self._log_fh = None
        self._reported_exit = None
        self._sanitizer_seen = 0

    # ---- properties --------------------------------------------------------
    @property
    def bootstrap(self):
        return "127.0.0.1:%d" % self.port

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def command(self):
        args = [RILLD,
                "--listeners", "PLAINTEXT://127.0.0.1:%d" % self.port,
                "--log.dirs", self.data_dir,
                "--node.id", "1"]
        for k, v in self.props.items():
            if isinstance(v, bool):
                v = "true" if v else "false"
            args += ["--" + k, str(v)]
        return args

    # ---- lifecycle ---------------------------------------------------------
    def start(self):
        if not os.access(RILLD, os.X_OK):
            raise BrokerError("rilld not found at %s (set RILL_BUILD or build it: "
                              "cmake --build build)" % RILLD)
        fixed_port = self.port is not None
        attempts = 1 if fixed_port else 3
        for attempt in range(attempts):
            if not fixed_port:
                self.port = free_port()
            self._spawn()
            try:
                self.wait_ready()
                self.starts += 1
                if self not in ACTIVE_BROKERS:
                    ACTIVE_BROKERS.append(self)
                return self
            except BrokerError:
                # another process may have taken the port between our probe and
                # rilld's bind: retry on a fresh port if the log says so
                if (not fixed_port and attempt + 1 < attempts and not self.running()
                        and re.search(r"(?i)address (already )?in use|EADDRINUSE", self.log_text())):
                    continue
                raise
        raise BrokerError("unreachable")

    def _spawn(self):
        env = dict(os.environ)
        env.update(self.env)
        self._log_fh = open(self.log_path, "ab")
        self._log_fh.write(("\n===== rill test: start #%d: %s\n" % (
            self.starts + 1, " ".join(self.command()))).encode())
        self._log_fh.flush()
        self._log_offset_at_start = self._log_fh.tell()
        self._expected_exit = False
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=self._log_fh, stderr=self._log_fh,
                                     env=env, cwd=self.base_dir)

    def wait_ready(self, timeout=None):
        timeout = self.START_TIMEOUT if timeout is None else timeout

        def ready():
            if self.proc.poll() is not None:
                raise BrokerError("rilld exited with code %s while starting\n%s" % (
                    self.proc.returncode, self.log_tail()))
            return port_open(self.port)
        try:
            wait_until(ready, timeout, "rilld to accept connections on %s" % self.bootstrap)
        except WaitTimeout as e:
            raise BrokerError("%s\n%s" % (e, self.log_tail()))

    def stop(self, timeout=None, expect_clean=True):
        """SIGTERM and wait. With expect_clean, exit code 0 is required."""
        if not self.running():
            self._check_unexpected_exit()
            return
        timeout = self.STOP_TIMEOUT if timeout is None else timeout
        self._expected_exit = True
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
            raise BrokerError("rilld did not exit within %.0fs of SIGTERM\n%s" % (timeout, self.log_tail()))
        finally:
            self._close_log()
        if expect_clean and rc != 0:
            raise BrokerError("rilld exited with code %s after SIGTERM (expected 0)\n%s" % (rc, self.log_tail()))
        self.check_sanitizers()

    def kill9(self):
        """SIGKILL, wait for the process to be gone."""
        if not self.running():
            self._check_unexpected_exit()
            return
        self._expected_exit = True
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._close_log()

    def restart(self, clean=True):
        """Stops (SIGTERM, or kill -9 with clean=False) and starts again on the
        same port with the same data dir."""
        if clean:
            self.stop()
        else:
            self.kill9()
        return self.start()

    def _close_log(self):
        if self._log_fh:
            self._log_fh.close()
            self._log_fh = None

    def _check_unexpected_exit(self):
        """Raises once per unexpected exit (later checks stay quiet, so one
        crash is not reported again by every teardown that looks)."""
        if (self.proc is not None and not self._expected_exit and self.proc.poll() is not None
                and self._reported_exit is not self.proc):
            self._reported_exit = self.proc
            raise BrokerError("rilld exited unexpectedly with code %s\n%s" % (
                self.proc.returncode, self.log_tail()))

    def check(self):
        """Fails if rilld died on its own or a sanitizer reported something."""
        self._check_unexpected_exit()
        self.check_sanitizers()

    def check_sanitizers(self):
        """Raises if the log has a sanitizer report not raised before."""
        text = self.log_text()
        m = SANITIZER_RE.search(text, self._sanitizer_seen)
        if m:
            self._sanitizer_seen = len(text)
            start = max(0, m.start() - 2000)
            raise BrokerError("sanitizer report in rilld log (%s):\n%s" % (self.log_path, text[start:start + 12000]))

    def cleanup(self):
        """Teardown: stop if running, then check for crashes/sanitizer output."""
        try:
            if self.running():
                self.stop()
            else:
                self._check_unexpected_exit()
                self.check_sanitizers()
        finally:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=30)
            self._close_log()
            if self in ACTIVE_BROKERS:
                ACTIVE_BROKERS.remove(self)

    # ---- observation -------------------------------------------------------
    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n=150):
        lines = self.log_text().splitlines()
        return "----- rilld log (%s, last %d of %d lines) -----\n%s\n----- end of rilld log -----" % (
            self.log_path, min(n, len(lines)), len(lines), "\n".join(lines[-n:]))

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except FileNotFoundError:
            return 0

    def log_since(self, offset):
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")

    def cpu_seconds(self):
        return _proc_stat(self.pid)

    def rss_kb(self):
        return _proc_status_kb(self.pid, "VmRSS")

    def peak_rss_kb(self):
        return _proc_status_kb(self.pid, "VmHWM")

    def partition_dir(self, topic, partition):
        return os.path.join(self.data_dir, "%s-%d" % (topic, partition))

    def segment_files(self, topic, partition):
        d = self.partition_dir(topic, partition)
        if not os.path.isdir(d):
            return []
        return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".log"))

    def log_bytes(self, topic, partition):
        """Total size of the partition's .log segment files (0 if none)."""
        return sum(os.path.getsize(p) for p in self.segment_files(topic, partition))

    def topic_dirs(self):
        if not os.path.isdir(self.data_dir):
            return []
        return sorted(f for f in os.listdir(self.data_dir)
                      if os.path.isdir(os.path.join(self.data_dir, f)))

    def __repr__(self):
        return "<Broker %s pid=%s dir=%s>" % (self.bootstrap if self.port else "?", self.pid, self.base_dir)


# ---------------------------------------------------------------------------
# confluent_kafka helpers
# ---------------------------------------------------------------------------

def ck_producer(broker, **conf):
    import confluent_kafka as ck
    c = {"bootstrap.servers": broker.bootstrap, "socket.nagle.disable": True,
         "linger.ms": 5, "message.timeout.ms": 30000}
    c.update({(k if k.endswith("_cb") else k.replace("_", ".")): v for k, v in conf.items()})
    return ck.Producer(c)


def ck_consumer(broker, **conf):
    """A consumer for assign() use: group.id is required by confluent_kafka
    1.7 but no group is joined and nothing is committed."""
    import confluent_kafka as ck
    c = {"bootstrap.servers": broker.bootstrap, "group.id": "rill-test-assign",
         "enable.auto.commit": False, "enable.auto.offset.store": False,
         "enable.partition.eof": False, "socket.nagle.disable": True,
         "fetch.wait.max.ms": 100}
    c.update({(k if k.endswith("_cb") else k.replace("_", ".")): v for k, v in conf.items()})
    return ck.Consumer(c)


def ck_admin(broker, **conf):
    from confluent_kafka.admin import AdminClient
    c = {"bootstrap.servers": broker.bootstrap}
    c.update(conf)
    return AdminClient(c)


def ck_create_topic(broker, name, partitions=1, config=None, timeout=30):
    """Creates a topic with AdminClient and waits until metadata shows all
    its partitions with a leader."""
    from confluent_kafka.admin import NewTopic
    admin = ck_admin(broker)
    fs = admin.create_topics([NewTopic(name, partitions, 1, config=config or {})],
                             operation_timeout=timeout, request_timeout=timeout)
    fs[name].result(timeout=timeout)
    ck_wait_topic(broker, name, partitions, admin=admin, timeout=timeout)
    return name


def ck_wait_topic(broker, name, partitions, admin=None, timeout=30):
    admin = admin or ck_admin(broker)

    def ok():
        md = admin.list_topics(topic=name, timeout=5)
        t = md.topics.get(name)
        return (t is not None and t.error is None and len(t.partitions) == partitions
                and all(p.leader >= 0 for p in t.partitions.values()))
    wait_until(ok, timeout, "topic %r with %d partitions in metadata" % (name, partitions))


class Delivery:
    """Collects delivery reports: a list of (err, msg) plus handy views."""

    def __init__(self):
        self.reports = []

    def __call__(self, err, msg):
        self.reports.append((err, msg))

    def errors(self):
        return [(e, m) for e, m in self.reports if e is not None]

    def ok(self):
        return [m for e, m in self.reports if e is None]


def ck_produce_sync(producer, timeout=30):
    """flush() with a deadline; fails if messages remain queued."""
    left = producer.flush(timeout)
    assert left == 0, "%d message(s) still undelivered after flush(%ss)" % (left, timeout)


def ck_consume(consumer, count, timeout=30, what=None):
    """Polls until `count` messages arrived (errors fail); returns them."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("got %d of %d %s within %ss" % (
                len(out), count, what or "messages", timeout))
        for m in consumer.consume(num_messages=min(500, count - len(out)), timeout=min(left, 0.5)):
            if m.error() is not None:
                raise AssertionError("consumer error: %s" % m.error())
            out.append(m)
    return out


def ck_read_partition(broker, topic, partition, start, end, timeout=60, **conf):
    """Reads offsets [start, end) of one partition with assign(); returns the
    messages in order."""
    import confluent_kafka as ck
    if end <= start:
        return []
    c = ck_consumer(broker, **conf)
    try:
        c.assign([ck.TopicPartition(topic, partition, start)])
        return ck_consume(c, end - start, timeout=timeout,
                          what="messages of %s[%d] offsets %d..%d" % (topic, partition, start, end - 1))
    finally:
        c.close()


def ck_read_until(broker, topic, partition, end, timeout=60, **conf):
    """Values of one partition from its start, read until the consumer's
    position reaches `end` (offsets taken by transaction markers, or records
    a read_committed consumer drops, are never delivered: counting messages
    would not tell when to stop)."""
    import confluent_kafka as ck
    if end <= 0:
        return []
    c = ck_consumer(broker, **conf)
    try:
        tp = ck.TopicPartition(topic, partition, ck.OFFSET_BEGINNING)
        c.assign([tp])
        out = []
        deadline = time.monotonic() + timeout
        while c.position([tp])[0].offset < end:
            assert time.monotonic() < deadline, "read %d records of %s[%d], position %d < %d within %ss" % (
                len(out), topic, partition, c.position([tp])[0].offset, end, timeout)
            for m in c.consume(num_messages=500, timeout=0.2):
                assert m.error() is None, m.error()
                out.append(m.value())
        return out
    finally:
        c.close()


def ck_read_settled(broker, topic, isolation, want=None, timeout=60, settle=1.0):
    """Every record of topic (all partitions, in partition order), read from
    the beginning with the isolation level given; returns once nothing new
    came for settle seconds and want(records), if given, agrees."""
    import confluent_kafka as ck
    c = ck_consumer(broker, isolation_level=isolation)
    try:
        md = c.list_topics(topic, timeout=10).topics[topic]
        c.assign([ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING) for p in md.partitions])
        out = []
        deadline = time.monotonic() + timeout
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            got = c.consume(num_messages=1000, timeout=0.2)
            for m in got:
                assert m.error() is None, m.error()
                out.append(m)
            if got:
                last_new = time.monotonic()
            elif time.monotonic() - last_new >= settle and (want is None or want(out)):
                return out
        raise AssertionError("%s (%s): %d records, no end within %ss" % (topic, isolation, len(out), timeout))
    finally:
        c.close()


def unique(prefix):
    """A topic name unique within this process run."""
    unique.n += 1
    return "%s-%d-%d" % (prefix, os.getpid(), unique.n)


unique.n = 0
