#!/usr/bin/env python3
"""The sensor's own BPF programs, timed by the kernel: with kernel.bpf_stats_enabled the kernel
counts each program's runs and the ns spent in them. For each ritma binary (an older build
against a newer one), interleaved repetitions of `ritma record` while the overhead workload
runs one kind of call; reported per program: ns per run (median of the repetitions), and the
BPF ns per workload event summed over all the sensor's programs.

Needs root and bpftool. Every command's exit status is checked; the stats switch is put back."""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from overhead import stop_process, wait_attached  # noqa: E402


def log(msg):
    print(f"[prog_cost] {msg}", file=sys.stderr, flush=True)


def progs():
    """Every loaded BPF program: id → (name, run_cnt, run_time_ns)."""
    out = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, check=True)
    return {
        p["id"]: (p.get("name", "?"), p.get("run_cnt", 0), p.get("run_time_ns", 0))
        for p in json.loads(out.stdout)
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binary", action="append", required=True, help="LABEL=PATH (repeatable)")
    p.add_argument("--load", required=True, help="the ritma-overhead-load binary")
    p.add_argument("--kind", default="opens",
                   choices=["opens", "renames", "connects", "execs", "fcntls"])
    p.add_argument("--iterations", type=int, default=20000)
    p.add_argument("--per-iteration", type=int, default=20, help="calls of the kind per iteration")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--work", required=True)
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root")
    binaries = [b.split("=", 1) for b in args.binary]
    os.makedirs(args.work, exist_ok=True)
    with open("/proc/sys/kernel/bpf_stats_enabled") as f:
        stats_before = f.read().strip()
    rows = []
    try:
        with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
            f.write("1")
        for rep in range(args.reps):
            order = binaries if rep % 2 == 0 else list(reversed(binaries))
            for label, path in order:
                before_start = set(progs())
                out = tempfile.mktemp(prefix="prog-cost-", suffix=".rtrace", dir=args.work)
                with open(os.path.join(args.work, f"{label}-{rep}.stderr"), "wb") as err:
                    proc = subprocess.Popen(
                        [path, "record", "--out", out], stdout=subprocess.DEVNULL, stderr=err
                    )
                    wait_attached(proc, f"{label} record")
                    start = {k: v for k, v in progs().items() if k not in before_start}
                    if not start:
                        raise SystemExit(f"{label}: no BPF program of its own found")
                    load = subprocess.run(
                        [args.load, "--jobs", "1", "--iterations", str(args.iterations),
                         "--execs", "0", "--opens", "0", "--renames", "0", "--connects", "0",
                         f"--{args.kind}", str(args.per_iteration)],
                        capture_output=True, text=True,
                    )
                    if load.returncode != 0:
                        raise SystemExit(f"the load failed: {load.stderr}")
                    end = progs()
                    stop_process(proc)
                    if proc.returncode != 0:
                        raise SystemExit(f"{label} record exited with {proc.returncode}")
                os.unlink(out)
                events = json.loads(load.stdout.strip().splitlines()[-1])["nominal_events"]
                if args.kind == "fcntls":
                    # fcntl(F_GETFL) is no event: its cost is per call.
                    events = args.iterations * args.per_iteration
                per_prog = {}
                total_ns = 0
                for pid, (name, cnt0, ns0) in start.items():
                    name1, cnt1, ns1 = end.get(pid, (name, cnt0, ns0))
                    if cnt1 > cnt0:
                        per_prog[name] = ((ns1 - ns0) / (cnt1 - cnt0), cnt1 - cnt0)
                    total_ns += ns1 - ns0
                row = {
                    "rep": rep,
                    "binary": label,
                    "events": events,
                    "bpf_ns_per_event": total_ns / events,
                    "per_prog": per_prog,
                }
                log(f"{label} rep {rep}: {total_ns / events:.1f} BPF ns per event")
                rows.append(row)
    finally:
        with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
            f.write(stats_before)
    with open(os.path.join(args.work, "results.json"), "w") as f:
        json.dump({"args": vars(args), "rows": rows}, f, indent=1)

    labels = [label for label, _ in binaries]
    med = lambda label, f: statistics.median(f(r) for r in rows if r["binary"] == label)
    print(f"BPF ns per workload event ({args.kind}, {args.per_iteration} per iteration × "
          f"{args.iterations}), median [min–max] of {args.reps}:\n")
    print("| binary | BPF ns per event |")
    print("|---|---|")
    for label in labels:
        vals = [r["bpf_ns_per_event"] for r in rows if r["binary"] == label]
        print(f"| {label} | {statistics.median(vals):.1f} [{min(vals):.1f}–{max(vals):.1f}] |")
    names = sorted({n for r in rows for n in r["per_prog"]})
    busy = [
        n for n in names
        if med(labels[0], lambda r: r["per_prog"].get(n, (0, 0))[1]) >= args.iterations
    ]
    print("\nPrograms that ran at least once per iteration, ns per run (median):\n")
    print("| program | " + " | ".join(labels) + " |")
    print("|---|" + "---|" * len(labels))
    for n in busy:
        cells = [f"{med(label, lambda r: r['per_prog'].get(n, (0, 0))[0]):.1f}" for label in labels]
        print(f"| {n} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
