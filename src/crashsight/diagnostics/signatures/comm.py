"""Collective communication failures: NCCL, the MLX ring backend and gloo.

Part of the signature catalogue (see `crashsight.diagnostics.catalogue`): data only.
"""

from __future__ import annotations

from ..models import Signature

__all__ = ["SIGNATURES"]

_MLX = "MLX (ml-explore/mlx)"
_RING = f"{_MLX} mlx/distributed/ring/ring.cpp, ring backend (MLX >= 0.22)"

# fmt: off
SIGNATURES: tuple[Signature, ...] = (
    Signature(
        id="nccl.watchdog_timeout", category="comm", subcategory="nccl_timeout",
        pattern=r"(?:Rank (?P<rank>\d+)\] )?Watchdog caught collective operation timeout: WorkNCCL\(SeqNum=(?P<seq>\d+), OpType=(?P<op>\w+).*?Timeout\(ms\)=(?P<timeout_ms>\d+)\) ran for (?P<ms>\d+) milliseconds before timing out",
        literals=("Watchdog caught collective operation timeout",),
        description="A collective did not finish within the process group timeout: a peer rank is stuck or dead.",
        hint="Find the rank that did not reach the collective (its own log shows the root cause); raise the timeout only for slow steps.",
        source="PyTorch torch/csrc/distributed/c10d/ProcessGroupNCCL.cpp watchdog (torch >= 1.13)",
        samples=("[Rank 1] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=668, OpType=ALLREDUCE, NumelIn=52, NumelOut=52, Timeout(ms)=600000) ran for 600097 milliseconds before timing out.",),
    ),
    Signature(
        id="nccl.error", category="comm", subcategory="nccl",
        pattern=r"NCCL error in: (?P<where>[^,]+), (?P<reason>[^,(]*[^,( ])(?: \(run with NCCL_DEBUG=INFO for details\))?(?:, NCCL version (?P<version>[\d.]+))?",
        literals=("NCCL error in: ",),
        description="An NCCL call returned an error; 'unhandled system error' is usually the network or a dead peer.",
        hint="Rerun with NCCL_DEBUG=INFO; check NCCL_SOCKET_IFNAME, firewalls and whether a peer rank died first.",
        source="PyTorch C10D_NCCL_CHECK (torch/csrc/distributed/c10d/NCCLUtils.hpp), 'NCCL version' suffix since torch 1.10",
        samples=(
            "torch.distributed.DistBackendError: NCCL error in: ../torch/csrc/distributed/c10d/ProcessGroupNCCL.cpp:1333, unhandled system error (run with NCCL_DEBUG=INFO for details), NCCL version 2.18.1",
            "[rank18]: torch.distributed.DistBackendError: NCCL error in: ../torch/csrc/distributed/c10d/NCCLUtils.hpp:317, unhandled system error (run with NCCL_DEBUG=INFO for details), NCCL version 2.21.5",
            "RuntimeError: NCCL error in: /pytorch/torch/lib/c10d/ProcessGroupNCCL.cpp:290, internal error",
        ),
    ),
    Signature(
        id="nccl.result", category="comm", subcategory="nccl",
        pattern=r"\b(?P<code>nccl(?:RemoteError|SystemError|InternalError|UnhandledCudaError|InvalidUsage|InvalidArgument))\b",
        literals=("ncclRemoteError", "ncclSystemError", "ncclInternalError", "ncclUnhandledCudaError", "ncclInvalidUsage", "ncclInvalidArgument"),
        description="NCCL's own result code and explanation, printed after 'NCCL error in:'.",
        hint="ncclRemoteError/ncclSystemError: a peer died or the network failed; the others are driver or usage bugs.",
        source="NVIDIA NCCL ncclResult_t names with ncclGetErrorString text, via PyTorch getNcclErrorDetailStr",
        samples=(
            "ncclRemoteError: A call failed possibly due to a network error or a remote process exiting prematurely.",
            "ncclSystemError: System call (e.g. socket, malloc) or external library call failed or device error.",
            "ncclInvalidArgument: Invalid value for an argument.",
        ),
    ),
    Signature(
        id="nccl.comm_aborted", category="comm", subcategory="nccl",
        pattern=r"NCCL communicator was aborted on rank (?P<rank>\d+)",
        literals=("NCCL communicator was aborted",),
        description="The communicator was aborted after an earlier failure (watchdog timeout or a peer error); a consequence.",
        hint="Look for the 'Original reason' or an earlier NCCL error or timeout; fix that one.",
        source="PyTorch NCCLComm::getNcclComm (torch/csrc/distributed/c10d/NCCLUtils.cpp, torch >= 1.11)",
        samples=(
            "torch.distributed.DistBackendError: NCCL communicator was aborted on rank 2.",
            "RuntimeError: NCCL communicator was aborted on rank 1",
        ),
    ),
    Signature(
        id="ring.socket_errno", category="comm", subcategory="ring_socket",
        pattern=r"\[ring\] (?:Receiving from|Sending to) socket (?P<socket>\d+) failed with errno (?P<errno>\d+)",
        literals=("[ring] Receiving from socket", "[ring] Sending to socket"),
        description="A ring-backend socket send or recv failed with an OS error; this is the root-cause side of a ring abort.",
        hint="ECONNRESET/EPIPE: the peer died or the link dropped (check the peer's log, firewall, Thunderbolt/Ethernet link).",
        source=_RING,
        samples=(
            "[ring] Receiving from socket 23 failed with errno 104",
            "[ring] Sending to socket 17 failed with errno 32",
            "[ring] Receiving from socket 51 failed with errno 14",
        ),
    ),
    Signature(
        id="ring.abort", category="comm", subcategory="ring_abort",
        pattern=r"\[ring\] Too many send/recv errors\. (?:Aborting|Failing pending tasks)\.\.\.",
        literals=("[ring] Too many send/recv errors",),
        description="The ring transport gave up after ten consecutive socket errors; a consequence of those errors.",
        hint="Look at the '[ring] ... failed with errno' lines before this one, and at the peer's log.",
        source=_RING,
        samples=(
            "[ring] Too many send/recv errors. Aborting...",
            "[ring] Too many send/recv errors. Failing pending tasks...",
        ),
    ),
    Signature(
        id="ring.peer_lost", category="comm", subcategory="ring_abort",
        pattern=r"\[ring\] connection to a peer was lost",
        literals=("[ring] connection to a peer was lost",),
        description="A ring collective failed because a peer connection is gone; the cause is on the peer or the link.",
        hint="Read the peer rank's log first: it usually died of something else (GPU timeout, OOM).",
        source=_RING,
        samples=(
            "[ring] connection to a peer was lost",
            "RuntimeError: [ring] connection to a peer was lost",
        ),
    ),
    Signature(
        id="ring.peer_closed", category="comm", subcategory="ring_abort",
        pattern=r"\[ring\] Socket (?P<socket>\d+) was closed by the peer",
        literals=("was closed by the peer",),
        description=(
            "The peer closed its end of a ring socket. Classified with the abort, not with "
            "ring_socket: an orderly close means the root cause is on the peer, whereas a "
            "socket errno is a failure seen on this side."
        ),
        hint="Read the peer rank's log: it exited first.",
        source=_RING,
        samples=("[ring] Socket 19 was closed by the peer",),
    ),
    Signature(
        id="gloo.peer_closed", category="comm", subcategory="gloo",
        pattern=r"Connection closed by peer (?P<peer>\[[^\]]+\]:\d+)",
        literals=("Connection closed by peer [",),
        description="A gloo TCP pair lost its peer, normally because that rank exited.",
        hint="Read the peer rank's log: it exited first.",
        source="gloo gloo/transport/tcp/pair.cc, via torch.distributed (backend='gloo')",
        samples=("RuntimeError: Connection closed by peer [10.24.184.33]:16062",),
    ),
)
# fmt: on
