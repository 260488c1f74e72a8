"""The exceptions of hypomnesis: one class per kind of the library's ``HypomnesisError``.

Every exception this package raises is a :class:`HypomnesisError`. Each kind carries the
library's structured fields as attributes (``NvmlError.code``, ``TimeoutError.after``, ...);
the message is English meant for a person and may be reworded between releases. Where Python
has a built-in exception for the same situation, the class derives from it as well, so
``except TimeoutError`` or ``except PermissionError`` catch what they should.
"""

from __future__ import annotations

import builtins
from typing import List, Optional, Tuple

__all__ = [
    "HypomnesisError",
    "IoError",
    "ParseError",
    "ProcessNotFoundError",
    "PermissionDeniedError",
    "NvmlError",
    "NvidiaSmiError",
    "DeviceIndexOutOfRangeError",
    "NoGpuSourceError",
    "TimeoutError",
    "UnsupportedError",
]


class HypomnesisError(Exception):
    """Base of every error raised by hypomnesis."""


class IoError(HypomnesisError):
    """A file under ``/proc`` or ``/sys`` (or another OS source) could not be read."""

    path: str
    detail: str
    errno: Optional[int]


class ParseError(HypomnesisError):
    """A file was read but its text did not have the expected shape."""

    what: str
    source_path: str
    detail: str


class ProcessNotFoundError(HypomnesisError, LookupError):
    """The process does not exist (or is not visible from this PID namespace)."""

    pid: int


class PermissionDeniedError(HypomnesisError, PermissionError):
    """The OS refused to reveal a process's memory."""

    pid: int
    detail: str


class NvmlError(HypomnesisError):
    """An NVML call failed; ``call`` is the entry point (or ``"load"``), ``code`` its
    ``nvmlReturn_t`` (9: driver not loaded, 18: version mismatch, ...)."""

    call: str
    code: Optional[int]
    detail: str


class NvidiaSmiError(HypomnesisError):
    """``nvidia-smi`` failed, exited non-zero, or printed something unexpected."""

    exit_code: Optional[int]
    detail: str


class DeviceIndexOutOfRangeError(HypomnesisError, IndexError):
    """A device index beyond the devices that exist."""

    index: int
    count: int


class NoGpuSourceError(HypomnesisError):
    """No backend could answer; ``attempts`` lists ``(backend, reason)`` for each one tried."""

    attempts: List[Tuple[str, str]]


class TimeoutError(HypomnesisError, builtins.TimeoutError):
    """A driver call or a subprocess did not answer within the probe's timeout and was
    abandoned, so the caller is not blocked. ``after`` is in seconds."""

    what: str
    after: float


class UnsupportedError(HypomnesisError):
    """The measurement does not exist on this platform or in this build."""

    what: str
    context: str
