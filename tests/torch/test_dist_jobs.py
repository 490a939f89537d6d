"""Real 3-rank torch jobs: one rank dies for real, and crashsight names it, three ways.

Each scenario runs once here: under real torchrun with every rank and the launcher itself under
``crashsight run`` (one job answers for the per-rank reports and for the launcher's report), and
through the library group under asyncio or trio. ``benchmarks/dist_repeat.py`` runs each way ten
times and puts torchrun's own pick beside crashsight's.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from tests.torch.jobs import EXPECTED, VICTIM, JobResult, run_group, run_torchrun

pytestmark = [
    pytest.mark.torch,
    pytest.mark.skipif(
        importlib.util.find_spec("torch") is None,
        reason="torch is not installed: .venv/bin/pip install torch==2.13.0 (CI does)",
    ),
    pytest.mark.timeout(300),
]


def _check(result: JobResult) -> None:
    expected = (VICTIM, *EXPECTED[result.scenario])
    assert (result.rank, result.category, result.subcategory) == expected, result


@pytest.mark.parametrize("scenario", sorted(EXPECTED))
def test_torchrun_job_per_rank_and_launcher_wrapped(scenario: str, tmp_path: Path) -> None:
    """Under real torchrun, both the per-rank reports and the launcher's name the victim.

    ``aggregate`` over ``rank{rank}.json`` and the launcher's own report agree on the rank
    and the verdict, whichever rank torchrun noticed first.
    """
    results = run_torchrun(scenario, tmp_path, per_rank=True, wrapped=True)
    said = {r.mode: (r.rank, r.category, r.subcategory) for r in results}
    expected = (VICTIM, *EXPECTED[scenario])
    assert said == {"per-rank": expected, "launcher": expected}, results


@pytest.mark.parametrize(
    ("scenario", "backend"),
    [("oom", "asyncio"), ("segfault", "trio"), ("enospc", "trio"), ("hang", "asyncio")],
)
@pytest.mark.anyio
async def test_library_group(scenario: str, backend: str) -> None:
    """`Supervisor.spawn_group` runs the same job without torchrun and names the same rank."""
    _check(await run_group(scenario))


@pytest.fixture
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """The backend the test's parameters name."""
    backend: str = request.node.callspec.params["backend"]
    return backend
