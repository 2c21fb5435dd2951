"""runway_worker: write runway workers in Python.

A worker computes a runway slot's audio a fixed latency L ahead of the audio
graph, so its pauses (a garbage collection among them) are inaudible up to
L minus one period. This package drives librunway-worker through ctypes
(standard library only): it finds the library installed, or at
$RUNWAY_WORKER_LIB.

    import runway_worker as rw

    with rw.Worker(plugin="py-gain", params=[rw.Param("gain_db", -60, 24, 0, "dB")]) as w:
        for block in w.blocks():
            for out, inp in zip(block.outputs, block.inputs):
                out[:] = inp
"""

from ._lib import API_VERSION, LayoutError, library
from .worker import (Block, Closed, Event, Info, MidiEvent, Param, ParamEvent, Worker,
                     WorkerError, run)

__all__ = [
    "API_VERSION", "Block", "Closed", "Event", "Info", "LayoutError", "MidiEvent", "Param",
    "ParamEvent", "Worker", "WorkerError", "library", "run",
]
__version__ = "0.1.0"
