"""Handlers used by ``prismq-queue demo`` (and handy for trying the worker by hand).

Run them with ``prismq-queue worker --handlers prismq_queue.demo_handlers:registry``.
Each handler records the task it starts in :data:`started` (id, priority) so the demo can
show the order in which a worker took its tasks.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from .runner import HandlerRegistry, TaskContext

__all__ = ["DEMO_TYPES", "registry", "started"]

registry = HandlerRegistry()
"""The demo handlers."""

started: list[tuple[int, int]] = []
"""(task id, priority) of every task this process started, in start order."""

DEMO_TYPES = ("email.send", "image.resize", "report.build", "sync.flaky")
"""The task types the demo enqueues."""


def _record(ctx: TaskContext) -> None:
    started.append((ctx.task.id, ctx.task.priority))


@registry.task("email.send")
def send_email(ctx: TaskContext) -> dict[str, Any]:
    """Pretend to send an e-mail: no real work."""
    _record(ctx)
    return {"to": ctx.payload.get("to", "nobody@example.com"), "worker": ctx.worker_id}


@registry.task("image.resize")
def resize_image(ctx: TaskContext) -> dict[str, Any]:
    """Burn a little CPU (hashing) and report progress once."""
    _record(ctx)
    rounds = int(ctx.payload.get("rounds", 200))
    digest = str(ctx.task.id).encode()
    for i in range(rounds):
        digest = hashlib.sha256(digest).digest()
        if i == rounds // 2:
            ctx.progress(percent=50.0, current=i, total=rounds, message="half way")
    return {"digest": digest.hex()[:16], "worker": ctx.worker_id}


@registry.task("report.build")
async def build_report(ctx: TaskContext) -> dict[str, Any]:
    """An ``async def`` handler: awaits briefly, as an I/O-bound job would."""
    _record(ctx)
    await asyncio.sleep(float(ctx.payload.get("sleep", 0.002)))
    return {"pages": int(ctx.payload.get("pages", 1)), "worker": ctx.worker_id}


@registry.task("sync.flaky")
def flaky(ctx: TaskContext) -> dict[str, Any]:
    """Fail the first attempt when ``fail_first`` is set, and every attempt when ``fail_always`` is."""
    _record(ctx)
    if ctx.payload.get("fail_always"):
        raise RuntimeError("this task always fails (demo of the dead-letter state)")
    if ctx.payload.get("fail_first") and ctx.task.attempts == 1:
        raise RuntimeError("transient failure on the first attempt (demo of retries)")
    return {"attempts": ctx.task.attempts, "worker": ctx.worker_id}
