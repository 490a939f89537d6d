"""A Ray driver under ``crashsight run``: the worker lines Ray forwards give the root cause."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip(
    "ray", reason="Ray is not installed: pip install 'crashsight[ray]' to run the Ray tests"
)

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

DRIVER = Path(__file__).with_name("crashing_driver.py")


def test_forwarded_worker_lines_name_the_crash_and_its_pid(
    ray_cluster: ModuleType, tmp_path: Path
) -> None:
    """A task's segfault reads as crash/segfault, not WorkerCrashedError, with the worker's pid."""
    address = ray_cluster.get_runtime_context().gcs_address
    report_path = tmp_path / "driver.json"
    command = [sys.executable, "-m", "crashsight", "run", "--report", str(report_path), "--"]
    result = subprocess.run(
        [*command, sys.executable, str(DRIVER), address],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert (report["category"], report["subcategory"]) == ("crash", "segfault")
    found = {d["id"]: d for d in report["diagnostics"]}
    segfault = found["faulthandler.segfault"]
    assert segfault["first_line"] == "Fatal Python error: Segmentation fault"
    assert segfault["fields"]["ray_worker"] == "encode"
    assert segfault["fields"]["ray_pid"].isdigit()
    assert found["ray.worker_crashed"]["evidence_only"] is False
    # The verdict block on the driver's stderr names the crash, not the WorkerCrashedError.
    verdict = re.search(r"^crashsight: crash/segfault[^:]*: (.*)$", result.stderr, flags=re.M)
    assert verdict is not None, result.stderr[-1500:]
    assert verdict.group(1) == "Fatal Python error: Segmentation fault"
