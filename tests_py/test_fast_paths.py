"""The hot paths of enqueue and claim give exactly what the plain, general code gives.

Queue.enqueue writes its common case's JSON by hand, Task.from_json fills the instance dict
itself and shares datetimes between equal timestamps, _lib decodes with the JSON scanner
directly and Worker.claim converts its timeout on a short path: each is compared here with the
straightforward formulation it replaces, values and errors alike.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import pickle
import types
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from prismq_queue import InvalidArgumentError, Queue, RetryConfig, Task, TaskStatus, Worker, _lib
from prismq_queue.models import (
    _check_object,
    _check_seconds,
    _dumps,
    _ms_to_dt,
    _seconds_to_ms,
)
from prismq_queue.queue import _enqueue_json, _enqueue_object
from prismq_queue.worker import _timeout_ms

_UTC = timezone.utc


def _outcome(fn: Callable[[], object]) -> tuple[str, object]:
    """('ok', value) or ('error', (exception type, message)) of one call."""
    try:
        return "ok", fn()
    except Exception as exc:  # noqa: BLE001 - compared, not handled
        return "error", (type(exc), str(exc))


# ---- enqueue's task JSON ------------------------------------------------------------------


class _Prio(enum.IntEnum):
    HIGH = 1


class _Name(str):
    pass


_circular: dict[str, Any] = {}
_circular["self"] = _circular

_DEFAULTS: dict[str, Any] = {
    "task_type": "t",
    "payload": None,
    "priority": 100,
    "delay": None,
    "run_at": None,
    "max_attempts": 5,
    "requirements": None,
    "idempotency_key": None,
    "retry": None,
}

_CASES: list[dict[str, Any]] = [
    {},
    {"payload": {"a": 1}},
    {"payload": {}},
    {"payload": {"user": 42, "action": "resize", "path": "/img/a.png"}},
    {"payload": {"ü": "日本語 \u2028 \"quoted\" \\ \n\t", "nested": {"x": [1, 2.5, None, True]}}},
    {"payload": {"big": 2**80, "neg": -(2**70), "f": 1e300, "tiny": 5e-324}},
    {"task_type": "email.send", "priority": -5, "max_attempts": 1},
    {"task_type": 'with "quotes" and \\ and \x01', "payload": {"a": 1}},
    {"priority": 2**63 - 1, "max_attempts": 2**31 - 1},
    {"priority": -(2**63)},
    {"priority": 0},
    # general-path cases (options or unusual types)
    {"delay": 1.5},
    {"delay": timedelta(seconds=2)},
    {"run_at": datetime(2030, 1, 1, tzinfo=_UTC)},
    {"requirements": {"gpu": True}},
    {"idempotency_key": "k1"},
    {"retry": RetryConfig(base_seconds=2, cap_seconds=10)},
    {"priority": _Prio.HIGH},
    {"max_attempts": _Prio.HIGH},
    {"task_type": _Name("sub")},
    {"payload": types.MappingProxyType({"a": 1})},
    # errors, in the order the general path checks them
    {"task_type": ""},
    {"task_type": None},
    {"task_type": b"t"},
    {"task_type": "", "payload": {1: 2}},
    {"payload": {1: "int key"}},
    {"payload": {None: 1}},
    {"payload": [1, 2]},
    {"payload": "text"},
    {"payload": {"s": {1, 2}}},
    {"payload": {"n": math.nan}},
    {"payload": {"i": math.inf}},
    {"payload": {"c": _circular}},
    {"payload": {"s": "lone \ud800 surrogate"}},
    {"task_type": "lone \udfff surrogate"},
    {"payload": {"a": 1}, "priority": True},
    {"payload": {1: 1}, "priority": "high"},
    {"priority": 1.0},
    {"priority": 2**63},
    {"priority": -(2**63) - 1},
    {"max_attempts": 0},
    {"max_attempts": 2**31},
    {"max_attempts": False},
    {"max_attempts": None},
    {"delay": 1, "run_at": datetime(2030, 1, 1, tzinfo=_UTC)},
    {"run_at": datetime(2030, 1, 1)},
    {"delay": -1},
    {"requirements": {"a": math.nan}},
    {"idempotency_key": ""},
    {"retry": {"base_seconds": 1}},
]


@pytest.mark.parametrize("case", _CASES, ids=[repr(c)[:60] for c in _CASES])
def test_enqueue_json_matches_the_general_path(case: dict[str, Any]) -> None:
    args = {**_DEFAULTS, **case}
    fast = _outcome(lambda: _enqueue_json(**args))
    slow = _outcome(lambda: _dumps(_enqueue_object(**args), "task"))
    assert fast == slow
    if fast[0] == "error":
        assert fast[1][0] is InvalidArgumentError  # type: ignore[index]


def test_dumps_matches_json_dumps_and_keeps_its_errors() -> None:
    def reference(value: object) -> bytes:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")

    values: list[object] = [
        {"a": [1, 2.5, None, True, "ü\u2028"]},
        [],
        "s",
        2**90,
        -0.0,
        {1: "int key", None: 2},
    ]
    for value in values:
        assert _dumps(value, "x") == reference(value)
    for bad in ({"n": math.nan}, {1, 2}, _circular, "\ud800", object()):
        with pytest.raises(InvalidArgumentError) as info:
            _dumps(bad, "thing")
        try:
            reference(bad)
        except (TypeError, ValueError, RecursionError) as exc:
            assert str(info.value) == f"thing is not JSON-serialisable: {exc}"
        else:  # pragma: no cover - every value above fails
            pytest.fail(f"{bad!r} encoded")


def test_check_object_fast_path_matches_the_mapping_path() -> None:
    d = {"a": 1}
    assert _check_object("p", d) is d
    assert _check_object("p", types.MappingProxyType(d)) == d
    for bad in ({1: 1}, {"a": 1, 2: 2}, [("a", 1)], None):
        with pytest.raises(InvalidArgumentError):
            _check_object("p", bad)


# ---- Task.from_json -----------------------------------------------------------------------


def _reference_task(d: Mapping[str, Any], created: bool | None = None) -> Task:
    """Task.from_json as plainly as possible: the dataclass constructor, one conversion a field."""

    def dt(key: str) -> datetime | None:
        ms = d.get(key)
        return None if ms is None else datetime(1970, 1, 1, tzinfo=_UTC) + timedelta(milliseconds=ms)

    def seconds(key: str) -> float | None:
        ms = d.get(key)
        return None if ms is None else ms / 1000.0

    return Task(
        id=d["id"],
        type=d["type"],
        priority=d["priority"],
        payload=d.get("payload") or {},
        requirements=d.get("requirements") or {},
        status=TaskStatus(d["status"]),
        attempts=d["attempts"],
        max_attempts=d["max_attempts"],
        run_after=dt("run_after_ms"),  # type: ignore[arg-type]
        lease_expires_at=dt("lease_expires_at_ms"),
        lease_owner=d.get("lease_owner"),
        lease_token=d.get("lease_token") or 0,
        created_at=dt("created_at_ms"),  # type: ignore[arg-type]
        updated_at=dt("updated_at_ms"),  # type: ignore[arg-type]
        claimed_at=dt("claimed_at_ms"),
        started_at=dt("started_at_ms"),
        finished_at=dt("finished_at_ms"),
        last_error=d.get("last_error"),
        idempotency_key=d.get("idempotency_key"),
        result=d.get("result"),
        progress_percent=d.get("progress_percent"),
        progress_current=d.get("progress_current"),
        progress_total=d.get("progress_total"),
        progress_message=d.get("progress_message"),
        cancel_requested=bool(d.get("cancel_requested", False)),
        retry_base_seconds=seconds("retry_base_ms"),
        retry_cap_seconds=seconds("retry_cap_ms"),
        created=created,
    )


_FIELDS = [f.name for f in dataclasses.fields(Task)]


def _assert_same_task(task: Task, ref: Task) -> None:
    assert task == ref
    assert type(task) is Task
    for name in _FIELDS:  # == compares datetimes across zones: check types and zones too
        got, want = getattr(task, name), getattr(ref, name)
        assert got == want and type(got) is type(want), name
        if isinstance(got, datetime):
            assert got.tzinfo is _UTC, name
    assert list(vars(task)) == _FIELDS
    assert repr(task) == repr(ref)
    assert task.to_dict() == ref.to_dict()
    assert pickle.loads(pickle.dumps(task)) == task
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.priority = 1  # type: ignore[misc]


def _engine_task_dicts(queue: Queue, worker: Worker) -> list[dict[str, Any]]:
    """Task objects exactly as the library returns them, in many states."""
    enq = _lib.FUNCTIONS["pq_enqueue"]
    get = _lib.FUNCTIONS["pq_get"]
    h = queue._h()
    out: list[dict[str, Any]] = []

    def enqueue(**obj: Any) -> int:
        res = _lib.call_json(enq, h, _dumps({"type": "t", **obj}, "task"))
        out.append(res["task"])
        return int(res["task"]["id"])

    enqueue()
    enqueue(payload={"a": [1, "ü"]}, priority=3, max_attempts=1)
    enqueue(delay_ms=60_000, requirements={"gpu": True}, idempotency_key="k")
    enqueue(retry_base_ms=1500, retry_cap_ms=9000)
    enqueue(run_at_ms=-86_400_001)
    enqueue(run_at_ms=0)
    claimed = worker.claim_many(3)
    assert len(claimed) == 3
    for t in claimed:
        out.append(_lib.call_json(get, h, t.id))
    worker.progress(claimed[0], percent=50.0, current=1, total=2, message="half")
    worker.complete(claimed[1], {"ok": True})
    worker.fail(claimed[2], "boom", retryable=False)
    queue.cancel(claimed[0].id)
    for t in claimed:
        out.append(_lib.call_json(get, h, t.id))
    return out


def test_from_json_matches_the_constructor_for_engine_output(queue: Queue, worker: Worker) -> None:
    dicts = _engine_task_dicts(queue, worker)
    assert any(d["claimed_at_ms"] is not None for d in dicts)
    assert any(d["run_after_ms"] != d["created_at_ms"] for d in dicts)
    for d in dicts:
        for created in (None, True, False):
            _assert_same_task(Task.from_json(d, created), _reference_task(d, created))


def test_from_json_matches_the_constructor_for_sparse_and_odd_objects() -> None:
    base: dict[str, Any] = {
        "id": 7,
        "type": "t",
        "priority": 100,
        "status": "leased",
        "attempts": 1,
        "max_attempts": 5,
        "run_after_ms": 1_000,
        "created_at_ms": 1_000,
        "updated_at_ms": 2_000,
    }
    variants: list[dict[str, Any]] = [
        base,  # optional keys missing altogether
        {**base, "claimed_at_ms": 2_000, "started_at_ms": 1_500, "lease_expires_at_ms": 2_000},
        {**base, "run_after_ms": 2_000, "finished_at_ms": 1_000, "claimed_at_ms": 3_000},
        {**base, "created_at_ms": -1, "updated_at_ms": -1, "run_after_ms": -86_400_001},
        {**base, "created_at_ms": 0, "updated_at_ms": 0, "run_after_ms": 0, "started_at_ms": 0},
        {**base, "payload": None, "requirements": None, "lease_token": None, "cancel_requested": 1},
        {**base, "retry_base_ms": 0, "retry_cap_ms": 1, "result": [1, {"x": None}], "progress_percent": 0.0},
        {**base, "status": "completed", "last_error": "e", "idempotency_key": "k", "lease_owner": "w"},
    ]
    for d in variants:
        _assert_same_task(Task.from_json(d), _reference_task(d))
        _assert_same_task(Task.from_json(types.MappingProxyType(d), True), _reference_task(d, True))


def test_from_json_does_not_share_mutable_defaults() -> None:
    d = {"id": 1, "type": "t", "priority": 1, "status": "queued", "attempts": 0, "max_attempts": 1}
    d |= {"run_after_ms": 1, "created_at_ms": 1, "updated_at_ms": 1}
    a, b = Task.from_json(d), Task.from_json(d)
    assert a.payload == {} and a.payload is not b.payload
    assert vars(a) is not vars(b)


def test_enqueue_and_claim_return_what_get_returns(queue: Queue, worker: Worker) -> None:
    task = queue.enqueue("t", {"a": 1})
    assert task.created is True
    assert dataclasses.replace(task, created=None) == queue.get(task.id)
    assert task.run_after == task.created_at == task.updated_at
    claimed = worker.claim()
    assert claimed is not None and claimed.id == task.id
    assert claimed == queue.get(task.id)
    assert claimed.status is TaskStatus.LEASED and claimed.claimed_at is not None


def test_ms_to_dt_agrees_with_the_reference_on_shared_and_distinct_stamps() -> None:
    for ms in (0, 1, 999, 1_796_057_827_314, -1):
        assert _ms_to_dt(ms) == datetime(1970, 1, 1, tzinfo=_UTC) + timedelta(milliseconds=ms)


# ---- decoding the library's output --------------------------------------------------------


def test_loads_matches_json_loads() -> None:
    docs = [
        b'{"a":1,"b":[1,2.5,null,true,false],"c":{"d":"\\u00fc\\n"}}',
        '{"ü":"日本語","s":"\\ud800"}'.encode(),
        b"[]",
        b'"text"',
        b"12345678901234567890123",
        b"-0.0",
        b'  {"lead": "ing"}',
        b'{"trail": "ing"}  \n',
        b"null",
    ]
    for raw in docs:
        assert _lib._loads(raw) == json.loads(raw)
        assert type(_lib._loads(raw)) is type(json.loads(raw))
    bad_docs = [b"", b"{", b'{"a":1} x', b"\xff\xfe\x00", b"\xc3", b"nul", b"[1,]", b'{"a":NaN']
    bad_docs.append(b"\xef\xbb\xbf{}")  # a UTF-8 BOM
    for bad in bad_docs:
        assert _outcome(lambda bad=bad: _lib._loads(bad)) == _outcome(lambda bad=bad: json.loads(bad)), bad


# ---- claim's timeout ----------------------------------------------------------------------


def test_timeout_ms_matches_the_general_conversion() -> None:
    values: list[object] = [
        0,
        0.0,
        -0.0,
        1,
        0.0001,
        0.0005,
        0.0015,
        0.1,
        0.3,
        1.5,
        2.675,
        59.9999,
        3600,
        10**12,
        1e12,
        10**12 + 1,
        1e13,
        2**62,
        9.3e15,
        1e300,
        -1,
        -0.001,
        math.nan,
        math.inf,
        -math.inf,
        True,
        False,
        "1",
        None,
        timedelta(seconds=1.5),
        timedelta(0),
        timedelta(seconds=-1),
        _Prio.HIGH,
    ]
    for v in values:
        fast = _outcome(lambda v=v: _timeout_ms(v))
        assert fast == _outcome(lambda v=v: _seconds_to_ms(_check_seconds("timeout", v))), v
