"""Exceptions raised by prismq_queue, and the one place that maps native status codes to them."""

from __future__ import annotations

__all__ = [
    "QueueError",
    "InvalidArgumentError",
    "TaskNotFoundError",
    "LeaseLostError",
    "QueueClosedError",
    "QueueBusyError",
    "InvalidStateError",
    "PayloadTooLargeError",
    "NetworkPathError",
    "SchemaError",
    "QueueIOError",
    "InternalError",
    "LibraryNotFoundError",
    "TaskCancelledError",
    "error_from_code",
]


class QueueError(Exception):
    """Base class of every error raised by prismq_queue.

    :ivar code: the native status code (``0`` for errors raised by Python code only).
    """

    code: int = 0

    def __init__(self, message: str = "", code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        """The error message without the class name."""
        return str(self.args[0]) if self.args else ""


class InvalidArgumentError(QueueError, ValueError):
    """An argument has the wrong type or value (status 1)."""

    code = 1


class TaskNotFoundError(QueueError, LookupError):
    """No task has the given id (status 2)."""

    code = 2


class LeaseLostError(QueueError):
    """The fencing token is stale: the worker no longer holds the task's lease (status 3)."""

    code = 3


class QueueClosedError(QueueError):
    """The queue or worker handle is closed (status 4)."""

    code = 4


class QueueBusyError(QueueError):
    """The database stayed locked past its busy timeout (status 5)."""

    code = 5


class InvalidStateError(QueueError):
    """The task's status does not allow the operation (status 6)."""

    code = 6


class PayloadTooLargeError(InvalidArgumentError):
    """A payload, requirements object or result is over the configured size limit (status 7)."""

    code = 7


class NetworkPathError(QueueError):
    """The database path is on a network share and ``allow_network_path`` is false (status 8)."""

    code = 8


class SchemaError(QueueError):
    """The database schema is newer than this library, or corrupt (status 9)."""

    code = 9


class QueueIOError(QueueError, OSError):
    """The database file cannot be created, opened, read or written (status 10)."""

    code = 10


class InternalError(QueueError):
    """An unexpected engine error: a bug worth reporting (status 11)."""

    code = 11


class LibraryNotFoundError(QueueError):
    """The native library could not be found or loaded."""


class TaskCancelledError(QueueError):
    """Raised inside a handler by ``TaskContext.raise_if_cancelled()`` once a cancel was requested."""


_BY_CODE: dict[int, type[QueueError]] = {
    cls.code: cls
    for cls in (
        InvalidArgumentError,
        TaskNotFoundError,
        LeaseLostError,
        QueueClosedError,
        QueueBusyError,
        InvalidStateError,
        PayloadTooLargeError,
        NetworkPathError,
        SchemaError,
        QueueIOError,
        InternalError,
    )
}


def error_from_code(code: int, message: str) -> QueueError:
    """Return the exception for a native status code.

    Unknown codes give a plain :class:`QueueError` carrying the code.

    :param code: a non-zero ``pq_status``.
    :param message: the library's error message.
    """
    cls = _BY_CODE.get(code)
    if cls is None:
        return QueueError(message or f"native error (status {code})", code)
    return cls(message or f"native error (status {code})")
