"""Reads everything hypomnesis cares about through NVIDIA's own binding (pynvml, from the
nvidia-ml-py package) and prints it as one JSON document on stdout.

Run by tests/pynvml_fidelity.rs with LD_LIBRARY_PATH pointing at a copy of the NVML double
(as libnvidia-ml.so.1) and NVML_DOUBLE_SCENARIO naming the scenario. Arguments: pids whose
process name to ask for (nvmlSystemGetProcessName).

Every call is recorded as {"value": ...} or {"error": <NVML code>}; a pynvml wrapper that
turns a missing symbol into NVMLLibraryMismatchError is recorded as
{"error": 13, "library_mismatch": true}. Process lists are retried (at most 3 attempts) while
they fail with INSUFFICIENT_SIZE, as a careful caller would; the failed attempts' codes are
listed under "attempts".
"""

import json
import sys

import pynvml

MAX_LIST_ATTEMPTS = 3


def call(fn, *args, **kwargs):
    try:
        return {"value": fn(*args, **kwargs)}
    except pynvml.NVMLError as e:
        return {"error": e.value}
    except pynvml.NVMLLibraryMismatchError:
        return {"error": pynvml.NVML_ERROR_FUNCTION_NOT_FOUND, "library_mismatch": True}


def process(p):
    return {
        "pid": p.pid,
        "usedGpuMemory": p.usedGpuMemory,  # None when NVML said "not available"
        "gpuInstanceId": p.gpuInstanceId,
        "computeInstanceId": p.computeInstanceId,
    }


def listing(fn, handle):
    attempts = []
    for attempt in range(MAX_LIST_ATTEMPTS):
        out = call(lambda: [process(p) for p in fn(handle)])
        if (
            out.get("error") == pynvml.NVML_ERROR_INSUFFICIENT_SIZE
            and attempt + 1 < MAX_LIST_ATTEMPTS
        ):
            attempts.append(out["error"])
            continue
        out["attempts"] = attempts
        return out


def memory_v1(handle):
    m = pynvml.nvmlDeviceGetMemoryInfo(handle)
    return {"total": m.total, "free": m.free, "used": m.used}


def memory_v2(handle):
    m = pynvml.nvmlDeviceGetMemoryInfo(handle, version=pynvml.nvmlMemory_v2)
    return {
        "version": m.version,
        "total": m.total,
        "reserved": m.reserved,
        "free": m.free,
        "used": m.used,
    }


def mig_devices(handle):
    out = []
    for i in range(pynvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
        try:
            mig = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, i)
        except pynvml.NVMLError as e:
            if e.value == pynvml.NVML_ERROR_NOT_FOUND:
                continue
            raise
        out.append(
            {
                "gpu_instance_id": pynvml.nvmlDeviceGetGpuInstanceId(mig),
                "compute_instance_id": pynvml.nvmlDeviceGetComputeInstanceId(mig),
                "uuid": text(pynvml.nvmlDeviceGetUUID(mig)),
                "memory_v2": memory_v2(mig),
            }
        )
    return out


def text(s):
    # pynvml hands some char arrays back as bytes, some (decoded by its structures) as str.
    return s.decode() if isinstance(s, bytes) else s


def pci(handle):
    p = pynvml.nvmlDeviceGetPciInfo_v3(handle)
    return {
        "busId": text(p.busId),
        "busIdLegacy": text(p.busIdLegacy),
        "domain": p.domain,
        "bus": p.bus,
        "device": p.device,
        "pciDeviceId": p.pciDeviceId,
        "pciSubSystemId": p.pciSubSystemId,
    }


def sample(s):
    return {
        "pid": s.pid,
        "timeStamp": s.timeStamp,
        "smUtil": s.smUtil,
        "memUtil": s.memUtil,
        "encUtil": s.encUtil,
        "decUtil": s.decUtil,
    }


def process_utilization(h):
    # Every buffered sample (timestamp 0), then again from the newest one seen: the second
    # call has nothing new and answers NOT_FOUND.
    first = call(lambda: [sample(s) for s in pynvml.nvmlDeviceGetProcessUtilization(h, 0)])
    newest = max((s["timeStamp"] for s in first.get("value", [])), default=0)
    again = call(lambda: [sample(s) for s in pynvml.nvmlDeviceGetProcessUtilization(h, newest)])
    return {"all": first, "since_newest": again}


def telemetry(h):
    def rates():
        u = pynvml.nvmlDeviceGetUtilizationRates(h)
        return {"gpu": u.gpu, "memory": u.memory}

    return {
        "utilization": call(rates),
        "temperature": call(pynvml.nvmlDeviceGetTemperature, h, pynvml.NVML_TEMPERATURE_GPU),
        "power_usage": call(pynvml.nvmlDeviceGetPowerUsage, h),
        "enforced_power_limit": call(pynvml.nvmlDeviceGetEnforcedPowerLimit, h),
        "clock_graphics": call(pynvml.nvmlDeviceGetClockInfo, h, pynvml.NVML_CLOCK_GRAPHICS),
        "clock_sm": call(pynvml.nvmlDeviceGetClockInfo, h, pynvml.NVML_CLOCK_SM),
        "clock_memory": call(pynvml.nvmlDeviceGetClockInfo, h, pynvml.NVML_CLOCK_MEM),
        "fan_speed": call(pynvml.nvmlDeviceGetFanSpeed, h),
        "fan_speed_v2": call(pynvml.nvmlDeviceGetFanSpeed_v2, h, 0),
        "pcie_generation": call(pynvml.nvmlDeviceGetCurrPcieLinkGeneration, h),
        "pcie_width": call(pynvml.nvmlDeviceGetCurrPcieLinkWidth, h),
        "encoder": call(pynvml.nvmlDeviceGetEncoderUtilization, h),
        "decoder": call(pynvml.nvmlDeviceGetDecoderUtilization, h),
        "process_utilization": process_utilization(h),
    }


def device(index):
    got = call(pynvml.nvmlDeviceGetHandleByIndex, index)
    if "error" in got:
        return {"handle": got}
    h = got["value"]
    return {
        "handle": {"value": None},
        "index": call(pynvml.nvmlDeviceGetIndex, h),
        "name": call(lambda: text(pynvml.nvmlDeviceGetName(h))),
        "uuid": call(lambda: text(pynvml.nvmlDeviceGetUUID(h))),
        "pci": call(pci, h),
        "memory_v1": call(memory_v1, h),
        "memory_v2": call(memory_v2, h),
        "compute": listing(pynvml.nvmlDeviceGetComputeRunningProcesses, h),
        "compute_v2": listing(pynvml.nvmlDeviceGetComputeRunningProcesses_v2, h),
        "graphics": listing(pynvml.nvmlDeviceGetGraphicsRunningProcesses, h),
        "graphics_v2": listing(pynvml.nvmlDeviceGetGraphicsRunningProcesses_v2, h),
        "mps": listing(pynvml.nvmlDeviceGetMPSComputeRunningProcesses, h),
        "mig_mode": call(pynvml.nvmlDeviceGetMigMode, h),
        "mig_devices": call(mig_devices, h),
        "cuda_compute_capability": call(
            lambda: list(pynvml.nvmlDeviceGetCudaComputeCapability(h))
        ),
        "telemetry": telemetry(h),
    }


def error_strings():
    # pynvml's own table, copied before anything could add to it.
    known = dict(pynvml.NVMLError._errcode_to_string)
    return {
        str(code): [text(pynvml.nvmlErrorString(code)), known_text]
        for code, known_text in sorted(known.items())
    }


def main():
    out = {"init": call(pynvml.nvmlInit)}
    # nvmlErrorString needs no init; pynvml has loaded the library by now either way.
    out["error_strings"] = error_strings()
    if "error" in out["init"]:
        print(json.dumps(out, sort_keys=True))
        return
    out["driver_version"] = call(lambda: text(pynvml.nvmlSystemGetDriverVersion()))
    out["nvml_version"] = call(lambda: text(pynvml.nvmlSystemGetNVMLVersion()))
    out["cuda_driver_version"] = call(pynvml.nvmlSystemGetCudaDriverVersion)
    out["cuda_driver_version_v2"] = call(pynvml.nvmlSystemGetCudaDriverVersion_v2)
    out["process_names"] = {
        pid: call(lambda: text(pynvml.nvmlSystemGetProcessName(int(pid)))) for pid in sys.argv[1:]
    }
    count = call(pynvml.nvmlDeviceGetCount)
    out["device_count"] = count
    out["devices"] = [device(i) for i in range(count.get("value", 0))]
    # Refcounting: a second init needs a second shutdown; a third shutdown is UNINITIALIZED.
    out["refcount"] = [
        call(pynvml.nvmlInit),
        call(pynvml.nvmlShutdown),
        call(pynvml.nvmlDeviceGetCount),
        call(pynvml.nvmlShutdown),
        call(pynvml.nvmlDeviceGetCount),
        call(pynvml.nvmlShutdown),
    ]
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
