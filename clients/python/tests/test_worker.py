"""runway_worker against the daemon's side of a slot played by this process (tests/rig.py).

Daemon cycles and worker blocks take turns on one thread: the worker is
asked for blocks with timeout 0 after every cycle, as librunway-worker's own
C tests do. Every expected sample is computed, and checked exactly.
"""

import array
import ctypes
import os
import threading
import time
import unittest

import runway_worker as rw
from runway_worker import _lib

from .rig import Rig

PERIOD = 64
LAT = 256


def ramp(position, channel):
    """Input sample at timeline position p of channel c: distinct and exact in a float32."""
    return [float((position + k) % 65536 + 1) + channel * 100000.0 for k in range(PERIOD)]


def drain(w, process):
    """Every block pending, each through process(block); returns how many."""
    n = 0
    while True:
        b = w.next(timeout=0)
        if b is None:
            return n
        process(b)
        w.done(b)
        n += 1


def copy_through(b):
    for out, inp in zip(b.outputs, b.inputs):
        out[:] = inp


class RigTest(unittest.TestCase):
    def setUp(self):
        self.rigs = []
        self.saved_env = {k: os.environ.get(k)
                          for k in ("RUNWAY_SEGMENT_FD", "RUNWAY_SEGMENT_WORKER_FD", "RUNWAY_SLOT")}

    def tearDown(self):
        for r in self.rigs:
            r.close()
        for k, v in self.saved_env.items():
            if v is None:
                os.environ.pop(k, None)
                os.unsetenv(k)

    def rig(self, **kw):
        r = Rig(latency=LAT, period=PERIOD, **kw)
        self.rigs.append(r)
        r.export()
        return r

    def worker(self, **kw):
        kw.setdefault("handle_signals", False)
        w = rw.Worker(**kw)
        # The segment is the worker's now; the next worker of a test needs a new export.
        os.unsetenv("RUNWAY_SEGMENT_FD")
        self.addCleanup(w.close)
        return w


class AudioTest(RigTest):
    def test_audio_lands_exactly_L_later(self):
        r = self.rig(inputs=2, outputs=2)
        w = self.worker(plugin="py-test")
        self.assertEqual(w.info.latency, LAT)
        self.assertEqual(w.info.inputs, 2)
        self.assertEqual(w.info.period, PERIOD)
        self.assertEqual(w.info.wake_frames, PERIOD)  # the default: one period
        played = {}
        for _ in range(20):
            t = r.position
            valid, outs = r.cycle([ramp(t, 0), ramp(t, 1)])
            self.assertEqual(valid, PERIOD)
            for k in range(PERIOD):
                played[t + k] = (outs[0][k], outs[1][k])
            drain(w, copy_through)
        for p in range(LAT + 64, 20 * PERIOD):
            want = [float((p - LAT) % 65536 + 1) + c * 100000.0 for c in range(2)]
            # The first block is a discontinuity: the SDK fades its first 64 frames in.
            k = p - LAT
            if k < 64:
                want = [x * (k + 1) / 64 for x in want]
            self.assertEqual(list(played[p]), [float(ctypes.c_float(x).value) for x in want],
                             f"output at {p}")
        for p in range(LAT):
            self.assertEqual(played[p], (0.0, 0.0))
        st = w.stats()
        self.assertEqual(st["frames"], 20 * PERIOD)
        self.assertEqual(st["discontinuities"], 1)
        self.assertEqual(r.plugin_name, "py-test")
        self.assertEqual(r.worker_pid, os.getpid())

    def test_views_are_float32_over_stable_buffers(self):
        r = self.rig(inputs=1, outputs=2)
        w = self.worker()
        r.cycle([ramp(0, 0)])
        b = w.next(timeout=0)
        self.assertEqual(b.frames, PERIOD)
        self.assertEqual(b.inputs[0].format, "f")
        self.assertTrue(b.inputs[0].readonly)
        self.assertFalse(b.outputs[0].readonly)
        self.assertEqual(len(b.outputs[1]), PERIOD)
        first = [ctypes.addressof(ctypes.c_char.from_buffer(o)) for o in b.outputs]
        # array('f') works with the views both ways.
        a = array.array("f", b.inputs[0])
        self.assertEqual(a[3], 4.0)
        b.outputs[0][:] = a
        b.outputs[1][:] = array.array("f", [0.5] * PERIOD)
        w.done(b)
        r.cycle([ramp(PERIOD, 0)])
        b = w.next(timeout=0)
        self.assertEqual([ctypes.addressof(ctypes.c_char.from_buffer(o)) for o in b.outputs], first)
        w.done(b)

    @unittest.skipUnless(_has_numpy := __import__("importlib").util.find_spec("numpy"),
                         "numpy is not installed")
    def test_numpy_views_share_the_buffers(self):
        import numpy as np

        r = self.rig(inputs=1, outputs=1)
        w = self.worker()
        r.cycle([ramp(0, 0)])
        b = w.next(timeout=0)
        (inp,), (out,) = b.numpy_inputs(), b.numpy_outputs()
        self.assertEqual(inp.dtype, np.float32)
        self.assertFalse(inp.flags.writeable)
        np.multiply(inp, np.float32(2), out=out)
        self.assertEqual(b.outputs[0][5], 12.0)  # the same memory as the memoryview
        w.done(b)

    def test_forgotten_outputs_are_silence(self):
        r = self.rig(inputs=1, outputs=1)
        w = self.worker()
        for i in range(8):
            r.cycle([[1.0] * PERIOD])
            drain(w, lambda b: None)
        _, outs = r.cycle([[1.0] * PERIOD])
        self.assertEqual(outs[0], [0.0] * PERIOD)


class EventTest(RigTest):
    def test_events_at_their_offsets(self):
        r = self.rig(inputs=0, outputs=1, midi=True)
        w = self.worker(params=[rw.Param("gain_db", -60, 24, 0, "dB"),
                                rw.Param("mix", 0, 1, 0.5, id=9)])
        self.assertEqual(r.declared_params, 2)
        r.midi(10, 0x90, 60, 100)
        r.param(20, 9, 0.25)
        r.param(21, 0, 99.0)  # clamped to 24
        r.cycle()
        seen = []
        drain(w, lambda b: seen.extend(b.events))
        self.assertEqual(seen, [rw.MidiEvent(10, bytes([0x90, 60, 100])),
                                rw.ParamEvent(20, 9, 0.25, "mix"),
                                rw.ParamEvent(21, 0, 24.0, "gain_db")])
        self.assertEqual(seen[0].status, 0x90)
        self.assertEqual(w.param("mix"), 0.25)
        self.assertEqual(w.param(0), 24.0)
        with self.assertRaises(KeyError):
            w.param("nope")

    def test_bad_declarations_say_why(self):
        self.rig()
        with self.assertRaises(rw.WorkerError) as cm:
            self.worker(params=[rw.Param("bad name", 0, 1, 0.5)])
        self.assertEqual(cm.exception.code, _lib.RW_ERR_INVALID)
        self.assertIn("bad name", str(cm.exception))
        with self.assertRaises(rw.WorkerError) as cm:
            self.worker(params=[rw.Param("x", 1, 0, 0.5)])
        self.assertIn("min <= default <= max", str(cm.exception))

    def test_no_slot_says_what_to_do(self):
        os.environ.pop("RUNWAY_SEGMENT_FD", None)
        os.unsetenv("RUNWAY_SEGMENT_FD")
        os.environ.pop("RUNWAY_SLOT", None)
        os.unsetenv("RUNWAY_SLOT")
        with self.assertRaises(rw.WorkerError) as cm:
            rw.Worker(handle_signals=False)
        self.assertEqual(cm.exception.code, _lib.RW_ERR_ATTACH)
        self.assertIn("--external", str(cm.exception))


class StateTest(RigTest):
    def wait_answer(self, r, w, req):
        deadline = time.monotonic() + 5
        while not r.state_answered(req):
            self.assertLess(time.monotonic(), deadline, "the state request was never answered")
            self.assertIsNone(w.next(timeout=0))

    def test_own_state_round_trip(self):
        r = self.rig(inputs=0, outputs=1)
        state = {"blob": b"hello"}
        w = self.worker(save_state=lambda: state["blob"],
                        load_state=lambda data: state.update(blob=data))
        req = r.state_post(1)
        self.wait_answer(r, w, req)
        self.assertEqual(r.state_status(), 0)
        self.assertEqual(r.state_data(), b"hello")
        req = r.state_post(2, b"world")
        self.wait_answer(r, w, req)
        self.assertEqual(r.state_status(), 0)
        self.assertEqual(state["blob"], b"world")

    def test_refusals(self):
        r = self.rig(inputs=0, outputs=1)

        def refuse(data):
            raise ValueError("not mine")

        w = self.worker(save_state=lambda: None, load_state=refuse)
        req = r.state_post(1)
        self.wait_answer(r, w, req)
        self.assertEqual(r.state_status(), 1)  # unsupported
        req = r.state_post(2, b"x")
        self.wait_answer(r, w, req)
        self.assertEqual(r.state_status(), 3)  # failed

    def test_default_state_is_the_parameters(self):
        r = self.rig(inputs=0, outputs=1)
        w = self.worker(params=[rw.Param("gain_db", -60, 24, -6, "dB")])
        req = r.state_post(1)
        self.wait_answer(r, w, req)
        self.assertEqual(r.state_data(), b"runway-params 1\ngain_db -6\n")
        req = r.state_post(2, b"runway-params 1\ngain_db -12\n")
        self.wait_answer(r, w, req)
        self.assertEqual(w.param("gain_db"), -12.0)
        r.cycle()
        seen = []
        drain(w, lambda b: seen.extend(b.events))
        self.assertEqual(seen, [rw.ParamEvent(0, 0, -12.0, "gain_db")])


class LifeTest(RigTest):
    def test_request_stop_ends_blocks_from_another_thread(self):
        self.rig(inputs=1, outputs=1)
        w = self.worker()
        done = []

        def loop():
            for _ in w.blocks(timeout=10):
                pass
            done.append(time.monotonic())

        th = threading.Thread(target=loop)
        th.start()
        time.sleep(0.05)
        t0 = time.monotonic()
        w.request_stop()
        th.join(5)
        self.assertFalse(th.is_alive())
        self.assertLess(done[0] - t0, 1.0)
        with self.assertRaises(rw.Closed):
            w.next(timeout=0)

    def test_the_worker_sleeps_on_its_own_timer(self):
        r = self.rig(inputs=1, outputs=1)
        w = self.worker()
        # Cycles one period apart in real time: the worker keeps up, waking itself.
        period_s = PERIOD / 48000
        stop = threading.Event()

        def daemon():
            nxt = time.monotonic()
            for _ in range(150):
                r.cycle([[0.0] * PERIOD])
                nxt += period_s
                time.sleep(max(0.0, nxt - time.monotonic()))
            stop.set()

        th = threading.Thread(target=daemon)
        th.start()
        while not stop.is_set():
            b = w.next(timeout=0.05)
            if b is not None:
                w.done(b)
        th.join()
        st = w.stats()
        self.assertGreater(st["blocks"], 100)
        self.assertGreater(st["timer_wakes"], 0)
        self.assertEqual(r.wake_frames in (PERIOD, 2 * PERIOD), True)

    def test_close_is_idempotent_and_final(self):
        self.rig()
        w = self.worker()
        w.close()
        w.close()
        with self.assertRaises(rw.Closed):
            w.next(timeout=0)


if __name__ == "__main__":
    unittest.main()
