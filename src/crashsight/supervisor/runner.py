"""The handle a user holds for one supervised runner, across all its attempts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
from pydantic import BaseModel

from ..errors import RunnerStateError, SpawnError
from .attempt import Attempt
from .config import RunnerConfig
from .events import EventBuffer
from .restart import RestartPolicy
from .snapshot import Snapshot
from .status import RunnerFailed, RunnerStatus

__all__ = ["Runner"]


class Runner:
    """One supervised worker: its events, its final status, and a way to stop it.

    Created by `Supervisor.spawn`; not instantiated directly. With a `RestartPolicy`, a failed
    attempt may be followed by others; `attempts` keeps every attempt's status and `wait` returns the
    last one.
    """

    def __init__(self, config: RunnerConfig, restart: RestartPolicy, event_buffer: int) -> None:
        self._config = config
        self._restart = restart
        self._events = EventBuffer(event_buffer)
        self._attempt: Attempt | None = None
        self._done = anyio.Event()
        self._stop_requested: str | None = None
        self._backoff_scope: anyio.CancelScope | None = None
        self.attempts: list[RunnerStatus] = []

    @property
    def id(self) -> str:
        """Unique id of this runner, also the marker in its processes' environment."""
        return self._config.runner_id

    @property
    def name(self) -> str:
        """The human name given at spawn (defaults to the command)."""
        return self._config.name

    @property
    def pid(self) -> int | None:
        """Process id of the current (or last) attempt, once started."""
        return None if self._attempt is None else self._attempt.pid

    @property
    def status(self) -> RunnerStatus | None:
        """The final status, once the runner is done; None before."""
        return self.attempts[-1] if self._done.is_set() and self.attempts else None

    def events(self) -> AsyncIterator[BaseModel]:
        """Iterate the runner's events until its final status, which is the last item.

        Items are protocol events (`Ready`, `Progress`, `TaskStarted`, ...), the user's own models
        (for names passed as ``user_events``) or `UserEvent`, a `RunnerTerminationError`, then
        `ErrorChunk`s and a final `RunnerSucceeded` / `RunnerFailed` / `RunnerCancelled` for each
        attempt. Single consumer: call once.
        """
        return aiter(self._events)

    async def wait(self) -> RunnerStatus:
        """Wait for the final status (after any restarts)."""
        await self._done.wait()
        return self.attempts[-1]

    async def stop(self, reason: str = "stopped on request") -> RunnerStatus:
        """Stop the runner with the stop policy, with no restart, and return its final status.

        The status is `RunnerCancelled` with ``reason``, unless the runner had already ended. A
        runner waiting to restart has no process to stop: its next attempt is not started, and
        the last attempt's status (the failure that led to the restart) stands.
        """
        self._stop_requested = reason
        if self._backoff_scope is not None:
            self._backoff_scope.cancel()
        if self._attempt is not None:
            await self._attempt.terminate(reason=reason)
        return await self.wait()

    async def collect_stacks(self) -> Snapshot | None:
        """Take the stacks and the process tree of the running attempt now, before a stop.

        `stop` does this itself; a group stop calls it on every runner first (see
        `crashsight.supervisor.groupstop`). None when stacks are off or nothing runs. Once it
        has answered, the runner's own dump on a later SIGTERM covers only the thread that
        SIGTERM interrupts: the stop that follows needs no second walk of every thread.
        """
        return None if self._attempt is None else await self._attempt.collect_stacks()

    def start(self) -> None:
        """Start the first attempt's process.

        Raises:
            SpawnError: The command could not be started.
        """
        if self._attempt is not None:
            raise RunnerStateError(f"{self!r} was already started")
        self._attempt = Attempt(self._config, 1, self._events)
        self._attempt.start()

    async def supervise(self) -> None:
        """Supervise attempts until one is not retried. Called by the supervisor in its task group."""
        attempt = self._attempt
        if attempt is None or self._done.is_set():
            raise RunnerStateError(f"{self!r} must be started, and supervised once")
        try:
            while True:
                self.attempts.append(await attempt.run())
                if not self._should_retry(self.attempts[-1]):
                    return
                with anyio.CancelScope() as self._backoff_scope:
                    await anyio.sleep(self._restart.delay_before(attempt.number))
                self._backoff_scope = None
                if self._stop_requested is not None:
                    return
                attempt = self._attempt = Attempt(self._config, attempt.number + 1, self._events)
                try:
                    attempt.start()
                except SpawnError as exc:
                    self.attempts[-1].notes.append(
                        f"restart {attempt.number - 1} could not start: {exc}"
                    )
                    return
        finally:
            self._record_interrupted_attempt()
            self._events.close()
            self._done.set()

    def _should_retry(self, status: RunnerStatus) -> bool:
        return (
            isinstance(status, RunnerFailed)
            and self._stop_requested is None
            and self._restart.should_restart(status, len(self.attempts) - 1)
        )

    def _record_interrupted_attempt(self) -> None:
        """A cancelled supervisor interrupts `Attempt.run` before it returns its status."""
        attempt = self._attempt
        if (
            attempt is not None
            and attempt.status is not None
            and len(self.attempts) < attempt.number
        ):
            self.attempts.append(attempt.status)

    def __repr__(self) -> str:
        pid = self.pid if self.pid is not None else "-"
        return f"<Runner {pid} {self.name!r} {self._state()}>"

    def _state(self) -> str:
        attempt = self._attempt
        if attempt is None:
            return "starting"
        if self._done.is_set() and self.attempts:
            status = self.attempts[-1]
            exit_words = (
                f"exited with signal {status.exit.signal}"
                if status.exit.signal
                else f"exited with code {status.exit.code}"
            )
            if isinstance(status, RunnerFailed):
                verdict = status.category + (f"/{status.subcategory}" if status.subcategory else "")
                return f"failed ({verdict}): {exit_words}"
            return f"{status.status}: {exit_words}"
        if attempt.exit is not None:
            return f"exited with {attempt.exit.description.removeprefix('exited with ')}"
        state = "stopping" if attempt.stopping else "running"
        return state if attempt.number == 1 else f"{state} (attempt {attempt.number})"
