#!/usr/bin/python3
"""bench/idem_bench.py — idempotent producer throughput vs plain (issue 5).

Usage: RILL_BUILD=build /usr/bin/python3 bench/idem_bench.py [--records N] [--rounds R]

A fresh rilld from RILL_BUILD (default ./build) on a free loopback port, data
under the build directory (a real disk, not tmpfs). `rill perf produce`
(librdkafka 2.0.2) writes N records of 100 B with acks=all to a 6-partition
topic, plain and with enable.idempotence=true, alternating (plain, idem,
plain, idem, ...) R rounds so machine noise hits both alike; each run uses its
own topic. Prints one table (median msgs/s of each mode, the ratio idem/plain
from those medians, every run's figure) with the command, machine and date;
paste it into bench/RESULTS.md.
"""
import json
import os
import platform
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from rilltest import BUILD, Broker, ck_create_topic  # noqa: E402


def run_perf(broker, topic, n, idem):
    cmd = [os.path.join(BUILD, "rill"), "perf", "produce", topic, "--num-records", str(n), "--record-size", "100",
           "--acks", "all", "--json", "-b", broker.bootstrap]
    if idem:
        cmd += ["-X", "enable.idempotence=true"]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True, timeout=600).stdout
    j = json.loads(out.decode().strip().splitlines()[-1])
    assert j["failed"] == 0, j
    return j


def main():
    n, rounds = 500000, 3
    args = sys.argv[1:]
    if "--records" in args:
        n = int(args[args.index("--records") + 1])
    if "--rounds" in args:
        rounds = int(args[args.index("--rounds") + 1])
    parent = tempfile.mkdtemp(prefix="idem-bench-", dir=BUILD)
    b = Broker(data_dir=parent)
    b.start()
    rows = {"plain": [], "idem": []}
    try:
        for r in range(rounds):
            for mode in ("plain", "idem"):
                t = ck_create_topic(b, "bench-%s-%d" % (mode, r), partitions=6)
                j = run_perf(b, t, n, mode == "idem")
                rows[mode].append(j)
        b.stop()
        # the idempotent runs really were idempotent: after the clean stop each
        # partition's newest .snapshot names a producer (count at byte 16),
        # the plain runs' none
        for mode, want in (("plain", False), ("idem", True)):
            d = b.partition_dir("bench-%s-0" % mode, 0)
            snap = sorted(f for f in os.listdir(d) if f.endswith(".snapshot"))[-1]
            with open(os.path.join(d, snap), "rb") as f:
                count = struct.unpack_from(">i", f.read(), 16)[0]
            assert (count > 0) == want, (mode, snap, count)
    finally:
        if b.running():
            b.stop()
        subprocess.run(["rm", "-rf", parent])
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    commit = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE).stdout
    print("bench: %s  commit %s  %s, %d cores, Linux %s" % (time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
                                                          commit.decode().strip(), cpu, os.cpu_count(),
                                                          platform.release()))
    print("command: RILL_BUILD=%s /usr/bin/python3 bench/idem_bench.py --records %d --rounds %d" % (BUILD, n, rounds))
    print()
    print("| mode | runs | median msgs/s | median MB/s | each run msgs/s | median p99 ms |")
    print("|---|---|---|---|---|---|")
    med = {}
    for mode in ("plain", "idem"):
        rs = [j["records_per_s"] for j in rows[mode]]
        med[mode] = statistics.median(rs)
        mb = statistics.median(j["mb_per_s"] for j in rows[mode])
        p99 = statistics.median(j["latency_p99_ms"] for j in rows[mode])
        print("| produce 100B acks=all p=6 %s | %d | %s | %.1f | %s | %.2f |" % (
            "enable.idempotence=true" if mode == "idem" else "plain", len(rs), format(int(med[mode]), ","), mb,
            ", ".join(format(int(x), ",") for x in rs), p99))
    print()
    print("ratio idempotent / plain (medians): %.3f" % (med["idem"] / med["plain"]))


if __name__ == "__main__":
    main()
