"""What a new runner starts with, however it is started: its environment and its descriptors.

A cold spawn (`spawn`) and a fork from the zygote (`forkserver`) differ only in who creates the
process; both hand the child the same things, built here once::

    supervisor end                         child end
    ──────────────                         ─────────
    channel (socketpair)        ◄────────  CRASHSIGHT_CHANNEL_FD
    lifeline (socketpair)       ────────►  CRASHSIGHT_LIFELINE_FD: stack requests; EOF once
                                           the supervisor is gone (`crashsight.runner.orphan`)
    stdout, stderr (pipes)      ◄────────  fd 1, fd 2
    gate (pipe, with a cgroup)  ────────►  CRASHSIGHT_START_GATE: one byte once in the cgroup

The runner's environment carries its id, the frame limit, the ids of the runners it is nested in
and ``PYTHONFAULTHANDLER``, so that every Python descendant writes its stack on a fatal signal to
the inherited stderr, where the collector finds the child's own evidence.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import SpawnError
from ..runner.channel import ANCESTOR_RUNNERS_ENV, MAX_FRAME_ENV, RUNNER_ID_ENV

if TYPE_CHECKING:
    from .cgroup import RunnerCgroup

__all__ = ["SupervisorEnds", "Wiring", "join_refused", "runner_environment"]


def runner_environment(
    env: Mapping[str, str] | None, runner_id: str, max_frame_bytes: int
) -> dict[str, str]:
    """``env`` (default: this process's) with what every runner needs added."""
    child_env = dict(os.environ if env is None else env)
    child_env.setdefault("PYTHONFAULTHANDLER", "1")
    child_env[MAX_FRAME_ENV] = str(max_frame_bytes)
    # A nested `crashsight run` keeps the outer runner's id: the outer sweep still finds its own.
    outer = child_env.get(RUNNER_ID_ENV)
    if outer:
        ancestors = [*child_env.get(ANCESTOR_RUNNERS_ENV, "").split(), outer]
        child_env[ANCESTOR_RUNNERS_ENV] = " ".join(ancestors)
    child_env[RUNNER_ID_ENV] = runner_id
    return child_env


@dataclass
class Wiring:
    """Both ends of a new runner's channel, lifeline, output pipes and (with a cgroup) start gate.

    Made with `open`; the child's ends are closed here once the child holds its copies
    (`close_child_ends`), the supervisor's either kept (`supervisor_ends`) or, when the runner
    did not start, closed (`abandon`).
    """

    channel: socket.socket
    child_channel: socket.socket
    lifeline: socket.socket
    child_lifeline: socket.socket
    stdout_r: int
    stdout_w: int
    stderr_r: int
    stderr_w: int
    gate_r: int = -1
    gate_w: int = -1

    @classmethod
    def open(cls, gated: bool) -> Wiring:
        """New descriptors; ``gated``: with a start gate, for a runner that joins a cgroup."""
        channel, child_channel = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # A socket, not a pipe: a request written after the runner closed its end must not
        # SIGPIPE a host that keeps the default action (MSG_NOSIGNAL; a pipe has no such flag).
        lifeline, child_lifeline = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        stdout_r, stdout_w = os.pipe()
        stderr_r, stderr_w = os.pipe()
        gate_r, gate_w = os.pipe() if gated else (-1, -1)
        return cls(
            channel,
            child_channel,
            lifeline,
            child_lifeline,
            stdout_r,
            stdout_w,
            stderr_r,
            stderr_w,
            gate_r,
            gate_w,
        )

    def child_fds(self) -> dict[str, int]:
        """The child's ends by name, as the runner's environment names them."""
        return {
            "channel": self.child_channel.fileno(),
            "lifeline": self.child_lifeline.fileno(),
            "stdout": self.stdout_w,
            "stderr": self.stderr_w,
        }

    def close_child_ends(self) -> None:
        """Close the supervisor's copies of the child's ends (started or not, it is done)."""
        self.child_channel.close()
        self.child_lifeline.close()
        _close(self.stdout_w, self.stderr_w, self.gate_r)

    def release(self, pid: int, cgroup: RunnerCgroup) -> None:
        """Move the gated child ``pid`` into ``cgroup``, then open its gate.

        When the move fails, a required cgroup makes it a `SpawnError` and the gate is closed
        without the byte, so the child exits without running anything; otherwise the runner goes
        on without containment and the report says why (``cgroup.join_error``).
        """
        gate_w, self.gate_w = self.gate_w, -1
        try:
            cgroup.join(pid)
        except OSError as exc:
            try:
                join_refused(cgroup, exc.strerror or str(exc))
            except SpawnError:
                os.close(gate_w)
                raise
        try:
            os.write(gate_w, b"\x01")
        finally:
            os.close(gate_w)

    def abandon(self) -> None:
        """The runner did not start: close the supervisor's ends (a shut gate ends the child)."""
        self.channel.close()
        self.lifeline.close()
        _close(self.stdout_r, self.stderr_r, self.gate_w)

    def supervisor_ends(self) -> SupervisorEnds:
        """The ends the supervisor keeps, made non-blocking."""
        self.channel.setblocking(False)
        self.lifeline.setblocking(False)
        os.set_blocking(self.stdout_r, False)
        os.set_blocking(self.stderr_r, False)
        return SupervisorEnds(self.channel, self.lifeline, self.stdout_r, self.stderr_r)


@dataclass
class SupervisorEnds:
    """What the supervisor keeps of a started runner's wiring.

    The lifeline is closed only once the runner is reaped: its end-of-file tells the runner's
    watch that the supervisor is gone, and must mean nothing else.
    """

    channel: socket.socket
    lifeline: socket.socket
    stdout_fd: int
    stderr_fd: int


def join_refused(cgroup: RunnerCgroup, reason: str) -> None:
    """Record why the runner is not in ``cgroup``; a required cgroup makes it a `SpawnError`."""
    cgroup.join_error = f"could not move the runner into its cgroup: {reason}"
    if cgroup.host.required:
        raise SpawnError(f"cannot start the runner: {cgroup.join_error}")


def _close(*fds: int) -> None:
    for fd in fds:
        if fd >= 0:
            os.close(fd)
