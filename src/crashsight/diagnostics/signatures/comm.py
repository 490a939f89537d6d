"""Collective communication failures: NCCL, the MLX ring backend, gloo and torch's TCPStore.

Part of the signature catalogue (see `crashsight.diagnostics.catalogue`): data only.

Every entry here has ``role="consequence"``: in a job of many ranks, a comm error is what a
surviving rank sees when a peer died or hung, so it is never that job's root cause on its own
(`crashsight.diagnostics.jobverdict`). Where the text names the peer, the pattern captures it as
``peer`` (``[10.0.0.5]:29500``, the host and port as printed), which reports list as
``blamed_peers``.
"""

from __future__ import annotations

from ..models import Signature

__all__ = ["SIGNATURES"]

_MLX = "MLX (ml-explore/mlx)"
_RING = f"{_MLX} mlx/distributed/ring/ring.cpp, ring backend (MLX >= 0.22)"
_GLOO = "gloo (pytorch/gloo) gloo/transport/tcp/{}, via torch.distributed (backend='gloo')"
_TCPSTORE = "PyTorch torch/csrc/distributed/c10d/TCPStore.cpp and Utils.hpp (the c10d store client)"
_CAPTURED = "; sample captured from torch 2.13.0 (CPU) ranks on 127.0.0.1 when a peer died"

# fmt: off
SIGNATURES: tuple[Signature, ...] = (
    Signature(
        role="consequence", id="nccl.watchdog_timeout", category="comm", subcategory="nccl_timeout",
        pattern=r"(?:Rank (?P<rank>\d+)\] )?Watchdog caught collective operation timeout: WorkNCCL\(SeqNum=(?P<seq>\d+), OpType=(?P<op>\w+).*?Timeout\(ms\)=(?P<timeout_ms>\d+)\) ran for (?P<ms>\d+) milliseconds before timing out",
        literals=("Watchdog caught collective operation timeout",),
        description="A collective did not finish within the process group timeout: a peer rank is stuck or dead.",
        hint="Find the rank that did not reach the collective (its own log shows the root cause); raise the timeout only for slow steps.",
        source="PyTorch torch/csrc/distributed/c10d/ProcessGroupNCCL.cpp watchdog (torch >= 1.13)",
        samples=(
            "[Rank 1] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=668, OpType=ALLREDUCE, NumelIn=52, NumelOut=52, Timeout(ms)=600000) ran for 600097 milliseconds before timing out.",
            # hiyouga/LlamaFactory issue 7396: torch's log prefix, rank and glog severity.
            "[rank0]:[E321 02:07:08.408271257 ProcessGroupNCCL.cpp:607] [Rank 0] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=1580, OpType=ALLREDUCE, NumelIn=466119168, NumelOut=466119168, Timeout(ms)=600000) ran for 600060 milliseconds before timing out.",
        ),
    ),
    Signature(
        role="consequence", id="nccl.error", category="comm", subcategory="nccl",
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
        role="consequence", id="nccl.result", category="comm", subcategory="nccl",
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
        role="consequence", id="nccl.comm_aborted", category="comm", subcategory="nccl",
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
        role="consequence", id="ring.socket_errno", category="comm", subcategory="ring_socket",
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
        role="consequence", id="ring.abort", category="comm", subcategory="ring_abort",
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
        role="consequence", id="ring.peer_lost", category="comm", subcategory="ring_abort",
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
        role="consequence", id="ring.peer_closed", category="comm", subcategory="ring_abort",
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
        role="consequence", id="gloo.peer_closed", category="comm", subcategory="gloo",
        pattern=r"Connection closed by peer (?P<peer>\[[^\]]+\]:\d+)",
        literals=("Connection closed by peer [",),
        description="A gloo TCP pair lost its peer, normally because that rank exited.",
        hint="Read the peer rank's log: it exited first.",
        source=_GLOO.format("pair.cc") + _CAPTURED,
        samples=(
            "RuntimeError: Connection closed by peer [10.24.184.33]:16062",
            "[rank2]: RuntimeError: [/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:553] Connection closed by peer [127.0.0.1]:38036. This is typically caused by a remote worker crashing. Check the logs of the remote worker before reporting an error. GLHF! \U0001f3d6\ufe0f",
        ),
    ),
    Signature(
        role="consequence", id="gloo.io_error", category="comm", subcategory="gloo",
        pattern=r"(?P<op>Read|Write) error (?P<peer>\[[^\]]+\]:\d+): (?P<reason>[^.]+)",
        literals=("Read error [", "Write error ["),
        description=(
            "A gloo TCP pair's read or write failed, e.g. 'Connection reset by peer': the peer "
            "rank died mid-collective. This is a comm failure, not an HTTP one."
        ),
        hint="Read the peer rank's log (the address is printed): it failed first.",
        source=_GLOO.format("pair.cc") + _CAPTURED,
        samples=(
            "[rank0]: RuntimeError: [/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:537] Read error [127.0.0.1]:6307: Connection reset by peer. This is typically caused by a remote worker hanging or bugs in the application. Check the logs of the remote worker before reporting an error. GLHF! \U0001f3d6\ufe0f",
        ),
    ),
    Signature(
        role="consequence", id="gloo.timeout", category="comm", subcategory="gloo_timeout",
        pattern=r"Timed out waiting (?P<timeout_ms>\d+)ms for (?P<op>recv|send) operation to complete",
        literals=("ms for recv operation to complete", "ms for send operation to complete"),
        description=(
            "A gloo collective waited the process group's whole timeout for a peer: the peer "
            "hung or never reached the collective."
        ),
        hint="Find the rank that did not reach this collective (hung, or slower); its stack shows where it was.",
        source=_GLOO.format("unbound_buffer.cc") + _CAPTURED,
        samples=(
            "[rank0]: RuntimeError: [/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:78] Timed out waiting 3000ms for recv operation to complete",
            "[rank2]: RuntimeError: [/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:129] Timed out waiting 3000ms for send operation to complete",
        ),
    ),
    Signature(
        role="consequence", id="tcpstore.socket_failed", category="comm", subcategory="tcpstore",
        pattern=r"(?P<op>recvValue|recvVector|sendBytes|recvBytes) failed on SocketImpl\(fd=\d+, addr=[^,]*, remote=(?P<peer>[^)]*)\): (?P<reason>.+)",
        literals=(" failed on SocketImpl(",),
        description=(
            "A rank lost its connection to the TCPStore (the rendezvous store, on rank 0 or the "
            "torchrun agent): the store's host died or shut down."
        ),
        hint="The store's host (remote=...) ended first: read rank 0's or the launcher's log.",
        source=_TCPSTORE + "; sample from sgl-project/sglang issue 20859",
        samples=(
            "[rank12]:[W318 10:00:41.929037914 TCPStore.cpp:125] [c10d] recvValue failed on SocketImpl(fd=135, addr=[sglang-0-1.sglang.default.svc.transwarp.local]:48750, remote=[sglang-0.default.pod.transwarp.local]:20000): Connection reset by peer",
        ),
    ),
    Signature(
        role="consequence", id="tcpstore.closed", category="comm", subcategory="tcpstore",
        pattern=r"Failed to (?P<op>recv|send), (?:got|sent) 0 bytes\. Connection was likely closed\.",
        literals=("Connection was likely closed",),
        description="The TCPStore server closed the connection: the rank or agent that hosts it ended.",
        hint="The store's host ended first (rank 0, or torchrun's agent): read its log.",
        source=_TCPSTORE + _CAPTURED,
        samples=(
            "torch.distributed.DistNetworkError: Failed to recv, got 0 bytes. Connection was likely closed. Did the remote server shutdown or crash?",
            "Failed to send, sent 0 bytes. Connection was likely closed. Did the remote server shutdown or crash?",
        ),
    ),
    Signature(
        role="consequence", id="tcpstore.network_error", category="comm", subcategory="tcpstore",
        pattern=r"DistNetworkError: (?P<reason>.+)",
        literals=("DistNetworkError: ",),
        description=(
            "torch.distributed's store client lost the network to the TCPStore (Broken pipe, "
            "Connection reset by peer): its host ended or the network failed."
        ),
        hint="Check whether the store's host (MASTER_ADDR, rank 0 or torchrun's agent) ended first.",
        source=_TCPSTORE + _CAPTURED,
        samples=("torch.distributed.DistNetworkError: Broken pipe",),
    ),
)
# fmt: on
