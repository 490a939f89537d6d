"""Fatal texts of other runtimes: Rust, Go, Node.js, Java, C++, and the compilers' sanitizers.

Workers are not all Python, and a Python worker's tools (``toktx``, ``ffmpeg``, a Rust indexer) print
their own fatal texts on the inherited stderr. The root cause is often inside that text: a Rust
panic on an ``io::Error`` of kind ``StorageFull``, a Java ``IOException: No space left on device``.
The specific entries (memory, disk, connection, memory corruption) are ranked before the generic
ones (a panic, an uncaught exception) in ``default_rules.toml``, so the cause wins over the crash
around it; strerror texts inside them (``No space left on device``) are already matched by
``host.py``.

Part of the signature catalogue (see `crashsight.diagnostics.catalogue`): data only.
"""

from __future__ import annotations

from ..models import Signature

__all__ = ["SIGNATURES"]

_RUST_PANIC = "Rust library/std/src/panicking.rs default_hook (thread id in parentheses since 1.87)"
_RUST_IO = "Rust library/std/src/io/error.rs ErrorKind, as io::Error's Debug prints it (StorageFull etc. stable since 1.83)"
_GO = "Go src/runtime/panic.go printpanics()/fatalthrow() and src/runtime/malloc.go (all Go 1.x)"
_NODE = "Node.js lib/internal/errors.js uvException() (code and libuv uv_strerror text; Node >= 12)"
_JAVA = "OpenJDK java.lang.ThreadGroup.uncaughtException ('Exception in thread \"main\" ...'; all versions)"
_ASAN = "LLVM/GCC compiler-rt lib/asan asan_report.cpp / asan_errors.cpp (GCC >= 4.8, clang >= 3.1)"
_SANITIZER_HINT = "Build without the sanitizer only after fixing it: the report's first stack frame in your code is the bug."
_OOM_HINT = (
    "Give the process more memory (or a larger heap limit) or make it process smaller pieces."
)

# fmt: off
SIGNATURES: tuple[Signature, ...] = (
    # --- Rust ----------------------------------------------------------------------------------
    Signature(
        id="rust.storage_full", category="disk", subcategory="enospc",
        pattern=r"kind: StorageFull", literals=("kind: StorageFull",),
        description="A Rust program's I/O failed because the filesystem is full (io::ErrorKind::StorageFull).",
        hint="Free space or write elsewhere (check df -h and df -i on the output and temp directories).",
        source=_RUST_IO,
        samples=('called `Result::unwrap()` on an `Err` value: Os { code: 28, kind: StorageFull, message: "No space left on device" }',
                 'Custom { kind: StorageFull, error: "shard store is full" }'),
    ),
    Signature(
        id="rust.quota_exceeded", category="disk", subcategory="quota",
        pattern=r"kind: (?:FilesystemQuotaExceeded|QuotaExceeded)", literals=("QuotaExceeded",),
        description="A Rust program's write failed because the disk quota is used up (io::ErrorKind::QuotaExceeded).",
        hint="Clean up or ask for a larger quota (quota -s, lfs quota); write scratch data elsewhere.",
        source=_RUST_IO,
        samples=('Error: Custom { kind: QuotaExceeded, error: "project quota reached on /scratch" }',),
    ),
    Signature(
        id="rust.readonly_filesystem", category="disk", subcategory="readonly",
        pattern=r"kind: ReadOnlyFilesystem", literals=("kind: ReadOnlyFilesystem",),
        description="A Rust program wrote to a read-only filesystem (io::ErrorKind::ReadOnlyFilesystem).",
        hint="Write to a writable volume; if the disk was remounted read-only, check dmesg for I/O errors.",
        source=_RUST_IO,
        samples=('Error: Custom { kind: ReadOnlyFilesystem, error: "output volume is mounted read-only" }',),
    ),
    Signature(
        id="rust.alloc_failed", category="memory", subcategory="memory_error",
        pattern=r"memory allocation of (?P<bytes>\d+) bytes failed", literals=("memory allocation of ",),
        description="Rust's allocation error handler: an allocation failed and the process aborts.",
        hint=_OOM_HINT,
        source="Rust library/std/src/alloc.rs default_alloc_error_hook (Rust >= 1.28)",
        samples=("memory allocation of 1099511627776 bytes failed",),
    ),
    Signature(
        id="rust.panic", category="crash", subcategory="panic",
        pattern=r"thread '(?P<thread>[^']*)'(?: \(\d+\))? panicked at (?P<where>.+?):?$",
        literals=(" panicked at ",),
        description="A Rust program panicked: an unwrap() on an error, an index out of bounds, an explicit panic!.",
        hint="The line after 'panicked at' is the panic message; RUST_BACKTRACE=1 shows where it came from.",
        source=_RUST_PANIC,
        message_at="next_line",
        samples=("thread 'main' (12543) panicked at src/main.rs:7:69:", "thread 'tokio-runtime-worker' panicked at src/encode.rs:88:14:"),
    ),
    # --- Go -----------------------------------------------------------------------------------
    Signature(
        id="go.out_of_memory", category="memory", subcategory="memory_error",
        pattern=r"^fatal error: runtime: out of memory", literals=("fatal error: runtime: out of memory",),
        description="The Go runtime could not get memory from the OS and exited.",
        hint=_OOM_HINT, source=_GO,
        samples=("fatal error: runtime: out of memory",),
    ),
    Signature(
        id="go.nil_dereference", category="crash", subcategory="segfault",
        pattern=r"^panic: runtime error: invalid memory address or nil pointer dereference",
        literals=("invalid memory address or nil pointer dereference",),
        description="A Go program dereferenced a nil pointer (the runtime turns the SIGSEGV into a panic).",
        hint="The goroutine trace below names the function; a value that can be nil was used unchecked.",
        source=_GO,
        samples=("panic: runtime error: invalid memory address or nil pointer dereference",),
    ),
    Signature(
        id="go.panic", category="crash", subcategory="panic",
        pattern=r"^(?:panic|fatal error): (?!runtime error: invalid memory address|runtime: out of memory)(?P<message>.+)",
        literals=("panic: ", "fatal error: "),
        description="A Go program panicked or the runtime stopped it with a fatal error (deadlock, concurrent map writes).",
        hint="The message on this line and the goroutine trace below it say what went wrong.",
        source=_GO,
        samples=("panic: open /data/shards/7.bin: no such file or directory",
                 "fatal error: all goroutines are asleep - deadlock!"),
    ),
    # --- Node.js ------------------------------------------------------------------------------
    Signature(
        id="node.heap_oom", category="memory", subcategory="memory_error",
        pattern=r"FATAL ERROR: .*JavaScript heap out of memory", literals=("JavaScript heap out of memory",),
        description="V8 reached the JavaScript heap limit and Node.js aborted.",
        hint="Raise --max-old-space-size or hold less data in memory at once.",
        source="Node.js src/node_errors.cc OnFatalError via V8 heap limit (Node >= 12)",
        samples=("FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
                 "FATAL ERROR: Ineffective mark-compacts near heap limit Allocation failed - JavaScript heap out of memory"),
    ),
    Signature(
        id="node.enospc", category="disk", subcategory="enospc",
        pattern=r"Error: ENOSPC: no space left on device", literals=("ENOSPC: no space left on device",),
        description="A Node.js write failed because the filesystem is full (ENOSPC).",
        hint="Free space or write elsewhere (check df -h and df -i on the output and temp directories).",
        source=_NODE, samples=("Error: ENOSPC: no space left on device, write",),
    ),
    Signature(
        id="node.edquot", category="disk", subcategory="quota",
        pattern=r"Error: EDQUOT: disk quota exceeded", literals=("EDQUOT: disk quota exceeded",),
        description="A Node.js write failed because the disk quota is used up (EDQUOT).",
        hint="Clean up or ask for a larger quota; write scratch data elsewhere.",
        source=_NODE, samples=("Error: EDQUOT: disk quota exceeded, write",),
    ),
    Signature(
        id="node.erofs", category="disk", subcategory="readonly",
        pattern=r"Error: EROFS: read-only file system", literals=("EROFS: read-only file system",),
        description="A Node.js write went to a read-only filesystem (EROFS).",
        hint="Write to a writable volume; if the disk was remounted read-only, check dmesg.",
        source=_NODE, samples=("Error: EROFS: read-only file system, open '/data/out.json'",),
    ),
    Signature(
        id="node.emfile", category="resource", subcategory="open_files",
        pattern=r"Error: EMFILE: too many open files", literals=("EMFILE: too many open files",),
        description="A Node.js process hit its open file descriptor limit (EMFILE).",
        hint="Raise ulimit -n or open fewer files at once (graceful-fs, a concurrency limit).",
        source=_NODE, samples=("Error: EMFILE: too many open files, open '/data/shard-0042.json'",),
    ),
    Signature(
        id="node.connection", category="http", subcategory="connection",
        pattern=r"Error: (?:connect|getaddrinfo|read|write) (?P<code>ECONNREFUSED|ECONNRESET|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH)\b",
        literals=("Error: connect ", "Error: getaddrinfo ", "Error: read ", "Error: write "),
        description="A Node.js connection failed: refused, reset, or the host name did not resolve.",
        hint="Check the host, DNS, proxy and that the service is up and listening.",
        source=_NODE,
        samples=("Error: connect ECONNREFUSED 127.0.0.1:9", "Error: getaddrinfo ENOTFOUND shards.internal", "Error: read ECONNRESET"),
    ),
    Signature(
        id="node.timeout", category="http", subcategory="timeout",
        pattern=r"Error: (?:connect|read) ETIMEDOUT", literals=("ETIMEDOUT",),
        description="A Node.js connection or read timed out (ETIMEDOUT).",
        hint="The server is slow or unreachable: raise the timeout or retry with backoff.",
        source=_NODE, samples=("Error: connect ETIMEDOUT 10.0.0.7:443",),
    ),
    Signature(
        id="node.uncaught", category="crash", subcategory="uncaught_exception",
        pattern=r"^Node\.js v(?P<version>\d+\.\d+\.\d+)$", literals=("Node.js v",),
        description="Node.js exited on an uncaught exception; it prints its version after the error and stack.",
        hint="The error just above this line (after the source excerpt with '^') is the uncaught exception.",
        source="Node.js src/node_errors.cc PrintUncaughtException / TriggerUncaughtException (version line since Node 17)",
        message_at="error_above",
        samples=("Node.js v20.20.2",),
    ),
    # --- Java ---------------------------------------------------------------------------------
    Signature(
        id="java.out_of_memory", category="memory", subcategory="memory_error",
        pattern=r"java\.lang\.OutOfMemoryError(?::\s(?P<detail>.*))?", literals=("java.lang.OutOfMemoryError",),
        description="The JVM could not allocate an object: the heap (-Xmx), metaspace or native memory ran out.",
        hint="Raise -Xmx (or the container limit), or hold less data at once; the detail names which space ran out.",
        source=_JAVA + "; OpenJDK hotspot memory/universe.cpp OutOfMemoryError messages",
        samples=('Exception in thread "main" java.lang.OutOfMemoryError: Java heap space',
                 "java.lang.OutOfMemoryError: GC overhead limit exceeded"),
    ),
    Signature(
        id="java.stack_overflow", category="crash", subcategory="stack_overflow",
        pattern=r"java\.lang\.StackOverflowError", literals=("java.lang.StackOverflowError",),
        description="A Java thread's stack overflowed, almost always unbounded recursion.",
        hint="The repeating frames of the stack trace show the recursion; raise -Xss only if the depth is legitimate.",
        source=_JAVA, samples=('Exception in thread "main" java.lang.StackOverflowError',),
    ),
    Signature(
        id="java.uncaught", category="crash", subcategory="uncaught_exception",
        pattern=r'Exception in thread "(?P<thread>[^"]*)" (?!java\.lang\.(?:OutOfMemoryError|StackOverflowError))(?P<type>[\w.$]+)(?::\s(?P<message>.*))?',
        literals=("Exception in thread ",),
        description="A Java thread ended with an uncaught exception.",
        hint="The exception and its 'Caused by:' lines name the failure; the first frame in your code is where.",
        source=_JAVA,
        samples=('Exception in thread "main" java.lang.IllegalStateException: shard manifest missing',),
    ),
    # --- C++ ----------------------------------------------------------------------------------
    Signature(
        id="cxx.bad_alloc", category="memory", subcategory="memory_error",
        pattern=r"terminate called after throwing an instance of 'std::bad_alloc'|uncaught exception of type std::bad_alloc",
        literals=("std::bad_alloc",),
        description="A C++ allocation failed (std::bad_alloc) and nothing caught it.",
        hint=_OOM_HINT,
        source="GCC libstdc++ __gnu_cxx::__verbose_terminate_handler; LLVM libc++abi demangling terminate handler",
        samples=("terminate called after throwing an instance of 'std::bad_alloc'",
                 "libc++abi: terminating due to uncaught exception of type std::bad_alloc: std::bad_alloc"),
    ),
    Signature(
        id="cxx.what", category="crash", subcategory="cxx_exception", evidence_only=True,
        pattern=r"^\s*what\(\):\s+(?P<what>.*\S)", literals=("what():",),
        description="The what() of the uncaught C++ exception that terminated the process (evidence: it decides only with the SIGABRT that follows, since what() may quote another library's error).",
        hint="The what() text is the program's own error message; the line before names the exception type.",
        source="GCC libstdc++ __gnu_cxx::__verbose_terminate_handler (prints '  what():  ' + e.what())",
        samples=("  what():  shard manifest missing",),
    ),
    # --- Sanitizers and glibc's fortify checks -------------------------------------------------
    Signature(
        id="asan.out_of_memory", category="memory", subcategory="memory_error",
        pattern=r"AddressSanitizer: (?:out of memory|requested allocation size|allocation-size-too-big)",
        literals=("AddressSanitizer: out of memory", "AddressSanitizer: requested allocation size", "allocation-size-too-big"),
        description="AddressSanitizer refused or failed an allocation: too large, or memory ran out.",
        hint=_OOM_HINT, source=_ASAN,
        samples=("==12963==ERROR: AddressSanitizer: requested allocation size 0x40000000000 (0x40000001000 after adjustments for alignment, red zones etc.) exceeds maximum supported size of 0x10000000000 (thread T0)",
                 "==4711==ERROR: AddressSanitizer: out of memory: allocator is trying to allocate 0x40000000 bytes"),
    ),
    Signature(
        id="asan.segv", category="crash", subcategory="segfault",
        pattern=r"AddressSanitizer: SEGV on unknown address", literals=("AddressSanitizer: SEGV",),
        description="AddressSanitizer caught a segmentation fault (often a null pointer dereference).",
        hint=_SANITIZER_HINT, source=_ASAN,
        samples=("==12952==ERROR: AddressSanitizer: SEGV on unknown address 0x000000000000 (pc 0x55caf88ac409 bp 0x7ffcd4c579f0 sp 0x7ffcd4c57910 T0)",),
    ),
    Signature(
        id="asan.memory_error", category="crash", subcategory="heap_corruption",
        pattern=r"ERROR: AddressSanitizer: (?P<kind>heap-use-after-free|heap-buffer-overflow|stack-buffer-overflow|global-buffer-overflow|stack-use-after-return|stack-use-after-scope|container-overflow|attempting double-free|attempting free on address which was not malloc)",
        literals=("ERROR: AddressSanitizer: ",),
        description="AddressSanitizer caught an invalid memory access: use after free, buffer overflow or a bad free.",
        hint=_SANITIZER_HINT, source=_ASAN,
        samples=("==12981==ERROR: AddressSanitizer: heap-use-after-free on address 0x602000000014 at pc 0x5632eacbc61d bp 0x7fff1fa830c0 sp 0x7fff1fa830b8",
                 "==11661==ERROR: AddressSanitizer: heap-buffer-overflow on address 0x602000000020 at pc 0x555e9186b5c0 bp 0x7fff92f9fd80 sp 0x7fff92f9fd78"),
    ),
    Signature(
        id="lsan.leaks", category="crash", subcategory="memory_leak",
        pattern=r"ERROR: LeakSanitizer: detected memory leaks", literals=("LeakSanitizer: detected memory leaks",),
        description="LeakSanitizer found memory never freed at exit and made the process fail.",
        hint="The report lists each leaked allocation's stack; set ASAN_OPTIONS=detect_leaks=0 only to confirm.",
        source="compiler-rt lib/lsan lsan_common.cpp (GCC >= 4.9, clang >= 3.4)",
        samples=("==12977==ERROR: LeakSanitizer: detected memory leaks",),
    ),
    Signature(
        id="ubsan.runtime_error", category="crash", subcategory="undefined_behavior",
        pattern=r":\d+:\d+: runtime error: (?P<what>.+)", literals=(": runtime error: ",),
        description="UndefinedBehaviorSanitizer caught undefined behaviour (overflow, misaligned or null access, bad shift).",
        hint=_SANITIZER_HINT,
        source="compiler-rt lib/ubsan ubsan_diag.cpp (GCC >= 4.9, clang >= 3.3)",
        samples=("a.cpp:9:49: runtime error: signed integer overflow: 2147483647 + 1 cannot be represented in type 'int'",),
    ),
    Signature(
        id="glibc.fortify", category="crash", subcategory="buffer_overflow",
        pattern=r"\*\*\* (?P<what>stack smashing|buffer overflow) detected \*\*\*", literals=(" detected ***",),
        description="glibc's stack protector or fortify check found a buffer overflow and aborted the process.",
        hint="Native code writes past a buffer; rebuild it with AddressSanitizer to find where.",
        source="glibc debug/fortify_fail.c __fortify_fail / __stack_chk_fail",
        samples=("*** stack smashing detected ***: terminated", "*** buffer overflow detected ***: terminated"),
    ),
)
# fmt: on
