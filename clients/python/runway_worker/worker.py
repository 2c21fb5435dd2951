"""Worker, Block and events: librunway-worker's pull API, the Python way."""

from __future__ import annotations

import ctypes
import math
import signal
import sys
import threading
import traceback
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Sequence, Union

from . import _lib


class WorkerError(Exception):
    """A librunway-worker call failed; .code is its rw_status, the message says why."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


class Closed(WorkerError):
    """The daemon went away or a stop was requested: the worker's work is over."""


@dataclass(frozen=True)
class Param:
    """A parameter the plugin declares: runwayd shows it, stores it and sends its changes.

    name: 1 to 31 of [A-Za-z0-9_]; min <= default <= max, all finite; unit: up
    to 15 bytes ("dB", "Hz"). id defaults to the parameter's index.
    """

    name: str
    min: float
    max: float
    default: float
    unit: str = ""
    id: Optional[int] = None


@dataclass(frozen=True)
class MidiEvent:
    """1 to 3 MIDI bytes at sample `offset` of the block."""

    offset: int
    data: bytes

    @property
    def status(self) -> int:
        return self.data[0] & 0xF0

    @property
    def channel(self) -> int:
        return self.data[0] & 0x0F


@dataclass(frozen=True)
class ParamEvent:
    """A parameter's new (clamped) value, from sample `offset` of the block on."""

    offset: int
    id: int
    value: float
    name: Optional[str]


Event = Union[MidiEvent, ParamEvent]


@dataclass(frozen=True)
class Info:
    """What the worker is attached to (frames unless said otherwise)."""

    slot: str
    sample_rate: int
    inputs: int
    outputs: int
    midi: bool
    latency: int
    max_block: int
    period: int
    wake_frames: int


class Block:
    """One block of work, valid from Worker.next() until Worker.done().

    inputs and outputs are per-channel memoryviews of float32 ('f') over the
    SDK's own buffers (no copies): read inputs, write every frame of every
    output. They work with array('f'), struct and slicing; numpy_inputs()
    and numpy_outputs() give numpy arrays over the same memory. events are
    MidiEvent and ParamEvent objects sorted by offset: an event at offset k
    applies from input frame k on, which is heard at position + latency + k.
    """

    __slots__ = ("frames", "position", "latency", "sample_rate", "discontinuity", "skipped",
                 "events", "inputs", "outputs", "_worker")

    def __init__(self, worker: "Worker"):
        self._worker = worker
        self.frames = 0
        self.position = 0
        self.latency = 0
        self.sample_rate = 0
        self.discontinuity = False
        self.skipped = 0
        self.events: list[Event] = []
        self.inputs: list[memoryview] = []
        self.outputs: list[memoryview] = []

    def numpy_inputs(self):
        """The inputs as numpy float32 arrays over the SDK's buffers (numpy must be installed)."""
        return self._worker._numpy_views(False, self.frames)

    def numpy_outputs(self):
        """The outputs as writable numpy float32 arrays over the SDK's buffers."""
        return self._worker._numpy_views(True, self.frames)


def _view(address: int, frames: int, writable: bool) -> memoryview:
    array = (ctypes.c_float * frames).from_address(address)
    view = memoryview(array).cast("B").cast("f")
    return view if writable else view.toreadonly()


class Worker:
    """A runway worker: attaches to its slot when made, and hands out blocks.

        with Worker(plugin="my-gain", params=[Param("gain_db", -60, 24, 0, "dB")]) as w:
            for block in w.blocks():
                for out, inp in zip(block.outputs, block.inputs):
                    out[:] = inp

    A worker started by runwayd (slot add --exec) inherits its slot; one you
    start attaches to an --external slot named by `slot` or $RUNWAY_SLOT over
    `socket` or $RUNWAY_SOCKET. save_state() -> bytes and load_state(bytes)
    give the plugin a state of its own (without them, runwayd keeps the
    declared parameters' values); both run inside next(), between blocks,
    on its thread. With handle_signals (and on the main thread) SIGTERM and
    SIGINT end blocks() cleanly. Use a Worker from one thread at a time.
    """

    def __init__(self, plugin: Optional[str] = None, params: Sequence[Param] = (),
                 slot: Optional[str] = None, socket: Optional[str] = None, max_block: int = 0,
                 wake_frames: int = 0, save_state: Optional[Callable[[], Optional[bytes]]] = None,
                 load_state: Optional[Callable[[bytes], None]] = None,
                 handle_signals: bool = True):
        lib = _lib.library()
        self._lib = lib
        self._w = ctypes.c_void_p()
        self._params = [Param(p.name, p.min, p.max, p.default, p.unit,
                              i if p.id is None else p.id) for i, p in enumerate(params)]
        self._names = {p.id: p.name for p in self._params}
        self._ids = {p.name: p.id for p in self._params}

        infos = (_lib.ParamInfo * max(1, len(self._params)))()
        for i, p in enumerate(self._params):
            infos[i] = _lib.ParamInfo(p.id, p.name.encode(), p.min, p.max, p.default,
                                      p.unit.encode())
        opts = _lib.Options(api_version=_lib.API_VERSION,
                            socket=socket.encode() if socket else None,
                            slot=slot.encode() if slot else None, max_block=max_block,
                            wake_frames=wake_frames, params=infos, n_params=len(self._params),
                            plugin=plugin.encode() if plugin else None)
        # rw_worker_error(NULL) is per thread: read it on this one, right after the call.
        rc = lib.rw_worker_open(ctypes.byref(opts), ctypes.byref(self._w))
        if rc != 0:
            raise WorkerError(rc, lib.rw_worker_error(None).decode(errors="replace"))

        raw = lib.rw_worker_get_info(self._w).contents
        has = _lib.has_member
        self.info = Info(
            slot=(raw.slot or b"").decode(errors="replace"), sample_rate=raw.sample_rate,
            inputs=raw.n_inputs, outputs=raw.n_outputs, midi=bool(raw.midi), latency=raw.latency,
            max_block=raw.max_block,
            period=raw.period if has("rw_worker_info.period") else 0,
            wake_frames=raw.wake_frames if has("rw_worker_info.wake_frames") else 0)

        self._block = _lib.Block()
        self._view = Block(self)
        self._in_full: list[memoryview] = []
        self._out_full: list[memoryview] = []
        self._sliced = -1
        self._in_block = False
        self._old_handlers: dict[int, object] = {}
        self._handlers = None
        if save_state is not None or load_state is not None:
            self._install_state(save_state, load_state)
        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old_handlers[sig] = signal.signal(sig, self._on_signal)

    # ---- life ------------------------------------------------------------------

    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Detaches (the slot waits for, or restarts, another worker). Idempotent."""
        if not self._w:
            return
        for sig, old in self._old_handlers.items():
            signal.signal(sig, old)
        self._old_handlers = {}
        self._lib.rw_worker_close(self._w)
        self._w = ctypes.c_void_p()
        self._in_full = self._out_full = []

    def _on_signal(self, signum, frame) -> None:
        self.request_stop()

    def request_stop(self) -> None:
        """Makes next() raise Closed (blocks() end): now, or after the block in progress.
        Safe from any thread and from signal handlers."""
        if self._w:
            self._lib.rw_worker_request_stop(self._w)

    # ---- blocks ------------------------------------------------------------------

    def next(self, timeout: Optional[float] = None) -> Optional[Block]:
        """The next block, or None when `timeout` seconds passed first (None: wait forever).
        Raises Closed when the worker's work is over, WorkerError on failure."""
        if not self._w:
            raise Closed(_lib.RW_ERR_CLOSED, "the worker is closed")
        ms = -1 if timeout is None else max(0, int(timeout * 1000))
        rc = self._lib.rw_worker_next(self._w, ctypes.byref(self._block), ms)
        if rc == 0:
            return None
        if rc < 0:
            message = self._lib.rw_worker_error(self._w).decode(errors="replace")
            raise (Closed if rc == _lib.RW_ERR_CLOSED else WorkerError)(rc, message)
        self._in_block = True
        return self._fill()

    def done(self, block: Optional[Block] = None) -> None:
        """Publishes the block's outputs; every block from next() must be done once."""
        if not self._in_block:
            raise WorkerError(_lib.RW_ERR_INVALID, "done() without a block from next()")
        self._in_block = False
        rc = self._lib.rw_worker_done(self._w, ctypes.byref(self._block))
        if rc != 0:
            raise WorkerError(rc, self._lib.rw_worker_error(self._w).decode(errors="replace"))

    def blocks(self, timeout: float = 0.1) -> Iterator[Block]:
        """Yields blocks until the worker's work is over, doing each when the loop moves on.

        timeout only bounds how long signal handlers wait while no input comes:
        Python runs them between bytecodes, not inside the library.
        """
        while True:
            try:
                block = self.next(timeout)
            except Closed:
                return
            if block is None:
                continue
            try:
                yield block
            finally:
                if self._in_block and self._w:
                    self.done(block)

    def run(self, process: Callable[[Block], None]) -> None:
        """Calls process(block) for every block until the worker's work is over."""
        for block in self.blocks():
            process(block)

    def _fill(self) -> Block:
        b = self._block
        view = self._view
        if not self._in_full and not self._out_full:
            self._map_buffers()
        frames = b.frames
        if frames != self._sliced:
            view.inputs = [v[:frames] for v in self._in_full]
            view.outputs = [v[:frames] for v in self._out_full]
            self._sliced = frames
        view.frames = frames
        view.position = b.position
        view.latency = b.latency
        view.sample_rate = b.sample_rate
        view.discontinuity = bool(b.discontinuity)
        view.skipped = b.skipped
        events = []
        names = self._names
        for i in range(b.n_events):
            ev = b.events[i]
            if ev.kind == _lib.RW_EV_MIDI:
                events.append(MidiEvent(ev.offset, bytes(ev.u.midi.data[:ev.size])))
            elif ev.kind == _lib.RW_EV_PARAM:
                pid = ev.u.param.id
                events.append(ParamEvent(ev.offset, pid, ev.u.param.value, names.get(pid)))
        view.events = events
        return view

    def _map_buffers(self) -> None:
        # The pointer arrays and buffers keep their addresses until close: map them once.
        b = self._block
        n = self.info.max_block
        self._in_full = [_view(ctypes.cast(b.inputs[c], ctypes.c_void_p).value, n, False)
                         for c in range(b.n_inputs)]
        self._out_full = [_view(ctypes.cast(b.outputs[c], ctypes.c_void_p).value, n, True)
                          for c in range(b.n_outputs)]

    def _numpy_views(self, outputs: bool, frames: int):
        import numpy as np

        full = self._out_full if outputs else self._in_full
        return [np.frombuffer(v, dtype=np.float32, count=frames) for v in full]

    # ---- parameters, messages, state -------------------------------------------------

    def param(self, key: Union[str, int]) -> float:
        """A declared parameter's current value (its default until changed), by name or id."""
        pid = self._ids.get(key, key) if isinstance(key, str) else key
        if isinstance(pid, str):
            raise KeyError(f"no parameter named {key!r}")
        value = self._lib.rw_worker_param(self._w, pid)
        if math.isnan(value):
            raise KeyError(f"no parameter with id {key!r}")
        return value

    def send_param(self, key: Union[str, int], value: float) -> bool:
        """Reports a parameter's value to runwayd; False when its ring was full."""
        pid = self._ids[key] if isinstance(key, str) else key
        return self._lib.rw_worker_send_param(self._w, pid, value) == 0

    def send_meter(self, channel: int, peak: float) -> bool:
        return self._lib.rw_worker_send_meter(self._w, channel, peak) == 0

    def stats(self) -> dict[str, int]:
        """The SDK's counters for this worker (blocks, frames, skipped_frames, sleeps, ...)."""
        return {name: self._lib.rw_worker_stat(self._w, i)
                for i, name in enumerate(_lib.STAT_NAMES)}

    def _install_state(self, save, load) -> None:
        def c_save(user, buf, capacity):
            try:
                data = save()
            except Exception:
                traceback.print_exc(file=sys.stderr)
                return _lib.RW_ERR_INVALID
            if data is None:
                return _lib.RW_ERR_UNSUPPORTED
            data = bytes(data)
            if len(data) > capacity:
                return _lib.RW_ERR_NOMEM
            ctypes.memmove(buf, data, len(data))
            return len(data)

        def c_load(user, data, length):
            try:
                load(ctypes.string_at(data, length))
                return 0
            except Exception:
                traceback.print_exc(file=sys.stderr)
                return _lib.RW_ERR_INVALID

        # The CFUNCTYPE objects must outlive the worker: keep them here.
        self._handlers = _lib.StateHandlers(
            _lib.SAVE_FN(c_save) if save is not None else _lib.SAVE_FN(),
            _lib.LOAD_FN(c_load) if load is not None else _lib.LOAD_FN(), None)
        rc = self._lib.rw_worker_set_state_handlers(self._w, ctypes.byref(self._handlers))
        if rc != 0:
            raise WorkerError(rc, self._lib.rw_worker_error(self._w).decode(errors="replace"))


def run(process: Callable[[Block], None], **options) -> int:
    """Opens a Worker(**options), runs process(block) for every block, returns an exit status."""
    try:
        with Worker(**options) as w:
            w.run(process)
    except WorkerError as e:
        print(f"{options.get('plugin') or 'worker'}: {e}", file=sys.stderr)
        return 1
    return 0
