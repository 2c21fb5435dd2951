"""librunway-worker through ctypes: finding it, and mirrors of <runway/worker.h>.

The mirrors follow the layouts of RW_WORKER_API_VERSION 1 (the version this
binding passes to rw_worker_open, which pins what the library reads and
writes for it). When the library is loaded, every mirrored member is checked
against the library's own layout (rw_worker_abi_offset), so a binding and a
library that disagree fail at once with a message, never by scribbling.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading

API_VERSION = 1

RW_OK = 0
RW_ERR_INVALID = -1
RW_ERR_ATTACH = -2
RW_ERR_PROTOCOL = -3
RW_ERR_CLOSED = -4
RW_ERR_NOMEM = -5
RW_ERR_SYSTEM = -6
RW_ERR_UNSUPPORTED = -7

RW_EV_MIDI = 1
RW_EV_PARAM = 2

STAT_NAMES = (
    "blocks", "frames", "skipped_frames", "discontinuities", "events", "events_late",
    "events_invalid", "messages_dropped", "sleeps", "timer_wakes", "early_wakes",
)

c_float_p = ctypes.POINTER(ctypes.c_float)


class MidiData(ctypes.Structure):
    _fields_ = [("data", ctypes.c_uint8 * 4)]


class ParamData(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint32), ("value", ctypes.c_float)]


class EventUnion(ctypes.Union):
    _fields_ = [("midi", MidiData), ("param", ParamData)]


class Event(ctypes.Structure):
    _fields_ = [
        ("offset", ctypes.c_uint32),
        ("kind", ctypes.c_uint16),
        ("size", ctypes.c_uint16),
        ("u", EventUnion),
    ]


class ParamInfo(ctypes.Structure):
    # `def` in C, a keyword here.
    _fields_ = [
        ("id", ctypes.c_uint32),
        ("name", ctypes.c_char_p),
        ("min", ctypes.c_float),
        ("max", ctypes.c_float),
        ("default", ctypes.c_float),
        ("unit", ctypes.c_char_p),
    ]


class Block(ctypes.Structure):
    _fields_ = [
        ("frames", ctypes.c_uint32),
        ("n_inputs", ctypes.c_uint32),
        ("n_outputs", ctypes.c_uint32),
        ("inputs", ctypes.POINTER(c_float_p)),
        ("outputs", ctypes.POINTER(c_float_p)),
        ("events", ctypes.POINTER(Event)),
        ("n_events", ctypes.c_uint32),
        ("position", ctypes.c_uint64),
        ("latency", ctypes.c_uint32),
        ("sample_rate", ctypes.c_uint32),
        ("discontinuity", ctypes.c_int),
        ("skipped", ctypes.c_uint64),
    ]


class WorkerInfo(ctypes.Structure):
    _fields_ = [
        ("slot", ctypes.c_char_p),
        ("sample_rate", ctypes.c_uint32),
        ("n_inputs", ctypes.c_uint32),
        ("n_outputs", ctypes.c_uint32),
        ("midi", ctypes.c_int),
        ("latency", ctypes.c_uint32),
        ("max_block", ctypes.c_uint32),
        ("period", ctypes.c_uint32),
        ("wake_frames", ctypes.c_uint32),
    ]


class Options(ctypes.Structure):
    _fields_ = [
        ("api_version", ctypes.c_int),
        ("socket", ctypes.c_char_p),
        ("slot", ctypes.c_char_p),
        ("max_block", ctypes.c_uint32),
        ("wake_frames", ctypes.c_uint32),
        ("params", ctypes.POINTER(ParamInfo)),
        ("n_params", ctypes.c_uint32),
        ("plugin", ctypes.c_char_p),
    ]


SAVE_FN = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p, ctypes.POINTER(ctypes.c_ubyte),
                           ctypes.c_size_t)
LOAD_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_ubyte),
                           ctypes.c_size_t)


class StateHandlers(ctypes.Structure):
    _fields_ = [("save", SAVE_FN), ("load", LOAD_FN), ("user", ctypes.c_void_p)]


# Mirror -> (C struct name, {Python member: C member}); members not renamed map to themselves.
MIRRORS = {
    Event: ("rw_event", {}),
    ParamInfo: ("rw_param_info", {"default": "def"}),
    Block: ("rw_block", {}),
    WorkerInfo: ("rw_worker_info", {}),
    Options: ("rw_worker_options", {}),
    StateHandlers: ("rw_state_handlers", {}),
}
# Structs the library owns may have grown (we read a prefix) or be older (we drop what it lacks).
LIBRARY_OWNED = {WorkerInfo}


class LayoutError(ImportError):
    """The loaded librunway-worker lays a struct out differently from this binding."""


def check_layout(lib) -> set[str]:
    """Compares every mirror with the library; returns the library-owned members it lacks."""
    missing = set()
    for mirror, (cname, renamed) in MIRRORS.items():
        size = lib.rw_worker_abi_offset(cname.encode())
        if size < 0:
            raise LayoutError(f"{lib._name} does not describe {cname}; it is older than this binding")
        if mirror not in LIBRARY_OWNED and size != ctypes.sizeof(mirror):
            raise LayoutError(f"{cname} is {size} bytes in {lib._name} but {ctypes.sizeof(mirror)} "
                              f"in runway_worker; use the binding that came with the library")
        for field, _ in mirror._fields_:
            cfield = renamed.get(field, field)
            off = lib.rw_worker_abi_offset(f"{cname}.{cfield}".encode())
            if off < 0 and mirror in LIBRARY_OWNED:
                missing.add(f"{cname}.{field}")
                continue
            if off != getattr(mirror, field).offset:
                raise LayoutError(f"{cname}.{cfield} is at {off} in {lib._name} but at "
                                  f"{getattr(mirror, field).offset} in runway_worker")
    return missing


def _declare(lib) -> None:
    p = ctypes.c_void_p
    sig = {
        "rw_worker_open": (ctypes.c_int, [ctypes.POINTER(Options), ctypes.POINTER(p)]),
        "rw_worker_get_info": (ctypes.POINTER(WorkerInfo), [p]),
        "rw_worker_next": (ctypes.c_int, [p, ctypes.POINTER(Block), ctypes.c_int]),
        "rw_worker_done": (ctypes.c_int, [p, ctypes.POINTER(Block)]),
        "rw_worker_param": (ctypes.c_float, [p, ctypes.c_uint32]),
        "rw_worker_set_state_handlers": (ctypes.c_int, [p, ctypes.POINTER(StateHandlers)]),
        "rw_worker_send_param": (ctypes.c_int, [p, ctypes.c_uint32, ctypes.c_float]),
        "rw_worker_send_meter": (ctypes.c_int, [p, ctypes.c_uint32, ctypes.c_float]),
        "rw_worker_request_stop": (None, [p]),
        "rw_worker_stat": (ctypes.c_uint64, [p, ctypes.c_int]),
        "rw_worker_error": (ctypes.c_char_p, [p]),
        "rw_worker_close": (None, [p]),
        "rw_worker_abi_offset": (ctypes.c_int64, [ctypes.c_char_p]),
    }
    for name, (restype, argtypes) in sig.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes


_lock = threading.Lock()
_lib = None
_missing: set[str] = set()


def _candidates() -> list[str]:
    names = []
    found = ctypes.util.find_library("runway-worker")
    if found:
        names.append(found)
    names.append("librunway-worker.so.1")
    for prefix in ("/usr/local/lib", "/usr/local/lib64", "/usr/lib"):
        names.append(os.path.join(prefix, "librunway-worker.so.1"))
    return names


def library():
    """The loaded and checked librunway-worker ($RUNWAY_WORKER_LIB, else the installed one)."""
    global _lib, _missing
    with _lock:
        if _lib is not None:
            return _lib
        explicit = os.environ.get("RUNWAY_WORKER_LIB")
        tried = []
        lib = None
        for name in [explicit] if explicit else _candidates():
            try:
                lib = ctypes.CDLL(name)
                break
            except OSError as e:
                tried.append(f"{name}: {e}")
        if lib is None:
            if explicit:
                raise ImportError(f"RUNWAY_WORKER_LIB={explicit} cannot be loaded: {tried[0]}")
            raise ImportError("librunway-worker is not installed (cmake --install build), and "
                              "RUNWAY_WORKER_LIB does not name it (e.g. "
                              "RUNWAY_WORKER_LIB=build/worker/librunway-worker.so.1); tried: "
                              + "; ".join(tried))
        _declare(lib)
        _missing = check_layout(lib)
        _lib = lib
        return lib


def has_member(name: str) -> bool:
    """Whether the loaded library has a library-owned member ("rw_worker_info.period")."""
    library()
    return name not in _missing
