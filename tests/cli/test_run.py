"""`crashsight run` as a user runs it: a real subprocess, real exit codes, a real report file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

CRASHSIGHT = [sys.executable, "-m", "crashsight"]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CRASHSIGHT, "run", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@pytest.mark.parametrize(
    ("code", "expected_exit", "signal", "verdict"),
    [
        pytest.param("import os; os.abort()", 134, "SIGABRT", ("crash", "abort"), id="abort"),
        pytest.param(
            "import ctypes; ctypes.memset(0, 0, 1)",
            139,
            "SIGSEGV",
            ("crash", "segfault"),
            id="segfault",
        ),
        pytest.param("raise SystemExit(4)", 4, None, ("unknown", None), id="exit-4"),
    ],
)
def test_exit_codes_and_report_on_failure(
    tmp_path: Path,
    code: str,
    expected_exit: int,
    signal: str | None,
    verdict: tuple[str, str | None],
) -> None:
    """crashsight exits like the child would in a shell, and the report says why."""
    report = tmp_path / "r.json"
    result = run("--report", str(report), "--", sys.executable, "-c", code)
    assert result.returncode == expected_exit, result.stderr
    data = load(report)
    assert data["status"] == "failed"
    assert data["exit"]["signal"] == signal
    assert (data["category"], data["subcategory"]) == verdict
    assert data["summary"] in result.stderr, "the verdict is printed on failure"


def test_success_passes_output_through_and_writes_report(tmp_path: Path) -> None:
    """On success the child's output passes through unchanged and the report is still written."""
    report = tmp_path / "ok.json"
    result = run(
        "--report",
        str(report),
        "--",
        sys.executable,
        "-c",
        "import sys; sys.stdout.write('out\\n'); sys.stderr.write('err\\n')",
    )
    assert result.returncode == 0
    assert (result.stdout, result.stderr) == ("out\n", "err\n")
    data = load(report)
    assert data["status"] == "succeeded"
    assert data["category"] is None
    assert data["subcategory"] is None
    for key in (
        "summary",
        "exit",
        "termination_error",
        "diagnostics",
        "stderr_tail",
        "tasks",
        "command",
        "pid",
        "started_at",
        "duration_s",
        "peak_rss_bytes",
    ):
        assert key in data, key


def test_timeout_exits_124_promptly_and_leaves_nothing(tmp_path: Path) -> None:
    """A 1-second --timeout on `sleep 30` exits 124 long before the sleep would have ended.

    The wall-clock bound includes a cold CLI start on a loaded machine, so it only says "not the
    30 s of the sleep"; the report's own duration, measured from the spawn, is held closer.
    """
    report = tmp_path / "t.json"
    started = time.monotonic()
    result = run("--timeout", "1", "--grace", "1", "--report", str(report), "--", "sleep", "30")
    elapsed = time.monotonic() - started
    assert result.returncode == 124
    assert elapsed < 25, "the sleep was cut short"
    data = load(report)
    assert (data["category"], data["subcategory"]) == ("timeout", "deadline")
    assert data["signals_sent"] == ["SIGTERM"]
    assert 1 <= data["duration_s"] < 15


def test_no_progress_timeout_stops_a_silent_worker(tmp_path: Path) -> None:
    """--no-progress-timeout: a worker that prints once and then falls silent is stopped, exit 124,
    verdict timeout/no_progress, and the line it printed still passed through."""
    report = tmp_path / "t.json"
    silent = "import time; print('loading shard 7', flush=True); time.sleep(60)"
    result = run(
        # The watchdog counts from the spawn: the worker's first line must beat it on a loaded
        # machine (a shim and an interpreter to start, about 30 ms on a quiet one).
        "--no-progress-timeout", "3", "--grace", "1", "--report", str(report),
        "--", sys.executable, "-c", silent,
    )  # fmt: skip
    assert result.returncode == 124, result.stderr
    assert result.stdout == "loading shard 7\n"
    data = load(report)
    assert (data["category"], data["subcategory"]) == ("timeout", "no_progress")
    assert data["timeout"] == "no_progress"
    assert data["signals_sent"] == ["SIGTERM"]
    assert data["duration_s"] < 30, "stopped long before the worker's own 60 s"


def test_an_undecodable_file_name_in_the_command_still_gets_its_reports(tmp_path: Path) -> None:
    """A command line holding a file name ``os.fsdecode`` could not decode (lone surrogates, which
    JSON and UTF-8 files cannot hold) is reported with the name as Python prints it, and every
    report is written."""
    report, panel = tmp_path / "r.json", tmp_path / "panel.html"
    name = os.fsdecode(b"shard-\xff.bin")
    result = run(
        "--report", str(report), "--html", str(panel),
        "--", sys.executable, "-c", "import sys; sys.exit(sys.argv[1][:5] == 'shard' and 3)", name,
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    data = load(report)
    assert data["command"][-1] == "shard-\\udcff.bin"
    assert "shard-\\udcff.bin" in data["name"]
    assert "shard-" in panel.read_text()


def test_python_script_exception_is_structured(tmp_path: Path) -> None:
    """A plain Python script's uncaught exception reaches the report with its frames."""
    script = tmp_path / "job.py"
    script.write_text("import json\njson.loads('{not json')\n")
    report = tmp_path / "r.json"
    result = run("--report", str(report), "--", sys.executable, str(script))
    assert result.returncode == 1
    error = load(report)["termination_error"]
    assert error["type"] == "JSONDecodeError"
    assert error["module"] == "json.decoder"
    assert error["frames"][0]["file"] == str(script)


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        pytest.param(["--", "no-such-command-xyz"], 127, "command not found", id="not-found"),
        pytest.param(["--", "{not_executable}"], 126, "permission denied", id="not-executable"),
        pytest.param(["--timeout", "0", "--", "true"], 2, "more than 0", id="zero-timeout"),
        pytest.param(["--timeout", "-1", "--", "true"], 2, "more than 0", id="negative-timeout"),
        pytest.param(
            ["--report", "/no/such/dir/r.json", "--", "true"],
            2,
            "does not exist",
            id="report-dir-missing",
        ),
        pytest.param([], 2, "no command", id="no-command"),
        pytest.param(
            ["--html", "/no/such/dir/p.html", "--", "true"],
            2,
            "does not exist",
            id="html-dir-missing",
        ),
        pytest.param(
            ["--rules", "/no/such/rules.toml", "--", "true"],
            2,
            "cannot read rules file",
            id="rules-file-missing",
        ),
    ],
)
def test_bad_input_gets_a_clear_error(
    tmp_path: Path, argv: list[str], code: int, message: str
) -> None:
    """Bad commands and options fail with a clear one-line error and a distinct exit status."""
    not_executable = tmp_path / "script.sh"
    not_executable.write_text("#!/bin/sh\necho hi\n")
    not_executable.chmod(0o644)
    result = run(*[arg.format(not_executable=not_executable) for arg in argv])
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_report_folder_removed_mid_run_loses_only_that_report(tmp_path: Path) -> None:
    """A sink that cannot be written is named; the verdict and the command's exit status stand."""
    gone = tmp_path / "gone"
    gone.mkdir()
    result = run(
        "--report", str(gone / "r.json"), "--html", str(gone / "p.html"),
        "--", "bash", "-c", f"rm -rf {gone}; exit 3",
    )  # fmt: skip
    assert result.returncode == 3
    assert "could not write the report" in result.stderr
    assert "could not write the HTML panel" in result.stderr
    assert "crashsight: unknown: exited with code 3" in result.stderr
    assert "Traceback" not in result.stderr


def test_reader_going_away_ends_the_worker_like_a_shell_pipeline(tmp_path: Path) -> None:
    """`crashsight run -- yes | head -n1` ends: the worker gets SIGPIPE, as it would in a shell."""
    report = tmp_path / "r.json"
    pipeline = f"{sys.executable} -m crashsight run --report {report} -- yes | head -n1"
    result = subprocess.run(
        ["bash", "-c", pipeline], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.stdout == "y\n"
    data = load(report)
    assert data["exit"]["signal"] == "SIGPIPE"
    assert (data["category"], data["subcategory"]) == ("io", "broken_pipe")
