"""The terminal verdict block: plain off a terminal, coloured on one, pointing at the user's code."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from crashsight.report.model import Report
from crashsight.report.terminal import render_verdict, wants_colour


def _report(tmp_path: Path, code: str) -> Report:
    path = tmp_path / "r.json"
    subprocess.run(
        [sys.executable, "-m", "crashsight", "run", "--report", str(path),
         "--", sys.executable, "-c", code],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return Report.model_validate(json.loads(path.read_text()))


def test_failing_frame_is_the_users_own_code(tmp_path: Path) -> None:
    """An error raised inside a library (json.decoder) is shown at the user's calling line."""
    report = _report(tmp_path, "import json\ndef load():\n    json.loads('{bad')\nload()\n")
    assert report.termination_error is not None
    assert report.termination_error.frames[-1].file.endswith("json/decoder.py")
    assert "  failed in: <string>:3 in load" in render_verdict(report)


def test_colour_only_on_a_terminal_and_never_with_no_color(tmp_path: Path) -> None:
    """Colour codes appear only when asked for, and NO_COLOR or a non-terminal turns them off."""
    report = _report(tmp_path, "raise SystemExit(3)")
    assert "\x1b[" not in render_verdict(report)
    assert "\x1b[1;31munknown\x1b[0m" in render_verdict(report, colour=True)
    assert not wants_colour(io.StringIO(), {})
    assert wants_colour(_Terminal(), {})
    assert not wants_colour(_Terminal(), {"NO_COLOR": "1"})


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True
