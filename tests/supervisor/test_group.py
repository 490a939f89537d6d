"""A group of runners: ranks of one job that the supervisor starts, stops and judges together."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from crashsight.errors import ConfigurationError
from crashsight.supervisor.status import RunnerCancelled, RunnerFailed
from crashsight.supervisor.stop import StopPolicy
from crashsight.supervisor.supervisor import Supervisor

WORKERS = Path(__file__).resolve().parent / "group_workers.py"

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_every_rank_gets_the_launcher_variables() -> None:
    """Each rank sees RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT; all succeed."""
    async with Supervisor(output="discard") as supervisor:
        group = await supervisor.spawn_group(f"{WORKERS}:check_env", world_size=3)
        outcome = await group.wait()
    assert outcome.status == "succeeded", outcome
    assert outcome.root_cause is None
    assert outcome.root_cause_rank is None
    assert [r.rank for r in outcome.ranks] == [0, 1, 2]
    assert all(r.role is None for r in outcome.ranks)
    assert [r.name for r in group.runners] == [f"{WORKERS}:check_env [rank {i}]" for i in range(3)]


async def test_a_crash_stops_the_others_and_is_named_the_root_cause() -> None:
    """A segfault on rank 2 ends the job: the waiting ranks are stopped as collateral."""
    async with Supervisor(output="discard", stop_policy=StopPolicy(grace=1.0)) as supervisor:
        group = await supervisor.spawn_group(
            f"{WORKERS}:victim_segfaults", "2", world_size=3, peer_grace=None
        )
        outcome = await group.wait()
    assert outcome.status == "failed"
    assert outcome.root_cause_rank == 2
    assert outcome.root_cause is not None
    assert outcome.root_cause.category == "crash"
    assert outcome.first_observed_rank == 2
    roles = {r.rank: r.role for r in outcome.ranks}
    assert roles == {0: "collateral", 1: "collateral", 2: "root_cause"}
    stopped = [runner.status for runner in group.runners[:2]]
    assert all(isinstance(s, RunnerCancelled) for s in stopped), stopped
    assert "rank 2" in outcome.summary


async def test_a_consequence_first_waits_for_the_cause(tmp_path: Path) -> None:
    """When a peer's comm error arrives first, the group waits for the rank that really failed.

    Rank 0 reports a gloo 'Connection closed by peer' and exits; rank 1 runs out of disk only
    after that. The group neither stops rank 1 before its own error nor blames rank 0.
    """
    async with Supervisor(output="discard", stop_policy=StopPolicy(grace=1.0)) as supervisor:
        group = await supervisor.spawn_group(
            f"{WORKERS}:consequence_first", str(tmp_path), world_size=3, peer_grace=60
        )
        outcome = await group.wait()
    assert outcome.root_cause_rank == 1, outcome
    assert outcome.root_cause is not None
    assert (outcome.root_cause.category, outcome.root_cause.subcategory) == ("disk", "enospc")
    roles = {r.rank: r.role for r in outcome.ranks}
    assert roles == {0: "consequence", 1: "root_cause", 2: "collateral"}
    assert isinstance(group.runners[1].status, RunnerFailed)
    assert isinstance(group.runners[2].status, RunnerCancelled)


async def test_bad_group_options_are_refused_before_anything_starts() -> None:
    """A group of no ranks or a negative grace is a configuration error; no runner starts."""
    async with Supervisor(output="discard") as supervisor:
        with pytest.raises(ConfigurationError, match="at least 1 rank"):
            await supervisor.spawn_group(f"{WORKERS}:check_env", world_size=0)
        with pytest.raises(ConfigurationError, match="peer_grace"):
            await supervisor.spawn_group(f"{WORKERS}:check_env", world_size=2, peer_grace=-1)
    assert supervisor.runners == []


async def test_a_group_stopped_from_outside_blames_no_rank() -> None:
    """Cancelling the supervisor stops every rank: the outcome is cancelled, with no root cause."""
    groups = []
    with anyio.CancelScope() as outside:
        async with Supervisor(output="discard", stop_policy=StopPolicy(grace=1.0)) as supervisor:
            groups.append(
                await supervisor.spawn_group(f"{WORKERS}:victim_segfaults", "9", world_size=2)
            )
            outside.cancel()  # once the ranks exist, however long their start took
            await anyio.sleep(600)
    outcome = await groups[0].wait()
    assert outcome.status == "cancelled", outcome
    assert outcome.root_cause is None
    assert outcome.root_cause_rank is None
    assert [r.role for r in outcome.ranks] == ["collateral", "collateral"]
