"""Worker configuration: a validated dataclass, loadable from the environment or a JSON/TOML file.

Example::

    from prismq_queue import WorkerConfig, SchedulingStrategy
    worker_config = WorkerConfig(
        worker_id="worker-1",
        capabilities={"region": "us"},
        scheduling_strategy=SchedulingStrategy.PRIORITY,
        lease_duration_seconds=60,
    )
"""

from __future__ import annotations

import importlib
import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ._errors import InvalidArgumentError
from .models import (
    RetryConfig,
    SchedulingStrategy,
    _check_int,
    _check_object,
    _check_seconds,
    _check_str,
    _seconds_to_ms,
)

__all__ = ["WorkerConfig"]

_ENV_KEYS = {
    "ID": "worker_id",
    "SCHEDULING_STRATEGY": "scheduling_strategy",
    "LEASE_DURATION_SECONDS": "lease_duration_seconds",
    "POLL_INTERVAL_SECONDS": "poll_interval_seconds",
    "MAX_RETRIES": "max_retries",
    "CAPABILITIES": "capabilities",
    "TYPES": "types",
    "CONCURRENCY": "concurrency",
}


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class WorkerConfig:
    """Settings of one worker.

    :param worker_id: unique name of the worker (re-using one re-registers it).
    :param capabilities: what this worker offers; a task runs here only if each of its
        requirements equals the capability of the same key (or is contained in it, for lists).
    :param scheduling_strategy: claim order, a :class:`SchedulingStrategy` or its value; default PRIORITY.
    :param lease_duration_seconds: lease granted per claim, renewed by heartbeats; default 60.
    :param poll_interval_seconds: how long one claim waits for work; default 1.
    :param max_retries: failures of this worker are retried up to this many times; default 3.
    :param types: task types this worker takes; empty means all.
    :param retry: backoff of the failures this worker reports; ``None`` uses the queue's
        ``retry`` option. A task's own retry settings still win.
    :param concurrency: tasks run at once by the run loop; default 1.
    :raises InvalidArgumentError: when a value has the wrong type or range.
    """

    worker_id: str
    capabilities: dict[str, Any] = field(default_factory=dict)
    scheduling_strategy: SchedulingStrategy = SchedulingStrategy.PRIORITY
    lease_duration_seconds: float = 60
    poll_interval_seconds: float = 1.0
    max_retries: int = 3
    types: list[str] = field(default_factory=list)
    retry: RetryConfig | None = None
    concurrency: int = 1

    def __post_init__(self) -> None:
        _check_str("worker_id", self.worker_id)
        if len(self.worker_id) > 255:
            raise InvalidArgumentError("worker_id must be at most 255 characters")
        self.capabilities = dict(_check_object("capabilities", self.capabilities))
        self.scheduling_strategy = SchedulingStrategy.coerce(self.scheduling_strategy)
        self.lease_duration_seconds = _check_seconds(
            "lease_duration_seconds", self.lease_duration_seconds, allow_zero=False
        )
        self.poll_interval_seconds = _check_seconds(
            "poll_interval_seconds", self.poll_interval_seconds, allow_zero=False
        )
        _check_int("max_retries", self.max_retries, minimum=0)
        types: Any = self.types
        if isinstance(types, str) or not isinstance(types, (list, tuple, set, frozenset)):
            raise InvalidArgumentError(f"types must be a list of str, got {type(types).__name__}")
        self.types = [_check_str("types[]", t) for t in types]
        retry: object = self.retry
        if retry is not None and not isinstance(retry, RetryConfig):
            kind = type(retry).__name__
            raise InvalidArgumentError(f"retry must be a RetryConfig or None, got {kind}")
        _check_int("concurrency", self.concurrency, minimum=1, maximum=10_000)

    @property
    def lease_ms(self) -> int:
        """The lease duration in milliseconds."""
        return _seconds_to_ms(self.lease_duration_seconds)

    def to_native(self, *, host: str | None = None, pid: int | None = None) -> dict[str, Any]:
        """Return the ``config_json`` object of ``pq_worker_open``."""
        out: dict[str, Any] = {
            "worker_id": self.worker_id,
            "capabilities": self.capabilities,
            "types": self.types,
            "strategy": self.scheduling_strategy.value,
            "lease_ms": self.lease_ms,
        }
        if host is not None:
            out["host"] = host
        if pid is not None:
            out["pid"] = pid
        if self.retry is not None:
            out["retry"] = self.retry.to_native()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkerConfig:
        """Build a config from a mapping of field names (``retry`` may be a dict of RetryConfig fields).

        :param data: the keys, either at top level or under ``"worker"``.
        :raises InvalidArgumentError: for unknown keys or bad values.
        """
        if not isinstance(data, Mapping):
            raise InvalidArgumentError(f"worker config must be a mapping, got {type(data).__name__}")
        section = data.get("worker", data)
        if not isinstance(section, Mapping):
            raise InvalidArgumentError("the 'worker' section must be a table/object")
        known = {f.name for f in fields(cls)}
        values = dict(section)
        if "strategy" in values and "scheduling_strategy" not in values:
            values["scheduling_strategy"] = values.pop("strategy")
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidArgumentError(f"unknown worker config keys: {', '.join(unknown)}")
        retry = values.get("retry")
        if isinstance(retry, Mapping):
            try:
                values["retry"] = RetryConfig(**retry)
            except TypeError as exc:
                raise InvalidArgumentError(f"bad retry settings: {exc}") from None
        if "worker_id" not in values:
            values["worker_id"] = _default_worker_id()
        return cls(**values)

    @classmethod
    def from_env(cls, prefix: str = "PRISMQ_WORKER_", env: Mapping[str, str] | None = None) -> WorkerConfig:
        """Build a config from environment variables.

        Reads ``<prefix>ID`` (default ``<hostname>-<pid>``), ``SCHEDULING_STRATEGY``,
        ``LEASE_DURATION_SECONDS``, ``POLL_INTERVAL_SECONDS``, ``MAX_RETRIES``,
        ``CAPABILITIES`` (a JSON object), ``TYPES`` (comma list) and ``CONCURRENCY``.

        :param prefix: variable name prefix.
        :param env: the variables (default ``os.environ``).
        :raises InvalidArgumentError: when a variable cannot be parsed.
        """
        source = os.environ if env is None else env
        values: dict[str, Any] = {}
        for suffix, name in _ENV_KEYS.items():
            var = prefix + suffix
            raw = source.get(var)
            if raw is None or raw.strip() == "":
                continue
            raw = raw.strip()
            try:
                if name in ("lease_duration_seconds", "poll_interval_seconds"):
                    values[name] = float(raw)
                elif name in ("max_retries", "concurrency"):
                    values[name] = int(raw)
                elif name == "capabilities":
                    values[name] = json.loads(raw)
                elif name == "types":
                    values[name] = [t.strip() for t in raw.split(",") if t.strip()]
                else:
                    values[name] = raw
            except ValueError as exc:
                raise InvalidArgumentError(f"{var}: cannot parse {raw!r}: {exc}") from None
        if "worker_id" not in values:
            values["worker_id"] = _default_worker_id()
        return cls(**values)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> WorkerConfig:
        """Load a config from a ``.json`` or ``.toml`` file (keys at top level or under ``worker``).

        :param path: the file; its suffix selects the format.
        :raises InvalidArgumentError: for an unsupported suffix, a parse error or bad values.
        :raises OSError: when the file cannot be read.
        """
        p = Path(path)
        suffix = p.suffix.lower()
        if suffix == ".json":
            try:
                data = json.loads(p.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise InvalidArgumentError(f"{p}: invalid JSON: {exc}") from None
        elif suffix == ".toml":
            toml = _toml_module()
            try:
                data = toml.loads(p.read_text(encoding="utf-8"))
            except toml.TOMLDecodeError as exc:
                raise InvalidArgumentError(f"{p}: invalid TOML: {exc}") from None
        else:
            raise InvalidArgumentError(f"{p}: unsupported config format {suffix!r} (use .json or .toml)")
        return cls.from_dict(data)


def _toml_module() -> Any:
    for name in ("tomllib", "tomli"):
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError:
            continue
    raise InvalidArgumentError("reading TOML needs Python 3.11+ or `pip install tomli`")
