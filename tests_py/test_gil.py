"""A blocking native call releases the GIL: other Python threads keep running meanwhile."""

from __future__ import annotations

import threading
import time

from prismq_queue import Queue, Worker


def test_other_threads_run_while_a_claim_waits(queue: Queue, worker: Worker) -> None:
    started = threading.Event()
    finished = threading.Event()
    result: list[object] = []

    def claimer() -> None:
        started.set()
        try:
            result.append(worker.claim(timeout=1.0))
        finally:
            finished.set()

    t = threading.Thread(target=claimer)
    t0 = time.monotonic()
    t.start()
    started.wait()
    count = 0
    while not finished.is_set():
        count += 1
    elapsed = time.monotonic() - t0
    t.join()
    assert result == [None]
    assert elapsed >= 0.9  # the claim really blocked for its timeout
    # Holding the GIL for the whole second would leave this thread a few switch intervals at most
    # (a handful of iterations); released, it counts freely.
    assert count > 100_000
