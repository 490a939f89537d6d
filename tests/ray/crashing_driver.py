"""A Ray driver that dies of a plain (unsupervised) task's segfault, as users' drivers do.

Run as ``python crashing_driver.py GCS_ADDRESS`` under ``crashsight run``; it joins the test
session's cluster. Ray forwards the dead worker's faulthandler lines to this driver's stderr
asynchronously, so before letting the WorkerCrashedError end the driver it waits (bounded) until
Ray has printed them, the way a long-running driver would have.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from typing import Any

from ray._private.ray_logging import global_worker_stdstream_dispatcher

import ray

_FORWARDED_WAIT_S = 120


def encode(shard: int) -> None:
    ctypes.string_at(0)


def main() -> None:
    forwarded = threading.Event()

    def watch(data: dict[str, Any]) -> None:
        if any("Fatal Python error" in line for line in data.get("lines", ())):
            forwarded.set()

    ray.init(address=sys.argv[1])
    # Added after Ray's own printer, so the line is on stderr when the event is set.
    global_worker_stdstream_dispatcher.add_handler("crashsight-test", watch)
    try:
        ray.get(ray.remote(max_retries=0)(encode).remote(3))
    finally:
        forwarded.wait(_FORWARDED_WAIT_S)


if __name__ == "__main__":
    main()
