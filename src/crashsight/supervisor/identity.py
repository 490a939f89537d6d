"""Which rank of a distributed job a runner is, read from the environment its launcher set.

Launchers announce a process's place in the job through environment variables; crashsight reads
them from the runner's environment so every report says which rank it is. The table is data:
the first launcher whose rank variable holds a number wins, and its own size and local-rank
variables are used with it, so variables of two launchers are never mixed.

========================  =======================  ====================  ============================
launcher                  rank                     world size            local rank (node rank)
========================  =======================  ====================  ============================
``crashsight run --rank`` ``CRASHSIGHT_RANK``      ``CRASHSIGHT_WORLD_   ``CRASHSIGHT_LOCAL_RANK``
                                                   SIZE``
torchrun / torch.dist.    ``RANK``                 ``WORLD_SIZE``        ``LOCAL_RANK``
                                                                         (``GROUP_RANK``)
Open MPI (mpirun)         ``OMPI_COMM_WORLD_RANK`` ``OMPI_COMM_WORLD_    ``OMPI_COMM_WORLD_LOCAL_RANK``
                                                   SIZE``
Slurm (srun)              ``SLURM_PROCID``         ``SLURM_NTASKS``      ``SLURM_LOCALID``
                                                                         (``SLURM_NODEID``)
========================  =======================  ====================  ============================

Sources: torch/distributed/run.py and torch/distributed/elastic/agent/server/local_elastic_agent.py
(torchrun's worker environment), Open MPI's mpirun(1) "Environment Variables" section, and
Slurm's srun(1) "OUTPUT ENVIRONMENT VARIABLES".
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict

__all__ = ["IDENTITY_ENV", "LAUNCHERS", "RankIdentity", "identity_from_env"]


class _Launcher(NamedTuple):
    """One launcher's variable names; ``name`` is for readers of the table."""

    name: str
    rank: str
    world_size: str
    local_rank: str
    node_rank: str | None


#: The variables `crashsight run --rank/--local-rank/--world-size` hands to its runner.
IDENTITY_ENV = _Launcher(
    "crashsight", "CRASHSIGHT_RANK", "CRASHSIGHT_WORLD_SIZE", "CRASHSIGHT_LOCAL_RANK", None
)

#: Launchers in order of precedence: an explicit ``--rank`` first.
LAUNCHERS: tuple[_Launcher, ...] = (
    IDENTITY_ENV,
    _Launcher("torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK", "GROUP_RANK"),
    _Launcher(
        "openmpi",
        "OMPI_COMM_WORLD_RANK",
        "OMPI_COMM_WORLD_SIZE",
        "OMPI_COMM_WORLD_LOCAL_RANK",
        None,
    ),
    _Launcher("slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NODEID"),
)


class RankIdentity(BaseModel):
    """A runner's place in a distributed job; every field None when it is not in one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rank: int | None = None
    local_rank: int | None = None
    world_size: int | None = None
    node_rank: int | None = None
    host: str | None = None


def _number(env: Mapping[str, str], name: str | None) -> int | None:
    text = env.get(name, "").strip() if name else ""
    return int(text) if text.isdigit() else None


def identity_from_env(env: Mapping[str, str], *, host: str | None = None) -> RankIdentity:
    """Read the rank, local rank, world size and node rank a launcher set in ``env``.

    Args:
        env: the runner's environment.
        host: this machine's name; defaults to ``socket.gethostname()``.

    Returns:
        The identity; rank fields are None when no launcher variable holds a number, and the
        host is always filled in.
    """
    machine = host if host is not None else socket.gethostname() or None
    for launcher in LAUNCHERS:
        rank = _number(env, launcher.rank)
        if rank is None:
            continue
        return RankIdentity(
            rank=rank,
            local_rank=_number(env, launcher.local_rank),
            world_size=_number(env, launcher.world_size),
            node_rank=_number(env, launcher.node_rank),
            host=machine,
        )
    return RankIdentity(host=machine)
