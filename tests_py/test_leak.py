"""Many calls must not leak native memory (out strings and error messages are freed)."""

from __future__ import annotations

import gc
import os
import sys

import pytest

from prismq_queue import Queue, TaskNotFoundError

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss_bytes() -> int:
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def test_100k_gets_do_not_grow_memory(queue: Queue) -> None:
    # A 4 KiB payload: leaking each returned JSON string would add ~400 MiB over 100k calls.
    task = queue.enqueue("t", {"blob": "x" * 4096})
    for _ in range(5_000):  # warm up caches, the Go heap and ctypes
        queue.get(task.id)
    before = _rss_bytes()
    for _ in range(100_000):
        queue.get(task.id)
    grown = _rss_bytes() - before
    assert grown < 64 * 1024 * 1024, f"RSS grew by {grown / 1e6:.1f} MB"


def test_100k_errors_do_not_grow_memory(queue: Queue) -> None:
    # Error messages are short, so the bound is tighter; ~100 bytes leaked per call would be ~10 MB.
    for _ in range(5_000):
        try:
            queue.get(123_456_789)
        except TaskNotFoundError:
            pass
    before = _rss_bytes()
    for _ in range(100_000):
        try:
            queue.get(123_456_789)
        except TaskNotFoundError:
            pass
    grown = _rss_bytes() - before
    assert grown < 8 * 1024 * 1024, f"RSS grew by {grown / 1e6:.1f} MB"
