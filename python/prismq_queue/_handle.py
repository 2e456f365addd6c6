"""Base class for objects that own a native handle."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import TypeVar

from ._errors import QueueClosedError

__all__ = ["NativeHandle"]

_H = TypeVar("_H", bound="NativeHandle")


class NativeHandle:
    """Owns one opaque native handle (a non-zero integer).

    ``close()`` is idempotent; after it every method raises :class:`QueueClosedError` without
    calling the library. ``__del__`` closes a forgotten handle as a backstop only: close
    explicitly or use ``with``.
    """

    _kind = "handle"
    _handle: int = 0

    def __init__(self, handle: int) -> None:
        self._close_lock = threading.Lock()
        self._handle = handle

    def _native_close(self, handle: int) -> None:
        """Release ``handle`` in the library; subclasses override."""
        raise NotImplementedError

    def _h(self) -> int:
        """Return the live handle.

        :raises QueueClosedError: after :meth:`close`.
        """
        h = self._handle
        if not h:
            raise QueueClosedError(f"{self._kind} is closed")
        return h

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (or the owning queue was closed)."""
        return not self._handle

    def _mark_closed(self) -> None:
        """Forget the handle without calling the library (its owner already released it)."""
        self._handle = 0

    def close(self) -> None:
        """Release the native handle. Calling it again does nothing.

        :raises QueueError: when the library reports an error other than "already closed".
        """
        with self._close_lock:
            h = self._handle
            if not h:
                return
            self._handle = 0
        try:
            self._native_close(h)
        except QueueClosedError:
            pass  # already released on the native side (e.g. its queue was closed)

    def __enter__(self: _H) -> _H:
        self._h()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_handle", 0):
            return
        try:
            self.close()
        except Exception:  # noqa: BLE001 - a finalizer must not raise (e.g. at interpreter shutdown)
            pass
