"""Fatal signals as faulthandler reports them, glibc heap corruption, C++ terminate handlers.

Part of the signature catalogue (see `crashsight.diagnostics.catalogue`): data only.
"""

from __future__ import annotations

from ..models import Signature

__all__ = ["SIGNATURES"]

_GLIBC = "glibc malloc/malloc.c malloc_printerr(); '*** Error in ...' wrapper before glibc 2.26"
_FAULTHANDLER = "CPython Modules/faulthandler.c fatal-signal handler (Python >= 3.3)"

# fmt: off
SIGNATURES: tuple[Signature, ...] = (
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
)
# fmt: on
