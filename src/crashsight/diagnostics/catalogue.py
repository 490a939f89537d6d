"""The signature catalogue: every failure text crashsight recognises, as one table.

Each entry says how to find a line (``literals`` to grep for, then ``pattern``), what it means
(``category``/``subcategory``, the same taxonomy the classifier's verdicts use) and what to do
about it (``hint``). ``source`` names the library that prints the text and where; ``samples`` are
real lines as that library prints them, and ``tests/diagnostics/test_catalogue.py`` runs every
sample through its own entry and through the classifier, so the table cannot drift from the texts.

Patterns are searched, never anchored at the start of a line, so that log prefixes (timestamps,
``[rank3]:``, ``(WorkerProc pid=200)``) do not hide a match. Where two entries can match one line,
they agree on the category; the intended overlaps are:

* ``requests.max_retries`` (http/connection) wraps the urllib3 cause, so its line may also match
  ``python.connection_refused`` (http/connection) or ``requests.read_timeout`` (http/timeout).
* ``cxx.libcxxabi_terminate`` and ``cxx.terminate`` are evidence only: they wrap the real error
  (``[METAL] ...``, ``[ring] ...``) on the same line, and that error's entry gives the verdict.
"""

from __future__ import annotations

import difflib
import errno
from collections.abc import Mapping
from datetime import UTC, datetime

from .models import Diagnostic, Signature

__all__ = [
    "CATALOGUE",
    "SIGNATURE_IDS",
    "diagnose_line",
    "enrich_fields",
    "ids_matching",
    "match_line",
    "signature_by_id",
]

_MLX = "MLX (ml-explore/mlx)"
_METAL = (
    f"Apple Metal MTLCommandBuffer error description; {_MLX} mlx/backend/metal/eval.cpp "
    "check_error() raises it as '[METAL] Command buffer execution failed: ...' (MLX >= 0.1)"
)
_RING = f"{_MLX} mlx/distributed/ring/ring.cpp, ring backend (MLX >= 0.22)"
_GLIBC = "glibc malloc/malloc.c malloc_printerr(); '*** Error in ...' wrapper before glibc 2.26"
_FAULTHANDLER = "CPython Modules/faulthandler.c fatal-signal handler (Python >= 3.3)"
_STRERROR = "C library strerror() text, as in Python's OSError str() '[Errno N] text' and coreutils"
_GPU_OOM_HINT = "Reduce the batch or sequence size, or free memory held by other processes."

# fmt: off
CATALOGUE: tuple[Signature, ...] = (
    # --- Apple Metal via MLX -------------------------------------------------------------------
    Signature(
        id="metal.gpu_timeout", category="gpu", subcategory="timeout",
        pattern=r"Caused GPU Timeout Error \((?:(?P<code>[0-9a-fA-F]{8}):)?kIOGPUCommandBufferCallbackErrorTimeout\)",
        literals=("kIOGPUCommandBufferCallbackErrorTimeout",),
        description="macOS killed a Metal command buffer that ran too long on the GPU.",
        hint="Split the work into smaller evaluations (mx.eval more often, smaller prefill chunks).",
        source=_METAL,
        samples=(
            "[METAL] Command buffer execution failed: Caused GPU Timeout Error (00000002:kIOGPUCommandBufferCallbackErrorTimeout)",
            "libc++abi: terminating due to uncaught exception of type std::runtime_error: [METAL] Command buffer execution failed: Caused GPU Timeout Error (00000002:kIOGPUCommandBufferCallbackErrorTimeout)",
            "RuntimeError: [METAL] Command buffer execution failed: Caused GPU Timeout Error (00000002:kIOGPUCommandBufferCallbackErrorTimeout)",
        ),
    ),
    Signature(
        id="metal.impacting_interactivity", category="gpu", subcategory="timeout",
        pattern=r"Impacting Interactivity \((?:(?P<code>[0-9a-fA-F]{8}):)?kIOGPUCommandBufferCallbackErrorImpactingInteractivity\)",
        literals=("kIOGPUCommandBufferCallbackErrorImpactingInteractivity",),
        description="The macOS display watchdog killed a Metal command buffer that starved the UI.",
        hint="Run on a Mac without an active display session, or split the work into smaller evaluations.",
        source=_METAL,
        samples=("RuntimeError: [METAL] Command buffer execution failed: Impacting Interactivity (0000000e:kIOGPUCommandBufferCallbackErrorImpactingInteractivity)",),
    ),
    Signature(
        id="metal.out_of_memory", category="gpu", subcategory="oom",
        pattern=r"Insufficient Memory(?: \((?:(?P<code>[0-9a-fA-F]{8}):)?kIOGPUCommandBufferCallbackErrorOutOfMemory\))?",
        literals=("kIOGPUCommandBufferCallbackErrorOutOfMemory", "failed: Insufficient Memory"),
        description="A Metal command buffer failed because the GPU ran out of unified memory.",
        hint=_GPU_OOM_HINT + " On Apple silicon, also check mx.set_memory_limit and the model size.",
        source=_METAL,
        samples=(
            "libc++abi: terminating due to uncaught exception of type std::runtime_error: [METAL] Command buffer execution failed: Insufficient Memory (00000008:kIOGPUCommandBufferCallbackErrorOutOfMemory)",
            "[METAL] Command buffer execution failed: Insufficient Memory",
        ),
    ),
    Signature(
        id="metal.page_fault", category="gpu", subcategory="illegal_address",
        pattern=r"Caused GPU Address Fault Error \((?:(?P<code>[0-9a-fA-F]{8}):)?kIOGPUCommandBufferCallbackErrorPageFault\)",
        literals=("kIOGPUCommandBufferCallbackErrorPageFault",),
        description="A Metal kernel read or wrote an unmapped GPU address (out-of-bounds access).",
        hint="A kernel indexed out of bounds or used a freed buffer; rerun with smaller inputs to bisect.",
        source=_METAL,
        samples=("Execution of the command buffer was aborted due to an error during execution. Caused GPU Address Fault Error (0000000b:kIOGPUCommandBufferCallbackErrorPageFault)",),
    ),
    Signature(
        id="metal.submissions_ignored", category="gpu", subcategory="submissions_ignored",
        evidence_only=True,
        pattern=r"Ignored \(for causing prior/excessive GPU errors\) \((?:(?P<code>[0-9a-fA-F]{8}):)?kIOGPUCommandBufferCallbackErrorSubmissionsIgnored\)",
        literals=("kIOGPUCommandBufferCallbackErrorSubmissionsIgnored",),
        description="Metal refuses further work after an earlier GPU error; a consequence, not a cause.",
        hint="Look for the first Metal error above this one.",
        source=_METAL,
        samples=("Execution of the command buffer was aborted due to an error during execution. Ignored (for causing prior/excessive GPU errors) (00000004:kIOGPUCommandBufferCallbackErrorSubmissionsIgnored)",),
    ),
    Signature(
        id="metal.malloc", category="gpu", subcategory="oom",
        pattern=r"\[(?:metal::)?malloc\] (?:(?:Attempting|Unable) to allocate (?P<bytes>\d+) bytes(?: which is greater than the maximum allowed buffer size of (?P<limit>\d+) bytes)?|Resource limit \((?P<resource_limit>\d+)\) exceeded)",
        literals=("[metal::malloc]", "[malloc] Unable to allocate"),
        description="MLX's Metal allocator refused an allocation: too large for one buffer, over the memory limit, or over the buffer-count limit.",
        hint=_GPU_OOM_HINT + " A single buffer above the maximum size needs a smaller tensor, not more memory.",
        source=f"{_MLX} mlx/backend/metal/allocator.cpp MetalAllocator::malloc (MLX >= 0.10)",
        samples=(
            "libc++abi: terminating due to uncaught exception of type std::runtime_error: [metal::malloc] Attempting to allocate 18253611008 bytes which is greater than the maximum allowed buffer size of 17179869184 bytes.",
            "RuntimeError: [metal::malloc] Resource limit (499000) exceeded.",
            "[malloc] Unable to allocate 1073741824 bytes.",
        ),
    ),
    # --- CUDA and PyTorch ----------------------------------------------------------------------
    Signature(
        id="cuda.oom", category="gpu", subcategory="oom",
        pattern=r"CUDA out of memory\. Tried to allocate (?P<size>[\d.]+ [KMGTP]?i?B)(?:\.? \(?GPU (?P<gpu>\d+)[;) ])?",
        literals=("CUDA out of memory",),
        description="PyTorch's CUDA caching allocator could not satisfy an allocation.",
        hint=_GPU_OOM_HINT + " If reserved >> allocated, try PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True.",
        source="PyTorch c10/cuda/CUDACachingAllocator.cpp; 'GPU 0 has a total capacity' wording since 2.1, torch.OutOfMemoryError since 2.5",
        samples=(
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.95 GiB. GPU 0 has a total capacity of 14.57 GiB of which 1.58 GiB is free. Process 2493055 has 12.02 GiB memory in use.",
            "RuntimeError: CUDA out of memory. Tried to allocate 36.00 MiB (GPU 0; 7.93 GiB total capacity; 130.35 MiB already allocated; 47.06 MiB free; 188.00 MiB reserved in total by PyTorch) If reserved memory is >> allocated memory try setting max_split_size_mb to avoid fragmentation.  See documentation for Memory Management and PYTORCH_CUDA_ALLOC_CONF",
            "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 12.00 MiB. GPU 0 has a total capacity of 79.25 GiB of which 8.94 MiB is free.",
        ),
    ),
    Signature(
        id="cuda.error_oom", category="gpu", subcategory="oom",
        pattern=r"CUDA error: out of memory",
        literals=("CUDA error: out of memory",),
        description="A CUDA API call (often context creation or a library workspace) ran out of GPU memory.",
        hint=_GPU_OOM_HINT + " Check that no other process holds the GPU (nvidia-smi).",
        source="CUDA runtime cudaErrorMemoryAllocation text, raised by PyTorch C10_CUDA_CHECK",
        samples=("RuntimeError: CUDA error: out of memory",),
    ),
    Signature(
        id="cuda.illegal_address", category="gpu", subcategory="illegal_address",
        pattern=r"an illegal memory access was encountered|CUDA_ERROR_ILLEGAL_ADDRESS|CUDA error: misaligned address",
        literals=("an illegal memory access was encountered", "CUDA_ERROR_ILLEGAL_ADDRESS", "CUDA error: misaligned address"),
        description="A CUDA kernel accessed memory it does not own; the CUDA context is now unusable.",
        hint="Rerun with CUDA_LAUNCH_BLOCKING=1 to find the kernel; suspect custom kernels and out-of-range indices.",
        source="CUDA runtime cudaErrorIllegalAddress / cudaErrorMisalignedAddress text, via PyTorch and Triton",
        samples=(
            "RuntimeError: CUDA error: an illegal memory access was encountered",
            "Triton Error [CUDA]: an illegal memory access was encountered",
            "cuLaunchKernel failed: <CUresult.CUDA_ERROR_ILLEGAL_ADDRESS: 700>",
            "CUDA error: misaligned address",
        ),
    ),
    Signature(
        id="cuda.launch_failure", category="gpu", subcategory="launch_failure",
        pattern=r"CUDA error: unspecified launch failure",
        literals=("unspecified launch failure",),
        description="A CUDA kernel faulted or was killed by the driver (often an Xid 13/31/43 event).",
        hint="Check the kernel log (dmesg) for NVRM Xid lines; rerun with CUDA_LAUNCH_BLOCKING=1.",
        source="CUDA runtime cudaErrorLaunchFailure text, raised by PyTorch C10_CUDA_CHECK",
        samples=("RuntimeError: CUDA error: unspecified launch failure",),
    ),
    Signature(
        id="cuda.device_assert", category="gpu", subcategory="device_assert",
        pattern=r"CUDA error: device-side assert triggered",
        literals=("device-side assert triggered",),
        description="A device-side assert fired in a CUDA kernel, usually an index out of range.",
        hint="Check label and index ranges (embedding ids, class targets); run once on CPU for a clear error.",
        source="CUDA runtime cudaErrorAssert text, raised by PyTorch C10_CUDA_CHECK",
        samples=("RuntimeError: CUDA error: device-side assert triggered",),
    ),
    Signature(
        id="cuda.kernel_assert", category="gpu", subcategory="device_assert",
        pattern=r"(?P<file>[^\s:]+\.cuh?):(?P<line>\d+): .*: block: \[(?P<block>[\d,]+)\], thread: \[(?P<thread>[\d,]+)\] Assertion `(?P<assertion>.*)` failed\.",
        literals=(": block: [",),
        description="The failing CUDA_KERNEL_ASSERT itself, printed by the kernel before the CUDA error.",
        hint="The assertion names the broken invariant; 'index out of bounds' means an index >= the dimension size.",
        source="PyTorch CUDA_KERNEL_ASSERT (c10/macros/Macros.h) via the CUDA device printf of __assert_fail",
        samples=('/pytorch/aten/src/ATen/native/cuda/IndexKernel.cu:92: operator(): block: [0,0,0], thread: [0,0,0] Assertion `-sizes[i] <= index && index < sizes[i] && "index out of bounds"` failed.',),
    ),
    Signature(
        id="cuda.ecc", category="gpu", subcategory="hardware",
        pattern=r"uncorrectable ECC error encountered",
        literals=("uncorrectable ECC error encountered",),
        description="The GPU's memory reported an uncorrectable ECC error: a hardware fault.",
        hint="Drain the node and report the GPU (nvidia-smi -q -d ECC); retrying elsewhere should succeed.",
        source="CUDA runtime cudaErrorECCUncorrectable text, via PyTorch (torch.AcceleratorError since 2.8)",
        samples=(
            "RuntimeError: CUDA error: uncorrectable ECC error encountered",
            "torch.AcceleratorError: CUDA error: uncorrectable ECC error encountered",
        ),
    ),
    Signature(
        id="nvidia.fallen_off_bus", category="gpu", subcategory="hardware",
        pattern=r"(?:Xid \((?P<pci>PCI:[0-9a-fA-F:.]+)\): (?P<xid>\d+), .*)?GPU has fallen off the bus",
        literals=("GPU has fallen off the bus",),
        description="The GPU disappeared from the PCIe bus (NVIDIA Xid 79): power, thermal or hardware failure.",
        hint="Only a node reboot brings the GPU back; drain the node and check power and cooling.",
        source="NVIDIA kernel driver (NVRM Xid 79) and NVML NVML_ERROR_GPU_IS_LOST text",
        samples=(
            "NVRM: Xid (PCI:0000:02:00): 79, pid=1143, GPU has fallen off the bus.",
            "The GPU has fallen off the bus or has otherwise become inaccessible",
        ),
    ),
    Signature(
        id="cudnn.status", category="gpu", subcategory="library",
        pattern=r"CUDNN_STATUS_(?P<status>[A-Z_]+)",
        literals=("CUDNN_STATUS_",),
        description="A cuDNN call failed; NOT_SUPPORTED and INTERNAL_ERROR often hide memory pressure.",
        hint="Make inputs contiguous, check the cuDNN/driver versions, or set torch.backends.cudnn.enabled=False to compare.",
        source="NVIDIA cuDNN cudnnStatus_t names, raised by PyTorch as 'cuDNN error: ...'",
        samples=(
            "RuntimeError: cuDNN error: CUDNN_STATUS_INTERNAL_ERROR",
            "RuntimeError: cuDNN error: CUDNN_STATUS_NOT_SUPPORTED. This error may appear if you passed in a non-contiguous input.",
        ),
    ),
    Signature(
        id="cublas.status", category="gpu", subcategory="library",
        pattern=r"CUBLAS_STATUS_(?P<status>[A-Z_]+)(?: when calling `(?P<call>\w+))?",
        literals=("CUBLAS_STATUS_",),
        description="A cuBLAS call failed; ALLOC_FAILED is memory, EXECUTION_FAILED often a bad earlier kernel.",
        hint="Rerun with CUDA_LAUNCH_BLOCKING=1; check shapes and dtypes of the failing matmul.",
        source="NVIDIA cuBLAS cublasStatus_t names, raised by PyTorch aten/src/ATen/cuda/CUDABlas.cpp",
        samples=(
            "RuntimeError: CUDA error: CUBLAS_STATUS_EXECUTION_FAILED when calling `cublasSgemm( handle, opa, opb, m, n, k, &alpha, a, lda, b, ldb, &beta, c, ldc)`",
            "cuBLAS error: CUBLAS_STATUS_EXECUTION_FAILED",
        ),
    ),
    # --- NCCL, MLX ring and gloo ---------------------------------------------------------------
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
    # --- Host memory ---------------------------------------------------------------------------
    Signature(
        id="torch.dataloader_shm", category="memory", subcategory="shm",
        pattern=r"DataLoader worker \(pid (?P<pid>\d+)\) is killed by signal: Bus error",
        literals=("is killed by signal: Bus error",),
        description="A DataLoader worker hit SIGBUS writing a batch to /dev/shm: shared memory is full.",
        hint="Raise /dev/shm (docker --shm-size or --ipc=host, a Kubernetes emptyDir medium: Memory) or lower num_workers.",
        source="PyTorch torch/utils/data/_utils/signal_handling.py / _MultiProcessingDataLoaderIter (torch >= 1.0)",
        samples=(
            "RuntimeError: DataLoader worker (pid 40931) is killed by signal: Bus error. It is possible that dataloader's workers are out of shared memory. Please try to raise your shared memory limit.",
            "RuntimeError: DataLoader worker (pid 56) is killed by signal: Bus error. Details are lost due to multiprocessing. Rerunning with num_workers=0 may give better error trace.",
        ),
    ),
    Signature(
        id="torch.shm_bus_error", category="memory", subcategory="shm",
        pattern=r"insufficient shared memory \(shm\)",
        literals=("insufficient shared memory (shm)",),
        description="The DataLoader worker's own SIGBUS report: shared memory is full.",
        hint="Raise /dev/shm (docker --shm-size or --ipc=host) or lower num_workers.",
        source="PyTorch torch/csrc/DataLoader.cpp worker SIGBUS handler (torch >= 1.0)",
        samples=("ERROR: Unexpected bus error encountered in worker. This might be caused by insufficient shared memory (shm).",),
    ),
    Signature(
        id="torch.cpu_alloc", category="memory", subcategory="memory_error",
        pattern=r"DefaultCPUAllocator: (?:can't allocate memory|not enough memory): you tried to allocate (?P<bytes>\d+) bytes",
        literals=("DefaultCPUAllocator: ",),
        description="PyTorch's CPU allocator could not get host memory for a tensor.",
        hint="Lower the batch size or the number of workers, or give the job more RAM.",
        source="PyTorch c10/core/impl/alloc_cpu.cpp ('not enough memory' since 2.0, 'can't allocate memory' before)",
        samples=(
            "RuntimeError: [enforce fail at alloc_cpu.cpp:114] data. DefaultCPUAllocator: not enough memory: you tried to allocate 1073741824 bytes.",
            "RuntimeError: [enforce fail at CPUAllocator.cpp:64] . DefaultCPUAllocator: can't allocate memory: you tried to allocate 3221225472 bytes. Error code 12 (Cannot allocate memory)",
        ),
    ),
    Signature(
        id="python.memory_error", category="memory", subcategory="memory_error",
        pattern=r"(?<![\w.])(?:numpy[\w.]*\._ArrayMemoryError|MemoryError)(?::\s(?P<detail>.*))?$",
        literals=("MemoryError",),
        description="Python raised MemoryError: an allocation in the interpreter or an extension failed.",
        hint="Process data in smaller pieces, or give the job more RAM.",
        source="CPython Objects/exceptions.c MemoryError; numpy numpy/core/_exceptions.py (numpy >= 1.17)",
        samples=(
            "MemoryError",
            "numpy.core._exceptions._ArrayMemoryError: Unable to allocate 7.45 GiB for an array with shape (1000000000,) and data type float64",
        ),
    ),
    # --- Disk ----------------------------------------------------------------------------------
    Signature(
        id="python.enospc", category="disk", subcategory="enospc",
        pattern=r"(?:\[Errno (?P<errno>\d+)\] )?No space left on device",
        literals=("No space left on device",),
        description="A write failed because the filesystem is full (ENOSPC).",
        hint="Free space or write elsewhere (check df -h and df -i on the output and temp directories).",
        source=_STRERROR,
        samples=(
            "OSError: [Errno 28] No space left on device",
            "cp: error writing '/mnt/out/shard-0001.tar': No space left on device",
        ),
    ),
    Signature(
        id="python.edquot", category="disk", subcategory="quota",
        pattern=r"(?:\[Errno (?P<errno>\d+)\] )?Disk quota exceeded",
        literals=("Disk quota exceeded",),
        description="A write failed because the user's or project's disk quota is used up (EDQUOT).",
        hint="Clean up or ask for a larger quota (quota -s, lfs quota); write scratch data elsewhere.",
        source=_STRERROR,
        samples=("OSError: [Errno 122] Disk quota exceeded",),
    ),
    Signature(
        id="python.erofs", category="disk", subcategory="readonly",
        pattern=r"(?:\[Errno (?P<errno>\d+)\] )?Read-only file system",
        literals=("Read-only file system",),
        description="A write went to a read-only filesystem (EROFS): a read-only mount or a remount after disk errors.",
        hint="Write to a writable volume; if the disk was remounted read-only, check dmesg for I/O errors.",
        source=_STRERROR,
        samples=("OSError: [Errno 30] Read-only file system: '/data/out.bin'",),
    ),
    Signature(
        id="python.eio", category="disk", subcategory="io_error",
        pattern=r"(?:\[Errno (?P<errno>\d+)\] )?Input/output error",
        literals=("Input/output error",),
        description="The kernel reported a low-level I/O error (EIO): failing disk, network filesystem or device.",
        hint="Check dmesg and the storage's health; retry on another node or volume.",
        source=_STRERROR,
        samples=("OSError: [Errno 5] Input/output error",),
    ),
    Signature(
        id="python.emfile", category="resource", subcategory="open_files",
        pattern=r"(?:\[Errno (?P<errno>\d+)\] )?Too many open files",
        literals=("Too many open files",),
        description="The process hit its open file descriptor limit (EMFILE).",
        hint="Raise ulimit -n, or close files and sockets (DataLoader: file_system sharing strategy).",
        source=_STRERROR,
        samples=("OSError: [Errno 24] Too many open files: '/data/shard-0042.tar'",),
    ),
    # --- Fatal signals and heap corruption -----------------------------------------------------
    Signature(
        id="faulthandler.segfault", category="crash", subcategory="segfault",
        pattern=r"Fatal Python error: Segmentation fault", literals=("Fatal Python error: Segmentation fault",),
        description="The interpreter received SIGSEGV: native code touched invalid memory.",
        hint="The faulthandler traceback below this line shows the Python frame that called the native code.",
        source=_FAULTHANDLER, samples=("Fatal Python error: Segmentation fault",),
    ),
    Signature(
        id="faulthandler.abort", category="crash", subcategory="abort",
        pattern=r"Fatal Python error: Aborted", literals=("Fatal Python error: Aborted",),
        description="The interpreter received SIGABRT: native code called abort() (failed assert, uncaught C++ exception).",
        hint="Look just above for the message printed before abort(): an assertion, a C++ exception or a glibc check.",
        source=_FAULTHANDLER, samples=("Fatal Python error: Aborted",),
    ),
    Signature(
        id="faulthandler.bus_error", category="crash", subcategory="bus_error",
        pattern=r"Fatal Python error: Bus error", literals=("Fatal Python error: Bus error",),
        description="The interpreter received SIGBUS: a mapped file shrank or shared memory ran out.",
        hint="Check /dev/shm size and whether a memory-mapped file was truncated while in use.",
        source=_FAULTHANDLER, samples=("Fatal Python error: Bus error",),
    ),
    Signature(
        id="faulthandler.illegal_instruction", category="crash", subcategory="illegal_instruction",
        pattern=r"Fatal Python error: Illegal instruction", literals=("Fatal Python error: Illegal instruction",),
        description="The interpreter received SIGILL: a binary uses CPU instructions this machine lacks.",
        hint="Install wheels built for this CPU (AVX-512/AVX2 builds on older CPUs are the usual cause).",
        source=_FAULTHANDLER, samples=("Fatal Python error: Illegal instruction",),
    ),
    Signature(
        id="faulthandler.fpe", category="crash", subcategory="fpe",
        pattern=r"Fatal Python error: Floating point exception", literals=("Fatal Python error: Floating point exception",),
        description="The interpreter received SIGFPE: native code divided an integer by zero.",
        hint="The faulthandler traceback shows the calling frame; check for empty inputs reaching native code.",
        source=_FAULTHANDLER, samples=("Fatal Python error: Floating point exception",),
    ),
    Signature(
        id="glibc.double_free", category="crash", subcategory="heap_corruption",
        pattern=r"double free or corruption \((?P<where>[^)]+)\)|free\(\): double free detected in tcache \d",
        literals=("double free or corruption", "double free detected in tcache"),
        description="glibc detected a block freed twice and aborted the process.",
        hint="A native extension frees memory twice; run under MALLOC_CHECK_=3 or valgrind, or bisect native dependencies.",
        source=_GLIBC,
        samples=(
            "double free or corruption (out)",
            "free(): double free detected in tcache 2",
            "*** Error in `python': double free or corruption (fasttop): 0x00000000022a4570 ***",
        ),
    ),
    Signature(
        id="glibc.invalid_pointer", category="crash", subcategory="heap_corruption",
        pattern=r"(?P<function>free|munmap_chunk|realloc)\(\): invalid pointer",
        literals=("(): invalid pointer",),
        description="glibc was asked to free a pointer it never allocated and aborted the process.",
        hint="Often two copies of a native library (e.g. two libstdc++ or OpenMP runtimes) in one process; check ldd.",
        source=_GLIBC,
        samples=("munmap_chunk(): invalid pointer", "free(): invalid pointer"),
    ),
    Signature(
        id="glibc.corrupted_chunk", category="crash", subcategory="heap_corruption",
        pattern=r"free\(\): invalid next size \((?:fast|normal)\)|corrupted size vs\. prev_size|malloc\(\): unaligned tcache chunk detected|malloc\(\): corrupted top size|corrupted double-linked list",
        literals=("invalid next size", "corrupted size vs. prev_size", "unaligned tcache chunk detected", "corrupted top size", "corrupted double-linked list"),
        description="glibc found its heap metadata overwritten (a buffer overflow in native code) and aborted.",
        hint="A native extension writes past a buffer; run under AddressSanitizer or valgrind.",
        source=_GLIBC,
        samples=(
            "free(): invalid next size (fast)",
            "corrupted size vs. prev_size",
            "malloc(): unaligned tcache chunk detected",
        ),
    ),
    Signature(
        id="cxx.terminate", category="crash", subcategory="cxx_exception", evidence_only=True,
        pattern=r"terminate called after throwing an instance of '(?P<type>[^']+)'",
        literals=("terminate called after throwing an instance of",),
        description="An uncaught C++ exception terminated the process; the exception's what() names the cause.",
        hint="Read the '  what():' line that follows for the real error.",
        source="GCC libstdc++ __gnu_cxx::__verbose_terminate_handler",
        samples=("terminate called after throwing an instance of 'std::runtime_error'",),
    ),
    Signature(
        id="cxx.libcxxabi_terminate", category="crash", subcategory="cxx_exception", evidence_only=True,
        pattern=r"libc\+\+abi: terminating due to uncaught exception of type (?P<type>[\w:]+)",
        literals=("libc++abi: terminating",),
        description="An uncaught C++ exception terminated the process (LLVM libc++, e.g. macOS).",
        hint="The text after the type on this line is the real error.",
        source="LLVM libc++abi demangling terminate handler (macOS system libc++)",
        samples=("libc++abi: terminating due to uncaught exception of type std::runtime_error: [METAL] Command buffer execution failed: Caused GPU Timeout Error (00000002:kIOGPUCommandBufferCallbackErrorTimeout)",),
    ),
    # --- HTTP clients --------------------------------------------------------------------------
    Signature(
        id="requests.http_5xx", category="http", subcategory="server_error",
        pattern=r"(?P<status>5\d\d) Server Error: (?P<reason>.*?) for url: (?P<url>\S+)",
        literals=(" Server Error: ",),
        description="An HTTP server answered with a 5xx status (requests Response.raise_for_status).",
        hint="The service is failing or overloaded; retry with backoff and check its status page.",
        source="requests requests/models.py Response.raise_for_status (requests >= 2.0)",
        samples=("requests.exceptions.HTTPError: 503 Server Error: Service Unavailable for url: https://huggingface.co/api/models/gpt2",),
    ),
    Signature(
        id="requests.http_4xx", category="http", subcategory="client_error",
        pattern=r"(?P<status>4\d\d) Client Error: (?P<reason>.*?) for url: (?P<url>\S+)",
        literals=(" Client Error: ",),
        description="An HTTP server rejected the request with a 4xx status (requests Response.raise_for_status).",
        hint="401/403: check credentials and tokens; 404: check the URL; 429: slow down.",
        source="requests requests/models.py Response.raise_for_status (requests >= 2.0)",
        samples=("requests.exceptions.HTTPError: 401 Client Error: Unauthorized for url: https://huggingface.co/api/models/private/model",),
    ),
    Signature(
        id="httpx.http_5xx", category="http", subcategory="server_error",
        pattern=r"Server error '(?P<status>5\d\d) (?P<reason>[^']*)' for url '(?P<url>[^']+)'",
        literals=("Server error '",),
        description="An HTTP server answered with a 5xx status (httpx Response.raise_for_status).",
        hint="The service is failing or overloaded; retry with backoff and check its status page.",
        source="httpx httpx/_models.py Response.raise_for_status (httpx >= 0.18)",
        samples=("httpx.HTTPStatusError: Server error '503 Service Unavailable' for url 'https://api.example.com/v1/items'",),
    ),
    Signature(
        id="httpx.http_4xx", category="http", subcategory="client_error",
        pattern=r"Client error '(?P<status>4\d\d) (?P<reason>[^']*)' for url '(?P<url>[^']+)'",
        literals=("Client error '",),
        description="An HTTP server rejected the request with a 4xx status (httpx Response.raise_for_status).",
        hint="401/403: check credentials and tokens; 404: check the URL; 429: slow down.",
        source="httpx httpx/_models.py Response.raise_for_status (httpx >= 0.18)",
        samples=("httpx.HTTPStatusError: Client error '404 Not Found' for url 'https://api.example.com/v1/items/42'",),
    ),
    Signature(
        id="urllib.http_5xx", category="http", subcategory="server_error",
        pattern=r"HTTP Error (?P<status>5\d\d): (?P<reason>.*)",
        literals=("HTTP Error 5",),
        description="An HTTP server answered with a 5xx status (urllib.request).",
        hint="The service is failing or overloaded; retry with backoff and check its status page.",
        source="CPython Lib/urllib/error.py HTTPError.__str__",
        samples=("urllib.error.HTTPError: HTTP Error 503: Service Unavailable",),
    ),
    Signature(
        id="urllib.http_4xx", category="http", subcategory="client_error",
        pattern=r"HTTP Error (?P<status>4\d\d): (?P<reason>.*)",
        literals=("HTTP Error 4",),
        description="An HTTP server rejected the request with a 4xx status (urllib.request).",
        hint="401/403: check credentials and tokens; 404: check the URL; 429: slow down.",
        source="CPython Lib/urllib/error.py HTTPError.__str__",
        samples=("urllib.error.HTTPError: HTTP Error 404: Not Found",),
    ),
    Signature(
        id="requests.read_timeout", category="http", subcategory="timeout",
        pattern=r"Read timed out\.?(?: \(read timeout=(?P<timeout>[\d.]+)\))?",
        literals=("Read timed out",),
        description="An HTTP response did not arrive within the read timeout (urllib3 ReadTimeoutError).",
        hint="The server is slow or unreachable; raise the timeout or retry with backoff.",
        source="urllib3 urllib3/connectionpool.py _raise_timeout, surfaced by requests as ReadTimeout",
        samples=("requests.exceptions.ReadTimeout: HTTPSConnectionPool(host='huggingface.co', port=443): Read timed out. (read timeout=10)",),
    ),
    Signature(
        id="httpx.timeout", category="http", subcategory="timeout",
        pattern=r"\b(?:httpx|httpcore)\.(?P<kind>(?:Read|Connect|Write|Pool)Timeout)\b",
        literals=("ReadTimeout", "ConnectTimeout", "WriteTimeout", "PoolTimeout"),
        description="An httpx request exceeded one of its timeouts.",
        hint="The server is slow or unreachable; raise httpx.Timeout or retry with backoff.",
        source="httpx httpx/_exceptions.py TimeoutException subclasses (httpx >= 0.18)",
        samples=(
            "httpx.ReadTimeout: The read operation timed out",
            "httpx.ConnectTimeout: timed out",
        ),
    ),
    Signature(
        id="python.socket_timeout", category="http", subcategory="timeout",
        pattern=r"(?:TimeoutError|socket\.timeout): (?:timed out|The (?:read|write|handshake) operation timed out)",
        literals=("TimeoutError: ", "socket.timeout: "),
        description="A socket operation timed out (socket.timeout is TimeoutError since Python 3.10).",
        hint="The peer is slow or unreachable; raise the timeout or retry with backoff.",
        source="CPython Modules/socketmodule.c and Lib/ssl.py timeout messages",
        samples=(
            "TimeoutError: timed out",
            "socket.timeout: timed out",
            "TimeoutError: The read operation timed out",
        ),
    ),
    Signature(
        id="requests.max_retries", category="http", subcategory="connection",
        pattern=r"Max retries exceeded with url: (?P<url>\S+)",
        literals=("Max retries exceeded with url",),
        description="urllib3 gave up connecting after its retries; the 'Caused by' part names why.",
        hint="Check the host name, DNS, proxy settings and that the service is up.",
        source="urllib3 urllib3/exceptions.py MaxRetryError, surfaced by requests as ConnectionError",
        samples=("requests.exceptions.ConnectionError: HTTPSConnectionPool(host='api.example.com', port=443): Max retries exceeded with url: /v1/items (Caused by NewConnectionError('<urllib3.connection.HTTPSConnection object at 0x7f2b1c3d4e50>: Failed to establish a new connection: [Errno 111] Connection refused'))",),
    ),
    Signature(
        id="python.connection_refused", category="http", subcategory="connection",
        pattern=r"(?:\[Errno (?P<errno>\d+)\] )?Connection refused",
        literals=("Connection refused",),
        description="Nothing listens on the address the worker connected to (ECONNREFUSED).",
        hint="Check that the service is up and the host and port are right.",
        source=_STRERROR,
        samples=("ConnectionRefusedError: [Errno 111] Connection refused",),
    ),
    Signature(
        id="python.connection_reset", category="http", subcategory="connection",
        pattern=r"(?:\[Errno (?P<errno>\d+)\] )?Connection reset by peer",
        literals=("Connection reset by peer",),
        description="The remote end reset an open connection (ECONNRESET): it crashed, restarted or a proxy cut it.",
        hint="Retry with backoff; if it persists, check the server's and any proxy's logs.",
        source=_STRERROR,
        samples=("ConnectionResetError: [Errno 104] Connection reset by peer",),
    ),
)
# fmt: on

#: Every catalogue id, for validating rules and hooks.
SIGNATURE_IDS: frozenset[str] = frozenset(signature.id for signature in CATALOGUE)

_BY_ID: Mapping[str, Signature] = {signature.id: signature for signature in CATALOGUE}


def signature_by_id(signature_id: str) -> Signature:
    """Return the catalogue entry with this id.

    Raises:
        KeyError: no entry has this id; the message names the closest ids.
    """
    try:
        return _BY_ID[signature_id]
    except KeyError:
        close = difflib.get_close_matches(signature_id, _BY_ID, n=3)
        advice = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
        raise KeyError(f"no catalogue signature {signature_id!r}{advice}") from None


def ids_matching(pattern: str) -> tuple[str, ...]:
    """Return the ids an id pattern selects: itself, or all ids with a prefix if it ends in ``*``.

    Rules name signatures this way (``cuda.*``), so a family can be ranked as one tier.
    """
    if pattern.endswith("*"):
        prefix = pattern[:-1]
        return tuple(signature.id for signature in CATALOGUE if signature.id.startswith(prefix))
    return (pattern,) if pattern in _BY_ID else ()


def enrich_fields(signature_id: str, fields: Mapping[str, str]) -> dict[str, str]:
    """Return ``fields`` plus the values derived from them, for the collector to store.

    Today this adds ``errno_name`` (``ECONNRESET``) wherever an ``errno`` field holds a number this
    platform knows, because a report reader recognises names, not numbers. Numbers are those of the
    machine running crashsight, which is the machine that printed them for local workers.

    Raises:
        KeyError: ``signature_id`` is not a catalogue id (the hook was called with a foreign id).
    """
    signature_by_id(signature_id)
    enriched = dict(fields)
    number = fields.get("errno", "")
    if number.isdigit() and int(number) in errno.errorcode:
        enriched["errno_name"] = errno.errorcode[int(number)]
    return enriched


def match_line(signature: Signature, line: str) -> dict[str, str] | None:
    """Match one line the way the collector does: literal prefilter, regex, then enrichment.

    Returns:
        The extracted fields (empty if the pattern has no groups), or None when the line does not
        match. Groups that did not take part in the match are left out.
    """
    if not any(literal in line for literal in signature.literals):
        return None
    found = signature.regex.search(line)
    if found is None:
        return None
    fields = {name: value for name, value in found.groupdict().items() if value is not None}
    return enrich_fields(signature.id, fields)


def diagnose_line(
    signature: Signature, line: str, *, lineno: int = 1, when: datetime | None = None
) -> Diagnostic | None:
    """Return the diagnostic of one matching line (count 1), or None if the line does not match.

    This is the first occurrence as the collector records it; it also lets the classifier treat
    an exception message that never reached stderr like a collected line.
    """
    fields = match_line(signature, line)
    if fields is None:
        return None
    when = when or datetime.now(UTC)
    return Diagnostic(
        id=signature.id,
        category=signature.category,
        subcategory=signature.subcategory,
        count=1,
        first_line=line,
        last_line=line,
        first_lineno=lineno,
        last_lineno=lineno,
        first_time=when,
        last_time=when,
        fields=fields,
        description=signature.description,
        hint=signature.hint,
        evidence_only=signature.evidence_only,
    )
