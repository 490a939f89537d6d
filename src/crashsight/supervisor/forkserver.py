"""Warm starts: runners forked from a zygote that has already imported the runner and ``preload``.

::

    Supervisor(preload=[...])
      └── ForkServer ── zygote process (crashsight.runner.zygote, its own session)
            │  control socket: spawn request + channel/lifeline/stdout/stderr fds ─► {"pid": N}
            │  status socket:  ◄─ {"pid": N, "status": S, "maxrss": KiB} per exit
            └── status reader task ── resolves `ForkServer.wait` of each runner

A forked runner gets what a cold spawn gives it: its own session, process group and cgroups, the
channel, the lifeline, stdout and stderr pipes, the runner environment and working directory. Only
the way it starts and the way its exit status arrives differ: the zygote forks it straight into its
cgroups (`crashsight.runner.cgroupfork`; where the kernel cannot, it is moved there at the start
gate) and, being its parent, reaps it and reports the raw wait status. A zygote that dies takes
its runners with it (they get SIGKILL, and their status says so); the next spawn starts a new
zygote.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType

import anyio
import anyio.abc
import anyio.to_thread
import psutil

from ..errors import SpawnError
from .cgroup import RunnerCgroup
from .spawn import ExitResult
from .wiring import SupervisorEnds, Wiring, join_refused, runner_environment

__all__ = ["ForkServer", "ForkedProcess"]

#: How long a zygote may take to import its preload before the supervisor gives up on it.
_START_TIMEOUT_S = 300.0
#: What a runner whose zygote died reports: the SIGKILL its death signal delivered.
_KILLED = signal.SIGKILL.value


@dataclass
class ForkedProcess:
    """A runner forked by the zygote: its pid and the supervisor's ends of its wiring."""

    pid: int
    ends: SupervisorEnds


class _Zygote:
    """One zygote process and its two sockets."""

    def __init__(self, preload: Sequence[str]) -> None:
        control, zygote_control = socket.socketpair()
        status, zygote_status = socket.socketpair()
        fds = (zygote_control.fileno(), zygote_status.fileno())
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "crashsight.runner.zygote", *map(str, fds), *preload],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=fds,
                start_new_session=True,  # a Ctrl-C to crashsight's group is not for the zygote
            )
        finally:
            zygote_control.close()
            zygote_status.close()
        self.control = control
        self.status = status
        self.pids: set[int] = set()  # forked and not yet reported
        control.settimeout(_START_TIMEOUT_S)
        try:
            reply = self._reply()
        except (OSError, ValueError) as exc:
            self._abandon()
            raise SpawnError(f"the fork server did not start: {exc}") from exc
        if "error" in reply:
            self._abandon()
            raise SpawnError(f"the fork server refused to start: {reply['error']}")
        control.settimeout(None)
        status.setblocking(False)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None and self.control.fileno() != -1

    def fork(self, request: Mapping[str, object], fds: Sequence[int]) -> dict[str, object]:
        """Ask for one runner; return the reply: its pid, or why it is not in its cgroup."""
        socket.send_fds(self.control, [json.dumps(request).encode() + b"\n"], list(fds))
        reply = self._reply()
        pid = reply.get("pid")
        if isinstance(pid, int):
            self.pids.add(pid)
        elif "unsupported" not in reply and "join_error" not in reply:
            raise SpawnError(f"the fork server could not start the runner: {reply.get('error')}")
        return reply

    def _reply(self) -> dict[str, object]:
        data = b""
        while not data.endswith(b"\n"):
            more = self.control.recv(65536)
            if not more:
                code = self.proc.wait()
                raise SpawnError(f"the fork server exited ({_describe(code)})")
            data += more
        reply: dict[str, object] = json.loads(data)
        return reply

    def _abandon(self) -> None:
        """Close and reap a zygote that never served: no status reader will close its socket."""
        self.close()
        self.status.close()

    def close(self) -> None:
        """Close the control socket (the zygote exits at end-of-file) and reap it."""
        self.control.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class ForkServer:
    """Forks runners from a zygote that has imported ``preload``; see the module docstring.

    Use as an async context manager: entering starts the zygote (and raises `SpawnError` if a
    preload module fails to import or leaves the zygote unsafe to fork), leaving stops it.

    Args:
        preload: Modules the zygote imports once, for every runner it forks.
    """

    def __init__(self, preload: Sequence[str]) -> None:
        self.preload = list(preload)
        self._zygote: _Zygote | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._results: dict[int, ExitResult] = {}
        self._done: dict[int, anyio.Event] = {}
        #: Pids of runners that died with their zygote.
        self.lost: set[int] = set()
        #: Zygotes started so far (1 + restarts).
        self.starts = 0
        #: False once the zygote found that this host cannot clone into a cgroup.
        self._clones_into_cgroups = sys.platform == "linux"

    async def __aenter__(self) -> ForkServer:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        try:
            zygote = await anyio.to_thread.run_sync(_Zygote, self.preload)
        except BaseException:
            await self._tg.__aexit__(None, None, None)
            raise
        self._adopt(zygote)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tg is not None
        zygote, self._zygote = self._zygote, None
        if zygote is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(zygote.close)
        await self._tg.__aexit__(None, None, None)

    def spawn(
        self,
        args: Sequence[str],
        *,
        runner_id: str,
        env: Mapping[str, str] | None,
        cwd: str | os.PathLike[str] | None,
        max_frame_bytes: int,
        inherit_stdin: bool,
        cgroup: RunnerCgroup | None = None,
    ) -> ForkedProcess:
        """Fork a bootstrap runner of ``args`` (target and its arguments), wired like a cold one.

        With a ``cgroup``, the zygote forks the child straight into it (`cgroupfork`); where the
        kernel cannot, the child waits at a gate until it has been moved, as a cold spawn does.

        Raises:
            SpawnError: ``cwd`` is unusable, the zygote could not be (re)started, or the child
                could not be put into a required cgroup (it never runs).
        """
        if cwd is not None and not os.path.isdir(cwd):
            raise SpawnError(
                f"cannot start {args[0]!r}: working directory {os.fspath(cwd)!r} does not exist"
            )
        placement = self._placement(cgroup)
        wiring = Wiring.open(gated=cgroup is not None and placement is None)
        fds = wiring.child_fds()
        if inherit_stdin:
            fds["stdin"] = 0
        if wiring.gate_r >= 0:
            fds["gate"] = wiring.gate_r
        request = {
            "args": list(args),
            "env": runner_environment(env, runner_id, max_frame_bytes),
            "cwd": None if cwd is None else str(cwd),
            "fds": list(fds),
            "cgroup": placement,
        }
        try:
            try:
                reply = self._fork(request, list(fds.values()))
            finally:
                wiring.close_child_ends()
            pid = reply.get("pid")
            if isinstance(pid, int) and wiring.gate_w >= 0:
                assert cgroup is not None
                wiring.release(pid, cgroup)
            elif not isinstance(pid, int):
                assert cgroup is not None
                if "unsupported" in reply:
                    self._clones_into_cgroups = False  # from now on, moved as a cold spawn is
                else:
                    join_refused(cgroup, str(reply["join_error"]))
                    cgroup = None  # it runs without, as a refused move lets it
        except (OSError, SpawnError) as exc:
            wiring.abandon()
            raise SpawnError(f"cannot start {args[0]!r} from the fork server: {exc}") from exc
        if not isinstance(pid, int):  # no child was made: ask again, the other way
            wiring.abandon()
            return self.spawn(
                args,
                runner_id=runner_id,
                env=env,
                cwd=cwd,
                max_frame_bytes=max_frame_bytes,
                inherit_stdin=inherit_stdin,
                cgroup=cgroup,
            )
        return ForkedProcess(pid=pid, ends=wiring.supervisor_ends())

    def _placement(self, cgroup: RunnerCgroup | None) -> dict[str, object] | None:
        """What the zygote needs to fork a child straight into ``cgroup``; None to move it."""
        if cgroup is None or not self._clones_into_cgroups:
            return None
        limits = cgroup.host.limits
        if ("memory" in cgroup.v1 and limits.memory_max is not None) or (
            "pids" in cgroup.v1 and limits.pids_max is not None and limits.pids_max < 2
        ):
            # The zygote's own thread is in the runner's v1 groups while it forks, and what the
            # fork costs is charged there: under a v1 memory limit the group's OOM killer could
            # pick the zygote (and every runner with it), and a pids limit of one leaves no room
            # for the child. Such a runner is moved at the gate, and ends as a cold one does.
            return None
        return {
            "v2": None if cgroup.v2 is None else str(cgroup.v2),
            "v1": [
                (str(folder / "tasks"), str(cgroup.host.v1_bases[controller] / "tasks"))
                for controller, folder in cgroup.v1.items()
            ],
        }

    def _fork(self, request: Mapping[str, object], fds: Sequence[int]) -> dict[str, object]:
        """Fork from the live zygote, starting a new one first if it died (blocking, like a cold
        spawn: a restart costs the preload once more)."""
        zygote = self._zygote
        if zygote is not None and zygote.alive:
            try:
                return zygote.fork(request, fds)
            except (OSError, SpawnError):
                if zygote.alive:
                    raise
        if zygote is not None:
            zygote.control.close()
        zygote = _Zygote(self.preload)
        self._adopt(zygote)
        return zygote.fork(request, fds)

    async def wait(self, pid: int) -> ExitResult:
        """Wait until the zygote reports the exit of ``pid``; return its status and peak RSS."""
        if pid not in self._results:
            await self._done.setdefault(pid, anyio.Event()).wait()
        self._done.pop(pid, None)
        return self._results.pop(pid)

    def _adopt(self, zygote: _Zygote) -> None:
        assert self._tg is not None
        self._zygote = zygote
        self.starts += 1
        self._tg.start_soon(self._read_statuses, zygote)

    async def _read_statuses(self, zygote: _Zygote) -> None:
        """Resolve waits from the zygote's reports; at its death, those of its runners too.

        Shielded: a cancelled supervisor still stops its runners and waits (shielded) for their
        exits, which only this reader can report; cancelled with them, it left those waits
        hanging forever. It ends when the zygote does, which leaving the fork server makes sure
        of (`_Zygote.close`).
        """
        with anyio.CancelScope(shield=True):
            await self._read_until_gone(zygote)

    async def _read_until_gone(self, zygote: _Zygote) -> None:
        buffer = b""
        try:
            while True:
                await anyio.wait_readable(zygote.status)
                try:
                    data = zygote.status.recv(65536)
                except BlockingIOError:
                    continue
                if not data:
                    break
                *lines, buffer = (buffer + data).split(b"\n")
                for line in lines:
                    report = json.loads(line)
                    scale = 1 if sys.platform == "darwin" else 1024
                    pid = report["pid"]
                    self._resolve(
                        pid, ExitResult(report["status"], report["maxrss"] * scale or None)
                    )
                    zygote.pids.discard(pid)
        finally:
            zygote.status.close()
            zygote.control.close()  # dead (or closed by us): nothing more to ask it
        # The zygote is gone: its runners got SIGKILL from their death signal.
        for pid in list(zygote.pids):
            await _wait_gone(pid)
            self.lost.add(pid)
            self._resolve(pid, ExitResult(_KILLED, None))
        await anyio.to_thread.run_sync(zygote.proc.wait)

    def _resolve(self, pid: int, result: ExitResult) -> None:
        self._results[pid] = result
        self._done.setdefault(pid, anyio.Event()).set()


async def _wait_gone(pid: int) -> None:
    """Wait until ``pid`` (not our child, so no wait status for us) has exited."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return  # already gone
    except AttributeError:  # no pidfd (macOS): psutil polls in a worker thread
        with contextlib.suppress(psutil.NoSuchProcess):
            await anyio.to_thread.run_sync(psutil.Process(pid).wait)
        return
    try:
        await anyio.wait_readable(pidfd)
    finally:
        os.close(pidfd)


def _describe(code: int) -> str:
    return f"signal {signal.Signals(-code).name}" if code < 0 else f"code {code}"
