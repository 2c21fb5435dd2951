#!/usr/bin/env python3
"""synth.py: a small polyphonic MIDI synth for runway, written in Python.

    runwayctl slot add keys --midi --inputs 0 --outputs 2 \\
        --exec "env PYTHONPATH=$PWD/clients/python python3 $PWD/clients/python/examples/synth.py"
    jack_connect my-keyboard:midi_out runway:keys.midi_in

Eight voices of a sine with a short attack and an exponential release; the
note starts at the exact sample of its note-on. Parameters: level_db and
release_ms. The state is the plugin's own (save_state/load_state): its
settings and its tuning as JSON, so `runwayctl state save keys keys.json`
keeps them, and a restarted worker gets them back before its first block.
"""

import json
import math
import sys

import runway_worker as rw

LEVEL_DB, RELEASE_MS = 0, 1
VOICES = 8
ATTACK_FRAMES = 48


class Voice:
    __slots__ = ("note", "phase", "inc", "amp", "gate", "age")

    def __init__(self):
        self.note = -1
        self.phase = self.inc = self.amp = 0.0
        self.gate = False
        self.age = 0


class Synth:
    def __init__(self, sample_rate: int):
        self.rate = sample_rate
        self.voices = [Voice() for _ in range(VOICES)]
        self.level = 10 ** (-12 / 20)
        self.release_ms = 200.0
        self.tuning = 440.0
        self._release_coef()

    def _release_coef(self) -> None:
        frames = max(1.0, self.release_ms * self.rate / 1000.0)
        self.release = math.exp(math.log(0.001) / frames)  # -60 dB over release_ms

    # ---- state: the plugin's own, as JSON ----------------------------------------

    def save(self) -> bytes:
        return json.dumps({"tuning": self.tuning, "level": self.level,
                           "release_ms": self.release_ms}).encode()

    def load(self, data: bytes) -> None:
        doc = json.loads(data)  # a file may hold anything: check before changing
        tuning, level, release = float(doc["tuning"]), float(doc["level"]), float(doc["release_ms"])
        if not (100.0 <= tuning <= 1000.0 and 0.0 <= level <= 2.0 and 1.0 <= release <= 5000.0):
            raise ValueError("synth state out of range")
        self.tuning, self.level, self.release_ms = tuning, level, release
        self._release_coef()

    # ---- events and audio -----------------------------------------------------

    def event(self, ev: rw.Event) -> None:
        if isinstance(ev, rw.ParamEvent):
            if ev.id == LEVEL_DB:
                self.level = 10 ** (ev.value / 20)
            elif ev.id == RELEASE_MS:
                self.release_ms = ev.value
                self._release_coef()
            return
        status = ev.status
        if status == 0x90 and len(ev.data) == 3 and ev.data[2] > 0:
            self.note_on(ev.data[1], ev.data[2])
        elif status == 0x80 or (status == 0x90 and len(ev.data) == 3):
            self.note_off(ev.data[1])

    def note_on(self, note: int, velocity: int) -> None:
        v = min(self.voices, key=lambda x: (x.gate, x.amp))  # a free or the quietest voice
        v.note, v.gate, v.age, v.phase = note, True, 0, 0.0
        v.inc = 2 * math.pi * self.tuning * 2 ** ((note - 69) / 12) / self.rate
        v.amp = velocity / 127.0

    def note_off(self, note: int) -> None:
        for v in self.voices:
            if v.note == note and v.gate:
                v.gate = False

    def render(self, outputs, start: int, end: int) -> None:
        active = [v for v in self.voices if v.gate or v.amp > 1e-4]
        if not active:
            return  # the SDK zeroed the outputs
        sin, level, release = math.sin, self.level, self.release
        for i in range(start, end):
            s = 0.0
            for v in active:
                env = v.amp if v.age >= ATTACK_FRAMES else v.amp * v.age / ATTACK_FRAMES
                s += sin(v.phase) * env
                v.phase += v.inc
                v.age += 1
                if not v.gate:
                    v.amp *= release
            s *= level
            for out in outputs:
                out[i] = s
        for v in active:
            v.phase %= 2 * math.pi


def main() -> int:
    params = [rw.Param("level_db", -60.0, 6.0, -12.0, "dB", id=LEVEL_DB),
              rw.Param("release_ms", 1.0, 5000.0, 200.0, "ms", id=RELEASE_MS)]
    synth = None

    def save():
        return synth.save()

    def load(data):
        synth.load(data)

    try:
        worker = rw.Worker(plugin="py-synth", params=params, save_state=save, load_state=load)
    except rw.WorkerError as e:
        print(f"synth.py: {e}", file=sys.stderr)
        return 1
    with worker as w:
        synth = Synth(w.info.sample_rate)
        for block in w.blocks():
            frame = 0
            for ev in block.events:
                synth.render(block.outputs, frame, ev.offset)
                frame = ev.offset
                synth.event(ev)
            synth.render(block.outputs, frame, block.frames)
    return 0


if __name__ == "__main__":
    sys.exit(main())
