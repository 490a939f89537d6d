"""Host resources: memory (RAM, shared memory) and disks, as Python and PyTorch report them.

Part of the signature catalogue (see `crashsight.diagnostics.catalogue`): data only.
"""

from __future__ import annotations

from ..models import Signature

__all__ = ["SIGNATURES"]

_STRERROR = "C library strerror() text, as in Python's OSError str() '[Errno N] text' and coreutils"

# fmt: off
SIGNATURES: tuple[Signature, ...] = (
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
    Signature(
        id="shell.fork_eagain", category="resource", subcategory="pids_max",
        pattern=r"\bfork: (?:retry: )?Resource temporarily unavailable|can't start new thread",
        literals=("fork: retry: Resource temporarily unavailable", "fork: Resource temporarily unavailable", "can't start new thread"),
        description="A fork or thread creation failed with EAGAIN: the process tree reached its process limit (cgroup pids.max, ulimit -u).",
        hint="Something forks without bound (a fork bomb, a pool that never shrinks): find it, or raise --pids-max / pids.max / ulimit -u.",
        source="GNU Bash jobs.c make_child(): sys_error (\"fork: retry\") then sys_error (\"fork\") with strerror(EAGAIN); CPython Modules/_threadmodule.c \"can't start new thread\"",
        samples=(
            "/tmp/bomb.sh: fork: retry: Resource temporarily unavailable",
            "bash: fork: Resource temporarily unavailable",
            "RuntimeError: can't start new thread",
        ),
    ),
)
# fmt: on
