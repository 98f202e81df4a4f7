#!/usr/bin/env python3
"""Tables of benches/fp/run.sh: per workload, its wall time and sealed events, and the cone
matches it caused: in all, per hour of that workload, and by cone with the processes that
completed them."""

import collections
import json
import os
import sys


def lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    work, workloads = sys.argv[1], sys.argv[2:]
    print("| workload | wall s | events sealed | cone matches | matches per hour | by cone (processes) |")
    print("|---|---|---|---|---|---|")
    for w in workloads:
        d = os.path.join(work, w)
        start, end = (float(x) for x in open(os.path.join(d, "span")).read().split())
        wall = end - start
        events = sum(h["events"] for h in lines(os.path.join(d, "hours.jsonl")))
        cones = lines(os.path.join(d, "cones.jsonl"))
        by = collections.defaultdict(collections.Counter)
        for c in cones:
            # "PID NAME": keep the name, the pid differs per process.
            by[c["cone"]][c["process"].split(" ", 1)[-1]] += 1
        parts = []
        for cone in sorted(by):
            procs = ", ".join(f"{p} {n}" for p, n in by[cone].most_common(3))
            more = "" if len(by[cone]) <= 3 else f", {len(by[cone]) - 3} more"
            parts.append(f"{cone} {sum(by[cone].values())} ({procs}{more})")
        print(f"| {w} | {wall:.0f} | {events} | {len(cones)} | {len(cones) * 3600 / wall:.0f} | "
              f"{'; '.join(parts) or '—'} |")


if __name__ == "__main__":
    main()
