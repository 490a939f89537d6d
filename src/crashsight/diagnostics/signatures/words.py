"""Conditions that libraries name in words, without an errno: a full database, a compressor out of memory.

``OSError: [Errno 28]`` is recognised by its number, but SQLite says ``database or disk is full``,
MySQL ``Disk full (...)``, zstd ``Allocation error : not enough memory``; these entries classify
such texts by the condition they name.

Part of the signature catalogue (see `crashsight.diagnostics.catalogue`): data only.
"""

from __future__ import annotations

from ..models import Signature

__all__ = ["SIGNATURES"]

_DISK_HINT = (
    "Free space or write elsewhere (check df -h and df -i on the database's and temp directories)."
)
_MEMORY_HINT = "Give the process more memory, or compress and decompress in smaller pieces."

# fmt: off
SIGNATURES: tuple[Signature, ...] = (
    Signature(
        id="sqlite.full", category="disk", subcategory="enospc",
        pattern=r"database or disk is full", literals=("database or disk is full",),
        description="SQLite could not grow the database or a temporary file (SQLITE_FULL): the disk, or the temp directory, is full.",
        hint=_DISK_HINT + " SQLite's temporary files go to SQLITE_TMPDIR or /var/tmp.",
        source="SQLite src/main.c sqlite3ErrStr(SQLITE_FULL); Python Modules/_sqlite raises it as OperationalError",
        samples=("sqlite3.OperationalError: database or disk is full",),
    ),
    Signature(
        id="mysql.disk_full", category="disk", subcategory="enospc",
        pattern=r"Disk full \((?P<path>[^)]*)\); waiting for someone to free", literals=("Disk full (",),
        description="The MySQL server cannot write: its disk is full, and it waits instead of failing.",
        hint=_DISK_HINT,
        source="MySQL mysys/errors.cc EE_DISK_FULL (MySQL >= 5.0; MariaDB the same)",
        samples=("Disk full (/tmp/#sql_1d3_0.MAI); waiting for someone to free some space... (errno: 28 \"No space left on device\")",),
    ),
    Signature(
        id="zstd.allocation", category="memory", subcategory="memory_error",
        pattern=r"Allocation error : not enough memory", literals=("Allocation error : not enough memory",),
        description="Zstandard could not allocate its compression or decompression context or window.",
        hint=_MEMORY_HINT + " A large --long window or frame needs as much memory as the window.",
        source="zstd lib/common/error_private.c ERR_getErrorString(memory_allocation); python-zstandard 'zstd decompress error: %s'",
        samples=("zstd.ZstdError: zstd decompress error: Allocation error : not enough memory",),
    ),
    Signature(
        id="zlib.mem_error", category="memory", subcategory="memory_error",
        pattern=r"\bZ_MEM_ERROR\b", literals=("Z_MEM_ERROR",),
        description="zlib could not allocate its state (Z_MEM_ERROR, 'insufficient memory').",
        hint=_MEMORY_HINT,
        source="zlib zlib.h Z_MEM_ERROR (-4); Node.js lib/zlib.js puts the code name on the error ('code')",
        samples=("  code: 'Z_MEM_ERROR'",),
    ),
)
# fmt: on
