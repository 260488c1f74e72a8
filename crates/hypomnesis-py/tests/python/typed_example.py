"""An example program using hypomnesis's public API, checked with ``mypy --strict`` by the
test suite (it must type-check against the package's stubs without a single ignore)."""

from __future__ import annotations

from typing import Dict, List, Optional

import hypomnesis


def free_bytes_by_device() -> Dict[int, Optional[int]]:
    try:
        return {d.index: d.free_bytes for d in hypomnesis.devices()}
    except hypomnesis.NoGpuSourceError as e:
        for backend, reason in e.attempts:
            print(f"{backend}: {reason}")
        return {}


def why_unknown(gpu: hypomnesis.GpuDeviceInfo) -> List[str]:
    return [f"{field}: {reason}" for field, reason in gpu.unavailable.items()]


def peak_of(work_mib: int) -> Optional[int]:
    with hypomnesis.measure(children=False) as m:
        data = bytearray(work_mib << 20)
        del data
    report: Optional[hypomnesis.Report] = m.report
    if report is not None:
        peak: Optional[hypomnesis.Peak] = report.peak(0, "rss")
        print(report.interval, peak.max if peak else None)
    vram: Dict[int, int] = m.vram_peak_bytes
    print(vram)
    return m.ram_peak_bytes


def with_probe() -> int:
    probe = hypomnesis.Probe(driver_timeout=2.0, use_nvidia_smi=False)
    snap: hypomnesis.Snapshot = probe.snapshot(0)
    if snap.gpu_error is not None:
        print("no GPU figures:", snap.gpu_error)
    rss: int = probe.process_rss()
    host: hypomnesis.HostMemory = probe.host_memory()
    print(host.total_bytes, host.available_bytes)
    try:
        probe.telemetry(0)
    except hypomnesis.TimeoutError as e:
        print(e.after)
    except hypomnesis.HypomnesisError:
        pass
    return rss + snap.ram_bytes


def sampled() -> hypomnesis.Report:
    sampler = hypomnesis.Sampler(
        [hypomnesis.Target("own_process"), hypomnesis.Target("tree", 1), hypomnesis.Target("host")],
        interval=0.02,
        gpu_devices="all",
        timeline=1000,
    )
    sampler.start()
    report = sampler.stop()
    for summary in report.series:
        print(summary.series.metric, summary.series.device, summary.peak)
    if report.timeline is not None:
        print(len(report.timeline), report.timeline.values(0, "rss"))
    return report


measured = hypomnesis.measure()


@measured
def decorated(n: int) -> int:
    return n * 2


if __name__ == "__main__":
    print(free_bytes_by_device(), peak_of(8), with_probe(), sampled(), decorated(2))
    print(measured.report)
    rows: List[hypomnesis.GpuProcessEntry] = []
    try:
        rows = hypomnesis.processes()
    except hypomnesis.HypomnesisError:
        pass
    print([(r.pid, r.used_bytes, r.kind) for r in rows])
