"""Ray's own reports of dead workers and actors, and of its memory monitor killing them.

Part of the signature catalogue (see `crashsight.diagnostics.catalogue`): data only.

These are what a Ray driver prints when a task or actor's worker died without crashsight's
decorator around it: the exception ``ray.get`` raises, and the raylet's lines Ray forwards to the
driver (``(raylet) ...``). They say *that* a worker died; the worker's own last lines, forwarded as
``(task pid=N) ...``, say *why* (a ``Fatal Python error: Segmentation fault`` matches its own
entry, and the collector records the pid), so the ``ray/*`` verdicts rank after those in the rules
and are consequences, never a job's root cause.
The samples marked Ray 2.60 were printed by Ray 2.60.0 on crashsight's test machine.
"""

from __future__ import annotations

from ..models import Signature

__all__ = ["SIGNATURES"]

_EXCEPTIONS = "Ray python/ray/exceptions.py"
_RAYLET = "Ray src/ray/raylet/node_manager.cc, forwarded to the driver as '(raylet) ...'"
_OOM_DOCS = "Ray doc/source/ray-core/scheduling/ray-oom-prevention.rst"

# fmt: off
SIGNATURES: tuple[Signature, ...] = (
    Signature(
        id="ray.memory_monitor", category="memory", subcategory="ray_oom",
        pattern=r"(?:Task was killed|(?P<workers>\d+) worker\(s\) were killed) due to the node running low on memory",
        literals=("killed due to the node running low on memory",),
        description="Ray's memory monitor killed the worker because the node's memory use crossed its threshold (not the kernel's OOM killer).",
        hint="Give the task more memory (ray.remote(memory=...)), run fewer at once, or raise RAY_memory_usage_threshold; the kill details list the top memory users.",
        source=f"{_EXCEPTIONS} OutOfMemoryError, text from src/ray/raylet/node_manager.cc ('Task was killed' before Ray 2.55, 'N worker(s) were killed' since)",
        samples=(
            "1 worker(s) were killed due to the node running low on memory. Memory on the node (IP: 192.0.2.2, ID: f74000a15d27c3807fa1c459b0939268156225abc22f75555f788ae2) was 1.27GB used / 23.54GB limit (0.053915)",
            "ray.exceptions.OutOfMemoryError: Task was killed due to the node running low on memory.",
        ),
    ),
    Signature(
        id="ray.oom_summary", category="memory", subcategory="ray_oom",
        pattern=r"(?P<workers>[1-9]\d*) Workers \(tasks / actors\) killed due to memory pressure \(OOM\)",
        literals=("killed due to memory pressure (OOM)",),
        description="The raylet's periodic summary: its memory monitor killed workers on this node.",
        hint="Give the tasks more memory (ray.remote(memory=...)) or run fewer at once; `ray logs raylet.out -ip <node>` lists what was killed.",
        source=f"{_RAYLET}; sample from {_OOM_DOCS}",
        samples=(
            "(raylet) [2022-11-17 09:16:52,264 E 90996 90996] (raylet) node_manager.cc:3096: 1 Workers (tasks / actors) killed due to memory pressure (OOM), 0 Workers crashed due to other reasons at node (ID: 90efe99b630d4b1f6ac1504df64764732d555b526049638f9d86552f, IP: 172.17.0.2) over the last time period. To see more information about the Workers killed on this node, use `ray logs raylet.out -ip 172.17.0.2`",
        ),
    ),
    Signature(
        id="ray.worker_exit", category="ray", subcategory="worker_died", role="consequence",
        pattern=r"Worker exit type: (?P<exit_type>[A-Z_]+) Worker exit detail: (?P<detail>[^.]*)",
        literals=("Worker exit type: ",),
        description="Ray's account of a worker process that died: its exit type (SYSTEM_ERROR, USER_ERROR, ...) and detail.",
        hint="The worker died without saying why here; look for its own last lines (forwarded as '(name pid=N) ...') or its python-core-worker-*.log and dmesg.",
        source=f"{_RAYLET} (worker death) and {_EXCEPTIONS} ActorDiedError (Ray 2.60)",
        samples=(
            "\x1b[33m(raylet)\x1b[0m A worker died or was killed while executing a task by an unexpected system error. To troubleshoot the problem, check the logs for the dead worker. Lease ID: 0000000001000000ffffffffffffffffffffffffffffffffffffffffffffffff Worker ID: 15d3e86db7cb210e8df7e39530065e01f49486566d146adc34c8208b Node ID: f8c6b4aba9100986e3963752b3a351a44e2ab1dd5d405dc986e08750 Worker IP address: 192.0.2.2 Worker port: 37575 Worker PID: 13254 Worker exit type: SYSTEM_ERROR Worker exit detail: Worker unexpectedly exits with a connection error code 2. End of file. Some common causes include: (1) the process was killed by the OOM killer due to high memory usage, (2) ray stop --force was called, or (3) the worker crashed unexpectedly due to SIGSEGV or another unexpected error.",
            "The actor is dead because its worker process has died. Worker exit type: SYSTEM_ERROR Worker exit detail: Worker unexpectedly exits with a connection error code 2. End of file.",
        ),
    ),
    Signature(
        id="ray.worker_crashed", category="ray", subcategory="worker_died", role="consequence",
        pattern=r"The worker died unexpectedly while executing this task",
        literals=("The worker died unexpectedly while executing this task",),
        description="ray.get raised WorkerCrashedError: the worker running the task died (a crash, a kill, or the OOM killer).",
        hint="The task's worker died; its own last lines (forwarded as '(name pid=N) ...') or python-core-worker-*.log say why. Run the body under crashsight.ray.supervised to get the verdict.",
        source=f"{_EXCEPTIONS} WorkerCrashedError.__str__ (Ray 2.60)",
        samples=(
            "ray.exceptions.WorkerCrashedError: The worker died unexpectedly while executing this task. Check python-core-worker-*.log files for more information.",
        ),
    ),
    Signature(
        id="ray.actor_died", category="ray", subcategory="actor_died", role="consequence",
        pattern=r"The actor died unexpectedly before finishing this task",
        literals=("The actor died unexpectedly before finishing this task",),
        description="ray.get raised ActorDiedError: the actor's process died before finishing the call.",
        hint="Read the 'Worker exit type' and 'Worker exit detail' lines that follow, and the actor's own last lines (forwarded as '(Actor pid=N) ...').",
        source=f"{_EXCEPTIONS} ActorDiedError.BASE_ERROR_MSG (Ray 2.60)",
        samples=(
            "ray.exceptions.ActorDiedError: The actor died unexpectedly before finishing this task.",
        ),
    ),
)
