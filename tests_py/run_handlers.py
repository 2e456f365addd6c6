"""Run handlers for the worker process started by test_manager (``prismq-queue worker --handlers``)."""

from __future__ import annotations

from typing import Any

from prismq_queue import HandlerRegistry, run_handler

registry = HandlerRegistry()


async def remote(run: Any) -> None:
    run.items_processed = run.parameters["n"]


registry.register("mod.remote", run_handler(remote))
