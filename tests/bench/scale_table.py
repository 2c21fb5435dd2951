#!/usr/bin/env python3
"""Turns the JSON lines of one or more runway-bench-scale runs into README's tables.

usage: scale_table.py [FILE ...]   (standard input when no file is given)

Each figure is the median over the runs that measured it, with the range
beside it when there was more than one run. The goals are the scale goals
README lists; a figure says "met" or "not met" against its goal, from the
median.
"""
import json
import statistics
import sys
from collections import defaultdict


def load(paths):
    lines = []
    files = [open(p) for p in paths] if paths else [sys.stdin]
    for f in files:
        for text in f:
            text = text.strip()
            if text.startswith("{"):
                obj = json.loads(text)
                if obj.get("bench") == "scale":
                    lines.append(obj)
    return lines


def values(objs, key):
    return [o[key] for o in objs if isinstance(o.get(key), (int, float))]


def fig(objs, key, scale=1.0, digits=1):
    """The median of key over objs, scaled, with the range when there are several."""
    v = [x * scale for x in values(objs, key)]
    if not v:
        return "-"
    med = statistics.median(v)
    text = f"{med:.{digits}f}"
    if len(v) > 1 and max(v) != min(v):
        text += f" ({min(v):.{digits}f}-{max(v):.{digits}f})"
    return text


def median(objs, key, scale=1.0):
    v = [x * scale for x in values(objs, key)]
    return statistics.median(v) if v else None


def verdict(value, goal, below=True):
    if value is None:
        return "not measured"
    return "met" if (value <= goal if below else value >= goal) else "not met"


def main():
    lines = load(sys.argv[1:])
    by = defaultdict(list)
    envs = []
    for o in lines:
        kind = o["kind"]
        if kind == "env":
            envs.append(o)
        elif kind in ("plain", "runwayd"):
            by[(kind, o["slots"], o["topology"])].append(o)
        elif kind == "idle":
            by[("idle",)].append(o)
        elif kind == "min_latency":
            by[("min_latency", o["slots"])].append(o)
        elif kind == "latency_probe" and o.get("check"):
            by[("check", o["slots"], o["latency_frames"])].append(o)
    runs = sorted({o["run"] for o in lines})
    if envs:
        e = envs[0]
        print(f"{len(runs)} run(s); {e['rate']} Hz, {e['period']}-frame period, "
              f"{e['cpus']} CPUs, build {e['build']}, {e['seconds']} s per configuration; "
              f"machine busy {fig(lines, 'machine_busy_pct', digits=0)} % "
              f"(all lines; what else ran counts)")
        print()

    idle = by[("idle",)]
    print("| slots | topology | RT wall avg / p99 / max (us) | RT CPU per cycle (us) | "
          "plain clients' CPU per cycle (us) | xruns: runwayd / plain / idle | underruns | "
          "DSP load: runwayd / plain (%) | runwayd CPU (% of a core) | workers' CPU (% per worker) | "
          "RSS per slot (KB) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    keys = sorted({(k[1], k[2]) for k in by if k[0] == "runwayd"})
    for n, topo in keys:
        r = by[("runwayd", n, topo)]
        p = by[("plain", n, topo)]
        wall = " / ".join(fig(r, k, 1e-3) for k in ("rt_wall_ns_avg", "rt_wall_ns_p99",
                                                      "rt_wall_ns_max"))
        xr = f"{fig(r, 'xruns', digits=0)} / {fig(p, 'xruns', digits=0)} / " \
             f"{fig(r, 'idle_xruns', digits=1)}"
        print(f"| {n} | {topo} | {wall} | {fig(r, 'rt_cpu_ns_per_cycle', 1e-3)} | "
              f"{fig(p, 'clients_cpu_ns_per_cycle', 1e-3)} | {xr} | "
              f"{fig(r, 'underruns', digits=0)} | "
              f"{fig(r, 'dsp_load_avg', digits=2)} / {fig(p, 'dsp_load_avg', digits=2)} | "
              f"{fig(r, 'daemon_cpu_pct', digits=2)} | {fig(r, 'worker_cpu_pct', digits=2)} | "
              f"{fig(r, 'rss_kb_per_slot', digits=0)} |")
    print()
    if idle:
        print(f"Idle server: DSP load {fig(idle, 'dsp_load_avg', digits=2)} %, "
              f"{fig(idle, 'xruns', digits=0)} xruns per window.")
        print()

    mins = sorted(k[1] for k in by if k[0] == "min_latency")
    if mins:
        print("| slots | smallest L without an underrun (frames) | probes (L: underruns) |")
        print("|---|---|---|")
        for n in mins:
            objs = by[("min_latency", n)]
            found = [o["min_latency_frames"] for o in objs]
            probes = "; ".join(", ".join(f"{k}: {int(v)}" for k, v in sorted(
                o["probes"].items(), key=lambda kv: int(kv[0]))) for o in objs)
            print(f"| {n} | {', '.join(str(x) for x in found)} "
                  f"(over {objs[0]['seconds']:g} s) | {probes} |")
        print()

    checks = sorted(k[1:] for k in by if k[0] == "check")
    if checks:
        print("| slots | L (frames) | seconds | underruns per run | xruns per run | "
              "runs without an underrun |")
        print("|---|---|---|---|---|---|")
        for n, lat in checks:
            objs = by[("check", n, lat)]
            under = [int(o["underruns"]) for o in objs]
            xr = [int(o["xruns"]) for o in objs]
            print(f"| {n} | {lat} | {objs[0]['seconds']:g} | {', '.join(map(str, under))} | "
                  f"{', '.join(map(str, xr))} | {sum(u == 0 for u in under)} of {len(under)} |")
        print()

    # The goals, each beside the figure it is about.
    print("| goal | measured | |")
    print("|---|---|---|")
    r8, p8 = by[("runwayd", 8, "chained")], by[("plain", 8, "chained")]
    ratio = median(r8, "dsp_load_ratio")
    top = max(values(r8, "dsp_load_ratio"), default=None)
    met = verdict(ratio, 0.12)
    if met == "met" and top is not None and top > 0.15:
        met = "not met (a run above 0.15)"
    print(f"| DSP load, 8 chained slots / 8 chained plain clients: median <= 0.12, "
          f"none above 0.15 | {fig(r8, 'dsp_load_ratio', digits=3)} | {met} |")
    r128 = by[("runwayd", 128, "chained")]
    cpu = median(r128, "rt_cpu_ns_per_cycle", 1e-3)
    print(f"| 128 chained slots: RT thread CPU <= 100 us per cycle | "
          f"{fig(r128, 'rt_cpu_ns_per_cycle', 1e-3)} us | {verdict(cpu, 100)} |")
    extra = [o["xruns"] - o["idle_xruns"] for o in r128
             if isinstance(o.get("idle_xruns"), (int, float))]
    worst = max(extra) if extra else None
    print(f"| 128 chained slots: no more xruns than the idle server | "
          f"{fig(r128, 'xruns', digits=0)} against {fig(r128, 'idle_xruns')} | "
          f"{verdict(worst, 0.5)} |")
    r1, p1 = by[("runwayd", 1, "chained")], by[("plain", 1, "chained")]
    c1 = median(r1, "cpu_ratio")
    c1w = median(r1, "cpu_with_workers_ratio")
    print(f"| 1 slot: runwayd CPU <= 1.2x a plain client | {fig(r1, 'cpu_ratio', digits=2)} | "
          f"{verdict(c1, 1.2)} |")
    print(f"| 1 slot: runwayd + worker CPU <= 2x a plain client | "
          f"{fig(r1, 'cpu_with_workers_ratio', digits=2)} | {verdict(c1w, 2.0)} |")
    for n, goal in ((16, 192), (64, 256)):
        objs = by[("min_latency", n)]
        found = [o["min_latency_frames"] for o in objs]
        probes = by[("check", n, goal)]
        if probes:
            # Checked at the goal itself: met when most runs had no underrun.
            under = [int(o["underruns"]) for o in probes]
            clean = sum(u == 0 for u in under)
            print(f"| smallest L, {n} chained slots: {goal} frames | underruns at {goal} over "
                  f"{probes[0]['seconds']:g} s: {', '.join(map(str, under))} | "
                  f"{'met' if 2 * clean > len(under) else 'not met'} |")
            continue
        val = max(found) if found and None not in found else None
        print(f"| smallest L, {n} chained slots: {goal} frames | "
              f"{', '.join(str(x) for x in found) or '-'} | {verdict(val, goal)} |")
    if r1 or r128:
        anyr = r128 or r1
        print(f"| memory stated per slot and daemon | RSS {fig(anyr, 'rss_kb_per_slot', digits=0)} KB "
              f"per slot, daemon {fig(anyr, 'rss_kb_no_slot', 1 / 1024)} MB with no slot "
              f"({fig(anyr, 'shmem_kb_no_slot', 1 / 1024)} MB of it shared memory), "
              f"locked {fig(anyr, 'locked_kb_no_slot', 1 / 1024)} MB with no slot, worker "
              f"{fig(anyr, 'worker_rss_kb', 1 / 1024)} MB | stated |")


if __name__ == "__main__":
    main()
