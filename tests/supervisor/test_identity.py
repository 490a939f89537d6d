"""Rank identity and failure times: every status says which rank it is and when it failed."""

from __future__ import annotations

import os
import sys

import pytest

from crashsight.supervisor.identity import RankIdentity, identity_from_env
from crashsight.supervisor.status import RunnerFailed
from crashsight.supervisor.supervisor import Supervisor


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param(
            {"RANK": "5", "LOCAL_RANK": "1", "WORLD_SIZE": "8", "GROUP_RANK": "2"},
            RankIdentity(rank=5, local_rank=1, world_size=8, node_rank=2, host="h"),
            id="torchrun",
        ),
        pytest.param(
            {
                "OMPI_COMM_WORLD_RANK": "3",
                "OMPI_COMM_WORLD_SIZE": "4",
                "OMPI_COMM_WORLD_LOCAL_RANK": "3",
            },
            RankIdentity(rank=3, local_rank=3, world_size=4, host="h"),
            id="openmpi",
        ),
        pytest.param(
            {"SLURM_PROCID": "9", "SLURM_NTASKS": "16", "SLURM_LOCALID": "1", "SLURM_NODEID": "4"},
            RankIdentity(rank=9, local_rank=1, world_size=16, node_rank=4, host="h"),
            id="slurm",
        ),
        pytest.param(
            # --rank wins over the launcher, and the launcher's size is not mixed in.
            {"CRASHSIGHT_RANK": "1", "RANK": "7", "WORLD_SIZE": "8"},
            RankIdentity(rank=1, host="h"),
            id="explicit-rank-first",
        ),
        pytest.param(
            # A torchrun variable that is not a number is skipped, not a crash.
            {"RANK": "zero", "SLURM_PROCID": "2", "SLURM_NTASKS": "3"},
            RankIdentity(rank=2, world_size=3, host="h"),
            id="garbage-skipped",
        ),
        pytest.param({"PATH": "/bin"}, RankIdentity(host="h"), id="not-distributed"),
    ],
)
def test_identity_comes_from_the_launchers_variables(
    env: dict[str, str], expected: RankIdentity
) -> None:
    """Each launcher's variables give rank, local rank, world size and node; first one wins."""
    assert identity_from_env(env, host="h") == expected


@pytest.mark.asyncio
async def test_a_failed_rank_says_who_it_is_and_when_it_failed() -> None:
    """A real rank's failure carries its identity, its role and first-error/end times in order."""
    env = {**os.environ, "RANK": "2", "WORLD_SIZE": "4", "LOCAL_RANK": "0"}
    script = "import time; time.sleep(0.2); raise ValueError('bad shard')"
    async with Supervisor(output="discard") as supervisor:
        runner = await supervisor.spawn_command([sys.executable, "-c", script], env=env)
        status = await runner.wait()
    assert isinstance(status, RunnerFailed)
    assert (status.rank, status.world_size, status.local_rank) == (2, 4, 0)
    assert status.host
    assert status.role == "root_cause"
    assert status.first_error_at is not None
    assert status.ended_at is not None
    assert status.started_at < status.first_error_at <= status.ended_at
    # The traceback's first line was stamped when it arrived, before the process was reaped.
    assert status.first_error_at < status.ended_at
    # Its last output (the traceback) is the last sign of life, on the wall clock.
    assert status.last_activity_at is not None
    assert status.first_error_at <= status.last_activity_at


@pytest.mark.asyncio
async def test_a_signal_crashsight_did_not_send_is_collateral() -> None:
    """A worker stopped by someone else's SIGTERM (a launcher's) is collateral, not a crash."""
    script = "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"
    async with Supervisor(output="discard") as supervisor:
        runner = await supervisor.spawn_command([sys.executable, "-c", script])
        status = await runner.wait()
    assert isinstance(status, RunnerFailed)
    assert (status.category, status.subcategory, status.role) == (
        "crash",
        "terminated",
        "collateral",
    )
    assert status.signals_sent == []
    assert status.first_error_at == status.ended_at, "the death is its only failure evidence"
