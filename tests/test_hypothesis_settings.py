"""The suite's hypothesis settings are the same in CI and in a user's first run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

#: Loads the suite's conftest in a fresh interpreter (hypothesis picks a profile of its own at
#: import when CI is set) and prints the settings every test then runs with.
_PROBE = """
import json, runpy, sys
from hypothesis import settings
runpy.run_path(sys.argv[1])
loaded = settings.default
print(json.dumps({
    "deadline": str(loaded.deadline),
    "suppressed": sorted(check.name for check in loaded.suppress_health_check),
    "derandomize": loaded.derandomize,
}))
"""


@pytest.mark.parametrize("ci", ["", "true"], ids=["user", "ci"])
def test_health_checks_and_deadline_do_not_depend_on_ci(ci: str, tmp_path: Path) -> None:
    """With and without CI, no deadline and no timing health check can fail a test (a cold cache
    on a busy machine trips both); CI only derandomizes."""
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, str(Path(__file__).with_name("conftest.py"))],
        capture_output=True, text=True, env={**os.environ, "CI": ci}, cwd=tmp_path, timeout=60,
        check=True,
    )  # fmt: skip
    assert json.loads(result.stdout) == {
        "deadline": "None",
        "suppressed": ["data_too_large", "too_slow"],
        "derandomize": bool(ci),
    }


def test_this_session_runs_without_timing_checks() -> None:
    """The settings this very session runs under carry no deadline and no timing health check."""
    current = settings()
    assert current.deadline is None
    assert {HealthCheck.too_slow, HealthCheck.data_too_large} <= set(current.suppress_health_check)
