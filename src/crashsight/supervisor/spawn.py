"""Starting a runner process and learning how it ended.

crashsight forks with `subprocess.Popen` and reaps with ``os.wait4`` itself, instead of going through
anyio's process API, for two facts only the raw wait status and rusage give: whether a core was
dumped, and the child's peak RSS. Exit is awaited without a thread where the OS allows it (a pidfd on
Linux, readable once the child has exited), and in a worker thread elsewhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from ..errors import SpawnError
from ..runner import pdeathsig
from ..runner.bootstrap import BOOTSTRAP_COMMAND
from ..runner.channel import BOOTSTRAP_ENV, CHANNEL_FD_ENV, LIFELINE_FD_ENV, START_GATE_ENV
from .wiring import SupervisorEnds, Wiring, runner_environment

if TYPE_CHECKING:
    from .cgroup import RunnerCgroup

__all__ = ["ExitResult", "SpawnedProcess", "python_target_command", "spawn", "wait_for_exit"]

_PDEATHSIG_SHIM = pdeathsig.__file__

# Waiting threads (platforms without pidfd) must never queue behind a busy default limiter: every
# runner needs one for its whole life.
_WAIT_LIMITER = anyio.CapacityLimiter(100_000)


@dataclass
class SpawnedProcess:
    """A started runner: its process and the supervisor's ends of its wiring."""

    popen: subprocess.Popen[bytes]
    ends: SupervisorEnds
    pid: int = field(init=False)

    def __post_init__(self) -> None:
        self.pid = self.popen.pid


@dataclass(frozen=True)
class ExitResult:
    """Raw wait status and the peak resident set size the kernel recorded for the child."""

    status: int
    peak_rss_bytes: int | None


def python_target_command(
    target: str, args: Sequence[str] = (), python: str | None = None
) -> list[str]:
    """The argv that runs ``target`` (``module:function``) through the runner bootstrap."""
    return [python or sys.executable, *BOOTSTRAP_COMMAND, target, *args]


def spawn(
    argv: Sequence[str],
    *,
    runner_id: str,
    env: Mapping[str, str] | None,
    cwd: str | os.PathLike[str] | None,
    max_frame_bytes: int,
    inherit_stdin: bool,
    cgroup: RunnerCgroup | None = None,
) -> SpawnedProcess:
    """Start ``argv`` in a new session with the channel and output pipes wired up.

    With a ``cgroup``, the child starts gated (`crashsight.runner.gate`) and is moved into the
    cgroup before the gate opens, so no code of the worker runs outside it.

    Raises:
        SpawnError: The command does not exist, is not executable, or ``cwd`` is unusable; or the
            child could not be moved into a required cgroup.
    """
    child_env = runner_environment(env, runner_id, max_frame_bytes)
    if sys.platform == "linux" and not child_env.get(BOOTSTRAP_ENV):
        argv = _with_death_signal(argv, child_env, cwd)
    wiring = Wiring.open(gated=cgroup is not None)
    child_fds = wiring.child_fds()
    child_env[CHANNEL_FD_ENV] = str(child_fds["channel"])
    child_env[LIFELINE_FD_ENV] = str(child_fds["lifeline"])
    pass_fds = [child_fds["channel"], child_fds["lifeline"]]
    if cgroup is not None:
        child_env[START_GATE_ENV] = str(wiring.gate_r)
        pass_fds.append(wiring.gate_r)
    try:
        popen = subprocess.Popen(
            list(argv),
            stdin=None if inherit_stdin else subprocess.DEVNULL,
            stdout=child_fds["stdout"],
            stderr=child_fds["stderr"],
            env=child_env,
            cwd=cwd,
            pass_fds=pass_fds,
            start_new_session=True,
        )
    except OSError as exc:
        wiring.abandon()
        raise SpawnError(_explain_spawn_failure(argv, cwd, exc)) from exc
    finally:
        wiring.close_child_ends()
    if cgroup is not None:
        try:
            wiring.release(popen.pid, cgroup)
        except SpawnError:
            popen.wait()  # it exits at once at the shut gate
            wiring.abandon()
            raise
    return SpawnedProcess(popen=popen, ends=wiring.supervisor_ends())


def _with_death_signal(
    argv: Sequence[str], env: Mapping[str, str], cwd: str | os.PathLike[str] | None
) -> list[str]:
    """Wrap ``argv`` in the PR_SET_PDEATHSIG shim, resolving the program first.

    Resolution happens here, not in the shim, so that a missing or non-executable program is still
    a `SpawnError` raised at spawn time rather than an exit status of the shim.
    """
    program = argv[0]
    if os.sep not in program:
        found = shutil.which(program, path=env.get("PATH", os.defpath))
        if found is None:
            missing = FileNotFoundError(2, "No such file or directory", program)
            raise SpawnError(_explain_spawn_failure(argv, cwd, missing)) from missing
        program = found
    elif cwd is not None:
        program = os.path.join(cwd, program)
    if not os.path.isfile(program) or not os.access(program, os.X_OK):
        error: OSError = (
            FileNotFoundError(2, "No such file or directory", program)
            if not os.path.exists(program)
            else PermissionError(13, "Permission denied", program)
        )
        raise SpawnError(_explain_spawn_failure(argv, cwd, error)) from error
    return [sys.executable, "-S", _PDEATHSIG_SHIM, str(os.getpid()), program, *argv]


def _explain_spawn_failure(
    argv: Sequence[str], cwd: str | os.PathLike[str] | None, exc: OSError
) -> str:
    program = argv[0] if argv else "<empty command>"
    if cwd is not None and not Path(cwd).is_dir():
        return f"cannot start {program!r}: working directory {str(cwd)!r} does not exist"
    if isinstance(exc, FileNotFoundError):
        return f"cannot start {program!r}: command not found (check the spelling and PATH)"
    if isinstance(exc, PermissionError):
        return f"cannot start {program!r}: permission denied (is it executable?)"
    return f"cannot start {program!r}: {exc.strerror or exc}"


async def wait_for_exit(pid: int) -> ExitResult:
    """Wait until ``pid`` (our child) exits, reap it, and return its status and peak RSS.

    Reaping happens exactly once here; callers shield this from cancellation so that a cancelled
    supervisor still reaps what it started.
    """
    pidfd_open = getattr(os, "pidfd_open", None)
    pidfd = -1
    if pidfd_open is not None:
        try:
            pidfd = pidfd_open(pid)
        except OSError:
            pidfd = -1
    if pidfd >= 0:
        try:
            await anyio.wait_readable(pidfd)
        finally:
            os.close(pidfd)
        _, status, usage = os.wait4(pid, 0)  # noqa: ASYNC222 - the pidfd says it has exited
    else:
        _, status, usage = await anyio.to_thread.run_sync(
            os.wait4, pid, 0, limiter=_WAIT_LIMITER, abandon_on_cancel=True
        )
    # ru_maxrss is in KiB on Linux and in bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return ExitResult(status=status, peak_rss_bytes=usage.ru_maxrss * scale or None)
