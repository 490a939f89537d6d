"""The HTML panel's facts about a run, from a real run's report."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

from crashsight.report.model import Report
from crashsight.report.panels import panel_from_report


def test_the_command_is_shown_as_it_would_be_typed(tmp_path: Path) -> None:
    """Arguments with spaces and quotes come out shell-quoted, so the line can be pasted back:
    a ``python -c`` program is one argument, not four words."""
    program = "import sys; sys.exit('it\\'s broken')"
    report_path = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "crashsight", "run", "--report", str(report_path), "--",
         sys.executable, "-c", program],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    report = Report.model_validate(json.loads(report_path.read_text()))
    facts = dict(panel_from_report(report).facts)
    assert shlex.split(facts["command"]) == [sys.executable, "-c", program]
