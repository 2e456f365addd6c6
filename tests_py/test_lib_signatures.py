"""Every function of capi/prismq_queue.h is declared once in _lib, with argtypes matching the header."""

from __future__ import annotations

import ctypes
import re
from pathlib import Path

import pytest

from prismq_queue import _lib

HEADER = Path(__file__).resolve().parents[1] / "capi" / "prismq_queue.h"

_DECL = re.compile(r"^\s*(pq_status|void)\s+(pq_\w+)\s*\(([^)]*)\)\s*;", re.MULTILINE)

# C parameter type (without its name) -> ctypes type the declaration must use.
_CTYPES: dict[str, object] = {
    "uint64_t": ctypes.c_uint64,
    "int64_t": ctypes.c_int64,
    "int32_t": ctypes.c_int32,
    "const char *": ctypes.c_char_p,
    "char **": ctypes.POINTER(ctypes.c_void_p),
    "uint64_t *": ctypes.POINTER(ctypes.c_uint64),
    "void *": ctypes.c_void_p,
}


def _strip_comments(text: str) -> str:
    return re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)


def _param_type(param: str) -> str:
    """'const char *task_json' -> 'const char *'; 'uint64_t queue' -> 'uint64_t'."""
    param = " ".join(param.split())
    m = re.fullmatch(r"(.*?)(\**)\s*(\w+)", param.replace("* ", "*"))
    assert m is not None, f"cannot parse parameter {param!r}"
    base, stars = m.group(1).strip(), m.group(2)
    return f"{base} {stars}" if stars else base


def header_declarations() -> dict[str, tuple[str, list[str]]]:
    """name -> (return type, [parameter C types]) for every declaration in the header."""
    text = _strip_comments(HEADER.read_text(encoding="utf-8"))
    decls: dict[str, tuple[str, list[str]]] = {}
    for ret, name, params in _DECL.findall(text):
        parts = [p for p in (s.strip() for s in params.split(",")) if p and p != "void"]
        assert name not in decls, f"{name} declared twice in the header"
        decls[name] = (ret, [_param_type(p) for p in parts])
    return decls


def test_header_parses_to_the_expected_number_of_functions() -> None:
    decls = header_declarations()
    # Guards the parser itself: a regex that silently matched nothing would make every check vacuous.
    assert len(decls) >= 28
    assert "pq_free" in decls and "pq_ack_many" in decls


def test_signature_table_names_exactly_the_header_functions() -> None:
    assert set(_lib.SIGNATURES) == set(header_declarations())


@pytest.mark.parametrize("name", sorted(header_declarations()))
def test_each_header_function_is_declared_with_matching_types(name: str) -> None:
    _lib.load()
    ret, params = header_declarations()[name]
    fn = _lib.FUNCTIONS.get(name)
    assert fn is not None, f"{name} is not in _lib.FUNCTIONS"
    assert fn.argtypes is not None, f"{name} has no argtypes"
    assert len(fn.argtypes) == len(params), f"{name}: {len(fn.argtypes)} argtypes for {len(params)} params"
    for i, (declared, ctype) in enumerate(zip(fn.argtypes, params, strict=True)):
        expected = _CTYPES[ctype]
        assert declared is expected, f"{name} arg {i}: {declared} is not {expected} ({ctype})"
    if ret == "void":
        assert fn.restype is None
    else:
        assert fn.restype is ctypes.c_int32


def test_no_function_returns_a_go_owned_c_string() -> None:
    for name, (_, restype) in _lib.SIGNATURES.items():
        assert restype is not ctypes.c_char_p, name


def test_library_reports_a_version() -> None:
    version = _lib.version()
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", version), version
