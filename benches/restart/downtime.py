#!/usr/bin/env python3
"""What a restart after a downtime costs: `ritma run` stopped, the wall clock moved on by
--hours (libfaketime), `ritma run` again on the same store. For each binary, interleaved
repetitions on fresh stores: the second run's wall time (it seals the downtime before it
captures), and the windows, files and bytes the store holds after it.

Needs root (eBPF) and libfaketime. Every command's exit status is checked."""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time


def log(msg):
    print(f"[downtime] {msg}", file=sys.stderr, flush=True)


def libfaketime():
    out = subprocess.run(["dpkg", "-L", "libfaketime"], capture_output=True, text=True, check=True)
    for line in out.stdout.splitlines():
        if line.endswith("/libfaketime.so.1"):
            return line
    raise SystemExit("libfaketime is not installed (apt-get install faketime)")


def run(binary, store, offset_s, seconds, lib, node):
    """`ritma run` on a wall clock `offset_s` ahead for `seconds` of capture: wall time."""
    env = dict(os.environ)
    for k in ("RITMA_NODE_ID", "RITMA_OUT", "RITMA_CONFIG"):
        env.pop(k, None)
    env.update(
        {"LD_PRELOAD": lib, "FAKETIME": f"{offset_s:+d}s", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    )
    start = time.monotonic()
    p = subprocess.run(
        [binary, "run", "--out", store, "--node", node, "--duration", str(seconds)],
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.monotonic() - start
    if p.returncode != 0:
        raise SystemExit(f"{binary} run failed ({p.returncode}):\n{p.stderr}")
    return wall


def store_size(store):
    """Window records, files and bytes (on disk, st_blocks) under `windows/`, and all files."""
    windows = files = disk = 0
    for root, _, names in os.walk(store):
        if os.path.relpath(root, store).split(os.sep)[0] == "wal":
            continue
        for n in names:
            st = os.stat(os.path.join(root, n))
            files += 1
            disk += st.st_blocks * 512
            if os.sep + "micro" in root and n.endswith(".cbor"):
                windows += 1
    return windows, files, disk


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binary", action="append", required=True, help="LABEL=PATH (repeatable)")
    p.add_argument("--hours", type=float, default=2.0, help="downtime between the runs")
    p.add_argument("--seconds", type=int, default=3, help="capture of each run")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--work", required=True)
    p.add_argument("--report", action="store_true", help="print the table of WORK/results.json")
    args = p.parse_args()
    if args.report:
        with open(os.path.join(args.work, "results.json")) as f:
            saved = json.load(f)
        labels = [b.split("=", 1)[0] for b in saved["args"]["binary"]]
        report(saved["rows"], labels, argparse.Namespace(**saved["args"]))
        return
    if os.geteuid() != 0:
        raise SystemExit("needs root (eBPF)")
    lib = libfaketime()
    binaries = [b.split("=", 1) for b in args.binary]
    os.makedirs(args.work, exist_ok=True)
    rows = []
    for rep in range(args.reps):
        order = binaries if rep % 2 == 0 else list(reversed(binaries))
        for label, path in order:
            store = os.path.join(args.work, f"{label}-{rep}")
            shutil.rmtree(store, ignore_errors=True)
            first = run(path, store, 0, args.seconds, lib, "downtime")
            before = store_size(store)
            second = run(path, store, int(args.hours * 3600), args.seconds, lib, "downtime")
            after = store_size(store)
            v = subprocess.run(
                [path, "verify", store, "--trust-embedded-key"], capture_output=True, text=True
            )
            if v.returncode != 0:
                raise SystemExit(f"verify of {store} failed:\n{v.stderr}")
            row = {
                "rep": rep,
                "binary": label,
                "first_run_s": first,
                "second_run_s": second,
                "windows_added": after[0] - before[0],
                "files_added": after[1] - before[1],
                "disk_added": after[2] - before[2],
                "verify": v.stdout.strip(),
            }
            log(json.dumps(row))
            rows.append(row)
            shutil.rmtree(store)
    with open(os.path.join(args.work, "results.json"), "w") as f:
        json.dump({"args": vars(args), "rows": rows}, f, indent=1)
    report(rows, [label for label, _ in binaries], args)


def report(rows, labels, args):
    """The Markdown table: medians over the repetitions of each binary."""
    def med(label, f):
        return statistics.median(f(r) for r in rows if r["binary"] == label)

    print(f"| binary | first run, wall s | second run ({args.hours:g} h later), wall s | "
          "added by the downtime, s | windows added | files added | disk added |")
    print("|---|---|---|---|---|---|---|")
    for label in labels:
        print(
            f"| {label} | {med(label, lambda r: r['first_run_s']):.1f} "
            f"| {med(label, lambda r: r['second_run_s']):.1f} "
            f"| {med(label, lambda r: r['second_run_s'] - r['first_run_s']):.1f} "
            f"| {med(label, lambda r: r['windows_added']):.0f} "
            f"| {med(label, lambda r: r['files_added']):.0f} "
            f"| {med(label, lambda r: r['disk_added']) / 2**20:.1f} MiB |"
        )


if __name__ == "__main__":
    main()
