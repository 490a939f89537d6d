"""``python orphan_harness.py MECHANISM``: one orphan-protection mechanism alone, observed from above.

A runner is protected against its supervisor's death three ways (PR_SET_PDEATHSIG through the exec
shim, the bootstrap's watch for end-of-file on its lifeline, the guardian process). To prove each one on its own, this
harness builds a stand-in supervisor from crashsight's own pieces with only one mechanism present,
and watches what happens when the stand-in is SIGKILLed:

    harness (child subreaper: reaps and reports every orphan)
      └── stand-in supervisor (crashsight's spawn() / Guardian, nothing else)  <- the test kills it
            └── worker (and, for the channel watch, a child in the worker's process group)

The harness is a child subreaper (``PR_SET_CHILD_SUBREAPER``), so the worker is re-parented to it
when the stand-in dies, and the harness can reap it and report the signal that killed it: which
signal arrives says which mechanism acted.

Output, one JSON object per line on stdout: first the stand-in's ``{"supervisor": pid, "worker":
pid, "group": [pids]}`` once the worker is protected, then ``{"pid": pid, "signal": name}`` or
``{"pid": pid, "code": n}`` for every process the harness reaps. The harness exits when it has no
children left.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from crashsight.runner.channel import BOOTSTRAP_ENV
from crashsight.supervisor.guardian import Guardian
from crashsight.supervisor.spawn import SpawnedProcess, python_target_command, spawn

_PR_SET_CHILD_SUBREAPER = 36
_WAIT_S = 30.0
_WORKERS = Path(__file__).resolve().parent.parent / "workers.py"

#: The mechanisms of the bootstrap's watch: the worker (in tests/workers.py) and its arguments.
_WATCHED = {
    # The watch thread, asleep in its read of the lifeline, wakes at the end-of-file.
    "watch": ("child_in_group_then_hang",),
    # The same after the program closed every descriptor behind crashsight's back: the read in
    # progress holds the lifeline's socket, not its number.
    "watch-after-close": ("child_in_group_then_drop_descriptors", "close"),
    # The same after the program put a file of its own on every number.
    "watch-after-reuse": ("child_in_group_then_drop_descriptors", "reuse"),
    # A worker that exits as soon as the stand-in is gone, before the watch thread can run: the
    # same check at the interpreter's exit must stop its child.
    "watch-at-exit": ("child_in_group_then_exit_when_orphaned",),
}


def _say(record: dict[str, object]) -> None:
    os.write(1, (json.dumps(record) + "\n").encode())


def _start(argv: list[str], *, bootstrap: bool) -> SpawnedProcess:
    """crashsight's own spawn(); with ``bootstrap`` set, no exec shim (so no PR_SET_PDEATHSIG)."""
    env = dict(os.environ)
    if bootstrap:
        env[BOOTSTRAP_ENV] = "1"
    else:
        env.pop(BOOTSTRAP_ENV, None)
    return spawn(
        argv,
        runner_id=uuid.uuid4().hex,
        env=env,
        cwd=None,
        max_frame_bytes=1 << 20,
        inherit_stdin=False,
    )


def _wait_until(condition: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + _WAIT_S
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"orphan_harness: timed out waiting until {condition}")
        time.sleep(0.01)


def _stand_in(mechanism: str) -> None:
    """The stand-in supervisor: start one worker with one mechanism, report, then wait to die."""
    group: list[int] = []
    if mechanism == "pdeathsig":
        # `sleep` never opens the channel, and nothing else is started: only the shim's death
        # signal can end it. It is armed once the shim has exec'd the program.
        proc = _start(["sleep", "600"], bootstrap=False)
        _wait_until(
            "the shim exec'd sleep",
            lambda: os.path.basename(os.readlink(f"/proc/{proc.pid}/exe")) == "sleep",
        )
    elif mechanism in _WATCHED:
        # The bootstrap watches its lifeline; no shim (bootstrapped runners get none), no
        # guardian. The worker prints its child's pid once it has done what the mechanism names,
        # and the stand-in dies with the worker's events unread.
        command = python_target_command(f"{_WORKERS}:{_WATCHED[mechanism][0]}")
        proc = _start([*command, *_WATCHED[mechanism][1:]], bootstrap=True)
        os.set_blocking(proc.ends.stdout_fd, True)
        group.append(int(os.read(proc.ends.stdout_fd, 64)))
    elif mechanism == "guardian":
        # A bootstrapped `sleep` gets no shim and watches no channel: only the guardian acts.
        guardian = Guardian()
        proc = _start(["sleep", "600"], bootstrap=True)
        guardian.watch(proc.pid)
    else:
        raise SystemExit(f"orphan_harness: unknown mechanism {mechanism!r}")
    _say({"supervisor": os.getpid(), "worker": proc.pid, "group": group})
    while True:
        signal.pause()


def main(mechanism: str) -> None:
    """Become a subreaper, fork the stand-in, then reap and report every process until none is left."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise SystemExit(f"orphan_harness: prctl: {os.strerror(ctypes.get_errno())}")
    if os.fork() == 0:
        try:
            _stand_in(mechanism)
        finally:
            os._exit(1)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return
        if os.WIFSIGNALED(status):
            _say({"pid": pid, "signal": signal.Signals(os.WTERMSIG(status)).name})
        else:
            _say({"pid": pid, "code": os.waitstatus_to_exitcode(status)})


if __name__ == "__main__":
    main(sys.argv[1])
