#!/usr/bin/env python3
"""The GC benchmark's Python worker: clients/python/examples/gain.py's gain,
with pauses induced between blocks and timed (bench_gc.py runs it).

--mode gc: a live heap that grows between pauses (small lists, the kind of
objects the collector scans) and a full gc.collect() right after a block is
done, the heap sized so that each collection lasts about the next of
--targets (ms). --mode sleep: the same sweep with time.sleep() instead (the
baseline: the write-ahead's tolerance without a collector). --mode none: no pauses (the worker's own cost).
Automatic collection is off, so every pause is one the worker timed.
Growing the heap takes at most a quarter period per block, so the worker
stays on time. On stdout: {"ready": true} 30 ms of audio before a pause (the
benchmark reads the slot's counters then), and {"pause_ms", "objects"} after
it.
"""

import argparse
import gc
import importlib.util
import json
import os
import sys
import time

import runway_worker as rw

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "gain_example", os.path.join(HERE, "..", "..", "clients", "python", "examples", "gain.py"))
gain_example = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gain_example)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("gc", "sleep", "none"), default="gc")
    ap.add_argument("--targets", default="1,2,5,10,20,50", help="pause lengths to aim at, ms")
    ap.add_argument("--spacing-ms", type=float, default=400.0)
    ap.add_argument("--wake-frames", type=int, default=0)
    args = ap.parse_args()

    gc.disable()
    heap = []
    ns_per_object = 100.0  # first guess; measured at every collection
    targets = [float(x) for x in args.targets.split(",")]
    out = sys.stdout

    with rw.Worker(plugin="py-gc-bench", wake_frames=args.wake_frames,
                   params=[rw.Param("gain_db", -60.0, 24.0, 0.0, "dB", id=0)]) as w:
        rate = w.info.sample_rate
        g = gain_example.Gain(rate)
        spacing = int(args.spacing_ms * rate / 1000)
        warning = int(0.030 * rate)  # "ready" comes this much audio before a pause
        budget = w.info.period / rate / 4
        frames_since = 0
        armed = -1  # frames since "ready", or -1
        step = 0
        want_objects = int(targets[0] * 1e6 / ns_per_object) if args.mode == "gc" else 0
        for block in w.blocks():
            g.render(block, 0, block.frames)
            frames_since += block.frames
            if args.mode == "none" or step >= len(targets):
                continue
            if armed < 0:
                if args.mode == "gc" and len(heap) < want_objects and frames_since > spacing // 4:
                    # Once the worker long caught up after the last pause, and a quarter
                    # period per block at most, so it stays on time while the heap grows.
                    t_end = time.perf_counter() + budget
                    while len(heap) < want_objects and time.perf_counter() < t_end:
                        heap.extend([i, None] for i in range(min(500, want_objects - len(heap))))
                if frames_since >= spacing and len(heap) >= want_objects:
                    out.write('{"ready": true}\n')
                    out.flush()
                    armed = 0
                continue
            armed += block.frames
            if armed < warning:
                continue
            w.done(block)  # the pause comes between blocks, as a collection would
            t0 = time.perf_counter()
            if args.mode == "gc":
                gc.collect()
            else:
                time.sleep(targets[step] / 1000.0)
            pause_ms = (time.perf_counter() - t0) * 1000.0
            out.write(json.dumps({"pause_ms": round(pause_ms, 3), "objects": len(heap)}) + "\n")
            out.flush()
            if args.mode == "gc" and heap:
                ns_per_object = pause_ms * 1e6 / len(heap)
            step += 1
            frames_since = 0
            armed = -1
            if step < len(targets) and args.mode == "gc":
                want_objects = int(targets[step] * 1e6 / ns_per_object)
        out.write(json.dumps({"done": True, **w.stats()}) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
