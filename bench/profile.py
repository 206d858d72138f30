#!/usr/bin/python3
"""bench/profile.py — where rilld spends its CPU in one bench scenario.

  bench/profile.py BUILD SCENARIO [--records N] [--top K] [--dwarf] [--keep]

Starts a fresh rilld from BUILD (data under BUILD, as `make bench` does),
creates the topic, and runs one `rill perf` scenario while `perf record`
samples rilld (cpu-clock, all threads, with call graphs). Prints rilld's
user/system CPU split for the run, then `perf report` flat (self) profile by
symbol and by thread, and the top call chains. SCENARIO is one of:

  produce-100-acks1   produce-100-acksall   produce-1k-acks1   produce-1k-acksall
  produce-1k-acks1-p6 consume-1k            consume-100-p6

(consume-* first produces the data at acks=1 without profiling.)
Needs perf (linux-perf); on VMs without a PMU perf falls back to the
cpu-clock software event, which is what we ask for anyway. --dwarf uses
DWARF unwinding for user-space call chains (rilld is built without frame
pointers); otherwise chains are frame-pointer based (good for the kernel).
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as bench  # noqa: E402  (bench/run.py)

SCENARIOS = {
    # name: (record size, acks, partitions, consume?)
    "produce-100-acks1": (100, "1", 1, False),
    "produce-100-acksall": (100, "all", 1, False),
    "produce-1k-acks1": (1024, "1", 1, False),
    "produce-1k-acksall": (1024, "all", 1, False),
    "produce-1k-acks1-p6": (1024, "1", 6, False),
    "consume-1k": (1024, "1", 1, True),
    "consume-100-p6": (100, "1", 6, True),
}


def cpu_split(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # after comm: minflt is field 10 overall -> [7], utime [11], stime [12]
    return int(fields[11]) / bench.CLK_TCK, int(fields[12]) / bench.CLK_TCK, int(fields[7])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build")
    ap.add_argument("scenario", choices=sorted(SCENARIOS))
    ap.add_argument("--records", type=int, help="records (default: as in make bench)")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--dwarf", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the data dir and perf.data")
    args = ap.parse_args()
    perf = shutil.which("perf")
    if not perf:
        bench.die("perf not found (apt-get install linux-perf)")
    build = os.path.abspath(args.build)
    rill = os.path.join(build, "rill")
    size, acks, parts, consume = SCENARIOS[args.scenario]
    n = args.records or bench.RECORDS[size][0]
    rilld = bench.Rilld(build, os.environ.get("RILL_BENCH_DIR") or build, args.keep, tag="rill-profile-")
    perf_data = os.path.join(rilld.data_dir, "perf.data")
    try:
        rilld.start()
        bs = rilld.bootstrap
        topic = "profile"
        bench.create_topic(rill, bs, topic, parts)
        produce = ["perf", "produce", topic, "--num-records", str(n), "--record-size", str(size), "--acks", acks,
                   "--json", "-b", bs]
        if consume:
            bench.note("producing %d x %d B (not profiled)" % (n, size))
            st, out, err, _ = bench.run_rill(rill, produce)
            if st != 0:
                bench.die("produce failed: %s" % err[-500:])
            cmd = ["perf", "consume", topic, "--num-records", str(n), "--json", "-b", bs]
        else:
            cmd = produce
        cg = ["--call-graph", "dwarf,16384"] if args.dwarf else ["-g"]
        rec = subprocess.Popen([perf, "record", "-e", "cpu-clock", "-F", "2000"] + cg +
                               ["-p", str(rilld.proc.pid), "-o", perf_data],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        u0, s0, f0 = cpu_split(rilld.proc.pid)
        t0 = time.monotonic()
        st, out, err, client_cpu = bench.run_rill(rill, cmd)
        wall = time.monotonic() - t0
        u1, s1, f1 = cpu_split(rilld.proc.pid)
        rec.send_signal(signal.SIGINT)
        rec.wait(timeout=60)
        summary = bench.last_json(out)
        print("scenario %s: %s" % (args.scenario, " ".join(cmd[:3] + cmd[3:-3])))
        if summary:
            print("client summary: %s" % {k: summary[k] for k in summary
                                          if k in ("records", "records_per_s", "mb_per_s", "elapsed_s")})
        gb = n * size / 1e9
        print("rilld CPU: user %.2f s + sys %.2f s in %.1f s wall = %.2f CPU-s/GB (user %.2f, sys %.2f); "
              "client %.2f CPU-s/GB; rilld minor page faults: %d (%.0f per MB)"
              % (u1 - u0, s1 - s0, wall, (u1 - u0 + s1 - s0) / gb, (u1 - u0) / gb, (s1 - s0) / gb, client_cpu / gb,
                 f1 - f0, (f1 - f0) / (n * size / 2**20)))
        sys.stdout.flush()
        rep = [perf, "report", "-i", perf_data, "--stdio", "--no-children", "--percent-limit", "0.5"]
        print("\n==== by thread ====")
        sys.stdout.flush()
        subprocess.run(rep + ["--sort", "tid", "-g", "none"], stderr=subprocess.DEVNULL)
        print("\n==== self, by symbol (top %d) ====" % args.top)
        sys.stdout.flush()
        r = subprocess.run(rep + ["--sort", "dso,sym", "-g", "none"], capture_output=True, text=True)
        lines = [l for l in r.stdout.splitlines() if l.strip() and not l.startswith("#")]
        print("\n".join(lines[:args.top]))
        print("\n==== inclusive, by system call and top-level user function (children %, >= 1%) ====")
        sys.stdout.flush()
        r = subprocess.run([perf, "report", "-i", perf_data, "--stdio", "--children", "--percent-limit", "1",
                            "--sort", "sym", "-g", "none"], capture_output=True, text=True)
        for l in r.stdout.splitlines():
            if l.startswith("#") or not l.strip():
                continue
            if "__x64_sys_" in l or "[.] st_" in l or "[.] bk_" in l or "[.] rn_" in l or "[.] kp_" in l \
                    or "[.] crc" in l or "[.] rb_" in l or "[.] mem" in l:
                print(l)
        print("\n==== call chains (caller graph, >= 2%) ====")
        sys.stdout.flush()
        r = subprocess.run([perf, "report", "-i", perf_data, "--stdio", "--no-children", "--percent-limit", "2",
                            "--sort", "sym", "-g", "caller,0.5,callee,function,percent"], capture_output=True,
                           text=True)
        print("\n".join(l for l in r.stdout.splitlines()[:400] if not l.startswith("#")))
    finally:
        if args.keep:
            bench.note("perf data: %s" % perf_data)
        rilld.stop()


if __name__ == "__main__":
    main()
