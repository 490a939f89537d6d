"""crashsight's thread in the worker never takes what belongs to the program: a signal, a file,
a CPU.

The end-to-end orphan cases (the supervisor SIGKILLed, each protection alone, the program closing
or reusing every descriptor) are in tests/cli/test_signals.py; here, the watch thread's signal
mask and its wake-ups, read from the kernel, and a descriptor number the program reused.
"""

from __future__ import annotations

import _thread
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from crashsight.runner import orphan
from crashsight.runner.channel import Channel
from crashsight.runner.orphan import watch_for_supervisor_death
from crashsight.runner.stackdump import DUMP_REQUEST
from crashsight.supervisor.status import RunnerFailed, RunnerSucceeded
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


@pytest.mark.skipif(sys.platform != "linux", reason="counts the thread's switches in /proc")
@pytest.mark.asyncio
async def test_the_watch_thread_sleeps_through_the_channels_traffic(tmp_path: Path) -> None:
    """The supervisor's reading of a busy channel does not wake the watch thread.

    Asleep in a read of the channel's own socket, it was woken each time that reading freed room
    in the socket (about 1,450 times per 20,000 events), and each wake-up took a CPU from the
    supervisor. It sleeps on the lifeline, where only a request or the supervisor's death wakes it.
    """
    log = tmp_path / "out.log"
    env = {**os.environ, "EVENT_COUNT": "20000"}
    async with Supervisor(output=str(log)) as supervisor:
        runner = await supervisor.spawn(f"{WORKERS}:count_watch_wakeups", env=env)
        status = await runner.wait()
    assert isinstance(status, RunnerSucceeded), status
    assert int(log.read_text()) < 20


def test_without_a_lifeline_no_thread_is_started() -> None:
    """A channel from a supervisor that gave no lifeline has nothing to watch: no thread starts."""
    runner_end, supervisor_end = socket.socketpair()
    with runner_end, supervisor_end:
        before = _thread._count()
        watch_for_supervisor_death(Channel(runner_end))
        assert _thread._count() == before


#: A program that puts /dev/null on every descriptor above 2 the moment it starts, as a
#: daemonising library does, works a little and exits 0.
_REUSES_AT_ONCE = """
import os, time
null = os.open(os.devnull, os.O_RDWR)
for number in range(3, 64):
    if number != null:
        os.dup2(null, number)
time.sleep(0.3)
"""


@pytest.mark.asyncio
async def test_a_program_that_reuses_every_descriptor_at_once_runs_on() -> None:
    """The watch thread is in its read before the program runs, so the program's file on the
    lifeline's number is never read, nor its end-of-file taken for the supervisor's death (two
    starts of three were stopped by their own watch before it waited for the read)."""
    async with Supervisor(output="discard") as supervisor:
        runners = [
            await supervisor.spawn_command([sys.executable, "-c", _REUSES_AT_ONCE])
            for _ in range(8)
        ]
        statuses = [await runner.wait() for runner in runners]
    assert all(isinstance(status, RunnerSucceeded) for status in statuses), statuses


def test_a_request_found_at_exit_is_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check at exit reads the lifeline, so it answers a request it finds there (the
    supervisor waits for those stacks), and stops the group only when the supervisor is gone."""
    done: list[str] = []
    monkeypatch.setattr(orphan, "dump_before_stop", lambda: done.append("stacks"))
    monkeypatch.setattr(
        orphan, "_signal_own_group", lambda sig: done.append(signal.Signals(sig).name)
    )
    runner_end, supervisor_end = socket.socketpair()
    runner_lifeline, supervisor_lifeline = socket.socketpair()
    channel = Channel(runner_end, lifeline=runner_lifeline)
    with runner_end, supervisor_end, runner_lifeline:
        supervisor_lifeline.sendall(DUMP_REQUEST)
        orphan._stop_group_if_orphaned(channel)
        assert done == ["stacks"]
        supervisor_lifeline.sendall(DUMP_REQUEST)
        supervisor_lifeline.close()
        orphan._stop_group_if_orphaned(channel)
        assert done == ["stacks", "stacks", "SIGTERM"]


#: A program that closes the lifeline's descriptor behind crashsight's back and puts a pipe of its
#: own on that number; then the supervisor asks for the stacks.
_REUSED_NUMBER = """
    import os, socket, time
    from crashsight.runner.channel import Channel
    from crashsight.runner.orphan import watch_for_supervisor_death

    runner_end, _ = socket.socketpair()
    runner_lifeline, supervisor_end = socket.socketpair()
    channel = Channel(runner_end, lifeline=runner_lifeline)
    watch_for_supervisor_death(channel)
    # crashsight's watch thread: the one thread of this process besides the main one.
    (watch,) = [int(tid) for tid in os.listdir("/proc/self/task") if int(tid) != os.getpid()]
    deadline = time.monotonic() + 50
    with open(f"/proc/self/task/{watch}/wchan") as wchan:
        while "unix" not in wchan.read():  # asleep in the socket's read, not on the GIL
            if time.monotonic() > deadline:
                raise SystemExit("the watch thread never reached its read")
            time.sleep(0.01)
            wchan.seek(0)
    number = runner_lifeline.fileno()
    read_end, write_end = os.pipe()
    os.dup2(read_end, number)  # closes the lifeline's descriptor and reuses its number
    os.write(write_end, b"mine")
    supervisor_end.send(b"D")  # the request the watch thread answers
    time.sleep(0.5)
    os.set_blocking(number, False)
    try:
        print(os.read(number, 64).decode())
    except BlockingIOError:
        print("taken")
"""


@pytest.mark.skipif(sys.platform != "linux", reason="waits for the thread's read in /proc")
def test_the_watch_thread_never_reads_a_reused_descriptor_number() -> None:
    """After answering a request, the thread stops if the number is no longer the channel's."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_REUSED_NUMBER)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.stdout, done.returncode) == ("mine\n", 0), done.stderr
