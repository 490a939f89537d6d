"""GPU failures: Apple Metal through MLX, and CUDA through PyTorch, cuDNN, cuBLAS and the NVIDIA driver.

Part of the signature catalogue (see `crashsight.diagnostics.catalogue`): data only.
"""

from __future__ import annotations

from ..models import Signature

__all__ = ["SIGNATURES"]

_MLX = "MLX (ml-explore/mlx)"
_METAL = (
    f"Apple Metal MTLCommandBuffer error description; {_MLX} mlx/backend/metal/eval.cpp "
    "check_error() raises it as '[METAL] Command buffer execution failed: ...' (MLX >= 0.1)"
)
_GPU_OOM_HINT = "Reduce the batch or sequence size, or free memory held by other processes."

# fmt: off
SIGNATURES: tuple[Signature, ...] = (
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
    Signature(
        id="metal.command_buffer", category="gpu", subcategory="library",
        pattern=r"\[METAL\] Command buffer execution failed: (?P<reason>[^(]+?) \((?:(?P<code>[0-9a-fA-F]{8}):)?(?P<kind>kIOGPUCommandBufferCallbackError\w+)\)",
        literals=("[METAL] Command buffer execution failed: ",),
        description="Metal failed a command buffer for a reason without an entry of its own (invalid resource, not permitted, ...); the specific entries above take precedence.",
        hint="Read the reason in the line; update macOS and MLX, and reduce the work per evaluation to see whether it recurs.",
        source=_METAL + "; 'Invalid Resource' seen in Blaizzy/mlx-vlm#270",
        samples=("libc++abi: terminating due to uncaught exception of type std::runtime_error: [METAL] Command buffer execution failed: Invalid Resource (00000009:kIOGPUCommandBufferCallbackErrorInvalidResource)",),
    ),
    # --- XLA (JAX) -----------------------------------------------------------------------------
    Signature(
        id="xla.resource_exhausted", category="gpu", subcategory="oom",
        pattern=r"RESOURCE_EXHAUSTED: Out of memory while trying to allocate (?P<bytes>\d+) bytes",
        literals=("RESOURCE_EXHAUSTED: Out of memory",),
        description="XLA could not allocate accelerator memory for a buffer (JAX on GPU or TPU).",
        hint="Reduce the batch or model size, or set XLA_PYTHON_CLIENT_MEM_FRACTION / XLA_PYTHON_CLIENT_PREALLOCATE=false if another process holds the memory.",
        source="XLA (openxla/xla) allocator, raised as jaxlib XlaRuntimeError (jax >= 0.4); seen in google-deepmind/alphafold#1023",
        samples=("jaxlib.xla_extension.XlaRuntimeError: RESOURCE_EXHAUSTED: Out of memory while trying to allocate 4770354232 bytes.",),
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
)
# fmt: on
