"""``crashsight run --rules FILE`` end to end: a user's rules file decides the report's category.

The rules file reproduces the classes of a texture shard pipeline: ``toktx`` when its encoder step
fails (``RuntimeError("toktx exit N: ...")``), ``http`` for HTTP errors and timeouts, ``disk`` for
a full disk, ``unknown`` for anything else. Each test runs ``python -m crashsight`` as a real
subprocess over a real failing worker.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

WORKERS = Path(__file__).resolve().parent.parent / "verdict_workers.py"

PIPELINE_RULES = """\
[[rule]]
category = "toktx"
hint = "The texture encoder failed; its message names the input."
exception = "RuntimeError"
message = '^toktx exit \\d+: '

[[rule]]
category = "http"
hint = "The shard service failed or did not answer; retry later."
signature = [
    "requests.*", "httpx.*", "urllib.*",
    "python.socket_timeout", "python.connection_refused", "python.connection_reset",
]

[[rule]]
category = "disk"
hint = "The output volume is full."
errno = "ENOSPC"

[[rule]]
category = "unknown"
hint = "Not one of the pipeline's failure classes."
exception = "BaseException"
"""


def crashsight_run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m crashsight run ARGS`` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "crashsight", "run", *args],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
        cwd=cwd,
    )


@pytest.mark.parametrize(
    ("worker", "category"),
    [
        pytest.param(("toktx_failure",), "toktx", id="toktx"),
        pytest.param(("http_local", "503"), "http", id="http-503"),
        pytest.param(("http_local", "silent"), "http", id="http-read-timeout"),
        pytest.param(("write_dev_full",), "disk", id="disk-enospc"),
        pytest.param(("value_error",), "unknown", id="other-exception"),
        pytest.param(("exit_three",), "unknown", id="exit-without-exception"),
    ],
)
def test_rules_file_classes_reach_the_report(
    tmp_path: Path, worker: tuple[str, ...], category: str
) -> None:
    """Each failure class of the pipeline's rules file is the report's category, with no subcategory."""
    rules = tmp_path / "pipeline-rules.toml"
    rules.write_text(PIPELINE_RULES)
    report = tmp_path / "r.json"
    result = crashsight_run(
        "--rules", str(rules), "--report", str(report), "--",
        sys.executable, str(WORKERS), *worker,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode != 0
    data = json.loads(report.read_text())
    assert (data["category"], data["subcategory"]) == (category, None), data["summary"]
    assert f"crashsight: {category}: " in result.stderr


def test_rules_file_with_a_typo_is_rejected_before_any_runner_starts(tmp_path: Path) -> None:
    """An unknown key (``mesage``) exits 2 naming the file, ``rule[N]`` and the key; no worker ran."""
    rules = tmp_path / "typo-rules.toml"
    rules.write_text(PIPELINE_RULES.replace("message = ", "mesage = "))
    marker = tmp_path / "worker-ran"
    result = crashsight_run(
        "--rules", str(rules), "--report", str(tmp_path / "r.json"), "--",
        sys.executable, str(WORKERS), "touch", str(marker),
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert str(rules) in result.stderr
    assert "rule[0]" in result.stderr
    assert "'mesage'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not marker.exists(), "the worker must not start when the rules are bad"
    assert not (tmp_path / "r.json").exists()
