"""Loads the native library and declares every function of ``capi/prismq_queue.h`` once.

The library is found at ``$PRISMQ_QUEUE_LIB`` when that is set, else inside the package
(``native/libprismq_queue.so``, ``native/prismq_queue.dll`` or ``native/libprismq_queue.dylib``).
It is loaded on first use, so importing the package never fails for want of it.

Memory rule: strings the library returns are copied out of their ``char *`` (see
:func:`_take_bytes`) and then released with ``pq_free``; no function has ``restype = c_char_p``.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import threading
from collections.abc import Callable
from ctypes import POINTER, byref, c_char_p, c_int32, c_int64, c_uint64, c_void_p
from json.scanner import make_scanner
from pathlib import Path
from typing import Any, cast

from ._errors import LibraryNotFoundError, error_from_code

__all__ = [
    "FUNCTIONS",
    "SIGNATURES",
    "call",
    "call_handle",
    "call_json",
    "call_string",
    "default_path",
    "library_path_candidates",
    "load",
    "version",
]

_u64 = c_uint64
_i64 = c_int64
_i32 = c_int32
_str = c_char_p  # borrowed NUL-terminated UTF-8 input, or None for NULL
_out_str = POINTER(c_void_p)  # char **: library-allocated, released with pq_free
_out_u64 = POINTER(c_uint64)

# name -> (argtypes, restype); one entry per declaration of prismq_queue.h.
SIGNATURES: dict[str, tuple[tuple[Any, ...], Any]] = {
    "pq_free": ((c_void_p,), None),
    "pq_version": ((_out_str, _out_str), c_int32),
    "pq_default_path": ((_out_str, _out_str), c_int32),
    "pq_open": ((_str, _out_u64, _out_str), c_int32),
    "pq_close": ((_u64, _out_str), c_int32),
    "pq_queue_info": ((_u64, _out_str, _out_str), c_int32),
    "pq_enqueue": ((_u64, _str, _out_str, _out_str), c_int32),
    "pq_enqueue_many": ((_u64, _str, _out_str, _out_str), c_int32),
    "pq_get": ((_u64, _i64, _out_str, _out_str), c_int32),
    "pq_list": ((_u64, _str, _out_str, _out_str), c_int32),
    "pq_cancel": ((_u64, _i64, _out_str, _out_str), c_int32),
    "pq_retry": ((_u64, _i64, _out_str, _out_str), c_int32),
    "pq_stats": ((_u64, _out_str, _out_str), c_int32),
    "pq_sweep": ((_u64, _out_str, _out_str), c_int32),
    "pq_log": ((_u64, _i64, _str, _out_str), c_int32),
    "pq_logs": ((_u64, _i64, _i32, _out_str, _out_str), c_int32),
    "pq_workers": ((_u64, _out_str, _out_str), c_int32),
    "pq_worker_open": ((_u64, _str, _out_u64, _out_str), c_int32),
    "pq_worker_close": ((_u64, _out_str), c_int32),
    "pq_worker_set_strategy": ((_u64, _str, _out_str), c_int32),
    "pq_claim": ((_u64, _i32, _i64, _out_str, _out_str), c_int32),
    "pq_heartbeat": ((_u64, _out_str, _out_str), c_int32),
    "pq_complete": ((_u64, _i64, _i64, _str, _out_str), c_int32),
    "pq_fail": ((_u64, _i64, _i64, _str, _i32, _out_str, _out_str), c_int32),
    "pq_renew": ((_u64, _i64, _i64, _i64, _out_str, _out_str), c_int32),
    "pq_progress": ((_u64, _i64, _i64, _str, _out_str, _out_str), c_int32),
    "pq_ack_cancel": ((_u64, _i64, _i64, _out_str), c_int32),
    "pq_release": ((_u64, _i64, _i64, _out_str), c_int32),
    "pq_ack_many": ((_u64, _str, _out_str, _out_str), c_int32),
    "pq_ack_and_claim": ((_u64, _str, _i32, _out_str, _out_str), c_int32),
    "pq_metrics": ((_u64, _str, _out_str, _out_str), c_int32),
    "pq_metrics_text": ((_u64, _str, _out_str, _out_str), c_int32),
    "pq_maintain": ((_u64, _str, _out_str, _out_str), c_int32),
    "pq_maintenance_schedule": ((_u64, _str, _out_str), c_int32),
    "pq_doctor": ((_u64, _str, _out_str, _out_str), c_int32),
    "pq_purge": ((_u64, _str, _out_str, _out_str), c_int32),
    "pq_requeue": ((_u64, _str, _out_str, _out_str), c_int32),
    "pq_backup": ((_u64, _str, _out_u64, _out_str), c_int32),
    "pq_restore": ((_str, _out_u64, _out_str), c_int32),
    "pq_op_wait": ((_u64, _i64, _out_str, _out_str), c_int32),
    "pq_op_cancel": ((_u64, _out_str), c_int32),
    "pq_op_close": ((_u64, _out_str), c_int32),
}

#: name -> declared ctypes function; filled by :func:`load`.
FUNCTIONS: dict[str, Any] = {}

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_free: Any = None


def _library_file_name() -> str:
    if sys.platform == "win32":
        return "prismq_queue.dll"
    if sys.platform == "darwin":
        return "libprismq_queue.dylib"
    return "libprismq_queue.so"


def library_path_candidates() -> list[Path]:
    """Return the paths :func:`load` tries, in order."""
    override = os.environ.get("PRISMQ_QUEUE_LIB")
    if override:
        return [Path(override)]
    return [Path(__file__).resolve().parent / "native" / _library_file_name()]


def load() -> ctypes.CDLL:
    """Load the native library once and declare every function.

    :raises LibraryNotFoundError: when no candidate path holds a loadable library.
    """
    lib = _lib
    if lib is None:
        with _lock:
            lib = _lib if _lib is not None else _load_locked()
    return lib


def _load_locked() -> ctypes.CDLL:
    global _lib, _free
    tried: list[str] = []
    lib: ctypes.CDLL | None = None
    for path in library_path_candidates():
        if not path.is_file():
            tried.append(f"{path} (missing)")
            continue
        try:
            lib = ctypes.CDLL(str(path))
            break
        except OSError as exc:
            tried.append(f"{path} ({exc})")
    if lib is None:
        raise LibraryNotFoundError(
            "prismq_queue native library not found; tried: "
            + "; ".join(tried)
            + ". Build it with `make build` (go build -buildmode=c-shared) "
            "or point PRISMQ_QUEUE_LIB at it."
        )
    declared: dict[str, Any] = {}
    for name, (argtypes, restype) in SIGNATURES.items():
        try:
            fn = getattr(lib, name)
        except AttributeError as exc:
            raise LibraryNotFoundError(
                f"native library {lib._name} lacks {name}; it does not match this package"
            ) from exc
        fn.argtypes = list(argtypes)
        fn.restype = restype
        declared[name] = fn
    FUNCTIONS.update(declared)
    _free = declared["pq_free"]
    _lib = lib
    return lib


# Reads the NUL-terminated string a c_void_p points to (one C-level copy; cheaper than
# ctypes.string_at, which is a foreign call of its own).
_as_char_p = c_char_p.from_buffer

# The stdlib's C scanner, called directly: json.loads on bytes also detects the encoding and
# runs two whitespace regexes, a quarter of its time on a task-sized document. Sharing one
# scanner between threads is what json.loads does too (its default decoder).
# (typeshed types make_scanner's argument wrongly: it takes the decoder whose options it copies.)
_scan: Callable[[str, int], tuple[Any, int]] = make_scanner(cast(Any, json.JSONDecoder()))


def _loads(raw: bytes) -> Any:
    """Decode the library's JSON output (what ``json.loads(raw)`` returns, faster)."""
    try:
        s = raw.decode("utf-8", "surrogatepass")
        value, end = _scan(s, 0)
    except (StopIteration, ValueError):  # JSONDecodeError and UnicodeDecodeError included
        return json.loads(raw)  # raises the usual JSONDecodeError
    if end != len(s):  # whitespace or garbage after the value: let json decide
        return json.loads(raw)
    return value


def _take_bytes(p: c_void_p) -> bytes | None:
    """Copy and free a library-allocated string."""
    ptr = p.value
    if not ptr:
        return None
    try:
        raw = _as_char_p(p).value or b""
    finally:
        _free(ptr)
    return raw


def _raise_status(status: int, err: c_void_p, out: c_void_p | None = None) -> None:
    if out is not None and out.value:
        _free(out.value)
    raw = _take_bytes(err)
    message = raw.decode("utf-8", "replace") if raw is not None else ""
    raise error_from_code(status, message)


def call(fn: Any, *args: Any) -> None:
    """Call a native function whose only out parameter is ``out_err``.

    :raises QueueError: the subclass matching the returned status.
    """
    err = c_void_p()
    status = fn(*args, byref(err))
    if status:
        _raise_status(status, err)
    if err.value:  # not expected on success, but never leak it
        _free(err.value)


def call_json(fn: Any, *args: Any) -> Any:
    """Call a native function with ``char **out_json, char **out_err`` and decode the JSON.

    :returns: the decoded value, or ``None`` when the library returned NULL.
    :raises QueueError: the subclass matching the returned status.
    """
    raw = _call_out(fn, args)
    return None if raw is None else _loads(raw)


def call_string(fn: Any, *args: Any) -> str:
    """Like :func:`call_json` for functions whose out parameter is a plain string."""
    raw = _call_out(fn, args)
    return "" if raw is None else raw.decode("utf-8")


def _call_out(fn: Any, args: tuple[Any, ...]) -> bytes | None:
    """Call fn(*args, &out, &err): raise the status's exception, else return (and free) out."""
    out = c_void_p()
    err = c_void_p()
    status = fn(*args, byref(out), byref(err))
    if status:
        _raise_status(status, err, out)
    if err.value:
        _free(err.value)
    return _take_bytes(out)


def call_handle(fn: Any, *args: Any) -> int:
    """Call a native function with ``uint64_t *out_handle, char **out_err``; return the handle.

    :raises QueueError: the subclass matching the returned status.
    """
    handle = c_uint64(0)
    err = c_void_p()
    status = fn(*args, byref(handle), byref(err))
    if status:
        _raise_status(status, err)
    if err.value:
        _free(err.value)
    return int(handle.value)


def version() -> str:
    """Return the native library's version string.

    :raises LibraryNotFoundError: when the library cannot be loaded.
    """
    load()
    return call_string(FUNCTIONS["pq_version"])


def default_path() -> str:
    """Return the database path used when none is given.

    :raises LibraryNotFoundError: when the library cannot be loaded.
    """
    env = os.environ.get("PRISMQ_QUEUE_DB_PATH")
    if env:
        # The Go runtime's copy of the environment dates from when the library loaded.
        return env
    load()
    return call_string(FUNCTIONS["pq_default_path"])
