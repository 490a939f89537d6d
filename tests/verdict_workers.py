"""Workers that fail in every way crashsight has a verdict for, for the end-to-end verdict tests.

Each function is a target for the runner bootstrap (``f"{path}:name"``) and also runs as a plain
program (``python verdict_workers.py name ARGS...``); either way its arguments are ``sys.argv[1:]``.
Where the failure can really happen here it does (a real SIGSEGV, a write to ``/dev/full``, a
kernel OOM kill). Where it needs hardware this machine lacks (a CUDA or Metal GPU, an NCCL or MLX
ring peer), `replay` writes the text the real process prints to fd 2 and then dies the way that
process dies. Every text names its public source; numbers, paths and hosts are changed, the shape
of each line is not.

This file is loaded by path in the children, so it imports only the standard library and, lazily,
crashsight's runner API.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import platform
import random
import resource
import signal
import socket
import sys
import tempfile
import threading
import time
import urllib.request
from http import HTTPStatus
from pathlib import Path

# --- Texts of failures that need hardware this machine lacks ------------------------------------

# PyTorch >= 2.5 CUDA caching allocator, as in the torch.OutOfMemoryError traceback quoted in
# pytorch/pytorch#16417 (comment of 2024-03-13) and instantX-research/InstantID#72.
CUDA_OOM = """\
Traceback (most recent call last):
  File "/home/ci/train.py", line 212, in <module>
    main()
  File "/home/ci/train.py", line 198, in main
    loss = step(model, batch)
           ^^^^^^^^^^^^^^^^^^
  File "/home/ci/train.py", line 141, in step
    logits = model(batch["input_ids"])
             ^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/opt/conda/lib/python3.11/site-packages/torch/nn/modules/module.py", line 1736, in _wrapped_call_impl
    return self._call_impl(*args, **kwargs)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/opt/conda/lib/python3.11/site-packages/torch/nn/modules/module.py", line 1747, in _call_impl
    return forward_call(*args, **kwargs)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/home/ci/model.py", line 88, in forward
    attn = torch.softmax(scores, dim=-1)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total capacity of 23.65 GiB of which 11.06 MiB is free. Including non-PyTorch memory, this process has 23.60 GiB memory in use. Of the allocated memory 22.90 GiB is allocated by PyTorch, and 194.87 MiB is reserved by PyTorch but unallocated. If reserved but unallocated memory is large try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See documentation for Memory Management  (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)
"""

# MLX on macOS: check_error() throws from a Metal completion handler, libc++abi terminates, the
# shell reports "abort". As in lyogavin/airllm#367 and ml-explore/mlx#3317.
METAL_TIMEOUT = """\
100%|##########| 67/67 [38:00<00:00, 34.04s/it]
libc++abi: terminating due to uncaught exception of type std::runtime_error: [METAL] Command buffer execution failed: Caused GPU Timeout Error (00000002:kIOGPUCommandBufferCallbackErrorTimeout)
"""

# PyTorch C10_CUDA_CHECK after a faulting kernel, as in InternLM/lmdeploy#3258 and
# w-okada/voice-changer#1451.
CUDA_ILLEGAL_ADDRESS = """\
Traceback (most recent call last):
  File "/srv/infer/serve.py", line 77, in <module>
    out = model.generate(**inputs, max_new_tokens=256)
          ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/srv/infer/kernels.py", line 239, in fused_rope
    return q.clone().detach(), k
           ^^^^^^^^^
RuntimeError: CUDA error: an illegal memory access was encountered
CUDA kernel errors might be asynchronously reported at some other API call, so the stacktrace below might be incorrect.
For debugging consider passing CUDA_LAUNCH_BLOCKING=1
Compile with `TORCH_USE_CUDA_DSA` to enable device-side assertions.

"""

# CUDA_KERNEL_ASSERT from ATen's IndexKernel, then the CUDA error at the next sync, as in
# ultralytics/ultralytics#4160 and Deci-AI/super-gradients#1307.
CUDA_DEVICE_ASSERT = """\
../aten/src/ATen/native/cuda/IndexKernel.cu:92: operator(): block: [492,0,0], thread: [126,0,0] Assertion `-sizes[i] <= index && index < sizes[i] && "index out of bounds"` failed.
../aten/src/ATen/native/cuda/IndexKernel.cu:92: operator(): block: [492,0,0], thread: [127,0,0] Assertion `-sizes[i] <= index && index < sizes[i] && "index out of bounds"` failed.
Traceback (most recent call last):
  File "/work/det/train.py", line 61, in <module>
    loss = criterion(pred, targets)
           ^^^^^^^^^^^^^^^^^^^^^^^^
  File "/work/det/loss.py", line 118, in __call__
    iou = bbox_iou(pbox, tbox[mask])
                         ~~~~^^^^^^
RuntimeError: CUDA error: device-side assert triggered
CUDA kernel errors might be asynchronously reported at some other API call, so the stacktrace below might be incorrect.
For debugging consider passing CUDA_LAUNCH_BLOCKING=1
Compile with `TORCH_USE_CUDA_DSA` to enable device-side assertions.

"""

# A GPU memory ECC fault surfaced by PyTorch, as in zai-org/ChatGLM3#681 and vllm-project/vllm#5222.
CUDA_ECC = """\
Loading checkpoint shards: 100%|##########| 7/7 [00:08<00:00,  1.27s/it]
Traceback (most recent call last):
  File "/root/app/openai_api.py", line 251, in <module>
    model = load_model_on_gpus(MODEL_PATH, num_gpus=4)
            ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/root/app/utils.py", line 61, in load_model_on_gpus
    model = dispatch_model(model, device_map=device_map)
            ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
RuntimeError: CUDA error: uncorrectable ECC error encountered
CUDA kernel errors might be asynchronously reported at some other API call, so the stacktrace below might be incorrect.
For debugging consider passing CUDA_LAUNCH_BLOCKING=1.
Compile with `TORCH_USE_CUDA_DSA` to enable device-side assertions.

"""

# cuDNN failing inside a convolution, as in SuhyeonHa/CDTNet-PyTorch#6 and pytorch/pytorch#45769.
CUDNN_INTERNAL = """\
Traceback (most recent call last):
  File "/home/opt/seg/train.py", line 140, in <module>
    out = net(data)
          ^^^^^^^^^
  File "/home/opt/anaconda3/envs/seg/lib/python3.10/site-packages/torch/nn/modules/conv.py", line 463, in forward
    return self._conv_forward(input, self.weight, self.bias)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/home/opt/anaconda3/envs/seg/lib/python3.10/site-packages/torch/nn/modules/conv.py", line 459, in _conv_forward
    return F.conv2d(input, weight, bias, self.stride,
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
RuntimeError: cuDNN error: CUDNN_STATUS_INTERNAL_ERROR
You can try to repro this exception using the following code snippet. If that doesn't trigger the error, please include your original repro script when reporting this issue.

import torch
torch.backends.cudnn.benchmark = True
"""

# MLX ring backend, ml-explore/mlx mlx/distributed/ring/ring.cpp: log_info(true, "Receiving from
# socket", fd_, "failed with errno", errno) per failed recv, then "Too many send/recv errors.
# Aborting..." after ten in a row (ml-explore/mlx#1928), as a rank whose peer dropped prints them.
RING_SOCKET = "".join(
    "[ring] Receiving from socket 23 failed with errno 104\n" for _ in range(9)
) + (
    "[ring] Sending to socket 23 failed with errno 32\n[ring] Too many send/recv errors. Aborting...\n"
)

# A collective on the MLX ring raising in Python after its peer exited: "[ring] connection to a
# peer was lost", as recorded in a public two-Mac MLX pipeline write-up (rank 0's log after rank 1
# died of a Metal timeout).
RING_PEER_LOST = """\
Traceback (most recent call last):
  File "/Users/Shared/mlx-cluster/pipeline_benchmark.py", line 188, in <module>
    logits = mx.distributed.all_gather(h, group=group)
             ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
RuntimeError: [ring] connection to a peer was lost
"""

# PyTorch's NCCL watchdog killing the process after a collective timed out, as in
# sgl-project/sglang#1693 and NVIDIA/Megatron-LM#935 (abort follows the terminate).
NCCL_WATCHDOG = """\
[rank1]:[E1016 03:31:38.928019586 ProcessGroupNCCL.cpp:607] [Rank 1] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=9141, OpType=_ALLGATHER_BASE, NumelIn=19008, NumelOut=152064, Timeout(ms)=600000) ran for 600071 milliseconds before timing out.
[rank1]:[E1016 03:31:38.929220797 ProcessGroupNCCL.cpp:1664] [PG 3 Rank 1] Exception (either an error or timeout) detected by watchdog at work: 9141, last enqueued NCCL work: 9141, last completed NCCL work: 9140.
[rank1]:[E1016 03:31:38.929241154 ProcessGroupNCCL.cpp:621] [Rank 1] Some NCCL operations have failed or timed out. Due to the asynchronous nature of CUDA kernels, subsequent GPU operations might run on corrupted/incomplete data.
[rank1]:[E1016 03:31:38.929246900 ProcessGroupNCCL.cpp:627] [Rank 1] To avoid data inconsistency, we are taking the entire process down.
terminate called after throwing an instance of 'c10::DistBackendError'
  what():  [PG 3 Rank 1] Process group watchdog thread terminated with exception: [Rank 1] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=9141, OpType=_ALLGATHER_BASE, NumelIn=19008, NumelOut=152064, Timeout(ms)=600000) ran for 600071 milliseconds before timing out.
Exception raised from checkTimeout at ../torch/csrc/distributed/c10d/ProcessGroupNCCL.cpp:609 (most recent call first):
frame #0: c10::Error::Error(c10::SourceLocation, std::string) + 0x96 (0x7f3b6d41df86 in /usr/local/lib/python3.10/dist-packages/torch/lib/libc10.so)
frame #1: c10d::ProcessGroupNCCL::WorkNCCL::checkTimeout(std::optional<std::chrono::duration<long, std::ratio<1l, 1000l> > >) + 0x1d2 (0x7f3b6e71a8d2 in /usr/local/lib/python3.10/dist-packages/torch/lib/libtorch_cuda.so)
frame #2: c10d::ProcessGroupNCCL::watchdogHandler() + 0x233 (0x7f3b6e721313 in /usr/local/lib/python3.10/dist-packages/torch/lib/libtorch_cuda.so)
frame #3: c10d::ProcessGroupNCCL::ncclCommWatchdog() + 0x10c (0x7f3b6e7236fc in /usr/local/lib/python3.10/dist-packages/torch/lib/libtorch_cuda.so)
frame #4: <unknown function> + 0xd6df4 (0x7f3bca9d5df4 in /usr/lib/x86_64-linux-gnu/libstdc++.so.6)
frame #5: <unknown function> + 0x8609 (0x7f3c74f76609 in /usr/lib/x86_64-linux-gnu/libpthread.so.0)
frame #6: clone + 0x43 (0x7f3c750b0353 in /usr/lib/x86_64-linux-gnu/libc.so.6)

"""

# C10D_NCCL_CHECK with NCCL's own explanation, as in hkproj/pytorch-transformer-distributed#1 and
# vllm-project/vllm#10523.
NCCL_SYSTEM_ERROR = """\
Traceback (most recent call last):
  File "/workspace/train_ddp.py", line 94, in <module>
    dist.barrier()
  File "/usr/local/lib/python3.10/dist-packages/torch/distributed/c10d_logger.py", line 75, in wrapper
    return func(*args, **kwargs)
           ^^^^^^^^^^^^^^^^^^^^^
  File "/usr/local/lib/python3.10/dist-packages/torch/distributed/distributed_c10d.py", line 3696, in barrier
    work = default_pg.barrier(opts=opts)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
torch.distributed.DistBackendError: NCCL error in: ../torch/csrc/distributed/c10d/ProcessGroupNCCL.cpp:1333, unhandled system error (run with NCCL_DEBUG=INFO for details), NCCL version 2.18.6
ncclSystemError: System call (e.g. socket, malloc) or external library call failed or device error.\x20
Last error:
socketStartConnect: Connect to 10.0.3.14<52822> failed : No route to host
"""

# A DataLoader worker killed by SIGBUS on a full /dev/shm, as in open-mmlab/mmsegmentation#1356.
DATALOADER_SHM = """\
ERROR: Unexpected bus error encountered in worker. This might be caused by insufficient shared memory (shm).
Traceback (most recent call last):
  File "/opt/conda/lib/python3.7/site-packages/torch/utils/data/dataloader.py", line 990, in _try_get_data
    data = self._data_queue.get(timeout=timeout)
  File "/opt/conda/lib/python3.7/queue.py", line 179, in get
    self.not_empty.wait(remaining)
  File "/opt/conda/lib/python3.7/threading.py", line 300, in wait
    gotit = waiter.acquire(True, timeout)
  File "/opt/conda/lib/python3.7/site-packages/torch/utils/data/_utils/signal_handling.py", line 66, in handler
    _error_if_any_worker_fails()
RuntimeError: DataLoader worker (pid 7579) is killed by signal: Bus error. It is possible that dataloader's workers are out of shared memory. Please try to raise your shared memory limit.

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "tools/train.py", line 245, in <module>
    main()
  File "/opt/conda/lib/python3.7/site-packages/torch/utils/data/dataloader.py", line 1003, in _try_get_data
    raise RuntimeError('DataLoader worker (pid(s) {}) exited unexpectedly'.format(pids_str)) from e
RuntimeError: DataLoader worker (pid(s) 7579) exited unexpectedly
"""

# Fallbacks for hosts where the real fault cannot be made: the traceback CPython prints for these
# errnos (strerror texts of glibc), as a real EROFS or EDQUOT on this machine prints it.
EROFS = """\
Traceback (most recent call last):
  File "/srv/export/write_shard.py", line 30, in <module>
    with open("/data/out/shard-0007.tar", "wb") as out:
         ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
OSError: [Errno 30] Read-only file system: '/data/out/shard-0007.tar'
"""
EDQUOT = """\
Traceback (most recent call last):
  File "/home/u/export.py", line 52, in <module>
    out.write(chunk)
OSError: [Errno 122] Disk quota exceeded
"""

TEXTS = {
    name: text
    for name, text in globals().items()
    if name.isupper() and isinstance(text, str) and name != "TEXTS"
}


def _args() -> list[str]:
    return sys.argv[1:]


def _die(how: str) -> None:
    """End the process the way the real program does after printing its text."""
    if how == "abort":
        os.abort()
    elif how == "segfault":
        segfault()
    os._exit(int(how))


def replay() -> None:
    """``replay NAME [NAME...] HOW``: write the named texts to fd 2, then die as ``HOW`` says."""
    *names, how = _args()
    for name in names:
        os.write(2, TEXTS[name].encode())
    _die(how)


# --- Real faults ---------------------------------------------------------------------------------


def segfault() -> None:
    """Read address 0: a real SIGSEGV."""
    ctypes.string_at(0)


def abort() -> None:
    os.abort()


def sigkill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def bus_error() -> None:
    """Touch a mapped page whose file was truncated under it: a real SIGBUS."""
    with tempfile.TemporaryFile() as backing:
        backing.truncate(mmap.PAGESIZE)
        mapped = mmap.mmap(backing.fileno(), mmap.PAGESIZE)
        backing.truncate(0)
        mapped[0]  # the read is the fault


# Machine code that faults when called: x86-64 ``ud2``; ``xor ecx,ecx; mov eax,1; cdq; idiv ecx``
# (integer division by zero). AArch64 ``udf #0``; its division by zero does not trap.
_FAULTING_CODE = {
    ("x86_64", "ill"): b"\x0f\x0b",
    ("x86_64", "fpe"): b"\x31\xc9\xb8\x01\x00\x00\x00\x99\xf7\xf9\xc3",
    ("aarch64", "ill"): b"\x00\x00\x00\x00",
    ("arm64", "ill"): b"\x00\x00\x00\x00",
}


def _run_machine_code(kind: str, fallback: signal.Signals) -> None:
    code = _FAULTING_CODE.get((platform.machine(), kind))
    if code is not None:
        try:
            page = mmap.mmap(
                -1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC
            )
        except OSError:
            page = None  # W^X policy: no executable anonymous memory here
        if page is not None:
            page.write(code)
            address = ctypes.addressof(ctypes.c_char.from_buffer(page))
            ctypes.CFUNCTYPE(None)(address)()
    os.kill(os.getpid(), fallback)


def illegal_instruction() -> None:
    """Execute an undefined instruction: a real SIGILL (a self-sent one off x86-64/AArch64)."""
    _run_machine_code("ill", signal.SIGILL)


def fpe() -> None:
    """Divide an integer by zero in machine code: a real SIGFPE on x86-64."""
    _run_machine_code("fpe", signal.SIGFPE)


def double_free() -> None:
    """Free one malloc block twice: glibc detects it, prints why and aborts."""
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    block = libc.malloc(64)
    libc.free(block)
    libc.free(block)


def write_dev_full() -> None:
    """Write to ``/dev/full``: a real ENOSPC."""
    with open("/dev/full", "wb") as device:
        device.write(b"x" * 4096)


def enospc_wrapped() -> None:
    """An ENOSPC wrapped by the caller, as pipelines do: RuntimeError from OSError."""
    try:
        write_dev_full()
    except OSError as exc:
        raise RuntimeError("could not write shard 7 to the output volume") from exc


def write_into() -> None:
    """``write_into DIR``: create a file in DIR (a read-only mount gives a real EROFS)."""
    (Path(_args()[0]) / "shard-0007.tar").write_bytes(b"x")


def io_error() -> None:
    """Read unmapped address 0 through ``/proc/self/mem``: the kernel answers a real EIO."""
    fd = os.open("/proc/self/mem", os.O_RDONLY)
    try:
        os.pread(fd, 16, 0)
    finally:
        os.close(fd)


def key_quota() -> None:
    """Exceed the kernel's per-user key quota with add_key(2): a real EDQUOT.

    This kernel has no disk quota support (no CONFIG_QFMT_V2, no tmpfs quotas), and the key quota is
    the one place a process can meet EDQUOT without it. The errno and its strerror are the same a
    full disk quota gives, and errno is all the classifier sees. Root's quota is 25 MB, so a root
    worker first drops to ``nobody``, whose quota (20000 bytes) one 30000-byte key exceeds.
    """
    if os.getuid() == 0:
        os.setgid(65534)
        os.setuid(65534)
    libc = ctypes.CDLL(None, use_errno=True)
    add_key = {"x86_64": 248, "aarch64": 217}[platform.machine()]
    payload = b"k" * 30000
    key_spec_process_keyring = -2
    result = libc.syscall(
        add_key, b"user", b"crashsight-quota", payload, len(payload), key_spec_process_keyring
    )
    if result < 0:
        number = ctypes.get_errno()
        raise OSError(number, os.strerror(number))


def memory_error() -> None:
    """Allocate 1 GiB under an address-space limit just above what is mapped: a real MemoryError."""
    mapped_kib = next(
        int(line.split()[1])
        for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith("VmSize:")
    )
    limit = mapped_kib * 1024 + (64 << 20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    bytearray(1 << 30)


def http_get() -> None:
    """``http_get URL [TIMEOUT]``: fetch a URL with urllib and let any error propagate."""
    url, *timeout = _args()
    with urllib.request.urlopen(url, timeout=float(timeout[0]) if timeout else 5.0) as response:
        response.read()


def _answer_once(listener: socket.socket, code: int) -> None:
    connection, _ = listener.accept()
    with connection:
        connection.recv(65536)
        head = f"HTTP/1.1 {code} {HTTPStatus(code).phrase}\r\nContent-Length: 0\r\n\r\n"
        connection.sendall(head.encode())


def http_local() -> None:
    """``http_local CODE|silent``: fetch from this worker's own listener on 127.0.0.1.

    The listener answers ``CODE`` (a real HTTP status line), or with ``silent`` accepts and never
    answers, so the read times out. For tests that run the worker behind ``crashsight run`` and
    cannot host a listener themselves.
    """
    mode = _args()[0]
    with socket.create_server(("127.0.0.1", 0)) as listener:
        if mode != "silent":
            threading.Thread(target=_answer_once, args=(listener, int(mode)), daemon=True).start()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1/shards/7"
        with urllib.request.urlopen(url, timeout=0.5) as response:
            response.read()


def hang() -> None:
    """Sleep without a word: only the no-progress watchdog can tell."""
    time.sleep(600)


def busy() -> None:
    """Stay visibly alive, so only the deadline can stop it."""
    from crashsight import runner

    while True:
        runner.heartbeat()
        time.sleep(0.05)


def value_error() -> None:
    raise ValueError("bad shard 3: expected 512 rows, got 0")


def key_error() -> None:
    manifest: dict[str, str] = {}
    print(manifest["shard-0042"])


def exit_three() -> None:
    os._exit(3)


def toktx_failure() -> None:
    """A texture pipeline step whose external tool failed, reported the pipeline's way."""
    raise RuntimeError("toktx exit 1: failed to read input image 'albedo_042.png'")


def touch() -> None:
    """``touch PATH``: leave a marker that this worker ran."""
    Path(_args()[0]).touch()


def leak() -> None:
    """Print ``$LEAK`` on stderr like a chatty library, then raise an error that quotes it."""
    secret = os.environ["LEAK"]
    print(f"DEBUG request failed: {secret}", file=sys.stderr, flush=True)
    raise RuntimeError(f"upload failed after 3 attempts: {secret}")


# --- A realistic stderr flood ---------------------------------------------------------------------

_NOISE = (
    "2024-05-14 09:{m:02d}:{s:02d},{ms:03d} INFO trainer: step {n} loss={loss:.4f} lr=3.0e-04 tokens/s={tps}",
    "[rank0]:[W514 09:{m:02d}:{s:02d}.{ms:03d}000000 ProcessGroupNCCL.cpp:4115] Using device cuda:0 for barrier",
    "/opt/conda/lib/python3.11/site-packages/torch/utils/checkpoint.py:{n}: UserWarning: None of the inputs have requires_grad=True. Gradients will be None",
    "WARNING:datasets.builder:Found cached dataset shard {n} at /cache/hub/datasets--c4/snapshots/{tps:x}",
    "  warnings.warn(",
)


def flood() -> None:
    """``flood MEGABYTES``: noisy stderr, ``\\r`` progress bars and a 5 MB line, then a CUDA OOM."""
    total = int(_args()[0]) << 20
    rng = random.Random(7)
    lines = []
    for n in range(6000):
        template = rng.choice(_NOISE)
        values = {"m": n % 60, "s": (n * 7) % 60, "ms": n % 1000, "n": n, "loss": rng.random()}
        lines.append(template.format(**values, tps=rng.randrange(10_000, 99_999)) + "\n")
        if n % 50 == 0:  # a tqdm bar redrawn in place
            bar = "".join(
                f"\rEpoch 3:  {p:3d}%|{'#' * (p // 10):<10}| {p}/100 [00:{p:02d}<00:{99 - p:02d}]"
                for p in range(0, 101, 5)
            )
            lines.append(bar + "\n")
    block = "".join(lines).encode()
    written = 0
    half = total // 2
    while written < total:
        os.write(2, block)
        written += len(block)
        if half and written >= half:
            half = 0
            os.write(2, b"=" * (5 << 20))  # one 5 MB line with no newline until the next block
    os.write(2, b"\n" + CUDA_OOM.encode())
    os._exit(1)


if __name__ == "__main__":
    sys.argv = sys.argv[1:]
    globals()[sys.argv[0]]()
