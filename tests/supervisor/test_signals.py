"""`Supervisor(handle_signals=True)` in a program that has signal handlers of its own."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

HOST = Path(__file__).resolve().parent / "signal_host.py"


def _host(mode: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(HOST), mode]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_program_gets_its_handlers_back(backend: str) -> None:
    """A SIGTERM stops the runners while the supervisor listens; afterwards it is the program's.

    asyncio's receiver put the default action back: a SIGTERM after the supervisor ended
    killed the process (the CLI lost its report that way, in a real torchrun job).
    """
    done = _host(backend)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "status": "cancelled",
        "received": "SIGTERM",
        "restored": [True, True, True],
        "seen": ["SIGTERM"],
    }


def test_a_loop_callback_is_not_restored_as_an_ignored_signal() -> None:
    """A callback given to asyncio's loop cannot be read back: the default action, not silence."""
    done = _host("asyncio-loop")
    assert done.returncode == -signal.SIGTERM, done.stderr
