#!/usr/bin/env python3
"""Prints the Markdown tables of one overhead.py run: `report.py RESULTS.json`."""

import json
import statistics
import sys


def fmt_range(values, digits=2):
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} [{min(values):.{digits}f}–{max(values):.{digits}f}]"


def comparison(results):
    runs = [r for r in results["runs"] if r["kind"] == "compare"]
    if not runs:
        return []
    configs = []
    for r in runs:
        if r["config"] not in configs:
            configs.append(r["config"])

    def of(config, label):
        return [r for r in runs if r["config"] == config and r["label"] == label]

    def med(values):
        return statistics.median(values)

    base = of("none", "mix")
    if not base:
        return ["(no `none` runs: added CPU cannot be computed)"]
    events = med(r["load"]["nominal_events"] for r in base)
    base_total = med(r["total_cpu_s"] for r in base)
    base_load = med(r["load"]["cpu_s"] for r in base)
    # A sensor session runs every load of one repetition (mix, null, one-kind loads): its own
    # count covers them all, so it is set against the session's nominal total.
    session_nominal = {}
    for r in runs:
        session_nominal[r["session"]] = session_nominal.get(r["session"], 0) + r["load"]["nominal_events"]

    raw, attributed, kernel, per_event = {}, {}, {}, {}
    for c in configs:
        rs = of(c, "mix")
        raw[c] = (med(r["total_cpu_s"] for r in rs) - base_total) / events * 1e6
        kernel[c] = (med(r["load"]["cpu_s"] for r in rs) - base_load) / events * 1e6
        sessions = [
            r["sensor"]["session_sensor_cpu_s"] / r["sensor"]["sensor_events"]
            for r in rs
            if r["sensor"].get("sensor_events")
        ]
        per_event[c] = med(sessions) * 1e6 if sessions else 0.0
        attributed[c] = kernel[c] + per_event[c]

    lines = [
        "| config | workload events | sensor reported ÷ session's workload events | lost "
        "| workload CPU s | sensor processes CPU s | total CPU s | wall s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in configs:
        rs = of(c, "mix")
        seen = [
            r["sensor"]["sensor_events"] / session_nominal[r["session"]]
            for r in rs
            if r["sensor"].get("sensor_events") is not None
        ]
        lost = [r["sensor"]["lost"] for r in rs if r["sensor"].get("lost") is not None]
        lines.append(
            f"| {c} | {int(med(r['load']['nominal_events'] for r in rs))} "
            f"| {fmt_range(seen, 2) if seen else '-'} | {fmt_range(lost, 0) if lost else '-'} "
            f"| {fmt_range([r['load']['cpu_s'] for r in rs])} "
            f"| {fmt_range([r['sensor_cpu_s'] for r in rs])} "
            f"| {fmt_range([r['total_cpu_s'] for r in rs])} "
            f"| {fmt_range([r['load']['wall_s'] for r in rs])} |"
        )

    def ratio(table, c, other):
        if other not in table or c in ("none", other) or table[other] <= 0:
            return "-"
        return f"{table[c] / table[other]:.2f}"

    lines += [
        "",
        "Added CPU per workload event, µs (medians over repetitions). *Raw*: (total CPU − none's) ÷ "
        "workload events; it also holds the sensor's work on other users' events during the run. "
        "*Attributed*: the workload's own added CPU (in-kernel hooks, run in its syscalls) + the "
        "sensor processes' CPU per event they reported over the session.",
        "",
        "| config | in the workload (kernel side) | sensor processes, per reported event "
        "| attributed | ÷ auditd | ÷ bpftrace | raw | ÷ auditd | ÷ bpftrace |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in configs:
        if c == "none":
            continue
        lines.append(
            f"| {c} | {kernel[c]:.2f} | {per_event[c]:.2f} | **{attributed[c]:.2f}** "
            f"| {ratio(attributed, c, 'auditd')} | {ratio(attributed, c, 'bpftrace')} "
            f"| {raw[c]:.2f} | {ratio(raw, c, 'auditd')} | {ratio(raw, c, 'bpftrace')} |"
        )

    # Per repetition: each interleaved round alone (raw totals).
    reps = sorted({r["rep"] for r in runs})
    if len(reps) > 1:
        lines += [
            "",
            "Per repetition (one round runs every configuration back to back), total CPU s and the "
            "raw ratios of each round:",
            "",
            "| rep | " + " | ".join(configs) + " | ritma ÷ auditd | ritma ÷ bpftrace |",
            "|---|" + "---|" * (len(configs) + 2),
        ]
        for rep in reps:
            cpu = {}
            for c in configs:
                rs = [r for r in of(c, "mix") if r["rep"] == rep]
                if rs:
                    cpu[c] = rs[0]["total_cpu_s"]
            row = [f"{cpu[c]:.2f}" if c in cpu else "-" for c in configs]
            ratios = []
            for other in ("auditd", "bpftrace"):
                if all(k in cpu for k in ("none", "ritma", other)) and cpu[other] > cpu["none"]:
                    ratios.append(f"{(cpu['ritma'] - cpu['none']) / (cpu[other] - cpu['none']):.2f}")
                else:
                    ratios.append("-")
            lines.append(f"| {rep + 1} | " + " | ".join(row + ratios) + " |")

    nulls = of("none", "null")
    if nulls:
        base_ns = med(r["load"]["cpu_s"] / r["load"]["syscalls_null"] * 1e9 for r in nulls)
        lines += [
            "",
            "Null syscall (getppid, which no sensor reports): the workload's CPU per call",
            "",
            "| config | ns/syscall | added ns/syscall |",
            "|---|---|---|",
        ]
        for c in configs:
            ns = [r["load"]["cpu_s"] / r["load"]["syscalls_null"] * 1e9 for r in of(c, "null")]
            if ns:
                added = "baseline" if c == "none" else f"{med(ns) - base_ns:.1f}"
                lines.append(f"| {c} | {fmt_range(ns, 1)} | {added} |")

    kinds = [k for k in ("exec", "open", "rename", "connect") if of("none", f"kind-{k}")]
    if kinds:
        lines += [
            "",
            "Each event kind alone: the workload's own added CPU (kernel side) per event, µs "
            "(none: its CPU per event); medians over repetitions:",
            "",
            "| kind | events per load | " + " | ".join(configs) + " |",
            "|---|---|" + "---|" * len(configs),
        ]
        for kind in kinds:
            label = f"kind-{kind}"
            base_rs = of("none", label)
            n = med(r["load"]["nominal_events"] for r in base_rs)
            base_k = med(r["load"]["cpu_s"] for r in base_rs)
            cells = []
            for c in configs:
                rs = of(c, label)
                if not rs:
                    cells.append("-")
                elif c == "none":
                    cells.append(f"{base_k / n * 1e6:.2f}")
                else:
                    cells.append(f"{(med(r['load']['cpu_s'] for r in rs) - base_k) / n * 1e6:.2f}")
            lines.append(f"| {kind} | {int(n)} | " + " | ".join(cells) + " |")

    loads = [r["loadavg_1m"] for r in runs if "loadavg_1m" in r]
    if loads:
        lines += ["", f"1-minute load average after the runs: {fmt_range(loads)} (2 CPUs; other users included)"]
    return lines


def search(results):
    runs = [r for r in results["runs"] if r["kind"] == "search"]
    if not runs:
        return []
    lines = [
        "| config | target events/s | achieved events/s | sensor reported | lost | workload CPU s | sensor CPU s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        l = r["load"]
        lines.append(
            f"| {r['config']} | {int(l['target_rate'])} | {l['rate']:.0f} | "
            f"{r['sensor'].get('sensor_events')} | {r['sensor'].get('lost')} | "
            f"{l['cpu_s']:.1f} | {r['sensor_cpu_s']:.1f} |"
        )
    for config, best in results.get("drop_free", {}).items():
        lines.append("")
        if best is None:
            lines.append(f"{config}: every rate tried lost events")
        else:
            lines.append(
                f"{config}: highest drop-free rate {best['achieved']} events/s achieved "
                f"(target {best['target']}, {'reached' if best['reached'] else 'not reached: the workload ran flat out'})"
            )
    return lines


def rss(results):
    runs = [r for r in results["runs"] if r["kind"] == "rss"]
    lines = []
    for r in runs:
        samples = [s for s in r["rss_samples"] if s[1] is not None]
        if not samples:
            continue
        first_min = [s[1] for s in samples if s[0] <= 60]
        last_min = [s[1] for s in samples if s[0] >= samples[-1][0] - 60]
        # Least-squares slope after the first minute, in MiB per minute.
        tail = [s for s in samples if s[0] > 60] or samples
        n = len(tail)
        mx = sum(s[0] for s in tail) / n
        my = sum(s[1] for s in tail) / n
        var = sum((s[0] - mx) ** 2 for s in tail)
        slope = (sum((s[0] - mx) * (s[1] - my) for s in tail) / var * 60 / 1024) if var else 0.0
        l = r["load"]
        lines.append(
            f"{r['config']}: {l['wall_s'] / 60:.1f} min at {l['rate']:.0f} events/s "
            f"({l['nominal_events']} events, sensor reported {r['sensor'].get('sensor_events')}, "
            f"lost {r['sensor'].get('lost')}); VmRSS first minute {statistics.mean(first_min) / 1024:.1f} MiB, "
            f"last minute {statistics.mean(last_min) / 1024:.1f} MiB, max {max(s[1] for s in samples) / 1024:.1f} MiB, "
            f"slope after the first minute {slope:+.3f} MiB/min; sensor CPU {r['sensor_cpu_s']:.1f} s"
        )
        step = max(1, len(samples) // 12)
        lines.append(
            "  samples (s: MiB): "
            + ", ".join(f"{s[0]:.0f}: {s[1] / 1024:.1f}" for s in samples[::step])
        )
    return lines


def seal(results):
    lines = []
    for kind in ("compare", "search", "rss"):
        runs = [r for r in results["runs"] if r["kind"] == kind and "seal_p99_ms" in r["sensor"]]
        seen = set()
        p50, p99 = [], []
        for r in runs:
            # The workloads of one sensor session share its report: count it once.
            key = r["sensor"]["summary"]
            if key not in seen:
                seen.add(key)
                p50.append(r["sensor"]["seal_p50_ms"])
                p99.append(r["sensor"]["seal_p99_ms"])
        if p99:
            lines.append(
                f"{kind} runs ({len(p99)} sessions): seal latency p50 {fmt_range(p50, 1)} ms, "
                f"p99 {fmt_range(p99, 1)} ms (goal: p99 ≤ window 1000 ms + 500 ms)"
            )
    return lines


def main():
    with open(sys.argv[1]) as f:
        results = json.load(f)
    m = results["machine"]
    print(f"machine: {m['cpus']} CPUs, {m['cpu_model']}, kernel {m['kernel']}, {m['mem_total']}")
    if "syscalls_per_iteration" in results:
        print(
            f"comparison mix: {results['events_per_iteration']} events and "
            f"{results['syscalls_per_iteration']:.1f} syscalls per iteration"
        )
    if "null_probe_ns" in results:
        for label, values in results["null_probe_ns"].items():
            print(f"null syscall, no sensor, {label}: {', '.join(f'{v:.1f}' for v in values)} ns")
    for title, part in (
        ("Comparison", comparison(results)),
        ("Drop-free search", search(results)),
        ("RSS", rss(results)),
        ("Seal latency", seal(results)),
    ):
        if part:
            print(f"\n### {title}\n")
            print("\n".join(part))


if __name__ == "__main__":
    main()
