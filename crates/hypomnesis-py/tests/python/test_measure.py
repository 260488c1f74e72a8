"""measure(), the decorator, Sampler and the errors' shape, without a GPU: RAM figures of this
process and its children, series as lists or NumPy arrays."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import hypomnesis

MIB = 1 << 20


def test_process_rss_is_this_processs_resident_memory_in_bytes() -> None:
    rss = hypomnesis.process_rss()
    assert rss == hypomnesis.Probe().process_rss() or abs(rss - hypomnesis.Probe().process_rss()) < 64 * MIB
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    assert abs(rss - resident_pages * os.sysconf("SC_PAGE_SIZE")) < 16 * MIB
    me = hypomnesis.process_memory()
    assert me.pid == os.getpid() and me.peak_rss_bytes is not None and me.peak_rss_bytes >= me.rss_bytes


def test_host_memory_has_the_total_in_bytes() -> None:
    host = hypomnesis.host_memory()
    with open("/proc/meminfo") as f:
        total_kib = int(f.readline().split()[1])
    assert host.total_bytes == total_kib * 1024


def test_a_missing_process_raises_process_not_found_with_its_pid() -> None:
    with pytest.raises(hypomnesis.ProcessNotFoundError) as raised:
        hypomnesis.process_memory(2**22 + 12345)
    assert raised.value.pid == 2**22 + 12345
    assert isinstance(raised.value, LookupError)
    assert isinstance(raised.value, hypomnesis.HypomnesisError)


def test_a_bad_proc_root_raises_io_error_naming_the_file() -> None:
    probe = hypomnesis.Probe(proc_root="/nonexistent-proc")
    with pytest.raises(hypomnesis.IoError) as raised:
        probe.process_rss()
    assert raised.value.path.startswith("/nonexistent-proc")
    assert raised.value.errno == 2


def test_measure_gives_the_ram_peak_of_the_block() -> None:
    with hypomnesis.measure() as m:
        block = bytearray(96 * MIB)
        block[:: 4096] = b"\1" * (len(block) // 4096)
        del block
    assert m.report is not None
    assert m.ram_peak_bytes is not None and m.ram_peak_bytes >= 96 * MIB
    assert m.report.interval == pytest.approx(0.01)
    assert m.report.samples >= 2
    assert m.report.targets[0].target.kind == "own_process"


def test_the_decorator_measures_every_call_and_keeps_the_last_report() -> None:
    m = hypomnesis.measure()

    @m
    def allocate(n: int) -> int:
        data = bytearray(n)
        data[::4096] = b"\1" * (n // 4096)
        return len(data)

    assert allocate(48 * MIB) == 48 * MIB
    assert allocate.measure is m  # type: ignore[attr-defined]
    assert m.ram_peak_bytes is not None and m.ram_peak_bytes >= 48 * MIB
    assert allocate.__name__ == "allocate"


def test_measure_with_children_counts_the_childrens_memory() -> None:
    child = textwrap.dedent(
        """
        import time
        data = bytearray(200 << 20)
        data[::4096] = b"\\1" * ((200 << 20) // 4096)
        time.sleep(0.5)
        """
    )
    with hypomnesis.measure(children=True) as tree:
        subprocess.run([sys.executable, "-c", child], check=True)
    with hypomnesis.measure() as alone:
        subprocess.run([sys.executable, "-c", child], check=True)
    assert tree.report is not None and tree.report.targets[0].target.kind == "tree"
    assert tree.ram_peak_bytes is not None and alone.ram_peak_bytes is not None
    assert tree.ram_peak_bytes >= alone.ram_peak_bytes + 150 * MIB


def test_sampler_series_are_lists_without_numpy() -> None:
    script = textwrap.dedent(
        """
        import sys, time
        sys.modules["numpy"] = None  # NumPy cannot be imported
        import hypomnesis
        s = hypomnesis.Sampler([hypomnesis.Target("own_process"), hypomnesis.Target("host")],
                               interval=0.005, timeline=100)
        s.start(); time.sleep(0.1); report = s.stop()
        t = report.timeline
        rss = t.values(0, "rss")
        assert type(t.elapsed) is list and type(rss) is list, (type(t.elapsed), type(rss))
        assert len(rss) == len(t.elapsed) == len(t) >= 3
        assert all(isinstance(v, int) and v > 0 for v in rss)
        assert all(isinstance(v, int) for v in t.values(1, "host_available"))
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_sampler_series_are_numpy_arrays_with_numpy() -> None:
    np = pytest.importorskip("numpy", reason="the suite's venv installs numpy; absent means a broken install")
    with hypomnesis.Sampler([hypomnesis.Target("own_process")], interval=0.005, timeline=100) as s:
        import time

        time.sleep(0.1)
    report = s.report()
    assert report.timeline is not None
    rss = report.timeline.values(0, "rss")
    assert isinstance(rss, np.ndarray) and rss.dtype == np.float64
    assert len(rss) == len(report.timeline.elapsed) >= 3
    assert (rss > 0).all()
    peak = report.peak(0, "rss")
    assert peak is not None and peak.max == int(rss.max()) or peak is not None and peak.max >= rss.max()


def test_sampler_misuse_is_a_clear_error() -> None:
    s = hypomnesis.Sampler()
    with pytest.raises(RuntimeError, match="not running"):
        s.stop()
    s.start()
    with pytest.raises(RuntimeError, match="already running"):
        s.start()
    assert s.running
    s.stop()
    with pytest.raises(ValueError, match="unknown target kind"):
        hypomnesis.Target("gpu")
    with pytest.raises(ValueError, match="needs"):
        hypomnesis.Target("tree")
    with pytest.raises(ValueError, match="unknown metric"):
        s.report().peak(0, "vram")  # type: ignore[arg-type]


def test_the_stubs_pass_mypy_strict_on_the_example(tmp_path: object) -> None:
    from pathlib import Path

    example = Path(__file__).with_name("typed_example.py")
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(example)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
