#!/usr/bin/python3
"""bench/run.py — the `make bench` table (called through bench/run.sh BUILD).

Starts a fresh rilld from BUILD on a free loopback port with a temporary data
directory, then drives it with `BUILD/rill perf`:
  - produce: 100-byte and 1 KiB records x acks=1/all x 1 and 6 partitions
  - e2e: end-to-end latency at a fixed moderate rate
  - consume: reads back one of the produced topics
For every run it samples rilld's CPU time (utime+stime from /proc/PID/stat)
before and after, rilld's peak RSS (VmHWM), and the perf client's own CPU time
(rusage of the child from wait4). It prints one table; paste it with the
header lines into bench/RESULTS.md.

Options: --quick (smaller runs, to check the script), --keep (keep the data
directory). Environment: RILL_BENCH_DIR (parent of the data directory;
default BUILD, i.e. a real disk rather than a tmpfs /tmp).
"""
import argparse
import atexit
import datetime
import json
import os
import platform
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

# (record size, acks, partitions); record counts below
PRODUCE_RUNS = [
    (size, acks, parts)
    for size in (100, 1024)
    for acks in ("1", "all")
    for parts in (1, 6)
]
# sized so each full run lasts a few seconds on a 2-core machine (about
# 300 MB of values for 100 B, 600 MB for 1 KiB; each topic is deleted after
# its run except the one read back by the consume run)
RECORDS = {100: (3_000_000, 50_000), 1024: (600_000, 10_000)}
E2E = {"rate": 5000, "records": 75_000, "quick_records": 5_000, "size": 100, "partitions": 6}


def die(msg):
    sys.stderr.write("bench: error: %s\n" % msg)
    sys.exit(1)


def note(msg):
    sys.stderr.write("bench: %s\n" % msg)
    sys.stderr.flush()


# ---- rilld process -------------------------------------------------------------
class Rilld:
    def __init__(self, build, data_parent, keep):
        self.exe = os.path.join(build, "rilld")
        if not os.access(self.exe, os.X_OK):
            die("%s not found or not executable (build it first: make build)" % self.exe)
        self.data_dir = tempfile.mkdtemp(prefix="rill-bench-", dir=data_parent)
        self.keep = keep
        self.port = free_port()
        self.bootstrap = "127.0.0.1:%d" % self.port
        self.log_path = os.path.join(self.data_dir, "rilld.log")
        self.proc = None

    def start(self):
        logs = os.path.join(self.data_dir, "logs")
        os.makedirs(logs)
        cmd = [self.exe, "--listeners", "PLAINTEXT://%s" % self.bootstrap, "--log.dirs", logs]
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

    def cpu_seconds(self):
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # after the comm field: state is fields[0], utime is field 14 overall -> [11], stime [12]
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def peak_rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                note("rilld did not stop within 10 s of SIGTERM; killing it")
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if not self.keep:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        else:
            note("data kept in %s" % self.data_dir)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- running the CLI -------------------------------------------------------------
CHILDREN = []  # the rill process running now, killed if the bench is interrupted


def kill_children():
    for proc in CHILDREN:
        if proc.returncode is None:
            try:
                proc.kill()
                os.waitpid(proc.pid, 0)
            except OSError:
                pass


def run_rill(rill, args, timeout=RUN_TIMEOUT_S):
    """Runs rill; returns (exit status, stdout, stderr, child CPU seconds)."""
    out_f = tempfile.TemporaryFile()
    err_f = tempfile.TemporaryFile()
    proc = subprocess.Popen([rill] + args, stdout=out_f, stderr=err_f, stdin=subprocess.DEVNULL)
    CHILDREN[:] = [proc]
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
    out_f.seek(0)
    err_f.seek(0)
    out = out_f.read().decode("utf-8", "replace")
    err = err_f.read().decode("utf-8", "replace")
    return status, out, err, ru.ru_utime + ru.ru_stime


def last_json(out):
    for line in reversed(out.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    return None


# ---- the benchmark -----------------------------------------------------------------
class Row:
    def __init__(self, scenario):
        self.scenario = scenario
        self.rps = self.mbps = self.p50 = self.p99 = None
        self.broker_cpu_gb = self.client_cpu_gb = self.ratio = None
        self.rss_mb = None
        self.error = None


def measured(rilld, rill, args, value_bytes_fn, row):
    """Runs one perf command with CPU sampling around it; fills row and
    returns the parsed JSON summary (or None)."""
    if not rilld.alive():
        row.error = "rilld not running"
        return None
    b0 = rilld.cpu_seconds()
    status, out, err, client_cpu = run_rill(rill, args)
    if not rilld.alive():
        row.error = "rilld died"
        note("rilld died during %s; its log:\n%s" % (row.scenario, rilld.log_tail()))
        return None
    b1 = rilld.cpu_seconds()
    row.rss_mb = rilld.peak_rss_kb() / 1024.0
    summary = last_json(out)
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
    return summary


def create_topic(rill, bootstrap, name, partitions):
    status, out, err, _ = run_rill(rill, ["topic", "create", name, "-p", str(partitions), "-b", bootstrap], 60)
    if status != 0:
        die("cannot create topic %s: %s" % (name, err.strip()))


def delete_topic(rill, bootstrap, name):
    status, _, err, _ = run_rill(rill, ["topic", "delete", name, "-b", bootstrap], 60)
    if status != 0:
        note("warning: could not delete topic %s: %s" % (name, err.strip()))


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def print_table(rows, header):
    cols = ["scenario", "msgs/s", "MB/s", "p50 ms", "p99 ms", "rilld CPU-s/GB", "client CPU-s/GB",
            "rilld/client CPU", "rilld peak RSS MB"]
    table = []
    for r in rows:
        if r.error and r.rps is None:
            table.append([r.scenario, "FAILED: " + r.error] + [""] * (len(cols) - 2))
            continue
        table.append([r.scenario + (" (!%s)" % r.error if r.error else ""), fmt(r.rps, ",.0f"), fmt(r.mbps, ".1f"),
                      fmt(r.p50, ".2f"), fmt(r.p99, ".2f"), fmt(r.broker_cpu_gb, ".2f"),
                      fmt(r.client_cpu_gb, ".2f"), fmt(r.ratio, ".2f"), fmt(r.rss_mb, ".0f")])
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(cols)]
    print(header)
    print("| " + " | ".join(c.ljust(widths[i]) for i, c in enumerate(cols)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for t in table:
        print("| " + " | ".join((t[i].ljust(widths[i]) if i == 0 else t[i].rjust(widths[i]))
                                for i in range(len(cols))) + " |")
    print()
    print("produce p50/p99: delivery latency (produce() to ack) at full speed, so it includes client-side\n"
          "queueing; e2e p50/p99: produce() to consumer receipt at the fixed rate. MB = 2^20 bytes;\n"
          "CPU-s/GB = CPU seconds per 10^9 bytes of record values (large for e2e: little data, fixed\n"
          "per-second costs); rilld peak RSS = VmHWM so far.")
    sys.stdout.flush()


def machine_header(build, rilld, args):
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip() or "?"
    except OSError:
        commit = "?"
    return ("bench: %s  commit %s  %s, %d cores, %s %s%s\ncommand: bench/run.sh %s%s\n" % (
        datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), commit, cpu, os.cpu_count() or 0,
        platform.system(), platform.release(), "  (QUICK)" if args.quick else "", build,
        " --quick" if args.quick else ""))


def main():
    ap = argparse.ArgumentParser(description="Rill benchmark table (make bench)")
    ap.add_argument("build", nargs="?", default="build")
    ap.add_argument("--quick", action="store_true", help="small runs, to check the script")
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    args = ap.parse_args()

    build = os.path.abspath(args.build)
    rill = os.path.join(build, "rill")
    if not os.access(rill, os.X_OK):
        die("%s not found or not executable (build it first: make build)" % rill)
    data_parent = os.environ.get("RILL_BENCH_DIR") or build
    rilld = Rilld(build, data_parent, args.keep)
    atexit.register(rilld.stop)
    atexit.register(kill_children)  # runs first (atexit is last-in, first-out)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda s, f: sys.exit(128 + s))
    t_start = time.monotonic()
    rilld.start()
    bs = rilld.bootstrap
    rows = []
    consume_topic = None

    for size, acks, parts in PRODUCE_RUNS:
        n = RECORDS[size][1 if args.quick else 0]
        topic = "bench-%d-acks%s-p%d" % (size, acks, parts)
        label = "produce %s acks=%s p=%d" % ("100B" if size == 100 else "1KiB", acks, parts)
        row = Row(label)
        rows.append(row)
        create_topic(rill, bs, topic, parts)
        note("%s: %d records" % (label, n))
        s = measured(rilld, rill, ["perf", "produce", topic, "--num-records", str(n), "--record-size", str(size),
                                   "--acks", acks, "--json", "-b", bs],
                     lambda j, size=size: j["records"] * size, row)
        if s:
            row.rps, row.mbps = s["records_per_s"], s["mb_per_s"]
            row.p50, row.p99 = s["latency_p50_ms"], s["latency_p99_ms"]
        if size == 100 and acks == "1" and parts == 6 and s and not row.error:
            consume_topic = (topic, s["records"], size)  # read back below
        else:
            delete_topic(rill, bs, topic)  # keep the disk use bounded
        if not rilld.alive():
            break

    if rilld.alive():
        topic = "bench-e2e"
        n = E2E["quick_records" if args.quick else "records"]
        label = "e2e %dB %d/s p=%d acks=all" % (E2E["size"], E2E["rate"], E2E["partitions"])
        row = Row(label)
        rows.append(row)
        create_topic(rill, bs, topic, E2E["partitions"])
        note("%s: %d records" % (label, n))
        s = measured(rilld, rill, ["perf", "e2e", topic, "--rate", str(E2E["rate"]), "--num-records", str(n),
                                   "--record-size", str(E2E["size"]), "--acks", "all", "--json", "-b", bs],
                     lambda j: j["received"] * E2E["size"], row)
        if s:
            row.rps, row.mbps = s["send_rate"], s["send_rate"] * E2E["size"] / 2**20
            row.p50, row.p99 = s["e2e_p50_ms"], s["e2e_p99_ms"]
        delete_topic(rill, bs, topic)

    if rilld.alive() and consume_topic:
        topic, n, size = consume_topic
        row = Row("consume 100B p=6")
        rows.append(row)
        note("%s: %d records" % (row.scenario, n))
        s = measured(rilld, rill, ["perf", "consume", topic, "--num-records", str(n), "--json", "-b", bs],
                     lambda j: j["records"] * size, row)
        if s:
            row.rps, row.mbps = s["records_per_s"], s["mb_per_s"]
    elif rilld.alive():
        rows.append(Row("consume 100B p=6"))
        rows[-1].error = "no produced topic to read"

    note("done in %.0f s" % (time.monotonic() - t_start))
    print_table(rows, machine_header(args.build, rilld, args))
    return 1 if any(r.error for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
