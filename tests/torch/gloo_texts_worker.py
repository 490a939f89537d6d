"""A rank of a small gloo job on 127.0.0.1 whose victim rank fails for real.

Run as ``python gloo_texts_worker.py MODE`` with RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT
set (by a test or by torchrun). The victim (VICTIM, default 1) fails at step 5:

* ``exit``: ``os._exit(3)``, so its peers' sockets close mid-collective (gloo's texts);
* ``hang``: sleeps, so its peers hit the process group's timeout (PG_TIMEOUT seconds);
* ``store``: rank 0 hosts a TCPStore and exits; the others' next store call fails (TCPStore's
  texts);
* ``segfault``: a real SIGSEGV.

Ranks listed in RECORD_RANKS (comma-separated) run inside torch's ``@record``, which writes
torchrun's error file itself when they raise.
"""

from __future__ import annotations

import datetime
import os
import signal
import sys
import time

#: How long the ranks may take to meet at the start: a failure of the test, never of a rank.
RENDEZVOUS_S = 120.0


def collectives(mode: str, rank: int, victim: int) -> None:
    import torch
    import torch.distributed as dist

    # The rendezvous waits for every rank however slow its start; PG_TIMEOUT is the collectives'.
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=RENDEZVOUS_S))
    dist.barrier()
    timeout = datetime.timedelta(seconds=float(os.environ.get("PG_TIMEOUT", "30")))
    group = dist.new_group(timeout=timeout)
    tensor = torch.ones(64)
    for step in range(10_000):
        if rank == victim and step == 5:
            print(f"rank {rank} failing by {mode}", file=sys.stderr, flush=True)
            if mode == "exit":
                os._exit(3)
            if mode == "hang":
                time.sleep(600)
            if mode == "segfault":
                os.kill(os.getpid(), signal.SIGSEGV)
        dist.all_reduce(tensor, group=group)


def store(rank: int, world_size: int) -> None:
    import torch.distributed as dist

    port = int(os.environ["MASTER_PORT"])
    timeout = datetime.timedelta(seconds=30)
    # TCPStore is re-exported by torch.distributed without being declared so to type checkers.
    client = vars(dist)["TCPStore"]("127.0.0.1", port, world_size, rank == 0, timeout=timeout)
    client.set(f"up{rank}", "1")
    client.wait([f"up{r}" for r in range(world_size)])
    if rank == 0:
        print("rank 0 (the store's host) exits", file=sys.stderr, flush=True)
        os._exit(3)
    client.get("never-set")


def main() -> None:
    mode = sys.argv[1]
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    victim = int(os.environ.get("VICTIM", "1"))
    if mode == "store":
        store(rank, world_size)
    elif str(rank) in os.environ.get("RECORD_RANKS", "").split(","):
        from torch.distributed.elastic.multiprocessing.errors import record

        record(collectives)(mode, rank, victim)
    else:
        collectives(mode, rank, victim)


if __name__ == "__main__":
    main()
