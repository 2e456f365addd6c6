"""WorkerConfig: validation, the seed example, from_env and from_file."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from prismq_queue import InvalidArgumentError, RetryConfig, SchedulingStrategy, WorkerConfig


def test_the_seed_example_runs_as_written() -> None:
    from prismq_queue import SchedulingStrategy, WorkerConfig

    worker_config = WorkerConfig(
        worker_id="worker-1",
        capabilities={"region": "us"},
        scheduling_strategy=SchedulingStrategy.PRIORITY,
        lease_duration_seconds=60,
    )
    assert worker_config.worker_id == "worker-1"
    assert worker_config.capabilities == {"region": "us"}
    assert worker_config.scheduling_strategy is SchedulingStrategy.PRIORITY
    assert worker_config.lease_duration_seconds == 60
    assert worker_config.lease_ms == 60_000


def test_defaults() -> None:
    cfg = WorkerConfig(worker_id="w")
    assert cfg.capabilities == {}
    assert cfg.scheduling_strategy is SchedulingStrategy.PRIORITY
    assert cfg.lease_duration_seconds == 60
    assert cfg.poll_interval_seconds == 1.0
    assert cfg.max_retries == 3
    assert cfg.types == []
    assert cfg.retry is None
    assert cfg.concurrency == 1


def test_strategy_enum_is_a_str_enum_with_the_seed_values() -> None:
    assert [s.value for s in SchedulingStrategy] == ["fifo", "lifo", "priority", "weighted_random"]
    assert SchedulingStrategy.FIFO == "fifo"
    assert isinstance(SchedulingStrategy.LIFO, str)


@pytest.mark.parametrize("value", ["fifo", "LIFO", " priority ", "weighted_random", SchedulingStrategy.FIFO])
def test_strategy_accepts_strings(value: Any) -> None:
    cfg = WorkerConfig(worker_id="w", scheduling_strategy=value)
    assert isinstance(cfg.scheduling_strategy, SchedulingStrategy)
    assert cfg.scheduling_strategy.value == str(value).strip().lower()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"worker_id": ""},
        {"worker_id": 7},
        {"worker_id": "x" * 300},
        {"capabilities": ["gpu"]},
        {"capabilities": {1: "x"}},
        {"scheduling_strategy": "random"},
        {"scheduling_strategy": 1},
        {"lease_duration_seconds": 0},
        {"lease_duration_seconds": -5},
        {"lease_duration_seconds": "60"},
        {"lease_duration_seconds": True},
        {"lease_duration_seconds": float("nan")},
        {"poll_interval_seconds": 0},
        {"max_retries": -1},
        {"max_retries": 1.5},
        {"max_retries": True},
        {"types": "a,b"},
        {"types": [1]},
        {"types": [""]},
        {"retry": {"base_seconds": 1}},
        {"concurrency": 0},
        {"concurrency": "2"},
    ],
)
def test_validation_rejects_bad_values(kwargs: dict[str, Any]) -> None:
    kwargs.setdefault("worker_id", "w")
    with pytest.raises(InvalidArgumentError):
        WorkerConfig(**kwargs)


def test_to_native_has_the_abi_keys() -> None:
    cfg = WorkerConfig(
        worker_id="w",
        capabilities={"gpu": True},
        types=("a", "b"),  # type: ignore[arg-type]
        scheduling_strategy="lifo",
        lease_duration_seconds=1.5,
    )
    assert cfg.types == ["a", "b"]
    native = cfg.to_native(host="h", pid=12)
    assert native == {
        "worker_id": "w",
        "capabilities": {"gpu": True},
        "types": ["a", "b"],
        "strategy": "lifo",
        "lease_ms": 1500,
        "host": "h",
        "pid": 12,
    }
    json.dumps(native)


def test_from_env_reads_every_variable() -> None:
    env = {
        "PRISMQ_WORKER_ID": "env-worker",
        "PRISMQ_WORKER_SCHEDULING_STRATEGY": "weighted_random",
        "PRISMQ_WORKER_LEASE_DURATION_SECONDS": "45.5",
        "PRISMQ_WORKER_POLL_INTERVAL_SECONDS": "0.25",
        "PRISMQ_WORKER_MAX_RETRIES": "7",
        "PRISMQ_WORKER_CAPABILITIES": '{"region": "eu", "gpu": true}',
        "PRISMQ_WORKER_TYPES": "email.send, render ,,",
        "PRISMQ_WORKER_CONCURRENCY": "4",
        "UNRELATED": "x",
    }
    cfg = WorkerConfig.from_env(env=env)
    assert cfg.worker_id == "env-worker"
    assert cfg.scheduling_strategy is SchedulingStrategy.WEIGHTED_RANDOM
    assert cfg.lease_duration_seconds == 45.5
    assert cfg.poll_interval_seconds == 0.25
    assert cfg.max_retries == 7
    assert cfg.capabilities == {"region": "eu", "gpu": True}
    assert cfg.types == ["email.send", "render"]
    assert cfg.concurrency == 4


def test_from_env_defaults_the_worker_id_to_host_and_pid() -> None:
    cfg = WorkerConfig.from_env(env={})
    assert cfg.worker_id == f"{socket.gethostname()}-{os.getpid()}"
    assert cfg.scheduling_strategy is SchedulingStrategy.PRIORITY


def test_from_env_uses_the_prefix_and_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYAPP_ID", "prefixed")
    monkeypatch.setenv("MYAPP_MAX_RETRIES", "0")
    cfg = WorkerConfig.from_env(prefix="MYAPP_")
    assert cfg.worker_id == "prefixed" and cfg.max_retries == 0


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("PRISMQ_WORKER_LEASE_DURATION_SECONDS", "sixty"),
        ("PRISMQ_WORKER_MAX_RETRIES", "1.5"),
        ("PRISMQ_WORKER_CAPABILITIES", "{not json"),
        ("PRISMQ_WORKER_CAPABILITIES", "[1, 2]"),
        ("PRISMQ_WORKER_SCHEDULING_STRATEGY", "random"),
        ("PRISMQ_WORKER_CONCURRENCY", "0"),
    ],
)
def test_from_env_rejects_bad_values(var: str, value: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        WorkerConfig.from_env(env={"PRISMQ_WORKER_ID": "w", var: value})
    if var != "PRISMQ_WORKER_SCHEDULING_STRATEGY" and "CONCURRENCY" not in var and "[" not in value:
        assert var in str(info.value)


def test_from_file_json_top_level(tmp_path: Path) -> None:
    path = tmp_path / "worker.json"
    path.write_text(
        json.dumps(
            {
                "worker_id": "json-worker",
                "capabilities": {"region": "us"},
                "scheduling_strategy": "fifo",
                "lease_duration_seconds": 30,
                "types": ["a"],
                "retry": {"base_seconds": 2, "cap_seconds": 20, "jitter": 0.1},
            }
        )
    )
    cfg = WorkerConfig.from_file(path)
    assert cfg.worker_id == "json-worker"
    assert cfg.scheduling_strategy is SchedulingStrategy.FIFO
    assert cfg.lease_duration_seconds == 30
    assert cfg.types == ["a"]
    assert cfg.retry == RetryConfig(2, 20, 0.1)


def test_from_file_json_worker_section(tmp_path: Path) -> None:
    path = tmp_path / "app.json"
    path.write_text(json.dumps({"worker": {"worker_id": "nested", "max_retries": 9}}))
    cfg = WorkerConfig.from_file(str(path))
    assert cfg.worker_id == "nested" and cfg.max_retries == 9


def _has_toml() -> bool:
    return any(importlib.util.find_spec(m) is not None for m in ("tomllib", "tomli"))


@pytest.mark.skipif(not _has_toml(), reason="needs tomllib (3.11+) or tomli")
def test_from_file_toml_with_worker_table(tmp_path: Path) -> None:
    path = tmp_path / "worker.toml"
    path.write_text(
        """
[worker]
worker_id = "toml-worker"
capabilities = { region = "us", gpu = true }
scheduling_strategy = "weighted_random"
lease_duration_seconds = 90
poll_interval_seconds = 0.5
types = ["render", "email"]
concurrency = 3

[worker.retry]
base_seconds = 1.5
cap_seconds = 60
"""
    )
    cfg = WorkerConfig.from_file(path)
    assert cfg.worker_id == "toml-worker"
    assert cfg.capabilities == {"region": "us", "gpu": True}
    assert cfg.scheduling_strategy is SchedulingStrategy.WEIGHTED_RANDOM
    assert cfg.lease_duration_seconds == 90
    assert cfg.poll_interval_seconds == 0.5
    assert cfg.types == ["render", "email"]
    assert cfg.concurrency == 3
    assert cfg.retry == RetryConfig(1.5, 60)


@pytest.mark.skipif(not _has_toml(), reason="needs tomllib (3.11+) or tomli")
def test_from_file_toml_top_level(tmp_path: Path) -> None:
    path = tmp_path / "w.toml"
    path.write_text('worker_id = "flat"\nstrategy = "lifo"\n')
    cfg = WorkerConfig.from_file(path)
    assert cfg.worker_id == "flat"
    assert cfg.scheduling_strategy is SchedulingStrategy.LIFO


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("bad.json", "{not json"),
        ("list.json", "[1, 2]"),
        ("unknown.json", '{"worker_id": "w", "colour": "blue"}'),
        ("badvalue.json", '{"worker_id": "w", "max_retries": -1}'),
        ("section.json", '{"worker": 5}'),
        ("retry.json", '{"worker_id": "w", "retry": {"bogus": 1}}'),
        ("config.yaml", "worker_id: w"),
    ],
)
def test_from_file_rejects_bad_files(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InvalidArgumentError):
        WorkerConfig.from_file(path)


@pytest.mark.skipif(not _has_toml(), reason="needs tomllib (3.11+) or tomli")
def test_from_file_rejects_bad_toml(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("worker_id = = 'x'")
    with pytest.raises(InvalidArgumentError):
        WorkerConfig.from_file(path)


def test_from_file_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        WorkerConfig.from_file(tmp_path / "absent.json")


def test_toml_without_a_parser_explains_how_to_get_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import prismq_queue.config as config_module

    real = config_module.importlib.import_module

    def no_toml(name: str, package: str | None = None) -> Any:
        if name in ("tomllib", "tomli"):
            raise ModuleNotFoundError(name)
        return real(name, package)

    monkeypatch.setattr(config_module.importlib, "import_module", no_toml)
    path = tmp_path / "w.toml"
    path.write_text('worker_id = "x"\n')
    with pytest.raises(InvalidArgumentError, match="tomli"):
        WorkerConfig.from_file(path)
