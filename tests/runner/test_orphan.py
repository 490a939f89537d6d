"""crashsight's thread in the worker never takes a signal meant for the program.

The end-to-end orphan cases (the supervisor SIGKILLed, each protection alone) are in
tests/cli/test_signals.py; this is the watch thread's signal mask, read from the kernel.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from crashsight.supervisor.status import RunnerFailed
from crashsight.supervisor.supervisor import Supervisor

WORKERS = Path(__file__).resolve().parent.parent / "workers.py"


@pytest.mark.skipif(sys.platform != "linux", reason="reads the thread's mask from /proc")
@pytest.mark.asyncio
async def test_the_watch_thread_blocks_process_signals_and_not_faults(tmp_path: Path) -> None:
    """With SIGTERM blocked in the main thread, a SIGTERM to the process waits for it.

    Taken by the watch thread instead, faulthandler's stack dump would run there and walk the
    main thread's frames while it runs (a SIGSEGV now and then, under load).
    """
    log = tmp_path / "out.log"
    async with Supervisor(output=str(log)) as supervisor:
        runner = await supervisor.spawn(f"{WORKERS}:main_thread_blocks_sigterm")
        status = await runner.wait()
    lines = log.read_text().split()
    assert lines[1:] == ["pending"], "another thread took the SIGTERM the main thread blocked"
    mask = int(lines[0], 16)
    blocked = {sig for sig in signal.Signals if mask & (1 << (sig - 1))}
    assert {signal.SIGTERM, signal.SIGINT, signal.SIGUSR2, signal.SIGHUP} <= blocked
    assert not blocked & {signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGABRT}
    assert isinstance(status, RunnerFailed)
    assert status.exit.signal == "SIGTERM"
