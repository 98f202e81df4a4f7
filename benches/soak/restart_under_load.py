#!/usr/bin/env python3
"""A `ritma run` restart under load, on a store a soak left (`soak.py --keep-store`).

Copies STORE, starts the load generator at --rate, then `ritma run --out COPY --metrics
127.0.0.1:PORT --duration --seconds` under libfaketime with the wall clock at the store's
newest window end + 5 s (so the restart continues the store's open hour). The run seals the
kept WAL again (from the restart point) before its live items; meanwhile the capture waits
and the kernel ring buffer takes the slack. Sampled every second: events, loss by reason,
windows sealed, and whether a window of the new run is on disk yet (caught up). Every exit
status is checked; the continued copy is verified afterwards. Prints and writes
restart.json into --out.

  restart_under_load.py --ritma R --load L --store STORE --out DIR [--rate 20000]
        [--seconds 120] [--node soak-0] [--mix …]
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak import REASONS, SoakError, by_label, free_port, log, newest_sealed_end, parse_metrics  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ritma", required=True)
    p.add_argument("--load", required=True)
    p.add_argument("--store", required=True, help="a store a soak left (not changed: copied)")
    p.add_argument("--out", required=True)
    p.add_argument("--rate", type=int, default=20000)
    p.add_argument("--seconds", type=int, default=120, help="the restarted run's --duration")
    p.add_argument("--node", default="soak-0")
    p.add_argument("--mix", default="execs=1,opens=100,renames=5,connects=10")
    p.add_argument("--load-dir", default=None)
    p.add_argument("--faketime-lib", default="/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
    a = p.parse_args()
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    copy = out / "store"
    if copy.exists():
        raise SystemExit(f"{copy} exists: give a new --out")
    subprocess.run(["cp", "-a", a.store, str(copy)], check=True)
    subprocess.run(["sync"], check=True)
    end = newest_sealed_end(copy, 1)
    if end is None:
        raise SystemExit(f"{a.store}: no sealed window")
    ld = Path(a.load_dir) if a.load_dir else out / "loaddir"
    ld.mkdir(parents=True, exist_ok=True)
    mix = dict(kv.split("=") for kv in a.mix.split(","))
    lcmd = [a.load, "--jobs", "2", "--dir", str(ld), "--duration", str(a.seconds + 20),
            "--rate", str(a.rate)] + sum(([f"--{k}", mix.get(k, "0")] for k in
                                          ("execs", "opens", "renames", "connects")), [])
    load = subprocess.Popen(lcmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ritma = None
    try:
        time.sleep(5)
        port = free_port()
        env = dict(os.environ)
        for k in ("RITMA_OUT", "RITMA_NODE_ID", "RITMA_CONFIG"):
            env.pop(k, None)
        offset = int(round(end + 5 - time.time()))
        env.update(LD_PRELOAD=a.faketime_lib, FAKETIME=f"{offset:+d}s", FAKETIME_DONT_FAKE_MONOTONIC="1")
        cmd = [a.ritma, "run", "--out", str(copy), "--node", a.node, "--metrics",
               f"127.0.0.1:{port}", "--duration", str(a.seconds)]
        logf = open(out / "ritma-run.log", "w")
        log(f"load running; FAKETIME={offset:+d}s {' '.join(cmd)}")
        t0 = time.monotonic()
        fake_start = time.time() + offset
        ritma = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env)
        samples, t_cap, t_caught = [], None, None
        while ritma.poll() is None:
            time.sleep(1)
            t = time.monotonic() - t0
            text = (out / "ritma-run.log").read_text()
            if t_cap is None and "capturing node" in text:
                t_cap = t
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    m = parse_metrics(r.read().decode())
            except OSError:
                continue  # not serving yet, or stopping
            newest = newest_sealed_end(copy, 1)
            lost = by_label(m, "ritma_events_lost_total", "reason")
            s = {"t": t, "events": sum(by_label(m, "ritma_events_total", "type").values()),
                 **{f"lost_{r}": lost.get(r, 0) for r in REASONS},
                 "windows_sealed": m.get("ritma_windows_sealed_total", [({}, 0)])[0][1],
                 "seal_lag_windows": m.get("ritma_seal_lag_windows", [({}, 0)])[0][1],
                 "newest_sealed_end": newest}
            samples.append(s)
            if t_caught is None and newest is not None and newest > fake_start:
                t_caught = t
                log(f"caught up after {t:.1f} s (a window of the new run is sealed)")
        rc = ritma.wait()
        logf.close()
        t_exit = time.monotonic() - t0
        text = (out / "ritma-run.log").read_text()
        if rc != 0:
            raise SoakError(f"ritma run exited {rc}:\n{text[-3000:]}")
        lo, le = load.communicate(timeout=120)
        if load.returncode != 0:
            raise SoakError(f"load exited {load.returncode}: {le}")
        rec = re.search(r"recorded (\d+) events .*?; lost (\d+) \(([^)]*)\)", text)
        cont = re.search(r"continuing the store .*", text)
        sealed = re.search(r"sealed (\d+) events in (\d+) windows .*p50 ([\d.]+) ms, p99 ([\d.]+) ms", text)
        if not (rec and cont and sealed):
            raise SoakError(f"summary lines missing:\n{text[-3000:]}")
        v = subprocess.run([a.ritma, "verify", str(copy), "--trust-embedded-key"], capture_output=True, text=True)
        (out / "verify.log").write_text(v.stdout + v.stderr)
        if v.returncode != 0:
            raise SoakError(f"verify exited {v.returncode}: {v.stdout}{v.stderr}")
        res = {"rate": a.rate, "seconds": a.seconds, "load": json.loads(lo),
               "to_capturing_s": t_cap, "to_caught_up_s": t_caught, "to_exit_s": t_exit,
               "continuing": cont[0], "recorded_events": int(rec[1]), "lost": int(rec[2]),
               "lost_by_reason": rec[3], "sealed_events": int(sealed[1]), "sealed_windows": int(sealed[2]),
               "seal_p50_ms": float(sealed[3]), "seal_p99_ms": float(sealed[4]),
               "verify": (v.stdout.splitlines() or [""])[0], "samples": samples}
        (out / "restart.json").write_text(json.dumps(res, indent=2) + "\n")
        print(json.dumps({k: v for k, v in res.items() if k != "samples"}, indent=2))
        shutil.rmtree(copy)
        return 0
    except SoakError as e:
        log(f"error: {e}")
        return 2
    finally:
        for pr in (ritma, load):
            if pr is not None and pr.poll() is None:
                pr.send_signal(signal.SIGINT)
                try:
                    pr.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    pr.kill()
                    pr.wait()


if __name__ == "__main__":
    sys.exit(main())
