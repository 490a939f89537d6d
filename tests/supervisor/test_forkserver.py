"""Warm starts: runners forked from a zygote that preloaded modules, with a cold runner's guarantees."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import psutil
import pytest

from crashsight.errors import SpawnError
from crashsight.supervisor.status import RunnerFailed, RunnerSucceeded
from crashsight.supervisor.supervisor import Supervisor

INJECT = "crashsight.testing.targets:"

#: A target that tells, through its exit code, how it was started: 1 if the preloaded module
#: was already imported, 2 if the supervisor is its parent, 4 if it leads its own session.
PROBE = """
import os, sys

def main():
    warm = "warm_probe_module" in sys.modules
    parent = os.getppid() == int(sys.argv[1])
    session = os.getsid(0) == os.getpid()
    print("stdout of the forked runner")
    print("stderr of the forked runner", file=sys.stderr)
    raise SystemExit(warm * 1 + parent * 2 + session * 4)
"""


#: A target that writes down what a runner's start gave it, to compare forked and cold runners.
SEEN = """
import faulthandler, json, os, sys

def main():
    seen = {
        "faulthandler": faulthandler.is_enabled(),
        "env": {k: os.environ.get(k) for k in ("PYTHONFAULTHANDLER", "CRASHSIGHT_ANCESTOR_RUNNERS")},
        "gate_left_in_env": "CRASHSIGHT_START_GATE" in os.environ,
    }
    with open(sys.argv[1], "w") as out:
        json.dump(seen, out)
"""


@pytest.fixture
def preload_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory on PYTHONPATH with a module to preload and a probe target."""
    (tmp_path / "warm_probe_module.py").write_text("LOADED = True\n")
    (tmp_path / "probe.py").write_text(PROBE)
    (tmp_path / "seen.py").write_text(SEEN)
    (tmp_path / "starts_thread.py").write_text(
        "import threading\nthreading.Thread(target=threading.Event().wait, daemon=True,"
        " name='preload-worker').start()\n"
    )
    (tmp_path / "broken_preload.py").write_text("raise ImportError('no such backend: xyz')\n")
    # What `torch.cuda.init()` leaves behind, without a GPU: `torch.cuda.is_initialized()`
    # (torch's public API, which the zygote asks) says True.
    (tmp_path / "cuda_preload.py").write_text(
        "import sys, types\n"
        "sys.modules['torch'] = types.SimpleNamespace(\n"
        "    cuda=types.SimpleNamespace(is_initialized=lambda: True))\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    return tmp_path


@pytest.mark.asyncio
async def test_forked_runner_is_warm_in_its_own_session_with_its_own_output(
    preload_dir: Path,
) -> None:
    """A forked runner has the preload imported, leads its own session, and its output is read."""
    log = preload_dir / "out.log"
    async with Supervisor(output=str(log), preload=["warm_probe_module"]) as supervisor:
        runner = await supervisor.spawn(f"{preload_dir / 'probe.py'}:main", str(os.getpid()))
        status = await runner.wait()
    assert status.exit.code == 1 + 4, "warm, in its own session, and not the supervisor's child"
    assert "stdout of the forked runner" in log.read_text()
    assert any("stderr of the forked runner" in line for line in status.stderr_tail)


@pytest.mark.asyncio
async def test_cold_spawn_of_the_probe_is_what_the_forked_one_is_compared_to(
    preload_dir: Path,
) -> None:
    """Without preload the same probe is cold: not warm, the supervisor's child, own session."""
    async with Supervisor(output="discard") as supervisor:
        runner = await supervisor.spawn(f"{preload_dir / 'probe.py'}:main", str(os.getpid()))
        status = await runner.wait()
    assert status.exit.code == 2 + 4


@pytest.mark.asyncio
async def test_a_forked_runner_starts_with_what_a_cold_one_gets(
    preload_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fork or cold spawn, a runner nested in an outer runner gets the same start: faulthandler
    on, PYTHONFAULTHANDLER for its own Python children, the outer runner's id among its
    ancestors (the outer sweep finds it), and the start gate consumed."""
    monkeypatch.setenv("CRASHSIGHT_RUNNER_ID", "outer-runner")
    monkeypatch.delenv("PYTHONFAULTHANDLER", raising=False)
    seen: dict[str, object] = {}
    for preload in ([], ["warm_probe_module"]):
        out = preload_dir / f"seen-{len(preload)}.json"
        async with Supervisor(output="discard", preload=preload) as supervisor:
            runner = await supervisor.spawn(f"{preload_dir / 'seen.py'}:main", str(out))
            assert isinstance(await runner.wait(), RunnerSucceeded)
        seen["forked" if preload else "cold"] = json.loads(out.read_text())
    assert (
        seen["forked"]
        == seen["cold"]
        == {
            "faulthandler": True,
            "env": {"PYTHONFAULTHANDLER": "1", "CRASHSIGHT_ANCESTOR_RUNNERS": "outer-runner"},
            "gate_left_in_env": False,
        }
    )


@pytest.mark.asyncio
async def test_zygote_death_is_survived(preload_dir: Path) -> None:
    """A zygote killed under a running runner: the runner is reported killed with it, with a
    note, and the next spawn starts a new zygote and works. Nothing is left behind."""
    async with Supervisor(output="discard", preload=["warm_probe_module"]) as supervisor:
        server = supervisor._forkserver
        assert server is not None
        assert server._zygote is not None
        zygote = server._zygote.proc.pid
        hung = await supervisor.spawn(f"{INJECT}hang")
        events = hung.events()
        await anext(events)  # Ready: the runner runs
        os.kill(zygote, signal.SIGKILL)
        with anyio.fail_after(60):
            status = await hung.wait()
        assert isinstance(status, RunnerFailed)
        assert status.exit.signal == "SIGKILL"
        assert any("fork server died" in note for note in status.notes)
        again = await supervisor.spawn(f"{preload_dir / 'probe.py'}:main", str(os.getpid()))
        assert (await again.wait()).exit.code == 1 + 4
        assert server.starts == 2
        assert server._zygote is not None
        second = server._zygote.proc.pid
    for pid in (zygote, second, hung.pid or 0, again.pid or 0):
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"


@pytest.mark.asyncio
async def test_a_cancelled_supervisor_with_a_fork_server_stops_its_runners(
    preload_dir: Path,
) -> None:
    """Cancelled around a running forked runner, the supervisor stops it and returns: the fork
    server's reader of exit statuses outlives the cancellation (cancelled with it, it left the
    runner's reaping waiting forever)."""
    with anyio.move_on_after(0.5) as scope:  # the hang was shielded: pytest-timeout ends it
        async with Supervisor(output="discard", preload=["warm_probe_module"]) as supervisor:
            hung = await supervisor.spawn(f"{INJECT}hang")
            await hung.wait()
    assert scope.cancelled_caught
    status = hung.status
    assert status is not None
    assert status.status == "cancelled", status
    assert hung.pid is not None
    assert not psutil.pid_exists(hung.pid) or psutil.Process(hung.pid).status() == "zombie"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("module", "message"),
    [
        pytest.param("starts_thread", "threads are running after the preload", id="thread"),
        pytest.param("broken_preload", "no such backend: xyz", id="import-error"),
        pytest.param("cuda_preload", "CUDA is initialised after the preload", id="cuda"),
    ],
)
async def test_unsafe_or_failing_preload_is_refused(
    preload_dir: Path, module: str, message: str
) -> None:
    """A preload that leaves a thread running or CUDA initialised, or fails to import, stops the
    supervisor at entry."""
    with pytest.raises(SpawnError, match="the fork server refused to start") as info:
        async with Supervisor(output="discard", preload=[module]):
            pass
    assert message in str(info.value)


@pytest.mark.asyncio
async def test_other_interpreters_and_commands_start_cold(preload_dir: Path) -> None:
    """Only bootstrap targets on this interpreter are forked; a command still starts cold."""
    async with Supervisor(output="discard", preload=["warm_probe_module"]) as supervisor:
        command = await supervisor.spawn_command(
            [sys.executable, "-c", "import sys; sys.exit('warm_probe_module' in sys.modules)"]
        )
        status = await command.wait()
    assert isinstance(status, RunnerSucceeded)


def test_crashsight_run_preload_forks_the_target(tmp_path: Path) -> None:
    """``crashsight run --preload M -- TARGET ARGS`` forks TARGET warm and reports as usual."""
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "crashsight", "run", "--preload", "json", "--report", str(report),
         "--", f"{INJECT}segfault"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 128 + signal.SIGSEGV
    assert json.loads(report.read_text())["exit"]["signal"] == "SIGSEGV"
    assert "crash/segfault" in result.stderr


def test_crashsight_run_preload_needs_a_python_target() -> None:
    """With --preload, a command that is not a Python target is refused with a clear error."""
    result = subprocess.run(
        [sys.executable, "-m", "crashsight", "run", "--preload", "json", "--", "true"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--preload forks a Python target" in result.stderr
