"""Phase-aware analysis of a training log, and the JSON result that carries it.

`analyze_file` streams a log through `LogScanner` and `ErrorTable`, parses tracebacks with
`parse_traceback` and classifies each distinct error, then the whole log, with the `Classifier`
that ``crashsight run`` uses. The result is one `AnalyzeResult`; every string in it has passed the
`Redactor`. It is self-contained, so a renderer (terminal, HTML) needs nothing else.

The result's schema is in `crashsight.diagnostics.analysis_model`.

Confidence is the product of two tabled factors, each listed in ``confidence_basis``: how the
verdict is known (`EVIDENCE_CONFIDENCE`: a catalogue signature matched the exact text, a traceback
names the exception, only an ERROR level, or only a text heuristic) and how the phase is known
(`PHASE_CONFIDENCE`: the record's own field, a marker line, or not at all); a truncated log costs
another tenth.
"""

from __future__ import annotations

import fnmatch
import os
import time
from collections.abc import Sequence

from ..redact import Redactor
from ..wording import counted
from .analysis_model import (
    Analysis,
    AnalyzeResult,
    ErrorRow,
    Evidence,
    LogStats,
    Status,
    TracebackInfo,
    chain_links,
)
from .catalogue import CATALOGUE, diagnose_line
from .classify import Classifier, Facts, Verdict
from .logfile import ERROR_LEVELS, RANK_PREFIX, LogScanner
from .logtable import ErrorGroup, ErrorTable, LogRecord
from .models import Diagnostic
from .phases import KindBasis, during, resolve_phase_kind
from .rules import Rule
from .summary import summary_line
from .tracebacks import parse_traceback

__all__ = [
    "EVIDENCE_CONFIDENCE",
    "PHASE_ADVICE",
    "PHASE_CONFIDENCE",
    "analyze_file",
]

#: Advice by verdict (``category/subcategory`` glob) and phase kind, added after the verdict's hint.
PHASE_ADVICE: tuple[tuple[str, str, str], ...] = (
    ("gpu/oom", "evaluation", "Lower the evaluation batch size (per_device_eval_batch_size or "
     "eval_batch_size): evaluation often runs a larger batch than training and keeps all logits."),
    ("gpu/oom", "evaluation", "Move predictions to the CPU as they come (eval_accumulation_steps) and "
     "evaluate under torch.inference_mode() so no activations are kept for a backward pass."),
    ("gpu/oom", "training", "Lower the per-device train batch size and raise gradient accumulation "
     "to keep the effective batch; gradient checkpointing trades compute for memory."),
    ("gpu/oom", "evaluation", "If it was generating, lower the generation batch size or "
     "max_new_tokens: the KV cache grows with both."),
    ("memory/*", "data", "Preprocess in streaming mode or with fewer worker processes (num_proc), "
     "writing shards to disk instead of holding them in memory."),
    ("*", "data", "It failed while preparing data: the input the message names is the first "
     "suspect; rerun the preprocessing step alone on it."),
    ("disk/*", "checkpoint", "Checkpoints are large: keep fewer (save_total_limit) or write them "
     "to a larger volume."),
    ("*", "checkpoint", "It failed while saving: check the output directory's free space and "
     "permissions before training again."),
    ("comm/*", "evaluation", "Ranks that run different numbers of evaluation batches hang in "
     "collectives: shard the evaluation set evenly (pad it or drop the last batch)."),
    ("config/*", "data", "The configuration of data preparation is wrong (a chat template, a "
     "tokenizer setting): it fails the same way on every record, so fix it before rerunning."),
    ("http/*", "initialization", "A download failed: fetch the model and data into the cache beforehand "
     "and run with HF_HUB_OFFLINE=1."),
)  # fmt: skip

#: How strongly each kind of evidence supports a verdict, and how the basis says so.
EVIDENCE_CONFIDENCE: dict[Evidence, tuple[float, str]] = {
    "signature": (0.9, "catalogue signature {detail} matched the exact failure text"),
    "traceback": (0.75, "a Python traceback names the exception ({detail})"),
    "level": (0.5, "only a structured record at level {detail}; no known signature"),
    "text": (0.3, "only a text heuristic: an unstructured line that looks like an error"),
}
#: How sure the phase kind is, by where it came from (see `crashsight.diagnostics.phases`).
PHASE_CONFIDENCE: dict[KindBasis | None, float] = {
    "field": 1.0,
    "traceback": 0.95,
    "marker": 0.9,
    "message": 0.85,
    None: 0.8,
}
_NO_PHASE = "phase unknown: no phase field, traceback frame, marker or words name a kind of work"
_TRUNCATED_FACTOR = 0.9
_MAX_ROW_LINES = 40  # raw lines of an error's first occurrence kept in the result
_MAX_FACT_LINES = 1000  # error messages offered to rules with a ``stderr`` matcher
_BINARY_SAMPLE = 64 * 1024
_BINARY_RATIO = 0.1  # control bytes and invalid UTF-8 above this share of the sample: not text
_TEXT_BYTES = bytes(range(0x20, 0x7F)) + b"\t\n\r\x0b\x0c\x08\x1b" + bytes(range(0x80, 0x100))


def analyze_file(
    path: str | os.PathLike[str],
    *,
    rules: Sequence[Rule] = (),
    max_errors: int = 500,
    chunk_size: int = 1 << 20,
    redactor: Redactor | None = None,
) -> AnalyzeResult:
    """Read the log at ``path`` in chunks and explain its errors; never raises for a bad file.

    Args:
        path: The log file.
        rules: User classification rules, tried before the built-in ones.
        max_errors: Distinct errors listed; the rest are counted.
        chunk_size: Bytes read at a time; memory stays within a few chunks.
        redactor: Applied to every string of the result (default: ``Redactor()``).
    """
    started = time.perf_counter()
    name = os.fspath(path)
    scanner, table = LogScanner(), ErrorTable(max_groups=max_errors)
    status, notes = _read(name, scanner, table, chunk_size)
    stats = LogStats(
        bytes=scanner.bytes_seen,
        lines=scanner.lines_seen,
        nul_bytes=scanner.nul_bytes,
        seconds=round(time.perf_counter() - started, 3),
    )
    result = AnalyzeResult(
        file=name, status=status or "clean", message=notes[0], stats=stats, notes=notes[1:]
    )
    if status is None:
        result = _analyse(result, table, scanner, Classifier(rules))
    redactor = redactor or Redactor()
    return AnalyzeResult.model_validate(redactor.value(result.model_dump(mode="json")))


def _read(
    path: str, scanner: LogScanner, table: ErrorTable, chunk_size: int
) -> tuple[Status | None, list[str]]:
    """Stream the file through the scanner; return a status if it is unusable, and notes."""
    try:
        with open(path, "rb") as handle:
            chunk = handle.read(chunk_size)
            if not chunk:
                return "empty", [f"{path}: the file is empty; there is nothing to analyse"]
            if chunk[:2] == b"\x1f\x8b":
                return "binary", [f"{path}: a gzip file; analyse the log itself (zcat it first)"]
            if _looks_binary(chunk[:_BINARY_SAMPLE]):
                return "binary", [f"{path}: not a text log (binary data); nothing to analyse"]
            notes = [""]
            try:
                while chunk:
                    for record in scanner.feed(chunk):
                        table.add(record)
                    chunk = handle.read(chunk_size)
            except OSError as exc:
                notes.append(f"Reading stopped at byte {scanner.bytes_seen}: {exc.strerror}.")
            for record in scanner.close():
                table.add(record)
            return None, notes
    except FileNotFoundError:
        return "missing", [f"{path}: no such file"]
    except OSError as exc:
        return "unreadable", [f"{path}: cannot read it: {exc.strerror or exc}"]


def _looks_binary(sample: bytes) -> bool:
    """Whether the sample is mostly control bytes (NUL above all) or invalid UTF-8."""
    control = len(sample.translate(None, _TEXT_BYTES))
    invalid = sample.decode("utf-8", "replace").count("\ufffd")
    return control + invalid > _BINARY_RATIO * len(sample)


def _analyse(
    result: AnalyzeResult, table: ErrorTable, scanner: LogScanner, classifier: Classifier
) -> AnalyzeResult:
    """Fill rows, the last traceback, the analysis, notes and the summary message."""
    groups = table.groups
    built = [_row(group, classifier) for group in groups]
    rows = [row for row, _ in built]
    last = table.last_traceback
    traceback = _traceback_info(last) if last else None
    notes = result.notes + _notes(table, scanner)
    truncated = scanner.ended_mid_line or bool(traceback and not traceback.complete)
    analysis = None
    if rows:
        merged: dict[str, tuple[Diagnostic, int]] = {}
        for index, (_, diagnostics) in enumerate(built):
            for diagnostic in diagnostics:
                merged.setdefault(diagnostic.id, (diagnostic, index))
        facts = Facts(
            termination_error=traceback.exception if traceback else None,
            diagnostics=[d for d, _ in sorted(merged.values(), key=lambda x: x[0].first_lineno)],
            stderr_lines=[row.message for row in rows[-_MAX_FACT_LINES:]],
        )
        verdict = classifier.classify(facts)
        by_line = {d.first_line: (d.id, index) for d, index in merged.values()}
        tb_index = next((i for i, g in enumerate(groups) if g is table.last_traceback_group), None)
        analysis = _analysis(verdict, rows, by_line, tb_index, truncated)
    occurrences = sum(row.count for row in rows) + table.omitted_occurrences
    if rows:
        distinct = len(rows) + table.omitted_groups
        message = f"{counted(occurrences, 'error')} ({distinct} distinct) in "
        message += counted(scanner.lines_seen, "line")
        message += f"; {analysis.summary}" if analysis else ""
    else:
        message = f"no errors in {counted(scanner.lines_seen, 'line')}"
    return result.model_copy(
        update={
            "status": "errors" if rows or table.omitted_occurrences else "clean",
            "message": message,
            "truncated": truncated,
            "errors": rows,
            "more_distinct_errors": table.omitted_groups,
            "more_distinct_errors_is_lower_bound": table.omitted_is_lower_bound,
            "more_error_occurrences": table.omitted_occurrences,
            "traceback": traceback,
            "analysis": analysis,
            "notes": [note for note in notes if note],
        }
    )


def _notes(table: ErrorTable, scanner: LogScanner) -> list[str]:
    """What a reader must know about the file itself to trust the rows."""
    notes = []
    if scanner.ended_mid_line:
        notes.append("The file ends without a newline: its last line may be cut short.")
    last = table.last_traceback
    if last is not None and last.traceback_complete is False:
        notes.append(
            f"The log ends inside the traceback at line {last.lineno}: the process was killed "
            "or the file was cut while being written."
        )
    if scanner.nul_bytes:
        share = 100 * scanner.nul_bytes / max(scanner.bytes_seen, 1)
        notes.append(
            f"{scanner.nul_bytes} NUL bytes ({share:.0f}% of the file) were skipped: the log was "
            "preallocated or cut by a crash."
        )
    if table.omitted_groups:
        more = "at least " if table.omitted_is_lower_bound else ""
        notes.append(
            f"{more}{table.omitted_groups} more distinct errors ({table.omitted_occurrences} "
            "occurrences) were counted but not listed."
        )
    return notes


def _row(group: ErrorGroup, classifier: Classifier) -> tuple[ErrorRow, list[Diagnostic]]:
    """Build one row and the catalogue diagnostics of its first occurrence."""
    record = group.first
    diagnostics: dict[str, Diagnostic] = {}
    for line in record.lines:
        for signature in CATALOGUE:
            if signature.id not in diagnostics:
                found = diagnose_line(signature, line, lineno=record.lineno, when=record.time)
                if found is not None:
                    diagnostics[signature.id] = found.model_copy(
                        update={"count": group.count, "last_lineno": group.last_lineno}
                    )
    traceback = _traceback_info(record) if record.traceback_complete is not None else None
    kind = resolve_phase_kind(
        phase=group.phase,
        phase_source=record.phase_source,
        exception=traceback.exception if traceback else None,
        work_phase=record.work_phase,
        messages=record.lines[:_MAX_ROW_LINES],
    )
    verdict = classifier.classify(
        Facts(
            termination_error=traceback.exception if traceback else None,
            diagnostics=list(diagnostics.values()),
            stderr_lines=record.lines,
        )
    )
    row = ErrorRow(
        phase=group.phase,
        phase_kind=kind.kind if kind else None,
        phase_kind_basis=kind.describe() if kind else None,
        phase_kind_confidence=PHASE_CONFIDENCE[kind.basis if kind else None],
        phase_source=record.phase_source,
        rank=record.rank,
        ranks=sorted(group.ranks),
        level=record.level,
        logger=record.logger,
        message=record.message,
        template=group.template,
        count=group.count,
        first_lineno=record.lineno,
        last_lineno=group.last_lineno,
        first_time=record.time.isoformat() if record.time else None,
        last_time=group.last_time.isoformat() if group.last_time else None,
        samples=group.samples,
        lines=record.lines[:_MAX_ROW_LINES],
        signatures=list(diagnostics),
        traceback=traceback,
        category=verdict.category,
        subcategory=verdict.subcategory,
        hint=verdict.hint if verdict.rule != "none" else None,
    )
    return row, list(diagnostics.values())


def _traceback_info(record: LogRecord) -> TracebackInfo:
    """Parse a record's traceback, with its chain."""
    exception = parse_traceback(record.lines)
    return TracebackInfo(
        lineno=record.lineno,
        phase=record.phase,
        complete=bool(record.traceback_complete),
        exception=exception,
        chain=chain_links(exception),
    )


def _analysis(
    verdict: Verdict,
    rows: list[ErrorRow],
    by_line: dict[str, tuple[str, int]],
    tb_index: int | None,
    truncated: bool,
) -> Analysis:
    """Explain the verdict in the phase of the row that gave it, with confidence and advice."""
    if verdict.evidence is not None and verdict.evidence in by_line:
        signature_id, index = by_line[verdict.evidence]
        evidence: Evidence = "signature"
        detail = signature_id
    elif verdict.rule != "none" and tb_index is not None:
        index, evidence = tb_index, "traceback"
        detail = verdict.evidence or ""
    else:
        index = max(range(len(rows)), key=lambda i: rows[i].last_lineno)
        evidence = "level" if rows[index].level in ERROR_LEVELS else "text"
        detail = rows[index].level or ""
    row = rows[index]
    weight, why = EVIDENCE_CONFIDENCE[evidence]
    basis = [why.format(detail=detail), row.phase_kind_basis or _NO_PHASE]
    confidence = weight * row.phase_kind_confidence
    if truncated:
        confidence *= _TRUNCATED_FACTOR
        basis.append("the log is truncated, so a later error may be missing")
    verdict_name = "/".join(filter(None, (verdict.category, verdict.subcategory)))
    suggestions = [verdict.hint] if verdict.hint and verdict.rule != "none" else []
    suggestions += [
        advice
        for pattern, kind, advice in PHASE_ADVICE
        if kind == row.phase_kind and fnmatch.fnmatchcase(verdict_name, pattern)
    ]
    where = during(row.phase_kind, row.phase)
    signature = next((s for s in CATALOGUE if s.id in row.signatures), None)
    exception = row.traceback.exception if row.traceback else None
    if signature is not None:
        what = signature.description
    elif exception is not None:
        what = f"Python raised {summary_line(exception.summary()) or exception.type}."
    else:
        what = f"The log records an error: {row.message}"
    description = (
        f"{what} It happened{where}, first at line {row.first_lineno}"
        + (f" ({row.first_time})" if row.first_time else "")
        + f", {counted(row.count, 'time')} in all."
    )
    # Colour codes and a message that starts with a newline or a ruler (torch's
    # ProcessRaisedException, ChildFailedError) must not leave the summary empty.
    shown = summary_line(verdict.evidence or row.message) or summary_line(row.message)
    shown = RANK_PREFIX.sub("", shown or (exception.type if exception else "error"))[:200]
    # "python/ValueError: ValueError: bad shape" says the type twice; keep it once.
    shown = shown.removeprefix(f"{verdict.subcategory}: ")
    return Analysis(
        category=verdict.category,
        subcategory=verdict.subcategory,
        phase=row.phase,
        phase_kind=row.phase_kind,
        rank=row.rank,
        summary=f"{verdict_name}{where}: {shown}",
        description=description,
        confidence=round(confidence, 2),
        confidence_basis=basis,
        suggestions=suggestions,
        evidence=verdict.evidence,
        error_index=index,
        rule=verdict.rule,
    )
