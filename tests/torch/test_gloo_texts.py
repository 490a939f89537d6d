"""Real gloo and TCPStore failures: the survivors' texts are comm consequences naming the peer.

Three ranks of real torch (CPU, gloo on 127.0.0.1) run under one `Supervisor`; one rank fails
for real and the survivors print what gloo and the TCPStore client really print. Each job runs
once per session and its statuses are shared by the tests.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import anyio
import pytest

from crashsight.diagnostics.jobverdict import JobVerdict, RankOutcome, decide_root_cause
from crashsight.supervisor.status import RunnerFailed, RunnerStatus
from crashsight.supervisor.stop import StopPolicy
from crashsight.supervisor.supervisor import Supervisor

pytest.importorskip("torch", reason="needs torch: pip install 'crashsight[torch]' (torch==2.13.0)")
#: A torch job can take minutes on a loaded machine: more than the suite's 60 s per test.
pytestmark = [pytest.mark.torch, pytest.mark.timeout(300)]

WORKER = Path(__file__).resolve().parent / "gloo_texts_worker.py"
WORLD_SIZE = 3
#: A job that has not ended after this long is a failure of the test, never a wait.
JOB_DEADLINE_S = 120.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def run_job(mode: str, victim: int) -> list[RunnerStatus]:
    """Run WORLD_SIZE ranks; once every survivor has ended, stop what still runs (a hung rank)."""
    port = free_port()
    base = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
            "WORLD_SIZE": str(WORLD_SIZE), "PG_TIMEOUT": "3", "VICTIM": str(victim),
            "PYTHONWARNINGS": "ignore"}  # fmt: skip
    statuses: dict[int, RunnerStatus] = {}
    with anyio.fail_after(JOB_DEADLINE_S):
        async with Supervisor(output="discard", stop_policy=StopPolicy(grace=2)) as supervisor:
            runners = [
                await supervisor.spawn_command(
                    [sys.executable, str(WORKER), mode],
                    name=f"rank{rank}",
                    env={**base, "RANK": str(rank), "LOCAL_RANK": str(rank)},
                )
                for rank in range(WORLD_SIZE)
            ]
            for rank, runner in enumerate(runners):
                if rank != victim or mode != "hang":
                    statuses[rank] = await runner.wait()
            for rank, runner in enumerate(runners):
                if rank not in statuses:
                    statuses[rank] = await runner.stop("the job's other ranks had failed")
    return [statuses[rank] for rank in range(WORLD_SIZE)]


def outcome(status: RunnerStatus) -> RankOutcome:
    """The job verdict's view of a rank's final status."""
    shared = status.model_dump(include=set(RankOutcome.model_fields) - {"blocked_in"})
    blocked = status.blocked_in.describe() if status.blocked_in else None
    return RankOutcome.model_validate({**shared, "blocked_in": blocked})


@pytest.fixture(scope="session")
def jobs() -> dict[str, list[RunnerStatus]]:
    """Each failure mode's job, run once: exit (peer dies), hang (peer hangs), store (host dies)."""
    return {
        "exit": anyio.run(run_job, "exit", 1),
        "hang": anyio.run(run_job, "hang", 1),
        "store": anyio.run(run_job, "store", 0),
    }


def survivors(statuses: list[RunnerStatus], victim: int) -> list[RunnerFailed]:
    found = [s for rank, s in enumerate(statuses) if rank != victim]
    assert all(isinstance(s, RunnerFailed) for s in found), [s.status for s in found]
    return [s for s in found if isinstance(s, RunnerFailed)]


def test_a_dead_peer_is_a_gloo_consequence_naming_the_peer(
    jobs: dict[str, list[RunnerStatus]],
) -> None:
    """Survivors of a rank that exited mid-all_reduce: comm/gloo consequences, never HTTP."""
    statuses = jobs["exit"]
    for status in survivors(statuses, 1):
        assert (status.category, status.subcategory, status.role) == ("comm", "gloo", "consequence"), (
            status.summary, status.stderr_tail[-3:]
        )  # fmt: skip
        assert {d.id for d in status.diagnostics} <= {"gloo.peer_closed", "gloo.io_error"}
        assert status.blamed_peers
        assert status.blamed_peers[0].startswith("[127.0.0.1]:")
        assert (status.world_size, status.host) == (WORLD_SIZE, socket.gethostname())
    victim = statuses[1]
    assert isinstance(victim, RunnerFailed)
    assert (victim.exit.code, victim.role) == (3, "root_cause")


def test_the_job_verdict_of_a_dead_peer_names_it(jobs: dict[str, list[RunnerStatus]]) -> None:
    """Whichever rank's error came first, the rank that died of its own accord is the cause."""
    verdict: JobVerdict = decide_root_cause([outcome(s) for s in jobs["exit"]])
    assert verdict.root_cause is not None
    assert verdict.root_cause.rank == 1
    assert verdict.roles == ["consequence", "root_cause", "consequence"]


def test_a_hung_peer_is_a_gloo_timeout_and_the_hang_is_named(
    jobs: dict[str, list[RunnerStatus]],
) -> None:
    """Peers of a hung rank time out in gloo; the stopped rank is named with a timeout verdict."""
    statuses = jobs["hang"]
    for status in survivors(statuses, 1):
        assert (status.category, status.subcategory, status.role) == (
            "comm", "gloo_timeout", "consequence",
        ), (status.summary, status.stderr_tail[-3:])  # fmt: skip
        assert status.diagnostics[0].fields["timeout_ms"] == "3000"
    assert statuses[1].status == "cancelled"
    cause = decide_root_cause([outcome(s) for s in statuses]).root_cause
    assert cause is not None
    assert (cause.rank, cause.category, cause.subcategory) == (1, "timeout", "hang")
    assert cause.blocked_in is not None
    assert cause.blocked_in.startswith("collectives (gloo_texts_worker.py:"), cause.blocked_in
    assert f"(blocked in {cause.blocked_in})" in cause.summary


def test_the_store_hosts_death_is_a_tcpstore_consequence(
    jobs: dict[str, list[RunnerStatus]],
) -> None:
    """When the rank hosting the TCPStore exits, the others' store calls are comm/tcpstore."""
    for status in survivors(jobs["store"], 0):
        assert (status.category, status.subcategory, status.role) == (
            "comm", "tcpstore", "consequence",
        ), (status.summary, status.stderr_tail[-3:])  # fmt: skip
    cause = decide_root_cause([outcome(s) for s in jobs["store"]]).root_cause
    assert cause is not None
    assert cause.rank == 0
