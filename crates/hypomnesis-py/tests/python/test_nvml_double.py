"""The package against the NVML double: the scenarios of the Rust tests
(`crates/hypomnesis/tests/nvml_double.rs`), read through Python. Expected values come from the
scenario files themselves."""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, List

import pytest

import hypomnesis
from conftest import scenario_variant


def device_declared(declared: Dict[str, Any], index: int = 0) -> Dict[str, Any]:
    value: Dict[str, Any] = declared["devices"][index]
    return value


def unique_pids(device: Dict[str, Any]) -> List[int]:
    pids = {p["pid"] for p in device.get("compute_processes", []) + device.get("graphics_processes", [])}
    return sorted(pids)


@pytest.mark.scenario("no_gpus")
def test_no_gpus_means_zero_devices_and_ram_still_measured(declared: Dict[str, Any]) -> None:
    assert hypomnesis.device_count() == 0
    assert hypomnesis.devices() == []
    with pytest.raises(hypomnesis.DeviceIndexOutOfRangeError) as raised:
        hypomnesis.device(0)
    assert (raised.value.index, raised.value.count) == (0, 0)
    assert isinstance(raised.value, IndexError)
    snap = hypomnesis.snapshot(0)
    assert snap.ram_bytes > 0
    assert snap.gpu_device is None
    assert isinstance(snap.gpu_error, hypomnesis.HypomnesisError)


@pytest.mark.scenario("one_gpu")
def test_one_gpu_reports_its_memory_and_identity_in_bytes(declared: Dict[str, Any]) -> None:
    want = device_declared(declared)
    gpu = hypomnesis.device(0)
    assert gpu.index == 0
    assert gpu.name == want["name"]
    assert gpu.uuid == want["uuid"]
    assert gpu.pci_bus_id == want["pci_bus_id"]
    assert gpu.driver_version == declared["driver_version"]
    assert gpu.total_bytes == want["memory"]["total"]
    assert gpu.free_bytes == want["memory"]["free"]
    assert gpu.used_bytes == want["memory"]["used"]
    assert gpu.reserved_bytes == want["memory"]["reserved"]
    assert (gpu.vendor, gpu.source, gpu.unified_memory) == ("nvidia", "nvml", False)
    assert gpu.unavailable == {}
    assert [d.uuid for d in hypomnesis.devices()] == [want["uuid"]]
    assert hypomnesis.device_count() == 1
    assert "NVIDIA H100" in repr(gpu)


@pytest.mark.scenario("one_gpu")
def test_a_pid_in_both_lists_is_one_row_with_the_larger_figure(declared: Dict[str, Any]) -> None:
    want = device_declared(declared)
    rows = hypomnesis.processes(0)
    assert [r.pid for r in rows] == unique_pids(want)
    compute = {p["pid"]: p["used_gpu_memory"] for p in want["compute_processes"]}
    graphics = {p["pid"]: p["used_gpu_memory"] for p in want["graphics_processes"]}
    both = set(compute) & set(graphics)
    assert both, "the scenario must have a pid in both lists"
    for row in rows:
        assert row.device_index == 0
        assert row.source == "nvml"
        if row.pid in both:
            assert row.kind == "compute_and_graphics"
            assert row.used_bytes == max(compute[row.pid], graphics[row.pid])
        else:
            assert row.used_bytes == compute.get(row.pid, graphics.get(row.pid))
    # index=None lists every device: the same rows on a one-GPU machine.
    assert [r.pid for r in hypomnesis.processes()] == [r.pid for r in rows]


@pytest.mark.scenario("four_gpus")
def test_four_gpus_are_enumerated_and_a_process_on_two_appears_on_each(declared: Dict[str, Any]) -> None:
    devices = hypomnesis.devices()
    assert [d.index for d in devices] == [0, 1, 2, 3]
    assert [d.uuid for d in devices] == [d["uuid"] for d in declared["devices"]]
    rows = hypomnesis.processes()
    per_pid: Dict[int, List[int]] = {}
    for row in rows:
        per_pid.setdefault(row.pid, []).append(row.device_index)
    assert any(len(set(devs)) >= 2 for devs in per_pid.values())
    assert len(rows) == sum(len(unique_pids(d)) for d in declared["devices"])


@pytest.mark.scenario("pre_r510")
def test_pre_r510_driver_has_no_reserved_figure_and_says_why(declared: Dict[str, Any]) -> None:
    gpu = hypomnesis.device(0)
    assert gpu.total_bytes == device_declared(declared)["memory"]["total"]
    assert gpu.reserved_bytes is None
    assert gpu.unavailable["reserved_bytes"]


@pytest.mark.scenario("sentinel")
def test_not_available_sentinel_becomes_none_never_a_number(declared: Dict[str, Any]) -> None:
    rows = {r.pid: r for r in hypomnesis.processes(0)}
    for p in device_declared(declared)["compute_processes"] + device_declared(declared)["graphics_processes"]:
        if p["used_gpu_memory"] == 2**64 - 1:
            assert rows[p["pid"]].used_bytes is None
        else:
            assert rows[p["pid"]].used_bytes == p["used_gpu_memory"]


@pytest.mark.scenario("used_gt_total")
def test_used_greater_than_total_is_dropped_with_a_reason(declared: Dict[str, Any]) -> None:
    gpu = hypomnesis.device(0)
    assert gpu.used_bytes is None
    assert gpu.unavailable["used_bytes"]


@pytest.mark.scenario("init_driver_not_loaded")
def test_driver_not_loaded_says_so_and_ram_still_works(declared: Dict[str, Any]) -> None:
    with pytest.raises(hypomnesis.NoGpuSourceError) as raised:
        hypomnesis.device_count()
    reasons = dict(raised.value.attempts)
    assert "Driver Not Loaded" in reasons["nvml"]
    assert "driver is not loaded" in reasons["nvml"]
    snap = hypomnesis.snapshot(0)
    assert snap.ram_bytes > 0
    assert isinstance(snap.gpu_error, hypomnesis.NoGpuSourceError)
    assert hypomnesis.process_rss() > 0


@pytest.mark.scenario("init_version_mismatch")
def test_version_mismatch_is_reported_with_its_remedy(declared: Dict[str, Any]) -> None:
    with pytest.raises(hypomnesis.HypomnesisError) as raised:
        hypomnesis.device(0)
    assert "version mismatch" in str(raised.value)
    assert "reboot or reinstall" in str(raised.value)


@pytest.mark.scenario("no_permission")
def test_refused_process_list_is_an_error_not_an_empty_list(declared: Dict[str, Any]) -> None:
    with pytest.raises(hypomnesis.NoGpuSourceError) as raised:
        hypomnesis.processes(0)
    assert "Insufficient Permissions" in dict(raised.value.attempts)["nvml"]
    assert hypomnesis.device(0).total_bytes is not None


@pytest.mark.scenario("count_grows")
def test_process_list_that_grows_between_calls_is_read_completely(declared: Dict[str, Any]) -> None:
    want = unique_pids(device_declared(declared))
    assert len(want) > 64
    assert [r.pid for r in hypomnesis.processes(0)] == want


@pytest.mark.scenario("mig")
def test_mig_instances_and_their_ids_are_kept(declared: Dict[str, Any]) -> None:
    rows = hypomnesis.processes(0)
    declared_ids = {
        (p["gpu_instance_id"], p["compute_instance_id"]) for p in device_declared(declared)["compute_processes"]
    }
    assert {(r.gpu_instance_id, r.compute_instance_id) for r in rows} == declared_ids
    gpu = hypomnesis.device(0)
    assert gpu.mig_instances, "a MIG device lists its instances"
    assert all(m.total_bytes is not None for m in gpu.mig_instances)
    assert gpu.budget_basis == "mig_instance_free"


@pytest.mark.scenario("unified_memory")
def test_unified_memory_device_is_flagged_not_reported_as_zero(declared: Dict[str, Any]) -> None:
    gpu = hypomnesis.device(0)
    assert gpu.unified_memory
    assert gpu.total_bytes is None and gpu.free_bytes is None
    assert "unified" in gpu.unavailable["total_bytes"]
    assert all(r.used_bytes for r in hypomnesis.processes(0))


@pytest.mark.scenario("telemetry")
def test_telemetry_figures_come_with_reasons_for_the_missing(declared: Dict[str, Any]) -> None:
    t = hypomnesis.telemetry(0)
    assert t.index == 0 and t.source == "nvml"
    figures = [
        t.gpu_utilization_percent,
        t.temperature_celsius,
        t.power_watts,
        t.sm_clock_mhz,
    ]
    assert any(f is not None for f in figures)
    for field, reason in t.unavailable.items():
        assert getattr(t, field) is None, field
        assert reason


def hung_memory_query() -> str:
    return str(
        scenario_variant(
            "one_gpu",
            "python_hung_memory_query",
            lambda s: s["devices"][0].update({"delays_ms": {"nvmlDeviceGetMemoryInfo_v2": 60000}}),
        )
    )


@pytest.mark.scenario.with_args(hung_memory_query)
def test_a_hung_driver_call_raises_timeout_error_instead_of_hanging(declared: Dict[str, Any]) -> None:
    probe = hypomnesis.Probe(driver_timeout=0.3)
    with pytest.raises(hypomnesis.TimeoutError) as raised:
        probe.device(0)
    assert isinstance(raised.value, TimeoutError)
    assert raised.value.after == pytest.approx(0.3)
    # While the abandoned call stays in the driver, GPU questions fail at once, RAM still works.
    assert probe.stuck_driver_call() is not None
    with pytest.raises(hypomnesis.TimeoutError):
        probe.device(0)
    assert probe.process_rss() > 0
    snap = probe.snapshot(0)
    assert isinstance(snap.gpu_error, hypomnesis.TimeoutError)


@pytest.mark.scenario.with_args(hung_memory_query)
def test_a_driver_call_releases_the_gil(declared: Dict[str, Any]) -> None:
    probe = hypomnesis.Probe(driver_timeout=3.0)
    entered = threading.Event()
    outcome: List[BaseException] = []

    def call() -> None:
        entered.set()
        try:
            probe.device(0)
        except BaseException as e:  # noqa: BLE001 - recorded for the assertion below
            outcome.append(e)

    worker = threading.Thread(target=call)
    worker.start()
    entered.wait()
    time.sleep(0.5)
    # Had the call kept the GIL, this thread could only get here after it returned (3 s).
    assert worker.is_alive(), "the main thread ran only after the driver call returned"
    worker.join()
    assert isinstance(outcome[0], hypomnesis.TimeoutError)


@pytest.mark.scenario("one_gpu")
def test_a_probe_takes_the_builders_overrides(declared: Dict[str, Any]) -> None:
    import os

    lib = os.environ["HYPOMNESIS_NVML_LIB"]
    # Ignoring the environment, NVML is the platform's (absent here): no device.
    bare = hypomnesis.Probe(ignore_environment=True, use_nvidia_smi=False, sys_root="/nonexistent")
    with pytest.raises(hypomnesis.NoGpuSourceError):
        bare.device(0)
    # Named explicitly, the double answers.
    named = hypomnesis.Probe(ignore_environment=True, nvml_lib=lib, use_nvidia_smi=False)
    assert named.device(0).uuid == device_declared(declared)["uuid"]
    # NVML turned off: not loaded, and the error says why.
    off = hypomnesis.Probe(use_nvml=False, use_nvidia_smi=False, sys_root="/nonexistent")
    with pytest.raises(hypomnesis.NoGpuSourceError) as raised:
        off.device(0)
    assert dict(raised.value.attempts)["nvml"] == "disabled by the caller"
    with pytest.raises(ValueError):
        hypomnesis.Probe(driver_timeout=-1.0)


def own_process_steps() -> str:
    return str(scenario_variant("gpu_steps", "python_gpu_steps_template", lambda s: None))


@pytest.mark.scenario.with_args(own_process_steps)
def test_measure_gives_the_vram_peak_of_the_block(declared: Dict[str, Any]) -> None:
    import os

    # The scenario is read at NVML's first init in this process: make this process the one
    # whose GPU memory steps up from 2 GiB to 12 GiB at 1.0 s and down to 4 GiB at 2.0 s.
    steps = declared["devices"][0]["compute_processes"][0]
    steps["pid"] = os.getpid()
    path = scenario_variant("gpu_steps", f"python_gpu_steps_{os.getpid()}", lambda s: s.update(declared))
    os.environ["NVML_DOUBLE_SCENARIO"] = str(path)
    with hypomnesis.measure() as m:
        time.sleep(1.3)
    assert m.vram_peak_bytes == {0: steps["used_gpu_memory_steps"][0][1]}
    assert m.report is not None
    peak = m.report.peak(0, "gpu", device=0)
    assert peak is not None and peak.min == steps["used_gpu_memory"]


@pytest.mark.scenario("reserved")
def test_reserved_memory_is_reported_and_the_parts_add_up_to_the_total(declared: Dict[str, Any]) -> None:
    gpu = hypomnesis.device(0)
    reserved = device_declared(declared)["memory"]["reserved"]
    assert reserved > 0 and gpu.reserved_bytes == reserved
    assert gpu.total_bytes is not None and gpu.free_bytes is not None and gpu.used_bytes is not None
    assert abs(gpu.total_bytes - (reserved + gpu.free_bytes + gpu.used_bytes)) <= 1 << 20


@pytest.mark.scenario("early_r535")
def test_early_r535_32_byte_process_entries_are_read_right(declared: Dict[str, Any]) -> None:
    want = device_declared(declared)
    assert want["process_info_stride"] == 32, "the scenario plays the trap"
    rows = {r.pid: r for r in hypomnesis.processes(0)}
    assert sorted(rows) == unique_pids(want)
    for p in want["compute_processes"] + want["graphics_processes"]:
        row = rows[p["pid"]]
        assert row.used_bytes == p["used_gpu_memory"]
        assert (row.gpu_instance_id, row.compute_instance_id) == (None, None)


@pytest.mark.scenario("memory_v2_not_supported")
def test_memory_v2_not_supported_falls_back_to_v1_and_says_why_reserved_is_unknown(
    declared: Dict[str, Any],
) -> None:
    memory = device_declared(declared)["memory"]
    gpu = hypomnesis.device(0)
    assert not gpu.unified_memory
    assert (gpu.total_bytes, gpu.free_bytes) == (memory["total"], memory["free"])
    assert gpu.reserved_bytes is None
    assert "NOT_SUPPORTED" in gpu.unavailable["reserved_bytes"]


@pytest.mark.scenario("parts_exceed_total")
def test_device_parts_adding_up_past_the_total_are_refused(declared: Dict[str, Any]) -> None:
    gpu = hypomnesis.device(0)
    assert (gpu.free_bytes, gpu.used_bytes, gpu.reserved_bytes) == (None, None, None)
    assert "impossible" in gpu.unavailable["free_bytes"]


@pytest.mark.scenario("gpu_lost")
def test_a_gpu_that_stops_answering_raises_nvml_error_and_fails_alone(declared: Dict[str, Any]) -> None:
    assert hypomnesis.telemetry(1).gpu_utilization_percent == 3.0
    time.sleep(1.6)  # GPU 1 falls off the bus 1.5 s after init
    with pytest.raises(hypomnesis.NvmlError) as raised:
        hypomnesis.telemetry(1)
    assert raised.value.code == 15
    assert hypomnesis.telemetry(0).gpu_utilization_percent == 55.0
    snaps = hypomnesis.snapshot_all()
    assert len(snaps) == 2 and snaps[0].gpu_device is not None
