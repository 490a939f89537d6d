"""One run of one runner process, from spawn to final status.

::

    child process ──channel (socketpair)──► ChannelReader ──► events, tasks, termination error
                  ──stderr (pipe)─────────► pump ──► pass-through sink + StderrCollector
                  ──stdout (pipe)─────────► pump ──► pass-through sink
                  ──exit (pidfd / wait4)──► reaper (shielded: always reaps)
    watchdog ── deadline / no progress ──► stacks (snapshot.py) ──► stop policy (SIGTERM group,
                                                                       grace, SIGKILL tree)

After the exit, the attempt waits (bounded) for the channel, stdout and stderr to reach EOF so that
no late line is lost; a grandchild that holds them open past the bound is killed and noted. Then it
kills whatever the runner left behind, builds the final status, and emits the ErrorChunks and the
status, in that order.
"""

from __future__ import annotations

import math
import os
import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

import anyio
from pydantic import ValidationError

from ..diagnostics.oom import OomCounters, read_oom_counters
from ..errors import RunnerStateError, SpawnError
from ..protocol import Message
from ..wording import counted
from . import cgroupfs
from .cgroup import RunnerCgroup
from .config import RunnerConfig
from .events import EventBuffer
from .forkserver import ForkedProcess
from .snapshot import Snapshot, StackDumps
from .spawn import ExitResult, SpawnedProcess, spawn, wait_for_exit
from .status import Containment, ExitInfo, ProtocolIssue, RunnerStatus
from .stop import kill_tree, signal_group, wait_gone
from .streams import ChannelReader, pump_output
from .verdict import AttemptFacts, build_status

if TYPE_CHECKING:
    from ..diagnostics.models import TimeoutKind

__all__ = ["Attempt"]

#: After the exit, how long the output may make no progress before the rest is dropped.
_PASS_ON_STALL_S = 1.0


class Attempt:
    """Runs the process once and produces its final status; see the module diagram.

    Args:
        config: The runner's configuration.
        number: 1 for the first attempt, 2 for the first restart, ...
        events: Receives every event in order, ending with the ErrorChunks and the status.
    """

    def __init__(self, config: RunnerConfig, number: int, events: EventBuffer):
        self.config = config
        self.number = number
        self._events = events
        self._publish = events.put
        self.facts = AttemptFacts(config=config, attempt=number)
        self.pid: int | None = None
        self._proc: SpawnedProcess | ForkedProcess | None = None
        self._cgroup: RunnerCgroup | None = None
        self.exit: ExitInfo | None = None
        self._exited = anyio.Event()
        self._streams_done = anyio.Event()
        self._open_streams = 3
        self._stopping = False
        #: Set once a begun stop has recorded everything it did (signals, notes).
        self._stopped = anyio.Event()
        self._last_activity = 0.0
        self._dumps: StackDumps | None = None
        self._reader: ChannelReader | None = None
        self._oom_before: OomCounters | None = None
        #: The final status, once built (also when the attempt was cancelled).
        self.status: RunnerStatus | None = None

    def start(self) -> None:
        """Start the process (synchronously, so spawn errors reach the caller at once).

        Raises:
            SpawnError: The command could not be started.
        """
        config = self.config
        env = config.env
        if config.stacks is not None:
            self._dumps = StackDumps(config.stacks)
            env = {**(os.environ if env is None else env), **self._dumps.environment()}
        self._cgroup = self._make_cgroup()
        # Without a memory cgroup of its own, the runner starts in this process's cgroup (or the
        # zygote's, made from this one): its OOM kills are counted there, from before it exists.
        # Not from its own /proc entry: a runner that already exited reads as the root's member.
        if self._cgroup is None or not self._cgroup.has_memory:
            self._oom_before = read_oom_counters()
        try:
            if config.fork is not None:
                server, args = config.fork
                start: Callable[..., SpawnedProcess | ForkedProcess] = partial(server.spawn, args)
            else:
                start = partial(spawn, config.argv)
            self._proc = start(
                runner_id=config.runner_id,
                env=env,
                cwd=config.cwd,
                max_frame_bytes=config.max_frame_bytes,
                inherit_stdin=config.inherit_stdin,
                cgroup=self._cgroup,
            )
        except BaseException:
            if self._dumps is not None:
                self._dumps.close()
            if self._cgroup is not None:
                cgroupfs.remove_all(self._cgroup.folders)
            raise
        self.pid = self._proc.pid
        if config.guardian is not None:
            folder = self._dumps.folder if self._dumps is not None else None
            config.guardian.watch(self.pid, self._cgroup, folder)

    def _make_cgroup(self) -> RunnerCgroup | None:
        """This attempt's cgroups; without them, the containment it falls back to, and why."""
        host = self.config.cgroups
        if host is None:
            self.facts.containment = Containment(method="process_group", reason="cgroups are off")
            return None
        try:
            made = host.create(f"crashsight-{self.config.runner_id}-{self.number}")
        except OSError as exc:
            reason = f"could not create the runner's cgroup: {exc.strerror}"
            if host.required:
                raise SpawnError(f"cannot start the runner: {reason}") from exc
            self.facts.containment = Containment(method="process_group", reason=reason)
            return None
        if made is None:
            self.facts.containment = Containment(method="process_group", reason=host.reason)
        return made

    async def run(self) -> RunnerStatus:
        """Supervise the started process until it is reaped; return its final status."""
        proc = self._proc
        if proc is None:
            raise RunnerStateError("Attempt.run() needs Attempt.start() first")
        config = self.config
        facts = self.facts
        facts.start(proc.pid, self._oom_before)
        self._last_activity = anyio.current_time()
        ends = proc.ends
        reader = self._reader = ChannelReader(
            ends.channel,
            ends.lifeline,
            config.max_frame_bytes,
            self._on_message,
            facts.issue,
            self._touch,
            user_events=config.user_events,
            on_user_event=self._publish,
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._reap, proc)
            tg.start_soon(self._read, reader.run)
            tg.start_soon(self._read, pump_output, ends.stdout_fd, self._on_stdout)
            tg.start_soon(self._read, pump_output, ends.stderr_fd, self._on_stderr)
            if config.deadline is not None or config.no_progress_timeout is not None:
                tg.start_soon(self._watchdog)  # a task costs more than the check at job scale
            try:
                await self._exited.wait()
                await self._drain()
                await self._close_cgroup()
            except anyio.get_cancelled_exc_class():
                with anyio.CancelScope(shield=True):
                    if self._exited.is_set():
                        facts.notes.append("the supervisor was cancelled while reading its output")
                    await self.terminate(reason="the supervisor was cancelled")
                    await self._kill_leftovers()
                    await self._close_cgroup()
                    self._finish()
                raise
            finally:
                tg.cancel_scope.cancel()
        return self._finish()

    @property
    def stopping(self) -> bool:
        """Whether the stop policy is under way."""
        return self._stopping

    async def terminate(
        self, reason: str | None = None, watchdog: TimeoutKind | None = None
    ) -> None:
        """Stop the process with the stop policy and wait until it is reaped.

        Args:
            reason: Why the user asked; makes the status `RunnerCancelled`.
            watchdog: Which watchdog fired; makes the status a timeout failure.
        """
        facts = self.facts
        if self._exited.is_set() or self.pid is None:
            return  # it ended on its own first: its own outcome stands, not the request
        if reason is not None and facts.cancel_reason is None and facts.timeout is None:
            facts.cancel_reason = reason
        if watchdog is not None and facts.cancel_reason is None and facts.timeout is None:
            facts.timeout = watchdog
        if self._stopping:
            await self._stopped.wait()  # the stop under way, however it ends
            if self._stopping or self._exited.is_set():
                await self._exited.wait()
                return
            # That stop was cancelled before its SIGKILL (its caller was): this one starts over,
            # or a runner that ignores SIGTERM would be waited for forever.
        self._stopping = True
        self._stopped = anyio.Event()
        try:
            await self._stop(self.pid)
        except BaseException:
            self._stopping = False
            raise
        finally:
            self._stopped.set()
        await self._exited.wait()

    async def _stop(self, pid: int) -> None:
        """The stop policy: stacks, the first signal, the grace period, then SIGKILL."""
        facts = self.facts
        with anyio.CancelScope(shield=True):  # bounded; a stop once begun must send its signal
            await self.collect_stacks()
        policy = self.config.stop_policy
        if signal_group(pid, policy.first_signal):
            facts.signals_sent.append(policy.first_signal.name)
        with anyio.move_on_after(policy.grace):
            await self._exited.wait()
        if not self._exited.is_set():
            with anyio.CancelScope(shield=True):  # bounded (the kill's own limit); once sent,
                contained = await self._kill_contained()  # a SIGKILL is always recorded
            killed = contained | {*kill_tree(pid, self.config.runner_id, facts.started_epoch)}
            facts.signals_sent.append("SIGKILL")
            facts.notes.append(
                f"did not stop within the {policy.grace:g} s grace period; killed its process "
                f"tree with SIGKILL ({counted(len(killed), 'process')})"
            )

    async def collect_stacks(self) -> Snapshot | None:
        """Take every Python thread's stack and the process tree now, before a stop.

        Called by `terminate` before the stop policy; a group stop calls it for all its runners
        first, so that every rank is seen at the same moment. Once per attempt: later calls
        return the first snapshot. None when stacks are off or the process has ended.
        """
        if self._dumps is None or self.pid is None or self._exited.is_set():
            return None
        snapshot = await self._dumps.collect(
            self.pid, self.config.runner_id, self.facts.started_epoch, self._reader
        )
        self.facts.snapshot = snapshot
        return snapshot

    async def _reap(self, proc: SpawnedProcess | ForkedProcess) -> None:
        assert self.pid is not None
        with anyio.CancelScope(shield=True):
            if isinstance(proc, SpawnedProcess):
                result: ExitResult = await wait_for_exit(self.pid)
                proc.popen.returncode = result.status  # reaped: Popen must never wait() it again
            else:
                server = self.config.fork[0] if self.config.fork else None
                assert server is not None
                result = await server.wait(self.pid)
                if self.pid in server.lost:
                    self.facts.notes.append(
                        "its fork server died, and took the runner with it (SIGKILL)"
                    )
        proc.ends.lifeline.close()  # only now: its end-of-file would stop the runner's group
        self.exit = ExitInfo.from_wait_status(result.status)
        self.facts.exited(self.exit, result.peak_rss_bytes)
        self._exited.set()

    async def _read(self, reader: Callable[..., Awaitable[None]], *args: object) -> None:
        try:
            await reader(*args)
        finally:
            self._open_streams -= 1
            if self._open_streams == 0:
                self._streams_done.set()

    async def _drain(self) -> None:
        """Wait for EOF on all streams, bounded, killing whoever holds them open past the bound."""
        with anyio.move_on_after(self.config.drain_timeout):
            await self._streams_done.wait()
        if not self._streams_done.is_set():
            held = await self._kill_leftovers()
            if held:
                self.facts.leftovers_killed += len(held)
                self.facts.notes.append(
                    f"output was still held open {self.config.drain_timeout:g} s after the runner "
                    f"exited; killed {counted(len(held), 'leftover process')} holding it"
                )
            await self._pass_on_the_rest()
        left = await self._kill_leftovers()
        if left:
            self.facts.leftovers_killed += len(left)
            self.facts.notes.append(
                f"killed {counted(len(left), 'process')} the runner left behind"
            )

    async def _pass_on_the_rest(self) -> None:
        """Wait for what is left in the pipes while crashsight's own reader keeps taking it.

        A slow reader (``crashsight run ... | slow-consumer``) still gets every byte; a reader that
        takes nothing for a second gets the rest dropped, with a note, so the report is not held
        hostage by it.
        """
        sinks = (self.config.stdout, self.config.stderr)
        while True:
            before = [sink.written for sink in sinks]
            with anyio.move_on_after(_PASS_ON_STALL_S):
                await self._streams_done.wait()
            if self._streams_done.is_set():
                return
            if [sink.written for sink in sinks] == before:
                self.facts.notes.append(
                    "the reader of crashsight's output took nothing for "
                    f"{_PASS_ON_STALL_S:g} s after the runner exited; the rest of its output was "
                    "dropped"
                )
                return

    async def _kill_leftovers(self) -> list[int]:
        pid = None if self._exited.is_set() else self.pid
        contained = await self._kill_contained()
        if self._cgroup is not None and self._cgroup.contains:
            # Nothing leaves a v2 cgroup on its own (nested supervisors create theirs inside
            # it), so its kill got the whole tree: no need to read every newer process's
            # environment for the marker, a scan that grows with the number of runners.
            return sorted(contained)
        killed = kill_tree(pid, self.config.runner_id, self.facts.started_epoch)
        if pid is None and self.pid is not None:
            signal_group(self.pid, signal.SIGKILL)  # kill_tree signalled the group if it had a pid
        stragglers = await wait_gone(killed)
        if stragglers:
            self.facts.notes.append(f"processes {stragglers} were sent SIGKILL but still exist")
        return sorted(contained | set(killed))

    async def _kill_contained(self) -> set[int]:
        """Kill everything in the runner's cgroup (nothing escapes it); no-op without one."""
        return await self._cgroup.kill() if self._cgroup is not None else set()

    async def _close_cgroup(self) -> None:
        """Read the runner's own cgroup counters into the facts and remove its cgroups.

        A stop under way records its signals first: its SIGKILL may end the runner before the
        stop has written down that it sent it (a watchdog's stop cancelled with us included).
        """
        if self._stopping:
            await self._stopped.wait()
        cgroup, self._cgroup = self._cgroup, None
        if cgroup is None:
            return
        self.facts.containment, problems = await cgroup.close()
        self.facts.notes.extend(problems)
        if self.config.guardian is not None:
            self.config.guardian.forget_cgroup(cgroup)

    async def _watchdog(self) -> None:
        config = self.config
        start = anyio.current_time()
        while not self._exited.is_set():
            now = anyio.current_time()
            wake = math.inf
            if config.deadline is not None:
                if now >= start + config.deadline:
                    await self.terminate(watchdog="deadline")
                    return
                wake = start + config.deadline
            if config.no_progress_timeout is not None:
                quiet_until = self._last_activity + config.no_progress_timeout
                if now >= quiet_until:
                    await self.terminate(watchdog="no_progress")
                    return
                wake = min(wake, quiet_until)
            await anyio.sleep(max(0.0, wake - now))

    def _touch(self) -> None:
        """Any byte from the runner is proof of life for the no-progress watchdog."""
        self._last_activity = anyio.current_time()

    async def _on_stdout(self, data: bytes) -> bool:
        self._touch()
        await self.config.stdout.write(data)
        return not self.config.stdout.broken  # its reader is gone: let the runner find out

    async def _on_stderr(self, data: bytes) -> bool:
        self._touch()
        self.facts.collector.feed(data)
        await self.config.stderr.write(data)
        return True  # keep reading whatever happens to the copy: the diagnostics need it

    def _on_message(self, message: Message) -> None:
        # Dispatch on the tag, most frequent kinds first: this runs once per event.
        facts = self.facts
        if message.kind == "user" and message.name in self.config.user_events:
            model = self.config.user_events[message.name]
            try:
                self._publish(model.model_validate(message.data))
                return
            except ValidationError as exc:
                facts.issue(
                    ProtocolIssue(
                        problem="invalid",
                        detail=f"user event {message.name!r} does not validate as "
                        f"{model.__qualname__}: {exc.error_count()} errors",
                    )
                )
        elif message.kind == "task_started":
            facts.task_started(message.task_id)
        elif message.kind == "task_finished":
            facts.task_finished(message.task_id, message.ok, message.error)
        elif message.kind == "termination_error":
            facts.terminated_with(message)
        self._publish(message)

    def _finish(self) -> RunnerStatus:
        self.facts.collector.close()
        folder = None
        if self._dumps is not None and self.pid is not None:
            self.facts.snapshot = self._dumps.after_exit(self.pid)
            self._dumps.close()
            folder = self._dumps.folder
        if self.config.guardian is not None and self.pid is not None:
            self.config.guardian.forget(self.pid, folder)
        self.facts.events_dropped = self._events.dropped
        if self._last_activity:
            # The loop's clock is not the wall clock (trio offsets it): convert the interval.
            quiet = max(0.0, anyio.current_time() - self._last_activity)
            self.facts.last_activity_at = datetime.now(UTC) - timedelta(seconds=quiet)
        status, chunks = build_status(self.facts)
        # The chunks and the status are put last, and may push old events out of a full buffer:
        # the status counts those too, so events_dropped is exact.
        dropped = self._events.dropped + self._events.overflow_of(len(chunks) + 1)
        if dropped != status.events_dropped:
            status = status.model_copy(update={"events_dropped": dropped})
        for chunk in chunks:
            self._publish(chunk)
        self._publish(status)
        self.status = status
        return status
