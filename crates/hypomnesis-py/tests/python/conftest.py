"""Runs hypomnesis's Python tests against the NVML double, one scenario per process.

NVML's state (and the package's default probe) is process-wide, as in the Rust tests: a test
marked ``@pytest.mark.scenario("one_gpu")`` is run again by itself in a child interpreter
whose environment points the library at the double (``HYPOMNESIS_NVML_LIB``) loaded with that
scenario (``NVML_DOUBLE_SCENARIO``); the parent passes only when the child ran that one test
and it passed. The test receives the scenario's declared values as the ``declared`` fixture.

The double is the library ``cargo build -p nvml-double`` makes; ``HYPOMNESIS_TEST_NVML_DOUBLE``
names it (the Rust test that runs this suite sets it), else it is built here. Copies are made
per scenario under ``target/python-nvml-double/`` as ``libnvidia-ml.so.1``, with the scenario's
``missing_symbols`` made unresolvable, as ``test_support::nvml_double_for`` does.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import pytest

WORKSPACE = Path(__file__).resolve().parents[4]
SCENARIOS = WORKSPACE / "fixtures" / "nvml"
TARGET = WORKSPACE / "target"
CHILD_ENV = "HYPOMNESIS_PYTEST_CHILD"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "scenario(name_or_path): run the test in its own process on the NVML double with this scenario",
    )


def _double() -> Path:
    named = os.environ.get("HYPOMNESIS_TEST_NVML_DOUBLE")
    if named:
        path = Path(named)
        if not path.is_file():
            pytest.fail(f"HYPOMNESIS_TEST_NVML_DOUBLE names {path}, which does not exist")
        return path
    build = TARGET / "nvml-double-build"
    done = subprocess.run(
        ["cargo", "build", "-q", "-p", "nvml-double", "--target-dir", str(build)],
        cwd=WORKSPACE,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.fail(f"building the NVML double failed:\n{done.stdout}\n{done.stderr}")
    return build / "debug" / "libnvml_double.so"


def scenario_path(name_or_path: str) -> Path:
    """A name in ``fixtures/nvml`` or a path to a scenario file."""
    path = Path(name_or_path)
    if path.suffix != ".json":
        path = SCENARIOS / f"{name_or_path}.json"
    if not path.is_file():
        pytest.fail(f"no NVML scenario {name_or_path!r}: {path} does not exist")
    return path


def scenario_variant(base: str, name: str, edit: Callable[[Dict[str, Any]], None]) -> Path:
    """Scenario ``base`` changed by ``edit``, written to ``target/test-scenarios-python/``
    (never under ``fixtures/nvml``, whose every file the pynvml check reads: a hang there
    would hang that check)."""
    scenario = json.loads(scenario_path(base).read_text())
    edit(scenario)
    out = TARGET / "test-scenarios-python"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    aside = out / f"{name}.json.{os.getpid()}.tmp"
    aside.write_text(json.dumps(scenario))
    aside.replace(path)
    return path


def double_for(scenario: Path) -> Path:
    """``<dir>/libnvidia-ml.so.1``: the double, with the scenario's missing symbols patched
    out of the copy's dynamic string table (``\\0name\\0`` → ``\\0Xame\\0``)."""
    missing = sorted(set(json.loads(scenario.read_text()).get("missing_symbols") or []))
    data = bytearray(_double().read_bytes())
    for name in missing:
        needle = b"\0" + name.encode() + b"\0"
        if needle not in data:
            pytest.fail(f"{scenario}: missing_symbols names {name!r}, which the double does not export")
        start = 0
        while True:
            at = data.find(needle, start)
            if at < 0:
                break
            data[at + 1] = ord("X")
            start = at + 1
    leaf = scenario.stem
    if missing:
        leaf += "-" + hashlib.sha256("\n".join(missing).encode()).hexdigest()[:16]
    directory = TARGET / "python-nvml-double" / leaf
    directory.mkdir(parents=True, exist_ok=True)
    lib = directory / "libnvidia-ml.so.1"
    if not lib.is_file() or lib.read_bytes() != bytes(data):
        aside = directory / f".libnvidia-ml.so.1.{os.getpid()}.tmp"
        aside.write_bytes(bytes(data))
        aside.replace(lib)
    return lib


def _scenario_of(item: pytest.Item) -> Optional[Path]:
    marker = item.get_closest_marker("scenario")
    if marker is None:
        return None
    arg = marker.args[0]
    return scenario_path(arg() if callable(arg) else arg)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Optional[bool]:
    scenario = _scenario_of(pyfuncitem)
    if scenario is None or os.environ.get(CHILD_ENV) == pyfuncitem.nodeid:
        return None  # run the body here
    env = dict(os.environ)
    env.update(
        {
            CHILD_ENV: pyfuncitem.nodeid,
            "HYPOMNESIS_NVML_LIB": str(double_for(scenario)),
            "NVML_DOUBLE_SCENARIO": str(scenario),
            # Only the double answers: no nvidia-smi found on PATH, no DRM devices.
            "HYPOMNESIS_NVIDIA_SMI": str(TARGET / "no-such-nvidia-smi"),
            "HYPOMNESIS_SYS_ROOT": str(TARGET / "no-such-sys"),
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", pyfuncitem.nodeid],
        cwd=pyfuncitem.config.rootpath,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0 or "1 passed" not in done.stdout:
        pytest.fail(
            f"{pyfuncitem.nodeid} failed in its own process on scenario {scenario.name}\n"
            f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}",
            pytrace=False,
        )
    return True


@pytest.fixture
def declared(request: pytest.FixtureRequest) -> Dict[str, Any]:
    """The scenario's declared values (for tests marked with a scenario)."""
    scenario = _scenario_of(request.node)
    if scenario is None:
        pytest.fail("the `declared` fixture needs @pytest.mark.scenario(...)")
    value: Dict[str, Any] = json.loads(scenario.read_text())
    return value
