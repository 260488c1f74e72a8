"""Type stubs of hypomnesis's native module. Bytes everywhere; ``None`` means unknown (see the
record's ``unavailable`` mapping for why); durations are seconds."""

import os
from typing import Any, Dict, List, Literal, Optional, Sequence, Union

_Path = Union[str, "os.PathLike[str]"]
_Metric = Literal["rss", "processes", "gpu", "device_used", "host_available", "cgroup_usage"]

class MemoryPressure:
    some_avg10: float
    some_avg60: float
    some_avg300: float
    some_total_us: int
    full_avg10: Optional[float]
    full_avg60: Optional[float]
    full_avg300: Optional[float]
    full_total_us: Optional[int]

class CgroupMemory:
    version: Literal["v1", "v2"]
    path: str
    limit_bytes: Optional[int]
    usage_bytes: Optional[int]
    peak_bytes: Optional[int]

class PageStates:
    page_size: int
    free_bytes: int
    active_bytes: int
    inactive_bytes: int
    speculative_bytes: int
    wired_bytes: int
    compressed_bytes: int
    compressed_original_bytes: int
    purgeable_bytes: int
    file_backed_bytes: int
    anonymous_bytes: int
    used_bytes: int

class HostMemory:
    total_bytes: int
    available_bytes: Optional[int]
    swap_total_bytes: Optional[int]
    swap_free_bytes: Optional[int]
    pressure: Optional[MemoryPressure]
    cgroup: Optional[CgroupMemory]
    memory_load_percent: Optional[int]
    commit_limit_bytes: Optional[int]
    commit_available_bytes: Optional[int]
    pressure_level: Optional[str]
    page_states: Optional[PageStates]

class ProcessMemory:
    pid: int
    rss_bytes: int
    peak_rss_bytes: Optional[int]
    swap_bytes: Optional[int]
    rss_anon_bytes: Optional[int]
    rss_file_bytes: Optional[int]
    pss_bytes: Optional[int]
    uss_bytes: Optional[int]
    private_bytes: Optional[int]
    resident_bytes: Optional[int]
    graphics_bytes: Optional[int]

class MigInstance:
    gpu_instance_id: Optional[int]
    compute_instance_id: Optional[int]
    uuid: Optional[str]
    total_bytes: Optional[int]
    free_bytes: Optional[int]
    used_bytes: Optional[int]

class GpuDeviceInfo:
    index: int
    name: Optional[str]
    vendor: str
    uuid: Optional[str]
    pci_bus_id: Optional[str]
    driver_version: Optional[str]
    cuda_driver_version: Optional[str]
    total_bytes: Optional[int]
    free_bytes: Optional[int]
    used_bytes: Optional[int]
    reserved_bytes: Optional[int]
    system_total_bytes: Optional[int]
    system_used_bytes: Optional[int]
    unified_memory: bool
    mig_instances: List[MigInstance]
    budget_bytes: Optional[int]
    budget_basis: Optional[str]
    #: Field name (``"free_bytes"``, ...) → why that figure is ``None``.
    unavailable: Dict[str, str]
    source: str

class SharedClient:
    client_id: Optional[int]
    holders: List[int]
    counted_for: int
    used_bytes: Optional[int]
    system_bytes: Optional[int]

class GpuProcessEntry:
    pid: int
    name: Optional[str]
    user: Optional[str]
    command: Optional[str]
    used_bytes: Optional[int]
    system_bytes: Optional[int]
    shared_bytes: Optional[int]
    device_index: int
    kind: Literal["compute", "graphics", "compute_and_graphics", "unknown"]
    gpu_instance_id: Optional[int]
    compute_instance_id: Optional[int]
    utilization_percent: Optional[float]
    rss_bytes: Optional[int]
    cgroup: Optional[str]
    source: str
    shared_clients: List[SharedClient]

class ProcessGpuInfo:
    process_bytes: Optional[int]
    device_used_bytes: Optional[int]
    upper_bound_bytes: int
    device_index: int
    source: str

class DeviceTelemetry:
    index: int
    gpu_utilization_percent: Optional[float]
    memory_utilization_percent: Optional[float]
    encoder_utilization_percent: Optional[float]
    decoder_utilization_percent: Optional[float]
    temperature_celsius: Optional[float]
    power_watts: Optional[float]
    power_limit_watts: Optional[float]
    sm_clock_mhz: Optional[int]
    memory_clock_mhz: Optional[int]
    fan_percent: Optional[float]
    pcie_link_generation: Optional[int]
    pcie_link_width: Optional[int]
    unavailable: Dict[str, str]
    source: str

class Snapshot:
    ram_bytes: int
    gpu: Optional[ProcessGpuInfo]
    gpu_device: Optional[GpuDeviceInfo]
    #: The exception a GPU query raised (a ``hypomnesis.HypomnesisError``), kept, not raised.
    gpu_error: Optional[Exception]
    telemetry: Optional[DeviceTelemetry]

class Probe:
    """A long-lived measuring session; keyword arguments override the library's defaults
    (and its ``HYPOMNESIS_*`` environment variables). Timeouts are seconds."""

    def __init__(
        self,
        *,
        nvml_lib: Optional[_Path] = None,
        proc_root: Optional[_Path] = None,
        sys_root: Optional[_Path] = None,
        nvidia_smi: Optional[_Path] = None,
        nvidia_smi_timeout: Optional[float] = None,
        use_nvml: Optional[bool] = None,
        use_nvidia_smi: Optional[bool] = None,
        driver_timeout: Optional[float] = None,
        ignore_environment: bool = False,
    ) -> None: ...
    def process_rss(self) -> int: ...
    def process_memory(self, pid: Optional[int] = None, *, pss: bool = False) -> ProcessMemory: ...
    def host_memory(self) -> HostMemory: ...
    def device_count(self) -> int: ...
    def devices(self) -> List[GpuDeviceInfo]: ...
    def device(self, index: int = 0) -> GpuDeviceInfo: ...
    def telemetry(self, index: int = 0) -> DeviceTelemetry: ...
    def processes(self, index: Optional[int] = None) -> List[GpuProcessEntry]: ...
    def process_gpu_info(self, index: int = 0) -> ProcessGpuInfo: ...
    def snapshot(self, index: int = 0) -> Snapshot: ...
    def snapshot_all(self) -> List[Snapshot]: ...
    def stuck_driver_call(self) -> Optional[float]: ...

def process_rss() -> int: ...
def process_memory(pid: Optional[int] = None, *, pss: bool = False) -> ProcessMemory: ...
def host_memory() -> HostMemory: ...
def device_count() -> int: ...
def devices() -> List[GpuDeviceInfo]: ...
def device(index: int = 0) -> GpuDeviceInfo: ...
def telemetry(index: int = 0) -> DeviceTelemetry: ...
def processes(index: Optional[int] = None) -> List[GpuProcessEntry]: ...
def process_gpu_info(index: int = 0) -> ProcessGpuInfo: ...
def snapshot(index: int = 0) -> Snapshot: ...
def snapshot_all() -> List[Snapshot]: ...

class Target:
    def __init__(
        self,
        kind: Literal["own_process", "pids", "tree", "device", "host"],
        value: Union[None, int, Sequence[int]] = None,
    ) -> None: ...
    @property
    def kind(self) -> str: ...
    @property
    def value(self) -> Union[None, int, List[int]]: ...

class Series:
    target: int
    metric: str
    device: Optional[int]

class Peak:
    min: int
    max: int
    mean: float
    last: int
    samples: int
    min_at: float
    max_at: float

class SeriesSummary:
    series: Series
    peak: Optional[Peak]
    missed: int

class ProcessPeak:
    pid: int
    peak_rss_bytes: int
    source: Literal["kernel_high_water_mark", "sampled"]

class TargetSummary:
    target: Target
    largest_process: Optional[ProcessPeak]
    processes_seen: int
    notes: List[str]

class HostSummary:
    total_bytes: Optional[int]
    cgroup: Optional[CgroupMemory]
    cgroup_peak_bytes: Optional[int]

class Timeline:
    series: List[Series]
    #: Seconds after the start: a list, or a NumPy float64 array when NumPy is installed.
    elapsed: Any
    dropped: int
    def values(self, target: int = 0, metric: _Metric = "rss", device: Optional[int] = None) -> Any:
        """A list of ``int | None``, or a NumPy float64 array (NaN: not measured)."""
    def __len__(self) -> int: ...

class Report:
    interval: float
    elapsed: float
    samples: int
    late_samples: int
    series: List[SeriesSummary]
    targets: List[TargetSummary]
    host: Optional[HostSummary]
    timeline: Optional[Timeline]
    sampler_cpu_time: Optional[float]
    notes: List[str]
    def peak(self, target: int = 0, metric: _Metric = "rss", device: Optional[int] = None) -> Optional[Peak]: ...

class Sampler:
    def __init__(
        self,
        targets: Optional[Sequence[Target]] = None,
        *,
        interval: float = 0.05,
        gpu_devices: Union[None, Literal["all"], Sequence[int]] = None,
        timeline: int = 0,
        probe: Optional[Probe] = None,
    ) -> None: ...
    def start(self) -> None: ...
    def stop(self) -> Report: ...
    def report(self) -> Report: ...
    @property
    def running(self) -> bool: ...
    def __enter__(self) -> "Sampler": ...
    def __exit__(self, *exc: object) -> bool: ...
