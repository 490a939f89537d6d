"""`crashsight run` on a real hang: the stacks and the tree in every place the verdict is shown.

One run of a worker stuck in ``subprocess.run`` of a tool that never exits feeds the terminal
verdict, the JSON report, the HTML panel, the GitHub step summary, the aggregate and the server's
JSON; the other tests each run their own case (a forwarded SIGTERM, another dump signal, native
frames without py-spy, a bad option).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import psutil
import pytest

import crashsight
from crashsight.server import crashsight_app

CRASHSIGHT = [sys.executable, "-m", "crashsight"]
HANG = Path(__file__).resolve().parent.parent / "hang_workers.py"
QUIET = "6"  # seconds: also the time the worker has to start and say it is ready


@dataclass(frozen=True)
class HangRun:
    """One finished ``crashsight run`` of a hang, and the folder its report and pages went to."""

    result: subprocess.CompletedProcess[str]
    folder: Path

    @property
    def report(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.folder / "job-1.json").read_text())
        return data


def crashsight_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CRASHSIGHT, "run", *args], capture_output=True, text=True, timeout=120, check=False
    )


def _base_python_without_py_spy() -> tuple[list[str], dict[str, str]] | None:
    """crashsight under the base interpreter (no virtual environment, no py-spy), if it has none."""
    base = Path(sys.base_prefix) / "bin" / "python3"
    if (base.parent / "py-spy").exists() or shutil.which("py-spy", path="/usr/bin:/bin"):
        return None
    site = next(p for p in sys.path if p.endswith("site-packages"))
    source = Path(crashsight.__file__).resolve().parents[1]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.pathsep.join([site, str(source)])}
    return [str(base), "-m", "crashsight"], env


def _report_to(folder: Path) -> list[str]:
    return ["--report", str(folder / "job-1.json"), "--"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, HangRun | None]:
    """The hangs of this file, run at the same time, each stopped by --no-progress-timeout.

    ``tool``: ``run_tool`` stuck in subprocess.run, with every sink on. ``usr1``: a worker that
    handles the dump signal itself, run with ``--dump-signal usr1`` as a shell's child.
    ``no-py-spy``: ``--native-stacks`` under the base interpreter, where py-spy is not installed
    (None when it is).
    """
    folders = {name: tmp_path_factory.mktemp(name) for name in ("tool", "usr1", "no-py-spy")}
    quiet = ["--no-progress-timeout", QUIET]
    github = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_STEP_SUMMARY": str(folders["tool"] / "summary.md"),
        "GITHUB_OUTPUT": str(folders["tool"] / "outputs.txt"),
    }
    commands: dict[str, tuple[list[str], dict[str, str]]] = {
        "tool": (
            [
                *CRASHSIGHT,
                "run",
                *quiet,
                "--html",
                str(folders["tool"] / "panel.html"),
                *_report_to(folders["tool"]),
                sys.executable,
                str(HANG),
                "run_tool",
            ],
            {**os.environ, **github},
        ),
        "usr1": (
            [
                *CRASHSIGHT,
                "run",
                "--dump-signal",
                "usr1",
                *quiet,
                *_report_to(folders["usr1"]),
                # A shell's Python child: the runner itself is asked on its lifeline, not by signal.
                "sh",
                "-c",
                f"'{sys.executable}' '{HANG}' nap_with_own_handler",
            ],
            dict(os.environ),
        ),
    }
    base = _base_python_without_py_spy()
    if base is not None:
        python = base[0][0]
        commands["no-py-spy"] = (
            [
                *base[0],
                "run",
                "--native-stacks",
                *quiet,
                *_report_to(folders["no-py-spy"]),
                python,
                "-m",
                "crashsight.runner",
                f"{HANG}:nap",
            ],
            base[1],
        )
    started = {
        name: subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        for name, (argv, env) in commands.items()
    }
    done: dict[str, HangRun | None] = {"no-py-spy": None}
    for name, proc in started.items():
        with proc:
            out, err = proc.communicate(timeout=120)
        result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        done[name] = HangRun(result=result, folder=folders[name])
    return done


@pytest.fixture
def hang(runs: dict[str, HangRun | None]) -> HangRun:
    """``run_tool`` stuck in subprocess.run of a tool that never exits."""
    run = runs["tool"]
    assert run is not None
    return run


def test_the_verdict_names_the_function_and_the_child(hang: HangRun) -> None:
    """The terminal verdict says where the worker was stuck and which child it waited for."""
    assert hang.result.returncode == 124, hang.result.stderr
    blocked = hang.report["blocked_in"]
    child = blocked["child"]
    summary = (
        f"crashsight: timeout/no_progress: no event or output for {QUIET} s; blocked in run_tool "
        f"(hang_workers.py:{blocked['line']}) waiting on child sleep (pid {child['pid']})"
    )
    assert summary in hang.result.stderr
    assert f"{HANG}:{blocked['line']} in run_tool: subprocess.run(" in hang.result.stderr
    assert f"processes: python {hang.report['pid']}, sleep {child['pid']}" in hang.result.stderr


def test_the_report_holds_stacks_blocked_in_and_tree(hang: HangRun) -> None:
    """The JSON report carries every thread's stack, ``blocked_in`` and the process tree."""
    report = hang.report
    assert report["blocked_in"]["function"] == "run_tool"
    assert report["blocked_in"]["waiting_on"] == "child"
    main = next(s for s in report["stacks"] if s["thread_name"] == "MainThread")
    functions = [frame["function"] for frame in main["frames"]]
    assert functions[:2] == ["<module>", "run_tool"]
    assert "_wait" in functions, "the frames inside subprocess.run are kept"
    tree = report["process_tree"]
    assert [p["name"] for p in tree] == ["python", "sleep"], "sh replaced itself with sleep"
    assert tree[1]["ppid"] == tree[0]["pid"]
    assert tree[1]["cmdline"] == ["sleep", "3600"]


def test_the_html_panel_shows_collapsible_stacks(hang: HangRun) -> None:
    """The panel has one collapsible block per thread, the stuck one open, and the tree."""
    page = (hang.folder / "panel.html").read_text()
    assert '<div id="stacks">' in page
    assert page.count('<details class="thread"') == len(hang.report["stacks"])
    assert page.count('<details class="thread" open>') == 1
    assert "(blocked here)</summary>" in page
    assert '<table id="process-tree">' in page
    assert "<td><code>sleep 3600</code></td>" in page


def test_the_github_summary_and_the_aggregate_show_it(hang: HangRun) -> None:
    """The step summary has the stuck frame, the stacks and the tree; the aggregate its summary."""
    summary = (hang.folder / "summary.md").read_text()
    assert "- blocked in: `run_tool` at `" in summary
    assert "<details><summary>Stacks at the stop (" in summary
    assert "<details><summary>Process tree at the stop</summary>" in summary
    aggregated = subprocess.run(
        [*CRASHSIGHT, "aggregate", str(hang.folder / "job-1.json"), "--title-prefix", "[hang]"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert aggregated.returncode == 1, "a failed shard"
    assert "blocked in run_tool (hang_workers.py:" in aggregated.stdout


def test_the_server_json_shows_it(hang: HangRun) -> None:
    """The training server's endpoint answers with the stacks, ``blocked_in`` and the tree."""
    app = crashsight_app(hang.folder, unauthenticated=True)

    async def ask() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://server") as client:
            answer: dict[str, Any] = (await client.get("/jobs/job-1/errors")).json()
        return answer

    answer = anyio.run(ask)
    assert answer["blocked_in"]["function"] == "run_tool"
    assert answer["stacks"]
    assert answer["process_tree"]
    assert "blocked in run_tool" in answer["summary"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_a_forwarded_signal_takes_the_stacks_first(tmp_path: Path, sig: signal.Signals) -> None:
    """SIGTERM or SIGINT to crashsight: the worker's stacks are taken, then it is stopped."""
    report = tmp_path / "r.json"
    with subprocess.Popen(
        [*CRASHSIGHT, "run", "--report", str(report), "--", sys.executable, str(HANG), "nap"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "hang worker ready\n"
            _wait_until_asleep(proc.pid, str(HANG))
            proc.send_signal(sig)
            _, stderr = proc.communicate(timeout=60)
        finally:
            proc.kill()  # crashsight ends its worker too; a no-op once it has ended
    assert proc.returncode == 128 + sig, stderr
    data = json.loads(report.read_text())
    assert data["status"] == "cancelled"
    line = data["blocked_in"]["line"]
    expected = f"cancelled: crashsight received {sig.name}; stopped in nap (hang_workers.py:{line})"
    assert data["summary"] == expected


def _wait_until_asleep(crashsight: int, marker: str) -> None:
    """Until crashsight's worker (the child whose command names ``marker``) sleeps in its block."""
    worker = next(
        child
        for child in psutil.Process(crashsight).children()
        if marker in " ".join(child.cmdline())
    )
    deadline = time.monotonic() + 60
    while worker.status() != psutil.STATUS_SLEEPING and time.monotonic() < deadline:
        time.sleep(0.01)


def test_another_dump_signal_reaches_the_workers(runs: dict[str, HangRun | None]) -> None:
    """``--dump-signal usr1`` is the signal the workers register (this one handles it)."""
    run = runs["usr1"]
    assert run is not None
    assert run.result.returncode == 124, run.result.stderr
    notes = run.report["notes"]
    assert any("handles SIGUSR1 itself" in note for note in notes), notes
    assert run.report["blocked_in"]["function"] == "nap_with_own_handler"


def test_native_stacks_without_py_spy_says_why(runs: dict[str, HangRun | None]) -> None:
    """``--native-stacks`` where py-spy is not installed: a one-line note, Python stacks still."""
    run = runs["no-py-spy"]
    if run is None:
        pytest.skip("the base interpreter has py-spy beside it")
    assert run.result.returncode == 124, run.result.stderr
    note = "--native-stacks: py-spy is not installed (pip install 'crashsight[stacks]')"
    assert any(note in line for line in run.report["notes"]), run.report["notes"]
    assert run.report["blocked_in"]["function"] == "nap"


def test_a_dump_signal_crashsight_needs_is_refused() -> None:
    """A signal that stops or kills is refused before anything starts, with status 2."""
    result = crashsight_run("--dump-signal", "SIGTERM", "--", "true")
    assert result.returncode == 2
    assert "SIGTERM cannot carry stack dumps" in result.stderr
