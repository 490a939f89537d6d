"""Benchmark 3: `StderrCollector` MB/s with the full catalogue, vs no matching and vs grep.

The subject is what the supervisor does with a worker's stderr: read the pipe in 64 KiB chunks and
feed each to a `StderrCollector` holding the full catalogue. The first baseline is the same loop
and the same collector with an empty catalogue, so that the ratio isolates the cost of matching.
The external reference is GNU ``grep -E -c -f`` with the catalogue's patterns translated from
Python's regex dialect to ERE; patterns that cannot be translated are skipped and counted, and every
translated pattern must still match its own samples.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from functools import partial
from pathlib import Path

from crashsight.diagnostics.catalogue import CATALOGUE, enrich_fields
from crashsight.diagnostics.collector import StderrCollector
from crashsight.diagnostics.models import Signature

from .common import BenchResult, Figure, Settings, interleave, median_ratio
from .logs import SPARSE, training_log

#: Signature lines per MiB of the dense log: a job that keeps logging retried errors.
DENSE = 2.0

__all__ = ["ere_patterns", "run", "to_ere"]

_CHUNK = 64 * 1024
_CLASS_ESCAPES = {"d": "0-9", "s": "[:space:]", "w": "[:alnum:]_"}
_ESCAPES = {"d": "[0-9]", "D": "[^0-9]"}  # GNU grep -E knows \s \S \w \W \b itself


def to_ere(pattern: str) -> str | None:
    """Translate a Python regex to GNU ERE, or None if it uses what ERE cannot express.

    Named and non-capturing groups become plain groups, ``\\d`` a bracket expression, and lazy
    quantifiers greedy ones (grep only answers "does the line match", where laziness does not
    matter). Lookarounds, inline flags and backreferences are not translated.
    """
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            nxt = pattern[i + 1]
            if in_class and nxt in _CLASS_ESCAPES:
                out.append(_CLASS_ESCAPES[nxt])
            elif in_class and nxt == "]":
                if out[-1] not in ("[", "[^"):
                    return None  # ERE takes a literal "]" only first in a bracket expression
                out[-1] += "]"
            elif in_class:
                out.append(nxt)
            elif nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
            elif nxt.isdigit() or nxt in "AZzx":
                return None
            else:
                out.append(c + nxt)
            i += 2
            continue
        if in_class:
            in_class = c != "]" or out[-1] in ("[", "[^")
            out.append(c)
        elif c == "[":
            in_class = True
            caret = pattern.startswith("[^", i)
            out.append("[^" if caret else "[")
            i += 2 if caret else 1
            continue
        elif c == "(" and pattern.startswith("(?", i):
            if pattern.startswith("(?P<", i):
                i = pattern.index(">", i) + 1
                out.append("(")
                continue
            if pattern.startswith("(?:", i):
                i += 3
                out.append("(")
                continue
            return None  # lookaround or inline flags
        elif c == "?" and out and out[-1] in ("*", "+", "?", "}") and pattern[i - 1] != "\\":
            pass  # a lazy quantifier: drop the "?"
        else:
            out.append(c)
        i += 1
    return "".join(out)


def ere_patterns(signatures: tuple[Signature, ...]) -> tuple[list[str], list[str]]:
    """The catalogue's patterns as ERE, checked against their own samples; and the skipped ids."""
    grep = shutil.which("grep")
    kept: list[str] = []
    skipped: list[str] = []
    for sig in signatures:
        ere = to_ere(sig.pattern)
        if ere is not None and grep is not None:
            check = subprocess.run(
                [grep, "-E", "-c", "-e", ere],
                input="\n".join(sig.samples).encode(),
                capture_output=True,
                check=False,
            )
            if check.stderr or check.stdout.strip() != str(len(sig.samples)).encode():
                ere = None
        if ere is None:
            skipped.append(sig.id)
        else:
            kept.append(ere)
    return kept, skipped


def _feed(path: Path, signatures: tuple[Signature, ...]) -> float:
    """MB/s of reading ``path`` in 64 KiB chunks into a collector with ``signatures``."""
    collector = StderrCollector(signatures, enrich=enrich_fields)
    fd = os.open(path, os.O_RDONLY)
    start = time.perf_counter()
    try:
        while data := os.read(fd, _CHUNK):
            collector.feed(data)
        collector.close()
        _ = collector.diagnostics, collector.tail
    finally:
        os.close(fd)
    return path.stat().st_size / 1e6 / (time.perf_counter() - start)


def _grep(path: Path, patterns_file: Path) -> float:
    """MB/s of ``grep -E -c -f`` over ``path`` (LC_ALL=C.UTF-8, like a modern CI machine).

    Its output goes to a pipe: GNU grep stops at the first match when stdout is /dev/null.
    """
    start = time.perf_counter()
    subprocess.run(
        ["grep", "-E", "-c", "-f", str(patterns_file), str(path)],
        stdout=subprocess.PIPE,
        check=False,
        env={**os.environ, "LC_ALL": "C.UTF-8"},
    )
    return path.stat().st_size / 1e6 / (time.perf_counter() - start)


def _compare(path: Path, patterns_file: Path | None, rounds: int) -> dict[str, list[float]]:
    contestants = {
        "collector": partial(_feed, path, CATALOGUE),
        "no_matching": partial(_feed, path, ()),
    }
    if patterns_file is not None:
        contestants["grep"] = partial(_grep, path, patterns_file)
    return interleave(contestants, rounds)


def run(settings: Settings) -> BenchResult:
    """Compare collector MB/s over generated training logs; see the module docstring."""
    size = (8 << 20) if settings.quick else (1 << 30)
    dense_size = (4 << 20) if settings.quick else (256 << 20)
    rounds = settings.rounds(full=3)
    sparse, dense = training_log(size), training_log(dense_size, per_mib=DENSE)
    result = BenchResult(
        "collector", f"stderr collector over a {size >> 20} MiB training log (full catalogue)"
    )
    patterns, skipped = ere_patterns(CATALOGUE)
    with tempfile.TemporaryDirectory(prefix="crashsight-bench-") as tmp:
        patterns_file: Path | None = Path(tmp) / "patterns.ere"
        assert patterns_file is not None
        patterns_file.write_text("\n".join(patterns) + "\n")
        if shutil.which("grep") is None:
            patterns_file = None
            result.notes.append("grep not found: the external reference was skipped")
        values = _compare(sparse, patterns_file, rounds)
        dense_values = _compare(dense, None, rounds)
    detail: dict[str, object] = {
        "rounds": rounds,
        "log_bytes": sparse.stat().st_size,
        "signature_lines_per_MiB": SPARSE,
        **{f"median_MB_per_s_{k}": round(statistics.median(v), 1) for k, v in values.items()},
    }
    vs_loop = median_ratio(values["collector"], values["no_matching"])
    result.figures.append(
        Figure(
            "MB/s vs the same loop without matching",
            vs_loop,
            "x its rate",
            ">= 0.5",
            vs_loop >= 0.5,
            detail,
        )
    )
    if "grep" in values:
        vs_grep = median_ratio(values["collector"], values["grep"])
        result.figures.append(
            Figure(
                f"MB/s vs grep -E -f ({len(patterns)} of {len(CATALOGUE)} patterns)",
                vs_grep,
                "x grep's rate",
                detail={**detail, "skipped_patterns": skipped},
            )
        )
        result.notes.append(
            f"grep -E could not take {len(skipped)} of {len(CATALOGUE)} patterns: "
            f"{', '.join(skipped) or 'none'}"
        )
    dense_ratio = median_ratio(dense_values["collector"], dense_values["no_matching"])
    result.figures.append(
        Figure(
            f"MB/s vs no matching, dense log ({DENSE:g} signature lines/MiB, {dense_size >> 20} MiB)",
            dense_ratio,
            "x its rate",
            detail={
                "rounds": rounds,
                **{
                    f"median_MB_per_s_{k}": round(statistics.median(v), 1)
                    for k, v in dense_values.items()
                },
            },
        )
    )
    return result
