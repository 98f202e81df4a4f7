#!/usr/bin/env python3
"""Restart time of a store against its age (started by run.sh, which builds `ritma`).

For each age N (hours): a store whose WAL holds N full hours of synthetic input and
--open-minutes of the next hour (the hour a stopped run left open): `ritma keys init
--out STORE --node synth-0`, `ritma synth --events E --rate R` moved to
STORE/wal/0000000000000000001.rtrace, and `ritma replay --wal --out STORE`, which seals it,
saves the dataflow state at every hour seal and writes the restart point
(wal/restart.cbor). Then, --reps interleaved repetitions (ages and the order of a/b
rotated), each timed as a whole process (wall, CPU, peak RSS from wait4):

  (a) restart from the saved state: `ritma replay --wal --out STORE`, which seals again
      only the WAL from the restart point (the last hour seal's cut) on;
  (b) the old behaviour: the same with wal/restart.cbor moved away for the call, so it
      seals the whole WAL again from its start (put back afterwards, also on errors).

Both must exit 0; the store's content (every file, wal/ included) must be the same after
all repetitions as before (a re-seal compares, never rewrites), and `ritma verify STORE
--trust-embedded-key` must pass at the end.

With --live-reps K > 0, also a real `ritma run` restart on the --live-age store: a fresh
copy of the store for each repetition, `ritma run --out COPY --node synth-0 --duration 1`
under libfaketime (wall clock only) set to the trace's last window end + 5 s; timed from
the process start to the stderr line "ritma: capturing node" and to its exit (exit 0
required; the first copy is verified afterwards); interleaved with each, the same command
on a new, empty store (real clock) as the baseline: the sensor's load, start and stop.

Writes results.json and results.md into --work; prints the tables.
"""
import argparse
import calendar
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

SYNTH_START = calendar.timegm((2026, 11, 1, 0, 0, 0))  # sources/src/synth.rs SYNTH_START_WALL_NS
WAL_NAME = "0000000000000000001.rtrace"


class BenchError(Exception):
    pass


def log(msg):
    print(f"[restart {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def timed(cmd, env=None, log_path=None):
    """Runs cmd; returns (exit status, wall s, user+sys s, max RSS MiB, output)."""
    t = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    if log_path:
        with open(log_path, "a") as f:
            f.write(f"$ {' '.join(map(str, cmd))}\n{out}(exit {p.returncode}, {wall:.2f} s)\n")
    return p.returncode, wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, out


def must(cmd, log_path, what, env=None):
    rc, wall, cpu, rss, out = timed(cmd, env=env, log_path=log_path)
    if rc != 0:
        raise BenchError(f"{what}: `{' '.join(map(str, cmd))}` exited {rc}:\n{out[-3000:]}")
    return wall, cpu, rss, out


def sealed_line(out):
    m = re.search(r"sealed (\d+) events of \d+ node\(s\) in (\d+) windows", out)
    if not m:
        raise BenchError(f"no `sealed … events … windows` line in:\n{out[-2000:]}")
    return int(m[1]), int(m[2])


def tree_digest(root):
    """BLAKE2b over every regular file's relative path and content, sorted."""
    h = hashlib.blake2b(digest_size=32)
    files = sorted(p for p in Path(root).rglob("*") if p.is_file())
    total = 0
    for p in files:
        h.update(str(p.relative_to(root)).encode() + b"\0")
        with open(p, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
                total += len(chunk)
        h.update(b"\0")
    return h.hexdigest(), len(files), total


def dir_bytes(root, skip=()):
    return sum(p.stat().st_size for p in Path(root).rglob("*")
               if p.is_file() and not any(s in p.relative_to(root).parts[:1] for s in skip))


def last_window_end(store):
    """End (unix s) of the newest window on disk (1 s windows)."""
    base = store / "windows"
    hours = sorted(base.glob("[0-9]*/[0-9]*/[0-9]*/[0-9]*"))
    if not hours:
        raise BenchError(f"{store}: no windows")
    y, mo, d, h = (int(x) for x in hours[-1].relative_to(base).parts)
    idx = max(int(p.name[1:5]) for p in (hours[-1] / "micro").glob("w*.sig"))
    return calendar.timegm((y, mo, d, h, 0, 0)) + idx + 1


def med(xs):
    return statistics.median(xs) if xs else None


class Bench:
    def __init__(self, a):
        self.a = a
        self.work = Path(a.work).resolve()
        self.work.mkdir(parents=True, exist_ok=True)
        self.log = self.work / "commands.log"
        self.res = {"args": vars(a), "stores": {}, "runs": [], "live": []}

    def save(self):
        (self.work / "results.json").write_text(json.dumps(self.res, indent=2) + "\n")

    def build(self, age):
        a = self.a
        d = self.work / f"age-{age}h"
        store = d / "store"
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        span = age * 3600 + a.open_minutes * 60
        events = int(span * a.rate)
        log(f"age {age} h: {events} synthetic events at {a.rate}/s ({span} s of input)")
        must([a.ritma, "keys", "init", "--out", str(store), "--node", "synth-0"], self.log, "keys init")
        (store / "wal").mkdir()
        trace = d / "t.rtrace"
        synth_s, _, _, _ = must([a.ritma, "synth", "--events", str(events), "--rate", str(a.rate),
                                 "--out", str(trace)], self.log, "synth")
        trace.rename(store / "wal" / WAL_NAME)
        seal_s, seal_cpu, seal_rss, out = must([a.ritma, "replay", "--wal", "--out", str(store)],
                                               self.log, "initial seal")
        ev, win = sealed_line(out)
        rp = store / "wal" / "restart.cbor"
        if not rp.exists():
            raise BenchError(f"{store}: the initial seal wrote no wal/restart.cbor")
        states = sorted(str(p.relative_to(store)) for p in store.glob("windows/*/*/*/*/proofs/state.cbor.zst"))
        if len(states) != age:
            raise BenchError(f"{store}: {len(states)} saved states for {age} full hours: {states}")
        digest, nfiles, nbytes = tree_digest(store)
        info = {"events": ev, "windows": win, "span_s": span, "synth_s": synth_s,
                "initial_seal_s": seal_s, "initial_seal_cpu_s": seal_cpu,
                "initial_seal_rss_mib": seal_rss,
                "wal_bytes": (store / "wal" / WAL_NAME).stat().st_size,
                "store_bytes_without_wal": dir_bytes(store, skip=("wal",)),
                "files": nfiles, "states": states, "digest": digest,
                "last_window_end": last_window_end(store)}
        log(f"age {age} h: sealed {ev} events in {win} windows in {seal_s:.1f} s; "
            f"{len(states)} states; WAL {info['wal_bytes'] / 1e6:.0f} MB, store "
            f"{info['store_bytes_without_wal'] / 1e6:.0f} MB")
        self.res["stores"][str(age)] = info
        self.save()
        return store

    def restart_a(self, store):
        return timed([self.a.ritma, "replay", "--wal", "--out", str(store)], log_path=self.log)

    def restart_b(self, store):
        rp = store / "wal" / "restart.cbor"
        aside = store.parent / "restart.cbor.aside"
        original = rp.read_bytes()
        rp.rename(aside)
        try:
            r = timed([self.a.ritma, "replay", "--wal", "--out", str(store)], log_path=self.log)
            if rp.exists() and rp.read_bytes() != original:
                raise BenchError(f"{store}: the full re-seal wrote another restart point "
                                 f"({rp.read_bytes().hex()} against {original.hex()})")
        finally:
            os.replace(aside, rp)
        return r

    def measure(self, stores):
        a = self.a
        ages = list(stores)
        for rep in range(a.reps):
            order = ages if rep % 2 == 0 else ages[::-1]
            for i, age in enumerate(order):
                kinds = ("a", "b") if (rep + i) % 2 == 0 else ("b", "a")
                for k in kinds:
                    fn = self.restart_a if k == "a" else self.restart_b
                    rc, wall, cpu, rss, out = fn(stores[age])
                    if rc != 0:
                        raise BenchError(f"rep {rep + 1} age {age} ({k}) exited {rc}:\n{out[-3000:]}")
                    ev, win = sealed_line(out)
                    r = {"rep": rep + 1, "age": age, "kind": k, "wall_s": wall, "cpu_s": cpu,
                         "rss_mib": rss, "events": ev, "windows": win,
                         "loadavg": open("/proc/loadavg").read().split()[0]}
                    self.res["runs"].append(r)
                    log(f"rep {rep + 1} age {age} h ({k}): {wall:.2f} s, CPU {cpu:.2f} s, "
                        f"RSS {rss:.0f} MiB, {ev} events in {win} windows (load {r['loadavg']})")
                    self.save()

    def finish_checks(self, stores):
        for age, store in stores.items():
            digest, _, _ = tree_digest(store)
            info = self.res["stores"][str(age)]
            if digest != info["digest"]:
                raise BenchError(f"{store}: its content changed during the repetitions")
            wall, _, _, out = must([self.a.ritma, "verify", str(store), "--trust-embedded-key"],
                                   self.log, f"verify age {age}")
            info["verify_s"] = wall
            info["verify"] = [l for l in out.splitlines() if l.startswith("OK")][:1]
            log(f"age {age} h: unchanged after the repetitions; verify exit 0 in {wall:.1f} s")
        self.save()

    def live(self, store):
        a = self.a
        lib = a.faketime_lib
        if not Path(lib).exists():
            raise BenchError(f"no libfaketime at {lib} (apt-get install faketime)")
        end = self.res["stores"][str(a.live_age)]["last_window_end"]
        # Each repetition: the continued store, then (the baseline) a new, empty store.
        for rep, fresh in ((r, f) for r in range(a.live_reps) for f in (False, True)):
            copy = self.work / "live-copy"
            if copy.exists():
                shutil.rmtree(copy)
            env = dict(os.environ)
            for k in ("RITMA_OUT", "RITMA_NODE_ID", "RITMA_CONFIG"):
                env.pop(k, None)
            if not fresh:
                subprocess.run(["cp", "-a", str(store), str(copy)], check=True)
                subprocess.run(["sync"], check=True)
                offset = int(round(end + 5 - time.time()))
                env.update(LD_PRELOAD=lib, FAKETIME=f"{offset:+d}s", FAKETIME_DONT_FAKE_MONOTONIC="1")
            else:
                offset = 0
            cmd = [a.ritma, "run", "--out", str(copy), "--node", "synth-0", "--duration", "1"]
            lines = []
            t0 = time.monotonic()
            p = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, text=True)

            def reader():
                for line in p.stderr:
                    lines.append((time.monotonic() - t0, line.rstrip("\n")))

            th = threading.Thread(target=reader)
            th.start()
            _, status, ru = os.wait4(p.pid, 0)
            t_exit = time.monotonic() - t0
            th.join()
            rc = os.waitstatus_to_exitcode(status)
            text = "\n".join(f"{t:8.3f} {l}" for t, l in lines)
            with open(self.log, "a") as f:
                how = "(new, empty store, real clock)" if fresh else f"FAKETIME={offset:+d}s"
                f.write(f"$ {how} {' '.join(cmd)}\n{text}\n(exit {rc}, {t_exit:.2f} s)\n")
            if rc != 0:
                raise BenchError(f"live rep {rep + 1}: ritma run exited {rc}:\n{text[-3000:]}")
            cap = [t for t, l in lines if l.startswith("ritma: capturing node")]
            cont = [l for _, l in lines if "continuing the store" in l]
            if not cap or (not cont and not fresh) or (cont and fresh):
                raise BenchError(f"live rep {rep + 1}: capturing/continuing lines not as expected:\n{text[-3000:]}")
            cont = cont or [""]
            sealed = re.search(r"sealed (\d+) events in (\d+) windows", text)
            r = {"rep": rep + 1, "store": "new, empty" if fresh else f"{a.live_age} h", "to_capturing_s": cap[0], "to_exit_s": t_exit,
                 "cpu_s": ru.ru_utime + ru.ru_stime, "rss_mib": ru.ru_maxrss / 1024,
                 "continuing": cont[0], "fake_offset_s": offset,
                 "sealed_events": int(sealed[1]) if sealed else None,
                 "sealed_windows": int(sealed[2]) if sealed else None,
                 "loadavg": open("/proc/loadavg").read().split()[0]}
            self.res["live"].append(r)
            log(f"live rep {rep + 1} ({r['store']} store): capturing after {cap[0]:.2f} s, exit after {t_exit:.2f} s "
                f"(CPU {r['cpu_s']:.1f} s, RSS {r['rss_mib']:.0f} MiB); {cont[0]}")
            self.save()
            if rep == 0 and not fresh:  # the continued store checks (once: a verify costs more than a restart)
                wall, _, _, out = must([a.ritma, "verify", str(copy), "--trust-embedded-key"], self.log,
                                       "verify of the first live copy")
                r["verify_s"] = wall
                self.save()
            shutil.rmtree(copy)

    def report(self):
        a, res = self.a, self.res
        md = [f"Synthetic input at {a.rate} events/s ({a.rate * 3600 / 1e6:.1f} M events per hour), "
              f"1 s windows; each store's WAL ends {a.open_minutes} min into the hour after its "
              f"last full one. Medians of {a.reps} interleaved repetitions [min–max].", "",
              "| age (full hours) | events in the WAL | windows | (a) restart from the saved state, s | "
              "(b) whole WAL again, s | (b) / (a) | (a) events re-sealed | (a) / (b) CPU s | "
              "(a) / (b) peak RSS MiB |",
              "|---|---|---|---|---|---|---|---|---|"]
        for age, info in sorted(res["stores"].items(), key=lambda kv: int(kv[0])):
            ra = [r for r in res["runs"] if str(r["age"]) == age and r["kind"] == "a"]
            rb = [r for r in res["runs"] if str(r["age"]) == age and r["kind"] == "b"]
            if not ra or not rb:
                continue
            wa, wb = [r["wall_s"] for r in ra], [r["wall_s"] for r in rb]
            info["median_a_s"], info["median_b_s"] = med(wa), med(wb)
            md.append(f"| {age} | {info['events']:,} | {info['windows']:,} | {med(wa):.2f} "
                      f"[{min(wa):.2f}–{max(wa):.2f}] | {med(wb):.2f} [{min(wb):.2f}–{max(wb):.2f}] | "
                      f"{med(wb) / med(wa):.1f}× | {ra[0]['events']:,} in {ra[0]['windows']:,} windows | "
                      f"{med([r['cpu_s'] for r in ra]):.1f} / {med([r['cpu_s'] for r in rb]):.1f} | "
                      f"{med([r['rss_mib'] for r in ra]):.0f} / {med([r['rss_mib'] for r in rb]):.0f} |")
        md += ["", "| age | initial seal of the whole WAL, s | WAL MB | store MB (without wal/) | "
               "saved states | verify, s |", "|---|---|---|---|---|---|"]
        for age, info in sorted(res["stores"].items(), key=lambda kv: int(kv[0])):
            md.append(f"| {age} | {info['initial_seal_s']:.1f} | {info['wal_bytes'] / 1e6:.0f} | "
                      f"{info['store_bytes_without_wal'] / 1e6:.0f} | {len(info['states'])} | "
                      f"{info.get('verify_s', float('nan')):.1f} |")
        if res["live"]:
            md += ["", f"`ritma run --node synth-0 --duration 1`: restart on the {a.live_age}-hour store "
                   f"(a fresh copy each time; libfaketime, wall clock = its last window's end + 5 s), and, "
                   f"interleaved, the same on a new, empty store. Medians of "
                   f"{len(res['live']) // 2} [min–max]:", "",
                   "| store | process start → \"ritma: capturing node\", s | process start → exit, s | "
                   "CPU s | peak RSS MiB | events / windows sealed by the run |",
                   "|---|---|---|---|---|---|"]
            for kind in (f"{a.live_age} h", "new, empty"):
                lv = [r for r in res["live"] if r["store"] == kind]
                tc, te = [r["to_capturing_s"] for r in lv], [r["to_exit_s"] for r in lv]
                md.append(f"| {kind} | {med(tc):.2f} [{min(tc):.2f}–{max(tc):.2f}] | "
                          f"{med(te):.2f} [{min(te):.2f}–{max(te):.2f}] | "
                          f"{med([r['cpu_s'] for r in lv]):.1f} | {med([r['rss_mib'] for r in lv]):.0f} | "
                          f"{med([r['sealed_events'] for r in lv]):,.0f} / {med([r['sealed_windows'] for r in lv]):,.0f} |")
        self.save()
        (self.work / "results.md").write_text("\n".join(md) + "\n")
        print("\n".join(md))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ages", default="1,6", help="store ages in full hours, comma-separated (default 1,6)")
    p.add_argument("--rate", type=int, default=1000, help="synthetic events/s (default 1000: 3.6 M per hour)")
    p.add_argument("--open-minutes", type=int, default=30,
                   help="minutes of input after the last full hour (default 30)")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--live-reps", type=int, default=5, help="real `ritma run` restarts (0: none)")
    p.add_argument("--live-age", type=int, default=None, help="the store for them (default the oldest)")
    p.add_argument("--work", required=True)
    p.add_argument("--ritma", required=True)
    p.add_argument("--faketime-lib", default="/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
    p.add_argument("--keep", action="store_true", help="keep the stores")
    a = p.parse_args()
    ages = sorted({int(x) for x in a.ages.split(",")})
    if not ages or min(ages) < 1:
        p.error("--ages: whole hours ≥ 1")
    if not 1 <= a.open_minutes <= 59:
        p.error("--open-minutes: 1 to 59")
    a.live_age = a.live_age or ages[-1]
    if a.live_reps and a.live_age not in ages:
        p.error("--live-age must be one of --ages")
    b = Bench(a)
    try:
        stores = {age: b.build(age) for age in ages}
        b.measure(stores)
        b.finish_checks(stores)
        if a.live_reps:
            b.live(stores[a.live_age])
        b.report()
    except BenchError as e:
        log(f"error: {e}")
        b.save()
        return 2
    if not a.keep:
        for age in ages:
            shutil.rmtree(b.work / f"age-{age}h")
    return 0


if __name__ == "__main__":
    sys.exit(main())
