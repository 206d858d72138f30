#!/usr/bin/python3
"""bench/run.py — the `make bench` tables (called through bench/run.sh BUILD).

One run answers every benchmark target of issue 2 as ratios measured in that
run (the machine is shared and noisy; figures from different runs do not
compare). In order:

  1. A fresh rilld from BUILD on a free loopback port, data under BUILD (a
     real disk, not tmpfs), driven by `BUILD/rill perf`:
       - produce: 100-byte and 1 KiB records x acks=1/all x 1 and 6 partitions
         at full speed;
       - produce 1 KiB acks=all p=1 at a fixed moderate rate with linger.ms=0:
         the ack latency of the broker + fsync, not of client queueing;
       - e2e: end-to-end latency at a fixed moderate rate;
       - consume: reads back the 100 B p=6 and 1 KiB p=1 acks=1 topics.
     For each run: rilld CPU (utime+stime from /proc/PID/stat) before/after,
     rilld RSS (VmRSS/VmHWM), the client's CPU (rusage from wait4), the
     average record-batch size on disk (walking the .log files' batch
     headers) and, when `perf` can count syscall tracepoints, rilld's
     fdatasync/syncfs calls (so bytes per sync: group commit at work).
  2. Disk baseline: BUILD/bench_disk_sync (bench/disk_sync.c) in the data
     directory's filesystem, right after each acks=all run at that run's
     average batch size, and at 16 KiB, 64 KiB and 1 MiB at the end: MB/s with
     fdatasync after every write, fdatasync p50/p99/max.
  3. Redis Streams: if redis-server and redis-benchmark are installed, a
     throw-away redis-server (no persistence) and
     `redis-benchmark -P 64 XADD bench-stream * f <100-byte value>`; otherwise
     the issue's figure for this machine class (550 K msgs/s), marked as such.
  4. Memory: a second fresh rilld; a 1,000-partition topic with records in
     every partition; RSS then, after 100 MB and 1 GB stored in another topic
     (16 MiB segments, so the stored data spans many segments), and after
     reading that 1 GB back.

It prints one table of every row, then the targets table: target, the row it
is compared with, measured, limit, ratio (measured / limit) and PASS/MISS.
Paste both with the header into bench/RESULTS.md.

Options: --quick (small runs, to check the script), --keep (keep the data
directories). Environment: RILL_BENCH_DIR (parent of the data directory;
default BUILD); RILL_BENCH_PROFILE=TEXT: `perf record -g` rilld during every
row whose scenario contains TEXT, to ./perf-<scenario>.data (see also
bench/profile.py for one scenario on its own).
"""
import argparse
import atexit
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
RUN_TIMEOUT_S = 120
GB = 1e9  # CPU-s per GB uses decimal GB of record values
MiB = 1 << 20
KiB = 1 << 10

# (record size, acks, partitions); record counts below
PRODUCE_RUNS = [
    (size, acks, parts)
    for size in (100, 1024)
    for acks in ("1", "all")
    for parts in (1, 6)
]
# sized so each full run lasts a few seconds on a 2-core machine (about
# 300 MB of values for 100 B, 600 MB for 1 KiB); each topic is deleted after
# its run except the two read back by the consume runs. (full, quick)
RECORDS = {100: (3_000_000, 50_000), 1024: (600_000, 10_000)}
# the latency run: moderate fixed rate, 1 KiB, acks=all, 1 partition, no linger
LAT = {"rate": 2000, "records": (16_000, 2_000), "size": 1024, "partitions": 1}
E2E = {"rate": 5000, "records": (75_000, 5_000), "size": 100, "partitions": 6}
CONSUME_FROM = [(100, "1", 6), (1024, "1", 1)]  # produce runs whose topics are read back
DISK_SECONDS = (3.0, 0.5)
DISK_FIXED = [16 * KiB, 64 * KiB, MiB]
REDIS = {"requests": (2_000_000, 200_000), "pipeline": 64, "clients": 50}
REDIS_FALLBACK_RPS = 550_000  # issue 2: XADD 100 B in memory on this machine class
MEM = {"partitions": 1000, "fill_records": (200_000, 20_000), "small_mb": (100, 10), "big_mb": (1000, 100),
       "segment_bytes": 16 * MiB}

# targets of issue 2
T_CPU_PRODUCE = 0.5      # rilld CPU-s per GB produced, acks=1
T_CPU_CONSUME = 0.2      # rilld CPU-s per GB consumed
T_CPU_RATIO = 0.30       # rilld CPU / producing client CPU
T_DISK_FRACTION = 0.70   # acks=all MB/s vs the disk's fdatasync'd MB/s at the same write size
T_LAT_FACTOR = 2.0       # acks=all p99 <= 2x the disk's fdatasync p99
T_REDIS_FACTOR = 3.0     # 100 B msgs/s >= 3x Redis XADD
T_RSS_MIB = 64.0         # rilld RSS with 1,000 partitions
T_RSS_GROWTH = 1.10      # RSS after 1 GB stored <= 1.1 x RSS after 100 MB


def die(msg):
    sys.stderr.write("bench: error: %s\n" % msg)
    sys.exit(1)


def note(msg):
    sys.stderr.write("bench: %s\n" % msg)
    sys.stderr.flush()


# ---- rilld process -------------------------------------------------------------
class Rilld:
    def __init__(self, build, data_parent, keep, tag="rill-bench-"):
        self.exe = os.path.join(build, "rilld")
        if not os.access(self.exe, os.X_OK):
            die("%s not found or not executable (build it first: make build)" % self.exe)
        self.data_dir = tempfile.mkdtemp(prefix=tag, dir=data_parent)
        self.logs = os.path.join(self.data_dir, "logs")
        self.keep = keep
        self.port = free_port()
        self.bootstrap = "127.0.0.1:%d" % self.port
        self.log_path = os.path.join(self.data_dir, "rilld.log")
        self.proc = None

    def start(self):
        os.makedirs(self.logs)
        cmd = [self.exe, "--listeners", "PLAINTEXT://%s" % self.bootstrap, "--log.dirs", self.logs]
        note("starting %s" % " ".join(cmd))
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                die("rilld exited with status %s before accepting connections; its log:\n%s"
                    % (self.proc.returncode, self.log_tail()))
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        die("rilld did not accept connections on %s within 20 s; its log:\n%s" % (self.bootstrap, self.log_tail()))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return "(no log)"

    def cpu_seconds(self, split=False):
        return proc_cpu_seconds(self.proc.pid, split)

    def mem_kb(self):
        """VmRSS, VmHWM, RssAnon, RssFile in KiB."""
        out = {}
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                k = line.split(":", 1)[0]
                if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                    out[k] = int(line.split()[1])
        return out

    def peak_rss_kb(self):
        return self.mem_kb().get("VmHWM", 0)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                note("rilld did not stop within 30 s of SIGTERM; killing it")
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if not self.keep:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        elif os.path.isdir(self.data_dir):
            note("data kept in %s" % self.data_dir)


def proc_cpu_seconds(pid, split=False):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # after the comm field: state is fields[0], utime is field 14 overall -> [11], stime [12]
    u, s = int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK
    return (u, s) if split else u + s


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- running programs ------------------------------------------------------------
CHILDREN = []  # processes running now, killed if the bench is interrupted


def kill_children():
    for proc in list(CHILDREN):
        if proc.poll() is None:
            try:
                proc.kill()
                proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass


def run_prog(argv, timeout=RUN_TIMEOUT_S):
    """Runs argv; returns (exit status, stdout, stderr, child CPU seconds)."""
    out_f = tempfile.TemporaryFile()
    err_f = tempfile.TemporaryFile()
    proc = subprocess.Popen(argv, stdout=out_f, stderr=err_f, stdin=subprocess.DEVNULL)
    CHILDREN.append(proc)
    deadline = time.monotonic() + timeout
    status, ru = None, None
    while True:
        pid, st, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            status = os.waitstatus_to_exitcode(st)
            break
        if time.monotonic() > deadline:
            proc.kill()
            _, st, ru = os.wait4(proc.pid, 0)
            status = "timeout"
            break
        time.sleep(0.02)
    proc.returncode = status if isinstance(status, int) else -9  # reaped by wait4 already
    CHILDREN.remove(proc)
    out_f.seek(0)
    err_f.seek(0)
    out = out_f.read().decode("utf-8", "replace")
    err = err_f.read().decode("utf-8", "replace")
    return status, out, err, ru.ru_utime + ru.ru_stime


def run_rill(rill, args, timeout=RUN_TIMEOUT_S):
    return run_prog([rill] + args, timeout)


def last_json(out):
    for line in reversed(out.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    return None


# ---- counting rilld's syncs with perf (optional) -----------------------------------
SYNC_EVENTS = ["syscalls:sys_enter_fdatasync", "syscalls:sys_enter_fsync", "syscalls:sys_enter_syncfs"]


def perf_can_count():
    perf = shutil.which("perf")
    if not perf:
        return None
    try:
        r = subprocess.run([perf, "stat", "-x,", "-e", ",".join(SYNC_EVENTS), "true"], capture_output=True,
                           text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode != 0 or "not supported" in r.stderr or "<not" in r.stderr:
        return None
    return perf


class SyncCounter:
    """`perf stat` attached to rilld counting fdatasync/fsync/syncfs calls."""

    def __init__(self, perf, pid):
        self.proc = None
        if not perf:
            return
        self.out = tempfile.NamedTemporaryFile(prefix="bench-perfstat-", suffix=".csv", delete=False)
        self.out.close()
        self.proc = subprocess.Popen([perf, "stat", "-x,", "-o", self.out.name, "-e", ",".join(SYNC_EVENTS),
                                      "-p", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        CHILDREN.append(self.proc)
        time.sleep(0.3)  # let it attach

    def stop(self):
        """Returns {event: count} or None."""
        if not self.proc:
            return None
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        CHILDREN.remove(self.proc)
        counts = {}
        try:
            with open(self.out.name) as f:
                for line in f:
                    parts = line.strip().split(",")
                    if len(parts) >= 3 and parts[2] in SYNC_EVENTS:
                        try:
                            counts[parts[2]] = int(parts[0])
                        except ValueError:
                            pass
        finally:
            os.unlink(self.out.name)
        return counts if counts else None


class SyncTrace:
    """`perf record` of rilld's fdatasync/fsync/syncfs entries and exits:
    every call's start and end, to compare rilld's own fdatasync latency with
    the ack latency its sync timeline implies."""

    EVENTS = ["syscalls:sys_enter_fdatasync", "syscalls:sys_exit_fdatasync", "syscalls:sys_enter_fsync",
              "syscalls:sys_exit_fsync", "syscalls:sys_enter_syncfs", "syscalls:sys_exit_syncfs"]

    def __init__(self, perf, pid):
        self.perf = perf
        fd, self.path = tempfile.mkstemp(prefix="bench-synctrace-", suffix=".data")
        os.close(fd)
        self.proc = subprocess.Popen([perf, "record", "-q", "-o", self.path, "-e", ",".join(self.EVENTS),
                                      "-p", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        CHILDREN.append(self.proc)
        time.sleep(0.5)  # let it attach

    def stop(self):
        """Returns {"counts": {event: n}, "calls": [(name, start_s, end_s)]} or None."""
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        CHILDREN.remove(self.proc)
        try:
            r = subprocess.run([self.perf, "script", "-i", self.path, "-F", "tid,time,event"], capture_output=True,
                               text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return None
        finally:
            os.unlink(self.path)
        open_calls, calls, counts = {}, [], {}
        for line in r.stdout.splitlines():
            p = line.split()
            if len(p) < 3:
                continue
            try:
                t = float(p[1].rstrip(":"))
            except ValueError:
                continue
            ev = p[2].rstrip(":").split(":")[-1]          # sys_enter_fdatasync
            kind, name = ev.split("_")[1], ev.split("_", 2)[-1]
            if kind == "enter":
                counts["syscalls:" + ev] = counts.get("syscalls:" + ev, 0) + 1
                open_calls[(p[0], name)] = t
            elif (p[0], name) in open_calls:
                calls.append((name, open_calls.pop((p[0], name)), t))
        return {"counts": counts, "calls": calls} if calls else None


def pct(sorted_vals, p):
    if not sorted_vals:
        return None
    return sorted_vals[min(len(sorted_vals) - 1, int(p / 100.0 * len(sorted_vals)))]


def implied_ack_latency(calls, rate):
    """Ack latency (ms) that rilld's sync timeline alone implies for records
    arriving evenly at `rate`/s: a record appended at t is acknowledged when
    the first fdatasync that starts after t ends. Returns (p50, p99, max)."""
    syncs = sorted((s, e) for name, s, e in calls if name in ("fdatasync", "syncfs"))
    if len(syncs) < 10:
        return None
    import bisect
    starts = [s for s, _ in syncs]
    lat, t, step = [], syncs[0][0], 1.0 / rate
    end = syncs[-1][0]
    while t < end:
        i = bisect.bisect_right(starts, t)
        if i >= len(syncs):
            break
        lat.append((syncs[i][1] - t) * 1000)
        t += step
    lat.sort()
    return pct(lat, 50), pct(lat, 99), lat[-1]


# ---- what a topic left on disk -------------------------------------------------------
def topic_log_stats(logs_dir, topic):
    """(bytes in .log files, record batches, partitions with a non-empty .log)."""
    pat = re.compile(re.escape(topic) + r"-\d+$")
    total = batches = nonempty = 0
    try:
        names = os.listdir(logs_dir)
    except OSError:
        return 0, 0, 0
    for d in names:
        if not pat.match(d):
            continue
        pdir = os.path.join(logs_dir, d)
        pbytes = 0
        for fn in sorted(os.listdir(pdir)):
            if not fn.endswith(".log"):
                continue
            path = os.path.join(pdir, fn)
            size = os.path.getsize(path)
            pbytes += size
            with open(path, "rb") as f:  # walk the batch headers: base offset (8), batch length (4)
                pos = 0
                while pos + 12 <= size:
                    f.seek(pos)
                    hdr = f.read(12)
                    if len(hdr) < 12:
                        break
                    blen = int.from_bytes(hdr[8:12], "big")
                    if blen <= 0:
                        break
                    batches += 1
                    pos += 12 + blen
        total += pbytes
        nonempty += pbytes > 0
    return total, batches, nonempty


# ---- the rows ------------------------------------------------------------------------
class Row:
    def __init__(self, scenario):
        self.scenario = scenario
        self.rps = self.mbps = self.p50 = self.p99 = self.pmax = None
        self.broker_cpu_gb = self.client_cpu_gb = self.ratio = None
        self.batch = None       # average record batch (or disk write) bytes
        self.per_sync = None    # .log bytes per fdatasync/syncfs call of rilld
        self.disk_mbps = None   # .log bytes per second (acks=all rows)
        self.rss_mb = self.hwm_mb = None
        self.cores = None       # (rilld + client CPU seconds) / wall seconds of the run
        self.sys_share = None   # rilld's system CPU / its total CPU
        self.sync_trace = None  # [(start, end)] of rilld's fdatasync calls (SyncTrace)
        self.error = None
        self.summary = None
        self.disk = None        # matching disk baseline row
        self.extra = ""


def measured(rilld, rill, args, value_bytes_fn, row, perf=None, trace=False):
    """Runs one perf command with CPU sampling around it; fills row and
    returns the parsed JSON summary (or None). perf: count rilld's sync
    calls (trace: record each one's start and end instead)."""
    if not rilld.alive():
        row.error = "rilld not running"
        return None
    counter = (SyncTrace if trace else SyncCounter)(perf, rilld.proc.pid) if perf else None
    prof = None
    want = os.environ.get("RILL_BENCH_PROFILE")
    if want and want in row.scenario and shutil.which("perf"):
        out_path = os.path.abspath("perf-%s.data" % re.sub(r"[^A-Za-z0-9=.]+", "_", row.scenario))
        note("profiling rilld during '%s' -> %s" % (row.scenario, out_path))
        prof = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-g", "-p", str(rilld.proc.pid),
                                 "-o", out_path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        CHILDREN.append(prof)
        time.sleep(0.5)
    u0, s0 = rilld.cpu_seconds(split=True)
    b0 = u0 + s0
    w0 = time.monotonic()
    status, out, err, client_cpu = run_rill(rill, args)
    wall = time.monotonic() - w0
    if rilld.alive():
        u1, s1 = rilld.cpu_seconds(split=True)
        b1 = u1 + s1
        row.sys_share = (s1 - s0) / (b1 - b0) if b1 > b0 else None
    syncs = counter.stop() if counter else None
    if prof:
        prof.send_signal(signal.SIGINT)
        prof.wait()
        CHILDREN.remove(prof)
    if not rilld.alive():
        row.error = "rilld died"
        note("rilld died during %s; its log:\n%s" % (row.scenario, rilld.log_tail()))
        return None
    mem = rilld.mem_kb()
    row.rss_mb, row.hwm_mb = mem["VmRSS"] / 1024.0, mem["VmHWM"] / 1024.0
    summary = last_json(out)
    row.summary = summary
    row.syncs = syncs
    if status != 0 or summary is None:
        row.error = "exit %s" % status
        note("%s failed (exit %s):\n%s" % (row.scenario, status, err.strip()[-2000:]))
        if summary is None:
            return None
    nbytes = value_bytes_fn(summary)
    if nbytes > 0:
        row.broker_cpu_gb = (b1 - b0) / (nbytes / GB)
        row.client_cpu_gb = client_cpu / (nbytes / GB)
    if client_cpu > 0:
        row.ratio = (b1 - b0) / client_cpu
    if wall > 0:
        row.cores = (b1 - b0 + client_cpu) / wall
    return summary


def fill_disk_stats(rilld, topic, row, elapsed_s):
    nbytes, batches, _ = topic_log_stats(rilld.logs, topic)
    if batches:
        row.batch = nbytes / batches
    if elapsed_s and elapsed_s > 0:
        row.disk_mbps = nbytes / MiB / elapsed_s
    if getattr(row, "syncs", None) and "calls" in row.syncs:
        row.sync_trace = row.syncs["calls"]
        row.syncs = row.syncs["counts"]
    if getattr(row, "syncs", None):
        n = sum(row.syncs.values())
        if n:
            row.per_sync = nbytes / n
    return nbytes


def create_topic(rill, bootstrap, name, partitions, configs=()):
    args = ["topic", "create", name, "-p", str(partitions), "-b", bootstrap]
    for c in configs:
        args += ["-c", c]
    status, out, err, _ = run_rill(rill, args, 120)
    if status != 0:
        die("cannot create topic %s: %s" % (name, err.strip()))


def delete_topic(rill, bootstrap, name):
    status, _, err, _ = run_rill(rill, ["topic", "delete", name, "-b", bootstrap], 60)
    if status != 0:
        note("warning: could not delete topic %s: %s" % (name, err.strip()))


def disk_baseline(disk_exe, directory, sizes, seconds, labels=None, extra=()):
    """Runs bench_disk_sync; returns rows (one per size)."""
    sizes = [int(round(s)) for s in sizes]
    rows = []
    status, out, err, _ = run_prog([disk_exe, directory, "--seconds", str(seconds), "--json"] + list(extra)
                                   + [str(s) for s in sizes], timeout=60 + seconds * len(sizes) * 3)
    got = {}
    for line in out.splitlines():
        if line.startswith("{"):
            j = json.loads(line)
            got[j["write_bytes"]] = j
    for i, s in enumerate(sizes):
        label = labels[i] if labels else "disk fdatasync every %s" % human_bytes(s)
        r = Row(label)
        j = got.get(s)
        if not j:
            r.error = "disk_sync exit %s: %s" % (status, err.strip()[-300:])
            note(r.error)
        else:
            r.summary = j
            r.mbps, r.batch = j["mb_per_s"], s
            r.p50, r.p99, r.pmax = j["sync_p50_ms"], j["sync_p99_ms"], j["sync_max_ms"]
            r.rps = j["writes"] / j["seconds"]
            r.broker_cpu_gb = j.get("cpu_s_per_gb")
        rows.append(r)
    return rows


def human_bytes(n):
    if n >= MiB and n % MiB == 0:
        return "%d MiB" % (n // MiB)
    if n >= KiB and n % KiB == 0:
        return "%d KiB" % (n // KiB)
    if n >= KiB:
        return "%.1f KiB" % (n / KiB)
    return "%d B" % n


# ---- Redis Streams baseline ----------------------------------------------------------
def redis_xadd(quick, data_parent):
    """Returns a Row with msgs/s of XADD 100 B, or None when redis is missing."""
    server, bench = shutil.which("redis-server"), shutil.which("redis-benchmark")
    if not server or not bench:
        return None
    row = Row("redis XADD 100B -P %d (in memory)" % REDIS["pipeline"])
    tmp = tempfile.mkdtemp(prefix="rill-bench-redis-", dir=data_parent)
    port = free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", tmp, "--daemonize", "no", "--protected-mode", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    CHILDREN.append(proc)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                row.error = "redis-server did not start"
                return row
            time.sleep(0.05)
        value = ("v" * 100)
        n = REDIS["requests"][1 if quick else 0]
        c0 = proc_cpu_seconds(proc.pid)
        status, out, err, client_cpu = run_prog(
            [bench, "-h", "127.0.0.1", "-p", str(port), "-n", str(n), "-c", str(REDIS["clients"]),
             "-P", str(REDIS["pipeline"]), "--csv", "XADD", "bench-stream", "*", "f", value])
        c1 = proc_cpu_seconds(proc.pid)
        rps = None
        for line in out.splitlines():
            cells = [c.strip('"') for c in line.split(",")]
            if len(cells) >= 2 and cells[0].upper().startswith("XADD"):
                try:
                    rps = float(cells[1])
                except ValueError:
                    pass
        if status != 0 or rps is None:
            row.error = "redis-benchmark exit %s: %s" % (status, (err or out).strip()[-300:])
            note(row.error)
            return row
        row.rps, row.mbps = rps, rps * 100 / MiB
        nbytes = n * 100
        row.broker_cpu_gb = (c1 - c0) / (nbytes / GB)  # redis-server's CPU in the "rilld" column
        row.client_cpu_gb = client_cpu / (nbytes / GB)
        row.ratio = (c1 - c0) / client_cpu if client_cpu > 0 else None
        return row
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        CHILDREN.remove(proc)
        shutil.rmtree(tmp, ignore_errors=True)


# ---- memory with 1,000 partitions ---------------------------------------------------
def memory_runs(build, data_parent, keep, quick):
    rill = os.path.join(build, "rill")
    q = 1 if quick else 0
    rows = []
    rilld = Rilld(build, data_parent, keep, tag="rill-bench-mem-")
    try:
        rilld.start()
        bs = rilld.bootstrap
        np_ = MEM["partitions"]
        r = Row("mem: fresh rilld, no topics")
        m = rilld.mem_kb()
        r.rss_mb, r.hwm_mb = m["VmRSS"] / 1024.0, m["VmHWM"] / 1024.0
        rows.append(r)

        t0 = time.monotonic()
        create_topic(rill, bs, "mem-parts", np_)
        note("created a %d-partition topic in %.1f s" % (np_, time.monotonic() - t0))
        n = MEM["fill_records"][q]
        r = Row("mem: %d partitions, %d x 100B in each" % (np_, n // np_))
        s = measured(rilld, rill, ["perf", "produce", "mem-parts", "--num-records", str(n), "--record-size", "100",
                                   "--acks", "1", "--json", "-b", bs], lambda j: j["records"] * 100, r)
        if s:
            r.rps, r.mbps = s["records_per_s"], s["mb_per_s"]
        _, _, nonempty = topic_log_stats(rilld.logs, "mem-parts")
        r.extra = "%d/%d partitions non-empty" % (nonempty, np_)
        if nonempty < np_:
            r.error = "only %d of %d partitions have data" % (nonempty, np_)
        time.sleep(0.5)
        m = rilld.mem_kb()
        r.rss_mb, r.hwm_mb = m["VmRSS"] / 1024.0, m["VmHWM"] / 1024.0
        r.mem = m
        rows.append(r)
        r_parts = r

        create_topic(rill, bs, "mem-data", 6, ["segment.bytes=%d" % MEM["segment_bytes"]])
        stored = 0
        stages = []
        for mb in (MEM["small_mb"][q], MEM["big_mb"][q]):
            n = (mb * 1_000_000 - stored) // 1024
            r = Row("mem: + %d MB stored (1KiB, p=6, 16 MiB segments)" % mb)
            note("%s: %d records" % (r.scenario, n))
            s = measured(rilld, rill, ["perf", "produce", "mem-data", "--num-records", str(n), "--record-size",
                                       "1024", "--acks", "1", "--json", "-b", bs], lambda j: j["records"] * 1024, r)
            if s:
                r.rps, r.mbps = s["records_per_s"], s["mb_per_s"]
                stored += s["records"] * 1024
            time.sleep(0.5)
            m = rilld.mem_kb()
            r.rss_mb, r.hwm_mb = m["VmRSS"] / 1024.0, m["VmHWM"] / 1024.0
            r.mem = m
            segs = sum(1 for d in os.listdir(rilld.logs) if d.startswith("mem-data-")
                       for f in os.listdir(os.path.join(rilld.logs, d)) if f.endswith(".log"))
            r.extra = "%d segments in mem-data" % segs
            rows.append(r)
            stages.append(r)
        n_total = stored // 1024
        r = Row("mem: after reading the %d MB back" % MEM["big_mb"][q])
        s = measured(rilld, rill, ["perf", "consume", "mem-data", "--num-records", str(n_total), "--json", "-b", bs],
                     lambda j: j["records"] * 1024, r)
        if s:
            r.rps, r.mbps = s["records_per_s"], s["mb_per_s"]
        time.sleep(0.5)
        m = rilld.mem_kb()
        r.rss_mb, r.hwm_mb = m["VmRSS"] / 1024.0, m["VmHWM"] / 1024.0
        r.mem = m
        rows.append(r)
        stages.append(r)
        return rows, r_parts, stages
    finally:
        rilld.stop()


# ---- output --------------------------------------------------------------------------
def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def print_grid(cols, table, right_from=1):
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(cols)]
    print("| " + " | ".join(c.ljust(widths[i]) for i, c in enumerate(cols)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for t in table:
        print("| " + " | ".join((t[i].ljust(widths[i]) if i < right_from else t[i].rjust(widths[i]))
                                for i in range(len(cols))) + " |")


LEGEND = """\
produce rows: full speed, so p50/p99/max (produce() to ack) include client-side queueing, except the
  '@N/s linger=0' row: fixed rate, linger.ms=0, so broker + fsync (plus up to 1/N s of the tool's pacing
  sleep before it polls for the delivery report). e2e: produce() to consumer receipt at a fixed rate
  (linger.ms=5). consume rows read back the acks=1 topics produced above.
disk rows: bench_disk_sync appending 'batch KiB' writes with fdatasync after each; p50/p99/max are
  fdatasync latencies, msgs/s is writes per second, and 'rilld CPU-s/GB' is bench_disk_sync's own CPU
  per 10^9 bytes (the kernel's cost of buffered writes + the writeback fdatasync starts in the caller:
  the floor under rilld's own CPU per GB).
rilld's own fdatasyncs: traced with perf during the @N/s row; 'implied' = for records arriving evenly,
  the time until the end of the first of those syncs that starts after the record: the ack latency
  the disk alone would give with rilld's group commit.
redis row: redis-benchmark msgs/s; its CPU columns are redis-server's and redis-benchmark's.
mem rows: a second fresh rilld; RSS = VmRSS now, peak = VmHWM.
MB = 2^20 bytes of record values; batch KiB = average record batch in the .log files; KiB/sync = .log
  bytes per fdatasync/fsync/syncfs call of rilld (perf stat on syscall tracepoints); CPU-s/GB = CPU
  seconds per 10^9 bytes of values (large for e2e: little data, fixed per-second costs); rilld sys =
  system (kernel) share of rilld's CPU; cores busy = (rilld + client CPU s) / wall s of the run, out
  of %d: near it, the machine is saturated."""


def print_table(rows):
    cols = ["scenario", "msgs/s", "MB/s", "batch KiB", "KiB/sync", "p50 ms", "p99 ms", "max ms", "rilld CPU-s/GB",
            "rilld sys", "client CPU-s/GB", "rilld/client CPU", "cores busy", "rilld RSS MB", "peak RSS MB"]
    table = []
    for r in rows:
        if r.error and r.rps is None and r.rss_mb is None:
            table.append([r.scenario, "FAILED: " + r.error[:60]] + [""] * (len(cols) - 2))
            continue
        table.append([r.scenario + (" (!%s)" % r.error if r.error else ""), fmt(r.rps, ",.0f"), fmt(r.mbps, ".1f"),
                      fmt(None if r.batch is None else r.batch / KiB, ".1f"),
                      fmt(None if r.per_sync is None else r.per_sync / KiB, ".1f"),
                      fmt(r.p50, ".2f"), fmt(r.p99, ".2f"), fmt(r.pmax, ".2f"), fmt(r.broker_cpu_gb, ".2f"),
                      "-" if r.sys_share is None else "%.0f%%" % (r.sys_share * 100), fmt(r.client_cpu_gb, ".2f"), fmt(r.ratio, ".2f"), fmt(r.cores, ".2f"), fmt(r.rss_mb, ".1f"),
                      fmt(r.hwm_mb, ".1f")])
    print_grid(cols, table)
    print()
    print(LEGEND % (os.cpu_count() or 0))
    notes = ["  %s: %s" % (r.scenario, r.extra) for r in rows if r.extra]
    if notes:
        print("notes:")
        print("\n".join(notes))
    sys.stdout.flush()


class Target:
    def __init__(self, name, compared, measured, limit, ratio, ok, detail=""):
        self.name, self.compared, self.measured, self.limit = name, compared, measured, limit
        self.ratio, self.ok, self.detail = ratio, ok, detail


def print_targets(targets):
    cols = ["target (issue 2)", "compared row", "measured", "limit", "ratio", "result"]
    table = []
    for t in targets:
        table.append([t.name, t.compared, t.measured, t.limit, fmt(t.ratio, ".2f"),
                      "info" if t.ok is None and t.ratio is not None else
                      "-" if t.ok is None else ("PASS" if t.ok else "MISS")])
    print_grid(cols, table, right_from=2)
    print()
    print("ratio = measured / limit: a <= target passes at ratio <= 1, a >= target at ratio >= 1.")
    passed = sum(1 for t in targets if t.ok)
    missed = sum(1 for t in targets if t.ok is False)
    unknown = sum(1 for t in targets if t.ok is None and t.ratio is None)
    print("%d PASS, %d MISS%s" % (passed, missed, (", %d not measured" % unknown) if unknown else ""))
    sys.stdout.flush()


def build_targets(prod_rows, lat_row, consume_rows, disk_fixed, redis_row, redis_rps, redis_src, mem_parts,
                  mem_stages, lat_extra=()):
    T = []
    for r in prod_rows:  # CPU per GB produced, acks=1
        if "acks=1" in r.scenario:
            v = r.broker_cpu_gb
            T.append(Target("rilld CPU-s/GB produced, acks=1 <= %.1f" % T_CPU_PRODUCE, r.scenario, fmt(v, ".2f"),
                            "%.1f" % T_CPU_PRODUCE, None if v is None else v / T_CPU_PRODUCE,
                            None if v is None else v <= T_CPU_PRODUCE))
    for r in consume_rows:
        v = r.broker_cpu_gb
        T.append(Target("rilld CPU-s/GB consumed <= %.1f" % T_CPU_CONSUME, r.scenario, fmt(v, ".2f"),
                        "%.1f" % T_CPU_CONSUME, None if v is None else v / T_CPU_CONSUME,
                        None if v is None else v <= T_CPU_CONSUME))
    for r in prod_rows:
        v = r.ratio
        T.append(Target("rilld CPU <= %d%% of producing client CPU" % (T_CPU_RATIO * 100), r.scenario,
                        fmt(None if v is None else v * 100, ".0f") + "%", "%d%%" % (T_CPU_RATIO * 100),
                        None if v is None else v / T_CPU_RATIO, None if v is None else v <= T_CPU_RATIO))
    for r in prod_rows:  # acks=all bandwidth vs the disk at the same write size
        if "acks=all" not in r.scenario:
            continue
        d = r.disk
        if r.disk_mbps is None or d is None or d.mbps is None:
            T.append(Target("acks=all >= %d%% of disk fdatasync MB/s" % (T_DISK_FRACTION * 100), r.scenario,
                            "-", "-", None, None))
            continue
        frac = r.disk_mbps / d.mbps
        T.append(Target("acks=all >= %d%% of disk fdatasync MB/s at the batch size" % (T_DISK_FRACTION * 100),
                        "%s vs '%s'" % (r.scenario, d.scenario),
                        "%.0f MB/s on disk = %.0f%%" % (r.disk_mbps, frac * 100),
                        ">= %.0f MB/s (%d%% of %.0f)" % (d.mbps * T_DISK_FRACTION, T_DISK_FRACTION * 100, d.mbps),
                        frac / T_DISK_FRACTION, frac >= T_DISK_FRACTION))
    if lat_row is not None:
        d = lat_row.disk
        if lat_row.p99 is None or d is None or d.p99 is None:
            T.append(Target("acks=all p99 ack latency <= 2x disk fdatasync p99", lat_row.scenario, "-", "-", None,
                            None))
        else:
            lim = T_LAT_FACTOR * d.p99
            T.append(Target("acks=all p99 ack latency <= 2x disk fdatasync p99",
                            "%s vs '%s'" % (lat_row.scenario, d.scenario), "%.2f ms" % lat_row.p99,
                            "%.2f ms (2 x %.2f)" % (lim, d.p99), lat_row.p99 / lim, lat_row.p99 <= lim))
            own = [r for r in lat_extra if r.scenario.startswith("rilld's own")]
            imp = [r for r in lat_extra if r.scenario.startswith("ack latency implied")]
            if own and own[0].p99:
                lim = T_LAT_FACTOR * own[0].p99
                T.append(Target("  info: vs rilld's own fdatasync p99 in that run", "'%s'" % own[0].scenario,
                                "%.2f ms" % lat_row.p99, "%.2f ms (2 x %.2f)" % (lim, own[0].p99),
                                lat_row.p99 / lim, None))
            if imp and imp[0].p99:
                T.append(Target("  info: p99 its sync timeline alone implies", "'%s'" % imp[0].scenario,
                                "%.2f ms" % lat_row.p99, "%.2f ms" % imp[0].p99, lat_row.p99 / imp[0].p99, None))
    best = None
    for r in prod_rows:
        if r.scenario.startswith("produce 100B") and r.rps and "@" not in r.scenario:
            if best is None or r.rps > best.rps:
                best = r
    if best is not None and redis_rps:
        lim = T_REDIS_FACTOR * redis_rps
        T.append(Target("100B msgs/s >= 3x Redis Streams XADD", "best 100B: %s vs %s" % (best.scenario, redis_src),
                        "{:,.0f}/s".format(best.rps), "{:,.0f}/s (3 x {:,.0f})".format(lim, redis_rps),
                        best.rps / lim, best.rps >= lim))
    if mem_parts is not None and mem_parts.hwm_mb is not None:
        T.append(Target("rilld RSS with 1,000 partitions <= 64 MiB (peak)", mem_parts.scenario,
                        "%.1f MiB (VmHWM; VmRSS %.1f)" % (mem_parts.hwm_mb, mem_parts.rss_mb), "64 MiB",
                        mem_parts.hwm_mb / T_RSS_MIB, mem_parts.hwm_mb <= T_RSS_MIB and not mem_parts.error))
    if mem_stages and len(mem_stages) >= 2 and all(r.rss_mb for r in mem_stages):
        small, big = mem_stages[0], mem_stages[1]
        lim = small.rss_mb * T_RSS_GROWTH
        T.append(Target("RSS independent of data stored (<= +10%)", "'%s' vs '%s'" % (big.scenario, small.scenario),
                        "%.1f MiB (%+.1f)" % (big.rss_mb, big.rss_mb - small.rss_mb),
                        "%.1f MiB (1.1 x %.1f)" % (lim, small.rss_mb), big.rss_mb / lim, big.rss_mb <= lim))
        if len(mem_stages) >= 3:
            rd = mem_stages[2]
            T.append(Target("  (same, after reading it all back)", "'%s' vs '%s'" % (rd.scenario, small.scenario),
                            "%.1f MiB (%+.1f)" % (rd.rss_mb, rd.rss_mb - small.rss_mb),
                            "%.1f MiB" % lim, rd.rss_mb / lim, rd.rss_mb <= lim))
    return T


def machine_header(build, args, data_parent, elapsed):
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    fs = "?"
    try:
        fs = subprocess.run(["df", "--output=fstype,source", data_parent], capture_output=True,
                            text=True).stdout.split("\n")[1].split()
        fs = "%s on %s" % (fs[0], fs[1])
    except (OSError, IndexError):
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip() or "?"
    except OSError:
        commit = "?"
    load = "?"
    try:
        load = " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        pass
    return ("bench: %s  commit %s  %s, %d cores, %s %s, data dir %s%s\n"
            "command: bench/run.sh %s%s   (took %.0f s; load average at start %s)\n" % (
                datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), commit, cpu, os.cpu_count() or 0,
                platform.system(), platform.release(), fs, "  (QUICK)" if args.quick else "", build,
                " --quick" if args.quick else "", elapsed, args.load_at_start))


def main():
    ap = argparse.ArgumentParser(description="Rill benchmark tables (make bench)")
    ap.add_argument("build", nargs="?", default="build")
    ap.add_argument("--quick", action="store_true", help="small runs, to check the script")
    ap.add_argument("--keep", action="store_true", help="keep the data directories")
    args = ap.parse_args()
    try:
        args.load_at_start = " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        args.load_at_start = "?"
    q = 1 if args.quick else 0

    build = os.path.abspath(args.build)
    rill = os.path.join(build, "rill")
    disk_exe = os.path.join(build, "bench_disk_sync")
    for exe in (rill, disk_exe):
        if not os.access(exe, os.X_OK):
            die("%s not found or not executable (build it first: make build)" % exe)
    data_parent = os.path.abspath(os.environ.get("RILL_BENCH_DIR") or build)
    atexit.register(kill_children)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda s, f: sys.exit(128 + s))
    perf = perf_can_count()
    if not perf:
        note("perf cannot count syscall tracepoints here: no KiB/sync column")
    disk_s = DISK_SECONDS[q]
    t_start = time.monotonic()

    rilld = Rilld(build, data_parent, args.keep)
    atexit.register(rilld.stop)
    rilld.start()
    bs = rilld.bootstrap
    prod_rows, consume_rows, disk_rows = [], [], []
    kept = {}

    # 1. full-speed produce runs (+ the disk at each acks=all run's batch size)
    for size, acks, parts in PRODUCE_RUNS:
        n = RECORDS[size][q]
        topic = "bench-%d-acks%s-p%d" % (size, acks, parts)
        label = "produce %s acks=%s p=%d" % ("100B" if size == 100 else "1KiB", acks, parts)
        row = Row(label)
        prod_rows.append(row)
        create_topic(rill, bs, topic, parts)
        note("%s: %d records" % (label, n))
        s = measured(rilld, rill, ["perf", "produce", topic, "--num-records", str(n), "--record-size", str(size),
                                   "--acks", acks, "--json", "-b", bs],
                     lambda j, size=size: j["records"] * size, row, perf if acks == "all" else None)
        if s:
            row.rps, row.mbps = s["records_per_s"], s["mb_per_s"]
            row.p50, row.p99, row.pmax = s["latency_p50_ms"], s["latency_p99_ms"], s["latency_max_ms"]
            fill_disk_stats(rilld, topic, row, s["elapsed_s"])
        if (size, acks, parts) in CONSUME_FROM and s and not row.error:
            kept[(size, acks, parts)] = (topic, s["records"], size)  # read back below
        else:
            delete_topic(rill, bs, topic)  # keep the disk use bounded
        if not rilld.alive():
            break
        if acks == "all" and row.batch:
            d = disk_baseline(disk_exe, rilld.data_dir, [row.batch], disk_s,
                              ["disk fdatasync every %s (batch of '%s')" % (human_bytes(int(round(row.batch))),
                                                                           label)])[0]
            row.disk = d
            disk_rows.append(d)

    # 2. ack latency at a moderate fixed rate, linger.ms=0
    lat_row = None
    lat_extra = []  # rilld's own fdatasync latency and the ack latency it implies
    if rilld.alive():
        topic = "bench-latency"
        n = LAT["records"][q]
        label = "produce 1KiB acks=all p=1 @%d/s linger=0" % LAT["rate"]
        lat_row = Row(label)
        create_topic(rill, bs, topic, LAT["partitions"])
        note("%s: %d records" % (label, n))
        s = measured(rilld, rill, ["perf", "produce", topic, "--num-records", str(n), "--record-size",
                                   str(LAT["size"]), "--throughput", str(LAT["rate"]), "--acks", "all",
                                   "-X", "linger.ms=0", "--json", "-b", bs],
                     lambda j: j["records"] * LAT["size"], lat_row, perf, trace=True)
        if s:
            lat_row.rps, lat_row.mbps = s["records_per_s"], s["mb_per_s"]
            lat_row.p50, lat_row.p99, lat_row.pmax = s["latency_p50_ms"], s["latency_p99_ms"], s["latency_max_ms"]
            fill_disk_stats(rilld, topic, lat_row, s["elapsed_s"])
        delete_topic(rill, bs, topic)
        if lat_row.sync_trace:
            d = sorted((e - st) * 1000 for name, st, e in lat_row.sync_trace if name == "fdatasync")
            if d:
                r = Row("rilld's own fdatasyncs during the @%d/s row" % LAT["rate"])
                r.rps = len(d) / max(1e-9, lat_row.summary["elapsed_s"]) if lat_row.summary else None
                r.p50, r.p99, r.pmax = pct(d, 50), pct(d, 99), d[-1]
                lat_extra.append(r)
            imp = implied_ack_latency(lat_row.sync_trace, LAT["rate"])
            if imp:
                r = Row("ack latency implied by those syncs alone")
                r.p50, r.p99, r.pmax = imp
                lat_extra.append(r)
        if lat_row.batch:
            d = disk_baseline(disk_exe, rilld.data_dir, [lat_row.batch], disk_s,
                              ["disk fdatasync every %s (batch of the @%d/s row)" % (
                                  human_bytes(int(round(lat_row.batch))), LAT["rate"])])[0]
            lat_row.disk = d
            disk_rows.append(d)

    # 3. end-to-end latency
    e2e_row = None
    if rilld.alive():
        topic = "bench-e2e"
        n = E2E["records"][q]
        label = "e2e %dB %d/s p=%d acks=all" % (E2E["size"], E2E["rate"], E2E["partitions"])
        e2e_row = Row(label)
        create_topic(rill, bs, topic, E2E["partitions"])
        note("%s: %d records" % (label, n))
        s = measured(rilld, rill, ["perf", "e2e", topic, "--rate", str(E2E["rate"]), "--num-records", str(n),
                                   "--record-size", str(E2E["size"]), "--acks", "all", "--json", "-b", bs],
                     lambda j: j["received"] * E2E["size"], e2e_row)
        if s:
            e2e_row.rps, e2e_row.mbps = s["send_rate"], s["send_rate"] * E2E["size"] / MiB
            e2e_row.p50, e2e_row.p99 = s["e2e_p50_ms"], s["e2e_p99_ms"]
            e2e_row.pmax = s.get("e2e_max_ms")
        delete_topic(rill, bs, topic)

    # 4. consume
    for key in CONSUME_FROM:
        size, acks, parts = key
        row = Row("consume %s p=%d" % ("100B" if size == 100 else "1KiB", parts))
        consume_rows.append(row)
        if key not in kept or not rilld.alive():
            row.error = "no produced topic to read"
            continue
        topic, n, size = kept[key]
        note("%s: %d records" % (row.scenario, n))
        s = measured(rilld, rill, ["perf", "consume", topic, "--num-records", str(n), "--json", "-b", bs],
                     lambda j, size=size: j["records"] * size, row)
        if s:
            row.rps, row.mbps = s["records_per_s"], s["mb_per_s"]
        delete_topic(rill, bs, topic)

    # 5. the disk at fixed write sizes
    note("disk baseline: %s" % ", ".join(human_bytes(s) for s in DISK_FIXED))
    disk_fixed = disk_baseline(disk_exe, rilld.data_dir, DISK_FIXED, disk_s)
    disk_fixed += disk_baseline(disk_exe, rilld.data_dir, [MiB], disk_s, ["disk write every 1 MiB, no fdatasync (<= 1 GiB)"],
                                ["--nosync", "--max-bytes", "1G"])
    main_rows = prod_rows + ([lat_row] if lat_row else []) + lat_extra + ([e2e_row] if e2e_row else []) \
        + consume_rows
    rilld_died = not rilld.alive()
    rilld.stop()

    # 6. Redis Streams XADD
    note("redis XADD baseline")
    redis_row = redis_xadd(args.quick, data_parent)
    if redis_row is not None and redis_row.rps:
        redis_rps, redis_src = redis_row.rps, "'%s'" % redis_row.scenario
    else:
        if redis_row is None:
            note("redis-server/redis-benchmark not installed (apt-get install redis-server redis-tools): "
                 "using the issue's %d msgs/s" % REDIS_FALLBACK_RPS)
        redis_rps, redis_src = REDIS_FALLBACK_RPS, "the issue's 550K/s (redis not installed/failed here)"

    # 7. memory
    note("memory: %d partitions, then data" % MEM["partitions"])
    mem_rows, mem_parts, mem_stages = memory_runs(build, data_parent, args.keep, args.quick)

    elapsed = time.monotonic() - t_start
    note("done in %.0f s" % elapsed)
    all_rows = main_rows + disk_rows + disk_fixed + ([redis_row] if redis_row else []) + mem_rows
    print(machine_header(args.build, args, data_parent, elapsed))
    print_table(all_rows)
    print()
    if redis_row is None:
        print("Redis: not installed here; the 3x target uses the issue's figure of %d msgs/s." % REDIS_FALLBACK_RPS)
        print()
    targets = build_targets(prod_rows, lat_row, consume_rows, disk_fixed, redis_row, redis_rps, redis_src,
                            mem_parts, mem_stages, lat_extra)
    print_targets(targets)
    failed = rilld_died or any(r.error for r in all_rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
