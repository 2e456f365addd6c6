"""Build hooks for prismq-queue: compile the Go engine into the package.

Metadata lives in pyproject.toml. This file only adds what setuptools cannot
express there:

* build_py also runs ``go build -buildmode=c-shared ./capi`` and writes the
  library into ``prismq_queue/native/`` of the build tree, so every wheel (and
  ``pip install .``) carries a library built from the same source.
* bdist_wheel tags the wheel ``py3-none-<platform>``: the library is loaded with
  ctypes, so it does not depend on the CPython version or ABI, only on the OS
  and CPU.

This file runs under the interpreter that builds the package, so it keeps to
syntax that Python 3.8 accepts.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

from setuptools import Distribution, setup
from setuptools.command.bdist_wheel import bdist_wheel  # setuptools >= 70.1 (see pyproject.toml)
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
MIN_GO = (1, 26)


class GoBuildError(RuntimeError):
    """The Go toolchain is missing, too old, or the build failed."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"Go {MIN_GO[0]}.{MIN_GO[1]}+ is required to build prismq-queue from source: {reason}"
        )


def library_name() -> str:
    """File name of the shared library for the platform being built."""
    if sys.platform == "win32":
        return "prismq_queue.dll"
    if sys.platform == "darwin":
        return "libprismq_queue.dylib"
    return "libprismq_queue.so"


def find_go() -> str:
    """Path of the go command (the GO environment variable overrides PATH)."""
    go = os.environ.get("GO") or shutil.which("go")
    if not go:
        raise GoBuildError("the 'go' command was not found on PATH (install Go or set GO=/path/to/go)")
    try:
        out = subprocess.run(
            [go, "env", "GOVERSION"], check=True, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise GoBuildError(f"running '{go} env GOVERSION' failed: {exc}") from exc
    match = re.match(r"go(\d+)\.(\d+)", out)
    # Development toolchains ("devel go1.27-...") are accepted as they are.
    if match and (int(match.group(1)), int(match.group(2))) < MIN_GO:
        raise GoBuildError(f"found {out} at {go}")
    return go


def build_library(dest_dir: str) -> str:
    """Build the c-shared library into dest_dir and return its path."""
    go = find_go()
    os.makedirs(dest_dir, exist_ok=True)
    target = os.path.abspath(os.path.join(dest_dir, library_name()))
    env = dict(os.environ, CGO_ENABLED="1")  # c-shared needs cgo and a C compiler
    # -trimpath: no build-machine paths in the binary; -buildvcs=false: building
    # from an sdist or a fresh clone without commits must not need git.
    cmd = [go, "build", "-buildmode=c-shared", "-trimpath", "-buildvcs=false", "-o", target, "./capi"]
    print("building Go library: " + " ".join(cmd))
    try:
        subprocess.run(cmd, cwd=HERE, env=env, check=True)
    except OSError as exc:
        raise GoBuildError(f"could not run {go}: {exc}") from exc
    except subprocess.CalledProcessError as exc:
        raise GoBuildError(
            f"'go build' failed with exit code {exc.returncode} (see the output above; cgo also needs "
            "a C compiler such as gcc, or mingw-w64 on Windows)"
        ) from exc
    # go build also writes a generated header; the package ships capi/prismq_queue.h's contract, not it.
    generated_header = os.path.splitext(target)[0] + ".h"
    if os.path.exists(generated_header):
        os.remove(generated_header)
    return target


class BuildPyWithGo(build_py):
    """build_py that also compiles the Go library into the build tree."""

    def run(self) -> None:
        # pip builds in the source tree and setuptools never prunes build/lib, so a module
        # deleted from the source would live on in later wheels: start from a clean copy.
        shutil.rmtree(os.path.join(self.build_lib, "prismq_queue"), ignore_errors=True)
        super().run()
        if not self.dry_run:
            build_library(self._native_dir())

    def _native_dir(self) -> str:
        return os.path.join(self.build_lib, "prismq_queue", "native")

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        # Listed so that 'install' records the library and uninstall removes it.
        outputs = list(super().get_outputs(include_bytecode))
        return outputs + [os.path.join(self._native_dir(), library_name())]


class BinaryDistribution(Distribution):
    """Marks the distribution as platform-specific.

    The library is not a setuptools extension, so without this setuptools would
    treat the package as pure Python: build into build/lib and install into purelib.
    """

    def has_ext_modules(self) -> bool:
        return True


class PlatformWheel(bdist_wheel):
    """A wheel for one platform, for any Python 3 (py3-none-<platform>)."""

    def finalize_options(self) -> None:
        super().finalize_options()
        self.root_is_pure = False  # contains a native library: install into platlib, tag the platform

    def get_tag(self) -> tuple[str, str, str]:
        _, _, plat = super().get_tag()
        return "py3", "none", plat


setup(distclass=BinaryDistribution, cmdclass={"build_py": BuildPyWithGo, "bdist_wheel": PlatformWheel})
