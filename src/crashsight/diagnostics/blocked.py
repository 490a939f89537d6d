"""Where a stuck worker is blocked: the user's frame in the stuck thread, and what it waits on.

The rule, in order:

1. **The process.** The first process of the tree (the runner, then its descendants, parents
   before children) whose stacks were dumped. A shell running ``python train.py`` has no Python
   stacks; its python child does.
2. **The thread.** The main thread, unless all it does is wait for other threads (``join``, a
   future's ``result``, a pool's ``map`` without worker processes): then the first other thread
   with a frame of the user's code. Idle pool threads have none, so the one that is busy wins.
3. **The frame.** The innermost frame of the user's own code: any file outside the standard
   library (``.../lib/pythonX.Y/``, frozen modules), ``site-packages`` / ``dist-packages`` and
   crashsight itself. With no such frame anywhere, the thread's innermost frame.
4. **What it waits on.** The library frames called from that frame, matched against `WAITS`
   (outermost first: ``queue.get`` is a queue, not the condition variable inside it). When it
   waits on a child process, the child is named: the one the kernel shows it waiting for in
   ``wait4``/``waitid`` (``ProcessInfo.waiting_for``), else the only one it has.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from ..protocol import FrameInfo
from .hangs import BlockedIn, ProcessInfo, ThreadStack, WaitedChild, WaitKind

__all__ = ["WAITS", "Wait", "find_blocked_in", "is_user_code", "odd_one_out"]

#: ``pool``: a child process when the process has children, else another thread.
_Kind = WaitKind | Literal["pool"]


class Wait:
    """Library functions that block, and what they wait for.

    Args:
        path: The end of the file's path, e.g. ``/subprocess.py``.
        functions: Function names in that file.
        kind: What a thread inside them waits for.
        source: Where the function is defined, for the reader of this table.
    """

    __slots__ = ("functions", "kind", "path", "source")

    def __init__(self, path: str, functions: tuple[str, ...], kind: _Kind, source: str) -> None:
        self.path = path
        self.functions = frozenset(functions)
        self.kind: _Kind = kind
        self.source = source

    def matches(self, frame: FrameInfo) -> bool:
        """Whether ``frame`` is one of these functions."""
        # py-spy names methods by qualified name (Condition.wait); faulthandler by name (wait)
        name = frame.function.rpartition(".")[2]
        return name in self.functions and frame.file.replace("\\", "/").endswith(self.path)


#: Blocking library calls, by what they wait for. A C function (``lock.acquire``, ``time.sleep``,
#: ``socket.recv``) has no frame of its own: the user's frame is then the innermost one.
WAITS: tuple[Wait, ...] = (
    Wait("/subprocess.py", ("run", "call", "check_call", "check_output", "communicate",
         "_communicate", "wait", "_wait", "_try_wait"), "child", "CPython Lib/subprocess.py"),
    Wait("/multiprocessing/popen_fork.py", ("wait", "poll"), "child",
         "CPython Lib/multiprocessing/popen_fork.py"),
    Wait("/multiprocessing/process.py", ("join",), "child", "CPython Lib/multiprocessing/process.py"),
    Wait("/multiprocessing/pool.py", ("map", "starmap", "apply", "get", "wait", "join"), "pool",
         "CPython Lib/multiprocessing/pool.py"),
    Wait("/multiprocessing/connection.py", ("recv", "recv_bytes", "poll", "wait"), "pool",
         "CPython Lib/multiprocessing/connection.py"),
    Wait("/concurrent/futures/_base.py", ("result", "wait", "as_completed", "__exit__"), "pool",
         "CPython Lib/concurrent/futures/_base.py"),
    Wait("/concurrent/futures/thread.py", ("shutdown",), "thread",
         "CPython Lib/concurrent/futures/thread.py"),
    Wait("/concurrent/futures/process.py", ("shutdown",), "child",
         "CPython Lib/concurrent/futures/process.py"),
    Wait("/threading.py", ("join", "_wait_for_tstate_lock"), "thread", "CPython Lib/threading.py"),
    Wait("/queue.py", ("get", "put", "join"), "queue", "CPython Lib/queue.py"),
    Wait("/asyncio/queues.py", ("get", "put", "join"), "queue", "CPython Lib/asyncio/queues.py"),
    Wait("/threading.py", ("wait", "wait_for", "acquire"), "lock", "CPython Lib/threading.py"),
    Wait("/asyncio/runners.py", ("run",), "event loop", "CPython Lib/asyncio/runners.py"),
    Wait("/asyncio/base_events.py", ("run_until_complete", "run_forever", "_run_once"),
         "event loop", "CPython Lib/asyncio/base_events.py"),
    Wait("/selectors.py", ("select",), "event loop", "CPython Lib/selectors.py"),
    Wait("/trio/_core/_run.py", ("run",), "event loop", "trio src/trio/_core/_run.py"),
    Wait("/anyio/_core/_eventloop.py", ("run",), "event loop", "anyio src/anyio/_core/_eventloop.py"),
    Wait("/socket.py", ("accept", "readinto", "create_connection", "recv_into"), "socket",
         "CPython Lib/socket.py"),
    Wait("/ssl.py", ("read", "recv", "recv_into", "do_handshake", "accept"), "socket",
         "CPython Lib/ssl.py"),
)  # fmt: skip

_STDLIB = re.compile(r"/lib/python\d+\.\d+t?/|^<frozen ")
_PACKAGES = ("/site-packages/", "/dist-packages/")
_CRASHSIGHT = str(Path(__file__).resolve().parents[1]).replace("\\", "/") + "/"


def is_user_code(file: str) -> bool:
    """Whether ``file`` is the user's: not the standard library, an installed package or crashsight."""
    path = file.replace("\\", "/")
    library = _STDLIB.search(path) or any(part in path for part in _PACKAGES)
    return not library and not path.startswith(_CRASHSIGHT)


def find_blocked_in(stacks: Sequence[ThreadStack], tree: Sequence[ProcessInfo]) -> BlockedIn | None:
    """Where the stuck thread is, by the rule in the module docstring; None without stacks.

    Args:
        stacks: Every dumped thread, in the order of the processes in ``tree``.
        tree: The runner's process tree, the runner first, parents before children.
    """
    order = [p.pid for p in tree] + [s.pid for s in stacks]
    dumped = [pid for pid in dict.fromkeys(order) if any(s.pid == pid for s in stacks)]
    if not dumped:
        return None
    pid = dumped[0]
    children = [p for p in tree if p.ppid == pid]
    threads = sorted(
        (s for s in stacks if s.pid == pid and s.frames),
        key=lambda s: (s.thread_name != "MainThread", not s.current),
    )
    if not threads:
        return None
    candidates = [(stack, *_user_frame(stack, bool(children))) for stack in threads]
    chosen = candidates[0]
    if chosen[2] == "thread" or chosen[1] is None:
        busy = [c for c in candidates[1:] if c[1] is not None and c[2] != "thread"]
        if busy:
            chosen = busy[0]
    stack, index, kind = chosen
    frame = stack.frames[index if index is not None else -1]
    child = _waited_child(children, tree, pid) if kind == "child" else None
    return BlockedIn(
        file=frame.file,
        line=frame.line,
        function=frame.function,
        pid=pid,
        thread_id=stack.thread_id,
        thread_name=stack.thread_name,
        waiting_on=kind,
        child=child,
    )


def _waited_child(
    children: Sequence[ProcessInfo], tree: Sequence[ProcessInfo], pid: int
) -> WaitedChild | None:
    """The child the kernel says ``pid`` waits for, else its only child; None among several."""
    waited = next((p.waiting_for for p in tree if p.pid == pid), [])
    named = [c for c in children if c.pid in waited] or (
        list(children) if len(children) == 1 else []
    )
    return WaitedChild(pid=named[0].pid, name=named[0].name) if len(named) == 1 else None


def odd_one_out(blocked: Mapping[str, BlockedIn | None]) -> str | None:
    """The one runner stuck somewhere other than all the others: the root cause of a job hang.

    In a distributed job that hangs, every rank but one waits in the same collective for the one
    stuck in its own code (or in another collective). A runner without stacks counts as a place
    of its own: it is not known to wait with the others.

    Args:
        blocked: Each runner's (or rank's) ``blocked_in``, by its name.

    Returns:
        The name of the only runner whose place (file, line, function) differs from the one all
        the others, at least two, share; None when there is no such consensus.
    """
    where = {
        name: None if b is None else (b.file, b.line, b.function) for name, b in blocked.items()
    }
    counts = Counter(where.values())
    if len(counts) != 2:
        return None
    (_, shared), (odd, alone) = counts.most_common()
    if alone != 1 or shared < 2:
        return None
    return next(name for name, place in where.items() if place == odd)


def _user_frame(stack: ThreadStack, has_children: bool) -> tuple[int | None, WaitKind | None]:
    """The index of the innermost user frame (None if none), and what the frames inside wait on."""
    frames = stack.frames
    index = next((i for i in range(len(frames) - 1, -1, -1) if is_user_code(frames[i].file)), None)
    below = frames[(index + 1 if index is not None else 0) :]
    for frame in below:
        for wait in WAITS:
            if wait.matches(frame):
                if wait.kind == "pool":
                    return index, "child" if has_children else "thread"
                return index, wait.kind
    return index, None
