"""The `crashsight` command as a whole: quiet endings for closed pipes."""

from __future__ import annotations

import subprocess
import sys


def test_closed_stdout_ends_quietly_with_141() -> None:
    """A reader that went away (`crashsight schema | head`) ends the command with 141, quietly."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "crashsight", "schema"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    proc.stdout.close()  # the reader is gone before the first byte is written
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 141
    assert "Traceback" not in stderr
