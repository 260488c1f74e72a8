"""Times one call from Python, in this process: ``python_calls.py NAME`` prints
``NAME <median seconds per call> <calls per round>``.

Run by ``benches/python.rs`` (``cargo bench -p hypomnesis-py --bench python``), one process per
measurement so that no tool shares NVML state with another; NVIDIA's tools and hypomnesis
read the same NVML double, named by the environment the runner sets. Each figure is the
median over rounds of ``timeit`` (each round long enough for the clock, as ``timeit``'s own
``autorange`` decides), after a warm-up call that pays for loading and initialising NVML.
"""

from __future__ import annotations

import statistics
import sys
import timeit
from typing import Callable, Dict


def hypomnesis_process_rss() -> Callable[[], object]:
    import hypomnesis

    return hypomnesis.process_rss


def floor_python_call() -> Callable[[], object]:
    """The cheapest call into C there is: what any binding pays at least."""
    import os

    return os.getpid


def floor_pread_statm() -> Callable[[], object]:
    """One ``pread`` of a kept-open ``/proc/self/statm`` from Python: the syscall
    ``process_rss()`` makes, with no parsing."""
    import os

    fd = os.open("/proc/self/statm", os.O_RDONLY)
    return lambda: os.pread(fd, 128, 0)


def floor_thread_start_join() -> Callable[[], object]:
    """Starting and joining a thread that does nothing, from Python: the least a sampler
    around a block costs (``measure()`` starts one, samples, and joins it)."""
    import threading

    def block() -> None:
        t = threading.Thread(target=int)
        t.start()
        t.join()

    return block


def psutil_memory_info() -> Callable[[], object]:
    import psutil

    return lambda: psutil.Process().memory_info()


def psutil_kept_process_memory_info() -> Callable[[], object]:
    import psutil

    process = psutil.Process()
    return process.memory_info


def hypomnesis_device() -> Callable[[], object]:
    import hypomnesis

    return lambda: hypomnesis.device(0)


def pynvml_memory_info() -> Callable[[], object]:
    import pynvml

    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    return lambda: pynvml.nvmlDeviceGetMemoryInfo(handle)


def pynvml_device_figures() -> Callable[[], object]:
    """What ``hypomnesis.device(0)`` returns, through pynvml with the handle kept: memory
    (v2, with reserved), name, UUID, PCI bus id, driver version."""
    import pynvml

    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)

    def figures() -> object:
        return (
            pynvml.nvmlDeviceGetMemoryInfo(handle, version=pynvml.nvmlMemory_v2),
            pynvml.nvmlDeviceGetName(handle),
            pynvml.nvmlDeviceGetUUID(handle),
            pynvml.nvmlDeviceGetPciInfo(handle).busId,
            pynvml.nvmlSystemGetDriverVersion(),
        )

    return figures


def pynvml_init_query_shutdown() -> Callable[[], object]:
    """The way most scripts ask pynvml once: init, handle, memory, shutdown."""
    import pynvml

    def once() -> object:
        pynvml.nvmlInit()
        try:
            return pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(0))
        finally:
            pynvml.nvmlShutdown()

    return once


def nvitop_device_memory_info() -> Callable[[], object]:
    from nvitop import Device

    return lambda: Device(0).memory_info()


def nvitop_kept_device_memory_info() -> Callable[[], object]:
    from nvitop import Device

    device = Device(0)
    return device.memory_info


def hypomnesis_measure_empty() -> Callable[[], object]:
    import hypomnesis

    def block() -> None:
        with hypomnesis.measure():
            pass

    return block


CALLS: Dict[str, Callable[[], Callable[[], object]]] = {
    f.__name__: f
    for f in [
        floor_python_call,
        floor_pread_statm,
        floor_thread_start_join,
        hypomnesis_process_rss,
        psutil_memory_info,
        psutil_kept_process_memory_info,
        hypomnesis_device,
        pynvml_memory_info,
        pynvml_device_figures,
        pynvml_init_query_shutdown,
        nvitop_device_memory_info,
        nvitop_kept_device_memory_info,
        hypomnesis_measure_empty,
    ]
}


def main() -> None:
    name = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    call = CALLS[name]()
    call()  # load and initialise what the call needs
    timer = timeit.Timer(call)
    number, _ = timer.autorange()
    per_call = [t / number for t in timer.repeat(repeat=rounds, number=number)]
    print(name, statistics.median(per_call), number)


if __name__ == "__main__":
    main()
