"""Ranks for the group tests: each reads its rank from the environment, as a torch job does.

The tests load this file by path, so it imports nothing from the test suite.
"""

from __future__ import annotations

import os
import sys
import time

from crashsight.testing import injectors


def check_env() -> None:
    """Exits 0 when the rank variables a launcher sets are all there and agree."""
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    assert 0 <= rank < world, (rank, world)
    assert os.environ["LOCAL_RANK"] == str(rank)
    assert os.environ["MASTER_ADDR"] == "127.0.0.1"
    assert 0 < int(os.environ["MASTER_PORT"]) < 65536


def victim_segfaults() -> None:
    """The rank named in argv[1] segfaults; every other rank waits for it like a collective."""
    if os.environ["RANK"] == sys.argv[1]:
        injectors.segfault()
    injectors.hang()


def consequence_first() -> None:
    """Rank 0 fails first with a peer's comm error; rank 1 then runs out of disk; rank 2 waits.

    Rank 1 writes to /dev/full only after rank 0 has exited (it waits for rank 0's marker file
    and then for its process to be gone), so the group sees the consequence first. argv[1] is
    the folder for rank 0's marker file.
    """
    marker = os.path.join(sys.argv[1], "rank0.pid")
    rank = os.environ["RANK"]
    if rank == "0":
        with open(marker + ".tmp", "w") as handle:
            handle.write(str(os.getpid()))
        os.replace(marker + ".tmp", marker)
        print(
            "RuntimeError: [../third_party/gloo/gloo/transport/tcp/pair.cc:534] "
            "Connection closed by peer [127.0.0.1]:29500",
            file=sys.stderr,
        )
        raise SystemExit(1)
    if rank == "1":
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _gone(marker):
            time.sleep(0.01)
        injectors.enospc()
    injectors.hang()


def _gone(marker: str) -> bool:
    """Whether the process whose pid is in ``marker`` has exited (a zombie counts as exited)."""
    try:
        with open(marker) as handle:
            pid = int(handle.read())
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except ProcessLookupError:
        return True  # it was reaped between the open and the read of its stat (ESRCH)
    except FileNotFoundError:
        return os.path.exists(marker)
