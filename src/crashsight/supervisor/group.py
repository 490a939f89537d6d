"""A group of runners that live and die together: one distributed job of N ranks.

::

    Supervisor.spawn_group(target, world_size=N)
      ├── Runner "train [rank 0]"  RANK=0 LOCAL_RANK=0 WORLD_SIZE=N MASTER_ADDR MASTER_PORT
      ├── Runner "train [rank 1]"  ...
      └── watcher (in the supervisor's task group)
            first failure ──▶ a root-cause failure arrives, or peer_grace passes
                          ──▶ every runner still alive is stopped with the stop policy

When one rank of a job dies, its peers cannot go on: they fail in the next collective, or wait in
it until a timeout. The watcher ends the job at the first failure, as torchrun or an exo-style
instance does, but it first lets the evidence in: when the first failure is only a consequence (a
peer's comm error, a timeout), the others get ``peer_grace`` seconds to fail on their own, because
the rank that hangs or dies second may be the cause. A failure that is its own root cause (out of
memory, a crash, a full disk) ends the wait at once.

`RunnerGroup.wait` returns a `GroupOutcome`, decided by `decide_root_cause` over every rank's
status: the same decision ``crashsight aggregate`` makes over per-rank reports.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Literal

import anyio
from pydantic import BaseModel, ConfigDict, Field

from ..diagnostics.jobverdict import RankOutcome, Role, RootCause, decide_root_cause, role_of
from ..errors import ConfigurationError
from .groupstop import stop_with_stacks
from .runner import Runner
from .status import RunnerCancelled, RunnerFailed, RunnerStatus

__all__ = ["GroupOutcome", "GroupRank", "RunnerGroup", "free_port", "rank_environment"]

#: Starts one rank: given its name and environment, returns the running runner.
SpawnRank = Callable[[str, Mapping[str, str]], Awaitable[Runner]]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GroupRank(_Model):
    """How one rank of the group ended, and its part in the job's failure."""

    rank: int
    name: str
    status: Literal["succeeded", "failed", "cancelled"]
    category: str | None = None
    subcategory: str | None = None
    role: Role | None = Field(description="None for a rank that succeeded.")
    summary: str


class GroupOutcome(_Model):
    """The job's verdict: which rank failed first and why, and every other rank's role."""

    status: Literal["succeeded", "failed", "cancelled"] = Field(
        description="failed when any rank failed; cancelled when ranks were only stopped from "
        "outside (the supervisor was cancelled); succeeded when every rank exited 0."
    )
    world_size: int
    root_cause_rank: int | None = Field(description="None when no rank failed.")
    root_cause: RootCause | None = Field(
        description="The root cause with the basis of the decision, as ``aggregate`` gives it."
    )
    first_observed_rank: int | None = Field(
        description="The rank whose end the group saw first among the failures (what a launcher "
        "calls the first observed failure); may be a victim."
    )
    ranks: list[GroupRank]

    @property
    def summary(self) -> str:
        """One line: ``rank 1: memory/memory_error: ...; 2 ranks stopped or failed as a result``."""
        if self.root_cause is None:
            return f"all {self.world_size} ranks {self.status}"
        others = sum(1 for r in self.ranks if r.role is not None and r.rank != self.root_cause_rank)
        where = f"rank {self.root_cause_rank}" if self.root_cause_rank is not None else "a rank"
        tail = f"; {others} other ranks failed or were stopped as a result" if others else ""
        return f"{where}: {self.root_cause.summary}{tail}"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``, for the rendezvous (``MASTER_PORT``).

    The same approach as torchrun's standalone mode: bind port 0, read the port, close. Another
    process may take it in between; the rendezvous then fails with "address already in use".
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def rank_environment(
    base: Mapping[str, str], rank: int, world_size: int, master_addr: str, master_port: int
) -> dict[str, str]:
    """The environment of one rank on one host, with the variables torchrun sets.

    Names as in torch.distributed's ``env://`` rendezvous and torchrun
    (torch/distributed/elastic/agent/server/local_elastic_agent.py, ``_start_workers``).
    """
    return {
        **base,
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "GROUP_RANK": "0",
        "WORLD_SIZE": str(world_size),
        "LOCAL_WORLD_SIZE": str(world_size),
        "MASTER_ADDR": master_addr,
        "MASTER_PORT": str(master_port),
    }


class RunnerGroup:
    """N runners of one target, ranks ``0..N-1`` of one job; see the module docstring.

    Created by `Supervisor.spawn_group`; not instantiated directly.
    """

    def __init__(self, name: str, world_size: int, peer_grace: float | None) -> None:
        if world_size < 1:
            raise ConfigurationError(f"a group needs at least 1 rank, got world_size={world_size}")
        if peer_grace is not None and peer_grace < 0:
            raise ConfigurationError(f"peer_grace must be >= 0 seconds, got {peer_grace}")
        self.name = name
        self.world_size = world_size
        self.peer_grace = peer_grace
        self.master_addr = "127.0.0.1"
        self.master_port = 0
        self.runners: list[Runner] = []
        self._failures: list[int] = []
        self._failed = anyio.Event()
        self._root_cause_seen = anyio.Event()

    async def start(self, spawn: SpawnRank, base_env: Mapping[str, str]) -> None:
        """Start every rank; if one cannot start, stop those already started and re-raise."""
        self.master_port = free_port(self.master_addr)
        try:
            for rank in range(self.world_size):
                env = rank_environment(
                    base_env, rank, self.world_size, self.master_addr, self.master_port
                )
                self.runners.append(await spawn(f"{self.name} [rank {rank}]", env))
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.stop(f"rank {len(self.runners)} of the group could not start")
            raise

    async def watch(self) -> None:
        """Stop the other ranks after the first failure; run by the supervisor until all end."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._stop_after_failure)
            async with anyio.create_task_group() as waiters:
                for rank, runner in enumerate(self.runners):
                    waiters.start_soon(self._wait_rank, rank, runner)
            tg.cancel_scope.cancel()

    async def _wait_rank(self, rank: int, runner: Runner) -> None:
        status = await runner.wait()
        if status.status == "succeeded":
            return
        self._failures.append(rank)
        self._failed.set()
        if role_of(_outcome(rank, self.world_size, status)) == "root_cause":
            self._root_cause_seen.set()

    async def _stop_after_failure(self) -> None:
        await self._failed.wait()
        with anyio.move_on_after(self.peer_grace if self.peer_grace is not None else float("inf")):
            await self._root_cause_seen.wait()
        first = self._failures[0]
        await self.stop(f"stopped by its group after rank {first} failed")

    async def stop(self, reason: str = "stopped on request") -> None:
        """Stop every rank still running with the stop policy, and wait for them.

        Every rank's stacks are taken at the same moment first, so a rank stuck before a
        collective shows where (``blocked_in``) before the others' stops change anything.
        """
        await stop_with_stacks([r for r in self.runners if r.status is None], reason)

    async def wait(self) -> GroupOutcome:
        """Wait for every rank's final status and return the job's verdict."""
        statuses = [await runner.wait() for runner in self.runners]
        return self.outcome(statuses)

    def outcome(self, statuses: Sequence[RunnerStatus]) -> GroupOutcome:
        """Decide the job's verdict from every rank's final status (rank order)."""
        outcomes = [_outcome(rank, self.world_size, s) for rank, s in enumerate(statuses)]
        verdict = decide_root_cause(outcomes, world_size=self.world_size)
        root, roles = verdict.root_cause, list(verdict.roles)
        if not any(isinstance(s, RunnerFailed) for s in statuses):
            # Only stopped from outside (the supervisor was cancelled): no rank to blame.
            root, roles = None, [role_of(outcome) for outcome in outcomes]
        ranks = [
            GroupRank(
                rank=rank,
                name=status.name,
                status=status.status,
                category=outcome.category,
                subcategory=outcome.subcategory,
                role=role,
                summary=outcome.summary,
            )
            for rank, (status, outcome, role) in enumerate(
                zip(statuses, outcomes, roles, strict=True)
            )
        ]
        if root is not None:
            status: Literal["succeeded", "failed", "cancelled"] = "failed"
        elif any(s.status == "cancelled" for s in statuses):
            status = "cancelled"
        else:
            status = "succeeded"
        return GroupOutcome(
            status=status,
            world_size=self.world_size,
            root_cause_rank=None if root is None else root.rank,
            root_cause=root,
            first_observed_rank=self._failures[0] if self._failures else None,
            ranks=ranks,
        )

    def __repr__(self) -> str:
        ended = sum(1 for r in self.runners if r.status is not None)
        return f"<RunnerGroup {self.name!r} {ended}/{self.world_size} ranks ended>"


def _outcome(rank: int, world_size: int, status: RunnerStatus) -> RankOutcome:
    """The decision's view of one rank's final status (its rank as the group numbered it)."""
    ended = status.ended_at or status.started_at + timedelta(seconds=status.duration_s)
    failed = status if isinstance(status, RunnerFailed) else None
    first_error = (failed.first_error_at if failed else None) or ended
    if failed is not None:
        summary = failed.summary
    elif isinstance(status, RunnerCancelled):
        summary = f"cancelled: {status.reason}"
    else:
        summary = f"succeeded: {status.exit.description}"
    return RankOutcome(
        name=status.name,
        rank=rank,
        world_size=world_size,
        host=status.host,
        status=status.status,
        category=failed.category if failed else None,
        subcategory=failed.subcategory if failed else None,
        summary=summary,
        role=failed.role if failed else None,
        # A rank stopped by the group has no error of its own: its end is all there is.
        first_error_at=None if status.status == "succeeded" else first_error,
        ended_at=ended,
        blamed_peers=failed.blamed_peers if failed else [],
        blocked_in=status.blocked_in.describe() if status.blocked_in else None,
    )
