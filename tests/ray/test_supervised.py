"""``@supervised`` on a real local Ray cluster: the driver gets the verdict, the worker survives.

Every failure really happens inside a Ray worker's runner: an invalid memory access through
ctypes, an exception, an allocation refused under a lowered RLIMIT_AS, a hang stopped by the
deadline. Task bodies live at module level and import what they need, because Ray pickles them
by value to its workers and crashsight pickles them again to the runner.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import psutil
import pytest

from crashsight import runner
from crashsight.protocol import Progress, Ready, TaskStarted
from crashsight.ray import PayloadTooLargeError, RayEvent, RunnerFailedError, supervised
from crashsight.report.aggregate import aggregate, load_shard
from crashsight.supervisor.status import RunnerFailed, RunnerSucceeded

pytest.importorskip(
    "ray", reason="Ray is not installed: pip install 'crashsight[ray]' to run the Ray tests"
)

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

#: Generous: a supervised call spawns a Python process on a loaded 2-core machine.
GET_TIMEOUT_S = 120


@supervised()
def segfault() -> None:
    """Read address 0: a real SIGSEGV in native code."""
    ctypes.string_at(0)


@supervised()
def raise_value_error(shard: str) -> None:
    raise ValueError(f"shard {shard} is corrupt")


@supervised()
def allocate_over_rlimit_as() -> None:
    """Lower the runner's address-space limit, then allocate past it: a real MemoryError."""
    import resource

    with open("/proc/self/statm") as statm:
        in_use = int(statm.read().split()[0]) * resource.getpagesize()
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (in_use + (64 << 20), hard))
    bytearray(512 << 20)


#: Long enough for the runner to be inside the body on a loaded machine when the deadline fires.
HANG_DEADLINE_S = 8


@supervised(deadline=HANG_DEADLINE_S)
def hang() -> None:
    threading.Event().wait()


CRASH_CASES = [
    pytest.param(segfault, (), "crash", "segfault", id="segfault"),
    pytest.param(raise_value_error, ("7",), "python", "ValueError", id="raise"),
    pytest.param(allocate_over_rlimit_as, (), "memory", "memory_error", id="rlimit-as"),
]


@pytest.mark.parametrize(("body", "args", "category", "subcategory"), CRASH_CASES)
def test_the_driver_gets_the_verdict(
    ray_cluster: ModuleType,
    body: Callable[..., None],
    args: tuple[str, ...],
    category: str,
    subcategory: str,
) -> None:
    """ray.get raises RunnerFailedError with the verdict, and the Ray worker lives on."""
    task = ray_cluster.remote(max_retries=0)(body)
    with pytest.raises(RunnerFailedError) as caught:
        ray_cluster.get(task.remote(*args), timeout=GET_TIMEOUT_S)
    error = caught.value
    assert (error.category, error.subcategory) == (category, subcategory)
    assert isinstance(error.status, RunnerFailed)
    assert error.in_flight == [body.__qualname__]
    # Ray raises a RayTaskError(RunnerFailedError) holding the original, whose message starts
    # with the one-line verdict.
    original = error.__dict__["cause"]
    assert isinstance(original, RunnerFailedError)
    assert str(original).startswith(f"crashsight: {category}/{subcategory}: ")
    assert error.summary in str(error)
    assert psutil.pid_exists(int(error.context["ray_worker_pid"]))


def test_a_hang_past_the_deadline_names_where_it_was_stuck(ray_cluster: ModuleType) -> None:
    """The deadline's verdict carries the runner's stacks and the line it was blocked in."""
    task = ray_cluster.remote(max_retries=0)(hang)
    with pytest.raises(RunnerFailedError) as caught:
        ray_cluster.get(task.remote(), timeout=GET_TIMEOUT_S)
    error = caught.value
    assert (error.category, error.subcategory) == ("timeout", "deadline")
    assert error.blocked_in is not None
    assert (error.blocked_in.file, error.blocked_in.function) == (__file__, "hang")
    assert error.stacks
    assert f"stopped in {error.blocked_in.describe()}" in error.summary


def test_a_cancelled_task_stops_its_runner(ray_cluster: ModuleType) -> None:
    """ray.cancel on a supervised call that waits forever ends its runner; Ray says cancelled."""
    from ray.util.queue import Queue

    queue = Queue()

    @supervised(events=queue.put_nowait)
    def wait_forever() -> None:
        threading.Event().wait()

    ref = ray_cluster.remote(max_retries=0)(wait_forever).remote()
    runner_pid = None
    while True:  # until the body runs: the runner announced itself, then the call's task
        item: RayEvent = queue.get(timeout=GET_TIMEOUT_S)
        if isinstance(item.event, Ready):
            runner_pid = item.event.pid
        if isinstance(item.event, TaskStarted):
            break
    assert runner_pid is not None
    ray_cluster.cancel(ref)
    with pytest.raises(ray_cluster.exceptions.TaskCancelledError):
        ray_cluster.get(ref, timeout=GET_TIMEOUT_S)
    # The supervisor reaps its runner before the cancellation reaches Ray.
    assert not psutil.pid_exists(runner_pid)
    ray_cluster.kill(queue.actor)


@supervised()
def scale(values: list[int], factor: int = 1) -> dict[str, int]:
    return {"sum": sum(values) * factor, "pid": os.getpid()}


def test_a_successful_call_returns_its_value(ray_cluster: ModuleType) -> None:
    """Arguments go to the runner and the return value comes back, by pickle."""
    task = ray_cluster.remote(scale)
    result = ray_cluster.get(task.remote([1, 2, 3], factor=2), timeout=GET_TIMEOUT_S)
    assert result["sum"] == 12
    assert result["pid"] != os.getpid()


class Shard:
    """An actor whose work runs supervised: a crash in a method must not kill the actor."""

    def __init__(self) -> None:
        self.done = 0

    def pid(self) -> int:
        return os.getpid()

    @supervised()
    def encode(self, shard: int) -> int:
        return self.done + shard

    @supervised()
    def crash(self) -> None:
        ctypes.string_at(0)


def test_an_actor_survives_a_method_that_crashes(ray_cluster: ModuleType) -> None:
    """The method's verdict and stack reach the driver; the same actor process serves the next call."""
    actor = ray_cluster.remote(Shard).remote()
    pid = ray_cluster.get(actor.pid.remote(), timeout=GET_TIMEOUT_S)
    with pytest.raises(RunnerFailedError) as caught:
        ray_cluster.get(actor.crash.remote(), timeout=GET_TIMEOUT_S)
    status = caught.value.status
    assert isinstance(status, RunnerFailed)
    assert (status.category, status.subcategory) == ("crash", "segfault")
    assert status.exit.signal == "SIGSEGV"
    assert [d.id for d in status.diagnostics] == ["faulthandler.segfault"]
    # faulthandler's stack names the method, in this file, under the native call.
    assert status.termination_error is not None
    assert (
        status.termination_error.frames[-2].file,
        status.termination_error.frames[-2].function,
    ) == (__file__, "crash")
    assert caught.value.context["ray_worker_pid"] == str(pid)
    assert caught.value.context["ray_actor_id"]
    assert ray_cluster.get(actor.encode.remote(5), timeout=GET_TIMEOUT_S) == 5
    assert ray_cluster.get(actor.pid.remote(), timeout=GET_TIMEOUT_S) == pid
    ray_cluster.kill(actor)


class AsyncShard:
    """An async actor: its methods run on an event loop that Ray owns."""

    async def pid(self) -> int:
        return os.getpid()

    @supervised()
    async def crash(self) -> None:
        ctypes.string_at(0)

    @supervised()
    def blocking_raise(self) -> None:
        raise KeyError("missing-key")


def test_an_async_actor_gets_verdicts_too(ray_cluster: ModuleType) -> None:
    """An async method runs on the actor's loop; a plain one, with a loop running, on a thread."""
    actor = ray_cluster.remote(AsyncShard).remote()
    pid = ray_cluster.get(actor.pid.remote(), timeout=GET_TIMEOUT_S)
    with pytest.raises(RunnerFailedError) as crashed:
        ray_cluster.get(actor.crash.remote(), timeout=GET_TIMEOUT_S)
    assert (crashed.value.category, crashed.value.subcategory) == ("crash", "segfault")
    with pytest.raises(RunnerFailedError) as raised:
        ray_cluster.get(actor.blocking_raise.remote(), timeout=GET_TIMEOUT_S)
    assert (raised.value.category, raised.value.subcategory) == ("python", "KeyError")
    assert ray_cluster.get(actor.pid.remote(), timeout=GET_TIMEOUT_S) == pid
    ray_cluster.kill(actor)


def test_runner_events_reach_the_driver_through_a_queue(ray_cluster: ModuleType) -> None:
    """Progress and task events arrive on the driver, labelled with the Ray task, status last."""
    from ray.util.queue import Queue

    queue = Queue()

    @supervised(events=queue.put_nowait)
    def work() -> None:
        with runner.task("part-1"):
            runner.progress("half way", 0.5)

    ray_cluster.get(ray_cluster.remote(work).remote(), timeout=GET_TIMEOUT_S)
    received: list[RayEvent] = queue.get_nowait_batch(queue.qsize())
    events = [item.event for item in received]
    assert {item.name for item in received} == {work.__qualname__}
    assert all(item.ray_task_id for item in received)
    assert [e.task_id for e in events if isinstance(e, TaskStarted)] == [received[0].name, "part-1"]
    assert [e.message for e in events if isinstance(e, Progress)] == ["half way"]
    assert isinstance(events[-1], RunnerSucceeded)
    ray_cluster.kill(queue.actor)


def test_reports_of_many_tasks_aggregate_into_one_verdict(
    ray_cluster: ModuleType, tmp_path: Path
) -> None:
    """Each call writes its report to the shared directory; `aggregate` reads the job from it."""

    @supervised(report_dir=tmp_path, name="encode")
    def encode(shard: int) -> int:
        if shard == 2:
            raise OSError(28, "No space left on device")
        return shard

    task = ray_cluster.remote(max_retries=0)(encode)
    refs = [task.remote(shard) for shard in range(3)]
    assert ray_cluster.get(refs[:2], timeout=GET_TIMEOUT_S) == [0, 1]
    with pytest.raises(RunnerFailedError):
        ray_cluster.get(refs[2], timeout=GET_TIMEOUT_S)
    reports = sorted(tmp_path.glob("encode-*.json"))
    assert len(reports) == 3
    job = aggregate([load_shard(path) for path in reports], "[encode]")
    assert job.title == "[encode] (disk, 1 shard)"
    assert job.total_shards == 3


@supervised(max_payload_bytes=4096)
def echo(data: bytes) -> bytes:
    return data * 2


def test_payloads_over_the_limit_get_a_clear_error(ray_cluster: ModuleType) -> None:
    """Arguments over the limit fail before a runner starts; a return value over it, in the runner."""
    task = ray_cluster.remote(max_retries=0)(echo)
    with pytest.raises(PayloadTooLargeError, match="the arguments of echo pickle to"):
        ray_cluster.get(task.remote(b"x" * 8192), timeout=GET_TIMEOUT_S)
    with pytest.raises(RunnerFailedError) as caught:
        ray_cluster.get(task.remote(b"x" * 3000), timeout=GET_TIMEOUT_S)
    assert (caught.value.category, caught.value.subcategory) == ("python", "PayloadTooLargeError")
    assert ray_cluster.get(task.remote(b"ok"), timeout=GET_TIMEOUT_S) == b"okok"
