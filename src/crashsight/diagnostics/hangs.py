"""What a stuck worker looked like at the moment it was stopped: stacks, process tree, where.

These shapes are filled by the supervisor (`crashsight.supervisor.snapshot`) from the dumps the
workers write (`crashsight.runner.stackdump`) and from the process table, and read by every report.
They are a contract with operators' tooling, like the report itself: fields may be added, never
renamed.

::

    RunnerFailed / RunnerCancelled / Report
    ├── stacks[]        ThreadStack: one per Python thread of every process that answered
    ├── blocked_in      BlockedIn: the user's innermost frame in the stuck thread, and what it waits on
    └── process_tree[]  ProcessInfo: the runner and every descendant at the stop
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..protocol import FrameInfo

__all__ = ["BlockedIn", "ProcessInfo", "ThreadStack", "WaitKind", "WaitedChild"]

#: What the standard-library frames under the user's frame wait for (see `crashsight.diagnostics.blocked`).
WaitKind = Literal["child", "thread", "lock", "queue", "event loop", "socket", "sleep"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ThreadStack(_Model):
    """One Python thread's stack at the stop, as the process itself dumped it."""

    pid: int = Field(description="The process the thread belongs to.")
    thread_id: int = Field(
        description="Python's thread identifier (pthread id), as threading.get_ident()."
    )
    thread_name: str | None = Field(
        default=None, description="'MainThread' for the main thread; None when not known."
    )
    current: bool = Field(
        default=False,
        description="The thread that wrote the dump ('Current thread'): the one that handled the "
        "signal, or crashsight's own thread in a runner asked over its lifeline.",
    )
    frames: list[FrameInfo] = Field(default_factory=list, description="Innermost last.")
    truncated: bool = Field(
        default=False, description="The dump stopped before the outermost frame (over 100 frames)."
    )
    native_frames: list[FrameInfo] = Field(
        default_factory=list,
        description="C/C++ and Python frames interleaved, innermost last, from py-spy "
        "(--native-stacks); empty otherwise.",
    )


class ProcessInfo(_Model):
    """One process of the runner's tree at the stop."""

    pid: int
    ppid: int
    name: str
    cmdline: list[str] = Field(default_factory=list, description="Redacted like every argv.")
    state: str = Field(description="As the OS reports it: running, sleeping, disk-sleep, ...")
    cpu_time_s: float = Field(description="User plus system CPU time so far.")
    age_s: float = Field(description="Seconds since the process started.")
    stacks: bool = Field(default=False, description="Whether its threads are in `stacks`.")
    waiting_for: list[int] = Field(
        default_factory=list,
        description="The children it waits for in wait4/waitid, as Linux shows it; empty elsewhere.",
    )


class WaitedChild(_Model):
    """The child process the stuck thread waits for."""

    pid: int
    name: str


class BlockedIn(_Model):
    """Where the stuck thread is: the innermost frame of the user's own code on its stack.

    The user's code is any file outside the standard library, site-packages/dist-packages and
    crashsight itself. The stuck thread is the main thread of the first Python process of the
    tree that answered, unless the main thread only waits for other threads (``join``, a
    future's ``result``): then it is the first other thread with a frame of the user's code.
    """

    file: str
    line: int | None = None
    function: str
    pid: int
    thread_id: int
    thread_name: str | None = None
    waiting_on: WaitKind | None = Field(
        default=None,
        description="What the library frames under this one wait for; None when the user's "
        "frame itself is innermost (a C call such as lock.acquire or time.sleep).",
    )
    child: WaitedChild | None = Field(
        default=None, description="The child process waited on, when it can be named."
    )

    def describe(self) -> str:
        """``flush_shard (writer.py:88) waiting on child sleep (pid 4242)``."""
        base = self.file.replace("\\", "/").rsplit("/", 1)[-1]
        where = (
            f"{self.function} ({base}:{self.line})" if self.line else f"{self.function} ({base})"
        )
        if self.child is not None:
            return f"{where} waiting on child {self.child.name} (pid {self.child.pid})"
        if self.waiting_on is not None:
            return f"{where} waiting on {_WAIT_WORDS[self.waiting_on]}"
        return where


_WAIT_WORDS: dict[WaitKind, str] = {
    "child": "a child process",
    "thread": "another thread",
    "lock": "a lock or condition",
    "queue": "a queue",
    "event loop": "I/O in its event loop",
    "socket": "a socket",
    "sleep": "a sleep",
}
