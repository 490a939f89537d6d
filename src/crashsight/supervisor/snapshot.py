"""Stacks and the process tree, collected just before crashsight stops a runner.

::

    supervisor                                      every Python process of the runner's tree
    ──────────                                      ─────────────────────────────────────────
    StackDumps(options)  mkdtemp ── env ──────────► CRASHSIGHT_STACKS_DIR, CRASHSIGHT_DUMP_SIGNAL
                                                    install(): <dir>/<pid>.stacks, faulthandler
    collect()  tree (psutil) ── dump signal ──────► faulthandler writes every thread's stack
                           ── lifeline request ──► the runner's watch thread: the same, holding
                                                   the GIL (`crashsight.runner.orphan`)
               waits (bounded) for the files to stop growing
               parses, names the stuck frame ─────► Snapshot (stacks, process_tree, blocked_in)
    then the stop policy as always (SIGTERM, grace, SIGKILL)

    after_exit()  a runner stopped by someone else (SIGTERM from a launcher, Kubernetes):
                  the dumps its processes wrote on SIGTERM are read once it is gone

Only processes that registered (their file exists, names this signal and no handler of their
own, and the kernel says they catch it) are sent the dump signal: its default action would end
anything else. A process that does not answer within the wait is stopped like the others, with a
note saying why when the kernel tells (signals blocked or ignored).
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import anyio
import anyio.from_thread
import anyio.to_thread

from ..diagnostics.blocked import find_blocked_in
from ..diagnostics.hangs import BlockedIn, ProcessInfo, ThreadStack
from ..diagnostics.stacks import StackFile, name_threads, parse_stack_file, with_source_lines
from ..errors import ConfigurationError
from ..runner.stackdump import (
    DEFAULT_DUMP_SIGNAL,
    DUMP_SIGNAL_ENV,
    OWN_HANDLER_NOTE,
    STACKS_DIR_ENV,
    STACKS_SUFFIX,
)
from .proctree import describe_processes, looks_like_python, runner_tree, signal_masks
from .pyspy import native_stacks

__all__ = ["Snapshot", "StackDumps", "StackOptions", "StackRequest"]

#: Signals that cannot carry the dump: uncatchable, crashsight's stop signals, the fatal ones
#: faulthandler.enable() owns, and those the system sends on its own.
_RESERVED = frozenset(
    {
        signal.SIGKILL,
        signal.SIGSTOP,
        signal.SIGTERM,
        signal.SIGINT,
        signal.SIGHUP,
        signal.SIGSEGV,
        signal.SIGBUS,
        signal.SIGFPE,
        signal.SIGILL,
        signal.SIGABRT,
        signal.SIGCHLD,
        signal.SIGPIPE,
        signal.SIGALRM,
        signal.SIGCONT,
        signal.SIGTSTP,
        signal.SIGTTIN,
        signal.SIGTTOU,
    }
)
_POLL_S = 0.005


@dataclass(frozen=True)
class StackOptions:
    """How the stacks are taken before a stop.

    Args:
        dump_signal: The signal that asks the processes of a runner's tree for their stacks
            (the runner itself is asked on its lifeline); they register it at start-up.
            `parse_dump_signal` reads one from a name.
        wait: Seconds to wait for the dumps before stopping anyway.
        native: Also take native (C/C++) frames with py-spy, when it is installed and allowed.

    Raises:
        ConfigurationError: A signal crashsight needs for something else, or a negative wait.
    """

    dump_signal: signal.Signals = signal.Signals[DEFAULT_DUMP_SIGNAL]
    wait: float = 1.0
    native: bool = False

    def __post_init__(self) -> None:
        parse_dump_signal(self.dump_signal)
        if not self.wait >= 0:
            raise ConfigurationError(f"the stack wait must be >= 0 seconds, got {self.wait}")


def parse_dump_signal(value: signal.Signals | str) -> signal.Signals:
    """``"usr2"``, ``"SIGUSR2"`` or `signal.SIGUSR2` to `signal.SIGUSR2`; refuses reserved ones.

    Raises:
        ConfigurationError: Not a signal of this system, or one crashsight cannot use for dumps.
    """
    if isinstance(value, signal.Signals):
        sig = value
    else:
        name = value.strip().upper()
        name = name if name.startswith("SIG") else f"SIG{name}"
        try:
            sig = signal.Signals[name]
        except KeyError:
            raise ConfigurationError(
                f"{value!r} is not a signal on this system; use a free one such as SIGUSR2 or SIGUSR1"
            ) from None
    if sig in _RESERVED:
        raise ConfigurationError(
            f"{sig.name} cannot carry stack dumps: it stops, kills or crashes processes, or the "
            "system sends it on its own; use a free one such as SIGUSR2 or SIGUSR1"
        )
    return sig


@dataclass
class Snapshot:
    """The stacks of a runner's tree at a stop, the tree, and where it is blocked."""

    stacks: list[ThreadStack] = field(default_factory=list)
    process_tree: list[ProcessInfo] = field(default_factory=list)
    blocked_in: BlockedIn | None = None
    notes: list[str] = field(default_factory=list)
    #: True when crashsight asked for the dumps before its own stop; False when they were
    #: written on a SIGTERM that came from someone else.
    before_stop: bool = True

    def status_fields(self, redact_argv: Callable[[list[str]], list[str]]) -> dict[str, object]:
        """The status fields this snapshot fills, each process's command line redacted."""
        tree = [
            info.model_copy(update={"cmdline": redact_argv(info.cmdline)})
            for info in self.process_tree
        ]
        return {"stacks": self.stacks, "blocked_in": self.blocked_in, "process_tree": tree}


@dataclass
class _Asked:
    """A process that was asked for its stacks, and where its file stood when it was."""

    info: ProcessInfo
    path: Path
    offset: int
    size: int = -1
    done: bool = False
    #: Asked on the runner's lifeline rather than by the dump signal.
    over_channel: bool = False


class StackRequest(Protocol):
    """The runner's lifeline, as far as stacks go (`crashsight.supervisor.streams.ChannelReader`)."""

    #: The process that opened the channel and runs crashsight's watch thread, once it said so.
    ready_pid: int | None

    def request_stacks(self) -> bool:
        """Write the request; False when the lifeline is gone."""
        ...


def _fresh(info: ProcessInfo, path: Path) -> bool:
    """Whether ``path`` is the stack file of ``info`` itself, not one left by an earlier pid."""
    try:
        return path.stat().st_mtime >= time.time() - info.age_s - 1.0
    except OSError:
        return False


def _dumped(entry: os.DirEntry[str]) -> tuple[float, StackFile] | None:
    """A stack file's time and dumps; None for anything else, and for a file without dumps.

    Every registered process leaves an empty file when nobody asked it for stacks: it is told by
    the stat of the folder scan, not read (this runs once per runner, at its end).
    """
    if not entry.name.endswith(STACKS_SUFFIX):
        return None
    try:
        info = entry.stat()
        if not info.st_size:
            return None
        pid = int(entry.name.removesuffix(STACKS_SUFFIX))
        parsed = parse_stack_file(Path(entry.path).read_text(errors="replace"), pid)
    except (OSError, ValueError):
        return None
    return (info.st_mtime, parsed) if parsed.dumps else None


class StackDumps:
    """One attempt's dump folder: its environment for the runner, collection, and clean-up.

    Args:
        options: The dump signal, the wait, and whether to take native frames.
    """

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.folder = Path(tempfile.mkdtemp(prefix="crashsight-stacks-"))
        self.snapshot: Snapshot | None = None
        self._collected: anyio.Event | None = None
        #: Registered processes that gave no stacks before the stop: their SIGTERM dump may.
        self._silent: list[_Asked] = []

    def environment(self) -> dict[str, str]:
        """What the runner's environment needs so that every Python process in it registers."""
        return {STACKS_DIR_ENV: str(self.folder), DUMP_SIGNAL_ENV: self.options.dump_signal.name}

    async def collect(
        self,
        root_pid: int,
        runner_id: str,
        not_before: float,
        channel: StackRequest | None,
    ) -> Snapshot:
        """Ask every registered process of the tree for its stacks; wait (bounded); read them.

        The process on the other end of ``channel`` (the runner, once it said `Ready`) is asked
        over its lifeline, and dumps from a thread that holds the GIL; the others get the dump
        signal. Called once per attempt, before the stop policy; a second call (a group stop that
        collected first, then the stop itself) waits for the first and returns its snapshot.
        """
        if self._collected is not None:
            await self._collected.wait()
            return self.snapshot or Snapshot()
        self._collected = anyio.Event()
        try:
            asked, snapshot = await anyio.to_thread.run_sync(
                self._ask, root_pid, runner_id, not_before, channel
            )
            await self._wait_for(asked)
            self.snapshot = await anyio.to_thread.run_sync(self._read, asked, snapshot)
        finally:
            self._collected.set()
        return self.snapshot

    def after_exit(self, root_pid: int) -> Snapshot | None:
        """The final snapshot, once the runner is gone; None when no process left stacks.

        After crashsight's own stop, a process that did not answer in time (a handler of its
        own for the dump signal, the GIL held in C code, a late answer) may have dumped on the
        SIGTERM that followed: its stacks are added. Without a stop by crashsight, the dumps are
        those written on a SIGTERM from someone else (a launcher stopping the surviving ranks,
        Kubernetes, a user).
        """
        if self._collected is not None:
            return self._complete(self.snapshot) if self.snapshot is not None else None
        files: list[tuple[float, StackFile]] = []
        try:
            with os.scandir(self.folder) as entries:
                for entry in entries:
                    if (found := _dumped(entry)) is not None:
                        mtime, parsed = found
                        files.append((0.0 if parsed.pid == root_pid else mtime, parsed))
        except OSError:
            return None
        if not files:
            return None
        files.sort(key=lambda f: f[0])
        stacks = [
            stack
            for _, parsed in files
            for stack in sorted(parsed.dumps[0], key=lambda s: s.thread_name != "MainThread")
        ]
        with_source_lines(stacks)
        pids = ", ".join(str(parsed.pid) for _, parsed in files)
        return Snapshot(
            stacks=stacks,
            blocked_in=find_blocked_in(stacks, []),
            notes=[f"stacks that pid {pids} wrote on a signal from outside crashsight"],
            before_stop=False,
        )

    def _complete(self, snapshot: Snapshot) -> Snapshot:
        """Add the SIGTERM dumps of the processes that were silent before the stop."""
        late: list[ThreadStack] = []
        for entry in self._silent:
            dumps = parse_stack_file(_read_from(entry.path, entry.offset), entry.info.pid).dumps
            if dumps:
                late.extend(dumps[0])
                when = (
                    "late (on SIGTERM, or answering its lifeline after the wait)"
                    if entry.over_channel
                    else "on SIGTERM instead"
                )
                snapshot.notes.append(
                    f"pid {entry.info.pid} ({entry.info.name}) wrote its stacks {when}"
                )
        if late:
            _name_threads(late, self._silent)
            with_source_lines(late)
            snapshot.stacks.extend(late)
            _mark_dumped(snapshot)
        return snapshot

    def close(self) -> None:
        """Remove the folder and whatever the processes left in it.

        The processes leave flat files, removed one by one: shutil.rmtree's descriptor-safe walk
        costs several times more, once per runner. Anything else falls back to it.
        """
        try:
            with os.scandir(self.folder) as entries:
                for entry in entries:
                    os.unlink(entry.path)
            os.rmdir(self.folder)
        except OSError:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _ask(
        self, root_pid: int, runner_id: str, not_before: float, channel: StackRequest | None
    ) -> tuple[list[_Asked], Snapshot]:
        """Describe the tree and ask each process that registered: over the lifeline, or by the
        dump signal."""
        sig = self.options.dump_signal
        tree = describe_processes(runner_tree(root_pid, runner_id, not_before))
        snapshot = Snapshot(process_tree=tree)
        asked: list[_Asked] = []
        for info in tree:
            path = self.folder / f"{info.pid}{STACKS_SUFFIX}"
            if channel is not None and info.pid == channel.ready_pid and _fresh(info, path):
                entry = _Asked(info=info, path=path, offset=_size(path), over_channel=True)
                # On the event loop, which owns the lifeline's socket.
                if anyio.from_thread.run_sync(channel.request_stacks):
                    asked.append(entry)
                    continue
            why = self._cannot_ask(info, path, sig)
            if why:
                snapshot.notes.append(f"pid {info.pid} ({info.name}): {why}")
            if why is None or path.exists():
                entry = _Asked(info=info, path=path, offset=_size(path))
                if why is not None:
                    self._silent.append(entry)
                    continue
                try:
                    os.kill(info.pid, sig)
                except OSError:
                    continue  # gone since the tree was read
                asked.append(entry)
        return asked, snapshot

    def _cannot_ask(self, info: ProcessInfo, path: Path, sig: signal.Signals) -> str | None:
        """Why ``info`` must not be sent ``sig`` ('' when it is simply not Python), or None."""
        try:
            head = path.read_text(errors="replace")
        except OSError:
            if looks_like_python(info):
                return (
                    "a Python process without crashsight's start-up hook (python -S, or another "
                    "environment without crashsight); no stacks"
                )
            return ""
        if not _fresh(info, path):
            return ""  # left by an earlier process that had the same pid
        for note in parse_stack_file(head, info.pid).notes:
            if note.startswith(f"{OWN_HANDLER_NOTE}{sig.name} "):
                return f"handles {sig.name} itself, so crashsight left it alone: {note}"
        masks = signal_masks(info.pid)
        if masks is not None and not masks.caught & (1 << (sig - 1)):
            return f"no longer catches {sig.name} (it replaced its program with exec?); no stacks"
        return None

    async def _wait_for(self, asked: list[_Asked]) -> None:
        """Until every file grew and then held still for one poll, or the wait is over."""
        with anyio.move_on_after(self.options.wait):
            while not all(entry.done for entry in asked):
                await anyio.sleep(_POLL_S)
                for entry in asked:
                    if entry.done:
                        continue
                    try:
                        size = entry.path.stat().st_size
                    except OSError:
                        entry.done = True
                        continue
                    entry.done = size > entry.offset and size == entry.size
                    entry.size = size

    def _read(self, asked: list[_Asked], snapshot: Snapshot) -> Snapshot:
        """Parse what each process wrote since it was asked; explain the ones that did not."""
        sig = self.options.dump_signal
        for entry in asked:
            parsed = parse_stack_file(_read_from(entry.path, entry.offset), entry.info.pid)
            dumps = parsed.dumps
            if parsed.threads_cut:
                snapshot.notes.append(
                    f"pid {entry.info.pid} ({entry.info.name}) has over 100 threads: faulthandler "
                    "dumped the newest 100 (the main thread may be among the missing)"
                )
            if dumps:
                snapshot.stacks.extend(dumps[0])
            else:
                self._silent.append(entry)
                if entry.over_channel:
                    asked_by = "the request on its lifeline"
                    why = (
                        " (crashsight's thread there could not run: the GIL held in C code, or "
                        "the interpreter shutting down)"
                        if _exists(entry.info.pid)
                        else " (it has ended)"
                    )
                else:
                    asked_by, why = sig.name, _silence(entry.info.pid, sig)
                snapshot.notes.append(
                    f"pid {entry.info.pid} ({entry.info.name}) did not dump its stacks within "
                    f"{self.options.wait:g} s of {asked_by}{why}; stopped anyway"
                )
        _name_threads(snapshot.stacks, asked)
        if self.options.native:
            for info in snapshot.process_tree:
                if looks_like_python(info):
                    note = native_stacks(info.pid, snapshot.stacks)
                    if note:
                        snapshot.notes.append(note)
        with_source_lines(snapshot.stacks)
        _mark_dumped(snapshot)
        if not any(info.stacks for info in snapshot.process_tree) and not snapshot.notes:
            names = ", ".join(sorted({info.name for info in snapshot.process_tree})) or "none left"
            snapshot.notes.append(
                f"no Python process in the tree to take stacks from ({names}); the process tree "
                "is all there is"
            )
        return snapshot


def _mark_dumped(snapshot: Snapshot) -> None:
    """Flag the processes whose threads are in the stacks, and find where the tree is stuck."""
    order = {info.pid: index for index, info in enumerate(snapshot.process_tree)}
    snapshot.stacks.sort(
        key=lambda s: (order.get(s.pid, len(order)), s.thread_name != "MainThread")
    )
    dumped = {stack.pid for stack in snapshot.stacks}
    for info in snapshot.process_tree:
        info.stacks = info.pid in dumped
    snapshot.blocked_in = find_blocked_in(snapshot.stacks, snapshot.process_tree)


def _name_threads(stacks: list[ThreadStack], entries: list[_Asked]) -> None:
    """Names recorded at the top of each file: dumps read from an offset do not hold them."""
    for entry in entries:
        names = parse_stack_file(_read_from(entry.path, 0), entry.info.pid).thread_names
        name_threads([stack for stack in stacks if stack.pid == entry.info.pid], names)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read_from(path: Path, offset: int) -> str:
    """What a process wrote to its file after ``offset``; '' when the file cannot be read."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def _silence(pid: int, sig: signal.Signals) -> str:
    """Why a process did not answer, when the kernel can tell."""
    masks = signal_masks(pid)
    if masks is None:
        return " (it has ended)" if not _exists(pid) else ""
    bit = 1 << (sig - 1)
    if masks.blocked_everywhere & bit:
        return f": every thread blocks {sig.name}"
    if masks.ignored & bit:
        return f": it ignores {sig.name}"
    return ""


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
