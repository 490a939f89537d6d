"""The supervisor: spawns runners, owns their lifecycles, and never lets one outlive it.

::

    Supervisor (async context manager, one anyio task group)
      ├── Runner "shard-0" ── Attempt 1 ── process group ── worker, its children
      ├── Runner "shard-1" ── Attempt 1 (failed) ── backoff ── Attempt 2 ── ...
      └── signal watcher (optional): SIGINT/SIGTERM/SIGHUP → stop every runner with the stop policy

Leaving the ``async with`` block waits for every runner to finish. If the block raises or the
surrounding scope is cancelled, every runner is stopped with its stop policy (SIGTERM to the group,
grace period, SIGKILL of the tree), reaped under a shield, and given a `RunnerCancelled` status.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Literal, Self, TypedDict, Unpack

import anyio
import anyio.abc
import anyio.to_thread
from pydantic import BaseModel

from ..diagnostics.catalogue import CATALOGUE
from ..diagnostics.classify import Classifier
from ..diagnostics.models import Signature
from ..diagnostics.rules import Rule, load_rules
from ..errors import ConfigurationError, RunnerStateError, SpawnError
from ..framing import DEFAULT_MAX_FRAME_BYTES
from ..redact import MemoRedactor, Redactor
from ..runner.channel import BOOTSTRAP_ENV
from .cgroup import CGROUP_ROOT, CgroupLimits, CgroupMode, detect_host
from .config import RunnerConfig
from .forkserver import ForkServer
from .group import RunnerGroup
from .groupstop import stop_with_stacks
from .guardian import Guardian
from .output import OutputSink
from .restart import RestartPolicy
from .runner import Runner
from .snapshot import StackOptions
from .spawn import python_target_command
from .stop import StopPolicy

__all__ = ["Output", "SpawnOptions", "Supervisor"]

_DEFAULT_STACKS = StackOptions()
#: Strings a supervisor's redactors remember: field names, verdicts, hosts; not stderr lines.
_MEMO_MAX_LEN = 200

#: ``"inherit"`` copies runner output to this process's stdout/stderr; ``"discard"`` drops it; a
#: path appends both streams to that log file.
Output = Literal["inherit", "discard"] | str | os.PathLike[str]


class SpawnOptions(TypedDict, total=False):
    """Per-runner options of `Supervisor.spawn` and `Supervisor.spawn_command`.

    Attributes:
        name: A human name for reports; defaults to the command line (or the target).
        env: The runner's environment (default: this process's); crashsight adds its own
            variables to a copy.
        cwd: Working directory.
        deadline: Overrides the supervisor's default; None disables it.
        no_progress_timeout: Overrides the supervisor's default; None disables it.
        restart: Opt-in restarts of failed attempts.
        inherit_stdin: Give the runner this process's stdin instead of /dev/null.
        stderr_sinks: Called with each line of the runner's stderr that they ask for (a
            `TriggeredSink` only with the lines it wants), in order, like the collector's own.
    """

    name: str
    env: Mapping[str, str]
    cwd: str | os.PathLike[str]
    deadline: float | None
    no_progress_timeout: float | None
    restart: RestartPolicy
    inherit_stdin: bool
    stderr_sinks: Sequence[Callable[[str], None]]


class Supervisor:
    """Spawns and watches runner processes; see the module docstring for the lifecycle.

    Args:
        stop_policy: How runners are stopped (SIGTERM, grace, SIGKILL of the tree).
        deadline: Default total seconds a runner may run before it is stopped as ``timeout/deadline``.
        no_progress_timeout: Default seconds without a channel message or an output byte before a
            runner is stopped as ``timeout/no_progress``.
        drain_timeout: After a runner exits, how long to wait for its output and channel to reach
            EOF before killing whatever still holds them open.
        max_frame_bytes: Largest channel frame accepted from a runner.
        output: Where runner stdout/stderr go after crashsight has read them.
        event_buffer: Events buffered per runner before the oldest are dropped.
        rules: User classification rules (a TOML file or loaded rules), tried before the built-in
            ones. A bad file raises `RulesError` here, before any runner starts.
        signatures: The signature catalogue; the built-in one by default.
        user_events: The user's own event models; `UserEvent`s whose name matches a model's class
            name are validated into it.
        handle_signals: Stop every runner gracefully when this process receives SIGINT, SIGTERM or
            SIGHUP (only from the main thread). `received_signal` then tells which one arrived.
            Handlers the program set with ``signal.signal`` come back when the supervisor ends.
        preload: Modules to import once in a fork server (a zygote process); Python targets
            started with `spawn` (with the default interpreter) are then forked from it, warm,
            instead of starting a new interpreter. Entering the supervisor raises `SpawnError`
            if a module fails to import or leaves the zygote unsafe to fork (threads running,
            CUDA initialised).
        cgroup: ``auto`` gives each runner a cgroup of its own where the host allows it (nothing
            escapes its stop; exact OOM evidence), ``required`` raises `ConfigurationError` where
            it does not, ``off`` uses process groups only. Each report's ``containment`` says
            which was used and why.
        memory_max: Memory limit in bytes for each runner's whole tree (needs a memory cgroup).
        pids_max: Process limit for each runner's whole tree (needs a pids cgroup).
        cgroup_root: Where the cgroup filesystems are mounted.
        stacks: How every Python thread's stack is taken before crashsight stops a runner (the
            dump signal, the bounded wait, native frames); None takes no stacks.
    """

    def __init__(
        self,
        *,
        stop_policy: StopPolicy | None = None,
        deadline: float | None = None,
        no_progress_timeout: float | None = None,
        drain_timeout: float = 2.0,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        output: Output = "inherit",
        event_buffer: int = 10_000,
        rules: str | os.PathLike[str] | Sequence[Rule] | None = None,
        signatures: Sequence[Signature] = CATALOGUE,
        user_events: Sequence[type[BaseModel]] = (),
        handle_signals: bool = False,
        preload: Sequence[str] = (),
        cgroup: CgroupMode = "auto",
        memory_max: int | None = None,
        pids_max: int | None = None,
        cgroup_root: str | os.PathLike[str] = CGROUP_ROOT,
        stacks: StackOptions | None = _DEFAULT_STACKS,
    ) -> None:
        _check_seconds("deadline", deadline)
        _check_seconds("no_progress_timeout", no_progress_timeout)
        if max_frame_bytes < 1024:
            raise ConfigurationError(
                f"max_frame_bytes must be at least 1024, got {max_frame_bytes}"
            )
        self.stop_policy = stop_policy or StopPolicy()
        self.deadline = deadline
        self.no_progress_timeout = no_progress_timeout
        self.drain_timeout = drain_timeout
        self.max_frame_bytes = max_frame_bytes
        self.event_buffer = event_buffer
        self.signatures = signatures
        self.user_events = {model.__name__: model for model in user_events}
        self.handle_signals = handle_signals
        self.preload = list(preload)
        self._forkserver: ForkServer | None = None
        self.stacks = stacks
        #: One remembering redactor per set of secrets: every status repeats most strings.
        self._redactors: dict[str, MemoRedactor] = {}
        user_rules = (
            load_rules(rules) if isinstance(rules, (str, os.PathLike)) else list(rules or ())
        )
        self.classifier = Classifier(user_rules)
        if cgroup not in ("auto", "off", "required"):
            raise ConfigurationError(f"cgroup must be 'auto', 'off' or 'required', got {cgroup!r}")
        #: Where runner cgroups go on this host (or why they do not), detected once.
        self.cgroups = detect_host(
            cgroup, CgroupLimits(memory_max=memory_max, pids_max=pids_max), root=Path(cgroup_root)
        )
        self._output = output
        self._log: BinaryIO | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._body_done = anyio.Event()
        self._closed = False
        self.runners: list[Runner] = []
        #: The signal that made the supervisor stop its runners, when ``handle_signals`` is on.
        self.received_signal: signal.Signals | None = None

    async def __aenter__(self) -> Self:
        if self._output == "inherit":
            self._stdout, self._stderr = OutputSink(1), OutputSink(2)
        elif self._output == "discard":
            self._stdout, self._stderr = OutputSink(None), OutputSink(None)
        else:
            self._log = Path(self._output).open("ab")  # noqa: ASYNC230, SIM115 - a local append, closed in __aexit__
            self._stdout = self._stderr = OutputSink(self._log)
        self._guardian = Guardian()
        if self.preload:
            self._forkserver = ForkServer(self.preload)
            try:
                await self._forkserver.__aenter__()
            except BaseException:
                self._guardian.close()
                raise
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        if self.handle_signals:
            # start(), not start_soon(): the handlers are in place before the first runner exists
            await self._tg.start(self._watch_signals)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None
        self._closed = True
        self._body_done.set()
        try:
            if exc is not None and not isinstance(exc, anyio.get_cancelled_exc_class()):
                # The body's own error is not handed to the task group, which would wrap it in an
                # ExceptionGroup: every runner is stopped and reaped, then it propagates unchanged.
                self._tg.cancel_scope.cancel()
                await self._tg.__aexit__(None, None, None)
                return None
            # Normal exit waits for every runner; a cancellation (of the body, or arriving while
            # the group waits) stops them all with the policy, and the group re-raises it.
            return await self._tg.__aexit__(exc_type, exc, tb)
        finally:
            if self._forkserver is not None:  # outside the shield: its task group is its own
                await self._forkserver.__aexit__(None, None, None)
            with anyio.CancelScope(shield=True):
                await self._stdout.aclose()
                await self._stderr.aclose()
                await anyio.to_thread.run_sync(self._guardian.close)
            if self._log is not None:
                self._log.close()

    async def spawn(
        self, target: str, *args: str, python: str | None = None, **options: Unpack[SpawnOptions]
    ) -> Runner:
        """Start a Python ``target`` (``module:function`` or ``file.py:function``) as a runner.

        The target runs under the runner bootstrap, so exceptions arrive structured over the
        channel. ``args`` become the target's ``sys.argv[1:]``; ``python`` is the interpreter
        (default: this one); ``options`` are those of `spawn_command`.
        """
        argv = python_target_command(target, args, python)
        base = options.get("env")
        options["env"] = {**(os.environ if base is None else base), BOOTSTRAP_ENV: "1"}
        options.setdefault("name", target)
        fork = None
        if self._forkserver is not None and python is None:
            fork = (self._forkserver, [target, *args])
        return await self._spawn(argv, fork, options)

    async def spawn_command(self, argv: Sequence[str], **options: Unpack[SpawnOptions]) -> Runner:
        """Start any command as a runner and return its handle once the process exists.

        Args:
            argv: The command and its arguments.
            **options: See `SpawnOptions`.

        Raises:
            SpawnError: The command could not be started.
            RunnerStateError: The supervisor is not running (use ``async with``).
        """
        return await self._spawn(argv, None, options)

    async def _spawn(
        self,
        argv: Sequence[str],
        fork: tuple[ForkServer, list[str]] | None,
        options: SpawnOptions,
    ) -> Runner:
        if self._tg is None or self._closed:
            raise RunnerStateError(
                "spawn needs a running supervisor: use 'async with Supervisor()' and spawn inside it"
            )
        if not argv:
            raise SpawnError("cannot start a runner with an empty command")
        deadline = options.get("deadline", self.deadline)
        no_progress = options.get("no_progress_timeout", self.no_progress_timeout)
        _check_seconds("deadline", deadline)
        _check_seconds("no_progress_timeout", no_progress)
        cwd = options.get("cwd")
        config = RunnerConfig(
            runner_id=uuid.uuid4().hex,
            name=options.get("name") or " ".join(argv),
            argv=list(argv),
            env=options.get("env"),
            cwd=None if cwd is None else os.fspath(cwd),
            stop_policy=self.stop_policy,
            deadline=deadline,
            no_progress_timeout=no_progress,
            drain_timeout=self.drain_timeout,
            max_frame_bytes=self.max_frame_bytes,
            stdout=self._stdout,
            stderr=self._stderr,
            inherit_stdin=options.get("inherit_stdin", False),
            classifier=self.classifier,
            signatures=self.signatures,
            user_events=self.user_events,
            guardian=self._guardian,
            fork=fork,
            cgroups=self.cgroups,
            stderr_sinks=options.get("stderr_sinks", ()),
            stacks=self.stacks,
            redactor=self._redactor_for(options.get("env")),
        )
        runner = Runner(config, options.get("restart") or RestartPolicy(), self.event_buffer)
        runner.start()
        self.runners.append(runner)
        self._tg.start_soon(runner.supervise)
        return runner

    def _redactor_for(self, env: Mapping[str, str] | None) -> Redactor:
        """The redactor of a runner started with ``env`` (None: this process's, at spawn time)."""
        fresh = Redactor(os.environ if env is None else env)
        return self._redactors.setdefault(fresh.secrets, MemoRedactor(fresh, _MEMO_MAX_LEN))

    async def spawn_group(
        self,
        target: str | Sequence[str],
        *args: str,
        world_size: int,
        peer_grace: float | None = 5.0,
        python: str | None = None,
        **options: Unpack[SpawnOptions],
    ) -> RunnerGroup:
        """Start ``world_size`` runners of one target as the ranks of one job (`RunnerGroup`).

        Each rank gets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and a free
        ``MASTER_PORT``; the first failure stops the others (see `crashsight.supervisor.group`).

        Args:
            target: A Python target as for `spawn`, or a command (a sequence) as for
                `spawn_command`; ``args`` are appended either way.
            world_size: How many ranks.
            peer_grace: After a failure that is only a consequence, seconds the other ranks may
                take to fail on their own before they are stopped; None waits for them.
            python: The interpreter of a Python target.
            **options: As for `spawn_command`; ``env`` is each rank's base environment.
        """
        base = options.pop("env", None)
        name = options.pop("name", None) or (
            target if isinstance(target, str) else " ".join(target)
        )
        group = RunnerGroup(name, world_size, peer_grace)

        async def spawn_rank(rank_name: str, env: Mapping[str, str]) -> Runner:
            rank_options: SpawnOptions = {**options, "name": rank_name, "env": env}
            if isinstance(target, str):
                return await self.spawn(target, *args, python=python, **rank_options)
            return await self.spawn_command([*target, *args], **rank_options)

        await group.start(spawn_rank, os.environ if base is None else base)
        assert self._tg is not None  # spawn_rank raised otherwise
        self._tg.start_soon(group.watch)
        return group

    async def stop_all(self, reason: str = "stopped on request") -> None:
        """Take every runner's stacks, then stop them all with the stop policy, concurrently."""
        await stop_with_stacks(self.runners, reason)

    async def _watch_signals(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Stop every runner on the first SIGINT, SIGTERM or SIGHUP; end once all are done.

        Handlers the program set with ``signal.signal`` before the supervisor started come back
        afterwards. asyncio's receiver leaves the default action instead, so a SIGTERM between
        the runners' end and the program's last step (the CLI writing its report, while torchrun
        stops the other ranks) ended the process at once, with no report: found in a real
        torchrun job. Not brought back: a handler set from C, one set while the supervisor ran,
        and a callback given to asyncio's ``loop.add_signal_handler`` (the loop holds one per
        signal and no public way to read it; restoring its C-level trampoline would leave the
        signal ignored), which get the default action, as before.
        """
        previous = {
            sig: handler
            for sig in _STOP_SIGNALS
            if (handler := signal.getsignal(sig)) is not None
            and getattr(handler, "__module__", None) != "asyncio.unix_events"
        }
        try:
            with anyio.open_signal_receiver(*_STOP_SIGNALS) as signals:
                task_status.started()
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._cancel_when_idle, tg.cancel_scope)
                    async for signum in signals:
                        self.received_signal = signal.Signals(signum)
                        await self.stop_all(f"crashsight received {self.received_signal.name}")
                        break
                    tg.cancel_scope.cancel()
        finally:
            for sig, handler in previous.items():
                if signal.getsignal(sig) != handler:
                    signal.signal(sig, handler)

    async def _cancel_when_idle(self, scope: anyio.CancelScope) -> None:
        """Cancel ``scope`` once the body has finished and every runner is done."""
        await self._body_done.wait()
        for runner in list(self.runners):
            await runner.wait()
        scope.cancel()


#: A terminal that closes (SIGHUP) ends a run like SIGTERM does: gracefully, with a report.
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _check_seconds(name: str, value: float | None) -> None:
    if value is not None and value <= 0:
        raise ConfigurationError(f"{name} must be a positive number of seconds, got {value}")
