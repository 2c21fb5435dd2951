#!/usr/bin/env python3
"""bench_gc.py: what garbage-collection pauses cost a runway worker in Python and in Go.

One private JACK server (dummy driver, 48 kHz, a 128-frame period) and one
runwayd. For each runtime (Python: tests/bench/gc_worker.py on
clients/python; Go: tests/bench/gc_go on clients/go) and each L:

  sweep  the worker runs in an --external slot and pauses between blocks,
         each pause timed by the worker: "gc" mode grows a live heap and
         forces full collections whose lengths sweep from about 1 ms to
         2.2 L, densest between 0.7 L and 1.2 L; "sleep" mode sleeps the same sweep, the baseline measured in
         the same run (the write-ahead's tolerance with no collector). After
         each pause the slot's counters tell whether it was heard: underruns
         and underrun frames (every frame of silence the worker caused).
  cost   the worker runs with no pauses for a few seconds, at the default
         wake_frames (one period) and at L/4 (the old default), next to the
         C worker (runway-worker's passthrough): its CPU, its wake-ups, and
         the daemon's FUTEX_WAKEs per cycle.

Prints one JSON object per line on stdout: every pause ("event":"pause"),
a summary per runtime, L and mode ("event":"summary": the pause
distribution, the longest pause with no underrun, the shortest with one,
the silence per pause beyond L, the ratio of the longest clean pause to
L - one period and to the sleep baseline's), and the costs
("event":"cost"). A Markdown table of the summaries and costs goes to
stderr at the end.

usage: bench_gc.py [--bin-dir build/bin] [--latency-ms 20,50] [--runtimes python,go]
                   [--steps 30] [--phases sweep,cost] [--cost-seconds 5] [--quick]
"""

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
RATE = 48000
PERIOD = 128


def log(msg):
    print(f"bench_gc: {msg}", file=sys.stderr, flush=True)


class Control:
    """A JSON-lines connection to runwayd's control socket."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""
        self.next_id = 1

    def call(self, cmd, **args):
        rid = self.next_id
        self.next_id += 1
        self.sock.sendall(json.dumps({"id": rid, "cmd": cmd, "args": args}).encode() + b"\n")
        while True:
            while b"\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise RuntimeError("runwayd closed the control connection")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            msg = json.loads(line)
            if msg.get("id") != rid:
                continue
            if not msg.get("ok"):
                raise RuntimeError(f"{cmd}: {msg.get('error')}")
            return msg.get("result")

    def slot_stats(self, name):
        return self.call("stats", name=name)["slots"][0]

    def slot(self, name):
        for s in self.call("slot.list")["slots"]:
            if s["name"] == name:
                return s
        return None


def wait_until(what, cond, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)


def proc_cpu_s(pid):
    """User + system CPU seconds of every thread of pid."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_switches(pid):
    """Voluntary context switches of every thread of pid: its wake-ups from sleep."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def sweep_targets(latency_ms, steps):
    """Pause lengths to aim at: a fifth of them from 1 ms to 0.6 L (geometric), three
    fifths from 0.7 L to 1.2 L (where the tolerance lies), the rest up to 2.2 L."""
    a, c = max(2, steps // 5), max(2, steps // 5)
    b = max(2, steps - a - c)
    low = [(0.6 * latency_ms) ** (i / (a - 1)) for i in range(a)]
    mid = [latency_ms * (0.7 + 0.5 * i / (b - 1)) for i in range(b)]
    high = [latency_ms * (1.3 + 0.9 * i / (c - 1)) for i in range(c)]
    return low + mid + high


class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="runway-bench-gc-")
        self.name = f"rwgc{os.getpid()}"
        self.env = dict(os.environ, JACK_DEFAULT_SERVER=self.name, JACK_NO_AUDIO_RESERVATION="1",
                        JACK_NO_START_SERVER="1")
        self.jackd = self.runwayd = None
        self.summaries = []
        self.costs = []

    # ---- servers -------------------------------------------------------------

    def start(self):
        self.jackd = subprocess.Popen(
            ["jackd", "-n", self.name, "-d", "dummy", "-r", str(RATE), "-p", str(PERIOD)],
            env=self.env, stdout=open(os.path.join(self.tmp, "jackd.log"), "w"),
            stderr=subprocess.STDOUT)
        self.socket = os.path.join(self.tmp, "control.sock")
        bin_dir = self.args.bin_dir
        self.runwayd = subprocess.Popen(
            [os.path.join(bin_dir, "runwayd"), "--name", self.name, "--socket", self.socket,
             "--state-dir", os.path.join(self.tmp, "state"), "--log-level", "warn"],
            env=self.env, stdout=open(os.path.join(self.tmp, "runwayd.log"), "w"),
            stderr=subprocess.STDOUT)

        def up():
            try:
                c = Control(self.socket)
                st = c.call("status")
                return c if st.get("backend_state") == "active" else None
            except (OSError, RuntimeError):
                return None

        self.ctl = wait_until("runwayd connected to JACK", up)

    def stop(self):
        for p in (self.runwayd, self.jackd):  # clients first: JACK wants SIGTERM after them
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()

    # ---- workers ---------------------------------------------------------------

    def worker_argv(self, runtime, extra):
        if runtime == "python":
            return [self.args.python, os.path.join(HERE, "gc_worker.py")] + extra
        return [self.args.go_worker] + extra

    def start_worker(self, runtime, slot, extra):
        env = dict(self.env, RUNWAY_SOCKET=self.socket, RUNWAY_SLOT=slot,
                   PYTHONPATH=os.path.join(ROOT, "clients", "python"),
                   RUNWAY_WORKER_LIB=self.args.worker_lib)
        env.pop("RUNWAY_SEGMENT_FD", None)
        env.pop("RUNWAY_SEGMENT_WORKER_FD", None)
        p = subprocess.Popen(self.worker_argv(runtime, extra), env=env, stdout=subprocess.PIPE,
                             stderr=open(os.path.join(self.tmp, f"{slot}.log"), "a"), text=True)
        wait_until(f"the {runtime} worker attached to {slot}",
                   lambda: (self.ctl.slot(slot) or {}).get("state") == "running")
        return p

    def add_slot(self, slot, latency_ms, **kind):
        self.ctl.call("slot.add", name=slot, inputs=2, outputs=2, latency_ms=latency_ms, **kind)

    # ---- sweep -----------------------------------------------------------------

    def sweep(self, runtime, latency_ms, mode):
        slot = f"{runtime}_{mode}_{latency_ms}"
        self.add_slot(slot, latency_ms, external=True)
        targets = sweep_targets(latency_ms, self.args.steps)
        steps = len(targets)
        spacing = max(8 * latency_ms, 200)
        worker = self.start_worker(runtime, slot, ["--mode", mode, "--targets",
                                                   ",".join(f"{t:.2f}" for t in targets),
                                                   "--spacing-ms", str(spacing)])
        pauses = []
        before = None
        for line in worker.stdout:
            rec = json.loads(line)
            if rec.get("done"):
                break
            if rec.get("ready"):
                # 30 ms of audio before the pause: what comes after this is the pause's.
                before = self.ctl.slot_stats(slot)
                continue
            time.sleep(max(3 * latency_ms, 50) / 1000.0)  # the pause and the catch-up after it
            after = self.ctl.slot_stats(slot)
            p = {"bench": "gc", "event": "pause", "runtime": runtime, "latency_ms": latency_ms,
                 "mode": mode, "pause_ms": rec["pause_ms"], "objects": rec.get("objects", 0),
                 "underruns": after["underruns"] - before["underruns"],
                 "underrun_frames": after["underrun_frames"] - before["underrun_frames"]}
            p["silence_ms"] = round(p["underrun_frames"] * 1000.0 / RATE, 3)
            print(json.dumps(p), flush=True)
            pauses.append(p)
            if len(pauses) >= steps:
                break
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(10)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        self.ctl.call("slot.remove", name=slot)
        return self.summarize(runtime, latency_ms, mode, pauses)

    def summarize(self, runtime, latency_ms, mode, pauses):
        tolerance = latency_ms - PERIOD * 1000.0 / RATE
        ms = sorted(p["pause_ms"] for p in pauses)
        clean = [p["pause_ms"] for p in pauses if p["underruns"] == 0]
        heard = [p for p in pauses if p["underruns"] > 0]
        s = {"bench": "gc", "event": "summary", "runtime": runtime, "latency_ms": latency_ms,
             "mode": mode, "pauses": len(pauses),
             "pause_ms_min": ms[0] if ms else None,
             "pause_ms_p50": statistics.median(ms) if ms else None,
             "pause_ms_p90": ms[int(0.9 * (len(ms) - 1))] if ms else None,
             "pause_ms_max": ms[-1] if ms else None,
             "longest_clean_ms": max(clean) if clean else None,
             "shortest_underrun_ms": min(p["pause_ms"] for p in heard) if heard else None,
             "clean_above_shortest_underrun": sum(
                 1 for x in clean if heard and x > min(p["pause_ms"] for p in heard)),
             "tolerance_ms": round(tolerance, 3)}
        # Silence heard per pause beyond L, and what it has beyond the pause's own excess.
        beyond = [(p["silence_ms"], p["pause_ms"] - latency_ms) for p in heard
                  if p["pause_ms"] > latency_ms]
        s["silence_per_ms_beyond_L"] = (round(sum(a for a, _ in beyond) / sum(b for _, b in beyond), 3)
                                        if beyond else None)
        s["extra_silence_ms_mean"] = (round(statistics.mean(a - b for a, b in beyond), 3)
                                      if beyond else None)
        s["longest_clean_over_tolerance"] = (round(s["longest_clean_ms"] / tolerance, 3)
                                             if clean else None)
        print(json.dumps(s), flush=True)
        self.summaries.append(s)
        return s

    # ---- cost ------------------------------------------------------------------

    def cost(self, runtime, latency_ms, wake_frames):
        slot = f"{runtime}_cost_{latency_ms}_{wake_frames}"
        seconds = self.args.cost_seconds
        if runtime == "c":
            extra = {} if wake_frames == 0 else None
            if extra is None:
                return None  # runway-worker's wake_frames is its own option; the default only
            self.add_slot(slot, latency_ms, plugin="passthrough")
            pid = wait_until("the C worker", lambda: (self.ctl.slot(slot) or {}).get("pid")
                             if (self.ctl.slot(slot) or {}).get("state") == "running" else None)
            worker = None
        else:
            self.add_slot(slot, latency_ms, external=True)
            worker = self.start_worker(runtime, slot, ["--mode", "none", "--wake-frames",
                                                       str(wake_frames)])
            pid = worker.pid
        time.sleep(0.5)
        st0, cpu0, sw0, t0 = self.ctl.slot_stats(slot), proc_cpu_s(pid), proc_switches(pid), time.monotonic()
        time.sleep(seconds)
        st1, cpu1, sw1, t1 = self.ctl.slot_stats(slot), proc_cpu_s(pid), proc_switches(pid), time.monotonic()
        cycles = max(1, st1["cycles"] - st0["cycles"])
        c = {"bench": "gc", "event": "cost", "runtime": runtime, "latency_ms": latency_ms,
             "wake_frames": wake_frames or PERIOD, "seconds": round(t1 - t0, 2),
             "cpu_percent": round(100.0 * (cpu1 - cpu0) / (t1 - t0), 2),
             "context_switches_per_s": round((sw1 - sw0) / (t1 - t0), 1),
             "daemon_wakes_per_cycle": round((st1["wakeups"] - st0["wakeups"]) / cycles, 4),
             "underruns": st1["underruns"] - st0["underruns"]}
        if worker is not None:
            # The worker's own count of its sleeps over its life (its audio thread alone).
            worker.send_signal(signal.SIGTERM)
            lines = [json.loads(x) for x in worker.stdout.read().splitlines() if x.strip()]
            worker.wait(10)
            done = next((x for x in lines if x.get("done")), {})
            life = done.get("frames", 0) / RATE
            if life > 0:
                c["worker_sleeps_per_s"] = round(done["sleeps"] / life, 1)
                c["timer_wakes_per_s"] = round(done["timer_wakes"] / life, 1)
                c["early_wakes_per_s"] = round(done["early_wakes"] / life, 1)
        print(json.dumps(c), flush=True)
        self.costs.append(c)
        self.ctl.call("slot.remove", name=slot)
        return c

    # ---- the table ---------------------------------------------------------------

    def table(self):
        out = ["", "| runtime | L | pauses (min / median / max ms) | longest clean | "
                   "shortest heard | silence per ms beyond L | clean / (L - period) |",
               "|---|---|---|---|---|---|---|"]
        for s in self.summaries:
            def f(x, unit=" ms"):
                return "-" if x is None else f"{x:.1f}{unit}"
            out.append(f"| {s['runtime']} {s['mode']} | {s['latency_ms']} ms | "
                       f"{f(s['pause_ms_min'], '')} / {f(s['pause_ms_p50'], '')} / "
                       f"{f(s['pause_ms_max'], '')} | {f(s['longest_clean_ms'])} | "
                       f"{f(s['shortest_underrun_ms'])} | "
                       f"{'-' if s['silence_per_ms_beyond_L'] is None else s['silence_per_ms_beyond_L']} | "
                       f"{'-' if s['longest_clean_over_tolerance'] is None else s['longest_clean_over_tolerance']} |")
        out += ["", "| worker | L | wake_frames | CPU | sleeps/s (timer, early) | "
                    "context switches/s | daemon wakes per cycle |",
                "|---|---|---|---|---|---|---|"]
        for c in self.costs:
            sleeps = ("-" if "worker_sleeps_per_s" not in c else
                      f"{c['worker_sleeps_per_s']:.0f} ({c['timer_wakes_per_s']:.0f}, "
                      f"{c['early_wakes_per_s']:.1f})")
            out.append(f"| {c['runtime']} | {c['latency_ms']} ms | {c['wake_frames']} | "
                       f"{c['cpu_percent']:.2f} % | {sleeps} | {c['context_switches_per_s']:.0f} | "
                       f"{c['daemon_wakes_per_cycle']:.4f} |")
        print("\n".join(out), file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin-dir", default=os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--worker-lib", default=None)
    ap.add_argument("--python", default="/usr/bin/python3" if os.path.exists("/usr/bin/python3")
                    else "python3")
    ap.add_argument("--go-worker", default=None)
    ap.add_argument("--latency-ms", default="20,50")
    ap.add_argument("--runtimes", default="python,go")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--cost-seconds", type=float, default=5.0)
    ap.add_argument("--phases", default="sweep,cost", help="sweep, cost or both")
    ap.add_argument("--quick", action="store_true", help="a smoke run: few pauses, short costs")
    args = ap.parse_args()
    build = os.path.dirname(os.path.abspath(args.bin_dir))
    args.worker_lib = args.worker_lib or os.path.join(build, "worker", "librunway-worker.so.1")
    args.go_worker = args.go_worker or os.path.join(args.bin_dir, "runway-bench-gc-go")
    if args.quick:
        args.steps, args.cost_seconds = 6, 1.0
    latencies = [int(x) for x in args.latency_ms.split(",")]
    runtimes = args.runtimes.split(",")

    b = Bench(args)
    try:
        b.start()
        phases = args.phases.split(",")
        for lat in latencies:
            for rt in runtimes if "sweep" in phases else []:
                for mode in ("sleep", "gc"):
                    log(f"{rt}, L = {lat} ms, {mode} sweep")
                    b.sweep(rt, lat, mode)
            for rt in ["c"] + runtimes if "cost" in phases else []:
                for wake in (0, lat * RATE // 1000 // 4):
                    if rt == "c" and wake:
                        continue
                    log(f"{rt}, L = {lat} ms, wake_frames {wake or 'default'}: cost")
                    b.cost(rt, lat, wake)
        b.table()
    finally:
        b.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
