#!/usr/bin/env python3
"""Shipping benchmark: node store → Kafka-protocol broker → `ritma ingest` → central store.

Run through benches/kafka/run.sh (it builds the binaries and finds the broker). Phases:

e2e    A store from `ritma synth` + `ritma replay`. Each repetition, interleaved (the order
       alternates), runs
         ritma     `ritma ingest` and `ritma ship` started together on a fresh topic, fresh
                   group, fresh copy of the store and fresh central store; the end is the
                   moment the ingest's state (OUT/ingest/nodes/N.json) says it applied the
                   last envelope ship sent (polled every 5 ms). events/s = store events ÷ that.
         baseline  `kafka_bench baseline`: the same message values (ShipParts made from the
                   store as ship makes them) produced by a producer configured as Ritma's
                   (idempotent, acks=all, zstd) and consumed by a consumer group, started
                   together, to a fresh topic; the end is the consumer holding every message.
         ingest    `ritma ingest` alone, fresh group and central store, on the topic the ritma
                   run of this repetition filled: time to the last envelope applied.
       CPU of ship and ingest (user + sys, wait4) and of the broker (/proc/PID/stat) per run.
       The first ritma run is a warm-up, not counted; its central store is verified
       (`ritma verify --trust`) and compared byte for byte with the node's.
ocsf   `ritma ship` with and without `--ocsf`, interleaved, fresh topics and store copies:
       OCSF messages/s = OCSF events ÷ ship time with --ocsf, and ÷ the added time.
lag    `ritma run --kafka-brokers` under benches/overhead/load.c at each --lag-rates rate;
       every 200 ms the newest sealed window (largest micro/wNNNN.sig) and the store's cursor
       (_meta/ship/<topic>.cbor, decoded here with cbor2) are read; see the report for the
       definitions. Writes lag.csv and a PNG of lag over time.

Every command's exit status is checked: any failure stops the benchmark with its output.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    pass


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    """Runs cmd to completion; fails loudly on a non-zero exit. Returns stdout (text)."""
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise BenchError(
            f"command failed (exit {p.returncode}): {' '.join(map(str, cmd))}\n"
            f"--- stdout ---\n{p.stdout[-4000:]}\n--- stderr ---\n{p.stderr[-4000:]}"
        )
    return p.stdout + p.stderr


class Child:
    """A background process whose CPU (user + sys, wait4 rusage) is collected at exit."""

    def __init__(self, name, cmd, work, env=None):
        self.name, self.cmd = name, cmd
        self.out_path = Path(work) / f"{name}.out"
        self.err_path = Path(work) / f"{name}.err"
        self.out = open(self.out_path, "w")
        self.err = open(self.err_path, "w")
        self.p = subprocess.Popen(
            cmd, stdout=self.out, stderr=self.err, stdin=subprocess.DEVNULL, env=env
        )
        self.t_start = time.monotonic()
        self.t_end = None
        self.rc = None
        self.cpu = None

    def poll(self):
        """True once exited (reaped with its rusage)."""
        if self.rc is not None:
            return True
        pid, status, ru = os.wait4(self.p.pid, os.WNOHANG)
        if pid == 0:
            return False
        self._reaped(status, ru)
        return True

    def _reaped(self, status, ru):
        self.t_end = time.monotonic()
        self.rc = os.waitstatus_to_exitcode(status)
        self.p.returncode = self.rc
        self.cpu = ru.ru_utime + ru.ru_stime
        self.user, self.sys = ru.ru_utime, ru.ru_stime
        self.out.close()
        self.err.close()

    def wait(self, timeout):
        deadline = time.monotonic() + timeout
        while not self.poll():
            if time.monotonic() > deadline:
                self.kill()
                raise BenchError(f"{self.name} did not exit within {timeout} s: {self.text()}")
            time.sleep(0.02)
        if self.rc != 0:
            raise BenchError(f"{self.name} failed (exit {self.rc}): {' '.join(self.cmd)}\n{self.text()}")
        return self

    def kill(self):
        if self.rc is None:
            self.p.kill()
            _, status, ru = os.wait4(self.p.pid, 0)
            self._reaped(status, ru)

    def text(self):
        o = self.out_path.read_text(errors="replace") if self.out_path.exists() else ""
        e = self.err_path.read_text(errors="replace") if self.err_path.exists() else ""
        return f"--- stdout ---\n{o[-4000:]}\n--- stderr ---\n{e[-4000:]}"

    def stdout(self):
        return self.out_path.read_text(errors="replace")

    def stderr(self):
        return self.err_path.read_text(errors="replace")


def proc_cpu(pid):
    """user + sys CPU seconds of a running process (and its reaped children)."""
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / CLK_TCK


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def rng(xs):
    return f"[{min(xs):.2f}–{max(xs):.2f}]" if xs else ""


class Broker:
    """tansu with the in-memory engine, started as tests/broker.rs starts it (no proxy)."""

    def __init__(self, tansu, work):
        self.tansu = tansu
        self.dir = Path(work) / "tansu"
        self.dir.mkdir()
        self.port = free_port()
        self.url = f"tcp://127.0.0.1:{self.port}"
        self.bootstrap = f"127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items()
               if k not in ("CLUSTER_ID", "SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT")}
        env.update(RUST_LOG="warn", NO_COLOR="1")
        self.logf = open(self.dir / "tansu.log", "w")
        self.p = subprocess.Popen(
            [tansu, "broker", "--listener-url", self.url, "--advertised-listener-url", self.url,
             "--storage-engine", "memory://tansu/"],
            cwd=self.dir, env=env, stdin=subprocess.DEVNULL, stdout=self.logf, stderr=self.logf)
        deadline = time.monotonic() + 30
        while True:
            if self.p.poll() is not None:
                raise BenchError(f"tansu exited at start: {(self.dir / 'tansu.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise BenchError("tansu did not listen within 30 s")
                time.sleep(0.1)

    def create_topic(self, name, partitions):
        deadline = time.monotonic() + 30
        while True:
            p = subprocess.run(
                [self.tansu, "topic", "create", "--broker", self.url, name,
                 "--partitions", str(partitions)],
                cwd=self.dir, capture_output=True, text=True,
                env=dict(os.environ, NO_COLOR="1", RUST_LOG="error"))
            if p.returncode == 0:
                return
            if "already exists" in p.stdout + p.stderr or time.monotonic() > deadline:
                raise BenchError(f"tansu topic create {name} failed: {p.stdout}{p.stderr}")
            time.sleep(0.2)

    def cpu(self):
        return proc_cpu(self.p.pid)

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def tree_files(root, skip):
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            full = Path(dirpath) / f
            rel = full.relative_to(root).as_posix()
            if any(rel == s or rel.startswith(s + "/") for s in skip):
                continue
            out[rel] = full
    return out


# What a receiver does not get (FORMAT.md §12.2): the node's own files.
NODE_OWN = ["wal", "_meta/keys/signing.key", "_meta/ship", "_meta/witnessed", "cases"]


def compare_trees(node_root, central_root):
    a = tree_files(node_root, NODE_OWN)
    b = tree_files(central_root, [])
    missing = sorted(set(a) - set(b))
    extra = sorted(set(b) - set(a))
    differ = sorted(k for k in set(a) & set(b) if a[k].read_bytes() != b[k].read_bytes())
    return {"files": len(a), "missing": missing[:10], "n_missing": len(missing),
            "extra": extra[:10], "n_extra": len(extra), "differ": differ[:10],
            "n_differ": len(differ)}


def seal_to_ship(samples, t_load):
    """Per window sealed while the load ran: from the first sample that saw it sealed to the
    first that saw the cursor past it (200 ms resolution: a delay under one sampling period
    reads as 0 or 0.2 s)."""
    sealed_at, shipped_at = {}, {}
    for s in samples:
        for w in range((min(sealed_at) if sealed_at else s["newest"]), s["newest"] + 1):
            sealed_at.setdefault(w, s["t"])
        if s["next_window"] is not None:
            for w in list(sealed_at):
                if w < s["next_window"]:
                    shipped_at.setdefault(w, s["t"])
    d = sorted(shipped_at[w] - sealed_at[w] for w in shipped_at
               if t_load[0] <= sealed_at[w] <= t_load[1])
    if not d:
        return {}
    return {"ship_delay_windows": len(d), "ship_delay_p50": d[len(d) // 2],
            "ship_delay_p99": d[min(len(d) - 1, int(0.99 * len(d)))], "ship_delay_max": d[-1]}


def du_bytes(path):
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


class Bench:
    def __init__(self, a):
        self.a = a
        self.work = Path(a.work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.results = {"args": vars(a)}
        self.env = dict(os.environ, RITMA_LOCK_DIR=str(self.work / "locks"))
        self.n = 0

    def save(self):
        (self.work / "results.json").write_text(json.dumps(self.results, indent=1, default=str))

    def uniq(self, stem):
        self.n += 1
        return f"{stem}{self.n}"

    def ritma(self, *args):
        return run([self.a.ritma, *map(str, args)], env=self.env)

    # ---------------------------------------------------------------- setup
    def setup(self):
        a, w = self.a, self.work
        m = {
            "nproc": os.cpu_count(),
            "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                         if l.startswith("model name")), "?"),
            "mem_kb": next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")),
            "kernel": platform.release(),
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "loadavg_start": open("/proc/loadavg").read().split()[:3],
        }
        self.results["machine"] = m
        log(f"machine: {m}")
        self.broker = Broker(a.tansu, w)
        log(f"tansu listening on {self.broker.bootstrap}")
        self.broker.create_topic("ritma.checkpoints", 1)

    def make_store(self):
        a, w = self.a, self.work
        trace = w / "t.rtrace"
        self.store = w / "s"
        t = time.monotonic()
        self.ritma("synth", "--events", a.events, "--seed", 1, "--hosts", 1, "--out", trace)
        synth_s = time.monotonic() - t
        self.ritma("keys", "init", "--out", self.store, "--node", "synth-0")
        t = time.monotonic()
        out = self.ritma("replay", trace, "--out", self.store)
        replay_s = time.monotonic() - t
        self.trust = w / "trust"
        self.trust.mkdir()
        shutil.copy(self.store / "_meta/keys/signing.vkey", self.trust / "synth-0.vkey")
        windows = len(list(self.store.glob("windows/*/*/*/*/micro/w*.sig")))
        self.events = a.events
        st = {"events": a.events, "synth_s": synth_s, "replay_s": replay_s,
              "store_bytes": du_bytes(self.store), "trace_bytes": trace.stat().st_size,
              "windows": windows, "replay_out": out.strip().splitlines()[-1:]}
        parts = json.loads(run([a.bench, "parts", "--store", self.store]))
        st["messages"], st["message_bytes"] = parts["messages"], parts["bytes"]
        self.results["store"] = st
        log(f"store: {st}")
        self.save()

    def fresh_store(self, name):
        dst = self.work / name
        run(["cp", "-a", str(self.store), str(dst)])
        shutil.rmtree(dst / "_meta/ship", ignore_errors=True)
        return dst

    def new_topic(self, stem):
        t = self.uniq(stem)
        self.broker.create_topic(t, self.a.partitions)
        return t

    def ingest_cmd(self, topic, group, out):
        return [self.a.ritma, "ingest", "--brokers", self.broker.bootstrap, "--topic", topic,
                "--group", group, "--out", str(out), "--trust", str(self.trust),
                "--idle-exit", str(self.a.idle_exit), "--session-timeout-ms", "2000"]

    def wait_applied(self, out, node, t0, want, children, timeout=600):
        """Seconds from t0 until OUT's state for node has next_seq ≥ want() (None: not known
        yet), and until it first had next_seq ≥ 1; fails when a child exits non-zero."""
        state = Path(out) / "ingest/nodes" / f"{node}.json"
        deadline = time.monotonic() + timeout
        first = None
        while True:
            now = time.monotonic()
            for c in children:
                if c.poll() and c.rc != 0:
                    raise BenchError(f"{c.name} failed (exit {c.rc}): {c.text()}")
            n = want()
            try:
                seq = json.loads(state.read_text())["next_seq"]
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                seq = 0
            if seq >= 1 and first is None:
                first = now - t0
            if n is not None and seq >= n:
                return now - t0, first
            if now > deadline:
                raise BenchError(f"{out}: not all applied within {timeout} s")
            time.sleep(0.005)

    def check_ingest(self, ing, envelopes):
        m = re.search(r"ingested (\d+) messages: (\d+) envelopes applied, (\d+) redelivered, "
                      r"(\d+) checkpoints cosigned, quarantined: (.*)", ing.stdout())
        if not m:
            raise BenchError(f"ingest summary not found: {ing.text()}")
        msgs, applied, redelivered = int(m[1]), int(m[2]), int(m[3])
        if applied != envelopes or m[5].strip() != "none":
            raise BenchError(f"ingest applied {applied} of {envelopes}, quarantined {m[5]}")
        return msgs, applied, redelivered

    # ---------------------------------------------------------------- e2e
    def ritma_run(self, label):
        """ship + ingest together; returns the figures of the run."""
        store = self.fresh_store(self.uniq("s-"))
        central = self.work / self.uniq("central-")
        topic = self.new_topic("ev-r")
        group = self.uniq("g-r")
        b0 = self.broker.cpu()
        t0 = time.monotonic()
        ing = Child(f"{label}-ingest", self.ingest_cmd(topic, group, central), self.work, self.env)
        ship = Child(f"{label}-ship", [self.a.ritma, "ship", str(store), "--brokers",
                                       self.broker.bootstrap, "--topic", topic, "--json"],
                     self.work, self.env)
        shipped = {}

        def want():
            if not ship.poll():
                return None
            if ship.rc != 0:
                raise BenchError(f"ship failed: {ship.text()}")
            if not shipped:
                shipped.update(json.loads(ship.stdout().strip().splitlines()[-1]))
            return shipped["envelopes"]

        e2e, first = self.wait_applied(central, "synth-0", t0, want, [ing])
        b1 = self.broker.cpu()
        ing.wait(60)
        msgs, applied, redelivered = self.check_ingest(ing, shipped["envelopes"])
        if shipped["messages"] != self.results["store"]["messages"] or \
                shipped["bytes"] != self.results["store"]["message_bytes"]:
            raise BenchError(f"ship sent {shipped}, kafka_bench made "
                             f"{self.results['store']['messages']} messages")
        r = {"e2e_s": e2e, "first_s": first, "ship_s": ship.t_end - t0, "ship_cpu": ship.cpu,
             "ingest_cpu": ing.cpu, "ingest_user": ing.user, "ingest_sys": ing.sys,
             "broker_cpu": b1 - b0, "envelopes": shipped["envelopes"],
             "messages": shipped["messages"], "bytes": shipped["bytes"],
             "ingest_messages": msgs, "redelivered": redelivered,
             "events_per_s": self.events / e2e, "topic": topic}
        shutil.rmtree(store)
        return r, central

    def ingest_alone(self, topic, envelopes):
        central = self.work / self.uniq("central-alone-")
        t0 = time.monotonic()
        ing = Child(self.uniq("ingest-alone-"),
                    self.ingest_cmd(topic, self.uniq("g-a"), central), self.work, self.env)
        s, first = self.wait_applied(central, "synth-0", t0, lambda: envelopes, [ing])
        ing.wait(60)
        self.check_ingest(ing, envelopes)
        shutil.rmtree(central)
        return {"ingest_s": s, "first_s": first, "ingest_cpu": ing.cpu}

    def baseline(self):
        topic = self.new_topic("ev-b")
        b0 = self.broker.cpu()
        t0 = time.monotonic()
        c = Child(self.uniq("baseline-"), [self.a.bench, "baseline", "--brokers",
                                          self.broker.bootstrap, "--store", str(self.store),
                                          "--topic", topic, "--group", self.uniq("g-b"),
                                          "--session-timeout-ms", "2000"], self.work)
        c.wait(600)
        r = json.loads(c.stdout().strip().splitlines()[-1])
        r["broker_cpu"] = self.broker.cpu() - b0
        r["cpu"] = c.cpu
        r["wall_s"] = c.t_end - t0
        return r

    def e2e(self):
        log("e2e: warm-up ritma run (not counted), then verify and compare the central store")
        warm, central = self.ritma_run("warmup")
        log(f"  warm-up: {warm}")
        self.ritma("verify", central, "--trust", self.trust)
        cmp = compare_trees(self.store, central / "nodes/synth-0")
        log(f"  central vs node tree: {cmp}")
        if cmp["n_missing"] or cmp["n_differ"]:
            raise BenchError(f"central store differs from the node's: {cmp}")
        shutil.rmtree(central)
        self.results["e2e_warmup"] = warm
        self.results["e2e_compare"] = cmp
        reps = {"ritma": [], "baseline": [], "ingest": []}
        for i in range(self.a.reps):
            order = ["ritma", "baseline"] if i % 2 == 0 else ["baseline", "ritma"]
            for what in order:
                if what == "ritma":
                    r, central = self.ritma_run(f"r{i}")
                    shutil.rmtree(central)
                    reps["ritma"].append(r)
                    log(f"  rep {i} ritma: e2e {r['e2e_s']:.2f} s ({r['events_per_s']:.0f} "
                        f"events/s), ship {r['ship_s']:.2f} s, ingest CPU {r['ingest_cpu']:.2f} s")
                    a = self.ingest_alone(r["topic"], r["envelopes"])
                    reps["ingest"].append(a)
                    log(f"  rep {i} ingest alone: {a['ingest_s']:.2f} s, CPU {a['ingest_cpu']:.2f} s")
                else:
                    b = self.baseline()
                    reps["baseline"].append(b)
                    log(f"  rep {i} baseline: e2e {b['e2e_s']:.2f} s, produce {b['produce_s']:.2f} s")
            self.results["e2e"] = reps
            self.save()

    # ---------------------------------------------------------------- ocsf
    def ocsf(self):
        reps = {"plain": [], "ocsf": []}
        for i in range(self.a.ocsf_reps):
            order = ["plain", "ocsf"] if i % 2 == 0 else ["ocsf", "plain"]
            for what in order:
                store = self.fresh_store(self.uniq("s-o"))
                topic = self.new_topic("ev-o")
                cmd = [self.a.ritma, "ship", str(store), "--brokers", self.broker.bootstrap,
                       "--topic", topic, "--json"]
                if what == "ocsf":
                    ot = self.new_topic("ocsf-")
                    cmd += ["--ocsf", ot]
                b0 = self.broker.cpu()
                c = Child(self.uniq(f"ship-{what}-"), cmd, self.work, self.env).wait(1200)
                out = json.loads(c.stdout().strip().splitlines()[-1])
                r = {"s": c.t_end - c.t_start, "cpu": c.cpu, "broker_cpu": self.broker.cpu() - b0,
                     "ocsf_events": out["ocsf_events"], "messages": out["messages"]}
                reps[what].append(r)
                log(f"  ocsf rep {i} {what}: {r}")
                shutil.rmtree(store)
            self.results["ocsf"] = reps
            self.save()

    # ---------------------------------------------------------------- lag
    def sample_lag(self, store, topic, stop, samples, t0, errors):
        try:
            self._sample_lag(store, topic, stop, samples, t0)
        except Exception as e:  # reported by lag() after the run
            errors.append(e)
            stop.set()

    def _sample_lag(self, store, topic, stop, samples, t0):
        import cbor2  # from the venv run.sh sets up

        cursor = store / "_meta/ship" / f"{topic}.cbor"
        hour_re = re.compile(r"^\d+$")
        while not stop.is_set():
            t = time.monotonic()
            now_ns = time.time_ns()
            newest = None
            hours = sorted((store / "windows").glob("*/*/*/*"))
            for h in reversed(hours):
                parts = h.relative_to(store / "windows").parts
                if not all(hour_re.match(p) for p in parts):
                    continue
                idx = [int(n.name[1:5]) for n in (h / "micro").glob("w[0-9][0-9][0-9][0-9].sig")]
                if idx:
                    y, mo, d, hh = map(int, parts)
                    hour = int(datetime.datetime(y, mo, d, hh, tzinfo=datetime.timezone.utc)
                               .timestamp()) // 3600
                    newest = hour * 3600 + max(idx)  # 1 s windows
                    break
            nxt = None
            try:
                rec = cbor2.loads(cursor.read_bytes())
                # a 7-array: [29, 1, topic, next_seq, next_window|null, hour|null, setup|null]
                if len(rec) != 7 or rec[:2] != [29, 1] or rec[2] != topic:
                    raise BenchError(f"cursor {cursor}: not a ShipCursor of {topic}: {rec[:4]}")
                nxt = rec[4]
            except FileNotFoundError:
                pass
            if newest is not None:
                first_unshipped = nxt if nxt is not None else None
                if nxt is None:
                    lag_w = None  # nothing shipped yet
                    lag_s = None
                else:
                    lag_w = max(0, newest + 1 - nxt)
                    # The product's own definition (transport::ship::lag): how long ago the
                    # oldest sealed window not yet shipped ended; 0 when none waits.
                    lag_s = (now_ns - (nxt + 1) * 10**9) / 1e9 if lag_w > 0 else 0.0
                # Freshness of what left the node: now − end of the last shipped window.
                fresh = (now_ns - nxt * 10**9) / 1e9 if nxt is not None else None
                samples.append({"t": t - t0, "newest": newest, "next_window": first_unshipped,
                                "lag_windows": lag_w, "lag_s": lag_s, "shipped_age_s": fresh})
            stop.wait(max(0.0, 0.2 - (time.monotonic() - t)))

    def lag(self):
        a = self.a
        load = self.work / "ritma-overhead-load"
        run(["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(load),
             str(Path(__file__).resolve().parent.parent / "overhead/load.c")])
        loaddir = self.work / "loaddir"
        loaddir.mkdir(exist_ok=True)
        res = []
        for rate in a.lag_rates:
            store = self.work / self.uniq("live-")
            topic = self.new_topic("ev-live")
            log(f"lag: ritma run at {rate} events/s for {a.lag_duration} s, topic {topic}")
            b0 = self.broker.cpu()
            rr = Child(self.uniq("run-"), [a.ritma, "run", "--out", str(store), "--node", "live-0",
                                           "--kafka-brokers", self.broker.bootstrap,
                                           "--kafka-topic", topic],
                       self.work, self.env)
            deadline = time.monotonic() + 60
            while "capturing node" not in rr.stderr():
                if rr.poll():
                    raise BenchError(f"ritma run exited at start: {rr.text()}")
                if time.monotonic() > deadline:
                    rr.kill()
                    raise BenchError(f"ritma run did not start: {rr.text()}")
                time.sleep(0.1)
            samples, stop, errors = [], threading.Event(), []
            t0 = time.monotonic()
            th = threading.Thread(target=self.sample_lag,
                                  args=(store, topic, stop, samples, t0, errors))
            th.start()
            time.sleep(2)
            # Other eBPF sensors running now (a colleague's tests on this shared machine)
            # capture the load too and compete for the CPUs: say so in the results.
            others = [c for c in run(["ps", "-eo", "pid,args"]).splitlines()
                      if re.search(r"ritma (run|record)\b", c) and str(rr.p.pid) not in c.split()[:1]
                      and "ps -eo" not in c]
            lcmd = [str(load), "--jobs", str(a.lag_jobs), "--dir", str(loaddir),
                    "--execs", "1", "--opens", "1000", "--renames", "10", "--connects", "20",
                    "--duration", str(a.lag_duration), "--rate", str(rate)]
            t_load = time.monotonic() - t0
            lp = subprocess.run(lcmd, capture_output=True, text=True)
            t_load_end = time.monotonic() - t0
            if lp.returncode != 0:
                rr.kill()
                stop.set()
                th.join()
                raise BenchError(f"load failed ({lp.returncode}): {lp.stderr}")
            lrec = json.loads(lp.stdout)
            time.sleep(4)
            rr.p.send_signal(signal.SIGINT)
            rr.wait(120)
            stop.set()
            th.join()
            if errors:
                raise BenchError(f"lag sampler failed: {errors[0]!r}")
            err = rr.stderr()
            m = re.search(r"sealed (\d+) events in (\d+) windows .*p50 ([\d.]+) ms, p99 ([\d.]+) ms", err)
            lost = re.search(r"; lost (\d+) \(", err)
            sh = re.search(r"shipped (\d+) windows \((\d+) failed attempts retried\); (\d+) sealed windows wait", err)
            if not (m and lost and sh):
                raise BenchError(f"ritma run summary not found: {rr.text()}")
            during = [s for s in samples if t_load <= s["t"] <= t_load_end and s["lag_s"] is not None]

            def q(key, p):
                xs = sorted(s[key] for s in during)
                return xs[min(len(xs) - 1, int(p * len(xs)))] if xs else None

            r = {"target": rate, "load": lrec, "achieved": lrec.get("rate"),
                 "loadavg_after": open("/proc/loadavg").read().split()[:3],
                 "other_sensors": others,
                 "sealed_events": int(m[1]), "windows": int(m[2]), "seal_p50_ms": float(m[3]),
                 "seal_p99_ms": float(m[4]), "lost": int(lost[1]), "shipped_windows": int(sh[1]),
                 "ship_failures": int(sh[2]), "left_windows": int(sh[3]),
                 "run_cpu": rr.cpu, "broker_cpu": self.broker.cpu() - b0,
                 "samples": len(during), "t_load": [t_load, t_load_end],
                 "lag_s_p50": q("lag_s", 0.5), "lag_s_p99": q("lag_s", 0.99),
                 "lag_s_max": q("lag_s", 1.0),
                 "lag_w_p50": q("lag_windows", 0.5), "lag_w_p99": q("lag_windows", 0.99),
                 "lag_w_max": q("lag_windows", 1.0),
                 "age_p50": q("shipped_age_s", 0.5), "age_p99": q("shipped_age_s", 0.99),
                 "age_max": q("shipped_age_s", 1.0)}
            log(f"  {json.dumps({k: v for k, v in r.items() if k != 'load'})}")
            with open(self.work / f"lag-{rate}.csv", "w") as f:
                f.write("t_s,newest_sealed,next_window,lag_windows,lag_s,shipped_age_s\n")
                for s in samples:
                    f.write(f"{s['t']:.3f},{s['newest']},{s['next_window']},{s['lag_windows']},"
                            f"{s['lag_s']},{s['shipped_age_s']}\n")
            r.update(seal_to_ship(samples, r["t_load"]))
            r["series"] = samples
            res.append(r)
            self.results["lag"] = res
            self.save()
            if a.lag_verify:
                central = self.work / self.uniq("central-live-")
                trust = self.work / self.uniq("trust-live-")
                trust.mkdir()
                shutil.copy(store / "_meta/keys/signing.vkey", trust / "live-0.vkey")
                ing = Child(self.uniq("ingest-live-"),
                            [a.ritma, "ingest", "--brokers", self.broker.bootstrap, "--topic",
                             topic, "--group", self.uniq("g-l"), "--out", str(central),
                             "--trust", str(trust), "--idle-exit", "3",
                             "--session-timeout-ms", "2000"], self.work, self.env).wait(300)
                r["ingest_after"] = ing.stdout().strip()
                log(f"  ingest of the live topic afterwards: {r['ingest_after']}")
                self.save()
            shutil.rmtree(store)
        self.plot(res)

    def plot(self, res):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(len(res), 1, figsize=(10, 3.2 * len(res)), squeeze=False)
        for ax, r in zip(axes[:, 0], res):
            s = [x for x in r["series"] if x["lag_s"] is not None]
            if not s:
                continue
            t = [x["t"] - r["t_load"][0] for x in s]
            ax.plot(t, [x["shipped_age_s"] for x in s], lw=0.8, color="tab:gray",
                    label="age of the newest shipped window's end (s)")
            ax.plot(t, [x["lag_s"] for x in s], lw=1.0, color="tab:blue",
                    label="lag: oldest sealed, unshipped window ended … s ago (0: none waits)")
            ax.step(t, [x["lag_windows"] for x in s], where="post", lw=0.8, color="tab:orange",
                    label="sealed windows not yet shipped")
            ax.axhline(2.0, color="tab:red", ls="--", lw=0.8, label="goal: p99 ≤ 2 s")
            ax.axvspan(0, r["t_load"][1] - r["t_load"][0], color="tab:green", alpha=0.06)
            ax.set_title(f"ritma run --kafka-brokers, load target {r['target']:,} events/s "
                         f"(achieved {r['achieved']:,.0f}); lag p50 {r['lag_s_p50']:.2f} s, "
                         f"p99 {r['lag_s_p99']:.2f} s", fontsize=9)
            ax.set_xlabel("seconds since the load started (shaded: load running)")
            ax.set_ylabel("s / windows")
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="upper right")
        fig.suptitle("Shipping lag sampled every 200 ms (tansu 0.6.0 in memory on the same "
                     "2-core VM)", fontsize=10)
        fig.tight_layout()
        png = Path(self.a.png)
        fig.savefig(png, dpi=110)
        log(f"plot: {png}")

    # ---------------------------------------------------------------- report
    def report(self):
        r = self.results
        st = r.get("store")
        if st:
            print(f"store: {st['events']} events, {st['windows']} windows, {st['store_bytes']} bytes "
                  f"on disk; ship sends {st['messages']} messages, {st['message_bytes']} bytes; "
                  f"synth {st['synth_s']:.1f} s, replay {st['replay_s']:.1f} s")
        e = r.get("e2e")
        if e:
            R, B, I = e["ritma"], e["baseline"], e["ingest"]
            rs = [x["e2e_s"] for x in R]
            bs = [x["e2e_s"] for x in B]
            print(f"ritma ship+ingest e2e s: {' '.join(f'{x:.2f}' for x in rs)} median {med(rs):.2f}")
            print(f"baseline produce+consume e2e s: {' '.join(f'{x:.2f}' for x in bs)} median {med(bs):.2f}")
            print(f"baseline produce-only s: median {med([x['produce_s'] for x in B]):.2f} "
                  f"{rng([x['produce_s'] for x in B])}")
            print(f"events/s ritma {st['events'] / med(rs):.0f}, baseline-equivalent "
                  f"{st['events'] / med(bs):.0f}; throughput ratio ritma/baseline "
                  f"{med(bs) / med(rs):.3f}; per-rep ratios "
                  f"{' '.join(f'{b / x:.3f}' for x, b in zip(rs, bs))}")
            rf = [x["e2e_s"] - x["first_s"] for x in R]
            bf = [x["e2e_s"] - x["first_s"] for x in B]
            print(f"from the first envelope applied / message consumed to the last (group join "
                  f"excluded): ritma {med(rf):.2f} {rng(rf)} s, baseline {med(bf):.2f} {rng(bf)} s, "
                  f"ratio {med(bf) / med(rf):.3f}; first at ritma {med([x['first_s'] for x in R]):.2f}"
                  f" s, baseline {med([x['first_s'] for x in B]):.2f} s")
            print(f"ship alone (within the run) s: median {med([x['ship_s'] for x in R]):.2f} "
                  f"{rng([x['ship_s'] for x in R])}; ship CPU {med([x['ship_cpu'] for x in R]):.2f} s")
            print(f"ingest alone s: median {med([x['ingest_s'] for x in I]):.2f} "
                  f"{rng([x['ingest_s'] for x in I])}, of which before the first envelope applied "
                  f"{med([x['first_s'] for x in I]):.2f}")
            ic = [x["ingest_cpu"] for x in R]
            print(f"ingest CPU s: median {med(ic):.2f} {rng(ic)} → {med(ic) / st['events'] * 1e6:.3f} "
                  f"µs/event (user {med([x['ingest_user'] for x in R]):.2f}, sys "
                  f"{med([x['ingest_sys'] for x in R]):.2f}); ingest-alone CPU "
                  f"{med([x['ingest_cpu'] for x in I]):.2f}")
            print(f"broker CPU s: ritma run {med([x['broker_cpu'] for x in R]):.2f}, baseline "
                  f"{med([x['broker_cpu'] for x in B]):.2f}; baseline client CPU "
                  f"{med([x['cpu'] for x in B]):.2f}")
        o = r.get("ocsf")
        if o:
            P, O = o["plain"], o["ocsf"]
            ps, os_ = [x["s"] for x in P], [x["s"] for x in O]
            n = O[0]["ocsf_events"]
            print(f"ship plain s: {' '.join(f'{x:.2f}' for x in ps)} median {med(ps):.2f}")
            print(f"ship --ocsf s: {' '.join(f'{x:.2f}' for x in os_)} median {med(os_):.2f}; "
                  f"{n} OCSF messages → {n / med(os_):.0f} msgs/s overall, "
                  f"{n / (med(os_) - med(ps)):.0f} msgs/s on the added time; ship CPU "
                  f"{med([x['cpu'] for x in P]):.2f} / {med([x['cpu'] for x in O]):.2f} s, broker "
                  f"{med([x['broker_cpu'] for x in P]):.2f} / {med([x['broker_cpu'] for x in O]):.2f} s")
        for x in r.get("lag", []):
            print(f"lag at target {x['target']}: achieved {x['achieved']:.0f} events/s, sealed "
                  f"{x['sealed_events']} events, lost {x['lost']}, seal p50/p99 "
                  f"{x['seal_p50_ms']:.0f}/{x['seal_p99_ms']:.0f} ms; lag s p50 {x['lag_s_p50']:.2f} "
                  f"p99 {x['lag_s_p99']:.2f} max {x['lag_s_max']:.2f}; windows p50 {x['lag_w_p50']} "
                  f"p99 {x['lag_w_p99']} max {x['lag_w_max']}; shipped age p50 {x['age_p50']:.2f} "
                  f"p99 {x['age_p99']:.2f}; {x['samples']} samples; run CPU {x['run_cpu']:.1f} s, "
                  f"broker {x['broker_cpu']:.1f} s; ship failures {x['ship_failures']}, "
                  f"left {x['left_windows']}; sealed → shipped per window (200 ms resolution) p50 "
                  f"{x.get('ship_delay_p50', float('nan')):.2f} p99 {x.get('ship_delay_p99', float('nan')):.2f}"
                  f" max {x.get('ship_delay_max', float('nan')):.2f} s over {x.get('ship_delay_windows')} windows")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ritma", required=True)
    p.add_argument("--bench", required=True, help="the kafka_bench binary")
    p.add_argument("--tansu", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--png", default="kafka-lag.png")
    p.add_argument("--phases", default="e2e,ocsf,lag")
    p.add_argument("--events", type=int, default=2_000_000)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--ocsf-reps", type=int, default=5)
    p.add_argument("--partitions", type=int, default=3)
    p.add_argument("--idle-exit", type=float, default=3)
    p.add_argument("--lag-rates", type=lambda s: [int(x) for x in s.split(",")],
                   default=[100_000, 200_000])
    p.add_argument("--lag-duration", type=int, default=40)
    p.add_argument("--lag-jobs", type=int, default=2)
    p.add_argument("--lag-verify", action="store_true",
                   help="ingest each live topic afterwards and print its summary")
    a = p.parse_args()
    b = Bench(a)
    phases = a.phases.split(",")
    try:
        b.setup()
        if "e2e" in phases or "ocsf" in phases:
            b.make_store()
        if "e2e" in phases:
            b.e2e()
        if "ocsf" in phases:
            b.ocsf()
        if "lag" in phases:
            b.lag()
        b.results["machine"]["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
        b.save()
        b.report()
    except BenchError as e:
        log(f"FAILED: {e}")
        b.save()
        sys.exit(1)
    finally:
        if hasattr(b, "broker"):
            b.broker.stop()


if __name__ == "__main__":
    main()
