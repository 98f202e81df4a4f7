#!/usr/bin/env python3
"""Soak test of `ritma run` (started by run.sh, which builds the binaries and the venv).

Starts `ritma run --metrics 127.0.0.1:PORT` into a fresh store, lets it settle (the
background event rate of the machine), then runs the load generator
(benches/overhead/load.c) at --rate nominal events/s for --minutes, and samples every
--interval seconds: the process's VmRSS and CPU, the WAL's bytes and files, the store's
bytes outside wal/, the metrics (events, loss by reason, windows sealed, the seal latency
histogram, seal lag) and the ingest lag (the run's wall clock now minus the end of the
newest window with a checkpoint on disk). After the load it stops the run with SIGINT and
checks: exit status, a saved dataflow state for every hour boundary crossed, the WAL
trimmed to about the open hour, `ritma replay --wal --out STORE` (the kept WAL sealed
again must give the store) and `ritma verify STORE --trust-embedded-key`.

Writes into --out: soak.csv (one row per sample), soak.png, summary.json, summary.md,
ritma-run.log, replay.log, verify.log. Exits 0 only when every child exited 0 and every
check passed (the files are written either way).

--fake-hour-offset S runs `ritma run` under libfaketime (wall clock only; the kernel's
monotonic clock, which the sensor uses, stays real), shifted so that its wall clock starts
S seconds before an hour boundary: a short soak then crosses it.
"""
import argparse
import calendar
import json
import math
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

# Seconds into an hour by which the earlier hours' WAL files must be gone (the hour's seal,
# then the run's housekeeping, which looks every 5 s).
TRIM_GRACE_S = 30
REASONS = ["kernel_ringbuf_full", "queue_shed", "decode_error", "probe_detached", "in_flight_at_stop"]
MIB = 1024 * 1024


class SoakError(Exception):
    pass


def log(msg):
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_metrics(text):
    """Prometheus/OpenMetrics text → {name: [(labels dict, value)]}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([A-Za-z_:][\w:]*)(\{([^}]*)\})?\s+(\S+)', line)
        if not m:
            raise SoakError(f"unparsable metrics line: {line!r}")
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m[3] or ""))
        out.setdefault(m[1], []).append((labels, float(m[4])))
    return out


def one(metrics, name, default=None):
    vals = metrics.get(name)
    if not vals:
        if default is None:
            raise SoakError(f"metric {name} missing")
        return default
    return vals[0][1]


def by_label(metrics, name, label):
    return {lab.get(label, ""): v for lab, v in metrics.get(name, [])}


def buckets(metrics, name):
    """Cumulative histogram buckets, [(upper bound, count)], +Inf last."""
    bs = [(float(lab["le"]), v) for lab, v in metrics.get(name + "_bucket", [])]
    if not bs:
        raise SoakError(f"histogram {name} missing")
    return sorted(bs)


def quantile(prev, cur, q):
    """q-quantile of the observations between two cumulative bucket snapshots, linearly
    interpolated inside its bucket (as PromQL's histogram_quantile); None when none."""
    deltas = [(le, c - (prev[i][1] if prev else 0)) for i, (le, c) in enumerate(cur)]
    total = deltas[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lo, below = 0.0, 0.0
    for le, c in deltas:
        if c >= rank:
            if math.isinf(le):
                return lo  # beyond the last finite bound: report that bound
            return lo + (le - lo) * ((rank - below) / max(c - below, 1e-12))
        lo, below = le, c
    return lo


def proc_rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise SoakError(f"no VmRSS for pid {pid}")


def proc_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_bytes(root, skip_top=()):
    """Apparent bytes of the regular files under root, by top-level entry (files that
    vanish meanwhile, temporary ones being renamed, are skipped)."""
    totals, stack = {}, [(Path(root), None)]
    while stack:
        d, top = stack.pop()
        try:
            it = os.scandir(d)
        except FileNotFoundError:
            continue
        with it:
            for e in it:
                if top is None and e.name in skip_top:
                    continue
                key = e.name if top is None else top
                try:
                    if e.is_dir(follow_symlinks=False):
                        stack.append((e.path, key))
                    elif e.is_file(follow_symlinks=False):
                        totals[key] = totals.get(key, 0) + e.stat(follow_symlinks=False).st_size
                except FileNotFoundError:
                    pass
    return totals


def wal_files(store):
    out = {}
    try:
        for e in os.scandir(Path(store) / "wal"):
            if e.name.endswith(".rtrace") and not e.name.startswith("."):
                try:
                    out[e.name] = e.stat().st_size
                except FileNotFoundError:
                    pass
    except FileNotFoundError:
        pass
    return out


def hour_dirs(store):
    """[(hour start, unix s; path)] of windows/YYYY/MM/DD/HH, oldest first."""
    res = []
    base = Path(store) / "windows"
    for p in base.glob("[0-9]*/[0-9]*/[0-9]*/[0-9]*"):
        y, mo, d, h = (int(x) for x in p.relative_to(base).parts)
        res.append((calendar.timegm((y, mo, d, h, 0, 0)), p))
    return sorted(res)


def newest_sealed_end(store, window_s):
    """End (unix s) of the newest window whose checkpoint is on disk, or None."""
    for start, p in reversed(hour_dirs(store)):
        idx = [int(n.name[1:5]) for n in (p / "micro").glob("w[0-9][0-9][0-9][0-9].sig")]
        if idx:
            return start + (max(idx) + 1) * window_s
    return None


def fmt_bytes(b):
    return f"{b / MIB:.1f} MiB" if b < 10 * 1024 * MIB else f"{b / 1024 / MIB:.2f} GiB"


def utc(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def slope_per_min(xs_s, ys):
    """Least-squares slope of ys over xs (seconds), per minute; None with < 2 points."""
    if len(xs_s) < 2:
        return None
    mx, my = statistics.fmean(xs_s), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs_s)
    if den == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs_s, ys)) / den * 60


class Soak:
    def __init__(self, a):
        self.a = a
        self.out = Path(a.out).resolve()
        self.store = self.out / "store"
        self.samples = []
        self.checks = []  # (name, ok, detail)
        self.procs = []  # children still to stop on error

    def check(self, name, ok, detail):
        self.checks.append({"check": name, "ok": bool(ok), "detail": detail})
        log(f"check {'PASS' if ok else 'FAIL'}: {name}: {detail}")

    # ------------------------------------------------------------------ run
    def start_ritma(self):
        a = self.a
        if self.store.exists():
            raise SoakError(f"{self.store} exists: give a new --out")
        self.port = free_port()
        env = dict(os.environ)
        for k in ("RITMA_OUT", "RITMA_NODE_ID", "RITMA_CONFIG"):
            env.pop(k, None)
        self.offset = 0
        if a.fake_hour_offset is not None:
            now = time.time()
            boundary = (math.floor(now / 3600) + 1) * 3600
            # The next boundary that is at least S + 30 s ahead of now.
            while boundary - a.fake_hour_offset < now + 30:
                boundary += 3600
            self.offset = int(round(boundary - a.fake_hour_offset - now))
            env.update(LD_PRELOAD=a.faketime_lib, FAKETIME=f"{self.offset:+d}s",
                       FAKETIME_DONT_FAKE_MONOTONIC="1")
            log(f"libfaketime: wall clock {self.offset:+d} s, so the run starts about "
                f"{a.fake_hour_offset} s before {utc(boundary)}")
        # A bound of its own, so the run stops even if this driver dies.
        bound = a.settle + a.minutes * 60 + 600
        cmd = [a.ritma, "run", "--out", str(self.store), "--node", a.node,
               "--metrics", f"127.0.0.1:{self.port}", "--duration", str(int(bound)),
               "--workers", str(a.workers)] + a.ritma_arg
        self.run_log = open(self.out / "ritma-run.log", "w")
        log(f"starting: {' '.join(cmd)}")
        self.ritma = subprocess.Popen(cmd, stdout=self.run_log, stderr=subprocess.STDOUT,
                                      env=env, cwd=self.out)
        self.procs.append(self.ritma)
        deadline = time.monotonic() + 120
        while True:
            text = (self.out / "ritma-run.log").read_text()
            if "capturing node" in text and "metrics on http://" in text:
                break
            if self.ritma.poll() is not None:
                raise SoakError(f"ritma run exited ({self.ritma.returncode}) at start:\n{text}")
            if time.monotonic() > deadline:
                raise SoakError(f"ritma run did not start within 120 s:\n{text}")
            time.sleep(0.2)
        self.scrape()  # the endpoint answers
        log(f"ritma run is capturing (pid {self.ritma.pid}, metrics on 127.0.0.1:{self.port})")

    def scrape(self):
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            if r.status != 200:
                raise SoakError(f"{url}: HTTP {r.status}")
            return parse_metrics(r.read().decode())

    def healthz(self):
        url = f"http://127.0.0.1:{self.port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def sample(self, t0, load_running):
        if self.ritma.poll() is not None:
            raise SoakError(f"ritma run exited ({self.ritma.returncode}) during the soak")
        pid = self.ritma.pid
        m = self.scrape()
        now = time.time()
        fake_now = now + self.offset
        wal = wal_files(self.store)
        end = newest_sealed_end(self.store, self.a.window_s)
        events_by_type = by_label(m, "ritma_events_total", "type")
        lost = by_label(m, "ritma_events_lost_total", "reason")
        store = tree_bytes(self.store, skip_top=("wal",))
        s = {
            "t_s": time.monotonic() - t0,
            "fake_wall": fake_now,
            "rss_bytes": proc_rss(pid),
            "rss_metric_bytes": one(m, "ritma_resident_memory_bytes", 0.0),
            "cpu_s": proc_cpu(pid),
            "wal_bytes": sum(wal.values()),
            "wal_files": len(wal),
            "store_bytes": sum(store.values()),
            "windows_bytes": store.get("windows", 0),
            "cas_bytes": store.get("cas", 0),
            "events_total": sum(events_by_type.values()),
            "lost_total": sum(lost.values()),
            **{f"lost_{r}": lost.get(r, 0.0) for r in REASONS},
            "windows_sealed": one(m, "ritma_windows_sealed_total"),
            "seal_lag_windows": one(m, "ritma_seal_lag_windows", 0.0),
            "ringbuf_fill": one(m, "ritma_ringbuf_fill_ratio", 0.0),
            "ingest_lag_s": (fake_now - end) if end is not None else None,
            "healthz": self.healthz(),
            "load_running": int(load_running),
            "_buckets": buckets(m, "ritma_seal_latency_seconds"),
            "_wal": wal,
            "_events_by_type": events_by_type,
        }
        prev = self.samples[-1] if self.samples else None
        if prev:
            dt = s["t_s"] - prev["t_s"]
            s["events_per_s"] = (s["events_total"] - prev["events_total"]) / dt
            s["cpu_pct"] = 100 * (s["cpu_s"] - prev["cpu_s"]) / dt
            s["seals_interval"] = s["_buckets"][-1][1] - prev["_buckets"][-1][1]
            s["seal_p99_s"] = quantile(prev["_buckets"], s["_buckets"], 0.99)
        else:
            s.update(events_per_s=None, cpu_pct=None, seals_interval=None, seal_p99_s=None)
        self.samples.append(s)
        p99 = s["seal_p99_s"]
        lag = s["ingest_lag_s"]
        log(f"t={s['t_s']:7.1f}s rss {s['rss_bytes'] / MIB:6.1f} MiB  wal {fmt_bytes(s['wal_bytes'])}"
            f" ({s['wal_files']} files)  store {fmt_bytes(s['store_bytes'])}  events "
            f"{s['events_total']:.0f} ({(s['events_per_s'] or 0):.0f}/s)  lost {s['lost_total']:.0f}"
            f"  windows {s['windows_sealed']:.0f}  seal p99 "
            f"{'-' if p99 is None else f'{p99:.3f} s'}  lag "
            f"{'-' if lag is None else f'{lag:.2f} s'}  healthz {s['healthz']}")
        return s

    def soak(self):
        a = self.a
        self.out.mkdir(parents=True, exist_ok=True)
        ld = Path(a.load_dir) if a.load_dir else self.out / "loaddir"
        ld.mkdir(parents=True, exist_ok=True)
        self.start_ritma()
        t0 = time.monotonic()
        self.fake_t0 = time.time() + self.offset
        self.sample(t0, False)
        # Settle: what the machine produces without the load.
        time.sleep(a.settle)
        self.sample(t0, False)
        self.background_rate = self.samples[-1]["events_per_s"]
        mix = dict(kv.split("=") for kv in a.mix.split(","))
        lcmd = [a.load, "--jobs", str(a.jobs), "--dir", str(ld), "--duration",
                str(a.minutes * 60), "--rate", str(a.rate)]
        for k in ("execs", "opens", "renames", "connects"):
            lcmd += [f"--{k}", mix.get(k, "0")]
        log(f"load: {' '.join(lcmd)}")
        self.t_load0 = time.monotonic() - t0
        load_out = open(self.out / "load.json", "w")
        load = subprocess.Popen(lcmd, stdout=load_out, stderr=subprocess.PIPE, text=True)
        self.procs.append(load)
        # Samples jittered by up to ±0.5 s, so the ingest lag (which grows through each 1 s
        # window until the next one is sealed) is seen at every phase of the second.
        rng = random.Random(1)
        nxt = time.monotonic() + a.interval
        while load.poll() is None:
            time.sleep(max(0.0, nxt + rng.uniform(-0.5, 0.5) - time.monotonic()))
            nxt += a.interval
            self.sample(t0, load.poll() is None)
        self.t_load1 = time.monotonic() - t0
        load_err = load.stderr.read()
        load_out.close()
        self.procs.remove(load)
        if load.returncode != 0:
            raise SoakError(f"load generator exited {load.returncode}: {load_err}")
        self.load = json.loads((self.out / "load.json").read_text())
        if self.load.get("failed"):
            raise SoakError(f"load generator reported a failure: {self.load} {load_err}")
        # Let the last windows seal, then a final sample and stop.
        time.sleep(3)
        self.sample(t0, False)
        self.ritma.send_signal(signal.SIGINT)
        try:
            rc = self.ritma.wait(timeout=600)
        except subprocess.TimeoutExpired:
            raise SoakError("ritma run did not stop within 600 s of SIGINT")
        self.procs.remove(self.ritma)
        self.run_log.close()
        self.fake_t1 = time.time() + self.offset
        self.run_text = (self.out / "ritma-run.log").read_text()
        if rc != 0:
            raise SoakError(f"ritma run exited {rc}:\n{self.run_text[-3000:]}")
        log("ritma run stopped (exit 0)")

    # ---------------------------------------------------------------- after
    def after(self):
        a = self.a
        # The states: one for the hour ending at each boundary the run crossed.
        boundaries = list(range((math.floor(self.fake_t0 / 3600) + 1) * 3600,
                                int(self.fake_t1), 3600))
        states = {}
        for start, p in hour_dirs(self.store):
            f = p / "proofs" / "state.cbor.zst"
            if f.exists():
                states[start + 3600] = f.stat().st_size
        missing = [utc(b) for b in boundaries if b not in states]
        self.boundaries = boundaries
        self.states = states
        self.check("a saved state for every hour boundary crossed", not missing and boundaries,
                   f"{len(boundaries)} boundaries crossed ({', '.join(utc(b) for b in boundaries) or 'none'}); "
                   f"state files for the hours ending at {', '.join(utc(b) for b in sorted(states)) or 'none'}"
                   + (f"; missing: {', '.join(missing)}" if missing else ""))

        # WAL: bytes the run wrote = each file's largest size seen; at the run's mean rate,
        # what one hour of WAL would be.
        seen = {}
        for s in self.samples:
            for n, b in s["_wal"].items():
                seen[n] = max(seen.get(n, 0), b)
        final = wal_files(self.store)
        for n, b in final.items():
            seen[n] = max(seen.get(n, 0), b)
        written = sum(seen.values())
        span = self.samples[-1]["t_s"] - self.samples[0]["t_s"]
        per_hour = written / span * 3600 if span > 0 else 0
        wal_max = max(s["wal_bytes"] for s in self.samples)
        self.wal = {"written_bytes": written, "per_hour_bytes": per_hour, "max_bytes": wal_max,
                    "files_seen": sorted(seen), "files_left": sorted(final),
                    "deleted_lines": len(re.findall(r"^ritma: (deleted|moved) ", self.run_text, re.M))}
        # The WAL holds only the open hour: a sample more than TRIM_GRACE_S into an hour sees
        # no file started before that hour (the rate may vary, so no byte bound is implied).
        stale = [(round(s["t_s"]), n) for s in self.samples
                 for n in s["_wal"]
                 if s["fake_wall"] % 3600 > TRIM_GRACE_S
                 and int(n[:19]) < int(s["fake_wall"] // 3600 * 3600) * 10**9]
        biggest = max(seen.values(), default=0)
        self.check(f"WAL holds only the open hour (no earlier hour's file {TRIM_GRACE_S} s into an hour)",
                   not stale,
                   f"max {fmt_bytes(wal_max)}, the largest hour's file {fmt_bytes(biggest)}; one hour at "
                   f"the mean rate {fmt_bytes(per_hour)}; {fmt_bytes(written)} written in {len(seen)} files"
                   + (f"; earlier hours' files seen at (t s, file) {stale[:5]}" if stale else ""))
        if boundaries:
            last_b = boundaries[-1] * 10**9
            old = [n for n in final if int(n[:19]) < last_b]
            # The file that holds the restart point may start before the boundary (the
            # run's own first file); every file before it must be gone.
            rp_file = self.restart_file()
            before = [n for n in final if rp_file and n < rp_file]
            self.check("WAL files before the restart point's deleted",
                       not before and self.wal["deleted_lines"] >= (1 if len(seen) > 1 else 0),
                       f"left {sorted(final)}; restart point in {rp_file}; "
                       f"{self.wal['deleted_lines']} files deleted by the run; "
                       f"{len(old)} left starting before the last boundary")

        # The run's own closing lines.
        m = re.search(r"sealed (\d+) events in (\d+) windows .*p50 ([\d.]+) ms, p99 ([\d.]+) ms",
                      self.run_text)
        rec = re.search(r"recorded (\d+) events .*?; lost (\d+) \(([^)]*)\)", self.run_text)
        if not (m and rec):
            raise SoakError("ritma run's summary lines not found in ritma-run.log")
        ex = re.search(r"(\d+ executables hashed .*)$", rec.string[rec.start():].splitlines()[0])
        self.exes_line = ex[1] if ex else "?"
        self.run_summary = {"sealed_events": int(m[1]), "windows": int(m[2]),
                            "seal_p50_ms": float(m[3]), "seal_p99_ms": float(m[4]),
                            "recorded_events": int(rec[1]), "lost": int(rec[2]),
                            "lost_by_reason": rec[3]}

        # The kept WAL sealed again must give the store; then verify.
        for name, cmd in (("replay", [a.ritma, "replay", "--wal", "--out", str(self.store)]),
                          ("verify", [a.ritma, "verify", str(self.store), "--trust-embedded-key"])):
            log(f"{name}: {' '.join(cmd)}")
            t = time.monotonic()
            p = subprocess.run(cmd, capture_output=True, text=True)
            secs = time.monotonic() - t
            (self.out / f"{name}.log").write_text(p.stdout + p.stderr)
            setattr(self, f"{name}_result", {"rc": p.returncode, "seconds": secs,
                                              "output": (p.stdout + p.stderr).strip()[-2000:]})
            self.check(f"`ritma {' '.join(cmd[1:3])} …` exits 0", p.returncode == 0,
                       f"exit {p.returncode} in {secs:.1f} s: "
                       + ((p.stdout + p.stderr).strip().splitlines() or ['(no output)'])[-1][:400])

    def restart_file(self):
        """The WAL file the store's restart point names (wal/restart.cbor: a CBOR array
        of cut, file name, offset, state digest), or None."""
        try:
            b = (self.store / "wal" / "restart.cbor").read_bytes()
        except FileNotFoundError:
            return None
        m = re.search(rb"\d{19}\.rtrace", b)
        return m[0].decode() if m else None

    # --------------------------------------------------------------- report
    def write_csv(self):
        cols = ["t_s", "fake_wall", "load_running", "rss_bytes", "rss_metric_bytes", "cpu_s",
                "cpu_pct", "wal_bytes", "wal_files", "store_bytes", "windows_bytes", "cas_bytes", "events_total",
                "events_per_s", "lost_total"] + [f"lost_{r}" for r in REASONS] + [
                "windows_sealed", "seals_interval", "seal_p99_s", "seal_lag_windows",
                "ingest_lag_s", "ringbuf_fill", "healthz"]
        with open(self.out / "soak.csv", "w") as f:
            f.write(",".join(cols) + "\n")
            for s in self.samples:
                row = []
                for c in cols:
                    v = s.get(c)
                    row.append("" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v)))
                f.write(",".join(row) + "\n")

    def summary(self):
        ss = self.samples
        load = [s for s in ss if self.t_load0 <= s["t_s"] <= self.t_load1 + 1]
        after1 = [s for s in load if s["t_s"] >= self.t_load0 + 60]
        rss = [s["rss_bytes"] for s in ss]
        p99s = [s["seal_p99_s"] for s in load if s["seal_p99_s"] is not None]
        lags = sorted(s["ingest_lag_s"] for s in load if s["ingest_lag_s"] is not None)
        rates = [s["events_per_s"] for s in load[1:] if s["events_per_s"] is not None]
        whole = quantile(None, ss[-1]["_buckets"], 0.99)
        last = ss[-1]
        self.result = {
            "args": {k: v for k, v in vars(self.a).items()},
            "machine": {"nproc": os.cpu_count(), "loadavg_end": open("/proc/loadavg").read().split()[:3]},
            "fake_offset_s": self.offset,
            "run_wall": [utc(self.fake_t0), utc(self.fake_t1)],
            "load_seconds": self.t_load1 - self.t_load0,
            "load": self.load,
            "background_events_per_s": self.background_rate,
            "captured_events_per_s_median": statistics.median(rates) if rates else None,
            "captured_events_per_s_mean": ((load[-1]["events_total"] - load[0]["events_total"])
                                           / (load[-1]["t_s"] - load[0]["t_s"])) if len(load) > 1 else None,
            "events_total": last["events_total"],
            "events_by_type": last["_events_by_type"],
            "lost_total": last["lost_total"],
            "lost_by_reason": {r: last[f"lost_{r}"] for r in REASONS},
            "windows_sealed": last["windows_sealed"],
            "rss_mib": {"start": rss[0] / MIB, "load_start": load[0]["rss_bytes"] / MIB,
                        "end": rss[-1] / MIB, "max": max(rss) / MIB,
                        "slope_mib_per_min_after_1min": slope_per_min(
                            [s["t_s"] for s in after1], [s["rss_bytes"] / MIB for s in after1])},
            "ritma_cpu_pct_mean": (100 * (load[-1]["cpu_s"] - load[0]["cpu_s"]) /
                                   (load[-1]["t_s"] - load[0]["t_s"])) if len(load) > 1 else None,
            "store_bytes_end": last["store_bytes"],
            "store_windows_bytes_end": last["windows_bytes"],
            "store_cas_bytes_end": last["cas_bytes"],
            "store_bytes_per_event": last["store_bytes"] / max(last["events_total"], 1),
            "store_bytes_per_event_without_cas": (last["store_bytes"] - last["cas_bytes"])
                                                 / max(last["events_total"], 1),
            "wal": self.wal,
            "hour_boundaries": [utc(b) for b in self.boundaries],
            "states": {utc(b): n for b, n in sorted(self.states.items())},
            "seal_p99_s": {"interval_median": statistics.median(p99s) if p99s else None,
                           "interval_max": max(p99s) if p99s else None,
                           "whole_run_from_buckets": whole},
            "ingest_lag_s": {"median": statistics.median(lags) if lags else None,
                             "p99": lags[min(len(lags) - 1, int(0.99 * len(lags)))] if lags else None,
                             "max": lags[-1] if lags else None},
            "healthz_not_200": sum(1 for s in load if s["healthz"] != 200),
            "run_summary": self.run_summary,
            "replay": self.replay_result,
            "verify": self.verify_result,
            "checks": self.checks,
        }
        (self.out / "summary.json").write_text(json.dumps(self.result, indent=2, default=str) + "\n")
        r = self.result
        f = lambda v, p=1: "-" if v is None else f"{v:.{p}f}"
        md = [
            f"# ritma run soak: {self.a.minutes:g} min at {self.a.rate} events/s "
            f"({'libfaketime ' + str(self.offset) + ' s' if self.offset else 'real clock'})",
            "",
            f"- run wall clock {r['run_wall'][0]} → {r['run_wall'][1]}; load {f(r['load_seconds'], 0)} s, "
            f"mix {self.a.mix}, {self.a.jobs} jobs; load nominal {f(self.load.get('rate'), 0)} events/s",
            f"- captured: {r['events_total']:.0f} events, {f(r['captured_events_per_s_mean'], 0)} events/s "
            f"during the load (median of intervals {f(r['captured_events_per_s_median'], 0)}; "
            f"background before it {f(r['background_events_per_s'], 0)}/s)",
            f"- lost: {r['lost_total']:.0f} ({', '.join(f'{k} {v:.0f}' for k, v in r['lost_by_reason'].items())})",
            f"- windows sealed {r['windows_sealed']:.0f}; run's own seal latency p50 "
            f"{r['run_summary']['seal_p50_ms']} ms, p99 {r['run_summary']['seal_p99_ms']} ms",
            f"- seal p99 per {self.a.interval:g} s interval: median {f(r['seal_p99_s']['interval_median'], 3)} s, "
            f"max {f(r['seal_p99_s']['interval_max'], 3)} s (whole run from the buckets "
            f"{f(r['seal_p99_s']['whole_run_from_buckets'], 3)} s)",
            f"- ingest lag (run's wall clock − end of the newest window on disk): median "
            f"{f(r['ingest_lag_s']['median'], 2)} s, p99 {f(r['ingest_lag_s']['p99'], 2)} s, max "
            f"{f(r['ingest_lag_s']['max'], 2)} s; /healthz not 200 in {r['healthz_not_200']} samples",
            f"- RSS: start {f(r['rss_mib']['start'])} MiB, at load start {f(r['rss_mib']['load_start'])}, "
            f"end {f(r['rss_mib']['end'])}, max {f(r['rss_mib']['max'])} MiB; slope after the load's "
            f"first minute {f(r['rss_mib']['slope_mib_per_min_after_1min'], 2)} MiB/min; ritma CPU "
            f"{f(r['ritma_cpu_pct_mean'], 0)} % of a core",
            f"- WAL: max {fmt_bytes(r['wal']['max_bytes'])}, one hour at the mean rate "
            f"{fmt_bytes(r['wal']['per_hour_bytes'])}; files left {r['wal']['files_left']}",
            f"- store (without wal/) {fmt_bytes(r['store_bytes_end'])}, of it windows/ "
            f"{fmt_bytes(r['store_windows_bytes_end'])} and cas/ {fmt_bytes(r['store_cas_bytes_end'])} "
            f"(Full capture: {self.exes_line}); {f(r['store_bytes_per_event_without_cas'])} B/event "
            f"without cas/",
            f"- hour boundaries crossed: {', '.join(r['hour_boundaries']) or 'none'}; states: "
            + (", ".join(f"{k} ({v} B)" for k, v in r["states"].items()) or "none"),
            f"- `ritma replay --wal`: exit {r['replay']['rc']} in {f(r['replay']['seconds'])} s; "
            f"`ritma verify --trust-embedded-key`: exit {r['verify']['rc']} in {f(r['verify']['seconds'])} s",
            "",
            "| check | result | detail |",
            "|---|---|---|",
        ] + [f"| {c['check']} | {'PASS' if c['ok'] else 'FAIL'} | {c['detail']} |" for c in self.checks]
        (self.out / "summary.md").write_text("\n".join(md) + "\n")
        print("\n".join(md))

    def plot(self):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ss = self.samples
        t = [s["t_s"] / 60 for s in ss]
        fig, ax = plt.subplots(4, 1, figsize=(10, 11), sharex=True)
        ax[0].plot(t, [s["rss_bytes"] / MIB for s in ss], color="tab:blue", lw=1)
        ax[0].set_ylabel("VmRSS (MiB)")
        ax[0].set_ylim(bottom=0)
        ax[1].plot(t, [s["wal_bytes"] / MIB for s in ss], color="tab:orange", lw=1, label="WAL (wal/)")
        ax[1].plot(t, [s["store_bytes"] / MIB for s in ss], color="tab:green", lw=1,
                   label="store without wal/")
        ax[1].plot(t, [s["cas_bytes"] / MIB for s in ss], color="tab:olive", lw=0.8, ls=":",
                   label="of it cas/ (Full capture of unknown binaries)")
        ax[1].set_ylabel("disk (MiB)")
        ax[1].legend(fontsize=8, loc="upper left")
        ax[2].plot(t, [s["seal_p99_s"] if s["seal_p99_s"] is not None else float("nan") for s in ss],
                   color="tab:red", lw=1, label=f"seal latency p99 per {self.a.interval:g} s (buckets)")
        ax[2].plot(t, [s["ingest_lag_s"] if s["ingest_lag_s"] is not None else float("nan") for s in ss],
                   color="tab:purple", lw=0.8, label="ingest lag: wall − newest sealed window end")
        ax[2].set_ylabel("seconds")
        ax[2].set_ylim(bottom=0)
        ax[2].legend(fontsize=8, loc="upper left")
        ax[3].plot(t, [s["events_per_s"] if s["events_per_s"] is not None else float("nan") for s in ss],
                   color="tab:gray", lw=1, label="captured events/s")
        ax3b = ax[3].twinx()
        ax3b.plot(t, [s["lost_total"] for s in ss], color="tab:red", lw=1, label="lost (cumulative)")
        ax[3].set_ylabel("events/s")
        ax3b.set_ylabel("lost")
        ax[3].legend(fontsize=8, loc="upper left")
        ax3b.legend(fontsize=8, loc="upper right")
        ax[3].set_xlabel("minutes since ritma run started capturing")
        for a in ax:
            a.grid(alpha=0.3)
            a.axvspan(self.t_load0 / 60, self.t_load1 / 60, color="tab:green", alpha=0.05)
            for b in self.boundaries:
                a.axvline((b - self.fake_t0) / 60, color="k", ls="--", lw=0.7)
        r = self.result
        fig.suptitle(f"ritma run soak, {self.a.rate} events/s target ({r['captured_events_per_s_mean']:.0f} "
                     f"captured), {self.a.minutes:g} min; dashed: hour boundaries (run's wall clock)",
                     fontsize=10)
        fig.tight_layout()
        fig.savefig(self.out / "soak.png", dpi=100)
        log(f"plot: {self.out / 'soak.png'}")

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                log(f"stopping pid {p.pid}")
                p.send_signal(signal.SIGINT)
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=120.0, help="load duration (default 120)")
    p.add_argument("--rate", type=int, default=20000, help="nominal events/s of the load (default 20000)")
    p.add_argument("--out", required=True, help="work directory (store, logs, CSV, PNG)")
    p.add_argument("--fake-hour-offset", type=int, default=None, metavar="S",
                   help="run under libfaketime, the wall clock S s before an hour boundary at start")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    p.add_argument("--settle", type=float, default=10.0, help="seconds of capture before the load")
    p.add_argument("--jobs", type=int, default=2, help="load worker processes")
    p.add_argument("--mix", default="execs=1,opens=100,renames=5,connects=10",
                   help="load.c calls per iteration (exec 5 events, open 1, rename 3, connect 2)")
    p.add_argument("--load-dir", default=None,
                   help="where the load creates, renames and deletes its files (default OUT/loaddir)")
    p.add_argument("--node", default="soak-0")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--window-s", type=int, default=1, help="the run's window length (s)")
    p.add_argument("--ritma-arg", action="append", default=[], help="extra `ritma run` argument")
    p.add_argument("--keep-store", action="store_true", help="keep the store (deleted after the checks otherwise)")
    p.add_argument("--ritma", required=True)
    p.add_argument("--load", required=True)
    p.add_argument("--faketime-lib", default="/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
    a = p.parse_args()
    s = Soak(a)
    try:
        s.soak()
        s.after()
        s.write_csv()
        s.summary()
        s.plot()
    except SoakError as e:
        log(f"error: {e}")
        if s.samples:
            s.write_csv()
        return 2
    finally:
        s.cleanup()
    if not a.keep_store and all(c["ok"] for c in s.checks):
        import shutil
        shutil.rmtree(s.store)
        log(f"removed {s.store} (--keep-store keeps it)")
    if not all(c["ok"] for c in s.checks):
        log("some checks failed: see summary.md")
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
