"""The worker side of the stack dumps: real interpreters, real signals, real files.

Each test starts a plain ``python -c`` with ``CRASHSIGHT_STACKS_DIR`` set, so the ``.pth`` hook
registers it exactly as it registers every Python process of a runner's tree.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from crashsight.diagnostics.stacks import parse_stack_file
from crashsight.runner.stackdump import STACKS_DIR_ENV


def python(code: str, folder: Path, **options: object) -> subprocess.Popen[str]:
    env = {**os.environ, STACKS_DIR_ENV: str(folder)}
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **options,
    )


def finish(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=60)
    assert not err or "Traceback" not in err, err
    return out


def stack_file(folder: Path, pid: int) -> str:
    return (folder / f"{pid}.stacks").read_text()


def test_no_thread_no_timer_and_the_program_goes_on(tmp_path: Path) -> None:
    """Registered: no extra thread, no timer; a dump signal writes the stacks and changes nothing."""
    proc = python(
        """
        import os, signal, threading
        print(threading.active_count(), signal.getitimer(signal.ITIMER_REAL))
        os.kill(os.getpid(), signal.SIGUSR2)
        print("still running")
        """,
        tmp_path,
    )
    assert finish(proc).splitlines() == ["1 (0.0, 0.0)", "still running"]
    assert proc.returncode == 0
    parsed = parse_stack_file(stack_file(tmp_path, proc.pid), proc.pid)
    [dump] = parsed.dumps
    [main] = dump
    assert main.thread_name == "MainThread"
    assert main.current
    assert [frame.function for frame in main.frames] == ["<module>"]


def test_outside_a_runner_nothing_is_registered() -> None:
    """Without the folder, install() leaves the signals and signal.signal as they were."""
    code = """
        import _signal, faulthandler, signal
        original = _signal.signal
        from crashsight.runner import stackdump
        stackdump.install()
        print(_signal.signal is original, faulthandler.unregister(signal.SIGUSR2))
    """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={k: v for k, v in os.environ.items() if k != STACKS_DIR_ENV},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["True", "False"]


def test_a_forked_child_dumps_into_its_own_file(tmp_path: Path) -> None:
    """Parent and forked child each write one dump, each into the file named by its own pid."""
    proc = python(
        """
        import os, signal
        child = os.fork()
        if child == 0:
            os.kill(os.getpid(), signal.SIGUSR2)
            os._exit(0)
        os.waitpid(child, 0)
        os.kill(os.getpid(), signal.SIGUSR2)
        print(child)
        """,
        tmp_path,
    )
    child = int(finish(proc))
    for pid in (proc.pid, child):
        parsed = parse_stack_file(stack_file(tmp_path, pid), pid)
        assert len(parsed.dumps) == 1, pid
        assert parsed.main_thread is not None


def test_an_inherited_ignore_is_left_alone(tmp_path: Path) -> None:
    """A dump signal the process inherited as ignored stays ignored, and the file says so."""
    proc = python(
        "print('ok')",
        tmp_path,
        preexec_fn=lambda: signal.signal(signal.SIGUSR2, signal.SIG_IGN),
    )
    finish(proc)
    parsed = parse_stack_file(stack_file(tmp_path, proc.pid), proc.pid)
    assert parsed.notes == ["own handler for SIGUSR2 (ignored); left alone"]


def test_sigterm_dumps_then_ends_the_process_as_sigterm_does(tmp_path: Path) -> None:
    """SIGTERM from outside: the stacks are written, then the process dies of SIGTERM."""
    proc = python(
        """
        import time
        def wait_for_orders():
            print("ready", flush=True)
            time.sleep(3600)
        wait_for_orders()
        """,
        tmp_path,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    finish(proc)
    assert proc.returncode == -signal.SIGTERM
    [dump] = parse_stack_file(stack_file(tmp_path, proc.pid), proc.pid).dumps
    assert dump[0].frames[-1].function == "wait_for_orders"


@pytest.mark.parametrize("how", ["signal.signal", "asyncio"])
def test_a_sigterm_handler_of_the_program_wins(tmp_path: Path, how: str) -> None:
    """The program's own SIGTERM handler replaces the dump, however it is set; the file says so."""
    code = {
        "signal.signal": """
            import os, signal, time
            signal.signal(signal.SIGTERM, lambda *_: os._exit(3))
            print("ready", flush=True)
            time.sleep(3600)
        """,
        "asyncio": """
            import asyncio, os, signal
            loop = asyncio.new_event_loop()
            loop.add_signal_handler(signal.SIGTERM, os._exit, 3)
            print("ready", flush=True)
            loop.run_until_complete(asyncio.sleep(3600))
        """,
    }[how]
    proc = python(code, tmp_path)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    finish(proc)
    assert proc.returncode == 3
    parsed = parse_stack_file(stack_file(tmp_path, proc.pid), proc.pid)
    assert parsed.dumps == []
    [note] = parsed.notes
    assert note.startswith("own handler for SIGTERM (")
    assert "installed at " in note
    assert note.endswith("crashsight's stack dump on it is replaced")
