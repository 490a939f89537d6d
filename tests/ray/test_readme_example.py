"""The README's Ray example runs as shown: its failure reads as a crashsight verdict on the driver."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from crashsight.report.aggregate import aggregate, load_shard

pytest.importorskip(
    "ray", reason="Ray is not installed: pip install 'crashsight[ray]' to run the Ray tests"
)

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

README = Path(__file__).resolve().parents[2] / "README.md"


def _example() -> str:
    text = README.read_text()
    start = text.index("## Ray tasks and actors\n")
    section = text[start : text.index("\n## ", start + 1)]
    found = re.search(r"```python\n# encode\.py\n(.*?)```", section, flags=re.S)
    assert found is not None, "the Ray section has no '# encode.py' example"
    return found.group(1)


def test_the_readme_example_fails_with_a_verdict(ray_cluster: ModuleType, tmp_path: Path) -> None:
    """``python encode.py`` ends with RunnerFailedError's verdict and four aggregatable reports."""
    (tmp_path / "encode.py").write_text(_example())
    # ray.init() in the example joins the session's cluster instead of starting another.
    env = {**os.environ, "RAY_ADDRESS": ray_cluster.get_runtime_context().gcs_address}
    result = subprocess.run(
        [sys.executable, "encode.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    verdict = (
        "crashsight.ray.errors.RunnerFailedError: crashsight: crash/segfault: "
        "Fatal Python error: Segmentation fault\n"
        "  exit:      killed by signal SIGSEGV (11)\n"
    )
    assert verdict in result.stderr
    assert f"failed in: {tmp_path / 'encode.py'}:11 in encode" in result.stderr
    reports = sorted((tmp_path / "reports").glob("*.json"))
    assert aggregate([load_shard(path) for path in reports], "[encode]").title == (
        "[encode] (crash, 1 shard)"
    )
