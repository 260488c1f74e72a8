"""hypomnesis — process RAM and GPU memory, measured from outside the code that uses it.

Every figure is in bytes; what cannot be measured is ``None``, and the record's
``unavailable`` mapping says why. The functions share one long-lived probe (NVML loaded and
initialised once), so a call costs microseconds; build a :class:`Probe` to override the NVML
library, the ``/proc`` and ``/sys`` roots, the ``nvidia-smi`` executable, or to bound every
GPU call with ``driver_timeout``.

>>> import hypomnesis
>>> hypomnesis.process_rss() > 0
True
>>> with hypomnesis.measure() as m:
...     data = bytearray(64 << 20)
>>> m.ram_peak_bytes >= 64 << 20
True
"""

from __future__ import annotations

import functools
import os
from types import TracebackType
from typing import Any, Callable, Dict, Optional, Type, TypeVar, cast

from . import _native
from ._errors import (
    DeviceIndexOutOfRangeError,
    HypomnesisError,
    IoError,
    NoGpuSourceError,
    NvidiaSmiError,
    NvmlError,
    ParseError,
    PermissionDeniedError,
    ProcessNotFoundError,
    TimeoutError,
    UnsupportedError,
)
from ._native import (
    CgroupMemory,
    DeviceTelemetry,
    GpuDeviceInfo,
    GpuProcessEntry,
    HostMemory,
    HostSummary,
    MemoryPressure,
    MigInstance,
    PageStates,
    Peak,
    Probe,
    ProcessGpuInfo,
    ProcessMemory,
    ProcessPeak,
    Report,
    Sampler,
    Series,
    SeriesSummary,
    SharedClient,
    Snapshot,
    Target,
    TargetSummary,
    Timeline,
    device,
    device_count,
    devices,
    host_memory,
    process_gpu_info,
    process_memory,
    process_rss,
    processes,
    snapshot,
    snapshot_all,
    telemetry,
)

__all__ = [
    "CgroupMemory",
    "DeviceIndexOutOfRangeError",
    "DeviceTelemetry",
    "GpuDeviceInfo",
    "GpuProcessEntry",
    "HostMemory",
    "HostSummary",
    "HypomnesisError",
    "IoError",
    "Measure",
    "MemoryPressure",
    "MigInstance",
    "NoGpuSourceError",
    "NvidiaSmiError",
    "NvmlError",
    "PageStates",
    "ParseError",
    "Peak",
    "PermissionDeniedError",
    "Probe",
    "ProcessGpuInfo",
    "ProcessMemory",
    "ProcessNotFoundError",
    "ProcessPeak",
    "Report",
    "Sampler",
    "Series",
    "SeriesSummary",
    "SharedClient",
    "Snapshot",
    "Target",
    "TargetSummary",
    "TimeoutError",
    "Timeline",
    "UnsupportedError",
    "device",
    "device_count",
    "devices",
    "host_memory",
    "measure",
    "process_gpu_info",
    "process_memory",
    "process_rss",
    "processes",
    "snapshot",
    "snapshot_all",
    "telemetry",
]

F = TypeVar("F", bound=Callable[..., Any])

#: The interval of :func:`measure`, seconds (the library's ``MEASURE_INTERVAL``).
MEASURE_INTERVAL = 0.01


class Measure:
    """The peaks of RAM and VRAM of this process (and with ``children=True`` its descendants)
    over a ``with`` block or a decorated function's calls. See :func:`measure`."""

    def __init__(
        self,
        children: bool = False,
        interval: float = MEASURE_INTERVAL,
        probe: Optional[Probe] = None,
    ) -> None:
        self.children = children
        self.interval = interval
        self.probe = probe
        #: The report of the last block, as the Rust ``Report`` (``None`` before one ended).
        self.report: Optional[Report] = None
        self._sampler: Optional[Sampler] = None

    def __enter__(self) -> "Measure":
        target = Target("tree", os.getpid()) if self.children else Target("own_process")
        sampler = Sampler(
            [target], interval=self.interval, gpu_devices="all", probe=self.probe
        )
        sampler.start()
        self._sampler = sampler
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        sampler, self._sampler = self._sampler, None
        if sampler is not None:
            self.report = sampler.stop()

    def __call__(self, func: F) -> F:
        """Measure every call of ``func``; the last call's report is ``func.measure.report``."""

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self:
                return func(*args, **kwargs)

        wrapper.measure = self  # type: ignore[attr-defined]
        return cast(F, wrapper)

    @property
    def ram_peak_bytes(self) -> Optional[int]:
        """The RAM peak over the block, bytes: the larger of the sampled peak (of the sum over
        the tree, with ``children=True``) and the kernel's high-water mark of the largest
        process when it counts for this block. ``None`` before a block ended."""
        report = self.report
        if report is None:
            return None
        figures = []
        peak = report.peak(0, "rss")
        if peak is not None:
            figures.append(peak.max)
        largest = report.targets[0].largest_process if report.targets else None
        if largest is not None:
            figures.append(largest.peak_rss_bytes)
        return max(figures) if figures else None

    @property
    def vram_peak_bytes(self) -> Dict[int, int]:
        """The sampled peak of this process's (or tree's) GPU memory, bytes, per device index;
        devices that could not be measured are absent."""
        report = self.report
        if report is None:
            return {}
        return {
            s.series.device: s.peak.max
            for s in report.series
            if s.series.target == 0
            and s.series.metric == "gpu"
            and s.series.device is not None
            and s.peak is not None
        }

    def __repr__(self) -> str:
        return (
            f"Measure(children={self.children}, ram_peak_bytes={self.ram_peak_bytes}, "
            f"vram_peak_bytes={self.vram_peak_bytes})"
        )


def measure(
    children: bool = False,
    interval: float = MEASURE_INTERVAL,
    probe: Optional[Probe] = None,
) -> Measure:
    """Samples this process (``children=True``: and its descendants) every ``interval``
    seconds, with its GPU memory on every visible device, over a ``with`` block or every
    call of a decorated function::

        with hypomnesis.measure() as m:
            train()
        print(m.ram_peak_bytes, m.vram_peak_bytes, m.report)

        @hypomnesis.measure(children=True)
        def build() -> None: ...
        build(); print(build.measure.report)
    """
    return Measure(children=children, interval=interval, probe=probe)
