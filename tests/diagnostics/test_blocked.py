"""Where a hang is blocked: the user-code rule, the stuck thread, and the odd rank of a job."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest

import crashsight
from crashsight.diagnostics.blocked import find_blocked_in, is_user_code, odd_one_out
from crashsight.diagnostics.hangs import BlockedIn, ProcessInfo, ThreadStack
from crashsight.protocol import FrameInfo

STDLIB = sysconfig.get_paths()["stdlib"]
PURELIB = sysconfig.get_paths()["purelib"]
OWN = str(Path(crashsight.__file__).parent)


@pytest.mark.parametrize(
    ("file", "user"),
    [
        pytest.param("/srv/app/writer.py", True, id="the-users-file"),
        pytest.param("<string>", True, id="python-c"),
        pytest.param(f"{STDLIB}/threading.py", False, id="standard-library"),
        pytest.param("<frozen importlib._bootstrap>", False, id="frozen"),
        pytest.param(f"{PURELIB}/anyio/_core/_eventloop.py", False, id="site-packages"),
        pytest.param("/usr/lib/python3/dist-packages/numpy/core.py", False, id="dist-packages"),
        pytest.param(f"{OWN}/runner/bootstrap.py", False, id="crashsight"),
    ],
)
def test_user_code_rule(file: str, user: bool) -> None:
    """The user's code is whatever is not the standard library, an installed package or crashsight."""
    assert is_user_code(file) is user


def _frame(file: str, function: str, line: int = 1) -> FrameInfo:
    return FrameInfo(file=file, line=line, function=function)


def _thread(thread_id: int, *frames: FrameInfo, name: str | None = None) -> ThreadStack:
    return ThreadStack(pid=10, thread_id=thread_id, thread_name=name, frames=list(frames))


def _process(pid: int, ppid: int, name: str) -> ProcessInfo:
    return ProcessInfo(pid=pid, ppid=ppid, name=name, state="sleeping", cpu_time_s=0, age_s=1)


def test_a_main_thread_joining_another_points_at_the_other() -> None:
    """The main thread only waits for a thread: the busy thread with the user's frame is stuck."""
    main = _thread(
        1,
        _frame("/app/job.py", "main", 5),
        _frame(f"{STDLIB}/threading.py", "join"),
        _frame(f"{STDLIB}/threading.py", "_wait_for_tstate_lock"),
        name="MainThread",
    )
    idle = _thread(2, _frame(f"{STDLIB}/threading.py", "run"), _frame(f"{STDLIB}/queue.py", "get"))
    busy = _thread(3, _frame(f"{STDLIB}/threading.py", "run"), _frame("/app/job.py", "upload", 9))
    blocked = find_blocked_in([main, idle, busy], [_process(10, 1, "python")])
    assert blocked is not None
    assert (blocked.function, blocked.thread_id, blocked.waiting_on) == ("upload", 3, None)


def test_without_any_user_frame_the_innermost_frame_is_named() -> None:
    """A stack of library frames only still says where it is."""
    main = _thread(
        1, _frame(f"{OWN}/runner/bootstrap.py", "main"), _frame(f"{STDLIB}/selectors.py", "select")
    )
    blocked = find_blocked_in([main], [])
    assert blocked is not None
    assert (blocked.function, blocked.waiting_on) == ("select", "event loop")


def test_a_child_is_named_only_when_it_is_the_only_one() -> None:
    """Waiting on children: the one the kernel says, or the only one; among several, no guess."""
    main = _thread(
        1,
        _frame("/app/job.py", "run_tools", 3),
        _frame(f"{STDLIB}/subprocess.py", "wait"),
        name="MainThread",
    )
    one = [_process(10, 1, "python"), _process(11, 10, "toktx")]
    two = [*one, _process(12, 10, "ffmpeg")]
    told = [two[0].model_copy(update={"waiting_for": [12]}), *two[1:]]
    alone = find_blocked_in([main], one)
    among = find_blocked_in([main], two)
    waited = find_blocked_in([main], told)
    assert waited is not None
    assert waited.child is not None
    assert (waited.child.pid, waited.child.name) == (12, "ffmpeg")
    assert alone is not None
    assert among is not None
    assert alone.child is not None
    assert (alone.child.pid, alone.child.name) == (11, "toktx")
    assert (among.waiting_on, among.child) == ("child", None)
    assert among.describe() == "run_tools (job.py:3) waiting on a child process"


def test_no_stacks_no_blocked_in() -> None:
    """A tree without any dumped process has nothing to point at."""
    assert find_blocked_in([], [_process(10, 1, "sh")]) is None


def _at(function: str, line: int) -> BlockedIn:
    return BlockedIn(file="train.py", line=line, function=function, pid=1, thread_id=1)


@pytest.mark.parametrize(
    ("blocked", "odd"),
    [
        pytest.param({"a": _at("f", 1), "b": _at("f", 1), "c": _at("g", 2)}, "c", id="one-apart"),
        pytest.param({"a": _at("f", 1), "b": _at("f", 1), "c": None}, "c", id="no-stacks"),
        pytest.param({"a": _at("f", 1), "b": _at("f", 1)}, None, id="all-together"),
        pytest.param({"a": _at("f", 1), "b": _at("g", 2)}, None, id="two-apart"),
        pytest.param(
            {"a": _at("f", 1), "b": _at("g", 2), "c": _at("h", 3)}, None, id="no-consensus"
        ),
    ],
)
def test_odd_one_out_needs_a_consensus(
    blocked: dict[str, BlockedIn | None], odd: str | None
) -> None:
    """Only one runner apart from a place at least two others share is called the odd one."""
    assert odd_one_out(blocked) == odd
