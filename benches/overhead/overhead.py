#!/usr/bin/env python3
"""Live-capture overhead benchmark: the same syscall-heavy workload with no sensor, with Ritma,
with auditd logging the same syscalls and with a bpftrace script printing the same events.

Started by run.sh (which installs auditd and bpftrace and builds the workload and `ritma`);
see README.md beside this file. Needs root. Every number in the results JSON comes from this
one invocation: the configurations run interleaved, repetition by repetition.

CPU of a run = the workload's own CPU (getrusage of itself and all its children: the sensors'
in-kernel work runs in the workload's syscalls and is charged there) + the CPU the sensor's
processes used between the workload's start and the end of the drain (/proc/PID/stat) + the
kernel threads that work for a sensor (kauditd, jbd2). Added CPU per event = (mean CPU with the
sensor - mean CPU with none) / the workload's nominal event count (the same for every
configuration, so the ratios between sensors are ratios of added CPU).
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CLK_TCK = os.sysconf("SC_CLK_TCK")
BPFTRACE_EVENT = re.compile(
    rb"^(exec|fork|exit|open|unlink|rename|connect|accept|bind|listen|ptrace|setid|capset|"
    rb"memfd|bpf_prog_load) "
)


def log(msg):
    print(f"[overhead {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------- /proc readers


def proc_cpu_s(pid):
    """utime + stime of a whole process (all its threads, dead ones too), in seconds; None
    when it has exited."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name may hold spaces and parentheses: fields start after the last ')'.
    fields = stat[stat.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def kernel_threads(prefixes):
    """Pids of kernel threads whose name starts with one of prefixes."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if comm.startswith(prefixes):
            pids.append(int(entry))
    return pids


def system_busy_s():
    """Busy CPU time of the whole machine (all CPUs, /proc/stat: everything but idle and
    iowait), in seconds. Other users of the machine count here too."""
    with open("/proc/stat") as f:
        parts = f.readline().split()
    values = [int(v) for v in parts[1:]]
    idle = values[3] + values[4]
    # guest and guest_nice are already inside user and nice.
    return (sum(values[:8]) - idle) / CLK_TCK


def bpf_attachments(pid):
    """Number of the process's fds that hold an attached BPF program (links, perf events)."""
    n = 0
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target in ("anon_inode:bpf_link", "anon_inode:[perf_event]"):
                n += 1
    except OSError:
        return None
    return n


# One event kind alone per load, for the cost of each kind (iterations: --per-kind).
PER_KIND_MIXES = [
    ("exec", {"execs": 1}),
    ("open", {"opens": 200}),
    ("rename", {"renames": 50}),
    ("connect", {"connects": 20}),
]

TRACING_PROG_TYPES = ("tracepoint", "raw_tracepoint", "tracing", "kprobe", "perf_event", "lsm")


def tracing_programs():
    """Ids of the BPF programs loaded in the kernel that can observe syscalls or tasks."""
    out = run_checked(["bpftool", "-j", "prog", "show"])
    return sorted(p["id"] for p in json.loads(out or "[]") if p.get("type") in TRACING_PROG_TYPES)


def wait_no_tracing_programs(timeout=1800.0):
    """Waits until no tracing BPF program is loaded: a stopped sensor's programs are detached
    a few seconds after its process exits, and another user's sensor would observe (and slow)
    the workload. Returns the seconds waited."""
    start = time.monotonic()
    warned = False
    while True:
        progs = tracing_programs()
        if not progs:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise BenchError(f"tracing BPF programs still loaded after {timeout:.0f} s: {progs}")
        if not warned and time.monotonic() - start > 20:
            log(f"waiting for {len(progs)} tracing BPF programs to go (another user's sensor?)")
            warned = True
        time.sleep(0.5)


def wait_attached(proc, what, timeout=120.0):
    """Waits until the process has attached its programs: the count of link/perf-event fds
    is non-zero and unchanged for 1 s."""
    deadline = time.monotonic() + timeout
    last, stable_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with status {proc.returncode} while starting")
        n = bpf_attachments(proc.pid) or 0
        if n != last:
            last, stable_since = n, time.monotonic()
        elif n > 0 and time.monotonic() - stable_since >= 1.0:
            return n
        time.sleep(0.1)
    raise BenchError(f"{what} did not attach its programs within {timeout:.0f} s")


def stop_process(proc, sig=signal.SIGINT, timeout=120.0):
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        log(f"pid {proc.pid} did not stop within {timeout:.0f} s; killing it")
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------- audit state


def run_checked(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


def audit_status():
    status = {}
    for line in run_checked(["auditctl", "-s"]).splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].lstrip("-").isdigit():
            status[parts[0]] = int(parts[1])
    return status


class AuditState:
    """The machine's audit settings as found, restored by restore()."""

    def __init__(self):
        self.found = audit_status()
        self.rules = run_checked(["auditctl", "-l"]).strip()
        self.touched = False

    def check_free(self):
        if self.found.get("pid", 0) != 0:
            raise BenchError(
                f"an audit daemon (pid {self.found['pid']}) already runs; the auditd "
                "configuration needs the audit netlink socket to itself"
            )
        # "-a never,task" alone is what an earlier run of this benchmark leaves (see restore).
        if self.rules not in ("No rules", "-a never,task"):
            raise BenchError(
                "audit rules are loaded (auditctl -l); refusing to replace someone's rules:\n"
                + self.rules
            )

    def restore(self):
        """Back to the settings as found. One thing cannot be undone: once audit was enabled,
        the kernel (until reboot) sends every new task through the audit syscall path when no
        task rule says never (about +100 ns per syscall on the 2-core VM, even with audit
        disabled). So `-a never,task` is left in place of no rules: it keeps new tasks on the
        plain path, as before the benchmark. `auditctl -D` removes it."""
        if not self.touched:
            return
        f = self.found
        cmds = [
            ["auditctl", "-D"],
            ["auditctl", "-a", "never,task"],
            ["auditctl", "-e", str(f.get("enabled", 0))],
            ["auditctl", "-f", str(f.get("failure", 1))],
            ["auditctl", "-b", str(f.get("backlog_limit", 64))],
            ["auditctl", "-r", str(f.get("rate_limit", 0))],
            [
                "auditctl",
                "--backlog_wait_time",
                str(f.get("backlog_wait_time", 15000)),
            ],
        ]
        for cmd in cmds:
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                log(f"restoring audit: {' '.join(cmd)}: {r.stderr.strip()}")
        log(f"audit restored: {audit_status()}")


# ---------------------------------------------------------------- sensors


class Sensor:
    """One configuration: start() before the workload, cpu_s() around it, stop() after."""

    name = "none"

    def __init__(self, bench):
        self.bench = bench
        self.pids = []
        self.kthreads = kernel_threads(("kauditd", "jbd2/"))

    def start(self, run_dir):
        pass

    def cpu_s(self):
        total = 0.0
        for pid in self.pids + self.kthreads:
            v = proc_cpu_s(pid)
            if v is not None:
                total += v
        return total

    def stop(self):
        """Stops the sensor; returns what it reported: events, lost and its own words."""
        return {}

    def abort(self):
        pass


class NoSensor(Sensor):
    name = "none"


class RitmaSensor(Sensor):
    def __init__(self, bench, name, argv_template):
        super().__init__(bench)
        self.name = name
        # `@BINARY` first: this configuration runs another ritma binary (an older build).
        self.binary = bench.ritma
        if argv_template and argv_template[0].startswith("@"):
            self.binary, argv_template = argv_template[0][1:], argv_template[1:]
        self.argv_template = argv_template
        self.proc = None

    def start(self, run_dir):
        out = os.path.join(run_dir, "ritma-out")
        self.out = out
        argv = [a.replace("{out}", out) for a in self.argv_template]
        self.stderr_path = os.path.join(run_dir, "ritma.stderr")
        self.stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [self.binary] + argv, stdout=subprocess.DEVNULL, stderr=self.stderr
        )
        self.pids = [self.proc.pid]
        self.attached = wait_attached(self.proc, f"ritma {' '.join(argv)}")

    def stop(self):
        stop_process(self.proc, signal.SIGINT)
        self.stderr.close()
        with open(self.stderr_path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        if self.proc.returncode != 0:
            raise BenchError(f"ritma exited with status {self.proc.returncode}:\n{text}")
        last = [l for l in text.splitlines() if l.strip()]
        summary = last[-1] if last else ""
        events = re.search(r"(\d+) events", summary)
        lost = re.search(r"lost (\d+)", summary)
        p50 = re.search(r"p50 ([0-9.]+) ms", summary)
        p99 = re.search(r"p99 ([0-9.]+) ms", summary)
        if not events:
            raise BenchError(f"ritma's summary line has no event count: {summary!r}")
        report = {
            "sensor_events": int(events.group(1)),
            "summary": summary,
            "attached_programs": self.attached,
        }
        if lost:
            report["lost"] = int(lost.group(1))
        if p50 and p99:
            report["seal_p50_ms"] = float(p50.group(1))
            report["seal_p99_ms"] = float(p99.group(1))
        if os.path.isdir(self.out):
            report["out_bytes"] = dir_bytes(self.out)
            # A store: its sealed windows say what was lost (and prove the run sealed).
            vkey = os.path.join(self.out, "_meta", "keys", "signing.vkey")
            verified = run_checked([self.binary, "verify", self.out, "--key", vkey])
            m = re.search(r"(\d+) events, (\d+) lost", verified)
            if not m:
                raise BenchError(f"ritma verify printed no event and loss counts: {verified!r}")
            report["verified_events"] = int(m.group(1))
            report["lost"] = int(m.group(2))
            report["verify"] = verified.strip()
            if not self.bench.args.keep:
                shutil.rmtree(self.out)
        elif os.path.exists(self.out + ".rtrace") or os.path.exists(self.out):
            path = self.out if os.path.exists(self.out) else self.out + ".rtrace"
            report["out_bytes"] = os.path.getsize(path)
            if not self.bench.args.keep:
                os.unlink(path)
        return report

    def abort(self):
        if self.proc is not None and self.proc.poll() is None:
            stop_process(self.proc, signal.SIGINT, timeout=60)


class BpftraceSensor(Sensor):
    name = "bpftrace"

    def start(self, run_dir):
        self.out = os.path.join(run_dir, "bpftrace.out")
        self.stderr_path = os.path.join(run_dir, "bpftrace.stderr")
        self.stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            ["bpftrace", "-o", self.out, os.path.join(HERE, "events.bt")],
            stdout=subprocess.DEVNULL,
            stderr=self.stderr,
        )
        self.pids = [self.proc.pid]
        self.attached = wait_attached(self.proc, "bpftrace")

    def stop(self):
        stop_process(self.proc, signal.SIGINT)
        self.stderr.close()
        events = 0
        lost = 0
        size = os.path.getsize(self.out)
        with open(self.out, "rb") as f:
            for line in f:
                if BPFTRACE_EVENT.match(line):
                    events += 1
                else:
                    m = re.search(rb"Lost (\d+) events", line)
                    if m:
                        lost += int(m.group(1))
        with open(self.stderr_path, "rb") as f:
            for m in re.finditer(rb"Lost (\d+) events", f.read()):
                lost += int(m.group(1))
        if not self.bench.args.keep:
            os.unlink(self.out)
        return {
            "sensor_events": events,
            "lost": lost,
            "out_bytes": size,
            "attached_programs": self.attached,
        }

    def abort(self):
        if getattr(self, "proc", None) is not None and self.proc.poll() is None:
            stop_process(self.proc, signal.SIGINT, timeout=60)


class AuditdSensor(Sensor):
    name = "auditd"

    def start(self, run_dir):
        state = self.bench.audit
        state.touched = True
        self.log_dir = os.path.join(run_dir, "audit")
        conf_dir = os.path.join(run_dir, "auditd-conf")
        os.makedirs(self.log_dir, mode=0o700)
        os.makedirs(conf_dir, mode=0o750)
        with open(os.path.join(HERE, "auditd.conf")) as f:
            conf = f.read().replace("@LOG_FILE@", os.path.join(self.log_dir, "audit.log"))
        conf_path = os.path.join(conf_dir, "auditd.conf")
        with open(conf_path, "w") as f:
            f.write(conf)
        os.chmod(conf_path, 0o640)
        self.stderr_path = os.path.join(run_dir, "auditd.stderr")
        self.stderr = open(self.stderr_path, "wb")
        # -n: stay in the foreground (our child), -c: our configuration, not /etc/audit's.
        self.proc = subprocess.Popen(
            ["auditd", "-n", "-c", conf_dir], stdout=self.stderr, stderr=self.stderr
        )
        self.pids = [self.proc.pid]
        deadline = time.monotonic() + 30
        while audit_status().get("pid") != self.proc.pid:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stderr.close()
                with open(self.stderr_path, "rb") as f:
                    text = f.read().decode("utf-8", "replace")
                raise BenchError(f"auditd did not register with the kernel:\n{text}")
            time.sleep(0.1)
        run_checked(["auditctl", "-R", os.path.join(HERE, "overhead.rules")])
        run_checked(["auditctl", "-e", "1"])
        self.status_before = audit_status()
        time.sleep(1.0)

    def stop(self):
        status_after = audit_status()
        # Rules off first, so nothing more is queued while auditd drains and stops.
        run_checked(["auditctl", "-D"])
        run_checked(["auditctl", "-a", "never,task"])
        stop_process(self.proc, signal.SIGTERM)
        self.stderr.close()
        events = 0
        size = 0
        for name in sorted(os.listdir(self.log_dir)):
            path = os.path.join(self.log_dir, name)
            size += os.path.getsize(path)
            with open(path, "rb") as f:
                for line in f:
                    if line.startswith(b"type=SYSCALL "):
                        events += 1
        if not self.bench.args.keep:
            shutil.rmtree(self.log_dir)
        return {
            "sensor_events": events,
            "lost": status_after.get("lost", 0) - self.status_before.get("lost", 0),
            "backlog_wait_time_actual": status_after.get("backlog_wait_time_actual", 0)
            - self.status_before.get("backlog_wait_time_actual", 0),
            "out_bytes": size,
        }

    def abort(self):
        if getattr(self, "proc", None) is not None and self.proc.poll() is None:
            subprocess.run(["auditctl", "-D"], capture_output=True)
            stop_process(self.proc, signal.SIGTERM, timeout=60)


def dir_bytes(path):
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


# ---------------------------------------------------------------- the benchmark


class Bench:
    def __init__(self, args):
        self.args = args
        self.ritma = args.ritma
        self.load = args.load
        self.audit = None
        self.active = None
        self.run_no = 0
        os.makedirs(args.work, exist_ok=True)
        self.results_path = os.path.join(args.work, "results.json")
        self.results = {
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "argv": sys.argv,
            "machine": machine_description(),
            "runs": [],
        }

    def save(self):
        with open(self.results_path, "w") as f:
            json.dump(self.results, f, indent=1)

    def sensor(self, name):
        if name == "none":
            return NoSensor(self)
        if name == "bpftrace":
            return BpftraceSensor(self)
        if name == "auditd":
            return AuditdSensor(self)
        for rname, template in self.ritma_configs:
            if rname == name:
                return RitmaSensor(self, rname, template)
        raise BenchError(f"unknown configuration {name}")

    def load_cmd(self, mix, iterations=None, duration=None, rate=None, jobs=1):
        cmd = [self.load, "--jobs", str(jobs), "--dir", self.args.load_dir]
        for key in ("execs", "opens", "renames", "connects", "nulls"):
            cmd += [f"--{key}", str(mix.get(key, 0))]
        if iterations:
            cmd += ["--iterations", str(iterations)]
        if duration:
            cmd += ["--duration", str(duration)]
        if rate:
            cmd += ["--rate", str(rate)]
        return cmd

    def run_load(self, cmd, during=None):
        """Runs the workload; during(proc) is called about once a second while it runs."""
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if during is not None:
            while proc.poll() is None:
                during(proc)
                time.sleep(1.0)
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise BenchError(
                f"workload failed ({proc.returncode}): {err.decode(errors='replace')}"
            )
        return json.loads(out)

    def drain(self, sensor, settle=1.0, limit=60.0):
        """Waits until the sensor's CPU stops growing (what it still had queued is done)."""
        start = time.monotonic()
        time.sleep(settle)
        last = sensor.cpu_s()
        while time.monotonic() - start < limit:
            time.sleep(0.5)
            now = sensor.cpu_s()
            if now - last < 0.01:
                return time.monotonic() - start
            last = now
        return time.monotonic() - start

    def measured_run(self, config, kind, loads, rep=None, rss=False, tries=5):
        """measured_session, again when another user's BPF tracing programs came or went
        during a load (they would observe the workload and charge it their cost)."""
        for attempt in range(1, tries + 1):
            records = self.measured_session(config, kind, loads, rep, rss)
            if not any(r["bpf_programs_changed"] for r in records):
                break
            log(f"  another BPF tracing program came or went during the session (try {attempt}/{tries})")
        for rec in records:
            self.results["runs"].append(rec)
        self.save()
        return records

    def measured_session(self, config, kind, loads, rep, rss):
        """Starts the sensor, runs each (label, cmd) workload in loads with CPU snapshots
        around it, stops the sensor. One result record per workload."""
        self.run_no += 1
        run_dir = os.path.join(self.args.work, f"run-{self.run_no:03d}-{config}-{kind}")
        os.makedirs(run_dir)
        waited = wait_no_tracing_programs()
        sensor = self.sensor(config)
        self.active = sensor
        records = []
        try:
            sensor.start(run_dir)
            time.sleep(1.0)
            session_cpu0 = sensor.cpu_s()
            for label, cmd in loads:
                progs_before = tracing_programs()
                before = (sensor.cpu_s(), system_busy_s(), time.monotonic())
                samples = []

                def sample(_proc):
                    if sensor.pids:
                        samples.append(
                            (
                                round(time.monotonic() - before[2], 1),
                                proc_rss_kib(sensor.pids[0]),
                                sensor.cpu_s() - before[0],
                            )
                        )

                load = self.run_load(cmd, during=sample if rss else None)
                drain_s = self.drain(sensor)
                after = (sensor.cpu_s(), system_busy_s(), time.monotonic())
                progs_after = tracing_programs()
                if progs_after != progs_before:
                    log(
                        f"  BPF tracing programs changed during the load: {len(progs_before)} ->"
                        f" {len(progs_after)} ({len(set(progs_after) ^ set(progs_before))} differ)"
                    )
                rec = {
                    "session": self.run_no,
                    "bpf_programs": len(progs_before),
                    "bpf_programs_changed": progs_after != progs_before,
                    "waited_for_detach_s": round(waited, 1),
                    "config": config,
                    "kind": kind,
                    "label": label,
                    "rep": rep,
                    "load": load,
                    "sensor_cpu_s": round(after[0] - before[0], 3),
                    "total_cpu_s": round(load["cpu_s"] + after[0] - before[0], 3),
                    "system_busy_s": round(after[1] - before[1], 3),
                    "measured_wall_s": round(after[2] - before[2], 3),
                    # Other users of the machine: the 1-minute load average after the run.
                    "loadavg_1m": os.getloadavg()[0],
                    "drain_s": round(drain_s, 2),
                }
                if rss:
                    rec["rss_samples"] = samples
                records.append(rec)
            session_cpu = sensor.cpu_s() - session_cpu0
            report = sensor.stop()
            # From attached to stop: divided by the events the sensor reported, the sensor's
            # own CPU per event, whoever caused the events (other users' too).
            report["session_sensor_cpu_s"] = round(session_cpu, 3)
        except BaseException:
            sensor.abort()
            raise
        finally:
            self.active = None
        for rec in records:
            # One sensor session per group: its own counts cover all the group's workloads.
            rec["sensor"] = report
        if not self.args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
        return records

    # ------------------------------------------------------------ phases

    def comparison(self):
        a = self.args
        mix = a.mix
        configs = a.configs
        for rep in range(a.reps):
            # Rotate the order so no configuration always runs first or last.
            order = configs[rep % len(configs) :] + configs[: rep % len(configs)]
            for config in order:
                loads = [("mix", self.load_cmd(mix, iterations=a.iterations, jobs=a.jobs))]
                if a.nulls:
                    loads.append(
                        (
                            "null",
                            self.load_cmd({"nulls": a.nulls}, iterations=1, jobs=1),
                        )
                    )
                if a.per_kind:
                    for kind, kind_mix in PER_KIND_MIXES:
                        loads.append(
                            (f"kind-{kind}", self.load_cmd(kind_mix, iterations=a.per_kind, jobs=1))
                        )
                log(f"comparison rep {rep + 1}/{a.reps}: {config}")
                for rec in self.measured_run(config, "compare", loads, rep=rep):
                    l = rec["load"]
                    log(
                        f"  {rec['label']}: {l['nominal_events']} events in {l['wall_s']:.2f} s,"
                        f" cpu {rec['total_cpu_s']:.2f} s (workload {l['cpu_s']:.2f},"
                        f" sensor {rec['sensor_cpu_s']:.2f}); sensor saw"
                        f" {rec['sensor'].get('sensor_events', '-')} lost"
                        f" {rec['sensor'].get('lost', '-')}"
                    )

    def drop_search(self, config):
        a = self.args
        best = None
        for rate in a.search_rates:
            log(f"drop-free search ({config}): {rate} events/s for {a.search_duration} s")
            cmd = self.load_cmd(
                a.search_mix, duration=a.search_duration, rate=rate, jobs=a.search_jobs
            )
            rec = self.measured_run(config, "search", [(f"rate-{rate}", cmd)], tries=3)[0]
            l = rec["load"]
            s = rec["sensor"]
            reached = l["rate"] >= 0.95 * rate
            log(
                f"  achieved {l['rate']:.0f} events/s ({'reached' if reached else 'NOT reached'}),"
                f" sensor saw {s['sensor_events']}, lost {s['lost']}"
            )
            if s["lost"] == 0:
                # A target the workload could not reach ran flat out: what it achieved counts.
                if best is None or l["rate"] > best["achieved"]:
                    best = {"target": rate, "achieved": round(l["rate"]), "reached": reached}
            if s["lost"] > 0 or not reached:
                break
        self.results.setdefault("drop_free", {})[config] = best
        self.save()
        return best

    def rss_run(self, config):
        a = self.args
        secs = a.rss_minutes * 60
        log(f"RSS run ({config}): {a.rss_minutes} min at {a.rss_rate} events/s")
        cmd = self.load_cmd(a.search_mix, duration=secs, rate=a.rss_rate, jobs=a.search_jobs)
        # Too long to repeat: a foreign BPF program during it is only flagged in the record.
        self.measured_run(config, "rss", [(f"rss-{a.rss_minutes}min", cmd)], rss=True, tries=1)

    def count_syscalls(self):
        """Syscalls per iteration of the comparison mix (every syscall of the workload and
        its children), for the cost of hooks that run on every syscall."""
        mix = self.args.mix
        iterations = 200
        wait_no_tracing_programs()
        out = os.path.join(self.args.work, "syscount.out")
        script = (
            'tracepoint:raw_syscalls:sys_enter /comm == "ritma-overhead-" || comm == "true"/'
            " { @calls = count(); }"
        )
        proc = subprocess.Popen(
            ["bpftrace", "-o", out, "-e", script],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_attached(proc, "bpftrace (syscall count)")
            load = self.run_load(self.load_cmd(mix, iterations=iterations, jobs=1))
        finally:
            stop_process(proc, signal.SIGINT)
        with open(out) as f:
            m = re.search(r"@calls: (\d+)", f.read())
        if not m:
            raise BenchError("the syscall count printed nothing")
        per_iter = int(m.group(1)) / iterations
        self.results["syscalls_per_iteration"] = per_iter
        self.results["events_per_iteration"] = load["events_per_iteration"]
        log(f"syscalls per iteration: {per_iter:.1f} for {load['events_per_iteration']} events")

    def null_probe(self, label):
        """Null-syscall cost with no sensor: a check that the machine's audit state is as at
        the start (a kernel that ever enabled audit sends new tasks through the audit
        syscall path unless a never,task rule stops it)."""
        wait_no_tracing_programs()
        cmd = self.load_cmd({"nulls": self.args.nulls}, iterations=1, jobs=1)
        values = []
        for _ in range(3):
            load = self.run_load(cmd)
            values.append(load["cpu_s"] / load["syscalls_null"] * 1e9)
        self.results.setdefault("null_probe_ns", {})[label] = values
        log(f"null syscall, no sensor, {label}: {[round(v, 1) for v in values]} ns")


def machine_description():
    def read(path):
        try:
            with open(path) as f:
                return f.read()
        except OSError:
            return ""

    model = re.search(r"model name\s*:\s*(.*)", read("/proc/cpuinfo"))
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model.group(1) if model else "",
        "kernel": os.uname().release,
        "mem_total": re.search(r"MemTotal:\s*(.*)", read("/proc/meminfo")).group(1),
        # Set when the sources were exported from a commit (no .git beside them).
        "source": os.environ.get("OVERHEAD_SOURCE", ""),
        "git_head": git("rev-parse", "HEAD"),
        # Others edit the tree while this runs: the binary is built from what was there.
        "git_modified": git("status", "--short").splitlines(),
    }


def git(*argv):
    r = subprocess.run(["git", "-C", HERE] + list(argv), capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else ""


def parse_mix(text):
    mix = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        if key not in ("execs", "opens", "renames", "connects", "nulls") or not value.isdigit():
            raise argparse.ArgumentTypeError(f"bad mix part {part!r}")
        mix[key] = int(value)
    return mix


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ritma", required=True, help="the ritma binary")
    p.add_argument("--load", required=True, help="the ritma-overhead-load binary")
    p.add_argument("--work", required=True, help="directory for results.json and run files")
    p.add_argument(
        "--ritma-cmd",
        action="append",
        default=None,
        help="a ritma command measured as its own configuration, {out} standing for a fresh "
        "output path; '@BINARY' first runs that binary instead of --ritma, the configuration "
        "named with '@' and the binary's file name (repeatable; default 'record --out "
        "{out}.rtrace', plus 'run --out {out}' when `ritma run --help` works)",
    )
    p.add_argument("--configs", default=None, help="comma list; default all")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--iterations", type=int, default=5000)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--mix", type=parse_mix, default=parse_mix("execs=1,opens=20,renames=2,connects=5"))
    p.add_argument("--nulls", type=int, default=5_000_000, help="getppid calls of the null run (0: none)")
    p.add_argument(
        "--per-kind",
        type=int,
        default=1000,
        help="iterations of each one-kind load (exec, open, rename, connect) per session; 0: none",
    )
    p.add_argument("--load-dir", default="/dev/shm")
    p.add_argument("--skip-compare", action="store_true")
    p.add_argument("--search", action="store_true", help="run the drop-free rate search")
    p.add_argument("--search-duration", type=float, default=60.0)
    p.add_argument(
        "--search-rates",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[25_000, 50_000, 75_000, 100_000, 150_000, 200_000, 300_000],
    )
    p.add_argument("--search-jobs", type=int, default=2)
    p.add_argument(
        "--search-mix",
        type=parse_mix,
        default=parse_mix("execs=1,opens=1000,renames=10,connects=20"),
    )
    p.add_argument("--rss-minutes", type=float, default=0.0)
    p.add_argument("--rss-rate", type=int, default=40_000)
    p.add_argument("--keep", action="store_true", help="keep traces, logs and stores")
    args = p.parse_args()

    if os.geteuid() != 0:
        raise BenchError("needs root (eBPF, auditd)")

    bench = Bench(args)
    templates = args.ritma_cmd
    if templates is None:
        templates = ["record --out {out}.rtrace"]
        probe = subprocess.run([args.ritma, "run", "--help"], capture_output=True)
        if probe.returncode == 0:
            templates.append("run --out {out}")
        else:
            log("`ritma run --help` fails: measuring `ritma record` only")
    bench.ritma_configs = []
    for t in templates:
        argv = t.split()
        other = argv[0][1:] if argv[0].startswith("@") else None
        cmd = argv[1:] if other else argv
        name = "ritma" if cmd[0] == "record" else f"ritma-{cmd[0]}"
        if other:
            name += "@" + os.path.basename(other)
        # A second command of the same subcommand is named by its flags (ritma+raw-module-hooks).
        if any(n == name for n, _ in bench.ritma_configs):
            flags = [a[2:] for a in cmd[1:] if a.startswith("--") and a != "--out"]
            name = "+".join([name] + flags)
        if any(n == name for n, _ in bench.ritma_configs):
            raise BenchError(f"two --ritma-cmd configurations are both named {name}")
        bench.ritma_configs.append((name, argv))
    all_configs = ["none"] + [n for n, _ in bench.ritma_configs] + ["auditd", "bpftrace"]
    args.configs = args.configs.split(",") if args.configs else all_configs
    bench.results["ritma_configs"] = {n: " ".join(a) for n, a in bench.ritma_configs}
    bench.results["settings"] = {
        k: v for k, v in vars(args).items() if k not in ("ritma", "load", "work")
    }

    if "auditd" in args.configs:
        bench.audit = AuditState()
        bench.audit.check_free()
        bench.results["audit_found"] = bench.audit.found

    def on_signal(sig, _frame):
        raise KeyboardInterrupt(f"signal {sig}")

    signal.signal(signal.SIGTERM, on_signal)
    try:
        if bench.audit is not None:
            # Once audit was ever enabled, every new task takes the audit syscall path unless a
            # task rule says never: keep the non-auditd configurations on the plain path.
            bench.audit.touched = True
            run_checked(["auditctl", "-D"])
            run_checked(["auditctl", "-a", "never,task"])
        if args.nulls:
            bench.null_probe("start")
        if shutil.which("bpftrace"):
            bench.count_syscalls()
        if not args.skip_compare:
            bench.comparison()
        ritma_names = [n for n, _ in bench.ritma_configs if n in args.configs]
        if args.search:
            for name in ritma_names:
                bench.drop_search(name)
        if args.rss_minutes > 0:
            for name in ritma_names:
                bench.rss_run(name)
    finally:
        if bench.active is not None:
            bench.active.abort()
        if bench.audit is not None:
            bench.audit.restore()
        if args.nulls:
            try:
                bench.null_probe("end")
            except BenchError as e:
                log(f"null probe at the end failed: {e}")
        bench.results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        bench.save()
    log(f"results: {bench.results_path}")
    subprocess.run([sys.executable, os.path.join(HERE, "report.py"), bench.results_path])


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        log(f"error: {e}")
        sys.exit(1)
