"""A child's death is shown wherever the report is: JSON, HTML panel, GitHub summary, server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from crashsight.report.model import Report
from crashsight.server.bounds import Limits
from crashsight.server.views import errors_from_report

# A worker that runs a native-like tool which really segfaults (an invalid memory access).
WORKER = """
import subprocess, sys
tool = "import ctypes; ctypes.string_at(0)"
subprocess.run([sys.executable, "-c", tool], check=True)
"""


def test_a_segfaulting_child_is_named_in_every_sink(tmp_path: Path) -> None:
    """`subprocess.run(check=True)` of a child that segfaults: the report's `in_child` names it,
    and the HTML panel, the GitHub step summary and the server's answer all say so."""
    report_path, html, summary = tmp_path / "r.json", tmp_path / "p.html", tmp_path / "summary.md"
    env = {
        **os.environ,
        "GITHUB_ACTIONS": "true",
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_OUTPUT": str(tmp_path / "out"),
    }
    run = subprocess.run(
        [sys.executable, "-m", "crashsight", "run", "--report", str(report_path),
         "--html", str(html), "--", sys.executable, "-c", WORKER],
        capture_output=True, text=True, timeout=120, check=False, env=env,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    report = Report.model_validate_json(report_path.read_text())
    assert (report.category, report.subcategory) == ("crash", "segfault"), report.summary
    assert report.in_child is not None
    assert report.in_child.signal == "SIGSEGV"
    assert " in child" in report.summary or " in a child" in report.summary
    assert "failed in" in html.read_text()
    assert "- failed in: " in summary.read_text()
    answer = errors_from_report("job", report, Limits())
    assert answer.in_child == report.in_child
