"""The daemon's side of a slot (tests/unit/slot_rig.h, at $RUNWAY_TEST_RIG) through ctypes."""

import ctypes
import os

_lib = None


def _load():
    global _lib
    if _lib is None:
        path = os.environ.get("RUNWAY_TEST_RIG")
        if not path:
            raise RuntimeError("RUNWAY_TEST_RIG must name librunway-test-rig.so (ctest sets it)")
        lib = ctypes.CDLL(path)
        p, u32, u64, f = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint64, ctypes.c_float
        fp = ctypes.POINTER(ctypes.c_float)
        for name, res, args in (
            ("rig_new", p, [u32, u32, u32, ctypes.c_int, u32, u32]),
            ("rig_free", None, [p]),
            ("rig_export", ctypes.c_int, [p, ctypes.c_char_p]),
            ("rig_cycle", ctypes.c_int, [p, fp, fp]),
            ("rig_pending", u64, [p]),
            ("rig_position", u64, [p]),
            ("rig_push_midi", ctypes.c_int, [p, u64, ctypes.c_uint8, ctypes.c_uint8, ctypes.c_uint8]),
            ("rig_push_param", ctypes.c_int, [p, u64, u32, f]),
            ("rig_state_post", u32, [p, u32, ctypes.c_char_p, u32]),
            ("rig_state_answered", ctypes.c_int, [p, u32]),
            ("rig_state_status", ctypes.c_int32, [p]),
            ("rig_state_read", u32, [p, ctypes.c_char_p, u32]),
            ("rig_plugin_name", ctypes.c_char_p, [p]),
            ("rig_declared_params", u32, [p]),
            ("rig_worker_pid", u32, [p]),
            ("rig_wake_frames", u32, [p]),
        ):
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = res, args
        _lib = lib
    return _lib


class Rig:
    """One slot segment; export() lets the next Worker() in this process attach to it."""

    def __init__(self, inputs=2, outputs=2, midi=False, latency=256, period=64, rate=48000):
        self.lib = _load()
        self.r = self.lib.rig_new(rate, inputs, outputs, int(midi), latency, period)
        if not self.r:
            raise RuntimeError("rig_new refused the slot")
        self.inputs, self.outputs, self.period, self.latency = inputs, outputs, period, latency

    def close(self):
        if self.r:
            self.lib.rig_free(self.r)
            self.r = None

    def export(self, slot="py"):
        fd = self.lib.rig_export(self.r, slot.encode())
        assert fd >= 0
        return fd

    def cycle(self, inputs=None):
        """One cycle; inputs: a list of per-channel sequences of `period` floats (None: silence).
        Returns (valid frames, outputs as lists of floats)."""
        n = self.period
        src = None
        if inputs is not None:
            src = (ctypes.c_float * (self.inputs * n))()
            for c, chan in enumerate(inputs):
                for k, x in enumerate(chan):
                    src[c * n + k] = x
        dst = (ctypes.c_float * max(1, self.outputs * n))()
        valid = self.lib.rig_cycle(self.r, src, dst)
        return valid, [list(dst[c * n:(c + 1) * n]) for c in range(self.outputs)]

    @property
    def position(self):
        return self.lib.rig_position(self.r)

    @property
    def pending(self):
        return self.lib.rig_pending(self.r)

    def midi(self, time, b0, b1, b2):
        assert self.lib.rig_push_midi(self.r, time, b0, b1, b2) == 0

    def param(self, time, pid, value):
        assert self.lib.rig_push_param(self.r, time, pid, value) == 0

    def state_post(self, op, data=b""):
        return self.lib.rig_state_post(self.r, op, data, len(data))

    def state_answered(self, req):
        return bool(self.lib.rig_state_answered(self.r, req))

    def state_status(self):
        return self.lib.rig_state_status(self.r)

    def state_data(self):
        buf = ctypes.create_string_buffer(1 << 16)
        n = self.lib.rig_state_read(self.r, buf, len(buf))
        return buf.raw[:n]

    @property
    def plugin_name(self):
        return self.lib.rig_plugin_name(self.r).decode()

    @property
    def declared_params(self):
        return self.lib.rig_declared_params(self.r)

    @property
    def worker_pid(self):
        return self.lib.rig_worker_pid(self.r)

    @property
    def wake_frames(self):
        return self.lib.rig_wake_frames(self.r)
