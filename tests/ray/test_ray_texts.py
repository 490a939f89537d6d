"""Ray's own texts, classified without the decorator: what a plain Ray driver prints.

The prefix and catalogue tests need no Ray; the last two make Ray raise its errors for real, on
the session's cluster, and classify their exact text.
"""

from __future__ import annotations

import os
from types import ModuleType

import pytest

from crashsight.diagnostics.catalogue import CATALOGUE
from crashsight.diagnostics.classify import Classifier, Facts
from crashsight.diagnostics.collector import StderrCollector
from crashsight.diagnostics.rayprefix import split_ray_prefix

GET_TIMEOUT_S = 120


def classify(text: str) -> tuple[str, str | None, StderrCollector]:
    """The verdict on ``text`` as a driver's stderr, and the collector that read it."""
    collector = StderrCollector(CATALOGUE)
    collector.feed(text.encode() + b"\n")
    collector.close()
    verdict = Classifier().classify(Facts(diagnostics=collector.diagnostics))
    return verdict.category, verdict.subcategory, collector


@pytest.mark.parametrize(
    ("line", "text", "fields"),
    [
        pytest.param(
            "\x1b[36m(encode pid=13254)\x1b[0m Fatal Python error: Segmentation fault",
            "Fatal Python error: Segmentation fault",
            {"ray_worker": "encode", "ray_pid": "13254"},
            id="coloured-task",
        ),
        pytest.param(
            "(Shard pid=77, ip=10.0.0.7) ValueError: bad",
            "ValueError: bad",
            {"ray_worker": "Shard", "ray_pid": "77", "ray_ip": "10.0.0.7"},
            id="actor-on-another-node",
        ),
        pytest.param("(pid=5) x", "x", {"ray_pid": "5"}, id="no-name"),
        pytest.param(
            "\x1b[33m(raylet)\x1b[0m A worker died",
            "A worker died",
            {"ray_worker": "raylet"},
            id="raylet",
        ),
        pytest.param("(most recent call first):", "(most recent call first):", {}, id="no-prefix"),
    ],
)
def test_ray_prefix_is_split_from_the_text(line: str, text: str, fields: dict[str, str]) -> None:
    """Name, pid and node come off a forwarded line; other parenthesised text is left alone."""
    assert split_ray_prefix(line) == (text, fields)


def test_a_forwarded_crash_line_records_the_worker_that_died() -> None:
    """The diagnostic's line is the worker's own text; the pid and task name are its fields."""
    category, subcategory, collector = classify(
        "\x1b[36m(encode pid=13254)\x1b[0m Fatal Python error: Segmentation fault\n"
        "ray.exceptions.WorkerCrashedError: The worker died unexpectedly while executing this "
        "task. Check python-core-worker-*.log files for more information."
    )
    assert (category, subcategory) == ("crash", "segfault")
    segfault = collector.diagnostics[0]
    assert segfault.first_line == "Fatal Python error: Segmentation fault"
    assert segfault.fields == {"ray_worker": "encode", "ray_pid": "13254"}


def test_a_memory_monitor_kill_outranks_the_worker_death_it_caused() -> None:
    """A worker death whose detail is the memory monitor's kill reads as memory/ray_oom."""
    category, subcategory, _ = classify(
        "Worker exit type: SYSTEM_ERROR Worker exit detail: Task was killed due to the node "
        "running low on memory."
    )
    assert (category, subcategory) == ("memory", "ray_oom")


def test_the_oom_summary_with_no_kills_is_not_an_oom() -> None:
    """The raylet's summary also counts zero kills; that line is no memory evidence."""
    category, _, collector = classify(
        "(raylet) node_manager.cc:3040: 0 Workers (tasks / actors) killed due to memory pressure "
        "(OOM), 2 Workers crashed due to other reasons at node (ID: 2c8, IP: 172.31.183.172)"
    )
    assert category == "unknown"
    assert collector.diagnostics == []


def _exit_worker() -> None:
    os._exit(3)


class _Crashing:
    def die(self) -> None:
        os._exit(3)


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_workercrashederror_as_ray_raises_it(ray_cluster: ModuleType) -> None:
    """A plain task whose worker exits: Ray's real WorkerCrashedError reads as ray/worker_died."""
    task = ray_cluster.remote(max_retries=0)(_exit_worker)
    with pytest.raises(ray_cluster.exceptions.WorkerCrashedError) as caught:
        ray_cluster.get(task.remote(), timeout=GET_TIMEOUT_S)
    text = f"{type(caught.value).__module__}.{type(caught.value).__name__}: {caught.value}"
    category, subcategory, collector = classify(text)
    assert (category, subcategory) == ("ray", "worker_died")
    assert [d.id for d in collector.diagnostics] == ["ray.worker_crashed"]


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_actordiederror_as_ray_raises_it(ray_cluster: ModuleType) -> None:
    """A plain actor whose process exits: ActorDiedError reads as ray/actor_died, exit type kept."""
    actor = ray_cluster.remote(max_restarts=0)(_Crashing).remote()
    with pytest.raises(ray_cluster.exceptions.ActorDiedError) as caught:
        ray_cluster.get(actor.die.remote(), timeout=GET_TIMEOUT_S)
    text = f"{type(caught.value).__module__}.{type(caught.value).__name__}: {caught.value}"
    category, subcategory, collector = classify(text)
    assert (category, subcategory) == ("ray", "actor_died")
    exit_line = {d.id: d for d in collector.diagnostics}["ray.worker_exit"]
    assert exit_line.fields["exit_type"] == "SYSTEM_ERROR"
