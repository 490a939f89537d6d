"""A signal while `crashsight run` itself starts: the same exit status and report as later on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from crashsight.cli.main import build_parser
from crashsight.cli.run import run_command
from crashsight.cli.startup import SIGNALS, StartupSignals


def _catches_startup_signals(pid: int) -> bool:
    """Whether the process has installed crashsight's start-up recorder (it catches SIGHUP).

    A bare interpreter catches SIGINT only, so SIGHUP in ``SigCgt`` (``/proc/PID/status``) marks
    the moment the recorder is in place.
    """
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            caught = int(line.split()[1], 16)
            return all(caught & (1 << (sig - 1)) for sig in SIGNALS)
    return False


def _interrupt_when_recording(
    args: list[str], sig: signal.Signals, **popen: object
) -> tuple[int, str]:
    """Start ``crashsight ARGS``, send ``sig`` once its recorder is in place; exit status, stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "crashsight", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen,  # type: ignore[call-overload]
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not _catches_startup_signals(proc.pid):
            assert time.monotonic() < deadline, "the recorder was never installed"
            time.sleep(0.001)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, stderr


@pytest.mark.parametrize(
    ("sig", "code"),
    [
        pytest.param(signal.SIGINT, 130, id="sigint"),
        pytest.param(signal.SIGTERM, 143, id="sigterm"),
    ],
)
def test_a_signal_during_start_up_still_gives_a_report(
    tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    """Interrupted as soon as it can record signals (long before it starts the command).

    crashsight exits 130/143 and writes a cancelled report; the worker, if it got that far, is
    stopped, never blamed.
    """
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc to see when the recorder is installed")
    report = tmp_path / "r.json"
    returncode, stderr = _interrupt_when_recording(
        ["run", "--report", str(report), "--", "sleep", "60"], sig
    )
    assert returncode == code, stderr
    assert "Traceback" not in stderr
    data = json.loads(report.read_text())
    assert data["status"] == "cancelled"
    assert sig.name in data["summary"]
    assert data["category"] is None


def test_other_commands_keep_the_usual_ctrl_c(tmp_path: Path) -> None:
    """Outside `run`, a recorded SIGINT still ends the command with 130 and no traceback."""
    # analyze reads a log that never ends, so only the signal can end it, early or late. The
    # log keeps flowing: a SIGINT whose handler is due just as the command enters a read() that
    # then blocks is acted on only when that read returns (CPython checks signals on EINTR, and
    # the signal already came), so a stalled writer would test the interpreter, not crashsight.
    read_end, write_end = os.pipe()
    writer = threading.Thread(target=_write_log_until_closed, args=(write_end,), daemon=True)
    writer.start()
    try:
        returncode, stderr = _interrupt_when_recording(
            ["analyze", "/dev/stdin"], signal.SIGINT, stdin=read_end
        )
    finally:
        os.close(read_end)
        writer.join(timeout=30)
    assert returncode == 130, stderr
    assert "Traceback" not in stderr


def _write_log_until_closed(fd: int) -> None:
    """Write log lines to ``fd`` until its reader is gone; then close it."""
    block = b"2026-11-30 12:00:00 INFO step 1 loss=0.5\n" * 256
    try:
        while True:
            os.write(fd, block)
    except OSError:  # EPIPE: the command and this test's copy of the read end are closed
        pass
    finally:
        os.close(fd)


def test_a_recorded_signal_means_the_command_never_starts(tmp_path: Path) -> None:
    """A real SIGINT caught by the recorder before `run` starts anything: 130, a report, no child."""
    report = tmp_path / "r.json"
    marker = tmp_path / "started"
    args = build_parser().parse_args(["run", "--report", str(report), "--", "touch", str(marker)])
    startup = StartupSignals.install()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        args.startup_signals = startup
        code = run_command(args)
    finally:
        startup.restore(redeliver=False)
    assert code == 130
    assert not marker.exists(), "the command never ran"
    data = json.loads(report.read_text())
    assert data["status"] == "cancelled"
    assert data["summary"] == (
        "cancelled: crashsight received SIGINT during start-up; the command never started"
    )
    assert data["exit"]["description"] == "never started"
