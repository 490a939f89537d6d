"""An analysis as a few plain lines: what ``crashsight analyze`` prints and the panel's text."""

from __future__ import annotations

from ..diagnostics.analysis_model import AnalyzeResult
from ..diagnostics.phases import during

__all__ = ["render_text"]

_MAX_ROWS_SHOWN = 20


def render_text(result: AnalyzeResult) -> str:
    """Render a result as a few plain lines an operator can read at a glance.

    Example::

        crashsight analyze: train.log: 48 errors (2 distinct) in 120000 lines; gpu/oom ...
          verdict:     gpu/oom during evaluation (phase 'EVAL'), confidence 0.9
          description: PyTorch's CUDA caching allocator could not satisfy an allocation. ...
          suggestion:  Lower the evaluation batch size ...
          errors:
            x47  PreTokenize  ERROR  config/chat_template  Failed to tokenize <path> at line <n>
                 lines 12-3400, 2025-12-10T03:58:22 .. 2025-12-10T04:01:10
    """
    lines = [f"crashsight analyze: {result.message}"]
    if not result.message.startswith(result.file):
        lines[0] = f"crashsight analyze: {result.file}: {result.message}"
    analysis = result.analysis
    if analysis is not None:
        verdict = "/".join(filter(None, (analysis.category, analysis.subcategory)))
        where = during(analysis.phase_kind, analysis.phase)
        lines.append(f"  verdict:     {verdict}{where}, confidence {analysis.confidence}")
        lines.append(f"  description: {_first_line(analysis.description)}")
        lines.append(f"  confidence:  {'; '.join(analysis.confidence_basis)}")
        lines += [f"  suggestion:  {suggestion}" for suggestion in analysis.suggestions]
    traceback = result.traceback
    if traceback is not None and traceback.exception is not None:
        chain = " <- ".join(
            f"{link.type}: {_first_line(link.message)}"[:120] for link in traceback.chain
        )
        lines.append(f"  traceback:   line {traceback.lineno}: {chain}")
        if traceback.exception.frames:
            frame = traceback.exception.frames[-1]
            lines.append(f"  failed in:   {frame.file}:{frame.line} in {frame.function}")
    if result.errors:
        lines.append("  errors:")
    for row in result.errors[:_MAX_ROWS_SHOWN]:
        verdict = "/".join(filter(None, (row.category, row.subcategory)))
        fields = [f"x{row.count}", row.phase or "-", row.level or "-", verdict, row.template[:140]]
        lines.append("    " + "  ".join(fields))
        when = f", {row.first_time} .. {row.last_time}" if row.first_time else ""
        when += f", ranks {', '.join(map(str, row.ranks))}" if row.ranks else ""
        lines.append(f"         lines {row.first_lineno}-{row.last_lineno}{when}")
    if len(result.errors) > _MAX_ROWS_SHOWN:
        more = len(result.errors) - _MAX_ROWS_SHOWN
        lines.append(f"    ... {more} more distinct errors (--format json lists them)")
    lines += [f"  note:        {note}" for note in result.notes]
    return "\n".join(lines)


def _first_line(text: str) -> str:
    """A multi-line message (an XLA memory report, a torchrun banner) shown as its first line."""
    lines = text.strip().splitlines()
    return lines[0] + (" ..." if len(lines) > 1 else "") if lines else ""
