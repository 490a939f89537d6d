"""The README's examples are run, so the first thing a new user copies works."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"

pytest_plugins = ["pytester"]


def _section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _python_blocks(section: str) -> dict[str, str]:
    """Code blocks that start with a ``# filename.py`` comment, by file name."""
    blocks = re.findall(r"```python\n# (\S+\.py)\n(.*?)```", section, flags=re.S)
    return {name: body for name, body in blocks}


def test_testing_your_workers_example_passes(pytester: pytest.Pytester) -> None:
    """The "Testing your workers" example, written to files as a user would, passes as shown."""
    blocks = _python_blocks(_section("Testing your workers"))
    assert set(blocks) == {"myworker.py", "test_myworker.py"}
    for name, body in blocks.items():
        pytester.path.joinpath(name).write_text(body)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_demo_shows_every_verdict() -> None:
    """`crashsight demo` (the README's main job) ends with the right verdict for every worker."""
    result = subprocess.run(
        [sys.executable, "-m", "crashsight", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for verdict in (
        "gpu/timeout", "comm/ring_socket", "disk/enospc", "crash/segfault", "crash/killed",
        "http/server_error", "timeout/no_progress", "succeeded",
    ):  # fmt: skip
        assert verdict in result.stdout
    assert "7 of 8 workers failed" in result.stdout
