"""One rank of a small real distributed job: gloo on 127.0.0.1, a loop of ``all_reduce``.

Run by torchrun (``python dist_worker.py SCENARIO``), by ``crashsight run`` under torchrun, or as a
runner target of the library group (``dist_worker.py:main``). The rank and the rendezvous come
from the launcher's environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``), as in
any torch job. One rank, the victim, fails for real part-way through the loop while the others
are inside (or about to enter) the same collective, so the race between its death and its peers'
errors is the real one:

* ``oom``: the CPU allocator refuses a tensor larger than the address space
  (``DefaultCPUAllocator: can't allocate memory``);
* ``segfault``: a read of address 0 through ctypes (SIGSEGV);
* ``enospc``: a checkpoint written to ``/dev/full`` (``[Errno 28] No space left on device``);
* ``hang``: the victim stops before the collective and the others hit the process group's
  timeout; the launcher (or the group) then stops the victim.

The loaded file imports nothing from the test suite: torchrun runs it as a script.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import os
import sys
import time

SCENARIOS = ("oom", "segfault", "enospc", "hang")
#: How long the ranks may take to meet at the start: a failure of the test, never of a rank.
RENDEZVOUS_S = 120.0


def main() -> None:
    """Join the process group, reduce a few times, and fail as the scenario says on the victim."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=SCENARIOS)
    parser.add_argument("--victim", type=int, default=1, help="the rank that fails")
    parser.add_argument("--fail-at", type=int, default=3, help="the step the victim fails in")
    parser.add_argument("--steps", type=int, default=1000, help="steps of a rank that never fails")
    parser.add_argument(
        "--pg-timeout", type=float, default=4.0, help="process group timeout (seconds)"
    )
    args = parser.parse_args()

    import torch
    import torch.distributed as dist

    # The rendezvous waits for every rank however slow its start (three torch imports on a busy
    # machine drift apart by seconds); the short timeout is the collectives' group's alone.
    dist.init_process_group(
        "gloo", init_method="env://", timeout=datetime.timedelta(seconds=RENDEZVOUS_S)
    )
    dist.barrier()
    group = dist.new_group(timeout=datetime.timedelta(seconds=args.pg_timeout))
    rank = dist.get_rank()
    tensor = torch.ones(16)
    for step in range(args.steps):
        if rank == args.victim and step == args.fail_at:
            fail(args.scenario, torch)
        dist.all_reduce(tensor, group=group)
        tensor.fill_(1.0)
    # A rank with nothing left to do waits for the others, as a training loop's last barrier does.
    dist.barrier(group=group)
    dist.destroy_process_group()


def fail(scenario: str, torch: object) -> None:
    """Make ``scenario`` happen for real in this process."""
    if scenario == "oom":
        # More than any machine's address space: the allocator's own error, not an OOM kill.
        torch.empty(1 << 52, dtype=torch.uint8)  # type: ignore[attr-defined]
    elif scenario == "segfault":
        ctypes.string_at(0)
    elif scenario == "enospc":
        with open("/dev/full", "wb") as checkpoint:
            checkpoint.write(b"\0" * 4096)
            checkpoint.flush()
    elif scenario == "hang":
        print(f"rank {os.environ.get('RANK')} is stuck before the collective", file=sys.stderr)
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    main()
