"""``crashsight run -- torchrun ...``: the job's verdict in the launcher's report.

A stand-in ``torchrun`` replays the stderr real torchrun printed (the sample in
``tests/diagnostics/test_launcher.py``), so this runs without torch; ``tests/torch`` runs the real
launcher.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.diagnostics.test_launcher import OOM_RUN

from crashsight.report.model import Report


def test_the_report_names_the_root_cause_rank(tmp_path: Path) -> None:
    """The report's verdict is rank 1's out-of-memory error, not torchrun's ChildFailedError."""
    sample = tmp_path / "stderr.txt"
    sample.write_text(OOM_RUN)
    launcher = tmp_path / "torchrun"
    launcher.write_text(
        f"#!{sys.executable}\nimport sys\nsys.stderr.write(open({str(sample)!r}).read())\n"
        "raise SystemExit(1)\n"
    )
    launcher.chmod(0o755)
    report_path = tmp_path / "job.json"
    done = subprocess.run(
        [sys.executable, "-m", "crashsight", "run", "--report", str(report_path), "--",
         str(launcher), "--nproc-per-node", "3", "train.py"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    report = Report.model_validate(json.loads(report_path.read_text()))
    assert report.root_cause_rank == 1
    assert report.category == "memory"
    assert report.summary.startswith("rank 1: memory/")
    assert [(r.rank, r.role) for r in report.ranks] == [
        (0, "consequence"),
        (1, "root_cause"),
        (2, "collateral"),
    ]
    assert "crashsight: rank 1: memory/" in done.stderr
