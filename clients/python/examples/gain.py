#!/usr/bin/env python3
"""gain.py: a stereo gain for runway, written in Python.

    # runwayd starts it for the slot (the worker inherits its segment):
    runwayctl slot add vox --inputs 2 --outputs 2 \\
        --exec "env PYTHONPATH=$PWD/clients/python python3 $PWD/clients/python/examples/gain.py"
    # or you start it, for a slot that waits for you:
    runwayctl slot add vox --external --inputs 2 --outputs 2
    RUNWAY_SLOT=vox PYTHONPATH=clients/python python3 clients/python/examples/gain.py

    runwayctl param set vox gain_db -6      # heard exactly L after the cycle it was set in

A gain change starts at the exact sample of its event and ramps linearly
over 5 ms; at 0 dB the output is the input, bit for bit. Its state is the
declared parameter, which runwayd keeps: after a crash the new worker starts
at the last gain. With numpy installed the arithmetic runs in numpy, on the
SDK's own buffers; without, in plain Python.

--pause-ms MS --pause-every N sleeps MS inside every Nth block, to hear (or
test) what a pause of that length does: up to L minus one period, nothing.
"""

import argparse
import struct
import sys
import time

import runway_worker as rw

try:
    import numpy as np
except ImportError:
    np = None

GAIN_DB = 0


def db_to_gain(db: float) -> float:
    # The gain as a float32, as a C plugin would hold it.
    return struct.unpack("f", struct.pack("f", 10.0 ** (db / 20.0)))[0]


class Gain:
    def __init__(self, sample_rate: int):
        self.gain = 1.0
        self.target = 1.0
        self.step = 0.0
        self.ramp_left = 0
        self.ramp_frames = max(1, sample_rate // 200)

    def change(self, db: float, at_start: bool) -> None:
        self.target = db_to_gain(db)
        if at_start:
            # Restored state (a restart) applies at once; the SDK fades the output in.
            self.gain, self.ramp_left = self.target, 0
            return
        self.ramp_left = self.ramp_frames
        self.step = (self.target - self.gain) / self.ramp_frames

    def render(self, block: rw.Block, start: int, end: int) -> None:
        """Frames [start, end) of every output channel."""
        pairs = list(zip(block.outputs, block.inputs))
        while start < end and self.ramp_left > 0:
            self.ramp_left -= 1
            self.gain = self.target if self.ramp_left == 0 else self.gain + self.step
            for out, inp in pairs:
                out[start] = inp[start] * self.gain
            start += 1
        if start >= end:
            return
        g = self.gain
        if np is not None:
            for out, inp in zip(block.numpy_outputs(), block.numpy_inputs()):
                np.multiply(inp[start:end], np.float32(g), out=out[start:end])
        elif g == 1.0:
            for out, inp in pairs:
                out[start:end] = inp[start:end]
        else:
            for out, inp in pairs:
                for i in range(start, end):
                    out[i] = inp[i] * g
        # Outputs beyond the inputs stay silent (the SDK zeroed them).


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pause-ms", type=float, default=0.0)
    ap.add_argument("--pause-every", type=int, default=0)
    args = ap.parse_args()

    params = [rw.Param("gain_db", min=-60.0, max=24.0, default=0.0, unit="dB", id=GAIN_DB)]
    try:
        worker = rw.Worker(plugin="py-gain", params=params)
    except rw.WorkerError as e:
        print(f"gain.py: {e}", file=sys.stderr)
        return 1
    with worker as w:
        info = w.info
        print(f"gain.py: attached to \"{info.slot}\": {info.inputs} in, {info.outputs} out, "
              f"{info.sample_rate} Hz, latency {info.latency} frames", file=sys.stderr)
        g = Gain(info.sample_rate)
        n = 0
        for block in w.blocks():
            frame = 0
            for ev in block.events:
                if isinstance(ev, rw.ParamEvent) and ev.id == GAIN_DB:
                    g.render(block, frame, ev.offset)
                    frame = ev.offset
                    g.change(ev.value, block.discontinuity and ev.offset == 0)
            g.render(block, frame, block.frames)
            n += 1
            if args.pause_every and n % args.pause_every == 0:
                time.sleep(args.pause_ms / 1000.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
