"""Reading stack files: real faulthandler dumps, written by real interpreters, parsed back."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from crashsight.diagnostics.stacks import parse_stack_file, with_source_lines
from crashsight.runner.stackdump import STACKS_DIR_ENV

#: Two dumps of a process with a thread 150 frames deep: over faulthandler's 100-frame limit.
DEEP = """
    import os, signal, threading

    def descend(depth, ready, release):
        if depth:
            return descend(depth - 1, ready, release)
        ready.set()
        release.wait()

    ready, release = threading.Event(), threading.Event()
    worker = threading.Thread(target=descend, args=(150, ready, release))
    worker.start()
    ready.wait()
    os.kill(os.getpid(), signal.SIGUSR2)
    os.kill(os.getpid(), signal.SIGUSR2)
    release.set()
    worker.join()
"""


def _dump_file(tmp_path: Path, code: str) -> tuple[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, STACKS_DIR_ENV: str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
    )
    [path] = tmp_path.glob("*.stacks")
    assert done.stderr == ""
    return path.read_text(), int(path.stem)


def test_dumps_threads_and_cut_stacks(tmp_path: Path) -> None:
    """Each dump is split off, threads keep their ids, a cut stack says so, frames run outward-in."""
    text, pid = _dump_file(tmp_path, DEEP)
    parsed = parse_stack_file(text, pid)
    assert len(parsed.dumps) == 2
    first, second = parsed.dumps
    assert [s.thread_id for s in first] == [s.thread_id for s in second]
    deep = next(s for s in first if s.thread_name != "MainThread")
    main = next(s for s in first if s.thread_name == "MainThread")
    assert deep.truncated
    assert len(deep.frames) == 100
    assert deep.frames[-1].function == "wait", "Event.wait, innermost last"
    assert {f.function for f in deep.frames[:-3]} == {"descend"}
    assert not main.truncated
    assert main.current
    assert main.frames[0].function == "<module>"
    assert all(s.pid == pid for s in first)


def test_a_dump_being_written_is_read_up_to_its_last_whole_line(tmp_path: Path) -> None:
    """A file read while a dump is still arriving yields the whole lines, never half a frame."""
    text, pid = _dump_file(tmp_path, DEEP)
    cut = text[: text.index('  File "', text.index("Current thread")) + 9]
    parsed = parse_stack_file(cut, pid)
    current = next(s for s in parsed.dumps[0] if s.current)
    assert current.frames == []


def test_source_lines_come_from_readable_files(tmp_path: Path) -> None:
    """The code of a frame is its source line when the file is readable, else nothing."""
    script = tmp_path / "job.py"
    script.write_text(
        "def dump_now():\n"
        "    exec('import os, signal; os.kill(os.getpid(), signal.SIGUSR2)')\n"
        "dump_now()\n"
    )
    folder = tmp_path / "stacks"
    folder.mkdir()
    done = subprocess.run(
        [sys.executable, str(script)], env={**os.environ, STACKS_DIR_ENV: str(folder)}, check=True
    )
    [path] = folder.glob("*.stacks")
    [[main]] = parse_stack_file(path.read_text(), int(path.stem)).dumps
    with_source_lines([main])
    assert done.returncode == 0
    assert [(Path(f.file).name, f.function, f.code) for f in main.frames] == [
        ("job.py", "<module>", "dump_now()"),
        ("job.py", "dump_now", "exec('import os, signal; os.kill(os.getpid(), signal.SIGUSR2)')"),
        ("<string>", "<module>", None),
    ]


def test_thread_names_and_the_thread_cap_of_newer_pythons() -> None:
    """CPython 3.14 prints a thread's name in brackets; over 100 threads, a lone ``...`` ends it.

    The header line is CPython's example from python/cpython#125434, which added the name.
    """
    text = (
        "Thread 0x00003b9c [Thread pool worker 1] (most recent call first):\n"
        '  File "C:\\ProgramFiles\\Python\\Python312\\Lib\\threading.py", line 1012 in run\n'
        "...\n"
    )
    parsed = parse_stack_file(text, 7)
    [[worker]] = parsed.dumps
    assert (worker.thread_id, worker.thread_name) == (0x3B9C, "Thread pool worker 1")
    assert worker.frames[0].function == "run"
    assert parsed.threads_cut
