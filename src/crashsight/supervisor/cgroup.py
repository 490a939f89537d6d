"""A cgroup per runner, where the machine allows it: containment nothing escapes, and exact evidence.

A process group, the process tree and an environment marker find most of what a runner starts,
but a daemon that calls ``setsid`` and scrubs its environment escapes them. A cgroup does not:
every descendant stays in it whatever it does to its session, group, parent or environment, and
``cgroup.kill`` ends them all at once (how systemd stops a service). ::

    Supervisor(cgroup="auto")  ── detect_host() once ──►  CgroupHost (where, and why / why not)
      Attempt.start ── RunnerCgroup.create ──► mkdir <base>/crashsight-<runner id>-<attempt>
                    ── spawn: child waits on the start gate; supervisor writes its pid into
                       cgroup.procs (v2, and v1 memory/pids), then releases it ──► worker code
      stop          ── SIGTERM to the group, grace, then kill_all (cgroup.kill or freeze + kill)
      end           ── kill what is left, read the group's own counters, rmdir ──► Containment
      guardian      ── the same kill and rmdir if the supervisor itself is SIGKILLed

Detection looks for a writable cgroup v2 folder: the supervisor's own cgroup (as root, or in a
subtree systemd delegated to this user), on a v2 mount at ``/sys/fs/cgroup`` or, on hybrid hosts,
``/sys/fs/cgroup/unified``. A hybrid host may bind the memory and pids controllers to v1
hierarchies; the runner then also gets a group of its own there, for its memory evidence
(``memory.oom_control``, ``memory.max_usage_in_bytes``) and its limits. Every group is created
under the supervisor's own, so limits set above crashsight still apply.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import anyio.to_thread

from ..diagnostics.kernelfiles import read_kernel_text, write_kernel_text
from ..diagnostics.oom import OwnMemory, read_own_memory, read_pressure
from ..errors import ConfigurationError
from ..wording import counted
from . import cgroupfs
from .status import Containment

__all__ = ["CGROUP_ROOT", "CgroupHost", "CgroupLimits", "CgroupMode", "RunnerCgroup", "detect_host"]

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_ROOT = Path("/proc")
#: ``auto``: a cgroup per runner when the host allows it, else process groups (and the report
#: says why); ``required``: fail at start when it does not; ``off``: process groups only.
CgroupMode = Literal["auto", "off", "required"]
#: How long a kill may take before the survivors are reported.
_KILL_WITHIN_S = 5.0


@dataclass(frozen=True)
class CgroupLimits:
    """Limits for each runner's process tree, enforced by its cgroup.

    Args:
        memory_max: Bytes of memory (``memory.max`` / ``memory.limit_in_bytes``); the kernel's
            OOM killer acts inside the runner's tree when it is reached.
        pids_max: Processes and threads (``pids.max``); forks beyond it fail with EAGAIN.
    """

    memory_max: int | None = None
    pids_max: int | None = None

    def __post_init__(self) -> None:
        for name in ("memory_max", "pids_max"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigurationError(f"{name} must be a positive number, got {value}")


@dataclass(frozen=True)
class CgroupHost:
    """Where runner cgroups go on this host, as detected once per supervisor.

    Attributes:
        required: Whether a runner that cannot get its cgroup must not start.
        reason: Why runners get (or do not get) a cgroup; copied to every report.
        v2_base: The writable v2 folder runner groups are created in; None means process groups.
        kill_file: Whether ``cgroup.kill`` exists (Linux 5.14+); else freeze + kill.
        v2_controllers: Controllers runner groups get in v2 (``memory``, ``pids``).
        v1_bases: Controller name -> the writable v1 folder its runner groups go in.
        limits: Limits written into every runner group.
    """

    reason: str
    required: bool = False
    v2_base: Path | None = None
    kill_file: bool = False
    v2_controllers: frozenset[str] = frozenset()
    v1_bases: Mapping[str, Path] = field(default_factory=dict)
    limits: CgroupLimits = CgroupLimits()

    def create(self, name: str) -> RunnerCgroup | None:
        """Make the groups of one runner attempt; None when this host gives runners none.

        Raises:
            OSError: A folder could not be created or a limit not written (nothing is left behind).
        """
        if self.v2_base is None and not self.v1_bases:
            return None
        return RunnerCgroup.create(self, name)


def detect_host(
    mode: CgroupMode,
    limits: CgroupLimits | None = None,
    *,
    root: Path = CGROUP_ROOT,
    proc_root: Path = PROC_ROOT,
) -> CgroupHost:
    """Find out whether runners can get a cgroup of their own, and where.

    Args:
        mode: ``auto``, ``off`` or ``required`` (see `CgroupMode`).
        limits: Limits every runner's group must enforce.
        root: Where cgroup filesystems are mounted.
        proc_root: Where procfs is mounted (``/proc/self/cgroup`` names this process's groups).

    Raises:
        ConfigurationError: ``required`` and no writable cgroup v2, or a limit was asked for that
            no writable controller can enforce.
    """
    limits = limits or CgroupLimits()
    wanted = {"memory"} | ({"pids"} if limits.pids_max is not None else set())
    if mode == "off":
        host = CgroupHost(reason="cgroups are off (cgroup='off')", limits=limits)
    else:
        host = _detect(root, proc_root, wanted, limits, required=mode == "required")
        if host.required and host.v2_base is None:
            raise ConfigurationError(
                f"a cgroup per runner was required but is not possible here: {host.reason}"
            )
    for controller, option in (("memory", limits.memory_max), ("pids", limits.pids_max)):
        if option is not None and controller not in (host.v2_controllers | set(host.v1_bases)):
            raise ConfigurationError(
                f"a {controller} limit needs a writable {controller} cgroup, and there is none "
                f"({host.reason})"
            )
    return host


def _detect(
    root: Path, proc_root: Path, wanted: set[str], limits: CgroupLimits, *, required: bool
) -> CgroupHost:
    own = _own_cgroups(proc_root)
    mount = next(
        (m for m in (root, root / "unified") if (m / "cgroup.controllers").is_file()), None
    )
    v2_base: Path | None = None
    kill_file = False
    controllers: frozenset[str] = frozenset()
    if mount is None:
        reason = f"no cgroup v2 hierarchy at {root} or {root / 'unified'}"
    elif "" not in own:
        reason = f"this process has no cgroup v2 path in {proc_root / 'self' / 'cgroup'}"
    else:
        base = mount / own[""].lstrip("/")
        probe = _probe(base)
        if isinstance(probe, str):
            reason = probe
        else:
            v2_base, kill_file = base, "cgroup.kill" in probe
            controllers = _enable_controllers(base, wanted)
            reason = f"a cgroup v2 per runner under {base}" + (
                " (cgroup.kill)"
                if kill_file
                else " (freeze + kill: no cgroup.kill before Linux 5.14)"
            )
    v1_bases: dict[str, Path] = {}
    for controller in sorted(wanted - controllers):
        base = root / controller / own.get(controller, "/").lstrip("/")
        if controller in own and (root / controller).is_dir() and isinstance(_probe(base), set):
            v1_bases[controller] = base
    if v1_bases:
        reason += "; " + ", ".join(f"{c} in a v1 group of its own" for c in v1_bases)
    return CgroupHost(
        reason=reason,
        required=required,
        v2_base=v2_base,
        kill_file=kill_file,
        v2_controllers=controllers,
        v1_bases=v1_bases,
        limits=limits,
    )


def _own_cgroups(proc_root: Path) -> dict[str, str]:
    """This process's groups: ``""`` -> its v2 path, each v1 controller -> its path there."""
    try:
        text = (proc_root / "self" / "cgroup").read_text()
    except OSError:
        return {}
    found: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                found.setdefault(controller, parts[2])
    return found


def _probe(base: Path) -> set[str] | str:
    """Create and remove a group under ``base``: its file names, or why it could not be done."""
    probe = base / f"crashsight-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        probe.mkdir()
    except OSError as exc:
        return f"cannot create a cgroup under {base}: {exc.strerror}"
    try:
        files = {path.name for path in probe.iterdir()}
    finally:
        probe.rmdir()
    if "cgroup.procs" not in files:
        return f"{base} is not a cgroup filesystem (a new folder has no cgroup.procs)"
    if not os.access(base / "cgroup.procs", os.W_OK):
        return f"cannot move processes out of {base}: its cgroup.procs is not writable"
    return files


def _enable_controllers(base: Path, wanted: set[str]) -> frozenset[str]:
    """Controllers runner groups under ``base`` get in v2; enabled here when the kernel lets us.

    Enabling fails (EBUSY) in a non-root group that holds processes, the supervisor's own
    included, and for controllers bound to v1: those stay off and v1 groups are used instead.
    """
    try:
        available = set((base / "cgroup.controllers").read_text().split())
        enabled = set((base / "cgroup.subtree_control").read_text().split())
    except OSError:
        return frozenset()
    for controller in sorted((wanted & available) - enabled):
        try:
            (base / "cgroup.subtree_control").write_text(f"+{controller}")
            enabled.add(controller)
        except OSError:
            continue
    return frozenset(enabled & wanted)


class RunnerCgroup:
    """The cgroups of one runner attempt: created before it starts, removed when it ends."""

    def __init__(self, host: CgroupHost, v2: Path | None, v1: dict[str, Path]) -> None:
        self.host = host
        self.v2 = v2
        self.v1 = v1
        #: Set when the runner could not be moved into its groups (the run goes on without).
        self.join_error: str | None = None

    @classmethod
    def create(cls, host: CgroupHost, name: str) -> RunnerCgroup:
        """Make the folders and write the limits.

        Raises:
            OSError: Something could not be created or written; what was made is removed.
        """
        made = cls(host, None, {})
        try:
            if host.v2_base is not None:
                made.v2 = host.v2_base / name
                made.v2.mkdir()
            for controller, base in host.v1_bases.items():
                made.v1[controller] = base / name
                made.v1[controller].mkdir()
            made._write_limits()
        except OSError:
            cgroupfs.remove_all(made.folders)
            raise
        return made

    @property
    def folders(self) -> list[Path]:
        """Every folder of this runner, v2 first."""
        return [*([self.v2] if self.v2 is not None else []), *self.v1.values()]

    @property
    def contains(self) -> bool:
        """Whether stopping this runner kills a whole v2 cgroup (the escape-proof containment)."""
        return self.v2 is not None and self.join_error is None

    @property
    def has_memory(self) -> bool:
        """Whether the runner has a memory cgroup of its own (exact OOM evidence)."""
        return "memory" in self.v1 or (self.v2 is not None and "memory" in self.host.v2_controllers)

    def join(self, pid: int) -> None:
        """Move ``pid`` (the gated child, before it runs any worker code) into every group.

        Raises:
            OSError: The kernel refused the move.
        """
        for folder in self.folders:
            write_kernel_text(folder / "cgroup.procs", str(pid))

    async def kill(self) -> set[int]:
        """SIGKILL everything in the runner's groups; return the pids that were in them."""
        if self._empty():
            return set()  # the usual case, in one read: no worker thread for it
        return await anyio.to_thread.run_sync(self._kill_sync)

    async def close(self) -> tuple[Containment, list[str]]:
        """Kill what is left, read the groups' own counters, remove them.

        Returns:
            The containment for the report, and notes on anything that could not be done.
        """
        if self._empty():
            # The usual end: nothing to kill, and a few reads and rmdirs of an in-memory file
            # system are cheaper here than a worker thread's two hand-offs, once per runner.
            return self._remove(set())
        return await anyio.to_thread.run_sync(self._kill_and_remove)

    def _empty(self) -> bool:
        """Whether the v2 group is known to hold no process (one read; v1 cannot tell as cheaply)."""
        return self.v2 is not None and cgroupfs.empty(self.v2)

    def _kill_and_remove(self) -> tuple[Containment, list[str]]:
        return self._remove(self._kill_sync())

    def _remove(self, leftovers: set[int]) -> tuple[Containment, list[str]]:
        """Read the counters of the (now empty) groups, then remove them."""
        containment = self._containment()
        notes = cgroupfs.remove_all(self.folders)
        if leftovers:
            notes.append(
                f"killed {counted(len(leftovers), 'process')} still in the runner's cgroup"
            )
        if containment.oom_kills:
            notes.append(
                f"the kernel OOM killer killed {counted(containment.oom_kills, 'process')} in "
                "the runner's own memory cgroup"
            )
        refusals = containment.pids_refusals()
        if refusals:
            notes.append(refusals)
        return containment, notes

    def _kill_sync(self) -> set[int]:
        return cgroupfs.kill_all(
            self.v2,
            list(self.v1.values()),
            kill_file=self.host.kill_file,
            within=_KILL_WITHIN_S,
        )

    def _write_limits(self) -> None:
        limits = self.host.limits
        if limits.memory_max is not None:
            folder, file = self._controller("memory", "memory.max", "memory.limit_in_bytes")
            write_kernel_text(folder / file, str(limits.memory_max))
        if limits.pids_max is not None:
            folder, file = self._controller("pids", "pids.max", "pids.max")
            write_kernel_text(folder / file, str(limits.pids_max))

    def _controller(self, name: str, v2_file: str, v1_file: str) -> tuple[Path, str]:
        if self.v2 is not None and name in self.host.v2_controllers:
            return self.v2, v2_file
        return self.v1[name], v1_file

    def _memory(self) -> tuple[Path | None, OwnMemory | None]:
        if self.v2 is not None and "memory" in self.host.v2_controllers:
            return self.v2, read_own_memory(self.v2, "v2")
        if "memory" in self.v1:
            return self.v1["memory"], read_own_memory(self.v1["memory"], "v1")
        return None, None

    def _pids_limit_hits(self) -> int | None:
        if self.host.limits.pids_max is None:
            return None
        folder = self.v2 if "pids" in self.host.v2_controllers else self.v1.get("pids")
        try:
            events = read_kernel_text(folder / "pids.events").split() if folder else []
        except OSError:
            return None
        return int(events[events.index("max") + 1]) if "max" in events else None

    def _containment(self) -> Containment:
        memory_folder, memory = self._memory() if self.join_error is None else (None, None)
        if self.contains:
            method: Literal["cgroup", "process_group"] = "cgroup"
            reason = self.host.reason
        else:
            method = "process_group"
            reason = self.join_error or self.host.reason
        return Containment(
            method=method,
            reason=reason,
            cgroup=str(self.v2) if self.v2 is not None else None,
            memory_cgroup=str(memory_folder) if memory is not None else None,
            memory_max_bytes=self.host.limits.memory_max,
            pids_max=self.host.limits.pids_max,
            oom_kills=memory.oom_kills if memory is not None else None,
            memory_limit_hits=memory.limit_hits if memory is not None else None,
            peak_memory_bytes=memory.peak_bytes if memory is not None else None,
            pids_limit_hits=self._pids_limit_hits(),
            memory_pressure=read_pressure(self.v2 / "memory.pressure") if self.v2 else None,
        )
