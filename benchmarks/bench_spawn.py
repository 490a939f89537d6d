"""Benchmark 5: spawn cost, and what importing the runner costs inside every worker.

Spawn: from ``Supervisor.spawn`` to the runner's `Ready` event, against the wall time of
``subprocess.run([python, "-c", "pass"])`` (the target's own bar), and against
``python -c "import crashsight.runner.bootstrap"`` (which leaves only the supervisor's own overhead).

Import: ``python -c "import crashsight.runner.bootstrap"`` against ``python -c pass``, interleaved;
the extra milliseconds are the difference of the medians of the same invocation. ``-X importtime``
names the biggest contributors in the notes.

Warm starts: the same spawn -> Ready with ``Supervisor(preload=...)`` (forked from the zygote)
against ``python -c pass``, and side by side with ``multiprocessing``'s forkserver given the same
preload (``Process.start`` to the child's first message on a Pipe). With torch installed, the
restart of a worker that imports torch (spawn to its first heartbeat, after ``import torch``) cold
against forked from a zygote that preloaded torch; without torch that row says so.
"""

from __future__ import annotations

import contextlib
import importlib.util
import multiprocessing
import multiprocessing.forkserver
import re
import statistics
import subprocess
import time
from collections.abc import Sequence
from functools import partial
from types import TracebackType

from anyio.from_thread import start_blocking_portal
from pydantic import BaseModel

from crashsight import Supervisor
from crashsight.protocol import Heartbeat, Ready
from crashsight.supervisor.cgroup import CgroupMode

from .common import BenchResult, Figure, Settings, child_env, interleave, median_ratio, python
from .workers import mp_ready_child

__all__ = ["run"]

_IMPORT = "import crashsight.runner.bootstrap"


class _Spawner:
    """Times spawn -> ready on supervisors kept open across rounds, one per configuration.

    A supervisor lives as long as its program, and its zygote as long as it does: opening one for
    every spawn measured nothing more and paid a zygote's start (seconds, with torch) every round.
    The supervisors run on the event loop of a portal thread; each spawn is timed on that loop.
    """

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self._portal = self._stack.enter_context(start_blocking_portal())
        self._open: dict[tuple[tuple[str, ...], CgroupMode], Supervisor] = {}

    def __enter__(self) -> _Spawner:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        # The exception goes on to the supervisors and the portal: on Ctrl-C or an error they
        # stop the worker being timed instead of waiting for it to end by itself.
        return self._stack.__exit__(exc_type, exc, tb)

    def to_ready(
        self,
        preload: Sequence[str] = (),
        target: str = "benchmarks.workers:payload_of",
        ready: type[BaseModel] = Ready,
        cgroup: CgroupMode = "auto",
    ) -> float:
        """Seconds from `Supervisor.spawn` to the first ``ready`` event (the zygote is up already)."""
        key = (tuple(preload), cgroup)
        supervisor = self._open.get(key)
        if supervisor is None:
            made = self._portal.call(_supervisor, list(preload), cgroup)
            supervisor = self._stack.enter_context(self._portal.wrap_async_context_manager(made))
            self._open[key] = supervisor
        return self._portal.call(_time_to_ready, supervisor, target, ready)


async def _supervisor(preload: list[str], cgroup: CgroupMode) -> Supervisor:
    """A supervisor made on the portal's loop, where its anyio primitives belong."""
    return Supervisor(output="discard", preload=preload, cgroup=cgroup)


async def _time_to_ready(supervisor: Supervisor, target: str, ready: type[BaseModel]) -> float:
    start = time.perf_counter()
    worker = await supervisor.spawn(target, env=child_env())
    async for event in worker.events():
        if isinstance(event, ready):
            elapsed = time.perf_counter() - start
            await worker.wait()
            return elapsed
    raise AssertionError(f"the runner never sent {ready.__name__}")


def _mp_forkserver(torch: bool) -> float:
    """Seconds from ``Process.start`` on multiprocessing's forkserver to the child's message."""
    ctx = multiprocessing.get_context("forkserver")
    receiver, sender = ctx.Pipe(duplex=False)
    start = time.perf_counter()
    proc = ctx.Process(target=mp_ready_child, args=(sender, torch))
    proc.start()
    sender.close()
    receiver.recv_bytes()
    elapsed = time.perf_counter() - start
    proc.join()
    receiver.close()
    return elapsed


def _use_mp_preload(modules: list[str]) -> None:
    """Restart multiprocessing's forkserver with ``modules`` preloaded, and warm it up."""
    multiprocessing.forkserver._forkserver._stop()  # type: ignore[attr-defined]
    multiprocessing.get_context("forkserver").set_forkserver_preload(modules)
    _mp_forkserver(torch=False)


def _python(code: str) -> float:
    """Wall seconds of ``python -c CODE`` started with `subprocess`."""
    start = time.perf_counter()
    subprocess.run([python(), "-c", code], check=True, env=child_env())
    return time.perf_counter() - start


def _favordynmods() -> bool | None:
    """Whether cgroup v2 is mounted with ``favordynmods``; None without a cgroup v2 mount.

    The option decides what a move into a cgroup costs, so the spawn row depends on it: without
    it, writing a pid to ``cgroup.procs`` waits for an RCU grace period (5-16 ms measured here,
    longer than an interpreter's start), with it 0.2-0.3 ms. See the README's Start-up note.
    """
    try:
        with open("/proc/self/mounts") as mounts:
            options = [f[3] for f in map(str.split, mounts) if f[2:3] == ["cgroup2"]]
    except OSError:
        return None
    if not options:
        return None
    return any("favordynmods" in option.split(",") for option in options)


def _importtime_top(n: int = 6) -> list[str]:
    """The ``n`` modules with the largest self time under ``-X importtime``."""
    out = subprocess.run(
        [python(), "-X", "importtime", "-c", _IMPORT],
        capture_output=True,
        text=True,
        check=True,
        env=child_env(),
    ).stderr
    rows = []
    for line in out.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|\s*(\S.*)$", line)
        if m:
            rows.append((int(m.group(1)), int(m.group(2)), m.group(3)))
    total = next((cum for _, cum, name in rows if name == "crashsight.runner.bootstrap"), 0)
    top = sorted(rows, reverse=True)[:n]
    return [f"cumulative {total / 1e3:.1f} ms"] + [
        f"{name} {own / 1e3:.1f} ms self" for own, _, name in top
    ]


def run(settings: Settings) -> BenchResult:
    """Compare spawn-to-Ready and import cost; see the module docstring."""
    result = BenchResult("spawn", "Spawn to Ready, and importing the runner in a worker")
    with _Spawner() as spawner:
        _cold_figures(result, settings, spawner)
        _warm_figures(result, settings, spawner)
    return result


def _cold_figures(result: BenchResult, settings: Settings, spawner: _Spawner) -> None:
    """The cold rows: spawn -> Ready, and the runner's import, against python -c pass."""
    rounds = settings.rounds(full=30, quick=3)
    values = interleave(
        {
            "ready": spawner.to_ready,
            "ready_no_cgroup": partial(spawner.to_ready, cgroup="off"),
            "pass": partial(_python, "pass"),
            "import": partial(_python, _IMPORT),
        },
        rounds,
    )
    medians = {k: statistics.median(v) for k, v in values.items()}
    detail: dict[str, object] = {
        "rounds": rounds,
        **{f"median_ms_{k}": round(v * 1e3, 1) for k, v in medians.items()},
        "cgroup2_favordynmods": _favordynmods(),
    }
    vs_pass = median_ratio(values["ready"], values["pass"])
    result.figures.append(
        Figure(
            "spawn -> Ready vs subprocess python -c pass",
            vs_pass,
            "x the time",
            "<= 1.3",
            vs_pass <= 1.3,
            detail,
        )
    )
    _no_cgroup_figure(result, "spawn", values["ready_no_cgroup"], values["pass"], detail)
    result.figures.append(
        Figure(
            "spawn -> Ready vs subprocess python -c 'import crashsight.runner.bootstrap'",
            median_ratio(values["ready"], values["import"]),
            "x the time",
            detail=detail,
        )
    )
    extra_ms = (medians["import"] - medians["pass"]) * 1e3
    result.figures.append(
        Figure(
            "import crashsight.runner.bootstrap vs python -c pass",
            median_ratio(values["import"], values["pass"]),
            "x the time",
            "<= 30 ms extra",
            extra_ms <= 30,
            {**detail, "extra_ms": round(extra_ms, 1)},
        )
    )
    result.notes.append("-X importtime: " + "; ".join(_importtime_top()))


def _no_cgroup_figure(
    result: BenchResult,
    what: str,
    no_cgroup: list[float],
    baseline: list[float],
    detail: dict[str, object],
) -> None:
    """The same spawn with ``cgroup="off"``: what moving the runner into its cgroup costs.

    Where crashsight can make cgroups, each runner is moved into its own before it runs any
    worker code. That write to ``cgroup.procs`` takes the kernel's cgroup-wide threadgroup lock,
    which, when no migration ran just before, waits for an RCU grace period (several ms on a
    2-core VM; none with the cgroup2 mount option ``favordynmods``). Only hosts with writable
    cgroups pay it, so the row shows the spawn without it.
    """
    result.figures.append(
        Figure(
            f"{what} -> Ready, cgroup='off' (no move into a cgroup) vs python -c pass",
            median_ratio(no_cgroup, baseline),
            "x the time",
            detail=detail,
        )
    )


def _warm_figures(result: BenchResult, settings: Settings, spawner: _Spawner) -> None:
    """The fork-server rows: bare runner against python -c pass, and the torch restart."""
    preload = ["benchmarks.workers"]
    _use_mp_preload(preload)
    values = interleave(
        {
            "forked": partial(spawner.to_ready, preload),
            "forked_no_cgroup": partial(spawner.to_ready, preload, cgroup="off"),
            "pass": partial(_python, "pass"),
            "mp": partial(_mp_forkserver, False),
        },
        settings.rounds(full=20, quick=2),
    )
    detail: dict[str, object] = {
        f"median_ms_{k}": round(statistics.median(v) * 1e3, 1) for k, v in values.items()
    }
    vs_pass = median_ratio(values["forked"], values["pass"])
    result.figures.append(
        Figure(
            "forked spawn -> Ready (preload) vs subprocess python -c pass",
            vs_pass,
            "x the time",
            "<= 1.0",
            vs_pass <= 1.0,
            detail,
        )
    )
    _no_cgroup_figure(result, "forked spawn", values["forked_no_cgroup"], values["pass"], detail)
    result.figures.append(
        Figure(
            "forked spawn -> Ready vs multiprocessing forkserver start -> first message",
            median_ratio(values["forked"], values["mp"]),
            "x the time",
            detail=detail,
        )
    )
    skip = None
    if settings.quick:
        skip = (
            "the torch restart row is skipped in a --quick run (a cold torch import takes seconds)"
        )
    elif importlib.util.find_spec("torch") is None:
        skip = "torch is not installed: the torch restart row was skipped (pip install torch)"
    if skip is not None:
        result.notes.append(skip)
        _use_mp_preload([])
        return
    torch_preload = [*preload, "torch"]
    _use_mp_preload(torch_preload)
    torch_target = "benchmarks.workers:ready_after_torch"
    torch_values = interleave(
        {
            "cold": partial(spawner.to_ready, (), torch_target, Heartbeat),
            "forked": partial(spawner.to_ready, torch_preload, torch_target, Heartbeat),
            "mp": partial(_mp_forkserver, True),
        },
        settings.rounds(full=3, quick=1),
    )
    _use_mp_preload([])
    torch_detail: dict[str, object] = {
        f"median_ms_{k}": round(statistics.median(v) * 1e3, 1) for k, v in torch_values.items()
    }
    speedup = median_ratio(torch_values["cold"], torch_values["forked"])
    result.figures.append(
        Figure(
            "restart of a worker that imports torch: cold spawn vs forked (preload torch)",
            speedup,
            "x faster forked",
            ">= 10",
            speedup >= 10,
            torch_detail,
        )
    )
    result.figures.append(
        Figure(
            "forked torch worker -> ready vs multiprocessing forkserver (preload torch)",
            median_ratio(torch_values["forked"], torch_values["mp"]),
            "x the time",
            detail=torch_detail,
        )
    )
