"""Check that a Windows DLL exports exactly the pq_* functions declared in the C header.

Usage: python scripts/check_exports.py capi/prismq_queue.h build/windows/prismq_queue.dll

The header is the hand-written contract and the DLL is cross-built from capi/;
a function declared but not exported (a missing or misspelled //export) or
exported but not declared (an undocumented ABI) fails the check. The PE export
table is read directly, so no binutils are needed.
"""

from __future__ import annotations

import re
import struct
import sys
from pathlib import Path

# A C comment, so that names mentioned in prose ("release it with pq_free()") are not counted.
_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.DOTALL)
# A declaration names the function right before its parameter list.
_DECLARED = re.compile(r"\b(pq_\w+)\s*\(")


class PEError(ValueError):
    """The file is not a PE image this script can read."""


def header_functions(header: str) -> set[str]:
    """Return the pq_* function names declared in a C header's text."""
    return set(_DECLARED.findall(_COMMENT.sub(" ", header)))


def _c_string(data: bytes, offset: int) -> str:
    end = data.index(b"\0", offset)
    return data[offset:end].decode("ascii")


def pe_exports(data: bytes) -> set[str]:
    """Return the names in a PE image's export directory (PE32 or PE32+).

    :param data: the whole DLL file.
    :raises PEError: when data is not a PE image or has no export directory.
    """
    if data[:2] != b"MZ":
        raise PEError("not a PE file (no MZ signature)")
    (pe,) = struct.unpack_from("<I", data, 0x3C)
    if data[pe : pe + 4] != b"PE\0\0":
        raise PEError("not a PE file (no PE signature)")
    coff = pe + 4
    (n_sections,) = struct.unpack_from("<H", data, coff + 2)
    (opt_size,) = struct.unpack_from("<H", data, coff + 16)
    opt = coff + 20
    (magic,) = struct.unpack_from("<H", data, opt)
    # The data directories follow the fixed part of the optional header, whose size differs.
    dirs = opt + {0x10B: 96, 0x20B: 112}.get(magic, -1)
    if dirs < opt:
        raise PEError(f"unknown optional header magic {magic:#x}")
    export_rva, export_size = struct.unpack_from("<II", data, dirs)  # directory 0: exports
    if export_rva == 0 or export_size == 0:
        raise PEError("the DLL has no export directory")

    sections: list[tuple[int, int, int]] = []
    for i in range(n_sections):
        base = opt + opt_size + 40 * i
        vsize, vaddr, raw_size, raw_ptr = struct.unpack_from("<IIII", data, base + 8)
        sections.append((int(vaddr), int(max(vsize, raw_size)), int(raw_ptr)))

    def offset(rva: int) -> int:
        for vaddr, size, raw_ptr in sections:
            if vaddr <= rva < vaddr + size:
                return rva - vaddr + raw_ptr
        raise PEError(f"RVA {rva:#x} is in no section")

    exp = offset(export_rva)
    (n_names,) = struct.unpack_from("<I", data, exp + 24)
    (names_rva,) = struct.unpack_from("<I", data, exp + 32)
    names = offset(names_rva)
    return {_c_string(data, offset(struct.unpack_from("<I", data, names + 4 * i)[0])) for i in range(n_names)}


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(f"usage: {argv[0]} HEADER DLL", file=sys.stderr)
        return 2
    header_path, dll_path = Path(argv[1]), Path(argv[2])
    declared = header_functions(header_path.read_text(encoding="utf-8"))
    if not declared:
        print(f"{header_path}: no pq_* functions found", file=sys.stderr)
        return 1
    try:
        exported = {name for name in pe_exports(dll_path.read_bytes()) if name.startswith("pq_")}
    except PEError as exc:
        print(f"{dll_path}: {exc}", file=sys.stderr)
        return 1
    problems = {
        f"declared in {header_path} but not exported": sorted(declared - exported),
        f"exported but not declared in {header_path}": sorted(exported - declared),
    }
    for problem, names in problems.items():
        if names:
            print(f"{dll_path}: {problem}: {', '.join(names)}", file=sys.stderr)
    if any(problems.values()):
        return 1
    print(f"{dll_path}: exports all {len(declared)} functions of {header_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
