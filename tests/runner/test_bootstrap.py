"""The bootstrap's contract, through the real supervisor: exit codes, phases, async targets."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from crashsight.protocol import Progress, RunnerTerminationError
from crashsight.supervisor.status import RunnerFailed, RunnerStatus, RunnerSucceeded
from crashsight.supervisor.supervisor import Supervisor


async def _run_source(tmp_path: Path, source: str, **env: str) -> tuple[RunnerStatus, list[object]]:
    worker = tmp_path / "worker.py"
    worker.write_text(source)
    async with Supervisor(output="discard") as supervisor:
        runner = await supervisor.spawn(f"{worker}:main", env={**os.environ, **env})
        events: list[object] = [e async for e in runner.events()]
        return await runner.wait(), events


@pytest.mark.asyncio
async def test_system_exit_keeps_its_code(tmp_path: Path) -> None:
    """`SystemExit(4)` exits 4 and is not reported as a crash of the target."""
    status, events = await _run_source(tmp_path, "def main():\n    raise SystemExit(4)\n")
    assert status.exit.code == 4
    assert not any(isinstance(e, RunnerTerminationError) for e in events)


@pytest.mark.asyncio
async def test_keyboard_interrupt_is_reported_as_such(tmp_path: Path) -> None:
    """KeyboardInterrupt is sent as a termination error, then the process dies as Python does."""
    status, events = await _run_source(tmp_path, "def main():\n    raise KeyboardInterrupt\n")
    errors = [e for e in events if isinstance(e, RunnerTerminationError)]
    assert [e.type for e in errors] == ["KeyboardInterrupt"]
    assert isinstance(status, RunnerFailed)
    assert status.exit.signal == "SIGINT"
    assert (status.category, status.subcategory) == ("python", "KeyboardInterrupt")


@pytest.mark.asyncio
async def test_async_target_is_awaited(tmp_path: Path) -> None:
    """An `async def` target runs to completion and its exception arrives structured."""
    source = (
        "import asyncio\n"
        "async def main():\n"
        "    await asyncio.sleep(0)\n"
        "    raise LookupError('no such shard')\n"
    )
    status, _ = await _run_source(tmp_path, source)
    assert isinstance(status, RunnerFailed)
    assert status.termination_error is not None
    assert status.termination_error.type == "LookupError"
    assert status.summary == "python/LookupError: no such shard"


@pytest.mark.asyncio
async def test_faulthandler_dump_reaches_stderr_tail(tmp_path: Path) -> None:
    """faulthandler is on for all threads, so a segfault leaves a parsed Python stack."""
    source = "import ctypes\ndef crash():\n    ctypes.memset(0, 0, 1)\ndef main():\n    crash()\n"
    status, _ = await _run_source(tmp_path, source)
    assert isinstance(status, RunnerFailed)
    assert "Fatal Python error: Segmentation fault" in status.stderr_tail
    assert status.termination_error is not None
    assert status.termination_error.source == "stderr"
    assert status.termination_error.frames[-1].function == "crash"


@pytest.mark.asyncio
async def test_pythonfaulthandler_empty_disables_it(tmp_path: Path) -> None:
    """PYTHONFAULTHANDLER set but empty is the user's 'off', and the bootstrap respects it."""
    source = "import ctypes\ndef main():\n    ctypes.memset(0, 0, 1)\n"
    status, _ = await _run_source(tmp_path, source, PYTHONFAULTHANDLER="")
    assert status.exit.signal == "SIGSEGV"
    assert "Fatal Python error: Segmentation fault" not in status.stderr_tail


@pytest.mark.asyncio
async def test_bad_target_spec_is_a_bootstrap_failure() -> None:
    """A target that does not exist fails in phase 'bootstrap' with the real ImportError."""
    async with Supervisor(output="discard") as supervisor:
        runner = await supervisor.spawn("crashsight_no_such_module:main")
        status = await runner.wait()
    assert isinstance(status, RunnerFailed)
    assert status.termination_error is not None
    assert status.termination_error.phase == "bootstrap"
    assert status.termination_error.type == "ModuleNotFoundError"


@pytest.mark.asyncio
async def test_output_to_log_file(tmp_path: Path) -> None:
    """With `output=PATH`, both streams are appended to the log while still being watched.

    Each line is one write: the two streams are two pipes, merged into the log chunk by chunk
    as `2>&1` merges them, so print() under PYTHONUNBUFFERED (text and newline written
    separately) could interleave the two lines mid-line, as it would in a shell.
    """
    log = tmp_path / "runner.log"
    code = "import os; os.write(1, b'to stdout\\n'); os.write(2, b'to stderr\\n')"
    async with Supervisor(output=log) as supervisor:
        runner = await supervisor.spawn_command([sys.executable, "-c", code])
        status = await runner.wait()
    assert isinstance(status, RunnerSucceeded)
    assert sorted(log.read_text().splitlines()) == ["to stderr", "to stdout"]
    assert status.stderr_tail == ["to stderr"]


@pytest.mark.asyncio
async def test_an_undecodable_file_name_in_the_last_words_arrives(tmp_path: Path) -> None:
    """A message holding an undecodable file name (lone surrogates) still arrives over the channel,
    with the name as Python prints it, and with the worker's progress about that file."""
    source = (
        "import os\n"
        "from crashsight import runner\n"
        "def main():\n"
        "    name = os.fsdecode(b'shard-\\xff.bin')\n"
        "    runner.progress(f'reading {name}')\n"
        "    raise ValueError(f'cannot read {name}')\n"
    )
    status, events = await _run_source(tmp_path, source)
    assert isinstance(status, RunnerFailed)
    assert status.protocol_issues == []
    assert status.termination_error is not None
    assert status.termination_error.source == "channel"
    assert status.termination_error.message == "cannot read shard-\\udcff.bin"
    assert status.summary == "python/ValueError: cannot read shard-\\udcff.bin"
    assert [e.message for e in events if isinstance(e, Progress)] == ["reading shard-\\udcff.bin"]


#: A worker that dies of "Too many open files", holding every descriptor it could open while the
#: exception propagates (the list stays referenced from the traceback's frame).
OUT_OF_DESCRIPTORS = """
import os, resource

def open_every_shard():
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    held = []
    while True:
        held.append(open(os.devnull))

def main():
    open_every_shard()
"""


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["bootstrap", "plain-script"])
async def test_a_worker_out_of_descriptors_still_sends_its_last_words(
    tmp_path: Path, how: str
) -> None:
    """Describing the exception opens no file (the worker cannot), so a worker that hit EMFILE
    still reports it over the channel, with its frames, and its stderr holds no second traceback
    of crashsight's own."""
    worker = tmp_path / "worker.py"
    worker.write_text(OUT_OF_DESCRIPTORS + ("main()\n" if how == "plain-script" else ""))
    async with Supervisor(output="discard") as supervisor:
        if how == "bootstrap":
            runner = await supervisor.spawn(f"{worker}:main")
        else:
            runner = await supervisor.spawn_command([sys.executable, str(worker)])
        status = await runner.wait()
    assert isinstance(status, RunnerFailed)
    assert (status.category, status.subcategory) == ("resource", "open_files")
    assert status.termination_error is not None
    assert status.termination_error.source == "channel"
    assert status.termination_error.frames[-1].function == "open_every_shard"
    assert status.protocol_issues == []
    assert not any("During handling" in line for line in status.stderr_tail)
